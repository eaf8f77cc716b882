/*
 * slm/client.h: libslmclient, the C client of slmd's UDP RPC.
 *
 * A connection (struct slm_client) is a UDP socket to one server (or a
 * memif link to a local one) and the state of the requests in flight on
 * it.  A generate request is sent in
 * fragments when it is large, retransmitted until the server acknowledges
 * it, and answered by a stream of numbered token datagrams that the
 * library puts back in order, asking the server for any that went
 * missing; the server never runs one request twice.  The text reaches a
 * callback chunk by chunk as it is generated; the whole result (ids,
 * text, finish reason, token counts, server timings) is returned at the
 * end.  docs/protocol.md describes the wire exchanges.
 *
 * Threads: a connection has no locks.  Use it from one thread at a time;
 * its callbacks run on that thread, inside slm_client_generate,
 * slm_client_poll, slm_client_ping or slm_client_info.  Different
 * connections are independent: open one per thread to work in parallel.
 * A callback must not close its own connection.
 *
 * Errors: functions return 0 (or a count) or a negative code
 * (SLM_CLIENT_E*: the numbers of the wire protocol's ERROR_CODE, see
 * slm/protocol.h); slm_client_strerror names them.  Results carry the
 * server's message when it sent one.
 *
 * Link with -lslmclient (pkg-config slmclient).
 */
#ifndef SLM_CLIENT_H
#define SLM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SLM_CLIENT_API __attribute__((visibility("default")))

/* Error codes (negative).  The same values as slm/protocol.h's. */
enum slm_client_err {
	SLM_CLIENT_ENOMEM = -1,
	SLM_CLIENT_EINVAL = -2,
	SLM_CLIENT_EIO = -3,
	SLM_CLIENT_EFORMAT = -4,
	SLM_CLIENT_EUNSUPPORTED = -5,
	SLM_CLIENT_ENOTFOUND = -6,
	SLM_CLIENT_ETIMEDOUT = -11, /* no answer within retries/timeout */
	SLM_CLIENT_ECANCELED = -12,
	SLM_CLIENT_EOVERLOAD = -13, /* the server's caps, or our window */
	SLM_CLIENT_EPROTO = -14,
	SLM_CLIENT_EAUTH = -15,	   /* key file refused */
	SLM_CLIENT_ESYS = -17,	   /* a system call failed */
	SLM_CLIENT_ESTATE = -18,   /* no model loaded, shutting down, ... */
	SLM_CLIENT_ECONNECT = -19, /* refused: nothing listens there */
	SLM_CLIENT_ETOOBIG = -20,
};

/* A short description of a code ("timed out"). */
SLM_CLIENT_API const char *slm_client_strerror(int code);
/* Its stable name ("ETIMEDOUT"). */
SLM_CLIENT_API const char *slm_client_errname(int code);

struct slm_client_opts {
	/* A request's whole life in milliseconds; 0 = no limit (a silent
	 * server is still detected through retries). */
	uint32_t timeout_ms;
	/* First retransmission timeout (ms); it doubles up to 1 s. */
	uint32_t rto_ms;
	/* Unanswered retransmissions (or probes) before ETIMEDOUT. */
	uint32_t retries;
	/* Busy-poll this long (us) for a datagram before sleeping: lower
	 * latency for a core's worth of CPU.  0 = always sleep. */
	uint32_t spin_us;
	/* Datagram size used to send (default 1232: fits any IPv6 path). */
	uint32_t max_dgram;
	/* Pre-shared key: key_id 0 = none (see slm_client_load_key). */
	uint16_t key_id;
	uint8_t key[32];
};

/* timeout_ms 0, rto_ms 20, retries 8, spin_us 0, max_dgram 1232, no key. */
SLM_CLIENT_API void slm_client_opts_default(struct slm_client_opts *o);

/* Read key key_id from a key file ("ID HEX" lines) into o. */
SLM_CLIENT_API int slm_client_load_key(struct slm_client_opts *o,
				       const char *path, unsigned key_id);

struct slm_client;

/*
 * Open a connection to "udp://HOST:PORT" (an IPv6 address in brackets:
 * "udp://[::1]:7070"; PORT defaults to 7070), or to a slmd on the same
 * machine over shared memory: "memif:///PATH/TO/SOCKET" (slmd's
 * dpdk.memif_socket; "?port=N" if its UDP port is not 7070).  A memif
 * connection runs DPDK inside this process: the first one starts a small
 * EAL instance (about 0.1-0.2 s, no huge pages, kept until exit) from the
 * libslmclient-memif.so plugin, loaded only then; the process must not
 * fork and keep using it, and should not use DPDK itself
 * (docs/operations.md).  Nothing is sent yet on udp://; memif:// asks
 * slmd's address with ARP.  o may be NULL (defaults).  On error *out is
 * NULL; err_msg (may be NULL) receives a message of up to 256 bytes.
 */
SLM_CLIENT_API int slm_client_open(const char *url,
				   const struct slm_client_opts *o,
				   struct slm_client **out, char *err_msg,
				   size_t err_size);

/* Close: requests in flight are dropped without callbacks (the server
 * cancels them when it stops hearing from us). */
SLM_CLIENT_API void slm_client_close(struct slm_client *c);

/* The socket, to wait for readability in an event loop, then call
 * slm_client_poll(c, 0).  -1 for a memif:// connection, which has no
 * descriptor: poll it with slm_client_poll (it busy-polls its ring for
 * 200 us, then naps of up to 500 us). */
SLM_CLIENT_API int slm_client_fd(const struct slm_client *c);

enum slm_client_input {
	SLM_CLIENT_TEXT = 0, /* text, text_len */
	SLM_CLIENT_IDS = 1,  /* ids, n_ids */
	SLM_CLIENT_CHAT = 2, /* messages, n_messages */
};

struct slm_client_msg {
	const char *role; /* "system", "user", "assistant" */
	const char *content;
};

/* slm_client_gen.set: the optional fields given (others: the server's
 * defaults, which are llama.cpp's). */
#define SLM_GEN_TEMPERATURE (1u << 0)
#define SLM_GEN_TOP_K (1u << 1)
#define SLM_GEN_TOP_P (1u << 2)
#define SLM_GEN_MIN_P (1u << 3)
#define SLM_GEN_REPEAT_PENALTY (1u << 4)
#define SLM_GEN_REPEAT_LAST_N (1u << 5)
#define SLM_GEN_FREQUENCY_PENALTY (1u << 6)
#define SLM_GEN_PRESENCE_PENALTY (1u << 7)
#define SLM_GEN_SEED (1u << 8)
#define SLM_GEN_MAX_TOKENS (1u << 9)
#define SLM_GEN_IGNORE_EOS (1u << 10)
#define SLM_GEN_PARSE_SPECIAL (1u << 11)
#define SLM_GEN_DEADLINE (1u << 12)

/* A generate request.  Zero it, fill the prompt, set what you need. */
struct slm_client_gen {
	enum slm_client_input input;
	const char *text;
	size_t text_len; /* 0: strlen(text) */
	const int32_t *ids;
	size_t n_ids;
	const struct slm_client_msg *messages;
	size_t n_messages;
	const char *chat_template; /* NULL: the model's */

	uint32_t set; /* SLM_GEN_* */
	float temperature;
	int32_t top_k;
	float top_p;
	float min_p;
	float repeat_penalty;
	int32_t repeat_last_n;
	float frequency_penalty;
	float presence_penalty;
	uint64_t seed;
	uint32_t max_tokens;
	bool ignore_eos;
	bool parse_special;
	uint32_t deadline_ms; /* server-side, from arrival */

	const char *const *stop; /* at most 16, each 1..256 bytes */
	size_t n_stop;
	const char *cache_namespace; /* NULL: the shared prefix cache */
};

/* Finish reasons (slm/protocol.h's SLM_PROTO_FINISH_*). */
#define SLM_CLIENT_FINISH_STOP 0
#define SLM_CLIENT_FINISH_LENGTH 1
#define SLM_CLIENT_FINISH_CANCELED 2
#define SLM_CLIENT_FINISH_DEADLINE 3
#define SLM_CLIENT_FINISH_ERROR 4

/* "stop", "length", "canceled", "deadline", "error". */
SLM_CLIENT_API const char *slm_client_finish_name(int finish);

struct slm_client_result {
	int32_t *ids; /* every id generated (owned; slm_client_result_free) */
	size_t n_ids;
	char *text; /* the whole text, NUL-terminated (owned) */
	size_t text_len;
	int finish;	   /* SLM_CLIENT_FINISH_* */
	int error;	   /* 0, or why the request failed */
	char message[256]; /* the server's or the library's explanation */
	uint32_t prompt_tokens, cached_tokens, generated_tokens;
	uint64_t queue_us, prefill_us, ttft_us, total_us; /* server's */
	uint64_t client_ttft_ns;  /* send -> first text or id, here */
	uint64_t client_total_ns; /* send -> result, here */
	uint32_t retransmits;	  /* datagrams re-sent or asked again */
};

SLM_CLIENT_API void slm_client_result_free(struct slm_client_result *r);

/*
 * Text as it becomes final and the ids sampled since the last call
 * (either may be empty).  text is not NUL-terminated.  Return 0 to go on,
 * non-zero to cancel the request (it then finishes "canceled").
 */
typedef int (*slm_client_chunk_fn)(void *ctx, const char *text, size_t len,
				   const int32_t *ids, size_t n_ids);

/*
 * Generate, blocking until the end; on_chunk (may be NULL) streams the
 * text.  Returns 0 when the request finished (stop, length, canceled or
 * deadline: see res->finish), or a negative code when it failed (refused,
 * timed out, or finished with an error); res->error and res->message say
 * why.  res is filled in both cases; free it with slm_client_result_free.
 */
SLM_CLIENT_API int slm_client_generate(struct slm_client *c,
				       const struct slm_client_gen *g,
				       slm_client_chunk_fn on_chunk, void *ctx,
				       struct slm_client_result *res);

/* The end of an asynchronous request: r is valid during the call only,
 * and freed by the library after it. */
typedef void (*slm_client_done_fn)(void *ctx, uint32_t id, int status,
				   const struct slm_client_result *r);

/*
 * Start a request without waiting: its chunks and its end are delivered
 * by later calls of slm_client_poll (or of the blocking functions).
 * *id names it for slm_client_cancel.  SLM_CLIENT_EOVERLOAD when the
 * connection already has 1024 requests in flight.
 */
SLM_CLIENT_API int slm_client_submit(struct slm_client *c,
				     const struct slm_client_gen *g,
				     slm_client_chunk_fn on_chunk,
				     slm_client_done_fn on_done, void *ctx,
				     uint32_t *id);

/*
 * Receive, retransmit and run callbacks for up to timeout_ms (0: only
 * what is already there; -1: until at least one request ends).  Returns
 * the number of requests that ended, or a negative code.
 */
SLM_CLIENT_API int slm_client_poll(struct slm_client *c, int timeout_ms);

/* Ask the server to stop a request; it ends with finish "canceled" (or
 * normally, when it was already done).  SLM_CLIENT_ENOTFOUND: no such
 * request in flight. */
SLM_CLIENT_API int slm_client_cancel(struct slm_client *c, uint32_t id);

/* Requests in flight. */
SLM_CLIENT_API size_t slm_client_inflight(const struct slm_client *c);

/* One round trip (PING/PONG, not retransmitted).  SLM_CLIENT_ETIMEDOUT
 * when no answer came within timeout_ms. */
SLM_CLIENT_API int slm_client_ping(struct slm_client *c, uint32_t timeout_ms,
				   uint64_t *rtt_ns);

struct slm_client_info {
	char server_version[64];
	char model[256]; /* "" when no model is loaded */
	bool has_model;
	uint32_t n_ctx, n_vocab;
	uint32_t max_request;  /* request bytes the server takes */
	uint32_t max_dgram;    /* datagram bytes the server takes */
	uint32_t max_inflight; /* requests per connection */
	bool auth;	       /* MACs required */
};

/* Ask the server to describe itself (retransmitted until timeout_ms). */
SLM_CLIENT_API int slm_client_info(struct slm_client *c, uint32_t timeout_ms,
				   struct slm_client_info *out);

struct slm_client_stats {
	uint64_t tx_datagrams, rx_datagrams;
	uint64_t
		retransmits; /* request fragments, cancels and probes re-sent */
	uint64_t nacks;	     /* stream datagrams asked for again */
	uint64_t dropped;    /* received and ignored: bad MAC, replay,
			       * unknown request, malformed */
	uint64_t timeouts;   /* requests and pings that got no answer */
};

SLM_CLIENT_API void slm_client_stats(const struct slm_client *c,
				     struct slm_client_stats *out);

#ifdef __cplusplus
}
#endif

#endif
