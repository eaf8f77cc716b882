/*
 * gen_shape_model: write a GGUF file with the exact shape and tensor
 * layout of a real model, filled with random bytes, for load benchmarks
 * (how fast bytes reach memory does not depend on their values).
 *
 *   gen_shape_model OUT.gguf [tinyllama-q4_k_m]
 *
 * tinyllama-q4_k_m: TinyLlama-1.1B's hyperparameters with llama-quantize's
 * Q4_K_M mix (attn_v and ffn_down in Q6_K on the layers llama.cpp's
 * use_more_bits picks, output Q6_K, the rest Q4_K, norms F32), a 32000
 * token SPM vocabulary in the metadata: 668 MB, as the real file.
 *
 * Built by bench/bench_load.sh against libslmcore.a; not part of the
 * programs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dtype.h"
#include "engine/gguf.h"

struct shape {
	const char *name;
	uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
	float rope_base, rms_eps;
};

static const struct shape tinyllama = {
	"tinyllama-shape-Q4_K_M",
	32000,
	2048,
	22,
	32,
	4,
	5632,
	2048,
	10000.0f,
	1e-5f,
};

/* llama.cpp's use_more_bits(i, n) of the Q4_K_M/Q5_K_M mixes. */
static int more_bits(uint32_t i, uint32_t n)
{
	return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static void fill_random(uint8_t *p, uint64_t n)
{
	uint64_t i = 0;
	for (; i + 8 <= n; i += 8) {
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		memcpy(p + i, &rng, 8);
	}
	for (; i < n; i++)
		p[i] = (uint8_t)i;
}

static void die(const char *what, const struct slm_error *err)
{
	fprintf(stderr, "gen_shape_model: %s%s%s\n", what, err ? ": " : "",
		err ? err->msg : "");
	exit(1);
}

/* Sizes and types of the tensors added, in order, for streaming. */
static uint64_t sizes[1024];
static uint32_t kinds[1024];
static uint32_t n_added;

static void add(struct gguf_writer *w, const char *name, uint64_t ne0,
		uint64_t ne1, uint32_t type)
{
	uint64_t ne[2] = {ne0, ne1};
	struct slm_error err = {0};
	if (n_added == 1024 ||
	    gguf_add_tensor(w, name, ne1 ? 2 : 1, ne, type, NULL, &err))
		die(name, &err);
	uint64_t row;
	if (!slm_dtype_row_bytes(type, ne0, &row))
		die(name, NULL);
	sizes[n_added] = row * (ne1 ? ne1 : 1);
	kinds[n_added] = type;
	n_added++;
}

int main(int argc, char **argv)
{
	if (argc < 2 || (argc > 2 && strcmp(argv[2], "tinyllama-q4_k_m"))) {
		fprintf(stderr, "usage: gen_shape_model OUT.gguf "
				"[tinyllama-q4_k_m]\n");
		return 1;
	}
	const struct shape *s = &tinyllama;
	const uint32_t head_dim = s->n_embd / s->n_head;
	struct gguf_writer *w = gguf_writer_create();
	if (!w)
		die("out of memory", NULL);
	int rc = 0;
	rc |= gguf_set_str(w, "general.architecture", "llama");
	rc |= gguf_set_str(w, "general.type", "model");
	rc |= gguf_set_str(w, "general.name", s->name);
	rc |= gguf_set_u32(w, "llama.block_count", s->n_layer);
	rc |= gguf_set_u32(w, "llama.context_length", s->n_ctx);
	rc |= gguf_set_u32(w, "llama.embedding_length", s->n_embd);
	rc |= gguf_set_u32(w, "llama.feed_forward_length", s->n_ff);
	rc |= gguf_set_u32(w, "llama.attention.head_count", s->n_head);
	rc |= gguf_set_u32(w, "llama.attention.head_count_kv", s->n_head_kv);
	rc |= gguf_set_f32(w, "llama.rope.freq_base", s->rope_base);
	rc |= gguf_set_f32(w, "llama.attention.layer_norm_rms_epsilon",
			   s->rms_eps);
	rc |= gguf_set_u32(w, "llama.vocab_size", s->n_vocab);
	rc |= gguf_set_u32(w, "llama.rope.dimension_count", head_dim);
	rc |= gguf_set_str(w, "tokenizer.ggml.model", "llama");
	rc |= gguf_set_str(w, "tokenizer.ggml.pre", "default");
	/* A vocabulary of the real size, so the header is as large. */
	char **tokens = calloc(s->n_vocab, sizeof(*tokens));
	float *scores = calloc(s->n_vocab, sizeof(*scores));
	int32_t *types = calloc(s->n_vocab, sizeof(*types));
	if (!tokens || !scores || !types)
		die("out of memory", NULL);
	for (uint32_t i = 0; i < s->n_vocab; i++) {
		char buf[32];
		snprintf(buf, sizeof(buf), "tok%u", i);
		tokens[i] = strdup(buf);
		scores[i] = -(float)i;
		types[i] = 1;
	}
	rc |= gguf_set_arr_str(w, "tokenizer.ggml.tokens",
			       (const char *const *)tokens, s->n_vocab);
	rc |= gguf_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32,
			   scores, s->n_vocab);
	rc |= gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32,
			   types, s->n_vocab);
	rc |= gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
	rc |= gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
	rc |= gguf_set_u32(w, "general.quantization_version", 2);
	rc |= gguf_set_u32(w, "general.file_type", 15); /* MOSTLY_Q4_K_M */
	for (uint32_t i = 0; i < s->n_vocab; i++)
		free(tokens[i]);
	free(tokens);
	free(scores);
	free(types);
	if (rc)
		die("out of memory", NULL);

	/* llama-quantize's order: tensors without a layer number, sorted,
	 * then each layer's tensors sorted by name. */
	const uint32_t kv = s->n_head_kv * head_dim;
	add(w, "output.weight", s->n_embd, s->n_vocab, SLM_DTYPE_Q6_K);
	add(w, "output_norm.weight", s->n_embd, 0, SLM_DTYPE_F32);
	add(w, "token_embd.weight", s->n_embd, s->n_vocab, SLM_DTYPE_Q4_K);
	for (uint32_t il = 0; il < s->n_layer; il++) {
		char n[64];
		uint32_t hi = more_bits(il, s->n_layer) ? SLM_DTYPE_Q6_K
							: SLM_DTYPE_Q4_K;
#define T(suffix, ne0, ne1, type)                             \
	do {                                                  \
		snprintf(n, sizeof(n), "blk.%u." suffix, il); \
		add(w, n, ne0, ne1, type);                    \
	} while (0)
		T("attn_k.weight", s->n_embd, kv, SLM_DTYPE_Q4_K);
		T("attn_norm.weight", s->n_embd, 0, SLM_DTYPE_F32);
		T("attn_output.weight", s->n_embd, s->n_embd, SLM_DTYPE_Q4_K);
		T("attn_q.weight", s->n_embd, s->n_embd, SLM_DTYPE_Q4_K);
		T("attn_v.weight", s->n_embd, kv, hi);
		T("ffn_down.weight", s->n_ff, s->n_embd, hi);
		T("ffn_gate.weight", s->n_embd, s->n_ff, SLM_DTYPE_Q4_K);
		T("ffn_norm.weight", s->n_embd, 0, SLM_DTYPE_F32);
		T("ffn_up.weight", s->n_embd, s->n_ff, SLM_DTYPE_Q4_K);
#undef T
	}

	struct slm_error err = {0};
	if (gguf_writer_begin(w, argv[1], &err))
		die("begin", &err);
	/* Random bytes, except F32 norms (1.0: a valid model to look at). */
	for (uint32_t i = 0; i < n_added; i++) {
		uint8_t *buf = malloc(sizes[i]);
		if (!buf)
			die("out of memory", NULL);
		if (kinds[i] == SLM_DTYPE_F32) {
			float one = 1.0f;
			for (uint64_t k = 0; k < sizes[i] / 4; k++)
				memcpy(buf + 4 * k, &one, 4);
		} else {
			fill_random(buf, sizes[i]);
		}
		rc = gguf_writer_write_data(w, i, buf, sizes[i], &err);
		free(buf);
		if (rc)
			die("write", &err);
	}
	if (gguf_writer_finish(w, &err))
		die("finish", &err);
	gguf_writer_destroy(w);
	return 0;
}
