#include "engine/engine.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/log.h"

void slm_engine_params_from_config(struct slm_engine_params *p,
				   const struct slm_config *cfg)
{
	memset(p, 0, sizeof(*p));
	p->model_path = slm_cfg_str(cfg, SLM_CFG_MODEL_PATH);
	p->n_threads = (int)slm_cfg_int(cfg, SLM_CFG_ENGINE_THREADS);
	if (p->n_threads <= 0) {
		cpu_set_t set;
		p->n_threads = sched_getaffinity(0, sizeof(set), &set) == 0
				       ? CPU_COUNT(&set)
				       : 1;
	}
	p->spin_ns = (uint64_t)slm_cfg_int(cfg, SLM_CFG_ENGINE_SPIN_US) * 1000;
	p->n_ctx = (uint32_t)slm_cfg_int(cfg, SLM_CFG_ENGINE_CTX);
	p->n_seq = 1;
	p->max_batch = (uint32_t)slm_cfg_int(cfg, SLM_CFG_ENGINE_BATCH);
	p->kv_type = (enum slm_kv_type)slm_cfg_enum(cfg, SLM_CFG_CACHE_KV_TYPE);
	p->block_tokens =
		(uint32_t)slm_cfg_int(cfg, SLM_CFG_CACHE_BLOCK_TOKENS);
	slm_load_params_from_config(&p->load, cfg);
	p->vocab = true;
}

void slm_engine_close(struct slm_engine *e)
{
	if (!e)
		return;
	free(e->feed_pos);
	free(e->feed_seq);
	free(e->feed_want);
	slm_forward_destroy(e->fwd);
	slm_kv_pool_destroy(e->kv);
	slm_threadpool_destroy(e->pool);
	slm_vocab_destroy(e->vocab);
	slm_weights_free(e->weights);
	slm_model_close(e->model);
	free(e);
}

int slm_engine_open(const struct slm_engine_params *p, struct slm_engine **out,
		    struct slm_error *err)
{
	*out = NULL;
	uint64_t t0 = slm_now_ns();
	if (!p->model_path || !*p->model_path)
		return slm_error_set(err, SLM_EINVAL, "no model file given");
	if (p->n_threads < 1 || !p->n_seq || !p->max_batch)
		return slm_error_set(err, SLM_EINVAL,
				     "engine: %d threads, %u sequences, "
				     "batch %u",
				     p->n_threads, p->n_seq, p->max_batch);
	struct slm_engine *e = calloc(1, sizeof(*e));
	if (!e)
		return slm_error_set(err, SLM_ENOMEM, "engine: no memory");
	int rc = slm_model_open(p->model_path, &e->model, err);
	if (rc)
		goto fail;
	const struct slm_hparams *hp = &e->model->hp;
	e->n_ctx = p->n_ctx ? p->n_ctx : hp->n_ctx_train;
	if (!p->n_ctx && p->n_ctx_cap && e->n_ctx > p->n_ctx_cap)
		e->n_ctx = p->n_ctx_cap;
	if (!e->n_ctx)
		e->n_ctx = 4096;
	rc = slm_weights_load(e->model, &p->load, &e->weights, err);
	if (rc)
		goto fail;
	if (p->vocab) {
		rc = slm_vocab_create(e->model->file, &e->vocab, err);
		if (rc) {
			slm_error_prefix(err, "%s: ", p->model_path);
			goto fail;
		}
	}
	struct slm_threadpool_params tp = {
		.n_threads = p->n_threads,
		.cpus = p->cpus,
		.spin_ns = p->spin_ns,
	};
	e->pool = slm_threadpool_create(&tp, err);
	if (!e->pool) {
		rc = err && err->code ? err->code : SLM_ESYS;
		goto fail;
	}
	struct slm_kv_params kp = {
		.n_layer = hp->n_layer,
		.n_head_kv = hp->n_head_kv,
		.head_dim = hp->head_dim,
		.block_tokens = p->block_tokens ? p->block_tokens : 16,
		.type = p->kv_type,
		.node = SLM_NUMA_LOCAL,
	};
	uint64_t blocks = (uint64_t)p->n_seq *
			  ((e->n_ctx + kp.block_tokens - 1) / kp.block_tokens);
	if (blocks >= SLM_KV_BLOCK_NONE) {
		rc = slm_error_set(err, SLM_ERANGE,
				   "engine: %u sequences of %u positions need "
				   "too many KV blocks",
				   p->n_seq, e->n_ctx);
		goto fail;
	}
	kp.n_blocks = (uint32_t)blocks;
	rc = slm_kv_pool_create(&kp, &e->kv, err);
	if (rc)
		goto fail;
	struct slm_forward_params fp = {
		.max_tokens = p->max_batch,
		.n_ctx = e->n_ctx,
	};
	rc = slm_forward_create(e->model, &e->weights->t, e->kv, e->pool, &fp,
				&e->fwd, err);
	if (rc) {
		slm_error_prefix(err, "%s: ", p->model_path);
		goto fail;
	}
	e->feed_pos = malloc((size_t)p->max_batch * sizeof(*e->feed_pos));
	e->feed_seq = malloc((size_t)p->max_batch * sizeof(*e->feed_seq));
	e->feed_want = malloc(p->max_batch);
	if (!e->feed_pos || !e->feed_seq || !e->feed_want) {
		rc = slm_error_set(err, SLM_ENOMEM, "engine: no memory");
		goto fail;
	}
	e->load_ns = slm_now_ns() - t0;
	*out = e;
	return 0;
fail:
	slm_engine_close(e);
	return rc;
}

int slm_engine_seq_init(struct slm_engine *e, struct slm_kv_seq *seq)
{
	return slm_kv_seq_init(e->kv, seq, e->n_ctx);
}

int slm_engine_feed(struct slm_engine *e, struct slm_kv_seq *seq,
		    const int32_t *tokens, uint32_t n, uint32_t chunk,
		    bool all_logits, float *logits, struct slm_error *err)
{
	const uint32_t max = slm_forward_max_tokens(e->fwd);
	const uint32_t n_vocab = slm_forward_n_vocab(e->fwd);
	if (!chunk || chunk > max)
		chunk = max;
	for (uint32_t i = 0; i < chunk; i++)
		e->feed_seq[i] = seq;
	for (uint32_t done = 0; done < n;) {
		uint32_t m = SLM_MIN(chunk, n - done);
		int rc = slm_kv_seq_reserve(e->kv, seq, seq->n_pos + m);
		if (rc)
			return slm_error_set(err, rc,
					     "engine: no KV room for positions "
					     "%u..%u (%u free blocks)",
					     seq->n_pos, seq->n_pos + m - 1,
					     slm_kv_pool_n_free(e->kv));
		bool last_chunk = done + m == n;
		for (uint32_t i = 0; i < m; i++) {
			e->feed_pos[i] = seq->n_pos + i;
			e->feed_want[i] = all_logits ||
					  (last_chunk && i + 1 == m && logits);
		}
		struct slm_batch b = {
			.n_tokens = m,
			.tokens = tokens + done,
			.pos = e->feed_pos,
			.seq = e->feed_seq,
			.want = e->feed_want,
		};
		float *dst = !logits	  ? NULL
			     : all_logits ? logits + (size_t)done * n_vocab
					  : logits;
		rc = slm_forward_eval(e->fwd, &b, dst, err);
		if (rc)
			return rc;
		done += m;
	}
	return 0;
}
