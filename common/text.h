/*
 * text.h: a growable byte buffer.  Zero-initialise it, append, free it.
 * After any successful append the bytes are followed by a NUL (the data
 * may hold NUL bytes of its own: use len).  The owner frees with
 * slm_text_free; nothing else keeps pointers into it across appends.
 */
#ifndef SLM_COMMON_TEXT_H
#define SLM_COMMON_TEXT_H

#include <stddef.h>

#include "common/compiler.h"

struct slm_text {
	char *data;
	size_t len, cap;
};

void slm_text_free(struct slm_text *t);

/* Append n bytes (p may be NULL when n is 0): 0 or SLM_ENOMEM. */
int slm_text_append(struct slm_text *t, const void *p, size_t n) SLM_MUST_CHECK;

/* Append a NUL-terminated string. */
int slm_text_puts(struct slm_text *t, const char *s) SLM_MUST_CHECK;

/* Make room for n more bytes (and the NUL); returns the write position
 * (data + len) or NULL.  The caller writes, then adds to len and stores
 * the NUL itself. */
char *slm_text_reserve(struct slm_text *t, size_t n);

#endif
