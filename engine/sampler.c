/*
 * sampler.c: the sampling chain, its generator, and the stopper.
 */
#include "engine/sampler.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/utf8.h"
#include "engine/tokenizer.h"

/* ---- parameters ------------------------------------------------------- */

void slm_sampler_params_default(struct slm_sampler_params *p)
{
	memset(p, 0, sizeof(*p));
	p->temp = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->repeat_penalty = 1.0f;
	p->frequency_penalty = 0.0f;
	p->presence_penalty = 0.0f;
	p->penalty_last_n = 64;
	p->seed = SLM_SEED_RANDOM;
}

static int check_range(const char *name, float v, float lo, float hi,
		       bool lo_open, struct slm_error *err)
{
	if (isnan(v) || v < lo || v > hi || (lo_open && v == lo))
		return slm_error_set(err, SLM_EINVAL,
				     "%s = %g is out of range (%s%g, %g])",
				     name, (double)v, lo_open ? "(" : "[",
				     (double)lo, (double)hi);
	return 0;
}

int slm_sampler_params_check(const struct slm_sampler_params *p,
			     int32_t n_vocab, struct slm_error *err)
{
	int rc;
	if ((rc = check_range("temperature", p->temp, 0, 100, false, err)) ||
	    (rc = check_range("top_p", p->top_p, 0, 1, false, err)) ||
	    (rc = check_range("min_p", p->min_p, 0, 1, false, err)) ||
	    (rc = check_range("repeat_penalty", p->repeat_penalty, 0, 100, true,
			      err)) ||
	    (rc = check_range("frequency_penalty", p->frequency_penalty, -100,
			      100, false, err)) ||
	    (rc = check_range("presence_penalty", p->presence_penalty, -100,
			      100, false, err)))
		return rc;
	if (p->top_k < 0)
		return slm_error_set(err, SLM_EINVAL,
				     "top_k = %d is out of range (0 = off, or "
				     "a positive count)",
				     p->top_k);
	if (p->penalty_last_n < -1)
		return slm_error_set(err, SLM_EINVAL,
				     "penalty_last_n = %d is out of range (-1 "
				     "= all, 0 = off, or a count)",
				     p->penalty_last_n);
	if (p->n_logit_bias > SLM_SAMPLER_MAX_BIAS)
		return slm_error_set(err, SLM_EINVAL,
				     "%zu logit bias entries (at most %d)",
				     p->n_logit_bias, SLM_SAMPLER_MAX_BIAS);
	for (size_t i = 0; i < p->n_logit_bias; i++) {
		const struct slm_logit_bias *b = &p->logit_bias[i];
		if (b->token < 0 || b->token >= n_vocab)
			return slm_error_set(err, SLM_EINVAL,
					     "logit bias for token %d: out of "
					     "range (the vocabulary has %d "
					     "tokens)",
					     b->token, n_vocab);
		if (isnan(b->bias) || b->bias == INFINITY)
			return slm_error_set(err, SLM_EINVAL,
					     "logit bias %g for token %d: must "
					     "be finite or -inf",
					     (double)b->bias, b->token);
	}
	return 0;
}

/* ---- generator: xoshiro256**, seeded by splitmix64 --------------------- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(struct rng *r)
{
	return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- sampler ---------------------------------------------------------- */

struct cand {
	float logit;
	int32_t id;
};

struct slm_sample_ws {
	int32_t n_vocab;
	struct cand *c; /* [n_vocab] */
	double *p;	/* [n_vocab] probabilities */
	int32_t *win;	/* penalty window copy */
	size_t win_cap;
};

struct slm_sampler {
	struct slm_sampler_params p;
	int32_t n_vocab;
	uint64_t seed;
	struct rng rng;
	/* accepted tokens: a ring of penalty_last_n, or all of them (-1) */
	int32_t *hist;
	size_t hist_cap, hist_n, hist_head;
	struct slm_sample_ws *own_ws;
};

struct slm_sample_ws *slm_sample_ws_create(int32_t n_vocab)
{
	if (n_vocab <= 0)
		return NULL;
	struct slm_sample_ws *ws = calloc(1, sizeof(*ws));
	if (!ws)
		return NULL;
	ws->n_vocab = n_vocab;
	ws->c = malloc((size_t)n_vocab * sizeof(*ws->c));
	ws->p = malloc((size_t)n_vocab * sizeof(*ws->p));
	if (!ws->c || !ws->p) {
		slm_sample_ws_destroy(ws);
		return NULL;
	}
	return ws;
}

void slm_sample_ws_destroy(struct slm_sample_ws *ws)
{
	if (!ws)
		return;
	free(ws->c);
	free(ws->p);
	free(ws->win);
	free(ws);
}

static uint64_t random_seed(void)
{
	uint64_t seed;
	if (getrandom(&seed, sizeof(seed), 0) == (ssize_t)sizeof(seed))
		return seed;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30);
}

int slm_sampler_create(const struct slm_sampler_params *p, int32_t n_vocab,
		       struct slm_sampler **out, struct slm_error *err)
{
	*out = NULL;
	if (n_vocab <= 0)
		return slm_error_set(err, SLM_EINVAL,
				     "vocabulary size %d: must be positive",
				     n_vocab);
	int rc = slm_sampler_params_check(p, n_vocab, err);
	if (rc)
		return rc;
	struct slm_sampler *s = calloc(1, sizeof(*s));
	if (!s)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	s->p = *p;
	s->n_vocab = n_vocab;
	s->seed = p->seed == SLM_SEED_RANDOM ? random_seed() : p->seed;
	if (p->penalty_last_n > 0) {
		s->hist_cap = (size_t)p->penalty_last_n;
		s->hist = malloc(s->hist_cap * sizeof(*s->hist));
		if (!s->hist) {
			free(s);
			return slm_error_set(err, SLM_ENOMEM, "out of memory");
		}
	}
	slm_sampler_reset(s);
	*out = s;
	return 0;
}

void slm_sampler_destroy(struct slm_sampler *s)
{
	if (!s)
		return;
	free(s->hist);
	slm_sample_ws_destroy(s->own_ws);
	free(s);
}

uint64_t slm_sampler_seed(const struct slm_sampler *s)
{
	return s->seed;
}

void slm_sampler_reset(struct slm_sampler *s)
{
	s->hist_n = s->hist_head = 0;
	rng_seed(&s->rng, s->seed);
}

int slm_sampler_accept(struct slm_sampler *s, int32_t token)
{
	if (token < 0 || token >= s->n_vocab || s->p.penalty_last_n == 0)
		return 0;
	if (s->p.penalty_last_n > 0) {
		s->hist[s->hist_head] = token;
		s->hist_head = (s->hist_head + 1) % s->hist_cap;
		if (s->hist_n < s->hist_cap)
			s->hist_n++;
		return 0;
	}
	if (s->hist_n == s->hist_cap) {
		size_t cap = s->hist_cap ? s->hist_cap * 2 : 256;
		int32_t *h = realloc(s->hist, cap * sizeof(*h));
		if (!h)
			return SLM_ENOMEM;
		s->hist = h;
		s->hist_cap = cap;
	}
	s->hist[s->hist_n++] = token;
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return x < y ? -1 : x > y;
}

/* a ranks before b: higher logit, then lower id */
static inline bool cand_before(const struct cand *a, const struct cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int cmp_cand(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;
	if (cand_before(x, y))
		return -1;
	return cand_before(y, x) ? 1 : 0;
}

/*
 * Logits with bias and penalties, in id order, NaN as -inf.  Returns the
 * number of tokens with a finite logit, or a negative error.
 */
static int32_t prepare(struct slm_sampler *s, const float *logits,
		       struct slm_sample_ws *ws)
{
	int32_t n = s->n_vocab, finite = 0;
	struct cand *c = ws->c;
	for (int32_t i = 0; i < n; i++) {
		float l = logits[i];
		c[i].logit = isnan(l) ? -INFINITY : l;
		c[i].id = i;
	}
	for (size_t b = 0; b < s->p.n_logit_bias; b++)
		c[s->p.logit_bias[b].token].logit += s->p.logit_bias[b].bias;
	const struct slm_sampler_params *p = &s->p;
	if (p->penalty_last_n != 0 && s->hist_n > 0 &&
	    (p->repeat_penalty != 1.0f || p->frequency_penalty != 0.0f ||
	     p->presence_penalty != 0.0f)) {
		if (ws->win_cap < s->hist_n) {
			int32_t *w = realloc(ws->win, s->hist_n * sizeof(*w));
			if (!w)
				return SLM_ENOMEM;
			ws->win = w;
			ws->win_cap = s->hist_n;
		}
		memcpy(ws->win, s->hist, s->hist_n * sizeof(*ws->win));
		qsort(ws->win, s->hist_n, sizeof(*ws->win), cmp_int);
		for (size_t i = 0; i < s->hist_n;) {
			size_t j = i;
			while (j < s->hist_n && ws->win[j] == ws->win[i])
				j++;
			float *l = &c[ws->win[i]].logit;
			/* multiply a negative logit: dividing would raise it */
			if (*l <= 0)
				*l *= p->repeat_penalty;
			else
				*l /= p->repeat_penalty;
			*l -= (float)(j - i) * p->frequency_penalty +
			      p->presence_penalty;
			i = j;
		}
	}
	for (int32_t i = 0; i < n; i++)
		finite += c[i].logit > -INFINITY;
	return finite;
}

static int32_t argmax(const struct cand *c, int32_t n)
{
	int32_t best = 0;
	for (int32_t i = 1; i < n; i++)
		if (c[i].logit > c[best].logit)
			best = i;
	return best;
}

/* Move the k best of c[0..n) to the front, sorted (k < n). */
static void select_top(struct cand *c, int32_t n, int32_t k)
{
	/* c[0..k) as a heap whose root is the worst kept candidate */
	for (int32_t i = k / 2 - 1; i >= 0; i--) {
		for (int32_t j = i;;) {
			int32_t w = j, l = 2 * j + 1, r = l + 1;
			if (l < k && cand_before(&c[w], &c[l]))
				w = l;
			if (r < k && cand_before(&c[w], &c[r]))
				w = r;
			if (w == j)
				break;
			struct cand t = c[j];
			c[j] = c[w];
			c[w] = t;
			j = w;
		}
	}
	for (int32_t i = k; i < n; i++) {
		if (!cand_before(&c[i], &c[0]))
			continue;
		struct cand t = c[0];
		c[0] = c[i];
		c[i] = t;
		for (int32_t j = 0;;) {
			int32_t w = j, l = 2 * j + 1, r = l + 1;
			if (l < k && cand_before(&c[w], &c[l]))
				w = l;
			if (r < k && cand_before(&c[w], &c[r]))
				w = r;
			if (w == j)
				break;
			t = c[j];
			c[j] = c[w];
			c[w] = t;
			j = w;
		}
	}
	qsort(c, (size_t)k, sizeof(*c), cmp_cand);
}

#define TOPP_BUCKETS 1024
#define TOPP_RANGE 32.0 /* logits more than this below the best: last bucket */

/*
 * top-p: keep the smallest set of best tokens whose mass is at least
 * top_p of the candidates' (ties by id).  Sorted input: a prefix.
 * Otherwise the logits are bucketed by distance from the best; bucket
 * masses locate the bucket where the mass is reached, and only that
 * bucket is sorted.  The kept tokens above it stay in id order (the draw
 * does not need them sorted).  Returns the count kept, first in c.
 */
static int32_t top_p_cut(struct cand *c, double *e, int32_t m, float top_p,
			 bool *sorted)
{
	float max = *sorted ? c[0].logit : c[argmax(c, m)].logit;
	double total = 0;
	for (int32_t i = 0; i < m; i++)
		total += e[i] = exp((double)c[i].logit - max);
	double need = (double)top_p * total;
	if (*sorted) {
		double cum = 0;
		for (int32_t i = 0; i < m; i++) {
			cum += e[i];
			if (cum >= need)
				return i + 1;
		}
		return m;
	}
	double mass[TOPP_BUCKETS] = {0};
	const double scale = TOPP_BUCKETS / TOPP_RANGE;
	for (int32_t i = 0; i < m; i++) {
		double d = ((double)max - c[i].logit) * scale;
		int b = d < TOPP_BUCKETS - 1 ? (int)d : TOPP_BUCKETS - 1;
		mass[b] += e[i];
	}
	int bb = 0;
	double above = 0;
	while (bb < TOPP_BUCKETS - 1 && above + mass[bb] < need)
		above += mass[bb++];
	/* kept: buckets before bb, in order; then bucket bb, sorted */
	int32_t w = 0, n_bb = 0;
	for (int pass = 0; pass < 2; pass++) {
		for (int32_t i = w; i < m; i++) {
			double d = ((double)max - c[i].logit) * scale;
			int b = d < TOPP_BUCKETS - 1 ? (int)d
						     : TOPP_BUCKETS - 1;
			if (pass == 0 ? b < bb : b == bb) {
				struct cand t = c[w];
				c[w] = c[i];
				c[i] = t;
				w++;
				n_bb += pass;
			}
		}
	}
	int32_t first = w - n_bb;
	qsort(c + first, (size_t)n_bb, sizeof(*c), cmp_cand);
	double cum = above;
	for (int32_t i = first; i < w; i++) {
		cum += exp((double)c[i].logit - max);
		if (cum >= need)
			return i + 1;
	}
	return w > 0 ? w : 1;
}

/* Temperature, then the distribution: pr[i] for c[i], normalised. */
static void temper(const struct cand *c, int32_t m, float temp, bool sorted,
		   double *pr)
{
	float max = sorted ? c[0].logit : c[argmax(c, m)].logit;
	double sum = 0;
	for (int32_t i = 0; i < m; i++) {
		pr[i] = exp(((double)c[i].logit - max) / temp);
		sum += pr[i];
	}
	for (int32_t i = 0; i < m; i++)
		pr[i] /= sum;
}

/*
 * The chain after bias and penalties (temperature > 0).  Leaves the
 * remaining candidates in c[0..m) with their probabilities (after
 * temperature, normalised) in p[0..m); sets *sorted when c is in
 * decreasing order.  Returns m.
 */
static int32_t chain(struct slm_sampler *s, struct slm_sample_ws *ws,
		     bool *sorted)
{
	const struct slm_sampler_params *p = &s->p;
	struct cand *c = ws->c;
	double *pr = ws->p;
	int32_t m = s->n_vocab;
	*sorted = false;

	/* drop the tokens that cannot be drawn (banned, -inf) */
	int32_t w = 0;
	for (int32_t i = 0; i < m; i++)
		if (c[i].logit > -INFINITY)
			c[w++] = c[i];
	m = w;

	if (p->top_k > 0 && p->top_k < m) {
		select_top(c, m, p->top_k);
		m = p->top_k;
		*sorted = true;
	}
	if (p->top_p < 1.0f)
		m = top_p_cut(c, pr, m, p->top_p, sorted);
	if (p->min_p > 0.0f && m > 1) {
		float max = *sorted ? c[0].logit : c[argmax(c, m)].logit;
		float min_logit = max + logf(p->min_p);
		int32_t keep = 0;
		for (int32_t i = 0; i < m; i++)
			if (c[i].logit >= min_logit)
				c[keep++] = c[i];
		m = keep > 0 ? keep : 1;
	}
	temper(c, m, p->temp, *sorted, pr);
	return m;
}

static struct slm_sample_ws *get_ws(struct slm_sampler *s,
				    struct slm_sample_ws *ws)
{
	if (ws)
		return ws->n_vocab >= s->n_vocab ? ws : NULL;
	if (!s->own_ws)
		s->own_ws = slm_sample_ws_create(s->n_vocab);
	return s->own_ws;
}

int32_t slm_sampler_sample(struct slm_sampler *s, const float *logits,
			   struct slm_sample_ws *ws)
{
	ws = get_ws(s, ws);
	if (!ws)
		return SLM_ENOMEM;
	int32_t finite = prepare(s, logits, ws);
	if (finite < 0)
		return finite;
	if (finite == 0)
		return SLM_ERANGE;
	if (s->p.temp <= 0.0f)
		return ws->c[argmax(ws->c, s->n_vocab)].id;
	bool sorted;
	int32_t m = chain(s, ws, &sorted);
	double u = rng_uniform(&s->rng), cum = 0;
	for (int32_t i = 0; i < m; i++) {
		cum += ws->p[i];
		if (u < cum)
			return ws->c[i].id;
	}
	return ws->c[m - 1].id; /* rounding: u just below the total */
}

int32_t slm_sampler_probs(struct slm_sampler *s, const float *logits,
			  struct slm_sample_ws *ws, int32_t *ids, float *probs,
			  int32_t max)
{
	ws = get_ws(s, ws);
	if (!ws)
		return SLM_ENOMEM;
	int32_t finite = prepare(s, logits, ws);
	if (finite < 0)
		return finite;
	if (finite == 0)
		return SLM_ERANGE;
	if (s->p.temp <= 0.0f) {
		if (max > 0) {
			ids[0] = ws->c[argmax(ws->c, s->n_vocab)].id;
			probs[0] = 1.0f;
		}
		return 1;
	}
	bool sorted;
	int32_t m = chain(s, ws, &sorted);
	if (!sorted) {
		/* by logit, which orders the probabilities without the ties
		 * their rounding would make */
		qsort(ws->c, (size_t)m, sizeof(*ws->c), cmp_cand);
		temper(ws->c, m, s->p.temp, true, ws->p);
	}
	for (int32_t i = 0; i < m && i < max; i++) {
		ids[i] = ws->c[i].id;
		probs[i] = (float)ws->p[i];
	}
	return m;
}

/* ---- stopper ---------------------------------------------------------- */

void slm_stop_params_default(struct slm_stop_params *p)
{
	memset(p, 0, sizeof(*p));
	p->max_tokens = -1;
}

int slm_stop_params_check(const struct slm_stop_params *p,
			  struct slm_error *err)
{
	if (p->max_tokens == 0 || p->max_tokens < -1)
		return slm_error_set(err, SLM_EINVAL,
				     "max_tokens = %d is out of range (-1 = no "
				     "limit, or at least 1)",
				     p->max_tokens);
	if (p->n_stop > SLM_STOP_MAX)
		return slm_error_set(err, SLM_EINVAL,
				     "%zu stop strings (at most %d)", p->n_stop,
				     SLM_STOP_MAX);
	for (size_t i = 0; i < p->n_stop; i++) {
		const char *s = p->stop[i];
		size_t n = s ? strlen(s) : 0;
		if (n == 0 || n > SLM_STOP_MAX_LEN)
			return slm_error_set(err, SLM_EINVAL,
					     "stop string %zu: %s (1 to %d "
					     "bytes)",
					     i, n ? "too long" : "empty",
					     SLM_STOP_MAX_LEN);
		if (!slm_utf8_valid(s, n))
			return slm_error_set(err, SLM_EINVAL,
					     "stop string %zu is not valid "
					     "UTF-8",
					     i);
	}
	return 0;
}

struct slm_stopper {
	const struct slm_vocab *vocab;
	int32_t max_tokens;
	bool ignore_eog;
	size_t n_stop;
	char *stop[SLM_STOP_MAX];
	size_t stop_len[SLM_STOP_MAX];
	struct slm_detok_stream ds;
	struct slm_text pending; /* complete UTF-8, not yet released */
	int32_t n_tokens;
	enum slm_stop_reason reason;
	int which;
	bool finished;
};

int slm_stopper_create(const struct slm_vocab *v,
		       const struct slm_stop_params *p,
		       struct slm_stopper **out, struct slm_error *err)
{
	*out = NULL;
	int rc = slm_stop_params_check(p, err);
	if (rc)
		return rc;
	struct slm_stopper *st = calloc(1, sizeof(*st));
	if (!st)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	st->vocab = v;
	st->max_tokens = p->max_tokens;
	st->ignore_eog = p->ignore_eog;
	st->which = -1;
	for (size_t i = 0; i < p->n_stop; i++) {
		st->stop[i] = strdup(p->stop[i]);
		if (!st->stop[i]) {
			slm_stopper_destroy(st);
			return slm_error_set(err, SLM_ENOMEM, "out of memory");
		}
		st->stop_len[i] = strlen(p->stop[i]);
		st->n_stop = i + 1;
	}
	slm_detok_stream_init(&st->ds, v,
			      p->render_special ? SLM_DETOK_SPECIAL : 0);
	*out = st;
	return 0;
}

void slm_stopper_destroy(struct slm_stopper *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n_stop; i++)
		free(st->stop[i]);
	slm_text_free(&st->pending);
	free(st);
}

/* Release `n` bytes of pending to out and keep the rest. */
static int release(struct slm_stopper *st, size_t n, struct slm_text *out)
{
	if (slm_text_append(out, st->pending.data, n))
		return SLM_ENOMEM;
	memmove(st->pending.data, st->pending.data + n, st->pending.len - n);
	st->pending.len -= n;
	st->pending.data[st->pending.len] = '\0';
	return 0;
}

/*
 * Look for the stop strings in what is pending.  One found: release what
 * comes before the earliest, drop the rest, stop.  None: release all but
 * the longest tail that may still become a stop string (all when final).
 */
static int check_stops(struct slm_stopper *st, bool final, struct slm_text *out)
{
	const char *d = st->pending.data;
	size_t n = st->pending.len;
	if (n == 0)
		return slm_text_append(out, "", 0);
	size_t best = SIZE_MAX;
	for (size_t i = 0; i < st->n_stop; i++) {
		const char *hit = memmem(d, n, st->stop[i], st->stop_len[i]);
		if (hit && (size_t)(hit - d) < best) {
			best = (size_t)(hit - d);
			st->which = (int)i;
		}
	}
	if (best != SIZE_MAX) {
		if (release(st, best, out))
			return SLM_ENOMEM;
		st->pending.len = 0;
		st->reason = SLM_STOP_STRING;
		return 0;
	}
	size_t hold = 0;
	if (!final) {
		for (size_t i = 0; i < st->n_stop; i++) {
			size_t k = SLM_MIN(st->stop_len[i] - 1, n);
			for (; k > hold; k--)
				if (!memcmp(d + n - k, st->stop[i], k))
					break;
			if (k > hold)
				hold = k;
		}
	}
	return release(st, n - hold, out);
}

int slm_stopper_push(struct slm_stopper *st, int32_t token,
		     struct slm_text *out, struct slm_error *err)
{
	if (st->reason != SLM_STOP_NONE || st->finished)
		return slm_error_set(err, SLM_ESTATE,
				     "token pushed after the generation "
				     "stopped");
	if (token < 0 || token >= slm_vocab_n_tokens(st->vocab))
		return slm_error_set(err, SLM_ERANGE,
				     "token id %d is out of range (the "
				     "vocabulary has %d tokens)",
				     token, slm_vocab_n_tokens(st->vocab));
	st->n_tokens++;
	if (!st->ignore_eog && slm_vocab_is_eog(st->vocab, token)) {
		st->reason = SLM_STOP_EOG;
		return SLM_STOP_EOG;
	}
	int rc = slm_detok_stream_push(&st->ds, token, &st->pending, err);
	if (rc)
		return rc;
	if (check_stops(st, false, out))
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	if (st->reason == SLM_STOP_STRING)
		return SLM_STOP_STRING;
	if (st->max_tokens > 0 && st->n_tokens >= st->max_tokens) {
		st->reason = SLM_STOP_MAX_TOKENS;
		return SLM_STOP_MAX_TOKENS;
	}
	return SLM_STOP_NONE;
}

int slm_stopper_finish(struct slm_stopper *st, struct slm_text *out)
{
	if (st->finished)
		return slm_text_append(out, "", 0);
	st->finished = true;
	if (st->reason == SLM_STOP_STRING)
		return slm_text_append(out, "", 0);
	if (slm_detok_stream_finish(&st->ds, &st->pending))
		return SLM_ENOMEM;
	enum slm_stop_reason before = st->reason;
	st->reason = SLM_STOP_NONE;
	int rc = check_stops(st, true, out);
	if (st->reason == SLM_STOP_NONE)
		st->reason = before;
	return rc;
}

enum slm_stop_reason slm_stopper_reason(const struct slm_stopper *st)
{
	return st->reason;
}

int slm_stopper_which(const struct slm_stopper *st)
{
	return st->which;
}

int32_t slm_stopper_n_tokens(const struct slm_stopper *st)
{
	return st->n_tokens;
}

/* ---- command-line options ----------------------------------------------- */

const char *slm_sampler_cli_help(void)
{
	return "  --temp F              temperature; 0 = greedy (0.8)\n"
	       "  --top-k N             keep the N most likely; 0 = off (40)\n"
	       "  --top-p F             keep the smallest set with mass F; 1 "
	       "= off (0.95)\n"
	       "  --min-p F             drop tokens below F x the best's "
	       "probability; 0 = off (0.05)\n"
	       "  --repeat-penalty F    penalise the last N tokens; 1 = off "
	       "(1.0)\n"
	       "  --repeat-last-n N     tokens the penalties look at; -1 = "
	       "all, 0 = off (64)\n"
	       "  --frequency-penalty F subtract F x count (0)\n"
	       "  --presence-penalty F  subtract F once a token appeared (0)\n"
	       "  --seed N              seed of the draw; -1 = random (-1)\n"
	       "  --logit-bias ID+F     add F to token ID's logit (ID-inf "
	       "bans it); repeatable\n"
	       "  -n, --n-predict N     stop after N tokens; -1 = no limit "
	       "(-1)\n"
	       "  --stop TEXT           stop before TEXT; repeatable\n"
	       "  --ignore-eos          go on past end-of-generation tokens\n";
}

static int parse_float(const char *opt, const char *v, float *out,
		       struct slm_error *err)
{
	char *end;
	errno = 0;
	float f = strtof(v, &end);
	if (end == v || *end || errno || isnan(f))
		return slm_error_set(err, SLM_EINVAL,
				     "%s: '%s' is not a number", opt, v);
	*out = f;
	return 0;
}

static int parse_int(const char *opt, const char *v, int32_t *out,
		     struct slm_error *err)
{
	char *end;
	errno = 0;
	long l = strtol(v, &end, 10);
	if (end == v || *end || errno || l < INT32_MIN || l > INT32_MAX)
		return slm_error_set(err, SLM_EINVAL,
				     "%s: '%s' is not an integer", opt, v);
	*out = (int32_t)l;
	return 0;
}

int slm_sampler_cli_option(struct slm_sampler_params *sp,
			   struct slm_stop_params *stp, int argc, char **argv,
			   int *i, struct slm_error *err)
{
	static const char *const takes_value[] = {"--temp",
						  "--top-k",
						  "--top-p",
						  "--min-p",
						  "--repeat-penalty",
						  "--repeat-last-n",
						  "--frequency-penalty",
						  "--presence-penalty",
						  "--seed",
						  "--logit-bias",
						  "-n",
						  "--n-predict",
						  "--stop",
						  NULL};
	const char *opt = argv[*i];
	if (!strcmp(opt, "--ignore-eos")) {
		stp->ignore_eog = true;
		return 1;
	}
	bool known = false;
	for (size_t k = 0; takes_value[k]; k++)
		known |= !strcmp(opt, takes_value[k]);
	if (!known)
		return 0;
	if (*i + 1 >= argc)
		return slm_error_set(err, SLM_EINVAL, "%s needs a value", opt);
	const char *v = argv[++*i];
	int rc = 0;
	if (!strcmp(opt, "--temp"))
		rc = parse_float(opt, v, &sp->temp, err);
	else if (!strcmp(opt, "--top-k"))
		rc = parse_int(opt, v, &sp->top_k, err);
	else if (!strcmp(opt, "--top-p"))
		rc = parse_float(opt, v, &sp->top_p, err);
	else if (!strcmp(opt, "--min-p"))
		rc = parse_float(opt, v, &sp->min_p, err);
	else if (!strcmp(opt, "--repeat-penalty"))
		rc = parse_float(opt, v, &sp->repeat_penalty, err);
	else if (!strcmp(opt, "--repeat-last-n"))
		rc = parse_int(opt, v, &sp->penalty_last_n, err);
	else if (!strcmp(opt, "--frequency-penalty"))
		rc = parse_float(opt, v, &sp->frequency_penalty, err);
	else if (!strcmp(opt, "--presence-penalty"))
		rc = parse_float(opt, v, &sp->presence_penalty, err);
	else if (!strcmp(opt, "-n") || !strcmp(opt, "--n-predict"))
		rc = parse_int(opt, v, &stp->max_tokens, err);
	else if (!strcmp(opt, "--seed")) {
		char *end;
		errno = 0;
		if (!strcmp(v, "-1")) {
			sp->seed = SLM_SEED_RANDOM;
		} else {
			unsigned long long u = strtoull(v, &end, 10);
			if (end == v || *end || errno || v[0] == '-')
				return slm_error_set(err, SLM_EINVAL,
						     "--seed: '%s' is not a "
						     "seed (0..2^64-2, or -1)",
						     v);
			sp->seed = u;
		}
	} else if (!strcmp(opt, "--stop")) {
		if (stp->n_stop >= SLM_STOP_MAX)
			return slm_error_set(err, SLM_EINVAL,
					     "--stop: at most %d stop strings",
					     SLM_STOP_MAX);
		stp->stop[stp->n_stop++] = v;
	} else if (!strcmp(opt, "--logit-bias")) {
		/* ID+BIAS or ID-BIAS, as llama.cpp */
		char *end;
		errno = 0;
		long id = strtol(v, &end, 10);
		float bias;
		if (end == v || errno || id < 0 || id > INT32_MAX ||
		    (*end != '+' && *end != '-') ||
		    parse_float(opt, end, &bias, err))
			return slm_error_set(err, SLM_EINVAL,
					     "--logit-bias: '%s' is not "
					     "ID+BIAS or ID-BIAS",
					     v);
		if (sp->n_logit_bias >= SLM_SAMPLER_MAX_BIAS)
			return slm_error_set(err, SLM_EINVAL,
					     "--logit-bias: at most %d entries",
					     SLM_SAMPLER_MAX_BIAS);
		sp->logit_bias[sp->n_logit_bias].token = (int32_t)id;
		sp->logit_bias[sp->n_logit_bias].bias = bias;
		sp->n_logit_bias++;
	}
	return rc < 0 ? rc : 1;
}
