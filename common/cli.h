/*
 * cli.h: what every program's command line shares: `-c FILE`,
 * `--set section.key=value`, `--dump-config`, and how a fatal start-up
 * error is reported (one line on stderr, exit status 1).
 */
#ifndef SLM_COMMON_CLI_H
#define SLM_COMMON_CLI_H

#include <stdbool.h>

#include "common/config.h"

/*
 * If argv[*i] is one of the shared config options, consume it (and its
 * argument, advancing *i) into args and return 1; return 0 if it is not
 * one; on a bad option print an error and exit(1).  Accepts `-c FILE`,
 * `--config FILE`, `--config=FILE`, `--set K=V`, `--set=K=V`.
 */
int slm_cli_config_option(struct slm_config_args *args, int argc, char **argv,
			  int *i);

/*
 * Create the config from defaults, file and overrides; on error print
 * "PROG: MESSAGE" and exit(1).  Also applies log.level and log.target.
 */
struct slm_config *slm_cli_load_config(const char *prog,
				       const struct slm_config_args *args);

/* Print "PROG: message" to stderr and exit(1). */
SLM_NORETURN void slm_cli_die(const char *prog, const char *fmt, ...)
	SLM_PRINTF(2, 3);

#endif
