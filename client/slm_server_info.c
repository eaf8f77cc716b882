/* slm server-info: what a running slmd says about itself (INFO). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "client/slm_rpc.h"
#include "common/cli.h"

static int cmd_server_info(int argc, char **argv)
{
	const char *prog = "slm server-info";
	struct slm_rpc_args a;
	slm_rpc_args_init(&a);
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (slm_rpc_option(&a, prog, argc, argv, &i))
			continue;
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-h") ||
			   !strcmp(argv[i], "--help")) {
			printf("usage: slm server-info [-s URL] [--json]\n%s",
			       slm_rpc_usage);
			return 0;
		} else {
			slm_cli_die(prog, "unknown option '%s'", argv[i]);
		}
	}
	char url[300];
	struct slm_client *c = slm_rpc_connect(&a, prog, url, sizeof(url));
	struct slm_client_info in;
	int rc = slm_client_info(
		c, a.opts.timeout_ms ? a.opts.timeout_ms : 2000, &in);
	slm_client_close(c);
	if (rc)
		slm_cli_die(prog, "%s: %s (%s)", url, slm_client_strerror(rc),
			    slm_client_errname(rc));
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "server", url);
		cJSON_AddStringToObject(o, "version", in.server_version);
		if (in.has_model)
			cJSON_AddStringToObject(o, "model", in.model);
		else
			cJSON_AddNullToObject(o, "model");
		cJSON_AddNumberToObject(o, "n_ctx", in.n_ctx);
		cJSON_AddNumberToObject(o, "n_vocab", in.n_vocab);
		cJSON_AddNumberToObject(o, "max_request", in.max_request);
		cJSON_AddNumberToObject(o, "max_dgram", in.max_dgram);
		cJSON_AddNumberToObject(o, "max_inflight", in.max_inflight);
		cJSON_AddBoolToObject(o, "auth", in.auth);
		char *t = cJSON_PrintUnformatted(o);
		printf("%s\n", t);
		cJSON_free(t);
		cJSON_Delete(o);
		return 0;
	}
	printf("server        %s (%s)\n", url, in.server_version);
	if (in.has_model)
		printf("model         %s (n_ctx %u, n_vocab %u)\n", in.model,
		       in.n_ctx, in.n_vocab);
	else
		printf("model         none loaded\n");
	printf("max request   %u bytes\n", in.max_request);
	printf("max datagram  %u bytes\n", in.max_dgram);
	printf("max inflight  %u per connection\n", in.max_inflight);
	printf("auth          %s\n", in.auth ? "MACs required" : "none");
	return 0;
}

SLM_COMMAND("server-info", cmd_server_info,
	    "what a running slmd serves (-s URL)")
