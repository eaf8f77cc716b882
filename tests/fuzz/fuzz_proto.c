/*
 * fuzz_proto: libFuzzer harness for the wire decoder and the server's
 * handling of whatever arrives.
 *
 * The input is either one message body given to every decoder (first
 * byte even) or a sequence of datagrams fed to a session (first byte
 * odd): each datagram is "u16 length, u8 peer, bytes".  The session has a
 * serving-core double that accepts every request and, after each
 * datagram, streams a few tokens and a DONE for what it accepted, so the
 * stream, retransmit and ACK paths are reached too.  Nothing may crash,
 * leak or read out of bounds, and every request must end.
 */
// fuzz-sources: dataplane/proto.c dataplane/session.c dataplane/peer.c dataplane/acl.c dataplane/keys.c dataplane/counters.c common/err.c
// fuzz-libs: -lsodium
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/proto.h"
#include "dataplane/session.h"

static void decode_all(const uint8_t *d, size_t n)
{
	struct slm_error err = {0};
	struct dp_hdr h;
	(void)dp_hdr_decode(d, n, &h);
	struct dp_gen g;
	void *arena = NULL;
	if (dp_gen_decode(d, n, &g, &arena, &err) == 0) {
		/* A decoded request re-encodes to something that decodes
		 * the same way. */
		size_t need = dp_gen_encoded_size(&g);
		uint8_t *buf = malloc(need + 1);
		int len = dp_gen_encode(&g, buf, need);
		if (len >= 0) {
			struct dp_gen g2;
			void *a2 = NULL;
			struct slm_error e2 = {0};
			if (dp_gen_decode(buf, (size_t)len, &g2, &a2, &e2) != 0)
				abort();
			if (g2.input != g.input || g2.set != g.set ||
			    g2.n_stop != g.n_stop || g2.n_ids != g.n_ids ||
			    g2.text_len != g.text_len)
				abort();
			free(a2);
		}
		free(buf);
		free(arena);
	}
	struct dp_tokens t;
	struct dp_done dn;
	struct dp_errmsg e;
	struct dp_req_ack ra;
	struct dp_ack a;
	struct dp_info in;
	const uint8_t *echo;
	uint32_t elen;
	slm_error_clear(&err);
	(void)dp_tokens_decode(d, n, &t, &err);
	slm_error_clear(&err);
	(void)dp_done_decode(d, n, &dn, &err);
	slm_error_clear(&err);
	(void)dp_errmsg_decode(d, n, &e, &err);
	slm_error_clear(&err);
	(void)dp_req_ack_decode(d, n, &ra, &err);
	slm_error_clear(&err);
	(void)dp_ack_decode(d, n, &a, &err);
	slm_error_clear(&err);
	(void)dp_info_decode(d, n, &in, &err);
	slm_error_clear(&err);
	(void)dp_echo_decode(d, n, &echo, &elen, &err);
	slm_error_clear(&err);
	(void)dp_empty_decode(d, n, &err);
}

/* ---- a session with doubles -------------------------------------------- */

struct fake {
	slm_event_fn fn;
	void *ctx;
	uint64_t id;
	int state; /* 0 new, 1 streamed, 2 done */
	int cancelled;
};

static struct fake reqs[512];
static unsigned n_reqs;

static int f_send(void *ctx, const struct dp_peer *to, const void *buf,
		  size_t len)
{
	(void)ctx;
	(void)to;
	(void)buf;
	if (len > SLM_PROTO_MAX_DGRAM + SLM_PROTO_MAC_SIZE)
		abort();
	return 0;
}

static void f_wake(void *ctx)
{
	(void)ctx;
}

static int f_submit(void *serve, const struct slm_request *q, uint64_t *id,
		    struct slm_error *err)
{
	(void)serve;
	if (n_reqs == 512)
		return slm_error_set(err, SLM_EOVERLOAD, "full");
	/* Touch what the request points to (ASan checks the copies). */
	volatile size_t sum = 0;
	for (size_t i = 0; i < q->text_len; i++)
		sum += (unsigned char)q->text[i];
	for (uint32_t i = 0; i < q->n_ids; i++)
		sum += (size_t)q->ids[i];
	for (uint32_t i = 0; i < q->n_messages; i++)
		sum += strlen(q->messages[i].role) +
		       strlen(q->messages[i].content);
	for (uint32_t i = 0; i < q->gen.n_stop; i++)
		sum += strlen(q->gen.stop[i]);
	if (q->cache_namespace)
		sum += strlen(q->cache_namespace);
	(void)sum;
	struct fake *f = &reqs[n_reqs];
	memset(f, 0, sizeof(*f));
	f->fn = q->on_event;
	f->ctx = q->ctx;
	f->id = 1 + n_reqs++;
	*id = f->id;
	return 0;
}

static int f_cancel(void *serve, uint64_t id)
{
	(void)serve;
	if (id == 0 || id > n_reqs || reqs[id - 1].state == 2)
		return SLM_ENOTFOUND;
	reqs[id - 1].cancelled = 1;
	return 0;
}

static void f_defaults(struct slm_gen_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_tokens = 4;
}

static const struct dp_serve_ops ops = {f_submit, f_cancel, f_defaults, NULL};

static void advance(uint8_t how)
{
	for (unsigned i = 0; i < n_reqs; i++) {
		struct fake *f = &reqs[i];
		if (f->state == 2)
			continue;
		if (f->state == 0 && !(how & 1)) {
			int32_t ids[3] = {1, 2, (int32_t)how};
			struct slm_event ev = {.kind = SLM_EVENT_TOKENS,
					       .request_id = f->id,
					       .ids = ids,
					       .n_ids = 3,
					       .text = "\xe2\x82\xac ab",
					       .text_len = 6};
			f->fn(f->ctx, &ev);
			f->state = 1;
		} else if (f->state == 1 || f->cancelled || (how & 2)) {
			struct slm_event ev = {
				.kind = SLM_EVENT_DONE,
				.request_id = f->id,
				.finish = f->cancelled ? SLM_FINISH_CANCELED
						       : SLM_FINISH_LENGTH};
			f->fn(f->ctx, &ev);
			f->state = 2;
		}
	}
}

static void run_session(const uint8_t *d, size_t n)
{
	static struct dp_io io = {NULL, f_send, f_wake};
	struct dp_session_params p;
	dp_session_params_default(&p);
	p.io = &io;
	p.serve_ops = &ops;
	p.max_clients = 8;
	p.client_max_inflight = 16;
	p.max_inflight = 64;
	p.retransmit_bytes = 8192;
	p.reassembly_bytes = 1 << 20;
	p.max_request_bytes = 16384;
	struct dp_session *s;
	struct slm_error err = {0};
	if (dp_session_create(&p, &s, &err))
		abort();
	n_reqs = 0;
	uint64_t now = 1000000000ull;
	size_t off = 0;
	while (off + 3 <= n) {
		size_t len = (size_t)d[off] | (size_t)d[off + 1] << 8;
		uint8_t who = d[off + 2];
		off += 3;
		if (len > n - off)
			len = n - off;
		struct dp_peer peer = {.family = 2,
				       .port = (uint16_t)(who & 7)};
		peer.addr[3] = who >> 3;
		dp_session_input(s, &peer, d + off, len, now);
		off += len;
		advance(who);
		now += (uint64_t)(who & 0xF0) * 50000000ull; /* up to 12 s */
		dp_session_poll(s, now);
	}
	dp_session_shutdown(s);
	advance(2);
	advance(2);
	dp_session_poll(s, now);
	if (dp_session_waiting(s))
		abort();
	dp_session_destroy(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		run_session(data + 1, size - 1);
	else
		decode_all(data + 1, size - 1);
	return 0;
}
