/*
 * test_serve.c: the serving core (daemon/serve.h) on the golden models,
 * in process.
 *
 *  - greedy output with a prefix-cache hit equals the output without
 *    (and the hit is counted);
 *  - requests run concurrently (batched together, in any mix of prefill
 *    and decode) give the tokens they give one by one, on llama-s F32 and
 *    on the quantized qwen2-s Q4_K_M (different batch compositions round
 *    differently only where the kernels' paths differ; greedy tokens must
 *    agree);
 *  - on a KV pool too small for them all, sequences are preempted and
 *    recomputed, and give the same tokens;
 *  - cancel frees every block; a deadline ends a request; a full queue
 *    refuses with EOVERLOAD; drain refuses with ESTATE; bad requests get
 *    EINVAL / ETOOBIG; namespaces keep tenants apart; chat input; the
 *    counters;
 *  - the leaders' perf counters and stage histograms (ctl/perf.h) move by
 *    exactly the requests, tokens, cache hits and decode steps run, and
 *    the control-socket source (daemon/serve_ctl.h) shows the finish
 *    reasons and KV blocks, a flush included.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "ctl/ctl.h"
#include "ctl/perf.h"
#include "daemon/serve.h"
#include "daemon/serve_ctl.h"
#include "tests/unit/harness.h"

#define MAX_GEN 256

/* What a request received. */
struct got {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int32_t ids[MAX_GEN];
	uint32_t n_ids;
	char text[4096];
	size_t text_len;
	int n_token_events;
	struct slm_event last; /* the DONE event (pointers not kept) */
	int n_done;
};

static void on_event(void *ctx, const struct slm_event *ev)
{
	struct got *g = ctx;
	pthread_mutex_lock(&g->mu);
	if (ev->kind == SLM_EVENT_TOKENS) {
		g->n_token_events++;
		for (uint32_t i = 0; i < ev->n_ids && g->n_ids < MAX_GEN; i++)
			g->ids[g->n_ids++] = ev->ids[i];
		size_t n = ev->text_len;
		if (g->text_len + n >= sizeof(g->text))
			n = sizeof(g->text) - 1 - g->text_len;
		memcpy(g->text + g->text_len, ev->text, n);
		g->text_len += n;
	} else {
		g->last = *ev;
		g->last.error_msg = NULL;
		g->n_done++;
		g->done = true;
		pthread_cond_broadcast(&g->cv);
	}
	pthread_mutex_unlock(&g->mu);
}

static struct got *got_new(void)
{
	struct got *g = calloc(1, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
	return g;
}

static void got_wait(struct got *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->done)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void got_free(struct got *g)
{
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
	free(g);
}

/* DONE comes before the request's last bookkeeping: wait for idle. */
static bool wait_idle(struct slm_serve *sv)
{
	for (int i = 0; i < 1000; i++) {
		if (slm_serve_idle(sv))
			return true;
		slm_sleep_ns(1000000);
	}
	return false;
}

/* The counters once every accepted request is done and the groups have
 * published them (they do when they go idle). */
static void settled_stats(struct slm_serve *sv, struct slm_serve_stats *st)
{
	CU_ASSERT(wait_idle(sv));
	for (int i = 0; i < 1000; i++) {
		slm_serve_stats_get(sv, st);
		uint64_t done = 0;
		for (int k = 0; k < 5; k++)
			done += st->finished[k];
		if (done == st->submitted && !st->running)
			return;
		slm_sleep_ns(1000000);
	}
	CU_FAIL("the counters never caught up");
}

static const char *model_file(const char *name)
{
	const char *p = slm_test_generated(name);
	return access(p, R_OK) == 0 ? p : NULL;
}

static enum slm_log_level saved_level = SLM_LOG_INFO;

/* A serving core on `model` with extra settings "k=v" (NULL-ended). */
static struct slm_serve *start(struct slm_config **cfg_out, const char *model,
			       const char *const *sets)
{
	struct slm_config *cfg = slm_config_create();
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(slm_config_set(cfg, "model.path", model, &err),
			      0);
	static const char *const base[] = {"engine.threads=2",
					   "engine.spin_us=200",
					   "engine.ctx=512",
					   "cache.kv_tokens=8192",
					   "model.load=read",
					   "log.level=warn",
					   NULL};
	for (int pass = 0; pass < 2; pass++)
		for (const char *const *s = pass ? sets : base; s && *s; s++) {
			if (slm_config_set_arg(cfg, *s, &err))
				printf("\n    %s\n", err.msg);
		}
	struct slm_serve *sv = NULL;
	/* the plan's warnings about this small box are not news here */
	saved_level = slm_log_get_level();
	slm_log_set_level(SLM_LOG_ERROR);
	if (slm_serve_create(cfg, NULL, NULL, &sv, &err)) {
		printf("\n    %s\n", err.msg);
		CU_FAIL("slm_serve_create");
		slm_config_destroy(cfg);
		return NULL;
	}
	*cfg_out = cfg;
	return sv;
}

static void finish_core(struct slm_serve *sv, struct slm_config *cfg)
{
	slm_serve_destroy(sv);
	slm_config_destroy(cfg);
	slm_log_set_level(saved_level);
}

static void ids_prompt(int32_t *ids, uint32_t n, uint64_t seed, uint32_t nv)
{
	struct slm_test_rng rng = {seed};
	ids[0] = 1;
	for (uint32_t i = 1; i < n; i++)
		ids[i] = 3 + (int32_t)(slm_test_rand(&rng) % (nv - 3));
}

static int submit_ids(struct slm_serve *sv, const int32_t *ids, uint32_t n,
		      uint32_t max_new, struct got *g, uint64_t *id)
{
	struct slm_request rq = {.input = SLM_INPUT_IDS,
				 .ids = ids,
				 .n_ids = n,
				 .on_event = on_event,
				 .ctx = g};
	slm_gen_params_default(&rq.gen);
	rq.gen.temperature = 0;
	rq.gen.max_tokens = max_new;
	rq.gen.ignore_eos = true;
	struct slm_error err = {0};
	uint64_t dummy;
	int rc = slm_serve_submit(sv, &rq, id ? id : &dummy, &err);
	if (rc && rc != SLM_EOVERLOAD && rc != SLM_ESTATE)
		printf("\n    submit: %s\n", err.msg);
	return rc;
}

/* Greedy tokens of one request run alone. */
static void run_one(struct slm_serve *sv, const int32_t *ids, uint32_t n,
		    uint32_t max_new, struct got *g)
{
	CU_ASSERT_EQUAL_FATAL(submit_ids(sv, ids, n, max_new, g, NULL), 0);
	got_wait(g);
}

static bool same_tokens(const struct got *a, const struct got *b)
{
	return a->n_ids == b->n_ids &&
	       !memcmp(a->ids, b->ids, a->n_ids * sizeof(int32_t));
}

static void test_prefix_hit_same_output(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, m, NULL);
	if (!sv)
		return;
	enum { N = 100 };
	int32_t ids[N];
	ids_prompt(ids, N, 5, 1024);
	struct got *cold = got_new(), *warm = got_new(), *part = got_new();
	run_one(sv, ids, N, 24, cold);
	CU_ASSERT_EQUAL(cold->last.usage.cached_tokens, 0);
	run_one(sv, ids, N, 24, warm);
	/* everything cached (6 full blocks and a tail) but the last token,
	 * recomputed for its logits */
	CU_ASSERT_EQUAL(warm->last.usage.cached_tokens, 99);
	CU_ASSERT(same_tokens(cold, warm));
	CU_ASSERT_EQUAL(cold->n_ids, 24);
	CU_ASSERT_EQUAL(cold->last.finish, SLM_FINISH_LENGTH);
	/* a prompt sharing 40 tokens: 2 blocks from the cache, same result
	 * as computed from scratch on a fresh core */
	int32_t ids2[N];
	memcpy(ids2, ids, sizeof(ids));
	ids2[40] = 7;
	run_one(sv, ids2, N, 24, part);
	CU_ASSERT_EQUAL(part->last.usage.cached_tokens, 32);
	struct slm_serve_stats st;
	settled_stats(sv, &st);
	finish_core(sv, cfg);
	sv = start(&cfg, m, (const char *const[]){"cache.prefix=false", NULL});
	struct got *fresh = got_new();
	run_one(sv, ids2, N, 24, fresh);
	CU_ASSERT_EQUAL(fresh->last.usage.cached_tokens, 0);
	CU_ASSERT(same_tokens(part, fresh));
	CU_ASSERT(st.cache_hit_tokens >= 99 + 32);
	CU_ASSERT(st.cache_lookups >= 3);
	CU_ASSERT_EQUAL(st.submitted, 3);
	finish_core(sv, cfg);
	got_free(cold);
	got_free(warm);
	got_free(part);
	got_free(fresh);
}

/* n requests of different prompts, one by one and then all at once. */
static void concurrent_vs_alone(const char *model, uint32_t nv,
				const char *const *sets, int n, bool expect_pre)
{
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, model, NULL);
	if (!sv)
		return;
	enum { LEN = 60, GEN = 40 };
	int32_t ids[16][LEN];
	uint32_t len[16];
	struct got *alone[16], *conc[16];
	for (int i = 0; i < n; i++) {
		len[i] = 5 + (uint32_t)i * 3;
		ids_prompt(ids[i], len[i], 100 + (uint64_t)i, nv);
		alone[i] = got_new();
		conc[i] = got_new();
		run_one(sv, ids[i], len[i], GEN, alone[i]);
	}
	finish_core(sv, cfg);
	/* a fresh core (no cache), everything at once */
	sv = start(&cfg, model, sets);
	if (!sv)
		return;
	for (int i = 0; i < n; i++)
		CU_ASSERT_EQUAL(
			submit_ids(sv, ids[i], len[i], GEN, conc[i], NULL), 0);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		got_wait(conc[i]);
		CU_ASSERT_EQUAL(conc[i]->n_done, 1);
		if (!same_tokens(alone[i], conc[i])) {
			bad++;
			uint32_t k = 0;
			while (k < alone[i]->n_ids &&
			       alone[i]->ids[k] == conc[i]->ids[k])
				k++;
			printf("\n    request %d: %u tokens alone, %u batched, "
			       "first difference at %u",
			       i, alone[i]->n_ids, conc[i]->n_ids, k);
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
	struct slm_serve_stats st;
	settled_stats(sv, &st);
	/* they really ran together */
	CU_ASSERT(st.forward_passes < (uint64_t)n * GEN);
	if (expect_pre) {
		printf("\n    %llu preemptions ",
		       (unsigned long long)st.preemptions);
		CU_ASSERT(st.preemptions > 0);
	}
	finish_core(sv, cfg);
	for (int i = 0; i < n; i++) {
		got_free(alone[i]);
		got_free(conc[i]);
	}
}

static void test_concurrent_f32(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	concurrent_vs_alone(m, 1024, NULL, 12, false);
}

/* The golden prompts of one model file: ids, llama.cpp's greedy ids and
 * top-1 margins.  Returns how many (at most max). */
struct golden {
	int32_t prompt[64], gen[64];
	double margin[64];
	int np, ng;
};

static int golden_of(const char *model, struct golden *out, int max)
{
	size_t size;
	char *buf =
		slm_test_read_file(slm_test_data("golden/greedy.jsonl"), &size);
	if (!buf)
		return 0;
	int n = 0;
	char *save = NULL;
	for (char *line = strtok_r(buf, "\n", &save); line && n < max;
	     line = strtok_r(NULL, "\n", &save)) {
		cJSON *o = cJSON_Parse(line);
		cJSON *m = cJSON_GetObjectItem(o, "model");
		if (!m || !cJSON_IsString(m) || strcmp(m->valuestring, model)) {
			cJSON_Delete(o);
			continue;
		}
		struct golden *g = &out[n++];
		memset(g, 0, sizeof(*g));
		cJSON *it;
		int nm = 0;
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "prompt_ids"))
		{
			if (g->np < 64)
				g->prompt[g->np++] = (int32_t)it->valueint;
		}
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(o, "gen_ids"))
		{
			if (g->ng < 64)
				g->gen[g->ng++] = (int32_t)it->valueint;
		}
		cJSON_ArrayForEach(it,
				   cJSON_GetObjectItem(o, "top1_minus_top2"))
		{
			if (nm < 64)
				g->margin[nm++] = it->valuedouble;
		}
		cJSON_Delete(o);
	}
	free(buf);
	return n;
}

/*
 * Quantized weights: a sequence decoded in a batch of several tokens goes
 * through other matrix-product paths (the 2-7 token GEMV, the tiled GEMM)
 * than one decoded alone, which sum the same integer products in another
 * order: logits move by float rounding, and a random prompt with a near
 * tie may then take the other token.  So on the golden prompts of the
 * golden quantized models: each prompt alone, then three copies of each
 * plus filler requests all at once; the batched tokens must equal the
 * alone tokens at every step up to the first where llama.cpp's top-1
 * margin is below 0.5 (the golden tolerance of quantized files,
 * test_parity.c) or where our own greedy leaves llama.cpp's.
 */
static void test_concurrent_quantized(void)
{
	static const char *const files[] = {"models/qwen2-s-Q4_K_M.gguf",
					    "models/llama-s-Q4_K_M.gguf",
					    "models/llama3-s-Q4_0.gguf"};
	int compared = 0, files_run = 0;
	for (size_t f = 0; f < SLM_ARRAY_LEN(files); f++) {
		const char *m = model_file(files[f]);
		struct golden gold[4];
		int ng = golden_of(files[f], gold, 4);
		if (!m || !ng)
			continue;
		files_run++;
		struct slm_config *cfg;
		struct slm_serve *sv = start(&cfg, m, NULL);
		if (!sv)
			return;
		struct got *alone[4], *conc[12], *fill[4];
		for (int i = 0; i < ng; i++) {
			alone[i] = got_new();
			run_one(sv, gold[i].prompt, (uint32_t)gold[i].np, 48,
				alone[i]);
		}
		for (int i = 0; i < 3 * ng; i++)
			CU_ASSERT_EQUAL(submit_ids(sv, gold[i % ng].prompt,
						   (uint32_t)gold[i % ng].np,
						   48, conc[i] = got_new(),
						   NULL),
					0);
		int32_t filler[40];
		for (int i = 0; i < 4; i++) {
			ids_prompt(filler, 40, 50 + (uint64_t)i, 1000);
			CU_ASSERT_EQUAL(submit_ids(sv, filler, 40, 30,
						   fill[i] = got_new(), NULL),
					0);
		}
		for (int i = 0; i < 3 * ng; i++) {
			struct golden *gd = &gold[i % ng];
			struct got *a = alone[i % ng];
			got_wait(conc[i]);
			int upto = 0;
			while (upto < gd->ng && upto < (int)a->n_ids &&
			       gd->margin[upto] >= 0.5 &&
			       a->ids[upto] == gd->gen[upto])
				upto++;
			/* the step after the last agreement is compared
			 * too: the same context, a margin >= 0.5 */
			if (upto < gd->ng && upto < (int)a->n_ids &&
			    gd->margin[upto] >= 0.5)
				upto++;
			for (int k = 0; k < upto; k++)
				if (conc[i]->ids[k] != a->ids[k]) {
					printf("\n    %s prompt %d copy %d: "
					       "step %d batched %d alone %d "
					       "(golden margin %.3f)",
					       files[f], i % ng, i / ng, k,
					       conc[i]->ids[k], a->ids[k],
					       gd->margin[k]);
					CU_FAIL("batched differs from alone");
					break;
				}
			compared += upto;
		}
		for (int i = 0; i < 4; i++) {
			got_wait(fill[i]);
			got_free(fill[i]);
		}
		finish_core(sv, cfg);
		for (int i = 0; i < ng; i++)
			got_free(alone[i]);
		for (int i = 0; i < 3 * ng; i++)
			got_free(conc[i]);
	}
	if (!files_run) {
		slm_test_skip("the golden quantized models are not generated");
		return;
	}
	printf("\n    %d steps compared on %d files ", compared, files_run);
	CU_ASSERT(compared >= 20 * files_run);
}

/* 8 sequences of up to 100 positions on a pool of 20 blocks (320
 * positions): decodes run out of blocks, the newest sequences are
 * preempted and recomputed. */
static void test_preemption(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	concurrent_vs_alone(m, 1024,
			    (const char *const[]){"cache.kv_tokens=320", NULL},
			    8, true);
}

static void test_cancel_frees(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, m, NULL);
	if (!sv)
		return;
	int32_t ids[50];
	ids_prompt(ids, 50, 9, 1024);
	struct got *g = got_new(), *w = got_new();
	uint64_t id = 0, id2 = 0;
	CU_ASSERT_EQUAL(submit_ids(sv, ids, 50, 0, g, &id), 0);
	CU_ASSERT_EQUAL(submit_ids(sv, ids, 40, 0, w, &id2), 0);
	/* wait for some tokens, then cancel both */
	for (int i = 0; i < 2000; i++) {
		pthread_mutex_lock(&g->mu);
		uint32_t n = g->n_ids;
		pthread_mutex_unlock(&g->mu);
		if (n >= 5)
			break;
		slm_sleep_ns(1000000);
	}
	CU_ASSERT_EQUAL(slm_serve_cancel(sv, id), 0);
	CU_ASSERT_EQUAL(slm_serve_cancel(sv, id2), 0);
	got_wait(g);
	got_wait(w);
	CU_ASSERT_EQUAL(g->last.finish, SLM_FINISH_CANCELED);
	CU_ASSERT_EQUAL(w->last.finish, SLM_FINISH_CANCELED);
	CU_ASSERT_EQUAL(slm_serve_cancel(sv, id), SLM_ENOTFOUND);
	CU_ASSERT_EQUAL(slm_serve_cancel(sv, 987654321), SLM_ENOTFOUND);
	CU_ASSERT(wait_idle(sv));
	/* nothing in use; after a flush every block is free */
	struct slm_serve_stats st;
	settled_stats(sv, &st);
	CU_ASSERT_EQUAL(st.blocks_in_use, 0);
	CU_ASSERT_EQUAL(st.running, 0);
	CU_ASSERT_EQUAL(st.finished[SLM_FINISH_CANCELED], 2);
	/* the flush is done (and published) when it returns */
	CU_ASSERT(slm_serve_cache_flush(sv) > 0);
	slm_serve_stats_get(sv, &st);
	CU_ASSERT_EQUAL(st.blocks_free, st.blocks_total);
	CU_ASSERT_EQUAL(st.blocks_cached, 0);
	finish_core(sv, cfg);
	got_free(g);
	got_free(w);
}

static void test_deadline_overload_drain(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv =
		start(&cfg, m,
		      (const char *const[]){"serve.max_running=1",
					    "serve.max_queue=2", NULL});
	if (!sv)
		return;
	int32_t ids[20];
	ids_prompt(ids, 20, 3, 1024);
	/* a deadline 30 ms away ends a long request */
	struct got *d = got_new();
	struct slm_request rq = {.input = SLM_INPUT_IDS,
				 .ids = ids,
				 .n_ids = 20,
				 .on_event = on_event,
				 .ctx = d};
	slm_gen_params_default(&rq.gen);
	rq.gen.ignore_eos = true;
	rq.deadline_ns = slm_now_ns() + 30 * 1000000ull;
	uint64_t id;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), 0);
	got_wait(d);
	CU_ASSERT_EQUAL(d->last.finish, SLM_FINISH_DEADLINE);
	CU_ASSERT(d->last.timings.total_us >= 30000);
	/* one running, two queued, the fourth refused */
	struct got *g[4];
	int rc[4];
	uint64_t ids_out[4];
	for (int i = 0; i < 4; i++) {
		g[i] = got_new();
		rc[i] = submit_ids(sv, ids, 20, 400, g[i], &ids_out[i]);
	}
	int overloaded = 0;
	for (int i = 0; i < 4; i++)
		overloaded += rc[i] == SLM_EOVERLOAD;
	CU_ASSERT(overloaded >= 1);
	/* drain: new submits refused, queued ones go on */
	slm_serve_drain(sv);
	struct got *late = got_new();
	CU_ASSERT_EQUAL(submit_ids(sv, ids, 20, 4, late, NULL), SLM_ESTATE);
	for (int i = 0; i < 4; i++)
		if (!rc[i])
			CU_ASSERT_EQUAL(slm_serve_cancel(sv, ids_out[i]), 0);
	for (int i = 0; i < 4; i++)
		if (!rc[i]) {
			got_wait(g[i]);
			CU_ASSERT_EQUAL(g[i]->n_done, 1);
		}
	CU_ASSERT(wait_idle(sv));
	CU_ASSERT(slm_serve_healthy(sv));
	struct slm_serve_stats st;
	settled_stats(sv, &st);
	CU_ASSERT_EQUAL(st.refused_overload, (uint64_t)overloaded);
	CU_ASSERT_EQUAL(st.refused_state, 1);
	finish_core(sv, cfg);
	for (int i = 0; i < 4; i++)
		got_free(g[i]);
	got_free(d);
	got_free(late);
}

static void test_bad_requests(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, m, NULL);
	if (!sv)
		return;
	struct got *g = got_new();
	int32_t ids[600];
	ids_prompt(ids, 600, 1, 1024);
	struct slm_request rq = {.input = SLM_INPUT_IDS,
				 .ids = ids,
				 .n_ids = 10,
				 .on_event = on_event,
				 .ctx = g};
	slm_gen_params_default(&rq.gen);
	uint64_t id;
	struct slm_error err = {0};
	rq.gen.temperature = -1;
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "temp"));
	slm_gen_params_default(&rq.gen);
	ids[3] = 5000; /* beyond the vocabulary */
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), SLM_EINVAL);
	ids[3] = 5;
	rq.n_ids = 600; /* engine.ctx is 512 */
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), SLM_ETOOBIG);
	rq.n_ids = 0;
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), SLM_EINVAL);
	rq.n_ids = 10;
	rq.on_event = NULL;
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), SLM_EINVAL);
	/* text and chat prompts work */
	rq.on_event = on_event;
	rq.input = SLM_INPUT_TEXT;
	rq.text = "Once upon a time";
	rq.text_len = strlen(rq.text);
	rq.gen.max_tokens = 8;
	rq.gen.temperature = 0;
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), 0);
	got_wait(g);
	CU_ASSERT(g->last.usage.prompt_tokens > 2);
	CU_ASSERT(g->last.usage.generated_tokens >= 1);
	CU_ASSERT(g->last.timings.ttft_us > 0);
	CU_ASSERT(g->last.timings.total_us >= g->last.timings.ttft_us);
	struct got *c = got_new();
	struct slm_chat_msg msgs[2] = {{"system", "Be brief."},
				       {"user", "Hello"}};
	rq.input = SLM_INPUT_CHAT;
	rq.messages = msgs;
	rq.n_messages = 2;
	rq.ctx = c;
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), 0);
	got_wait(c);
	CU_ASSERT(c->last.usage.prompt_tokens > g->last.usage.prompt_tokens);
	rq.chat_template = "no-such-template";
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), SLM_EINVAL);
	struct slm_serve_info info;
	CU_ASSERT(slm_serve_describe(sv, &info));
	CU_ASSERT_STRING_EQUAL(info.name, "llama-s");
	CU_ASSERT_EQUAL(info.n_ctx, 512);
	CU_ASSERT_EQUAL(info.n_vocab, 1024);
	/* the control socket's views */
	cJSON *o = cJSON_CreateObject();
	CU_ASSERT_EQUAL(slm_serve_status_json(sv, o), 0);
	CU_ASSERT_STRING_EQUAL(cJSON_GetObjectItem(o, "name")->valuestring,
			       "llama-s");
	cJSON_Delete(o);
	struct slm_serve_stats st;
	settled_stats(sv, &st);
	o = cJSON_CreateObject();
	CU_ASSERT_EQUAL(slm_serve_stats_json(sv, o), 0);
	CU_ASSERT_EQUAL(cJSON_GetObjectItem(o, "requests_total")->valuedouble,
			2);
	CU_ASSERT(
		cJSON_GetObjectItem(o, "tokens_generated_total")->valuedouble >=
		2);
	CU_ASSERT_EQUAL(
		cJSON_GetObjectItem(
			cJSON_GetObjectItem(o, "requests_refused_total"),
			"invalid")
			->valuedouble,
		5);
	cJSON_Delete(o);
	o = cJSON_CreateObject();
	CU_ASSERT_EQUAL(slm_serve_cache_ctl(sv, "flush", o, &err), 0);
	CU_ASSERT_EQUAL(slm_serve_cache_ctl(sv, "nope", o, &err), SLM_EINVAL);
	CU_ASSERT_EQUAL(slm_serve_cache_ctl(sv, NULL, o, &err), 0);
	CU_ASSERT_PTR_NOT_NULL(cJSON_GetObjectItem(o, "kv_blocks"));
	cJSON_Delete(o);
	finish_core(sv, cfg);
	got_free(g);
	got_free(c);
}

static void test_namespaces(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv = start(
		&cfg, m, (const char *const[]){"cache.namespaces=true", NULL});
	if (!sv)
		return;
	int32_t ids[70];
	ids_prompt(ids, 70, 21, 1024);
	const char *ns[4] = {"alice", "bob", "alice", NULL};
	uint32_t cached[4];
	for (int i = 0; i < 4; i++) {
		struct got *g = got_new();
		struct slm_request rq = {.input = SLM_INPUT_IDS,
					 .ids = ids,
					 .n_ids = 70,
					 .cache_namespace = ns[i],
					 .on_event = on_event,
					 .ctx = g};
		slm_gen_params_default(&rq.gen);
		rq.gen.max_tokens = 2;
		uint64_t id;
		struct slm_error err = {0};
		CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), 0);
		got_wait(g);
		cached[i] = g->last.usage.cached_tokens;
		got_free(g);
	}
	CU_ASSERT_EQUAL(cached[0], 0);
	CU_ASSERT_EQUAL(cached[1], 0);	/* bob does not see alice's */
	CU_ASSERT_EQUAL(cached[2], 69); /* alice sees her own */
	CU_ASSERT_EQUAL(cached[3], 0);	/* the shared namespace neither */
	finish_core(sv, cfg);
}

/* The order DONE events arrive in (any thread). */
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;
static int order[16], n_order;

struct ordered {
	struct got *g;
	int index;
};

static void on_event_ordered(void *ctx, const struct slm_event *ev)
{
	struct ordered *o = ctx;
	if (ev->kind == SLM_EVENT_DONE) {
		pthread_mutex_lock(&order_mu);
		order[n_order++] = o->index;
		pthread_mutex_unlock(&order_mu);
	}
	on_event(o->g, ev);
}

/*
 * First come, first served: with one sequence at a time, requests finish
 * in the order they came, long or short; a request whose deadline passes
 * while it waits ends with DEADLINE without running.
 */
static void test_fcfs_and_waiting_deadline(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv = start(
		&cfg, m, (const char *const[]){"serve.max_running=1", NULL});
	if (!sv)
		return;
	enum { N = 6 };
	int32_t ids[N][64];
	struct ordered o[N + 1];
	n_order = 0;
	for (int i = 0; i <= N; i++) {
		o[i].g = got_new();
		o[i].index = i;
	}
	for (int i = 0; i < N; i++) {
		/* long and short prompts and generations, alternating */
		uint32_t len = i % 2 ? 60 : 5, gen = i % 2 ? 4 : 30;
		ids_prompt(ids[i], len, 400 + (uint64_t)i, 1024);
		struct slm_request rq = {.input = SLM_INPUT_IDS,
					 .ids = ids[i],
					 .n_ids = len,
					 .on_event = on_event_ordered,
					 .ctx = &o[i]};
		slm_gen_params_default(&rq.gen);
		rq.gen.temperature = 0;
		rq.gen.max_tokens = gen;
		rq.gen.ignore_eos = true;
		uint64_t id;
		struct slm_error err = {0};
		CU_ASSERT_EQUAL(slm_serve_submit(sv, &rq, &id, &err), 0);
		if (i == 0) {
			/* one that cannot wait: 1 ms, behind request 0 */
			struct slm_request dl = rq;
			dl.ctx = &o[N];
			dl.deadline_ns = slm_now_ns() + 1000000;
			CU_ASSERT_EQUAL(slm_serve_submit(sv, &dl, &id, &err),
					0);
		}
	}
	for (int i = 0; i <= N; i++)
		got_wait(o[i].g);
	CU_ASSERT_EQUAL(o[N].g->last.finish, SLM_FINISH_DEADLINE);
	CU_ASSERT_EQUAL(o[N].g->last.usage.generated_tokens, 0);
	int k = 0, inversions = 0;
	for (int j = 0; j < n_order; j++) {
		if (order[j] == N)
			continue;
		inversions += order[j] != k++;
	}
	CU_ASSERT_EQUAL(inversions, 0);
	finish_core(sv, cfg);
	for (int i = 0; i <= N; i++)
		got_free(o[i].g);
}

/*
 * Two worker groups (a synthetic two-node topology: threads unpinned,
 * memory not bound): requests spread over both, each gives the tokens a
 * single group gives, and a repeated prompt goes back to the group that
 * caches it (prefix affinity) and hits.
 */
static void test_two_groups(void)
{
	const char *m = model_file("models/llama-s-F32.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-F32.gguf is not generated");
		return;
	}
	enum { N = 6, LEN = 40, GEN = 16 };
	int32_t ids[N][LEN];
	struct got *one[N], *two[N];
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, m, NULL);
	if (!sv)
		return;
	for (int i = 0; i < N; i++) {
		ids_prompt(ids[i], LEN, 300 + (uint64_t)i, 1024);
		run_one(sv, ids[i], LEN, GEN, one[i] = got_new());
	}
	finish_core(sv, cfg);
	sv = start(&cfg, m,
		   (const char *const[]){
			   "numa.topology=synthetic:package:1 numa:2 core:2 "
			   "pu:1",
			   "engine.threads=1", NULL});
	if (!sv)
		return;
	struct slm_serve_info info;
	CU_ASSERT(slm_serve_describe(sv, &info));
	CU_ASSERT_EQUAL(info.n_groups, 2);
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(submit_ids(sv, ids[i], LEN, GEN,
					   two[i] = got_new(), NULL),
				0);
	int bad = 0;
	for (int i = 0; i < N; i++) {
		got_wait(two[i]);
		bad += !same_tokens(one[i], two[i]);
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* the same prompts again, one at a time: each finds its cache */
	uint32_t hits = 0;
	for (int i = 0; i < N; i++) {
		struct got *g = got_new();
		run_one(sv, ids[i], LEN, 2, g);
		hits += g->last.usage.cached_tokens == LEN - 1;
		got_free(g);
	}
	CU_ASSERT_EQUAL(hits, N);
	finish_core(sv, cfg);
	for (int i = 0; i < N; i++) {
		got_free(one[i]);
		got_free(two[i]);
	}
}

/* What the perf snapshot says now (every registered and exited thread,
 * every source): counter sums and stage counts. */
struct perf_now {
	uint64_t requests, done, tokens, hit, miss, prompt;
	uint64_t queue_wait, prefill, first_token, decode_step, detokenize;
	double finished_length, kv_total, kv_cached;
	bool have_source;
};

static uint64_t stage_count(const struct perf_snapshot *snap, const char *st)
{
	const struct perf_family *f = perf_snapshot_find(snap, "stage_seconds");
	uint64_t n = 0;
	for (int i = 0; f && i < f->n_samples; i++) {
		const char *l = perf_sample_label(&f->sample[i], "stage");
		if (l && !strcmp(l, st) && f->sample[i].hist)
			n += f->sample[i].hist->count;
	}
	return n;
}

static double gauge_sum(const struct perf_snapshot *snap, const char *name)
{
	const struct perf_family *f = perf_snapshot_find(snap, name);
	double v = 0;
	for (int i = 0; f && i < f->n_samples; i++)
		v += f->sample[i].value;
	return v;
}

static void perf_read(struct perf_now *p)
{
	memset(p, 0, sizeof(*p));
	struct perf_snapshot *snap = perf_snapshot_take();
	CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
	p->requests =
		perf_family_sum(perf_snapshot_find(snap, "requests_total"));
	p->done = perf_family_sum(
		perf_snapshot_find(snap, "requests_done_total"));
	p->tokens = perf_family_sum(
		perf_snapshot_find(snap, "tokens_generated_total"));
	p->hit = perf_family_sum(
		perf_snapshot_find(snap, "prefix_hit_tokens_total"));
	p->miss = perf_family_sum(
		perf_snapshot_find(snap, "prefix_miss_tokens_total"));
	p->prompt = perf_family_sum(
		perf_snapshot_find(snap, "prompt_tokens_total"));
	p->queue_wait = stage_count(snap, "queue_wait");
	p->prefill = stage_count(snap, "prefill");
	p->first_token = stage_count(snap, "first_token");
	p->decode_step = stage_count(snap, "decode_step");
	p->detokenize = stage_count(snap, "detokenize");
	const struct perf_family *f =
		perf_snapshot_find(snap, "requests_finished_total");
	p->have_source = f != NULL;
	for (int i = 0; f && i < f->n_samples; i++) {
		const char *r = perf_sample_label(&f->sample[i], "reason");
		if (r && !strcmp(r, "length"))
			p->finished_length += (double)f->sample[i].count;
	}
	p->kv_total = gauge_sum(snap, "kv_blocks_total");
	p->kv_cached = gauge_sum(snap, "kv_blocks_cached");
	perf_snapshot_free(snap);
}

static int dummy_status(void *ctx, cJSON *section)
{
	return 0;
}

static void test_perf_counters(void)
{
	const char *m = model_file("models/llama-s-Q8_0.gguf");
	if (!m) {
		slm_test_skip("models/llama-s-Q8_0.gguf is not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, m, NULL);
	if (!sv)
		return;
	struct slm_error err = {0};
	/* a name another component holds: nothing stays registered, and
	 * the other's registration is left alone */
	CU_ASSERT_EQUAL(ctl_register_status("groups", dummy_status, NULL), 0);
	CU_ASSERT_EQUAL(slm_serve_ctl_register(sv, &err), SLM_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "'groups'"));
	CU_ASSERT_EQUAL(ctl_register_status("model", dummy_status, NULL), 0);
	ctl_unregister_status("model");
	CU_ASSERT_EQUAL(ctl_register_status("groups", dummy_status, NULL),
			SLM_EBUSY);
	ctl_unregister_status("groups");
	CU_ASSERT_EQUAL_FATAL(slm_serve_ctl_register(sv, &err), 0);
	/* a second core in the process cannot take the names */
	CU_ASSERT_EQUAL(slm_serve_ctl_register(sv, &err), SLM_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "control socket"));
	enum { N = 3, LEN = 40, GEN = 8 };
	int32_t ids[LEN];
	ids_prompt(ids, LEN, 77, 1024);
	struct perf_now a, b;
	CU_ASSERT(wait_idle(sv));
	perf_read(&a);
	CU_ASSERT(a.have_source);
	uint64_t hit = 0, gen = 0;
	for (int i = 0; i < N; i++) {
		struct got *g = got_new();
		run_one(sv, ids, LEN, GEN, g);
		hit += g->last.usage.cached_tokens;
		gen += g->last.usage.generated_tokens;
		got_free(g);
	}
	CU_ASSERT_EQUAL(gen, N * GEN);
	CU_ASSERT_EQUAL(hit, (N - 1) * (LEN - 1));
	struct slm_serve_stats st;
	settled_stats(sv, &st);
	perf_read(&b);
	CU_ASSERT_EQUAL(b.requests - a.requests, N);
	CU_ASSERT_EQUAL(b.done - a.done, N);
	CU_ASSERT_EQUAL(b.prompt - a.prompt, N * LEN);
	CU_ASSERT_EQUAL(b.tokens - a.tokens, gen);
	CU_ASSERT_EQUAL(b.hit - a.hit, hit);
	CU_ASSERT_EQUAL(b.miss - a.miss, N * LEN - hit);
	CU_ASSERT_EQUAL(b.queue_wait - a.queue_wait, N);
	CU_ASSERT_EQUAL(b.prefill - a.prefill, N);
	CU_ASSERT_EQUAL(b.first_token - a.first_token, N);
	/* one at a time: every token after the first is one decode step */
	CU_ASSERT_EQUAL(b.decode_step - a.decode_step, N * (GEN - 1));
	CU_ASSERT_EQUAL(b.detokenize - a.detokenize, gen);
	CU_ASSERT_EQUAL(b.finished_length - a.finished_length, N);
	struct slm_serve_info info;
	CU_ASSERT(slm_serve_describe(sv, &info));
	CU_ASSERT_EQUAL(b.kv_total, info.kv_blocks);
	CU_ASSERT(b.kv_cached > 0);
	CU_ASSERT_STRING_EQUAL(info.file_type, "MOSTLY_Q8_0");
	CU_ASSERT(info.n_params > 0);
	CU_ASSERT(info.load_ns > 0);
	/* a flush is on the books when it returns */
	int dropped = slm_serve_cache_flush(sv);
	CU_ASSERT_EQUAL(dropped, (int)b.kv_cached);
	perf_read(&b);
	CU_ASSERT_EQUAL(b.kv_cached, 0);
	/* and the next repeat computes its prompt again */
	struct got *g = got_new();
	run_one(sv, ids, LEN, GEN, g);
	CU_ASSERT_EQUAL(g->last.usage.cached_tokens, 0);
	got_free(g);
	slm_serve_ctl_unregister();
	perf_read(&b);
	CU_ASSERT_FALSE(b.have_source);
	finish_core(sv, cfg);
	/* the leader's totals outlive it (an "exited" row) */
	perf_read(&a);
	CU_ASSERT(a.requests >= N + 1);
}

SLM_SUITE("serve", NULL, NULL,
	  {"greedy output equal with a prefix-cache hit",
	   test_prefix_hit_same_output},
	  {"concurrent = one by one (llama-s F32)", test_concurrent_f32},
	  {"concurrent = one by one (golden quantized models)",
	   test_concurrent_quantized},
	  {"preemption and recompute give the same tokens", test_preemption},
	  {"cancel frees everything", test_cancel_frees},
	  {"deadline, overload, drain", test_deadline_overload_drain},
	  {"bad requests, text and chat input", test_bad_requests},
	  {"namespaces", test_namespaces},
	  {"first come, first served; a deadline while waiting",
	   test_fcfs_and_waiting_deadline},
	  {"two worker groups, prefix affinity", test_two_groups},
	  {"perf counters, stages and the ctl source", test_perf_counters})
