/*
 * client.h: the client side of the control socket (slmctl, tests).
 *
 * One connection, one request at a time: write a JSON object as one line,
 * read one line back and parse it.  docs/ctl.md is the protocol.
 */
#ifndef SLM_CTL_CLIENT_H
#define SLM_CTL_CLIENT_H

#include <cjson/cJSON.h>

#include "common/err.h"

struct ctl_client;

/*
 * Connect to the socket at path.  SLM_ECONNECT when it cannot, with the
 * message slmctl prints: "cannot connect to PATH: REASON (is slmd
 * running?)".  timeout_ms bounds every later call (0: 30 s).
 */
int ctl_client_open(const char *path, int timeout_ms, struct ctl_client **out,
		    struct slm_error *err) SLM_MUST_CHECK;
void ctl_client_close(struct ctl_client *c);

/*
 * Send one request and wait for its response object; *resp is the whole
 * response ({"ok":..,"result"|"error":..}), freed by the caller with
 * cJSON_Delete.  Returns 0 when a response arrived, whatever it says;
 * SLM_EIO when the connection broke (the server may have refused this
 * peer: a pending error line is still returned as *resp), SLM_ETIMEDOUT,
 * SLM_EPROTO for a line that is not a JSON object.
 */
int ctl_client_call(struct ctl_client *c, const cJSON *req, cJSON **resp,
		    struct slm_error *err) SLM_MUST_CHECK;

/* The same with a request already written as text (no newline). */
int ctl_client_call_text(struct ctl_client *c, const char *req, cJSON **resp,
			 struct slm_error *err) SLM_MUST_CHECK;

#endif
