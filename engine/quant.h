/*
 * quant.h: the block formats of GGUF weight types and the conversions
 * between them and f32.
 *
 * The layouts are the file format's (ggml's): a block of `QK` values is
 * stored as the struct below, little-endian, packed as declared.  Scales
 * marked fp16 are IEEE half precision.  This header owns the formats and
 * the reference (scalar) conversions:
 *
 *   slm_quantize_ref():  f32 -> blocks, bit for bit what llama.cpp's
 *                        reference quantizers write, so a file quantized
 *                        here equals one made by llama-quantize from the
 *                        same F32 source;
 *   slm_dequantize():    blocks -> f32, exact.
 *
 * Both live in quant_ref.c.  Tested (tests/unit/test_quant.c) against the
 * golden llama-s files, which llama-quantize made from the F32 file with
 * no importance matrix: every type here is byte-identical to them (F16,
 * BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K).
 *
 * The run-time kernels are below the formats: a traits table per type
 * (see struct slm_quant_traits) holding, for the CPU's widest usable tier,
 * the activation quantizer, the dot product of a weight row with an
 * activation row, a small matrix tile of such dot products, and the
 * dequantizer.  Each weight type pairs with one activation format, as in
 * llama.cpp, so the engine computes what llama.cpp computes:
 *
 *   weight               activation (vec_dot_type)
 *   Q4_0 Q5_0 Q8_0       Q8_0
 *   Q4_1 Q5_1            Q8_1
 *   Q2_K .. Q6_K         Q8_K
 *   F16 / BF16 / F32     F16 / BF16 / F32
 *
 * Activations are quantized the way llama.cpp's x86 build does at run
 * time, which is not its reference quantizer: Q8_0 and Q8_1 take
 * d = amax/127 and q = round-half-even(x * (127/amax)) (the reference
 * divides by d and rounds half away from zero); Q8_K takes the reference
 * (q = round-half-even(x * -127/max), d = 1/that).  Matching this keeps
 * the logits of a quantized model within llama.cpp's own noise.
 *
 * Tiers (engine/cpu.h): quant_scalar.c is the specification, written for
 * clarity; quant_avx2.c and quant_avx512.c are the wide versions, tested
 * against it (integer block sums exactly, the float sums to a rounding
 * bound).
 */
#ifndef SLM_ENGINE_QUANT_H
#define SLM_ENGINE_QUANT_H

#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "engine/cpu.h"
#include "engine/dtype.h"

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12

typedef uint16_t slm_fp16; /* IEEE binary16 bits */
typedef uint16_t slm_bf16; /* bfloat16 bits */

struct block_q4_0 {
	slm_fp16 d;	       /* scale */
	uint8_t qs[QK4_0 / 2]; /* nibbles: low = values 0..15, high = 16..31 */
};
_Static_assert(sizeof(struct block_q4_0) == 18, "q4_0 block");

struct block_q4_1 {
	slm_fp16 d, m; /* scale, minimum */
	uint8_t qs[QK4_1 / 2];
};
_Static_assert(sizeof(struct block_q4_1) == 20, "q4_1 block");

struct block_q5_0 {
	slm_fp16 d;
	uint8_t qh[4];	       /* 5th bit of each value */
	uint8_t qs[QK5_0 / 2]; /* low 4 bits */
};
_Static_assert(sizeof(struct block_q5_0) == 22, "q5_0 block");

struct block_q5_1 {
	slm_fp16 d, m;
	uint8_t qh[4];
	uint8_t qs[QK5_1 / 2];
};
_Static_assert(sizeof(struct block_q5_1) == 24, "q5_1 block");

struct block_q8_0 {
	slm_fp16 d;
	int8_t qs[QK8_0];
};
_Static_assert(sizeof(struct block_q8_0) == 34, "q8_0 block");

/* Activation format paired with Q4_1/Q5_1: s = d * sum(qs). */
struct block_q8_1 {
	slm_fp16 d, s;
	int8_t qs[QK8_1];
};
_Static_assert(sizeof(struct block_q8_1) == 36, "q8_1 block");

/* 16 blocks of 16: 4-bit scale and 4-bit min per block, 2-bit quants. */
struct block_q2_K {
	uint8_t scales[QK_K / 16];
	uint8_t qs[QK_K / 4];
	slm_fp16 d, dmin;
};
_Static_assert(sizeof(struct block_q2_K) == 84, "q2_K block");

/* 16 blocks of 16: 6-bit scales packed in 12 bytes, 3-bit quants. */
struct block_q3_K {
	uint8_t hmask[QK_K / 8];
	uint8_t qs[QK_K / 4];
	uint8_t scales[12];
	slm_fp16 d;
};
_Static_assert(sizeof(struct block_q3_K) == 110, "q3_K block");

/* 8 blocks of 32: 6-bit scales and mins packed in 12 bytes, 4-bit quants. */
struct block_q4_K {
	slm_fp16 d, dmin;
	uint8_t scales[K_SCALE_SIZE];
	uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q4_K) == 144, "q4_K block");

struct block_q5_K {
	slm_fp16 d, dmin;
	uint8_t scales[K_SCALE_SIZE];
	uint8_t qh[QK_K / 8];
	uint8_t qs[QK_K / 2];
};
_Static_assert(sizeof(struct block_q5_K) == 176, "q5_K block");

/* 16 blocks of 16: 8-bit scales, 6-bit quants (4 low + 2 high bits). */
struct block_q6_K {
	uint8_t ql[QK_K / 2];
	uint8_t qh[QK_K / 4];
	int8_t scales[QK_K / 16];
	slm_fp16 d;
};
_Static_assert(sizeof(struct block_q6_K) == 210, "q6_K block");

/* Activation format paired with the K-quants. */
struct block_q8_K {
	float d;
	int8_t qs[QK_K];
	int16_t bsums[QK_K / 16]; /* sums of qs in groups of 16 */
};
_Static_assert(sizeof(struct block_q8_K) == 292, "q8_K block");

/* Half and bfloat16 conversions (round to nearest even; NaN kept NaN). */
float slm_fp16_to_f32(slm_fp16 h);
slm_fp16 slm_f32_to_fp16(float f);
float slm_bf16_to_f32(slm_bf16 h);
slm_bf16 slm_f32_to_bf16(float f);

/*
 * Quantize n values (a multiple of the type's block) of x into y, exactly
 * as llama.cpp's reference quantizer of that type.  Types: F32, F16, BF16,
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K.
 * Returns 0, or SLM_EUNSUPPORTED for another type / SLM_EINVAL for n.
 */
int slm_quantize_ref(enum slm_dtype type, const float *x, void *y, int64_t n);

/* Dequantize n values of type `type` from x into y (same types). */
int slm_dequantize(enum slm_dtype type, const void *x, float *y, int64_t n);

/* ---- run-time kernels --------------------------------------------------- */

/* f32 -> format (n a multiple of the block). */
typedef void (*slm_from_float_fn)(const float *x, void *y, int64_t n);
/* format -> f32. */
typedef void (*slm_to_float_fn)(const void *x, float *y, int64_t n);
/* Dot product of n elements: a weight row w (the traits' type) with an
 * activation row a (its vec_dot_type). */
typedef float (*slm_vec_dot_fn)(int64_t n, const void *w, const void *a);
/*
 * A tile of dot products, nr weight rows by nc activation rows (nr <=
 * gemm_mr, nc <= gemm_nr; smaller for ragged edges):
 *     s[c * s_stride + r] = dot(w + r * w_stride, a + c * a_stride)
 * Strides in bytes for w and a, in floats for s.
 */
typedef void (*slm_gemm_fn)(int64_t n, const void *w, size_t w_stride, int nr,
			    const void *a, size_t a_stride, int nc, float *s,
			    size_t s_stride);

struct slm_quant_traits {
	enum slm_dtype type;
	uint32_t block;		     /* elements per block */
	uint32_t block_bytes;	     /* bytes per block */
	enum slm_dtype vec_dot_type; /* activation format of the dot */
	/*
	 * f32 -> this type.  For an activation format (Q8_0, Q8_1, Q8_K, F16,
	 * BF16, F32) the run-time quantizer described above; for a weight-only
	 * type the reference quantizer.
	 */
	slm_from_float_fn from_float;
	slm_to_float_fn to_float;
	slm_vec_dot_fn vec_dot; /* NULL for activation-only types */
	slm_gemm_fn gemm;	/* NULL where vec_dot is */
	int gemm_mr, gemm_nr;	/* largest tile gemm takes */
	enum slm_simd simd;	/* tier of vec_dot and gemm */
};

/*
 * The traits of `type` in the active tier, or NULL for a type without
 * kernels.  The active tier is the CPU's widest until slm_quant_set_simd
 * says otherwise.
 */
const struct slm_quant_traits *slm_quant_traits(enum slm_dtype type);

/*
 * The traits of `type` at tier `simd` (each kernel from the widest tier
 * at or below `simd` that has one), or NULL when the type has no kernels
 * or the CPU cannot run that tier.  For tests and benchmarks.
 */
const struct slm_quant_traits *slm_quant_traits_at(enum slm_dtype type,
						   enum slm_simd simd);

/*
 * Choose the active tier: the widest the CPU has, capped at `cap` (from
 * slm_simd_parse: SLM_SIMD__COUNT for no cap).  Returns the tier chosen.
 * Call it at start-up, before any thread uses the kernels; it is not
 * safe while kernels run.
 */
enum slm_simd slm_quant_set_simd(enum slm_simd cap);

/* The active tier. */
enum slm_simd slm_quant_simd(void);

/*
 * Start-up for a program: parse `simd` ("auto|scalar|avx2|avx512", the
 * engine.simd key or a --simd flag), make the capped tier active, and log
 * the CPU's features, the tier chosen and the AMX decision (probed in a
 * child process, see cpu.h).  Returns 0, or SLM_ECONFIG with err saying
 * what is allowed.
 */
int slm_quant_configure(const char *simd, struct slm_error *err);

/*
 * Quantize activations the run-time way (the traits' from_float of an
 * activation format): Q8_0, Q8_1, Q8_K, F16, BF16, F32.
 */
int slm_quantize_act(enum slm_dtype type, const float *x, void *y, int64_t n);

#endif
