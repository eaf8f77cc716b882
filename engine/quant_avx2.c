/*
 * quant_avx2.c: the AVX2 tier (AVX2, FMA, F16C).
 */
#include <immintrin.h>

#include "engine/quant_int.h"

void slm_quant_tier_avx2(struct slm_quant_traits *t)
{
	(void)t;
}
