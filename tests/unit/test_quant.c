#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/dtype.h"
#include "engine/gguf.h"
#include "engine/matmul.h"
#include "engine/matmul_int.h"
#include "engine/quant.h"
#include "engine/threadpool.h"
#include "tests/unit/harness.h"

/* ---- half and bfloat16 conversions ------------------------------------- */

static uint32_t bits_of(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

static float float_of(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * Every half survives half -> f32 -> half; the midpoint between two
 * neighbouring halves rounds to the even one, and one f32 ulp either side
 * of it rounds to the nearer; values from 65520 up become infinity.
 */
static void test_fp16(void)
{
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = slm_fp16_to_f32((slm_fp16)h);
		if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) {
			CU_ASSERT(isnan(f));
			CU_ASSERT_EQUAL(slm_f32_to_fp16(f) & 0x7e00, 0x7e00);
			continue;
		}
		CU_ASSERT_EQUAL_FATAL(slm_f32_to_fp16(f), h);
	}
	/* positive finite neighbours, including across the subnormal edge */
	for (uint32_t h = 0; h < 0x7bff; h++) {
		float a = slm_fp16_to_f32((slm_fp16)h);
		float b = slm_fp16_to_f32((slm_fp16)(h + 1));
		float mid = (float)(((double)a + (double)b) / 2);
		CU_ASSERT_EQUAL_FATAL((double)mid, ((double)a + (double)b) / 2);
		uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
		CU_ASSERT_EQUAL_FATAL(slm_f32_to_fp16(mid), even);
		CU_ASSERT_EQUAL_FATAL(slm_f32_to_fp16(-mid), even | 0x8000);
		CU_ASSERT_EQUAL_FATAL(
			slm_f32_to_fp16(float_of(bits_of(mid) - 1)), h);
		CU_ASSERT_EQUAL_FATAL(
			slm_f32_to_fp16(float_of(bits_of(mid) + 1)), h + 1);
	}
	CU_ASSERT_EQUAL(slm_f32_to_fp16(65504.f), 0x7bff);
	CU_ASSERT_EQUAL(slm_f32_to_fp16(65519.99f), 0x7bff);
	CU_ASSERT_EQUAL(slm_f32_to_fp16(65520.f), 0x7c00);
	CU_ASSERT_EQUAL(slm_f32_to_fp16(-1e30f), 0xfc00);
	CU_ASSERT_EQUAL(slm_f32_to_fp16(INFINITY), 0x7c00);
	CU_ASSERT_EQUAL(slm_f32_to_fp16(1e-30f), 0);
	CU_ASSERT_EQUAL(slm_f32_to_fp16(-0.0f), 0x8000);
	CU_ASSERT_EQUAL(slm_f32_to_fp16(0x1p-25f), 0);	 /* tie: to even 0 */
	CU_ASSERT_EQUAL(slm_f32_to_fp16(0x1.8p-24f), 2); /* tie: to even 2 */
}

static void test_bf16(void)
{
	for (uint32_t h = 0; h < 0x10000; h++) {
		float f = slm_bf16_to_f32((slm_bf16)h);
		if (isnan(f)) {
			CU_ASSERT(isnan(slm_bf16_to_f32(slm_f32_to_bf16(f))));
			continue;
		}
		CU_ASSERT_EQUAL_FATAL(slm_f32_to_bf16(f), h);
		if ((h & 0x7fff) >= 0x7f7f)
			continue;
		/* the midpoint to the next one up (in magnitude) */
		uint32_t mid = ((uint32_t)h << 16) + 0x8000;
		uint16_t even = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
		CU_ASSERT_EQUAL_FATAL(slm_f32_to_bf16(float_of(mid)), even);
		CU_ASSERT_EQUAL_FATAL(slm_f32_to_bf16(float_of(mid - 1)), h);
		CU_ASSERT_EQUAL_FATAL(slm_f32_to_bf16(float_of(mid + 1)),
				      h + 1);
	}
	CU_ASSERT_EQUAL(slm_f32_to_bf16(float_of(0x7f7fffff)), 0x7f80);
	CU_ASSERT(isnan(slm_bf16_to_f32(slm_f32_to_bf16(NAN))));
}

/* ---- round trips ------------------------------------------------------- */

/*
 * The named error budget of each type: rms(dequantize(quantize(x)) - x)
 * over rms(x) for Gaussian x, about 1.3 times what the format gives (so a
 * broken scale or packing fails, a rounding change does not).
 */
static const struct {
	enum slm_dtype type;
	double budget;
} round_trip_budget[] = {
	{SLM_DTYPE_F32, 0.0},	 {SLM_DTYPE_F16, 4e-4},
	{SLM_DTYPE_BF16, 3e-3},	 {SLM_DTYPE_Q8_0, 6e-3},
	{SLM_DTYPE_Q8_1, 6e-3},	 {SLM_DTYPE_Q8_K, 9e-3},
	{SLM_DTYPE_Q5_0, 0.045}, {SLM_DTYPE_Q5_1, 0.04},
	{SLM_DTYPE_Q4_0, 0.09},	 {SLM_DTYPE_Q4_1, 0.08},
	{SLM_DTYPE_Q6_K, 0.022}, {SLM_DTYPE_Q5_K, 0.04},
	{SLM_DTYPE_Q4_K, 0.08},	 {SLM_DTYPE_Q3_K, 0.18},
	{SLM_DTYPE_Q2_K, 0.36},
};

static float *normal_vec(struct slm_test_rng *rng, int64_t n, double scale)
{
	float *x = malloc((size_t)n * sizeof(float));
	for (int64_t i = 0; i < n; i++)
		x[i] = (float)(slm_test_normal(rng) * scale);
	return x;
}

static size_t row_size(enum slm_dtype t, int64_t n)
{
	uint64_t b = 0;
	CU_ASSERT_FATAL(slm_dtype_row_bytes(t, (uint64_t)n, &b));
	return (size_t)b;
}

static void test_round_trip(void)
{
	struct slm_test_rng rng = {0x1234567};
	const int64_t n = 256 * 64;
	float *x = normal_vec(&rng, n, 1.0);
	float *y = malloc((size_t)n * sizeof(float));
	void *q = malloc(row_size(SLM_DTYPE_F32, n));
	printf("\n");
	for (size_t i = 0; i < SLM_ARRAY_LEN(round_trip_budget); i++) {
		enum slm_dtype t = round_trip_budget[i].type;
		CU_ASSERT_EQUAL_FATAL(slm_quantize_ref(t, x, q, n), 0);
		CU_ASSERT_EQUAL_FATAL(slm_dequantize(t, q, y, n), 0);
		double e = 0, s = 0;
		for (int64_t k = 0; k < n; k++) {
			e += ((double)y[k] - x[k]) * ((double)y[k] - x[k]);
			s += (double)x[k] * x[k];
		}
		double rel = sqrt(e / s);
		printf("    %-5s relative rms %.5f (budget %.5f)\n",
		       slm_dtype_name(t), rel, round_trip_budget[i].budget);
		CU_ASSERT(rel <= round_trip_budget[i].budget);
		if (t != SLM_DTYPE_F32)
			CU_ASSERT(rel > round_trip_budget[i].budget / 4);
	}
	/* bad input is refused, not crashed on */
	CU_ASSERT_EQUAL(slm_quantize_ref(SLM_DTYPE_Q4_0, x, q, 33), SLM_EINVAL);
	CU_ASSERT_EQUAL(slm_dequantize(SLM_DTYPE_Q4_K, q, y, 100), SLM_EINVAL);
	CU_ASSERT_EQUAL(slm_quantize_ref(SLM_DTYPE_IQ2_XS, x, q, 256),
			SLM_EUNSUPPORTED);
	free(x);
	free(y);
	free(q);
}

/* ---- the kernels of every tier ------------------------------------------ */

static const enum slm_dtype weight_types[] = {
	SLM_DTYPE_F32,	SLM_DTYPE_F16,	SLM_DTYPE_BF16, SLM_DTYPE_Q4_0,
	SLM_DTYPE_Q4_1, SLM_DTYPE_Q5_0, SLM_DTYPE_Q5_1, SLM_DTYPE_Q8_0,
	SLM_DTYPE_Q2_K, SLM_DTYPE_Q3_K, SLM_DTYPE_Q4_K, SLM_DTYPE_Q5_K,
	SLM_DTYPE_Q6_K,
};

static const enum slm_dtype act_types[] = {
	SLM_DTYPE_Q8_0, SLM_DTYPE_Q8_1, SLM_DTYPE_Q8_K,
	SLM_DTYPE_F16,	SLM_DTYPE_BF16, SLM_DTYPE_F32,
};

/* Tiers this CPU cannot run are reported as skipped, each test once. */
static bool tier_runs(enum slm_simd s)
{
	if (slm_cpu_has_simd(s))
		return true;
	slm_test_skip("tier %s: this CPU lacks it (%s)", slm_simd_name(s),
		      slm_cpu_feature_string());
	return false;
}

/*
 * The scalar activation quantizers follow llama.cpp's run-time rounding
 * (checked here against a direct statement of it), and every tier's are
 * bit-identical to the scalar ones.
 */
static void test_act_quantizers(void)
{
	struct slm_test_rng rng = {42};
	const int64_t n = 256 * 12;
	float *x = normal_vec(&rng, n, 3.0);
	/* ties: exact halves after scaling, and a zero block */
	for (int k = 0; k < 32; k++)
		x[k] = (float)(k - 16) * 0.5f;
	x[40] = 127.0f;
	for (int k = 0; k < 32; k++)
		x[64 + k] = 0.0f;
	size_t bytes = row_size(SLM_DTYPE_F32, n);
	uint8_t *want = malloc(bytes), *got = malloc(bytes);
	/* Q8_0 by its definition */
	const struct slm_quant_traits *t0 =
		slm_quant_traits_at(SLM_DTYPE_Q8_0, SLM_SIMD_SCALAR);
	t0->from_float(x, want, n);
	const struct block_q8_0 *b = (const struct block_q8_0 *)want;
	for (int64_t i = 0; i < n / 32; i++) {
		float amax = 0;
		for (int k = 0; k < 32; k++)
			amax = fmaxf(amax, fabsf(x[i * 32 + k]));
		CU_ASSERT_EQUAL(b[i].d, slm_f32_to_fp16(amax / 127.f));
		float id = amax ? 127.f / amax : 0.f;
		for (int k = 0; k < 32; k++)
			CU_ASSERT_EQUAL(b[i].qs[k],
					(int8_t)nearbyintf(x[i * 32 + k] * id));
	}
	/* Q8_K is the reference quantizer */
	slm_quantize_ref(SLM_DTYPE_Q8_K, x, want, n);
	slm_quant_traits_at(SLM_DTYPE_Q8_K, SLM_SIMD_SCALAR)
		->from_float(x, got, n);
	CU_ASSERT(memcmp(want, got, row_size(SLM_DTYPE_Q8_K, n)) == 0);

	for (int s = SLM_SIMD_AVX2; s < SLM_SIMD__COUNT; s++) {
		if (!tier_runs((enum slm_simd)s))
			continue;
		for (size_t i = 0; i < SLM_ARRAY_LEN(act_types); i++) {
			enum slm_dtype at = act_types[i];
			size_t rb = row_size(at, n);
			slm_quant_traits_at(at, SLM_SIMD_SCALAR)
				->from_float(x, want, n);
			memset(got, 0xAA, rb);
			slm_quant_traits_at(at, (enum slm_simd)s)
				->from_float(x, got, n);
			if (memcmp(want, got, rb))
				printf("\n    %s %s activations differ\n",
				       slm_simd_name((enum slm_simd)s),
				       slm_dtype_name(at));
			CU_ASSERT(memcmp(want, got, rb) == 0);
		}
	}
	free(x);
	free(want);
	free(got);
}

/* Sum of |w_i a_i| over dequantized rows (the scale of rounding errors),
 * and the exact dot of the dequantized rows. */
static void deq_dot(enum slm_dtype wt, const void *w, enum slm_dtype at,
		    const void *a, int64_t n, double *dot, double *mag)
{
	float *fw = malloc((size_t)n * sizeof(float));
	float *fa = malloc((size_t)n * sizeof(float));
	slm_dequantize(wt, w, fw, n);
	slm_dequantize(at, a, fa, n);
	double d = 0, m = 0;
	for (int64_t i = 0; i < n; i++) {
		d += (double)fw[i] * fa[i];
		m += fabs((double)fw[i] * fa[i]);
	}
	*dot = d;
	*mag = m;
	free(fw);
	free(fa);
}

/*
 * Q4_1 and Q5_1 take the activation block sum from Q8_1's s, which is
 * d * sum rounded to fp16 (as llama.cpp does): the dot differs from the
 * dequantized rows' by up to |m| * |s| * 2^-11 per block.
 */
static double x1_slack(enum slm_dtype wt, const void *w, enum slm_dtype at,
		       const void *a, int64_t n)
{
	if (at != SLM_DTYPE_Q8_1)
		return 0;
	const struct block_q8_1 *ab = a;
	uint32_t bs = slm_dtype_block_bytes(wt);
	double slack = 0;
	for (int64_t b = 0; b < n / 32; b++) {
		slm_fp16 m;
		memcpy(&m, (const uint8_t *)w + b * bs + 2, 2);
		slack += fabs((double)slm_fp16_to_f32(m) *
			      slm_fp16_to_f32(ab[b].s)) *
			 0x1p-10;
	}
	return slack;
}

/* Rounding bound of a float dot against the exact one. */
static double dot_tolerance(enum slm_dtype wt, double mag)
{
	bool flt = wt == SLM_DTYPE_F32 || wt == SLM_DTYPE_F16 ||
		   wt == SLM_DTYPE_BF16;
	return (flt ? 3e-5 : 2e-5) * mag + 1e-30;
}

/*
 * Random rows, random scales: the scalar dot equals the exact dot of the
 * dequantized rows to rounding, and every tier's dot and tile equal the
 * scalar one to rounding.
 */
static void test_dot_random(void)
{
	struct slm_test_rng rng = {7};
	const int64_t n = 256 * 9; /* odd number of superblocks */
	float *x = normal_vec(&rng, n * 5, 1.0);
	size_t max_row = row_size(SLM_DTYPE_F32, n);
	uint8_t *w = malloc(max_row * 5), *a = malloc(max_row * 5);
	for (size_t ti = 0; ti < SLM_ARRAY_LEN(weight_types); ti++) {
		enum slm_dtype wt = weight_types[ti];
		const struct slm_quant_traits *ts =
			slm_quant_traits_at(wt, SLM_SIMD_SCALAR);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ts);
		enum slm_dtype at = ts->vec_dot_type;
		size_t wrow = row_size(wt, n), arow = row_size(at, n);
		for (int r = 0; r < 5; r++) {
			slm_quantize_ref(wt, x + r * n, w + r * wrow, n);
			slm_quant_traits_at(at, SLM_SIMD_SCALAR)
				->from_float(x + ((r + 2) % 5) * n,
					     a + r * arow, n);
		}
		double dot, mag;
		deq_dot(wt, w, at, a, n, &dot, &mag);
		mag += x1_slack(wt, w, at, a, n) / 2e-5;
		float sd = ts->vec_dot(n, w, a);
		CU_ASSERT(fabs(sd - dot) <= dot_tolerance(wt, mag));
		for (int s = SLM_SIMD_AVX2; s < SLM_SIMD__COUNT; s++) {
			if (!slm_cpu_has_simd((enum slm_simd)s))
				continue;
			const struct slm_quant_traits *tt =
				slm_quant_traits_at(wt, (enum slm_simd)s);
			float d = tt->vec_dot(n, w, a);
			if (fabs(d - sd) > dot_tolerance(wt, mag))
				printf("\n    %s %s dot %.9g scalar %.9g\n",
				       slm_simd_name((enum slm_simd)s),
				       slm_dtype_name(wt), d, sd);
			CU_ASSERT(fabs(d - sd) <= dot_tolerance(wt, mag));
			/* the tile kernel, full and ragged */
			float out[5 * 5];
			for (int nr = 1; nr <= SLM_MIN(5, tt->gemm_mr); nr += 2)
				for (int nc = 1; nc <= SLM_MIN(5, tt->gemm_nr);
				     nc++) {
					memset(out, 0, sizeof(out));
					tt->gemm(n, w, wrow, nr, a, arow, nc,
						 out, 5);
					for (int c = 0; c < nc; c++)
						for (int r = 0; r < nr; r++) {
							float ref = ts->vec_dot(
								n, w + r * wrow,
								a + c * arow);
							double m2, d2;
							deq_dot(wt,
								w + r * wrow,
								at,
								a + c * arow, n,
								&d2, &m2);
							CU_ASSERT(
								fabs(out[c * 5 +
									 r] -
								     ref) <=
								dot_tolerance(
									wt,
									m2));
						}
				}
		}
	}
	free(x);
	free(w);
	free(a);
}

/*
 * Unit scales and small integers: every dot is an integer below 2^24, so
 * the float work is exact and every tier must return the exact integer
 * dot, whatever its order of additions.  This pins the integer parts
 * (unpacking, offsets, sub-block scales and minimums) exactly.
 */
static void fill_unit_scales(enum slm_dtype wt, uint8_t *w, int64_t n,
			     struct slm_test_rng *rng)
{
	size_t bytes = row_size(wt, n);
	for (size_t i = 0; i < bytes; i++)
		w[i] = (uint8_t)slm_test_rand(rng);
	const slm_fp16 one = 0x3c00;
	uint32_t bs = slm_dtype_block_bytes(wt);
	for (int64_t b = 0; b < n / slm_dtype_block(wt); b++) {
		uint8_t *blk = w + b * bs;
		switch (wt) {
		case SLM_DTYPE_Q4_0:
		case SLM_DTYPE_Q5_0:
		case SLM_DTYPE_Q8_0:
			memcpy(blk, &one, 2);
			if (wt == SLM_DTYPE_Q8_0)
				for (int k = 0; k < 32; k++) {
					int8_t *q = &((struct block_q8_0 *)blk)
							     ->qs[k];
					*q = (int8_t)((*q & 0x7f) - 64);
				}
			break;
		case SLM_DTYPE_Q4_1:
		case SLM_DTYPE_Q5_1: {
			slm_fp16 m = slm_f32_to_fp16(
				(float)((int)(slm_test_rand(rng) % 9) - 4));
			memcpy(blk, &one, 2);
			memcpy(blk + 2, &m, 2);
			break;
		}
		case SLM_DTYPE_Q2_K:
			memcpy(blk + 80, &one, 2);
			memcpy(blk + 82, &one, 2);
			break;
		case SLM_DTYPE_Q3_K:
			memcpy(blk + 108, &one, 2);
			break;
		case SLM_DTYPE_Q4_K:
		case SLM_DTYPE_Q5_K:
			memcpy(blk, &one, 2);
			memcpy(blk + 2, &one, 2);
			for (int k = 4; k < 16; k++) /* 6-bit values <= 19 */
				blk[k] &= 0x13;
			break;
		case SLM_DTYPE_Q6_K:
			memcpy(blk + 208, &one, 2);
			for (int k = 0; k < 16; k++) {
				int8_t *sc =
					&((struct block_q6_K *)blk)->scales[k];
				*sc = (int8_t)((*sc & 0x0f) - 8);
			}
			break;
		default:
			break;
		}
	}
	if (wt == SLM_DTYPE_F32 || wt == SLM_DTYPE_F16 ||
	    wt == SLM_DTYPE_BF16) {
		for (int64_t i = 0; i < n; i++) {
			float v = (float)((int)(slm_test_rand(rng) % 15) - 7);
			if (wt == SLM_DTYPE_F32) {
				memcpy(w + 4 * i, &v, 4);
			} else {
				uint16_t h = wt == SLM_DTYPE_F16
						     ? slm_f32_to_fp16(v)
						     : slm_f32_to_bf16(v);
				memcpy(w + 2 * i, &h, 2);
			}
		}
	}
}

static void fill_unit_acts(enum slm_dtype at, uint8_t *a, int64_t n,
			   struct slm_test_rng *rng)
{
	float *x = malloc((size_t)n * sizeof(float));
	for (int64_t i = 0; i < n; i++)
		x[i] = (float)((int)(slm_test_rand(rng) % 15) - 7);
	/* amax 127 in each block: d = 1 exactly for Q8_0/Q8_1 */
	if (at == SLM_DTYPE_Q8_0 || at == SLM_DTYPE_Q8_1)
		for (int64_t i = 0; i < n; i += 32)
			x[i + (i / 32) % 32] = 127.f;
	slm_quant_traits_at(at, SLM_SIMD_SCALAR)->from_float(x, a, n);
	if (at == SLM_DTYPE_Q8_K) /* unit scale; bsums stay right */
		for (int64_t b = 0; b < n / 256; b++) {
			struct block_q8_K *k = (struct block_q8_K *)a + b;
			k->d = 1.0f;
		}
	free(x);
}

static void test_dot_exact(void)
{
	struct slm_test_rng rng = {99};
	const int64_t n = 256 * 3;
	uint8_t *w = malloc(row_size(SLM_DTYPE_F32, n) * 4);
	uint8_t *a = malloc(row_size(SLM_DTYPE_F32, n) * 4);
	for (size_t ti = 0; ti < SLM_ARRAY_LEN(weight_types); ti++) {
		enum slm_dtype wt = weight_types[ti];
		const struct slm_quant_traits *ts =
			slm_quant_traits_at(wt, SLM_SIMD_SCALAR);
		enum slm_dtype at = ts->vec_dot_type;
		size_t wrow = row_size(wt, n), arow = row_size(at, n);
		for (int r = 0; r < 4; r++) {
			fill_unit_scales(wt, w + r * wrow, n, &rng);
			fill_unit_acts(at, a + r * arow, n, &rng);
		}
		for (int r = 0; r < 4; r++) {
			double dot, mag;
			deq_dot(wt, w + r * wrow, at, a + r * arow, n, &dot,
				&mag);
			if (mag >= 16777216.0)
				printf("\n    %s: magnitude %.0f\n",
				       slm_dtype_name(wt), mag);
			CU_ASSERT_FATAL(mag < 16777216.0);
			CU_ASSERT_EQUAL(dot, floor(dot));
			float sd = ts->vec_dot(n, w + r * wrow, a + r * arow);
			if ((double)sd != dot)
				printf("\n    scalar %s dot %.1f exact %.1f\n",
				       slm_dtype_name(wt), sd, dot);
			CU_ASSERT_EQUAL((double)sd, dot);
			for (int s = SLM_SIMD_AVX2; s < SLM_SIMD__COUNT; s++) {
				if (!slm_cpu_has_simd((enum slm_simd)s))
					continue;
				const struct slm_quant_traits *tt =
					slm_quant_traits_at(wt,
							    (enum slm_simd)s);
				float d = tt->vec_dot(n, w + r * wrow,
						      a + r * arow);
				if ((double)d != dot)
					printf("\n    %s %s dot %.1f exact "
					       "%.1f\n",
					       slm_simd_name((enum slm_simd)s),
					       slm_dtype_name(wt), d, dot);
				CU_ASSERT_EQUAL((double)d, dot);
				float out[4 * 4];
				int nr = SLM_MIN(4, tt->gemm_mr);
				int nc = SLM_MIN(4, tt->gemm_nr);
				tt->gemm(n, w, wrow, nr, a, arow, nc, out, 4);
				for (int c = 0; c < nc; c++)
					for (int rr = 0; rr < nr; rr++) {
						double d2, m2;
						deq_dot(wt, w + rr * wrow, at,
							a + c * arow, n, &d2,
							&m2);
						CU_ASSERT_EQUAL(
							(double)out[c * 4 + rr],
							d2);
					}
			}
		}
	}
	free(w);
	free(a);
}

/* ---- matmul --------------------------------------------------------------- */

struct shape {
	int64_t n_in, n_out, n_tokens;
};

static void run_matmul(struct slm_threadpool *pool, const struct slm_matrix *m,
		       const float *x, int64_t n_tokens, float *y)
{
	int nth = slm_threadpool_n_threads(pool);
	void *act = malloc(slm_matmul_act_bytes(m->type, m->n_in, n_tokens));
	size_t wb = slm_matmul_work_bytes(m, nth);
	void *work = wb ? malloc(wb) : NULL;
	slm_matmul(pool, m, x, n_tokens, y, act, work);
	free(act);
	free(work);
}

/*
 * Random shapes, ragged in every dimension, against a naive product of
 * the dequantized weights with the dequantized activations, for every
 * tier and 1, 2 and 3 threads (which must agree bit for bit).
 */
static void test_matmul(void)
{
	static const struct shape shapes[] = {
		{256, 1, 1},	{256, 17, 1},	{512, 33, 2}, {256, 40, 3},
		{768, 50, 5},	{512, 19, 7},	{256, 24, 8}, {256, 64, 13},
		{1024, 21, 33}, {512, 130, 70},
	};
	struct slm_threadpool *pools[3];
	for (int p = 0; p < 3; p++) {
		struct slm_threadpool_params pp = {.n_threads = p + 1,
						   .spin_ns = 200000};
		struct slm_error err = {0};
		pools[p] = slm_threadpool_create(&pp, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(pools[p]);
	}
	struct slm_test_rng rng = {2024};
	enum slm_simd saved = slm_quant_simd();
	for (size_t si = 0; si < SLM_ARRAY_LEN(shapes); si++) {
		const struct shape *sh = &shapes[si];
		float *xw = normal_vec(&rng, sh->n_in * sh->n_out, 0.05);
		float *x = normal_vec(&rng, sh->n_in * sh->n_tokens, 1.0);
		size_t ny = (size_t)(sh->n_out * sh->n_tokens);
		float *y = calloc(ny, sizeof(float));
		float *y1 = calloc(ny, sizeof(float));
		double *ref = malloc(ny * sizeof(double));
		double *mag = malloc(ny * sizeof(double));
		for (size_t ti = 0; ti < SLM_ARRAY_LEN(weight_types); ti++) {
			enum slm_dtype wt = weight_types[ti];
			size_t wrow = row_size(wt, sh->n_in);
			uint8_t *wd = malloc(wrow * (size_t)sh->n_out);
			for (int64_t o = 0; o < sh->n_out; o++)
				slm_quantize_ref(wt, xw + o * sh->n_in,
						 wd + (size_t)o * wrow,
						 sh->n_in);
			struct slm_matrix m = {wt, sh->n_in, sh->n_out, wd,
					       wrow};
			struct slm_error err = {0};
			CU_ASSERT_EQUAL_FATAL(slm_matmul_check(&m, &err), 0);
			/* the reference: activations quantized by the scalar
			 * quantizer (all tiers write the same bytes) */
			enum slm_dtype at =
				slm_quant_traits_at(wt, SLM_SIMD_SCALAR)
					->vec_dot_type;
			size_t arow = row_size(at, sh->n_in);
			uint8_t *ab = malloc(arow);
			float *fw = malloc((size_t)sh->n_in * sizeof(float));
			float *fa = malloc((size_t)sh->n_in * sizeof(float));
			for (int64_t t = 0; t < sh->n_tokens; t++) {
				slm_quant_traits_at(at, SLM_SIMD_SCALAR)
					->from_float(x + t * sh->n_in, ab,
						     sh->n_in);
				slm_dequantize(at, ab, fa, sh->n_in);
				for (int64_t o = 0; o < sh->n_out; o++) {
					slm_dequantize(wt,
						       wd + (size_t)o * wrow,
						       fw, sh->n_in);
					double d = 0, mg = 0;
					for (int64_t i = 0; i < sh->n_in; i++) {
						d += (double)fw[i] * fa[i];
						mg += fabs((double)fw[i] *
							   fa[i]);
					}
					mg += x1_slack(wt,
						       wd + (size_t)o * wrow,
						       at, ab, sh->n_in) /
					      2e-5;
					ref[t * sh->n_out + o] = d;
					mag[t * sh->n_out + o] = mg;
				}
			}
			for (int s = 0; s < SLM_SIMD__COUNT; s++) {
				if (!slm_cpu_has_simd((enum slm_simd)s))
					continue;
				slm_quant_set_simd((enum slm_simd)s);
				for (int p = 0; p < 3; p++) {
					float *out = p ? y : y1;
					memset(out, 0xff, ny * sizeof(float));
					run_matmul(pools[p], &m, x,
						   sh->n_tokens, out);
					int bad = 0;
					for (size_t k = 0; k < ny; k++)
						if (!(fabs(out[k] - ref[k]) <=
						      dot_tolerance(wt,
								    mag[k])))
							bad++;
					if (bad)
						printf("\n    %s %s "
						       "%lldx%lldx%lld "
						       "%d threads: %d bad\n",
						       slm_simd_name((
							       enum slm_simd)s),
						       slm_dtype_name(wt),
						       (long long)sh->n_in,
						       (long long)sh->n_out,
						       (long long)sh->n_tokens,
						       p + 1, bad);
					CU_ASSERT_EQUAL(bad, 0);
					if (p)
						CU_ASSERT(
							memcmp(y, y1,
							       ny * sizeof(float)) ==
							0);
				}
			}
			slm_quant_set_simd(saved);
			free(ab);
			free(fw);
			free(fa);
			free(wd);
		}
		free(xw);
		free(x);
		free(y);
		free(y1);
		free(ref);
		free(mag);
	}
	for (int p = 0; p < 3; p++)
		slm_threadpool_destroy(pools[p]);
	for (int s = 0; s < SLM_SIMD__COUNT; s++)
		if (!slm_cpu_has_simd((enum slm_simd)s))
			tier_runs((enum slm_simd)s);
}

/*
 * The blocked GEMM over token ranges that start past 0 and end ragged,
 * as the driver calls it for its token blocks, gives what the whole
 * product gives.
 */
static void test_gemm_token_blocks(void)
{
	if (!slm_cpu_has_simd(SLM_SIMD_AVX512)) {
		tier_runs(SLM_SIMD_AVX512);
		return;
	}
	enum slm_simd saved = slm_quant_simd();
	slm_quant_set_simd(SLM_SIMD_AVX512);
	struct slm_test_rng rng = {77};
	const int64_t n_in = 512, n_out = 37, nt = 33;
	float *xw = normal_vec(&rng, n_in * n_out, 0.05);
	float *x = normal_vec(&rng, n_in * nt, 1.0);
	float *y = calloc((size_t)(nt * n_out), sizeof(float));
	float *y2 = calloc((size_t)(nt * n_out), sizeof(float));
	const enum slm_dtype types[] = {SLM_DTYPE_Q4_0, SLM_DTYPE_Q4_K,
					SLM_DTYPE_Q6_K, SLM_DTYPE_Q5_1};
	for (size_t ti = 0; ti < SLM_ARRAY_LEN(types); ti++) {
		enum slm_dtype wt = types[ti];
		CU_ASSERT_FATAL(slm_gemm_avx512_supports(wt));
		size_t wrow = row_size(wt, n_in);
		uint8_t *wd = malloc(wrow * (size_t)n_out);
		for (int64_t o = 0; o < n_out; o++)
			slm_quantize_ref(wt, xw + o * n_in,
					 wd + (size_t)o * wrow, n_in);
		struct slm_matrix m = {wt, n_in, n_out, wd, wrow};
		size_t arow = slm_matmul_act_row_bytes(wt, n_in);
		uint8_t *act = malloc(arow * (size_t)nt);
		slm_matmul_quantize(wt, n_in, x, nt, act, 0, 1);
		void *work = malloc(slm_gemm_avx512_work_bytes(wt, n_in, 32));
		slm_gemm_avx512(&m, act, arow, 0, nt > 32 ? 32 : nt, 0, n_out,
				y, work);
		slm_gemm_avx512(&m, act, arow, 32, nt, 0, n_out, y, work);
		slm_gemm_avx512(&m, act, arow, 0, 5, 0, 16, y2, work);
		slm_gemm_avx512(&m, act, arow, 0, 5, 16, n_out, y2, work);
		slm_gemm_avx512(&m, act, arow, 5, 21, 0, n_out, y2, work);
		slm_gemm_avx512(&m, act, arow, 21, nt, 0, n_out, y2, work);
		CU_ASSERT(memcmp(y, y2, (size_t)(nt * n_out) * sizeof(float)) ==
			  0);
		free(work);
		free(act);
		free(wd);
	}
	slm_quant_set_simd(saved);
	free(xw);
	free(x);
	free(y);
	free(y2);
}

/*
 * Row lengths the vector loops do not divide (legacy: not a multiple of
 * 128; float: not a multiple of 16): the tails go through the scalar dot,
 * in every path (decode GEMV, blocked GEMM, tiles) and tier.
 */
static void test_matmul_tails(void)
{
	static const struct {
		enum slm_dtype type;
		int64_t n_in;
	} cases[] = {
		{SLM_DTYPE_Q4_0, 96},  {SLM_DTYPE_Q4_1, 224},
		{SLM_DTYPE_Q5_0, 160}, {SLM_DTYPE_Q5_1, 96},
		{SLM_DTYPE_Q8_0, 224}, {SLM_DTYPE_F32, 200},
		{SLM_DTYPE_F16, 72},   {SLM_DTYPE_BF16, 200},
	};
	static const int64_t token_counts[] = {1, 3, 9};
	struct slm_threadpool_params pp = {.n_threads = 2, .spin_ns = 100000};
	struct slm_error err = {0};
	struct slm_threadpool *pool = slm_threadpool_create(&pp, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	struct slm_test_rng rng = {31337};
	enum slm_simd saved = slm_quant_simd();
	const int64_t n_out = 19;
	for (size_t ci = 0; ci < SLM_ARRAY_LEN(cases); ci++) {
		enum slm_dtype wt = cases[ci].type;
		int64_t n_in = cases[ci].n_in;
		float *xw = normal_vec(&rng, n_in * n_out, 0.05);
		size_t wrow = row_size(wt, n_in);
		uint8_t *wd = malloc(wrow * (size_t)n_out);
		for (int64_t o = 0; o < n_out; o++)
			slm_quantize_ref(wt, xw + o * n_in,
					 wd + (size_t)o * wrow, n_in);
		struct slm_matrix m = {wt, n_in, n_out, wd, wrow};
		enum slm_dtype at =
			slm_quant_traits_at(wt, SLM_SIMD_SCALAR)->vec_dot_type;
		size_t arow = row_size(at, n_in);
		for (size_t ti = 0; ti < SLM_ARRAY_LEN(token_counts); ti++) {
			int64_t nt = token_counts[ti];
			float *x = normal_vec(&rng, n_in * nt, 1.0);
			float *y = calloc((size_t)(nt * n_out), sizeof(float));
			uint8_t *ab = malloc(arow);
			float *fa = malloc((size_t)n_in * sizeof(float));
			float *fw = malloc((size_t)n_in * sizeof(float));
			for (int s = 0; s < SLM_SIMD__COUNT; s++) {
				if (!slm_cpu_has_simd((enum slm_simd)s))
					continue;
				slm_quant_set_simd((enum slm_simd)s);
				run_matmul(pool, &m, x, nt, y);
				int bad = 0;
				for (int64_t t = 0; t < nt; t++) {
					slm_quant_traits_at(at, SLM_SIMD_SCALAR)
						->from_float(x + t * n_in, ab,
							     n_in);
					slm_dequantize(at, ab, fa, n_in);
					for (int64_t o = 0; o < n_out; o++) {
						slm_dequantize(
							wt,
							wd + (size_t)o * wrow,
							fw, n_in);
						double d = 0, mg = 0;
						for (int64_t i = 0; i < n_in;
						     i++) {
							d += (double)fw[i] *
							     fa[i];
							mg += fabs(
								(double)fw[i] *
								fa[i]);
						}
						mg += x1_slack(
							      wt,
							      wd + (size_t)o *
									      wrow,
							      at, ab, n_in) /
						      2e-5;
						if (!(fabs(y[t * n_out + o] -
							   d) <=
						      dot_tolerance(wt, mg)))
							bad++;
					}
				}
				if (bad)
					printf("\n    %s %s n_in %lld, %lld "
					       "tokens: "
					       "%d bad\n",
					       slm_simd_name((enum slm_simd)s),
					       slm_dtype_name(wt),
					       (long long)n_in, (long long)nt,
					       bad);
				CU_ASSERT_EQUAL(bad, 0);
			}
			free(x);
			free(y);
			free(ab);
			free(fa);
			free(fw);
		}
		free(xw);
		free(wd);
	}
	slm_quant_set_simd(saved);
	slm_threadpool_destroy(pool);
}

static void test_matmul_check(void)
{
	struct slm_error err = {0};
	struct slm_matrix m = {SLM_DTYPE_IQ2_XS, 256, 4, "", 66};
	CU_ASSERT_EQUAL(slm_matmul_check(&m, &err), SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "IQ2_XS"));
	struct slm_matrix m2 = {SLM_DTYPE_Q4_K, 100, 4, "", 144};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_matmul_check(&m2, &err), SLM_EINVAL);
	struct slm_matrix m3 = {SLM_DTYPE_Q4_0, 64, 4, "", 30};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_matmul_check(&m3, &err), SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "stride"));
}

/* ---- golden files: our reference quantizers against llama-quantize ---- */

static const char *const golden_files[] = {
	"llama-s-F16",	  "llama-s-BF16",   "llama-s-Q8_0",   "llama-s-Q4_0",
	"llama-s-Q4_1",	  "llama-s-Q5_0",   "llama-s-Q5_1",   "llama-s-Q2_K",
	"llama-s-Q3_K_M", "llama-s-Q4_K_M", "llama-s-Q5_K_M", "llama-s-Q6_K",
};

struct type_stats {
	uint64_t tensors, rows, rows_diff;
	double err_ours, err_theirs; /* sum of squared errors vs the source */
	uint64_t n;
};

static struct gguf_file *open_model(const char *stem)
{
	char name[256];
	snprintf(name, sizeof(name), "models/%s.gguf", stem);
	const char *path = slm_test_generated(name);
	struct gguf_file *f = NULL;
	struct slm_error err = {0};
	if (gguf_open(path, &f, &err)) {
		fprintf(stderr,
			"\n    missing golden model %s: %s\n"
			"    (the build regenerates build/testdata/models)\n",
			path, err.msg);
		return NULL;
	}
	return f;
}

static const void *tensor_data(const struct gguf_file *f,
			       const struct gguf_tensor *t)
{
	return gguf_mapping(f) + t->file_offset;
}

/*
 * Every quantized tensor of every llama-s golden file equals our reference
 * quantization of the same tensor of the F32 file, byte for byte (and the
 * per-type error of both against the source is reported).
 */
static void test_golden_bytes(void)
{
	struct gguf_file *src = open_model("llama-s-F32");
	CU_ASSERT_PTR_NOT_NULL_FATAL(src);
	struct type_stats st[SLM_DTYPE__COUNT];
	memset(st, 0, sizeof(st));
	for (size_t fi = 0; fi < SLM_ARRAY_LEN(golden_files); fi++) {
		struct gguf_file *g = open_model(golden_files[fi]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(g);
		for (uint64_t ti = 0; ti < gguf_n_tensors(g); ti++) {
			const struct gguf_tensor *t = gguf_tensor_at(g, ti);
			if (t->type == SLM_DTYPE_F32)
				continue;
			const struct gguf_tensor *s =
				gguf_find_tensor(src, t->name);
			CU_ASSERT_PTR_NOT_NULL_FATAL(s);
			CU_ASSERT_EQUAL_FATAL(s->type, SLM_DTYPE_F32);
			CU_ASSERT_EQUAL_FATAL(s->n_elements, t->n_elements);
			uint64_t n_per_row = t->ne[0];
			uint64_t rows = t->n_elements / n_per_row;
			uint64_t row_bytes;
			CU_ASSERT_FATAL(slm_dtype_row_bytes(t->type, n_per_row,
							    &row_bytes));
			CU_ASSERT_EQUAL_FATAL(row_bytes * rows, t->size);
			const float *x = tensor_data(src, s);
			const uint8_t *want = tensor_data(g, t);
			uint8_t *got = malloc(row_bytes);
			float *deq = malloc(n_per_row * sizeof(float));
			struct type_stats *ts = &st[t->type];
			ts->tensors++;
			for (uint64_t r = 0; r < rows; r++) {
				const float *xr = x + r * n_per_row;
				CU_ASSERT_EQUAL_FATAL(
					slm_quantize_ref(t->type, xr, got,
							 (int64_t)n_per_row),
					0);
				ts->rows++;
				if (memcmp(got, want + r * row_bytes,
					   row_bytes))
					ts->rows_diff++;
				slm_dequantize(t->type, got, deq,
					       (int64_t)n_per_row);
				for (uint64_t k = 0; k < n_per_row; k++)
					ts->err_ours +=
						(double)(deq[k] - xr[k]) *
						(deq[k] - xr[k]);
				slm_dequantize(t->type, want + r * row_bytes,
					       deq, (int64_t)n_per_row);
				for (uint64_t k = 0; k < n_per_row; k++)
					ts->err_theirs +=
						(double)(deq[k] - xr[k]) *
						(deq[k] - xr[k]);
				ts->n += n_per_row;
			}
			free(got);
			free(deq);
		}
		gguf_close(g);
	}
	gguf_close(src);
	printf("\n");
	for (int type = 0; type < SLM_DTYPE__COUNT; type++) {
		struct type_stats *ts = &st[type];
		if (!ts->tensors)
			continue;
		double ro = sqrt(ts->err_ours / (double)ts->n);
		double rt = sqrt(ts->err_theirs / (double)ts->n);
		printf("    %-5s %3llu tensors %6llu rows: %llu rows differ; "
		       "rms vs F32 ours %.6g llama.cpp %.6g\n",
		       slm_dtype_name((uint32_t)type),
		       (unsigned long long)ts->tensors,
		       (unsigned long long)ts->rows,
		       (unsigned long long)ts->rows_diff, ro, rt);
		CU_ASSERT_EQUAL(ts->rows_diff, 0);
	}
}

SLM_SUITE("quant", NULL, NULL, {"fp16", test_fp16}, {"bf16", test_bf16},
	  {"round_trip", test_round_trip},
	  {"act_quantizers", test_act_quantizers},
	  {"dot_random", test_dot_random}, {"dot_exact", test_dot_exact},
	  {"matmul", test_matmul}, {"matmul_tails", test_matmul_tails},
	  {"gemm_token_blocks", test_gemm_token_blocks},
	  {"matmul_check", test_matmul_check},
	  {"golden_bytes", test_golden_bytes});
