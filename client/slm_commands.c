#include <stddef.h>
#include <string.h>

#include "client/slm_cmd.h"

#define MAX_COMMANDS 64

static const struct slm_command *commands[MAX_COMMANDS];
static int n_commands;

void slm_command_register(const struct slm_command *cmd)
{
	if (n_commands < MAX_COMMANDS)
		commands[n_commands++] = cmd;
}

const struct slm_command *slm_command_find(const char *name)
{
	for (int i = 0; i < n_commands; i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	return NULL;
}

/* Exposed for `slm help`: the n-th command in registration order. */
const struct slm_command *slm_command_at(int index);
const struct slm_command *slm_command_at(int index)
{
	return index >= 0 && index < n_commands ? commands[index] : NULL;
}
