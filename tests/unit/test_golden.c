/*
 * The golden model files come back byte for byte from their recipe
 * (tests/tools/golden.h) through the library code paths, checked against
 * the sha256 in tests/data/golden/manifest.json (and extra-manifest.json
 * for the two F32 files the manifest lacks).  make testdata makes all 27
 * files and tests/integration/golden_models.sh checks them; this suite
 * checks the paths themselves, in a temporary folder, independently of
 * what build/testdata holds.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/modelgen.h"
#include "engine/quantize.h"
#include "tests/tools/golden.h"
#include "tests/unit/harness.h"

static char manifest[4096], extra[4096];

static int setup(void)
{
	snprintf(manifest, sizeof(manifest), "%s",
		 slm_test_data("golden/manifest.json"));
	snprintf(extra, sizeof(extra), "%s",
		 slm_test_data("golden/extra-manifest.json"));
	return 0;
}

/* sha256 of path equals the manifests' entry models/<stem>.gguf. */
static bool matches(const char *path, const char *stem)
{
	const char *ms[2] = {manifest, extra};
	char key[256], want[65], got[65];
	snprintf(key, sizeof(key), "models/%s.gguf", stem);
	if (golden_expected_sha256(ms, 2, key, want)) {
		fprintf(stderr, "\n    no sha256 for %s", key);
		return false;
	}
	if (golden_sha256_file(path, got)) {
		fprintf(stderr, "\n    cannot read %s", path);
		return false;
	}
	if (strcmp(got, want))
		fprintf(stderr, "\n    %s: sha256 %s, expected %s", stem, got,
			want);
	return !strcmp(got, want);
}

static const char *out_path(const char *stem)
{
	static __thread char path[4][4096];
	static __thread int next;
	char *p = path[next++ % 4];
	snprintf(p, 4096, "%s/%s.gguf", slm_test_tmpdir(), stem);
	return p;
}

/* Write model `m` with the golden weights as `ftype`. */
static int write_golden(const char *m, int ftype, const char *path)
{
	char tmpl_name[128];
	snprintf(tmpl_name, sizeof(tmpl_name), "golden/template-%s.gguf", m);
	struct slm_error err = {0};
	struct gguf_file *tmpl = NULL;
	if (gguf_open(slm_test_data(tmpl_name), &tmpl, &err))
		return -1;
	struct golden_fill g;
	golden_fill_init(&g, golden_shape(m), tmpl);
	struct slm_model_params p = {.ftype = ftype,
				     .vocab = tmpl,
				     .fill = golden_fill,
				     .fill_ctx = &g,
				     .n_threads = 2};
	int rc = slm_model_write(path, golden_shape(m), &p, &err);
	if (rc)
		fprintf(stderr, "\n    %s", err.msg);
	gguf_close(tmpl);
	return rc;
}

/* The three F32 files from recipe + template. */
static void test_f32_files(void)
{
	for (int i = 0; golden_models[i]; i++) {
		char stem[64];
		snprintf(stem, sizeof(stem), "%s-F32", golden_models[i]);
		const char *path = out_path(stem);
		CU_ASSERT_EQUAL_FATAL(
			write_golden(golden_models[i], SLM_FTYPE_ALL_F32, path),
			0);
		CU_ASSERT(matches(path, stem));
	}
}

/* slm quantize's library path on mixes with per-layer rules and
 * fallbacks: Q3_K_M and Q2_K of llama-s, Q4_K_M of llama3-s (tied
 * token_embd as Q6_K), Q5_K_M of qwen2-s (320 columns). */
static void test_quantize_files(void)
{
	static const struct {
		const char *model, *type;
	} cases[] = {{"llama-s", "Q3_K_M"},
		     {"llama-s", "Q2_K"},
		     {"llama3-s", "Q4_K_M"},
		     {"qwen2-s", "Q5_K_M"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char f32[64], stem[64];
		snprintf(f32, sizeof(f32), "%s-F32", cases[i].model);
		snprintf(stem, sizeof(stem), "%s-%s", cases[i].model,
			 cases[i].type);
		const char *src = out_path(f32);
		CU_ASSERT_EQUAL_FATAL(
			write_golden(cases[i].model, SLM_FTYPE_ALL_F32, src),
			0);
		struct slm_quant_params qp = {.n_threads = 2};
		struct slm_error err = {0};
		const char *dst = out_path(stem);
		CU_ASSERT_EQUAL_FATAL(
			slm_quantize_file(src, dst,
					  slm_ftype_from_name(cases[i].type),
					  &qp, &err),
			0);
		CU_ASSERT(matches(dst, stem));
	}
}

/* slm mkmodel's streaming path gives llama-quantize's file too. */
static void test_streamed_files(void)
{
	static const struct {
		const char *model, *type;
	} cases[] = {{"llama-s", "Q4_K_M"},
		     {"qwen2-s", "Q6_K"},
		     {"llama3-s", "Q8_0"}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char stem[64];
		snprintf(stem, sizeof(stem), "%s-%s", cases[i].model,
			 cases[i].type);
		const char *path = out_path(stem);
		CU_ASSERT_EQUAL_FATAL(
			write_golden(cases[i].model,
				     slm_ftype_from_name(cases[i].type), path),
			0);
		CU_ASSERT(matches(path, stem));
	}
}

/* The templates: tokenizer pairs only; llama3-s's rope_freqs are the
 * values the golden README lists. */
static void test_templates(void)
{
	static const double rope[32] = {
		1,	    1,		1,  1,	1,  1,	1,  1,
		1,	    1,		1,  1,	1,  1,	1,  1.65132928,
		3.29226279, 9.66673088, 32, 32, 32, 32, 32, 32,
		32,	    32,		32, 32, 32, 32, 32, 32};
	for (int i = 0; golden_models[i]; i++) {
		char name[128];
		snprintf(name, sizeof(name), "golden/template-%s.gguf",
			 golden_models[i]);
		struct gguf_file *f = NULL;
		struct slm_error err = {0};
		CU_ASSERT_EQUAL_FATAL(gguf_open(slm_test_data(name), &f, &err),
				      0);
		for (uint64_t k = 0; k < gguf_n_kv(f); k++)
			CU_ASSERT(
				!strncmp(gguf_kv_key(f, k), "tokenizer.", 10));
		struct gguf_array toks;
		CU_ASSERT_EQUAL(
			gguf_get_arr(f, "tokenizer.ggml.tokens", &toks, &err),
			0);
		CU_ASSERT_EQUAL(toks.n,
				golden_shape(golden_models[i])->n_vocab);
		const struct gguf_tensor *rf =
			gguf_find_tensor(f, "rope_freqs.weight");
		if (!strcmp(golden_models[i], "llama3-s")) {
			CU_ASSERT_PTR_NOT_NULL_FATAL(rf);
			CU_ASSERT_EQUAL_FATAL(rf->n_elements, 32);
			float v[32];
			memcpy(v, gguf_mapping(f) + rf->file_offset, sizeof(v));
			for (int j = 0; j < 32; j++)
				CU_ASSERT(fabs(v[j] - rope[j]) <=
					  1e-7 * rope[j]);
		} else {
			CU_ASSERT_PTR_NULL(rf);
		}
		gguf_close(f);
	}
}

SLM_SUITE("golden", setup, NULL, {"F32 files", test_f32_files},
	  {"quantized files", test_quantize_files},
	  {"streamed files", test_streamed_files},
	  {"templates", test_templates})
