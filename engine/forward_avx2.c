/*
 * forward_avx2.c: the forward pass's kernels for AVX2 + FMA + F16C (the
 * Makefile's avx2 tier).  Same structure as forward_avx512.c with 8-lane
 * vectors: scores for 8 keys at a time from the transposed K, values over
 * 32 head elements for 2 rows at a time (16 vector registers).
 */
#include <immintrin.h>
#include <math.h>

#include "engine/forward_int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* e^x as in forward_avx512.c: 0 below -87.3 (and for -inf), e^88 above
 * 88. */
static ALWAYS_INLINE __m256 exp256(__m256 x)
{
	const __m256 lo = _mm256_set1_ps(-87.3f);
	__m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
	x = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
	__m256 n = _mm256_round_ps(
		_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
		_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.9875691500E-4f);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507E-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073E-3f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894E-2f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459E-1f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201E-1f));
	p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r),
			    _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
	__m256i e = _mm256_slli_epi32(
		_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)),
		23);
	__m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
	return _mm256_andnot_ps(under, v);
}

static ALWAYS_INLINE float hsum8(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
			      _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static ALWAYS_INLINE float hmax8(__m256 v)
{
	__m128 s = _mm_max_ps(_mm256_castps256_ps128(v),
			      _mm256_extractf128_ps(v, 1));
	s = _mm_max_ps(s, _mm_movehl_ps(s, s));
	s = _mm_max_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

static ALWAYS_INLINE __m256 load8(const void *p, bool f16)
{
	return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p))
		   : _mm256_loadu_ps(p);
}

static ALWAYS_INLINE __m256 round8(__m256 x)
{
	return _mm256_cvtph_ps(_mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT |
							  _MM_FROUND_NO_EXC));
}

static ALWAYS_INLINE void scores_rows(const struct slm_attn_args *a, int R,
				      uint32_t r0, const uint8_t *kt, size_t nb,
				      uint32_t k0, bool f16)
{
	const uint32_t d = a->head_dim;
	const size_t elt = f16 ? 2 : 4;
	__m256 acc[8];
#pragma GCC unroll 8
	for (int r = 0; r < R; r++)
		acc[r] = _mm256_setzero_ps();
	const float *q = a->q + (size_t)r0 * d;
	for (uint32_t e = 0; e < d; e++) {
		__m256 k = load8(kt + (size_t)e * nb * elt, f16);
#pragma GCC unroll 8
		for (int r = 0; r < R; r++)
			acc[r] = _mm256_fmadd_ps(
				_mm256_set1_ps(q[(size_t)r * d + e]), k,
				acc[r]);
	}
	const __m256 scale = _mm256_set1_ps(a->scale);
	const __m256 ninf = _mm256_set1_ps(-INFINITY);
	const __m256i lane =
		_mm256_add_epi32(_mm256_set1_epi32((int)k0),
				 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 8
	for (int r = 0; r < R; r++) {
		__m256 ok = _mm256_castsi256_ps(_mm256_cmpgt_epi32(
			_mm256_set1_epi32((int)a->n_keys[r0 + r]), lane));
		__m256 s = _mm256_blendv_ps(ninf, _mm256_mul_ps(acc[r], scale),
					    ok);
		_mm256_storeu_ps(a->s + (size_t)(r0 + r) * a->s_stride + k0, s);
	}
}

static ALWAYS_INLINE void values_rows(const struct slm_attn_args *a, int R,
				      int NV, uint32_t r0, uint32_t c0,
				      bool f16)
{
	const struct slm_kv_pool *kv = a->kv;
	const uint32_t d = a->head_dim, nb = kv->p.block_tokens;
	const size_t elt = f16 ? 2 : 4;
	__m256 acc[2][4];
#pragma GCC unroll 2
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int j = 0; j < NV; j++)
			acc[r][j] = _mm256_setzero_ps();
	for (uint32_t k0 = 0; k0 < a->max_keys; k0 += nb) {
		const uint8_t *v =
			(const uint8_t *)slm_kv_v(kv, a->blocks[k0 / nb],
						  a->layer, a->head) +
			(size_t)c0 * elt;
		uint32_t n = a->max_keys - k0 < nb ? a->max_keys - k0 : nb;
		for (uint32_t i = 0; i < n; i++) {
			__m256 vv[4];
#pragma GCC unroll 4
			for (int j = 0; j < NV; j++)
				vv[j] = load8(v + ((size_t)i * d + 8 * j) * elt,
					      f16);
#pragma GCC unroll 2
			for (int r = 0; r < R; r++) {
				__m256 p = _mm256_set1_ps(
					a->s[(size_t)(r0 + r) * a->s_stride +
					     k0 + i]);
#pragma GCC unroll 4
				for (int j = 0; j < NV; j++)
					acc[r][j] = _mm256_fmadd_ps(p, vv[j],
								    acc[r][j]);
			}
		}
	}
#pragma GCC unroll 2
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int j = 0; j < NV; j++)
			_mm256_storeu_ps(a->out[r0 + r] + c0 + 8 * j,
					 acc[r][j]);
}

static ALWAYS_INLINE void values_nv(const struct slm_attn_args *a, int R,
				    uint32_t r0, uint32_t c0, bool f16)
{
	/* head_dim is a multiple of 16: 2 or 4 vectors remain */
	if (a->head_dim - c0 >= 32)
		values_rows(a, R, 4, r0, c0, f16);
	else
		values_rows(a, R, 2, r0, c0, f16);
}

static ALWAYS_INLINE void attn_body(const struct slm_attn_args *a, bool f16)
{
	const struct slm_kv_pool *kv = a->kv;
	const uint32_t d = a->head_dim, nb = kv->p.block_tokens;
	const size_t elt = f16 ? 2 : 4;
	if (f16)
		for (size_t i = 0; i < (size_t)a->n_rows * d; i += 8)
			_mm256_storeu_ps(a->q + i,
					 round8(_mm256_loadu_ps(a->q + i)));
	for (uint32_t k0 = 0; k0 < a->max_keys; k0 += 8) {
		const uint8_t *kt =
			(const uint8_t *)slm_kv_k(kv, a->blocks[k0 / nb],
						  a->layer, a->head) +
			(size_t)(k0 % nb) * elt;
		uint32_t r = 0;
		for (; r + 8 <= a->n_rows; r += 8)
			scores_rows(a, 8, r, kt, nb, k0, f16);
		if (r + 4 <= a->n_rows) {
			scores_rows(a, 4, r, kt, nb, k0, f16);
			r += 4;
		}
		if (r + 2 <= a->n_rows) {
			scores_rows(a, 2, r, kt, nb, k0, f16);
			r += 2;
		}
		if (r < a->n_rows)
			scores_rows(a, 1, r, kt, nb, k0, f16);
	}
	const uint32_t nk8 = (a->max_keys + 7) & ~7u;
	for (uint32_t r = 0; r < a->n_rows; r++) {
		float *s = a->s + (size_t)r * a->s_stride;
		__m256 m = _mm256_set1_ps(-INFINITY);
		for (uint32_t i = 0; i < nk8; i += 8)
			m = _mm256_max_ps(m, _mm256_loadu_ps(s + i));
		const __m256 max = _mm256_set1_ps(hmax8(m));
		double sum = 0;
		for (uint32_t i = 0; i < nk8; i += 8) {
			__m256 e = exp256(
				_mm256_sub_ps(_mm256_loadu_ps(s + i), max));
			_mm256_storeu_ps(s + i, e);
			sum += (double)hsum8(e);
		}
		const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
		for (uint32_t i = 0; i < nk8; i += 8) {
			__m256 p = _mm256_mul_ps(_mm256_loadu_ps(s + i), inv);
			_mm256_storeu_ps(s + i, f16 ? round8(p) : p);
		}
	}
	for (uint32_t c0 = 0; c0 < d; c0 += 32) {
		uint32_t r = 0;
		for (; r + 2 <= a->n_rows; r += 2)
			values_nv(a, 2, r, c0, f16);
		if (r < a->n_rows)
			values_nv(a, 1, r, c0, f16);
	}
}

static void attn_f16(const struct slm_attn_args *a)
{
	attn_body(a, true);
}

static void attn_f32(const struct slm_attn_args *a)
{
	attn_body(a, false);
}

static void swiglu(int64_t n, float *g, const float *u)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	int64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 x = _mm256_loadu_ps(g + i);
		__m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
		__m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
		_mm256_storeu_ps(g + i,
				 _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
	}
	for (; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void to_f16(int64_t n, const float *x, uint16_t *y)
{
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(y + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
						 _MM_FROUND_TO_NEAREST_INT |
							 _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		y[i] = (uint16_t)_mm_extract_epi16(
			_mm_cvtps_ph(_mm_set_ss(x[i]),
				     _MM_FROUND_TO_NEAREST_INT |
					     _MM_FROUND_NO_EXC),
			0);
}

void slm_fwd_kernels_avx2(struct slm_fwd_kernels *k)
{
	k->attn[SLM_KV_F16] = attn_f16;
	k->attn[SLM_KV_F32] = attn_f32;
	k->swiglu = swiglu;
	k->to_f16 = to_f16;
	k->simd = SLM_SIMD_AVX2;
}
