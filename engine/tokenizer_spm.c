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

int tok_spm_fragment(const struct slm_vocab *v, const char *text, size_t len,
		     struct slm_tokens *out, struct slm_error *err)
{
	static const uint8_t utf8_len[16] = {1, 1, 1, 1, 1, 1, 1, 1,
					     1, 1, 1, 1, 2, 2, 3, 4};
	if (len == 0)
		return 0;
	struct spm_sym *sym = malloc(len * sizeof(*sym));
	struct spm_heap h = {0};
	int rc = 0;
	if (!sym)
		goto nomem;
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
	for (int32_t i = 1; i < n_sym; i++)
		if (try_bigram(v, text, sym, i - 1, i, &h))
			goto nomem;
	while (h.n) {
		struct spm_bigram b = heap_pop(&h);
		struct spm_sym *l = &sym[b.left], *r = &sym[b.right];
		if (l->n == 0 || r->n == 0 || l->n + r->n != b.size)
			continue;
		l->n += r->n;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			sym[r->next].prev = b.left;
		if (try_bigram(v, text, sym, l->prev, b.left, &h) ||
		    try_bigram(v, text, sym, b.left, l->next, &h))
			goto nomem;
	}
	/* Merged symbols are tokens; a symbol that is none is a character
	 * that never merged (llama.cpp's reverse-merge path cannot apply
	 * to it), so it falls back to byte tokens. */
	for (int32_t i = 0; i != -1; i = sym[i].next) {
		int32_t id = slm_vocab_find(v, text + sym[i].off, sym[i].n);
		if (id >= 0) {
			if (slm_tokens_push(out, id))
				goto nomem;
			continue;
		}
		for (uint32_t k = 0; k < sym[i].n; k++) {
			int32_t bt =
				byte_token(v, (uint8_t)text[sym[i].off + k]);
			if (bt >= 0 && slm_tokens_push(out, bt))
				goto nomem;
		}
	}
	goto done;
nomem:
	rc = slm_error_set(err, SLM_ENOMEM, "out of memory");
done:
	free(sym);
	free(h.a);
	return rc;
}
