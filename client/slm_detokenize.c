/*
 * slm detokenize: the text of token ids for a model's vocabulary.
 *
 *   slm detokenize -m FILE [--no-special] [--clean] IDS
 *
 * IDS: ids separated by commas and/or spaces, with or without the
 * brackets of a JSON array ("1,2,3", "[1, 2, 3]"); `-` reads them from
 * standard input.  By default the text is the pieces concatenated with
 * special tokens shown, as llama-server's /detokenize gives it;
 * --no-special leaves control tokens out; --clean is llama_detokenize:
 * the SPM prefix space and a leading BOS / trailing EOS dropped, and the
 * vocabulary's clean_up_tokenization_spaces applied.  Ill-formed UTF-8
 * is shown as U+FFFD.  The text is followed by a newline.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "common/config.h"
#include "engine/tokenizer.h"

#define PROG "slm detokenize"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm detokenize [-m FILE] [--no-special] [--clean] IDS\n"
		"  -m, --model FILE  GGUF file whose vocabulary to use "
		"(default: model.path)\n"
		"  --no-special      leave control tokens out\n"
		"  --clean           as llama_detokenize: drop the SPM prefix "
		"space, BOS/EOS,\n"
		"                    and clean up spaces where the vocabulary "
		"does\n"
		"  IDS               \"1,2,3\" or \"[1, 2, 3]\"; '-' reads "
		"standard input\n"
		"  -c FILE, --set K=V  configuration, as every program\n");
}

/* Parse ids separated by commas, spaces, newlines, with optional [ ]. */
static void parse_ids(const char *s, struct slm_tokens *out)
{
	const char *p = s;
	while (*p) {
		if (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' ||
		    *p == '\r' || *p == '[' || *p == ']') {
			p++;
			continue;
		}
		char *end;
		errno = 0;
		long v = strtol(p, &end, 10);
		if (end == p || errno || v < 0 || v > INT32_MAX)
			slm_cli_die(PROG, "bad token id at '%.*s'",
				    (int)strcspn(p, ", \t\r\n]"), p);
		if (slm_tokens_push(out, (int32_t)v))
			slm_cli_die(PROG, "out of memory");
		p = end;
	}
}

static int cmd_detokenize(int argc, char **argv)
{
	struct slm_config_args args = {0};
	const char *model = NULL, *ids_arg = NULL;
	bool special = true, clean = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			if (i + 1 >= argc)
				slm_cli_die(PROG, "%s needs a file name", a);
			model = argv[++i];
		} else if (!strcmp(a, "--no-special")) {
			special = false;
		} else if (!strcmp(a, "--clean")) {
			clean = true;
		} else if (a[0] == '-' && a[1] != '\0' &&
			   !(a[1] >= '0' && a[1] <= '9')) {
			slm_cli_die(PROG, "unknown option '%s' (see --help)",
				    a);
		} else if (!ids_arg) {
			ids_arg = a;
		} else {
			slm_cli_die(PROG, "more than one IDS argument");
		}
	}
	if (!ids_arg)
		slm_cli_die(PROG, "no token ids (see --help)");
	struct slm_config *cfg = slm_cli_load_config(PROG, &args);
	if (!model || !*model)
		model = slm_cfg_str(cfg, SLM_CFG_MODEL_PATH);
	if (!model || !*model)
		slm_cli_die(PROG, "no model: give -m FILE or set model.path");

	struct slm_tokens ids = {0};
	if (!strcmp(ids_arg, "-")) {
		struct slm_text in = {0};
		char buf[4096];
		size_t r;
		while ((r = fread(buf, 1, sizeof(buf), stdin)) > 0)
			if (slm_text_append(&in, buf, r))
				slm_cli_die(PROG, "out of memory");
		if (ferror(stdin))
			slm_cli_die(PROG, "standard input: %s",
				    strerror(errno));
		parse_ids(in.data ? in.data : "", &ids);
		slm_text_free(&in);
	} else {
		parse_ids(ids_arg, &ids);
	}

	struct slm_error err = {0};
	struct slm_vocab *v = NULL;
	if (slm_vocab_load_file(model, &v, &err))
		slm_cli_die(PROG, "%s", err.msg);
	unsigned flags =
		(special ? SLM_DETOK_SPECIAL : 0) |
		(clean ? SLM_DETOK_LLAMA | SLM_DETOK_REMOVE_SPECIAL : 0);
	struct slm_text text = {0};
	if (slm_detokenize(v, ids.ids, ids.n, flags, &text, &err))
		slm_cli_die(PROG, "%s", err.msg);
	fwrite(text.data, 1, text.len, stdout);
	putchar('\n');
	int status = fflush(stdout) || ferror(stdout) ? 1 : 0;
	slm_text_free(&text);
	slm_tokens_free(&ids);
	slm_vocab_destroy(v);
	slm_config_destroy(cfg);
	return status;
}

SLM_COMMAND("detokenize", cmd_detokenize,
	    "text of token ids for a model's vocabulary")
