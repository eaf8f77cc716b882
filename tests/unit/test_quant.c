#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dtype.h"
#include "engine/gguf.h"
#include "engine/quant.h"
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
	  {"golden_bytes", test_golden_bytes});
