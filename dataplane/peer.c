/* peer.c: peers and URLs.  See peer.h. */
#include "dataplane/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slm/protocol.h"

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int dp_peer_from_sockaddr(struct dp_peer *p, const struct sockaddr *sa,
			  socklen_t len)
{
	memset(p, 0, sizeof(*p));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *in = (const void *)sa;
		p->family = AF_INET;
		p->port = ntohs(in->sin_port);
		memcpy(p->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		p->port = ntohs(in6->sin6_port);
		if (!memcmp(in6->sin6_addr.s6_addr, v4mapped, 12)) {
			p->family = AF_INET;
			memcpy(p->addr, in6->sin6_addr.s6_addr + 12, 4);
		} else {
			p->family = AF_INET6;
			p->scope_id = in6->sin6_scope_id;
			memcpy(p->addr, in6->sin6_addr.s6_addr, 16);
		}
		return 0;
	}
	return SLM_EINVAL;
}

socklen_t dp_peer_to_sockaddr(const struct dp_peer *p,
			      struct sockaddr_storage *ss, int sock_family)
{
	memset(ss, 0, sizeof(*ss));
	if (p->family == AF_INET && sock_family == AF_INET) {
		struct sockaddr_in *in = (void *)ss;
		in->sin_family = AF_INET;
		in->sin_port = htons(p->port);
		memcpy(&in->sin_addr, p->addr, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (void *)ss;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(p->port);
	if (p->family == AF_INET) {
		memcpy(in6->sin6_addr.s6_addr, v4mapped, 12);
		memcpy(in6->sin6_addr.s6_addr + 12, p->addr, 4);
	} else {
		memcpy(in6->sin6_addr.s6_addr, p->addr, 16);
		in6->sin6_scope_id = p->scope_id;
	}
	return sizeof(*in6);
}

bool dp_peer_equal(const struct dp_peer *a, const struct dp_peer *b)
{
	return a->family == b->family && a->port == b->port &&
	       a->scope_id == b->scope_id && !memcmp(a->addr, b->addr, 16);
}

uint64_t dp_peer_hash(const struct dp_peer *p, uint64_t seed)
{
	/* FNV-1a over the fields, then a 64-bit finaliser (splitmix). */
	uint64_t h = 1469598103934665603ull ^ seed;
	const uint8_t *b = p->addr;
	for (int i = 0; i < 16; i++)
		h = (h ^ b[i]) * 1099511628211ull;
	h = (h ^ p->port) * 1099511628211ull;
	h = (h ^ p->family) * 1099511628211ull;
	h = (h ^ p->scope_id) * 1099511628211ull;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ull;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

void dp_peer_format(const struct dp_peer *p, char *buf, size_t size)
{
	char a[INET6_ADDRSTRLEN];
	if (p->family == AF_INET) {
		inet_ntop(AF_INET, p->addr, a, sizeof(a));
		snprintf(buf, size, "%s:%u", a, p->port);
	} else {
		inet_ntop(AF_INET6, p->addr, a, sizeof(a));
		snprintf(buf, size, "[%s]:%u", a, p->port);
	}
}

int dp_url_parse(const char *url, struct dp_url *out, struct slm_error *err)
{
	memset(out, 0, sizeof(*out));
	const char *sep = strstr(url, "://");
	if (!sep || sep == url || (size_t)(sep - url) >= sizeof(out->scheme))
		return slm_error_set(err, SLM_EINVAL,
				     "'%s': expected udp://HOST:PORT", url);
	memcpy(out->scheme, url, (size_t)(sep - url));
	const char *h = sep + 3, *hend, *rest;
	if (*h == '[') {
		hend = strchr(h, ']');
		if (!hend)
			return slm_error_set(err, SLM_EINVAL,
					     "'%s': unclosed '[' in the "
					     "address",
					     url);
		h++;
		rest = hend + 1;
	} else {
		hend = h + strcspn(h, ":/");
		rest = hend;
	}
	size_t hl = (size_t)(hend - h);
	if (hl == 0 || hl >= sizeof(out->host))
		return slm_error_set(err, SLM_EINVAL, "'%s': no host", url);
	memcpy(out->host, h, hl);
	out->port = SLM_PROTO_DEFAULT_PORT;
	if (*rest == ':') {
		char *end;
		errno = 0;
		long port = strtol(rest + 1, &end, 10);
		if (end == rest + 1 || errno || port < 0 || port > 65535)
			return slm_error_set(err, SLM_EINVAL, "'%s': bad port",
					     url);
		out->port = (uint16_t)port;
		rest = end;
	}
	if (*rest == '/')
		rest++;
	if (*rest)
		return slm_error_set(err, SLM_EINVAL,
				     "'%s': unexpected '%s' after the port",
				     url, rest);
	return 0;
}
