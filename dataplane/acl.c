/* acl.c: client network allowlist.  See acl.h. */
#include "dataplane/acl.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

struct dp_net {
	uint16_t family;
	uint8_t bits; /* prefix length */
	uint8_t addr[16];
};

struct dp_acl {
	unsigned n;
	struct dp_net net[];
};

static bool prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;
	if (memcmp(a, b, whole))
		return false;
	if (!rest)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - rest));
	return (a[whole] & mask) == (b[whole] & mask);
}

static int parse_net(const char *tok, struct dp_net *n, struct slm_error *err)
{
	char buf[64];
	size_t len = strlen(tok);
	if (len >= sizeof(buf))
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.allow: '%s' is too long", tok);
	memcpy(buf, tok, len + 1);
	char *slash = strchr(buf, '/');
	long bits = -1;
	if (slash) {
		*slash = '\0';
		char *end;
		bits = strtol(slash + 1, &end, 10);
		if (end == slash + 1 || *end || bits < 0)
			return slm_error_set(err, SLM_ECONFIG,
					     "dataplane.allow: '%s': bad "
					     "prefix length",
					     tok);
	}
	memset(n, 0, sizeof(*n));
	if (inet_pton(AF_INET, buf, n->addr) == 1) {
		n->family = AF_INET;
		if (bits < 0)
			bits = 32;
		if (bits > 32)
			return slm_error_set(err, SLM_ECONFIG,
					     "dataplane.allow: '%s': an IPv4 "
					     "prefix is at most /32",
					     tok);
	} else if (inet_pton(AF_INET6, buf, n->addr) == 1) {
		n->family = AF_INET6;
		if (bits < 0)
			bits = 128;
		if (bits > 128)
			return slm_error_set(err, SLM_ECONFIG,
					     "dataplane.allow: '%s': an IPv6 "
					     "prefix is at most /128",
					     tok);
		/* An IPv4-mapped network is an IPv4 network. */
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
						   0, 0, 0, 0, 0xff, 0xff};
		if (!memcmp(n->addr, mapped, 12) && bits >= 96) {
			memmove(n->addr, n->addr + 12, 4);
			memset(n->addr + 4, 0, 12);
			n->family = AF_INET;
			bits -= 96;
		}
	} else {
		return slm_error_set(err, SLM_ECONFIG,
				     "dataplane.allow: '%s' is not an IPv4 "
				     "or IPv6 network (CIDR)",
				     tok);
	}
	n->bits = (uint8_t)bits;
	return 0;
}

int dp_acl_parse(const char *list, struct dp_acl **out, struct slm_error *err)
{
	*out = NULL;
	static const char *seps = ", \t";
	unsigned n = 0;
	for (const char *p = list; *p;) {
		p += strspn(p, seps);
		if (!*p)
			break;
		n++;
		p += strcspn(p, seps);
	}
	if (!n)
		return 0;
	struct dp_acl *acl = calloc(1, sizeof(*acl) + n * sizeof(acl->net[0]));
	if (!acl)
		return slm_error_set(err, SLM_ENOMEM, "allowlist");
	for (const char *p = list; *p;) {
		p += strspn(p, seps);
		if (!*p)
			break;
		size_t len = strcspn(p, seps);
		char tok[80];
		if (len >= sizeof(tok)) {
			unsigned at = acl->n + 1;
			free(acl);
			return slm_error_set(err, SLM_ECONFIG,
					     "dataplane.allow: entry %u is "
					     "too long",
					     at);
		}
		memcpy(tok, p, len);
		tok[len] = '\0';
		int rc = parse_net(tok, &acl->net[acl->n], err);
		if (rc) {
			free(acl);
			return rc;
		}
		acl->n++;
		p += len;
	}
	*out = acl;
	return 0;
}

void dp_acl_destroy(struct dp_acl *acl)
{
	free(acl);
}

bool dp_acl_allows(const struct dp_acl *acl, const struct dp_peer *p)
{
	if (!acl)
		return true;
	for (unsigned i = 0; i < acl->n; i++) {
		const struct dp_net *n = &acl->net[i];
		if (n->family == p->family &&
		    prefix_match(n->addr, p->addr, n->bits))
			return true;
	}
	return false;
}

unsigned dp_acl_count(const struct dp_acl *acl)
{
	return acl ? acl->n : 0;
}
