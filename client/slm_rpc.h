/*
 * slm_rpc.h: what the RPC commands of `slm` (generate, ping, info,
 * bench-rpc) share: the connection options and opening a connection.
 *
 *   -s, --server URL     udp://HOST:PORT, or memif:///SOCKET for a local
 *                        slmd over shared memory (default: the config's
 *                        dataplane.listen, a wildcard address meaning
 *                        this machine)
 *   --key-file FILE      pre-shared keys (default: dataplane.key_file)
 *   --key-id N           which key (default: the file's first)
 *   --timeout MS         a request's whole life (0 = none)
 *   --retries N          unanswered retransmissions before giving up
 *   --rto-ms MS          first retransmission timeout
 *   --spin-us US         busy-poll for replies before sleeping
 *   -c FILE, --set K=V   the config (as every program)
 */
#ifndef SLM_CLIENT_SLM_RPC_H
#define SLM_CLIENT_SLM_RPC_H

#include <stdbool.h>

#include "common/config.h"
#include "slm/client.h"

struct slm_rpc_args {
	struct slm_config_args cfg;
	const char *server;
	const char *key_file;
	long key_id; /* -1: the file's first */
	struct slm_client_opts opts;
	bool spin_set;
};

void slm_rpc_args_init(struct slm_rpc_args *a);

/* Consume argv[*i] (and its argument) if it is a connection option;
 * returns 1 if so, 0 if not; dies on a bad value. */
int slm_rpc_option(struct slm_rpc_args *a, const char *prog, int argc,
		   char **argv, int *i);

/* The usage lines of the connection options. */
extern const char slm_rpc_usage[];

/* Load the config, resolve server and key, open; dies with a message
 * naming the server on failure.  *url receives the URL used. */
struct slm_client *slm_rpc_connect(struct slm_rpc_args *a, const char *prog,
				   char *url, size_t url_size);

/* Parse a decimal option value within [lo, hi] or die. */
double slm_rpc_number(const char *prog, const char *opt, const char *text,
		      double lo, double hi);

#endif
