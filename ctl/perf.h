/*
 * perf.h: the counters and latency histograms every slmd thread keeps, and
 * the snapshot every reader takes of them.
 *
 * Writers.  A thread that does request work (each dataplane thread, each
 * worker) registers itself once with perf_thread_register and owns the
 * struct perf_thread it gets: counters, drops and errors by reason, and a
 * log-linear histogram (common/hist.h, nanoseconds) for each stage it
 * declared.  Only the owner writes it, with the inline functions below: a
 * TSC read, a bucket index and a few stores.  The stores are relaxed
 * atomics, which compile to plain moves on x86-64: they cost nothing and
 * only keep the compiler from tearing or caching what a reader loads.  No
 * locks, no read-modify-write instructions, no shared cache lines.
 * Registration also asks the kernel (perf_event_open) to count the
 * thread's task clock, context switches and page faults, and where the
 * machine has a PMU its cycles, instructions, cache and branch misses;
 * the kernel counts them for free as far as the thread can tell.
 *
 * Sources.  A component that keeps counters of its own (the dataplane's
 * per-thread drop reasons, the serving core's queue depth and KV use)
 * registers a collect callback that emits them into a snapshot with
 * perf_emit_*.  Names follow Prometheus: base units, `_total` on
 * counters, `_seconds` on time histograms (recorded in ns); the exporter
 * prefixes `slmd_`.  docs/ctl.md lists the names slmctl top reads.
 *
 * Readers.  perf_snapshot_take collects every thread and source into
 * metric families (name, help, type, labelled samples) plus a row per
 * thread (CPU time, state); ctl renders it as the JSON of stats, perf
 * and top and as the Prometheus page.  Each value is exact, but values
 * are not all of one instant.
 *
 * Threads: everything here is thread-safe except that a struct
 * perf_thread is written by its owner only.
 */
#ifndef SLM_CTL_PERF_H
#define SLM_CTL_PERF_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/hist.h"

/* X(ID, name, help): the stages a request goes through, in order. */
#define PERF_STAGES(X)                                                         \
	X(RECV_ENQUEUE, "recv_enqueue",                                        \
	  "first datagram of a request received to the request queued on "     \
	  "a worker group")                                                    \
	X(QUEUE_WAIT, "queue_wait", "request queued to admitted into a batch") \
	X(PREFILL, "prefill", "prefill of one request's uncached prompt")      \
	X(FIRST_TOKEN, "first_token",                                          \
	  "request received to its first token (time to first token)")         \
	X(DECODE_STEP, "decode_step",                                          \
	  "one decode step of a batch: the time between two tokens of a "      \
	  "request")                                                           \
	X(DETOKENIZE, "detokenize", "token ids to the text of one event")      \
	X(TRANSMIT, "transmit",                                                \
	  "event ready to its datagram handed to the kernel or NIC")

enum perf_stage {
#define PERF_STAGE_ENUM(id, name, help) PERF_STAGE_##id,
	PERF_STAGES(PERF_STAGE_ENUM)
#undef PERF_STAGE_ENUM
		PERF_STAGE__COUNT
};

/* X(ID, name, help): counters a thread may keep (names end in _total). */
#define PERF_COUNTERS(X)                                                  \
	X(REQUESTS, "requests_total", "requests accepted")                \
	X(REQUESTS_DONE, "requests_done_total",                           \
	  "requests finished, whatever the reason")                       \
	X(PROMPT_TOKENS, "prompt_tokens_total",                           \
	  "prompt tokens of accepted requests")                           \
	X(TOKENS_GENERATED, "tokens_generated_total", "tokens generated") \
	X(PREFIX_HIT_TOKENS, "prefix_hit_tokens_total",                   \
	  "prompt tokens found in the prefix cache (not computed)")       \
	X(PREFIX_MISS_TOKENS, "prefix_miss_tokens_total",                 \
	  "prompt tokens computed by prefill")

enum perf_counter {
#define PERF_COUNTER_ENUM(id, name, help) PERF_C_##id,
	PERF_COUNTERS(PERF_COUNTER_ENUM)
#undef PERF_COUNTER_ENUM
		PERF_C__COUNT
};

/* What a thread says it is doing (slmctl top shows it). */
enum perf_activity {
	PERF_ACT_NONE,	  /* never set: top shows the kernel's state */
	PERF_ACT_IDLE,	  /* waiting for work */
	PERF_ACT_POLL,	  /* busy-polling for packets or work */
	PERF_ACT_PREFILL, /* a forward pass with prefill in it */
	PERF_ACT_DECODE,  /* a decode-only forward pass */
	PERF_ACT_IO,	  /* receiving or transmitting */
	PERF_ACT__COUNT
};
const char *perf_activity_name(enum perf_activity a);

/* Drop and error reasons: ids of a process-wide table of names. */
#define PERF_REASONS_MAX 64

/* The stage, counter and reason names ("decode_step", ...). */
const char *perf_stage_name(enum perf_stage s);
const char *perf_stage_help(enum perf_stage s);
const char *perf_counter_name(enum perf_counter c);
const char *perf_counter_help(enum perf_counter c);

/*
 * The id of a drop or error reason, registering the name on first use
 * (names are [a-z0-9_], at most 47 bytes, e.g. "bad_mac", "overloaded").
 * Call once at start-up and keep the id.  SLM_EINVAL for a bad name,
 * SLM_ENOMEM when PERF_REASONS_MAX names are taken.
 */
int perf_reason_id(const char *name) SLM_MUST_CHECK;
const char *perf_reason_name(int id);

struct perf_thread_priv; /* the module's own part */

/* One registered thread.  Written only by its owner, through the inline
 * functions; read by the snapshot with relaxed loads. */
struct perf_thread {
	uint64_t counter[PERF_C__COUNT];
	uint64_t drop[PERF_REASONS_MAX];
	uint64_t error[PERF_REASONS_MAX];
	uint32_t activity; /* enum perf_activity */
	/* One histogram (ns) per declared stage; NULL for the others. */
	struct slm_hist *stage[PERF_STAGE__COUNT];
	struct perf_thread_priv *priv;
} SLM_ALIGNED_CACHE;

struct perf_thread_params {
	const char *role;  /* "dataplane", "worker", "ctl", ... */
	int group;	   /* worker group 0, 1, ...; -1 outside groups
			    * (dataplane, ctl): set it, 0 is a group */
	int index;	   /* among the threads of this role and group */
	const char *name;  /* NULL: "<role><index>", "g<group>.<role><index>" */
	uint64_t counters; /* PERF_MASK() of the counters this thread keeps */
	uint32_t stages;   /* PERF_MASK() of the stages it times */
};
#define PERF_MASK(id) (1ull << (id))

/*
 * Register the calling thread (it must be the thread that will write the
 * struct: the kernel counters are opened for it).  The struct is
 * allocated by this thread, so it lives on the thread's NUMA node.  Only
 * the declared counters and stages appear in the snapshot: a dataplane
 * thread does not report a prefill histogram of zeros.
 */
int perf_thread_register(const struct perf_thread_params *params,
			 struct perf_thread **out,
			 struct slm_error *err) SLM_MUST_CHECK;

/*
 * Unregister and free (any thread, once the owner writes no more).  Its
 * counts are added to a per-role, per-group "exited" row, so totals and
 * Prometheus counters never go backwards.  NULL is fine.
 */
void perf_thread_unregister(struct perf_thread *pt);

/* The calling thread's struct, or NULL if it did not register. */
struct perf_thread *perf_self(void);

/*
 * Whether registration opens kernel counters for each thread
 * (perf.events; default on).  Affects threads registered afterwards.
 */
void perf_configure(bool kernel_events);

/* NULL when hardware counters work here, else why not: "not supported
 * on this machine" (no PMU, as in most VMs), "not permitted ..." or
 * "off (perf.events = false)".  The first call asks the kernel once. */
const char *perf_hw_status(void);

/* ---- the hot path ------------------------------------------------------ */

extern double perf_ns_per_cycle; /* set before the first registration */

/* Single-writer add: a plain load, add and store, made atomic only so a
 * concurrent reader never sees a torn or stale-forever value. */
static inline void perf_add_u64(uint64_t *p, uint64_t n)
{
	__atomic_store_n(p, __atomic_load_n(p, __ATOMIC_RELAXED) + n,
			 __ATOMIC_RELAXED);
}

static inline void perf_count(struct perf_thread *pt, enum perf_counter c,
			      uint64_t n)
{
	perf_add_u64(&pt->counter[c], n);
}

static inline void perf_drop(struct perf_thread *pt, int reason)
{
	perf_add_u64(&pt->drop[(unsigned)reason % PERF_REASONS_MAX], 1);
}

static inline void perf_error(struct perf_thread *pt, int reason)
{
	perf_add_u64(&pt->error[(unsigned)reason % PERF_REASONS_MAX], 1);
}

static inline void perf_set_activity(struct perf_thread *pt,
				     enum perf_activity a)
{
	__atomic_store_n(&pt->activity, (uint32_t)a, __ATOMIC_RELAXED);
}

/* Record a duration in ns (one writer per histogram). */
static inline void perf_hist_add(struct slm_hist *h, uint64_t ns)
{
	perf_add_u64(&h->bucket[slm_hist_bucket_of(ns)], 1);
	perf_add_u64(&h->count, 1);
	perf_add_u64(&h->sum, ns);
	if (ns < __atomic_load_n(&h->min, __ATOMIC_RELAXED))
		__atomic_store_n(&h->min, ns, __ATOMIC_RELAXED);
	if (ns > __atomic_load_n(&h->max, __ATOMIC_RELAXED))
		__atomic_store_n(&h->max, ns, __ATOMIC_RELAXED);
}

/* A timestamp for perf_stage_end: the TSC. */
static inline uint64_t perf_now(void)
{
	return slm_cycles();
}

static inline void perf_stage_ns(struct perf_thread *pt, enum perf_stage s,
				 uint64_t ns)
{
	struct slm_hist *h = pt->stage[s];
	if (SLM_LIKELY(h != NULL))
		perf_hist_add(h, ns);
}

/* Record the stage that began at t0 (perf_now) and ends now; returns the
 * end time, the start of the next stage. */
static inline uint64_t perf_stage_end(struct perf_thread *pt, enum perf_stage s,
				      uint64_t t0)
{
	uint64_t t1 = perf_now();
	perf_stage_ns(pt, s, (uint64_t)((double)(t1 - t0) * perf_ns_per_cycle));
	return t1;
}

/* ---- sources ----------------------------------------------------------- */

struct perf_snapshot;

/* A collect callback: emit the source's metrics into snap.  Runs on the
 * reader's thread (ctl) with the registry locked: it must not block or
 * register and unregister sources or threads. */
typedef void (*perf_collect_fn)(void *ctx, struct perf_snapshot *snap);

/* Register a source under a unique name (SLM_EBUSY if taken). */
int perf_source_register(const char *name, perf_collect_fn fn,
			 void *ctx) SLM_MUST_CHECK;
/* After this returns the callback is not running and will not run. */
void perf_source_unregister(const char *name);

/*
 * Emit one sample.  name: [a-z_][a-z0-9_]* without the slmd_ prefix;
 * help: one line.  The labels follow as name, value pairs ending with
 * NULL, at most PERF_MAX_LABELS pairs, e.g.
 *     perf_emit_counter(snap, "drops_total", "datagrams dropped", n,
 *                       "thread", "dataplane0", "reason", "bad_mac", PERF_END);
 * (end the list with PERF_END, a typed NULL).
 * A sample with the same name and labels as an earlier one is added to
 * it (histograms merge), so threads of one group can emit into one
 * series.  A name emitted with two types keeps the first; the sample is
 * dropped and counted in the snapshot's `conflicts`.
 */
void perf_emit_counter(struct perf_snapshot *snap, const char *name,
		       const char *help, uint64_t value, ...)
	__attribute__((sentinel));
/* The end of a label list: NULL as a pointer (a bare NULL may be an int
 * in a variadic call). */
#define PERF_END ((const char *)NULL)

/* A counter with a fractional value (e.g. CPU seconds). */
void perf_emit_counter_f(struct perf_snapshot *snap, const char *name,
			 const char *help, double value, ...)
	__attribute__((sentinel));
void perf_emit_gauge(struct perf_snapshot *snap, const char *name,
		     const char *help, double value, ...)
	__attribute__((sentinel));
/* A histogram; names ending in _seconds hold nanoseconds. */
void perf_emit_hist(struct perf_snapshot *snap, const char *name,
		    const char *help, const struct slm_hist *h, ...)
	__attribute__((sentinel));

/* ---- the snapshot ------------------------------------------------------ */

#define PERF_MAX_LABELS 4

enum perf_type { PERF_COUNTER, PERF_GAUGE, PERF_HISTOGRAM };

struct perf_label {
	const char *name, *value;
};

struct perf_sample {
	int n_labels;
	struct perf_label label[PERF_MAX_LABELS];
	uint64_t count;	       /* COUNTER */
	double value;	       /* GAUGE; COUNTER as a double */
	struct slm_hist *hist; /* HISTOGRAM; hist->count is the bucket sum */
};

struct perf_family {
	const char *name, *help;
	enum perf_type type;
	bool fractional; /* COUNTER: render value, not count */
	struct perf_sample *sample;
	int n_samples, cap;
};

/* Kernel counters of one thread, as read at snapshot time. */
enum perf_event_id {
	PERF_EV_TASK_CLOCK, /* ns on a CPU */
	PERF_EV_CONTEXT_SWITCHES,
	PERF_EV_PAGE_FAULTS,
	PERF_EV_CPU_MIGRATIONS,
	PERF_EV_CYCLES, /* hardware from here on */
	PERF_EV_INSTRUCTIONS,
	PERF_EV_CACHE_MISSES,
	PERF_EV_BRANCH_MISSES,
	PERF_EV__COUNT
};
#define PERF_EV_FIRST_HW PERF_EV_CYCLES
const char *perf_event_name(enum perf_event_id e);

struct perf_thread_row {
	const char *name, *role;
	int group;
	pid_t tid;	       /* 0 for the "exited" rows */
	uint64_t cpu_ns;       /* task clock, else /proc schedstat */
	const char *activity;  /* perf_activity_name, or NULL */
	char kstate;	       /* /proc state: 'R', 'S', 'D', ...; 0 if gone */
	bool have_sw, have_hw; /* the groups could be read */
	uint32_t ev_ok;	       /* 1 << perf_event_id read */
	uint64_t ev[PERF_EV__COUNT]; /* hardware ones scaled if multiplexed */
};

struct perf_snapshot {
	uint64_t taken_ns; /* slm_now_ns() when taken */
	struct perf_family *family;
	int n_families, cap;
	struct perf_thread_row *thread;
	int n_threads;
	int conflicts; /* samples dropped: type mismatch, bad name, labels */
	bool oom;      /* an allocation failed: the snapshot is partial */
	struct perf_arena *arena; /* strings and histograms */
};

/* Collect every thread and source.  NULL when out of memory. */
struct perf_snapshot *perf_snapshot_take(void);
void perf_snapshot_free(struct perf_snapshot *snap);

/* An empty snapshot to emit into (tests, renderers). */
struct perf_snapshot *perf_snapshot_create(void);

/* The family of that name, or NULL. */
const struct perf_family *perf_snapshot_find(const struct perf_snapshot *snap,
					     const char *name);

/* Value of a label of a sample, or NULL. */
const char *perf_sample_label(const struct perf_sample *s, const char *name);

/* Sum of a counter family's samples (0 if absent). */
uint64_t perf_family_sum(const struct perf_family *f);

#endif
