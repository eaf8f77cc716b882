#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/hist.h"
#include "common/compiler.h"
#include "tests/unit/harness.h"

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The reference: the value of rank ceil(q*n) in the sorted data. */
static uint64_t sorted_quantile(const uint64_t *v, size_t n, double q)
{
	double want = q * (double)n;
	size_t rank = (size_t)want;
	if ((double)rank < want)
		rank++;
	if (rank == 0)
		rank = 1;
	return v[rank - 1];
}

static void check_against_sorted(uint64_t *values, size_t n,
				 const struct slm_hist *h)
{
	qsort(values, n, sizeof(values[0]), cmp_u64);
	static const double qs[] = {0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0};
	for (size_t i = 0; i < SLM_ARRAY_LEN(qs); i++) {
		uint64_t want = sorted_quantile(values, n, qs[i]);
		uint64_t got = slm_hist_quantile(h, qs[i]);
		/* The bucket holding `want` reports its upper edge: never
		 * below the true value, at most 1/64 above it. */
		CU_ASSERT(got >= want);
		CU_ASSERT((double)got <= (double)want * (1.0 + 1.0 / 64) + 1);
	}
	CU_ASSERT_EQUAL(slm_hist_quantile(h, 0), values[0]);
	CU_ASSERT_EQUAL(h->max, values[n - 1]);
}

static void test_quantiles_against_sorted_reference(void)
{
	struct slm_test_rng rng = {0x1234567};
	enum { N = 100000 };
	uint64_t *values = malloc(N * sizeof(*values));
	struct slm_hist *h = malloc(sizeof(*h));
	slm_hist_init(h);
	for (size_t i = 0; i < N; i++) {
		/* log-normal latencies around 50 us, long tail */
		double x = exp(10.8 + 1.5 * slm_test_normal(&rng));
		values[i] = (uint64_t)x;
		slm_hist_record(h, values[i]);
	}
	CU_ASSERT_EQUAL(h->count, N);
	check_against_sorted(values, N, h);
	free(values);
	free(h);
}

static void test_small_values_exact(void)
{
	struct slm_hist h;
	slm_hist_init(&h);
	for (uint64_t v = 0; v < 100; v++)
		slm_hist_record(&h, v);
	CU_ASSERT_EQUAL(slm_hist_quantile(&h, 0.5), 49);
	CU_ASSERT_EQUAL(slm_hist_quantile(&h, 0.99), 98);
	CU_ASSERT_EQUAL(slm_hist_quantile(&h, 0.999), 99);
	struct slm_hist_summary s;
	slm_hist_summarize(&h, &s);
	CU_ASSERT_EQUAL(s.min, 0);
	CU_ASSERT_EQUAL(s.max, 99);
	CU_ASSERT_DOUBLE_EQUAL(s.mean, 49.5, 1e-9);
}

static void test_merge_equals_single(void)
{
	struct slm_test_rng rng = {42};
	struct slm_hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b)),
			*all = malloc(sizeof(*all));
	slm_hist_init(a);
	slm_hist_init(b);
	slm_hist_init(all);
	enum { N = 20000 };
	uint64_t *values = malloc(2 * N * sizeof(*values));
	for (size_t i = 0; i < 2 * N; i++) {
		values[i] = slm_test_rand(&rng) % (i < N ? 1000 : 10000000);
		slm_hist_record(i < N ? a : b, values[i]);
		slm_hist_record(all, values[i]);
	}
	slm_hist_merge(a, b);
	CU_ASSERT_EQUAL(a->count, all->count);
	CU_ASSERT_EQUAL(a->sum, all->sum);
	CU_ASSERT_EQUAL(a->min, all->min);
	CU_ASSERT_EQUAL(a->max, all->max);
	CU_ASSERT_EQUAL(memcmp(a->bucket, all->bucket, sizeof(a->bucket)), 0);
	check_against_sorted(values, 2 * N, a);
	free(values);
	free(a);
	free(b);
	free(all);
}

static void test_bucket_edges(void)
{
	/* Every bucket's upper edge maps back to that bucket, and the next
	 * value to the next bucket: buckets tile the range without gaps. */
	for (unsigned b = 0; b + 1 < SLM_HIST_BUCKETS; b++) {
		uint64_t up = slm_hist_bucket_upper(b);
		CU_ASSERT_EQUAL_FATAL(slm_hist_bucket_of(up), b);
		CU_ASSERT_EQUAL_FATAL(slm_hist_bucket_of(up + 1), b + 1);
	}
	CU_ASSERT_EQUAL(slm_hist_bucket_of(UINT64_MAX), SLM_HIST_BUCKETS - 1);
}

static void test_empty(void)
{
	struct slm_hist h;
	slm_hist_init(&h);
	CU_ASSERT_EQUAL(slm_hist_quantile(&h, 0.5), 0);
	struct slm_hist_summary s;
	slm_hist_summarize(&h, &s);
	CU_ASSERT_EQUAL(s.count, 0);
	CU_ASSERT_EQUAL(s.min, 0);
}

SLM_SUITE("hist", NULL, NULL,
	  {"quantiles against sorted reference",
	   test_quantiles_against_sorted_reference},
	  {"small values exact", test_small_values_exact},
	  {"merge equals single", test_merge_equals_single},
	  {"bucket edges", test_bucket_edges}, {"empty", test_empty})
