/*
 * quant_avx512.c: the AVX-512 tier (F, BW, VL, DQ, CD, VNNI).
 */
#include <immintrin.h>

#include "engine/quant_int.h"

void slm_quant_tier_avx512(struct slm_quant_traits *t,
			   const struct slm_cpu_features *cpu)
{
	(void)t;
	(void)cpu;
}
