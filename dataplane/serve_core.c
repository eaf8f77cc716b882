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

const struct dp_serve_ops dp_serve_core_ops = {
	.submit = core_submit,
	.cancel = core_cancel,
	.gen_defaults = slm_gen_params_default,
	/* serve.h has no model description yet: INFO reports no model
	 * name until it does. */
	.describe = NULL,
};
