/*
 * transport.h: how libslmclient moves datagrams to and from a server.
 * Internal to the library and its plugins; not installed.
 *
 * The protocol (client.c) sits on a transport chosen by the URL's
 * scheme:
 *   udp://HOST:PORT     the kernel's UDP socket (client.c);
 *   memif:///PATH[?port=N][&id=K]
 *                       a memif link to slmd over shared memory, driven
 *                       by DPDK in this process (client/memif_plugin.c).
 * The memif transport lives in a shared object of its own
 * (libslmclient-memif.so in a slmclient/ folder beside the library, or
 * $SLM_CLIENT_PLUGIN_DIR), opened with dlopen the first time a memif URL
 * is: applications that never use memif load no DPDK and keep no EAL
 * state (docs/operations.md has the why).
 *
 * A transport is a table of functions over its own connection state.
 * Every function is called by the thread that uses the connection (the
 * connection's contract: one thread at a time); codes are the library's
 * SLM_CLIENT_E* values.
 */
#ifndef SLM_CLIENT_TRANSPORT_H
#define SLM_CLIENT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

/* Bumped when this table changes; a plugin of another ABI is refused. */
#define SLMC_TRANSPORT_ABI 1u

struct slmc_conn;

struct slmc_transport {
	uint32_t abi;
	const char *scheme; /* "udp", "memif" */
	/*
	 * Connect to url (its whole text, scheme included).  On error
	 * *out is NULL and msg (msg_size bytes; may be NULL) says why.
	 */
	int (*open)(const char *url, struct slmc_conn **out, char *msg,
		    size_t msg_size);
	void (*close)(struct slmc_conn *c);
	/* Send one datagram (copied before return).  0; SLM_CLIENT_ECONNECT
	 * when the server is known to refuse (nothing listens); another
	 * negative code when this one was not sent. */
	int (*send)(struct slmc_conn *c, const void *buf, size_t len);
	/* Take one received datagram into buf[size]: its length; 0 when none
	 * waits; SLM_CLIENT_ECONNECT for a refusal report (call again);
	 * another negative code on error. */
	int (*recv)(struct slmc_conn *c, void *buf, size_t size);
	/* Wait at most timeout_ns for a datagram to receive.  1: one may be
	 * waiting; 0: timed out; negative: error. */
	int (*wait)(struct slmc_conn *c, uint64_t timeout_ns);
	/* A descriptor that is readable when a datagram waits, or -1 when
	 * the transport has none (memif polls). */
	int (*fd)(const struct slmc_conn *c);
};

/* What a transport plugin exports (dlsym). */
#define SLMC_PLUGIN_SYMBOL "slmc_transport_plugin"
typedef const struct slmc_transport *(*slmc_plugin_fn)(void);

#endif
