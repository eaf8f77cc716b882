/*
 * The control server end to end: a daemon with the ctl component (and a
 * fake component that can hold slmd in LOADING) runs on a thread; the
 * tests talk to its socket as slmctl does.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "ctl/ctl.h"
#include "ctl/perf.h"
#include "ctl/server.h"
#include "daemon/daemon.h"
#include "tests/unit/harness.h"

/* A component that keeps slmd LOADING until the test says so. */
struct loader {
	bool hold_loading;
	struct slmd *d;
};

static int loader_start(void *ctx, struct slmd *d, struct slm_error *err)
{
	struct loader *l = ctx;
	l->d = d;
	if (l->hold_loading)
		slmd_set_state(d, SLMD_LOADING, "loading test.gguf 40%");
	return 0;
}

struct env {
	char dir[512];
	char sock[600];
	char conf[600];
	struct slm_config_args args;
	struct slm_config *cfg;
	struct slmd *d;
	struct ctl_server *ctl;
	struct loader loader;
	pthread_t thread;
	int rc;
	struct slm_error err;
	bool running;
};

static void *run_main(void *arg)
{
	struct env *e = arg;
	e->rc = slmd_run(e->d, &e->err);
	return NULL;
}

/* A fresh directory every peer can reach (the uid tests need it). */
static void env_dir(struct env *e)
{
	static int n;
	chmod(slm_test_tmpdir(), 0755);
	snprintf(e->dir, sizeof(e->dir), "%s/ctl%d", slm_test_tmpdir(), n++);
	mkdir(e->dir, 0755);
	chmod(e->dir, 0755);
	snprintf(e->sock, sizeof(e->sock), "%s/run/ctl.sock", e->dir);
	snprintf(e->conf, sizeof(e->conf), "%s/slmd.conf", e->dir);
}

/* Start slmd with ctl.socket in the env's directory and these --set
 * overrides (the strings must outlive the env); a config file is used
 * when e->args.file is set.  Returns slmd_run's start error, if any. */
static int env_start(struct env *e, const char *const *sets)
{
	static char sock_set[700];
	snprintf(sock_set, sizeof(sock_set), "ctl.socket=%s", e->sock);
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_config_args_add_set(&e->args, sock_set, &err), 0);
	CU_ASSERT_EQUAL(
		slm_config_args_add_set(&e->args, "log.level=warn", &err), 0);
	for (int i = 0; sets && sets[i]; i++)
		CU_ASSERT_EQUAL(
			slm_config_args_add_set(&e->args, sets[i], &err), 0);
	e->cfg = slm_config_create();
	CU_ASSERT_EQUAL_FATAL(slm_config_apply_args(e->cfg, &e->args, &err), 0);
	e->d = slmd_create(e->cfg, &e->args);
	e->ctl = ctl_server_create();
	struct slmd_component c = ctl_server_component(e->ctl);
	struct slmd_component l = {
		.name = "loader", .ctx = &e->loader, .start = loader_start};
	CU_ASSERT_EQUAL(slmd_add_component(e->d, &c), 0);
	CU_ASSERT_EQUAL(slmd_add_component(e->d, &l), 0);
	e->rc = 1; /* still running */
	pthread_create(&e->thread, NULL, run_main, e);
	e->running = true;
	for (int i = 0; i < 3000; i++) {
		enum slmd_state s = slmd_state(e->d);
		if (s == SLMD_SERVING || s == SLMD_LOADING ||
		    s == SLMD_STOPPING)
			break;
		slm_sleep_ns(1000000);
	}
	if (slmd_state(e->d) == SLMD_STOPPING) {
		pthread_join(e->thread, NULL);
		e->running = false;
		return e->rc;
	}
	return 0;
}

static void env_stop(struct env *e)
{
	if (e->running) {
		slmd_request_stop(e->d);
		pthread_join(e->thread, NULL);
		e->running = false;
	}
	slmd_destroy(e->d);
	ctl_server_destroy(e->ctl);
	slm_config_destroy(e->cfg);
	/* slmd's own runtime changes (log-level tests) end here. */
	slm_log_set_level(SLM_LOG_WARN);
}

static int dial(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void send_all(int fd, const char *data, size_t len)
{
	while (len) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		data += n;
		len -= (size_t)n;
	}
}

/* Read one line (without '\n'); NULL when the connection closed. */
static char *read_line(int fd)
{
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1 == cap) {
			char *grown = realloc(buf, cap *= 2);
			if (!grown) {
				free(buf);
				return NULL;
			}
			buf = grown;
		}
		ssize_t n = recv(fd, buf + len, 1, 0);
		if (n <= 0) {
			free(buf);
			return NULL;
		}
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return buf;
		}
		len++;
	}
}

static cJSON *read_response(int fd)
{
	char *line = read_line(fd);
	if (!line)
		return NULL;
	cJSON *r = cJSON_Parse(line);
	free(line);
	return r;
}

/* Send a line, read the response. */
static cJSON *rpc(int fd, const char *line)
{
	send_all(fd, line, strlen(line));
	send_all(fd, "\n", 1);
	return read_response(fd);
}

static const cJSON *field(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const cJSON *result(const cJSON *resp)
{
	return cJSON_IsTrue(field(resp, "ok")) ? field(resp, "result") : NULL;
}

/* The error code of a response ("EINVAL"), or "" for a success. */
static const char *code(const cJSON *resp)
{
	const cJSON *c = field(field(resp, "error"), "code");
	return cJSON_IsString(c) ? c->valuestring : "";
}

static const char *message(const cJSON *resp)
{
	const cJSON *m = field(field(resp, "error"), "message");
	return cJSON_IsString(m) ? m->valuestring : "";
}

/* rpc, check the error code, return the message's copy for strstr. */
static void expect_error(int fd, const char *line, const char *want_code,
			 const char *want_fragment)
{
	cJSON *r = rpc(fd, line);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_FALSE(cJSON_IsTrue(field(r, "ok")));
	CU_ASSERT_STRING_EQUAL(code(r), want_code);
	if (want_fragment && !strstr(message(r), want_fragment)) {
		fprintf(stderr, "\n    %s: message '%s' lacks '%s'\n", line,
			message(r), want_fragment);
		CU_FAIL("error message");
	}
	cJSON_Delete(r);
}

/* ---- the socket file --------------------------------------------------- */

static void make_run_dir(const struct env *e)
{
	char run[600];
	snprintf(run, sizeof(run), "%s/run", e->dir);
	mkdir(run, 0755);
}

static void test_socket_file(void)
{
	struct env e = {0};
	env_dir(&e);
	/* A stale socket file (its slmd died) is replaced. */
	make_run_dir(&e);
	int stale = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", e.sock);
	CU_ASSERT_EQUAL(bind(stale, (struct sockaddr *)&a, sizeof(a)), 0);
	close(stale);
	CU_ASSERT_EQUAL_FATAL(env_start(&e, NULL), 0);
	struct stat st;
	CU_ASSERT_EQUAL_FATAL(stat(e.sock, &st), 0);
	CU_ASSERT(S_ISSOCK(st.st_mode));
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0660);
	CU_ASSERT_STRING_EQUAL(ctl_server_socket(e.ctl), e.sock);

	/* A second slmd on the same path refuses to start. */
	struct env second = {0};
	memcpy(second.dir, e.dir, sizeof(e.dir));
	memcpy(second.sock, e.sock, sizeof(e.sock));
	CU_ASSERT_EQUAL(env_start(&second, NULL), SLM_EBUSY);
	CU_ASSERT_PTR_NOT_NULL(strstr(second.err.msg, "running slmd"));
	env_stop(&second);
	/* ... and did not remove the first one's socket. */
	CU_ASSERT_EQUAL(stat(e.sock, &st), 0);
	env_stop(&e);
	/* Gone with the server. */
	CU_ASSERT_NOT_EQUAL(stat(e.sock, &st), 0);

	/* A path that is not a socket; mode and group from the config. */
	struct env f = {0};
	env_dir(&f);
	make_run_dir(&f);
	FILE *file = fopen(f.sock, "w");
	fclose(file);
	CU_ASSERT_EQUAL(env_start(&f, NULL), SLM_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(f.err.msg, "not a socket"));
	env_stop(&f);

	struct env g = {0};
	env_dir(&g);
	static const char *const sets[] = {"ctl.mode=0600", "ctl.group=0",
					   NULL};
	CU_ASSERT_EQUAL_FATAL(env_start(&g, sets), 0);
	CU_ASSERT_EQUAL(stat(g.sock, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 0777, 0600);
	CU_ASSERT_EQUAL(st.st_gid, 0);
	env_stop(&g);

	struct env h = {0};
	env_dir(&h);
	static const char *const bad[] = {"ctl.allow_gids=no-such-group-x",
					  NULL};
	CU_ASSERT_EQUAL(env_start(&h, bad), SLM_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(h.err.msg, "ctl.allow_gids"));
	env_stop(&h);
}

/* ---- the protocol ------------------------------------------------------ */

static void test_protocol(void)
{
	struct env e = {0};
	env_dir(&e);
	CU_ASSERT_EQUAL_FATAL(env_start(&e, NULL), 0);
	int fd = dial(e.sock);
	CU_ASSERT_FATAL(fd >= 0);

	expect_error(fd, "{\"cmd\":\"status\"", "EFORMAT", "bad JSON");
	expect_error(fd, "not json at all", "EFORMAT", "bad JSON at byte 0");
	expect_error(fd, "[1,2]", "EFORMAT", "JSON object");
	expect_error(fd, "\"status\"", "EFORMAT", "JSON object");
	expect_error(fd, "{\"cmd\":\"status\"} {\"cmd\":\"stats\"}", "EFORMAT",
		     "trailing");
	expect_error(fd, "{}", "EINVAL", "missing field 'cmd'");
	expect_error(fd, "{\"cmd\":7}", "EINVAL", "'cmd' must be a string");
	expect_error(fd, "{\"cmd\":null}", "EINVAL", "'cmd' must be a string");
	expect_error(fd, "{\"cmd\":\"config\",\"op\":3}", "EINVAL",
		     "'op' must be a string");
	expect_error(fd, "{\"cmd\":\"status\",\"args\":\"x\"}", "EINVAL",
		     "'args' must be an array");
	expect_error(fd, "{\"cmd\":\"status\",\"args\":[\"a\",1]}", "EINVAL",
		     "args[1] must be a string");
	expect_error(fd, "{\"cmd\":\"frobnicate\"}", "ENOTFOUND",
		     "unknown command 'frobnicate'");
	expect_error(fd, "{\"cmd\":\"log-level\",\"level\":5}", "EINVAL",
		     "'level' must be a string");

	/* The id comes back, on success and on error, whatever its type. */
	cJSON *r = rpc(fd, "{\"cmd\":\"status\",\"id\":42}");
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(field(r, "id")), 42);
	CU_ASSERT_PTR_NOT_NULL(result(r));
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"nope\",\"id\":{\"a\":[1]}}");
	CU_ASSERT(cJSON_IsObject(field(r, "id")));
	CU_ASSERT_STRING_EQUAL(code(r), "ENOTFOUND");
	cJSON_Delete(r);

	/* Blank lines are skipped; CRLF is fine; two requests in one write
	 * get two answers in order. */
	const char *two = "\n  \r\n{\"cmd\":\"status\",\"id\":1}\r\n"
			  "{\"cmd\":\"help\",\"id\":2}\n";
	send_all(fd, two, strlen(two));
	cJSON *a = read_response(fd), *b = read_response(fd);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(field(a, "id")), 1);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(field(b, "id")), 2);
	CU_ASSERT_PTR_NOT_NULL(field(result(b), "commands"));
	cJSON_Delete(a);
	cJSON_Delete(b);

	/* A request written a byte at a time. */
	const char *slow = "{\"cmd\":\"status\",\"id\":\"slow\"}\n";
	for (const char *p = slow; *p; p++)
		send_all(fd, p, 1);
	r = read_response(fd);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(r, "id")), "slow");
	cJSON_Delete(r);

	/* A last request without its newline, then end of input: still
	 * answered before the server closes. */
	const char *last = "{\"cmd\":\"status\",\"id\":\"last\"}";
	send_all(fd, last, strlen(last));
	shutdown(fd, SHUT_WR);
	r = read_response(fd);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(r, "id")), "last");
	cJSON_Delete(r);
	CU_ASSERT_PTR_NULL(read_line(fd));
	close(fd);
	env_stop(&e);
}

static void test_oversized(void)
{
	struct env e = {0};
	env_dir(&e);
	CU_ASSERT_EQUAL_FATAL(env_start(&e, NULL), 0);
	int fd = dial(e.sock);
	/* Exactly ctl.max_line (64 KiB) bytes: answered. */
	size_t max = 65536;
	char *line = malloc(4 * max);
	const char *req = "{\"cmd\":\"status\",\"id\":\"fits\"}";
	memset(line, ' ', max);
	memcpy(line, req, strlen(req));
	line[max] = '\0';
	cJSON *r = rpc(fd, line);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(r, "id")), "fits");
	cJSON_Delete(r);
	/* One byte more: refused, skipped, and the connection goes on. */
	memset(line, ' ', max + 1);
	memcpy(line, req, strlen(req));
	line[max + 1] = '\0';
	expect_error(fd, line, "ETOOBIG", "ctl.max_line (65536 bytes)");
	/* Far longer, in pieces: one error, then the next request works. */
	memset(line, 'x', 4 * max - 1);
	line[4 * max - 1] = '\0';
	expect_error(fd, line, "ETOOBIG", "skipped");
	r = rpc(fd, "{\"cmd\":\"status\",\"id\":\"after\"}");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(r, "id")), "after");
	cJSON_Delete(r);
	/* A runtime change of ctl.max_line takes effect at once. */
	r = rpc(fd, "{\"cmd\":\"config\",\"op\":\"set\",\"args\":[\"ctl.max_"
		    "line\",\"2K\"]}");
	CU_ASSERT_PTR_NOT_NULL(result(r));
	cJSON_Delete(r);
	memset(line, ' ', 3000);
	memcpy(line, req, strlen(req));
	line[3000] = '\0';
	expect_error(fd, line, "ETOOBIG", "(2048 bytes)");
	r = rpc(fd, "{\"cmd\":\"status\"}");
	CU_ASSERT_PTR_NOT_NULL(result(r));
	cJSON_Delete(r);
	free(line);
	close(fd);
	env_stop(&e);
}

/* ---- the commands ------------------------------------------------------ */

static void test_status_stats_perf(void)
{
	struct env e = {0};
	env_dir(&e);
	CU_ASSERT_EQUAL_FATAL(env_start(&e, NULL), 0);
	int fd = dial(e.sock);
	cJSON *r = rpc(fd, "{\"cmd\":\"status\"}");
	const cJSON *s = result(r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(s, "version")),
			       "0.1.0");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(s, "state")),
			       "serving");
	CU_ASSERT(cJSON_GetNumberValue(field(s, "uptime_s")) >= 0);
	CU_ASSERT(cJSON_IsNull(field(s, "model")));
	CU_ASSERT(cJSON_IsNull(field(s, "dataplane")));
	CU_ASSERT(cJSON_IsNull(field(s, "groups")));
	const cJSON *comps = field(field(s, "health"), "components");
	CU_ASSERT_EQUAL(cJSON_GetArraySize(comps), 2);
	CU_ASSERT_STRING_EQUAL(
		cJSON_GetStringValue(cJSON_GetArrayItem(comps, 1)), "loader");
	CU_ASSERT_STRING_EQUAL(
		cJSON_GetStringValue(field(field(s, "ctl"), "socket")), e.sock);
	cJSON_Delete(r);

	/* stats: the counters scripts rely on, 0 and marked unsourced. */
	r = rpc(fd, "{\"cmd\":\"stats\"}");
	s = result(r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	static const char *const need[] = {
		"requests_total", "tokens_generated_total",
		"prefix_hit_tokens_total", "drops_total"};
	for (size_t i = 0; i < SLM_ARRAY_LEN(need); i++) {
		CU_ASSERT_EQUAL(cJSON_GetNumberValue(field(s, need[i])), 0);
		const cJSON *it;
		bool listed = false;
		cJSON_ArrayForEach(it, field(s, "unsourced"))
		{
			listed |= !strcmp(it->valuestring, need[i]);
		}
		CU_ASSERT_TRUE(listed);
	}
	CU_ASSERT(cJSON_IsObject(field(s, "drops_by_reason")));
	CU_ASSERT(cJSON_GetNumberValue(field(s, "ctl_requests_total")) >= 2);
	cJSON_Delete(r);

	/* perf: the control thread with its CPU time; the hardware
	 * counters available, or why not (never zeros). */
	r = rpc(fd, "{\"cmd\":\"perf\"}");
	s = result(r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	const cJSON *hw = field(s, "hw_counters");
	CU_ASSERT(cJSON_IsBool(field(hw, "available")));
	if (perf_hw_status())
		CU_ASSERT_STRING_EQUAL(
			cJSON_GetStringValue(field(hw, "status")),
			perf_hw_status());
	const cJSON *t, *ctl = NULL;
	cJSON_ArrayForEach(t, field(s, "threads"))
	{
		if (!strcmp(cJSON_GetStringValue(field(t, "name")), "ctl0"))
			ctl = t;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctl);
	CU_ASSERT(cJSON_GetNumberValue(field(ctl, "cpu_s")) > 0);
	CU_ASSERT(cJSON_IsArray(field(s, "stages")));
	if (!cJSON_IsTrue(field(hw, "available")))
		CU_ASSERT_PTR_NULL(field(field(ctl, "events"), "cycles"));
	cJSON_Delete(r);

	/* top: no serving core, so null rather than 0. */
	r = rpc(fd, "{\"cmd\":\"top\"}");
	s = result(r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT(cJSON_IsNull(field(field(s, "counters"), "requests_total")));
	CU_ASSERT(cJSON_IsNull(field(field(s, "gauges"), "queue_depth")));
	CU_ASSERT(cJSON_IsNull(field(field(s, "hists"), "first_token")));
	CU_ASSERT(cJSON_GetArraySize(field(s, "threads")) >= 1);
	cJSON_Delete(r);

	/* help, topology, log-level. */
	r = rpc(fd, "{\"cmd\":\"help\"}");
	CU_ASSERT(cJSON_GetArraySize(field(result(r), "commands")) >= 12);
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"topology\"}");
	s = result(r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(cJSON_GetStringValue(field(s, "text")), "topology"));
	CU_ASSERT(cJSON_IsArray(field(field(s, "plan"), "groups")));
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"log-level\",\"args\":[\"debug\"]}");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(result(r), "level")),
			       "debug");
	CU_ASSERT_EQUAL(slm_log_get_level(), SLM_LOG_DEBUG);
	CU_ASSERT_STRING_EQUAL(slm_cfg_enum_name(e.cfg, SLM_CFG_LOG_LEVEL),
			       "debug");
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"log-level\"}");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(result(r), "level")),
			       "debug");
	cJSON_Delete(r);
	expect_error(fd, "{\"cmd\":\"log-level\",\"level\":\"loud\"}", "EINVAL",
		     "not one of");

	/* Placeholders until the serving core registers them. */
	expect_error(fd, "{\"cmd\":\"model\",\"op\":\"load\",\"args\":[\"x\"]}",
		     "EUNSUPPORTED", "no serving core");
	expect_error(fd, "{\"cmd\":\"model\",\"op\":\"swap\"}", "EUNSUPPORTED",
		     "model swap");
	expect_error(fd, "{\"cmd\":\"model\",\"op\":\"list\"}", "EUNSUPPORTED",
		     NULL);
	expect_error(fd, "{\"cmd\":\"model\",\"op\":\"unload\"}",
		     "EUNSUPPORTED", NULL);
	expect_error(fd, "{\"cmd\":\"model\",\"op\":\"melt\"}", "ENOTFOUND",
		     "list, load, unload, swap");
	expect_error(fd, "{\"cmd\":\"model\"}", "EINVAL", "missing op");
	expect_error(fd, "{\"cmd\":\"cache\",\"op\":\"stats\"}", "EUNSUPPORTED",
		     "cache stats");
	expect_error(fd, "{\"cmd\":\"cache\",\"op\":\"flush\"}", "EUNSUPPORTED",
		     NULL);
	close(fd);
	env_stop(&e);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(text, f);
	fclose(f);
}

static void test_config(void)
{
	struct env e = {0};
	env_dir(&e);
	write_text(e.conf, "[daemon]\ndrain_timeout_ms = 1000\n");
	e.args.file = e.conf;
	CU_ASSERT_EQUAL_FATAL(env_start(&e, NULL), 0);
	int fd = dial(e.sock);

	cJSON *r = rpc(fd, "{\"cmd\":\"config\",\"op\":\"get\",\"args\":"
			   "[\"daemon.drain_timeout_ms\",\"ctl.socket\"]}");
	const cJSON *k = field(result(r), "keys");
	const cJSON *dt = field(k, "daemon.drain_timeout_ms");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(dt, "value")),
			       "1000");
	CU_ASSERT_PTR_NOT_NULL(strstr(cJSON_GetStringValue(field(dt, "origin")),
				      "slmd.conf:2"));
	CU_ASSERT(cJSON_IsTrue(field(dt, "runtime")));
	CU_ASSERT(cJSON_IsFalse(field(field(k, "ctl.socket"), "runtime")));
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"config\",\"op\":\"get\"}");
	CU_ASSERT_EQUAL(cJSON_GetArraySize(field(result(r), "keys")),
			SLM_CFG__COUNT);
	cJSON_Delete(r);
	expect_error(fd, "{\"cmd\":\"config\",\"op\":\"get\",\"key\":\"a.b\"}",
		     "ENOTFOUND", "unknown key 'a.b'");
	expect_error(fd, "{\"cmd\":\"config\",\"op\":\"get\",\"keys\":[1]}",
		     "EINVAL", "string");
	expect_error(fd, "{\"cmd\":\"config\"}", "EINVAL", "missing op");
	expect_error(fd, "{\"cmd\":\"config\",\"op\":\"bake\"}", "ENOTFOUND",
		     "unknown op 'bake'");

	/* set: a runtime key takes effect (as text, as a JSON number, as
	 * KEY=VALUE); several at once, all or nothing. */
	r = rpc(fd, "{\"cmd\":\"config\",\"op\":\"set\",\"args\":[\"daemon."
		    "drain_timeout_ms\",\"2500\"]}");
	CU_ASSERT_STRING_EQUAL(
		cJSON_GetStringValue(field(field(field(result(r), "changed"),
						 "daemon.drain_timeout_ms"),
					   "new")),
		"2500");
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			2500);
	CU_ASSERT_PTR_NOT_NULL(strstr(
		slm_config_origin(e.cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
		"slmctl (uid"));
	cJSON_Delete(r);
	r = rpc(fd,
		"{\"cmd\":\"config\",\"op\":\"set\",\"values\":{\"numa."
		"affinity_threshold\":100,\"numa.affinity_min_prefix\":8}}");
	CU_ASSERT_PTR_NOT_NULL(result(r));
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_NUMA_AFFINITY_THRESHOLD),
			100);
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_NUMA_AFFINITY_MIN_PREFIX),
			8);
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"config\",\"op\":\"set\",\"args\":[\"ctl.max_"
		    "clients=9\"]}");
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_CTL_MAX_CLIENTS), 9);
	cJSON_Delete(r);
	expect_error(fd,
		     "{\"cmd\":\"config\",\"op\":\"set\",\"values\":{\"numa."
		     "affinity_threshold\":5,\"numa.affinity_min_prefix\":"
		     "-3}}",
		     "ECONFIG", "numa.affinity_min_prefix");
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_NUMA_AFFINITY_THRESHOLD),
			100);
	/* A key that needs a restart is refused; nothing changes. */
	expect_error(fd,
		     "{\"cmd\":\"config\",\"op\":\"set\",\"args\":[\"engine."
		     "threads\",\"2\"]}",
		     "ESTATE", "cannot change while running");
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_ENGINE_THREADS), 0);
	expect_error(fd,
		     "{\"cmd\":\"config\",\"op\":\"set\",\"values\":{\"ctl."
		     "max_line\":[1]}}",
		     "EINVAL", "string, number or boolean");
	expect_error(fd,
		     "{\"cmd\":\"config\",\"op\":\"set\",\"values\":{\"ctl."
		     "max_line\":true}}",
		     "ECONFIG", "bad value 'true'");
	expect_error(fd, "{\"cmd\":\"config\",\"op\":\"set\",\"values\":[]}",
		     "EINVAL", "'values' must be an object");
	expect_error(fd,
		     "{\"cmd\":\"config\",\"op\":\"set\",\"args\":[\"log."
		     "level\"]}",
		     "EINVAL", "KEY VALUE");
	expect_error(fd, "{\"cmd\":\"config\",\"op\":\"set\"}", "EINVAL",
		     "no KEY VALUE");
	expect_error(fd,
		     "{\"cmd\":\"config\",\"op\":\"set\",\"args\":[\"no."
		     "such\",\"1\"]}",
		     "ENOTFOUND", "unknown key");

	/* list and dump. */
	r = rpc(fd, "{\"cmd\":\"config\",\"op\":\"list\"}");
	const cJSON *keys = field(result(r), "keys");
	CU_ASSERT_EQUAL(cJSON_GetArraySize(keys), SLM_CFG__COUNT);
	CU_ASSERT(cJSON_IsString(field(cJSON_GetArrayItem(keys, 0), "help")));
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"config\",\"op\":\"dump\"}");
	const char *text = cJSON_GetStringValue(field(result(r), "text"));
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	struct slm_config *back = slm_config_create();
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_config_load_string(back, text, "dump", &err), 0);
	CU_ASSERT_EQUAL(slm_cfg_int(back, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			2500);
	slm_config_destroy(back);
	cJSON_Delete(r);

	/* reload: the file's runtime keys apply, restart-only ones are
	 * reported and kept; a bad file is an error and changes nothing. */
	write_text(e.conf, "[daemon]\ndrain_timeout_ms = 4000\n"
			   "[engine]\nthreads = 2\n");
	r = rpc(fd, "{\"cmd\":\"config\",\"op\":\"reload\"}");
	const cJSON *rr = result(r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rr);
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			4000);
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_ENGINE_THREADS), 0);
	bool saw_dt = false, saw_threads = false;
	const cJSON *it;
	cJSON_ArrayForEach(it, field(rr, "changed"))
	{
		saw_dt |= !strcmp(cJSON_GetStringValue(field(it, "key")),
				  "daemon.drain_timeout_ms");
	}
	cJSON_ArrayForEach(it, field(rr, "restart_needed"))
	{
		saw_threads |= !strcmp(cJSON_GetStringValue(field(it, "key")),
				       "engine.threads");
	}
	CU_ASSERT_TRUE(saw_dt);
	CU_ASSERT_TRUE(saw_threads);
	cJSON_Delete(r);
	write_text(e.conf, "[daemon]\ndrain_timeout_ms = whenever\n");
	expect_error(fd, "{\"cmd\":\"config\",\"op\":\"reload\"}", "ECONFIG",
		     "slmd.conf:2");
	CU_ASSERT_EQUAL(slm_cfg_int(e.cfg, SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS),
			4000);
	close(fd);
	env_stop(&e);
}

/* ---- what components register ------------------------------------------ */

static int echo_cmd(void *ctx, const struct ctl_request *req, cJSON *result,
		    struct slm_error *err)
{
	int *calls = ctx;
	(*calls)++;
	const char *word;
	int rc = ctl_param_string(req, "word", 0, &word, err);
	if (rc)
		return rc;
	if (!word)
		return slm_error_set(err, SLM_EINVAL, "echo: no word");
	cJSON_AddStringToObject(result, "word", word);
	cJSON_AddStringToObject(result, "op", req->op ? req->op : "");
	return 0;
}

static int model_cmd(void *ctx, const struct ctl_request *req, cJSON *result,
		     struct slm_error *err)
{
	cJSON_AddStringToObject(result, "loaded", "tiny.gguf");
	return 0;
}

static int model_status(void *ctx, cJSON *section)
{
	cJSON_AddStringToObject(section, "name", "tiny.gguf");
	return 0;
}

static void dp_collect(void *ctx, struct perf_snapshot *snap)
{
	perf_emit_counter(snap, "drops_total", "dropped", 3, "thread",
			  "dataplane0", "reason", "bad_mac", PERF_END);
	perf_emit_counter(snap, "drops_total", "dropped", 2, "thread",
			  "dataplane0", "reason", "replay", PERF_END);
	perf_emit_gauge(snap, "queue_depth", "waiting", 4, "group", "0",
			PERF_END);
}

static void test_registry(void)
{
	struct env e = {0};
	env_dir(&e);
	CU_ASSERT_EQUAL_FATAL(env_start(&e, NULL), 0);
	int fd = dial(e.sock);
	int calls = 0;
	CU_ASSERT_EQUAL(
		ctl_register_command("echo", echo_cmd, &calls, "say it back"),
		0);
	CU_ASSERT_EQUAL(ctl_register_command("echo", echo_cmd, &calls, ""),
			SLM_EBUSY);
	CU_ASSERT_EQUAL(ctl_register_command("status", echo_cmd, &calls, ""),
			SLM_EBUSY);
	CU_ASSERT_EQUAL(ctl_register_command("Bad Name", echo_cmd, &calls, ""),
			SLM_EINVAL);
	cJSON *r = rpc(fd, "{\"cmd\":\"echo\",\"op\":\"x\",\"args\":[\"hi\"]}");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(result(r), "word")),
			       "hi");
	CU_ASSERT_EQUAL(calls, 1);
	cJSON_Delete(r);
	expect_error(fd, "{\"cmd\":\"echo\"}", "EINVAL", "echo: no word");
	expect_error(fd, "{\"cmd\":\"echo\",\"word\":1}", "EINVAL",
		     "'word' must be a string");
	r = rpc(fd, "{\"cmd\":\"help\"}");
	bool listed = false;
	const cJSON *it;
	cJSON_ArrayForEach(it, field(result(r), "commands"))
	{
		listed |= !strcmp(cJSON_GetStringValue(field(it, "name")),
				  "echo");
	}
	CU_ASSERT_TRUE(listed);
	cJSON_Delete(r);
	ctl_unregister_command("echo");
	expect_error(fd, "{\"cmd\":\"echo\",\"word\":\"x\"}", "ENOTFOUND",
		     NULL);

	/* The serving core replaces the model placeholder, and fills the
	 * model section of status; unregistered, the placeholder is back. */
	CU_ASSERT_EQUAL(
		ctl_register_command("model", model_cmd, NULL, "models"), 0);
	CU_ASSERT_EQUAL(ctl_register_status("model", model_status, NULL), 0);
	CU_ASSERT_EQUAL(ctl_register_status("model", model_status, NULL),
			SLM_EBUSY);
	r = rpc(fd, "{\"cmd\":\"model\",\"op\":\"list\"}");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(result(r), "loaded")),
			       "tiny.gguf");
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"status\"}");
	CU_ASSERT_STRING_EQUAL(
		cJSON_GetStringValue(field(field(result(r), "model"), "name")),
		"tiny.gguf");
	cJSON_Delete(r);
	ctl_unregister_command("model");
	ctl_unregister_status("model");
	expect_error(fd, "{\"cmd\":\"model\",\"op\":\"list\"}", "EUNSUPPORTED",
		     NULL);

	/* A source's drops reach stats: total and by reason; its gauge
	 * reaches top. */
	CU_ASSERT_EQUAL(perf_source_register("dataplane", dp_collect, NULL), 0);
	r = rpc(fd, "{\"cmd\":\"stats\"}");
	const cJSON *s = result(r);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(field(s, "drops_total")), 5);
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(
				field(field(s, "drops_by_reason"), "bad_mac")),
			3);
	bool unsourced = false;
	cJSON_ArrayForEach(it, field(s, "unsourced"))
	{
		unsourced |= !strcmp(it->valuestring, "drops_total");
	}
	CU_ASSERT_FALSE(unsourced);
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"top\"}");
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(field(field(result(r), "gauges"),
						   "queue_depth")),
			4);
	cJSON_Delete(r);
	perf_source_unregister("dataplane");
	close(fd);
	env_stop(&e);
}

/* ---- who may connect --------------------------------------------------- */

/*
 * In a child: become uid/gid 65534 (with `group` as the only
 * supplementary group, or none), connect, ask for status.  Exit status:
 * 0 answered ok, 1 refused with EAUTH, 2 connect failed with EACCES,
 * 3 anything else.
 */
static int as_nobody(const char *sock, gid_t group)
{
	pid_t pid = fork();
	if (pid == 0) {
		gid_t groups[1] = {group};
		if (syscall(SYS_setgroups, group ? 1 : 0, groups) ||
		    syscall(SYS_setresgid, 65534, 65534, 65534) ||
		    syscall(SYS_setresuid, 65534, 65534, 65534))
			_exit(3);
		int fd = dial(sock);
		if (fd < 0)
			_exit(errno == EACCES ? 2 : 3);
		char *line = NULL;
		send_all(fd, "{\"cmd\":\"status\"}\n", 17);
		line = read_line(fd);
		if (!line)
			_exit(3);
		if (strstr(line, "\"ok\":true"))
			_exit(0);
		_exit(strstr(line, "\"EAUTH\"") && strstr(line, "65534") ? 1
									 : 3);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 4;
}

static void test_peer_check(void)
{
	if (geteuid() != 0) {
		slm_test_skip("needs root to switch a child to another uid");
		return;
	}
	/* Mode 0666 lets anyone connect: SO_PEERCRED must refuse. */
	struct env e = {0};
	env_dir(&e);
	static const char *const open_mode[] = {"ctl.mode=0666", NULL};
	CU_ASSERT_EQUAL_FATAL(env_start(&e, open_mode), 0);
	CU_ASSERT_EQUAL(as_nobody(e.sock, 0), 1);
	/* The refusal is counted; the server goes on answering. */
	int fd = dial(e.sock);
	cJSON *r = rpc(fd, "{\"cmd\":\"stats\"}");
	CU_ASSERT_EQUAL(cJSON_GetNumberValue(
				field(field(result(r), "ctl_refused_by_reason"),
				      "not_allowed")),
			1);
	cJSON_Delete(r);
	close(fd);
	env_stop(&e);

	/* The default 0660 (root's group): the kernel refuses first. */
	struct env f = {0};
	env_dir(&f);
	CU_ASSERT_EQUAL_FATAL(env_start(&f, NULL), 0);
	CU_ASSERT_EQUAL(as_nobody(f.sock, 0), 2);
	env_stop(&f);

	/* Allowed by uid, and by a supplementary group. */
	struct env g = {0};
	env_dir(&g);
	static const char *const by_uid[] = {
		"ctl.mode=0666", "ctl.allow_uids=1234, 65534", NULL};
	CU_ASSERT_EQUAL_FATAL(env_start(&g, by_uid), 0);
	CU_ASSERT_EQUAL(as_nobody(g.sock, 0), 0);
	env_stop(&g);
	struct env h = {0};
	env_dir(&h);
	static const char *const by_gid[] = {"ctl.mode=0666",
					     "ctl.allow_gids=4242", NULL};
	CU_ASSERT_EQUAL_FATAL(env_start(&h, by_gid), 0);
	CU_ASSERT_EQUAL(as_nobody(h.sock, 4242), 0);
	CU_ASSERT_EQUAL(as_nobody(h.sock, 4243), 1);
	env_stop(&h);
}

static void test_max_clients(void)
{
	struct env e = {0};
	env_dir(&e);
	static const char *const sets[] = {"ctl.max_clients=2", NULL};
	CU_ASSERT_EQUAL_FATAL(env_start(&e, sets), 0);
	int a = dial(e.sock), b = dial(e.sock);
	cJSON *r = rpc(b, "{\"cmd\":\"status\"}");
	CU_ASSERT_PTR_NOT_NULL(result(r));
	cJSON_Delete(r);
	int c = dial(e.sock);
	r = read_response(c);
	CU_ASSERT_STRING_EQUAL(code(r), "EOVERLOAD");
	CU_ASSERT_PTR_NOT_NULL(strstr(message(r), "ctl.max_clients = 2"));
	cJSON_Delete(r);
	CU_ASSERT_PTR_NULL(read_line(c));
	close(c);
	/* One leaves: room for another. */
	close(a);
	slm_sleep_ns(50 * 1000000);
	c = dial(e.sock);
	r = rpc(c, "{\"cmd\":\"status\"}");
	CU_ASSERT_PTR_NOT_NULL(result(r));
	cJSON_Delete(r);
	close(b);
	close(c);
	env_stop(&e);
}

/* ---- metrics and health ------------------------------------------------ */

static int http_get(const char *url, const char *path, char **body)
{
	int port = atoi(strrchr(url, ':') + 1);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	char req[256];
	int n = snprintf(req, sizeof(req),
			 "GET %s HTTP/1.1\r\nHost: x\r\nConnection: "
			 "close\r\n\r\n",
			 path);
	send_all(fd, req, (size_t)n);
	size_t cap = 1 << 16, got = 0;
	char *buf = malloc(cap);
	ssize_t r;
	while ((r = recv(fd, buf + got, cap - got - 1, 0)) > 0) {
		got += (size_t)r;
		if (got + 1 == cap) {
			char *grown = realloc(buf, cap *= 2);
			if (!grown)
				break;
			buf = grown;
		}
	}
	buf[got] = '\0';
	close(fd);
	int status = 0;
	sscanf(buf, "HTTP/1.%*d %d", &status);
	const char *b = strstr(buf, "\r\n\r\n");
	*body = strdup(b ? b + 4 : "");
	free(buf);
	return status;
}

static void test_metrics_and_health(void)
{
	struct env e = {0};
	env_dir(&e);
	e.loader.hold_loading = true;
	static const char *const sets[] = {"metrics.listen=127.0.0.1:0", NULL};
	CU_ASSERT_EQUAL_FATAL(env_start(&e, sets), 0);
	const char *url = ctl_server_metrics_url(e.ctl);
	CU_ASSERT_PTR_NOT_NULL_FATAL(url);
	char *body = NULL;
	/* Loading: 503. */
	CU_ASSERT_EQUAL(slmd_state(e.d), SLMD_LOADING);
	CU_ASSERT_EQUAL(http_get(url, "/health", &body), 503);
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"state\":\"loading\""));
	free(body);
	CU_ASSERT_EQUAL(http_get(url, "/metrics", &body), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "slmd_state{state=\"loading\"} 1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "# TYPE slmd_ctl_connections_total "
					    "counter"));
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "slmd_thread_cpu_seconds_total{"
					    "thread=\"ctl0\"}"));
	/* Every sample line is NAME{...} VALUE of a family typed above. */
	int lines = 0, bad = 0;
	for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
		if (line[0] == '#')
			continue;
		lines++;
		char *sp = strrchr(line, ' ');
		char *end = NULL;
		if (!sp || strncmp(line, "slmd_", 5))
			bad++;
		else if (strtod(sp + 1, &end), *end)
			bad++;
	}
	CU_ASSERT(lines > 10);
	CU_ASSERT_EQUAL(bad, 0);
	free(body);
	/* Serving: 200.  Draining: 503 again. */
	slmd_set_state(e.d, SLMD_SERVING, NULL);
	CU_ASSERT_EQUAL(http_get(url, "/health", &body), 200);
	CU_ASSERT_PTR_NOT_NULL(strstr(body, "\"status\":\"ok\""));
	free(body);
	CU_ASSERT_EQUAL(http_get(url, "/nothing", &body), 404);
	free(body);
	int fd = dial(e.sock);
	cJSON *r = rpc(fd, "{\"cmd\":\"status\"}");
	CU_ASSERT_STRING_EQUAL(
		cJSON_GetStringValue(field(field(result(r), "ctl"), "metrics")),
		url);
	cJSON_Delete(r);
	r = rpc(fd, "{\"cmd\":\"drain\"}");
	CU_ASSERT(cJSON_IsTrue(field(result(r), "draining")));
	cJSON_Delete(r);
	for (int i = 0; i < 2000 && !slmd_drained(e.d); i++)
		slm_sleep_ns(1000000);
	CU_ASSERT_EQUAL(http_get(url, "/health", &body), 503);
	free(body);
	r = rpc(fd, "{\"cmd\":\"status\"}");
	CU_ASSERT_STRING_EQUAL(cJSON_GetStringValue(field(result(r), "state")),
			       "draining");
	CU_ASSERT(cJSON_IsTrue(field(result(r), "drained")));
	CU_ASSERT(cJSON_IsFalse(field(result(r), "exiting")));
	cJSON_Delete(r);

	/* shutdown: slmd_run returns, the socket goes away. */
	r = rpc(fd, "{\"cmd\":\"shutdown\"}");
	CU_ASSERT(cJSON_IsTrue(field(result(r), "stopping")));
	cJSON_Delete(r);
	pthread_join(e.thread, NULL);
	e.running = false;
	CU_ASSERT_EQUAL(e.rc, 0);
	struct stat st;
	CU_ASSERT_NOT_EQUAL(stat(e.sock, &st), 0);
	close(fd);
	env_stop(&e);
}

/* Without a daemon (the fuzz harness's mode): what needs one says so. */
static void test_answer_without_daemon(void)
{
	struct ctl_server *s = ctl_server_create();
	struct slm_config *cfg = slm_config_create();
	const char *req = "{\"cmd\":\"status\"}";
	char *out = ctl_server_answer(s, NULL, cfg, req, strlen(req));
	CU_ASSERT_PTR_NOT_NULL_FATAL(out);
	CU_ASSERT_EQUAL(out[strlen(out) - 1], '\n');
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"ok\":true"));
	free(out);
	req = "{\"cmd\":\"config\",\"op\":\"set\",\"args\":[\"log.level\","
	      "\"info\"]}";
	out = ctl_server_answer(s, NULL, cfg, req, strlen(req));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "ESTATE"));
	free(out);
	slm_config_destroy(cfg);
	ctl_server_destroy(s);
}

static int setup(void)
{
	slm_log_set_level(SLM_LOG_WARN);
	return 0;
}

SLM_SUITE("ctl", setup, NULL, {"socket file", test_socket_file},
	  {"protocol", test_protocol}, {"oversized lines", test_oversized},
	  {"status, stats, perf and the rest", test_status_stats_perf},
	  {"config", test_config}, {"registry", test_registry},
	  {"peer check", test_peer_check}, {"max clients", test_max_clients},
	  {"metrics and health", test_metrics_and_health},
	  {"answer without a daemon", test_answer_without_daemon})
