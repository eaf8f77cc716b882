/*
 * slm: the client and offline tool.  `slm COMMAND [ARGS]`; `slm help`
 * lists the commands.  Each command lives in client/slm_<command>.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "common/version.h"

const struct slm_command *slm_command_at(int index);

static int cmp_names(const void *a, const void *b)
{
	const struct slm_command *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: slm COMMAND [ARGS]   (slm COMMAND --help for "
		     "its options)\n\ncommands:\n");
	const struct slm_command *list[64] = {0};
	int n = 0;
	while (n < 64 && slm_command_at(n)) {
		list[n] = slm_command_at(n);
		n++;
	}
	qsort(list, (size_t)n, sizeof(list[0]), cmp_names);
	for (int i = 0; i < n; i++)
		fprintf(out, "  %-12s %s\n", list[i]->name, list[i]->summary);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 1 : 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("slm %s\n", SLM_VERSION);
		return 0;
	}
	const struct slm_command *cmd = slm_command_find(argv[1]);
	if (!cmd) {
		fprintf(stderr, "slm: unknown command '%s'\n", argv[1]);
		usage(stderr);
		return 1;
	}
	return cmd->run(argc - 1, argv + 1);
}
