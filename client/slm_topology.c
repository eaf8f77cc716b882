/*
 * slm topology: the machine and slmd's placement plan for it: which CPU
 * runs each thread, where each group's memory and the weights go.
 *
 *   slm topology [-c FILE] [--set K=V]... [--json] [--model FILE]
 *                [--weight-bytes SIZE] [--kv-bytes SIZE]
 *
 * The machine is numa.topology (empty: this one).  The weights' size
 * comes from --weight-bytes, else from the GGUF file (--model, else
 * model.path); without either the plan has no weights to check.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "engine/gguf.h"
#include "numa/placement.h"
#include "numa/topology.h"

static const char prog[] = "slm topology";

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm topology [-c FILE] [--set K=V]... [--json]\n"
		"                    [--model FILE] [--weight-bytes SIZE] "
		"[--kv-bytes SIZE]\n"
		"  --json              one JSON object instead of the table\n"
		"  --model FILE        size the weights from this GGUF file "
		"(default: model.path)\n"
		"  --weight-bytes SIZE size of one copy of the weights, e.g. "
		"4G\n"
		"  --kv-bytes SIZE     KV pool of each worker group\n"
		"  --set numa.topology=synthetic:\"package:2 numa:1 core:8 "
		"pu:2\"  plan for another machine\n");
}

static uint64_t size_arg(const char *opt, const char *text)
{
	uint64_t v = 0;
	if (slm_parse_size(text, &v))
		slm_cli_die(prog, "%s '%s': not a size (e.g. 4G, 512M)", opt,
			    text);
	return v;
}

/* Bytes of tensor data in a GGUF file: one copy of the weights. */
static uint64_t model_bytes(const char *path)
{
	struct gguf_file *f = NULL;
	struct slm_error err = {0};
	if (gguf_open(path, &f, &err))
		slm_cli_die(prog, "%s", err.msg);
	uint64_t sum = 0;
	for (uint64_t i = 0; i < gguf_n_tensors(f); i++)
		sum += gguf_tensor_at(f, i)->size;
	gguf_close(f);
	return sum;
}

static int cmd_topology(int argc, char **argv)
{
	struct slm_config_args args = {0};
	bool json = false;
	const char *model = NULL;
	uint64_t weight_bytes = 0, kv_bytes = 0;
	bool have_weight_bytes = false;
	for (int i = 1; i < argc; i++) {
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		const char *a = argv[i];
		bool has_value = i + 1 < argc;
		if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "--model") && has_value) {
			model = argv[++i];
		} else if (!strcmp(a, "--weight-bytes") && has_value) {
			weight_bytes = size_arg(a, argv[++i]);
			have_weight_bytes = true;
		} else if (!strcmp(a, "--kv-bytes") && has_value) {
			kv_bytes = size_arg(a, argv[++i]);
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			slm_cli_die(prog,
				    "unknown option or missing value '%s'", a);
		}
	}
	struct slm_config *cfg = slm_cli_load_config(prog, &args);
	if (!model && *slm_cfg_str(cfg, SLM_CFG_MODEL_PATH))
		model = slm_cfg_str(cfg, SLM_CFG_MODEL_PATH);
	if (!have_weight_bytes && model)
		weight_bytes = model_bytes(model);

	struct slm_error err = {0};
	struct slm_topo *topo = NULL;
	if (slm_topo_open(slm_cfg_str(cfg, SLM_CFG_NUMA_TOPOLOGY), &topo,
			  &err)) {
		slm_config_destroy(cfg);
		slm_cli_die(prog, "%s", err.msg);
	}
	struct slm_plan_params params;
	slm_plan_params_from_config(&params, cfg);
	params.weight_bytes = weight_bytes;
	params.kv_bytes_per_group = kv_bytes;
	struct slm_plan *plan = NULL;
	if (slm_plan_create(slm_topo_info(topo), &params, &plan, &err)) {
		slm_topo_close(topo);
		slm_config_destroy(cfg);
		slm_cli_die(prog, "%s", err.msg);
	}
	int status = 0;
	if (json) {
		char *text = slm_plan_json(plan, slm_topo_info(topo));
		if (text)
			printf("%s\n", text);
		else
			status = 1;
		free(text);
	} else {
		status = slm_plan_print(plan, slm_topo_info(topo), stdout) ? 1
									   : 0;
	}
	slm_plan_destroy(plan);
	slm_topo_close(topo);
	slm_config_destroy(cfg);
	return status;
}

SLM_COMMAND("topology", cmd_topology,
	    "the machine and slmd's placement plan (threads, memory)")
