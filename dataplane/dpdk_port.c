/*
 * dpdk_port.c: the DPDK backend's links and packet memory: mbuf pools per
 * NUMA node, the NIC port (RSS, offloads, RX interrupts, the link wait)
 * and the memif links for local clients.  See dpdk.h.
 */
#include "dataplane/dpdk_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <rte_bus_vdev.h>
#include <rte_errno.h>

#include "common/clock.h"
#include "common/log.h"

#define POOL_CACHE 256
#define MEMIF_RING_LOG2 10u /* 1024 slots a direction */

/* ---- pools ------------------------------------------------------------- */

static unsigned pool_size(const struct dp_backend *b)
{
	if (b->mbufs)
		return b->mbufs;
	/* What every queue can hold at once, plus the lcores' caches and
	 * bursts in flight, with room to spare; 2^k - 1 suits the ring. */
	uint64_t need = 1024;
	if (b->port_spec[0])
		need += (uint64_t)b->n * (b->rx_desc + b->tx_desc);
	if (b->memif_socket[0])
		need += (uint64_t)b->memif_links * 4 * DPDK_BURST;
	need += (uint64_t)b->n * (POOL_CACHE + 4 * DPDK_BURST);
	unsigned n = 1;
	while (n - 1 < need && n < (1u << 22))
		n <<= 1;
	return n - 1;
}

static int pool_for(struct dp_backend *b, int node, struct rte_mempool **out,
		    struct slm_error *err)
{
	unsigned slot = node < 0 ? 0 : (unsigned)node;
	if (slot >= SLM_ARRAY_LEN(b->pools))
		slot = 0;
	if (!b->pools[slot]) {
		char name[RTE_MEMPOOL_NAMESIZE];
		snprintf(name, sizeof(name), "slm_mbuf_%u", slot);
		unsigned n = pool_size(b);
		b->pools[slot] = rte_pktmbuf_pool_create(
			name, n, POOL_CACHE, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
			node < 0 ? SOCKET_ID_ANY : node);
		if (!b->pools[slot])
			return slm_error_set(
				err, SLM_ENOMEM,
				"mbuf pool of %u buffers on node %d: %s "
				"(dpdk.mbufs, dpdk.memory)",
				n, node, rte_strerror(rte_errno));
		SLM_DEBUG("dpdk", "mbuf pool %s: %u buffers", name, n);
	}
	*out = b->pools[slot];
	return 0;
}

/* ---- link state -------------------------------------------------------- */

bool dpdk_link_poll(struct dpdk_link *k)
{
	struct rte_eth_link l;
	memset(&l, 0, sizeof(l));
	if (rte_eth_link_get_nowait(k->port, &l) != 0)
		return false;
	int up = l.link_status == RTE_ETH_LINK_UP;
	int was = atomic_exchange(&k->up, up);
	if (was == up)
		return false;
	if (k->kind == DPDK_LINK_MEMIF) {
		SLM_DEBUG("dpdk", "memif link %u: client %s", k->index,
			  up ? "connected" : "gone");
		return up;
	}
	if (up)
		SLM_INFO("dpdk", "port %s (%s): link up, %u Mbps %s-duplex",
			 k->name, k->driver, l.link_speed,
			 l.link_duplex ? "full" : "half");
	else
		SLM_WARN("dpdk", "port %s (%s): link down", k->name, k->driver);
	return up;
}

void dpdk_link_announce(struct dp_backend *b, struct dpdk_link *k, uint16_t q,
			struct rte_mempool *pool)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(pool);
	if (!m)
		return;
	uint8_t *d = (uint8_t *)rte_pktmbuf_append(m, DP_ETH_HLEN + DP_ARP_LEN);
	if (!d) {
		rte_pktmbuf_free(m);
		return;
	}
	/* Gratuitous: a request for our own address, to everyone. */
	dp_frame_arp(d, DP_ARP_REQUEST, &k->host.mac, k->host.ip,
		     &dp_mac_broadcast, k->host.ip);
	if (rte_eth_tx_burst(k->port, q, &m, 1) != 1)
		rte_pktmbuf_free(m);
	(void)b;
}

/* ---- the NIC port ------------------------------------------------------ */

static int find_port(struct dp_backend *b, struct dpdk_link *k,
		     struct slm_error *err)
{
	const char *spec = b->port_spec;
	if (dpdk_is_pci(spec)) {
		/* EAL probed only this device (--allow). */
		uint16_t p;
		RTE_ETH_FOREACH_DEV(p)
		{
			k->port = p;
			snprintf(k->name, sizeof(k->name), "%s", spec);
			return 0;
		}
		return slm_error_set(err, SLM_ENOTFOUND,
				     "dpdk.port %s: no DPDK port on that PCI "
				     "device (is it bound to vfio-pci? "
				     "docs/operations.md)",
				     spec);
	}
	char name[128];
	const char *comma = strchr(spec, ',');
	size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
	if (n == 0 || n >= sizeof(name))
		return slm_error_set(err, SLM_ECONFIG,
				     "dpdk.port '%s': expected a PCI address "
				     "or a vdev (net_af_xdp0,iface=eth1)",
				     spec);
	memcpy(name, spec, n);
	name[n] = '\0';
	int rc = rte_vdev_init(name, comma ? comma + 1 : "");
	if (rc < 0)
		return slm_error_set(err, SLM_ECONFIG,
				     "dpdk.port '%s': the device did not "
				     "start (%s): see the dpdk log lines "
				     "above",
				     spec, rte_strerror(-rc));
	k->vdev = true;
	snprintf(k->name, sizeof(k->name), "%s", name);
	if (rte_eth_dev_get_port_by_name(name, &k->port) != 0)
		return slm_error_set(err, SLM_ENOTFOUND,
				     "dpdk.port '%s': no ethernet port named "
				     "%s",
				     spec, name);
	return 0;
}

static const char *queue_hint(const char *driver)
{
	if (strstr(driver, "af_packet"))
		return " (net_af_packet: add qpairs=N to dpdk.port)";
	if (strstr(driver, "af_xdp"))
		return " (net_af_xdp: add queue_count=N to dpdk.port)";
	return "";
}

static int configure(struct dp_backend *b, struct dpdk_link *k,
		     const struct rte_eth_dev_info *info, unsigned nq,
		     struct slm_error *err)
{
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	if (nq > 1) {
		uint64_t hf = (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP) &
			      info->flow_type_rss_offloads;
		if (hf) {
			conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
			conf.rx_adv_conf.rss_conf.rss_hf = hf;
			k->rss = true;
		} else {
			SLM_WARN("dpdk",
				 "port %s (%s) has no RSS: %u queues, but the "
				 "driver decides which one a flow reaches",
				 k->name, k->driver, nq);
		}
	}
	if (b->offloads) {
		uint64_t rx = info->rx_offload_capa, tx = info->tx_offload_capa;
		k->rx_ip_csum = rx & RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
		k->rx_l4_csum = rx & RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
		k->tx_ip_csum = tx & RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
		k->tx_udp_csum = tx & RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
		if (k->rx_ip_csum)
			conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
		if (k->rx_l4_csum)
			conf.rxmode.offloads |= RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
		if (k->tx_ip_csum)
			conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
		if (k->tx_udp_csum)
			conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
	}
	int rc = -1;
	if (b->rx_interrupts) {
		conf.intr_conf.rxq = 1;
		rc = rte_eth_dev_configure(k->port, (uint16_t)nq, (uint16_t)nq,
					   &conf);
		k->rx_intr = rc == 0;
	}
	if (rc != 0) {
		conf.intr_conf.rxq = 0;
		rc = rte_eth_dev_configure(k->port, (uint16_t)nq, (uint16_t)nq,
					   &conf);
	}
	if (rc != 0)
		return slm_error_set(err, SLM_ESYS,
				     "port %s (%s): configure %u queues: %s",
				     k->name, k->driver, nq, rte_strerror(-rc));
	return 0;
}

static int queues_setup(struct dp_backend *b, struct dpdk_link *k,
			const struct rte_eth_dev_info *info, uint16_t nrx,
			uint16_t ntx, struct slm_error *err)
{
	for (unsigned q = 0; q < k->n_queues; q++) {
		struct dpdk_lcore *l = &b->lc[k->queue_lcore[q]];
		struct rte_mempool *pool;
		int rc = pool_for(b, l->node, &pool, err);
		if (rc)
			return rc;
		l->pool = pool;
		unsigned sock = l->node < 0 ? (unsigned)SOCKET_ID_ANY
					    : (unsigned)l->node;
		struct rte_eth_rxconf rxc = info->default_rxconf;
		rxc.offloads = 0;
		if (k->rx_ip_csum)
			rxc.offloads |= RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
		if (k->rx_l4_csum)
			rxc.offloads |= RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
		rc = rte_eth_rx_queue_setup(k->port, (uint16_t)q, nrx, sock,
					    &rxc, pool);
		if (rc < 0)
			return slm_error_set(err, SLM_ESYS,
					     "port %s: RX queue %u: %s",
					     k->name, q, rte_strerror(-rc));
		struct rte_eth_txconf txc = info->default_txconf;
		txc.offloads = 0;
		if (k->tx_ip_csum)
			txc.offloads |= RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
		if (k->tx_udp_csum)
			txc.offloads |= RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
		rc = rte_eth_tx_queue_setup(k->port, (uint16_t)q, ntx, sock,
					    &txc);
		if (rc < 0)
			return slm_error_set(err, SLM_ESYS,
					     "port %s: TX queue %u: %s",
					     k->name, q, rte_strerror(-rc));
	}
	return 0;
}

static void wait_link(struct dp_backend *b, struct dpdk_link *k)
{
	uint64_t t0 = slm_now_ns();
	uint64_t limit = (uint64_t)b->link_wait_ms * 1000000;
	for (;;) {
		struct rte_eth_link l;
		memset(&l, 0, sizeof(l));
		if (rte_eth_link_get_nowait(k->port, &l) == 0 &&
		    l.link_status == RTE_ETH_LINK_UP) {
			atomic_store(&k->up, 1);
			SLM_INFO("dpdk",
				 "port %s (%s): link up after %llu ms, %u Mbps",
				 k->name, k->driver,
				 (unsigned long long)((slm_now_ns() - t0) /
						      1000000),
				 l.link_speed);
			return;
		}
		if (slm_now_ns() - t0 >= limit)
			break;
		slm_sleep_ns(10 * 1000000);
	}
	atomic_store(&k->up, 0);
	SLM_WARN("dpdk",
		 "port %s (%s): the link is still down after %u ms (no "
		 "carrier: check the cable and the switch port, or that the "
		 "other end of a veth is up); serving anyway, and announcing "
		 "the address when it comes up",
		 k->name, k->driver, b->link_wait_ms);
}

static int nic_open(struct dp_backend *b, struct slm_error *err)
{
	struct dpdk_link *k = &b->links[b->n_links];
	k->index = (uint16_t)b->n_links;
	k->kind = DPDK_LINK_NIC;
	atomic_store(&k->up, -1);
	int rc = find_port(b, k, err);
	b->n_links++;
	if (rc)
		return rc;
	b->nic = k;
	struct rte_eth_dev_info info;
	rc = rte_eth_dev_info_get(k->port, &info);
	if (rc)
		return slm_error_set(err, SLM_ESYS, "port %s: device info: %s",
				     k->name, rte_strerror(-rc));
	snprintf(k->driver, sizeof(k->driver), "%s",
		 info.driver_name ? info.driver_name : "?");
	k->socket = rte_eth_dev_socket_id(k->port);
	unsigned nq = b->n;
	if (info.max_rx_queues < nq || info.max_tx_queues < nq)
		return slm_error_set(err, SLM_ECONFIG,
				     "port %s (%s) has %u RX / %u TX queues; "
				     "the dataplane has %u lcores "
				     "(numa.dataplane_cores)%s",
				     k->name, k->driver, info.max_rx_queues,
				     info.max_tx_queues, nq,
				     queue_hint(k->driver));
	k->n_queues = nq;
	for (unsigned q = 0; q < nq; q++) {
		k->queue_lcore[q] = (uint16_t)q;
		int node = b->lc[q].node;
		if (k->socket >= 0 && node >= 0 && node != k->socket)
			SLM_WARN("dpdk",
				 "port %s is on NUMA node %d but lcore %u runs "
				 "on node %d: set numa.dataplane_node = %d",
				 k->name, k->socket, q, node, k->socket);
	}
	rc = configure(b, k, &info, nq, err);
	if (rc)
		return rc;
	k->port_ok = true;
	uint16_t nrx = (uint16_t)b->rx_desc, ntx = (uint16_t)b->tx_desc;
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(k->port, &nrx, &ntx);
	if (rc)
		return slm_error_set(err, SLM_ESYS, "port %s: descriptors: %s",
				     k->name, rte_strerror(-rc));
	rc = queues_setup(b, k, &info, nrx, ntx, err);
	if (rc)
		return rc;
	struct rte_ether_addr mac;
	rc = rte_eth_macaddr_get(k->port, &mac);
	if (rc)
		return slm_error_set(err, SLM_ESYS, "port %s: MAC: %s", k->name,
				     rte_strerror(-rc));
	memcpy(k->host.mac.b, mac.addr_bytes, DP_ETH_ALEN);
	k->host.ip = b->ip;
	k->host.port = b->udp_port;
	rc = rte_eth_dev_start(k->port);
	if (rc)
		return slm_error_set(err, SLM_ESYS, "port %s: start: %s",
				     k->name, rte_strerror(-rc));
	k->started = true;
	/* A driver without RX interrupts takes intr_conf.rxq all the same:
	 * ask for queue 0's event descriptor (quietly: ethdev logs an error
	 * when there is none). */
	if (k->rx_intr) {
		int level = rte_log_get_level(rte_eth_dev_logtype);
		rte_log_set_level(rte_eth_dev_logtype, RTE_LOG_EMERG);
		k->rx_intr = rte_eth_dev_rx_intr_ctl_q_get_fd(k->port, 0) >= 0;
		rte_log_set_level(rte_eth_dev_logtype, (uint32_t)level);
	}
	char macs[24], ips[16];
	dp_mac_format(&k->host.mac, macs, sizeof(macs));
	dp_ip4_format(k->host.ip, ips, sizeof(ips));
	SLM_INFO("dpdk",
		 "port %s (%s, node %d): %s, %s:%u, %u queue%s%s, "
		 "checksums: rx %s, tx %s%s",
		 k->name, k->driver, k->socket, macs, ips, k->host.port, nq,
		 nq == 1 ? "" : "s", k->rss ? " with RSS" : "",
		 k->rx_ip_csum && k->rx_l4_csum ? "offloaded" : "software",
		 k->tx_ip_csum && k->tx_udp_csum ? "offloaded" : "software",
		 k->rx_intr ? ", RX interrupts" : ", no RX interrupts");
	wait_link(b, k);
	if (atomic_load(&k->up) == 1)
		dpdk_link_announce(b, k, 0, b->lc[0].pool);
	return 0;
}

/* ---- memif links ------------------------------------------------------- */

/* A socket file left by a process that is gone is removed; one that
 * answers is another server's. */
static int memif_socket_check(const char *path, struct slm_error *err)
{
	struct stat st;
	if (path[0] != '/')
		return slm_error_set(err, SLM_ECONFIG,
				     "dpdk.memif_socket '%s': an absolute "
				     "path, please",
				     path);
	if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path) -
				    sizeof(DP_MEMIF_LOCK_SUFFIX))
		return slm_error_set(err, SLM_ECONFIG,
				     "dpdk.memif_socket '%s' is too long",
				     path);
	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return slm_error_set(err, SLM_ECONFIG,
				     "dpdk.memif_socket %s exists and is not "
				     "a socket",
				     path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return slm_error_errno(err, SLM_ESYS, errno, "socket");
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int c = connect(fd, (struct sockaddr *)&a, sizeof(a));
	int e = errno;
	close(fd);
	if (c == 0)
		return slm_error_set(err, SLM_EBUSY,
				     "dpdk.memif_socket %s: another process "
				     "serves it",
				     path);
	if (e != ECONNREFUSED)
		return slm_error_errno(err, SLM_ESYS, e, "%s", path);
	SLM_INFO("dpdk", "removing the stale memif socket %s", path);
	unlink(path);
	return 0;
}

static int memif_open_one(struct dp_backend *b, unsigned id,
			  struct slm_error *err)
{
	struct dpdk_link *k = &b->links[b->n_links];
	k->index = (uint16_t)b->n_links;
	k->kind = DPDK_LINK_MEMIF;
	atomic_store(&k->up, 0);
	snprintf(k->name, sizeof(k->name), "net_memif_slm%u", id);
	char args[300];
	snprintf(args, sizeof(args),
		 "role=server,socket=%s,socket-abstract=no,id=%u,rsize=%u",
		 b->memif_socket, id, MEMIF_RING_LOG2);
	int rc = rte_vdev_init(k->name, args);
	if (rc < 0)
		return slm_error_set(err, SLM_ECONFIG,
				     "memif link %u on %s: %s (see the dpdk "
				     "log lines above)",
				     id, b->memif_socket, rte_strerror(-rc));
	b->n_links++;
	k->vdev = true;
	b->memif_socket_made = true;
	if (rte_eth_dev_get_port_by_name(k->name, &k->port) != 0)
		return slm_error_set(err, SLM_ENOTFOUND, "no port %s", k->name);
	snprintf(k->driver, sizeof(k->driver), "net_memif");
	k->socket = -1;
	k->n_queues = 1;
	k->queue_lcore[0] = (uint16_t)(id % b->n);
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	rc = rte_eth_dev_configure(k->port, 1, 1, &conf);
	if (rc)
		return slm_error_set(err, SLM_ESYS, "%s: configure: %s",
				     k->name, rte_strerror(-rc));
	k->port_ok = true;
	struct rte_eth_dev_info info;
	rc = rte_eth_dev_info_get(k->port, &info);
	if (rc)
		return slm_error_set(err, SLM_ESYS, "%s: info: %s", k->name,
				     rte_strerror(-rc));
	rc = queues_setup(b, k, &info, 1u << MEMIF_RING_LOG2,
			  1u << MEMIF_RING_LOG2, err);
	if (rc)
		return rc;
	struct rte_ether_addr mac;
	rte_eth_macaddr_get(k->port, &mac);
	memcpy(k->host.mac.b, mac.addr_bytes, DP_ETH_ALEN);
	k->host.ip = htonl(DP_MEMIF_SERVER_IP4);
	k->host.port = b->udp_port;
	/* Memory to memory: nothing to corrupt, and 0 means "no checksum"
	 * in UDP over IPv4. */
	k->udp_csum_none = true;
	rc = rte_eth_dev_start(k->port);
	if (rc)
		return slm_error_set(err, SLM_ESYS, "%s: start: %s", k->name,
				     rte_strerror(-rc));
	k->started = true;
	return 0;
}

static int memif_open(struct dp_backend *b, struct slm_error *err)
{
	int rc = memif_socket_check(b->memif_socket, err);
	if (rc)
		return rc;
	for (unsigned id = 0; id < b->memif_links; id++) {
		rc = memif_open_one(b, id, err);
		if (rc)
			return rc;
	}
	/* Who may connect is the directory's business (DPDK's memif wants
	 * clients able to write it anyway); the socket itself is open. */
	if (chmod(b->memif_socket, 0666) != 0)
		SLM_WARN("dpdk", "chmod %s: %s", b->memif_socket,
			 strerror(errno));
	snprintf(b->memif_lock_path, sizeof(b->memif_lock_path), "%s%s",
		 b->memif_socket, DP_MEMIF_LOCK_SUFFIX);
	b->memif_lock_fd =
		open(b->memif_lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	if (b->memif_lock_fd < 0 || fchmod(b->memif_lock_fd, 0666) != 0 ||
	    ftruncate(b->memif_lock_fd, (off_t)b->memif_links) != 0)
		return slm_error_errno(err, SLM_ESYS, errno, "%s",
				       b->memif_lock_path);
	SLM_INFO("dpdk",
		 "memif: %u link%s on %s for local clients (memif://%s)",
		 b->memif_links, b->memif_links == 1 ? "" : "s",
		 b->memif_socket, b->memif_socket);
	return 0;
}

int dpdk_links_open(struct dp_backend *b, struct slm_error *err)
{
	b->links = calloc(DPDK_MAX_LINKS, sizeof(*b->links));
	if (!b->links)
		return slm_error_set(err, SLM_ENOMEM, "links");
	b->memif_lock_fd = -1;
	/* Every lcore gets its node's pool, links or not. */
	for (unsigned i = 0; i < b->n; i++) {
		int rc = pool_for(b, b->lc[i].node, &b->lc[i].pool, err);
		if (rc)
			return rc;
	}
	if (b->port_spec[0]) {
		int rc = nic_open(b, err);
		if (rc)
			return rc;
	}
	if (b->memif_socket[0]) {
		int rc = memif_open(b, err);
		if (rc)
			return rc;
	}
	if (b->n_links == 0)
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.kind = dpdk needs dpdk.port "
				     "or dpdk.memif_socket");
	return 0;
}

void dpdk_links_close(struct dp_backend *b)
{
	for (unsigned i = 0; b->links && i < b->n_links; i++) {
		struct dpdk_link *k = &b->links[i];
		if (k->started)
			rte_eth_dev_stop(k->port);
		if (k->port_ok)
			rte_eth_dev_close(k->port);
		if (k->vdev)
			rte_vdev_uninit(k->name);
		k->started = k->port_ok = k->vdev = false;
	}
	if (b->memif_lock_fd >= 0) {
		unlink(b->memif_lock_path);
		close(b->memif_lock_fd);
		b->memif_lock_fd = -1;
	}
	if (b->memif_socket_made) {
		/* The PMD removes it with its last link; make sure. */
		unlink(b->memif_socket);
		b->memif_socket_made = false;
	}
	for (size_t i = 0; i < SLM_ARRAY_LEN(b->pools); i++) {
		rte_mempool_free(b->pools[i]);
		b->pools[i] = NULL;
	}
	free(b->links);
	b->links = NULL;
	b->n_links = 0;
	b->nic = NULL;
}
