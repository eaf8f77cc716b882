#include <stdlib.h>
#include <string.h>

#include "common/utf8.h"
#include "tests/unit/harness.h"

#define FFFD SLM_UTF8_REPLACEMENT_STR

static void check_repair(const char *in, size_t n, const char *want)
{
	char out[256];
	size_t o = slm_utf8_repair(in, n, false, out, NULL);
	out[o] = '\0';
	CU_ASSERT_EQUAL(o, strlen(want));
	CU_ASSERT(o == strlen(want) && memcmp(out, want, o) == 0);
	CU_ASSERT(slm_utf8_valid(out, o));
}

/* Unicode's "maximal subpart" practice (table 3-8 of the standard): the
 * examples below are the standard's. */
static void test_repair_maximal_subpart(void)
{
	check_repair("abc", 3, "abc");
	check_repair("\xC3\xA9", 2, "\xC3\xA9");
	/* truncated 3-byte sequence followed by ASCII: one U+FFFD */
	check_repair("\xE2\x82"
		     "A",
		     3, FFFD "A");
	/* C0, C1, F5..FF never start a sequence: one each */
	check_repair("\xC0\xAF", 2, FFFD FFFD);
	check_repair("\xF5\x80", 2, FFFD FFFD);
	/* surrogate: ED A0 is not a prefix (ED allows 80..9F) */
	check_repair("\xED\xA0\x80", 3, FFFD FFFD FFFD);
	/* overlong 3-byte: E0 80 */
	check_repair("\xE0\x80\x80", 3, FFFD FFFD FFFD);
	/* above U+10FFFF: F4 90 */
	check_repair("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD);
	/* the standard's example: 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64 */
	check_repair("\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", 13,
		     "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d");
	/* incomplete at the end: one */
	check_repair("x\xF0\x9F\x98", 4, "x" FFFD);
	check_repair("\xF0\x9F\x98\x80", 4, "\xF0\x9F\x98\x80");
}

static void test_repair_hold(void)
{
	char out[64];
	size_t held;
	size_t o = slm_utf8_repair("ab\xF0\x9F", 4, true, out, &held);
	CU_ASSERT_EQUAL(o, 2);
	CU_ASSERT_EQUAL(held, 2);
	o = slm_utf8_repair("ab\xFF", 3, true, out, &held);
	CU_ASSERT_EQUAL(o, 5);
	CU_ASSERT_EQUAL(held, 0);
	o = slm_utf8_repair("", 0, true, out, &held);
	CU_ASSERT_EQUAL(o, 0);
	CU_ASSERT_EQUAL(held, 0);
}

static void test_next_and_encode(void)
{
	uint32_t cp;
	size_t bad;
	CU_ASSERT_EQUAL(
		slm_utf8_next((const uint8_t *)"\xE2\x82\xAC", 3, &cp, &bad),
		3);
	CU_ASSERT_EQUAL(cp, 0x20AC);
	CU_ASSERT_EQUAL(
		slm_utf8_next((const uint8_t *)"\xE2\x82", 2, &cp, &bad), -2);
	CU_ASSERT_EQUAL(
		slm_utf8_next((const uint8_t *)"\xE2\x41", 2, &cp, &bad), 0);
	CU_ASSERT_EQUAL(bad, 1);
	char buf[4];
	uint32_t cps[] = {0x24, 0xA2, 0x20AC, 0x10348, 0x10FFFF};
	for (size_t i = 0; i < sizeof(cps) / sizeof(cps[0]); i++) {
		size_t n = slm_utf8_encode(cps[i], buf);
		CU_ASSERT_EQUAL(
			slm_utf8_next((const uint8_t *)buf, n, &cp, &bad),
			(int)n);
		CU_ASSERT_EQUAL(cp, cps[i]);
	}
	CU_ASSERT_EQUAL(slm_utf8_encode(0x110000, buf), 0);
	CU_ASSERT(slm_utf8_valid("", 0));
	CU_ASSERT(!slm_utf8_valid("\x80", 1));
}

/* Every code point round-trips; repair of random bytes is always valid
 * and leaves well-formed input alone. */
static void test_exhaustive(void)
{
	char buf[4];
	for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
		if (cp >= 0xD800 && cp <= 0xDFFF)
			continue;
		size_t n = slm_utf8_encode(cp, buf);
		uint32_t got;
		size_t bad;
		if (slm_utf8_next((const uint8_t *)buf, n, &got, &bad) !=
			    (int)n ||
		    got != cp) {
			CU_FAIL("code point does not round-trip");
			break;
		}
	}
	struct slm_test_rng rng = {7};
	char in[64], rep[3 * 64], rep2[3 * 3 * 64];
	for (int it = 0; it < 20000; it++) {
		size_t n = slm_test_rand(&rng) % sizeof(in);
		for (size_t i = 0; i < n; i++)
			in[i] = (char)slm_test_rand(&rng);
		size_t o = slm_utf8_repair(in, n, false, rep, NULL);
		CU_ASSERT(slm_utf8_valid(rep, o));
		size_t o2 = slm_utf8_repair(rep, o, false, rep2, NULL);
		CU_ASSERT(o2 == o && memcmp(rep, rep2, o) == 0);
	}
}

SLM_SUITE("utf8", NULL, NULL,
	  {"maximal subpart repair", test_repair_maximal_subpart},
	  {"hold back an incomplete tail", test_repair_hold},
	  {"decode and encode", test_next_and_encode},
	  {"exhaustive and random", test_exhaustive})
