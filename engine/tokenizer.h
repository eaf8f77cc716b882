/*
 * tokenizer.h: text to token ids and back, exactly as llama.cpp does it for
 * the same GGUF vocabulary.
 *
 * A vocabulary (struct slm_vocab) is read from a GGUF file's `tokenizer.*`
 * metadata: `tokenizer.ggml.model` chooses the algorithm, `.pre` the
 * pre-tokenizer, `.tokens` / `.scores` / `.token_type` / `.merges` the
 * tables, the `*_token_id` keys and `add_bos_token` / `add_eos_token` /
 * `add_space_prefix` the special tokens and what is added around a prompt.
 *
 *  - SPM (`llama`): spaces become U+2581, a space is put in front of each
 *    text fragment that starts the prompt or follows a special token, then
 *    adjacent symbols merge by highest score (ties: leftmost) while the
 *    merged text is a token; pieces that are no token fall back to byte
 *    tokens `<0xNN>`.
 *  - byte-level BPE (`gpt2`): the text is split by the pre-tokenizer regexes
 *    of `tokenizer.ggml.pre` (default/gpt2, llama-bpe/llama3, qwen2, smollm,
 *    deepseek-llm and their aliases; others are refused by name), run with
 *    PCRE2 (JIT, Unicode properties) over a copy of the text in which every
 *    non-ASCII code point stands for its llama.cpp character class (utf8proc
 *    categories plus the White_Space set), so `\s`, `\p{L}`, `\p{N}` decide
 *    as llama.cpp's tables do (U+0085 is whitespace there, for instance).
 *    Each piece is byte-encoded (GPT-2's byte-to-unicode map) and merged by
 *    rank; vocabularies marked ignore_merges (llama3) take a whole piece
 *    that is a token as it is.
 *  - Special tokens: CONTROL and UNKNOWN tokens are recognised in the text
 *    only with SLM_TOK_PARSE_SPECIAL; USER_DEFINED tokens always.  Longer
 *    tokens win, as in llama.cpp.  As in llama.cpp, a token whose text is
 *    one of the end-of-generation markers (`<|eot_id|>`, `<|im_end|>`,
 *    `<|endoftext|>`, `</s>`, ...) is forced to CONTROL and joins the
 *    end-of-generation set together with eos, eot and eom.
 *
 * No Unicode normalisation is applied (llama.cpp applies none; the Hugging
 * Face tokenizer NFC-normalises Qwen input, so decomposed text differs).
 * Ill-formed UTF-8 input is accepted: SPM keeps the bytes (byte fallback),
 * BPE replaces each bad byte with U+FFFD, as llama.cpp does; where
 * llama.cpp aborts (a 4-byte form above U+10FFFF, a byte with no token)
 * this code replaces or skips and carries on.
 *
 * A vocabulary is immutable once created and may be shared by any number
 * of threads; every call takes its scratch memory per call.
 */
#ifndef SLM_ENGINE_TOKENIZER_H
#define SLM_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/text.h"

struct gguf_file;
struct slm_vocab;

#define SLM_TOKEN_NULL (-1)

enum slm_vocab_type {
	SLM_VOCAB_SPM = 1, /* tokenizer.ggml.model = "llama" */
	SLM_VOCAB_BPE = 2, /* tokenizer.ggml.model = "gpt2" */
};

/* Token attributes: llama.cpp's llama_token_attr bits.  The GGUF token
 * type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)
 * sets one of them; loading may add CONTROL, UNUSED, LSTRIP, RSTRIP. */
enum slm_token_attr {
	SLM_TOKEN_ATTR_UNDEFINED = 0,
	SLM_TOKEN_ATTR_UNKNOWN = 1 << 0,
	SLM_TOKEN_ATTR_UNUSED = 1 << 1,
	SLM_TOKEN_ATTR_NORMAL = 1 << 2,
	SLM_TOKEN_ATTR_CONTROL = 1 << 3,
	SLM_TOKEN_ATTR_USER_DEFINED = 1 << 4,
	SLM_TOKEN_ATTR_BYTE = 1 << 5,
	SLM_TOKEN_ATTR_LSTRIP = 1 << 7,
	SLM_TOKEN_ATTR_RSTRIP = 1 << 8,
};

/* ---- token buffer (caller owns; zero-initialise, free when done) ------ */

struct slm_tokens {
	int32_t *ids;
	size_t n, cap;
};
void slm_tokens_free(struct slm_tokens *t);
int slm_tokens_push(struct slm_tokens *t, int32_t id) SLM_MUST_CHECK;

/* Text goes into a struct slm_text (common/text.h). */

/* ---- loading ---------------------------------------------------------- */

/*
 * Build the vocabulary from a GGUF file's metadata.  The vocabulary copies
 * what it needs: the file may be closed afterwards.  Errors: SLM_ENOTFOUND
 * (no tokenizer.ggml.model / tokens / merges), SLM_EUNSUPPORTED (a model or
 * pre-tokenizer this code does not implement, named in the message),
 * SLM_EFORMAT (wrong key types, duplicate tokens, arrays shorter than the
 * token list, add_bos_token without a bos id), SLM_ENOMEM.
 */
int slm_vocab_create(const struct gguf_file *f, struct slm_vocab **out,
		     struct slm_error *err) SLM_MUST_CHECK;

/* Open a GGUF file, build its vocabulary and close the file. */
int slm_vocab_load_file(const char *path, struct slm_vocab **out,
			struct slm_error *err) SLM_MUST_CHECK;

void slm_vocab_destroy(struct slm_vocab *v);

/* ---- what the vocabulary is ----------------------------------------- */

enum slm_vocab_type slm_vocab_type(const struct slm_vocab *v);
int32_t slm_vocab_n_tokens(const struct slm_vocab *v);
const char *slm_vocab_model_name(const struct slm_vocab *v); /* "llama" */
const char *slm_vocab_pre_name(const struct slm_vocab *v);   /* "qwen2" */
/* The model's tokenizer.chat_template, or NULL. */
const char *slm_vocab_chat_template(const struct slm_vocab *v);

/* Token text as stored (SPM with U+2581, BPE byte-encoded); NULL for an id
 * out of range.  len may be NULL. */
const char *slm_vocab_text(const struct slm_vocab *v, int32_t id, size_t *len);
float slm_vocab_score(const struct slm_vocab *v, int32_t id);
unsigned slm_vocab_attr(const struct slm_vocab *v, int32_t id);
/* Id of the token whose stored text is exactly s[0..n), or SLM_TOKEN_NULL. */
int32_t slm_vocab_find(const struct slm_vocab *v, const char *s, size_t n);

/* Special ids (SLM_TOKEN_NULL when the vocabulary has none). */
int32_t slm_vocab_bos(const struct slm_vocab *v);
int32_t slm_vocab_eos(const struct slm_vocab *v);
int32_t slm_vocab_eot(const struct slm_vocab *v);
int32_t slm_vocab_eom(const struct slm_vocab *v);
int32_t slm_vocab_unk(const struct slm_vocab *v);
int32_t slm_vocab_pad(const struct slm_vocab *v);
int32_t slm_vocab_nl(const struct slm_vocab *v);
bool slm_vocab_add_bos(const struct slm_vocab *v);
bool slm_vocab_add_eos(const struct slm_vocab *v);
bool slm_vocab_add_space_prefix(const struct slm_vocab *v);

/* End of generation: eos, eot, eom and the tokens llama.cpp recognises by
 * their text.  *ids points into the vocabulary (ascending). */
bool slm_vocab_is_eog(const struct slm_vocab *v, int32_t id);
size_t slm_vocab_eog_ids(const struct slm_vocab *v, const int32_t **ids);
bool slm_vocab_is_control(const struct slm_vocab *v, int32_t id);

/* ---- tokenizing ------------------------------------------------------- */

enum slm_tok_flags {
	/* Add what the vocabulary adds around a prompt: BOS if add_bos_token,
	 * EOS if add_eos_token (llama_tokenize's add_special). */
	SLM_TOK_ADD_SPECIAL = 1 << 0,
	/* Recognise CONTROL / UNKNOWN token text such as `<|im_start|>`
	 * (llama_tokenize's parse_special). */
	SLM_TOK_PARSE_SPECIAL = 1 << 1,
};

/*
 * Tokenize len bytes of text (any bytes; NUL is an ordinary byte) and
 * append the ids to out.  Returns 0 or SLM_ENOMEM / SLM_ETOOBIG (a text
 * over 1 GiB or a regex resource limit; err says which).
 */
int slm_tokenize(const struct slm_vocab *v, const char *text, size_t len,
		 unsigned flags, struct slm_tokens *out,
		 struct slm_error *err) SLM_MUST_CHECK;

/* ---- detokenizing ----------------------------------------------------- */

/*
 * The bytes one token stands for (llama_token_to_piece with lstrip 0):
 * SPM pieces with U+2581 turned back into spaces and byte tokens as their
 * byte, BPE pieces byte-decoded.  CONTROL and UNKNOWN tokens give their
 * text only when `special` is true, otherwise nothing; UNUSED and
 * UNDEFINED tokens give nothing.  A piece may be an incomplete UTF-8
 * sequence.  Returns a pointer into the vocabulary (valid while it lives;
 * not NUL-terminated) and its length; NULL for an id out of range.
 */
const char *slm_vocab_piece(const struct slm_vocab *v, int32_t id, bool special,
			    size_t *len);

enum slm_detok_flags {
	/* Render CONTROL / UNKNOWN tokens as their text (llama.cpp's
	 * `special` / `unparse_special`). */
	SLM_DETOK_SPECIAL = 1 << 0,
	/* Drop a leading BOS and a trailing EOS that the vocabulary adds. */
	SLM_DETOK_REMOVE_SPECIAL = 1 << 1,
	/* Drop the space SPM put in front of the text (the first piece's
	 * leading space when add_space_prefix; as llama.cpp, not after a
	 * removed BOS). */
	SLM_DETOK_STRIP_PREFIX = 1 << 2,
	/* The vocabulary's clean_up_tokenization_spaces, when it has it
	 * (gpt2 / llama3 pre-tokenizers): " ." -> "." and the like. */
	SLM_DETOK_CLEAN_SPACES = 1 << 3,
	/* Keep ill-formed UTF-8 as it is instead of replacing it. */
	SLM_DETOK_RAW = 1 << 4,
};

/* What llama_detokenize(tokens, remove_special, unparse_special) gives is
 * SLM_DETOK_LLAMA plus SLM_DETOK_REMOVE_SPECIAL / SLM_DETOK_SPECIAL. */
#define SLM_DETOK_LLAMA (SLM_DETOK_STRIP_PREFIX | SLM_DETOK_CLEAN_SPACES)

/*
 * Append the text of n ids to out.  Without flags this is the
 * concatenation of the pieces, which is what llama.cpp streams; unless
 * SLM_DETOK_RAW, ill-formed UTF-8 (including an incomplete sequence at
 * the end) is replaced by U+FFFD, so the result is always well formed.
 * Errors: SLM_ERANGE (an id out of range), SLM_ENOMEM.
 */
int slm_detokenize(const struct slm_vocab *v, const int32_t *ids, size_t n,
		   unsigned flags, struct slm_text *out,
		   struct slm_error *err) SLM_MUST_CHECK;

/*
 * Streaming detokenizer: push ids one at a time; each push appends the
 * text that is complete so far.  Bytes of a UTF-8 sequence that a later
 * token may complete are held back; ill-formed bytes become U+FFFD.
 * finish() flushes what is held (an incomplete tail becomes U+FFFD).  The
 * concatenated output equals slm_detokenize with the same flags (only
 * SLM_DETOK_SPECIAL and SLM_DETOK_RAW apply to a stream).  A plain struct:
 * no allocation, no destroy.
 */
struct slm_detok_stream {
	const struct slm_vocab *vocab;
	unsigned flags;
	uint8_t held[4];
	uint8_t n_held;
};
void slm_detok_stream_init(struct slm_detok_stream *s,
			   const struct slm_vocab *v, unsigned flags);
int slm_detok_stream_push(struct slm_detok_stream *s, int32_t id,
			  struct slm_text *out,
			  struct slm_error *err) SLM_MUST_CHECK;
/* Push raw bytes through the same UTF-8 hold-back (for text that does not
 * come from a token). */
int slm_detok_stream_push_bytes(struct slm_detok_stream *s, const char *p,
				size_t n, struct slm_text *out) SLM_MUST_CHECK;
int slm_detok_stream_finish(struct slm_detok_stream *s,
			    struct slm_text *out) SLM_MUST_CHECK;

#endif
