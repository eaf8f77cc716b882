/*
 * daemon.h: the running slmd: its state, its components and its life.
 *
 * slmd is a set of components (control socket, dataplane, serving core,
 * metrics exporter, ...) started in the order they are added and stopped
 * in reverse.  This module owns what they share: the config, the state
 * (loading -> serving -> draining -> stopping), the signals, and the
 * health check that feeds the systemd watchdog.
 *
 *   SIGTERM, SIGINT  drain: every component stops accepting work, in-flight
 *                    requests finish (up to daemon.drain_timeout_ms), then
 *                    every component stops and slmd_run returns 0.
 *   SIGHUP           reload: the config file is read again and the values
 *                    of runtime keys are applied; each component's reload
 *                    hook sees the new config.  A bad file changes nothing
 *                    and is logged.  slmd_reload does the same on request
 *                    (slmctl config reload) and slmd_set_runtime changes
 *                    chosen keys (slmctl config set).
 *
 * Draining without stopping (slmctl drain): slmd_request_drain makes the
 * run thread call every drain hook and enter DRAINING, and slmd stays up,
 * answering the control socket, until a stop is requested; slmd_drained
 * turns true once every component is idle.  There is no way back to
 * SERVING (components cannot take drained work back up): restart slmd.
 * Such a drain is not a state change for the observers (slmd_state says
 * DRAINING; observers get a status line): for systemd the service still
 * runs.  A stop afterwards announces DRAINING (detail "stopping") without
 * calling the drain hooks twice, then STOPPING.
 *
 * Observers (sd_notify, the ctl server's status) register for state
 * changes and health ticks.  All functions are thread-safe unless noted.
 */
#ifndef SLM_DAEMON_DAEMON_H
#define SLM_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stdint.h>

#include "common/config.h"
#include "common/err.h"

enum slmd_state {
	SLMD_STARTING, /* components starting */
	SLMD_LOADING,  /* a model is loading; ctl and ping answer */
	SLMD_SERVING,  /* accepting requests */
	SLMD_DRAINING, /* not accepting; finishing in-flight requests */
	SLMD_STOPPING, /* components stopping */
};

/* "starting", "loading", "serving", "draining", "stopping". */
const char *slmd_state_name(enum slmd_state state);

struct slmd;

/*
 * A component.  Every hook is optional (NULL).  Hooks run on the thread
 * that calls slmd_run, except where noted.
 */
struct slmd_component {
	const char *name;
	void *ctx;
	/* Start; a failure stops the components already started and makes
	 * slmd_run return the error. */
	int (*start)(void *ctx, struct slmd *d, struct slm_error *err);
	/* Stop accepting new work (drain begins). */
	void (*drain)(void *ctx);
	/* True when no work is in flight (polled while draining). */
	bool (*idle)(void *ctx);
	/* Stop and release everything; after drain, or on start failure. */
	void (*stop)(void *ctx);
	/* Apply a reloaded config (runtime keys only changed).  Runs on the
	 * run thread (SIGHUP) or on the thread that called slmd_reload or
	 * slmd_set_runtime (the control thread), never two at once. */
	int (*reload)(void *ctx, const struct slm_config *cfg,
		      struct slm_error *err);
	/* True while the component makes progress (the watchdog pings only
	 * when every component is healthy).  Called on the health thread. */
	bool (*healthy)(void *ctx);
};

/* Observers of the daemon's life (sd_notify, logs). */
struct slmd_observer {
	void *ctx;
	/* The state changed (detail: e.g. "loading model.gguf 40%"). */
	void (*state)(void *ctx, enum slmd_state state, const char *detail);
	/* A free-form status line while loading or draining. */
	void (*status)(void *ctx, const char *status);
	/* Every daemon.health_interval_ms, with the verdict of all
	 * components' healthy hooks. */
	void (*health)(void *ctx, bool healthy);
	/* A reload or runtime change begins (true) or ends (false); on the
	 * thread that runs it (see the reload hook). */
	void (*reloading)(void *ctx, bool begin);
};

/*
 * Create a daemon over cfg (not owned; it must outlive the daemon).  args
 * are the -c file and --set overrides cfg was made from: SIGHUP reads the
 * file again and applies the overrides on top, so a --set survives a
 * reload.  args is copied; its strings must outlive the daemon (argv
 * does).  NULL when out of memory.
 */
struct slmd *slmd_create(struct slm_config *cfg,
			 const struct slm_config_args *args);
void slmd_destroy(struct slmd *d);

/* Components and observers must be added before slmd_run. */
int slmd_add_component(struct slmd *d,
		       const struct slmd_component *c) SLM_MUST_CHECK;
int slmd_add_observer(struct slmd *d,
		      const struct slmd_observer *o) SLM_MUST_CHECK;

/*
 * Start every component in order, then wait for signals until a drain
 * completes.  Blocks SIGTERM, SIGINT and SIGHUP in the calling thread
 * (call it from main before starting other threads, so they inherit the
 * mask).  Returns 0 after a clean stop, or the first start error.
 */
int slmd_run(struct slmd *d, struct slm_error *err) SLM_MUST_CHECK;

/* Ask slmd_run to drain and stop, as SIGTERM does (any thread). */
void slmd_request_stop(struct slmd *d);

/* Ask slmd_run to drain and stay up (any thread); it acts within
 * about 50 ms.  See the top of this file. */
void slmd_request_drain(struct slmd *d);

/* A stop was requested (signal or slmd_request_stop): slmd will exit. */
bool slmd_exiting(const struct slmd *d);

/* A drain without stop completed: no component has work in flight. */
bool slmd_drained(const struct slmd *d);

/* The last verdict of the health check: 1 healthy, 0 not, -1 before the
 * first check (daemon.health_interval_ms after start). */
int slmd_healthy(const struct slmd *d);

/*
 * Re-read the config file and apply the changed runtime keys as one
 * change, then call every reload hook, exactly as SIGHUP does; on the
 * calling thread (any thread but one that is inside a hook).  note, if
 * not NULL, is told every key whose value differs (applied false: it
 * needs a restart and was kept).  A bad file changes nothing and is an
 * error (SLM_ECONFIG naming file and line).
 */
typedef void (*slmd_reload_note_fn)(void *ctx, const char *key,
				    const char *old_value,
				    const char *new_value, bool applied);
int slmd_reload(struct slmd *d, slmd_reload_note_fn note, void *note_ctx,
		struct slm_error *err) SLM_MUST_CHECK;

/*
 * Set n runtime keys as one change (slm_config_set_runtime_many: all or
 * nothing, validated by the key table), then call every reload hook.
 * origin names who changed them (slm_config_origin shows it).
 */
int slmd_set_runtime(struct slmd *d, int n, const char *const *keys,
		     const char *const *values, const char *origin,
		     struct slm_error *err) SLM_MUST_CHECK;

/* Set the state and tell the observers (any thread). */
void slmd_set_state(struct slmd *d, enum slmd_state state, const char *detail);
enum slmd_state slmd_state(const struct slmd *d);

/*
 * Move from one state to another only if the daemon is still in `from`
 * (e.g. a background load finishing: LOADING -> SERVING must not undo a
 * drain that began meanwhile).  Returns whether the state changed; the
 * observers hear of it only then.
 */
bool slmd_transition(struct slmd *d, enum slmd_state from, enum slmd_state to,
		     const char *detail);

/* Tell the observers a status line (e.g. load progress). */
void slmd_status(struct slmd *d, const char *fmt, ...) SLM_PRINTF(2, 3);

/* The config (runtime keys may change on reload) and uptime. */
struct slm_config *slmd_config(const struct slmd *d);
uint64_t slmd_uptime_ns(const struct slmd *d);

/* Names of the components, in start order (for status). */
int slmd_n_components(const struct slmd *d);
const char *slmd_component_name(const struct slmd *d, int index);

#endif
