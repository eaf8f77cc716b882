#include "ctl/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"

/* ---- the text format --------------------------------------------------- */

const char *metrics_escape_label(const char *value, char *out, size_t size)
{
	size_t o = 0;
	for (const char *c = value; *c && o + 3 < size; c++) {
		if (*c == '\\' || *c == '"') {
			out[o++] = '\\';
			out[o++] = *c;
		} else if (*c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *c;
		}
	}
	out[o] = '\0';
	return out;
}

static void write_help(FILE *out, const char *help)
{
	for (const char *c = help; *c; c++) {
		if (*c == '\\')
			fputs("\\\\", out);
		else if (*c == '\n')
			fputs("\\n", out);
		else
			fputc(*c, out);
	}
}

/* name{labels[,extra]} */
static void write_series(FILE *out, const char *name, const char *suffix,
			 const struct perf_sample *s, const char *extra_name,
			 const char *extra_value)
{
	char esc[512];
	fprintf(out, "slmd_%s%s", name, suffix);
	if (s->n_labels == 0 && !extra_name)
		return;
	fputc('{', out);
	for (int i = 0; i < s->n_labels; i++)
		fprintf(out, "%s%s=\"%s\"", i ? "," : "", s->label[i].name,
			metrics_escape_label(s->label[i].value, esc,
					     sizeof(esc)));
	if (extra_name)
		fprintf(out, "%s%s=\"%s\"", s->n_labels ? "," : "", extra_name,
			extra_value);
	fputc('}', out);
}

static void write_double(FILE *out, double v)
{
	if (isnan(v))
		fputs("NaN", out);
	else if (isinf(v))
		fputs(v > 0 ? "+Inf" : "-Inf", out);
	else
		fprintf(out, "%.15g", v);
}

/* Bounds of _seconds histograms, in seconds. */
static const double second_bounds[] = {
	1e-6, 2.5e-6, 5e-6,   1e-5, 2.5e-5, 5e-5,  1e-4, 2.5e-4,
	5e-4, 1e-3,   2.5e-3, 5e-3, 0.01,   0.025, 0.05, 0.1,
	0.25, 0.5,    1,      2.5,  5,	    10,	   30,	 60,
};

static void write_hist(FILE *out, const struct perf_family *f,
		       const struct perf_sample *s)
{
	const struct slm_hist *h = s->hist;
	size_t nlen = strlen(f->name);
	bool seconds = nlen > 8 && !strcmp(f->name + nlen - 8, "_seconds");
	int n_bounds = seconds ? (int)SLM_ARRAY_LEN(second_bounds) : 21;
	unsigned b = 0;
	uint64_t cum = 0;
	char le[32];
	for (int i = 0; i < n_bounds; i++) {
		double bound = seconds ? second_bounds[i] : (double)(1u << i);
		/* Raw units (ns for _seconds) at or below the bound. */
		double raw = seconds ? bound * 1e9 : bound;
		while (b < SLM_HIST_BUCKETS &&
		       (double)slm_hist_bucket_upper(b) <= raw)
			cum += h->bucket[b++];
		snprintf(le, sizeof(le), "%g", bound);
		write_series(out, f->name, "_bucket", s, "le", le);
		fprintf(out, " %llu\n", (unsigned long long)cum);
	}
	write_series(out, f->name, "_bucket", s, "le", "+Inf");
	fprintf(out, " %llu\n", (unsigned long long)h->count);
	write_series(out, f->name, "_sum", s, NULL, NULL);
	fputc(' ', out);
	write_double(out, seconds ? (double)h->sum * 1e-9 : (double)h->sum);
	fputc('\n', out);
	write_series(out, f->name, "_count", s, NULL, NULL);
	fprintf(out, " %llu\n", (unsigned long long)h->count);
}

int metrics_render(const struct perf_snapshot *snap, FILE *out)
{
	static const char *const type_names[] = {"counter", "gauge",
						 "histogram"};
	for (int i = 0; i < snap->n_families; i++) {
		const struct perf_family *f = &snap->family[i];
		fprintf(out, "# HELP slmd_%s ", f->name);
		write_help(out, f->help);
		fprintf(out, "\n# TYPE slmd_%s %s\n", f->name,
			type_names[f->type]);
		for (int j = 0; j < f->n_samples; j++) {
			const struct perf_sample *s = &f->sample[j];
			switch (f->type) {
			case PERF_COUNTER:
				write_series(out, f->name, "", s, NULL, NULL);
				if (f->fractional) {
					fputc(' ', out);
					write_double(out, s->value);
					fputc('\n', out);
				} else {
					fprintf(out, " %llu\n",
						(unsigned long long)s->count);
				}
				break;
			case PERF_GAUGE:
				write_series(out, f->name, "", s, NULL, NULL);
				fputc(' ', out);
				write_double(out, s->value);
				fputc('\n', out);
				break;
			case PERF_HISTOGRAM:
				if (s->hist)
					write_hist(out, f, s);
				break;
			}
		}
	}
	return ferror(out) ? SLM_EIO : 0;
}

/* ---- HTTP -------------------------------------------------------------- */

struct metrics_http {
	struct MHD_Daemon *mhd;
	int listen_fd;
	metrics_page_fn page;
	metrics_health_fn health;
	void *ctx;
	char url[128];
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status,
			       char *body, size_t len, const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	enum MHD_Result ok = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ok;
}

static enum MHD_Result respond_text(struct MHD_Connection *conn,
				    unsigned status, const char *text)
{
	char *body = strdup(text);
	if (!body)
		return MHD_NO;
	return respond(conn, status, body, strlen(body),
		       "text/plain; charset=utf-8");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload,
				  size_t *upload_size, void **state)
{
	struct metrics_http *m = cls;
	if (strcmp(method, "GET") && strcmp(method, "HEAD"))
		return respond_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "only GET is served here\n");
	if (!strcmp(url, "/metrics")) {
		size_t len = 0;
		char *text = m->page(m->ctx, &len);
		if (!text)
			return respond_text(conn,
					    MHD_HTTP_INTERNAL_SERVER_ERROR,
					    "out of memory\n");
		return respond(conn, MHD_HTTP_OK, text, len,
			       "text/plain; version=0.0.4; charset=utf-8");
	}
	if (!strcmp(url, "/health")) {
		char buf[256];
		int status = m->health(m->ctx, buf, sizeof(buf));
		char *body = strdup(buf);
		if (!body)
			return MHD_NO;
		return respond(conn, (unsigned)status, body, strlen(body),
			       "application/json");
	}
	return respond_text(conn, MHD_HTTP_NOT_FOUND,
			    "not found: try /metrics or /health\n");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[256];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t len = strlen(line);
	while (len && line[len - 1] == '\n')
		line[--len] = '\0';
	SLM_DEBUG("metrics", "%s", line);
}

/* Split "HOST:PORT" / "[V6]:PORT" into host and port. */
static int split_listen(const char *listen, char *host, size_t hsize,
			char *port, size_t psize)
{
	const char *colon;
	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');
		if (!close || close[1] != ':')
			return SLM_ECONFIG;
		snprintf(host, hsize, "%.*s", (int)(close - listen - 1),
			 listen + 1);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || colon == listen)
			return SLM_ECONFIG;
		snprintf(host, hsize, "%.*s", (int)(colon - listen), listen);
	}
	snprintf(port, psize, "%s", colon + 1);
	if (!*port || strspn(port, "0123456789") != strlen(port) ||
	    atoi(port) > 65535)
		return SLM_ECONFIG;
	return 0;
}

static int bind_listen(const char *where, char *url, size_t url_size,
		       struct slm_error *err)
{
	char host[256], port[16];
	if (split_listen(where, host, sizeof(host), port, sizeof(port)))
		return slm_error_set(err, SLM_ECONFIG,
				     "metrics.listen '%s': expected HOST:PORT "
				     "(e.g. 127.0.0.1:9464 or [::1]:9464)",
				     where);
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai)
		return slm_error_set(err, SLM_ECONFIG,
				     "metrics.listen '%s': %s", where,
				     gai_strerror(gai));
	int fd = -1, last_errno = 0;
	for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family,
			    a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			last_errno = errno;
			continue;
		}
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 ||
		    listen(fd, 64) < 0) {
			last_errno = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return slm_error_errno(err, SLM_ESYS, last_errno,
				       "metrics.listen: cannot listen on %s",
				       where);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";
	int bound_port = 0;
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const void *)&ss;
			inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
			bound_port = ntohs(s6->sin6_port);
			snprintf(url, url_size, "http://[%s]:%d", addr,
				 bound_port);
		} else {
			const struct sockaddr_in *s4 = (const void *)&ss;
			inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
			bound_port = ntohs(s4->sin_port);
			snprintf(url, url_size, "http://%s:%d", addr,
				 bound_port);
		}
	}
	return fd;
}

int metrics_http_open(const char *listen, metrics_page_fn page,
		      metrics_health_fn health, void *ctx,
		      struct metrics_http **out, struct slm_error *err)
{
	*out = NULL;
	struct metrics_http *m = calloc(1, sizeof(*m));
	if (!m)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	m->page = page;
	m->health = health;
	m->ctx = ctx;
	m->listen_fd = bind_listen(listen, m->url, sizeof(m->url), err);
	if (m->listen_fd < 0) {
		int rc = m->listen_fd;
		free(m);
		return rc;
	}
	m->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_ERROR_LOG, 0, NULL,
				  NULL, on_request, m, MHD_OPTION_LISTEN_SOCKET,
				  m->listen_fd, MHD_OPTION_CONNECTION_LIMIT,
				  (unsigned)16, MHD_OPTION_CONNECTION_TIMEOUT,
				  (unsigned)10, MHD_OPTION_EXTERNAL_LOGGER,
				  mhd_log, NULL, MHD_OPTION_END);
	if (!m->mhd) {
		/* A daemon that did not start leaves the socket to us. */
		close(m->listen_fd);
		free(m);
		return slm_error_set(err, SLM_ESYS,
				     "metrics.listen %s: libmicrohttpd did "
				     "not start",
				     listen);
	}
	*out = m;
	return 0;
}

void metrics_http_close(struct metrics_http *m)
{
	if (!m)
		return;
	/* Closes the listen socket too (libmicrohttpd owns it once started). */
	MHD_stop_daemon(m->mhd);
	free(m);
}

int metrics_http_epoll_fd(const struct metrics_http *m)
{
	const union MHD_DaemonInfo *info =
		MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	return info ? info->epoll_fd : -1;
}

void metrics_http_poll(struct metrics_http *m)
{
	MHD_run(m->mhd);
}

int metrics_http_timeout_ms(struct metrics_http *m)
{
	MHD_UNSIGNED_LONG_LONG t = 0;
	if (MHD_get_timeout(m->mhd, &t) != MHD_YES)
		return -1;
	return t > 60000 ? 60000 : (int)t;
}

const char *metrics_http_url(const struct metrics_http *m)
{
	return m->url;
}
