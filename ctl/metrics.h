/*
 * metrics.h: the Prometheus page and the health check over HTTP.
 *
 * metrics_render writes a perf snapshot (ctl/perf.h) in the Prometheus
 * text exposition format, version 0.0.4: every family once, with # HELP
 * and # TYPE, names prefixed `slmd_`; histograms as cumulative
 * `_bucket{le=...}` series with `_sum` and `_count`.  A `_seconds`
 * histogram holds nanoseconds and is written in seconds on fixed bounds
 * from 1 us to 60 s; others on powers of two.  A log-linear bucket that
 * straddles a bound counts in the next bound, so a cumulative count may
 * be low by values within 1.6 % of the bound.
 *
 * The HTTP side (libmicrohttpd) serves GET /metrics and GET /health on
 * the address of metrics.listen.  It has no thread of its own: the
 * control thread watches metrics_http_epoll_fd and calls
 * metrics_http_poll, so the page costs no more threads than the socket.
 */
#ifndef SLM_CTL_METRICS_H
#define SLM_CTL_METRICS_H

#include <stddef.h>
#include <stdio.h>

#include "common/err.h"
#include "ctl/perf.h"

/* Write snap as Prometheus text.  0, or SLM_EIO if out fails. */
int metrics_render(const struct perf_snapshot *snap, FILE *out);

/* Escape a label value (\\, \", \n) into out; returns out. */
const char *metrics_escape_label(const char *value, char *out, size_t size);

struct metrics_http;

/* The /metrics body (malloc'd text, *len bytes), or NULL for a 500. */
typedef char *(*metrics_page_fn)(void *ctx, size_t *len);
/* The /health answer: HTTP status (200 or 503) and a body in buf. */
typedef int (*metrics_health_fn)(void *ctx, char *buf, size_t size);

/*
 * Listen on "HOST:PORT" (HOST an IPv4 address, [IPv6] or a name; port 0
 * picks a free one).  The callbacks run on the thread that calls
 * metrics_http_poll.  SLM_ECONFIG for a bad address, SLM_ESYS when it
 * cannot be bound (the message names the address).
 */
int metrics_http_open(const char *listen, metrics_page_fn page,
		      metrics_health_fn health, void *ctx,
		      struct metrics_http **out,
		      struct slm_error *err) SLM_MUST_CHECK;
void metrics_http_close(struct metrics_http *m);

/* An fd that turns readable when metrics_http_poll has work. */
int metrics_http_epoll_fd(const struct metrics_http *m);
/* Serve what is ready, without blocking. */
void metrics_http_poll(struct metrics_http *m);
/* Milliseconds until metrics_http_poll must run anyway (-1: none). */
int metrics_http_timeout_ms(struct metrics_http *m);
/* "http://127.0.0.1:9464" with the port actually bound. */
const char *metrics_http_url(const struct metrics_http *m);

#endif
