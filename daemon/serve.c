/*
 * serve.c: the serving core's API (daemon/serve.h): the model, the worker
 * groups of the placement plan, submit (validate, tokenize, dispatch to a
 * group), cancel, and the core's life.  A group's scheduler is sched.c.
 */
#include "daemon/serve.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/serve_int.h"
#include "engine/chat.h"
#include "engine/gguf.h"
#include "engine/modelgen.h"
#include "engine/quant.h"
#include "engine/quantize.h"

void slm_gen_params_default(struct slm_gen_params *p)
{
	struct slm_sampler_params sp;
	slm_sampler_params_default(&sp);
	memset(p, 0, sizeof(*p));
	p->temperature = sp.temp;
	p->top_k = sp.top_k;
	p->top_p = sp.top_p;
	p->min_p = sp.min_p;
	p->repeat_penalty = sp.repeat_penalty;
	p->repeat_last_n = sp.penalty_last_n;
	p->frequency_penalty = sp.frequency_penalty;
	p->presence_penalty = sp.presence_penalty;
	p->seed = sp.seed;
	p->max_tokens = 0;
}

const char *slm_finish_name(enum slm_finish finish)
{
	static const char *const names[] = {"stop", "length", "canceled",
					    "deadline", "error"};
	return (unsigned)finish < SLM_ARRAY_LEN(names) ? names[finish] : "?";
}

/* ---- the synthetic model ------------------------------------------------ */

/* <dir of this executable>/<rel>, or "" */
static void exe_relative(const char *rel, char *out, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	out[0] = '\0';
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(out, size, "%s/%s", exe, rel);
}

/* The SPM vocabulary file, where `slm mkmodel` looks for it; false when
 * none is there. */
static bool find_spm_vocab(char *path, size_t size)
{
	char dirs[3][PATH_MAX];
	const char *env = getenv("SLM_VOCAB_DIR");
	snprintf(dirs[0], sizeof(dirs[0]), "%s", env ? env : "");
	exe_relative("../share/slmd/vocab", dirs[1], sizeof(dirs[1]));
	exe_relative("../testdata/vocab", dirs[2], sizeof(dirs[2]));
	for (int i = 0; i < 3; i++) {
		if (!dirs[i][0])
			continue;
		snprintf(path, size, "%s/vocab-spm.gguf", dirs[i]);
		if (access(path, R_OK) == 0)
			return true;
	}
	return false;
}

/*
 * Write the synthetic model: llama, 256 wide, 4 layers, 8 query heads on
 * 4 KV heads of 32, n_ff 768 (the golden llama-s shape), tied output,
 * Q8_0; the SPM vocabulary of 32000 tokens when found (random words),
 * else the built-in byte vocabulary of 1024 (random bytes).
 */
static int write_synthetic(struct serve_model *s, struct slm_error *err)
{
	char dir[] = "/tmp/slmd-model-XXXXXX";
	const char *tmp = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof(tmpl), "%s/slmd-model-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpl)) {
		snprintf(tmpl, sizeof(tmpl), "%s", dir);
		if (!mkdtemp(tmpl))
			return slm_error_set(err, SLM_ESYS,
					     "synthetic model: cannot make a "
					     "temporary folder: %s",
					     strerror(errno));
	}
	struct slm_model_shape sh;
	memset(&sh, 0, sizeof(sh));
	snprintf(sh.name, sizeof(sh.name), "synthetic-random");
	snprintf(sh.arch, sizeof(sh.arch), "llama");
	sh.n_embd = 256;
	sh.n_layer = 4;
	sh.n_head = 8;
	sh.n_head_kv = 4;
	sh.n_ff = 768;
	sh.n_ctx = 2048;
	sh.rope_base = 10000.0f;
	sh.rms_eps = 1e-5f;
	sh.tied = true;
	char vpath[PATH_MAX];
	struct gguf_file *vocab = NULL;
	if (find_spm_vocab(vpath, sizeof(vpath)) &&
	    gguf_open(vpath, &vocab, NULL) == 0) {
		struct gguf_array toks;
		if (gguf_get_arr(vocab, "tokenizer.ggml.tokens", &toks, NULL) ||
		    !toks.n) {
			gguf_close(vocab);
			vocab = NULL;
		} else {
			sh.n_vocab = (uint32_t)toks.n;
		}
	}
	if (!vocab)
		sh.n_vocab = 1024;
	size_t len = strlen(tmpl) + 32;
	s->tmp_path = malloc(len);
	if (!s->tmp_path) {
		gguf_close(vocab);
		rmdir(tmpl);
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	}
	snprintf(s->tmp_path, len, "%s/synthetic.gguf", tmpl);
	struct slm_model_random rnd;
	slm_model_random_init(&rnd, &sh, 1234, 1);
	struct slm_model_params mp = {.ftype = SLM_FTYPE_MOSTLY_Q8_0,
				      .vocab = vocab,
				      .fill = slm_model_fill_random,
				      .fill_ctx = &rnd,
				      .n_threads = 1};
	int rc = slm_model_write(s->tmp_path, &sh, &mp, err);
	gguf_close(vocab);
	if (rc) {
		slm_error_prefix(err, "synthetic model: ");
		rmdir(tmpl);
		return rc;
	}
	SLM_WARN("serve",
		 "model.path is empty: serving a synthetic model with RANDOM "
		 "weights (llama, 256 wide, 4 layers, %u tokens, %s "
		 "vocabulary): its text is random words, not an answer.  Set "
		 "model.path to a GGUF file for real output.",
		 sh.n_vocab, vocab ? "SPM" : "built-in byte");
	s->synthetic = true;
	return 0;
}

static void remove_synthetic(struct serve_model *s)
{
	if (!s->tmp_path)
		return;
	unlink(s->tmp_path);
	char *slash = strrchr(s->tmp_path, '/');
	if (slash) {
		*slash = '\0';
		rmdir(s->tmp_path);
	}
	free(s->tmp_path);
	s->tmp_path = NULL;
}

/* ---- creation ----------------------------------------------------------- */

struct load_progress {
	struct serve_model *m;
	slm_serve_progress_fn fn;
	void *ctx;
	char what[192];
	int copy, n_copies;
};

static void on_load_progress(const struct slm_load_progress *p, void *arg)
{
	struct load_progress *lp = arg;
	if (!p->total)
		return;
	/* for `model list`: bytes over every copy */
	__atomic_store_n(&lp->m->load_total, p->total * (uint64_t)lp->n_copies,
			 __ATOMIC_RELAXED);
	__atomic_store_n(&lp->m->load_done,
			 p->total * (uint64_t)lp->copy + p->done,
			 __ATOMIC_RELAXED);
	if (!lp->fn)
		return;
	int pct = (int)((100 * (uint64_t)lp->copy + 100 * p->done / p->total) /
			(uint64_t)lp->n_copies);
	lp->fn(lp->ctx, lp->what, pct);
}

static int load_copies(struct serve_model *s, slm_serve_progress_fn progress,
		       void *progress_ctx, struct slm_error *err)
{
	const struct slm_plan *plan = s->plan;
	s->n_copies = plan->n_copies > 0 ? plan->n_copies : 1;
	s->copies = calloc((size_t)s->n_copies, sizeof(*s->copies));
	if (!s->copies)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	struct load_progress lp = {.m = s,
				   .fn = progress,
				   .ctx = progress_ctx,
				   .n_copies = s->n_copies};
	snprintf(lp.what, sizeof(lp.what), "weights of %s", s->name);
	for (int i = 0; i < s->n_copies; i++) {
		struct slm_load_params p;
		slm_load_params_from_config(&p, s->cfg);
		p.node = SLM_NUMA_LOCAL;
		if (plan->this_system && i < plan->n_copies &&
		    plan->copies[i].n_nodes == 1)
			p.node = plan->copies[i].nodes[0];
		else if (plan->this_system && i < plan->n_copies)
			p.node = SLM_NUMA_ANY; /* spread by the kernel */
		p.progress = on_load_progress;
		p.progress_arg = &lp;
		lp.copy = i;
		int rc = slm_weights_load(s->model, &p, &s->copies[i], err);
		if (rc)
			return rc;
		SLM_INFO("serve",
			 "weights copy %d of %d: %.1f MiB on node %d by %s in "
			 "%.0f ms%s%s",
			 i + 1, s->n_copies,
			 (double)s->copies[i]->bytes / 1048576.0, p.node,
			 slm_load_method_name(s->copies[i]->method),
			 (double)s->copies[i]->elapsed_ns / 1e6,
			 s->copies[i]->fallback[0] ? "; " : "",
			 s->copies[i]->fallback);
	}
	__atomic_store_n(&s->load_done,
			 __atomic_load_n(&s->load_total, __ATOMIC_RELAXED),
			 __ATOMIC_RELAXED);
	if (progress)
		progress(progress_ctx, lp.what, 100);
	return 0;
}

static void group_join(struct serve_group *g)
{
	if (g->leader)
		slm_thread_join(g->leader);
	else if (g->raw)
		pthread_join(g->raw_thread, NULL);
	g->leader = NULL;
	g->raw = false;
}

/* Start group g's leader and wait until it has set itself up. */
static int group_start(struct serve_model *s, struct serve_group *g,
		       struct slm_error *err)
{
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, &ca);
	pthread_cond_init(&g->flush_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&g->stats_lock, NULL);
	g->inited = true;
	int rc;
	if (g->planned) {
		rc = slm_thread_start_planned(s->topo, g->planned,
					      slm_sched_main, g, &g->leader,
					      err);
	} else {
		/* not this machine's topology: an unpinned thread */
		int e = pthread_create(&g->raw_thread, NULL, slm_sched_main, g);
		rc = e ? slm_error_errno(err, SLM_ESYS, e,
					 "cannot start a worker thread")
		       : 0;
		g->raw = !e;
	}
	if (rc)
		return rc;
	pthread_mutex_lock(&g->lock);
	while (!g->started)
		pthread_cond_wait(&g->cond, &g->lock);
	rc = g->start_rc;
	pthread_mutex_unlock(&g->lock);
	if (rc) {
		*err = g->start_err;
		group_join(g);
	}
	return rc;
}

static int settings(struct serve_model *s, struct slm_error *err)
{
	const struct slm_config *cfg = s->cfg;
	const struct slm_hparams *hp = &s->model->hp;
	s->n_vocab = hp->n_vocab;
	s->n_ctx = (uint32_t)slm_cfg_int(cfg, SLM_CFG_ENGINE_CTX);
	if (!s->n_ctx)
		s->n_ctx = hp->n_ctx_train ? SLM_MIN(hp->n_ctx_train, 8192u)
					   : 4096;
	s->kv_type = (enum slm_kv_type)slm_cfg_enum(cfg, SLM_CFG_CACHE_KV_TYPE);
	s->block_tokens =
		(uint32_t)slm_cfg_int(cfg, SLM_CFG_CACHE_BLOCK_TOKENS);
	if (s->block_tokens % SLM_KV_BLOCK_ALIGN)
		return slm_error_set(err, SLM_ECONFIG,
				     "cache.block_tokens = %u is not a "
				     "multiple of %d",
				     s->block_tokens, SLM_KV_BLOCK_ALIGN);
	struct slm_kv_params kp = {.n_layer = hp->n_layer,
				   .n_head_kv = hp->n_head_kv,
				   .head_dim = hp->head_dim,
				   .block_tokens = s->block_tokens,
				   .n_blocks = 1,
				   .type = s->kv_type};
	if (!slm_kv_row_bytes(s->kv_type, hp->head_dim))
		return slm_error_set(err, SLM_ECONFIG,
				     "cache.kv_type = %s needs head_dim a "
				     "multiple of %d; %s has %u",
				     slm_kv_type_name(s->kv_type),
				     SLM_KV_Q8_0_BLOCK, s->name, hp->head_dim);
	int64_t kv_tokens = slm_cfg_int(cfg, SLM_CFG_CACHE_KV_TOKENS);
	if (kv_tokens > 0)
		s->kv_blocks = (uint32_t)SLM_MIN(
			(kv_tokens + s->block_tokens - 1) / s->block_tokens,
			(int64_t)SLM_KV_BLOCK_NONE - 1);
	else
		s->kv_blocks = slm_kv_blocks_in_bytes(
			&kp, slm_cfg_size(cfg, SLM_CFG_CACHE_KV_BYTES));
	if (s->kv_blocks < 2)
		return slm_error_set(err, SLM_ECONFIG,
				     "the KV pool (cache.kv_bytes / "
				     "cache.kv_tokens) holds %u blocks of %u "
				     "positions: too small to serve",
				     s->kv_blocks, s->block_tokens);
	uint32_t batch = (uint32_t)slm_cfg_int(cfg, SLM_CFG_ENGINE_BATCH);
	uint32_t bt = (uint32_t)slm_cfg_int(cfg, SLM_CFG_SERVE_BATCH_TOKENS);
	s->budget = bt ? SLM_MIN(bt, batch) : batch;
	s->max_running = (uint32_t)slm_cfg_int(cfg, SLM_CFG_SERVE_MAX_RUNNING);
	if (s->max_running > s->budget)
		s->max_running = s->budget;
	s->max_queue = (uint32_t)slm_cfg_int(cfg, SLM_CFG_SERVE_MAX_QUEUE);
	s->prefix_on = slm_cfg_bool(cfg, SLM_CFG_CACHE_PREFIX);
	s->namespaces = slm_cfg_bool(cfg, SLM_CFG_CACHE_NAMESPACES);
	s->spin_ns = (uint64_t)slm_cfg_int(cfg, SLM_CFG_ENGINE_SPIN_US) * 1000;
	slm_dispatch_policy_from_config(&s->policy, cfg);
	const char *ct = slm_cfg_str(cfg, SLM_CFG_MODEL_CHAT_TEMPLATE);
	s->chat_template = ct && *ct ? ct : NULL;
	return 0;
}

static int plan_groups(struct serve_model *s, struct slm_error *err)
{
	struct slm_plan_params pp;
	slm_plan_params_from_config(&pp, s->cfg);
	uint64_t wbytes = 0;
	for (int t = 0; t < SLM_DTYPE__COUNT; t++)
		wbytes += s->model->type_bytes[t];
	pp.weight_bytes = wbytes;
	struct slm_kv_params kp = {.n_layer = s->model->hp.n_layer,
				   .n_head_kv = s->model->hp.n_head_kv,
				   .head_dim = s->model->hp.head_dim,
				   .block_tokens = s->block_tokens,
				   .n_blocks = s->kv_blocks,
				   .type = s->kv_type};
	pp.kv_bytes_per_group = slm_kv_pool_bytes(&kp);
	int rc = slm_plan_create(slm_topo_info(s->topo), &pp, &s->plan, err);
	if (rc)
		return rc;
	slm_plan_log(s->plan, slm_topo_info(s->topo));
	if (!s->plan->this_system)
		SLM_WARN("serve",
			 "numa.topology describes another machine: worker "
			 "threads are not pinned and memory is not bound");
	s->weight_bytes = wbytes;
	s->kv_bytes = pp.kv_bytes_per_group * (uint64_t)s->plan->n_groups;
	int n_copies = s->plan->n_copies > 0 ? s->plan->n_copies : 1;
	s->load_total = wbytes * (uint64_t)n_copies;
	return 0;
}

static int groups_start(struct serve_model *s, struct slm_error *err)
{
	const struct slm_plan *plan = s->plan;
	s->n_groups = plan->n_groups;
	s->groups = calloc((size_t)s->n_groups, sizeof(*s->groups));
	if (!s->groups)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int threads = (int)slm_cfg_int(s->cfg, SLM_CFG_ENGINE_THREADS);
	for (int i = 0; i < s->n_groups; i++) {
		struct serve_group *g = &s->groups[i];
		const struct slm_plan_group *pg = &plan->groups[i];
		g->s = s;
		g->index = i;
		g->node = pg->node;
		g->cpus = pg->cpus;
		g->n_cpus = pg->n_cpus;
		g->n_threads = threads > 0 ? threads : pg->n_cpus;
		if (g->n_threads < 1)
			g->n_threads = 1;
		g->weights = s->copies[pg->weights_copy < s->n_copies
					       ? pg->weights_copy
					       : 0];
		if (plan->this_system)
			g->planned = &plan->threads[pg->first_thread];
	}
	for (int i = 0; i < s->n_groups; i++) {
		int rc = group_start(s, &s->groups[i], err);
		if (rc) {
			slm_error_prefix(err, "worker group %d: ", i);
			return rc;
		}
	}
	return 0;
}

int serve_model_prepare(struct serve_model *s, const char *path,
			struct slm_error *err)
{
	s->t_prepare_ns = slm_now_ns();
	if (!path)
		path = "";
	if (!*path) {
		int rc = write_synthetic(s, err);
		if (rc)
			return rc;
		path = s->tmp_path;
	}
	s->model_path = strdup(path);
	if (!s->model_path)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int rc = slm_model_open(path, &s->model, err);
	if (rc)
		return rc;
	if (s->model->name && *s->model->name)
		snprintf(s->name, sizeof(s->name), "%s", s->model->name);
	else {
		const char *base = strrchr(path, '/');
		snprintf(s->name, sizeof(s->name), "%s",
			 base ? base + 1 : path);
	}
	s->arch = slm_arch_name(s->model->hp.arch);
	rc = slm_vocab_create(s->model->file, &s->vocab, err);
	if (rc) {
		slm_error_prefix(err, "%s: ", path);
		return rc;
	}
	rc = settings(s, err);
	if (rc)
		return rc;
	return plan_groups(s, err);
}

int serve_model_start(struct serve_model *s, slm_serve_progress_fn fn,
		      void *fn_ctx, struct slm_error *err)
{
	int rc = load_copies(s, fn, fn_ctx, err);
	if (!rc)
		rc = groups_start(s, err);
	if (rc)
		return rc;
	SLM_INFO("serve",
		 "%s ready (%s, %u positions per sequence): %d worker "
		 "group%s, KV %s %u blocks of %u positions per group, batch "
		 "%u tokens, %u sequences, prefix cache %s%s",
		 s->name, slm_arch_name(s->model->hp.arch), s->n_ctx,
		 s->n_groups, s->n_groups == 1 ? "" : "s",
		 slm_kv_type_name(s->kv_type), s->kv_blocks, s->block_tokens,
		 s->budget, s->max_running, s->prefix_on ? "on" : "off",
		 s->prefix_on && s->namespaces ? " (namespaces)" : "");
	s->load_ns = slm_now_ns() - s->t_prepare_ns;
	return 0;
}

void serve_model_stop_groups(struct serve_model *m)
{
	if (m->groups_stopped)
		return;
	m->groups_stopped = true;
	for (int i = 0; m->groups && i < m->n_groups; i++) {
		struct serve_group *g = &m->groups[i];
		if (!g->leader && !g->raw)
			continue;
		pthread_mutex_lock(&g->lock);
		g->stop = true;
		pthread_cond_signal(&g->cond);
		pthread_mutex_unlock(&g->lock);
	}
	for (int i = 0; m->groups && i < m->n_groups; i++)
		group_join(&m->groups[i]);
}

uint32_t serve_model_inflight(const struct serve_model *m)
{
	uint32_t n = 0;
	for (int i = 0; m->groups && i < m->n_groups; i++)
		n += __atomic_load_n(&m->groups[i].n_inflight,
				     __ATOMIC_ACQUIRE);
	return n;
}

void serve_model_release(struct serve_model *m)
{
	serve_model_stop_groups(m);
	for (int i = 0; m->groups && i < m->n_groups; i++) {
		struct serve_group *g = &m->groups[i];
		if (!g->inited)
			continue;
		pthread_mutex_destroy(&g->lock);
		pthread_cond_destroy(&g->cond);
		pthread_cond_destroy(&g->flush_cond);
		pthread_mutex_destroy(&g->stats_lock);
	}
	free(m->groups);
	m->groups = NULL;
	m->n_groups = 0;
	for (int i = 0; m->copies && i < m->n_copies; i++)
		slm_weights_free(m->copies[i]);
	free(m->copies);
	m->copies = NULL;
	m->n_copies = 0;
	slm_vocab_destroy(m->vocab);
	m->vocab = NULL;
	slm_model_close(m->model);
	m->model = NULL;
	slm_plan_destroy(m->plan);
	m->plan = NULL;
	remove_synthetic(m);
}

void serve_model_free(struct serve_model *m)
{
	if (!m)
		return;
	serve_model_release(m);
	free(m->model_path);
	free(m);
}

int slm_serve_create(const struct slm_config *cfg,
		     slm_serve_progress_fn progress, void *progress_ctx,
		     struct slm_serve **out, struct slm_error *err)
{
	*out = NULL;
	struct slm_serve *s = calloc(1, sizeof(*s));
	if (!s)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	s->cfg = cfg;
	s->next_id = 1;
	pthread_mutex_init(&s->map_lock, NULL);
	pthread_mutex_init(&s->models_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->models_cond, &ca);
	pthread_condattr_destroy(&ca);
	struct serve_model *m = NULL;
	int rc = slm_quant_configure(
		slm_cfg_enum_name(cfg, SLM_CFG_ENGINE_SIMD), err);
	if (rc)
		goto fail;
	const char *spec = slm_cfg_str(cfg, SLM_CFG_NUMA_TOPOLOGY);
	rc = slm_topo_open(spec && *spec ? spec : NULL, &s->topo, err);
	if (rc)
		goto fail;
	if (slm_topo_info(s->topo)->this_system &&
	    slm_arenas_create(s->topo, &s->arenas, NULL))
		s->arenas = NULL; /* plain malloc; placement only */
	m = calloc(1, sizeof(*m));
	if (!m) {
		rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
		goto fail;
	}
	m->front = s;
	m->cfg = cfg;
	m->topo = s->topo;
	m->arenas = s->arenas;
	const char *path = slm_cfg_str(cfg, SLM_CFG_MODEL_PATH);
	if ((!path || !*path) && progress)
		progress(progress_ctx, "making a synthetic model", 0);
	rc = serve_model_prepare(m, path, err);
	if (!rc)
		rc = serve_model_start(m, progress, progress_ctx, err);
	if (rc)
		goto fail;
	m->state = SLM_MODEL_SERVING;
	m->t_state_ns = slm_now_ns();
	s->n_names = 1;
	s->models = m;
	s->serving = m;
	m = NULL;
	rc = serve_life_start(s, err);
	if (rc)
		goto fail;
	__atomic_store_n(&s->alive, true, __ATOMIC_SEQ_CST);
	__atomic_store_n(&s->accepting, true, __ATOMIC_RELEASE);
	*out = s;
	return 0;
fail:
	serve_model_free(m);
	slm_serve_destroy(s);
	return rc;
}

/* ---- requests ------------------------------------------------------------ */

static void *req_calloc(struct serve_model *s, int node, size_t n, size_t size)
{
	if (s->arenas)
		return slm_arena_calloc(s->arenas, node, n, size);
	return calloc(n, size);
}

static void req_mem_free(struct serve_model *s, void *p)
{
	if (s->arenas)
		slm_arena_free(s->arenas, p);
	else
		free(p);
}

void slm_serve_req_free(struct serve_model *s, struct serve_req *r)
{
	if (!r)
		return;
	slm_sampler_destroy(r->smp);
	slm_stopper_destroy(r->stop);
	if (r->seq_init)
		slm_kv_seq_free(r->g ? r->g->kv : NULL, &r->seq);
	free(r->ns);
	req_mem_free(s, r->toks);
	req_mem_free(s, r);
}

static void map_insert(struct slm_serve *s, struct serve_req *r)
{
	pthread_mutex_lock(&s->map_lock);
	struct serve_req **b = &s->map[r->id % SERVE_MAP_BUCKETS];
	r->hnext = *b;
	*b = r;
	pthread_mutex_unlock(&s->map_lock);
}

void slm_serve_map_remove(struct serve_model *m, struct serve_req *r)
{
	struct slm_serve *s = m->front;
	pthread_mutex_lock(&s->map_lock);
	struct serve_req **b = &s->map[r->id % SERVE_MAP_BUCKETS];
	while (*b && *b != r)
		b = &(*b)->hnext;
	if (*b)
		*b = r->hnext;
	pthread_mutex_unlock(&s->map_lock);
}

/* The prompt's ids into toks. */
static int prompt_ids(struct serve_model *s, const struct slm_request *req,
		      struct slm_tokens *toks, struct slm_error *err)
{
	switch (req->input) {
	case SLM_INPUT_IDS:
		if (!req->ids && req->n_ids)
			return slm_error_set(err, SLM_EINVAL, "ids: NULL");
		for (uint32_t i = 0; i < req->n_ids; i++) {
			if (req->ids[i] < 0 ||
			    (uint32_t)req->ids[i] >= s->n_vocab)
				return slm_error_set(
					err, SLM_EINVAL,
					"ids: token %u is %d, outside the "
					"vocabulary of %u",
					i, req->ids[i], s->n_vocab);
			if (slm_tokens_push(toks, req->ids[i]))
				return slm_error_set(err, SLM_ENOMEM,
						     "out of memory");
		}
		return 0;
	case SLM_INPUT_TEXT:
		if (!req->text && req->text_len)
			return slm_error_set(err, SLM_EINVAL, "text: NULL");
		return slm_tokenize(
			s->vocab, req->text ? req->text : "", req->text_len,
			SLM_TOK_ADD_SPECIAL |
				(req->parse_special ? SLM_TOK_PARSE_SPECIAL
						    : 0),
			toks, err);
	case SLM_INPUT_CHAT: {
		if (!req->messages || !req->n_messages)
			return slm_error_set(err, SLM_EINVAL,
					     "chat: no messages");
		const char *name = NULL;
		int rc = slm_chat_resolve(
			req->chat_template && *req->chat_template
				? req->chat_template
				: s->chat_template,
			slm_vocab_chat_template(s->vocab), &name, err);
		if (rc)
			return rc == SLM_EUNSUPPORTED ? SLM_EINVAL : rc;
		struct slm_text text = {0};
		rc = slm_chat_apply(name, req->messages, req->n_messages, true,
				    &text, err);
		if (!rc)
			rc = slm_tokenize(
				s->vocab, text.data ? text.data : "", text.len,
				SLM_TOK_ADD_SPECIAL | SLM_TOK_PARSE_SPECIAL,
				toks, err);
		slm_text_free(&text);
		return rc == SLM_EUNSUPPORTED ? SLM_EINVAL : rc;
	}
	}
	return slm_error_set(err, SLM_EINVAL, "input kind %d", (int)req->input);
}

/* Sampler and stopper of the request's parameters. */
static int make_sampling(struct serve_model *s, const struct slm_gen_params *gp,
			 struct serve_req *r, struct slm_error *err)
{
	struct slm_sampler_params sp;
	slm_sampler_params_default(&sp);
	sp.temp = gp->temperature;
	sp.top_k = gp->top_k;
	sp.top_p = gp->top_p;
	sp.min_p = gp->min_p;
	sp.repeat_penalty = gp->repeat_penalty;
	sp.penalty_last_n = gp->repeat_last_n;
	sp.frequency_penalty = gp->frequency_penalty;
	sp.presence_penalty = gp->presence_penalty;
	sp.seed = gp->seed;
	int rc = slm_sampler_create(&sp, (int32_t)s->n_vocab, &r->smp, err);
	if (rc)
		return rc;
	struct slm_stop_params st;
	slm_stop_params_default(&st);
	st.max_tokens = gp->max_tokens ? (int32_t)SLM_MIN(gp->max_tokens,
							  (uint32_t)INT32_MAX)
				       : -1;
	st.ignore_eog = gp->ignore_eos;
	if (gp->n_stop > SLM_STOP_MAX)
		return slm_error_set(err, SLM_EINVAL,
				     "stop: %u strings, at most %d", gp->n_stop,
				     SLM_STOP_MAX);
	if (gp->n_stop && !gp->stop)
		return slm_error_set(err, SLM_EINVAL, "stop: NULL");
	st.n_stop = gp->n_stop;
	for (uint32_t i = 0; i < gp->n_stop; i++) {
		if (!gp->stop[i])
			return slm_error_set(err, SLM_EINVAL,
					     "stop: string %u is NULL", i);
		st.stop[i] = gp->stop[i];
	}
	rc = slm_stop_params_check(&st, err);
	if (!rc)
		rc = slm_stopper_create(s->vocab, &st, &r->stop, err);
	return rc;
}

/* The group for a request of ids[n], or -1 when all are full. */
static int pick_group(struct serve_model *s, const char *ns, const int32_t *ids,
		      uint32_t n)
{
	if (s->n_groups == 1) {
		struct serve_group *g = &s->groups[0];
		return __atomic_load_n(&g->n_waiting, __ATOMIC_RELAXED) <
				       s->max_queue
			       ? 0
			       : -1;
	}
	struct slm_dispatch_group dg[s->n_groups];
	for (int i = 0; i < s->n_groups; i++) {
		struct serve_group *g = &s->groups[i];
		dg[i].queued_tokens =
			__atomic_load_n(&g->queued_tokens, __ATOMIC_RELAXED);
		dg[i].running_tokens =
			__atomic_load_n(&g->running_tokens, __ATOMIC_RELAXED);
		dg[i].prefix_tokens =
			s->prefix_on && g->prefix
				? slm_prefix_peek(g->prefix, ns, ids, n)
				: 0;
		dg[i].closed =
			__atomic_load_n(&g->n_waiting, __ATOMIC_RELAXED) >=
			s->max_queue;
	}
	return slm_dispatch_pick(&s->policy, dg, s->n_groups, NULL);
}

static int refuse(struct slm_serve *s, int rc)
{
	uint64_t *c = rc == SLM_ETOOBIG	    ? &s->n_toobig
		      : rc == SLM_EOVERLOAD ? &s->n_overload
		      : rc == SLM_ESTATE    ? &s->n_state
					    : &s->n_invalid;
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
	return rc;
}

/*
 * Entering and leaving the API from another thread while stop may run:
 * stop clears `alive`, then waits until no caller is inside (`users`);
 * a caller counts itself in, then checks `alive` (both sequentially
 * consistent, so one of the two sees the other).
 */
static bool enter(struct slm_serve *s)
{
	__atomic_add_fetch(&s->users, 1, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&s->alive, __ATOMIC_SEQ_CST))
		return true;
	__atomic_sub_fetch(&s->users, 1, __ATOMIC_SEQ_CST);
	return false;
}

static void leave(struct slm_serve *s)
{
	__atomic_sub_fetch(&s->users, 1, __ATOMIC_SEQ_CST);
}

bool serve_front_enter(struct slm_serve *s)
{
	return enter(s);
}

void serve_front_leave(struct slm_serve *s)
{
	leave(s);
}

/*
 * The serving model, counted in as a user (see "A model's lifetime" in
 * serve_int.h): count in, then check it is still the serving one (both
 * sequentially consistent, so a swap that switches `serving` and then
 * waits for users == 0 either sees this caller or is seen by it).  NULL
 * after stop.
 */
static struct serve_model *model_enter(struct slm_serve *s)
{
	for (;;) {
		struct serve_model *m =
			__atomic_load_n(&s->serving, __ATOMIC_SEQ_CST);
		if (!m)
			return NULL;
		__atomic_add_fetch(&m->users, 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&s->serving, __ATOMIC_SEQ_CST) == m)
			return m;
		__atomic_sub_fetch(&m->users, 1, __ATOMIC_SEQ_CST);
	}
}

static void model_leave(struct serve_model *m)
{
	__atomic_sub_fetch(&m->users, 1, __ATOMIC_SEQ_CST);
}

struct serve_model *serve_serving_enter(struct slm_serve *s)
{
	if (!enter(s))
		return NULL;
	struct serve_model *m = model_enter(s);
	if (!m)
		leave(s);
	return m;
}

void serve_serving_leave(struct slm_serve *s, struct serve_model *m)
{
	model_leave(m);
	leave(s);
}

static int submit(struct slm_serve *s, struct serve_model *m,
		  const struct slm_request *req, uint64_t *id_out,
		  struct slm_error *err);

int slm_serve_submit(struct slm_serve *s, const struct slm_request *req,
		     uint64_t *id_out, struct slm_error *err)
{
	if (!enter(s))
		return refuse(s, slm_error_set(err, SLM_ESTATE, "not serving"));
	struct serve_model *m = model_enter(s);
	int rc;
	if (m) {
		rc = submit(s, m, req, id_out, err);
		model_leave(m);
	} else {
		rc = refuse(s, slm_error_set(err, SLM_ESTATE,
					     "not serving: no model"));
	}
	leave(s);
	return rc;
}

static int submit(struct slm_serve *s, struct serve_model *m,
		  const struct slm_request *req, uint64_t *id_out,
		  struct slm_error *err)
{
	if (!__atomic_load_n(&s->accepting, __ATOMIC_ACQUIRE))
		return refuse(s, slm_error_set(err, SLM_ESTATE,
					       "draining: not accepting "
					       "requests"));
	if (!req || !req->on_event)
		return refuse(s, slm_error_set(err, SLM_EINVAL,
					       "request without an event "
					       "callback"));
	uint64_t now = slm_now_ns();
	struct slm_tokens toks = {0};
	struct serve_req *r = NULL;
	int rc = prompt_ids(m, req, &toks, err);
	if (rc)
		goto out;
	if (!toks.n) {
		rc = slm_error_set(err, SLM_EINVAL, "the prompt has no tokens");
		goto out;
	}
	uint32_t kv_positions = (m->kv_blocks - 1) * m->block_tokens;
	if (toks.n >= m->n_ctx || toks.n >= kv_positions) {
		rc = slm_error_set(
			err, SLM_ETOOBIG,
			"the prompt has %zu tokens; the context "
			"is %u positions%s",
			toks.n, SLM_MIN(m->n_ctx, kv_positions),
			kv_positions < m->n_ctx ? " (the KV pool's size)" : "");
		goto out;
	}
	const char *ns = m->namespaces ? req->cache_namespace : NULL;
	int gi = pick_group(m, ns, toks.ids, (uint32_t)toks.n);
	if (gi < 0) {
		rc = slm_error_set(err, SLM_EOVERLOAD,
				   "overloaded: %u requests queued in every "
				   "worker group",
				   m->max_queue);
		goto out;
	}
	struct serve_group *g = &m->groups[gi];
	r = req_calloc(m, g->node, 1, sizeof(*r));
	uint32_t cap = (uint32_t)toks.n + 1;
	uint32_t room = m->n_ctx; /* prompt + generated, at most n_ctx */
	if (r)
		r->toks = req_calloc(m, g->node, room, sizeof(int32_t));
	if (!r || !r->toks) {
		rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
		goto out;
	}
	(void)cap;
	r->cap = room;
	memcpy(r->toks, toks.ids, toks.n * sizeof(int32_t));
	r->n_toks = r->n_prompt = (uint32_t)toks.n;
	r->g = g;
	rc = make_sampling(m, &req->gen, r, err);
	if (rc)
		goto out;
	for (uint32_t i = 0; i < r->n_prompt; i++)
		if (slm_sampler_accept(r->smp, r->toks[i])) {
			rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
			goto out;
		}
	if (ns && *ns) {
		r->ns = strdup(ns);
		if (!r->ns) {
			rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
			goto out;
		}
	}
	r->max_new = req->gen.max_tokens;
	r->on_event = req->on_event;
	r->ctx = req->ctx;
	r->deadline_ns = req->deadline_ns;
	r->t_submit = now;
	uint32_t gen_est = r->max_new && r->max_new < m->n_ctx - r->n_prompt
				   ? r->max_new
				   : m->n_ctx - r->n_prompt;
	r->load = r->n_prompt + (uint64_t)gen_est;
	r->id = __atomic_fetch_add(&s->next_id, 1, __ATOMIC_RELAXED);

	pthread_mutex_lock(&g->lock);
	if (g->n_waiting >= m->max_queue || g->stop) {
		bool stopping = g->stop;
		pthread_mutex_unlock(&g->lock);
		rc = stopping ? slm_error_set(err, SLM_ESTATE, "not serving")
			      : slm_error_set(err, SLM_EOVERLOAD,
					      "overloaded: %u requests queued",
					      m->max_queue);
		goto out;
	}
	*id_out = r->id;
	map_insert(s, r);
	r->prev = g->inbox_tail;
	if (g->inbox_tail)
		g->inbox_tail->next = r;
	else
		g->inbox_head = r;
	g->inbox_tail = r;
	__atomic_fetch_add(&g->n_waiting, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&g->n_inflight, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&g->queued_tokens, r->load, __ATOMIC_RELAXED);
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
	__atomic_fetch_add(&s->n_submitted, 1, __ATOMIC_RELAXED);
	slm_tokens_free(&toks);
	return 0;
out:
	slm_tokens_free(&toks);
	slm_serve_req_free(m, r);
	if (rc == SLM_EUNSUPPORTED)
		rc = SLM_EINVAL;
	if (rc == SLM_EINVAL && err && err->msg[0] &&
	    !strstr(err->msg, "invalid"))
		slm_error_prefix(err, "invalid request: ");
	return refuse(s, rc);
}

int slm_serve_cancel(struct slm_serve *s, uint64_t id)
{
	struct serve_group *g = NULL;
	pthread_mutex_lock(&s->map_lock);
	for (struct serve_req *r = s->map[id % SERVE_MAP_BUCKETS]; r;
	     r = r->hnext)
		if (r->id == id) {
			__atomic_store_n(&r->cancel, 1, __ATOMIC_RELAXED);
			g = r->g;
			/* its model stays until we leave (it is in flight) */
			__atomic_add_fetch(&g->s->users, 1, __ATOMIC_SEQ_CST);
			break;
		}
	pthread_mutex_unlock(&s->map_lock);
	if (!g)
		return SLM_ENOTFOUND;
	pthread_mutex_lock(&g->lock);
	pthread_cond_signal(&g->cond);
	pthread_mutex_unlock(&g->lock);
	model_leave(g->s);
	return 0;
}

/* ---- life ----------------------------------------------------------------- */

/* A model with worker groups (models_lock): counted, flushed, watched. */
static bool model_running(const struct serve_model *m)
{
	return (m->state == SLM_MODEL_READY || m->state == SLM_MODEL_SERVING ||
		m->state == SLM_MODEL_DRAINING) &&
	       m->groups;
}

void slm_serve_drain(struct slm_serve *s)
{
	__atomic_store_n(&s->accepting, false, __ATOMIC_RELEASE);
}

bool slm_serve_idle(struct slm_serve *s)
{
	bool idle = true;
	pthread_mutex_lock(&s->models_lock);
	for (struct serve_model *m = s->models; m && idle; m = m->next)
		if (model_running(m) && serve_model_inflight(m))
			idle = false;
	pthread_mutex_unlock(&s->models_lock);
	return idle;
}

bool slm_serve_healthy(struct slm_serve *s)
{
	uint64_t now = slm_now_ns();
	bool ok = true;
	pthread_mutex_lock(&s->models_lock);
	for (struct serve_model *m = s->models; m; m = m->next) {
		if (!model_running(m))
			continue;
		for (int i = 0; i < m->n_groups; i++) {
			uint64_t b = __atomic_load_n(
				&m->groups[i].step_begin_ns, __ATOMIC_RELAXED);
			if (b && now > b && now - b > SERVE_STALL_NS)
				ok = false;
		}
	}
	pthread_mutex_unlock(&s->models_lock);
	return ok;
}

void serve_fold_counters(struct slm_serve *s, struct serve_model *m)
{
	struct retired_counters *r = &s->gone;
	for (int i = 0; m->groups && i < m->n_groups; i++) {
		struct serve_group *g = &m->groups[i];
		if (!g->inited)
			continue;
		pthread_mutex_lock(&g->stats_lock);
		const struct group_counters *c = &g->snap;
		for (int k = 0; k < 5; k++)
			r->c.finished[k] += c->finished[k];
		r->c.prompt_tokens += c->prompt_tokens;
		r->c.cached_tokens += c->cached_tokens;
		r->c.generated_tokens += c->generated_tokens;
		r->c.forward_passes += c->forward_passes;
		r->c.batch_tokens += c->batch_tokens;
		r->c.preemptions += c->preemptions;
		r->cow_copies += g->cow_snap;
		r->cache_lookups += g->cache_snap.lookups;
		r->cache_hit_tokens += g->cache_snap.hit_tokens;
		r->cache_miss_tokens += g->cache_snap.miss_tokens;
		r->cache_evictions += g->cache_snap.evictions;
		memset(&g->snap, 0, sizeof(g->snap));
		memset(&g->cache_snap, 0, sizeof(g->cache_snap));
		g->cow_snap = 0;
		pthread_mutex_unlock(&g->stats_lock);
	}
}

void slm_serve_stop(struct slm_serve *s)
{
	if (!s || s->stopped)
		return;
	__atomic_store_n(&s->accepting, false, __ATOMIC_RELEASE);
	__atomic_store_n(&s->alive, false, __ATOMIC_SEQ_CST);
	s->stopped = true;
	/* callers already inside submit or describe finish first */
	while (__atomic_load_n(&s->users, __ATOMIC_SEQ_CST))
		slm_sleep_ns(100000);
	/* no load or drain goes on behind our back */
	serve_life_stop(s);
	pthread_mutex_lock(&s->models_lock);
	struct serve_model *list = s->models;
	s->models = NULL;
	__atomic_store_n(&s->serving, NULL, __ATOMIC_SEQ_CST);
	pthread_mutex_unlock(&s->models_lock);
	/* whatever still runs is cancelled (each gets its DONE) */
	for (struct serve_model *m = list; m; m = m->next)
		serve_model_stop_groups(m);
	pthread_mutex_lock(&s->models_lock);
	while (list) {
		struct serve_model *m = list;
		list = m->next;
		serve_fold_counters(s, m);
		m->next = s->retired;
		s->retired = m;
	}
	pthread_mutex_unlock(&s->models_lock);
	for (struct serve_model *m = s->retired; m; m = m->next)
		serve_model_release(m);
}

void slm_serve_destroy(struct slm_serve *s)
{
	if (!s)
		return;
	slm_serve_stop(s);
	while (s->retired) {
		struct serve_model *m = s->retired;
		s->retired = m->next;
		serve_model_free(m);
	}
	slm_arenas_destroy(s->arenas);
	slm_topo_close(s->topo);
	pthread_mutex_destroy(&s->map_lock);
	pthread_mutex_destroy(&s->models_lock);
	pthread_cond_destroy(&s->models_cond);
	free(s);
}

bool slm_serve_describe(struct slm_serve *s, struct slm_serve_info *out)
{
	memset(out, 0, sizeof(*out));
	if (!s || !enter(s))
		return false;
	struct serve_model *m = model_enter(s);
	if (!m) {
		leave(s);
		return false;
	}
	out->name = m->name;
	out->path = m->model_path;
	out->arch = slm_arch_name(m->model->hp.arch);
	out->synthetic = m->synthetic;
	out->n_ctx = m->n_ctx;
	out->n_vocab = m->n_vocab;
	out->n_groups = m->n_groups;
	out->kv_type = slm_kv_type_name(m->kv_type);
	out->kv_blocks = m->kv_blocks;
	out->block_tokens = m->block_tokens;
	out->file_type = slm_file_type_name(m->model->file_type);
	out->n_params = m->model->n_params;
	out->chat_template =
		m->chat_template ? m->chat_template
				 : slm_chat_detect(m->model->tok.chat_template);
	out->load_ns = m->load_ns;
	model_leave(m);
	leave(s);
	return true;
}

void slm_serve_stats_get(struct slm_serve *s, struct slm_serve_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->submitted = __atomic_load_n(&s->n_submitted, __ATOMIC_RELAXED);
	out->refused_invalid = __atomic_load_n(&s->n_invalid, __ATOMIC_RELAXED);
	out->refused_toobig = __atomic_load_n(&s->n_toobig, __ATOMIC_RELAXED);
	out->refused_overload =
		__atomic_load_n(&s->n_overload, __ATOMIC_RELAXED);
	out->refused_state = __atomic_load_n(&s->n_state, __ATOMIC_RELAXED);
	pthread_mutex_lock(&s->models_lock);
	const struct retired_counters *r = &s->gone;
	for (int k = 0; k < 5; k++)
		out->finished[k] = r->c.finished[k];
	out->prompt_tokens = r->c.prompt_tokens;
	out->cached_tokens = r->c.cached_tokens;
	out->generated_tokens = r->c.generated_tokens;
	out->forward_passes = r->c.forward_passes;
	out->batch_tokens = r->c.batch_tokens;
	out->preemptions = r->c.preemptions;
	out->cow_copies = r->cow_copies;
	out->cache_lookups = r->cache_lookups;
	out->cache_hit_tokens = r->cache_hit_tokens;
	out->cache_miss_tokens = r->cache_miss_tokens;
	out->cache_evictions = r->cache_evictions;
	for (struct serve_model *m = s->models; m; m = m->next) {
		if (!model_running(m))
			continue;
		for (int i = 0; i < m->n_groups; i++) {
			struct serve_group *g = &m->groups[i];
			if (!g->inited)
				continue;
			pthread_mutex_lock(&g->stats_lock);
			const struct group_counters *c = &g->snap;
			for (int k = 0; k < 5; k++)
				out->finished[k] += c->finished[k];
			out->prompt_tokens += c->prompt_tokens;
			out->cached_tokens += c->cached_tokens;
			out->generated_tokens += c->generated_tokens;
			out->forward_passes += c->forward_passes;
			out->batch_tokens += c->batch_tokens;
			out->preemptions += c->preemptions;
			out->cow_copies += g->cow_snap;
			out->queued += g->waiting_snap;
			out->running += g->running_snap;
			const struct slm_prefix_stats *ps = &g->cache_snap;
			out->cache_lookups += ps->lookups;
			out->cache_hit_tokens += ps->hit_tokens;
			out->cache_miss_tokens += ps->miss_tokens;
			out->cache_evictions += ps->evictions;
			out->blocks_total += ps->blocks_total;
			out->blocks_free += ps->blocks_free;
			out->blocks_cached += ps->blocks_cached;
			out->blocks_in_use += ps->blocks_in_use;
			pthread_mutex_unlock(&g->stats_lock);
		}
	}
	pthread_mutex_unlock(&s->models_lock);
}

int slm_serve_cache_flush(struct slm_serve *s)
{
	if (!enter(s))
		return SLM_ESTATE;
	/* Each group's leader owns its tree: ask every leader of every
	 * running model, then wait for the serving model's leaders to have
	 * done it (a step in progress finishes first).  The serving model
	 * is pinned (model_enter) while we wait; a draining or ready one
	 * flushes at its next step unwatched. */
	pthread_mutex_lock(&s->models_lock);
	for (struct serve_model *m = s->models; m; m = m->next) {
		if (!model_running(m) || m == s->serving)
			continue;
		for (int i = 0; i < m->n_groups; i++) {
			struct serve_group *g = &m->groups[i];
			pthread_mutex_lock(&g->lock);
			++g->flush_asked;
			g->flush = true;
			pthread_cond_signal(&g->cond);
			pthread_mutex_unlock(&g->lock);
		}
	}
	pthread_mutex_unlock(&s->models_lock);
	struct serve_model *m = model_enter(s);
	if (!m) {
		leave(s);
		return 0;
	}
	uint64_t asked[m->n_groups];
	for (int i = 0; i < m->n_groups; i++) {
		struct serve_group *g = &m->groups[i];
		pthread_mutex_lock(&g->lock);
		asked[i] = ++g->flush_asked;
		g->flush = true;
		pthread_cond_signal(&g->cond);
		pthread_mutex_unlock(&g->lock);
	}
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += SERVE_FLUSH_WAIT_S;
	int rc = 0;
	int64_t dropped = 0;
	for (int i = 0; i < m->n_groups && !rc; i++) {
		struct serve_group *g = &m->groups[i];
		pthread_mutex_lock(&g->lock);
		while (g->flush_done < asked[i] && !rc)
			if (pthread_cond_timedwait(&g->flush_cond, &g->lock,
						   &until) == ETIMEDOUT)
				rc = SLM_ETIMEDOUT;
		if (g->flush_done >= asked[i])
			dropped += g->flush_dropped;
		pthread_mutex_unlock(&g->lock);
	}
	model_leave(m);
	leave(s);
	return rc ? rc : (int)SLM_MIN(dropped, (int64_t)INT_MAX);
}
