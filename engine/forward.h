/*
 * forward.h: the transformer forward pass of llama and qwen2 models,
 * computing what llama.cpp computes on the same file.
 *
 * One call evaluates a batch of tokens that may belong to several
 * sequences: each token has a sequence (its KV block table, cache/kv.h)
 * and a position, and the call returns the logits of the tokens asked
 * for.  Prefill is a batch of many tokens of one sequence; decode is one
 * token of each of many sequences; any mix works.  Per layer:
 *
 *     h = RMSNorm(x) * attn_norm
 *     q, k, v = Wq h (+ bq), Wk h (+ bk), Wv h (+ bv)         (bias: qwen2)
 *     q, k = RoPE(q, k, position)    llama: pairs (2i, 2i+1); qwen2 (NEOX):
 *                                    pairs (i, i + d/2); angle p * base^(-2i/d)
 *                                    / rope_freqs[i] * freq_scale, computed as
 *                                    ggml's rope cache does (float powers)
 *     K, V of the token -> the cache at (sequence, position)
 *     a = softmax(q K^T / sqrt(d) + causal mask) V     query head h reads KV
 *                                    head h / (n_head / n_head_kv), over
 *                                    positions 0..p of its own sequence
 *     x = x + Wo a
 *     h = RMSNorm(x) * ffn_norm
 *     x = x + Wdown (silu(Wgate h) * Wup h)
 *
 * then logits = Wout (RMSNorm(x) * output_norm), Wout = output.weight or
 * the tied token_embd.  Matrix products quantize the activations to the
 * format llama.cpp pairs with each weight type and use integer dot
 * products (engine/matmul.h); attention follows llama.cpp's arithmetic
 * for the KV type (forward_int.h).  Tokens whose logits are not asked for
 * skip the last layer's projections and FFN, as in llama.cpp.
 *
 * All work runs on the thread pool given at creation, split (ith, nth)
 * with barriers between steps; scratch is allocated at creation for
 * max_tokens tokens and n_ctx positions, so a call allocates nothing.
 * A forward object serves one caller at a time (it owns its scratch);
 * the model, weights and KV pool may be shared with other forward objects
 * that run at other times.  The kernels' tier (engine/quant.h) must not
 * change between creation and use.
 */
#ifndef SLM_ENGINE_FORWARD_H
#define SLM_ENGINE_FORWARD_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/kv.h"
#include "common/err.h"
#include "engine/model.h"
#include "engine/threadpool.h"

struct slm_forward;

struct slm_forward_params {
	uint32_t max_tokens; /* tokens per call at most (e.g. 512) */
	uint32_t n_ctx;	     /* positions of a sequence at most */
};

/*
 * A batch.  Token i is tokens[i] at position pos[i] of sequence seq[i].
 * A sequence's tokens must come in order and continue it: the first one
 * at seq->n_pos, the next at n_pos + 1, ... (the call advances n_pos);
 * its block table must already cover those positions
 * (slm_kv_seq_reserve).  Tokens of different sequences may interleave.
 */
struct slm_batch {
	uint32_t n_tokens;
	const int32_t *tokens;	       /* [n_tokens] ids < n_vocab */
	const uint32_t *pos;	       /* [n_tokens] */
	struct slm_kv_seq *const *seq; /* [n_tokens] */
	/* [n_tokens]: nonzero = return this token's logits; NULL = the
	 * last token's only */
	const uint8_t *want;
};

/*
 * Prepare a forward pass of model m with weights w (a loaded replica,
 * engine/weights.h) over KV pool kv on thread pool `pool` (not owned;
 * all three must outlive the forward object).  The pool's geometry must
 * match the model (layers, KV heads, head_dim).  Errors: SLM_EINVAL
 * (parameters, a pool of another geometry), SLM_EUNSUPPORTED (a weight
 * the kernels cannot multiply), SLM_ENOMEM.
 */
int slm_forward_create(const struct slm_model *m, const struct slm_tensors *w,
		       struct slm_kv_pool *kv, struct slm_threadpool *pool,
		       const struct slm_forward_params *p,
		       struct slm_forward **out,
		       struct slm_error *err) SLM_MUST_CHECK;

void slm_forward_destroy(struct slm_forward *f);

/*
 * Evaluate a batch.  logits receives one row of n_vocab floats per token
 * asked for, in batch order ([n_asked][n_vocab]); it may be NULL when no
 * logits are asked for (want all zero).  Errors (nothing is computed and
 * no sequence changes): SLM_EINVAL (empty or oversized batch, a token id
 * out of range, a position that does not continue its sequence, no
 * logits buffer), SLM_ERANGE (a position at or beyond n_ctx or beyond
 * what the block table covers), SLM_ESTATE (the kernels' tier changed
 * since creation).
 */
int slm_forward_eval(struct slm_forward *f, const struct slm_batch *b,
		     float *logits, struct slm_error *err) SLM_MUST_CHECK;

/*
 * Where a forward pass spends its time, for benchmarks: with profiling on,
 * every thread adds the time of each step to its own counters (a TSC read
 * per step); waiting at the barriers that end steps is counted apart.
 */
enum slm_forward_step {
	SLM_FWD_EMBED,	 /* embedding rows, RoPE angles */
	SLM_FWD_NORM,	 /* residuals, norms, quantizing activations */
	SLM_FWD_QKV,	 /* Q, K, V products */
	SLM_FWD_ROPE,	 /* biases, RoPE, K and V into the cache */
	SLM_FWD_ATTN,	 /* attention */
	SLM_FWD_WO,	 /* output projection */
	SLM_FWD_GATE_UP, /* gate and up products */
	SLM_FWD_SWIGLU,	 /* SwiGLU and quantizing it */
	SLM_FWD_DOWN,	 /* down product */
	SLM_FWD_LOGITS,	 /* final norm and the output matrix */
	SLM_FWD_WAIT,	 /* waiting at barriers */
	SLM_FWD_STEP__COUNT
};

/* "attention", ... */
const char *slm_forward_step_name(enum slm_forward_step s);

struct slm_forward_profile {
	uint64_t calls, tokens;
	double ns[SLM_FWD_STEP__COUNT]; /* summed over the threads */
	int n_threads;
};

/* Turn profiling on or off; either clears the counters. */
void slm_forward_profile_enable(struct slm_forward *f, bool on);

/* The counters since profiling was turned on. */
void slm_forward_profile_get(const struct slm_forward *f,
			     struct slm_forward_profile *out);

uint32_t slm_forward_n_vocab(const struct slm_forward *f);
uint32_t slm_forward_max_tokens(const struct slm_forward *f);
uint32_t slm_forward_n_ctx(const struct slm_forward *f);

/* Bytes of scratch the forward object holds. */
uint64_t slm_forward_scratch_bytes(const struct slm_forward *f);

/*
 * Bytes of weights one decode step reads: every matrix of every layer,
 * the output matrix, one embedding row, the norms (and biases, rope
 * factors).  Decode speed is bounded by memory bandwidth / this.
 */
uint64_t slm_forward_weight_bytes_per_token(const struct slm_model *m,
					    const struct slm_tensors *w);

#endif
