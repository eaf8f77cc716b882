/*
 * Generated models (engine/modelgen.h): layout, determinism, the weight
 * recipe, and that streaming a mix equals quantizing the F32 file.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dtype.h"
#include "engine/gguf.h"
#include "engine/modelgen.h"
#include "engine/quant.h"
#include "engine/quantize.h"
#include "tests/tools/golden.h"
#include "tests/unit/harness.h"

/* A path in this process's temporary folder (one of 8 rotating slots). */
static const char *tmp_path(const char *name)
{
	static __thread char path[8][4096];
	static __thread int next;
	char *p = path[next++ % 8];
	snprintf(p, 4096, "%s/%s", slm_test_tmpdir(), name);
	return p;
}

static int write_random(const char *path, const struct slm_model_shape *s,
			int ftype, uint64_t seed, int threads,
			const struct gguf_file *vocab, struct slm_error *err)
{
	struct slm_model_random rnd;
	slm_model_random_init(&rnd, s, seed, threads);
	struct slm_model_params p = {.ftype = ftype,
				     .vocab = vocab,
				     .fill = slm_model_fill_random,
				     .fill_ctx = &rnd,
				     .n_threads = threads};
	return slm_model_write(path, s, &p, err);
}

static bool same_file(const char *a, const char *b)
{
	size_t na, nb;
	char *x = slm_test_read_file(a, &na), *y = slm_test_read_file(b, &nb);
	bool same = x && y && na == nb && memcmp(x, y, na) == 0;
	free(x);
	free(y);
	return same;
}

/* The tiny preset written as F32 reads back as the converter lays out. */
static void test_tiny_round_trip(void)
{
	struct slm_model_shape s;
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("tiny", &s), 0);
	const char *path = tmp_path("tiny-f32.gguf");
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(
		write_random(path, &s, SLM_FTYPE_ALL_F32, 5, 2, NULL, &err), 0);
	struct gguf_file *f = NULL;
	CU_ASSERT_EQUAL_FATAL(gguf_open(path, &f, &err), 0);
	static const char *const keys[] = {
		"general.architecture",
		"general.type",
		"general.name",
		"general.basename",
		"general.size_label",
		"llama.block_count",
		"llama.context_length",
		"llama.embedding_length",
		"llama.feed_forward_length",
		"llama.attention.head_count",
		"llama.attention.head_count_kv",
		"llama.rope.freq_base",
		"llama.attention.layer_norm_rms_epsilon",
		"general.file_type",
		"llama.vocab_size",
		"llama.rope.dimension_count",
		"general.quantization_version",
		"tokenizer.ggml.model",
		"tokenizer.ggml.pre",
		"tokenizer.ggml.tokens",
		"tokenizer.ggml.scores",
		"tokenizer.ggml.token_type",
		"tokenizer.ggml.bos_token_id",
		"tokenizer.ggml.eos_token_id",
		"tokenizer.ggml.unknown_token_id",
		"tokenizer.ggml.add_bos_token",
		"tokenizer.ggml.add_sep_token",
		"tokenizer.ggml.add_eos_token",
	};
	CU_ASSERT_EQUAL_FATAL(gguf_n_kv(f), sizeof(keys) / sizeof(keys[0]));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		CU_ASSERT_STRING_EQUAL(gguf_kv_key(f, i), keys[i]);
	int64_t v;
	double d;
	const char *str;
	CU_ASSERT_EQUAL(gguf_get_int(f, "llama.embedding_length", &v, &err), 0);
	CU_ASSERT_EQUAL(v, 256);
	CU_ASSERT_EQUAL(gguf_get_int(f, "llama.rope.dimension_count", &v, &err),
			0);
	CU_ASSERT_EQUAL(v, 64);
	CU_ASSERT_EQUAL(gguf_get_float(f,
				       "llama.attention.layer_norm_rms_epsilon",
				       &d, &err),
			0);
	CU_ASSERT_EQUAL((float)d, 1e-5f);
	CU_ASSERT_EQUAL(gguf_get_str(f, "general.size_label", &str, &err), 0);
	CU_ASSERT_STRING_EQUAL(str, "1.4M");
	struct gguf_array toks;
	CU_ASSERT_EQUAL(gguf_get_arr(f, "tokenizer.ggml.tokens", &toks, &err),
			0);
	CU_ASSERT_EQUAL(toks.n, 512);
	CU_ASSERT_STRING_EQUAL(toks.strings[3 + 'A'], "<0x41>");

	/* Tensors: the converter's order, shapes, F32, data = the filler. */
	size_t n = slm_model_tensors(&s, NULL, 0);
	CU_ASSERT_EQUAL(n, 21);
	CU_ASSERT_EQUAL_FATAL(gguf_n_tensors(f), n);
	struct slm_model_tensor *ts = calloc(n, sizeof(*ts));
	slm_model_tensors(&s, ts, n);
	CU_ASSERT_STRING_EQUAL(ts[0].name, "token_embd.weight");
	CU_ASSERT_STRING_EQUAL(ts[1].name, "blk.0.attn_norm.weight");
	CU_ASSERT_STRING_EQUAL(ts[2].name, "blk.0.ffn_down.weight");
	CU_ASSERT_STRING_EQUAL(ts[n - 1].name, "output.weight");
	struct slm_model_random rnd;
	slm_model_random_init(&rnd, &s, 5, 1);
	float *buf = malloc(512 * 512 * sizeof(float));
	uint64_t end = 0;
	for (size_t i = 0; i < n; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(f, i);
		CU_ASSERT_STRING_EQUAL(t->name, ts[i].name);
		CU_ASSERT_EQUAL(t->n_dims, ts[i].n_dims);
		CU_ASSERT_EQUAL(t->ne[0], ts[i].ne[0]);
		CU_ASSERT_EQUAL(t->ne[1], ts[i].ne[1]);
		CU_ASSERT_EQUAL(t->type, SLM_DTYPE_F32);
		CU_ASSERT_EQUAL(t->offset % 32, 0);
		CU_ASSERT_EQUAL(slm_model_fill_random(&rnd, &ts[i], 0,
						      ts[i].ne[1], buf),
				0);
		CU_ASSERT(memcmp(buf, gguf_mapping(f) + t->file_offset,
				 t->size) == 0);
		end = t->file_offset + ((t->size + 31) & ~(uint64_t)31);
	}
	CU_ASSERT_EQUAL(end, gguf_file_size(f));
	free(buf);
	free(ts);
	gguf_close(f);
}

/* Writing a mix directly equals writing F32 and quantizing it. */
static void test_stream_equals_quantize(void)
{
	struct slm_model_shape tiny, qw = {
					     .name = "mini-qwen",
					     .arch = "qwen2",
					     .n_vocab = 300,
					     .n_embd = 320,
					     .n_layer = 3,
					     .n_head = 5,
					     .n_head_kv = 1,
					     .n_ff = 512,
					     .n_ctx = 128,
					     .rope_base = 1e6f,
					     .rms_eps = 1e-6f,
					     .tied = true,
					     .qkv_bias = true,
				     };
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("tiny", &tiny), 0);
	const struct slm_model_shape *shapes[] = {&tiny, &qw};
	static const int ftypes[] = {
		SLM_FTYPE_MOSTLY_Q4_K_M, SLM_FTYPE_MOSTLY_Q8_0,
		SLM_FTYPE_MOSTLY_Q3_K_S, SLM_FTYPE_MOSTLY_BF16};
	struct slm_error err = {0};
	for (int k = 0; k < 2; k++) {
		char f32[4096], direct[4096], quant[4096];
		snprintf(f32, sizeof(f32), "%s", tmp_path("s-f32.gguf"));
		snprintf(direct, sizeof(direct), "%s",
			 tmp_path("s-direct.gguf"));
		snprintf(quant, sizeof(quant), "%s", tmp_path("s-quant.gguf"));
		CU_ASSERT_EQUAL_FATAL(write_random(f32, shapes[k],
						   SLM_FTYPE_ALL_F32, 11, 2,
						   NULL, &err),
				      0);
		for (size_t t = 0; t < sizeof(ftypes) / sizeof(ftypes[0]);
		     t++) {
			CU_ASSERT_EQUAL_FATAL(write_random(direct, shapes[k],
							   ftypes[t], 11, 2,
							   NULL, &err),
					      0);
			struct slm_quant_params qp = {.n_threads = 1};
			CU_ASSERT_EQUAL_FATAL(slm_quantize_file(f32, quant,
								ftypes[t], &qp,
								&err),
					      0);
			CU_ASSERT(same_file(direct, quant));
		}
	}
}

/* The bytes depend on the seed, not on the thread count. */
static void test_determinism(void)
{
	struct slm_model_shape s;
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("tiny", &s), 0);
	struct slm_error err = {0};
	const char *a = tmp_path("d-a.gguf"), *b = tmp_path("d-b.gguf");
	const char *c = tmp_path("d-c.gguf");
	CU_ASSERT_EQUAL(
		write_random(a, &s, SLM_FTYPE_MOSTLY_Q4_0, 3, 1, NULL, &err),
		0);
	CU_ASSERT_EQUAL(
		write_random(b, &s, SLM_FTYPE_MOSTLY_Q4_0, 3, 3, NULL, &err),
		0);
	CU_ASSERT_EQUAL(
		write_random(c, &s, SLM_FTYPE_MOSTLY_Q4_0, 4, 2, NULL, &err),
		0);
	CU_ASSERT(same_file(a, b));
	CU_ASSERT(!same_file(a, c));
}

static void stats(const float *x, size_t n, double *mean, double *sd)
{
	double s = 0, s2 = 0;
	for (size_t i = 0; i < n; i++)
		s += x[i];
	*mean = s / (double)n;
	for (size_t i = 0; i < n; i++)
		s2 += (x[i] - *mean) * (x[i] - *mean);
	*sd = sqrt(s2 / (double)n);
}

/* The recipe: std per role; norms about 1; tied output gain. */
static void test_weight_recipe(void)
{
	struct slm_model_shape s;
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("qwen05", &s), 0);
	struct slm_model_random rnd;
	slm_model_random_init(&rnd, &s, 1, 2);
	size_t n = slm_model_tensors(&s, NULL, 0);
	struct slm_model_tensor *ts = calloc(n, sizeof(*ts));
	slm_model_tensors(&s, ts, n);
	float *buf = malloc((size_t)64 * 4864 * sizeof(float));
	static const struct {
		const char *name;
		double mean, sd;
	} want[] = {
		{"blk.0.attn_q.weight", 0, 1.0 / 29.933259}, /* sqrt(896) */
		{"blk.0.attn_v.weight", 0, 0.7 / 29.933259},
		{"blk.0.ffn_down.weight", 0, 0.7 / 69.742383}, /* sqrt(4864) */
		{"blk.0.attn_q.bias", 0, 0.1},
		{"blk.0.attn_norm.weight", 1.0, 0.1},
		{"output_norm.weight", 16.7038, 1.67038}, /* 500/sqrt(896) */
		{"token_embd.weight", 0, 0.02},
	};
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		const struct slm_model_tensor *t = NULL;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(ts[i].name, want[w].name))
				t = &ts[i];
		CU_ASSERT_PTR_NOT_NULL_FATAL(t);
		uint64_t rows = t->ne[1] < 64 ? t->ne[1] : 64;
		CU_ASSERT_EQUAL(slm_model_fill_random(&rnd, t, 0, rows, buf),
				0);
		double mean, sd;
		stats(buf, rows * t->ne[0], &mean, &sd);
		/* >= 896 samples: 4 sigma of the estimates. */
		double k = 4.0 / sqrt((double)(rows * t->ne[0]));
		CU_ASSERT(fabs(mean - want[w].mean) < want[w].sd * k * 1.5);
		CU_ASSERT(fabs(sd / want[w].sd - 1.0) < k * 1.5);
	}
	free(buf);
	free(ts);
}

static void test_size_labels(void)
{
	static const struct {
		const char *model;
		uint64_t params;
		const char *label;
	} golden[] = {{"llama-s", 3672320, "3.7M"},
		      {"llama3-s", 3542560, "3.5M"},
		      {"qwen2-s", 5576192, "5.6M"}};
	char buf[32];
	for (size_t i = 0; i < 3; i++) {
		const struct slm_model_shape *s = golden_shape(golden[i].model);
		CU_ASSERT_EQUAL(slm_model_n_params(s), golden[i].params);
		slm_model_size_label(golden[i].params, buf, sizeof(buf));
		CU_ASSERT_STRING_EQUAL(buf, golden[i].label);
	}
	struct slm_model_shape s;
	CU_ASSERT_EQUAL(slm_model_preset("tinyllama", &s), 0);
	CU_ASSERT_EQUAL(slm_model_n_params(&s), 1100048384ull);
	slm_model_size_label(slm_model_n_params(&s), buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "1.1B");
	CU_ASSERT_EQUAL(slm_model_preset("qwen05", &s), 0);
	slm_model_size_label(slm_model_n_params(&s), buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "494M");
	slm_model_size_label(1000, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "1.0K");
	slm_model_size_label(25500000, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "26M");
	CU_ASSERT_EQUAL(slm_model_preset("nonesuch", &s), SLM_ENOTFOUND);
}

static void test_bad_input(void)
{
	struct slm_model_shape s;
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("tiny", &s), 0);
	struct slm_error err = {0};
	s.n_head = 3;
	CU_ASSERT_EQUAL(slm_model_shape_check(&s, &err), SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "n_head 3"));
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("tiny", &s), 0);
	snprintf(s.arch, sizeof(s.arch), "gpt2");
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_model_shape_check(&s, &err), SLM_EUNSUPPORTED);
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("tiny", &s), 0);
	s.n_vocab = 100;
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(write_random(tmp_path("bad.gguf"), &s,
				     SLM_FTYPE_ALL_F32, 1, 1, NULL, &err),
			SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "259"));

	/* A vocabulary whose size is not n_vocab is refused; one that fits
	 * gives its tokenizer pairs in order. */
	struct gguf_file *v = NULL;
	CU_ASSERT_EQUAL_FATAL(
		gguf_open(slm_test_data("golden/template-llama-s.gguf"), &v,
			  &err),
		0);
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("tiny", &s), 0);
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(write_random(tmp_path("bad.gguf"), &s,
				     SLM_FTYPE_ALL_F32, 1, 1, v, &err),
			SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "1024 tokens"));
	s.n_vocab = 1024;
	const char *ok = tmp_path("vocab.gguf");
	CU_ASSERT_EQUAL_FATAL(
		write_random(ok, &s, SLM_FTYPE_MOSTLY_Q8_0, 1, 1, v, &err), 0);
	struct gguf_file *f = NULL;
	CU_ASSERT_EQUAL_FATAL(gguf_open(ok, &f, &err), 0);
	int64_t at = gguf_find(f, "tokenizer.ggml.model");
	CU_ASSERT_FATAL(at > 0);
	for (uint64_t i = 0; i < gguf_n_kv(v); i++)
		CU_ASSERT_STRING_EQUAL(gguf_kv_key(f, (uint64_t)at + i),
				       gguf_kv_key(v, i));
	gguf_close(f);
	gguf_close(v);
}

SLM_SUITE("modelgen", NULL, NULL, {"tiny round trip", test_tiny_round_trip},
	  {"stream equals quantize", test_stream_equals_quantize},
	  {"determinism", test_determinism},
	  {"weight recipe", test_weight_recipe},
	  {"size labels", test_size_labels}, {"bad input", test_bad_input})
