/*
 * forward_int.h: what the forward pass shares with its per-tier kernels
 * (only engine/forward*.c include this).
 *
 * The matrix products are the kernels module's (engine/matmul.h); the
 * forward pass's own arithmetic that needs vectors lives here, one table
 * per tier (forward_scalar.c is the specification, forward_avx2.c and
 * forward_avx512.c the wide versions): attention over the paged KV cache,
 * SwiGLU, and rounding to half precision.
 */
#ifndef SLM_ENGINE_FORWARD_INT_H
#define SLM_ENGINE_FORWARD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/kv.h"
#include "engine/cpu.h"

/* Query rows one attention call takes at most. */
#define SLM_ATTN_MAX_ROWS 16

/*
 * One attention tile: n_rows query vectors that read the same KV head of
 * the same sequence.  Row r attends to positions [0, n_keys[r]) of the
 * sequence (its causal mask), n_keys[r] <= max_keys <= the positions the
 * sequence holds.  For each row:
 *
 *     s[i] = dot(q_r, K[i]) * scale                 i < n_keys[r]
 *     p    = softmax(s)  (max subtracted, exp, sum in double, times 1/sum)
 *     out_r = sum_i p[i] * V[i]                     f32 accumulation
 *
 * which is llama.cpp's attention without flash attention: with an F16
 * cache it multiplies K with q rounded to F16 and V with p rounded to
 * F16 (both operands of its F16 products are F16), so the F16 kernel
 * rounds q and p the same way; the F32 kernel rounds nothing.  The
 * Q8_0 kernel (scalar in every tier) dequantizes each key and value row
 * as it reads it and rounds nothing else: its error is the quantization
 * of K and V alone (llama.cpp needs flash attention for a quantized V
 * cache and computes differently; no parity is claimed for Q8_0).
 */
struct slm_attn_args {
	uint32_t head_dim;
	uint32_t n_rows;	/* 1..SLM_ATTN_MAX_ROWS */
	float *q;		/* [n_rows][head_dim]; F16 rounds it in place */
	const uint32_t *n_keys; /* [n_rows] */
	uint32_t max_keys;	/* max of n_keys, >= 1 */
	float scale;		/* 1 / sqrt(head_dim) */
	const struct slm_kv_pool *kv;
	const uint32_t *blocks; /* the sequence's block table */
	uint32_t layer, head;	/* KV head */
	float *s;		/* scratch [n_rows][s_stride] */
	size_t s_stride;	/* >= max_keys rounded up to 16 */
	float *const *out;	/* [n_rows] rows of head_dim */
};

typedef void (*slm_attn_fn)(const struct slm_attn_args *a);

struct slm_fwd_kernels {
	/* indexed by enum slm_kv_type; the wide tiers need head_dim % 16 ==
	 * 0 and head_dim <= 256 (else the forward pass uses the scalar
	 * kernel) */
	slm_attn_fn attn[SLM_KV_TYPE__COUNT];
	/* g[i] = silu(g[i]) * u[i], silu(x) = x / (1 + e^-x) */
	void (*swiglu)(int64_t n, float *g, const float *u);
	/* round to IEEE half, nearest even */
	void (*to_f16)(int64_t n, const float *x, uint16_t *y);
	enum slm_simd simd;
};

void slm_fwd_kernels_scalar(struct slm_fwd_kernels *k);
void slm_fwd_kernels_avx2(struct slm_fwd_kernels *k);
void slm_fwd_kernels_avx512(struct slm_fwd_kernels *k);

/* The table of a tier the CPU has (each entry from the widest tier at or
 * below simd that has it). */
void slm_fwd_kernels_get(enum slm_simd simd, struct slm_fwd_kernels *k);

#endif
