#include "engine/threadpool.h"

#include <errno.h>
#include <immintrin.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/compiler.h"

struct worker {
	pthread_t thread;
	struct slm_threadpool *pool;
	int ith;
};

/*
 * Shared words, each on its own cache line so that spinning on one does
 * not slow writes to another.  Every field written while threads run is
 * accessed with __atomic builtins; the comment says what orders what.
 */
struct slm_threadpool {
	int n_threads;
	struct worker *workers; /* n_threads - 1 of them */
	uint64_t spin_ns;	/* atomic, relaxed: a tuning value */
	void (*on_thread)(void *ctx, int ith, bool start); /* or NULL */
	void *on_thread_ctx;

	/* The operation: fn and arg are written by the caller before the
	 * release store to gen that publishes them; a worker reads them
	 * after its acquire load of gen. */
	slm_threadpool_fn fn;
	void *arg;
	bool stop; /* published by gen like fn */

	uint32_t gen SLM_ALIGNED_CACHE; /* futex word: one step per op */
	uint32_t gen_sleepers;		/* workers asleep (or going) on gen */

	uint32_t done SLM_ALIGNED_CACHE; /* futex word: workers finished */
	uint32_t done_sleepers;		 /* 1 while the caller sleeps */

	uint32_t bar_count SLM_ALIGNED_CACHE; /* threads arrived */
	uint32_t bar_phase SLM_ALIGNED_CACHE; /* futex word: one step per
						 barrier */
	uint32_t bar_sleepers;
};

static void futex_wait(uint32_t *word, uint32_t expect)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, expect, NULL, NULL, 0);
}

static void futex_wake_all(uint32_t *word)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/*
 * Wait until *word differs from `old`: spin with pause for spin_ns, then
 * sleep.  The sleeper count and the word follow the Dekker pattern with
 * the waker (sequentially consistent on both sides): either the waker's
 * load sees our count and wakes us, or our load sees its new value, and
 * FUTEX_WAIT itself refuses to sleep on a changed word.  Returns the new
 * value, read with acquire.
 */
static uint32_t wait_change(uint32_t *word, uint32_t old, uint32_t *sleepers,
			    uint64_t spin_ns)
{
	uint32_t v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
	if (v != old)
		return v;
	uint64_t start = slm_now_ns();
	for (unsigned i = 1;; i++) {
		_mm_pause();
		v = __atomic_load_n(word, __ATOMIC_ACQUIRE);
		if (v != old)
			return v;
		if ((i & 255) == 0) {
			if (slm_now_ns() - start >= spin_ns)
				break;
			/* Every few microseconds let another runnable
			 * thread in: with more threads than free cores (a
			 * busy machine) the thread we wait for may be the
			 * one waiting for our core.  Without such a thread
			 * the call returns at once. */
			sched_yield();
		}
	}
	__atomic_add_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
	while ((v = __atomic_load_n(word, __ATOMIC_SEQ_CST)) == old)
		futex_wait(word, old);
	__atomic_sub_fetch(sleepers, 1, __ATOMIC_SEQ_CST);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return v;
}

/* Publish a new value of a futex word and wake its sleepers, if any. */
static void publish(uint32_t *word, uint32_t value, uint32_t *sleepers)
{
	__atomic_store_n(word, value, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(sleepers, __ATOMIC_SEQ_CST))
		futex_wake_all(word);
}

static uint64_t spin_of(const struct slm_threadpool *pool)
{
	return __atomic_load_n(&pool->spin_ns, __ATOMIC_RELAXED);
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct slm_threadpool *pool = w->pool;
	uint32_t seen = 0;
	if (pool->on_thread)
		pool->on_thread(pool->on_thread_ctx, w->ith, true);
	for (;;) {
		seen = wait_change(&pool->gen, seen, &pool->gen_sleepers,
				   spin_of(pool));
		if (pool->stop)
			break;
		pool->fn(pool->arg, w->ith, pool->n_threads);
		/* release: our writes in fn happen before the caller's
		 * acquire load of done */
		uint32_t n =
			__atomic_add_fetch(&pool->done, 1, __ATOMIC_SEQ_CST);
		if (n == (uint32_t)pool->n_threads - 1 &&
		    __atomic_load_n(&pool->done_sleepers, __ATOMIC_SEQ_CST))
			futex_wake_all(&pool->done);
	}
	if (pool->on_thread)
		pool->on_thread(pool->on_thread_ctx, w->ith, false);
	return NULL;
}

static int pin_attr(pthread_attr_t *attr, int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return pthread_attr_setaffinity_np(attr, sizeof(set), &set);
}

struct slm_threadpool *
slm_threadpool_create(const struct slm_threadpool_params *params,
		      struct slm_error *err)
{
	int n = params->n_threads;
	if (n < 1 || n > CPU_SETSIZE) {
		slm_error_set(err, SLM_EINVAL, "thread pool: %d threads", n);
		return NULL;
	}
	if (params->cpus) {
		for (int i = 0; i < n; i++) {
			if (params->cpus[i] < 0 ||
			    params->cpus[i] >= CPU_SETSIZE) {
				slm_error_set(err, SLM_EINVAL,
					      "thread pool: cpu %d out of "
					      "range",
					      params->cpus[i]);
				return NULL;
			}
		}
	}
	struct slm_threadpool *pool = aligned_alloc(
		SLM_CACHELINE, (sizeof(*pool) + SLM_CACHELINE - 1) /
				       SLM_CACHELINE * SLM_CACHELINE);
	if (!pool) {
		slm_error_set(err, SLM_ENOMEM, "thread pool: out of memory");
		return NULL;
	}
	memset(pool, 0, sizeof(*pool));
	pool->n_threads = n;
	pool->spin_ns = params->spin_ns ? params->spin_ns
					: SLM_THREADPOOL_DEFAULT_SPIN_NS;
	pool->on_thread = params->on_thread;
	pool->on_thread_ctx = params->on_thread_ctx;
	if (params->cpus && params->pin_caller) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(params->cpus[0], &set);
		int rc = pthread_setaffinity_np(pthread_self(), sizeof(set),
						&set);
		if (rc) {
			slm_error_errno(err, SLM_ESYS, rc,
					"thread pool: pinning the caller to "
					"cpu %d",
					params->cpus[0]);
			free(pool);
			return NULL;
		}
	}
	pool->workers = calloc((size_t)n, sizeof(*pool->workers));
	if (!pool->workers) {
		free(pool);
		slm_error_set(err, SLM_ENOMEM, "thread pool: out of memory");
		return NULL;
	}
	int started = 0;
	for (int i = 1; i < n; i++) {
		struct worker *w = &pool->workers[i - 1];
		w->pool = pool;
		w->ith = i;
		pthread_attr_t attr;
		pthread_attr_init(&attr);
		int rc = params->cpus ? pin_attr(&attr, params->cpus[i]) : 0;
		if (!rc)
			rc = pthread_create(&w->thread, &attr, worker_main, w);
		pthread_attr_destroy(&attr);
		if (rc) {
			slm_error_errno(err, SLM_ESYS, rc,
					"thread pool: starting thread %d%s", i,
					params->cpus ? " (pinned)" : "");
			break;
		}
		char name[16];
		snprintf(name, sizeof(name), "%.11s%d",
			 params->name ? params->name : "slm-pool-", i);
		pthread_setname_np(w->thread, name);
		started++;
	}
	if (started != n - 1) {
		pool->n_threads = started + 1;
		slm_threadpool_destroy(pool);
		return NULL;
	}
	return pool;
}

void slm_threadpool_destroy(struct slm_threadpool *pool)
{
	if (!pool)
		return;
	pool->stop = true;
	publish(&pool->gen, pool->gen + 1, &pool->gen_sleepers);
	for (int i = 1; i < pool->n_threads; i++)
		pthread_join(pool->workers[i - 1].thread, NULL);
	free(pool->workers);
	free(pool);
}

int slm_threadpool_n_threads(const struct slm_threadpool *pool)
{
	return pool->n_threads;
}

void slm_threadpool_set_spin(struct slm_threadpool *pool, uint64_t spin_ns)
{
	__atomic_store_n(&pool->spin_ns, spin_ns, __ATOMIC_RELAXED);
}

void slm_threadpool_run(struct slm_threadpool *pool, slm_threadpool_fn fn,
			void *arg)
{
	int n = pool->n_threads;
	if (n == 1) {
		fn(arg, 0, 1);
		return;
	}
	/* Workers are waiting on gen: nothing reads fn, arg or done until
	 * the store below publishes them. */
	pool->fn = fn;
	pool->arg = arg;
	__atomic_store_n(&pool->done, 0, __ATOMIC_RELAXED);
	publish(&pool->gen, pool->gen + 1, &pool->gen_sleepers);
	fn(arg, 0, n);
	uint32_t d;
	while ((d = __atomic_load_n(&pool->done, __ATOMIC_ACQUIRE)) !=
	       (uint32_t)n - 1)
		wait_change(&pool->done, d, &pool->done_sleepers,
			    spin_of(pool));
}

void slm_threadpool_barrier(struct slm_threadpool *pool)
{
	uint32_t n = (uint32_t)pool->n_threads;
	if (n == 1)
		return;
	uint32_t phase = __atomic_load_n(&pool->bar_phase, __ATOMIC_ACQUIRE);
	/* acq_rel: our earlier writes are released to the last arriver,
	 * which releases them all with the phase step */
	if (__atomic_add_fetch(&pool->bar_count, 1, __ATOMIC_ACQ_REL) == n) {
		__atomic_store_n(&pool->bar_count, 0, __ATOMIC_RELAXED);
		publish(&pool->bar_phase, phase + 1, &pool->bar_sleepers);
		return;
	}
	wait_change(&pool->bar_phase, phase, &pool->bar_sleepers,
		    spin_of(pool));
}
