/*
 * proto.h: encoding and decoding of the wire protocol (include/slm/
 * protocol.h has the byte layout; docs/protocol.md the exchanges).
 *
 * This module owns the bytes of a datagram and nothing else: headers,
 * fields, the generate request body, the response bodies, the MAC and the
 * sliding windows against replays and duplicate request ids.  It keeps no
 * state between calls, never allocates except the one arena a decoded
 * request lives in, and knows nothing of sockets, sessions or models, so
 * the server (dataplane/session.c) and the client library
 * (client/client.c) share it.  Every decoder checks every length before
 * reading and refuses bad input with SLM_EFORMAT (malformed),
 * SLM_EUNSUPPORTED (a version, or an unknown MANDATORY field), SLM_EINVAL
 * (a well-formed value out of its domain) or SLM_ETOOBIG, with the field
 * named in the error message.
 */
#ifndef SLM_DATAPLANE_PROTO_H
#define SLM_DATAPLANE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/err.h"
#include "slm/protocol.h"

/* ---- little-endian access (unaligned) ---------------------------------- */

static inline void dp_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static inline void dp_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void dp_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t dp_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (uint16_t)p[1] << 8);
}

static inline uint32_t dp_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t dp_get_u64(const uint8_t *p)
{
	return (uint64_t)dp_get_u32(p) | (uint64_t)dp_get_u32(p + 4) << 32;
}

static inline float dp_get_f32(const uint8_t *p)
{
	uint32_t u = dp_get_u32(p);
	float f;
	memcpy(&f, &u, sizeof(f));
	return f;
}

static inline uint32_t dp_f32_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof(u));
	return u;
}

/* ---- header ------------------------------------------------------------ */

struct dp_hdr {
	uint8_t version;
	uint8_t type;  /* enum slm_proto_type */
	uint8_t flags; /* SLM_PROTO_F_* */
	uint16_t key_id;
	uint32_t conn_id;
	uint32_t req_id;
	uint32_t seq;
	uint32_t aux;
	uint64_t pn;
	uint64_t ts_us;
};

/*
 * Read the header of a datagram of len bytes.  Returns 0, SLM_EFORMAT
 * (shorter than a header, or wrong magic) or SLM_EUNSUPPORTED (another
 * version; h->version says which).  Checks nothing past the header.
 */
int dp_hdr_decode(const uint8_t *dgram, size_t len,
		  struct dp_hdr *h) SLM_MUST_CHECK;

/* Write the header into out[0..SLM_PROTO_HDR_SIZE). */
void dp_hdr_encode(uint8_t *out, const struct dp_hdr *h);

/*
 * The body of a datagram whose header decoded: bytes [HDR, len) less the
 * MAC when flags has AUTH.  Returns false when the datagram is too short
 * to hold its MAC.
 */
bool dp_dgram_body(const uint8_t *dgram, size_t len, const struct dp_hdr *h,
		   const uint8_t **body, size_t *body_len);

/* ---- fields ------------------------------------------------------------ */

struct dp_field {
	uint16_t type; /* tag & 0x7FFF */
	bool mandatory;
	uint32_t len;
	const uint8_t *val;
};

struct dp_field_iter {
	const uint8_t *p, *end;
};

static inline void dp_field_iter_init(struct dp_field_iter *it,
				      const uint8_t *body, size_t len)
{
	it->p = body;
	it->end = body + len;
}

/* The next field: 1 and *f filled, 0 at the end, SLM_EFORMAT when a field
 * runs past the body. */
int dp_field_next(struct dp_field_iter *it, struct dp_field *f);

/* A writer into a fixed buffer; an overflow is remembered, not written. */
struct dp_writer {
	uint8_t *buf;
	size_t cap, len;
	bool overflow;
};

static inline void dp_writer_init(struct dp_writer *w, uint8_t *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = false;
}

/* Append a field; mandatory sets the tag's MANDATORY bit.  Values of
 * 65535 bytes or more take the extended length form. */
void dp_put_field(struct dp_writer *w, uint16_t type, bool mandatory,
		  const void *val, size_t len);
/* Append a field header for a value of len bytes and return where the
 * value goes (NULL on overflow). */
uint8_t *dp_put_field_hdr(struct dp_writer *w, uint16_t type, bool mandatory,
			  size_t len);
void dp_put_field_u8(struct dp_writer *w, uint16_t type, uint8_t v);
void dp_put_field_u32(struct dp_writer *w, uint16_t type, uint32_t v);
void dp_put_field_i32(struct dp_writer *w, uint16_t type, int32_t v);
void dp_put_field_u64(struct dp_writer *w, uint16_t type, uint64_t v);
void dp_put_field_f32(struct dp_writer *w, uint16_t type, float v);
/* An i32[] field from host-order values. */
void dp_put_field_i32s(struct dp_writer *w, uint16_t type, const int32_t *v,
		       size_t n);

/* Bytes a field of len value bytes takes. */
static inline size_t dp_field_size(size_t len)
{
	return (len < SLM_PROTO_LEN_EXT ? SLM_PROTO_FIELD_HDR
					: SLM_PROTO_FIELD_HDR_EXT) +
	       len;
}

/* ---- MAC --------------------------------------------------------------- */

/*
 * Seal a datagram of len bytes (header already written) in buf of cap
 * bytes: with a key, set AUTH and key_id in the header and append the MAC;
 * without (key NULL), clear both.  Returns the final length, or 0 when
 * the MAC does not fit.
 */
size_t dp_seal(uint8_t *buf, size_t len, size_t cap, uint16_t key_id,
	       const uint8_t *key);

/* Check the MAC that ends a datagram of len bytes (constant time). */
bool dp_mac_verify(const uint8_t *dgram, size_t len, const uint8_t *key);

/* Wall clock in microseconds since 1970 (for ts_us). */
uint64_t dp_wall_us(void);

/* ---- sliding windows (packet numbers, request ids) --------------------- */

/*
 * A window over a 64-bit counter that starts at 1: the highest value seen
 * and a bitmap of the DP_WINDOW values below it.  Values more than
 * DP_WINDOW below the highest are "too old" and refused.  RFC 4303 (IPsec
 * anti-replay) uses the same structure.
 */
#define DP_WINDOW 1024
_Static_assert(DP_WINDOW == SLM_PROTO_PN_WINDOW &&
		       DP_WINDOW == SLM_PROTO_REQ_WINDOW,
	       "one window size");
struct dp_window {
	uint64_t top; /* highest value recorded; 0 = none yet */
	uint64_t bits[DP_WINDOW / 64];
};

enum dp_window_state {
	DP_WINDOW_NEW = 0,     /* never seen and within reach */
	DP_WINDOW_SEEN = 1,    /* recorded before */
	DP_WINDOW_TOO_OLD = 2, /* below the window (or 0) */
};

enum dp_window_state dp_window_test(const struct dp_window *w, uint64_t v);
/* Record v (which dp_window_test called NEW); slides the window. */
void dp_window_set(struct dp_window *w, uint64_t v);

/* ---- generate request body --------------------------------------------- */

struct dp_chat_msg {
	const char *role;    /* NUL-terminated */
	const char *content; /* NUL-terminated */
};

/* dp_gen.set: which optional fields are present. */
enum {
	DP_GEN_TEMPERATURE = 1u << 0,
	DP_GEN_TOP_K = 1u << 1,
	DP_GEN_TOP_P = 1u << 2,
	DP_GEN_MIN_P = 1u << 3,
	DP_GEN_REPEAT_PENALTY = 1u << 4,
	DP_GEN_REPEAT_LAST_N = 1u << 5,
	DP_GEN_FREQ_PENALTY = 1u << 6,
	DP_GEN_PRESENCE_PENALTY = 1u << 7,
	DP_GEN_SEED = 1u << 8,
	DP_GEN_MAX_TOKENS = 1u << 9,
	DP_GEN_IGNORE_EOS = 1u << 10,
	DP_GEN_PARSE_SPECIAL = 1u << 11,
	DP_GEN_DEADLINE = 1u << 12,
};

enum dp_input {
	DP_INPUT_TEXT = 0,
	DP_INPUT_IDS = 1,
	DP_INPUT_CHAT = 2,
};

/* A decoded generate request.  Strings are NUL-terminated. */
struct dp_gen {
	enum dp_input input;
	const char *text; /* TEXT: may hold no NUL; text_len bytes */
	uint32_t text_len;
	const int32_t *ids; /* IDS */
	uint32_t n_ids;
	const struct dp_chat_msg *msgs; /* CHAT */
	uint32_t n_msgs;
	const char *chat_template; /* NULL = the model's */

	uint32_t set; /* DP_GEN_* */
	bool parse_special;
	float temperature;
	int32_t top_k;
	float top_p;
	float min_p;
	float repeat_penalty;
	int32_t repeat_last_n;
	float freq_penalty;
	float presence_penalty;
	uint64_t seed;
	uint32_t max_tokens;
	bool ignore_eos;
	uint32_t deadline_ms;

	const char *const *stop;
	uint32_t n_stop;
	const char *cache_ns; /* NULL = shared */
};

/*
 * Decode a request body.  On success *arena is one allocation holding
 * every string and array g points into (the caller frees it with free());
 * on failure nothing is allocated and err names the field.  Checks the
 * protocol limits (stop strings, role and namespace lengths), that there
 * is exactly one kind of prompt and that it is not empty, and refuses NUL
 * bytes inside strings that travel as C strings.
 */
int dp_gen_decode(const uint8_t *body, size_t len, struct dp_gen *g,
		  void **arena, struct slm_error *err) SLM_MUST_CHECK;

/*
 * Encode a request body into buf (cap bytes).  Returns the length, or
 * SLM_ETOOBIG when it does not fit (or a field exceeds 65535 bytes), or
 * SLM_EINVAL when g has no prompt.  Every field is sent MANDATORY: a
 * server that does not know one must refuse rather than ignore it.
 */
int dp_gen_encode(const struct dp_gen *g, uint8_t *buf, size_t cap);

/* Bytes dp_gen_encode needs (an upper bound is enough to size a buffer;
 * this is exact). */
size_t dp_gen_encoded_size(const struct dp_gen *g);

/* ---- responses --------------------------------------------------------- */

/* TOKENS: ids are little-endian i32s in the datagram (read them with
 * dp_get_u32). */
struct dp_tokens {
	const uint8_t *ids_raw;
	uint32_t n_ids;
	const char *text;
	uint32_t text_len;
};

struct dp_done {
	uint8_t finish; /* enum slm_proto_finish */
	uint32_t prompt_tokens, cached_tokens, generated_tokens;
	uint64_t queue_us, prefill_us, ttft_us, total_us;
	int32_t error; /* 0 unless finish is ERROR */
	const char *msg;
	uint32_t msg_len;
};

struct dp_errmsg {
	int32_t code;
	const char *msg;
	uint32_t msg_len;
};

struct dp_req_ack {
	uint32_t stream_next;
	const uint8_t *bitmap; /* NULL when absent */
	uint32_t bitmap_len;
};

struct dp_ack {
	const uint8_t *missing_raw; /* u32[] */
	uint32_t n_missing;
};

struct dp_info {
	const char *server_version;
	uint32_t server_version_len;
	const char *model; /* NULL: no model loaded */
	uint32_t model_len;
	uint32_t n_ctx, n_vocab, max_request, max_dgram, max_inflight;
	bool auth;
};

/* Each decodes a body into pointers into it; SLM_EFORMAT or
 * SLM_EUNSUPPORTED with err filled. */
int dp_tokens_decode(const uint8_t *body, size_t len, struct dp_tokens *t,
		     struct slm_error *err) SLM_MUST_CHECK;
int dp_done_decode(const uint8_t *body, size_t len, struct dp_done *d,
		   struct slm_error *err) SLM_MUST_CHECK;
int dp_errmsg_decode(const uint8_t *body, size_t len, struct dp_errmsg *e,
		     struct slm_error *err) SLM_MUST_CHECK;
int dp_req_ack_decode(const uint8_t *body, size_t len, struct dp_req_ack *a,
		      struct slm_error *err) SLM_MUST_CHECK;
int dp_ack_decode(const uint8_t *body, size_t len, struct dp_ack *a,
		  struct slm_error *err) SLM_MUST_CHECK;
int dp_info_decode(const uint8_t *body, size_t len, struct dp_info *i,
		   struct slm_error *err) SLM_MUST_CHECK;
/* PING/PONG: the ECHO field (NULL, 0 when absent). */
int dp_echo_decode(const uint8_t *body, size_t len, const uint8_t **echo,
		   uint32_t *echo_len, struct slm_error *err) SLM_MUST_CHECK;
/* Bodies with no known field (INFO_REQ, CANCEL): only refuses unknown
 * mandatory fields and malformed ones. */
int dp_empty_decode(const uint8_t *body, size_t len,
		    struct slm_error *err) SLM_MUST_CHECK;

/* Name of a message type ("REQ") or "?" */
const char *dp_type_name(unsigned type);
/* Name of a finish reason ("stop") or "?" */
const char *dp_finish_name(unsigned finish);

/* ---- fragments --------------------------------------------------------- */

/* REQ aux <-> fragment count and size. */
static inline uint32_t dp_frag_aux(uint32_t count, uint32_t size)
{
	return (count & 0xFFFFu) | (size << 16);
}
static inline uint32_t dp_frag_count(uint32_t aux)
{
	return aux & 0xFFFFu;
}
static inline uint32_t dp_frag_size(uint32_t aux)
{
	return aux >> 16;
}

#endif
