/*
 * dpdk.h: the DPDK dataplane backend: the RPC on a NIC port without the
 * kernel, and on memif links for local clients.
 *
 * It fills the backend ops table (backend.h, dp_dpdk_ops) with the same
 * sessions, protocol and loop contract as the io_uring backend; only how
 * frames move differs.  What it owns:
 *
 *  - EAL, once per process (dpdk_eal.c): started from [dpdk] (eal_args;
 *    huge pages with --in-memory when reserved, else --no-huge -m
 *    dpdk.memory), with --no-telemetry, a file prefix of its own
 *    (slmd-PID) whose runtime folder is removed again, and EAL's log
 *    routed into slmd's log.  EAL's main lcore is slmd's main thread,
 *    left where it was; the lcores that poll are slmd's own dataplane
 *    threads, pinned where the placement plan puts them
 *    (numa.dataplane_cores) and registered with EAL (rte_thread_register),
 *    so the plan, not EAL's -l, says where they run.
 *  - Packet memory: one mbuf pool per NUMA node that has a dataplane
 *    lcore (dpdk.mbufs, or sized from the queues).
 *  - Links: the NIC port (dpdk.port: a PCI address or a vdev), with one
 *    RX and one TX queue per lcore and RSS spreading flows over the RX
 *    queues when there are several and the port has RSS; checksum
 *    offloads where the port has them, software checksums where not.
 *    Start-up waits dpdk.link_wait_ms for the link and warns clearly if
 *    it stays down; lcore 0 then watches it, logs changes and announces
 *    the address (gratuitous ARP) whenever it comes up.
 *    And dpdk.memif_links memif interfaces in server role on
 *    dpdk.memif_socket, one local client each (dpdk_port.c), each polled
 *    by one lcore (link k by lcore k mod n).
 *  - A minimal IPv4 host on each link (pkt.h, neigh.h): ARP replies and a
 *    neighbour cache, a gratuitous ARP at start, ICMP echo replies, UDP to
 *    dataplane.listen's address and port; every other frame is dropped and
 *    counted by reason (counters.h).  No IPv6 yet.  On a memif link slmd
 *    is 169.254.77.1 and the client 169.254.77.2 (pkt.h).
 *  - The lcore loop (dpdk.c): receive bursts, hand datagrams to the
 *    session (the payload is read in place from the mbuf), answer ARP and
 *    ICMP, send the session's datagrams in bursts.  Adaptive polling as
 *    in uring.h: busy while traffic flows, within a budget of at most
 *    dataplane.spin_us that halves when spinning catches nothing; then
 *    asleep on RX interrupts when every queue of the lcore has them
 *    (dpdk.rx_interrupts; physical NICs through vfio, net_tap), or in
 *    naps growing from 10 us to dpdk.idle_sleep_us (af_packet, af_xdp,
 *    memif: no RX interrupts).  Serving-core events wake it through an
 *    eventfd, as on the kernel path.
 *  - Statistics (dpdk_stats.c): the stats_json op adds the EAL setup,
 *    every link with its DPDK stats and xstats, link state and queue to
 *    lcore map.
 *
 * Peers: a datagram's struct dp_peer carries the index of the link it
 * came in on in scope_id, so the same address on two links is two peers
 * and a reply leaves by the link its request came from.
 *
 * Limits: one NIC port; IPv4 only; frames up to 1514 bytes (no jumbo
 * frames); no IP options or fragments; a process initialises EAL once
 * (a second dataplane in the same process is refused).
 */
#ifndef SLM_DATAPLANE_DPDK_H
#define SLM_DATAPLANE_DPDK_H

#include "dataplane/backend.h"

/* The memif lock file beside a socket: "<socket>.lock".  Its size is the
 * number of memif interfaces; a client takes an open-file-description
 * write lock on byte k to claim interface id k (client/memif_plugin.c). */
#define DP_MEMIF_LOCK_SUFFIX ".lock"

#endif
