#include <string.h>

#include "numa/cpulist.h"
#include "tests/unit/harness.h"

static void expect_list(const char *text, const int *want, int n_want)
{
	int cpus[64], n = -1;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_cpulist_parse(text, cpus, 64, &n, &err), 0);
	CU_ASSERT_EQUAL(n, n_want);
	if (n == n_want)
		CU_ASSERT(memcmp(cpus, want, sizeof(int) * (size_t)n) == 0);
}

static void expect_error(const char *text, const char *fragment)
{
	int cpus[64], n = -1;
	struct slm_error err = {0};
	CU_ASSERT(slm_cpulist_parse(text, cpus, 64, &n, &err) < 0);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, fragment));
	if (!strstr(err.msg, fragment))
		printf("\n    '%s': message '%s' lacks '%s'\n", text, err.msg,
		       fragment);
}

static void test_parse(void)
{
	expect_list("0", (int[]){0}, 1);
	expect_list("0-3", (int[]){0, 1, 2, 3}, 4);
	expect_list("8,0-2, 5", (int[]){0, 1, 2, 5, 8}, 5);
	expect_list(" 3 - 3 ", (int[]){3}, 1);
	expect_list("4095", (int[]){4095}, 1);
}

static void test_parse_errors(void)
{
	expect_error("", "empty");
	expect_error("  ", "empty");
	expect_error("3-1", "goes down");
	expect_error("1,1", "CPU 1 is named twice");
	expect_error("0-2,2", "CPU 2 is named twice");
	expect_error("a", "'a' is not a CPU");
	expect_error("1-", "not a CPU");
	expect_error("1,", "not a CPU");
	expect_error(",1", "not a CPU");
	expect_error("1;2", "not a CPU");
	expect_error("4096", "above the largest");
	expect_error("99999999999999999999", "above the largest");
	expect_error("0-100", "more than 64 CPUs");
}

static void test_format(void)
{
	char buf[64];
	CU_ASSERT_EQUAL(slm_cpulist_format(NULL, 0, buf, sizeof(buf)), 1);
	CU_ASSERT_STRING_EQUAL(buf, "-");
	slm_cpulist_format((int[]){0, 1, 2, 3, 8, 10, 11}, 7, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "0-3,8,10-11");
	slm_cpulist_format((int[]){5}, 1, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "5");
	/* Truncation keeps whole items and reports the full length. */
	int n = slm_cpulist_format((int[]){0, 2, 4, 6, 8, 10}, 6, buf, 7);
	CU_ASSERT_EQUAL(n, 12);
	CU_ASSERT_STRING_EQUAL(buf, "0,2,4");
	/* Round trip. */
	int cpus[64], k;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_cpulist_parse("0-3,8,10-11", cpus, 64, &k, &err),
			0);
	slm_cpulist_format(cpus, k, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "0-3,8,10-11");
}

SLM_SUITE("cpulist", NULL, NULL, {"parse", test_parse},
	  {"parse_errors", test_parse_errors}, {"format", test_format})
