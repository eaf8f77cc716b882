/*
 * cpu.h: what the processor can run, decided once.
 *
 * The kernels come in tiers (scalar, AVX2, AVX-512); this module reads
 * CPUID and XGETBV (the OS must save the wide registers for a tier to be
 * usable) and names the widest tier the CPU and OS support.  A tier is
 * usable only when every instruction set its files are compiled with is
 * present (see the Makefile: ISA_AVX2, ISA_AVX512), so a tier's code can
 * never meet an instruction the CPU lacks.
 *
 *   scalar  x86-64-v2 baseline, the reference kernels
 *   avx2    AVX2 FMA F16C BMI1 BMI2 LZCNT POPCNT
 *   avx512  the above + AVX-512 F BW VL DQ CD VNNI
 *           (BF16 and VBMI are extra features a kernel may check)
 *
 * AMX is different: CPUID may advertise it where it does not run (a
 * hypervisor that does not save tile state, a kernel without XTILEDATA
 * permission), and a wrong guess kills the process.  slm_cpu_amx_probe()
 * therefore asks the kernel for permission and runs a tile multiply in a
 * forked child before anyone uses AMX.
 */
#ifndef SLM_ENGINE_CPU_H
#define SLM_ENGINE_CPU_H

#include <stdbool.h>

enum slm_simd {
	SLM_SIMD_SCALAR = 0,
	SLM_SIMD_AVX2 = 1,
	SLM_SIMD_AVX512 = 2,
	SLM_SIMD__COUNT
};

struct slm_cpu_features {
	bool sse42, popcnt, avx, avx2, fma, f16c, bmi1, bmi2, lzcnt;
	bool avx512f, avx512bw, avx512vl, avx512dq, avx512cd, avx512vnni;
	bool avx512bf16, avx512vbmi;
	bool os_avx;			   /* XCR0 saves YMM state */
	bool os_avx512;			   /* XCR0 saves opmask and ZMM state */
	bool amx_tile, amx_int8, amx_bf16; /* CPUID only: see probe */
	bool os_amx;			   /* XCR0 saves tile state */
	char vendor[13];
	unsigned family, model;
};

/* The features of this CPU (read once, then cached; thread safe). */
const struct slm_cpu_features *slm_cpu_features(void);

/* The widest tier this CPU and OS can run. */
enum slm_simd slm_cpu_best_simd(void);

/* True when the CPU can run tier `simd`. */
bool slm_cpu_has_simd(enum slm_simd simd);

/* "scalar", "avx2", "avx512". */
const char *slm_simd_name(enum slm_simd simd);

/*
 * Parse "auto|scalar|avx2|avx512" (engine.simd, --simd): *out is the tier
 * to cap at (auto = SLM_SIMD__COUNT, i.e. no cap).  Returns 0 or -1.
 */
int slm_simd_parse(const char *name, enum slm_simd *out);

/* min(best, cap): the tier to use under a cap from slm_simd_parse. */
enum slm_simd slm_simd_choose(enum slm_simd cap);

/* "avx2 fma f16c avx512f ... " of this CPU, for logs (static storage). */
const char *slm_cpu_feature_string(void);

/*
 * Whether AMX int8 tiles really run here: CPUID and XCR0 say so, the
 * kernel grants XTILEDATA permission (arch_prctl), and a forked child
 * configures tiles and computes one int8 tile product correctly.  The
 * result is cached after the first call; `why` (may be NULL) gets a
 * static sentence saying what decided it.  When true, the calling
 * process holds the permission too.
 */
bool slm_cpu_amx_probe(const char **why);

#endif
