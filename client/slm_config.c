/* slm config: print the effective configuration (defaults, -c, --set). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "common/cli.h"

static int cmd_config(int argc, char **argv)
{
	struct slm_config_args args = {0};
	bool markdown = false;
	for (int i = 1; i < argc; i++) {
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		if (!strcmp(argv[i], "--markdown")) {
			markdown = true;
			continue;
		}
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("usage: slm config [-c FILE] [--set K=V]... "
			       "[--markdown]\n"
			       "  --markdown  the key reference of "
			       "docs/config.md\n");
			return 0;
		}
		slm_cli_die("slm config", "unknown option '%s'", argv[i]);
	}
	if (markdown)
		return slm_config_doc_markdown(stdout) ? 1 : 0;
	struct slm_config *cfg = slm_cli_load_config("slm config", &args);
	int rc = slm_config_dump(cfg, stdout);
	slm_config_destroy(cfg);
	return rc ? 1 : 0;
}

SLM_COMMAND("config", cmd_config,
	    "print the effective configuration (defaults, -c FILE, --set)")
