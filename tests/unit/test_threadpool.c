#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "engine/threadpool.h"
#include "tests/unit/harness.h"

/* The CPUs this process may run on, in order. */
static int allowed_cpus(int *cpus, int max)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set))
		return 0;
	int n = 0;
	for (int c = 0; c < CPU_SETSIZE && n < max; c++)
		if (CPU_ISSET(c, &set))
			cpus[n++] = c;
	return n;
}

struct affinity_op {
	int cpu_seen[8]; /* the single CPU each thread may run on, or -1 */
	int ran[8];
};

static void affinity_task(void *arg, int ith, int nth)
{
	struct affinity_op *op = arg;
	(void)nth;
	cpu_set_t set;
	CPU_ZERO(&set);
	op->cpu_seen[ith] = -2;
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		op->cpu_seen[ith] = -1;
		if (CPU_COUNT(&set) == 1)
			for (int c = 0; c < CPU_SETSIZE; c++)
				if (CPU_ISSET(c, &set))
					op->cpu_seen[ith] = c;
	}
	op->ran[ith]++;
}

/* Each worker runs pinned to the CPU it was given (sched_getaffinity
 * inside the worker); the caller is pinned only when asked. */
static void test_pinning(void)
{
	int cpus[8];
	int n = allowed_cpus(cpus, 8);
	if (n < 2) {
		slm_test_skip("pinning: the process may use %d CPU(s), "
			      "need 2",
			      n);
		return;
	}
	/* the CPUs in reverse order, so pinning is visible */
	int order[2] = {cpus[1], cpus[0]};
	cpu_set_t saved;
	CPU_ZERO(&saved);
	CU_ASSERT_EQUAL_FATAL(
		pthread_getaffinity_np(pthread_self(), sizeof(saved), &saved),
		0);
	struct slm_threadpool_params p = {
		.n_threads = 2, .cpus = order, .pin_caller = true};
	struct slm_error err = {0};
	struct slm_threadpool *pool = slm_threadpool_create(&p, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	struct affinity_op op;
	memset(&op, 0, sizeof(op));
	slm_threadpool_run(pool, affinity_task, &op);
	CU_ASSERT_EQUAL(op.cpu_seen[0], order[0]);
	CU_ASSERT_EQUAL(op.cpu_seen[1], order[1]);
	slm_threadpool_destroy(pool);
	/* unpinned caller this time */
	pthread_setaffinity_np(pthread_self(), sizeof(saved), &saved);
	p.pin_caller = false;
	pool = slm_threadpool_create(&p, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	memset(&op, 0, sizeof(op));
	slm_threadpool_run(pool, affinity_task, &op);
	CU_ASSERT_EQUAL(op.cpu_seen[0], n == 1 ? cpus[0] : -1);
	CU_ASSERT_EQUAL(op.cpu_seen[1], order[1]);
	slm_threadpool_destroy(pool);
	/* a CPU outside the set is refused with a message */
	int bad[2] = {cpus[0], CPU_SETSIZE - 1};
	p.cpus = bad;
	slm_error_clear(&err);
	pool = slm_threadpool_create(&p, &err);
	CU_ASSERT_PTR_NULL(pool);
	CU_ASSERT_NOT_EQUAL(err.code, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "thread 1"));
}

struct count_op {
	struct slm_threadpool *pool;
	int rounds;
	int64_t slots[8 * 16]; /* one cache line per thread */
	int64_t *shared;       /* written in phase r, read in r + 1 */
	int errors[8];
};

/*
 * Barrier semantics: in each round every thread writes its slot, then
 * after the barrier every thread reads all slots of the round.
 */
static void barrier_task(void *arg, int ith, int nth)
{
	struct count_op *op = arg;
	for (int r = 1; r <= op->rounds; r++) {
		op->shared[ith] = (int64_t)r * 1000 + ith;
		slm_threadpool_barrier(op->pool);
		for (int j = 0; j < nth; j++)
			if (op->shared[j] != (int64_t)r * 1000 + j)
				op->errors[ith]++;
		slm_threadpool_barrier(op->pool);
	}
	op->slots[ith * 16]++;
}

static void run_barrier_rounds(int nth, uint64_t spin_ns, int runs, int rounds,
			       int sleep_us)
{
	struct slm_threadpool_params p = {.n_threads = nth, .spin_ns = spin_ns};
	struct slm_error err = {0};
	struct slm_threadpool *pool = slm_threadpool_create(&p, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	CU_ASSERT_EQUAL(slm_threadpool_n_threads(pool), nth);
	struct count_op op;
	memset(&op, 0, sizeof(op));
	int64_t shared[8] = {0};
	op.pool = pool;
	op.rounds = rounds;
	op.shared = shared;
	for (int i = 0; i < runs; i++) {
		slm_threadpool_run(pool, barrier_task, &op);
		if (sleep_us)
			usleep((useconds_t)sleep_us);
	}
	for (int t = 0; t < nth; t++) {
		CU_ASSERT_EQUAL(op.slots[t * 16], runs);
		CU_ASSERT_EQUAL(op.errors[t], 0);
	}
	slm_threadpool_destroy(pool);
}

/* Many short operations with barriers, while the workers spin. */
static void test_run_and_barrier_spinning(void)
{
	run_barrier_rounds(1, 1000000, 50, 10, 0);
	run_barrier_rounds(2, 1000000, 2000, 10, 0);
	run_barrier_rounds(3, 1000000, 300, 10, 0);
}

/*
 * With a tiny spin the workers (and the barrier waiters) go to sleep on
 * the futex between operations and must be woken every time.
 */
static void test_sleep_and_wake(void)
{
	run_barrier_rounds(2, 1000, 40, 20, 300);
	run_barrier_rounds(3, 1000, 20, 5, 200);
}

static void test_bad_params(void)
{
	struct slm_error err = {0};
	struct slm_threadpool_params p = {.n_threads = 0};
	CU_ASSERT_PTR_NULL(slm_threadpool_create(&p, &err));
	CU_ASSERT_EQUAL(err.code, SLM_EINVAL);
	int cpus[2] = {0, -3};
	struct slm_threadpool_params p2 = {.n_threads = 2, .cpus = cpus};
	slm_error_clear(&err);
	CU_ASSERT_PTR_NULL(slm_threadpool_create(&p2, &err));
	CU_ASSERT_EQUAL(err.code, SLM_EINVAL);
	slm_threadpool_destroy(NULL);
}

/* on_thread: each worker, on its own thread, once at start before any
 * operation and once at the end after all of them. */
struct hook_log {
	pthread_mutex_t mu;
	int started[4], ended[4], ops_before_start;
	pthread_t tid[4];
	int ops[4];
};

static void hook(void *ctx, int ith, bool start)
{
	struct hook_log *h = ctx;
	pthread_mutex_lock(&h->mu);
	if (start) {
		h->started[ith]++;
		h->tid[ith] = pthread_self();
		h->ops_before_start += h->ops[ith];
	} else {
		h->ended[ith]++;
		CU_ASSERT(pthread_equal(h->tid[ith], pthread_self()));
	}
	pthread_mutex_unlock(&h->mu);
}

static void hook_op(void *arg, int ith, int nth)
{
	struct hook_log *h = arg;
	pthread_mutex_lock(&h->mu);
	h->ops[ith]++;
	pthread_mutex_unlock(&h->mu);
}

static void test_thread_hook(void)
{
	struct hook_log h = {.mu = PTHREAD_MUTEX_INITIALIZER};
	struct slm_error err = {0};
	struct slm_threadpool_params p = {
		.n_threads = 4, .on_thread = hook, .on_thread_ctx = &h};
	struct slm_threadpool *pool = slm_threadpool_create(&p, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	for (int i = 0; i < 5; i++)
		slm_threadpool_run(pool, hook_op, &h);
	slm_threadpool_destroy(pool);
	CU_ASSERT_EQUAL(h.started[0], 0); /* not the caller's thread */
	CU_ASSERT_EQUAL(h.ended[0], 0);
	for (int i = 1; i < 4; i++) {
		CU_ASSERT_EQUAL(h.started[i], 1);
		CU_ASSERT_EQUAL(h.ended[i], 1);
		CU_ASSERT_EQUAL(h.ops[i], 5);
	}
	CU_ASSERT_EQUAL(h.ops_before_start, 0);
}

SLM_SUITE("threadpool", NULL, NULL, {"pinning", test_pinning},
	  {"run_and_barrier_spinning", test_run_and_barrier_spinning},
	  {"sleep_and_wake", test_sleep_and_wake},
	  {"bad_params", test_bad_params},
	  {"on_thread hook", test_thread_hook});
