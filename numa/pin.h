/*
 * pin.h: putting threads on CPUs, and checking that they are there.
 *
 * Every thread slmd starts is started with slm_thread_start (or pins
 * itself with slm_pin_self first thing), so no thread runs where the plan
 * did not put it.  Pinning is verified, not assumed: the kernel silently
 * drops CPUs that are offline or outside the process's cgroup cpuset from
 * an affinity mask, so after setting it we read it back with
 * sched_getaffinity and with hwloc_get_cpubind and refuse any difference,
 * naming the CPUs that did not take.
 *
 * Pinning needs the topology of this machine: a synthetic or XML topology
 * (slm_topo_info()->this_system false) is refused with SLM_ESTATE.
 */
#ifndef SLM_NUMA_PIN_H
#define SLM_NUMA_PIN_H

#include <sys/types.h>

#include "common/err.h"
#include "numa/placement.h"
#include "numa/topology.h"

/*
 * Pin the calling thread to exactly cpus[n_cpus] (n_cpus 0: every CPU of
 * the topology, i.e. not pinned to a part of the box) and check it.
 * Returns 0, SLM_ESTATE (not this machine), SLM_EINVAL (a CPU not in the
 * topology), or SLM_ESYS (the kernel refused, or the mask read back
 * differs; the message names the CPUs).
 */
int slm_pin_self(const struct slm_topo *topo, const int *cpus, int n_cpus,
		 struct slm_error *err) SLM_MUST_CHECK;

/* Check without changing anything that the calling thread may run on
 * exactly cpus[n_cpus] (n_cpus 0: the topology's CPUs). */
int slm_pin_check_self(const struct slm_topo *topo, const int *cpus, int n_cpus,
		       struct slm_error *err) SLM_MUST_CHECK;

/*
 * The CPUs thread `tid` may run on (0: the calling thread), ascending,
 * from sched_getaffinity, into cpus[max]; returns the count (which may
 * exceed max) or a negative SLM_ESYS.
 */
int slm_pin_get(pid_t tid, int *cpus, int max);

struct slm_thread;

struct slm_thread_params {
	const char *name; /* thread name, at most 15 characters */
	const int *cpus;  /* where it runs; NULL/0: every CPU */
	int n_cpus;
	void *(*fn)(void *arg);
	void *arg;
};

/*
 * Start a thread that names itself, pins itself, checks its pinning and
 * only then runs fn(arg).  Returns once the thread is pinned: 0 with
 * *out set, or the pinning error (the thread has then ended without
 * calling fn, and *out is NULL).  Join with slm_thread_join.
 */
int slm_thread_start(const struct slm_topo *topo,
		     const struct slm_thread_params *params,
		     struct slm_thread **out,
		     struct slm_error *err) SLM_MUST_CHECK;

/* The same for a thread of the plan: its name and CPU (or every CPU when
 * the plan leaves it unpinned). */
int slm_thread_start_planned(const struct slm_topo *topo,
			     const struct slm_plan_thread *planned,
			     void *(*fn)(void *arg), void *arg,
			     struct slm_thread **out,
			     struct slm_error *err) SLM_MUST_CHECK;

/* The kernel's id of the thread (for sched_getaffinity, /proc). */
pid_t slm_thread_tid(const struct slm_thread *t);

/* Wait for the thread to end, free it, and return what fn returned. */
void *slm_thread_join(struct slm_thread *t);

#endif
