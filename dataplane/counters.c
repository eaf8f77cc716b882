/* counters.c: names and arithmetic of the dataplane counters. */
#include "dataplane/counters.h"

#include <string.h>

static const char *const names[] = {
#define DP_COUNTER_NAME(name, help) #name,
	DP_COUNTERS(DP_COUNTER_NAME)
#undef DP_COUNTER_NAME
};

static const char *const helps[] = {
#define DP_COUNTER_HELP(name, help) help,
	DP_COUNTERS(DP_COUNTER_HELP)
#undef DP_COUNTER_HELP
};

_Static_assert(SLM_ARRAY_LEN(names) == DP_COUNTERS_N &&
		       sizeof(struct dp_counters) >=
			       DP_COUNTERS_N * sizeof(uint64_t),
	       "struct dp_counters holds the listed counters in order");

const char *dp_counter_name(unsigned i)
{
	return i < DP_COUNTERS_N ? names[i] : "?";
}

const char *dp_counter_help(unsigned i)
{
	return i < DP_COUNTERS_N ? helps[i] : "?";
}

void dp_counters_read(struct dp_counters *dst, const struct dp_counters *src)
{
	const uint64_t *s = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;
	for (size_t i = 0; i < DP_COUNTERS_N; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

void dp_counters_add(struct dp_counters *dst, const struct dp_counters *src)
{
	const uint64_t *s = (const uint64_t *)src;
	uint64_t *d = (uint64_t *)dst;
	for (size_t i = 0; i < DP_COUNTERS_N; i++)
		d[i] += s[i];
}

uint64_t dp_counters_drops(const struct dp_counters *c)
{
	const uint64_t *v = (const uint64_t *)c;
	uint64_t sum = 0;
	for (size_t i = 0; i < DP_COUNTERS_N; i++)
		if (!strncmp(names[i], "drop_", 5) ||
		    !strncmp(names[i], "refused_", 8))
			sum += v[i];
	return sum;
}

int dp_counters_format(const struct dp_counters *c, char *buf, size_t size)
{
	const uint64_t *v = (const uint64_t *)c;
	size_t len = 0;
	if (size)
		buf[0] = '\0';
	for (size_t i = 0; i < DP_COUNTERS_N; i++) {
		if (!v[i])
			continue;
		int n = snprintf(buf + (len < size ? len : size),
				 len < size ? size - len : 0, "%s%s=%llu",
				 len ? " " : "", names[i],
				 (unsigned long long)v[i]);
		if (n > 0)
			len += (size_t)n;
	}
	return (int)len;
}
