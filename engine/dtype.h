/*
 * dtype.h: the tensor element types of GGUF files (ggml's type ids) and
 * their block geometry.
 *
 * A row of n elements of a type takes n / block elements' worth of blocks,
 * each `block_bytes` long; n must be a multiple of the block size.  This
 * module only describes types; engine/quant.h owns the kernels that read
 * and write them.  The numbering is the file format's and never changes.
 */
#ifndef SLM_ENGINE_DTYPE_H
#define SLM_ENGINE_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum slm_dtype {
	SLM_DTYPE_F32 = 0,
	SLM_DTYPE_F16 = 1,
	SLM_DTYPE_Q4_0 = 2,
	SLM_DTYPE_Q4_1 = 3,
	SLM_DTYPE_Q5_0 = 6,
	SLM_DTYPE_Q5_1 = 7,
	SLM_DTYPE_Q8_0 = 8,
	SLM_DTYPE_Q8_1 = 9,
	SLM_DTYPE_Q2_K = 10,
	SLM_DTYPE_Q3_K = 11,
	SLM_DTYPE_Q4_K = 12,
	SLM_DTYPE_Q5_K = 13,
	SLM_DTYPE_Q6_K = 14,
	SLM_DTYPE_Q8_K = 15,
	SLM_DTYPE_IQ2_XXS = 16,
	SLM_DTYPE_IQ2_XS = 17,
	SLM_DTYPE_IQ3_XXS = 18,
	SLM_DTYPE_IQ1_S = 19,
	SLM_DTYPE_IQ4_NL = 20,
	SLM_DTYPE_IQ3_S = 21,
	SLM_DTYPE_IQ2_S = 22,
	SLM_DTYPE_IQ4_XS = 23,
	SLM_DTYPE_I8 = 24,
	SLM_DTYPE_I16 = 25,
	SLM_DTYPE_I32 = 26,
	SLM_DTYPE_I64 = 27,
	SLM_DTYPE_F64 = 28,
	SLM_DTYPE_IQ1_M = 29,
	SLM_DTYPE_BF16 = 30,
	SLM_DTYPE_TQ1_0 = 34,
	SLM_DTYPE_TQ2_0 = 35,
	SLM_DTYPE_MXFP4 = 39,
	SLM_DTYPE__COUNT = 40, /* one past the largest id */
};

/* True for an id that names a type (some ids in range are retired). */
bool slm_dtype_known(uint32_t id);

/* "Q4_K", or "type 31" for an unknown id (static storage per call site:
 * the returned pointer is valid until the next call on the same thread). */
const char *slm_dtype_name(uint32_t id);

/* Type id of a name ("q4_k" and "Q4_K" both), or -1. */
int slm_dtype_from_name(const char *name);

/* Elements per block and bytes per block; 0 for unknown ids. */
uint32_t slm_dtype_block(uint32_t id);
uint32_t slm_dtype_block_bytes(uint32_t id);

/*
 * Bytes of a row of n elements; returns false if n is not a multiple of
 * the block size or the type is unknown.
 */
bool slm_dtype_row_bytes(uint32_t id, uint64_t n, uint64_t *bytes);

/* True for the weight types the engine computes with (see model.h). */
bool slm_dtype_weight_supported(uint32_t id);

/* "F32, F16, BF16, Q4_0, ..." : the supported weight types, for messages. */
const char *slm_dtype_supported_list(void);

#endif
