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
 * slice).  The slice's place depends on W (its type and width), so
 * threads that go on to another product without a barrier in between
 * must use slm_matmul_compute_local instead: their slices of different
 * matrices would overlap.
 */
void slm_matmul_compute(const struct slm_matrix *w, const void *act,
			int64_t n_tokens, float *y, void *work, int ith,
			int nth);

/* Bytes of one thread's own scratch for products with W (0: none). */
size_t slm_matmul_thread_work_bytes(const struct slm_matrix *w);

/*
 * Phase 2 with this thread's own scratch (at least
 * slm_matmul_thread_work_bytes(w) bytes, used by no other thread; NULL
 * when that is 0).  For several products in a row between two barriers
 * (Q, K and V; gate and up), whatever their types.
 */
void slm_matmul_compute_local(const struct slm_matrix *w, const void *act,
			      int64_t n_tokens, float *y, void *thread_work,
			      int ith, int nth);

/*
 * Phase 2 for the output rows [o0, o1) only, every token, with this
 * thread's own scratch (as slm_matmul_compute_local): for callers that
 * hand rows out themselves, e.g. in chunks from a shared counter so that
 * a thread that loses its core does less.  o0 and o1 must be multiples of
 * slm_matmul_row_unit (o1 may also be n_out); the results are those of
 * slm_matmul_compute_local, bit for bit, however the rows are cut.
 */
void slm_matmul_compute_rows(const struct slm_matrix *w, const void *act,
			     int64_t n_tokens, float *y, void *thread_work,
			     int64_t o0, int64_t o1);

/* The row granularity of a product of n_tokens with W (16 for the
 * blocked GEMM's panels, 1 or the tile height otherwise). */
size_t slm_matmul_row_unit(const struct slm_matrix *w, int64_t n_tokens,
			   const void *thread_work);

/*
 * Both phases on the pool: y = W x.  act and work as above (sized for
 * the pool's thread count).
 */
void slm_matmul(struct slm_threadpool *pool, const struct slm_matrix *w,
		const float *x, int64_t n_tokens, float *y, void *act,
		void *work);

#endif
