/*
 * err.h: the project's one error vocabulary.
 *
 * Every action returns 0 or a negative SLM_E* code.  A code says what kind of
 * failure it was; the context (file, byte offset, peer, key) travels in a
 * struct slm_error filled in by the function that found the problem, so a
 * library never prints and the caller decides where the message goes.
 */
#ifndef SLM_COMMON_ERR_H
#define SLM_COMMON_ERR_H

#include <stddef.h>

#include "common/compiler.h"

enum slm_err {
	SLM_OK = 0,
	SLM_ENOMEM = -1,       /* out of memory */
	SLM_EINVAL = -2,       /* invalid argument or value */
	SLM_EIO = -3,	       /* read, write or device error */
	SLM_EFORMAT = -4,      /* malformed file or message */
	SLM_EUNSUPPORTED = -5, /* well formed, but not supported */
	SLM_ENOTFOUND = -6,    /* no such key, file, tensor or request */
	SLM_ERANGE = -7,       /* value out of bounds */
	SLM_EOVERFLOW = -8,    /* arithmetic overflow in sizes or counts */
	SLM_EBUSY = -9,	       /* resource in use */
	SLM_EAGAIN = -10,      /* try again later */
	SLM_ETIMEDOUT = -11,   /* deadline passed */
	SLM_ECANCELED = -12,   /* canceled by request */
	SLM_EOVERLOAD = -13,   /* queue full: refused to protect others */
	SLM_EPROTO = -14,      /* protocol violation by the peer */
	SLM_EAUTH = -15,       /* authentication failed or not allowed */
	SLM_ECONFIG = -16,     /* bad configuration */
	SLM_ESYS = -17,	       /* a system call failed (errno in message) */
	SLM_ESTATE = -18,      /* not allowed in the current state */
	SLM_ECONNECT = -19,    /* cannot reach the peer */
	SLM_ETOOBIG = -20,     /* message or request larger than allowed */
	SLM_ERR__LAST = -20,
};

/* A short, static, human readable string for a code (or "unknown error"). */
const char *slm_strerror(int err);

/* A stable identifier for a code, such as "EFORMAT", for JSON and logs. */
const char *slm_errname(int err);

#define SLM_ERROR_MSG_MAX 512

/* An error with context.  Zero-initialise; slm_error_set fills it once. */
struct slm_error {
	int code;		     /* 0 or an SLM_E* code */
	char msg[SLM_ERROR_MSG_MAX]; /* full message, context included */
};

/*
 * Record an error and return its code, so a function can end with
 * `return slm_error_set(err, SLM_EFORMAT, "...", ...)`.  err may be NULL.
 * The first error set wins: a later call keeps the earlier message, which
 * names where the failure started.
 */
int slm_error_set(struct slm_error *err, int code, const char *fmt, ...)
	SLM_PRINTF(3, 4);

/* Like slm_error_set, with strerror(errno_value) appended. */
int slm_error_errno(struct slm_error *err, int code, int errno_value,
		    const char *fmt, ...) SLM_PRINTF(4, 5);

/* Prefix an already-set message with context ("file.gguf: " ...). */
void slm_error_prefix(struct slm_error *err, const char *fmt, ...)
	SLM_PRINTF(2, 3);

static inline void slm_error_clear(struct slm_error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

#endif
