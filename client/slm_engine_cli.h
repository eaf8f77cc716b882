/*
 * slm_engine_cli.h: what the commands that run a model (`slm run`,
 * `slm logits`, `slm bench`) share on their command lines: the model, the
 * threads, the kernels' tier, the configuration, and opening the engine
 * with them.
 *
 *   -m, --model FILE   the GGUF file (default: model.path)
 *   -t, --threads N    threads of the forward pass (default:
 *                      engine.threads, 0 = every CPU this process may use)
 *   --simd TIER        auto|scalar|avx2|avx512 (default: engine.simd)
 *   --pin              pin the pool's threads to the first CPUs this
 *                      process may use
 *   -c FILE, --set K=V configuration, as every program
 */
#ifndef SLM_CLIENT_SLM_ENGINE_CLI_H
#define SLM_CLIENT_SLM_ENGINE_CLI_H

#include <stdbool.h>

#include "common/config.h"
#include "engine/engine.h"

struct slm_engine_cli {
	const char *prog;
	struct slm_config_args args;
	const char *model;
	int threads; /* 0: the config's */
	const char *simd;
	bool pin;
	int cpus[1024];
};

/* Help lines of the shared options. */
extern const char slm_engine_cli_help[];

/* If argv[*i] is a shared option, consume it (and its value) and return
 * true; a bad value prints "PROG: ..." and exits 1. */
bool slm_engine_cli_option(struct slm_engine_cli *o, int argc, char **argv,
			   int *i);

/*
 * Load the configuration, choose the kernels' tier, and fill p from the
 * configuration and the options (the log drops to warnings unless
 * log.level was set).  Exits with a one-line error on a bad value or no
 * model.  The caller destroys the returned config.
 */
struct slm_config *slm_engine_cli_setup(struct slm_engine_cli *o,
					struct slm_engine_params *p);

/* slm_engine_open, or "PROG: message" and exit status 1. */
struct slm_engine *slm_engine_cli_open(struct slm_engine_cli *o,
				       const struct slm_engine_params *p);

/* Parse "1,2,3" into ids (malloc'ed, *n set); exits on a bad list. */
int32_t *slm_engine_cli_ids(const char *prog, const char *list, size_t *n);

#endif
