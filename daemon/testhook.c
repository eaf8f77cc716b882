/*
 * testhook.c: the TEST-ONLY component (see testhook.h).  It fakes a load,
 * a stuck worker and an in-flight request for the systemd tests; nothing
 * in it runs unless an SLMD_TEST_* variable is set.
 */
#include "daemon/testhook.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#define TICK_NS (5ull * 1000 * 1000)
#define MAX_MS 3600000ull

struct slmd_testhook {
	uint64_t load_ms;	/* 0: no pretend load */
	uint64_t inflight_ms;	/* 0: idle at once when draining */
	const char *stall_file; /* NULL: never stalls (environ string) */
	char desc[512];

	struct slmd *d;
	pthread_t thread;
	bool thread_running;
	pthread_mutex_t lock; /* guards quit */
	pthread_cond_t cond;
	bool quit;

	bool loading;	      /* the worker owns a pretend load */
	uint64_t progress;    /* atomic: ticks of the worker */
	uint64_t seen;	      /* health thread only: progress last checked */
	uint64_t drain_at_ns; /* atomic: when the drain began, 0 = not yet */
};

static const char *const env_load = "SLMD_TEST_LOAD_MS";
static const char *const env_stall = "SLMD_TEST_STALL_FILE";
static const char *const env_inflight = "SLMD_TEST_INFLIGHT_MS";

bool slmd_testhook_wanted(void)
{
	return getenv(env_load) || getenv(env_stall) || getenv(env_inflight);
}

static int env_ms(const char *name, uint64_t *out, struct slm_error *err)
{
	const char *v = getenv(name);
	*out = 0;
	if (!v)
		return 0;
	char *end = NULL;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (!*v || *end || errno || v[0] == '-' || x > MAX_MS)
		return slm_error_set(err, SLM_EINVAL,
				     "%s=%s: expected milliseconds in 0..%llu",
				     name, v, MAX_MS);
	*out = x;
	return 0;
}

/* The worker: counts its progress unless stalled, and runs the pretend
 * load as it goes (a stalled worker stalls its load too). */
static void *worker_main(void *arg)
{
	struct slmd_testhook *t = arg;
	uint64_t t0 = slm_now_ns();
	uint64_t worked_ns = 0; /* load time, not counting stalls */
	int pct_sent = 0;
	pthread_mutex_lock(&t->lock);
	while (!t->quit) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		uint64_t ns = (uint64_t)until.tv_nsec + TICK_NS;
		until.tv_sec += (time_t)(ns / 1000000000ull);
		until.tv_nsec = (long)(ns % 1000000000ull);
		pthread_cond_timedwait(&t->cond, &t->lock, &until);
		if (t->quit)
			break;
		pthread_mutex_unlock(&t->lock);
		uint64_t now = slm_now_ns();
		bool stalled =
			t->stall_file && access(t->stall_file, F_OK) == 0;
		if (!stalled) {
			__atomic_add_fetch(&t->progress, 1, __ATOMIC_RELAXED);
			worked_ns += now - t0;
		}
		t0 = now;
		if (!stalled && t->loading) {
			uint64_t done_ms = worked_ns / 1000000ull;
			int pct = done_ms >= t->load_ms
					  ? 100
					  : (int)(done_ms * 100 / t->load_ms);
			if (pct / 10 * 10 > pct_sent && pct < 100) {
				pct_sent = pct / 10 * 10;
				slmd_status(t->d, "loading test model: %d%%",
					    pct_sent);
			}
			if (pct == 100) {
				t->loading = false;
				/* Unless a drain began meanwhile. */
				if (slmd_state(t->d) == SLMD_LOADING)
					slmd_set_state(t->d, SLMD_SERVING,
						       "test model");
			}
		}
		pthread_mutex_lock(&t->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

static int hook_start(void *ctx, struct slmd *d, struct slm_error *err)
{
	struct slmd_testhook *t = ctx;
	t->d = d;
	if (t->load_ms && slmd_state(d) == SLMD_STARTING) {
		t->loading = true;
		slmd_set_state(d, SLMD_LOADING, "test model 0%");
	} else if (t->load_ms) {
		SLM_INFO("testhook", "a model is loading already: no pretend "
				     "load");
	}
	int rc = pthread_create(&t->thread, NULL, worker_main, t);
	if (rc)
		return slm_error_errno(err, SLM_ESYS, rc,
				       "cannot start the test worker");
	t->thread_running = true;
	return 0;
}

static void hook_drain(void *ctx)
{
	struct slmd_testhook *t = ctx;
	__atomic_store_n(&t->drain_at_ns, slm_now_ns(), __ATOMIC_RELEASE);
}

static bool hook_idle(void *ctx)
{
	struct slmd_testhook *t = ctx;
	uint64_t at = __atomic_load_n(&t->drain_at_ns, __ATOMIC_ACQUIRE);
	return !at || slm_now_ns() >= at + t->inflight_ms * 1000000ull;
}

static void hook_stop(void *ctx)
{
	struct slmd_testhook *t = ctx;
	if (!t->thread_running)
		return;
	pthread_mutex_lock(&t->lock);
	t->quit = true;
	pthread_cond_signal(&t->cond);
	pthread_mutex_unlock(&t->lock);
	pthread_join(t->thread, NULL);
	t->thread_running = false;
}

static bool hook_healthy(void *ctx)
{
	struct slmd_testhook *t = ctx;
	if (!t->stall_file)
		return true;
	uint64_t p = __atomic_load_n(&t->progress, __ATOMIC_RELAXED);
	bool moved = p != t->seen;
	t->seen = p;
	return moved;
}

int slmd_testhook_create(struct slmd_testhook **out, struct slm_error *err)
{
	*out = NULL;
	struct slmd_testhook *t = calloc(1, sizeof(*t));
	if (!t)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int rc = env_ms(env_load, &t->load_ms, err);
	if (!rc)
		rc = env_ms(env_inflight, &t->inflight_ms, err);
	if (rc) {
		free(t);
		return rc;
	}
	const char *stall = getenv(env_stall);
	t->stall_file = stall && stall[0] ? stall : NULL;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	snprintf(t->desc, sizeof(t->desc),
		 "load %llu ms, stall file %s, "
		 "in flight at drain %llu ms",
		 (unsigned long long)t->load_ms,
		 t->stall_file ? t->stall_file : "none",
		 (unsigned long long)t->inflight_ms);
	*out = t;
	return 0;
}

void slmd_testhook_destroy(struct slmd_testhook *t)
{
	if (!t)
		return;
	hook_stop(t);
	pthread_mutex_destroy(&t->lock);
	pthread_cond_destroy(&t->cond);
	free(t);
}

struct slmd_component slmd_testhook_component(struct slmd_testhook *t)
{
	return (struct slmd_component){.name = "testhook",
				       .ctx = t,
				       .start = hook_start,
				       .drain = hook_drain,
				       .idle = hook_idle,
				       .stop = hook_stop,
				       .healthy = hook_healthy};
}

const char *slmd_testhook_describe(const struct slmd_testhook *t)
{
	return t->desc;
}
