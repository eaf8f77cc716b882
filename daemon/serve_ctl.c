/*
 * serve_ctl.c: the serving core's status sections, commands and perf
 * source on the control socket (daemon/serve_ctl.h).  Everything here
 * runs on the control thread and reads what the leaders publish under
 * their stats_lock, never the leaders' own state.
 */
#include "daemon/serve_ctl.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"
#include "ctl/perf.h"
#include "daemon/serve_int.h"

/* What a group published last (sched.c's publish). */
struct group_view {
	struct group_counters c;
	struct slm_prefix_stats cache;
	uint64_t cow;
	uint32_t running, waiting;
	bool busy; /* inside a scheduler step now */
};

static void group_view(struct serve_group *g, struct group_view *v)
{
	pthread_mutex_lock(&g->stats_lock);
	v->c = g->snap;
	v->cache = g->cache_snap;
	v->cow = g->cow_snap;
	v->running = g->running_snap;
	v->waiting = g->waiting_snap;
	pthread_mutex_unlock(&g->stats_lock);
	v->busy = __atomic_load_n(&g->step_begin_ns, __ATOMIC_RELAXED) != 0;
}

/* "0-3,8": a CPU list as people write it. */
static void cpu_list(const int *cpus, int n, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (int i = 0; i < n && len < size; i++) {
		int j = i;
		while (j + 1 < n && cpus[j + 1] == cpus[j] + 1)
			j++;
		int w = j > i ? snprintf(buf + len, size - len, "%s%d-%d",
					 len ? "," : "", cpus[i], cpus[j])
			      : snprintf(buf + len, size - len, "%s%d",
					 len ? "," : "", cpus[i]);
		if (w < 0)
			break;
		len += (size_t)w;
		i = j;
	}
}

/* ---- status ------------------------------------------------------------- */

static int model_status(void *ctx, cJSON *section)
{
	return slm_serve_status_json(ctx, section);
}

static bool add_num(cJSON *o, const char *name, double v)
{
	return cJSON_AddNumberToObject(o, name, v) != NULL;
}

static int group_json(struct serve_group *g, cJSON *o)
{
	struct group_view v;
	group_view(g, &v);
	char cpus[256];
	cpu_list(g->cpus, g->n_cpus, cpus, sizeof(cpus));
	bool ok =
		add_num(o, "group", g->index) && add_num(o, "node", g->node) &&
		cJSON_AddStringToObject(o, "cpu_list", cpus) &&
		add_num(o, "threads", g->n_threads) &&
		cJSON_AddStringToObject(o, "state", v.busy ? "busy" : "idle") &&
		add_num(o, "running", v.running) &&
		add_num(o, "queued", v.waiting) &&
		add_num(o, "kv_blocks_total", v.cache.blocks_total) &&
		add_num(o, "kv_blocks_used", v.cache.blocks_in_use) &&
		add_num(o, "kv_blocks_cached", v.cache.blocks_cached) &&
		add_num(o, "kv_blocks_free", v.cache.blocks_free) &&
		add_num(o, "prefix_lookups", (double)v.cache.lookups) &&
		add_num(o, "prefix_hit_tokens", (double)v.cache.hit_tokens) &&
		add_num(o, "prefix_miss_tokens", (double)v.cache.miss_tokens) &&
		add_num(o, "prefix_evictions", (double)v.cache.evictions) &&
		add_num(o, "preemptions", (double)v.c.preemptions);
	cJSON *arr = ok ? cJSON_AddArrayToObject(o, "cpus") : NULL;
	for (int i = 0; arr && i < g->n_cpus; i++) {
		cJSON *n = cJSON_CreateNumber(g->cpus[i]);
		if (!n || !cJSON_AddItemToArray(arr, n)) {
			cJSON_Delete(n);
			return SLM_ENOMEM;
		}
	}
	return arr ? 0 : SLM_ENOMEM;
}

static int groups_status(void *ctx, cJSON *section)
{
	struct slm_serve *s = ctx;
	ctl_status_make_list(section);
	struct serve_model *m = serve_serving_enter(s);
	if (!m)
		return 0;
	int rc = 0;
	for (int i = 0; i < m->n_groups && !rc; i++) {
		cJSON *o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(section, o)) {
			cJSON_Delete(o);
			rc = SLM_ENOMEM;
		} else {
			rc = group_json(&m->groups[i], o);
		}
	}
	serve_serving_leave(s, m);
	return rc;
}

/* ---- commands ------------------------------------------------------------- */

static int cache_cmd(void *ctx, const struct ctl_request *req, cJSON *result,
		     struct slm_error *err)
{
	if (!req->op)
		return slm_error_set(err, SLM_EINVAL,
				     "cache: missing op (stats, flush)");
	if (strcmp(req->op, "stats") && strcmp(req->op, "flush"))
		return slm_error_set(err, SLM_ENOTFOUND,
				     "cache: unknown op '%s' (stats, flush)",
				     req->op);
	return slm_serve_cache_ctl(ctx, req->op, result, err);
}

static int model_topology(struct serve_model *s, cJSON *result,
			  struct slm_error *err);

/* The plan the serving core runs: what slm topology prints for the same
 * settings and model, and the sizes it was planned with. */
static int topology_cmd(void *ctx, const struct ctl_request *req, cJSON *result,
			struct slm_error *err)
{
	struct slm_serve *s = ctx;
	struct serve_model *m = serve_serving_enter(s);
	if (!m)
		return slm_error_set(err, SLM_ESTATE,
				     "topology: no model is serving");
	int rc = model_topology(m, result, err);
	serve_serving_leave(s, m);
	return rc;
}

static int model_topology(struct serve_model *s, cJSON *result,
			  struct slm_error *err)
{
	const struct slm_topo_info *topo = slm_topo_info(s->topo);
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	int rc = mem ? slm_plan_print(s->plan, topo, mem) : SLM_ENOMEM;
	if (mem && fclose(mem))
		rc = SLM_ENOMEM;
	char *json = rc ? NULL : slm_plan_json(s->plan, topo);
	cJSON *plan = json ? cJSON_Parse(json) : NULL;
	free(json);
	/* the KV pool size it was planned with (serve.c's plan_groups), so
	 * `slm topology --kv-bytes` can show the same plan */
	struct slm_kv_params kp = {.n_layer = s->model->hp.n_layer,
				   .n_head_kv = s->model->hp.n_head_kv,
				   .head_dim = s->model->hp.head_dim,
				   .block_tokens = s->block_tokens,
				   .n_blocks = s->kv_blocks,
				   .type = s->kv_type};
	bool ok = plan && text &&
		  cJSON_AddStringToObject(result, "source", "running") &&
		  cJSON_AddNumberToObject(result, "kv_bytes_per_group",
					  (double)slm_kv_pool_bytes(&kp)) &&
		  cJSON_AddStringToObject(result, "note",
					  "the plan slmd runs (placed when "
					  "the model was loaded)") &&
		  cJSON_AddStringToObject(result, "text", text) &&
		  cJSON_AddItemToObject(result, "plan", plan);
	free(text);
	if (!ok) {
		if (!cJSON_GetObjectItemCaseSensitive(result, "plan"))
			cJSON_Delete(plan);
		return slm_error_set(err, rc ? rc : SLM_ENOMEM,
				     "topology: out of memory");
	}
	return 0;
}

/* ---- the perf source ----------------------------------------------------------- */

/* Counters are the core's totals (slm_serve_stats_get: models a swap
 * freed stay counted, so they never go down); gauges are the serving
 * model's groups. */
static void collect_counters(struct slm_serve *s, struct perf_snapshot *snap)
{
	static const char *const refused[] = {"invalid", "too_big",
					      "overloaded", "not_serving"};
	const uint64_t *ref_n[] = {&s->n_invalid, &s->n_toobig, &s->n_overload,
				   &s->n_state};
	for (size_t i = 0; i < SLM_ARRAY_LEN(refused); i++)
		perf_emit_counter(snap, "requests_refused_total",
				  "requests the serving core refused at "
				  "submit, by reason",
				  __atomic_load_n(ref_n[i], __ATOMIC_RELAXED),
				  "reason", refused[i], PERF_END);
	struct slm_serve_stats st;
	slm_serve_stats_get(s, &st);
	for (int k = 0; k < 5; k++)
		perf_emit_counter(snap, "requests_finished_total",
				  "requests finished, by finish reason",
				  st.finished[k], "reason",
				  slm_finish_name((enum slm_finish)k),
				  PERF_END);
	perf_emit_counter(snap, "prefix_lookups_total",
			  "prefix-cache lookups (admissions)", st.cache_lookups,
			  PERF_END);
	perf_emit_counter(snap, "prefix_evictions_total",
			  "cached KV blocks evicted for room",
			  st.cache_evictions, PERF_END);
	perf_emit_counter(snap, "preemptions_total",
			  "sequences preempted for KV room (recomputed later)",
			  st.preemptions, PERF_END);
	perf_emit_counter(snap, "kv_cow_copies_total",
			  "KV blocks copied on write", st.cow_copies, PERF_END);
	perf_emit_counter(snap, "forward_passes_total",
			  "scheduler steps that ran the model",
			  st.forward_passes, PERF_END);
	perf_emit_counter(snap, "batch_tokens_total",
			  "tokens through those forward passes",
			  st.batch_tokens, PERF_END);
}

static void collect_gauges(struct serve_model *m, struct perf_snapshot *snap)
{
	for (int i = 0; i < m->n_groups; i++) {
		struct group_view v;
		group_view(&m->groups[i], &v);
		char gl[16];
		snprintf(gl, sizeof(gl), "%d", i);
		perf_emit_gauge(snap, "queue_depth",
				"requests waiting for admission", v.waiting,
				"group", gl, PERF_END);
		perf_emit_gauge(snap, "requests_running",
				"sequences admitted (holding KV)", v.running,
				"group", gl, PERF_END);
		perf_emit_gauge(snap, "kv_blocks_total",
				"KV blocks of the pool", v.cache.blocks_total,
				"group", gl, PERF_END);
		perf_emit_gauge(snap, "kv_blocks_used",
				"KV blocks referenced by a sequence",
				v.cache.blocks_in_use, "group", gl, PERF_END);
		perf_emit_gauge(snap, "kv_blocks_cached",
				"KV blocks the prefix cache holds",
				v.cache.blocks_cached, "group", gl, PERF_END);
		perf_emit_gauge(snap, "kv_blocks_free",
				"KV blocks in the free list",
				v.cache.blocks_free, "group", gl, PERF_END);
	}
}

static void collect(void *ctx, struct perf_snapshot *snap)
{
	struct slm_serve *s = ctx;
	collect_counters(s, snap);
	struct serve_model *m = serve_serving_enter(s);
	if (m) {
		collect_gauges(m, snap);
		serve_serving_leave(s, m);
	}
}

/* ---- registration ---------------------------------------------------------- */

/* What this module registered (the daemon's thread only), so an error
 * or an unregister never takes back another component's names. */
enum {
	REG_MODEL = 1,
	REG_GROUPS = 2,
	REG_CACHE = 4,
	REG_TOPOLOGY = 8,
	REG_SOURCE = 16,
};
static unsigned registered;

static void unregister(unsigned mask)
{
	if (mask & REG_SOURCE)
		perf_source_unregister("serve");
	if (mask & REG_TOPOLOGY)
		ctl_unregister_command("topology");
	if (mask & REG_CACHE)
		ctl_unregister_command("cache");
	if (mask & REG_GROUPS)
		ctl_unregister_status("groups");
	if (mask & REG_MODEL)
		ctl_unregister_status("model");
}

int slm_serve_ctl_register(struct slm_serve *s, struct slm_error *err)
{
	if (registered)
		return slm_error_set(err, SLM_EBUSY,
				     "serving core on the control socket: "
				     "another serving core is registered");
	unsigned mask = 0;
	const char *what = "status section 'model'";
	int rc = ctl_register_status("model", model_status, s);
	if (!rc) {
		mask |= REG_MODEL;
		what = "status section 'groups'";
		rc = ctl_register_status("groups", groups_status, s);
	}
	if (!rc) {
		mask |= REG_GROUPS;
		what = "command 'cache'";
		rc = ctl_register_command("cache", cache_cmd, s,
					  "cache stats | flush: the prefix "
					  "cache of every worker group");
	}
	if (!rc) {
		mask |= REG_CACHE;
		what = "command 'topology'";
		rc = ctl_register_command("topology", topology_cmd, s,
					  "the machine and the placement "
					  "plan slmd runs");
	}
	if (!rc) {
		mask |= REG_TOPOLOGY;
		what = "perf source 'serve'";
		rc = perf_source_register("serve", collect, s);
	}
	if (rc) {
		unregister(mask);
		return slm_error_set(err, rc,
				     "serving core on the control socket: "
				     "%s: %s",
				     what, slm_strerror(rc));
	}
	registered = mask | REG_SOURCE;
	return 0;
}

void slm_serve_ctl_unregister(void)
{
	unregister(registered);
	registered = 0;
}
