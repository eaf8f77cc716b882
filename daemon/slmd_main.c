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
#include "ctl/server.h"
#include "daemon/daemon.h"

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
	struct ctl_server *ctl = add_ctl(d);
	SLM_INFO("slmd", "slmd %s starting (config %s)", SLM_VERSION,
		 args.file ? args.file : "defaults");
	struct slm_error err = {0};
	int rc = slmd_run(d, &err);
	if (rc)
		SLM_ERROR("slmd", "%s", err.msg);
	slmd_destroy(d);
	ctl_server_destroy(ctl);
	slm_config_destroy(cfg);
	return rc ? 1 : 0;
}
