/*
 * model.h: what a GGUF file says the model is: architecture,
 * hyperparameters, the tensor table the forward pass reads, and the
 * tokenizer facts a description needs.
 *
 * slm_model_open() opens a GGUF file (engine/gguf.h), reads the
 * hyperparameters of a `llama` or `qwen2` model from the metadata keys
 * real converted checkpoints carry (llama.cpp's convert_hf_to_gguf.py and
 * llama-quantize), and checks every tensor the architecture needs for
 * presence, exact shape and a supported type.  Anything else is refused
 * with a message that names the file and the offending key or tensor and
 * lists what is supported: another architecture, an IQ or other unsupported
 * type, a missing or misshapen tensor, a tensor the architecture does not
 * use (ignoring it would compute something else than the file means),
 * hyperparameters that contradict each other.
 *
 * Tensor views (struct slm_tensor) describe one tensor: type, shape, bytes
 * and where its data lies in the file.  The model's own table
 * (model->tensors) has no data pointers: engine/weights.h loads the data
 * and hands out a copy of the table whose views point into memory (one
 * copy per NUMA replica), which is what the forward pass reads.
 *
 * Shapes follow GGUF/ggml: ne[0] is the length of a row (the input
 * dimension of a weight matrix), ne[1] the number of rows (its output
 * dimension).  A weight W of shape [n_in, n_out] computes y = W x with
 * y[r] = dot(row r of W, x).
 *
 * The model owns its gguf_file; strings in it (names, tokenizer facts)
 * live as long as the model.  A model is immutable after open and may be
 * read by any number of threads.
 */
#ifndef SLM_ENGINE_MODEL_H
#define SLM_ENGINE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/dtype.h"
#include "engine/gguf.h"

enum slm_arch {
	SLM_ARCH_LLAMA = 0, /* Llama 1/2/3, TinyLlama, SmolLM2, Mistral */
	SLM_ARCH_QWEN2 = 1, /* Qwen2, Qwen2.5: q/k/v biases, NEOX RoPE */
};

/* "llama", "qwen2". */
const char *slm_arch_name(enum slm_arch arch);

/* "llama, qwen2": for messages. */
const char *slm_arch_supported_list(void);

enum slm_rope_scaling {
	SLM_ROPE_SCALING_NONE = 0,
	SLM_ROPE_SCALING_LINEAR = 1, /* positions divided by the factor */
	SLM_ROPE_SCALING_LLAMA3 = 2, /* per-dimension factors, rope_freqs */
};

/* "none", "linear", "llama3". */
const char *slm_rope_scaling_name(enum slm_rope_scaling s);

struct slm_hparams {
	enum slm_arch arch;
	uint32_t n_vocab;     /* rows of token_embd and output */
	uint32_t n_embd;      /* residual stream width */
	uint32_t n_layer;     /* transformer blocks */
	uint32_t n_head;      /* query heads */
	uint32_t n_head_kv;   /* key/value heads; n_head % n_head_kv == 0 */
	uint32_t head_dim;    /* per head; == rotary dimensions (n_rot) */
	uint32_t n_ff;	      /* hidden width of the SwiGLU FFN */
	uint32_t n_ctx_train; /* <arch>.context_length */
	float rope_freq_base; /* theta; 10000 when the key is absent */
	/* RoPE pairing: false = adjacent pairs (2i, 2i+1) (llama),
	 * true = halves (i, i + head_dim/2) (qwen2, "NEOX"). */
	bool rope_neox;
	enum slm_rope_scaling rope_scaling;
	/*
	 * linear: the factor (the angle of position p uses p / factor);
	 * llama3: the largest factor of rope_freqs (reported, e.g. 32);
	 * none: 1.
	 */
	float rope_scaling_factor;
	/* Multiplies positions: 1 / linear factor, else 1. */
	float rope_freq_scale;
	float rms_eps;	  /* RMSNorm epsilon */
	bool tied_output; /* no output.weight: logits use token_embd */
	bool qkv_bias;	  /* attn_q/k/v biases present */
};

/* One tensor: shape, type and where its bytes are. */
struct slm_tensor {
	const char *name; /* NULL when the tensor is absent (optional) */
	uint32_t type;	  /* enum slm_dtype */
	uint32_t n_dims;  /* as in the file */
	uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] = row length; unused dims 1 */
	uint64_t bytes;		    /* whole tensor */
	uint64_t row_bytes;	    /* one row of ne[0] elements */
	uint64_t offset;	    /* from the start of the data section */
	const void *data;	    /* NULL in model->tensors; set by weights */
};

static inline bool slm_tensor_present(const struct slm_tensor *t)
{
	return t->name != NULL;
}

/* One transformer block.  d = head_dim, shapes [ne0, ne1]. */
struct slm_layer {
	struct slm_tensor attn_norm; /* [n_embd] F32 */
	struct slm_tensor wq;	     /* [n_embd, n_head * d] */
	struct slm_tensor wk;	     /* [n_embd, n_head_kv * d] */
	struct slm_tensor wv;	     /* [n_embd, n_head_kv * d] */
	struct slm_tensor wo;	     /* [n_head * d, n_embd] */
	struct slm_tensor bq;	     /* [n_head * d] F32, optional */
	struct slm_tensor bk;	     /* [n_head_kv * d] F32, optional */
	struct slm_tensor bv;	     /* [n_head_kv * d] F32, optional */
	struct slm_tensor ffn_norm;  /* [n_embd] F32 */
	struct slm_tensor w_gate;    /* [n_embd, n_ff] */
	struct slm_tensor w_up;	     /* [n_embd, n_ff] */
	struct slm_tensor w_down;    /* [n_ff, n_embd] */
};

/* Every tensor the forward pass reads. */
struct slm_tensors {
	struct slm_tensor token_embd;  /* [n_embd, n_vocab] */
	struct slm_tensor output_norm; /* [n_embd] F32 */
	/* [n_embd, n_vocab]; when tied, a copy of token_embd's view */
	struct slm_tensor output;
	struct slm_tensor rope_freqs; /* [head_dim / 2] F32, optional */
	uint32_t n_layer;
	struct slm_layer *layers; /* [n_layer] */
};

/* Tokenizer facts read straight from the metadata (the tokenizer module
 * builds the real tokenizer from the same keys). */
struct slm_tokenizer_info {
	const char *model; /* tokenizer.ggml.model: "llama" (SPM), "gpt2"
			      (BPE), ...; NULL when absent */
	const char *pre;   /* tokenizer.ggml.pre; NULL when absent */
	uint32_t n_tokens; /* length of tokenizer.ggml.tokens; 0 if absent */
	int64_t bos, eos, unk, pad; /* special ids; -1 when absent */
	int add_bos;		    /* add_bos_token: 1, 0; -1 when absent */
	const char *chat_template;  /* tokenizer.chat_template or NULL */
};

struct slm_model {
	struct gguf_file *file; /* owned */
	const char *path;
	const char *name;  /* general.name, or NULL */
	int64_t file_type; /* general.file_type (LLAMA_FTYPE_*), -1 absent */
	uint64_t n_params; /* elements of every tensor in the file */
	struct slm_hparams hp;
	struct slm_tensors tensors; /* data pointers NULL: see weights.h */
	struct slm_tokenizer_info tok;
	/* Per type (index enum slm_dtype): tensors and bytes in the file. */
	uint32_t type_count[SLM_DTYPE__COUNT];
	uint64_t type_bytes[SLM_DTYPE__COUNT];
};

/*
 * Open a GGUF file and describe the model in it.  On success *out owns
 * the file; release with slm_model_close.  Errors: SLM_ENOTFOUND, SLM_EIO
 * (cannot open or map), SLM_EFORMAT (malformed file or contradictory
 * hyperparameters), SLM_EUNSUPPORTED (well formed, but an architecture,
 * type or feature slmd does not support), SLM_ENOMEM.  The message names
 * the file and what is wrong.
 */
int slm_model_open(const char *path, struct slm_model **out,
		   struct slm_error *err) SLM_MUST_CHECK;

/*
 * Describe an already opened file.  On success the model takes ownership
 * of f; on failure the caller still owns it.
 */
int slm_model_from_gguf(struct gguf_file *f, struct slm_model **out,
			struct slm_error *err) SLM_MUST_CHECK;

void slm_model_close(struct slm_model *m);

/*
 * llama.cpp's name of a general.file_type value without the LLAMA_FTYPE_
 * prefix ("ALL_F32", "MOSTLY_Q4_K_M", ...); NULL for a value it does not
 * define.
 */
const char *slm_file_type_name(int64_t file_type);

/*
 * Call fn on every view of a tensor table (each layer's absent optional
 * tensors included, so fn must check slm_tensor_present); the tied output
 * view is visited too.  Used by the weight loader to set data pointers.
 */
void slm_tensors_for_each(struct slm_tensors *t,
			  void (*fn)(struct slm_tensor *v, void *arg),
			  void *arg);

#endif
