/*
 * slm bench: prompt processing and token generation speed of a model, as
 * llama-bench measures them, beside the limit memory bandwidth sets.
 *
 *   slm bench -m FILE [-t N] [-p 128,512] [-n 64] [-r 5] [--json]
 *
 *   ppN  N random tokens through an empty sequence, in forward calls of
 *        engine.batch tokens (llama.cpp's n_ubatch, 512), the last token's
 *        logits computed: tokens per second;
 *   tgN  N tokens one per call from an empty sequence, logits each time.
 *
 * Each test runs once to warm up, then -r times; the table gives the mean
 * and standard deviation of the repetitions' tokens per second.  The same
 * run measures the memory read bandwidth with the forward pass's threads
 * (engine/membw.h) and divides it by the bytes of weights one decode step
 * reads (every matrix, the norms, one embedding row): the decode limit,
 * and tg as a share of it.  The load average is printed: the figures of a
 * busy machine say little.
 *
 * --json prints one object:
 *   {"model":..,"threads":..,"simd":..,"kv_type":..,"bandwidth_gbs":..,
 *    "bytes_per_token":..,"decode_limit_tok_s":..,"load_average":..,
 *    "results":[{"test":"pp512","tok_s":..,"stddev":..},
 *               {"test":"tg64","tok_s":..,"stddev":..,"pct_of_limit":..}]}
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "client/slm_engine_cli.h"
#include "common/cli.h"
#include "common/clock.h"
#include "engine/membw.h"
#include "engine/quant.h"

#define PROG "slm bench"
#define MAX_TESTS 16

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm bench -m FILE [-t N] [-p 128,512] [-n 64] [-r 5] "
		"[--json]\n"
		"  -p LIST             prompt lengths to process (0: none; "
		"default 512)\n"
		"  -n LIST             tokens to generate (0: none; default "
		"64)\n"
		"  -r N                repetitions (default 5)\n"
		"  --bw-mb N           MiB read to measure the bandwidth "
		"(default 512)\n"
		"  --json              one JSON object instead of the table\n"
		"  --profile           where each test's time goes, per "
		"step of the forward pass\n"
		"%s",
		slm_engine_cli_help);
}

static int parse_list(const char *v, uint32_t *out, int max)
{
	int n = 0;
	while (*v) {
		char *end = NULL;
		long x = strtol(v, &end, 10);
		if (end == v || x < 0 || x > 1000000 || (*end && *end != ',') ||
		    n == max)
			return -1;
		out[n++] = (uint32_t)x;
		v = *end ? end + 1 : end;
	}
	return n;
}

struct result {
	char name[32];
	double mean, sd;
	bool tg;
	struct slm_forward_profile prof;
};

static void print_profile(const struct result *r)
{
	const struct slm_forward_profile *p = &r->prof;
	double total = 0;
	for (int s = 0; s < SLM_FWD_STEP__COUNT; s++)
		total += p->ns[s];
	if (!p->tokens || total <= 0)
		return;
	printf("\n%s: %llu calls, %llu tokens; thread time per token %.3f ms "
	       "(%d threads)\n",
	       r->name, (unsigned long long)p->calls,
	       (unsigned long long)p->tokens, total / 1e6 / (double)p->tokens,
	       p->n_threads);
	printf("| step                          | ms/token | share |\n");
	printf("|-------------------------------|---------:|------:|\n");
	for (int s = 0; s < SLM_FWD_STEP__COUNT; s++)
		printf("| %-29s | %8.4f | %4.1f%% |\n",
		       slm_forward_step_name((enum slm_forward_step)s),
		       p->ns[s] / 1e6 / (double)p->tokens,
		       100 * p->ns[s] / total);
}

static double stats(const double *v, int n, double *sd)
{
	double m = 0, s = 0;
	for (int i = 0; i < n; i++)
		m += v[i];
	m /= n;
	for (int i = 0; i < n; i++)
		s += (v[i] - m) * (v[i] - m);
	*sd = n > 1 ? sqrt(s / (n - 1)) : 0;
	return m;
}

/* One repetition: seconds for n tokens, fed in calls of `chunk`. */
static double run_once(struct slm_engine *e, struct slm_kv_seq *seq,
		       const int32_t *ids, uint32_t n, uint32_t chunk,
		       float *logits)
{
	struct slm_error err = {0};
	slm_kv_seq_truncate(e->kv, seq, 0);
	uint64_t t0 = slm_now_ns();
	int rc;
	if (chunk == 1) {
		rc = 0;
		for (uint32_t i = 0; !rc && i < n; i++)
			rc = slm_engine_feed(e, seq, ids + i, 1, 1, false,
					     logits, &err);
	} else {
		rc = slm_engine_feed(e, seq, ids, n, chunk, false, logits,
				     &err);
	}
	if (rc)
		slm_cli_die(PROG, "%s", err.msg);
	return (double)(slm_now_ns() - t0) * 1e-9;
}

static int cmd_bench(int argc, char **argv)
{
	struct slm_engine_cli o = {.prog = PROG};
	uint32_t pp[MAX_TESTS] = {512}, tg[MAX_TESTS] = {64};
	int n_pp = 1, n_tg = 1, reps = 5;
	size_t bw_mb = 512;
	bool json = false, profile = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (slm_engine_cli_option(&o, argc, argv, &i))
			continue;
		if (!strcmp(a, "--json")) {
			json = true;
			continue;
		}
		if (!strcmp(a, "--profile")) {
			profile = true;
			continue;
		}
		if (strcmp(a, "-p") && strcmp(a, "-n") && strcmp(a, "-r") &&
		    strcmp(a, "--bw-mb"))
			slm_cli_die(PROG, "unknown option '%s' (see --help)",
				    a);
		if (i + 1 >= argc)
			slm_cli_die(PROG, "%s needs a value", a);
		const char *v = argv[++i];
		if (!strcmp(a, "-p")) {
			if ((n_pp = parse_list(v, pp, MAX_TESTS)) < 0)
				slm_cli_die(PROG, "-p: bad list '%s'", v);
		} else if (!strcmp(a, "-n")) {
			if ((n_tg = parse_list(v, tg, MAX_TESTS)) < 0)
				slm_cli_die(PROG, "-n: bad list '%s'", v);
		} else {
			char *end = NULL;
			long x = strtol(v, &end, 10);
			if (!*v || *end || x < 1 || x > 100000)
				slm_cli_die(PROG, "%s needs a positive number",
					    a);
			if (!strcmp(a, "-r"))
				reps = (int)x;
			else
				bw_mb = (size_t)x;
		}
	}
	uint32_t longest = 1;
	for (int i = 0; i < n_pp; i++)
		longest = SLM_MAX(longest, pp[i]);
	for (int i = 0; i < n_tg; i++)
		longest = SLM_MAX(longest, tg[i]);
	struct slm_engine_params ep;
	struct slm_config *cfg = slm_engine_cli_setup(&o, &ep);
	ep.n_ctx = SLM_MAX(ep.n_ctx, longest);
	ep.vocab = false;
	struct slm_engine *e = slm_engine_cli_open(&o, &ep);
	const uint32_t nv = slm_forward_n_vocab(e->fwd);

	int32_t *ids = malloc((size_t)longest * sizeof(int32_t));
	float *logits = malloc((size_t)nv * sizeof(float));
	double *tps = malloc((size_t)reps * sizeof(double));
	if (!ids || !logits || !tps)
		slm_cli_die(PROG, "out of memory");
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (uint32_t i = 0; i < longest; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		ids[i] = (int32_t)(x % nv);
	}
	struct slm_kv_seq seq;
	if (slm_engine_seq_init(e, &seq))
		slm_cli_die(PROG, "out of memory");

	double load[3] = {0, 0, 0};
	if (getloadavg(load, 3) < 0)
		load[0] = -1;
	const double bw = slm_membw_read(e->pool, bw_mb << 20, 3);
	const uint64_t bpt =
		slm_forward_weight_bytes_per_token(e->model, &e->weights->t);
	const double limit = bw > 0 ? bw * 1e9 / (double)bpt : 0;

	struct result res[2 * MAX_TESTS];
	int n_res = 0;
	for (int k = 0; k < n_pp + n_tg; k++) {
		bool is_tg = k >= n_pp;
		uint32_t n = is_tg ? tg[k - n_pp] : pp[k];
		if (!n)
			continue;
		uint32_t chunk = is_tg ? 1 : 0;
		run_once(e, &seq, ids, n, chunk, logits); /* warm-up */
		if (profile)
			slm_forward_profile_enable(e->fwd, true);
		for (int r = 0; r < reps; r++)
			tps[r] = n / run_once(e, &seq, ids, n, chunk, logits);
		struct result *R = &res[n_res++];
		slm_forward_profile_get(e->fwd, &R->prof);
		slm_forward_profile_enable(e->fwd, false);
		snprintf(R->name, sizeof(R->name), "%s%u", is_tg ? "tg" : "pp",
			 n);
		R->mean = stats(tps, reps, &R->sd);
		R->tg = is_tg;
	}
	double load_end[3] = {0, 0, 0};
	if (getloadavg(load_end, 3) < 0)
		load_end[0] = -1;

	const char *name = strrchr(ep.model_path, '/');
	name = name ? name + 1 : ep.model_path;
	const char *simd = slm_simd_name(slm_quant_simd());
	if (json) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "model", name);
		cJSON_AddNumberToObject(root, "threads", ep.n_threads);
		cJSON_AddStringToObject(root, "simd", simd);
		cJSON_AddStringToObject(root, "kv_type",
					slm_kv_type_name(ep.kv_type));
		cJSON_AddNumberToObject(root, "bandwidth_gbs", bw);
		cJSON_AddNumberToObject(root, "bytes_per_token", (double)bpt);
		cJSON_AddNumberToObject(root, "decode_limit_tok_s", limit);
		cJSON_AddNumberToObject(root, "load_average", load[0]);
		cJSON_AddNumberToObject(root, "load_average_end", load_end[0]);
		cJSON *arr = cJSON_AddArrayToObject(root, "results");
		for (int i = 0; i < n_res; i++) {
			cJSON *t = cJSON_CreateObject();
			cJSON_AddStringToObject(t, "test", res[i].name);
			cJSON_AddNumberToObject(t, "tok_s", res[i].mean);
			cJSON_AddNumberToObject(t, "stddev", res[i].sd);
			if (res[i].tg && limit > 0)
				cJSON_AddNumberToObject(t, "pct_of_limit",
							100 * res[i].mean /
								limit);
			cJSON_AddItemToArray(arr, t);
		}
		char *s = cJSON_PrintUnformatted(root);
		if (!s)
			slm_cli_die(PROG, "out of memory");
		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(root);
	} else {
		printf("model %s: %s, %.2f B parameters, %.1f MiB of weights\n",
		       name, slm_arch_name(e->model->hp.arch),
		       (double)e->model->n_params * 1e-9,
		       (double)e->weights->bytes / (1 << 20));
		printf("%d threads, %s, KV %s, batch %u; load average %.2f at "
		       "start, %.2f at end\n",
		       ep.n_threads, simd, slm_kv_type_name(ep.kv_type),
		       ep.max_batch, load[0], load_end[0]);
		printf("memory read bandwidth %.1f GB/s (%d threads); weights "
		       "read per token %.1f MB; decode limit %.1f tok/s\n\n",
		       bw, ep.n_threads, (double)bpt * 1e-6, limit);
		printf("| test   |            t/s | of decode limit |\n");
		printf("|--------|---------------:|----------------:|\n");
		for (int i = 0; i < n_res; i++) {
			char pct[32] = "";
			if (res[i].tg && limit > 0)
				snprintf(pct, sizeof(pct), "%.0f %%",
					 100 * res[i].mean / limit);
			printf("| %-6s | %7.2f ± %5.2f | %15s |\n", res[i].name,
			       res[i].mean, res[i].sd, pct);
		}
		for (int i = 0; profile && i < n_res; i++)
			print_profile(&res[i]);
	}
	slm_kv_seq_free(e->kv, &seq);
	free(ids);
	free(logits);
	free(tps);
	slm_engine_close(e);
	slm_config_destroy(cfg);
	return 0;
}

SLM_COMMAND("bench", cmd_bench,
	    "prompt and generation speed of a model beside its bandwidth "
	    "limit")
