/*
 * test_sampler.c: the sampling chain (exact arithmetic where it is
 * deterministic, chi-square where it is random, with a check that the
 * statistic would catch a wrong temperature), reproducibility, parameter
 * checks, and the stopper.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "tests/unit/harness.h"

#define FAILF(...)                                  \
	do {                                        \
		printf("\n    FAIL: " __VA_ARGS__); \
		printf("\n");                       \
		CU_FAIL("see the message above");   \
	} while (0)

static struct slm_sampler *make(const struct slm_sampler_params *p,
				int32_t n_vocab)
{
	struct slm_sampler *s = NULL;
	struct slm_error err = {0};
	if (slm_sampler_create(p, n_vocab, &s, &err))
		FAILF("%s", err.msg);
	return s;
}

/* Parameters that leave only temperature: the plain softmax. */
static void plain(struct slm_sampler_params *p, float temp, uint64_t seed)
{
	slm_sampler_params_default(p);
	p->temp = temp;
	p->top_k = 0;
	p->top_p = 1.0f;
	p->min_p = 0.0f;
	p->seed = seed;
}

/* Pearson's chi-square of counts against expected probabilities. */
static double chi_square(const long *count, const double *prob, int n,
			 long total)
{
	double x2 = 0;
	for (int i = 0; i < n; i++) {
		double e = prob[i] * (double)total;
		x2 += (count[i] - e) * (count[i] - e) / e;
	}
	return x2;
}

/* chi-square critical values at p = 0.001 for 1..10 degrees of freedom */
static const double chi2_crit[] = {0,	  10.83, 13.82, 16.27, 18.47, 20.52,
				   22.46, 24.32, 26.12, 27.88, 29.59};

/* Each bad value is refused with the parameter's name. */
static void expect_bad(const struct slm_sampler_params *p, const char *name)
{
	struct slm_error err = {0};
	struct slm_sampler *s = NULL;
	CU_ASSERT_EQUAL(slm_sampler_create(p, 100, &s, &err), SLM_EINVAL);
	CU_ASSERT_PTR_NULL(s);
	if (!strstr(err.msg, name))
		FAILF("error '%s' does not name %s", err.msg, name);
}

static void test_param_checks(void)
{
	struct slm_sampler_params p;
	slm_sampler_params_default(&p);
	CU_ASSERT(p.temp == 0.8f && p.top_k == 40 && p.top_p == 0.95f &&
		  p.min_p == 0.05f && p.repeat_penalty == 1.0f &&
		  p.penalty_last_n == 64 && p.seed == SLM_SEED_RANDOM);
	struct slm_error err0 = {0};
	CU_ASSERT_EQUAL(slm_sampler_params_check(&p, 100, &err0), 0);
#define BAD(field, value, name)                 \
	do {                                    \
		slm_sampler_params_default(&p); \
		p.field = value;                \
		expect_bad(&p, name);           \
	} while (0)
	BAD(temp, -0.5f, "temperature");
	BAD(temp, NAN, "temperature");
	BAD(temp, 1000.0f, "temperature");
	BAD(top_k, -1, "top_k");
	BAD(top_p, 1.5f, "top_p");
	BAD(top_p, -0.1f, "top_p");
	BAD(min_p, 2.0f, "min_p");
	BAD(repeat_penalty, 0.0f, "repeat_penalty");
	BAD(repeat_penalty, -1.0f, "repeat_penalty");
	BAD(frequency_penalty, INFINITY, "frequency_penalty");
	BAD(presence_penalty, -500.0f, "presence_penalty");
	BAD(penalty_last_n, -2, "penalty_last_n");
#undef BAD
	slm_sampler_params_default(&p);
	p.n_logit_bias = 1;
	p.logit_bias[0].token = 100;
	p.logit_bias[0].bias = 1;
	expect_bad(&p, "token 100");
	p.logit_bias[0].token = 5;
	p.logit_bias[0].bias = INFINITY;
	expect_bad(&p, "finite or -inf");
	struct slm_error err = {0};
	struct slm_sampler *s = NULL;
	slm_sampler_params_default(&p);
	CU_ASSERT_EQUAL(slm_sampler_create(&p, 0, &s, &err), SLM_EINVAL);
}

static void test_greedy(void)
{
	struct slm_sampler_params p;
	slm_sampler_params_default(&p);
	p.temp = 0.0f;
	struct slm_sampler *s = make(&p, 6);
	if (!s)
		return;
	float l[6] = {0.5f, 3.0f, -1.0f, 3.0f, NAN, 2.0f};
	/* ties go to the lowest id; NaN never wins */
	CU_ASSERT_EQUAL(slm_sampler_sample(s, l, NULL), 1);
	float nan_first[6] = {NAN, 1.0f, 1.0f, 0, 0, 0};
	CU_ASSERT_EQUAL(slm_sampler_sample(s, nan_first, NULL), 1);
	int32_t id;
	float pr;
	CU_ASSERT_EQUAL(slm_sampler_probs(s, l, NULL, &id, &pr, 1), 1);
	CU_ASSERT(id == 1 && pr == 1.0f);
	slm_sampler_destroy(s);
	/* a ban moves greedy to the next best */
	p.n_logit_bias = 2;
	p.logit_bias[0] = (struct slm_logit_bias){1, -INFINITY};
	p.logit_bias[1] = (struct slm_logit_bias){3, -INFINITY};
	s = make(&p, 6);
	CU_ASSERT_EQUAL(slm_sampler_sample(s, l, NULL), 5);
	/* nothing drawable: an error, not a token */
	float none[6] = {-INFINITY, 1, NAN, 1, NAN, NAN};
	CU_ASSERT_EQUAL(slm_sampler_sample(s, none, NULL), SLM_ERANGE);
	slm_sampler_destroy(s);
}

/* Random logits: the draw never leaves the top k, and within them follows
 * softmax(logit / T). */
static void test_top_k(void)
{
	enum { V = 2000, K = 10, N = 30000 };
	static float l[V];
	struct slm_test_rng rng = {11};
	for (int i = 0; i < V; i++)
		l[i] = (float)(3.0 * slm_test_normal(&rng));
	/* the top K by the test's own sort */
	int top[K] = {0};
	for (int k = 0; k < K; k++) {
		int best = -1;
		for (int i = 0; i < V; i++) {
			bool taken = false;
			for (int j = 0; j < k; j++)
				taken |= top[j] == i;
			if (!taken && (best < 0 || l[i] > l[best]))
				best = i;
		}
		top[k] = best;
	}
	struct slm_sampler_params p;
	plain(&p, 1.5f, 99);
	p.top_k = K;
	struct slm_sampler *s = make(&p, V);
	if (!s)
		return;
	long count[K] = {0};
	double prob[K], z = 0;
	for (int k = 0; k < K; k++)
		z += prob[k] = exp((l[top[k]] - l[top[0]]) / 1.5);
	for (int k = 0; k < K; k++)
		prob[k] /= z;
	int outside = 0;
	for (int it = 0; it < N; it++) {
		int32_t t = slm_sampler_sample(s, l, NULL);
		int k = 0;
		while (k < K && top[k] != t)
			k++;
		if (k == K)
			outside++;
		else
			count[k]++;
	}
	CU_ASSERT_EQUAL(outside, 0);
	double x2 = chi_square(count, prob, K, N);
	if (x2 > chi2_crit[K - 1])
		FAILF("top-k draws do not follow the softmax: chi2 %.1f", x2);
	slm_sampler_destroy(s);
}

/* top-p keeps the smallest prefix with the mass and renormalises. */
static void test_top_p(void)
{
	/* p = .4 .3 .15 .1 .05: top_p .8 keeps .4 .3 .15 */
	float l[5];
	double p0[5] = {0.4, 0.3, 0.15, 0.1, 0.05};
	for (int i = 0; i < 5; i++)
		l[i] = (float)log(p0[i]);
	struct slm_sampler_params p;
	plain(&p, 1.0f, 5);
	p.top_p = 0.8f;
	struct slm_sampler *s = make(&p, 5);
	if (!s)
		return;
	int32_t ids[5];
	float probs[5];
	CU_ASSERT_EQUAL(slm_sampler_probs(s, l, NULL, ids, probs, 5), 3);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(ids[i], i);
		CU_ASSERT(fabs(probs[i] - p0[i] / 0.85) < 1e-6);
	}
	long count[3] = {0};
	double prob[3] = {0.4 / 0.85, 0.3 / 0.85, 0.15 / 0.85};
	int outside = 0;
	for (int it = 0; it < 20000; it++) {
		int32_t t = slm_sampler_sample(s, l, NULL);
		if (t < 0 || t > 2)
			outside++;
		else
			count[t]++;
	}
	CU_ASSERT_EQUAL(outside, 0);
	CU_ASSERT(chi_square(count, prob, 3, 20000) < chi2_crit[2]);
	slm_sampler_destroy(s);

	/* a large vocabulary without top-k (the partial sort path): the kept
	 * set is the smallest prefix holding top_p of the mass */
	enum { V = 60000 };
	static float big[V];
	struct slm_test_rng rng = {3};
	for (int i = 0; i < V; i++)
		big[i] = (float)(2.0 * slm_test_normal(&rng));
	static double sorted[V];
	double max = -1e300, z = 0;
	for (int i = 0; i < V; i++)
		max = fmax(max, big[i]);
	for (int i = 0; i < V; i++)
		z += sorted[i] = exp(big[i] - max);
	for (float tp = 0.5f; tp <= 0.99f; tp += 0.245f) {
		plain(&p, 1.0f, 5);
		p.top_p = tp;
		s = make(&p, V);
		static int32_t kid[V];
		static float kp[V];
		int32_t m = slm_sampler_probs(s, big, NULL, kid, kp, V);
		CU_ASSERT(m > 0 && m < V);
		double mass = 0, last = 0;
		for (int32_t i = 0; i < m; i++) {
			last = exp(big[kid[i]] - max) / z;
			mass += last;
			if (i > 0)
				CU_ASSERT(big[kid[i]] <= big[kid[i - 1]]);
		}
		CU_ASSERT(mass >= tp - 1e-6);
		CU_ASSERT(mass - last < tp + 1e-6);
		/* and they are the best m: none left out beats the last kept */
		int32_t better = 0;
		for (int i = 0; i < V; i++)
			better += big[i] > big[kid[m - 1]];
		CU_ASSERT(better < m);
		slm_sampler_destroy(s);
	}
}

/* min-p: nothing below min_p times the best token's probability. */
static void test_min_p(void)
{
	float l[6] = {2.0f, 1.9f, 0.5f, -1.0f, 1.0f, -3.0f};
	struct slm_sampler_params p;
	plain(&p, 1.0f, 1);
	p.min_p = 0.3f; /* keep logit >= 2 + ln .3 = 0.796 */
	struct slm_sampler *s = make(&p, 6);
	int32_t ids[6];
	float probs[6];
	int32_t m = slm_sampler_probs(s, l, NULL, ids, probs, 6);
	CU_ASSERT_EQUAL(m, 3);
	CU_ASSERT(m == 3 && ids[0] == 0 && ids[1] == 1 && ids[2] == 4);
	for (int it = 0; it < 5000; it++) {
		int32_t t = slm_sampler_sample(s, l, NULL);
		if (t != 0 && t != 1 && t != 4) {
			FAILF("min-p drew token %d", t);
			break;
		}
	}
	slm_sampler_destroy(s);
}

/* The shape of softmax(logit / T) at several temperatures (chi-square,
 * 4 degrees of freedom), and the statistic's power: the same draws are
 * far from the distribution of another temperature. */
static void test_temperature_shape(void)
{
	double p0[5] = {0.5, 0.25, 0.125, 0.0625, 0.0625};
	float l[5];
	for (int i = 0; i < 5; i++)
		l[i] = (float)log(p0[i]);
	const float temps[] = {0.5f, 1.0f, 2.0f};
	const long n = 50000;
	for (size_t t = 0; t < SLM_ARRAY_LEN(temps); t++) {
		struct slm_sampler_params p;
		plain(&p, temps[t], 1000 + t);
		struct slm_sampler *s = make(&p, 5);
		if (!s)
			return;
		long count[5] = {0};
		for (long it = 0; it < n; it++)
			count[slm_sampler_sample(s, l, NULL)]++;
		double want[5], other[5], z = 0, zo = 0;
		float wrong = temps[t] == 1.0f ? 2.0f : 1.0f;
		for (int i = 0; i < 5; i++) {
			z += want[i] = pow(p0[i], 1.0 / temps[t]);
			zo += other[i] = pow(p0[i], 1.0 / wrong);
		}
		for (int i = 0; i < 5; i++) {
			want[i] /= z;
			other[i] /= zo;
		}
		double x2 = chi_square(count, want, 5, n);
		double x2_wrong = chi_square(count, other, 5, n);
		if (x2 > chi2_crit[4])
			FAILF("T=%.1f: chi2 %.2f over %.2f", (double)temps[t],
			      x2, chi2_crit[4]);
		CU_ASSERT(x2_wrong > 100 * chi2_crit[4]);
		slm_sampler_destroy(s);
	}
}

static void test_seeds(void)
{
	enum { V = 500, N = 400 };
	static float l[V];
	struct slm_test_rng rng = {1234};
	for (int i = 0; i < V; i++)
		l[i] = (float)slm_test_normal(&rng);
	struct slm_sampler_params p;
	slm_sampler_params_default(&p);
	p.seed = 42;
	p.top_k = 100;
	struct slm_sampler *a = make(&p, V), *b = make(&p, V);
	p.seed = 43;
	struct slm_sampler *c = make(&p, V);
	struct slm_sample_ws *ws = slm_sample_ws_create(V);
	int32_t seq[N];
	int same_c = 0;
	for (int i = 0; i < N; i++) {
		seq[i] = slm_sampler_sample(a, l, NULL);
		/* b uses a shared workspace: same result */
		CU_ASSERT_EQUAL(slm_sampler_sample(b, l, ws), seq[i]);
		same_c += slm_sampler_sample(c, l, ws) == seq[i];
		CU_ASSERT_EQUAL(slm_sampler_accept(a, seq[i]), 0);
		CU_ASSERT_EQUAL(slm_sampler_accept(b, seq[i]), 0);
	}
	CU_ASSERT(same_c < N / 2);
	/* reset replays the same draws */
	slm_sampler_reset(a);
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(slm_sampler_sample(a, l, NULL), seq[i]);
	CU_ASSERT_EQUAL(slm_sampler_seed(a), 42);
	/* a random seed is reported and replays */
	p.seed = SLM_SEED_RANDOM;
	struct slm_sampler *r = make(&p, V);
	p.seed = slm_sampler_seed(r);
	CU_ASSERT(p.seed != SLM_SEED_RANDOM);
	struct slm_sampler *r2 = make(&p, V);
	for (int i = 0; i < 50; i++)
		CU_ASSERT_EQUAL(slm_sampler_sample(r, l, NULL),
				slm_sampler_sample(r2, l, NULL));
	/* a workspace too small for the vocabulary is refused */
	struct slm_sample_ws *small = slm_sample_ws_create(V - 1);
	CU_ASSERT(slm_sampler_sample(a, l, small) < 0);
	slm_sample_ws_destroy(small);
	slm_sample_ws_destroy(ws);
	slm_sampler_destroy(a);
	slm_sampler_destroy(b);
	slm_sampler_destroy(c);
	slm_sampler_destroy(r);
	slm_sampler_destroy(r2);
}

/* Penalties change exactly the logits of the tokens in the window. */
static void test_penalties(void)
{
	float l[5] = {2.0f, 1.9f, -1.0f, -1.1f, 0.5f};
	struct slm_sampler_params p;
	plain(&p, 1.0f, 7);
	p.repeat_penalty = 1.25f;
	p.frequency_penalty = 0.1f;
	p.presence_penalty = 0.3f;
	p.penalty_last_n = 4;
	struct slm_sampler *s = make(&p, 5);
	if (!s)
		return;
	/* window of 4: 4 falls out; 0 twice, 2 once, 1 once */
	int32_t acc[] = {4, 0, 2, 0, 1};
	for (size_t i = 0; i < SLM_ARRAY_LEN(acc); i++)
		CU_ASSERT_EQUAL(slm_sampler_accept(s, acc[i]), 0);
	double want[5] = {
		2.0 / 1.25 - 2 * 0.1 - 0.3,  /* positive: divided */
		1.9 / 1.25 - 1 * 0.1 - 0.3,  /* */
		-1.0 * 1.25 - 1 * 0.1 - 0.3, /* negative: multiplied */
		-1.1,			     /* not seen */
		0.5,			     /* left the window */
	};
	double z = 0, pw[5];
	for (int i = 0; i < 5; i++)
		z += pw[i] = exp(want[i]);
	int32_t ids[5];
	float probs[5];
	CU_ASSERT_EQUAL(slm_sampler_probs(s, l, NULL, ids, probs, 5), 5);
	for (int i = 0; i < 5; i++)
		if (fabs(probs[i] - pw[ids[i]] / z) > 1e-6)
			FAILF("token %d: p %.6f, want %.6f", ids[i],
			      (double)probs[i], pw[ids[i]] / z);
	slm_sampler_destroy(s);

	/* greedy sees them too: a repeated leader loses to the runner-up */
	plain(&p, 0.0f, 7);
	p.repeat_penalty = 1.1f;
	s = make(&p, 5);
	CU_ASSERT_EQUAL(slm_sampler_sample(s, l, NULL), 0);
	CU_ASSERT_EQUAL(slm_sampler_accept(s, 0), 0);
	CU_ASSERT_EQUAL(slm_sampler_sample(s, l, NULL), 1);
	slm_sampler_destroy(s);

	/* off (last_n 0) and all (-1) */
	plain(&p, 0.0f, 7);
	p.repeat_penalty = 2.0f;
	p.penalty_last_n = 0;
	s = make(&p, 5);
	CU_ASSERT_EQUAL(slm_sampler_accept(s, 0), 0);
	CU_ASSERT_EQUAL(slm_sampler_sample(s, l, NULL), 0);
	slm_sampler_destroy(s);
	p.penalty_last_n = -1;
	s = make(&p, 5);
	CU_ASSERT_EQUAL(slm_sampler_accept(s, 0), 0);
	for (int i = 0; i < 1000; i++)
		CU_ASSERT_EQUAL(slm_sampler_accept(s, 3), 0);
	CU_ASSERT_EQUAL(slm_sampler_sample(s, l, NULL), 1);
	slm_sampler_destroy(s);
}

static void test_logit_bias(void)
{
	float l[4] = {1.0f, 1.0f, 1.0f, 1.0f};
	struct slm_sampler_params p;
	plain(&p, 1.0f, 3);
	p.n_logit_bias = 2;
	p.logit_bias[0] = (struct slm_logit_bias){2, -INFINITY};
	p.logit_bias[1] = (struct slm_logit_bias){3, (float)log(3.0)};
	struct slm_sampler *s = make(&p, 4);
	int32_t ids[4];
	float probs[4];
	CU_ASSERT_EQUAL(slm_sampler_probs(s, l, NULL, ids, probs, 4), 3);
	CU_ASSERT(ids[0] == 3 && fabs(probs[0] - 0.6) < 1e-6);
	for (int it = 0; it < 5000; it++)
		CU_ASSERT_NOT_EQUAL(slm_sampler_sample(s, l, NULL), 2);
	slm_sampler_destroy(s);
}

/* The command-line options of `slm run`. */
static void test_cli_options(void)
{
	char *argv[] = {"run",	   "--temp",	   "0.2",    "--top-k",
			"5",	   "--seed",	   "77",     "--stop",
			"END",	   "--logit-bias", "15-inf", "-n",
			"12",	   "--ignore-eos", "-m",     "x",
			"--top-p", "abc"};
	int argc = (int)SLM_ARRAY_LEN(argv);
	struct slm_sampler_params sp;
	struct slm_stop_params stp;
	slm_sampler_params_default(&sp);
	slm_stop_params_default(&stp);
	struct slm_error err = {0};
	int i = 1, taken = 0, rc = 0;
	for (; i < argc; i++) {
		rc = slm_sampler_cli_option(&sp, &stp, argc, argv, &i, &err);
		if (rc < 0)
			break;
		taken += rc;
	}
	CU_ASSERT_EQUAL(taken, 7);
	CU_ASSERT(sp.temp == 0.2f && sp.top_k == 5 && sp.seed == 77);
	CU_ASSERT(stp.n_stop == 1 && !strcmp(stp.stop[0], "END"));
	CU_ASSERT(sp.n_logit_bias == 1 && sp.logit_bias[0].token == 15 &&
		  sp.logit_bias[0].bias == -INFINITY);
	CU_ASSERT(stp.max_tokens == 12 && stp.ignore_eog);
	CU_ASSERT_EQUAL(rc, SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "--top-p"));
	CU_ASSERT_PTR_NOT_NULL(
		strstr(slm_sampler_cli_help(), "--repeat-penalty"));
}

/* ---- stopper ------------------------------------------------------------- */

static struct slm_vocab *qwen(void)
{
	const char *path = slm_test_generated("vocab/vocab-qwen2-bpe.gguf");
	struct slm_vocab *v = NULL;
	struct slm_error err = {0};
	if (access(path, R_OK) != 0)
		FAILF("missing test input %s (run `make testdata`)", path);
	else if (slm_vocab_load_file(path, &v, &err))
		FAILF("%s", err.msg);
	return v;
}

/*
 * Run the stopper over the tokens of `text`; returns the released text and
 * checks that what was released at every step is a prefix of the final
 * text (nothing is ever taken back).
 */
static enum slm_stop_reason run_stopper(const struct slm_vocab *v,
					const char *text,
					const struct slm_stop_params *p,
					struct slm_text *out)
{
	struct slm_tokens t = {0};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_tokenize(v, text, strlen(text), 0, &t, &err), 0);
	struct slm_stopper *st = NULL;
	if (slm_stopper_create(v, p, &st, &err)) {
		FAILF("%s", err.msg);
		slm_tokens_free(&t);
		return SLM_STOP_NONE;
	}
	int rc = SLM_STOP_NONE;
	for (size_t i = 0; i < t.n && rc == SLM_STOP_NONE; i++)
		rc = slm_stopper_push(st, t.ids[i], out, &err);
	CU_ASSERT(rc >= 0);
	if (rc != SLM_STOP_NONE) {
		/* nothing more after a stop */
		CU_ASSERT_EQUAL(slm_stopper_push(st, t.ids[0], out, &err),
				SLM_ESTATE);
	}
	CU_ASSERT_EQUAL(slm_stopper_finish(st, out), 0);
	enum slm_stop_reason r = slm_stopper_reason(st);
	slm_stopper_destroy(st);
	slm_tokens_free(&t);
	return r;
}

static void test_stop_strings(void)
{
	struct slm_vocab *v = qwen();
	if (!v)
		return;
	struct slm_stop_params p;
	slm_stop_params_default(&p);
	p.n_stop = 2;
	p.stop[0] = "STOP";
	p.stop[1] = "\n\n";
	struct slm_text out = {0};
	CU_ASSERT_EQUAL(run_stopper(v, "Hello world. STOP here", &p, &out),
			SLM_STOP_STRING);
	CU_ASSERT_STRING_EQUAL(out.data, "Hello world. ");
	out.len = 0;
	CU_ASSERT_EQUAL(run_stopper(v, "one\ntwo\n\nthree", &p, &out),
			SLM_STOP_STRING);
	CU_ASSERT_STRING_EQUAL(out.data, "one\ntwo");
	/* a prefix that never completes is released at the end */
	out.len = 0;
	CU_ASSERT_EQUAL(run_stopper(v, "STO STOPPE", &p, &out),
			SLM_STOP_STRING);
	CU_ASSERT_STRING_EQUAL(out.data, "STO ");
	out.len = 0;
	CU_ASSERT_EQUAL(run_stopper(v, "no stop, ends in STO", &p, &out),
			SLM_STOP_NONE);
	CU_ASSERT_STRING_EQUAL(out.data, "no stop, ends in STO");
	/* a stop string made of one emoji split over byte-level tokens */
	p.n_stop = 1;
	p.stop[0] = "\xF0\x9F\xA6\x99"; /* llama */
	out.len = 0;
	CU_ASSERT_EQUAL(
		run_stopper(v, "caf\xC3\xA9 \xF0\x9F\xA6\x99 after", &p, &out),
		SLM_STOP_STRING);
	CU_ASSERT_STRING_EQUAL(out.data, "caf\xC3\xA9 ");
	slm_text_free(&out);
	slm_vocab_destroy(v);
}

/*
 * Random ASCII texts and stop strings over a small alphabet (so stops
 * occur, overlap and straddle tokens): the output is the text up to the
 * first stop string to complete, and released text is never retracted.
 */
static void test_stop_random(void)
{
	struct slm_vocab *v = qwen();
	if (!v)
		return;
	struct slm_test_rng rng = {2024};
	static const char alpha[] = "ab c\n";
	for (int it = 0; it < 400; it++) {
		char text[128], stops[3][8];
		size_t n = 1 + slm_test_rand(&rng) % 100;
		for (size_t i = 0; i < n; i++)
			text[i] = alpha[slm_test_rand(&rng) % 5];
		text[n] = '\0';
		struct slm_stop_params p;
		slm_stop_params_default(&p);
		p.n_stop = 1 + slm_test_rand(&rng) % 3;
		for (size_t s = 0; s < p.n_stop; s++) {
			size_t k = 1 + slm_test_rand(&rng) % 4;
			for (size_t i = 0; i < k; i++)
				stops[s][i] = alpha[slm_test_rand(&rng) % 5];
			stops[s][k] = '\0';
			p.stop[s] = stops[s];
		}
		/* reference: after each token, the earliest occurrence of
		 * any stop string in the text so far */
		struct slm_tokens t = {0};
		struct slm_error err = {0};
		CU_ASSERT_EQUAL(slm_tokenize(v, text, n, 0, &t, &err), 0);
		struct slm_text sofar = {0}, want = {0};
		bool stopped = false;
		for (size_t i = 0; i < t.n && !stopped; i++) {
			size_t pl;
			const char *pc =
				slm_vocab_piece(v, t.ids[i], false, &pl);
			CU_ASSERT_EQUAL(slm_text_append(&sofar, pc, pl), 0);
			size_t best = SIZE_MAX;
			for (size_t s = 0; s < p.n_stop; s++) {
				const char *h = strstr(sofar.data, p.stop[s]);
				if (h && (size_t)(h - sofar.data) < best)
					best = (size_t)(h - sofar.data);
			}
			if (best != SIZE_MAX) {
				stopped = true;
				sofar.len = best;
			}
		}
		CU_ASSERT_EQUAL(slm_text_append(&want, sofar.data, sofar.len),
				0);
		struct slm_text out = {0};
		enum slm_stop_reason r = run_stopper(v, text, &p, &out);
		CU_ASSERT_EQUAL(r, stopped ? SLM_STOP_STRING : SLM_STOP_NONE);
		if (out.len != want.len ||
		    memcmp(out.data, want.data, want.len)) {
			FAILF("text '%s': released '%s', want '%s'", text,
			      out.data, want.data);
			it = 1 << 20;
		}
		/* no stop string in what was released */
		for (size_t s = 0; s < p.n_stop; s++)
			CU_ASSERT_PTR_NULL(strstr(out.data, p.stop[s]));
		slm_text_free(&out);
		slm_text_free(&sofar);
		slm_text_free(&want);
		slm_tokens_free(&t);
	}
	slm_vocab_destroy(v);
}

/* Released text only grows by final text, token by token. */
static void test_stop_never_retracts(void)
{
	struct slm_vocab *v = qwen();
	if (!v)
		return;
	const char *text = "abcabcabd abcabd done";
	struct slm_stop_params p;
	slm_stop_params_default(&p);
	p.n_stop = 1;
	p.stop[0] = "abcabd";
	struct slm_tokens t = {0};
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_tokenize(v, text, strlen(text), 0, &t, &err), 0);
	struct slm_stopper *st = NULL;
	CU_ASSERT_EQUAL_FATAL(slm_stopper_create(v, &p, &st, &err), 0);
	struct slm_text out = {0};
	const char *final = "abc";
	int rc = 0;
	for (size_t i = 0; i < t.n && rc == 0; i++) {
		rc = slm_stopper_push(st, t.ids[i], &out, &err);
		CU_ASSERT(out.len <= strlen(final) &&
			  !memcmp(out.data, final, out.len));
		/* while "abcab" may still become the stop, it is held */
	}
	CU_ASSERT_EQUAL(rc, SLM_STOP_STRING);
	CU_ASSERT_EQUAL(slm_stopper_finish(st, &out), 0);
	CU_ASSERT_STRING_EQUAL(out.data, final);
	CU_ASSERT_EQUAL(slm_stopper_which(st), 0);
	slm_stopper_destroy(st);
	slm_text_free(&out);
	slm_tokens_free(&t);
	slm_vocab_destroy(v);
}

static void test_stop_eog_and_limits(void)
{
	struct slm_vocab *v = qwen();
	if (!v)
		return;
	struct slm_stop_params p;
	slm_stop_params_default(&p);
	struct slm_stopper *st = NULL;
	struct slm_error err = {0};
	struct slm_text out = {0};
	/* "Hi" then <|im_end|>: stops, the control token's text not shown */
	CU_ASSERT_EQUAL_FATAL(slm_stopper_create(v, &p, &st, &err), 0);
	CU_ASSERT_EQUAL(slm_stopper_push(st, 13048, &out, &err), SLM_STOP_NONE);
	CU_ASSERT_EQUAL(slm_stopper_push(st, 151645, &out, &err), SLM_STOP_EOG);
	CU_ASSERT_EQUAL(slm_stopper_finish(st, &out), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "Hi");
	CU_ASSERT_EQUAL(slm_stopper_reason(st), SLM_STOP_EOG);
	CU_ASSERT_EQUAL(slm_stopper_n_tokens(st), 2);
	slm_stopper_destroy(st);
	/* ignore_eog goes on; render_special shows control text */
	p.ignore_eog = true;
	p.render_special = true;
	p.max_tokens = 3;
	out.len = 0;
	CU_ASSERT_EQUAL_FATAL(slm_stopper_create(v, &p, &st, &err), 0);
	CU_ASSERT_EQUAL(slm_stopper_push(st, 13048, &out, &err), SLM_STOP_NONE);
	CU_ASSERT_EQUAL(slm_stopper_push(st, 151645, &out, &err),
			SLM_STOP_NONE);
	CU_ASSERT_EQUAL(slm_stopper_push(st, 13048, &out, &err),
			SLM_STOP_MAX_TOKENS);
	CU_ASSERT_EQUAL(slm_stopper_finish(st, &out), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "Hi<|im_end|>Hi");
	/* out of range id */
	slm_stopper_destroy(st);
	slm_stop_params_default(&p);
	CU_ASSERT_EQUAL_FATAL(slm_stopper_create(v, &p, &st, &err), 0);
	CU_ASSERT_EQUAL(slm_stopper_push(st, 1 << 30, &out, &err), SLM_ERANGE);
	slm_stopper_destroy(st);
	/* an incomplete UTF-8 tail at the end becomes U+FFFD */
	out.len = 0;
	CU_ASSERT_EQUAL_FATAL(slm_stopper_create(v, &p, &st, &err), 0);
	int32_t e3 = slm_vocab_find(v, "\xC3\xA3", 2); /* byte 0xE3 */
	CU_ASSERT(e3 >= 0);
	CU_ASSERT_EQUAL(slm_stopper_push(st, e3, &out, &err), SLM_STOP_NONE);
	CU_ASSERT_EQUAL(out.len, 0);
	CU_ASSERT_EQUAL(slm_stopper_finish(st, &out), 0);
	CU_ASSERT_STRING_EQUAL(out.data, "\xEF\xBF\xBD");
	slm_stopper_destroy(st);
	slm_text_free(&out);
	/* bad parameters */
	static const char *const bad_utf8 = "\xC3";
	struct {
		int32_t max_tokens;
		const char *stop;
		const char *what;
	} bad[] = {{0, NULL, "max_tokens"},
		   {-5, NULL, "max_tokens"},
		   {-1, "", "empty"},
		   {-1, bad_utf8, "UTF-8"}};
	for (size_t i = 0; i < SLM_ARRAY_LEN(bad); i++) {
		slm_stop_params_default(&p);
		p.max_tokens = bad[i].max_tokens;
		if (bad[i].stop) {
			p.n_stop = 1;
			p.stop[0] = bad[i].stop;
		}
		slm_error_clear(&err);
		CU_ASSERT_EQUAL(slm_stopper_create(v, &p, &st, &err),
				SLM_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i].what));
	}
	slm_vocab_destroy(v);
}

SLM_SUITE("sampler", NULL, NULL, {"parameter checks", test_param_checks},
	  {"greedy", test_greedy}, {"top-k", test_top_k}, {"top-p", test_top_p},
	  {"min-p", test_min_p}, {"temperature shape", test_temperature_shape},
	  {"seeds", test_seeds}, {"penalties", test_penalties},
	  {"logit bias", test_logit_bias},
	  {"command-line options", test_cli_options},
	  {"stop strings", test_stop_strings},
	  {"stop strings, random", test_stop_random},
	  {"stop strings never retract", test_stop_never_retracts},
	  {"end of generation and limits", test_stop_eog_and_limits})
