#include "daemon/notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "common/clock.h"
#include "common/log.h"

/* Status lines (load progress) at most this often; state changes always. */
#define STATUS_MIN_GAP_NS (100ull * 1000 * 1000)
/* Extension of the start/stop timeout per healthy tick: at least this,
 * and at least three ticks, so one late tick does not fail the unit. */
#define EXTEND_MIN_USEC (10ull * 1000 * 1000)
/* Stop timeout on drain: daemon.drain_timeout_ms plus this margin for the
 * components to stop after the drain gives up. */
#define DRAIN_MARGIN_USEC (15ull * 1000 * 1000)

#define STATUS_MAX 256

struct slmd_notify {
	const struct slm_config *cfg;
	bool enabled;		/* NOTIFY_SOCKET is set */
	uint64_t watchdog_usec; /* 0: systemd wants no pings */

	/* Guards everything below and keeps messages in call order. */
	pthread_mutex_t lock;
	enum slmd_state state;	       /* the last state seen */
	char state_status[STATUS_MAX]; /* its STATUS= text */
	bool ready_sent;	       /* READY=1 sent at least once */
	bool reload_pending;	       /* RELOADING=1 sent, READY=1 owed */
	bool starved;		       /* the last health tick was unhealthy */
	bool failure_logged;	       /* a failed send has been logged */
	uint64_t last_status_ns;       /* when the last status line went */
	struct slmd_notify_counters counters;
};

/* Copy text into out (size > 0), control characters made spaces: a
 * newline in a detail must not start a field of its own. */
static void clean_copy(char *out, size_t size, const char *text)
{
	size_t i = 0;
	for (; text && text[i] && i + 1 < size; i++) {
		unsigned char c = (unsigned char)text[i];
		out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	out[i] = '\0';
}

/* "<name>" or "<name>: <detail>", cleaned. */
static void state_text(char *out, size_t size, enum slmd_state state,
		       const char *detail)
{
	char raw[STATUS_MAX];
	if (detail && detail[0])
		snprintf(raw, sizeof(raw), "%s: %s", slmd_state_name(state),
			 detail);
	else
		snprintf(raw, sizeof(raw), "%s", slmd_state_name(state));
	clean_copy(out, size, raw);
}

/* Send one message; caller holds n->lock. */
static void send_locked(struct slmd_notify *n, const char *fmt, ...)
	SLM_PRINTF(2, 3);
static void send_locked(struct slmd_notify *n, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int rc = sd_notify(0, msg);
	if (rc > 0) {
		n->counters.sent++;
		if (strstr(msg, "WATCHDOG=1"))
			n->counters.pings++;
		return;
	}
	n->counters.failed++;
	if (!n->failure_logged) {
		n->failure_logged = true;
		SLM_WARN("systemd",
			 "sd_notify failed: %s (further failures "
			 "are counted, not logged)",
			 rc < 0 ? strerror(-rc) : "no notify socket");
	}
}

static uint64_t extend_usec(const struct slmd_notify *n)
{
	uint64_t tick_usec =
		(uint64_t)slm_cfg_int(n->cfg,
				      SLM_CFG_DAEMON_HEALTH_INTERVAL_MS) *
		1000ull;
	return SLM_MAX(EXTEND_MIN_USEC, 3 * tick_usec);
}

static void on_state(void *ctx, enum slmd_state state, const char *detail)
{
	struct slmd_notify *n = ctx;
	if (!n->enabled)
		return;
	pthread_mutex_lock(&n->lock);
	n->state = state;
	state_text(n->state_status, sizeof(n->state_status), state, detail);
	switch (state) {
	case SLMD_STARTING:
	case SLMD_LOADING:
		send_locked(n, "STATUS=%s", n->state_status);
		break;
	case SLMD_SERVING:
		send_locked(n, "READY=1\nSTATUS=%s", n->state_status);
		n->ready_sent = true;
		n->reload_pending = false;
		break;
	case SLMD_DRAINING: {
		uint64_t drain_usec =
			(uint64_t)slm_cfg_int(n->cfg,
					      SLM_CFG_DAEMON_DRAIN_TIMEOUT_MS) *
			1000ull;
		send_locked(
			n, "STOPPING=1\nSTATUS=%s\nEXTEND_TIMEOUT_USEC=%llu",
			n->state_status,
			(unsigned long long)(drain_usec + DRAIN_MARGIN_USEC));
		break;
	}
	case SLMD_STOPPING:
		send_locked(n, "STOPPING=1\nSTATUS=%s", n->state_status);
		break;
	}
	pthread_mutex_unlock(&n->lock);
}

static void on_status(void *ctx, const char *line)
{
	struct slmd_notify *n = ctx;
	if (!n->enabled)
		return;
	char text[STATUS_MAX];
	clean_copy(text, sizeof(text), line);
	pthread_mutex_lock(&n->lock);
	uint64_t now = slm_now_ns();
	if (!n->last_status_ns ||
	    now - n->last_status_ns >= STATUS_MIN_GAP_NS) {
		n->last_status_ns = now;
		send_locked(n, "STATUS=%s", text);
	}
	pthread_mutex_unlock(&n->lock);
}

static void on_health(void *ctx, bool healthy)
{
	struct slmd_notify *n = ctx;
	if (!n->enabled)
		return;
	pthread_mutex_lock(&n->lock);
	if (!healthy) {
		if (!n->starved && n->watchdog_usec)
			SLM_WARN("systemd",
				 "watchdog not fed: a component makes no "
				 "progress; systemd restarts slmd if this "
				 "lasts %.1f s",
				 (double)n->watchdog_usec / 1e6);
		n->starved = true;
		pthread_mutex_unlock(&n->lock);
		return;
	}
	if (n->starved && n->watchdog_usec)
		SLM_INFO("systemd", "watchdog fed again: every component "
				    "makes progress");
	n->starved = false;
	bool ping = n->watchdog_usec && n->state != SLMD_STOPPING;
	bool extend = n->state == SLMD_STARTING || n->state == SLMD_LOADING ||
		      n->state == SLMD_DRAINING;
	if (ping && extend)
		send_locked(n, "WATCHDOG=1\nEXTEND_TIMEOUT_USEC=%llu",
			    (unsigned long long)extend_usec(n));
	else if (ping)
		send_locked(n, "WATCHDOG=1");
	else if (extend)
		send_locked(n, "EXTEND_TIMEOUT_USEC=%llu",
			    (unsigned long long)extend_usec(n));
	pthread_mutex_unlock(&n->lock);
}

static void on_reloading(void *ctx, bool begin)
{
	struct slmd_notify *n = ctx;
	if (!n->enabled)
		return;
	pthread_mutex_lock(&n->lock);
	if (begin) {
		if (n->ready_sent && n->state == SLMD_SERVING) {
			/* MONOTONIC_USEC lets systemd >= 253 tell this reload
			 * from an earlier one; older versions ignore it. */
			send_locked(n,
				    "RELOADING=1\nMONOTONIC_USEC=%llu\n"
				    "STATUS=reloading configuration",
				    (unsigned long long)(slm_now_ns() / 1000));
			n->reload_pending = true;
		} else {
			send_locked(n, "STATUS=%s (reloading configuration)",
				    n->state_status);
		}
	} else if (n->reload_pending) {
		send_locked(n, "READY=1\nSTATUS=%s", n->state_status);
		n->reload_pending = false;
	} else {
		send_locked(n, "STATUS=%s", n->state_status);
	}
	pthread_mutex_unlock(&n->lock);
}

struct slmd_notify *slmd_notify_create(const struct slm_config *cfg)
{
	struct slmd_notify *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->cfg = cfg;
	n->state = SLMD_STARTING;
	snprintf(n->state_status, sizeof(n->state_status), "%s",
		 slmd_state_name(SLMD_STARTING));
	pthread_mutex_init(&n->lock, NULL);

	const char *sock = getenv("NOTIFY_SOCKET");
	n->enabled = sock && sock[0];
	uint64_t usec = 0;
	/* 1: unset WATCHDOG_USEC/WATCHDOG_PID for the children. */
	if (sd_watchdog_enabled(1, &usec) > 0)
		n->watchdog_usec = usec;
	if (!n->enabled) {
		if (n->watchdog_usec)
			SLM_WARN("systemd", "WATCHDOG_USEC is set but "
					    "NOTIFY_SOCKET is not: no pings");
		n->watchdog_usec = 0;
		return n;
	}
	int64_t interval_ms =
		slm_cfg_int(cfg, SLM_CFG_DAEMON_HEALTH_INTERVAL_MS);
	if (n->watchdog_usec)
		SLM_INFO("systemd",
			 "notify socket %s; watchdog %.1f s, fed every %lld ms "
			 "while every component makes progress",
			 sock, (double)n->watchdog_usec / 1e6,
			 (long long)interval_ms);
	else
		SLM_INFO("systemd", "notify socket %s; no watchdog", sock);
	if (n->watchdog_usec &&
	    (uint64_t)interval_ms * 1000ull * 2 > n->watchdog_usec)
		SLM_WARN("systemd",
			 "daemon.health_interval_ms = %lld is more than half "
			 "the watchdog period (%.1f s): systemd may restart a "
			 "healthy slmd; lower it or raise WatchdogSec",
			 (long long)interval_ms,
			 (double)n->watchdog_usec / 1e6);
	return n;
}

void slmd_notify_destroy(struct slmd_notify *n)
{
	if (!n)
		return;
	pthread_mutex_destroy(&n->lock);
	free(n);
}

struct slmd_observer slmd_notify_observer(struct slmd_notify *n)
{
	return (struct slmd_observer){.ctx = n,
				      .state = on_state,
				      .status = on_status,
				      .health = on_health,
				      .reloading = on_reloading};
}

bool slmd_notify_enabled(const struct slmd_notify *n)
{
	return n->enabled;
}

uint64_t slmd_notify_watchdog_usec(const struct slmd_notify *n)
{
	return n->watchdog_usec;
}

void slmd_notify_counters(struct slmd_notify *n,
			  struct slmd_notify_counters *out)
{
	pthread_mutex_lock(&n->lock);
	*out = n->counters;
	pthread_mutex_unlock(&n->lock);
}
