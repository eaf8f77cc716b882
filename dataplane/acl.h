/*
 * acl.h: the allowlist of client networks (config dataplane.allow).
 *
 * A list of IPv4 and IPv6 networks in CIDR form ("10.0.0.0/8",
 * "2001:db8::/32"; a bare address is a single host), separated by commas
 * or blanks.  A datagram from a peer outside every network is dropped and
 * counted before anything else is read.  An empty list allows everyone.
 * IPv4 clients reaching an IPv6 socket are matched as IPv4 (peer.h).
 */
#ifndef SLM_DATAPLANE_ACL_H
#define SLM_DATAPLANE_ACL_H

#include <stdbool.h>

#include "common/err.h"
#include "dataplane/peer.h"

struct dp_acl;

/* Parse a list; *out is NULL for an empty list (everyone allowed).
 * SLM_ECONFIG names the bad entry. */
int dp_acl_parse(const char *list, struct dp_acl **out,
		 struct slm_error *err) SLM_MUST_CHECK;
void dp_acl_destroy(struct dp_acl *acl);

/* True when acl is NULL or a network holds the peer's address. */
bool dp_acl_allows(const struct dp_acl *acl, const struct dp_peer *p);

/* Networks in the list. */
unsigned dp_acl_count(const struct dp_acl *acl);

#endif
