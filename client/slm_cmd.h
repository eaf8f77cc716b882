/*
 * slm_cmd.h: how a subcommand of `slm` joins the program.
 *
 * Each client/slm_<command>.c defines `static int cmd_x(int argc, char
 * **argv)` (argv[0] is the command name; returns the exit status) and
 * registers it with SLM_COMMAND("name", cmd_x, "one-line summary").
 */
#ifndef SLM_CLIENT_SLM_CMD_H
#define SLM_CLIENT_SLM_CMD_H

typedef int (*slm_command_fn)(int argc, char **argv);

struct slm_command {
	const char *name;
	slm_command_fn run;
	const char *summary;
};

void slm_command_register(const struct slm_command *cmd);
const struct slm_command *slm_command_find(const char *name);

#define SLM_COMMAND(name_, fn_, summary_)                                    \
	static const struct slm_command slm_command_##fn_ = {name_, fn_,     \
							     summary_};      \
	__attribute__((constructor)) static void slm_command_reg_##fn_(void) \
	{                                                                    \
		slm_command_register(&slm_command_##fn_);                    \
	}

#endif
