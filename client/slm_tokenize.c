/*
 * slm tokenize: the token ids of a text for a model's vocabulary, as
 * llama.cpp's llama-tokenize gives them.
 *
 *   slm tokenize -m FILE [--no-bos] [--special] [--json | --ids] TEXT
 *
 * TEXT `-` reads standard input byte for byte; -f FILE reads a file.
 * --no-bos: do not add what the vocabulary adds around a prompt (BOS, and
 * EOS where add_eos_token); --special: recognise special-token text such
 * as `<|im_start|>`.  Output: one token per line (id, tab, its piece with
 * special tokens shown, C-escaped); --json a JSON array of ids; --ids the
 * ids separated by spaces.  -m defaults to model.path of the config.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "common/config.h"
#include "engine/tokenizer.h"

#define PROG "slm tokenize"

/* Read a whole stream; exits on error. */
static char *read_stream(FILE *f, const char *what, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		slm_cli_die(PROG, "out of memory");
	for (;;) {
		if (n == cap) {
			cap *= 2;
			char *b = realloc(buf, cap);
			if (!b)
				slm_cli_die(PROG, "out of memory");
			buf = b;
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0) {
			if (ferror(f))
				slm_cli_die(PROG, "%s: %s", what,
					    strerror(errno));
			break;
		}
	}
	*len = n;
	return buf;
}

static void print_escaped(const char *p, size_t n)
{
	putchar('\'');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		switch (c) {
		case '\n':
			fputs("\\n", stdout);
			break;
		case '\r':
			fputs("\\r", stdout);
			break;
		case '\t':
			fputs("\\t", stdout);
			break;
		case '\\':
			fputs("\\\\", stdout);
			break;
		case '\'':
			fputs("\\'", stdout);
			break;
		default:
			if (c < 0x20 || c == 0x7F)
				printf("\\x%02x", c);
			else
				putchar(c);
		}
	}
	putchar('\'');
}

static void usage(FILE *out)
{
	fprintf(out, "usage: slm tokenize [-m FILE] [--no-bos] [--special] "
		     "[--json | --ids] [-f FILE | TEXT | -]\n"
		     "  -m, --model FILE  GGUF file whose vocabulary to use "
		     "(default: model.path)\n"
		     "  --no-bos          do not add BOS/EOS as the vocabulary "
		     "would\n"
		     "  --special         parse special-token text such as "
		     "<|im_start|>\n"
		     "  --json            print a JSON array of ids\n"
		     "  --ids             print the ids separated by spaces\n"
		     "  -f, --file FILE   tokenize the bytes of FILE\n"
		     "  TEXT              the text; '-' reads standard input\n"
		     "  -c FILE, --set K=V  configuration, as every program\n");
}

static int cmd_tokenize(int argc, char **argv)
{
	struct slm_config_args args = {0};
	const char *model = NULL, *text_arg = NULL, *file = NULL;
	bool no_bos = false, special = false, json = false, ids_only = false;
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
		} else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
			if (i + 1 >= argc)
				slm_cli_die(PROG, "%s needs a file name", a);
			file = argv[++i];
		} else if (!strcmp(a, "--no-bos")) {
			no_bos = true;
		} else if (!strcmp(a, "--special")) {
			special = true;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--ids")) {
			ids_only = true;
		} else if (a[0] == '-' && a[1] != '\0') {
			slm_cli_die(PROG, "unknown option '%s' (see --help)",
				    a);
		} else if (!text_arg) {
			text_arg = a;
		} else {
			slm_cli_die(PROG, "more than one TEXT argument");
		}
	}
	if (!text_arg == !file)
		slm_cli_die(PROG, "give the text as TEXT, '-' or -f FILE "
				  "(exactly one)");
	if (json && ids_only)
		slm_cli_die(PROG, "--json and --ids exclude each other");
	struct slm_config *cfg = slm_cli_load_config(PROG, &args);
	if (!model || !*model)
		model = slm_cfg_str(cfg, SLM_CFG_MODEL_PATH);
	if (!model || !*model)
		slm_cli_die(PROG, "no model: give -m FILE or set model.path");

	char *buf = NULL;
	size_t len;
	if (file) {
		FILE *f = fopen(file, "rb");
		if (!f)
			slm_cli_die(PROG, "%s: %s", file, strerror(errno));
		buf = read_stream(f, file, &len);
		fclose(f);
	} else if (!strcmp(text_arg, "-")) {
		buf = read_stream(stdin, "standard input", &len);
	} else {
		len = strlen(text_arg);
		buf = malloc(len + 1);
		if (!buf)
			slm_cli_die(PROG, "out of memory");
		memcpy(buf, text_arg, len + 1);
	}

	struct slm_error err = {0};
	struct slm_vocab *v = NULL;
	if (slm_vocab_load_file(model, &v, &err))
		slm_cli_die(PROG, "%s", err.msg);
	struct slm_tokens toks = {0};
	unsigned flags = (no_bos ? 0 : SLM_TOK_ADD_SPECIAL) |
			 (special ? SLM_TOK_PARSE_SPECIAL : 0);
	if (slm_tokenize(v, buf, len, flags, &toks, &err))
		slm_cli_die(PROG, "%s", err.msg);
	int status = 0;
	if (json) {
		cJSON *arr = cJSON_CreateArray();
		for (size_t i = 0; arr && i < toks.n; i++)
			if (!cJSON_AddItemToArray(
				    arr, cJSON_CreateNumber(toks.ids[i])))
				status = 1;
		char *s = arr ? cJSON_PrintUnformatted(arr) : NULL;
		if (!s)
			slm_cli_die(PROG, "out of memory");
		printf("%s\n", s);
		cJSON_free(s);
		cJSON_Delete(arr);
	} else if (ids_only) {
		for (size_t i = 0; i < toks.n; i++)
			printf(i ? " %d" : "%d", toks.ids[i]);
		putchar('\n');
	} else {
		for (size_t i = 0; i < toks.n; i++) {
			size_t pl;
			const char *p =
				slm_vocab_piece(v, toks.ids[i], true, &pl);
			printf("%d\t", toks.ids[i]);
			print_escaped(p, pl);
			putchar('\n');
		}
	}
	if (fflush(stdout) || ferror(stdout))
		status = 1;
	slm_tokens_free(&toks);
	slm_vocab_destroy(v);
	slm_config_destroy(cfg);
	free(buf);
	return status;
}

SLM_COMMAND("tokenize", cmd_tokenize,
	    "token ids of a text for a model's vocabulary (as llama.cpp)")
