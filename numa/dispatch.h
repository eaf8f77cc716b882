/*
 * dispatch.h: which worker group gets a new request.
 *
 * The policy is a pure function of numbers the serving core already has:
 * each group's load (tokens queued + tokens running) and, for this
 * request, how many tokens of its prompt each group's prefix cache holds.
 * A request goes to the group with the longest cached prefix (it skips
 * that much prefill and shares the group's cached KV blocks) unless that
 * group's load exceeds the least loaded group's by more than
 * affinity_threshold tokens; then the best prefix among the groups within
 * the threshold wins, and without one, the least loaded group.  Prefixes
 * shorter than affinity_min_prefix tokens beyond the least loaded group's
 * do not count.  Ties go to the lower load, then the lower group index,
 * so the same inputs always give the same group.
 *
 * Threads: slm_dispatch_pick reads only its arguments; call it from any
 * thread.  The loads are a snapshot: the caller adds the request's tokens
 * to the chosen group's queued count before dispatching the next one.
 */
#ifndef SLM_NUMA_DISPATCH_H
#define SLM_NUMA_DISPATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"

struct slm_dispatch_policy {
	uint64_t affinity_threshold;  /* tokens; numa.affinity_threshold */
	uint64_t affinity_min_prefix; /* tokens; numa.affinity_min_prefix */
};

/* The policy from numa.affinity_threshold and numa.affinity_min_prefix
 * (runtime keys: read it again to follow a change). */
void slm_dispatch_policy_from_config(struct slm_dispatch_policy *p,
				     const struct slm_config *cfg);

/* One group as the dispatcher sees it for one request. */
struct slm_dispatch_group {
	uint64_t queued_tokens;	 /* prompt + max new tokens, not yet running */
	uint64_t running_tokens; /* tokens left to compute for running ones */
	uint64_t prefix_tokens;	 /* of this request's prompt, in its cache */
	bool closed;		 /* takes no request (draining, queue full) */
};

enum slm_dispatch_reason {
	SLM_DISPATCH_NONE,	   /* every group closed: refuse (overloaded) */
	SLM_DISPATCH_AFFINITY,	   /* its cached prefix won over a lower load */
	SLM_DISPATCH_LEAST_LOADED, /* the least loaded group */
};

/*
 * The group for the request: an index into groups[n_groups], or -1 when
 * every group is closed (or n_groups is 0).  *reason (may be NULL) says
 * why, for the dispatch counters.
 */
int slm_dispatch_pick(const struct slm_dispatch_policy *policy,
		      const struct slm_dispatch_group *groups, int n_groups,
		      enum slm_dispatch_reason *reason);

#endif
