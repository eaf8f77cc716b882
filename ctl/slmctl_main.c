/*
 * slmctl: control and observe a running slmd through its control socket.
 *
 *   slmctl [-s SOCKET] [-c FILE] [--set K=V] [--json] COMMAND [ARGS]
 *
 * Options may stand anywhere.  Without -s the socket is ctl.socket of the
 * config (-c, --set; default /run/slmd/ctl.sock).  Tables for people; with
 * --json the result object of the response, one line, for scripts.
 * Exit status: 0 ok, 1 error (the server's message on stderr; with
 * --json also {"error":{...}} on stdout), 2 cannot connect.
 * docs/ctl.md is the protocol and lists every command.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cli.h"
#include "common/clock.h"
#include "common/version.h"
#include "ctl/client.h"
#include "ctl/render.h"

static const char prog[] = "slmctl";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slmctl [-s SOCKET] [-c FILE] [--set K=V] [--json] "
		"COMMAND [ARGS]\n"
		"\n"
		"  status                      version, state, uptime, model, "
		"dataplane, health\n"
		"  stats                       counters (requests, tokens, "
		"prefix hits, drops)\n"
		"  perf                        threads, kernel and hardware "
		"counters, stage latencies\n"
		"  top [-n COUNT] [-i SECONDS] a live view, refreshed every "
		"second\n"
		"  config get [KEY...]         current values\n"
		"  config set KEY VALUE...     change runtime keys (also "
		"KEY=VALUE)\n"
		"  config list | dump | reload every key; the config as a "
		"file; re-read the file\n"
		"  log-level [LEVEL]           show or set log.level\n"
		"  topology                    the machine and the placement "
		"plan\n"
		"  model list                  models held: state, load "
		"progress, size, requests\n"
		"  model load PATH [--wait]    load beside the serving model\n"
		"  model swap PATH|NAME [--wait]  serve it; the old one "
		"drains, "
		"then is freed\n"
		"  model unload NAME           free a model that does not "
		"serve\n"
		"  cache stats | flush\n"
		"  drain [--wait]              refuse new requests, finish "
		"those in flight, stay up\n"
		"  shutdown [--wait]           drain, then stop slmd\n"
		"  help                        the commands this slmd "
		"answers\n"
		"  call JSON                   send one request object as it "
		"is\n"
		"\n"
		"  -s, --socket PATH   control socket (default: ctl.socket, "
		"/run/slmd/ctl.sock)\n"
		"  --json              the result as JSON, for scripts\n"
		"  --timeout SECONDS   for each answer (default 30)\n"
		"exit status: 0 ok, 1 error, 2 cannot connect\n");
}

struct opts {
	const char *socket;
	bool json;
	bool wait;
	int timeout_ms;
	int top_count; /* 0: until interrupted */
	double top_interval;
};

/* Print an error response; returns the exit status (1). */
static int print_error(const struct opts *o, const cJSON *resp)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(resp, "error");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	fprintf(stderr, "%s: %s", prog,
		cJSON_IsString(msg) ? msg->valuestring : "error");
	if (cJSON_IsString(code))
		fprintf(stderr, " (%s)", code->valuestring);
	fputc('\n', stderr);
	if (o->json) {
		cJSON *copy = cJSON_CreateObject();
		cJSON *dup = e ? cJSON_Duplicate(e, true) : NULL;
		if (copy && dup && cJSON_AddItemToObject(copy, "error", dup)) {
			char *text = cJSON_PrintUnformatted(copy);
			if (text)
				printf("%s\n", text);
			free(text);
		} else {
			cJSON_Delete(dup);
		}
		cJSON_Delete(copy);
	}
	return 1;
}

/* Connect; exit 2 when slmd is not there. */
static struct ctl_client *connect_or_exit(const struct opts *o)
{
	struct ctl_client *c = NULL;
	struct slm_error err = {0};
	if (ctl_client_open(o->socket, o->timeout_ms, &c, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		exit(2);
	}
	return c;
}

/* One request; the result object (caller frees resp), or NULL after the
 * error was printed (*status set). */
static const cJSON *call(struct ctl_client *c, const struct opts *o,
			 const cJSON *req, cJSON **resp, int *status)
{
	struct slm_error err = {0};
	*resp = NULL;
	int rc = ctl_client_call(c, req, resp, &err);
	if (rc && !*resp) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		*status = 1;
		return NULL;
	}
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*resp, "ok"))) {
		*status = print_error(o, *resp);
		return NULL;
	}
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(*resp, "result");
	if (!cJSON_IsObject(result)) {
		fprintf(stderr, "%s: the answer has no result object\n", prog);
		*status = 1;
		return NULL;
	}
	*status = 0;
	return result;
}

static void print_json(const cJSON *v)
{
	char *text = cJSON_PrintUnformatted(v);
	if (text)
		printf("%s\n", text);
	free(text);
}

/* {"cmd":..,"op":..,"args":[..]} from the words of the command line. */
static cJSON *build_request(char **words, int n)
{
	static const char *const with_ops[] = {"config", "model", "cache"};
	cJSON *req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "cmd", words[0]))
		goto fail;
	int first_arg = 1;
	bool has_op = false;
	for (size_t i = 0; i < SLM_ARRAY_LEN(with_ops); i++)
		has_op |= !strcmp(words[0], with_ops[i]);
	/* A command slmctl does not know (a component's): the second word
	 * is its op, as for config, model and cache. */
	static const char *const plain[] = {"status", "stats",	  "perf",
					    "top",    "topology", "log-level",
					    "drain",  "shutdown", "help"};
	bool known_plain = false;
	for (size_t i = 0; i < SLM_ARRAY_LEN(plain); i++)
		known_plain |= !strcmp(words[0], plain[i]);
	if ((has_op || !known_plain) && n > 1) {
		if (!cJSON_AddStringToObject(req, "op", words[1]))
			goto fail;
		first_arg = 2;
	}
	if (n > first_arg) {
		cJSON *args = cJSON_AddArrayToObject(req, "args");
		if (!args)
			goto fail;
		for (int i = first_arg; i < n; i++) {
			cJSON *s = cJSON_CreateString(words[i]);
			if (!s || !cJSON_AddItemToArray(args, s)) {
				cJSON_Delete(s);
				goto fail;
			}
		}
	}
	return req;
fail:
	cJSON_Delete(req);
	return NULL;
}

static void render(const char *cmd, const cJSON *req, const cJSON *result)
{
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(req, "op");
	if (!strcmp(cmd, "status")) {
		ctl_render_status(result, stdout);
	} else if (!strcmp(cmd, "stats")) {
		ctl_render_stats(result, stdout);
	} else if (!strcmp(cmd, "perf")) {
		ctl_render_perf(result, stdout);
	} else if (!strcmp(cmd, "config") && cJSON_IsString(op)) {
		ctl_render_config(op->valuestring, result, stdout);
	} else if (!strcmp(cmd, "help")) {
		ctl_render_help(result, stdout);
	} else if (!strcmp(cmd, "model")) {
		ctl_render_model(cJSON_IsString(op) ? op->valuestring : NULL,
				 result, stdout);
	} else if (!strcmp(cmd, "topology")) {
		const cJSON *t =
			cJSON_GetObjectItemCaseSensitive(result, "text");
		const cJSON *note =
			cJSON_GetObjectItemCaseSensitive(result, "note");
		if (cJSON_IsString(t))
			fputs(t->valuestring, stdout);
		if (cJSON_IsString(note))
			printf("\n(%s)\n", note->valuestring);
	} else if (!strcmp(cmd, "log-level")) {
		const cJSON *l =
			cJSON_GetObjectItemCaseSensitive(result, "level");
		const cJSON *p =
			cJSON_GetObjectItemCaseSensitive(result, "previous");
		printf("log level: %s",
		       cJSON_IsString(l) ? l->valuestring : "?");
		if (cJSON_IsString(p))
			printf(" (was %s)", p->valuestring);
		putchar('\n');
	} else if (!strcmp(cmd, "drain")) {
		printf("draining: new requests are refused, those in flight "
		       "finish; slmd stays up (slmctl shutdown stops it)\n");
	} else if (!strcmp(cmd, "shutdown")) {
		printf("slmd is stopping (in-flight requests finish first)\n");
	} else {
		ctl_render_generic(result, stdout);
	}
}

/* ---- drain --wait, shutdown --wait ------------------------------------- */

static int wait_drained(struct ctl_client *c, const struct opts *o)
{
	cJSON *req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "cmd", "status")) {
		cJSON_Delete(req);
		return 1;
	}
	int status = 1;
	uint64_t deadline = slm_now_ns() + (uint64_t)o->timeout_ms * 1000000;
	while (slm_now_ns() < deadline) {
		cJSON *resp = NULL;
		const cJSON *r = call(c, o, req, &resp, &status);
		bool drained =
			r && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
				     r, "drained"));
		cJSON_Delete(resp);
		if (!r)
			break;
		if (drained) {
			if (!o->json)
				printf("drained: no request in flight\n");
			status = 0;
			break;
		}
		status = 1;
		slm_sleep_ns(100 * 1000000);
	}
	if (status && slm_now_ns() >= deadline)
		fprintf(stderr, "%s: still requests in flight after %d s\n",
			prog, o->timeout_ms / 1000);
	cJSON_Delete(req);
	return status;
}

/*
 * model load --wait: until the model is ready (or serving); model swap
 * --wait: until it serves and no model drains any more (the old one is
 * freed).  Exit 1 when it failed to load or the time is up.
 */
static int wait_model(struct ctl_client *c, const struct opts *o,
		      const char *op, const cJSON *result)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(result, "model");
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(m, "name");
	if (!cJSON_IsString(n))
		return 0;
	char name[128];
	snprintf(name, sizeof(name), "%s", n->valuestring);
	bool swap = !strcmp(op, "swap");
	cJSON *req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "cmd", "model") ||
	    !cJSON_AddStringToObject(req, "op", "list")) {
		cJSON_Delete(req);
		return 1;
	}
	int status = 1;
	uint64_t deadline = slm_now_ns() + (uint64_t)o->timeout_ms * 1000000;
	const char *why = NULL;
	while (slm_now_ns() < deadline) {
		cJSON *resp = NULL;
		const cJSON *r = call(c, o, req, &resp, &status);
		if (!r) {
			cJSON_Delete(resp);
			cJSON_Delete(req);
			return status;
		}
		const char *state = NULL, *error = NULL;
		bool draining = false;
		const cJSON *it;
		cJSON_ArrayForEach(
			it, cJSON_GetObjectItemCaseSensitive(r, "models"))
		{
			const cJSON *nm =
				cJSON_GetObjectItemCaseSensitive(it, "name");
			const cJSON *st =
				cJSON_GetObjectItemCaseSensitive(it, "state");
			const cJSON *er =
				cJSON_GetObjectItemCaseSensitive(it, "error");
			if (!cJSON_IsString(nm) || !cJSON_IsString(st))
				continue;
			draining |= !strcmp(st->valuestring, "draining");
			if (!strcmp(nm->valuestring, name)) {
				state = st->valuestring;
				error = cJSON_IsString(er) ? er->valuestring
							   : NULL;
			}
		}
		status = 1;
		bool done = false;
		if (!state) {
			why = "it is not held any more";
			done = true;
		} else if (!strcmp(state, "failed")) {
			fprintf(stderr, "%s: %s failed to load: %s\n", prog,
				name, error ? error : "?");
			why = "";
			done = true;
		} else if (swap ? !strcmp(state, "serving") && !draining
				: !strcmp(state, "ready") ||
					   !strcmp(state, "serving")) {
			status = 0;
			done = true;
		}
		cJSON_Delete(resp);
		if (done)
			break;
		slm_sleep_ns(50 * 1000000);
	}
	cJSON_Delete(req);
	if (!status) {
		if (!o->json)
			printf(swap ? "%s serves; the old model is freed\n"
				    : "%s is loaded and ready\n",
			       name);
	} else if (why && *why) {
		fprintf(stderr, "%s: %s: %s\n", prog, name, why);
	} else if (!why) {
		fprintf(stderr, "%s: %s is not %s after %d s\n", prog, name,
			swap ? "serving alone" : "ready", o->timeout_ms / 1000);
	}
	return status;
}

/* After shutdown: wait until the socket stops answering. */
static int wait_gone(const struct opts *o)
{
	uint64_t deadline = slm_now_ns() + (uint64_t)o->timeout_ms * 1000000;
	while (slm_now_ns() < deadline) {
		struct ctl_client *c = NULL;
		struct slm_error err = {0};
		if (ctl_client_open(o->socket, o->timeout_ms, &c, &err)) {
			if (!o->json)
				printf("slmd stopped\n");
			return 0;
		}
		ctl_client_close(c);
		slm_sleep_ns(100 * 1000000);
	}
	fprintf(stderr, "%s: slmd still answers after %d s\n", prog,
		o->timeout_ms / 1000);
	return 1;
}

/* ---- top --------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int top(struct ctl_client *c, const struct opts *o)
{
	cJSON *req = cJSON_CreateObject();
	if (!req || !cJSON_AddStringToObject(req, "cmd", "top")) {
		cJSON_Delete(req);
		return 1;
	}
	struct sigaction sa = {.sa_handler = on_interrupt};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	bool tty = isatty(STDOUT_FILENO) && !o->json;
	cJSON *prev = NULL;
	int status = 0;
	/* The first frame needs two samples: rates are over an interval. */
	for (int frame = 0; !interrupted; frame++) {
		cJSON *resp = NULL;
		const cJSON *r = call(c, o, req, &resp, &status);
		if (!r) {
			cJSON_Delete(resp);
			break;
		}
		cJSON *cur = cJSON_Duplicate(r, true);
		cJSON_Delete(resp);
		if (!cur) {
			status = 1;
			break;
		}
		if (prev) {
			struct ctl_top t;
			if (ctl_top_compute(prev, cur, &t)) {
				fprintf(stderr, "%s: not a top sample\n", prog);
				cJSON_Delete(cur);
				status = 1;
				break;
			}
			if (o->json) {
				cJSON *j = ctl_top_json(&t);
				if (j)
					print_json(j);
				cJSON_Delete(j);
			} else {
				if (tty)
					fputs("\033[H\033[2J", stdout);
				else if (frame > 1)
					putchar('\n');
				ctl_top_print(&t, stdout);
			}
			fflush(stdout);
			ctl_top_free(&t);
		}
		cJSON_Delete(prev);
		prev = cur;
		if (o->top_count && frame >= o->top_count)
			break;
		slm_sleep_ns((uint64_t)(o->top_interval * 1e9));
	}
	cJSON_Delete(prev);
	cJSON_Delete(req);
	return status;
}

/* ---- main -------------------------------------------------------------- */

static double number_arg(const char *opt, const char *text)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (*text == '\0' || *end || errno || !(v > 0) || v > 1e6)
		slm_cli_die(prog, "%s '%s': expected a positive number", opt,
			    text);
	return v;
}

int main(int argc, char **argv)
{
	struct slm_config_args args = {0};
	struct opts o = {.timeout_ms = 30000, .top_interval = 1.0};
	char *words[64];
	int n_words = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has_value = i + 1 < argc;
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		if ((!strcmp(a, "-s") || !strcmp(a, "--socket")) && has_value) {
			o.socket = argv[++i];
		} else if (!strcmp(a, "--json")) {
			o.json = true;
		} else if (!strcmp(a, "--wait")) {
			o.wait = true;
		} else if (!strcmp(a, "--timeout") && has_value) {
			o.timeout_ms =
				(int)(number_arg(a, argv[++i]) * 1000 + 0.5);
		} else if ((!strcmp(a, "-n") || !strcmp(a, "--count")) &&
			   has_value) {
			o.top_count = (int)number_arg(a, argv[++i]);
		} else if ((!strcmp(a, "-i") || !strcmp(a, "--interval")) &&
			   has_value) {
			o.top_interval = number_arg(a, argv[++i]);
		} else if (!strcmp(a, "--version")) {
			printf("slmctl %s\n", SLM_VERSION);
			return 0;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (a[0] == '-' && a[1] &&
			   !(n_words == 1 && !strcmp(words[0], "call"))) {
			usage(stderr);
			slm_cli_die(prog,
				    "unknown option or missing value '%s'", a);
		} else if (n_words < (int)SLM_ARRAY_LEN(words)) {
			words[n_words++] = argv[i];
		} else {
			slm_cli_die(prog, "too many arguments");
		}
	}
	if (n_words == 0) {
		usage(stderr);
		return 1;
	}
	struct slm_config *cfg = NULL;
	if (!o.socket) {
		cfg = slm_cli_load_config(prog, &args);
		o.socket = slm_cfg_str(cfg, SLM_CFG_CTL_SOCKET);
	}

	int status = 0;
	struct ctl_client *c = connect_or_exit(&o);
	const char *cmd = words[0];
	cJSON *resp = NULL;
	if (!strcmp(cmd, "top")) {
		status = top(c, &o);
	} else if (!strcmp(cmd, "call")) {
		if (n_words != 2)
			slm_cli_die(prog, "call takes one JSON object");
		struct slm_error err = {0};
		if (ctl_client_call_text(c, words[1], &resp, &err) && !resp) {
			fprintf(stderr, "%s: %s\n", prog, err.msg);
			status = 1;
		} else {
			print_json(resp);
			status = 0;
			if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
				    resp, "ok"))) {
				struct opts quiet = o;
				quiet.json = false; /* printed above */
				status = print_error(&quiet, resp);
			}
		}
	} else {
		/* a file named to `model load|swap` is slmd's to open: from
		 * slmd's folder, not ours */
		char abs[PATH_MAX];
		if (!strcmp(cmd, "model") && n_words > 2 &&
		    (!strcmp(words[1], "load") || !strcmp(words[1], "swap")) &&
		    words[2][0] != '/' && access(words[2], F_OK) == 0 &&
		    realpath(words[2], abs))
			words[2] = abs;
		cJSON *req = build_request(words, n_words);
		if (!req)
			slm_cli_die(prog, "out of memory");
		const cJSON *result = call(c, &o, req, &resp, &status);
		if (result) {
			if (o.json)
				print_json(result);
			else
				render(cmd, req, result);
			fflush(stdout);
			if (o.wait && !strcmp(cmd, "drain"))
				status = wait_drained(c, &o);
			else if (o.wait && !strcmp(cmd, "shutdown"))
				status = wait_gone(&o);
			else if (o.wait && !strcmp(cmd, "model") &&
				 n_words > 1 &&
				 (!strcmp(words[1], "load") ||
				  !strcmp(words[1], "swap")))
				status = wait_model(c, &o, words[1], result);
		}
		cJSON_Delete(req);
	}
	cJSON_Delete(resp);
	ctl_client_close(c);
	slm_config_destroy(cfg);
	return status;
}
