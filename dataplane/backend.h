/*
 * backend.h: the small ops table a packet backend fills in.
 *
 * A backend moves datagrams between the network and sessions
 * (session.h): it owns sockets or ports, receive buffers, transmit
 * batching and the threads that poll them, one thread per receive queue,
 * each driving one session.  It knows nothing of the protocol; the
 * session knows nothing of how packets move.  The kernel backend
 * (uring.h, io_uring on UDP sockets) fills this table; the DPDK backend
 * (dpdk.h, kernel bypass on a NIC port and memif links) fills the same
 * one.
 *
 * Every queue thread runs the same loop: receive a batch and hand each
 * datagram to dp_session_input; dp_session_poll (events from the serving
 * core, timers); send what the session queued, in one batch; then spin
 * while traffic flows, and after spin_us without work block until a
 * datagram, a wake-up through the session's dp_io or the next timer.
 * When asked to stop it calls dp_session_shutdown and keeps polling until
 * every running request had its DONE (or stop_timeout_ms passes), so no
 * worker is left holding a pointer into a freed session.
 *
 * Life: open (sockets/ports; errors are reported here, synchronously) ->
 * queue_io for each queue (the session is created with it) -> start ->
 * ... -> stop (joins the threads) -> close.
 */
#ifndef SLM_DATAPLANE_BACKEND_H
#define SLM_DATAPLANE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"
#include "dataplane/session.h"
#include "numa/placement.h"
#include "numa/topology.h"

struct cJSON;

struct dp_backend;

struct dp_backend_config {
	const char *listen;	  /* "udp://HOST:PORT" (port 0: any) */
	unsigned n_queues;	  /* receive threads */
	uint32_t spin_us;	  /* busy-poll this long after the last work */
	uint32_t rx_buffers;	  /* receive buffers per queue */
	uint64_t socket_buffer;	  /* SO_RCVBUF / SO_SNDBUF bytes */
	uint32_t stop_timeout_ms; /* wait for DONE events when stopping */
	/* The whole configuration, for a backend's own section ([dpdk]). */
	const struct slm_config *config;
	/* Where queue threads run: queue i on the plan's dataplane thread
	 * i mod plan->n_dataplane (DPDK: n_queues == plan->n_dataplane).
	 * NULL: not pinned.  Pinned only when the topology is this
	 * machine's. */
	const struct slm_topo *topo;
	const struct slm_plan *plan;
};

struct dp_backend_ops {
	const char *name; /* the dataplane.kind that selects it */
	int (*open)(const struct dp_backend_config *cfg,
		    struct dp_backend **out, struct slm_error *err);
	/* The dp_io a session of queue i sends and is woken through. */
	void (*queue_io)(struct dp_backend *b, unsigned i, struct dp_io *io);
	/* Start the queue threads, sessions[i] driven by queue i; the
	 * sessions must outlive stop.  Errors: a thread that could not set
	 * up (then no thread is left running). */
	int (*start)(struct dp_backend *b, struct dp_session *const *sessions,
		     struct slm_error *err);
	/* Ask the threads to finish and join them.  Safe if never started. */
	void (*stop)(struct dp_backend *b);
	void (*close)(struct dp_backend *b);
	/* The address actually bound, as a URL ("udp://127.0.0.1:7070"). */
	void (*local_url)(const struct dp_backend *b, char *buf, size_t size);
	/* Optional: a line for the log ("io_uring defer_taskrun"). */
	void (*describe)(const struct dp_backend *b, char *buf, size_t size);
	/* Optional: the backend's own statistics (ports, queues, device
	 * counters) added to obj, a cJSON object.  Any thread, while the
	 * backend runs. */
	void (*stats_json)(const struct dp_backend *b, struct cJSON *obj);
};

extern const struct dp_backend_ops dp_uring_ops;
/* The DPDK backend (dpdk.h); a build without DPDK refuses to open it. */
extern const struct dp_backend_ops dp_dpdk_ops;

#endif
