/*
 * client_udp.c: libslmclient's udp:// transport, a connected kernel UDP
 * socket.  See client/transport.h.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/client_int.h"
#include "common/err.h"
#include "dataplane/peer.h"
#include "slm/client.h"

struct slmc_conn {
	int fd;
};

static int udp_open(const char *url, struct slmc_conn **out, char *msg,
		    size_t msg_size)
{
	*out = NULL;
	struct dp_url u;
	struct slm_error err = {0};
	if (dp_url_parse(url, &u, &err)) {
		if (msg)
			snprintf(msg, msg_size, "%s", err.msg);
		return SLM_CLIENT_EINVAL;
	}
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_DGRAM,
				 .ai_flags = AI_NUMERICSERV};
	char port[8];
	snprintf(port, sizeof(port), "%u", u.port);
	struct addrinfo *ai = NULL;
	int g = getaddrinfo(u.host, port, &hints, &ai);
	if (g) {
		if (msg)
			snprintf(msg, msg_size, "%s: %s", u.host,
				 gai_strerror(g));
		return SLM_CLIENT_ECONNECT;
	}
	struct slmc_conn *c = calloc(1, sizeof(*c));
	if (!c) {
		freeaddrinfo(ai);
		return SLM_CLIENT_ENOMEM;
	}
	c->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		       0);
	if (c->fd < 0 || connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		int e = errno;
		freeaddrinfo(ai);
		if (c->fd >= 0)
			close(c->fd);
		free(c);
		if (msg)
			snprintf(msg, msg_size, "%s: %s", url, strerror(e));
		return SLM_CLIENT_ECONNECT;
	}
	freeaddrinfo(ai);
	int sz = 1 << 20;
	setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	*out = c;
	return 0;
}

static void udp_close(struct slmc_conn *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c);
}

static int udp_send(struct slmc_conn *c, const void *buf, size_t len)
{
	if (send(c->fd, buf, len, MSG_DONTWAIT) < 0)
		return errno == ECONNREFUSED ? SLM_CLIENT_ECONNECT
					     : SLM_CLIENT_ESYS;
	return 0;
}

static int udp_recv(struct slmc_conn *c, void *buf, size_t size)
{
	for (;;) {
		ssize_t got = recv(c->fd, buf, size, MSG_DONTWAIT);
		if (got > 0)
			return (int)got;
		if (got == 0)
			continue; /* an empty datagram: nothing to read */
		if (errno == ECONNREFUSED)
			return SLM_CLIENT_ECONNECT;
		if (errno == EINTR)
			continue;
		return 0;
	}
}

static int udp_wait(struct slmc_conn *c, uint64_t timeout_ns)
{
	struct timespec ts = {(time_t)(timeout_ns / 1000000000),
			      (long)(timeout_ns % 1000000000)};
	struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
	int rc = ppoll(&pfd, 1, &ts, NULL);
	if (rc < 0)
		return errno == EINTR ? 0 : SLM_CLIENT_ESYS;
	return rc > 0;
}

static int udp_fd(const struct slmc_conn *c)
{
	return c->fd;
}

const struct slmc_transport slmc_transport_udp = {
	.abi = SLMC_TRANSPORT_ABI,
	.scheme = "udp",
	.open = udp_open,
	.close = udp_close,
	.send = udp_send,
	.recv = udp_recv,
	.wait = udp_wait,
	.fd = udp_fd,
};
