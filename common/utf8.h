/*
 * utf8.h: checking, decoding and repairing UTF-8.
 *
 * Well-formed UTF-8 is what Unicode's table 3-7 allows: no overlong forms,
 * no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.  Text that leaves
 * the box (a response, a JSON string) must be well formed; these helpers
 * repair ill-formed bytes the way Unicode recommends and Python's
 * `bytes.decode("utf-8", "replace")` does: each maximal subpart of an
 * ill-formed sequence becomes one U+FFFD.  A sequence cut short by the end
 * of the input is reported as incomplete, so a stream can hold those bytes
 * back until the rest arrives.
 *
 * Nothing here allocates except slm_utf8_repair's output buffer growth,
 * which the caller owns.
 */
#ifndef SLM_COMMON_UTF8_H
#define SLM_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SLM_UTF8_REPLACEMENT 0xFFFDu
#define SLM_UTF8_REPLACEMENT_STR "\xEF\xBF\xBD"

/*
 * Examine the sequence that starts at s[0] (n >= 1 bytes available).
 * Returns its length (1..4) and stores the code point when it is well
 * formed; returns 0 with *bad set to the length of the maximal ill-formed
 * subpart (>= 1) to be replaced by one U+FFFD; returns -k (k = n, 1..3)
 * when the n available bytes are a proper prefix of a well-formed
 * sequence (more input could complete it).
 */
int slm_utf8_next(const uint8_t *s, size_t n, uint32_t *cp, size_t *bad);

/* True when all n bytes are well-formed UTF-8. */
bool slm_utf8_valid(const char *s, size_t n);

/* Encode a code point (<= 0x10FFFF, surrogates allowed, as some decoders
 * produce them) into out; returns the byte count (1..4), 0 if cp is too
 * large. */
size_t slm_utf8_encode(uint32_t cp, char out[4]);

/*
 * Repair: write s[0..n) to out with every maximal ill-formed subpart
 * replaced by U+FFFD.  If `hold` is true, a trailing incomplete sequence is
 * not written; its length is returned in *held (0..3) so the caller can
 * keep those bytes for the next call.  If `hold` is false an incomplete
 * tail is replaced like any ill-formed subpart.  out must have room for
 * 3 * n bytes.  Returns the number of bytes written.
 */
size_t slm_utf8_repair(const char *s, size_t n, bool hold, char *out,
		       size_t *held);

#endif
