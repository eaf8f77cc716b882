/*
 * sampler.h: choosing the next token from the logits, and deciding when a
 * generation stops.  Both are per-request objects: the serving core holds
 * one sampler and one stopper per sequence.
 *
 * The sampler applies, in llama.cpp's order: logit bias; repetition,
 * frequency and presence penalties over the last N accepted tokens;
 * top-k; top-p; min-p; temperature; then a draw from the softmax with the
 * request's seed.  Temperature 0 is greedy: the highest logit after bias
 * and penalties, ties to the lowest id (llama.cpp's greedy sampler).  The
 * same seed, parameters, accepted tokens and logits give the same tokens
 * on any machine (the draw uses its own generator, xoshiro256**, and
 * double-precision sums in a fixed order).  Defaults are llama.cpp's.
 *
 * The stopper turns sampled tokens into the text a client sees: it stops
 * at an end-of-generation token (whose text is not shown), after
 * max_tokens, or at a stop string (which is not shown, nor anything after
 * it).  Text that might be the start of a stop string, and bytes of an
 * incomplete UTF-8 sequence, are held back until decided, so nothing
 * released is ever taken back.
 *
 * Threads: a sampler or stopper is used by one thread at a time; a
 * workspace (struct slm_sample_ws) belongs to one thread and can serve
 * any number of samplers of the same vocabulary size in turn.
 */
#ifndef SLM_ENGINE_SAMPLER_H
#define SLM_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/text.h"

struct slm_vocab;

#define SLM_SEED_RANDOM UINT64_MAX /* draw a seed from the OS */
#define SLM_SAMPLER_MAX_BIAS 300   /* logit bias entries per request */
#define SLM_STOP_MAX 16		   /* stop strings per request */
#define SLM_STOP_MAX_LEN 256	   /* bytes per stop string */

struct slm_logit_bias {
	int32_t token;
	float bias; /* added to the logit; -INFINITY bans the token */
};

struct slm_sampler_params {
	float temp;		 /* 0.8; 0 = greedy; [0, 100] */
	int32_t top_k;		 /* 40; 0 = off; >= 0 */
	float top_p;		 /* 0.95; 1 = off; [0, 1] */
	float min_p;		 /* 0.05; 0 = off; [0, 1] */
	float repeat_penalty;	 /* 1.0 = off; (0, 100] */
	float frequency_penalty; /* 0 = off; [-100, 100] */
	float presence_penalty;	 /* 0 = off; [-100, 100] */
	int32_t penalty_last_n;	 /* 64; 0 = off; -1 = all accepted */
	uint64_t seed;		 /* SLM_SEED_RANDOM (default) or a seed */
	size_t n_logit_bias;
	struct slm_logit_bias logit_bias[SLM_SAMPLER_MAX_BIAS];
};

/* llama.cpp's defaults (above). */
void slm_sampler_params_default(struct slm_sampler_params *p);

/* Check every parameter against its range (token ids against n_vocab);
 * SLM_EINVAL with the parameter's name and value. */
int slm_sampler_params_check(const struct slm_sampler_params *p,
			     int32_t n_vocab,
			     struct slm_error *err) SLM_MUST_CHECK;

struct slm_sampler;
struct slm_sample_ws;

/* Create a sampler for n_vocab logits (params are checked and copied). */
int slm_sampler_create(const struct slm_sampler_params *p, int32_t n_vocab,
		       struct slm_sampler **out,
		       struct slm_error *err) SLM_MUST_CHECK;
void slm_sampler_destroy(struct slm_sampler *s);

/* The seed in use (the drawn one when SLM_SEED_RANDOM was asked), to log
 * and to reproduce the request. */
uint64_t slm_sampler_seed(const struct slm_sampler *s);

/* Forget the accepted tokens and restart the generator from the seed. */
void slm_sampler_reset(struct slm_sampler *s);

/* Record a token for the penalties: the prompt's tokens (if they should
 * count) and every token sampled.  Ids out of range are ignored. */
int slm_sampler_accept(struct slm_sampler *s, int32_t token) SLM_MUST_CHECK;

/* Scratch for one thread: the candidate array of n_vocab entries. */
struct slm_sample_ws *slm_sample_ws_create(int32_t n_vocab);
void slm_sample_ws_destroy(struct slm_sample_ws *ws);

/*
 * Choose the next token from n_vocab logits (read only).  ws: a workspace
 * of at least this vocabulary size, or NULL to use the sampler's own
 * (allocated on first use).  Returns the token id, or a negative SLM_E*:
 * SLM_ERANGE when no token can be chosen (every logit -inf or NaN after
 * bias), SLM_ENOMEM.  Does not accept the token.
 */
int32_t slm_sampler_sample(struct slm_sampler *s, const float *logits,
			   struct slm_sample_ws *ws);

/*
 * The distribution the draw would use: after the whole chain, the
 * remaining tokens by decreasing probability (ties by id).  Up to max
 * entries go to ids[] / probs[]; returns how many tokens remain (may
 * exceed max), or a negative SLM_E*.  Greedy gives one token with p = 1.
 * Does not advance the generator.
 */
int32_t slm_sampler_probs(struct slm_sampler *s, const float *logits,
			  struct slm_sample_ws *ws, int32_t *ids, float *probs,
			  int32_t max);

/* ---- stop conditions -------------------------------------------------- */

enum slm_stop_reason {
	SLM_STOP_NONE = 0,	 /* go on */
	SLM_STOP_EOG = 1,	 /* an end-of-generation token */
	SLM_STOP_MAX_TOKENS = 2, /* max_tokens generated */
	SLM_STOP_STRING = 3,	 /* a stop string appeared */
};

struct slm_stop_params {
	int32_t max_tokens; /* -1 (default) = no limit; else >= 1 */
	size_t n_stop;
	const char *stop[SLM_STOP_MAX]; /* copied by the stopper */
	bool ignore_eog;		/* go on past end-of-generation */
	bool render_special;		/* show control tokens' text */
};

void slm_stop_params_default(struct slm_stop_params *p);
int slm_stop_params_check(const struct slm_stop_params *p,
			  struct slm_error *err) SLM_MUST_CHECK;

struct slm_stopper;

int slm_stopper_create(const struct slm_vocab *v,
		       const struct slm_stop_params *p,
		       struct slm_stopper **out,
		       struct slm_error *err) SLM_MUST_CHECK;
void slm_stopper_destroy(struct slm_stopper *st);

/*
 * Feed the token just sampled; append to out the text that is now final.
 * Returns SLM_STOP_NONE to go on, the reason once generation must stop,
 * or a negative SLM_E* (SLM_ESTATE when called after a stop, SLM_ERANGE
 * for an id out of range, SLM_ENOMEM).  After a stop, call finish.
 */
int slm_stopper_push(struct slm_stopper *st, int32_t token,
		     struct slm_text *out,
		     struct slm_error *err) SLM_MUST_CHECK;

/* End the text (at a stop, or when the caller ends the generation):
 * append what was held back, short of a stop string and what follows;
 * an incomplete UTF-8 tail becomes U+FFFD. */
int slm_stopper_finish(struct slm_stopper *st,
		       struct slm_text *out) SLM_MUST_CHECK;

enum slm_stop_reason slm_stopper_reason(const struct slm_stopper *st);
/* Index of the stop string that matched, or -1. */
int slm_stopper_which(const struct slm_stopper *st);
/* Tokens pushed so far. */
int32_t slm_stopper_n_tokens(const struct slm_stopper *st);

/* ---- command-line options ----------------------------------------------- */

/*
 * For programs such as `slm run`: if argv[*i] is a sampling or stop
 * option, consume it (and its value, advancing *i) into the params and
 * return 1; return 0 if it is not one; SLM_EINVAL with err naming the
 * option and the value if it is bad.  Options: --temp F, --top-k N,
 * --top-p F, --min-p F, --repeat-penalty F, --repeat-last-n N,
 * --frequency-penalty F, --presence-penalty F, --seed N,
 * --logit-bias ID[+-]BIAS (repeatable), -n/--n-predict N (max tokens),
 * --stop TEXT (repeatable; the string stays owned by argv),
 * --ignore-eos.  The values are range-checked by the params checks.
 */
int slm_sampler_cli_option(struct slm_sampler_params *sp,
			   struct slm_stop_params *stp, int argc, char **argv,
			   int *i, struct slm_error *err);

/* Help text for those options, one line each. */
const char *slm_sampler_cli_help(void);

#endif
