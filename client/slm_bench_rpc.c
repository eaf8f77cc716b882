/*
 * slm bench-rpc: a load generator for slmd's RPC.
 *
 *   slm bench-rpc [-s URL] (--rate R | --concurrency C) [--duration S]
 *                 [--prompt-len L] [--max-tokens N] [--connections K]
 *                 [--json]
 *
 * Closed loop (--concurrency C): C requests always in flight; each end
 * starts the next.  Open loop (--rate R): a request every 1/R seconds
 * whatever the answers do, latency measured from when it was due (so a
 * stalled server shows up as latency, not as a lower request rate).  One
 * thread drives K connections (default 1) with the asynchronous client
 * API.  Prompts are L token ids, so the tokenizer is not measured.
 *
 * Output: requests/s, tokens/s, errors by code, retransmissions, and
 * percentiles of time to first token, time per token after the first,
 * and total time (successful requests), plus `reply_us`: the time to the
 * final answer of every request, failed ones included.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "client/slm_rpc.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/compiler.h"
#include "common/err.h"
#include "common/hist.h"

#define MAX_CONNS 256
#define N_CODES 32

struct bench {
	struct slm_client *c[MAX_CONNS];
	unsigned n_conns, next_conn;
	bool spin; /* busy-poll instead of sleeping in ppoll */
	struct slm_client_gen gen;
	int32_t *ids;
	uint64_t t_measure; /* after warm-up */
	uint64_t t_end;
	bool closed;
	unsigned concurrency;
	double rate;
	uint64_t inflight;
	uint64_t started, completed, errors, tokens;
	uint64_t errors_by_code[N_CODES];
	uint64_t submit_fail;
	struct slm_hist ttft, per_token, total, reply;
};

/* What a request needs at its end: when it was due. */
struct job {
	struct bench *b;
	uint64_t due;
};

static void on_done(void *ctx, uint32_t id, int status,
		    const struct slm_client_result *r)
{
	(void)id;
	struct job *j = ctx;
	struct bench *b = j->b;
	uint64_t now = slm_now_ns();
	b->inflight--;
	if (j->due >= b->t_measure) {
		b->completed++;
		slm_hist_record(&b->reply, now - j->due);
		if (status) {
			b->errors++;
			unsigned k = (unsigned)(-status);
			if (k < N_CODES)
				b->errors_by_code[k]++;
		} else {
			uint64_t wait =
				r->client_total_ns > now - j->due
					? 0
					: now - j->due - r->client_total_ns;
			b->tokens += r->n_ids;
			if (r->n_ids)
				slm_hist_record(&b->ttft,
						wait + r->client_ttft_ns);
			slm_hist_record(&b->total, now - j->due);
			if (r->n_ids > 1)
				slm_hist_record(&b->per_token,
						(r->client_total_ns -
						 r->client_ttft_ns) /
							(r->n_ids - 1));
		}
	}
	free(j);
}

static void start_one(struct bench *b, uint64_t due)
{
	struct job *j = malloc(sizeof(*j));
	if (!j)
		slm_cli_die("slm bench-rpc", "out of memory");
	j->b = b;
	j->due = due;
	struct slm_client *c = b->c[b->next_conn];
	b->next_conn = (b->next_conn + 1) % b->n_conns;
	int rc = slm_client_submit(c, &b->gen, NULL, on_done, j, NULL);
	b->started++;
	if (rc) {
		/* The connection's window is full (open loop outrunning the
		 * server): an error, counted like the server's. */
		b->submit_fail++;
		if (due >= b->t_measure) {
			b->completed++;
			b->errors++;
			if ((unsigned)(-rc) < N_CODES)
				b->errors_by_code[-rc]++;
		}
		free(j);
		return;
	}
	b->inflight++;
}

/* Drive every connection for up to wait_ns. */
static void drive(struct bench *b, uint64_t wait_ns)
{
	struct pollfd pfd[MAX_CONNS];
	bool any = false;
	for (unsigned i = 0; i < b->n_conns; i++) {
		if (slm_client_poll(b->c[i], 0) > 0)
			any = true;
		pfd[i].fd = slm_client_fd(b->c[i]);
		pfd[i].events = POLLIN;
	}
	if (any || wait_ns == 0 || b->spin)
		return;
	/* Timers (retransmissions) run inside slm_client_poll: wake at
	 * least every millisecond. */
	uint64_t w = SLM_MIN(wait_ns, 1000000ull);
	struct timespec ts = {0, (long)w};
	ppoll(pfd, b->n_conns, &ts, NULL);
}

static cJSON *pcts(const struct slm_hist *h)
{
	struct slm_hist_summary s;
	slm_hist_summarize(h, &s);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddNumberToObject(o, "p50", round((double)s.p50 / 100) / 10);
	cJSON_AddNumberToObject(o, "p99", round((double)s.p99 / 100) / 10);
	cJSON_AddNumberToObject(o, "p999", round((double)s.p999 / 100) / 10);
	cJSON_AddNumberToObject(o, "max", round((double)s.max / 100) / 10);
	cJSON_AddNumberToObject(o, "count", (double)s.count);
	return o;
}

static void print_pcts(const char *name, const struct slm_hist *h)
{
	struct slm_hist_summary s;
	slm_hist_summarize(h, &s);
	if (!s.count) {
		printf("  %-10s -\n", name);
		return;
	}
	printf("  %-10s p50 %10.1f  p99 %10.1f  p999 %10.1f  max %10.1f us "
	       "(%llu)\n",
	       name, (double)s.p50 / 1e3, (double)s.p99 / 1e3,
	       (double)s.p999 / 1e3, (double)s.max / 1e3,
	       (unsigned long long)s.count);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm bench-rpc (--rate R | --concurrency C) [options]\n"
		"  --rate R           open loop: R requests per second\n"
		"  --concurrency C    closed loop: C requests in flight\n"
		"  --duration S       seconds to measure (default 10)\n"
		"  --warmup S         seconds before measuring (default 0)\n"
		"  --prompt-len L     prompt of L token ids (default 4)\n"
		"  --max-tokens N     tokens per request (default 16)\n"
		"  --connections K    connections (default 1)\n"
		"  --temp T           temperature (default: greedy, 0)\n"
		"  --spin-us US       busy-poll for replies (any value > 0)\n"
		"                     instead of sleeping between them\n"
		"  --json             one object with rps, tok_s, errors, "
		"retransmits, ttft_us, total_us ...\n"
		"%s",
		slm_rpc_usage);
}

static int cmd_bench_rpc(int argc, char **argv)
{
	const char *prog = "slm bench-rpc";
	struct slm_rpc_args a;
	slm_rpc_args_init(&a);
	double rate = 0, duration = 10, warmup = 0, temp = 0;
	long conc = 0, prompt_len = 4, max_tokens = 16, conns = 1;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (slm_rpc_option(&a, prog, argc, argv, &i))
			continue;
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(o, "--json")) {
			json = true;
			continue;
		}
		if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!v) {
			usage(stderr);
			slm_cli_die(prog,
				    "unknown option or missing value '%s'", o);
		}
		i++;
		if (!strcmp(o, "--rate"))
			rate = slm_rpc_number(prog, o, v, 0.001, 1e7);
		else if (!strcmp(o, "--concurrency"))
			conc = (long)slm_rpc_number(prog, o, v, 1, 1e6);
		else if (!strcmp(o, "--duration"))
			duration = slm_rpc_number(prog, o, v, 0.01, 86400);
		else if (!strcmp(o, "--warmup"))
			warmup = slm_rpc_number(prog, o, v, 0, 3600);
		else if (!strcmp(o, "--prompt-len"))
			prompt_len = (long)slm_rpc_number(prog, o, v, 1, 1e6);
		else if (!strcmp(o, "--max-tokens"))
			max_tokens = (long)slm_rpc_number(prog, o, v, 0, 1e7);
		else if (!strcmp(o, "--connections"))
			conns = (long)slm_rpc_number(prog, o, v, 1, MAX_CONNS);
		else if (!strcmp(o, "--temp"))
			temp = slm_rpc_number(prog, o, v, 0, 100);
		else {
			usage(stderr);
			slm_cli_die(prog, "unknown option '%s'", o);
		}
	}
	if ((rate > 0) == (conc > 0)) {
		usage(stderr);
		slm_cli_die(prog,
			    "give exactly one of --rate and --concurrency");
	}
	struct bench *b = calloc(1, sizeof(*b));
	if (!b)
		slm_cli_die(prog, "out of memory");
	slm_hist_init(&b->ttft);
	slm_hist_init(&b->per_token);
	slm_hist_init(&b->total);
	slm_hist_init(&b->reply);
	b->ids = malloc((size_t)prompt_len * sizeof(int32_t));
	if (!b->ids)
		slm_cli_die(prog, "out of memory");
	for (long i = 0; i < prompt_len; i++)
		b->ids[i] = (int32_t)(i == 0 ? 1 : 100 + (i * 37) % 1000);
	b->gen.input = SLM_CLIENT_IDS;
	b->gen.ids = b->ids;
	b->gen.n_ids = (size_t)prompt_len;
	b->gen.set = SLM_GEN_MAX_TOKENS | SLM_GEN_TEMPERATURE | SLM_GEN_SEED;
	b->gen.max_tokens = (uint32_t)max_tokens;
	b->gen.temperature = (float)temp;
	b->gen.seed = 1;
	b->closed = conc > 0;
	b->spin = a.opts.spin_us > 0;
	b->concurrency = (unsigned)conc;
	b->rate = rate;
	char url[300];
	for (long i = 0; i < conns; i++) {
		struct slm_rpc_args ai = a;
		b->c[i] = slm_rpc_connect(&ai, prog, url, sizeof(url));
	}
	b->n_conns = (unsigned)conns;

	uint64_t t0 = slm_now_ns();
	b->t_measure = t0 + (uint64_t)(warmup * 1e9);
	b->t_end = b->t_measure + (uint64_t)(duration * 1e9);
	if (b->closed) {
		while (slm_now_ns() < b->t_end) {
			while (b->inflight < b->concurrency) {
				/* A refused submit (the window's slot for the
				 * next id still taken by a request waiting for
				 * its retransmission) frees nothing: drive the
				 * connections instead of trying again at once. */
				uint64_t refused = b->submit_fail;
				start_one(b, slm_now_ns());
				if (b->submit_fail != refused)
					break;
			}
			drive(b, 1000000);
		}
	} else {
		double interval = 1e9 / rate;
		double next = (double)t0;
		for (;;) {
			uint64_t now = slm_now_ns();
			if (now >= b->t_end)
				break;
			while ((double)now >= next && next < (double)b->t_end) {
				start_one(b, (uint64_t)next);
				next += interval;
			}
			uint64_t wait = (double)now < next
						? (uint64_t)(next - (double)now)
						: 0;
			drive(b, wait);
		}
	}
	/* Let the requests in flight finish (they count if they were due in
	 * the measured span), up to 30 s. */
	uint64_t drain_end = slm_now_ns() + 30000000000ull;
	while (b->inflight && slm_now_ns() < drain_end)
		drive(b, 1000000);
	double secs = duration;
	uint64_t retransmits = 0;
	for (unsigned i = 0; i < b->n_conns; i++) {
		struct slm_client_stats st;
		slm_client_stats(b->c[i], &st);
		retransmits += st.retransmits + st.nacks;
	}
	double rps = (double)b->completed / secs;
	double tok_s = (double)b->tokens / secs;
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "server", url);
		cJSON_AddStringToObject(o, "mode",
					b->closed ? "closed" : "open");
		if (b->closed)
			cJSON_AddNumberToObject(o, "concurrency", (double)conc);
		else
			cJSON_AddNumberToObject(o, "rate", rate);
		cJSON_AddNumberToObject(o, "connections", (double)conns);
		cJSON_AddNumberToObject(o, "duration_s", duration);
		cJSON_AddNumberToObject(o, "prompt_len", (double)prompt_len);
		cJSON_AddNumberToObject(o, "max_tokens", (double)max_tokens);
		cJSON_AddNumberToObject(o, "requests", (double)b->completed);
		cJSON_AddNumberToObject(o, "rps", round(rps * 10) / 10);
		cJSON_AddNumberToObject(o, "tokens", (double)b->tokens);
		cJSON_AddNumberToObject(o, "tok_s", round(tok_s * 10) / 10);
		cJSON_AddNumberToObject(o, "errors", (double)b->errors);
		cJSON *ec = cJSON_AddObjectToObject(o, "errors_by_code");
		for (int k = 1; k < N_CODES; k++)
			if (b->errors_by_code[k])
				cJSON_AddNumberToObject(
					ec, slm_errname(-k),
					(double)b->errors_by_code[k]);
		cJSON_AddNumberToObject(o, "retransmits", (double)retransmits);
		cJSON_AddNumberToObject(o, "unfinished", (double)b->inflight);
		cJSON_AddItemToObject(o, "ttft_us", pcts(&b->ttft));
		cJSON_AddItemToObject(o, "per_token_us", pcts(&b->per_token));
		cJSON_AddItemToObject(o, "total_us", pcts(&b->total));
		cJSON_AddItemToObject(o, "reply_us", pcts(&b->reply));
		char *t = cJSON_PrintUnformatted(o);
		printf("%s\n", t);
		cJSON_free(t);
		cJSON_Delete(o);
	} else {
		printf("%s: %s loop, ", url, b->closed ? "closed" : "open");
		if (b->closed)
			printf("concurrency %ld", conc);
		else
			printf("%.1f requests/s", rate);
		printf(", %ld connection%s, %.1f s, prompt %ld ids, %ld "
		       "tokens\n",
		       conns, conns == 1 ? "" : "s", duration, prompt_len,
		       max_tokens);
		printf("  requests   %llu (%.1f/s), errors %llu, tokens %llu "
		       "(%.1f/s), retransmits %llu\n",
		       (unsigned long long)b->completed, rps,
		       (unsigned long long)b->errors,
		       (unsigned long long)b->tokens, tok_s,
		       (unsigned long long)retransmits);
		print_pcts("ttft", &b->ttft);
		print_pcts("per token", &b->per_token);
		print_pcts("total", &b->total);
		print_pcts("reply", &b->reply);
		for (int k = 1; k < N_CODES; k++)
			if (b->errors_by_code[k])
				printf("  error %s (%s): %llu\n",
				       slm_errname(-k), slm_strerror(-k),
				       (unsigned long long)
					       b->errors_by_code[k]);
		if (b->inflight)
			printf("  %llu requests unfinished after 30 s\n",
			       (unsigned long long)b->inflight);
	}
	for (unsigned i = 0; i < b->n_conns; i++)
		slm_client_close(b->c[i]);
	free(b->ids);
	int status = b->inflight ? 1 : 0;
	free(b);
	return status;
}

SLM_COMMAND("bench-rpc", cmd_bench_rpc,
	    "load generator: --rate R or --concurrency C against slmd")
