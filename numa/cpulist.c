#include "numa/cpulist.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Read a CPU number at *p; advances *p.  -1 when there is none, -2 when
 * it is above SLM_CPU_MAX. */
static int read_cpu(const char **p)
{
	if (!isdigit((unsigned char)**p))
		return -1;
	long v = 0;
	while (isdigit((unsigned char)**p)) {
		if (v <= SLM_CPU_MAX)
			v = v * 10 + (**p - '0');
		(*p)++;
	}
	return v > SLM_CPU_MAX ? -2 : (int)v;
}

static void skip_blanks(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

int slm_cpulist_parse(const char *text, int *cpus, int max, int *n,
		      struct slm_error *err)
{
	*n = 0;
	const char *p = text;
	int count = 0;
	skip_blanks(&p);
	if (!*p)
		return slm_error_set(err, SLM_EINVAL, "empty CPU list");
	for (;;) {
		skip_blanks(&p);
		const char *item = p;
		int lo = read_cpu(&p), hi = lo;
		skip_blanks(&p);
		if (lo >= 0 && *p == '-') {
			p++;
			skip_blanks(&p);
			hi = read_cpu(&p);
		}
		skip_blanks(&p);
		size_t len = strcspn(item, ",");
		if (lo == -2 || hi == -2)
			return slm_error_set(err, SLM_ERANGE,
					     "CPU list '%s': '%.*s' is above "
					     "the largest CPU number %d",
					     text, (int)len, item, SLM_CPU_MAX);
		if (lo < 0 || hi < 0 || (*p && *p != ','))
			return slm_error_set(err, SLM_EINVAL,
					     "CPU list '%s': '%.*s' is not a "
					     "CPU number or range like 2-5",
					     text, (int)len, item);
		if (hi < lo)
			return slm_error_set(err, SLM_EINVAL,
					     "CPU list '%s': range '%.*s' goes "
					     "down",
					     text, (int)len, item);
		for (int c = lo; c <= hi; c++) {
			if (count >= max)
				return slm_error_set(err, SLM_ERANGE,
						     "CPU list '%s': more than "
						     "%d CPUs",
						     text, max);
			cpus[count++] = c;
		}
		if (!*p)
			break;
		p++; /* ',' */
	}
	qsort(cpus, (size_t)count, sizeof(int), cmp_int);
	for (int i = 1; i < count; i++)
		if (cpus[i] == cpus[i - 1])
			return slm_error_set(err, SLM_EINVAL,
					     "CPU list '%s': CPU %d is named "
					     "twice",
					     text, cpus[i]);
	*n = count;
	return 0;
}

int slm_cpulist_format(const int *cpus, int n, char *buf, size_t size)
{
	if (size)
		buf[0] = '\0';
	if (n == 0)
		return snprintf(buf, size, "-");
	size_t used = 0;
	for (int i = 0; i < n;) {
		int j = i;
		while (j + 1 < n && cpus[j + 1] == cpus[j] + 1)
			j++;
		char item[32];
		if (j == i)
			snprintf(item, sizeof(item), "%s%d", i ? "," : "",
				 cpus[i]);
		else
			snprintf(item, sizeof(item), "%s%d-%d", i ? "," : "",
				 cpus[i], cpus[j]);
		size_t len = strlen(item);
		if (used + len < size)
			memcpy(buf + used, item, len + 1);
		else if (used < size)
			buf[used] = '\0';
		used += len;
		i = j + 1;
	}
	return (int)used;
}
