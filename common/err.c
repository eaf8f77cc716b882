#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct err_desc {
	const char *name;
	const char *text;
};

static const struct err_desc err_table[] = {
	[0] = {"OK", "success"},
	[1] = {"ENOMEM", "out of memory"},
	[2] = {"EINVAL", "invalid argument"},
	[3] = {"EIO", "input/output error"},
	[4] = {"EFORMAT", "malformed data"},
	[5] = {"EUNSUPPORTED", "not supported"},
	[6] = {"ENOTFOUND", "not found"},
	[7] = {"ERANGE", "value out of range"},
	[8] = {"EOVERFLOW", "size or count overflows"},
	[9] = {"EBUSY", "resource busy"},
	[10] = {"EAGAIN", "try again"},
	[11] = {"ETIMEDOUT", "timed out"},
	[12] = {"ECANCELED", "canceled"},
	[13] = {"EOVERLOAD", "overloaded"},
	[14] = {"EPROTO", "protocol error"},
	[15] = {"EAUTH", "not authorized"},
	[16] = {"ECONFIG", "configuration error"},
	[17] = {"ESYS", "system call failed"},
	[18] = {"ESTATE", "not allowed in this state"},
	[19] = {"ECONNECT", "cannot connect"},
	[20] = {"ETOOBIG", "too big"},
};

_Static_assert(SLM_ARRAY_LEN(err_table) == (size_t)(-SLM_ERR__LAST) + 1,
	       "every error code has a description");

static const struct err_desc *err_lookup(int err)
{
	if (err > 0 || err < SLM_ERR__LAST)
		return NULL;
	return &err_table[-err];
}

const char *slm_strerror(int err)
{
	const struct err_desc *d = err_lookup(err);
	return d ? d->text : "unknown error";
}

const char *slm_errname(int err)
{
	const struct err_desc *d = err_lookup(err);
	return d ? d->name : "EUNKNOWN";
}

static int error_vset(struct slm_error *err, int code, const char *suffix,
		      const char *fmt, va_list ap)
{
	if (!err || err->code != 0)
		return code;
	err->code = code;
	int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (suffix && n >= 0 && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s",
			 suffix);
	return code;
}

int slm_error_set(struct slm_error *err, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, code, NULL, fmt, ap);
	va_end(ap);
	return code;
}

int slm_error_errno(struct slm_error *err, int code, int errno_value,
		    const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	error_vset(err, code, strerror(errno_value), fmt, ap);
	va_end(ap);
	return code;
}

void slm_error_prefix(struct slm_error *err, const char *fmt, ...)
{
	if (!err || err->code == 0)
		return;
	char prefix[SLM_ERROR_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	char joined[SLM_ERROR_MSG_MAX];
	snprintf(joined, sizeof(joined), "%s%s", prefix, err->msg);
	memcpy(err->msg, joined, sizeof(err->msg));
}

void slm_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "slm: assertion failed: %s (%s:%d)\n", expr, file,
		line);
	abort();
}
