/*
 * slm logits: teacher-forced logits of a token sequence, for comparing
 * with other engines (llama.cpp's logits of the same file and input).
 *
 *   slm logits -m FILE (--ids 1,2,3 | --text STR) -o OUT.f32 [--incremental]
 *
 * OUT gets exactly n_tokens x n_vocab float32 values, little-endian,
 * row-major [n_tokens][n_vocab], no header: row p is the logits after
 * the tokens 0..p.  --text is tokenized with what the vocabulary adds
 * around a prompt (BOS), without parsing special-token text.  The tokens
 * go through the forward pass in batches of engine.batch (llama.cpp's
 * n_ubatch), or one per call with --incremental.  The KV cache type is
 * cache.kv_type (f16 by default; llama.cpp's reference logits used f32:
 * --set cache.kv_type=f32).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "client/slm_engine_cli.h"
#include "common/cli.h"
#include "common/clock.h"

#define PROG "slm logits"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm logits -m FILE (--ids 1,2,3 | --text STR) -o "
		"OUT.f32 [--incremental]\n"
		"  --ids LIST          the input as token ids\n"
		"  --text STR          the input as text (BOS added as the "
		"vocabulary says)\n"
		"  -o, --output FILE   float32 [n_tokens][n_vocab], no "
		"header\n"
		"  --incremental       one token per forward call through "
		"the KV cache\n"
		"%s",
		slm_engine_cli_help);
}

static int cmd_logits(int argc, char **argv)
{
	struct slm_engine_cli o = {.prog = PROG};
	const char *ids_arg = NULL, *text = NULL, *outp = NULL;
	bool incremental = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (slm_engine_cli_option(&o, argc, argv, &i))
			continue;
		if (!strcmp(a, "--ids") || !strcmp(a, "--text") ||
		    !strcmp(a, "-o") || !strcmp(a, "--output")) {
			if (i + 1 >= argc)
				slm_cli_die(PROG, "%s needs a value", a);
			const char *v = argv[++i];
			if (!strcmp(a, "--ids"))
				ids_arg = v;
			else if (!strcmp(a, "--text"))
				text = v;
			else
				outp = v;
		} else if (!strcmp(a, "--incremental")) {
			incremental = true;
		} else {
			slm_cli_die(PROG, "unknown option '%s' (see --help)",
				    a);
		}
	}
	if (!ids_arg == !text)
		slm_cli_die(PROG, "give the input as --ids LIST or --text STR "
				  "(exactly one)");
	if (!outp)
		slm_cli_die(PROG, "give the output file with -o FILE");
	struct slm_engine_params ep;
	struct slm_config *cfg = slm_engine_cli_setup(&o, &ep);
	struct slm_error err = {0};
	struct slm_tokens toks = {0};
	if (ids_arg) {
		size_t n;
		int32_t *ids = slm_engine_cli_ids(PROG, ids_arg, &n);
		for (size_t i = 0; i < n; i++)
			if (slm_tokens_push(&toks, ids[i]))
				slm_cli_die(PROG, "out of memory");
		free(ids);
	}
	/* the context is the input (plus a text's BOS, and room for the
	 * tokenizer to make more tokens than bytes is not needed: a
	 * token covers at least one byte) */
	if (!ep.n_ctx)
		ep.n_ctx = (uint32_t)(ids_arg ? toks.n : strlen(text) + 2);
	struct slm_engine *e = slm_engine_cli_open(&o, &ep);
	const uint32_t nv = slm_forward_n_vocab(e->fwd);
	if (text && slm_tokenize(e->vocab, text, strlen(text),
				 SLM_TOK_ADD_SPECIAL, &toks, &err))
		slm_cli_die(PROG, "%s", err.msg);
	if (!toks.n)
		slm_cli_die(PROG, "the input has no tokens");
	for (size_t i = 0; i < toks.n; i++)
		if ((uint32_t)toks.ids[i] >= nv)
			slm_cli_die(
				PROG,
				"token id %d is beyond the vocabulary of %u",
				toks.ids[i], nv);
	if (toks.n > e->n_ctx)
		slm_cli_die(PROG, "%zu tokens, the context is %u (engine.ctx)",
			    toks.n, e->n_ctx);
	float *logits = malloc(toks.n * nv * sizeof(float));
	if (!logits)
		slm_cli_die(PROG, "out of memory for %zu x %u logits", toks.n,
			    nv);
	struct slm_kv_seq seq;
	if (slm_engine_seq_init(e, &seq))
		slm_cli_die(PROG, "out of memory");
	uint64_t t0 = slm_now_ns();
	if (slm_engine_feed(e, &seq, toks.ids, (uint32_t)toks.n,
			    incremental ? 1 : 0, true, logits, &err))
		slm_cli_die(PROG, "%s", err.msg);
	double ms = (double)(slm_now_ns() - t0) / 1e6;
	FILE *f = fopen(outp, "wb");
	if (!f)
		slm_cli_die(PROG, "%s: %s", outp, strerror(errno));
	size_t nf = toks.n * nv;
	if (fwrite(logits, sizeof(float), nf, f) != nf || fclose(f))
		slm_cli_die(PROG, "%s: write failed: %s", outp,
			    strerror(errno));
	fprintf(stderr,
		"%s: %zu tokens x %u logits to %s (%s, KV %s, %.1f ms, %.1f "
		"tokens per second)\n",
		PROG, toks.n, nv, outp, incremental ? "incremental" : "batch",
		slm_kv_type_name(ep.kv_type), ms,
		ms > 0 ? (double)toks.n / ms * 1e3 : 0);
	slm_kv_seq_free(e->kv, &seq);
	free(logits);
	slm_tokens_free(&toks);
	slm_engine_close(e);
	slm_config_destroy(cfg);
	return 0;
}

SLM_COMMAND("logits", cmd_logits,
	    "teacher-forced logits of a token sequence, float32 [n][n_vocab]")
