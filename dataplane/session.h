/*
 * session.h: the protocol state of one dataplane thread.
 *
 * A session owns everything between a received datagram and the serving
 * core, and between the core's events and the datagrams sent back: the
 * checks (allowlist, MAC, replay windows, per-client rate), connections
 * (one per client connection id and address), request reassembly from
 * fragments, deduplication by (connection, request id) so a request never
 * runs twice, the per-client and global caps that keep one client from
 * starving the others, the token stream with its sequence numbers and
 * per-request retransmit buffer, and the timers that expire incomplete
 * requests, cancel abandoned ones and forget idle clients.  Every drop is
 * counted (counters.h).  docs/protocol.md describes the exchanges.
 *
 * It does not know how packets move: a backend (backend.h) hands it
 * datagrams with dp_session_input and gives it a dp_io to send through
 * and to be woken with.  It does not know what runs a request: it calls
 * the serving core through a dp_serve_ops table (daemon/serve.h's API,
 * or a test double).
 *
 * Threads: a session belongs to one thread; every function here but the
 * event callback it installs (which runs on worker threads and only
 * pushes to the session's event queue) must be called from that thread.
 */
#ifndef SLM_DATAPLANE_SESSION_H
#define SLM_DATAPLANE_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "daemon/serve.h"
#include "dataplane/acl.h"
#include "dataplane/counters.h"
#include "dataplane/keys.h"
#include "dataplane/peer.h"

/* How a session sends, and how a worker thread wakes it. */
struct dp_io {
	void *ctx;
	/* Queue one datagram for peer; buf is copied before return.  Returns
	 * 0, or a negative code when it was dropped (the session counts
	 * tx_errors). */
	int (*send)(void *ctx, const struct dp_peer *to, const void *buf,
		    size_t len);
	/* Wake the session's thread from its blocking wait.  Called from any
	 * thread; must not block. */
	void (*wake)(void *ctx);
};

/* What INFO says about the model. */
struct dp_model_info {
	const char *name;
	uint32_t n_ctx;
	uint32_t n_vocab;
};

/*
 * The serving core as the session sees it.  dp_serve_core_ops
 * (serve_core.c) calls daemon/serve.h; tests give a double.
 */
struct dp_serve_ops {
	int (*submit)(void *serve, const struct slm_request *req,
		      uint64_t *id_out, struct slm_error *err);
	int (*cancel)(void *serve, uint64_t id);
	void (*gen_defaults)(struct slm_gen_params *p);
	/* Optional: the loaded model, for INFO; false when none. */
	bool (*describe)(void *serve, struct dp_model_info *out);
};

extern const struct dp_serve_ops dp_serve_core_ops;

struct dp_session_params {
	const struct dp_io *io;
	/* NULL: no serving core yet; generate is refused with ESTATE
	 * ("no model loaded") while PING and INFO are answered, until
	 * dp_session_attach_serve. */
	const struct dp_serve_ops *serve_ops;
	void *serve;
	const struct dp_keys *keys; /* NULL: no MACs (and none accepted) */
	const struct dp_acl *acl;   /* NULL: every peer allowed */

	uint32_t max_request_bytes;	/* request body */
	uint32_t max_clients;		/* connections */
	uint32_t max_inflight;		/* requests, this session */
	uint32_t client_max_inflight;	/* requests, one connection */
	uint32_t client_rate;		/* datagrams/s per connection, 0 off */
	uint32_t retransmit_bytes;	/* stream bytes buffered per request */
	uint64_t reassembly_bytes;	/* incomplete requests, all clients */
	uint32_t reassembly_timeout_ms; /* an incomplete request's life */
	uint32_t abandon_ms;	  /* silence that cancels / forgets a request */
	uint32_t replay_window_s; /* |ts_us - now| allowed with MACs */
	uint32_t client_idle_s;	  /* silence that forgets a connection */
	uint32_t tx_dgram;	  /* size of the datagrams sent */
	const char *server_version;
	uint64_t hash_seed; /* randomises the hash tables */
};

/*
 * Hand the session a serving core (or a new one): requests accepted from
 * now on go there; running ones finish where they started.  Any thread,
 * while the session runs.  SLM_EINVAL for incomplete ops, SLM_ENOMEM.
 */
struct dp_session;
int dp_session_attach_serve(struct dp_session *s,
			    const struct dp_serve_ops *ops,
			    void *serve) SLM_MUST_CHECK;

/* Fill p with the defaults of the config table (io and serve unset). */
void dp_session_params_default(struct dp_session_params *p);

int dp_session_create(const struct dp_session_params *p,
		      struct dp_session **out,
		      struct slm_error *err) SLM_MUST_CHECK;

/*
 * Free the session.  Every request submitted to the serving core must
 * have had its DONE (see dp_session_shutdown); the session asserts it.
 */
void dp_session_destroy(struct dp_session *s);

/* One received datagram.  now_ns is CLOCK_MONOTONIC. */
void dp_session_input(struct dp_session *s, const struct dp_peer *from,
		      const uint8_t *data, size_t len, uint64_t now_ns);

/*
 * Handle queued serving-core events (at most a budget, so receiving is
 * not starved), send the token packets they make, and run the timers that
 * are due.  Returns how much work it did (0: nothing to do).
 */
unsigned dp_session_poll(struct dp_session *s, uint64_t now_ns);

/* Before blocking: false when events wait (then do not block). */
bool dp_session_prepare_sleep(struct dp_session *s);
/* After blocking. */
void dp_session_awake(struct dp_session *s);

/* When dp_session_poll next has timers to run (CLOCK_MONOTONIC ns);
 * UINT64_MAX when nothing is pending. */
uint64_t dp_session_next_timer(const struct dp_session *s);

/*
 * Shutting down: refuse new requests, cancel every running one.  Returns
 * the number of requests still waiting for their DONE event; keep calling
 * dp_session_poll until it is 0 before dp_session_destroy.
 */
unsigned dp_session_shutdown(struct dp_session *s);
unsigned dp_session_waiting(const struct dp_session *s);

/* The thread's counters (the backend adds its own drops here). */
struct dp_counters *dp_session_counters(struct dp_session *s);

/* Gauges, for tests and ctl. */
struct dp_session_gauges {
	uint32_t conns;
	uint32_t requests; /* objects of any state */
	uint32_t inflight; /* partial + running */
	uint64_t reassembly_bytes;
	uint64_t retransmit_bytes;
};
void dp_session_gauges(const struct dp_session *s, struct dp_session_gauges *g);

#endif
