/*
 * serve_json.c: the serving core's status and counters as JSON, for the
 * control socket (daemon/serve.h).
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "daemon/serve.h"

int slm_serve_status_json(void *serve, cJSON *o)
{
	struct slm_serve_info info;
	if (!slm_serve_describe(serve, &info))
		return SLM_ESTATE;
	cJSON_AddStringToObject(o, "name", info.name);
	cJSON_AddStringToObject(o, "path", info.path);
	cJSON_AddStringToObject(o, "arch", info.arch);
	cJSON_AddBoolToObject(o, "synthetic", info.synthetic);
	cJSON_AddNumberToObject(o, "n_ctx", info.n_ctx);
	cJSON_AddNumberToObject(o, "n_vocab", info.n_vocab);
	cJSON_AddNumberToObject(o, "groups", info.n_groups);
	cJSON_AddStringToObject(o, "kv_type", info.kv_type);
	cJSON_AddNumberToObject(o, "kv_blocks", info.kv_blocks);
	cJSON_AddNumberToObject(o, "block_tokens", info.block_tokens);
	if (info.file_type)
		cJSON_AddStringToObject(o, "file_type", info.file_type);
	else
		cJSON_AddNullToObject(o, "file_type");
	cJSON_AddNumberToObject(o, "n_params", (double)info.n_params);
	if (info.chat_template)
		cJSON_AddStringToObject(o, "chat_template", info.chat_template);
	else
		cJSON_AddNullToObject(o, "chat_template");
	if (!cJSON_AddNumberToObject(o, "load_s", (double)info.load_ns * 1e-9))
		return SLM_ENOMEM;
	return 0;
}

static void cache_part(const struct slm_serve_stats *st, cJSON *o)
{
	cJSON_AddNumberToObject(o, "prefix_lookups_total",
				(double)st->cache_lookups);
	cJSON_AddNumberToObject(o, "prefix_hit_tokens_total",
				(double)st->cache_hit_tokens);
	cJSON_AddNumberToObject(o, "prefix_miss_tokens_total",
				(double)st->cache_miss_tokens);
	cJSON_AddNumberToObject(o, "cache_evictions_total",
				(double)st->cache_evictions);
	cJSON_AddNumberToObject(o, "kv_cow_copies_total",
				(double)st->cow_copies);
	cJSON *b = cJSON_AddObjectToObject(o, "kv_blocks");
	if (b) {
		cJSON_AddNumberToObject(b, "total", st->blocks_total);
		cJSON_AddNumberToObject(b, "free", st->blocks_free);
		cJSON_AddNumberToObject(b, "cached", st->blocks_cached);
		cJSON_AddNumberToObject(b, "in_use", st->blocks_in_use);
	}
}

int slm_serve_stats_json(struct slm_serve *s, cJSON *o)
{
	struct slm_serve_stats st;
	slm_serve_stats_get(s, &st);
	cJSON_AddNumberToObject(o, "requests_total", (double)st.submitted);
	cJSON *r = cJSON_AddObjectToObject(o, "requests_refused_total");
	cJSON *f = cJSON_AddObjectToObject(o, "requests_finished_total");
	if (!r || !f)
		return SLM_ENOMEM;
	cJSON_AddNumberToObject(r, "invalid", (double)st.refused_invalid);
	cJSON_AddNumberToObject(r, "toobig", (double)st.refused_toobig);
	cJSON_AddNumberToObject(r, "overload", (double)st.refused_overload);
	cJSON_AddNumberToObject(r, "state", (double)st.refused_state);
	for (int k = 0; k < 5; k++)
		cJSON_AddNumberToObject(f, slm_finish_name((enum slm_finish)k),
					(double)st.finished[k]);
	cJSON_AddNumberToObject(o, "prompt_tokens_total",
				(double)st.prompt_tokens);
	cJSON_AddNumberToObject(o, "tokens_generated_total",
				(double)st.generated_tokens);
	cJSON_AddNumberToObject(o, "forward_passes_total",
				(double)st.forward_passes);
	cJSON_AddNumberToObject(o, "batch_tokens_total",
				(double)st.batch_tokens);
	cJSON_AddNumberToObject(o, "preemptions_total", (double)st.preemptions);
	cJSON_AddNumberToObject(o, "queue_depth", st.queued);
	cJSON_AddNumberToObject(o, "running", st.running);
	cache_part(&st, o);
	return 0;
}

int slm_serve_cache_ctl(struct slm_serve *s, const char *op, cJSON *result,
			struct slm_error *err)
{
	if (!op || !strcmp(op, "stats")) {
		struct slm_serve_stats st;
		slm_serve_stats_get(s, &st);
		cache_part(&st, result);
		return 0;
	}
	if (!strcmp(op, "flush")) {
		int n = slm_serve_cache_flush(s);
		if (n == SLM_ETIMEDOUT)
			return slm_error_set(err, n,
					     "cache flush: a worker group did "
					     "not get to it within 10 s (a "
					     "stalled step?)");
		if (n < 0)
			return slm_error_set(err, n,
					     "cache flush: not serving");
		cJSON_AddBoolToObject(result, "flushed", true);
		cJSON_AddNumberToObject(result, "dropped_blocks", n);
		/* the counts after it: every group published them */
		struct slm_serve_stats st;
		slm_serve_stats_get(s, &st);
		cache_part(&st, result);
		return 0;
	}
	return slm_error_set(err, SLM_EINVAL,
			     "cache: unknown operation '%s' (stats, flush)",
			     op);
}
