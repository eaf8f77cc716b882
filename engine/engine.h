/*
 * engine.h: one model ready to run: the model description, one loaded
 * replica of its weights, its vocabulary, a thread pool, a KV pool and a
 * forward pass over them.  What `slm run`, `slm logits`, `slm bench` and
 * the parity tests need; the serving core builds the same pieces per
 * worker group.
 *
 * slm_engine_feed() is the plain way to push tokens through one sequence:
 * it reserves KV blocks and evaluates in chunks of the forward pass's
 * batch size, as llama.cpp does with n_ubatch.
 */
#ifndef SLM_ENGINE_ENGINE_H
#define SLM_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/kv.h"
#include "common/config.h"
#include "common/err.h"
#include "engine/forward.h"
#include "engine/model.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"
#include "engine/weights.h"

struct slm_engine_params {
	const char *model_path;
	int n_threads;	    /* >= 1 */
	const int *cpus;    /* pin the pool's threads here, or NULL */
	uint64_t spin_ns;   /* pool spin; 0 = default */
	uint32_t n_ctx;	    /* positions per sequence (0: the model's
			       training context, at most n_ctx_cap) */
	uint32_t n_ctx_cap; /* 0: no cap */
	uint32_t n_seq;	    /* sequences the KV pool holds at n_ctx */
	uint32_t max_batch; /* tokens per forward call */
	enum slm_kv_type kv_type;
	uint32_t block_tokens;
	struct slm_load_params load;
	bool vocab; /* build the vocabulary too */
};

/*
 * Defaults from a config: engine.threads (0: every CPU this process may
 * use), engine.batch, engine.ctx, engine.spin_us, cache.kv_type,
 * cache.block_tokens, the model.load* keys; one sequence, vocabulary on.
 * The caller sets model_path (model.path by default).
 */
void slm_engine_params_from_config(struct slm_engine_params *p,
				   const struct slm_config *cfg);

struct slm_engine {
	struct slm_model *model;
	struct slm_weights *weights;
	struct slm_vocab *vocab; /* NULL unless asked for */
	struct slm_threadpool *pool;
	struct slm_kv_pool *kv;
	struct slm_forward *fwd;
	uint32_t n_ctx;
	uint64_t load_ns; /* open + weights + vocabulary + set-up */
	/* slm_engine_feed's batch, [max_batch] each (one caller at a time) */
	uint32_t *feed_pos;
	struct slm_kv_seq **feed_seq;
	uint8_t *feed_want;
};

/*
 * Open, load and set up.  The kernels' tier must already be chosen
 * (slm_quant_configure).  Errors are the modules' (SLM_ENOTFOUND for a
 * missing file, SLM_EFORMAT / SLM_EUNSUPPORTED for a file slmd cannot
 * run, ...), the message naming the file.
 */
int slm_engine_open(const struct slm_engine_params *p, struct slm_engine **out,
		    struct slm_error *err) SLM_MUST_CHECK;

void slm_engine_close(struct slm_engine *e);

/*
 * A new empty sequence for up to n_ctx positions (slm_kv_seq_free with
 * e->kv when done).
 */
int slm_engine_seq_init(struct slm_engine *e,
			struct slm_kv_seq *seq) SLM_MUST_CHECK;

/*
 * Evaluate n tokens continuing seq, in chunks of at most `chunk` tokens
 * (0: the forward pass's maximum).  With all_logits, logits gets
 * [n][n_vocab] (every position); otherwise, if logits is not NULL, the
 * last token's [n_vocab].  Errors: the forward pass's, and SLM_EAGAIN
 * when the KV pool is out of blocks.
 */
int slm_engine_feed(struct slm_engine *e, struct slm_kv_seq *seq,
		    const int32_t *tokens, uint32_t n, uint32_t chunk,
		    bool all_logits, float *logits,
		    struct slm_error *err) SLM_MUST_CHECK;

#endif
