#include <dirent.h>
#include <hwloc.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "numa/topology.h"
#include "tests/unit/harness.h"

static struct slm_topo *open_ok(const char *spec)
{
	struct slm_topo *t = NULL;
	struct slm_error err = {0};
	int rc = slm_topo_open(spec, &t, &err);
	if (rc)
		printf("\n    %s: %s\n", spec, err.msg);
	CU_ASSERT_EQUAL(rc, 0);
	return t;
}

static void expect_refused(const char *spec, int code, const char *fragment)
{
	struct slm_topo *t = (struct slm_topo *)1;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_topo_open(spec, &t, &err), code);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, fragment));
	if (!strstr(err.msg, fragment))
		printf("\n    '%s': message '%s' lacks '%s'\n", spec, err.msg,
		       fragment);
}

/* Structural facts every description must satisfy. */
static void check_consistent(const struct slm_topo_info *i)
{
	int pus = 0, node_cores = 0;
	for (int c = 0; c < i->n_cores; c++) {
		const struct slm_topo_core *core = &i->cores[c];
		CU_ASSERT(core->n_pus >= 1);
		CU_ASSERT_EQUAL(core->id, core->pus[0]);
		for (int p = 1; p < core->n_pus; p++)
			CU_ASSERT(core->pus[p] > core->pus[p - 1]);
		CU_ASSERT(core->node >= 0 && core->node < i->n_nodes);
		for (int p = 0; p < core->n_pus; p++)
			CU_ASSERT_EQUAL(slm_topo_core_of_cpu(i, core->pus[p]),
					c);
		pus += core->n_pus;
	}
	CU_ASSERT_EQUAL(pus, i->n_pus);
	uint64_t mem = 0;
	for (int n = 0; n < i->n_nodes; n++) {
		if (n)
			CU_ASSERT(i->nodes[n].os_index >
				  i->nodes[n - 1].os_index);
		CU_ASSERT_EQUAL(slm_topo_node_index(i, i->nodes[n].os_index),
				n);
		for (int k = 0; k < i->nodes[n].n_cores; k++)
			CU_ASSERT_EQUAL(i->cores[i->nodes[n].cores[k]].node, n);
		node_cores += i->nodes[n].n_cores;
		mem += i->nodes[n].mem_bytes;
	}
	CU_ASSERT_EQUAL(node_cores, i->n_cores);
	CU_ASSERT_EQUAL(mem, i->mem_bytes);
}

static void test_synthetic_two_sockets(void)
{
	struct slm_topo *t =
		open_ok("synthetic:\"package:2 numa:1 core:8 pu:2\"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	const struct slm_topo_info *i = slm_topo_info(t);
	check_consistent(i);
	CU_ASSERT_FALSE(i->this_system);
	CU_ASSERT_STRING_EQUAL(i->source,
			       "synthetic:\"package:2 numa:1 core:8 pu:2\"");
	CU_ASSERT_EQUAL(i->n_packages, 2);
	CU_ASSERT_EQUAL(i->n_nodes, 2);
	CU_ASSERT_EQUAL(i->n_cores, 16);
	CU_ASSERT_EQUAL(i->n_pus, 32);
	CU_ASSERT_EQUAL(i->mem_bytes, 2ull << 30);
	for (int c = 0; c < 16; c++) {
		/* hwloc numbers synthetic PUs in tree order. */
		CU_ASSERT_EQUAL(i->cores[c].n_pus, 2);
		CU_ASSERT_EQUAL(i->cores[c].pus[0], 2 * c);
		CU_ASSERT_EQUAL(i->cores[c].pus[1], 2 * c + 1);
		CU_ASSERT_EQUAL(i->cores[c].node, c / 8);
		CU_ASSERT_EQUAL(i->cores[c].package, c / 8);
	}
	for (int n = 0; n < 2; n++) {
		CU_ASSERT_EQUAL(i->nodes[n].os_index, n);
		CU_ASSERT_EQUAL(i->nodes[n].mem_bytes, 1ull << 30);
		CU_ASSERT_EQUAL(i->nodes[n].n_cores, 8);
		CU_ASSERT_EQUAL(i->nodes[n].package, n);
	}
	CU_ASSERT_EQUAL(slm_topo_core_of_cpu(i, 17), 8);
	CU_ASSERT_EQUAL(slm_topo_core_of_cpu(i, 32), -1);
	CU_ASSERT_EQUAL(slm_topo_node_index(i, 2), -1);
	int cpus[40];
	CU_ASSERT_EQUAL(slm_topo_cpus(i, cpus, 40), 32);
	for (int c = 0; c < 32; c++)
		CU_ASSERT_EQUAL(cpus[c], c);
	CU_ASSERT_EQUAL(slm_topo_cpus(i, cpus, 4), 32);
	slm_topo_close(t);
}

static void test_synthetic_shapes(void)
{
	/* Sub-NUMA clustering: two nodes per package. */
	struct slm_topo *t = open_ok("synthetic:package:2 numa:2 core:4 pu:2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	const struct slm_topo_info *i = slm_topo_info(t);
	check_consistent(i);
	CU_ASSERT_EQUAL(i->n_nodes, 4);
	CU_ASSERT_EQUAL(i->n_packages, 2);
	for (int n = 0; n < 4; n++) {
		CU_ASSERT_EQUAL(i->nodes[n].n_cores, 4);
		CU_ASSERT_EQUAL(i->nodes[n].package, n / 2);
	}
	slm_topo_close(t);

	/* Memory given in the description; quotes optional. */
	t = open_ok("synthetic:package:4 numa:1(memory=2GB) core:2 pu:1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	i = slm_topo_info(t);
	check_consistent(i);
	CU_ASSERT_EQUAL(i->n_nodes, 4);
	CU_ASSERT_EQUAL(i->nodes[3].mem_bytes, 2000000000ull);
	CU_ASSERT_EQUAL(i->n_cores, 8);
	slm_topo_close(t);

	/* No Core level: each CPU is a core of its own. */
	t = open_ok("  synthetic:'numa:1 pu:4'  ");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	i = slm_topo_info(t);
	check_consistent(i);
	CU_ASSERT_EQUAL(i->n_cores, 4);
	CU_ASSERT_EQUAL(i->cores[3].n_pus, 1);
	CU_ASSERT_EQUAL(i->cores[3].id, 3);
	CU_ASSERT_EQUAL(i->n_packages, 1);
	slm_topo_close(t);

	/* Last-level caches: two L3 domains in one package. */
	t = open_ok("synthetic:package:1 numa:1 l3:2 core:4 pu:1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	i = slm_topo_info(t);
	check_consistent(i);
	CU_ASSERT_EQUAL(i->llc_level, 3);
	CU_ASSERT_EQUAL(i->n_llc, 2);
	CU_ASSERT(i->l3_bytes > 0);
	for (int c = 0; c < 8; c++)
		CU_ASSERT_EQUAL(i->cores[c].llc, c / 4);
	slm_topo_close(t);
}

static void test_xml_round_trip(void)
{
	struct slm_topo *t = open_ok("synthetic:package:2 numa:1 core:3 pu:2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	char path[4096];
	snprintf(path, sizeof(path), "%s/topo.xml", slm_test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(
		hwloc_topology_export_xml(slm_topo_hwloc(t), path, 0), 0);
	struct slm_topo *x = open_ok(path);
	CU_ASSERT_PTR_NOT_NULL_FATAL(x);
	const struct slm_topo_info *a = slm_topo_info(t), *b = slm_topo_info(x);
	check_consistent(b);
	CU_ASSERT_STRING_EQUAL(b->source, path);
	CU_ASSERT_FALSE(b->this_system);
	CU_ASSERT_EQUAL(a->n_nodes, b->n_nodes);
	CU_ASSERT_EQUAL(a->n_cores, b->n_cores);
	CU_ASSERT_EQUAL(a->n_pus, b->n_pus);
	CU_ASSERT_EQUAL(a->mem_bytes, b->mem_bytes);
	for (int c = 0; c < a->n_cores && c < b->n_cores; c++) {
		CU_ASSERT_EQUAL(a->cores[c].id, b->cores[c].id);
		CU_ASSERT_EQUAL(a->cores[c].node, b->cores[c].node);
	}
	slm_topo_close(x);
	slm_topo_close(t);
}

static void test_refused(void)
{
	expect_refused("synthetic:", SLM_ECONFIG, "empty synthetic");
	expect_refused("synthetic:\"\"", SLM_ECONFIG, "empty synthetic");
	expect_refused("synthetic:package:two", SLM_ECONFIG,
		       "does not accept the synthetic description "
		       "'package:two'");
	expect_refused("/nonexistent/topo.xml", SLM_ECONFIG,
		       "'/nonexistent/topo.xml': not 'synthetic:...' and not "
		       "a readable hwloc XML file");
	char path[4096];
	snprintf(path, sizeof(path), "%s/notxml.xml", slm_test_tmpdir());
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("this is not XML\n", f);
	fclose(f);
	struct slm_topo *t = (struct slm_topo *)1;
	struct slm_error err = {0};
	CU_ASSERT(slm_topo_open(path, &t, &err) < 0);
	CU_ASSERT_PTR_NULL(t);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
}

/* The CPUs this thread may run on, from the kernel. */
static int affinity(cpu_set_t *set)
{
	CPU_ZERO(set);
	CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof(*set), set), 0);
	return CPU_COUNT(set);
}

static int count_sys_nodes(void)
{
	DIR *d = opendir("/sys/devices/system/node");
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "node", 4) && e->d_name[4] >= '0' &&
		    e->d_name[4] <= '9')
			n++;
	closedir(d);
	return n;
}

static void test_this_machine(void)
{
	cpu_set_t mine;
	int n_mine = affinity(&mine);
	struct slm_topo *t = open_ok("");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	const struct slm_topo_info *i = slm_topo_info(t);
	check_consistent(i);
	CU_ASSERT_TRUE(i->this_system);
	CU_ASSERT_STRING_EQUAL(i->source, "this machine");
	/* Exactly the CPUs the kernel lets this thread use. */
	CU_ASSERT_EQUAL(i->n_pus, n_mine);
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &mine))
			CU_ASSERT(slm_topo_core_of_cpu(i, c) >= 0);
	int sys_nodes = count_sys_nodes();
	if (sys_nodes > 0 && !i->restricted)
		CU_ASSERT_EQUAL(i->n_nodes, sys_nodes);
	CU_ASSERT(i->mem_bytes > 0);
	for (int n = 0; n < i->n_nodes; n++)
		if (i->nodes[n].n_cores)
			CU_ASSERT(i->nodes[n].mem_bytes > 0);
	slm_topo_close(t);
}

/* A thread limited by taskset/CPUAffinity= plans on its CPUs only. */
static void test_this_machine_restricted(void)
{
	cpu_set_t mine;
	int n_mine = affinity(&mine);
	if (n_mine < 2) {
		slm_test_skip("one CPU: no narrower affinity to test");
		return;
	}
	int last = -1;
	for (int c = 0; c < CPU_SETSIZE; c++)
		if (CPU_ISSET(c, &mine))
			last = c;
	cpu_set_t one;
	CPU_ZERO(&one);
	CPU_SET(last, &one);
	CU_ASSERT_EQUAL_FATAL(sched_setaffinity(0, sizeof(one), &one), 0);
	struct slm_topo *t = open_ok("");
	CU_ASSERT_EQUAL(sched_setaffinity(0, sizeof(mine), &mine), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	const struct slm_topo_info *i = slm_topo_info(t);
	check_consistent(i);
	CU_ASSERT_TRUE(i->restricted);
	CU_ASSERT_EQUAL(i->n_pus, 1);
	CU_ASSERT_EQUAL(i->n_cores, 1);
	CU_ASSERT_EQUAL(i->cores[0].id, last);
	slm_topo_close(t);
}

SLM_SUITE("topology", NULL, NULL,
	  {"synthetic_two_sockets", test_synthetic_two_sockets},
	  {"synthetic_shapes", test_synthetic_shapes},
	  {"xml_round_trip", test_xml_round_trip}, {"refused", test_refused},
	  {"this_machine", test_this_machine},
	  {"this_machine_restricted", test_this_machine_restricted})
