/*
 * matmul.h: y = W x for the forward pass, one token (GEMV, decode) or many
 * (GEMM, prefill and batched decode).
 *
 *   W  a weight matrix as the GGUF file stores it: n_out rows of n_in
 *      elements of one type (row o holds the weights of output o);
 *   x  activations, f32 [n_tokens][n_in], row-major;
 *   y  outputs, f32 [n_tokens][n_out], row-major:
 *          y[t][o] = sum_i W[o][i] * x[t][i]
 *
 * A product runs in two phases, both split by (ith, nth) across the
 * threads of a pool (engine/threadpool.h), with a barrier between them:
 *
 *   1. slm_matmul_quantize: each thread converts its share of the rows of
 *      x into the activation format W's type pairs with (Q8_0, Q8_1,
 *      Q8_K, F16, BF16 or F32; see quant.h), into a buffer all threads
 *      share.  This is done once per row of x, however many threads or
 *      output rows there are.
 *   2. slm_matmul_compute: each thread computes a contiguous share of the
 *      output rows for every token, reading the shared activations.
 *
 * Several matrices that take the same input (Q, K and V; gate and up)
 * share phase 1 when their activation format and n_in are equal
 * (slm_matmul_act_type tells): quantize once, compute each.
 * slm_matmul() does both phases for one matrix on a pool.
 *
 * Memory: the caller owns every buffer.  `act` holds the quantized
 * activations (slm_matmul_act_bytes); `work` is per-thread scratch for the
 * blocked GEMM (slm_matmul_work_bytes(nth) bytes, threads take disjoint
 * slices of it).  Neither needs clearing; both may be reused across calls.
 * 64-byte alignment of act and work is best (not required).
 *
 * Kernels come from the active tier of quant.h (slm_quant_set_simd); the
 * results of the tiers differ only by the order of float additions.
 */
#ifndef SLM_ENGINE_MATMUL_H
#define SLM_ENGINE_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/dtype.h"
#include "engine/threadpool.h"

struct slm_matrix {
	enum slm_dtype type; /* a weight type with kernels (quant.h) */
	int64_t n_in;	     /* ne0: elements per row, a multiple of the
				type's block */
	int64_t n_out;	     /* ne1: rows = outputs */
	const void *data;    /* row o at data + o * row_bytes */
	size_t row_bytes;    /* >= the packed size of a row */
};

/* The activation format W's type is multiplied with. */
enum slm_dtype slm_matmul_act_type(enum slm_dtype wtype);

/* Bytes of one activation row, and of n_tokens of them (the act buffer). */
size_t slm_matmul_act_row_bytes(enum slm_dtype wtype, int64_t n_in);
size_t slm_matmul_act_bytes(enum slm_dtype wtype, int64_t n_in,
			    int64_t n_tokens);

/* Bytes of per-thread scratch for products with W, for nth threads. */
size_t slm_matmul_work_bytes(const struct slm_matrix *w, int nth);

/* Check that W can be multiplied (type has kernels, shape and stride are
 * sane); 0 or SLM_EUNSUPPORTED / SLM_EINVAL with err naming the problem. */
int slm_matmul_check(const struct slm_matrix *w, struct slm_error *err);

/*
 * Phase 1, thread ith of nth: quantize this thread's share of the
 * n_tokens rows of x into act, for W's type wtype.
 */
void slm_matmul_quantize(enum slm_dtype wtype, int64_t n_in, const float *x,
			 int64_t n_tokens, void *act, int ith, int nth);

/*
 * Phase 2, thread ith of nth, after every thread finished phase 1 (a
 * barrier): y[t][o] for this thread's share of the outputs o and every
 * token t.  work is the whole per-thread scratch (this thread uses its
 * slice).
 */
void slm_matmul_compute(const struct slm_matrix *w, const void *act,
			int64_t n_tokens, float *y, void *work, int ith,
			int nth);

/*
 * Both phases on the pool: y = W x.  act and work as above (sized for
 * the pool's thread count).
 */
void slm_matmul(struct slm_threadpool *pool, const struct slm_matrix *w,
		const float *x, int64_t n_tokens, float *y, void *act,
		void *work);

#endif
