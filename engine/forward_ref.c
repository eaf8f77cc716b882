/*
 * forward_ref.c: the reference forward pass (forward_ref.h).  Written to
 * be read: one function per step of the model, no threads, no SIMD.
 */
#include "engine/forward_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/matmul.h"
#include "engine/quant.h"

/* ---------------------------------------------------------------------------
 * Weights, dequantized.  Shapes: [rows][cols] = [n_out][n_in].
 */

struct ref_matrix {
	float *w; /* [n_out][n_in] */
	uint32_t n_in, n_out;
	enum slm_dtype type; /* of the file: decides the activation rounding */
	float *mins;	     /* Q4_1, Q5_1: [n_out][n_in / 32] block minimums */
};

struct ref_layer {
	struct ref_matrix wq;		   /* [n_head * d][n_embd] */
	struct ref_matrix wk, wv;	   /* [n_head_kv * d][n_embd] */
	struct ref_matrix wo;		   /* [n_embd][n_head * d] */
	struct ref_matrix gate, up;	   /* [n_ff][n_embd] */
	struct ref_matrix down;		   /* [n_embd][n_ff] */
	const float *attn_norm, *ffn_norm; /* [n_embd] */
	const float *bq, *bk, *bv;	   /* or NULL */
	float *k_cache, *v_cache;	   /* [n_ctx][n_head_kv * d] */
};

struct slm_forward_ref {
	struct slm_hparams hp;
	struct slm_forward_ref_params p;
	struct ref_matrix embd;	  /* [n_vocab][n_embd] */
	struct ref_matrix output; /* [n_vocab][n_embd] */
	const float *output_norm; /* [n_embd] */
	const float *rope_freqs;  /* [d / 2] or NULL */
	struct ref_layer *layers;
	uint32_t pos;
	/* activations */
	float *x, *xb, *xq; /* [max(n_embd, n_ff, n_head d)] */
	float *q, *k, *v;   /* [n_head d], [n_head_kv d] x 2 */
	float *att;	    /* [n_head d] */
	float *hb, *hb2;    /* [n_ff] */
	double *scores;	    /* [n_ctx] */
	uint8_t *act;	    /* one quantized activation row */
	float *act_sums;    /* its Q8_1 blocks' s */
};

static int dequant_matrix(const struct slm_tensor *t, struct ref_matrix *m,
			  struct slm_error *err)
{
	m->n_in = (uint32_t)t->ne[0];
	m->n_out = (uint32_t)t->ne[1];
	m->type = (enum slm_dtype)t->type;
	m->w = malloc((size_t)m->n_in * m->n_out * sizeof(float));
	if (!m->w)
		return slm_error_set(err, SLM_ENOMEM,
				     "reference: no memory for %s", t->name);
	bool has_min = m->type == SLM_DTYPE_Q4_1 || m->type == SLM_DTYPE_Q5_1;
	if (has_min) {
		m->mins = malloc((size_t)m->n_out * (m->n_in / 32) *
				 sizeof(float));
		if (!m->mins)
			return slm_error_set(err, SLM_ENOMEM,
					     "reference: no memory for %s",
					     t->name);
	}
	for (uint32_t r = 0; r < m->n_out; r++) {
		const uint8_t *row =
			(const uint8_t *)t->data + (size_t)r * t->row_bytes;
		int rc = slm_dequantize(m->type, row,
					m->w + (size_t)r * m->n_in, m->n_in);
		if (rc)
			return slm_error_set(err, rc,
					     "reference: cannot dequantize %s "
					     "(%s)",
					     t->name, slm_dtype_name(m->type));
		/* both blocks start with the fp16 scale and minimum */
		size_t bb = slm_dtype_block_bytes(m->type);
		for (uint32_t b = 0; has_min && b < m->n_in / 32; b++) {
			slm_fp16 h;
			memcpy(&h, row + b * bb + sizeof(slm_fp16), sizeof(h));
			m->mins[(size_t)r * (m->n_in / 32) + b] =
				slm_fp16_to_f32(h);
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------------
 * The steps.
 */

/* Round x[0..n) through the activation format of weight type wt, as the
 * CPU backend does before multiplying (the scalar tier's quantizer). */
static void round_activation(struct slm_forward_ref *r, enum slm_dtype wt,
			     const float *x, float *out, uint32_t n)
{
	enum slm_dtype at = slm_matmul_act_type(wt);
	if (!r->p.act_quant || at == SLM_DTYPE_F32 || at == SLM_DTYPE__COUNT) {
		memcpy(out, x, n * sizeof(float));
		return;
	}
	const struct slm_quant_traits *t =
		slm_quant_traits_at(at, SLM_SIMD_SCALAR);
	t->from_float(x, r->act, n);
	t->to_float(r->act, out, n);
	if (at == SLM_DTYPE_Q8_1) {
		const struct block_q8_1 *b = (const struct block_q8_1 *)r->act;
		for (uint32_t i = 0; i < n / QK8_1; i++)
			r->act_sums[i] = slm_fp16_to_f32(b[i].s);
	}
}

/*
 * y = W x, sums in double.  Q4_1 and Q5_1 weights (w = d q + m per block
 * of 32) meet Q8_1 activations, whose block carries s = d_a sum(q_a)
 * rounded to fp16, and llama.cpp's dot product takes the minimum's share
 * as m * s: so does this one when activations are rounded.
 */
static void matmul(struct slm_forward_ref *r, const struct ref_matrix *m,
		   const float *x, float *y)
{
	round_activation(r, m->type, x, r->xq, m->n_in);
	const bool sums = m->mins && r->p.act_quant;
	const uint32_t nb = m->n_in / 32;
	for (uint32_t o = 0; o < m->n_out; o++) {
		const float *w = m->w + (size_t)o * m->n_in;
		double sum = 0;
		if (sums) {
			for (uint32_t b = 0; b < nb; b++) {
				double mb = m->mins[(size_t)o * nb + b];
				for (uint32_t i = b * 32; i < b * 32 + 32; i++)
					sum += ((double)w[i] - mb) *
					       (double)r->xq[i];
				sum += mb * (double)r->act_sums[b];
			}
		} else {
			for (uint32_t i = 0; i < m->n_in; i++)
				sum += (double)w[i] * (double)r->xq[i];
		}
		y[o] = (float)sum;
	}
}

static void rmsnorm(float *y, const float *x, const float *w, uint32_t n,
		    float eps)
{
	double ss = 0;
	for (uint32_t i = 0; i < n; i++)
		ss += (double)x[i] * (double)x[i];
	double scale = 1.0 / sqrt(ss / n + (double)eps);
	for (uint32_t i = 0; i < n; i++)
		y[i] = (float)((double)x[i] * scale * (double)w[i]);
}

/* Rotate each head of x (n_heads x d) for position pos. */
static void rope(const struct slm_forward_ref *r, float *x, uint32_t n_heads,
		 uint32_t pos)
{
	const uint32_t d = r->hp.head_dim, half = d / 2;
	for (uint32_t i = 0; i < half; i++) {
		double freq = pow((double)r->hp.rope_freq_base,
				  -2.0 * (double)i / (double)d);
		if (r->rope_freqs)
			freq /= (double)r->rope_freqs[i];
		double theta =
			(double)pos * (double)r->hp.rope_freq_scale * freq;
		double c = cos(theta), s = sin(theta);
		for (uint32_t h = 0; h < n_heads; h++) {
			float *v = x + (size_t)h * d;
			/* llama: (2i, 2i+1); qwen2 (NEOX): (i, i + d/2) */
			uint32_t a = r->hp.rope_neox ? i : 2 * i;
			uint32_t b = r->hp.rope_neox ? i + half : 2 * i + 1;
			double x0 = v[a], x1 = v[b];
			v[a] = (float)(x0 * c - x1 * s);
			v[b] = (float)(x0 * s + x1 * c);
		}
	}
}

static float round_f16(float x)
{
	return slm_fp16_to_f32(slm_f32_to_fp16(x));
}

/* Multi-head attention of the current position over positions 0..pos. */
static void attention(struct slm_forward_ref *r, struct ref_layer *L)
{
	const uint32_t d = r->hp.head_dim, pos = r->pos;
	const uint32_t kv_dim = r->hp.n_head_kv * d;
	const uint32_t g = r->hp.n_head / r->hp.n_head_kv;
	const double scale = 1.0 / sqrt((double)d);
	for (uint32_t h = 0; h < r->hp.n_head; h++) {
		float q[512];
		for (uint32_t e = 0; e < d; e++)
			q[e] = r->p.kv_f16 ? round_f16(r->q[h * d + e])
					   : r->q[h * d + e];
		const uint32_t kvh = h / g; /* grouped-query attention */
		double max = -INFINITY;
		for (uint32_t t = 0; t <= pos; t++) {
			const float *k = L->k_cache + (size_t)t * kv_dim +
					 (size_t)kvh * d;
			double dot = 0;
			for (uint32_t e = 0; e < d; e++)
				dot += (double)q[e] * (double)k[e];
			r->scores[t] = dot * scale;
			max = r->scores[t] > max ? r->scores[t] : max;
		}
		double sum = 0;
		for (uint32_t t = 0; t <= pos; t++) {
			r->scores[t] = exp(r->scores[t] - max);
			sum += r->scores[t];
		}
		float *out = r->att + (size_t)h * d;
		for (uint32_t e = 0; e < d; e++) {
			double acc = 0;
			for (uint32_t t = 0; t <= pos; t++) {
				double p = r->scores[t] / sum;
				if (r->p.kv_f16)
					p = round_f16((float)p);
				acc += p *
				       (double)L->v_cache[(size_t)t * kv_dim +
							  (size_t)kvh * d + e];
			}
			out[e] = (float)acc;
		}
	}
}

int slm_forward_ref_eval(struct slm_forward_ref *r, int32_t token,
			 float *logits, struct slm_error *err)
{
	const struct slm_hparams *hp = &r->hp;
	const uint32_t E = hp->n_embd, d = hp->head_dim;
	const uint32_t kv_dim = hp->n_head_kv * d;
	if (token < 0 || (uint32_t)token >= hp->n_vocab)
		return slm_error_set(err, SLM_EINVAL,
				     "reference: token %d out of range", token);
	if (r->pos >= r->p.n_ctx)
		return slm_error_set(err, SLM_ERANGE,
				     "reference: context of %u is full",
				     r->p.n_ctx);

	/* token embedding */
	memcpy(r->x, r->embd.w + (size_t)token * E, E * sizeof(float));

	for (uint32_t l = 0; l < hp->n_layer; l++) {
		struct ref_layer *L = &r->layers[l];

		/* attention block */
		rmsnorm(r->xb, r->x, L->attn_norm, E, hp->rms_eps);
		matmul(r, &L->wq, r->xb, r->q);
		matmul(r, &L->wk, r->xb, r->k);
		matmul(r, &L->wv, r->xb, r->v);
		if (L->bq) {
			for (uint32_t i = 0; i < hp->n_head * d; i++)
				r->q[i] += L->bq[i];
			for (uint32_t i = 0; i < kv_dim; i++) {
				r->k[i] += L->bk[i];
				r->v[i] += L->bv[i];
			}
		}
		rope(r, r->q, hp->n_head, r->pos);
		rope(r, r->k, hp->n_head_kv, r->pos);
		float *kc = L->k_cache + (size_t)r->pos * kv_dim;
		float *vc = L->v_cache + (size_t)r->pos * kv_dim;
		for (uint32_t i = 0; i < kv_dim; i++) {
			kc[i] = r->p.kv_f16 ? round_f16(r->k[i]) : r->k[i];
			vc[i] = r->p.kv_f16 ? round_f16(r->v[i]) : r->v[i];
		}
		attention(r, L);
		matmul(r, &L->wo, r->att, r->xb);
		for (uint32_t i = 0; i < E; i++)
			r->x[i] += r->xb[i];

		/* feed-forward block: SwiGLU */
		rmsnorm(r->xb, r->x, L->ffn_norm, E, hp->rms_eps);
		matmul(r, &L->gate, r->xb, r->hb);
		matmul(r, &L->up, r->xb, r->hb2);
		for (uint32_t i = 0; i < hp->n_ff; i++) {
			double a = r->hb[i];
			r->hb[i] = (float)(a / (1.0 + exp(-a)) * r->hb2[i]);
		}
		matmul(r, &L->down, r->hb, r->xb);
		for (uint32_t i = 0; i < E; i++)
			r->x[i] += r->xb[i];
	}

	/* final norm and classifier */
	rmsnorm(r->xb, r->x, r->output_norm, E, hp->rms_eps);
	if (logits)
		matmul(r, &r->output, r->xb, logits);
	r->pos++;
	return 0;
}

/* ---------------------------------------------------------------------------
 * Creation.
 */

void slm_forward_ref_destroy(struct slm_forward_ref *r)
{
	if (!r)
		return;
	if (r->layers) {
		for (uint32_t l = 0; l < r->hp.n_layer; l++) {
			struct ref_layer *L = &r->layers[l];
			struct ref_matrix *ms[] = {&L->wq,  &L->wk,   &L->wv,
						   &L->wo,  &L->gate, &L->up,
						   &L->down};
			for (size_t i = 0; i < SLM_ARRAY_LEN(ms); i++) {
				free(ms[i]->w);
				free(ms[i]->mins);
			}
			free(L->k_cache);
			free(L->v_cache);
		}
		free(r->layers);
	}
	if (r->output.w != r->embd.w) {
		free(r->output.w);
		free(r->output.mins);
	}
	free(r->embd.w);
	free(r->embd.mins);
	free(r->x);
	free(r->xb);
	free(r->xq);
	free(r->q);
	free(r->k);
	free(r->v);
	free(r->att);
	free(r->hb);
	free(r->hb2);
	free(r->scores);
	free(r->act);
	free(r->act_sums);
	free(r);
}

int slm_forward_ref_create(const struct slm_model *m,
			   const struct slm_tensors *w,
			   const struct slm_forward_ref_params *p,
			   struct slm_forward_ref **out, struct slm_error *err)
{
	*out = NULL;
	const struct slm_hparams *hp = &m->hp;
	if (!p->n_ctx || hp->head_dim > 512)
		return slm_error_set(err, SLM_EINVAL,
				     "reference: n_ctx %u, head_dim %u",
				     p->n_ctx, hp->head_dim);
	struct slm_forward_ref *r = calloc(1, sizeof(*r));
	if (!r)
		return slm_error_set(err, SLM_ENOMEM, "reference: no memory");
	r->hp = *hp;
	r->p = *p;
	int rc = dequant_matrix(&w->token_embd, &r->embd, err);
	if (rc)
		goto fail;
	if (hp->tied_output) {
		r->output = r->embd;
	} else {
		rc = dequant_matrix(&w->output, &r->output, err);
		if (rc)
			goto fail;
	}
	r->output_norm = w->output_norm.data;
	r->rope_freqs =
		slm_tensor_present(&w->rope_freqs) ? w->rope_freqs.data : NULL;
	r->layers = calloc(hp->n_layer, sizeof(*r->layers));
	if (!r->layers) {
		rc = slm_error_set(err, SLM_ENOMEM, "reference: no memory");
		goto fail;
	}
	const uint32_t d = hp->head_dim, kv_dim = hp->n_head_kv * d;
	for (uint32_t l = 0; l < hp->n_layer; l++) {
		const struct slm_layer *s = &w->layers[l];
		struct ref_layer *L = &r->layers[l];
		if ((rc = dequant_matrix(&s->wq, &L->wq, err)) ||
		    (rc = dequant_matrix(&s->wk, &L->wk, err)) ||
		    (rc = dequant_matrix(&s->wv, &L->wv, err)) ||
		    (rc = dequant_matrix(&s->wo, &L->wo, err)) ||
		    (rc = dequant_matrix(&s->w_gate, &L->gate, err)) ||
		    (rc = dequant_matrix(&s->w_up, &L->up, err)) ||
		    (rc = dequant_matrix(&s->w_down, &L->down, err)))
			goto fail;
		L->attn_norm = s->attn_norm.data;
		L->ffn_norm = s->ffn_norm.data;
		if (hp->qkv_bias) {
			L->bq = s->bq.data;
			L->bk = s->bk.data;
			L->bv = s->bv.data;
		}
		L->k_cache = calloc((size_t)p->n_ctx * kv_dim, sizeof(float));
		L->v_cache = calloc((size_t)p->n_ctx * kv_dim, sizeof(float));
		if (!L->k_cache || !L->v_cache) {
			rc = slm_error_set(err, SLM_ENOMEM,
					   "reference: no memory for the KV "
					   "cache");
			goto fail;
		}
	}
	uint32_t wide = SLM_MAX(hp->n_embd, SLM_MAX(hp->n_ff, hp->n_head * d));
	size_t act = 0;
	/* the largest activation row any weight type asks for */
	static const enum slm_dtype acts[] = {SLM_DTYPE_Q8_0, SLM_DTYPE_Q8_1,
					      SLM_DTYPE_Q8_K, SLM_DTYPE_F16,
					      SLM_DTYPE_BF16};
	for (size_t i = 0; i < SLM_ARRAY_LEN(acts); i++) {
		uint64_t b = 0;
		if (slm_dtype_row_bytes(acts[i], (wide + 255) / 256 * 256, &b))
			act = SLM_MAX(act, (size_t)b);
	}
	r->x = calloc(wide, sizeof(float));
	r->xb = calloc(wide, sizeof(float));
	r->xq = calloc(wide, sizeof(float));
	r->q = calloc((size_t)hp->n_head * d, sizeof(float));
	r->k = calloc(kv_dim, sizeof(float));
	r->v = calloc(kv_dim, sizeof(float));
	r->att = calloc((size_t)hp->n_head * d, sizeof(float));
	r->hb = calloc(hp->n_ff, sizeof(float));
	r->hb2 = calloc(hp->n_ff, sizeof(float));
	r->scores = calloc(p->n_ctx, sizeof(double));
	r->act = calloc(1, act);
	r->act_sums = calloc(wide / 32 + 8, sizeof(float));
	if (!r->act_sums || !r->x || !r->xb || !r->xq || !r->q || !r->k ||
	    !r->v || !r->att || !r->hb || !r->hb2 || !r->scores || !r->act) {
		rc = slm_error_set(err, SLM_ENOMEM, "reference: no memory");
		goto fail;
	}
	*out = r;
	return 0;
fail:
	slm_forward_ref_destroy(r);
	return rc;
}

void slm_forward_ref_reset(struct slm_forward_ref *r)
{
	r->pos = 0;
}

uint32_t slm_forward_ref_n_pos(const struct slm_forward_ref *r)
{
	return r->pos;
}
