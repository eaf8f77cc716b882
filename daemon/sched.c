/*
 * sched.c: the scheduler of a worker group, run by the group's leader
 * thread.
 *
 * Each step:
 *   1. take new requests from the inbox (FCFS by arrival);
 *   2. finish requests that were cancelled or whose deadline passed;
 *   3. admit waiting requests in order while sequences are free: look up
 *      the prompt's longest cached prefix, share its blocks, reserve KV
 *      for the rest of the prompt (evicting unused cached blocks when the
 *      pool is short).  The first request that does not fit stops
 *      admission, so a long prompt is never overtaken for ever by short
 *      ones (no starvation);
 *   4. build one batch within the token budget: the next token of every
 *      running sequence that is decoding (a block for its position,
 *      evicting cache, else preempting the newest sequence: its computed
 *      blocks go to the prefix cache, its KV is freed, and it goes back to
 *      the head of the queue to be recomputed later), then chunks of the
 *      prompts still being processed, oldest first;
 *   5. one forward pass; for every sequence whose last known token was in
 *      it: sample, detokenize, check stops, send a TOKENS event, and
 *      finish it (DONE) when it stops.
 * A recomputed sequence feeds its prompt and the tokens it had generated
 * and samples on from there with its sampler's state intact, so its
 * output is what it would have been without the preemption.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/log.h"
#include "daemon/serve_int.h"

#define PUBLISH_NS (50ull * 1000 * 1000)
#define IDLE_WAIT_NS (1000ull * 1000 * 1000)

/* ---- counters and stage times (ctl/perf.h) -------------------------------- */

/* The leader's counters and stages: a few relaxed stores per token and per
 * step, nothing shared with another writer. */
static inline void count(struct serve_group *g, enum perf_counter c, uint64_t n)
{
	if (SLM_LIKELY(g->pt != NULL))
		perf_count(g->pt, c, n);
}

static inline void stage_ns(struct serve_group *g, enum perf_stage st,
			    uint64_t ns)
{
	if (SLM_LIKELY(g->pt != NULL))
		perf_stage_ns(g->pt, st, ns);
}

static inline void activity(struct serve_group *g, enum perf_activity a)
{
	if (SLM_LIKELY(g->pt != NULL))
		perf_set_activity(g->pt, a);
}

/* The row name of a group's thread: "g<group>.worker<i>" for the first
 * model, "m<k>.g<group>.worker<i>" for models loaded later, which run
 * beside it for a while (a swap) and must not share its series. */
static const char *perf_name(const struct serve_group *g, int ith, char *buf,
			     size_t size)
{
	if (g->s->ordinal == 0)
		return NULL; /* perf's default: g<group>.worker<ith> */
	snprintf(buf, size, "m%u.g%d.worker%d", g->s->ordinal, g->index, ith);
	return buf;
}

/* Register the leader as "g<group>.worker0" (it is thread 0 of the
 * group's pool).  Without it the group serves on, uncounted. */
static void perf_join(struct serve_group *g)
{
	char name[48];
	struct perf_thread_params p = {
		.role = "worker",
		.group = g->index,
		.index = 0,
		.name = perf_name(g, 0, name, sizeof(name)),
		.counters = PERF_MASK(PERF_C_REQUESTS) |
			    PERF_MASK(PERF_C_REQUESTS_DONE) |
			    PERF_MASK(PERF_C_PROMPT_TOKENS) |
			    PERF_MASK(PERF_C_TOKENS_GENERATED) |
			    PERF_MASK(PERF_C_PREFIX_HIT_TOKENS) |
			    PERF_MASK(PERF_C_PREFIX_MISS_TOKENS),
		.stages = PERF_MASK(PERF_STAGE_QUEUE_WAIT) |
			  PERF_MASK(PERF_STAGE_PREFILL) |
			  PERF_MASK(PERF_STAGE_FIRST_TOKEN) |
			  PERF_MASK(PERF_STAGE_DECODE_STEP) |
			  PERF_MASK(PERF_STAGE_DETOKENIZE),
	};
	struct slm_error err = {0};
	if (perf_thread_register(&p, &g->pt, &err)) {
		SLM_WARN("sched",
			 "group %d: its counters are not on the control "
			 "socket: %s",
			 g->index, err.msg);
		g->pt = NULL;
	}
}

/* ---- set-up --------------------------------------------------------------- */

/* A pool worker of the group on the control socket: a row of its own in
 * perf and top (CPU time, kernel state) as "g<group>.worker<ith>"; it
 * keeps no counters (the leader counts the group's work). */
static void pool_thread(void *ctx, int ith, bool start)
{
	struct serve_group *g = ctx;
	if (!start) {
		perf_thread_unregister(perf_self());
		return;
	}
	char name[48];
	struct perf_thread_params p = {
		.role = "worker",
		.group = g->index,
		.index = ith,
		.name = perf_name(g, ith, name, sizeof(name))};
	struct perf_thread *pt;
	struct slm_error err = {0};
	if (perf_thread_register(&p, &pt, &err))
		SLM_DEBUG("sched",
			  "group %d: pool thread %d not on the "
			  "control socket: %s",
			  g->index, ith, err.msg);
}

static int group_setup(struct serve_group *g, struct slm_error *err)
{
	struct serve_model *s = g->s;
	const struct slm_hparams *hp = &s->model->hp;
	bool pin = g->planned && g->n_threads <= g->n_cpus;
	char name[16]; /* the plan's worker names: slm-g0w1, slm-g0w2... */
	snprintf(name, sizeof(name), "slm-g%dw", g->index);
	struct slm_threadpool_params tp = {
		.n_threads = g->n_threads,
		.cpus = pin ? g->cpus : NULL,
		.spin_ns = s->spin_ns,
		.name = name,
		.on_thread = pool_thread,
		.on_thread_ctx = g,
	};
	g->pool = slm_threadpool_create(&tp, err);
	if (!g->pool)
		return err->code ? err->code : SLM_ESYS;
	struct slm_kv_params kp = {
		.n_layer = hp->n_layer,
		.n_head_kv = hp->n_head_kv,
		.head_dim = hp->head_dim,
		.block_tokens = s->block_tokens,
		.n_blocks = s->kv_blocks,
		.type = s->kv_type,
		.node = g->planned ? g->node : SLM_NUMA_LOCAL,
	};
	int rc = slm_kv_pool_create(&kp, &g->kv, err);
	if (rc)
		return rc;
	if (s->prefix_on) {
		g->prefix = slm_prefix_create(g->kv, s->namespaces);
		if (!g->prefix)
			return slm_error_set(err, SLM_ENOMEM, "out of memory");
	}
	struct slm_forward_params fp = {.max_tokens = s->budget,
					.n_ctx = s->n_ctx};
	rc = slm_forward_create(s->model, &g->weights->t, g->kv, g->pool, &fp,
				&g->fwd, err);
	if (rc)
		return rc;
	const uint32_t B = s->budget;
	g->ws = slm_sample_ws_create((int32_t)s->n_vocab);
	g->logits = malloc((size_t)s->max_running * s->n_vocab * sizeof(float));
	g->b_tokens = malloc(B * sizeof(*g->b_tokens));
	g->b_pos = malloc(B * sizeof(*g->b_pos));
	g->b_seq = malloc(B * sizeof(*g->b_seq));
	g->b_want = malloc(B);
	g->b_owner = malloc(B * sizeof(*g->b_owner));
	g->running = calloc(s->max_running, sizeof(*g->running));
	g->match =
		malloc(slm_kv_blocks_for(g->kv, s->n_ctx) * sizeof(uint32_t));
	if (!g->ws || !g->logits || !g->b_tokens || !g->b_pos || !g->b_seq ||
	    !g->b_want || !g->b_owner || !g->running || !g->match)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	return 0;
}

static void group_teardown(struct serve_group *g)
{
	slm_prefix_destroy(g->prefix);
	g->prefix = NULL;
	slm_forward_destroy(g->fwd);
	slm_kv_pool_destroy(g->kv);
	g->kv = NULL;
	slm_threadpool_destroy(g->pool);
	slm_sample_ws_destroy(g->ws);
	free(g->logits);
	free(g->b_tokens);
	free(g->b_pos);
	free(g->b_seq);
	free(g->b_want);
	free(g->b_owner);
	free(g->running);
	free(g->match);
	slm_text_free(&g->text);
}

/* ---- lists ----------------------------------------------------------------- */

static void wait_unlink(struct serve_group *g, struct serve_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		g->wait_head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		g->wait_tail = r->prev;
	r->next = r->prev = NULL;
}

static void wait_push_front(struct serve_group *g, struct serve_req *r)
{
	r->prev = NULL;
	r->next = g->wait_head;
	if (g->wait_head)
		g->wait_head->prev = r;
	else
		g->wait_tail = r;
	g->wait_head = r;
}

static void running_remove(struct serve_group *g, struct serve_req *r)
{
	uint32_t i = 0;
	while (i < g->n_running && g->running[i] != r)
		i++;
	SLM_ASSERT(i < g->n_running);
	memmove(&g->running[i], &g->running[i + 1],
		(g->n_running - i - 1) * sizeof(*g->running));
	g->n_running--;
}

/* ---- events ------------------------------------------------------------------- */

static void emit_tokens(struct serve_group *g, struct serve_req *r,
			const int32_t *ids, uint32_t n_ids)
{
	struct slm_event ev = {
		.kind = SLM_EVENT_TOKENS,
		.request_id = r->id,
		.ids = ids,
		.n_ids = n_ids,
		.text = g->text.data ? g->text.data : "",
		.text_len = (uint32_t)g->text.len,
	};
	r->on_event(r->ctx, &ev);
}

static uint64_t us(uint64_t ns)
{
	return ns / 1000;
}

/* The end of a request: free its KV (its computed full blocks stay in the
 * prefix cache), send DONE, free it. */
static void finish(struct serve_group *g, struct serve_req *r,
		   enum slm_finish how, int code, const char *msg)
{
	struct serve_model *s = g->s;
	if (r->state == REQ_RUNNING) {
		running_remove(g, r);
		__atomic_fetch_sub(&g->running_tokens, r->load,
				   __ATOMIC_RELAXED);
	} else {
		wait_unlink(g, r);
		__atomic_fetch_sub(&g->n_waiting, 1, __ATOMIC_RELAXED);
		__atomic_fetch_sub(&g->queued_tokens, r->load,
				   __ATOMIC_RELAXED);
	}
	if (r->seq_init) {
		if (g->prefix && how != SLM_FINISH_ERROR && r->seq.n_pos)
			slm_prefix_insert(g->prefix, r->ns, r->toks,
					  r->seq.n_pos, r->seq.blocks);
		slm_kv_seq_free(g->kv, &r->seq);
		r->seq_init = false;
	}
	g->c.finished[how]++;
	count(g, PERF_C_REQUESTS_DONE, 1);
	g->c.prompt_tokens += r->n_prompt;
	g->c.cached_tokens += r->n_cached;
	slm_serve_map_remove(s, r);
	uint64_t now = slm_now_ns();
	struct slm_event ev = {
		.kind = SLM_EVENT_DONE,
		.request_id = r->id,
		.text = "",
		.finish = how,
		.error = how == SLM_FINISH_ERROR ? code : 0,
		.error_msg = how == SLM_FINISH_ERROR ? msg : NULL,
		.usage = {.prompt_tokens = r->n_prompt,
			  .cached_tokens = r->n_cached,
			  .generated_tokens = r->n_gen},
		.timings = {.queue_us = us((r->t_admit ? r->t_admit : now) -
					   r->t_submit),
			    .prefill_us =
				    r->t_prefill_end
					    ? us(r->t_prefill_end - r->t_admit)
					    : 0,
			    .ttft_us = r->t_first ? us(r->t_first - r->t_submit)
						  : 0,
			    .total_us = us(now - r->t_submit),
			    .decode_us = r->t_first ? us(r->t_last - r->t_first)
						    : 0},
	};
	r->on_event(r->ctx, &ev);
	slm_serve_req_free(s, r);
	__atomic_fetch_sub(&g->n_inflight, 1, __ATOMIC_RELEASE);
}

/* ---- admission and preemption ------------------------------------------ */

/* Preempt running sequence v: cache what it computed, free its KV, put it
 * back at the head of the queue. */
static void preempt(struct serve_group *g, struct serve_req *v)
{
	if (g->prefix && v->seq.n_pos)
		slm_prefix_insert(g->prefix, v->ns, v->toks, v->seq.n_pos,
				  v->seq.blocks);
	slm_kv_seq_truncate(g->kv, &v->seq, 0);
	running_remove(g, v);
	v->state = REQ_WAITING;
	wait_push_front(g, v);
	__atomic_fetch_add(&g->n_waiting, 1, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&g->running_tokens, v->load, __ATOMIC_RELAXED);
	__atomic_fetch_add(&g->queued_tokens, v->load, __ATOMIC_RELAXED);
	g->c.preemptions++;
	SLM_DEBUG("sched",
		  "group %d: preempted request %llu at %u positions (KV "
		  "full); it will be recomputed",
		  g->index, (unsigned long long)v->id, v->n_toks);
}

/* Make r's table ready for positions up to n: evict cache, then preempt
 * the newest sequence.  False when r itself was preempted or finished. */
static bool ensure_room(struct serve_group *g, struct serve_req *r, uint32_t n)
{
	for (;;) {
		if (slm_kv_seq_reserve(g->kv, &r->seq, n) == 0)
			return true;
		uint32_t need = slm_kv_seq_reserve_need(g->kv, &r->seq, n);
		if (g->prefix && slm_prefix_evict(g->prefix, need))
			continue;
		struct serve_req *v = g->running[g->n_running - 1];
		if (v == r && g->n_running == 1) {
			/* alone and still no room: the pool is its limit */
			finish(g, r, SLM_FINISH_LENGTH, 0, NULL);
			return false;
		}
		preempt(g, v);
		if (v == r)
			return false;
	}
}

/* Admit the request at the head of the queue; false when it must wait. */
static bool admit_one(struct serve_group *g, struct serve_req *r)
{
	struct serve_model *s = g->s;
	if (!r->seq_init) {
		if (slm_kv_seq_init(g->kv, &r->seq, s->n_ctx)) {
			finish(g, r, SLM_FINISH_ERROR, SLM_ENOMEM,
			       "out of memory");
			return true;
		}
		r->seq_init = true;
	}
	if (g->prefix && !r->seq.n_blocks) {
		uint32_t hit =
			slm_prefix_match(g->prefix, r->ns, r->toks, r->n_toks,
					 g->match, r->seq.cap);
		/* at least the last known token is computed: its logits */
		uint32_t pos = SLM_MIN(hit, r->n_toks - 1);
		uint32_t nb = slm_kv_blocks_for(g->kv, pos);
		if (nb && slm_kv_seq_share(g->kv, &r->seq, g->match, nb, pos))
			SLM_ASSERT(!"share into an empty table");
		if (!r->admitted_once)
			r->n_cached = SLM_MIN(pos, r->n_prompt);
	}
	uint32_t need = slm_kv_seq_reserve_need(g->kv, &r->seq, r->n_toks);
	if (g->prefix && need > slm_kv_pool_n_free(g->kv))
		slm_prefix_evict(g->prefix, need);
	if (slm_kv_seq_reserve(g->kv, &r->seq, r->n_toks)) {
		slm_kv_seq_truncate(g->kv, &r->seq, 0);
		if (!g->n_running) {
			finish(g, r, SLM_FINISH_ERROR, SLM_ETOOBIG,
			       "the KV pool cannot hold this prompt");
			return true;
		}
		return false;
	}
	wait_unlink(g, r);
	__atomic_fetch_sub(&g->n_waiting, 1, __ATOMIC_RELAXED);
	__atomic_fetch_sub(&g->queued_tokens, r->load, __ATOMIC_RELAXED);
	__atomic_fetch_add(&g->running_tokens, r->load, __ATOMIC_RELAXED);
	r->state = REQ_RUNNING;
	g->running[g->n_running++] = r;
	if (!r->admitted_once) {
		r->admitted_once = true;
		r->t_admit = slm_now_ns();
		stage_ns(g, PERF_STAGE_QUEUE_WAIT, r->t_admit - r->t_submit);
		count(g, PERF_C_PREFIX_HIT_TOKENS, r->n_cached);
		count(g, PERF_C_PREFIX_MISS_TOKENS, r->n_prompt - r->n_cached);
	}
	return true;
}

/* ---- one step ------------------------------------------------------------------- */

static void reap(struct serve_group *g, uint64_t now)
{
	struct serve_req *r = g->wait_head;
	while (r) {
		struct serve_req *next = r->next;
		if (__atomic_load_n(&r->cancel, __ATOMIC_RELAXED))
			finish(g, r, SLM_FINISH_CANCELED, 0, NULL);
		else if (r->deadline_ns && now >= r->deadline_ns)
			finish(g, r, SLM_FINISH_DEADLINE, 0, NULL);
		r = next;
	}
	for (uint32_t i = 0; i < g->n_running;) {
		r = g->running[i];
		if (__atomic_load_n(&r->cancel, __ATOMIC_RELAXED))
			finish(g, r, SLM_FINISH_CANCELED, 0, NULL);
		else if (r->deadline_ns && now >= r->deadline_ns)
			finish(g, r, SLM_FINISH_DEADLINE, 0, NULL);
		else
			i++;
	}
}

/* A sampled token for r from its logits row. */
static void take_token(struct serve_group *g, struct serve_req *r,
		       const float *logits)
{
	uint64_t now = slm_now_ns();
	if (!r->t_prefill_end) {
		r->t_prefill_end = now;
		stage_ns(g, PERF_STAGE_PREFILL, now - r->t_admit);
	}
	if (g->prefix && !r->prompt_cached) {
		slm_prefix_insert(g->prefix, r->ns, r->toks, r->seq.n_pos,
				  r->seq.blocks);
		r->prompt_cached = true;
	}
	int32_t tok = slm_sampler_sample(r->smp, logits, g->ws);
	if (tok < 0) {
		finish(g, r, SLM_FINISH_ERROR, tok,
		       "sampling failed: no token can be chosen");
		return;
	}
	if (slm_sampler_accept(r->smp, tok)) {
		finish(g, r, SLM_FINISH_ERROR, SLM_ENOMEM, "out of memory");
		return;
	}
	if (!r->n_gen) {
		r->t_first = now;
		stage_ns(g, PERF_STAGE_FIRST_TOKEN, now - r->t_submit);
	}
	r->t_last = now;
	r->toks[r->n_toks++] = tok;
	r->n_gen++;
	g->c.generated_tokens++;
	count(g, PERF_C_TOKENS_GENERATED, 1);
	g->text.len = 0;
	struct slm_error err = {0};
	uint64_t t0 = perf_now();
	int reason = slm_stopper_push(r->stop, tok, &g->text, &err);
	if (SLM_LIKELY(g->pt != NULL))
		perf_stage_end(g->pt, PERF_STAGE_DETOKENIZE, t0);
	if (reason < 0) {
		finish(g, r, SLM_FINISH_ERROR, reason, err.msg);
		return;
	}
	bool full = reason == SLM_STOP_NONE && r->n_toks >= r->cap;
	if ((reason != SLM_STOP_NONE || full) &&
	    slm_stopper_finish(r->stop, &g->text)) {
		finish(g, r, SLM_FINISH_ERROR, SLM_ENOMEM, "out of memory");
		return;
	}
	emit_tokens(g, r, &tok, 1);
	if (reason == SLM_STOP_MAX_TOKENS || full)
		finish(g, r, SLM_FINISH_LENGTH, 0, NULL);
	else if (reason != SLM_STOP_NONE)
		finish(g, r, SLM_FINISH_STOP, 0, NULL);
}

/* Build and run one batch; false when there was nothing to run. */
static bool step(struct serve_group *g)
{
	struct serve_model *s = g->s;
	uint64_t t0 = perf_now();
	uint32_t n = 0, n_decode = 0;
	/* decodes first: one token for every sequence that has one */
	for (uint32_t i = 0; i < g->n_running && n < s->budget; i++) {
		struct serve_req *r = g->running[i];
		if (r->n_toks - r->seq.n_pos != 1)
			continue;
		if (!ensure_room(g, r, r->seq.n_pos + 1)) {
			i--; /* r left the array; its successor moved here */
			continue;
		}
		g->b_tokens[n] = r->toks[r->seq.n_pos];
		g->b_pos[n] = r->seq.n_pos;
		g->b_seq[n] = &r->seq;
		g->b_want[n] = 1;
		g->b_owner[n] = r;
		n++;
		n_decode += r->n_gen > 0;
	}
	/* then prompt chunks, oldest first (their KV was reserved at
	 * admission) */
	for (uint32_t i = 0; i < g->n_running && n < s->budget; i++) {
		struct serve_req *r = g->running[i];
		uint32_t rem = r->n_toks - r->seq.n_pos;
		if (rem <= 1)
			continue;
		uint32_t m = SLM_MIN(rem, s->budget - n);
		for (uint32_t k = 0; k < m; k++, n++) {
			g->b_tokens[n] = r->toks[r->seq.n_pos + k];
			g->b_pos[n] = r->seq.n_pos + k;
			g->b_seq[n] = &r->seq;
			g->b_want[n] = k + 1 == rem;
			g->b_owner[n] = r;
		}
	}
	if (!n)
		return false;
	activity(g, n_decode == n ? PERF_ACT_DECODE : PERF_ACT_PREFILL);
	struct slm_batch b = {.n_tokens = n,
			      .tokens = g->b_tokens,
			      .pos = g->b_pos,
			      .seq = g->b_seq,
			      .want = g->b_want};
	struct slm_error err = {0};
	int rc = slm_forward_eval(g->fwd, &b, g->logits, &err);
	g->c.forward_passes++;
	g->c.batch_tokens += n;
	if (rc) {
		SLM_ERROR("sched", "group %d: forward pass: %s", g->index,
			  err.msg);
		for (uint32_t i = 0; i < n; i++) {
			struct serve_req *r = g->b_owner[i];
			if (g->b_want[i])
				finish(g, r, SLM_FINISH_ERROR, rc, err.msg);
		}
		return true;
	}
	/* the batch's owners stay valid until their own take_token */
	uint32_t row = 0;
	for (uint32_t i = 0; i < n; i++)
		if (g->b_want[i])
			take_token(g, g->b_owner[i],
				   g->logits + (size_t)row++ * s->n_vocab);
	/* a step that gave a running sequence its next token: the time
	 * between two tokens of a request, sampling and text included */
	if (n_decode && SLM_LIKELY(g->pt != NULL))
		perf_stage_end(g->pt, PERF_STAGE_DECODE_STEP, t0);
	return true;
}

static void publish(struct serve_group *g, bool force)
{
	static __thread uint64_t last;
	uint64_t now = slm_now_ns();
	if (!force && now - last < PUBLISH_NS)
		return;
	last = now;
	struct slm_prefix_stats ps;
	if (g->prefix) {
		slm_prefix_stats_get(g->prefix, &ps);
	} else {
		memset(&ps, 0, sizeof(ps));
		ps.blocks_total = g->kv->p.n_blocks;
		ps.blocks_free = slm_kv_pool_n_free(g->kv);
		ps.blocks_in_use = ps.blocks_total - ps.blocks_free;
	}
	pthread_mutex_lock(&g->stats_lock);
	g->snap = g->c;
	g->cache_snap = ps;
	g->cow_snap = g->kv->n_copies;
	g->running_snap = g->n_running;
	g->waiting_snap = __atomic_load_n(&g->n_waiting, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&g->stats_lock);
}

static void idle_wait(struct serve_group *g)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull +
		     (uint64_t)ts.tv_nsec + IDLE_WAIT_NS;
	ts.tv_sec = (time_t)(t / 1000000000ull);
	ts.tv_nsec = (long)(t % 1000000000ull);
	pthread_cond_timedwait(&g->cond, &g->lock, &ts);
}

/* Counts the requests that just joined the waiting list, from first on. */
static void count_arrivals(struct serve_group *g, const struct serve_req *first)
{
	uint64_t n = 0, prompt = 0;
	for (const struct serve_req *r = first; r; r = r->next) {
		n++;
		prompt += r->n_prompt;
	}
	count(g, PERF_C_REQUESTS, n);
	count(g, PERF_C_PROMPT_TOKENS, prompt);
}

/* A flush asked for by slm_serve_cache_flush: drop the cache, publish the
 * counts it changed, and tell the waiters (seq: the last flush asked for
 * when it was taken). */
static void do_flush(struct serve_group *g, uint64_t seq)
{
	uint32_t n = g->prefix ? slm_prefix_flush(g->prefix) : 0;
	SLM_INFO("sched", "group %d: cache flushed: %u blocks", g->index, n);
	publish(g, true);
	pthread_mutex_lock(&g->lock);
	g->flush_done = seq;
	g->flush_dropped = n;
	pthread_cond_broadcast(&g->flush_cond);
	pthread_mutex_unlock(&g->lock);
}

static void run(struct serve_group *g)
{
	for (;;) {
		pthread_mutex_lock(&g->lock);
		/* the inbox joins the waiting list (arrival order) */
		struct serve_req *arrived = g->inbox_head;
		if (g->inbox_head) {
			g->inbox_head->prev = g->wait_tail;
			if (g->wait_tail)
				g->wait_tail->next = g->inbox_head;
			else
				g->wait_head = g->inbox_head;
			g->wait_tail = g->inbox_tail;
			g->inbox_head = g->inbox_tail = NULL;
		}
		bool stop = g->stop, flush = g->flush;
		uint64_t flush_seq = g->flush_asked;
		g->flush = false;
		if (!stop && !flush && !g->n_running && !g->wait_head) {
			__atomic_store_n(&g->step_begin_ns, 0,
					 __ATOMIC_RELAXED);
			pthread_mutex_unlock(&g->lock);
			activity(g, PERF_ACT_IDLE);
			publish(g, true);
			pthread_mutex_lock(&g->lock);
			if (!g->stop && !g->flush && !g->inbox_head)
				idle_wait(g);
			pthread_mutex_unlock(&g->lock);
			continue;
		}
		pthread_mutex_unlock(&g->lock);
		if (arrived)
			count_arrivals(g, arrived);
		uint64_t now = slm_now_ns();
		__atomic_store_n(&g->step_begin_ns, now, __ATOMIC_RELAXED);
		if (flush)
			do_flush(g, flush_seq);
		if (stop) {
			while (g->n_running)
				finish(g, g->running[0], SLM_FINISH_CANCELED, 0,
				       NULL);
			while (g->wait_head)
				finish(g, g->wait_head, SLM_FINISH_CANCELED, 0,
				       NULL);
			publish(g, true);
			/* nobody waits for a flush that will not come */
			pthread_mutex_lock(&g->lock);
			g->flush_done = g->flush_asked;
			pthread_cond_broadcast(&g->flush_cond);
			pthread_mutex_unlock(&g->lock);
			return;
		}
		reap(g, now);
		while (g->wait_head && g->n_running < g->s->max_running)
			if (!admit_one(g, g->wait_head))
				break;
		step(g);
		publish(g, false);
	}
}

void *slm_sched_main(void *arg)
{
	struct serve_group *g = arg;
	struct slm_error err = {0};
	int rc = group_setup(g, &err);
	if (!rc)
		perf_join(g);
	pthread_mutex_lock(&g->lock);
	g->started = true;
	g->start_rc = rc;
	g->start_err = err;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	if (!rc)
		run(g);
	perf_thread_unregister(g->pt);
	g->pt = NULL;
	group_teardown(g);
	return NULL;
}
