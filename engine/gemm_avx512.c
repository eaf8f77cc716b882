/*
 * gemm_avx512.c: the blocked GEMM of the AVX-512 tier (prefill and big
 * decode batches).
 *
 * Every weight type is brought to one form, per group of G values (G = 32
 * for the legacy types, Q4_K and Q5_K; 16 for Q2_K, Q3_K, Q6_K):
 *
 *     w = s * (u - off) - z          u unsigned bytes, s and z floats
 *
 * (Q4_0: s = d, off = 8; Q8_0: u = q + 128, off = 128; Q4_1: s = d,
 * z = -m; Q4_K: s = d * scale, z = dmin * min; Q6_K: s = d * scale,
 * off = 32; ...).  A panel of 16 weight rows is decoded once per token
 * block into
 *
 *     W[group][k] : zmm, int32 lane r = values 4k..4k+3 of row r (u8)
 *     S[group], Z[group] : zmm of 16 floats
 *
 * and the token block's activations are copied group-major, so that one
 * VPDPBUSD multiplies 4 values of 16 rows with 4 values of one token
 * (a 4-byte broadcast).  Per group and token: G/4 VPDPBUSD starting from
 * -off * (sum of the token's group) (exact int32), one convert and one
 * multiply-add by s * (token scale), and for z one more with the token's
 * group sum in float.  Up to 16 tokens keep their 16 sums in registers.
 *
 * The panel is read with gathers (one dword of 16 rows at a time): the
 * decode is done once per panel and token block, so its cost is shared by
 * the whole block.  Masked gathers and stores handle a last panel of
 * fewer than 16 rows; nothing outside the matrix is read.
 */
#include <immintrin.h>

#include "common/compiler.h"
#include "engine/matmul_int.h"
#include "engine/quant.h"

#define INLINE static inline __attribute__((always_inline))

/* ---- formats --------------------------------------------------------- */

struct gfmt {
	int G;	     /* values per scale group */
	int off;     /* u - off */
	int has_min; /* z term */
	int wblk;    /* values per weight block */
	int wbytes;  /* bytes per weight block */
	enum slm_dtype act;
};

static bool fmt_of(enum slm_dtype t, struct gfmt *f)
{
	switch (t) {
	case SLM_DTYPE_Q4_0:
		*f = (struct gfmt){32, 8, 0, 32, 18, SLM_DTYPE_Q8_0};
		return true;
	case SLM_DTYPE_Q4_1:
		*f = (struct gfmt){32, 0, 1, 32, 20, SLM_DTYPE_Q8_1};
		return true;
	case SLM_DTYPE_Q5_0:
		*f = (struct gfmt){32, 16, 0, 32, 22, SLM_DTYPE_Q8_0};
		return true;
	case SLM_DTYPE_Q5_1:
		*f = (struct gfmt){32, 0, 1, 32, 24, SLM_DTYPE_Q8_1};
		return true;
	case SLM_DTYPE_Q8_0:
		*f = (struct gfmt){32, 128, 0, 32, 34, SLM_DTYPE_Q8_0};
		return true;
	case SLM_DTYPE_Q2_K:
		*f = (struct gfmt){16, 0, 1, 256, 84, SLM_DTYPE_Q8_K};
		return true;
	case SLM_DTYPE_Q3_K:
		*f = (struct gfmt){16, 4, 0, 256, 110, SLM_DTYPE_Q8_K};
		return true;
	case SLM_DTYPE_Q4_K:
		*f = (struct gfmt){32, 0, 1, 256, 144, SLM_DTYPE_Q8_K};
		return true;
	case SLM_DTYPE_Q5_K:
		*f = (struct gfmt){32, 0, 1, 256, 176, SLM_DTYPE_Q8_K};
		return true;
	case SLM_DTYPE_Q6_K:
		*f = (struct gfmt){16, 32, 0, 256, 210, SLM_DTYPE_Q8_K};
		return true;
	default:
		return false;
	}
}

bool slm_gemm_avx512_supports(enum slm_dtype t)
{
	struct gfmt f;
	return fmt_of(t, &f);
}

/* Per token and group: the int32 start of the sum, the token's scale and
 * (for z) its group sum in float. */
struct ext {
	int32_t init;
	float d;
	float s;
};

struct layout {
	int64_t ng; /* groups in a row */
	size_t w_bytes, s_bytes, z_bytes, aq_bytes, ext_bytes;
	uint8_t *W;
	float *S, *Z;
	uint8_t *AQ;   /* [group][token][G] */
	struct ext *E; /* [group][token] */
};

static size_t up64(size_t x)
{
	return (x + 63) & ~(size_t)63;
}

static void layout_sizes(const struct gfmt *f, int64_t n_in, int64_t tb,
			 struct layout *l)
{
	l->ng = n_in / f->G;
	l->w_bytes = up64((size_t)n_in * SLM_GEMM_PANEL);
	l->s_bytes = up64((size_t)l->ng * SLM_GEMM_PANEL * sizeof(float));
	l->z_bytes = f->has_min ? l->s_bytes : 0;
	l->aq_bytes = up64((size_t)n_in * (size_t)tb);
	l->ext_bytes = up64((size_t)l->ng * (size_t)tb * sizeof(struct ext));
}

static void layout_of(const struct gfmt *f, int64_t n_in, int64_t tb,
		      uint8_t *base, struct layout *l)
{
	layout_sizes(f, n_in, tb, l);
	l->W = base;
	l->S = (float *)(void *)(base + l->w_bytes);
	l->Z = (float *)(void *)(base + l->w_bytes + l->s_bytes);
	l->AQ = base + l->w_bytes + l->s_bytes + l->z_bytes;
	l->E = (struct ext *)(void *)(l->AQ + l->aq_bytes);
}

int64_t slm_gemm_avx512_token_block(enum slm_dtype t, int64_t n_in)
{
	struct gfmt f;
	if (!fmt_of(t, &f) || n_in <= 0)
		return 0;
	/* packed activations and their sums: n_in + 12 n_in / G bytes per
	 * token; keep them in about 640 KiB of L2 with the panel */
	int64_t per = n_in + n_in / f.G * (int64_t)sizeof(struct ext);
	int64_t tb = (640 * 1024) / per / 16 * 16;
	return SLM_MAX(32, SLM_MIN(256, tb));
}

size_t slm_gemm_avx512_work_bytes(enum slm_dtype t, int64_t n_in, int64_t tb)
{
	struct gfmt f;
	if (!fmt_of(t, &f))
		return 0;
	struct layout l;
	layout_sizes(&f, n_in, tb, &l);
	return l.w_bytes + l.s_bytes + l.z_bytes + l.aq_bytes + l.ext_bytes +
	       64;
}

/* ---- panel decoding ------------------------------------------------- */

struct gat {
	const uint8_t *base; /* row o0 */
	__m512i idx;	     /* r * row_bytes */
	__mmask16 rows;
};

/* The dword at byte `off` of 16 rows. */
INLINE __m512i g32(const struct gat *g, size_t off)
{
	return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), g->rows,
					   g->idx, g->base + off, 1);
}

INLINE __m512 half_lo(__m512i v)
{
	return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v));
}

INLINE __m512 half_hi(__m512i v)
{
	return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(v, 16)));
}

INLINE __m512i c32(uint32_t v)
{
	return _mm512_set1_epi32((int)v);
}

/* Spread 4 bits (bits 0..3 of each lane) to bit 4 of each byte. */
INLINE __m512i bits_to_0x10(__m512i x)
{
	return _mm512_and_si512(
		_mm512_mullo_epi32(_mm512_and_si512(x, c32(0xF)),
				   c32(0x02040810)),
		c32(0x10101010));
}

INLINE void put_w(uint8_t *W, int64_t g, int G, int k, __m512i v)
{
	_mm512_store_si512(W + ((size_t)g * (size_t)(G / 4) + (size_t)k) * 64,
			   v);
}

INLINE void put_f(float *S, int64_t g, __m512 v)
{
	_mm512_store_ps(S + (size_t)g * 16, v);
}

static void dec_legacy(const struct gat *ga, int64_t nb, enum slm_dtype t,
		       struct layout *l)
{
	for (int64_t b = 0; b < nb; b++) {
		struct gat g = *ga;
		switch (t) {
		case SLM_DTYPE_Q4_0: {
			g.base += b * 18;
			put_f(l->S, b, half_lo(g32(&g, 0)));
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				__m512i v = g32(&g, 2 + 4 * k);
				put_w(l->W, b, 32, k,
				      _mm512_and_si512(v, c32(0x0F0F0F0F)));
				put_w(l->W, b, 32, k + 4,
				      _mm512_and_si512(_mm512_srli_epi32(v, 4),
						       c32(0x0F0F0F0F)));
			}
			break;
		}
		case SLM_DTYPE_Q4_1: {
			g.base += b * 20;
			__m512i dm = g32(&g, 0);
			put_f(l->S, b, half_lo(dm));
			put_f(l->Z, b,
			      _mm512_sub_ps(_mm512_setzero_ps(), half_hi(dm)));
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				__m512i v = g32(&g, 4 + 4 * k);
				put_w(l->W, b, 32, k,
				      _mm512_and_si512(v, c32(0x0F0F0F0F)));
				put_w(l->W, b, 32, k + 4,
				      _mm512_and_si512(_mm512_srli_epi32(v, 4),
						       c32(0x0F0F0F0F)));
			}
			break;
		}
		case SLM_DTYPE_Q5_0:
		case SLM_DTYPE_Q5_1: {
			bool one = t == SLM_DTYPE_Q5_1;
			g.base += b * (one ? 24 : 22);
			__m512i dm = g32(&g, 0);
			put_f(l->S, b, half_lo(dm));
			if (one)
				put_f(l->Z, b,
				      _mm512_sub_ps(_mm512_setzero_ps(),
						    half_hi(dm)));
			__m512i qh = g32(&g, one ? 4 : 2);
			size_t qs = one ? 8 : 6;
#pragma GCC unroll 4
			for (int k = 0; k < 4; k++) {
				__m512i v = g32(&g, qs + 4 * (size_t)k);
				__m512i lo = _mm512_or_si512(
					_mm512_and_si512(v, c32(0x0F0F0F0F)),
					bits_to_0x10(
						_mm512_srli_epi32(qh, 4 * k)));
				__m512i hi = _mm512_or_si512(
					_mm512_and_si512(
						_mm512_srli_epi32(v, 4),
						c32(0x0F0F0F0F)),
					bits_to_0x10(_mm512_srli_epi32(
						qh, 16 + 4 * k)));
				put_w(l->W, b, 32, k, lo);
				put_w(l->W, b, 32, k + 4, hi);
			}
			break;
		}
		case SLM_DTYPE_Q8_0: {
			g.base += b * 34;
			put_f(l->S, b, half_lo(g32(&g, 0)));
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++)
				put_w(l->W, b, 32, k,
				      _mm512_xor_si512(
					      g32(&g, 2 + 4 * (size_t)k),
					      c32(0x80808080)));
			break;
		}
		default:
			break;
		}
	}
}

/* byte j (0..3) of each lane, zero- or sign-extended, to float */
INLINE __m512 byte_u(__m512i v, int j)
{
	return _mm512_cvtepi32_ps(
		_mm512_and_si512(_mm512_srli_epi32(v, 8 * j), c32(0xFF)));
}

INLINE __m512 byte_s(__m512i v, int j)
{
	return _mm512_cvtepi32_ps(
		_mm512_srai_epi32(_mm512_slli_epi32(v, 24 - 8 * j), 24));
}

static void dec_k4(const struct gat *ga, int64_t nb, bool five,
		   struct layout *l)
{
	const size_t bs = five ? 176 : 144, qs0 = five ? 48 : 16;
	for (int64_t b = 0; b < nb; b++) {
		struct gat g = *ga;
		g.base += b * bs;
		__m512i dd = g32(&g, 0);
		__m512 d = half_lo(dd), dmin = half_hi(dd);
		__m512i a0 = g32(&g, 4), a1 = g32(&g, 8), a2 = g32(&g, 12);
		/* bytes: scales 0-3 / 4-7, mins 0-3 / 4-7 (as quant_int.h) */
		__m512i s_lo = _mm512_and_si512(a0, c32(0x3f3f3f3f));
		__m512i s_hi = _mm512_or_si512(
			_mm512_and_si512(a2, c32(0x0f0f0f0f)),
			_mm512_and_si512(_mm512_srli_epi32(a0, 2),
					 c32(0x30303030)));
		__m512i m_lo = _mm512_and_si512(a1, c32(0x3f3f3f3f));
		__m512i m_hi = _mm512_or_si512(
			_mm512_and_si512(_mm512_srli_epi32(a2, 4),
					 c32(0x0f0f0f0f)),
			_mm512_and_si512(_mm512_srli_epi32(a1, 2),
					 c32(0x30303030)));
#pragma GCC unroll 4
		for (int j = 0; j < 4; j++) {
			put_f(l->S, 8 * b + j,
			      _mm512_mul_ps(d, byte_u(s_lo, j)));
			put_f(l->S, 8 * b + 4 + j,
			      _mm512_mul_ps(d, byte_u(s_hi, j)));
			put_f(l->Z, 8 * b + j,
			      _mm512_mul_ps(dmin, byte_u(m_lo, j)));
			put_f(l->Z, 8 * b + 4 + j,
			      _mm512_mul_ps(dmin, byte_u(m_hi, j)));
		}
		__m512i qh[8];
		if (five) {
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++)
				qh[k] = g32(&g, 16 + 4 * (size_t)k);
		}
#pragma GCC unroll 4
		for (int c = 0; c < 4; c++) {
#pragma GCC unroll 8
			for (int k = 0; k < 8; k++) {
				__m512i v = g32(&g, qs0 + 32 * (size_t)c +
							    4 * (size_t)k);
				__m512i lo =
					_mm512_and_si512(v, c32(0x0F0F0F0F));
				__m512i hi = _mm512_and_si512(
					_mm512_srli_epi32(v, 4),
					c32(0x0F0F0F0F));
				if (five) {
					lo = _mm512_or_si512(
						lo,
						_mm512_slli_epi32(
							_mm512_and_si512(
								_mm512_srli_epi32(
									qh[k],
									2 * c),
								c32(0x01010101)),
							4));
					hi = _mm512_or_si512(
						hi,
						_mm512_slli_epi32(
							_mm512_and_si512(
								_mm512_srli_epi32(
									qh[k],
									2 * c + 1),
								c32(0x01010101)),
							4));
				}
				put_w(l->W, 8 * b + 2 * c, 32, k, lo);
				put_w(l->W, 8 * b + 2 * c + 1, 32, k, hi);
			}
		}
	}
}

static void dec_q6k(const struct gat *ga, int64_t nb, struct layout *l)
{
	for (int64_t b = 0; b < nb; b++) {
		struct gat g = *ga;
		g.base += b * 210;
		__m512 d = half_hi(g32(&g, 206));
#pragma GCC unroll 4
		for (int i = 0; i < 4; i++) {
			__m512i v = g32(&g, 192 + 4 * (size_t)i);
#pragma GCC unroll 4
			for (int j = 0; j < 4; j++)
				put_f(l->S, 16 * b + 4 * i + j,
				      _mm512_mul_ps(d, byte_s(v, j)));
		}
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++)
#pragma GCC unroll 2
			for (int sub = 0; sub < 2; sub++)
#pragma GCC unroll 4
				for (int k = 0; k < 4; k++) {
					size_t o = 16 * (size_t)sub +
						   4 * (size_t)k;
					__m512i qa =
						g32(&g, 64 * (size_t)h + o);
					__m512i qb = g32(&g, 64 * (size_t)h +
								     32 + o);
					__m512i qh = g32(
						&g, 128 + 32 * (size_t)h + o);
					const __m512i m4 = c32(0x0F0F0F0F),
						      m2 = c32(0x03030303);
					__m512i v[4] = {
						_mm512_and_si512(qa, m4),
						_mm512_and_si512(qb, m4),
						_mm512_and_si512(
							_mm512_srli_epi32(qa,
									  4),
							m4),
						_mm512_and_si512(
							_mm512_srli_epi32(qb,
									  4),
							m4)};
#pragma GCC unroll 4
					for (int q = 0; q < 4; q++) {
						__m512i hb = _mm512_slli_epi32(
							_mm512_and_si512(
								_mm512_srli_epi32(
									qh,
									2 * q),
								m2),
							4);
						put_w(l->W,
						      16 * b + 8 * h + 2 * q +
							      sub,
						      16, k,
						      _mm512_or_si512(v[q],
								      hb));
					}
				}
	}
}

static void dec_q3k(const struct gat *ga, int64_t nb, struct layout *l)
{
	for (int64_t b = 0; b < nb; b++) {
		struct gat g = *ga;
		g.base += b * 110;
		__m512 d = half_hi(g32(&g, 106));
		__m512i a0 = g32(&g, 96), a1 = g32(&g, 100), a2 = g32(&g, 104);
		const __m512i m2 = c32(0x03030303), m4 = c32(0x0f0f0f0f);
		__m512i sc[4] = {
			_mm512_or_si512(
				_mm512_and_si512(a0, m4),
				_mm512_slli_epi32(_mm512_and_si512(a2, m2), 4)),
			_mm512_or_si512(
				_mm512_and_si512(a1, m4),
				_mm512_slli_epi32(
					_mm512_and_si512(
						_mm512_srli_epi32(a2, 2), m2),
					4)),
			_mm512_or_si512(
				_mm512_and_si512(_mm512_srli_epi32(a0, 4), m4),
				_mm512_slli_epi32(
					_mm512_and_si512(
						_mm512_srli_epi32(a2, 4), m2),
					4)),
			_mm512_or_si512(
				_mm512_and_si512(_mm512_srli_epi32(a1, 4), m4),
				_mm512_slli_epi32(
					_mm512_and_si512(
						_mm512_srli_epi32(a2, 6), m2),
					4))};
		const __m512 s32 = _mm512_set1_ps(32.0f);
#pragma GCC unroll 4
		for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
			for (int j = 0; j < 4; j++)
				put_f(l->S, 16 * b + 4 * i + j,
				      _mm512_mul_ps(
					      d, _mm512_sub_ps(byte_u(sc[i], j),
							       s32)));
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++)
#pragma GCC unroll 2
			for (int sub = 0; sub < 2; sub++)
#pragma GCC unroll 4
				for (int k = 0; k < 4; k++) {
					size_t o = 16 * (size_t)sub +
						   4 * (size_t)k;
					__m512i q = g32(
						&g, 32 + 32 * (size_t)h + o);
					__m512i hm = g32(&g, o);
#pragma GCC unroll 4
					for (int s = 0; s < 4; s++) {
						__m512i low = _mm512_and_si512(
							_mm512_srli_epi32(
								q, 2 * s),
							m2);
						__m512i hi = _mm512_slli_epi32(
							_mm512_and_si512(
								_mm512_srli_epi32(
									hm,
									4 * h + s),
								c32(0x01010101)),
							2);
						put_w(l->W,
						      16 * b + 8 * h + 2 * s +
							      sub,
						      16, k,
						      _mm512_or_si512(low, hi));
					}
				}
	}
}

static void dec_q2k(const struct gat *ga, int64_t nb, struct layout *l)
{
	for (int64_t b = 0; b < nb; b++) {
		struct gat g = *ga;
		g.base += b * 84;
		__m512i dd = g32(&g, 80);
		__m512 d = half_lo(dd), dmin = half_hi(dd);
#pragma GCC unroll 4
		for (int i = 0; i < 4; i++) {
			__m512i v = g32(&g, 4 * (size_t)i);
			__m512i sc = _mm512_and_si512(v, c32(0x0f0f0f0f));
			__m512i mn = _mm512_and_si512(_mm512_srli_epi32(v, 4),
						      c32(0x0f0f0f0f));
#pragma GCC unroll 4
			for (int j = 0; j < 4; j++) {
				put_f(l->S, 16 * b + 4 * i + j,
				      _mm512_mul_ps(d, byte_u(sc, j)));
				put_f(l->Z, 16 * b + 4 * i + j,
				      _mm512_mul_ps(dmin, byte_u(mn, j)));
			}
		}
#pragma GCC unroll 2
		for (int h = 0; h < 2; h++)
#pragma GCC unroll 2
			for (int sub = 0; sub < 2; sub++)
#pragma GCC unroll 4
				for (int k = 0; k < 4; k++) {
					size_t o = 16 * (size_t)sub +
						   4 * (size_t)k;
					__m512i q = g32(
						&g, 16 + 32 * (size_t)h + o);
#pragma GCC unroll 4
					for (int s = 0; s < 4; s++)
						put_w(l->W,
						      16 * b + 8 * h + 2 * s +
							      sub,
						      16, k,
						      _mm512_and_si512(
							      _mm512_srli_epi32(
								      q, 2 * s),
							      c32(0x03030303)));
				}
	}
}

static void decode_panel(const struct slm_matrix *w, const struct gfmt *f,
			 int64_t o0, int rows, struct layout *l)
{
	struct gat g;
	g.base = (const uint8_t *)w->data + (size_t)o0 * w->row_bytes;
	g.idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8,
						     9, 10, 11, 12, 13, 14, 15),
				   _mm512_set1_epi32((int)w->row_bytes));
	g.rows = (__mmask16)((1u << rows) - 1);
	int64_t nb = w->n_in / f->wblk;
	switch (w->type) {
	case SLM_DTYPE_Q4_K:
		dec_k4(&g, nb, false, l);
		break;
	case SLM_DTYPE_Q5_K:
		dec_k4(&g, nb, true, l);
		break;
	case SLM_DTYPE_Q6_K:
		dec_q6k(&g, nb, l);
		break;
	case SLM_DTYPE_Q3_K:
		dec_q3k(&g, nb, l);
		break;
	case SLM_DTYPE_Q2_K:
		dec_q2k(&g, nb, l);
		break;
	default:
		dec_legacy(&g, nb, w->type, l);
		break;
	}
}

/* ---- activations of a token block ------------------------------------- */

static void pack_acts(const struct gfmt *f, const uint8_t *act, size_t act_row,
		      int64_t n_in, int64_t nt, int64_t tb, struct layout *l)
{
	const int G = f->G;
	for (int64_t c = 0; c < nt; c++) {
		const uint8_t *row = act + (size_t)c * act_row;
		for (int64_t g = 0; g < l->ng; g++) {
			int64_t v0 = g * G;
			const int8_t *q;
			struct ext e = {0, 0, 0};
			if (f->act == SLM_DTYPE_Q8_K) {
				const struct block_q8_K *b =
					(const struct block_q8_K
						 *)(const void *)row +
					v0 / QK_K;
				int j = (int)(v0 % QK_K);
				q = b->qs + j;
				int isum = b->bsums[j / 16];
				if (G == 32)
					isum += b->bsums[j / 16 + 1];
				e.init = -f->off * isum;
				e.d = b->d;
				e.s = b->d * (float)isum;
			} else if (f->act == SLM_DTYPE_Q8_1) {
				const struct block_q8_1 *b =
					(const struct block_q8_1
						 *)(const void *)row +
					v0 / 32;
				q = b->qs;
				e.d = _cvtsh_ss(b->d);
				e.s = _cvtsh_ss(b->s);
			} else {
				const struct block_q8_0 *b =
					(const struct block_q8_0
						 *)(const void *)row +
					v0 / 32;
				q = b->qs;
				__m256i v =
					_mm256_loadu_si256((const __m256i *)q);
				__m256i s16 = _mm256_maddubs_epi16(
					_mm256_set1_epi8(1), v);
				__m256i s32 = _mm256_madd_epi16(
					s16, _mm256_set1_epi16(1));
				__m128i r = _mm_add_epi32(
					_mm256_castsi256_si128(s32),
					_mm256_extracti128_si256(s32, 1));
				r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
				r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
				e.init = -f->off * _mm_cvtsi128_si32(r);
				e.d = _cvtsh_ss(b->d);
			}
			memcpy(l->AQ + ((size_t)g * (size_t)tb + (size_t)c) *
					       (size_t)G,
			       q, (size_t)G);
			l->E[(size_t)g * (size_t)tb + (size_t)c] = e;
		}
	}
}

/* ---- the micro-kernel ---------------------------------------------- */

/*
 * 16 rows by NC tokens over every group: acc[c] holds 16 row sums of
 * token c.  G, OFF (any offset) and MIN are compile-time constants.
 */
INLINE void ukernel(const struct layout *l, int64_t tb, int64_t c0, float *y,
		    size_t y_stride, __mmask16 rows, const int G, const int OFF,
		    const int MIN, const int NC)
{
	__m512 acc[16];
#pragma GCC unroll 16
	for (int c = 0; c < NC; c++)
		acc[c] = _mm512_setzero_ps();
	const int KS = G / 4;
	for (int64_t g = 0; g < l->ng; g++) {
		__m512i w[8];
		const uint8_t *W = l->W + (size_t)g * (size_t)KS * 64;
#pragma GCC unroll 8
		for (int k = 0; k < KS; k++)
			w[k] = _mm512_load_si512(W + 64 * k);
		__m512 s = _mm512_load_ps(l->S + 16 * g);
		__m512 z = MIN ? _mm512_load_ps(l->Z + 16 * g)
			       : _mm512_setzero_ps();
		const struct ext *e =
			l->E + (size_t)g * (size_t)tb + (size_t)c0;
		const int32_t *q =
			(const int32_t *)(const void *)(l->AQ +
							((size_t)g *
								 (size_t)tb +
							 (size_t)c0) *
								(size_t)G);
#pragma GCC unroll 16
		for (int c = 0; c < NC; c++) {
			__m512i a = OFF ? _mm512_set1_epi32(e[c].init)
					: _mm512_setzero_si512();
#pragma GCC unroll 8
			for (int k = 0; k < KS; k++)
				a = _mm512_dpbusd_epi32(
					a, w[k],
					_mm512_set1_epi32(q[c * KS + k]));
			acc[c] = _mm512_fmadd_ps(
				_mm512_cvtepi32_ps(a),
				_mm512_mul_ps(s, _mm512_set1_ps(e[c].d)),
				acc[c]);
			if (MIN)
				acc[c] = _mm512_fnmadd_ps(
					z, _mm512_set1_ps(e[c].s), acc[c]);
		}
	}
#pragma GCC unroll 16
	for (int c = 0; c < NC; c++)
		_mm512_mask_storeu_ps(y + (size_t)c * y_stride, rows, acc[c]);
}

#define UK_VARIANT(NAME, G, OFF, MIN)                                     \
	static void NAME(const struct layout *l, int64_t tb, int64_t c0,  \
			 int64_t nc, float *y, size_t ys, __mmask16 rows) \
	{                                                                 \
		while (nc >= 16) {                                        \
			ukernel(l, tb, c0, y, ys, rows, G, OFF, MIN, 16); \
			c0 += 16, nc -= 16, y += 16 * ys;                 \
		}                                                         \
		if (nc >= 8) {                                            \
			ukernel(l, tb, c0, y, ys, rows, G, OFF, MIN, 8);  \
			c0 += 8, nc -= 8, y += 8 * ys;                    \
		}                                                         \
		if (nc >= 4) {                                            \
			ukernel(l, tb, c0, y, ys, rows, G, OFF, MIN, 4);  \
			c0 += 4, nc -= 4, y += 4 * ys;                    \
		}                                                         \
		if (nc >= 2) {                                            \
			ukernel(l, tb, c0, y, ys, rows, G, OFF, MIN, 2);  \
			c0 += 2, nc -= 2, y += 2 * ys;                    \
		}                                                         \
		if (nc >= 1)                                              \
			ukernel(l, tb, c0, y, ys, rows, G, OFF, MIN, 1);  \
	}

UK_VARIANT(uk_32_off, 32, 1, 0)
UK_VARIANT(uk_32_min, 32, 0, 1)
UK_VARIANT(uk_16_off, 16, 1, 0)
UK_VARIANT(uk_16_min, 16, 0, 1)

void slm_gemm_avx512(const struct slm_matrix *w, const void *act,
		     size_t act_row, int64_t t0, int64_t t1, int64_t o0,
		     int64_t o1, float *y, void *work)
{
	struct gfmt f;
	if (!fmt_of(w->type, &f))
		return;
	int64_t nt = t1 - t0;
	struct layout l;
	uint8_t *base = (uint8_t *)(((uintptr_t)work + 63) & ~(uintptr_t)63);
	layout_of(&f, w->n_in, nt, base, &l);
	pack_acts(&f, (const uint8_t *)act + (size_t)t0 * act_row, act_row,
		  w->n_in, nt, nt, &l);
	void (*uk)(const struct layout *, int64_t, int64_t, int64_t, float *,
		   size_t, __mmask16) =
		f.G == 32 ? (f.has_min ? uk_32_min : uk_32_off)
			  : (f.has_min ? uk_16_min : uk_16_off);
	for (int64_t o = o0; o < o1; o += SLM_GEMM_PANEL) {
		int rows = (int)SLM_MIN(SLM_GEMM_PANEL, o1 - o);
		decode_panel(w, &f, o, rows, &l);
		uk(&l, nt, 0, nt, y + (size_t)t0 * (size_t)w->n_out + (size_t)o,
		   (size_t)w->n_out, (__mmask16)((1u << rows) - 1));
	}
}
