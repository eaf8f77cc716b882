/* dataplane.c: start the RPC dataplane from config.  See dataplane.h. */
#include "dataplane/dataplane.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/log.h"
#include "dataplane/acl.h"
#include "dataplane/backend.h"
#include "dataplane/keys.h"
#include "dataplane/uring.h"
#include "numa/placement.h"
#include "numa/topology.h"

#define STOP_TIMEOUT_MS 5000

struct dp_dataplane {
	const struct dp_backend_ops *ops;
	struct dp_backend *be;
	struct dp_keys *keys;
	struct dp_acl *acl;
	unsigned n;
	struct dp_session **sess;
	struct dp_io *io;
	bool started;
	/* Where the queue threads run (the DPDK backend's lcores). */
	struct slm_topo *topo;
	struct slm_plan *plan;
	char url[300];
	char desc[512];
};

static const struct dp_backend_ops *backend_by_kind(const char *kind)
{
	if (!strcmp(kind, dp_uring_ops.name))
		return &dp_uring_ops;
	if (!strcmp(kind, dp_dpdk_ops.name))
		return &dp_dpdk_ops;
	return NULL;
}

/*
 * Dataplane threads run on the placement plan's dataplane cores.  The
 * DPDK backend polls there with one lcore, and one RX queue, per
 * dataplane thread of the plan; io_uring threads are spread over those
 * cores (thread i on dataplane core i mod their count).
 */
static int plan_threads(struct dp_dataplane *dp, const struct slm_config *cfg,
			bool one_per_core, struct dp_backend_config *bc,
			struct slm_error *err)
{
	int rc = slm_topo_open(slm_cfg_str(cfg, SLM_CFG_NUMA_TOPOLOGY),
			       &dp->topo, err);
	if (rc)
		return rc;
	struct slm_plan_params pp;
	slm_plan_params_from_config(&pp, cfg);
	rc = slm_plan_create(slm_topo_info(dp->topo), &pp, &dp->plan, err);
	if (rc)
		return rc;
	bc->topo = dp->topo;
	bc->plan = dp->plan;
	unsigned n = (unsigned)dp->plan->n_dataplane;
	if (!one_per_core)
		return 0;
	if (bc->n_queues != 1 && bc->n_queues != n)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.rx_threads = %u, but the "
				     "plan has %u dataplane core%s: with "
				     "dataplane.kind = dpdk set "
				     "numa.dataplane_cores = %u (one lcore "
				     "and RX queue each)",
				     bc->n_queues, n, n == 1 ? "" : "s",
				     bc->n_queues);
	bc->n_queues = n;
	return 0;
}

static void params_from_config(const struct slm_config *cfg,
			       struct dp_session_params *p)
{
	dp_session_params_default(p);
	p->max_request_bytes =
		(uint32_t)slm_cfg_size(cfg, SLM_CFG_DP_MAX_REQUEST_BYTES);
	p->max_clients = (uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_MAX_CLIENTS);
	p->max_inflight = (uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_MAX_INFLIGHT);
	p->client_max_inflight =
		(uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_CLIENT_MAX_INFLIGHT);
	p->client_rate = (uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_CLIENT_RATE);
	p->retransmit_bytes =
		(uint32_t)slm_cfg_size(cfg, SLM_CFG_DP_RETRANSMIT_BYTES);
	p->reassembly_bytes = slm_cfg_size(cfg, SLM_CFG_DP_REASSEMBLY_BYTES);
	p->reassembly_timeout_ms =
		(uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_REASSEMBLY_TIMEOUT_MS);
	p->abandon_ms = (uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_ABANDON_MS);
	p->replay_window_s =
		(uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_REPLAY_WINDOW_S);
	p->client_idle_s = (uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_CLIENT_IDLE_S);
}

int dp_dataplane_start(const struct slm_config *cfg,
		       const struct dp_serve_ops *serve_ops, void *serve,
		       struct dp_dataplane **out, struct slm_error *err)
{
	*out = NULL;
	const char *kind = slm_cfg_enum_name(cfg, SLM_CFG_DP_KIND);
	const struct dp_backend_ops *ops = backend_by_kind(kind);
	if (!ops)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.kind = %s: this build has no "
				     "%s dataplane (use uring)",
				     kind, kind);
	struct dp_session_params sp;
	params_from_config(cfg, &sp);
	if (sp.client_idle_s <= sp.replay_window_s)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.client_idle_s (%u) must exceed "
				     "dataplane.replay_window_s (%u)",
				     sp.client_idle_s, sp.replay_window_s);
	if (sp.client_max_inflight > sp.max_inflight)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.client_max_inflight (%u) "
				     "exceeds dataplane.max_inflight (%u)",
				     sp.client_max_inflight, sp.max_inflight);
	struct dp_dataplane *dp = calloc(1, sizeof(*dp));
	if (!dp)
		return slm_error_set(err, SLM_ENOMEM, "dataplane");
	dp->ops = ops;
	int rc = 0;
	const char *key_file = slm_cfg_str(cfg, SLM_CFG_DP_KEY_FILE);
	if (key_file[0]) {
		rc = dp_keys_load(key_file, true, &dp->keys, err);
		if (rc) {
			slm_error_prefix(err, "dataplane.key_file: ");
			goto fail;
		}
	}
	rc = dp_acl_parse(slm_cfg_str(cfg, SLM_CFG_DP_ALLOW), &dp->acl, err);
	if (rc)
		goto fail;

	struct dp_backend_config bc = {
		.listen = slm_cfg_str(cfg, SLM_CFG_DP_LISTEN),
		.n_queues = (unsigned)slm_cfg_int(cfg, SLM_CFG_DP_RX_THREADS),
		.spin_us = (uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_SPIN_US),
		.rx_buffers = (uint32_t)slm_cfg_int(cfg, SLM_CFG_DP_RX_BUFFERS),
		.socket_buffer = slm_cfg_size(cfg, SLM_CFG_DP_SOCKET_BUFFER),
		.stop_timeout_ms = STOP_TIMEOUT_MS,
		.config = cfg,
	};
	rc = plan_threads(dp, cfg, ops == &dp_dpdk_ops, &bc, err);
	if (rc)
		goto fail;
	rc = ops->open(&bc, &dp->be, err);
	if (rc)
		goto fail;
	dp->n = bc.n_queues;
	dp->sess = calloc(dp->n, sizeof(*dp->sess));
	dp->io = calloc(dp->n, sizeof(*dp->io));
	if (!dp->sess || !dp->io) {
		rc = slm_error_set(err, SLM_ENOMEM, "dataplane sessions");
		goto fail;
	}
	for (unsigned i = 0; i < dp->n; i++) {
		ops->queue_io(dp->be, i, &dp->io[i]);
		sp.io = &dp->io[i];
		sp.serve_ops = serve_ops;
		sp.serve = serve;
		sp.keys = dp->keys;
		sp.acl = dp->acl;
		if (getrandom(&sp.hash_seed, sizeof(sp.hash_seed), 0) < 0)
			sp.hash_seed = (uint64_t)(uintptr_t)dp ^ i;
		rc = dp_session_create(&sp, &dp->sess[i], err);
		if (rc)
			goto fail;
	}
	rc = ops->start(dp->be, dp->sess, err);
	if (rc)
		goto fail;
	dp->started = true;
	ops->local_url(dp->be, dp->url, sizeof(dp->url));
	char mode[300] = "-";
	if (ops == &dp_uring_ops)
		snprintf(mode, sizeof(mode), "%s", dp_uring_mode(dp->be));
	else if (ops->describe)
		ops->describe(dp->be, mode, sizeof(mode));
	snprintf(dp->desc, sizeof(dp->desc),
		 "%s (%s), %u rx thread%s, spin %u us%s%s", ops->name, mode,
		 dp->n, dp->n == 1 ? "" : "s", bc.spin_us,
		 dp->keys ? ", MACs required" : "",
		 dp->acl ? ", allowlist" : "");
	*out = dp;
	return 0;
fail:
	dp_dataplane_stop(dp);
	return rc;
}

void dp_dataplane_stop(struct dp_dataplane *dp)
{
	if (!dp)
		return;
	if (dp->be)
		dp->ops->stop(dp->be);
	bool leak = false;
	for (unsigned i = 0; dp->sess && i < dp->n; i++) {
		if (!dp->sess[i])
			continue;
		unsigned waiting = dp_session_waiting(dp->sess[i]);
		if (waiting) {
			/* Workers may still deliver events into it. */
			SLM_ERROR(
				"dataplane",
				"thread %u: %u requests never had their DONE; "
				"leaving their state allocated",
				i, waiting);
			leak = true;
			continue;
		}
		dp_session_destroy(dp->sess[i]);
	}
	if (dp->be)
		dp->ops->close(dp->be);
	slm_plan_destroy(dp->plan);
	slm_topo_close(dp->topo);
	dp->plan = NULL;
	dp->topo = NULL;
	if (leak)
		return;
	dp_keys_destroy(dp->keys);
	dp_acl_destroy(dp->acl);
	free(dp->sess);
	free(dp->io);
	free(dp);
}

int dp_dataplane_attach_serve(struct dp_dataplane *dp,
			      const struct dp_serve_ops *serve_ops, void *serve)
{
	for (unsigned i = 0; i < dp->n; i++) {
		int rc = dp_session_attach_serve(dp->sess[i], serve_ops, serve);
		if (rc)
			return rc;
	}
	return 0;
}

const char *dp_dataplane_url(const struct dp_dataplane *dp)
{
	return dp->url;
}

const char *dp_dataplane_describe(const struct dp_dataplane *dp)
{
	return dp->desc;
}

void dp_dataplane_counters(const struct dp_dataplane *dp,
			   struct dp_counters *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < dp->n; i++) {
		struct dp_counters snap;
		dp_counters_read(&snap, dp_session_counters(dp->sess[i]));
		dp_counters_add(sum, &snap);
	}
}

cJSON *dp_dataplane_stats_json(const struct dp_dataplane *dp)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "kind", dp->ops->name);
	cJSON_AddStringToObject(o, "url", dp->url);
	cJSON_AddStringToObject(o, "describe", dp->desc);
	struct dp_counters sum;
	dp_dataplane_counters(dp, &sum);
	cJSON *c = cJSON_AddObjectToObject(o, "counters");
	const uint64_t *v = (const uint64_t *)&sum;
	for (unsigned i = 0; c && i < DP_COUNTERS_N; i++)
		cJSON_AddNumberToObject(c, dp_counter_name(i), (double)v[i]);
	cJSON *threads = cJSON_AddArrayToObject(o, "threads");
	for (unsigned t = 0; threads && t < dp->n; t++) {
		cJSON *th = cJSON_CreateObject();
		if (!th)
			break;
		cJSON_AddItemToArray(threads, th);
		struct dp_counters snap;
		dp_counters_read(&snap, dp_session_counters(dp->sess[t]));
		cJSON *tc = cJSON_AddObjectToObject(th, "counters");
		const uint64_t *sv = (const uint64_t *)&snap;
		for (unsigned i = 0; tc && i < DP_COUNTERS_N; i++)
			if (sv[i])
				cJSON_AddNumberToObject(tc, dp_counter_name(i),
							(double)sv[i]);
	}
	if (dp->ops->stats_json)
		dp->ops->stats_json(dp->be, o);
	return o;
}
