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
	int state;	    /* enum slmd_state, atomic */
	int stop_requested; /* atomic */

	struct slmd_component comp[MAX_COMPONENTS];
	bool stalled[MAX_COMPONENTS]; /* last verdict; health thread only */
	int n_comp;
	int n_started; /* components whose start succeeded */
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
	pthread_mutex_init(&d->health_lock, NULL);
	pthread_cond_init(&d->health_cond, NULL);
	return d;
}

void slmd_destroy(struct slmd *d)
{
	if (!d)
		return;
	pthread_mutex_destroy(&d->health_lock);
	pthread_cond_destroy(&d->health_cond);
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
		if (c->stop) {
			SLM_DEBUG("slmd", "stopping %s", c->name);
			c->stop(c->ctx);
		}
	}
	d->n_started = 0;
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
		d->n_started = i + 1;
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

static void drain(struct slmd *d)
{
	slmd_set_state(d, SLMD_DRAINING, NULL);
	for (int i = d->n_started - 1; i >= 0; i--)
		if (d->comp[i].drain)
			d->comp[i].drain(d->comp[i].ctx);
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

/* Re-read the config file; apply changed runtime keys to the live config. */
static void reload(struct slmd *d)
{
	for (int i = 0; i < d->n_obs; i++)
		if (d->obs[i].reloading)
			d->obs[i].reloading(d->obs[i].ctx, true);
	struct slm_config *fresh = slm_config_create();
	struct slm_error err = {0};
	if (!fresh) {
		SLM_ERROR("slmd", "reload: out of memory");
	} else if (slm_config_apply_args(fresh, &d->args, &err)) {
		SLM_ERROR("slmd", "reload refused, nothing changed: %s",
			  err.msg);
	} else {
		int changed = 0;
		for (int id = 0; id < SLM_CFG__COUNT; id++) {
			char now[1024], next[1024];
			slm_config_format(d->cfg, id, now, sizeof(now));
			slm_config_format(fresh, id, next, sizeof(next));
			if (!strcmp(now, next))
				continue;
			const struct slm_cfg_key *k = slm_config_key(id);
			char name[128];
			snprintf(name, sizeof(name), "%s.%s", k->section,
				 k->name);
			if (!k->runtime) {
				SLM_WARN("slmd",
					 "reload: %s changed but needs a "
					 "restart; keeping %s",
					 name, now);
				continue;
			}
			struct slm_error e = {0};
			if (slm_config_set_runtime(d->cfg, name, next, &e))
				SLM_ERROR("slmd", "reload: %s", e.msg);
			else
				changed++;
		}
		slm_log_set_level((enum slm_log_level)slm_cfg_enum(
			d->cfg, SLM_CFG_LOG_LEVEL));
		for (int i = 0; i < d->n_started; i++) {
			const struct slmd_component *c = &d->comp[i];
			struct slm_error e = {0};
			if (c->reload && c->reload(c->ctx, d->cfg, &e))
				SLM_ERROR("slmd", "reload: %s: %s", c->name,
					  e.msg);
		}
		SLM_INFO("slmd", "reloaded configuration: %d key%s changed",
			 changed, changed == 1 ? "" : "s");
	}
	slm_config_destroy(fresh);
	for (int i = 0; i < d->n_obs; i++)
		if (d->obs[i].reloading)
			d->obs[i].reloading(d->obs[i].ctx, false);
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
		siginfo_t info;
		int sig = sigtimedwait(&set, &info, &poll);
		if (sig == SIGHUP) {
			SLM_INFO("slmd", "SIGHUP: reloading configuration");
			reload(d);
		} else if (sig == SIGTERM || sig == SIGINT) {
			SLM_INFO("slmd", "%s: draining", strsignal(sig));
			break;
		}
	}
	drain(d);
	slmd_set_state(d, SLMD_STOPPING, NULL);
	health_stop(d);
	stop_started(d);
	return 0;
}
