/*
 * matmul.c: the driver of y = W x.  The kernels are the quant traits'
 * (quant.h); this file splits the work and orders the loops for the
 * caches:
 *
 *   - threads take contiguous ranges of output rows (whole tiles), so
 *     each streams its own part of W from memory exactly once per token
 *     block;
 *   - tokens are taken in blocks whose quantized activations fit in half
 *     of L2 (activations are re-read from L2 for every row tile; weight
 *     tiles are re-read from memory once per token block);
 *   - inside a block, a tile of gemm_mr rows by gemm_nr tokens goes to the
 *     tier's tile kernel, which keeps the tile's sums in registers.
 */
#include "engine/matmul.h"

#include <stdbool.h>
#include <string.h>

#include "common/compiler.h"
#include "engine/matmul_int.h"
#include "engine/quant.h"

/* Activation bytes per token block: about half of a 1-2 MiB L2. */
#define ACT_BLOCK_BYTES (512u * 1024u)

/*
 * The blocked GEMM (matmul_int.h) takes over from this many tokens; below,
 * the prepared-activation GEMV is faster (decoding a panel costs about as
 * much as a few tokens' products).
 */
#define GEMM_MIN_TOKENS 8

static bool use_blocked(const struct slm_matrix *w)
{
	return slm_quant_simd() == SLM_SIMD_AVX512 &&
	       slm_gemm_avx512_supports(w->type);
}

static size_t gemm_thread_bytes(const struct slm_matrix *w)
{
	size_t g = slm_gemm_avx512_work_bytes(
		w->type, w->n_in,
		slm_gemm_avx512_token_block(w->type, w->n_in));
	size_t v = slm_gemv_avx512_scratch(w->type, w->n_in);
	return (SLM_MAX(g, v) + 63) / 64 * 64;
}

enum slm_dtype slm_matmul_act_type(enum slm_dtype wtype)
{
	const struct slm_quant_traits *t = slm_quant_traits(wtype);
	return t && t->vec_dot ? t->vec_dot_type : SLM_DTYPE__COUNT;
}

size_t slm_matmul_act_row_bytes(enum slm_dtype wtype, int64_t n_in)
{
	uint64_t bytes = 0;
	enum slm_dtype at = slm_matmul_act_type(wtype);
	if (at == SLM_DTYPE__COUNT ||
	    !slm_dtype_row_bytes(at, (uint64_t)n_in, &bytes))
		return 0;
	return (size_t)bytes;
}

size_t slm_matmul_act_bytes(enum slm_dtype wtype, int64_t n_in,
			    int64_t n_tokens)
{
	return slm_matmul_act_row_bytes(wtype, n_in) * (size_t)n_tokens;
}

size_t slm_matmul_work_bytes(const struct slm_matrix *w, int nth)
{
	if (!use_blocked(w))
		return 0;
	return gemm_thread_bytes(w) * (size_t)nth + 64;
}

int slm_matmul_check(const struct slm_matrix *w, struct slm_error *err)
{
	const struct slm_quant_traits *t = slm_quant_traits(w->type);
	if (!t || !t->vec_dot)
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "matmul: no kernels for weight type %s",
				     slm_dtype_name(w->type));
	uint64_t row = 0;
	if (w->n_in <= 0 || w->n_out <= 0 ||
	    !slm_dtype_row_bytes(w->type, (uint64_t)w->n_in, &row))
		return slm_error_set(err, SLM_EINVAL,
				     "matmul: %s rows of %lld elements "
				     "(must be a positive multiple of %u)",
				     slm_dtype_name(w->type),
				     (long long)w->n_in,
				     slm_dtype_block(w->type));
	if (w->row_bytes < row)
		return slm_error_set(err, SLM_EINVAL,
				     "matmul: row stride %zu below the row "
				     "size %llu",
				     w->row_bytes, (unsigned long long)row);
	if (!w->data)
		return slm_error_set(err, SLM_EINVAL, "matmul: no data");
	return 0;
}

/* Share [*lo, *hi) of n items for thread ith of nth, in units of `unit`. */
static void split(int64_t n, int64_t unit, int ith, int nth, int64_t *lo,
		  int64_t *hi)
{
	int64_t units = (n + unit - 1) / unit;
	int64_t per = units / nth, extra = units % nth;
	int64_t u0 = ith * per + SLM_MIN(ith, extra);
	int64_t u1 = u0 + per + (ith < extra ? 1 : 0);
	*lo = SLM_MIN(n, u0 * unit);
	*hi = SLM_MIN(n, u1 * unit);
}

void slm_matmul_quantize(enum slm_dtype wtype, int64_t n_in, const float *x,
			 int64_t n_tokens, void *act, int ith, int nth)
{
	const struct slm_quant_traits *at =
		slm_quant_traits(slm_matmul_act_type(wtype));
	size_t row = slm_matmul_act_row_bytes(wtype, n_in);
	int64_t lo, hi;
	split(n_tokens, 1, ith, nth, &lo, &hi);
	for (int64_t t = lo; t < hi; t++)
		at->from_float(x + t * n_in, (uint8_t *)act + (size_t)t * row,
			       n_in);
}

static void compute_blocked(const struct slm_matrix *w, const void *act,
			    int64_t n_tokens, float *y, void *work, int ith,
			    int nth)
{
	const size_t act_row = slm_matmul_act_row_bytes(w->type, w->n_in);
	int64_t o_lo, o_hi;
	split(w->n_out, SLM_GEMM_PANEL, ith, nth, &o_lo, &o_hi);
	if (o_lo >= o_hi)
		return;
	uint8_t *mine = (uint8_t *)work + gemm_thread_bytes(w) * (size_t)ith;
	/* tokens per block: the panel decode is shared by the block */
	const int64_t tb = slm_gemm_avx512_token_block(w->type, w->n_in);
	for (int64_t t0 = 0; t0 < n_tokens; t0 += tb) {
		int64_t t1 = SLM_MIN(n_tokens, t0 + tb);
		slm_gemm_avx512(w, act, act_row, t0, t1, o_lo, o_hi, y, mine);
	}
}

void slm_matmul_compute(const struct slm_matrix *w, const void *act,
			int64_t n_tokens, float *y, void *work, int ith,
			int nth)
{
	if (work && n_tokens >= GEMM_MIN_TOKENS && use_blocked(w)) {
		compute_blocked(w, act, n_tokens, y, work, ith, nth);
		return;
	}
	if (work && use_blocked(w) &&
	    slm_gemv_avx512_scratch(w->type, w->n_in)) {
		/* few tokens: each weight row read once per 4 tokens */
		const size_t act_row =
			slm_matmul_act_row_bytes(w->type, w->n_in);
		int64_t lo, hi;
		split(w->n_out, 1, ith, nth, &lo, &hi);
		for (int64_t t = 0; t < n_tokens; t += SLM_GEMV_MAX_TOKENS)
			slm_gemv_avx512(
				w, (const uint8_t *)act + (size_t)t * act_row,
				act_row,
				SLM_MIN(SLM_GEMV_MAX_TOKENS, n_tokens - t), lo,
				hi, y + (size_t)t * (size_t)w->n_out,
				(uint8_t *)work +
					gemm_thread_bytes(w) * (size_t)ith);
		return;
	}
	const struct slm_quant_traits *t = slm_quant_traits(w->type);
	/*
	 * Decode-sized batches take one weight row per tile: a tile of
	 * several rows reads them as interleaved streams, which the hardware
	 * prefetcher (it stays within 4 KiB pages) follows badly; one row is
	 * one sequential stream, which the kernels also prefetch ahead
	 * (decode here: 10 GB/s per core with 4-row tiles, 18-25 with one).
	 * Bigger batches re-read each tile from cache for every token tile
	 * and gain from the full tile.
	 */
	const int mr = n_tokens <= t->gemm_nr ? 1 : t->gemm_mr;
	const int nr = t->gemm_nr;
	const size_t act_row = slm_matmul_act_row_bytes(w->type, w->n_in);
	int64_t o_lo, o_hi;
	split(w->n_out, mr, ith, nth, &o_lo, &o_hi);
	int64_t tb = (int64_t)(ACT_BLOCK_BYTES / act_row);
	tb = SLM_MAX(nr, tb / nr * nr);
	for (int64_t t0 = 0; t0 < n_tokens; t0 += tb) {
		int64_t t1 = SLM_MIN(n_tokens, t0 + tb);
		for (int64_t o = o_lo; o < o_hi; o += mr) {
			int rows = (int)SLM_MIN(mr, o_hi - o);
			const uint8_t *wr = (const uint8_t *)w->data +
					    (size_t)o * w->row_bytes;
			for (int64_t tt = t0; tt < t1; tt += nr) {
				int cols = (int)SLM_MIN(nr, t1 - tt);
				t->gemm(w->n_in, wr, w->row_bytes, rows,
					(const uint8_t *)act +
						(size_t)tt * act_row,
					act_row, cols,
					y + (size_t)tt * (size_t)w->n_out +
						(size_t)o,
					(size_t)w->n_out);
			}
		}
	}
}

struct matmul_op {
	const struct slm_matrix *w;
	const float *x;
	int64_t n_tokens;
	float *y;
	void *act;
	void *work;
	struct slm_threadpool *pool;
};

static void matmul_task(void *arg, int ith, int nth)
{
	struct matmul_op *op = arg;
	slm_matmul_quantize(op->w->type, op->w->n_in, op->x, op->n_tokens,
			    op->act, ith, nth);
	slm_threadpool_barrier(op->pool);
	slm_matmul_compute(op->w, op->act, op->n_tokens, op->y, op->work, ith,
			   nth);
}

void slm_matmul(struct slm_threadpool *pool, const struct slm_matrix *w,
		const float *x, int64_t n_tokens, float *y, void *act,
		void *work)
{
	struct matmul_op op = {w, x, n_tokens, y, act, work, pool};
	slm_threadpool_run(pool, matmul_task, &op);
}
