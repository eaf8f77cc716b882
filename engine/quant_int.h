/*
 * quant_int.h: what the kernel tiers of the quant module share (only
 * engine/quant*.c include this).
 *
 * Each tier file fills, in a table indexed by type, the entries it has
 * kernels for; quant.c stacks the tiers the CPU can run, scalar first, so
 * a type a wide tier does not cover keeps the narrower kernel.
 */
#ifndef SLM_ENGINE_QUANT_INT_H
#define SLM_ENGINE_QUANT_INT_H

#include <string.h>

#include "engine/cpu.h"
#include "engine/quant.h"

void slm_quant_tier_scalar(struct slm_quant_traits *table);
void slm_quant_tier_avx2(struct slm_quant_traits *table);
void slm_quant_tier_avx512(struct slm_quant_traits *table,
			   const struct slm_cpu_features *cpu);

/* Round to nearest, ties to even, for |v| <= 2^22 (as ggml's nearest_int). */
static inline int slm_nearest_int(float v)
{
	float t = v + 12582912.f;
	uint32_t u;
	memcpy(&u, &t, sizeof(u));
	return (int)(u & 0x007fffff) - 0x00400000;
}

/* A tile function made of single dot products (for types or tiers without
 * a register-blocked kernel). */
#define SLM_GEMM_FROM_DOT(name, dot)                                        \
	static void name(int64_t n, const void *w, size_t w_stride, int nr, \
			 const void *a, size_t a_stride, int nc, float *s,  \
			 size_t s_stride)                                   \
	{                                                                   \
		for (int c = 0; c < nc; c++)                                \
			for (int r = 0; r < nr; r++)                        \
				s[(size_t)c * s_stride + (size_t)r] =       \
					dot(n,                              \
					    (const uint8_t *)w +            \
						    (size_t)r * w_stride,   \
					    (const uint8_t *)a +            \
						    (size_t)c * a_stride);  \
	}

/* Scale and min j of the 12 packed bytes of a Q4_K/Q5_K block. */
static inline void slm_k4_scale_min(int j, const uint8_t *q, uint8_t *d,
				    uint8_t *m)
{
	if (j < 4) {
		*d = q[j] & 63;
		*m = q[j + 4] & 63;
	} else {
		*d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
		*m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
	}
}

/* Signed scale j (-32..31) of the 12 packed bytes of a Q3_K block. */
static inline int slm_q3k_scale(const uint8_t *s, int j)
{
	int lo = j < 8 ? s[j] & 0xF : s[j - 8] >> 4;
	int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
	return (lo | (hi << 4)) - 32;
}

#endif
