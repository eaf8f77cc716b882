/*
 * forward_scalar.c: the forward pass's own kernels, scalar: the
 * specification the wide tiers are tested against, and the tier of CPUs
 * without AVX2.
 */
#include <math.h>

#include "engine/forward_int.h"
#include "engine/quant.h"

static inline float kv_load(const void *p, size_t i, bool f16)
{
	return f16 ? slm_fp16_to_f32(((const uint16_t *)p)[i])
		   : ((const float *)p)[i];
}

static inline float round_f16(float x)
{
	return slm_fp16_to_f32(slm_f32_to_fp16(x));
}

static void attn_scalar(const struct slm_attn_args *a, bool f16)
{
	const struct slm_kv_pool *kv = a->kv;
	const uint32_t d = a->head_dim, nb = kv->p.block_tokens;
	if (f16)
		for (size_t i = 0; i < (size_t)a->n_rows * d; i++)
			a->q[i] = round_f16(a->q[i]);
	for (uint32_t r = 0; r < a->n_rows; r++) {
		const float *q = a->q + (size_t)r * d;
		float *s = a->s + (size_t)r * a->s_stride;
		const uint32_t nk = a->n_keys[r];
		float max = -INFINITY;
		for (uint32_t i = 0; i < nk; i++) {
			const void *kt = slm_kv_k(kv, a->blocks[i / nb],
						  a->layer, a->head);
			float dot = 0;
			for (uint32_t e = 0; e < d; e++)
				dot += q[e] * kv_load(kt,
						      (size_t)e * nb + i % nb,
						      f16);
			s[i] = dot * a->scale;
			max = s[i] > max ? s[i] : max;
		}
		double sum = 0;
		for (uint32_t i = 0; i < nk; i++) {
			s[i] = expf(s[i] - max);
			sum += s[i];
		}
		const float inv = (float)(1.0 / sum);
		for (uint32_t i = 0; i < nk; i++)
			s[i] = f16 ? round_f16(s[i] * inv) : s[i] * inv;
		float *out = a->out[r];
		for (uint32_t e = 0; e < d; e++)
			out[e] = 0;
		for (uint32_t i = 0; i < nk; i++) {
			const void *v = slm_kv_v(kv, a->blocks[i / nb],
						 a->layer, a->head);
			size_t row = (size_t)(i % nb) * d;
			for (uint32_t e = 0; e < d; e++)
				out[e] += s[i] * kv_load(v, row + e, f16);
		}
	}
}

static void attn_f16(const struct slm_attn_args *a)
{
	attn_scalar(a, true);
}

static void attn_f32(const struct slm_attn_args *a)
{
	attn_scalar(a, false);
}

/* Dot product of q[d] with a Q8_0 row of d elements. */
static float dot_q8_0(const float *q, const struct block_q8_0 *row, uint32_t d)
{
	float sum = 0;
	for (uint32_t b = 0; b < d / SLM_KV_Q8_0_BLOCK; b++) {
		const float *qb = q + (size_t)b * SLM_KV_Q8_0_BLOCK;
		float s = 0;
		for (int e = 0; e < SLM_KV_Q8_0_BLOCK; e++)
			s += qb[e] * (float)row[b].qs[e];
		sum += s * slm_fp16_to_f32(row[b].d);
	}
	return sum;
}

/* out[d] += p * a Q8_0 row of d elements. */
static void axpy_q8_0(float *out, float p, const struct block_q8_0 *row,
		      uint32_t d)
{
	for (uint32_t b = 0; b < d / SLM_KV_Q8_0_BLOCK; b++) {
		float *ob = out + (size_t)b * SLM_KV_Q8_0_BLOCK;
		const float s = p * slm_fp16_to_f32(row[b].d);
		for (int e = 0; e < SLM_KV_Q8_0_BLOCK; e++)
			ob[e] += s * (float)row[b].qs[e];
	}
}

static void attn_q8_0(const struct slm_attn_args *a)
{
	const struct slm_kv_pool *kv = a->kv;
	const uint32_t d = a->head_dim, nb = kv->p.block_tokens;
	for (uint32_t r = 0; r < a->n_rows; r++) {
		const float *q = a->q + (size_t)r * d;
		float *s = a->s + (size_t)r * a->s_stride;
		const uint32_t nk = a->n_keys[r];
		float max = -INFINITY;
		for (uint32_t i = 0; i < nk; i++) {
			const uint8_t *kt = slm_kv_k(kv, a->blocks[i / nb],
						     a->layer, a->head);
			s[i] = dot_q8_0(q,
					(const struct block_q8_0
						 *)(kt + (size_t)(i % nb) *
								 kv->row_bytes),
					d) *
			       a->scale;
			max = s[i] > max ? s[i] : max;
		}
		double sum = 0;
		for (uint32_t i = 0; i < nk; i++) {
			s[i] = expf(s[i] - max);
			sum += s[i];
		}
		const float inv = (float)(1.0 / sum);
		float *out = a->out[r];
		for (uint32_t e = 0; e < d; e++)
			out[e] = 0;
		for (uint32_t i = 0; i < nk; i++) {
			const uint8_t *v = slm_kv_v(kv, a->blocks[i / nb],
						    a->layer, a->head);
			axpy_q8_0(out, s[i] * inv,
				  (const struct block_q8_0
					   *)(v +
					      (size_t)(i % nb) * kv->row_bytes),
				  d);
		}
	}
}

static void swiglu(int64_t n, float *g, const float *u)
{
	for (int64_t i = 0; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void to_f16(int64_t n, const float *x, uint16_t *y)
{
	for (int64_t i = 0; i < n; i++)
		y[i] = slm_f32_to_fp16(x[i]);
}

void slm_fwd_kernels_scalar(struct slm_fwd_kernels *k)
{
	k->attn[SLM_KV_F16] = attn_f16;
	k->attn[SLM_KV_F32] = attn_f32;
	k->attn[SLM_KV_Q8_0] = attn_q8_0;
	k->swiglu = swiglu;
	k->to_f16 = to_f16;
	k->simd = SLM_SIMD_SCALAR;
}
