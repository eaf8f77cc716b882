/*
 * slm generate: generate text through a running slmd.
 *
 *   slm generate [-s URL] [--chat [--system TEXT]] [sampling flags]
 *                [--max-tokens N] [--json] PROMPT...
 *   slm generate --ids 1,2,3 ...
 *
 * Without --json the text streams to stdout as it is generated; with it,
 * one object is printed at the end:
 *   {"ids":[...],"text":"...","finish":"stop|length|...",
 *    "usage":{"prompt_tokens":..,"cached_tokens":..,"generated_tokens":..},
 *    "timings":{"queue_us":..,"prefill_us":..,"ttft_us":..,"total_us":..}}
 * A failure is a message on stderr and exit status 1 (with --json also an
 * object {"error":{"code":"ESTATE","message":"..."}} on stdout).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/slm_cmd.h"
#include "client/slm_rpc.h"
#include "common/cli.h"

#define MAX_STOP 16

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm generate [options] PROMPT...   (PROMPT '-': "
		"stdin)\n"
		"  --ids 1,2,3        token ids instead of a text prompt\n"
		"  --chat             the prompt is a user message (chat "
		"template)\n"
		"  --system TEXT      a system message first (with --chat)\n"
		"  -n, --max-tokens N tokens to generate\n"
		"  --temp T           temperature (0: greedy)\n"
		"  --top-k K, --top-p P, --min-p P\n"
		"  --repeat-penalty R, --repeat-last-n N\n"
		"  --frequency-penalty F, --presence-penalty F\n"
		"  --seed S           sampling seed\n"
		"  --stop TEXT        stop string (repeatable, up to 16)\n"
		"  --ignore-eos       keep going past end-of-generation\n"
		"  --parse-special    match special-token text in the prompt\n"
		"  --cache-ns NAME    prefix cache namespace\n"
		"  --deadline-ms MS   server-side deadline\n"
		"  --json             one JSON object at the end\n"
		"  -v                 timings on stderr at the end\n"
		"%s",
		slm_rpc_usage);
}

static int parse_ids(const char *text, int32_t **out, size_t *n)
{
	/* At most one id per two characters ("1,2,3"). */
	size_t cap = strlen(text) / 2 + 1, k = 0;
	int32_t *ids = malloc(cap * sizeof(*ids));
	if (!ids)
		return -1;
	const char *p = text;
	while (*p && k < cap) {
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p || errno || v < 0 || v > INT32_MAX)
			break;
		ids[k++] = (int32_t)v;
		p = end;
		if (*p != ',')
			break;
		p++;
	}
	if (*p || k == 0) {
		free(ids);
		return -1;
	}
	*out = ids;
	*n = k;
	return 0;
}

static char *read_stdin(void)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + len, 1, cap - len - 1, stdin)) > 0) {
		len += got;
		if (cap - len <= 1) {
			char *g = realloc(buf, cap * 2);
			if (!g) {
				free(buf);
				return NULL;
			}
			buf = g;
			cap *= 2;
		}
	}
	if (buf)
		buf[len] = '\0';
	return buf;
}

/* Ctrl-C: cancel the request (the server stops generating) and exit 130
 * once it has ended; a second Ctrl-C kills. */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
	(void)sig;
	if (interrupted)
		_exit(130);
	interrupted = 1;
}

static int print_chunk(void *ctx, const char *text, size_t len,
		       const int32_t *ids, size_t n_ids)
{
	(void)ids;
	(void)n_ids;
	if (len && ctx) {
		fwrite(text, 1, len, stdout);
		fflush(stdout);
	}
	return interrupted; /* non-zero: cancel */
}

static void print_json(const struct slm_client_result *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *ids = cJSON_AddArrayToObject(o, "ids");
	for (size_t i = 0; i < r->n_ids; i++)
		cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->ids[i]));
	cJSON_AddStringToObject(o, "text", r->text ? r->text : "");
	cJSON_AddStringToObject(o, "finish", slm_client_finish_name(r->finish));
	cJSON *u = cJSON_AddObjectToObject(o, "usage");
	cJSON_AddNumberToObject(u, "prompt_tokens", r->prompt_tokens);
	cJSON_AddNumberToObject(u, "cached_tokens", r->cached_tokens);
	cJSON_AddNumberToObject(u, "generated_tokens", r->generated_tokens);
	cJSON *t = cJSON_AddObjectToObject(o, "timings");
	cJSON_AddNumberToObject(t, "queue_us", (double)r->queue_us);
	cJSON_AddNumberToObject(t, "prefill_us", (double)r->prefill_us);
	cJSON_AddNumberToObject(t, "ttft_us", (double)r->ttft_us);
	cJSON_AddNumberToObject(t, "total_us", (double)r->total_us);
	cJSON *c = cJSON_AddObjectToObject(o, "client");
	cJSON_AddNumberToObject(c, "ttft_us",
				(double)(r->client_ttft_ns / 1000));
	cJSON_AddNumberToObject(c, "total_us",
				(double)(r->client_total_ns / 1000));
	cJSON_AddNumberToObject(c, "retransmits", r->retransmits);
	char *text = cJSON_PrintUnformatted(o);
	printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(o);
}

static void print_json_error(int code, const char *msg)
{
	cJSON *o = cJSON_CreateObject();
	cJSON *e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "code", slm_client_errname(code));
	cJSON_AddStringToObject(e, "message", msg);
	char *text = cJSON_PrintUnformatted(o);
	printf("%s\n", text);
	cJSON_free(text);
	cJSON_Delete(o);
}

static int cmd_generate(int argc, char **argv)
{
	const char *prog = "slm generate";
	struct slm_rpc_args a;
	slm_rpc_args_init(&a);
	struct slm_client_gen g;
	memset(&g, 0, sizeof(g));
	const char *stops[MAX_STOP];
	size_t n_stop = 0;
	const char *system_msg = NULL, *ids_text = NULL;
	bool chat = false, json = false, verbose = false;
	char *prompt = NULL;
	size_t prompt_len = 0;
	for (int i = 1; i < argc; i++) {
		if (slm_rpc_option(&a, prog, argc, argv, &i))
			continue;
		const char *o = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDV()                                                              \
	do {                                                                 \
		if (!v)                                                      \
			slm_cli_die(prog, "option %s needs an argument", o); \
		i++;                                                         \
	} while (0)
		if (!strcmp(o, "--json")) {
			json = true;
		} else if (!strcmp(o, "-v")) {
			verbose = true;
		} else if (!strcmp(o, "--chat")) {
			chat = true;
		} else if (!strcmp(o, "--system")) {
			NEEDV();
			system_msg = v;
		} else if (!strcmp(o, "--ids")) {
			NEEDV();
			ids_text = v;
		} else if (!strcmp(o, "-n") || !strcmp(o, "--max-tokens")) {
			NEEDV();
			g.max_tokens = (uint32_t)slm_rpc_number(prog, o, v, 0,
								UINT32_MAX);
			g.set |= SLM_GEN_MAX_TOKENS;
		} else if (!strcmp(o, "--temp") ||
			   !strcmp(o, "--temperature")) {
			NEEDV();
			g.temperature =
				(float)slm_rpc_number(prog, o, v, 0, 100);
			g.set |= SLM_GEN_TEMPERATURE;
		} else if (!strcmp(o, "--top-k")) {
			NEEDV();
			g.top_k = (int32_t)slm_rpc_number(prog, o, v, 0, 1e9);
			g.set |= SLM_GEN_TOP_K;
		} else if (!strcmp(o, "--top-p")) {
			NEEDV();
			g.top_p = (float)slm_rpc_number(prog, o, v, 0, 1);
			g.set |= SLM_GEN_TOP_P;
		} else if (!strcmp(o, "--min-p")) {
			NEEDV();
			g.min_p = (float)slm_rpc_number(prog, o, v, 0, 1);
			g.set |= SLM_GEN_MIN_P;
		} else if (!strcmp(o, "--repeat-penalty")) {
			NEEDV();
			g.repeat_penalty =
				(float)slm_rpc_number(prog, o, v, 0, 100);
			g.set |= SLM_GEN_REPEAT_PENALTY;
		} else if (!strcmp(o, "--repeat-last-n")) {
			NEEDV();
			g.repeat_last_n =
				(int32_t)slm_rpc_number(prog, o, v, -1, 1e9);
			g.set |= SLM_GEN_REPEAT_LAST_N;
		} else if (!strcmp(o, "--frequency-penalty")) {
			NEEDV();
			g.frequency_penalty =
				(float)slm_rpc_number(prog, o, v, -100, 100);
			g.set |= SLM_GEN_FREQUENCY_PENALTY;
		} else if (!strcmp(o, "--presence-penalty")) {
			NEEDV();
			g.presence_penalty =
				(float)slm_rpc_number(prog, o, v, -100, 100);
			g.set |= SLM_GEN_PRESENCE_PENALTY;
		} else if (!strcmp(o, "--seed")) {
			NEEDV();
			g.seed = (uint64_t)slm_rpc_number(
				prog, o, v, 0, 18446744073709551615.0);
			g.set |= SLM_GEN_SEED;
		} else if (!strcmp(o, "--stop")) {
			NEEDV();
			if (n_stop == MAX_STOP)
				slm_cli_die(prog, "at most %d --stop strings",
					    MAX_STOP);
			stops[n_stop++] = v;
		} else if (!strcmp(o, "--ignore-eos")) {
			g.ignore_eos = true;
			g.set |= SLM_GEN_IGNORE_EOS;
		} else if (!strcmp(o, "--parse-special")) {
			g.parse_special = true;
			g.set |= SLM_GEN_PARSE_SPECIAL;
		} else if (!strcmp(o, "--cache-ns")) {
			NEEDV();
			g.cache_namespace = v;
		} else if (!strcmp(o, "--deadline-ms")) {
			NEEDV();
			g.deadline_ms = (uint32_t)slm_rpc_number(prog, o, v, 1,
								 UINT32_MAX);
			g.set |= SLM_GEN_DEADLINE;
		} else if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
			usage(stdout);
			return 0;
		} else if (o[0] == '-' && o[1]) {
			usage(stderr);
			slm_cli_die(prog, "unknown option '%s'", o);
		} else {
			/* Prompt words, joined by spaces. */
			size_t l = strlen(o);
			char *np = realloc(prompt, prompt_len + l + 2);
			if (!np)
				slm_cli_die(prog, "out of memory");
			prompt = np;
			if (prompt_len)
				prompt[prompt_len++] = ' ';
			memcpy(prompt + prompt_len, o, l + 1);
			prompt_len += l;
		}
#undef NEEDV
	}
	if (prompt && !strcmp(prompt, "-")) {
		free(prompt);
		prompt = read_stdin();
		if (!prompt)
			slm_cli_die(prog, "cannot read the prompt from stdin");
		prompt_len = strlen(prompt);
	}
	int32_t *ids = NULL;
	struct slm_client_msg msgs[2];
	if (ids_text) {
		if (prompt || chat)
			slm_cli_die(prog, "--ids replaces the text prompt and "
					  "--chat");
		size_t n_ids;
		if (parse_ids(ids_text, &ids, &n_ids))
			slm_cli_die(prog,
				    "--ids: '%s' is not a list of token "
				    "ids such as 1,2,3",
				    ids_text);
		g.input = SLM_CLIENT_IDS;
		g.ids = ids;
		g.n_ids = n_ids;
	} else if (!prompt || !prompt_len) {
		usage(stderr);
		slm_cli_die(prog, "no prompt");
	} else if (chat) {
		size_t k = 0;
		if (system_msg)
			msgs[k++] =
				(struct slm_client_msg){"system", system_msg};
		msgs[k++] = (struct slm_client_msg){"user", prompt};
		g.input = SLM_CLIENT_CHAT;
		g.messages = msgs;
		g.n_messages = k;
	} else {
		if (system_msg)
			slm_cli_die(prog, "--system needs --chat");
		g.input = SLM_CLIENT_TEXT;
		g.text = prompt;
		g.text_len = prompt_len;
	}
	g.stop = stops;
	g.n_stop = n_stop;

	char url[300];
	struct slm_client *c = slm_rpc_connect(&a, prog, url, sizeof(url));
	struct sigaction sa = {.sa_handler = on_sigint};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	struct slm_client_result r;
	int rc = slm_client_generate(c, &g, print_chunk, json ? NULL : stdout,
				     &r);
	slm_client_close(c);
	free(ids);
	free(prompt);
	if (!json && r.text_len && isatty(STDOUT_FILENO) &&
	    r.text[r.text_len - 1] != '\n')
		putchar('\n');
	if (rc) {
		if (json)
			print_json_error(rc, r.message);
		fprintf(stderr, "%s: %s: %s (%s)\n", prog, url,
			r.message[0] ? r.message : slm_client_strerror(rc),
			slm_client_errname(rc));
		slm_client_result_free(&r);
		return 1;
	}
	if (json)
		print_json(&r);
	if (interrupted) {
		fprintf(stderr, "%s: cancelled\n", prog);
		slm_client_result_free(&r);
		return 130;
	}
	if (verbose)
		fprintf(stderr,
			"%s: finish %s; %u prompt (%u cached), %u generated "
			"tokens; server: queue %llu us, prefill %llu us, ttft "
			"%llu us, total %llu us; client: ttft %llu us, total "
			"%llu us, %u retransmits\n",
			prog, slm_client_finish_name(r.finish), r.prompt_tokens,
			r.cached_tokens, r.generated_tokens,
			(unsigned long long)r.queue_us,
			(unsigned long long)r.prefill_us,
			(unsigned long long)r.ttft_us,
			(unsigned long long)r.total_us,
			(unsigned long long)(r.client_ttft_ns / 1000),
			(unsigned long long)(r.client_total_ns / 1000),
			r.retransmits);
	slm_client_result_free(&r);
	return 0;
}

SLM_COMMAND("generate", cmd_generate,
	    "generate text through a running slmd (streams; --json)")
