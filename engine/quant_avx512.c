/*
 * quant_avx512.c: the AVX-512 tier (F, BW, VL, DQ, CD, VNNI; BF16 where
 * the CPU has it, through a target attribute).
 *
 * Every quantized dot product here has the same shape: the weights of a
 * group of blocks are unpacked into unsigned bytes (u8) in zmm registers,
 * the activations into signed bytes arranged to match, and VPDPBUSD sums
 * byte products into int32 lanes exactly.  What differs between formats:
 *
 *   legacy (Q4_0 Q4_1 Q5_0 Q5_1), 4 blocks of 32 at a time: `lo` holds
 *     values 0..15 of the 4 blocks, `hi` values 16..31, so int32 lane
 *     4k..4k+3 belongs to block k; a format with an offset (Q4_0: q - 8,
 *     Q5_0: q - 16) starts the sum at -offset * (activation sums), which
 *     depend on the activations only; then one float multiply-add by the
 *     two scales per lane.  Q4_1/Q5_1 add min * s per block.
 *   Q8_0, 2 blocks per zmm in file order: the weights are signed, so the
 *     activations are made unsigned (a + 128) and the sum starts at
 *     -128 * (weight sums).
 *   K-quants, a superblock of 256 at a time: four zmm of u8 weights, each
 *     multiplied with VPMADDUBSW into int16 pairs, then VPDPWSSD with the
 *     sub-block scales (int16 per pair) into int32; one float
 *     multiply-add per superblock with d, and the minimum (or the offset
 *     of Q3_K and Q6_K) through the activation's bsums.
 *
 * Tiles: up to 4 weight rows by 4 activation rows, with the 16 sums in
 * registers; a row's weights are unpacked once per group and used for
 * every activation row, an activation group is arranged once and used for
 * every weight row.  GEMV is the 4 x 1 tile.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "engine/matmul_int.h"
#include "engine/quant_int.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- helpers --------------------------------------------------------- */

INLINE __m512i bcast8(int v)
{
	return _mm512_set1_epi8((char)v);
}

/* fp16 words of a group picked by idx from the 128 bytes at p (bytes
 * beyond `avail` are not read), converted to 16 floats. */
INLINE __m512 fp16_pick(const uint8_t *p, size_t avail, __m512i idx)
{
	__m512i z0 = _mm512_loadu_si512(p);
	__mmask64 m = avail >= 128
			      ? ~0ull
			      : (avail <= 64 ? 0 : (~0ull >> (128 - avail)));
	__m512i z1 = _mm512_maskz_loadu_epi8(m, p + 64);
	__m512i w = _mm512_permutex2var_epi16(z0, idx, z1);
	return _mm512_cvtph_ps(_mm512_castsi512_si256(w));
}

/* Word indices (0..63) repeated 4 times each: word i*step+off for i=0..3. */
INLINE __m512i idx_x4(int step, int off)
{
	return _mm512_set_epi16(
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		(short)(3 * step + off), (short)(3 * step + off),
		(short)(3 * step + off), (short)(3 * step + off),
		(short)(2 * step + off), (short)(2 * step + off),
		(short)(2 * step + off), (short)(2 * step + off),
		(short)(step + off), (short)(step + off), (short)(step + off),
		(short)(step + off), (short)off, (short)off, (short)off,
		(short)off);
}

/* As fp16_pick with idx_x4, but only lane 4i kept (the others zero). */
INLINE __m512 fp16_pick_first(const uint8_t *p, size_t avail, int step, int off)
{
	__m512 v = fp16_pick(p, avail, idx_x4(step, off));
	return _mm512_maskz_mov_ps(0x1111, v);
}

/*
 * A tile streams NR weight rows at once, and the hardware prefetcher,
 * which follows a stream only within a 4 KiB page, loses them at every
 * page crossing: decode ran at a third of the core's read bandwidth.  So
 * while a tile reads its rows, it prefetches the same bytes of the rows
 * of the next tile (the rows ws * NR further), `bytes` at a time.
 */
INLINE void prefetch_next(const uint8_t *p, size_t ahead, int bytes)
{
	for (int o = 0; o < bytes; o += 64)
		_mm_prefetch((const char *)(p + ahead + o), _MM_HINT_T0);
}

/* At least 2 KiB ahead (about the bytes in flight that cover the memory
 * latency at one core's bandwidth), in whole rows. */
INLINE size_t prefetch_distance(size_t ws, int NR)
{
	size_t d = ws * (size_t)NR;
	return d >= 2048 || ws == 0 ? d : (2048 / ws + 1) * ws;
}

INLINE float h2f(slm_fp16 h)
{
	return _cvtsh_ss(h);
}

INLINE float hsum(__m512 v)
{
	return _mm512_reduce_add_ps(v);
}

/* ---- activation quantizers ------------------------------------------- */

/* 32 floats -> 32 int8 with id, round half to even; returns the sum. */
INLINE int q8_32(const float *x, float id, int8_t *q)
{
	__m512 m = _mm512_set1_ps(id);
	__m512i a = _mm512_cvt_roundps_epi32(
		_mm512_mul_ps(_mm512_loadu_ps(x), m),
		_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512i b = _mm512_cvt_roundps_epi32(
		_mm512_mul_ps(_mm512_loadu_ps(x + 16), m),
		_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	_mm_storeu_si128((__m128i *)q, _mm512_cvtepi32_epi8(a));
	_mm_storeu_si128((__m128i *)(q + 16), _mm512_cvtepi32_epi8(b));
	return _mm512_reduce_add_epi32(_mm512_add_epi32(a, b));
}

INLINE float amax_32(const float *x)
{
	__m512 a = _mm512_abs_ps(_mm512_loadu_ps(x));
	__m512 b = _mm512_abs_ps(_mm512_loadu_ps(x + 16));
	return _mm512_reduce_max_ps(_mm512_max_ps(a, b));
}

static void act_q8_0(const float *x, void *vy, int64_t n)
{
	struct block_q8_0 *y = vy;
	for (int64_t i = 0; i < n / 32; i++, x += 32) {
		float amax = amax_32(x);
		float d = amax / 127.f;
		float id = amax != 0.0f ? 127.f / amax : 0.0f;
		y[i].d = slm_f32_to_fp16(d);
		q8_32(x, id, y[i].qs);
	}
}

static void act_q8_1(const float *x, void *vy, int64_t n)
{
	struct block_q8_1 *y = vy;
	for (int64_t i = 0; i < n / 32; i++, x += 32) {
		float amax = amax_32(x);
		float d = amax / 127.f;
		float id = amax != 0.0f ? 127.f / amax : 0.0f;
		y[i].d = slm_f32_to_fp16(d);
		int sum = q8_32(x, id, y[i].qs);
		y[i].s = slm_f32_to_fp16(d * (float)sum);
	}
}

/* The reference Q8_K: iscale = -127 / (the first value of largest
 * magnitude), q = round-half-even(iscale * x), at most 127. */
static void act_q8_K(const float *x, void *vy, int64_t n)
{
	struct block_q8_K *y = vy;
	for (int64_t i = 0; i < n / QK_K; i++, x += QK_K) {
		__m512 mx = _mm512_setzero_ps();
		for (int j = 0; j < QK_K; j += 16)
			mx = _mm512_max_ps(
				mx, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
		float amax = _mm512_reduce_max_ps(mx);
		if (amax == 0.0f) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		__m512 va = _mm512_set1_ps(amax);
		float max = 0;
		for (int j = 0; j < QK_K; j += 16) {
			__m512 v = _mm512_loadu_ps(x + j);
			__mmask16 k = _mm512_cmp_ps_mask(_mm512_abs_ps(v), va,
							 _CMP_EQ_OQ);
			if (k) {
				max = x[j + __builtin_ctz(k)];
				break;
			}
		}
		const float iscale = -127.f / max;
		__m512 m = _mm512_set1_ps(iscale);
		__m512i lim = _mm512_set1_epi32(127);
		for (int j = 0; j < QK_K; j += 16) {
			__m512i q = _mm512_cvt_roundps_epi32(
				_mm512_mul_ps(_mm512_loadu_ps(x + j), m),
				_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
			q = _mm512_min_epi32(q, lim);
			_mm_storeu_si128((__m128i *)(y[i].qs + j),
					 _mm512_cvtepi32_epi8(q));
			y[i].bsums[j / 16] =
				(int16_t)_mm512_reduce_add_epi32(q);
		}
		y[i].d = 1 / iscale;
	}
}

static void act_f16(const float *x, void *vy, int64_t n)
{
	slm_fp16 *y = vy;
	int64_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm256_storeu_si256((__m256i *)(y + i),
				    _mm512_cvtps_ph(_mm512_loadu_ps(x + i),
						    _MM_FROUND_TO_NEAREST_INT |
							    _MM_FROUND_NO_EXC));
	for (; i < n; i++)
		y[i] = slm_f32_to_fp16(x[i]);
}

/* Round to nearest even in integer arithmetic (as the scalar version:
 * no flush of subnormals, NaN kept quiet). */
static void act_bf16(const float *x, void *vy, int64_t n)
{
	slm_bf16 *y = vy;
	int64_t i = 0;
	const __m512i one = _mm512_set1_epi32(1),
		      bias = _mm512_set1_epi32(0x7fff);
	const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
	const __m512i inf = _mm512_set1_epi32(0x7f800000);
	for (; i + 16 <= n; i += 16) {
		__m512i u = _mm512_loadu_si512(x + i);
		__m512i r = _mm512_add_epi32(
			u,
			_mm512_add_epi32(
				bias, _mm512_and_si512(_mm512_srli_epi32(u, 16),
						       one)));
		r = _mm512_srli_epi32(r, 16);
		__mmask16 nan = _mm512_cmpgt_epi32_mask(
			_mm512_and_si512(u, absmask), inf);
		r = _mm512_mask_mov_epi32(
			r, nan,
			_mm512_or_si512(_mm512_srli_epi32(u, 16),
					_mm512_set1_epi32(0x40)));
		_mm256_storeu_si256((__m256i *)(y + i),
				    _mm512_cvtepi32_epi16(r));
	}
	for (; i < n; i++)
		y[i] = slm_f32_to_bf16(x[i]);
}

static void act_f32(const float *x, void *y, int64_t n)
{
	memcpy(y, x, (size_t)n * sizeof(float));
}

/* ---- tiles: the common frame ----------------------------------------- */

/*
 * KERNEL(NR, NC) is an always-inline function of the tile; TILE_FN makes
 * the out-of-line function that picks the instance for (nr, nc).
 */
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
			TILE_CASE(K, 1, 3)                            \
			TILE_CASE(K, 1, 4)                            \
			TILE_CASE(K, 2, 1)                            \
			TILE_CASE(K, 2, 2)                            \
			TILE_CASE(K, 2, 3)                            \
			TILE_CASE(K, 2, 4)                            \
			TILE_CASE(K, 3, 1)                            \
			TILE_CASE(K, 3, 2)                            \
			TILE_CASE(K, 3, 3)                            \
			TILE_CASE(K, 3, 4)                            \
			TILE_CASE(K, 4, 1)                            \
			TILE_CASE(K, 4, 2)                            \
			TILE_CASE(K, 4, 3)                            \
			TILE_CASE(K, 4, 4)                            \
		default:                                              \
			break;                                        \
		}                                                     \
	}

/* Store the tile's sums, adding the scalar dot of a tail the vector loop
 * left (n not a multiple of its group), for which `tail_dot` is given. */
INLINE void tile_store(__m512 acc[4][4], int NR, int NC, float *s, size_t ss,
		       int64_t n, int64_t done, const uint8_t *w, size_t ws,
		       const uint8_t *a, size_t as, size_t wdone, size_t adone,
		       slm_vec_dot_fn tail_dot)
{
#pragma GCC unroll 4
	for (int c = 0; c < NC; c++)
#pragma GCC unroll 4
		for (int r = 0; r < NR; r++) {
			float v = hsum(acc[r][c]);
			if (done < n)
				v += tail_dot(n - done, w + r * ws + wdone,
					      a + c * as + adone);
			s[(size_t)c * ss + (size_t)r] = v;
		}
}

/* ---- legacy formats: 4 blocks (128 values) per step ------------------ */

struct leg_w {
	__m512i lo, hi; /* u8: values 0..15 / 16..31 of 4 blocks */
	__m512 d;	/* scale of block k in lanes 4k..4k+3 */
	__m512 m;	/* min of block k in lane 4k (Q4_1/Q5_1) */
};

struct leg_a {
	__m512i lo, hi; /* s8, arranged as the weights */
	__m512i init;	/* -offset * sums of 4 bytes (offset formats) */
	__m512 d;	/* activation scale of block k in lanes 4k.. */
	__m512 s;	/* Q8_1's s of block k in lanes 4k.. */
};

/* qs of 4 blocks of `bs` bytes (qs at offset `off`) -> lo/hi nibbles. */
INLINE void nibbles4(const uint8_t *p, int bs, int off, __m512i *lo,
		     __m512i *hi)
{
	__m512i z = _mm512_castsi128_si512(
		_mm_loadu_si128((const __m128i *)(p + off)));
	z = _mm512_inserti32x4(
		z, _mm_loadu_si128((const __m128i *)(p + bs + off)), 1);
	z = _mm512_inserti32x4(
		z, _mm_loadu_si128((const __m128i *)(p + 2 * bs + off)), 2);
	z = _mm512_inserti32x4(
		z, _mm_loadu_si128((const __m128i *)(p + 3 * bs + off)), 3);
	const __m512i m4 = bcast8(0x0F);
	*lo = _mm512_and_si512(z, m4);
	*hi = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
}

/* The 5th bits of 4 Q5 blocks (qh u32 at offset `off`) into lo/hi. */
INLINE void fifth_bits4(const uint8_t *p, int bs, int off, __m512i *lo,
			__m512i *hi)
{
	uint64_t mlo = 0, mhi = 0;
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		uint32_t qh;
		memcpy(&qh, p + k * bs + off, 4);
		mlo |= (uint64_t)(qh & 0xffff) << (16 * k);
		mhi |= (uint64_t)(qh >> 16) << (16 * k);
	}
	const __m512i b4 = bcast8(0x10);
	*lo = _mm512_mask_add_epi8(*lo, mlo, *lo, b4);
	*hi = _mm512_mask_add_epi8(*hi, mhi, *hi, b4);
}

INLINE struct leg_w dec_q4_0(const uint8_t *p)
{
	struct leg_w w;
	nibbles4(p, 18, 2, &w.lo, &w.hi);
	w.d = fp16_pick(p, 72, idx_x4(9, 0));
	w.m = _mm512_setzero_ps();
	return w;
}

INLINE struct leg_w dec_q4_1(const uint8_t *p)
{
	struct leg_w w;
	nibbles4(p, 20, 4, &w.lo, &w.hi);
	w.d = fp16_pick(p, 80, idx_x4(10, 0));
	w.m = fp16_pick_first(p, 80, 10, 1);
	return w;
}

INLINE struct leg_w dec_q5_0(const uint8_t *p)
{
	struct leg_w w;
	nibbles4(p, 22, 6, &w.lo, &w.hi);
	fifth_bits4(p, 22, 2, &w.lo, &w.hi);
	w.d = fp16_pick(p, 88, idx_x4(11, 0));
	w.m = _mm512_setzero_ps();
	return w;
}

INLINE struct leg_w dec_q5_1(const uint8_t *p)
{
	struct leg_w w;
	nibbles4(p, 24, 8, &w.lo, &w.hi);
	fifth_bits4(p, 24, 4, &w.lo, &w.hi);
	w.d = fp16_pick(p, 96, idx_x4(12, 0));
	w.m = fp16_pick_first(p, 96, 12, 1);
	return w;
}

/* 4 activation blocks of `bs` bytes (qs at `off`), arranged as nibbles4
 * arranges the weights; offset o > 0 gives init = -o * sums. */
INLINE struct leg_a prep_leg(const uint8_t *p, int bs, int off, int o,
			     bool with_s)
{
	struct leg_a a;
	__m512i z01 = _mm512_inserti64x4(
		_mm512_castsi256_si512(
			_mm256_loadu_si256((const __m256i *)(p + off))),
		_mm256_loadu_si256((const __m256i *)(p + bs + off)), 1);
	__m512i z23 = _mm512_inserti64x4(
		_mm512_castsi256_si512(_mm256_loadu_si256(
			(const __m256i *)(p + 2 * bs + off))),
		_mm256_loadu_si256((const __m256i *)(p + 3 * bs + off)), 1);
	a.lo = _mm512_shuffle_i64x2(z01, z23, _MM_SHUFFLE(2, 0, 2, 0));
	a.hi = _mm512_shuffle_i64x2(z01, z23, _MM_SHUFFLE(3, 1, 3, 1));
	a.init = _mm512_setzero_si512();
	if (o) {
		__m512i c = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
						bcast8(o), a.lo);
		c = _mm512_dpbusd_epi32(c, bcast8(o), a.hi);
		a.init = _mm512_sub_epi32(_mm512_setzero_si512(), c);
	}
	a.d = fp16_pick(p, (size_t)(4 * bs), idx_x4(bs / 2, 0));
	a.s = with_s ? fp16_pick(p, (size_t)(4 * bs), idx_x4(bs / 2, 1))
		     : _mm512_setzero_ps();
	return a;
}

INLINE __m512 leg_core(struct leg_w w, struct leg_a a, __m512 acc,
		       bool with_min)
{
	__m512i i = _mm512_dpbusd_epi32(a.init, w.lo, a.lo);
	i = _mm512_dpbusd_epi32(i, w.hi, a.hi);
	acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i), _mm512_mul_ps(w.d, a.d),
			      acc);
	if (with_min)
		acc = _mm512_fmadd_ps(w.m, a.s, acc);
	return acc;
}

#define LEG_KERNEL(NAME, DEC, WBS, ABS, AOFF, OFF, WITH_MIN, TAIL)             \
	INLINE void NAME(int64_t n, const uint8_t *w, size_t ws,               \
			 const uint8_t *a, size_t as, float *s, size_t ss,     \
			 const int NR, const int NC)                           \
	{                                                                      \
		__m512 acc[4][4];                                              \
		const size_t pf = prefetch_distance(ws, NR);                   \
		_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)           \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
				acc[r][c] = _mm512_setzero_ps();               \
		const int64_t groups = n / 128;                                \
		for (int64_t g = 0; g < groups; g++) {                         \
			struct leg_a av[4];                                    \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
				av[c] = prep_leg(a + c * as + g * 4 * (ABS),   \
						 ABS, AOFF, OFF, WITH_MIN);    \
			_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)   \
			{                                                      \
				prefetch_next(w + r * ws + g * 4 * (WBS), pf,  \
					      4 * (WBS));                      \
				struct leg_w wv =                              \
					DEC(w + r * ws + g * 4 * (WBS));       \
				_Pragma("GCC unroll 4") for (int c = 0;        \
							     c < NC; c++)      \
					acc[r][c] =                            \
						leg_core(wv, av[c], acc[r][c], \
							 WITH_MIN);            \
			}                                                      \
		}                                                              \
		tile_store(acc, NR, NC, s, ss, n, groups * 128, w, ws, a, as,  \
			   (size_t)groups * 4 * (WBS),                         \
			   (size_t)groups * 4 * (ABS), TAIL);                  \
	}

/* ---- Q8_0: 4 blocks per step, 2 per zmm in file order ---------------- */

INLINE __m512i q8_pair(const uint8_t *p, int bs)
{
	return _mm512_inserti64x4(
		_mm512_castsi256_si512(
			_mm256_loadu_si256((const __m256i *)(p + 2))),
		_mm256_loadu_si256((const __m256i *)(p + bs + 2)), 1);
}

/* Word i*step for i = 0..3 repeated 8 times: lanes 0-7 block 0 ... for
 * the pair (first, first+1). */
INLINE __m512i idx_x8(int step, int first)
{
	short a = (short)(first * step), b = (short)((first + 1) * step);
	return _mm512_set_epi16(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
				b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a);
}

struct q8_w {
	__m512i q[2];	 /* s8: blocks 0,1 and 2,3 */
	__m512i init[2]; /* -128 * sums of 4 bytes */
	__m512 d[2];	 /* lanes 0-7: block 2j, 8-15: block 2j+1 */
};

struct q8_a {
	__m512i u[2]; /* activations + 128, as u8 */
	__m512 d[2];
};

INLINE struct q8_w dec_q8_0(const uint8_t *p)
{
	struct q8_w w;
#pragma GCC unroll 4
	for (int j = 0; j < 2; j++) {
		w.q[j] = q8_pair(p + 68 * j, 34);
		__m512i c = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
						bcast8(0x80), w.q[j]);
		w.init[j] = _mm512_sub_epi32(_mm512_setzero_si512(), c);
		w.d[j] = fp16_pick(p, 136, idx_x8(17, 2 * j));
	}
	return w;
}

INLINE struct q8_a prep_q8_0(const uint8_t *p)
{
	struct q8_a a;
#pragma GCC unroll 4
	for (int j = 0; j < 2; j++) {
		a.u[j] =
			_mm512_xor_si512(q8_pair(p + 68 * j, 34), bcast8(0x80));
		a.d[j] = fp16_pick(p, 136, idx_x8(17, 2 * j));
	}
	return a;
}

INLINE __m512 q8_core(struct q8_w w, struct q8_a a, __m512 acc)
{
#pragma GCC unroll 4
	for (int j = 0; j < 2; j++) {
		__m512i i = _mm512_dpbusd_epi32(w.init[j], a.u[j], w.q[j]);
		acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i),
				      _mm512_mul_ps(w.d[j], a.d[j]), acc);
	}
	return acc;
}

#define Q8_KERNEL(NAME, TAIL)                                                  \
	INLINE void NAME(int64_t n, const uint8_t *w, size_t ws,               \
			 const uint8_t *a, size_t as, float *s, size_t ss,     \
			 const int NR, const int NC)                           \
	{                                                                      \
		__m512 acc[4][4];                                              \
		const size_t pf = prefetch_distance(ws, NR);                   \
		_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)           \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
				acc[r][c] = _mm512_setzero_ps();               \
		const int64_t groups = n / 128;                                \
		for (int64_t g = 0; g < groups; g++) {                         \
			struct q8_a av[4];                                     \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
				av[c] = prep_q8_0(a + c * as + g * 136);       \
			_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)   \
			{                                                      \
				prefetch_next(w + r * ws + g * 136, pf, 136);  \
				struct q8_w wv =                               \
					dec_q8_0(w + r * ws + g * 136);        \
				_Pragma("GCC unroll 4") for (int c = 0;        \
							     c < NC; c++)      \
					acc[r][c] =                            \
						q8_core(wv, av[c], acc[r][c]); \
			}                                                      \
		}                                                              \
		tile_store(acc, NR, NC, s, ss, n, groups * 128, w, ws, a, as,  \
			   (size_t)groups * 136, (size_t)groups * 136, TAIL);  \
	}

/* ---- K-quants: one superblock per step -------------------------------- */

/*
 * A superblock of weights, unpacked: u[k] holds 64 u8 values, sc[k] the
 * int16 scale of each byte pair of u[k]; the value is
 *     d * sc * u  -  dm * mc,
 * where mc (per group of 16 values, int16) is the minimum (Q2_K Q4_K
 * Q5_K, with dm = dmin) or offset * scale (Q3_K Q6_K, with dm = d).
 */
struct k_w {
	__m512i u[4];
	__m512i sc[4];
	__m256i mc; /* 16 x int16 */
	float d, dm;
};

/* A superblock of activations in the order the weight format needs. */
struct k_a {
	__m512i q[4];
	__m256i bsums; /* 16 x int16 */
	float d;
};

/* Q8_K qs in file order (Q2_K Q3_K Q6_K). */
INLINE struct k_a prep_k_natural(const struct block_q8_K *b)
{
	struct k_a a;
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++)
		a.q[k] = _mm512_loadu_si512(b->qs + 64 * k);
	a.bsums = _mm256_loadu_si256((const __m256i *)b->bsums);
	a.d = b->d;
	return a;
}

/* Q8_K qs for Q4_K/Q5_K: u[0] = values 0-31 | 64-95, u[1] = 32-63 |
 * 96-127, u[2] = 128-159 | 192-223, u[3] = 160-191 | 224-255. */
INLINE struct k_a prep_k_nibble(const struct block_q8_K *b)
{
	struct k_a a;
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		int base = (k / 2) * 128 + (k % 2) * 32;
		a.q[k] = _mm512_inserti64x4(
			_mm512_castsi256_si512(_mm256_loadu_si256(
				(const __m256i *)(b->qs + base))),
			_mm256_loadu_si256(
				(const __m256i *)(b->qs + base + 64)),
			1);
	}
	a.bsums = _mm256_loadu_si256((const __m256i *)b->bsums);
	a.d = b->d;
	return a;
}

/*
 * int16 scale vector from 16 scales s[0..15] (int16 in a ymm) for a u
 * vector whose 32 pairs take scale s[i0] (pairs 0-7), s[i1] (8-15),
 * s[i2] (16-23), s[i3] (24-31).
 */
INLINE __m512i sc_pattern(__m256i s16, int i0, int i1, int i2, int i3)
{
	__m512i idx = _mm512_set_epi16(
		(short)i3, (short)i3, (short)i3, (short)i3, (short)i3,
		(short)i3, (short)i3, (short)i3, (short)i2, (short)i2,
		(short)i2, (short)i2, (short)i2, (short)i2, (short)i2,
		(short)i2, (short)i1, (short)i1, (short)i1, (short)i1,
		(short)i1, (short)i1, (short)i1, (short)i1, (short)i0,
		(short)i0, (short)i0, (short)i0, (short)i0, (short)i0,
		(short)i0, (short)i0);
	return _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(s16));
}

/* The 8 scales and 8 mins of a Q4_K/Q5_K block, as int16. */
INLINE void k4_scales(const uint8_t *q, __m256i *sc16, __m256i *m16)
{
	uint32_t a[3];
	memcpy(a, q, 12);
	/* scales j<4: a0 bytes & 63; j>=4: (a2 nibble) | (a0 >> 6) << 4 */
	uint32_t s_lo = a[0] & 0x3f3f3f3f;
	uint32_t s_hi = (a[2] & 0x0f0f0f0f) | ((a[0] >> 2) & 0x30303030);
	uint32_t m_lo = a[1] & 0x3f3f3f3f;
	uint32_t m_hi = ((a[2] >> 4) & 0x0f0f0f0f) | ((a[1] >> 2) & 0x30303030);
	__m128i s8 = _mm_set_epi32(0, 0, (int)s_hi, (int)s_lo);
	__m128i m8 = _mm_set_epi32(0, 0, (int)m_hi, (int)m_lo);
	*sc16 = _mm256_cvtepu8_epi16(s8);
	*m16 = _mm256_cvtepu8_epi16(m8);
}

INLINE struct k_w dec_q4_K(const struct block_q4_K *b)
{
	struct k_w w;
	const __m512i m4 = bcast8(0x0F);
#pragma GCC unroll 4
	for (int h = 0; h < 2; h++) {
		__m512i z = _mm512_loadu_si512(b->qs + 64 * h);
		w.u[2 * h] = _mm512_and_si512(z, m4);
		w.u[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
	}
	__m256i sc16, m16;
	k4_scales(b->scales, &sc16, &m16);
	/* u[0]: sub-blocks 0 (pairs 0-15) and 2; u[1]: 1, 3; u[2]: 4, 6;
	 * u[3]: 5, 7 */
	w.sc[0] = sc_pattern(sc16, 0, 0, 2, 2);
	w.sc[1] = sc_pattern(sc16, 1, 1, 3, 3);
	w.sc[2] = sc_pattern(sc16, 4, 4, 6, 6);
	w.sc[3] = sc_pattern(sc16, 5, 5, 7, 7);
	/* mins per group of 16: min of sub-block g/2 */
	w.mc = _mm256_permutexvar_epi16(_mm256_set_epi16(7, 7, 6, 6, 5, 5, 4, 4,
							 3, 3, 2, 2, 1, 1, 0,
							 0),
					m16);
	w.d = h2f(b->d);
	w.dm = h2f(b->dmin);
	return w;
}

INLINE struct k_w dec_q5_K(const struct block_q5_K *b)
{
	struct k_w w;
	const __m512i m4 = bcast8(0x0F);
#pragma GCC unroll 4
	for (int h = 0; h < 2; h++) {
		__m512i z = _mm512_loadu_si512(b->qs + 64 * h);
		w.u[2 * h] = _mm512_and_si512(z, m4);
		w.u[2 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(z, 4), m4);
	}
	/* high bit of value j of chunk c (64 values), half t (32): qh[j]
	 * bit 2c + t.  u[0] = chunk 0 t0 | chunk 1 t0: bits 0 and 2. */
	__m512i qh = _mm512_broadcast_i64x4(
		_mm256_loadu_si256((const __m256i *)b->qh));
	const __m512i b16 = bcast8(0x10);
	static const int bits[4][2] = {{0, 2}, {1, 3}, {4, 6}, {5, 7}};
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		__m512i sel = _mm512_inserti64x4(
			_mm512_castsi256_si512(
				_mm256_set1_epi8((char)(1 << bits[k][0]))),
			_mm256_set1_epi8((char)(1 << bits[k][1])), 1);
		__mmask64 hk = _mm512_test_epi8_mask(qh, sel);
		w.u[k] = _mm512_mask_add_epi8(w.u[k], hk, w.u[k], b16);
	}
	__m256i sc16, m16;
	k4_scales(b->scales, &sc16, &m16);
	w.sc[0] = sc_pattern(sc16, 0, 0, 2, 2);
	w.sc[1] = sc_pattern(sc16, 1, 1, 3, 3);
	w.sc[2] = sc_pattern(sc16, 4, 4, 6, 6);
	w.sc[3] = sc_pattern(sc16, 5, 5, 7, 7);
	w.mc = _mm256_permutexvar_epi16(_mm256_set_epi16(7, 7, 6, 6, 5, 5, 4, 4,
							 3, 3, 2, 2, 1, 1, 0,
							 0),
					m16);
	w.d = h2f(b->d);
	w.dm = h2f(b->dmin);
	return w;
}

INLINE struct k_w dec_q6_K(const struct block_q6_K *b)
{
	struct k_w w;
	const __m512i m4 = bcast8(0x0F), m2 = bcast8(0x03);
#pragma GCC unroll 4
	for (int h = 0; h < 2; h++) {
		__m512i ql = _mm512_loadu_si512(b->ql + 64 * h);
		__m512i qh = _mm512_broadcast_i64x4(
			_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
		/* values 0-63 of the half: low nibbles of ql, qh bits 0-1
		 * (first 32) and 2-3 (next 32); values 64-127: high
		 * nibbles, bits 4-5 and 6-7 */
		__m512i h0 = _mm512_srlv_epi16(
			qh, _mm512_inserti64x4(_mm512_setzero_si512(),
					       _mm256_set1_epi16(2), 1));
		__m512i h1 = _mm512_srlv_epi16(
			qh, _mm512_inserti64x4(_mm512_castsi256_si512(
						       _mm256_set1_epi16(4)),
					       _mm256_set1_epi16(6), 1));
		w.u[2 * h] = _mm512_or_si512(
			_mm512_and_si512(ql, m4),
			_mm512_slli_epi16(_mm512_and_si512(h0, m2), 4));
		w.u[2 * h + 1] = _mm512_or_si512(
			_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
			_mm512_slli_epi16(_mm512_and_si512(h1, m2), 4));
	}
	__m256i sc16 = _mm256_cvtepi8_epi16(
		_mm_loadu_si128((const __m128i *)b->scales));
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++)
		w.sc[k] = sc_pattern(sc16, 4 * k, 4 * k + 1, 4 * k + 2,
				     4 * k + 3);
	w.mc = _mm256_slli_epi16(sc16, 5); /* offset 32 */
	w.d = h2f(b->d);
	w.dm = w.d;
	return w;
}

/* The 16 signed 6-bit scales of a Q3_K block as int16: low 4 bits of
 * scale j in byte j%8 (low nibble for j<8, high for j>=8), high 2 bits in
 * byte 8 + j%4 at bit 2*(j/4); stored + 32. */
INLINE __m256i q3k_scales16(const uint8_t *q)
{
	uint32_t a[3];
	memcpy(a, q, 12);
	const uint32_t m2 = 0x03030303, m4 = 0x0f0f0f0f;
	uint32_t s0 = (a[0] & m4) | ((a[2] & m2) << 4);
	uint32_t s1 = (a[1] & m4) | (((a[2] >> 2) & m2) << 4);
	uint32_t s2 = ((a[0] >> 4) & m4) | (((a[2] >> 4) & m2) << 4);
	uint32_t s3 = ((a[1] >> 4) & m4) | (((a[2] >> 6) & m2) << 4);
	__m128i v = _mm_set_epi32((int)s3, (int)s2, (int)s1, (int)s0);
	return _mm256_sub_epi16(_mm256_cvtepu8_epi16(v), _mm256_set1_epi16(32));
}

INLINE struct k_w dec_q3_K(const struct block_q3_K *b)
{
	struct k_w w;
	const __m512i m2 = bcast8(0x03), b4 = bcast8(0x04);
	__m512i hm = _mm512_broadcast_i64x4(
		_mm256_loadu_si256((const __m256i *)b->hmask));
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		/* u[k]: values 64k .. 64k+63 = half k/2, runs s = 2(k%2),
		 * 2(k%2)+1 of 32: low bits (qs[l] >> 2s) & 3, high bit
		 * hmask[l] bit 4*half + s */
		int half = k / 2, s0 = 2 * (k % 2);
		__m512i qs = _mm512_broadcast_i64x4(_mm256_loadu_si256(
			(const __m256i *)(b->qs + 32 * half)));
		__m512i sh = _mm512_inserti64x4(
			_mm512_castsi256_si512(
				_mm256_set1_epi16((short)(2 * s0))),
			_mm256_set1_epi16((short)(2 * s0 + 2)), 1);
		__m512i low = _mm512_and_si512(_mm512_srlv_epi16(qs, sh), m2);
		__m512i sel = _mm512_inserti64x4(
			_mm512_castsi256_si512(
				_mm256_set1_epi8((char)(1 << (4 * half + s0)))),
			_mm256_set1_epi8((char)(1 << (4 * half + s0 + 1))), 1);
		__mmask64 hk = _mm512_test_epi8_mask(hm, sel);
		w.u[k] = _mm512_mask_add_epi8(low, hk, low, b4);
	}
	__m256i sc16 = q3k_scales16(b->scales);
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++)
		w.sc[k] = sc_pattern(sc16, 4 * k, 4 * k + 1, 4 * k + 2,
				     4 * k + 3);
	w.mc = _mm256_slli_epi16(sc16, 2); /* offset 4 */
	w.d = h2f(b->d);
	w.dm = w.d;
	return w;
}

INLINE struct k_w dec_q2_K(const struct block_q2_K *b)
{
	struct k_w w;
	const __m512i m2 = bcast8(0x03);
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		int half = k / 2, s0 = 2 * (k % 2);
		__m512i qs = _mm512_broadcast_i64x4(_mm256_loadu_si256(
			(const __m256i *)(b->qs + 32 * half)));
		__m512i sh = _mm512_inserti64x4(
			_mm512_castsi256_si512(
				_mm256_set1_epi16((short)(2 * s0))),
			_mm256_set1_epi16((short)(2 * s0 + 2)), 1);
		w.u[k] = _mm512_and_si512(_mm512_srlv_epi16(qs, sh), m2);
	}
	__m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
	__m256i sc16 =
		_mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F)));
	__m256i m16 = _mm256_cvtepu8_epi16(
		_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++)
		w.sc[k] = sc_pattern(sc16, 4 * k, 4 * k + 1, 4 * k + 2,
				     4 * k + 3);
	w.mc = m16;
	w.d = h2f(b->d);
	w.dm = h2f(b->dmin);
	return w;
}

INLINE __m512 k_core(const struct k_w *w, const struct k_a *a, __m512 acc)
{
	__m512i i = _mm512_setzero_si512();
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++)
		i = _mm512_dpwssd_epi32(
			i, _mm512_maddubs_epi16(w->u[k], a->q[k]), w->sc[k]);
	__m256i m = _mm256_madd_epi16(a->bsums, w->mc);
	acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(i),
			      _mm512_set1_ps(w->d * a->d), acc);
	acc = _mm512_fnmadd_ps(_mm512_zextps256_ps512(_mm256_cvtepi32_ps(m)),
			       _mm512_set1_ps(w->dm * a->d), acc);
	return acc;
}

#define K_KERNEL(NAME, WT, DEC, PREP)                                          \
	INLINE void NAME(int64_t n, const uint8_t *w, size_t ws,               \
			 const uint8_t *a, size_t as, float *s, size_t ss,     \
			 const int NR, const int NC)                           \
	{                                                                      \
		__m512 acc[4][4];                                              \
		const size_t pf = prefetch_distance(ws, NR);                   \
		_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)           \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
				acc[r][c] = _mm512_setzero_ps();               \
		const int64_t nb = n / QK_K;                                   \
		for (int64_t i = 0; i < nb; i++) {                             \
			struct k_a av[4];                                      \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC;        \
						     c++) av[c] =              \
				PREP((const struct block_q8_K *)(a + c * as) + \
				     i);                                       \
			_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)   \
			{                                                      \
				prefetch_next(w + r * ws + i * sizeof(WT), pf, \
					      (int)sizeof(WT));                \
				struct k_w wv =                                \
					DEC((const WT *)(w + r * ws) + i);     \
				_Pragma("GCC unroll 4") for (int c = 0;        \
							     c < NC;           \
							     c++) acc[r][c] =  \
					k_core(&wv, &av[c], acc[r][c]);        \
			}                                                      \
		}                                                              \
		_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)           \
			_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)   \
				s[(size_t)c * ss + (size_t)r] =                \
					hsum(acc[r][c]);                       \
	}

/* ---- float formats ---------------------------------------------------- */

INLINE __m512 load_f32(const uint8_t *p)
{
	return _mm512_loadu_ps(p);
}

INLINE __m512 load_f16(const uint8_t *p)
{
	return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}

INLINE __m512 load_bf16(const uint8_t *p)
{
	return _mm512_castsi512_ps(_mm512_slli_epi32(
		_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)),
		16));
}

#define F_KERNEL(NAME, LOAD, ESZ, TAIL)                                        \
	INLINE void NAME(int64_t n, const uint8_t *w, size_t ws,               \
			 const uint8_t *a, size_t as, float *s, size_t ss,     \
			 const int NR, const int NC)                           \
	{                                                                      \
		__m512 acc[4][4];                                              \
		const size_t pf = prefetch_distance(ws, NR);                   \
		_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)           \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
				acc[r][c] = _mm512_setzero_ps();               \
		const int64_t steps = n / 16;                                  \
		for (int64_t i = 0; i < steps; i++) {                          \
			__m512 av[4];                                          \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
				av[c] = LOAD(a + c * as + i * 16 * (ESZ));     \
			_Pragma("GCC unroll 4") for (int r = 0; r < NR; r++)   \
			{                                                      \
				prefetch_next(w + r * ws + i * 16 * (ESZ), pf, \
					      16 * (ESZ));                     \
				__m512 wv = LOAD(w + r * ws + i * 16 * (ESZ)); \
				_Pragma("GCC unroll 4") for (int c = 0;        \
							     c < NC;           \
							     c++) acc[r][c] =  \
					_mm512_fmadd_ps(wv, av[c], acc[r][c]); \
			}                                                      \
		}                                                              \
		tile_store(acc, NR, NC, s, ss, n, steps * 16, w, ws, a, as,    \
			   (size_t)steps * 16 * (ESZ),                         \
			   (size_t)steps * 16 * (ESZ), TAIL);                  \
	}

/* BF16 pairs with VDPBF16PS (32 products per instruction). */
__attribute__((target("avx512bf16"))) static void
tile_bf16_dp(int64_t n, const void *vw, size_t ws, int nr, const void *va,
	     size_t as, int nc, float *s, size_t ss)
{
	const uint8_t *w = vw, *a = va;
	for (int c = 0; c < nc; c++) {
		int r = 0;
		for (; r + 2 <= nr; r += 2) {
			__m512 acc0 = _mm512_setzero_ps(), acc1 = acc0;
			int64_t i = 0;
			for (; i + 32 <= n; i += 32) {
				__m512bh x = (__m512bh)_mm512_loadu_si512(
					a + c * as + 2 * i);
				acc0 = _mm512_dpbf16_ps(
					acc0,
					(__m512bh)_mm512_loadu_si512(
						w + r * ws + 2 * i),
					x);
				acc1 = _mm512_dpbf16_ps(
					acc1,
					(__m512bh)_mm512_loadu_si512(
						w + (r + 1) * ws + 2 * i),
					x);
			}
			float v0 = hsum(acc0), v1 = hsum(acc1);
			for (; i < n; i++) {
				float av = slm_bf16_to_f32(
					((const slm_bf16 *)(a + c * as))[i]);
				v0 += slm_bf16_to_f32(
					      ((const slm_bf16 *)(w +
								  r * ws))[i]) *
				      av;
				v1 += slm_bf16_to_f32(((
					      const slm_bf16 *)(w +
								(r +
								 1) * ws))[i]) *
				      av;
			}
			s[(size_t)c * ss + (size_t)r] = v0;
			s[(size_t)c * ss + (size_t)r + 1] = v1;
		}
		for (; r < nr; r++) {
			__m512 acc0 = _mm512_setzero_ps();
			int64_t i = 0;
			for (; i + 32 <= n; i += 32)
				acc0 = _mm512_dpbf16_ps(
					acc0,
					(__m512bh)_mm512_loadu_si512(
						w + r * ws + 2 * i),
					(__m512bh)_mm512_loadu_si512(
						a + c * as + 2 * i));
			float v0 = hsum(acc0);
			for (; i < n; i++)
				v0 += slm_bf16_to_f32(
					      ((const slm_bf16 *)(w +
								  r * ws))[i]) *
				      slm_bf16_to_f32(
					      ((const slm_bf16 *)(a +
								  c * as))[i]);
			s[(size_t)c * ss + (size_t)r] = v0;
		}
	}
}

static float dot_bf16_dp(int64_t n, const void *w, const void *a)
{
	float s;
	tile_bf16_dp(n, w, 0, 1, a, 0, 1, &s, 1);
	return s;
}

/* ---- GEMV with the activation prepared once ---------------------------- */

/*
 * One token: the activation's arranged form (what PREP makes per group)
 * is computed once into scratch and each weight row is then a single
 * stream decoded against it.  Rows are done one after the other (one
 * stream, prefetched a row ahead) rather than in tiles.
 */
#define GEMV_BODY(A_T, PREP_STMT, W_GROUP, A_GROUP, VALS, DEC_STMT, CORE_STMT, \
		  TAIL, NC)                                                    \
	{                                                                      \
		A_T *prep = scratch;                                           \
		const int64_t groups = n / (VALS);                             \
		_Pragma("GCC unroll 4") for (int c = 0; c < NC;                \
					     c++) for (int64_t g = 0;          \
						       g < groups; g++)        \
		{                                                              \
			const uint8_t *ap = a + c * as + g * (A_GROUP);        \
			PREP_STMT;                                             \
		}                                                              \
		const size_t pf = prefetch_distance(ws, 1);                    \
		for (int64_t r = 0; r < rows; r++) {                           \
			const uint8_t *row = w + (size_t)r * ws;               \
			__m512 acc[4];                                         \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
				acc[c] = _mm512_setzero_ps();                  \
			for (int64_t g = 0; g < groups; g++) {                 \
				const uint8_t *wp = row + g * (W_GROUP);       \
				prefetch_next(wp, pf, W_GROUP);                \
				DEC_STMT;                                      \
				_Pragma("GCC unroll 4") for (int c = 0;        \
							     c < NC; c++)      \
				{                                              \
					CORE_STMT;                             \
				}                                              \
			}                                                      \
			_Pragma("GCC unroll 4") for (int c = 0; c < NC; c++)   \
			{                                                      \
				float v = hsum(acc[c]);                        \
				if (groups * (VALS) < n)                       \
					v += TAIL(n - groups * (VALS),         \
						  row + groups * (W_GROUP),    \
						  a + c * as +                 \
							  groups * (A_GROUP)); \
				y[(size_t)c * ys + (size_t)r] = v;             \
			}                                                      \
		}                                                              \
	}

/*
 * NC = 1..4 tokens: the prepared activations of token c are prep[c *
 * groups + g].  y[c * ys + r] gets row r of token c.
 */
#define GEMV_FN(NAME, A_T, PREP_STMT, W_GROUP, A_GROUP, VALS, DEC_STMT,        \
		CORE_STMT, TAIL)                                               \
	static void NAME(int64_t n, const uint8_t *w, size_t ws, int64_t rows, \
			 const uint8_t *a, size_t as, int nc, float *y,        \
			 size_t ys, void *scratch)                             \
	{                                                                      \
		switch (nc) {                                                  \
		case 1:                                                        \
			GEMV_BODY(A_T, PREP_STMT, W_GROUP, A_GROUP, VALS,      \
				  DEC_STMT, CORE_STMT, TAIL, 1)                \
			break;                                                 \
		case 2:                                                        \
			GEMV_BODY(A_T, PREP_STMT, W_GROUP, A_GROUP, VALS,      \
				  DEC_STMT, CORE_STMT, TAIL, 2)                \
			break;                                                 \
		case 3:                                                        \
			GEMV_BODY(A_T, PREP_STMT, W_GROUP, A_GROUP, VALS,      \
				  DEC_STMT, CORE_STMT, TAIL, 3)                \
			break;                                                 \
		default:                                                       \
			GEMV_BODY(A_T, PREP_STMT, W_GROUP, A_GROUP, VALS,      \
				  DEC_STMT, CORE_STMT, TAIL, 4)                \
			break;                                                 \
		}                                                              \
	}

#define LEG_GEMV(NAME, DEC, WBS, ABS, AOFF, OFF, WITH_MIN, TAIL)               \
	GEMV_FN(NAME, struct leg_a,                                            \
		prep[c * groups + g] = prep_leg(ap, ABS, AOFF, OFF, WITH_MIN), \
		4 * (WBS), 4 * (ABS), 128, struct leg_w wv = DEC(wp),          \
		acc[c] = leg_core(wv, prep[c * groups + g], acc[c], WITH_MIN), \
		TAIL)

static float no_tail(int64_t n, const void *w, const void *a)
{
	(void)n;
	(void)w;
	(void)a;
	return 0;
}

/* ---- instances -------------------------------------------------------- */

/* Scalar dots for tails (set at tier fill time, from the scalar table). */
static slm_vec_dot_fn tail_q4_0, tail_q4_1, tail_q5_0, tail_q5_1, tail_q8_0,
	tail_f32, tail_f16, tail_bf16;

LEG_KERNEL(k_q4_0, dec_q4_0, 18, 34, 2, 8, false, tail_q4_0)
LEG_KERNEL(k_q4_1, dec_q4_1, 20, 36, 4, 0, true, tail_q4_1)
LEG_KERNEL(k_q5_0, dec_q5_0, 22, 34, 2, 16, false, tail_q5_0)
LEG_KERNEL(k_q5_1, dec_q5_1, 24, 36, 4, 0, true, tail_q5_1)
Q8_KERNEL(k_q8_0, tail_q8_0)
K_KERNEL(k_q2_K, struct block_q2_K, dec_q2_K, prep_k_natural)
K_KERNEL(k_q3_K, struct block_q3_K, dec_q3_K, prep_k_natural)
K_KERNEL(k_q4_K, struct block_q4_K, dec_q4_K, prep_k_nibble)
K_KERNEL(k_q5_K, struct block_q5_K, dec_q5_K, prep_k_nibble)
K_KERNEL(k_q6_K, struct block_q6_K, dec_q6_K, prep_k_natural)
F_KERNEL(k_f32, load_f32, 4, tail_f32)
F_KERNEL(k_f16, load_f16, 2, tail_f16)
F_KERNEL(k_bf16, load_bf16, 2, tail_bf16)

LEG_GEMV(gemv_q4_0, dec_q4_0, 18, 34, 2, 8, false, tail_q4_0)
LEG_GEMV(gemv_q4_1, dec_q4_1, 20, 36, 4, 0, true, tail_q4_1)
LEG_GEMV(gemv_q5_0, dec_q5_0, 22, 34, 2, 16, false, tail_q5_0)
LEG_GEMV(gemv_q5_1, dec_q5_1, 24, 36, 4, 0, true, tail_q5_1)
GEMV_FN(gemv_q8_0, struct q8_a, prep[c * groups + g] = prep_q8_0(ap), 136, 136,
	128, struct q8_w wv = dec_q8_0(wp),
	acc[c] = q8_core(wv, prep[c * groups + g], acc[c]), tail_q8_0)
#define K_GEMV(NAME, WT, DEC, PREP)                                        \
	GEMV_FN(NAME, struct k_a,                                          \
		prep[c * groups + g] =                                     \
			PREP((const struct block_q8_K *)(const void *)ap), \
		sizeof(WT), sizeof(struct block_q8_K), QK_K,               \
		struct k_w wv = DEC((const WT *)(const void *)wp),         \
		acc[c] = k_core(&wv, &prep[c * groups + g], acc[c]), no_tail)
K_GEMV(gemv_q2_K, struct block_q2_K, dec_q2_K, prep_k_natural)
K_GEMV(gemv_q3_K, struct block_q3_K, dec_q3_K, prep_k_natural)
K_GEMV(gemv_q4_K, struct block_q4_K, dec_q4_K, prep_k_nibble)
K_GEMV(gemv_q5_K, struct block_q5_K, dec_q5_K, prep_k_nibble)
K_GEMV(gemv_q6_K, struct block_q6_K, dec_q6_K, prep_k_natural)

typedef void (*gemv_fn)(int64_t n, const uint8_t *w, size_t ws, int64_t rows,
			const uint8_t *a, size_t as, int nc, float *y,
			size_t ys, void *scratch);

static bool gemv_of(enum slm_dtype t, gemv_fn *fn, size_t *per_group, int *vals)
{
	switch (t) {
	case SLM_DTYPE_Q4_0:
		*fn = gemv_q4_0;
		break;
	case SLM_DTYPE_Q4_1:
		*fn = gemv_q4_1;
		break;
	case SLM_DTYPE_Q5_0:
		*fn = gemv_q5_0;
		break;
	case SLM_DTYPE_Q5_1:
		*fn = gemv_q5_1;
		break;
	case SLM_DTYPE_Q8_0:
		*fn = gemv_q8_0;
		*per_group = sizeof(struct q8_a);
		*vals = 128;
		return true;
	case SLM_DTYPE_Q2_K:
		*fn = gemv_q2_K;
		goto k;
	case SLM_DTYPE_Q3_K:
		*fn = gemv_q3_K;
		goto k;
	case SLM_DTYPE_Q4_K:
		*fn = gemv_q4_K;
		goto k;
	case SLM_DTYPE_Q5_K:
		*fn = gemv_q5_K;
		goto k;
	case SLM_DTYPE_Q6_K:
		*fn = gemv_q6_K;
		goto k;
	default:
		return false;
	}
	*per_group = sizeof(struct leg_a);
	*vals = 128;
	return true;
k:
	*per_group = sizeof(struct k_a);
	*vals = QK_K;
	return true;
}

size_t slm_gemv_avx512_scratch(enum slm_dtype t, int64_t n_in)
{
	gemv_fn fn;
	size_t per = 0;
	int vals = 1;
	if (!gemv_of(t, &fn, &per, &vals))
		return 0;
	return SLM_GEMV_MAX_TOKENS * per * (size_t)(n_in / vals) + 64;
}

void slm_gemv_avx512(const struct slm_matrix *w, const void *act,
		     size_t act_row, int64_t n_tokens, int64_t o0, int64_t o1,
		     float *y, void *scratch)
{
	gemv_fn fn;
	size_t per = 0;
	int vals = 1;
	if (!gemv_of(w->type, &fn, &per, &vals) || o0 >= o1 || n_tokens < 1 ||
	    n_tokens > SLM_GEMV_MAX_TOKENS)
		return;
	void *s = (void *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
	fn(w->n_in, (const uint8_t *)w->data + (size_t)o0 * w->row_bytes,
	   w->row_bytes, o1 - o0, act, act_row, (int)n_tokens, y + o0,
	   (size_t)w->n_out, s);
}

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

#define DOT_FROM_TILE(name, tile)                                  \
	static float name(int64_t n, const void *w, const void *a) \
	{                                                          \
		float s;                                           \
		tile(n, w, 0, 1, a, 0, 1, &s, 1);                  \
		return s;                                          \
	}
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
			slm_vec_dot_fn dot, slm_gemm_fn tile, int mr, int nr)
{
	t[type].vec_dot = dot;
	t[type].gemm = tile;
	t[type].gemm_mr = mr;
	t[type].gemm_nr = nr;
	t[type].simd = SLM_SIMD_AVX512;
}

void slm_quant_tier_avx512(struct slm_quant_traits *t,
			   const struct slm_cpu_features *cpu)
{
	/* the tails of the legacy and float kernels use the scalar dots,
	 * which t still holds before this tier overwrites them */
	tail_q4_0 = t[SLM_DTYPE_Q4_0].vec_dot;
	tail_q4_1 = t[SLM_DTYPE_Q4_1].vec_dot;
	tail_q5_0 = t[SLM_DTYPE_Q5_0].vec_dot;
	tail_q5_1 = t[SLM_DTYPE_Q5_1].vec_dot;
	tail_q8_0 = t[SLM_DTYPE_Q8_0].vec_dot;
	tail_f32 = t[SLM_DTYPE_F32].vec_dot;
	tail_f16 = t[SLM_DTYPE_F16].vec_dot;
	tail_bf16 = t[SLM_DTYPE_BF16].vec_dot;

	t[SLM_DTYPE_Q8_0].from_float = act_q8_0;
	t[SLM_DTYPE_Q8_1].from_float = act_q8_1;
	t[SLM_DTYPE_Q8_K].from_float = act_q8_K;
	t[SLM_DTYPE_F16].from_float = act_f16;
	t[SLM_DTYPE_BF16].from_float = act_bf16;
	t[SLM_DTYPE_F32].from_float = act_f32;
	t[SLM_DTYPE_Q8_1].simd = SLM_SIMD_AVX512;
	t[SLM_DTYPE_Q8_K].simd = SLM_SIMD_AVX512;

	set_kernels(t, SLM_DTYPE_Q4_0, dot_q4_0, tile_q4_0, 4, 4);
	set_kernels(t, SLM_DTYPE_Q4_1, dot_q4_1, tile_q4_1, 4, 4);
	set_kernels(t, SLM_DTYPE_Q5_0, dot_q5_0, tile_q5_0, 4, 4);
	set_kernels(t, SLM_DTYPE_Q5_1, dot_q5_1, tile_q5_1, 4, 4);
	set_kernels(t, SLM_DTYPE_Q8_0, dot_q8_0, tile_q8_0, 4, 4);
	set_kernels(t, SLM_DTYPE_Q2_K, dot_q2_K, tile_q2_K, 4, 4);
	set_kernels(t, SLM_DTYPE_Q3_K, dot_q3_K, tile_q3_K, 4, 4);
	set_kernels(t, SLM_DTYPE_Q4_K, dot_q4_K, tile_q4_K, 4, 4);
	set_kernels(t, SLM_DTYPE_Q5_K, dot_q5_K, tile_q5_K, 4, 4);
	set_kernels(t, SLM_DTYPE_Q6_K, dot_q6_K, tile_q6_K, 4, 4);
	set_kernels(t, SLM_DTYPE_F32, dot_f32, tile_f32, 4, 4);
	set_kernels(t, SLM_DTYPE_F16, dot_f16, tile_f16, 4, 4);
	if (cpu->avx512bf16)
		set_kernels(t, SLM_DTYPE_BF16, dot_bf16_dp, tile_bf16_dp, 4, 4);
	else
		set_kernels(t, SLM_DTYPE_BF16, dot_bf16, tile_bf16, 4, 4);
}
