#include <stdio.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/quant.h"
#include "tests/unit/harness.h"

static void test_simd_names(void)
{
	enum slm_simd s;
	CU_ASSERT_EQUAL(slm_simd_parse("auto", &s), 0);
	CU_ASSERT_EQUAL(s, SLM_SIMD__COUNT);
	CU_ASSERT_EQUAL(slm_simd_parse("avx2", &s), 0);
	CU_ASSERT_EQUAL(s, SLM_SIMD_AVX2);
	CU_ASSERT_EQUAL(slm_simd_parse("scalar", &s), 0);
	CU_ASSERT_EQUAL(s, SLM_SIMD_SCALAR);
	CU_ASSERT_EQUAL(slm_simd_parse("avx512", &s), 0);
	CU_ASSERT_EQUAL(s, SLM_SIMD_AVX512);
	CU_ASSERT_EQUAL(slm_simd_parse("sse", &s), -1);
	CU_ASSERT_STRING_EQUAL(slm_simd_name(SLM_SIMD_AVX512), "avx512");
}

/* The cap narrows the choice and never widens it past the CPU. */
static void test_choose(void)
{
	enum slm_simd best = slm_cpu_best_simd();
	CU_ASSERT(slm_cpu_has_simd(best));
	CU_ASSERT(slm_cpu_has_simd(SLM_SIMD_SCALAR));
	CU_ASSERT_EQUAL(slm_simd_choose(SLM_SIMD__COUNT), best);
	CU_ASSERT_EQUAL(slm_simd_choose(SLM_SIMD_SCALAR), SLM_SIMD_SCALAR);
	for (int s = 0; s < SLM_SIMD__COUNT; s++) {
		enum slm_simd c = slm_simd_choose((enum slm_simd)s);
		CU_ASSERT((int)c <= s && c <= best);
		CU_ASSERT(slm_cpu_has_simd(c));
	}
	/* the quant tables follow the cap */
	enum slm_simd saved = slm_quant_simd();
	CU_ASSERT_EQUAL(slm_quant_set_simd(SLM_SIMD_SCALAR), SLM_SIMD_SCALAR);
	CU_ASSERT_EQUAL(slm_quant_traits(SLM_DTYPE_Q4_K)->simd,
			SLM_SIMD_SCALAR);
	slm_quant_set_simd(saved);
	CU_ASSERT_EQUAL(slm_quant_simd(), saved);
	/* the tiers imply each other, as the Makefile flags do */
	const struct slm_cpu_features *f = slm_cpu_features();
	if (slm_cpu_has_simd(SLM_SIMD_AVX512))
		CU_ASSERT(slm_cpu_has_simd(SLM_SIMD_AVX2) && f->avx512vnni &&
			  f->os_avx512);
	printf("\n    %s; best tier %s\n", slm_cpu_feature_string(),
	       slm_simd_name(best));
}

/*
 * The AMX decision is made by a trial in a child process; whatever it
 * decides, it says why, and a second call gives the same answer.
 */
static void test_amx_probe(void)
{
	const char *why = NULL, *why2 = NULL;
	bool ok = slm_cpu_amx_probe(&why);
	CU_ASSERT_PTR_NOT_NULL_FATAL(why);
	CU_ASSERT_EQUAL(slm_cpu_amx_probe(&why2), ok);
	CU_ASSERT_PTR_EQUAL(why, why2);
	printf("\n    AMX: %s (%s)\n", ok ? "usable" : "not usable", why);
	const struct slm_cpu_features *f = slm_cpu_features();
	if (!f->amx_tile || !f->amx_int8) {
		CU_ASSERT(!ok);
		slm_test_skip("AMX trial not run: %s", why);
	}
}

SLM_SUITE("cpu", NULL, NULL, {"simd_names", test_simd_names},
	  {"choose", test_choose}, {"amx_probe", test_amx_probe});
