#include "common/clock.h"

#include <errno.h>
#include <pthread.h>

static double cycles_per_ns;
static pthread_once_t calibrate_once = PTHREAD_ONCE_INIT;

static void calibrate(void)
{
	/* Best of three short windows: a preemption only makes one longer. */
	double best = 0;
	for (int round = 0; round < 3; round++) {
		uint64_t t0 = slm_now_ns(), c0 = slm_cycles();
		slm_sleep_ns(5 * 1000 * 1000);
		uint64_t t1 = slm_now_ns(), c1 = slm_cycles();
		double rate = (double)(c1 - c0) / (double)(t1 - t0);
		if (round == 0 || rate < best)
			best = rate;
	}
	cycles_per_ns = best > 0 ? best : 1.0;
}

void slm_clock_calibrate(void)
{
	pthread_once(&calibrate_once, calibrate);
}

double slm_cycles_per_ns(void)
{
	slm_clock_calibrate();
	return cycles_per_ns;
}

void slm_sleep_ns(uint64_t ns)
{
	struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ull),
			      .tv_nsec = (long)(ns % 1000000000ull)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}
