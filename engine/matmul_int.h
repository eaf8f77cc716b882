/*
 * matmul_int.h: what matmul.c shares with its per-tier blocked GEMMs.
 *
 * A blocked GEMM serves products with many tokens (prefill, big decode
 * batches).  It decodes a panel of 16 weight rows once per block of
 * tokens into an int8 layout made for the multiply (one int32 lane per
 * row, 4 consecutive values per lane), then multiplies the panel with
 * every token of the block, all their sums in registers.
 */
#ifndef SLM_ENGINE_MATMUL_INT_H
#define SLM_ENGINE_MATMUL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/matmul.h"

/* Rows per panel. */
#define SLM_GEMM_PANEL 16

/* True when the AVX-512 blocked GEMM handles weight type t. */
bool slm_gemm_avx512_supports(enum slm_dtype t);

/* Tokens per block for rows of n_in (decode cost against L2 room). */
int64_t slm_gemm_avx512_token_block(enum slm_dtype t, int64_t n_in);

/* Bytes of scratch one thread needs for n_in and a token block of tb. */
size_t slm_gemm_avx512_work_bytes(enum slm_dtype t, int64_t n_in, int64_t tb);

/*
 * y[t][o] for t in [t0, t1) (t1 - t0 <= tb of the work size) and o in
 * [o0, o1), from activations act (rows of act_row bytes, as
 * slm_matmul_quantize wrote them).  o0 is a multiple of 16 unless it is
 * the start of the matrix.
 */
void slm_gemm_avx512(const struct slm_matrix *w, const void *act,
		     size_t act_row, int64_t t0, int64_t t1, int64_t o0,
		     int64_t o1, float *y, void *work);

/*
 * 1..SLM_GEMV_MAX_TOKENS tokens through rows [o0, o1) of W on the AVX-512
 * tier: the activations (rows of act_row bytes, as slm_matmul_quantize
 * wrote them) are arranged once into scratch (slm_gemv_avx512_scratch
 * bytes), then each weight row is one prefetched stream, decoded once for
 * all the tokens.  y is [n_tokens][n_out].  A type it lacks has 0 scratch.
 */
#define SLM_GEMV_MAX_TOKENS 4
size_t slm_gemv_avx512_scratch(enum slm_dtype t, int64_t n_in);
void slm_gemv_avx512(const struct slm_matrix *w, const void *act,
		     size_t act_row, int64_t n_tokens, int64_t o0, int64_t o1,
		     float *y, void *scratch);

#endif
