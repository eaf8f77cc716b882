#include "common/text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

void slm_text_free(struct slm_text *t)
{
	free(t->data);
	t->data = NULL;
	t->len = t->cap = 0;
}

char *slm_text_reserve(struct slm_text *t, size_t n)
{
	if (n > SIZE_MAX / 2 - t->len - 1)
		return NULL;
	if (t->len + n + 1 > t->cap) {
		size_t cap = t->cap ? t->cap : 64;
		while (cap < t->len + n + 1)
			cap *= 2;
		char *p = realloc(t->data, cap);
		if (!p)
			return NULL;
		t->data = p;
		t->cap = cap;
	}
	return t->data + t->len;
}

int slm_text_append(struct slm_text *t, const void *p, size_t n)
{
	char *w = slm_text_reserve(t, n);
	if (!w)
		return SLM_ENOMEM;
	if (n)
		memcpy(w, p, n);
	t->len += n;
	t->data[t->len] = '\0';
	return 0;
}

int slm_text_puts(struct slm_text *t, const char *s)
{
	return slm_text_append(t, s, strlen(s));
}
