/*
 * slm bench-serve: the serving core in process (no network): time to
 * first token with and without the prefix cache, and aggregate decode
 * throughput with concurrent streams.
 *
 *   slm bench-serve [-m FILE] [--prompt-len 1500] [--shared 1400]
 *                   [--gen 128] [--streams 1,4,8,16] [--rounds 3]
 *                   [--latency 2000] [--json]
 *                   [-c FILE] [--set K=V]
 *
 * TTFT rows, each round with prompts never seen before:
 *   cold      a prompt of --prompt-len random ids, nothing cached;
 *   repeated  the same prompt again, submitted from another thread (a
 *             different client: the prefix cache is shared by all);
 *   shared    the first --shared ids of it and new ids up to
 *             --prompt-len, from yet another thread.
 * Latency row: --latency N requests one after another, each a 4-token
 * prompt and 1 token, from one thread: p50 / p99 of submit -> DONE (the
 * serving core's share of a 1-token generate through slmd).
 * Throughput rows: N streams at once, each a distinct 16-token prompt and
 * --gen tokens (ignore_eos), aggregate tok/s = tokens generated / wall
 * time from the first submit to the last DONE, each row run --rounds
 * times (median and best reported); a stream that does not end with its
 * --gen tokens counts as a failure.
 *
 * The model is -m FILE, else model.path, else slmd's synthetic model.
 */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/compiler.h"
#include "common/config.h"
#include "common/log.h"
#include "daemon/serve.h"

#define PROG "slm bench-serve"
#define MAX_STREAMS 256

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool done;
	uint64_t t_first_ns; /* when the first TOKENS event came */
	struct slm_usage usage;
	struct slm_timings timings;
	enum slm_finish finish;
};

static void on_event(void *ctx, const struct slm_event *ev)
{
	struct waiter *w = ctx;
	pthread_mutex_lock(&w->mu);
	if (ev->kind == SLM_EVENT_TOKENS) {
		if (!w->t_first_ns)
			w->t_first_ns = slm_now_ns();
	} else {
		w->usage = ev->usage;
		w->timings = ev->timings;
		w->finish = ev->finish;
		w->done = true;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
}

static void waiter_init(struct waiter *w)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
}

static void waiter_wait(struct waiter *w)
{
	pthread_mutex_lock(&w->mu);
	while (!w->done)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* n random ids after BOS (ids 3.. so no control token). */
static void random_ids(int32_t *ids, uint32_t n, uint32_t n_vocab,
		       uint64_t *seed)
{
	ids[0] = 1;
	for (uint32_t i = 1; i < n; i++)
		ids[i] = 3 + (int32_t)(rng_next(seed) % (n_vocab - 3));
}

struct job {
	struct slm_serve *sv;
	const int32_t *ids;
	uint32_t n, max_new;
	struct waiter w;
	uint64_t t_submit;
	int rc;
	char err[256];
};

static void job_submit(struct job *j)
{
	waiter_init(&j->w);
	struct slm_request rq = {.input = SLM_INPUT_IDS,
				 .ids = j->ids,
				 .n_ids = j->n,
				 .on_event = on_event,
				 .ctx = &j->w};
	slm_gen_params_default(&rq.gen);
	rq.gen.temperature = 0;
	rq.gen.max_tokens = j->max_new;
	rq.gen.ignore_eos = true;
	struct slm_error err = {0};
	uint64_t id;
	j->t_submit = slm_now_ns();
	j->rc = slm_serve_submit(j->sv, &rq, &id, &err);
	if (j->rc) {
		snprintf(j->err, sizeof(j->err), "%s", err.msg);
		pthread_mutex_destroy(&j->w.mu);
		pthread_cond_destroy(&j->w.cv);
	}
}

/* A client thread: submit one request and wait for it. */
static void *client_thread(void *arg)
{
	struct job *j = arg;
	job_submit(j);
	if (!j->rc)
		waiter_wait(&j->w);
	return NULL;
}

/* Run one request from a fresh thread; TTFT in ms seen by the client. */
static double ttft_from_thread(struct job *j)
{
	pthread_t t;
	if (pthread_create(&t, NULL, client_thread, j))
		slm_cli_die(PROG, "cannot start a thread");
	pthread_join(t, NULL);
	if (j->rc)
		slm_cli_die(PROG, "submit: %s", j->err);
	return (double)(j->w.t_first_ns - j->t_submit) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint32_t parse_u32(const char *opt, const char *v, uint32_t min,
			  uint32_t max)
{
	char *end = NULL;
	unsigned long x = v ? strtoul(v, &end, 10) : 0;
	if (!v || !*v || *end || x < min || x > max)
		slm_cli_die(PROG, "%s needs a number from %u to %u", opt, min,
			    max);
	return (uint32_t)x;
}

struct tp_row {
	uint32_t streams, failures;
	uint64_t tokens;
	double wall_s, tok_s, ttft_p50_ms, ms_per_token;
	double best_tok_s; /* the best of the rounds */
};

static struct tp_row throughput(struct slm_serve *sv, uint32_t n_vocab,
				uint32_t streams, uint32_t gen, uint64_t *seed)
{
	struct tp_row row = {.streams = streams};
	int32_t(*prompts)[16] = malloc(streams * sizeof(*prompts));
	struct job *jobs = calloc(streams, sizeof(*jobs));
	double *ttft = calloc(streams, sizeof(double));
	if (!prompts || !jobs || !ttft)
		slm_cli_die(PROG, "out of memory");
	uint64_t t0 = slm_now_ns();
	for (uint32_t i = 0; i < streams; i++) {
		random_ids(prompts[i], 16, n_vocab, seed);
		jobs[i] = (struct job){
			.sv = sv, .ids = prompts[i], .n = 16, .max_new = gen};
		job_submit(&jobs[i]);
	}
	double decode_ms = 0;
	uint32_t decode_n = 0;
	for (uint32_t i = 0; i < streams; i++) {
		if (jobs[i].rc) {
			row.failures++;
			continue;
		}
		waiter_wait(&jobs[i].w);
		row.tokens += jobs[i].w.usage.generated_tokens;
		if (jobs[i].w.finish != SLM_FINISH_LENGTH ||
		    jobs[i].w.usage.generated_tokens != gen)
			row.failures++;
		ttft[i] = (double)jobs[i].w.timings.ttft_us / 1e3;
		if (jobs[i].w.usage.generated_tokens > 1) {
			decode_ms += (double)jobs[i].w.timings.decode_us / 1e3 /
				     (jobs[i].w.usage.generated_tokens - 1);
			decode_n++;
		}
	}
	row.wall_s = (double)(slm_now_ns() - t0) / 1e9;
	row.tok_s = row.wall_s > 0 ? (double)row.tokens / row.wall_s : 0;
	row.ttft_p50_ms = median(ttft, (int)streams);
	row.ms_per_token = decode_n ? decode_ms / decode_n : 0;
	free(prompts);
	free(jobs);
	free(ttft);
	return row;
}

static int cmd_bench_serve(int argc, char **argv)
{
	struct slm_config_args args = {0};
	const char *model = NULL;
	uint32_t plen = 1500, shared = 1400, gen = 128, rounds = 3;
	uint32_t n_lat = 2000;
	uint32_t streams[16] = {1, 4, 8, 16}, n_streams = 4;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf("usage: slm bench-serve [-m FILE] "
			       "[--prompt-len N] [--shared N] [--gen N]\n"
			       "       [--streams 1,4,8,16] [--rounds N] "
			       "[--latency N] [--json] [-c FILE] [--set "
			       "K=V]\n");
			return 0;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && v) {
			model = v, i++;
		} else if (!strcmp(a, "--prompt-len")) {
			plen = parse_u32(a, v, 2, 1 << 20), i++;
		} else if (!strcmp(a, "--shared")) {
			shared = parse_u32(a, v, 1, 1 << 20), i++;
		} else if (!strcmp(a, "--gen")) {
			gen = parse_u32(a, v, 1, 1 << 20), i++;
		} else if (!strcmp(a, "--latency")) {
			n_lat = parse_u32(a, v, 0, 10000000), i++;
		} else if (!strcmp(a, "--rounds")) {
			rounds = parse_u32(a, v, 1, 1000), i++;
		} else if (!strcmp(a, "--streams") && v) {
			n_streams = 0;
			char *copy = strdup(v), *save = NULL;
			for (char *t = strtok_r(copy, ",", &save); t;
			     t = strtok_r(NULL, ",", &save)) {
				if (n_streams == 16)
					slm_cli_die(PROG, "--streams: at most "
							  "16 values");
				streams[n_streams++] = parse_u32(
					"--streams", t, 1, MAX_STREAMS);
			}
			free(copy);
			i++;
		} else {
			slm_cli_die(PROG, "unknown option '%s' (see --help)",
				    a);
		}
	}
	if (shared >= plen)
		slm_cli_die(PROG, "--shared must be below --prompt-len");
	struct slm_config *cfg = slm_cli_load_config(PROG, &args);
	struct slm_error err = {0};
	if (model && slm_config_set(cfg, "model.path", model, &err))
		slm_cli_die(PROG, "%s", err.msg);
	if (!strcmp(slm_config_origin(cfg, SLM_CFG_LOG_LEVEL), "default"))
		slm_log_set_level(SLM_LOG_ERROR);
	struct slm_serve *sv = NULL;
	if (slm_serve_create(cfg, NULL, NULL, &sv, &err))
		slm_cli_die(PROG, "%s", err.msg);
	struct slm_serve_info info;
	if (!slm_serve_describe(sv, &info))
		slm_cli_die(PROG, "the serving core did not start");
	if (plen >= info.n_ctx)
		slm_cli_die(PROG, "--prompt-len %u: the context is %u", plen,
			    info.n_ctx);

	/* a warm-up request so thread pools and pages are awake */
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int32_t warm[32];
	random_ids(warm, 32, info.n_vocab, &seed);
	struct job wj = {.sv = sv, .ids = warm, .n = 32, .max_new = 8};
	ttft_from_thread(&wj);

	int32_t *a = malloc(plen * sizeof(int32_t));
	int32_t *b = malloc(plen * sizeof(int32_t));
	double *cold = calloc(rounds, sizeof(double));
	double *rep = calloc(rounds, sizeof(double));
	double *shr = calloc(rounds, sizeof(double));
	uint32_t cached_rep = 0, cached_shr = 0;
	if (!a || !b || !cold || !rep || !shr)
		slm_cli_die(PROG, "out of memory");
	for (uint32_t r = 0; r < rounds; r++) {
		random_ids(a, plen, info.n_vocab, &seed);
		memcpy(b, a, shared * sizeof(int32_t));
		random_ids(b + shared - 1, plen - shared + 1, info.n_vocab,
			   &seed);
		b[shared - 1] = a[shared - 1];
		struct job j1 = {.sv = sv, .ids = a, .n = plen, .max_new = 1};
		struct job j2 = j1,
			   j3 = {.sv = sv, .ids = b, .n = plen, .max_new = 1};
		cold[r] = ttft_from_thread(&j1);
		rep[r] = ttft_from_thread(&j2);
		shr[r] = ttft_from_thread(&j3);
		cached_rep = j2.w.usage.cached_tokens;
		cached_shr = j3.w.usage.cached_tokens;
	}
	double cold_ms = median(cold, (int)rounds);
	double rep_ms = median(rep, (int)rounds);
	double shr_ms = median(shr, (int)rounds);
	double cold_min = cold[0], rep_min = rep[0], shr_min = shr[0];

	/* 1-token generates of a 4-token prompt, one after another */
	double *lat = calloc(n_lat ? n_lat : 1, sizeof(double));
	if (!lat)
		slm_cli_die(PROG, "out of memory");
	for (uint32_t i = 0; i < n_lat; i++) {
		int32_t p4[4];
		random_ids(p4, 4, info.n_vocab, &seed);
		struct job j = {.sv = sv, .ids = p4, .n = 4, .max_new = 1};
		job_submit(&j);
		if (j.rc)
			slm_cli_die(PROG, "submit: %s", j.err);
		waiter_wait(&j.w);
		lat[i] = (double)j.w.timings.total_us;
	}
	double lat_p50 = 0, lat_p99 = 0;
	if (n_lat) {
		qsort(lat, n_lat, sizeof(double), cmp_double);
		lat_p50 = lat[n_lat / 2];
		lat_p99 = lat[(size_t)((double)n_lat * 0.99)];
	}
	free(lat);

	struct tp_row rows[16];
	/* each row --rounds times; the run of median tok/s is reported
	 * (a shared machine's load comes and goes within a second) */
	for (uint32_t i = 0; i < n_streams; i++) {
		struct tp_row runs[64] = {0};
		uint32_t n = SLM_MIN(rounds, 64u);
		for (uint32_t k = 0; k < n; k++)
			runs[k] = throughput(sv, info.n_vocab, streams[i], gen,
					     &seed);
		for (uint32_t x = 1; x < n; x++)
			for (uint32_t y = x;
			     y > 0 && runs[y].tok_s < runs[y - 1].tok_s; y--) {
				struct tp_row t = runs[y];
				runs[y] = runs[y - 1];
				runs[y - 1] = t;
			}
		rows[i] = runs[n / 2];
		for (uint32_t k = 0; k < n; k++) {
			rows[i].failures =
				SLM_MAX(rows[i].failures, runs[k].failures);
			rows[i].best_tok_s =
				SLM_MAX(rows[i].best_tok_s, runs[k].tok_s);
		}
	}
	struct slm_serve_stats st;
	slm_serve_stats_get(sv, &st);

	const char *tier = slm_cfg_enum_name(cfg, SLM_CFG_ENGINE_SIMD);
	if (json) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddStringToObject(root, "model", info.name);
		cJSON_AddBoolToObject(root, "synthetic", info.synthetic);
		cJSON_AddStringToObject(root, "kv_type", info.kv_type);
		cJSON_AddNumberToObject(root, "groups", info.n_groups);
		cJSON *t = cJSON_AddObjectToObject(root, "ttft");
		cJSON_AddNumberToObject(t, "prompt_len", plen);
		cJSON_AddNumberToObject(t, "shared_len", shared);
		cJSON_AddNumberToObject(t, "rounds", rounds);
		cJSON_AddNumberToObject(t, "cold_ms", cold_ms);
		cJSON_AddNumberToObject(t, "repeat_ms", rep_ms);
		cJSON_AddNumberToObject(t, "shared_ms", shr_ms);
		cJSON_AddNumberToObject(t, "cold_min_ms", cold_min);
		cJSON_AddNumberToObject(t, "repeat_min_ms", rep_min);
		cJSON_AddNumberToObject(t, "shared_min_ms", shr_min);
		cJSON_AddNumberToObject(t, "repeat_cached_tokens", cached_rep);
		cJSON_AddNumberToObject(t, "shared_cached_tokens", cached_shr);
		cJSON *l = cJSON_AddObjectToObject(root, "one_token");
		cJSON_AddNumberToObject(l, "requests", n_lat);
		cJSON_AddNumberToObject(l, "p50_us", lat_p50);
		cJSON_AddNumberToObject(l, "p99_us", lat_p99);
		cJSON *arr = cJSON_AddArrayToObject(root, "throughput");
		for (uint32_t i = 0; i < n_streams; i++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddNumberToObject(o, "streams", rows[i].streams);
			cJSON_AddNumberToObject(o, "gen", gen);
			cJSON_AddNumberToObject(o, "tokens",
						(double)rows[i].tokens);
			cJSON_AddNumberToObject(o, "failures",
						rows[i].failures);
			cJSON_AddNumberToObject(o, "wall_s", rows[i].wall_s);
			cJSON_AddNumberToObject(o, "tok_s", rows[i].tok_s);
			cJSON_AddNumberToObject(o, "best_tok_s",
						rows[i].best_tok_s);
			cJSON_AddNumberToObject(o, "ttft_p50_ms",
						rows[i].ttft_p50_ms);
			cJSON_AddNumberToObject(o, "ms_per_token",
						rows[i].ms_per_token);
			cJSON_AddItemToArray(arr, o);
		}
		cJSON_AddNumberToObject(root, "preemptions",
					(double)st.preemptions);
		char *s = cJSON_PrintUnformatted(root);
		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(root);
	} else {
		printf("%s: %s%s, KV %s, %d group%s, simd %s, median of %u "
		       "round%s\n\n",
		       PROG, info.name,
		       info.synthetic ? " (synthetic, random weights)" : "",
		       info.kv_type, info.n_groups,
		       info.n_groups == 1 ? "" : "s", tier, rounds,
		       rounds == 1 ? "" : "s");
		printf("| time to first token | prompt | cached | p50 ms | "
		       "min ms |\n|---|---|---|---|---|\n");
		printf("| cold | %u | 0 | %.2f | %.2f |\n", plen, cold_ms,
		       cold_min);
		printf("| repeated, another client | %u | %u | %.3f | %.3f "
		       "|\n",
		       plen, cached_rep, rep_ms, rep_min);
		printf("| %u shared + %u new, another client | %u | %u | "
		       "%.2f | %.2f |\n\n",
		       shared, plen - shared, plen, cached_shr, shr_ms,
		       shr_min);
		if (n_lat)
			printf("| 1-token generate, 4-token prompt, in process "
			       "| requests | p50 us | p99 us "
			       "|\n|---|---|---|---|"
			       "\n| one after another | %u | %.0f | %.0f |\n\n",
			       n_lat, lat_p50, lat_p99);
		printf("| streams | tokens each | failures | tok/s (median) | "
		       "tok/s (best) | ms/token | TTFT p50 ms |\n"
		       "|---|---|---|---|---|---|---|\n");
		for (uint32_t i = 0; i < n_streams; i++)
			printf("| %u | %u | %u | %.0f | %.0f | %.3f | %.2f "
			       "|\n",
			       rows[i].streams, gen, rows[i].failures,
			       rows[i].tok_s, rows[i].best_tok_s,
			       rows[i].ms_per_token, rows[i].ttft_p50_ms);
	}
	int status = 0;
	for (uint32_t i = 0; i < n_streams; i++)
		status |= rows[i].failures != 0;
	free(a);
	free(b);
	free(cold);
	free(rep);
	free(shr);
	slm_serve_destroy(sv);
	slm_config_destroy(cfg);
	return status;
}

SLM_COMMAND("bench-serve", cmd_bench_serve,
	    "benchmark the serving core in process: TTFT with the prefix "
	    "cache, throughput of concurrent streams")
