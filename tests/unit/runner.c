/*
 * runner.c: the one CUnit runner.  Runs every registered suite (or those
 * named on the command line), prints CUnit's run summary and the skipped
 * tests with their reasons, and writes "passed failed skipped" to the file
 * named by SLM_TEST_COUNTS for tests/run.sh.  The exit status comes from
 * CU_get_number_of_failures(): CU_basic_run_tests returns 0 even when
 * assertions fail.
 */
#include "tests/unit/harness.h"

#include "common/log.h"

#include <CUnit/Basic.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SUITES 128
#define MAX_SKIPS 512

static const struct slm_test_suite *suites[MAX_SUITES];
static int n_suites;

struct skip {
	char *test;
	char *reason;
};
static struct skip skips[MAX_SKIPS];
static int n_skips;

void slm_test_register(const struct slm_test_suite *suite)
{
	if (n_suites < MAX_SUITES)
		suites[n_suites++] = suite;
}

void slm_test_skip(const char *fmt, ...)
{
	if (n_skips >= MAX_SKIPS)
		return;
	char reason[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	CU_pSuite suite = CU_get_current_suite();
	CU_pTest test = CU_get_current_test();
	char name[256];
	snprintf(name, sizeof(name), "%s/%s", suite ? suite->pName : "?",
		 test ? test->pName : "?");
	skips[n_skips].test = strdup(name);
	skips[n_skips].reason = strdup(reason);
	n_skips++;
	printf("\n    skipped: %s\n", reason);
}

const char *slm_test_data(const char *name)
{
	static __thread char path[4096];
	const char *dir = getenv("SLM_TEST_DATA");
	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/data", name);
	return path;
}

const char *slm_test_generated(const char *name)
{
	static __thread char path[4096];
	const char *dir = getenv("SLM_TESTDATA");
	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "build/testdata",
		 name);
	return path;
}

const char *slm_test_build(void)
{
	const char *b = getenv("SLM_BUILD");
	return b ? b : "build";
}

static char tmpdir[256];

static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			char child[4096];
			snprintf(child, sizeof(child), "%s/%s", path,
				 e->d_name);
			struct stat st;
			if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
				remove_tree(child);
			else
				unlink(child);
		}
		closedir(d);
	}
	rmdir(path);
}

static void remove_tmpdir(void)
{
	if (tmpdir[0])
		remove_tree(tmpdir);
}

const char *slm_test_tmpdir(void)
{
	if (!tmpdir[0]) {
		const char *base = getenv("TMPDIR");
		snprintf(tmpdir, sizeof(tmpdir), "%s/slm-unit-XXXXXX",
			 base ? base : "/tmp");
		if (!mkdtemp(tmpdir)) {
			perror("mkdtemp");
			exit(2);
		}
		atexit(remove_tmpdir);
	}
	return tmpdir;
}

double slm_test_normal(struct slm_test_rng *r)
{
	double u1 = slm_test_uniform(r), u2 = slm_test_uniform(r);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void *slm_test_read_file(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0) {
		fclose(f);
		return NULL;
	}
	long len = ftell(f);
	rewind(f);
	char *buf = len >= 0 ? malloc((size_t)len + 1) : NULL;
	if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	if (buf) {
		buf[len] = '\0';
		if (size)
			*size = (size_t)len;
	}
	return buf;
}

static int suite_cmp(const void *a, const void *b)
{
	const struct slm_test_suite *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static int selected(const char *name, int argc, char **argv)
{
	if (argc <= 1)
		return 1;
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], name) == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	/* Library logs would bury CUnit's lines; SLM_TEST_LOG_LEVEL=info (or
	 * debug) brings them back when a test needs explaining. */
	const char *level = getenv("SLM_TEST_LOG_LEVEL");
	int lv = slm_log_level_parse(level ? level : "warn");
	slm_log_set_level(lv < 0 ? SLM_LOG_WARN : (enum slm_log_level)lv);
	if (CU_initialize_registry() != CUE_SUCCESS) {
		fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
		return 2;
	}
	qsort(suites, (size_t)n_suites, sizeof(suites[0]), suite_cmp);
	for (int i = 0; i < n_suites; i++) {
		const struct slm_test_suite *s = suites[i];
		if (!selected(s->name, argc, argv))
			continue;
		CU_pSuite suite = CU_add_suite(s->name, s->setup, s->teardown);
		for (CU_TestInfo *c = s->cases; suite && c->pName; c++)
			CU_add_test(suite, c->pName, c->pTestFunc);
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned run = CU_get_number_of_tests_run();
	unsigned failed = CU_get_number_of_tests_failed();
	unsigned failures = CU_get_number_of_failures();
	unsigned suites_failed = CU_get_number_of_suites_failed();

	if (n_skips) {
		printf("\nSkipped tests:\n");
		for (int i = 0; i < n_skips; i++)
			printf("  %s: %s\n", skips[i].test, skips[i].reason);
	}
	/* A skipped test that also failed counts as failed only. */
	unsigned skipped = (unsigned)n_skips;
	if (skipped > run - failed)
		skipped = run - failed;
	unsigned passed = run - failed - skipped;
	const char *counts = getenv("SLM_TEST_COUNTS");
	if (counts) {
		FILE *f = fopen(counts, "w");
		if (f) {
			fprintf(f, "%u %u %u\n", passed, failed + suites_failed,
				skipped);
			fclose(f);
		}
	}
	printf("\nunit: %u passed, %u failed, %u skipped\n", passed,
	       failed + suites_failed, skipped);
	for (int i = 0; i < n_skips; i++) {
		free(skips[i].test);
		free(skips[i].reason);
	}
	CU_cleanup_registry();
	return (failures || suites_failed) ? 1 : 0;
}
