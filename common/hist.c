#include "common/hist.h"

#include <string.h>

void slm_hist_init(struct slm_hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

/*
 * Bucket layout: group g = 0 holds values 0..2*SUB-1 one per bucket; group
 * g >= 1 holds [SUB << g, SUB << (g+1)) in SUB buckets of width 2^g.
 */
unsigned slm_hist_bucket_of(uint64_t value)
{
	const uint64_t limit = (uint64_t)1 << SLM_HIST_MAX_BITS;
	if (value >= limit)
		value = limit - 1;
	if (value < 2 * SLM_HIST_SUB)
		return (unsigned)value;
	unsigned msb = 63u - (unsigned)__builtin_clzll(value);
	unsigned group = msb - SLM_HIST_SUB_BITS;
	unsigned sub = (unsigned)(value >> group) - SLM_HIST_SUB;
	return (group + 1) * SLM_HIST_SUB + sub;
}

uint64_t slm_hist_bucket_upper(unsigned bucket)
{
	if (bucket < 2 * SLM_HIST_SUB)
		return bucket;
	unsigned group = bucket / SLM_HIST_SUB - 1;
	uint64_t sub = bucket % SLM_HIST_SUB + SLM_HIST_SUB;
	return ((sub + 1) << group) - 1;
}

void slm_hist_record(struct slm_hist *h, uint64_t value)
{
	h->bucket[slm_hist_bucket_of(value)]++;
	h->count++;
	h->sum += value;
	if (value < h->min)
		h->min = value;
	if (value > h->max)
		h->max = value;
}

void slm_hist_merge(struct slm_hist *dst, const struct slm_hist *src)
{
	for (unsigned i = 0; i < SLM_HIST_BUCKETS; i++)
		dst->bucket[i] += src->bucket[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t slm_hist_quantile(const struct slm_hist *h, double q)
{
	if (h->count == 0)
		return 0;
	if (q <= 0)
		return h->min;
	if (q >= 1)
		return h->max;
	/* rank: the smallest r with r >= q * count, at least 1 */
	double want = q * (double)h->count;
	uint64_t rank = (uint64_t)want;
	if ((double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < SLM_HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t v = slm_hist_bucket_upper(i);
			if (v > h->max)
				v = h->max;
			if (v < h->min)
				v = h->min;
			return v;
		}
	}
	return h->max;
}

void slm_hist_summarize(const struct slm_hist *h, struct slm_hist_summary *out)
{
	out->count = h->count;
	out->min = h->count ? h->min : 0;
	out->max = h->max;
	out->p50 = slm_hist_quantile(h, 0.50);
	out->p90 = slm_hist_quantile(h, 0.90);
	out->p99 = slm_hist_quantile(h, 0.99);
	out->p999 = slm_hist_quantile(h, 0.999);
	out->mean = h->count ? (double)h->sum / (double)h->count : 0;
}
