/*
 * bench_perf: what the always-on counters cost on a hot path.
 *
 *   bench_perf [-n CALLS]
 *
 * Times, per call: perf_count (a counter), perf_stage_ns (a histogram
 * record), perf_stage_end (a TSC read and a record), with the counters
 * in cache (a tight loop) and with the caches thrashed between calls (a
 * 64 MiB sweep, as a decode step streaming weights leaves them); then the
 * instrumentation of one decode step of a batch (activity twice, the step
 * histogram, the token counter, a detokenize record per sequence, a first
 * token for one new sequence) with cold caches, against a 10 ms and a 40
 * ms step; and the reader's side, a snapshot of 8 worker threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "ctl/perf.h"

#define SWEEP_BYTES (64u << 20)

static volatile uint64_t sink;

/* Touch every line of a large buffer: evicts the counters from cache. */
static void thrash(uint8_t *buf)
{
	uint64_t s = 0;
	for (size_t i = 0; i < SWEEP_BYTES; i += 64) {
		buf[i]++;
		s += buf[i];
	}
	sink += s;
}

static double ns_per(uint64_t t0, uint64_t t1, long n)
{
	return (double)(t1 - t0) / (double)n;
}

/* Cycles of one call measured around it, cold caches; median of n. */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	long n = 20000000;
	if (argc == 3 && !strcmp(argv[1], "-n"))
		n = atol(argv[2]);
	struct perf_thread_params p = {
		.role = "bench",
		.group = 0,
		.counters = PERF_MASK(PERF_C_TOKENS_GENERATED) |
			    PERF_MASK(PERF_C_REQUESTS),
		.stages = PERF_MASK(PERF_STAGE_DECODE_STEP) |
			  PERF_MASK(PERF_STAGE_DETOKENIZE) |
			  PERF_MASK(PERF_STAGE_FIRST_TOKEN)};
	struct perf_thread *pt = NULL;
	struct slm_error err = {0};
	if (perf_thread_register(&p, &pt, &err)) {
		fprintf(stderr, "bench_perf: %s\n", err.msg);
		return 1;
	}
	double cpn = slm_cycles_per_ns();

	/* Hot: a tight loop. */
	uint64_t t0 = slm_now_ns();
	for (long i = 0; i < n; i++)
		perf_count(pt, PERF_C_TOKENS_GENERATED, 1);
	uint64_t t1 = slm_now_ns();
	double count_hot = ns_per(t0, t1, n);
	t0 = slm_now_ns();
	for (long i = 0; i < n; i++)
		perf_stage_ns(pt, PERF_STAGE_DECODE_STEP,
			      (uint64_t)(10000000 + (i & 0xfffff)));
	t1 = slm_now_ns();
	double record_hot = ns_per(t0, t1, n);
	uint64_t c = perf_now();
	t0 = slm_now_ns();
	for (long i = 0; i < n; i++)
		c = perf_stage_end(pt, PERF_STAGE_DETOKENIZE, c);
	t1 = slm_now_ns();
	double end_hot = ns_per(t0, t1, n);

	/* Cold: the counters evicted before every call. */
	enum { COLD = 301 };
	uint8_t *buf = calloc(1, SWEEP_BYTES);
	uint64_t *cyc = calloc(COLD, sizeof(*cyc));
	if (!buf || !cyc)
		return 1;
	double cold[3];
	for (int kind = 0; kind < 3; kind++) {
		for (int i = 0; i < COLD; i++) {
			thrash(buf);
			uint64_t a = slm_cycles();
			if (kind == 0)
				perf_count(pt, PERF_C_TOKENS_GENERATED, 1);
			else if (kind == 1)
				perf_stage_ns(pt, PERF_STAGE_DECODE_STEP,
					      (uint64_t)(10000000 + i * 997));
			else
				perf_stage_end(pt, PERF_STAGE_DETOKENIZE, a);
			cyc[i] = slm_cycles() - a;
		}
		qsort(cyc, COLD, sizeof(*cyc), cmp_u64);
		cold[kind] = (double)cyc[COLD / 2] / cpn;
	}

	/* One decode step of a batch of 16, instrumented as a worker would,
	 * caches cold. */
	const int batch = 16;
	for (int i = 0; i < COLD; i++) {
		thrash(buf);
		uint64_t a = slm_cycles();
		perf_set_activity(pt, PERF_ACT_DECODE);
		uint64_t step0 = perf_now();
		/* (the forward pass would run here) */
		uint64_t t = perf_stage_end(pt, PERF_STAGE_DECODE_STEP, step0);
		perf_count(pt, PERF_C_TOKENS_GENERATED, (uint64_t)batch);
		for (int s = 0; s < batch; s++)
			t = perf_stage_end(pt, PERF_STAGE_DETOKENIZE, t);
		perf_stage_ns(pt, PERF_STAGE_FIRST_TOKEN, 12000000);
		perf_count(pt, PERF_C_REQUESTS, 1);
		perf_set_activity(pt, PERF_ACT_IDLE);
		cyc[i] = slm_cycles() - a;
	}
	qsort(cyc, COLD, sizeof(*cyc), cmp_u64);
	double step_ns = (double)cyc[COLD / 2] / cpn;
	double step_p99 = (double)cyc[COLD * 99 / 100] / cpn;

	/* The reader: a snapshot of 8 more worker threads' worth. */
	enum { READERS = 8 };
	struct perf_thread *w[READERS];
	for (int i = 0; i < READERS; i++) {
		struct perf_thread_params q = p;
		q.index = i + 1;
		q.stages = (uint32_t)(PERF_MASK(PERF_STAGE__COUNT) - 1);
		if (perf_thread_register(&q, &w[i], &err))
			return 1;
	}
	t0 = slm_now_ns();
	for (int i = 0; i < 20; i++)
		perf_snapshot_free(perf_snapshot_take());
	t1 = slm_now_ns();
	double snap_us = (double)(t1 - t0) / 20 / 1e3;
	for (int i = 0; i < READERS; i++)
		perf_thread_unregister(w[i]);

	printf("per call                         hot (ns)  cold caches (ns)\n");
	printf("perf_count                       %8.2f  %8.1f\n", count_hot,
	       cold[0]);
	printf("perf_stage_ns (record)           %8.2f  %8.1f\n", record_hot,
	       cold[1]);
	printf("perf_stage_end (TSC + record)    %8.2f  %8.1f\n", end_hot,
	       cold[2]);
	printf("\none decode step, batch %d, cold caches: %.0f ns median, "
	       "%.0f ns p99\n",
	       batch, step_ns, step_p99);
	printf("  = %.5f %% of a 10 ms step, %.5f %% of a 40 ms step "
	       "(goal: < 1 %%)\n",
	       step_ns / 1e7 * 100, step_ns / 4e7 * 100);
	printf("snapshot of %d threads (all stages): %.0f us (reader side, "
	       "ctl thread)\n",
	       READERS + 1, snap_us);
	free(buf);
	free(cyc);
	perf_thread_unregister(pt);
	return 0;
}
