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

#endif
