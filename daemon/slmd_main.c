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
#include "daemon/daemon.h"
#include "daemon/notify.h"
#include "daemon/testhook.h"

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

	struct slmd *d = slmd_create(cfg, &args);
	if (!d)
		slm_cli_die("slmd", "out of memory");
	SLM_INFO("slmd", "slmd %s starting (config %s)", SLM_VERSION,
		 args.file ? args.file : "defaults");
	struct systemd_parts sd_parts = {0};
	systemd_attach(d, cfg, &sd_parts);
	struct slm_error err = {0};
	int rc = slmd_run(d, &err);
	if (rc)
		SLM_ERROR("slmd", "%s", err.msg);
	slmd_destroy(d);
	systemd_detach(&sd_parts);
	slm_config_destroy(cfg);
	return rc ? 1 : 0;
}
