/*
 * ctl.h: what a component plugs into the control socket.
 *
 * The control server (ctl/server.h) answers a set of built-in commands
 * (status, stats, perf, top, config, topology, log-level, drain, shutdown,
 * help).  Everything else comes from the components through this
 * registry, process-wide, so a component needs no handle on the server:
 *
 *   - a command: ctl_register_command("cache", cache_ctl, cache, "...")
 *     makes `{"cmd":"cache","op":"flush"}` (slmctl cache flush) call
 *     cache_ctl.  `model` and `cache` (and `topology`, answered from the
 *     config until the serving core knows the running plan) have
 *     placeholders in the server that a registration replaces; the
 *     built-in names are refused.
 *   - a status section: ctl_register_status("model", fn, ctx) fills the
 *     "model" object of `status` (model, dataplane and groups are null
 *     until someone registers them; other names are added as they come).
 *
 * Counters and histograms go through ctl/perf.h, not here.
 *
 * Handlers and status callbacks run on the control thread while the
 * registry is locked: they must return promptly (start long work such as
 * a model load in the background and report progress in status) and
 * must not register or unregister anything.  After an unregister returns,
 * the callback is not running and will not be called again, so its ctx
 * may be freed.  docs/ctl.md is the protocol.
 */
#ifndef SLM_CTL_CTL_H
#define SLM_CTL_CTL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <sys/types.h>

#include "common/err.h"

/* One request, as a handler sees it. */
struct ctl_request {
	const cJSON *json; /* the whole request object */
	const char *cmd;   /* "cache" */
	const char *op;	   /* the "op" field ("flush"), or NULL */
	const cJSON *args; /* the "args" array (strings), or NULL */
	/* The peer, from SO_PEERCRED (-1 when not a socket peer). */
	pid_t pid;
	uid_t uid;
	gid_t gid;
};

/*
 * Answer a request: fill `result` (an empty object) and return 0, or
 * return a negative SLM_E* code with err set (the client gets
 * {"ok":false,"error":{"code":"EINVAL","message":err->msg}}).
 */
typedef int (*ctl_command_fn)(void *ctx, const struct ctl_request *req,
			      cJSON *result, struct slm_error *err);

/* Register a command (name: [a-z][a-z0-9-]*; help: one line for
 * `slmctl help`).  SLM_EBUSY if the name is built in or taken. */
int ctl_register_command(const char *name, ctl_command_fn fn, void *ctx,
			 const char *help) SLM_MUST_CHECK;
void ctl_unregister_command(const char *name);

/* Fill the object `section` of `status`; return 0 or an SLM_E* code (the
 * section then reads {"error": "..."}). */
typedef int (*ctl_status_fn)(void *ctx, cJSON *section);
int ctl_register_status(const char *name, ctl_status_fn fn,
			void *ctx) SLM_MUST_CHECK;
void ctl_unregister_status(const char *name);

/* In a ctl_status_fn, before adding anything: make the section an array
 * (one object per item, e.g. the worker groups) rather than an object.
 * Items go in with cJSON_AddItemToArray. */
void ctl_status_make_list(cJSON *section);

/* ---- for handlers ------------------------------------------------------ */

/*
 * A string parameter: the field `name` of the request, else the args
 * element `pos` (pos < 0: none).  *out is NULL when absent.  SLM_EINVAL
 * with err set when present with another type.
 */
int ctl_param_string(const struct ctl_request *req, const char *name, int pos,
		     const char **out, struct slm_error *err) SLM_MUST_CHECK;

/* A boolean field (absent: *out unchanged). */
int ctl_param_bool(const struct ctl_request *req, const char *name, bool *out,
		   struct slm_error *err) SLM_MUST_CHECK;

/* The error a placeholder returns: SLM_EUNSUPPORTED, "WHAT: no serving
 * core in this build". */
int ctl_not_available(const char *what, struct slm_error *err);

#endif
