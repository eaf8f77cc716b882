/*
 * The dispatcher of request lines and the built-in commands.  docs/ctl.md
 * documents every command, field and error; keep the two in step.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/version.h"
#include "ctl/ctl_int.h"
#include "ctl/metrics.h"
#include "daemon/daemon.h"
#include "numa/placement.h"
#include "numa/topology.h"

typedef int (*builtin_fn)(struct ctl_server *s, const struct ctl_request *req,
			  cJSON *result, struct slm_error *err);

/* ---- helpers ----------------------------------------------------------- */

/* cJSON's Add* return NULL when out of memory; collect that in one flag
 * per command rather than checking every call. */
struct out {
	bool oom;
};

static cJSON *add_obj(struct out *o, cJSON *parent, const char *name)
{
	cJSON *v = cJSON_AddObjectToObject(parent, name);
	o->oom |= !v;
	return v;
}

static cJSON *add_arr(struct out *o, cJSON *parent, const char *name)
{
	cJSON *v = cJSON_AddArrayToObject(parent, name);
	o->oom |= !v;
	return v;
}

static void add_str(struct out *o, cJSON *parent, const char *name,
		    const char *value)
{
	o->oom |= !(value ? cJSON_AddStringToObject(parent, name, value)
			  : cJSON_AddNullToObject(parent, name));
}

static void add_num(struct out *o, cJSON *parent, const char *name, double v)
{
	o->oom |= !cJSON_AddNumberToObject(parent, name, isfinite(v) ? v : 0);
}

static void add_bool(struct out *o, cJSON *parent, const char *name, bool v)
{
	o->oom |= !cJSON_AddBoolToObject(parent, name, v);
}

static void add_null(struct out *o, cJSON *parent, const char *name)
{
	o->oom |= !cJSON_AddNullToObject(parent, name);
}

static cJSON *push_obj(struct out *o, cJSON *array)
{
	cJSON *v = cJSON_CreateObject();
	if (!v || !cJSON_AddItemToArray(array, v)) {
		cJSON_Delete(v);
		o->oom = true;
		return NULL;
	}
	return v;
}

static int out_done(const struct out *o, struct slm_error *err)
{
	return o->oom ? slm_error_set(err, SLM_ENOMEM, "out of memory") : 0;
}

static int need_daemon(const struct ctl_server *s, const char *what,
		       struct slm_error *err)
{
	if (s->d)
		return 0;
	return slm_error_set(err, SLM_ESTATE, "%s: no running daemon", what);
}

/* ---- status ------------------------------------------------------------ */

static int cmd_status(struct ctl_server *s, const struct ctl_request *req,
		      cJSON *r, struct slm_error *err)
{
	struct out o = {0};
	add_str(&o, r, "version", SLM_VERSION);
	add_num(&o, r, "pid", (double)getpid());
	if (s->d) {
		add_num(&o, r, "uptime_s", (double)slmd_uptime_ns(s->d) * 1e-9);
		add_str(&o, r, "state", slmd_state_name(slmd_state(s->d)));
		add_bool(&o, r, "exiting", slmd_exiting(s->d));
		add_bool(&o, r, "drained", slmd_drained(s->d));
	} else {
		add_null(&o, r, "uptime_s");
		add_null(&o, r, "state");
	}
	/* Filled by the components that own them (ctl_register_status). */
	add_null(&o, r, "model");
	add_null(&o, r, "dataplane");
	add_null(&o, r, "groups");
	cJSON *health = add_obj(&o, r, "health");
	if (health && s->d) {
		int h = slmd_healthy(s->d);
		if (h < 0)
			add_null(&o, health, "healthy");
		else
			add_bool(&o, health, "healthy", h == 1);
		cJSON *names = add_arr(&o, health, "components");
		for (int i = 0; names && i < slmd_n_components(s->d); i++) {
			cJSON *n = cJSON_CreateString(
				slmd_component_name(s->d, i));
			o.oom |= !n || !cJSON_AddItemToArray(names, n);
		}
	}
	cJSON *ctl = add_obj(&o, r, "ctl");
	if (ctl) {
		add_str(&o, ctl, "socket", s->path[0] ? s->path : NULL);
		add_num(&o, ctl, "clients",
			__atomic_load_n(&s->n_conns, __ATOMIC_RELAXED));
		add_str(&o, ctl, "metrics",
			s->metrics ? metrics_http_url(s->metrics) : NULL);
	}
	if (!o.oom && ctl_registry_status(r))
		o.oom = true;
	return out_done(&o, err);
}

/* ---- stats ------------------------------------------------------------- */

/* The counters scripts rely on: present (0) before their source exists. */
static const char *const required_counters[] = {
	"requests_total",
	"tokens_generated_total",
	"prefix_hit_tokens_total",
	"drops_total",
};

static bool is_thread_family(const char *name)
{
	return !strncmp(name, "thread_", 7);
}

/* Families stats leaves out: per-thread ones (perf shows them) and the
 * one-hot gauges of Prometheus (status has them as text). */
static bool not_in_stats(const struct perf_family *f)
{
	return f->type == PERF_HISTOGRAM || is_thread_family(f->name) ||
	       !strcmp(f->name, "info") || !strcmp(f->name, "state");
}

static double family_value(const struct perf_family *f)
{
	double sum = 0;
	for (int i = 0; i < f->n_samples; i++)
		sum += f->type == PERF_COUNTER && !f->fractional
			       ? (double)f->sample[i].count
			       : f->sample[i].value;
	return sum;
}

/* "drops_total" -> "drops_by_reason". */
static void by_reason_name(const char *family, char *buf, size_t size)
{
	size_t len = strlen(family);
	if (len > 6 && !strcmp(family + len - 6, "_total"))
		len -= 6;
	snprintf(buf, size, "%.*s_by_reason", (int)len, family);
}

static int cmd_stats(struct ctl_server *s, const struct ctl_request *req,
		     cJSON *r, struct slm_error *err)
{
	struct perf_snapshot *snap = perf_snapshot_take();
	if (!snap)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	struct out o = {.oom = snap->oom};
	cJSON *unsourced = cJSON_CreateArray();
	o.oom |= !unsourced;
	for (size_t i = 0; i < SLM_ARRAY_LEN(required_counters); i++) {
		add_num(&o, r, required_counters[i], 0);
		if (unsourced &&
		    !perf_snapshot_find(snap, required_counters[i])) {
			cJSON *n = cJSON_CreateString(required_counters[i]);
			o.oom |= !n || !cJSON_AddItemToArray(unsourced, n);
		}
	}
	cJSON *drops_by = add_obj(&o, r, "drops_by_reason");
	for (int f = 0; f < snap->n_families && !o.oom; f++) {
		const struct perf_family *fam = &snap->family[f];
		if (not_in_stats(fam))
			continue;
		double v = family_value(fam);
		if (cJSON_GetObjectItemCaseSensitive(r, fam->name))
			cJSON_SetNumberValue(
				cJSON_GetObjectItemCaseSensitive(r, fam->name),
				v);
		else
			add_num(&o, r, fam->name, v);
		/* A breakdown by reason where the family has one. */
		cJSON *by = NULL;
		for (int i = 0; i < fam->n_samples && !o.oom; i++) {
			const char *reason =
				perf_sample_label(&fam->sample[i], "reason");
			if (!reason)
				continue;
			if (!by) {
				char name[160];
				by_reason_name(fam->name, name, sizeof(name));
				by = !strcmp(name, "drops_by_reason")
					     ? drops_by
					     : cJSON_GetObjectItemCaseSensitive(
						       r, name);
				if (!by)
					by = add_obj(&o, r, name);
				if (!by)
					break;
			}
			double sv = fam->fractional
					    ? fam->sample[i].value
					    : (double)fam->sample[i].count;
			cJSON *prev =
				cJSON_GetObjectItemCaseSensitive(by, reason);
			if (prev)
				cJSON_SetNumberValue(
					prev, cJSON_GetNumberValue(prev) + sv);
			else
				add_num(&o, by, reason, sv);
		}
	}
	if (unsourced && !cJSON_AddItemToObject(r, "unsourced", unsourced)) {
		cJSON_Delete(unsourced);
		o.oom = true;
	}
	perf_snapshot_free(snap);
	return out_done(&o, err);
}

/* ---- perf -------------------------------------------------------------- */

static void add_summary(struct out *o, cJSON *obj, const struct slm_hist *h,
			bool seconds)
{
	struct slm_hist_summary sum;
	slm_hist_summarize(h, &sum);
	/* Times in microseconds; other histograms in their own unit. */
	double k = seconds ? 1e-3 : 1;
	const char *sfx[] = {"mean_us", "p50_us",  "p90_us",
			     "p99_us",	"p999_us", "max_us"};
	const char *plain[] = {"mean", "p50", "p90", "p99", "p999", "max"};
	const char *const *names = seconds ? sfx : plain;
	add_num(o, obj, "count", (double)sum.count);
	add_num(o, obj, names[0], sum.mean * k);
	add_num(o, obj, names[1], (double)sum.p50 * k);
	add_num(o, obj, names[2], (double)sum.p90 * k);
	add_num(o, obj, names[3], (double)sum.p99 * k);
	add_num(o, obj, names[4], (double)sum.p999 * k);
	add_num(o, obj, names[5], (double)sum.max * k);
}

static const char *kstate_name(char k)
{
	switch (k) {
	case 'R':
		return "running";
	case 'S':
		return "sleeping";
	case 'D':
		return "waiting-io";
	case 'T':
	case 't':
		return "stopped";
	case 'Z':
	case 'X':
		return "exited";
	case 0:
		return NULL;
	default:
		return "other";
	}
}

/* The per-thread counters of the snapshot into each thread's object. */
static void perf_thread_counters(struct out *o,
				 const struct perf_snapshot *snap,
				 cJSON *threads)
{
	for (int f = 0; f < snap->n_families; f++) {
		const struct perf_family *fam = &snap->family[f];
		if (fam->type != PERF_COUNTER || is_thread_family(fam->name))
			continue;
		for (int i = 0; i < fam->n_samples; i++) {
			const struct perf_sample *sm = &fam->sample[i];
			const char *tname = perf_sample_label(sm, "thread");
			if (!tname)
				continue;
			cJSON *t = NULL, *it;
			cJSON_ArrayForEach(it, threads)
			{
				const cJSON *n =
					cJSON_GetObjectItemCaseSensitive(
						it, "name");
				if (cJSON_IsString(n) &&
				    !strcmp(n->valuestring, tname)) {
					t = it;
					break;
				}
			}
			if (!t) {
				/* An exited row, or a source's thread (no
				 * kernel counters of its own). */
				t = push_obj(o, threads);
				if (!t)
					return;
				add_str(o, t, "name", tname);
				add_str(o, t, "role",
					perf_sample_label(sm, "role"));
				add_obj(o, t, "events");
			}
			cJSON *c =
				cJSON_GetObjectItemCaseSensitive(t, "counters");
			if (!c)
				c = add_obj(o, t, "counters");
			if (!c)
				return;
			double v =
				fam->fractional ? sm->value : (double)sm->count;
			const char *reason = perf_sample_label(sm, "reason");
			if (!reason) {
				add_num(o, c, fam->name, v);
				continue;
			}
			cJSON *by =
				cJSON_GetObjectItemCaseSensitive(c, fam->name);
			if (!by)
				by = add_obj(o, c, fam->name);
			if (by)
				add_num(o, by, reason, v);
		}
	}
}

static int cmd_perf(struct ctl_server *s, const struct ctl_request *req,
		    cJSON *r, struct slm_error *err)
{
	struct perf_snapshot *snap = perf_snapshot_take();
	if (!snap)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	struct out o = {.oom = snap->oom};
	const char *hw = perf_hw_status();
	cJSON *hwc = add_obj(&o, r, "hw_counters");
	if (hwc) {
		add_bool(&o, hwc, "available", hw == NULL);
		add_str(&o, hwc, "status", hw ? hw : "available");
	}
	cJSON *threads = add_arr(&o, r, "threads");
	for (int i = 0; threads && i < snap->n_threads; i++) {
		const struct perf_thread_row *row = &snap->thread[i];
		cJSON *t = push_obj(&o, threads);
		if (!t)
			break;
		add_str(&o, t, "name", row->name);
		add_str(&o, t, "role", row->role);
		if (row->group >= 0)
			add_num(&o, t, "group", row->group);
		else
			add_null(&o, t, "group");
		add_num(&o, t, "tid", row->tid);
		add_str(&o, t, "state", kstate_name(row->kstate));
		add_str(&o, t, "activity", row->activity);
		add_num(&o, t, "cpu_s", (double)row->cpu_ns * 1e-9);
		cJSON *ev = add_obj(&o, t, "events");
		for (int e = PERF_EV_TASK_CLOCK + 1; ev && e < PERF_EV__COUNT;
		     e++) {
			if (!(row->ev_ok & (1u << e)))
				continue;
			/* "thread_page_faults_total" -> "page_faults" */
			char name[64];
			const char *full = perf_event_name(e);
			size_t len = strlen(full) - 7 - 6;
			snprintf(name, sizeof(name), "%.*s", (int)len,
				 full + 7);
			add_num(&o, ev, name, (double)row->ev[e]);
		}
		add_obj(&o, t, "counters");
	}
	if (threads)
		perf_thread_counters(&o, snap, threads);
	cJSON *stages = add_arr(&o, r, "stages");
	cJSON *others = add_arr(&o, r, "histograms");
	for (int f = 0; f < snap->n_families && stages && others; f++) {
		const struct perf_family *fam = &snap->family[f];
		if (fam->type != PERF_HISTOGRAM)
			continue;
		bool is_stage = !strcmp(fam->name, "stage_seconds");
		size_t nlen = strlen(fam->name);
		bool seconds =
			nlen > 8 && !strcmp(fam->name + nlen - 8, "_seconds");
		for (int i = 0; i < fam->n_samples; i++) {
			const struct perf_sample *sm = &fam->sample[i];
			if (!sm->hist)
				continue;
			cJSON *h = push_obj(&o, is_stage ? stages : others);
			if (!h)
				break;
			if (!is_stage)
				add_str(&o, h, "name", fam->name);
			for (int l = 0; l < sm->n_labels; l++)
				add_str(&o, h, sm->label[l].name,
					sm->label[l].value);
			add_summary(&o, h, sm->hist, seconds);
		}
	}
	perf_snapshot_free(snap);
	return out_done(&o, err);
}

/* ---- top --------------------------------------------------------------- */

static int cmd_top(struct ctl_server *s, const struct ctl_request *req,
		   cJSON *r, struct slm_error *err)
{
	struct perf_snapshot *snap = perf_snapshot_take();
	if (!snap)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	struct out o = {.oom = snap->oom};
	add_num(&o, r, "t_ns", (double)snap->taken_ns);
	if (s->d) {
		add_str(&o, r, "state", slmd_state_name(slmd_state(s->d)));
		add_num(&o, r, "uptime_s", (double)slmd_uptime_ns(s->d) * 1e-9);
	}
	static const char *const counters[] = {
		"requests_total", "requests_done_total",
		"tokens_generated_total", "prefix_hit_tokens_total",
		"prefix_miss_tokens_total"};
	cJSON *c = add_obj(&o, r, "counters");
	for (size_t i = 0; c && i < SLM_ARRAY_LEN(counters); i++) {
		const struct perf_family *f =
			perf_snapshot_find(snap, counters[i]);
		if (f)
			add_num(&o, c, counters[i], family_value(f));
		else
			add_null(&o, c, counters[i]);
	}
	static const char *const gauges[] = {"queue_depth", "requests_running",
					     "kv_blocks_used",
					     "kv_blocks_total"};
	cJSON *g = add_obj(&o, r, "gauges");
	for (size_t i = 0; g && i < SLM_ARRAY_LEN(gauges); i++) {
		const struct perf_family *f =
			perf_snapshot_find(snap, gauges[i]);
		if (f)
			add_num(&o, g, gauges[i], family_value(f));
		else
			add_null(&o, g, gauges[i]);
	}
	/* Cumulative buckets of two stages, merged over groups: slmctl top
	 * subtracts two samples for the quantiles of the last interval. */
	static const char *const stages[] = {"first_token", "decode_step"};
	cJSON *hists = add_obj(&o, r, "hists");
	const struct perf_family *sf =
		perf_snapshot_find(snap, "stage_seconds");
	struct slm_hist *merged = malloc(sizeof(*merged));
	o.oom |= !merged;
	for (size_t k = 0; hists && merged && k < SLM_ARRAY_LEN(stages); k++) {
		slm_hist_init(merged);
		bool any = false;
		for (int i = 0; sf && i < sf->n_samples; i++) {
			const char *st =
				perf_sample_label(&sf->sample[i], "stage");
			if (st && !strcmp(st, stages[k]) &&
			    sf->sample[i].hist) {
				slm_hist_merge(merged, sf->sample[i].hist);
				any = true;
			}
		}
		if (!any) {
			add_null(&o, hists, stages[k]);
			continue;
		}
		cJSON *h = add_obj(&o, hists, stages[k]);
		if (!h)
			break;
		add_num(&o, h, "count", (double)merged->count);
		add_num(&o, h, "sum_ns", (double)merged->sum);
		cJSON *b = add_arr(&o, h, "buckets");
		for (unsigned i = 0; b && i < SLM_HIST_BUCKETS; i++) {
			if (!merged->bucket[i])
				continue;
			cJSON *pair = cJSON_CreateArray();
			cJSON *a = cJSON_CreateNumber(i);
			cJSON *n =
				cJSON_CreateNumber((double)merged->bucket[i]);
			if (!pair || !a || !n ||
			    !cJSON_AddItemToArray(pair, a) ||
			    !cJSON_AddItemToArray(pair, n) ||
			    !cJSON_AddItemToArray(b, pair)) {
				o.oom = true;
				break;
			}
		}
	}
	free(merged);
	cJSON *threads = add_arr(&o, r, "threads");
	for (int i = 0; threads && i < snap->n_threads; i++) {
		const struct perf_thread_row *row = &snap->thread[i];
		cJSON *t = push_obj(&o, threads);
		if (!t)
			break;
		add_str(&o, t, "name", row->name);
		add_str(&o, t, "role", row->role);
		if (row->group >= 0)
			add_num(&o, t, "group", row->group);
		else
			add_null(&o, t, "group");
		add_num(&o, t, "cpu_ns", (double)row->cpu_ns);
		add_str(&o, t, "state",
			row->activity ? row->activity
				      : kstate_name(row->kstate));
	}
	perf_snapshot_free(snap);
	return out_done(&o, err);
}

/* ---- config ------------------------------------------------------------ */

static void key_name(int id, char *buf, size_t size)
{
	const struct slm_cfg_key *k = slm_config_key(id);
	snprintf(buf, size, "%s.%s", k->section, k->name);
}

static void describe_key(struct out *o, cJSON *obj,
			 const struct slm_config *cfg, int id, bool full)
{
	const struct slm_cfg_key *k = slm_config_key(id);
	char value[1024];
	slm_config_format(cfg, id, value, sizeof(value));
	add_str(o, obj, "value", value);
	add_str(o, obj, "type", slm_config_type_name(k->type));
	add_str(o, obj, "default", k->def);
	add_bool(o, obj, "runtime", k->runtime);
	add_str(o, obj, "origin", slm_config_origin(cfg, id));
	if (full) {
		char allowed[256];
		slm_config_describe_allowed(id, allowed, sizeof(allowed));
		add_str(o, obj, "allowed", allowed);
		add_str(o, obj, "help", k->help);
	}
}

static int lookup_key(const char *name, struct slm_error *err)
{
	int id = slm_config_find(name);
	if (id < 0)
		return slm_error_set(err, SLM_ENOTFOUND,
				     "unknown key '%s' (slmctl config list "
				     "shows every key)",
				     name);
	return id;
}

/* The string list of "keys" (array) or "key", else args from `first`. */
static int key_list(const struct ctl_request *req, int first,
		    const cJSON **list, struct slm_error *err)
{
	const cJSON *keys = cJSON_GetObjectItemCaseSensitive(req->json, "keys");
	const cJSON *key = cJSON_GetObjectItemCaseSensitive(req->json, "key");
	*list = NULL;
	if (keys) {
		if (!cJSON_IsArray(keys))
			return slm_error_set(err, SLM_EINVAL,
					     "field 'keys' must be an array "
					     "of strings");
		*list = keys;
	} else if (key) {
		if (!cJSON_IsString(key))
			return slm_error_set(err, SLM_EINVAL,
					     "field 'key' must be a string");
		*list = key;
	} else if (req->args && cJSON_GetArraySize(req->args) > first) {
		*list = req->args;
	}
	return 0;
}

static int config_get(struct ctl_server *s, const struct ctl_request *req,
		      cJSON *r, struct slm_error *err)
{
	const cJSON *list;
	int rc = key_list(req, 0, &list, err);
	if (rc)
		return rc;
	struct out o = {0};
	cJSON *keys = add_obj(&o, r, "keys");
	if (!keys)
		return out_done(&o, err);
	if (!list) {
		for (int id = 0; id < SLM_CFG__COUNT; id++) {
			char name[128];
			key_name(id, name, sizeof(name));
			cJSON *k = add_obj(&o, keys, name);
			if (k)
				describe_key(&o, k, s->cfg, id, false);
		}
		return out_done(&o, err);
	}
	const cJSON *item;
	if (cJSON_IsString(list)) {
		int id = lookup_key(list->valuestring, err);
		if (id < 0)
			return id;
		cJSON *k = add_obj(&o, keys, list->valuestring);
		if (k)
			describe_key(&o, k, s->cfg, id, false);
		return out_done(&o, err);
	}
	cJSON_ArrayForEach(item, list)
	{
		if (!cJSON_IsString(item))
			return slm_error_set(err, SLM_EINVAL,
					     "config get: every key must be a "
					     "string");
		int id = lookup_key(item->valuestring, err);
		if (id < 0)
			return id;
		cJSON *k = add_obj(&o, keys, item->valuestring);
		if (k)
			describe_key(&o, k, s->cfg, id, false);
	}
	return out_done(&o, err);
}

/* A JSON value as config text: strings as they are, numbers and
 * booleans written out; anything else is refused. */
static int value_text(const char *key, const cJSON *v, char *buf, size_t size,
		      struct slm_error *err)
{
	if (cJSON_IsString(v)) {
		if (strlen(v->valuestring) >= size)
			return slm_error_set(err, SLM_ETOOBIG,
					     "config set: value of '%s' is "
					     "too long",
					     key);
		snprintf(buf, size, "%s", v->valuestring);
	} else if (cJSON_IsBool(v)) {
		snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
	} else if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		if (d == floor(d) && fabs(d) < 9.007199254740992e15)
			snprintf(buf, size, "%lld", (long long)d);
		else
			snprintf(buf, size, "%.17g", d);
	} else {
		return slm_error_set(err, SLM_EINVAL,
				     "config set: value of '%s' must be a "
				     "string, number or boolean",
				     key);
	}
	return 0;
}

#define SET_VALUE_MAX 1024

static int config_set(struct ctl_server *s, const struct ctl_request *req,
		      cJSON *r, struct slm_error *err)
{
	int rc = need_daemon(s, "config set", err);
	if (rc)
		return rc;
	const cJSON *values =
		cJSON_GetObjectItemCaseSensitive(req->json, "values");
	if (values && !cJSON_IsObject(values))
		return slm_error_set(err, SLM_EINVAL,
				     "field 'values' must be an object "
				     "{\"key\": value, ...}");
	int n_args = req->args ? cJSON_GetArraySize(req->args) : 0;
	int n = values ? cJSON_GetArraySize(values) : 0;
	/* args: ["k=v", ...] or ["k", "v", ...] */
	bool assign = false;
	if (!values) {
		const cJSON *first = cJSON_GetArrayItem(req->args, 0);
		assign = first && cJSON_IsString(first) &&
			 strchr(first->valuestring, '=');
		n = assign ? n_args : n_args / 2;
		if (!assign && n_args % 2)
			return slm_error_set(err, SLM_EINVAL,
					     "config set: expected KEY VALUE "
					     "pairs or KEY=VALUE");
	}
	if (n == 0)
		return slm_error_set(err, SLM_EINVAL,
				     "config set: no KEY VALUE given");
	if (n > SLM_CFG__COUNT)
		return slm_error_set(err, SLM_EINVAL,
				     "config set: more keys than the table "
				     "has");
	char(*names)[128] = calloc((size_t)n, sizeof(*names));
	char(*texts)[SET_VALUE_MAX] = calloc((size_t)n, sizeof(*texts));
	const char **keys = calloc((size_t)n, sizeof(*keys));
	const char **vals = calloc((size_t)n, sizeof(*vals));
	char(*olds)[SET_VALUE_MAX] = calloc((size_t)n, sizeof(*olds));
	int *ids = calloc((size_t)n, sizeof(*ids));
	if (!names || !texts || !keys || !vals || !olds || !ids) {
		rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
		goto out;
	}
	for (int i = 0; i < n && rc == 0; i++) {
		const char *key;
		const cJSON *v;
		if (values) {
			v = cJSON_GetArrayItem(values, i);
			key = v->string;
		} else if (assign) {
			v = cJSON_GetArrayItem(req->args, i);
			if (!cJSON_IsString(v)) {
				rc = slm_error_set(err, SLM_EINVAL,
						   "args[%d] must be a string",
						   i);
				break;
			}
			const char *eq = strchr(v->valuestring, '=');
			if (!eq) {
				rc = slm_error_set(err, SLM_EINVAL,
						   "config set: '%s' is not "
						   "KEY=VALUE",
						   v->valuestring);
				break;
			}
			snprintf(names[i], sizeof(names[i]), "%.*s",
				 (int)(eq - v->valuestring), v->valuestring);
			key = names[i];
			snprintf(texts[i], sizeof(texts[i]), "%s", eq + 1);
			v = NULL;
		} else {
			const cJSON *k = cJSON_GetArrayItem(req->args, 2 * i);
			v = cJSON_GetArrayItem(req->args, 2 * i + 1);
			if (!cJSON_IsString(k)) {
				rc = slm_error_set(err, SLM_EINVAL,
						   "args[%d] must be a string",
						   2 * i);
				break;
			}
			key = k->valuestring;
		}
		if (key != names[i])
			snprintf(names[i], sizeof(names[i]), "%s", key);
		ids[i] = lookup_key(names[i], err);
		if (ids[i] < 0) {
			rc = ids[i];
			break;
		}
		if (v)
			rc = value_text(names[i], v, texts[i], sizeof(texts[i]),
					err);
		keys[i] = names[i];
		vals[i] = texts[i];
		slm_config_format(s->cfg, ids[i], olds[i], sizeof(olds[i]));
	}
	if (rc)
		goto out;
	char origin[96];
	snprintf(origin, sizeof(origin), "slmctl (uid %u, pid %d)",
		 (unsigned)req->uid, (int)req->pid);
	rc = slmd_set_runtime(s->d, n, keys, vals, origin, err);
	if (rc)
		goto out;
	struct out o = {0};
	cJSON *changed = add_obj(&o, r, "changed");
	for (int i = 0; changed && i < n; i++) {
		cJSON *c = add_obj(&o, changed, names[i]);
		if (!c)
			break;
		char now[SET_VALUE_MAX];
		slm_config_format(s->cfg, ids[i], now, sizeof(now));
		add_str(&o, c, "old", olds[i]);
		add_str(&o, c, "new", now);
	}
	rc = out_done(&o, err);
out:
	free(names);
	free(texts);
	free(keys);
	free(vals);
	free(olds);
	free(ids);
	return rc;
}

static int config_list(struct ctl_server *s, const struct ctl_request *req,
		       cJSON *r, struct slm_error *err)
{
	struct out o = {0};
	cJSON *keys = add_arr(&o, r, "keys");
	for (int id = 0; keys && id < SLM_CFG__COUNT; id++) {
		cJSON *k = push_obj(&o, keys);
		if (!k)
			break;
		char name[128];
		key_name(id, name, sizeof(name));
		add_str(&o, k, "key", name);
		describe_key(&o, k, s->cfg, id, true);
	}
	return out_done(&o, err);
}

static int config_dump(struct ctl_server *s, const struct ctl_request *req,
		       cJSON *r, struct slm_error *err)
{
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (!mem)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int rc = slm_config_dump(s->cfg, mem);
	if (fclose(mem) || rc) {
		free(text);
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	}
	struct out o = {0};
	add_str(&o, r, "text", text);
	free(text);
	return out_done(&o, err);
}

struct reload_notes {
	struct out *o;
	cJSON *changed, *restart;
};

static void reload_note(void *ctx, const char *key, const char *old_value,
			const char *new_value, bool applied)
{
	struct reload_notes *n = ctx;
	cJSON *item = push_obj(n->o, applied ? n->changed : n->restart);
	if (!item)
		return;
	add_str(n->o, item, "key", key);
	add_str(n->o, item, "old", old_value);
	add_str(n->o, item, "new", new_value);
}

static int config_reload(struct ctl_server *s, const struct ctl_request *req,
			 cJSON *r, struct slm_error *err)
{
	int rc = need_daemon(s, "config reload", err);
	if (rc)
		return rc;
	struct out o = {0};
	struct reload_notes n = {.o = &o};
	n.changed = add_arr(&o, r, "changed");
	n.restart = add_arr(&o, r, "restart_needed");
	if (o.oom)
		return out_done(&o, err);
	rc = slmd_reload(s->d, reload_note, &n, err);
	if (rc)
		return rc;
	return out_done(&o, err);
}

static int cmd_config(struct ctl_server *s, const struct ctl_request *req,
		      cJSON *r, struct slm_error *err)
{
	static const struct {
		const char *op;
		builtin_fn fn;
	} ops[] = {{"get", config_get},
		   {"set", config_set},
		   {"list", config_list},
		   {"dump", config_dump},
		   {"reload", config_reload}};
	if (!req->op)
		return slm_error_set(err, SLM_EINVAL,
				     "config: missing op (get, set, list, "
				     "dump or reload)");
	for (size_t i = 0; i < SLM_ARRAY_LEN(ops); i++)
		if (!strcmp(req->op, ops[i].op))
			return ops[i].fn(s, req, r, err);
	return slm_error_set(err, SLM_ENOTFOUND,
			     "config: unknown op '%s' (get, set, list, dump or "
			     "reload)",
			     req->op);
}

/* ---- log-level, drain, shutdown ---------------------------------------- */

static int cmd_log_level(struct ctl_server *s, const struct ctl_request *req,
			 cJSON *r, struct slm_error *err)
{
	const char *level;
	int rc = ctl_param_string(req, "level", 0, &level, err);
	if (rc)
		return rc;
	struct out o = {0};
	const char *now = slm_log_level_name(slm_log_get_level());
	if (!level) {
		add_str(&o, r, "level", now);
		return out_done(&o, err);
	}
	if (slm_log_level_parse(level) < 0)
		return slm_error_set(err, SLM_EINVAL,
				     "log-level: '%s' is not one of error, "
				     "warn, info, debug, trace",
				     level);
	rc = need_daemon(s, "log-level", err);
	if (rc)
		return rc;
	char origin[96];
	snprintf(origin, sizeof(origin), "slmctl log-level (uid %u, pid %d)",
		 (unsigned)req->uid, (int)req->pid);
	const char *key = "log.level";
	rc = slmd_set_runtime(s->d, 1, &key, &level, origin, err);
	if (rc)
		return rc;
	add_str(&o, r, "level", slm_log_level_name(slm_log_get_level()));
	add_str(&o, r, "previous", now);
	return out_done(&o, err);
}

static int cmd_drain(struct ctl_server *s, const struct ctl_request *req,
		     cJSON *r, struct slm_error *err)
{
	int rc = need_daemon(s, "drain", err);
	if (rc)
		return rc;
	slmd_request_drain(s->d);
	SLM_INFO("ctl", "drain requested by uid %u pid %d", (unsigned)req->uid,
		 (int)req->pid);
	struct out o = {0};
	add_bool(&o, r, "draining", true);
	add_bool(&o, r, "drained", slmd_drained(s->d));
	add_bool(&o, r, "exiting", slmd_exiting(s->d));
	return out_done(&o, err);
}

static int cmd_shutdown(struct ctl_server *s, const struct ctl_request *req,
			cJSON *r, struct slm_error *err)
{
	int rc = need_daemon(s, "shutdown", err);
	if (rc)
		return rc;
	SLM_INFO("ctl", "shutdown requested by uid %u pid %d",
		 (unsigned)req->uid, (int)req->pid);
	slmd_request_stop(s->d);
	struct out o = {0};
	add_bool(&o, r, "stopping", true);
	return out_done(&o, err);
}

/* ---- placeholders ------------------------------------------------------ */

static int check_op(const struct ctl_request *req, const char *cmd,
		    const char *const *ops, size_t n, struct slm_error *err)
{
	char list[128] = "";
	for (size_t i = 0; i < n; i++) {
		if (req->op && !strcmp(req->op, ops[i]))
			return 0;
		size_t len = strlen(list);
		snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
			 ops[i]);
	}
	if (!req->op)
		return slm_error_set(err, SLM_EINVAL, "%s: missing op (%s)",
				     cmd, list);
	return slm_error_set(err, SLM_ENOTFOUND, "%s: unknown op '%s' (%s)",
			     cmd, req->op, list);
}

static int cmd_model(struct ctl_server *s, const struct ctl_request *req,
		     cJSON *r, struct slm_error *err)
{
	static const char *const ops[] = {"list", "load", "unload", "swap"};
	int rc = check_op(req, "model", ops, SLM_ARRAY_LEN(ops), err);
	if (rc)
		return rc;
	char what[32];
	snprintf(what, sizeof(what), "model %s", req->op);
	return ctl_not_available(what, err);
}

static int cmd_cache(struct ctl_server *s, const struct ctl_request *req,
		     cJSON *r, struct slm_error *err)
{
	static const char *const ops[] = {"stats", "flush"};
	int rc = check_op(req, "cache", ops, SLM_ARRAY_LEN(ops), err);
	if (rc)
		return rc;
	char what[32];
	snprintf(what, sizeof(what), "cache %s", req->op);
	return ctl_not_available(what, err);
}

/* The plan slmd's config gives on this machine, until the serving core
 * registers "topology" with the plan it runs. */
static int cmd_topology(struct ctl_server *s, const struct ctl_request *req,
			cJSON *r, struct slm_error *err)
{
	struct slm_topo *topo = NULL;
	int rc = slm_topo_open(slm_cfg_str(s->cfg, SLM_CFG_NUMA_TOPOLOGY),
			       &topo, err);
	if (rc)
		return rc;
	struct slm_plan_params params;
	slm_plan_params_from_config(&params, s->cfg);
	struct slm_plan *plan = NULL;
	rc = slm_plan_create(slm_topo_info(topo), &params, &plan, err);
	if (rc) {
		slm_topo_close(topo);
		return rc;
	}
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	if (mem) {
		slm_plan_print(plan, slm_topo_info(topo), mem);
		fclose(mem);
	}
	char *json = slm_plan_json(plan, slm_topo_info(topo));
	slm_plan_destroy(plan);
	slm_topo_close(topo);
	struct out o = {0};
	add_str(&o, r, "source", "config");
	add_str(&o, r, "note",
		"the plan slmd's configuration gives on this machine; the "
		"running plan appears here once the serving core registers "
		"it");
	add_str(&o, r, "text", text);
	cJSON *plan_json = json ? cJSON_Parse(json) : NULL;
	if (!plan_json || !cJSON_AddItemToObject(r, "plan", plan_json)) {
		cJSON_Delete(plan_json);
		o.oom = true;
	}
	free(text);
	free(json);
	return out_done(&o, err);
}

/* ---- help and the table ------------------------------------------------ */

static int cmd_help(struct ctl_server *s, const struct ctl_request *req,
		    cJSON *r, struct slm_error *err);

static const struct builtin {
	const char *name;
	builtin_fn fn;
	const char *help;
	/* A placeholder a component's registration replaces. */
	bool placeholder;
} builtins[] = {
	{"status", cmd_status,
	 "version, uptime, state, model, dataplane, groups, health", false},
	{"stats", cmd_stats, "counters: requests, tokens, prefix cache, drops",
	 false},
	{"perf", cmd_perf,
	 "threads: CPU, kernel and hardware counters; stage latency "
	 "histograms",
	 false},
	{"top", cmd_top, "one sample of what slmctl top shows", false},
	{"config", cmd_config,
	 "config get [KEY...] | set KEY VALUE... | list | dump | reload",
	 false},
	{"log-level", cmd_log_level, "log-level [LEVEL]: show or set log.level",
	 false},
	{"drain", cmd_drain,
	 "stop accepting requests, finish those in flight, stay up", false},
	{"shutdown", cmd_shutdown, "drain, then stop slmd", false},
	{"help", cmd_help, "the commands this slmd answers", false},
	{"topology", cmd_topology, "the machine and the placement plan", true},
	{"model", cmd_model, "model list | load PATH | unload NAME | swap PATH",
	 true},
	{"cache", cmd_cache, "cache stats | flush", true},
};

bool ctl_builtin_reserved(const char *name)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(builtins); i++)
		if (!builtins[i].placeholder && !strcmp(builtins[i].name, name))
			return true;
	return false;
}

static int cmd_help(struct ctl_server *s, const struct ctl_request *req,
		    cJSON *r, struct slm_error *err)
{
	struct out o = {0};
	cJSON *list = add_arr(&o, r, "commands");
	for (size_t i = 0; list && i < SLM_ARRAY_LEN(builtins); i++) {
		if (builtins[i].placeholder &&
		    ctl_registry_has(builtins[i].name))
			continue;
		cJSON *c = push_obj(&o, list);
		if (!c)
			break;
		add_str(&o, c, "name", builtins[i].name);
		add_str(&o, c, "help", builtins[i].help);
		bool missing = builtins[i].placeholder &&
			       strcmp(builtins[i].name, "topology");
		add_str(&o, c, "from", missing ? "placeholder" : "builtin");
		add_bool(&o, c, "available", !missing);
	}
	if (list && !o.oom && ctl_registry_help(list))
		o.oom = true;
	return out_done(&o, err);
}

/* ---- the dispatcher ---------------------------------------------------- */

void ctl_count_error(struct ctl_server *s, int code)
{
	unsigned i = (unsigned)-code;
	if (i < SLM_ARRAY_LEN(s->counters.errors))
		__atomic_store_n(&s->counters.errors[i],
				 s->counters.errors[i] + 1, __ATOMIC_RELAXED);
}

static void count_command(struct ctl_server *s, const char *cmd)
{
	struct ctl_counters *c = &s->counters;
	int i;
	for (i = 0; i < CTL_MAX_CMD_COUNTERS && c->cmd_name[i][0]; i++)
		if (!strcmp(c->cmd_name[i], cmd))
			break;
	if (i == CTL_MAX_CMD_COUNTERS)
		i = CTL_MAX_CMD_COUNTERS - 1; /* "other" */
	if (!c->cmd_name[i][0])
		snprintf(c->cmd_name[i], sizeof(c->cmd_name[i]), "%s",
			 i == CTL_MAX_CMD_COUNTERS - 1 ? "other" : cmd);
	/* Release: a reader that sees the count sees the name. */
	__atomic_store_n(&c->cmd_count[i], c->cmd_count[i] + 1,
			 __ATOMIC_RELEASE);
}

static char *print_line(cJSON *resp, size_t *out_len)
{
	char *text = cJSON_PrintUnformatted(resp);
	if (!text)
		return NULL;
	size_t len = strlen(text);
	char *line = realloc(text, len + 2);
	if (!line) {
		free(text);
		return NULL;
	}
	line[len] = '\n';
	line[len + 1] = '\0';
	*out_len = len + 1;
	return line;
}

/* {"ok":false,"id":..,"error":{"code":"EINVAL","message":".."}} */
static char *error_response(const cJSON *id, int code, const char *msg,
			    size_t *out_len)
{
	cJSON *resp = cJSON_CreateObject();
	cJSON *e = NULL;
	if (!resp || !cJSON_AddFalseToObject(resp, "ok"))
		goto fail;
	if (id) {
		cJSON *copy = cJSON_Duplicate(id, true);
		if (!copy || !cJSON_AddItemToObject(resp, "id", copy)) {
			cJSON_Delete(copy);
			goto fail;
		}
	}
	e = cJSON_AddObjectToObject(resp, "error");
	if (!e || !cJSON_AddStringToObject(e, "code", slm_errname(code)) ||
	    !cJSON_AddStringToObject(e, "message", msg))
		goto fail;
	char *line = print_line(resp, out_len);
	cJSON_Delete(resp);
	return line;
fail:
	cJSON_Delete(resp);
	return NULL;
}

char *ctl_error_line(int code, const char *msg, size_t *out_len)
{
	return error_response(NULL, code, msg, out_len);
}

static const struct builtin *find_builtin(const char *name)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(builtins); i++)
		if (!strcmp(builtins[i].name, name))
			return &builtins[i];
	return NULL;
}

/* Parse and check the envelope; 0 with req filled, or an error. */
static int parse_request(const char *line, size_t len, cJSON **json,
			 struct ctl_request *req, struct slm_error *err)
{
	const char *end = NULL;
	*json = cJSON_ParseWithLengthOpts(line, len, &end, false);
	if (!*json) {
		size_t at = end && end >= line ? (size_t)(end - line) : 0;
		return slm_error_set(err, SLM_EFORMAT,
				     "bad JSON at byte %zu of the request "
				     "line",
				     at);
	}
	while (end && (size_t)(end - line) < len &&
	       (*end == ' ' || *end == '\t' || *end == '\r'))
		end++;
	if (end && (size_t)(end - line) < len)
		return slm_error_set(err, SLM_EFORMAT,
				     "trailing characters after the request "
				     "object at byte %zu (one object per "
				     "line)",
				     (size_t)(end - line));
	if (!cJSON_IsObject(*json))
		return slm_error_set(err, SLM_EFORMAT,
				     "a request is a JSON object, e.g. "
				     "{\"cmd\":\"status\"}");
	req->json = *json;
	const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(*json, "cmd");
	if (!cmd)
		return slm_error_set(err, SLM_EINVAL,
				     "missing field 'cmd' (e.g. "
				     "{\"cmd\":\"status\"})");
	if (!cJSON_IsString(cmd))
		return slm_error_set(err, SLM_EINVAL,
				     "field 'cmd' must be a string");
	req->cmd = cmd->valuestring;
	const cJSON *op = cJSON_GetObjectItemCaseSensitive(*json, "op");
	if (op && !cJSON_IsString(op) && !cJSON_IsNull(op))
		return slm_error_set(err, SLM_EINVAL,
				     "field 'op' must be a string");
	req->op = cJSON_IsString(op) ? op->valuestring : NULL;
	const cJSON *args = cJSON_GetObjectItemCaseSensitive(*json, "args");
	if (args && !cJSON_IsNull(args)) {
		if (!cJSON_IsArray(args))
			return slm_error_set(err, SLM_EINVAL,
					     "field 'args' must be an array of "
					     "strings");
		const cJSON *a;
		int i = 0;
		cJSON_ArrayForEach(a, args)
		{
			if (!cJSON_IsString(a))
				return slm_error_set(err, SLM_EINVAL,
						     "args[%d] must be a "
						     "string",
						     i);
			i++;
		}
		req->args = args;
	}
	return 0;
}

char *ctl_answer(struct ctl_server *s, const char *line, size_t len, pid_t pid,
		 uid_t uid, gid_t gid, size_t *out_len)
{
	struct slm_error err = {0};
	struct ctl_request req = {.pid = pid, .uid = uid, .gid = gid};
	cJSON *json = NULL, *resp = NULL;
	__atomic_store_n(&s->counters.requests, s->counters.requests + 1,
			 __ATOMIC_RELAXED);
	int rc = parse_request(line, len, &json, &req, &err);
	const cJSON *id = json && cJSON_IsObject(json)
				  ? cJSON_GetObjectItemCaseSensitive(json, "id")
				  : NULL;
	cJSON *result = NULL;
	if (rc == 0) {
		count_command(s, req.cmd);
		result = cJSON_CreateObject();
		if (!result) {
			rc = slm_error_set(&err, SLM_ENOMEM, "out of memory");
		} else {
			const struct builtin *b = find_builtin(req.cmd);
			bool found = false;
			if (b && !b->placeholder) {
				rc = b->fn(s, &req, result, &err);
			} else {
				rc = ctl_registry_call(&req, result, &err,
						       &found);
				if (!found && b)
					rc = b->fn(s, &req, result, &err);
				else if (!found)
					rc = slm_error_set(
						&err, SLM_ENOTFOUND,
						"unknown command '%s' (slmctl "
						"help lists the commands)",
						req.cmd);
			}
		}
	}
	char *out = NULL;
	if (rc) {
		if (!err.code)
			slm_error_set(&err, rc, "%s", slm_strerror(rc));
		ctl_count_error(s, err.code);
		out = error_response(id, err.code, err.msg, out_len);
	} else {
		resp = cJSON_CreateObject();
		bool ok = resp && cJSON_AddTrueToObject(resp, "ok");
		if (ok && id) {
			cJSON *copy = cJSON_Duplicate(id, true);
			ok = copy && cJSON_AddItemToObject(resp, "id", copy);
			if (!ok)
				cJSON_Delete(copy);
		}
		if (ok) {
			ok = cJSON_AddItemToObject(resp, "result", result);
			if (ok)
				result = NULL; /* resp owns it now */
		}
		if (ok)
			out = print_line(resp, out_len);
		if (!out)
			out = error_response(id, SLM_ENOMEM, "out of memory",
					     out_len);
	}
	cJSON_Delete(result);
	cJSON_Delete(resp);
	cJSON_Delete(json);
	return out;
}

/* ---- the daemon's own metrics, /metrics and /health -------------------- */

void ctl_collect(void *ctx, struct perf_snapshot *snap)
{
	struct ctl_server *s = ctx;
	perf_emit_gauge(snap, "info", "slmd's version (the value is 1)", 1,
			"version", SLM_VERSION, PERF_END);
	if (s->d) {
		perf_emit_gauge(snap, "uptime_seconds", "time since start",
				(double)slmd_uptime_ns(s->d) * 1e-9, PERF_END);
		enum slmd_state now = slmd_state(s->d);
		for (int st = SLMD_STARTING; st <= SLMD_STOPPING; st++)
			perf_emit_gauge(snap, "state",
					"1 for the state slmd is in",
					st == (int)now ? 1 : 0, "state",
					slmd_state_name(st), PERF_END);
		int h = slmd_healthy(s->d);
		if (h >= 0)
			perf_emit_gauge(snap, "healthy",
					"1 while every component makes "
					"progress (the watchdog's verdict)",
					h, PERF_END);
	}
	const struct ctl_counters *c = &s->counters;
#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
	perf_emit_gauge(snap, "ctl_clients", "clients on the control socket",
			LOAD(s->n_conns), PERF_END);
	perf_emit_counter(snap, "ctl_connections_total",
			  "control socket clients accepted",
			  LOAD(c->connections), PERF_END);
	perf_emit_counter(snap, "ctl_refused_total",
			  "control socket clients refused, by reason",
			  LOAD(c->refused_peer), "reason", "not_allowed",
			  PERF_END);
	perf_emit_counter(snap, "ctl_refused_total",
			  "control socket clients refused, by reason",
			  LOAD(c->refused_full), "reason", "max_clients",
			  PERF_END);
	for (int i = 0; i < CTL_MAX_CMD_COUNTERS; i++) {
		char name[32];
		/* A name is written once, before its count turns non-zero. */
		uint64_t n =
			__atomic_load_n(&c->cmd_count[i], __ATOMIC_ACQUIRE);
		if (!n)
			continue;
		memcpy(name, c->cmd_name[i], sizeof(name));
		name[sizeof(name) - 1] = '\0';
		perf_emit_counter(snap, "ctl_requests_total",
				  "control requests answered, by command", n,
				  "cmd", name, PERF_END);
	}
	for (unsigned i = 1; i < SLM_ARRAY_LEN(c->errors); i++)
		if (LOAD(c->errors[i]))
			perf_emit_counter(snap, "ctl_errors_total",
					  "control requests answered with an "
					  "error, by code",
					  LOAD(c->errors[i]), "code",
					  slm_errname(-(int)i), PERF_END);
#undef LOAD
}

char *ctl_metrics_page(void *ctx, size_t *len)
{
	struct perf_snapshot *snap = perf_snapshot_take();
	if (!snap)
		return NULL;
	char *text = NULL;
	FILE *mem = open_memstream(&text, len);
	int rc = mem ? metrics_render(snap, mem) : SLM_ENOMEM;
	if (mem && fclose(mem))
		rc = SLM_ENOMEM;
	perf_snapshot_free(snap);
	if (rc) {
		free(text);
		return NULL;
	}
	return text;
}

int ctl_health(void *ctx, char *buf, size_t size)
{
	struct ctl_server *s = ctx;
	if (!s->d) {
		snprintf(buf, size, "{\"status\":\"unavailable\"}\n");
		return 503;
	}
	enum slmd_state st = slmd_state(s->d);
	int h = slmd_healthy(s->d);
	bool ok = st == SLMD_SERVING && h != 0;
	snprintf(buf, size,
		 "{\"status\":\"%s\",\"state\":\"%s\",\"healthy\":%s}\n",
		 ok ? "ok" : "unavailable", slmd_state_name(st),
		 h < 0 ? "null"
		 : h   ? "true"
		       : "false");
	return ok ? 200 : 503;
}
