/*
 * slmd: the inference appliance daemon.
 *
 *   slmd [-c FILE] [--set section.key=value]... [--dump-config]
 *
 * Start-up errors (a bad config line, a model that will not load) are one
 * line on stderr and exit status 1.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/log.h"
#include "common/version.h"
#include "dataplane/dataplane.h"

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
 * The RPC dataplane.  It starts before any model so slmd answers PING and
 * INFO at once; until the serving core is handed over it refuses generate
 * requests with "no model loaded".  When the serving core lands: load the
 * model after start_dataplane, then dp_dataplane_attach_serve(dp,
 * &dp_serve_core_ops, serve); stop the dataplane before the serving core.
 */
static struct dp_dataplane *
start_dataplane(const struct slm_config *cfg,
		const struct dp_serve_ops *serve_ops, void *serve)
{
	struct dp_dataplane *dp = NULL;
	struct slm_error err = {0};
	if (dp_dataplane_start(cfg, serve_ops, serve, &dp, &err))
		slm_cli_die("slmd", "%s", err.msg);
	SLM_INFO("dataplane", "listening on %s: %s", dp_dataplane_url(dp),
		 dp_dataplane_describe(dp));
	return dp;
}

static void stop_dataplane(struct dp_dataplane *dp)
{
	struct dp_counters c;
	char line[4096];
	dp_dataplane_counters(dp, &c);
	dp_counters_format(&c, line, sizeof(line));
	SLM_INFO("dataplane", "counters: %s", line[0] ? line : "(all zero)");
	dp_dataplane_stop(dp);
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

	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);

	SLM_INFO("slmd", "slmd %s started (config %s)", SLM_VERSION,
		 args.file ? args.file : "defaults");
	struct dp_dataplane *dp = start_dataplane(cfg, NULL, NULL);
	SLM_INFO("slmd", "ready: serving on %s", dp_dataplane_url(dp));
	int sig = 0;
	sigwait(&stop, &sig);
	SLM_INFO("slmd", "stopping on %s", strsignal(sig));
	stop_dataplane(dp);
	slm_config_destroy(cfg);
	return 0;
}
