#include "ctl/server.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "ctl/ctl_int.h"
#include "ctl/metrics.h"

/* Output a client has not read beyond which slmd stops reading its
 * requests, and beyond which it gives up on the client. */
#define OUT_PAUSE (1u << 20)
#define OUT_MAX (64u << 20)
#define MAX_PEER_GROUPS 256

/* The loop goes round at least this often; the health check calls the
 * thread stuck when it has not for HEALTH_STALL_NS. */
#define LOOP_MAX_WAIT_MS 1000
#define HEALTH_STALL_NS (10ull * 1000000000ull)

/* Tags of epoll events that are not connections. */
#define TAG_LISTEN ((void *)1)
#define TAG_WAKE ((void *)2)
#define TAG_METRICS ((void *)3)

struct ctl_conn {
	struct ctl_conn *next;
	int fd;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	char *in; /* a partial line; capacity in_cap */
	size_t in_len, in_cap;
	bool skipping; /* inside an oversized line: drop up to '\n' */
	bool eof;      /* the client will send no more */
	char *out;     /* responses not yet written */
	size_t out_len, out_off, out_cap;
	uint32_t events; /* what epoll watches */
};

struct ctl_server *ctl_server_create(void)
{
	struct ctl_server *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->listen_fd = s->epoll_fd = s->wake_fd = -1;
	return s;
}

void ctl_server_destroy(struct ctl_server *s)
{
	if (!s)
		return;
	free(s->allow_uids);
	free(s->allow_gids);
	free(s);
}

const char *ctl_server_socket(const struct ctl_server *s)
{
	return s->path;
}

const char *ctl_server_metrics_url(const struct ctl_server *s)
{
	return s->metrics ? metrics_http_url(s->metrics) : NULL;
}

/* ---- who may connect --------------------------------------------------- */

/* "1000, alice" into ids; names through getpwnam/getgrnam. */
static int parse_ids(const char *key, const char *text, bool groups,
		     unsigned **out, int *n_out, struct slm_error *err)
{
	*out = NULL;
	*n_out = 0;
	char *copy = strdup(text);
	if (!copy)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int rc = 0, n = 0, cap = 0;
	unsigned *ids = NULL;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", \t", &save); tok;
	     tok = strtok_r(NULL, ", \t", &save)) {
		unsigned id;
		char *end;
		errno = 0;
		unsigned long v = strtoul(tok, &end, 10);
		if (*end == '\0' && errno == 0 && v < 0xffffffffu) {
			id = (unsigned)v;
		} else if (groups) {
			const struct group *g = getgrnam(tok);
			if (!g) {
				rc = slm_error_set(err, SLM_ECONFIG,
						   "%s: no group '%s'", key,
						   tok);
				break;
			}
			id = g->gr_gid;
		} else {
			const struct passwd *p = getpwnam(tok);
			if (!p) {
				rc = slm_error_set(err, SLM_ECONFIG,
						   "%s: no user '%s'", key,
						   tok);
				break;
			}
			id = p->pw_uid;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			unsigned *grown =
				realloc(ids, (size_t)cap * sizeof(*ids));
			if (!grown) {
				rc = slm_error_set(err, SLM_ENOMEM,
						   "out of memory");
				break;
			}
			ids = grown;
		}
		ids[n++] = id;
	}
	free(copy);
	if (rc) {
		free(ids);
		return rc;
	}
	*out = ids;
	*n_out = n;
	return 0;
}

static bool id_in(unsigned id, const unsigned *list, int n)
{
	for (int i = 0; i < n; i++)
		if (list[i] == id)
			return true;
	return false;
}

static bool gid_allowed(const struct ctl_server *s, gid_t gid)
{
	return gid == s->sock_gid || id_in(gid, s->allow_gids, s->n_allow_gids);
}

/* The peer's credentials; true when it may use the socket. */
static bool peer_allowed(const struct ctl_server *s, int fd, struct ucred *cred)
{
	socklen_t len = sizeof(*cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
		return false;
	if (cred->uid == 0 || cred->uid == geteuid() ||
	    id_in(cred->uid, s->allow_uids, s->n_allow_uids) ||
	    gid_allowed(s, cred->gid))
		return true;
	/* Supplementary groups (Linux 4.13+). */
	gid_t groups[MAX_PEER_GROUPS];
	len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++)
		if (gid_allowed(s, groups[i]))
			return true;
	return false;
}

/* ---- connections ------------------------------------------------------- */

static void conn_watch(struct ctl_server *s, struct ctl_conn *c)
{
	uint32_t want = 0;
	size_t pending = c->out_len - c->out_off;
	if (!c->eof && pending < OUT_PAUSE)
		want |= EPOLLIN;
	if (pending)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	struct epoll_event ev = {.events = want, .data.ptr = c};
	epoll_ctl(s->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
	c->events = want;
}

static void conn_close(struct ctl_server *s, struct ctl_conn *c)
{
	for (struct ctl_conn **link = &s->conns; *link; link = &(*link)->next) {
		if (*link == c) {
			*link = c->next;
			break;
		}
	}
	__atomic_store_n(&s->n_conns, s->n_conns - 1, __ATOMIC_RELAXED);
	epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c);
}

/* Queue a response; false when the client has too much unread. */
static bool conn_queue(struct ctl_conn *c, char *line, size_t len)
{
	if (!line)
		return false;
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	if (c->out_len - c->out_off + len > OUT_MAX) {
		free(line);
		return false;
	}
	if (c->out_len + len > c->out_cap) {
		/* Compact first, then grow. */
		if (c->out_off) {
			memmove(c->out, c->out + c->out_off,
				c->out_len - c->out_off);
			c->out_len -= c->out_off;
			c->out_off = 0;
		}
		size_t cap = c->out_cap ? c->out_cap : 4096;
		while (cap < c->out_len + len)
			cap *= 2;
		char *grown = realloc(c->out, cap);
		if (!grown) {
			free(line);
			return false;
		}
		c->out = grown;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, line, len);
	c->out_len += len;
	free(line);
	return true;
}

/* Write what the socket takes; false when the client is gone. */
static bool conn_flush(struct ctl_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
				 c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK;
		}
		c->out_off += (size_t)n;
	}
	return true;
}

static bool answer(struct ctl_server *s, struct ctl_conn *c, const char *line,
		   size_t len)
{
	/* Blank lines (and a lone '\r') are ignored. */
	size_t i = 0;
	while (i < len &&
	       (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
		i++;
	if (i == len)
		return true;
	size_t out_len = 0;
	char *out = ctl_answer(s, line, len, c->pid, c->uid, c->gid, &out_len);
	return conn_queue(c, out, out_len);
}

/* Answer a line that is too long with an error, once. */
static bool refuse_line(struct ctl_server *s, struct ctl_conn *c,
			size_t max_line)
{
	ctl_count_error(s, SLM_ETOOBIG);
	char msg[128];
	snprintf(msg, sizeof(msg),
		 "request line longer than ctl.max_line (%zu bytes); skipped",
		 max_line);
	size_t n = 0;
	char *line = ctl_error_line(SLM_ETOOBIG, msg, &n);
	return conn_queue(c, line, n);
}

/* Answer every complete line in the buffer; handle one that is too long. */
static bool conn_lines(struct ctl_server *s, struct ctl_conn *c,
		       size_t max_line)
{
	size_t start = 0;
	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->in_len - start);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (c->in + start));
		if (c->skipping) {
			c->skipping = false;
		} else if (len > max_line) {
			/* ctl.max_line shrank under a buffered line. */
			if (!refuse_line(s, c, max_line))
				return false;
		} else if (!answer(s, c, c->in + start, len)) {
			return false;
		}
		start += len + 1;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->skipping) {
		c->in_len = 0; /* still inside the long line */
	} else if (c->in_len > max_line) {
		/* No newline within max_line bytes: refuse the line now, skip
		 * the rest of it as it arrives, keep the connection. */
		if (!refuse_line(s, c, max_line))
			return false;
		c->in_len = 0;
		c->skipping = true;
	}
	return true;
}

/* Read what the client sent; false when the connection must close. */
static bool conn_read(struct ctl_server *s, struct ctl_conn *c)
{
	size_t max_line = slm_cfg_size(s->cfg, SLM_CFG_CTL_MAX_LINE);
	/* Room for a whole line and its newline. */
	if (c->in_cap < max_line + 1) {
		char *grown = realloc(c->in, max_line + 1);
		if (!grown)
			return false;
		c->in = grown;
		c->in_cap = max_line + 1;
	}
	for (int rounds = 0; rounds < 16; rounds++) {
		size_t room = c->in_cap - c->in_len;
		if (room == 0) {
			if (!conn_lines(s, c, max_line))
				return false;
			continue;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return false;
		}
		if (n == 0) {
			c->eof = true;
			/* A last request without its newline still counts. */
			if (c->in_len && !c->skipping &&
			    c->in_len < c->in_cap) {
				c->in[c->in_len++] = '\n';
			}
			break;
		}
		c->in_len += (size_t)n;
		if (!conn_lines(s, c, max_line))
			return false;
	}
	return conn_lines(s, c, max_line);
}

static void conn_event(struct ctl_server *s, struct ctl_conn *c,
		       uint32_t events)
{
	bool ok = true;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		ok = conn_read(s, c);
	if (ok)
		ok = conn_flush(c);
	if (!ok || (events & EPOLLERR) ||
	    (c->eof && c->out_off == c->out_len)) {
		conn_close(s, c);
		return;
	}
	conn_watch(s, c);
}

/* Refuse a client with one error line, then close it. */
static void refuse(int fd, int code, const char *msg)
{
	size_t len = 0;
	char *line = ctl_error_line(code, msg, &len);
	if (line)
		(void)!send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	free(line);
	close(fd);
}

static void accept_clients(struct ctl_server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				SLM_WARN("ctl", "accept: %s", strerror(errno));
			return;
		}
		struct ucred cred = {
			.pid = -1, .uid = (uid_t)-1, .gid = (gid_t)-1};
		if (!peer_allowed(s, fd, &cred)) {
			__atomic_store_n(&s->counters.refused_peer,
					 s->counters.refused_peer + 1,
					 __ATOMIC_RELAXED);
			SLM_WARN("ctl",
				 "refused a client: uid %u gid %u pid %d is "
				 "not allowed (ctl.allow_uids, "
				 "ctl.allow_gids)",
				 (unsigned)cred.uid, (unsigned)cred.gid,
				 (int)cred.pid);
			char msg[160];
			snprintf(msg, sizeof(msg),
				 "uid %u is not allowed to use this socket "
				 "(see ctl.allow_uids and ctl.allow_gids)",
				 (unsigned)cred.uid);
			refuse(fd, SLM_EAUTH, msg);
			continue;
		}
		int64_t max = slm_cfg_int(s->cfg, SLM_CFG_CTL_MAX_CLIENTS);
		if (s->n_conns >= max) {
			__atomic_store_n(&s->counters.refused_full,
					 s->counters.refused_full + 1,
					 __ATOMIC_RELAXED);
			char msg[128];
			snprintf(msg, sizeof(msg),
				 "too many clients (ctl.max_clients = %lld)",
				 (long long)max);
			refuse(fd, SLM_EOVERLOAD, msg);
			continue;
		}
		struct ctl_conn *c = calloc(1, sizeof(*c));
		if (!c) {
			refuse(fd, SLM_ENOMEM, "out of memory");
			continue;
		}
		c->fd = fd;
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->gid = cred.gid;
		c->events = EPOLLIN;
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
		if (epoll_ctl(s->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			free(c);
			refuse(fd, SLM_ESYS, "epoll_ctl failed");
			continue;
		}
		c->next = s->conns;
		s->conns = c;
		__atomic_store_n(&s->n_conns, s->n_conns + 1, __ATOMIC_RELAXED);
		__atomic_store_n(&s->counters.connections,
				 s->counters.connections + 1, __ATOMIC_RELAXED);
	}
}

/* ---- the thread -------------------------------------------------------- */

static void *ctl_main(void *arg)
{
	struct ctl_server *s = arg;
	struct slm_error err = {0};
	struct perf_thread_params pp = {.role = "ctl", .group = -1};
	if (perf_thread_register(&pp, &s->perf, &err))
		SLM_WARN("ctl", "%s", err.msg);
	bool running = true;
	while (running) {
		__atomic_store_n(&s->heartbeat_ns, slm_now_ns(),
				 __ATOMIC_RELAXED);
		int timeout =
			s->metrics ? metrics_http_timeout_ms(s->metrics) : -1;
		if (timeout < 0 || timeout > LOOP_MAX_WAIT_MS)
			timeout = LOOP_MAX_WAIT_MS;
		struct epoll_event ev[32];
		int n = epoll_wait(s->epoll_fd, ev, 32, timeout);
		if (n < 0 && errno != EINTR) {
			SLM_ERROR("ctl", "epoll_wait: %s", strerror(errno));
			break;
		}
		/* A timeout of libmicrohttpd's own (connection timeouts). */
		bool metrics_due = s->metrics && n == 0 &&
				   metrics_http_timeout_ms(s->metrics) == 0;
		for (int i = 0; i < n; i++) {
			void *tag = ev[i].data.ptr;
			if (tag == TAG_WAKE) {
				running = false;
			} else if (tag == TAG_LISTEN) {
				accept_clients(s);
			} else if (tag == TAG_METRICS) {
				metrics_due = true;
			} else {
				conn_event(s, tag, ev[i].events);
			}
		}
		if (metrics_due)
			metrics_http_poll(s->metrics);
	}
	while (s->conns)
		conn_close(s, s->conns);
	perf_thread_unregister(s->perf);
	s->perf = NULL;
	return NULL;
}

/* ---- the socket file --------------------------------------------------- */

/* mkdir -p the parent of path (0755: the group must reach the socket). */
static int make_parent(const char *path, struct slm_error *err)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(dir, 0755) < 0 && errno != EEXIST)
			return slm_error_errno(err, SLM_ESYS, errno,
					       "ctl.socket: cannot create %s",
					       dir);
		*p = '/';
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return slm_error_errno(err, SLM_ESYS, errno,
				       "ctl.socket: cannot create %s", dir);
	return 0;
}

/* A socket file left by a slmd that died is removed; a live one is not. */
static int clear_stale(const struct sockaddr_un *addr, struct slm_error *err)
{
	struct stat st;
	if (lstat(addr->sun_path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode))
		return slm_error_set(err, SLM_ECONFIG,
				     "ctl.socket: %s exists and is not a "
				     "socket",
				     addr->sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return slm_error_errno(err, SLM_ESYS, errno, "socket");
	int rc = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	int e = errno;
	close(fd);
	if (rc == 0)
		return slm_error_set(err, SLM_EBUSY,
				     "ctl.socket: %s is served by a running "
				     "slmd",
				     addr->sun_path);
	if (e != ECONNREFUSED && e != ENOENT)
		return slm_error_errno(err, SLM_ESYS, e,
				       "ctl.socket: cannot check %s",
				       addr->sun_path);
	if (unlink(addr->sun_path) < 0 && errno != ENOENT)
		return slm_error_errno(err, SLM_ESYS, errno,
				       "ctl.socket: cannot remove the stale "
				       "%s",
				       addr->sun_path);
	SLM_INFO("ctl", "removed the stale socket %s", addr->sun_path);
	return 0;
}

static int open_socket(struct ctl_server *s, struct slm_error *err)
{
	const struct slm_config *cfg = s->cfg;
	const char *path = slm_cfg_str(cfg, SLM_CFG_CTL_SOCKET);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (!*path || strlen(path) >= sizeof(addr.sun_path))
		return slm_error_set(err, SLM_ECONFIG, "ctl.socket: '%s' is %s",
				     path,
				     *path ? "longer than 107 bytes" : "empty");
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	snprintf(s->path, sizeof(s->path), "%s", path);

	/* Group and allow lists first: a bad name stops slmd early. */
	const char *group = slm_cfg_str(cfg, SLM_CFG_CTL_GROUP);
	s->sock_gid = getegid();
	if (*group) {
		unsigned *ids = NULL;
		int n = 0;
		int rc = parse_ids("ctl.group", group, true, &ids, &n, err);
		if (rc)
			return rc;
		if (n != 1) {
			free(ids);
			return slm_error_set(err, SLM_ECONFIG,
					     "ctl.group: one group, not '%s'",
					     group);
		}
		s->sock_gid = ids[0];
		free(ids);
	}
	int rc = parse_ids("ctl.allow_uids",
			   slm_cfg_str(cfg, SLM_CFG_CTL_ALLOW_UIDS), false,
			   &s->allow_uids, &s->n_allow_uids, err);
	if (rc == 0)
		rc = parse_ids("ctl.allow_gids",
			       slm_cfg_str(cfg, SLM_CFG_CTL_ALLOW_GIDS), true,
			       &s->allow_gids, &s->n_allow_gids, err);
	if (rc)
		return rc;

	rc = make_parent(path, err);
	if (rc == 0)
		rc = clear_stale(&addr, err);
	if (rc)
		return rc;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return slm_error_errno(err, SLM_ESYS, errno, "ctl: socket");
	mode_t mode = (mode_t)strtoul(slm_cfg_enum_name(cfg, SLM_CFG_CTL_MODE),
				      NULL, 8);
	/* Bind, then set mode and group, then listen: no client can
	 * connect before the permissions are right. */
	if (bind(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
		rc = slm_error_errno(err, SLM_ESYS, errno,
				     "ctl.socket: cannot bind %s", path);
		close(fd);
		return rc;
	}
	struct stat st;
	if (chmod(path, mode) < 0 ||
	    (s->sock_gid != getegid() &&
	     chown(path, (uid_t)-1, s->sock_gid) < 0) ||
	    stat(path, &st) < 0 || listen(fd, 64) < 0) {
		rc = slm_error_errno(err, SLM_ESYS, errno,
				     "ctl.socket: cannot set up %s", path);
		close(fd);
		unlink(path);
		return rc;
	}
	s->sock_dev = st.st_dev;
	s->sock_ino = st.st_ino;
	s->listen_fd = fd;
	return 0;
}

/* Remove the socket file if it is still the one this server made. */
static void remove_socket(struct ctl_server *s)
{
	struct stat st;
	if (s->path[0] && stat(s->path, &st) == 0 && st.st_dev == s->sock_dev &&
	    st.st_ino == s->sock_ino)
		unlink(s->path);
}

/* ---- the component ----------------------------------------------------- */

static void ctl_stop(void *ctx);

static int epoll_add(int epfd, int fd, void *tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int ctl_start(void *ctx, struct slmd *d, struct slm_error *err)
{
	struct ctl_server *s = ctx;
	s->d = d;
	s->cfg = slmd_config(d);
	perf_configure(slm_cfg_bool(s->cfg, SLM_CFG_PERF_EVENTS));
	int rc = open_socket(s, err);
	if (rc)
		return rc;
	s->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->epoll_fd < 0 || s->wake_fd < 0 ||
	    epoll_add(s->epoll_fd, s->listen_fd, TAG_LISTEN) < 0 ||
	    epoll_add(s->epoll_fd, s->wake_fd, TAG_WAKE) < 0) {
		rc = slm_error_errno(err, SLM_ESYS, errno, "ctl: epoll");
		goto fail;
	}
	const char *listen_at = slm_cfg_str(s->cfg, SLM_CFG_METRICS_LISTEN);
	if (*listen_at) {
		rc = metrics_http_open(listen_at, ctl_metrics_page, ctl_health,
				       s, &s->metrics, err);
		if (rc)
			goto fail;
		int mfd = metrics_http_epoll_fd(s->metrics);
		if (mfd < 0 || epoll_add(s->epoll_fd, mfd, TAG_METRICS) < 0) {
			rc = slm_error_set(err, SLM_ESYS,
					   "metrics: no epoll fd to watch");
			goto fail;
		}
	}
	rc = perf_source_register("slmd", ctl_collect, s);
	if (rc) {
		slm_error_set(err, rc, "ctl: a perf source 'slmd' exists");
		goto fail;
	}
	rc = pthread_create(&s->thread, NULL, ctl_main, s);
	if (rc) {
		perf_source_unregister("slmd");
		rc = slm_error_errno(err, SLM_ESYS, rc,
				     "ctl: cannot start the thread");
		goto fail;
	}
	pthread_setname_np(s->thread, "slm-ctl");
	s->thread_running = true;
	SLM_INFO("ctl", "control socket %s (mode %s)%s%s", s->path,
		 slm_cfg_enum_name(s->cfg, SLM_CFG_CTL_MODE),
		 s->metrics ? "; metrics on " : "",
		 s->metrics ? metrics_http_url(s->metrics) : "");
	return 0;
fail:
	ctl_stop(s);
	return rc;
}

static void ctl_stop(void *ctx)
{
	struct ctl_server *s = ctx;
	if (s->thread_running) {
		uint64_t one = 1;
		(void)!write(s->wake_fd, &one, sizeof(one));
		pthread_join(s->thread, NULL);
		s->thread_running = false;
		perf_source_unregister("slmd");
	}
	metrics_http_close(s->metrics);
	s->metrics = NULL;
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		remove_socket(s);
	}
	if (s->epoll_fd >= 0)
		close(s->epoll_fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	s->listen_fd = s->epoll_fd = s->wake_fd = -1;
	free(s->allow_uids);
	free(s->allow_gids);
	s->allow_uids = NULL;
	s->allow_gids = NULL;
	s->n_allow_uids = s->n_allow_gids = 0;
}

/* The watchdog's question: is the control thread still going round?  A
 * handler stuck for HEALTH_STALL_NS (a deadlock) says no. */
static bool ctl_healthy(void *ctx)
{
	struct ctl_server *s = ctx;
	uint64_t beat = __atomic_load_n(&s->heartbeat_ns, __ATOMIC_RELAXED);
	return beat == 0 || slm_now_ns() - beat < HEALTH_STALL_NS;
}

struct slmd_component ctl_server_component(struct ctl_server *s)
{
	return (struct slmd_component){.name = "ctl",
				       .ctx = s,
				       .start = ctl_start,
				       .stop = ctl_stop,
				       .healthy = ctl_healthy};
}

char *ctl_server_answer(struct ctl_server *s, struct slmd *d,
			struct slm_config *cfg, const char *line, size_t len)
{
	s->d = d;
	s->cfg = cfg;
	size_t n = 0;
	return ctl_answer(s, line, len, getpid(), geteuid(), getegid(), &n);
}
