/*
 * tokenizer_bpe.c: byte-level BPE as llama.cpp runs it.
 *
 * Pre-tokenizer.  The fragment is decoded to code points the way llama.cpp
 * decodes (overlong forms and surrogates pass; a byte that starts nothing
 * valid is one U+FFFD).  The regexes of the vocabulary's pre type split it
 * in turn: each regex cuts every current piece into its matches and the
 * text between them, a piece's ends acting as the ends of the subject (so
 * `(?!\S)` and `$` see them).  llama.cpp matches regexes that use \p{..}
 * against a copy of the text where each non-ASCII code point is replaced
 * by a stand-in for its class (letter, number, punctuation, mark, symbol,
 * whitespace, other) from its own Unicode tables, and regexes without
 * \p{..} against the text with non-ASCII whitespace replaced by VT.  We do
 * the same with PCRE2 (32-bit code units, UTF + UCP, JIT): the stand-ins
 * are code points PCRE2 puts in exactly that class, and the classes come
 * from utf8proc's general categories plus Unicode's White_Space list, as
 * llama.cpp's tables do.  (llama.cpp matches the gpt2 and llama3 regexes
 * with hand-written loops that behave as these regexes do.)
 *
 * Merges.  Each piece is re-encoded as UTF-8 and every byte becomes one
 * symbol, the string of its GPT-2 byte-to-unicode character.  Adjacent
 * symbols merge by the lowest rank (ties: leftmost) while a rule exists.
 * With ignore_merges (llama3) a piece that is a token is taken whole.  A
 * symbol that is no token is emitted as the tokens of its single bytes,
 * dropping bytes that have none, as llama.cpp does.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "common/utf8.h"
#include "engine/tokenizer_int.h"

/* ---- GPT-2 byte-to-unicode ------------------------------------------- */

static bool byte_is_printable(uint32_t b)
{
	return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) ||
	       (b >= 0xAE && b <= 0xFF);
}

uint32_t tok_byte_to_cp(uint8_t b)
{
	if (byte_is_printable(b))
		return b;
	if (b <= 0x20)
		return 256u + b; /* 0x00..0x20 -> U+0100..U+0120 */
	if (b >= 0x7F && b <= 0xA0)
		return 256u + 33u + (b - 0x7Fu); /* -> U+0121..U+0142 */
	return 256u + 33u + 34u;		 /* 0xAD -> U+0143 */
}

int tok_cp_to_byte(uint32_t cp)
{
	if (cp < 0x100 && byte_is_printable(cp))
		return (int)cp;
	if (cp >= 256 && cp < 256 + 33)
		return (int)(cp - 256);
	if (cp >= 256 + 33 && cp < 256 + 33 + 34)
		return (int)(0x7F + cp - 256 - 33);
	if (cp == 256 + 33 + 34)
		return 0xAD;
	return -1;
}

/* ---- character classes ------------------------------------------------ */

enum cp_class {
	CLS_OTHER = 0, /* control, format, private use, unassigned, ... */
	CLS_SPACE,
	CLS_LETTER,
	CLS_NUMBER,
	CLS_PUNCT,
	CLS_MARK,
	CLS_SYMBOL,
};

/* A code point PCRE2 (UCP) puts in each class and no other. */
static const uint32_t class_standin[] = {
	[CLS_OTHER] = 0x0080,  /* <control> (Cc) */
	[CLS_SPACE] = 0x000B,  /* VT, as llama.cpp */
	[CLS_LETTER] = 0x00E0, /* a with grave (Ll) */
	[CLS_NUMBER] = 0x00B2, /* superscript two (No) */
	[CLS_PUNCT] = 0x00A1,  /* inverted exclamation mark (Po) */
	[CLS_MARK] = 0x0300,   /* combining grave accent (Mn) */
	[CLS_SYMBOL] = 0x00A2, /* cent sign (Sc) */
};

static bool is_white_space(uint32_t cp)
{
	/* Unicode's White_Space property (PropList.txt), as llama.cpp */
	return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 ||
	       cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
	       cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
	       cp == 0x3000;
}

static uint8_t classify_slow(uint32_t cp)
{
	if (is_white_space(cp))
		return CLS_SPACE;
	switch (utf8proc_category((utf8proc_int32_t)cp)) {
	case UTF8PROC_CATEGORY_LU:
	case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO:
		return CLS_LETTER;
	case UTF8PROC_CATEGORY_MN:
	case UTF8PROC_CATEGORY_MC:
	case UTF8PROC_CATEGORY_ME:
		return CLS_MARK;
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
		return CLS_NUMBER;
	case UTF8PROC_CATEGORY_PC:
	case UTF8PROC_CATEGORY_PD:
	case UTF8PROC_CATEGORY_PS:
	case UTF8PROC_CATEGORY_PE:
	case UTF8PROC_CATEGORY_PI:
	case UTF8PROC_CATEGORY_PF:
	case UTF8PROC_CATEGORY_PO:
		return CLS_PUNCT;
	case UTF8PROC_CATEGORY_SM:
	case UTF8PROC_CATEGORY_SC:
	case UTF8PROC_CATEGORY_SK:
	case UTF8PROC_CATEGORY_SO:
		return CLS_SYMBOL;
	default:
		return CLS_OTHER;
	}
}

static uint8_t class_bmp[0x10000];
static pthread_once_t class_once = PTHREAD_ONCE_INIT;

static void class_init(void)
{
	for (uint32_t cp = 0; cp < 0x10000; cp++)
		class_bmp[cp] = classify_slow(cp);
}

static inline uint8_t classify(uint32_t cp)
{
	return cp < 0x10000 ? class_bmp[cp] : classify_slow(cp);
}

uint32_t tok_class_standin(uint32_t cp)
{
	pthread_once(&class_once, class_init);
	return cp < 0x80 ? cp : class_standin[classify(cp)];
}

/* ---- regex sets ------------------------------------------------------- */

#define RE_GPT2                                                              \
	"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|" \
	"\\s+(?!\\S)"
#define RE_CONTRACTIONS \
	"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RE_LLAMA3                                                             \
	RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "        \
			"?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!" \
			"\\S)|\\s+"
#define RE_QWEN2                                                              \
	RE_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "             \
			"?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!" \
			"\\S)|\\s+"

/* clang-format off */
static const char *const re_default[] = {
	"[\\p{P}\\$\\+<=>\\^~\\|]+", RE_GPT2, "\\p{N}+", "[0-9][0-9][0-9]",
	NULL};
static const char *const re_gpt2[] = {RE_GPT2, NULL};
static const char *const re_llama3[] = {RE_LLAMA3, NULL};
static const char *const re_qwen2[] = {RE_QWEN2, NULL};
static const char *const re_smollm[] = {"\\p{N}", RE_GPT2, NULL};
static const char *const re_deepseek_llm[] = {
	"[\r\n]",
	"\\s?["
	"A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}"
	"\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}"
	"\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}\\x{37F}"
	"\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}"
	"\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}\\x{48A}-\\x{52F}"
	"\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
	"\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}"
	"\\x{1D00}-\\x{1D2B}\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}"
	"\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
	"\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}"
	"\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}"
	"\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}"
	"\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"
	"\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}"
	"\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}"
	"\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
	"\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}"
	"\\x{213C}-\\x{213F}\\x{2145}-\\x{2149}\\x{214E}\\x{2183}"
	"\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
	"\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}"
	"\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}"
	"\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
	"\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}"
	"\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
	"\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}"
	"\\x{10CC0}-\\x{10CF2}\\x{118A0}-\\x{118DF}"
	"\\x{1E900}-\\x{1E943}"
	"]+",
	"\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}"
	"\\x{3000}-\\x{3002}]+",
	"\\s+$",
	"[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
	"\\p{N}+",
	NULL};
/* clang-format on */

static const char *const *regex_set(enum tok_pre pre)
{
	switch (pre) {
	case TOK_PRE_GPT2:
		return re_gpt2;
	case TOK_PRE_LLAMA3:
		return re_llama3;
	case TOK_PRE_QWEN2:
		return re_qwen2;
	case TOK_PRE_SMOLLM:
		return re_smollm;
	case TOK_PRE_DEEPSEEK_LLM:
		return re_deepseek_llm;
	case TOK_PRE_DEFAULT:
	default:
		return re_default;
	}
}

static int compile_regex(struct tok_regex *re, const char *pattern,
			 struct slm_error *err)
{
	size_t n = strlen(pattern);
	uint32_t *p32 = malloc((n + 1) * sizeof(*p32));
	if (!p32)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t bad;
		int r = slm_utf8_next((const uint8_t *)pattern + i, n - i, &cp,
				      &bad);
		SLM_ASSERT(r > 0); /* the patterns above are well formed */
		p32[k++] = cp;
		i += (size_t)r;
	}
	int ecode;
	PCRE2_SIZE eoff;
	re->code = pcre2_compile((PCRE2_SPTR)p32, k,
				 PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY,
				 &ecode, &eoff, NULL);
	free(p32);
	if (!re->code) {
		PCRE2_UCHAR msg[128];
		pcre2_get_error_message(ecode, msg, SLM_ARRAY_LEN(msg));
		char m8[128];
		size_t i;
		for (i = 0; i < SLM_ARRAY_LEN(m8) - 1 && msg[i]; i++)
			m8[i] = msg[i] < 0x80 ? (char)msg[i] : '?';
		m8[i] = '\0';
		return slm_error_set(err, SLM_EUNSUPPORTED,
				     "pre-tokenizer regex does not compile at "
				     "%zu: %s",
				     (size_t)eoff, m8);
	}
	/* JIT is an optimisation: without it pcre2_match interprets. */
	(void)pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
	re->collapse = strstr(pattern, "\\p{") != NULL;
	return 0;
}

int tok_bpe_init(struct slm_vocab *v, struct slm_error *err)
{
	pthread_once(&class_once, class_init);
	const char *const *set = regex_set(v->pre);
	for (int i = 0; set[i]; i++) {
		SLM_ASSERT(i < TOK_MAX_REGEX);
		int rc = compile_regex(&v->regex[i], set[i], err);
		if (rc)
			return rc;
		v->n_regex = i + 1;
		if (v->regex[i].collapse)
			v->any_collapse = true;
		else
			v->any_plain = true;
	}
	for (int b = 0; b < 256; b++) {
		char enc[4];
		size_t n = slm_utf8_encode(tok_byte_to_cp((uint8_t)b), enc);
		memcpy(v->byte_enc[b], enc, n);
		v->byte_enc_len[b] = (uint8_t)n;
		v->byte_sym[b] = tok_str_find(v, enc, n);
	}
	return 0;
}

void tok_bpe_fini(struct slm_vocab *v)
{
	for (int i = 0; i < v->n_regex; i++)
		pcre2_code_free(v->regex[i].code);
	v->n_regex = 0;
}

/* ---- merging ---------------------------------------------------------- */

struct bpe_sym {
	int32_t id;	   /* string id, or -1 (a byte whose character is in no
		       string) */
	uint32_t start, n; /* bytes of the word; n == 0: merged away */
	int32_t prev, next;
};

struct bpe_bigram {
	int32_t rank;
	int32_t left, right;
	int32_t result;
	uint32_t size;
};

/* a comes out first: lower rank, then lower left */
static inline bool bigram_first(const struct bpe_bigram *a,
				const struct bpe_bigram *b)
{
	return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(struct tok_work *w, struct bpe_bigram x)
{
	if (w->heap_n == w->heap_cap) {
		size_t cap = w->heap_cap ? w->heap_cap * 2 : 64;
		struct bpe_bigram *a = realloc(w->heap, cap * sizeof(*a));
		if (!a)
			return SLM_ENOMEM;
		w->heap = a;
		w->heap_cap = cap;
	}
	size_t i = w->heap_n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!bigram_first(&x, &w->heap[p]))
			break;
		w->heap[i] = w->heap[p];
		i = p;
	}
	w->heap[i] = x;
	return 0;
}

static struct bpe_bigram heap_pop(struct tok_work *w)
{
	struct bpe_bigram top = w->heap[0], x = w->heap[--w->heap_n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= w->heap_n)
			break;
		if (c + 1 < w->heap_n &&
		    bigram_first(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!bigram_first(&w->heap[c], &x))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->heap_n)
		w->heap[i] = x;
	return top;
}

static int push_pair(const struct slm_vocab *v, struct tok_work *w,
		     int32_t left, int32_t right)
{
	if (left < 0 || right < 0)
		return 0;
	int32_t result;
	int32_t rank =
		tok_merge_find(v, w->sym[left].id, w->sym[right].id, &result);
	if (rank < 0)
		return 0;
	struct bpe_bigram b = {rank, left, right, result,
			       w->sym[left].n + w->sym[right].n};
	return heap_push(w, b);
}

/* Rank of merging symbol i with its right neighbour, or -1. */
static int32_t pair_rank(const struct slm_vocab *v, const struct bpe_sym *s,
			 int32_t i, int32_t *result)
{
	if (i < 0 || s[i].next < 0)
		return -1;
	return tok_merge_find(v, s[i].id, s[s[i].next].id, result);
}

/* Words up to this many bytes merge by rescanning the pairs (no heap). */
#define BPE_SCAN_MAX 24

static int merge_scan(const struct slm_vocab *v, struct bpe_sym *s,
		      int32_t n_sym)
{
	int32_t rank[BPE_SCAN_MAX], result[BPE_SCAN_MAX];
	if (n_sym < 1 || n_sym > BPE_SCAN_MAX)
		return SLM_EINVAL;
	for (int32_t i = 0; i < n_sym; i++)
		rank[i] = pair_rank(v, s, i, &result[i]);
	for (;;) {
		int32_t best = -1;
		for (int32_t i = 0; i != -1; i = s[i].next)
			if (rank[i] >= 0 && (best < 0 || rank[i] < rank[best]))
				best = i;
		if (best < 0)
			return 0;
		int32_t r = s[best].next;
		s[best].id = result[best];
		s[best].n += s[r].n;
		s[r].n = 0;
		s[best].next = s[r].next;
		if (s[r].next >= 0)
			s[s[r].next].prev = best;
		rank[best] = pair_rank(v, s, best, &result[best]);
		if (s[best].prev >= 0)
			rank[s[best].prev] = pair_rank(v, s, s[best].prev,
						       &result[s[best].prev]);
	}
}

static int merge_heap(const struct slm_vocab *v, struct tok_work *w,
		      int32_t n_sym)
{
	struct bpe_sym *s = w->sym;
	w->heap_n = 0;
	for (int32_t i = 1; i < n_sym; i++)
		if (push_pair(v, w, i - 1, i))
			return SLM_ENOMEM;
	while (w->heap_n) {
		struct bpe_bigram b = heap_pop(w);
		struct bpe_sym *l = &s[b.left], *r = &s[b.right];
		/* stale: one side merged since, or grew */
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue;
		l->id = b.result;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			s[r->next].prev = b.left;
		if (push_pair(v, w, l->prev, b.left) ||
		    push_pair(v, w, b.left, l->next))
			return SLM_ENOMEM;
	}
	return 0;
}

static int emit_fallback(const struct slm_vocab *v, const uint8_t *word,
			 const struct bpe_sym *s, struct slm_tokens *out)
{
	for (uint32_t k = 0; k < s->n; k++) {
		uint8_t b = word[s->start + k];
		for (uint8_t e = 0; e < v->byte_enc_len[b]; e++) {
			int32_t t = v->tok_single[v->byte_enc[b][e]];
			if (t >= 0 && slm_tokens_push(out, t))
				return SLM_ENOMEM;
		}
	}
	return 0;
}

static int merge_word(const struct slm_vocab *v, struct tok_work *w,
		      const uint8_t *word, size_t n, bool force_heap,
		      struct slm_tokens *out)
{
	if (v->ignore_merges) {
		if (w->enc_cap < 2 * n) {
			char *e = realloc(w->enc, 2 * n);
			if (!e)
				return SLM_ENOMEM;
			w->enc = e;
			w->enc_cap = 2 * n;
		}
		size_t el = 0;
		for (size_t i = 0; i < n; i++) {
			memcpy(w->enc + el, v->byte_enc[word[i]],
			       v->byte_enc_len[word[i]]);
			el += v->byte_enc_len[word[i]];
		}
		int32_t id = slm_vocab_find(v, w->enc, el);
		if (id >= 0)
			return slm_tokens_push(out, id);
	}
	if (w->sym_cap < n) {
		struct bpe_sym *s = realloc(w->sym, n * sizeof(*s));
		if (!s)
			return SLM_ENOMEM;
		w->sym = s;
		w->sym_cap = n;
	}
	struct bpe_sym *s = w->sym;
	int32_t n_sym = (int32_t)n;
	for (int32_t i = 0; i < n_sym; i++) {
		s[i].id = v->byte_sym[word[i]];
		s[i].start = (uint32_t)i;
		s[i].n = 1;
		s[i].prev = i - 1;
		s[i].next = i + 1 < n_sym ? i + 1 : -1;
	}
	int rc = (n_sym <= BPE_SCAN_MAX && !force_heap)
			 ? merge_scan(v, s, n_sym)
			 : merge_heap(v, w, n_sym);
	if (rc)
		return rc;
	for (int32_t i = 0; i != -1; i = s[i].next) {
		int32_t id = s[i].id;
		if (id >= 0 && id < v->n_vocab)
			rc = slm_tokens_push(out, id);
		else
			rc = emit_fallback(v, word, &s[i], out);
		if (rc)
			return rc;
	}
	return 0;
}

static struct bpe_cache_slot *
cache_find(struct tok_work *w, const uint8_t *word, size_t n, uint64_t h)
{
	for (uint32_t i = (uint32_t)h & w->cache_mask;;
	     i = (i + 1) & w->cache_mask) {
		struct bpe_cache_slot *sl = &w->cache[i];
		if (sl->key_len == 0 ||
		    (sl->hash == h && sl->key_len == n &&
		     !memcmp(w->keys.data + sl->key_off, word, n)))
			return sl;
	}
}

static int cache_grow(struct tok_work *w)
{
	uint32_t size = w->cache ? (w->cache_mask + 1) * 2 : 1024;
	struct bpe_cache_slot *old = w->cache;
	uint32_t old_size = old ? w->cache_mask + 1 : 0;
	w->cache = calloc(size, sizeof(*w->cache));
	if (!w->cache) {
		w->cache = old;
		return SLM_ENOMEM;
	}
	w->cache_mask = size - 1;
	for (uint32_t i = 0; i < old_size; i++) {
		if (!old[i].key_len)
			continue;
		uint32_t j = (uint32_t)old[i].hash & w->cache_mask;
		while (w->cache[j].key_len)
			j = (j + 1) & w->cache_mask;
		w->cache[j] = old[i];
	}
	free(old);
	return 0;
}

bool tok_cache_get(struct tok_work *w, const uint8_t *word, size_t n,
		   uint64_t h, struct slm_tokens *out)
{
	if (!w->cache || n == 0 || n > BPE_CACHE_WORD)
		return false;
	struct bpe_cache_slot *sl = cache_find(w, word, n, h);
	if (!sl->key_len)
		return false;
	size_t start = out->n;
	for (uint16_t k = 0; k < sl->n_ids; k++)
		if (slm_tokens_push(out, w->ids.ids[sl->ids_off + k])) {
			out->n = start;
			return false;
		}
	return true;
}

void tok_cache_put(struct tok_work *w, const uint8_t *word, size_t n,
		   uint64_t h, const int32_t *ids, size_t n_ids)
{
	if (n == 0 || n > BPE_CACHE_WORD || n_ids > UINT16_MAX ||
	    w->cache_used >= BPE_CACHE_MAX)
		return;
	if (!w->cache || (w->cache_used + 1) * 2 > w->cache_mask + 1)
		if (cache_grow(w))
			return;
	struct bpe_cache_slot *sl = cache_find(w, word, n, h);
	if (sl->key_len || w->keys.len + n > UINT32_MAX ||
	    w->ids.n + n_ids > UINT32_MAX)
		return;
	uint32_t key_off = (uint32_t)w->keys.len, ids_off = (uint32_t)w->ids.n;
	if (slm_text_append(&w->keys, word, n))
		return;
	for (size_t k = 0; k < n_ids; k++)
		if (slm_tokens_push(&w->ids, ids[k])) {
			w->ids.n = ids_off;
			return;
		}
	sl->hash = h;
	sl->key_off = key_off;
	sl->key_len = (uint16_t)n;
	sl->ids_off = ids_off;
	sl->n_ids = (uint16_t)n_ids;
	w->cache_used++;
}

int tok_bpe_word(const struct slm_vocab *v, struct tok_work *w,
		 const uint8_t *word, size_t n, bool force_heap,
		 struct slm_tokens *out)
{
	if (n == 0)
		return 0;
	if (n > BPE_CACHE_WORD || force_heap)
		return merge_word(v, w, word, n, force_heap, out);
	uint64_t h = tok_hash(word, n);
	if (tok_cache_get(w, word, n, h, out))
		return 0;
	size_t start = out->n;
	int rc = merge_word(v, w, word, n, false, out);
	if (rc == 0)
		tok_cache_put(w, word, n, h, out->ids + start, out->n - start);
	return rc;
}

void tok_work_free(struct tok_work *w)
{
	free(w->sym);
	free(w->heap);
	free(w->enc);
	free(w->cache);
	slm_text_free(&w->keys);
	slm_tokens_free(&w->ids);
}

/* ---- splitting -------------------------------------------------------- */

struct splitter {
	uint32_t *cps;		 /* decoded code points */
	uint32_t *subj_c;	 /* class stand-ins (\p{..} regexes) */
	uint32_t *subj_p;	 /* plain (other regexes) */
	uint32_t *len_a, *len_b; /* piece lengths, in code points */
	size_t n_a, n_b;
};

static int split_one(const struct slm_vocab *v, const struct tok_regex *re,
		     const uint32_t *subj, const uint32_t *in, size_t n_in,
		     uint32_t *outl, size_t *n_out, pcre2_match_data *md,
		     pcre2_match_context **mctx, pcre2_jit_stack **jstack,
		     struct slm_error *err)
{
	size_t no = 0;
	size_t start = 0;
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
	for (size_t k = 0; k < n_in; k++) {
		size_t len = in[k];
		const uint32_t *s = subj + start;
		size_t pos = 0, prev = 0;
		while (pos < len) {
			int rc = pcre2_match(re->code, (PCRE2_SPTR)s, len, pos,
					     PCRE2_NO_UTF_CHECK, md, *mctx);
			if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !*jstack) {
				/* rare: retry with a larger JIT stack */
				*mctx = pcre2_match_context_create(NULL);
				*jstack = pcre2_jit_stack_create(
					32 * 1024, 64 << 20, NULL);
				if (!*mctx || !*jstack)
					return slm_error_set(err, SLM_ENOMEM,
							     "out of memory");
				pcre2_jit_stack_assign(*mctx, NULL, *jstack);
				continue;
			}
			if (rc == PCRE2_ERROR_NOMATCH)
				break;
			if (rc < 0)
				return slm_error_set(
					err, SLM_ETOOBIG,
					"pre-tokenizer regex failed (PCRE2 "
					"error %d) on a piece of %zu "
					"characters",
					rc, len);
			size_t ms = ov[0], me = ov[1];
			if (me == ms) { /* no regex of ours matches empty */
				pos = ms + 1;
				continue;
			}
			if (ms > prev)
				outl[no++] = (uint32_t)(ms - prev);
			outl[no++] = (uint32_t)(me - ms);
			prev = pos = me;
		}
		if (prev < len)
			outl[no++] = (uint32_t)(len - prev);
		start += len;
	}
	(void)v;
	*n_out = no;
	return 0;
}

int tok_bpe_fragment(const struct slm_vocab *v, struct tok_work *w,
		     const char *text, size_t len, struct slm_tokens *out,
		     struct slm_error *err)
{
	if (len == 0)
		return 0;
	const uint8_t *t = (const uint8_t *)text;
	struct splitter sp = {0};
	pcre2_match_data *md = NULL;
	pcre2_match_context *mctx = NULL;
	pcre2_jit_stack *jstack = NULL;
	uint8_t *word = NULL;
	int rc = 0;

	sp.cps = malloc(len * sizeof(uint32_t));
	sp.len_a = malloc((len + 1) * sizeof(uint32_t));
	sp.len_b = malloc((len + 1) * sizeof(uint32_t));
	if (v->any_collapse)
		sp.subj_c = malloc(len * sizeof(uint32_t));
	if (v->any_plain)
		sp.subj_p = malloc(len * sizeof(uint32_t));
	word = malloc(4 * len);
	if (!sp.cps || !sp.len_a || !sp.len_b || !word ||
	    (v->any_collapse && !sp.subj_c) || (v->any_plain && !sp.subj_p))
		goto nomem;

	size_t n_cp = 0;
	for (size_t i = 0; i < len;) {
		uint32_t cp;
		i += tok_lenient_cp(t + i, len - i, &cp);
		sp.cps[n_cp] = cp;
		if (cp < 0x80) {
			if (sp.subj_c)
				sp.subj_c[n_cp] = cp;
			if (sp.subj_p)
				sp.subj_p[n_cp] = cp;
		} else {
			uint8_t cls = classify(cp);
			if (sp.subj_c)
				sp.subj_c[n_cp] = class_standin[cls];
			if (sp.subj_p) {
				if (cls == CLS_SPACE)
					sp.subj_p[n_cp] = 0x0B;
				else if (cp >= 0xD800 && cp <= 0xDFFF)
					sp.subj_p[n_cp] = 0xFFFD;
				else
					sp.subj_p[n_cp] = cp;
			}
		}
		n_cp++;
	}
	sp.len_a[0] = (uint32_t)n_cp;
	sp.n_a = 1;
	for (int r = 0; r < v->n_regex; r++) {
		const struct tok_regex *re = &v->regex[r];
		pcre2_match_data_free(md);
		md = pcre2_match_data_create_from_pattern(re->code, NULL);
		if (!md)
			goto nomem;
		rc = split_one(v, re, re->collapse ? sp.subj_c : sp.subj_p,
			       sp.len_a, sp.n_a, sp.len_b, &sp.n_b, md, &mctx,
			       &jstack, err);
		if (rc)
			goto done;
		uint32_t *tmp = sp.len_a;
		sp.len_a = sp.len_b;
		sp.len_b = tmp;
		sp.n_a = sp.n_b;
	}

	size_t at = 0;
	for (size_t k = 0; k < sp.n_a; k++) {
		size_t wl = 0;
		for (uint32_t j = 0; j < sp.len_a[k]; j++) {
			char enc[4];
			size_t el = slm_utf8_encode(sp.cps[at + j], enc);
			memcpy(word + wl, enc, el);
			wl += el;
		}
		at += sp.len_a[k];
		rc = tok_bpe_word(v, w, word, wl, false, out);
		if (rc)
			goto nomem;
	}
	goto done;
nomem:
	rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
done:
	pcre2_match_data_free(md);
	pcre2_match_context_free(mctx);
	pcre2_jit_stack_free(jstack);
	free(sp.cps);
	free(sp.subj_c);
	free(sp.subj_p);
	free(sp.len_a);
	free(sp.len_b);
	free(word);
	return rc;
}
