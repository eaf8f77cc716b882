/*
 * NumPy's random streams as the golden weights need them
 * (tests/tools/npy_random.h).  The full check is the sha256 of the
 * regenerated F32 files (suite "golden"); these cases pin the parts.
 */
#include <math.h>
#include <string.h>

#include "tests/tools/npy_random.h"
#include "tests/unit/harness.h"

/* Every ziggurat table entry equals its defining recursion (NumPy's
 * generator of ziggurat_constants.h), recomputed here in double. */
static void test_ziggurat_tables(void)
{
	const double r = 3.6541528853610087963519472518;
	const double vr = 0.0049286732339746519; /* area of each layer */
	double desc[256] = {0}, x[256];
	desc[0] = r;
	for (int i = 1; i < 255; i++) {
		double p = exp(-0.5 * desc[i - 1] * desc[i - 1]);
		desc[i] = sqrt(-2.0 * log(p + vr / desc[i - 1]));
	}
	for (int i = 0; i < 256; i++)
		x[i] = desc[255 - i]; /* x[0] = 0, x[255] = r */
	int bad_k = 0, bad_w = 0, bad_f = 0;
	for (int i = 0; i < 256; i++) {
		double pr = exp(-0.5 * r * r);
		uint32_t ki =
			i == 0 ? (uint32_t)nearbyint(r * pr / vr * 0x1p23)
			       : (uint32_t)nearbyint(x[i - 1] / x[i] * 0x1p23);
		double wi = i == 0 ? vr / pr / 0x1p23 : x[i] / 0x1p23;
		float fi = (float)exp(-0.5 * x[i] * x[i]);
		bad_k += ki != npy_zig_ki_f[i];
		bad_w += (float)wi != npy_zig_wi_f[i];
		bad_f += fi != npy_zig_fi_f[i];
	}
	CU_ASSERT_EQUAL(bad_k, 0);
	CU_ASSERT_EQUAL(bad_w, 0);
	CU_ASSERT_EQUAL(bad_f, 0);
}

static void test_crc32(void)
{
	/* The standard check value of CRC-32 (zlib's crc32). */
	CU_ASSERT_EQUAL(npy_crc32("123456789", 9), 0xCBF43926u);
	CU_ASSERT_EQUAL(npy_crc32("", 0), 0u);
	CU_ASSERT_EQUAL(npy_crc32("llama-s", 7), 0x63619c93u);
}

/* next_uint32 hands out the low half of a 64-bit draw, then the high. */
static void test_next32_buffering(void)
{
	uint32_t seed[1] = {42};
	struct npy_pcg64 a, b;
	npy_pcg64_seed(&a, seed, 1);
	npy_pcg64_seed(&b, seed, 1);
	for (int i = 0; i < 4; i++) {
		uint64_t v = npy_pcg64_next64(&b);
		CU_ASSERT_EQUAL(npy_pcg64_next32(&a), (uint32_t)v);
		CU_ASSERT_EQUAL(npy_pcg64_next32(&a), (uint32_t)(v >> 32));
	}
	/* Different entropy, different stream; more words than the pool
	 * still mix in. */
	uint32_t e1[5] = {1, 2, 3, 4, 5}, e2[5] = {1, 2, 3, 4, 6};
	uint32_t s1[8], s2[8];
	npy_seed_sequence(e1, 5, s1, 8);
	npy_seed_sequence(e2, 5, s2, 8);
	CU_ASSERT(memcmp(s1, s2, sizeof(s1)) != 0);
}

/*
 * Known answers from the golden llama-s-F32.gguf (written by NumPy 1.24):
 * value = standard_normal[i] * float32(std) for two tensors, including
 * samples beyond the ziggurat's base strip (|x| > 3.65).
 */
static void test_known_answers(void)
{
	static const struct {
		const char *tensor;
		double num, fan_in; /* std = num / sqrt(fan_in) */
		uint32_t n;
		struct {
			uint32_t i, bits;
		} want[8];
	} cases[] = {
		{"token_embd.weight",
		 0.02,
		 1,
		 8,
		 {{0, 0xbb3e6fc5},
		  {1, 0xbc975e9b},
		  {2, 0xba9131f3},
		  {3, 0xbc4a137c},
		  {8828, 0xbd9f0d2d},
		  {13233, 0x3d973842},
		  {15842, 0x3d9fb086},
		  {18303, 0xbda3f0a1}}},
		{"blk.2.ffn_down.weight",
		 0.7,
		 768,
		 8,
		 {{0, 0x3cea89de},
		  {1, 0x3cacd89f},
		  {2, 0x3ca0d4cd},
		  {3, 0x3c1f6b7a},
		  {4, 0x3dbdbac7},
		  {584, 0xbdc14919},
		  {2004, 0x3dbfd660},
		  {10242, 0x3de2e6f9}}},
	};
	static float x[20000];
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		const char *t = cases[c].tensor;
		uint32_t entropy[3] = {20260817u, npy_crc32("llama-s", 7),
				       npy_crc32(t, strlen(t))};
		struct npy_pcg64 rng;
		npy_pcg64_seed(&rng, entropy, 3);
		npy_standard_normal_f32(&rng, x, 20000);
		float sd = (float)(cases[c].num / sqrt(cases[c].fan_in));
		for (uint32_t k = 0; k < cases[c].n; k++) {
			float v = x[cases[c].want[k].i] * sd;
			uint32_t bits;
			memcpy(&bits, &v, 4);
			CU_ASSERT_EQUAL(bits, cases[c].want[k].bits);
		}
	}
}

SLM_SUITE("npy_random", NULL, NULL, {"ziggurat tables", test_ziggurat_tables},
	  {"crc32", test_crc32}, {"next32 buffering", test_next32_buffering},
	  {"known answers", test_known_answers})
