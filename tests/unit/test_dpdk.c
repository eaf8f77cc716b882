/*
 * Unit tests of the DPDK backend run in this process (dataplane/dpdk.h):
 * the statistics ctl reads (dp_dataplane_stats_json) from a live
 * dataplane, and EAL's once-per-process rule.
 *
 * The port is DPDK's null driver: it "receives" an endless stream of
 * 64-byte frames of zeros, which the IPv4 host must drop (for another
 * MAC) and count, so the counters, the port's stats and xstats all move.
 * EAL starts once per process, so the suite's cases run in order and the
 * second one checks the refusal.  Needs root (DPDK) and a DPDK build.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "dataplane/dataplane.h"
#include "slm_features.h"
#include "tests/unit/harness.h"

static bool can_run(void)
{
	if (!HAVE_DPDK) {
		slm_test_skip("this build has no DPDK");
		return false;
	}
	if (geteuid() != 0) {
		slm_test_skip("needs root for netns/DPDK");
		return false;
	}
	return true;
}

static struct slm_config *dpdk_config(void)
{
	struct slm_config *cfg = slm_config_create();
	struct slm_error err = {0};
	if (!cfg || slm_config_set(cfg, "dataplane.kind", "dpdk", &err) ||
	    slm_config_set(cfg, "dpdk.port", "net_null0,size=64", &err) ||
	    slm_config_set(cfg, "dataplane.listen", "udp://10.99.0.2:7070",
			   &err) ||
	    slm_config_set(cfg, "dpdk.memory", "128M", &err) ||
	    slm_config_set(cfg, "dpdk.link_wait_ms", "0", &err)) {
		slm_config_destroy(cfg);
		return NULL;
	}
	return cfg;
}

static const cJSON *path(const cJSON *o, const char *a, const char *b)
{
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
	return b ? cJSON_GetObjectItemCaseSensitive(x, b) : x;
}

static void test_stats_json(void)
{
	if (!can_run())
		return;
	struct slm_config *cfg = dpdk_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	struct dp_dataplane *dp = NULL;
	struct slm_error err = {0};
	int rc = dp_dataplane_start(cfg, NULL, NULL, &dp, &err);
	if (rc)
		fprintf(stderr, "dpdk start: %s\n", err.msg);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	CU_ASSERT_STRING_EQUAL(dp_dataplane_url(dp), "udp://10.99.0.2:7070");
	slm_sleep_ns(200 * 1000000ull);
	cJSON *s = dp_dataplane_stats_json(dp);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(path(s, "kind", NULL)),
			       "dpdk");
	double frames = cJSON_GetNumberValue(path(s, "counters", "rx_frames"));
	double foreign =
		cJSON_GetNumberValue(path(s, "counters", "drop_l2_foreign"));
	CU_ASSERT(frames > 0);
	/* All zeros: destination MAC 00:..:00 is not ours. */
	CU_ASSERT(foreign > 0 && foreign <= frames);
	CU_ASSERT(cJSON_IsArray(path(s, "threads", NULL)));
	const cJSON *d = path(s, "dpdk", NULL);
	CU_ASSERT(cJSON_IsString(path(d, "eal", NULL)));
	const cJSON *link = cJSON_GetArrayItem(path(d, "links", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(link);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(path(link, "kind", NULL)),
			       "nic");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(path(link, "driver", NULL)),
			       "net_null");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(path(link, "ip", NULL)),
			       "10.99.0.2");
	CU_ASSERT(cJSON_GetNumberValue(path(link, "stats", "ipackets")) >=
		  frames);
	CU_ASSERT(cJSON_IsObject(path(link, "xstats", NULL)));
	CU_ASSERT(cJSON_GetNumberValue(path(path(link, "xstats", NULL),
					    "rx_good_packets", NULL)) > 0);
	const cJSON *lc = cJSON_GetArrayItem(path(d, "lcores", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(lc);
	const cJSON *q = cJSON_GetArrayItem(path(lc, "queues", NULL), 0);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(path(q, "link", NULL)), 0);
	cJSON_Delete(s);
	dp_dataplane_stop(dp);
	slm_config_destroy(cfg);
}

/* EAL cannot start twice in a process: a clear refusal, not a crash. */
static void test_eal_once(void)
{
	if (!can_run())
		return;
	struct slm_config *cfg = dpdk_config();
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	struct dp_dataplane *dp = NULL;
	struct slm_error err = {0};
	int rc = dp_dataplane_start(cfg, NULL, NULL, &dp, &err);
	CU_ASSERT_EQUAL(rc, SLM_ESTATE);
	CU_ASSERT_PTR_NULL(dp);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "only once"));
	dp_dataplane_stop(dp);
	slm_config_destroy(cfg);
}

SLM_SUITE("dpdk", NULL, NULL, {"stats for ctl", test_stats_json},
	  {"EAL once per process", test_eal_once});
