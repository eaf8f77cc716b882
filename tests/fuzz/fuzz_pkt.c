/*
 * fuzz_pkt: libFuzzer harness for the frame parser of the DPDK path's
 * IPv4 host (dataplane/pkt.h) and the neighbour cache fed from it.
 *
 * The first byte picks the checksum hints (the rest is a frame); the
 * frame is parsed for a fixed host, copied to an allocation of exactly
 * its size so any read past the end is caught, and what the host would
 * do with it is done: answer an ARP request or an ICMP echo in place,
 * learn the sender, and check that a datagram's payload lies inside the
 * frame.  Nothing may crash or read out of bounds.
 */
// fuzz-sources: dataplane/pkt.c dataplane/neigh.c common/err.c
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane/neigh.h"
#include "dataplane/pkt.h"

static struct dp_neigh *neigh;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (!neigh && dp_neigh_create(64, &neigh))
		return 0;
	struct dp_frame_host h = {.mac = {{0x02, 0, 0, 0, 0, 0x0a}},
				  .port = 7070};
	h.ip = htonl(0x0a4d0002);
	enum dp_csum_hint ip = (enum dp_csum_hint)(data[0] % 3);
	enum dp_csum_hint l4 = (enum dp_csum_hint)(data[0] / 3 % 3);
	size_t n = size - 1;
	uint8_t *f = malloc(n ? n : 1);
	if (!f)
		return 0;
	memcpy(f, data + 1, n);
	struct dp_frame fr;
	dp_frame_parse(f, n, &h, ip, l4, &fr);
	static uint64_t now;
	switch (fr.kind) {
	case DP_FRAME_UDP:
		if (fr.payload_off + fr.payload_len > n)
			abort();
		dp_neigh_learn(neigh, 0, fr.src_ip, &fr.src_mac, ++now);
		break;
	case DP_FRAME_ICMP_ECHO:
		if (fr.payload_off + fr.payload_len > n ||
		    dp_frame_icmp_echo_reply(f, &fr, &h) > n)
			abort();
		break;
	case DP_FRAME_ARP_REQUEST:
	case DP_FRAME_ARP_REPLY:
		if (n < DP_ETH_HLEN + DP_ARP_LEN)
			abort();
		dp_neigh_learn(neigh, 0, fr.src_ip, &fr.src_mac, ++now);
		dp_frame_arp(f, DP_ARP_REPLY, &h.mac, h.ip, &fr.src_mac,
			     fr.src_ip);
		break;
	case DP_FRAME_DROP:
		if (fr.drop == DP_DROP_NONE || fr.drop >= DP_DROP__N)
			abort();
		(void)dp_frame_arp_conflict(f, n, &h);
		break;
	}
	free(f);
	return 0;
}
