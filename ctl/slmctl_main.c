/*
 * slmctl: control and observe a running slmd through its control socket.
 *
 *   slmctl [-s SOCKET] [-c FILE] [--set K=V] COMMAND [ARGS] [--json]
 *
 * Exit status: 0 ok, 1 error, 2 cannot connect.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/version.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: slmctl [-s SOCKET] [-c FILE] [--set K=V] COMMAND "
		     "[ARGS] [--json]\n");
}

int main(int argc, char **argv)
{
	struct slm_config_args args = {0};
	const char *socket_path = NULL;
	/* Options may stand anywhere; the other words form the command. */
	char *words[64];
	int n_words = 0;
	for (int i = 1; i < argc; i++) {
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		if (!strcmp(argv[i], "-s") && i + 1 < argc) {
			socket_path = argv[++i];
		} else if (!strcmp(argv[i], "--version")) {
			printf("slmctl %s\n", SLM_VERSION);
			return 0;
		} else if (!strcmp(argv[i], "-h") ||
			   !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' && strcmp(argv[i], "--json")) {
			usage(stderr);
			slm_cli_die("slmctl", "unknown option '%s'", argv[i]);
		} else if (n_words < (int)SLM_ARRAY_LEN(words)) {
			words[n_words++] = argv[i];
		}
	}
	struct slm_config *cfg = slm_cli_load_config("slmctl", &args);
	if (!socket_path)
		socket_path = slm_cfg_str(cfg, SLM_CFG_CTL_SOCKET);
	if (n_words == 0) {
		usage(stderr);
		slm_config_destroy(cfg);
		return 1;
	}

	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(socket_path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "slmctl: socket path too long: %s\n",
			socket_path);
		slm_config_destroy(cfg);
		return 1;
	}
	strcpy(addr.sun_path, socket_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		fprintf(stderr,
			"slmctl: cannot connect to %s: %s (is slmd running?)\n",
			socket_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		slm_config_destroy(cfg);
		return 2;
	}
	fprintf(stderr, "slmctl: '%s': this slmd has no control server yet\n",
		words[0]);
	close(fd);
	slm_config_destroy(cfg);
	return 1;
}
