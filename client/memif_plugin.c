/*
 * memif_plugin.c: libslmclient's memif:// transport, a shared object of
 * its own (libslmclient-memif.so) with DPDK linked in statically.
 *
 *   memif:///PATH[?port=N][&id=K]
 *
 * PATH is slmd's dpdk.memif_socket; N its UDP port (dataplane.listen's,
 * default 7070); K a memif interface id (default: the first free one).
 * The connection is a memif interface in client role: two rings in
 * shared memory with slmd, no system call on the way.  Over it goes the
 * same protocol in the same frames as on a NIC (Ethernet, IPv4, UDP;
 * dataplane/pkt.h), between 169.254.77.2 (us) and 169.254.77.1 (slmd),
 * with the UDP checksum left out (memory to memory).  Open resolves
 * slmd's MAC with ARP.
 *
 * Which interface: slmd creates dpdk.memif_links of them and a lock file
 * "<PATH>.lock" as many bytes long; a client takes an open-file-
 * description lock on byte k (F_OFD_SETLK) to claim interface k, and the
 * kernel releases it when the client closes or dies.  Without a lock
 * file (another memif server), the id is the URL's, 0 by default.
 *
 * DPDK in a client process: EAL starts once per process, the first time
 * a memif URL is opened, as a small instance of its own: no huge pages
 * (-m 64), no PCI, no shared config, no telemetry, a file prefix with
 * the process id (its runtime folder is removed at once), its log kept
 * in a buffer for error messages (never printed), and the calling
 * thread's CPU affinity left as it was.  It stays up until the process
 * exits (EAL cannot start twice).  Each connection adds a memif vdev and
 * a 1023-mbuf pool.  Start-up costs about 0.1-0.2 s (EAL measures the
 * TSC for 100 ms); a round trip then costs about a microsecond.
 *
 * Waiting: memif has no interrupts in this DPDK, so a waiting call polls
 * the ring: busily for the first 200 us, then in naps that grow to
 * 500 us.  slm_client_fd returns -1 for these connections.
 *
 * Threads: EAL start and vdev creation are serialised here; a connection
 * is used by one thread at a time (the library's contract).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_log.h>
#include <rte_mbuf.h>

#include "client/transport.h"
#include "dataplane/dpdk.h"
#include "dataplane/pkt.h"
#include "slm/client.h"
#include "slm/protocol.h"

#define POOL_MBUFS 1023
#define RING_LOG2 10u
#define BURST 32
#define LINK_WAIT_NS (2000ull * 1000000)
#define ARP_WAIT_NS (1000ull * 1000000)
#define ARP_RETRY_NS (50ull * 1000000)
#define SPIN_NS (200ull * 1000)
#define NAP_MIN_NS (20ull * 1000)
#define NAP_MAX_NS (500ull * 1000)

struct slmc_conn {
	uint16_t port;
	bool port_ok, started, vdev;
	char name[64];
	struct rte_mempool *pool;
	int lock_fd;
	unsigned id;
	struct dp_frame_host me; /* our MAC, 169.254.77.2, our UDP port */
	struct dp_mac server_mac;
	uint32_t server_ip;
	uint16_t server_port;
	uint16_t ip_id;
	/* received, not yet taken */
	struct rte_mbuf *rx[BURST];
	unsigned rx_head, rx_n;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int eal_state; /* 0 not yet, 1 up, -1 failed */
static char eal_error[256];
static unsigned conn_seq;

/* ---- EAL's log: kept, never printed ------------------------------------ */

static char log_last[256];

static ssize_t log_write(void *cookie, const char *buf, size_t size)
{
	(void)cookie;
	if (rte_log_cur_msg_loglevel() <= (int)RTE_LOG_ERR) {
		size_t n = SLM_MIN(size, sizeof(log_last) - 1);
		memcpy(log_last, buf, n);
		while (n && (log_last[n - 1] == '\n' || log_last[n - 1] == ' '))
			n--;
		log_last[n] = '\0';
	}
	return (ssize_t)size;
}

static int eal_start(char *msg, size_t size)
{
	if (eal_state == 1)
		return 0;
	if (eal_state < 0) {
		snprintf(msg, size, "%s", eal_error);
		return SLM_CLIENT_ESYS;
	}
	cookie_io_functions_t io = {.write = log_write};
	FILE *f = fopencookie(NULL, "w", io);
	if (f) {
		setvbuf(f, NULL, _IOFBF, 4096);
		rte_openlog_stream(f);
	}
	char prefix[64], lcores[1024] = "--lcores=0@(";
	snprintf(prefix, sizeof(prefix), "--file-prefix=slmc-%d",
		 (int)getpid());
	cpu_set_t before;
	bool have = sched_getaffinity(0, sizeof(before), &before) == 0;
	size_t len = strlen(lcores);
	for (int cpu = 0, first = 1; have && cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, &before) || len + 8 >= sizeof(lcores))
			continue;
		len += (size_t)snprintf(lcores + len, sizeof(lcores) - len,
					"%s%d", first ? "" : ",", cpu);
		first = 0;
	}
	snprintf(lcores + len, sizeof(lcores) - len, ")");
	char *argv[] = {"slmclient",
			prefix,
			"--no-huge",
			"-m64",
			"--no-pci",
			"--no-shconf",
			"--no-telemetry",
			"--log-level=4",
			have ? lcores : "-l0",
			NULL};
	int argc = (int)(sizeof(argv) / sizeof(argv[0])) - 1;
	int rc = rte_eal_init(argc, argv);
	int e = rte_errno;
	if (have)
		sched_setaffinity(0, sizeof(before), &before);
	if (rc < 0) {
		eal_state = -1;
		snprintf(eal_error, sizeof(eal_error),
			 "DPDK EAL did not start in this process: %s%s%s",
			 rte_strerror(e), log_last[0] ? ": " : "", log_last);
		snprintf(msg, size, "%s", eal_error);
		return SLM_CLIENT_ESYS;
	}
	eal_state = 1;
	const char *dir = rte_eal_get_runtime_dir();
	if (dir && dir[0])
		rmdir(dir);
	return 0;
}

/* ---- the URL ----------------------------------------------------------- */

static int parse_url(const char *url, char *path, size_t path_size,
		     unsigned *port, int *id, char *msg, size_t size)
{
	const char *p = url + strlen("memif://");
	const char *q = strchr(p, '?');
	size_t n = q ? (size_t)(q - p) : strlen(p);
	*port = SLM_PROTO_DEFAULT_PORT;
	*id = -1;
	if (n == 0 || p[0] != '/' || n >= path_size) {
		snprintf(msg, size,
			 "'%s': expected memif:///PATH/TO/SOCKET[?port=N]",
			 url);
		return SLM_CLIENT_EINVAL;
	}
	memcpy(path, p, n);
	path[n] = '\0';
	/* Options: "?name=value" then "&name=value"... */
	const char *o = q ? q + 1 : NULL;
	while (o) {
		bool is_port = !strncmp(o, "port=", 5);
		bool is_id = !strncmp(o, "id=", 3);
		if (!is_port && !is_id)
			goto bad;
		const char *num = o + (is_port ? 5 : 3);
		char *end = NULL;
		unsigned long v = strtoul(num, &end, 10);
		if (end == num || v > 65535 || (is_port && v == 0) ||
		    (*end && *end != '&'))
			goto bad;
		if (is_port)
			*port = (unsigned)v;
		else
			*id = (int)v;
		o = *end ? end + 1 : NULL;
	}
	return 0;
bad:
	snprintf(msg, size,
		 "'%s': the options are port=N and id=K (memif:///PATH?port=N"
		 "&id=K)",
		 url);
	return SLM_CLIENT_EINVAL;
}

/* Claim a memif interface id through slmd's lock file. */
static int claim_id(struct slmc_conn *c, const char *path, int want, char *msg,
		    size_t size)
{
	char lp[4200];
	snprintf(lp, sizeof(lp), "%s%s", path, DP_MEMIF_LOCK_SUFFIX);
	c->lock_fd = open(lp, O_RDWR | O_CLOEXEC);
	if (c->lock_fd < 0) {
		/* Not slmd's, or an older one: the URL's id. */
		c->id = want < 0 ? 0 : (unsigned)want;
		return 0;
	}
	struct stat st;
	unsigned links = 0;
	if (fstat(c->lock_fd, &st) == 0 && st.st_size > 0)
		links = (unsigned)SLM_MIN(st.st_size, 65536);
	for (unsigned k = 0; k < links; k++) {
		if (want >= 0 && (unsigned)want != k)
			continue;
		struct flock fl = {.l_type = F_WRLCK,
				   .l_whence = SEEK_SET,
				   .l_start = (off_t)k,
				   .l_len = 1};
		if (fcntl(c->lock_fd, F_OFD_SETLK, &fl) == 0) {
			c->id = k;
			return 0;
		}
	}
	if (want >= 0 && (unsigned)want >= links)
		snprintf(msg, size, "%s has %u memif links; no id %d", path,
			 links, want);
	else if (want >= 0)
		snprintf(msg, size, "memif link %d of %s is in use", want,
			 path);
	else
		snprintf(msg, size,
			 "all %u memif links of %s are in use "
			 "(slmd's dpdk.memif_links)",
			 links, path);
	return SLM_CLIENT_EOVERLOAD;
}

/* ---- frames ------------------------------------------------------------ */

static int send_frame(struct slmc_conn *c, struct rte_mbuf *m)
{
	for (int tries = 0; tries < 64; tries++)
		if (rte_eth_tx_burst(c->port, 0, &m, 1) == 1)
			return 0;
	rte_pktmbuf_free(m);
	return SLM_CLIENT_EOVERLOAD;
}

static int send_arp(struct slmc_conn *c, unsigned op,
		    const struct dp_mac *target_mac, uint32_t target_ip)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(c->pool);
	if (!m)
		return SLM_CLIENT_ENOMEM;
	uint8_t *d = (uint8_t *)rte_pktmbuf_append(m, DP_ETH_HLEN + DP_ARP_LEN);
	dp_frame_arp(d, op, &c->me.mac, c->me.ip, target_mac, target_ip);
	return send_frame(c, m);
}

/*
 * Look at one received frame: a datagram for us is copied to buf (its
 * length returned); ARP is answered or learned; anything else dropped.
 * Frees m.
 */
static int take(struct slmc_conn *c, struct rte_mbuf *m, void *buf, size_t size)
{
	int got = 0;
	if (m->nb_segs == 1) {
		uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);
		struct dp_frame fr;
		dp_frame_parse(d, rte_pktmbuf_data_len(m), &c->me,
			       DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
		if (fr.kind == DP_FRAME_UDP && fr.src_ip == c->server_ip &&
		    fr.src_port == c->server_port) {
			size_t n = SLM_MIN(fr.payload_len, size);
			memcpy(buf, d + fr.payload_off, n);
			got = n ? (int)n : 0;
		} else if (fr.kind == DP_FRAME_ARP_REPLY &&
			   fr.src_ip == c->server_ip) {
			c->server_mac = fr.src_mac;
		} else if (fr.kind == DP_FRAME_ARP_REQUEST) {
			send_arp(c, DP_ARP_REPLY, &fr.src_mac, fr.src_ip);
		}
	}
	rte_pktmbuf_free(m);
	return got;
}

static bool rx_fill(struct slmc_conn *c)
{
	if (c->rx_head < c->rx_n)
		return true;
	c->rx_head = 0;
	c->rx_n = rte_eth_rx_burst(c->port, 0, c->rx, BURST);
	return c->rx_n > 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void nap(uint64_t ns)
{
	struct timespec ts = {(time_t)(ns / 1000000000),
			      (long)(ns % 1000000000)};
	nanosleep(&ts, NULL);
}

/* ---- the transport ----------------------------------------------------- */

static void memif_close(struct slmc_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&lock);
	while (c->rx_head < c->rx_n)
		rte_pktmbuf_free(c->rx[c->rx_head++]);
	if (c->started)
		rte_eth_dev_stop(c->port);
	if (c->port_ok)
		rte_eth_dev_close(c->port);
	if (c->vdev)
		rte_vdev_uninit(c->name);
	rte_mempool_free(c->pool);
	pthread_mutex_unlock(&lock);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	free(c);
}

static int link_up(struct slmc_conn *c)
{
	uint64_t t0 = now_ns();
	while (now_ns() - t0 < LINK_WAIT_NS) {
		struct rte_eth_link l;
		memset(&l, 0, sizeof(l));
		if (rte_eth_link_get_nowait(c->port, &l) == 0 &&
		    l.link_status == RTE_ETH_LINK_UP)
			return 0;
		nap(200 * 1000);
	}
	return SLM_CLIENT_ECONNECT;
}

static int resolve_server(struct slmc_conn *c)
{
	static const struct dp_mac zero = {{0}};
	uint64_t t0 = now_ns(), last = 0;
	while (now_ns() - t0 < ARP_WAIT_NS) {
		if (now_ns() - last >= ARP_RETRY_NS) {
			send_arp(c, DP_ARP_REQUEST, &dp_mac_broadcast,
				 c->server_ip);
			last = now_ns();
		}
		uint8_t scratch[64];
		while (rx_fill(c))
			take(c, c->rx[c->rx_head++], scratch, sizeof(scratch));
		if (!dp_mac_equal(&c->server_mac, &zero))
			return 0;
		nap(100 * 1000);
	}
	return SLM_CLIENT_ECONNECT;
}

static int setup_port(struct slmc_conn *c, const char *path, char *msg,
		      size_t size)
{
	unsigned seq = conn_seq++;
	snprintf(c->name, sizeof(c->name), "net_memif_slmc%u", seq);
	char args[4300];
	snprintf(args, sizeof(args),
		 "role=client,socket=%s,socket-abstract=no,id=%u,rsize=%u",
		 path, c->id, RING_LOG2);
	log_last[0] = '\0';
	int rc = rte_vdev_init(c->name, args);
	if (rc < 0) {
		snprintf(msg, size, "memif %s: %s%s%s", path, rte_strerror(-rc),
			 log_last[0] ? ": " : "", log_last);
		return SLM_CLIENT_ECONNECT;
	}
	c->vdev = true;
	if (rte_eth_dev_get_port_by_name(c->name, &c->port) != 0) {
		snprintf(msg, size, "memif %s: no port", path);
		return SLM_CLIENT_ESYS;
	}
	char pool[RTE_MEMPOOL_NAMESIZE];
	snprintf(pool, sizeof(pool), "slmc_%u", seq);
	c->pool = rte_pktmbuf_pool_create(pool, POOL_MBUFS, 0, 0,
					  RTE_MBUF_DEFAULT_BUF_SIZE,
					  SOCKET_ID_ANY);
	if (!c->pool) {
		snprintf(msg, size, "memif: mbuf pool: %s",
			 rte_strerror(rte_errno));
		return SLM_CLIENT_ENOMEM;
	}
	struct rte_eth_conf conf;
	memset(&conf, 0, sizeof(conf));
	rc = rte_eth_dev_configure(c->port, 1, 1, &conf);
	if (rc == 0) {
		c->port_ok = true;
		rc = rte_eth_rx_queue_setup(c->port, 0, 1u << RING_LOG2,
					    SOCKET_ID_ANY, NULL, c->pool);
	}
	if (rc == 0)
		rc = rte_eth_tx_queue_setup(c->port, 0, 1u << RING_LOG2,
					    SOCKET_ID_ANY, NULL);
	if (rc == 0)
		rc = rte_eth_dev_start(c->port);
	if (rc) {
		snprintf(msg, size, "memif %s: %s%s%s", path, rte_strerror(-rc),
			 log_last[0] ? ": " : "", log_last);
		return SLM_CLIENT_ECONNECT;
	}
	c->started = true;
	struct rte_ether_addr mac;
	rte_eth_macaddr_get(c->port, &mac);
	memcpy(c->me.mac.b, mac.addr_bytes, DP_ETH_ALEN);
	return 0;
}

static int memif_open(const char *url, struct slmc_conn **out, char *msg,
		      size_t size)
{
	char scratch[256];
	if (!msg) {
		msg = scratch;
		size = sizeof(scratch);
	}
	*out = NULL;
	char path[4096];
	unsigned port;
	int want;
	int rc = parse_url(url, path, sizeof(path), &port, &want, msg, size);
	if (rc)
		return rc;
	if (access(path, F_OK) != 0) {
		snprintf(msg, size,
			 "%s: %s (is slmd serving memif there? "
			 "dpdk.memif_socket)",
			 path, strerror(errno));
		return SLM_CLIENT_ECONNECT;
	}
	struct slmc_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return SLM_CLIENT_ENOMEM;
	c->lock_fd = -1;
	c->server_ip = htonl(DP_MEMIF_SERVER_IP4);
	c->server_port = (uint16_t)port;
	c->me.ip = htonl(DP_MEMIF_CLIENT_IP4);
	uint16_t r = 0;
	if (getrandom(&r, sizeof(r), 0) < 0)
		r = (uint16_t)now_ns();
	c->me.port = (uint16_t)(32768 + r % 28000);
	rc = claim_id(c, path, want, msg, size);
	if (rc) {
		memif_close(c);
		return rc;
	}
	pthread_mutex_lock(&lock);
	rc = eal_start(msg, size);
	if (!rc)
		rc = setup_port(c, path, msg, size);
	pthread_mutex_unlock(&lock);
	if (!rc && link_up(c)) {
		snprintf(msg, size,
			 "memif link %u on %s did not come up (is slmd serving "
			 "memif there, with a free link?)",
			 c->id, path);
		rc = SLM_CLIENT_ECONNECT;
	}
	if (!rc && resolve_server(c)) {
		snprintf(msg, size,
			 "memif link %u on %s: slmd did not answer ARP for "
			 "169.254.77.1",
			 c->id, path);
		rc = SLM_CLIENT_ECONNECT;
	}
	if (rc) {
		memif_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

static int memif_send(struct slmc_conn *c, const void *buf, size_t len)
{
	if (len > DP_UDP4_MAX_PAYLOAD)
		return SLM_CLIENT_ETOOBIG;
	struct rte_mbuf *m = rte_pktmbuf_alloc(c->pool);
	if (!m)
		return SLM_CLIENT_ENOMEM;
	uint8_t *d = (uint8_t *)rte_pktmbuf_append(
		m, (uint16_t)(DP_UDP4_HDRS + len));
	memcpy(d + DP_UDP4_HDRS, buf, len);
	dp_frame_udp4(d, &c->server_mac, &c->me.mac, c->me.ip, c->server_ip,
		      c->me.port, c->server_port, len, c->ip_id++,
		      DP_FRAME_UDP_CSUM_NONE);
	return send_frame(c, m);
}

static int memif_recv(struct slmc_conn *c, void *buf, size_t size)
{
	while (rx_fill(c)) {
		int got = take(c, c->rx[c->rx_head++], buf, size);
		if (got > 0)
			return got;
	}
	return 0;
}

static int memif_wait(struct slmc_conn *c, uint64_t timeout_ns)
{
	uint64_t t0 = now_ns(), step = NAP_MIN_NS;
	for (;;) {
		if (rx_fill(c))
			return 1;
		uint64_t el = now_ns() - t0;
		if (el >= timeout_ns)
			return 0;
		if (el < SPIN_NS)
			continue;
		nap(SLM_MIN(step, timeout_ns - el));
		step = SLM_MIN(step * 2, NAP_MAX_NS);
	}
}

static int memif_fd(const struct slmc_conn *c)
{
	(void)c;
	return -1;
}

static const struct slmc_transport transport = {
	.abi = SLMC_TRANSPORT_ABI,
	.scheme = "memif",
	.open = memif_open,
	.close = memif_close,
	.send = memif_send,
	.recv = memif_recv,
	.wait = memif_wait,
	.fd = memif_fd,
};

__attribute__((visibility("default"))) const struct slmc_transport *
slmc_transport_plugin(void);

const struct slmc_transport *slmc_transport_plugin(void)
{
	return &transport;
}
