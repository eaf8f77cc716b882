#include "numa/placement.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "numa/cpulist.h"
#include "numa/placement_int.h"

/*
 * The plan is built over "units": the places one busy thread may run.
 * With numa.allow_smt_siblings false a unit is a whole core (its thread
 * runs on the core's first CPU, or on the CPU the config names); with it
 * true, every CPU is a unit.  Each unit has one owner: a group, the
 * dataplane, or nobody.
 */
enum { OWNER_NONE = -1, OWNER_DATAPLANE = -2 };

struct unit {
	int cpu;	      /* where its thread runs */
	int core;	      /* index into topo->cores */
	int owner;	      /* group index, OWNER_NONE or OWNER_DATAPLANE */
	const char *named_by; /* the key that named its CPU, or NULL */
};

/* The plan and everything it points to; destroy frees all of it. */
struct plan_store {
	struct slm_plan pub; /* first: a plan is a store */
	struct slm_plan_group *groups;
	int **group_cpus;
	int n_group_cpus;
	struct slm_plan_node *nodes;
	struct slm_plan_copy *copies;
	int *copy_nodes;
	struct slm_plan_thread *threads;
	int *dataplane_cpus;
	int *idle_cpus;
	char **warnings;
	int n_warnings;
};

struct build {
	const struct slm_topo_info *topo;
	const struct slm_plan_params *p;
	struct slm_error *err;
	int n_units;
	struct unit *units;
	int *scratch;  /* n_units ints: a group's units */
	int *scratch2; /* n_units ints: keys, group maps */
	int n_groups;
	int n_dp;
	int dp_units[SLM_PLAN_MAX_DATAPLANE];
	bool dp_shared;
	int dp_node; /* index into topo->nodes */
	int ctl_cpu;
	int n_warnings;
	char *warnings[SLM_PLAN_MAX_WARNINGS];
	char cpus_text[128]; /* the machine's CPUs, for messages */
};

const char *slm_weights_name(enum slm_weights_policy w)
{
	static const char *const names[] = {"auto", "replicate", "interleave",
					    "single"};
	return (unsigned)w < SLM_ARRAY_LEN(names) ? names[w] : "?";
}

const char *slm_thread_role_name(enum slm_thread_role role)
{
	static const char *const names[] = {"dataplane", "ctl", "worker"};
	return (unsigned)role < SLM_ARRAY_LEN(names) ? names[role] : "?";
}

void slm_plan_params_default(struct slm_plan_params *p)
{
	*p = (struct slm_plan_params){
		.groups = "auto",
		.dataplane_cores = "auto",
		.dataplane_node = -1,
		.ctl_core = "auto",
		.allow_smt_siblings = false,
		.weights = SLM_WEIGHTS_AUTO,
		.mem_reserve = 512ull << 20,
	};
}

void slm_plan_params_from_config(struct slm_plan_params *p,
				 const struct slm_config *cfg)
{
	slm_plan_params_default(p);
	p->groups = slm_cfg_str(cfg, SLM_CFG_NUMA_GROUPS);
	p->dataplane_cores = slm_cfg_str(cfg, SLM_CFG_NUMA_DATAPLANE_CORES);
	p->dataplane_node = (int)slm_cfg_int(cfg, SLM_CFG_NUMA_DATAPLANE_NODE);
	p->ctl_core = slm_cfg_str(cfg, SLM_CFG_NUMA_CTL_CORE);
	p->allow_smt_siblings =
		slm_cfg_bool(cfg, SLM_CFG_NUMA_ALLOW_SMT_SIBLINGS);
	p->weights = (enum slm_weights_policy)slm_cfg_enum(
		cfg, SLM_CFG_NUMA_WEIGHTS);
	p->mem_reserve = slm_cfg_size(cfg, SLM_CFG_NUMA_MEM_RESERVE);
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static void warn(struct build *b, const char *fmt, ...) SLM_PRINTF(2, 3);
static void warn(struct build *b, const char *fmt, ...)
{
	if (b->n_warnings >= SLM_PLAN_MAX_WARNINGS)
		return;
	char *text = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n >= 0)
		b->warnings[b->n_warnings++] = text;
}

/* The unit running CPU `cpu`, named by config key `key`; -1 with an error
 * when the CPU is not there or is the sibling of a CPU named before. */
static int unit_of_cpu(struct build *b, int cpu, const char *key)
{
	int core = slm_topo_core_of_cpu(b->topo, cpu);
	if (core < 0) {
		slm_error_set(b->err, SLM_ECONFIG,
			      "%s: CPU %d is not on this machine (its CPUs: "
			      "%s)",
			      key, cpu, b->cpus_text);
		return -1;
	}
	for (int u = 0; u < b->n_units; u++) {
		struct unit *un = &b->units[u];
		if (un->core != core)
			continue;
		if (b->p->allow_smt_siblings && un->cpu != cpu)
			continue;
		if (un->named_by && un->cpu != cpu) {
			slm_error_set(b->err, SLM_ECONFIG,
				      "%s: CPU %d and CPU %d (%s) are hardware "
				      "threads of one core; name one of them, "
				      "or set numa.allow_smt_siblings = true "
				      "to run a busy thread on each",
				      key, cpu, un->cpu, un->named_by);
			return -1;
		}
		un->cpu = cpu;
		un->named_by = key;
		return u;
	}
	SLM_ASSERT(!"every CPU of the topology has a unit");
	return -1;
}

static int make_units(struct build *b)
{
	const struct slm_topo_info *t = b->topo;
	int n = 0;
	for (int c = 0; c < t->n_cores; c++)
		n += b->p->allow_smt_siblings ? t->cores[c].n_pus : 1;
	b->units = calloc((size_t)n, sizeof(*b->units));
	b->scratch = calloc((size_t)n, sizeof(int));
	b->scratch2 = calloc((size_t)n, sizeof(int));
	if (!b->units || !b->scratch || !b->scratch2)
		return SLM_ENOMEM;
	for (int c = 0; c < t->n_cores; c++) {
		int k = b->p->allow_smt_siblings ? t->cores[c].n_pus : 1;
		for (int i = 0; i < k; i++)
			b->units[b->n_units++] = (struct unit){
				.cpu = t->cores[c].pus[i],
				.core = c,
				.owner = OWNER_NONE,
			};
	}
	return 0;
}

static int unit_node(const struct build *b, int u)
{
	return b->topo->cores[b->units[u].core].node;
}

/* Units of group g, ascending by CPU, into out; returns the count. */
static int group_units(const struct build *b, int g, int *out)
{
	int n = 0;
	for (int u = 0; u < b->n_units; u++)
		if (b->units[u].owner == g)
			out[n++] = u;
	for (int i = 1; i < n; i++)
		for (int j = i;
		     j > 0 && b->units[out[j]].cpu < b->units[out[j - 1]].cpu;
		     j--) {
			int tmp = out[j];
			out[j] = out[j - 1];
			out[j - 1] = tmp;
		}
	return n;
}

/* One group per distinct value of key(core), in order of appearance. */
static void groups_by(struct build *b, int (*key)(const struct slm_topo_core *))
{
	int *keys = b->scratch2;
	int n_keys = 0;
	for (int u = 0; u < b->n_units; u++) {
		int k = key(&b->topo->cores[b->units[u].core]);
		int g = 0;
		while (g < n_keys && keys[g] != k)
			g++;
		if (g == n_keys)
			keys[n_keys++] = k;
		b->units[u].owner = g;
	}
	b->n_groups = n_keys;
}

static int key_node(const struct slm_topo_core *c)
{
	return c->node;
}

static int key_llc(const struct slm_topo_core *c)
{
	return c->llc;
}

static int key_package(const struct slm_topo_core *c)
{
	return c->package;
}

/* numa.groups names CPU sets ("0-7/8-15") rather than a kind. */
static bool is_cpu_sets(const char *groups)
{
	return groups && isdigit((unsigned char)groups[0]);
}

/* numa.groups given as CPU sets "0-7/8-15". */
static int explicit_groups(struct build *b, const char *text)
{
	static const char key[] = "numa.groups";
	char *copy = strdup(text);
	int *cpus = malloc(sizeof(int) * (SLM_CPU_MAX + 1));
	int rc = 0;
	if (!copy || !cpus) {
		rc = SLM_ENOMEM;
		goto out;
	}
	char *save = NULL;
	for (char *set = strtok_r(copy, "/", &save); set;
	     set = strtok_r(NULL, "/", &save)) {
		int n = 0;
		struct slm_error perr = {0};
		if (slm_cpulist_parse(set, cpus, SLM_CPU_MAX + 1, &n, &perr)) {
			rc = slm_error_set(b->err, SLM_ECONFIG,
					   "%s = '%s': %s (groups are CPU "
					   "lists separated by '/', e.g. "
					   "0-7/8-15)",
					   key, text, perr.msg);
			goto out;
		}
		for (int i = 0; i < n; i++) {
			int u = unit_of_cpu(b, cpus[i], key);
			if (u < 0) {
				rc = SLM_ECONFIG;
				goto out;
			}
			if (b->units[u].owner != OWNER_NONE) {
				rc = slm_error_set(b->err, SLM_ECONFIG,
						   "%s = '%s': CPU %d is in "
						   "group %d and group %d",
						   key, text, cpus[i],
						   b->units[u].owner,
						   b->n_groups);
				goto out;
			}
			b->units[u].owner = b->n_groups;
		}
		b->n_groups++;
	}
	if (b->n_groups == 0)
		rc = slm_error_set(b->err, SLM_ECONFIG,
				   "%s = '%s': no CPU set (e.g. 0-7/8-15)", key,
				   text);
out:
	free(cpus);
	free(copy);
	return rc;
}

static int make_groups(struct build *b)
{
	const char *g = b->p->groups ? b->p->groups : "auto";
	if (!strcmp(g, "auto") || !strcmp(g, "node")) {
		groups_by(b, key_node);
	} else if (!strcmp(g, "llc")) {
		if (b->topo->n_llc > 0) {
			groups_by(b, key_llc);
		} else {
			warn(b, "numa.groups = llc: the topology shows no "
				"caches; one group per NUMA node instead");
			groups_by(b, key_node);
		}
	} else if (!strcmp(g, "package")) {
		groups_by(b, key_package);
	} else if (is_cpu_sets(g)) {
		return explicit_groups(b, g);
	} else {
		return slm_error_set(b->err, SLM_ECONFIG,
				     "numa.groups = '%s': not auto, node, llc, "
				     "package or CPU sets like 0-7/8-15",
				     g);
	}
	return 0;
}

/* Drop groups left without units, renumbering the others. */
static void compact_groups(struct build *b)
{
	int *map = b->scratch2; /* groups <= units */
	int n = 0;
	for (int g = 0; g < b->n_groups; g++) {
		bool any = false;
		for (int u = 0; u < b->n_units && !any; u++)
			any = b->units[u].owner == g;
		map[g] = any ? n++ : -1;
	}
	for (int u = 0; u < b->n_units; u++)
		if (b->units[u].owner >= 0)
			b->units[u].owner = map[b->units[u].owner];
	b->n_groups = n;
}

/* The home node of group g: where most of its units are (ties: the
 * lowest); *spans when some are elsewhere. */
static int group_node(const struct build *b, int g, bool *spans)
{
	int best = -1, best_count = 0;
	*spans = false;
	for (int n = 0; n < b->topo->n_nodes; n++) {
		int count = 0;
		for (int u = 0; u < b->n_units; u++)
			count += b->units[u].owner == g && unit_node(b, u) == n;
		if (count && best >= 0)
			*spans = true;
		if (count > best_count) {
			best = n;
			best_count = count;
		}
	}
	SLM_ASSERT(best >= 0);
	return best;
}

/*
 * Dataplane units taken out of the groups of the dataplane node: the
 * highest CPUs first (Linux does its housekeeping on the low ones), each
 * group keeping at least one.  Returns how many it found, up to want.
 */
static int take_dataplane_units(struct build *b, int want, bool take)
{
	int found = 0;
	int *list = b->scratch;
	for (int g = b->n_groups - 1; g >= 0 && found < want; g--) {
		bool spans;
		if (group_node(b, g, &spans) != b->dp_node)
			continue;
		int n = group_units(b, g, list);
		for (int i = n - 1; i >= 1 && found < want; i--) {
			if (take)
				b->units[list[i]].owner = OWNER_DATAPLANE;
			b->dp_units[found++] = list[i];
		}
	}
	return found;
}

/* Shared dataplane: threads on the last units of the dataplane node's
 * groups, which keep them. */
static void share_dataplane_units(struct build *b, int want)
{
	int *list = b->scratch;
	b->n_dp = 0;
	for (int g = b->n_groups - 1; g >= 0 && b->n_dp < want; g--) {
		bool spans;
		if (group_node(b, g, &spans) != b->dp_node)
			continue;
		int n = group_units(b, g, list);
		for (int i = n - 1; i >= 0 && b->n_dp < want; i--)
			b->dp_units[b->n_dp++] = list[i];
	}
	b->dp_shared = true;
}

static int dataplane_node(struct build *b)
{
	int want = b->p->dataplane_node;
	if (want < 0) {
		bool spans;
		b->dp_node = group_node(b, 0, &spans);
		return 0;
	}
	b->dp_node = slm_topo_node_index(b->topo, want);
	if (b->dp_node < 0)
		return slm_error_set(b->err, SLM_ECONFIG,
				     "numa.dataplane_node = %d: no such NUMA "
				     "node (the machine has %d)",
				     want, b->topo->n_nodes);
	for (int g = 0; g < b->n_groups; g++) {
		bool spans;
		if (group_node(b, g, &spans) == b->dp_node)
			return 0;
	}
	return slm_error_set(b->err, SLM_ECONFIG,
			     "numa.dataplane_node = %d: no worker group is on "
			     "that node, so there are no cores to take",
			     want);
}

static int explicit_dataplane(struct build *b, const char *list)
{
	static const char key[] = "numa.dataplane_cores";
	int cpus[SLM_PLAN_MAX_DATAPLANE];
	int n = 0;
	struct slm_error perr = {0};
	if (slm_cpulist_parse(list, cpus, SLM_PLAN_MAX_DATAPLANE, &n, &perr))
		return slm_error_set(b->err, SLM_ECONFIG, "%s: %s", key,
				     perr.msg);
	bool explicit_groups = is_cpu_sets(b->p->groups);
	for (int i = 0; i < n; i++) {
		int u = unit_of_cpu(b, cpus[i], key);
		if (u < 0)
			return SLM_ECONFIG;
		if (explicit_groups && b->units[u].owner >= 0)
			return slm_error_set(
				b->err, SLM_ECONFIG,
				"%s: CPU %d is also in group %d of "
				"numa.groups; a CPU runs one busy "
				"thread (numa.dataplane_cores = 0 "
				"shares a worker CPU instead)",
				key, cpus[i], b->units[u].owner);
		b->units[u].owner = OWNER_DATAPLANE;
		b->dp_units[b->n_dp++] = u;
	}
	b->dp_node = unit_node(b, b->dp_units[0]);
	/* A group whose every CPU went to the dataplane is no more. */
	for (int g = 0; g < b->n_groups; g++) {
		bool left = false;
		for (int u = 0; u < b->n_units && !left; u++)
			left = b->units[u].owner == g;
		if (!left)
			warn(b,
			     "%s = %s takes every CPU of worker group %d: "
			     "it is dropped",
			     key, list, g);
	}
	compact_groups(b);
	if (b->n_groups == 0)
		return slm_error_set(b->err, SLM_ECONFIG,
				     "%s = %s takes every CPU: no CPU is left "
				     "for worker groups",
				     key, list);
	return 0;
}

static int make_dataplane(struct build *b)
{
	static const char key[] = "numa.dataplane_cores";
	const char *v = b->p->dataplane_cores ? b->p->dataplane_cores : "auto";
	if (!strncmp(v, "cpus:", 5))
		return explicit_dataplane(b, v + 5);
	int rc = dataplane_node(b);
	if (rc)
		return rc;
	int want;
	bool is_auto = !strcmp(v, "auto");
	if (is_auto) {
		want = b->topo->n_cores >= SLM_PLAN_MIN_CORES_DEDICATED ? 1 : 0;
	} else {
		char *end;
		long n = strtol(v, &end, 10);
		if (!*v || *end || n < 0 || n > SLM_PLAN_MAX_DATAPLANE)
			return slm_error_set(
				b->err, SLM_ECONFIG,
				"%s = '%s': not auto, a count from "
				"0 to %d, or cpus:LIST",
				key, v, SLM_PLAN_MAX_DATAPLANE);
		want = (int)n;
	}
	int node_os = b->topo->nodes[b->dp_node].os_index;
	if (want == 0) {
		share_dataplane_units(b, 1);
		int cpu = b->units[b->dp_units[0]].cpu;
		if (is_auto)
			warn(b,
			     "only %d cores: the dataplane shares CPU %d with "
			     "worker group %d; set %s = 1 to give it a core "
			     "of its own",
			     b->topo->n_cores, cpu,
			     b->units[b->dp_units[0]].owner, key);
		return 0;
	}
	int can = take_dataplane_units(b, want, false);
	if (can == want) {
		take_dataplane_units(b, want, true);
		b->n_dp = want;
		return 0;
	}
	share_dataplane_units(b, want);
	warn(b,
	     "%s = %d: node %d has too few cores to give the dataplane "
	     "%d of its own and keep one per worker group; its %d thread%s "
	     "share%s worker CPUs",
	     key, want, node_os, want, b->n_dp, b->n_dp == 1 ? "" : "s",
	     b->n_dp == 1 ? "s" : "");
	return 0;
}

static int make_ctl(struct build *b)
{
	const char *v = b->p->ctl_core ? b->p->ctl_core : "auto";
	if (!strcmp(v, "none")) {
		b->ctl_cpu = -1;
		return 0;
	}
	if (!strcmp(v, "auto")) {
		/* The dataplane's core: its spare hardware thread when it
		 * has one that no busy thread uses. */
		const struct unit *dp = &b->units[b->dp_units[0]];
		b->ctl_cpu = dp->cpu;
		if (b->dp_shared || b->p->allow_smt_siblings)
			return 0;
		const struct slm_topo_core *c = &b->topo->cores[dp->core];
		for (int i = 0; i < c->n_pus; i++)
			if (c->pus[i] != dp->cpu) {
				b->ctl_cpu = c->pus[i];
				break;
			}
		return 0;
	}
	char *end;
	long cpu = strtol(v, &end, 10);
	if (!*v || *end || cpu < 0 ||
	    slm_topo_core_of_cpu(b->topo, (int)cpu) < 0)
		return slm_error_set(b->err, SLM_ECONFIG,
				     "numa.ctl_core = '%s': not auto, none, or "
				     "a CPU of this machine (%s)",
				     v, b->cpus_text);
	b->ctl_cpu = (int)cpu;
	return 0;
}

/* Weights, KV and reserve per node; refuses what does not fit. */
static int place_memory(struct build *b, struct plan_store *st)
{
	const struct slm_plan_params *p = b->p;
	const struct slm_topo_info *t = b->topo;
	struct slm_plan *plan = &st->pub;
	struct slm_plan_node *nodes = st->nodes;
	int n_nodes = t->n_nodes;
	/* used: indexes of the nodes with a group, ascending. */
	int *used = calloc((size_t)n_nodes, sizeof(int));
	uint64_t *per_node = calloc((size_t)n_nodes, sizeof(uint64_t));
	int rc = 0;
	if (!used || !per_node) {
		rc = SLM_ENOMEM;
		goto out;
	}
	int n_used = 0;
	int home = slm_topo_node_index(t, st->groups[0].node);
	for (int n = 0; n < n_nodes; n++) {
		nodes[n].os_index = t->nodes[n].os_index;
		nodes[n].mem_bytes = t->nodes[n].mem_bytes;
		for (int g = 0; g < b->n_groups; g++)
			if (st->groups[g].node == t->nodes[n].os_index)
				nodes[n].n_groups++;
		if (!nodes[n].n_groups)
			continue;
		used[n_used++] = n;
		nodes[n].kv_bytes =
			p->kv_bytes_per_group * (uint64_t)nodes[n].n_groups;
		if (p->kv_bytes_per_group &&
		    nodes[n].kv_bytes / p->kv_bytes_per_group !=
			    (uint64_t)nodes[n].n_groups)
			nodes[n].kv_bytes = UINT64_MAX;
		nodes[n].reserve_bytes = p->mem_reserve;
	}

	/* auto: replicate when it fits, else interleave.  Single never fits
	 * where interleave does not: it puts more on one node. */
	enum slm_weights_policy modes[2];
	int n_modes = 0;
	if (p->weights == SLM_WEIGHTS_AUTO) {
		modes[n_modes++] = SLM_WEIGHTS_REPLICATE;
		if (n_used > 1)
			modes[n_modes++] = SLM_WEIGHTS_INTERLEAVE;
	} else {
		modes[n_modes++] = p->weights;
	}
	char why[SLM_ERROR_MSG_MAX] = "";
	for (int m = 0; m < n_modes; m++) {
		enum slm_weights_policy w = modes[m];
		uint64_t wb = p->weight_bytes, nu = (uint64_t)n_used;
		for (int i = 0; i < n_used; i++) {
			if (w == SLM_WEIGHTS_REPLICATE)
				per_node[i] = wb;
			else if (w == SLM_WEIGHTS_INTERLEAVE)
				per_node[i] = wb / nu + ((uint64_t)i < wb % nu);
			else
				per_node[i] = used[i] == home ? wb : 0;
		}
		int bad = -1;
		for (int i = 0; i < n_used && bad < 0; i++) {
			const struct slm_plan_node *nd = &nodes[used[i]];
			uint64_t need =
				sat_add(sat_add(per_node[i], nd->kv_bytes),
					nd->reserve_bytes);
			if (need > nd->mem_bytes)
				bad = i;
		}
		if (bad < 0) {
			plan->weights = w;
			for (int i = 0; i < n_used; i++)
				nodes[used[i]].weight_bytes = per_node[i];
			break;
		}
		const struct slm_plan_node *nd = &nodes[used[bad]];
		char a[32], k[32], r[32], have[32];
		size_t len = strlen(why);
		snprintf(
			why + len, sizeof(why) - len,
			"%snuma.weights = %s puts %s of weights on node %d, "
			"which with KV %s and numa.mem_reserve %s is more "
			"than its %s",
			len ? "; " : "", slm_weights_name(w),
			placement_fmt_bytes(per_node[bad], a, sizeof(a)),
			nd->os_index,
			placement_fmt_bytes(nd->kv_bytes, k, sizeof(k)),
			placement_fmt_bytes(nd->reserve_bytes, r, sizeof(r)),
			placement_fmt_bytes(nd->mem_bytes, have, sizeof(have)));
	}
	if (plan->weights == SLM_WEIGHTS_AUTO) {
		char wb[32];
		bool hint = n_used > 1 && p->weights == SLM_WEIGHTS_REPLICATE;
		rc = slm_error_set(
			b->err, SLM_ECONFIG,
			"the model's weights (%s) do not fit: %s; %s",
			placement_fmt_bytes(p->weight_bytes, wb, sizeof(wb)),
			why,
			hint ? "set numa.weights = interleave (one "
			       "copy spread over the nodes)"
			     : "use a smaller model or quantization, "
			       "a smaller KV pool or "
			       "numa.mem_reserve, or add memory");
		goto out;
	}

	/* The copies: one per used node (replicate), else one. */
	st->copies = calloc((size_t)n_used, sizeof(*st->copies));
	st->copy_nodes = calloc((size_t)n_used, sizeof(int));
	if (!st->copies || !st->copy_nodes) {
		rc = SLM_ENOMEM;
		goto out;
	}
	for (int i = 0; i < n_used; i++)
		st->copy_nodes[i] = t->nodes[used[i]].os_index;
	if (plan->weights == SLM_WEIGHTS_REPLICATE) {
		plan->n_copies = n_used;
		for (int i = 0; i < n_used; i++)
			st->copies[i] = (struct slm_plan_copy){
				.n_nodes = 1, .nodes = &st->copy_nodes[i]};
		for (int g = 0; g < b->n_groups; g++)
			for (int i = 0; i < n_used; i++)
				if (st->copy_nodes[i] == st->groups[g].node)
					st->groups[g].weights_copy = i;
	} else {
		plan->n_copies = 1;
		st->copies[0].nodes = st->copy_nodes;
		st->copies[0].n_nodes = n_used;
		if (plan->weights == SLM_WEIGHTS_SINGLE) {
			st->copy_nodes[0] = st->groups[0].node;
			st->copies[0].n_nodes = 1;
		}
	}
	plan->copies = st->copies;
out:
	free(used);
	free(per_node);
	return rc;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

void slm_plan_destroy(struct slm_plan *plan)
{
	if (!plan)
		return;
	struct plan_store *st = (struct plan_store *)plan;
	for (int i = 0; i < st->n_warnings; i++)
		free(st->warnings[i]);
	free(st->warnings);
	for (int g = 0; g < st->n_group_cpus; g++)
		free(st->group_cpus[g]);
	free(st->group_cpus);
	free(st->groups);
	free(st->nodes);
	free(st->copies);
	free(st->copy_nodes);
	free(st->threads);
	free(st->dataplane_cpus);
	free(st->idle_cpus);
	free(st);
}

/* The threads, groups and idle CPUs of the finished build. */
static int assemble(struct build *b, struct plan_store *st)
{
	const struct slm_topo_info *t = b->topo;
	struct slm_plan *plan = &st->pub;
	int n_threads = b->n_dp + 1 + b->n_units;
	st->groups = calloc((size_t)b->n_groups, sizeof(*st->groups));
	st->group_cpus = calloc((size_t)b->n_groups, sizeof(int *));
	st->nodes = calloc((size_t)t->n_nodes, sizeof(*st->nodes));
	st->threads = calloc((size_t)n_threads, sizeof(*st->threads));
	st->dataplane_cpus = calloc((size_t)b->n_dp, sizeof(int));
	st->idle_cpus = calloc((size_t)t->n_pus, sizeof(int));
	int *list = b->scratch;
	if (!st->groups || !st->group_cpus || !st->nodes || !st->threads ||
	    !st->dataplane_cpus || !st->idle_cpus)
		return SLM_ENOMEM;
	plan->groups = st->groups;
	plan->n_groups = b->n_groups;
	plan->nodes = st->nodes;
	plan->n_nodes = t->n_nodes;
	plan->threads = st->threads;
	plan->dataplane_cpus = st->dataplane_cpus;
	plan->idle_cpus = st->idle_cpus;

	struct slm_plan_thread *threads = st->threads;
	int nt = 0;
	for (int i = 0; i < b->n_dp; i++) {
		const struct unit *u = &b->units[b->dp_units[i]];
		st->dataplane_cpus[i] = u->cpu;
		struct slm_plan_thread *th = &threads[nt++];
		*th = (struct slm_plan_thread){
			.role = SLM_ROLE_DATAPLANE,
			.group = -1,
			.index = i,
			.cpu = u->cpu,
			.node = t->nodes[unit_node(b, b->dp_units[i])].os_index,
			.shared = b->dp_shared,
		};
		snprintf(th->name, sizeof(th->name), "slm-dp%d", i);
	}
	plan->n_dataplane = b->n_dp;
	plan->dataplane_shared = b->dp_shared;
	plan->ctl_cpu = b->ctl_cpu;

	struct slm_plan_thread *ctl = &threads[nt++];
	int ctl_core =
		b->ctl_cpu >= 0 ? slm_topo_core_of_cpu(t, b->ctl_cpu) : -1;
	*ctl = (struct slm_plan_thread){
		.role = SLM_ROLE_CTL,
		.group = -1,
		.cpu = b->ctl_cpu,
		.node = t->nodes[ctl_core >= 0 ? t->cores[ctl_core].node
					       : b->dp_node]
				.os_index,
	};
	snprintf(ctl->name, sizeof(ctl->name), "slm-ctl");

	for (int g = 0; g < b->n_groups; g++) {
		struct slm_plan_group *gr = &st->groups[g];
		gr->node =
			t->nodes[group_node(b, g, &gr->spans_nodes)].os_index;
		int n = group_units(b, g, list);
		int *cpus = calloc((size_t)n, sizeof(int));
		if (!cpus)
			return SLM_ENOMEM;
		st->group_cpus[st->n_group_cpus++] = cpus;
		gr->cpus = cpus;
		gr->n_cpus = n;
		gr->first_thread = nt;
		for (int i = 0; i < n; i++) {
			cpus[i] = b->units[list[i]].cpu;
			bool shared = false;
			for (int d = 0; d < b->n_dp && b->dp_shared; d++)
				shared |= b->dp_units[d] == list[i];
			struct slm_plan_thread *th = &threads[nt++];
			*th = (struct slm_plan_thread){
				.role = SLM_ROLE_WORKER,
				.group = g,
				.index = i,
				.cpu = cpus[i],
				.node = gr->node,
				.shared = shared,
			};
			snprintf(th->name, sizeof(th->name), "slm-g%dw%d", g,
				 i);
		}
		if (gr->spans_nodes)
			warn(b,
			     "group %d spans NUMA nodes; its memory is on node "
			     "%d, where most of its CPUs are",
			     g, gr->node);
	}
	plan->n_threads = nt;

	/* Idle CPUs: no thread is pinned there. */
	for (int c = 0; c < t->n_cores; c++)
		for (int i = 0; i < t->cores[c].n_pus; i++) {
			int cpu = t->cores[c].pus[i];
			bool busy = false;
			for (int k = 0; k < nt && !busy; k++)
				busy = threads[k].cpu == cpu;
			if (!busy)
				st->idle_cpus[plan->n_idle++] = cpu;
		}
	qsort(st->idle_cpus, (size_t)plan->n_idle, sizeof(int), cmp_int);
	return 0;
}

int slm_plan_create(const struct slm_topo_info *topo,
		    const struct slm_plan_params *params, struct slm_plan **out,
		    struct slm_error *err)
{
	*out = NULL;
	struct build b = {.topo = topo, .p = params, .err = err, .ctl_cpu = -1};
	struct plan_store *st = calloc(1, sizeof(*st));
	int rc = SLM_ENOMEM;
	if (!st)
		goto fail;
	struct slm_plan *plan = &st->pub;
	plan->source = topo->source;
	plan->this_system = topo->this_system;
	plan->weight_bytes = params->weight_bytes;
	plan->weights = SLM_WEIGHTS_AUTO; /* until place_memory decides */
	int *cpus = calloc((size_t)topo->n_pus, sizeof(int));
	if (!cpus)
		goto fail;
	int n = slm_topo_cpus(topo, cpus, topo->n_pus);
	slm_cpulist_format(cpus, n, b.cpus_text, sizeof(b.cpus_text));
	free(cpus);

	rc = make_units(&b);
	if (!rc)
		rc = make_groups(&b);
	if (!rc)
		rc = make_dataplane(&b);
	if (!rc)
		rc = make_ctl(&b);
	if (!rc)
		rc = assemble(&b, st);
	if (!rc)
		rc = place_memory(&b, st);
	if (rc)
		goto fail;
	st->warnings = calloc((size_t)SLM_MAX(b.n_warnings, 1), sizeof(char *));
	if (!st->warnings) {
		rc = SLM_ENOMEM;
		goto fail;
	}
	memcpy(st->warnings, b.warnings, sizeof(char *) * (size_t)b.n_warnings);
	st->n_warnings = b.n_warnings;
	plan->warnings = (const char *const *)st->warnings;
	plan->n_warnings = b.n_warnings;
	free(b.units);
	free(b.scratch);
	free(b.scratch2);
	*out = plan;
	return 0;
fail:
	if (rc == SLM_ENOMEM)
		slm_error_set(err, rc, "placement: out of memory");
	for (int i = 0; i < b.n_warnings; i++)
		free(b.warnings[i]);
	free(b.units);
	free(b.scratch);
	free(b.scratch2);
	slm_plan_destroy(st ? &st->pub : NULL);
	return rc;
}
