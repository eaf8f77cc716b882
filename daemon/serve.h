/*
 * serve.h: the in-process request API of slmd's serving core.
 *
 * The dataplane (UDP over io_uring or DPDK), the control socket and the
 * in-process benchmarks submit generation requests here and receive their
 * results as events; nothing behind this API knows about sockets, and
 * nothing in front of it knows about models, KV blocks or batches.
 *
 * Threads: slm_serve_submit and slm_serve_cancel may be called from any
 * thread.  Events are delivered on a worker thread of the group that runs
 * the request: the callback must not block (hand the event to a ring and
 * return), and the pointers in an event are valid only during the call.
 * Every accepted request gets exactly one DONE event, after which no other
 * event of that request is delivered; a request refused by submit gets
 * none.
 *
 * Ownership: submit copies everything it needs from the request (prompt,
 * messages, stop strings); the caller may free them when submit returns.
 *
 * Inside (daemon/serve.c, daemon/sched.c): one worker group per group of
 * the placement plan (numa/placement.h), each with its own copy of the
 * weights (or the node's), KV block pool, prefix cache, thread pool and a
 * leader thread that runs the scheduler: continuous batching of every
 * running sequence's next token with chunks of waiting prompts, within a
 * token budget per forward pass.  docs/architecture.md tells the rest.
 */
#ifndef SLM_DAEMON_SERVE_H
#define SLM_DAEMON_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/chat.h" /* struct slm_chat_msg */

struct slm_serve;
struct slm_event;

/* Sampling and stopping.  slm_gen_params_default gives llama.cpp's
 * defaults; every field is validated by submit with a clear error. */
struct slm_gen_params {
	float temperature;	 /* 0 = greedy (argmax, ties to lowest id) */
	int32_t top_k;		 /* 0 = off */
	float top_p;		 /* 1 = off */
	float min_p;		 /* 0 = off */
	float repeat_penalty;	 /* 1 = off */
	int32_t repeat_last_n;	 /* window of the penalties, in tokens */
	float frequency_penalty; /* 0 = off */
	float presence_penalty;	 /* 0 = off */
	uint64_t seed;	     /* per-request; same seed + input = same output */
	uint32_t max_tokens; /* generated tokens at most */
	const char *const *stop; /* stop strings (not included in the output) */
	uint32_t n_stop;
	bool ignore_eos; /* keep generating past end-of-generation */
};

void slm_gen_params_default(struct slm_gen_params *p);

enum slm_input_kind {
	SLM_INPUT_TEXT, /* prompt text, tokenized by the model's vocabulary */
	SLM_INPUT_IDS,	/* token ids, used as they are */
	SLM_INPUT_CHAT, /* messages, formatted with the chat template */
};

typedef void (*slm_event_fn)(void *ctx, const struct slm_event *ev);

struct slm_request {
	enum slm_input_kind input;
	/* SLM_INPUT_TEXT: the prompt (not NUL-terminated necessarily). */
	const char *text;
	size_t text_len;
	bool parse_special; /* match special-token text in the prompt */
	/* SLM_INPUT_IDS */
	const int32_t *ids;
	uint32_t n_ids;
	/* SLM_INPUT_CHAT: messages; the template is the model's unless named */
	const struct slm_chat_msg *messages;
	uint32_t n_messages;
	const char *chat_template; /* NULL = detected from the model */

	struct slm_gen_params gen;
	uint64_t deadline_ns;	     /* CLOCK_MONOTONIC; 0 = none */
	const char *cache_namespace; /* NULL or "" = the shared prefix cache */

	slm_event_fn on_event;
	void *ctx;
};

enum slm_finish {
	SLM_FINISH_STOP,     /* end-of-generation token or a stop string */
	SLM_FINISH_LENGTH,   /* max_tokens reached or the context is full */
	SLM_FINISH_CANCELED, /* slm_serve_cancel */
	SLM_FINISH_DEADLINE, /* deadline_ns passed */
	SLM_FINISH_ERROR,    /* see error / error_msg */
};

/* "stop", "length", "canceled", "deadline", "error". */
const char *slm_finish_name(enum slm_finish finish);

struct slm_usage {
	uint32_t prompt_tokens;	   /* tokens of the formatted prompt */
	uint32_t cached_tokens;	   /* of those, taken from the prefix cache */
	uint32_t generated_tokens; /* tokens sampled */
};

/* Microseconds, measured from submit. */
struct slm_timings {
	uint64_t queue_us;   /* submit -> first scheduled */
	uint64_t prefill_us; /* prompt processing */
	uint64_t ttft_us;    /* submit -> first token event */
	uint64_t total_us;   /* submit -> done */
	/* first token -> last token; over generated_tokens - 1 it is the
	 * time per decoded token */
	uint64_t decode_us;
};

enum slm_event_kind {
	SLM_EVENT_TOKENS, /* new tokens and the text they complete */
	SLM_EVENT_DONE,	  /* the end: finish reason, usage, timings */
};

struct slm_event {
	enum slm_event_kind kind;
	uint64_t request_id;
	/* TOKENS: ids sampled since the last event, and the text that is now
	 * final (text of incomplete UTF-8 or of a possible stop string is
	 * held back until decided, so text may be empty). */
	const int32_t *ids;
	uint32_t n_ids;
	const char *text;
	uint32_t text_len;
	/* DONE */
	enum slm_finish finish;
	int error;	       /* SLM_E* when finish is ERROR, else 0 */
	const char *error_msg; /* human-readable, when error != 0 */
	struct slm_usage usage;
	struct slm_timings timings;
};

/*
 * Queue a request.  Returns 0 and its id, or a negative code with err
 * filled: SLM_EINVAL (bad parameter: err names it), SLM_ETOOBIG (prompt
 * longer than the context), SLM_EOVERLOAD (queue full), SLM_ESTATE
 * (draining or not serving).
 */
int slm_serve_submit(struct slm_serve *s, const struct slm_request *req,
		     uint64_t *id_out, struct slm_error *err) SLM_MUST_CHECK;

/* Cancel a request; its DONE event (finish CANCELED) follows.  Returns
 * SLM_ENOTFOUND when the request is unknown or already done. */
int slm_serve_cancel(struct slm_serve *s, uint64_t id);

/* ---- the serving core's life ------------------------------------------- */

struct slm_config;

/* Load progress, for the daemon's status lines: what (e.g. "weights
 * model.gguf") and percent done.  Called on the creating thread. */
typedef void (*slm_serve_progress_fn)(void *ctx, const char *what, int percent);

/*
 * Start serving per cfg: configure the kernels (engine.simd), open the
 * model (model.path; when empty, write a small synthetic model with
 * random weights into a temporary file first, and log that its text is
 * random), plan the placement (numa.*), load the weights on each group's
 * node, and start the worker groups (engine.*, cache.*, serve.*).  cfg
 * must outlive the serving core.  Returns 0 with *out accepting
 * requests, or the first error (a model that will not load, a plan that
 * cannot be carried out) with err saying what and where.
 */
int slm_serve_create(const struct slm_config *cfg,
		     slm_serve_progress_fn progress, void *progress_ctx,
		     struct slm_serve **out,
		     struct slm_error *err) SLM_MUST_CHECK;

/* Refuse new submits (SLM_ESTATE); running and queued requests go on. */
void slm_serve_drain(struct slm_serve *s);

/* True when no request is queued or running. */
bool slm_serve_idle(struct slm_serve *s);

/* True while every worker group makes progress or has nothing to do (a
 * group whose leader has been inside one scheduler step for longer than
 * 10 s is stalled). */
bool slm_serve_healthy(struct slm_serve *s);

/*
 * Stop: refuse submits, cancel whatever still runs (each gets its DONE,
 * finish CANCELED), join the threads and free the model, weights and
 * pools.  What remains answers submit with SLM_ESTATE until
 * slm_serve_destroy, so a dataplane still holding the pointer is safe.
 */
void slm_serve_stop(struct slm_serve *s);

/* Stop if needed and free everything.  NULL is fine. */
void slm_serve_destroy(struct slm_serve *s);

/* What the serving core runs (INFO, status). */
struct slm_serve_info {
	const char *name;    /* general.name, or the file's name */
	const char *path;    /* the file loaded */
	const char *arch;    /* "llama", "qwen2" */
	bool synthetic;	     /* made at start-up, random weights */
	uint32_t n_ctx;	     /* positions per sequence */
	uint32_t n_vocab;    /* tokens */
	int n_groups;	     /* worker groups */
	const char *kv_type; /* "f16", "f32", "q8_0" */
	uint32_t kv_blocks;  /* per group */
	uint32_t block_tokens;
	const char *file_type;	   /* "Q8_0", "Q4_K - Medium", ... or NULL */
	uint64_t n_params;	   /* weights' elements */
	const char *chat_template; /* model.chat_template, else the model's
				    * own as slm_chat_detect names it; NULL:
				    * none known (chatml is used) */
	uint64_t load_ns;	   /* opening the file to ready to serve */
};

/* Fill *out (strings valid until slm_serve_destroy); false after stop. */
bool slm_serve_describe(struct slm_serve *s, struct slm_serve_info *out);

/* Counters, summed over the groups (a snapshot; the cache counts are at
 * most one scheduler step old). */
struct slm_serve_stats {
	uint64_t submitted;	   /* accepted by submit */
	uint64_t refused_invalid;  /* EINVAL */
	uint64_t refused_toobig;   /* ETOOBIG */
	uint64_t refused_overload; /* EOVERLOAD */
	uint64_t refused_state;	   /* ESTATE */
	uint64_t finished[5];	   /* by enum slm_finish */
	uint64_t prompt_tokens;	   /* of finished requests */
	uint64_t cached_tokens;	   /* of those, from the prefix cache */
	uint64_t generated_tokens; /* sampled */
	uint64_t forward_passes;   /* scheduler steps that ran the model */
	uint64_t batch_tokens;	   /* tokens through those passes */
	uint64_t preemptions;	   /* sequences preempted for KV room */
	uint64_t cow_copies;	   /* KV blocks copied on write */
	uint32_t queued;	   /* requests waiting now */
	uint32_t running;	   /* sequences running now */
	/* the prefix caches and KV pools (cache/prefix.h's counters) */
	uint64_t cache_lookups, cache_hit_tokens, cache_miss_tokens;
	uint64_t cache_evictions;
	uint32_t blocks_total, blocks_free, blocks_cached, blocks_in_use;
};

void slm_serve_stats_get(struct slm_serve *s, struct slm_serve_stats *out);

/* ---- models: load beside the serving one, swap, unload ------------------ */

/*
 * The serving core holds one serving model and may hold others beside it:
 * one loading in the background, one loaded and ready to take over, and
 * the one a swap replaced, draining.  New requests go to the serving
 * model only; a request runs to its end on the model it started on.
 *
 *   loading --load done--> ready --swap--> serving --swap away--> draining
 *      |                                          (no request runs on it)
 *      +--error--> failed                                     --> freed
 *
 * A background thread of the serving core loads (one model at a time, in
 * the order asked) and frees drained models.  Threads: any thread; the
 * calls are quick (the file is opened and checked on the calling thread,
 * the weights are read in the background).
 */
enum slm_model_state {
	SLM_MODEL_LOADING,  /* weights being read (or queued behind another) */
	SLM_MODEL_READY,    /* loaded, worker groups started, not serving */
	SLM_MODEL_SERVING,  /* new requests go to it */
	SLM_MODEL_DRAINING, /* swapped away: its running requests finish */
	SLM_MODEL_FAILED,   /* the background load failed: see error */
};

/* "loading", "ready", "serving", "draining", "failed". */
const char *slm_model_state_name(enum slm_model_state state);

/* One model, a snapshot (copied strings). */
struct slm_serve_model_info {
	char name[128]; /* unique among the models held */
	char path[4096];
	char arch[16];
	enum slm_model_state state;
	bool synthetic;
	bool swap_pending;     /* serves as soon as it is loaded */
	char phase[32];	       /* loading: "queued", "weights", "workers" */
	uint64_t load_done;    /* bytes of weights read (every copy) */
	uint64_t load_total;   /* bytes to read */
	int percent;	       /* of the load */
	uint64_t weight_bytes; /* one copy of the weights */
	int n_copies;	       /* copies (one per NUMA node that serves) */
	uint64_t kv_bytes;     /* KV pools, every group */
	int n_groups;
	uint32_t running; /* requests in flight on it */
	double state_s;	  /* seconds in this state */
	char error[512];  /* FAILED: why */
};

/*
 * The models held now, in the order they were loaded: *out (free() it)
 * with *n entries.  0, SLM_ENOMEM, or SLM_ESTATE after stop.
 */
int slm_serve_models(struct slm_serve *s, struct slm_serve_model_info **out,
		     int *n) SLM_MUST_CHECK;

/*
 * Load the model at path beside the serving one, in the background; with
 * swap, serve it as soon as it is loaded.  Opening the file, reading its
 * vocabulary and planning it happen now: a missing or malformed file
 * returns the GGUF reader's error (file, offset, what) and changes
 * nothing.  SLM_EBUSY when the file is already held (err names the
 * model), SLM_ENOMEM when this machine's memory (per NUMA node, minus
 * numa.mem_reserve, and what is available now) cannot hold it beside the
 * models held, SLM_ESTATE after stop.  *out (may be NULL) describes the
 * new model.
 */
int slm_serve_model_load(struct slm_serve *s, const char *path, bool swap,
			 struct slm_serve_model_info *out,
			 struct slm_error *err) SLM_MUST_CHECK;

/*
 * Serve `target`: the name or path of a model held (ready: switched now;
 * loading: switched once loaded), else a path to load (as
 * slm_serve_model_load with swap).  Requests running on the model it
 * replaces finish there; that model is freed once none is left.
 * SLM_EINVAL when target already serves, SLM_EBUSY when it is draining,
 * SLM_ESTATE when it failed; else as slm_serve_model_load.
 * *switched (may be NULL) tells whether new requests already go to it.
 */
int slm_serve_model_swap(struct slm_serve *s, const char *target,
			 struct slm_serve_model_info *out, bool *switched,
			 struct slm_error *err) SLM_MUST_CHECK;

/*
 * Free the model `target` (name or path) that does not serve: ready,
 * failed, or still queued for loading.  The serving model is refused
 * (SLM_EBUSY: swap to another first), as are a draining one (freed by
 * itself when its requests finish) and one whose weights are being read
 * (unload it once ready).  SLM_ENOTFOUND when no model has that name.
 */
int slm_serve_model_unload(struct slm_serve *s, const char *target,
			   struct slm_error *err) SLM_MUST_CHECK;

/* ---- for the control socket (ctl/ctl.h's shapes) ------------------------ */

struct cJSON;

/*
 * The `status` section "model" (a ctl_status_fn; ctx is the struct
 * slm_serve *): {"name","path","arch","synthetic","n_ctx","n_vocab",
 * "groups","kv_type","kv_blocks","block_tokens","file_type","n_params",
 * "chat_template","load_s"} (names and values as `slm info --json` has
 * them where it has them).  0, SLM_ENOMEM, or SLM_ESTATE after stop.
 */
int slm_serve_status_json(void *serve, struct cJSON *section);

/*
 * The counters as an object, names as `slmctl stats` and the metrics page
 * use them: requests_total, requests_refused_total{invalid,toobig,
 * overload,state}, requests_finished_total{stop,length,canceled,deadline,
 * error}, prompt_tokens_total, prefix_hit_tokens_total,
 * prefix_miss_tokens_total, prefix_lookups_total, cache_evictions_total,
 * tokens_generated_total, forward_passes_total, batch_tokens_total,
 * preemptions_total, kv_cow_copies_total, queue_depth, running,
 * kv_blocks{total,free,cached,in_use}.  0 or SLM_ENOMEM.
 */
int slm_serve_stats_json(struct slm_serve *s, struct cJSON *out);

/*
 * `cache stats` (op NULL or "stats": the cache part of the counters) and
 * `cache flush` (op "flush": {"flushed":true,"dropped_blocks":n} and the
 * cache part after it; it waits for every group, see
 * slm_serve_cache_flush); a ctl_command_fn body.  SLM_EINVAL for another
 * op.
 */
int slm_serve_cache_ctl(struct slm_serve *s, const char *op,
			struct cJSON *result, struct slm_error *err);

/*
 * The `model` command: op "list" ({"models":[...]}, each as
 * slm_serve_model_info: name, path, arch, state, synthetic, swap_pending,
 * phase, loaded_bytes, total_bytes, percent, weight_bytes, copies,
 * kv_bytes, groups, running, state_s, error), "load" (arg: the path;
 * {"model":{...}}), "swap" (arg: a path or a name; {"model":{...},
 * "switched":bool}), "unload" (arg: a name or path; {"unloaded":NAME}).
 * A ctl_command_fn body: 0, or an SLM_E* code with err set.
 */
int slm_serve_model_ctl(struct slm_serve *s, const char *op, const char *arg,
			struct cJSON *result, struct slm_error *err);

/* Drop every cached prefix (blocks in use stay with their sequences).
 * Each group's leader does it at its next step (it owns the tree); this
 * waits until every group has, so the counters read afterwards show it.
 * Returns the cache nodes (blocks) dropped over the groups, SLM_ESTATE
 * after stop, or SLM_ETIMEDOUT when a group took longer than 10 s. */
int slm_serve_cache_flush(struct slm_serve *s);

#endif
