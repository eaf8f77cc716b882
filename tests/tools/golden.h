/*
 * golden.h: how the golden model files were made, as code the tests and
 * tests/tools/golden_regen share.
 *
 * Three synthetic models (tests/data/golden; the golden README describes
 * them): llama-s, llama3-s and qwen2-s.  Their F32 files hold NumPy
 * normals, one generator per tensor
 *
 *     default_rng([20260817, crc32(model), crc32(tensor)])
 *     .standard_normal((ne1, ne0), dtype=float32)
 *
 * turned into weights in float32 arithmetic:
 *
 *     matrices, biases   x * float32(std)       (std computed in double)
 *     norms              float32(1) + float32(0.1) * x
 *     tied output_norm   (1 + 0.1 * x) * float32(10 / (0.02 sqrt(n_embd)))
 *
 * with std 0.02 (token_embd), 1/sqrt(n_embd) (attn_q, attn_k),
 * 0.7/sqrt(n_embd) (attn_v, attn_output, ffn_gate, ffn_up),
 * 0.7/sqrt(n_ff) (ffn_down), 10/sqrt(n_embd) (output), 0.1 (biases).  The
 * operation order was found by reproducing llama-s-F32.gguf bit for bit
 * (and the F32 norms of the other two models' F16 files); the golden
 * README gives the formulas but not the float32/float64 order.
 *
 * The tokenizer metadata and llama3-s's rope_freqs values come from the
 * committed templates tests/data/golden/template-<model>.gguf.
 */
#ifndef SLM_TESTS_GOLDEN_H
#define SLM_TESTS_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/modelgen.h"
#include "tests/tools/npy_random.h"

struct gguf_file;

/* The three golden shapes by model name ("llama-s"...), or NULL. */
const struct slm_model_shape *golden_shape(const char *model);

/* Names of the golden models, NULL-terminated. */
extern const char *const golden_models[];

/* The weight generator: an slm_model_fill_fn over this context. */
struct golden_fill {
	const struct slm_model_shape *shape;
	const struct gguf_file *tmpl; /* rope_freqs.weight source */
	/* the stream of the tensor being generated */
	char tensor[SLM_MODEL_NAME_MAX];
	uint64_t next_row;
	struct npy_pcg64 rng;
};

void golden_fill_init(struct golden_fill *g,
		      const struct slm_model_shape *shape,
		      const struct gguf_file *tmpl);
int golden_fill(void *ctx, const struct slm_model_tensor *t, uint64_t row0,
		uint64_t nrows, float *out);

/*
 * sha256 of a file as 64 lowercase hex digits into hex[65].  Returns 0 or
 * SLM_EIO.
 */
int golden_sha256_file(const char *path, char hex[65]);

/*
 * The expected sha256 of golden file `key` ("models/llama-s-Q4_0.gguf")
 * from manifest-style JSON files ({"files": {key: {"sha256": ...}}}),
 * the first that has it, into hex[65].  Returns 0 or SLM_ENOTFOUND.
 */
int golden_expected_sha256(const char *const *manifests, size_t n,
			   const char *key, char hex[65]);

#endif
