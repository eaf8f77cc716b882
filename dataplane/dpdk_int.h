/*
 * dpdk_int.h: what the DPDK backend's own files share (dpdk.c the ops
 * and the lcore loop, dpdk_eal.c EAL, dpdk_port.c links and pools,
 * dpdk_stats.c statistics).  Only these files see DPDK's headers: they
 * are the ones the Makefile builds with `pkg-config --cflags libdpdk`.
 */
#ifndef SLM_DATAPLANE_DPDK_INT_H
#define SLM_DATAPLANE_DPDK_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <rte_epoll.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "common/config.h"
#include "common/err.h"
#include "dataplane/backend.h"
#include "dataplane/dpdk.h"
#include "dataplane/neigh.h"
#include "dataplane/pkt.h"
#include "numa/pin.h"

#define DPDK_MAX_LINKS 256 /* the NIC port and up to 255 memif links */
#define DPDK_MAX_LCORES 64
#define DPDK_BURST 32
#define DPDK_NEIGH_ENTRIES 4096

/* ---- EAL (dpdk_eal.c) -------------------------------------------------- */

struct dpdk_eal_params {
	const char *port;     /* dpdk.port: a PCI address turns PCI on */
	const char *eal_args; /* dpdk.eal_args */
	int hugepages;	      /* 0 auto, 1 yes, 2 no (dpdk.hugepages) */
	uint64_t memory;      /* bytes without huge pages */
};

/*
 * Start EAL once for this process.  Fills `mode` with what memory it got
 * ("huge pages (--in-memory)" or "no huge pages, 512 MiB").  SLM_ESTATE
 * when EAL ran before in this process; SLM_ECONFIG / SLM_ESYS with EAL's
 * last error line otherwise.
 */
int dpdk_eal_start(const struct dpdk_eal_params *p, char *mode,
		   size_t mode_size, struct slm_error *err) SLM_MUST_CHECK;
/* rte_eal_cleanup (after every port is closed). */
void dpdk_eal_stop(void);
/* True when the string looks like a PCI address (DDDD:BB:DD.F or BB:DD.F). */
bool dpdk_is_pci(const char *s);

/* ---- links (dpdk_port.c) ----------------------------------------------- */

enum dpdk_link_kind { DPDK_LINK_NIC, DPDK_LINK_MEMIF };

struct dpdk_link {
	enum dpdk_link_kind kind;
	uint16_t index; /* dp_peer.scope_id of its peers */
	uint16_t port;	/* DPDK port id */
	bool port_ok;	/* configured (stop/close it) */
	bool started;
	char name[128];	   /* vdev name or PCI address */
	char driver[32];   /* PMD name */
	bool vdev;	   /* created with rte_vdev_init */
	int socket;	   /* its NUMA node, or -1 */
	unsigned n_queues; /* RX = TX queues */
	/* Which lcore serves queue q (queue_lcore[q]). */
	uint16_t queue_lcore[DPDK_MAX_LCORES];
	struct dp_frame_host host;
	bool rss;
	bool tx_ip_csum, tx_udp_csum; /* offloads on */
	bool rx_ip_csum, rx_l4_csum;
	bool rx_intr;	    /* configured with intr_conf.rxq */
	bool udp_csum_none; /* memif: UDP checksum 0 (none) */
	_Atomic int up;	    /* last link state seen (-1 unknown) */
};

/* ---- the backend ------------------------------------------------------- */

struct dpdk_txbuf {
	struct rte_mbuf *m[DPDK_BURST];
	unsigned n;
};

struct dpdk_rxq {
	struct dpdk_link *link;
	uint16_t queue;
	bool intr; /* RX interrupt registered with this thread's epoll */
};

/* One polling thread: a receive queue on each of its links. */
struct dpdk_lcore {
	struct dp_backend *be;
	unsigned index;
	int cpu;  /* -1: not pinned */
	int node; /* NUMA node of its CPU (the pool it uses) */
	struct rte_mempool *pool;
	struct dp_session *sess;
	struct dp_counters *c;
	struct dpdk_rxq rx[DPDK_MAX_LINKS];
	unsigned n_rx;
	int txq[DPDK_MAX_LINKS]; /* its TX queue on each link, -1 none */
	struct dpdk_txbuf tx[DPDK_MAX_LINKS];
	struct dp_neigh *neigh;
	uint16_t ip_id;
	int efd; /* wake-ups from workers */
	struct rte_epoll_event efd_ev;
	bool intr_ok; /* sleep on RX interrupts */
	unsigned lcore_id;
	pthread_t thread;
	struct slm_thread *pinned;
	bool started;
	sem_t setup_done;
	int setup_rc;
	char setup_msg[256];
	atomic_bool stop;
} __attribute__((aligned(64)));

struct dp_backend {
	struct dp_backend_config cfg;
	/* [dpdk] */
	char port_spec[256];
	char eal_args[512];
	char memif_socket[108];
	unsigned memif_links;
	unsigned rx_desc, tx_desc, mbufs;
	bool offloads, rx_interrupts;
	uint32_t idle_sleep_us, link_wait_ms;
	/* dataplane.listen */
	uint32_t ip; /* network order; 0 with no NIC port */
	uint16_t udp_port;

	bool eal_ok;
	char eal_mode[96];
	struct rte_mempool *pools[64]; /* by NUMA node */
	unsigned n_links;
	struct dpdk_link *links; /* [DPDK_MAX_LINKS] */
	struct dpdk_link *nic;	 /* or NULL */
	unsigned n;		 /* lcores */
	struct dpdk_lcore *lc;
	/* ARP replies land on whichever lcore RSS picks: shared table. */
	pthread_mutex_t neigh_lock;
	struct dp_neigh *shared_neigh;
	int memif_lock_fd;
	char memif_lock_path[128];
	bool memif_socket_made;
};

/*
 * Create the mbuf pools, the NIC port and the memif links, configure and
 * start them, wait for the NIC's link (dpdk_port.c).  On error, what was
 * made is left in b for dpdk_links_close.
 */
int dpdk_links_open(struct dp_backend *b, struct slm_error *err) SLM_MUST_CHECK;
/* Stop, close and remove every link, free the pools. */
void dpdk_links_close(struct dp_backend *b);
/* A gratuitous ARP for link k, sent on TX queue q by the calling thread
 * (which must own that queue). */
void dpdk_link_announce(struct dp_backend *b, struct dpdk_link *k, uint16_t q,
			struct rte_mempool *pool);
/* Refresh k->up; logs a change.  Returns true when it just came up. */
bool dpdk_link_poll(struct dpdk_link *k);

/* ---- statistics (dpdk_stats.c) ----------------------------------------- */

/* The stats_json op (backend.h). */
void dpdk_stats_json(const struct dp_backend *b, struct cJSON *obj);

#endif
