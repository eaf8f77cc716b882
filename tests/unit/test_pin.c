/* Pinning on the real machine: threads are where the plan says. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numa/pin.h"
#include "numa/placement.h"
#include "numa/topology.h"
#include "tests/unit/harness.h"

static struct slm_topo *topo;
static cpu_set_t saved; /* the runner's affinity, restored after each */

static int setup(void)
{
	struct slm_error err = {0};
	if (sched_getaffinity(0, sizeof(saved), &saved))
		return 1;
	return slm_topo_open("", &topo, &err) ? 1 : 0;
}

static int teardown(void)
{
	slm_topo_close(topo);
	topo = NULL;
	return 0;
}

static void restore(void)
{
	CU_ASSERT_EQUAL(sched_setaffinity(0, sizeof(saved), &saved), 0);
}

/* The calling thread's CPUs from the kernel, as a list. */
static int my_cpus(int *cpus, int max)
{
	int n = slm_pin_get(0, cpus, max);
	CU_ASSERT(n >= 0);
	return n;
}

static void test_pin_each_cpu(void)
{
	const struct slm_topo_info *info = slm_topo_info(topo);
	int all[4096];
	int n_all = slm_topo_cpus(info, all, 4096);
	for (int i = 0; i < n_all; i++) {
		struct slm_error err = {0};
		CU_ASSERT_EQUAL(slm_pin_self(topo, &all[i], 1, &err), 0);
		int got[8];
		CU_ASSERT_EQUAL(my_cpus(got, 8), 1);
		CU_ASSERT_EQUAL(got[0], all[i]);
		CU_ASSERT_EQUAL(sched_getcpu(), all[i]);
		CU_ASSERT_EQUAL(slm_pin_check_self(topo, &all[i], 1, &err), 0);
	}
	/* Unpinned means every CPU of the topology. */
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_pin_self(topo, NULL, 0, &err), 0);
	int got[4096];
	CU_ASSERT_EQUAL(my_cpus(got, 4096), n_all);
	CU_ASSERT(memcmp(got, all, sizeof(int) * (size_t)n_all) == 0);
	restore();
}

/* A mask that differs from the request is caught, both ways. */
static void test_check_catches(void)
{
	const struct slm_topo_info *info = slm_topo_info(topo);
	if (info->n_pus < 2) {
		slm_test_skip("one CPU: no mask that differs from the request");
		return;
	}
	int all[4096];
	slm_topo_cpus(info, all, 4096);
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(all[0], &one);
	CU_ASSERT_EQUAL_FATAL(sched_setaffinity(0, sizeof(one), &one), 0);
	struct slm_error err = {0};
	/* The kernel has {all[0]}; we claim {all[0], all[1]}. */
	CU_ASSERT_EQUAL(slm_pin_check_self(topo, all, 2, &err), SLM_ESYS);
	char want[64];
	snprintf(want, sizeof(want), "runs on CPUs %d", all[0]);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, want));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "sched_getaffinity"));
	/* And the other way round. */
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_pin_check_self(topo, &all[1], 1, &err), SLM_ESYS);
	restore();
}

static void test_refused(void)
{
	struct slm_error err = {0};
	int bad = 4095;
	CU_ASSERT_EQUAL(slm_pin_self(topo, &bad, 1, &err), SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "CPU 4095"));
	/* Nothing changed. */
	cpu_set_t now;
	CU_ASSERT_EQUAL(sched_getaffinity(0, sizeof(now), &now), 0);
	CU_ASSERT(CPU_EQUAL(&now, &saved));

	struct slm_topo *synth = NULL;
	CU_ASSERT_EQUAL_FATAL(
		slm_topo_open("synthetic:numa:1 core:2 pu:1", &synth, &err), 0);
	int cpu = 0;
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_pin_self(synth, &cpu, 1, &err), SLM_ESTATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not this machine"));
	slm_topo_close(synth);
}

/* What a started thread saw from the inside. */
struct seen {
	int n_cpus;
	int cpus[64];
	int cpu_now;
	pid_t tid;
	pthread_barrier_t *hold; /* keep every thread alive until checked */
};

static void *record(void *p)
{
	struct seen *s = p;
	s->n_cpus = slm_pin_get(0, s->cpus, 64);
	s->cpu_now = sched_getcpu();
	pthread_barrier_wait(s->hold);
	pthread_barrier_wait(s->hold);
	return s;
}

static void comm_of(pid_t tid, char *buf, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
	/* A /proc file has no size: read it line-wise. */
	FILE *f = fopen(path, "r");
	buf[0] = '\0';
	if (f) {
		if (!fgets(buf, (int)size, f))
			buf[0] = '\0';
		fclose(f);
	}
	buf[strcspn(buf, "\n")] = '\0';
}

/* Start every thread of this machine's plan; each is where the plan
 * says, from the inside and from the outside, under its name. */
static void check_plan_threads(const char *ctl_core)
{
	const struct slm_topo_info *info = slm_topo_info(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	p.ctl_core = ctl_core;
	struct slm_plan *plan = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(slm_plan_create(info, &p, &plan, &err), 0);
	int n = plan->n_threads;
	struct slm_thread **th = calloc((size_t)n, sizeof(*th));
	struct seen *seen = calloc((size_t)n, sizeof(*seen));
	CU_ASSERT_PTR_NOT_NULL_FATAL(th);
	CU_ASSERT_PTR_NOT_NULL_FATAL(seen);
	pthread_barrier_t hold;
	pthread_barrier_init(&hold, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		seen[i].hold = &hold;
		CU_ASSERT_EQUAL_FATAL(slm_thread_start_planned(
					      topo, &plan->threads[i], record,
					      &seen[i], &th[i], &err),
				      0);
	}
	pthread_barrier_wait(&hold); /* every thread has looked */
	int all[4096];
	int n_all = slm_topo_cpus(info, all, 4096);
	for (int i = 0; i < n; i++) {
		const struct slm_plan_thread *pt = &plan->threads[i];
		const int *want = pt->cpu >= 0 ? &pt->cpu : all;
		int n_want = pt->cpu >= 0 ? 1 : n_all;
		/* Inside. */
		CU_ASSERT_EQUAL(seen[i].n_cpus, n_want);
		CU_ASSERT(memcmp(seen[i].cpus, want,
				 sizeof(int) * (size_t)SLM_MIN(n_want, 64)) ==
			  0);
		if (pt->cpu >= 0)
			CU_ASSERT_EQUAL(seen[i].cpu_now, pt->cpu);
		/* Outside, by thread id, while it still runs. */
		int got[4096];
		CU_ASSERT_EQUAL(slm_pin_get(slm_thread_tid(th[i]), got, 4096),
				n_want);
		CU_ASSERT(memcmp(got, want, sizeof(int) * (size_t)n_want) == 0);
		char comm[32];
		comm_of(slm_thread_tid(th[i]), comm, sizeof(comm));
		CU_ASSERT_STRING_EQUAL(comm, pt->name);
	}
	pthread_barrier_wait(&hold); /* let them end */
	for (int i = 0; i < n; i++)
		CU_ASSERT_PTR_EQUAL(slm_thread_join(th[i]), &seen[i]);
	pthread_barrier_destroy(&hold);
	free(th);
	free(seen);
	slm_plan_destroy(plan);
}

static void test_plan_threads(void)
{
	check_plan_threads("auto");
	check_plan_threads("none");
	/* The starter's own affinity is untouched. */
	cpu_set_t now;
	CU_ASSERT_EQUAL(sched_getaffinity(0, sizeof(now), &now), 0);
	CU_ASSERT(CPU_EQUAL(&now, &saved));
}

static int ran;

static void *must_not_run(void *arg)
{
	ran = 1;
	return arg;
}

static void test_start_refused(void)
{
	int bad = 4095;
	struct slm_thread_params p = {.name = "slm-bad",
				      .cpus = &bad,
				      .n_cpus = 1,
				      .fn = must_not_run};
	struct slm_thread *t = (struct slm_thread *)1;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_thread_start(topo, &p, &t, &err), SLM_EINVAL);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "thread slm-bad"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "CPU 4095"));
	CU_ASSERT_EQUAL(ran, 0);
}

SLM_SUITE("pin", setup, teardown, {"pin_each_cpu", test_pin_each_cpu},
	  {"check_catches", test_check_catches}, {"refused", test_refused},
	  {"plan_threads", test_plan_threads},
	  {"start_refused", test_start_refused})
