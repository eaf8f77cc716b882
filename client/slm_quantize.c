/*
 * slm quantize: convert a GGUF model to another type or mix, as
 * llama-quantize does (engine/quantize.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "common/clock.h"
#include "engine/dtype.h"
#include "engine/quantize.h"

struct progress {
	bool tty, quiet;
	uint64_t start_ns;
};

static void on_progress(void *ctx, size_t index, size_t count, const char *name,
			uint32_t from, uint32_t to, uint64_t done,
			uint64_t total)
{
	struct progress *p = ctx;
	if (p->quiet)
		return;
	if (p->tty) {
		fprintf(stderr, "\r[%4zu/%4zu] %3d%%  %-36s %s -> %-6s",
			index + 1, count,
			total ? (int)(100 * done / total) : 100, name,
			slm_dtype_name(from), slm_dtype_name(to));
		if (index + 1 == count)
			fputc('\n', stderr);
	} else {
		fprintf(stderr, "[%4zu/%4zu] %-36s %s -> %s\n", index + 1,
			count, name, slm_dtype_name(from), slm_dtype_name(to));
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm quantize [--threads N] [--quiet] IN.gguf OUT.gguf "
		"TYPE\n"
		"  Convert IN to TYPE as llama-quantize does (default mixes, "
		"no\n"
		"  importance matrix); any supported input type, quantized "
		"ones\n"
		"  included.  TYPE: %s\n"
		"  (Q3_K, Q4_K, Q5_K mean the _M mixes.)\n"
		"  --threads N  conversion threads (default: all CPUs)\n"
		"  --quiet      no per-tensor progress\n",
		slm_ftype_list());
}

static int cmd_quantize(int argc, char **argv)
{
	struct slm_config_args cargs = {0};
	const char *pos[3];
	int n_pos = 0, threads = 0;
	bool quiet = false;
	for (int i = 1; i < argc; i++) {
		if (slm_cli_config_option(&cargs, argc, argv, &i))
			continue;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(argv[i], "--threads") || !strcmp(argv[i], "-t")) {
			char *end = NULL;
			long v = i + 1 < argc ? strtol(argv[i + 1], &end, 10)
					      : -1;
			if (i + 1 >= argc || *end || v < 1 || v > 1024)
				slm_cli_die("slm quantize",
					    "--threads needs a number from 1 "
					    "to 1024");
			threads = (int)v;
			i++;
			continue;
		}
		if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
			quiet = true;
			continue;
		}
		if (argv[i][0] == '-' && argv[i][1])
			slm_cli_die("slm quantize", "unknown option '%s'",
				    argv[i]);
		if (n_pos == 3)
			slm_cli_die("slm quantize",
				    "too many arguments (IN OUT TYPE)");
		pos[n_pos++] = argv[i];
	}
	if (n_pos != 3) {
		usage(stderr);
		return 1;
	}
	int ftype = slm_ftype_from_name(pos[2]);
	if (ftype < 0)
		slm_cli_die("slm quantize", "unknown type '%s' (one of %s)",
			    pos[2], slm_ftype_list());
	struct slm_config *cfg = slm_cli_load_config("slm quantize", &cargs);
	slm_config_destroy(cfg);

	struct progress prog = {.tty = isatty(STDERR_FILENO) == 1,
				.quiet = quiet,
				.start_ns = slm_now_ns()};
	struct slm_quant_params params = {.n_threads = threads,
					  .progress = on_progress,
					  .progress_ctx = &prog};
	struct slm_error err = {0};
	if (slm_quantize_file(pos[0], pos[1], ftype, &params, &err)) {
		if (prog.tty && !quiet)
			fputc('\n', stderr);
		fprintf(stderr, "slm quantize: %s\n", err.msg);
		return 1;
	}
	if (!quiet)
		fprintf(stderr, "slm quantize: wrote %s (%s) in %.2f s\n",
			pos[1], slm_ftype_name(ftype),
			(double)(slm_now_ns() - prog.start_ns) / 1e9);
	return 0;
}

SLM_COMMAND("quantize", cmd_quantize,
	    "convert a GGUF model to another type or mix (llama-quantize's "
	    "rules)")
