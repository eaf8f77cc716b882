/*
 * make_seeds: write the seed corpus of fuzz_gguf: tiny but complete
 * models (llama with its own output in Q8_0; llama with llama3 rope_freqs
 * and a tied output in F16; qwen2 with biases in Q4_0) and a
 * vocabulary-only file, a few kilobytes each, so the fuzzer starts from
 * inputs that reach the model description.
 *
 *   cc -I. -D_GNU_SOURCE tests/fuzz/make_seeds.c engine/gguf.c \
 *      engine/dtype.c common/err.c -o make_seeds && ./make_seeds DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dtype.h"
#include "engine/gguf.h"

static void die(const char *what)
{
	fprintf(stderr, "make_seeds: %s\n", what);
	exit(1);
}

static uint8_t zeros[1 << 16];
static float ones[256];

static void add(struct gguf_writer *w, const char *name, uint64_t ne0,
		uint64_t ne1, uint32_t type)
{
	uint64_t ne[2] = {ne0, ne1};
	struct slm_error err = {0};
	const void *data = strstr(name, "rope_freqs") ? (const void *)ones
						      : (const void *)zeros;
	if (gguf_add_tensor(w, name, ne1 ? 2 : 1, ne, type, data, &err))
		die(err.msg);
}

static void vocab(struct gguf_writer *w, const char *model, uint32_t n)
{
	const char *tok[64];
	char buf[64][8];
	for (uint32_t i = 0; i < n; i++) {
		snprintf(buf[i], sizeof(buf[i]), "t%u", i);
		tok[i] = buf[i];
	}
	if (gguf_set_str(w, "tokenizer.ggml.model", model) ||
	    gguf_set_arr_str(w, "tokenizer.ggml.tokens", tok, n) ||
	    gguf_set_u32(w, "tokenizer.ggml.bos_token_id", 1) ||
	    gguf_set_u32(w, "tokenizer.ggml.eos_token_id", 2))
		die("out of memory");
}

/* arch, vocab, embd, heads, kv heads, ff, weight type, flags */
static void model(const char *path, const char *arch, uint32_t n_vocab,
		  uint32_t n_embd, uint32_t n_head, uint32_t n_head_kv,
		  uint32_t n_ff, uint32_t type, bool tied, bool bias,
		  bool rope_freqs)
{
	struct gguf_writer *w = gguf_writer_create();
	char key[64];
	const uint32_t hd = n_embd / n_head;
	if (!w || gguf_set_str(w, "general.architecture", arch))
		die("out of memory");
#define U32(k, v)                                          \
	do {                                               \
		snprintf(key, sizeof(key), "%s." k, arch); \
		if (gguf_set_u32(w, key, v))               \
			die("out of memory");              \
	} while (0)
	U32("block_count", 1);
	U32("context_length", 128);
	U32("embedding_length", n_embd);
	U32("feed_forward_length", n_ff);
	U32("attention.head_count", n_head);
	U32("attention.head_count_kv", n_head_kv);
	snprintf(key, sizeof(key), "%s.attention.layer_norm_rms_epsilon", arch);
	if (gguf_set_f32(w, key, 1e-5f))
		die("out of memory");
	vocab(w, "gpt2", n_vocab);
	if (gguf_set_u32(w, "general.file_type", 7))
		die("out of memory");
	add(w, "token_embd.weight", n_embd, n_vocab, type);
	add(w, "output_norm.weight", n_embd, 0, SLM_DTYPE_F32);
	if (!tied)
		add(w, "output.weight", n_embd, n_vocab, type);
	if (rope_freqs)
		add(w, "rope_freqs.weight", hd / 2, 0, SLM_DTYPE_F32);
	add(w, "blk.0.attn_norm.weight", n_embd, 0, SLM_DTYPE_F32);
	add(w, "blk.0.attn_q.weight", n_embd, n_head * hd, type);
	add(w, "blk.0.attn_k.weight", n_embd, n_head_kv * hd, type);
	add(w, "blk.0.attn_v.weight", n_embd, n_head_kv * hd, type);
	add(w, "blk.0.attn_output.weight", n_head * hd, n_embd, type);
	if (bias) {
		add(w, "blk.0.attn_q.bias", n_head * hd, 0, SLM_DTYPE_F32);
		add(w, "blk.0.attn_k.bias", n_head_kv * hd, 0, SLM_DTYPE_F32);
		add(w, "blk.0.attn_v.bias", n_head_kv * hd, 0, SLM_DTYPE_F32);
	}
	add(w, "blk.0.ffn_norm.weight", n_embd, 0, SLM_DTYPE_F32);
	add(w, "blk.0.ffn_gate.weight", n_embd, n_ff, type);
	add(w, "blk.0.ffn_up.weight", n_embd, n_ff, type);
	add(w, "blk.0.ffn_down.weight", n_ff, n_embd, type);
	struct slm_error err = {0};
	if (gguf_writer_write(w, path, &err))
		die(err.msg);
	gguf_writer_destroy(w);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		die("usage: make_seeds DIR");
	char path[4096];
	for (int i = 0; i < 256; i++)
		ones[i] = 1.0f;
	snprintf(path, sizeof(path), "%s/llama-q8_0.gguf", argv[1]);
	model(path, "llama", 16, 32, 2, 1, 64, SLM_DTYPE_Q8_0, false, false,
	      false);
	snprintf(path, sizeof(path), "%s/llama3-f16-tied.gguf", argv[1]);
	model(path, "llama", 16, 32, 2, 1, 32, SLM_DTYPE_F16, true, false,
	      true);
	snprintf(path, sizeof(path), "%s/qwen2-q4_0.gguf", argv[1]);
	model(path, "qwen2", 16, 64, 2, 1, 64, SLM_DTYPE_Q4_0, true, true,
	      false);
	struct gguf_writer *w = gguf_writer_create();
	struct slm_error err = {0};
	if (!w || gguf_set_str(w, "general.architecture", "llama"))
		die("out of memory");
	vocab(w, "llama", 32);
	snprintf(path, sizeof(path), "%s/vocab-only.gguf", argv[1]);
	if (gguf_writer_write(w, path, &err))
		die(err.msg);
	gguf_writer_destroy(w);
	return 0;
}
