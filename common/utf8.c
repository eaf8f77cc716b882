#include "common/utf8.h"

#include <string.h>

/* Allowed range of the second byte for each lead byte (table 3-7); the
 * third and fourth bytes are always 80..BF. */
static int seq_len(uint8_t b0, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xBF;
	if (b0 < 0x80)
		return 1;
	if (b0 < 0xC2)
		return 0;
	if (b0 < 0xE0)
		return 2;
	if (b0 < 0xF0) {
		if (b0 == 0xE0)
			*lo = 0xA0;
		else if (b0 == 0xED)
			*hi = 0x9F;
		return 3;
	}
	if (b0 < 0xF5) {
		if (b0 == 0xF0)
			*lo = 0x90;
		else if (b0 == 0xF4)
			*hi = 0x8F;
		return 4;
	}
	return 0;
}

int slm_utf8_next(const uint8_t *s, size_t n, uint32_t *cp, size_t *bad)
{
	uint8_t lo, hi;
	int len = seq_len(s[0], &lo, &hi);
	*bad = 0;
	if (len == 1) {
		*cp = s[0];
		return 1;
	}
	if (len == 0) {
		*bad = 1;
		return 0;
	}
	for (int k = 1; k < len; k++) {
		if ((size_t)k >= n)
			return -k;
		uint8_t b = s[k];
		if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) {
			*bad = (size_t)k;
			return 0;
		}
	}
	uint32_t c;
	if (len == 2)
		c = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
	else if (len == 3)
		c = ((uint32_t)(s[0] & 0x0F) << 12) |
		    ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
	else
		c = ((uint32_t)(s[0] & 0x07) << 18) |
		    ((uint32_t)(s[1] & 0x3F) << 12) |
		    ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
	*cp = c;
	return len;
}

bool slm_utf8_valid(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		uint32_t cp;
		size_t bad;
		int r = slm_utf8_next(p + i, n - i, &cp, &bad);
		if (r <= 0)
			return false;
		i += (size_t)r;
	}
	return true;
}

size_t slm_utf8_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	if (cp <= 0x10FFFF) {
		out[0] = (char)(0xF0 | (cp >> 18));
		out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		out[3] = (char)(0x80 | (cp & 0x3F));
		return 4;
	}
	return 0;
}

size_t slm_utf8_repair(const char *s, size_t n, bool hold, char *out,
		       size_t *held)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0, o = 0;
	if (held)
		*held = 0;
	while (i < n) {
		/* Copy runs of ASCII at once: the common case. */
		size_t j = i;
		while (j < n && p[j] < 0x80)
			j++;
		if (j > i) {
			memcpy(out + o, p + i, j - i);
			o += j - i;
			i = j;
			continue;
		}
		uint32_t cp;
		size_t bad;
		int r = slm_utf8_next(p + i, n - i, &cp, &bad);
		if (r > 0) {
			memcpy(out + o, p + i, (size_t)r);
			o += (size_t)r;
			i += (size_t)r;
		} else if (r < 0) {
			if (hold) {
				if (held)
					*held = n - i;
				return o;
			}
			memcpy(out + o, SLM_UTF8_REPLACEMENT_STR, 3);
			o += 3;
			i = n;
		} else {
			memcpy(out + o, SLM_UTF8_REPLACEMENT_STR, 3);
			o += 3;
			i += bad;
		}
	}
	return o;
}
