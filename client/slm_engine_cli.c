#include "client/slm_engine_cli.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/log.h"
#include "engine/cpu.h"
#include "engine/quant.h"

const char slm_engine_cli_help[] =
	"  -m, --model FILE    GGUF model (default: model.path)\n"
	"  -t, --threads N     threads (default: engine.threads; 0 = every "
	"CPU)\n"
	"  --simd TIER         auto|scalar|avx2|avx512 (default: "
	"engine.simd)\n"
	"  --pin               pin the threads to the first CPUs allowed\n"
	"  -c FILE, --set K=V  configuration, as every program\n";

bool slm_engine_cli_option(struct slm_engine_cli *o, int argc, char **argv,
			   int *i)
{
	const char *a = argv[*i];
	if (slm_cli_config_option(&o->args, argc, argv, i))
		return true;
	if (!strcmp(a, "--pin")) {
		o->pin = true;
		return true;
	}
	bool model = !strcmp(a, "-m") || !strcmp(a, "--model");
	bool threads = !strcmp(a, "-t") || !strcmp(a, "--threads");
	bool simd = !strcmp(a, "--simd");
	if (!model && !threads && !simd)
		return false;
	if (*i + 1 >= argc)
		slm_cli_die(o->prog, "%s needs a value", a);
	const char *v = argv[++*i];
	if (model) {
		o->model = v;
	} else if (threads) {
		char *end = NULL;
		errno = 0;
		long n = strtol(v, &end, 10);
		if (!*v || *end || errno || n < 1 || n > 1024)
			slm_cli_die(o->prog, "%s needs a count of 1 to 1024",
				    a);
		o->threads = (int)n;
	} else {
		enum slm_simd cap;
		if (slm_simd_parse(v, &cap))
			slm_cli_die(o->prog,
				    "--simd: '%s' is not one of "
				    "auto|scalar|avx2|avx512",
				    v);
		o->simd = v;
	}
	return true;
}

struct slm_config *slm_engine_cli_setup(struct slm_engine_cli *o,
					struct slm_engine_params *p)
{
	struct slm_config *cfg = slm_cli_load_config(o->prog, &o->args);
	if (!strcmp(slm_config_origin(cfg, SLM_CFG_LOG_LEVEL), "default"))
		slm_log_set_level(SLM_LOG_WARN);
	struct slm_error err = {0};
	const char *simd =
		o->simd ? o->simd : slm_cfg_enum_name(cfg, SLM_CFG_ENGINE_SIMD);
	if (slm_quant_configure(simd, &err))
		slm_cli_die(o->prog, "%s", err.msg);
	slm_engine_params_from_config(p, cfg);
	if (o->model)
		p->model_path = o->model;
	if (!p->model_path || !*p->model_path)
		slm_cli_die(o->prog,
			    "no model: give -m FILE or set model.path");
	if (o->threads)
		p->n_threads = o->threads;
	if (o->pin) {
		cpu_set_t set;
		if (sched_getaffinity(0, sizeof(set), &set))
			slm_cli_die(o->prog, "cannot read the CPU affinity");
		int n = 0;
		for (int c = 0; c < CPU_SETSIZE && n < p->n_threads; c++)
			if (CPU_ISSET(c, &set))
				o->cpus[n++] = c;
		if (n < p->n_threads)
			slm_cli_die(o->prog,
				    "--pin: %d threads but %d CPUs allowed",
				    p->n_threads, n);
		p->cpus = o->cpus;
	}
	return cfg;
}

struct slm_engine *slm_engine_cli_open(struct slm_engine_cli *o,
				       const struct slm_engine_params *p)
{
	struct slm_engine *e = NULL;
	struct slm_error err = {0};
	if (slm_engine_open(p, &e, &err))
		slm_cli_die(o->prog, "%s",
			    err.msg[0] ? err.msg : "cannot open");
	return e;
}

int32_t *slm_engine_cli_ids(const char *prog, const char *list, size_t *n)
{
	size_t cap = 16, k = 0;
	int32_t *ids = malloc(cap * sizeof(*ids));
	if (!ids)
		slm_cli_die(prog, "out of memory");
	const char *s = list;
	while (*s) {
		char *end = NULL;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (end == s || errno || v < 0 || v > INT32_MAX ||
		    (*end && *end != ','))
			slm_cli_die(prog,
				    "--ids: '%s' is not a list of token ids "
				    "such as 1,2,3",
				    list);
		if (k == cap) {
			int32_t *m = realloc(ids, 2 * cap * sizeof(*ids));
			if (!m)
				slm_cli_die(prog, "out of memory");
			ids = m;
			cap *= 2;
		}
		ids[k++] = (int32_t)v;
		s = *end ? end + 1 : end;
	}
	if (!k)
		slm_cli_die(prog, "--ids: no token ids");
	*n = k;
	return ids;
}
