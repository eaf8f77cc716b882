#include "cache/kv.h"

#include <stdlib.h>
#include <string.h>

const char *slm_kv_type_name(enum slm_kv_type t)
{
	return t == SLM_KV_F32 ? "f32" : "f16";
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
	return SLM_EINVAL;
}

/* Sizes of the geometry, checked for overflow; false on overflow. */
static bool geometry(const struct slm_kv_params *p, size_t *head, size_t *layer,
		     size_t *block, size_t *total)
{
	size_t elt = slm_kv_type_size(p->type), h, l, b, t;
	if (__builtin_mul_overflow((size_t)p->block_tokens, (size_t)p->head_dim,
				   &h) ||
	    __builtin_mul_overflow(h, elt, &h) ||
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
	if (p->type != SLM_KV_F16 && p->type != SLM_KV_F32)
		return slm_error_set(err, SLM_EINVAL, "kv pool: type %d",
				     (int)p->type);
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
	pool->head_bytes = head;
	pool->layer_bytes = layer;
	pool->block_bytes = block;
	pool->free_ids = malloc((size_t)p->n_blocks * sizeof(uint32_t));
	if (!pool->free_ids) {
		free(pool);
		return slm_error_set(err, SLM_ENOMEM, "kv pool: out of memory");
	}
	int rc = slm_numa_alloc(total, p->node, 0, &pool->mem, err);
	if (rc) {
		slm_error_prefix(err, "kv pool of %zu bytes: ", total);
		free(pool->free_ids);
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
	free(pool);
}

uint32_t slm_kv_block_alloc(struct slm_kv_pool *pool)
{
	if (!pool->n_free)
		return SLM_KV_BLOCK_NONE;
	return pool->free_ids[--pool->n_free];
}

void slm_kv_block_free(struct slm_kv_pool *pool, uint32_t block)
{
	SLM_ASSERT(block < pool->p.n_blocks);
	SLM_ASSERT(pool->n_free < pool->p.n_blocks);
	pool->free_ids[pool->n_free++] = block;
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

int slm_kv_seq_reserve(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
		       uint32_t n_pos)
{
	if (n_pos > seq->max_pos)
		return SLM_ERANGE;
	uint32_t need = slm_kv_blocks_for(pool, n_pos);
	if (need <= seq->n_blocks)
		return 0;
	if (need - seq->n_blocks > pool->n_free)
		return SLM_EAGAIN;
	while (seq->n_blocks < need)
		seq->blocks[seq->n_blocks++] = slm_kv_block_alloc(pool);
	return 0;
}

void slm_kv_seq_truncate(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
			 uint32_t n_pos)
{
	SLM_ASSERT(n_pos <= seq->n_pos);
	seq->n_pos = n_pos;
	uint32_t keep = slm_kv_blocks_for(pool, n_pos);
	while (seq->n_blocks > keep)
		slm_kv_block_free(pool, seq->blocks[--seq->n_blocks]);
}

void slm_kv_seq_free(struct slm_kv_pool *pool, struct slm_kv_seq *seq)
{
	if (pool)
		while (seq->n_blocks)
			slm_kv_block_free(pool, seq->blocks[--seq->n_blocks]);
	free(seq->blocks);
	memset(seq, 0, sizeof(*seq));
}
