#include <string.h>

#include "numa/dispatch.h"
#include "tests/unit/harness.h"

#define G(q, r, pre)                                                          \
	{                                                                     \
		.queued_tokens = q, .running_tokens = r, .prefix_tokens = pre \
	}

static const struct slm_dispatch_policy policy = {
	.affinity_threshold = 2048,
	.affinity_min_prefix = 32,
};

static int pick(const struct slm_dispatch_group *g, int n,
		enum slm_dispatch_reason *why)
{
	return slm_dispatch_pick(&policy, g, n, why);
}

/* The group with the prefix wins until its extra load passes the
 * threshold; one token more and the least loaded wins. */
static void test_affinity_until_threshold(void)
{
	enum slm_dispatch_reason why;
	struct slm_dispatch_group g[2] = {G(0, 0, 1024), G(0, 0, 0)};
	CU_ASSERT_EQUAL(pick(g, 2, &why), 0);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED); /* also least */
	for (uint64_t load = 1; load <= 2048; load += 97) {
		g[0].queued_tokens = load / 2;
		g[0].running_tokens = load - load / 2;
		CU_ASSERT_EQUAL(pick(g, 2, &why), 0);
		CU_ASSERT_EQUAL(why, SLM_DISPATCH_AFFINITY);
	}
	g[0].queued_tokens = 1024;
	g[0].running_tokens = 1024; /* exactly the threshold above */
	CU_ASSERT_EQUAL(pick(g, 2, &why), 0);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_AFFINITY);
	g[0].running_tokens = 1025;
	CU_ASSERT_EQUAL(pick(g, 2, &why), 1);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED);
	/* The threshold is relative to the least loaded group. */
	g[1].running_tokens = 500;
	CU_ASSERT_EQUAL(pick(g, 2, &why), 0);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_AFFINITY);
}

static void test_min_prefix(void)
{
	enum slm_dispatch_reason why;
	/* 31 tokens more than the least loaded group holds: not worth it. */
	struct slm_dispatch_group g[2] = {G(100, 0, 47), G(0, 0, 16)};
	CU_ASSERT_EQUAL(pick(g, 2, &why), 1);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED);
	g[0].prefix_tokens = 48; /* 32 more */
	CU_ASSERT_EQUAL(pick(g, 2, &why), 0);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_AFFINITY);
	/* min_prefix 0: any advantage counts. */
	struct slm_dispatch_policy p0 = {.affinity_threshold = 2048};
	g[0].prefix_tokens = 17;
	CU_ASSERT_EQUAL(slm_dispatch_pick(&p0, g, 2, &why), 0);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_AFFINITY);
}

static void test_ties(void)
{
	enum slm_dispatch_reason why;
	/* Equal loads, no prefix: the lowest index. */
	struct slm_dispatch_group g[4] = {G(5, 5, 0), G(3, 7, 0), G(10, 0, 0),
					  G(0, 10, 0)};
	CU_ASSERT_EQUAL(pick(g, 4, &why), 0);
	/* Lower load wins. */
	g[2].queued_tokens = 9;
	CU_ASSERT_EQUAL(pick(g, 4, &why), 2);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED);
	/* Equal prefixes: the less loaded of them, then the lower index. */
	struct slm_dispatch_group h[4] = {G(100, 0, 0), G(300, 0, 512),
					  G(200, 0, 512), G(200, 0, 512)};
	CU_ASSERT_EQUAL(pick(h, 4, &why), 2);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_AFFINITY);
	/* The least loaded group holding the prefix: not a detour. */
	h[0].queued_tokens = 250;
	CU_ASSERT_EQUAL(pick(h, 4, &why), 2);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED);
	/* Every group holds the prefix: plain least loaded. */
	h[0].prefix_tokens = 512;
	h[0].queued_tokens = 200;
	CU_ASSERT_EQUAL(pick(h, 4, &why), 0);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED);
	/* Same inputs, same answer. */
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(pick(h, 4, NULL), 0);
}

/* Past the threshold the best prefix among the groups within it wins. */
static void test_second_best_prefix(void)
{
	enum slm_dispatch_reason why;
	struct slm_dispatch_group g[3] = {G(9000, 0, 1400), G(200, 0, 1000),
					  G(0, 0, 0)};
	CU_ASSERT_EQUAL(pick(g, 3, &why), 1);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_AFFINITY);
	g[1].queued_tokens = 3000;
	CU_ASSERT_EQUAL(pick(g, 3, &why), 2);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED);
}

static void test_closed(void)
{
	enum slm_dispatch_reason why;
	struct slm_dispatch_group g[3] = {G(0, 0, 4096), G(50, 0, 0),
					  G(10, 0, 0)};
	g[0].closed = true;
	CU_ASSERT_EQUAL(pick(g, 3, &why), 2);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED);
	g[2].closed = true;
	CU_ASSERT_EQUAL(pick(g, 3, &why), 1);
	g[1].closed = true;
	CU_ASSERT_EQUAL(pick(g, 3, &why), -1);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_NONE);
	CU_ASSERT_EQUAL(pick(g, 0, &why), -1);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_NONE);
	/* One group: it, whatever its load. */
	struct slm_dispatch_group one = G(UINT64_MAX, 0, 0);
	CU_ASSERT_EQUAL(pick(&one, 1, &why), 0);
}

static void test_no_overflow(void)
{
	enum slm_dispatch_reason why;
	/* Sums and limits saturate instead of wrapping. */
	struct slm_dispatch_group g[2] = {G(UINT64_MAX, 5, 4096),
					  G(UINT64_MAX - 10, 0, 0)};
	struct slm_dispatch_policy huge = {.affinity_threshold = UINT64_MAX};
	CU_ASSERT_EQUAL(slm_dispatch_pick(&huge, g, 2, &why), 0);
	CU_ASSERT_EQUAL(pick(g, 2, &why), 0); /* saturated: within 2048 */
	g[1].queued_tokens = 0;
	CU_ASSERT_EQUAL(pick(g, 2, &why), 1);
	/* Threshold 0: affinity only among the least loaded. */
	struct slm_dispatch_policy zero = {0};
	struct slm_dispatch_group h[2] = {G(7, 0, 0), G(7, 0, 4096)};
	CU_ASSERT_EQUAL(slm_dispatch_pick(&zero, h, 2, &why), 1);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_AFFINITY);
	h[1].queued_tokens = 8;
	CU_ASSERT_EQUAL(slm_dispatch_pick(&zero, h, 2, &why), 0);
	CU_ASSERT_EQUAL(why, SLM_DISPATCH_LEAST_LOADED);
}

/* The rule written out plainly, to compare with on random inputs. */
static int reference(const struct slm_dispatch_policy *p,
		     const struct slm_dispatch_group *g, int n)
{
	long double min = -1;
	int least = -1;
	for (int i = 0; i < n; i++) {
		if (g[i].closed)
			continue;
		long double load = (long double)g[i].queued_tokens +
				   (long double)g[i].running_tokens;
		if (least < 0 || load < min) {
			min = load;
			least = i;
		}
	}
	if (least < 0)
		return -1;
	int best = -1;
	long double best_load = 0;
	for (int i = 0; i < n; i++) {
		if (g[i].closed)
			continue;
		long double load = (long double)g[i].queued_tokens +
				   (long double)g[i].running_tokens;
		if (load > min + (long double)p->affinity_threshold)
			continue;
		if (best < 0 || g[i].prefix_tokens > g[best].prefix_tokens ||
		    (g[i].prefix_tokens == g[best].prefix_tokens &&
		     load < best_load)) {
			best = i;
			best_load = load;
		}
	}
	if (g[best].prefix_tokens > g[least].prefix_tokens &&
	    g[best].prefix_tokens - g[least].prefix_tokens >=
		    p->affinity_min_prefix)
		return best;
	return least;
}

static void test_random_against_reference(void)
{
	struct slm_test_rng rng = {0x5eed1234u};
	for (int round = 0; round < 20000; round++) {
		struct slm_dispatch_group g[8];
		int n = 1 + (int)(slm_test_rand(&rng) % 8);
		for (int i = 0; i < n; i++) {
			/* Small ranges, so ties happen often. */
			g[i].queued_tokens = slm_test_rand(&rng) % 5 * 1000;
			g[i].running_tokens = slm_test_rand(&rng) % 3 * 700;
			g[i].prefix_tokens = slm_test_rand(&rng) % 4 * 512;
			g[i].closed = slm_test_rand(&rng) % 7 == 0;
		}
		struct slm_dispatch_policy p = {
			.affinity_threshold = slm_test_rand(&rng) % 4 * 1000,
			.affinity_min_prefix = slm_test_rand(&rng) % 3 * 300,
		};
		enum slm_dispatch_reason why;
		int got = slm_dispatch_pick(&p, g, n, &why);
		int want = reference(&p, g, n);
		CU_ASSERT_EQUAL(got, want);
		if (got != want)
			break;
		if (got < 0)
			continue;
		CU_ASSERT_FALSE(g[got].closed);
		uint64_t min = UINT64_MAX;
		for (int i = 0; i < n; i++)
			if (!g[i].closed)
				min = SLM_MIN(min, g[i].queued_tokens +
							   g[i].running_tokens);
		uint64_t load = g[got].queued_tokens + g[got].running_tokens;
		if (why == SLM_DISPATCH_LEAST_LOADED) {
			CU_ASSERT_EQUAL(load, min);
		} else {
			CU_ASSERT(load <= min + p.affinity_threshold);
		}
	}
}

/*
 * A stream of requests sharing a prefix cached only in group 0 (a system
 * prompt): they go there until it is threshold tokens ahead, then spill
 * over; the imbalance stays bounded by the threshold plus one request.
 */
static void test_stream(void)
{
	struct slm_dispatch_group g[2] = {G(0, 0, 0), G(0, 0, 0)};
	const uint64_t req = 300;
	int to[2] = {0, 0};
	for (int i = 0; i < 100; i++) {
		g[0].prefix_tokens = 1400;
		g[1].prefix_tokens = 0;
		int k = pick(g, 2, NULL);
		CU_ASSERT_FATAL(k >= 0);
		g[k].queued_tokens += req;
		to[k]++;
		uint64_t a = g[0].queued_tokens, b = g[1].queued_tokens;
		CU_ASSERT((a > b ? a - b : b - a) <=
			  policy.affinity_threshold + req);
		/* Every 10 requests the groups finish some work. */
		if (i % 10 == 9)
			for (int j = 0; j < 2; j++)
				g[j].queued_tokens -=
					SLM_MIN(g[j].queued_tokens, 1000);
	}
	CU_ASSERT(to[0] > to[1]);
	CU_ASSERT(to[1] > 0);
	/* The first requests all went to the cached prefix. */
	struct slm_dispatch_group fresh[2] = {G(0, 0, 1400), G(0, 0, 0)};
	for (int i = 0; i < 6; i++) {
		CU_ASSERT_EQUAL(pick(fresh, 2, NULL), 0);
		fresh[0].queued_tokens += req;
	}
}

static void test_from_config(void)
{
	struct slm_config *cfg = slm_config_create();
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	struct slm_dispatch_policy p;
	slm_dispatch_policy_from_config(&p, cfg);
	CU_ASSERT_EQUAL(p.affinity_threshold, 2048);
	CU_ASSERT_EQUAL(p.affinity_min_prefix, 32);
	/* Both may change while slmd runs. */
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_config_set_runtime(cfg, "numa.affinity_threshold",
					       "100", &err),
			0);
	CU_ASSERT_EQUAL(slm_config_set_runtime(cfg, "numa.affinity_min_prefix",
					       "0", &err),
			0);
	slm_dispatch_policy_from_config(&p, cfg);
	CU_ASSERT_EQUAL(p.affinity_threshold, 100);
	CU_ASSERT_EQUAL(p.affinity_min_prefix, 0);
	CU_ASSERT(slm_config_set(cfg, "numa.affinity_threshold", "-1", &err) <
		  0);
	slm_config_destroy(cfg);
}

SLM_SUITE("dispatch", NULL, NULL,
	  {"affinity_until_threshold", test_affinity_until_threshold},
	  {"min_prefix", test_min_prefix}, {"ties", test_ties},
	  {"second_best_prefix", test_second_best_prefix},
	  {"closed", test_closed}, {"no_overflow", test_no_overflow},
	  {"random_against_reference", test_random_against_reference},
	  {"stream", test_stream}, {"from_config", test_from_config})
