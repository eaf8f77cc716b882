/*
 * threadpool.h: a pool of pinned threads that runs one parallel operation
 * at a time.
 *
 * An operation is a function run by every thread of the pool at once,
 * each knowing its index ith (0..nth-1) and the count nth, as ggml's
 * kernels are: the function splits its own work by (ith, nth).  The
 * calling thread takes part as thread 0, so a pool of n threads starts
 * n - 1 workers.  Inside an operation the threads may meet at
 * slm_threadpool_barrier() (e.g. after quantizing the activations, before
 * the matrix product that reads them).
 *
 * Waiting is cheap both ways: an idle worker spins (with a pause) for
 * `spin_ns` after its last operation, then sleeps on a futex.  On a VM a
 * sleeping thread takes tens of microseconds (and sometimes milliseconds)
 * to wake, so the spin should cover the gaps inside a forward pass and
 * between the passes of a busy server; an idle server sleeps.  Barriers
 * spin the same way before sleeping.
 *
 * Workers are pinned, one CPU each, to the CPUs the caller gives (a NUMA
 * worker group passes its own cores); the caller's thread is pinned to
 * cpus[0] only when pin_caller is set.  The pool is not reentrant: one
 * operation at a time, started by the thread that created it.
 */
#ifndef SLM_ENGINE_THREADPOOL_H
#define SLM_ENGINE_THREADPOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct slm_threadpool;

struct slm_threadpool_params {
	int n_threads;	  /* >= 1, the caller included */
	const int *cpus;  /* n_threads CPU ids (cpus[0]: the caller), or
			    NULL for no pinning */
	bool pin_caller;  /* also pin the calling thread to cpus[0] */
	const char *name; /* threads are named NAME1, NAME2... (at most 15
			     characters in all); NULL: "slm-pool-" */
	uint64_t spin_ns; /* spin this long before sleeping; 0 = default */
	/* Called on each worker thread (ith 1..n_threads-1) when it starts
	 * (start true, before its first operation) and when it ends (start
	 * false, after its last), e.g. to register it with the perf
	 * counters; NULL = none.  Not called for the caller's thread. */
	void (*on_thread)(void *ctx, int ith, bool start);
	void *on_thread_ctx;
};

#define SLM_THREADPOOL_DEFAULT_SPIN_NS 5000000ull /* 5 ms */

/* An operation: run by every thread, ith in 0..nth-1. */
typedef void (*slm_threadpool_fn)(void *arg, int ith, int nth);

/*
 * Start the workers (pinned as asked).  Returns NULL with err set when a
 * thread cannot be started or pinned (a CPU not in the process's
 * affinity mask, for instance).
 */
struct slm_threadpool *
slm_threadpool_create(const struct slm_threadpool_params *params,
		      struct slm_error *err);

/* Stop and join the workers.  NULL is fine. */
void slm_threadpool_destroy(struct slm_threadpool *pool);

int slm_threadpool_n_threads(const struct slm_threadpool *pool);

/*
 * Run fn(arg, ith, nth) on every thread (the caller as ith 0) and return
 * when all have finished.  Writes made by any thread inside fn are
 * visible to the caller afterwards.
 */
void slm_threadpool_run(struct slm_threadpool *pool, slm_threadpool_fn fn,
			void *arg);

/*
 * Inside an operation: wait until every thread of the pool has reached
 * this barrier.  Writes before it are visible to all threads after it.
 * Every thread must call it the same number of times.
 */
void slm_threadpool_barrier(struct slm_threadpool *pool);

/* Change the spin time (takes effect at the next wait). */
void slm_threadpool_set_spin(struct slm_threadpool *pool, uint64_t spin_ns);

#endif
