#include "numa/topology.h"

#include <ctype.h>
#include <errno.h>
#include <hwloc.h>
#include <hwloc/glibc-sched.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct slm_topo {
	hwloc_topology_t hw;
	struct slm_topo_info info;
	struct slm_topo_node *nodes;
	struct slm_topo_core *cores;
	int *node_cores; /* backing of nodes[i].cores */
	char *source;
};

const struct slm_topo_info *slm_topo_info(const struct slm_topo *topo)
{
	return &topo->info;
}

struct hwloc_topology *slm_topo_hwloc(const struct slm_topo *topo)
{
	return topo->hw;
}

int slm_topo_core_of_cpu(const struct slm_topo_info *info, int cpu)
{
	for (int c = 0; c < info->n_cores; c++)
		for (int p = 0; p < info->cores[c].n_pus; p++)
			if (info->cores[c].pus[p] == cpu)
				return c;
	return -1;
}

int slm_topo_node_index(const struct slm_topo_info *info, int os_index)
{
	for (int n = 0; n < info->n_nodes; n++)
		if (info->nodes[n].os_index == os_index)
			return n;
	return -1;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int slm_topo_cpus(const struct slm_topo_info *info, int *cpus, int max)
{
	int n = 0;
	for (int c = 0; c < info->n_cores; c++)
		for (int p = 0; p < info->cores[c].n_pus; p++, n++)
			if (n < max)
				cpus[n] = info->cores[c].pus[p];
	qsort(cpus, (size_t)SLM_MIN(n, max), sizeof(int), cmp_int);
	return n;
}

void slm_topo_close(struct slm_topo *topo)
{
	if (!topo)
		return;
	if (topo->hw)
		hwloc_topology_destroy(topo->hw);
	free(topo->nodes);
	free(topo->cores);
	free(topo->node_cores);
	free(topo->source);
	free(topo);
}

/* The spec without surrounding blanks, into buf. */
static const char *trim(const char *spec, char *buf, size_t size)
{
	while (isspace((unsigned char)*spec))
		spec++;
	snprintf(buf, size, "%s", spec);
	size_t n = strlen(buf);
	while (n && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	return buf;
}

/* Text without one pair of surrounding quotes (modifies text). */
static const char *unquote(char *text)
{
	size_t n = strlen(text);
	if (n >= 2 && (text[0] == '"' || text[0] == '\'') &&
	    text[n - 1] == text[0]) {
		text[n - 1] = '\0';
		return text + 1;
	}
	return text;
}

/* Configure where hwloc reads from.  Returns 0 or an error. */
static int choose_source(struct slm_topo *topo, const char *spec,
			 struct slm_error *err)
{
	char buf[1024];
	trim(spec ? spec : "", buf, sizeof(buf));
	if (!*buf) {
		topo->source = strdup("this machine");
		return topo->source ? 0 : SLM_ENOMEM;
	}
	topo->source = strdup(buf);
	if (!topo->source)
		return SLM_ENOMEM;
	static const char prefix[] = "synthetic:";
	if (!strncmp(buf, prefix, sizeof(prefix) - 1)) {
		const char *desc = unquote(buf + sizeof(prefix) - 1);
		if (!*desc)
			return slm_error_set(err, SLM_ECONFIG,
					     "numa.topology '%s': empty "
					     "synthetic description",
					     topo->source);
		if (hwloc_topology_set_synthetic(topo->hw, desc))
			return slm_error_set(
				err, SLM_ECONFIG,
				"numa.topology '%s': hwloc does not accept the "
				"synthetic description '%s' (example: "
				"synthetic:\"package:2 numa:1 core:8 pu:2\")",
				topo->source, desc);
		return 0;
	}
	if (access(buf, R_OK))
		return slm_error_errno(
			err, SLM_ECONFIG, errno,
			"numa.topology '%s': not 'synthetic:...' "
			"and not a readable hwloc XML file",
			buf);
	if (hwloc_topology_set_xml(topo->hw, buf))
		return slm_error_errno(err, SLM_ECONFIG, errno,
				       "numa.topology '%s': hwloc cannot use "
				       "the XML file",
				       buf);
	return 0;
}

static cpu_set_t remembered_affinity;
static bool affinity_remembered;

void slm_topo_remember_affinity(void)
{
	affinity_remembered = sched_getaffinity(0, sizeof(remembered_affinity),
						&remembered_affinity) == 0;
}

static int affinity_of_process(struct slm_topo *topo, hwloc_bitmap_t mine)
{
	if (affinity_remembered)
		return hwloc_cpuset_from_glibc_sched_affinity(
			topo->hw, mine, &remembered_affinity,
			sizeof(remembered_affinity));
	return hwloc_get_cpubind(topo->hw, mine, HWLOC_CPUBIND_THREAD);
}

/*
 * On this machine, keep only the CPUs the process may run on (the
 * calling thread's affinity, or the one slm_topo_remember_affinity saw):
 * hwloc already drops CPUs outside the cgroup cpuset; this honours the
 * affinity mask too (systemd CPUAffinity=, taskset).
 */
static int restrict_to_affinity(struct slm_topo *topo, struct slm_error *err)
{
	hwloc_bitmap_t mine = hwloc_bitmap_alloc();
	if (!mine)
		return SLM_ENOMEM;
	int rc = 0;
	if (affinity_of_process(topo, mine)) {
		rc = slm_error_errno(err, SLM_ESYS, errno,
				     "reading the CPU affinity of slmd");
		goto out;
	}
	hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(topo->hw);
	if (hwloc_bitmap_isincluded(all, mine))
		goto out;
	if (!hwloc_bitmap_intersects(all, mine)) {
		rc = slm_error_set(
			err, SLM_ESTATE,
			"the CPU affinity of slmd shares no CPU with "
			"the machine's topology");
		goto out;
	}
	if (hwloc_topology_restrict(topo->hw, mine, 0)) {
		rc = slm_error_errno(err, SLM_ESYS, errno,
				     "restricting the topology to the CPU "
				     "affinity of slmd");
		goto out;
	}
	topo->info.restricted = true;
out:
	hwloc_bitmap_free(mine);
	return rc;
}

/* The NUMA node whose memory a CPU object uses: the nearest ancestor with
 * memory attached, and among its nodes the lowest os_index (ordinary DRAM
 * before HBM or CXL memory on the machines we know). */
static hwloc_obj_t local_node(hwloc_obj_t obj)
{
	for (; obj; obj = obj->parent) {
		if (!obj->memory_arity)
			continue;
		hwloc_obj_t best = NULL;
		for (hwloc_obj_t m = obj->memory_first_child; m;
		     m = m->next_sibling) {
			/* A memory-side cache sits between us and nodes. */
			hwloc_obj_t n = m;
			while (n && n->type != HWLOC_OBJ_NUMANODE)
				n = n->memory_first_child;
			if (n && (!best || n->os_index < best->os_index))
				best = n;
		}
		if (best)
			return best;
	}
	return NULL;
}

static int cmp_node(const void *a, const void *b)
{
	const struct slm_topo_node *x = a, *y = b;
	return (x->os_index > y->os_index) - (x->os_index < y->os_index);
}

static int logical_or(hwloc_obj_t obj, int none)
{
	return obj ? (int)obj->logical_index : none;
}

static uint64_t cache_size(hwloc_topology_t hw, hwloc_obj_type_t type)
{
	hwloc_obj_t c = hwloc_get_obj_by_type(hw, type, 0);
	return c ? c->attr->cache.size : 0;
}

/* Build the plain description from the loaded hwloc topology. */
static int describe(struct slm_topo *topo, struct slm_error *err)
{
	hwloc_topology_t hw = topo->hw;
	struct slm_topo_info *info = &topo->info;
	int n_nodes = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_NUMANODE);
	int n_pus = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_PU);
	if (n_nodes <= 0 || n_pus <= 0)
		return slm_error_set(err, SLM_EFORMAT,
				     "topology '%s' has %d NUMA nodes and %d "
				     "CPUs; slmd needs at least one of each",
				     topo->source, n_nodes, n_pus);

	topo->nodes = calloc((size_t)n_nodes, sizeof(*topo->nodes));
	topo->cores = calloc((size_t)n_pus, sizeof(*topo->cores));
	topo->node_cores = calloc((size_t)n_pus, sizeof(int));
	if (!topo->nodes || !topo->cores || !topo->node_cores)
		return SLM_ENOMEM;
	for (int i = 0; i < n_nodes; i++) {
		hwloc_obj_t o = hwloc_get_obj_by_type(hw, HWLOC_OBJ_NUMANODE,
						      (unsigned)i);
		topo->nodes[i].os_index = (int)o->os_index;
		topo->nodes[i].mem_bytes = o->attr->numanode.local_memory;
		topo->nodes[i].package =
			logical_or(hwloc_get_ancestor_obj_by_type(
					   hw, HWLOC_OBJ_PACKAGE, o),
				   -1);
	}
	qsort(topo->nodes, (size_t)n_nodes, sizeof(*topo->nodes), cmp_node);
	info->nodes = topo->nodes;
	info->n_nodes = n_nodes;
	for (int i = 0; i < n_nodes; i++)
		info->mem_bytes += topo->nodes[i].mem_bytes;

	/* The last-level cache: the highest data or unified level present. */
	static const hwloc_obj_type_t levels[] = {
		HWLOC_OBJ_L5CACHE, HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L3CACHE,
		HWLOC_OBJ_L2CACHE, HWLOC_OBJ_L1CACHE};
	hwloc_obj_type_t llc_type = HWLOC_OBJ_TYPE_MAX;
	for (size_t i = 0; i < SLM_ARRAY_LEN(levels); i++) {
		if (hwloc_get_nbobjs_by_type(hw, levels[i]) > 0) {
			llc_type = levels[i];
			info->llc_level = 5 - (int)i;
			info->n_llc = hwloc_get_nbobjs_by_type(hw, levels[i]);
			break;
		}
	}
	info->l1d_bytes = cache_size(hw, HWLOC_OBJ_L1CACHE);
	info->l2_bytes = cache_size(hw, HWLOC_OBJ_L2CACHE);
	info->l3_bytes = cache_size(hw, HWLOC_OBJ_L3CACHE);
	info->n_packages = hwloc_get_nbobjs_by_type(hw, HWLOC_OBJ_PACKAGE);
	if (info->n_packages <= 0)
		info->n_packages = 1;

	/* Cores in tree order; a PU without a Core ancestor is its own core.
	 * The PUs of one core are consecutive in hwloc's logical order. */
	hwloc_obj_t last = NULL;
	int n_cores = 0;
	for (int i = 0; i < n_pus; i++) {
		hwloc_obj_t pu =
			hwloc_get_obj_by_type(hw, HWLOC_OBJ_PU, (unsigned)i);
		hwloc_obj_t core =
			hwloc_get_ancestor_obj_by_type(hw, HWLOC_OBJ_CORE, pu);
		hwloc_obj_t key = core ? core : pu;
		if (key != last) {
			struct slm_topo_core *c = &topo->cores[n_cores++];
			hwloc_obj_t node = local_node(pu);
			int ni = node ? slm_topo_node_index(info,
							    (int)node->os_index)
				      : 0;
			c->node = ni < 0 ? 0 : ni;
			c->package =
				logical_or(hwloc_get_ancestor_obj_by_type(
						   hw, HWLOC_OBJ_PACKAGE, pu),
					   0);
			c->llc =
				llc_type == HWLOC_OBJ_TYPE_MAX
					? -1
					: logical_or(
						  hwloc_get_ancestor_obj_by_type(
							  hw, llc_type, pu),
						  -1);
			last = key;
		}
		struct slm_topo_core *c = &topo->cores[n_cores - 1];
		if (c->n_pus < SLM_TOPO_MAX_SMT)
			c->pus[c->n_pus++] = (int)pu->os_index;
	}
	for (int c = 0; c < n_cores; c++) {
		qsort(topo->cores[c].pus, (size_t)topo->cores[c].n_pus,
		      sizeof(int), cmp_int);
		topo->cores[c].id = topo->cores[c].pus[0];
	}
	info->cores = topo->cores;
	info->n_cores = n_cores;
	info->n_pus = n_pus;

	/* Each node's cores, in core order. */
	int used = 0;
	for (int n = 0; n < n_nodes; n++) {
		topo->nodes[n].cores = topo->node_cores + used;
		for (int c = 0; c < n_cores; c++)
			if (topo->cores[c].node == n)
				topo->node_cores[used++] = c;
		topo->nodes[n].n_cores =
			(int)(topo->node_cores + used - topo->nodes[n].cores);
	}
	return 0;
}

int slm_topo_open(const char *spec, struct slm_topo **out,
		  struct slm_error *err)
{
	*out = NULL;
	struct slm_topo *topo = calloc(1, sizeof(*topo));
	if (!topo)
		return slm_error_set(err, SLM_ENOMEM,
				     "topology: out of memory");
	int rc;
	if (hwloc_topology_init(&topo->hw)) {
		topo->hw = NULL;
		rc = slm_error_errno(err, SLM_ESYS, errno,
				     "hwloc_topology_init");
		goto fail;
	}
	/* Placement needs CPUs, caches and memory; not I/O devices nor
	 * instruction caches, which only make discovery slower. */
	hwloc_topology_set_io_types_filter(topo->hw,
					   HWLOC_TYPE_FILTER_KEEP_NONE);
	hwloc_topology_set_icache_types_filter(topo->hw,
					       HWLOC_TYPE_FILTER_KEEP_NONE);
	rc = choose_source(topo, spec, err);
	if (rc)
		goto fail;
	if (hwloc_topology_load(topo->hw)) {
		rc = slm_error_errno(err, SLM_EFORMAT, errno,
				     "numa.topology '%s': hwloc cannot load it",
				     topo->source);
		goto fail;
	}
	topo->info.source = topo->source;
	topo->info.this_system = hwloc_topology_is_thissystem(topo->hw);
	if (topo->info.this_system && !strcmp(topo->source, "this machine")) {
		rc = restrict_to_affinity(topo, err);
		if (rc)
			goto fail;
	}
	rc = describe(topo, err);
	if (rc)
		goto fail;
	*out = topo;
	return 0;
fail:
	if (rc == SLM_ENOMEM)
		slm_error_set(err, rc, "topology: out of memory");
	slm_topo_close(topo);
	return rc;
}
