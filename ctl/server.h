/*
 * server.h: the control server, a component of slmd (daemon/daemon.h).
 *
 * It owns the Unix stream socket ctl.socket (mode ctl.mode, group
 * ctl.group; the directory is created if missing) and one thread, slm-ctl,
 * that serves every client with epoll: JSON lines, one request object and
 * one response object per line, in order, for as many clients as
 * ctl.max_clients.  A peer is checked with SO_PEERCRED and SO_PEERGROUPS
 * when it connects: root, slmd's own user, ctl.allow_uids, and members of
 * ctl.group and of ctl.allow_gids are allowed; anyone else gets one error
 * line (EAUTH) and is disconnected.  A line longer than ctl.max_line gets
 * an error line (ETOOBIG), its remainder is skipped, and the connection
 * goes on.  When metrics.listen is set, the same thread serves the
 * Prometheus page and /health (ctl/metrics.h).  docs/ctl.md is the
 * protocol.
 *
 * The component starts first and stops last, so the socket answers while
 * everything else starts, loads and drains.
 */
#ifndef SLM_CTL_SERVER_H
#define SLM_CTL_SERVER_H

#include <stddef.h>

#include "daemon/daemon.h"

struct ctl_server;

/* NULL when out of memory. */
struct ctl_server *ctl_server_create(void);
/* After the component stopped (or never started). */
void ctl_server_destroy(struct ctl_server *s);

/* The component "ctl" to add to the daemon. */
struct slmd_component ctl_server_component(struct ctl_server *s);

/* The socket path served, and the metrics URL (NULL when off); valid
 * while the component runs. */
const char *ctl_server_socket(const struct ctl_server *s);
const char *ctl_server_metrics_url(const struct ctl_server *s);

/*
 * Answer one request line as a peer with these credentials would get it,
 * without a socket (tests and the fuzz harness).  cfg: the config the
 * commands see; d may be NULL (commands that need the daemon answer
 * ESTATE).  Returns the '\n'-terminated response (malloc'd) or NULL when
 * out of memory.
 */
char *ctl_server_answer(struct ctl_server *s, struct slmd *d,
			struct slm_config *cfg, const char *line, size_t len);

#endif
