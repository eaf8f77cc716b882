#include "engine/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dtype.h"

/* ---- names ------------------------------------------------------------- */

static const char *const arch_names[] = {
	[SLM_ARCH_LLAMA] = "llama",
	[SLM_ARCH_QWEN2] = "qwen2",
};

const char *slm_arch_name(enum slm_arch arch)
{
	return (unsigned)arch < SLM_ARRAY_LEN(arch_names) ? arch_names[arch]
							  : "?";
}

const char *slm_arch_supported_list(void)
{
	return "llama, qwen2";
}

const char *slm_rope_scaling_name(enum slm_rope_scaling s)
{
	switch (s) {
	case SLM_ROPE_SCALING_NONE:
		return "none";
	case SLM_ROPE_SCALING_LINEAR:
		return "linear";
	case SLM_ROPE_SCALING_LLAMA3:
		return "llama3";
	}
	return "?";
}

/* llama.cpp's enum llama_ftype (llama.h); gaps are retired values. */
static const char *const ftype_names[] = {
	[0] = "ALL_F32",
	[1] = "MOSTLY_F16",
	[2] = "MOSTLY_Q4_0",
	[3] = "MOSTLY_Q4_1",
	[4] = "MOSTLY_Q4_1_SOME_F16",
	[7] = "MOSTLY_Q8_0",
	[8] = "MOSTLY_Q5_0",
	[9] = "MOSTLY_Q5_1",
	[10] = "MOSTLY_Q2_K",
	[11] = "MOSTLY_Q3_K_S",
	[12] = "MOSTLY_Q3_K_M",
	[13] = "MOSTLY_Q3_K_L",
	[14] = "MOSTLY_Q4_K_S",
	[15] = "MOSTLY_Q4_K_M",
	[16] = "MOSTLY_Q5_K_S",
	[17] = "MOSTLY_Q5_K_M",
	[18] = "MOSTLY_Q6_K",
	[19] = "MOSTLY_IQ2_XXS",
	[20] = "MOSTLY_IQ2_XS",
	[21] = "MOSTLY_Q2_K_S",
	[22] = "MOSTLY_IQ3_XS",
	[23] = "MOSTLY_IQ3_XXS",
	[24] = "MOSTLY_IQ1_S",
	[25] = "MOSTLY_IQ4_NL",
	[26] = "MOSTLY_IQ3_S",
	[27] = "MOSTLY_IQ3_M",
	[28] = "MOSTLY_IQ2_S",
	[29] = "MOSTLY_IQ2_M",
	[30] = "MOSTLY_IQ4_XS",
	[31] = "MOSTLY_IQ1_M",
	[32] = "MOSTLY_BF16",
	[36] = "MOSTLY_TQ1_0",
	[37] = "MOSTLY_TQ2_0",
	[38] = "MOSTLY_MXFP4_MOE",
};

const char *slm_file_type_name(int64_t file_type)
{
	if (file_type < 0 || file_type >= (int64_t)SLM_ARRAY_LEN(ftype_names))
		return NULL;
	return ftype_names[file_type];
}

/* ---- reading hyperparameters -------------------------------------------- */

struct ctx {
	struct slm_model *m;
	struct gguf_file *f;
	const char *path;
	const char *arch; /* as written in the file: the key prefix */
	struct slm_error *err;
	bool *used; /* [n_tensors]: claimed by the table */
};

/* An unsigned integer key in [lo, hi]; *present tells whether it was
 * there (NULL: the key is required). */
static int get_u32(struct ctx *c, const char *suffix, uint64_t lo, uint64_t hi,
		   uint32_t *out, bool *present)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", c->arch, suffix);
	uint64_t v;
	int rc = gguf_get_uint(c->f, key, &v, c->err);
	if (rc == SLM_ENOTFOUND) {
		if (present) {
			*present = false;
			return 0;
		}
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: key '%s' is missing (a %s model "
				     "needs it)",
				     c->path, key, c->arch);
	}
	if (rc)
		return rc;
	if (v < lo || v > hi)
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: key '%s' = %llu is out of range "
				     "(%llu..%llu)",
				     c->path, key, (unsigned long long)v,
				     (unsigned long long)lo,
				     (unsigned long long)hi);
	*out = (uint32_t)v;
	if (present)
		*present = true;
	return 0;
}

/* A float key, finite and > 0; *present as in get_u32. */
static int get_pos_float(struct ctx *c, const char *suffix, float *out,
			 bool *present)
{
	char key[128];
	snprintf(key, sizeof(key), "%s.%s", c->arch, suffix);
	double v;
	int rc = gguf_get_float(c->f, key, &v, c->err);
	if (rc == SLM_ENOTFOUND) {
		if (present) {
			*present = false;
			return 0;
		}
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: key '%s' is missing (a %s model "
				     "needs it)",
				     c->path, key, c->arch);
	}
	if (rc)
		return rc;
	if (!isfinite(v) || v <= 0 || v > 3.4e38)
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: key '%s' = %g must be a positive "
				     "finite number",
				     c->path, key, v);
	*out = (float)v;
	if (present)
		*present = true;
	return 0;
}

/* Keys that change the computation in ways slmd does not implement. */
static int refuse_unsupported_keys(struct ctx *c)
{
	static const char *const suffixes[] = {
		"expert_count", /* mixture of experts */
		"attention.sliding_window",
		"attn_logit_softcapping",
		"final_logit_softcapping",
		"attention.q_lora_rank",
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(suffixes); i++) {
		char key[128];
		snprintf(key, sizeof(key), "%s.%s", c->arch, suffixes[i]);
		int64_t idx = gguf_find(c->f, key);
		if (idx < 0)
			continue;
		/* An expert count of 0 is what dense converters sometimes
		 * write; anything else is a feature we lack. */
		uint64_t v;
		if (gguf_get_uint(c->f, key, &v, NULL) == 0 && v == 0)
			continue;
		return slm_error_set(c->err, SLM_EUNSUPPORTED,
				     "%s: key '%s': this feature is not "
				     "supported (slmd runs dense llama and "
				     "qwen2 models)",
				     c->path, key);
	}
	return 0;
}

static int read_rope_scaling(struct ctx *c)
{
	struct slm_hparams *hp = &c->m->hp;
	char key[128];
	hp->rope_scaling = SLM_ROPE_SCALING_NONE;
	hp->rope_scaling_factor = 1;
	hp->rope_freq_scale = 1;

	/* llama.cpp: scaling.type defaults to linear; the factor comes from
	 * scaling.factor or the older rope.scale_linear; 0 means none. */
	const char *type = "linear";
	snprintf(key, sizeof(key), "%s.rope.scaling.type", c->arch);
	int rc = gguf_get_str(c->f, key, &type, c->err);
	if (rc && rc != SLM_ENOTFOUND)
		return rc;
	float factor = 0;
	bool have;
	rc = get_pos_float(c, "rope.scaling.factor", &factor, &have);
	if (!rc && !have)
		rc = get_pos_float(c, "rope.scale_linear", &factor, &have);
	if (rc)
		return rc;
	if (!strcmp(type, "none")) {
		factor = 0;
	} else if (strcmp(type, "linear") != 0) {
		return slm_error_set(c->err, SLM_EUNSUPPORTED,
				     "%s: key '%s' = '%s': this RoPE scaling "
				     "is not supported (supported: none, "
				     "linear, llama3 through rope_freqs)",
				     c->path, key, type);
	}
	if (have && factor != 1 && factor != 0) {
		hp->rope_scaling = SLM_ROPE_SCALING_LINEAR;
		hp->rope_scaling_factor = factor;
		hp->rope_freq_scale = 1.0f / factor;
	}
	return 0;
}

static int read_hparams(struct ctx *c)
{
	struct slm_hparams *hp = &c->m->hp;
	int rc;
	if ((rc = refuse_unsupported_keys(c)))
		return rc;
	if ((rc = get_u32(c, "embedding_length", 1, 1u << 18, &hp->n_embd,
			  NULL)) ||
	    (rc = get_u32(c, "block_count", 1, 4096, &hp->n_layer, NULL)) ||
	    (rc = get_u32(c, "feed_forward_length", 1, 1u << 20, &hp->n_ff,
			  NULL)) ||
	    (rc = get_u32(c, "attention.head_count", 1, 1u << 14, &hp->n_head,
			  NULL)) ||
	    (rc = get_u32(c, "context_length", 1, UINT32_MAX, &hp->n_ctx_train,
			  NULL)) ||
	    (rc = get_pos_float(c, "attention.layer_norm_rms_epsilon",
				&hp->rms_eps, NULL)))
		return rc;

	bool have;
	if ((rc = get_u32(c, "attention.head_count_kv", 1, 1u << 14,
			  &hp->n_head_kv, &have)))
		return rc;
	if (!have)
		hp->n_head_kv = hp->n_head;
	if (hp->n_head % hp->n_head_kv)
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: %u query heads cannot be shared "
				     "evenly by %u key/value heads",
				     c->path, hp->n_head, hp->n_head_kv);

	/* head_dim: key_length, else n_embd / n_head (as llama.cpp), else
	 * the rotary dimension count; all that are present must agree. */
	uint32_t key_len = 0, val_len = 0, n_rot = 0;
	bool have_k, have_v, have_rot;
	if ((rc = get_u32(c, "attention.key_length", 1, 1u << 14, &key_len,
			  &have_k)) ||
	    (rc = get_u32(c, "attention.value_length", 1, 1u << 14, &val_len,
			  &have_v)) ||
	    (rc = get_u32(c, "rope.dimension_count", 1, 1u << 14, &n_rot,
			  &have_rot)))
		return rc;
	if (have_k)
		hp->head_dim = key_len;
	else if (hp->n_embd % hp->n_head == 0)
		hp->head_dim = hp->n_embd / hp->n_head;
	else if (have_rot)
		hp->head_dim = n_rot;
	else
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: n_embd %u is not a multiple of "
				     "n_head %u and the file gives no "
				     "'%s.attention.key_length'",
				     c->path, hp->n_embd, hp->n_head, c->arch);
	if (have_v && val_len != hp->head_dim)
		return slm_error_set(c->err, SLM_EUNSUPPORTED,
				     "%s: value head size %u differs from key "
				     "head size %u: not supported",
				     c->path, val_len, hp->head_dim);
	if (have_rot && n_rot != hp->head_dim)
		return slm_error_set(c->err, SLM_EUNSUPPORTED,
				     "%s: '%s.rope.dimension_count' = %u but "
				     "head_dim is %u: partial rotary "
				     "embeddings are not supported",
				     c->path, c->arch, n_rot, hp->head_dim);
	if (hp->head_dim % 2)
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: head_dim %u is odd: RoPE rotates "
				     "pairs",
				     c->path, hp->head_dim);

	hp->rope_freq_base = 10000.0f;
	if ((rc = get_pos_float(c, "rope.freq_base", &hp->rope_freq_base,
				&have)))
		return rc;
	hp->rope_neox = hp->arch == SLM_ARCH_QWEN2;
	if ((rc = read_rope_scaling(c)))
		return rc;

	/* n_vocab: <arch>.vocab_size, else the token list's length (as
	 * llama.cpp). */
	uint32_t n_vocab = 0;
	if ((rc = get_u32(c, "vocab_size", 1, 1u << 24, &n_vocab, &have)))
		return rc;
	if (!have) {
		if (c->m->tok.n_tokens == 0)
			return slm_error_set(
				c->err, SLM_EFORMAT,
				"%s: the vocabulary size is unknown: neither "
				"'%s.vocab_size' nor 'tokenizer.ggml.tokens' "
				"is present",
				c->path, c->arch);
		n_vocab = c->m->tok.n_tokens;
	}
	hp->n_vocab = n_vocab;
	if (c->m->tok.n_tokens > n_vocab)
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: the tokenizer has %u tokens but the "
				     "model only %u vocabulary rows",
				     c->path, c->m->tok.n_tokens, n_vocab);
	return 0;
}

/* ---- tokenizer facts ------------------------------------------------------ */

static int get_opt_id(struct ctx *c, const char *key, int64_t *out)
{
	*out = -1;
	int64_t v;
	int rc = gguf_get_int(c->f, key, &v, c->err);
	if (rc == SLM_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (v < 0 || v >= (int64_t)1 << 31)
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: key '%s' = %lld is not a valid "
				     "token id",
				     c->path, key, (long long)v);
	*out = v;
	return 0;
}

static int read_tokenizer(struct ctx *c)
{
	struct slm_tokenizer_info *t = &c->m->tok;
	int rc = gguf_get_str(c->f, "tokenizer.ggml.model", &t->model, c->err);
	if (rc == SLM_ENOTFOUND)
		t->model = NULL;
	else if (rc)
		return rc;
	rc = gguf_get_str(c->f, "tokenizer.ggml.pre", &t->pre, c->err);
	if (rc == SLM_ENOTFOUND)
		t->pre = NULL;
	else if (rc)
		return rc;
	rc = gguf_get_str(c->f, "tokenizer.chat_template", &t->chat_template,
			  c->err);
	if (rc == SLM_ENOTFOUND)
		t->chat_template = NULL;
	else if (rc)
		return rc;
	struct gguf_array tokens;
	rc = gguf_get_arr(c->f, "tokenizer.ggml.tokens", &tokens, c->err);
	if (rc == SLM_ENOTFOUND) {
		t->n_tokens = 0;
	} else if (rc) {
		return rc;
	} else if (tokens.type != GGUF_TYPE_STRING) {
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: key 'tokenizer.ggml.tokens' is an "
				     "array of %s, expected strings",
				     c->path, gguf_type_name(tokens.type));
	} else if (tokens.n > (1u << 24)) {
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: key 'tokenizer.ggml.tokens' has "
				     "%llu tokens (at most %u supported)",
				     c->path, (unsigned long long)tokens.n,
				     1u << 24);
	} else {
		t->n_tokens = (uint32_t)tokens.n;
	}
	if ((rc = get_opt_id(c, "tokenizer.ggml.bos_token_id", &t->bos)) ||
	    (rc = get_opt_id(c, "tokenizer.ggml.eos_token_id", &t->eos)) ||
	    (rc = get_opt_id(c, "tokenizer.ggml.unknown_token_id", &t->unk)) ||
	    (rc = get_opt_id(c, "tokenizer.ggml.padding_token_id", &t->pad)))
		return rc;
	bool add_bos;
	rc = gguf_get_bool(c->f, "tokenizer.ggml.add_bos_token", &add_bos,
			   c->err);
	if (rc == SLM_ENOTFOUND)
		t->add_bos = -1;
	else if (rc)
		return rc;
	else
		t->add_bos = add_bos;
	return 0;
}

/* Special ids must index a vocabulary row: they are fed to the model. */
static int check_special_ids(struct ctx *c)
{
	const struct slm_tokenizer_info *t = &c->m->tok;
	const struct {
		const char *key;
		int64_t id;
	} ids[] = {
		{"tokenizer.ggml.bos_token_id", t->bos},
		{"tokenizer.ggml.eos_token_id", t->eos},
		{"tokenizer.ggml.unknown_token_id", t->unk},
		{"tokenizer.ggml.padding_token_id", t->pad},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(ids); i++)
		if (ids[i].id >= (int64_t)c->m->hp.n_vocab)
			return slm_error_set(c->err, SLM_EFORMAT,
					     "%s: key '%s' = %lld is past the "
					     "vocabulary (n_vocab %u)",
					     c->path, ids[i].key,
					     (long long)ids[i].id,
					     c->m->hp.n_vocab);
	return 0;
}

/* ---- tensor table --------------------------------------------------------- */

enum tensor_kind {
	KIND_WEIGHT, /* 2-D matrix, any supported weight type */
	KIND_VECTOR, /* 1-D norm, bias or factors: F32 */
};

/* An expected dimension: its size and the name shown in messages. */
struct dim {
	uint64_t n;
	const char *what;
};

static void format_dims(char *buf, size_t size, const uint64_t *ne,
			uint32_t n_dims)
{
	size_t used = (size_t)snprintf(buf, size, "[");
	for (uint32_t d = 0; d < n_dims && used < size; d++)
		used += (size_t)snprintf(buf + used, size - used, "%s%llu",
					 d ? ", " : "",
					 (unsigned long long)ne[d]);
	if (used < size)
		snprintf(buf + used, size - used, "]");
}

static void format_expected(char *buf, size_t size, const struct dim *dims,
			    uint32_t n_dims)
{
	size_t used = (size_t)snprintf(buf, size, "[");
	for (uint32_t d = 0; d < n_dims && used < size; d++)
		used += (size_t)snprintf(
			buf + used, size - used, "%s%llu (%s)", d ? ", " : "",
			(unsigned long long)dims[d].n, dims[d].what);
	if (used < size)
		snprintf(buf + used, size - used, "]");
}

/*
 * Find `name`, check its shape against dims (n_dims of them; the file's
 * dims beyond those must be 1) and its type against kind, and fill the
 * view.  An absent optional tensor leaves the view empty (name NULL).
 */
static int bind(struct ctx *c, struct slm_tensor *v, const char *name,
		enum tensor_kind kind, const struct dim *dims, uint32_t n_dims,
		bool optional)
{
	memset(v, 0, sizeof(*v));
	const struct gguf_tensor *t = gguf_find_tensor(c->f, name);
	if (!t) {
		if (optional)
			return 0;
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: tensor '%s' is missing (a %s model "
				     "needs it)",
				     c->path, name, c->arch);
	}
	bool ok = true;
	for (uint32_t d = 0; d < GGUF_MAX_DIMS; d++)
		ok &= t->ne[d] == (d < n_dims ? dims[d].n : 1);
	if (!ok) {
		char have[128], want[256];
		format_dims(have, sizeof(have), t->ne,
			    t->n_dims ? t->n_dims : 1);
		format_expected(want, sizeof(want), dims, n_dims);
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: tensor '%s' has shape %s, expected "
				     "%s",
				     c->path, name, have, want);
	}
	if (kind == KIND_VECTOR && t->type != SLM_DTYPE_F32)
		return slm_error_set(c->err, SLM_EUNSUPPORTED,
				     "%s: tensor '%s' has type %s; 1-D norm, "
				     "bias and factor tensors must be F32",
				     c->path, name, slm_dtype_name(t->type));
	if (kind == KIND_WEIGHT && !slm_dtype_weight_supported(t->type))
		return slm_error_set(c->err, SLM_EUNSUPPORTED,
				     "%s: tensor '%s' has type %s, which is "
				     "not supported (supported: %s)",
				     c->path, name, slm_dtype_name(t->type),
				     slm_dtype_supported_list());
	v->name = t->name;
	v->type = t->type;
	v->n_dims = t->n_dims;
	memcpy(v->ne, t->ne, sizeof(v->ne));
	v->bytes = t->size;
	bool row_ok = slm_dtype_row_bytes(t->type, t->ne[0], &v->row_bytes);
	SLM_ASSERT(row_ok); /* the reader checked the row length */
	v->offset = t->offset;
	v->data = NULL;
	c->used[t - gguf_tensor_at(c->f, 0)] = true;
	return 0;
}

static int bind_layer(struct ctx *c, uint32_t il, struct slm_layer *l)
{
	const struct slm_hparams *hp = &c->m->hp;
	const uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
	const uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
	const struct dim embd = {hp->n_embd, "n_embd"};
	const struct dim q = {q_dim, "n_head * head_dim"};
	const struct dim kv = {kv_dim, "n_head_kv * head_dim"};
	const struct dim ff = {hp->n_ff, "n_ff"};
	const bool bias_required = hp->arch == SLM_ARCH_QWEN2;
	const struct {
		struct slm_tensor *v;
		const char *suffix;
		enum tensor_kind kind;
		struct dim d0, d1;
		uint32_t n_dims;
		bool optional;
	} table[] = {
		{&l->attn_norm,
		 "attn_norm.weight",
		 KIND_VECTOR,
		 embd,
		 {0},
		 1,
		 false},
		{&l->wq, "attn_q.weight", KIND_WEIGHT, embd, q, 2, false},
		{&l->wk, "attn_k.weight", KIND_WEIGHT, embd, kv, 2, false},
		{&l->wv, "attn_v.weight", KIND_WEIGHT, embd, kv, 2, false},
		{&l->wo, "attn_output.weight", KIND_WEIGHT, q, embd, 2, false},
		{&l->bq, "attn_q.bias", KIND_VECTOR, q, {0}, 1, !bias_required},
		{&l->bk,
		 "attn_k.bias",
		 KIND_VECTOR,
		 kv,
		 {0},
		 1,
		 !bias_required},
		{&l->bv,
		 "attn_v.bias",
		 KIND_VECTOR,
		 kv,
		 {0},
		 1,
		 !bias_required},
		{&l->ffn_norm,
		 "ffn_norm.weight",
		 KIND_VECTOR,
		 embd,
		 {0},
		 1,
		 false},
		{&l->w_gate, "ffn_gate.weight", KIND_WEIGHT, embd, ff, 2,
		 false},
		{&l->w_up, "ffn_up.weight", KIND_WEIGHT, embd, ff, 2, false},
		{&l->w_down, "ffn_down.weight", KIND_WEIGHT, ff, embd, 2,
		 false},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(table); i++) {
		char name[64];
		snprintf(name, sizeof(name), "blk.%u.%s", il, table[i].suffix);
		struct dim dims[2] = {table[i].d0, table[i].d1};
		int rc = bind(c, table[i].v, name, table[i].kind, dims,
			      table[i].n_dims, table[i].optional);
		if (rc)
			return rc;
	}
	return 0;
}

/* llama3 RoPE: rope_freqs.weight holds one divisor per rotated pair. */
static int read_rope_freqs(struct ctx *c)
{
	struct slm_model *m = c->m;
	struct slm_tensor *v = &m->tensors.rope_freqs;
	const struct dim d = {m->hp.head_dim / 2, "head_dim / 2"};
	int rc = bind(c, v, "rope_freqs.weight", KIND_VECTOR, &d, 1, true);
	if (rc || !slm_tensor_present(v))
		return rc;
	/* Small (head_dim / 2 floats): read it from the mapping now. */
	const uint8_t *p =
		gguf_mapping(c->f) + gguf_data_offset(c->f) + v->offset;
	float max = 0;
	for (uint64_t i = 0; i < v->ne[0]; i++) {
		float x;
		memcpy(&x, p + 4 * i, 4);
		if (!isfinite(x) || x <= 0)
			return slm_error_set(c->err, SLM_EFORMAT,
					     "%s: tensor 'rope_freqs.weight': "
					     "factor %llu is %g, not a "
					     "positive finite number",
					     c->path, (unsigned long long)i,
					     (double)x);
		if (x > max)
			max = x;
	}
	m->hp.rope_scaling = SLM_ROPE_SCALING_LLAMA3;
	m->hp.rope_scaling_factor = max;
	return 0;
}

static int bind_tensors(struct ctx *c)
{
	struct slm_model *m = c->m;
	const struct slm_hparams *hp = &m->hp;
	struct slm_tensors *t = &m->tensors;
	const struct dim embd = {hp->n_embd, "n_embd"};
	const struct dim vocab = {hp->n_vocab, "n_vocab"};
	const struct dim mat[2] = {embd, vocab};
	int rc;
	if ((rc = bind(c, &t->token_embd, "token_embd.weight", KIND_WEIGHT, mat,
		       2, false)) ||
	    (rc = bind(c, &t->output_norm, "output_norm.weight", KIND_VECTOR,
		       &embd, 1, false)) ||
	    (rc = bind(c, &t->output, "output.weight", KIND_WEIGHT, mat, 2,
		       true)))
		return rc;
	/* Only llama reads rope_freqs (as llama.cpp); in a qwen2 file it is
	 * an unused tensor and refused below. */
	if (hp->arch == SLM_ARCH_LLAMA && (rc = read_rope_freqs(c)))
		return rc;
	m->hp.tied_output = !slm_tensor_present(&t->output);
	if (m->hp.tied_output)
		t->output = t->token_embd;

	t->n_layer = hp->n_layer;
	t->layers = calloc(hp->n_layer, sizeof(*t->layers));
	if (!t->layers)
		return slm_error_set(c->err, SLM_ENOMEM, "%s: out of memory",
				     c->path);
	bool any_bias = false;
	for (uint32_t il = 0; il < hp->n_layer; il++) {
		struct slm_layer *l = &t->layers[il];
		if ((rc = bind_layer(c, il, l)))
			return rc;
		any_bias |= slm_tensor_present(&l->bq) ||
			    slm_tensor_present(&l->bk) ||
			    slm_tensor_present(&l->bv);
	}
	m->hp.qkv_bias = any_bias;

	/* A tensor the table did not claim would be ignored, and the model
	 * would compute something else than the file means. */
	for (uint64_t i = 0; i < gguf_n_tensors(c->f); i++)
		if (!c->used[i])
			return slm_error_set(
				c->err, SLM_EUNSUPPORTED,
				"%s: tensor '%s' is not part of a %s model as "
				"slmd runs it (n_layer %u); refusing rather "
				"than ignoring it",
				c->path, gguf_tensor_at(c->f, i)->name, c->arch,
				hp->n_layer);
	return 0;
}

/* ---- open ---------------------------------------------------------------- */

static int describe(struct ctx *c)
{
	struct slm_model *m = c->m;
	struct gguf_file *f = c->f;
	int rc = gguf_get_str(f, "general.architecture", &c->arch, c->err);
	if (rc == SLM_ENOTFOUND)
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: key 'general.architecture' is "
				     "missing: not a model file",
				     c->path);
	if (rc)
		return rc;
	if (!strcmp(c->arch, "llama"))
		m->hp.arch = SLM_ARCH_LLAMA;
	else if (!strcmp(c->arch, "qwen2"))
		m->hp.arch = SLM_ARCH_QWEN2;
	else
		return slm_error_set(c->err, SLM_EUNSUPPORTED,
				     "%s: architecture '%.64s' is not "
				     "supported (supported: %s)",
				     c->path, c->arch,
				     slm_arch_supported_list());
	if (gguf_n_tensors(f) == 0)
		return slm_error_set(c->err, SLM_EFORMAT,
				     "%s: the file has no tensors (a "
				     "vocabulary-only file cannot be run)",
				     c->path);

	rc = gguf_get_str(f, "general.name", &m->name, c->err);
	if (rc == SLM_ENOTFOUND)
		m->name = NULL;
	else if (rc)
		return rc;
	rc = gguf_get_int(f, "general.file_type", &m->file_type, c->err);
	if (rc == SLM_ENOTFOUND)
		m->file_type = -1;
	else if (rc)
		return rc;

	if ((rc = read_tokenizer(c)) || (rc = read_hparams(c)) ||
	    (rc = check_special_ids(c)))
		return rc;

	c->used = calloc(gguf_n_tensors(f), sizeof(*c->used));
	if (!c->used)
		return slm_error_set(c->err, SLM_ENOMEM, "%s: out of memory",
				     c->path);
	if ((rc = bind_tensors(c)))
		return rc;

	for (uint64_t i = 0; i < gguf_n_tensors(f); i++) {
		const struct gguf_tensor *t = gguf_tensor_at(f, i);
		/* Every tensor was bound, so its type is a supported one
		 * and its element count fits (checked by the reader). */
		m->type_count[t->type]++;
		m->type_bytes[t->type] += t->size;
		m->n_params += t->n_elements;
	}
	return 0;
}

int slm_model_from_gguf(struct gguf_file *f, struct slm_model **out,
			struct slm_error *err)
{
	*out = NULL;
	struct slm_model *m = calloc(1, sizeof(*m));
	if (!m)
		return slm_error_set(err, SLM_ENOMEM, "%s: out of memory",
				     gguf_path(f));
	m->file = f;
	m->path = gguf_path(f);
	struct ctx c = {.m = m, .f = f, .path = m->path, .err = err};
	int rc = describe(&c);
	free(c.used);
	if (rc) {
		m->file = NULL; /* the caller keeps it */
		slm_model_close(m);
		return rc;
	}
	*out = m;
	return 0;
}

int slm_model_open(const char *path, struct slm_model **out,
		   struct slm_error *err)
{
	*out = NULL;
	struct gguf_file *f;
	int rc = gguf_open(path, &f, err);
	if (rc)
		return rc;
	rc = slm_model_from_gguf(f, out, err);
	if (rc)
		gguf_close(f);
	return rc;
}

void slm_model_close(struct slm_model *m)
{
	if (!m)
		return;
	free(m->tensors.layers);
	gguf_close(m->file);
	free(m);
}

void slm_tensors_for_each(struct slm_tensors *t,
			  void (*fn)(struct slm_tensor *v, void *arg),
			  void *arg)
{
	fn(&t->token_embd, arg);
	fn(&t->output_norm, arg);
	fn(&t->output, arg);
	fn(&t->rope_freqs, arg);
	for (uint32_t il = 0; il < t->n_layer; il++) {
		struct slm_layer *l = &t->layers[il];
		struct slm_tensor *views[] = {
			&l->attn_norm, &l->wq,	   &l->wk,   &l->wv,
			&l->wo,	       &l->bq,	   &l->bk,   &l->bv,
			&l->ffn_norm,  &l->w_gate, &l->w_up, &l->w_down,
		};
		for (size_t i = 0; i < SLM_ARRAY_LEN(views); i++)
			fn(views[i], arg);
	}
}
