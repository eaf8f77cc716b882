#include "cache/kv.h"

#include <stdlib.h>
#include <string.h>

const char *slm_kv_type_name(enum slm_kv_type t)
{
	return t == SLM_KV_F32 ? "f32" : t == SLM_KV_Q8_0 ? "q8_0" : "f16";
}

int slm_kv_type_parse(const char *name, enum slm_kv_type *out)
{
	if (name && !strcmp(name, "f16")) {
		*out = SLM_KV_F16;
		return 0;
	}
	if (name && !strcmp(name, "f32")) {
		*out = SLM_KV_F32;
		return 0;
	}
	if (name && !strcmp(name, "q8_0")) {
		*out = SLM_KV_Q8_0;
		return 0;
	}
	return SLM_EINVAL;
}

/* Sizes of the geometry, checked for overflow; false on overflow. */
static bool geometry(const struct slm_kv_params *p, size_t *head, size_t *layer,
		     size_t *block, size_t *total)
{
	size_t row = slm_kv_row_bytes(p->type, p->head_dim), h, l, b, t;
	if (__builtin_mul_overflow((size_t)p->block_tokens, row, &h) ||
	    __builtin_mul_overflow(h, 2 * (size_t)p->n_head_kv, &l) ||
	    __builtin_mul_overflow(l, (size_t)p->n_layer, &b) ||
	    __builtin_add_overflow(b, (size_t)63, &b))
		return false;
	b &= ~(size_t)63;
	if (__builtin_mul_overflow(b, (size_t)p->n_blocks, &t))
		return false;
	*head = h;
	*layer = l;
	*block = b;
	*total = t;
	return true;
}

size_t slm_kv_pool_bytes(const struct slm_kv_params *p)
{
	size_t h, l, b, t;
	return geometry(p, &h, &l, &b, &t) ? t : 0;
}

int slm_kv_pool_create(const struct slm_kv_params *p, struct slm_kv_pool **out,
		       struct slm_error *err)
{
	*out = NULL;
	if (!p->n_layer || !p->n_head_kv || !p->head_dim || !p->n_blocks ||
	    !p->block_tokens)
		return slm_error_set(err, SLM_EINVAL,
				     "kv pool: a zero size (layers %u, kv "
				     "heads %u, head_dim %u, blocks %u, block "
				     "tokens %u)",
				     p->n_layer, p->n_head_kv, p->head_dim,
				     p->n_blocks, p->block_tokens);
	if (p->block_tokens % SLM_KV_BLOCK_ALIGN)
		return slm_error_set(err, SLM_EINVAL,
				     "kv pool: block_tokens %u is not a "
				     "multiple of %d",
				     p->block_tokens, SLM_KV_BLOCK_ALIGN);
	if (p->type != SLM_KV_F16 && p->type != SLM_KV_F32 &&
	    p->type != SLM_KV_Q8_0)
		return slm_error_set(err, SLM_EINVAL, "kv pool: type %d",
				     (int)p->type);
	if (!slm_kv_row_bytes(p->type, p->head_dim))
		return slm_error_set(err, SLM_EINVAL,
				     "kv pool: a %s cache needs head_dim a "
				     "multiple of %d (the model's is %u)",
				     slm_kv_type_name(p->type),
				     SLM_KV_Q8_0_BLOCK, p->head_dim);
	size_t head, layer, block, total;
	if (!geometry(p, &head, &layer, &block, &total) ||
	    p->n_blocks == SLM_KV_BLOCK_NONE)
		return slm_error_set(err, SLM_EOVERFLOW,
				     "kv pool: %u blocks of this geometry "
				     "overflow",
				     p->n_blocks);
	struct slm_kv_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return slm_error_set(err, SLM_ENOMEM, "kv pool: out of memory");
	pool->p = *p;
	pool->elt = slm_kv_type_size(p->type);
	pool->row_bytes = slm_kv_row_bytes(p->type, p->head_dim);
	pool->head_bytes = head;
	pool->layer_bytes = layer;
	pool->block_bytes = block;
	pool->free_ids = malloc((size_t)p->n_blocks * sizeof(uint32_t));
	pool->refs = calloc(p->n_blocks, sizeof(uint32_t));
	if (!pool->free_ids || !pool->refs) {
		free(pool->free_ids);
		free(pool->refs);
		free(pool);
		return slm_error_set(err, SLM_ENOMEM, "kv pool: out of memory");
	}
	int rc = slm_numa_alloc(total, p->node, 0, &pool->mem, err);
	if (rc) {
		slm_error_prefix(err, "kv pool of %zu bytes: ", total);
		free(pool->free_ids);
		free(pool->refs);
		free(pool);
		return rc;
	}
	pool->data = pool->mem.ptr;
	/* stack: block 0 is handed out first */
	for (uint32_t i = 0; i < p->n_blocks; i++)
		pool->free_ids[i] = p->n_blocks - 1 - i;
	pool->n_free = p->n_blocks;
	*out = pool;
	return 0;
}

void slm_kv_pool_destroy(struct slm_kv_pool *pool)
{
	if (!pool)
		return;
	slm_numa_free(&pool->mem);
	free(pool->free_ids);
	free(pool->refs);
	free(pool);
}

uint32_t slm_kv_blocks_in_bytes(const struct slm_kv_params *p, uint64_t bytes)
{
	struct slm_kv_params one = *p;
	one.n_blocks = 1;
	size_t block = slm_kv_pool_bytes(&one);
	if (!block)
		return 0;
	uint64_t n = bytes / block;
	if (n < 1)
		n = 1;
	if (n >= SLM_KV_BLOCK_NONE)
		n = SLM_KV_BLOCK_NONE - 1;
	return (uint32_t)n;
}

uint32_t slm_kv_block_alloc(struct slm_kv_pool *pool)
{
	if (!pool->n_free)
		return SLM_KV_BLOCK_NONE;
	uint32_t b = pool->free_ids[--pool->n_free];
	SLM_ASSERT(pool->refs[b] == 0);
	pool->refs[b] = 1;
	return b;
}

void slm_kv_block_get(struct slm_kv_pool *pool, uint32_t block)
{
	SLM_ASSERT(block < pool->p.n_blocks);
	SLM_ASSERT(pool->refs[block] > 0);
	pool->refs[block]++;
}

void slm_kv_block_put(struct slm_kv_pool *pool, uint32_t block)
{
	SLM_ASSERT(block < pool->p.n_blocks);
	SLM_ASSERT(pool->refs[block] > 0);
	if (--pool->refs[block])
		return;
	SLM_ASSERT(pool->n_free < pool->p.n_blocks);
	pool->free_ids[pool->n_free++] = block;
}

void slm_kv_block_free(struct slm_kv_pool *pool, uint32_t block)
{
	slm_kv_block_put(pool, block);
}

void slm_kv_block_copy(struct slm_kv_pool *pool, uint32_t dst, uint32_t src,
		       uint32_t n_slots)
{
	const uint32_t nb = pool->p.block_tokens, d = pool->p.head_dim;
	SLM_ASSERT(dst < pool->p.n_blocks && src < pool->p.n_blocks);
	SLM_ASSERT(n_slots <= nb);
	if (dst == src || !n_slots)
		return;
	if (n_slots == nb) {
		memcpy(pool->data + (size_t)dst * pool->block_bytes,
		       pool->data + (size_t)src * pool->block_bytes,
		       pool->block_bytes);
		return;
	}
	for (uint32_t l = 0; l < pool->p.n_layer; l++)
		for (uint32_t h = 0; h < pool->p.n_head_kv; h++) {
			/* V (and Q8_0's K): rows of the first n_slots slots */
			memcpy(slm_kv_v(pool, dst, l, h),
			       slm_kv_v(pool, src, l, h),
			       (size_t)n_slots * pool->row_bytes);
			uint8_t *kd = slm_kv_k(pool, dst, l, h);
			const uint8_t *ks = slm_kv_k(pool, src, l, h);
			if (pool->p.type == SLM_KV_Q8_0) {
				memcpy(kd, ks,
				       (size_t)n_slots * pool->row_bytes);
				continue;
			}
			/* transposed K: the first n_slots of each run */
			for (uint32_t e = 0; e < d; e++)
				memcpy(kd + (size_t)e * nb * pool->elt,
				       ks + (size_t)e * nb * pool->elt,
				       (size_t)n_slots * pool->elt);
		}
}

int slm_kv_seq_init(const struct slm_kv_pool *pool, struct slm_kv_seq *seq,
		    uint32_t max_pos)
{
	memset(seq, 0, sizeof(*seq));
	if (!max_pos)
		return SLM_EINVAL;
	uint32_t cap = slm_kv_blocks_for(pool, max_pos);
	seq->blocks = malloc((size_t)cap * sizeof(uint32_t));
	if (!seq->blocks)
		return SLM_ENOMEM;
	seq->cap = cap;
	seq->max_pos = max_pos;
	return 0;
}

/* Table entries [first, last) that positions [seq->n_pos, n_pos) touch
 * among the blocks the table has now. */
static void write_range(const struct slm_kv_pool *pool,
			const struct slm_kv_seq *seq, uint32_t n_pos,
			uint32_t *first, uint32_t *last)
{
	*first = seq->n_pos / pool->p.block_tokens;
	*last = SLM_MIN(seq->n_blocks, slm_kv_blocks_for(pool, n_pos));
}

uint32_t slm_kv_seq_reserve_need(const struct slm_kv_pool *pool,
				 const struct slm_kv_seq *seq, uint32_t n_pos)
{
	uint32_t need = slm_kv_blocks_for(pool, n_pos), n = 0, first, last;
	if (need > seq->n_blocks)
		n = need - seq->n_blocks;
	write_range(pool, seq, n_pos, &first, &last);
	for (uint32_t i = first; i < last; i++)
		if (pool->refs[seq->blocks[i]] > 1)
			n++;
	return n;
}

int slm_kv_seq_reserve(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
		       uint32_t n_pos)
{
	if (n_pos > seq->max_pos)
		return SLM_ERANGE;
	if (n_pos <= seq->n_pos)
		return 0;
	if (slm_kv_seq_reserve_need(pool, seq, n_pos) > pool->n_free)
		return SLM_EAGAIN;
	const uint32_t nb = pool->p.block_tokens;
	uint32_t first, last;
	write_range(pool, seq, n_pos, &first, &last);
	for (uint32_t i = first; i < last; i++) {
		uint32_t old = seq->blocks[i];
		if (pool->refs[old] <= 1)
			continue;
		/* copy-on-write: the valid slots of a shared block */
		uint32_t b = slm_kv_block_alloc(pool);
		uint32_t valid = seq->n_pos > i * nb
					 ? SLM_MIN(nb, seq->n_pos - i * nb)
					 : 0;
		slm_kv_block_copy(pool, b, old, valid);
		slm_kv_block_put(pool, old);
		seq->blocks[i] = b;
		pool->n_copies++;
	}
	uint32_t need = slm_kv_blocks_for(pool, n_pos);
	while (seq->n_blocks < need)
		seq->blocks[seq->n_blocks++] = slm_kv_block_alloc(pool);
	return 0;
}

int slm_kv_seq_share(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
		     const uint32_t *blocks, uint32_t n_blocks, uint32_t n_pos)
{
	if (seq->n_blocks || seq->n_pos || n_blocks > seq->cap ||
	    n_pos > (uint64_t)n_blocks * pool->p.block_tokens ||
	    n_pos > seq->max_pos)
		return SLM_EINVAL;
	for (uint32_t i = 0; i < n_blocks; i++) {
		slm_kv_block_get(pool, blocks[i]);
		seq->blocks[i] = blocks[i];
	}
	seq->n_blocks = n_blocks;
	seq->n_pos = n_pos;
	return 0;
}

void slm_kv_seq_truncate(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
			 uint32_t n_pos)
{
	SLM_ASSERT(n_pos <= seq->n_pos);
	seq->n_pos = n_pos;
	uint32_t keep = slm_kv_blocks_for(pool, n_pos);
	while (seq->n_blocks > keep)
		slm_kv_block_put(pool, seq->blocks[--seq->n_blocks]);
}

void slm_kv_seq_free(struct slm_kv_pool *pool, struct slm_kv_seq *seq)
{
	if (pool)
		while (seq->n_blocks)
			slm_kv_block_put(pool, seq->blocks[--seq->n_blocks]);
	free(seq->blocks);
	memset(seq, 0, sizeof(*seq));
}
