/*
 * The RPC end to end on loopback: the io_uring dataplane (the real
 * backend and sessions), libslmclient, and between them a UDP relay run
 * by the test that drops, duplicates and reorders datagrams.  The serving
 * core is a threaded test double (struct wdbl) that produces a token
 * stream known in advance from the prompt, so every result can be checked
 * exactly, and that counts how often each request was run.
 *
 * The same checks through slmd with a real model are the integration
 * tests tests/integration/rpc_generate.sh and rpc_netem.sh, pending the
 * serving core.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "dataplane/backend.h"
#include "dataplane/keys.h"
#include "dataplane/proto.h"
#include "dataplane/session.h"
#include "slm/client.h"
#include "tests/unit/harness.h"

/* ---- the threaded serving-core double ---------------------------------- */

#define TAGS 4096

struct wreq {
	struct wreq *next;  /* queue */
	struct wreq *anext; /* every request */
	uint64_t id;
	slm_event_fn fn;
	void *ctx;
	uint32_t tag;
	uint32_t max_tokens;
	atomic_bool cancel;
	bool delivered;
};

struct wdbl {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct wreq *head, *tail; /* queued */
	struct wreq *all;	  /* every request, for cancel */
	bool stop;
	pthread_t th[2];
	uint64_t next_id;
	atomic_uint runs[TAGS]; /* submissions per tag */
	atomic_uint cancels;
	unsigned pause_us; /* between tokens */
};

static int32_t expected_token(uint32_t tag, uint32_t i)
{
	return (int32_t)((tag * 7919u + i * 104729u) % 32000u);
}

static uint32_t tag_of(const struct slm_request *q)
{
	if (q->input == SLM_INPUT_IDS)
		return (uint32_t)q->ids[0] % TAGS;
	/* text: "tag:N ..." */
	uint32_t t = 0;
	if (q->text_len > 4 && !memcmp(q->text, "tag:", 4))
		for (size_t i = 4;
		     i < q->text_len && q->text[i] >= '0' && q->text[i] <= '9';
		     i++)
			t = t * 10 + (uint32_t)(q->text[i] - '0');
	return t % TAGS;
}

static int wdbl_submit(void *serve, const struct slm_request *q, uint64_t *id,
		       struct slm_error *err)
{
	(void)err;
	struct wdbl *d = serve;
	struct wreq *r = calloc(1, sizeof(*r));
	if (!r)
		return SLM_ENOMEM;
	r->fn = q->on_event;
	r->ctx = q->ctx;
	r->tag = tag_of(q);
	r->max_tokens = q->gen.max_tokens;
	atomic_fetch_add(&d->runs[r->tag], 1);
	pthread_mutex_lock(&d->mu);
	r->id = ++d->next_id;
	*id = r->id;
	r->next = NULL;
	r->anext = d->all;
	d->all = r;
	if (d->tail)
		d->tail->next = r;
	else
		d->head = r;
	d->tail = r;
	pthread_cond_signal(&d->cv);
	pthread_mutex_unlock(&d->mu);
	return 0;
}

static int wdbl_cancel(void *serve, uint64_t id)
{
	struct wdbl *d = serve;
	int rc = SLM_ENOTFOUND;
	pthread_mutex_lock(&d->mu);
	for (struct wreq *r = d->all; r; r = r->anext)
		if (r->id == id && !r->delivered) {
			atomic_store(&r->cancel, true);
			atomic_fetch_add(&d->cancels, 1);
			rc = 0;
		}
	pthread_mutex_unlock(&d->mu);
	return rc;
}

static void wdbl_defaults(struct slm_gen_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_tokens = 8;
}

static const struct dp_serve_ops wdbl_ops = {
	.submit = wdbl_submit,
	.cancel = wdbl_cancel,
	.gen_defaults = wdbl_defaults,
};

static void *wdbl_worker(void *p)
{
	struct wdbl *d = p;
	struct slm_test_rng rng = {(uint64_t)(uintptr_t)p | 1};
	for (;;) {
		pthread_mutex_lock(&d->mu);
		while (!d->head && !d->stop)
			pthread_cond_wait(&d->cv, &d->mu);
		if (!d->head) {
			pthread_mutex_unlock(&d->mu);
			return NULL;
		}
		struct wreq *r = d->head;
		d->head = r->next;
		if (!d->head)
			d->tail = NULL;
		pthread_mutex_unlock(&d->mu);

		enum slm_finish finish = SLM_FINISH_LENGTH;
		uint32_t i = 0;
		while (i < r->max_tokens) {
			if (atomic_load(&r->cancel)) {
				finish = SLM_FINISH_CANCELED;
				break;
			}
			/* 1-3 tokens per event, their text "<id> ". */
			uint32_t n = 1 + (uint32_t)(slm_test_rand(&rng) % 3);
			if (n > r->max_tokens - i)
				n = r->max_tokens - i;
			int32_t ids[3];
			char text[64];
			size_t tl = 0;
			for (uint32_t k = 0; k < n; k++) {
				ids[k] = expected_token(r->tag, i + k);
				tl += (size_t)snprintf(text + tl,
						       sizeof(text) - tl, "%d ",
						       ids[k]);
			}
			struct slm_event ev = {.kind = SLM_EVENT_TOKENS,
					       .request_id = r->id,
					       .ids = ids,
					       .n_ids = n,
					       .text = text,
					       .text_len = (uint32_t)tl};
			r->fn(r->ctx, &ev);
			i += n;
			if (d->pause_us)
				slm_sleep_ns((uint64_t)d->pause_us * 1000);
		}
		struct slm_event done = {.kind = SLM_EVENT_DONE,
					 .request_id = r->id,
					 .finish = finish,
					 .usage = {1, 0, i},
					 .timings = {1, 2, 3, 4}};
		pthread_mutex_lock(&d->mu);
		r->delivered = true;
		pthread_mutex_unlock(&d->mu);
		r->fn(r->ctx, &done);
	}
}

static struct wdbl *wdbl_start(void)
{
	struct wdbl *d = calloc(1, sizeof(*d));
	pthread_mutex_init(&d->mu, NULL);
	pthread_cond_init(&d->cv, NULL);
	for (int i = 0; i < 2; i++)
		pthread_create(&d->th[i], NULL, wdbl_worker, d);
	return d;
}

static void wdbl_stop(struct wdbl *d)
{
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
	for (int i = 0; i < 2; i++)
		pthread_join(d->th[i], NULL);
	while (d->all) {
		struct wreq *r = d->all;
		d->all = r->anext;
		free(r);
	}
	free(d);
}

/* ---- a dataplane on loopback ------------------------------------------- */

struct server {
	struct dp_backend *be;
	struct dp_session *sess[4];
	struct dp_io io[4];
	unsigned n;
	char url[128];
	uint16_t port;
};

static uint32_t next_client_cap; /* 0: the default */

static int server_start(struct server *s, const char *listen, unsigned n,
			const struct dp_serve_ops *ops, void *serve,
			const struct dp_keys *keys, uint32_t spin_us)
{
	memset(s, 0, sizeof(*s));
	struct dp_backend_config bc = {.listen = listen,
				       .n_queues = n,
				       .spin_us = spin_us,
				       .rx_buffers = 256,
				       .socket_buffer = 1 << 20,
				       .stop_timeout_ms = 3000};
	struct slm_error err = {0};
	int rc = dp_uring_ops.open(&bc, &s->be, &err);
	if (rc) {
		slm_test_skip("cannot open the io_uring dataplane here: %s",
			      err.msg);
		return rc;
	}
	s->n = n;
	for (unsigned i = 0; i < n; i++) {
		struct dp_session_params p;
		dp_session_params_default(&p);
		dp_uring_ops.queue_io(s->be, i, &s->io[i]);
		p.io = &s->io[i];
		p.serve_ops = ops;
		p.serve = serve;
		p.keys = keys;
		p.hash_seed = 7 + i;
		p.abandon_ms = 3000;
		if (next_client_cap)
			p.client_max_inflight = next_client_cap;
		CU_ASSERT_EQUAL_FATAL(dp_session_create(&p, &s->sess[i], &err),
				      0);
	}
	rc = dp_uring_ops.start(s->be, s->sess, &err);
	if (rc) {
		for (unsigned i = 0; i < n; i++)
			dp_session_destroy(s->sess[i]);
		dp_uring_ops.close(s->be);
		slm_test_skip("cannot start the io_uring dataplane here: %s",
			      err.msg);
		return rc;
	}
	dp_uring_ops.local_url(s->be, s->url, sizeof(s->url));
	const char *colon = strrchr(s->url, ':');
	s->port = (uint16_t)atoi(colon + 1);
	return 0;
}

static void server_stop(struct server *s, struct dp_counters *sum)
{
	dp_uring_ops.stop(s->be);
	if (sum)
		memset(sum, 0, sizeof(*sum));
	for (unsigned i = 0; i < s->n; i++) {
		CU_ASSERT_EQUAL(dp_session_waiting(s->sess[i]), 0);
		if (sum)
			dp_counters_add(sum, dp_session_counters(s->sess[i]));
		dp_session_destroy(s->sess[i]);
	}
	dp_uring_ops.close(s->be);
}

/* ---- the lossy relay ----------------------------------------------------*/

struct relay {
	int fd;
	struct sockaddr_in server;
	uint16_t port;
	pthread_t th;
	atomic_bool stop;
	double loss, dup, reorder;
	struct {
		uint32_t conn_id;
		struct sockaddr_in addr;
	} map[64];
	unsigned n_map;
	/* a held datagram, sent after the next one (reordering) */
	uint8_t held[2048];
	size_t held_len;
	struct sockaddr_in held_to;
	uint64_t held_at;
	atomic_uint dropped, duplicated, reordered, forwarded;
};

static void relay_send(struct relay *r, const void *buf, size_t len,
		       const struct sockaddr_in *to)
{
	sendto(r->fd, buf, len, 0, (const struct sockaddr *)to, sizeof(*to));
	atomic_fetch_add(&r->forwarded, 1);
}

static void relay_flush_held(struct relay *r)
{
	if (r->held_len) {
		relay_send(r, r->held, r->held_len, &r->held_to);
		r->held_len = 0;
	}
}

static void *relay_main(void *p)
{
	struct relay *r = p;
	struct slm_test_rng rng = {0x5eed};
	uint8_t buf[2048];
	while (!atomic_load(&r->stop)) {
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		int pr = poll(&pfd, 1, 1);
		if (r->held_len && slm_now_ns() - r->held_at > 3000000)
			relay_flush_held(r);
		if (pr <= 0)
			continue;
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(r->fd, buf, sizeof(buf), 0,
				     (struct sockaddr *)&from, &fl);
		if (n < 12)
			continue;
		uint32_t conn = dp_get_u32(buf + 8);
		struct sockaddr_in to;
		if (from.sin_port == r->server.sin_port &&
		    from.sin_addr.s_addr == r->server.sin_addr.s_addr) {
			unsigned i;
			for (i = 0; i < r->n_map; i++)
				if (r->map[i].conn_id == conn)
					break;
			if (i == r->n_map)
				continue;
			to = r->map[i].addr;
		} else {
			unsigned i;
			for (i = 0; i < r->n_map; i++)
				if (r->map[i].conn_id == conn)
					break;
			if (i == r->n_map && r->n_map < 64) {
				r->map[i].conn_id = conn;
				r->n_map++;
			}
			if (i < 64)
				r->map[i].addr = from;
			to = r->server;
		}
		double u = slm_test_uniform(&rng);
		if (u < r->loss) {
			atomic_fetch_add(&r->dropped, 1);
			continue;
		}
		if (slm_test_uniform(&rng) < r->reorder && !r->held_len) {
			memcpy(r->held, buf, (size_t)n);
			r->held_len = (size_t)n;
			r->held_to = to;
			r->held_at = slm_now_ns();
			atomic_fetch_add(&r->reordered, 1);
			continue;
		}
		relay_send(r, buf, (size_t)n, &to);
		relay_flush_held(r);
		if (slm_test_uniform(&rng) < r->dup) {
			relay_send(r, buf, (size_t)n, &to);
			atomic_fetch_add(&r->duplicated, 1);
		}
	}
	return NULL;
}

static int relay_start(struct relay *r, uint16_t server_port, double loss,
		       double dup, double reorder)
{
	memset(r, 0, sizeof(*r));
	r->loss = loss;
	r->dup = dup;
	r->reorder = reorder;
	r->fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(r->fd, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	socklen_t al = sizeof(a);
	getsockname(r->fd, (struct sockaddr *)&a, &al);
	r->port = ntohs(a.sin_port);
	int sz = 4 << 20;
	setsockopt(r->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	r->server.sin_family = AF_INET;
	r->server.sin_port = htons(server_port);
	r->server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return pthread_create(&r->th, NULL, relay_main, r);
}

static void relay_stop(struct relay *r)
{
	atomic_store(&r->stop, true);
	pthread_join(r->th, NULL);
	close(r->fd);
}

/* ---- clients ------------------------------------------------------------*/

struct client_job {
	const char *url;
	uint32_t first_tag, n_req, max_tokens;
	bool big_prompts; /* some prompts need several fragments */
	unsigned concurrency;
	const struct slm_client_opts *opts;
	/* results */
	unsigned ok, bad, failed;
	int first_error;
	char first_msg[256];
	struct slm_client_stats st;
};

struct pending {
	struct client_job *j;
	uint32_t tag;
	char chunks[4096];
	size_t chunks_len;
	bool done;
};

static int on_chunk(void *ctx, const char *text, size_t len, const int32_t *ids,
		    size_t n_ids)
{
	(void)ids;
	(void)n_ids;
	struct pending *p = ctx;
	if (p->chunks_len + len < sizeof(p->chunks)) {
		memcpy(p->chunks + p->chunks_len, text, len);
		p->chunks_len += len;
	}
	return 0;
}

static bool result_right(const struct pending *p,
			 const struct slm_client_result *r, uint32_t max_tokens)
{
	if (r->finish != SLM_CLIENT_FINISH_LENGTH || r->n_ids != max_tokens ||
	    r->generated_tokens != max_tokens)
		return false;
	char want[4096];
	size_t wl = 0;
	for (uint32_t i = 0; i < max_tokens; i++) {
		if (r->ids[i] != expected_token(p->tag, i))
			return false;
		wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%d ",
				       expected_token(p->tag, i));
	}
	return r->text_len == wl && !memcmp(r->text, want, wl) &&
	       p->chunks_len == wl && !memcmp(p->chunks, want, wl);
}

static void on_done(void *ctx, uint32_t id, int status,
		    const struct slm_client_result *r)
{
	(void)id;
	struct pending *p = ctx;
	struct client_job *j = p->j;
	p->done = true;
	if (status) {
		j->failed++;
		if (!j->first_error) {
			j->first_error = status;
			snprintf(j->first_msg, sizeof(j->first_msg), "%s",
				 r->message);
		}
	} else if (result_right(p, r, j->max_tokens)) {
		j->ok++;
	} else {
		if (getenv("SLM_DBG_BAD") && !j->bad)
			printf("\n    bad: tag %u finish %d n_ids %zu gen %u "
			       "text %zu chunks %zu\n",
			       p->tag, r->finish, r->n_ids, r->generated_tokens,
			       r->text_len, p->chunks_len);
		j->bad++;
	}
	free(p);
}

static void *client_main(void *arg)
{
	struct client_job *j = arg;
	struct slm_client *c = NULL;
	char msg[256];
	if (slm_client_open(j->url, j->opts, &c, msg, sizeof(msg))) {
		j->failed = j->n_req;
		return NULL;
	}
	char *big = malloc(5000);
	uint32_t next = 0;
	while (next < j->n_req || slm_client_inflight(c)) {
		while (next < j->n_req &&
		       slm_client_inflight(c) < j->concurrency) {
			struct pending *p = calloc(1, sizeof(*p));
			p->j = j;
			p->tag = j->first_tag + next;
			struct slm_client_gen g = {0};
			g.set = SLM_GEN_MAX_TOKENS;
			g.max_tokens = j->max_tokens;
			if (j->big_prompts && next % 3 == 0) {
				/* ~4.5 KB: four fragments */
				int l = snprintf(big, 5000, "tag:%u ", p->tag);
				memset(big + l, 'x', 4500);
				big[l + 4500] = '\0';
				g.input = SLM_CLIENT_TEXT;
				g.text = big;
			} else {
				int32_t ids[4] = {(int32_t)p->tag, 5, 6, 7};
				g.input = SLM_CLIENT_IDS;
				g.ids = ids;
				g.n_ids = 4;
				if (slm_client_submit(c, &g, on_chunk, on_done,
						      p, NULL))
					break;
				next++;
				continue;
			}
			if (slm_client_submit(c, &g, on_chunk, on_done, p,
					      NULL))
				break;
			next++;
		}
		slm_client_poll(c, 5);
	}
	slm_client_stats(c, &j->st);
	free(big);
	slm_client_close(c);
	return NULL;
}

static void run_clients(const char *url, unsigned n_threads, uint32_t n_req,
			uint32_t max_tokens, bool big,
			const struct slm_client_opts *opts,
			struct client_job *jobs)
{
	pthread_t th[16];
	for (unsigned i = 0; i < n_threads; i++) {
		jobs[i] = (struct client_job){.url = url,
					      .first_tag = 100 + i * n_req,
					      .n_req = n_req,
					      .max_tokens = max_tokens,
					      .big_prompts = big,
					      .concurrency = 8,
					      .opts = opts};
		pthread_create(&th[i], NULL, client_main, &jobs[i]);
	}
	for (unsigned i = 0; i < n_threads; i++)
		pthread_join(th[i], NULL);
}

static void check_jobs(struct wdbl *d, struct client_job *jobs, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(jobs[i].ok, jobs[i].n_req);
		CU_ASSERT_EQUAL(jobs[i].bad, 0);
		CU_ASSERT_EQUAL(jobs[i].failed, 0);
		if (jobs[i].failed)
			printf("\n    client %u: %u failed, first: %s (%s)\n",
			       i, jobs[i].failed,
			       slm_client_errname(jobs[i].first_error),
			       jobs[i].first_msg);
		for (uint32_t t = 0; t < jobs[i].n_req; t++) {
			unsigned runs = atomic_load(
				&d->runs[(jobs[i].first_tag + t) % TAGS]);
			CU_ASSERT_EQUAL(runs, 1);
		}
	}
}

/* ---- tests ------------------------------------------------------------- */

static void test_clean_path(void)
{
	struct wdbl *d = wdbl_start();
	struct server s;
	if (server_start(&s, "udp://127.0.0.1:0", 1, &wdbl_ops, d, NULL, 50)) {
		wdbl_stop(d);
		return;
	}
	struct slm_client_opts o;
	slm_client_opts_default(&o);
	struct client_job jobs[8];
	run_clients(s.url, 8, 40, 24, true, &o, jobs);
	check_jobs(d, jobs, 8);
	for (unsigned i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(jobs[i].st.retransmits, 0);
	struct dp_counters c;
	server_stop(&s, &c);
	CU_ASSERT_EQUAL(c.requests_accepted, 320);
	CU_ASSERT_EQUAL(c.requests_done, 320);
	/* Each freed by the client's FIN, none left to time out. */
	CU_ASSERT_EQUAL(c.requests_freed, 320);
	CU_ASSERT_EQUAL(c.done_unacked, 0);
	CU_ASSERT_EQUAL(dp_counters_drops(&c), 0);
	wdbl_stop(d);
}

static void test_lossy_relay(void)
{
	struct wdbl *d = wdbl_start();
	d->pause_us = 50;
	struct server s;
	if (server_start(&s, "udp://127.0.0.1:0", 1, &wdbl_ops, d, NULL, 50)) {
		wdbl_stop(d);
		return;
	}
	struct relay r;
	CU_ASSERT_EQUAL_FATAL(relay_start(&r, s.port, 0.10, 0.05, 0.10), 0);
	char url[64];
	snprintf(url, sizeof(url), "udp://127.0.0.1:%u", r.port);
	struct slm_client_opts o;
	slm_client_opts_default(&o);
	o.retries = 20;
	struct client_job jobs[4];
	run_clients(url, 4, 30, 40, true, &o, jobs);
	check_jobs(d, jobs, 4);
	relay_stop(&r);
	struct dp_counters c;
	server_stop(&s, &c);
	uint64_t client_rtx = 0;
	for (unsigned i = 0; i < 4; i++)
		client_rtx += jobs[i].st.retransmits + jobs[i].st.nacks;
	printf("\n    relay: %u forwarded, %u dropped, %u duplicated, %u "
	       "reordered; client retransmits+nacks %llu; server "
	       "retransmits %llu, dup requests %llu, dup fragments %llu\n",
	       atomic_load(&r.forwarded), atomic_load(&r.dropped),
	       atomic_load(&r.duplicated), atomic_load(&r.reordered),
	       (unsigned long long)client_rtx,
	       (unsigned long long)c.retransmits,
	       (unsigned long long)c.dup_request,
	       (unsigned long long)c.dup_fragment);
	/* The faults happened and were repaired. */
	CU_ASSERT(atomic_load(&r.dropped) > 0);
	CU_ASSERT(atomic_load(&r.duplicated) > 0);
	CU_ASSERT(atomic_load(&r.reordered) > 0);
	CU_ASSERT(client_rtx > 0);
	CU_ASSERT(c.retransmits > 0);
	CU_ASSERT_EQUAL(c.requests_accepted, 120);
	wdbl_stop(d);
}

static void test_cancel(void)
{
	struct wdbl *d = wdbl_start();
	d->pause_us = 2000; /* slow: 1000 tokens take seconds */
	struct server s;
	if (server_start(&s, "udp://127.0.0.1:0", 1, &wdbl_ops, d, NULL, 50)) {
		wdbl_stop(d);
		return;
	}
	struct slm_client *c;
	CU_ASSERT_EQUAL_FATAL(slm_client_open(s.url, NULL, &c, NULL, 0), 0);
	int32_t ids[] = {900};
	struct slm_client_gen g = {.input = SLM_CLIENT_IDS,
				   .ids = ids,
				   .n_ids = 1,
				   .set = SLM_GEN_MAX_TOKENS,
				   .max_tokens = 1000};
	struct pending *p = calloc(1, sizeof(*p));
	struct client_job j = {.max_tokens = 1000};
	p->j = &j;
	p->tag = 900;
	uint32_t id;
	CU_ASSERT_EQUAL_FATAL(
		slm_client_submit(c, &g, on_chunk, on_done, p, &id), 0);
	/* Wait for the stream to start, then cancel mid-stream. */
	uint64_t t0 = slm_now_ns();
	while (p->chunks_len < 20 && slm_now_ns() - t0 < 5000000000ull)
		slm_client_poll(c, 10);
	CU_ASSERT(p->chunks_len >= 20);
	CU_ASSERT_EQUAL(slm_client_cancel(c, id), 0);
	while (slm_client_inflight(c) && slm_now_ns() - t0 < 10000000000ull)
		slm_client_poll(c, 10);
	CU_ASSERT_EQUAL(slm_client_inflight(c), 0);
	CU_ASSERT_EQUAL(atomic_load(&d->cancels), 1);
	/* It ended "canceled" (on_done saw a finish that is not "length"). */
	CU_ASSERT_EQUAL(j.ok + j.bad + j.failed, 1);
	CU_ASSERT_EQUAL(j.bad, 1);
	CU_ASSERT_EQUAL(slm_client_cancel(c, id), SLM_CLIENT_ENOTFOUND);
	slm_client_close(c);
	struct dp_counters cnt;
	server_stop(&s, &cnt);
	CU_ASSERT_EQUAL(cnt.cancels, 1);
	wdbl_stop(d);
}

static void test_blocking_generate_and_info(void)
{
	struct wdbl *d = wdbl_start();
	struct server s;
	if (server_start(&s, "udp://[::1]:0", 1, &wdbl_ops, d, NULL, 50)) {
		wdbl_stop(d);
		return;
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(s.url, "[::1]"));
	struct slm_client *c;
	char msg[256];
	CU_ASSERT_EQUAL_FATAL(
		slm_client_open(s.url, NULL, &c, msg, sizeof(msg)), 0);
	struct slm_client_info info;
	CU_ASSERT_EQUAL(slm_client_info(c, 1000, &info), 0);
	CU_ASSERT_FALSE(info.has_model);
	CU_ASSERT_EQUAL(info.max_request, 65536);
	CU_ASSERT_PTR_NOT_NULL(strstr(info.server_version, "slmd"));
	uint64_t rtt;
	CU_ASSERT_EQUAL(slm_client_ping(c, 1000, &rtt), 0);
	CU_ASSERT(rtt > 0);
	struct slm_client_gen g = {.input = SLM_CLIENT_TEXT,
				   .text = "tag:77 hello",
				   .set = SLM_GEN_MAX_TOKENS,
				   .max_tokens = 5};
	struct pending p = {.tag = 77};
	struct slm_client_result r;
	CU_ASSERT_EQUAL(slm_client_generate(c, &g, on_chunk, &p, &r), 0);
	CU_ASSERT_TRUE(result_right(&p, &r, 5));
	CU_ASSERT_EQUAL(r.prompt_tokens, 1);
	CU_ASSERT_EQUAL(r.total_us, 4);
	CU_ASSERT(r.client_total_ns >= r.client_ttft_ns);
	slm_client_result_free(&r);
	/* A prompt over max_request_bytes: refused by the server. */
	char *huge = malloc(70000);
	memset(huge, 'a', 69999);
	huge[69999] = '\0';
	g.text = huge;
	CU_ASSERT_EQUAL(slm_client_generate(c, &g, NULL, NULL, &r),
			SLM_CLIENT_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "65536"));
	if (!strstr(r.message, "65536"))
		printf("\n    message: %s\n", r.message);
	slm_client_result_free(&r);
	free(huge);
	slm_client_close(c);
	server_stop(&s, NULL);
	wdbl_stop(d);
}

static void test_auth_end_to_end(void)
{
	uint8_t key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(200 - i);
	struct dp_keys *keys;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(dp_keys_single(9, key, &keys, &err), 0);
	struct wdbl *d = wdbl_start();
	struct server s;
	if (server_start(&s, "udp://127.0.0.1:0", 1, &wdbl_ops, d, keys, 50)) {
		wdbl_stop(d);
		dp_keys_destroy(keys);
		return;
	}
	struct slm_client_opts o;
	slm_client_opts_default(&o);
	o.key_id = 9;
	memcpy(o.key, key, 32);
	struct client_job jobs[2];
	run_clients(s.url, 2, 10, 8, true, &o, jobs);
	check_jobs(d, jobs, 2);
	/* Without the key, or with another: no answer at all. */
	struct slm_client_opts bad;
	slm_client_opts_default(&bad);
	bad.retries = 1;
	struct slm_client *c;
	CU_ASSERT_EQUAL_FATAL(slm_client_open(s.url, &bad, &c, NULL, 0), 0);
	uint64_t rtt;
	CU_ASSERT_EQUAL(slm_client_ping(c, 100, &rtt), SLM_CLIENT_ETIMEDOUT);
	slm_client_close(c);
	bad.key_id = 9;
	memset(bad.key, 1, 32);
	CU_ASSERT_EQUAL_FATAL(slm_client_open(s.url, &bad, &c, NULL, 0), 0);
	CU_ASSERT_EQUAL(slm_client_ping(c, 100, &rtt), SLM_CLIENT_ETIMEDOUT);
	slm_client_close(c);
	struct dp_counters cnt;
	server_stop(&s, &cnt);
	CU_ASSERT_EQUAL(cnt.drop_auth_missing, 1);
	CU_ASSERT_EQUAL(cnt.drop_bad_mac, 1);
	CU_ASSERT_EQUAL(cnt.requests_accepted, 20);
	wdbl_stop(d);
	dp_keys_destroy(keys);
}

static void test_reuseport_threads(void)
{
	struct wdbl *d = wdbl_start();
	struct server s;
	if (server_start(&s, "udp://127.0.0.1:0", 2, &wdbl_ops, d, NULL, 0)) {
		wdbl_stop(d);
		return;
	}
	struct slm_client_opts o;
	slm_client_opts_default(&o);
	struct client_job jobs[8];
	run_clients(s.url, 8, 10, 8, false, &o, jobs);
	check_jobs(d, jobs, 8);
	/* Both threads served (with 8 client sockets, the chance that the
	 * kernel's hash sends all to one is 2^-7). */
	uint64_t per[2];
	for (unsigned i = 0; i < 2; i++)
		per[i] = dp_session_counters(s.sess[i])->requests_accepted;
	CU_ASSERT_EQUAL(per[0] + per[1], 80);
	CU_ASSERT(per[0] > 0 && per[1] > 0);
	/* spin_us 0: they slept between requests and were woken. */
	CU_ASSERT(dp_session_counters(s.sess[0])->sleeps > 0);
	server_stop(&s, NULL);
	wdbl_stop(d);
}

static void test_bad_listen(void)
{
	struct dp_backend *be;
	struct slm_error err = {0};
	struct dp_backend_config bc = {.listen = "tcp://127.0.0.1:1",
				       .n_queues = 1};
	CU_ASSERT_EQUAL(dp_uring_ops.open(&bc, &be, &err), SLM_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "udp://"));
	slm_error_clear(&err);
	bc.listen = "udp://no-such-host.invalid:1";
	CU_ASSERT_EQUAL(dp_uring_ops.open(&bc, &be, &err), SLM_ECONFIG);
	slm_error_clear(&err);
	/* A port in use (without SO_REUSEPORT). */
	struct server s;
	if (server_start(&s, "udp://127.0.0.1:0", 1, NULL, NULL, NULL, 0))
		return;
	char url[64];
	snprintf(url, sizeof(url), "udp://127.0.0.1:%u", s.port);
	bc.listen = url;
	CU_ASSERT_EQUAL(dp_uring_ops.open(&bc, &be, &err), SLM_ESYS);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "bind"));
	server_stop(&s, NULL);
}

/* One client floods (500 slow requests at once); another, polite, is
 * still served: its request is accepted and answered after at most the
 * flood's share, and the flood's excess is refused with EOVERLOAD, not
 * queued in front of everybody. */
static void test_flood_fairness(void)
{
	struct wdbl *d = wdbl_start();
	d->pause_us = 500; /* 16 tokens: ~8 ms a request */
	struct server s;
	next_client_cap = 16;
	int rc = server_start(&s, "udp://127.0.0.1:0", 1, &wdbl_ops, d, NULL,
			      50);
	next_client_cap = 0;
	if (rc) {
		wdbl_stop(d);
		return;
	}
	struct slm_client *flood, *polite;
	CU_ASSERT_EQUAL_FATAL(slm_client_open(s.url, NULL, &flood, NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(slm_client_open(s.url, NULL, &polite, NULL, 0),
			      0);
	struct client_job fj = {.max_tokens = 16}, pj = {.max_tokens = 16};
	for (uint32_t i = 0; i < 500; i++) {
		struct pending *p = calloc(1, sizeof(*p));
		p->j = &fj;
		p->tag = 2000 + i;
		int32_t ids[] = {(int32_t)p->tag};
		struct slm_client_gen g = {.input = SLM_CLIENT_IDS,
					   .ids = ids,
					   .n_ids = 1,
					   .set = SLM_GEN_MAX_TOKENS,
					   .max_tokens = 16};
		CU_ASSERT_EQUAL(slm_client_submit(flood, &g, on_chunk, on_done,
						  p, NULL),
				0);
	}
	/* Let the flood arrive, then the polite request. */
	slm_client_poll(flood, 20);
	struct pending *p = calloc(1, sizeof(*p));
	p->j = &pj;
	p->tag = 3000;
	int32_t ids[] = {3000};
	struct slm_client_gen g = {.input = SLM_CLIENT_IDS,
				   .ids = ids,
				   .n_ids = 1,
				   .set = SLM_GEN_MAX_TOKENS,
				   .max_tokens = 16};
	uint64_t t0 = slm_now_ns();
	CU_ASSERT_EQUAL(
		slm_client_submit(polite, &g, on_chunk, on_done, p, NULL), 0);
	while (slm_client_inflight(polite) &&
	       slm_now_ns() - t0 < 10000000000ull) {
		slm_client_poll(polite, 1);
		slm_client_poll(flood, 0);
	}
	uint64_t polite_ns = slm_now_ns() - t0;
	/* Accepted and answered right, in the time of the few requests the
	 * flood may hold (16, run 2 at a time), not of 500. */
	CU_ASSERT_EQUAL(pj.ok, 1);
	CU_ASSERT_EQUAL(pj.failed, 0);
	CU_ASSERT(polite_ns < 2000000000ull);
	while (slm_client_inflight(flood))
		slm_client_poll(flood, 10);
	CU_ASSERT_EQUAL(fj.ok + fj.failed, 500);
	CU_ASSERT(fj.ok >= 16);
	CU_ASSERT(fj.failed > 0);
	CU_ASSERT_EQUAL(fj.first_error, SLM_CLIENT_EOVERLOAD);
	CU_ASSERT_EQUAL(fj.bad, 0);
	slm_client_close(flood);
	slm_client_close(polite);
	struct dp_counters c;
	server_stop(&s, &c);
	CU_ASSERT_EQUAL(c.refused_overload, fj.failed);
	CU_ASSERT_EQUAL(c.requests_accepted, fj.ok + 1);
	wdbl_stop(d);
}

/* A server that never answers, and none at all: the request gives up
 * after its retries (regression: the end of a request inside the timer
 * run was used again afterwards). */
static void test_no_answer(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(fd, (struct sockaddr *)&a, &al);
	char url[64];
	snprintf(url, sizeof(url), "udp://127.0.0.1:%u", ntohs(a.sin_port));
	struct slm_client_opts o;
	slm_client_opts_default(&o);
	o.retries = 2;
	o.rto_ms = 5;
	struct slm_client *c;
	CU_ASSERT_EQUAL_FATAL(slm_client_open(url, &o, &c, NULL, 0), 0);
	struct slm_client_gen g = {.input = SLM_CLIENT_TEXT, .text = "hello"};
	struct slm_client_result r;
	CU_ASSERT_EQUAL(slm_client_generate(c, &g, NULL, NULL, &r),
			SLM_CLIENT_ETIMEDOUT);
	CU_ASSERT_EQUAL(r.error, SLM_CLIENT_ETIMEDOUT);
	CU_ASSERT_EQUAL(r.finish, SLM_CLIENT_FINISH_ERROR);
	slm_client_result_free(&r);
	/* Asynchronous: the same end through on_done. */
	struct client_job j = {.max_tokens = 1};
	struct pending *p = calloc(1, sizeof(*p));
	p->j = &j;
	CU_ASSERT_EQUAL(slm_client_submit(c, &g, NULL, on_done, p, NULL), 0);
	while (slm_client_inflight(c))
		slm_client_poll(c, 10);
	CU_ASSERT_EQUAL(j.failed, 1);
	CU_ASSERT_EQUAL(j.first_error, SLM_CLIENT_ETIMEDOUT);
	struct slm_client_stats st;
	slm_client_stats(c, &st);
	CU_ASSERT_EQUAL(st.timeouts, 2);
	CU_ASSERT_EQUAL(st.retransmits, 4);
	slm_client_close(c);
	close(fd);
	/* Nothing listening: the kernel's refusal is reported. */
	CU_ASSERT_EQUAL_FATAL(slm_client_open(url, &o, &c, NULL, 0), 0);
	CU_ASSERT_EQUAL(slm_client_generate(c, &g, NULL, NULL, &r),
			SLM_CLIENT_ECONNECT);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.message, "refused"));
	slm_client_result_free(&r);
	slm_client_close(c);
}

SLM_SUITE("rpc", NULL, NULL,
	  {"no answer: retries, then gives up", test_no_answer},
	  {"clean path, 8 clients", test_clean_path},
	  {"lossy relay: loss, duplicates, reordering", test_lossy_relay},
	  {"cancel mid-stream", test_cancel},
	  {"blocking generate, info, IPv6", test_blocking_generate_and_info},
	  {"authentication end to end", test_auth_end_to_end},
	  {"two threads, SO_REUSEPORT", test_reuseport_threads},
	  {"a flood from one client does not starve another",
	   test_flood_fairness},
	  {"bad listen addresses", test_bad_listen})
