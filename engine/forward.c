/*
 * forward.c: the forward pass (forward.h), as one parallel operation on
 * the thread pool per call.
 *
 * Every thread runs fwd_task over all layers; steps are separated by
 * barriers.  Three kinds of step:
 *
 *   per token   norms, activation quantization, bias, RoPE, KV stores,
 *               residuals, SwiGLU: each thread takes a contiguous share of
 *               the batch's tokens (decode: one thread works, the others
 *               go on to the barrier);
 *   products    the output rows of a matrix, for every token, in chunks
 *               taken from a per-product counter (matmul_share), reading
 *               the activations all threads quantized once (matmul.h);
 *   attention   work items of (run of tokens of one sequence, KV head),
 *               taken from a shared counter so uneven causal lengths
 *               balance.
 *
 * Per layer: norm+quantize | Q K V | bias RoPE store | attention |
 * quantize | Wo | residual norm quantize | gate up | SwiGLU quantize |
 * down, ten barriers; the residual of the down projection is folded into
 * the next layer's first step.
 */
#include "engine/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/compiler.h"
#include "engine/forward_int.h"
#include "engine/matmul.h"
#include "engine/quant.h"

/* Row chunks per thread and product (see matmul_share). */
#define CHUNKS_PER_THREAD 4

/* Weights of one layer as the products and norms read them. */
struct fwd_layer {
	struct slm_matrix wq, wk, wv, wo, gate, up, down;
	const float *attn_norm, *ffn_norm; /* [n_embd] */
	const float *bq, *bk, *bv;	   /* NULL without biases */
	/* activation buffer of K and V: 0 = Q's, 1, 2 (types differ) */
	uint8_t k_act, v_act, up_act;
};

/* Attention work: rows = n_tok tokens x nh query heads of KV head kvh. */
struct attn_item {
	uint32_t tok0, n_tok; /* batch indices, consecutive positions */
	uint16_t kvh, h0, nh; /* query heads kvh * g + h0 .. + nh */
};

struct slm_forward {
	const struct slm_model *m;
	struct slm_hparams hp;
	struct slm_kv_pool *kv;
	struct slm_threadpool *pool;
	int nth;
	uint32_t max_tokens, n_ctx;
	enum slm_simd simd;
	struct slm_fwd_kernels k;
	slm_attn_fn attn;

	struct fwd_layer *layers;
	struct slm_tensor token_embd;
	struct slm_matrix out;
	const float *out_norm;
	const float *rope_ff;	   /* [head_dim / 2] or NULL */
	float theta_scale;	   /* base^(-2 / head_dim) */
	float attn_scale;	   /* 1 / sqrt(head_dim) */
	uint32_t q_dim, kv_dim, g; /* n_head d, n_head_kv d, heads per KV */

	/* scratch, [max_tokens] rows each */
	float *x, *xb, *q, *kc, *vc, *att, *hb, *hb2, *tmp;
	float *rope;	  /* [max_tokens][head_dim / 2][2]: cos, sin */
	uint8_t *act[3];  /* quantized activations */
	size_t act_bytes; /* of each */
	uint8_t *work;	  /* matmul scratch, work_slice bytes per thread */
	size_t work_slice;
	float *att_q;	 /* per thread [SLM_ATTN_MAX_ROWS][head_dim] */
	float *att_s;	 /* per thread [SLM_ATTN_MAX_ROWS][s_stride] */
	size_t s_stride; /* n_ctx rounded up to 16, + 16 */
	uint16_t *k16;	 /* per thread [head_dim] */
	struct attn_item *items;
	uint32_t max_items;
	uint32_t *out_idx;     /* [max_tokens] */
	uint32_t *counters;    /* [n_layer] attention item counters */
	uint32_t *mm_counters; /* [8 n_layer + 1] row chunks of products */
	uint64_t scratch_bytes;

	/* profiling: per thread, SLM_FWD_STEP__COUNT cycle counters padded
	 * to PROF_STRIDE; prof_on is read by the threads of a call only */
	uint64_t *prof;
	bool prof_on;
	uint64_t prof_calls, prof_tokens;

	/* the call in progress (written by eval before the run) */
	const struct slm_batch *b;
	uint32_t n_tok, n_out, n_items;
	float *logits;
};

/* ---- helpers ------------------------------------------------------------ */

#define PROF_STRIDE 16 /* counters per thread: two cache lines */
_Static_assert(SLM_FWD_STEP__COUNT <= PROF_STRIDE, "profile stride");

/* End the current step: its time goes to `step`. */
static inline void prof(struct slm_forward *f, int ith,
			enum slm_forward_step step, uint64_t *t)
{
	if (!f->prof_on)
		return;
	uint64_t now = slm_cycles();
	f->prof[(size_t)ith * PROF_STRIDE + step] += now - *t;
	*t = now;
}

/* End a step and wait for the other threads. */
static inline void step_sync(struct slm_forward *f, int ith,
			     enum slm_forward_step step, uint64_t *t)
{
	prof(f, ith, step, t);
	slm_threadpool_barrier(f->pool);
	prof(f, ith, SLM_FWD_WAIT, t);
}

/* Share [*lo, *hi) of n items for thread ith of nth. */
static void split(uint32_t n, int ith, int nth, uint32_t *lo, uint32_t *hi)
{
	uint32_t per = n / (uint32_t)nth, extra = n % (uint32_t)nth;
	uint32_t i = (uint32_t)ith;
	*lo = i * per + SLM_MIN(i, extra);
	*hi = *lo + per + (i < extra ? 1 : 0);
}

static struct slm_matrix matrix_of(const struct slm_tensor *t)
{
	struct slm_matrix m = {
		.type = (enum slm_dtype)t->type,
		.n_in = (int64_t)t->ne[0],
		.n_out = (int64_t)t->ne[1],
		.data = t->data,
		.row_bytes = (size_t)t->row_bytes,
	};
	return m;
}

/* y = x / sqrt(mean(x^2) + eps) * w, as ggml: squares in float summed in
 * double, the mean and scale in float. */
static void rmsnorm(float *y, const float *x, const float *w, uint32_t n,
		    float eps)
{
	double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
	uint32_t i = 0;
	for (; i + 4 <= n; i += 4) {
		s0 += (double)(x[i] * x[i]);
		s1 += (double)(x[i + 1] * x[i + 1]);
		s2 += (double)(x[i + 2] * x[i + 2]);
		s3 += (double)(x[i + 3] * x[i + 3]);
	}
	for (; i < n; i++)
		s0 += (double)(x[i] * x[i]);
	const float mean = (float)((s0 + s1 + s2 + s3) / n);
	const float scale = 1.0f / sqrtf(mean + eps);
	for (i = 0; i < n; i++)
		y[i] = (x[i] * scale) * w[i];
}

static void add_rows(float *x, const float *y, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] += y[i];
}

/* cos and sin of every rotary pair at position pos, as ggml's rope
 * cache: theta = pos * theta_scale^i by repeated float multiplication,
 * divided by the pair's frequency factor, times freq_scale. */
static void rope_cache(const struct slm_forward *f, uint32_t pos, float *cs)
{
	const uint32_t half = f->hp.head_dim / 2;
	float theta = (float)pos;
	for (uint32_t i = 0; i < half; i++) {
		float ff = f->rope_ff ? f->rope_ff[i] : 1.0f;
		float t = f->hp.rope_freq_scale * (theta / ff);
		cs[2 * i] = cosf(t);
		cs[2 * i + 1] = sinf(t);
		theta *= f->theta_scale;
	}
}

static void rope_head(float *x, const float *cs, uint32_t d, bool neox)
{
	const uint32_t half = d / 2;
	for (uint32_t i = 0; i < half; i++) {
		const float c = cs[2 * i], s = cs[2 * i + 1];
		float *a = neox ? &x[i] : &x[2 * i];
		float *b = neox ? &x[i + half] : &x[2 * i + 1];
		const float x0 = *a, x1 = *b;
		*a = x0 * c - x1 * s;
		*b = x0 * s + x1 * c;
	}
}

/* ---- creation --------------------------------------------------------- */

static void *scratch(struct slm_forward *f, size_t bytes)
{
	bytes = (bytes + 63) / 64 * 64;
	if (!bytes)
		bytes = 64;
	void *p = aligned_alloc(64, bytes);
	if (p)
		memset(p, 0, bytes);
	f->scratch_bytes += bytes;
	return p;
}

static int add_matrix(const struct slm_tensor *t, struct slm_matrix *m,
		      size_t *act_max, size_t *work_max, uint32_t max_tokens,
		      int nth, struct slm_error *err)
{
	*m = matrix_of(t);
	int rc = slm_matmul_check(m, err);
	if (rc) {
		slm_error_prefix(err, "%s: ", t->name);
		return rc;
	}
	*act_max = SLM_MAX(*act_max,
			   slm_matmul_act_bytes(m->type, m->n_in, max_tokens));
	size_t wb = (slm_matmul_thread_work_bytes(m) + 63) / 64 * 64;
	*work_max = SLM_MAX(*work_max, wb);
	return 0;
}

/* Which act buffer a matrix uses: the first earlier one of the same
 * format and width, else a new one. */
static uint8_t act_slot(const struct slm_matrix *m,
			const struct slm_matrix *const *earlier, int n)
{
	for (int i = 0; i < n; i++)
		if (slm_matmul_act_type(earlier[i]->type) ==
			    slm_matmul_act_type(m->type) &&
		    earlier[i]->n_in == m->n_in)
			return (uint8_t)i;
	return (uint8_t)n;
}

void slm_fwd_kernels_get(enum slm_simd simd, struct slm_fwd_kernels *k)
{
	slm_fwd_kernels_scalar(k);
	if (simd >= SLM_SIMD_AVX2 && slm_cpu_has_simd(SLM_SIMD_AVX2))
		slm_fwd_kernels_avx2(k);
	if (simd >= SLM_SIMD_AVX512 && slm_cpu_has_simd(SLM_SIMD_AVX512))
		slm_fwd_kernels_avx512(k);
}

int slm_forward_create(const struct slm_model *m, const struct slm_tensors *w,
		       struct slm_kv_pool *kv, struct slm_threadpool *pool,
		       const struct slm_forward_params *p,
		       struct slm_forward **out, struct slm_error *err)
{
	*out = NULL;
	const struct slm_hparams *hp = &m->hp;
	if (!p->max_tokens || !p->n_ctx)
		return slm_error_set(err, SLM_EINVAL,
				     "forward: max_tokens %u, n_ctx %u",
				     p->max_tokens, p->n_ctx);
	if (kv->p.n_layer != hp->n_layer || kv->p.n_head_kv != hp->n_head_kv ||
	    kv->p.head_dim != hp->head_dim)
		return slm_error_set(
			err, SLM_EINVAL,
			"forward: KV pool of %u layers x %u heads x %u, the "
			"model has %u x %u x %u",
			kv->p.n_layer, kv->p.n_head_kv, kv->p.head_dim,
			hp->n_layer, hp->n_head_kv, hp->head_dim);
	if (hp->head_dim % 2 || w->n_layer != hp->n_layer)
		return slm_error_set(err, SLM_EINVAL,
				     "forward: head_dim %u / layers %u",
				     hp->head_dim, w->n_layer);
	struct slm_forward *f = calloc(1, sizeof(*f));
	if (!f)
		return slm_error_set(err, SLM_ENOMEM, "forward: no memory");
	f->m = m;
	f->hp = *hp;
	f->kv = kv;
	f->pool = pool;
	f->nth = slm_threadpool_n_threads(pool);
	f->max_tokens = p->max_tokens;
	f->n_ctx = p->n_ctx;
	f->simd = slm_quant_simd();
	slm_fwd_kernels_get(f->simd, &f->k);
	f->attn = f->k.attn[kv->p.type];
	if (hp->head_dim % 16 || hp->head_dim > 256) {
		struct slm_fwd_kernels scalar;
		slm_fwd_kernels_scalar(&scalar);
		f->attn = scalar.attn[kv->p.type];
	}
	f->g = hp->n_head / hp->n_head_kv;
	f->q_dim = hp->n_head * hp->head_dim;
	f->kv_dim = hp->n_head_kv * hp->head_dim;
	f->theta_scale = powf(hp->rope_freq_base, -2.0f / (float)hp->head_dim);
	f->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
	f->token_embd = w->token_embd;
	f->out_norm = w->output_norm.data;
	f->rope_ff =
		slm_tensor_present(&w->rope_freqs) ? w->rope_freqs.data : NULL;

	int rc = 0;
	size_t act_max = 0, work_max = 0;
	const uint32_t T = p->max_tokens;
	f->layers = calloc(hp->n_layer, sizeof(*f->layers));
	if (!f->layers) {
		rc = slm_error_set(err, SLM_ENOMEM, "forward: no memory");
		goto fail;
	}
	for (uint32_t l = 0; l < hp->n_layer; l++) {
		const struct slm_layer *src = &w->layers[l];
		struct fwd_layer *L = &f->layers[l];
		const struct slm_tensor *ts[7] = {
			&src->wq,     &src->wk,	  &src->wv,    &src->wo,
			&src->w_gate, &src->w_up, &src->w_down};
		struct slm_matrix *ms[7] = {&L->wq,   &L->wk, &L->wv,  &L->wo,
					    &L->gate, &L->up, &L->down};
		for (int i = 0; i < 7; i++) {
			rc = add_matrix(ts[i], ms[i], &act_max, &work_max, T,
					f->nth, err);
			if (rc)
				goto fail;
		}
		const struct slm_matrix *qkv[2] = {&L->wq, &L->wk};
		L->k_act = act_slot(&L->wk, qkv, 1);
		L->v_act = act_slot(&L->wv, qkv, 2);
		if (L->v_act == 2 && L->k_act == 0)
			L->v_act = 1;
		const struct slm_matrix *gate[1] = {&L->gate};
		L->up_act = act_slot(&L->up, gate, 1);
		L->attn_norm = src->attn_norm.data;
		L->ffn_norm = src->ffn_norm.data;
		if (hp->qkv_bias) {
			L->bq = src->bq.data;
			L->bk = src->bk.data;
			L->bv = src->bv.data;
		}
	}
	rc = add_matrix(&w->output, &f->out, &act_max, &work_max, T, f->nth,
			err);
	if (rc)
		goto fail;

	const size_t fl = sizeof(float);
	const size_t E = hp->n_embd, FF = hp->n_ff, D = hp->head_dim;
	f->x = scratch(f, T * E * fl);
	f->xb = scratch(f, T * E * fl);
	f->q = scratch(f, T * f->q_dim * fl);
	f->kc = scratch(f, T * f->kv_dim * fl);
	f->vc = scratch(f, T * f->kv_dim * fl);
	f->att = scratch(f, T * f->q_dim * fl);
	f->hb = scratch(f, T * FF * fl);
	f->hb2 = scratch(f, T * FF * fl);
	f->tmp = scratch(f, T * E * fl);
	f->rope = scratch(f, T * D * fl);
	f->act_bytes = act_max;
	for (int i = 0; i < 3; i++)
		f->act[i] = scratch(f, act_max);
	f->work_slice = work_max;
	f->work = work_max ? scratch(f, work_max * (size_t)f->nth) : NULL;
	/* rows of scores: n_ctx rounded up to 16, plus 16 so that the rows
	 * of a tile do not all fall into the same cache sets */
	f->s_stride = ((size_t)p->n_ctx + 15) / 16 * 16 + 16;
	f->att_q = scratch(f, (size_t)f->nth * SLM_ATTN_MAX_ROWS * D * fl);
	f->att_s = scratch(f, (size_t)f->nth * SLM_ATTN_MAX_ROWS * f->s_stride *
				      fl);
	f->k16 = scratch(f, (size_t)f->nth * D * sizeof(uint16_t));
	uint32_t head_chunks =
		(f->g + SLM_ATTN_MAX_ROWS - 1) / SLM_ATTN_MAX_ROWS;
	f->max_items = T * hp->n_head_kv * head_chunks;
	f->items = scratch(f, f->max_items * sizeof(*f->items));
	f->out_idx = scratch(f, T * sizeof(uint32_t));
	f->counters = scratch(f, hp->n_layer * sizeof(uint32_t));
	f->mm_counters = scratch(f, (8 * hp->n_layer + 1) * sizeof(uint32_t));
	f->prof = scratch(f, (size_t)f->nth * PROF_STRIDE * sizeof(uint64_t));
	if (!f->x || !f->xb || !f->q || !f->kc || !f->vc || !f->att || !f->hb ||
	    !f->hb2 || !f->tmp || !f->rope || !f->act[0] || !f->act[1] ||
	    !f->act[2] || (work_max && !f->work) || !f->att_q || !f->att_s ||
	    !f->k16 || !f->items || !f->out_idx || !f->counters) {
		rc = slm_error_set(err, SLM_ENOMEM,
				   "forward: no memory for %llu bytes of "
				   "scratch",
				   (unsigned long long)f->scratch_bytes);
		goto fail;
	}
	*out = f;
	return 0;
fail:
	slm_forward_destroy(f);
	return rc;
}

void slm_forward_destroy(struct slm_forward *f)
{
	if (!f)
		return;
	void *bufs[] = {f->x,		f->xb,	  f->q,	      f->kc,
			f->vc,		f->att,	  f->hb,      f->hb2,
			f->tmp,		f->rope,  f->act[0],  f->act[1],
			f->act[2],	f->work,  f->att_q,   f->att_s,
			f->k16,		f->items, f->out_idx, f->counters,
			f->mm_counters, f->prof};
	for (size_t i = 0; i < SLM_ARRAY_LEN(bufs); i++)
		free(bufs[i]);
	free(f->layers);
	free(f);
}

uint32_t slm_forward_n_vocab(const struct slm_forward *f)
{
	return f->hp.n_vocab;
}

uint32_t slm_forward_max_tokens(const struct slm_forward *f)
{
	return f->max_tokens;
}

uint32_t slm_forward_n_ctx(const struct slm_forward *f)
{
	return f->n_ctx;
}

uint64_t slm_forward_scratch_bytes(const struct slm_forward *f)
{
	return f->scratch_bytes;
}

static void add_bytes(struct slm_tensor *t, void *arg)
{
	if (slm_tensor_present(t))
		*(uint64_t *)arg += t->bytes;
}

uint64_t slm_forward_weight_bytes_per_token(const struct slm_model *m,
					    const struct slm_tensors *w)
{
	struct slm_tensors copy = *w;
	uint64_t bytes = 0;
	/* token_embd: one row; the tied output view is visited (whole). */
	copy.token_embd.name = NULL;
	slm_tensors_for_each(&copy, add_bytes, &bytes);
	bytes += w->token_embd.row_bytes;
	(void)m;
	return bytes;
}

/* ---- the steps ------------------------------------------------------------ */

static size_t act_row(const struct slm_matrix *m)
{
	return slm_matmul_act_row_bytes(m->type, m->n_in);
}

/* Quantize rows [lo, hi) of x (width of m's input) for m into buf. */
static void quantize_rows(const struct slm_matrix *m, const float *x,
			  uint32_t lo, uint32_t hi, uint8_t *buf)
{
	if (lo >= hi)
		return;
	slm_matmul_quantize(m->type, m->n_in, x + (size_t)lo * m->n_in, hi - lo,
			    buf + (size_t)lo * act_row(m), 0, 1);
}

static void embed(struct slm_forward *f, uint32_t t)
{
	const struct slm_tensor *e = &f->token_embd;
	const uint8_t *row = (const uint8_t *)e->data +
			     (size_t)f->b->tokens[t] * e->row_bytes;
	int rc = slm_dequantize((enum slm_dtype)e->type, row,
				f->x + (size_t)t * f->hp.n_embd,
				(int64_t)f->hp.n_embd);
	SLM_ASSERT(rc == 0);
}

/* Biases, RoPE, and the token's K and V into the cache. */
static void qkv_post(struct slm_forward *f, uint32_t l, uint32_t t, int ith)
{
	const struct fwd_layer *L = &f->layers[l];
	const uint32_t d = f->hp.head_dim;
	const bool neox = f->hp.rope_neox;
	const float *cs = f->rope + (size_t)t * d;
	float *q = f->q + (size_t)t * f->q_dim;
	float *k = f->kc + (size_t)t * f->kv_dim;
	float *v = f->vc + (size_t)t * f->kv_dim;
	if (L->bq) {
		add_rows(q, L->bq, f->q_dim);
		add_rows(k, L->bk, f->kv_dim);
		add_rows(v, L->bv, f->kv_dim);
	}
	for (uint32_t h = 0; h < f->hp.n_head; h++)
		rope_head(q + (size_t)h * d, cs, d, neox);
	const struct slm_kv_pool *kv = f->kv;
	const struct slm_kv_seq *seq = f->b->seq[t];
	const uint32_t pos = f->b->pos[t], nb = kv->p.block_tokens;
	const uint32_t blk = seq->blocks[pos / nb], slot = pos % nb;
	uint16_t *k16 = f->k16 + (size_t)ith * d;
	for (uint32_t h = 0; h < f->hp.n_head_kv; h++) {
		float *kh = k + (size_t)h * d, *vh = v + (size_t)h * d;
		rope_head(kh, cs, d, neox);
		void *kt = slm_kv_k(kv, blk, l, h);
		uint8_t *vrow = (uint8_t *)slm_kv_v(kv, blk, l, h) +
				(size_t)slot * d * kv->elt;
		if (kv->p.type == SLM_KV_Q8_0) {
			/* rows at the slot, K as V (kv.h) */
			uint8_t *krow =
				(uint8_t *)kt + (size_t)slot * kv->row_bytes;
			vrow = (uint8_t *)slm_kv_v(kv, blk, l, h) +
			       (size_t)slot * kv->row_bytes;
			int rc = slm_quantize_ref(SLM_DTYPE_Q8_0, kh, krow, d);
			rc |= slm_quantize_ref(SLM_DTYPE_Q8_0, vh, vrow, d);
			SLM_ASSERT(rc == 0);
		} else if (kv->p.type == SLM_KV_F16) {
			f->k.to_f16(d, kh, k16);
			uint16_t *kt16 = kt;
			for (uint32_t e = 0; e < d; e++)
				kt16[(size_t)e * nb + slot] = k16[e];
			f->k.to_f16(d, vh, (uint16_t *)vrow);
		} else {
			float *kt32 = kt;
			for (uint32_t e = 0; e < d; e++)
				kt32[(size_t)e * nb + slot] = kh[e];
			memcpy(vrow, vh, (size_t)d * sizeof(float));
		}
	}
}

static void attention(struct slm_forward *f, uint32_t l, int ith)
{
	const uint32_t d = f->hp.head_dim;
	float *qt = f->att_q + (size_t)ith * SLM_ATTN_MAX_ROWS * d;
	float *s = f->att_s + (size_t)ith * SLM_ATTN_MAX_ROWS * f->s_stride;
	uint32_t n_keys[SLM_ATTN_MAX_ROWS];
	float *outs[SLM_ATTN_MAX_ROWS];
	const struct slm_batch *b = f->b;
	for (;;) {
		uint32_t idx = __atomic_fetch_add(&f->counters[l], 1,
						  __ATOMIC_RELAXED);
		if (idx >= f->n_items)
			break;
		const struct attn_item *it = &f->items[idx];
		uint32_t r = 0;
		for (uint32_t t = 0; t < it->n_tok; t++) {
			uint32_t tok = it->tok0 + t;
			for (uint32_t j = 0; j < it->nh; j++, r++) {
				uint32_t h = it->kvh * f->g + it->h0 + j;
				memcpy(qt + (size_t)r * d,
				       f->q + (size_t)tok * f->q_dim +
					       (size_t)h * d,
				       (size_t)d * sizeof(float));
				n_keys[r] = b->pos[tok] + 1;
				outs[r] = f->att + (size_t)tok * f->q_dim +
					  (size_t)h * d;
			}
		}
		struct slm_attn_args a = {
			.head_dim = d,
			.n_rows = r,
			.q = qt,
			.n_keys = n_keys,
			.max_keys = b->pos[it->tok0 + it->n_tok - 1] + 1,
			.scale = f->attn_scale,
			.kv = f->kv,
			.blocks = b->seq[it->tok0]->blocks,
			.layer = l,
			.head = it->kvh,
			.s = s,
			.s_stride = f->s_stride,
			.out = outs,
		};
		f->attn(&a);
	}
}

/*
 * This thread's share of y = W x (x quantized in act).  Rows are handed
 * out in chunks of about 1 / (4 nth) of the matrix from product `id`'s
 * counter, to whichever thread is free: a thread that loses its core for
 * a while (a busy machine; on a small box slmd's dataplane thread shares a
 * worker core) then does fewer chunks instead of holding the others at
 * the next barrier.  Each chunk is still one long stream of weight rows
 * (decode) or a run of whole panels (prefill), and the results do not
 * depend on the cuts (slm_matmul_compute_rows).
 */
static void matmul_share(struct slm_forward *f, const struct slm_matrix *w,
			 const uint8_t *act, uint32_t n_tokens, float *y,
			 int ith, uint32_t id)
{
	void *mine = f->work ? f->work + f->work_slice * (size_t)ith : NULL;
	if (f->nth == 1) {
		slm_matmul_compute_rows(w, act, n_tokens, y, mine, 0, w->n_out);
		return;
	}
	const int64_t unit = (int64_t)slm_matmul_row_unit(w, n_tokens, mine);
	const int64_t n_chunks = (int64_t)CHUNKS_PER_THREAD * f->nth;
	int64_t rows = (w->n_out + n_chunks - 1) / n_chunks;
	/* a prefill chunk packs the block's activations again: at least 64
	 * rows keep that small next to the products */
	rows = SLM_MAX(unit > 1 ? 64 : 16, (rows + 15) / 16 * 16);
	rows = (rows + unit - 1) / unit * unit;
	for (;;) {
		int64_t r0 = (int64_t)__atomic_fetch_add(&f->mm_counters[id], 1,
							 __ATOMIC_RELAXED) *
			     rows;
		if (r0 >= w->n_out)
			break;
		slm_matmul_compute_rows(w, act, n_tokens, y, mine, r0,
					SLM_MIN(w->n_out, r0 + rows));
	}
}

static void fwd_task(void *arg, int ith, int nth)
{
	struct slm_forward *f = arg;
	uint64_t t0 = f->prof_on ? slm_cycles() : 0;
	const uint32_t n = f->n_tok, E = f->hp.n_embd, FF = f->hp.n_ff;
	const float eps = f->hp.rms_eps;
	uint32_t lo, hi;

	split(n, ith, nth, &lo, &hi);
	for (uint32_t t = lo; t < hi; t++) {
		embed(f, t);
		rope_cache(f, f->b->pos[t],
			   f->rope + (size_t)t * f->hp.head_dim);
	}
	step_sync(f, ith, SLM_FWD_EMBED, &t0);

	uint32_t nt = n; /* rows still computed (the last layer: outputs) */
	/* f->tmp holds the down projection's output, not yet added to x */
	bool pending = false;
	for (uint32_t l = 0; l < f->hp.n_layer; l++) {
		const struct fwd_layer *L = &f->layers[l];
		const bool last = l + 1 == f->hp.n_layer;

		/* norm, quantize for Q K V */
		split(nt, ith, nth, &lo, &hi);
		for (uint32_t t = lo; t < hi; t++) {
			float *x = f->x + (size_t)t * E;
			if (pending)
				add_rows(x, f->tmp + (size_t)t * E, E);
			rmsnorm(f->xb + (size_t)t * E, x, L->attn_norm, E, eps);
		}
		quantize_rows(&L->wq, f->xb, lo, hi, f->act[0]);
		if (L->k_act)
			quantize_rows(&L->wk, f->xb, lo, hi, f->act[L->k_act]);
		if (L->v_act && L->v_act != L->k_act)
			quantize_rows(&L->wv, f->xb, lo, hi, f->act[L->v_act]);
		step_sync(f, ith, SLM_FWD_NORM, &t0);

		matmul_share(f, &L->wq, f->act[0], nt, f->q, ith, 8 * l);
		matmul_share(f, &L->wk, f->act[L->k_act], nt, f->kc, ith,
			     8 * l + 1);
		matmul_share(f, &L->wv, f->act[L->v_act], nt, f->vc, ith,
			     8 * l + 2);
		step_sync(f, ith, SLM_FWD_QKV, &t0);

		for (uint32_t t = lo; t < hi; t++)
			qkv_post(f, l, t, ith);
		step_sync(f, ith, SLM_FWD_ROPE, &t0);

		attention(f, l, ith);
		step_sync(f, ith, SLM_FWD_ATTN, &t0);

		if (last) {
			/* only the rows whose logits are wanted go on */
			if (!f->n_out) {
				prof(f, ith, SLM_FWD_ATTN, &t0);
				return;
			}
			if (f->n_out < nt) {
				if (ith == 0)
					for (uint32_t j = 0; j < f->n_out;
					     j++) {
						uint32_t s = f->out_idx[j];
						if (s == j)
							continue;
						memcpy(f->att +
							       (size_t)j *
								       f->q_dim,
						       f->att +
							       (size_t)s *
								       f->q_dim,
						       f->q_dim *
							       sizeof(float));
						memcpy(f->x + (size_t)j * E,
						       f->x + (size_t)s * E,
						       E * sizeof(float));
					}
				nt = f->n_out;
				step_sync(f, ith, SLM_FWD_NORM, &t0);
				split(nt, ith, nth, &lo, &hi);
			}
		}

		/* quantize the heads for Wo */
		quantize_rows(&L->wo, f->att, lo, hi, f->act[0]);
		step_sync(f, ith, SLM_FWD_NORM, &t0);
		matmul_share(f, &L->wo, f->act[0], nt, f->tmp, ith, 8 * l + 3);
		step_sync(f, ith, SLM_FWD_WO, &t0);

		/* residual, FFN norm, quantize for gate and up */
		for (uint32_t t = lo; t < hi; t++) {
			float *x = f->x + (size_t)t * E;
			add_rows(x, f->tmp + (size_t)t * E, E);
			rmsnorm(f->xb + (size_t)t * E, x, L->ffn_norm, E, eps);
		}
		quantize_rows(&L->gate, f->xb, lo, hi, f->act[0]);
		if (L->up_act)
			quantize_rows(&L->up, f->xb, lo, hi, f->act[1]);
		step_sync(f, ith, SLM_FWD_NORM, &t0);
		matmul_share(f, &L->gate, f->act[0], nt, f->hb, ith, 8 * l + 4);
		matmul_share(f, &L->up, f->act[L->up_act], nt, f->hb2, ith,
			     8 * l + 5);
		step_sync(f, ith, SLM_FWD_GATE_UP, &t0);

		for (uint32_t t = lo; t < hi; t++)
			f->k.swiglu(FF, f->hb + (size_t)t * FF,
				    f->hb2 + (size_t)t * FF);
		quantize_rows(&L->down, f->hb, lo, hi, f->act[0]);
		step_sync(f, ith, SLM_FWD_SWIGLU, &t0);
		matmul_share(f, &L->down, f->act[0], nt, f->tmp, ith,
			     8 * l + 6);
		step_sync(f, ith, SLM_FWD_DOWN, &t0);
		pending = true;
	}

	/* final norm and logits of the rows asked for (nt == n_out) */
	for (uint32_t t = lo; t < hi; t++) {
		float *x = f->x + (size_t)t * E;
		add_rows(x, f->tmp + (size_t)t * E, E);
		rmsnorm(f->xb + (size_t)t * E, x, f->out_norm, E, eps);
	}
	quantize_rows(&f->out, f->xb, lo, hi, f->act[0]);
	step_sync(f, ith, SLM_FWD_NORM, &t0);
	matmul_share(f, &f->out, f->act[0], nt, f->logits, ith,
		     8 * f->hp.n_layer);
	prof(f, ith, SLM_FWD_LOGITS, &t0);
}

/* ---- a call ---------------------------------------------------------------- */

/* Check the batch and advance the sequences; on error undo and say why. */
static int check_batch(struct slm_forward *f, const struct slm_batch *b,
		       struct slm_error *err)
{
	const uint32_t nb = f->kv->p.block_tokens;
	uint32_t i;
	int rc = 0;
	for (i = 0; i < b->n_tokens; i++) {
		struct slm_kv_seq *s = b->seq[i];
		const uint32_t pos = b->pos[i];
		if (b->tokens[i] < 0 ||
		    (uint32_t)b->tokens[i] >= f->hp.n_vocab) {
			rc = slm_error_set(err, SLM_EINVAL,
					   "forward: token %u is id %d, the "
					   "vocabulary has %u",
					   i, b->tokens[i], f->hp.n_vocab);
			break;
		}
		if (!s) {
			rc = slm_error_set(err, SLM_EINVAL,
					   "forward: token %u has no sequence",
					   i);
			break;
		}
		if (pos != s->n_pos) {
			rc = slm_error_set(err, SLM_EINVAL,
					   "forward: token %u at position %u "
					   "of a sequence holding %u positions "
					   "(a sequence continues at its end)",
					   i, pos, s->n_pos);
			break;
		}
		if (pos >= f->n_ctx) {
			rc = slm_error_set(err, SLM_ERANGE,
					   "forward: token %u at position %u, "
					   "the context is %u",
					   i, pos, f->n_ctx);
			break;
		}
		if (pos >= s->n_blocks * nb) {
			rc = slm_error_set(err, SLM_ERANGE,
					   "forward: token %u at position %u, "
					   "beyond the %u positions its block "
					   "table covers",
					   i, pos, s->n_blocks * nb);
			break;
		}
		s->n_pos++;
	}
	if (rc)
		while (i-- > 0)
			b->seq[i]->n_pos--;
	return rc;
}

/* Attention items: runs of adjacent tokens of one sequence, cut into
 * tiles of at most SLM_ATTN_MAX_ROWS rows per KV head. */
static void plan_attention(struct slm_forward *f, const struct slm_batch *b)
{
	const uint32_t g = f->g;
	const uint32_t hchunk = SLM_MIN(g, (uint32_t)SLM_ATTN_MAX_ROWS);
	const uint32_t tok_per = SLM_MAX(1u, SLM_ATTN_MAX_ROWS / g);
	uint32_t n = 0;
	for (uint32_t t0 = 0; t0 < b->n_tokens;) {
		uint32_t t1 = t0 + 1;
		while (t1 < b->n_tokens && t1 - t0 < tok_per &&
		       b->seq[t1] == b->seq[t0])
			t1++;
		for (uint32_t h = 0; h < f->hp.n_head_kv; h++)
			for (uint32_t h0 = 0; h0 < g; h0 += hchunk) {
				struct attn_item *it = &f->items[n++];
				it->tok0 = t0;
				it->n_tok = t1 - t0;
				it->kvh = (uint16_t)h;
				it->h0 = (uint16_t)h0;
				it->nh = (uint16_t)SLM_MIN(hchunk, g - h0);
			}
		t0 = t1;
	}
	SLM_ASSERT(n <= f->max_items);
	f->n_items = n;
}

int slm_forward_eval(struct slm_forward *f, const struct slm_batch *b,
		     float *logits, struct slm_error *err)
{
	if (slm_quant_simd() != f->simd)
		return slm_error_set(err, SLM_ESTATE,
				     "forward: the kernel tier changed from "
				     "%s to %s since creation",
				     slm_simd_name(f->simd),
				     slm_simd_name(slm_quant_simd()));
	if (!b->n_tokens || b->n_tokens > f->max_tokens)
		return slm_error_set(err, SLM_EINVAL,
				     "forward: a batch of %u tokens (1..%u)",
				     b->n_tokens, f->max_tokens);
	uint32_t n_out = 0;
	for (uint32_t i = 0; i < b->n_tokens; i++)
		if (b->want ? b->want[i] != 0 : i + 1 == b->n_tokens)
			f->out_idx[n_out++] = i;
	if (n_out && !logits)
		return slm_error_set(err, SLM_EINVAL,
				     "forward: %u logits rows asked for, no "
				     "buffer",
				     n_out);
	int rc = check_batch(f, b, err);
	if (rc)
		return rc;
	plan_attention(f, b);
	memset(f->counters, 0, f->hp.n_layer * sizeof(uint32_t));
	memset(f->mm_counters, 0, (8 * f->hp.n_layer + 1) * sizeof(uint32_t));
	f->b = b;
	f->n_tok = b->n_tokens;
	f->n_out = n_out;
	f->logits = logits;
	slm_threadpool_run(f->pool, fwd_task, f);
	f->b = NULL;
	if (f->prof_on) {
		f->prof_calls++;
		f->prof_tokens += b->n_tokens;
	}
	return 0;
}

const char *slm_forward_step_name(enum slm_forward_step s)
{
	static const char *const names[SLM_FWD_STEP__COUNT] = {
		[SLM_FWD_EMBED] = "embedding, RoPE angles",
		[SLM_FWD_NORM] = "norms, residuals, quantizing",
		[SLM_FWD_QKV] = "Q K V products",
		[SLM_FWD_ROPE] = "bias, RoPE, KV stores",
		[SLM_FWD_ATTN] = "attention",
		[SLM_FWD_WO] = "output projection",
		[SLM_FWD_GATE_UP] = "gate and up products",
		[SLM_FWD_SWIGLU] = "SwiGLU, quantizing",
		[SLM_FWD_DOWN] = "down product",
		[SLM_FWD_LOGITS] = "final norm, logits",
		[SLM_FWD_WAIT] = "waiting at barriers",
	};
	return (unsigned)s < SLM_FWD_STEP__COUNT ? names[s] : "?";
}

void slm_forward_profile_enable(struct slm_forward *f, bool on)
{
	memset(f->prof, 0, (size_t)f->nth * PROF_STRIDE * sizeof(uint64_t));
	f->prof_calls = f->prof_tokens = 0;
	f->prof_on = on;
}

void slm_forward_profile_get(const struct slm_forward *f,
			     struct slm_forward_profile *out)
{
	memset(out, 0, sizeof(*out));
	out->calls = f->prof_calls;
	out->tokens = f->prof_tokens;
	out->n_threads = f->nth;
	for (int t = 0; t < f->nth; t++)
		for (int s = 0; s < SLM_FWD_STEP__COUNT; s++)
			out->ns[s] += (double)slm_cycles_to_ns(
				f->prof[(size_t)t * PROF_STRIDE + s]);
}
