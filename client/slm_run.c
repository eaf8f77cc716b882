/*
 * slm run: generate a continuation of a prompt with a model, streaming the
 * text, then a timing summary like llama.cpp's.
 *
 *   slm run -m FILE (-p PROMPT | --ids 1,2,3) [-n N] [sampling flags]
 *           [--chat] [--special] [--json] [-t N] [--simd S] [-c F] [--set K=V]
 *
 * The prompt is tokenized as llama.cpp tokenizes a prompt: with what the
 * vocabulary adds around it (BOS); special-token text such as
 * `<|im_start|>` is parsed only with --special or --chat.  --chat formats
 * the prompt as one user message with the model's chat template (or
 * model.chat_template) and an opened assistant turn, as llama.cpp's
 * llama_chat_apply_template does.  Generation stops at an end-of-generation
 * token, after -n tokens, at a --stop string, or when the context
 * (engine.ctx, default the model's, at most 4096) is full.
 *
 * --json prints nothing while generating and then one object:
 *   {"prompt_ids":[...],"ids":[...],"text":"...","stop":"eog",
 *    "timings":{"load_ms":..,"prompt_ms":..,"prompt_tok_s":..,
 *               "gen_ms":..,"gen_tok_s":..,"n_prompt":..,"n_gen":..},
 *    "seed":..}
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "client/slm_engine_cli.h"
#include "common/cli.h"
#include "common/clock.h"
#include "engine/chat.h"
#include "engine/quant.h"
#include "engine/sampler.h"

#define PROG "slm run"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm run -m FILE (-p PROMPT | --ids 1,2,3) [-n N] "
		"[options]\n"
		"  -p, --prompt TEXT   the prompt\n"
		"  --ids LIST          the prompt as token ids\n"
		"  --chat              the prompt is one user message of a "
		"chat (the model's\n"
		"                      template, or model.chat_template)\n"
		"  --special           parse special-token text in the "
		"prompt\n"
		"  --json              print one JSON object at the end "
		"instead of the text\n"
		"%s%s",
		slm_engine_cli_help, slm_sampler_cli_help());
}

static const char *stop_name(int reason, bool ctx_full)
{
	if (ctx_full)
		return "ctx";
	switch (reason) {
	case SLM_STOP_EOG:
		return "eog";
	case SLM_STOP_MAX_TOKENS:
		return "max_tokens";
	case SLM_STOP_STRING:
		return "stop_string";
	default:
		return "none";
	}
}

static cJSON *ids_json(const int32_t *ids, size_t n)
{
	cJSON *a = cJSON_CreateArray();
	for (size_t i = 0; a && i < n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateNumber(ids[i]));
	return a;
}

static int cmd_run(int argc, char **argv)
{
	struct slm_engine_cli o = {.prog = PROG};
	struct slm_sampler_params sp;
	struct slm_stop_params stp;
	slm_sampler_params_default(&sp);
	slm_stop_params_default(&stp);
	const char *prompt = NULL, *ids_arg = NULL;
	bool chat = false, special = false, json = false;
	struct slm_error err = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (slm_engine_cli_option(&o, argc, argv, &i))
			continue;
		int rc =
			slm_sampler_cli_option(&sp, &stp, argc, argv, &i, &err);
		if (rc < 0)
			slm_cli_die(PROG, "%s", err.msg);
		if (rc > 0)
			continue;
		if (!strcmp(a, "-p") || !strcmp(a, "--prompt") ||
		    !strcmp(a, "--ids")) {
			if (i + 1 >= argc)
				slm_cli_die(PROG, "%s needs a value", a);
			if (a[2] == 'i')
				ids_arg = argv[++i];
			else
				prompt = argv[++i];
		} else if (!strcmp(a, "--chat")) {
			chat = true;
		} else if (!strcmp(a, "--special")) {
			special = true;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else {
			slm_cli_die(PROG, "unknown option '%s' (see --help)",
				    a);
		}
	}
	if (!prompt == !ids_arg)
		slm_cli_die(PROG, "give the prompt as -p TEXT or --ids LIST "
				  "(exactly one)");
	if (chat && ids_arg)
		slm_cli_die(PROG, "--chat formats a text prompt, not --ids");
	struct slm_engine_params ep;
	struct slm_config *cfg = slm_engine_cli_setup(&o, &ep);
	ep.n_ctx_cap = 4096; /* llama.cpp's default context */
	struct slm_engine *e = slm_engine_cli_open(&o, &ep);
	const uint32_t nv = slm_forward_n_vocab(e->fwd);

	/* the prompt's ids */
	struct slm_tokens toks = {0};
	if (ids_arg) {
		size_t n;
		int32_t *ids = slm_engine_cli_ids(PROG, ids_arg, &n);
		for (size_t i = 0; i < n; i++) {
			if ((uint32_t)ids[i] >= nv)
				slm_cli_die(PROG,
					    "--ids: id %d is beyond the "
					    "vocabulary of %u",
					    ids[i], nv);
			if (slm_tokens_push(&toks, ids[i]))
				slm_cli_die(PROG, "out of memory");
		}
		free(ids);
	} else {
		struct slm_text text = {0};
		const char *src = prompt;
		if (chat) {
			const char *name = NULL;
			if (slm_chat_resolve(
				    slm_cfg_str(cfg,
						SLM_CFG_MODEL_CHAT_TEMPLATE),
				    slm_vocab_chat_template(e->vocab), &name,
				    &err))
				slm_cli_die(PROG, "%s", err.msg);
			struct slm_chat_msg msg = {"user", prompt};
			if (slm_chat_apply(name, &msg, 1, true, &text, &err))
				slm_cli_die(PROG, "%s", err.msg);
			src = text.data;
		}
		unsigned flags = SLM_TOK_ADD_SPECIAL |
				 (chat || special ? SLM_TOK_PARSE_SPECIAL : 0);
		if (slm_tokenize(e->vocab, src, strlen(src), flags, &toks,
				 &err))
			slm_cli_die(PROG, "%s", err.msg);
		slm_text_free(&text);
	}
	if (!toks.n)
		slm_cli_die(PROG, "the prompt has no tokens");
	if (toks.n >= e->n_ctx)
		slm_cli_die(PROG,
			    "the prompt has %zu tokens, the context %u "
			    "(engine.ctx)",
			    toks.n, e->n_ctx);

	struct slm_sampler *smp = NULL;
	struct slm_stopper *stopper = NULL;
	if (slm_sampler_create(&sp, (int32_t)nv, &smp, &err) ||
	    slm_stopper_create(e->vocab, &stp, &stopper, &err))
		slm_cli_die(PROG, "%s", err.msg);
	for (size_t i = 0; i < toks.n; i++)
		if (slm_sampler_accept(smp, toks.ids[i]))
			slm_cli_die(PROG, "out of memory");

	struct slm_kv_seq seq;
	if (slm_engine_seq_init(e, &seq))
		slm_cli_die(PROG, "out of memory");
	float *logits = malloc((size_t)nv * sizeof(float));
	struct slm_tokens gen = {0};
	struct slm_text out = {0};
	if (!logits)
		slm_cli_die(PROG, "out of memory");

	uint64_t t0 = slm_now_ns();
	if (slm_engine_feed(e, &seq, toks.ids, (uint32_t)toks.n, 0, false,
			    logits, &err))
		slm_cli_die(PROG, "%s", err.msg);
	uint64_t prompt_ns = slm_now_ns() - t0, gen_ns = 0;
	uint32_t n_eval = 0;
	int reason = SLM_STOP_NONE;
	bool ctx_full = false;
	for (;;) {
		int32_t t = slm_sampler_sample(smp, logits, NULL);
		if (t < 0)
			slm_cli_die(PROG, "sampling failed: %s",
				    slm_strerror(t));
		if (slm_sampler_accept(smp, t) || slm_tokens_push(&gen, t))
			slm_cli_die(PROG, "out of memory");
		size_t before = out.len;
		reason = slm_stopper_push(stopper, t, &out, &err);
		if (reason < 0)
			slm_cli_die(PROG, "%s", err.msg);
		if (!json && out.len > before) {
			fwrite(out.data + before, 1, out.len - before, stdout);
			fflush(stdout);
		}
		if (reason != SLM_STOP_NONE)
			break;
		if (seq.n_pos + 1 > e->n_ctx) {
			ctx_full = true;
			break;
		}
		uint64_t t1 = slm_now_ns();
		if (slm_engine_feed(e, &seq, &t, 1, 0, false, logits, &err))
			slm_cli_die(PROG, "%s", err.msg);
		gen_ns += slm_now_ns() - t1;
		n_eval++;
	}
	size_t before = out.len;
	if (slm_stopper_finish(stopper, &out))
		slm_cli_die(PROG, "out of memory");
	if (!json) {
		fwrite(out.data + before, 1, out.len - before, stdout);
		putchar('\n');
	}

	double load_ms = (double)e->load_ns / 1e6;
	double prompt_ms = (double)prompt_ns / 1e6;
	double gen_ms = (double)gen_ns / 1e6;
	double prompt_tps =
		prompt_ms > 0 ? (double)toks.n / prompt_ms * 1e3 : 0;
	double gen_tps = gen_ms > 0 ? (double)n_eval / gen_ms * 1e3 : 0;
	int status = 0;
	if (json) {
		cJSON *root = cJSON_CreateObject();
		cJSON_AddItemToObject(root, "prompt_ids",
				      ids_json(toks.ids, toks.n));
		cJSON_AddItemToObject(root, "ids", ids_json(gen.ids, gen.n));
		cJSON_AddStringToObject(root, "text", out.data ? out.data : "");
		cJSON_AddStringToObject(root, "stop",
					stop_name(reason, ctx_full));
		cJSON *tm = cJSON_AddObjectToObject(root, "timings");
		cJSON_AddNumberToObject(tm, "load_ms", load_ms);
		cJSON_AddNumberToObject(tm, "prompt_ms", prompt_ms);
		cJSON_AddNumberToObject(tm, "prompt_tok_s", prompt_tps);
		cJSON_AddNumberToObject(tm, "gen_ms", gen_ms);
		cJSON_AddNumberToObject(tm, "gen_tok_s", gen_tps);
		cJSON_AddNumberToObject(tm, "n_prompt", (double)toks.n);
		cJSON_AddNumberToObject(tm, "n_gen", (double)gen.n);
		cJSON_AddNumberToObject(tm, "n_eval", n_eval);
		char seed[32]; /* a JSON number, exact beyond 2^53 */
		snprintf(seed, sizeof(seed), "%llu",
			 (unsigned long long)slm_sampler_seed(smp));
		cJSON_AddRawToObject(root, "seed", seed);
		char *s = cJSON_PrintUnformatted(root);
		if (!s)
			slm_cli_die(PROG, "out of memory");
		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(root);
	}
	if (fflush(stdout) || ferror(stdout))
		status = 1;
	fprintf(stderr,
		"\n%s: load time        = %10.2f ms\n"
		"%s: prompt eval time = %10.2f ms / %5zu tokens (%8.2f ms "
		"per token, %8.2f tokens per second)\n"
		"%s: eval time        = %10.2f ms / %5u runs   (%8.2f ms "
		"per token, %8.2f tokens per second)\n"
		"%s: generated %zu tokens, stop: %s; %d threads, %s, KV %s\n",
		PROG, load_ms, PROG, prompt_ms, toks.n,
		toks.n ? prompt_ms / (double)toks.n : 0, prompt_tps, PROG,
		gen_ms, n_eval, n_eval ? gen_ms / n_eval : 0, gen_tps, PROG,
		gen.n, stop_name(reason, ctx_full), ep.n_threads,
		slm_simd_name(slm_quant_simd()), slm_kv_type_name(ep.kv_type));

	slm_kv_seq_free(e->kv, &seq);
	free(logits);
	slm_tokens_free(&toks);
	slm_tokens_free(&gen);
	slm_text_free(&out);
	slm_stopper_destroy(stopper);
	slm_sampler_destroy(smp);
	slm_engine_close(e);
	slm_config_destroy(cfg);
	return status;
}

SLM_COMMAND("run", cmd_run,
	    "generate text from a prompt with a model (greedy or sampled)")
