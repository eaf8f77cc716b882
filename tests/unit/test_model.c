/*
 * The model description: every golden model file against the golden
 * README's models table and tensor_types.json; a malformed-file corpus
 * made here from a good file, each case with its expected message, both
 * from the library and from `slm info` (exit status 1, message on
 * stderr, no crash; under `make asan` no leak either).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/dtype.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "tests/unit/harness.h"

/* ---- the golden models ---------------------------------------------------- */

/* The golden README's models table, one row per model family. */
struct family {
	const char *prefix; /* file names start with it */
	enum slm_arch arch;
	uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff;
	uint32_t n_ctx_train;
	float rope_base;
	enum slm_rope_scaling scaling;
	float scaling_factor;
	float rms_eps;
	bool tied, bias;
	uint64_t n_params;
	const char *tok_model, *tok_pre;
	int64_t bos, eos;
	bool chat_template;
};

static const struct family families[] = {
	{"llama-s-", SLM_ARCH_LLAMA,
	 1024,	     256,
	 4,	     8,
	 4,	     32,
	 768,	     2048,
	 10000.0f,   SLM_ROPE_SCALING_NONE,
	 1,	     1e-5f,
	 false,	     false,
	 3672320,    "llama",
	 "default",  1,
	 2,	     false},
	{"llama3-s-", SLM_ARCH_LLAMA,
	 2053,	      256,
	 4,	      4,
	 1,	      64,
	 768,	      131072,
	 500000.0f,   SLM_ROPE_SCALING_LLAMA3,
	 32,	      1e-5f,
	 true,	      false,
	 3542560,     "gpt2",
	 "llama-bpe", 2048,
	 2049,	      true},
	{"qwen2-s-", SLM_ARCH_QWEN2,
	 2051,	     320,
	 4,	     5,
	 1,	     64,
	 1024,	     32768,
	 1000000.0f, SLM_ROPE_SCALING_NONE,
	 1,	     1e-6f,
	 true,	     true,
	 5576192,    "gpt2",
	 "qwen2",    2048,
	 2050,	     true},
};

static cJSON *golden_types;

static int setup(void)
{
	char *text = slm_test_read_file(
		slm_test_data("golden/tensor_types.json"), NULL);
	golden_types = text ? cJSON_Parse(text) : NULL;
	free(text);
	return golden_types ? 0 : 1;
}

static uint8_t *base_bytes;

static int teardown(void)
{
	cJSON_Delete(golden_types);
	free(base_bytes);
	base_bytes = NULL;
	return 0;
}

/* Open models/<file>; a missing file fails loudly (it is an input the
 * build must provide, never a reason to pass). */
static struct slm_model *open_golden(const char *file)
{
	const char *path = slm_test_generated(file);
	if (access(path, R_OK) != 0) {
		printf("\n    missing golden model %s (make testdata, or copy "
		       "the golden models into the testdata folder)\n",
		       path);
		CU_FAIL("golden model file missing");
		return NULL;
	}
	struct slm_model *m = NULL;
	struct slm_error err = {0};
	int rc = slm_model_open(path, &m, &err);
	if (rc)
		printf("\n    %s: %s\n", file, err.msg);
	CU_ASSERT_EQUAL(rc, 0);
	return m;
}

static const struct family *family_of(const char *file)
{
	const char *base = strrchr(file, '/') ? strrchr(file, '/') + 1 : file;
	for (size_t i = 0; i < SLM_ARRAY_LEN(families); i++)
		if (!strncmp(base, families[i].prefix,
			     strlen(families[i].prefix)))
			return &families[i];
	return NULL;
}

static void check_hparams(const struct slm_model *m, const struct family *f)
{
	const struct slm_hparams *hp = &m->hp;
	CU_ASSERT_EQUAL(hp->arch, f->arch);
	CU_ASSERT_EQUAL(hp->n_vocab, f->n_vocab);
	CU_ASSERT_EQUAL(hp->n_embd, f->n_embd);
	CU_ASSERT_EQUAL(hp->n_layer, f->n_layer);
	CU_ASSERT_EQUAL(hp->n_head, f->n_head);
	CU_ASSERT_EQUAL(hp->n_head_kv, f->n_head_kv);
	CU_ASSERT_EQUAL(hp->head_dim, f->head_dim);
	CU_ASSERT_EQUAL(hp->n_ff, f->n_ff);
	CU_ASSERT_EQUAL(hp->n_ctx_train, f->n_ctx_train);
	CU_ASSERT_EQUAL(hp->rope_freq_base, f->rope_base);
	CU_ASSERT_EQUAL(hp->rope_neox, f->arch == SLM_ARCH_QWEN2);
	CU_ASSERT_EQUAL(hp->rope_scaling, f->scaling);
	CU_ASSERT_EQUAL(hp->rope_scaling_factor, f->scaling_factor);
	CU_ASSERT_EQUAL(hp->rope_freq_scale, 1.0f);
	CU_ASSERT_EQUAL(hp->rms_eps, f->rms_eps);
	CU_ASSERT_EQUAL(hp->tied_output, f->tied);
	CU_ASSERT_EQUAL(hp->qkv_bias, f->bias);
	CU_ASSERT_EQUAL(m->n_params, f->n_params);
	CU_ASSERT_STRING_EQUAL(m->tok.model, f->tok_model);
	CU_ASSERT_STRING_EQUAL(m->tok.pre, f->tok_pre);
	CU_ASSERT_EQUAL(m->tok.n_tokens, f->n_vocab);
	CU_ASSERT_EQUAL(m->tok.bos, f->bos);
	CU_ASSERT_EQUAL(m->tok.eos, f->eos);
	CU_ASSERT_EQUAL(m->tok.chat_template != NULL, f->chat_template);
}

/* Every view of the table agrees with the file's tensor of that name and
 * with tensor_types.json (type and shape). */
struct view_check {
	const struct slm_model *m;
	const cJSON *tensors;
	int n_present;
};

static void check_view(struct slm_tensor *v, void *arg)
{
	struct view_check *vc = arg;
	if (!slm_tensor_present(v))
		return;
	vc->n_present++;
	const struct gguf_tensor *t = gguf_find_tensor(vc->m->file, v->name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(v->type, t->type);
	CU_ASSERT_EQUAL(v->offset, t->offset);
	CU_ASSERT_EQUAL(v->bytes, t->size);
	CU_ASSERT_EQUAL(memcmp(v->ne, t->ne, sizeof(v->ne)), 0);
	CU_ASSERT_EQUAL(v->row_bytes * v->ne[1] * v->ne[2] * v->ne[3],
			v->bytes);
	CU_ASSERT_PTR_NULL(v->data);
	const cJSON *g = cJSON_GetObjectItemCaseSensitive(vc->tensors, v->name);
	CU_ASSERT_PTR_NOT_NULL_FATAL(g);
	CU_ASSERT_STRING_EQUAL(cJSON_GetArrayItem(g, 0)->valuestring,
			       slm_dtype_name(v->type));
	const cJSON *shape = cJSON_GetArrayItem(g, 1);
	for (int d = 0; d < cJSON_GetArraySize(shape); d++)
		CU_ASSERT_EQUAL(cJSON_GetArrayItem(shape, d)->valuedouble,
				(double)v->ne[d]);
}

static void test_golden_models(void)
{
	int n_files = 0;
	const cJSON *entry;
	cJSON_ArrayForEach(entry, golden_types)
	{
		const char *file = entry->string;
		const struct family *f = family_of(file);
		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		struct slm_model *m = open_golden(file);
		if (!m)
			continue;
		n_files++;
		check_hparams(m, f);
		const cJSON *ft =
			cJSON_GetObjectItem(entry, "general.file_type");
		const cJSON *ftn = cJSON_GetObjectItem(entry, "file_type_name");
		CU_ASSERT_EQUAL(m->file_type, (int64_t)ft->valuedouble);
		CU_ASSERT_STRING_EQUAL(slm_file_type_name(m->file_type),
				       ftn->valuestring);
		const cJSON *nt = cJSON_GetObjectItem(entry, "n_tensors");
		CU_ASSERT_EQUAL(gguf_n_tensors(m->file),
				(uint64_t)nt->valuedouble);
		/* Tensor counts per type, both ways. */
		const cJSON *counts = cJSON_GetObjectItem(entry, "type_counts");
		uint32_t listed = 0;
		const cJSON *c;
		cJSON_ArrayForEach(c, counts)
		{
			int type = slm_dtype_from_name(c->string);
			CU_ASSERT_FATAL(type >= 0);
			CU_ASSERT_EQUAL(m->type_count[type],
					(uint32_t)c->valuedouble);
			listed += m->type_count[type];
		}
		CU_ASSERT_EQUAL(listed, gguf_n_tensors(m->file));
		/* Views. */
		struct view_check vc = {
			.m = m,
			.tensors = cJSON_GetObjectItem(entry, "tensors"),
		};
		slm_tensors_for_each(&m->tensors, check_view, &vc);
		/* Every tensor once, plus the tied output view. */
		CU_ASSERT_EQUAL((uint64_t)vc.n_present,
				gguf_n_tensors(m->file) + (f->tied ? 1 : 0));
		if (f->tied)
			CU_ASSERT_EQUAL(memcmp(&m->tensors.output,
					       &m->tensors.token_embd,
					       sizeof(struct slm_tensor)),
					0);
		CU_ASSERT_EQUAL(slm_tensor_present(&m->tensors.rope_freqs),
				f->scaling == SLM_ROPE_SCALING_LLAMA3);
		slm_model_close(m);
	}
	CU_ASSERT_EQUAL(n_files, 25);
}

/* The llama3 factors are the README's 32 values. */
static void test_llama3_rope_freqs(void)
{
	struct slm_model *m = open_golden("models/llama3-s-Q4_K_M.gguf");
	if (!m)
		return;
	const struct slm_tensor *v = &m->tensors.rope_freqs;
	CU_ASSERT_EQUAL_FATAL(v->ne[0], 32);
	const uint8_t *p =
		gguf_mapping(m->file) + gguf_data_offset(m->file) + v->offset;
	static const float want[32] = {
		1,	     1,		  1,  1,  1,  1,  1,  1,
		1,	     1,		  1,  1,  1,  1,  1,  1.65132928f,
		3.29226279f, 9.66673088f, 32, 32, 32, 32, 32, 32,
		32,	     32,	  32, 32, 32, 32, 32, 32};
	for (int i = 0; i < 32; i++) {
		float x;
		memcpy(&x, p + 4 * i, 4);
		CU_ASSERT_DOUBLE_EQUAL(x, want[i], 1e-6);
	}
	slm_model_close(m);
}

static void test_file_type_names(void)
{
	CU_ASSERT_STRING_EQUAL(slm_file_type_name(0), "ALL_F32");
	CU_ASSERT_STRING_EQUAL(slm_file_type_name(15), "MOSTLY_Q4_K_M");
	CU_ASSERT_STRING_EQUAL(slm_file_type_name(32), "MOSTLY_BF16");
	CU_ASSERT_STRING_EQUAL(slm_file_type_name(38), "MOSTLY_MXFP4_MOE");
	CU_ASSERT_PTR_NULL(slm_file_type_name(5)); /* retired */
	CU_ASSERT_PTR_NULL(slm_file_type_name(-1));
	CU_ASSERT_PTR_NULL(slm_file_type_name(1024));
}

/* ---- the malformed corpus -------------------------------------------------- */

/* Where things are in a GGUF file, found by a walker written here (not
 * the reader under test). */
#define MAX_T 64
struct layout {
	uint64_t n_kv, n_tensors;
	uint64_t kv_at[64];	   /* start of pair i (its key length) */
	uint64_t ti_at[MAX_T];	   /* start of tensor info j */
	uint64_t ne_at[MAX_T];	   /* its first dimension */
	uint64_t type_at[MAX_T];   /* its type */
	uint64_t offset_at[MAX_T]; /* its data offset */
	char name[MAX_T][64];
	uint64_t info_end;
};

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t skip_value(const uint8_t *b, uint64_t pos, uint32_t type)
{
	static const uint8_t size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
	if (type == GGUF_TYPE_STRING)
		return pos + 8 + rd64(b + pos);
	if (type == GGUF_TYPE_ARRAY) {
		uint32_t et = rd32(b + pos);
		uint64_t n = rd64(b + pos + 4);
		pos += 12;
		if (et == GGUF_TYPE_STRING) {
			for (uint64_t i = 0; i < n; i++)
				pos += 8 + rd64(b + pos);
			return pos;
		}
		return pos + n * size[et];
	}
	return pos + size[type];
}

static void walk(const uint8_t *b, struct layout *l)
{
	memset(l, 0, sizeof(*l));
	l->n_tensors = rd64(b + 8);
	l->n_kv = rd64(b + 16);
	uint64_t pos = 24;
	for (uint64_t i = 0; i < l->n_kv; i++) {
		if (i < 64)
			l->kv_at[i] = pos;
		pos += 8 + rd64(b + pos);
		uint32_t type = rd32(b + pos);
		pos = skip_value(b, pos + 4, type);
	}
	for (uint64_t j = 0; j < l->n_tensors && j < MAX_T; j++) {
		l->ti_at[j] = pos;
		uint64_t len = rd64(b + pos);
		memcpy(l->name[j], b + pos + 8, len < 63 ? len : 63);
		pos += 8 + len;
		uint32_t n_dims = rd32(b + pos);
		pos += 4;
		l->ne_at[j] = pos;
		pos += 8ull * n_dims;
		l->type_at[j] = pos;
		pos += 4;
		l->offset_at[j] = pos;
		pos += 8;
	}
	l->info_end = pos;
}

static int tensor_index(const struct layout *l, const char *name)
{
	for (uint64_t j = 0; j < l->n_tensors && j < MAX_T; j++)
		if (!strcmp(l->name[j], name))
			return (int)j;
	CU_FAIL("tensor not found in the base file");
	return 0;
}

static char *corpus_path(const char *name)
{
	static char path[4096];
	snprintf(path, sizeof(path), "%s/%s.gguf", slm_test_tmpdir(), name);
	return path;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(p, 1, n, f), n);
	CU_ASSERT_EQUAL(fclose(f), 0);
}

/*
 * The expected failure: slm_model_open returns `code` with every fragment
 * in its message, and `slm info` exits 1 with the same message on stderr.
 */
static void expect_refused(const char *path, int code, const char *frag1,
			   const char *frag2)
{
	struct slm_model *m = NULL;
	struct slm_error err = {0};
	int rc = slm_model_open(path, &m, &err);
	if (rc != code || !strstr(err.msg, frag1) ||
	    (frag2 && !strstr(err.msg, frag2)))
		printf("\n    %s: code %d (want %d), message: %s\n    want: "
		       "'%s' '%s'\n",
		       path, rc, code, err.msg, frag1, frag2 ? frag2 : "");
	CU_ASSERT_EQUAL(rc, code);
	CU_ASSERT_PTR_NULL(m);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, frag1));
	if (frag2)
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, frag2));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, path));
	slm_model_close(m);

	/* The same through the CLI. */
	char errfile[4200], cmd[12800];
	snprintf(errfile, sizeof(errfile), "%s.err", path);
	snprintf(cmd, sizeof(cmd),
		 "'%s/bin/slm' info -m '%s' >/dev/null 2>'%s'",
		 slm_test_build(), path, errfile);
	int status = system(cmd);
	CU_ASSERT(WIFEXITED(status));
	CU_ASSERT_EQUAL(WEXITSTATUS(status), 1);
	char *text = slm_test_read_file(errfile, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	if (!strstr(text, frag1) || WEXITSTATUS(status) != 1)
		printf("\n    slm info on %s: status %d, stderr: %s\n", path,
		       WEXITSTATUS(status), text);
	CU_ASSERT_PTR_NOT_NULL(strstr(text, "slm info: "));
	CU_ASSERT_PTR_NOT_NULL(strstr(text, frag1));
	free(text);
}

static size_t base_len;
static struct layout base;

/* llama-s-Q4_K_M: small, two quant types, an untied output. */
static bool load_base(void)
{
	if (base_bytes)
		return true;
	const char *path = slm_test_generated("models/llama-s-Q4_K_M.gguf");
	base_bytes = slm_test_read_file(path, &base_len);
	if (!base_bytes) {
		printf("\n    missing golden model %s\n", path);
		CU_FAIL("golden model file missing");
		return false;
	}
	walk(base_bytes, &base);
	return true;
}

/* A copy of the base file with `edit` applied, cut to `len` bytes. */
static const char *variant(const char *name, size_t len,
			   void (*edit)(uint8_t *b, void *arg), void *arg)
{
	uint8_t *b = malloc(base_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	memcpy(b, base_bytes, base_len);
	if (edit)
		edit(b, arg);
	const char *path = corpus_path(name);
	write_bytes(path, b, len);
	free(b);
	return path;
}

struct patch {
	uint64_t at;
	uint64_t value;
	int width; /* 4 or 8 */
};

static void apply_patch(uint8_t *b, void *arg)
{
	const struct patch *p = arg;
	if (p->width == 4) {
		uint32_t v = (uint32_t)p->value;
		memcpy(b + p->at, &v, 4);
	} else {
		memcpy(b + p->at, &p->value, 8);
	}
}

static const char *patched(const char *name, uint64_t at, uint64_t value,
			   int width)
{
	struct patch p = {at, value, width};
	return variant(name, base_len, apply_patch, &p);
}

static void test_truncations(void)
{
	if (!load_base())
		return;
	/* Inside the magic, the version, the counts. */
	expect_refused(variant("cut-magic", 3, NULL, NULL), SLM_EFORMAT,
		       "too short for a GGUF header", NULL);
	expect_refused(variant("cut-version", 6, NULL, NULL), SLM_EFORMAT,
		       "version: needs 4 bytes", NULL);
	expect_refused(variant("cut-counts", 20, NULL, NULL), SLM_EFORMAT,
		       "n_kv: needs 8 bytes", NULL);
	/* Inside the metadata: a key, a string value, the token array. */
	expect_refused(variant("cut-early", base.kv_at[3] + 10, NULL, NULL),
		       SLM_EFORMAT, "n_kv: 28 metadata pairs cannot fit", NULL);
	expect_refused(variant("cut-key", base.kv_at[21] + 10, NULL, NULL),
		       SLM_EFORMAT, "metadata pair 21 key", "past the end");
	expect_refused(variant("cut-kvs", base.kv_at[18] - 3, NULL, NULL),
		       SLM_EFORMAT, "key 'tokenizer.ggml.tokens'", NULL);
	/* Inside the tensor infos. */
	expect_refused(variant("cut-infos", base.ne_at[5] + 3, NULL, NULL),
		       SLM_EFORMAT, "tensor '", "needs 8 bytes");
	/* Inside the data: the last tensor runs past the end. */
	expect_refused(variant("cut-data", base_len - 100, NULL, NULL),
		       SLM_EFORMAT, "runs past end of file", NULL);
}

static void test_header_damage(void)
{
	if (!load_base())
		return;
	expect_refused(patched("magic", 0, 0x46554746, 4), SLM_EFORMAT,
		       "not a GGUF file", NULL);
	expect_refused(patched("version4", 4, 4, 4), SLM_EFORMAT,
		       "GGUF version 4 is not supported", NULL);
	expect_refused(patched("version1", 4, 1, 4), SLM_EFORMAT,
		       "GGUF version 1 is not supported", NULL);
	expect_refused(patched("big-endian", 4, 0x03000000, 4), SLM_EFORMAT,
		       "big-endian", NULL);
	expect_refused(patched("absurd-kv", 16, 1ull << 60, 8), SLM_EFORMAT,
		       "metadata pairs cannot fit", NULL);
	expect_refused(patched("absurd-tensors", 8, 1ull << 40, 8), SLM_EFORMAT,
		       "tensors cannot fit", NULL);
	/* A key's length, then a string value's length, past the end. */
	expect_refused(patched("key-length", base.kv_at[2], 1ull << 40, 8),
		       SLM_EFORMAT, "string length 1099511627776 runs past",
		       NULL);
	/* general.type's value: the key "general.type" (12 bytes), the
	 * value type (4), then the string's length. */
	expect_refused(patched("string-length", base.kv_at[1] + 8 + 12 + 4,
			       (uint64_t)base_len, 8),
		       SLM_EFORMAT, "key 'general.type'", "runs past");
	/* An absurd element count of the token array. */
	expect_refused(patched("array-count", base.kv_at[17] + 8 + 21 + 4 + 4,
			       1ull << 61, 8),
		       SLM_EFORMAT, "tokenizer.ggml.tokens", "cannot fit");
}

static void test_tensor_damage(void)
{
	if (!load_base())
		return;
	int q = tensor_index(&base, "blk.1.attn_q.weight");
	int k = tensor_index(&base, "blk.0.attn_k.weight");
	int n = tensor_index(&base, "blk.3.ffn_norm.weight");
	uint64_t q_off = rd64(base_bytes + base.offset_at[q]);
	uint64_t k_off = rd64(base_bytes + base.offset_at[k]);
	/* Two tensors on the same bytes. */
	expect_refused(patched("overlap", base.offset_at[q], k_off, 8),
		       SLM_EFORMAT, "overlaps tensor", NULL);
	expect_refused(patched("misaligned", base.offset_at[q], q_off + 1, 8),
		       SLM_EFORMAT, "not a multiple of the alignment 32", NULL);
	/* Dimensions whose product overflows 64 bits. */
	struct patch dims[2] = {{base.ne_at[q], 1ull << 40, 8},
				{base.ne_at[q] + 8, 1ull << 40, 8}};
	uint8_t *b = malloc(base_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	memcpy(b, base_bytes, base_len);
	apply_patch(b, &dims[0]);
	apply_patch(b, &dims[1]);
	write_bytes(corpus_path("dims-overflow"), b, base_len);
	free(b);
	expect_refused(corpus_path("dims-overflow"), SLM_EFORMAT,
		       "overflow the element count", NULL);
	/* A dimension that is negative as int64 (ggml's type). */
	expect_refused(
		patched("dims-negative", base.ne_at[q] + 8, (uint64_t)-256, 8),
		SLM_EFORMAT, "negative", NULL);
	expect_refused(patched("unknown-type", base.type_at[q], 99, 4),
		       SLM_EFORMAT, "unknown tensor type id 99", NULL);
	expect_refused(patched("retired-type", base.type_at[q], 4, 4),
		       SLM_EFORMAT, "unknown tensor type id 4", NULL);
	/* Well formed, but not something slmd runs. */
	expect_refused(
		patched("iq2_xxs", base.type_at[q], SLM_DTYPE_IQ2_XXS, 4),
		SLM_EUNSUPPORTED,
		"tensor 'blk.1.attn_q.weight' has type IQ2_XXS, which "
		"is not supported",
		"(supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, "
		"Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)");
	expect_refused(patched("norm-f16", base.type_at[n], SLM_DTYPE_F16, 4),
		       SLM_EUNSUPPORTED, "'blk.3.ffn_norm.weight' has type F16",
		       "must be F32");
	/* Shapes: 64 rows where the model needs 128. */
	expect_refused(patched("wrong-shape", base.ne_at[k] + 8, 64, 8),
		       SLM_EFORMAT,
		       "tensor 'blk.0.attn_k.weight' has shape [256, 64], "
		       "expected [256 (n_embd), 128 (n_head_kv * head_dim)]",
		       NULL);
	/* A missing tensor: rename it ("ffn_up" -> "ffn_uq"). */
	int up = tensor_index(&base, "blk.2.ffn_up.weight");
	size_t name_len = strlen("blk.2.ffn_u");
	uint8_t *r = malloc(base_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	memcpy(r, base_bytes, base_len);
	r[base.ti_at[up] + 8 + name_len] = 'q';
	write_bytes(corpus_path("missing-tensor"), r, base_len);
	free(r);
	expect_refused(corpus_path("missing-tensor"), SLM_EFORMAT,
		       "tensor 'blk.2.ffn_up.weight' is missing", NULL);
}

/* ---- corpus cases written with the gguf writer ----------------------------- */

struct rewrite {
	const char *drop_key;	 /* NULL: keep all */
	const char *drop_tensor; /* NULL: keep all */
	bool no_tensors;
	void (*set)(struct gguf_writer *w); /* extra or replaced keys */
	const char *extra_tensor;	    /* a 1-D F32 [256] tensor */
};

static const char *rewritten(const char *name, const char *base_file,
			     const struct rewrite *rw)
{
	struct gguf_file *f = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(
		gguf_open(slm_test_generated(base_file), &f, &err), 0);
	struct gguf_writer *w = gguf_writer_create();
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	for (uint64_t i = 0; i < gguf_n_kv(f); i++)
		if (!rw->drop_key || strcmp(gguf_kv_key(f, i), rw->drop_key))
			CU_ASSERT_EQUAL(gguf_copy_kv(w, f, i), 0);
	if (rw->set)
		rw->set(w);
	static const float ones[256] = {1};
	for (uint64_t i = 0; i < gguf_n_tensors(f) && !rw->no_tensors; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(f, i);
		if (rw->drop_tensor && !strcmp(t->name, rw->drop_tensor))
			continue;
		CU_ASSERT_EQUAL(
			gguf_add_tensor(w, t->name, t->n_dims, t->ne, t->type,
					gguf_mapping(f) + t->file_offset, &err),
			0);
	}
	if (rw->extra_tensor) {
		uint64_t ne[1] = {256};
		CU_ASSERT_EQUAL(gguf_add_tensor(w, rw->extra_tensor, 1, ne,
						SLM_DTYPE_F32, ones, &err),
				0);
	}
	const char *path = corpus_path(name);
	CU_ASSERT_EQUAL(gguf_writer_write(w, path, &err), 0);
	gguf_writer_destroy(w);
	gguf_close(f);
	return path;
}

static void set_arch_gemma(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(gguf_set_str(w, "general.architecture", "gemma2"), 0);
}

static void set_kv_heads_3(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(gguf_set_u32(w, "llama.attention.head_count_kv", 3), 0);
}

static void set_rms_eps_zero(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(
		gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 0),
		0);
}

static void set_rope_dim_16(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(gguf_set_u32(w, "llama.rope.dimension_count", 16), 0);
}

static void set_yarn(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(gguf_set_str(w, "llama.rope.scaling.type", "yarn"), 0);
	CU_ASSERT_EQUAL(gguf_set_f32(w, "llama.rope.scaling.factor", 4), 0);
}

static void set_linear_4(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(gguf_set_str(w, "llama.rope.scaling.type", "linear"),
			0);
	CU_ASSERT_EQUAL(gguf_set_f32(w, "llama.rope.scaling.factor", 4), 0);
}

static void set_bos_past_vocab(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 5000),
			0);
}

static void set_block_count_wrong_type(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(gguf_set_str(w, "llama.block_count", "four"), 0);
}

static void set_experts(struct gguf_writer *w)
{
	CU_ASSERT_EQUAL(gguf_set_u32(w, "llama.expert_count", 8), 0);
}

static void test_writer_cases(void)
{
	const char *q4 = "models/llama-s-Q4_K_M.gguf";
	if (!load_base())
		return;
	struct rewrite rw;

	rw = (struct rewrite){.set = set_arch_gemma};
	expect_refused(rewritten("arch-gemma", q4, &rw), SLM_EUNSUPPORTED,
		       "architecture 'gemma2' is not supported",
		       "(supported: llama, qwen2)");
	rw = (struct rewrite){.drop_key = "general.architecture"};
	expect_refused(rewritten("no-arch", q4, &rw), SLM_EFORMAT,
		       "'general.architecture' is missing", NULL);
	rw = (struct rewrite){.drop_key = "llama.block_count"};
	expect_refused(rewritten("no-block-count", q4, &rw), SLM_EFORMAT,
		       "key 'llama.block_count' is missing", NULL);
	rw = (struct rewrite){.set = set_block_count_wrong_type};
	expect_refused(rewritten("block-count-string", q4, &rw), SLM_EFORMAT,
		       "key 'llama.block_count' holds a string", NULL);
	rw = (struct rewrite){.set = set_kv_heads_3};
	expect_refused(rewritten("kv-heads-3", q4, &rw), SLM_EFORMAT,
		       "8 query heads cannot be shared evenly by 3", NULL);
	rw = (struct rewrite){.set = set_rms_eps_zero};
	expect_refused(rewritten("rms-eps-0", q4, &rw), SLM_EFORMAT,
		       "layer_norm_rms_epsilon' = 0 must be a positive", NULL);
	rw = (struct rewrite){.set = set_rope_dim_16};
	expect_refused(rewritten("partial-rope", q4, &rw), SLM_EUNSUPPORTED,
		       "partial rotary", NULL);
	rw = (struct rewrite){.set = set_yarn};
	expect_refused(rewritten("yarn", q4, &rw), SLM_EUNSUPPORTED,
		       "'yarn': this RoPE scaling is not supported", NULL);
	rw = (struct rewrite){.set = set_experts};
	expect_refused(rewritten("moe", q4, &rw), SLM_EUNSUPPORTED,
		       "key 'llama.expert_count'", NULL);
	rw = (struct rewrite){.set = set_bos_past_vocab};
	expect_refused(rewritten("bos-past-vocab", q4, &rw), SLM_EFORMAT,
		       "bos_token_id' = 5000 is past the vocabulary", NULL);
	rw = (struct rewrite){.drop_tensor = "output_norm.weight"};
	expect_refused(rewritten("no-output-norm", q4, &rw), SLM_EFORMAT,
		       "tensor 'output_norm.weight' is missing", NULL);
	rw = (struct rewrite){.extra_tensor = "blk.0.attn_output.bias"};
	expect_refused(rewritten("extra-bias", q4, &rw), SLM_EUNSUPPORTED,
		       "tensor 'blk.0.attn_output.bias' is not part of a "
		       "llama model",
		       NULL);
	rw = (struct rewrite){.extra_tensor = "blk.4.attn_norm.weight"};
	expect_refused(rewritten("extra-layer", q4, &rw), SLM_EUNSUPPORTED,
		       "'blk.4.attn_norm.weight' is not part", "n_layer 4");
	/* qwen2 needs its biases. */
	rw = (struct rewrite){.drop_tensor = "blk.1.attn_v.bias"};
	expect_refused(
		rewritten("qwen-no-bias", "models/qwen2-s-Q8_0.gguf", &rw),
		SLM_EFORMAT, "tensor 'blk.1.attn_v.bias' is missing", NULL);
	/* A vocabulary-only file. */
	rw = (struct rewrite){.no_tensors = true};
	expect_refused(rewritten("vocab-only", q4, &rw), SLM_EFORMAT,
		       "has no tensors", NULL);
	/* Duplicate tensor names cannot come from the writer's API... but a
	 * duplicate key can be made by renaming one in place. */
	uint8_t *b = malloc(base_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	memcpy(b, base_bytes, base_len);
	/* general.name (pair 2) -> general.type (pair 1), same length. */
	memcpy(b + base.kv_at[2] + 8, "general.type", 12);
	write_bytes(corpus_path("dup-key"), b, base_len);
	free(b);
	expect_refused(corpus_path("dup-key"), SLM_EFORMAT,
		       "key 'general.type' appears twice", NULL);
	/* Not a file at all. */
	expect_refused(corpus_path("does-not-exist"), SLM_ENOTFOUND,
		       "No such file", NULL);
}

/* Linear RoPE scaling keys are read as llama.cpp reads them. */
static void test_linear_scaling(void)
{
	if (!load_base())
		return;
	struct rewrite rw = {.set = set_linear_4};
	const char *path =
		rewritten("linear", "models/llama-s-Q4_K_M.gguf", &rw);
	struct slm_model *m = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(slm_model_open(path, &m, &err), 0);
	CU_ASSERT_EQUAL(m->hp.rope_scaling, SLM_ROPE_SCALING_LINEAR);
	CU_ASSERT_EQUAL(m->hp.rope_scaling_factor, 4.0f);
	CU_ASSERT_EQUAL(m->hp.rope_freq_scale, 0.25f);
	slm_model_close(m);
}

SLM_SUITE("model", setup, teardown, {"golden models", test_golden_models},
	  {"llama3 rope_freqs", test_llama3_rope_freqs},
	  {"file type names", test_file_type_names},
	  {"truncated files", test_truncations},
	  {"damaged headers", test_header_damage},
	  {"damaged tensor infos", test_tensor_damage},
	  {"refused models", test_writer_cases},
	  {"linear rope scaling", test_linear_scaling})
