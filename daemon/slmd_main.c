/*
 * slmd: the inference appliance daemon.
 *
 *   slmd [-c FILE] [--set section.key=value]... [--dump-config]
 *
 * Start-up errors (a bad config line, a model that will not load) are one
 * line on stderr and exit status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/version.h"
#include "ctl/ctl.h"
#include "ctl/perf.h"
#include "ctl/server.h"
#include "daemon/daemon.h"
#include "daemon/notify.h"
#include "daemon/serve_daemon.h"
#include "daemon/testhook.h"
#include "dataplane/dataplane.h"
#include "numa/cpulist.h"
#include "numa/pin.h"
#include "numa/placement.h"
#include "numa/topology.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slmd [-c FILE] [--set section.key=value]... "
		"[--dump-config]\n"
		"  -c, --config FILE   configuration file (INI)\n"
		"  --set K=V           override one key, e.g. --set "
		"log.level=debug\n"
		"  --dump-config       print the effective configuration and "
		"exit\n"
		"  --version           print the version and exit\n");
}

/*
 * The control socket, with the metrics page when metrics.listen is set
 * (ctl/server.h).  Added first so it answers while the other components
 * start and load, and stops last.
 */
static struct ctl_server *add_ctl(struct slmd *d)
{
	struct ctl_server *ctl = ctl_server_create();
	if (!ctl)
		slm_cli_die("slmd", "out of memory");
	struct slmd_component c = ctl_server_component(ctl);
	if (slmd_add_component(d, &c))
		slm_cli_die("slmd", "too many components");
	return ctl;
}

/*
 * The RPC dataplane, a component.  It starts before any model so slmd
 * answers PING and INFO at once; until the serving core is handed over it
 * refuses generate requests with "no model loaded".  The serving core is a
 * component added after this one (daemon/serve_daemon.h): it loads the
 * model and then attaches itself with attach_serve below; components stop
 * in reverse, so the dataplane stops after it.
 */
struct dataplane_component {
	struct dp_dataplane *dp;
};

/*
 * The dataplane on the control socket: its counters (summed over its
 * threads) as a perf source, the drop and refusal reasons as drops_total
 * by reason, and its address in `slmctl status`.
 */
static void dataplane_collect(void *ctx, struct perf_snapshot *snap)
{
	const struct dataplane_component *c = ctx;
	struct dp_counters sum;
	dp_dataplane_counters(c->dp, &sum);
	const uint64_t *v = (const uint64_t *)&sum;
	for (unsigned i = 0; i < DP_COUNTERS_N; i++) {
		const char *name = dp_counter_name(i);
		char family[96];
		if (!strncmp(name, "drop_", 5) ||
		    !strncmp(name, "refused_", 8)) {
			perf_emit_counter(snap, "drops_total",
					  "work dropped or refused, by reason",
					  v[i], "thread", "dataplane", "reason",
					  name + (name[0] == 'd' ? 5 : 0),
					  PERF_END);
			continue;
		}
		snprintf(family, sizeof(family), "dataplane_%s_total", name);
		perf_emit_counter(snap, family, dp_counter_help(i), v[i],
				  PERF_END);
	}
}

static int dataplane_status(void *ctx, cJSON *section)
{
	const struct dataplane_component *c = ctx;
	if (!cJSON_AddStringToObject(section, "url", dp_dataplane_url(c->dp)) ||
	    !cJSON_AddStringToObject(section, "backend",
				     dp_dataplane_describe(c->dp)))
		return SLM_ENOMEM;
	return 0;
}

static void dataplane_expose(struct dataplane_component *c)
{
	if (perf_source_register("dataplane", dataplane_collect, c) ||
	    ctl_register_status("dataplane", dataplane_status, c))
		SLM_WARN("dataplane", "its counters are not on the control "
				      "socket (registered twice?)");
}

static void dataplane_hide(void)
{
	ctl_unregister_status("dataplane");
	perf_source_unregister("dataplane");
}

static int dataplane_start(void *ctx, struct slmd *d, struct slm_error *err)
{
	struct dataplane_component *c = ctx;
	int rc = dp_dataplane_start(slmd_config(d), NULL, NULL, &c->dp, err);
	if (rc)
		return rc;
	SLM_INFO("dataplane", "listening on %s: %s", dp_dataplane_url(c->dp),
		 dp_dataplane_describe(c->dp));
	dataplane_expose(c);
	return 0;
}

static void dataplane_stop(void *ctx)
{
	struct dataplane_component *c = ctx;
	dataplane_hide();
	struct dp_counters counters;
	char line[4096];
	dp_dataplane_counters(c->dp, &counters);
	dp_counters_format(&counters, line, sizeof(line));
	SLM_INFO("dataplane", "counters: %s", line[0] ? line : "(all zero)");
	dp_dataplane_stop(c->dp);
	c->dp = NULL;
}

/* Scripts wait for a log line containing "ready": written when slmd
 * reaches the serving state, with the address it serves. */
static void ready_line(void *ctx, enum slmd_state state, const char *detail)
{
	struct dataplane_component *c = ctx;
	if (state == SLMD_SERVING && c->dp)
		SLM_INFO("slmd", "ready: serving on %s",
			 dp_dataplane_url(c->dp));
}

static int attach_serve(void *ctx, struct slm_serve *serve)
{
	struct dataplane_component *c = ctx;
	return dp_dataplane_attach_serve(c->dp, &dp_serve_core_ops, serve);
}

static void add_dataplane(struct slmd *d, struct dataplane_component *c)
{
	struct slmd_component comp = {.name = "dataplane",
				      .ctx = c,
				      .start = dataplane_start,
				      .stop = dataplane_stop};
	struct slmd_observer obs = {.ctx = c, .state = ready_line};
	if (slmd_add_component(d, &comp) || slmd_add_observer(d, &obs))
		slm_cli_die("slmd", "too many components");
}

/*
 * systemd: sd_notify (READY, STATUS, WATCHDOG, RELOADING, STOPPING) as an
 * observer of the daemon's life, and the test-only component
 * (daemon/testhook.h) when an SLMD_TEST_* variable asks for it.  Call
 * after every other component is added: the test component goes last.
 */
struct systemd_parts {
	struct slmd_notify *notify;
	struct slmd_testhook *testhook;
};

static void systemd_attach(struct slmd *d, const struct slm_config *cfg,
			   struct systemd_parts *p)
{
	p->notify = slmd_notify_create(cfg);
	if (!p->notify)
		slm_cli_die("slmd", "out of memory");
	struct slmd_observer obs = slmd_notify_observer(p->notify);
	if (slmd_add_observer(d, &obs))
		slm_cli_die("slmd", "too many observers");
	if (!slmd_testhook_wanted())
		return;
	struct slm_error err = {0};
	if (slmd_testhook_create(&p->testhook, &err))
		slm_cli_die("slmd", "%s", err.msg);
	struct slmd_component c = slmd_testhook_component(p->testhook);
	if (slmd_add_component(d, &c))
		slm_cli_die("slmd", "too many components");
	SLM_WARN("slmd",
		 "TEST HOOKS ACTIVE (SLMD_TEST_*: %s): for tests "
		 "only, never in production",
		 slmd_testhook_describe(p->testhook));
}

static void systemd_detach(struct systemd_parts *p)
{
	slmd_testhook_destroy(p->testhook);
	slmd_notify_destroy(p->notify);
}

/*
 * Housekeeping threads (this main thread, which loads the model, the
 * health thread, the control thread, the weights' background helpers)
 * inherit this thread's CPUs: pin it to the plan's control CPU and the
 * CPUs no busy thread uses, so none of them lands on a worker's or the
 * dataplane's core.  Workers and dataplane threads pin themselves.  A
 * placement the config makes impossible is left to the serving core,
 * which refuses it with the reason.
 */
static void pin_to_plan(const struct slm_topo *topo,
			const struct slm_plan *plan)
{
	int *cpus = calloc(1 + (size_t)plan->n_idle, sizeof(*cpus));
	if (!cpus)
		return;
	int n = 0;
	cpus[n++] = plan->ctl_cpu;
	for (int i = 0; i < plan->n_idle; i++)
		if (plan->idle_cpus[i] != plan->ctl_cpu)
			cpus[n++] = plan->idle_cpus[i];
	char list[256];
	slm_cpulist_format(cpus, n, list, sizeof(list));
	struct slm_error err = {0};
	if (slm_pin_self(topo, cpus, n, &err))
		SLM_WARN("numa", "housekeeping threads not pinned: %s",
			 err.msg);
	else
		SLM_INFO("numa", "housekeeping threads on CPU %s", list);
	free(cpus);
}

static void pin_housekeeping(const struct slm_config *cfg)
{
	struct slm_topo *topo = NULL;
	struct slm_plan *plan = NULL;
	struct slm_error err = {0};
	struct slm_plan_params pp;
	slm_plan_params_from_config(&pp, cfg);
	if (slm_topo_open(slm_cfg_str(cfg, SLM_CFG_NUMA_TOPOLOGY), &topo,
			  &err) ||
	    slm_plan_create(slm_topo_info(topo), &pp, &plan, &err))
		goto out;
	if (plan->this_system && plan->ctl_cpu >= 0)
		pin_to_plan(topo, plan);
out:
	slm_plan_destroy(plan);
	slm_topo_close(topo);
}

int main(int argc, char **argv)
{
	struct slm_config_args args = {0};
	bool dump = false;
	for (int i = 1; i < argc; i++) {
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		if (!strcmp(argv[i], "--dump-config")) {
			dump = true;
		} else if (!strcmp(argv[i], "--version")) {
			printf("slmd %s\n", SLM_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "-h") ||
			   !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			slm_cli_die("slmd", "unknown option '%s'", argv[i]);
		}
	}
	struct slm_config *cfg = slm_cli_load_config("slmd", &args);
	if (dump) {
		int rc = slm_config_dump(cfg, stdout);
		slm_config_destroy(cfg);
		return rc ? 1 : 0;
	}

	slm_topo_remember_affinity();
	pin_housekeeping(cfg);
	struct slmd *d = slmd_create(cfg, &args);
	if (!d)
		slm_cli_die("slmd", "out of memory");
	struct ctl_server *ctl = add_ctl(d);
	SLM_INFO("slmd", "slmd %s starting (config %s)", SLM_VERSION,
		 args.file ? args.file : "defaults");
	struct dataplane_component dataplane = {0};
	add_dataplane(d, &dataplane);
	struct slm_serve_component serve = {.attach = attach_serve,
					    .attach_ctx = &dataplane};
	if (slm_serve_component_add(d, &serve))
		slm_cli_die("slmd", "too many components");
	struct systemd_parts sd_parts = {0};
	systemd_attach(d, cfg, &sd_parts);
	struct slm_error err = {0};
	int rc = slmd_run(d, &err);
	slm_serve_component_fini(&serve);
	slmd_destroy(d);
	systemd_detach(&sd_parts);
	ctl_server_destroy(ctl);
	slm_config_destroy(cfg);
	if (rc)
		slm_cli_die("slmd", "%s", err.msg);
	return 0;
}
