/*
 * dpdk.c: the DPDK backend's ops and its lcore loop.  See dpdk.h.
 *
 * An lcore owns: its RX queue on each link it serves, its TX queue on
 * each (the NIC's queue i is lcore i's; a memif link's only queue pair
 * is its lcore's), its session, a neighbour table, TX bursts per link and
 * an eventfd that workers write to wake it.  Nothing an lcore touches in
 * the fast path is shared, except the neighbour table for ARP replies
 * (locked, and only on a miss).
 */
#include "dataplane/dpdk_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <rte_errno.h>
#include <rte_lcore.h>

#include "common/clock.h"
#include "ctl/perf.h"
#include "common/log.h"
#include "dataplane/counters.h"
#include "dataplane/peer.h"

#define MAX_SLEEP_NS (1000ull * 1000000) /* wake at least once a second */
#define SPIN_MIN_NS 1000		 /* a budget below 1 us is none */
#define SPIN_PROBE 256			 /* sleeps between full-window tries */
#define NAP_MIN_NS 10000		 /* first nap of an idle lcore */
#define ARP_RETRY_NS (100ull * 1000000)	 /* one ARP request per address */
#define LINK_POLL_NS (1000ull * 1000000)
#define CONFLICT_LOG_NS (10000ull * 1000000)
#define TX_RETRIES 4
/* The longest sleep on RX interrupts.  With net_tap on the development
 * VM a wake-up now and then did not come (docs/operations.md); polling
 * at least this often bounds what a missed one costs. */
#define INTR_SLEEP_MAX_NS (10ull * 1000000)

/* Index into struct dp_counters of drop_<reason>, by enum dp_frame_drop. */
static unsigned drop_counter[DP_DROP__N];

static void drop_counters_init(void)
{
	for (unsigned d = 1; d < DP_DROP__N; d++) {
		char name[64];
		snprintf(name, sizeof(name), "drop_%s",
			 dp_frame_drop_name((enum dp_frame_drop)d));
		unsigned i = 0;
		while (i < DP_COUNTERS_N && strcmp(dp_counter_name(i), name))
			i++;
		SLM_ASSERT(i < DP_COUNTERS_N); /* counters.h lists it */
		drop_counter[d] = i;
	}
}

static void count_drop(struct dpdk_lcore *l, enum dp_frame_drop d)
{
	((uint64_t *)l->c)[drop_counter[d]]++;
}

/* ---- transmit ---------------------------------------------------------- */

static void tx_flush(struct dpdk_lcore *l, unsigned link)
{
	struct dpdk_txbuf *t = &l->tx[link];
	if (!t->n)
		return;
	struct dpdk_link *k = &l->be->links[link];
	uint16_t q = (uint16_t)l->txq[link];
	unsigned sent = 0;
	for (int tries = 0; sent < t->n && tries < TX_RETRIES; tries++)
		sent += rte_eth_tx_burst(k->port, q, t->m + sent,
					 (uint16_t)(t->n - sent));
	l->c->tx_frames += sent;
	if (sent < t->n) {
		l->c->tx_full += t->n - sent;
		rte_pktmbuf_free_bulk(t->m + sent, t->n - sent);
	}
	t->n = 0;
}

static void tx_flush_all(struct dpdk_lcore *l)
{
	for (unsigned i = 0; i < l->be->n_links; i++)
		tx_flush(l, i);
}

static void tx_push(struct dpdk_lcore *l, unsigned link, struct rte_mbuf *m)
{
	struct dpdk_txbuf *t = &l->tx[link];
	t->m[t->n++] = m;
	if (t->n == DPDK_BURST)
		tx_flush(l, link);
}

static void send_arp_request(struct dpdk_lcore *l, struct dpdk_link *k,
			     uint32_t ip)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(l->pool);
	if (!m) {
		l->c->tx_nombuf++;
		return;
	}
	uint8_t *d = (uint8_t *)rte_pktmbuf_append(m, DP_ETH_HLEN + DP_ARP_LEN);
	dp_frame_arp(d, DP_ARP_REQUEST, &k->host.mac, k->host.ip,
		     &dp_mac_broadcast, ip);
	l->c->arp_requests++;
	tx_push(l, k->index, m);
}

/* The MAC to send to ip on k; false (and an ARP request, at most one per
 * address per ARP_RETRY_NS) when it is not known. */
static bool resolve(struct dpdk_lcore *l, struct dpdk_link *k, uint32_t ip,
		    struct dp_mac *mac, uint64_t now)
{
	if (dp_neigh_lookup(l->neigh, k->index, ip, mac))
		return true;
	struct dp_backend *b = l->be;
	pthread_mutex_lock(&b->neigh_lock);
	bool ok = dp_neigh_lookup(b->shared_neigh, k->index, ip, mac);
	bool ask = !ok && dp_neigh_should_ask(b->shared_neigh, k->index, ip,
					      now, ARP_RETRY_NS);
	pthread_mutex_unlock(&b->neigh_lock);
	if (ok) {
		dp_neigh_learn(l->neigh, k->index, ip, mac, now);
		return true;
	}
	if (ask)
		send_arp_request(l, k, ip);
	return false;
}

static int dq_send(void *ctx, const struct dp_peer *to, const void *buf,
		   size_t len)
{
	struct dpdk_lcore *l = ctx;
	struct dp_backend *b = l->be;
	if (to->family != AF_INET || to->scope_id >= b->n_links ||
	    l->txq[to->scope_id] < 0)
		return SLM_EINVAL;
	if (len > DP_UDP4_MAX_PAYLOAD)
		return SLM_ETOOBIG;
	struct dpdk_link *k = &b->links[to->scope_id];
	uint32_t ip;
	memcpy(&ip, to->addr, 4);
	struct dp_mac mac;
	if (!resolve(l, k, ip, &mac, slm_now_ns())) {
		l->c->tx_no_neigh++;
		return SLM_EAGAIN;
	}
	struct rte_mbuf *m = rte_pktmbuf_alloc(l->pool);
	if (!m) {
		l->c->tx_nombuf++;
		return SLM_ENOMEM;
	}
	uint8_t *d = (uint8_t *)rte_pktmbuf_append(
		m, (uint16_t)(DP_UDP4_HDRS + len));
	if (!d) {
		rte_pktmbuf_free(m);
		return SLM_ETOOBIG;
	}
	memcpy(d + DP_UDP4_HDRS, buf, len);
	unsigned flags = 0;
	if (k->tx_ip_csum)
		flags |= DP_FRAME_IP_CSUM_OFFLOAD;
	if (k->tx_udp_csum)
		flags |= DP_FRAME_UDP_CSUM_OFFLOAD;
	else if (k->udp_csum_none)
		flags |= DP_FRAME_UDP_CSUM_NONE;
	dp_frame_udp4(d, &mac, &k->host.mac, k->host.ip, ip, k->host.port,
		      to->port, len, l->ip_id++, flags);
	if (k->tx_ip_csum || k->tx_udp_csum) {
		m->ol_flags |= RTE_MBUF_F_TX_IPV4;
		if (k->tx_ip_csum)
			m->ol_flags |= RTE_MBUF_F_TX_IP_CKSUM;
		if (k->tx_udp_csum)
			m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
		m->l2_len = DP_ETH_HLEN;
		m->l3_len = DP_IP4_HLEN;
	}
	tx_push(l, k->index, m);
	return 0;
}

static void dq_wake(void *ctx)
{
	struct dpdk_lcore *l = ctx;
	uint64_t one = 1;
	ssize_t w = write(l->efd, &one, sizeof(one));
	(void)w;
}

/* ---- receive ----------------------------------------------------------- */

static enum dp_csum_hint ip_hint(const struct dpdk_link *k,
				 const struct rte_mbuf *m)
{
	if (!k->rx_ip_csum)
		return DP_CSUM_UNKNOWN;
	switch (m->ol_flags & RTE_MBUF_F_RX_IP_CKSUM_MASK) {
	case RTE_MBUF_F_RX_IP_CKSUM_GOOD:
		return DP_CSUM_GOOD;
	case RTE_MBUF_F_RX_IP_CKSUM_BAD:
		return DP_CSUM_BAD;
	default:
		return DP_CSUM_UNKNOWN;
	}
}

static enum dp_csum_hint l4_hint(const struct dpdk_link *k,
				 const struct rte_mbuf *m)
{
	if (!k->rx_l4_csum)
		return DP_CSUM_UNKNOWN;
	switch (m->ol_flags & RTE_MBUF_F_RX_L4_CKSUM_MASK) {
	case RTE_MBUF_F_RX_L4_CKSUM_GOOD:
		return DP_CSUM_GOOD;
	case RTE_MBUF_F_RX_L4_CKSUM_BAD:
		return DP_CSUM_BAD;
	default:
		return DP_CSUM_UNKNOWN;
	}
}

static void learn(struct dpdk_lcore *l, struct dpdk_link *k, uint32_t ip,
		  const struct dp_mac *mac, bool shared, uint64_t now)
{
	if (dp_neigh_learn(l->neigh, k->index, ip, mac, now))
		l->c->arp_learned++;
	if (!shared)
		return;
	struct dp_backend *b = l->be;
	pthread_mutex_lock(&b->neigh_lock);
	dp_neigh_learn(b->shared_neigh, k->index, ip, mac, now);
	pthread_mutex_unlock(&b->neigh_lock);
}

static uint64_t last_conflict_log;

static void check_conflict(struct dpdk_lcore *l, struct dpdk_link *k,
			   const uint8_t *d, size_t len, uint64_t now)
{
	if (!dp_frame_arp_conflict(d, len, &k->host))
		return;
	l->c->arp_conflicts++;
	uint64_t last = __atomic_load_n(&last_conflict_log, __ATOMIC_RELAXED);
	if (now - last < CONFLICT_LOG_NS ||
	    !__atomic_compare_exchange_n(&last_conflict_log, &last, now, false,
					 __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	char ip[16], mac[24];
	dp_ip4_format(k->host.ip, ip, sizeof(ip));
	struct dp_mac other;
	memcpy(other.b, d + DP_ETH_HLEN + 8, DP_ETH_ALEN);
	dp_mac_format(&other, mac, sizeof(mac));
	SLM_WARN("dpdk",
		 "address conflict on %s: %s claims %s (our address); "
		 "clients may be reaching the other host",
		 k->name, mac, ip);
}

/* Turn m into a reply on the link it came from; false when this lcore
 * has no TX queue there. */
static bool reply(struct dpdk_lcore *l, struct dpdk_link *k, struct rte_mbuf *m,
		  size_t len)
{
	if (l->txq[k->index] < 0)
		return false;
	if (rte_pktmbuf_data_len(m) > len)
		rte_pktmbuf_trim(m, (uint16_t)(rte_pktmbuf_data_len(m) - len));
	m->ol_flags = 0;
	m->nb_segs = 1;
	tx_push(l, k->index, m);
	return true;
}

static void handle(struct dpdk_lcore *l, struct dpdk_link *k,
		   struct rte_mbuf *m, uint64_t now)
{
	l->c->rx_frames++;
	if (m->nb_segs != 1) {
		/* Larger than a 2 KiB buffer: a jumbo frame, more than the
		 * protocol's largest datagram. */
		l->c->drop_oversized++;
		rte_pktmbuf_free(m);
		return;
	}
	uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
	size_t len = rte_pktmbuf_data_len(m);
	struct dp_frame fr;
	dp_frame_parse(d, len, &k->host, ip_hint(k, m), l4_hint(k, m), &fr);
	switch (fr.kind) {
	case DP_FRAME_UDP: {
		learn(l, k, fr.src_ip, &fr.src_mac, false, now);
		struct dp_peer p;
		memset(&p, 0, sizeof(p));
		p.family = AF_INET;
		p.port = fr.src_port;
		p.scope_id = k->index;
		memcpy(p.addr, &fr.src_ip, 4);
		dp_session_input(l->sess, &p, d + fr.payload_off,
				 fr.payload_len, now);
		break;
	}
	case DP_FRAME_ARP_REQUEST:
		learn(l, k, fr.src_ip, &fr.src_mac, true, now);
		len = dp_frame_arp(d, DP_ARP_REPLY, &k->host.mac, k->host.ip,
				   &fr.src_mac, fr.src_ip);
		if (reply(l, k, m, len)) {
			l->c->arp_replies++;
			return;
		}
		break;
	case DP_FRAME_ARP_REPLY:
		learn(l, k, fr.src_ip, &fr.src_mac, true, now);
		break;
	case DP_FRAME_ICMP_ECHO:
		learn(l, k, fr.src_ip, &fr.src_mac, false, now);
		len = dp_frame_icmp_echo_reply(d, &fr, &k->host);
		if (reply(l, k, m, len)) {
			l->c->icmp_echo++;
			return;
		}
		break;
	case DP_FRAME_DROP:
		count_drop(l, fr.drop);
		if (fr.drop == DP_DROP_ARP)
			check_conflict(l, k, d, len, now);
		break;
	}
	rte_pktmbuf_free(m);
}

/* Receive a burst on each queue; returns the frames handled. */
static unsigned rx_all(struct dpdk_lcore *l, uint64_t now)
{
	unsigned total = 0;
	for (unsigned i = 0; i < l->n_rx; i++) {
		struct dpdk_rxq *r = &l->rx[i];
		struct rte_mbuf *m[DPDK_BURST];
		uint16_t n = rte_eth_rx_burst(r->link->port, r->queue, m,
					      DPDK_BURST);
		for (uint16_t j = 0; j < n; j++) {
			if (j + 1 < n)
				rte_prefetch0(
					rte_pktmbuf_mtod(m[j + 1], void *));
			handle(l, r->link, m[j], now);
		}
		total += n;
	}
	return total;
}

/* ---- sleeping ---------------------------------------------------------- */

static void intr_set(struct dpdk_lcore *l, bool on)
{
	for (unsigned i = 0; i < l->n_rx; i++) {
		struct dpdk_rxq *r = &l->rx[i];
		if (on)
			rte_eth_dev_rx_intr_enable(r->link->port, r->queue);
		else
			rte_eth_dev_rx_intr_disable(r->link->port, r->queue);
	}
}

static void drain_efd(struct dpdk_lcore *l)
{
	uint64_t v;
	ssize_t r = read(l->efd, &v, sizeof(v));
	(void)r;
}

/*
 * Block until a frame, a worker's wake-up or wait_ns.  With RX
 * interrupts: arm them, look once more (a frame may have come between
 * the last poll and arming), then sleep in EAL's per-thread epoll (whole
 * milliseconds; frames wake it at once).  Without: a nap on the eventfd.
 * Returns the frames handled by the look before sleeping.
 */
static unsigned sleep_for(struct dpdk_lcore *l, uint64_t wait_ns,
			  uint64_t nap_ns)
{
	l->c->sleeps++;
	if (l->intr_ok) {
		intr_set(l, true);
		unsigned got = rx_all(l, slm_now_ns());
		if (got) {
			intr_set(l, false);
			return got;
		}
		struct rte_epoll_event ev[8];
		wait_ns = SLM_MIN(wait_ns, INTR_SLEEP_MAX_NS);
		int ms = (int)((wait_ns + 999999) / 1000000);
		int n = rte_epoll_wait_interruptible(RTE_EPOLL_PER_THREAD, ev,
						     8, ms);
		intr_set(l, false);
		for (int i = 0; i < n; i++)
			if (ev[i].fd == l->efd)
				l->c->wakeups_event++;
		drain_efd(l);
		return 0;
	}
	uint64_t t = SLM_MIN(wait_ns, nap_ns);
	struct timespec ts = {(time_t)(t / 1000000000), (long)(t % 1000000000)};
	struct pollfd pfd = {.fd = l->efd, .events = POLLIN};
	if (ppoll(&pfd, 1, &ts, NULL) > 0) {
		l->c->wakeups_event++;
		drain_efd(l);
	}
	return 0;
}

/* ---- the lcore --------------------------------------------------------- */

static int lcore_setup(struct dpdk_lcore *l)
{
	if (rte_thread_register() < 0) {
		snprintf(l->setup_msg, sizeof(l->setup_msg),
			 "rte_thread_register: %s", rte_strerror(rte_errno));
		return SLM_ESYS;
	}
	l->lcore_id = rte_lcore_id();
	/* Naps of tens of microseconds need a timer slack below the
	 * default 50 us. */
	prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
	bool all = l->be->rx_interrupts && l->n_rx > 0;
	for (unsigned i = 0; i < l->n_rx; i++) {
		struct dpdk_rxq *r = &l->rx[i];
		if (!r->link->rx_intr) {
			all = false;
			continue;
		}
		/* Some drivers (net_tap) signal through the queue's own
		 * descriptor and have no enable/disable: ADD is the test. */
		if (rte_eth_dev_rx_intr_ctl_q(r->link->port, r->queue,
					      RTE_EPOLL_PER_THREAD,
					      RTE_INTR_EVENT_ADD, NULL) == 0)
			r->intr = true;
		else
			all = false;
	}
	if (all) {
		memset(&l->efd_ev, 0, sizeof(l->efd_ev));
		l->efd_ev.epdata.event = EPOLLIN;
		all = rte_epoll_ctl(RTE_EPOLL_PER_THREAD, EPOLL_CTL_ADD, l->efd,
				    &l->efd_ev) == 0;
	}
	l->intr_ok = all;
	return 0;
}

static void lcore_teardown(struct dpdk_lcore *l)
{
	for (unsigned i = 0; i < l->n_rx; i++) {
		struct dpdk_rxq *r = &l->rx[i];
		if (r->intr)
			rte_eth_dev_rx_intr_ctl_q(r->link->port, r->queue,
						  RTE_EPOLL_PER_THREAD,
						  RTE_INTR_EVENT_DEL, NULL);
		r->intr = false;
	}
	if (l->intr_ok)
		rte_epoll_ctl(RTE_EPOLL_PER_THREAD, EPOLL_CTL_DEL, l->efd,
			      &l->efd_ev);
	rte_thread_unregister();
}

/* Lcore 0 watches the NIC's link and announces the address when it comes
 * (back) up. */
static void watch_link(struct dpdk_lcore *l, uint64_t now, uint64_t *next)
{
	if (l->index != 0 || now < *next)
		return;
	*next = now + LINK_POLL_NS;
	struct dp_backend *b = l->be;
	for (unsigned i = 0; i < b->n_links; i++) {
		struct dpdk_link *k = &b->links[i];
		if (dpdk_link_poll(k) && k->kind == DPDK_LINK_NIC &&
		    l->txq[i] >= 0) {
			send_arp_request(l, k, k->host.ip);
		}
	}
}

static void *lcore_main(void *arg)
{
	struct dpdk_lcore *l = arg;
	l->setup_rc = lcore_setup(l);
	sem_post(&l->setup_done);
	if (l->setup_rc)
		return NULL;
	/* Its row in slmctl perf and top (CPU time, kernel state); the
	 * counters are the session's, one source for the dataplane. */
	struct perf_thread *perf = NULL;
	struct perf_thread_params pp = {
		.role = "dataplane", .group = -1, .index = (int)l->index};
	struct slm_error perr = {0};
	if (perf_thread_register(&pp, &perf, &perr))
		SLM_WARN("dataplane", "lcore %u not on the control socket: %s",
			 l->index, perr.msg);
	struct dp_backend *b = l->be;
	/* The adaptive spin window of uring.c: halve after a window that
	 * caught nothing, double after one that did, retry the full window
	 * every SPIN_PROBE sleeps. */
	const uint64_t spin_ns = (uint64_t)b->cfg.spin_us * 1000;
	const uint64_t nap_max = (uint64_t)b->idle_sleep_us * 1000;
	uint64_t budget = spin_ns, nap = NAP_MIN_NS;
	unsigned probe = 0;
	bool idle_spin = false, stopping = false;
	uint64_t now = slm_now_ns(), last_work = now, stop_deadline = 0;
	uint64_t next_link_poll = now + LINK_POLL_NS;
	for (;;) {
		now = slm_now_ns();
		unsigned work = rx_all(l, now);
		work += dp_session_poll(l->sess, now);
		tx_flush_all(l);
		watch_link(l, now, &next_link_poll);
		if (work) {
			if (idle_spin) {
				budget = SLM_MIN(spin_ns, SLM_MAX(2 * budget,
								  SPIN_MIN_NS));
				idle_spin = false;
			}
			last_work = now;
			nap = NAP_MIN_NS;
		}
		if (atomic_load_explicit(&l->stop, memory_order_acquire)) {
			if (!stopping) {
				stopping = true;
				dp_session_shutdown(l->sess);
				stop_deadline =
					now + (uint64_t)b->cfg.stop_timeout_ms *
						      1000000;
			}
			if (dp_session_waiting(l->sess) == 0 ||
			    now > stop_deadline)
				break;
		}
		if (work)
			continue;
		if (now - last_work < budget) {
			idle_spin = true;
			continue;
		}
		if (!dp_session_prepare_sleep(l->sess))
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
		uint64_t until = dp_session_next_timer(l->sess);
		uint64_t wait = until > now ? until - now : 0;
		wait = SLM_MIN(wait, MAX_SLEEP_NS);
		if (l->index == 0)
			wait = SLM_MIN(wait, next_link_poll > now
						     ? next_link_poll - now
						     : 0);
		if (stopping)
			wait = SLM_MIN(wait, 10000000ull);
		unsigned got = wait ? sleep_for(l, wait, nap) : 0;
		if (!l->intr_ok && !got)
			nap = SLM_MIN(nap * 2, SLM_MAX(nap_max, NAP_MIN_NS));
		dp_session_awake(l->sess);
		last_work = slm_now_ns();
		if (got)
			nap = NAP_MIN_NS;
	}
	tx_flush_all(l);
	lcore_teardown(l);
	perf_thread_unregister(perf);
	return NULL;
}

/* ---- ops --------------------------------------------------------------- */

static void dpdk_close(struct dp_backend *b)
{
	if (!b)
		return;
	if (b->links) {
		for (unsigned i = 0; i < b->n_links; i++) {
			struct dpdk_link *k = &b->links[i];
			struct rte_eth_stats st;
			if (!k->port_ok || rte_eth_stats_get(k->port, &st))
				continue;
			if (k->kind == DPDK_LINK_MEMIF && !st.ipackets &&
			    !st.opackets)
				continue;
			SLM_INFO("dpdk",
				 "%s: rx %llu frames, tx %llu, missed %llu, rx "
				 "errors %llu, tx errors %llu, no mbuf %llu",
				 k->name, (unsigned long long)st.ipackets,
				 (unsigned long long)st.opackets,
				 (unsigned long long)st.imissed,
				 (unsigned long long)st.ierrors,
				 (unsigned long long)st.oerrors,
				 (unsigned long long)st.rx_nombuf);
		}
	}
	dpdk_links_close(b);
	for (unsigned i = 0; b->lc && i < b->n; i++) {
		struct dpdk_lcore *l = &b->lc[i];
		dp_neigh_destroy(l->neigh);
		if (l->efd >= 0)
			close(l->efd);
		sem_destroy(&l->setup_done);
	}
	free(b->lc);
	dp_neigh_destroy(b->shared_neigh);
	pthread_mutex_destroy(&b->neigh_lock);
	if (b->eal_ok)
		dpdk_eal_stop();
	free(b);
}

static int parse_listen(struct dp_backend *b, const char *listen,
			struct slm_error *err)
{
	struct dp_url u;
	int rc = dp_url_parse(listen, &u, err);
	if (rc)
		return rc;
	if (strcmp(u.scheme, "udp"))
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.listen '%s': the dpdk "
				     "dataplane speaks udp://",
				     listen);
	if (u.port == 0)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.listen '%s': the dpdk "
				     "dataplane needs a port number",
				     listen);
	b->udp_port = u.port;
	if (!b->port_spec[0])
		return 0; /* memif only: the address is the link's */
	struct in_addr a;
	if (inet_pton(AF_INET, u.host, &a) != 1 || a.s_addr == 0 ||
	    a.s_addr == INADDR_BROADCAST)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.listen '%s': the dpdk "
				     "dataplane needs the port's own IPv4 "
				     "address (IPv6 is not spoken there yet)",
				     listen);
	b->ip = a.s_addr;
	return 0;
}

static int read_config(struct dp_backend *b, const struct slm_config *cfg,
		       struct slm_error *err)
{
	snprintf(b->port_spec, sizeof(b->port_spec), "%s",
		 slm_cfg_str(cfg, SLM_CFG_DPDK_PORT));
	snprintf(b->eal_args, sizeof(b->eal_args), "%s",
		 slm_cfg_str(cfg, SLM_CFG_DPDK_EAL_ARGS));
	const char *sock = slm_cfg_str(cfg, SLM_CFG_DPDK_MEMIF_SOCKET);
	if (strlen(sock) >= sizeof(b->memif_socket))
		return slm_error_set(err, SLM_ECONFIG,
				     "dpdk.memif_socket is longer than %zu "
				     "bytes",
				     sizeof(b->memif_socket) - 1);
	snprintf(b->memif_socket, sizeof(b->memif_socket), "%s", sock);
	b->memif_links = (unsigned)slm_cfg_int(cfg, SLM_CFG_DPDK_MEMIF_LINKS);
	b->rx_desc = (unsigned)slm_cfg_int(cfg, SLM_CFG_DPDK_RX_DESC);
	b->tx_desc = (unsigned)slm_cfg_int(cfg, SLM_CFG_DPDK_TX_DESC);
	b->mbufs = (unsigned)slm_cfg_int(cfg, SLM_CFG_DPDK_MBUFS);
	b->offloads = slm_cfg_bool(cfg, SLM_CFG_DPDK_OFFLOADS);
	b->rx_interrupts = slm_cfg_bool(cfg, SLM_CFG_DPDK_RX_INTERRUPTS);
	b->idle_sleep_us =
		(uint32_t)slm_cfg_int(cfg, SLM_CFG_DPDK_IDLE_SLEEP_US);
	b->link_wait_ms = (uint32_t)slm_cfg_int(cfg, SLM_CFG_DPDK_LINK_WAIT_MS);
	if (!b->port_spec[0] && !b->memif_socket[0])
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.kind = dpdk needs dpdk.port "
				     "(a NIC port) or dpdk.memif_socket "
				     "(local clients), or both");
	return 0;
}

/* Which links each lcore polls and sends on. */
static void assign_queues(struct dp_backend *b)
{
	for (unsigned i = 0; i < b->n; i++)
		for (unsigned k = 0; k < DPDK_MAX_LINKS; k++)
			b->lc[i].txq[k] = -1;
	for (unsigned k = 0; k < b->n_links; k++) {
		struct dpdk_link *link = &b->links[k];
		for (unsigned q = 0; q < link->n_queues; q++) {
			struct dpdk_lcore *l = &b->lc[link->queue_lcore[q]];
			l->rx[l->n_rx].link = link;
			l->rx[l->n_rx].queue = (uint16_t)q;
			l->n_rx++;
			l->txq[k] = (int)q;
		}
	}
}

static int dpdk_open(const struct dp_backend_config *cfg,
		     struct dp_backend **out, struct slm_error *err)
{
	*out = NULL;
	if (cfg->n_queues < 1 || cfg->n_queues > DPDK_MAX_LCORES)
		return slm_error_set(err, SLM_ECONFIG,
				     "dpdk: %u lcores, not in 1..%d",
				     cfg->n_queues, DPDK_MAX_LCORES);
	if (!cfg->config)
		return slm_error_set(err, SLM_EINVAL, "dpdk: no config");
	drop_counters_init();
	struct dp_backend *b = calloc(1, sizeof(*b));
	if (!b)
		return slm_error_set(err, SLM_ENOMEM, "dpdk backend");
	b->cfg = *cfg;
	b->memif_lock_fd = -1;
	pthread_mutex_init(&b->neigh_lock, NULL);
	b->n = cfg->n_queues;
	b->lc = aligned_alloc(64, b->n * sizeof(*b->lc));
	int rc = b->lc ? 0 : slm_error_set(err, SLM_ENOMEM, "lcores");
	if (rc) {
		dpdk_close(b);
		return rc;
	}
	memset(b->lc, 0, b->n * sizeof(*b->lc));
	for (unsigned i = 0; i < b->n; i++) {
		struct dpdk_lcore *l = &b->lc[i];
		l->be = b;
		l->index = i;
		l->efd = -1;
		l->cpu = -1;
		l->node = 0;
		sem_init(&l->setup_done, 0, 0);
		const struct slm_plan *plan = cfg->plan;
		if (plan && (int)i < plan->n_dataplane) {
			l->cpu = plan->dataplane_cpus[i];
			l->node = plan->threads[i].node;
		}
	}
	rc = read_config(b, cfg->config, err);
	if (!rc)
		rc = parse_listen(b, cfg->listen, err);
	if (!rc)
		rc = dp_neigh_create(DPDK_NEIGH_ENTRIES, &b->shared_neigh);
	for (unsigned i = 0; !rc && i < b->n; i++) {
		struct dpdk_lcore *l = &b->lc[i];
		rc = dp_neigh_create(DPDK_NEIGH_ENTRIES, &l->neigh);
		l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (!rc && l->efd < 0)
			rc = slm_error_errno(err, SLM_ESYS, errno, "eventfd");
	}
	if (rc == SLM_ENOMEM && err && !err->code)
		slm_error_set(err, rc, "dpdk: out of memory");
	if (!rc) {
		struct dpdk_eal_params ep = {
			.port = b->port_spec,
			.eal_args = b->eal_args,
			.hugepages = slm_cfg_enum(cfg->config,
						  SLM_CFG_DPDK_HUGEPAGES),
			.memory =
				slm_cfg_size(cfg->config, SLM_CFG_DPDK_MEMORY),
		};
		rc = dpdk_eal_start(&ep, b->eal_mode, sizeof(b->eal_mode), err);
		b->eal_ok = rc == 0;
	}
	if (!rc)
		rc = dpdk_links_open(b, err);
	if (rc) {
		dpdk_close(b);
		return rc;
	}
	assign_queues(b);
	*out = b;
	return 0;
}

static void dpdk_queue_io(struct dp_backend *b, unsigned i, struct dp_io *io)
{
	SLM_ASSERT(i < b->n);
	io->ctx = &b->lc[i];
	io->send = dq_send;
	io->wake = dq_wake;
}

static void dpdk_stop(struct dp_backend *b)
{
	for (unsigned i = 0; i < b->n; i++) {
		struct dpdk_lcore *l = &b->lc[i];
		if (!l->started)
			continue;
		atomic_store_explicit(&l->stop, true, memory_order_release);
		dq_wake(l);
	}
	for (unsigned i = 0; i < b->n; i++) {
		struct dpdk_lcore *l = &b->lc[i];
		if (!l->started)
			continue;
		if (l->pinned)
			slm_thread_join(l->pinned);
		else
			pthread_join(l->thread, NULL);
		l->pinned = NULL;
		l->started = false;
		struct dp_counters c;
		dp_counters_read(&c, l->c);
		SLM_INFO("dpdk",
			 "lcore %u (CPU %d): rx %llu frames, tx %llu, slept "
			 "%llu "
			 "times (%s)",
			 i, l->cpu, (unsigned long long)c.rx_frames,
			 (unsigned long long)c.tx_frames,
			 (unsigned long long)c.sleeps,
			 l->intr_ok ? "RX interrupts" : "naps");
	}
}

static int dpdk_start(struct dp_backend *b, struct dp_session *const *sessions,
		      struct slm_error *err)
{
	const struct slm_plan *plan = b->cfg.plan;
	bool pin =
		plan && b->cfg.topo && slm_topo_info(b->cfg.topo)->this_system;
	for (unsigned i = 0; i < b->n; i++) {
		struct dpdk_lcore *l = &b->lc[i];
		l->sess = sessions[i];
		l->c = dp_session_counters(sessions[i]);
		atomic_store(&l->stop, false);
		int rc;
		if (pin && (int)i < plan->n_dataplane) {
			rc = slm_thread_start_planned(
				b->cfg.topo, &plan->threads[i], lcore_main, l,
				&l->pinned, err);
		} else {
			rc = pthread_create(&l->thread, NULL, lcore_main, l);
			if (rc)
				rc = slm_error_errno(err, SLM_ESYS, rc,
						     "dataplane lcore %u", i);
			else
				pthread_setname_np(l->thread, "slm-dp");
		}
		if (rc) {
			dpdk_stop(b);
			return rc;
		}
		while (sem_wait(&l->setup_done) && errno == EINTR)
			;
		if (l->setup_rc) {
			if (l->pinned)
				slm_thread_join(l->pinned);
			else
				pthread_join(l->thread, NULL);
			l->pinned = NULL;
			dpdk_stop(b);
			return slm_error_set(err, l->setup_rc,
					     "dataplane lcore %u: %s", i,
					     l->setup_msg);
		}
		l->started = true;
		SLM_DEBUG("dpdk",
			  "lcore %u (EAL lcore %u, CPU %d): %u queue%s, %s "
			  "when idle",
			  i, l->lcore_id, l->cpu, l->n_rx,
			  l->n_rx == 1 ? "" : "s",
			  l->intr_ok ? "RX interrupts" : "naps");
	}
	return 0;
}

static void dpdk_local_url(const struct dp_backend *b, char *buf, size_t size)
{
	if (b->nic) {
		char ip[16];
		dp_ip4_format(b->ip, ip, sizeof(ip));
		snprintf(buf, size, "udp://%s:%u", ip, b->udp_port);
	} else {
		snprintf(buf, size, "memif://%s", b->memif_socket);
	}
}

static void dpdk_describe(const struct dp_backend *b, char *buf, size_t size)
{
	unsigned intr = 0;
	for (unsigned i = 0; i < b->n; i++)
		intr += b->lc[i].intr_ok;
	char nic[200] = "", memif[160] = "";
	if (b->nic)
		snprintf(nic, sizeof(nic), "port %s (%s)%s", b->nic->name,
			 b->nic->driver, b->memif_socket[0] ? ", " : "");
	if (b->memif_socket[0])
		snprintf(memif, sizeof(memif), "memif %s x%u", b->memif_socket,
			 b->memif_links);
	snprintf(buf, size, "%s%s; %s; idle: %s", nic, memif, b->eal_mode,
		 intr == b->n ? "RX interrupts"
		 : intr	      ? "RX interrupts on some lcores, naps"
			      : "naps");
}

const struct dp_backend_ops dp_dpdk_ops = {
	.name = "dpdk",
	.open = dpdk_open,
	.queue_io = dpdk_queue_io,
	.start = dpdk_start,
	.stop = dpdk_stop,
	.close = dpdk_close,
	.local_url = dpdk_local_url,
	.describe = dpdk_describe,
	.stats_json = dpdk_stats_json,
};
