/*
 * keys.h: pre-shared keys that authenticate datagrams (protocol.h: MAC).
 *
 * A key file holds one key per line, "ID HEX": ID in 1..65535 and HEX 64
 * hexadecimal digits (32 bytes); blank lines and lines starting with '#'
 * are ignored.  `slm keygen ID` prints a fresh line.  The server refuses a
 * key file that anyone but its owner may read or write (mode & 077) or
 * that belongs to another user than the one slmd runs as (root may own
 * it): a key readable by others is no secret.  Keys live in memory that
 * libsodium locks and wipes when freed.
 */
#ifndef SLM_DATAPLANE_KEYS_H
#define SLM_DATAPLANE_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "slm/protocol.h"

struct dp_keys;

/*
 * Load a key file.  strict: refuse loose permissions (the server; the
 * client library reads the same file without that check).  Errors name
 * the file and line: SLM_EAUTH for permissions, SLM_EFORMAT for a bad
 * line, SLM_EINVAL for a repeated id or an empty file, SLM_EIO when it
 * cannot be read.
 */
int dp_keys_load(const char *path, bool strict, struct dp_keys **out,
		 struct slm_error *err) SLM_MUST_CHECK;

/* One key given directly (tests, the client library). */
int dp_keys_single(uint16_t id, const uint8_t key[SLM_PROTO_KEY_SIZE],
		   struct dp_keys **out, struct slm_error *err) SLM_MUST_CHECK;

void dp_keys_destroy(struct dp_keys *k);

/* The key with this id, or NULL. */
const uint8_t *dp_keys_find(const struct dp_keys *k, uint16_t id);

/* Number of keys and the i-th id (ascending). */
unsigned dp_keys_count(const struct dp_keys *k);
uint16_t dp_keys_id_at(const struct dp_keys *k, unsigned i);

#endif
