/*
 * forward_ref.h: the reference forward pass, the specification the fast
 * one (forward.h) is tested against.
 *
 * Plain scalar C in the spirit of llama2.c: every weight matrix is
 * dequantized once to f32 at creation (so it holds n_params floats: for
 * small models), one token is evaluated per call at the next position,
 * every dot product and sum is taken in double, RoPE angles are computed
 * in double from the formula (theta_i = p * freq_scale * base^(-2i/d) /
 * rope_freqs[i]), and the KV cache is a plain array per layer.  It shares
 * nothing with the fast path but the weight dequantizers and, with
 * act_quant, the activation quantizers of the scalar tier.
 *
 * Two options reproduce the roundings llama.cpp makes, so the reference
 * can be held to the fast path's tolerances:
 *
 *   act_quant  before each product, round the input vector through the
 *              activation format the weight type pairs with (quant.h:
 *              Q8_0, Q8_1, Q8_K, F16, BF16; F32 weights: none), as
 *              llama.cpp's CPU backend and the fast path do;
 *   kv_f16     keep K and V as F16 values, and round q and the attention
 *              probabilities to F16 (llama.cpp's attention over an F16
 *              KV cache).
 *
 * Without them it computes the model's exact math on the file's weights.
 */
#ifndef SLM_ENGINE_FORWARD_REF_H
#define SLM_ENGINE_FORWARD_REF_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/model.h"

struct slm_forward_ref;

struct slm_forward_ref_params {
	uint32_t n_ctx; /* positions at most */
	bool act_quant;
	bool kv_f16;
};

/* Dequantize the weights of a loaded replica w of model m.  Errors:
 * SLM_EINVAL, SLM_EUNSUPPORTED (a type without a dequantizer), SLM_ENOMEM. */
int slm_forward_ref_create(const struct slm_model *m,
			   const struct slm_tensors *w,
			   const struct slm_forward_ref_params *p,
			   struct slm_forward_ref **out,
			   struct slm_error *err) SLM_MUST_CHECK;

void slm_forward_ref_destroy(struct slm_forward_ref *r);

/* Forget every position (the next token is at position 0). */
void slm_forward_ref_reset(struct slm_forward_ref *r);

/* Positions evaluated so far. */
uint32_t slm_forward_ref_n_pos(const struct slm_forward_ref *r);

/*
 * Evaluate `token` at the next position; logits (may be NULL) gets
 * n_vocab floats.  Errors: SLM_EINVAL (token out of range), SLM_ERANGE
 * (the context is full).
 */
int slm_forward_ref_eval(struct slm_forward_ref *r, int32_t token,
			 float *logits, struct slm_error *err) SLM_MUST_CHECK;

#endif
