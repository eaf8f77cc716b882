#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hist.h"
#include "ctl/render.h"
#include "tests/unit/harness.h"

static char *capture_status(const char *json, int kind)
{
	cJSON *r = cJSON_Parse(json);
	CU_ASSERT_PTR_NOT_NULL(r);
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (kind == 0)
		ctl_render_status(r, mem);
	else if (kind == 1)
		ctl_render_stats(r, mem);
	else
		ctl_render_perf(r, mem);
	fclose(mem);
	cJSON_Delete(r);
	char *copy = strdup(text);
	free(text);
	return copy;
}

static void test_durations(void)
{
	char b[32];
	CU_ASSERT_STRING_EQUAL(ctl_fmt_duration(NAN, b, sizeof(b)), "-");
	CU_ASSERT_STRING_EQUAL(ctl_fmt_duration(850, b, sizeof(b)), "850 ns");
	CU_ASSERT_STRING_EQUAL(ctl_fmt_duration(850e3, b, sizeof(b)), "850 us");
	CU_ASSERT_STRING_EQUAL(ctl_fmt_duration(12.34e6, b, sizeof(b)),
			       "12.3 ms");
	CU_ASSERT_STRING_EQUAL(ctl_fmt_duration(1.2e9, b, sizeof(b)), "1.20 s");
}

static void test_tables(void)
{
	char *s = capture_status(
		"{\"version\":\"0.1.0\",\"pid\":7,\"uptime_s\":3725,"
		"\"state\":\"serving\",\"model\":null,\"dataplane\":"
		"{\"url\":\"udp://127.0.0.1:7070\"},\"groups\":null,"
		"\"health\":{\"healthy\":true,\"components\":[\"ctl\","
		"\"dataplane\"]},\"ctl\":{\"socket\":\"/run/slmd/ctl.sock\","
		"\"clients\":1,\"metrics\":null},\"cache\":{\"blocks\":12}}",
		0);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "slmd 0.1.0 (pid 7): serving, up "
					 "1h 02m 05s"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "model:      - (no serving core"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(s, "dataplane:  url=udp://127.0.0.1:7070"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "components: ctl, dataplane"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "metrics:    off"));
	/* A section some component registered. */
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "cache:      blocks=12"));
	free(s);

	s = capture_status("{\"requests_total\":0,\"drops_total\":5,"
			   "\"drops_by_reason\":{\"bad_mac\":5},"
			   "\"unsourced\":[\"requests_total\"]}",
			   1);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "requests_total"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "(no source in this build yet)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "drops_by_reason:\n  bad_mac"));
	/* drops_total has a source: not marked. */
	const char *drops = strstr(s, "drops_total");
	CU_ASSERT(drops && strchr(drops, '\n') &&
		  !memmem(drops, (size_t)(strchr(drops, '\n') - drops),
			  "no source", 9));
	free(s);

	s = capture_status(
		"{\"hw_counters\":{\"available\":false,\"status\":\"not "
		"supported on this machine\"},\"threads\":[{\"name\":\"ctl0\","
		"\"role\":\"ctl\",\"group\":null,\"tid\":9,\"state\":"
		"\"sleeping\",\"activity\":null,\"cpu_s\":0.5,\"events\":"
		"{\"context_switches\":3},\"counters\":{}}],\"stages\":[]}",
		2);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "not supported on this machine"));
	/* No column of hardware zeros. */
	CU_ASSERT_PTR_NULL(strstr(s, "IPC"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "none recorded yet"));
	free(s);
}

/* A top sample with the given counters, gauges and histogram buckets
 * (bucket index of a value, count). */
static cJSON *sample(double t_s, double requests, double tokens, double hit,
		     double miss, const uint64_t *ttft_values, int n_ttft,
		     double cpu_ns)
{
	cJSON *s = cJSON_CreateObject();
	cJSON_AddNumberToObject(s, "t_ns", t_s * 1e9);
	cJSON_AddStringToObject(s, "state", "serving");
	cJSON_AddNumberToObject(s, "uptime_s", t_s);
	cJSON *c = cJSON_AddObjectToObject(s, "counters");
	cJSON_AddNumberToObject(c, "requests_total", requests);
	cJSON_AddNumberToObject(c, "tokens_generated_total", tokens);
	cJSON_AddNumberToObject(c, "prefix_hit_tokens_total", hit);
	cJSON_AddNumberToObject(c, "prefix_miss_tokens_total", miss);
	cJSON *g = cJSON_AddObjectToObject(s, "gauges");
	cJSON_AddNumberToObject(g, "queue_depth", 3);
	cJSON_AddNullToObject(g, "requests_running");
	cJSON_AddNumberToObject(g, "kv_blocks_used", 25);
	cJSON_AddNumberToObject(g, "kv_blocks_total", 100);
	cJSON *h = cJSON_AddObjectToObject(s, "hists");
	cJSON_AddNullToObject(h, "decode_step");
	cJSON *ft = cJSON_AddObjectToObject(h, "first_token");
	cJSON *b = cJSON_AddArrayToObject(ft, "buckets");
	struct slm_hist hist;
	slm_hist_init(&hist);
	for (int i = 0; i < n_ttft; i++)
		slm_hist_record(&hist, ttft_values[i]);
	for (unsigned i = 0; i < SLM_HIST_BUCKETS; i++) {
		if (!hist.bucket[i])
			continue;
		cJSON *pair = cJSON_CreateArray();
		cJSON_AddItemToArray(pair, cJSON_CreateNumber(i));
		cJSON_AddItemToArray(
			pair, cJSON_CreateNumber((double)hist.bucket[i]));
		cJSON_AddItemToArray(b, pair);
	}
	cJSON *threads = cJSON_AddArrayToObject(s, "threads");
	cJSON *t = cJSON_CreateObject();
	cJSON_AddStringToObject(t, "name", "g0.worker0");
	cJSON_AddStringToObject(t, "role", "worker");
	cJSON_AddNumberToObject(t, "group", 0);
	cJSON_AddNumberToObject(t, "cpu_ns", cpu_ns);
	cJSON_AddStringToObject(t, "state", "decode");
	cJSON_AddItemToArray(threads, t);
	return s;
}

static void test_top(void)
{
	/* 10 requests with TTFT 1 ms before; 100 more in the next 2 s:
	 * 90 at 2 ms and 10 at 50 ms. */
	uint64_t before[10], after[110];
	for (int i = 0; i < 10; i++)
		before[i] = after[i] = 1000000;
	for (int i = 10; i < 100; i++)
		after[i] = 2000000;
	for (int i = 100; i < 110; i++)
		after[i] = 50000000;
	cJSON *prev = sample(10, 10, 500, 0, 0, before, 10, 1e9);
	cJSON *cur = sample(12, 110, 4500, 300, 100, after, 110, 2.5e9);
	struct ctl_top t;
	CU_ASSERT_EQUAL_FATAL(ctl_top_compute(prev, cur, &t), 0);
	CU_ASSERT_DOUBLE_EQUAL(t.interval_s, 2, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(t.req_s, 50, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(t.tok_s, 2000, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(t.queue, 3, 1e-9);
	CU_ASSERT(isnan(t.running));
	CU_ASSERT_DOUBLE_EQUAL(t.kv_use, 0.25, 1e-9);
	CU_ASSERT_DOUBLE_EQUAL(t.prefix_hit, 0.75, 1e-9);
	/* The interval's own quantiles: the 10 older 1 ms ones are out. */
	CU_ASSERT(t.ttft_p50 >= 2000000 && t.ttft_p50 < 2000000 * 1.02);
	CU_ASSERT(t.ttft_p99 >= 50000000 && t.ttft_p99 < 50000000 * 1.02);
	/* No decode step source: unknown, not zero. */
	CU_ASSERT(isnan(t.token_p50));
	CU_ASSERT_EQUAL(t.n_threads, 1);
	CU_ASSERT_DOUBLE_EQUAL(t.thread[0].cpu_pct, 75, 1e-6);
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	ctl_top_print(&t, mem);
	fclose(mem);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "75 %"));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "g0.worker0"));
	free(text);
	cJSON *j = ctl_top_json(&t);
	CU_ASSERT(cJSON_IsNull(cJSON_GetObjectItem(j, "token_p50_us")));
	CU_ASSERT_DOUBLE_EQUAL(
		cJSON_GetNumberValue(cJSON_GetObjectItem(j, "requests_per_s")),
		50, 1e-9);
	cJSON_Delete(j);
	ctl_top_free(&t);

	/* The first sample alone: no rates yet. */
	CU_ASSERT_EQUAL(ctl_top_compute(NULL, cur, &t), 0);
	CU_ASSERT(isnan(t.req_s));
	CU_ASSERT(isnan(t.thread[0].cpu_pct));
	ctl_top_free(&t);
	cJSON *junk = cJSON_Parse("{\"x\":1}");
	CU_ASSERT_EQUAL(ctl_top_compute(NULL, junk, &t), SLM_EPROTO);
	cJSON_Delete(junk);
	cJSON_Delete(prev);
	cJSON_Delete(cur);
}

static char *render_model(const char *op, const char *json)
{
	cJSON *r = cJSON_Parse(json);
	CU_ASSERT_PTR_NOT_NULL(r);
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	ctl_render_model(op, r, mem);
	fclose(mem);
	cJSON_Delete(r);
	return text;
}

/* model list: one row per model, load progress in the state, sizes in
 * MiB (weights times copies), the error of a failed load below it. */
static void test_model(void)
{
	char *t = render_model(
		"list",
		"{\"models\":[{\"name\":\"llama-s\",\"state\":\"serving\","
		"\"weight_bytes\":3879731,\"copies\":2,\"kv_bytes\":"
		"268435456,\"running\":3,\"path\":\"/m/a.gguf\","
		"\"error\":null},{\"name\":\"qwen2-s\",\"state\":"
		"\"loading\",\"percent\":42,\"phase\":\"weights\","
		"\"swap_pending\":true,\"weight_bytes\":6000000,\"copies\":"
		"1,\"kv_bytes\":268435456,\"running\":0,\"path\":"
		"\"/m/b.gguf\"},{\"name\":\"bad\",\"state\":\"failed\","
		"\"error\":\"cannot read "
		"/m/c.gguf\",\"path\":\"/m/c.gguf\"}]}");
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "NAME"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "llama-s              serving"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "7.4 MiB"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "256.0 MiB"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "loading 42% (weights), then swap"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "  error: cannot read /m/c.gguf\n"));
	free(t);
	t = render_model("swap", "{\"model\":{\"name\":\"qwen2-s\"},"
				 "\"switched\":true}");
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "qwen2-s serves new requests now"));
	free(t);
	t = render_model("unload", "{\"unloaded\":\"qwen2-s\"}");
	CU_ASSERT_STRING_EQUAL(t, "unloaded qwen2-s\n");
	free(t);
}

SLM_SUITE("render", NULL, NULL, {"durations", test_durations},
	  {"tables", test_tables}, {"top", test_top},
	  {"model list, swap, unload", test_model})
