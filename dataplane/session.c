/*
 * session.c: connections, requests, reassembly, dedup, the token stream
 * and its retransmit buffer.  See session.h and docs/protocol.md.
 *
 * Invariants:
 *  - A request object lives in the request table from its first fragment
 *    until it is freed; its id was recorded in its connection's request
 *    window when it was created, so once freed a retransmission of it is
 *    answered (ESTATE) and never runs again.
 *  - A request submitted to the serving core (submitted) is freed only
 *    after its DONE event was taken from the queue (done_seen): the event
 *    callback's ctx is the request, so it must outlive every event.
 *  - inflight (connection and session) counts PARTIAL and RUNNING
 *    requests whose DONE has not been seen.
 *  - The flush list is empty outside dp_session_poll.
 */
#include "dataplane/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/version.h"
#include "dataplane/evq.h"
#include "dataplane/proto.h"

#define SWEEP_NS (20ull * 1000000)
#define EV_BUDGET 512
#define ERRMSG_MAX 200
#define DONE_MSG_MAX 256
#define TXBUF_SIZE (SLM_PROTO_MAX_DGRAM + SLM_PROTO_MAC_SIZE)

enum req_state {
	RQ_PARTIAL = 0,	 /* fragments missing */
	RQ_RUNNING = 1,	 /* submitted, DONE not sent */
	RQ_FINISHED = 2, /* DONE sent; waiting for the client's FIN */
	RQ_REFUSED = 3,	 /* answered ERROR; kept to answer retransmits */
};

enum ev_kind { EV_TOKENS = 1, EV_DONE = 2 };

struct dp_req;

/* An event from a worker, queued to the session's thread. */
struct dp_ev {
	struct dp_evq_node node;
	struct dp_req *req;
	uint8_t kind;
	uint8_t finish;
	int32_t error;
	uint32_t n_ids;	   /* TOKENS */
	uint32_t text_len; /* TOKENS text, or DONE message */
	uint32_t usage[3];
	uint64_t timings[4];
	/* TOKENS: n_ids int32 then text; DONE: up to DONE_MSG_MAX bytes */
	_Alignas(int32_t) uint8_t data[];
};

/* A stream datagram's body, kept until the client acknowledges it. */
struct rtx_pkt {
	uint32_t seq;
	uint8_t type;
	uint32_t len;
	uint8_t body[];
};

/* A serving core the session submits to.  Published atomically by
 * dp_session_attach_serve; never freed before the session, since requests
 * keep the binding they were submitted through (to cancel there). */
struct dp_serve_binding {
	const struct dp_serve_ops *ops;
	void *serve;
	struct dp_serve_binding *older;
};

struct dp_conn {
	struct dp_conn *hnext;
	struct dp_conn *prev, *next; /* all connections */
	struct dp_peer peer;
	uint32_t conn_id;
	uint16_t key_id;
	const uint8_t *key; /* NULL: no MACs */
	struct dp_window pn_win;
	struct dp_window req_win;
	uint64_t tx_pn;
	uint64_t last_heard;
	uint32_t inflight;
	uint32_t n_reqs;
	uint64_t rate_credit; /* token bucket, in datagram-nanoseconds */
	uint64_t rate_last;
};

struct dp_req {
	struct dp_req *hnext;
	struct dp_req *prev, *next; /* all requests */
	struct dp_req *fnext;	    /* flush list */
	struct dp_session *sess;    /* immutable; read by worker threads */
	struct dp_conn *conn;
	uint32_t req_id;
	uint8_t state;
	bool submitted;	  /* the serving core has it */
	bool done_seen;	  /* its DONE event was taken from the queue */
	bool done_unsent; /* DONE seen, its datagram not yet sent */
	bool cancel_sent;
	bool abandoned; /* nobody listens: send nothing more */
	bool on_flush;
	atomic_int ev_lost; /* a worker could not queue a TOKENS event */
	uint64_t created, last_heard, finished;

	/* reassembly (PARTIAL) */
	uint8_t *body;
	uint8_t *frag_bits;
	uint32_t frag_count, frag_size, frags_have, body_len;
	uint64_t reasm_bytes;

	uint64_t serve_id;
	const struct dp_serve_binding *bind; /* where it was submitted */

	/* stream */
	uint32_t next_seq;
	uint32_t acked; /* the client has every seq below */
	struct rtx_pkt **rtx;
	uint32_t rtx_head, rtx_n, rtx_cap; /* ring; rtx_base = first seq */
	uint32_t rtx_base;
	uint64_t rtx_bytes;

	/* tokens waiting to be sent */
	int32_t *p_ids;
	uint32_t p_nids, p_ids_cap;
	char *p_text;
	uint32_t p_text_len, p_text_cap;

	struct dp_ev *done_ev; /* preallocated at submit */

	/* REFUSED */
	int32_t err_code;
	char *err_msg;
};

struct htab {
	void **b;
	uint32_t mask; /* buckets - 1 */
	uint32_t n;
};

struct dp_session {
	struct dp_evq evq; /* first: cache-aligned */
	struct dp_counters c;
	struct dp_session_params p;
	/* The current serving core (NULL: none yet).  Written by any thread
	 * through dp_session_attach_serve, read by the session's thread. */
	_Atomic(struct dp_serve_binding *) bind;
	char version[64];

	struct htab conns, reqs;
	struct dp_conn *conn_list;
	struct dp_req *req_list;
	struct dp_req *flush_head;
	uint32_t inflight;
	uint32_t waiting; /* submitted, DONE not seen */
	uint64_t reasm_bytes, rtx_bytes;
	uint64_t next_sweep;
	uint64_t stateless_pn;
	bool shutting_down;

	uint8_t tx[TXBUF_SIZE];
	uint8_t sbody[TXBUF_SIZE];
};

/* ---- params ------------------------------------------------------------ */

void dp_session_params_default(struct dp_session_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_request_bytes = 64 * 1024;
	p->max_clients = 4096;
	p->max_inflight = 4096;
	p->client_max_inflight = 256;
	p->client_rate = 0;
	p->retransmit_bytes = 256 * 1024;
	p->reassembly_bytes = 32ull * 1024 * 1024;
	p->reassembly_timeout_ms = 2000;
	p->abandon_ms = 5000;
	p->replay_window_s = 30;
	p->client_idle_s = 120;
	p->tx_dgram = SLM_PROTO_DEFAULT_DGRAM;
	p->server_version = "slmd " SLM_VERSION;
}

/* ---- hash tables --------------------------------------------------------*/

static int htab_init(struct htab *t, uint32_t buckets)
{
	t->b = calloc(buckets, sizeof(*t->b));
	t->mask = buckets - 1;
	t->n = 0;
	return t->b ? 0 : SLM_ENOMEM;
}

static uint64_t conn_hash(const struct dp_session *s, const struct dp_peer *p,
			  uint32_t conn_id)
{
	return dp_peer_hash(p, s->p.hash_seed ^ ((uint64_t)conn_id << 17));
}

static uint64_t req_hash(const struct dp_session *s, const struct dp_conn *c,
			 uint32_t req_id)
{
	uint64_t h = (uint64_t)(uintptr_t)c ^ s->p.hash_seed;
	h ^= (uint64_t)req_id * 0x9e3779b97f4a7c15ull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

/* Double the buckets when the load passes 1 (allocation failure keeps the
 * old table: longer chains, still correct). */
static void conns_grow(struct dp_session *s)
{
	struct htab *t = &s->conns;
	if (t->n <= t->mask + 1)
		return;
	uint32_t nb = (t->mask + 1) * 2;
	void **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (uint32_t i = 0; i <= t->mask; i++) {
		struct dp_conn *c = t->b[i];
		while (c) {
			struct dp_conn *next = c->hnext;
			uint64_t h = conn_hash(s, &c->peer, c->conn_id);
			c->hnext = b[h & (nb - 1)];
			b[h & (nb - 1)] = c;
			c = next;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

static void reqs_grow(struct dp_session *s)
{
	struct htab *t = &s->reqs;
	if (t->n <= t->mask + 1)
		return;
	uint32_t nb = (t->mask + 1) * 2;
	void **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (uint32_t i = 0; i <= t->mask; i++) {
		struct dp_req *r = t->b[i];
		while (r) {
			struct dp_req *next = r->hnext;
			uint64_t h = req_hash(s, r->conn, r->req_id);
			r->hnext = b[h & (nb - 1)];
			b[h & (nb - 1)] = r;
			r = next;
		}
	}
	free(t->b);
	t->b = b;
	t->mask = nb - 1;
}

static struct dp_conn *conn_find(struct dp_session *s, const struct dp_peer *p,
				 uint32_t conn_id)
{
	uint64_t h = conn_hash(s, p, conn_id);
	for (struct dp_conn *c = s->conns.b[h & s->conns.mask]; c; c = c->hnext)
		if (c->conn_id == conn_id && dp_peer_equal(&c->peer, p))
			return c;
	return NULL;
}

static struct dp_conn *conn_create(struct dp_session *s,
				   const struct dp_peer *p, uint32_t conn_id,
				   uint16_t key_id, const uint8_t *key,
				   uint64_t now)
{
	if (s->conns.n >= s->p.max_clients)
		return NULL;
	struct dp_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->peer = *p;
	c->conn_id = conn_id;
	c->key_id = key_id;
	c->key = key;
	c->last_heard = now;
	c->rate_last = now;
	c->rate_credit =
		(uint64_t)SLM_MAX(s->p.client_rate / 10, 32u) * 1000000000ull;
	uint64_t h = conn_hash(s, p, conn_id);
	c->hnext = s->conns.b[h & s->conns.mask];
	s->conns.b[h & s->conns.mask] = c;
	s->conns.n++;
	c->next = s->conn_list;
	if (s->conn_list)
		s->conn_list->prev = c;
	s->conn_list = c;
	s->c.conns_created++;
	conns_grow(s);
	return c;
}

static void conn_free(struct dp_session *s, struct dp_conn *c)
{
	SLM_ASSERT(c->n_reqs == 0);
	uint64_t h = conn_hash(s, &c->peer, c->conn_id);
	struct dp_conn **pp = (struct dp_conn **)&s->conns.b[h & s->conns.mask];
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	s->conns.n--;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conn_list = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static struct dp_req *req_find(struct dp_session *s, struct dp_conn *c,
			       uint32_t req_id)
{
	uint64_t h = req_hash(s, c, req_id);
	for (struct dp_req *r = s->reqs.b[h & s->reqs.mask]; r; r = r->hnext)
		if (r->conn == c && r->req_id == req_id)
			return r;
	return NULL;
}

static struct dp_req *req_create(struct dp_session *s, struct dp_conn *c,
				 uint32_t req_id, uint64_t now)
{
	struct dp_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->sess = s;
	r->conn = c;
	r->req_id = req_id;
	r->state = RQ_PARTIAL;
	r->created = r->last_heard = now;
	atomic_init(&r->ev_lost, 0);
	uint64_t h = req_hash(s, c, req_id);
	r->hnext = s->reqs.b[h & s->reqs.mask];
	s->reqs.b[h & s->reqs.mask] = r;
	s->reqs.n++;
	r->next = s->req_list;
	if (s->req_list)
		s->req_list->prev = r;
	s->req_list = r;
	c->n_reqs++;
	c->inflight++;
	s->inflight++;
	dp_window_set(&c->req_win, req_id);
	reqs_grow(s);
	return r;
}

static void reasm_release(struct dp_session *s, struct dp_req *r)
{
	free(r->body);
	free(r->frag_bits);
	r->body = NULL;
	r->frag_bits = NULL;
	s->reasm_bytes -= r->reasm_bytes;
	r->reasm_bytes = 0;
}

static void rtx_clear(struct dp_session *s, struct dp_req *r)
{
	for (uint32_t i = 0; i < r->rtx_n; i++)
		free(r->rtx[(r->rtx_head + i) & (r->rtx_cap - 1)]);
	free(r->rtx);
	r->rtx = NULL;
	r->rtx_n = r->rtx_cap = r->rtx_head = 0;
	s->rtx_bytes -= r->rtx_bytes;
	r->rtx_bytes = 0;
}

/* Leaving PARTIAL or RUNNING: the request no longer counts in flight. */
static void req_leave_inflight(struct dp_session *s, struct dp_req *r)
{
	SLM_ASSERT(r->conn->inflight > 0 && s->inflight > 0);
	r->conn->inflight--;
	s->inflight--;
}

static void req_free(struct dp_session *s, struct dp_req *r)
{
	SLM_ASSERT(!r->submitted || r->done_seen);
	SLM_ASSERT(!r->on_flush);
	if (r->state == RQ_PARTIAL || (r->state == RQ_RUNNING && !r->done_seen))
		req_leave_inflight(s, r);
	uint64_t h = req_hash(s, r->conn, r->req_id);
	struct dp_req **pp = (struct dp_req **)&s->reqs.b[h & s->reqs.mask];
	while (*pp != r)
		pp = &(*pp)->hnext;
	*pp = r->hnext;
	s->reqs.n--;
	if (r->prev)
		r->prev->next = r->next;
	else
		s->req_list = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->conn->n_reqs--;
	reasm_release(s, r);
	rtx_clear(s, r);
	free(r->p_ids);
	free(r->p_text);
	free(r->done_ev);
	free(r->err_msg);
	free(r);
}

/* ---- sending ----------------------------------------------------------- */

static size_t body_cap(const struct dp_session *s)
{
	return s->p.tx_dgram - SLM_PROTO_HDR_SIZE - SLM_PROTO_MAC_SIZE;
}

/* Send the message whose body is already at s->tx + HDR (blen bytes). */
static void tx_send(struct dp_session *s, const struct dp_peer *to,
		    struct dp_conn *c, uint32_t conn_id, uint8_t type,
		    uint32_t req_id, uint32_t seq, uint32_t aux, size_t blen)
{
	struct dp_hdr h = {
		.version = SLM_PROTO_VERSION,
		.type = type,
		.conn_id = conn_id,
		.req_id = req_id,
		.seq = seq,
		.aux = aux,
		.pn = c ? ++c->tx_pn : ++s->stateless_pn,
		.ts_us = c && c->key ? dp_wall_us() : 0,
	};
	dp_hdr_encode(s->tx, &h);
	size_t len = dp_seal(s->tx, SLM_PROTO_HDR_SIZE + blen, sizeof(s->tx),
			     c ? c->key_id : 0, c ? c->key : NULL);
	SLM_ASSERT(len > 0);
	if (s->p.io->send(s->p.io->ctx, to, s->tx, len)) {
		s->c.tx_errors++;
		return;
	}
	s->c.tx_datagrams++;
	s->c.tx_bytes += len;
}

static struct dp_writer tx_body(struct dp_session *s)
{
	struct dp_writer w;
	dp_writer_init(&w, s->tx + SLM_PROTO_HDR_SIZE, body_cap(s));
	return w;
}

static void tx_error(struct dp_session *s, const struct dp_peer *to,
		     struct dp_conn *c, uint32_t conn_id, uint32_t req_id,
		     int code, const char *msg)
{
	struct dp_writer w = tx_body(s);
	dp_put_field_i32(&w, SLM_PROTO_T_ERROR_CODE, code);
	size_t ml = strlen(msg);
	if (ml > ERRMSG_MAX)
		ml = ERRMSG_MAX;
	dp_put_field(&w, SLM_PROTO_T_MESSAGE, true, msg, ml);
	tx_send(s, to, c, conn_id, SLM_PROTO_ERROR, req_id, 0, 0, w.len);
}

static void tx_errorf(struct dp_session *s, const struct dp_peer *to,
		      struct dp_conn *c, uint32_t conn_id, uint32_t req_id,
		      int code, const char *fmt, ...) SLM_PRINTF(7, 8);
static void tx_errorf(struct dp_session *s, const struct dp_peer *to,
		      struct dp_conn *c, uint32_t conn_id, uint32_t req_id,
		      int code, const char *fmt, ...)
{
	char msg[ERRMSG_MAX + 1];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	tx_error(s, to, c, conn_id, req_id, code, msg);
}

static void tx_req_ack(struct dp_session *s, struct dp_req *r)
{
	struct dp_writer w = tx_body(s);
	uint32_t state = r->state == RQ_PARTIAL	  ? SLM_PROTO_RS_PARTIAL
			 : r->state == RQ_RUNNING ? SLM_PROTO_RS_RUNNING
						  : SLM_PROTO_RS_DONE;
	uint32_t have = r->state == RQ_PARTIAL ? r->frags_have : r->frag_count;
	dp_put_field_u32(&w, SLM_PROTO_T_STREAM_NEXT, r->next_seq);
	if (r->state == RQ_PARTIAL)
		dp_put_field(&w, SLM_PROTO_T_FRAG_BITMAP, true, r->frag_bits,
			     (r->frag_count + 7) / 8);
	SLM_ASSERT(!w.overflow);
	tx_send(s, &r->conn->peer, r->conn, r->conn->conn_id, SLM_PROTO_REQ_ACK,
		r->req_id, have, state, w.len);
}

/* Answer ERROR and keep the request as a tombstone for retransmits. */
static void req_refuse(struct dp_session *s, struct dp_req *r, int code,
		       const char *msg, uint64_t now)
{
	SLM_ASSERT(!r->submitted);
	if (r->state == RQ_PARTIAL)
		req_leave_inflight(s, r);
	reasm_release(s, r);
	r->state = RQ_REFUSED;
	r->finished = now;
	r->err_code = code;
	size_t ml = strlen(msg);
	if (ml > ERRMSG_MAX)
		ml = ERRMSG_MAX;
	r->err_msg = malloc(ml + 1);
	if (r->err_msg) {
		memcpy(r->err_msg, msg, ml);
		r->err_msg[ml] = '\0';
	}
	tx_error(s, &r->conn->peer, r->conn, r->conn->conn_id, r->req_id, code,
		 r->err_msg ? r->err_msg : "refused");
}

/* ---- the stream -------------------------------------------------------- */

static bool rtx_push(struct dp_session *s, struct dp_req *r, uint8_t type,
		     uint32_t seq, const uint8_t *body, size_t len)
{
	/* Evict the oldest unacknowledged packets when over budget. */
	while (r->rtx_n && r->rtx_bytes + len > s->p.retransmit_bytes) {
		struct rtx_pkt *old = r->rtx[r->rtx_head];
		r->rtx_bytes -= old->len;
		s->rtx_bytes -= old->len;
		free(old);
		r->rtx_head = (r->rtx_head + 1) & (r->rtx_cap - 1);
		r->rtx_n--;
		r->rtx_base++;
		s->c.rtx_trimmed++;
	}
	if (r->rtx_n == r->rtx_cap) {
		uint32_t nc = r->rtx_cap ? r->rtx_cap * 2 : 8;
		struct rtx_pkt **nr = malloc(nc * sizeof(*nr));
		if (!nr)
			return false;
		for (uint32_t i = 0; i < r->rtx_n; i++)
			nr[i] = r->rtx[(r->rtx_head + i) & (r->rtx_cap - 1)];
		free(r->rtx);
		r->rtx = nr;
		r->rtx_cap = nc;
		r->rtx_head = 0;
	}
	struct rtx_pkt *p = malloc(sizeof(*p) + len);
	if (!p)
		return false;
	p->seq = seq;
	p->type = type;
	p->len = (uint32_t)len;
	memcpy(p->body, body, len);
	if (r->rtx_n == 0)
		r->rtx_base = seq;
	r->rtx[(r->rtx_head + r->rtx_n) & (r->rtx_cap - 1)] = p;
	r->rtx_n++;
	r->rtx_bytes += len;
	s->rtx_bytes += len;
	return true;
}

/* Drop buffered packets below seq (the client has them). */
static void rtx_trim(struct dp_session *s, struct dp_req *r, uint32_t seq)
{
	while (r->rtx_n && r->rtx_base < seq) {
		struct rtx_pkt *old = r->rtx[r->rtx_head];
		r->rtx_bytes -= old->len;
		s->rtx_bytes -= old->len;
		free(old);
		r->rtx_head = (r->rtx_head + 1) & (r->rtx_cap - 1);
		r->rtx_n--;
		r->rtx_base++;
	}
	if (r->rtx_n == 0 && r->rtx_base < seq)
		r->rtx_base = seq;
}

static const struct rtx_pkt *rtx_get(const struct dp_req *r, uint32_t seq)
{
	if (seq < r->rtx_base || seq - r->rtx_base >= r->rtx_n)
		return NULL;
	return r->rtx[(r->rtx_head + (seq - r->rtx_base)) & (r->rtx_cap - 1)];
}

/* Send one stream packet (first time): number it, keep it, send it. */
static void stream_emit(struct dp_session *s, struct dp_req *r, uint8_t type,
			const uint8_t *body, size_t len)
{
	uint32_t seq = r->next_seq++;
	if (!rtx_push(s, r, type, seq, body, len))
		s->c.events_lost++; /* sent once, cannot be resent */
	memcpy(s->tx + SLM_PROTO_HDR_SIZE, body, len);
	tx_send(s, &r->conn->peer, r->conn, r->conn->conn_id, type, r->req_id,
		seq, 0, len);
	s->c.stream_packets++;
}

/* Bytes of text that fit in room without splitting a UTF-8 sequence. */
static uint32_t utf8_cut(const char *text, uint32_t len, uint32_t room)
{
	if (len <= room)
		return len;
	uint32_t n = room;
	/* Back up over continuation bytes (10xxxxxx) to a sequence start. */
	while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
		n--;
	return n ? n : room; /* a malformed run: cut anywhere */
}

static void flush_tokens(struct dp_session *s, struct dp_req *r)
{
	size_t cap = body_cap(s);
	uint32_t ids_off = 0, text_off = 0;
	while (ids_off < r->p_nids || text_off < r->p_text_len) {
		struct dp_writer w;
		dp_writer_init(&w, s->sbody, cap);
		uint32_t n_ids = r->p_nids - ids_off;
		uint32_t max_ids =
			(uint32_t)((cap - 2 * SLM_PROTO_FIELD_HDR) / 4);
		if (n_ids > max_ids)
			n_ids = max_ids;
		if (n_ids) {
			dp_put_field_i32s(&w, SLM_PROTO_T_TOKEN_IDS,
					  r->p_ids + ids_off, n_ids);
			ids_off += n_ids;
		}
		size_t room = cap - w.len;
		if (room > SLM_PROTO_FIELD_HDR && text_off < r->p_text_len) {
			uint32_t t = utf8_cut(
				r->p_text + text_off, r->p_text_len - text_off,
				(uint32_t)(room - SLM_PROTO_FIELD_HDR));
			if (t) {
				dp_put_field(&w, SLM_PROTO_T_TEXT, true,
					     r->p_text + text_off, t);
				text_off += t;
			}
		}
		SLM_ASSERT(!w.overflow && w.len > 0);
		stream_emit(s, r, SLM_PROTO_TOKENS, s->sbody, w.len);
		s->c.tokens_out += n_ids;
	}
	r->p_nids = 0;
	r->p_text_len = 0;
}

static void emit_done(struct dp_session *s, struct dp_req *r)
{
	const struct dp_ev *e = r->done_ev;
	struct dp_writer w;
	dp_writer_init(&w, s->sbody, body_cap(s));
	uint8_t finish = e->finish;
	int32_t error = e->error;
	const char *msg = (const char *)e->data;
	uint32_t msg_len = e->text_len;
	if (atomic_load_explicit(&r->ev_lost, memory_order_relaxed)) {
		finish = SLM_PROTO_FINISH_ERROR;
		error = SLM_ENOMEM;
		msg = "server out of memory: tokens lost";
		msg_len = (uint32_t)strlen(msg);
	}
	dp_put_field_u8(&w, SLM_PROTO_T_FINISH, finish);
	uint8_t usage[12];
	for (int i = 0; i < 3; i++)
		dp_put_u32(usage + 4 * i, e->usage[i]);
	dp_put_field(&w, SLM_PROTO_T_USAGE, true, usage, sizeof(usage));
	uint8_t tim[32];
	for (int i = 0; i < 4; i++)
		dp_put_u64(tim + 8 * i, e->timings[i]);
	dp_put_field(&w, SLM_PROTO_T_TIMINGS, true, tim, sizeof(tim));
	if (error) {
		dp_put_field_i32(&w, SLM_PROTO_T_ERROR_CODE, error);
		dp_put_field(&w, SLM_PROTO_T_MESSAGE, true, msg, msg_len);
	}
	SLM_ASSERT(!w.overflow);
	stream_emit(s, r, SLM_PROTO_DONE, s->sbody, w.len);
}

/* ---- events (worker threads) ------------------------------------------- */

static void on_event(void *ctx, const struct slm_event *ev)
{
	struct dp_req *r = ctx;
	struct dp_session *s = r->sess;
	struct dp_ev *e;
	if (ev->kind == SLM_EVENT_DONE) {
		/* Preallocated: a DONE is never lost. */
		e = r->done_ev;
		e->kind = EV_DONE;
		switch (ev->finish) {
		case SLM_FINISH_STOP:
			e->finish = SLM_PROTO_FINISH_STOP;
			break;
		case SLM_FINISH_LENGTH:
			e->finish = SLM_PROTO_FINISH_LENGTH;
			break;
		case SLM_FINISH_CANCELED:
			e->finish = SLM_PROTO_FINISH_CANCELED;
			break;
		case SLM_FINISH_DEADLINE:
			e->finish = SLM_PROTO_FINISH_DEADLINE;
			break;
		default:
			e->finish = SLM_PROTO_FINISH_ERROR;
			break;
		}
		e->error = ev->error;
		if (e->finish == SLM_PROTO_FINISH_ERROR && e->error >= 0)
			e->error = SLM_EIO;
		e->usage[0] = ev->usage.prompt_tokens;
		e->usage[1] = ev->usage.cached_tokens;
		e->usage[2] = ev->usage.generated_tokens;
		e->timings[0] = ev->timings.queue_us;
		e->timings[1] = ev->timings.prefill_us;
		e->timings[2] = ev->timings.ttft_us;
		e->timings[3] = ev->timings.total_us;
		const char *msg = ev->error_msg ? ev->error_msg : "";
		size_t ml = strlen(msg);
		if (ml > DONE_MSG_MAX)
			ml = DONE_MSG_MAX;
		memcpy(e->data, msg, ml);
		e->text_len = (uint32_t)ml;
	} else {
		size_t ids = (size_t)ev->n_ids * sizeof(int32_t);
		e = malloc(sizeof(*e) + ids + ev->text_len);
		if (!e) {
			/* Ordered before the DONE by that push's release. */
			atomic_store_explicit(&r->ev_lost, 1,
					      memory_order_relaxed);
			return;
		}
		e->kind = EV_TOKENS;
		e->n_ids = ev->n_ids;
		e->text_len = ev->text_len;
		if (ids)
			memcpy(e->data, ev->ids, ids);
		if (ev->text_len)
			memcpy(e->data + ids, ev->text, ev->text_len);
	}
	e->req = r;
	if (dp_evq_push_wake(&s->evq, &e->node))
		s->p.io->wake(s->p.io->ctx);
}

static void flush_add(struct dp_session *s, struct dp_req *r)
{
	if (r->on_flush)
		return;
	r->on_flush = true;
	r->fnext = s->flush_head;
	s->flush_head = r;
}

static bool grow(void **buf, uint32_t *cap, uint64_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	if (need > UINT32_MAX / 2)
		return false;
	uint32_t nc = *cap ? *cap : 64;
	while (nc < need)
		nc *= 2;
	void *nb = realloc(*buf, (size_t)nc * elem);
	if (!nb)
		return false;
	*buf = nb;
	*cap = nc;
	return true;
}

static void take_tokens(struct dp_session *s, struct dp_req *r,
			const struct dp_ev *e)
{
	if (r->abandoned || r->state != RQ_RUNNING)
		return;
	const int32_t *ids = (const int32_t *)e->data;
	const char *text = (const char *)e->data + e->n_ids * sizeof(int32_t);
	if (!grow((void **)&r->p_ids, &r->p_ids_cap,
		  (uint64_t)r->p_nids + e->n_ids, sizeof(int32_t)) ||
	    !grow((void **)&r->p_text, &r->p_text_cap,
		  (uint64_t)r->p_text_len + e->text_len, 1)) {
		atomic_store_explicit(&r->ev_lost, 1, memory_order_relaxed);
		s->c.events_lost++;
		return;
	}
	if (e->n_ids)
		memcpy(r->p_ids + r->p_nids, ids, e->n_ids * sizeof(int32_t));
	r->p_nids += e->n_ids;
	if (e->text_len)
		memcpy(r->p_text + r->p_text_len, text, e->text_len);
	r->p_text_len += e->text_len;
	flush_add(s, r);
}

static void flush_all(struct dp_session *s, uint64_t now)
{
	while (s->flush_head) {
		struct dp_req *r = s->flush_head;
		s->flush_head = r->fnext;
		r->on_flush = false;
		if (r->abandoned) {
			r->p_nids = r->p_text_len = 0;
			if (r->done_seen)
				req_free(s, r);
			continue;
		}
		if (r->p_nids || r->p_text_len)
			flush_tokens(s, r);
		if (r->done_unsent) {
			r->done_unsent = false;
			emit_done(s, r);
			r->state = RQ_FINISHED;
			r->finished = now;
			s->c.requests_done++;
		}
	}
}

static unsigned drain_events(struct dp_session *s, uint64_t now)
{
	unsigned n = 0;
	struct dp_evq_node *node;
	while (n < EV_BUDGET && (node = dp_evq_pop(&s->evq))) {
		struct dp_ev *e = (struct dp_ev *)node;
		struct dp_req *r = e->req;
		n++;
		s->c.events++;
		if (e->kind == EV_TOKENS) {
			take_tokens(s, r, e);
			free(e);
			continue;
		}
		SLM_ASSERT(e == r->done_ev && !r->done_seen);
		r->done_seen = true;
		s->waiting--;
		req_leave_inflight(s, r);
		if (!r->abandoned)
			r->done_unsent = true;
		flush_add(s, r);
	}
	flush_all(s, now);
	return n;
}

/* ---- requests ---------------------------------------------------------- */

static void count_decode_error(struct dp_session *s, int rc)
{
	switch (rc) {
	case SLM_EFORMAT:
		s->c.drop_malformed++;
		break;
	case SLM_EUNSUPPORTED:
		s->c.drop_mandatory++;
		break;
	case SLM_ETOOBIG:
		s->c.drop_too_big++;
		break;
	case SLM_EOVERLOAD:
		s->c.refused_overload++;
		break;
	case SLM_EINVAL:
		s->c.refused_invalid++;
		break;
	default:
		s->c.refused_submit++;
		break;
	}
}

static void fill_request(const struct dp_serve_binding *b,
			 const struct dp_gen *g, struct slm_request *q,
			 struct slm_chat_msg *msgs, uint64_t now)
{
	memset(q, 0, sizeof(*q));
	b->ops->gen_defaults(&q->gen);
	switch (g->input) {
	case DP_INPUT_TEXT:
		q->input = SLM_INPUT_TEXT;
		q->text = g->text;
		q->text_len = g->text_len;
		break;
	case DP_INPUT_IDS:
		q->input = SLM_INPUT_IDS;
		q->ids = g->ids;
		q->n_ids = g->n_ids;
		break;
	case DP_INPUT_CHAT:
		q->input = SLM_INPUT_CHAT;
		for (uint32_t i = 0; i < g->n_msgs; i++) {
			msgs[i].role = g->msgs[i].role;
			msgs[i].content = g->msgs[i].content;
		}
		q->messages = msgs;
		q->n_messages = g->n_msgs;
		q->chat_template = g->chat_template;
		break;
	}
	q->parse_special = (g->set & DP_GEN_PARSE_SPECIAL) && g->parse_special;
	struct slm_gen_params *p = &q->gen;
	if (g->set & DP_GEN_TEMPERATURE)
		p->temperature = g->temperature;
	if (g->set & DP_GEN_TOP_K)
		p->top_k = g->top_k;
	if (g->set & DP_GEN_TOP_P)
		p->top_p = g->top_p;
	if (g->set & DP_GEN_MIN_P)
		p->min_p = g->min_p;
	if (g->set & DP_GEN_REPEAT_PENALTY)
		p->repeat_penalty = g->repeat_penalty;
	if (g->set & DP_GEN_REPEAT_LAST_N)
		p->repeat_last_n = g->repeat_last_n;
	if (g->set & DP_GEN_FREQ_PENALTY)
		p->frequency_penalty = g->freq_penalty;
	if (g->set & DP_GEN_PRESENCE_PENALTY)
		p->presence_penalty = g->presence_penalty;
	if (g->set & DP_GEN_SEED)
		p->seed = g->seed;
	if (g->set & DP_GEN_MAX_TOKENS)
		p->max_tokens = g->max_tokens;
	if (g->set & DP_GEN_IGNORE_EOS)
		p->ignore_eos = g->ignore_eos;
	p->stop = g->stop;
	p->n_stop = g->n_stop;
	if (g->set & DP_GEN_DEADLINE)
		q->deadline_ns = now + (uint64_t)g->deadline_ms * 1000000;
	q->cache_namespace = g->cache_ns;
}

/* All fragments are in: decode, submit, answer. */
static void req_accept(struct dp_session *s, struct dp_req *r,
		       const uint8_t *body, size_t len, bool ack_req,
		       uint64_t now)
{
	r->frag_count = r->frag_count ? r->frag_count : 1;
	if (s->shutting_down) {
		s->c.refused_submit++;
		req_refuse(s, r, SLM_ESTATE, "server shutting down", now);
		return;
	}
	/* Decode first: a malformed request is malformed with or without a
	 * model. */
	struct dp_gen g;
	void *arena = NULL;
	struct slm_error err = {0};
	int rc = dp_gen_decode(body, len, &g, &arena, &err);
	if (rc) {
		count_decode_error(s, rc);
		req_refuse(s, r, rc, err.msg, now);
		return;
	}
	/* acquire: pairs with the release in dp_session_attach_serve, so
	 * the binding's fields are seen as written. */
	const struct dp_serve_binding *b =
		atomic_load_explicit(&s->bind, memory_order_acquire);
	if (!b) {
		free(arena);
		s->c.refused_no_model++;
		req_refuse(s, r, SLM_ESTATE, "no model loaded", now);
		return;
	}
	struct slm_chat_msg *msgs = NULL;
	if (g.n_msgs)
		msgs = malloc(g.n_msgs * sizeof(*msgs));
	r->done_ev = malloc(sizeof(*r->done_ev) + DONE_MSG_MAX);
	if ((g.n_msgs && !msgs) || !r->done_ev) {
		free(arena);
		free(msgs);
		free(r->done_ev);
		r->done_ev = NULL;
		s->c.refused_submit++;
		req_refuse(s, r, SLM_ENOMEM, "server out of memory", now);
		return;
	}
	memset(r->done_ev, 0, sizeof(*r->done_ev));
	struct slm_request q;
	fill_request(b, &g, &q, msgs, now);
	q.on_event = on_event;
	q.ctx = r;
	uint64_t id = 0;
	rc = b->ops->submit(b->serve, &q, &id, &err);
	free(arena);
	free(msgs);
	if (rc) {
		free(r->done_ev);
		r->done_ev = NULL;
		count_decode_error(s, rc);
		req_refuse(s, r, rc, err.msg[0] ? err.msg : slm_strerror(rc),
			   now);
		return;
	}
	reasm_release(s, r);
	r->bind = b;
	r->serve_id = id;
	r->submitted = true;
	r->state = RQ_RUNNING;
	s->waiting++;
	s->c.requests_accepted++;
	if (ack_req)
		tx_req_ack(s, r);
}

static void handle_req(struct dp_session *s, struct dp_conn *c,
		       const struct dp_hdr *h, const uint8_t *body, size_t blen,
		       uint64_t now)
{
	uint32_t count = dp_frag_count(h->aux), size = dp_frag_size(h->aux);
	uint32_t idx = h->seq;
	bool ack_req = (h->flags & SLM_PROTO_F_ACK_REQ) != 0;
	bool last = idx + 1 == count;
	if (h->req_id == 0 || count == 0 || idx >= count ||
	    count > SLM_PROTO_MAX_FRAGS || blen == 0 ||
	    (count > 1 &&
	     (size < SLM_PROTO_MIN_FRAG || size > SLM_PROTO_MAX_FRAG ||
	      blen > size || (!last && blen != size)))) {
		s->c.drop_bad_fragment++;
		return;
	}
	struct dp_req *r = req_find(s, c, h->req_id);
	if (r) {
		r->last_heard = now;
		switch (r->state) {
		case RQ_PARTIAL:
			if (r->frag_count != count || r->frag_size != size) {
				s->c.drop_bad_fragment++;
				return;
			}
			if (r->frag_bits[idx / 8] & (1u << (idx % 8))) {
				s->c.dup_fragment++;
				if (ack_req)
					tx_req_ack(s, r);
				return;
			}
			memcpy(r->body + (size_t)idx * size, body, blen);
			r->frag_bits[idx / 8] |= (uint8_t)(1u << (idx % 8));
			r->frags_have++;
			if (last)
				r->body_len =
					(count - 1) * size + (uint32_t)blen;
			if (r->frags_have == count)
				req_accept(s, r, r->body, r->body_len, ack_req,
					   now);
			else if (ack_req)
				tx_req_ack(s, r);
			return;
		case RQ_RUNNING:
		case RQ_FINISHED:
			s->c.dup_request++;
			tx_req_ack(s, r);
			return;
		default:
			s->c.dup_request++;
			tx_error(s, &c->peer, c, c->conn_id, r->req_id,
				 r->err_code, r->err_msg ? r->err_msg : "");
			return;
		}
	}
	enum dp_window_state ws = dp_window_test(&c->req_win, h->req_id);
	if (ws != DP_WINDOW_NEW) {
		s->c.drop_stale_request++;
		tx_errorf(s, &c->peer, c, c->conn_id, h->req_id, SLM_ESTATE,
			  ws == DP_WINDOW_SEEN
				  ? "request %u already finished"
				  : "request id %u is too old for this "
				    "connection",
			  h->req_id);
		return;
	}
	uint64_t bound = count == 1 ? blen : (uint64_t)(count - 1) * size + 1;
	if (bound > s->p.max_request_bytes) {
		r = req_create(s, c, h->req_id, now);
		if (!r)
			return;
		s->c.drop_too_big++;
		char msg[96];
		snprintf(msg, sizeof(msg),
			 "request larger than %u bytes (max_request_bytes)",
			 s->p.max_request_bytes);
		req_refuse(s, r, SLM_ETOOBIG, msg, now);
		return;
	}
	if (c->inflight >= s->p.client_max_inflight ||
	    s->inflight >= s->p.max_inflight) {
		char msg[96];
		snprintf(msg, sizeof(msg), "%u requests in flight (%s cap)",
			 c->inflight >= s->p.client_max_inflight ? c->inflight
								 : s->inflight,
			 c->inflight >= s->p.client_max_inflight
				 ? "per-connection"
				 : "server");
		s->c.refused_overload++;
		r = req_create(s, c, h->req_id, now);
		if (r)
			req_refuse(s, r, SLM_EOVERLOAD, msg, now);
		return;
	}
	uint64_t need = count > 1 ? (uint64_t)count * size : 0;
	if (need && s->reasm_bytes + need > s->p.reassembly_bytes) {
		/* Not recorded: the client's retransmission may find room. */
		s->c.reasm_budget++;
		return;
	}
	r = req_create(s, c, h->req_id, now);
	if (!r)
		return;
	r->frag_count = count;
	r->frag_size = size;
	if (count == 1) {
		req_accept(s, r, body, blen, ack_req, now);
		return;
	}
	r->body = malloc(need);
	r->frag_bits = calloc((count + 7) / 8, 1);
	if (!r->body || !r->frag_bits) {
		s->c.refused_submit++;
		req_refuse(s, r, SLM_ENOMEM, "server out of memory", now);
		return;
	}
	r->reasm_bytes = need;
	s->reasm_bytes += need;
	memcpy(r->body + (size_t)idx * size, body, blen);
	r->frag_bits[idx / 8] |= (uint8_t)(1u << (idx % 8));
	r->frags_have = 1;
	if (last)
		r->body_len = (count - 1) * size + (uint32_t)blen;
	if (ack_req)
		tx_req_ack(s, r);
}

static void cancel_running(struct dp_session *s, struct dp_req *r)
{
	if (r->cancel_sent || r->done_seen)
		return;
	r->cancel_sent = true;
	/* SLM_ENOTFOUND: already done, its DONE is on the way. */
	(void)r->bind->ops->cancel(r->bind->serve, r->serve_id);
}

static void handle_ack(struct dp_session *s, struct dp_conn *c,
		       const struct dp_hdr *h, const uint8_t *body, size_t blen,
		       uint64_t now)
{
	struct slm_error err = {0};
	struct dp_ack a;
	int rc = dp_ack_decode(body, blen, &a, &err);
	if (rc) {
		count_decode_error(s, rc);
		tx_error(s, &c->peer, c, c->conn_id, h->req_id, rc, err.msg);
		return;
	}
	bool fin = (h->flags & SLM_PROTO_F_FIN) != 0;
	struct dp_req *r = req_find(s, c, h->req_id);
	if (!r) {
		s->c.drop_unknown_request++;
		if (!fin)
			tx_errorf(s, &c->peer, c, c->conn_id, h->req_id,
				  SLM_ESTATE, "request %u is not known",
				  h->req_id);
		return;
	}
	r->last_heard = now;
	switch (r->state) {
	case RQ_PARTIAL:
		if (h->flags & SLM_PROTO_F_ACK_REQ)
			tx_req_ack(s, r);
		return;
	case RQ_REFUSED:
		if (fin)
			req_free(s, r);
		else
			tx_error(s, &c->peer, c, c->conn_id, r->req_id,
				 r->err_code, r->err_msg ? r->err_msg : "");
		return;
	default:
		break;
	}
	if (h->seq > r->acked && h->seq <= r->next_seq) {
		r->acked = h->seq;
		rtx_trim(s, r, h->seq);
	}
	if (fin && r->state == RQ_FINISHED && r->acked == r->next_seq) {
		s->c.requests_freed++;
		req_free(s, r);
		return;
	}
	for (uint32_t i = 0; i < a.n_missing; i++) {
		uint32_t seq = dp_get_u32(a.missing_raw + 4 * i);
		if (seq >= r->next_seq || seq < r->acked)
			continue; /* not sent yet, or acknowledged */
		const struct rtx_pkt *p = rtx_get(r, seq);
		if (!p) {
			s->c.stream_lost++;
			tx_errorf(s, &c->peer, c, c->conn_id, r->req_id,
				  SLM_ESTATE,
				  "stream packet %u is no longer buffered "
				  "(retransmit_bytes)",
				  seq);
			if (r->state == RQ_RUNNING) {
				r->abandoned = true;
				cancel_running(s, r);
			}
			return;
		}
		memcpy(s->tx + SLM_PROTO_HDR_SIZE, p->body, p->len);
		tx_send(s, &c->peer, c, c->conn_id, p->type, r->req_id, p->seq,
			0, p->len);
		s->c.retransmits++;
	}
	if (h->flags & SLM_PROTO_F_ACK_REQ)
		tx_req_ack(s, r);
}

static void handle_cancel(struct dp_session *s, struct dp_conn *c,
			  const struct dp_hdr *h, const uint8_t *body,
			  size_t blen, uint64_t now)
{
	struct slm_error err = {0};
	int rc = dp_empty_decode(body, blen, &err);
	if (rc) {
		count_decode_error(s, rc);
		tx_error(s, &c->peer, c, c->conn_id, h->req_id, rc, err.msg);
		return;
	}
	struct dp_req *r = req_find(s, c, h->req_id);
	if (!r) {
		s->c.drop_unknown_request++;
		tx_errorf(s, &c->peer, c, c->conn_id, h->req_id, SLM_ESTATE,
			  "request %u is not known", h->req_id);
		return;
	}
	r->last_heard = now;
	switch (r->state) {
	case RQ_PARTIAL:
		s->c.cancels++;
		req_refuse(s, r, SLM_ECANCELED, "cancelled", now);
		return;
	case RQ_RUNNING:
		if (!r->cancel_sent)
			s->c.cancels++;
		cancel_running(s, r);
		return;
	case RQ_REFUSED:
		tx_error(s, &c->peer, c, c->conn_id, r->req_id, r->err_code,
			 r->err_msg ? r->err_msg : "");
		return;
	default:
		return; /* finished: its DONE answers */
	}
}

static void handle_ping(struct dp_session *s, const struct dp_peer *from,
			struct dp_conn *c, const struct dp_hdr *h,
			const uint8_t *body, size_t blen)
{
	const uint8_t *echo;
	uint32_t echo_len;
	struct slm_error err = {0};
	int rc = dp_echo_decode(body, blen, &echo, &echo_len, &err);
	if (rc) {
		count_decode_error(s, rc);
		tx_error(s, from, c, h->conn_id, 0, rc, err.msg);
		return;
	}
	struct dp_writer w = tx_body(s);
	if (echo)
		dp_put_field(&w, SLM_PROTO_T_ECHO, false, echo, echo_len);
	tx_send(s, from, c, h->conn_id, SLM_PROTO_PONG, 0, h->seq, 0, w.len);
	s->c.pings++;
}

static void handle_info(struct dp_session *s, const struct dp_peer *from,
			struct dp_conn *c, const struct dp_hdr *h,
			const uint8_t *body, size_t blen)
{
	struct slm_error err = {0};
	int rc = dp_empty_decode(body, blen, &err);
	if (rc) {
		count_decode_error(s, rc);
		tx_error(s, from, c, h->conn_id, 0, rc, err.msg);
		return;
	}
	struct dp_writer w = tx_body(s);
	dp_put_field(&w, SLM_PROTO_T_SERVER_VERSION, false, s->version,
		     strlen(s->version));
	struct dp_model_info mi = {0};
	const struct dp_serve_binding *b =
		atomic_load_explicit(&s->bind, memory_order_acquire);
	if (b && b->ops->describe && b->ops->describe(b->serve, &mi) &&
	    mi.name) {
		size_t nl = strlen(mi.name);
		dp_put_field(&w, SLM_PROTO_T_MODEL, false, mi.name,
			     nl > 256 ? 256 : nl);
		dp_put_field_u32(&w, SLM_PROTO_T_N_CTX, mi.n_ctx);
		dp_put_field_u32(&w, SLM_PROTO_T_N_VOCAB, mi.n_vocab);
	}
	dp_put_field_u32(&w, SLM_PROTO_T_MAX_REQUEST, s->p.max_request_bytes);
	dp_put_field_u32(&w, SLM_PROTO_T_MAX_DGRAM, SLM_PROTO_MAX_DGRAM);
	dp_put_field_u32(&w, SLM_PROTO_T_MAX_INFLIGHT,
			 s->p.client_max_inflight);
	dp_put_field_u8(&w, SLM_PROTO_T_AUTH, s->p.keys != NULL);
	/* Informational fields: a v1 client must understand them, but clear
	 * the MANDATORY bit so a client may ignore what it does not know. */
	for (size_t off = 0; off + SLM_PROTO_FIELD_HDR <= w.len;) {
		uint16_t tag = dp_get_u16(w.buf + off);
		dp_put_u16(w.buf + off, SLM_PROTO_TAG_TYPE(tag));
		off += SLM_PROTO_FIELD_HDR + dp_get_u16(w.buf + off + 2);
	}
	tx_send(s, from, c, h->conn_id, SLM_PROTO_INFO, 0, 0, 0, w.len);
	s->c.infos++;
}

/* Token bucket: false when the connection is over its rate. */
static bool rate_ok(struct dp_session *s, struct dp_conn *c, uint64_t now)
{
	if (!s->p.client_rate)
		return true;
	uint64_t burst =
		(uint64_t)SLM_MAX(s->p.client_rate / 10, 32u) * 1000000000ull;
	uint64_t dt = now > c->rate_last ? now - c->rate_last : 0;
	c->rate_last = now;
	uint64_t add = dt * s->p.client_rate;
	c->rate_credit =
		c->rate_credit + add > burst ? burst : c->rate_credit + add;
	if (c->rate_credit < 1000000000ull)
		return false;
	c->rate_credit -= 1000000000ull;
	return true;
}

void dp_session_input(struct dp_session *s, const struct dp_peer *from,
		      const uint8_t *data, size_t len, uint64_t now)
{
	s->c.rx_datagrams++;
	s->c.rx_bytes += len;
	if (!dp_acl_allows(s->p.acl, from)) {
		s->c.drop_not_allowed++;
		return;
	}
	if (len > SLM_PROTO_MAX_DGRAM) {
		s->c.drop_oversized++;
		return;
	}
	struct dp_hdr h;
	int rc = dp_hdr_decode(data, len, &h);
	if (rc == SLM_EFORMAT) {
		if (len < SLM_PROTO_HDR_SIZE)
			s->c.drop_short++;
		else
			s->c.drop_magic++;
		return;
	}
	if (rc == SLM_EUNSUPPORTED) {
		s->c.drop_version++;
		if (!s->p.keys)
			tx_errorf(s, from, NULL, h.conn_id, h.req_id,
				  SLM_EUNSUPPORTED,
				  "protocol version %u not supported (this "
				  "server speaks %d)",
				  h.version, SLM_PROTO_VERSION);
		return;
	}
	if (h.conn_id == 0) {
		s->c.drop_malformed++;
		return;
	}
	struct dp_conn *c = NULL;
	if (s->p.keys) {
		if (!(h.flags & SLM_PROTO_F_AUTH)) {
			s->c.drop_auth_missing++;
			return;
		}
		const uint8_t *key = dp_keys_find(s->p.keys, h.key_id);
		if (!key) {
			s->c.drop_unknown_key++;
			return;
		}
		if (!dp_mac_verify(data, len, key)) {
			s->c.drop_bad_mac++;
			return;
		}
		uint64_t wall = dp_wall_us();
		uint64_t win = (uint64_t)s->p.replay_window_s * 1000000;
		if (h.ts_us + win < wall || h.ts_us > wall + win) {
			s->c.drop_stale_ts++;
			return;
		}
		c = conn_find(s, from, h.conn_id);
		if (!c)
			c = conn_create(s, from, h.conn_id, h.key_id, key, now);
		if (!c) {
			s->c.drop_no_conn_slot++;
			return;
		}
		if (c->key_id != h.key_id) {
			s->c.drop_unknown_key++;
			return;
		}
		if (dp_window_test(&c->pn_win, h.pn) != DP_WINDOW_NEW) {
			s->c.drop_replay++;
			return;
		}
		dp_window_set(&c->pn_win, h.pn);
	} else if (h.flags & SLM_PROTO_F_AUTH) {
		s->c.drop_unknown_key++;
		return;
	}

	bool creates = h.type == SLM_PROTO_REQ;
	bool stateful = creates || h.type == SLM_PROTO_ACK ||
			h.type == SLM_PROTO_CANCEL;
	if (!c && (stateful || h.type == SLM_PROTO_PING ||
		   h.type == SLM_PROTO_INFO_REQ))
		c = conn_find(s, from, h.conn_id);
	if (!c && creates) {
		c = conn_create(s, from, h.conn_id, 0, NULL, now);
		if (!c) {
			s->c.drop_no_conn_slot++;
			tx_error(s, from, NULL, h.conn_id, h.req_id,
				 SLM_EOVERLOAD, "too many connections");
			return;
		}
	}
	if (c) {
		c->last_heard = now;
		if (!rate_ok(s, c, now)) {
			s->c.drop_rate++;
			return;
		}
	}
	const uint8_t *body;
	size_t blen;
	if (!dp_dgram_body(data, len, &h, &body, &blen)) {
		s->c.drop_short++;
		return;
	}
	switch (h.type) {
	case SLM_PROTO_PING:
		handle_ping(s, from, c, &h, body, blen);
		return;
	case SLM_PROTO_INFO_REQ:
		handle_info(s, from, c, &h, body, blen);
		return;
	case SLM_PROTO_REQ:
		handle_req(s, c, &h, body, blen, now);
		return;
	case SLM_PROTO_ACK:
	case SLM_PROTO_CANCEL:
		if (!c) {
			s->c.drop_unknown_request++;
			if (!(h.flags & SLM_PROTO_F_FIN))
				tx_errorf(s, from, NULL, h.conn_id, h.req_id,
					  SLM_ESTATE, "request %u is not known",
					  h.req_id);
			return;
		}
		if (h.type == SLM_PROTO_ACK)
			handle_ack(s, c, &h, body, blen, now);
		else
			handle_cancel(s, c, &h, body, blen, now);
		return;
	default:
		s->c.drop_bad_type++;
		if (h.type == 0 || h.type > SLM_PROTO_TYPE__MAX)
			tx_errorf(s, from, c, h.conn_id, h.req_id,
				  SLM_EUNSUPPORTED,
				  "message type %u not supported", h.type);
		return;
	}
}

/* ---- timers ------------------------------------------------------------ */

static void sweep(struct dp_session *s, uint64_t now)
{
	uint64_t abandon = (uint64_t)s->p.abandon_ms * 1000000;
	uint64_t reasm = (uint64_t)s->p.reassembly_timeout_ms * 1000000;
	uint64_t idle = (uint64_t)s->p.client_idle_s * 1000000000ull;
	struct dp_req *next;
	for (struct dp_req *r = s->req_list; r; r = next) {
		next = r->next;
		uint64_t quiet = now - SLM_MIN(now, r->last_heard);
		switch (r->state) {
		case RQ_PARTIAL:
			if (now - r->created > reasm) {
				s->c.reasm_timeout++;
				req_free(s, r);
			}
			break;
		case RQ_RUNNING:
			if (!r->abandoned && quiet > abandon) {
				s->c.abandoned++;
				r->abandoned = true;
				r->p_nids = r->p_text_len = 0;
				cancel_running(s, r);
			}
			break;
		case RQ_FINISHED:
		case RQ_REFUSED:
			if (now - SLM_MAX(r->finished, r->last_heard) >
			    abandon) {
				if (r->state == RQ_FINISHED)
					s->c.done_unacked++;
				req_free(s, r);
			}
			break;
		}
	}
	struct dp_conn *cnext;
	for (struct dp_conn *c = s->conn_list; c; c = cnext) {
		cnext = c->next;
		if (c->n_reqs == 0 &&
		    now - SLM_MIN(now, c->last_heard) > idle) {
			s->c.conns_expired++;
			conn_free(s, c);
		}
	}
}

unsigned dp_session_poll(struct dp_session *s, uint64_t now)
{
	unsigned n = drain_events(s, now);
	if (now >= s->next_sweep) {
		s->next_sweep = now + SWEEP_NS;
		if (s->req_list || s->conn_list)
			sweep(s, now);
	}
	return n;
}

uint64_t dp_session_next_timer(const struct dp_session *s)
{
	if (!s->req_list && !s->conn_list)
		return UINT64_MAX;
	return s->next_sweep;
}

bool dp_session_prepare_sleep(struct dp_session *s)
{
	return dp_evq_prepare_sleep(&s->evq);
}

void dp_session_awake(struct dp_session *s)
{
	dp_evq_awake(&s->evq);
}

unsigned dp_session_shutdown(struct dp_session *s)
{
	s->shutting_down = true;
	for (struct dp_req *r = s->req_list; r; r = r->next) {
		if (r->state == RQ_RUNNING && !r->done_seen) {
			r->abandoned = true;
			cancel_running(s, r);
		}
	}
	return s->waiting;
}

unsigned dp_session_waiting(const struct dp_session *s)
{
	return s->waiting;
}

struct dp_counters *dp_session_counters(struct dp_session *s)
{
	return &s->c;
}

void dp_session_gauges(const struct dp_session *s, struct dp_session_gauges *g)
{
	g->conns = s->conns.n;
	g->requests = s->reqs.n;
	g->inflight = s->inflight;
	g->reassembly_bytes = s->reasm_bytes;
	g->retransmit_bytes = s->rtx_bytes;
}

/* ---- life -------------------------------------------------------------- */

static bool serve_ops_valid(const struct dp_serve_ops *ops)
{
	return ops->submit && ops->cancel && ops->gen_defaults;
}

int dp_session_attach_serve(struct dp_session *s,
			    const struct dp_serve_ops *ops, void *serve)
{
	if (!ops || !serve_ops_valid(ops))
		return SLM_EINVAL;
	struct dp_serve_binding *b = malloc(sizeof(*b));
	if (!b)
		return SLM_ENOMEM;
	b->ops = ops;
	b->serve = serve;
	struct dp_serve_binding *old =
		atomic_load_explicit(&s->bind, memory_order_relaxed);
	do {
		b->older = old;
		/* release: the binding's fields (and whatever the caller set
		 * up in the serving core before attaching) are visible to the
		 * session's thread that loads it with acquire. */
	} while (!atomic_compare_exchange_weak_explicit(
		&s->bind, &old, b, memory_order_release, memory_order_relaxed));
	return 0;
}

int dp_session_create(const struct dp_session_params *p,
		      struct dp_session **out, struct slm_error *err)
{
	*out = NULL;
	if (!p->io || !p->io->send || !p->io->wake)
		return slm_error_set(err, SLM_EINVAL, "session without I/O");
	if (p->tx_dgram < 512 || p->tx_dgram > SLM_PROTO_MAX_DGRAM)
		return slm_error_set(err, SLM_EINVAL,
				     "datagram size %u not in 512..%d",
				     p->tx_dgram, SLM_PROTO_MAX_DGRAM);
	if (p->serve_ops && !serve_ops_valid(p->serve_ops))
		return slm_error_set(err, SLM_EINVAL,
				     "serve ops lack submit, cancel or "
				     "gen_defaults");
	if (p->client_max_inflight == 0 || p->max_inflight == 0 ||
	    p->max_clients == 0)
		return slm_error_set(err, SLM_EINVAL,
				     "session caps must be positive");
	struct dp_session *s = aligned_alloc(
		SLM_CACHELINE, (sizeof(*s) + SLM_CACHELINE - 1) /
				       SLM_CACHELINE * SLM_CACHELINE);
	if (!s)
		return slm_error_set(err, SLM_ENOMEM, "session");
	memset(s, 0, sizeof(*s));
	s->p = *p;
	snprintf(s->version, sizeof(s->version), "%s",
		 p->server_version ? p->server_version : "slmd " SLM_VERSION);
	s->p.server_version = s->version;
	dp_evq_init(&s->evq);
	atomic_init(&s->bind, NULL);
	if (htab_init(&s->conns, 256) || htab_init(&s->reqs, 1024) ||
	    (p->serve_ops &&
	     dp_session_attach_serve(s, p->serve_ops, p->serve))) {
		free(s->conns.b);
		free(s->reqs.b);
		free(atomic_load(&s->bind));
		free(s);
		return slm_error_set(err, SLM_ENOMEM, "session tables");
	}
	*out = s;
	return 0;
}

void dp_session_destroy(struct dp_session *s)
{
	if (!s)
		return;
	SLM_ASSERT(s->waiting == 0);
	/* Events left behind (tokens of requests whose DONE was seen cannot
	 * remain: DONE is last); free whatever is queued. */
	struct dp_evq_node *node;
	while ((node = dp_evq_pop(&s->evq))) {
		struct dp_ev *e = (struct dp_ev *)node;
		if (e->kind == EV_TOKENS)
			free(e);
	}
	s->flush_head = NULL;
	while (s->req_list) {
		s->req_list->on_flush = false;
		req_free(s, s->req_list);
	}
	while (s->conn_list)
		conn_free(s, s->conn_list);
	free(s->conns.b);
	free(s->reqs.b);
	struct dp_serve_binding *b = atomic_load(&s->bind);
	while (b) {
		struct dp_serve_binding *older = b->older;
		free(b);
		b = older;
	}
	free(s);
}
