/*
 * peer.h: who a datagram came from, independent of the backend, and the
 * `udp://host:port` URLs that name listen addresses and servers.
 *
 * A struct dp_peer is an IPv4 or IPv6 address and a port in a compact,
 * hashable form.  IPv4-mapped IPv6 addresses (::ffff:a.b.c.d, what a
 * dual-stack socket reports for an IPv4 client) are stored as IPv4, so
 * one client is one peer whichever socket it reached.  The kernel backend
 * fills peers from sockaddrs; a DPDK backend fills them from packet
 * headers.
 */
#ifndef SLM_DATAPLANE_PEER_H
#define SLM_DATAPLANE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/err.h"

struct dp_peer {
	uint16_t family;   /* AF_INET or AF_INET6 */
	uint16_t port;	   /* host byte order */
	uint32_t scope_id; /* IPv6 interface scope, 0 for IPv4 */
	uint8_t addr[16];  /* IPv4: the first 4 bytes, the rest zero */
};

/* Fill p from a sockaddr; SLM_EINVAL for another family or a short
 * length. */
int dp_peer_from_sockaddr(struct dp_peer *p, const struct sockaddr *sa,
			  socklen_t len) SLM_MUST_CHECK;

/*
 * The sockaddr to send to p through a socket of family sock_family: an
 * IPv4 peer on an AF_INET6 socket becomes ::ffff:a.b.c.d.  Returns the
 * length.
 */
socklen_t dp_peer_to_sockaddr(const struct dp_peer *p,
			      struct sockaddr_storage *ss, int sock_family);

bool dp_peer_equal(const struct dp_peer *a, const struct dp_peer *b);
uint64_t dp_peer_hash(const struct dp_peer *p, uint64_t seed);

/* "192.0.2.1:7070" or "[2001:db8::1]:7070" into buf (at least 64 bytes). */
void dp_peer_format(const struct dp_peer *p, char *buf, size_t size);

/*
 * Split "udp://HOST:PORT" (HOST a name, an IPv4 address or a bracketed
 * IPv6 address; PORT optional, default SLM_PROTO_DEFAULT_PORT) into its
 * parts.  scheme receives "udp" (or whatever precedes "://": the caller
 * decides which it supports); host is unbracketed.  SLM_EINVAL with err
 * naming what is wrong.
 */
struct dp_url {
	char scheme[16];
	char host[256];
	uint16_t port;
};
int dp_url_parse(const char *url, struct dp_url *out,
		 struct slm_error *err) SLM_MUST_CHECK;

#endif
