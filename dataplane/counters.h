/*
 * counters.h: what a dataplane thread counts.  One struct per thread,
 * written only by that thread (plain increments), read by others (ctl,
 * the shutdown log) with relaxed atomic loads through dp_counters_read;
 * a reader sees each counter exact but not all at one instant.
 *
 * Every drop has its reason here; docs/protocol.md lists which datagram
 * gets which handling and counter.  The X-macro keeps names, help and
 * fields in one list so exporters (ctl, Prometheus) iterate it.
 */
#ifndef SLM_DATAPLANE_COUNTERS_H
#define SLM_DATAPLANE_COUNTERS_H

#include <stdint.h>
#include <stdio.h>

#include "common/compiler.h"

/* X(name, help) */
#define DP_COUNTERS(X)                                                       \
	X(rx_datagrams, "datagrams received")                                \
	X(rx_bytes, "bytes received")                                        \
	X(tx_datagrams, "datagrams sent")                                    \
	X(tx_bytes, "bytes sent")                                            \
	X(drop_not_allowed, "dropped: peer outside dataplane.allow")         \
	X(drop_short, "dropped: shorter than a header")                      \
	X(drop_magic, "dropped: wrong magic")                                \
	X(drop_version, "dropped: protocol version not spoken")              \
	X(drop_oversized, "dropped: larger than the largest datagram")       \
	X(drop_auth_missing, "dropped: no MAC while keys are required")      \
	X(drop_unknown_key, "dropped: MAC with an unknown key id")           \
	X(drop_bad_mac, "dropped: MAC does not match")                       \
	X(drop_stale_ts, "dropped: timestamp outside the replay window")     \
	X(drop_replay, "dropped: packet number seen before or too old")      \
	X(drop_rate, "dropped: client over dataplane.client_rate")           \
	X(drop_no_conn_slot, "dropped: connection table full")               \
	X(drop_bad_type, "dropped: a message type a server does not take")   \
	X(drop_malformed, "refused: malformed fields (ERROR EFORMAT)")       \
	X(drop_mandatory, "refused: unknown mandatory field (EUNSUPPORTED)") \
	X(drop_bad_fragment, "dropped: fragment index/count/size invalid")   \
	X(drop_too_big, "refused: request over max_request_bytes (ETOOBIG)") \
	X(drop_stale_request, "refused: request id finished or too old")     \
	X(drop_unknown_request, "answered: ACK/CANCEL for no known request") \
	X(dup_fragment, "duplicate fragment ignored")                        \
	X(dup_request, "retransmitted request of an accepted one (REQ_ACK)") \
	X(refused_overload, "refused: in-flight caps reached (EOVERLOAD)")   \
	X(refused_no_model, "refused: no serving core (ESTATE)")             \
	X(refused_invalid, "refused: invalid parameter (EINVAL)")            \
	X(refused_submit, "refused by the serving core")                     \
	X(reasm_timeout, "incomplete requests expired")                      \
	X(reasm_budget, "fragments dropped: reassembly budget full")         \
	X(requests_accepted, "requests submitted to the serving core")       \
	X(requests_done, "requests finished (DONE sent)")                    \
	X(requests_freed, "finished requests acknowledged by the client")    \
	X(abandoned, "requests cancelled: client silent for abandon_ms")     \
	X(done_unacked, "finished requests forgotten without a FIN")         \
	X(cancels, "CANCEL messages taking effect")                          \
	X(tokens_out, "token ids streamed")                                  \
	X(stream_packets, "TOKENS and DONE datagrams (first sends)")         \
	X(retransmits, "stream datagrams sent again for a client's ACK")     \
	X(stream_lost, "asked-for stream datagrams no longer buffered")      \
	X(rtx_trimmed, "unacknowledged stream datagrams evicted (buffer)")   \
	X(pings, "PING answered")                                            \
	X(infos, "INFO_REQ answered")                                        \
	X(events, "events from the serving core")                            \
	X(events_lost, "events lost to allocation failure")                  \
	X(conns_created, "connections created")                              \
	X(conns_expired, "idle connections forgotten")                       \
	X(tx_errors, "sends the backend failed")                             \
	X(tx_full, "sends dropped: no transmit slot")                        \
	X(rx_nobufs, "receive buffer ring ran dry (backend)")                \
	X(rx_errors, "receive errors (backend)")                             \
	X(rx_frames, "frames received on DPDK links")                        \
	X(tx_frames, "frames sent on DPDK links")                            \
	X(drop_l2_short, "dropped frame: shorter than its headers")          \
	X(drop_l2_foreign, "dropped frame: for another MAC, or multicast")   \
	X(drop_l2_proto, "dropped frame: not IPv4 or ARP (VLAN too)")        \
	X(drop_ipv6, "dropped frame: IPv6 (not on the DPDK path yet)")       \
	X(drop_arp, "dropped ARP: not for us, not IPv4/Ethernet, malformed") \
	X(drop_ip_malformed, "dropped IPv4: bad version or lengths")         \
	X(drop_ip_options, "dropped IPv4: header options")                   \
	X(drop_ip_fragment, "dropped IPv4: a fragment")                      \
	X(drop_ip_cksum, "dropped IPv4: header checksum wrong")              \
	X(drop_ip_foreign, "dropped IPv4: for another address")              \
	X(drop_ip_source, "dropped IPv4: broadcast/multicast/zero source")   \
	X(drop_ip_proto, "dropped IPv4: protocol not UDP or ICMP")           \
	X(drop_icmp, "dropped ICMP: not an echo request, or malformed")      \
	X(drop_l4_cksum, "dropped UDP/ICMP: checksum wrong")                 \
	X(drop_udp_malformed, "dropped UDP: length does not fit")            \
	X(drop_udp_port, "dropped UDP: to another port")                     \
	X(arp_replies, "ARP requests for our address answered")              \
	X(arp_requests, "ARP requests sent (gratuitous ones included)")      \
	X(arp_learned, "neighbour entries learned or changed")               \
	X(arp_conflicts, "ARP claiming our address from another MAC")        \
	X(icmp_echo, "ICMP echo requests answered")                          \
	X(tx_no_neigh, "sends dropped: peer MAC unknown (ARP asked)")        \
	X(tx_nombuf, "sends dropped: no packet buffer")                      \
	X(sleeps, "times the thread blocked")                                \
	X(wakeups_event, "wake-ups by a serving-core event")

struct dp_counters {
#define DP_COUNTER_FIELD(name, help) uint64_t name;
	DP_COUNTERS(DP_COUNTER_FIELD)
#undef DP_COUNTER_FIELD
} SLM_ALIGNED_CACHE;

enum {
#define DP_COUNTER_ENUM(name, help) DP_COUNTER_##name,
	DP_COUNTERS(DP_COUNTER_ENUM)
#undef DP_COUNTER_ENUM
		DP_COUNTERS_N
};

/* Name and help of the i-th counter (i < DP_COUNTERS_N). */
const char *dp_counter_name(unsigned i);
const char *dp_counter_help(unsigned i);

/* Snapshot src (live, another thread's) into dst with relaxed loads. */
void dp_counters_read(struct dp_counters *dst, const struct dp_counters *src);

/* dst += src, counter by counter. */
void dp_counters_add(struct dp_counters *dst, const struct dp_counters *src);

/* Sum of the drop_* and refused_* counters. */
uint64_t dp_counters_drops(const struct dp_counters *c);

/* "name=value" for every non-zero counter, space-separated (the log line
 * at shutdown).  Returns the length snprintf would have written. */
int dp_counters_format(const struct dp_counters *c, char *buf, size_t size);

#endif
