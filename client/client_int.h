/*
 * client_int.h: what libslmclient's own files share (client.c the
 * protocol, client_udp.c the kernel transport, client_transport.c the
 * choice of transport and the plugin loader).
 */
#ifndef SLM_CLIENT_CLIENT_INT_H
#define SLM_CLIENT_CLIENT_INT_H

#include <stddef.h>

#include "client/transport.h"
#include "common/compiler.h"

extern const struct slmc_transport slmc_transport_udp;

/*
 * The transport for url's scheme (loading its plugin the first time);
 * NULL with *code (SLM_CLIENT_E*) and msg[size] saying why.  Thread-safe.
 */
const struct slmc_transport *slmc_transport_for(const char *url, int *code,
						char *msg, size_t size);

#endif
