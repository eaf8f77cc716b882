/* slm_rpc.c: connection options of the RPC commands.  See slm_rpc.h. */
#include "client/slm_rpc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "dataplane/keys.h"
#include "dataplane/peer.h"

const char slm_rpc_usage[] =
	"  -s, --server URL   udp://HOST:PORT or memif:///SOCKET (default: "
	"dataplane.listen)\n"
	"  --key-file FILE    pre-shared keys (default: dataplane.key_file)\n"
	"  --key-id N         key to use (default: the file's first)\n"
	"  --timeout MS       give a request up after MS (0: never)\n"
	"  --retries N        unanswered retransmissions before giving up\n"
	"  --rto-ms MS        first retransmission timeout\n"
	"  --spin-us US       busy-poll for replies this long before sleeping\n"
	"  -c FILE, --set K=V configuration, as for slmd\n";

void slm_rpc_args_init(struct slm_rpc_args *a)
{
	memset(a, 0, sizeof(*a));
	a->key_id = -1;
	slm_client_opts_default(&a->opts);
}

double slm_rpc_number(const char *prog, const char *opt, const char *text,
		      double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (end == text || *end || errno || v < lo || v > hi)
		slm_cli_die(prog, "%s: '%s' is not a number in %g..%g", opt,
			    text, lo, hi);
	return v;
}

static const char *arg_of(const char *prog, int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		slm_cli_die(prog, "option %s needs an argument", argv[*i]);
	return argv[++*i];
}

int slm_rpc_option(struct slm_rpc_args *a, const char *prog, int argc,
		   char **argv, int *i)
{
	if (slm_cli_config_option(&a->cfg, argc, argv, i))
		return 1;
	const char *o = argv[*i];
	if (!strcmp(o, "-s") || !strcmp(o, "--server")) {
		a->server = arg_of(prog, argc, argv, i);
	} else if (!strcmp(o, "--key-file")) {
		a->key_file = arg_of(prog, argc, argv, i);
	} else if (!strcmp(o, "--key-id")) {
		a->key_id = (long)slm_rpc_number(
			prog, o, arg_of(prog, argc, argv, i), 1, 65535);
	} else if (!strcmp(o, "--timeout")) {
		a->opts.timeout_ms = (uint32_t)slm_rpc_number(
			prog, o, arg_of(prog, argc, argv, i), 0, 86400000);
	} else if (!strcmp(o, "--retries")) {
		a->opts.retries = (uint32_t)slm_rpc_number(
			prog, o, arg_of(prog, argc, argv, i), 0, 1000);
	} else if (!strcmp(o, "--rto-ms")) {
		a->opts.rto_ms = (uint32_t)slm_rpc_number(
			prog, o, arg_of(prog, argc, argv, i), 1, 60000);
	} else if (!strcmp(o, "--spin-us")) {
		a->opts.spin_us = (uint32_t)slm_rpc_number(
			prog, o, arg_of(prog, argc, argv, i), 0, 10000000);
		a->spin_set = true;
	} else {
		return 0;
	}
	return 1;
}

/* A wildcard listen address means "this machine" to a client. */
static void default_server(const struct slm_config *cfg, char *url, size_t size)
{
	const char *listen = slm_cfg_str(cfg, SLM_CFG_DP_LISTEN);
	struct dp_url u;
	struct slm_error err = {0};
	if (dp_url_parse(listen, &u, &err)) {
		snprintf(url, size, "%s", listen);
		return;
	}
	if (!strcmp(u.host, "0.0.0.0"))
		snprintf(url, size, "%s://127.0.0.1:%u", u.scheme, u.port);
	else if (!strcmp(u.host, "::"))
		snprintf(url, size, "%s://[::1]:%u", u.scheme, u.port);
	else
		snprintf(url, size, "%s", listen);
}

struct slm_client *slm_rpc_connect(struct slm_rpc_args *a, const char *prog,
				   char *url, size_t url_size)
{
	struct slm_config *cfg = slm_cli_load_config(prog, &a->cfg);
	if (a->server)
		snprintf(url, url_size, "%s", a->server);
	else
		default_server(cfg, url, url_size);
	const char *key_file = a->key_file;
	if (!key_file && slm_cfg_str(cfg, SLM_CFG_DP_KEY_FILE)[0])
		key_file = slm_cfg_str(cfg, SLM_CFG_DP_KEY_FILE);
	if (key_file) {
		struct dp_keys *k = NULL;
		struct slm_error err = {0};
		if (dp_keys_load(key_file, false, &k, &err)) {
			slm_config_destroy(cfg);
			slm_cli_die(prog, "%s", err.msg);
		}
		uint16_t id = a->key_id > 0 ? (uint16_t)a->key_id
					    : dp_keys_id_at(k, 0);
		const uint8_t *key = dp_keys_find(k, id);
		if (!key) {
			dp_keys_destroy(k);
			slm_config_destroy(cfg);
			slm_cli_die(prog, "%s has no key %u", key_file, id);
		}
		a->opts.key_id = id;
		memcpy(a->opts.key, key, sizeof(a->opts.key));
		dp_keys_destroy(k);
	}
	slm_config_destroy(cfg);
	struct slm_client *c = NULL;
	char msg[300];
	int rc = slm_client_open(url, &a->opts, &c, msg, sizeof(msg));
	if (rc)
		slm_cli_die(prog, "%s (%s)", msg, slm_client_errname(rc));
	return c;
}
