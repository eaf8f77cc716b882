/*
 * quantize.c: llama-quantize's mix rules and file layout (see quantize.h).
 *
 * The rules below follow llama.cpp's llama_tensor_get_type for the mixes
 * this module writes, in the same order of tests, including the counters
 * that walk the tensors in output order (i_attention_wv, i_ffn_down): a
 * rule such as "attn_v of the first two layers" is decided by how many
 * attn_v tensors came before, not by the layer number in the name.
 */
#include "engine/quantize.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/quant.h"

/* ---- file types ------------------------------------------------------- */

struct ftype_info {
	const char *name;
	int ftype;
	int base; /* enum slm_dtype */
};

static const struct ftype_info ftypes[] = {
	{"F32", SLM_FTYPE_ALL_F32, SLM_DTYPE_F32},
	{"F16", SLM_FTYPE_MOSTLY_F16, SLM_DTYPE_F16},
	{"BF16", SLM_FTYPE_MOSTLY_BF16, SLM_DTYPE_BF16},
	{"Q8_0", SLM_FTYPE_MOSTLY_Q8_0, SLM_DTYPE_Q8_0},
	{"Q4_0", SLM_FTYPE_MOSTLY_Q4_0, SLM_DTYPE_Q4_0},
	{"Q4_1", SLM_FTYPE_MOSTLY_Q4_1, SLM_DTYPE_Q4_1},
	{"Q5_0", SLM_FTYPE_MOSTLY_Q5_0, SLM_DTYPE_Q5_0},
	{"Q5_1", SLM_FTYPE_MOSTLY_Q5_1, SLM_DTYPE_Q5_1},
	{"Q2_K", SLM_FTYPE_MOSTLY_Q2_K, SLM_DTYPE_Q2_K},
	{"Q3_K_S", SLM_FTYPE_MOSTLY_Q3_K_S, SLM_DTYPE_Q3_K},
	{"Q3_K_M", SLM_FTYPE_MOSTLY_Q3_K_M, SLM_DTYPE_Q3_K},
	{"Q3_K_L", SLM_FTYPE_MOSTLY_Q3_K_L, SLM_DTYPE_Q3_K},
	{"Q4_K_S", SLM_FTYPE_MOSTLY_Q4_K_S, SLM_DTYPE_Q4_K},
	{"Q4_K_M", SLM_FTYPE_MOSTLY_Q4_K_M, SLM_DTYPE_Q4_K},
	{"Q5_K_S", SLM_FTYPE_MOSTLY_Q5_K_S, SLM_DTYPE_Q5_K},
	{"Q5_K_M", SLM_FTYPE_MOSTLY_Q5_K_M, SLM_DTYPE_Q5_K},
	{"Q6_K", SLM_FTYPE_MOSTLY_Q6_K, SLM_DTYPE_Q6_K},
};

/* llama-quantize's aliases. */
static const struct {
	const char *alias, *name;
} ftype_aliases[] = {
	{"Q3_K", "Q3_K_M"},
	{"Q4_K", "Q4_K_M"},
	{"Q5_K", "Q5_K_M"},
};

static const struct ftype_info *ftype_lookup(int ftype)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(ftypes); i++)
		if (ftypes[i].ftype == ftype)
			return &ftypes[i];
	return NULL;
}

int slm_ftype_from_name(const char *name)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(ftype_aliases); i++)
		if (!strcasecmp(name, ftype_aliases[i].alias))
			name = ftype_aliases[i].name;
	for (size_t i = 0; i < SLM_ARRAY_LEN(ftypes); i++)
		if (!strcasecmp(name, ftypes[i].name))
			return ftypes[i].ftype;
	return -1;
}

const char *slm_ftype_name(int ftype)
{
	const struct ftype_info *f = ftype_lookup(ftype);
	return f ? f->name : NULL;
}

int slm_ftype_base_type(int ftype)
{
	const struct ftype_info *f = ftype_lookup(ftype);
	return f ? f->base : -1;
}

const char *slm_ftype_list(void)
{
	return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, "
	       "Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K";
}

/* ---- tensor order ----------------------------------------------------- */

static int layer_of(const char *name)
{
	int layer = -1;
	if (sscanf(name, "blk.%d.", &layer) != 1)
		layer = -1;
	return layer;
}

bool slm_quant_name_before(const char *a, const char *b)
{
	int la = layer_of(a), lb = layer_of(b);
	if (la != lb)
		return la < lb;
	return strcmp(a, b) < 0;
}

/* ---- which tensors are quantized -------------------------------------- */

static bool has(const char *name, const char *part)
{
	return strstr(name, part) != NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && !memcmp(s + n - m, suffix, m);
}

/* Dimensions as ggml counts them: trailing sizes of 1 do not count. */
static int n_dims_of(const struct slm_qtensor *t)
{
	int d = 4;
	while (d > 1 && (d > (int)t->n_dims || t->ne[d - 1] == 1))
		d--;
	return d;
}

/*
 * Small or special tensors llama-quantize never quantizes (substrings of
 * the name); most belong to architectures slmd does not run, but a file
 * of any architecture is converted the way llama-quantize would.
 */
static const char *const keep_parts[] = {
	"_norm.weight",
	"ffn_gate_inp.weight",
	"ffn_gate_tid2eid.weight",
	"altup",
	"laurel",
	"per_layer_model_proj",
	"ssm_conv1d",
	"shortconv.conv.weight",
	"indexer.k_proj.weight",
	"indexer.q_proj.weight",
	"time_mix_first.weight",
	"time_mix_w0.weight",
	"time_mix_w1.weight",
	"time_mix_w2.weight",
	"time_mix_v0.weight",
	"time_mix_v1.weight",
	"time_mix_v2.weight",
	"time_mix_a0.weight",
	"time_mix_a1.weight",
	"time_mix_a2.weight",
	"time_mix_g1.weight",
	"time_mix_g2.weight",
	"time_mix_decay_w1.weight",
	"time_mix_decay_w2.weight",
	"time_mix_lerp_fused.weight",
	"attn_rel_b.weight",
	".position_embd",
	"sam.pos_embd",
	"sam.neck.",
	"sam.net_",
	".rel_pos",
	".patch_embd",
	".patch_merger",
	"a.rvq.codebook",
	"mm.a.code_embd",
};

static bool allows_quantization(const struct slm_qtensor *t)
{
	if (n_dims_of(t) < 2)
		return false;
	if (!ends_with(t->name, "weight"))
		return false;
	for (size_t i = 0; i < SLM_ARRAY_LEN(keep_parts); i++)
		if (has(t->name, keep_parts[i]))
			return false;
	if (!strcmp(t->name, "position_embd.weight") ||
	    !strcmp(t->name, "token_types.weight"))
		return false;
	return true;
}

/* ---- the mix rules ---------------------------------------------------- */

enum category {
	CAT_TOKEN_EMBD,
	CAT_ATTN_Q,
	CAT_ATTN_V,
	CAT_ATTN_K,
	CAT_ATTN_QKV,
	CAT_ATTN_KV_B,
	CAT_ATTN_OUTPUT,
	CAT_FFN_UP,
	CAT_FFN_GATE,
	CAT_FFN_DOWN,
	CAT_OUTPUT,
	CAT_OTHER,
};

static enum category category_of(const char *name)
{
	if (!strcmp(name, "output.weight"))
		return CAT_OUTPUT;
	if (!strcmp(name, "token_embd.weight") ||
	    !strcmp(name, "per_layer_token_embd.weight"))
		return CAT_TOKEN_EMBD;
	if (has(name, "attn_qkv.weight"))
		return CAT_ATTN_QKV;
	if (has(name, "attn_kv_b.weight"))
		return CAT_ATTN_KV_B;
	if (has(name, "attn_v.weight"))
		return CAT_ATTN_V;
	if (has(name, "attn_k.weight"))
		return CAT_ATTN_K;
	if (has(name, "attn_q.weight"))
		return CAT_ATTN_Q;
	if (has(name, "attn_output.weight"))
		return CAT_ATTN_OUTPUT;
	if (has(name, "ffn_up"))
		return CAT_FFN_UP;
	if (has(name, "ffn_gate"))
		return CAT_FFN_GATE;
	if (has(name, "ffn_down"))
		return CAT_FFN_DOWN;
	return CAT_OTHER;
}

static bool is_attn_v(enum category c)
{
	return c == CAT_ATTN_V || c == CAT_ATTN_QKV || c == CAT_ATTN_KV_B;
}

/* The rule's "more bits" layers: first and last eighth, every third. */
static bool use_more_bits(int i_layer, int n_layers)
{
	return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 ||
	       (i_layer - n_layers / 8) % 3 == 2;
}

struct mix_state {
	const struct slm_qmodel *model;
	int ftype;
	bool tied; /* no output.weight: token_embd is the output matrix */
	bool falcon, is_70b;
	int n_gqa;
	int n_attention_wv, i_attention_wv;
	int n_ffn_down, i_ffn_down;
	int n_ffn_gate, i_ffn_gate;
	int n_ffn_up, i_ffn_up;
	size_t n_fallback;
};

static bool is_quantized(uint32_t type)
{
	return type != SLM_DTYPE_F32 && type != SLM_DTYPE_F16 &&
	       type != SLM_DTYPE_BF16 && type != SLM_DTYPE_F64 &&
	       type != SLM_DTYPE_I8 && type != SLM_DTYPE_I16 &&
	       type != SLM_DTYPE_I32 && type != SLM_DTYPE_I64;
}

/* The layer for a per-layer rule: the counter, or the name for MoE. */
static int layer_info(const struct mix_state *s, int counter, int n_layer,
		      const char *name, int *i_layer, struct slm_error *err)
{
	*i_layer = counter;
	if (s->model->n_expert > 1) {
		if (sscanf(name, "blk.%d.", i_layer) != 1)
			return slm_error_set(err, SLM_EFORMAT,
					     "cannot tell the layer of tensor "
					     "'%s'",
					     name);
		if (*i_layer < 0 || *i_layer >= n_layer)
			return slm_error_set(err, SLM_EFORMAT,
					     "tensor '%s': layer %d is not in "
					     "[0, %d)",
					     name, *i_layer, n_layer);
	}
	return 0;
}

static int mix_type(struct mix_state *s, const struct slm_qtensor *t,
		    enum category cat, int type, int *out,
		    struct slm_error *err)
{
	const int ftype = s->ftype;
	const int n_expert = (int)s->model->n_expert;
	int rc;

	if (cat == CAT_OUTPUT || (s->tied && cat == CAT_TOKEN_EMBD)) {
		uint64_t qk = slm_dtype_block((uint32_t)type);
		if (s->falcon || t->ne[0] % qk != 0)
			type = SLM_DTYPE_Q8_0;
		else if (type != SLM_DTYPE_Q8_0)
			type = SLM_DTYPE_Q6_K;
	} else if (cat == CAT_TOKEN_EMBD) {
		/* only the IQ and ternary mixes change it */
	} else if (is_attn_v(cat)) {
		if (ftype == SLM_FTYPE_MOSTLY_Q2_K)
			type = s->n_gqa >= 4 ? SLM_DTYPE_Q4_K : SLM_DTYPE_Q3_K;
		else if (ftype == SLM_FTYPE_MOSTLY_Q3_K_M)
			type = s->i_attention_wv < 2 ? SLM_DTYPE_Q5_K
						     : SLM_DTYPE_Q4_K;
		else if (ftype == SLM_FTYPE_MOSTLY_Q3_K_L)
			type = SLM_DTYPE_Q5_K;
		else if ((ftype == SLM_FTYPE_MOSTLY_Q4_K_M ||
			  ftype == SLM_FTYPE_MOSTLY_Q5_K_M) &&
			 use_more_bits(s->i_attention_wv, s->n_attention_wv))
			type = SLM_DTYPE_Q6_K;
		else if (ftype == SLM_FTYPE_MOSTLY_Q4_K_S &&
			 s->i_attention_wv < 4)
			type = SLM_DTYPE_Q5_K;
		/* 70B: attn_v is 8x smaller than attn_q, so more bits are
		 * cheap. */
		if (s->is_70b &&
		    (type == SLM_DTYPE_Q3_K || type == SLM_DTYPE_Q4_K))
			type = SLM_DTYPE_Q5_K;
		if (n_expert == 8)
			type = SLM_DTYPE_Q8_0;
		++s->i_attention_wv;
	} else if (cat == CAT_ATTN_K) {
		if (n_expert == 8)
			type = SLM_DTYPE_Q8_0;
	} else if (cat == CAT_ATTN_Q) {
		/* only the IQ3 mixes change it */
	} else if (cat == CAT_FFN_DOWN) {
		int i, n = s->n_ffn_down;
		rc = layer_info(s, s->i_ffn_down, n, t->name, &i, err);
		if (rc)
			return rc;
		if (ftype == SLM_FTYPE_MOSTLY_Q2_K) {
			type = SLM_DTYPE_Q3_K;
		} else if (ftype == SLM_FTYPE_MOSTLY_Q3_K_M) {
			type = i < n / 16 ? SLM_DTYPE_Q5_K
			       : !s->falcon || use_more_bits(i, n)
				       ? SLM_DTYPE_Q4_K
				       : SLM_DTYPE_Q3_K;
		} else if (ftype == SLM_FTYPE_MOSTLY_Q3_K_L) {
			type = s->falcon ? SLM_DTYPE_Q4_K : SLM_DTYPE_Q5_K;
		} else if (ftype == SLM_FTYPE_MOSTLY_Q4_K_M) {
			if (s->falcon)
				type = i < n / 16	     ? SLM_DTYPE_Q6_K
				       : use_more_bits(i, n) ? SLM_DTYPE_Q5_K
							     : SLM_DTYPE_Q4_K;
			else if (use_more_bits(i, n))
				type = SLM_DTYPE_Q6_K;
		} else if (ftype == SLM_FTYPE_MOSTLY_Q5_K_M &&
			   use_more_bits(i, n)) {
			type = SLM_DTYPE_Q6_K;
		} else if (ftype == SLM_FTYPE_MOSTLY_Q4_K_S && !s->falcon &&
			   i < n / 8) {
			type = SLM_DTYPE_Q5_K;
		}
		++s->i_ffn_down;
	} else if (cat == CAT_ATTN_OUTPUT) {
		if (!s->falcon) {
			if (n_expert == 8) {
				if (ftype == SLM_FTYPE_MOSTLY_Q2_K ||
				    ftype == SLM_FTYPE_MOSTLY_Q3_K_S ||
				    ftype == SLM_FTYPE_MOSTLY_Q3_K_M ||
				    ftype == SLM_FTYPE_MOSTLY_Q4_K_S ||
				    ftype == SLM_FTYPE_MOSTLY_Q4_K_M)
					type = SLM_DTYPE_Q5_K;
			} else if (ftype == SLM_FTYPE_MOSTLY_Q2_K) {
				type = SLM_DTYPE_Q3_K;
			} else if (ftype == SLM_FTYPE_MOSTLY_Q3_K_M) {
				type = SLM_DTYPE_Q4_K;
			} else if (ftype == SLM_FTYPE_MOSTLY_Q3_K_L) {
				type = SLM_DTYPE_Q5_K;
			}
		} else if (ftype == SLM_FTYPE_MOSTLY_Q3_K_L) {
			type = SLM_DTYPE_Q4_K;
		}
	} else if (cat == CAT_FFN_GATE) {
		int i;
		rc = layer_info(s, s->i_ffn_gate, s->n_ffn_gate, t->name, &i,
				err);
		if (rc)
			return rc;
		++s->i_ffn_gate; /* only IQ3_XS has a rule here */
	} else if (cat == CAT_FFN_UP) {
		int i;
		rc = layer_info(s, s->i_ffn_up, s->n_ffn_up, t->name, &i, err);
		if (rc)
			return rc;
		++s->i_ffn_up;
	}
	/* (The attn_qkv rules of llama.cpp sit after the attn_v branch,
	 * which already takes attn_qkv, so they never apply.) */
	*out = type;
	return 0;
}

/* A type whose block does not divide the row falls back to one that does. */
static int fallback(struct mix_state *s, const struct slm_qtensor *t, int type,
		    int *out, struct slm_error *err)
{
	uint64_t ncols = t->ne[0];
	if (ncols % slm_dtype_block((uint32_t)type) == 0) {
		*out = type;
		return 0;
	}
	s->n_fallback++;
	int to;
	switch (type) {
	case SLM_DTYPE_Q2_K:
	case SLM_DTYPE_Q3_K:
		to = SLM_DTYPE_Q4_0;
		break;
	case SLM_DTYPE_Q4_K:
		to = SLM_DTYPE_Q5_0;
		break;
	case SLM_DTYPE_Q5_K:
		to = SLM_DTYPE_Q5_1;
		break;
	case SLM_DTYPE_Q6_K:
		to = SLM_DTYPE_Q8_0;
		break;
	default:
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "tensor '%s': row of %llu values is not "
				     "a multiple of the %s block (%u) and %s "
				     "has no fallback type",
				     t->name, (unsigned long long)ncols,
				     slm_dtype_name((uint32_t)type),
				     slm_dtype_block((uint32_t)type),
				     slm_dtype_name((uint32_t)type));
	}
	if (ncols % slm_dtype_block((uint32_t)to) != 0)
		to = SLM_DTYPE_F16;
	*out = to;
	return 0;
}

static bool arch_is(const struct slm_qmodel *m, const char *arch)
{
	return m->arch && !strcmp(m->arch, arch);
}

struct sort_key {
	int layer;
	const char *name;
};

static int cmp_keys(const void *a, const void *b, void *ctx)
{
	const struct sort_key *keys = ctx;
	const struct sort_key *x = &keys[*(const size_t *)a];
	const struct sort_key *y = &keys[*(const size_t *)b];
	if (x->layer != y->layer)
		return x->layer < y->layer ? -1 : 1;
	return strcmp(x->name, y->name);
}

static int sort_order(const struct slm_qtensor *tensors, size_t *order,
		      size_t n, struct slm_error *err)
{
	struct sort_key *keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		keys[i].layer = layer_of(tensors[i].name);
		keys[i].name = tensors[i].name;
		order[i] = i;
	}
	qsort_r(order, n, sizeof(*order), cmp_keys, keys);
	free(keys);
	return 0;
}

int slm_quant_plan(const struct slm_qmodel *model, int ftype,
		   const struct slm_qtensor *tensors, size_t n,
		   uint32_t *out_types, size_t *order, size_t *n_fallback,
		   struct slm_error *err)
{
	int base = slm_ftype_base_type(ftype);
	if (base < 0)
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "file type %d is not one of %s", ftype,
				     slm_ftype_list());
	struct mix_state s = {
		.model = model,
		.ftype = ftype,
		.tied = true,
		.falcon = arch_is(model, "falcon"),
		.is_70b = model->n_layer == 80 &&
			  ((arch_is(model, "llama") &&
			    model->n_head != model->n_head_kv) ||
			   arch_is(model, "qwen2")),
		.n_gqa = model->n_head_kv
				 ? (int)(model->n_head / model->n_head_kv)
				 : 0,
		.n_ffn_down = (int)model->n_layer,
		.n_ffn_gate = (int)model->n_layer,
		.n_ffn_up = (int)model->n_layer,
	};
	int rc = sort_order(tensors, order, n, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		enum category c = category_of(tensors[i].name);
		if (is_attn_v(c))
			s.n_attention_wv++;
		if (c == CAT_OUTPUT)
			s.tied = false;
	}
	/* The counters advance in output order, as llama.cpp walks them. */
	for (size_t k = 0; k < n; k++) {
		const struct slm_qtensor *t = &tensors[order[k]];
		uint32_t *out = &out_types[order[k]];
		if (!allows_quantization(t)) {
			*out = t->type;
			continue;
		}
		int type = base;
		if (is_quantized((uint32_t)base)) {
			rc = mix_type(&s, t, category_of(t->name), type, &type,
				      err);
			if (!rc)
				rc = fallback(&s, t, type, &type, err);
			if (rc)
				return rc;
		}
		*out = (uint32_t)type;
	}
	if (n_fallback)
		*n_fallback = s.n_fallback;
	return 0;
}

/* ---- conversions ------------------------------------------------------ */

struct convert_job {
	uint32_t src_type, dst_type;
	const uint8_t *src;
	uint8_t *dst;
	int64_t row0, nrows, n_per_row;
	uint64_t src_row, dst_row; /* bytes per row */
	int rc;
};

static void *convert_worker(void *arg)
{
	struct convert_job *j = arg;
	float *scratch = NULL;
	if (j->src_type != SLM_DTYPE_F32) {
		scratch = malloc((size_t)j->n_per_row * sizeof(float));
		if (!scratch) {
			j->rc = SLM_ENOMEM;
			return NULL;
		}
	}
	for (int64_t r = j->row0; r < j->row0 + j->nrows && !j->rc; r++) {
		const void *in = j->src + (uint64_t)r * j->src_row;
		void *out = j->dst + (uint64_t)r * j->dst_row;
		const float *x = in;
		if (scratch) {
			j->rc = slm_dequantize((enum slm_dtype)j->src_type, in,
					       scratch, j->n_per_row);
			x = scratch;
		}
		if (j->rc)
			break;
		if (j->dst_type == SLM_DTYPE_F32)
			memcpy(out, x, (size_t)j->dst_row);
		else
			j->rc = slm_quantize_ref((enum slm_dtype)j->dst_type, x,
						 out, j->n_per_row);
	}
	free(scratch);
	return NULL;
}

#define CONVERT_MAX_THREADS 256

int slm_convert_rows(uint32_t src_type, const void *src, uint32_t dst_type,
		     void *dst, int64_t nrows, int64_t n_per_row, int n_threads,
		     struct slm_error *err)
{
	uint64_t src_row, dst_row;
	if (nrows < 0 || n_per_row <= 0 ||
	    !slm_dtype_row_bytes(src_type, (uint64_t)n_per_row, &src_row) ||
	    !slm_dtype_row_bytes(dst_type, (uint64_t)n_per_row, &dst_row))
		return slm_error_set(err, SLM_EINVAL,
				     "cannot convert rows of %lld values from "
				     "%s to %s",
				     (long long)n_per_row,
				     slm_dtype_name(src_type),
				     slm_dtype_name(dst_type));
	if (src_type == dst_type) {
		memcpy(dst, src, (size_t)(src_row * (uint64_t)nrows));
		return 0;
	}
	if (n_threads < 1)
		n_threads = 1;
	if (n_threads > CONVERT_MAX_THREADS)
		n_threads = CONVERT_MAX_THREADS;
	if (n_threads > nrows)
		n_threads = nrows > 0 ? (int)nrows : 1;
	struct convert_job jobs[CONVERT_MAX_THREADS] = {0};
	pthread_t tids[CONVERT_MAX_THREADS];
	bool started[CONVERT_MAX_THREADS] = {false};
	int64_t per = nrows / n_threads, extra = nrows % n_threads, row = 0;
	for (int t = 0; t < n_threads; t++) {
		int64_t cnt = per + (t < extra ? 1 : 0);
		jobs[t] = (struct convert_job){
			.src_type = src_type,
			.dst_type = dst_type,
			.src = src,
			.dst = dst,
			.row0 = row,
			.nrows = cnt,
			.n_per_row = n_per_row,
			.src_row = src_row,
			.dst_row = dst_row,
		};
		row += cnt;
	}
	/* Thread 0's share runs on the caller's thread. */
	for (int t = 1; t < n_threads; t++)
		started[t] = pthread_create(&tids[t], NULL, convert_worker,
					    &jobs[t]) == 0;
	for (int t = 1; t < n_threads; t++)
		if (!started[t])
			convert_worker(&jobs[t]);
	convert_worker(&jobs[0]);
	int rc = 0;
	for (int t = 0; t < n_threads; t++) {
		if (t > 0 && started[t])
			pthread_join(tids[t], NULL);
		if (jobs[t].rc && !rc)
			rc = jobs[t].rc;
	}
	if (rc)
		return slm_error_set(err, rc, "cannot convert %s to %s: %s",
				     slm_dtype_name(src_type),
				     slm_dtype_name(dst_type),
				     slm_strerror(rc));
	return 0;
}

/* ---- whole files ------------------------------------------------------ */

/* An integer hyperparameter; per-layer arrays give their first element. */
static uint32_t hparam(const struct gguf_file *f, const char *arch,
		       const char *suffix, uint32_t dflt)
{
	char key[256];
	snprintf(key, sizeof(key), "%s.%s", arch, suffix);
	int64_t v;
	if (gguf_get_int(f, key, &v, NULL) == 0)
		return v >= 0 && v <= UINT32_MAX ? (uint32_t)v : dflt;
	struct gguf_array a;
	if (gguf_get_arr(f, key, &a, NULL) == 0 && a.n > 0 &&
	    a.type != GGUF_TYPE_STRING && a.type != GGUF_TYPE_FLOAT32 &&
	    a.type != GGUF_TYPE_FLOAT64) {
		v = gguf_arr_int(&a, 0);
		return v >= 0 && v <= UINT32_MAX ? (uint32_t)v : dflt;
	}
	return dflt;
}

int slm_quant_model_of(const struct gguf_file *f, struct slm_qmodel *m,
		       struct slm_error *err)
{
	const char *arch = NULL;
	if (gguf_get_str(f, "general.architecture", &arch, err))
		return slm_error_set(err, SLM_EFORMAT,
				     "%s: no general.architecture",
				     gguf_path(f));
	m->arch = arch;
	m->n_layer = hparam(f, arch, "block_count", 0);
	m->n_head = hparam(f, arch, "attention.head_count", 0);
	m->n_head_kv = hparam(f, arch, "attention.head_count_kv", m->n_head);
	m->n_expert = hparam(f, arch, "expert_count", 0);
	return 0;
}

static int nthreads_default(int n)
{
	if (n > 0)
		return n;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	return cpus > 0 ? (int)cpus : 1;
}

/* Rows per conversion chunk: about 4 Mi values (16 MiB of f32). */
static int64_t chunk_rows(int64_t n_per_row)
{
	int64_t rows = ((int64_t)4 << 20) / n_per_row;
	return rows > 0 ? rows : 1;
}

static int write_tensor(struct gguf_writer *w, uint64_t index,
			uint32_t src_type, const void *src, uint32_t dst_type,
			const uint64_t *ne, int n_threads, void *buf,
			size_t buf_size, struct slm_error *err)
{
	int64_t n_per_row = (int64_t)ne[0];
	int64_t nrows = (int64_t)(ne[1] * ne[2] * ne[3]);
	uint64_t src_row, dst_row;
	if (!slm_dtype_row_bytes(src_type, ne[0], &src_row) ||
	    !slm_dtype_row_bytes(dst_type, ne[0], &dst_row))
		return slm_error_set(err, SLM_EINVAL,
				     "rows of %llu values do not fit %s / %s",
				     (unsigned long long)ne[0],
				     slm_dtype_name(src_type),
				     slm_dtype_name(dst_type));
	if (src_type == dst_type)
		return gguf_writer_write_data(w, index, src,
					      src_row * (uint64_t)nrows, err);
	int64_t step = chunk_rows(n_per_row);
	if ((uint64_t)step * dst_row > buf_size)
		return slm_error_set(err, SLM_EINVAL,
				     "conversion buffer too small");
	const uint8_t *in = src;
	for (int64_t r = 0; r < nrows; r += step) {
		int64_t cnt = nrows - r < step ? nrows - r : step;
		int rc = slm_convert_rows(src_type, in + (uint64_t)r * src_row,
					  dst_type, buf, cnt, n_per_row,
					  n_threads, err);
		if (!rc)
			rc = gguf_writer_write_part(
				w, index, buf, (uint64_t)cnt * dst_row, err);
		if (rc)
			return rc;
	}
	return 0;
}

static size_t buffer_size(const uint64_t *ne, uint32_t dst_type)
{
	uint64_t dst_row = 0;
	if (!slm_dtype_row_bytes(dst_type, ne[0], &dst_row))
		return 0;
	return (size_t)(dst_row * (uint64_t)chunk_rows((int64_t)ne[0]));
}

int slm_quantize_file(const char *in, const char *out, int ftype,
		      const struct slm_quant_params *params,
		      struct slm_error *err)
{
	struct slm_quant_params p =
		params ? *params : (struct slm_quant_params){0};
	int n_threads = nthreads_default(p.n_threads);
	struct gguf_file *f = NULL;
	struct gguf_writer *w = NULL;
	struct slm_qtensor *ts = NULL;
	uint32_t *types = NULL;
	size_t *order = NULL;
	void *buf = NULL;
	size_t buf_size = 0;

	int rc = gguf_open(in, &f, err);
	if (rc)
		return rc;
	struct slm_qmodel model;
	rc = slm_quant_model_of(f, &model, err);
	if (rc)
		goto out_close;
	size_t n = (size_t)gguf_n_tensors(f);
	ts = calloc(n ? n : 1, sizeof(*ts));
	types = calloc(n ? n : 1, sizeof(*types));
	order = calloc(n ? n : 1, sizeof(*order));
	w = gguf_writer_create();
	if (!ts || !types || !order || !w) {
		rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
		goto out_free;
	}
	for (size_t i = 0; i < n; i++) {
		const struct gguf_tensor *t = gguf_tensor_at(f, i);
		ts[i].name = t->name;
		ts[i].n_dims = t->n_dims;
		memcpy(ts[i].ne, t->ne, sizeof(ts[i].ne));
		ts[i].type = t->type;
	}
	rc = slm_quant_plan(&model, ftype, ts, n, types, order, NULL, err);
	if (rc)
		goto out_prefix;

	/* Metadata: the input's pairs in order, then the two keys
	 * llama-quantize sets (moving them to the end). */
	for (uint64_t i = 0; i < gguf_n_kv(f) && !rc; i++)
		rc = gguf_copy_kv(w, f, i);
	rc = rc ? rc : gguf_set_u32(w, "general.quantization_version", 2);
	rc = rc ? rc : gguf_set_u32(w, "general.file_type", (uint32_t)ftype);
	if (rc) {
		rc = slm_error_set(err, rc, "cannot build the metadata");
		goto out_free;
	}
	gguf_remove_key(w, "split.no");
	gguf_remove_key(w, "split.count");
	gguf_remove_key(w, "split.tensors.count");

	uint64_t total = 0;
	for (size_t k = 0; k < n && !rc; k++) {
		size_t i = order[k];
		rc = gguf_add_tensor(w, ts[i].name, ts[i].n_dims, ts[i].ne,
				     types[i], NULL, err);
		uint64_t row = 0;
		if (!rc && slm_dtype_row_bytes(types[i], ts[i].ne[0], &row))
			total += row * ts[i].ne[1] * ts[i].ne[2] * ts[i].ne[3];
		size_t need = types[i] == ts[i].type
				      ? 0
				      : buffer_size(ts[i].ne, types[i]);
		if (need > buf_size)
			buf_size = need;
	}
	if (rc)
		goto out_prefix;
	if (buf_size && !(buf = malloc(buf_size))) {
		rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
		goto out_free;
	}
	rc = gguf_writer_begin(w, out, err);
	uint64_t done = 0;
	for (size_t k = 0; k < n && !rc; k++) {
		size_t i = order[k];
		const struct gguf_tensor *t = gguf_tensor_at(f, i);
		rc = write_tensor(w, k, t->type,
				  gguf_mapping(f) + t->file_offset, types[i],
				  t->ne, n_threads, buf, buf_size, err);
		if (rc) {
			slm_error_prefix(err, "tensor '%s': ", t->name);
			break;
		}
		uint64_t row = 0;
		if (slm_dtype_row_bytes(types[i], t->ne[0], &row))
			done += row * t->ne[1] * t->ne[2] * t->ne[3];
		if (p.progress)
			p.progress(p.progress_ctx, k, n, t->name, t->type,
				   types[i], done, total);
	}
	rc = rc ? rc : gguf_writer_finish(w, err);
out_prefix:
	if (rc)
		slm_error_prefix(err, "%s: ", in);
out_free:
	free(buf);
	gguf_writer_destroy(w);
	free(order);
	free(types);
	free(ts);
out_close:
	gguf_close(f);
	return rc;
}
