/*
 * llama-quantize's mixes and layout (engine/quantize.h), against the
 * golden files' tensor types and against rules derived by hand from
 * llama.cpp's documented mixes.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/dtype.h"
#include "engine/gguf.h"
#include "engine/modelgen.h"
#include "engine/quant.h"
#include "engine/quantize.h"
#include "tests/tools/golden.h"
#include "tests/unit/harness.h"

/* The tensors of a shape as quantize inputs (F32). */
struct model_tensors {
	size_t n;
	struct slm_model_tensor *mt;
	struct slm_qtensor *qt;
	uint32_t *types;
	size_t *order;
};

static void tensors_of(const struct slm_model_shape *s, struct model_tensors *m)
{
	m->n = slm_model_tensors(s, NULL, 0);
	m->mt = calloc(m->n, sizeof(*m->mt));
	m->qt = calloc(m->n, sizeof(*m->qt));
	m->types = calloc(m->n, sizeof(*m->types));
	m->order = calloc(m->n, sizeof(*m->order));
	SLM_ASSERT(m->mt && m->qt && m->types && m->order);
	slm_model_tensors(s, m->mt, m->n);
	for (size_t i = 0; i < m->n; i++) {
		m->qt[i] = (struct slm_qtensor){
			.name = m->mt[i].name,
			.n_dims = m->mt[i].n_dims,
			.ne = {m->mt[i].ne[0], m->mt[i].ne[1], 1, 1},
			.type = SLM_DTYPE_F32,
		};
	}
}

static void tensors_free(struct model_tensors *m)
{
	free(m->mt);
	free(m->qt);
	free(m->types);
	free(m->order);
}

static int plan(const struct slm_model_shape *s, int ftype,
		struct model_tensors *m, size_t *n_fallback)
{
	struct slm_qmodel qm = {.arch = s->arch,
				.n_layer = s->n_layer,
				.n_head = s->n_head,
				.n_head_kv = s->n_head_kv};
	struct slm_error err = {0};
	return slm_quant_plan(&qm, ftype, m->qt, m->n, m->types, m->order,
			      n_fallback, &err);
}

/* Type given to tensor `name` by the last plan. */
static uint32_t type_of(const struct model_tensors *m, const char *name)
{
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->qt[i].name, name))
			return m->types[i];
	return 9999;
}

static uint32_t layer_type(const struct model_tensors *m, int layer,
			   const char *what)
{
	char name[96];
	snprintf(name, sizeof(name), "blk.%d.%s", layer, what);
	return type_of(m, name);
}

static cJSON *load_json(const char *rel)
{
	size_t len;
	char *text = slm_test_read_file(slm_test_data(rel), &len);
	cJSON *root = text ? cJSON_ParseWithLength(text, len) : NULL;
	free(text);
	return root;
}

/*
 * Every golden file: the plan for its general.file_type gives each tensor
 * the type tensor_types.json lists, in the file's order, with its shape.
 */
static void test_golden_mixes(void)
{
	cJSON *root = load_json("golden/tensor_types.json");
	CU_ASSERT_PTR_NOT_NULL_FATAL(root);
	int files = 0, tensors = 0, bad = 0;
	const cJSON *entry;
	cJSON_ArrayForEach(entry, root)
	{
		char family[64];
		snprintf(family, sizeof(family), "%s", entry->string + 7);
		*strrchr(family, '-') = '\0'; /* "models/llama-s-Q4_0.gguf" */
		const struct slm_model_shape *s = golden_shape(family);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		int ftype = cJSON_GetObjectItem(entry, "general.file_type")
				    ->valueint;
		struct model_tensors m;
		tensors_of(s, &m);
		const cJSON *list = cJSON_GetObjectItem(entry, "tensors");
		CU_ASSERT_EQUAL(cJSON_GetArraySize(list), (int)m.n);
		if (ftype == SLM_FTYPE_ALL_F32) {
			/* The converter's order: the order of modelgen. */
			for (size_t i = 0; i < m.n; i++)
				m.order[i] = i, m.types[i] = SLM_DTYPE_F32;
		} else {
			CU_ASSERT_EQUAL_FATAL(plan(s, ftype, &m, NULL), 0);
		}
		size_t k = 0;
		const cJSON *t;
		cJSON_ArrayForEach(t, list)
		{
			if (k >= m.n)
				break;
			size_t i = m.order[k++];
			const char *want =
				cJSON_GetArrayItem(t, 0)->valuestring;
			const cJSON *shape = cJSON_GetArrayItem(t, 1);
			bool ok =
				!strcmp(t->string, m.qt[i].name) &&
				!strcmp(want, slm_dtype_name(m.types[i])) &&
				(uint64_t)cJSON_GetArrayItem(shape, 0)
						->valuedouble == m.qt[i].ne[0];
			if (cJSON_GetArraySize(shape) > 1)
				ok = ok &&
				     (uint64_t)cJSON_GetArrayItem(shape, 1)
						     ->valuedouble ==
					     m.qt[i].ne[1];
			if (!ok) {
				fprintf(stderr,
					"\n    %s #%zu: %s %s, planned %s %s",
					entry->string, k - 1, t->string, want,
					m.qt[i].name,
					slm_dtype_name(m.types[i]));
				bad++;
			}
			tensors++;
		}
		tensors_free(&m);
		files++;
	}
	CU_ASSERT_EQUAL(files, 25);
	CU_ASSERT(tensors > 1000);
	CU_ASSERT_EQUAL(bad, 0);
	cJSON_Delete(root);
}

static struct slm_model_shape llama_shape(uint32_t n_layer, uint32_t n_head,
					  uint32_t n_head_kv)
{
	struct slm_model_shape s = {
		.name = "t",
		.arch = "llama",
		.n_vocab = 512,
		.n_embd = 512,
		.n_layer = n_layer,
		.n_head = n_head,
		.n_head_kv = n_head_kv,
		.n_ff = 1024,
		.n_ctx = 64,
		.rope_base = 10000.0f,
		.rms_eps = 1e-5f,
	};
	return s;
}

/* Layers 0-3, every third from 6 to 27, and 28-31: the _M mixes' extra
 * bits for a 32-layer model (llama.cpp's use_more_bits). */
static bool more_bits_32(int i)
{
	static const int layers[] = {0,	 1,  2,	 3,  6,	 9,  12, 15,
				     18, 21, 24, 27, 28, 29, 30, 31};
	for (size_t k = 0; k < sizeof(layers) / sizeof(layers[0]); k++)
		if (layers[k] == i)
			return true;
	return false;
}

static void test_layer_rules(void)
{
	struct slm_model_shape s = llama_shape(32, 32, 8); /* gqa 4 */
	struct model_tensors m;
	tensors_of(&s, &m);

	CU_ASSERT_EQUAL_FATAL(plan(&s, SLM_FTYPE_MOSTLY_Q4_K_M, &m, NULL), 0);
	for (int i = 0; i < 32; i++) {
		uint32_t want =
			more_bits_32(i) ? SLM_DTYPE_Q6_K : SLM_DTYPE_Q4_K;
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_v.weight"), want);
		CU_ASSERT_EQUAL(layer_type(&m, i, "ffn_down.weight"), want);
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_q.weight"),
				SLM_DTYPE_Q4_K);
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_norm.weight"),
				SLM_DTYPE_F32);
	}
	CU_ASSERT_EQUAL(type_of(&m, "output.weight"), SLM_DTYPE_Q6_K);
	CU_ASSERT_EQUAL(type_of(&m, "token_embd.weight"), SLM_DTYPE_Q4_K);

	CU_ASSERT_EQUAL_FATAL(plan(&s, SLM_FTYPE_MOSTLY_Q3_K_M, &m, NULL), 0);
	for (int i = 0; i < 32; i++) {
		uint32_t hi = i < 2 ? SLM_DTYPE_Q5_K : SLM_DTYPE_Q4_K;
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_v.weight"), hi);
		CU_ASSERT_EQUAL(layer_type(&m, i, "ffn_down.weight"), hi);
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_output.weight"),
				SLM_DTYPE_Q4_K);
		CU_ASSERT_EQUAL(layer_type(&m, i, "ffn_up.weight"),
				SLM_DTYPE_Q3_K);
	}

	CU_ASSERT_EQUAL_FATAL(plan(&s, SLM_FTYPE_MOSTLY_Q4_K_S, &m, NULL), 0);
	for (int i = 0; i < 32; i++) {
		uint32_t hi = i < 4 ? SLM_DTYPE_Q5_K : SLM_DTYPE_Q4_K;
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_v.weight"), hi);
		CU_ASSERT_EQUAL(layer_type(&m, i, "ffn_down.weight"), hi);
	}

	/* Q2_K: attn_v Q4_K with 4+ query heads per KV head, else Q3_K. */
	CU_ASSERT_EQUAL_FATAL(plan(&s, SLM_FTYPE_MOSTLY_Q2_K, &m, NULL), 0);
	CU_ASSERT_EQUAL(layer_type(&m, 7, "attn_v.weight"), SLM_DTYPE_Q4_K);
	CU_ASSERT_EQUAL(layer_type(&m, 7, "ffn_down.weight"), SLM_DTYPE_Q3_K);
	CU_ASSERT_EQUAL(layer_type(&m, 7, "attn_output.weight"),
			SLM_DTYPE_Q3_K);
	CU_ASSERT_EQUAL(layer_type(&m, 7, "ffn_gate.weight"), SLM_DTYPE_Q2_K);
	tensors_free(&m);

	/* A 70B llama (80 layers, GQA): attn_v Q4_K becomes Q5_K. */
	s = llama_shape(80, 64, 8);
	tensors_of(&s, &m);
	CU_ASSERT_EQUAL_FATAL(plan(&s, SLM_FTYPE_MOSTLY_Q4_K_M, &m, NULL), 0);
	CU_ASSERT_EQUAL(layer_type(&m, 0, "attn_v.weight"), SLM_DTYPE_Q6_K);
	CU_ASSERT_EQUAL(layer_type(&m, 10, "attn_v.weight"), SLM_DTYPE_Q5_K);
	CU_ASSERT_EQUAL(layer_type(&m, 10, "ffn_down.weight"), SLM_DTYPE_Q4_K);
	tensors_free(&m);
}

/* Qwen2.5-0.5B's 896 columns: every K-quant on them falls back. */
static void test_fallbacks(void)
{
	struct slm_model_shape s;
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("qwen05", &s), 0);
	struct model_tensors m;
	tensors_of(&s, &m);
	size_t n_fallback = 0;
	CU_ASSERT_EQUAL_FATAL(
		plan(&s, SLM_FTYPE_MOSTLY_Q4_K_M, &m, &n_fallback), 0);
	CU_ASSERT_EQUAL(type_of(&m, "token_embd.weight"), SLM_DTYPE_Q8_0);
	int more = 0;
	for (int i = 0; i < 24; i++) {
		/* 24 layers: 0-2, 5, 8, ..., 20, 21-23 get more bits. */
		bool hi = i < 3 || i >= 21 || (i - 3) % 3 == 2;
		more += hi;
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_v.weight"),
				hi ? SLM_DTYPE_Q8_0 : SLM_DTYPE_Q5_0);
		CU_ASSERT_EQUAL(layer_type(&m, i, "ffn_down.weight"),
				hi ? SLM_DTYPE_Q6_K : SLM_DTYPE_Q4_K);
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_q.weight"),
				SLM_DTYPE_Q5_0);
		CU_ASSERT_EQUAL(layer_type(&m, i, "ffn_up.weight"),
				SLM_DTYPE_Q5_0);
		CU_ASSERT_EQUAL(layer_type(&m, i, "attn_q.bias"),
				SLM_DTYPE_F32);
	}
	CU_ASSERT_EQUAL(more, 12);
	CU_ASSERT_EQUAL(n_fallback, 24 * 6); /* q k v o gate up per layer */

	CU_ASSERT_EQUAL_FATAL(plan(&s, SLM_FTYPE_MOSTLY_Q5_K_M, &m, NULL), 0);
	CU_ASSERT_EQUAL(layer_type(&m, 4, "attn_k.weight"), SLM_DTYPE_Q5_1);
	CU_ASSERT_EQUAL_FATAL(plan(&s, SLM_FTYPE_MOSTLY_Q3_K_M, &m, NULL), 0);
	CU_ASSERT_EQUAL(layer_type(&m, 4, "ffn_gate.weight"), SLM_DTYPE_Q4_0);
	tensors_free(&m);

	/* No fallback for a legacy type: the plan names the tensor. */
	struct slm_qtensor odd = {.name = "blk.0.attn_q.weight",
				  .n_dims = 2,
				  .ne = {48, 4, 1, 1},
				  .type = SLM_DTYPE_F32};
	struct slm_qmodel qm = {.arch = "llama", .n_layer = 1};
	uint32_t type;
	size_t order;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_quant_plan(&qm, SLM_FTYPE_MOSTLY_Q4_0, &odd, 1,
				       &type, &order, NULL, &err),
			SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "blk.0.attn_q.weight"));
	/* Q6_K on 64 columns -> Q8_0; on 40, neither divides: F16. */
	odd.ne[0] = 64;
	CU_ASSERT_EQUAL(slm_quant_plan(&qm, SLM_FTYPE_MOSTLY_Q6_K, &odd, 1,
				       &type, &order, NULL, &err),
			0);
	CU_ASSERT_EQUAL(type, SLM_DTYPE_Q8_0);
	odd.ne[0] = 40;
	CU_ASSERT_EQUAL(slm_quant_plan(&qm, SLM_FTYPE_MOSTLY_Q6_K, &odd, 1,
				       &type, &order, NULL, &err),
			0);
	CU_ASSERT_EQUAL(type, SLM_DTYPE_F16);
}

static void test_ftype_names(void)
{
	CU_ASSERT_EQUAL(slm_ftype_from_name("Q4_K_M"), 15);
	CU_ASSERT_EQUAL(slm_ftype_from_name("q4_k_m"), 15);
	CU_ASSERT_EQUAL(slm_ftype_from_name("Q4_K"), 15);
	CU_ASSERT_EQUAL(slm_ftype_from_name("Q5_K"), 17);
	CU_ASSERT_EQUAL(slm_ftype_from_name("Q3_K"), 12);
	CU_ASSERT_EQUAL(slm_ftype_from_name("Q2_K"), 10);
	CU_ASSERT_EQUAL(slm_ftype_from_name("BF16"), 32);
	CU_ASSERT_EQUAL(slm_ftype_from_name("F32"), 0);
	CU_ASSERT_EQUAL(slm_ftype_from_name("Q8_0"), 7);
	CU_ASSERT_EQUAL(slm_ftype_from_name("Q6_K"), 18);
	CU_ASSERT_EQUAL(slm_ftype_from_name("IQ2_XXS"), -1);
	CU_ASSERT_EQUAL(slm_ftype_from_name("Q2_K_S"), -1);
	CU_ASSERT_EQUAL(slm_ftype_from_name(""), -1);
	CU_ASSERT_STRING_EQUAL(slm_ftype_name(12), "Q3_K_M");
	CU_ASSERT_PTR_NULL(slm_ftype_name(4));
	CU_ASSERT_EQUAL(slm_ftype_base_type(14), SLM_DTYPE_Q4_K);
	CU_ASSERT_EQUAL(slm_ftype_base_type(32), SLM_DTYPE_BF16);
}

static void test_name_order(void)
{
	CU_ASSERT(
		slm_quant_name_before("output.weight", "blk.0.attn_q.weight"));
	CU_ASSERT(slm_quant_name_before("blk.2.ffn_up.weight",
					"blk.10.attn_k.weight"));
	CU_ASSERT(slm_quant_name_before("blk.3.attn_k.bias",
					"blk.3.attn_k.weight"));
	CU_ASSERT(!slm_quant_name_before("token_embd.weight",
					 "rope_freqs.weight"));
	CU_ASSERT(!slm_quant_name_before("a", "a"));
}

/* Conversions: exact paths, and no dependence on the thread count. */
static void test_convert_rows(void)
{
	enum { ROWS = 37, N = 512 };
	float *x = malloc(ROWS * N * sizeof(float));
	uint8_t *a = malloc(ROWS * N * 4), *b = malloc(ROWS * N * 4);
	uint8_t *c = malloc(ROWS * N * 4);
	float *y = malloc(ROWS * N * sizeof(float));
	CU_ASSERT_PTR_NOT_NULL_FATAL(x && a && b && c && y);
	struct slm_test_rng rng = {0x1234567u};
	for (int i = 0; i < ROWS * N; i++)
		x[i] = (float)slm_test_normal(&rng);
	struct slm_error err = {0};
	static const uint32_t types[] = {SLM_DTYPE_Q4_K, SLM_DTYPE_Q6_K,
					 SLM_DTYPE_Q8_0, SLM_DTYPE_F16,
					 SLM_DTYPE_BF16, SLM_DTYPE_Q5_1};
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		uint64_t row;
		CU_ASSERT_FATAL(slm_dtype_row_bytes(types[t], N, &row));
		CU_ASSERT_EQUAL(slm_convert_rows(SLM_DTYPE_F32, x, types[t], a,
						 ROWS, N, 1, &err),
				0);
		CU_ASSERT_EQUAL(slm_convert_rows(SLM_DTYPE_F32, x, types[t], b,
						 ROWS, N, 3, &err),
				0);
		CU_ASSERT(memcmp(a, b, row * ROWS) == 0);
		CU_ASSERT_EQUAL(slm_quantize_ref(types[t], x, c, ROWS * N), 0);
		CU_ASSERT(memcmp(a, c, row * ROWS) == 0);
	}
	/* Requantizing: Q8_0 -> Q4_0 is quantize(dequantize). */
	CU_ASSERT_EQUAL(slm_quantize_ref(SLM_DTYPE_Q8_0, x, a, ROWS * N), 0);
	CU_ASSERT_EQUAL(slm_convert_rows(SLM_DTYPE_Q8_0, a, SLM_DTYPE_Q4_0, b,
					 ROWS, N, 2, &err),
			0);
	CU_ASSERT_EQUAL(slm_dequantize(SLM_DTYPE_Q8_0, a, y, ROWS * N), 0);
	CU_ASSERT_EQUAL(slm_quantize_ref(SLM_DTYPE_Q4_0, y, c, ROWS * N), 0);
	uint64_t row4;
	CU_ASSERT_FATAL(slm_dtype_row_bytes(SLM_DTYPE_Q4_0, N, &row4));
	CU_ASSERT(memcmp(b, c, row4 * ROWS) == 0);
	/* Back to F32 is the exact dequantization. */
	CU_ASSERT_EQUAL(slm_convert_rows(SLM_DTYPE_Q4_0, b, SLM_DTYPE_F32, a,
					 ROWS, N, 2, &err),
			0);
	CU_ASSERT_EQUAL(slm_dequantize(SLM_DTYPE_Q4_0, b, y, ROWS * N), 0);
	CU_ASSERT(memcmp(a, y, sizeof(float) * ROWS * N) == 0);
	/* A row that does not fit the block is refused. */
	CU_ASSERT_EQUAL(slm_convert_rows(SLM_DTYPE_F32, x, SLM_DTYPE_Q4_K, a, 1,
					 100, 1, &err),
			SLM_EINVAL);
	free(x);
	free(a);
	free(b);
	free(c);
	free(y);
}

/* A whole file: metadata order, tensor order and types, kept data. */
static void test_quantize_file(void)
{
	struct slm_model_shape s;
	CU_ASSERT_EQUAL_FATAL(slm_model_preset("tiny", &s), 0);
	char src[4096], dst[4096];
	snprintf(src, sizeof(src), "%s/q-src.gguf", slm_test_tmpdir());
	snprintf(dst, sizeof(dst), "%s/q-dst.gguf", slm_test_tmpdir());
	struct slm_model_random rnd;
	slm_model_random_init(&rnd, &s, 7, 2);
	struct slm_model_params p = {.ftype = SLM_FTYPE_ALL_F32,
				     .fill = slm_model_fill_random,
				     .fill_ctx = &rnd};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(slm_model_write(src, &s, &p, &err), 0);
	struct slm_quant_params qp = {.n_threads = 2};
	CU_ASSERT_EQUAL_FATAL(
		slm_quantize_file(src, dst, SLM_FTYPE_MOSTLY_Q5_K_M, &qp, &err),
		0);
	struct gguf_file *in = NULL, *out = NULL;
	CU_ASSERT_EQUAL_FATAL(gguf_open(src, &in, &err), 0);
	CU_ASSERT_EQUAL_FATAL(gguf_open(dst, &out, &err), 0);
	/* The input's keys in order, then the two llama-quantize sets. */
	uint64_t n = gguf_n_kv(out);
	CU_ASSERT_EQUAL(n, gguf_n_kv(in));
	CU_ASSERT_STRING_EQUAL(gguf_kv_key(out, n - 2),
			       "general.quantization_version");
	CU_ASSERT_STRING_EQUAL(gguf_kv_key(out, n - 1), "general.file_type");
	int64_t ft = -1;
	CU_ASSERT_EQUAL(gguf_get_int(out, "general.file_type", &ft, &err), 0);
	CU_ASSERT_EQUAL(ft, SLM_FTYPE_MOSTLY_Q5_K_M);
	for (uint64_t i = 0, j = 0; i < gguf_n_kv(in); i++) {
		const char *k = gguf_kv_key(in, i);
		if (!strcmp(k, "general.quantization_version") ||
		    !strcmp(k, "general.file_type"))
			continue;
		CU_ASSERT_STRING_EQUAL(gguf_kv_key(out, j), k);
		j++;
	}
	/* llama.cpp's order, norms kept bit for bit. */
	CU_ASSERT_EQUAL(gguf_n_tensors(out), gguf_n_tensors(in));
	for (uint64_t i = 1; i < gguf_n_tensors(out); i++)
		CU_ASSERT(
			slm_quant_name_before(gguf_tensor_at(out, i - 1)->name,
					      gguf_tensor_at(out, i)->name));
	CU_ASSERT_STRING_EQUAL(gguf_tensor_at(out, 0)->name, "output.weight");
	const struct gguf_tensor *a =
		gguf_find_tensor(in, "blk.1.ffn_norm.weight");
	const struct gguf_tensor *b =
		gguf_find_tensor(out, "blk.1.ffn_norm.weight");
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	CU_ASSERT_EQUAL(b->type, SLM_DTYPE_F32);
	CU_ASSERT(memcmp(gguf_mapping(in) + a->file_offset,
			 gguf_mapping(out) + b->file_offset, a->size) == 0);
	CU_ASSERT_EQUAL(gguf_find_tensor(out, "blk.1.attn_v.weight")->type,
			SLM_DTYPE_Q6_K);
	CU_ASSERT_EQUAL(gguf_find_tensor(out, "blk.0.attn_v.weight")->type,
			SLM_DTYPE_Q5_K);
	gguf_close(in);
	gguf_close(out);

	/* Errors name the file; nothing is left behind. */
	char missing[4096], none[4096];
	snprintf(missing, sizeof(missing), "%s/none.gguf", slm_test_tmpdir());
	snprintf(none, sizeof(none), "%s/out-none.gguf", slm_test_tmpdir());
	slm_error_clear(&err);
	CU_ASSERT_NOT_EQUAL(slm_quantize_file(missing, none,
					      SLM_FTYPE_MOSTLY_Q4_0, &qp, &err),
			    0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "none.gguf"));
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_quantize_file(src, none, 4, &qp, &err),
			SLM_EUNSUPPORTED);
	CU_ASSERT_NOT_EQUAL(access(none, F_OK), 0);
}

SLM_SUITE("quantize", NULL, NULL, {"golden mixes", test_golden_mixes},
	  {"layer rules", test_layer_rules}, {"fallbacks", test_fallbacks},
	  {"ftype names", test_ftype_names}, {"name order", test_name_order},
	  {"convert rows", test_convert_rows},
	  {"quantize file", test_quantize_file})
