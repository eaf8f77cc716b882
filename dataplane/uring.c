/*
 * uring.c: the io_uring UDP backend.  See uring.h and backend.h.
 *
 * Each queue thread creates its own ring (SINGLE_ISSUER and DEFER_TASKRUN
 * tie a ring to the task that submits to it) and reports the result of
 * its setup through a semaphore before start() returns, so set-up errors
 * are still reported synchronously.
 */
#include "dataplane/uring.h"

#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "dataplane/peer.h"
#include "numa/pin.h"
#include "ctl/perf.h"

#define RX_BUF_SIZE 2048 /* recvmsg_out + name + the largest datagram */
#define TX_SLOTS 2048
#define SQ_ENTRIES 1024
#define CQ_ENTRIES 8192
#define BGID 1
#define MAX_SLEEP_NS (1000ull * 1000000) /* wake at least once a second */
#define SPIN_MIN_NS 1000		 /* a budget below 1 us is none */
#define SPIN_PROBE 256			 /* sleeps between full-window tries */

enum { UD_RX = 1, UD_EFD = 2, UD_TX = 3 };
#define UD_KIND(ud) ((ud)&0xFF)
#define UD_SLOT(ud) ((ud) >> 8)

struct tx_slot {
	struct msghdr msg;
	struct iovec iov;
	struct sockaddr_storage to;
	uint8_t buf[SLM_PROTO_MAX_DGRAM + SLM_PROTO_MAC_SIZE];
};

struct uq {
	struct dp_backend *be;
	unsigned index;
	struct perf_thread *perf; /* its row in slmctl perf/top, or NULL */
	int fd;
	int efd;
	struct io_uring ring;
	bool ring_ok;
	const char *mode;

	struct io_uring_buf_ring *br;
	size_t br_size;
	uint8_t *bufs;
	size_t bufs_size;
	unsigned n_bufs, mask;
	unsigned bufs_returned; /* added since the last advance */
	struct msghdr rx_msg;	/* layout template for multishot recvmsg */
	bool rx_armed;

	uint64_t efd_val;
	bool efd_armed;

	struct tx_slot *slots;
	unsigned *free_slots;
	unsigned n_free;

	struct dp_session *sess;
	struct dp_counters *c;
	pthread_t thread;
	bool started;
	sem_t setup_done;
	int setup_rc;
	char setup_msg[256];
	atomic_bool stop;
} SLM_ALIGNED_CACHE;

struct dp_backend {
	struct dp_backend_config cfg;
	struct sockaddr_storage addr; /* bound */
	socklen_t addr_len;
	int family;
	unsigned n;
	struct uq *q;
};

/* ---- sockets ----------------------------------------------------------- */

static int resolve(const char *url, struct sockaddr_storage *ss, socklen_t *len,
		   struct slm_error *err)
{
	struct dp_url u;
	int rc = dp_url_parse(url, &u, err);
	if (rc)
		return rc;
	if (strcmp(u.scheme, "udp"))
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.listen '%s': the uring "
				     "dataplane speaks udp://",
				     url);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_DGRAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai = NULL;
	char port[8];
	snprintf(port, sizeof(port), "%u", u.port);
	int g = getaddrinfo(u.host, port, &hints, &ai);
	if (g)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.listen '%s': %s", url,
				     gai_strerror(g));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static int open_socket(struct dp_backend *b, bool reuseport,
		       struct slm_error *err)
{
	int fd =
		socket(b->family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return slm_error_errno(err, SLM_ESYS, errno, "socket");
	/* No SO_REUSEADDR: on UDP it would let a second slmd bind the same
	 * port and silently take its traffic. */
	int one = 1, zero = 0;
	if (reuseport &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
		int e = errno;
		close(fd);
		return slm_error_errno(err, SLM_ESYS, e, "SO_REUSEPORT");
	}
	if (b->family == AF_INET6) {
		/* "[::]" serves IPv4 clients too; a specific IPv6 address
		 * only IPv6. */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	}
	if (b->cfg.socket_buffer) {
		int sz =
			(int)SLM_MIN(b->cfg.socket_buffer, (uint64_t)INT32_MAX);
		/* Root may exceed net.core.rmem_max; others get the cap. */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz,
			       sizeof(sz)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz,
			       sizeof(sz)) < 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	}
	if (bind(fd, (struct sockaddr *)&b->addr, b->addr_len) < 0) {
		int e = errno;
		char url[300];
		dp_uring_ops.local_url(b, url, sizeof(url));
		close(fd);
		return slm_error_errno(err, SLM_ESYS, e, "bind %s", url);
	}
	return fd;
}

/* ---- ring set-up (on the queue's thread) ------------------------------- */

static int ring_init(struct uq *q)
{
	static const struct {
		unsigned flags;
		const char *name;
	} modes[] = {
		{IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
		 "defer_taskrun"},
		{IORING_SETUP_COOP_TASKRUN, "coop_taskrun"},
		{0, "plain"},
	};
	int rc = -EINVAL;
	for (size_t i = 0; i < SLM_ARRAY_LEN(modes); i++) {
		struct io_uring_params p = {0};
		p.flags = modes[i].flags | IORING_SETUP_CQSIZE;
		p.cq_entries = CQ_ENTRIES;
		rc = io_uring_queue_init_params(SQ_ENTRIES, &q->ring, &p);
		if (rc == 0) {
			q->mode = modes[i].name;
			return 0;
		}
		if (rc != -EINVAL)
			break;
	}
	return rc;
}

static int bufs_init(struct uq *q)
{
	unsigned n = 1;
	while (n < q->be->cfg.rx_buffers && n < 32768)
		n <<= 1;
	q->n_bufs = n;
	q->mask = (unsigned)io_uring_buf_ring_mask(n);
	q->br_size = (size_t)n * sizeof(struct io_uring_buf);
	q->br = mmap(NULL, q->br_size, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->br == MAP_FAILED) {
		q->br = NULL;
		return -errno;
	}
	q->bufs_size = (size_t)n * RX_BUF_SIZE;
	q->bufs = mmap(NULL, q->bufs_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->bufs == MAP_FAILED) {
		q->bufs = NULL;
		return -errno;
	}
	struct io_uring_buf_reg reg = {
		.ring_addr = (uint64_t)(uintptr_t)q->br,
		.ring_entries = n,
		.bgid = BGID,
	};
	int rc = io_uring_register_buf_ring(&q->ring, &reg, 0);
	if (rc)
		return rc;
	io_uring_buf_ring_init(q->br);
	for (unsigned i = 0; i < n; i++)
		io_uring_buf_ring_add(q->br, q->bufs + (size_t)i * RX_BUF_SIZE,
				      RX_BUF_SIZE, (unsigned short)i,
				      (int)q->mask, (int)i);
	/* Publishes the entries to the kernel (a release store of the
	 * ring's tail inside liburing). */
	io_uring_buf_ring_advance(q->br, (int)n);
	return 0;
}

static struct io_uring_sqe *get_sqe(struct uq *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	if (!sqe) {
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
	}
	return sqe;
}

static void arm_rx(struct uq *q)
{
	struct io_uring_sqe *sqe = get_sqe(q);
	if (!sqe)
		return;
	io_uring_prep_recvmsg_multishot(sqe, q->fd, &q->rx_msg, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, UD_RX);
	q->rx_armed = true;
}

static void arm_efd(struct uq *q)
{
	struct io_uring_sqe *sqe = get_sqe(q);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, q->efd, &q->efd_val, sizeof(q->efd_val), 0);
	io_uring_sqe_set_data64(sqe, UD_EFD);
	q->efd_armed = true;
}

static int queue_setup(struct uq *q)
{
	int rc = ring_init(q);
	if (rc) {
		snprintf(q->setup_msg, sizeof(q->setup_msg),
			 "io_uring_queue_init: %s", strerror(-rc));
		return SLM_ESYS;
	}
	q->ring_ok = true;
	rc = bufs_init(q);
	if (rc) {
		snprintf(q->setup_msg, sizeof(q->setup_msg),
			 "provided buffer ring: %s", strerror(-rc));
		return SLM_ESYS;
	}
	memset(&q->rx_msg, 0, sizeof(q->rx_msg));
	q->rx_msg.msg_namelen = sizeof(struct sockaddr_in6);
	arm_rx(q);
	arm_efd(q);
	rc = io_uring_submit(&q->ring);
	if (rc < 0) {
		snprintf(q->setup_msg, sizeof(q->setup_msg),
			 "io_uring_submit: %s", strerror(-rc));
		return SLM_ESYS;
	}
	return 0;
}

/* ---- transmit ---------------------------------------------------------- */

static int uq_send(void *ctx, const struct dp_peer *to, const void *buf,
		   size_t len)
{
	struct uq *q = ctx;
	if (len > sizeof(q->slots[0].buf))
		return SLM_ETOOBIG;
	if (q->n_free == 0) {
		/* Every slot waits for its completion: send directly rather
		 * than reap here (reaping would re-enter the session). */
		struct sockaddr_storage ss;
		socklen_t sl = dp_peer_to_sockaddr(to, &ss, q->be->family);
		q->c->tx_full++;
		if (sendto(q->fd, buf, len, MSG_DONTWAIT,
			   (struct sockaddr *)&ss, sl) < 0)
			return SLM_ESYS;
		return 0;
	}
	struct io_uring_sqe *sqe = get_sqe(q);
	if (!sqe)
		return SLM_EAGAIN;
	unsigned i = q->free_slots[--q->n_free];
	struct tx_slot *t = &q->slots[i];
	memcpy(t->buf, buf, len);
	t->iov.iov_base = t->buf;
	t->iov.iov_len = len;
	memset(&t->msg, 0, sizeof(t->msg));
	t->msg.msg_name = &t->to;
	t->msg.msg_namelen = dp_peer_to_sockaddr(to, &t->to, q->be->family);
	t->msg.msg_iov = &t->iov;
	t->msg.msg_iovlen = 1;
	io_uring_prep_sendmsg(sqe, q->fd, &t->msg, 0);
	io_uring_sqe_set_data64(sqe, UD_TX | ((uint64_t)i << 8));
	return 0;
}

static void uq_wake(void *ctx)
{
	struct uq *q = ctx;
	uint64_t one = 1;
	/* An eventfd write does not block unless the counter would overflow
	 * 2^64-2, which these single increments never reach. */
	ssize_t w = write(q->efd, &one, sizeof(one));
	(void)w;
}

/* ---- the loop ---------------------------------------------------------- */

static void rx_one(struct uq *q, const struct io_uring_cqe *cqe, uint64_t now)
{
	if (cqe->res < 0) {
		if (cqe->res == -ENOBUFS)
			q->c->rx_nobufs++;
		else
			q->c->rx_errors++;
		if (!(cqe->flags & IORING_CQE_F_MORE))
			q->rx_armed = false;
		return;
	}
	if (!(cqe->flags & IORING_CQE_F_MORE))
		q->rx_armed = false;
	if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
		q->c->rx_errors++;
		return;
	}
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	uint8_t *buf = q->bufs + (size_t)bid * RX_BUF_SIZE;
	struct io_uring_recvmsg_out *o =
		io_uring_recvmsg_validate(buf, cqe->res, &q->rx_msg);
	if (!o) {
		q->c->rx_errors++;
	} else if (o->flags & MSG_TRUNC) {
		q->c->rx_datagrams++;
		q->c->drop_oversized++;
	} else {
		struct dp_peer peer;
		void *payload = io_uring_recvmsg_payload(o, &q->rx_msg);
		unsigned plen = io_uring_recvmsg_payload_length(o, cqe->res,
								&q->rx_msg);
		if (o->namelen > q->rx_msg.msg_namelen ||
		    dp_peer_from_sockaddr(&peer, io_uring_recvmsg_name(o),
					  o->namelen))
			q->c->rx_errors++;
		else
			dp_session_input(q->sess, &peer, payload, plen, now);
	}
	io_uring_buf_ring_add(q->br, buf, RX_BUF_SIZE, (unsigned short)bid,
			      (int)q->mask, (int)q->bufs_returned++);
}

/* Handle every completion waiting; returns how many. */
static unsigned reap(struct uq *q, uint64_t now)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	io_uring_for_each_cqe(&q->ring, head, cqe)
	{
		n++;
		uint64_t ud = io_uring_cqe_get_data64(cqe);
		switch (UD_KIND(ud)) {
		case UD_RX:
			rx_one(q, cqe, now);
			break;
		case UD_TX:
			if (cqe->res < 0)
				q->c->tx_errors++;
			q->free_slots[q->n_free++] = (unsigned)UD_SLOT(ud);
			break;
		case UD_EFD:
			q->efd_armed = false;
			q->c->wakeups_event++;
			break;
		}
	}
	io_uring_cq_advance(&q->ring, n);
	if (q->bufs_returned) {
		/* Hand the returned buffers back to the kernel in one
		 * release store of the buffer ring's tail. */
		io_uring_buf_ring_advance(q->br, (int)q->bufs_returned);
		q->bufs_returned = 0;
	}
	if (!q->rx_armed)
		arm_rx(q);
	if (!q->efd_armed)
		arm_efd(q);
	return n;
}

/*
 * Name the thread as the plan does and pin it to its dataplane core
 * before the ring and buffers are made, so their memory is the core's
 * node's.  Returns 0 or SLM_E* with setup_msg set.
 */
static int queue_place(struct uq *q)
{
	const struct slm_plan *plan = q->be->cfg.plan;
	const struct slm_topo *topo = q->be->cfg.topo;
	char name[16];
	snprintf(name, sizeof(name), "slm-dp%u", q->index);
	pthread_setname_np(pthread_self(), name);
	if (!plan || !topo || plan->n_dataplane < 1 ||
	    !slm_topo_info(topo)->this_system)
		return 0;
	int cpu = plan->dataplane_cpus[q->index % (unsigned)plan->n_dataplane];
	struct slm_error err = {0};
	int rc = slm_pin_self(topo, &cpu, 1, &err);
	if (rc)
		snprintf(q->setup_msg, sizeof(q->setup_msg), "%.200s", err.msg);
	return rc;
}

/* The thread's row in slmctl perf and top (CPU time, state); its
 * counters are the session's, exposed as one source by dataplane.c. */
static void queue_perf_register(struct uq *q)
{
	struct perf_thread_params pp = {
		.role = "dataplane", .group = -1, .index = (int)q->index};
	struct slm_error err = {0};
	if (perf_thread_register(&pp, &q->perf, &err))
		SLM_WARN("dataplane", "thread %u not on the control socket: %s",
			 q->index, err.msg);
}

static inline void queue_activity(struct uq *q, enum perf_activity a)
{
	if (q->perf)
		perf_set_activity(q->perf, a);
}

static void *uq_main(void *arg)
{
	struct uq *q = arg;
	q->setup_rc = queue_place(q);
	if (!q->setup_rc)
		q->setup_rc = queue_setup(q);
	sem_post(&q->setup_done);
	if (q->setup_rc)
		return NULL;
	queue_perf_register(q);

	/*
	 * Adaptive spinning.  budget is how long to poll after the last work
	 * before sleeping, at most spin_us.  A spin window that ends without
	 * work was wasted: halve the budget.  Work that arrives while
	 * spinning paid off: double it back.  When the budget has decayed to
	 * nothing, every 256th sleep tries the full window again, so a
	 * thread that lost its budget to a quiet spell spins again once
	 * traffic flows.  Why decay at all: when the peer that would send the
	 * next datagram runs on this thread's CPU (a small or oversubscribed
	 * machine), it cannot run while we spin, so every spin window is
	 * lost in full (docs/benchmarks.md has the measurement).
	 */
	const uint64_t spin_ns = (uint64_t)q->be->cfg.spin_us * 1000;
	uint64_t budget = spin_ns;
	unsigned probe = 0;
	bool idle_spin = false; /* polling with nothing to do */
	uint64_t now = slm_now_ns();
	uint64_t last_work = now;
	bool stopping = false;
	uint64_t stop_deadline = 0;
	for (;;) {
		/* Submit the sends queued last round and collect completions
		 * (with DEFER_TASKRUN this is where they are posted). */
		io_uring_submit_and_get_events(&q->ring);
		now = slm_now_ns();
		unsigned work = reap(q, now);
		work += dp_session_poll(q->sess, now);
		if (work) {
			queue_activity(q, PERF_ACT_IO);
			if (idle_spin) {
				budget = SLM_MIN(spin_ns, SLM_MAX(2 * budget,
								  SPIN_MIN_NS));
				idle_spin = false;
			}
			last_work = now;
		}
		if (atomic_load_explicit(&q->stop, memory_order_acquire)) {
			if (!stopping) {
				stopping = true;
				dp_session_shutdown(q->sess);
				stop_deadline =
					now +
					(uint64_t)q->be->cfg.stop_timeout_ms *
						1000000;
			}
			if (dp_session_waiting(q->sess) == 0 ||
			    now > stop_deadline)
				break;
		}
		if (work)
			continue;
		if (now - last_work < budget) {
			if (!idle_spin)
				queue_activity(q, PERF_ACT_POLL);
			idle_spin = true;
			continue;
		}
		if (!dp_session_prepare_sleep(q->sess))
			continue;
		if (idle_spin || budget == 0) {
			budget /= 2;
			if (budget < SPIN_MIN_NS)
				budget = 0;
			if (budget == 0 && spin_ns && ++probe == SPIN_PROBE) {
				probe = 0;
				budget = spin_ns;
			}
			idle_spin = false;
		}
		uint64_t until = dp_session_next_timer(q->sess);
		uint64_t wait = until > now ? until - now : 0;
		if (wait > MAX_SLEEP_NS)
			wait = MAX_SLEEP_NS;
		if (stopping && wait > 10000000)
			wait = 10000000;
		if (wait) {
			queue_activity(q, PERF_ACT_IDLE);
			struct __kernel_timespec ts = {
				.tv_sec = (long long)(wait / 1000000000),
				.tv_nsec = (long long)(wait % 1000000000),
			};
			struct io_uring_cqe *cqe;
			q->c->sleeps++;
			io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1, &ts,
							 NULL);
		}
		dp_session_awake(q->sess);
		last_work = slm_now_ns();
	}
	/* Last sends (a DONE of a cancelled request). */
	io_uring_submit_and_get_events(&q->ring);
	perf_thread_unregister(q->perf);
	q->perf = NULL;
	return NULL;
}

/* ---- ops --------------------------------------------------------------- */

static void queue_release(struct uq *q)
{
	if (q->ring_ok) {
		io_uring_queue_exit(&q->ring);
		q->ring_ok = false;
	}
	if (q->br)
		munmap(q->br, q->br_size);
	if (q->bufs)
		munmap(q->bufs, q->bufs_size);
	q->br = NULL;
	q->bufs = NULL;
	if (q->fd >= 0)
		close(q->fd);
	if (q->efd >= 0)
		close(q->efd);
	q->fd = q->efd = -1;
	free(q->slots);
	free(q->free_slots);
	q->slots = NULL;
	q->free_slots = NULL;
}

static void uring_close(struct dp_backend *b)
{
	if (!b)
		return;
	for (unsigned i = 0; i < b->n; i++) {
		queue_release(&b->q[i]);
		sem_destroy(&b->q[i].setup_done);
	}
	free(b->q);
	free(b);
}

static int uring_open(const struct dp_backend_config *cfg,
		      struct dp_backend **out, struct slm_error *err)
{
	*out = NULL;
	if (cfg->n_queues < 1 || cfg->n_queues > 64)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.rx_threads %u not in 1..64",
				     cfg->n_queues);
	struct dp_backend *b = calloc(1, sizeof(*b));
	if (!b)
		return slm_error_set(err, SLM_ENOMEM, "uring backend");
	b->cfg = *cfg;
	int rc = resolve(cfg->listen, &b->addr, &b->addr_len, err);
	if (rc) {
		free(b);
		return rc;
	}
	b->family = b->addr.ss_family;
	b->q = aligned_alloc(SLM_CACHELINE, cfg->n_queues * sizeof(*b->q));
	if (!b->q) {
		free(b);
		return slm_error_set(err, SLM_ENOMEM, "uring queues");
	}
	memset(b->q, 0, cfg->n_queues * sizeof(*b->q));
	for (unsigned i = 0; i < cfg->n_queues; i++) {
		b->q[i].fd = b->q[i].efd = -1;
		sem_init(&b->q[i].setup_done, 0, 0);
	}
	b->n = cfg->n_queues;
	for (unsigned i = 0; i < b->n; i++) {
		struct uq *q = &b->q[i];
		q->be = b;
		q->index = i;
		q->fd = open_socket(b, b->n > 1, err);
		if (q->fd < 0) {
			rc = q->fd;
			goto fail;
		}
		if (i == 0) {
			/* Port 0 became a real port: the other queues bind
			 * the same one. */
			b->addr_len = sizeof(b->addr);
			getsockname(q->fd, (struct sockaddr *)&b->addr,
				    &b->addr_len);
		}
		q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->efd < 0) {
			rc = slm_error_errno(err, SLM_ESYS, errno, "eventfd");
			goto fail;
		}
		q->slots = malloc(TX_SLOTS * sizeof(*q->slots));
		q->free_slots = malloc(TX_SLOTS * sizeof(*q->free_slots));
		if (!q->slots || !q->free_slots) {
			rc = slm_error_set(err, SLM_ENOMEM, "transmit slots");
			goto fail;
		}
		for (unsigned k = 0; k < TX_SLOTS; k++)
			q->free_slots[k] = TX_SLOTS - 1 - k;
		q->n_free = TX_SLOTS;
	}
	*out = b;
	return 0;
fail:
	uring_close(b);
	return rc;
}

static void uring_queue_io(struct dp_backend *b, unsigned i, struct dp_io *io)
{
	SLM_ASSERT(i < b->n);
	io->ctx = &b->q[i];
	io->send = uq_send;
	io->wake = uq_wake;
}

static void uring_stop(struct dp_backend *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		struct uq *q = &b->q[i];
		if (!q->started)
			continue;
		atomic_store_explicit(&q->stop, true, memory_order_release);
		uq_wake(q);
	}
	for (unsigned i = 0; i < b->n; i++) {
		struct uq *q = &b->q[i];
		if (!q->started)
			continue;
		pthread_join(q->thread, NULL);
		q->started = false;
	}
}

static int uring_start(struct dp_backend *b, struct dp_session *const *sessions,
		       struct slm_error *err)
{
	for (unsigned i = 0; i < b->n; i++) {
		struct uq *q = &b->q[i];
		q->sess = sessions[i];
		q->c = dp_session_counters(sessions[i]);
		atomic_store(&q->stop, false);
		int rc = pthread_create(&q->thread, NULL, uq_main, q);
		if (rc) {
			uring_stop(b);
			return slm_error_errno(err, SLM_ESYS, rc,
					       "dataplane thread");
		}
		sem_wait(&q->setup_done);
		if (q->setup_rc) {
			pthread_join(q->thread, NULL);
			uring_stop(b);
			return slm_error_set(err, q->setup_rc,
					     "dataplane queue %u: %s", i,
					     q->setup_msg);
		}
		q->started = true;
	}
	return 0;
}

static void uring_local_url(const struct dp_backend *b, char *buf, size_t size)
{
	struct dp_peer p;
	if (dp_peer_from_sockaddr(&p, (const struct sockaddr *)&b->addr,
				  b->addr_len)) {
		snprintf(buf, size, "udp://?");
		return;
	}
	char a[80];
	dp_peer_format(&p, a, sizeof(a));
	snprintf(buf, size, "udp://%s", a);
}

const char *dp_uring_mode(const struct dp_backend *b)
{
	return b->n && b->q[0].mode ? b->q[0].mode : "?";
}

const struct dp_backend_ops dp_uring_ops = {
	.name = "uring",
	.open = uring_open,
	.queue_io = uring_queue_io,
	.start = uring_start,
	.stop = uring_stop,
	.close = uring_close,
	.local_url = uring_local_url,
};
