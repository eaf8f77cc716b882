/*
 * serve_daemon.h: the serving core as a component of slmd (daemon/daemon.h).
 *
 * start: the state goes to LOADING ("loading NAME: weights 40%" status
 * lines while the model loads), the serving core starts
 * (slm_serve_create), the attach hook hands it to whoever feeds it (the
 * dataplane), and the state goes to SERVING.  drain: submits are refused
 * with ESTATE; idle when no request is queued or running.  healthy: every
 * worker group made progress or had nothing to do.  stop: whatever still
 * runs is cancelled, threads and memory are released, the counters are
 * logged; the object stays (answering ESTATE) until
 * slm_serve_component_fini, after every component has stopped, because
 * the dataplane, stopped after it, still holds the pointer.
 *
 * On the control socket it answers `model list|load|unload|swap`
 * (slm_serve_model_ctl) from start to stop.
 */
#ifndef SLM_DAEMON_SERVE_DAEMON_H
#define SLM_DAEMON_SERVE_DAEMON_H

#include "daemon/daemon.h"
#include "daemon/serve.h"

struct slm_serve_component {
	/* Called once the serving core runs (from start), before the state
	 * becomes SERVING: give it to the dataplane.  Returns 0 or an
	 * error, which fails the start. */
	int (*attach)(void *ctx, struct slm_serve *serve);
	void *attach_ctx;
	/* private */
	struct slmd *d;
	struct slm_serve *serve;
	int last_pct;
	bool model_cmd; /* `model` registered on the control socket */
};

/* Add the component (after the dataplane's, so it stops first).
 * Returns 0 or the error of slmd_add_component. */
int slm_serve_component_add(struct slmd *d,
			    struct slm_serve_component *c) SLM_MUST_CHECK;

/* Free the serving core (after slmd_run has returned). */
void slm_serve_component_fini(struct slm_serve_component *c);

#endif
