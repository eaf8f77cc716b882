#include "ctl/render.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hist.h"

/* ---- helpers ----------------------------------------------------------- */

static const cJSON *get(const cJSON *obj, const char *name)
{
	return obj ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;
}

/* A number, or NaN when absent or null. */
static double num(const cJSON *obj, const char *name)
{
	const cJSON *v = get(obj, name);
	return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static const char *str(const cJSON *obj, const char *name)
{
	const cJSON *v = get(obj, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A string, or dflt when absent. */
static const char *strd(const cJSON *obj, const char *name, const char *dflt)
{
	const char *s = str(obj, name);
	return s ? s : dflt;
}

const char *ctl_fmt_duration(double ns, char *buf, size_t size)
{
	if (isnan(ns))
		snprintf(buf, size, "-");
	else if (ns < 1e3)
		snprintf(buf, size, "%.0f ns", ns);
	else if (ns < 1e6)
		snprintf(buf, size, "%.0f us", ns / 1e3);
	else if (ns < 1e9)
		snprintf(buf, size, "%.1f ms", ns / 1e6);
	else
		snprintf(buf, size, "%.2f s", ns / 1e9);
	return buf;
}

static const char *fmt_num(double v, const char *fmt, char *buf, size_t size)
{
	if (isnan(v))
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, fmt, v);
	return buf;
}

static const char *fmt_uptime(double s, char *buf, size_t size)
{
	if (isnan(s)) {
		snprintf(buf, size, "-");
		return buf;
	}
	unsigned long t = (unsigned long)s;
	unsigned long d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60,
		      sec = t % 60;
	if (d)
		snprintf(buf, size, "%lud %luh %02lum", d, h, m);
	else if (h)
		snprintf(buf, size, "%luh %02lum %02lus", h, m, sec);
	else if (m)
		snprintf(buf, size, "%lum %02lus", m, sec);
	else
		snprintf(buf, size, "%.1fs", s);
	return buf;
}

/* A scalar as text ("-" for null). */
static void scalar(const cJSON *v, char *buf, size_t size)
{
	if (cJSON_IsString(v))
		snprintf(buf, size, "%s", v->valuestring);
	else if (cJSON_IsBool(v))
		snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "yes" : "no");
	else if (cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) &&
		 fabs(v->valuedouble) < 1e15)
		snprintf(buf, size, "%.0f", v->valuedouble);
	else if (cJSON_IsNumber(v))
		snprintf(buf, size, "%.6g", v->valuedouble);
	else if (cJSON_IsNull(v) || !v)
		snprintf(buf, size, "-");
	else
		snprintf(buf, size, "...");
}

/* An object's scalars on one line: "k=v, k=v". */
static void inline_object(const cJSON *obj, FILE *out)
{
	const cJSON *it;
	bool first = true;
	cJSON_ArrayForEach(it, obj)
	{
		char v[256];
		if (cJSON_IsObject(it) || cJSON_IsArray(it))
			continue;
		scalar(it, v, sizeof(v));
		fprintf(out, "%s%s=%s", first ? "" : ", ", it->string, v);
		first = false;
	}
}

static void generic(const cJSON *v, int depth, FILE *out)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, v)
	{
		fprintf(out, "%*s", depth * 2, "");
		if (it->string)
			fprintf(out, "%s:", it->string);
		if (cJSON_IsObject(it) || cJSON_IsArray(it)) {
			if (cJSON_GetArraySize(it) == 0) {
				fprintf(out, " %s\n",
					cJSON_IsArray(it) ? "[]" : "{}");
				continue;
			}
			fputc('\n', out);
			generic(it, depth + 1, out);
		} else {
			char s[1024];
			scalar(it, s, sizeof(s));
			fprintf(out, "%s%s\n", it->string ? " " : "- ", s);
		}
	}
}

void ctl_render_generic(const cJSON *r, FILE *out)
{
	generic(r, 0, out);
}

/* ---- status ------------------------------------------------------------ */

static void section_line(const char *label, const cJSON *v, const char *none,
			 FILE *out)
{
	fprintf(out, "%-11s ", label);
	if (!v || cJSON_IsNull(v)) {
		fprintf(out, "%s\n", none);
	} else if (cJSON_IsObject(v)) {
		inline_object(v, out);
		fputc('\n', out);
	} else if (cJSON_IsArray(v)) {
		fprintf(out, "%d\n", cJSON_GetArraySize(v));
		const cJSON *it;
		cJSON_ArrayForEach(it, v)
		{
			fprintf(out, "%-11s   ", "");
			inline_object(it, out);
			fputc('\n', out);
		}
	} else {
		char s[256];
		scalar(v, s, sizeof(s));
		fprintf(out, "%s\n", s);
	}
}

void ctl_render_status(const cJSON *r, FILE *out)
{
	char up[64];
	const char *state = str(r, "state");
	const char *version = str(r, "version");
	fprintf(out, "slmd %s (pid %.0f): %s%s, up %s\n",
		version ? version : "?", num(r, "pid"), state ? state : "?",
		cJSON_IsTrue(get(r, "drained")) ? " (drained)" : "",
		fmt_uptime(num(r, "uptime_s"), up, sizeof(up)));
	const char *none = "- (no serving core in this build)";
	section_line("model:", get(r, "model"), none, out);
	section_line("dataplane:", get(r, "dataplane"),
		     "- (no dataplane in this build)", out);
	section_line("groups:", get(r, "groups"), none, out);
	const cJSON *health = get(r, "health");
	const cJSON *healthy = get(health, "healthy");
	fprintf(out, "%-11s %s\n", "health:",
		cJSON_IsTrue(healthy)	 ? "ok: every component makes progress"
		: cJSON_IsFalse(healthy) ? "NOT OK: a component makes no "
					   "progress (see the log)"
					 : "not checked yet");
	const cJSON *comps = get(health, "components");
	if (cJSON_IsArray(comps)) {
		fprintf(out, "%-11s ", "components:");
		const cJSON *it;
		bool first = true;
		cJSON_ArrayForEach(it, comps)
		{
			fprintf(out, "%s%s", first ? "" : ", ",
				cJSON_IsString(it) ? it->valuestring : "?");
			first = false;
		}
		fputc('\n', out);
	}
	const cJSON *ctl = get(r, "ctl");
	if (ctl) {
		double clients = num(ctl, "clients");
		fprintf(out, "%-11s %s, %.0f client%s\n",
			"control:", strd(ctl, "socket", "-"), clients,
			clients == 1 ? "" : "s");
		fprintf(out, "%-11s %s\n", "metrics:",
			strd(ctl, "metrics", "off (metrics.listen)"));
	}
	/* Sections registered by components. */
	static const char *const known[] = {"version", "pid",	    "uptime_s",
					    "state",   "exiting",   "drained",
					    "model",   "dataplane", "groups",
					    "health",  "ctl"};
	const cJSON *it;
	cJSON_ArrayForEach(it, r)
	{
		bool is_known = false;
		for (size_t i = 0; i < SLM_ARRAY_LEN(known); i++)
			is_known |= !strcmp(it->string, known[i]);
		if (is_known)
			continue;
		char label[48];
		snprintf(label, sizeof(label), "%s:", it->string);
		section_line(label, it, "-", out);
	}
}

/* ---- stats ------------------------------------------------------------- */

static bool in_array(const cJSON *arr, const char *s)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, arr)
	{
		if (cJSON_IsString(it) && !strcmp(it->valuestring, s))
			return true;
	}
	return false;
}

void ctl_render_stats(const cJSON *r, FILE *out)
{
	const cJSON *unsourced = get(r, "unsourced");
	const cJSON *it;
	cJSON_ArrayForEach(it, r)
	{
		if (!strcmp(it->string, "unsourced") || cJSON_IsObject(it))
			continue;
		char v[64];
		scalar(it, v, sizeof(v));
		fprintf(out, "%-34s %14s%s\n", it->string, v,
			in_array(unsourced, it->string)
				? "  (no source in this build yet)"
				: "");
	}
	cJSON_ArrayForEach(it, r)
	{
		if (!cJSON_IsObject(it) || cJSON_GetArraySize(it) == 0)
			continue;
		fprintf(out, "%s:\n", it->string);
		const cJSON *e;
		cJSON_ArrayForEach(e, it)
		{
			char v[64];
			scalar(e, v, sizeof(v));
			fprintf(out, "  %-32s %14s\n", e->string, v);
		}
	}
}

/* ---- perf -------------------------------------------------------------- */

void ctl_render_perf(const cJSON *r, FILE *out)
{
	const cJSON *hw = get(r, "hw_counters");
	bool have_hw = cJSON_IsTrue(get(hw, "available"));
	if (!have_hw)
		fprintf(out,
			"hardware counters (cycles, instructions, cache "
			"and branch misses): %s\n\n",
			strd(hw, "status", "unknown"));
	fprintf(out, "%-16s %-10s %5s %8s %-10s %-8s %10s %9s %9s %6s",
		"thread", "role", "group", "tid", "state", "doing", "cpu s",
		"ctx sw", "faults", "migr");
	if (have_hw)
		fprintf(out, " %14s %14s %6s %12s %12s", "cycles",
			"instructions", "IPC", "cache miss", "branch miss");
	fputc('\n', out);
	const cJSON *t;
	cJSON_ArrayForEach(t, get(r, "threads"))
	{
		const cJSON *ev = get(t, "events");
		char g[16], tid[16], cpu[32], cs[32], pf[32], mg[32];
		fmt_num(num(t, "group"), "%.0f", g, sizeof(g));
		fmt_num(num(t, "tid"), "%.0f", tid, sizeof(tid));
		fmt_num(num(t, "cpu_s"), "%.3f", cpu, sizeof(cpu));
		fmt_num(num(ev, "context_switches"), "%.0f", cs, sizeof(cs));
		fmt_num(num(ev, "page_faults"), "%.0f", pf, sizeof(pf));
		fmt_num(num(ev, "cpu_migrations"), "%.0f", mg, sizeof(mg));
		fprintf(out, "%-16s %-10s %5s %8s %-10s %-8s %10s %9s %9s %6s",
			strd(t, "name", "?"), strd(t, "role", "-"), g, tid,
			strd(t, "state", "-"), strd(t, "activity", "-"), cpu,
			cs, pf, mg);
		if (have_hw) {
			char cy[32], in[32], ipc[16], cm[32], bm[32];
			double cycles = num(ev, "cycles"),
			       instr = num(ev, "instructions");
			fprintf(out, " %14s %14s %6s %12s %12s",
				fmt_num(cycles, "%.0f", cy, sizeof(cy)),
				fmt_num(instr, "%.0f", in, sizeof(in)),
				fmt_num(cycles > 0 ? instr / cycles : NAN,
					"%.2f", ipc, sizeof(ipc)),
				fmt_num(num(ev, "cache_misses"), "%.0f", cm,
					sizeof(cm)),
				fmt_num(num(ev, "branch_misses"), "%.0f", bm,
					sizeof(bm)));
		}
		fputc('\n', out);
	}
	bool any_counters = false;
	cJSON_ArrayForEach(t, get(r, "threads"))
	{
		const cJSON *c = get(t, "counters");
		if (!cJSON_GetArraySize(c))
			continue;
		if (!any_counters)
			fprintf(out, "\ncounters by thread:\n");
		any_counters = true;
		fprintf(out, "  %s: ", strd(t, "name", "?"));
		const cJSON *it;
		bool first = true;
		cJSON_ArrayForEach(it, c)
		{
			char v[64];
			if (cJSON_IsObject(it)) {
				const cJSON *e;
				cJSON_ArrayForEach(e, it)
				{
					scalar(e, v, sizeof(v));
					fprintf(out, "%s%s{%s}=%s",
						first ? "" : ", ", it->string,
						e->string, v);
					first = false;
				}
				continue;
			}
			scalar(it, v, sizeof(v));
			fprintf(out, "%s%s=%s", first ? "" : ", ", it->string,
				v);
			first = false;
		}
		fputc('\n', out);
	}
	const cJSON *stages = get(r, "stages");
	fputc('\n', out);
	if (!cJSON_GetArraySize(stages)) {
		fprintf(out, "stage latencies: none recorded yet (no thread "
			     "in this build times request stages)\n");
	} else {
		fprintf(out, "%-14s %-8s %10s %10s %10s %10s %10s %10s\n",
			"stage", "group", "count", "mean", "p50", "p90", "p99",
			"max");
		cJSON_ArrayForEach(t, stages)
		{
			char c[32], m[32], p50[32], p90[32], p99[32], mx[32];
			const char *grp = strd(t, "group", str(t, "role"));
			fprintf(out,
				"%-14s %-8s %10s %10s %10s %10s %10s %10s\n",
				strd(t, "stage", "?"), grp ? grp : "-",
				fmt_num(num(t, "count"), "%.0f", c, sizeof(c)),
				ctl_fmt_duration(num(t, "mean_us") * 1e3, m,
						 sizeof(m)),
				ctl_fmt_duration(num(t, "p50_us") * 1e3, p50,
						 sizeof(p50)),
				ctl_fmt_duration(num(t, "p90_us") * 1e3, p90,
						 sizeof(p90)),
				ctl_fmt_duration(num(t, "p99_us") * 1e3, p99,
						 sizeof(p99)),
				ctl_fmt_duration(num(t, "max_us") * 1e3, mx,
						 sizeof(mx)));
		}
	}
	const cJSON *others = get(r, "histograms");
	if (cJSON_GetArraySize(others)) {
		fprintf(out, "\nother histograms:\n");
		cJSON_ArrayForEach(t, others)
		{
			fprintf(out, "  ");
			inline_object(t, out);
			fputc('\n', out);
		}
	}
}

/* ---- config ------------------------------------------------------------ */

void ctl_render_config(const char *op, const cJSON *r, FILE *out)
{
	const cJSON *it;
	if (!strcmp(op, "get")) {
		cJSON_ArrayForEach(it, get(r, "keys"))
		{
			fprintf(out, "%s = %s\n", it->string,
				strd(it, "value", ""));
		}
	} else if (!strcmp(op, "list")) {
		fprintf(out, "%-30s %-24s %-8s %s\n", "key", "value", "changes",
			"from");
		cJSON_ArrayForEach(it, get(r, "keys"))
		{
			const char *v = str(it, "value");
			fprintf(out, "%-30s %-24s %-8s %s\n",
				strd(it, "key", "?"), v && *v ? v : "(empty)",
				cJSON_IsTrue(get(it, "runtime")) ? "runtime"
								 : "restart",
				strd(it, "origin", "-"));
		}
	} else if (!strcmp(op, "set")) {
		cJSON_ArrayForEach(it, get(r, "changed"))
		{
			fprintf(out, "%s: %s -> %s\n", it->string,
				strd(it, "old", "?"), strd(it, "new", "?"));
		}
	} else if (!strcmp(op, "dump")) {
		fputs(strd(r, "text", ""), out);
	} else if (!strcmp(op, "reload")) {
		const cJSON *changed = get(r, "changed");
		const cJSON *restart = get(r, "restart_needed");
		fprintf(out, "reloaded: %d key%s changed\n",
			cJSON_GetArraySize(changed),
			cJSON_GetArraySize(changed) == 1 ? "" : "s");
		cJSON_ArrayForEach(it, changed)
		{
			fprintf(out, "  %s: %s -> %s\n", strd(it, "key", "?"),
				strd(it, "old", "?"), strd(it, "new", "?"));
		}
		cJSON_ArrayForEach(it, restart)
		{
			fprintf(out,
				"  %s: %s in the file, still %s (needs a "
				"restart)\n",
				strd(it, "key", "?"), strd(it, "new", "?"),
				strd(it, "old", "?"));
		}
	} else {
		ctl_render_generic(r, out);
	}
}

void ctl_render_help(const cJSON *r, FILE *out)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, get(r, "commands"))
	{
		bool available = !cJSON_IsFalse(get(it, "available"));
		fprintf(out, "  %-10s %s%s\n", strd(it, "name", "?"),
			strd(it, "help", "?"),
			available ? "" : " (not in this build)");
	}
}

/* ---- model ----------------------------------------------------------------- */

/* "3.8 MiB", "1.20 GiB"; "-" for NaN. */
static const char *fmt_bytes(double b, char *buf, size_t size)
{
	if (isnan(b))
		snprintf(buf, size, "-");
	else if (b >= 1024.0 * 1048576.0)
		snprintf(buf, size, "%.2f GiB", b / (1024.0 * 1048576.0));
	else
		snprintf(buf, size, "%.1f MiB", b / 1048576.0);
	return buf;
}

/* "loading 42% (weights)", "ready", "serving", "draining (3 running)". */
static void model_state(const cJSON *m, char *buf, size_t size)
{
	const char *state = strd(m, "state", "?");
	const char *phase = str(m, "phase");
	if (!strcmp(state, "loading"))
		snprintf(buf, size, "loading %.0f%%%s%s%s",
			 isnan(num(m, "percent")) ? 0 : num(m, "percent"),
			 phase ? " (" : "", phase ? phase : "",
			 phase ? ")" : "");
	else
		snprintf(buf, size, "%s", state);
}

static void model_table(const cJSON *models, FILE *out)
{
	fprintf(out, "%-20s %-22s %10s %10s %7s  %s\n", "NAME", "STATE",
		"WEIGHTS", "KV", "RUNNING", "PATH");
	const cJSON *m;
	cJSON_ArrayForEach(m, models)
	{
		char state[64], w[32], kv[32], run[16];
		model_state(m, state, sizeof(state));
		if (cJSON_IsTrue(get(m, "swap_pending")))
			snprintf(state + strlen(state),
				 sizeof(state) - strlen(state), ", then swap");
		double copies = num(m, "copies");
		fmt_bytes(num(m, "weight_bytes") *
				  (isnan(copies) || copies < 1 ? 1 : copies),
			  w, sizeof(w));
		fmt_bytes(num(m, "kv_bytes"), kv, sizeof(kv));
		fprintf(out, "%-20s %-22s %10s %10s %7s  %s\n",
			strd(m, "name", "?"), state, w, kv,
			fmt_num(num(m, "running"), "%.0f", run, sizeof(run)),
			strd(m, "path", "-"));
		const char *error = str(m, "error");
		if (error)
			fprintf(out, "  error: %s\n", error);
	}
}

void ctl_render_model(const char *op, const cJSON *r, FILE *out)
{
	char b[32];
	const cJSON *m = get(r, "model");
	if (!op || !strcmp(op, "list")) {
		model_table(get(r, "models"), out);
	} else if (!strcmp(op, "load")) {
		fprintf(out,
			"loading %s from %s (%s of weights) beside the "
			"serving model; slmctl model list shows progress\n",
			strd(m, "name", "?"), strd(m, "path", "?"),
			fmt_bytes(num(m, "weight_bytes"), b, sizeof(b)));
	} else if (!strcmp(op, "swap")) {
		if (cJSON_IsTrue(get(r, "switched")))
			fprintf(out,
				"%s serves new requests now; the model it "
				"replaced finishes its requests, then is "
				"freed\n",
				strd(m, "name", "?"));
		else
			fprintf(out,
				"loading %s from %s; it serves new requests "
				"once loaded, and the model it replaces is "
				"freed after its requests finish\n",
				strd(m, "name", "?"), strd(m, "path", "?"));
	} else if (!strcmp(op, "unload")) {
		fprintf(out, "unloaded %s\n", strd(r, "unloaded", "?"));
	} else {
		ctl_render_generic(r, out);
	}
}

/* ---- top --------------------------------------------------------------- */

/* Buckets of a top histogram into counts (SLM_HIST_BUCKETS). */
static void load_buckets(const cJSON *h, uint64_t *counts)
{
	memset(counts, 0, SLM_HIST_BUCKETS * sizeof(*counts));
	const cJSON *pair;
	cJSON_ArrayForEach(pair, get(h, "buckets"))
	{
		const cJSON *i = cJSON_GetArrayItem(pair, 0);
		const cJSON *n = cJSON_GetArrayItem(pair, 1);
		if (cJSON_IsNumber(i) && cJSON_IsNumber(n) &&
		    i->valuedouble >= 0 && i->valuedouble < SLM_HIST_BUCKETS)
			counts[(unsigned)i->valuedouble] +=
				(uint64_t)n->valuedouble;
	}
}

/* p50 and p99 of the values recorded between prev and cur (NaN if
 * none, or if the stage has no source). */
static void window_quantiles(const cJSON *prev, const cJSON *cur,
			     const char *stage, double *p50, double *p99)
{
	*p50 = *p99 = NAN;
	const cJSON *hc = get(get(cur, "hists"), stage);
	if (!cJSON_IsObject(hc))
		return;
	uint64_t *a = malloc(2 * SLM_HIST_BUCKETS * sizeof(*a));
	if (!a)
		return;
	uint64_t *b = a + SLM_HIST_BUCKETS;
	load_buckets(hc, a);
	const cJSON *hp = get(get(prev, "hists"), stage);
	if (cJSON_IsObject(hp))
		load_buckets(hp, b);
	else
		memset(b, 0, SLM_HIST_BUCKETS * sizeof(*b));
	uint64_t total = 0;
	for (unsigned i = 0; i < SLM_HIST_BUCKETS; i++) {
		a[i] = a[i] >= b[i] ? a[i] - b[i] : 0;
		total += a[i];
	}
	if (total) {
		double want[2] = {0.50 * (double)total, 0.99 * (double)total};
		double *outq[2] = {p50, p99};
		for (int q = 0; q < 2; q++) {
			uint64_t seen = 0;
			for (unsigned i = 0; i < SLM_HIST_BUCKETS; i++) {
				seen += a[i];
				if ((double)seen >= want[q] && seen) {
					*outq[q] =
						(double)slm_hist_bucket_upper(
							i);
					break;
				}
			}
		}
	}
	free(a);
}

static double counter_delta(const cJSON *prev, const cJSON *cur,
			    const char *name)
{
	double c = num(get(cur, "counters"), name);
	double p = num(get(prev, "counters"), name);
	return isnan(c) || isnan(p) ? NAN : c - p;
}

int ctl_top_compute(const cJSON *prev, const cJSON *cur, struct ctl_top *t)
{
	memset(t, 0, sizeof(*t));
	if (!cJSON_IsObject(cur) || !cJSON_IsNumber(get(cur, "t_ns")))
		return SLM_EPROTO;
	snprintf(t->state, sizeof(t->state), "%s", strd(cur, "state", "?"));
	t->uptime_s = num(cur, "uptime_s");
	double dt = prev ? (num(cur, "t_ns") - num(prev, "t_ns")) * 1e-9 : NAN;
	t->interval_s = dt;
	if (!(dt > 0))
		dt = NAN;
	t->req_s = counter_delta(prev, cur, "requests_total") / dt;
	t->tok_s = counter_delta(prev, cur, "tokens_generated_total") / dt;
	const cJSON *g = get(cur, "gauges");
	t->queue = num(g, "queue_depth");
	t->running = num(g, "requests_running");
	double used = num(g, "kv_blocks_used"),
	       total = num(g, "kv_blocks_total");
	t->kv_use = total > 0 ? used / total : NAN;
	double hit = counter_delta(prev, cur, "prefix_hit_tokens_total");
	double miss = counter_delta(prev, cur, "prefix_miss_tokens_total");
	t->prefix_hit = hit + miss > 0 ? hit / (hit + miss) : NAN;
	window_quantiles(prev, cur, "first_token", &t->ttft_p50, &t->ttft_p99);
	window_quantiles(prev, cur, "decode_step", &t->token_p50,
			 &t->token_p99);
	const cJSON *threads = get(cur, "threads");
	int n = cJSON_GetArraySize(threads);
	t->thread = calloc((size_t)n + 1, sizeof(*t->thread));
	if (!t->thread)
		return SLM_ENOMEM;
	const cJSON *th;
	cJSON_ArrayForEach(th, threads)
	{
		struct ctl_top_thread *row = &t->thread[t->n_threads++];
		const char *name = str(th, "name");
		snprintf(row->name, sizeof(row->name), "%s", name ? name : "?");
		snprintf(row->role, sizeof(row->role), "%s",
			 strd(th, "role", "-"));
		snprintf(row->state, sizeof(row->state), "%s",
			 strd(th, "state", "-"));
		double grp = num(th, "group");
		row->group = isnan(grp) ? -1 : (int)grp;
		row->cpu_pct = NAN;
		const cJSON *pt;
		cJSON_ArrayForEach(pt, get(prev, "threads"))
		{
			const char *pn = str(pt, "name");
			if (pn && name && !strcmp(pn, name) && dt > 0)
				row->cpu_pct = (num(th, "cpu_ns") -
						num(pt, "cpu_ns")) *
					       1e-9 / dt * 100;
		}
	}
	return 0;
}

void ctl_top_free(struct ctl_top *t)
{
	free(t->thread);
	t->thread = NULL;
	t->n_threads = 0;
}

void ctl_top_print(const struct ctl_top *t, FILE *out)
{
	char up[64], a[32], b[32], c[32], d[32], e[32], f[32], g[32], h[32],
		i[32], j[32];
	fprintf(out, "slmd %s, up %s\n\n", t->state,
		fmt_uptime(t->uptime_s, up, sizeof(up)));
	fprintf(out, "%9s %9s %6s %8s %9s %9s %9s %9s %10s %7s\n", "req/s",
		"tok/s", "queue", "running", "TTFT p50", "TTFT p99", "tok p50",
		"tok p99", "prefix hit", "KV use");
	fprintf(out, "%9s %9s %6s %8s %9s %9s %9s %9s %10s %7s\n",
		fmt_num(t->req_s, "%.1f", a, sizeof(a)),
		fmt_num(t->tok_s, "%.1f", b, sizeof(b)),
		fmt_num(t->queue, "%.0f", c, sizeof(c)),
		fmt_num(t->running, "%.0f", d, sizeof(d)),
		ctl_fmt_duration(t->ttft_p50, e, sizeof(e)),
		ctl_fmt_duration(t->ttft_p99, f, sizeof(f)),
		ctl_fmt_duration(t->token_p50, g, sizeof(g)),
		ctl_fmt_duration(t->token_p99, h, sizeof(h)),
		fmt_num(t->prefix_hit * 100, "%.0f %%", i, sizeof(i)),
		fmt_num(t->kv_use * 100, "%.0f %%", j, sizeof(j)));
	fprintf(out, "\n%-18s %-10s %5s %7s  %s\n", "thread", "role", "group",
		"cpu %", "state");
	for (int k = 0; k < t->n_threads; k++) {
		const struct ctl_top_thread *r = &t->thread[k];
		fmt_num(r->group >= 0 ? r->group : NAN, "%.0f", a, sizeof(a));
		fprintf(out, "%-18s %-10s %5s %7s  %s\n", r->name, r->role, a,
			fmt_num(r->cpu_pct, "%.1f", b, sizeof(b)), r->state);
	}
}

static bool add_figure(cJSON *obj, const char *name, double v)
{
	return isnan(v) ? cJSON_AddNullToObject(obj, name) != NULL
			: cJSON_AddNumberToObject(obj, name, v) != NULL;
}

cJSON *ctl_top_json(const struct ctl_top *t)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o && cJSON_AddStringToObject(o, "state", t->state) &&
		  add_figure(o, "uptime_s", t->uptime_s) &&
		  add_figure(o, "interval_s", t->interval_s) &&
		  add_figure(o, "requests_per_s", t->req_s) &&
		  add_figure(o, "tokens_per_s", t->tok_s) &&
		  add_figure(o, "queue_depth", t->queue) &&
		  add_figure(o, "requests_running", t->running) &&
		  add_figure(o, "ttft_p50_us", t->ttft_p50 / 1e3) &&
		  add_figure(o, "ttft_p99_us", t->ttft_p99 / 1e3) &&
		  add_figure(o, "token_p50_us", t->token_p50 / 1e3) &&
		  add_figure(o, "token_p99_us", t->token_p99 / 1e3) &&
		  add_figure(o, "prefix_hit_ratio", t->prefix_hit) &&
		  add_figure(o, "kv_use_ratio", t->kv_use);
	cJSON *threads = ok ? cJSON_AddArrayToObject(o, "threads") : NULL;
	ok = ok && threads;
	for (int k = 0; ok && k < t->n_threads; k++) {
		const struct ctl_top_thread *r = &t->thread[k];
		cJSON *th = cJSON_CreateObject();
		ok = th && cJSON_AddItemToArray(threads, th) &&
		     cJSON_AddStringToObject(th, "name", r->name) &&
		     cJSON_AddStringToObject(th, "role", r->role) &&
		     add_figure(th, "group", r->group >= 0 ? r->group : NAN) &&
		     add_figure(th, "cpu_pct", r->cpu_pct) &&
		     cJSON_AddStringToObject(th, "state", r->state);
		if (!ok && th && !cJSON_GetArrayItem(threads, k))
			cJSON_Delete(th);
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}
