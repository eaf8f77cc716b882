/*
 * quant_ref.c: the reference conversions between f32 and the GGUF block
 * formats (see quant.h).
 *
 * The quantizers reproduce llama.cpp's reference quantizers operation for
 * operation, because a file made here must equal, byte for byte, one made
 * by llama-quantize from the same F32 source.  That fixes more than the
 * algorithm: every float expression below is evaluated in the order and
 * the precision ggml's C code evaluates it (single precision, left to
 * right, no fused multiply-add: ggml's quantizers live in ggml-base, which
 * is built for the plain x86-64 baseline, so the compiler cannot contract
 * a*b+c there).  Do not "simplify" an expression here: reordering a sum,
 * hoisting a reciprocal or merging a multiply and an add changes which way
 * some values round, and the golden-file tests will say so.
 *
 * The searches of the K-quants (make_qkx2_quants, make_q3_quants,
 * make_qx_quants in ggml) are documented public algorithms; they are
 * written out again here from their description, with the same constants.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "common/err.h"
#include "engine/quant.h"
#include "engine/quant_int.h"

/* Below this magnitude a group counts as all zero (ggml's GROUP_MAX_EPS). */
#define GROUP_EPS 1e-15f

static inline uint32_t f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

static inline float f32_from_bits(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

/* ---- half and bfloat16 -------------------------------------------------- */

float slm_fp16_to_f32(slm_fp16 h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t mant = h & 0x3ff;
	if (exp == 0x1f) /* inf or NaN: keep the payload */
		return f32_from_bits(sign | 0x7f800000 | (mant << 13));
	if (exp == 0) {
		/* zero or subnormal: mant * 2^-24, exact in f32 */
		float v = (float)mant * 0x1p-24f;
		return sign ? -v : v;
	}
	return f32_from_bits(sign | ((exp + 112) << 23) | (mant << 13));
}

slm_fp16 slm_f32_to_fp16(float f)
{
	uint32_t x = f32_bits(f);
	uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
	uint32_t ax = x & 0x7fffffff;
	if (ax > 0x7f800000) /* NaN: quiet, as ggml writes it */
		return sign | 0x7e00;
	if (ax >= 0x477ff000) /* >= 65520 rounds to infinity */
		return sign | 0x7c00;
	if (ax >= 0x38800000) {
		/* normal half: round the mantissa to 10 bits, nearest even;
		 * a carry moves into the exponent as it should. */
		uint32_t r = ax + 0xfff + ((ax >> 13) & 1);
		return sign | (uint16_t)((r - 0x38000000) >> 13);
	}
	/* subnormal half (units of 2^-24) or zero: adding 0.5 leaves the
	 * value rounded, nearest even, to a multiple of 2^-24 in the low
	 * mantissa bits of 0.5. */
	float v = f32_from_bits(ax) + 0.5f;
	return sign | (uint16_t)(f32_bits(v) - f32_bits(0.5f));
}

float slm_bf16_to_f32(slm_bf16 h)
{
	return f32_from_bits((uint32_t)h << 16);
}

slm_bf16 slm_f32_to_bf16(float f)
{
	uint32_t u = f32_bits(f);
	if ((u & 0x7fffffff) > 0x7f800000) /* NaN: keep it NaN, quiet */
		return (slm_bf16)((u >> 16) | 0x40);
	return (slm_bf16)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

/* ---- helpers shared by the K-quant searches ---------------------------- */

/*
 * Rounding is slm_nearest_int (quant_int.h): ggml adds 1.5 * 2^23, which
 * is what makes `nearest(a * b)` depend on the product being rounded to
 * f32 first.
 */

static inline int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/*
 * Best scale and minimum for n values quantized to 0..nmax with
 * x ~ scale * L + min (min <= 0), weighted by w: start from the range,
 * then try nstep+1 scales around it, each fitted by weighted least
 * squares, and keep the one with the smallest weighted error (absolute
 * when use_mad, squared otherwise).  Returns the scale; *neg_min = -min.
 */
static float fit_scale_min(int n, int nmax, const float *x, const float *w,
			   uint8_t *L, float *neg_min, uint8_t *Laux,
			   float rmin, float rdelta, int nstep, bool use_mad)
{
	float min = x[0];
	float max = x[0];
	float sum_w = w[0];
	float sum_x = sum_w * x[0];
	for (int i = 1; i < n; i++) {
		if (x[i] < min)
			min = x[i];
		if (x[i] > max)
			max = x[i];
		sum_w += w[i];
		sum_x += w[i] * x[i];
	}
	if (min > 0)
		min = 0;
	if (max == min) {
		memset(L, 0, (size_t)n);
		*neg_min = -min;
		return 0.f;
	}
	float iscale = (float)nmax / (max - min);
	float scale = 1 / iscale;
	float best_error = 0;
	for (int i = 0; i < n; i++) {
		int l = slm_nearest_int(iscale * (x[i] - min));
		L[i] = (uint8_t)clampi(l, 0, nmax);
		float diff = scale * L[i] + min - x[i];
		diff = use_mad ? fabsf(diff) : diff * diff;
		best_error += w[i] * diff;
	}
	if (nstep < 1) {
		*neg_min = -min;
		return scale;
	}
	for (int is = 0; is <= nstep; is++) {
		iscale =
			(rmin + rdelta * (float)is + (float)nmax) / (max - min);
		float sum_l = 0, sum_l2 = 0, sum_xl = 0;
		for (int i = 0; i < n; i++) {
			int l = clampi(slm_nearest_int(iscale * (x[i] - min)),
				       0, nmax);
			Laux[i] = (uint8_t)l;
			float wl = w[i] * (float)l;
			sum_l += wl;
			sum_l2 += wl * (float)l;
			sum_xl += wl * x[i];
		}
		float D = sum_w * sum_l2 - sum_l * sum_l;
		if (D > 0) {
			float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
			float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
			if (this_min > 0) {
				this_min = 0;
				this_scale = sum_xl / sum_l2;
			}
			float cur_error = 0;
			for (int i = 0; i < n; i++) {
				float diff =
					this_scale * Laux[i] + this_min - x[i];
				diff = use_mad ? fabsf(diff) : diff * diff;
				cur_error += w[i] * diff;
			}
			if (cur_error < best_error) {
				memcpy(L, Laux, (size_t)n);
				best_error = cur_error;
				scale = this_scale;
				min = this_min;
			}
		}
	}
	*neg_min = -min;
	return scale;
}

/*
 * Signed scale for n values quantized to -nmax..nmax-1, weighted by x^2:
 * start from the value of largest magnitude, then move single values to
 * a better level while that raises sumlx^2/suml2 (up to five passes).
 * L gets levels + nmax; returns the scale.  (ggml's make_q3_quants with
 * do_rmse.)
 */
static float fit_scale_q3(int n, int nmax, const float *x, int8_t *L)
{
	float max = 0;
	float amax = 0;
	for (int i = 0; i < n; i++) {
		float ax = fabsf(x[i]);
		if (ax > amax) {
			amax = ax;
			max = x[i];
		}
	}
	if (amax < GROUP_EPS) {
		memset(L, 0, (size_t)n);
		return 0.f;
	}
	float iscale = (float)-nmax / max;
	float sumlx = 0;
	float suml2 = 0;
	for (int i = 0; i < n; i++) {
		int l = clampi(slm_nearest_int(iscale * x[i]), -nmax, nmax - 1);
		L[i] = (int8_t)l;
		float w = x[i] * x[i];
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	for (int itry = 0; itry < 5; itry++) {
		int n_changed = 0;
		for (int i = 0; i < n; i++) {
			float w = x[i] * x[i];
			float slx = sumlx - w * x[i] * (float)L[i];
			if (slx > 0) {
				float sl2 =
					suml2 - w * (float)L[i] * (float)L[i];
				int new_l = clampi(
					slm_nearest_int(x[i] * sl2 / slx),
					-nmax, nmax - 1);
				if (new_l != L[i]) {
					slx += w * x[i] * (float)new_l;
					sl2 += w * (float)new_l * (float)new_l;
					if (sl2 > 0 &&
					    slx * slx * suml2 >
						    sumlx * sumlx * sl2) {
						L[i] = (int8_t)new_l;
						sumlx = slx;
						suml2 = sl2;
						n_changed++;
					}
				}
			}
		}
		if (!n_changed)
			break;
	}
	for (int i = 0; i < n; i++)
		L[i] = (int8_t)(L[i] + nmax);
	return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/*
 * Signed scale for n values quantized to -nmax..nmax-1, weighted by x^2:
 * the scale of the largest magnitude, then 18 scales around it, keeping
 * the one that maximises sumlx^2/suml2.  L gets levels + nmax.  (ggml's
 * make_qx_quants with rmse_type 1 and no importance weights.)
 */
static float fit_scale_qx(int n, int nmax, const float *x, int8_t *L)
{
	float max = 0;
	float amax = 0;
	for (int i = 0; i < n; i++) {
		float ax = fabsf(x[i]);
		if (ax > amax) {
			amax = ax;
			max = x[i];
		}
	}
	if (amax < GROUP_EPS) {
		memset(L, 0, (size_t)n);
		return 0.f;
	}
	float iscale = (float)-nmax / max;
	float sumlx = 0;
	float suml2 = 0;
	for (int i = 0; i < n; i++) {
		int l = clampi(slm_nearest_int(iscale * x[i]), -nmax, nmax - 1);
		L[i] = (int8_t)(l + nmax);
		float w = x[i] * x[i];
		sumlx += w * x[i] * (float)l;
		suml2 += w * (float)l * (float)l;
	}
	float scale = suml2 ? sumlx / suml2 : 0.0f;
	float best = scale * sumlx;
	for (int is = -9; is <= 9; is++) {
		if (is == 0)
			continue;
		iscale = -((float)nmax + 0.1f * (float)is) / max;
		sumlx = suml2 = 0;
		for (int i = 0; i < n; i++) {
			int l = clampi(slm_nearest_int(iscale * x[i]), -nmax,
				       nmax - 1);
			float w = x[i] * x[i];
			sumlx += w * x[i] * (float)l;
			suml2 += w * (float)l * (float)l;
		}
		if (suml2 > 0 && sumlx * sumlx > best * suml2) {
			for (int i = 0; i < n; i++) {
				int l = slm_nearest_int(iscale * x[i]);
				L[i] = (int8_t)(nmax +
						clampi(l, -nmax, nmax - 1));
			}
			scale = sumlx / suml2;
			best = scale * sumlx;
		}
	}
	return scale;
}

static inline void k4_pack(uint8_t *scales, int j, uint8_t ls, uint8_t lm)
{
	if (j < 4) {
		scales[j] = ls;
		scales[j + 4] = lm;
	} else {
		scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
		scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
		scales[j] |= (uint8_t)((lm >> 4) << 6);
	}
}

/* ---- legacy formats ----------------------------------------------------- */

static void quantize_q4_0(const float *x, struct block_q4_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK4_0) {
		float amax = 0.0f;
		float max = 0.0f;
		for (int j = 0; j < QK4_0; j++) {
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		const float d = max / -8;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = slm_f32_to_fp16(d);
		for (int j = 0; j < QK4_0 / 2; j++) {
			const float x0 = x[j] * id;
			const float x1 = x[QK4_0 / 2 + j] * id;
			int q0 = SLM_MIN(15, (int8_t)(x0 + 8.5f));
			int q1 = SLM_MIN(15, (int8_t)(x1 + 8.5f));
			y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

static void quantize_q4_1(const float *x, struct block_q4_1 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK4_1) {
		float min = FLT_MAX;
		float max = -FLT_MAX;
		for (int j = 0; j < QK4_1; j++) {
			if (x[j] < min)
				min = x[j];
			if (x[j] > max)
				max = x[j];
		}
		const float d = (max - min) / 15;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = slm_f32_to_fp16(d);
		y[i].m = slm_f32_to_fp16(min);
		for (int j = 0; j < QK4_1 / 2; j++) {
			const float x0 = (x[j] - min) * id;
			const float x1 = (x[QK4_1 / 2 + j] - min) * id;
			int q0 = SLM_MIN(15, (int8_t)(x0 + 0.5f));
			int q1 = SLM_MIN(15, (int8_t)(x1 + 0.5f));
			y[i].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

static void quantize_q5_0(const float *x, struct block_q5_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK5_0) {
		float amax = 0.0f;
		float max = 0.0f;
		for (int j = 0; j < QK5_0; j++) {
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		const float d = max / -16;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = slm_f32_to_fp16(d);
		uint32_t qh = 0;
		for (int j = 0; j < QK5_0 / 2; j++) {
			const float x0 = x[j] * id;
			const float x1 = x[QK5_0 / 2 + j] * id;
			uint32_t q0 =
				(uint32_t)SLM_MIN(31, (int8_t)(x0 + 16.5f));
			uint32_t q1 =
				(uint32_t)SLM_MIN(31, (int8_t)(x1 + 16.5f));
			y[i].qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
			qh |= ((q0 & 0x10u) >> 4) << j;
			qh |= ((q1 & 0x10u) >> 4) << (j + QK5_0 / 2);
		}
		memcpy(y[i].qh, &qh, sizeof(qh));
	}
}

static void quantize_q5_1(const float *x, struct block_q5_1 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK5_1) {
		float min = FLT_MAX;
		float max = -FLT_MAX;
		for (int j = 0; j < QK5_1; j++) {
			if (x[j] < min)
				min = x[j];
			if (x[j] > max)
				max = x[j];
		}
		const float d = (max - min) / 31;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = slm_f32_to_fp16(d);
		y[i].m = slm_f32_to_fp16(min);
		uint32_t qh = 0;
		for (int j = 0; j < QK5_1 / 2; j++) {
			const float x0 = (x[j] - min) * id;
			const float x1 = (x[QK5_1 / 2 + j] - min) * id;
			uint32_t q0 = (uint8_t)(x0 + 0.5f);
			uint32_t q1 = (uint8_t)(x1 + 0.5f);
			y[i].qs[j] = (uint8_t)((q0 & 0xF) | ((q1 & 0xF) << 4));
			qh |= ((q0 & 0x10u) >> 4) << j;
			qh |= ((q1 & 0x10u) >> 4) << (j + QK5_1 / 2);
		}
		memcpy(y[i].qh, &qh, sizeof(qh));
	}
}

static void quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK8_0) {
		float amax = 0.0f;
		for (int j = 0; j < QK8_0; j++)
			amax = SLM_MAX(amax, fabsf(x[j]));
		const float d = amax / 127;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = slm_f32_to_fp16(d);
		for (int j = 0; j < QK8_0; j++)
			y[i].qs[j] = (int8_t)roundf(x[j] * id);
	}
}

static void quantize_q8_1(const float *x, struct block_q8_1 *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK8_1) {
		float amax = 0.0f;
		for (int j = 0; j < QK8_1; j++)
			amax = SLM_MAX(amax, fabsf(x[j]));
		const float d = amax / 127;
		const float id = d ? 1.0f / d : 0.0f;
		y[i].d = slm_f32_to_fp16(d);
		int sum = 0;
		for (int j = 0; j < QK8_1; j++) {
			y[i].qs[j] = (int8_t)roundf(x[j] * id);
			sum += y[i].qs[j];
		}
		y[i].s = slm_f32_to_fp16((float)sum * d);
	}
}

/* ---- K-quants ------------------------------------------------------------ */

static void quantize_q2_K(const float *x, struct block_q2_K *y, int64_t nb)
{
	uint8_t L[QK_K];
	uint8_t Laux[16];
	float w[16];
	float mins[QK_K / 16];
	float scales[QK_K / 16];
	const float q4scale = 15.f;

	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		float max_scale = 0;
		float max_min = 0;
		for (int j = 0; j < QK_K / 16; j++) {
			for (int l = 0; l < 16; l++)
				w[l] = fabsf(x[16 * j + l]);
			scales[j] = fit_scale_min(16, 3, x + 16 * j, w,
						  L + 16 * j, &mins[j], Laux,
						  -0.5f, 0.1f, 15, true);
			if (scales[j] > max_scale)
				max_scale = scales[j];
			if (mins[j] > max_min)
				max_min = mins[j];
		}
		if (max_scale > 0) {
			float iscale = q4scale / max_scale;
			for (int j = 0; j < QK_K / 16; j++)
				y[i].scales[j] = (uint8_t)slm_nearest_int(
					iscale * scales[j]);
			y[i].d = slm_f32_to_fp16(max_scale / q4scale);
		} else {
			memset(y[i].scales, 0, sizeof(y[i].scales));
			y[i].d = slm_f32_to_fp16(0.f);
		}
		if (max_min > 0) {
			float iscale = q4scale / max_min;
			for (int j = 0; j < QK_K / 16; j++) {
				int l = slm_nearest_int(iscale * mins[j]);
				y[i].scales[j] |= (uint8_t)(l << 4);
			}
			y[i].dmin = slm_f32_to_fp16(max_min / q4scale);
		} else {
			y[i].dmin = slm_f32_to_fp16(0.f);
		}
		/* requantize with the rounded scales; a group whose scale
		 * rounded to zero keeps the levels of its search */
		for (int j = 0; j < QK_K / 16; j++) {
			const float d = slm_fp16_to_f32(y[i].d) *
					(float)(y[i].scales[j] & 0xF);
			if (!d)
				continue;
			const float dm = slm_fp16_to_f32(y[i].dmin) *
					 (float)(y[i].scales[j] >> 4);
			for (int ii = 0; ii < 16; ii++) {
				int l = slm_nearest_int((x[16 * j + ii] + dm) /
							d);
				L[16 * j + ii] = (uint8_t)clampi(l, 0, 3);
			}
		}
		for (int j = 0; j < QK_K; j += 128)
			for (int l = 0; l < 32; l++)
				y[i].qs[j / 4 + l] =
					(uint8_t)(L[j + l] |
						  (L[j + l + 32] << 2) |
						  (L[j + l + 64] << 4) |
						  (L[j + l + 96] << 6));
	}
}

static void quantize_q3_K(const float *x, struct block_q3_K *y, int64_t nb)
{
	int8_t L[QK_K];
	float scales[QK_K / 16];

	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		float max_scale = 0;
		float amax = 0;
		for (int j = 0; j < QK_K / 16; j++) {
			scales[j] = fit_scale_q3(16, 4, x + 16 * j, L + 16 * j);
			float scale = fabsf(scales[j]);
			if (scale > amax) {
				amax = scale;
				max_scale = scales[j];
			}
		}
		memset(y[i].scales, 0, sizeof(y[i].scales));
		if (max_scale) {
			float iscale = -32.f / max_scale;
			for (int j = 0; j < QK_K / 16; j++) {
				int8_t l8 = (int8_t)slm_nearest_int(iscale *
								    scales[j]);
				int l = clampi(l8, -32, 31) + 32;
				if (j < 8)
					y[i].scales[j] = (uint8_t)(l & 0xF);
				else
					y[i].scales[j - 8] |=
						(uint8_t)((l & 0xF) << 4);
				l >>= 4;
				y[i].scales[j % 4 + 8] |=
					(uint8_t)(l << (2 * (j / 4)));
			}
			y[i].d = slm_f32_to_fp16(1 / iscale);
		} else {
			y[i].d = slm_f32_to_fp16(0.f);
		}
		for (int j = 0; j < QK_K / 16; j++) {
			float d = slm_fp16_to_f32(y[i].d) *
				  (float)(int8_t)slm_q3k_scale(y[i].scales, j);
			if (!d)
				continue;
			for (int ii = 0; ii < 16; ii++) {
				int l = slm_nearest_int(x[16 * j + ii] / d);
				L[16 * j + ii] = (int8_t)(clampi(l, -4, 3) + 4);
			}
		}
		/* high bit of value j goes to bit j/32 of hmask[j%32] */
		memset(y[i].hmask, 0, sizeof(y[i].hmask));
		for (int j = 0; j < QK_K; j++) {
			if (L[j] > 3) {
				y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
				L[j] -= 4;
			}
		}
		for (int j = 0; j < QK_K; j += 128)
			for (int l = 0; l < 32; l++)
				y[i].qs[j / 4 + l] =
					(uint8_t)(L[j + l] |
						  (L[j + l + 32] << 2) |
						  (L[j + l + 64] << 4) |
						  (L[j + l + 96] << 6));
	}
}

/*
 * Q4_K and Q5_K share their search: 8 groups of 32, each fitted with a
 * scale and a min (weights |x| + rms of the group), the 8 scales and 8
 * mins then quantized to 6 bits against the largest.
 */
static void k45_scales(const float *x, int nmax, float rmin, int nstep,
		       uint8_t *L, uint8_t *packed, slm_fp16 *d_out,
		       slm_fp16 *dmin_out)
{
	uint8_t Laux[32];
	float w[32];
	float mins[QK_K / 32];
	float scales[QK_K / 32];
	float max_scale = 0;
	float max_min = 0;
	for (int j = 0; j < QK_K / 32; j++) {
		float sum_x2 = 0;
		for (int l = 0; l < 32; l++)
			sum_x2 += x[32 * j + l] * x[32 * j + l];
		float av_x = sqrtf(sum_x2 / 32);
		for (int l = 0; l < 32; l++)
			w[l] = av_x + fabsf(x[32 * j + l]);
		scales[j] =
			fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j,
				      &mins[j], Laux, rmin, 0.1f, nstep, false);
		if (scales[j] > max_scale)
			max_scale = scales[j];
		if (mins[j] > max_min)
			max_min = mins[j];
	}
	float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
	float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
	memset(packed, 0, K_SCALE_SIZE);
	for (int j = 0; j < QK_K / 32; j++) {
		uint8_t ls = (uint8_t)slm_nearest_int(inv_scale * scales[j]);
		uint8_t lm = (uint8_t)slm_nearest_int(inv_min * mins[j]);
		k4_pack(packed, j, SLM_MIN(63, ls), SLM_MIN(63, lm));
	}
	*d_out = slm_f32_to_fp16(max_scale / 63.f);
	*dmin_out = slm_f32_to_fp16(max_min / 63.f);
	for (int j = 0; j < QK_K / 32; j++) {
		uint8_t sc, m;
		slm_k4_scale_min(j, packed, &sc, &m);
		const float d = slm_fp16_to_f32(*d_out) * (float)sc;
		if (!d)
			continue;
		const float dm = slm_fp16_to_f32(*dmin_out) * (float)m;
		for (int ii = 0; ii < 32; ii++) {
			int l = slm_nearest_int((x[32 * j + ii] + dm) / d);
			L[32 * j + ii] = (uint8_t)clampi(l, 0, nmax);
		}
	}
}

static void quantize_q4_K(const float *x, struct block_q4_K *y, int64_t nb)
{
	uint8_t L[QK_K];
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		k45_scales(x, 15, -1.f, 20, L, y[i].scales, &y[i].d,
			   &y[i].dmin);
		uint8_t *q = y[i].qs;
		for (int j = 0; j < QK_K; j += 64, q += 32)
			for (int l = 0; l < 32; l++)
				q[l] = (uint8_t)(L[j + l] |
						 (L[j + l + 32] << 4));
	}
}

static void quantize_q5_K(const float *x, struct block_q5_K *y, int64_t nb)
{
	uint8_t L[QK_K];
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		k45_scales(x, 31, -0.5f, 15, L, y[i].scales, &y[i].d,
			   &y[i].dmin);
		uint8_t *qh = y[i].qh;
		uint8_t *ql = y[i].qs;
		memset(qh, 0, QK_K / 8);
		uint8_t m1 = 1, m2 = 2;
		for (int n = 0; n < QK_K; n += 64, ql += 32) {
			for (int j = 0; j < 32; j++) {
				int l1 = L[n + j];
				if (l1 > 15) {
					l1 -= 16;
					qh[j] |= m1;
				}
				int l2 = L[n + j + 32];
				if (l2 > 15) {
					l2 -= 16;
					qh[j] |= m2;
				}
				ql[j] = (uint8_t)(l1 | (l2 << 4));
			}
			m1 = (uint8_t)(m1 << 2);
			m2 = (uint8_t)(m2 << 2);
		}
	}
}

static void quantize_q6_K(const float *x, struct block_q6_K *y, int64_t nb)
{
	int8_t L[QK_K];
	float scales[QK_K / 16];

	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		float max_scale = 0;
		float max_abs_scale = 0;
		for (int ib = 0; ib < QK_K / 16; ib++) {
			const float scale =
				fit_scale_qx(16, 32, x + 16 * ib, L + 16 * ib);
			scales[ib] = scale;
			if (fabsf(scale) > max_abs_scale) {
				max_abs_scale = fabsf(scale);
				max_scale = scale;
			}
		}
		if (max_abs_scale < GROUP_EPS) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		float iscale = -128.f / max_scale;
		y[i].d = slm_f32_to_fp16(1 / iscale);
		for (int ib = 0; ib < QK_K / 16; ib++)
			y[i].scales[ib] = (int8_t)SLM_MIN(
				127, slm_nearest_int(iscale * scales[ib]));
		for (int j = 0; j < QK_K / 16; j++) {
			float d =
				slm_fp16_to_f32(y[i].d) * (float)y[i].scales[j];
			if (!d)
				continue;
			for (int ii = 0; ii < 16; ii++) {
				int l = slm_nearest_int(x[16 * j + ii] / d);
				L[16 * j + ii] =
					(int8_t)(clampi(l, -32, 31) + 32);
			}
		}
		uint8_t *ql = y[i].ql;
		uint8_t *qh = y[i].qh;
		for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
			for (int l = 0; l < 32; l++) {
				const uint8_t q1 = L[j + l] & 0xF;
				const uint8_t q2 = L[j + l + 32] & 0xF;
				const uint8_t q3 = L[j + l + 64] & 0xF;
				const uint8_t q4 = L[j + l + 96] & 0xF;
				ql[l] = (uint8_t)(q1 | (q3 << 4));
				ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
				qh[l] = (uint8_t)((L[j + l] >> 4) |
						  ((L[j + l + 32] >> 4) << 2) |
						  ((L[j + l + 64] >> 4) << 4) |
						  ((L[j + l + 96] >> 4) << 6));
			}
		}
	}
}

static void quantize_q8_K(const float *x, struct block_q8_K *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, x += QK_K) {
		float max = 0;
		float amax = 0;
		for (int j = 0; j < QK_K; j++) {
			float ax = fabsf(x[j]);
			if (ax > amax) {
				amax = ax;
				max = x[j];
			}
		}
		if (!amax) {
			memset(&y[i], 0, sizeof(y[i]));
			continue;
		}
		const float iscale = -127.f / max;
		for (int j = 0; j < QK_K; j++)
			y[i].qs[j] = (int8_t)SLM_MIN(
				127, slm_nearest_int(iscale * x[j]));
		for (int j = 0; j < QK_K / 16; j++) {
			int sum = 0;
			for (int ii = 0; ii < 16; ii++)
				sum += y[i].qs[j * 16 + ii];
			y[i].bsums[j] = (int16_t)sum;
		}
		y[i].d = 1 / iscale;
	}
}

int slm_quantize_ref(enum slm_dtype type, const float *x, void *y, int64_t n)
{
	uint32_t block = slm_dtype_block(type);
	if (block == 0)
		return SLM_EUNSUPPORTED;
	if (n < 0 || n % block)
		return SLM_EINVAL;
	int64_t nb = n / block;
	switch (type) {
	case SLM_DTYPE_F32:
		memcpy(y, x, (size_t)n * sizeof(float));
		return 0;
	case SLM_DTYPE_F16:
		for (int64_t i = 0; i < n; i++)
			((slm_fp16 *)y)[i] = slm_f32_to_fp16(x[i]);
		return 0;
	case SLM_DTYPE_BF16:
		for (int64_t i = 0; i < n; i++)
			((slm_bf16 *)y)[i] = slm_f32_to_bf16(x[i]);
		return 0;
	case SLM_DTYPE_Q4_0:
		quantize_q4_0(x, y, nb);
		return 0;
	case SLM_DTYPE_Q4_1:
		quantize_q4_1(x, y, nb);
		return 0;
	case SLM_DTYPE_Q5_0:
		quantize_q5_0(x, y, nb);
		return 0;
	case SLM_DTYPE_Q5_1:
		quantize_q5_1(x, y, nb);
		return 0;
	case SLM_DTYPE_Q8_0:
		quantize_q8_0(x, y, nb);
		return 0;
	case SLM_DTYPE_Q8_1:
		quantize_q8_1(x, y, nb);
		return 0;
	case SLM_DTYPE_Q2_K:
		quantize_q2_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q3_K:
		quantize_q3_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q4_K:
		quantize_q4_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q5_K:
		quantize_q5_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q6_K:
		quantize_q6_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q8_K:
		quantize_q8_K(x, y, nb);
		return 0;
	default:
		return SLM_EUNSUPPORTED;
	}
}

/* ---- dequantization --------------------------------------------------- */

static void dequantize_q4_0(const struct block_q4_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK4_0) {
		const float d = slm_fp16_to_f32(x[i].d);
		for (int j = 0; j < QK4_0 / 2; j++) {
			y[j] = (float)((x[i].qs[j] & 0xF) - 8) * d;
			y[j + QK4_0 / 2] = (float)((x[i].qs[j] >> 4) - 8) * d;
		}
	}
}

static void dequantize_q4_1(const struct block_q4_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK4_1) {
		const float d = slm_fp16_to_f32(x[i].d);
		const float m = slm_fp16_to_f32(x[i].m);
		for (int j = 0; j < QK4_1 / 2; j++) {
			y[j] = (float)(x[i].qs[j] & 0xF) * d + m;
			y[j + QK4_1 / 2] = (float)(x[i].qs[j] >> 4) * d + m;
		}
	}
}

static void dequantize_q5_0(const struct block_q5_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK5_0) {
		const float d = slm_fp16_to_f32(x[i].d);
		uint32_t qh;
		memcpy(&qh, x[i].qh, sizeof(qh));
		for (int j = 0; j < QK5_0 / 2; j++) {
			int h0 = ((qh >> j) << 4) & 0x10;
			int h1 = (qh >> (j + 12)) & 0x10;
			y[j] = (float)(((x[i].qs[j] & 0xF) | h0) - 16) * d;
			y[j + QK5_0 / 2] =
				(float)(((x[i].qs[j] >> 4) | h1) - 16) * d;
		}
	}
}

static void dequantize_q5_1(const struct block_q5_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK5_1) {
		const float d = slm_fp16_to_f32(x[i].d);
		const float m = slm_fp16_to_f32(x[i].m);
		uint32_t qh;
		memcpy(&qh, x[i].qh, sizeof(qh));
		for (int j = 0; j < QK5_1 / 2; j++) {
			int h0 = ((qh >> j) << 4) & 0x10;
			int h1 = (qh >> (j + 12)) & 0x10;
			y[j] = (float)((x[i].qs[j] & 0xF) | h0) * d + m;
			y[j + QK5_1 / 2] =
				(float)((x[i].qs[j] >> 4) | h1) * d + m;
		}
	}
}

static void dequantize_q8_0(const struct block_q8_0 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK8_0) {
		const float d = slm_fp16_to_f32(x[i].d);
		for (int j = 0; j < QK8_0; j++)
			y[j] = (float)x[i].qs[j] * d;
	}
}

static void dequantize_q8_1(const struct block_q8_1 *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK8_1) {
		const float d = slm_fp16_to_f32(x[i].d);
		for (int j = 0; j < QK8_1; j++)
			y[j] = (float)x[i].qs[j] * d;
	}
}

static void dequantize_q2_K(const struct block_q2_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const float d = slm_fp16_to_f32(x[i].d);
		const float min = slm_fp16_to_f32(x[i].dmin);
		const uint8_t *q = x[i].qs;
		int is = 0;
		for (int n = 0; n < QK_K; n += 128, q += 32) {
			for (int shift = 0; shift < 8; shift += 2) {
				for (int half = 0; half < 2; half++) {
					uint8_t sc = x[i].scales[is++];
					float dl = d * (float)(sc & 0xF);
					float ml = min * (float)(sc >> 4);
					const uint8_t *qq = q + 16 * half;
					for (int l = 0; l < 16; l++)
						*y++ = dl * (float)((qq[l] >>
								     shift) &
								    3) -
						       ml;
				}
			}
		}
	}
}

static void dequantize_q3_K(const struct block_q3_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const float d_all = slm_fp16_to_f32(x[i].d);
		const uint8_t *q = x[i].qs;
		const uint8_t *hm = x[i].hmask;
		uint8_t m = 1;
		int is = 0;
		for (int n = 0; n < QK_K; n += 128, q += 32) {
			for (int shift = 0; shift < 8; shift += 2) {
				for (int half = 0; half < 2; half++) {
					float dl = d_all *
						   (float)slm_q3k_scale(
							   x[i].scales, is++);
					const uint8_t *qq = q + 16 * half;
					const uint8_t *hh = hm + 16 * half;
					for (int l = 0; l < 16; l++) {
						int v = ((qq[l] >> shift) & 3) -
							((hh[l] & m) ? 0 : 4);
						*y++ = dl * (float)v;
					}
				}
				m = (uint8_t)(m << 1);
			}
		}
	}
}

static void dequantize_q4_K(const struct block_q4_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *q = x[i].qs;
		const float d = slm_fp16_to_f32(x[i].d);
		const float min = slm_fp16_to_f32(x[i].dmin);
		for (int is = 0; is < 8; is += 2, q += 32) {
			uint8_t sc, m;
			slm_k4_scale_min(is, x[i].scales, &sc, &m);
			const float d1 = d * (float)sc, m1 = min * (float)m;
			slm_k4_scale_min(is + 1, x[i].scales, &sc, &m);
			const float d2 = d * (float)sc, m2 = min * (float)m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (float)(q[l] & 0xF) - m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (float)(q[l] >> 4) - m2;
		}
	}
}

static void dequantize_q5_K(const struct block_q5_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const uint8_t *ql = x[i].qs;
		const uint8_t *qh = x[i].qh;
		const float d = slm_fp16_to_f32(x[i].d);
		const float min = slm_fp16_to_f32(x[i].dmin);
		uint8_t u1 = 1, u2 = 2;
		for (int is = 0; is < 8; is += 2, ql += 32) {
			uint8_t sc, m;
			slm_k4_scale_min(is, x[i].scales, &sc, &m);
			const float d1 = d * (float)sc, m1 = min * (float)m;
			slm_k4_scale_min(is + 1, x[i].scales, &sc, &m);
			const float d2 = d * (float)sc, m2 = min * (float)m;
			for (int l = 0; l < 32; l++)
				*y++ = d1 * (float)((ql[l] & 0xF) +
						    (qh[l] & u1 ? 16 : 0)) -
				       m1;
			for (int l = 0; l < 32; l++)
				*y++ = d2 * (float)((ql[l] >> 4) +
						    (qh[l] & u2 ? 16 : 0)) -
				       m2;
			u1 = (uint8_t)(u1 << 2);
			u2 = (uint8_t)(u2 << 2);
		}
	}
}

static void dequantize_q6_K(const struct block_q6_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++) {
		const float d = slm_fp16_to_f32(x[i].d);
		const uint8_t *ql = x[i].ql;
		const uint8_t *qh = x[i].qh;
		const int8_t *sc = x[i].scales;
		for (int n = 0; n < QK_K; n += 128) {
			for (int l = 0; l < 32; l++) {
				int is = l / 16;
				int q1 = ((ql[l] & 0xF) |
					  (((qh[l] >> 0) & 3) << 4)) -
					 32;
				int q2 = ((ql[l + 32] & 0xF) |
					  (((qh[l] >> 2) & 3) << 4)) -
					 32;
				int q3 = ((ql[l] >> 4) |
					  (((qh[l] >> 4) & 3) << 4)) -
					 32;
				int q4 = ((ql[l + 32] >> 4) |
					  (((qh[l] >> 6) & 3) << 4)) -
					 32;
				y[l] = d * (float)sc[is + 0] * (float)q1;
				y[l + 32] = d * (float)sc[is + 2] * (float)q2;
				y[l + 64] = d * (float)sc[is + 4] * (float)q3;
				y[l + 96] = d * (float)sc[is + 6] * (float)q4;
			}
			y += 128;
			ql += 64;
			qh += 32;
			sc += 8;
		}
	}
}

static void dequantize_q8_K(const struct block_q8_K *x, float *y, int64_t nb)
{
	for (int64_t i = 0; i < nb; i++, y += QK_K)
		for (int j = 0; j < QK_K; j++)
			y[j] = x[i].d * (float)x[i].qs[j];
}

int slm_dequantize(enum slm_dtype type, const void *x, float *y, int64_t n)
{
	uint32_t block = slm_dtype_block(type);
	if (block == 0)
		return SLM_EUNSUPPORTED;
	if (n < 0 || n % block)
		return SLM_EINVAL;
	int64_t nb = n / block;
	switch (type) {
	case SLM_DTYPE_F32:
		memcpy(y, x, (size_t)n * sizeof(float));
		return 0;
	case SLM_DTYPE_F16:
		for (int64_t i = 0; i < n; i++)
			y[i] = slm_fp16_to_f32(((const slm_fp16 *)x)[i]);
		return 0;
	case SLM_DTYPE_BF16:
		for (int64_t i = 0; i < n; i++)
			y[i] = slm_bf16_to_f32(((const slm_bf16 *)x)[i]);
		return 0;
	case SLM_DTYPE_Q4_0:
		dequantize_q4_0(x, y, nb);
		return 0;
	case SLM_DTYPE_Q4_1:
		dequantize_q4_1(x, y, nb);
		return 0;
	case SLM_DTYPE_Q5_0:
		dequantize_q5_0(x, y, nb);
		return 0;
	case SLM_DTYPE_Q5_1:
		dequantize_q5_1(x, y, nb);
		return 0;
	case SLM_DTYPE_Q8_0:
		dequantize_q8_0(x, y, nb);
		return 0;
	case SLM_DTYPE_Q8_1:
		dequantize_q8_1(x, y, nb);
		return 0;
	case SLM_DTYPE_Q2_K:
		dequantize_q2_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q3_K:
		dequantize_q3_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q4_K:
		dequantize_q4_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q5_K:
		dequantize_q5_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q6_K:
		dequantize_q6_K(x, y, nb);
		return 0;
	case SLM_DTYPE_Q8_K:
		dequantize_q8_K(x, y, nb);
		return 0;
	default:
		return SLM_EUNSUPPORTED;
	}
}
