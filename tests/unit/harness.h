/*
 * harness.h: how a CUnit suite joins the one unit-test runner.
 *
 * Each tests/unit/test_<module>.c ends with
 *     SLM_SUITE("module", setup, teardown, { "case", fn }, ...);
 * and the runner finds it through a constructor, so adding a suite never
 * touches a shared file.  A test that cannot run here (an ISA this CPU
 * lacks, no root) calls slm_test_skip("why") and returns: it is counted as
 * skipped, with the reason printed in the summary, never as passed.
 */
#ifndef SLM_TESTS_HARNESS_H
#define SLM_TESTS_HARNESS_H

#include <CUnit/CUnit.h>
#include <stdint.h>
#include <stdio.h>

struct slm_test_suite {
	const char *name;
	CU_InitializeFunc setup;
	CU_CleanupFunc teardown;
	CU_TestInfo *cases;
};

void slm_test_register(const struct slm_test_suite *suite);

#define SLM_SUITE(name_, setup_, teardown_, ...)                           \
	static CU_TestInfo slm_suite_cases_[] = {__VA_ARGS__,              \
						 CU_TEST_INFO_NULL};       \
	static const struct slm_test_suite slm_suite_ = {                  \
		name_, setup_, teardown_, slm_suite_cases_};               \
	__attribute__((constructor)) static void slm_suite_register_(void) \
	{                                                                  \
		slm_test_register(&slm_suite_);                            \
	}

/* Mark the running test skipped, with the reason shown in the summary. */
void slm_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Path of a file under tests/data (SLM_TEST_DATA overrides the folder). */
const char *slm_test_data(const char *name);

/*
 * Path of a generated test input under the build's testdata folder
 * (SLM_TESTDATA, default build/testdata): unpacked vocabularies in vocab/,
 * regenerated golden models in models/.
 */
const char *slm_test_generated(const char *name);

/* Path of the build folder (SLM_BUILD, default "build"). */
const char *slm_test_build(void);

/* A fresh temporary directory for this process, removed at exit. */
const char *slm_test_tmpdir(void);

/* A deterministic pseudo-random generator for tests (xorshift64*). */
struct slm_test_rng {
	uint64_t state;
};
static inline uint64_t slm_test_rand(struct slm_test_rng *r)
{
	r->state ^= r->state >> 12;
	r->state ^= r->state << 25;
	r->state ^= r->state >> 27;
	return r->state * 2685821657736338717ull;
}
/* Uniform in [0, 1). */
static inline double slm_test_uniform(struct slm_test_rng *r)
{
	return (double)(slm_test_rand(r) >> 11) * (1.0 / 9007199254740992.0);
}
/* Standard normal (Box-Muller). */
double slm_test_normal(struct slm_test_rng *r);

/* Read a whole file; NULL on error.  Caller frees. */
void *slm_test_read_file(const char *path, size_t *size);

#endif
