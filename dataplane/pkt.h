/*
 * pkt.h: Ethernet frames of a minimal IPv4 host: what the DPDK dataplane
 * (dpdk.h) and the client's memif transport put on and take off a link.
 *
 * This module owns the bytes of Ethernet II, ARP (IPv4 over Ethernet),
 * IPv4, ICMP echo and UDP headers: classifying a received frame (whom it
 * is for, what it carries, or why it is dropped), building the frames the
 * host sends (UDP datagrams, ARP requests and replies, gratuitous ARP,
 * ICMP echo replies) and the Internet checksum.  It knows nothing of
 * DPDK: frames are plain byte arrays, so the parser is unit-tested against
 * frames the Linux kernel made and fuzzed (tests/fuzz/fuzz_pkt.c).
 *
 * What a host accepts (dp_frame_parse):
 *   - Ethernet: destination our MAC, or broadcast for ARP; type IPv4 or
 *     ARP.  VLAN tags, other types, multicast and frames for other MACs
 *     are dropped; IPv6 is dropped with its own reason (not spoken yet).
 *   - ARP: Ethernet/IPv4 ARP only; requests for our address are answered,
 *     replies addressed to us are learned; anything else is dropped.
 *   - IPv4: version 4, no options, a total length that fits the frame
 *     (Ethernet padding after it is ignored), a valid header checksum, not
 *     a fragment, addressed to us, from a unicast source.
 *   - ICMP: echo requests with a valid checksum; other types dropped.
 *   - UDP: to our port, a length that fits the IP payload, a valid
 *     checksum or none (0, allowed over IPv4).
 * Every drop has a reason (enum dp_frame_drop) that the caller counts.
 *
 * Byte order: addresses (uint32_t ip) are in network byte order, as they
 * sit in the header; ports are in host byte order.
 *
 * Threads: no state; every function is reentrant.
 */
#ifndef SLM_DATAPLANE_PKT_H
#define SLM_DATAPLANE_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_ETH_ALEN 6
#define DP_ETH_HLEN 14
#define DP_IP4_HLEN 20
#define DP_UDP_HLEN 8
#define DP_ICMP_HLEN 8
#define DP_ARP_LEN 28
/* Ethernet + IPv4 + UDP headers in front of a datagram. */
#define DP_UDP4_HDRS (DP_ETH_HLEN + DP_IP4_HLEN + DP_UDP_HLEN)
/* The largest UDP payload in a 1500-byte IP packet. */
#define DP_UDP4_MAX_PAYLOAD (1500 - DP_IP4_HLEN - DP_UDP_HLEN)

#define DP_ETHERTYPE_IPV4 0x0800
#define DP_ETHERTYPE_ARP 0x0806
#define DP_ETHERTYPE_VLAN 0x8100
#define DP_ETHERTYPE_IPV6 0x86DD
#define DP_IPPROTO_ICMP 1
#define DP_IPPROTO_UDP 17

/*
 * The addresses of a memif link between slmd and a local client: a
 * point-to-point link of its own per client, so the pair is fixed
 * (169.254.77.1 is slmd, 169.254.77.2 the client; link-local, never
 * routed).  Host byte order: htonl() them for a header.
 */
#define DP_MEMIF_SERVER_IP4 0xA9FE4D01u /* 169.254.77.1 */
#define DP_MEMIF_CLIENT_IP4 0xA9FE4D02u /* 169.254.77.2 */

struct dp_mac {
	uint8_t b[DP_ETH_ALEN];
};

extern const struct dp_mac dp_mac_broadcast;

static inline bool dp_mac_equal(const struct dp_mac *a, const struct dp_mac *b)
{
	for (int i = 0; i < DP_ETH_ALEN; i++)
		if (a->b[i] != b->b[i])
			return false;
	return true;
}

/* "02:00:00:00:00:0a" into buf (at least 18 bytes). */
void dp_mac_format(const struct dp_mac *m, char *buf, size_t size);
/* "10.0.0.1" (ip in network byte order) into buf (at least 16 bytes). */
void dp_ip4_format(uint32_t ip, char *buf, size_t size);

/* Who the host is on one link. */
struct dp_frame_host {
	struct dp_mac mac;
	uint32_t ip;   /* network byte order */
	uint16_t port; /* the UDP port served, host byte order */
};

/* What a received frame is. */
enum dp_frame_kind {
	DP_FRAME_DROP = 0,
	DP_FRAME_ARP_REQUEST, /* a request for our address: answer it */
	DP_FRAME_ARP_REPLY,   /* a reply addressed to us: learn it */
	DP_FRAME_ICMP_ECHO,   /* an echo request to us: answer it */
	DP_FRAME_UDP,	      /* a datagram to our port */
};

/*
 * Why a frame was dropped.  X(ID, name, help): dataplane/counters.h has
 * a counter drop_<name> for each.
 */
#define DP_FRAME_DROPS(X)                                                   \
	X(L2_SHORT, l2_short, "frame shorter than its headers")             \
	X(L2_FOREIGN, l2_foreign, "frame for another MAC (or multicast)")   \
	X(L2_PROTO, l2_proto, "Ethernet type not IPv4 or ARP (VLAN too)")   \
	X(IPV6, ipv6, "IPv6 (not spoken on the DPDK path yet)")             \
	X(ARP, arp, "ARP not for us, not Ethernet/IPv4, or malformed")      \
	X(IP_MALFORMED, ip_malformed, "IPv4 header malformed")              \
	X(IP_OPTIONS, ip_options, "IPv4 header with options")               \
	X(IP_FRAGMENT, ip_fragment, "IPv4 fragment")                        \
	X(IP_CKSUM, ip_cksum, "IPv4 header checksum wrong")                 \
	X(IP_FOREIGN, ip_foreign, "IPv4 for another address")               \
	X(IP_SOURCE, ip_source, "IPv4 from a broadcast/multicast/0 source") \
	X(IP_PROTO, ip_proto, "IPv4 protocol not UDP or ICMP")              \
	X(ICMP, icmp, "ICMP other than an echo request, or malformed")      \
	X(L4_CKSUM, l4_cksum, "UDP or ICMP checksum wrong")                 \
	X(UDP_MALFORMED, udp_malformed, "UDP length does not fit")          \
	X(UDP_PORT, udp_port, "UDP to another port")

enum dp_frame_drop {
	DP_DROP_NONE = 0,
#define DP_FRAME_DROP_ENUM(id, name, help) DP_DROP_##id,
	DP_FRAME_DROPS(DP_FRAME_DROP_ENUM)
#undef DP_FRAME_DROP_ENUM
		DP_DROP__N
};

/* "ip_cksum" for DP_DROP_IP_CKSUM; "none" for DP_DROP_NONE. */
const char *dp_frame_drop_name(enum dp_frame_drop d);

/* Checksum verdicts a NIC may have given already. */
enum dp_csum_hint {
	DP_CSUM_UNKNOWN = 0, /* verify in software */
	DP_CSUM_GOOD,
	DP_CSUM_BAD,
};

struct dp_frame {
	enum dp_frame_kind kind;
	enum dp_frame_drop drop; /* DP_DROP_NONE unless kind is DROP */
	struct dp_mac src_mac;	 /* the sender on the link */
	uint32_t src_ip;	 /* network byte order (ARP: sender IP) */
	uint16_t src_port;	 /* UDP */
	uint16_t ip_len;	 /* IPv4 total length (ICMP, UDP) */
	/* UDP: the datagram; ICMP: the whole ICMP message. */
	size_t payload_off;
	size_t payload_len;
};

/*
 * Classify frame[len] for host h.  The hints say what the NIC verified
 * already (DP_CSUM_UNKNOWN: check here).  Never reads outside the frame.
 */
void dp_frame_parse(const uint8_t *frame, size_t len,
		    const struct dp_frame_host *h, enum dp_csum_hint ip_hint,
		    enum dp_csum_hint l4_hint, struct dp_frame *out);

/*
 * True when frame[len] is an ARP packet whose sender claims h's address
 * from another MAC (an address conflict worth a warning).
 */
bool dp_frame_arp_conflict(const uint8_t *frame, size_t len,
			   const struct dp_frame_host *h);

/* Flags of dp_frame_udp4. */
#define DP_FRAME_IP_CSUM_OFFLOAD 1u /* leave the IP checksum 0 for the NIC */
/* Put only the pseudo-header sum in the UDP checksum, for a NIC that
 * completes it (DPDK's RTE_MBUF_F_TX_UDP_CKSUM contract). */
#define DP_FRAME_UDP_CSUM_OFFLOAD 2u
/* No UDP checksum (0: allowed over IPv4), for memory-to-memory links. */
#define DP_FRAME_UDP_CSUM_NONE 4u

/*
 * Write Ethernet + IPv4 + UDP headers into buf[DP_UDP4_HDRS] for a
 * payload of len bytes that the caller has placed (or will place) at
 * buf + DP_UDP4_HDRS; the UDP checksum covers that payload, so place it
 * first unless the checksum is offloaded.  ip_id: the IPv4
 * identification (any value: the packet is never fragmented, DF set).
 */
void dp_frame_udp4(uint8_t *buf, const struct dp_mac *dst_mac,
		   const struct dp_mac *src_mac, uint32_t src_ip,
		   uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
		   size_t len, uint16_t ip_id, unsigned flags);

/* ARP operations. */
#define DP_ARP_REQUEST 1
#define DP_ARP_REPLY 2

/*
 * An ARP frame into buf[DP_ETH_HLEN + DP_ARP_LEN] (42 bytes; a NIC pads
 * it to the 60-byte minimum).  A request goes to broadcast with a zero
 * target MAC; a reply to target_mac.  A gratuitous ARP is a request with
 * sender_ip == target_ip.  Returns the length.
 */
size_t dp_frame_arp(uint8_t *buf, unsigned op, const struct dp_mac *sender_mac,
		    uint32_t sender_ip, const struct dp_mac *target_mac,
		    uint32_t target_ip);

/*
 * Turn the ICMP echo request fr (parsed from frame by dp_frame_parse) into
 * its reply, in place: addresses swapped, type 0, checksums redone.
 * Returns the length of the reply (the frame without Ethernet padding).
 */
size_t dp_frame_icmp_echo_reply(uint8_t *frame, const struct dp_frame *fr,
				const struct dp_frame_host *h);

/*
 * The Internet checksum (RFC 1071) of data[len], added to the 32-bit
 * partial sum `sum` (0 to start); returns the folded, complemented value
 * as it goes in a header (big-endian order of the bytes in memory).
 */
uint16_t dp_inet_csum(const void *data, size_t len, uint32_t sum);

/* The partial sum of data[len] (for chaining into dp_inet_csum). */
uint32_t dp_inet_sum(const void *data, size_t len, uint32_t sum);

/* The checksum of a UDP datagram (udp: header + payload, udp_len bytes)
 * between src and dst; 0 comes out as 0xFFFF, as RFC 768 says. */
uint16_t dp_udp4_csum(uint32_t src_ip, uint32_t dst_ip, const void *udp,
		      size_t udp_len);

#endif
