/*
 * Unit tests of dataplane/session.h: every kind of datagram gets its
 * documented handling and counter, requests run once, the token stream
 * and its retransmissions, timers, fairness caps, authentication.
 *
 * The serving core is a test double (struct dbl below) behind the
 * session's dp_serve_ops: it records what was submitted and lets the test
 * emit TOKENS and DONE events, from the test thread or from a worker
 * thread.  The I/O captures what the session sends.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "dataplane/proto.h"
#include "dataplane/session.h"
#include "tests/unit/harness.h"

#define MS (1000ull * 1000)

/* ---- the serving-core double ------------------------------------------- */

struct dbl_req {
	uint64_t id;
	slm_event_fn fn;
	void *ctx;
	enum slm_input_kind input;
	char text[4096];
	size_t text_len;
	int32_t ids[64];
	uint32_t n_ids;
	uint32_t n_messages;
	char role0[16];
	struct slm_gen_params gen;
	char stop0[32];
	char ns[32];
	uint64_t deadline_ns;
	bool cancelled;
	bool done; /* its DONE was delivered: no event may follow */
};

struct dbl {
	struct dbl_req *r;
	unsigned n, cap;
	int refuse; /* submit's code, 0 = accept */
	unsigned cancels;
};

static int dbl_submit(void *serve, const struct slm_request *q, uint64_t *id,
		      struct slm_error *err)
{
	struct dbl *d = serve;
	if (d->refuse)
		return slm_error_set(err, d->refuse, "double refuses");
	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 64;
		d->r = realloc(d->r, d->cap * sizeof(*d->r));
	}
	struct dbl_req *r = &d->r[d->n];
	memset(r, 0, sizeof(*r));
	r->id = 1000 + d->n;
	r->fn = q->on_event;
	r->ctx = q->ctx;
	r->input = q->input;
	if (q->input == SLM_INPUT_TEXT) {
		r->text_len = SLM_MIN(q->text_len, sizeof(r->text) - 1);
		memcpy(r->text, q->text, r->text_len);
	} else if (q->input == SLM_INPUT_IDS) {
		r->n_ids = SLM_MIN(q->n_ids, 64u);
		memcpy(r->ids, q->ids, r->n_ids * sizeof(int32_t));
	} else {
		r->n_messages = q->n_messages;
		snprintf(r->role0, sizeof(r->role0), "%s", q->messages[0].role);
		snprintf(r->text, sizeof(r->text), "%s",
			 q->messages[q->n_messages - 1].content);
	}
	r->gen = q->gen;
	if (q->gen.n_stop)
		snprintf(r->stop0, sizeof(r->stop0), "%s", q->gen.stop[0]);
	r->gen.stop = NULL;
	if (q->cache_namespace)
		snprintf(r->ns, sizeof(r->ns), "%s", q->cache_namespace);
	r->deadline_ns = q->deadline_ns;
	*id = r->id;
	d->n++;
	return 0;
}

static int dbl_cancel(void *serve, uint64_t id)
{
	struct dbl *d = serve;
	for (unsigned i = 0; i < d->n; i++)
		if (d->r[i].id == id) {
			d->r[i].cancelled = true;
			d->cancels++;
			return 0;
		}
	return SLM_ENOTFOUND;
}

static void dbl_defaults(struct slm_gen_params *p)
{
	memset(p, 0, sizeof(*p));
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->repeat_penalty = 1.0f;
	p->repeat_last_n = 64;
	p->seed = 0xFFFFFFFF;
	p->max_tokens = 16;
}

static const struct dp_serve_ops dbl_ops = {
	.submit = dbl_submit,
	.cancel = dbl_cancel,
	.gen_defaults = dbl_defaults,
};

static void dbl_tokens(struct dbl_req *r, const int32_t *ids, uint32_t n,
		       const char *text)
{
	struct slm_event ev = {.kind = SLM_EVENT_TOKENS,
			       .request_id = r->id,
			       .ids = ids,
			       .n_ids = n,
			       .text = text,
			       .text_len = (uint32_t)strlen(text)};
	r->fn(r->ctx, &ev);
}

static void dbl_done(struct dbl_req *r, enum slm_finish finish)
{
	CU_ASSERT_FATAL(!r->done);
	r->done = true;
	struct slm_event ev = {.kind = SLM_EVENT_DONE,
			       .request_id = r->id,
			       .finish = finish,
			       .usage = {4, 1, 3},
			       .timings = {11, 22, 33, 44}};
	if (finish == SLM_FINISH_ERROR) {
		ev.error = SLM_ETOOBIG;
		ev.error_msg = "prompt longer than the context";
	}
	r->fn(r->ctx, &ev);
}

/* ---- the I/O double ---------------------------------------------------- */

struct sent {
	struct dp_peer to;
	size_t len;
	uint8_t data[SLM_PROTO_MAX_DGRAM + SLM_PROTO_MAC_SIZE];
};

struct cap {
	struct sent *s;
	unsigned n, cap;
	unsigned wakes;
	int fail;
};

static int cap_send(void *ctx, const struct dp_peer *to, const void *buf,
		    size_t len)
{
	struct cap *c = ctx;
	if (c->fail)
		return SLM_ESYS;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 64;
		c->s = realloc(c->s, c->cap * sizeof(*c->s));
	}
	CU_ASSERT_FATAL(len <= sizeof(c->s[0].data));
	c->s[c->n].to = *to;
	c->s[c->n].len = len;
	memcpy(c->s[c->n].data, buf, len);
	c->n++;
	return 0;
}

static void cap_wake(void *ctx)
{
	struct cap *c = ctx;
	__atomic_add_fetch(&c->wakes, 1, __ATOMIC_RELAXED);
}

/* ---- the fixture ------------------------------------------------------- */

static struct cap cap;
static struct dbl dbl;
static struct dp_io io = {&cap, cap_send, cap_wake};
static struct dp_session *sess;
static struct dp_session_params params;
static uint64_t now;
static struct dp_keys *keys;

static struct dp_peer peer(int n)
{
	struct dp_peer p = {.family = AF_INET, .port = (uint16_t)(40000 + n)};
	p.addr[0] = 10;
	p.addr[3] = (uint8_t)n;
	return p;
}

static void fresh_with(void (*tweak)(struct dp_session_params *))
{
	if (sess) {
		/* Finish whatever the last test left running. */
		dp_session_shutdown(sess);
		for (unsigned i = 0; i < dbl.n; i++)
			if (!dbl.r[i].done)
				dbl_done(&dbl.r[i], SLM_FINISH_CANCELED);
		dp_session_poll(sess, now);
		CU_ASSERT_EQUAL(dp_session_waiting(sess), 0);
		dp_session_destroy(sess);
		sess = NULL;
	}
	free(cap.s);
	memset(&cap, 0, sizeof(cap));
	free(dbl.r);
	memset(&dbl, 0, sizeof(dbl));
	dp_session_params_default(&params);
	params.io = &io;
	params.serve_ops = &dbl_ops;
	params.serve = &dbl;
	params.hash_seed = 12345;
	if (tweak)
		tweak(&params);
	now = 1000 * MS;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(dp_session_create(&params, &sess, &err), 0);
}

static void fresh(void)
{
	fresh_with(NULL);
}

static int teardown(void)
{
	/* No CU_ASSERT here: no test is running. */
	if (sess) {
		dp_session_shutdown(sess);
		for (unsigned i = 0; i < dbl.n; i++)
			if (!dbl.r[i].done) {
				dbl.r[i].done = true;
				struct slm_event ev = {
					.kind = SLM_EVENT_DONE,
					.finish = SLM_FINISH_CANCELED};
				dbl.r[i].fn(dbl.r[i].ctx, &ev);
			}
		dp_session_poll(sess, now);
		dp_session_destroy(sess);
		sess = NULL;
	}
	free(cap.s);
	free(dbl.r);
	dp_keys_destroy(keys);
	memset(&cap, 0, sizeof(cap));
	memset(&dbl, 0, sizeof(dbl));
	return 0;
}

/* ---- building datagrams ------------------------------------------------ */

static uint64_t pn_next = 1;

static size_t mk(uint8_t *buf, uint8_t type, uint32_t conn, uint32_t req,
		 uint32_t seq, uint32_t aux, uint8_t flags, const void *body,
		 size_t blen, uint16_t key_id, const uint8_t *key)
{
	struct dp_hdr h = {.version = 1,
			   .type = type,
			   .flags = flags,
			   .conn_id = conn,
			   .req_id = req,
			   .seq = seq,
			   .aux = aux,
			   .pn = pn_next++,
			   .ts_us = dp_wall_us()};
	dp_hdr_encode(buf, &h);
	if (blen)
		memcpy(buf + SLM_PROTO_HDR_SIZE, body, blen);
	return dp_seal(buf, SLM_PROTO_HDR_SIZE + blen,
		       SLM_PROTO_MAX_DGRAM + SLM_PROTO_MAC_SIZE, key_id, key);
}

static void in(int p, const uint8_t *d, size_t len)
{
	struct dp_peer pr = peer(p);
	dp_session_input(sess, &pr, d, len, now);
}

/* Send a one-fragment generate request with this body. */
static void send_req_body(int p, uint32_t conn, uint32_t req,
			  const uint8_t *body, size_t blen, uint8_t flags)
{
	uint8_t d[2048];
	size_t len =
		mk(d, SLM_PROTO_REQ, conn, req, 0,
		   dp_frag_aux(1, (uint32_t)blen), flags, body, blen, 0, NULL);
	in(p, d, len);
}

static size_t text_body(uint8_t *buf, size_t cap_, const char *text)
{
	struct dp_gen g = {.input = DP_INPUT_TEXT,
			   .text = text,
			   .text_len = (uint32_t)strlen(text)};
	int n = dp_gen_encode(&g, buf, cap_);
	CU_ASSERT_FATAL(n > 0);
	return (size_t)n;
}

static void send_text(int p, uint32_t conn, uint32_t req, const char *text)
{
	uint8_t body[1024];
	size_t n = text_body(body, sizeof(body), text);
	send_req_body(p, conn, req, body, n, 0);
}

static void send_ack(int p, uint32_t conn, uint32_t req, uint32_t cum,
		     const uint32_t *missing, unsigned n_missing, uint8_t flags)
{
	uint8_t body[600], d[2048];
	struct dp_writer w;
	dp_writer_init(&w, body, sizeof(body));
	if (n_missing) {
		uint8_t m[512];
		for (unsigned i = 0; i < n_missing; i++)
			dp_put_u32(m + 4 * i, missing[i]);
		dp_put_field(&w, SLM_PROTO_T_MISSING, true, m, 4 * n_missing);
	}
	size_t len = mk(d, SLM_PROTO_ACK, conn, req, cum, 0, flags, body, w.len,
			0, NULL);
	in(p, d, len);
}

/* ---- reading what was sent --------------------------------------------- */

static struct dp_hdr hdr_of(unsigned i, const uint8_t **body, size_t *blen)
{
	struct dp_hdr h;
	CU_ASSERT_FATAL(i < cap.n);
	CU_ASSERT_EQUAL_FATAL(dp_hdr_decode(cap.s[i].data, cap.s[i].len, &h),
			      0);
	const uint8_t *b;
	size_t bl;
	CU_ASSERT_FATAL(
		dp_dgram_body(cap.s[i].data, cap.s[i].len, &h, &b, &bl));
	if (body)
		*body = b;
	if (blen)
		*blen = bl;
	return h;
}

static int32_t error_of(unsigned i, char *msg, size_t size)
{
	const uint8_t *b;
	size_t bl;
	struct dp_hdr h = hdr_of(i, &b, &bl);
	CU_ASSERT_EQUAL_FATAL(h.type, SLM_PROTO_ERROR);
	struct dp_errmsg e;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(dp_errmsg_decode(b, bl, &e, &err), 0);
	if (msg)
		snprintf(msg, size, "%.*s", (int)e.msg_len, e.msg);
	return e.code;
}

static const struct dp_counters *cnt(void)
{
	return dp_session_counters(sess);
}

/* ---- tests ------------------------------------------------------------- */

static void test_ping_and_info(void)
{
	fresh();
	uint8_t body[64], d[256];
	struct dp_writer w;
	dp_writer_init(&w, body, sizeof(body));
	dp_put_field(&w, SLM_PROTO_T_ECHO, false, "12345678", 8);
	size_t len =
		mk(d, SLM_PROTO_PING, 9, 0, 77, 0, 0, body, w.len, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL_FATAL(cap.n, 1);
	const uint8_t *b;
	size_t bl;
	struct dp_hdr h = hdr_of(0, &b, &bl);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_PONG);
	CU_ASSERT_EQUAL(h.seq, 77);
	CU_ASSERT_EQUAL(h.conn_id, 9);
	struct dp_peer p1 = peer(1);
	CU_ASSERT_TRUE(dp_peer_equal(&cap.s[0].to, &p1));
	const uint8_t *echo;
	uint32_t elen;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(dp_echo_decode(b, bl, &echo, &elen, &err), 0);
	CU_ASSERT_EQUAL(elen, 8);
	CU_ASSERT_EQUAL(memcmp(echo, "12345678", 8), 0);
	CU_ASSERT_EQUAL(cnt()->pings, 1);
	/* Pings keep no state. */
	struct dp_session_gauges g;
	dp_session_gauges(sess, &g);
	CU_ASSERT_EQUAL(g.conns, 0);

	len = mk(d, SLM_PROTO_INFO_REQ, 9, 0, 0, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	h = hdr_of(1, &b, &bl);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_INFO);
	struct dp_info info;
	CU_ASSERT_EQUAL(dp_info_decode(b, bl, &info, &err), 0);
	CU_ASSERT_EQUAL(info.max_request, params.max_request_bytes);
	CU_ASSERT_EQUAL(info.max_inflight, params.client_max_inflight);
	CU_ASSERT_FALSE(info.auth);
	CU_ASSERT_PTR_NULL(info.model); /* the double describes nothing */
	CU_ASSERT_EQUAL(cnt()->infos, 1);
}

static void no_serve(struct dp_session_params *p)
{
	p->serve_ops = NULL;
	p->serve = NULL;
}

static void test_no_model(void)
{
	fresh_with(no_serve);
	send_text(1, 5, 1, "hello");
	CU_ASSERT_EQUAL_FATAL(cap.n, 1);
	char msg[256];
	CU_ASSERT_EQUAL(error_of(0, msg, sizeof(msg)), SLM_ESTATE);
	CU_ASSERT_STRING_EQUAL(msg, "no model loaded");
	CU_ASSERT_EQUAL(cnt()->refused_no_model, 1);
	/* A retransmission gets the same answer and is not counted twice. */
	send_text(1, 5, 1, "hello");
	CU_ASSERT_EQUAL(error_of(1, NULL, 0), SLM_ESTATE);
	CU_ASSERT_EQUAL(cnt()->refused_no_model, 1);
	CU_ASSERT_EQUAL(cnt()->dup_request, 1);
}

/* A serving core handed over while the session runs (slmd loads the
 * model after the dataplane answers pings), then replaced: new requests
 * go to the new one, a running one is cancelled where it runs. */
static void test_attach_serve(void)
{
	fresh_with(no_serve);
	send_text(1, 5, 1, "before");
	CU_ASSERT_EQUAL(error_of(cap.n - 1, NULL, 0), SLM_ESTATE);
	CU_ASSERT_EQUAL(dp_session_attach_serve(sess, &dbl_ops, &dbl), 0);
	send_text(1, 5, 2, "after");
	CU_ASSERT_EQUAL_FATAL(dbl.n, 1);
	CU_ASSERT_STRING_EQUAL(dbl.r[0].text, "after");
	static struct dbl other;
	memset(&other, 0, sizeof(other));
	CU_ASSERT_EQUAL(dp_session_attach_serve(sess, &dbl_ops, &other), 0);
	send_text(1, 5, 3, "new core");
	CU_ASSERT_EQUAL(dbl.n, 1);
	CU_ASSERT_EQUAL_FATAL(other.n, 1);
	/* Cancelling request 2 reaches the core that runs it. */
	uint8_t d[128];
	size_t len = mk(d, SLM_PROTO_CANCEL, 5, 2, 0, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	CU_ASSERT_TRUE(dbl.r[0].cancelled);
	CU_ASSERT_EQUAL(other.cancels, 0);
	dbl_done(&dbl.r[0], SLM_FINISH_CANCELED);
	dbl_done(&other.r[0], SLM_FINISH_STOP);
	dp_session_poll(sess, now);
	CU_ASSERT_EQUAL(dp_session_waiting(sess), 0);
	free(other.r);
	struct dp_serve_ops bad = {.submit = dbl_submit};
	CU_ASSERT_EQUAL(dp_session_attach_serve(sess, &bad, &dbl), SLM_EINVAL);
}

/* Run the stream of one request to its end and check it. */
static void test_generate_stream(void)
{
	fresh();
	struct dp_gen g = {.input = DP_INPUT_TEXT,
			   .text = "Hello",
			   .text_len = 5,
			   .set = DP_GEN_TEMPERATURE | DP_GEN_MAX_TOKENS |
				  DP_GEN_SEED | DP_GEN_DEADLINE,
			   .temperature = 0.0f,
			   .max_tokens = 3,
			   .seed = 42,
			   .deadline_ms = 250};
	const char *stop[] = {"END"};
	g.stop = stop;
	g.n_stop = 1;
	g.cache_ns = "ns1";
	uint8_t body[256];
	int n = dp_gen_encode(&g, body, sizeof(body));
	send_req_body(1, 5, 1, body, (size_t)n, 0);
	CU_ASSERT_EQUAL_FATAL(dbl.n, 1);
	CU_ASSERT_EQUAL(cap.n, 0); /* no ack for a single fragment */
	struct dbl_req *r = &dbl.r[0];
	CU_ASSERT_EQUAL(r->input, SLM_INPUT_TEXT);
	CU_ASSERT_EQUAL(r->text_len, 5);
	CU_ASSERT_STRING_EQUAL(r->text, "Hello");
	CU_ASSERT_EQUAL(r->gen.temperature, 0.0f);
	CU_ASSERT_EQUAL(r->gen.max_tokens, 3);
	CU_ASSERT_EQUAL(r->gen.seed, 42);
	CU_ASSERT_EQUAL(r->gen.top_k, 40); /* a default, not sent */
	CU_ASSERT_EQUAL(r->gen.n_stop, 1);
	CU_ASSERT_STRING_EQUAL(r->stop0, "END");
	CU_ASSERT_STRING_EQUAL(r->ns, "ns1");
	CU_ASSERT_EQUAL(r->deadline_ns, now + 250 * MS);
	CU_ASSERT_EQUAL(cnt()->requests_accepted, 1);

	int32_t a[] = {10, 11}, b2[] = {12};
	dbl_tokens(r, a, 2, "ab");
	dbl_tokens(r, b2, 1, "c");
	CU_ASSERT_EQUAL(cap.n, 0); /* queued until the thread polls */
	CU_ASSERT_EQUAL(dp_session_poll(sess, now), 2);
	/* Coalesced: both events in one datagram. */
	CU_ASSERT_EQUAL_FATAL(cap.n, 1);
	const uint8_t *bd;
	size_t bl;
	struct dp_hdr h = hdr_of(0, &bd, &bl);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_TOKENS);
	CU_ASSERT_EQUAL(h.seq, 0);
	CU_ASSERT_EQUAL(h.req_id, 1);
	struct dp_tokens t;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(dp_tokens_decode(bd, bl, &t, &err), 0);
	CU_ASSERT_EQUAL(t.n_ids, 3);
	CU_ASSERT_EQUAL(dp_get_u32(t.ids_raw + 8), 12);
	CU_ASSERT_EQUAL(t.text_len, 3);
	CU_ASSERT_EQUAL(memcmp(t.text, "abc", 3), 0);

	dbl_done(r, SLM_FINISH_LENGTH);
	dp_session_poll(sess, now);
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	h = hdr_of(1, &bd, &bl);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_DONE);
	CU_ASSERT_EQUAL(h.seq, 1);
	struct dp_done dn;
	CU_ASSERT_EQUAL_FATAL(dp_done_decode(bd, bl, &dn, &err), 0);
	CU_ASSERT_EQUAL(dn.finish, SLM_PROTO_FINISH_LENGTH);
	CU_ASSERT_EQUAL(dn.prompt_tokens, 4);
	CU_ASSERT_EQUAL(dn.cached_tokens, 1);
	CU_ASSERT_EQUAL(dn.generated_tokens, 3);
	CU_ASSERT_EQUAL(dn.queue_us, 11);
	CU_ASSERT_EQUAL(dn.total_us, 44);
	CU_ASSERT_EQUAL(cnt()->requests_done, 1);
	CU_ASSERT_EQUAL(cnt()->tokens_out, 3);

	/* The client's FIN frees it; a retransmitted REQ then never runs
	 * again. */
	struct dp_session_gauges gg;
	dp_session_gauges(sess, &gg);
	CU_ASSERT_EQUAL(gg.requests, 1);
	CU_ASSERT(gg.retransmit_bytes > 0);
	send_ack(1, 5, 1, 2, NULL, 0, SLM_PROTO_F_FIN);
	dp_session_gauges(sess, &gg);
	CU_ASSERT_EQUAL(gg.requests, 0);
	CU_ASSERT_EQUAL(gg.inflight, 0);
	CU_ASSERT_EQUAL(gg.retransmit_bytes, 0);
	CU_ASSERT_EQUAL(cnt()->requests_freed, 1);
	send_req_body(1, 5, 1, body, (size_t)n, 0);
	CU_ASSERT_EQUAL(dbl.n, 1);
	char msg[256];
	CU_ASSERT_EQUAL(error_of(cap.n - 1, msg, sizeof(msg)), SLM_ESTATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "already finished"));
	CU_ASSERT_EQUAL(cnt()->drop_stale_request, 1);
}

static void test_duplicates(void)
{
	fresh();
	send_text(1, 5, 1, "once");
	send_text(1, 5, 1, "once");
	send_text(1, 5, 1, "once");
	CU_ASSERT_EQUAL(dbl.n, 1);
	CU_ASSERT_EQUAL(cnt()->dup_request, 2);
	/* Each retransmission is answered: the request runs. */
	CU_ASSERT_EQUAL_FATAL(cap.n, 2);
	struct dp_hdr h = hdr_of(1, NULL, NULL);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_REQ_ACK);
	CU_ASSERT_EQUAL(h.aux, SLM_PROTO_RS_RUNNING);
	/* The same id from another connection or peer is another request. */
	send_text(1, 6, 1, "other conn");
	send_text(2, 5, 1, "other peer");
	CU_ASSERT_EQUAL(dbl.n, 3);
	/* An id far behind the window is refused, not run. */
	send_text(1, 5, 5000, "new");
	send_text(1, 5, 10, "old");
	CU_ASSERT_EQUAL(dbl.n, 4);
	char msg[256];
	CU_ASSERT_EQUAL(error_of(cap.n - 1, msg, sizeof(msg)), SLM_ESTATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "too old"));
}

static void test_fragments(void)
{
	fresh();
	/* A 3000-byte prompt in fragments of 1024, sent out of order with a
	 * duplicate. */
	char text[3001];
	for (int i = 0; i < 3000; i++)
		text[i] = (char)('a' + i % 26);
	text[3000] = '\0';
	uint8_t body[4096];
	size_t blen = text_body(body, sizeof(body), text);
	uint32_t size = 1024, count = (uint32_t)((blen + size - 1) / size);
	CU_ASSERT_EQUAL_FATAL(count, 3);
	uint8_t d[2048];
	uint32_t order[] = {2, 0, 2, 1};
	for (unsigned k = 0; k < 4; k++) {
		uint32_t i = order[k];
		size_t off = (size_t)i * size;
		size_t l = SLM_MIN(size, blen - off);
		bool ack = k == 1;
		size_t len = mk(
			d, SLM_PROTO_REQ, 5, 1, i, dp_frag_aux(count, size),
			ack ? SLM_PROTO_F_ACK_REQ : 0, body + off, l, 0, NULL);
		in(1, d, len);
		if (k < 3)
			CU_ASSERT_EQUAL(dbl.n, 0);
	}
	CU_ASSERT_EQUAL_FATAL(dbl.n, 1);
	CU_ASSERT_EQUAL(dbl.r[0].text_len, 3000);
	CU_ASSERT_EQUAL(memcmp(dbl.r[0].text, text, 3000), 0);
	CU_ASSERT_EQUAL(cnt()->dup_fragment, 1);
	/* The ACK_REQ on the second fragment got a partial REQ_ACK whose
	 * bitmap holds fragments 0 and 2. */
	CU_ASSERT_EQUAL_FATAL(cap.n, 1);
	const uint8_t *b;
	size_t bl;
	struct dp_hdr h = hdr_of(0, &b, &bl);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_REQ_ACK);
	CU_ASSERT_EQUAL(h.aux, SLM_PROTO_RS_PARTIAL);
	CU_ASSERT_EQUAL(h.seq, 2);
	struct dp_req_ack a;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(dp_req_ack_decode(b, bl, &a, &err), 0);
	CU_ASSERT_EQUAL_FATAL(a.bitmap_len, 1);
	CU_ASSERT_EQUAL(a.bitmap[0], 0x5);
	struct dp_session_gauges g;
	dp_session_gauges(sess, &g);
	CU_ASSERT_EQUAL(g.reassembly_bytes, 0);

	/* Inconsistent fragments are dropped and counted. */
	size_t len = mk(d, SLM_PROTO_REQ, 5, 2, 0, dp_frag_aux(2, 1024), 0,
			body, 1000, 0, NULL); /* not the last, not full */
	in(1, d, len);
	len = mk(d, SLM_PROTO_REQ, 5, 2, 3, dp_frag_aux(2, 1024), 0, body, 1024,
		 0, NULL); /* index past count */
	in(1, d, len);
	len = mk(d, SLM_PROTO_REQ, 5, 2, 0, dp_frag_aux(2, 100), 0, body, 100,
		 0, NULL); /* fragment size below the minimum */
	in(1, d, len);
	len = mk(d, SLM_PROTO_REQ, 5, 2, 0, dp_frag_aux(0, 0), 0, body, 10, 0,
		 NULL); /* no fragments */
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_bad_fragment, 4);
	len = mk(d, SLM_PROTO_REQ, 5, 3, 0, dp_frag_aux(2, 1024), 0, body, 1024,
		 0, NULL);
	in(1, d, len);
	len = mk(d, SLM_PROTO_REQ, 5, 3, 1, dp_frag_aux(3, 1024), 0, body, 1024,
		 0, NULL); /* count changed */
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_bad_fragment, 5);
	CU_ASSERT_EQUAL(dbl.n, 1);
	dp_session_gauges(sess, &g);
	CU_ASSERT_EQUAL(g.reassembly_bytes, 2048);
	/* The incomplete one expires. */
	now += (uint64_t)params.reassembly_timeout_ms * MS + 30 * MS;
	dp_session_poll(sess, now);
	CU_ASSERT_EQUAL(cnt()->reasm_timeout, 1);
	dp_session_gauges(sess, &g);
	CU_ASSERT_EQUAL(g.reassembly_bytes, 0);
}

static void test_oversized(void)
{
	fresh();
	uint8_t d[2048], body[1400];
	memset(body, 'x', sizeof(body));
	/* 100 fragments of 1024: far over 64 KiB. */
	size_t len = mk(d, SLM_PROTO_REQ, 5, 1, 0, dp_frag_aux(100, 1024), 0,
			body, 1024, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL(dbl.n, 0);
	CU_ASSERT_EQUAL(cnt()->drop_too_big, 1);
	char msg[256];
	CU_ASSERT_EQUAL(error_of(0, msg, sizeof(msg)), SLM_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "65536"));
	/* Later fragments of it get the same answer, nothing is stored. */
	len = mk(d, SLM_PROTO_REQ, 5, 1, 1, dp_frag_aux(100, 1024), 0, body,
		 1024, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL(error_of(1, NULL, 0), SLM_ETOOBIG);
	struct dp_session_gauges g;
	dp_session_gauges(sess, &g);
	CU_ASSERT_EQUAL(g.reassembly_bytes, 0);
	/* A datagram larger than the protocol allows is dropped unread. */
	uint8_t big[SLM_PROTO_MAX_DGRAM + 8];
	len = mk(big, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 0, NULL);
	in(1, big, sizeof(big));
	CU_ASSERT_EQUAL(cnt()->drop_oversized, 1);
	CU_ASSERT_EQUAL(cap.n, 2);
}

static void test_malformed(void)
{
	fresh();
	uint8_t d[2048];
	/* Shorter than a header, wrong magic: dropped silently. */
	size_t len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 0, NULL);
	for (size_t cut = 0; cut < SLM_PROTO_HDR_SIZE; cut++)
		in(1, d, cut);
	CU_ASSERT_EQUAL(cnt()->drop_short, SLM_PROTO_HDR_SIZE);
	d[0] = 'X';
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_magic, 1);
	CU_ASSERT_EQUAL(cap.n, 0);
	/* Another version: an ERROR naming the versions. */
	len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 0, NULL);
	d[2] = 2;
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_version, 1);
	char msg[256];
	CU_ASSERT_EQUAL(error_of(0, msg, sizeof(msg)), SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "version 2"));
	/* An unknown message type: EUNSUPPORTED; a server's own type: just
	 * dropped. */
	len = mk(d, 99, 5, 0, 0, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL(error_of(1, NULL, 0), SLM_EUNSUPPORTED);
	len = mk(d, SLM_PROTO_TOKENS, 5, 1, 0, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_bad_type, 2);
	CU_ASSERT_EQUAL(cap.n, 2);
	/* Connection id 0 */
	len = mk(d, SLM_PROTO_PING, 0, 0, 1, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_malformed, 1);

	/* A request whose fields run past the body: EFORMAT. */
	uint8_t body[64];
	size_t blen = text_body(body, sizeof(body), "hi");
	send_req_body(1, 5, 1, body, blen - 1, 0);
	CU_ASSERT_EQUAL(error_of(cap.n - 1, NULL, 0), SLM_EFORMAT);
	CU_ASSERT_EQUAL(cnt()->drop_malformed, 2);
	/* An unknown mandatory field: EUNSUPPORTED naming it. */
	struct dp_writer w;
	dp_writer_init(&w, body, sizeof(body));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "hi", 2);
	dp_put_field(&w, 0x2abc, true, "x", 1);
	send_req_body(1, 5, 2, body, w.len, 0);
	CU_ASSERT_EQUAL(error_of(cap.n - 1, msg, sizeof(msg)),
			SLM_EUNSUPPORTED);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "0x2abc"));
	CU_ASSERT_EQUAL(cnt()->drop_mandatory, 1);
	/* ... and an unknown optional one is ignored. */
	dp_writer_init(&w, body, sizeof(body));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "hi", 2);
	dp_put_field(&w, 0x2abc, false, "x", 1);
	send_req_body(1, 5, 3, body, w.len, 0);
	CU_ASSERT_EQUAL(dbl.n, 1);
	/* A bad value: EINVAL with the field named. */
	dp_writer_init(&w, body, sizeof(body));
	dp_put_field(&w, SLM_PROTO_T_PROMPT_TEXT, true, "hi", 2);
	dp_put_field(&w, SLM_PROTO_T_STOP, true, "", 0);
	send_req_body(1, 5, 4, body, w.len, 0);
	CU_ASSERT_EQUAL(error_of(cap.n - 1, msg, sizeof(msg)), SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "STOP"));
	CU_ASSERT_EQUAL(cnt()->refused_invalid, 1);
	/* The serving core's refusal reaches the client. */
	dbl.refuse = SLM_ETOOBIG;
	send_text(1, 5, 5, "too long for the context");
	CU_ASSERT_EQUAL(error_of(cap.n - 1, msg, sizeof(msg)), SLM_ETOOBIG);
	CU_ASSERT_STRING_EQUAL(msg, "double refuses");
	dbl.refuse = 0;
	/* ACK/CANCEL for nothing known */
	send_ack(1, 77, 9, 0, NULL, 0, 0);
	CU_ASSERT_EQUAL(error_of(cap.n - 1, NULL, 0), SLM_ESTATE);
	CU_ASSERT_EQUAL(cnt()->drop_unknown_request, 1);
	unsigned before = cap.n;
	send_ack(1, 77, 9, 0, NULL, 0, SLM_PROTO_F_FIN); /* not answered */
	CU_ASSERT_EQUAL(cap.n, before);
}

static void test_retransmit(void)
{
	fresh_with(NULL);
	send_text(1, 5, 1, "stream");
	struct dbl_req *r = &dbl.r[0];
	char txt[8];
	for (int i = 0; i < 10; i++) {
		int32_t id = 100 + i;
		snprintf(txt, sizeof(txt), "%c", 'a' + i);
		dbl_tokens(r, &id, 1, txt);
		dp_session_poll(sess, now); /* one datagram each */
	}
	CU_ASSERT_EQUAL_FATAL(cap.n, 10);
	/* The client lost 3 and 7; it has everything below 3. */
	uint32_t missing[] = {3, 7, 55};
	send_ack(1, 5, 1, 3, missing, 3, 0);
	CU_ASSERT_EQUAL_FATAL(cap.n, 12);
	for (unsigned k = 0; k < 2; k++) {
		const uint8_t *b, *ob;
		size_t bl, obl;
		struct dp_hdr h = hdr_of(10 + k, &b, &bl);
		struct dp_hdr oh = hdr_of(h.seq, &ob, &obl);
		CU_ASSERT_EQUAL(h.seq, missing[k]);
		CU_ASSERT_EQUAL(h.type, SLM_PROTO_TOKENS);
		/* Same content, fresh packet number. */
		CU_ASSERT_EQUAL(bl, obl);
		CU_ASSERT_EQUAL(memcmp(b, ob, bl), 0);
		CU_ASSERT_NOT_EQUAL(h.pn, oh.pn);
	}
	CU_ASSERT_EQUAL(cnt()->retransmits, 2);
	/* Acknowledged packets are trimmed; asking again for one is a lost
	 * stream (never happens with a correct client). */
	struct dp_session_gauges g1, g2;
	dp_session_gauges(sess, &g1);
	send_ack(1, 5, 1, 8, NULL, 0, 0);
	dp_session_gauges(sess, &g2);
	CU_ASSERT(g2.retransmit_bytes < g1.retransmit_bytes);
	/* A probe gets a REQ_ACK with how far the stream is. */
	send_ack(1, 5, 1, 8, NULL, 0, SLM_PROTO_F_ACK_REQ);
	const uint8_t *b;
	size_t bl;
	struct dp_hdr h = hdr_of(cap.n - 1, &b, &bl);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_REQ_ACK);
	CU_ASSERT_EQUAL(h.aux, SLM_PROTO_RS_RUNNING);
	struct dp_req_ack a;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(dp_req_ack_decode(b, bl, &a, &err), 0);
	CU_ASSERT_EQUAL(a.stream_next, 10);
}

static void small_rtx(struct dp_session_params *p)
{
	p->retransmit_bytes = 4096;
}

static void test_retransmit_buffer_bound(void)
{
	fresh_with(small_rtx);
	send_text(1, 5, 1, "long");
	struct dbl_req *r = &dbl.r[0];
	char text[1001];
	memset(text, 'z', 1000);
	text[1000] = '\0';
	for (int i = 0; i < 20; i++) {
		dbl_tokens(r, NULL, 0, text);
		dp_session_poll(sess, now);
	}
	struct dp_session_gauges g;
	dp_session_gauges(sess, &g);
	CU_ASSERT(g.retransmit_bytes <= 4096);
	CU_ASSERT(cnt()->rtx_trimmed > 0);
	/* Asking for an evicted packet: ERROR, and the request is cancelled
	 * so the core stops working for nobody. */
	uint32_t missing[] = {0};
	send_ack(1, 5, 1, 0, missing, 1, 0);
	CU_ASSERT_EQUAL(error_of(cap.n - 1, NULL, 0), SLM_ESTATE);
	CU_ASSERT_EQUAL(cnt()->stream_lost, 1);
	CU_ASSERT_TRUE(r->cancelled);
	/* Its DONE frees it without sending anything. */
	unsigned before = cap.n;
	dbl_done(r, SLM_FINISH_CANCELED);
	dp_session_poll(sess, now);
	CU_ASSERT_EQUAL(cap.n, before);
	dp_session_gauges(sess, &g);
	CU_ASSERT_EQUAL(g.requests, 0);
}

static void test_utf8_split(void)
{
	fresh();
	send_text(1, 5, 1, "utf8");
	/* 3000 bytes of 3-byte characters: more than two datagrams; no
	 * datagram may end inside a character. */
	char text[3001];
	for (int i = 0; i < 3000; i += 3)
		memcpy(text + i, "\xe2\x82\xac", 3); /* EURO SIGN */
	text[3000] = '\0';
	dbl_tokens(&dbl.r[0], NULL, 0, text);
	dp_session_poll(sess, now);
	CU_ASSERT_FATAL(cap.n >= 3);
	size_t total = 0;
	for (unsigned i = 0; i < cap.n; i++) {
		const uint8_t *b;
		size_t bl;
		struct dp_hdr h = hdr_of(i, &b, &bl);
		CU_ASSERT(cap.s[i].len <= params.tx_dgram);
		CU_ASSERT_EQUAL(h.seq, i);
		struct dp_tokens t;
		struct slm_error err = {0};
		CU_ASSERT_EQUAL_FATAL(dp_tokens_decode(b, bl, &t, &err), 0);
		CU_ASSERT_EQUAL(t.text_len % 3, 0);
		CU_ASSERT_EQUAL(memcmp(t.text, text + total, t.text_len), 0);
		total += t.text_len;
	}
	CU_ASSERT_EQUAL(total, 3000);
}

static void test_cancel_and_abandon(void)
{
	fresh();
	send_text(1, 5, 1, "cancel me");
	send_text(1, 5, 2, "abandon me");
	CU_ASSERT_EQUAL_FATAL(dbl.n, 2);
	uint8_t d[256];
	size_t len = mk(d, SLM_PROTO_CANCEL, 5, 1, 0, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	in(1, d, len); /* retransmitted */
	CU_ASSERT_TRUE(dbl.r[0].cancelled);
	CU_ASSERT_EQUAL(dbl.cancels, 1);
	CU_ASSERT_EQUAL(cnt()->cancels, 1);
	dbl_done(&dbl.r[0], SLM_FINISH_CANCELED);
	dp_session_poll(sess, now);
	const uint8_t *b;
	size_t bl;
	struct dp_hdr h = hdr_of(cap.n - 1, &b, &bl);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_DONE);
	struct dp_done dn;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(dp_done_decode(b, bl, &dn, &err), 0);
	CU_ASSERT_EQUAL(dn.finish, SLM_PROTO_FINISH_CANCELED);

	/* Request 2's client goes quiet: cancelled after abandon_ms. */
	now += (uint64_t)params.abandon_ms * MS / 2;
	dp_session_poll(sess, now);
	CU_ASSERT_FALSE(dbl.r[1].cancelled);
	send_ack(1, 5, 2, 0, NULL, 0, 0); /* keep-alive */
	now += (uint64_t)params.abandon_ms * MS - MS;
	dp_session_poll(sess, now);
	CU_ASSERT_FALSE(dbl.r[1].cancelled);
	now += 100 * MS;
	dp_session_poll(sess, now);
	CU_ASSERT_TRUE(dbl.r[1].cancelled);
	CU_ASSERT_EQUAL(cnt()->abandoned, 1);
	unsigned before = cap.n;
	int32_t id = 5;
	dbl_tokens(&dbl.r[1], &id, 1, "late"); /* nobody listens */
	dbl_done(&dbl.r[1], SLM_FINISH_CANCELED);
	dp_session_poll(sess, now);
	CU_ASSERT_EQUAL(cap.n, before);
	CU_ASSERT_EQUAL(dp_session_waiting(sess), 0);
	/* Request 1 finished without a FIN: forgotten after abandon_ms. */
	now += (uint64_t)params.abandon_ms * MS + 100 * MS;
	dp_session_poll(sess, now);
	CU_ASSERT_EQUAL(cnt()->done_unacked, 1);
	struct dp_session_gauges g;
	dp_session_gauges(sess, &g);
	CU_ASSERT_EQUAL(g.requests, 0);
	/* The idle connection is forgotten after client_idle_s. */
	CU_ASSERT_EQUAL(g.conns, 1);
	now += (uint64_t)params.client_idle_s * 1000 * MS + 100 * MS;
	dp_session_poll(sess, now);
	dp_session_gauges(sess, &g);
	CU_ASSERT_EQUAL(g.conns, 0);
	CU_ASSERT_EQUAL(cnt()->conns_expired, 1);
}

static void small_caps(struct dp_session_params *p)
{
	p->client_max_inflight = 8;
	p->max_inflight = 20;
}

static void test_fairness(void)
{
	fresh_with(small_caps);
	/* Client 1 floods: only its share runs. */
	for (uint32_t i = 1; i <= 100; i++)
		send_text(1, 5, i, "flood");
	CU_ASSERT_EQUAL(dbl.n, 8);
	CU_ASSERT_EQUAL(cnt()->refused_overload, 92);
	char msg[256];
	CU_ASSERT_EQUAL(error_of(cap.n - 1, msg, sizeof(msg)), SLM_EOVERLOAD);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "per-connection"));
	/* Others still get in. */
	send_text(2, 6, 1, "polite");
	CU_ASSERT_EQUAL(dbl.n, 9);
	CU_ASSERT_STRING_EQUAL(dbl.r[8].text, "polite");
	/* The server-wide cap holds across clients. */
	for (int p = 3; p < 10; p++)
		for (uint32_t i = 1; i <= 3; i++)
			send_text(p, 7, i, "many");
	CU_ASSERT_EQUAL(dbl.n, 20);
	CU_ASSERT_EQUAL(error_of(cap.n - 1, msg, sizeof(msg)), SLM_EOVERLOAD);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "server"));
	/* A finished request frees its slot. */
	dbl_done(&dbl.r[0], SLM_FINISH_STOP);
	dp_session_poll(sess, now);
	send_text(1, 5, 101, "again");
	CU_ASSERT_EQUAL(dbl.n, 21);
}

static void rate_limited(struct dp_session_params *p)
{
	p->client_rate = 320; /* burst 32 */
}

static void test_rate_limit(void)
{
	fresh_with(rate_limited);
	send_text(1, 5, 1, "x"); /* creates the connection */
	uint8_t d[128];
	for (int i = 0; i < 100; i++) {
		size_t len = mk(d, SLM_PROTO_PING, 5, 0, (uint32_t)i, 0, 0,
				NULL, 0, 0, NULL);
		in(1, d, len);
	}
	CU_ASSERT_EQUAL(cnt()->pings, 31);
	CU_ASSERT_EQUAL(cnt()->drop_rate, 69);
	/* Another client is not affected. */
	send_text(2, 6, 1, "y");
	CU_ASSERT_EQUAL(dbl.n, 2);
	/* A tenth of a second later the bucket has 32 again. */
	now += 100 * MS;
	size_t len = mk(d, SLM_PROTO_PING, 5, 0, 1000, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->pings, 32);
}

static uint8_t key1[32], key2[32];

static void with_keys(struct dp_session_params *p)
{
	for (int i = 0; i < 32; i++) {
		key1[i] = (uint8_t)(i * 7);
		key2[i] = (uint8_t)(i * 11);
	}
	if (!keys) {
		struct slm_error err = {0};
		CU_ASSERT_EQUAL_FATAL(dp_keys_single(3, key1, &keys, &err), 0);
	}
	p->keys = keys;
}

static void test_auth(void)
{
	fresh_with(with_keys);
	uint8_t d[256];
	/* Without a MAC: dropped, never answered. */
	size_t len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_auth_missing, 1);
	/* Unknown key id, wrong key. */
	len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 4, key1);
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_unknown_key, 1);
	len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 3, key2);
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_bad_mac, 1);
	/* A tampered request. */
	uint8_t body[64];
	size_t blen = text_body(body, sizeof(body), "secret");
	len = mk(d, SLM_PROTO_REQ, 5, 1, 0, dp_frag_aux(1, (uint32_t)blen), 0,
		 body, blen, 3, key1);
	d[SLM_PROTO_HDR_SIZE + 5] ^= 1;
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_bad_mac, 2);
	/* A version mismatch is not answered either (nothing is answered
	 * before the MAC is checked). */
	len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 3, key1);
	d[2] = 7;
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_version, 1);
	CU_ASSERT_EQUAL(cap.n, 0);
	CU_ASSERT_EQUAL(dbl.n, 0);

	/* A good one is answered, with a MAC the client can check. */
	len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 3, key1);
	uint8_t replay[256];
	memcpy(replay, d, len);
	size_t replay_len = len;
	in(1, d, len);
	CU_ASSERT_EQUAL_FATAL(cap.n, 1);
	CU_ASSERT_TRUE(dp_mac_verify(cap.s[0].data, cap.s[0].len, key1));
	struct dp_hdr h = hdr_of(0, NULL, NULL);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_PONG);
	CU_ASSERT_EQUAL(h.key_id, 3);
	/* The same datagram again: a replay. */
	in(1, replay, replay_len);
	CU_ASSERT_EQUAL(cnt()->drop_replay, 1);
	CU_ASSERT_EQUAL(cap.n, 1);
	/* A request replayed: runs once. */
	len = mk(d, SLM_PROTO_REQ, 5, 1, 0, dp_frag_aux(1, (uint32_t)blen), 0,
		 body, blen, 3, key1);
	in(1, d, len);
	in(1, d, len);
	CU_ASSERT_EQUAL(dbl.n, 1);
	CU_ASSERT_EQUAL(cnt()->drop_replay, 2);
	/* A timestamp outside the window. */
	struct dp_hdr old = {.version = 1,
			     .type = SLM_PROTO_PING,
			     .conn_id = 5,
			     .pn = pn_next++,
			     .ts_us = dp_wall_us() -
				      (uint64_t)(params.replay_window_s + 5) *
					      1000000};
	dp_hdr_encode(d, &old);
	len = dp_seal(d, SLM_PROTO_HDR_SIZE, sizeof(d), 3, key1);
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->drop_stale_ts, 1);
	/* The stream is authenticated too. */
	int32_t id = 1;
	dbl_tokens(&dbl.r[0], &id, 1, "t");
	dp_session_poll(sess, now);
	CU_ASSERT_TRUE(dp_mac_verify(cap.s[cap.n - 1].data,
				     cap.s[cap.n - 1].len, key1));
}

static struct dp_acl *acl;

static void with_acl(struct dp_session_params *p)
{
	struct slm_error err = {0};
	if (!acl)
		CU_ASSERT_EQUAL(dp_acl_parse("10.0.0.1/32", &acl, &err), 0);
	p->acl = acl;
}

static void test_allowlist(void)
{
	fresh_with(with_acl);
	uint8_t d[128];
	size_t len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len); /* 10.0.0.1 */
	in(2, d, len); /* 10.0.0.2 */
	CU_ASSERT_EQUAL(cnt()->pings, 1);
	CU_ASSERT_EQUAL(cnt()->drop_not_allowed, 1);
	CU_ASSERT_EQUAL(cap.n, 1);
	dp_acl_destroy(acl);
	acl = NULL;
	fresh();
}

static void tx_fails(struct dp_session_params *p)
{
	(void)p;
	cap.fail = 1;
}

static void test_tx_errors(void)
{
	fresh_with(tx_fails);
	cap.fail = 1;
	uint8_t d[128];
	size_t len = mk(d, SLM_PROTO_PING, 5, 0, 1, 0, 0, NULL, 0, 0, NULL);
	in(1, d, len);
	CU_ASSERT_EQUAL(cnt()->tx_errors, 1);
	CU_ASSERT_EQUAL(cnt()->tx_datagrams, 0);
	cap.fail = 0;
}

/* Events from worker threads, with the consumer going to sleep. */
struct worker_arg {
	struct dbl_req *r;
	int n;
};

static void *worker(void *p)
{
	struct worker_arg *a = p;
	for (int i = 0; i < a->n; i++) {
		int32_t id = i;
		dbl_tokens(a->r, &id, 1, "w");
		if (i % 64 == 0)
			slm_sleep_ns(20000);
	}
	dbl_done(a->r, SLM_FINISH_LENGTH);
	return NULL;
}

static void test_worker_events(void)
{
	fresh();
	enum { N = 4, EVENTS = 2000 };
	now = slm_now_ns(); /* this test runs on the real clock */
	for (uint32_t i = 1; i <= N; i++)
		send_text((int)i, 5, i, "threads");
	CU_ASSERT_EQUAL_FATAL(dbl.n, N);
	pthread_t t[N];
	struct worker_arg a[N];
	for (int i = 0; i < N; i++) {
		a[i] = (struct worker_arg){&dbl.r[i], EVENTS};
		pthread_create(&t[i], NULL, worker, &a[i]);
	}
	/* The thread loop of a backend, in miniature: poll, and "sleep"
	 * (yield) only when prepare_sleep allows. */
	uint64_t t0 = slm_now_ns();
	unsigned sleeps = 0;
	while (dp_session_waiting(sess) && slm_now_ns() - t0 < 10000 * MS) {
		now = slm_now_ns();
		if (dp_session_poll(sess, now))
			continue;
		if (dp_session_prepare_sleep(sess)) {
			sleeps++;
			unsigned w =
				__atomic_load_n(&cap.wakes, __ATOMIC_RELAXED);
			for (int k = 0;
			     k < 1000 &&
			     __atomic_load_n(&cap.wakes, __ATOMIC_RELAXED) == w;
			     k++)
				slm_sleep_ns(10000);
			dp_session_awake(sess);
		}
	}
	for (int i = 0; i < N; i++)
		pthread_join(t[i], NULL);
	CU_ASSERT_EQUAL(dp_session_waiting(sess), 0);

	/* Every id arrived, in order, per request. */
	int32_t next[N + 1] = {0};
	unsigned done = 0;
	for (unsigned i = 0; i < cap.n; i++) {
		const uint8_t *b;
		size_t bl;
		struct dp_hdr h = hdr_of(i, &b, &bl);
		if (h.type == SLM_PROTO_DONE) {
			done++;
			continue;
		}
		struct dp_tokens tk;
		struct slm_error err = {0};
		CU_ASSERT_EQUAL_FATAL(dp_tokens_decode(b, bl, &tk, &err), 0);
		for (uint32_t k = 0; k < tk.n_ids; k++) {
			int32_t id = (int32_t)dp_get_u32(tk.ids_raw + 4 * k);
			CU_ASSERT_EQUAL(id, next[h.req_id]);
			next[h.req_id] = id + 1;
		}
	}
	CU_ASSERT_EQUAL(done, N);
	for (int i = 1; i <= N; i++)
		CU_ASSERT_EQUAL(next[i], EVENTS);
	CU_ASSERT_EQUAL(cnt()->events, N * (EVENTS + 1));
	/* Coalescing made fewer datagrams than events. */
	CU_ASSERT(cnt()->stream_packets < (uint64_t)N * EVENTS);
	if (sleeps)
		CU_ASSERT(cap.wakes > 0);
}

static void test_shutdown(void)
{
	fresh();
	send_text(1, 5, 1, "a");
	send_text(1, 5, 2, "b");
	CU_ASSERT_EQUAL(dp_session_shutdown(sess), 2);
	CU_ASSERT_TRUE(dbl.r[0].cancelled);
	CU_ASSERT_TRUE(dbl.r[1].cancelled);
	send_text(1, 5, 3, "c"); /* refused while shutting down */
	CU_ASSERT_EQUAL(error_of(cap.n - 1, NULL, 0), SLM_ESTATE);
	CU_ASSERT_EQUAL(dbl.n, 2);
	dbl_done(&dbl.r[0], SLM_FINISH_CANCELED);
	dp_session_poll(sess, now);
	CU_ASSERT_EQUAL(dp_session_waiting(sess), 1);
	dbl_done(&dbl.r[1], SLM_FINISH_CANCELED);
	dp_session_poll(sess, now);
	CU_ASSERT_EQUAL(dp_session_waiting(sess), 0);
	dp_session_destroy(sess);
	sess = NULL;
	free(dbl.r);
	memset(&dbl, 0, sizeof(dbl));
	fresh();
}

static void test_error_done(void)
{
	fresh();
	send_text(1, 5, 1, "x");
	dbl_done(&dbl.r[0], SLM_FINISH_ERROR);
	dp_session_poll(sess, now);
	const uint8_t *b;
	size_t bl;
	struct dp_hdr h = hdr_of(cap.n - 1, &b, &bl);
	CU_ASSERT_EQUAL(h.type, SLM_PROTO_DONE);
	struct dp_done dn;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(dp_done_decode(b, bl, &dn, &err), 0);
	CU_ASSERT_EQUAL(dn.finish, SLM_PROTO_FINISH_ERROR);
	CU_ASSERT_EQUAL(dn.error, SLM_ETOOBIG);
	CU_ASSERT_EQUAL(dn.msg_len, strlen("prompt longer than the context"));
}

SLM_SUITE("session", NULL, teardown, {"ping and info", test_ping_and_info},
	  {"no model", test_no_model},
	  {"serving core attached later", test_attach_serve},
	  {"generate stream", test_generate_stream},
	  {"duplicates run once", test_duplicates},
	  {"fragments", test_fragments}, {"oversized", test_oversized},
	  {"malformed", test_malformed}, {"retransmit", test_retransmit},
	  {"retransmit buffer bound", test_retransmit_buffer_bound},
	  {"utf-8 split", test_utf8_split},
	  {"cancel and abandon", test_cancel_and_abandon},
	  {"fairness caps", test_fairness}, {"rate limit", test_rate_limit},
	  {"authentication", test_auth}, {"allowlist", test_allowlist},
	  {"send errors", test_tx_errors},
	  {"events from workers", test_worker_events},
	  {"shutdown", test_shutdown}, {"error DONE", test_error_done})
