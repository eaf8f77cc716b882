/*
 * The sd_notify observer against a datagram socket the test owns: which
 * message each hook sends, and which it must not.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/config.h"
#include "daemon/notify.h"
#include "tests/unit/harness.h"

static int sock_fd = -1;
static char sock_path[256];
static struct slm_config *cfg;

static int setup(void)
{
	snprintf(sock_path, sizeof(sock_path), "%s/notify.sock",
		 slm_test_tmpdir());
	unlink(sock_path);
	sock_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", sock_path);
	if (sock_fd < 0 || bind(sock_fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	cfg = slm_config_create();
	return cfg ? 0 : -1;
}

static int teardown(void)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (sock_fd >= 0)
		close(sock_fd);
	unlink(sock_path);
	slm_config_destroy(cfg);
	return 0;
}

/* The next message, or "" when none comes within wait_ms. */
static const char *next_msg(int wait_ms)
{
	static char buf[2048];
	struct pollfd p = {.fd = sock_fd, .events = POLLIN};
	buf[0] = '\0';
	if (poll(&p, 1, wait_ms) != 1)
		return buf;
	ssize_t n = recv(sock_fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static void drain_socket(void)
{
	while (next_msg(0)[0])
		;
}

/* True when msg has a line exactly equal to field. */
static bool has_field(const char *msg, const char *field)
{
	size_t len = strlen(field);
	for (const char *p = msg; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		if (l == len && !memcmp(p, field, len))
			return true;
		if (!nl)
			break;
		p = nl + 1;
	}
	return false;
}

/* The value of NAME= in msg, or NULL (copied into a static buffer). */
static const char *field_value(const char *msg, const char *name)
{
	static char v[512];
	size_t len = strlen(name);
	for (const char *p = msg; *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		if (l > len && !memcmp(p, name, len) && p[len] == '=') {
			snprintf(v, sizeof(v), "%.*s", (int)(l - len - 1),
				 p + len + 1);
			return v;
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return NULL;
}

static struct slmd_notify *make(bool watchdog)
{
	setenv("NOTIFY_SOCKET", sock_path, 1);
	if (watchdog) {
		char pid[32];
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		setenv("WATCHDOG_USEC", "4000000", 1);
		setenv("WATCHDOG_PID", pid, 1);
	} else {
		unsetenv("WATCHDOG_USEC");
		unsetenv("WATCHDOG_PID");
	}
	drain_socket();
	return slmd_notify_create(cfg);
}

static void test_life(void)
{
	struct slmd_notify *n = make(true);
	CU_ASSERT_FATAL(n != NULL);
	CU_ASSERT(slmd_notify_enabled(n));
	CU_ASSERT_EQUAL(slmd_notify_watchdog_usec(n), 4000000);
	/* Children do not inherit the watchdog. */
	CU_ASSERT_PTR_NULL(getenv("WATCHDOG_USEC"));
	CU_ASSERT_PTR_NULL(getenv("WATCHDOG_PID"));
	struct slmd_observer o = slmd_notify_observer(n);

	o.state(o.ctx, SLMD_LOADING, "model.gguf 40%");
	const char *m = next_msg(1000);
	CU_ASSERT_STRING_EQUAL(m, "STATUS=loading: model.gguf 40%");

	/* Healthy while loading: the start timeout is extended. */
	o.health(o.ctx, true);
	m = next_msg(1000);
	CU_ASSERT(has_field(m, "WATCHDOG=1"));
	CU_ASSERT_STRING_EQUAL(field_value(m, "EXTEND_TIMEOUT_USEC"),
			       "10000000");
	CU_ASSERT(!has_field(m, "READY=1"));

	o.state(o.ctx, SLMD_SERVING, NULL);
	m = next_msg(1000);
	CU_ASSERT(has_field(m, "READY=1"));
	CU_ASSERT(has_field(m, "STATUS=serving"));

	o.health(o.ctx, true);
	CU_ASSERT_STRING_EQUAL(next_msg(1000), "WATCHDOG=1");

	/* Unhealthy: silence, so systemd's watchdog fires. */
	o.health(o.ctx, false);
	CU_ASSERT_STRING_EQUAL(next_msg(100), "");
	o.health(o.ctx, true);
	CU_ASSERT_STRING_EQUAL(next_msg(1000), "WATCHDOG=1");

	uint64_t t0 = slm_now_ns() / 1000;
	o.reloading(o.ctx, true);
	uint64_t t1 = slm_now_ns() / 1000;
	m = next_msg(1000);
	CU_ASSERT(has_field(m, "RELOADING=1"));
	const char *mono = field_value(m, "MONOTONIC_USEC");
	CU_ASSERT_FATAL(mono != NULL);
	uint64_t us = strtoull(mono, NULL, 10);
	CU_ASSERT(us >= t0 && us <= t1);
	o.reloading(o.ctx, false);
	m = next_msg(1000);
	CU_ASSERT(has_field(m, "READY=1"));
	CU_ASSERT(has_field(m, "STATUS=serving"));

	o.state(o.ctx, SLMD_DRAINING, NULL);
	m = next_msg(1000);
	CU_ASSERT(has_field(m, "STOPPING=1"));
	CU_ASSERT(has_field(m, "STATUS=draining"));
	/* daemon.drain_timeout_ms (30 s default) + 15 s. */
	CU_ASSERT_STRING_EQUAL(field_value(m, "EXTEND_TIMEOUT_USEC"),
			       "45000000");

	o.state(o.ctx, SLMD_STOPPING, NULL);
	m = next_msg(1000);
	CU_ASSERT(has_field(m, "STOPPING=1"));
	CU_ASSERT(has_field(m, "STATUS=stopping"));
	/* No pings once stopping. */
	o.health(o.ctx, true);
	CU_ASSERT_STRING_EQUAL(next_msg(100), "");

	struct slmd_notify_counters c;
	slmd_notify_counters(n, &c);
	CU_ASSERT_EQUAL(c.failed, 0);
	CU_ASSERT_EQUAL(c.pings, 3);
	CU_ASSERT_EQUAL(c.sent, 9);
	slmd_notify_destroy(n);
}

static void test_no_watchdog(void)
{
	struct slmd_notify *n = make(false);
	CU_ASSERT_FATAL(n != NULL);
	CU_ASSERT_EQUAL(slmd_notify_watchdog_usec(n), 0);
	struct slmd_observer o = slmd_notify_observer(n);
	o.state(o.ctx, SLMD_SERVING, NULL);
	CU_ASSERT(has_field(next_msg(1000), "READY=1"));
	o.health(o.ctx, true);
	CU_ASSERT_STRING_EQUAL(next_msg(100), "");
	slmd_notify_destroy(n);

	/* A watchdog meant for another process is not ours. */
	setenv("NOTIFY_SOCKET", sock_path, 1);
	setenv("WATCHDOG_USEC", "4000000", 1);
	setenv("WATCHDOG_PID", "1", 1);
	n = slmd_notify_create(cfg);
	CU_ASSERT_FATAL(n != NULL);
	CU_ASSERT_EQUAL(slmd_notify_watchdog_usec(n), 0);
	o = slmd_notify_observer(n);
	o.state(o.ctx, SLMD_SERVING, NULL);
	next_msg(1000);
	o.health(o.ctx, true);
	CU_ASSERT_STRING_EQUAL(next_msg(100), "");
	slmd_notify_destroy(n);
}

static void test_not_ready_yet(void)
{
	struct slmd_notify *n = make(true);
	CU_ASSERT_FATAL(n != NULL);
	struct slmd_observer o = slmd_notify_observer(n);
	o.state(o.ctx, SLMD_LOADING, "big.gguf 3%");
	next_msg(1000);
	/* A reload while loading: no RELOADING=1, and above all no READY=1
	 * at its end. */
	o.reloading(o.ctx, true);
	const char *m = next_msg(1000);
	CU_ASSERT(!has_field(m, "RELOADING=1"));
	CU_ASSERT_PTR_NOT_NULL(strstr(m, "STATUS=loading: big.gguf 3%"));
	o.reloading(o.ctx, false);
	m = next_msg(1000);
	CU_ASSERT(!has_field(m, "READY=1"));
	CU_ASSERT_STRING_EQUAL(m, "STATUS=loading: big.gguf 3%");
	/* A failed start: STOPPING with the reason. */
	o.state(o.ctx, SLMD_STOPPING, "dataplane: cannot bind");
	m = next_msg(1000);
	CU_ASSERT(has_field(m, "STOPPING=1"));
	CU_ASSERT(has_field(m, "STATUS=stopping: dataplane: cannot bind"));
	CU_ASSERT(!has_field(m, "READY=1"));
	slmd_notify_destroy(n);
}

static void test_status_text(void)
{
	struct slmd_notify *n = make(false);
	CU_ASSERT_FATAL(n != NULL);
	struct slmd_observer o = slmd_notify_observer(n);
	/* A newline in a detail must not become a field of its own. */
	o.state(o.ctx, SLMD_LOADING, "evil\nREADY=1\r\tx");
	const char *m = next_msg(1000);
	CU_ASSERT(!has_field(m, "READY=1"));
	CU_ASSERT_STRING_EQUAL(m, "STATUS=loading: evil READY=1  x");
	o.status(o.ctx, "line\nWATCHDOG=1");
	m = next_msg(1000);
	CU_ASSERT_STRING_EQUAL(m, "STATUS=line WATCHDOG=1");

	/* Status lines at most every 100 ms; state changes are never held. */
	o.status(o.ctx, "loading: 50%");
	CU_ASSERT_STRING_EQUAL(next_msg(50), "");
	o.state(o.ctx, SLMD_LOADING, "60%");
	CU_ASSERT_STRING_EQUAL(next_msg(1000), "STATUS=loading: 60%");
	slm_sleep_ns(120ull * 1000 * 1000);
	o.status(o.ctx, "loading: 70%");
	CU_ASSERT_STRING_EQUAL(next_msg(1000), "STATUS=loading: 70%");
	slmd_notify_destroy(n);
}

static void test_not_under_systemd(void)
{
	unsetenv("NOTIFY_SOCKET");
	setenv("WATCHDOG_USEC", "4000000", 1);
	unsetenv("WATCHDOG_PID");
	drain_socket();
	struct slmd_notify *n = slmd_notify_create(cfg);
	CU_ASSERT_FATAL(n != NULL);
	CU_ASSERT(!slmd_notify_enabled(n));
	CU_ASSERT_EQUAL(slmd_notify_watchdog_usec(n), 0);
	struct slmd_observer o = slmd_notify_observer(n);
	o.state(o.ctx, SLMD_SERVING, NULL);
	o.health(o.ctx, true);
	o.reloading(o.ctx, true);
	o.reloading(o.ctx, false);
	o.status(o.ctx, "x");
	CU_ASSERT_STRING_EQUAL(next_msg(50), "");
	struct slmd_notify_counters c;
	slmd_notify_counters(n, &c);
	CU_ASSERT_EQUAL(c.sent + c.failed, 0);
	slmd_notify_destroy(n);
}

static void test_send_failure_counted(void)
{
	/* A socket that went away: counted, not fatal. */
	char gone[300];
	snprintf(gone, sizeof(gone), "%s/gone.sock", slm_test_tmpdir());
	setenv("NOTIFY_SOCKET", gone, 1);
	unsetenv("WATCHDOG_USEC");
	struct slmd_notify *n = slmd_notify_create(cfg);
	CU_ASSERT_FATAL(n != NULL);
	struct slmd_observer o = slmd_notify_observer(n);
	o.state(o.ctx, SLMD_SERVING, NULL);
	o.state(o.ctx, SLMD_DRAINING, NULL);
	struct slmd_notify_counters c;
	slmd_notify_counters(n, &c);
	CU_ASSERT_EQUAL(c.sent, 0);
	CU_ASSERT_EQUAL(c.failed, 2);
	slmd_notify_destroy(n);
}

SLM_SUITE("notify", setup, teardown, {"life", test_life},
	  {"no_watchdog", test_no_watchdog},
	  {"not_ready_yet", test_not_ready_yet},
	  {"status_text", test_status_text},
	  {"not_under_systemd", test_not_under_systemd},
	  {"send_failure_counted", test_send_failure_counted})
