/*
 * serve_ctl.h: the serving core on the control socket (ctl/ctl.h,
 * ctl/perf.h).
 *
 * While slmd serves, the serving core answers:
 *   - status sections `model` (what runs: name, file, architecture,
 *     type, parameters, context, vocabulary, chat template, load time)
 *     and `groups` (per worker group: node, CPUs, requests running and
 *     queued, KV blocks total/used/cached/free, prefix-cache lookups,
 *     hit and miss tokens, evictions);
 *   - commands `cache stats|flush` and `topology` (the machine and the
 *     placement plan it runs, replacing the placeholder that plans from
 *     the config);
 *   - a perf source "serve": per-group gauges (queue_depth,
 *     requests_running, kv_blocks_total/used/cached/free) and counters
 *     (requests_finished_total by reason, requests_refused_total by
 *     reason, prefix_lookups_total, prefix_evictions_total,
 *     preemptions_total, kv_cow_copies_total, forward_passes_total,
 *     batch_tokens_total).
 * The per-request counters and stage times (requests_total,
 * tokens_generated_total, prefix_hit_tokens_total, queue_wait, prefill,
 * first_token, decode_step, detokenize) are the leader threads' own
 * (daemon/sched.c registers each with perf_thread_register); they exist
 * as long as the groups do, registered or not here.
 *
 * Threads: register and unregister on the daemon's thread (the serve
 * component's start and stop).  Unregister before slm_serve_stop: once it
 * returns no handler runs, so nothing reads a stopping core.
 */
#ifndef SLM_DAEMON_SERVE_CTL_H
#define SLM_DAEMON_SERVE_CTL_H

#include "common/err.h"
#include "daemon/serve.h"

/* Register everything above for s.  On an error (a name taken: two
 * serving cores in one process) nothing stays registered. */
int slm_serve_ctl_register(struct slm_serve *s,
			   struct slm_error *err) SLM_MUST_CHECK;

/* Take it all back (any part not registered is fine). */
void slm_serve_ctl_unregister(void);

#endif
