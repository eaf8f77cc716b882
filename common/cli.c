#include "common/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

void slm_cli_die(const char *prog, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

int slm_cli_config_option(struct slm_config_args *args, int argc, char **argv,
			  int *i)
{
	const char *opt = argv[*i];
	const char *value = NULL;
	bool is_set;
	if (!strcmp(opt, "-c") || !strcmp(opt, "--config")) {
		is_set = false;
	} else if (!strncmp(opt, "--config=", 9)) {
		is_set = false;
		value = opt + 9;
	} else if (!strcmp(opt, "--set")) {
		is_set = true;
	} else if (!strncmp(opt, "--set=", 6)) {
		is_set = true;
		value = opt + 6;
	} else {
		return 0;
	}
	if (!value) {
		if (*i + 1 >= argc)
			slm_cli_die(argv[0], "option %s needs an argument",
				    opt);
		value = argv[++*i];
	}
	if (!is_set) {
		args->file = value;
		return 1;
	}
	struct slm_error err = {0};
	if (slm_config_args_add_set(args, value, &err))
		slm_cli_die(argv[0], "%s", err.msg);
	return 1;
}

struct slm_config *slm_cli_load_config(const char *prog,
				       const struct slm_config_args *args)
{
	struct slm_config *cfg = slm_config_create();
	if (!cfg)
		slm_cli_die(prog, "out of memory");
	struct slm_error err = {0};
	if (slm_config_apply_args(cfg, args, &err)) {
		slm_config_destroy(cfg);
		slm_cli_die(prog, "%s", err.msg);
	}
	slm_log_set_level(
		(enum slm_log_level)slm_cfg_enum(cfg, SLM_CFG_LOG_LEVEL));
	slm_log_set_target(
		(enum slm_log_target)slm_cfg_enum(cfg, SLM_CFG_LOG_TARGET));
	return cfg;
}
