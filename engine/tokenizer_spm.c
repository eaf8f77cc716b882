/*
 * tokenizer_spm.c: the SentencePiece BPE merge loop, as llama.cpp runs it.
 *
 * The text (spaces already U+2581, prefix added) is cut into UTF-8
 * characters by their lead byte alone (a stray byte is a character of its
 * own; a sequence cut by the end of the text is shortened).  Every pair of
 * neighbours whose concatenation is a token is a candidate; the candidate
 * whose token has the highest score merges first, ties going to the
 * leftmost.  Candidates made stale by an earlier merge are skipped when
 * they come up.  What remains: tokens, or characters that are no token,
 * which become one byte token `<0xNN>` per byte.
 *
 * llama.cpp merges a whole fragment at once.  When the vocabulary allows
 * (slm_vocab.spm_split) the text is cut before each word's U+2581 first:
 * no token spans such a cut, so each word merges alone to the same
 * result, a short word by rescanning its pairs, a long one with the heap,
 * and repeated words come from the call's cache.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer_int.h"

struct spm_sym {
	uint32_t off, n; /* n == 0: merged into its left neighbour */
	int32_t prev, next;
};

struct spm_bigram {
	float score;
	int32_t left, right;
	uint32_t size;
};

struct spm_heap {
	struct spm_bigram *a;
	size_t n, cap;
};

/* a comes out before b: higher score, then lower left */
static inline bool bigram_before(const struct spm_bigram *a,
				 const struct spm_bigram *b)
{
	return a->score > b->score ||
	       (a->score == b->score && a->left < b->left);
}

static int heap_push(struct spm_heap *h, struct spm_bigram x)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 64;
		struct spm_bigram *a = realloc(h->a, cap * sizeof(*a));
		if (!a)
			return SLM_ENOMEM;
		h->a = a;
		h->cap = cap;
	}
	size_t i = h->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (!bigram_before(&x, &h->a[p]))
			break;
		h->a[i] = h->a[p];
		i = p;
	}
	h->a[i] = x;
	return 0;
}

static struct spm_bigram heap_pop(struct spm_heap *h)
{
	struct spm_bigram top = h->a[0], x = h->a[--h->n];
	size_t i = 0;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= h->n)
			break;
		if (c + 1 < h->n && bigram_before(&h->a[c + 1], &h->a[c]))
			c++;
		if (!bigram_before(&h->a[c], &x))
			break;
		h->a[i] = h->a[c];
		i = c;
	}
	if (h->n)
		h->a[i] = x;
	return top;
}

static int try_bigram(const struct slm_vocab *v, const char *text,
		      const struct spm_sym *sym, int32_t left, int32_t right,
		      struct spm_heap *h)
{
	if (left < 0 || right < 0)
		return 0;
	uint32_t size = sym[left].n + sym[right].n;
	int32_t id = slm_vocab_find(v, text + sym[left].off, size);
	if (id < 0)
		return 0;
	struct spm_bigram b = {v->score[id], left, right, size};
	return heap_push(h, b);
}

/* The token for a byte the vocabulary has no piece for: <0xNN>, else the
 * byte as a one-byte token (llama.cpp), else unk (llama.cpp aborts). */
static int32_t byte_token(const struct slm_vocab *v, uint8_t b)
{
	static const char hex[] = "0123456789ABCDEF";
	char buf[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
	int32_t id = slm_vocab_find(v, buf, 6);
	if (id < 0)
		id = v->tok_single[b];
	if (id < 0)
		id = v->unk;
	return id;
}

static const uint8_t utf8_len[16] = {1, 1, 1, 1, 1, 1, 1, 1,
				     1, 1, 1, 1, 2, 2, 3, 4};

/* Split text into SPM characters (by lead byte; clamped at the end). */
static int32_t spm_symbols(const char *text, size_t len, struct spm_sym *sym)
{
	int32_t n_sym = 0;
	for (size_t off = 0; off < len;) {
		size_t n = utf8_len[(uint8_t)text[off] >> 4];
		if (n > len - off)
			n = len - off;
		sym[n_sym].off = (uint32_t)off;
		sym[n_sym].n = (uint32_t)n;
		sym[n_sym].prev = n_sym - 1;
		off += n;
		sym[n_sym].next = off == len ? -1 : n_sym + 1;
		n_sym++;
	}
	return n_sym;
}

/* The tokens of the symbols left after merging. */
static int spm_emit(const struct slm_vocab *v, const char *text,
		    const struct spm_sym *sym, struct slm_tokens *out)
{
	/* Merged symbols are tokens; a symbol that is none is a character
	 * that never merged (llama.cpp's reverse-merge path cannot apply
	 * to it), so it falls back to byte tokens. */
	for (int32_t i = 0; i != -1; i = sym[i].next) {
		int32_t id = slm_vocab_find(v, text + sym[i].off, sym[i].n);
		if (id >= 0) {
			if (slm_tokens_push(out, id))
				return SLM_ENOMEM;
			continue;
		}
		for (uint32_t k = 0; k < sym[i].n; k++) {
			int32_t bt =
				byte_token(v, (uint8_t)text[sym[i].off + k]);
			if (bt >= 0 && slm_tokens_push(out, bt))
				return SLM_ENOMEM;
		}
	}
	return 0;
}

static int merge_heap(const struct slm_vocab *v, const char *text,
		      struct spm_sym *sym, int32_t n_sym)
{
	struct spm_heap h = {0};
	int rc = 0;
	for (int32_t i = 1; i < n_sym && !rc; i++)
		rc = try_bigram(v, text, sym, i - 1, i, &h);
	while (h.n && !rc) {
		struct spm_bigram b = heap_pop(&h);
		struct spm_sym *l = &sym[b.left], *r = &sym[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			sym[r->next].prev = b.left;
		rc = try_bigram(v, text, sym, l->prev, b.left, &h);
		if (!rc)
			rc = try_bigram(v, text, sym, b.left, l->next, &h);
	}
	free(h.a);
	return rc;
}

#define SPM_SCAN_MAX 24

/* Score of merging symbol i with its right neighbour: false if none. */
static bool pair_score(const struct slm_vocab *v, const char *text,
		       const struct spm_sym *sym, int32_t i, float *score)
{
	int32_t r = sym[i].next;
	if (r < 0)
		return false;
	int32_t id = slm_vocab_find(v, text + sym[i].off, sym[i].n + sym[r].n);
	if (id < 0)
		return false;
	*score = v->score[id];
	return true;
}

/* Short pieces: rescan the pairs for the best (same order as the heap:
 * highest score, then leftmost). */
static void merge_scan(const struct slm_vocab *v, const char *text,
		       struct spm_sym *sym, int32_t n_sym)
{
	float score[SPM_SCAN_MAX];
	bool ok[SPM_SCAN_MAX];
	if (n_sym < 1 || n_sym > SPM_SCAN_MAX)
		return;
	for (int32_t i = 0; i < n_sym; i++)
		ok[i] = pair_score(v, text, sym, i, &score[i]);
	for (;;) {
		int32_t best = -1;
		for (int32_t i = 0; i != -1; i = sym[i].next)
			if (ok[i] && (best < 0 || score[i] > score[best]))
				best = i;
		if (best < 0)
			return;
		int32_t r = sym[best].next;
		sym[best].n += sym[r].n;
		sym[r].n = 0;
		sym[best].next = sym[r].next;
		if (sym[r].next >= 0)
			sym[sym[r].next].prev = best;
		ok[best] = pair_score(v, text, sym, best, &score[best]);
		int32_t p = sym[best].prev;
		if (p >= 0)
			ok[p] = pair_score(v, text, sym, p, &score[p]);
	}
}

/* Merge text as one piece; scan says whether short pieces may rescan. */
static int merge_piece(const struct slm_vocab *v, const char *text, size_t len,
		       struct spm_sym *sym, bool scan, struct slm_tokens *out)
{
	if (len == 0)
		return 0;
	int32_t n_sym = spm_symbols(text, len, sym);
	if (scan && n_sym <= SPM_SCAN_MAX)
		merge_scan(v, text, sym, n_sym);
	else if (merge_heap(v, text, sym, n_sym))
		return SLM_ENOMEM;
	return spm_emit(v, text, sym, out);
}

int tok_spm_merge(const struct slm_vocab *v, const char *text, size_t len,
		  struct slm_tokens *out)
{
	if (len == 0)
		return 0;
	struct spm_sym *sym = malloc(len * sizeof(*sym));
	if (!sym)
		return SLM_ENOMEM;
	int rc = merge_piece(v, text, len, sym, false, out);
	free(sym);
	return rc;
}

static bool is_u2581(const char *p, size_t n)
{
	return n == 3 && (uint8_t)p[0] == 0xE2 && (uint8_t)p[1] == 0x96 &&
	       (uint8_t)p[2] == 0x81;
}

int tok_spm_fragment(const struct slm_vocab *v, struct tok_work *w,
		     const char *text, size_t len, struct slm_tokens *out,
		     struct slm_error *err)
{
	if (len == 0)
		return 0;
	struct spm_sym *sym = malloc(len * sizeof(*sym));
	if (!sym)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	int rc = 0;
	if (!v->spm_split) {
		rc = merge_piece(v, text, len, sym, false, out);
		goto done;
	}
	/* pieces start at a U+2581 character that follows another one */
	size_t start = 0;
	bool prev_space = false;
	for (size_t off = 0; off <= len && !rc;) {
		size_t n = 0;
		bool space = false;
		if (off < len) {
			n = utf8_len[(uint8_t)text[off] >> 4];
			if (n > len - off)
				n = len - off;
			space = is_u2581(text + off, n);
		}
		if (off == len || (space && !prev_space && off > start)) {
			const char *piece = text + start;
			size_t pl = off - start;
			uint64_t h = tok_hash(piece, pl);
			if (!tok_cache_get(w, (const uint8_t *)piece, pl, h,
					   out)) {
				size_t first = out->n;
				rc = merge_piece(v, piece, pl, sym, true, out);
				if (!rc)
					tok_cache_put(w, (const uint8_t *)piece,
						      pl, h, out->ids + first,
						      out->n - first);
			}
			start = off;
		}
		if (off == len)
			break;
		prev_space = space;
		off += n;
	}
	if (rc)
		rc = slm_error_set(err, rc, "out of memory");
done:
	free(sym);
	return rc;
}
