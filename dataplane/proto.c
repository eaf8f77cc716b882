/*
 * proto.c: the wire codec.  See proto.h and include/slm/protocol.h.
 *
 * Decoders read fields in any order and keep a bitmap of the types seen,
 * so a repeated non-repeatable field is refused wherever it appears.
 */
#include "dataplane/proto.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdlib.h>
#include <time.h>

#include "common/compiler.h"

#define SAME_CODE(x) ((int)SLM_PROTO_##x == (int)SLM_##x)
_Static_assert(SAME_CODE(ENOMEM) && SAME_CODE(EINVAL) && SAME_CODE(EFORMAT) &&
		       SAME_CODE(EUNSUPPORTED) && SAME_CODE(ENOTFOUND) &&
		       SAME_CODE(ETIMEDOUT) && SAME_CODE(ECANCELED) &&
		       SAME_CODE(EOVERLOAD) && SAME_CODE(EPROTO) &&
		       SAME_CODE(ESTATE) && SAME_CODE(ETOOBIG),
	       "wire error codes are slmd's error codes");

/* ---- header ------------------------------------------------------------ */

int dp_hdr_decode(const uint8_t *d, size_t len, struct dp_hdr *h)
{
	if (len < SLM_PROTO_HDR_SIZE || dp_get_u16(d) != SLM_PROTO_MAGIC)
		return SLM_EFORMAT;
	h->version = d[2];
	h->type = d[3];
	h->flags = d[4];
	h->key_id = dp_get_u16(d + 6);
	h->conn_id = dp_get_u32(d + 8);
	h->req_id = dp_get_u32(d + 12);
	h->seq = dp_get_u32(d + 16);
	h->aux = dp_get_u32(d + 20);
	h->pn = dp_get_u64(d + 24);
	h->ts_us = dp_get_u64(d + 32);
	if (h->version != SLM_PROTO_VERSION)
		return SLM_EUNSUPPORTED;
	return 0;
}

void dp_hdr_encode(uint8_t *d, const struct dp_hdr *h)
{
	dp_put_u16(d, SLM_PROTO_MAGIC);
	d[2] = h->version ? h->version : SLM_PROTO_VERSION;
	d[3] = h->type;
	d[4] = h->flags;
	d[5] = 0;
	dp_put_u16(d + 6, h->key_id);
	dp_put_u32(d + 8, h->conn_id);
	dp_put_u32(d + 12, h->req_id);
	dp_put_u32(d + 16, h->seq);
	dp_put_u32(d + 20, h->aux);
	dp_put_u64(d + 24, h->pn);
	dp_put_u64(d + 32, h->ts_us);
}

bool dp_dgram_body(const uint8_t *d, size_t len, const struct dp_hdr *h,
		   const uint8_t **body, size_t *body_len)
{
	size_t end = len;
	if (h->flags & SLM_PROTO_F_AUTH) {
		if (len < SLM_PROTO_HDR_SIZE + SLM_PROTO_MAC_SIZE)
			return false;
		end -= SLM_PROTO_MAC_SIZE;
	}
	*body = d + SLM_PROTO_HDR_SIZE;
	*body_len = end - SLM_PROTO_HDR_SIZE;
	return true;
}

/* ---- fields ------------------------------------------------------------ */

int dp_field_next(struct dp_field_iter *it, struct dp_field *f)
{
	if (it->p == it->end)
		return 0;
	size_t left = (size_t)(it->end - it->p);
	if (left < SLM_PROTO_FIELD_HDR)
		return SLM_EFORMAT;
	uint16_t tag = dp_get_u16(it->p);
	uint32_t len = dp_get_u16(it->p + 2);
	size_t hdr = SLM_PROTO_FIELD_HDR;
	if (len == SLM_PROTO_LEN_EXT) {
		if (left < SLM_PROTO_FIELD_HDR_EXT)
			return SLM_EFORMAT;
		len = dp_get_u32(it->p + 4);
		hdr = SLM_PROTO_FIELD_HDR_EXT;
		if (len < SLM_PROTO_LEN_EXT)
			return SLM_EFORMAT; /* not the shortest form */
	}
	if (left - hdr < len)
		return SLM_EFORMAT;
	f->type = SLM_PROTO_TAG_TYPE(tag);
	f->mandatory = (tag & SLM_PROTO_MANDATORY) != 0;
	f->len = len;
	f->val = it->p + hdr;
	it->p += hdr + len;
	return 1;
}

uint8_t *dp_put_field_hdr(struct dp_writer *w, uint16_t type, bool mandatory,
			  size_t len)
{
	size_t need = dp_field_size(len);
	if (w->overflow || len > UINT32_MAX || w->cap - w->len < need) {
		w->overflow = true;
		return NULL;
	}
	uint8_t *p = w->buf + w->len;
	dp_put_u16(p, (uint16_t)(type | (mandatory ? SLM_PROTO_MANDATORY : 0)));
	if (len < SLM_PROTO_LEN_EXT) {
		dp_put_u16(p + 2, (uint16_t)len);
		p += SLM_PROTO_FIELD_HDR;
	} else {
		dp_put_u16(p + 2, SLM_PROTO_LEN_EXT);
		dp_put_u32(p + 4, (uint32_t)len);
		p += SLM_PROTO_FIELD_HDR_EXT;
	}
	w->len += need;
	return p;
}

void dp_put_field(struct dp_writer *w, uint16_t type, bool mandatory,
		  const void *val, size_t len)
{
	uint8_t *p = dp_put_field_hdr(w, type, mandatory, len);
	if (p && len)
		memcpy(p, val, len);
}

void dp_put_field_u8(struct dp_writer *w, uint16_t type, uint8_t v)
{
	dp_put_field(w, type, true, &v, 1);
}

void dp_put_field_u32(struct dp_writer *w, uint16_t type, uint32_t v)
{
	uint8_t b[4];
	dp_put_u32(b, v);
	dp_put_field(w, type, true, b, 4);
}

void dp_put_field_i32(struct dp_writer *w, uint16_t type, int32_t v)
{
	dp_put_field_u32(w, type, (uint32_t)v);
}

void dp_put_field_u64(struct dp_writer *w, uint16_t type, uint64_t v)
{
	uint8_t b[8];
	dp_put_u64(b, v);
	dp_put_field(w, type, true, b, 8);
}

void dp_put_field_f32(struct dp_writer *w, uint16_t type, float v)
{
	dp_put_field_u32(w, type, dp_f32_bits(v));
}

void dp_put_field_i32s(struct dp_writer *w, uint16_t type, const int32_t *v,
		       size_t n)
{
	if (n > UINT32_MAX / 4) {
		w->overflow = true;
		return;
	}
	uint8_t *p = dp_put_field_hdr(w, type, true, n * 4);
	for (size_t i = 0; p && i < n; i++)
		dp_put_u32(p + 4 * i, (uint32_t)v[i]);
}

/* ---- MAC --------------------------------------------------------------- */

static void mac_compute(const uint8_t *key, const uint8_t *data, size_t len,
			uint8_t out[SLM_PROTO_MAC_SIZE])
{
	crypto_generichash_blake2b(out, SLM_PROTO_MAC_SIZE, data, len, key,
				   SLM_PROTO_KEY_SIZE);
}

size_t dp_seal(uint8_t *buf, size_t len, size_t cap, uint16_t key_id,
	       const uint8_t *key)
{
	SLM_ASSERT(len >= SLM_PROTO_HDR_SIZE);
	if (!key) {
		buf[4] &= (uint8_t)~SLM_PROTO_F_AUTH;
		dp_put_u16(buf + 6, 0);
		return len;
	}
	if (cap - len < SLM_PROTO_MAC_SIZE)
		return 0;
	buf[4] |= SLM_PROTO_F_AUTH;
	dp_put_u16(buf + 6, key_id);
	mac_compute(key, buf, len, buf + len);
	return len + SLM_PROTO_MAC_SIZE;
}

bool dp_mac_verify(const uint8_t *d, size_t len, const uint8_t *key)
{
	if (len < SLM_PROTO_HDR_SIZE + SLM_PROTO_MAC_SIZE)
		return false;
	uint8_t want[SLM_PROTO_MAC_SIZE];
	mac_compute(key, d, len - SLM_PROTO_MAC_SIZE, want);
	return crypto_verify_16(want, d + len - SLM_PROTO_MAC_SIZE) == 0;
}

uint64_t dp_wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- windows ----------------------------------------------------------- */

static inline bool wbit(const struct dp_window *w, uint64_t v)
{
	uint64_t i = v % DP_WINDOW;
	return (w->bits[i / 64] >> (i % 64)) & 1;
}

enum dp_window_state dp_window_test(const struct dp_window *w, uint64_t v)
{
	if (v == 0)
		return DP_WINDOW_TOO_OLD;
	if (v > w->top)
		return DP_WINDOW_NEW;
	if (w->top - v >= DP_WINDOW)
		return DP_WINDOW_TOO_OLD;
	return wbit(w, v) ? DP_WINDOW_SEEN : DP_WINDOW_NEW;
}

void dp_window_set(struct dp_window *w, uint64_t v)
{
	if (v > w->top) {
		/* Slide: clear the bits of the values that leave the window
		 * (those the new top's slots held) before setting. */
		uint64_t shift = v - w->top;
		if (shift >= DP_WINDOW || w->top == 0) {
			memset(w->bits, 0, sizeof(w->bits));
		} else {
			for (uint64_t x = w->top + 1; x <= v; x++) {
				uint64_t i = x % DP_WINDOW;
				w->bits[i / 64] &= ~(1ull << (i % 64));
			}
		}
		w->top = v;
	}
	uint64_t i = v % DP_WINDOW;
	w->bits[i / 64] |= 1ull << (i % 64);
}

/* ---- shared decoding helpers ------------------------------------------- */

struct seen {
	uint64_t bits[2]; /* field types 0..127 */
};

/* A known field appearing the second time, or a bad length. */
static int check_once(struct seen *s, const struct dp_field *f,
		      struct slm_error *err)
{
	if (f->type < 128) {
		uint64_t bit = 1ull << (f->type % 64);
		if (s->bits[f->type / 64] & bit)
			return slm_error_set(err, SLM_EFORMAT,
					     "field 0x%02x repeated", f->type);
		s->bits[f->type / 64] |= bit;
	}
	return 0;
}

static int want_len(const struct dp_field *f, size_t len, struct slm_error *err)
{
	if (f->len != len)
		return slm_error_set(err, SLM_EFORMAT,
				     "field 0x%02x has %" PRIu32
				     " bytes, not %zu",
				     f->type, f->len, len);
	return 0;
}

static int unknown_field(const struct dp_field *f, struct slm_error *err)
{
	if (f->mandatory)
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "mandatory field 0x%04x not supported",
				     f->type);
	return 0;
}

static int iter_error(struct slm_error *err, const struct dp_field_iter *it,
		      const uint8_t *body)
{
	return slm_error_set(err, SLM_EFORMAT,
			     "field at body offset %zu runs past the end",
			     (size_t)(it->p - body));
}

/* ---- generate request ---------------------------------------------------*/

static bool has_nul(const uint8_t *p, size_t n)
{
	return memchr(p, 0, n) != NULL;
}

/* Per-type limits and decoding of one request field in the first pass. */
struct gen_count {
	size_t strings;	 /* bytes of NUL-terminated copies */
	uint32_t n_msgs; /* CHAT_MSG fields */
	uint32_t n_stop;
	uint32_t n_ids;
	int kinds; /* prompt kinds present (bitmask of dp_input) */
};

static int gen_field_check(const struct dp_field *f, struct seen *seen,
			   struct gen_count *c, struct slm_error *err)
{
	int rc;
	switch (f->type) {
	case SLM_PROTO_T_PROMPT_TEXT:
		if ((rc = check_once(seen, f, err)))
			return rc;
		c->kinds |= 1 << DP_INPUT_TEXT;
		c->strings += (size_t)f->len + 1;
		return 0;
	case SLM_PROTO_T_PROMPT_IDS:
		if ((rc = check_once(seen, f, err)))
			return rc;
		if (f->len % 4)
			return slm_error_set(err, SLM_EFORMAT,
					     "PROMPT_IDS length %u is not a "
					     "multiple of 4",
					     f->len);
		c->kinds |= 1 << DP_INPUT_IDS;
		c->n_ids = f->len / 4u;
		return 0;
	case SLM_PROTO_T_CHAT_MSG: {
		if (f->len < 1 || f->val[0] < 1 ||
		    f->val[0] > SLM_PROTO_MAX_ROLE_LEN ||
		    f->len < 1u + f->val[0])
			return slm_error_set(err, SLM_EFORMAT,
					     "CHAT_MSG %u: bad role length",
					     c->n_msgs);
		if (has_nul(f->val + 1, f->len - 1u))
			return slm_error_set(err, SLM_EINVAL,
					     "CHAT_MSG %u holds a NUL byte",
					     c->n_msgs);
		c->kinds |= 1 << DP_INPUT_CHAT;
		c->n_msgs++;
		c->strings += (size_t)f->len + 1; /* role\0 content\0 */
		return 0;
	}
	case SLM_PROTO_T_CHAT_TEMPLATE:
	case SLM_PROTO_T_CACHE_NS:
		if ((rc = check_once(seen, f, err)))
			return rc;
		if (f->type == SLM_PROTO_T_CACHE_NS &&
		    f->len > SLM_PROTO_MAX_NS_LEN)
			return slm_error_set(err, SLM_EINVAL,
					     "CACHE_NS longer than %d bytes",
					     SLM_PROTO_MAX_NS_LEN);
		if (has_nul(f->val, f->len))
			return slm_error_set(err, SLM_EINVAL,
					     "field 0x%02x holds a NUL byte",
					     f->type);
		c->strings += (size_t)f->len + 1;
		return 0;
	case SLM_PROTO_T_STOP:
		if (c->n_stop >= SLM_PROTO_MAX_STOP)
			return slm_error_set(err, SLM_EINVAL,
					     "more than %d STOP strings",
					     SLM_PROTO_MAX_STOP);
		if (f->len == 0 || f->len > SLM_PROTO_MAX_STOP_LEN)
			return slm_error_set(err, SLM_EINVAL,
					     "STOP %u: length %u not in 1..%d",
					     c->n_stop, f->len,
					     SLM_PROTO_MAX_STOP_LEN);
		if (has_nul(f->val, f->len))
			return slm_error_set(err, SLM_EINVAL,
					     "STOP %u holds a NUL byte",
					     c->n_stop);
		c->n_stop++;
		c->strings += (size_t)f->len + 1;
		return 0;
	case SLM_PROTO_T_PARSE_SPECIAL:
	case SLM_PROTO_T_IGNORE_EOS:
		if ((rc = check_once(seen, f, err)) ||
		    (rc = want_len(f, 1, err)))
			return rc;
		if (f->val[0] > 1)
			return slm_error_set(err, SLM_EINVAL,
					     "field 0x%02x: %u is not 0 or 1",
					     f->type, f->val[0]);
		return 0;
	case SLM_PROTO_T_TEMPERATURE:
	case SLM_PROTO_T_TOP_K:
	case SLM_PROTO_T_TOP_P:
	case SLM_PROTO_T_MIN_P:
	case SLM_PROTO_T_REPEAT_PENALTY:
	case SLM_PROTO_T_REPEAT_LAST_N:
	case SLM_PROTO_T_FREQ_PENALTY:
	case SLM_PROTO_T_PRESENCE_PENALTY:
	case SLM_PROTO_T_MAX_TOKENS:
	case SLM_PROTO_T_DEADLINE_MS:
		if ((rc = check_once(seen, f, err)) ||
		    (rc = want_len(f, 4, err)))
			return rc;
		return 0;
	case SLM_PROTO_T_SEED:
		if ((rc = check_once(seen, f, err)) ||
		    (rc = want_len(f, 8, err)))
			return rc;
		return 0;
	default:
		return unknown_field(f, err);
	}
}

/* Copy n bytes as a NUL-terminated string into the arena cursor. */
static char *arena_str(char **cur, const uint8_t *p, size_t n)
{
	char *s = *cur;
	memcpy(s, p, n);
	s[n] = '\0';
	*cur += n + 1;
	return s;
}

static int float_field(float v, const char *name, struct slm_error *err)
{
	if (v != v)
		return slm_error_set(err, SLM_EINVAL, "%s is NaN", name);
	return 0;
}

int dp_gen_decode(const uint8_t *body, size_t len, struct dp_gen *g,
		  void **arena, struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	struct seen seen = {{0}};
	struct gen_count c = {0};
	int rc;

	*arena = NULL;
	memset(g, 0, sizeof(*g));
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0)
		if ((rc = gen_field_check(&f, &seen, &c, err)))
			return rc;
	if (rc < 0)
		return iter_error(err, &it, body);
	if (c.kinds == 0)
		return slm_error_set(err, SLM_EINVAL, "request has no prompt");
	if (c.kinds & (c.kinds - 1))
		return slm_error_set(err, SLM_EINVAL,
				     "request has more than one kind of "
				     "prompt");

	/* One arena: ids (aligned), message array, stop array, strings. */
	size_t sz_ids = (size_t)c.n_ids * sizeof(int32_t);
	size_t sz_msgs = (size_t)c.n_msgs * sizeof(struct dp_chat_msg);
	size_t sz_stop = (size_t)c.n_stop * sizeof(char *);
	size_t total = sz_ids + sz_msgs + sz_stop + c.strings + 16;
	uint8_t *mem = malloc(total);
	if (!mem)
		return slm_error_set(err, SLM_ENOMEM, "request of %zu bytes",
				     len);
	int32_t *ids = (int32_t *)mem;
	struct dp_chat_msg *msgs = (struct dp_chat_msg *)(mem + sz_ids);
	const char **stops = (const char **)(mem + sz_ids + sz_msgs);
	char *cur = (char *)(mem + sz_ids + sz_msgs + sz_stop);

	g->ids = ids;
	g->msgs = msgs;
	g->stop = stops;
	dp_field_iter_init(&it, body, len);
	while (dp_field_next(&it, &f) > 0) {
		switch (f.type) {
		case SLM_PROTO_T_PROMPT_TEXT:
			g->input = DP_INPUT_TEXT;
			g->text = arena_str(&cur, f.val, f.len);
			g->text_len = f.len;
			break;
		case SLM_PROTO_T_PROMPT_IDS:
			g->input = DP_INPUT_IDS;
			for (uint32_t i = 0; i < f.len / 4u; i++)
				ids[i] = (int32_t)dp_get_u32(f.val + 4 * i);
			g->n_ids = f.len / 4u;
			break;
		case SLM_PROTO_T_CHAT_MSG: {
			g->input = DP_INPUT_CHAT;
			uint8_t rl = f.val[0];
			struct dp_chat_msg *m = &msgs[g->n_msgs++];
			m->role = arena_str(&cur, f.val + 1, rl);
			m->content = arena_str(&cur, f.val + 1 + rl,
					       (size_t)f.len - 1 - rl);
			break;
		}
		case SLM_PROTO_T_CHAT_TEMPLATE:
			g->chat_template = arena_str(&cur, f.val, f.len);
			break;
		case SLM_PROTO_T_CACHE_NS:
			g->cache_ns = arena_str(&cur, f.val, f.len);
			break;
		case SLM_PROTO_T_STOP:
			stops[g->n_stop++] = arena_str(&cur, f.val, f.len);
			break;
		case SLM_PROTO_T_PARSE_SPECIAL:
			g->set |= DP_GEN_PARSE_SPECIAL;
			g->parse_special = f.val[0];
			break;
		case SLM_PROTO_T_IGNORE_EOS:
			g->set |= DP_GEN_IGNORE_EOS;
			g->ignore_eos = f.val[0];
			break;
		case SLM_PROTO_T_TEMPERATURE:
			g->set |= DP_GEN_TEMPERATURE;
			g->temperature = dp_get_f32(f.val);
			break;
		case SLM_PROTO_T_TOP_K:
			g->set |= DP_GEN_TOP_K;
			g->top_k = (int32_t)dp_get_u32(f.val);
			break;
		case SLM_PROTO_T_TOP_P:
			g->set |= DP_GEN_TOP_P;
			g->top_p = dp_get_f32(f.val);
			break;
		case SLM_PROTO_T_MIN_P:
			g->set |= DP_GEN_MIN_P;
			g->min_p = dp_get_f32(f.val);
			break;
		case SLM_PROTO_T_REPEAT_PENALTY:
			g->set |= DP_GEN_REPEAT_PENALTY;
			g->repeat_penalty = dp_get_f32(f.val);
			break;
		case SLM_PROTO_T_REPEAT_LAST_N:
			g->set |= DP_GEN_REPEAT_LAST_N;
			g->repeat_last_n = (int32_t)dp_get_u32(f.val);
			break;
		case SLM_PROTO_T_FREQ_PENALTY:
			g->set |= DP_GEN_FREQ_PENALTY;
			g->freq_penalty = dp_get_f32(f.val);
			break;
		case SLM_PROTO_T_PRESENCE_PENALTY:
			g->set |= DP_GEN_PRESENCE_PENALTY;
			g->presence_penalty = dp_get_f32(f.val);
			break;
		case SLM_PROTO_T_MAX_TOKENS:
			g->set |= DP_GEN_MAX_TOKENS;
			g->max_tokens = dp_get_u32(f.val);
			break;
		case SLM_PROTO_T_DEADLINE_MS:
			g->set |= DP_GEN_DEADLINE;
			g->deadline_ms = dp_get_u32(f.val);
			break;
		case SLM_PROTO_T_SEED:
			g->set |= DP_GEN_SEED;
			g->seed = dp_get_u64(f.val);
			break;
		default:
			break; /* unknown and optional: ignored */
		}
	}
	rc = 0;
	if (g->input == DP_INPUT_TEXT && g->text_len == 0)
		rc = slm_error_set(err, SLM_EINVAL, "PROMPT_TEXT is empty");
	else if (g->input == DP_INPUT_IDS && g->n_ids == 0)
		rc = slm_error_set(err, SLM_EINVAL, "PROMPT_IDS is empty");
	if (!rc && (g->set & DP_GEN_TEMPERATURE))
		rc = float_field(g->temperature, "TEMPERATURE", err);
	if (!rc && (g->set & DP_GEN_TOP_P))
		rc = float_field(g->top_p, "TOP_P", err);
	if (!rc && (g->set & DP_GEN_MIN_P))
		rc = float_field(g->min_p, "MIN_P", err);
	if (!rc && (g->set & DP_GEN_REPEAT_PENALTY))
		rc = float_field(g->repeat_penalty, "REPEAT_PENALTY", err);
	if (!rc && (g->set & DP_GEN_FREQ_PENALTY))
		rc = float_field(g->freq_penalty, "FREQ_PENALTY", err);
	if (!rc && (g->set & DP_GEN_PRESENCE_PENALTY))
		rc = float_field(g->presence_penalty, "PRESENCE_PENALTY", err);
	if (rc) {
		free(mem);
		memset(g, 0, sizeof(*g));
		return rc;
	}
	if (!g->n_msgs)
		g->msgs = NULL;
	if (!g->n_stop)
		g->stop = NULL;
	if (!g->n_ids)
		g->ids = NULL;
	*arena = mem;
	return 0;
}

static void gen_write(const struct dp_gen *g, struct dp_writer *w)
{
	switch (g->input) {
	case DP_INPUT_TEXT:
		dp_put_field(w, SLM_PROTO_T_PROMPT_TEXT, true, g->text,
			     g->text_len);
		break;
	case DP_INPUT_IDS:
		dp_put_field_i32s(w, SLM_PROTO_T_PROMPT_IDS, g->ids, g->n_ids);
		break;
	case DP_INPUT_CHAT:
		for (uint32_t i = 0; i < g->n_msgs; i++) {
			size_t rl = strlen(g->msgs[i].role);
			size_t cl = strlen(g->msgs[i].content);
			if (rl == 0 || rl > SLM_PROTO_MAX_ROLE_LEN) {
				w->overflow = true;
				return;
			}
			uint8_t *p = dp_put_field_hdr(w, SLM_PROTO_T_CHAT_MSG,
						      true, 1 + rl + cl);
			if (!p)
				return;
			p[0] = (uint8_t)rl;
			memcpy(p + 1, g->msgs[i].role, rl);
			memcpy(p + 1 + rl, g->msgs[i].content, cl);
		}
		break;
	}
	if (g->chat_template)
		dp_put_field(w, SLM_PROTO_T_CHAT_TEMPLATE, true,
			     g->chat_template, strlen(g->chat_template));
	if (g->set & DP_GEN_PARSE_SPECIAL)
		dp_put_field_u8(w, SLM_PROTO_T_PARSE_SPECIAL, g->parse_special);
	if (g->set & DP_GEN_TEMPERATURE)
		dp_put_field_f32(w, SLM_PROTO_T_TEMPERATURE, g->temperature);
	if (g->set & DP_GEN_TOP_K)
		dp_put_field_i32(w, SLM_PROTO_T_TOP_K, g->top_k);
	if (g->set & DP_GEN_TOP_P)
		dp_put_field_f32(w, SLM_PROTO_T_TOP_P, g->top_p);
	if (g->set & DP_GEN_MIN_P)
		dp_put_field_f32(w, SLM_PROTO_T_MIN_P, g->min_p);
	if (g->set & DP_GEN_REPEAT_PENALTY)
		dp_put_field_f32(w, SLM_PROTO_T_REPEAT_PENALTY,
				 g->repeat_penalty);
	if (g->set & DP_GEN_REPEAT_LAST_N)
		dp_put_field_i32(w, SLM_PROTO_T_REPEAT_LAST_N,
				 g->repeat_last_n);
	if (g->set & DP_GEN_FREQ_PENALTY)
		dp_put_field_f32(w, SLM_PROTO_T_FREQ_PENALTY, g->freq_penalty);
	if (g->set & DP_GEN_PRESENCE_PENALTY)
		dp_put_field_f32(w, SLM_PROTO_T_PRESENCE_PENALTY,
				 g->presence_penalty);
	if (g->set & DP_GEN_SEED)
		dp_put_field_u64(w, SLM_PROTO_T_SEED, g->seed);
	if (g->set & DP_GEN_MAX_TOKENS)
		dp_put_field_u32(w, SLM_PROTO_T_MAX_TOKENS, g->max_tokens);
	if (g->set & DP_GEN_IGNORE_EOS)
		dp_put_field_u8(w, SLM_PROTO_T_IGNORE_EOS, g->ignore_eos);
	if (g->set & DP_GEN_DEADLINE)
		dp_put_field_u32(w, SLM_PROTO_T_DEADLINE_MS, g->deadline_ms);
	for (uint32_t i = 0; i < g->n_stop; i++)
		dp_put_field(w, SLM_PROTO_T_STOP, true, g->stop[i],
			     strlen(g->stop[i]));
	if (g->cache_ns && g->cache_ns[0])
		dp_put_field(w, SLM_PROTO_T_CACHE_NS, true, g->cache_ns,
			     strlen(g->cache_ns));
}

size_t dp_gen_encoded_size(const struct dp_gen *g)
{
	size_t n = 0;
	switch (g->input) {
	case DP_INPUT_TEXT:
		n += dp_field_size(g->text_len);
		break;
	case DP_INPUT_IDS:
		n += dp_field_size((size_t)g->n_ids * 4);
		break;
	case DP_INPUT_CHAT:
		for (uint32_t i = 0; i < g->n_msgs; i++)
			n += dp_field_size(1 + strlen(g->msgs[i].role) +
					   strlen(g->msgs[i].content));
		break;
	}
	if (g->chat_template)
		n += dp_field_size(strlen(g->chat_template));
	static const struct {
		uint32_t bit;
		size_t len;
	} opt[] = {
		{DP_GEN_PARSE_SPECIAL, 1},
		{DP_GEN_TEMPERATURE, 4},
		{DP_GEN_TOP_K, 4},
		{DP_GEN_TOP_P, 4},
		{DP_GEN_MIN_P, 4},
		{DP_GEN_REPEAT_PENALTY, 4},
		{DP_GEN_REPEAT_LAST_N, 4},
		{DP_GEN_FREQ_PENALTY, 4},
		{DP_GEN_PRESENCE_PENALTY, 4},
		{DP_GEN_SEED, 8},
		{DP_GEN_MAX_TOKENS, 4},
		{DP_GEN_IGNORE_EOS, 1},
		{DP_GEN_DEADLINE, 4},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(opt); i++)
		if (g->set & opt[i].bit)
			n += dp_field_size(opt[i].len);
	for (uint32_t i = 0; i < g->n_stop; i++)
		n += dp_field_size(strlen(g->stop[i]));
	if (g->cache_ns && g->cache_ns[0])
		n += dp_field_size(strlen(g->cache_ns));
	return n;
}

int dp_gen_encode(const struct dp_gen *g, uint8_t *buf, size_t cap)
{
	bool empty =
		(g->input == DP_INPUT_TEXT && (!g->text || !g->text_len)) ||
		(g->input == DP_INPUT_IDS && !g->n_ids) ||
		(g->input == DP_INPUT_CHAT && !g->n_msgs);
	if (empty)
		return SLM_EINVAL;
	struct dp_writer w;
	dp_writer_init(&w, buf, cap);
	gen_write(g, &w);
	if (w.overflow || w.len > INT32_MAX)
		return SLM_ETOOBIG;
	return (int)w.len;
}

/* ---- responses --------------------------------------------------------- */

int dp_tokens_decode(const uint8_t *body, size_t len, struct dp_tokens *t,
		     struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	struct seen seen = {{0}};
	int rc;
	memset(t, 0, sizeof(*t));
	t->text = "";
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0) {
		switch (f.type) {
		case SLM_PROTO_T_TOKEN_IDS:
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			if (f.len % 4)
				return slm_error_set(err, SLM_EFORMAT,
						     "TOKEN_IDS length %u",
						     f.len);
			t->ids_raw = f.val;
			t->n_ids = f.len / 4u;
			break;
		case SLM_PROTO_T_TEXT:
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			t->text = (const char *)f.val;
			t->text_len = f.len;
			break;
		default:
			if ((rc = unknown_field(&f, err)))
				return rc;
		}
	}
	return rc < 0 ? iter_error(err, &it, body) : 0;
}

int dp_done_decode(const uint8_t *body, size_t len, struct dp_done *d,
		   struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	struct seen seen = {{0}};
	int rc;
	memset(d, 0, sizeof(*d));
	d->msg = "";
	bool have_finish = false;
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0) {
		switch (f.type) {
		case SLM_PROTO_T_FINISH:
			if ((rc = check_once(&seen, &f, err)) ||
			    (rc = want_len(&f, 1, err)))
				return rc;
			if (f.val[0] > SLM_PROTO_FINISH__MAX)
				return slm_error_set(err, SLM_EFORMAT,
						     "FINISH %u unknown",
						     f.val[0]);
			d->finish = f.val[0];
			have_finish = true;
			break;
		case SLM_PROTO_T_USAGE:
			if ((rc = check_once(&seen, &f, err)) ||
			    (rc = want_len(&f, 12, err)))
				return rc;
			d->prompt_tokens = dp_get_u32(f.val);
			d->cached_tokens = dp_get_u32(f.val + 4);
			d->generated_tokens = dp_get_u32(f.val + 8);
			break;
		case SLM_PROTO_T_TIMINGS:
			if ((rc = check_once(&seen, &f, err)) ||
			    (rc = want_len(&f, 32, err)))
				return rc;
			d->queue_us = dp_get_u64(f.val);
			d->prefill_us = dp_get_u64(f.val + 8);
			d->ttft_us = dp_get_u64(f.val + 16);
			d->total_us = dp_get_u64(f.val + 24);
			break;
		case SLM_PROTO_T_ERROR_CODE:
			if ((rc = check_once(&seen, &f, err)) ||
			    (rc = want_len(&f, 4, err)))
				return rc;
			d->error = (int32_t)dp_get_u32(f.val);
			break;
		case SLM_PROTO_T_MESSAGE:
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			d->msg = (const char *)f.val;
			d->msg_len = f.len;
			break;
		default:
			if ((rc = unknown_field(&f, err)))
				return rc;
		}
	}
	if (rc < 0)
		return iter_error(err, &it, body);
	if (!have_finish)
		return slm_error_set(err, SLM_EFORMAT, "DONE without FINISH");
	return 0;
}

int dp_errmsg_decode(const uint8_t *body, size_t len, struct dp_errmsg *e,
		     struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	struct seen seen = {{0}};
	int rc;
	memset(e, 0, sizeof(*e));
	e->msg = "";
	bool have_code = false;
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0) {
		switch (f.type) {
		case SLM_PROTO_T_ERROR_CODE:
			if ((rc = check_once(&seen, &f, err)) ||
			    (rc = want_len(&f, 4, err)))
				return rc;
			e->code = (int32_t)dp_get_u32(f.val);
			have_code = true;
			break;
		case SLM_PROTO_T_MESSAGE:
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			e->msg = (const char *)f.val;
			e->msg_len = f.len;
			break;
		default:
			if ((rc = unknown_field(&f, err)))
				return rc;
		}
	}
	if (rc < 0)
		return iter_error(err, &it, body);
	if (!have_code || e->code >= 0)
		return slm_error_set(err, SLM_EFORMAT,
				     "ERROR without a negative ERROR_CODE");
	return 0;
}

int dp_req_ack_decode(const uint8_t *body, size_t len, struct dp_req_ack *a,
		      struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	struct seen seen = {{0}};
	int rc;
	memset(a, 0, sizeof(*a));
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0) {
		switch (f.type) {
		case SLM_PROTO_T_STREAM_NEXT:
			if ((rc = check_once(&seen, &f, err)) ||
			    (rc = want_len(&f, 4, err)))
				return rc;
			a->stream_next = dp_get_u32(f.val);
			break;
		case SLM_PROTO_T_FRAG_BITMAP:
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			a->bitmap = f.val;
			a->bitmap_len = f.len;
			break;
		default:
			if ((rc = unknown_field(&f, err)))
				return rc;
		}
	}
	return rc < 0 ? iter_error(err, &it, body) : 0;
}

int dp_ack_decode(const uint8_t *body, size_t len, struct dp_ack *a,
		  struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	struct seen seen = {{0}};
	int rc;
	memset(a, 0, sizeof(*a));
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0) {
		switch (f.type) {
		case SLM_PROTO_T_MISSING:
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			if (f.len % 4 || f.len / 4 > SLM_PROTO_MAX_MISSING)
				return slm_error_set(err, SLM_EFORMAT,
						     "MISSING length %u",
						     f.len);
			a->missing_raw = f.val;
			a->n_missing = f.len / 4u;
			break;
		default:
			if ((rc = unknown_field(&f, err)))
				return rc;
		}
	}
	return rc < 0 ? iter_error(err, &it, body) : 0;
}

static uint32_t u32_field(const struct dp_field *f)
{
	return dp_get_u32(f->val);
}

int dp_info_decode(const uint8_t *body, size_t len, struct dp_info *in,
		   struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	struct seen seen = {{0}};
	int rc;
	memset(in, 0, sizeof(*in));
	in->server_version = "";
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0) {
		uint32_t *u = NULL;
		switch (f.type) {
		case SLM_PROTO_T_SERVER_VERSION:
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			in->server_version = (const char *)f.val;
			in->server_version_len = f.len;
			continue;
		case SLM_PROTO_T_MODEL:
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			in->model = (const char *)f.val;
			in->model_len = f.len;
			continue;
		case SLM_PROTO_T_AUTH:
			if ((rc = check_once(&seen, &f, err)) ||
			    (rc = want_len(&f, 1, err)))
				return rc;
			in->auth = f.val[0] != 0;
			continue;
		case SLM_PROTO_T_N_CTX:
			u = &in->n_ctx;
			break;
		case SLM_PROTO_T_N_VOCAB:
			u = &in->n_vocab;
			break;
		case SLM_PROTO_T_MAX_REQUEST:
			u = &in->max_request;
			break;
		case SLM_PROTO_T_MAX_DGRAM:
			u = &in->max_dgram;
			break;
		case SLM_PROTO_T_MAX_INFLIGHT:
			u = &in->max_inflight;
			break;
		default:
			if ((rc = unknown_field(&f, err)))
				return rc;
			continue;
		}
		if ((rc = check_once(&seen, &f, err)) ||
		    (rc = want_len(&f, 4, err)))
			return rc;
		*u = u32_field(&f);
	}
	return rc < 0 ? iter_error(err, &it, body) : 0;
}

int dp_echo_decode(const uint8_t *body, size_t len, const uint8_t **echo,
		   uint32_t *echo_len, struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	struct seen seen = {{0}};
	int rc;
	*echo = NULL;
	*echo_len = 0;
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0) {
		if (f.type == SLM_PROTO_T_ECHO) {
			if ((rc = check_once(&seen, &f, err)))
				return rc;
			if (f.len > SLM_PROTO_MAX_ECHO)
				return slm_error_set(
					err, SLM_EFORMAT,
					"ECHO of %u bytes (at most "
					"%d)",
					f.len, SLM_PROTO_MAX_ECHO);
			*echo = f.val;
			*echo_len = f.len;
		} else if ((rc = unknown_field(&f, err))) {
			return rc;
		}
	}
	return rc < 0 ? iter_error(err, &it, body) : 0;
}

int dp_empty_decode(const uint8_t *body, size_t len, struct slm_error *err)
{
	struct dp_field_iter it;
	struct dp_field f;
	int rc;
	dp_field_iter_init(&it, body, len);
	while ((rc = dp_field_next(&it, &f)) > 0)
		if ((rc = unknown_field(&f, err)))
			return rc;
	return rc < 0 ? iter_error(err, &it, body) : 0;
}

const char *dp_type_name(unsigned type)
{
	static const char *const names[] = {
		[SLM_PROTO_PING] = "PING",
		[SLM_PROTO_PONG] = "PONG",
		[SLM_PROTO_INFO_REQ] = "INFO_REQ",
		[SLM_PROTO_INFO] = "INFO",
		[SLM_PROTO_REQ] = "REQ",
		[SLM_PROTO_REQ_ACK] = "REQ_ACK",
		[SLM_PROTO_TOKENS] = "TOKENS",
		[SLM_PROTO_DONE] = "DONE",
		[SLM_PROTO_ERROR] = "ERROR",
		[SLM_PROTO_CANCEL] = "CANCEL",
		[SLM_PROTO_ACK] = "ACK",
	};
	return type < SLM_ARRAY_LEN(names) && names[type] ? names[type] : "?";
}

const char *dp_finish_name(unsigned finish)
{
	static const char *const names[] = {"stop", "length", "canceled",
					    "deadline", "error"};
	return finish < SLM_ARRAY_LEN(names) ? names[finish] : "?";
}
