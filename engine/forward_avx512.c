/*
 * forward_avx512.c: the forward pass's kernels for AVX-512 (F, BW, VL,
 * DQ; the Makefile's avx512 tier).
 *
 * Attention works on chunks of 16 positions: the transposed K of a block
 * (kv.h) gives, per head element e, the 16 keys' element e as one vector,
 * so a chunk's 16 scores for a query row are 16-lane multiply-adds of a
 * broadcast q[e] with those vectors: no horizontal sums.  Every query
 * row of a tile (up to 16) shares each key load.  Values are accumulated
 * per row in registers over 64 head elements (4 vectors) at a time, 6
 * rows sharing each value load.
 */
#include <immintrin.h>
#include <math.h>

#include "engine/forward_int.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/*
 * e^x, within 2 ulp on [-87.3, 88]: x = n ln2 + r with |r| <= ln2/2
 * (ln2 in two parts, Cody and Waite), e^r by the Cephes expf polynomial,
 * times 2^n through the exponent bits.  Below -87.3 (including -inf) the
 * result is 0; above 88 it is e^88.
 */
static ALWAYS_INLINE __m512 exp512(__m512 x)
{
	const __m512 lo = _mm512_set1_ps(-87.3f);
	__mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
	x = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0f));
	__m512 n = _mm512_roundscale_ps(
		_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
		_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.9875691500E-4f);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507E-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073E-3f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894E-2f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459E-1f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201E-1f));
	p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r),
			    _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
	__m512i e = _mm512_slli_epi32(
		_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)),
		23);
	__m512 v = _mm512_mul_ps(p, _mm512_castsi512_ps(e));
	return _mm512_maskz_mov_ps((__mmask16)~under, v);
}

static ALWAYS_INLINE __m512 load16(const void *p, bool f16)
{
	return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p))
		   : _mm512_loadu_ps(p);
}

static ALWAYS_INLINE __m512 round16(__m512 x)
{
	return _mm512_cvtph_ps(_mm512_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT |
							  _MM_FROUND_NO_EXC));
}

/* Scores of R rows (from r0) for the 16 keys at kt (element e of key j at
 * kt[e * nb + j]), scaled and masked, into s[r][k0 .. k0 + 16). */
static ALWAYS_INLINE void scores_rows(const struct slm_attn_args *a, int R,
				      uint32_t r0, const uint8_t *kt, size_t nb,
				      uint32_t k0, bool f16)
{
	const uint32_t d = a->head_dim;
	const size_t elt = f16 ? 2 : 4;
	__m512 acc[16];
#pragma GCC unroll 16
	for (int r = 0; r < R; r++)
		acc[r] = _mm512_setzero_ps();
	const float *q = a->q + (size_t)r0 * d;
#pragma GCC unroll 2
	for (uint32_t e = 0; e < d; e++) {
		__m512 k = load16(kt + (size_t)e * nb * elt, f16);
#pragma GCC unroll 16
		for (int r = 0; r < R; r++)
			acc[r] = _mm512_fmadd_ps(
				_mm512_set1_ps(q[(size_t)r * d + e]), k,
				acc[r]);
	}
	const __m512 scale = _mm512_set1_ps(a->scale);
	const __m512 ninf = _mm512_set1_ps(-INFINITY);
	const __m512i lane =
		_mm512_add_epi32(_mm512_set1_epi32((int)k0),
				 _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
						   10, 11, 12, 13, 14, 15));
#pragma GCC unroll 16
	for (int r = 0; r < R; r++) {
		__mmask16 ok = _mm512_cmplt_epu32_mask(
			lane, _mm512_set1_epi32((int)a->n_keys[r0 + r]));
		__m512 s = _mm512_mask_mul_ps(ninf, ok, acc[r], scale);
		_mm512_storeu_ps(a->s + (size_t)(r0 + r) * a->s_stride + k0, s);
	}
}

/* out rows r0 .. r0 + R, head elements [c0, c0 + 16 NV). */
static ALWAYS_INLINE void values_rows(const struct slm_attn_args *a, int R,
				      int NV, uint32_t r0, uint32_t c0,
				      bool f16)
{
	const struct slm_kv_pool *kv = a->kv;
	const uint32_t d = a->head_dim, nb = kv->p.block_tokens;
	const size_t elt = f16 ? 2 : 4;
	__m512 acc[6][4];
#pragma GCC unroll 6
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int j = 0; j < NV; j++)
			acc[r][j] = _mm512_setzero_ps();
	for (uint32_t k0 = 0; k0 < a->max_keys; k0 += nb) {
		const uint8_t *v =
			(const uint8_t *)slm_kv_v(kv, a->blocks[k0 / nb],
						  a->layer, a->head) +
			(size_t)c0 * elt;
		uint32_t n = a->max_keys - k0 < nb ? a->max_keys - k0 : nb;
		for (uint32_t i = 0; i < n; i++) {
			__m512 vv[4];
#pragma GCC unroll 4
			for (int j = 0; j < NV; j++)
				vv[j] = load16(v + ((size_t)i * d + 16 * j) *
							       elt,
					       f16);
#pragma GCC unroll 6
			for (int r = 0; r < R; r++) {
				__m512 p = _mm512_set1_ps(
					a->s[(size_t)(r0 + r) * a->s_stride +
					     k0 + i]);
#pragma GCC unroll 4
				for (int j = 0; j < NV; j++)
					acc[r][j] = _mm512_fmadd_ps(p, vv[j],
								    acc[r][j]);
			}
		}
	}
#pragma GCC unroll 6
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int j = 0; j < NV; j++)
			_mm512_storeu_ps(a->out[r0 + r] + c0 + 16 * j,
					 acc[r][j]);
}

static ALWAYS_INLINE void values_nv(const struct slm_attn_args *a, int R,
				    uint32_t r0, uint32_t c0, bool f16)
{
	switch ((a->head_dim - c0) / 16) {
	case 1:
		values_rows(a, R, 1, r0, c0, f16);
		break;
	case 2:
		values_rows(a, R, 2, r0, c0, f16);
		break;
	case 3:
		values_rows(a, R, 3, r0, c0, f16);
		break;
	default:
		values_rows(a, R, 4, r0, c0, f16);
		break;
	}
}

/* Scores of every row of the tile (n_rows <= 16) for 16 keys: one pass
 * over K whatever the row count, each key vector feeding every row. */
static ALWAYS_INLINE void scores_all(const struct slm_attn_args *a,
				     const uint8_t *kt, size_t nb, uint32_t k0,
				     bool f16)
{
	switch (a->n_rows) {
#define ROWS(n)                                        \
	case n:                                        \
		scores_rows(a, n, 0, kt, nb, k0, f16); \
		break;
		ROWS(1)
		ROWS(2)
		ROWS(3)
		ROWS(4)
		ROWS(5)
		ROWS(6)
		ROWS(7)
		ROWS(8)
		ROWS(9)
		ROWS(10)
		ROWS(11)
		ROWS(12)
		ROWS(13)
		ROWS(14)
		ROWS(15)
	default:
		scores_rows(a, 16, 0, kt, nb, k0, f16);
		break;
#undef ROWS
	}
}

static ALWAYS_INLINE void attn_body(const struct slm_attn_args *a, bool f16)
{
	const struct slm_kv_pool *kv = a->kv;
	const uint32_t d = a->head_dim, nb = kv->p.block_tokens;
	const size_t elt = f16 ? 2 : 4;
	if (f16)
		for (size_t i = 0; i < (size_t)a->n_rows * d; i += 16)
			_mm512_storeu_ps(a->q + i,
					 round16(_mm512_loadu_ps(a->q + i)));
	/* scores, 16 keys at a time */
	for (uint32_t k0 = 0; k0 < a->max_keys; k0 += 16) {
		const uint8_t *kt =
			(const uint8_t *)slm_kv_k(kv, a->blocks[k0 / nb],
						  a->layer, a->head) +
			(size_t)(k0 % nb) * elt;
		uint32_t r = 0;
		for (; r + 8 <= a->n_rows; r += 8)
			scores_rows(a, 8, r, kt, nb, k0, f16);
		switch (a->n_rows - r) {
		case 7:
			scores_rows(a, 7, r, kt, nb, k0, f16);
			break;
		case 6:
			scores_rows(a, 6, r, kt, nb, k0, f16);
			break;
		case 5:
			scores_rows(a, 5, r, kt, nb, k0, f16);
			break;
		case 4:
			scores_rows(a, 4, r, kt, nb, k0, f16);
			break;
		case 3:
			scores_rows(a, 3, r, kt, nb, k0, f16);
			break;
		case 2:
			scores_rows(a, 2, r, kt, nb, k0, f16);
			break;
		case 1:
			scores_rows(a, 1, r, kt, nb, k0, f16);
			break;
		default:
			break;
		}
	}
	/* softmax per row; masked scores are -inf and give 0 */
	const uint32_t nk16 = (a->max_keys + 15) & ~15u;
	for (uint32_t r = 0; r < a->n_rows; r++) {
		float *s = a->s + (size_t)r * a->s_stride;
		__m512 m = _mm512_set1_ps(-INFINITY);
		for (uint32_t i = 0; i < nk16; i += 16)
			m = _mm512_max_ps(m, _mm512_loadu_ps(s + i));
		const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
		/* the sum in double, as ggml takes it (in another order) */
		__m512d sum2 = _mm512_setzero_pd();
		for (uint32_t i = 0; i < nk16; i += 16) {
			__m512 e = exp512(
				_mm512_sub_ps(_mm512_loadu_ps(s + i), max));
			_mm512_storeu_ps(s + i, e);
			sum2 = _mm512_add_pd(
				sum2,
				_mm512_cvtps_pd(_mm512_castps512_ps256(e)));
			sum2 = _mm512_add_pd(
				sum2,
				_mm512_cvtps_pd(
					_mm256_castpd_ps(_mm512_extractf64x4_pd(
						_mm512_castps_pd(e), 1))));
		}
		const double sum = _mm512_reduce_add_pd(sum2);
		const __m512 inv = _mm512_set1_ps((float)(1.0 / sum));
		for (uint32_t i = 0; i < nk16; i += 16) {
			__m512 p = _mm512_mul_ps(_mm512_loadu_ps(s + i), inv);
			_mm512_storeu_ps(s + i, f16 ? round16(p) : p);
		}
	}
	/* values */
	for (uint32_t c0 = 0; c0 < d; c0 += 64) {
		uint32_t r = 0;
		for (; r + 6 <= a->n_rows; r += 6)
			values_nv(a, 6, r, c0, f16);
		switch (a->n_rows - r) {
		case 5:
			values_nv(a, 5, r, c0, f16);
			break;
		case 4:
			values_nv(a, 4, r, c0, f16);
			break;
		case 3:
			values_nv(a, 3, r, c0, f16);
			break;
		case 2:
			values_nv(a, 2, r, c0, f16);
			break;
		case 1:
			values_nv(a, 1, r, c0, f16);
			break;
		default:
			break;
		}
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
	const __m512 one = _mm512_set1_ps(1.0f);
	int64_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 x = _mm512_loadu_ps(g + i);
		__m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
		__m512 s = _mm512_div_ps(x, _mm512_add_ps(one, e));
		_mm512_storeu_ps(g + i,
				 _mm512_mul_ps(s, _mm512_loadu_ps(u + i)));
	}
	for (; i < n; i++)
		g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void to_f16(int64_t n, const float *x, uint16_t *y)
{
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *)(y + i),
				    _mm512_cvtps_ph(_mm512_loadu_ps(x + i),
						    _MM_FROUND_TO_NEAREST_INT |
							    _MM_FROUND_NO_EXC));
	for (; i < n; i++) {
		__m128 v = _mm_set_ss(x[i]);
		y[i] = (uint16_t)_mm_extract_epi16(
			_mm_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT |
						_MM_FROUND_NO_EXC),
			0);
	}
}

void slm_fwd_kernels_avx512(struct slm_fwd_kernels *k)
{
	k->attn[SLM_KV_F16] = attn_f16;
	k->attn[SLM_KV_F32] = attn_f32;
	k->swiglu = swiglu;
	k->to_f16 = to_f16;
	k->simd = SLM_SIMD_AVX512;
}
