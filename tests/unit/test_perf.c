#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/perf.h"
#include "tests/unit/harness.h"

static const struct perf_sample *find_sample(const struct perf_snapshot *snap,
					     const char *family,
					     const char *label,
					     const char *value)
{
	const struct perf_family *f = perf_snapshot_find(snap, family);
	for (int i = 0; f && i < f->n_samples; i++) {
		const char *v = perf_sample_label(&f->sample[i], label);
		if (v && !strcmp(v, value))
			return &f->sample[i];
	}
	return NULL;
}

static const struct perf_thread_row *find_row(const struct perf_snapshot *snap,
					      const char *name)
{
	for (int i = 0; i < snap->n_threads; i++)
		if (!strcmp(snap->thread[i].name, name))
			return &snap->thread[i];
	return NULL;
}

static void test_reasons(void)
{
	int a = perf_reason_id("bad_mac");
	int b = perf_reason_id("overloaded");
	CU_ASSERT(a >= 0);
	CU_ASSERT(b >= 0);
	CU_ASSERT_NOT_EQUAL(a, b);
	CU_ASSERT_EQUAL(perf_reason_id("bad_mac"), a);
	CU_ASSERT_STRING_EQUAL(perf_reason_name(a), "bad_mac");
	CU_ASSERT_EQUAL(perf_reason_id(""), SLM_EINVAL);
	CU_ASSERT_EQUAL(perf_reason_id("Bad"), SLM_EINVAL);
	CU_ASSERT_EQUAL(perf_reason_id("9lives"), SLM_EINVAL);
	CU_ASSERT_EQUAL(perf_reason_id("a b"), SLM_EINVAL);
	CU_ASSERT_STRING_EQUAL(perf_reason_name(-1), "?");
	CU_ASSERT_STRING_EQUAL(perf_reason_name(PERF_REASONS_MAX), "?");
}

/* A worker's counters, drops and stage times reach the snapshot with
 * its labels; undeclared ones do not; unregistering keeps the totals. */
static void test_thread_counts(void)
{
	struct perf_thread_params p = {
		.role = "worker",
		.group = 3,
		.index = 1,
		.counters = PERF_MASK(PERF_C_REQUESTS) |
			    PERF_MASK(PERF_C_TOKENS_GENERATED),
		.stages = PERF_MASK(PERF_STAGE_DECODE_STEP)};
	struct perf_thread *pt = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(perf_thread_register(&p, &pt, &err), 0);
	CU_ASSERT_PTR_EQUAL(perf_self(), pt);
	int overload = perf_reason_id("overloaded");
	CU_ASSERT_FATAL(overload >= 0);

	perf_count(pt, PERF_C_REQUESTS, 3);
	perf_count(pt, PERF_C_TOKENS_GENERATED, 40);
	perf_count(pt, PERF_C_PREFIX_HIT_TOKENS, 9); /* not declared */
	perf_drop(pt, overload);
	perf_drop(pt, overload);
	perf_set_activity(pt, PERF_ACT_DECODE);
	/* 100 decode steps of 10..1000 us, and one timed for real. */
	for (int i = 1; i <= 100; i++)
		perf_stage_ns(pt, PERF_STAGE_DECODE_STEP, (uint64_t)i * 10000);
	uint64_t t0 = perf_now();
	slm_sleep_ns(2000000);
	perf_stage_end(pt, PERF_STAGE_DECODE_STEP, t0);
	/* An undeclared stage records nothing and does not crash. */
	perf_stage_ns(pt, PERF_STAGE_PREFILL, 5);

	struct perf_snapshot *snap = perf_snapshot_take();
	CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
	CU_ASSERT_FALSE(snap->oom);
	const struct perf_sample *s =
		find_sample(snap, "requests_total", "thread", "g3.worker1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_EQUAL(s->count, 3);
	CU_ASSERT_STRING_EQUAL(perf_sample_label(s, "group"), "3");
	CU_ASSERT_STRING_EQUAL(perf_sample_label(s, "role"), "worker");
	s = find_sample(snap, "tokens_generated_total", "thread", "g3.worker1");
	CU_ASSERT(s && s->count == 40);
	/* Not declared: not reported, not even as 0. */
	CU_ASSERT_PTR_NULL(find_sample(snap, "prefix_hit_tokens_total",
				       "thread", "g3.worker1"));
	s = find_sample(snap, "drops_total", "reason", "overloaded");
	CU_ASSERT(s && s->count == 2);
	const struct perf_family *f = perf_snapshot_find(snap, "stage_seconds");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(f->type, PERF_HISTOGRAM);
	s = find_sample(snap, "stage_seconds", "stage", "decode_step");
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(perf_sample_label(s, "group"), "3");
	CU_ASSERT_EQUAL(s->hist->count, 101);
	/* p50: the 51st of 101 values, 510 us, within a bucket (1.6 %). */
	uint64_t p50 = slm_hist_quantile(s->hist, 0.5);
	CU_ASSERT(p50 >= 510000 && p50 <= 510000 * 1.016);
	/* The TSC-timed step: at least the 2 ms slept. */
	CU_ASSERT(s->hist->max >= 2000000);
	CU_ASSERT(s->hist->max < 2000000000);
	CU_ASSERT_PTR_NULL(
		find_sample(snap, "stage_seconds", "stage", "prefill"));
	const struct perf_thread_row *row = find_row(snap, "g3.worker1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(row);
	CU_ASSERT_STRING_EQUAL(row->activity, "decode");
	CU_ASSERT_EQUAL(row->group, 3);
	CU_ASSERT(row->tid > 0);
	CU_ASSERT(row->kstate != 0);
	perf_snapshot_free(snap);

	/* Gone: the row disappears, the counts move to the exited row. */
	perf_thread_unregister(pt);
	CU_ASSERT_PTR_NULL(perf_self());
	snap = perf_snapshot_take();
	CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
	CU_ASSERT_PTR_NULL(find_row(snap, "g3.worker1"));
	s = find_sample(snap, "requests_total", "thread", "g3.worker-exited");
	CU_ASSERT(s && s->count == 3);
	s = find_sample(snap, "stage_seconds", "stage", "decode_step");
	CU_ASSERT(s && s->hist->count >= 101);
	perf_snapshot_free(snap);
}

/* The kernel counters: task clock and friends always (where the kernel
 * allows perf_event_open at all), hardware ones only with a PMU. */
static void test_kernel_counters(void)
{
	perf_configure(true);
	struct perf_thread_params p = {.role = "probe", .group = -1};
	struct perf_thread *pt = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(perf_thread_register(&p, &pt, &err), 0);
	volatile uint64_t x = 0;
	for (int i = 0; i < 20000000; i++)
		x += (uint64_t)i;
	struct perf_snapshot *snap = perf_snapshot_take();
	CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
	const struct perf_thread_row *row = find_row(snap, "probe0");
	CU_ASSERT_PTR_NOT_NULL_FATAL(row);
	/* CPU time comes from the task clock or /proc: never zero here. */
	CU_ASSERT(row->cpu_ns > 1000000);
	const char *hw = perf_hw_status();
	if (hw) {
		/* No PMU: no hardware series at all, never zeros. */
		CU_ASSERT_FALSE(row->have_hw);
		CU_ASSERT_PTR_NULL(
			perf_snapshot_find(snap, "thread_cycles_total"));
	} else {
		CU_ASSERT_TRUE(row->have_hw);
		CU_ASSERT(row->ev[PERF_EV_CYCLES] > 1000000);
		CU_ASSERT(row->ev[PERF_EV_INSTRUCTIONS] > 1000000);
	}
	if (!row->have_sw) {
		perf_snapshot_free(snap);
		perf_thread_unregister(pt);
		slm_test_skip("perf_event_open refused software counters "
			      "here (container or seccomp)");
		return;
	}
	CU_ASSERT(row->ev_ok & (1u << PERF_EV_TASK_CLOCK));
	CU_ASSERT(row->ev[PERF_EV_TASK_CLOCK] > 1000000);
	CU_ASSERT_PTR_NOT_NULL(find_sample(
		snap, "thread_context_switches_total", "thread", "probe0"));
	perf_snapshot_free(snap);
	perf_thread_unregister(pt);

	/* Switched off: no kernel counters, CPU time still from /proc. */
	perf_configure(false);
	CU_ASSERT_EQUAL_FATAL(perf_thread_register(&p, &pt, &err), 0);
	for (int i = 0; i < 2000000; i++)
		x += (uint64_t)i;
	snap = perf_snapshot_take();
	row = find_row(snap, "probe0");
	CU_ASSERT(row && !row->have_sw && !row->have_hw && row->cpu_ns > 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(perf_hw_status(), "off"));
	perf_snapshot_free(snap);
	perf_thread_unregister(pt);
	perf_configure(true);
}

/* A source's samples: same labels merge, a type conflict is refused. */
static void source_collect(void *ctx, struct perf_snapshot *snap)
{
	int *calls = ctx;
	(*calls)++;
	perf_emit_counter(snap, "drops_total", "dropped", 5, "thread", "dp0",
			  "reason", "bad_mac", PERF_END);
	perf_emit_counter(snap, "drops_total", "dropped", 2, "thread", "dp0",
			  "reason", "bad_mac", PERF_END);
	perf_emit_gauge(snap, "queue_depth", "waiting", 7, "group", "0",
			PERF_END);
	perf_emit_gauge(snap, "drops_total", "wrong type", 1, PERF_END);
	perf_emit_counter(snap, "Bad-Name", "x", 1, PERF_END);
	perf_emit_counter(snap, "too_many", "x", 1, "a", "1", "b", "2", "c",
			  "3", "d", "4", "e", "5", PERF_END);
}

static void test_sources(void)
{
	int calls = 0;
	CU_ASSERT_EQUAL(perf_source_register("dp", source_collect, &calls), 0);
	CU_ASSERT_EQUAL(perf_source_register("dp", source_collect, &calls),
			SLM_EBUSY);
	struct perf_snapshot *snap = perf_snapshot_take();
	CU_ASSERT_PTR_NOT_NULL_FATAL(snap);
	CU_ASSERT_EQUAL(calls, 1);
	const struct perf_sample *s =
		find_sample(snap, "drops_total", "reason", "bad_mac");
	CU_ASSERT(s && s->count == 7);
	const struct perf_family *f = perf_snapshot_find(snap, "queue_depth");
	CU_ASSERT(f && f->type == PERF_GAUGE && f->sample[0].value == 7);
	CU_ASSERT(snap->conflicts >= 3);
	CU_ASSERT_PTR_NULL(perf_snapshot_find(snap, "Bad-Name"));
	CU_ASSERT_PTR_NULL(perf_snapshot_find(snap, "too_many"));
	CU_ASSERT(perf_family_sum(perf_snapshot_find(snap, "drops_total")) >=
		  7);
	perf_snapshot_free(snap);
	perf_source_unregister("dp");
	snap = perf_snapshot_take();
	CU_ASSERT_EQUAL(calls, 1);
	CU_ASSERT_PTR_NULL(perf_snapshot_find(snap, "queue_depth"));
	perf_snapshot_free(snap);
}

/*
 * A writer records as fast as it can while a reader takes snapshots:
 * every reading of a counter and of a histogram's count only grows, and
 * the last reading after the writer stopped is exact.
 */
struct hammer {
	int stop;
	long n;
	struct perf_thread *pt;
	int ready;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	struct perf_thread_params p = {
		.role = "hammer",
		.group = -1,
		.counters = PERF_MASK(PERF_C_TOKENS_GENERATED),
		.stages = PERF_MASK(PERF_STAGE_TRANSMIT)};
	struct slm_error err = {0};
	if (perf_thread_register(&p, &h->pt, &err))
		return NULL;
	__atomic_store_n(&h->ready, 1, __ATOMIC_RELEASE);
	long n = 0;
	while (!__atomic_load_n(&h->stop, __ATOMIC_ACQUIRE) && n < 3000000) {
		perf_count(h->pt, PERF_C_TOKENS_GENERATED, 1);
		perf_stage_ns(h->pt, PERF_STAGE_TRANSMIT, (uint64_t)(n & 4095));
		n++;
	}
	h->n = n;
	return NULL;
}

static void test_concurrent_reader(void)
{
	struct hammer h = {0};
	pthread_t t;
	pthread_create(&t, NULL, hammer_main, &h);
	while (!__atomic_load_n(&h.ready, __ATOMIC_ACQUIRE))
		slm_sleep_ns(100000);
	uint64_t last_count = 0, last_hist = 0;
	int backwards = 0;
	for (int i = 0; i < 20; i++) {
		struct perf_snapshot *snap = perf_snapshot_take();
		const struct perf_sample *c = find_sample(
			snap, "tokens_generated_total", "thread", "hammer0");
		const struct perf_sample *s =
			find_sample(snap, "stage_seconds", "stage", "transmit");
		if (c && s) {
			backwards += c->count < last_count;
			backwards += s->hist->count < last_hist;
			last_count = c->count;
			last_hist = s->hist->count;
		}
		perf_snapshot_free(snap);
	}
	__atomic_store_n(&h.stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(backwards, 0);
	CU_ASSERT(last_count > 0);
	struct perf_snapshot *snap = perf_snapshot_take();
	const struct perf_sample *c = find_sample(
		snap, "tokens_generated_total", "thread", "hammer0");
	const struct perf_sample *s =
		find_sample(snap, "stage_seconds", "stage", "transmit");
	CU_ASSERT(c && c->count == (uint64_t)h.n);
	CU_ASSERT(s && s->hist->count == (uint64_t)h.n);
	perf_snapshot_free(snap);
	perf_thread_unregister(h.pt);
}

SLM_SUITE("perf", NULL, NULL, {"reasons", test_reasons},
	  {"thread counts", test_thread_counts},
	  {"kernel counters", test_kernel_counters}, {"sources", test_sources},
	  {"snapshots while a thread records", test_concurrent_reader})
