/*
 * kv.h: the storage of the paged KV cache: a pool of fixed-size,
 * refcounted blocks and, per sequence, a block table.
 *
 * A block holds the keys and values of `block_tokens` consecutive
 * positions of one sequence, for every layer and every KV head.  The pool
 * is one region allocated at creation (numa/alloc.h, on the node that
 * computes with it) and never grows; blocks are handed out and taken back
 * by index.  The forward pass (engine/forward.h) reads and writes K and V
 * through (pool, block table, position) and nothing else.
 *
 * Sharing.  Every block has a reference count: slm_kv_block_alloc hands a
 * block out with one reference, slm_kv_block_get adds one, and
 * slm_kv_block_put drops one and returns the block to the free list at
 * zero.  A sequence holds one reference on each block of its table; the
 * prefix cache (cache/prefix.h) holds one on each block it indexes, so a
 * cached prompt prefix is shared by every sequence that starts with it.
 * A block with more than one reference is read-only: before the forward
 * pass writes a position into a shared block (a partly filled last block
 * that two sequences share after a fork), slm_kv_seq_reserve copies it to
 * a block of the sequence's own (copy-on-write).  Blocks the prefix cache
 * indexes are always full, so sequences only ever append past them.
 *
 * Layout.  Elements are of the pool's type.  With N = block_tokens, d =
 * head_dim, a block is n_layer slices of layer_bytes, and a slice is, for
 * F16 and F32:
 *
 *     K  [n_head_kv][d][N]   keys, transposed: for one head, element i of
 *                            every position of the block is one run of N
 *     V  [n_head_kv][N][d]   values: one row of d per position
 *
 * and for Q8_0 (KV quantization, 34 bytes per 32 elements: 8.5 bits per
 * element against F16's 16; needs d % 32 == 0):
 *
 *     K  [n_head_kv][N][d/32] block_q8_0   one quantized row per position
 *     V  [n_head_kv][N][d/32] block_q8_0
 *
 * Attention multiplies a query with the keys of 16 positions at a time,
 * which the transposed K makes one vector load per element, without a
 * horizontal sum; it weights and adds whole value rows, which V's rows
 * serve.  A quantized row must be quantized whole, hence Q8_0's K rows.
 * A layer's slice is contiguous; block i starts at data + i *
 * block_bytes, 64-byte aligned.
 *
 * Positions.  Position p of a sequence lives in block table[p / N], slot
 * p % N.  `n_pos` counts the positions whose K/V are valid: [0, n_pos).
 * The forward pass appends (a token at position p requires p == n_pos and
 * makes n_pos = p + 1); going back is slm_kv_seq_truncate.  The table must
 * cover a position before the forward pass writes it, with the blocks
 * from n_pos on owned by the sequence alone (slm_kv_seq_reserve does
 * both).
 *
 * Threads: the pool's allocator, the reference counts and a sequence's
 * table are used by one thread at a time (the scheduler of a worker
 * group); the forward pass's threads only read tables and write the slots
 * of the positions they compute.
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
	SLM_KV_Q8_0 = 2, /* blocks of 32: an F16 scale and 32 int8 */
	SLM_KV_TYPE__COUNT
};

/* "f16", "f32", "q8_0". */
const char *slm_kv_type_name(enum slm_kv_type t);

/* Parse "f16" / "f32" / "q8_0" (cache.kv_type); 0 or SLM_EINVAL. */
int slm_kv_type_parse(const char *name, enum slm_kv_type *out);

/* Bytes of one element: 4 or 2; 0 for Q8_0 (block-quantized: see
 * slm_kv_row_bytes). */
static inline size_t slm_kv_type_size(enum slm_kv_type t)
{
	return t == SLM_KV_F32 ? 4 : t == SLM_KV_F16 ? 2 : 0;
}

#define SLM_KV_Q8_0_BLOCK 32 /* elements per Q8_0 block */
#define SLM_KV_Q8_0_BYTES 34 /* bytes per Q8_0 block */

/* Bytes of one position's row of d elements (0 when d does not suit the
 * type: Q8_0 needs d % 32 == 0). */
static inline size_t slm_kv_row_bytes(enum slm_kv_type t, uint32_t d)
{
	if (t == SLM_KV_Q8_0)
		return d % SLM_KV_Q8_0_BLOCK ? 0
					     : (size_t)d / SLM_KV_Q8_0_BLOCK *
						       SLM_KV_Q8_0_BYTES;
	return (size_t)d * slm_kv_type_size(t);
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
 * The pool.  Every field is fixed at creation except the free list and
 * the reference counts, which belong to the allocator (the scheduler's
 * thread); the forward pass reads the geometry and data directly.
 */
struct slm_kv_pool {
	struct slm_kv_params p;
	size_t elt;	    /* bytes per element (0 for Q8_0) */
	size_t row_bytes;   /* one position's d elements of one head */
	size_t head_bytes;  /* one head's K (or V) in a block: N * row_bytes */
	size_t layer_bytes; /* K and V of every head: 2 * n_head_kv *
			       head_bytes */
	size_t block_bytes; /* n_layer * layer_bytes, 64-byte multiple */
	uint8_t *data;	    /* n_blocks * block_bytes */
	struct slm_numa_mem mem;
	/* allocator: free block ids, a stack */
	uint32_t *free_ids;
	uint32_t n_free;
	uint32_t *refs;	   /* [n_blocks] references; 0 = free */
	uint64_t n_copies; /* copy-on-write copies made, for the counters */
};

/*
 * Allocate a pool (zeroed memory).  Errors: SLM_EINVAL (a zero size,
 * block_tokens not a multiple of 16, Q8_0 with head_dim not a multiple of
 * 32), SLM_EOVERFLOW (sizes), SLM_ENOMEM.
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

/* Blocks of `bytes` bytes of pool of geometry p (at least 1; 0 on a
 * geometry of zero size). */
uint32_t slm_kv_blocks_in_bytes(const struct slm_kv_params *p, uint64_t bytes);

/* A free block's id with one reference, or SLM_KV_BLOCK_NONE when the
 * pool is exhausted.  Its contents are whatever they were. */
uint32_t slm_kv_block_alloc(struct slm_kv_pool *pool);

/* Add a reference to a block that has at least one. */
void slm_kv_block_get(struct slm_kv_pool *pool, uint32_t block);

/* Drop a reference; the block is free again when none is left. */
void slm_kv_block_put(struct slm_kv_pool *pool, uint32_t block);

/* The same as slm_kv_block_put (the pool before refcounts had only
 * this). */
void slm_kv_block_free(struct slm_kv_pool *pool, uint32_t block);

/* References held on a block (0: free). */
static inline uint32_t slm_kv_block_refs(const struct slm_kv_pool *pool,
					 uint32_t block)
{
	return pool->refs[block];
}

/* Copy the K and V of slots [0, n_slots) of block src into block dst,
 * every layer and head. */
void slm_kv_block_copy(struct slm_kv_pool *pool, uint32_t dst, uint32_t src,
		       uint32_t n_slots);

/* Blocks free now. */
static inline uint32_t slm_kv_pool_n_free(const struct slm_kv_pool *pool)
{
	return pool->n_free;
}

/* K of layer l, KV head h in block b: [d][N] elements (Q8_0: [N] rows
 * of d/32 blocks). */
static inline void *slm_kv_k(const struct slm_kv_pool *pool, uint32_t b,
			     uint32_t l, uint32_t h)
{
	return pool->data + (size_t)b * pool->block_bytes +
	       (size_t)l * pool->layer_bytes + (size_t)h * pool->head_bytes;
}

/* V of layer l, KV head h in block b: [N][d] elements (Q8_0: [N] rows
 * of d/32 blocks). */
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
 * the hot path never allocates.  The sequence holds one reference on each
 * block of its table, dropped by truncate / free.
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
 * Make the table ready for the forward pass to write positions
 * [seq->n_pos, n_pos): allocate blocks until it covers [0, n_pos), and
 * copy each block of that range that is shared (references > 1) into a
 * block of its own (copy-on-write; only the valid slots are copied).
 * Errors: SLM_ERANGE (n_pos > max_pos), SLM_EAGAIN (the pool has too few
 * free blocks: nothing changes then).
 */
int slm_kv_seq_reserve(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
		       uint32_t n_pos) SLM_MUST_CHECK;

/* Free blocks slm_kv_seq_reserve(pool, seq, n_pos) would take. */
uint32_t slm_kv_seq_reserve_need(const struct slm_kv_pool *pool,
				 const struct slm_kv_seq *seq, uint32_t n_pos);

/*
 * Start an empty sequence (n_blocks 0) on shared blocks: its table gets
 * blocks[0..n_blocks) with a reference each, and n_pos positions
 * (n_pos <= n_blocks * N, <= max_pos) are valid.  SLM_EINVAL when seq is
 * not empty or the sizes do not fit.
 */
int slm_kv_seq_share(struct slm_kv_pool *pool, struct slm_kv_seq *seq,
		     const uint32_t *blocks, uint32_t n_blocks,
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
