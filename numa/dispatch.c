#include "numa/dispatch.h"

void slm_dispatch_policy_from_config(struct slm_dispatch_policy *p,
				     const struct slm_config *cfg)
{
	p->affinity_threshold =
		(uint64_t)slm_cfg_int(cfg, SLM_CFG_NUMA_AFFINITY_THRESHOLD);
	p->affinity_min_prefix =
		(uint64_t)slm_cfg_int(cfg, SLM_CFG_NUMA_AFFINITY_MIN_PREFIX);
}

static uint64_t load_of(const struct slm_dispatch_group *g)
{
	uint64_t sum = g->queued_tokens + g->running_tokens;
	return sum < g->queued_tokens ? UINT64_MAX : sum;
}

int slm_dispatch_pick(const struct slm_dispatch_policy *policy,
		      const struct slm_dispatch_group *groups, int n_groups,
		      enum slm_dispatch_reason *reason)
{
	/* The least loaded open group (lowest index on ties). */
	int least = -1;
	uint64_t min_load = 0;
	for (int g = 0; g < n_groups; g++) {
		if (groups[g].closed)
			continue;
		uint64_t load = load_of(&groups[g]);
		if (least < 0 || load < min_load) {
			least = g;
			min_load = load;
		}
	}
	if (least < 0) {
		if (reason)
			*reason = SLM_DISPATCH_NONE;
		return -1;
	}

	/* Among the open groups within the threshold of the least loaded:
	 * the longest prefix, then the lower load, then the lower index. */
	uint64_t limit = min_load + policy->affinity_threshold;
	if (limit < min_load)
		limit = UINT64_MAX;
	int best = least;
	for (int g = 0; g < n_groups; g++) {
		const struct slm_dispatch_group *c = &groups[g];
		if (c->closed || load_of(c) > limit)
			continue;
		const struct slm_dispatch_group *b = &groups[best];
		if (c->prefix_tokens > b->prefix_tokens ||
		    (c->prefix_tokens == b->prefix_tokens &&
		     load_of(c) < load_of(b)))
			best = g;
	}
	uint64_t gain = groups[best].prefix_tokens -
			SLM_MIN(groups[best].prefix_tokens,
				groups[least].prefix_tokens);
	bool affine = best != least && gain > 0 &&
		      gain >= policy->affinity_min_prefix;
	if (reason)
		*reason = affine ? SLM_DISPATCH_AFFINITY
				 : SLM_DISPATCH_LEAST_LOADED;
	return affine ? best : least;
}
