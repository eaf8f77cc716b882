/*
 * hist.h: a log-linear latency histogram.
 *
 * Values (nanoseconds, or any non-negative count) fall into buckets whose
 * width is 1/64 of their magnitude: values below 128 are exact, larger ones
 * are kept within 1.6 %.  Recording is a few instructions and touches one
 * counter, so each thread keeps its own histogram and a reader merges them.
 * One writer per histogram; readers of a live histogram see counts that are
 * each exact but may not add up to the same instant.
 */
#ifndef SLM_COMMON_HIST_H
#define SLM_COMMON_HIST_H

#include <stdint.h>

#define SLM_HIST_SUB_BITS 6
#define SLM_HIST_SUB (1u << SLM_HIST_SUB_BITS)
/* Values up to 2^42 ns (about 73 minutes) are bucketed; larger clamp. */
#define SLM_HIST_MAX_BITS 42
#define SLM_HIST_BUCKETS \
	((SLM_HIST_MAX_BITS - SLM_HIST_SUB_BITS + 1) * SLM_HIST_SUB)

struct slm_hist {
	uint64_t count;
	uint64_t sum;
	uint64_t min;
	uint64_t max;
	uint64_t bucket[SLM_HIST_BUCKETS];
};

void slm_hist_init(struct slm_hist *h);
void slm_hist_record(struct slm_hist *h, uint64_t value);

/* Add every count of src into dst. */
void slm_hist_merge(struct slm_hist *dst, const struct slm_hist *src);

/*
 * The value at quantile q (0..1): the smallest bucket holding at least
 * q * count values, reported as that bucket's upper edge clamped to the
 * observed min and max.  0 for an empty histogram.
 */
uint64_t slm_hist_quantile(const struct slm_hist *h, double q);

/* Summary of the usual quantiles. */
struct slm_hist_summary {
	uint64_t count, min, max, p50, p90, p99, p999;
	double mean;
};
void slm_hist_summarize(const struct slm_hist *h, struct slm_hist_summary *out);

/* Bucket index for a value and the largest value of a bucket. */
unsigned slm_hist_bucket_of(uint64_t value);
uint64_t slm_hist_bucket_upper(unsigned bucket);

#endif
