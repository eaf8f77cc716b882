/*
 * cpulist.h: lists of CPU numbers in the form Linux and its tools use
 * ("0-3,8,10-11", as in taskset -c, isolcpus= and
 * /sys/devices/system/cpu/online), parsed and printed.
 */
#ifndef SLM_NUMA_CPULIST_H
#define SLM_NUMA_CPULIST_H

#include <stddef.h>

#include "common/err.h"

/* Largest CPU number a list may name. */
#define SLM_CPU_MAX 4095

/*
 * Parse `text` ("0-3,8", blanks allowed around items) into cpus[max],
 * ascending; *n gets the count.  Refused with a message naming the item:
 * an empty list or item, a number above SLM_CPU_MAX, a descending range,
 * a CPU named twice, more than max CPUs.
 */
int slm_cpulist_parse(const char *text, int *cpus, int max, int *n,
		      struct slm_error *err) SLM_MUST_CHECK;

/*
 * Write cpus[n] (ascending) as "0-3,8" into buf; "-" when n is 0.
 * Returns the length the full text needs, like snprintf.
 */
int slm_cpulist_format(const int *cpus, int n, char *buf, size_t size);

#endif
