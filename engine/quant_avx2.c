/*
 * quant_avx2.c: the AVX2 tier (AVX2, FMA, F16C), for x86 servers without
 * AVX-512.
 *
 * The same plan as quant_avx512.c with 256-bit registers and without
 * VNNI: a block of 32 weights is unpacked into one ymm of u8 in element
 * order, VPMADDUBSW multiplies it with the activation's s8 into int16
 * pairs (no overflow: u8 <= 63, |s8| <= 127), VPMADDWD sums the pairs
 * into int32 (with ones, or with the sub-block scales of the K-quants).
 * Offsets (Q4_0 -8, Q5_0 -16) subtract offset * (activation sums), which
 * depend on the activations only; Q8_0 weights are signed, so their dot
 * uses the sign trick (|w| times a with w's sign).  Tiles are up to 4
 * weight rows by 2 activation rows (16 ymm registers).
 */
#include <immintrin.h>
#include <stdbool.h>

#include "engine/quant_int.h"

#define INLINE static inline __attribute__((always_inline))
#define MR 4
#define NR 2

/*
 * Prefetch the same bytes one row (or 2 KiB, in whole rows) further: the
 * matmul driver reads one row after the other, and the hardware
 * prefetcher alone leaves decode latency-bound (see quant_avx512.c).
 */
INLINE void prefetch_row_ahead(const uint8_t *p, size_t ws, int bytes)
{
	size_t d = ws >= 2048 || ws == 0 ? ws : (2048 / ws + 1) * ws;
	for (int o = 0; o < bytes; o += 64)
		_mm_prefetch((const char *)(p + d + o), _MM_HINT_T0);
}

INLINE float h2f(slm_fp16 h)
{
	return _cvtsh_ss(h);
}

INLINE float hsum8(__m256 v)
{
	__m128 r = _mm_add_ps(_mm256_castps256_ps128(v),
			      _mm256_extractf128_ps(v, 1));
	r = _mm_add_ps(r, _mm_movehl_ps(r, r));
	r = _mm_add_ss(r, _mm_movehdup_ps(r));
	return _mm_cvtss_f32(r);
}

INLINE int hsum_i32(__m256i v)
{
	__m128i r = _mm_add_epi32(_mm256_castsi256_si128(v),
				  _mm256_extracti128_si256(v, 1));
	r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
	r = _mm_add_epi32(r, _mm_shuffle_epi32(r, _MM_SHUFFLE(2, 3, 0, 1)));
	return _mm_cvtsi128_si32(r);
}

/* ---- activation quantizers ------------------------------------------- */

INLINE float amax_32(const float *x)
{
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
	m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8)));
	m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 16)));
	m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 24)));
	__m128 r = _mm_max_ps(_mm256_castps256_ps128(m),
			      _mm256_extractf128_ps(m, 1));
	r = _mm_max_ps(r, _mm_movehl_ps(r, r));
	r = _mm_max_ss(r, _mm_movehdup_ps(r));
	return _mm_cvtss_f32(r);
}

/* 32 floats times id, rounded half to even, packed to int8; returns the
 * sum of the 32 int8. */
INLINE int q8_32(const float *x, float id, int8_t *q)
{
	const __m256 m = _mm256_set1_ps(id);
	__m256i i0 = _mm256_cvtps_epi32(
		_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x), m),
				_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	__m256i i1 = _mm256_cvtps_epi32(
		_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8), m),
				_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	__m256i i2 = _mm256_cvtps_epi32(
		_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 16), m),
				_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	__m256i i3 = _mm256_cvtps_epi32(
		_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 24), m),
				_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
	int sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(i0, i1),
					    _mm256_add_epi32(i2, i3)));
	/* packs work within 128-bit lanes; the permute restores order */
	__m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1),
				       _mm256_packs_epi32(i2, i3));
	p = _mm256_permutevar8x32_epi32(
		p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
	_mm256_storeu_si256((__m256i *)q, p);
	return sum;
}

static void act_q8_0(const float *x, void *vy, int64_t n)
{
	struct block_q8_0 *y = vy;
	for (int64_t i = 0; i < n / 32; i++, x += 32) {
		float amax = amax_32(x);
		y[i].d = slm_f32_to_fp16(amax / 127.f);
		q8_32(x, amax != 0.0f ? 127.f / amax : 0.0f, y[i].qs);
	}
}

static void act_q8_1(const float *x, void *vy, int64_t n)
{
	struct block_q8_1 *y = vy;
	for (int64_t i = 0; i < n / 32; i++, x += 32) {
		float amax = amax_32(x);
		float d = amax / 127.f;
		y[i].d = slm_f32_to_fp16(d);
		int sum = q8_32(x, amax != 0.0f ? 127.f / amax : 0.0f, y[i].qs);
		y[i].s = slm_f32_to_fp16(d * (float)sum);
	}
}

static void act_q8_K(const float *x, void *vy, int64_t n)
{
	struct block_q8_K *y = vy;
	const __m256 sign = _mm256_set1_ps(-0.0f);
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		__m256 mx = _mm256_setzero_ps();
		for (int j = 0; j < QK_K; j += 8)
			mx = _mm256_max_ps(
				mx,
				_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
		__m128 r = _mm_max_ps(_mm256_castps256_ps128(mx),
				      _mm256_extractf128_ps(mx, 1));
		r = _mm_max_ps(r, _mm_movehl_ps(r, r));
		r = _mm_max_ss(r, _mm_movehdup_ps(r));
		float amax = _mm_cvtss_f32(r);
		if (amax == 0.0f) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		/* the first value of largest magnitude, with its sign */
		float max = 0;
		const __m256 va = _mm256_set1_ps(amax);
		for (int j = 0; j < QK_K; j += 8) {
			int k = _mm256_movemask_ps(_mm256_cmp_ps(
				_mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)),
				va, _CMP_EQ_OQ));
			if (k) {
				max = x[j + __builtin_ctz((unsigned)k)];
				break;
			}
		}
		const float iscale = -127.f / max;
		const __m256 m = _mm256_set1_ps(iscale);
		const __m256i lim = _mm256_set1_epi32(127);
		for (int j = 0; j < QK_K; j += 16) {
			__m256i a = _mm256_min_epi32(
				_mm256_cvtps_epi32(_mm256_round_ps(
					_mm256_mul_ps(_mm256_loadu_ps(x + j),
						      m),
					_MM_FROUND_TO_NEAREST_INT |
						_MM_FROUND_NO_EXC)),
				lim);
			__m256i b = _mm256_min_epi32(
				_mm256_cvtps_epi32(_mm256_round_ps(
					_mm256_mul_ps(
						_mm256_loadu_ps(x + j + 8), m),
					_MM_FROUND_TO_NEAREST_INT |
						_MM_FROUND_NO_EXC)),
				lim);
			y[i].bsums[j / 16] =
				(int16_t)hsum_i32(_mm256_add_epi32(a, b));
			__m256i p = _mm256_packs_epi32(
				a, b); /* 0-3 8-11 4-7 12-15 */
			p = _mm256_permute4x64_epi64(p,
						     _MM_SHUFFLE(3, 1, 2, 0));
			__m128i q =
				_mm_packs_epi16(_mm256_castsi256_si128(p),
						_mm256_extracti128_si256(p, 1));
			_mm_storeu_si128((__m128i *)(y[i].qs + j), q);
		}
		y[i].d = 1 / iscale;
	}
}

static void act_f16(const float *x, void *vy, int64_t n)
{
	slm_fp16 *y = vy;
	int64_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(y + i),
				 _mm256_cvtps_ph(_mm256_loadu_ps(x + i),
						 _MM_FROUND_TO_NEAREST_INT |
							 _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		y[i] = slm_f32_to_fp16(x[i]);
}

static void act_bf16(const float *x, void *vy, int64_t n)
{
	slm_bf16 *y = vy;
	int64_t i = 0;
	const __m256i one = _mm256_set1_epi32(1),
		      bias = _mm256_set1_epi32(0x7fff);
	const __m256i absmask = _mm256_set1_epi32(0x7fffffff);
	const __m256i inf = _mm256_set1_epi32(0x7f800000);
	for (; i + 8 <= n; i += 8) {
		__m256i u = _mm256_loadu_si256((const __m256i *)(x + i));
		__m256i r = _mm256_srli_epi32(
			_mm256_add_epi32(
				u,
				_mm256_add_epi32(
					bias, _mm256_and_si256(
						      _mm256_srli_epi32(u, 16),
						      one))),
			16);
		__m256i nan =
			_mm256_cmpgt_epi32(_mm256_and_si256(u, absmask), inf);
		r = _mm256_blendv_epi8(r,
				       _mm256_or_si256(_mm256_srli_epi32(u, 16),
						       _mm256_set1_epi32(0x40)),
				       nan);
		__m128i lo = _mm256_castsi256_si128(r);
		__m128i hi = _mm256_extracti128_si256(r, 1);
		_mm_storeu_si128((__m128i *)(y + i), _mm_packus_epi32(lo, hi));
	}
	for (; i < n; i++)
		y[i] = slm_f32_to_bf16(x[i]);
}

static void act_f32(const float *x, void *y, int64_t n)
{
	memcpy(y, x, (size_t)n * sizeof(float));
}

/* ---- tile frame ------------------------------------------------------- */

#define TILE_CASE(K, R, C)                                                     \
	case (R)*8 + (C):                                                      \
		K(n, (const uint8_t *)w, ws, (const uint8_t *)a, as, s, ss, R, \
		  C);                                                          \
		break;
#define TILE_FN(name, K)                                              \
	static void name(int64_t n, const void *w, size_t ws, int nr, \
			 const void *a, size_t as, int nc, float *s,  \
			 size_t ss)                                   \
	{                                                             \
		switch (nr * 8 + nc) {                                \
			TILE_CASE(K, 1, 1)                            \
			TILE_CASE(K, 1, 2)                            \
			TILE_CASE(K, 2, 1)                            \
			TILE_CASE(K, 2, 2)                            \
			TILE_CASE(K, 3, 1)                            \
			TILE_CASE(K, 3, 2)                            \
			TILE_CASE(K, 4, 1)                            \
			TILE_CASE(K, 4, 2)                            \
		default:                                              \
			break;                                        \
		}                                                     \
	}

#define DOT_FROM_TILE(name, tile)                                  \
	static float name(int64_t n, const void *w, const void *a) \
	{                                                          \
		float s;                                           \
		tile(n, w, 0, 1, a, 0, 1, &s, 1);                  \
		return s;                                          \
	}

INLINE void tile_store(__m256 acc[MR][NR], int nr, int nc, float *s, size_t ss)
{
#pragma GCC unroll 2
	for (int c = 0; c < nc; c++)
#pragma GCC unroll 4
		for (int r = 0; r < nr; r++)
			s[(size_t)c * ss + (size_t)r] = hsum8(acc[r][c]);
}

/* ---- legacy formats, one block of 32 per step ------------------------ */

/* 16 bytes of nibbles -> 32 u8 in element order (low nibbles first). */
INLINE __m256i nibbles32(const uint8_t *q)
{
	__m128i t = _mm_loadu_si128((const __m128i *)q);
	__m256i b = _mm256_set_m128i(_mm_srli_epi16(t, 4), t);
	return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 32 bits -> 32 bytes, 0x10 where the bit is set. */
INLINE __m256i bits_to_0x10(const uint8_t *p)
{
	uint32_t x;
	memcpy(&x, p, 4);
	const __m256i shuf = _mm256_set_epi64x(
		0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0);
	__m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
	const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
	b = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
	return _mm256_and_si256(b, _mm256_set1_epi8(0x10));
}

/* int32 lanes of the dot of u8 u with s8 a (pairs cannot overflow). */
INLINE __m256i dot_u8s8(__m256i u, __m256i a)
{
	return _mm256_madd_epi16(_mm256_maddubs_epi16(u, a),
				 _mm256_set1_epi16(1));
}

/* A legacy weight block: u8 values, scale, min (Q4_1/Q5_1). */
struct lw {
	__m256i u;
	float d, m;
};

/* An activation block: s8 values, -offset * sum in int32 lanes (so that
 * the lanes add up to it), scale, s (Q8_1). */
struct la {
	__m256i q;
	__m256i init;
	float d, s;
};

INLINE struct lw dec_q4_0(const uint8_t *p)
{
	const struct block_q4_0 *b = (const void *)p;
	return (struct lw){nibbles32(b->qs), h2f(b->d), 0};
}

INLINE struct lw dec_q4_1(const uint8_t *p)
{
	const struct block_q4_1 *b = (const void *)p;
	return (struct lw){nibbles32(b->qs), h2f(b->d), h2f(b->m)};
}

INLINE struct lw dec_q5_0(const uint8_t *p)
{
	const struct block_q5_0 *b = (const void *)p;
	return (struct lw){
		_mm256_or_si256(nibbles32(b->qs), bits_to_0x10(b->qh)),
		h2f(b->d), 0};
}

INLINE struct lw dec_q5_1(const uint8_t *p)
{
	const struct block_q5_1 *b = (const void *)p;
	return (struct lw){
		_mm256_or_si256(nibbles32(b->qs), bits_to_0x10(b->qh)),
		h2f(b->d), h2f(b->m)};
}

INLINE struct la prep_q8_0(const uint8_t *p, int o)
{
	const struct block_q8_0 *b = (const void *)p;
	struct la a;
	a.q = _mm256_loadu_si256((const __m256i *)b->qs);
	a.init = _mm256_setzero_si256();
	if (o)
		a.init = _mm256_sub_epi32(
			a.init, dot_u8s8(_mm256_set1_epi8((char)o), a.q));
	a.d = h2f(b->d);
	a.s = 0;
	return a;
}

INLINE struct la prep_q8_1(const uint8_t *p, int o)
{
	const struct block_q8_1 *b = (const void *)p;
	(void)o;
	struct la a;
	a.q = _mm256_loadu_si256((const __m256i *)b->qs);
	a.init = _mm256_setzero_si256();
	a.d = h2f(b->d);
	a.s = h2f(b->s);
	return a;
}

#define LEG_KERNEL(NAME, DEC, PREP, WBS, ABS, OFF, WITH_MIN)                   \
	INLINE void NAME(int64_t n, const uint8_t *w, size_t ws,               \
			 const uint8_t *a, size_t as, float *s, size_t ss,     \
			 const int nr, const int nc)                           \
	{                                                                      \
		__m256 acc[MR][NR];                                            \
		float mins[MR][NR];                                            \
		_Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)           \
			_Pragma("GCC unroll 2") for (int c = 0; c < nc; c++)   \
		{                                                              \
			acc[r][c] = _mm256_setzero_ps();                       \
			mins[r][c] = 0;                                        \
		}                                                              \
		for (int64_t i = 0; i < n / 32; i++) {                         \
			struct la av[NR];                                      \
			_Pragma("GCC unroll 2") for (int c = 0; c < nc; c++)   \
				av[c] = PREP(a + c * as + i * (ABS), OFF);     \
			_Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)   \
			{                                                      \
				prefetch_row_ahead(w + r * ws + i * (WBS), ws, \
						   WBS);                       \
				struct lw wv = DEC(w + r * ws + i * (WBS));    \
				_Pragma("GCC unroll 2") for (int c = 0;        \
							     c < nc; c++)      \
				{                                              \
					__m256i d = _mm256_add_epi32(          \
						av[c].init,                    \
						dot_u8s8(wv.u, av[c].q));      \
					acc[r][c] = _mm256_fmadd_ps(           \
						_mm256_cvtepi32_ps(d),         \
						_mm256_set1_ps(wv.d *          \
							       av[c].d),       \
						acc[r][c]);                    \
					if (WITH_MIN)                          \
						mins[r][c] += wv.m * av[c].s;  \
				}                                              \
			}                                                      \
		}                                                              \
		_Pragma("GCC unroll 2") for (int c = 0; c < nc; c++)           \
			_Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)   \
				s[(size_t)c * ss + (size_t)r] =                \
					hsum8(acc[r][c]) + mins[r][c];         \
	}

LEG_KERNEL(k_q4_0, dec_q4_0, prep_q8_0, 18, 34, 8, false)
LEG_KERNEL(k_q4_1, dec_q4_1, prep_q8_1, 20, 36, 0, true)
LEG_KERNEL(k_q5_0, dec_q5_0, prep_q8_0, 22, 34, 16, false)
LEG_KERNEL(k_q5_1, dec_q5_1, prep_q8_1, 24, 36, 0, true)

/* Q8_0 x Q8_0: signed weights, by the sign trick. */
INLINE void k_q8_0(int64_t n, const uint8_t *w, size_t ws, const uint8_t *a,
		   size_t as, float *s, size_t ss, const int nr, const int nc)
{
	__m256 acc[MR][NR];
#pragma GCC unroll 4
	for (int r = 0; r < nr; r++)
#pragma GCC unroll 2
		for (int c = 0; c < nc; c++)
			acc[r][c] = _mm256_setzero_ps();
	for (int64_t i = 0; i < n / 32; i++) {
		__m256i aq[NR];
		float ad[NR];
#pragma GCC unroll 2
		for (int c = 0; c < nc; c++) {
			const struct block_q8_0 *b =
				(const void *)(a + c * as + i * 34);
			aq[c] = _mm256_loadu_si256((const __m256i *)b->qs);
			ad[c] = h2f(b->d);
		}
#pragma GCC unroll 4
		for (int r = 0; r < nr; r++) {
			const struct block_q8_0 *b =
				(const void *)(w + r * ws + i * 34);
			prefetch_row_ahead((const uint8_t *)b, ws, 34);
			__m256i q = _mm256_loadu_si256((const __m256i *)b->qs);
			__m256i aw = _mm256_sign_epi8(q, q);
			float d = h2f(b->d);
#pragma GCC unroll 2
			for (int c = 0; c < nc; c++) {
				__m256i sy = _mm256_sign_epi8(aq[c], q);
				acc[r][c] = _mm256_fmadd_ps(
					_mm256_cvtepi32_ps(dot_u8s8(aw, sy)),
					_mm256_set1_ps(d * ad[c]), acc[r][c]);
			}
		}
	}
	tile_store(acc, nr, nc, s, ss);
}

/* ---- K-quants, a superblock of 8 x 32 per step -------------------------- */

/*
 * A superblock is unpacked one vector of 32 values at a time (AVX2 has 16
 * registers: holding all eight would spill): kunpack(k) gives u8 values
 * 32k..32k+31 in element order and the int16 scale of each byte pair.
 * Per superblock: value = d * sc * u - dm * mc, mc per group of 16 being
 * the minimum (Q2_K Q4_K Q5_K, dm = dmin) or offset * scale (Q3_K Q6_K,
 * dm = d).
 */
struct khead {
	/* scales as int16, both 128-bit lanes holding scales 0-7 (slo) or
	 * 8-15 (shi); Q4_K/Q5_K have 8 scales (one per 32), in slo */
	__m256i slo, shi;
	__m256i mc; /* 16 x int16 */
	float d, dm;
};

/* 16 int8 scales -> the two duplicated-lane int16 vectors of a head. */
INLINE void head_scales16(__m128i sc8, struct khead *h)
{
	__m256i s = _mm256_cvtepi8_epi16(sc8);
	h->slo = _mm256_permute2x128_si256(s, s, 0x00);
	h->shi = _mm256_permute2x128_si256(s, s, 0x11);
}

/* The 8 scales and 8 mins of a Q4_K/Q5_K block as bytes 0-7 of two xmm
 * (built in registers: small stores read back wider stall on store
 * forwarding). */
INLINE void k4_scales_avx2(const uint8_t *q, __m128i *sc, __m128i *m)
{
	uint32_t a[3];
	memcpy(a, q, 12);
	uint32_t s_lo = a[0] & 0x3f3f3f3f;
	uint32_t s_hi = (a[2] & 0x0f0f0f0f) | ((a[0] >> 2) & 0x30303030);
	uint32_t m_lo = a[1] & 0x3f3f3f3f;
	uint32_t m_hi = ((a[2] >> 4) & 0x0f0f0f0f) | ((a[1] >> 2) & 0x30303030);
	*sc = _mm_set_epi32(0, 0, (int)s_hi, (int)s_lo);
	*m = _mm_set_epi32(0, 0, (int)m_hi, (int)m_lo);
}

INLINE void head_k4(const uint8_t *scales, slm_fp16 d, slm_fp16 dmin,
		    struct khead *h)
{
	__m128i sc, m;
	k4_scales_avx2(scales, &sc, &m);
	__m256i s16 = _mm256_cvtepu8_epi16(sc);
	h->slo = _mm256_permute2x128_si256(s16, s16, 0x00);
	h->shi = h->slo;
	h->mc = _mm256_cvtepu8_epi16(
		_mm_shuffle_epi8(m, _mm_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4,
						  5, 5, 6, 6, 7, 7)));
	h->d = h2f(d);
	h->dm = h2f(dmin);
}

INLINE void head_q4_K(const struct block_q4_K *b, struct khead *h)
{
	head_k4(b->scales, b->d, b->dmin, h);
}

INLINE void head_q5_K(const struct block_q5_K *b, struct khead *h)
{
	head_k4(b->scales, b->d, b->dmin, h);
}

INLINE void head_q6_K(const struct block_q6_K *b, struct khead *h)
{
	head_scales16(_mm_loadu_si128((const __m128i *)b->scales), h);
	h->mc = _mm256_slli_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128(
					  (const __m128i *)b->scales)),
				  5);
	h->d = h2f(b->d);
	h->dm = h->d;
}

INLINE void head_q3_K(const struct block_q3_K *b, struct khead *h)
{
	/* the 16 6-bit scales (stored + 32): low 4 bits in bytes 0-7, high
	 * 2 bits in bytes 8-11 (as quant_avx512.c's q3k_scales16) */
	uint32_t a[3];
	memcpy(a, b->scales, 12);
	const uint32_t m2 = 0x03030303, m4 = 0x0f0f0f0f;
	/* built in registers: four 4-byte stores read back as one 16-byte
	 * load would stall on store forwarding */
	__m128i u = _mm_set_epi32(
		(int)(((a[1] >> 4) & m4) | (((a[2] >> 6) & m2) << 4)),
		(int)(((a[0] >> 4) & m4) | (((a[2] >> 4) & m2) << 4)),
		(int)((a[1] & m4) | (((a[2] >> 2) & m2) << 4)),
		(int)((a[0] & m4) | ((a[2] & m2) << 4)));
	__m128i sc = _mm_sub_epi8(u, _mm_set1_epi8(32));
	head_scales16(sc, h);
	h->mc = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc), 2);
	h->d = h2f(b->d);
	h->dm = h->d;
}

INLINE void head_q2_K(const struct block_q2_K *b, struct khead *h)
{
	__m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
	head_scales16(_mm_and_si128(s8, _mm_set1_epi8(0x0F)), h);
	h->mc = _mm256_cvtepu8_epi16(
		_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
	h->d = h2f(b->d);
	h->dm = h2f(b->dmin);
}

/* Vector k (values 32k..32k+31) of each format. */
INLINE __m256i unpack_q4_K(const struct block_q4_K *b, int k)
{
	__m256i z = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (k / 2)));
	if (k % 2)
		z = _mm256_srli_epi16(z, 4);
	return _mm256_and_si256(z, _mm256_set1_epi8(0x0F));
}

INLINE __m256i unpack_q5_K(const struct block_q5_K *b, int k)
{
	__m256i z = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * (k / 2)));
	if (k % 2)
		z = _mm256_srli_epi16(z, 4);
	z = _mm256_and_si256(z, _mm256_set1_epi8(0x0F));
	__m256i qh = _mm256_loadu_si256((const __m256i *)b->qh);
	__m256i bit = _mm256_set1_epi8((char)(1 << k));
	__m256i hb = _mm256_and_si256(
		_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit),
		_mm256_set1_epi8(0x10));
	return _mm256_or_si256(z, hb);
}

INLINE __m256i unpack_q6_K(const struct block_q6_K *b, int k)
{
	int h = k / 4, q = k % 4;
	__m256i ql = _mm256_loadu_si256(
		(const __m256i *)(b->ql + 64 * h + 32 * (q & 1)));
	if (q >= 2)
		ql = _mm256_srli_epi16(ql, 4);
	__m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
	if (q)
		qh = _mm256_srli_epi16(qh, 2 * q);
	return _mm256_or_si256(
		_mm256_and_si256(ql, _mm256_set1_epi8(0x0F)),
		_mm256_slli_epi16(_mm256_and_si256(qh, _mm256_set1_epi8(0x03)),
				  4));
}

INLINE __m256i unpack_q3_K(const struct block_q3_K *b, int k)
{
	int h = k / 4, s = k % 4;
	__m256i qs = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
	if (s)
		qs = _mm256_srli_epi16(qs, 2 * s);
	__m256i low = _mm256_and_si256(qs, _mm256_set1_epi8(0x03));
	__m256i hm = _mm256_loadu_si256((const __m256i *)b->hmask);
	__m256i bit = _mm256_set1_epi8((char)(1 << (4 * h + s)));
	__m256i hi = _mm256_and_si256(
		_mm256_cmpeq_epi8(_mm256_and_si256(hm, bit), bit),
		_mm256_set1_epi8(0x04));
	return _mm256_or_si256(low, hi);
}

INLINE __m256i unpack_q2_K(const struct block_q2_K *b, int k)
{
	int h = k / 4, s = k % 4;
	__m256i qs = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * h));
	if (s)
		qs = _mm256_srli_epi16(qs, 2 * s);
	return _mm256_and_si256(qs, _mm256_set1_epi8(0x03));
}

/* Scale vector of vector k: one scale per 32 (K4) or two per 16. */
INLINE __m256i scale_k4(const struct khead *h, int k)
{
	const char lo = (char)(2 * k), hi = (char)(2 * k + 1);
	return _mm256_shuffle_epi8(
		h->slo,
		_mm256_setr_epi8(lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi,
				 lo, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi,
				 lo, hi, lo, hi, lo, hi, lo, hi));
}

/* Scale 2k for the first 16 values (low lane), 2k+1 for the next. */
INLINE __m256i scale_16(const struct khead *h, int k)
{
	const char a = (char)(2 * ((2 * k) % 8)), b = (char)(a + 1);
	const char c = (char)(2 * ((2 * k + 1) % 8)), d = (char)(c + 1);
	return _mm256_shuffle_epi8(k < 4 ? h->slo : h->shi,
				   _mm256_setr_epi8(a, b, a, b, a, b, a, b, a,
						    b, a, b, a, b, a, b, c, d,
						    c, d, c, d, c, d, c, d, c,
						    d, c, d, c, d));
}

#define K_KERNEL(NAME, WT, HEAD, UNPACK, SCALE)                                                        \
	INLINE void NAME(int64_t n, const uint8_t *w, size_t ws,                                       \
			 const uint8_t *a, size_t as, float *s, size_t ss,                             \
			 const int nr, const int nc)                                                   \
	{                                                                                              \
		__m256 acc[MR][NR];                                                                    \
		_Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)                                   \
			_Pragma("GCC unroll 2") for (int c = 0; c < nc; c++)                           \
				acc[r][c] = _mm256_setzero_ps();                                       \
		for (int64_t i = 0; i < n / QK_K; i++) {                                               \
			_Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)                           \
			{                                                                              \
				const WT *b = (const WT *)(w + r * ws) + i;                            \
				prefetch_row_ahead((const uint8_t *)b, ws,                             \
						   (int)sizeof(WT));                                   \
				struct khead hd;                                                       \
				HEAD(b, &hd);                                                          \
				const struct block_q8_K *ab[NR];                                       \
				__m256i t[NR];                                                         \
				_Pragma("GCC unroll 2") for (int c = 0;                                \
							     c < nc; c++)                              \
				{                                                                      \
					ab[c] = (const struct block_q8_K                               \
							 *)(a + c * as) +                              \
						i;                                                     \
					t[c] = _mm256_setzero_si256();                                 \
				}                                                                      \
				_Pragma("GCC unroll 8") for (int k = 0; k < 8;                         \
							     k++)                                      \
				{                                                                      \
					__m256i u = UNPACK(b, k);                                      \
					__m256i sc = SCALE(&hd, k);                                    \
					_Pragma("GCC unroll 2") for (                                  \
						int c = 0; c < nc; c++) t[c] =                         \
						_mm256_add_epi32(                                      \
							t[c],                                          \
							_mm256_madd_epi16(                             \
								_mm256_maddubs_epi16(                  \
									u,                             \
									_mm256_loadu_si256((           \
										const __m256i          \
											*)(ab[c]->qs + \
											   32 * k))),  \
								sc));                                  \
				}                                                                      \
				_Pragma("GCC unroll 2") for (int c = 0;                                \
							     c < nc; c++)                              \
				{                                                                      \
					__m256i m = _mm256_madd_epi16(                                 \
						_mm256_loadu_si256(                                    \
							(const __m256i *)ab[c]                         \
								->bsums),                              \
						hd.mc);                                                \
					acc[r][c] = _mm256_fmadd_ps(                                   \
						_mm256_cvtepi32_ps(t[c]),                              \
						_mm256_set1_ps(hd.d *                                  \
							       ab[c]->d),                              \
						acc[r][c]);                                            \
					acc[r][c] = _mm256_fnmadd_ps(                                  \
						_mm256_cvtepi32_ps(m),                                 \
						_mm256_set1_ps(hd.dm *                                 \
							       ab[c]->d),                              \
						acc[r][c]);                                            \
				}                                                                      \
			}                                                                              \
		}                                                                                      \
		tile_store(acc, nr, nc, s, ss);                                                        \
	}

K_KERNEL(k_q2_K, struct block_q2_K, head_q2_K, unpack_q2_K, scale_16)
K_KERNEL(k_q3_K, struct block_q3_K, head_q3_K, unpack_q3_K, scale_16)
K_KERNEL(k_q4_K, struct block_q4_K, head_q4_K, unpack_q4_K, scale_k4)
K_KERNEL(k_q5_K, struct block_q5_K, head_q5_K, unpack_q5_K, scale_k4)
K_KERNEL(k_q6_K, struct block_q6_K, head_q6_K, unpack_q6_K, scale_16)

/* ---- float formats ---------------------------------------------------- */

INLINE __m256 ld_f32(const uint8_t *p)
{
	return _mm256_loadu_ps((const float *)(const void *)p);
}

INLINE __m256 ld_f16(const uint8_t *p)
{
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

INLINE __m256 ld_bf16(const uint8_t *p)
{
	return _mm256_castsi256_ps(_mm256_slli_epi32(
		_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)),
		16));
}

static slm_vec_dot_fn tail_f32, tail_f16, tail_bf16;

#define F_KERNEL(NAME, LOAD, ESZ, TAIL)                                        \
	INLINE void NAME(int64_t n, const uint8_t *w, size_t ws,               \
			 const uint8_t *a, size_t as, float *s, size_t ss,     \
			 const int nr, const int nc)                           \
	{                                                                      \
		__m256 acc[MR][NR];                                            \
		_Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)           \
			_Pragma("GCC unroll 2") for (int c = 0; c < nc; c++)   \
				acc[r][c] = _mm256_setzero_ps();               \
		const int64_t steps = n / 8;                                   \
		for (int64_t i = 0; i < steps; i++) {                          \
			__m256 av[NR];                                         \
			_Pragma("GCC unroll 2") for (int c = 0; c < nc; c++)   \
				av[c] = LOAD(a + c * as + i * 8 * (ESZ));      \
			_Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)   \
			{                                                      \
				prefetch_row_ahead(w + r * ws + i * 8 * (ESZ), \
						   ws, 8 * (ESZ));             \
				__m256 wv = LOAD(w + r * ws + i * 8 * (ESZ));  \
				_Pragma("GCC unroll 2") for (int c = 0;        \
							     c < nc;           \
							     c++) acc[r][c] =  \
					_mm256_fmadd_ps(wv, av[c], acc[r][c]); \
			}                                                      \
		}                                                              \
		_Pragma("GCC unroll 2") for (int c = 0; c < nc; c++)           \
			_Pragma("GCC unroll 4") for (int r = 0; r < nr; r++)   \
		{                                                              \
			float v = hsum8(acc[r][c]);                            \
			if (steps * 8 < n)                                     \
				v += TAIL(n - steps * 8,                       \
					  w + r * ws + steps * 8 * (ESZ),      \
					  a + c * as + steps * 8 * (ESZ));     \
			s[(size_t)c * ss + (size_t)r] = v;                     \
		}                                                              \
	}

F_KERNEL(k_f32, ld_f32, 4, tail_f32)
F_KERNEL(k_f16, ld_f16, 2, tail_f16)
F_KERNEL(k_bf16, ld_bf16, 2, tail_bf16)

TILE_FN(tile_q4_0, k_q4_0)
TILE_FN(tile_q4_1, k_q4_1)
TILE_FN(tile_q5_0, k_q5_0)
TILE_FN(tile_q5_1, k_q5_1)
TILE_FN(tile_q8_0, k_q8_0)
TILE_FN(tile_q2_K, k_q2_K)
TILE_FN(tile_q3_K, k_q3_K)
TILE_FN(tile_q4_K, k_q4_K)
TILE_FN(tile_q5_K, k_q5_K)
TILE_FN(tile_q6_K, k_q6_K)
TILE_FN(tile_f32, k_f32)
TILE_FN(tile_f16, k_f16)
TILE_FN(tile_bf16, k_bf16)

DOT_FROM_TILE(dot_q4_0, tile_q4_0)
DOT_FROM_TILE(dot_q4_1, tile_q4_1)
DOT_FROM_TILE(dot_q5_0, tile_q5_0)
DOT_FROM_TILE(dot_q5_1, tile_q5_1)
DOT_FROM_TILE(dot_q8_0, tile_q8_0)
DOT_FROM_TILE(dot_q2_K, tile_q2_K)
DOT_FROM_TILE(dot_q3_K, tile_q3_K)
DOT_FROM_TILE(dot_q4_K, tile_q4_K)
DOT_FROM_TILE(dot_q5_K, tile_q5_K)
DOT_FROM_TILE(dot_q6_K, tile_q6_K)
DOT_FROM_TILE(dot_f32, tile_f32)
DOT_FROM_TILE(dot_f16, tile_f16)
DOT_FROM_TILE(dot_bf16, tile_bf16)

static void set_kernels(struct slm_quant_traits *t, enum slm_dtype type,
			slm_vec_dot_fn dot, slm_gemm_fn tile)
{
	t[type].vec_dot = dot;
	t[type].gemm = tile;
	t[type].gemm_mr = MR;
	t[type].gemm_nr = NR;
	t[type].simd = SLM_SIMD_AVX2;
}

void slm_quant_tier_avx2(struct slm_quant_traits *t)
{
	tail_f32 = t[SLM_DTYPE_F32].vec_dot;
	tail_f16 = t[SLM_DTYPE_F16].vec_dot;
	tail_bf16 = t[SLM_DTYPE_BF16].vec_dot;

	t[SLM_DTYPE_Q8_0].from_float = act_q8_0;
	t[SLM_DTYPE_Q8_1].from_float = act_q8_1;
	t[SLM_DTYPE_Q8_K].from_float = act_q8_K;
	t[SLM_DTYPE_F16].from_float = act_f16;
	t[SLM_DTYPE_BF16].from_float = act_bf16;
	t[SLM_DTYPE_F32].from_float = act_f32;
	t[SLM_DTYPE_Q8_1].simd = SLM_SIMD_AVX2;
	t[SLM_DTYPE_Q8_K].simd = SLM_SIMD_AVX2;

	set_kernels(t, SLM_DTYPE_Q4_0, dot_q4_0, tile_q4_0);
	set_kernels(t, SLM_DTYPE_Q4_1, dot_q4_1, tile_q4_1);
	set_kernels(t, SLM_DTYPE_Q5_0, dot_q5_0, tile_q5_0);
	set_kernels(t, SLM_DTYPE_Q5_1, dot_q5_1, tile_q5_1);
	set_kernels(t, SLM_DTYPE_Q8_0, dot_q8_0, tile_q8_0);
	set_kernels(t, SLM_DTYPE_Q2_K, dot_q2_K, tile_q2_K);
	set_kernels(t, SLM_DTYPE_Q3_K, dot_q3_K, tile_q3_K);
	set_kernels(t, SLM_DTYPE_Q4_K, dot_q4_K, tile_q4_K);
	set_kernels(t, SLM_DTYPE_Q5_K, dot_q5_K, tile_q5_K);
	set_kernels(t, SLM_DTYPE_Q6_K, dot_q6_K, tile_q6_K);
	set_kernels(t, SLM_DTYPE_F32, dot_f32, tile_f32);
	set_kernels(t, SLM_DTYPE_F16, dot_f16, tile_f16);
	set_kernels(t, SLM_DTYPE_BF16, dot_bf16, tile_bf16);
}
