/*
 * tokenizer.c: vocabulary loading, the string and merge tables, special
 * tokens, the tokenize driver, pieces and detokenization.  The SPM merge
 * loop lives in tokenizer_spm.c, the BPE pre-tokenizer and merge loop in
 * tokenizer_bpe.c.
 */
#include "engine/tokenizer.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/log.h"
#include "common/utf8.h"
#include "engine/gguf.h"
#include "engine/tokenizer_int.h"

#define TOK_MAX_TEXT (1u << 30) /* refuse texts over 1 GiB */
#define U2581 "\xE2\x96\x81"	/* LOWER ONE EIGHTH BLOCK: SPM's space */
#define TOK_PF 32		/* loader prefetch distance, in items */
#define TOK_RING 64		/* > TOK_PF * 2, a power of two */

/* ---- buffers ---------------------------------------------------------- */

void slm_tokens_free(struct slm_tokens *t)
{
	free(t->ids);
	t->ids = NULL;
	t->n = t->cap = 0;
}

static int tokens_reserve(struct slm_tokens *t, size_t more)
{
	if (t->n + more <= t->cap)
		return 0;
	size_t cap = t->cap ? t->cap : 64;
	while (cap < t->n + more)
		cap *= 2;
	int32_t *p = realloc(t->ids, cap * sizeof(*p));
	if (!p)
		return SLM_ENOMEM;
	t->ids = p;
	t->cap = cap;
	return 0;
}

int slm_tokens_push(struct slm_tokens *t, int32_t id)
{
	if (t->n == t->cap && tokens_reserve(t, 1))
		return SLM_ENOMEM;
	t->ids[t->n++] = id;
	return 0;
}

/* ---- string table ----------------------------------------------------- */

uint64_t tok_hash(const void *p, size_t n)
{
	return XXH3_64bits(p, n);
}

int32_t tok_str_find_h(const struct slm_vocab *v, const char *s, size_t n,
		       uint64_t h)
{
	uint32_t tag = (uint32_t)(h >> 32);
	for (uint32_t i = (uint32_t)h & v->str_mask;;
	     i = (i + 1) & v->str_mask) {
		const struct tok_str_slot *sl = &v->str_tab[i];
		if (sl->id < 0)
			return -1;
		if (sl->tag == tag && sl->len == n &&
		    memcmp(v->arena + sl->off, s, n) == 0)
			return sl->id;
	}
}

int32_t tok_str_find(const struct slm_vocab *v, const char *s, size_t n)
{
	return tok_str_find_h(v, s, n, tok_hash(s, n));
}

/* Loader pipeline, first stage: bring the home slot of h into cache. */
static inline void str_prefetch_slot(const struct slm_vocab *v, uint64_t h)
{
	__builtin_prefetch(&v->str_tab[(uint32_t)h & v->str_mask]);
}

/* Second stage: bring the text of the home slot into cache when its tag
 * matches (the slot itself was prefetched by the first stage). */
static inline void str_prefetch_text(const struct slm_vocab *v, uint64_t h)
{
	const struct tok_str_slot *sl = &v->str_tab[(uint32_t)h & v->str_mask];
	if (sl->id >= 0 && sl->tag == (uint32_t)(h >> 32))
		__builtin_prefetch(v->arena + sl->off);
}

static void str_tab_put(struct tok_str_slot *tab, uint32_t mask, uint64_t h,
			int32_t id, uint32_t off, uint32_t len)
{
	uint32_t i = (uint32_t)h & mask;
	while (tab[i].id >= 0)
		i = (i + 1) & mask;
	tab[i].tag = (uint32_t)(h >> 32);
	tab[i].id = id;
	tab[i].off = off;
	tab[i].len = len;
}

static int str_tab_grow(struct slm_vocab *v, uint32_t size)
{
	struct tok_str_slot *tab = malloc((size_t)size * sizeof(*tab));
	if (!tab)
		return SLM_ENOMEM;
	for (uint32_t i = 0; i < size; i++)
		tab[i].id = -1;
	for (int32_t id = 0; id < v->n_str; id++)
		str_tab_put(tab, size - 1,
			    tok_hash(v->arena + v->str_off[id], v->str_len[id]),
			    id, v->str_off[id], v->str_len[id]);
	free(v->str_tab);
	v->str_tab = tab;
	v->str_mask = size - 1;
	return 0;
}

/*
 * Append a string (hash h) to the arena and give it the next id.  With
 * `check`, an existing equal string is returned instead (its id) and
 * nothing is added; *added says which happened.
 */
static int str_add(struct slm_vocab *v, const char *s, size_t n, uint64_t h,
		   bool check, int32_t *id_out, bool *added)
{
	*added = false;
	if (check) {
		int32_t id = tok_str_find_h(v, s, n, h);
		if (id >= 0) {
			*id_out = id;
			return 0;
		}
	}
	if (n > UINT32_MAX || v->arena_len + n > UINT32_MAX)
		return SLM_EOVERFLOW;
	if (v->arena_len + n > v->arena_cap) {
		size_t cap = v->arena_cap ? v->arena_cap : 4096;
		while (cap < v->arena_len + n)
			cap *= 2;
		char *a = realloc(v->arena, cap);
		if (!a)
			return SLM_ENOMEM;
		v->arena = a;
		v->arena_cap = cap;
	}
	if (v->n_str == v->str_cap) {
		int32_t cap = v->str_cap ? v->str_cap * 2 : 1024;
		uint32_t *o = realloc(v->str_off, (size_t)cap * sizeof(*o));
		if (!o)
			return SLM_ENOMEM;
		v->str_off = o;
		uint32_t *l = realloc(v->str_len, (size_t)cap * sizeof(*l));
		if (!l)
			return SLM_ENOMEM;
		v->str_len = l;
		v->str_cap = cap;
	}
	if ((uint64_t)(v->n_str + 1) * 2 > (uint64_t)v->str_mask + 1) {
		int rc = str_tab_grow(v, (v->str_mask + 1) * 2);
		if (rc)
			return rc;
	}
	int32_t id = v->n_str++;
	memcpy(v->arena + v->arena_len, s, n);
	v->str_off[id] = (uint32_t)v->arena_len;
	v->str_len[id] = (uint32_t)n;
	str_tab_put(v->str_tab, v->str_mask, h, id, (uint32_t)v->arena_len,
		    (uint32_t)n);
	v->arena_len += n;
	*id_out = id;
	*added = true;
	return 0;
}

/* ---- merge table ------------------------------------------------------ */

static inline uint32_t merge_slot(uint64_t key, uint32_t mask)
{
	key ^= key >> 29;
	key *= 0xBF58476D1CE4E5B9ull;
	key ^= key >> 32;
	return (uint32_t)key & mask;
}

int32_t tok_merge_find(const struct slm_vocab *v, int32_t left, int32_t right,
		       int32_t *result)
{
	if (!v->merge_tab || left < 0 || right < 0)
		return -1;
	uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
	for (uint32_t i = merge_slot(key, v->merge_mask);;
	     i = (i + 1) & v->merge_mask) {
		const struct tok_merge_slot *s = &v->merge_tab[i];
		if (s->key == UINT64_MAX)
			return -1;
		if (s->key == key) {
			*result = s->result;
			return s->rank;
		}
	}
}

/* Insert unless the pair exists (the first rule of a pair wins). */
static void merge_put(struct slm_vocab *v, int32_t left, int32_t right,
		      int32_t rank, int32_t result)
{
	uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
	uint32_t i = merge_slot(key, v->merge_mask);
	while (v->merge_tab[i].key != UINT64_MAX) {
		if (v->merge_tab[i].key == key)
			return;
		i = (i + 1) & v->merge_mask;
	}
	v->merge_tab[i].key = key;
	v->merge_tab[i].rank = rank;
	v->merge_tab[i].result = result;
	v->n_merges++;
}

static uint32_t pow2_at_least(uint64_t n)
{
	uint32_t p = 16;
	while (p < n && p < (1u << 31))
		p *= 2;
	return p;
}

/* ---- loading ---------------------------------------------------------- */

struct pre_name {
	const char *name;
	enum tok_pre pre;
	bool ignore_merges;
	bool clean_spaces;
	bool add_bos; /* default before tokenizer.ggml.add_bos_token */
};

/* The llama.cpp pre-tokenizer names whose regex sets this file implements,
 * with the flags llama.cpp gives each name. */
static const struct pre_name pre_names[] = {
	{"default", TOK_PRE_DEFAULT, false, true, false},
	{"llama3", TOK_PRE_LLAMA3, true, true, true},
	{"llama-v3", TOK_PRE_LLAMA3, true, true, true},
	{"llama-bpe", TOK_PRE_LLAMA3, true, true, true},
	{"falcon3", TOK_PRE_LLAMA3, true, true, true},
	{"falcon-h1", TOK_PRE_LLAMA3, true, true, true},
	{"pixtral", TOK_PRE_LLAMA3, true, true, true},
	{"midm-2.0", TOK_PRE_LLAMA3, true, true, true},
	{"lfm2", TOK_PRE_LLAMA3, true, true, true},
	{"dbrx", TOK_PRE_LLAMA3, false, true, false},
	{"smaug-bpe", TOK_PRE_LLAMA3, false, true, false},
	{"deepseek-llm", TOK_PRE_DEEPSEEK_LLM, false, false, false},
	{"gpt-2", TOK_PRE_GPT2, false, true, false},
	{"phi-2", TOK_PRE_GPT2, false, true, false},
	{"jina-es", TOK_PRE_GPT2, false, true, false},
	{"jina-de", TOK_PRE_GPT2, false, true, false},
	{"gigachat", TOK_PRE_GPT2, false, true, false},
	{"jina-v2-es", TOK_PRE_GPT2, false, true, false},
	{"jina-v2-de", TOK_PRE_GPT2, false, true, false},
	{"a.x-4.0", TOK_PRE_GPT2, false, true, false},
	{"mellum", TOK_PRE_GPT2, false, true, false},
	{"modern-bert", TOK_PRE_GPT2, false, true, false},
	{"exaone4", TOK_PRE_GPT2, false, true, false},
	{"mpt", TOK_PRE_GPT2, false, true, false},
	{"olmo", TOK_PRE_GPT2, false, true, false},
	{"jais", TOK_PRE_GPT2, false, true, false},
	{"trillion", TOK_PRE_GPT2, false, false, false},
	{"granite-docling", TOK_PRE_GPT2, false, false, false},
	{"qwen2", TOK_PRE_QWEN2, false, false, false},
	{"deepseek-r1-qwen", TOK_PRE_QWEN2, false, false, false},
	{"kormo", TOK_PRE_QWEN2, false, false, false},
	{"f2llmv2", TOK_PRE_QWEN2, false, false, false},
	{"megrez", TOK_PRE_QWEN2, false, true, false},
	{"stablelm2", TOK_PRE_QWEN2, false, true, false},
	{"hunyuan", TOK_PRE_QWEN2, false, false, false},
	{"solar-open", TOK_PRE_QWEN2, false, false, false},
	{"smollm", TOK_PRE_SMOLLM, false, false, false},
	{"starcoder", TOK_PRE_SMOLLM, false, true, false},
	{"refact", TOK_PRE_SMOLLM, false, true, false},
	{"command-r", TOK_PRE_SMOLLM, false, false, false},
	{"codeshell", TOK_PRE_SMOLLM, false, true, false},
	{"exaone", TOK_PRE_SMOLLM, false, true, false},
	{"minerva-7b", TOK_PRE_SMOLLM, false, true, false},
	{"mellum2", TOK_PRE_SMOLLM, false, true, false},
};

static int get_opt_bool(const struct gguf_file *f, const char *key, bool *v,
			struct slm_error *err)
{
	int rc = gguf_get_bool(f, key, v, err);
	return rc == SLM_ENOTFOUND ? 0 : rc;
}

/* An optional token id key: a value out of range keeps the default (as
 * llama.cpp, which warns). */
static int get_opt_id(const struct slm_vocab *v, const struct gguf_file *f,
		      const char *key, int32_t *id, struct slm_error *err)
{
	if (*id >= v->n_vocab)
		*id = SLM_TOKEN_NULL;
	uint64_t u;
	int rc = gguf_get_uint(f, key, &u, err);
	if (rc == SLM_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	if (u >= (uint64_t)v->n_vocab)
		SLM_WARN("tokenizer",
			 "bad special token: '%s' = %llu, using %d", key,
			 (unsigned long long)u, *id);
	else
		*id = (int32_t)u;
	return 0;
}

static int32_t find_cstr(const struct slm_vocab *v, const char *s)
{
	return slm_vocab_find(v, s, strlen(s));
}

/* llama.cpp finds eot / eom / fim tokens by their text when the file does
 * not name them, and makes them CONTROL. */
static void detect_by_text(struct slm_vocab *v, int32_t *id,
			   const char *const *texts)
{
	if (*id != SLM_TOKEN_NULL)
		return;
	for (size_t i = 0; texts[i]; i++) {
		int32_t t = find_cstr(v, texts[i]);
		if (t >= 0) {
			*id = t;
			v->attr[t] |= SLM_TOKEN_ATTR_CONTROL;
			return;
		}
	}
}

static void eog_bit_set(struct slm_vocab *v, int32_t id)
{
	v->eog_bits[id >> 6] |= 1ull << (id & 63);
}

static void eog_bit_clear(struct slm_vocab *v, int32_t id)
{
	v->eog_bits[id >> 6] &= ~(1ull << (id & 63));
}

static bool eog_bit(const struct slm_vocab *v, int32_t id)
{
	return (v->eog_bits[id >> 6] >> (id & 63)) & 1;
}

static int eog_finish(struct slm_vocab *v)
{
	size_t n = 0;
	for (int32_t id = 0; id < v->n_vocab; id++)
		n += eog_bit(v, id);
	v->eog = malloc((n ? n : 1) * sizeof(*v->eog));
	if (!v->eog)
		return SLM_ENOMEM;
	v->n_eog = 0;
	for (int32_t id = 0; id < v->n_vocab; id++)
		if (eog_bit(v, id))
			v->eog[v->n_eog++] = id;
	return 0;
}

static int setup_eog(struct slm_vocab *v)
{
	static const char *const eot_texts[] = {
		"<|eot_id|>",
		"<|im_end|>",
		"<|end|>",
		"<end_of_turn>",
		"<|endoftext|>",
		"<|end_of_text|>",
		"<EOT>",
		"_<EOT>",
		"[EOT]",
		"<\xEF\xBD\x9C"
		"end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
		"<end_of_utterance>",
		NULL};
	static const char *const eom_texts[] = {"<|eom_id|>", NULL};
	static const char *const fim_pre_texts[] = {"<|fim_prefix|>",
						    "<fim-prefix>",
						    "<fim_prefix>",
						    "<\xEF\xBD\x9C"
						    "fim\xE2\x96\x81"
						    "begin\xEF\xBD\x9C>",
						    "<PRE>",
						    U2581 "<PRE>",
						    "<|code_prefix|>",
						    "<|prefix|>",
						    NULL};
	static const char *const fim_suf_texts[] = {
		"<|fim_suffix|>",
		"<fim-suffix>",
		"<fim_suffix>",
		"<\xEF\xBD\x9C"
		"fim\xE2\x96\x81hole\xEF\xBD\x9C>",
		"<SUF>",
		U2581 "<SUF>",
		"<|code_suffix|>",
		"<|suffix|>",
		NULL};
	static const char *const fim_mid_texts[] = {"<|fim_middle|>",
						    "<fim-middle>",
						    "<fim_middle>",
						    "<\xEF\xBD\x9C"
						    "fim\xE2\x96\x81"
						    "end\xEF\xBD\x9C>",
						    "<MID>",
						    U2581 "<MID>",
						    "<|code_middle|>",
						    "<|middle|>",
						    NULL};
	static const char *const fim_pad_texts[] = {"<|fim_pad|>", "<fim-pad>",
						    "<fim_pad>",   "<PAD>",
						    "[PAD]",	   NULL};
	static const char *const fim_rep_texts[] = {
		"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
		"<REPO>",	"<reponame>",	 NULL};
	static const char *const fim_sep_texts[] = {"<|file_sep|>", NULL};
	/* Texts that end generation (llama.cpp's list, by text). */
	static const char *const eog_texts[] = {
		"<|eot_id|>",
		"<|im_end|>",
		"<|end|>",
		"<|return|>",
		"<|call|>",
		"<|flush|>",
		"<|calls|>",
		"<end_of_turn>",
		"<|endoftext|>",
		"</s>",
		"<|eom_id|>",
		"<EOT>",
		"_<EOT>",
		"[EOT]",
		"[EOS]",
		"<|end_of_text|>",
		"<end_of_utterance>",
		"<eos>",
		"<turn|>",
		"<|tool_response>",
		"<\xEF\xBD\x9C"
		"end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
		"[e~[",
		NULL};
	static const char *const always_user[] = {"<|channel|>", "<|message|>",
						  "<|start|>", "<|constrain|>",
						  NULL};

	detect_by_text(v, &v->eot, eot_texts);
	detect_by_text(v, &v->eom, eom_texts);
	detect_by_text(v, &v->fim_pre, fim_pre_texts);
	detect_by_text(v, &v->fim_suf, fim_suf_texts);
	detect_by_text(v, &v->fim_mid, fim_mid_texts);
	detect_by_text(v, &v->fim_pad, fim_pad_texts);
	detect_by_text(v, &v->fim_rep, fim_rep_texts);
	detect_by_text(v, &v->fim_sep, fim_sep_texts);

	/* CONTROL tokens named "unused" are unused. */
	for (int32_t id = 0; id < v->n_vocab; id++) {
		if (!(v->attr[id] & SLM_TOKEN_ATTR_CONTROL))
			continue;
		size_t len;
		const char *t = slm_vocab_text(v, id, &len);
		if (memmem(t, len, "unused", 6))
			v->attr[id] |= SLM_TOKEN_ATTR_UNUSED;
	}

	v->eog_bits = calloc((size_t)v->n_vocab / 64 + 1, sizeof(uint64_t));
	if (!v->eog_bits)
		return SLM_ENOMEM;
	int32_t fim_eog[] = {v->fim_pad, v->fim_rep, v->fim_sep};
	for (size_t i = 0; i < SLM_ARRAY_LEN(fim_eog); i++)
		if (fim_eog[i] >= 0)
			eog_bit_set(v, fim_eog[i]);
	for (size_t i = 0; eog_texts[i]; i++) {
		int32_t t = find_cstr(v, eog_texts[i]);
		if (t < 0)
			continue;
		eog_bit_set(v, t);
		v->attr[t] |= SLM_TOKEN_ATTR_CONTROL;
	}
	for (size_t i = 0; always_user[i]; i++) {
		int32_t t = find_cstr(v, always_user[i]);
		if (t >= 0)
			v->attr[t] = SLM_TOKEN_ATTR_USER_DEFINED;
	}
	int32_t named[] = {v->eos, v->eot, v->eom};
	for (size_t i = 0; i < SLM_ARRAY_LEN(named); i++)
		if (named[i] >= 0)
			eog_bit_set(v, named[i]);

	/* o200k_harmony and solar-open: "<|end|>" does not end generation
	 * when "<|return|>"/"<|call|>" (or "<|calls|>"/"<|flush|>") do. */
	int32_t ret = find_cstr(v, "<|return|>"),
		call = find_cstr(v, "<|call|>");
	int32_t calls = find_cstr(v, "<|calls|>"),
		flush = find_cstr(v, "<|flush|>");
	int32_t end = find_cstr(v, "<|end|>");
	bool has_ret = ret >= 0 && eog_bit(v, ret);
	bool has_call = (call >= 0 && eog_bit(v, call)) ||
			(calls >= 0 && eog_bit(v, calls));
	bool has_flush = flush >= 0 && eog_bit(v, flush);
	if (end >= 0 && eog_bit(v, end) &&
	    ((has_ret && has_call) || (has_call && has_flush))) {
		eog_bit_clear(v, end);
		v->attr[end] = SLM_TOKEN_ATTR_USER_DEFINED;
	}
	/* gemma4 and paddleocr: "</s>" is not end of generation there. */
	int32_t tool = find_cstr(v, "<|tool_response>");
	int32_t s_end = find_cstr(v, "</s>");
	if (tool >= 0 && eog_bit(v, tool) && s_end >= 0 && eog_bit(v, s_end)) {
		eog_bit_clear(v, s_end);
		v->attr[s_end] = SLM_TOKEN_ATTR_NORMAL;
	}
	return eog_finish(v);
}

static const struct slm_vocab *sort_vocab;

static int cmp_special(const void *a, const void *b)
{
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	uint32_t lx = sort_vocab->str_len[x], ly = sort_vocab->str_len[y];
	if (lx != ly)
		return lx > ly ? -1 : 1;
	return x < y ? -1 : x > y;
}

static int setup_special(struct slm_vocab *v)
{
	size_t n = 0;
	for (int32_t id = 0; id < v->n_vocab; id++)
		if (v->attr[id] &
		    (SLM_TOKEN_ATTR_CONTROL | SLM_TOKEN_ATTR_USER_DEFINED |
		     SLM_TOKEN_ATTR_UNKNOWN))
			n++;
	v->special = malloc((n ? n : 1) * sizeof(*v->special));
	if (!v->special)
		return SLM_ENOMEM;
	for (int32_t id = 0; id < v->n_vocab; id++)
		if (v->attr[id] &
		    (SLM_TOKEN_ATTR_CONTROL | SLM_TOKEN_ATTR_USER_DEFINED |
		     SLM_TOKEN_ATTR_UNKNOWN))
			v->special[v->n_special++] = id;
	/* Longest first, as llama.cpp; equal lengths by id (llama.cpp's
	 * std::sort leaves their order unspecified). */
	sort_vocab = v;
	qsort(v->special, v->n_special, sizeof(*v->special), cmp_special);
	sort_vocab = NULL;
	for (size_t i = 0; i < v->n_special; i++) {
		size_t len;
		const char *t = slm_vocab_text(v, v->special[i], &len);
		if (len)
			v->special_first[(uint8_t)t[0]] = 1;
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The byte of a byte token "<0xNN>" (llama.cpp: strtol of text[3..5)). */
static uint8_t byte_of_token(const char *t, size_t len)
{
	int b = 0;
	for (size_t i = 3; i < 5 && i < len; i++) {
		int h = hexval(t[i]);
		if (h < 0)
			break;
		b = b * 16 + h;
	}
	return (uint8_t)b;
}

/* The llama.cpp decoder of code points: lenient (overlong forms and
 * surrogates pass), one U+FFFD per bad byte.  Returns the length used. */
static size_t lenient_cp(const uint8_t *s, size_t n, uint32_t *cp)
{
	uint8_t b = s[0];
	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	if ((b & 0x40) == 0)
		goto bad;
	if ((b & 0x20) == 0) {
		if (n < 2 || (s[1] & 0xC0) != 0x80)
			goto bad;
		*cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
		return 2;
	}
	if ((b & 0x10) == 0) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			goto bad;
		*cp = ((uint32_t)(b & 0x0F) << 12) |
		      ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
		return 3;
	}
	if ((b & 0x08) == 0) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			goto bad;
		uint32_t c = ((uint32_t)(b & 0x07) << 18) |
			     ((uint32_t)(s[1] & 0x3F) << 12) |
			     ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
		/* llama.cpp aborts on these; one U+FFFD per byte instead */
		if (c > 0x10FFFF)
			goto bad;
		*cp = c;
		return 4;
	}
bad:
	*cp = 0xFFFD;
	return 1;
}

size_t tok_lenient_cp(const uint8_t *s, size_t n, uint32_t *cp)
{
	return lenient_cp(s, n, cp);
}

/* A growable byte buffer for the piece cache; the fast paths write through
 * piece_room(), which keeps `need` bytes free. */
static inline char *piece_room(struct slm_text *t, size_t need)
{
	if (t->len + need + 1 > t->cap)
		return slm_text_reserve(t, need);
	return t->data + t->len;
}

/* llama.cpp's marker for a code point of a BPE token that is outside the
 * byte map: "[UNK_BYTE_0x" + its UTF-8 in hex + the whole token text + "]" */
static int piece_unk_byte(struct slm_text *t, uint32_t cp, const char *text,
			  size_t len)
{
	char enc[4], hex[16];
	size_t el = slm_utf8_encode(cp, enc);
	if (slm_text_append(t, "[UNK_BYTE_0x", 12))
		return SLM_ENOMEM;
	for (size_t j = 0; j < el; j++) {
		snprintf(hex, sizeof(hex), "%02x", (uint8_t)enc[j]);
		if (slm_text_append(t, hex, 2))
			return SLM_ENOMEM;
	}
	if (slm_text_append(t, text, len) || slm_text_append(t, "]", 1))
		return SLM_ENOMEM;
	return 0;
}

/* The piece of token id with special = true (llama.cpp's token_to_piece
 * before its cache exists), appended to t. */
static int make_piece(const struct slm_vocab *v, int32_t id,
		      const int16_t *cp2byte, struct slm_text *t)
{
	size_t len;
	const char *text = slm_vocab_text(v, id, &len);
	unsigned attr = v->attr[id];
	if (attr & (SLM_TOKEN_ATTR_UNKNOWN | SLM_TOKEN_ATTR_CONTROL |
		    SLM_TOKEN_ATTR_USER_DEFINED))
		return slm_text_append(t, text, len);
	if (attr & SLM_TOKEN_ATTR_NORMAL) {
		char *w = piece_room(t, len);
		if (!w)
			return SLM_ENOMEM;
		size_t o = 0;
		if (v->type == SLM_VOCAB_SPM) {
			/* U+2581 back to a space: never longer */
			for (size_t i = 0; i < len;) {
				if (len - i >= 3 &&
				    !memcmp(text + i, U2581, 3)) {
					w[o++] = ' ';
					i += 3;
				} else {
					w[o++] = text[i++];
				}
			}
			t->len += o;
			return 0;
		}
		/* BPE: each character back to its byte: never longer, except
		 * for characters outside the map */
		for (size_t i = 0; i < len;) {
			uint32_t cp;
			size_t k = lenient_cp((const uint8_t *)text + i,
					      len - i, &cp);
			i += k;
			int b = cp < 0x144 ? cp2byte[cp] : -1;
			if (b >= 0) {
				w[o++] = (char)b;
				continue;
			}
			t->len += o;
			o = 0;
			if (piece_unk_byte(t, cp, text, len))
				return SLM_ENOMEM;
			if (!(w = piece_room(t, len)))
				return SLM_ENOMEM;
		}
		t->len += o;
		return 0;
	}
	if (attr & SLM_TOKEN_ATTR_BYTE) {
		char c = (char)byte_of_token(text, len);
		return slm_text_append(t, &c, 1);
	}
	return 0;
}

static int setup_pieces(struct slm_vocab *v)
{
	int16_t cp2byte[0x144];
	for (uint32_t cp = 0; cp < 0x144; cp++)
		cp2byte[cp] = (int16_t)tok_cp_to_byte(cp);
	struct slm_text t = {0};
	v->piece_off = malloc(((size_t)v->n_vocab + 1) * sizeof(uint32_t));
	if (!v->piece_off)
		return SLM_ENOMEM;
	if (!slm_text_reserve(&t, v->arena_len + 16))
		return SLM_ENOMEM;
	for (int32_t id = 0; id < v->n_vocab; id++) {
		v->piece_off[id] = (uint32_t)t.len;
		int rc = make_piece(v, id, cp2byte, &t);
		if (rc || t.len > UINT32_MAX) {
			slm_text_free(&t);
			return rc ? rc : SLM_EOVERFLOW;
		}
	}
	v->piece_off[v->n_vocab] = (uint32_t)t.len;
	v->piece_arena = t.data;
	return 0;
}

/* Per-token attributes llama.cpp sets by model name (phi-3: special
 * tokens eat the whitespace after them). */
static void setup_strip(struct slm_vocab *v, const struct gguf_file *f)
{
	const char *name = NULL;
	struct slm_error ignored = {0};
	if (gguf_get_str(f, "general.name", &name, &ignored) || !name)
		return;
	char lower[256];
	size_t i;
	for (i = 0; i < sizeof(lower) - 1 && name[i]; i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	lower[i] = '\0';
	if (!strstr(lower, "phi-3") && !strstr(lower, "phi3"))
		return;
	for (size_t k = 0; k < v->n_special; k++)
		v->attr[v->special[k]] |= SLM_TOKEN_ATTR_RSTRIP;
	int32_t t = find_cstr(v, "</s>");
	if (t >= 0)
		v->attr[t] |= SLM_TOKEN_ATTR_RSTRIP;
	static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>"};
	for (size_t k = 0; k < SLM_ARRAY_LEN(keep); k++) {
		t = find_cstr(v, keep[k]);
		if (t >= 0)
			v->attr[t] &= (uint16_t)~SLM_TOKEN_ATTR_RSTRIP;
	}
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int load_tokens(struct slm_vocab *v, const struct gguf_file *f,
		       struct slm_error *err)
{
	struct gguf_array tokens, scores = {0}, types = {0};
	int rc = gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens, err);
	if (rc == SLM_ENOTFOUND)
		return slm_error_set(err, SLM_ENOTFOUND,
				     "no tokenizer.ggml.tokens: the file has "
				     "no token list");
	if (rc)
		return rc;
	if (tokens.type != GGUF_TYPE_STRING)
		return slm_error_set(err, SLM_EFORMAT,
				     "tokenizer.ggml.tokens holds %s, not "
				     "strings",
				     gguf_type_name(tokens.type));
	if (tokens.n == 0 || tokens.n > (1u << 24))
		return slm_error_set(err, SLM_EFORMAT,
				     "tokenizer.ggml.tokens has %llu tokens "
				     "(1..16777216 supported)",
				     (unsigned long long)tokens.n);
	int32_t n = (int32_t)tokens.n;
	bool have_scores = false, have_types = false;
	rc = gguf_get_arr(f, "tokenizer.ggml.scores", &scores, err);
	if (rc == 0) {
		if (scores.type != GGUF_TYPE_FLOAT32 &&
		    scores.type != GGUF_TYPE_INT32)
			return slm_error_set(err, SLM_EFORMAT,
					     "tokenizer.ggml.scores holds %s, "
					     "not f32 or i32",
					     gguf_type_name(scores.type));
		if (scores.n < tokens.n)
			return slm_error_set(err, SLM_EFORMAT,
					     "tokenizer.ggml.scores has %llu "
					     "entries for %d tokens",
					     (unsigned long long)scores.n, n);
		have_scores = true;
	} else if (rc != SLM_ENOTFOUND) {
		return rc;
	}
	rc = gguf_get_arr(f, "tokenizer.ggml.token_type", &types, err);
	if (rc == 0) {
		if (types.type != GGUF_TYPE_INT32)
			return slm_error_set(err, SLM_EFORMAT,
					     "tokenizer.ggml.token_type holds "
					     "%s, not i32",
					     gguf_type_name(types.type));
		if (types.n < tokens.n)
			return slm_error_set(err, SLM_EFORMAT,
					     "tokenizer.ggml.token_type has "
					     "%llu entries for %d tokens",
					     (unsigned long long)types.n, n);
		have_types = true;
	} else if (rc != SLM_ENOTFOUND) {
		return rc;
	}
	slm_error_clear(err);

	v->n_vocab = n;
	v->score = calloc((size_t)n, sizeof(*v->score));
	v->attr = calloc((size_t)n, sizeof(*v->attr));
	if (!v->score || !v->attr)
		return SLM_ENOMEM;
	size_t total = 0;
	for (int32_t i = 0; i < n; i++)
		total += tokens.string_lens[i];
	v->arena = malloc(total + 64);
	v->str_off = malloc((size_t)n * sizeof(uint32_t) + 64);
	v->str_len = malloc((size_t)n * sizeof(uint32_t) + 64);
	if (!v->arena || !v->str_off || !v->str_len)
		return SLM_ENOMEM;
	v->arena_cap = total + 64;
	v->str_cap = n + 16;
	rc = str_tab_grow(v, pow2_at_least((uint64_t)n * 2 + 2));
	if (rc)
		return rc;
	/* Software pipeline: hash and prefetch the home slot TOK_PF tokens
	 * ahead, prefetch a candidate's text TOK_PF/2 ahead, insert now. */
	uint64_t ring[TOK_RING];
	for (int64_t step = 0; step < (int64_t)n + TOK_PF; step++) {
		int64_t ahead = step, mid = step - TOK_PF / 2,
			i = step - TOK_PF;
		if (ahead < n) {
			uint64_t h = tok_hash(tokens.strings[ahead],
					      tokens.string_lens[ahead]);
			ring[ahead % TOK_RING] = h;
			str_prefetch_slot(v, h);
		}
		if (mid >= 0 && mid < n)
			str_prefetch_text(v, ring[mid % TOK_RING]);
		if (i < 0)
			continue;
		const char *s = tokens.strings[i];
		size_t len = tokens.string_lens[i];
		uint64_t h = ring[i % TOK_RING];
		char empty[32];
		if (len == 0) {
			/* llama.cpp names empty tokens so they stay unique */
			len = (size_t)snprintf(empty, sizeof(empty),
					       "[EMPTY_%d]", (int)i);
			s = empty;
			h = tok_hash(s, len);
		}
		int32_t id;
		bool added;
		rc = str_add(v, s, len, h, true, &id, &added);
		if (rc)
			return rc;
		if (!added)
			return slm_error_set(err, SLM_EFORMAT,
					     "duplicate token in vocabulary: "
					     "'%.*s' has ids %d and %d",
					     (int)SLM_MIN(len, 64), s, id,
					     (int)i);
		/* array elements sit unaligned in the mapping */
		if (have_scores) {
			const char *e =
				(const char *)scores.data + 4 * (size_t)i;
			if (scores.type == GGUF_TYPE_FLOAT32) {
				memcpy(&v->score[i], e, 4);
			} else {
				int32_t si;
				memcpy(&si, e, 4);
				v->score[i] = (float)si;
			}
		}
		unsigned attr = SLM_TOKEN_ATTR_NORMAL;
		if (have_types) {
			int32_t type;
			memcpy(&type, (const char *)types.data + 4 * (size_t)i,
			       4);
			switch (type) {
			case 1:
				attr = SLM_TOKEN_ATTR_NORMAL;
				break;
			case 2:
				attr = SLM_TOKEN_ATTR_UNKNOWN;
				break;
			case 3:
				attr = SLM_TOKEN_ATTR_CONTROL;
				break;
			case 4:
				attr = SLM_TOKEN_ATTR_USER_DEFINED;
				break;
			case 5:
				attr = SLM_TOKEN_ATTR_UNUSED;
				break;
			case 6:
				attr = SLM_TOKEN_ATTR_BYTE;
				break;
			default:
				attr = SLM_TOKEN_ATTR_UNDEFINED;
				break;
			}
		}
		v->attr[i] = (uint16_t)attr;
	}
	return 0;
}

struct merge_stage {
	const char *a, *b;
	size_t la, lb;
	uint64_t ha, hb, hab;
	char *cat; /* a then b */
	size_t cat_cap;
	bool valid;
};

struct merge_put_stage {
	int32_t left, right, rank, result;
};

static int load_merges(struct slm_vocab *v, const struct gguf_file *f,
		       struct slm_error *err)
{
	struct gguf_array merges;
	int rc = gguf_get_arr(f, "tokenizer.ggml.merges", &merges, err);
	if (rc == SLM_ENOTFOUND)
		return slm_error_set(err, SLM_ENOTFOUND,
				     "no tokenizer.ggml.merges: a gpt2 "
				     "vocabulary needs its merge rules");
	if (rc)
		return rc;
	if (merges.type != GGUF_TYPE_STRING)
		return slm_error_set(err, SLM_EFORMAT,
				     "tokenizer.ggml.merges holds %s, not "
				     "strings",
				     gguf_type_name(merges.type));
	if (merges.n > (1u << 26))
		return slm_error_set(err, SLM_EFORMAT,
				     "tokenizer.ggml.merges has %llu rules",
				     (unsigned long long)merges.n);
	v->merge_mask = pow2_at_least(merges.n * 2 + 2) - 1;
	v->merge_tab =
		malloc(((size_t)v->merge_mask + 1) * sizeof(*v->merge_tab));
	if (!v->merge_tab)
		return SLM_ENOMEM;
	for (uint32_t i = 0; i <= v->merge_mask; i++)
		v->merge_tab[i].key = UINT64_MAX;

	/* Pipeline as for the tokens: parse and hash the three strings of a
	 * rule (left, right, left+right) TOK_PF rules ahead and prefetch
	 * their slots; prefetch their texts TOK_PF/2 ahead; resolve the ids
	 * now and prefetch the pair's merge slot; insert the pair TOK_PF
	 * rules later. */
	struct merge_stage st[TOK_RING];
	struct merge_put_stage put[TOK_RING];
	memset(st, 0, sizeof(st));
	int64_t n = (int64_t)merges.n;
	for (int64_t step = 0; step < n + 2 * TOK_PF; step++) {
		int64_t ahead = step, mid = step - TOK_PF / 2;
		int64_t r = step - TOK_PF, late = step - 2 * TOK_PF;
		if (ahead < n) {
			struct merge_stage *m = &st[ahead % TOK_RING];
			const char *s = merges.strings[ahead];
			size_t len = merges.string_lens[ahead];
			/* "left right", split at the first space after the
			 * first byte, as llama.cpp; a rule without one pairs
			 * two empty strings, which never occur */
			const char *sp =
				len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
			m->valid = sp && sp + 1 < s + len;
			if (m->valid) {
				m->a = s;
				m->la = (size_t)(sp - s);
				m->b = sp + 1;
				m->lb = len - m->la - 1;
				if (m->la + m->lb > m->cat_cap) {
					size_t cap = 2 * (m->la + m->lb);
					char *c = realloc(m->cat, cap);
					if (!c) {
						rc = SLM_ENOMEM;
						goto out;
					}
					m->cat = c;
					m->cat_cap = cap;
				}
				memcpy(m->cat, m->a, m->la);
				memcpy(m->cat + m->la, m->b, m->lb);
				m->ha = tok_hash(m->a, m->la);
				m->hb = tok_hash(m->b, m->lb);
				m->hab = tok_hash(m->cat, m->la + m->lb);
				str_prefetch_slot(v, m->ha);
				str_prefetch_slot(v, m->hb);
				str_prefetch_slot(v, m->hab);
			}
		}
		if (mid >= 0 && mid < n && st[mid % TOK_RING].valid) {
			const struct merge_stage *m = &st[mid % TOK_RING];
			str_prefetch_text(v, m->ha);
			str_prefetch_text(v, m->hb);
			str_prefetch_text(v, m->hab);
		}
		if (r >= 0 && r < n) {
			struct merge_stage *m = &st[r % TOK_RING];
			struct merge_put_stage *p = &put[r % TOK_RING];
			p->rank = -1;
			if (m->valid) {
				bool added;
				if ((rc = str_add(v, m->a, m->la, m->ha, true,
						  &p->left, &added)) ||
				    (rc = str_add(v, m->b, m->lb, m->hb, true,
						  &p->right, &added)) ||
				    (rc = str_add(v, m->cat, m->la + m->lb,
						  m->hab, true, &p->result,
						  &added)))
					goto out;
				p->rank = (int32_t)r;
				uint64_t key =
					((uint64_t)(uint32_t)p->left << 32) |
					(uint32_t)p->right;
				__builtin_prefetch(&v->merge_tab[merge_slot(
					key, v->merge_mask)]);
			}
		}
		if (late >= 0 && late < n) {
			const struct merge_put_stage *p = &put[late % TOK_RING];
			if (p->rank >= 0)
				merge_put(v, p->left, p->right, p->rank,
					  p->result);
		}
	}
out:
	for (int i = 0; i < TOK_RING; i++)
		free(st[i].cat);
	return rc;
}

/*
 * SPM merges only make vocabulary pieces, so the text can be cut wherever
 * no piece could span the cut; merges on either side never interact, so
 * merging the pieces one by one gives what merging the whole does.  When
 * every token is a run of U+2581 followed by no U+2581 (SentencePiece's
 * split by whitespace), no token spans a U+2581 that follows another
 * character: the text can be cut before each such U+2581.
 */
static bool spm_can_split(const struct slm_vocab *v)
{
	for (int32_t id = 0; id < v->n_vocab; id++) {
		size_t len;
		const char *t = slm_vocab_text(v, id, &len);
		size_t i = 0;
		while (len - i >= 3 && !memcmp(t + i, U2581, 3))
			i += 3;
		if (len - i >= 3 && memmem(t + i, len - i, U2581, 3))
			return false;
	}
	return true;
}

int slm_vocab_create(const struct gguf_file *f, struct slm_vocab **out,
		     struct slm_error *err)
{
	*out = NULL;
	struct slm_vocab *v = calloc(1, sizeof(*v));
	if (!v)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int rc;
	const char *model = NULL, *pre = NULL, *tmpl = NULL;
	rc = gguf_get_str(f, "tokenizer.ggml.model", &model, err);
	if (rc == SLM_ENOTFOUND) {
		rc = slm_error_set(err, SLM_ENOTFOUND,
				   "no tokenizer.ggml.model: the file has no "
				   "vocabulary");
		goto fail;
	}
	if (rc)
		goto fail;
	rc = gguf_get_str(f, "tokenizer.ggml.pre", &pre, err);
	if (rc && rc != SLM_ENOTFOUND)
		goto fail;
	rc = gguf_get_str(f, "tokenizer.chat_template", &tmpl, err);
	if (rc && rc != SLM_ENOTFOUND)
		goto fail;
	slm_error_clear(err);

	v->bos = v->eos = v->eot = v->eom = v->unk = SLM_TOKEN_NULL;
	v->sep = v->pad = v->mask = v->nl = SLM_TOKEN_NULL;
	v->fim_pre = v->fim_suf = v->fim_mid = SLM_TOKEN_NULL;
	v->fim_pad = v->fim_rep = v->fim_sep = SLM_TOKEN_NULL;
	for (int i = 0; i < 256; i++)
		v->byte_sym[i] = v->tok_single[i] = -1;
	if (!strcmp(model, "llama")) {
		v->type = SLM_VOCAB_SPM;
		v->bos = 1;
		v->eos = 2;
		v->unk = 0;
		v->add_space_prefix = true;
		v->add_bos = true;
		v->pre = TOK_PRE_DEFAULT;
		pre = "default";
	} else if (!strcmp(model, "gpt2")) {
		v->type = SLM_VOCAB_BPE;
		v->bos = 11;
		v->eos = 11;
		const struct pre_name *pn = NULL;
		if (!pre || !*pre) {
			SLM_WARN("tokenizer", "missing pre-tokenizer type, "
					      "using 'default'");
			pre = "default";
		}
		for (size_t i = 0; i < SLM_ARRAY_LEN(pre_names); i++)
			if (!strcmp(pre_names[i].name, pre))
				pn = &pre_names[i];
		if (!pn) {
			rc = slm_error_set(
				err, SLM_EUNSUPPORTED,
				"pre-tokenizer '%s' is not supported "
				"(supported: "
				"default, gpt-2 and its aliases, llama-bpe/"
				"llama3, qwen2, smollm, deepseek-llm, dbrx, "
				"starcoder, ...)",
				pre);
			goto fail;
		}
		v->pre = pn->pre;
		v->ignore_merges = pn->ignore_merges;
		v->clean_spaces = pn->clean_spaces;
		v->add_bos = pn->add_bos;
	} else if (!strcmp(model, "no_vocab") || !strcmp(model, "none")) {
		rc = slm_error_set(err, SLM_EUNSUPPORTED,
				   "tokenizer.ggml.model '%s': the file has no "
				   "vocabulary",
				   model);
		goto fail;
	} else {
		rc = slm_error_set(
			err, SLM_EUNSUPPORTED,
			"tokenizer '%s' is not supported (supported: "
			"llama (SPM), gpt2 (byte-level BPE))",
			model);
		goto fail;
	}
	if ((rc = get_opt_bool(f, "tokenizer.ggml.add_space_prefix",
			       &v->add_space_prefix, err)))
		goto fail;
	v->model_name = dup_str(model);
	v->pre_name = dup_str(pre);
	v->chat_template = dup_str(tmpl);
	if (!v->model_name || !v->pre_name || (tmpl && !v->chat_template)) {
		rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
		goto fail;
	}

	if ((rc = load_tokens(v, f, err)))
		goto fail;
	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		v->tok_single[b] = slm_vocab_find(v, &c, 1);
	}
	if (v->type == SLM_VOCAB_SPM)
		v->spm_split = spm_can_split(v);
	if (v->type == SLM_VOCAB_BPE) {
		if ((rc = load_merges(v, f, err)) ||
		    (rc = tok_bpe_init(v, err)))
			goto fail;
	}

	/* the newline token */
	if (v->type == SLM_VOCAB_SPM) {
		v->nl = find_cstr(v, "<0x0A>");
		if (v->nl < 0)
			v->nl = find_cstr(v, "\n");
	} else {
		struct slm_tokens nl = {0};
		struct tok_work w = {0};
		if (tok_bpe_fragment(v, &w, "\n", 1, &nl, err) == 0 && nl.n > 0)
			v->nl = nl.ids[0];
		tok_work_free(&w);
		slm_tokens_free(&nl);
		slm_error_clear(err);
	}

	static const struct {
		const char *key;
		size_t off;
	} ids[] = {
		{"tokenizer.ggml.bos_token_id",
		 offsetof(struct slm_vocab, bos)},
		{"tokenizer.ggml.eos_token_id",
		 offsetof(struct slm_vocab, eos)},
		{"tokenizer.ggml.eot_token_id",
		 offsetof(struct slm_vocab, eot)},
		{"tokenizer.ggml.eom_token_id",
		 offsetof(struct slm_vocab, eom)},
		{"tokenizer.ggml.unknown_token_id",
		 offsetof(struct slm_vocab, unk)},
		{"tokenizer.ggml.seperator_token_id",
		 offsetof(struct slm_vocab, sep)},
		{"tokenizer.ggml.padding_token_id",
		 offsetof(struct slm_vocab, pad)},
		{"tokenizer.ggml.mask_token_id",
		 offsetof(struct slm_vocab, mask)},
		{"tokenizer.ggml.fim_pre_token_id",
		 offsetof(struct slm_vocab, fim_pre)},
		{"tokenizer.ggml.fim_suf_token_id",
		 offsetof(struct slm_vocab, fim_suf)},
		{"tokenizer.ggml.fim_mid_token_id",
		 offsetof(struct slm_vocab, fim_mid)},
		{"tokenizer.ggml.fim_pad_token_id",
		 offsetof(struct slm_vocab, fim_pad)},
		{"tokenizer.ggml.fim_rep_token_id",
		 offsetof(struct slm_vocab, fim_rep)},
		{"tokenizer.ggml.fim_sep_token_id",
		 offsetof(struct slm_vocab, fim_sep)},
		{"tokenizer.ggml.prefix_token_id",
		 offsetof(struct slm_vocab, fim_pre)},
		{"tokenizer.ggml.suffix_token_id",
		 offsetof(struct slm_vocab, fim_suf)},
		{"tokenizer.ggml.middle_token_id",
		 offsetof(struct slm_vocab, fim_mid)},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(ids); i++) {
		int32_t *id = (int32_t *)((char *)v + ids[i].off);
		if ((rc = get_opt_id(v, f, ids[i].key, id, err)))
			goto fail;
	}
	bool add_sep = false;
	if ((rc = get_opt_bool(f, "tokenizer.ggml.add_bos_token", &v->add_bos,
			       err)) ||
	    (rc = get_opt_bool(f, "tokenizer.ggml.add_eos_token", &v->add_eos,
			       err)) ||
	    (rc = get_opt_bool(f, "tokenizer.ggml.add_sep_token", &add_sep,
			       err)))
		goto fail;
	if (v->add_bos && v->bos < 0) {
		rc = slm_error_set(err, SLM_EFORMAT,
				   "tokenizer.ggml.add_bos_token is true, but "
				   "tokenizer.ggml.bos_token_id is not set");
		goto fail;
	}
	if (v->add_eos && v->eos < 0) {
		rc = slm_error_set(err, SLM_EFORMAT,
				   "tokenizer.ggml.add_eos_token is true, but "
				   "tokenizer.ggml.eos_token_id is not set");
		goto fail;
	}
	if ((rc = setup_eog(v)) || (rc = setup_special(v)) ||
	    (rc = setup_pieces(v))) {
		rc = slm_error_set(err, rc, "out of memory");
		goto fail;
	}
	setup_strip(v, f);
	*out = v;
	return 0;
fail:
	slm_vocab_destroy(v);
	return rc;
}

int slm_vocab_load_file(const char *path, struct slm_vocab **out,
			struct slm_error *err)
{
	struct gguf_file *f = NULL;
	*out = NULL;
	int rc = gguf_open(path, &f, err);
	if (rc)
		return rc;
	rc = slm_vocab_create(f, out, err);
	if (rc)
		slm_error_prefix(err, "%s: ", path);
	gguf_close(f);
	return rc;
}

void slm_vocab_destroy(struct slm_vocab *v)
{
	if (!v)
		return;
	tok_bpe_fini(v);
	free(v->model_name);
	free(v->pre_name);
	free(v->chat_template);
	free(v->arena);
	free(v->str_off);
	free(v->str_len);
	free(v->str_tab);
	free(v->score);
	free(v->attr);
	free(v->piece_arena);
	free(v->piece_off);
	free(v->merge_tab);
	free(v->eog);
	free(v->eog_bits);
	free(v->special);
	free(v);
}

/* ---- accessors -------------------------------------------------------- */

enum slm_vocab_type slm_vocab_type(const struct slm_vocab *v)
{
	return v->type;
}

int32_t slm_vocab_n_tokens(const struct slm_vocab *v)
{
	return v->n_vocab;
}

const char *slm_vocab_model_name(const struct slm_vocab *v)
{
	return v->model_name;
}

const char *slm_vocab_pre_name(const struct slm_vocab *v)
{
	return v->pre_name;
}

const char *slm_vocab_chat_template(const struct slm_vocab *v)
{
	return v->chat_template;
}

const char *slm_vocab_text(const struct slm_vocab *v, int32_t id, size_t *len)
{
	if (id < 0 || id >= v->n_vocab)
		return NULL;
	size_t l;
	const char *s = tok_str(v, id, &l);
	if (len)
		*len = l;
	return s;
}

float slm_vocab_score(const struct slm_vocab *v, int32_t id)
{
	return id >= 0 && id < v->n_vocab ? v->score[id] : 0.0f;
}

unsigned slm_vocab_attr(const struct slm_vocab *v, int32_t id)
{
	return id >= 0 && id < v->n_vocab ? v->attr[id] : 0;
}

int32_t slm_vocab_find(const struct slm_vocab *v, const char *s, size_t n)
{
	int32_t id = tok_str_find(v, s, n);
	return id >= 0 && id < v->n_vocab ? id : SLM_TOKEN_NULL;
}

int32_t slm_vocab_bos(const struct slm_vocab *v)
{
	return v->bos;
}

int32_t slm_vocab_eos(const struct slm_vocab *v)
{
	return v->eos;
}

int32_t slm_vocab_eot(const struct slm_vocab *v)
{
	return v->eot;
}

int32_t slm_vocab_eom(const struct slm_vocab *v)
{
	return v->eom;
}

int32_t slm_vocab_unk(const struct slm_vocab *v)
{
	return v->unk;
}

int32_t slm_vocab_pad(const struct slm_vocab *v)
{
	return v->pad;
}

int32_t slm_vocab_nl(const struct slm_vocab *v)
{
	return v->nl;
}

bool slm_vocab_add_bos(const struct slm_vocab *v)
{
	return v->add_bos;
}

bool slm_vocab_add_eos(const struct slm_vocab *v)
{
	return v->add_eos;
}

bool slm_vocab_add_space_prefix(const struct slm_vocab *v)
{
	return v->add_space_prefix;
}

bool slm_vocab_is_eog(const struct slm_vocab *v, int32_t id)
{
	return id >= 0 && id < v->n_vocab && eog_bit(v, id);
}

size_t slm_vocab_eog_ids(const struct slm_vocab *v, const int32_t **ids)
{
	*ids = v->eog;
	return v->n_eog;
}

bool slm_vocab_is_control(const struct slm_vocab *v, int32_t id)
{
	return id >= 0 && id < v->n_vocab &&
	       (v->attr[id] & SLM_TOKEN_ATTR_CONTROL);
}

/* ---- special-token partition ------------------------------------------ */

struct frag {
	size_t off, len;
	int32_t token; /* >= 0: a special token; -1: text */
};

struct occ {
	uint32_t rank; /* index in v->special */
	size_t pos;
};

static int cmp_occ(const void *a, const void *b)
{
	const struct occ *x = a, *y = b;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int cmp_frag(const void *a, const void *b)
{
	const struct frag *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static bool c_isspace(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool special_eligible(const struct slm_vocab *v, int32_t id,
			     bool parse_special)
{
	return parse_special || !(v->attr[id] & (SLM_TOKEN_ATTR_CONTROL |
						 SLM_TOKEN_ATTR_UNKNOWN));
}

/*
 * Split text into text fragments and special tokens with llama.cpp's
 * semantics: special tokens are taken longest first; each takes its
 * leftmost non-overlapping occurrences inside what earlier tokens left
 * as text.  Found here in one pass over the text (candidates by first
 * byte), then settled in that order.
 */
static int partition(const struct slm_vocab *v, const char *text, size_t len,
		     bool parse_special, struct frag **frags_out,
		     size_t *n_frags, struct slm_error *err)
{
	struct occ *occ = NULL;
	size_t n_occ = 0, cap_occ = 0;
	struct frag *fr = NULL;
	uint8_t *covered = NULL;
	int rc = 0;
	for (size_t i = 0; i < len; i++) {
		if (!v->special_first[(uint8_t)text[i]])
			continue;
		for (size_t r = 0; r < v->n_special; r++) {
			int32_t id = v->special[r];
			size_t tl = v->str_len[id];
			const char *t = v->arena + v->str_off[id];
			if (tl > len - i || t[0] != text[i] ||
			    memcmp(t, text + i, tl) != 0 ||
			    !special_eligible(v, id, parse_special))
				continue;
			if (n_occ == cap_occ) {
				cap_occ = cap_occ ? cap_occ * 2 : 16;
				struct occ *o =
					realloc(occ, cap_occ * sizeof(*o));
				if (!o) {
					rc = SLM_ENOMEM;
					goto out;
				}
				occ = o;
			}
			occ[n_occ].rank = (uint32_t)r;
			occ[n_occ].pos = i;
			n_occ++;
		}
	}
	fr = malloc((2 * n_occ + 1) * sizeof(*fr));
	if (!fr) {
		rc = SLM_ENOMEM;
		goto out;
	}
	size_t nf = 0;
	if (n_occ) {
		covered = calloc(len, 1);
		if (!covered) {
			rc = SLM_ENOMEM;
			goto out;
		}
		qsort(occ, n_occ, sizeof(*occ), cmp_occ);
		size_t last_end = 0;
		for (size_t k = 0; k < n_occ; k++) {
			if (k == 0 || occ[k].rank != occ[k - 1].rank)
				last_end = 0;
			int32_t id = v->special[occ[k].rank];
			size_t pos = occ[k].pos, tl = v->str_len[id];
			if (pos < last_end ||
			    memchr(covered + pos, 1, tl) != NULL)
				continue;
			memset(covered + pos, 1, tl);
			last_end = pos + tl;
			fr[nf].off = pos;
			fr[nf].len = tl;
			fr[nf].token = id;
			nf++;
		}
		qsort(fr, nf, sizeof(*fr), cmp_frag);
	}
	/* interleave the text between the tokens, stripping whitespace next
	 * to tokens marked LSTRIP / RSTRIP */
	size_t n_tok = nf;
	struct frag *all = malloc((2 * n_tok + 1) * sizeof(*all));
	if (!all) {
		rc = SLM_ENOMEM;
		goto out;
	}
	size_t na = 0, at = 0;
	for (size_t k = 0; k <= n_tok; k++) {
		size_t end = k < n_tok ? fr[k].off : len;
		size_t a = at, b = end;
		if (k > 0 && (v->attr[fr[k - 1].token] & SLM_TOKEN_ATTR_RSTRIP))
			while (a < b && c_isspace(text[a]))
				a++;
		if (k < n_tok && (v->attr[fr[k].token] & SLM_TOKEN_ATTR_LSTRIP))
			while (b > a && c_isspace(text[b - 1]))
				b--;
		if (b > a) {
			all[na].off = a;
			all[na].len = b - a;
			all[na].token = -1;
			na++;
		}
		if (k < n_tok) {
			all[na++] = fr[k];
			at = fr[k].off + fr[k].len;
		}
	}
	*frags_out = all;
	*n_frags = na;
out:
	free(occ);
	free(fr);
	free(covered);
	if (rc)
		slm_error_set(err, rc, "out of memory");
	return rc;
}

/* ---- tokenize --------------------------------------------------------- */

/* SPM text: optional leading space, every space as U+2581. */
static int spm_fragment(const struct slm_vocab *v, struct tok_work *w,
			const char *text, size_t len, bool prefix,
			struct slm_tokens *out, struct slm_error *err)
{
	size_t spaces = prefix;
	for (size_t i = 0; i < len; i++)
		spaces += text[i] == ' ';
	char *buf = malloc(len + 2 * spaces + 1);
	if (!buf)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	size_t o = 0;
	if (prefix) {
		memcpy(buf, U2581, 3);
		o = 3;
	}
	for (size_t i = 0; i < len; i++) {
		if (text[i] == ' ') {
			memcpy(buf + o, U2581, 3);
			o += 3;
		} else {
			buf[o++] = text[i];
		}
	}
	int rc = tok_spm_fragment(v, w, buf, o, out, err);
	free(buf);
	return rc;
}

int slm_tokenize(const struct slm_vocab *v, const char *text, size_t len,
		 unsigned flags, struct slm_tokens *out, struct slm_error *err)
{
	if (len > TOK_MAX_TEXT)
		return slm_error_set(
			err, SLM_ETOOBIG,
			"text of %zu bytes is over the 1 GiB limit", len);
	bool add_special = flags & SLM_TOK_ADD_SPECIAL;
	struct tok_work work = {0};
	struct frag *frags = NULL;
	size_t n_frags = 0;
	int rc = 0;
	if (len > 0) {
		rc = partition(v, text, len, flags & SLM_TOK_PARSE_SPECIAL,
			       &frags, &n_frags, err);
		if (rc)
			return rc;
	}
	if (add_special && v->add_bos && (rc = slm_tokens_push(out, v->bos)))
		goto nomem;
	bool prev_special = true; /* SPM: a space before the first text */
	for (size_t i = 0; i < n_frags; i++) {
		const struct frag *fr = &frags[i];
		if (fr->token >= 0) {
			if ((rc = slm_tokens_push(out, fr->token)))
				goto nomem;
			prev_special = true;
			continue;
		}
		if (v->type == SLM_VOCAB_SPM)
			rc = spm_fragment(v, &work, text + fr->off, fr->len,
					  v->add_space_prefix && prev_special,
					  out, err);
		else
			rc = tok_bpe_fragment(v, &work, text + fr->off, fr->len,
					      out, err);
		if (rc)
			goto done;
		prev_special = false;
	}
	if (add_special && v->add_eos && (rc = slm_tokens_push(out, v->eos)))
		goto nomem;
	goto done;
nomem:
	rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
done:
	tok_work_free(&work);
	free(frags);
	return rc;
}

/* ---- detokenize ------------------------------------------------------- */

const char *slm_vocab_piece(const struct slm_vocab *v, int32_t id, bool special,
			    size_t *len)
{
	if (id < 0 || id >= v->n_vocab) {
		*len = 0;
		return NULL;
	}
	if (!special &&
	    (v->attr[id] & (SLM_TOKEN_ATTR_UNKNOWN | SLM_TOKEN_ATTR_CONTROL))) {
		*len = 0;
		return v->piece_arena + v->piece_off[id];
	}
	*len = v->piece_off[id + 1] - v->piece_off[id];
	return v->piece_arena + v->piece_off[id];
}

/* llama.cpp's clean_up_tokenization_spaces, in place, three passes. */
static size_t clean_spaces(char *text, size_t total)
{
	size_t total1 = total;
	total = total ? 1 : 0;
	for (size_t i = 1; i < total1; ++i) {
		const char x = text[i];
		if (text[i - 1] == ' ' &&
		    (x == '?' || x == '!' || x == '.' || x == ','))
			total--;
		text[total++] = x;
	}
	size_t total2 = total;
	total = total ? 1 : 0;
	for (size_t i = 1; i < total2; ++i) {
		const char x = text[i];
		if (x == '\'' && i + 1 < total2 && text[i - 1] == ' ' &&
		    text[i + 1] == ' ') {
			total--;
			text[++i] = '\0';
		}
		text[total++] = x;
	}
	size_t total3 = total;
	total = total ? 1 : 0;
	for (size_t i = 1; i < total3; ++i) {
		const char x = text[i];
		if (text[i - 1] == ' ' && x == '\'' && i + 1 < total3) {
			const char x1 = text[i + 1];
			if (x1 == 's' || x1 == 'm')
				total--;
			else if (i + 2 < total3 && x1 != 't' && x1 != 'd') {
				const char x2 = text[i + 2];
				if ((x1 == 'r' && x2 == 'e') ||
				    (x1 == 'v' && x2 == 'e'))
					total--;
			}
		}
		text[total++] = x;
	}
	return total;
}

static int check_ids(const struct slm_vocab *v, const int32_t *ids, size_t n,
		     struct slm_error *err)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || ids[i] >= v->n_vocab)
			return slm_error_set(
				err, SLM_ERANGE,
				"token id %d at position %zu is out "
				"of range (the vocabulary has %d "
				"tokens)",
				ids[i], i, v->n_vocab);
	return 0;
}

static int append_repaired(struct slm_text *out, const char *p, size_t n,
			   bool hold, size_t *held)
{
	char *w = slm_text_reserve(out, 3 * n);
	if (!w)
		return SLM_ENOMEM;
	out->len += slm_utf8_repair(p, n, hold, w, held);
	out->data[out->len] = '\0';
	return 0;
}

int slm_detokenize(const struct slm_vocab *v, const int32_t *ids, size_t n,
		   unsigned flags, struct slm_text *out, struct slm_error *err)
{
	int rc = check_ids(v, ids, n, err);
	if (rc)
		return rc;
	bool special = flags & SLM_DETOK_SPECIAL;
	bool remove_space =
		(flags & SLM_DETOK_STRIP_PREFIX) && v->add_space_prefix;
	if ((flags & SLM_DETOK_REMOVE_SPECIAL) && v->add_bos && n > 0 &&
	    ids[0] == v->bos) {
		remove_space = false;
		ids++;
		n--;
	}
	if ((flags & SLM_DETOK_REMOVE_SPECIAL) && v->add_eos && n > 0 &&
	    ids[n - 1] == v->eos)
		n--;
	struct slm_text raw = {0};
	for (size_t i = 0; i < n; i++) {
		size_t len;
		const char *p = slm_vocab_piece(v, ids[i], special, &len);
		if (remove_space && len && *p == ' ') {
			p++;
			len--;
		}
		remove_space = false;
		if (slm_text_append(&raw, p, len)) {
			slm_text_free(&raw);
			return slm_error_set(err, SLM_ENOMEM, "out of memory");
		}
	}
	if ((flags & SLM_DETOK_CLEAN_SPACES) && v->clean_spaces && raw.len)
		raw.len = clean_spaces(raw.data, raw.len);
	if (flags & SLM_DETOK_RAW)
		rc = slm_text_append(out, raw.data ? raw.data : "", raw.len);
	else
		rc = append_repaired(out, raw.data ? raw.data : "", raw.len,
				     false, NULL);
	slm_text_free(&raw);
	if (!out->data && !rc)
		rc = slm_text_append(out, "", 0);
	if (rc)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	return 0;
}

/* ---- streaming -------------------------------------------------------- */

void slm_detok_stream_init(struct slm_detok_stream *s,
			   const struct slm_vocab *v, unsigned flags)
{
	s->vocab = v;
	s->flags = flags;
	s->n_held = 0;
}

int slm_detok_stream_push_bytes(struct slm_detok_stream *s, const char *p,
				size_t n, struct slm_text *out)
{
	if (s->flags & SLM_DETOK_RAW)
		return slm_text_append(out, p, n);
	/* The held bytes (an incomplete sequence, at most 3) go in front;
	 * whatever is incomplete at the end is held again. */
	char small[256];
	size_t total = s->n_held + n;
	char *buf = total <= sizeof(small) ? small : malloc(total);
	if (!buf)
		return SLM_ENOMEM;
	memcpy(buf, s->held, s->n_held);
	if (n)
		memcpy(buf + s->n_held, p, n);
	size_t held = 0;
	int rc = append_repaired(out, buf, total, true, &held);
	if (rc == 0) {
		memcpy(s->held, buf + total - held, held);
		s->n_held = (uint8_t)held;
	}
	if (buf != small)
		free(buf);
	return rc;
}

int slm_detok_stream_push(struct slm_detok_stream *s, int32_t id,
			  struct slm_text *out, struct slm_error *err)
{
	size_t len;
	const char *p = slm_vocab_piece(s->vocab, id,
					s->flags & SLM_DETOK_SPECIAL, &len);
	if (!p)
		return slm_error_set(err, SLM_ERANGE,
				     "token id %d is out of range (the "
				     "vocabulary has %d tokens)",
				     id, s->vocab->n_vocab);
	if (slm_detok_stream_push_bytes(s, p, len, out))
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	return 0;
}

int slm_detok_stream_finish(struct slm_detok_stream *s, struct slm_text *out)
{
	int rc = 0;
	if (s->n_held)
		rc = append_repaired(out, (const char *)s->held, s->n_held,
				     false, NULL);
	else
		rc = slm_text_append(out, "", 0);
	s->n_held = 0;
	return rc;
}
