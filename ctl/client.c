#include "ctl/client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"

struct ctl_client {
	int fd;
	int timeout_ms;
	char *buf; /* bytes received after the last line */
	size_t len, cap;
	char path[108];
};

int ctl_client_open(const char *path, int timeout_ms, struct ctl_client **out,
		    struct slm_error *err)
{
	*out = NULL;
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(addr.sun_path))
		return slm_error_set(err, SLM_ECONNECT,
				     "cannot connect to %s: path too long",
				     path);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return slm_error_errno(err, SLM_ECONNECT, errno,
				       "cannot connect to %s", path);
	if (connect(fd, (const struct sockaddr *)&addr, sizeof(addr)) < 0) {
		int e = errno;
		close(fd);
		return slm_error_set(err, SLM_ECONNECT,
				     "cannot connect to %s: %s (is slmd "
				     "running?)",
				     path, strerror(e));
	}
	struct ctl_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	}
	c->fd = fd;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 30000;
	snprintf(c->path, sizeof(c->path), "%s", path);
	*out = c;
	return 0;
}

void ctl_client_close(struct ctl_client *c)
{
	if (!c)
		return;
	close(c->fd);
	free(c->buf);
	free(c);
}

static int wait_fd(int fd, short events, uint64_t deadline)
{
	for (;;) {
		uint64_t now = slm_now_ns();
		if (now >= deadline)
			return SLM_ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return SLM_EIO;
	}
}

/* Read up to and including '\n'; the line without it into *line. */
static int read_line(struct ctl_client *c, char **line, uint64_t deadline,
		     struct slm_error *err)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			*line = malloc(n + 1);
			if (!*line)
				return slm_error_set(err, SLM_ENOMEM,
						     "out of memory");
			memcpy(*line, c->buf, n);
			(*line)[n] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return 0;
		}
		if (c->len == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *grown = realloc(c->buf, cap);
			if (!grown)
				return slm_error_set(err, SLM_ENOMEM,
						     "out of memory");
			c->buf = grown;
			c->cap = cap;
		}
		int rc = wait_fd(c->fd, POLLIN, deadline);
		if (rc == SLM_ETIMEDOUT)
			return slm_error_set(err, rc,
					     "%s: no answer within %d ms",
					     c->path, c->timeout_ms);
		ssize_t n =
			rc ? -1
			   : recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return slm_error_set(err, SLM_EIO,
					     "%s: connection closed by slmd",
					     c->path);
		c->len += (size_t)n;
	}
}

int ctl_client_call_text(struct ctl_client *c, const char *req, cJSON **resp,
			 struct slm_error *err)
{
	*resp = NULL;
	uint64_t deadline = slm_now_ns() + (uint64_t)c->timeout_ms * 1000000;
	size_t len = strlen(req);
	char *line = malloc(len + 1);
	if (!line)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	memcpy(line, req, len);
	line[len] = '\n';
	size_t off = 0;
	int rc = 0;
	while (off < len + 1) {
		ssize_t n =
			send(c->fd, line + off, len + 1 - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			/* The server may have refused us and closed: its
			 * error line is still there to read. */
			rc = SLM_EIO;
			break;
		}
		off += (size_t)n;
	}
	free(line);
	char *answer = NULL;
	struct slm_error rerr = {0};
	int rrc = read_line(c, &answer, deadline, &rerr);
	if (rrc) {
		if (rc)
			return slm_error_set(err, SLM_EIO,
					     "%s: connection closed by slmd",
					     c->path);
		return slm_error_set(err, rrc, "%s", rerr.msg);
	}
	*resp = cJSON_Parse(answer);
	free(answer);
	if (!*resp || !cJSON_IsObject(*resp)) {
		cJSON_Delete(*resp);
		*resp = NULL;
		return slm_error_set(err, SLM_EPROTO,
				     "%s: the answer is not a JSON object",
				     c->path);
	}
	return 0;
}

int ctl_client_call(struct ctl_client *c, const cJSON *req, cJSON **resp,
		    struct slm_error *err)
{
	*resp = NULL;
	char *text = cJSON_PrintUnformatted(req);
	if (!text)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int rc = ctl_client_call_text(c, text, resp, err);
	free(text);
	return rc;
}
