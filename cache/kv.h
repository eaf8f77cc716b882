/*
 * kv.h: the storage of the paged KV cache: a pool of fixed-size blocks and,
 * per sequence, a block table.
 *
 * A block holds the keys and values of `block_tokens` consecutive
 * positions of one sequence, for every layer and every KV head.  The pool
 * is one region allocated at creation (numa/alloc.h, on the node that
 * computes with it) and never grows; blocks are handed out and taken back
 * by index.  The forward pass (engine/forward.h) reads and writes K and V
 * through (pool, block table, position) and nothing else, so sharing
 * blocks between sequences (refcounts, copy-on-write, the prefix tree,
 * eviction: the serving core's business) extends this module without
 * touching the forward pass.
 *
 * Layout.  Elements are of the pool's type (F16 or F32).  With N =
 * block_tokens, d = head_dim, a block is n_layer slices of layer_bytes,
 * and a slice is
 *
 *     K  [n_head_kv][d][N]   keys, transposed: for one head, element i of
 *                            every position of the block is one run of N
 *     V  [n_head_kv][N][d]   values: one row of d per position
 *
 * Attention multiplies a query with the keys of 16 positions at a time,
 * which the transposed K makes one vector load per element, without a
 * horizontal sum; it weights and adds whole value rows, which V's rows
 * serve.  A layer's slice is contiguous (copy-on-write copies slices or
 * whole blocks); block i starts at data + i * block_bytes, 64-byte aligned.
 *
 * Positions.  Position p of a sequence lives in block table[p / N], slot
 * p % N.  `n_pos` counts the positions whose K/V are valid: [0, n_pos).
 * The forward pass appends (a token at position p requires p == n_pos and
 * makes n_pos = p + 1); going back is slm_kv_seq_truncate.  The table must
 * cover a position before the forward pass writes it
 * (slm_kv_seq_reserve).
 *
 * Threads: the pool's allocator and a sequence's table are used by one
 * thread at a time (the scheduler of a worker group); the forward pass's
 * threads only read tables and write the slots of the positions they
 * compute.
 */
#ifndef SLM_CACHE_KV_H
#define SLM_CACHE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "numa/alloc.h"

enum slm_kv_type {
	SLM_KV_F16 = 0, /* IEEE half: llama.cpp's default */
	SLM_KV_F32 = 1,
};

/* "f16", "f32". */
const char *slm_kv_type_name(enum slm_kv_type t);

/* Parse "f16" / "f32" (cache.kv_type); 0 or SLM_EINVAL. */
int slm_kv_type_parse(const char *name, enum slm_kv_type *out);

/* Bytes of one element. */
static inline size_t slm_kv_type_size(enum slm_kv_type t)
{
	return t == SLM_KV_F32 ? 4 : 2;
}

#define SLM_KV_BLOCK_ALIGN 16 /* block_tokens must be a multiple */
#define SLM_KV_BLOCK_NONE UINT32_MAX

struct slm_kv_params {
	uint32_t n_layer, n_head_kv, head_dim; /* of the model */
	uint32_t block_tokens; /* N: a multiple of 16 (16 is usual) */
	uint32_t n_blocks;     /* blocks in the pool */
	enum slm_kv_type type;
	int node; /* NUMA node (SLM_NUMA_LOCAL, SLM_NUMA_ANY, or a node) */
};

/*
 * The pool.  Every field is fixed at creation except the free list, which
 * belongs to the allocator (slm_kv_block_alloc / _free); the forward pass
 * reads the geometry and data directly.
 */
struct slm_kv_pool {
	struct slm_kv_params p;
	size_t elt;	    /* bytes per element */
	size_t head_bytes;  /* one head's K (or V) in a block: N * d * elt */
	size_t layer_bytes; /* K and V of every head: 2 * n_head_kv *
			       head_bytes */
	size_t block_bytes; /* n_layer * layer_bytes, 64-byte multiple */
	uint8_t *data;	    /* n_blocks * block_bytes */
	struct slm_numa_mem mem;
	/* allocator: free block ids, a stack */
	uint32_t *free_ids;
	uint32_t n_free;
};

/*
 * Allocate a pool (zeroed memory).  Errors: SLM_EINVAL (a zero size,
 * block_tokens not a multiple of 16), SLM_EOVERFLOW (sizes), SLM_ENOMEM.
 */
int slm_kv_pool_create(const struct slm_kv_params *p, struct slm_kv_pool **out,
		       struct slm_error *err) SLM_MUST_CHECK;
void slm_kv_pool_destroy(struct slm_kv_pool *pool);

/* Blocks that hold n_tokens positions: ceil(n_tokens / N). */
static inline uint32_t slm_kv_blocks_for(const struct slm_kv_pool *pool,
					 uint64_t n_tokens)
{
	return (uint32_t)((n_tokens + pool->p.block_tokens - 1) /
			  pool->p.block_tokens);
}

/* Bytes of a pool of n_blocks for the geometry p (0 on overflow). */
size_t slm_kv_pool_bytes(const struct slm_kv_params *p);

/* A free block's id, or SLM_KV_BLOCK_NONE when the pool is exhausted. */
uint32_t slm_kv_block_alloc(struct slm_kv_pool *pool);

/* Give a block back (an id from slm_kv_block_alloc, not yet freed). */
void slm_kv_block_free(struct slm_kv_pool *pool, uint32_t block);

/* Blocks free now. */
static inline uint32_t slm_kv_pool_n_free(const struct slm_kv_pool *pool)
{
	return pool->n_free;
}

/* K of layer l, KV head h in block b: [d][N] elements. */
static inline void *slm_kv_k(const struct slm_kv_pool *pool, uint32_t b,
			     uint32_t l, uint32_t h)
{
	return pool->data + (size_t)b * pool->block_bytes +
	       (size_t)l * pool->layer_bytes + (size_t)h * pool->head_bytes;
}

/* V of layer l, KV head h in block b: [N][d] elements. */
static inline void *slm_kv_v(const struct slm_kv_pool *pool, uint32_t b,
			     uint32_t l, uint32_t h)
{
	return pool->data + (size_t)b * pool->block_bytes +
	       (size_t)l * pool->layer_bytes +
	       (size_t)(pool->p.n_head_kv + h) * pool->head_bytes;
}

/*
 * A sequence's block table.  Zero-initialised it is empty; the table's
 * array is allocated by slm_kv_seq_init for at most max_pos positions, so
 * the hot path never allocates.  Blocks are owned by the sequence and
 * returned to the pool by truncate / free.
 */
struct slm_kv_seq {
	uint32_t *blocks; /* [cap] block ids; the first n_blocks are valid */
	uint32_t n_blocks;
	uint32_t cap;	  /* entries of blocks[]: ceil(max_pos / N) */
	uint32_t n_pos;	  /* positions [0, n_pos) hold valid K/V */
	uint32_t max_pos; /* positions the table can ever cover */
};

/* Make an empty table for up to max_pos positions.  0 or SLM_ENOMEM,
 * SLM_EINVAL (max_pos 0). */
int slm_kv_seq_init(const struct slm_kv_pool *pool, struct slm_kv_seq *seq,
		    uint32_t max_pos) SLM_MUST_CHECK;

/*
 * Allocate blocks until the table covers positions [0, n_pos).  Errors:
 * SLM_ERANGE (n_pos > max_pos), SLM_EAGAIN (the pool has too few free
 * blocks: nothing is allocated then).
 */
int slm_kv_seq_reserve(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
		       uint32_t n_pos) SLM_MUST_CHECK;

/* Positions the table covers now: n_blocks * N. */
static inline uint32_t slm_kv_seq_capacity(const struct slm_kv_pool *pool,
					   const struct slm_kv_seq *seq)
{
	return seq->n_blocks * pool->p.block_tokens;
}

/*
 * Forget positions [n_pos, ...) (n_pos <= the current n_pos) and give
 * back the blocks no longer needed to hold [0, n_pos).
 */
void slm_kv_seq_truncate(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
			 uint32_t n_pos);

/* Return every block and free the table; the struct is zeroed. */
void slm_kv_seq_free(struct slm_kv_pool *pool, struct slm_kv_seq *seq);

#endif
