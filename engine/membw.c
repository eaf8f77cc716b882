#include "engine/membw.h"

#include <emmintrin.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/compiler.h"

struct membw_op {
	struct slm_threadpool *pool;
	const uint8_t *buf;
	size_t per_thread;
	int passes;
	uint64_t best_ns;
	uint64_t sink[64];
};

/* Sum 64 bytes per iteration so the loads cannot be skipped; four
 * independent accumulators keep the loads in flight. */
static uint64_t read_slice(const uint8_t *p, size_t bytes)
{
	__m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
	for (size_t i = 0; i < bytes; i += 64) {
		a = _mm_add_epi64(a, _mm_load_si128((const __m128i *)(p + i)));
		b = _mm_add_epi64(
			b, _mm_load_si128((const __m128i *)(p + i + 16)));
		c = _mm_add_epi64(
			c, _mm_load_si128((const __m128i *)(p + i + 32)));
		d = _mm_add_epi64(
			d, _mm_load_si128((const __m128i *)(p + i + 48)));
	}
	a = _mm_add_epi64(_mm_add_epi64(a, b), _mm_add_epi64(c, d));
	return (uint64_t)_mm_cvtsi128_si64(a) +
	       (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(a, a));
}

static void membw_task(void *arg, int ith, int nth)
{
	struct membw_op *op = arg;
	(void)nth;
	const uint8_t *p = op->buf + (size_t)ith * op->per_thread;
	uint64_t sink = 0;
	for (int pass = 0; pass < op->passes; pass++) {
		slm_threadpool_barrier(op->pool);
		uint64_t t0 = slm_now_ns();
		sink += read_slice(p, op->per_thread);
		slm_threadpool_barrier(op->pool);
		uint64_t ns = slm_now_ns() - t0;
		if (ith == 0 && ns < op->best_ns)
			op->best_ns = ns;
	}
	op->sink[ith % 64] = sink;
}

double slm_membw_read(struct slm_threadpool *pool, size_t bytes, int passes)
{
	int nth = slm_threadpool_n_threads(pool);
	size_t per = bytes / (size_t)nth / 4096 * 4096;
	if (per == 0 || passes < 1)
		return -1;
	uint8_t *buf = aligned_alloc(4096, per * (size_t)nth);
	if (!buf)
		return -1;
	memset(buf, 1, per * (size_t)nth); /* fault the pages in */
	struct membw_op op = {.pool = pool,
			      .buf = buf,
			      .per_thread = per,
			      .passes = passes,
			      .best_ns = UINT64_MAX};
	slm_threadpool_run(pool, membw_task, &op);
	free(buf);
	return (double)(per * (size_t)nth) / (double)op.best_ns;
}
