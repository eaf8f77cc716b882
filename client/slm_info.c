/*
 * slm info: describe a GGUF model file: architecture, hyperparameters,
 * parameter count, file type, tensors per type, tokenizer facts.
 * `--json` prints one object (the contract scripts rely on is in
 * docs/architecture.md and issue 3: the field names below never change;
 * new fields may be added).
 */
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "engine/dtype.h"
#include "engine/chat.h"
#include "engine/model.h"

static const char *const prog = "slm info";

/* The shortest decimal that reads back as the same float, as a double,
 * so JSON shows 1e-05 rather than 9.9999997473787516e-06 for an f32. */
static double float_shortest(float x)
{
	char buf[64];
	for (int prec = 1; prec <= 9; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, (double)x);
		if (strtof(buf, NULL) == x)
			return strtod(buf, NULL);
	}
	return (double)x;
}

static void add_opt_str(cJSON *o, const char *key, const char *s)
{
	if (s)
		cJSON_AddStringToObject(o, key, s);
	else
		cJSON_AddNullToObject(o, key);
}

static void add_opt_id(cJSON *o, const char *key, int64_t id)
{
	if (id >= 0)
		cJSON_AddNumberToObject(o, key, (double)id);
	else
		cJSON_AddNullToObject(o, key);
}

/* The object of `slm info --json`; NULL when out of memory. */
cJSON *slm_info_json(const struct slm_model *m);
cJSON *slm_info_json(const struct slm_model *m)
{
	const struct slm_hparams *hp = &m->hp;
	const struct slm_tokenizer_info *tok = &m->tok;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "file", m->path);
	cJSON_AddNumberToObject(o, "file_size",
				(double)gguf_file_size(m->file));
	cJSON_AddNumberToObject(o, "gguf_version", gguf_version(m->file));
	add_opt_str(o, "name", m->name);
	cJSON_AddStringToObject(o, "arch", slm_arch_name(hp->arch));
	cJSON_AddNumberToObject(o, "n_vocab", hp->n_vocab);
	cJSON_AddNumberToObject(o, "n_embd", hp->n_embd);
	cJSON_AddNumberToObject(o, "n_layer", hp->n_layer);
	cJSON_AddNumberToObject(o, "n_head", hp->n_head);
	cJSON_AddNumberToObject(o, "n_head_kv", hp->n_head_kv);
	cJSON_AddNumberToObject(o, "head_dim", hp->head_dim);
	cJSON_AddNumberToObject(o, "n_ff", hp->n_ff);
	cJSON_AddNumberToObject(o, "n_ctx_train", hp->n_ctx_train);
	cJSON_AddNumberToObject(o, "rope_freq_base",
				float_shortest(hp->rope_freq_base));
	cJSON_AddStringToObject(o, "rope_pairing",
				hp->rope_neox ? "neox" : "adjacent");
	cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
	if (rs) {
		cJSON_AddStringToObject(
			rs, "type", slm_rope_scaling_name(hp->rope_scaling));
		cJSON_AddNumberToObject(
			rs, "factor", float_shortest(hp->rope_scaling_factor));
	}
	cJSON_AddNumberToObject(o, "rms_eps", float_shortest(hp->rms_eps));
	cJSON_AddBoolToObject(o, "tied_output", hp->tied_output);
	cJSON_AddBoolToObject(o, "qkv_bias", hp->qkv_bias);
	add_opt_str(o, "file_type", slm_file_type_name(m->file_type));
	if (m->file_type >= 0)
		cJSON_AddNumberToObject(o, "file_type_id",
					(double)m->file_type);
	else
		cJSON_AddNullToObject(o, "file_type_id");
	cJSON_AddNumberToObject(o, "n_params", (double)m->n_params);
	cJSON_AddNumberToObject(o, "n_tensors",
				(double)gguf_n_tensors(m->file));
	cJSON *types = cJSON_AddObjectToObject(o, "tensor_types");
	cJSON *bytes = cJSON_AddObjectToObject(o, "tensor_bytes");
	uint64_t total = 0;
	for (uint32_t t = 0; t < SLM_DTYPE__COUNT; t++) {
		if (!m->type_count[t])
			continue;
		total += m->type_bytes[t];
		if (types)
			cJSON_AddNumberToObject(types, slm_dtype_name(t),
						m->type_count[t]);
		if (bytes)
			cJSON_AddNumberToObject(bytes, slm_dtype_name(t),
						(double)m->type_bytes[t]);
	}
	cJSON_AddNumberToObject(o, "tensor_data_bytes", (double)total);
	cJSON *tj = cJSON_AddObjectToObject(o, "tokenizer");
	if (tj) {
		add_opt_str(tj, "model", tok->model);
		add_opt_str(tj, "pre", tok->pre);
		cJSON_AddNumberToObject(tj, "n_tokens", tok->n_tokens);
		add_opt_id(tj, "bos", tok->bos);
		add_opt_id(tj, "eos", tok->eos);
		add_opt_id(tj, "unk", tok->unk);
		add_opt_id(tj, "pad", tok->pad);
		if (tok->add_bos >= 0)
			cJSON_AddBoolToObject(tj, "add_bos", tok->add_bos);
		else
			cJSON_AddNullToObject(tj, "add_bos");
	}
	/* The name llama.cpp would recognise; null for none or an unknown
	 * template (then chat_template_present tells which). */
	const char *chat = slm_chat_detect(tok->chat_template);
	if (chat)
		cJSON_AddStringToObject(o, "chat_template", chat);
	else
		cJSON_AddNullToObject(o, "chat_template");
	cJSON_AddBoolToObject(o, "chat_template_present",
			      tok->chat_template != NULL);
	return o;
}

/* "2.28 MB", "668.2 MB", "3.67 M": decimal units, as people quote sizes. */
static const char *human(double v, const char *unit, char *buf, size_t size)
{
	static const char *const prefix[] = {"", "k", "M", "G", "T"};
	int i = 0;
	while (v >= 1000 && i < 4) {
		v /= 1000;
		i++;
	}
	snprintf(buf, size, i ? "%.2f %s%s" : "%.0f %s%s", v, prefix[i], unit);
	return buf;
}

static void print_text(const struct slm_model *m)
{
	const struct slm_hparams *hp = &m->hp;
	const struct slm_tokenizer_info *tok = &m->tok;
	char a[32], b[32];
	printf("%-15s %s\n", "file", m->path);
	printf("%-15s %s, GGUF v%u, %llu keys, %llu tensors\n", "",
	       human((double)gguf_file_size(m->file), "B", a, sizeof(a)),
	       gguf_version(m->file), (unsigned long long)gguf_n_kv(m->file),
	       (unsigned long long)gguf_n_tensors(m->file));
	if (m->name)
		printf("%-15s %s\n", "name", m->name);
	printf("%-15s %s\n", "arch", slm_arch_name(hp->arch));
	const char *ft = slm_file_type_name(m->file_type);
	if (m->file_type >= 0)
		printf("%-15s %s (%lld)\n", "file type", ft ? ft : "unknown",
		       (long long)m->file_type);
	else
		printf("%-15s (not given)\n", "file type");
	printf("%-15s %s (%llu)\n", "parameters",
	       human((double)m->n_params, "", a, sizeof(a)),
	       (unsigned long long)m->n_params);
	printf("%-15s %u\n", "n_vocab", hp->n_vocab);
	printf("%-15s %u\n", "n_embd", hp->n_embd);
	printf("%-15s %u\n", "n_layer", hp->n_layer);
	printf("%-15s %u\n", "n_head", hp->n_head);
	printf("%-15s %u\n", "n_head_kv", hp->n_head_kv);
	printf("%-15s %u\n", "head_dim", hp->head_dim);
	printf("%-15s %u\n", "n_ff", hp->n_ff);
	printf("%-15s %u\n", "n_ctx_train", hp->n_ctx_train);
	printf("%-15s base %g, %s pairs, scaling %s", "rope",
	       float_shortest(hp->rope_freq_base),
	       hp->rope_neox ? "neox (halves)" : "adjacent",
	       slm_rope_scaling_name(hp->rope_scaling));
	if (hp->rope_scaling != SLM_ROPE_SCALING_NONE)
		printf(" (factor %g)", float_shortest(hp->rope_scaling_factor));
	printf("\n");
	printf("%-15s %g\n", "rms_eps", float_shortest(hp->rms_eps));
	printf("%-15s %s\n", "output",
	       hp->tied_output ? "tied to token_embd" : "own output.weight");
	printf("%-15s %s\n", "q/k/v biases", hp->qkv_bias ? "yes" : "no");
	uint64_t total = 0;
	for (uint32_t t = 0; t < SLM_DTYPE__COUNT; t++)
		total += m->type_bytes[t];
	printf("%-15s %llu, %s\n", "tensors",
	       (unsigned long long)gguf_n_tensors(m->file),
	       human((double)total, "B", a, sizeof(a)));
	for (uint32_t t = 0; t < SLM_DTYPE__COUNT; t++)
		if (m->type_count[t])
			printf("  %-13s %4u  %s\n", slm_dtype_name(t),
			       m->type_count[t],
			       human((double)m->type_bytes[t], "B", b,
				     sizeof(b)));
	printf("%-15s %s (pre-tokenizer %s), %u tokens\n", "tokenizer",
	       tok->model ? tok->model : "(none)",
	       tok->pre ? tok->pre : "(none)", tok->n_tokens);
	printf("%-15s", "special ids");
	const struct {
		const char *name;
		int64_t id;
	} ids[] = {{"bos", tok->bos},
		   {"eos", tok->eos},
		   {"unk", tok->unk},
		   {"pad", tok->pad}};
	const char *sep = " ";
	for (size_t i = 0; i < SLM_ARRAY_LEN(ids); i++) {
		if (ids[i].id < 0)
			continue;
		printf("%s%s %lld", sep, ids[i].name, (long long)ids[i].id);
		sep = ", ";
	}
	if (tok->add_bos >= 0)
		printf("%sadd_bos %s", sep, tok->add_bos ? "true" : "false");
	printf("\n");
	const char *chat = slm_chat_detect(tok->chat_template);
	printf("%-15s %s\n", "chat template",
	       chat		    ? chat
	       : tok->chat_template ? "present (not a supported template)"
				    : "none");
}

static void usage(FILE *out)
{
	fprintf(out, "usage: slm info -m FILE [--json] [-c FILE] [--set K=V]\n"
		     "  -m, --model FILE  the GGUF file to describe\n"
		     "  --json            one JSON object instead of text\n");
}

static int cmd_info(int argc, char **argv)
{
	struct slm_config_args args = {0};
	const char *path = NULL;
	bool json = false;
	for (int i = 1; i < argc; i++) {
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) {
			if (i + 1 >= argc)
				slm_cli_die(prog, "%s needs a file", argv[i]);
			path = argv[++i];
		} else if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-h") ||
			   !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		} else {
			slm_cli_die(prog, "unknown option '%s' (see --help)",
				    argv[i]);
		}
	}
	if (!path)
		slm_cli_die(prog, "no model given (-m FILE)");
	struct slm_config *cfg = slm_cli_load_config(prog, &args);
	slm_config_destroy(cfg);

	struct slm_model *m;
	struct slm_error err = {0};
	if (slm_model_open(path, &m, &err)) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	int status = 0;
	if (json) {
		cJSON *o = slm_info_json(m);
		char *text = o ? cJSON_Print(o) : NULL;
		if (text) {
			printf("%s\n", text);
		} else {
			fprintf(stderr, "%s: out of memory\n", prog);
			status = 1;
		}
		free(text);
		cJSON_Delete(o);
	} else {
		print_text(m);
	}
	slm_model_close(m);
	if (fflush(stdout) != 0) {
		perror("slm info: stdout");
		status = 1;
	}
	return status;
}

SLM_COMMAND("info", cmd_info,
	    "describe a GGUF model: hyperparameters, tensors, tokenizer")
