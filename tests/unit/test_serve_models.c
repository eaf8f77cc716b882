/*
 * test_serve_models.c: the models' life in the serving core
 * (daemon/serve_models.c) on the golden models, in process.
 *
 *  - list: the serving model with its name, path, state, sizes;
 *  - a missing file and a malformed file are refused at once with the
 *    GGUF reader's message, and change nothing;
 *  - load beside: loading -> ready, the same file twice refused, unload
 *    of a ready model frees it, unload of the serving one refused;
 *  - swap under load: requests submitted before the switch finish on
 *    model A with A's tokens, requests after it run on model B (another
 *    vocabulary) with B's tokens (each equal to a core serving that model
 *    alone), none is lost or fails, the counters add up, and A is freed.
 *    F32 models: batched and alone give the same greedy tokens exactly
 *    there (test_serve.c), so a difference is the swap's.  A long
 *    request on A is cancelled while A drains;
 *  - swap by name to a ready model switches at once; to the serving one
 *    is refused;
 *  - a machine too small for two copies refuses the second with the
 *    memory figures.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "daemon/serve.h"
#include "tests/unit/harness.h"

#define MAX_GEN 64

struct got {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	int32_t ids[MAX_GEN];
	uint32_t n_ids;
	enum slm_finish finish;
	int n_done;
};

static void on_event(void *ctx, const struct slm_event *ev)
{
	struct got *g = ctx;
	pthread_mutex_lock(&g->mu);
	if (ev->kind == SLM_EVENT_TOKENS) {
		for (uint32_t i = 0; i < ev->n_ids && g->n_ids < MAX_GEN; i++)
			g->ids[g->n_ids++] = ev->ids[i];
	} else {
		g->finish = ev->finish;
		g->n_done++;
		g->done = true;
		pthread_cond_broadcast(&g->cv);
	}
	pthread_mutex_unlock(&g->mu);
}

static void got_init(struct got *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->mu, NULL);
	pthread_cond_init(&g->cv, NULL);
}

static void got_wait(struct got *g)
{
	pthread_mutex_lock(&g->mu);
	while (!g->done)
		pthread_cond_wait(&g->cv, &g->mu);
	pthread_mutex_unlock(&g->mu);
}

static void got_fini(struct got *g)
{
	pthread_mutex_destroy(&g->mu);
	pthread_cond_destroy(&g->cv);
}

/* The generated model's path (a copy: slm_test_generated's buffer is
 * reused), or NULL when it is not there. */
static const char *model_file(const char *name)
{
	static char paths[4][1024];
	static int next;
	const char *p = slm_test_generated(name);
	if (access(p, R_OK))
		return NULL;
	char *copy = paths[next++ % 4];
	snprintf(copy, sizeof(paths[0]), "%s", p);
	return copy;
}

static enum slm_log_level saved_level = SLM_LOG_INFO;

static struct slm_serve *start(struct slm_config **cfg_out, const char *model,
			       const char *const *sets)
{
	struct slm_config *cfg = slm_config_create();
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(slm_config_set(cfg, "model.path", model, &err),
			      0);
	static const char *const base[] = {"engine.threads=1",
					   "engine.spin_us=0",
					   "engine.ctx=256",
					   "cache.kv_tokens=2048",
					   "model.load=read",
					   "log.level=warn",
					   NULL};
	for (int pass = 0; pass < 2; pass++)
		for (const char *const *s = pass ? sets : base; s && *s; s++)
			if (slm_config_set_arg(cfg, *s, &err))
				printf("\n    %s\n", err.msg);
	saved_level = slm_log_get_level();
	slm_log_set_level(SLM_LOG_ERROR);
	struct slm_serve *sv = NULL;
	if (slm_serve_create(cfg, NULL, NULL, &sv, &err)) {
		printf("\n    %s\n", err.msg);
		CU_FAIL("slm_serve_create");
		slm_config_destroy(cfg);
		slm_log_set_level(saved_level);
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

/* The state of model `name`, or -1 when it is not held. */
static int state_of(struct slm_serve *sv, const char *name)
{
	struct slm_serve_model_info *v = NULL;
	int n = 0, state = -1;
	if (slm_serve_models(sv, &v, &n))
		return -2;
	for (int i = 0; i < n; i++)
		if (!strcmp(v[i].name, name))
			state = (int)v[i].state;
	free(v);
	return state;
}

static int n_models(struct slm_serve *sv)
{
	struct slm_serve_model_info *v = NULL;
	int n = 0;
	if (slm_serve_models(sv, &v, &n))
		return -1;
	free(v);
	return n;
}

/* Wait (up to 10 s) until model `name` is in `state` (-1: gone). */
static bool wait_state(struct slm_serve *sv, const char *name, int state)
{
	for (int i = 0; i < 2000; i++) {
		if (state_of(sv, name) == state)
			return true;
		slm_sleep_ns(5 * 1000 * 1000);
	}
	return false;
}

static int submit_ids_id(struct slm_serve *sv, const int32_t *ids, uint32_t n,
			 uint32_t max_new, struct got *g, uint64_t *id_out);

static int submit_ids(struct slm_serve *sv, const int32_t *ids, uint32_t n,
		      uint32_t max_new, struct got *g)
{
	uint64_t id;
	return submit_ids_id(sv, ids, n, max_new, g, &id);
}

static int submit_ids_id(struct slm_serve *sv, const int32_t *ids, uint32_t n,
			 uint32_t max_new, struct got *g, uint64_t *id_out)
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
	int rc = slm_serve_submit(sv, &rq, id_out, &err);
	if (rc)
		printf("\n    submit: %s\n", err.msg);
	return rc;
}

static void prompt(int32_t *ids, uint32_t n, uint64_t seed)
{
	struct slm_test_rng rng = {seed};
	ids[0] = 1;
	for (uint32_t i = 1; i < n; i++)
		ids[i] = 3 + (int32_t)(slm_test_rand(&rng) % 500);
}

/* ---- tests ------------------------------------------------------------------ */

static void test_list_and_bad_files(void)
{
	const char *a = model_file("models/llama-s-Q8_0.gguf");
	if (!a) {
		slm_test_skip("models/llama-s-Q8_0.gguf is not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, a, NULL);
	if (!sv)
		return;
	struct slm_serve_model_info *v = NULL;
	int n = 0;
	CU_ASSERT_EQUAL_FATAL(slm_serve_models(sv, &v, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(v[0].path, a);
	CU_ASSERT_STRING_EQUAL(v[0].arch, "llama");
	CU_ASSERT_EQUAL(v[0].state, SLM_MODEL_SERVING);
	CU_ASSERT_EQUAL(v[0].percent, 100);
	CU_ASSERT(v[0].weight_bytes > 1000000 && v[0].weight_bytes < 4000000);
	CU_ASSERT_EQUAL(v[0].load_done, v[0].load_total);
	CU_ASSERT(v[0].kv_bytes > 0);
	CU_ASSERT_EQUAL(v[0].running, 0);
	char name[128];
	snprintf(name, sizeof(name), "%s", v[0].name);
	free(v);

	/* a missing file: the reader's message, nothing changes */
	struct slm_error err = {0};
	char missing[512];
	snprintf(missing, sizeof(missing), "%s/no-such-model.gguf",
		 slm_test_tmpdir());
	CU_ASSERT_EQUAL(slm_serve_model_load(sv, missing, false, NULL, &err),
			SLM_ENOTFOUND);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "no-such-model.gguf"));
	/* a malformed file: GGUF magic, then garbage */
	char junk[512];
	snprintf(junk, sizeof(junk), "%s/junk.gguf", slm_test_tmpdir());
	FILE *f = fopen(junk, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs("GGUF\x03\0\0\0garbage that is not a header", f);
	fclose(f);
	err = (struct slm_error){0};
	CU_ASSERT_EQUAL(slm_serve_model_load(sv, junk, false, NULL, &err),
			SLM_EFORMAT);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "junk.gguf"));
	/* swap to a missing file: the same, and the model still serves */
	err = (struct slm_error){0};
	bool switched = true;
	CU_ASSERT_EQUAL(
		slm_serve_model_swap(sv, missing, NULL, &switched, &err),
		SLM_ENOTFOUND);
	CU_ASSERT(!switched);
	CU_ASSERT_EQUAL(n_models(sv), 1);
	CU_ASSERT_EQUAL(state_of(sv, name), SLM_MODEL_SERVING);
	/* the serving model's file again: refused, named */
	err = (struct slm_error){0};
	CU_ASSERT_EQUAL(slm_serve_model_load(sv, a, false, NULL, &err),
			SLM_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, name));
	/* unload: the serving one is refused with the way out; unknown */
	err = (struct slm_error){0};
	CU_ASSERT_EQUAL(slm_serve_model_unload(sv, name, &err), SLM_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "swap"));
	CU_ASSERT_EQUAL(slm_serve_model_unload(sv, "nobody", &err),
			SLM_ENOTFOUND);
	/* and it still answers */
	int32_t ids[8];
	prompt(ids, 8, 5);
	struct got g;
	got_init(&g);
	CU_ASSERT_EQUAL(submit_ids(sv, ids, 8, 4, &g), 0);
	got_wait(&g);
	CU_ASSERT_EQUAL(g.finish, SLM_FINISH_LENGTH);
	CU_ASSERT_EQUAL(g.n_ids, 4);
	got_fini(&g);
	unlink(junk);
	finish_core(sv, cfg);
}

static void test_load_unload(void)
{
	const char *a = model_file("models/llama-s-Q8_0.gguf");
	const char *b = model_file("models/qwen2-s-Q8_0.gguf");
	if (!a || !b) {
		slm_test_skip("the golden Q8_0 models are not generated");
		return;
	}
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, a, NULL);
	if (!sv)
		return;
	struct slm_serve_model_info info;
	struct slm_error err = {0};
	int rc = slm_serve_model_load(sv, b, false, &info, &err);
	if (rc)
		printf("\n    %s\n", err.msg);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_EQUAL(info.state, SLM_MODEL_LOADING);
	CU_ASSERT_STRING_EQUAL(info.arch, "qwen2");
	CU_ASSERT(!info.swap_pending);
	CU_ASSERT(wait_state(sv, info.name, SLM_MODEL_READY));
	struct slm_serve_model_info *v = NULL;
	int n = 0;
	CU_ASSERT_EQUAL_FATAL(slm_serve_models(sv, &v, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_EQUAL(v[0].state, SLM_MODEL_SERVING);
	CU_ASSERT_EQUAL(v[1].state, SLM_MODEL_READY);
	CU_ASSERT_EQUAL(v[1].percent, 100);
	CU_ASSERT(v[1].load_total > 0 && v[1].load_done == v[1].load_total);
	free(v);
	/* the same file twice */
	err = (struct slm_error){0};
	CU_ASSERT_EQUAL(slm_serve_model_load(sv, b, false, NULL, &err),
			SLM_EBUSY);
	/* unload the ready one by its path: gone */
	CU_ASSERT_EQUAL(slm_serve_model_unload(sv, b, &err), 0);
	CU_ASSERT_EQUAL(n_models(sv), 1);
	CU_ASSERT_EQUAL(state_of(sv, info.name), -1);
	/* load it again, swap to it by name once ready: at once */
	CU_ASSERT_EQUAL_FATAL(slm_serve_model_load(sv, b, false, &info, &err),
			      0);
	CU_ASSERT(wait_state(sv, info.name, SLM_MODEL_READY));
	bool switched = false;
	CU_ASSERT_EQUAL(
		slm_serve_model_swap(sv, info.name, NULL, &switched, &err), 0);
	CU_ASSERT(switched);
	struct slm_serve_info si;
	CU_ASSERT(slm_serve_describe(sv, &si));
	CU_ASSERT_STRING_EQUAL(si.arch, "qwen2");
	/* to the serving one: refused */
	CU_ASSERT_EQUAL(slm_serve_model_swap(sv, info.name, NULL, NULL, &err),
			SLM_EINVAL);
	/* the old one had nothing running: freed soon */
	CU_ASSERT(wait_state(sv, "llama-s", -1) || n_models(sv) == 1);
	CU_ASSERT_EQUAL(n_models(sv), 1);
	finish_core(sv, cfg);
}

/* Greedy tokens of each prompt on a core serving `model` alone. */
static void reference(const char *model, int32_t (*ids)[16], int n,
		      uint32_t gen, struct got *out)
{
	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, model, NULL);
	if (!sv)
		return;
	for (int i = 0; i < n; i++) {
		got_init(&out[i]);
		CU_ASSERT_EQUAL(submit_ids(sv, ids[i], 16, gen, &out[i]), 0);
		got_wait(&out[i]);
	}
	finish_core(sv, cfg);
}

static bool same(const struct got *x, const struct got *y)
{
	return x->n_ids == y->n_ids &&
	       !memcmp(x->ids, y->ids, x->n_ids * sizeof(int32_t));
}

static void test_swap_under_load(void)
{
	const char *a = model_file("models/llama-s-F32.gguf");
	const char *b = model_file("models/qwen2-s-F32.gguf");
	if (!a || !b) {
		slm_test_skip("the golden F32 models are not generated");
		return;
	}
	enum { N = 6, GEN = 48 };
	int32_t ids[N][16];
	for (int i = 0; i < N; i++)
		prompt(ids[i], 16, 40 + (uint64_t)i);
	struct got ref_a[N], ref_b[N], before[N], after[N];
	reference(a, ids, N, GEN, ref_a);
	reference(b, ids, N, GEN, ref_b);
	int differ = 0;
	for (int i = 0; i < N; i++)
		differ += !same(&ref_a[i], &ref_b[i]);
	CU_ASSERT_EQUAL(differ, N); /* the answers tell the models apart */

	struct slm_config *cfg;
	struct slm_serve *sv = start(&cfg, a, NULL);
	if (!sv)
		return;
	for (int i = 0; i < N; i++) {
		got_init(&before[i]);
		CU_ASSERT_EQUAL(submit_ids(sv, ids[i], 16, GEN, &before[i]), 0);
	}
	/* one more on A that runs until its context is full: cancelled
	 * while A drains */
	struct got long_a;
	got_init(&long_a);
	uint64_t long_id = 0;
	CU_ASSERT_EQUAL(submit_ids_id(sv, ids[0], 16, 0, &long_a, &long_id), 0);
	struct slm_serve_model_info info;
	struct slm_error err = {0};
	bool switched = true;
	CU_ASSERT_EQUAL_FATAL(
		slm_serve_model_swap(sv, b, &info, &switched, &err), 0);
	CU_ASSERT(!switched);
	CU_ASSERT(info.swap_pending);
	CU_ASSERT(wait_state(sv, info.name, SLM_MODEL_SERVING));
	int rc = slm_serve_cancel(sv, long_id);
	CU_ASSERT(rc == 0 || rc == SLM_ENOTFOUND);
	got_wait(&long_a);
	CU_ASSERT(long_a.finish == SLM_FINISH_CANCELED ||
		  (rc == SLM_ENOTFOUND && long_a.finish == SLM_FINISH_LENGTH));
	CU_ASSERT_EQUAL(long_a.n_done, 1);
	got_fini(&long_a);
	for (int i = 0; i < N; i++) {
		got_init(&after[i]);
		CU_ASSERT_EQUAL(submit_ids(sv, ids[i], 16, GEN, &after[i]), 0);
	}
	int bad_before = 0, bad_after = 0, lost = 0;
	for (int i = 0; i < N; i++) {
		got_wait(&before[i]);
		got_wait(&after[i]);
		lost += before[i].finish != SLM_FINISH_LENGTH ||
			after[i].finish != SLM_FINISH_LENGTH ||
			before[i].n_done != 1 || after[i].n_done != 1;
		bad_before += !same(&before[i], &ref_a[i]);
		bad_after += !same(&after[i], &ref_b[i]);
	}
	CU_ASSERT_EQUAL(lost, 0);
	CU_ASSERT_EQUAL(bad_before, 0);
	CU_ASSERT_EQUAL(bad_after, 0);
	/* the old model is freed once its requests are done */
	for (int i = 0; i < 2000 && n_models(sv) != 1; i++)
		slm_sleep_ns(5 * 1000 * 1000);
	CU_ASSERT_EQUAL(n_models(sv), 1);
	CU_ASSERT_EQUAL(state_of(sv, info.name), SLM_MODEL_SERVING);
	/* every request counted, the freed model's too */
	struct slm_serve_stats st;
	for (int i = 0; i < 1000; i++) {
		slm_serve_stats_get(sv, &st);
		if (st.finished[SLM_FINISH_LENGTH] +
			    st.finished[SLM_FINISH_CANCELED] ==
		    2 * N + 1)
			break;
		slm_sleep_ns(2 * 1000 * 1000);
	}
	CU_ASSERT_EQUAL(st.submitted, 2 * N + 1);
	CU_ASSERT_EQUAL(st.finished[SLM_FINISH_LENGTH] +
				st.finished[SLM_FINISH_CANCELED],
			2 * N + 1);
	CU_ASSERT(st.generated_tokens >= 2 * N * GEN);
	CU_ASSERT(slm_serve_idle(sv));
	finish_core(sv, cfg);
	for (int i = 0; i < N; i++) {
		got_fini(&ref_a[i]);
		got_fini(&ref_b[i]);
		got_fini(&before[i]);
		got_fini(&after[i]);
	}
}

static void test_memory_refusal(void)
{
	const char *a = model_file("models/llama-s-Q8_0.gguf");
	const char *b = model_file("models/qwen2-s-Q8_0.gguf");
	if (!a || !b) {
		slm_test_skip("the golden Q8_0 models are not generated");
		return;
	}
	/* a described machine of 12 MiB: llama-s (about 4 MiB of weights,
	 * 2 MiB of KV) fits, qwen2-s beside it (6 + 2 MiB) does not */
	struct slm_config *cfg;
	struct slm_serve *sv = start(
		&cfg, a,
		(const char *const[]){
			"numa.topology=synthetic:package:1 numa:1(memory=12MB) "
			"core:2 pu:1",
			"numa.mem_reserve=0", NULL});
	if (!sv)
		return;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_serve_model_load(sv, b, false, NULL, &err),
			SLM_ENOMEM);
	if (!strstr(err.msg, "not enough memory"))
		printf("\n    %s\n", err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "not enough memory"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 0"));
	CU_ASSERT_EQUAL(n_models(sv), 1);
	finish_core(sv, cfg);
}

SLM_SUITE("serve_models", NULL, NULL,
	  {"list, and bad files change nothing", test_list_and_bad_files},
	  {"load beside, unload, swap to a ready model", test_load_unload},
	  {"swap under load: no request lost, each on its model",
	   test_swap_under_load},
	  {"memory for two models", test_memory_refusal})
