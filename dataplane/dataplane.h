/*
 * dataplane.h: the RPC dataplane as slmd starts it from its config.
 *
 * Reads the [dataplane] keys, loads the key file and the allowlist, opens
 * the backend that dataplane.kind names, creates one session per receive
 * queue and starts the queue threads.  Until slmd hands it the serving
 * core (serve_ops NULL) it answers PING and INFO and refuses generate
 * requests with ESTATE "no model loaded".
 */
#ifndef SLM_DATAPLANE_DATAPLANE_H
#define SLM_DATAPLANE_DATAPLANE_H

#include <stddef.h>

#include "common/config.h"
#include "common/err.h"
#include "dataplane/counters.h"
#include "dataplane/session.h"

struct dp_dataplane;

/*
 * Start.  serve_ops/serve: the serving core (dp_serve_core_ops and its
 * struct slm_serve *), or NULL.  Errors (SLM_ECONFIG, SLM_EAUTH for the key
 * file, SLM_ESYS) say which key or system call failed.
 */
int dp_dataplane_start(const struct slm_config *cfg,
		       const struct dp_serve_ops *serve_ops, void *serve,
		       struct dp_dataplane **out,
		       struct slm_error *err) SLM_MUST_CHECK;

/*
 * Hand the running dataplane its serving core once the model is loaded
 * (slmd starts the dataplane first, so PING and INFO work while it
 * loads).  Any thread.  SLM_EINVAL for incomplete ops.
 */
int dp_dataplane_attach_serve(struct dp_dataplane *dp,
			      const struct dp_serve_ops *serve_ops,
			      void *serve) SLM_MUST_CHECK;

/* Stop the threads (running requests are cancelled and their DONE
 * awaited), free everything.  NULL is fine. */
void dp_dataplane_stop(struct dp_dataplane *dp);

/* The address served ("udp://127.0.0.1:7070"; the real port if 0 was
 * configured) and the backend's name and mode, for the log. */
const char *dp_dataplane_url(const struct dp_dataplane *dp);
const char *dp_dataplane_describe(const struct dp_dataplane *dp);

/* The sum of every thread's counters (a snapshot). */
void dp_dataplane_counters(const struct dp_dataplane *dp,
			   struct dp_counters *sum);

/*
 * Everything the dataplane counts, as a new cJSON object (the caller
 * frees it with cJSON_Delete; NULL when out of memory), for ctl:
 *   {"kind": "uring"|"dpdk", "url": "...", "describe": "...",
 *    "counters": {NAME: N, ...}        every counter of counters.h, summed
 *    "threads": [{"counters": {NAME: N, ...}}]   per thread, non-zero ones
 *    "dpdk": {...}}      with the DPDK backend: EAL, lcores and links
 *                        with DPDK's stats and xstats (dataplane/
 *                        dpdk_stats.c documents the fields)
 * Any thread, while the dataplane runs; each number is exact, the set is
 * not one instant's.
 */
struct cJSON;
struct cJSON *dp_dataplane_stats_json(const struct dp_dataplane *dp);

#endif
