/*
 * serve_int.h: what the serving core's files share (daemon/serve.c: the
 * API, a model's set-up, the groups, dispatch; daemon/sched.c: a group's
 * scheduler; daemon/serve_models.c: the models' life: load beside,
 * swap, drain, free).
 *
 * Two levels.  struct slm_serve is the front the dataplane holds: the
 * request ids and the map for cancel, the refusal counters, the machine's
 * topology and memory arenas, and the list of models.  struct serve_model
 * is one model with everything that serves it: the opened file, its
 * vocabulary, its placement plan, weight copies and worker groups.  A
 * group's `s` is its model (sched.c reads the model's settings through
 * it).  New requests go to the front's `serving` model; a model replaced
 * by a swap drains (its running requests finish on it) and is then freed.
 *
 * Ownership and threads.  A request object belongs to the submitting
 * thread until it is in its group's inbox; from then on to its group's
 * leader thread, which is the only one to touch its sequence, sampler
 * and stopper, and which frees it after its DONE event.  The id map
 * (struct slm_serve.map*) lets slm_serve_cancel find a request: the
 * leader removes a request from the map before its DONE, under map_lock,
 * so a cancel either finds a live request (and sets its flag under the
 * same lock) or finds none.
 *
 * A model's lifetime.  Whoever touches a model's groups from outside its
 * leaders (submit, cancel, describe) counts itself in model->users first
 * (model_enter in serve.c); a model is freed only once it is not the
 * serving one, no user is inside, and no request is in flight on it.
 * The struct itself (name, path) stays until slm_serve_destroy, on the
 * front's retired list, so the strings describe hands out stay valid.
 * The list, the states and the load progress text are under the front's
 * models_lock; `serving` and `users` are atomics.
 */
#ifndef SLM_DAEMON_SERVE_INT_H
#define SLM_DAEMON_SERVE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache/kv.h"
#include "cache/prefix.h"
#include "common/config.h"
#include "common/text.h"
#include "ctl/perf.h"
#include "daemon/serve.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"
#include "engine/weights.h"
#include "numa/arena.h"
#include "numa/dispatch.h"
#include "numa/pin.h"
#include "numa/placement.h"
#include "numa/topology.h"

#define SERVE_MAP_BUCKETS 4096
#define SERVE_STALL_NS (10ull * 1000 * 1000 * 1000)
#define SERVE_FLUSH_WAIT_S 10 /* slm_serve_cache_flush gives up after */

enum req_state {
	REQ_WAITING, /* in the inbox or the waiting list */
	REQ_RUNNING, /* admitted: has KV blocks, in the running array */
};

struct serve_req {
	uint64_t id;
	struct serve_group *g;
	struct serve_req *hnext;       /* id map chain (map_lock) */
	struct serve_req *next, *prev; /* inbox / waiting list */
	enum req_state state;
	int cancel; /* set by slm_serve_cancel (map_lock), read relaxed */

	/* tokens: the prompt, then each sampled token */
	int32_t *toks;
	uint32_t n_toks, cap, n_prompt;
	uint32_t max_new; /* 0: until the context is full */
	char *ns;	  /* cache namespace, or NULL */
	struct slm_sampler *smp;
	struct slm_stopper *stop;
	slm_event_fn on_event;
	void *ctx;
	uint64_t deadline_ns;
	uint64_t load; /* tokens it counts for in the group's load */

	struct slm_kv_seq seq; /* while seq_init */
	bool seq_init;
	bool admitted_once;
	bool prompt_cached; /* its prompt's blocks went into the tree */
	uint32_t n_cached;  /* prompt tokens from the cache, first admission */
	uint32_t n_gen;

	uint64_t t_submit, t_admit, t_prefill_end, t_first, t_last;
};

/* Counters a group keeps (leader thread), copied out under stats_lock. */
struct group_counters {
	uint64_t finished[5];
	uint64_t prompt_tokens, cached_tokens, generated_tokens;
	uint64_t forward_passes, batch_tokens, preemptions;
};

struct serve_group {
	struct serve_model *s; /* the model it serves */
	int index, node;
	const int *cpus;
	int n_cpus, n_threads;
	const struct slm_plan_thread *planned; /* its leader, or NULL */
	struct slm_weights *weights;	       /* the copy it reads */
	struct slm_thread *leader; /* pinned (this machine's plan) */
	pthread_t raw_thread;	   /* or unpinned (another topology) */
	bool raw;
	bool inited; /* its locks exist */

	/* the leader's own (created on its thread) */
	struct slm_threadpool *pool;
	struct slm_kv_pool *kv;
	struct slm_prefix *prefix;
	struct slm_forward *fwd;
	struct slm_sample_ws *ws;
	float *logits;	   /* [max_running][n_vocab] */
	int32_t *b_tokens; /* the batch being built: [budget] */
	uint32_t *b_pos;
	struct slm_kv_seq **b_seq;
	uint8_t *b_want;
	struct serve_req **b_owner; /* [budget]: whose token */
	struct serve_req **running; /* [max_running], admission order */
	uint32_t n_running;
	struct serve_req *wait_head, *wait_tail; /* FCFS */
	uint32_t *match;			 /* [blocks per sequence] */
	struct slm_text text;			 /* event text scratch */
	struct group_counters c;
	/* its counters and stage times on the control socket (ctl/perf.h);
	 * NULL when registration failed */
	struct perf_thread *pt;

	/* shared with submitters: lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct serve_req *inbox_head, *inbox_tail;
	uint32_t n_waiting; /* inbox + waiting list: the bounded queue */
	bool stop;
	bool flush; /* drop the prefix cache at the next step */
	/* flushes asked for and done, and the nodes the last one dropped
	 * (lock); slm_serve_cache_flush waits on flush_cond */
	uint64_t flush_asked, flush_done;
	uint32_t flush_dropped;
	pthread_cond_t flush_cond;
	/* start-up handshake (lock) */
	bool started;
	int start_rc;
	struct slm_error start_err;

	/* read by any thread (atomics) */
	uint64_t queued_tokens, running_tokens;
	uint64_t step_begin_ns; /* 0 while between steps / idle */
	uint32_t n_inflight;	/* accepted and not yet done */

	/* snapshots for stats (stats_lock) */
	pthread_mutex_t stats_lock;
	struct group_counters snap;
	struct slm_prefix_stats cache_snap;
	uint64_t cow_snap;
	uint32_t running_snap, waiting_snap;
};

/* A model's state (enum slm_model_state of serve.h). */

struct serve_model {
	struct slm_serve *front;
	struct serve_model *next; /* the front's list or retired list */
	const struct slm_config *cfg;
	int state;	       /* enum slm_model_state (models_lock) */
	bool swap_when_ready;  /* serve it once loaded (models_lock) */
	bool load_started;     /* the life thread took it (models_lock) */
	uint32_t users;	       /* atomic: see "A model's lifetime" */
	char phase[32];	       /* what the load does now (models_lock) */
	uint64_t load_done;    /* atomic: bytes of weights read */
	uint64_t load_total;   /* bytes to read, every copy */
	uint64_t weight_bytes; /* one copy */
	uint64_t kv_bytes;     /* every group's KV pool */
	char error[512];       /* why the load failed (FAILED) */
	uint64_t t_state_ns;   /* when the state last changed */

	/* the model and what is shared read-only by every group */
	struct slm_model *model;
	struct slm_vocab *vocab;
	char *model_path;
	char *tmp_path; /* the synthetic model's file, removed at free */
	char name[128];
	const char *arch; /* "llama", "qwen2" (static) */
	bool synthetic;
	const char *chat_template; /* model.chat_template or NULL */
	uint32_t n_ctx, n_vocab;
	uint64_t t_prepare_ns; /* serve_model_prepare began */
	uint32_t ordinal;      /* 0: the first model; then 1, 2... (thread
				  names on the control socket stay unique) */
	uint64_t load_ns;      /* from prepare to ready (serve_model_start) */

	/* placement (topo and arenas are the front's) */
	struct slm_topo *topo;
	struct slm_plan *plan;
	struct slm_arenas *arenas; /* NULL: plain malloc */
	struct slm_weights **copies;
	int n_copies;

	/* engine and scheduler settings */
	enum slm_kv_type kv_type;
	uint32_t block_tokens, kv_blocks;
	uint32_t budget;      /* tokens per forward pass */
	uint32_t max_running; /* sequences per group */
	uint32_t max_queue;
	bool prefix_on, namespaces;
	uint64_t spin_ns;
	struct slm_dispatch_policy policy;

	struct serve_group *groups;
	int n_groups;
	bool groups_stopped;
};

/* Counters of freed models, kept so the totals only grow. */
struct retired_counters {
	struct group_counters c;
	uint64_t cow_copies;
	uint64_t cache_lookups, cache_hit_tokens, cache_miss_tokens;
	uint64_t cache_evictions;
};

struct slm_serve {
	const struct slm_config *cfg;
	bool accepting; /* atomic: submits are taken (not draining) */
	bool alive;	/* atomic: not stopped; see enter() in serve.c */
	uint32_t users; /* atomic: callers inside submit / describe */
	bool stopped;	/* the stopping thread's own */

	/* the machine, shared by the models */
	struct slm_topo *topo;
	struct slm_arenas *arenas; /* NULL: plain malloc */

	/* the models (models_lock); serving is also read atomically */
	pthread_mutex_t models_lock;
	pthread_cond_t models_cond; /* the life thread's wake-up */
	struct serve_model *models; /* live: loading, ready, serving, ... */
	struct serve_model *retired;
	struct serve_model *serving;
	struct retired_counters gone;
	pthread_t life;
	bool life_running, life_stop;
	uint32_t n_names;    /* for unique names */
	uint32_t n_ordinals; /* models made so far (models_lock) */

	/* ids and the map for cancel */
	uint64_t next_id; /* atomic */
	pthread_mutex_t map_lock;
	struct serve_req *map[SERVE_MAP_BUCKETS];

	/* refusals (atomics) */
	uint64_t n_submitted, n_invalid, n_toobig, n_overload, n_state;
};

/* The leader thread of a group (sched.c). */
void *slm_sched_main(void *arg);

/* Free a request of model s and everything it holds (any thread that
 * owns it). */
void slm_serve_req_free(struct serve_model *s, struct serve_req *r);

/* Remove r from the id map (leader, before its DONE). */
void slm_serve_map_remove(struct serve_model *s, struct serve_req *r);

/* ---- a model's life (serve.c) ------------------------------------------- */

/* Open the file (path "" = a synthetic model), its vocabulary, settings
 * and placement plan: what is quick and tells whether the model can be
 * served.  m->front, m->cfg, m->topo, m->arenas are set by the caller. */
int serve_model_prepare(struct serve_model *m, const char *path,
			struct slm_error *err) SLM_MUST_CHECK;

/* Load the weights (progress into m->load_done, and to fn) and start the
 * worker groups. */
int serve_model_start(struct serve_model *m, slm_serve_progress_fn fn,
		      void *fn_ctx, struct slm_error *err) SLM_MUST_CHECK;

/* Stop the groups (whatever runs is cancelled) and join them. */
void serve_model_stop_groups(struct serve_model *m);

/* Free everything but the struct, its name and path. */
void serve_model_release(struct serve_model *m);

/* Free the struct (after release). */
void serve_model_free(struct serve_model *m);

/* Add m's final counters (groups joined) to the front's totals and zero
 * them, so the totals only grow once m is gone (models_lock held). */
void serve_fold_counters(struct slm_serve *s, struct serve_model *m);

/* Requests in flight on m (accepted, not yet done). */
uint32_t serve_model_inflight(const struct serve_model *m);

/* ---- the models' life (serve_models.c) ------------------------------------ */

/* enter() and leave() of serve.c: count a caller in while not stopped. */
bool serve_front_enter(struct slm_serve *s);
void serve_front_leave(struct slm_serve *s);

/* Start the life thread (after the first model serves). */
int serve_life_start(struct slm_serve *s, struct slm_error *err);

/* Stop it; every model is stopped and released (slm_serve_stop). */
void serve_life_stop(struct slm_serve *s);

/*
 * Pin the serving model for a reader outside the scheduler (the control
 * socket: its groups, plan, hyperparameters): it is not freed until
 * serve_serving_leave, even if a swap replaces it meanwhile.  NULL when
 * the core is stopping or serves nothing.
 */
struct serve_model *serve_serving_enter(struct slm_serve *s);
void serve_serving_leave(struct slm_serve *s, struct serve_model *m);

#endif
