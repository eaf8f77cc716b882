/* The plan as a table for people and as JSON for scripts. */
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "numa/cpulist.h"
#include "numa/placement.h"
#include "numa/placement_int.h"

const char *placement_fmt_bytes(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {"B",   "KiB", "MiB",
					    "GiB", "TiB", "PiB"};
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < SLM_ARRAY_LEN(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0 || v == (double)(uint64_t)v)
		snprintf(buf, size, "%.0f %s", v, units[u]);
	else
		snprintf(buf, size, "%.1f %s", v, units[u]);
	return buf;
}

/* A node's CPUs (all hardware threads), ascending, into cpus[]. */
static int node_cpus(const struct slm_topo_info *t, int node, int *cpus)
{
	int n = 0;
	for (int i = 0; i < t->nodes[node].n_cores; i++) {
		const struct slm_topo_core *c =
			&t->cores[t->nodes[node].cores[i]];
		for (int p = 0; p < c->n_pus; p++)
			cpus[n++] = c->pus[p];
	}
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && cpus[j] < cpus[j - 1]; j--) {
			int tmp = cpus[j];
			cpus[j] = cpus[j - 1];
			cpus[j - 1] = tmp;
		}
	return n;
}

static void print_topology(const struct slm_topo_info *t, FILE *out)
{
	char mem[32], l2[32], l3[32];
	fprintf(out,
		"topology  %s%s: %d package%s, %d NUMA node%s, %d cores, "
		"%d CPUs, %s memory",
		t->source,
		t->this_system
			? (t->restricted ? " (the CPUs slmd may use)" : "")
			: " (for planning: not this machine)",
		t->n_packages, t->n_packages == 1 ? "" : "s", t->n_nodes,
		t->n_nodes == 1 ? "" : "s", t->n_cores, t->n_pus,
		placement_fmt_bytes(t->mem_bytes, mem, sizeof(mem)));
	if (t->l2_bytes)
		fprintf(out, ", L2 %s",
			placement_fmt_bytes(t->l2_bytes, l2, sizeof(l2)));
	if (t->l3_bytes)
		fprintf(out, ", L3 %s x%d",
			placement_fmt_bytes(t->l3_bytes, l3, sizeof(l3)),
			t->llc_level == 3 ? t->n_llc : 1);
	fprintf(out, "\n\n%-12s %-6s %-10s %s\n", "node", "cores", "memory",
		"CPUs");
	int *cpus = calloc((size_t)t->n_pus + 1, sizeof(int));
	for (int n = 0; n < t->n_nodes && cpus; n++) {
		char list[256];
		int k = node_cpus(t, n, cpus);
		slm_cpulist_format(cpus, k, list, sizeof(list));
		char node[16];
		snprintf(node, sizeof(node), "node %d", t->nodes[n].os_index);
		fprintf(out, "%-12s %-6d %-10s %s\n", node, t->nodes[n].n_cores,
			placement_fmt_bytes(t->nodes[n].mem_bytes, mem,
					    sizeof(mem)),
			list);
	}
	free(cpus);
}

/* One row of the thread table: CPUs last, as lists can be long. */
static void thread_row(FILE *out, const char *role, const char *node,
		       const char *note, const char *cpus)
{
	fprintf(out, "%-12s %-5s %-44s %s\n", role, node, note, cpus);
}

static void print_threads(const struct slm_plan *plan, FILE *out)
{
	char list[512], note[128], role[32], node[16];
	fprintf(out, "\n");
	thread_row(out, "thread", "node", "notes", "CPUs");
	for (int i = 0; i < plan->n_dataplane; i++) {
		const struct slm_plan_thread *th = &plan->threads[i];
		snprintf(list, sizeof(list), "%d", th->cpu);
		snprintf(note, sizeof(note), "%s, %s", th->name,
			 th->shared ? "shares its CPU with a worker"
				    : "a core of its own");
		snprintf(role, sizeof(role), "dataplane %d", i);
		snprintf(node, sizeof(node), "%d", th->node);
		thread_row(out, role, node, note, list);
	}
	const struct slm_plan_thread *ctl = &plan->threads[plan->n_dataplane];
	if (ctl->cpu >= 0)
		snprintf(list, sizeof(list), "%d", ctl->cpu);
	else
		snprintf(list, sizeof(list), "any");
	snprintf(node, sizeof(node), "%d", ctl->node);
	thread_row(out, "ctl", ctl->cpu >= 0 ? node : "-",
		   ctl->cpu >= 0 ? "slm-ctl, mostly idle"
				 : "slm-ctl, not pinned",
		   list);
	for (int g = 0; g < plan->n_groups; g++) {
		const struct slm_plan_group *gr = &plan->groups[g];
		snprintf(role, sizeof(role), "group %d", g);
		snprintf(node, sizeof(node), "%d", gr->node);
		snprintf(note, sizeof(note),
			 "%d worker%s, leader on CPU %d, weights copy %d%s",
			 gr->n_cpus, gr->n_cpus == 1 ? "" : "s", gr->cpus[0],
			 gr->weights_copy, gr->spans_nodes ? ", spans" : "");
		slm_cpulist_format(gr->cpus, gr->n_cpus, list, sizeof(list));
		thread_row(out, role, node, note, list);
	}
	if (plan->n_idle) {
		slm_cpulist_format(plan->idle_cpus, plan->n_idle, list,
				   sizeof(list));
		thread_row(out, "idle", "", "no thread runs here", list);
	}
}

static void print_memory(const struct slm_plan *plan, FILE *out)
{
	char a[32], b[32], c[32], d[32], e[32];
	fprintf(out, "\nweights   %s", slm_weights_name(plan->weights));
	if (plan->weight_bytes)
		fprintf(out, ", %s per copy",
			placement_fmt_bytes(plan->weight_bytes, a, sizeof(a)));
	else
		fprintf(out, ", size not known (--model or --weight-bytes)");
	for (int i = 0; i < plan->n_copies; i++) {
		char list[256];
		slm_cpulist_format(plan->copies[i].nodes,
				   plan->copies[i].n_nodes, list, sizeof(list));
		fprintf(out, "%s copy %d on node%s %s", i ? "," : ";", i,
			plan->copies[i].n_nodes > 1 ? "s" : "", list);
		if (plan->copies[i].n_nodes > 1)
			fprintf(out, " (interleaved)");
	}
	fprintf(out, "\n\n%-12s %-10s %-10s %-10s %-10s %s\n", "memory",
		"weights", "KV", "reserve", "spare", "total");
	for (int n = 0; n < plan->n_nodes; n++) {
		const struct slm_plan_node *nd = &plan->nodes[n];
		uint64_t used =
			nd->weight_bytes + nd->kv_bytes + nd->reserve_bytes;
		uint64_t left = used > nd->mem_bytes ? 0 : nd->mem_bytes - used;
		char node[16];
		snprintf(node, sizeof(node), "node %d", nd->os_index);
		fprintf(out, "%-12s %-10s %-10s %-10s %-10s %s%s\n", node,
			placement_fmt_bytes(nd->weight_bytes, a, sizeof(a)),
			placement_fmt_bytes(nd->kv_bytes, b, sizeof(b)),
			placement_fmt_bytes(nd->reserve_bytes, c, sizeof(c)),
			placement_fmt_bytes(left, d, sizeof(d)),
			placement_fmt_bytes(nd->mem_bytes, e, sizeof(e)),
			nd->n_groups ? "" : "  (no worker group)");
	}
	fprintf(out, "KV pools and request objects live on each group's "
		     "node.\n");
}

int slm_plan_print(const struct slm_plan *plan,
		   const struct slm_topo_info *topo, FILE *out)
{
	print_topology(topo, out);
	print_threads(plan, out);
	print_memory(plan, out);
	for (int i = 0; i < plan->n_warnings; i++)
		fprintf(out, "warning: %s\n", plan->warnings[i]);
	return ferror(out) ? SLM_EIO : 0;
}

void slm_plan_log(const struct slm_plan *plan, const struct slm_topo_info *topo)
{
	char *text = NULL;
	size_t size = 0;
	FILE *mem = open_memstream(&text, &size);
	if (!mem)
		return;
	print_topology(topo, mem);
	print_threads(plan, mem);
	print_memory(plan, mem);
	if (fclose(mem))
		return;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		SLM_INFO("numa", "%s", line);
	for (int i = 0; i < plan->n_warnings; i++)
		SLM_WARN("numa", "%s", plan->warnings[i]);
	free(text);
}

static cJSON *int_array(const int *v, int n)
{
	cJSON *a = cJSON_CreateArray();
	for (int i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
	return a;
}

static cJSON *cpu_or_null(int cpu)
{
	return cpu >= 0 ? cJSON_CreateNumber(cpu) : cJSON_CreateNull();
}

char *slm_plan_json(const struct slm_plan *plan,
		    const struct slm_topo_info *topo)
{
	cJSON *root = cJSON_CreateObject();
	int *cpus = calloc((size_t)topo->n_pus + 1, sizeof(int));
	int *ids = calloc((size_t)topo->n_cores + 1, sizeof(int));
	char *text = NULL;
	if (!root || !cpus || !ids)
		goto out;

	cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
	for (int n = 0; n < topo->n_nodes; n++) {
		const struct slm_topo_node *tn = &topo->nodes[n];
		const struct slm_plan_node *pn = &plan->nodes[n];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(nodes, o);
		cJSON_AddNumberToObject(o, "id", tn->os_index);
		for (int i = 0; i < tn->n_cores; i++)
			ids[i] = topo->cores[tn->cores[i]].id;
		cJSON_AddItemToObject(o, "cores", int_array(ids, tn->n_cores));
		cJSON_AddItemToObject(
			o, "cpus", int_array(cpus, node_cpus(topo, n, cpus)));
		cJSON_AddNumberToObject(o, "mem_bytes", (double)tn->mem_bytes);
		cJSON_AddNumberToObject(o, "weight_bytes",
					(double)pn->weight_bytes);
		cJSON_AddNumberToObject(o, "kv_bytes", (double)pn->kv_bytes);
		cJSON_AddNumberToObject(o, "reserve_bytes",
					(double)pn->reserve_bytes);
	}

	cJSON *groups = cJSON_AddArrayToObject(root, "groups");
	for (int g = 0; g < plan->n_groups; g++) {
		const struct slm_plan_group *gr = &plan->groups[g];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(groups, o);
		cJSON_AddNumberToObject(o, "id", g);
		cJSON_AddNumberToObject(o, "node", gr->node);
		cJSON_AddItemToObject(o, "cores",
				      int_array(gr->cpus, gr->n_cpus));
		cJSON_AddNumberToObject(o, "leader_cpu", gr->cpus[0]);
		cJSON_AddNumberToObject(o, "weights_copy", gr->weights_copy);
		cJSON_AddBoolToObject(o, "spans_nodes", gr->spans_nodes);
	}

	cJSON_AddItemToObject(
		root, "dataplane_cores",
		int_array(plan->dataplane_cpus, plan->n_dataplane));
	cJSON_AddBoolToObject(root, "dataplane_shared", plan->dataplane_shared);
	cJSON_AddItemToObject(root, "ctl_core", cpu_or_null(plan->ctl_cpu));
	cJSON_AddStringToObject(root, "weights",
				slm_weights_name(plan->weights));
	cJSON_AddNumberToObject(root, "weight_bytes",
				(double)plan->weight_bytes);
	cJSON *copies = cJSON_AddArrayToObject(root, "weight_copies");
	for (int i = 0; i < plan->n_copies; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(copies, o);
		cJSON_AddItemToObject(o, "nodes",
				      int_array(plan->copies[i].nodes,
						plan->copies[i].n_nodes));
	}

	cJSON *threads = cJSON_AddArrayToObject(root, "threads");
	for (int i = 0; i < plan->n_threads; i++) {
		const struct slm_plan_thread *th = &plan->threads[i];
		cJSON *o = cJSON_CreateObject();
		cJSON_AddItemToArray(threads, o);
		cJSON_AddStringToObject(o, "name", th->name);
		cJSON_AddStringToObject(o, "role",
					slm_thread_role_name(th->role));
		if (th->group >= 0)
			cJSON_AddNumberToObject(o, "group", th->group);
		cJSON_AddItemToObject(o, "cpu", cpu_or_null(th->cpu));
		cJSON_AddNumberToObject(o, "node", th->node);
		cJSON_AddBoolToObject(o, "shared", th->shared);
	}
	cJSON_AddItemToObject(root, "idle_cpus",
			      int_array(plan->idle_cpus, plan->n_idle));
	cJSON *warnings = cJSON_AddArrayToObject(root, "warnings");
	for (int i = 0; i < plan->n_warnings; i++)
		cJSON_AddItemToArray(warnings,
				     cJSON_CreateString(plan->warnings[i]));

	cJSON *t = cJSON_AddObjectToObject(root, "topology");
	cJSON_AddStringToObject(t, "source", topo->source);
	cJSON_AddBoolToObject(t, "this_system", topo->this_system);
	cJSON_AddBoolToObject(t, "restricted", topo->restricted);
	cJSON_AddNumberToObject(t, "packages", topo->n_packages);
	cJSON_AddNumberToObject(t, "cores", topo->n_cores);
	cJSON_AddNumberToObject(t, "cpus", topo->n_pus);
	cJSON_AddNumberToObject(t, "mem_bytes", (double)topo->mem_bytes);
	cJSON_AddNumberToObject(t, "l1d_bytes", (double)topo->l1d_bytes);
	cJSON_AddNumberToObject(t, "l2_bytes", (double)topo->l2_bytes);
	cJSON_AddNumberToObject(t, "l3_bytes", (double)topo->l3_bytes);
	cJSON_AddNumberToObject(t, "llc_level", topo->llc_level);
	cJSON_AddNumberToObject(t, "llc_count", topo->n_llc);

	text = cJSON_PrintUnformatted(root);
out:
	cJSON_Delete(root);
	free(cpus);
	free(ids);
	return text;
}
