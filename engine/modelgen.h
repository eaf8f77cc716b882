/*
 * modelgen.h: writing a model of a given shape with generated weights, as
 * a GGUF file llama.cpp's own tools accept.
 *
 * The file follows the conventions of llama.cpp's converter
 * (convert_hf_to_gguf.py through gguf-py's writer), which the golden model
 * files show byte for byte:
 *
 *   metadata   general.architecture, general.type = "model", general.name,
 *              general.basename, general.size_label ("3.7M", "1.1B": the
 *              parameter count as gguf-py rounds it), <arch>.block_count,
 *              .context_length, .embedding_length, .feed_forward_length,
 *              .attention.head_count, .attention.head_count_kv,
 *              .rope.freq_base (f32), .attention.layer_norm_rms_epsilon
 *              (f32), general.file_type = 0, [llama: llama.vocab_size,
 *              llama.rope.dimension_count], general.quantization_version
 *              = 2, then the vocabulary's tokenizer.* pairs in their order;
 *   tensors    [rope_freqs], token_embd, then per layer attn_norm,
 *              ffn_down, ffn_gate, ffn_up, ffn_norm, [attn_k.bias],
 *              attn_k, attn_output, [attn_q.bias], attn_q, [attn_v.bias],
 *              attn_v, then output_norm, [output]; F32; alignment 32.
 *
 * That is the file for type F32.  Any other type gives the file
 * llama-quantize would make from that F32 file (engine/quantize.h: mix
 * rules, quantization_version and file_type moved to the end, tensors in
 * its order), without the F32 file ever existing: each tensor is
 * generated in chunks of rows, converted and streamed to disk, so memory
 * stays at a few tens of MiB whatever the model size.
 *
 * Weights come from a fill callback.  slm_model_fill_random is the
 * standard one: N(0, std) per tensor role with the golden models' recipe
 * (std about 1/sqrt(fan_in); norms 1 + 0.1 N(0,1)), deterministic from a
 * seed and independent of the thread count.
 */
#ifndef SLM_ENGINE_MODELGEN_H
#define SLM_ENGINE_MODELGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct gguf_file;
struct gguf_writer;

#define SLM_MODEL_NAME_MAX 64

struct slm_model_shape {
	char name[SLM_MODEL_NAME_MAX]; /* general.name / general.basename */
	char arch[16];		       /* "llama" or "qwen2" */
	uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
	float rope_base; /* <arch>.rope.freq_base */
	float rms_eps;	 /* <arch>.attention.layer_norm_rms_epsilon */
	bool tied;	 /* no output.weight: token_embd is the output */
	bool qkv_bias;	 /* attn_q/k/v biases (qwen2) */
	bool rope_freqs; /* a rope_freqs.weight [head_dim/2] (llama3) */
};

/*
 * Named shapes: "tinyllama" (TinyLlama-1.1B: llama, 32000 x 2048, 22
 * layers, 32/4 heads, n_ff 5632), "qwen05" (Qwen2.5-0.5B: qwen2, 151936 x
 * 896, 24 layers, 14/2 heads, n_ff 4864, tied, q/k/v biases), "tiny"
 * (llama, 512 x 64, 2 layers, 4/2 heads, n_ff 192: for tests).
 * Returns 0 or SLM_ENOTFOUND.
 */
int slm_model_preset(const char *name, struct slm_model_shape *out);

/* "tinyllama, qwen05, tiny", for messages. */
const char *slm_model_preset_list(void);

/* The vocabulary file a preset is meant for ("vocab-spm.gguf"), or NULL
 * when the built-in byte vocabulary fits it. */
const char *slm_model_preset_vocab(const char *name);

/* Check a shape (arch known, heads divide n_embd, sizes non-zero...). */
int slm_model_shape_check(const struct slm_model_shape *s,
			  struct slm_error *err) SLM_MUST_CHECK;

enum slm_model_role {
	SLM_ROLE_ROPE_FREQS,
	SLM_ROLE_TOKEN_EMBD,
	SLM_ROLE_ATTN_NORM,
	SLM_ROLE_FFN_DOWN,
	SLM_ROLE_FFN_GATE,
	SLM_ROLE_FFN_UP,
	SLM_ROLE_FFN_NORM,
	SLM_ROLE_ATTN_K_BIAS,
	SLM_ROLE_ATTN_K,
	SLM_ROLE_ATTN_OUTPUT,
	SLM_ROLE_ATTN_Q_BIAS,
	SLM_ROLE_ATTN_Q,
	SLM_ROLE_ATTN_V_BIAS,
	SLM_ROLE_ATTN_V,
	SLM_ROLE_OUTPUT_NORM,
	SLM_ROLE_OUTPUT,
};

struct slm_model_tensor {
	char name[SLM_MODEL_NAME_MAX]; /* "blk.3.attn_q.weight" */
	enum slm_model_role role;
	int layer;	 /* -1 outside the blocks */
	uint32_t n_dims; /* 1 or 2 */
	uint64_t ne[2];	 /* ne[0] = row length (fan-in); ne[1] rows */
	uint64_t n_elements;
};

/*
 * The tensors of a shape in the converter's order into out (room for
 * max); returns how many there are (call with max 0 to count).
 */
size_t slm_model_tensors(const struct slm_model_shape *s,
			 struct slm_model_tensor *out, size_t max);

/* Parameters: elements of every tensor. */
uint64_t slm_model_n_params(const struct slm_model_shape *s);

/* gguf-py's size label of a parameter count: "3.7M", "1.1B", "494M". */
void slm_model_size_label(uint64_t n_params, char *buf, size_t size);

/*
 * The converter's metadata (see the top) into an empty writer, with the
 * tokenizer.* pairs of `vocab` (NULL: the built-in byte vocabulary).  The
 * vocabulary must have exactly n_vocab tokens.
 */
int slm_model_metadata(struct gguf_writer *w, const struct slm_model_shape *s,
		       const struct gguf_file *vocab,
		       struct slm_error *err) SLM_MUST_CHECK;

/*
 * The built-in vocabulary (no file needed): SPM with byte fallback,
 * <unk> <s> </s>, the 256 byte tokens <0x00>..<0xFF>, then "<unused N>"
 * tokens up to n_vocab (>= 259).  Sets the tokenizer.* pairs.
 */
int slm_model_builtin_vocab(struct gguf_writer *w, uint32_t n_vocab,
			    struct slm_error *err) SLM_MUST_CHECK;

/*
 * Weights of rows [row0, row0 + nrows) of tensor t into out (nrows *
 * ne[0] floats).  A tensor's rows are asked for in order, each once, one
 * tensor after another, from one thread.  Returns 0 or an SLM_E* code.
 */
typedef int (*slm_model_fill_fn)(void *ctx, const struct slm_model_tensor *t,
				 uint64_t row0, uint64_t nrows, float *out);

/* Called as data is written; done/total in tensor data bytes. */
typedef void (*slm_model_progress_fn)(void *ctx, const char *tensor,
				      uint64_t done, uint64_t total);

struct slm_model_params {
	int ftype;		       /* SLM_FTYPE_* (engine/quantize.h) */
	const struct gguf_file *vocab; /* NULL: built-in vocabulary */
	slm_model_fill_fn fill;
	void *fill_ctx;
	int n_threads; /* conversion threads; <= 0: all CPUs */
	slm_model_progress_fn progress;
	void *progress_ctx;
};

/* Write the model to path (via path.tmp, renamed when complete). */
int slm_model_write(const char *path, const struct slm_model_shape *s,
		    const struct slm_model_params *p,
		    struct slm_error *err) SLM_MUST_CHECK;

/* ---- the standard weights --------------------------------------------- */

struct slm_model_random {
	uint64_t seed;
	int n_threads; /* <= 0: all CPUs; the values do not depend on it */
	uint32_t n_embd, n_ff; /* of the shape (set by slm_model_random_init) */
	bool tied;
};

void slm_model_random_init(struct slm_model_random *r,
			   const struct slm_model_shape *s, uint64_t seed,
			   int n_threads);

/*
 * An slm_model_fill_fn (ctx: struct slm_model_random): each row has its
 * own generator seeded from (seed, tensor name, row), values N(0, 1)
 * scaled per role: token_embd 0.02; attn_q, attn_k 1/sqrt(n_embd);
 * attn_v, attn_output, ffn_gate, ffn_up 0.7/sqrt(n_embd); ffn_down
 * 0.7/sqrt(n_ff); output 10/sqrt(n_embd); biases 0.1; norms 1 + 0.1 N;
 * output_norm of a tied model times 10/(0.02 sqrt(n_embd)); rope_freqs 1.
 */
int slm_model_fill_random(void *ctx, const struct slm_model_tensor *t,
			  uint64_t row0, uint64_t nrows, float *out);

#endif
