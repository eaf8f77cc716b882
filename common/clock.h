/*
 * clock.h: time for measurement.
 *
 * slm_now_ns() is CLOCK_MONOTONIC in nanoseconds (about 20 ns a call).
 * slm_cycles() reads the TSC (a few ns) for stage timing on hot paths;
 * slm_cycles_to_ns() converts a cycle difference with the rate measured
 * once by slm_clock_calibrate() (called lazily on first conversion).  Where
 * the TSC is not invariant the calibration still holds on one machine but
 * should not be compared across them.
 */
#ifndef SLM_COMMON_CLOCK_H
#define SLM_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t slm_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t slm_cycles(void)
{
	return __builtin_ia32_rdtsc();
}

/* Measure the TSC rate against the monotonic clock (about 20 ms, once). */
void slm_clock_calibrate(void);

/* TSC ticks per nanosecond, calibrating first if needed. */
double slm_cycles_per_ns(void);

static inline uint64_t slm_cycles_to_ns(uint64_t cycles)
{
	return (uint64_t)((double)cycles / slm_cycles_per_ns());
}

/* Sleep for a number of nanoseconds (restarts after signals). */
void slm_sleep_ns(uint64_t ns);

#endif
