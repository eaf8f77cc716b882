/*
 * quant_scalar.c: the scalar tier, the specification of every run-time
 * kernel.  Written to be read: the wide tiers must compute the same
 * integer block sums and may only differ in the order of float additions.
 *
 * A dot product of a weight row with an activation row goes block by
 * block: the integer dot of the block's quants (exact in int32), times
 * the two scales; blocks with a minimum (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K)
 * add min times the activation's block sum, which the activation formats
 * carry (Q8_1's s, Q8_K's bsums).
 */
#include <math.h>
#include <string.h>

#include "engine/quant_int.h"

/* ---- activation quantizers (llama.cpp's run-time rounding) ------------ */

/* One block of 32: d = amax/127, q = round-half-even(x * 127/amax). */
static float act_q8_block(const float *x, int8_t *q, int *sum)
{
	float amax = 0.0f;
	for (int j = 0; j < 32; j++)
		amax = fmaxf(amax, fabsf(x[j]));
	const float d = amax / 127.f;
	const float id = amax != 0.0f ? 127.f / amax : 0.0f;
	int s = 0;
	for (int j = 0; j < 32; j++) {
		q[j] = (int8_t)slm_nearest_int(x[j] * id);
		s += q[j];
	}
	*sum = s;
	return d;
}

static void act_q8_0(const float *x, void *vy, int64_t n)
{
	struct block_q8_0 *y = vy;
	for (int64_t i = 0; i < n / QK8_0; i++) {
		int sum;
		float d = act_q8_block(x + i * QK8_0, y[i].qs, &sum);
		y[i].d = slm_f32_to_fp16(d);
	}
}

static void act_q8_1(const float *x, void *vy, int64_t n)
{
	struct block_q8_1 *y = vy;
	for (int64_t i = 0; i < n / QK8_1; i++) {
		int sum;
		float d = act_q8_block(x + i * QK8_1, y[i].qs, &sum);
		y[i].d = slm_f32_to_fp16(d);
		y[i].s = slm_f32_to_fp16(d * (float)sum);
	}
}

static void act_q8_K(const float *x, void *y, int64_t n)
{
	slm_quantize_ref(SLM_DTYPE_Q8_K, x, y, n);
}

static void act_f16(const float *x, void *vy, int64_t n)
{
	slm_fp16 *y = vy;
	for (int64_t i = 0; i < n; i++)
		y[i] = slm_f32_to_fp16(x[i]);
}

static void act_bf16(const float *x, void *vy, int64_t n)
{
	slm_bf16 *y = vy;
	for (int64_t i = 0; i < n; i++)
		y[i] = slm_f32_to_bf16(x[i]);
}

static void act_f32(const float *x, void *y, int64_t n)
{
	memcpy(y, x, (size_t)n * sizeof(float));
}

/* ---- legacy formats ------------------------------------------------- */

static float dot_q4_0_q8_0(int64_t n, const void *vw, const void *va)
{
	const struct block_q4_0 *w = vw;
	const struct block_q8_0 *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK8_0; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			isum += ((w[i].qs[j] & 0xF) - 8) * a[i].qs[j];
			isum += ((w[i].qs[j] >> 4) - 8) * a[i].qs[j + 16];
		}
		sum += (float)isum *
		       (slm_fp16_to_f32(w[i].d) * slm_fp16_to_f32(a[i].d));
	}
	return sum;
}

static float dot_q4_1_q8_1(int64_t n, const void *vw, const void *va)
{
	const struct block_q4_1 *w = vw;
	const struct block_q8_1 *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK8_1; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			isum += (w[i].qs[j] & 0xF) * a[i].qs[j];
			isum += (w[i].qs[j] >> 4) * a[i].qs[j + 16];
		}
		sum += (float)isum * (slm_fp16_to_f32(w[i].d) *
				      slm_fp16_to_f32(a[i].d)) +
		       slm_fp16_to_f32(w[i].m) * slm_fp16_to_f32(a[i].s);
	}
	return sum;
}

/* The 5th bits of a Q5 block, as 0 or 16 for value j. */
static inline int q5_high(const uint8_t *qh, int j)
{
	uint32_t h;
	memcpy(&h, qh, sizeof(h));
	return (int)((h >> j) & 1) << 4;
}

static float dot_q5_0_q8_0(int64_t n, const void *vw, const void *va)
{
	const struct block_q5_0 *w = vw;
	const struct block_q8_0 *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK8_0; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			int v0 =
				((w[i].qs[j] & 0xF) | q5_high(w[i].qh, j)) - 16;
			int v1 =
				((w[i].qs[j] >> 4) | q5_high(w[i].qh, j + 16)) -
				16;
			isum += v0 * a[i].qs[j] + v1 * a[i].qs[j + 16];
		}
		sum += (float)isum *
		       (slm_fp16_to_f32(w[i].d) * slm_fp16_to_f32(a[i].d));
	}
	return sum;
}

static float dot_q5_1_q8_1(int64_t n, const void *vw, const void *va)
{
	const struct block_q5_1 *w = vw;
	const struct block_q8_1 *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK8_1; i++) {
		int isum = 0;
		for (int j = 0; j < 16; j++) {
			int v0 = (w[i].qs[j] & 0xF) | q5_high(w[i].qh, j);
			int v1 = (w[i].qs[j] >> 4) | q5_high(w[i].qh, j + 16);
			isum += v0 * a[i].qs[j] + v1 * a[i].qs[j + 16];
		}
		sum += (float)isum * (slm_fp16_to_f32(w[i].d) *
				      slm_fp16_to_f32(a[i].d)) +
		       slm_fp16_to_f32(w[i].m) * slm_fp16_to_f32(a[i].s);
	}
	return sum;
}

static float dot_q8_0_q8_0(int64_t n, const void *vw, const void *va)
{
	const struct block_q8_0 *w = vw;
	const struct block_q8_0 *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK8_0; i++) {
		int isum = 0;
		for (int j = 0; j < 32; j++)
			isum += w[i].qs[j] * a[i].qs[j];
		sum += (float)isum *
		       (slm_fp16_to_f32(w[i].d) * slm_fp16_to_f32(a[i].d));
	}
	return sum;
}

/* ---- K-quants -------------------------------------------------------- */

/*
 * Value j (0..255) of a superblock, in element order, for the K formats
 * whose packing interleaves groups: written out once here so the dot
 * products below read like the format description.
 */
static inline int q2k_value(const struct block_q2_K *b, int j)
{
	int half = j / 128, r = j % 128; /* 128 values per 32 bytes */
	return (b->qs[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
}

static inline int q3k_value(const struct block_q3_K *b, int j)
{
	int half = j / 128, r = j % 128;
	int low = (b->qs[half * 32 + r % 32] >> (2 * (r / 32))) & 3;
	int high = (b->hmask[j % 32] >> (j / 32)) & 1;
	return low - (high ? 0 : 4);
}

static inline int q4k_value(const struct block_q4_K *b, int j)
{
	int chunk = j / 64, r = j % 64; /* 64 values per 32 bytes */
	return (b->qs[chunk * 32 + r % 32] >> (4 * (r / 32))) & 0xF;
}

static inline int q5k_value(const struct block_q5_K *b, int j)
{
	int chunk = j / 64, r = j % 64;
	int low = (b->qs[chunk * 32 + r % 32] >> (4 * (r / 32))) & 0xF;
	int high = (b->qh[r % 32] >> (2 * chunk + r / 32)) & 1;
	return low | (high << 4);
}

static inline int q6k_value(const struct block_q6_K *b, int j)
{
	int half = j / 128, r = j % 128, quarter = r / 32, l = r % 32;
	const uint8_t *ql = b->ql + half * 64;
	const uint8_t *qh = b->qh + half * 32;
	int low = (ql[l + 32 * (quarter & 1)] >> (4 * (quarter >> 1))) & 0xF;
	int high = (qh[l] >> (2 * quarter)) & 3;
	return (low | (high << 4)) - 32;
}

static float dot_q2_K_q8_K(int64_t n, const void *vw, const void *va)
{
	const struct block_q2_K *w = vw;
	const struct block_q8_K *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int isum = 0, msum = 0;
		for (int g = 0; g < 16; g++) {
			int s = 0;
			for (int l = 0; l < 16; l++)
				s += q2k_value(&w[i], 16 * g + l) *
				     a[i].qs[16 * g + l];
			isum += (w[i].scales[g] & 0xF) * s;
			msum += (w[i].scales[g] >> 4) * a[i].bsums[g];
		}
		const float d = a[i].d * slm_fp16_to_f32(w[i].d);
		const float dmin = a[i].d * slm_fp16_to_f32(w[i].dmin);
		sum += d * (float)isum - dmin * (float)msum;
	}
	return sum;
}

static float dot_q3_K_q8_K(int64_t n, const void *vw, const void *va)
{
	const struct block_q3_K *w = vw;
	const struct block_q8_K *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int isum = 0;
		for (int g = 0; g < 16; g++) {
			int s = 0;
			for (int l = 0; l < 16; l++)
				s += q3k_value(&w[i], 16 * g + l) *
				     a[i].qs[16 * g + l];
			isum += slm_q3k_scale(w[i].scales, g) * s;
		}
		sum += a[i].d * slm_fp16_to_f32(w[i].d) * (float)isum;
	}
	return sum;
}

static float dot_q4_K_q8_K(int64_t n, const void *vw, const void *va)
{
	const struct block_q4_K *w = vw;
	const struct block_q8_K *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int isum = 0, msum = 0;
		for (int g = 0; g < 8; g++) {
			uint8_t sc, m;
			slm_k4_scale_min(g, w[i].scales, &sc, &m);
			int s = 0;
			for (int l = 0; l < 32; l++)
				s += q4k_value(&w[i], 32 * g + l) *
				     a[i].qs[32 * g + l];
			isum += sc * s;
			msum += m * (a[i].bsums[2 * g] + a[i].bsums[2 * g + 1]);
		}
		const float d = a[i].d * slm_fp16_to_f32(w[i].d);
		const float dmin = a[i].d * slm_fp16_to_f32(w[i].dmin);
		sum += d * (float)isum - dmin * (float)msum;
	}
	return sum;
}

static float dot_q5_K_q8_K(int64_t n, const void *vw, const void *va)
{
	const struct block_q5_K *w = vw;
	const struct block_q8_K *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int isum = 0, msum = 0;
		for (int g = 0; g < 8; g++) {
			uint8_t sc, m;
			slm_k4_scale_min(g, w[i].scales, &sc, &m);
			int s = 0;
			for (int l = 0; l < 32; l++)
				s += q5k_value(&w[i], 32 * g + l) *
				     a[i].qs[32 * g + l];
			isum += sc * s;
			msum += m * (a[i].bsums[2 * g] + a[i].bsums[2 * g + 1]);
		}
		const float d = a[i].d * slm_fp16_to_f32(w[i].d);
		const float dmin = a[i].d * slm_fp16_to_f32(w[i].dmin);
		sum += d * (float)isum - dmin * (float)msum;
	}
	return sum;
}

static float dot_q6_K_q8_K(int64_t n, const void *vw, const void *va)
{
	const struct block_q6_K *w = vw;
	const struct block_q8_K *a = va;
	float sum = 0;
	for (int64_t i = 0; i < n / QK_K; i++) {
		int isum = 0;
		for (int g = 0; g < 16; g++) {
			int s = 0;
			for (int l = 0; l < 16; l++)
				s += q6k_value(&w[i], 16 * g + l) *
				     a[i].qs[16 * g + l];
			isum += w[i].scales[g] * s;
		}
		sum += a[i].d * slm_fp16_to_f32(w[i].d) * (float)isum;
	}
	return sum;
}

/* ---- float formats (accumulated in double: the spec, not the speed) -- */

static float dot_f32_f32(int64_t n, const void *vw, const void *va)
{
	const float *w = vw, *a = va;
	double sum = 0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)w[i] * (double)a[i];
	return (float)sum;
}

static float dot_f16_f16(int64_t n, const void *vw, const void *va)
{
	const slm_fp16 *w = vw, *a = va;
	double sum = 0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)slm_fp16_to_f32(w[i]) *
		       (double)slm_fp16_to_f32(a[i]);
	return (float)sum;
}

static float dot_bf16_bf16(int64_t n, const void *vw, const void *va)
{
	const slm_bf16 *w = vw, *a = va;
	double sum = 0;
	for (int64_t i = 0; i < n; i++)
		sum += (double)slm_bf16_to_f32(w[i]) *
		       (double)slm_bf16_to_f32(a[i]);
	return (float)sum;
}

SLM_GEMM_FROM_DOT(gemm_q4_0, dot_q4_0_q8_0)
SLM_GEMM_FROM_DOT(gemm_q4_1, dot_q4_1_q8_1)
SLM_GEMM_FROM_DOT(gemm_q5_0, dot_q5_0_q8_0)
SLM_GEMM_FROM_DOT(gemm_q5_1, dot_q5_1_q8_1)
SLM_GEMM_FROM_DOT(gemm_q8_0, dot_q8_0_q8_0)
SLM_GEMM_FROM_DOT(gemm_q2_K, dot_q2_K_q8_K)
SLM_GEMM_FROM_DOT(gemm_q3_K, dot_q3_K_q8_K)
SLM_GEMM_FROM_DOT(gemm_q4_K, dot_q4_K_q8_K)
SLM_GEMM_FROM_DOT(gemm_q5_K, dot_q5_K_q8_K)
SLM_GEMM_FROM_DOT(gemm_q6_K, dot_q6_K_q8_K)
SLM_GEMM_FROM_DOT(gemm_f32, dot_f32_f32)
SLM_GEMM_FROM_DOT(gemm_f16, dot_f16_f16)
SLM_GEMM_FROM_DOT(gemm_bf16, dot_bf16_bf16)

static void dequantize_any(enum slm_dtype t, const void *x, float *y, int64_t n)
{
	slm_dequantize(t, x, y, n);
}

#define DEQ(T)                                                  \
	static void deq_##T(const void *x, float *y, int64_t n) \
	{                                                       \
		dequantize_any(SLM_DTYPE_##T, x, y, n);         \
	}
#define REF(T)                                                  \
	static void ref_##T(const float *x, void *y, int64_t n) \
	{                                                       \
		slm_quantize_ref(SLM_DTYPE_##T, x, y, n);       \
	}
DEQ(F32)
DEQ(F16)
DEQ(BF16)
DEQ(Q4_0)
DEQ(Q4_1)
DEQ(Q5_0)
DEQ(Q5_1)
DEQ(Q8_0)
DEQ(Q8_1)
DEQ(Q2_K)
DEQ(Q3_K)
DEQ(Q4_K)
DEQ(Q5_K)
DEQ(Q6_K)
DEQ(Q8_K)
REF(Q4_0)
REF(Q4_1)
REF(Q5_0)
REF(Q5_1)
REF(Q2_K)
REF(Q3_K)
REF(Q4_K)
REF(Q5_K)
REF(Q6_K)

static void set(struct slm_quant_traits *t, enum slm_dtype type,
		enum slm_dtype vec_dot_type, slm_from_float_fn from_float,
		slm_to_float_fn to_float, slm_vec_dot_fn vec_dot,
		slm_gemm_fn gemm)
{
	struct slm_quant_traits *e = &t[type];
	e->type = type;
	e->block = slm_dtype_block(type);
	e->block_bytes = slm_dtype_block_bytes(type);
	e->vec_dot_type = vec_dot_type;
	e->from_float = from_float;
	e->to_float = to_float;
	e->vec_dot = vec_dot;
	e->gemm = gemm;
	e->gemm_mr = gemm ? 4 : 0;
	e->gemm_nr = gemm ? 4 : 0;
	e->simd = SLM_SIMD_SCALAR;
}

void slm_quant_tier_scalar(struct slm_quant_traits *t)
{
	set(t, SLM_DTYPE_F32, SLM_DTYPE_F32, act_f32, deq_F32, dot_f32_f32,
	    gemm_f32);
	set(t, SLM_DTYPE_F16, SLM_DTYPE_F16, act_f16, deq_F16, dot_f16_f16,
	    gemm_f16);
	set(t, SLM_DTYPE_BF16, SLM_DTYPE_BF16, act_bf16, deq_BF16,
	    dot_bf16_bf16, gemm_bf16);
	set(t, SLM_DTYPE_Q4_0, SLM_DTYPE_Q8_0, ref_Q4_0, deq_Q4_0,
	    dot_q4_0_q8_0, gemm_q4_0);
	set(t, SLM_DTYPE_Q4_1, SLM_DTYPE_Q8_1, ref_Q4_1, deq_Q4_1,
	    dot_q4_1_q8_1, gemm_q4_1);
	set(t, SLM_DTYPE_Q5_0, SLM_DTYPE_Q8_0, ref_Q5_0, deq_Q5_0,
	    dot_q5_0_q8_0, gemm_q5_0);
	set(t, SLM_DTYPE_Q5_1, SLM_DTYPE_Q8_1, ref_Q5_1, deq_Q5_1,
	    dot_q5_1_q8_1, gemm_q5_1);
	set(t, SLM_DTYPE_Q8_0, SLM_DTYPE_Q8_0, act_q8_0, deq_Q8_0,
	    dot_q8_0_q8_0, gemm_q8_0);
	set(t, SLM_DTYPE_Q8_1, SLM_DTYPE_Q8_1, act_q8_1, deq_Q8_1, NULL, NULL);
	set(t, SLM_DTYPE_Q2_K, SLM_DTYPE_Q8_K, ref_Q2_K, deq_Q2_K,
	    dot_q2_K_q8_K, gemm_q2_K);
	set(t, SLM_DTYPE_Q3_K, SLM_DTYPE_Q8_K, ref_Q3_K, deq_Q3_K,
	    dot_q3_K_q8_K, gemm_q3_K);
	set(t, SLM_DTYPE_Q4_K, SLM_DTYPE_Q8_K, ref_Q4_K, deq_Q4_K,
	    dot_q4_K_q8_K, gemm_q4_K);
	set(t, SLM_DTYPE_Q5_K, SLM_DTYPE_Q8_K, ref_Q5_K, deq_Q5_K,
	    dot_q5_K_q8_K, gemm_q5_K);
	set(t, SLM_DTYPE_Q6_K, SLM_DTYPE_Q8_K, ref_Q6_K, deq_Q6_K,
	    dot_q6_K_q8_K, gemm_q6_K);
	set(t, SLM_DTYPE_Q8_K, SLM_DTYPE_Q8_K, act_q8_K, deq_Q8_K, NULL, NULL);
}
