/*
 * tokenizer_int.h: what only the tokenizer's own files share: the layout
 * of struct slm_vocab, its hash tables and the per-algorithm entry points.
 *
 * Strings.  Every string the tokenizer looks up lives in one arena and has
 * an id: ids 0..n_vocab-1 are the tokens, ids n_vocab..n_str-1 are strings
 * that occur in BPE merge rules without being tokens (a merge may produce
 * such a string, which later merges can use).  One open-addressing table
 * maps text to id (XXH3 hashes, linear probing, load <= 1/2).
 *
 * Merges.  A second table maps the pair (left id, right id) to the rule's
 * rank (its index in tokenizer.ggml.merges; the first rule of a pair wins,
 * as in llama.cpp) and the id of the merged string.
 */
#ifndef SLM_ENGINE_TOKENIZER_INT_H
#define SLM_ENGINE_TOKENIZER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 32
#include <pcre2.h>

#include "engine/tokenizer.h"

#define TOK_MAX_REGEX 6

/* Pre-tokenizer regex sets (which llama.cpp pre types share them). */
enum tok_pre {
	TOK_PRE_DEFAULT = 0,
	TOK_PRE_GPT2,
	TOK_PRE_LLAMA3,
	TOK_PRE_QWEN2,
	TOK_PRE_SMOLLM,
	TOK_PRE_DEEPSEEK_LLM,
};

/* Offset and length ride in the slot so that a lookup costs one random
 * access to the table and one to the text, both of which the loader
 * prefetches ahead. */
struct tok_str_slot {
	uint32_t tag; /* high bits of the hash */
	int32_t id;   /* -1: empty */
	uint32_t off; /* the string: arena + off, len bytes */
	uint32_t len;
};

struct tok_merge_slot {
	uint64_t key; /* (left << 32) | right; UINT64_MAX: empty */
	int32_t rank;
	int32_t result;
};

struct tok_regex {
	pcre2_code *code;
	bool collapse; /* uses \p{..}: match against the class-canonical text */
};

struct slm_vocab {
	enum slm_vocab_type type;
	enum tok_pre pre;
	char *model_name;
	char *pre_name;
	char *chat_template;
	int32_t n_vocab;

	/* strings: tokens then merge-only strings */
	char *arena;
	size_t arena_len, arena_cap;
	uint32_t *str_off;
	uint32_t *str_len;
	int32_t n_str, str_cap;
	struct tok_str_slot *str_tab;
	uint32_t str_mask;

	float *score;	/* [n_vocab] */
	uint16_t *attr; /* [n_vocab], enum slm_token_attr bits */

	/* piece of each token with special = true (llama.cpp's cache) */
	char *piece_arena;
	uint32_t *piece_off; /* [n_vocab + 1] */

	/* BPE */
	struct tok_merge_slot *merge_tab;
	uint32_t merge_mask;
	int32_t n_merges;
	int32_t byte_sym[256];	 /* string id of byte b's encoded char, or -1 */
	int32_t tok_single[256]; /* token of the 1-byte string {b}, or -1 */
	uint8_t byte_enc[256][2]; /* UTF-8 of byte b's encoded char */
	uint8_t byte_enc_len[256];
	struct tok_regex regex[TOK_MAX_REGEX];
	int n_regex;
	bool any_collapse, any_plain;

	/* flags */
	bool ignore_merges;
	bool spm_split; /* no token has U+2581 after a non-U+2581: SPM text can
			   be cut before each word's U+2581 */
	bool clean_spaces;
	bool add_space_prefix;
	bool add_bos, add_eos;

	int32_t bos, eos, eot, eom, unk, sep, pad, mask, nl;
	int32_t fim_pre, fim_suf, fim_mid, fim_pad, fim_rep, fim_sep;

	int32_t *eog; /* ascending */
	size_t n_eog;
	uint64_t *eog_bits; /* [n_vocab / 64 + 1] */

	/* special tokens matched in text: CONTROL | USER_DEFINED | UNKNOWN,
	 * longest text first, then lowest id */
	int32_t *special;
	size_t n_special;
	uint8_t special_first[256]; /* a special token starts with byte b */
};

/* Hash of a byte string (XXH3, 64-bit). */
uint64_t tok_hash(const void *p, size_t n);

/* Id of the string s[0..n) among all strings (tokens and merge-only), or
 * -1.  The _h form takes the string's tok_hash. */
int32_t tok_str_find(const struct slm_vocab *v, const char *s, size_t n);
int32_t tok_str_find_h(const struct slm_vocab *v, const char *s, size_t n,
		       uint64_t h);

/* Rank and result of merging left and right, or -1. */
int32_t tok_merge_find(const struct slm_vocab *v, int32_t left, int32_t right,
		       int32_t *result);

static inline const char *tok_str(const struct slm_vocab *v, int32_t id,
				  size_t *len)
{
	*len = v->str_len[id];
	return v->arena + v->str_off[id];
}

/* BPE: set up the regexes of v->pre and the byte tables (load time). */
int tok_bpe_init(struct slm_vocab *v, struct slm_error *err);
void tok_bpe_fini(struct slm_vocab *v);

struct tok_work;

/* BPE: tokenize one text fragment (no special tokens inside) and append.  w is
 * the call's scratch (zero-initialised; freed with tok_work_free). */
int tok_bpe_fragment(const struct slm_vocab *v, struct tok_work *w,
		     const char *text, size_t len, struct slm_tokens *out,
		     struct slm_error *err);
/* SPM: text already has the space prefix and U+2581 for spaces. */
int tok_spm_fragment(const struct slm_vocab *v, struct tok_work *w,
		     const char *text, size_t len, struct slm_tokens *out,
		     struct slm_error *err);

/* SPM merging of one piece of text as a whole (llama.cpp's loop over the
 * entire fragment); tok_spm_fragment cuts where it can and calls this on
 * each piece.  The tests check both give the same. */
int tok_spm_merge(const struct slm_vocab *v, const char *text, size_t len,
		  struct slm_tokens *out);

/* Words already merged in this call (either algorithm): ids of the word
 * w[0..n) appended to out and true, or false. */
bool tok_cache_get(struct tok_work *w, const uint8_t *word, size_t n,
		   uint64_t h, struct slm_tokens *out);
/* Remember ids[0..n_ids) for the word (best effort: no error). */
void tok_cache_put(struct tok_work *w, const uint8_t *word, size_t n,
		   uint64_t h, const int32_t *ids, size_t n_ids);

/* Words already merged in this call: words repeat (Zipf), and merging is
 * most of the cost.  Words up to BPE_CACHE_WORD bytes, at most
 * BPE_CACHE_MAX entries; nothing is evicted. */
#define BPE_CACHE_WORD 48
#define BPE_CACHE_MAX (1u << 16)
struct bpe_cache_slot {
	uint64_t hash;
	uint32_t key_off, ids_off; /* into keys / ids */
	uint16_t key_len, n_ids;   /* key_len 0: empty */
};

/* Scratch for one tokenize call on one vocabulary (the cache holds its
 * ids); zero-initialise, free with tok_work_free. */
struct bpe_sym;
struct bpe_bigram;
struct tok_work {
	struct bpe_sym *sym;
	size_t sym_cap;
	struct bpe_bigram *heap;
	size_t heap_n, heap_cap;
	char *enc; /* byte-encoded word, for whole-word lookups */
	size_t enc_cap;
	struct bpe_cache_slot *cache;
	uint32_t cache_mask, cache_used;
	struct slm_text keys;
	struct slm_tokens ids;
};
void tok_work_free(struct tok_work *w);

/* Merge one pre-tokenized word (raw bytes) and append its tokens.  Short
 * words rescan their pairs, long ones use a heap; force_heap takes the
 * heap for any length (the tests check both agree). */
int tok_bpe_word(const struct slm_vocab *v, struct tok_work *w,
		 const uint8_t *word, size_t n, bool force_heap,
		 struct slm_tokens *out);

/* llama.cpp's lenient UTF-8 decoding of one code point (overlong forms and
 * surrogates pass; U+FFFD and length 1 for a bad byte). */
size_t tok_lenient_cp(const uint8_t *s, size_t n, uint32_t *cp);

/* The code point that stands for cp in the text \p{..} regexes see. */
uint32_t tok_class_standin(uint32_t cp);

/* GPT-2's byte-to-unicode map: the code point byte b is encoded as. */
uint32_t tok_byte_to_cp(uint8_t b);
/* Inverse: the byte a code point stands for, or -1. */
int tok_cp_to_byte(uint32_t cp);

#endif
