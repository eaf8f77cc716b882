/*
 * slm keygen: print a fresh pre-shared key line for a key file.
 *
 *   slm keygen [ID] >> keys    (then chmod 600 keys)
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "client/slm_rpc.h"
#include "common/cli.h"
#include "slm/protocol.h"

static int cmd_keygen(int argc, char **argv)
{
	const char *prog = "slm keygen";
	long id = 1;
	if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") ||
				       !strcmp(argv[1], "--help")))) {
		printf("usage: slm keygen [ID]   (ID in 1..65535, default 1)\n"
		       "prints 'ID HEX': a line for dataplane.key_file\n");
		return argc > 2;
	}
	if (argc == 2)
		id = (long)slm_rpc_number(prog, "ID", argv[1], 1, 65535);
	if (sodium_init() < 0)
		slm_cli_die(prog, "libsodium failed to initialise");
	uint8_t key[SLM_PROTO_KEY_SIZE];
	char hex[2 * SLM_PROTO_KEY_SIZE + 1];
	randombytes_buf(key, sizeof(key));
	sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
	printf("%ld %s\n", id, hex);
	sodium_memzero(key, sizeof(key));
	sodium_memzero(hex, sizeof(hex));
	return 0;
}

SLM_COMMAND("keygen", cmd_keygen,
	    "print a new pre-shared key line for dataplane.key_file")
