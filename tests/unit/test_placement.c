#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "numa/placement.h"
#include "numa/topology.h"
#include "tests/unit/harness.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

static const char two_sockets[] = "synthetic:package:2 numa:1 core:8 pu:2";

static struct slm_topo *topo_open(const char *spec)
{
	struct slm_topo *t = NULL;
	struct slm_error err = {0};
	if (slm_topo_open(spec, &t, &err))
		printf("\n    %s: %s\n", spec, err.msg);
	CU_ASSERT_PTR_NOT_NULL(t);
	return t;
}

static struct slm_plan *plan_ok(const struct slm_topo_info *t,
				const struct slm_plan_params *p)
{
	struct slm_plan *plan = NULL;
	struct slm_error err = {0};
	if (slm_plan_create(t, p, &plan, &err))
		printf("\n    plan refused: %s\n", err.msg);
	CU_ASSERT_PTR_NOT_NULL(plan);
	return plan;
}

static void plan_refused(const struct slm_topo_info *t,
			 const struct slm_plan_params *p,
			 const char *const *fragments)
{
	struct slm_plan *plan = (struct slm_plan *)1;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_plan_create(t, p, &plan, &err), SLM_ECONFIG);
	CU_ASSERT_PTR_NULL(plan);
	for (; *fragments; fragments++) {
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, *fragments));
		if (!strstr(err.msg, *fragments))
			printf("\n    message '%s' lacks '%s'\n", err.msg,
			       *fragments);
	}
}

#define REFUSED(t, p, ...) \
	plan_refused(t, p, (const char *const[]){__VA_ARGS__, NULL})

static bool has_warning(const struct slm_plan *plan, const char *fragment)
{
	for (int i = 0; i < plan->n_warnings; i++)
		if (strstr(plan->warnings[i], fragment))
			return true;
	return false;
}

static bool contains(const int *v, int n, int x)
{
	for (int i = 0; i < n; i++)
		if (v[i] == x)
			return true;
	return false;
}

/*
 * What every plan must satisfy, whatever the config: threads on CPUs of
 * the machine; one busy thread per CPU (a shared dataplane excepted), and
 * per core unless SMT siblings are allowed; busy, ctl and idle CPUs cover
 * the machine exactly; groups, threads and memory agree.
 */
static void check_plan(const struct slm_topo_info *t,
		       const struct slm_plan *plan, bool smt)
{
	int *busy_on_cpu = calloc(4096, sizeof(int));
	int *busy_on_core = calloc((size_t)t->n_cores, sizeof(int));
	CU_ASSERT_PTR_NOT_NULL_FATAL(busy_on_cpu);
	CU_ASSERT_PTR_NOT_NULL_FATAL(busy_on_core);
	CU_ASSERT_NOT_EQUAL(plan->weights, SLM_WEIGHTS_AUTO);
	CU_ASSERT(plan->n_groups >= 1);
	CU_ASSERT(plan->n_dataplane >= 1);
	CU_ASSERT_EQUAL(plan->threads[plan->n_dataplane].role, SLM_ROLE_CTL);
	CU_ASSERT_EQUAL(plan->threads[plan->n_dataplane].cpu, plan->ctl_cpu);
	for (int i = 0; i < plan->n_threads; i++) {
		const struct slm_plan_thread *th = &plan->threads[i];
		CU_ASSERT(strlen(th->name) > 0 && strlen(th->name) <= 15);
		for (int k = 0; k < i; k++)
			CU_ASSERT(strcmp(th->name, plan->threads[k].name));
		CU_ASSERT(slm_topo_node_index(t, th->node) >= 0);
		if (th->cpu < 0) {
			CU_ASSERT_EQUAL(th->role, SLM_ROLE_CTL);
			continue;
		}
		int core = slm_topo_core_of_cpu(t, th->cpu);
		CU_ASSERT_FATAL(core >= 0);
		if (th->role == SLM_ROLE_CTL)
			continue;
		busy_on_cpu[th->cpu]++;
		busy_on_core[core]++;
		if (th->role == SLM_ROLE_DATAPLANE) {
			CU_ASSERT_EQUAL(plan->dataplane_cpus[th->index],
					th->cpu);
			CU_ASSERT_EQUAL(th->shared, plan->dataplane_shared);
		}
	}
	for (int c = 0; c < t->n_cores; c++) {
		for (int p = 0; p < t->cores[c].n_pus; p++) {
			int cpu = t->cores[c].pus[p];
			int want = 1;
			if (plan->dataplane_shared &&
			    contains(plan->dataplane_cpus, plan->n_dataplane,
				     cpu))
				want = 2;
			CU_ASSERT(busy_on_cpu[cpu] <= want);
			/* Every CPU: busy, ctl's, or listed idle; not two. */
			bool idle =
				contains(plan->idle_cpus, plan->n_idle, cpu);
			CU_ASSERT_EQUAL(idle, !busy_on_cpu[cpu] &&
						      cpu != plan->ctl_cpu);
		}
		if (!smt)
			CU_ASSERT(busy_on_core[c] <= 1 ||
				  (plan->dataplane_shared &&
				   busy_on_core[c] == 2));
	}
	for (int i = 1; i < plan->n_idle; i++)
		CU_ASSERT(plan->idle_cpus[i] > plan->idle_cpus[i - 1]);
	for (int g = 0; g < plan->n_groups; g++) {
		const struct slm_plan_group *gr = &plan->groups[g];
		CU_ASSERT(gr->n_cpus >= 1);
		CU_ASSERT(gr->weights_copy >= 0 &&
			  gr->weights_copy < plan->n_copies);
		const struct slm_plan_copy *copy =
			&plan->copies[gr->weights_copy];
		if (plan->weights == SLM_WEIGHTS_REPLICATE) {
			CU_ASSERT_EQUAL(copy->n_nodes, 1);
			CU_ASSERT_EQUAL(copy->nodes[0], gr->node);
		}
		for (int i = 0; i < gr->n_cpus; i++) {
			if (i)
				CU_ASSERT(gr->cpus[i] > gr->cpus[i - 1]);
			const struct slm_plan_thread *th =
				&plan->threads[gr->first_thread + i];
			CU_ASSERT_EQUAL(th->role, SLM_ROLE_WORKER);
			CU_ASSERT_EQUAL(th->group, g);
			CU_ASSERT_EQUAL(th->index, i);
			CU_ASSERT_EQUAL(th->cpu, gr->cpus[i]);
			CU_ASSERT_EQUAL(th->node, gr->node);
			int core = slm_topo_core_of_cpu(t, gr->cpus[i]);
			if (!gr->spans_nodes)
				CU_ASSERT_EQUAL(
					t->nodes[t->cores[core].node].os_index,
					gr->node);
		}
	}
	uint64_t weights = 0;
	for (int n = 0; n < plan->n_nodes; n++) {
		const struct slm_plan_node *nd = &plan->nodes[n];
		CU_ASSERT_EQUAL(nd->os_index, t->nodes[n].os_index);
		CU_ASSERT_EQUAL(nd->mem_bytes, t->nodes[n].mem_bytes);
		int groups = 0;
		for (int g = 0; g < plan->n_groups; g++)
			groups += plan->groups[g].node == nd->os_index;
		CU_ASSERT_EQUAL(nd->n_groups, groups);
		CU_ASSERT(nd->weight_bytes + nd->kv_bytes + nd->reserve_bytes <=
			  nd->mem_bytes);
		weights += nd->weight_bytes;
	}
	uint64_t copies = plan->weights == SLM_WEIGHTS_REPLICATE
				  ? (uint64_t)plan->n_copies
				  : 1;
	CU_ASSERT_EQUAL(weights, plan->weight_bytes * copies);
	free(busy_on_cpu);
	free(busy_on_core);
}

/* Every core of the machine carries exactly one busy thread: the
 * dedicated dataplane cores plus the groups' cores partition it. */
static void check_every_core_once(const struct slm_topo_info *t,
				  const struct slm_plan *plan)
{
	CU_ASSERT_FALSE(plan->dataplane_shared);
	for (int c = 0; c < t->n_cores; c++) {
		int uses = 0;
		for (int i = 0; i < plan->n_threads; i++)
			uses += plan->threads[i].role != SLM_ROLE_CTL &&
				slm_topo_core_of_cpu(t, plan->threads[i].cpu) ==
					c;
		CU_ASSERT_EQUAL(uses, 1);
	}
}

static void test_one_node_small(void)
{
	/* This machine's shape: 2 cores, 1 node, no SMT. */
	struct slm_topo *topo = topo_open("synthetic:numa:1 core:2 pu:1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	const struct slm_topo_info *t = slm_topo_info(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	struct slm_plan *plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	/* Too few cores: the dataplane shares the last worker core, says
	 * so, and the ctl thread goes with it; workers keep both cores. */
	CU_ASSERT_EQUAL(plan->n_groups, 1);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 2);
	CU_ASSERT_EQUAL(plan->groups[0].cpus[0], 0);
	CU_ASSERT_EQUAL(plan->n_dataplane, 1);
	CU_ASSERT_TRUE(plan->dataplane_shared);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 1);
	CU_ASSERT_EQUAL(plan->ctl_cpu, 1);
	CU_ASSERT_TRUE(has_warning(plan, "shares CPU 1 with worker group 0"));
	CU_ASSERT_EQUAL(plan->n_idle, 0);
	CU_ASSERT_EQUAL(plan->weights, SLM_WEIGHTS_REPLICATE);
	CU_ASSERT_EQUAL(plan->n_copies, 1);
	slm_plan_destroy(plan);

	/* Asked for a dataplane core of its own: it gets it. */
	p.dataplane_cores = "1";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 1);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 1);
	CU_ASSERT_EQUAL(plan->groups[0].cpus[0], 0);
	CU_ASSERT_EQUAL(plan->ctl_cpu, 1);
	CU_ASSERT_EQUAL(plan->n_warnings, 0);
	slm_plan_destroy(plan);

	/* Two of its own would leave no worker: shared, with a warning. */
	p.dataplane_cores = "2";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	CU_ASSERT_TRUE(plan->dataplane_shared);
	CU_ASSERT_EQUAL(plan->n_dataplane, 2);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 2);
	CU_ASSERT_TRUE(has_warning(plan, "too few cores"));
	slm_plan_destroy(plan);

	/* ctl not pinned. */
	p.dataplane_cores = "auto";
	p.ctl_core = "none";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	CU_ASSERT_EQUAL(plan->ctl_cpu, -1);
	slm_plan_destroy(plan);

	p.ctl_core = "auto";
	p.dataplane_cores = "cpus:0-1";
	REFUSED(t, &p, "numa.dataplane_cores = 0-1 takes every CPU");
	slm_topo_close(topo);
}

static void test_one_node_threshold(void)
{
	/* Three cores: still shared; four: a core of its own. */
	struct slm_topo *topo = topo_open("synthetic:numa:1 core:3 pu:1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	struct slm_plan *plan = plan_ok(slm_topo_info(topo), &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(slm_topo_info(topo), plan, false);
	CU_ASSERT_TRUE(plan->dataplane_shared);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 2);
	slm_plan_destroy(plan);
	slm_topo_close(topo);

	topo = topo_open("synthetic:numa:1 core:4 pu:1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	plan = plan_ok(slm_topo_info(topo), &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(slm_topo_info(topo), plan, false);
	check_every_core_once(slm_topo_info(topo), plan);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 3);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 3);
	CU_ASSERT_EQUAL(plan->n_warnings, 0);
	slm_plan_destroy(plan);
	slm_topo_close(topo);
}

static void test_one_node_smt(void)
{
	struct slm_topo *topo = topo_open("synthetic:package:1 numa:1 core:8 "
					  "pu:2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	const struct slm_topo_info *t = slm_topo_info(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	struct slm_plan *plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	/* Dataplane on the highest core; ctl on its spare thread; workers
	 * on one thread of each other core; the siblings idle. */
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 14);
	CU_ASSERT_EQUAL(plan->ctl_cpu, 15);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 7);
	for (int i = 0; i < 7; i++)
		CU_ASSERT_EQUAL(plan->groups[0].cpus[i], 2 * i);
	CU_ASSERT_EQUAL(plan->n_idle, 7);
	for (int i = 0; i < plan->n_idle; i++)
		CU_ASSERT_EQUAL(plan->idle_cpus[i] % 2, 1);
	slm_plan_destroy(plan);

	/* Siblings allowed: every hardware thread busy. */
	p.allow_smt_siblings = true;
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, true);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 15);
	CU_ASSERT_EQUAL(plan->ctl_cpu, 15);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 15);
	CU_ASSERT_EQUAL(plan->n_idle, 0);
	slm_plan_destroy(plan);

	/* Naming both threads of a core needs the siblings allowed. */
	p.allow_smt_siblings = false;
	p.dataplane_cores = "cpus:2-3";
	REFUSED(t, &p, "numa.dataplane_cores: CPU 3 and CPU 2",
		"hardware threads of one core",
		"numa.allow_smt_siblings = true");
	p.allow_smt_siblings = true;
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, true);
	CU_ASSERT_EQUAL(plan->n_dataplane, 2);
	CU_ASSERT_FALSE(plan->dataplane_shared);
	slm_plan_destroy(plan);

	/* A named CPU that is the second thread of its core runs there. */
	p.allow_smt_siblings = false;
	p.dataplane_cores = "cpus:3";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 3);
	CU_ASSERT_EQUAL(plan->ctl_cpu, 2);
	CU_ASSERT_FALSE(
		contains(plan->groups[0].cpus, plan->groups[0].n_cpus, 2));
	slm_plan_destroy(plan);
	slm_topo_close(topo);
}

static void test_two_nodes(void)
{
	struct slm_topo *topo = topo_open(two_sockets);
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	const struct slm_topo_info *t = slm_topo_info(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	p.weight_bytes = 300 * MiB;
	p.kv_bytes_per_group = 100 * MiB;
	struct slm_plan *plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_FALSE(plan->this_system);
	CU_ASSERT_EQUAL(plan->n_groups, 2);
	CU_ASSERT_EQUAL(plan->groups[0].node, 0);
	CU_ASSERT_EQUAL(plan->groups[1].node, 1);
	/* The dataplane takes node 0's highest core. */
	CU_ASSERT_EQUAL(plan->n_dataplane, 1);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 14);
	CU_ASSERT_EQUAL(plan->ctl_cpu, 15);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 7);
	CU_ASSERT_EQUAL(plan->groups[1].n_cpus, 8);
	CU_ASSERT_EQUAL(plan->groups[1].cpus[0], 16);
	/* Replicate: a copy per node, each group reads its own. */
	CU_ASSERT_EQUAL(plan->weights, SLM_WEIGHTS_REPLICATE);
	CU_ASSERT_EQUAL(plan->n_copies, 2);
	for (int g = 0; g < 2; g++) {
		CU_ASSERT_EQUAL(plan->groups[g].weights_copy, g);
		CU_ASSERT_EQUAL(plan->nodes[g].weight_bytes, 300 * MiB);
		CU_ASSERT_EQUAL(plan->nodes[g].kv_bytes, 100 * MiB);
		CU_ASSERT_EQUAL(plan->nodes[g].reserve_bytes, 512 * MiB);
	}
	CU_ASSERT_EQUAL(plan->n_warnings, 0);
	slm_plan_destroy(plan);

	/* The dataplane on the NIC's node. */
	p.dataplane_node = 1;
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 30);
	CU_ASSERT_EQUAL(plan->threads[0].node, 1);
	CU_ASSERT_EQUAL(plan->ctl_cpu, 31);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 8);
	CU_ASSERT_EQUAL(plan->groups[1].n_cpus, 7);
	slm_plan_destroy(plan);
	p.dataplane_node = 2;
	REFUSED(t, &p, "numa.dataplane_node = 2", "no such NUMA node");

	/* Three dataplane cores of their own. */
	p.dataplane_node = -1;
	p.dataplane_cores = "3";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_EQUAL(plan->n_dataplane, 3);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(plan->dataplane_cpus[i], 14 - 2 * i);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 5);
	slm_plan_destroy(plan);

	/* Explicit CPUs: every core of node 1 goes: no group there. */
	p.dataplane_cores = "cpus:16,18,20,22,24,26,28,30";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_EQUAL(plan->n_groups, 1);
	CU_ASSERT_EQUAL(plan->groups[0].node, 0);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 8);
	CU_ASSERT_TRUE(has_warning(plan, "takes every CPU of worker group 1"));
	CU_ASSERT_EQUAL(plan->nodes[1].n_groups, 0);
	CU_ASSERT_EQUAL(plan->nodes[1].weight_bytes, 0);
	CU_ASSERT_EQUAL(plan->nodes[1].reserve_bytes, 0);
	slm_plan_destroy(plan);

	p.dataplane_cores = "cpus:40";
	REFUSED(t, &p, "numa.dataplane_cores: CPU 40 is not on this machine",
		"0-31");
	p.dataplane_cores = "two";
	REFUSED(t, &p, "numa.dataplane_cores = 'two'", "cpus:LIST");
	p.dataplane_cores = "65";
	REFUSED(t, &p, "a count from 0 to 64");
	p.dataplane_cores = "cpus:1-";
	REFUSED(t, &p, "numa.dataplane_cores", "not a CPU number");
	p.dataplane_cores = "auto";
	p.ctl_core = "99";
	REFUSED(t, &p, "numa.ctl_core = '99'");
	p.ctl_core = "7";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	CU_ASSERT_EQUAL(plan->ctl_cpu, 7);
	slm_plan_destroy(plan);
	slm_topo_close(topo);
}

static void test_four_nodes(void)
{
	/* Two sockets with two sub-NUMA clusters each. */
	struct slm_topo *topo = topo_open("synthetic:package:2 numa:2 core:4 "
					  "pu:2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	const struct slm_topo_info *t = slm_topo_info(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	p.weight_bytes = 400 * MiB;
	struct slm_plan *plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_EQUAL(plan->n_groups, 4);
	for (int g = 0; g < 4; g++) {
		CU_ASSERT_EQUAL(plan->groups[g].node, g);
		CU_ASSERT_EQUAL(plan->groups[g].n_cpus, g == 0 ? 3 : 4);
		CU_ASSERT_EQUAL(plan->groups[g].cpus[0], 8 * g);
	}
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 6);
	CU_ASSERT_EQUAL(plan->weights, SLM_WEIGHTS_REPLICATE);
	CU_ASSERT_EQUAL(plan->n_copies, 4);
	slm_plan_destroy(plan);

	/* One group per package: each spans two nodes. */
	p.groups = "package";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_EQUAL(plan->n_groups, 2);
	CU_ASSERT_TRUE(plan->groups[0].spans_nodes);
	/* Node 0 and node 1 each have 4 cores, less the dataplane's on
	 * node 1 (the highest CPU of package 0): node 0 is the home. */
	CU_ASSERT_EQUAL(plan->groups[0].node, 0);
	CU_ASSERT_EQUAL(plan->groups[1].node, 2);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 7);
	CU_ASSERT_TRUE(has_warning(plan, "group 0 spans NUMA nodes"));
	CU_ASSERT_EQUAL(plan->n_copies, 2);
	slm_plan_destroy(plan);

	/* Interleave: one copy spread over the four nodes, bytes exact. */
	p.groups = "auto";
	p.weights = SLM_WEIGHTS_INTERLEAVE;
	p.weight_bytes = 4 * 100 * MiB + 3;
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	CU_ASSERT_EQUAL(plan->weights, SLM_WEIGHTS_INTERLEAVE);
	CU_ASSERT_EQUAL(plan->n_copies, 1);
	CU_ASSERT_EQUAL(plan->copies[0].n_nodes, 4);
	for (int n = 0; n < 4; n++) {
		CU_ASSERT_EQUAL(plan->copies[0].nodes[n], n);
		CU_ASSERT_EQUAL(plan->nodes[n].weight_bytes,
				100 * MiB + (n < 3));
		CU_ASSERT_EQUAL(plan->groups[n].weights_copy, 0);
	}
	slm_plan_destroy(plan);

	/* Single: all of it on group 0's node. */
	p.weights = SLM_WEIGHTS_SINGLE;
	p.weight_bytes = 400 * MiB;
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	CU_ASSERT_EQUAL(plan->n_copies, 1);
	CU_ASSERT_EQUAL(plan->copies[0].n_nodes, 1);
	CU_ASSERT_EQUAL(plan->copies[0].nodes[0], 0);
	CU_ASSERT_EQUAL(plan->nodes[0].weight_bytes, 400 * MiB);
	for (int n = 1; n < 4; n++)
		CU_ASSERT_EQUAL(plan->nodes[n].weight_bytes, 0);
	slm_plan_destroy(plan);
	slm_topo_close(topo);
}

static void test_weights_refused(void)
{
	struct slm_topo *topo = topo_open(two_sockets); /* 1 GiB a node */
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	const struct slm_topo_info *t = slm_topo_info(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);

	/* 512 MiB + 512 MiB reserve is exactly a node: fits. */
	p.weight_bytes = 512 * MiB;
	struct slm_plan *plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	CU_ASSERT_EQUAL(plan->weights, SLM_WEIGHTS_REPLICATE);
	slm_plan_destroy(plan);

	/* One byte more: replicate does not fit; auto interleaves. */
	p.weight_bytes = 512 * MiB + 1;
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	CU_ASSERT_EQUAL(plan->weights, SLM_WEIGHTS_INTERLEAVE);
	CU_ASSERT_EQUAL(plan->nodes[0].weight_bytes +
				plan->nodes[1].weight_bytes,
			512 * MiB + 1);
	slm_plan_destroy(plan);

	/* Asked for replicate: refused, with the numbers and the way out. */
	p.weights = SLM_WEIGHTS_REPLICATE;
	REFUSED(t, &p, "numa.weights = replicate puts 512.0 MiB", "node 0",
		"numa.mem_reserve 512 MiB", "its 1 GiB",
		"set numa.weights = interleave");

	/* KV counts too. */
	p.weight_bytes = 300 * MiB;
	p.kv_bytes_per_group = 300 * MiB;
	REFUSED(t, &p, "KV 300 MiB");
	p.weights = SLM_WEIGHTS_AUTO;
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	CU_ASSERT_EQUAL(plan->weights, SLM_WEIGHTS_INTERLEAVE);
	slm_plan_destroy(plan);

	/* Nothing fits: both tries named. */
	p.kv_bytes_per_group = 0;
	p.weight_bytes = 3 * GiB;
	REFUSED(t, &p, "the model's weights (3 GiB) do not fit",
		"numa.weights = replicate", "numa.weights = interleave",
		"smaller model");
	p.weights = SLM_WEIGHTS_SINGLE;
	p.weight_bytes = 600 * MiB;
	REFUSED(t, &p, "numa.weights = single puts 600 MiB", "node 0");
	/* Overflowing sizes are refused, not wrapped. */
	p.weights = SLM_WEIGHTS_REPLICATE;
	p.weight_bytes = UINT64_MAX - 10;
	REFUSED(t, &p, "do not fit");
	p.weight_bytes = 1;
	p.kv_bytes_per_group = UINT64_MAX / 2 + 1;
	REFUSED(t, &p, "do not fit");
	slm_topo_close(topo);
}

/* Topologies the placement reads from plain data: asymmetric memory. */
static void test_weights_asymmetric(void)
{
	struct slm_topo_core cores[4] = {
		{.id = 0, .node = 0, .n_pus = 1, .pus = {0}, .llc = -1},
		{.id = 1, .node = 0, .n_pus = 1, .pus = {1}, .llc = -1},
		{.id = 2, .node = 1, .n_pus = 1, .pus = {2}, .llc = -1},
		{.id = 3, .node = 1, .n_pus = 1, .pus = {3}, .llc = -1},
	};
	int node_cores[4] = {0, 1, 2, 3};
	struct slm_topo_node nodes[2] = {
		{.os_index = 0,
		 .mem_bytes = 8 * GiB,
		 .n_cores = 2,
		 .cores = node_cores},
		{.os_index = 1,
		 .mem_bytes = 2 * GiB,
		 .n_cores = 2,
		 .cores = node_cores + 2},
	};
	struct slm_topo_info t = {
		.source = "hand-made",
		.n_packages = 1,
		.n_nodes = 2,
		.nodes = nodes,
		.n_cores = 4,
		.cores = cores,
		.n_pus = 4,
		.mem_bytes = 10 * GiB,
	};
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	p.weight_bytes = 3 * GiB;
	p.weights = SLM_WEIGHTS_REPLICATE;
	REFUSED(&t, &p, "puts 3 GiB of weights on node 1", "its 2 GiB");
	p.weights = SLM_WEIGHTS_AUTO;
	struct slm_plan *plan = plan_ok(&t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(&t, plan, false);
	CU_ASSERT_EQUAL(plan->weights, SLM_WEIGHTS_INTERLEAVE);
	CU_ASSERT_EQUAL(plan->nodes[1].weight_bytes, 1536 * MiB);
	slm_plan_destroy(plan);
	/* Single on node 0 fits where interleave's half would not. */
	p.weight_bytes = 5 * GiB;
	p.weights = SLM_WEIGHTS_SINGLE;
	plan = plan_ok(&t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	CU_ASSERT_EQUAL(plan->nodes[0].weight_bytes, 5 * GiB);
	slm_plan_destroy(plan);
}

static void test_groups(void)
{
	struct slm_topo *topo = topo_open("synthetic:package:1 numa:1 l3:2 "
					  "core:4 pu:1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	const struct slm_topo_info *t = slm_topo_info(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	p.groups = "llc";
	struct slm_plan *plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	check_every_core_once(t, plan);
	CU_ASSERT_EQUAL(plan->n_groups, 2);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 4);
	CU_ASSERT_EQUAL(plan->groups[1].n_cpus, 3);
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 7);
	/* Two groups on one node share its one copy of the weights. */
	CU_ASSERT_EQUAL(plan->n_copies, 1);
	CU_ASSERT_EQUAL(plan->nodes[0].n_groups, 2);
	slm_plan_destroy(plan);

	/* Explicit sets; CPUs left out stay idle. */
	p.groups = "0-2/4-6";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	CU_ASSERT_EQUAL(plan->n_groups, 2);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 3);
	CU_ASSERT_EQUAL(plan->groups[1].n_cpus,
			2); /* 6 went to the dataplane */
	CU_ASSERT_EQUAL(plan->dataplane_cpus[0], 6);
	CU_ASSERT_EQUAL(plan->n_idle, 2); /* 3 and 7 */
	CU_ASSERT_EQUAL(plan->idle_cpus[0], 3);
	CU_ASSERT_EQUAL(plan->idle_cpus[1], 7);
	slm_plan_destroy(plan);

	p.dataplane_cores = "cpus:7";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(t, plan, false);
	CU_ASSERT_EQUAL(plan->groups[1].n_cpus, 3);
	slm_plan_destroy(plan);
	p.dataplane_cores = "cpus:4";
	REFUSED(t, &p, "CPU 4 is also in group 1 of numa.groups");

	p.dataplane_cores = "auto";
	p.groups = "0-3/3-5";
	REFUSED(t, &p,
		"numa.groups = '0-3/3-5': CPU 3 is in group 0 and "
		"group 1");
	p.groups = "0-9";
	REFUSED(t, &p, "numa.groups: CPU 8 is not on this machine");
	p.groups = "0-3/x";
	REFUSED(t, &p, "numa.groups = '0-3/x'", "'x' is not a CPU");
	p.groups = "sockets";
	REFUSED(t, &p, "numa.groups = 'sockets'");
	p.groups = "/";
	REFUSED(t, &p, "numa.groups = '/'");
	slm_topo_close(topo);

	/* Explicit sets naming both threads of a core. */
	topo = topo_open(two_sockets);
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	p.groups = "0-7/8-15";
	REFUSED(slm_topo_info(topo), &p, "CPU 1 and CPU 0",
		"hardware threads of one core");
	p.allow_smt_siblings = true;
	plan = plan_ok(slm_topo_info(topo), &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	check_plan(slm_topo_info(topo), plan, true);
	CU_ASSERT_EQUAL(plan->groups[0].n_cpus, 8);
	CU_ASSERT_EQUAL(plan->groups[1].n_cpus, 7);
	slm_plan_destroy(plan);

	/* llc without caches in the description: per node, with a word. */
	p.allow_smt_siblings = false;
	p.groups = "llc";
	plan = plan_ok(slm_topo_info(topo), &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	CU_ASSERT_EQUAL(plan->n_groups, 2);
	CU_ASSERT_TRUE(has_warning(plan, "shows no caches"));
	slm_plan_destroy(plan);
	slm_topo_close(topo);
}

static void test_from_config(void)
{
	struct slm_config *cfg = slm_config_create();
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	struct slm_plan_params p, d;
	slm_plan_params_default(&d);
	slm_plan_params_from_config(&p, cfg);
	/* The table's defaults are the module's defaults. */
	CU_ASSERT_STRING_EQUAL(p.groups, d.groups);
	CU_ASSERT_STRING_EQUAL(p.dataplane_cores, d.dataplane_cores);
	CU_ASSERT_STRING_EQUAL(p.ctl_core, d.ctl_core);
	CU_ASSERT_EQUAL(p.dataplane_node, d.dataplane_node);
	CU_ASSERT_EQUAL(p.allow_smt_siblings, d.allow_smt_siblings);
	CU_ASSERT_EQUAL(p.weights, d.weights);
	CU_ASSERT_EQUAL(p.mem_reserve, d.mem_reserve);
	struct slm_error err = {0};
	const char *text = "[numa]\n"
			   "groups = 0-3/4-7\n"
			   "dataplane_cores = cpus:8\n"
			   "dataplane_node = 1\n"
			   "ctl_core = none\n"
			   "allow_smt_siblings = true\n"
			   "weights = interleave\n"
			   "mem_reserve = 1G\n";
	CU_ASSERT_EQUAL_FATAL(slm_config_load_string(cfg, text, "t.conf", &err),
			      0);
	slm_plan_params_from_config(&p, cfg);
	CU_ASSERT_STRING_EQUAL(p.groups, "0-3/4-7");
	CU_ASSERT_STRING_EQUAL(p.dataplane_cores, "cpus:8");
	CU_ASSERT_EQUAL(p.dataplane_node, 1);
	CU_ASSERT_STRING_EQUAL(p.ctl_core, "none");
	CU_ASSERT_TRUE(p.allow_smt_siblings);
	CU_ASSERT_EQUAL(p.weights, SLM_WEIGHTS_INTERLEAVE);
	CU_ASSERT_EQUAL(p.mem_reserve, GiB);
	for (int w = 0; w <= SLM_WEIGHTS_SINGLE; w++) {
		CU_ASSERT_EQUAL(slm_config_set(cfg, "numa.weights",
					       slm_weights_name(w), &err),
				0);
		CU_ASSERT_EQUAL(slm_cfg_enum(cfg, SLM_CFG_NUMA_WEIGHTS), w);
	}
	slm_config_destroy(cfg);
}

static cJSON *member(const cJSON *o, const char *name)
{
	cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
	CU_ASSERT_PTR_NOT_NULL(m);
	return m;
}

static void expect_ints(const cJSON *a, const int *v, int n)
{
	CU_ASSERT_FATAL(cJSON_IsArray(a));
	CU_ASSERT_EQUAL(cJSON_GetArraySize(a), n);
	for (int i = 0; i < n && i < cJSON_GetArraySize(a); i++)
		CU_ASSERT_EQUAL(cJSON_GetArrayItem(a, i)->valuedouble, v[i]);
}

static void test_json_and_table(void)
{
	struct slm_topo *topo = topo_open(two_sockets);
	CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
	const struct slm_topo_info *t = slm_topo_info(topo);
	struct slm_plan_params p;
	slm_plan_params_default(&p);
	p.weight_bytes = 100 * MiB;
	struct slm_plan *plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);

	char *text = slm_plan_json(plan, t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	cJSON *root = cJSON_Parse(text);
	free(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	cJSON *nodes = member(root, "nodes");
	CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(nodes), 2);
	for (int n = 0; n < 2; n++) {
		cJSON *o = cJSON_GetArrayItem(nodes, n);
		CU_ASSERT_EQUAL(member(o, "id")->valuedouble, n);
		CU_ASSERT_EQUAL(member(o, "mem_bytes")->valuedouble,
				(double)GiB);
		int cores[8];
		for (int i = 0; i < 8; i++)
			cores[i] = 16 * n + 2 * i;
		expect_ints(member(o, "cores"), cores, 8);
	}
	cJSON *groups = member(root, "groups");
	CU_ASSERT_EQUAL_FATAL(cJSON_GetArraySize(groups), 2);
	CU_ASSERT_EQUAL(
		member(cJSON_GetArrayItem(groups, 1), "node")->valuedouble, 1);
	expect_ints(member(cJSON_GetArrayItem(groups, 0), "cores"),
		    (int[]){0, 2, 4, 6, 8, 10, 12}, 7);
	expect_ints(member(root, "dataplane_cores"), (int[]){14}, 1);
	CU_ASSERT_EQUAL(member(root, "ctl_core")->valuedouble, 15);
	CU_ASSERT_STRING_EQUAL(member(root, "weights")->valuestring,
			       "replicate");
	CU_ASSERT_EQUAL(cJSON_GetArraySize(member(root, "threads")),
			plan->n_threads);
	cJSON_Delete(root);

	char *table = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&table, &size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(slm_plan_print(plan, t, f), 0);
	fclose(f);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(table, "2 NUMA nodes, 16 cores, 32 CPUs"));
	CU_ASSERT_PTR_NOT_NULL(strstr(table, "for planning: not this machine"));
	CU_ASSERT_PTR_NOT_NULL(strstr(table, "dataplane 0"));
	CU_ASSERT_PTR_NOT_NULL(strstr(table, "16,18,20,22,24,26,28,30"));
	CU_ASSERT_PTR_NOT_NULL(strstr(table, "copy 1 on node 1"));
	free(table);
	/* The start-up log path formats the same table (quietly here). */
	enum slm_log_level level = slm_log_get_level();
	slm_log_set_level(SLM_LOG_ERROR);
	slm_plan_log(plan, t);
	slm_log_set_level(level);
	slm_plan_destroy(plan);

	/* ctl not pinned is null. */
	p.ctl_core = "none";
	plan = plan_ok(t, &p);
	CU_ASSERT_PTR_NOT_NULL_FATAL(plan);
	text = slm_plan_json(plan, t);
	root = cJSON_Parse(text);
	free(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	CU_ASSERT_TRUE(cJSON_IsNull(member(root, "ctl_core")));
	cJSON_Delete(root);
	slm_plan_destroy(plan);
	slm_topo_close(topo);
}

/* Many configurations on many shapes: the invariants always hold. */
static void test_sweep(void)
{
	static const char *const shapes[] = {
		"synthetic:pu:1",
		"synthetic:numa:1 core:2 pu:1",
		"synthetic:package:1 numa:1 core:6 pu:2",
		"synthetic:package:2 numa:1 core:8 pu:2",
		"synthetic:package:2 numa:2 core:4 pu:2",
		"synthetic:package:4 numa:1 l3:2 core:2 pu:4",
	};
	static const char *const groups[] = {"auto", "llc", "package"};
	static const char *const dps[] = {"auto", "0", "1", "2", "5"};
	static const char *const ctls[] = {"auto", "none"};
	int plans = 0;
	for (size_t s = 0; s < SLM_ARRAY_LEN(shapes); s++) {
		struct slm_topo *topo = topo_open(shapes[s]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(topo);
		const struct slm_topo_info *t = slm_topo_info(topo);
		for (size_t g = 0; g < SLM_ARRAY_LEN(groups); g++)
			for (size_t d = 0; d < SLM_ARRAY_LEN(dps); d++)
				for (size_t c = 0; c < SLM_ARRAY_LEN(ctls); c++)
					for (int smt = 0; smt < 2; smt++) {
						struct slm_plan_params p;
						slm_plan_params_default(&p);
						p.groups = groups[g];
						p.dataplane_cores = dps[d];
						p.ctl_core = ctls[c];
						p.allow_smt_siblings = smt;
						p.weight_bytes = 200 * MiB;
						struct slm_plan *plan =
							plan_ok(t, &p);
						if (!plan)
							continue;
						check_plan(t, plan, smt);
						if (!plan->dataplane_shared &&
						    !smt)
							check_every_core_once(
								t, plan);
						slm_plan_destroy(plan);
						plans++;
					}
		slm_topo_close(topo);
	}
	CU_ASSERT_EQUAL(plans, 6 * 3 * 5 * 2 * 2);
}

SLM_SUITE("placement", NULL, NULL, {"one_node_small", test_one_node_small},
	  {"one_node_threshold", test_one_node_threshold},
	  {"one_node_smt", test_one_node_smt}, {"two_nodes", test_two_nodes},
	  {"four_nodes", test_four_nodes},
	  {"weights_refused", test_weights_refused},
	  {"weights_asymmetric", test_weights_asymmetric},
	  {"groups", test_groups}, {"from_config", test_from_config},
	  {"json_and_table", test_json_and_table}, {"sweep", test_sweep})
