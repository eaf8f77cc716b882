/*
 * render.h: control responses as people read them (slmctl without
 * --json), and the figures of slmctl top.
 *
 * Every renderer takes the "result" object of a response (docs/ctl.md)
 * and writes text; a field it does not know is left out, a value whose
 * source is not there yet is written "-" (never 0).
 */
#ifndef SLM_CTL_RENDER_H
#define SLM_CTL_RENDER_H

#include <cjson/cJSON.h>
#include <stdio.h>

void ctl_render_status(const cJSON *r, FILE *out);
void ctl_render_stats(const cJSON *r, FILE *out);
void ctl_render_perf(const cJSON *r, FILE *out);
/* op: "get", "set", "list", "dump", "reload". */
void ctl_render_config(const char *op, const cJSON *r, FILE *out);
void ctl_render_help(const cJSON *r, FILE *out);
/* `model`: op "list" (a table: name, state with load progress, weights,
 * KV, requests running, path; errors below), "load", "swap", "unload". */
void ctl_render_model(const char *op, const cJSON *r, FILE *out);
/* Anything else: "key: value" lines, nested objects indented. */
void ctl_render_generic(const cJSON *r, FILE *out);

/* "850 us", "12.3 ms", "1.20 s"; "-" for a NaN. */
const char *ctl_fmt_duration(double ns, char *buf, size_t size);

/* One thread's line in top. */
struct ctl_top_thread {
	char name[48], role[24], state[24];
	int group;	/* -1: none */
	double cpu_pct; /* NaN on the first sample */
};

/*
 * What slmctl top shows, from two `top` results taken an interval apart.
 * NaN for a figure whose source is not in this slmd (no serving core:
 * no requests, tokens, queue, KV) or that the interval gives no sample
 * for (no token in the last second: no token latency).
 */
struct ctl_top {
	char state[16];
	double uptime_s, interval_s;
	double req_s, tok_s;	     /* rates over the interval */
	double queue, running;	     /* gauges now */
	double ttft_p50, ttft_p99;   /* ns, requests of the interval */
	double token_p50, token_p99; /* ns, decode steps of the interval */
	double prefix_hit;	     /* fraction of prompt tokens, interval */
	double kv_use;		     /* fraction of KV blocks used, now */
	struct ctl_top_thread *thread;
	int n_threads;
};

/* Compute from two samples (prev may be NULL: rates are NaN).  0, or
 * SLM_ENOMEM / SLM_EPROTO for a result that is not a top sample. */
int ctl_top_compute(const cJSON *prev, const cJSON *cur, struct ctl_top *t);
void ctl_top_free(struct ctl_top *t);
void ctl_top_print(const struct ctl_top *t, FILE *out);
/* The figures as one JSON object (null for NaN); NULL when out of memory. */
cJSON *ctl_top_json(const struct ctl_top *t);

#endif
