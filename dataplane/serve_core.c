/*
 * serve_core.c: the session's view of the serving core, daemon/serve.h.
 *
 * slmd passes &dp_serve_core_ops and its struct slm_serve * to the
 * dataplane once the serving core runs; until then the dataplane has no
 * serve ops and refuses generate requests ("no model loaded").
 */
#include "dataplane/session.h"

static int core_submit(void *serve, const struct slm_request *req,
		       uint64_t *id_out, struct slm_error *err)
{
	return slm_serve_submit(serve, req, id_out, err);
}

static int core_cancel(void *serve, uint64_t id)
{
	return slm_serve_cancel(serve, id);
}

static bool core_describe(void *serve, struct dp_model_info *out)
{
	struct slm_serve_info info;
	if (!slm_serve_describe(serve, &info))
		return false;
	out->name = info.name;
	out->n_ctx = info.n_ctx;
	out->n_vocab = info.n_vocab;
	return true;
}

const struct dp_serve_ops dp_serve_core_ops = {
	.submit = core_submit,
	.cancel = core_cancel,
	.gen_defaults = slm_gen_params_default,
	.describe = core_describe,
};
