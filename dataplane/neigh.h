/*
 * neigh.h: the neighbour (ARP) cache of the DPDK dataplane: which
 * Ethernet address an IPv4 peer on a link has.
 *
 * A table maps (link, IPv4 address) to a MAC.  It is filled from what
 * arrives: the source MAC of every IPv4 packet from a peer and the sender
 * of every ARP request or reply addressed to us, so a reply goes back to
 * the Ethernet address its request came from (the client, or the router
 * in front of it).  An address with no entry is resolved by an ARP
 * request; the table remembers when it asked, so a burst of sends asks
 * once (dp_neigh_should_ask).
 *
 * Bounded: open addressing over a power-of-two array; when an address's
 * probe window is full the least recently confirmed entry in it gives way.
 * There is no expiry: every packet from a peer refreshes its entry, and a
 * MAC that changed is replaced by the next packet from the new one.
 *
 * Threads: a table belongs to one thread (each lcore keeps its own,
 * learned from what it receives).  dpdk.c shares one more table between
 * lcores for ARP replies, which RSS may deliver to another lcore than the
 * one that asked; it guards that one with a lock.
 */
#ifndef SLM_DATAPLANE_NEIGH_H
#define SLM_DATAPLANE_NEIGH_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "dataplane/pkt.h"

struct dp_neigh;

/* capacity: entries, rounded up to a power of two (at least 16). */
int dp_neigh_create(unsigned capacity, struct dp_neigh **out) SLM_MUST_CHECK;
void dp_neigh_destroy(struct dp_neigh *n);

/*
 * Learn that ip (network byte order) on link has mac, at now_ns.
 * Returns true when this is new or the MAC changed (a counter's event).
 */
bool dp_neigh_learn(struct dp_neigh *n, uint16_t link, uint32_t ip,
		    const struct dp_mac *mac, uint64_t now_ns);

/* Update ip's MAC only if it is already known (RFC 826's merge, for ARP
 * traffic not addressed to us).  Returns true when it changed. */
bool dp_neigh_refresh(struct dp_neigh *n, uint16_t link, uint32_t ip,
		      const struct dp_mac *mac, uint64_t now_ns);

/* The MAC of ip on link; false when not known. */
bool dp_neigh_lookup(const struct dp_neigh *n, uint16_t link, uint32_t ip,
		     struct dp_mac *mac);

/*
 * For an address with no MAC: true when an ARP request should go out now
 * (none was sent for it in the last interval_ns), and records that one
 * is sent.  False when one is already pending.
 */
bool dp_neigh_should_ask(struct dp_neigh *n, uint16_t link, uint32_t ip,
			 uint64_t now_ns, uint64_t interval_ns);

/* Entries with a MAC. */
unsigned dp_neigh_count(const struct dp_neigh *n);

#endif
