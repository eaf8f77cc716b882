/* ctl_int.h: what only the files of ctl/ share. */
#ifndef SLM_CTL_CTL_INT_H
#define SLM_CTL_CTL_INT_H

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "ctl/ctl.h"
#include "ctl/perf.h"

struct slmd;
struct metrics_http;
struct ctl_conn;

#define CTL_MAX_CMD_COUNTERS 32

/* Counters of the control server; written by the control thread only. */
struct ctl_counters {
	uint64_t connections;  /* accepted and allowed */
	uint64_t refused_peer; /* SO_PEERCRED not in the allow lists */
	uint64_t refused_full; /* ctl.max_clients reached */
	uint64_t requests;     /* lines answered */
	uint64_t errors[32];   /* by -code (SLM_E*) */
	char cmd_name[CTL_MAX_CMD_COUNTERS][32];
	uint64_t cmd_count[CTL_MAX_CMD_COUNTERS];
};

struct ctl_server {
	struct slmd *d;		/* NULL when answering without a daemon */
	struct slm_config *cfg; /* the daemon's config */

	/* The socket; set by start, read-only while the thread runs. */
	char path[108];
	int listen_fd, epoll_fd, wake_fd;
	dev_t sock_dev; /* the socket file we made (unlink only that) */
	ino_t sock_ino;
	gid_t sock_gid;
	unsigned *allow_uids; /* uid_t values */
	int n_allow_uids;
	unsigned *allow_gids; /* gid_t values */
	int n_allow_gids;
	struct metrics_http *metrics;

	/* Control thread only (n_conns and heartbeat_ns also read by
	 * others, with relaxed loads). */
	uint64_t heartbeat_ns; /* when the loop last went round */
	pthread_t thread;
	bool thread_running;
	struct ctl_conn *conns;
	int n_conns;
	struct perf_thread *perf;
	struct ctl_counters counters; /* read by the perf source: relaxed */
};

/* The builtin commands' names (reserved in the registry). */
bool ctl_builtin_reserved(const char *name);

/* Answer one request line (without its newline).  Returns the response
 * line, '\n'-terminated, malloc'd, with *len its length; NULL only when
 * out of memory. */
char *ctl_answer(struct ctl_server *s, const char *line, size_t len, pid_t pid,
		 uid_t uid, gid_t gid, size_t *out_len);

/* An error response line for a problem found before parsing (oversized
 * line, refused peer); malloc'd, '\n'-terminated. */
char *ctl_error_line(int code, const char *msg, size_t *out_len);

/* Count an error code in s->counters. */
void ctl_count_error(struct ctl_server *s, int code);

/* The registry, for the dispatcher. */
int ctl_registry_call(const struct ctl_request *req, cJSON *result,
		      struct slm_error *err, bool *found);
bool ctl_registry_has(const char *name);
int ctl_registry_status(cJSON *status);
int ctl_registry_help(cJSON *list);

/* The perf source of the server and the daemon (state, uptime, ctl). */
void ctl_collect(void *ctx, struct perf_snapshot *snap);

/* /metrics and /health for the HTTP side. */
char *ctl_metrics_page(void *ctx, size_t *len);
int ctl_health(void *ctx, char *buf, size_t size);

#endif
