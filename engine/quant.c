/*
 * quant.c: the traits tables.  One table per tier, built once: scalar
 * entries first, then each wider tier the CPU can run overwrites the
 * kernels it has.  The active table is the widest under the cap.
 */
#include <pthread.h>

#include "common/err.h"
#include "common/log.h"
#include "engine/quant_int.h"

static struct slm_quant_traits tables[SLM_SIMD__COUNT][SLM_DTYPE__COUNT];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;
/* Index into tables (atomic, relaxed: set at start-up, read after). */
static enum slm_simd active = SLM_SIMD__COUNT;

static void build_tables(void)
{
	const struct slm_cpu_features *cpu = slm_cpu_features();
	for (int s = 0; s < SLM_SIMD__COUNT; s++) {
		struct slm_quant_traits *t = tables[s];
		slm_quant_tier_scalar(t);
		if (s >= SLM_SIMD_AVX2 && slm_cpu_has_simd(SLM_SIMD_AVX2))
			slm_quant_tier_avx2(t);
		if (s >= SLM_SIMD_AVX512 && slm_cpu_has_simd(SLM_SIMD_AVX512))
			slm_quant_tier_avx512(t, cpu);
	}
}

enum slm_simd slm_quant_set_simd(enum slm_simd cap)
{
	pthread_once(&tables_once, build_tables);
	enum slm_simd s = slm_simd_choose(cap);
	__atomic_store_n(&active, s, __ATOMIC_RELAXED);
	return s;
}

enum slm_simd slm_quant_simd(void)
{
	enum slm_simd s = __atomic_load_n(&active, __ATOMIC_RELAXED);
	if (s == SLM_SIMD__COUNT)
		s = slm_quant_set_simd(SLM_SIMD__COUNT);
	return s;
}

const struct slm_quant_traits *slm_quant_traits_at(enum slm_dtype type,
						   enum slm_simd simd)
{
	pthread_once(&tables_once, build_tables);
	if ((unsigned)type >= SLM_DTYPE__COUNT ||
	    (unsigned)simd >= SLM_SIMD__COUNT || !slm_cpu_has_simd(simd))
		return NULL;
	const struct slm_quant_traits *t = &tables[simd][type];
	return t->from_float ? t : NULL;
}

const struct slm_quant_traits *slm_quant_traits(enum slm_dtype type)
{
	return slm_quant_traits_at(type, slm_quant_simd());
}

int slm_quantize_act(enum slm_dtype type, const float *x, void *y, int64_t n)
{
	switch (type) {
	case SLM_DTYPE_Q8_0:
	case SLM_DTYPE_Q8_1:
	case SLM_DTYPE_Q8_K:
	case SLM_DTYPE_F16:
	case SLM_DTYPE_BF16:
	case SLM_DTYPE_F32:
		break;
	default:
		return SLM_EUNSUPPORTED;
	}
	const struct slm_quant_traits *t = slm_quant_traits(type);
	if (n < 0 || n % t->block)
		return SLM_EINVAL;
	t->from_float(x, y, n);
	return 0;
}

int slm_quant_configure(const char *simd, struct slm_error *err)
{
	enum slm_simd cap;
	if (!simd || slm_simd_parse(simd, &cap))
		return slm_error_set(err, SLM_ECONFIG,
				     "engine.simd: '%s' is not one of "
				     "auto|scalar|avx2|avx512",
				     simd ? simd : "");
	enum slm_simd got = slm_quant_set_simd(cap);
	const char *why = NULL;
	bool amx = slm_cpu_amx_probe(&why);
	SLM_INFO("kernels", "%s", slm_cpu_feature_string());
	SLM_INFO("kernels", "tier %s (asked %s, best %s); AMX %s: %s",
		 slm_simd_name(got), simd, slm_simd_name(slm_cpu_best_simd()),
		 amx ? "usable" : "not used", why);
	return 0;
}
