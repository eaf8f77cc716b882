/*
 * fuzz_ctl: the control server's answer to an arbitrary request line.
 * Whatever the bytes, the answer is one line holding one JSON object with
 * "ok" true (and a "result" object) or false (and an "error" object with
 * a string code and message), and nothing leaks or crashes.  The server
 * runs without a daemon, so commands that would change slmd answer
 * ESTATE; topology is left out (each call loads hwloc: too slow to fuzz).
 *
 * Seeds (tests/fuzz/seeds/fuzz_ctl): one request of each kind.
 */
// fuzz-sources: ctl/commands.c ctl/registry.c ctl/perf.c ctl/metrics.c ctl/server.c daemon/daemon.c common/config.c common/err.c common/log.c common/clock.c common/hist.c numa/placement.c numa/placement_print.c numa/topology.c numa/cpulist.c
// fuzz-libs: -lcjson -linih -lhwloc -lmicrohttpd -lsystemd
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "ctl/server.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ctl_server *server;
static struct slm_config *cfg;

static void check(int cond)
{
	if (!cond)
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	slm_log_set_level(SLM_LOG_ERROR);
	server = ctl_server_create();
	cfg = slm_config_create();
	check(server && cfg);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A request line never holds its newline; topology is too slow. */
	if (memchr(data, '\n', size) || memmem(data, size, "topology", 8))
		return 0;
	char *out =
		ctl_server_answer(server, NULL, cfg, (const char *)data, size);
	check(out != NULL);
	size_t len = strlen(out);
	check(len > 0 && out[len - 1] == '\n');
	check(memchr(out, '\n', len - 1) == NULL);
	cJSON *r = cJSON_Parse(out);
	check(cJSON_IsObject(r));
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(r, "ok");
	check(cJSON_IsBool(ok));
	if (cJSON_IsTrue(ok)) {
		check(cJSON_IsObject(
			cJSON_GetObjectItemCaseSensitive(r, "result")));
	} else {
		const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");
		check(cJSON_IsString(
			cJSON_GetObjectItemCaseSensitive(e, "code")));
		check(cJSON_IsString(
			cJSON_GetObjectItemCaseSensitive(e, "message")));
	}
	cJSON_Delete(r);
	free(out);
	return 0;
}
