/*
 * Unit tests of the frames of the DPDK path's IPv4 host and of its
 * neighbour cache (dataplane/pkt.h, neigh.h).  The reference frames were
 * made by the Linux kernel (a UDP datagram and an ICMP echo request sent
 * through a veth with checksum offload off, and an iputils arping
 * request), so the checksums they carry are the kernel's, not ours.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/counters.h"
#include "dataplane/neigh.h"
#include "dataplane/pkt.h"
#include "tests/unit/harness.h"

/* 10.77.0.1:40000 -> 10.77.0.2:7070 "hello slmd over udp", IP id 0x544d. */
static const char udp_hex[] =
	"02000000000a02000000000b08004500002f544d40004011d1d40a4d00010a4d0002"
	"9c401b9e001b202068656c6c6f20736c6d64206f76657220756470";
/* ping -s 16: echo request id 0x7159 seq 1 from 10.77.0.1. */
static const char icmp_hex[] =
	"02000000000a02000000000b08004500002c505e40004001d5d60a4d00010a4d0002"
	"0800cc3971590001cfa8056b00000000d9570c0000000000";
/* arping: who has 10.77.0.2, tell 10.77.0.1 (target MAC all ones). */
static const char arp_hex[] = "ffffffffffff02000000000b0806000108000604000102"
			      "000000000b0a4d0001ffffffffffff0a4d0002";

static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = strlen(hex) / 2;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return n;
}

static struct dp_frame_host host(void)
{
	struct dp_frame_host h = {.mac = {{0x02, 0, 0, 0, 0, 0x0a}},
				  .port = 7070};
	inet_pton(AF_INET, "10.77.0.2", &h.ip);
	return h;
}

static uint32_t ip4(const char *s)
{
	uint32_t a;
	inet_pton(AF_INET, s, &a);
	return a;
}

static void fix_ip_csum(uint8_t *f)
{
	f[24] = f[25] = 0;
	uint16_t c = dp_inet_csum(f + 14, 20, 0);
	memcpy(f + 24, &c, 2);
}

static enum dp_frame_drop parse_drop(const uint8_t *f, size_t len)
{
	struct dp_frame_host h = host();
	struct dp_frame fr;
	dp_frame_parse(f, len, &h, DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
	return fr.kind == DP_FRAME_DROP ? fr.drop : DP_DROP_NONE;
}

static void test_kernel_frames(void)
{
	uint8_t f[128];
	struct dp_frame_host h = host();
	struct dp_frame fr;

	size_t n = unhex(udp_hex, f);
	dp_frame_parse(f, n, &h, DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL(fr.kind, DP_FRAME_UDP);
	CU_ASSERT_EQUAL(fr.src_ip, ip4("10.77.0.1"));
	CU_ASSERT_EQUAL(fr.src_port, 40000);
	CU_ASSERT_EQUAL(fr.payload_off, DP_UDP4_HDRS);
	CU_ASSERT_EQUAL(fr.payload_len, 19);
	CU_ASSERT_EQUAL(memcmp(f + fr.payload_off, "hello slmd over udp", 19),
			0);
	CU_ASSERT_EQUAL(fr.src_mac.b[5], 0x0b);

	n = unhex(icmp_hex, f);
	dp_frame_parse(f, n, &h, DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL(fr.kind, DP_FRAME_ICMP_ECHO);
	CU_ASSERT_EQUAL(fr.payload_len, 24);

	n = unhex(arp_hex, f);
	dp_frame_parse(f, n, &h, DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL(fr.kind, DP_FRAME_ARP_REQUEST);
	CU_ASSERT_EQUAL(fr.src_ip, ip4("10.77.0.1"));
	CU_ASSERT_EQUAL(fr.src_mac.b[5], 0x0b);
}

/* Our builder gives the kernel's bytes for the same datagram, checksums
 * included. */
static void test_build_udp_as_the_kernel(void)
{
	uint8_t k[128], f[128];
	size_t n = unhex(udp_hex, k);
	struct dp_mac dst = {{0x02, 0, 0, 0, 0, 0x0a}};
	struct dp_mac src = {{0x02, 0, 0, 0, 0, 0x0b}};
	memcpy(f + DP_UDP4_HDRS, "hello slmd over udp", 19);
	dp_frame_udp4(f, &dst, &src, ip4("10.77.0.1"), ip4("10.77.0.2"), 40000,
		      7070, 19, 0x544d, 0);
	CU_ASSERT_EQUAL(n, DP_UDP4_HDRS + 19);
	CU_ASSERT_EQUAL(memcmp(f, k, n), 0);
	/* No checksum: 0 in the header, and still accepted. */
	dp_frame_udp4(f, &dst, &src, ip4("10.77.0.1"), ip4("10.77.0.2"), 40000,
		      7070, 19, 0x544d, DP_FRAME_UDP_CSUM_NONE);
	CU_ASSERT_EQUAL(f[40], 0);
	CU_ASSERT_EQUAL(f[41], 0);
	CU_ASSERT_EQUAL(parse_drop(f, n), DP_DROP_NONE);
	/* Offloaded: the IP checksum is left 0, the UDP field holds the
	 * uncomplemented pseudo-header sum a NIC completes. */
	dp_frame_udp4(f, &dst, &src, ip4("10.77.0.1"), ip4("10.77.0.2"), 40000,
		      7070, 19, 0x544d,
		      DP_FRAME_IP_CSUM_OFFLOAD | DP_FRAME_UDP_CSUM_OFFLOAD);
	CU_ASSERT_EQUAL(f[24] | f[25], 0);
	uint16_t phdr;
	memcpy(&phdr, f + 40, 2);
	/* Completing it by hand gives the kernel's checksum. */
	f[40] = f[41] = 0;
	uint16_t full = dp_inet_csum(f + 34, 8 + 19, dp_inet_sum(&phdr, 2, 0));
	CU_ASSERT_EQUAL(memcmp(&full, k + 40, 2), 0);
}

static void test_checksums(void)
{
	/* RFC 1071's example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2. */
	static const uint8_t rfc[] = {0x00, 0x01, 0xf2, 0x03,
				      0xf4, 0xf5, 0xf6, 0xf7};
	uint16_t c = dp_inet_csum(rfc, sizeof(rfc), 0);
	uint8_t b[2];
	memcpy(b, &c, 2);
	CU_ASSERT_EQUAL(b[0], (uint8_t)~0xdd);
	CU_ASSERT_EQUAL(b[1], (uint8_t)~0xf2);
	/* Odd lengths and every split point agree with one pass. */
	uint8_t data[301];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 37 + 11);
	for (size_t len = 0; len <= sizeof(data); len += 7) {
		uint16_t one = dp_inet_csum(data, len, 0);
		for (size_t cut = 0; cut <= len; cut += 2) {
			uint32_t s = dp_inet_sum(data, cut, 0);
			CU_ASSERT_EQUAL(dp_inet_csum(data + cut, len - cut, s),
					one);
		}
	}
	uint8_t k[128];
	size_t n = unhex(udp_hex, k);
	/* With its checksum in place a datagram sums to all ones (the
	 * complement 0 comes out as 0xFFFF). */
	CU_ASSERT_EQUAL(dp_udp4_csum(ip4("10.77.0.1"), ip4("10.77.0.2"), k + 34,
				     n - 34),
			0xFFFF);
	/* Without it, we compute the kernel's 0x2020. */
	k[40] = k[41] = 0;
	uint16_t u = dp_udp4_csum(ip4("10.77.0.1"), ip4("10.77.0.2"), k + 34,
				  n - 34);
	CU_ASSERT_EQUAL(memcmp(&u, "\x20\x20", 2), 0);
}

static void test_echo_reply(void)
{
	uint8_t f[128];
	size_t n = unhex(icmp_hex, f);
	struct dp_frame_host h = host();
	struct dp_frame fr;
	dp_frame_parse(f, n, &h, DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL_FATAL(fr.kind, DP_FRAME_ICMP_ECHO);
	size_t len = dp_frame_icmp_echo_reply(f, &fr, &h);
	CU_ASSERT_EQUAL(len, n);
	CU_ASSERT_EQUAL(f[5], 0x0b); /* to the sender's MAC */
	CU_ASSERT_EQUAL(f[11], 0x0a);
	CU_ASSERT_EQUAL(memcmp(f + 26, &h.ip, 4), 0);
	uint32_t src = ip4("10.77.0.1");
	CU_ASSERT_EQUAL(memcmp(f + 30, &src, 4), 0);
	CU_ASSERT_EQUAL(f[34], 0); /* echo reply */
	CU_ASSERT_EQUAL(dp_inet_csum(f + 14, 20, 0), 0);
	CU_ASSERT_EQUAL(dp_inet_csum(f + 34, n - 34, 0), 0);
	/* id, sequence and data unchanged */
	CU_ASSERT_EQUAL(f[38], 0x71);
	CU_ASSERT_EQUAL(f[41], 0x01);
}

static void test_arp(void)
{
	struct dp_frame_host h = host();
	struct dp_mac peer = {{0x02, 0, 0, 0, 0, 0x0b}};
	uint8_t f[64];
	/* Our reply, seen by the peer. */
	size_t n = dp_frame_arp(f, DP_ARP_REPLY, &h.mac, h.ip, &peer,
				ip4("10.77.0.1"));
	CU_ASSERT_EQUAL(n, 42);
	struct dp_frame_host p = {.mac = peer, .ip = ip4("10.77.0.1")};
	struct dp_frame fr;
	dp_frame_parse(f, n, &p, DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL(fr.kind, DP_FRAME_ARP_REPLY);
	CU_ASSERT_EQUAL(fr.src_ip, h.ip);
	CU_ASSERT(dp_mac_equal(&fr.src_mac, &h.mac));
	/* A request goes to broadcast with a zero target MAC. */
	n = dp_frame_arp(f, DP_ARP_REQUEST, &peer, ip4("10.77.0.1"),
			 &dp_mac_broadcast, h.ip);
	CU_ASSERT_EQUAL(memcmp(f, dp_mac_broadcast.b, 6), 0);
	CU_ASSERT_EQUAL(f[32] | f[33] | f[34] | f[35] | f[36] | f[37], 0);
	dp_frame_parse(f, n, &h, DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL(fr.kind, DP_FRAME_ARP_REQUEST);
	/* Padded to the Ethernet minimum: still fine. */
	memset(f + n, 0, 60 - n);
	dp_frame_parse(f, 60, &h, DP_CSUM_UNKNOWN, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL(fr.kind, DP_FRAME_ARP_REQUEST);
	/* Gratuitous ARP from us is no conflict; the same from another MAC
	 * is. */
	n = dp_frame_arp(f, DP_ARP_REQUEST, &h.mac, h.ip, &dp_mac_broadcast,
			 h.ip);
	CU_ASSERT_FALSE(dp_frame_arp_conflict(f, n, &h));
	n = dp_frame_arp(f, DP_ARP_REQUEST, &peer, h.ip, &dp_mac_broadcast,
			 h.ip);
	CU_ASSERT_TRUE(dp_frame_arp_conflict(f, n, &h));
}

static void test_drops(void)
{
	uint8_t base[128], f[128];
	size_t n = unhex(udp_hex, base);
#define MUT(expect, ...)                                              \
	do {                                                          \
		memcpy(f, base, n);                                   \
		size_t len_ = n;                                      \
		__VA_ARGS__;                                          \
		enum dp_frame_drop got_ = parse_drop(f, len_);        \
		if (got_ != (expect))                                 \
			fprintf(stderr, "%s: got %s\n", #__VA_ARGS__, \
				dp_frame_drop_name(got_));            \
		CU_ASSERT_EQUAL(got_, expect);                        \
	} while (0)
	MUT(DP_DROP_NONE, (void)0);
	MUT(DP_DROP_L2_SHORT, len_ = 13);
	MUT(DP_DROP_L2_FOREIGN, f[5] = 0x0c);
	MUT(DP_DROP_L2_FOREIGN, memset(f, 0xff, 6));	   /* broadcast */
	MUT(DP_DROP_L2_FOREIGN, f[0] = 0x01; f[1] = 0x00); /* multicast */
	MUT(DP_DROP_IPV6, f[12] = 0x86; f[13] = 0xdd);
	MUT(DP_DROP_L2_PROTO, f[12] = 0x81; f[13] = 0x00);
	MUT(DP_DROP_L2_PROTO, f[12] = 0x88; f[13] = 0xb5);
	MUT(DP_DROP_IP_MALFORMED, len_ = 30);
	MUT(DP_DROP_IP_MALFORMED, f[14] = 0x65; fix_ip_csum(f));
	MUT(DP_DROP_IP_MALFORMED, f[14] = 0x44);
	MUT(DP_DROP_IP_OPTIONS, f[14] = 0x46; fix_ip_csum(f));
	MUT(DP_DROP_IP_MALFORMED, f[17] = 0xff; fix_ip_csum(f));
	MUT(DP_DROP_IP_MALFORMED, f[16] = 0; f[17] = 10; fix_ip_csum(f));
	MUT(DP_DROP_IP_CKSUM, f[24] ^= 1);
	MUT(DP_DROP_IP_FRAGMENT, f[20] = 0x20; fix_ip_csum(f)); /* MF */
	MUT(DP_DROP_IP_FRAGMENT, f[20] = 0x00; f[21] = 8; fix_ip_csum(f));
	MUT(DP_DROP_IP_FOREIGN, f[33] = 9; fix_ip_csum(f));
	MUT(DP_DROP_IP_FOREIGN, memset(f + 30, 0xff, 4); fix_ip_csum(f));
	MUT(DP_DROP_IP_SOURCE, memset(f + 26, 0, 4); fix_ip_csum(f));
	MUT(DP_DROP_IP_SOURCE, f[26] = 224; fix_ip_csum(f));
	MUT(DP_DROP_IP_SOURCE, f[26] = 127; fix_ip_csum(f));
	MUT(DP_DROP_IP_PROTO, f[23] = 6; fix_ip_csum(f));
	MUT(DP_DROP_L4_CKSUM, f[60] ^= 0x20);
	MUT(DP_DROP_NONE, f[40] = f[41] = 0); /* no checksum */
	MUT(DP_DROP_UDP_MALFORMED, f[39] = 0xff);
	MUT(DP_DROP_UDP_MALFORMED, f[38] = 0; f[39] = 7);
	MUT(DP_DROP_UDP_PORT, f[37] ^= 1);
	MUT(DP_DROP_UDP_MALFORMED, f[16] = 0; f[17] = 24; fix_ip_csum(f));
	/* Ethernet padding after the IP packet is ignored. */
	MUT(DP_DROP_NONE, memset(f + n, 0xee, 20); len_ = n + 20);

	n = unhex(icmp_hex, base);
	MUT(DP_DROP_NONE, (void)0);
	MUT(DP_DROP_ICMP, f[34] = 13); /* timestamp request */
	MUT(DP_DROP_ICMP, f[35] = 1);
	MUT(DP_DROP_L4_CKSUM, f[50] ^= 1);
	MUT(DP_DROP_ICMP, f[16] = 0; f[17] = 24; fix_ip_csum(f));

	n = unhex(arp_hex, base);
	MUT(DP_DROP_NONE, (void)0);
	MUT(DP_DROP_ARP, f[41] = 9);		/* for another address */
	MUT(DP_DROP_ARP, f[18] = 8);		/* hlen 8 */
	MUT(DP_DROP_ARP, f[16] = 0x86);		/* not IPv4 */
	MUT(DP_DROP_ARP, f[21] = 3);		/* RARP */
	MUT(DP_DROP_ARP, len_ = 30);		/* truncated */
	MUT(DP_DROP_ARP, memset(f + 28, 0, 4)); /* probe from 0.0.0.0 */
	MUT(DP_DROP_L2_FOREIGN, f[0] = 0x04);	/* unicast, not to us */
#undef MUT
}

static void test_hints(void)
{
	uint8_t f[128];
	size_t n = unhex(udp_hex, f);
	struct dp_frame_host h = host();
	struct dp_frame fr;
	f[24] ^= 1; /* a NIC said GOOD: trusted */
	dp_frame_parse(f, n, &h, DP_CSUM_GOOD, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL(fr.kind, DP_FRAME_UDP);
	f[24] ^= 1;
	dp_frame_parse(f, n, &h, DP_CSUM_BAD, DP_CSUM_UNKNOWN, &fr);
	CU_ASSERT_EQUAL(fr.drop, DP_DROP_IP_CKSUM);
	dp_frame_parse(f, n, &h, DP_CSUM_UNKNOWN, DP_CSUM_BAD, &fr);
	CU_ASSERT_EQUAL(fr.drop, DP_DROP_L4_CKSUM);
	f[60] ^= 1;
	dp_frame_parse(f, n, &h, DP_CSUM_UNKNOWN, DP_CSUM_GOOD, &fr);
	CU_ASSERT_EQUAL(fr.kind, DP_FRAME_UDP);
}

/* Every drop reason has its counter (dataplane/counters.h). */
static void test_drop_counters(void)
{
	for (unsigned d = 1; d < DP_DROP__N; d++) {
		char name[64];
		snprintf(name, sizeof(name), "drop_%s",
			 dp_frame_drop_name((enum dp_frame_drop)d));
		bool found = false;
		for (unsigned i = 0; i < DP_COUNTERS_N; i++)
			found |= !strcmp(dp_counter_name(i), name);
		if (!found)
			fprintf(stderr, "no counter %s\n", name);
		CU_ASSERT_TRUE(found);
	}
}

static void test_neigh(void)
{
	struct dp_neigh *n = NULL;
	CU_ASSERT_EQUAL_FATAL(dp_neigh_create(16, &n), 0);
	struct dp_mac a = {{2, 0, 0, 0, 0, 1}}, b = {{2, 0, 0, 0, 0, 2}}, m;
	uint32_t ip = ip4("10.0.0.5");
	CU_ASSERT_FALSE(dp_neigh_lookup(n, 0, ip, &m));
	CU_ASSERT_TRUE(dp_neigh_learn(n, 0, ip, &a, 1));
	CU_ASSERT_FALSE(dp_neigh_learn(n, 0, ip, &a, 2)); /* unchanged */
	CU_ASSERT_TRUE(dp_neigh_lookup(n, 0, ip, &m));
	CU_ASSERT(dp_mac_equal(&m, &a));
	CU_ASSERT_FALSE(dp_neigh_lookup(n, 1, ip, &m));	 /* another link */
	CU_ASSERT_TRUE(dp_neigh_learn(n, 0, ip, &b, 3)); /* moved */
	CU_ASSERT_TRUE(dp_neigh_lookup(n, 0, ip, &m));
	CU_ASSERT(dp_mac_equal(&m, &b));
	CU_ASSERT_EQUAL(dp_neigh_count(n), 1);
	/* refresh touches known addresses only */
	CU_ASSERT_FALSE(dp_neigh_refresh(n, 0, ip4("10.0.0.6"), &a, 4));
	CU_ASSERT_FALSE(dp_neigh_lookup(n, 0, ip4("10.0.0.6"), &m));
	CU_ASSERT_TRUE(dp_neigh_refresh(n, 0, ip, &a, 4));
	/* one ARP request per address per interval */
	uint32_t other = ip4("10.0.0.7");
	CU_ASSERT_TRUE(dp_neigh_should_ask(n, 0, other, 1000, 100));
	CU_ASSERT_FALSE(dp_neigh_should_ask(n, 0, other, 1050, 100));
	CU_ASSERT_TRUE(dp_neigh_should_ask(n, 0, other, 1101, 100));
	CU_ASSERT_FALSE(dp_neigh_lookup(n, 0, other, &m));
	CU_ASSERT_FALSE(dp_neigh_should_ask(n, 0, ip, 2000, 100)); /* known */
	CU_ASSERT_TRUE(dp_neigh_learn(n, 0, other, &b, 2000));
	CU_ASSERT_EQUAL(dp_neigh_count(n), 2);
	/* Bounded: far more addresses than slots; the newest are there. */
	for (uint32_t i = 0; i < 1000; i++)
		dp_neigh_learn(n, 0, htonl(0x0b000000u + i), &a, 10000 + i);
	CU_ASSERT(dp_neigh_count(n) <= 16);
	CU_ASSERT_TRUE(dp_neigh_lookup(n, 0, htonl(0x0b000000u + 999), &m));
	dp_neigh_destroy(n);
}

SLM_SUITE("pkt", NULL, NULL, {"kernel frames", test_kernel_frames},
	  {"build UDP as the kernel does", test_build_udp_as_the_kernel},
	  {"checksums", test_checksums}, {"ICMP echo reply", test_echo_reply},
	  {"ARP", test_arp}, {"every drop reason", test_drops},
	  {"NIC checksum hints", test_hints},
	  {"a counter per drop reason", test_drop_counters},
	  {"neighbour cache", test_neigh});
