#include "daemon/daemon.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

#define MAX_COMPONENTS 32
#define MAX_OBSERVERS 8
/* How long one wait for a signal lasts before the stop flag is looked at. */
#define SIGNAL_POLL_NS (50 * 1000 * 1000)

struct slmd {
	struct slm_config *cfg;
	struct slm_config_args args;
	uint64_t started_ns;
	int state;	     /* enum slmd_state, atomic */
	int stop_requested;  /* atomic: drain, stop, return from slmd_run */
	int drain_requested; /* atomic: drain and stay up (slmctl drain) */
	int drained;	     /* atomic: idle since a stay-up drain began */
	int healthy;	     /* atomic: last verdict; -1 before the first */
	bool drain_begun;    /* run thread only: drain hooks were called */
	/* One reload or runtime change at a time, from any thread. */
	pthread_mutex_t reload_lock;

	struct slmd_component comp[MAX_COMPONENTS];
	bool stalled[MAX_COMPONENTS]; /* last verdict; health thread only */
	int n_comp;
	/* Components whose start succeeded: written by the run thread,
	 * read (atomically) by reloads on other threads. */
	int n_started;
	struct slmd_observer obs[MAX_OBSERVERS];
	int n_obs;

	/* The health thread: runs while components run. */
	pthread_t health_thread;
	bool health_running;
	pthread_mutex_t health_lock; /* guards health_stop */
	pthread_cond_t health_cond;
	bool health_stop;
};

const char *slmd_state_name(enum slmd_state state)
{
	static const char *const names[] = {"starting", "loading", "serving",
					    "draining", "stopping"};
	if ((unsigned)state >= SLM_ARRAY_LEN(names))
		return "?";
	return names[state];
}

struct slmd *slmd_create(struct slm_config *cfg,
			 const struct slm_config_args *args)
{
	struct slmd *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->cfg = cfg;
	if (args)
		d->args = *args;
	d->started_ns = slm_now_ns();
	d->state = SLMD_STARTING;
	d->healthy = -1;
	pthread_mutex_init(&d->health_lock, NULL);
	pthread_mutex_init(&d->reload_lock, NULL);
	pthread_cond_init(&d->health_cond, NULL);
	return d;
}

void slmd_destroy(struct slmd *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->health_lock);
	pthread_cond_destroy(&d->health_cond);
	pthread_mutex_destroy(&d->reload_lock);
	free(d);
}

int slmd_add_component(struct slmd *d, const struct slmd_component *c)
{
	if (d->n_comp >= MAX_COMPONENTS)
		return SLM_ENOMEM;
	d->comp[d->n_comp++] = *c;
	return 0;
}

int slmd_add_observer(struct slmd *d, const struct slmd_observer *o)
{
	if (d->n_obs >= MAX_OBSERVERS)
		return SLM_ENOMEM;
	d->obs[d->n_obs++] = *o;
	return 0;
}

static void announce(struct slmd *d, enum slmd_state state, const char *detail)
{
	SLM_INFO("slmd", "state: %s%s%s", slmd_state_name(state),
		 detail ? ": " : "", detail ? detail : "");
	for (int i = 0; i < d->n_obs; i++)
		if (d->obs[i].state)
			d->obs[i].state(d->obs[i].ctx, state, detail);
}

void slmd_set_state(struct slmd *d, enum slmd_state state, const char *detail)
{
	__atomic_store_n(&d->state, (int)state, __ATOMIC_RELEASE);
	announce(d, state, detail);
}

bool slmd_transition(struct slmd *d, enum slmd_state from, enum slmd_state to,
		     const char *detail)
{
	int expected = (int)from;
	if (!__atomic_compare_exchange_n(&d->state, &expected, (int)to, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return false;
	announce(d, to, detail);
	return true;
}

enum slmd_state slmd_state(const struct slmd *d)
{
	return (enum slmd_state)__atomic_load_n(&d->state, __ATOMIC_ACQUIRE);
}

void slmd_status(struct slmd *d, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	for (int i = 0; i < d->n_obs; i++)
		if (d->obs[i].status)
			d->obs[i].status(d->obs[i].ctx, line);
}

struct slm_config *slmd_config(const struct slmd *d)
{
	return d->cfg;
}

uint64_t slmd_uptime_ns(const struct slmd *d)
{
	return slm_now_ns() - d->started_ns;
}

int slmd_n_components(const struct slmd *d)
{
	return d->n_comp;
}

const char *slmd_component_name(const struct slmd *d, int index)
{
	return index >= 0 && index < d->n_comp ? d->comp[index].name : NULL;
}

void slmd_request_stop(struct slmd *d)
{
	__atomic_store_n(&d->stop_requested, 1, __ATOMIC_RELEASE);
}

void slmd_request_drain(struct slmd *d)
{
	__atomic_store_n(&d->drain_requested, 1, __ATOMIC_RELEASE);
}

bool slmd_exiting(const struct slmd *d)
{
	return __atomic_load_n(&d->stop_requested, __ATOMIC_ACQUIRE) != 0;
}

bool slmd_drained(const struct slmd *d)
{
	return __atomic_load_n(&d->drained, __ATOMIC_ACQUIRE) != 0;
}

int slmd_healthy(const struct slmd *d)
{
	return __atomic_load_n(&d->healthy, __ATOMIC_RELAXED);
}

/* ---- health ------------------------------------------------------------ */

static bool all_healthy(struct slmd *d)
{
	bool ok = true;
	for (int i = 0; i < d->n_started; i++) {
		const struct slmd_component *c = &d->comp[i];
		bool stalled = c->healthy && !c->healthy(c->ctx);
		/* Say it when it changes, not on every tick. */
		if (stalled && !d->stalled[i])
			SLM_WARN("slmd", "component %s makes no progress",
				 c->name);
		else if (!stalled && d->stalled[i])
			SLM_INFO("slmd", "component %s makes progress again",
				 c->name);
		d->stalled[i] = stalled;
		ok = ok && !stalled;
	}
	return ok;
}

static void *health_main(void *arg)
{
	struct slmd *d = arg;
	int64_t interval_ms =
		slm_cfg_int(d->cfg, SLM_CFG_DAEMON_HEALTH_INTERVAL_MS);
	pthread_mutex_lock(&d->health_lock);
	while (!d->health_stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		uint64_t ns = (uint64_t)until.tv_nsec +
			      (uint64_t)interval_ms * 1000000ull;
		until.tv_sec += (time_t)(ns / 1000000000ull);
		until.tv_nsec = (long)(ns % 1000000000ull);
		int rc = 0;
		while (!d->health_stop && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&d->health_cond,
						    &d->health_lock, &until);
		if (d->health_stop)
			break;
		pthread_mutex_unlock(&d->health_lock);
		bool ok = all_healthy(d);
		__atomic_store_n(&d->healthy, ok ? 1 : 0, __ATOMIC_RELAXED);
		for (int i = 0; i < d->n_obs; i++)
			if (d->obs[i].health)
				d->obs[i].health(d->obs[i].ctx, ok);
		pthread_mutex_lock(&d->health_lock);
	}
	pthread_mutex_unlock(&d->health_lock);
	return NULL;
}

static void health_start(struct slmd *d)
{
	d->health_stop = false;
	d->health_running =
		pthread_create(&d->health_thread, NULL, health_main, d) == 0;
	if (d->health_running)
		pthread_setname_np(d->health_thread, "slm-health");
	if (!d->health_running)
		SLM_WARN("slmd", "cannot start the health thread: the watchdog "
				 "will not be fed");
}

static void health_stop(struct slmd *d)
{
	if (!d->health_running)
		return;
	pthread_mutex_lock(&d->health_lock);
	d->health_stop = true;
	pthread_cond_signal(&d->health_cond);
	pthread_mutex_unlock(&d->health_lock);
	pthread_join(d->health_thread, NULL);
	d->health_running = false;
}

/* ---- life -------------------------------------------------------------- */

static void stop_started(struct slmd *d)
{
	for (int i = d->n_started - 1; i >= 0; i--) {
		const struct slmd_component *c = &d->comp[i];
		/* Out of the started set before it stops: a reload running
		 * on the control thread finishes first (it holds the lock)
		 * and a later one no longer calls its hook. */
		pthread_mutex_lock(&d->reload_lock);
		__atomic_store_n(&d->n_started, i, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&d->reload_lock);
		if (c->stop) {
			SLM_DEBUG("slmd", "stopping %s", c->name);
			c->stop(c->ctx);
		}
	}
}

static int start_all(struct slmd *d, struct slm_error *err)
{
	for (int i = 0; i < d->n_comp; i++) {
		const struct slmd_component *c = &d->comp[i];
		if (c->start) {
			int rc = c->start(c->ctx, d, err);
			if (rc) {
				slm_error_prefix(err, "%s: ", c->name);
				stop_started(d);
				return rc;
			}
		}
		/* Release: a reload on another thread that sees the count
		 * sees the started component. */
		__atomic_store_n(&d->n_started, i + 1, __ATOMIC_RELEASE);
	}
	return 0;
}

static bool all_idle(struct slmd *d)
{
	for (int i = 0; i < d->n_started; i++) {
		const struct slmd_component *c = &d->comp[i];
		if (c->idle && !c->idle(c->ctx))
			return false;
	}
	return true;
}

/*
 * Tell every component to stop accepting work (once).  A drain before a
 * stop is announced to the observers' state hook; a drain that stays up
 * (slmctl drain) only stores the state and tells their status hook: to
 * systemd the service still runs, and STOPPING=1 comes with the stop.
 */
static void drain_begin(struct slmd *d, bool stays_up)
{
	d->drain_begun = true;
	if (stays_up) {
		__atomic_store_n(&d->state, (int)SLMD_DRAINING,
				 __ATOMIC_RELEASE);
		SLM_INFO("slmd", "state: draining: no new work; slmd stays "
				 "up (drain requested)");
		slmd_status(d, "draining: no new work; slmd stays up");
	} else {
		slmd_set_state(d, SLMD_DRAINING, NULL);
	}
	for (int i = d->n_started - 1; i >= 0; i--)
		if (d->comp[i].drain)
			d->comp[i].drain(d->comp[i].ctx);
}

/* Drain before stopping: wait for in-flight work up to the timeout. */
static void drain(struct slmd *d)
{
	if (!d->drain_begun)
		drain_begin(d, false);
	else
		slmd_set_state(d, SLMD_DRAINING, "stopping");
	int64_t timeout_ms =
		slm_cfg_int(d->cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS);
	uint64_t deadline = slm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	uint64_t next_report = slm_now_ns();
	while (!all_idle(d)) {
		uint64_t now = slm_now_ns();
		if (now >= deadline) {
			SLM_WARN("slmd",
				 "drain: requests still in flight after %lld "
				 "ms; stopping anyway",
				 (long long)timeout_ms);
			break;
		}
		if (now >= next_report) {
			slmd_status(d, "draining: waiting for in-flight "
				       "requests");
			next_report = now + 1000000000ull;
		}
		slm_sleep_ns(2 * 1000 * 1000);
	}
}

static void reloading(struct slmd *d, bool begin)
{
	for (int i = 0; i < d->n_obs; i++)
		if (d->obs[i].reloading)
			d->obs[i].reloading(d->obs[i].ctx, begin);
}

/* After runtime keys changed: the log level, then every component. */
static void apply_reloaded(struct slmd *d)
{
	slm_log_set_level(
		(enum slm_log_level)slm_cfg_enum(d->cfg, SLM_CFG_LOG_LEVEL));
	int n = __atomic_load_n(&d->n_started, __ATOMIC_ACQUIRE);
	for (int i = 0; i < n; i++) {
		const struct slmd_component *c = &d->comp[i];
		struct slm_error e = {0};
		if (c->reload && c->reload(c->ctx, d->cfg, &e))
			SLM_ERROR("slmd", "reload: %s: %s", c->name, e.msg);
	}
}

/* The text of one changed key while reloading. */
struct reload_key {
	char name[128];
	char now[1024];
	char next[1024];
};

int slmd_reload(struct slmd *d, slmd_reload_note_fn note, void *note_ctx,
		struct slm_error *err)
{
	pthread_mutex_lock(&d->reload_lock);
	reloading(d, true);
	struct slm_config *fresh = slm_config_create();
	struct reload_key *k = calloc(SLM_CFG__COUNT, sizeof(*k));
	int rc = 0;
	if (!fresh || !k) {
		rc = slm_error_set(err, SLM_ENOMEM, "reload: out of memory");
		goto out;
	}
	rc = slm_config_apply_args(fresh, &d->args, err);
	if (rc) {
		slm_error_prefix(err, "reload refused, nothing changed: ");
		goto out;
	}
	/* Every changed runtime key, stored as one change. */
	const char *keys[SLM_CFG__COUNT], *values[SLM_CFG__COUNT];
	int n = 0;
	for (int id = 0; id < SLM_CFG__COUNT; id++) {
		struct reload_key *r = &k[n];
		slm_config_format(d->cfg, id, r->now, sizeof(r->now));
		slm_config_format(fresh, id, r->next, sizeof(r->next));
		if (!strcmp(r->now, r->next))
			continue;
		const struct slm_cfg_key *key = slm_config_key(id);
		snprintf(r->name, sizeof(r->name), "%s.%s", key->section,
			 key->name);
		if (note)
			note(note_ctx, r->name, r->now, r->next, key->runtime);
		if (!key->runtime) {
			SLM_WARN("slmd",
				 "reload: %s changed but needs a restart; "
				 "keeping %s",
				 r->name, r->now);
			continue;
		}
		keys[n] = r->name;
		values[n] = r->next;
		n++;
	}
	rc = slm_config_set_runtime_many(d->cfg, n, keys, values, "reload",
					 err);
	if (rc) {
		slm_error_prefix(err, "reload refused, nothing changed: ");
		goto out;
	}
	apply_reloaded(d);
	SLM_INFO("slmd", "reloaded configuration: %d key%s changed", n,
		 n == 1 ? "" : "s");
out:
	free(k);
	slm_config_destroy(fresh);
	reloading(d, false);
	pthread_mutex_unlock(&d->reload_lock);
	return rc;
}

int slmd_set_runtime(struct slmd *d, int n, const char *const *keys,
		     const char *const *values, const char *origin,
		     struct slm_error *err)
{
	pthread_mutex_lock(&d->reload_lock);
	reloading(d, true);
	int rc = slm_config_set_runtime_many(d->cfg, n, keys, values, origin,
					     err);
	if (rc == 0) {
		for (int i = 0; i < n; i++)
			SLM_INFO("slmd", "%s: %s = %s",
				 origin ? origin : "runtime", keys[i],
				 values[i]);
		apply_reloaded(d);
	}
	reloading(d, false);
	pthread_mutex_unlock(&d->reload_lock);
	return rc;
}

int slmd_run(struct slmd *d, struct slm_error *err)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);

	int rc = start_all(d, err);
	if (rc) {
		slmd_set_state(d, SLMD_STOPPING, err ? err->msg : NULL);
		return rc;
	}
	health_start(d);
	/* A component may have moved the state on (e.g. to LOADING while a
	 * model loads in the background); otherwise slmd serves now. */
	slmd_transition(d, SLMD_STARTING, SLMD_SERVING, NULL);

	const struct timespec poll = {.tv_sec = 0, .tv_nsec = SIGNAL_POLL_NS};
	for (;;) {
		if (__atomic_load_n(&d->stop_requested, __ATOMIC_ACQUIRE))
			break;
		if (!d->drain_begun &&
		    __atomic_load_n(&d->drain_requested, __ATOMIC_ACQUIRE))
			drain_begin(d, true);
		if (d->drain_begun && !slmd_drained(d) && all_idle(d)) {
			__atomic_store_n(&d->drained, 1, __ATOMIC_RELEASE);
			SLM_INFO("slmd", "drained: no work in flight");
		}
		siginfo_t info;
		int sig = sigtimedwait(&set, &info, &poll);
		if (sig == SIGHUP) {
			SLM_INFO("slmd", "SIGHUP: reloading configuration");
			struct slm_error e = {0};
			if (slmd_reload(d, NULL, NULL, &e))
				SLM_ERROR("slmd", "%s", e.msg);
		} else if (sig == SIGTERM || sig == SIGINT) {
			SLM_INFO("slmd", "%s: draining", strsignal(sig));
			__atomic_store_n(&d->stop_requested, 1,
					 __ATOMIC_RELEASE);
			break;
		}
	}
	drain(d);
	slmd_set_state(d, SLMD_STOPPING, NULL);
	health_stop(d);
	stop_started(d);
	return 0;
}
