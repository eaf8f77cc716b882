/*
 * quantize.h: converting a model's weights to another type, as
 * llama-quantize does, byte for byte.
 *
 * A file type ("ftype", llama.cpp's LLAMA_FTYPE_* numbers, written to
 * general.file_type) names a mix: a base type plus rules that give some
 * tensors more bits.  This module owns those rules and the layout of the
 * output file:
 *
 *   which tensors:  2-D (and 3-D) tensors whose name ends in "weight",
 *                   except norms and a few small special tensors; 1-D
 *                   tensors (norms, biases, rope_freqs) are copied as
 *                   they are;
 *   which type:     llama.cpp's llama_tensor_get_type: output.weight (and
 *                   token_embd.weight of a model without output.weight)
 *                   gets Q6_K unless the mix is Q8_0; attn_v and ffn_down
 *                   get more bits in some layers of the _M/_L mixes
 *                   (use_more_bits: the first and last eighth of the
 *                   layers and every third layer between); a K-quant on a
 *                   row length that is not a multiple of 256 falls back
 *                   (Q2_K, Q3_K -> Q4_0; Q4_K -> Q5_0; Q5_K -> Q5_1;
 *                   Q6_K -> Q8_0; F16 if even that does not divide);
 *   file layout:    every metadata pair of the input in its order, then
 *                   general.quantization_version = 2 and general.file_type
 *                   set (so both move to the end), split keys removed;
 *                   tensors ordered as llama.cpp's loader map orders them
 *                   (tensors without a "blk.N." layer first, then by
 *                   layer; by name within each); alignment 32.
 *
 * The conversions themselves are engine/quant.h's reference quantizers,
 * so a file quantized here from an F32 source equals llama-quantize's
 * file from the same source (no importance matrix).  Requantizing an
 * already quantized tensor (which llama-quantize refuses without
 * --allow-requantize) is allowed and dequantizes exactly first.
 */
#ifndef SLM_ENGINE_QUANTIZE_H
#define SLM_ENGINE_QUANTIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "engine/dtype.h"

/* llama.cpp's LLAMA_FTYPE_* numbers: the ones this module can write. */
enum slm_ftype {
	SLM_FTYPE_ALL_F32 = 0,
	SLM_FTYPE_MOSTLY_F16 = 1,
	SLM_FTYPE_MOSTLY_Q4_0 = 2,
	SLM_FTYPE_MOSTLY_Q4_1 = 3,
	SLM_FTYPE_MOSTLY_Q8_0 = 7,
	SLM_FTYPE_MOSTLY_Q5_0 = 8,
	SLM_FTYPE_MOSTLY_Q5_1 = 9,
	SLM_FTYPE_MOSTLY_Q2_K = 10,
	SLM_FTYPE_MOSTLY_Q3_K_S = 11,
	SLM_FTYPE_MOSTLY_Q3_K_M = 12,
	SLM_FTYPE_MOSTLY_Q3_K_L = 13,
	SLM_FTYPE_MOSTLY_Q4_K_S = 14,
	SLM_FTYPE_MOSTLY_Q4_K_M = 15,
	SLM_FTYPE_MOSTLY_Q5_K_S = 16,
	SLM_FTYPE_MOSTLY_Q5_K_M = 17,
	SLM_FTYPE_MOSTLY_Q6_K = 18,
	SLM_FTYPE_MOSTLY_BF16 = 32,
};

/*
 * The ftype of a llama-quantize type name ("Q4_K_M", "q8_0", "F16"; the
 * aliases Q3_K, Q4_K, Q5_K mean the _M mixes, as in llama-quantize), or
 * -1 for a name this module cannot write.
 */
int slm_ftype_from_name(const char *name);

/* "Q4_K_M", ...; NULL for an ftype not in the enum. */
const char *slm_ftype_name(int ftype);

/* The base tensor type of a mix (Q4_K for Q4_K_M); -1 if unknown. */
int slm_ftype_base_type(int ftype);

/* "F32, F16, BF16, Q8_0, ...": the writable type names, for messages. */
const char *slm_ftype_list(void);

/* ---- the mix rules ---------------------------------------------------- */

/* What the rules need to know about the model (from its metadata). */
struct slm_qmodel {
	const char *arch;   /* general.architecture */
	uint32_t n_layer;   /* <arch>.block_count */
	uint32_t n_head;    /* <arch>.attention.head_count */
	uint32_t n_head_kv; /* <arch>.attention.head_count_kv */
	uint32_t n_expert;  /* <arch>.expert_count, 0 when absent */
};

/* One input tensor. */
struct slm_qtensor {
	const char *name;
	uint32_t n_dims;
	uint64_t ne[4];
	uint32_t type; /* enum slm_dtype: its type in the input */
};

/*
 * The plan for converting n tensors to `ftype`: out_types[i] is the type
 * tensor i gets (its own type when it is not quantized), and order[k] the
 * index of the k-th tensor of the output file.  n_fallback counts the
 * tensors whose K-quant fell back (may be NULL).  Fails (SLM_EUNSUPPORTED)
 * when a tensor's row fits no type of the mix, naming the tensor.
 */
int slm_quant_plan(const struct slm_qmodel *model, int ftype,
		   const struct slm_qtensor *tensors, size_t n,
		   uint32_t *out_types, size_t *order, size_t *n_fallback,
		   struct slm_error *err) SLM_MUST_CHECK;

/*
 * The slm_qmodel of an open GGUF file (arch points into the file, valid
 * while it is open).  Fails when general.architecture is missing.
 */
struct gguf_file;
int slm_quant_model_of(const struct gguf_file *f, struct slm_qmodel *m,
		       struct slm_error *err) SLM_MUST_CHECK;

/*
 * True when tensor `a` comes before `b` in llama.cpp's order: layer
 * number first ("blk.N." prefix; none counts as -1), then strcmp.
 */
bool slm_quant_name_before(const char *a, const char *b);

/* ---- conversions ------------------------------------------------------ */

/*
 * Convert nrows rows of n_per_row values from src_type to dst_type
 * (any of F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K..Q6_K):
 * dequantized exactly to f32, then quantized by the reference quantizer.
 * Equal types copy.  Rows are split over n_threads threads (<= 1: the
 * caller's thread); the result does not depend on n_threads.
 */
int slm_convert_rows(uint32_t src_type, const void *src, uint32_t dst_type,
		     void *dst, int64_t nrows, int64_t n_per_row, int n_threads,
		     struct slm_error *err) SLM_MUST_CHECK;

/* ---- whole files ------------------------------------------------------ */

/* Called after each tensor; done/total in output tensor data bytes. */
typedef void (*slm_quant_progress_fn)(void *ctx, size_t index, size_t count,
				      const char *name, uint32_t from_type,
				      uint32_t to_type, uint64_t done,
				      uint64_t total);

struct slm_quant_params {
	int n_threads; /* <= 0: all online CPUs */
	slm_quant_progress_fn progress;
	void *progress_ctx;
};

/*
 * Quantize the GGUF file `in` to `out` as llama-quantize does (see the
 * top of this header).  The output is written to out.tmp and renamed, so
 * a failure leaves no partial file.  err names the file and tensor.
 */
int slm_quantize_file(const char *in, const char *out, int ftype,
		      const struct slm_quant_params *params,
		      struct slm_error *err) SLM_MUST_CHECK;

#endif
