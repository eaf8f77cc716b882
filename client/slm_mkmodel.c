/*
 * slm mkmodel: write a model with random weights (engine/modelgen.h) for
 * a named shape or explicit dimensions, in any type or mix.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "common/clock.h"
#include "engine/gguf.h"
#include "engine/modelgen.h"
#include "engine/quantize.h"

#define PROG "slm mkmodel"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm mkmodel [-o OUT.gguf] [--preset NAME] [--type "
		"TYPE] "
		"[--seed N]\n"
		"                   [--vocab FILE|builtin] [dimensions] "
		"[--threads N] [--quiet]\n"
		"  Write a model with random weights: the converter's F32 "
		"layout, or for\n"
		"  any other TYPE the file llama-quantize would make from "
		"it.\n"
		"  --preset NAME      %s\n"
		"  --type TYPE        %s (default F32)\n"
		"  --seed N           weights are a function of the seed "
		"(default 1)\n"
		"  --vocab FILE       take the tokenizer from a GGUF file "
		"(its token\n"
		"                     count is n_vocab); 'builtin': byte-level "
		"SPM\n"
		"                     vocabulary.  Default: the preset's "
		"vocabulary file,\n"
		"                     looked up in $SLM_VOCAB_DIR, "
		"<prefix>/share/slmd/vocab\n"
		"                     and <build>/testdata/vocab; builtin "
		"for 'tiny' and\n"
		"                     explicit dimensions\n"
		"  dimensions (override the preset, or all needed without "
		"one):\n"
		"    --arch llama|qwen2 --n-embd N --n-layer N --n-head N "
		"--n-head-kv N\n"
		"    --n-ff N --n-vocab N --ctx N --rope-base F --rms-eps F\n"
		"    --tied | --untied   --qkv-bias | --no-qkv-bias   --name "
		"NAME\n"
		"  -o FILE            output (default <name>-<TYPE>.gguf)\n"
		"  --threads N        threads (default: all CPUs)\n",
		slm_model_preset_list(), slm_ftype_list());
}

static unsigned long long parse_uint(const char *opt, const char *v,
				     unsigned long long max)
{
	char *end = NULL;
	errno = 0;
	unsigned long long x = v ? strtoull(v, &end, 0) : 0;
	if (!v || !*v || *end || errno || x > max || v[0] == '-')
		slm_cli_die(PROG, "%s needs a number up to %llu", opt, max);
	return x;
}

static float parse_float(const char *opt, const char *v)
{
	char *end = NULL;
	float x = v ? strtof(v, &end) : 0;
	if (!v || !*v || *end || !(x > 0))
		slm_cli_die(PROG, "%s needs a positive number", opt);
	return x;
}

/* <dir of this executable>/<rel>, or "" */
static void exe_relative(const char *rel, char *out, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	out[0] = '\0';
	if (n <= 0)
		return;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return;
	*slash = '\0';
	snprintf(out, size, "%s/%s", exe, rel);
}

/* Find a vocabulary file by name; fills path or returns false. */
static bool find_vocab(const char *name, char *path, size_t size, char *tried,
		       size_t tried_size)
{
	char dirs[3][PATH_MAX];
	const char *env = getenv("SLM_VOCAB_DIR");
	snprintf(dirs[0], sizeof(dirs[0]), "%s", env ? env : "");
	exe_relative("../share/slmd/vocab", dirs[1], sizeof(dirs[1]));
	exe_relative("../testdata/vocab", dirs[2], sizeof(dirs[2]));
	tried[0] = '\0';
	for (int i = 0; i < 3; i++) {
		if (!dirs[i][0])
			continue;
		snprintf(path, size, "%s/%s", dirs[i], name);
		if (access(path, R_OK) == 0)
			return true;
		size_t len = strlen(tried);
		snprintf(tried + len, tried_size - len, "%s%s", len ? ", " : "",
			 path);
	}
	return false;
}

struct progress {
	bool tty, quiet;
	uint64_t last_ns;
};

static void on_progress(void *ctx, const char *tensor, uint64_t done,
			uint64_t total)
{
	struct progress *p = ctx;
	if (p->quiet || !p->tty)
		return;
	uint64_t now = slm_now_ns();
	if (done < total && now - p->last_ns < 100000000ull)
		return;
	p->last_ns = now;
	fprintf(stderr, "\r  %3d%%  %8.1f / %.1f MiB  %-32s",
		total ? (int)(100 * done / total) : 100,
		(double)done / 1048576.0, (double)total / 1048576.0, tensor);
	if (done == total)
		fputc('\n', stderr);
}

static int cmd_mkmodel(int argc, char **argv)
{
	struct slm_config_args cargs = {0};
	struct slm_model_shape s;
	memset(&s, 0, sizeof(s));
	const char *preset = NULL, *out = NULL, *vocab_opt = NULL;
	const char *type_name = "F32";
	uint64_t seed = 1;
	int threads = 0;
	bool quiet = false;
	/* Dimension options seen, applied over the preset afterwards. */
	struct slm_model_shape o;
	memset(&o, 0, sizeof(o));
	int tied = -1, bias = -1;
	float rope = 0, eps = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (slm_cli_config_option(&cargs, argc, argv, &i))
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		}
		bool takes = true;
		if (!strcmp(a, "--preset"))
			preset = v;
		else if (!strcmp(a, "--type"))
			type_name = v;
		else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
			out = v;
		else if (!strcmp(a, "--vocab"))
			vocab_opt = v;
		else if (!strcmp(a, "--seed"))
			seed = parse_uint(a, v, UINT64_MAX);
		else if (!strcmp(a, "--threads") || !strcmp(a, "-t"))
			threads = (int)parse_uint(a, v, 1024);
		else if (!strcmp(a, "--arch"))
			snprintf(o.arch, sizeof(o.arch), "%s", v ? v : "");
		else if (!strcmp(a, "--name"))
			snprintf(o.name, sizeof(o.name), "%s", v ? v : "");
		else if (!strcmp(a, "--n-embd"))
			o.n_embd = (uint32_t)parse_uint(a, v, UINT32_MAX);
		else if (!strcmp(a, "--n-layer"))
			o.n_layer = (uint32_t)parse_uint(a, v, UINT32_MAX);
		else if (!strcmp(a, "--n-head"))
			o.n_head = (uint32_t)parse_uint(a, v, UINT32_MAX);
		else if (!strcmp(a, "--n-head-kv"))
			o.n_head_kv = (uint32_t)parse_uint(a, v, UINT32_MAX);
		else if (!strcmp(a, "--n-ff"))
			o.n_ff = (uint32_t)parse_uint(a, v, UINT32_MAX);
		else if (!strcmp(a, "--n-vocab"))
			o.n_vocab = (uint32_t)parse_uint(a, v, UINT32_MAX);
		else if (!strcmp(a, "--ctx"))
			o.n_ctx = (uint32_t)parse_uint(a, v, UINT32_MAX);
		else if (!strcmp(a, "--rope-base"))
			rope = parse_float(a, v);
		else if (!strcmp(a, "--rms-eps"))
			eps = parse_float(a, v);
		else {
			takes = false;
			if (!strcmp(a, "--tied"))
				tied = 1;
			else if (!strcmp(a, "--untied"))
				tied = 0;
			else if (!strcmp(a, "--qkv-bias"))
				bias = 1;
			else if (!strcmp(a, "--no-qkv-bias"))
				bias = 0;
			else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
				quiet = true;
			else if (a[0] != '-' && !out)
				out = a;
			else
				slm_cli_die(PROG, "unknown option '%s'", a);
		}
		if (takes) {
			if (!v)
				slm_cli_die(PROG, "%s needs a value", a);
			i++;
		}
	}
	struct slm_config *cfg = slm_cli_load_config(PROG, &cargs);
	slm_config_destroy(cfg);

	int ftype = slm_ftype_from_name(type_name);
	if (ftype < 0)
		slm_cli_die(PROG, "unknown type '%s' (one of %s)", type_name,
			    slm_ftype_list());

	/* The shape: a preset, or defaults for the architecture. */
	if (preset) {
		if (slm_model_preset(preset, &s))
			slm_cli_die(PROG, "unknown preset '%s' (one of %s)",
				    preset, slm_model_preset_list());
	} else {
		if (!o.arch[0])
			slm_cli_die(PROG, "give --preset NAME or --arch and "
					  "the dimensions (see --help)");
		bool qwen = !strcmp(o.arch, "qwen2");
		snprintf(s.name, sizeof(s.name), "random-%s", o.arch);
		s.n_ctx = 2048;
		s.rope_base = qwen ? 1000000.0f : 10000.0f;
		s.rms_eps = qwen ? 1e-6f : 1e-5f;
		s.qkv_bias = qwen;
	}
	if (o.arch[0])
		snprintf(s.arch, sizeof(s.arch), "%s", o.arch);
	if (o.name[0])
		snprintf(s.name, sizeof(s.name), "%s", o.name);
#define OVERRIDE(f)                \
	do {                       \
		if (o.f)           \
			s.f = o.f; \
	} while (0)
	OVERRIDE(n_embd);
	OVERRIDE(n_layer);
	OVERRIDE(n_head);
	OVERRIDE(n_head_kv);
	OVERRIDE(n_ff);
	OVERRIDE(n_vocab);
	OVERRIDE(n_ctx);
#undef OVERRIDE
	if (!o.n_head_kv && o.n_head && !preset)
		s.n_head_kv = s.n_head;
	if (rope > 0)
		s.rope_base = rope;
	if (eps > 0)
		s.rms_eps = eps;
	if (tied >= 0)
		s.tied = tied;
	if (bias >= 0)
		s.qkv_bias = bias;

	/* The vocabulary. */
	struct slm_error err = {0};
	struct gguf_file *vocab = NULL;
	char vpath[PATH_MAX] = "";
	const char *want = vocab_opt;
	if (!want && preset)
		want = slm_model_preset_vocab(preset);
	if (want && strcmp(want, "builtin")) {
		if (vocab_opt) {
			snprintf(vpath, sizeof(vpath), "%s", vocab_opt);
		} else {
			char tried[4 * PATH_MAX];
			if (!find_vocab(want, vpath, sizeof(vpath), tried,
					sizeof(tried)))
				slm_cli_die(
					PROG,
					"preset '%s' needs the vocabulary "
					"%s; not found (looked for %s). "
					"Give --vocab FILE, set "
					"SLM_VOCAB_DIR, run `make testdata` "
					"in the build, or use --vocab "
					"builtin",
					preset, want, tried);
		}
		if (gguf_open(vpath, &vocab, &err))
			slm_cli_die(PROG, "%s", err.msg);
		struct gguf_array toks;
		if (!o.n_vocab &&
		    !gguf_get_arr(vocab, "tokenizer.ggml.tokens", &toks, NULL))
			s.n_vocab = (uint32_t)toks.n;
	}
	if (!s.n_vocab)
		slm_cli_die(PROG, "give --n-vocab (or --vocab FILE)");
	if (slm_model_shape_check(&s, &err))
		slm_cli_die(PROG, "%s", err.msg);

	char out_buf[PATH_MAX];
	if (!out) {
		snprintf(out_buf, sizeof(out_buf), "%s-%s.gguf", s.name,
			 slm_ftype_name(ftype));
		out = out_buf;
	}

	struct slm_model_random rnd;
	slm_model_random_init(&rnd, &s, seed, threads);
	struct progress prog = {.tty = isatty(STDERR_FILENO) == 1,
				.quiet = quiet};
	struct slm_model_params p = {
		.ftype = ftype,
		.vocab = vocab,
		.fill = slm_model_fill_random,
		.fill_ctx = &rnd,
		.n_threads = threads,
		.progress = on_progress,
		.progress_ctx = &prog,
	};
	char label[32];
	slm_model_size_label(slm_model_n_params(&s), label, sizeof(label));
	if (!quiet)
		fprintf(stderr,
			"slm mkmodel: %s (%s, %s params, n_vocab %u, n_embd "
			"%u, %u layers, %u/%u heads, n_ff %u%s%s), %s, seed "
			"%llu, vocabulary %s\n",
			out, s.arch, label, s.n_vocab, s.n_embd, s.n_layer,
			s.n_head, s.n_head_kv, s.n_ff, s.tied ? ", tied" : "",
			s.qkv_bias ? ", qkv bias" : "", slm_ftype_name(ftype),
			(unsigned long long)seed,
			vocab ? vpath : "built-in (byte-level SPM)");
	uint64_t t0 = slm_now_ns();
	int rc = slm_model_write(out, &s, &p, &err);
	gguf_close(vocab);
	if (rc) {
		if (prog.tty && !quiet)
			fputc('\n', stderr);
		fprintf(stderr, "%s: %s\n", PROG, err.msg);
		return 1;
	}
	if (!quiet)
		fprintf(stderr, "slm mkmodel: wrote %s in %.1f s\n", out,
			(double)(slm_now_ns() - t0) / 1e9);
	return 0;
}

SLM_COMMAND("mkmodel", cmd_mkmodel,
	    "write a model with random weights (presets tinyllama, qwen05, "
	    "tiny)")
