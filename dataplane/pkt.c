/* pkt.c: Ethernet/ARP/IPv4/ICMP/UDP frames.  See pkt.h. */
#include "dataplane/pkt.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

/*
 * Header offsets (bytes from the start of each header), as RFC 826, 791,
 * 792 and 768 lay them out:
 *   Ethernet  0 dst MAC, 6 src MAC, 12 type
 *   ARP       0 htype, 2 ptype, 4 hlen, 5 plen, 6 op, 8 sender MAC,
 *             14 sender IP, 18 target MAC, 24 target IP
 *   IPv4      0 version/IHL, 1 TOS, 2 total length, 4 id, 6 flags/offset,
 *             8 TTL, 9 protocol, 10 checksum, 12 src, 16 dst
 *   ICMP      0 type, 1 code, 2 checksum, 4 id, 6 sequence
 *   UDP       0 src port, 2 dst port, 4 length, 6 checksum
 */
#define IP_FLAG_MF 0x2000
#define IP_FLAG_DF 0x4000
#define IP_OFFSET_MASK 0x1FFF
#define DEFAULT_TTL 64
#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8

const struct dp_mac dp_mac_broadcast = {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

static const char *const drop_names[] = {"none",
#define DP_FRAME_DROP_NAME(id, name, help) #name,
					 DP_FRAME_DROPS(DP_FRAME_DROP_NAME)
#undef DP_FRAME_DROP_NAME
};

_Static_assert(sizeof(drop_names) / sizeof(drop_names[0]) == DP_DROP__N,
	       "a name per drop reason");

const char *dp_frame_drop_name(enum dp_frame_drop d)
{
	return (unsigned)d < DP_DROP__N ? drop_names[d] : "?";
}

void dp_mac_format(const struct dp_mac *m, char *buf, size_t size)
{
	snprintf(buf, size, "%02x:%02x:%02x:%02x:%02x:%02x", m->b[0], m->b[1],
		 m->b[2], m->b[3], m->b[4], m->b[5]);
}

void dp_ip4_format(uint32_t ip, char *buf, size_t size)
{
	const uint8_t *b = (const uint8_t *)&ip;
	snprintf(buf, size, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
}

/* ---- checksums --------------------------------------------------------- */

/*
 * The one's complement sum does not depend on byte order (RFC 1071 §2B):
 * summing native 16-bit words and storing the result natively gives the
 * bytes a big-endian sum would.  Eight bytes at a time with end-around
 * carry, then folded.
 */
uint32_t dp_inet_sum(const void *data, size_t len, uint32_t sum)
{
	const uint8_t *p = data;
	uint64_t acc = sum;
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		acc += w;
		if (acc < w)
			acc++;
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		acc += w;
		if (acc < w)
			acc++;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t w;
		memcpy(&w, p, 2);
		acc += w;
		if (acc < w)
			acc++;
		p += 2;
		len -= 2;
	}
	if (len) {
		/* The odd byte is the high-order byte of a word padded with
		 * zero, in memory order. */
		uint8_t last[2] = {p[0], 0};
		uint16_t w;
		memcpy(&w, last, 2);
		acc += w;
		if (acc < w)
			acc++;
	}
	/* Fold 64 -> 32 bits with end-around carry. */
	acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
	acc = (acc & 0xFFFFFFFFu) + (acc >> 32);
	return (uint32_t)acc;
}

static uint16_t fold(uint32_t sum)
{
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	return (uint16_t)sum;
}

uint16_t dp_inet_csum(const void *data, size_t len, uint32_t sum)
{
	return (uint16_t)~fold(dp_inet_sum(data, len, sum));
}

static uint32_t udp4_pseudo_sum(uint32_t src_ip, uint32_t dst_ip,
				size_t udp_len)
{
	uint8_t ph[12];
	memcpy(ph, &src_ip, 4);
	memcpy(ph + 4, &dst_ip, 4);
	ph[8] = 0;
	ph[9] = DP_IPPROTO_UDP;
	ph[10] = (uint8_t)(udp_len >> 8);
	ph[11] = (uint8_t)udp_len;
	return dp_inet_sum(ph, sizeof(ph), 0);
}

uint16_t dp_udp4_csum(uint32_t src_ip, uint32_t dst_ip, const void *udp,
		      size_t udp_len)
{
	uint16_t c = dp_inet_csum(udp, udp_len,
				  udp4_pseudo_sum(src_ip, dst_ip, udp_len));
	return c ? c : 0xFFFF;
}

/* ---- big-endian fields -------------------------------------------------- */

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint32_t raw32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* ---- parsing ----------------------------------------------------------- */

static void drop(struct dp_frame *out, enum dp_frame_drop why)
{
	out->kind = DP_FRAME_DROP;
	out->drop = why;
}

/* A source no unicast host has: 0.0.0.0/8, loopback, multicast, class E
 * and broadcast. */
static bool martian_source(uint32_t ip_be)
{
	uint32_t ip = ntohl(ip_be);
	uint8_t top = (uint8_t)(ip >> 24);
	return top == 0 || top == 127 || top >= 224;
}

static void parse_arp(const uint8_t *a, size_t len,
		      const struct dp_frame_host *h, struct dp_frame *out)
{
	if (len < DP_ARP_LEN) {
		drop(out, DP_DROP_ARP);
		return;
	}
	if (be16(a) != 1 || be16(a + 2) != DP_ETHERTYPE_IPV4 || a[4] != 6 ||
	    a[5] != 4) {
		drop(out, DP_DROP_ARP);
		return;
	}
	unsigned op = be16(a + 6);
	uint32_t target_ip = raw32(a + 24);
	memcpy(out->src_mac.b, a + 8, DP_ETH_ALEN);
	out->src_ip = raw32(a + 14);
	if (target_ip != h->ip || martian_source(out->src_ip)) {
		drop(out, DP_DROP_ARP);
		return;
	}
	if (op == DP_ARP_REQUEST)
		out->kind = DP_FRAME_ARP_REQUEST;
	else if (op == DP_ARP_REPLY)
		out->kind = DP_FRAME_ARP_REPLY;
	else
		drop(out, DP_DROP_ARP);
}

static void parse_icmp(const uint8_t *icmp, size_t len, size_t off,
		       enum dp_csum_hint l4_hint, struct dp_frame *out)
{
	if (len < DP_ICMP_HLEN || icmp[0] != ICMP_ECHO_REQUEST || icmp[1]) {
		drop(out, DP_DROP_ICMP);
		return;
	}
	if (l4_hint == DP_CSUM_BAD ||
	    (l4_hint != DP_CSUM_GOOD &&
	     fold(dp_inet_sum(icmp, len, 0)) != 0xFFFF)) {
		drop(out, DP_DROP_L4_CKSUM);
		return;
	}
	out->kind = DP_FRAME_ICMP_ECHO;
	out->payload_off = off;
	out->payload_len = len;
}

static void parse_udp(const uint8_t *ip, const uint8_t *udp, size_t len,
		      size_t off, const struct dp_frame_host *h,
		      enum dp_csum_hint l4_hint, struct dp_frame *out)
{
	if (len < DP_UDP_HLEN) {
		drop(out, DP_DROP_UDP_MALFORMED);
		return;
	}
	size_t ulen = be16(udp + 4);
	if (ulen < DP_UDP_HLEN || ulen > len) {
		drop(out, DP_DROP_UDP_MALFORMED);
		return;
	}
	if (be16(udp + 2) != h->port) {
		drop(out, DP_DROP_UDP_PORT);
		return;
	}
	uint16_t stored;
	memcpy(&stored, udp + 6, 2);
	/* 0: the sender computed no checksum (allowed over IPv4). */
	if (stored && l4_hint != DP_CSUM_GOOD) {
		bool bad = l4_hint == DP_CSUM_BAD;
		if (!bad) {
			uint32_t s = udp4_pseudo_sum(raw32(ip + 12),
						     raw32(ip + 16), ulen);
			bad = fold(dp_inet_sum(udp, ulen, s)) != 0xFFFF;
		}
		if (bad) {
			drop(out, DP_DROP_L4_CKSUM);
			return;
		}
	}
	out->kind = DP_FRAME_UDP;
	out->src_port = be16(udp);
	out->payload_off = off + DP_UDP_HLEN;
	out->payload_len = ulen - DP_UDP_HLEN;
}

void dp_frame_parse(const uint8_t *f, size_t len, const struct dp_frame_host *h,
		    enum dp_csum_hint ip_hint, enum dp_csum_hint l4_hint,
		    struct dp_frame *out)
{
	memset(out, 0, sizeof(*out));
	if (len < DP_ETH_HLEN) {
		drop(out, DP_DROP_L2_SHORT);
		return;
	}
	struct dp_mac dst;
	memcpy(dst.b, f, DP_ETH_ALEN);
	memcpy(out->src_mac.b, f + 6, DP_ETH_ALEN);
	uint16_t type = be16(f + 12);
	bool to_us = dp_mac_equal(&dst, &h->mac);
	if (type == DP_ETHERTYPE_ARP) {
		if (!to_us && !dp_mac_equal(&dst, &dp_mac_broadcast)) {
			drop(out, DP_DROP_L2_FOREIGN);
			return;
		}
		parse_arp(f + DP_ETH_HLEN, len - DP_ETH_HLEN, h, out);
		return;
	}
	if (!to_us) {
		drop(out, DP_DROP_L2_FOREIGN);
		return;
	}
	if (type == DP_ETHERTYPE_IPV6) {
		drop(out, DP_DROP_IPV6);
		return;
	}
	if (type != DP_ETHERTYPE_IPV4) {
		drop(out, DP_DROP_L2_PROTO);
		return;
	}
	const uint8_t *ip = f + DP_ETH_HLEN;
	size_t room = len - DP_ETH_HLEN;
	if (room < DP_IP4_HLEN || ip[0] >> 4 != 4 || (ip[0] & 0xF) < 5) {
		drop(out, DP_DROP_IP_MALFORMED);
		return;
	}
	if ((ip[0] & 0xF) != 5) {
		drop(out, DP_DROP_IP_OPTIONS);
		return;
	}
	size_t total = be16(ip + 2);
	if (total < DP_IP4_HLEN || total > room) {
		drop(out, DP_DROP_IP_MALFORMED);
		return;
	}
	if (ip_hint == DP_CSUM_BAD ||
	    (ip_hint != DP_CSUM_GOOD &&
	     fold(dp_inet_sum(ip, DP_IP4_HLEN, 0)) != 0xFFFF)) {
		drop(out, DP_DROP_IP_CKSUM);
		return;
	}
	if (be16(ip + 6) & (IP_FLAG_MF | IP_OFFSET_MASK)) {
		drop(out, DP_DROP_IP_FRAGMENT);
		return;
	}
	if (raw32(ip + 16) != h->ip) {
		drop(out, DP_DROP_IP_FOREIGN);
		return;
	}
	out->src_ip = raw32(ip + 12);
	if (martian_source(out->src_ip)) {
		drop(out, DP_DROP_IP_SOURCE);
		return;
	}
	out->ip_len = (uint16_t)total;
	const uint8_t *l4 = ip + DP_IP4_HLEN;
	size_t l4_len = total - DP_IP4_HLEN;
	size_t l4_off = DP_ETH_HLEN + DP_IP4_HLEN;
	switch (ip[9]) {
	case DP_IPPROTO_UDP:
		parse_udp(ip, l4, l4_len, l4_off, h, l4_hint, out);
		return;
	case DP_IPPROTO_ICMP:
		parse_icmp(l4, l4_len, l4_off, l4_hint, out);
		return;
	default:
		drop(out, DP_DROP_IP_PROTO);
		return;
	}
}

bool dp_frame_arp_conflict(const uint8_t *f, size_t len,
			   const struct dp_frame_host *h)
{
	if (len < DP_ETH_HLEN + DP_ARP_LEN || be16(f + 12) != DP_ETHERTYPE_ARP)
		return false;
	const uint8_t *a = f + DP_ETH_HLEN;
	if (be16(a) != 1 || be16(a + 2) != DP_ETHERTYPE_IPV4 || a[4] != 6 ||
	    a[5] != 4)
		return false;
	struct dp_mac sender;
	memcpy(sender.b, a + 8, DP_ETH_ALEN);
	return raw32(a + 14) == h->ip && !dp_mac_equal(&sender, &h->mac);
}

/* ---- building ---------------------------------------------------------- */

static void eth_header(uint8_t *f, const struct dp_mac *dst,
		       const struct dp_mac *src, uint16_t type)
{
	memcpy(f, dst->b, DP_ETH_ALEN);
	memcpy(f + 6, src->b, DP_ETH_ALEN);
	put_be16(f + 12, type);
}

void dp_frame_udp4(uint8_t *buf, const struct dp_mac *dst_mac,
		   const struct dp_mac *src_mac, uint32_t src_ip,
		   uint32_t dst_ip, uint16_t src_port, uint16_t dst_port,
		   size_t len, uint16_t ip_id, unsigned flags)
{
	eth_header(buf, dst_mac, src_mac, DP_ETHERTYPE_IPV4);
	uint8_t *ip = buf + DP_ETH_HLEN;
	size_t ulen = DP_UDP_HLEN + len;
	ip[0] = 0x45;
	ip[1] = 0;
	put_be16(ip + 2, (uint16_t)(DP_IP4_HLEN + ulen));
	put_be16(ip + 4, ip_id);
	put_be16(ip + 6, IP_FLAG_DF);
	ip[8] = DEFAULT_TTL;
	ip[9] = DP_IPPROTO_UDP;
	ip[10] = ip[11] = 0;
	memcpy(ip + 12, &src_ip, 4);
	memcpy(ip + 16, &dst_ip, 4);
	if (!(flags & DP_FRAME_IP_CSUM_OFFLOAD)) {
		uint16_t c = dp_inet_csum(ip, DP_IP4_HLEN, 0);
		memcpy(ip + 10, &c, 2);
	}
	uint8_t *udp = ip + DP_IP4_HLEN;
	put_be16(udp, src_port);
	put_be16(udp + 2, dst_port);
	put_be16(udp + 4, (uint16_t)ulen);
	udp[6] = udp[7] = 0;
	uint16_t c;
	if (flags & DP_FRAME_UDP_CSUM_OFFLOAD)
		c = fold(udp4_pseudo_sum(src_ip, dst_ip, ulen));
	else if (flags & DP_FRAME_UDP_CSUM_NONE)
		c = 0;
	else
		c = dp_udp4_csum(src_ip, dst_ip, udp, ulen);
	memcpy(udp + 6, &c, 2);
}

size_t dp_frame_arp(uint8_t *buf, unsigned op, const struct dp_mac *sender_mac,
		    uint32_t sender_ip, const struct dp_mac *target_mac,
		    uint32_t target_ip)
{
	static const struct dp_mac zero = {{0}};
	bool request = op == DP_ARP_REQUEST;
	eth_header(buf, request ? &dp_mac_broadcast : target_mac, sender_mac,
		   DP_ETHERTYPE_ARP);
	uint8_t *a = buf + DP_ETH_HLEN;
	put_be16(a, 1);
	put_be16(a + 2, DP_ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	put_be16(a + 6, (uint16_t)op);
	memcpy(a + 8, sender_mac->b, DP_ETH_ALEN);
	memcpy(a + 14, &sender_ip, 4);
	memcpy(a + 18, request ? zero.b : target_mac->b, DP_ETH_ALEN);
	memcpy(a + 24, &target_ip, 4);
	return DP_ETH_HLEN + DP_ARP_LEN;
}

size_t dp_frame_icmp_echo_reply(uint8_t *f, const struct dp_frame *fr,
				const struct dp_frame_host *h)
{
	eth_header(f, &fr->src_mac, &h->mac, DP_ETHERTYPE_IPV4);
	uint8_t *ip = f + DP_ETH_HLEN;
	memcpy(ip + 12, &h->ip, 4);
	memcpy(ip + 16, &fr->src_ip, 4);
	ip[8] = DEFAULT_TTL;
	ip[10] = ip[11] = 0;
	uint16_t c = dp_inet_csum(ip, DP_IP4_HLEN, 0);
	memcpy(ip + 10, &c, 2);
	uint8_t *icmp = f + fr->payload_off;
	icmp[0] = ICMP_ECHO_REPLY;
	icmp[2] = icmp[3] = 0;
	c = dp_inet_csum(icmp, fr->payload_len, 0);
	memcpy(icmp + 2, &c, 2);
	return DP_ETH_HLEN + fr->ip_len;
}
