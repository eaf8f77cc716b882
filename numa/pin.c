#include "numa/pin.h"

#include <errno.h>
#include <hwloc.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numa/cpulist.h"

int slm_pin_get(pid_t tid, int *cpus, int max)
{
	for (int ncpu = 1024; ncpu <= (1 << 20); ncpu *= 2) {
		cpu_set_t *set = CPU_ALLOC((size_t)ncpu);
		if (!set)
			return SLM_ENOMEM;
		size_t size = CPU_ALLOC_SIZE((size_t)ncpu);
		if (sched_getaffinity(tid, size, set)) {
			int e = errno;
			CPU_FREE(set);
			if (e == EINVAL) /* the kernel has more CPUs */
				continue;
			return SLM_ESYS;
		}
		int n = 0;
		for (int c = 0; c < ncpu; c++)
			if (CPU_ISSET_S((size_t)c, size, set)) {
				if (n < max)
					cpus[n] = c;
				n++;
			}
		CPU_FREE(set);
		return n;
	}
	return SLM_ESYS;
}

/*
 * The CPUs a pin request means, ascending, into a fresh array: cpus[n]
 * sorted, or every CPU of the topology when n is 0.  Refuses a topology
 * that is not this machine and CPUs it does not have.
 */
static int wanted_cpus(const struct slm_topo *topo, const int *cpus, int n,
		       int **out, int *n_out, struct slm_error *err)
{
	const struct slm_topo_info *info = slm_topo_info(topo);
	*out = NULL;
	if (!info->this_system)
		return slm_error_set(err, SLM_ESTATE,
				     "cannot pin threads from topology '%s': "
				     "it is not this machine",
				     info->source);
	int count = n ? n : info->n_pus;
	int *want = calloc((size_t)count, sizeof(int));
	if (!want)
		return slm_error_set(err, SLM_ENOMEM, "pin: out of memory");
	if (n) {
		for (int i = 0; i < n; i++) {
			if (slm_topo_core_of_cpu(info, cpus[i]) < 0) {
				free(want);
				return slm_error_set(err, SLM_EINVAL,
						     "cannot pin to CPU %d: "
						     "not a CPU slmd may use "
						     "on this machine",
						     cpus[i]);
			}
			want[i] = cpus[i];
		}
		for (int i = 1; i < n; i++)
			for (int j = i; j > 0 && want[j] < want[j - 1]; j--) {
				int tmp = want[j];
				want[j] = want[j - 1];
				want[j - 1] = tmp;
			}
	} else {
		slm_topo_cpus(info, want, count);
	}
	*out = want;
	*n_out = count;
	return 0;
}

/* Compare the calling thread's masks (kernel, hwloc) with want[n]. */
static int check(const struct slm_topo *topo, const int *want, int n,
		 struct slm_error *err)
{
	int max = n + 4096;
	int *got = calloc((size_t)max, sizeof(int));
	if (!got)
		return slm_error_set(err, SLM_ENOMEM, "pin: out of memory");
	char a[256], b[256];
	int rc = 0;
	int n_got = slm_pin_get(0, got, max);
	if (n_got < 0) {
		rc = slm_error_errno(err, SLM_ESYS, errno, "sched_getaffinity");
		goto out;
	}
	n_got = SLM_MIN(n_got, max);
	if (n_got != n || memcmp(got, want, sizeof(int) * (size_t)n)) {
		slm_cpulist_format(want, n, a, sizeof(a));
		slm_cpulist_format(got, n_got, b, sizeof(b));
		rc = slm_error_set(err, SLM_ESYS,
				   "thread pinned to CPUs %s runs on CPUs %s "
				   "(sched_getaffinity): the kernel dropped "
				   "CPUs that are offline or outside slmd's "
				   "cgroup cpuset",
				   a, b);
		goto out;
	}

	hwloc_topology_t hw = slm_topo_hwloc(topo);
	hwloc_bitmap_t expect = hwloc_bitmap_alloc();
	hwloc_bitmap_t bound = hwloc_bitmap_alloc();
	if (!expect || !bound) {
		rc = slm_error_set(err, SLM_ENOMEM, "pin: out of memory");
	} else {
		for (int i = 0; i < n; i++)
			hwloc_bitmap_set(expect, (unsigned)want[i]);
		if (hwloc_get_cpubind(hw, bound, HWLOC_CPUBIND_THREAD)) {
			rc = slm_error_errno(err, SLM_ESYS, errno,
					     "hwloc_get_cpubind");
		} else if (!hwloc_bitmap_isequal(expect, bound)) {
			hwloc_bitmap_list_snprintf(a, sizeof(a), expect);
			hwloc_bitmap_list_snprintf(b, sizeof(b), bound);
			rc = slm_error_set(err, SLM_ESYS,
					   "thread pinned to CPUs %s is bound "
					   "to CPUs %s (hwloc_get_cpubind)",
					   a, b);
		}
	}
	hwloc_bitmap_free(expect);
	hwloc_bitmap_free(bound);
out:
	free(got);
	return rc;
}

int slm_pin_check_self(const struct slm_topo *topo, const int *cpus, int n_cpus,
		       struct slm_error *err)
{
	int *want, n;
	int rc = wanted_cpus(topo, cpus, n_cpus, &want, &n, err);
	if (rc)
		return rc;
	rc = check(topo, want, n, err);
	free(want);
	return rc;
}

/* A kernel CPU mask holding want[n] (ascending); size in *size. */
static cpu_set_t *make_mask(const int *want, int n, size_t *size)
{
	size_t ncpu = (size_t)want[n - 1] + 1;
	cpu_set_t *set = CPU_ALLOC(ncpu);
	if (!set)
		return NULL;
	*size = CPU_ALLOC_SIZE(ncpu);
	CPU_ZERO_S(*size, set);
	for (int i = 0; i < n; i++)
		CPU_SET_S((size_t)want[i], *size, set);
	return set;
}

int slm_pin_self(const struct slm_topo *topo, const int *cpus, int n_cpus,
		 struct slm_error *err)
{
	int *want, n;
	int rc = wanted_cpus(topo, cpus, n_cpus, &want, &n, err);
	if (rc)
		return rc;
	size_t size;
	cpu_set_t *set = make_mask(want, n, &size);
	if (!set) {
		free(want);
		return slm_error_set(err, SLM_ENOMEM, "pin: out of memory");
	}
	if (sched_setaffinity(0, size, set)) {
		char a[256];
		slm_cpulist_format(want, n, a, sizeof(a));
		rc = slm_error_errno(err, SLM_ESYS, errno,
				     "cannot pin thread to CPUs %s "
				     "(sched_setaffinity)",
				     a);
	} else {
		rc = check(topo, want, n, err);
	}
	CPU_FREE(set);
	free(want);
	return rc;
}

struct slm_thread {
	pthread_t handle;
	pid_t tid;
	const struct slm_topo *topo;
	char name[16];
	int *cpus;
	int n_cpus;
	void *(*fn)(void *);
	void *arg;
	sem_t ready; /* posted by the thread once pinned (or failed) */
	int rc;	     /* its pinning result, read after ready */
	struct slm_error err;
};

static void *trampoline(void *p)
{
	struct slm_thread *t = p;
	t->tid = (pid_t)syscall(SYS_gettid);
	pthread_setname_np(pthread_self(), t->name);
	int rc = slm_pin_self(t->topo, t->cpus, t->n_cpus, &t->err);
	void *(*fn)(void *) = t->fn;
	void *arg = t->arg;
	t->rc = rc;
	/* After this post the starter may free t if rc != 0. */
	sem_post(&t->ready);
	if (rc)
		return NULL;
	return fn(arg);
}

static void thread_free(struct slm_thread *t)
{
	sem_destroy(&t->ready);
	free(t->cpus);
	free(t);
}

int slm_thread_start(const struct slm_topo *topo,
		     const struct slm_thread_params *params,
		     struct slm_thread **out, struct slm_error *err)
{
	*out = NULL;
	struct slm_thread *t = calloc(1, sizeof(*t));
	if (!t)
		return slm_error_set(err, SLM_ENOMEM, "thread: out of memory");
	t->topo = topo;
	snprintf(t->name, sizeof(t->name), "%s",
		 params->name ? params->name : "slm");
	t->fn = params->fn;
	t->arg = params->arg;
	int rc = wanted_cpus(topo, params->cpus, params->n_cpus, &t->cpus,
			     &t->n_cpus, err);
	if (rc) {
		slm_error_prefix(err, "thread %s: ", t->name);
		free(t);
		return rc;
	}
	sem_init(&t->ready, 0, 0);

	/* The thread starts on its CPUs (its first stack pages are touched
	 * there), then pins itself again and checks. */
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	size_t size;
	cpu_set_t *mask = make_mask(t->cpus, t->n_cpus, &size);
	if (mask)
		pthread_attr_setaffinity_np(&attr, size, mask);
	int e = mask ? pthread_create(&t->handle, &attr, trampoline, t)
		     : ENOMEM;
	pthread_attr_destroy(&attr);
	CPU_FREE(mask);
	if (e) {
		char a[256];
		slm_cpulist_format(t->cpus, t->n_cpus, a, sizeof(a));
		rc = slm_error_errno(err, e == ENOMEM ? SLM_ENOMEM : SLM_ESYS,
				     e, "cannot start thread %s on CPUs %s",
				     t->name, a);
		thread_free(t);
		return rc;
	}
	while (sem_wait(&t->ready) && errno == EINTR)
		;
	if (t->rc) {
		pthread_join(t->handle, NULL);
		rc = slm_error_set(err, t->rc, "thread %s: %s", t->name,
				   t->err.msg);
		thread_free(t);
		return rc;
	}
	*out = t;
	return 0;
}

int slm_thread_start_planned(const struct slm_topo *topo,
			     const struct slm_plan_thread *planned,
			     void *(*fn)(void *arg), void *arg,
			     struct slm_thread **out, struct slm_error *err)
{
	struct slm_thread_params p = {
		.name = planned->name,
		.cpus = planned->cpu >= 0 ? &planned->cpu : NULL,
		.n_cpus = planned->cpu >= 0 ? 1 : 0,
		.fn = fn,
		.arg = arg,
	};
	return slm_thread_start(topo, &p, out, err);
}

pid_t slm_thread_tid(const struct slm_thread *t)
{
	return t->tid;
}

void *slm_thread_join(struct slm_thread *t)
{
	void *result = NULL;
	if (!t)
		return NULL;
	pthread_join(t->handle, &result);
	thread_free(t);
	return result;
}
