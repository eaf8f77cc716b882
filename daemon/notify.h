/*
 * notify.h: slmd's life told to systemd (sd_notify, Type=notify).
 *
 * An observer of the daemon (daemon.h) that turns its states, status
 * lines, health ticks and reloads into the service manager's messages:
 *
 *   state starting, loading   STATUS=loading: <detail> (e.g. "... 40%")
 *   a status line             STATUS=<line> (at most one per 100 ms;
 *                             state changes are never held back)
 *   state serving             READY=1, STATUS=serving[: <detail>]
 *   reload begins (SIGHUP)    RELOADING=1, MONOTONIC_USEC=<now>, STATUS
 *   reload ends               READY=1, STATUS=<the state's status again>
 *   state draining            STOPPING=1, STATUS, EXTEND_TIMEOUT_USEC=
 *                             daemon.drain_timeout_ms + 15 s
 *   state stopping            STOPPING=1, STATUS
 *   health tick, healthy      WATCHDOG=1 when systemd asked for pings;
 *                             while loading or draining also
 *                             EXTEND_TIMEOUT_USEC=max(10 s, 3 ticks), so
 *                             a load or drain that makes progress is not
 *                             cut off by TimeoutStartSec/TimeoutStopSec,
 *                             and one that stalls is
 *   health tick, unhealthy    nothing: a stuck component stops the pings
 *                             and systemd restarts slmd after WatchdogSec
 *
 * READY=1 is sent only when the state reaches serving, which the serving
 * core sets once the model is loaded and the dataplane receives.  A reload
 * before slmd was ever ready sends no RELOADING=1 (there is nothing for
 * systemd to wait on); a return to serving after a model swap sends
 * READY=1 again, which systemd ignores while running.
 *
 * Without NOTIFY_SOCKET (not under systemd) every hook does nothing.
 * Without WATCHDOG_USEC (or with a WATCHDOG_PID that is not this process)
 * there are no pings.  Text that goes into STATUS= has its control
 * characters replaced by spaces: a detail can never inject a field.
 *
 * Thread-safety: the hooks may be called from any thread (the daemon calls
 * them from its main thread, its health thread and whichever thread sets
 * the state); one lock keeps the messages in the order of the calls.
 */
#ifndef SLM_DAEMON_NOTIFY_H
#define SLM_DAEMON_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "daemon/daemon.h"

struct slmd_notify;

/*
 * Create the observer.  cfg (not owned, must outlive it) gives
 * daemon.health_interval_ms and daemon.drain_timeout_ms, read when used.
 * Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, and removes the
 * last two from the environment so that child processes do not take the
 * watchdog for theirs: call it before other threads start.  Logs what it
 * found, and warns when daemon.health_interval_ms is more than half the
 * watchdog period.  NULL when out of memory.
 */
struct slmd_notify *slmd_notify_create(const struct slm_config *cfg);
void slmd_notify_destroy(struct slmd_notify *n);

/* The observer to give slmd_add_observer; valid while n lives. */
struct slmd_observer slmd_notify_observer(struct slmd_notify *n);

/* True when NOTIFY_SOCKET was set. */
bool slmd_notify_enabled(const struct slmd_notify *n);

/* The watchdog period systemd asked for, in microseconds; 0 = none. */
uint64_t slmd_notify_watchdog_usec(const struct slmd_notify *n);

/* Messages sent, sends that failed, and WATCHDOG=1 pings among those
 * sent (any thread; for status and tests). */
struct slmd_notify_counters {
	uint64_t sent;
	uint64_t failed;
	uint64_t pings;
};
void slmd_notify_counters(struct slmd_notify *n,
			  struct slmd_notify_counters *out);

#endif
