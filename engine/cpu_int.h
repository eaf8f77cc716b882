/*
 * cpu_int.h: what only the cpu module's files share.
 */
#ifndef SLM_ENGINE_CPU_INT_H
#define SLM_ENGINE_CPU_INT_H

/*
 * One signed int8 tile product (16x64 by 64x16 into 16x16 int32) on known
 * data, compared with the plain product.  Returns 0 when every value is
 * right.  Built with the AMX flags (cpu_amx.c): call it only after CPUID,
 * XCR0 and arch_prctl said yes, and only in a process that may die.
 */
int slm_cpu_amx_trial(void);

#endif
