/*
 * client.c: libslmclient.  See include/slm/client.h for the contract and
 * docs/protocol.md for the exchanges.
 *
 * A request lives in slots[id % WINDOW] from submit to its end.  While
 * SENDING, its fragments are retransmitted (all those the server has not
 * acknowledged, the last one asking for a REQ_ACK) every rto, doubling.
 * Once the server has it (a REQ_ACK saying RUNNING, or any stream
 * datagram), it is RUNNING: stream datagrams are put back in order in a
 * reorder window and delivered; a gap is reported at once with an ACK
 * listing the missing numbers; every ACK_EVERY datagrams a cumulative ACK
 * lets the server trim its buffer; a probe (an ACK asking for a REQ_ACK)
 * goes out when the stream is quiet, backing off to once a second, and a
 * plain keep-alive ACK at least once a second, so the server knows we are
 * still there.  When DONE and everything before it has been delivered,
 * an ACK with FIN tells the server to forget the request.
 */
#include "slm/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "client/client_int.h"
#include "common/err.h"
#include "dataplane/keys.h"
#include "dataplane/peer.h"
#include "dataplane/proto.h"

#define WINDOW SLM_PROTO_REQ_WINDOW
#define REORDER 256
#define ACK_EVERY 16
#define KEEPALIVE_NS (1000ull * 1000000)
#define RTO_MAX_NS (1000ull * 1000000)
#define PROBE_MIN_NS (50ull * 1000000)
#define RXBUF 2048
#define MSG_MAX 256

_Static_assert(SLM_GEN_TEMPERATURE == DP_GEN_TEMPERATURE &&
		       SLM_GEN_TOP_K == DP_GEN_TOP_K &&
		       SLM_GEN_TOP_P == DP_GEN_TOP_P &&
		       SLM_GEN_MIN_P == DP_GEN_MIN_P &&
		       SLM_GEN_REPEAT_PENALTY == DP_GEN_REPEAT_PENALTY &&
		       SLM_GEN_REPEAT_LAST_N == DP_GEN_REPEAT_LAST_N &&
		       SLM_GEN_FREQUENCY_PENALTY == DP_GEN_FREQ_PENALTY &&
		       SLM_GEN_PRESENCE_PENALTY == DP_GEN_PRESENCE_PENALTY &&
		       SLM_GEN_SEED == DP_GEN_SEED &&
		       SLM_GEN_MAX_TOKENS == DP_GEN_MAX_TOKENS &&
		       SLM_GEN_IGNORE_EOS == DP_GEN_IGNORE_EOS &&
		       SLM_GEN_PARSE_SPECIAL == DP_GEN_PARSE_SPECIAL &&
		       SLM_GEN_DEADLINE == DP_GEN_DEADLINE,
	       "public and wire option bits agree");
#define SAME(x) ((int)SLM_CLIENT_##x == (int)SLM_##x)
_Static_assert(SAME(ENOMEM) && SAME(EINVAL) && SAME(EIO) && SAME(EFORMAT) &&
		       SAME(EUNSUPPORTED) && SAME(ENOTFOUND) &&
		       SAME(ETIMEDOUT) && SAME(ECANCELED) && SAME(EOVERLOAD) &&
		       SAME(EPROTO) && SAME(EAUTH) && SAME(ESYS) &&
		       SAME(ESTATE) && SAME(ECONNECT) && SAME(ETOOBIG),
	       "client codes are slmd's codes");
#undef SAME

enum { CR_SENDING = 0, CR_RUNNING = 1 };

struct rslot {
	uint8_t *data;
	uint32_t len;
	uint32_t seq;
	uint8_t type;
	bool have;
};

struct creq {
	uint32_t id;
	uint8_t st;
	/* the request body and its fragments */
	uint8_t *body;
	size_t body_len;
	uint32_t frag_size, n_frags;
	uint8_t *frag_acked; /* bitmap, from the server's REQ_ACK */
	/* times (CLOCK_MONOTONIC ns) */
	uint64_t t_start, last_tx, last_rx, next_retx, rto, probe_ivl,
		next_probe, deadline;
	uint32_t tries; /* consecutive retransmissions without an answer */
	/* the stream */
	uint32_t next_seq; /* next to deliver */
	uint32_t high_seq; /* one past the highest received */
	uint32_t server_next;
	int64_t done_seq; /* -1: DONE not seen */
	uint32_t unacked;
	struct rslot *ro;
	bool got_first;
	bool finished; /* DONE delivered */
	bool cancel;
	uint64_t cancel_next;
	/* the caller */
	slm_client_chunk_fn on_chunk;
	slm_client_done_fn on_done;
	void *ctx;
	struct slm_client_result *out; /* blocking generate */
	int *out_status;
	bool *out_done;
	struct slm_client_result res;
	size_t ids_cap, text_cap;
};

struct slm_client {
	const struct slmc_transport *t;
	struct slmc_conn *conn;
	struct slm_client_opts o;
	const uint8_t *key; /* o.key when o.key_id */
	uint32_t conn_id;
	uint32_t next_id;
	uint64_t pn;
	struct dp_window rx_win;
	struct creq *slots[WINDOW];
	size_t n_live;
	int completed; /* during one pump */
	bool refused;  /* the kernel reported ECONNREFUSED */
	bool in_callback;

	uint32_t ping_seq;
	bool ping_wait, ping_got;
	int ping_err;
	uint64_t ping_t_rx;

	bool info_wait, info_got;
	int info_err;
	struct slm_client_info *info_out;

	struct slm_client_stats st;
	uint8_t tx[SLM_PROTO_MAX_DGRAM + SLM_PROTO_MAC_SIZE];
	uint8_t rx[RXBUF];
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- small public helpers ---------------------------------------------- */

const char *slm_client_strerror(int code)
{
	return slm_strerror(code);
}

const char *slm_client_errname(int code)
{
	return slm_errname(code);
}

const char *slm_client_finish_name(int finish)
{
	return dp_finish_name((unsigned)finish);
}

void slm_client_opts_default(struct slm_client_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->rto_ms = 20;
	o->retries = 8;
	o->max_dgram = SLM_PROTO_DEFAULT_DGRAM;
}

int slm_client_load_key(struct slm_client_opts *o, const char *path,
			unsigned key_id)
{
	struct dp_keys *k = NULL;
	struct slm_error err = {0};
	int rc = dp_keys_load(path, false, &k, &err);
	if (rc)
		return rc;
	const uint8_t *key =
		key_id <= 0xFFFF ? dp_keys_find(k, (uint16_t)key_id) : NULL;
	if (!key) {
		dp_keys_destroy(k);
		return SLM_CLIENT_ENOTFOUND;
	}
	o->key_id = (uint16_t)key_id;
	memcpy(o->key, key, sizeof(o->key));
	dp_keys_destroy(k);
	return 0;
}

void slm_client_result_free(struct slm_client_result *r)
{
	if (!r)
		return;
	free(r->ids);
	free(r->text);
	r->ids = NULL;
	r->text = NULL;
	r->n_ids = r->text_len = 0;
}

void slm_client_stats(const struct slm_client *c, struct slm_client_stats *out)
{
	*out = c->st;
}

int slm_client_fd(const struct slm_client *c)
{
	return c->t->fd(c->conn);
}

size_t slm_client_inflight(const struct slm_client *c)
{
	return c->n_live;
}

/* ---- open / close ------------------------------------------------------ */

static int open_fail(char *msg, size_t size, int code, const char *fmt,
		     const char *a, const char *b)
{
	if (msg && size)
		snprintf(msg, size, fmt, a, b);
	return code;
}

int slm_client_open(const char *url, const struct slm_client_opts *o,
		    struct slm_client **out, char *err_msg, size_t err_size)
{
	*out = NULL;
	if (!url)
		return SLM_CLIENT_EINVAL;
	struct slm_client_opts def;
	slm_client_opts_default(&def);
	if (!o)
		o = &def;
	if (o->max_dgram < 512 || o->max_dgram > SLM_PROTO_MAX_DGRAM)
		return open_fail(err_msg, err_size, SLM_CLIENT_EINVAL,
				 "max_dgram not in 512..1472%s%s", "", "");
	int code = 0;
	const struct slmc_transport *t =
		slmc_transport_for(url, &code, err_msg, err_size);
	if (!t)
		return code;
	struct slm_client *c = calloc(1, sizeof(*c));
	if (!c)
		return SLM_CLIENT_ENOMEM;
	int rc = t->open(url, &c->conn, err_msg, err_size);
	if (rc) {
		free(c);
		return rc;
	}
	c->t = t;
	c->o = *o;
	if (c->o.rto_ms == 0)
		c->o.rto_ms = 20;
	c->key = c->o.key_id ? c->o.key : NULL;
	while (c->conn_id == 0)
		if (getrandom(&c->conn_id, sizeof(c->conn_id), 0) < 0)
			c->conn_id = (uint32_t)now_ns() | 1;
	c->next_id = 1;
	*out = c;
	return 0;
}

static void req_destroy(struct creq *r)
{
	if (r->ro) {
		for (unsigned i = 0; i < REORDER; i++)
			free(r->ro[i].data);
		free(r->ro);
	}
	free(r->body);
	free(r->frag_acked);
	slm_client_result_free(&r->res);
	free(r);
}

void slm_client_close(struct slm_client *c)
{
	if (!c)
		return;
	for (unsigned i = 0; i < WINDOW; i++)
		if (c->slots[i])
			req_destroy(c->slots[i]);
	c->t->close(c->conn);
	free(c);
}

/* ---- sending ----------------------------------------------------------- */

/* Send the message whose body is at c->tx + HDR. */
static void tx(struct slm_client *c, uint8_t type, uint8_t flags,
	       uint32_t req_id, uint32_t seq, uint32_t aux, size_t blen)
{
	struct dp_hdr h = {
		.version = SLM_PROTO_VERSION,
		.type = type,
		.flags = flags,
		.conn_id = c->conn_id,
		.req_id = req_id,
		.seq = seq,
		.aux = aux,
		.pn = ++c->pn,
		.ts_us = c->key ? dp_wall_us() : 0,
	};
	dp_hdr_encode(c->tx, &h);
	size_t len = dp_seal(c->tx, SLM_PROTO_HDR_SIZE + blen, sizeof(c->tx),
			     c->o.key_id, c->key);
	int rc = c->t->send(c->conn, c->tx, len);
	if (rc) {
		if (rc == SLM_CLIENT_ECONNECT)
			c->refused = true;
		return;
	}
	c->st.tx_datagrams++;
}

static size_t body_room(const struct slm_client *c)
{
	return c->o.max_dgram - SLM_PROTO_HDR_SIZE -
	       (c->key ? SLM_PROTO_MAC_SIZE : 0);
}

static void send_frag(struct slm_client *c, struct creq *r, uint32_t i,
		      bool ack_req)
{
	size_t off = (size_t)i * r->frag_size;
	size_t len = SLM_MIN((size_t)r->frag_size, r->body_len - off);
	memcpy(c->tx + SLM_PROTO_HDR_SIZE, r->body + off, len);
	tx(c, SLM_PROTO_REQ, ack_req ? SLM_PROTO_F_ACK_REQ : 0, r->id, i,
	   dp_frag_aux(r->n_frags, r->frag_size), len);
}

/* Send the fragments the server lacks; the last asks for a REQ_ACK when
 * there are several (or when retrying). */
static void send_frags(struct slm_client *c, struct creq *r, bool retry)
{
	uint32_t last = UINT32_MAX;
	for (uint32_t i = 0; i < r->n_frags; i++)
		if (!(r->frag_acked[i / 8] & (1u << (i % 8))))
			last = i;
	for (uint32_t i = 0; i < r->n_frags; i++) {
		if (r->frag_acked[i / 8] & (1u << (i % 8)))
			continue;
		send_frag(c, r, i, i == last && (retry || r->n_frags > 1));
		if (retry)
			c->st.retransmits++, r->res.retransmits++;
	}
}

static bool ro_have(const struct creq *r, uint32_t seq)
{
	return r->ro && r->ro[seq % REORDER].have &&
	       r->ro[seq % REORDER].seq == seq;
}

/* ACK: cumulative next_seq, the missing stream datagrams, flags. */
static void send_ack(struct slm_client *c, struct creq *r, uint8_t flags)
{
	struct dp_writer w;
	dp_writer_init(&w, c->tx + SLM_PROTO_HDR_SIZE, body_room(c));
	uint32_t upto = SLM_MAX(r->high_seq, r->server_next);
	if (r->done_seq >= 0 && (uint32_t)r->done_seq + 1 > upto)
		upto = (uint32_t)r->done_seq + 1;
	if (upto > r->next_seq + REORDER)
		upto = r->next_seq + REORDER;
	uint8_t missing[SLM_PROTO_MAX_MISSING * 4];
	uint32_t n = 0;
	for (uint32_t s = r->next_seq; s < upto && n < SLM_PROTO_MAX_MISSING;
	     s++) {
		if (!ro_have(r, s))
			dp_put_u32(missing + 4 * n++, s);
	}
	if (n && !(flags & SLM_PROTO_F_FIN)) {
		dp_put_field(&w, SLM_PROTO_T_MISSING, true, missing, 4 * n);
		c->st.nacks += n;
		r->res.retransmits += n;
	}
	tx(c, SLM_PROTO_ACK, flags, r->id, r->next_seq, 0, w.len);
	r->unacked = 0;
}

static void send_cancel(struct slm_client *c, struct creq *r)
{
	tx(c, SLM_PROTO_CANCEL, 0, r->id, 0, 0, 0);
}

/* ---- the end of a request ---------------------------------------------- */

static void req_complete(struct slm_client *c, struct creq *r, int status,
			 uint64_t now)
{
	c->slots[r->id % WINDOW] = NULL;
	c->n_live--;
	c->completed++;
	r->res.client_total_ns = now - r->t_start;
	if (status && !r->res.error)
		r->res.error = status;
	if (status && !r->res.message[0])
		snprintf(r->res.message, sizeof(r->res.message), "%s",
			 slm_strerror(status));
	if (!r->res.text) {
		r->res.text = calloc(1, 1);
	} else {
		r->res.text[r->res.text_len] = '\0';
	}
	if (r->out) {
		*r->out = r->res;
		memset(&r->res, 0, sizeof(r->res));
		*r->out_status = status;
		*r->out_done = true;
	} else if (r->on_done) {
		c->in_callback = true;
		r->on_done(r->ctx, r->id, status, &r->res);
		c->in_callback = false;
	}
	req_destroy(r);
}

static void req_fail(struct slm_client *c, struct creq *r, int code,
		     const char *msg, uint64_t now)
{
	r->res.finish = SLM_CLIENT_FINISH_ERROR;
	r->res.error = code;
	snprintf(r->res.message, sizeof(r->res.message), "%s", msg);
	req_complete(c, r, code, now);
}

/* ---- receiving --------------------------------------------------------- */

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	void *np = realloc(*p, nc * elem);
	if (!np)
		return false;
	*p = np;
	*cap = nc;
	return true;
}

/* Deliver one in-order stream datagram; false when the request ended. */
static bool deliver(struct slm_client *c, struct creq *r, uint8_t type,
		    const uint8_t *body, size_t len, uint64_t now)
{
	struct slm_error err = {0};
	if (type == SLM_PROTO_TOKENS) {
		struct dp_tokens t;
		if (dp_tokens_decode(body, len, &t, &err)) {
			req_fail(c, r, SLM_EPROTO, err.msg, now);
			return false;
		}
		struct slm_client_result *res = &r->res;
		if (!grow((void **)&res->ids, &r->ids_cap, res->n_ids + t.n_ids,
			  sizeof(int32_t)) ||
		    !grow((void **)&res->text, &r->text_cap,
			  res->text_len + t.text_len + 1, 1)) {
			req_fail(c, r, SLM_ENOMEM, "out of memory", now);
			return false;
		}
		int32_t *ids = res->ids ? res->ids + res->n_ids : NULL;
		for (uint32_t i = 0; i < t.n_ids; i++)
			ids[i] = (int32_t)dp_get_u32(t.ids_raw + 4 * i);
		res->n_ids += t.n_ids;
		if (t.text_len)
			memcpy(res->text + res->text_len, t.text, t.text_len);
		res->text_len += t.text_len;
		if (!r->got_first && (t.n_ids || t.text_len)) {
			r->got_first = true;
			res->client_ttft_ns = now - r->t_start;
		}
		if (r->on_chunk && (t.n_ids || t.text_len) && !r->cancel) {
			c->in_callback = true;
			int stop = r->on_chunk(r->ctx, t.text, t.text_len, ids,
					       t.n_ids);
			c->in_callback = false;
			if (stop) {
				r->cancel = true;
				r->cancel_next = now + r->rto;
				send_cancel(c, r);
			}
		}
		return true;
	}
	struct dp_done d;
	if (dp_done_decode(body, len, &d, &err)) {
		req_fail(c, r, SLM_EPROTO, err.msg, now);
		return false;
	}
	struct slm_client_result *res = &r->res;
	res->finish = d.finish;
	res->prompt_tokens = d.prompt_tokens;
	res->cached_tokens = d.cached_tokens;
	res->generated_tokens = d.generated_tokens;
	res->queue_us = d.queue_us;
	res->prefill_us = d.prefill_us;
	res->ttft_us = d.ttft_us;
	res->total_us = d.total_us;
	r->finished = true;
	int status = 0;
	if (d.finish == SLM_PROTO_FINISH_ERROR) {
		status = d.error < 0 ? d.error : SLM_EIO;
		res->error = status;
		snprintf(res->message, sizeof(res->message), "%.*s",
			 (int)d.msg_len, d.msg);
	}
	/* Everything up to DONE is in: the server may forget it. */
	send_ack(c, r, SLM_PROTO_F_FIN);
	req_complete(c, r, status, now);
	return false;
}

static void on_stream(struct slm_client *c, struct creq *r,
		      const struct dp_hdr *h, const uint8_t *body, size_t len,
		      uint64_t now)
{
	uint32_t seq = h->seq;
	if (r->st == CR_SENDING) {
		r->st = CR_RUNNING;
		free(r->body);
		r->body = NULL;
	}
	if (seq < r->next_seq || seq >= r->next_seq + REORDER ||
	    ro_have(r, seq))
		return; /* duplicate, or beyond the window: asked again */
	if (h->type == SLM_PROTO_DONE)
		r->done_seq = seq;
	r->probe_ivl =
		SLM_MAX(PROBE_MIN_NS, 4 * (uint64_t)c->o.rto_ms * 1000000);
	r->next_probe = now + r->probe_ivl;
	bool gap = seq > r->high_seq && seq > r->next_seq;
	if (seq + 1 > r->high_seq)
		r->high_seq = seq + 1;
	if (seq == r->next_seq) {
		r->next_seq++;
		r->unacked++;
		if (!deliver(c, r, h->type, body, len, now))
			return;
	} else {
		if (!r->ro)
			r->ro = calloc(REORDER, sizeof(*r->ro));
		uint8_t *copy = malloc(len ? len : 1);
		if (!r->ro || !copy) {
			free(copy);
			return; /* asked again later */
		}
		struct rslot *sl = &r->ro[seq % REORDER];
		free(sl->data);
		sl->data = copy;
		memcpy(copy, body, len);
		sl->len = (uint32_t)len;
		sl->seq = seq;
		sl->type = h->type;
		sl->have = true;
	}
	while (ro_have(r, r->next_seq)) {
		struct rslot *sl = &r->ro[r->next_seq % REORDER];
		sl->have = false;
		r->next_seq++;
		r->unacked++;
		bool alive = deliver(c, r, sl->type, sl->data, sl->len, now);
		if (!alive)
			return;
		free(sl->data);
		sl->data = NULL;
	}
	if (gap) {
		send_ack(c, r, 0);
		r->last_tx = now;
	} else if (r->unacked >= ACK_EVERY) {
		send_ack(c, r, 0);
		r->last_tx = now;
	}
}

static void on_req_ack(struct slm_client *c, struct creq *r,
		       const struct dp_hdr *h, const uint8_t *body, size_t len,
		       uint64_t now)
{
	struct dp_req_ack a;
	struct slm_error err = {0};
	if (dp_req_ack_decode(body, len, &a, &err)) {
		c->st.dropped++;
		return;
	}
	if (a.stream_next > r->server_next)
		r->server_next = a.stream_next;
	if (h->aux == SLM_PROTO_RS_PARTIAL) {
		if (r->st != CR_SENDING || !a.bitmap ||
		    a.bitmap_len != (r->n_frags + 7) / 8)
			return;
		for (uint32_t i = 0; i < a.bitmap_len; i++)
			r->frag_acked[i] |= a.bitmap[i];
		send_frags(c, r, true);
		r->next_retx = now + r->rto;
		return;
	}
	if (r->st == CR_SENDING) {
		r->st = CR_RUNNING;
		free(r->body);
		r->body = NULL;
		r->probe_ivl = SLM_MAX(PROBE_MIN_NS,
				       4 * (uint64_t)c->o.rto_ms * 1000000);
	}
	r->next_probe = now + r->probe_ivl;
	/* Tail loss: the server sent datagrams we never got. */
	if (r->server_next > r->high_seq) {
		send_ack(c, r, 0);
		r->last_tx = now;
	}
}

static void on_error(struct slm_client *c, struct creq *r, const uint8_t *body,
		     size_t len, uint64_t now)
{
	struct dp_errmsg e;
	struct slm_error err = {0};
	if (dp_errmsg_decode(body, len, &e, &err)) {
		c->st.dropped++;
		return;
	}
	char msg[MSG_MAX];
	snprintf(msg, sizeof(msg), "%.*s", (int)e.msg_len, e.msg);
	if (r->cancel && (e.code == SLM_ECANCELED || e.code == SLM_ESTATE)) {
		/* Our CANCEL reached the server before (or instead of) the
		 * request: it is cancelled. */
		r->res.finish = SLM_CLIENT_FINISH_CANCELED;
		snprintf(r->res.message, sizeof(r->res.message), "%s", msg);
		req_complete(c, r, 0, now);
		return;
	}
	req_fail(c, r, e.code, msg, now);
}

static void on_info(struct slm_client *c, const uint8_t *body, size_t len)
{
	struct dp_info in;
	struct slm_error err = {0};
	if (!c->info_wait || c->info_got)
		return;
	c->info_got = true;
	if (dp_info_decode(body, len, &in, &err)) {
		c->info_err = SLM_EPROTO;
		return;
	}
	struct slm_client_info *o = c->info_out;
	memset(o, 0, sizeof(*o));
	snprintf(o->server_version, sizeof(o->server_version), "%.*s",
		 (int)in.server_version_len, in.server_version);
	if (in.model) {
		o->has_model = true;
		snprintf(o->model, sizeof(o->model), "%.*s", (int)in.model_len,
			 in.model);
	}
	o->n_ctx = in.n_ctx;
	o->n_vocab = in.n_vocab;
	o->max_request = in.max_request;
	o->max_dgram = in.max_dgram;
	o->max_inflight = in.max_inflight;
	o->auth = in.auth;
	c->info_err = 0;
}

static void dispatch(struct slm_client *c, const uint8_t *d, size_t len,
		     uint64_t now)
{
	struct dp_hdr h;
	const uint8_t *body;
	size_t blen;
	c->st.rx_datagrams++;
	if (dp_hdr_decode(d, len, &h) || h.conn_id != c->conn_id ||
	    !dp_dgram_body(d, len, &h, &body, &blen)) {
		c->st.dropped++;
		return;
	}
	if (c->key) {
		if (!(h.flags & SLM_PROTO_F_AUTH) || h.key_id != c->o.key_id ||
		    !dp_mac_verify(d, len, c->key) ||
		    dp_window_test(&c->rx_win, h.pn) != DP_WINDOW_NEW) {
			c->st.dropped++;
			return;
		}
		dp_window_set(&c->rx_win, h.pn);
	} else if (h.flags & SLM_PROTO_F_AUTH) {
		c->st.dropped++;
		return;
	}
	if (h.req_id == 0) {
		switch (h.type) {
		case SLM_PROTO_PONG:
			if (c->ping_wait && !c->ping_got &&
			    h.seq == c->ping_seq) {
				c->ping_got = true;
				c->ping_t_rx = now;
				c->ping_err = 0;
			}
			return;
		case SLM_PROTO_INFO:
			on_info(c, body, blen);
			return;
		case SLM_PROTO_ERROR: {
			struct dp_errmsg e;
			struct slm_error err = {0};
			if (dp_errmsg_decode(body, blen, &e, &err))
				e.code = SLM_EPROTO;
			if (c->ping_wait && !c->ping_got) {
				c->ping_got = true;
				c->ping_err = e.code;
			}
			if (c->info_wait && !c->info_got) {
				c->info_got = true;
				c->info_err = e.code;
			}
			return;
		}
		default:
			c->st.dropped++;
			return;
		}
	}
	struct creq *r = c->slots[h.req_id % WINDOW];
	if (!r || r->id != h.req_id) {
		c->st.dropped++; /* a request already ended */
		return;
	}
	r->last_rx = now;
	r->tries = 0;
	switch (h.type) {
	case SLM_PROTO_TOKENS:
	case SLM_PROTO_DONE:
		on_stream(c, r, &h, body, blen, now);
		return;
	case SLM_PROTO_REQ_ACK:
		on_req_ack(c, r, &h, body, blen, now);
		return;
	case SLM_PROTO_ERROR:
		on_error(c, r, body, blen, now);
		return;
	default:
		c->st.dropped++;
		return;
	}
}

/* Read every datagram waiting; returns how many. */
static int receive(struct slm_client *c)
{
	int n = 0;
	for (;;) {
		int got = c->t->recv(c->conn, c->rx, sizeof(c->rx));
		if (got == SLM_CLIENT_ECONNECT) {
			c->refused = true;
			continue;
		}
		if (got <= 0)
			break;
		n++;
		dispatch(c, c->rx, (size_t)got, now_ns());
	}
	return n;
}

/* ---- timers ------------------------------------------------------------ */

static int silent_code(const struct slm_client *c)
{
	return c->refused ? SLM_ECONNECT : SLM_ETIMEDOUT;
}

static const char *silent_msg(const struct slm_client *c)
{
	return c->refused ? "connection refused (is slmd running there?)"
			  : "no answer from the server";
}

/* Run one request's timers; returns when it next needs attention. */
static uint64_t req_timers(struct slm_client *c, struct creq *r, uint64_t now)
{
	if (r->deadline && now >= r->deadline) {
		send_cancel(c, r);
		char msg[64];
		snprintf(msg, sizeof(msg), "timed out after %u ms",
			 c->o.timeout_ms);
		c->st.timeouts++;
		req_fail(c, r, SLM_ETIMEDOUT, msg, now);
		return UINT64_MAX;
	}
	uint64_t next = r->deadline ? r->deadline : UINT64_MAX;
	if (r->cancel) {
		if (now >= r->cancel_next) {
			if (r->tries >= c->o.retries) {
				c->st.timeouts++;
				req_fail(c, r, silent_code(c), silent_msg(c),
					 now);
				return UINT64_MAX;
			}
			send_cancel(c, r);
			r->tries++;
			c->st.retransmits++;
			r->cancel_next =
				now + SLM_MIN(r->rto << r->tries, RTO_MAX_NS);
		}
		return SLM_MIN(next, r->cancel_next);
	}
	if (r->st == CR_SENDING) {
		if (now >= r->next_retx) {
			if (r->tries >= c->o.retries) {
				c->st.timeouts++;
				req_fail(c, r, silent_code(c), silent_msg(c),
					 now);
				return UINT64_MAX;
			}
			send_frags(c, r, true);
			r->tries++;
			r->last_tx = now;
			r->rto = SLM_MIN(r->rto * 2, RTO_MAX_NS);
			r->next_retx = now + r->rto;
		}
		return SLM_MIN(next, r->next_retx);
	}
	if (now >= r->next_probe) {
		if (r->tries >= c->o.retries) {
			c->st.timeouts++;
			req_fail(c, r, silent_code(c),
				 "the server stopped answering", now);
			return UINT64_MAX;
		}
		send_ack(c, r, SLM_PROTO_F_ACK_REQ);
		r->tries++;
		c->st.retransmits++;
		r->last_tx = now;
		r->probe_ivl = SLM_MIN(r->probe_ivl * 2, RTO_MAX_NS);
		r->next_probe = now + r->probe_ivl;
	} else if (now - r->last_tx >= KEEPALIVE_NS) {
		send_ack(c, r, 0);
		r->last_tx = now;
	}
	next = SLM_MIN(next, r->next_probe);
	return SLM_MIN(next, r->last_tx + KEEPALIVE_NS);
}

static uint64_t run_timers(struct slm_client *c, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	if (!c->n_live)
		return next;
	for (unsigned i = 0; i < WINDOW; i++) {
		struct creq *r = c->slots[i];
		if (r) {
			/* Not inside SLM_MIN: it would run the timers twice,
			 * the second time on a request the first one ended. */
			uint64_t t = req_timers(c, r, now);
			next = SLM_MIN(next, t);
		}
	}
	return next;
}

/*
 * Receive and run timers until *stop is true or until (CLOCK_MONOTONIC)
 * passes.  Spins for spin_us after each datagram before sleeping.
 */
static int pump(struct slm_client *c, uint64_t until, const bool *stop)
{
	uint64_t spin = (uint64_t)c->o.spin_us * 1000;
	uint64_t now = now_ns(), last_rx = now;
	uint64_t next_timer = 0;
	for (;;) {
		if (receive(c))
			last_rx = now = now_ns();
		if (stop && *stop)
			return 0;
		now = now_ns();
		if (now >= next_timer)
			next_timer = run_timers(c, now);
		if (stop && *stop)
			return 0;
		if (now >= until)
			return 0;
		if (now - last_rx < spin)
			continue;
		uint64_t wake = SLM_MIN(until, next_timer);
		uint64_t wait = wake > now ? wake - now : 0;
		int rc = c->t->wait(c->conn, wait);
		if (rc < 0)
			return rc;
		if (rc > 0)
			last_rx = now_ns();
	}
}

/* ---- requests ---------------------------------------------------------- */

static int build_body(const struct slm_client_gen *g, uint8_t **body,
		      size_t *len)
{
	struct dp_gen d = {0};
	struct dp_chat_msg *msgs = NULL;
	switch (g->input) {
	case SLM_CLIENT_TEXT:
		if (!g->text)
			return SLM_EINVAL;
		d.input = DP_INPUT_TEXT;
		d.text = g->text;
		d.text_len =
			(uint32_t)(g->text_len ? g->text_len : strlen(g->text));
		break;
	case SLM_CLIENT_IDS:
		if (!g->ids || !g->n_ids || g->n_ids > UINT32_MAX)
			return SLM_EINVAL;
		d.input = DP_INPUT_IDS;
		d.ids = g->ids;
		d.n_ids = (uint32_t)g->n_ids;
		break;
	case SLM_CLIENT_CHAT:
		if (!g->messages || !g->n_messages || g->n_messages > 65536)
			return SLM_EINVAL;
		msgs = calloc(g->n_messages, sizeof(*msgs));
		if (!msgs)
			return SLM_ENOMEM;
		for (size_t i = 0; i < g->n_messages; i++) {
			if (!g->messages[i].role || !g->messages[i].content) {
				free(msgs);
				return SLM_EINVAL;
			}
			msgs[i].role = g->messages[i].role;
			msgs[i].content = g->messages[i].content;
		}
		d.input = DP_INPUT_CHAT;
		d.msgs = msgs;
		d.n_msgs = (uint32_t)g->n_messages;
		d.chat_template = g->chat_template;
		break;
	default:
		return SLM_EINVAL;
	}
	if (g->n_stop > SLM_PROTO_MAX_STOP) {
		free(msgs);
		return SLM_EINVAL;
	}
	d.set = g->set;
	d.temperature = g->temperature;
	d.top_k = g->top_k;
	d.top_p = g->top_p;
	d.min_p = g->min_p;
	d.repeat_penalty = g->repeat_penalty;
	d.repeat_last_n = g->repeat_last_n;
	d.freq_penalty = g->frequency_penalty;
	d.presence_penalty = g->presence_penalty;
	d.seed = g->seed;
	d.max_tokens = g->max_tokens;
	d.ignore_eos = g->ignore_eos;
	d.parse_special = g->parse_special;
	d.deadline_ms = g->deadline_ms;
	d.stop = g->stop;
	d.n_stop = (uint32_t)g->n_stop;
	d.cache_ns = g->cache_namespace;
	size_t need = dp_gen_encoded_size(&d);
	uint8_t *b = malloc(need ? need : 1);
	if (!b) {
		free(msgs);
		return SLM_ENOMEM;
	}
	int n = dp_gen_encode(&d, b, need);
	free(msgs);
	if (n < 0) {
		free(b);
		return n;
	}
	*body = b;
	*len = (size_t)n;
	return 0;
}

int slm_client_submit(struct slm_client *c, const struct slm_client_gen *g,
		      slm_client_chunk_fn on_chunk, slm_client_done_fn on_done,
		      void *ctx, uint32_t *id)
{
	uint32_t rid = c->next_id;
	if (c->slots[rid % WINDOW])
		return SLM_EOVERLOAD;
	struct creq *r = calloc(1, sizeof(*r));
	if (!r)
		return SLM_ENOMEM;
	int rc = build_body(g, &r->body, &r->body_len);
	if (rc) {
		free(r);
		return rc;
	}
	size_t room = body_room(c);
	r->frag_size = (uint32_t)room;
	r->n_frags = (uint32_t)((r->body_len + room - 1) / room);
	if (r->n_frags > SLM_PROTO_MAX_FRAGS) {
		req_destroy(r);
		return SLM_ETOOBIG;
	}
	if (r->n_frags == 1)
		r->frag_size = (uint32_t)r->body_len;
	r->frag_acked = calloc((r->n_frags + 7) / 8, 1);
	if (!r->frag_acked) {
		req_destroy(r);
		return SLM_ENOMEM;
	}
	c->next_id = rid + 1 ? rid + 1 : 1;
	r->id = rid;
	r->done_seq = -1;
	r->on_chunk = on_chunk;
	r->on_done = on_done;
	r->ctx = ctx;
	uint64_t now = now_ns();
	r->t_start = r->last_tx = r->last_rx = now;
	r->rto = (uint64_t)c->o.rto_ms * 1000000;
	r->next_retx = now + r->rto;
	r->probe_ivl = SLM_MAX(PROBE_MIN_NS, 4 * r->rto);
	r->next_probe = now + r->probe_ivl;
	if (c->o.timeout_ms)
		r->deadline = now + (uint64_t)c->o.timeout_ms * 1000000;
	c->slots[rid % WINDOW] = r;
	c->n_live++;
	send_frags(c, r, false);
	if (id)
		*id = rid;
	return 0;
}

int slm_client_poll(struct slm_client *c, int timeout_ms)
{
	c->completed = 0;
	uint64_t now = now_ns();
	int rc;
	if (timeout_ms < 0) {
		bool stop = false;
		while (!c->completed && c->n_live) {
			rc = pump(c, now + 100000000ull, &stop);
			if (rc)
				return rc;
		}
	} else {
		rc = pump(c, now + (uint64_t)timeout_ms * 1000000, NULL);
		if (rc)
			return rc;
	}
	return c->completed;
}

int slm_client_cancel(struct slm_client *c, uint32_t id)
{
	struct creq *r = c->slots[id % WINDOW];
	if (!r || r->id != id)
		return SLM_ENOTFOUND;
	if (!r->cancel) {
		r->cancel = true;
		r->tries = 0;
		r->cancel_next = now_ns() + r->rto;
		send_cancel(c, r);
	}
	return 0;
}

int slm_client_generate(struct slm_client *c, const struct slm_client_gen *g,
			slm_client_chunk_fn on_chunk, void *ctx,
			struct slm_client_result *res)
{
	memset(res, 0, sizeof(*res));
	uint32_t id;
	int rc = slm_client_submit(c, g, on_chunk, NULL, ctx, &id);
	if (rc) {
		res->finish = SLM_CLIENT_FINISH_ERROR;
		res->error = rc;
		snprintf(res->message, sizeof(res->message), "%s",
			 slm_strerror(rc));
		return rc;
	}
	struct creq *r = c->slots[id % WINDOW];
	bool done = false;
	int status = 0;
	r->out = res;
	r->out_status = &status;
	r->out_done = &done;
	while (!done) {
		rc = pump(c, UINT64_MAX, &done);
		if (rc && !done) {
			/* The request is still live: detach it from res. */
			r->out = NULL;
			slm_client_cancel(c, id);
			res->error = rc;
			return rc;
		}
	}
	return status;
}

int slm_client_ping(struct slm_client *c, uint32_t timeout_ms, uint64_t *rtt_ns)
{
	struct dp_writer w;
	dp_writer_init(&w, c->tx + SLM_PROTO_HDR_SIZE, body_room(c));
	uint64_t t0 = now_ns();
	uint8_t echo[8];
	dp_put_u64(echo, t0);
	dp_put_field(&w, SLM_PROTO_T_ECHO, false, echo, sizeof(echo));
	c->ping_seq++;
	c->ping_wait = true;
	c->ping_got = false;
	c->ping_err = 0;
	tx(c, SLM_PROTO_PING, 0, 0, c->ping_seq, 0, w.len);
	int rc = pump(c, t0 + (uint64_t)timeout_ms * 1000000, &c->ping_got);
	c->ping_wait = false;
	if (rc)
		return rc;
	if (!c->ping_got) {
		c->st.timeouts++;
		return silent_code(c);
	}
	if (c->ping_err)
		return c->ping_err;
	if (rtt_ns)
		*rtt_ns = c->ping_t_rx - t0;
	return 0;
}

int slm_client_info(struct slm_client *c, uint32_t timeout_ms,
		    struct slm_client_info *out)
{
	uint64_t t0 = now_ns(), until = t0 + (uint64_t)timeout_ms * 1000000;
	uint64_t rto = (uint64_t)c->o.rto_ms * 1000000;
	c->info_wait = true;
	c->info_got = false;
	c->info_out = out;
	c->info_err = 0;
	int rc = 0;
	while (!c->info_got) {
		tx(c, SLM_PROTO_INFO_REQ, 0, 0, 0, 0, 0);
		uint64_t now = now_ns();
		if (now >= until)
			break;
		rc = pump(c, SLM_MIN(until, now + rto), &c->info_got);
		if (rc)
			break;
		rto = SLM_MIN(rto * 2, RTO_MAX_NS);
		if (!c->info_got)
			c->st.retransmits++;
	}
	c->info_wait = false;
	c->info_out = NULL;
	if (rc)
		return rc;
	if (!c->info_got) {
		c->st.timeouts++;
		return silent_code(c);
	}
	return c->info_err;
}
