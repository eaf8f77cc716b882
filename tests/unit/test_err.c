#include <string.h>

#include "common/err.h"
#include "tests/unit/harness.h"

static void test_every_code_has_distinct_text(void)
{
	for (int a = 0; a >= SLM_ERR__LAST; a--) {
		CU_ASSERT_STRING_NOT_EQUAL(slm_strerror(a), "unknown error");
		CU_ASSERT_STRING_NOT_EQUAL(slm_errname(a), "EUNKNOWN");
		for (int b = a - 1; b >= SLM_ERR__LAST; b--) {
			CU_ASSERT_STRING_NOT_EQUAL(slm_strerror(a),
						   slm_strerror(b));
			CU_ASSERT_STRING_NOT_EQUAL(slm_errname(a),
						   slm_errname(b));
		}
	}
}

static void test_unknown_codes(void)
{
	CU_ASSERT_STRING_EQUAL(slm_strerror(1), "unknown error");
	CU_ASSERT_STRING_EQUAL(slm_strerror(SLM_ERR__LAST - 1),
			       "unknown error");
	CU_ASSERT_STRING_EQUAL(slm_errname(12345), "EUNKNOWN");
	CU_ASSERT_STRING_EQUAL(slm_strerror(SLM_EFORMAT), "malformed data");
	CU_ASSERT_STRING_EQUAL(slm_errname(SLM_ENOMEM), "ENOMEM");
}

static void test_first_error_wins(void)
{
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(
		slm_error_set(&err, SLM_EFORMAT, "bad %s at %d", "magic", 0),
		SLM_EFORMAT);
	CU_ASSERT_EQUAL(slm_error_set(&err, SLM_EIO, "later"), SLM_EIO);
	CU_ASSERT_EQUAL(err.code, SLM_EFORMAT);
	CU_ASSERT_STRING_EQUAL(err.msg, "bad magic at 0");
	slm_error_prefix(&err, "%s: ", "m.gguf");
	CU_ASSERT_STRING_EQUAL(err.msg, "m.gguf: bad magic at 0");
	/* NULL is allowed and only returns the code. */
	CU_ASSERT_EQUAL(slm_error_set(NULL, SLM_EINVAL, "x"), SLM_EINVAL);
}

static void test_errno_suffix(void)
{
	struct slm_error err = {0};
	slm_error_errno(&err, SLM_ESYS, 2, "open %s", "x");
	CU_ASSERT_STRING_EQUAL(err.msg, "open x: No such file or directory");
}

static void test_long_messages_truncate(void)
{
	struct slm_error err = {0};
	char big[2000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	slm_error_set(&err, SLM_EINVAL, "%s", big);
	CU_ASSERT_EQUAL(strlen(err.msg), SLM_ERROR_MSG_MAX - 1);
	slm_error_prefix(&err, "prefix: ");
	CU_ASSERT_EQUAL(strlen(err.msg), SLM_ERROR_MSG_MAX - 1);
	CU_ASSERT_EQUAL(strncmp(err.msg, "prefix: aaa", 11), 0);
}

SLM_SUITE("err", NULL, NULL,
	  {"every code has distinct text", test_every_code_has_distinct_text},
	  {"unknown codes", test_unknown_codes},
	  {"first error wins", test_first_error_wins},
	  {"errno suffix", test_errno_suffix},
	  {"long messages truncate", test_long_messages_truncate})
