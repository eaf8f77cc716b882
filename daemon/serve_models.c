/*
 * serve_models.c: the models' life in the serving core (daemon/serve.h,
 * "models"): load a model beside the serving one, switch new requests
 * to it, drain and free the one it replaced, unload, list.
 *
 * The life thread does what takes time: it reads the weights of the
 * models queued for loading, one at a time in the order asked, starts
 * their worker groups, switches to a model loaded for a swap, and frees
 * a draining model once no request runs on it (polling every
 * LIFE_POLL_NS while one drains).  The calls of serve.h open and check a
 * file on the caller's thread, so a bad file is refused at once and
 * changes nothing.
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/serve_int.h"

#define LIFE_POLL_NS (20ull * 1000 * 1000)
#define LIFE_IDLE_NS (1000ull * 1000 * 1000)

const char *slm_model_state_name(enum slm_model_state state)
{
	static const char *const names[] = {"loading", "ready", "serving",
					    "draining", "failed"};
	return (unsigned)state < SLM_ARRAY_LEN(names) ? names[state] : "?";
}

static double mib(uint64_t bytes)
{
	return (double)bytes / 1048576.0;
}

/* ---- the life thread ------------------------------------------------------ */

/* Serve m now (models_lock held): the serving one starts draining. */
static void switch_to(struct slm_serve *s, struct serve_model *m)
{
	struct serve_model *old = s->serving;
	uint64_t now = slm_now_ns();
	m->state = SLM_MODEL_SERVING;
	m->swap_when_ready = false;
	m->t_state_ns = now;
	__atomic_store_n(&s->serving, m, __ATOMIC_SEQ_CST);
	if (old) {
		old->state = SLM_MODEL_DRAINING;
		old->t_state_ns = now;
		SLM_INFO("serve",
			 "swap: new requests go to %s; %s drains (%u "
			 "requests in flight) and is freed after them",
			 m->name, old->name, serve_model_inflight(old));
	}
	pthread_cond_broadcast(&s->models_cond);
}

static void on_start_progress(void *ctx, const char *what, int pct)
{
	struct serve_model *m = ctx;
	(void)what;
	if (pct < 100)
		return;
	pthread_mutex_lock(&m->front->models_lock);
	snprintf(m->phase, sizeof(m->phase), "workers");
	pthread_mutex_unlock(&m->front->models_lock);
}

/* Load m (models_lock held; released while loading). */
static void load_one(struct slm_serve *s, struct serve_model *m)
{
	m->load_started = true;
	snprintf(m->phase, sizeof(m->phase), "weights");
	m->t_state_ns = slm_now_ns();
	pthread_mutex_unlock(&s->models_lock);
	SLM_INFO("serve", "loading %s from %s: %.1f MiB of weights, %s",
		 m->name, m->model_path, mib(m->weight_bytes),
		 m->swap_when_ready ? "to serve it once loaded"
				    : "beside the serving model");
	struct slm_error err = {0};
	int rc = serve_model_start(m, on_start_progress, m, &err);
	if (rc) {
		SLM_ERROR("serve", "loading %s failed: %s", m->name, err.msg);
		/* still LOADING, so nobody else frees its parts; but
		 * memory_check reads its plan under the lock */
		pthread_mutex_lock(&s->models_lock);
		struct slm_plan *plan = m->plan;
		m->plan = NULL;
		pthread_mutex_unlock(&s->models_lock);
		serve_model_release(m);
		slm_plan_destroy(plan);
	}
	pthread_mutex_lock(&s->models_lock);
	m->t_state_ns = slm_now_ns();
	m->phase[0] = '\0';
	if (rc) {
		m->state = SLM_MODEL_FAILED;
		m->swap_when_ready = false;
		snprintf(m->error, sizeof(m->error), "%s", err.msg);
		return;
	}
	m->state = SLM_MODEL_READY;
	if (m->swap_when_ready)
		switch_to(s, m);
}

/* True when nothing runs on draining m and nobody holds it: users, then
 * in flight, then users again (a cancel counts itself in while its
 * request is still in flight; see serve_int.h). */
static bool drained(struct serve_model *m)
{
	if (__atomic_load_n(&m->users, __ATOMIC_SEQ_CST))
		return false;
	if (serve_model_inflight(m))
		return false;
	return !__atomic_load_n(&m->users, __ATOMIC_SEQ_CST);
}

static void unlink_model(struct slm_serve *s, struct serve_model *m)
{
	struct serve_model **p = &s->models;
	while (*p && *p != m)
		p = &(*p)->next;
	if (*p)
		*p = m->next;
	m->next = s->retired;
	s->retired = m;
}

/* Free draining m (models_lock held; released while freeing). */
static void retire(struct slm_serve *s, struct serve_model *m)
{
	pthread_mutex_unlock(&s->models_lock);
	serve_model_stop_groups(m);
	pthread_mutex_lock(&s->models_lock);
	serve_fold_counters(s, m);
	unlink_model(s, m);
	pthread_mutex_unlock(&s->models_lock);
	uint64_t bytes = m->weight_bytes * (uint64_t)m->n_copies;
	uint64_t kv = m->kv_bytes;
	int groups = m->n_groups;
	serve_model_release(m);
	SLM_INFO("serve",
		 "%s freed: %.1f MiB of weights, %d worker group%s and "
		 "%.1f MiB of KV pools",
		 m->name, mib(bytes), groups, groups == 1 ? "" : "s", mib(kv));
	pthread_mutex_lock(&s->models_lock);
}

static void *life_main(void *arg)
{
	struct slm_serve *s = arg;
	pthread_mutex_lock(&s->models_lock);
	while (!s->life_stop) {
		struct serve_model *m = s->models;
		while (m &&
		       !(m->state == SLM_MODEL_LOADING && !m->load_started))
			m = m->next;
		if (m) {
			load_one(s, m);
			continue;
		}
		bool draining = false;
		for (m = s->models; m; m = m->next)
			if (m->state == SLM_MODEL_DRAINING) {
				draining = true;
				if (drained(m))
					break;
			}
		if (m) {
			retire(s, m);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull +
			     (uint64_t)ts.tv_nsec +
			     (draining ? LIFE_POLL_NS : LIFE_IDLE_NS);
		ts.tv_sec = (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		pthread_cond_timedwait(&s->models_cond, &s->models_lock, &ts);
	}
	pthread_mutex_unlock(&s->models_lock);
	return NULL;
}

int serve_life_start(struct slm_serve *s, struct slm_error *err)
{
	int e = pthread_create(&s->life, NULL, life_main, s);
	if (e)
		return slm_error_errno(err, SLM_ESYS, e,
				       "cannot start the model loader thread");
	pthread_setname_np(s->life, "slm-models");
	s->life_running = true;
	return 0;
}

void serve_life_stop(struct slm_serve *s)
{
	if (!s->life_running)
		return;
	pthread_mutex_lock(&s->models_lock);
	s->life_stop = true;
	pthread_cond_broadcast(&s->models_cond);
	pthread_mutex_unlock(&s->models_lock);
	/* a load in progress finishes first */
	pthread_join(s->life, NULL);
	s->life_running = false;
}

/* ---- look-ups (models_lock held) ---------------------------------------- */

static bool same_file(const char *a, const char *b)
{
	if (!strcmp(a, b))
		return true;
	char ra[PATH_MAX], rb[PATH_MAX];
	return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

/* The model named `target`, else the one loaded from that file. */
static struct serve_model *find(struct slm_serve *s, const char *target)
{
	for (struct serve_model *m = s->models; m; m = m->next)
		if (!strcmp(m->name, target))
			return m;
	for (struct serve_model *m = s->models; m; m = m->next)
		if (m->model_path && same_file(m->model_path, target))
			return m;
	return NULL;
}

/* "a (serving), b (ready)" into buf. */
static void names(struct slm_serve *s, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (struct serve_model *m = s->models; m && len < size; m = m->next)
		len += (size_t)snprintf(
			buf + len, size - len, "%s%s (%s)", len ? ", " : "",
			m->name,
			slm_model_state_name((enum slm_model_state)m->state));
}

static void fill_info(const struct serve_model *m,
		      struct slm_serve_model_info *o, uint64_t now)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->name, sizeof(o->name), "%s", m->name);
	snprintf(o->path, sizeof(o->path), "%s",
		 m->model_path ? m->model_path : "");
	snprintf(o->arch, sizeof(o->arch), "%s", m->arch ? m->arch : "");
	o->state = (enum slm_model_state)m->state;
	o->synthetic = m->synthetic;
	o->swap_pending = m->swap_when_ready;
	snprintf(o->phase, sizeof(o->phase), "%s",
		 m->state == SLM_MODEL_LOADING && !m->load_started ? "queued"
								   : m->phase);
	o->load_total = m->load_total;
	o->load_done =
		m->state == SLM_MODEL_LOADING
			? __atomic_load_n(&m->load_done, __ATOMIC_RELAXED)
		: m->state == SLM_MODEL_FAILED ? m->load_done
					       : m->load_total;
	o->percent = o->load_total ? (int)(100 * o->load_done / o->load_total)
				   : (m->state == SLM_MODEL_LOADING ? 0 : 100);
	o->weight_bytes = m->weight_bytes;
	o->n_copies = m->plan ? (m->plan->n_copies > 0 ? m->plan->n_copies : 1)
			      : m->n_copies;
	o->kv_bytes = m->kv_bytes;
	o->n_groups = m->plan ? m->plan->n_groups : m->n_groups;
	if ((m->state == SLM_MODEL_READY || m->state == SLM_MODEL_SERVING ||
	     m->state == SLM_MODEL_DRAINING) &&
	    m->groups)
		o->running = serve_model_inflight(m);
	o->state_s =
		now > m->t_state_ns ? (double)(now - m->t_state_ns) / 1e9 : 0;
	snprintf(o->error, sizeof(o->error), "%s", m->error);
}

int slm_serve_models(struct slm_serve *s, struct slm_serve_model_info **out,
		     int *n)
{
	*out = NULL;
	*n = 0;
	if (!serve_front_enter(s))
		return SLM_ESTATE;
	pthread_mutex_lock(&s->models_lock);
	int count = 0;
	for (struct serve_model *m = s->models; m; m = m->next)
		count++;
	struct slm_serve_model_info *v =
		calloc((size_t)(count ? count : 1), sizeof(*v));
	int rc = v ? 0 : SLM_ENOMEM;
	uint64_t now = slm_now_ns();
	int i = 0;
	for (struct serve_model *m = s->models; v && m; m = m->next)
		fill_info(m, &v[i++], now);
	pthread_mutex_unlock(&s->models_lock);
	serve_front_leave(s);
	*out = v;
	*n = v ? count : 0;
	return rc;
}

/* ---- memory ------------------------------------------------------------------ */

/* MemAvailable of /proc/meminfo, bytes; 0 when unknown. */
static uint64_t mem_available(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	if (!f)
		return 0;
	char line[256];
	unsigned long long kib = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
			break;
	fclose(f);
	return (uint64_t)kib * 1024;
}

/*
 * Can the machine hold m beside the models held (models_lock held)?  Per
 * NUMA node, as the placement plan counts it: the weights and KV pools
 * of every model held plus m's, and numa.mem_reserve, within the node's
 * memory.  On this machine also: m's bytes within what the kernel says
 * is available now.
 */
static int memory_check(struct slm_serve *s, const struct serve_model *m,
			struct slm_error *err)
{
	const struct slm_plan *np = m->plan;
	char held[512];
	names(s, held, sizeof(held));
	uint64_t need_total = 0;
	for (int i = 0; i < np->n_nodes; i++) {
		const struct slm_plan_node *nn = &np->nodes[i];
		uint64_t need = nn->weight_bytes + nn->kv_bytes;
		need_total += need;
		if (!need)
			continue;
		uint64_t used = 0;
		for (const struct serve_model *o = s->models; o; o = o->next) {
			if (!o->plan || o->state == SLM_MODEL_FAILED)
				continue;
			for (int k = 0; k < o->plan->n_nodes; k++)
				if (o->plan->nodes[k].os_index == nn->os_index)
					used += o->plan->nodes[k].weight_bytes +
						o->plan->nodes[k].kv_bytes;
		}
		if (used + need + nn->reserve_bytes > nn->mem_bytes)
			return slm_error_set(
				err, SLM_ENOMEM,
				"not enough memory to hold %s beside the "
				"models loaded: it needs %.1f MiB on NUMA "
				"node %d (weights and KV pools), the models "
				"held [%s] use %.1f MiB there, and the node "
				"has %.1f MiB of which numa.mem_reserve keeps "
				"%.1f MiB free; unload a model that does not "
				"serve, or make cache.kv_bytes smaller",
				m->name, mib(need), nn->os_index, held,
				mib(used), mib(nn->mem_bytes),
				mib(nn->reserve_bytes));
	}
	if (!np->this_system)
		return 0;
	uint64_t avail = mem_available();
	uint64_t reserve = np->n_nodes ? np->nodes[0].reserve_bytes : 0;
	if (avail && need_total + reserve > avail)
		return slm_error_set(
			err, SLM_ENOMEM,
			"not enough memory to hold %s beside the models "
			"loaded [%s]: it needs %.1f MiB (weights and KV "
			"pools) and this machine has %.1f MiB available now "
			"(MemAvailable), of which numa.mem_reserve keeps %.1f "
			"MiB free",
			m->name, held, mib(need_total), mib(avail),
			mib(reserve));
	return 0;
}

/* ---- load, swap, unload ------------------------------------------------------- */

/* m->name unique among the models held (models_lock held). */
static void unique_name(struct slm_serve *s, struct serve_model *m)
{
	char base[100];
	snprintf(base, sizeof(base), "%s", m->name);
	for (unsigned k = 2; find(s, m->name) && k < 1000; k++)
		snprintf(m->name, sizeof(m->name), "%s-%u", base, k);
}

/* Refuse a file held already (models_lock held). */
static int check_not_held(struct slm_serve *s, const char *path,
			  struct slm_error *err)
{
	for (struct serve_model *m = s->models; m; m = m->next)
		if (m->state != SLM_MODEL_FAILED && m->model_path &&
		    same_file(m->model_path, path))
			return slm_error_set(
				err, SLM_EBUSY,
				"%s is already loaded as %s (%s)", path,
				m->name,
				slm_model_state_name(
					(enum slm_model_state)m->state));
	return 0;
}

/* Load (models_lock not held; front entered). */
static int load(struct slm_serve *s, const char *path, bool swap,
		struct slm_serve_model_info *out, struct slm_error *err)
{
	if (!path || !*path)
		return slm_error_set(err, SLM_EINVAL,
				     "a model file (GGUF) is needed");
	pthread_mutex_lock(&s->models_lock);
	int rc = check_not_held(s, path, err);
	pthread_mutex_unlock(&s->models_lock);
	if (rc)
		return rc;
	struct serve_model *m = calloc(1, sizeof(*m));
	if (!m)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	m->front = s;
	m->cfg = s->cfg;
	m->topo = s->topo;
	m->arenas = s->arenas;
	m->state = SLM_MODEL_LOADING;
	pthread_mutex_lock(&s->models_lock);
	m->ordinal = ++s->n_ordinals;
	pthread_mutex_unlock(&s->models_lock);
	/* open the file, its vocabulary, plan it: a bad file stops here */
	rc = serve_model_prepare(m, path, err);
	if (rc) {
		serve_model_free(m);
		return rc;
	}
	pthread_mutex_lock(&s->models_lock);
	rc = check_not_held(s, path, err);
	if (!rc)
		rc = memory_check(s, m, err);
	if (rc) {
		pthread_mutex_unlock(&s->models_lock);
		serve_model_free(m);
		return rc;
	}
	unique_name(s, m);
	m->swap_when_ready = swap;
	m->t_state_ns = slm_now_ns();
	SLM_INFO("serve", "%s (%s) queued for loading%s", m->name, path,
		 swap ? "; it serves once loaded" : "");
	struct serve_model **p = &s->models;
	while (*p)
		p = &(*p)->next;
	*p = m;
	pthread_cond_broadcast(&s->models_cond);
	if (out)
		fill_info(m, out, slm_now_ns());
	pthread_mutex_unlock(&s->models_lock);
	return 0;
}

int slm_serve_model_load(struct slm_serve *s, const char *path, bool swap,
			 struct slm_serve_model_info *out,
			 struct slm_error *err)
{
	if (!serve_front_enter(s))
		return slm_error_set(err, SLM_ESTATE, "not serving (stopping)");
	int rc = load(s, path, swap, out, err);
	serve_front_leave(s);
	return rc;
}

int slm_serve_model_swap(struct slm_serve *s, const char *target,
			 struct slm_serve_model_info *out, bool *switched,
			 struct slm_error *err)
{
	if (switched)
		*switched = false;
	if (!target || !*target)
		return slm_error_set(err, SLM_EINVAL,
				     "a model name or file is needed");
	if (!serve_front_enter(s))
		return slm_error_set(err, SLM_ESTATE, "not serving (stopping)");
	pthread_mutex_lock(&s->models_lock);
	struct serve_model *m = find(s, target);
	int rc = 0;
	bool held = m != NULL;
	if (m) {
		switch ((enum slm_model_state)m->state) {
		case SLM_MODEL_SERVING:
			rc = slm_error_set(err, SLM_EINVAL,
					   "%s is already serving", m->name);
			break;
		case SLM_MODEL_DRAINING:
			rc = slm_error_set(
				err, SLM_EBUSY,
				"%s is draining (%u requests in flight) and "
				"is freed when they finish; swap to its file "
				"after that to load it again",
				m->name, serve_model_inflight(m));
			break;
		case SLM_MODEL_FAILED:
			rc = slm_error_set(err, SLM_ESTATE,
					   "%s failed to load (%s); unload it "
					   "and load its file again",
					   m->name, m->error);
			break;
		case SLM_MODEL_LOADING:
			m->swap_when_ready = true;
			SLM_INFO("serve", "%s serves once loaded", m->name);
			break;
		case SLM_MODEL_READY:
			switch_to(s, m);
			if (switched)
				*switched = true;
			break;
		}
		if (!rc && out)
			fill_info(m, out, slm_now_ns());
	}
	pthread_mutex_unlock(&s->models_lock);
	if (!held)
		rc = load(s, target, true, out, err);
	serve_front_leave(s);
	return rc;
}

int slm_serve_model_unload(struct slm_serve *s, const char *target,
			   struct slm_error *err)
{
	if (!target || !*target)
		return slm_error_set(err, SLM_EINVAL, "a model name is needed");
	if (!serve_front_enter(s))
		return slm_error_set(err, SLM_ESTATE, "not serving (stopping)");
	pthread_mutex_lock(&s->models_lock);
	struct serve_model *m = find(s, target);
	int rc = 0;
	if (!m) {
		char held[512];
		names(s, held, sizeof(held));
		rc = slm_error_set(err, SLM_ENOTFOUND,
				   "no model '%s' (models: %s)", target, held);
	} else if (m->state == SLM_MODEL_SERVING) {
		rc = slm_error_set(err, SLM_EBUSY,
				   "%s is serving: new requests go to it. "
				   "Swap to another model first (model swap "
				   "PATH|NAME); %s is then freed once its "
				   "requests finish",
				   m->name, m->name);
	} else if (m->state == SLM_MODEL_DRAINING) {
		rc = slm_error_set(err, SLM_EBUSY,
				   "%s is draining: it is freed by itself once "
				   "its %u requests in flight finish",
				   m->name, serve_model_inflight(m));
	} else if (m->state == SLM_MODEL_LOADING && m->load_started) {
		uint64_t total = m->load_total ? m->load_total : 1;
		rc = slm_error_set(
			err, SLM_EBUSY,
			"%s is loading (%d%%): unload it once it is ready",
			m->name,
			(int)(100 *
			      __atomic_load_n(&m->load_done, __ATOMIC_RELAXED) /
			      total));
	} else {
		/* ready (no request ever ran on it), failed or queued */
		unlink_model(s, m);
	}
	pthread_mutex_unlock(&s->models_lock);
	if (!rc) {
		serve_model_release(m);
		SLM_INFO("serve", "%s unloaded", m->name);
	}
	serve_front_leave(s);
	return rc;
}

/* ---- the control socket's `model` command ------------------------------------ */

static cJSON *info_json(const struct slm_serve_model_info *i)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "name", i->name);
	cJSON_AddStringToObject(o, "path", i->path);
	cJSON_AddStringToObject(o, "arch", i->arch);
	cJSON_AddStringToObject(o, "state", slm_model_state_name(i->state));
	cJSON_AddBoolToObject(o, "synthetic", i->synthetic);
	cJSON_AddBoolToObject(o, "swap_pending", i->swap_pending);
	if (i->phase[0])
		cJSON_AddStringToObject(o, "phase", i->phase);
	else
		cJSON_AddNullToObject(o, "phase");
	cJSON_AddNumberToObject(o, "loaded_bytes", (double)i->load_done);
	cJSON_AddNumberToObject(o, "total_bytes", (double)i->load_total);
	cJSON_AddNumberToObject(o, "percent", i->percent);
	cJSON_AddNumberToObject(o, "weight_bytes", (double)i->weight_bytes);
	cJSON_AddNumberToObject(o, "copies", i->n_copies);
	cJSON_AddNumberToObject(o, "kv_bytes", (double)i->kv_bytes);
	cJSON_AddNumberToObject(o, "groups", i->n_groups);
	cJSON_AddNumberToObject(o, "running", i->running);
	cJSON_AddNumberToObject(o, "state_s", i->state_s);
	if (i->error[0])
		cJSON_AddStringToObject(o, "error", i->error);
	else
		cJSON_AddNullToObject(o, "error");
	return o;
}

static int add_info(cJSON *result, const char *key,
		    const struct slm_serve_model_info *i, struct slm_error *err)
{
	cJSON *o = info_json(i);
	if (!o || !cJSON_AddItemToObject(result, key, o)) {
		cJSON_Delete(o);
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	}
	return 0;
}

int slm_serve_model_ctl(struct slm_serve *s, const char *op, const char *arg,
			cJSON *result, struct slm_error *err)
{
	int rc;
	if (!op || !strcmp(op, "list")) {
		struct slm_serve_model_info *v = NULL;
		int n = 0;
		rc = slm_serve_models(s, &v, &n);
		if (rc)
			return slm_error_set(err, rc, "model list: %s",
					     rc == SLM_ESTATE
						     ? "not serving"
						     : "out of memory");
		cJSON *arr = cJSON_AddArrayToObject(result, "models");
		for (int i = 0; arr && i < n; i++) {
			cJSON *o = info_json(&v[i]);
			if (!o || !cJSON_AddItemToArray(arr, o)) {
				cJSON_Delete(o);
				arr = NULL;
			}
		}
		free(v);
		return arr ? 0
			   : slm_error_set(err, SLM_ENOMEM, "out of memory");
	}
	struct slm_serve_model_info *info = calloc(1, sizeof(*info));
	if (!info)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	if (!strcmp(op, "load")) {
		rc = slm_serve_model_load(s, arg, false, info, err);
		if (!rc)
			rc = add_info(result, "model", info, err);
	} else if (!strcmp(op, "swap")) {
		bool switched = false;
		rc = slm_serve_model_swap(s, arg, info, &switched, err);
		if (!rc)
			rc = add_info(result, "model", info, err);
		if (!rc)
			cJSON_AddBoolToObject(result, "switched", switched);
	} else if (!strcmp(op, "unload")) {
		rc = slm_serve_model_unload(s, arg, err);
		if (!rc && !cJSON_AddStringToObject(result, "unloaded", arg))
			rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
	} else {
		rc = slm_error_set(err, SLM_ENOTFOUND,
				   "model: unknown op '%s' (list, load, "
				   "unload, swap)",
				   op);
		free(info);
		return rc;
	}
	free(info);
	if (rc && err->msg[0] && strncmp(err->msg, "model ", 6))
		slm_error_prefix(err, "model %s: ", op);
	return rc;
}
