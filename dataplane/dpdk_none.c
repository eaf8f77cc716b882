/*
 * dpdk_none.c: the DPDK backend of a build without DPDK (libdpdk-dev
 * absent when it was built): dataplane.kind = dpdk is refused, saying
 * so.  The Makefile builds this file instead of dpdk*.c then.
 */
#include "dataplane/dpdk.h"

static int none_open(const struct dp_backend_config *cfg,
		     struct dp_backend **out, struct slm_error *err)
{
	(void)cfg;
	*out = NULL;
	return slm_error_set(err, SLM_ECONFIG,
			     "dataplane.kind = dpdk: this build has no DPDK "
			     "(install libdpdk-dev and rebuild)");
}

const struct dp_backend_ops dp_dpdk_ops = {
	.name = "dpdk",
	.open = none_open,
};
