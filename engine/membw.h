/*
 * membw.h: memory read bandwidth, measured.
 *
 * Decode reads every weight once per token, so its speed limit is the
 * memory's read bandwidth; the benchmarks print it beside their figures.
 * The measurement reads a buffer much larger than the last-level cache
 * with every thread of a pool (each its own slice, streaming) and keeps
 * the best of several passes.
 */
#ifndef SLM_ENGINE_MEMBW_H
#define SLM_ENGINE_MEMBW_H

#include <stddef.h>

#include "engine/threadpool.h"

/*
 * Read bandwidth in GB/s (1e9 bytes per second) of all threads of pool
 * reading a `bytes` buffer (rounded down to 4 KiB per thread), best of
 * `passes`.  Returns a negative value when the buffer cannot be had.
 */
double slm_membw_read(struct slm_threadpool *pool, size_t bytes, int passes);

#endif
