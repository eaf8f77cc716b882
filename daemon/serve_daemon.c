#include "daemon/serve_daemon.h"

#include <stdio.h>

#include "common/log.h"
#include "daemon/serve_ctl.h"
#include "ctl/ctl.h"

static void on_progress(void *ctx, const char *what, int pct)
{
	struct slm_serve_component *c = ctx;
	if (pct == c->last_pct)
		return;
	c->last_pct = pct;
	char detail[256];
	snprintf(detail, sizeof(detail), "loading %s %d%%", what, pct);
	slmd_status(c->d, "%s", detail);
}

/* `model list | load PATH | unload NAME | swap PATH|NAME` (ctl/ctl.h). */
static int model_cmd(void *ctx, const struct ctl_request *req, cJSON *result,
		     struct slm_error *err)
{
	struct slm_serve_component *c = ctx;
	const char *arg = NULL;
	int rc = ctl_param_string(req, "path", 0, &arg, err);
	if (!rc && !arg)
		rc = ctl_param_string(req, "name", 0, &arg, err);
	if (rc)
		return rc;
	return slm_serve_model_ctl(c->serve, req->op, arg, result, err);
}

static int serve_start(void *ctx, struct slmd *d, struct slm_error *err)
{
	struct slm_serve_component *c = ctx;
	c->d = d;
	c->last_pct = -1;
	slmd_set_state(d, SLMD_LOADING, "loading the model");
	int rc = slm_serve_create(slmd_config(d), on_progress, c, &c->serve,
				  err);
	if (rc)
		return rc;
	if (c->attach) {
		rc = c->attach(c->attach_ctx, c->serve);
		if (rc) {
			slm_serve_stop(c->serve);
			return slm_error_set(err, rc,
					     "cannot attach the serving core "
					     "to the dataplane");
		}
	}
	struct slm_error cerr = {0};
	if (slm_serve_ctl_register(c->serve, &cerr))
		SLM_WARN("serve", "%s: slmctl will not see it", cerr.msg);
	if (ctl_register_command("model", model_cmd, c,
				 "model list | load PATH | unload NAME | swap "
				 "PATH|NAME")) {
		SLM_WARN("serve", "the model command is registered already: "
				  "slmctl model talks to someone else");
	} else {
		c->model_cmd = true;
	}
	struct slm_serve_info info;
	char detail[256] = "";
	if (slm_serve_describe(c->serve, &info))
		snprintf(detail, sizeof(detail), "model %s%s", info.name,
			 info.synthetic ? " (synthetic, random weights)" : "");
	slmd_set_state(d, SLMD_SERVING, detail);
	return 0;
}

static void serve_drain(void *ctx)
{
	struct slm_serve_component *c = ctx;
	if (c->serve)
		slm_serve_drain(c->serve);
}

static bool serve_idle(void *ctx)
{
	struct slm_serve_component *c = ctx;
	return !c->serve || slm_serve_idle(c->serve);
}

static bool serve_healthy(void *ctx)
{
	struct slm_serve_component *c = ctx;
	return !c->serve || slm_serve_healthy(c->serve);
}

static void serve_stop(void *ctx)
{
	struct slm_serve_component *c = ctx;
	if (!c->serve)
		return;
	/* no control request reads the core from here on */
	slm_serve_ctl_unregister();
	if (c->model_cmd)
		ctl_unregister_command("model");
	c->model_cmd = false;
	slm_serve_stop(c->serve);
	struct slm_serve_stats st;
	slm_serve_stats_get(c->serve, &st);
	SLM_INFO("serve",
		 "counters: submitted=%llu stop=%llu length=%llu "
		 "canceled=%llu deadline=%llu error=%llu overload=%llu "
		 "invalid=%llu toobig=%llu prompt_tokens=%llu "
		 "cached_tokens=%llu generated_tokens=%llu "
		 "forward_passes=%llu preemptions=%llu cache_evictions=%llu",
		 (unsigned long long)st.submitted,
		 (unsigned long long)st.finished[SLM_FINISH_STOP],
		 (unsigned long long)st.finished[SLM_FINISH_LENGTH],
		 (unsigned long long)st.finished[SLM_FINISH_CANCELED],
		 (unsigned long long)st.finished[SLM_FINISH_DEADLINE],
		 (unsigned long long)st.finished[SLM_FINISH_ERROR],
		 (unsigned long long)st.refused_overload,
		 (unsigned long long)st.refused_invalid,
		 (unsigned long long)st.refused_toobig,
		 (unsigned long long)st.prompt_tokens,
		 (unsigned long long)st.cached_tokens,
		 (unsigned long long)st.generated_tokens,
		 (unsigned long long)st.forward_passes,
		 (unsigned long long)st.preemptions,
		 (unsigned long long)st.cache_evictions);
}

int slm_serve_component_add(struct slmd *d, struct slm_serve_component *c)
{
	struct slmd_component comp = {.name = "serve",
				      .ctx = c,
				      .start = serve_start,
				      .drain = serve_drain,
				      .idle = serve_idle,
				      .stop = serve_stop,
				      .healthy = serve_healthy};
	return slmd_add_component(d, &comp);
}

void slm_serve_component_fini(struct slm_serve_component *c)
{
	slm_serve_destroy(c->serve);
	c->serve = NULL;
}
