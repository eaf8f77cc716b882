/*
 * slm ping: round trips to slmd (PING/PONG), with latency percentiles.
 *
 *   slm ping [-s URL] [-n N] [-i US] [-W MS] [--json] [options]
 *
 * By default the client busy-polls for each reply (--spin-us 1000000), as
 * a latency tool should; --spin-us 0 measures a client that sleeps.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "client/slm_rpc.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/hist.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm ping [-s URL] [-n N] [-i US] [-W MS] [--json]\n"
		"  -n N               round trips (default 10)\n"
		"  -i US              pause between them in microseconds "
		"(default 0)\n"
		"  -W MS              wait for each reply (default 1000)\n"
		"  -q                 only the summary\n"
		"  --json             {\"n\",\"lost\",\"min_us\",\"p50_us\","
		"\"p99_us\",\"p999_us\",...}\n"
		"%s",
		slm_rpc_usage);
}

static double us(uint64_t ns)
{
	return round((double)ns / 10.0) / 100.0; /* 0.01 us */
}

static int cmd_ping(int argc, char **argv)
{
	const char *prog = "slm ping";
	struct slm_rpc_args a;
	slm_rpc_args_init(&a);
	long n = 10, interval_us = 0, wait_ms = 1000;
	bool json = false, quiet = false;
	for (int i = 1; i < argc; i++) {
		if (slm_rpc_option(&a, prog, argc, argv, &i))
			continue;
		const char *o = argv[i];
		if (!strcmp(o, "-n") && i + 1 < argc) {
			n = (long)slm_rpc_number(prog, o, argv[++i], 1, 1e9);
		} else if (!strcmp(o, "-i") && i + 1 < argc) {
			interval_us = (long)slm_rpc_number(prog, o, argv[++i],
							   0, 1e9);
		} else if (!strcmp(o, "-W") && i + 1 < argc) {
			wait_ms = (long)slm_rpc_number(prog, o, argv[++i], 1,
						       3600000);
		} else if (!strcmp(o, "-q")) {
			quiet = true;
		} else if (!strcmp(o, "--json")) {
			json = true;
		} else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			slm_cli_die(prog, "unknown option '%s'", o);
		}
	}
	if (!a.spin_set)
		a.opts.spin_us = 1000000;
	char url[300];
	struct slm_client *c = slm_rpc_connect(&a, prog, url, sizeof(url));
	struct slm_hist *h = malloc(sizeof(*h));
	if (!h)
		slm_cli_die(prog, "out of memory");
	slm_hist_init(h);
	long lost = 0;
	int last_err = 0;
	for (long k = 0; k < n; k++) {
		uint64_t rtt = 0;
		int rc = slm_client_ping(c, (uint32_t)wait_ms, &rtt);
		if (rc) {
			lost++;
			last_err = rc;
			if (!quiet && !json)
				printf("ping %ld: %s\n", k + 1,
				       slm_client_strerror(rc));
		} else {
			slm_hist_record(h, rtt);
			if (!quiet && !json && n <= 100)
				printf("ping %ld: %.2f us\n", k + 1, us(rtt));
		}
		if (interval_us && k + 1 < n)
			slm_sleep_ns((uint64_t)interval_us * 1000);
	}
	struct slm_hist_summary s;
	slm_hist_summarize(h, &s);
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddNumberToObject(o, "n", (double)n);
		cJSON_AddNumberToObject(o, "lost", (double)lost);
		cJSON_AddNumberToObject(o, "min_us", us(s.min));
		cJSON_AddNumberToObject(o, "p50_us", us(s.p50));
		cJSON_AddNumberToObject(o, "p90_us", us(s.p90));
		cJSON_AddNumberToObject(o, "p99_us", us(s.p99));
		cJSON_AddNumberToObject(o, "p999_us", us(s.p999));
		cJSON_AddNumberToObject(o, "max_us", us(s.max));
		cJSON_AddNumberToObject(o, "mean_us",
					round(s.mean / 10.0) / 100.0);
		cJSON_AddStringToObject(o, "server", url);
		char *text = cJSON_PrintUnformatted(o);
		printf("%s\n", text);
		cJSON_free(text);
		cJSON_Delete(o);
	} else {
		printf("%s: %ld sent, %ld received, %ld lost\n", url, n,
		       n - lost, lost);
		if (s.count)
			printf("rtt min %.2f us, p50 %.2f us, p99 %.2f us, "
			       "p999 %.2f us, max %.2f us\n",
			       us(s.min), us(s.p50), us(s.p99), us(s.p999),
			       us(s.max));
	}
	free(h);
	slm_client_close(c);
	if (lost == n) {
		fprintf(stderr, "%s: no answer from %s: %s\n", prog, url,
			slm_client_strerror(last_err));
		return 1;
	}
	return 0;
}

SLM_COMMAND("ping", cmd_ping,
	    "round trips to slmd with latency percentiles (-s URL -n N)")
