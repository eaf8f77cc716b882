/*
 * prefix.h: the prompt-prefix cache of one worker group and one model: a
 * radix tree over token ids, at the granularity of KV blocks.
 *
 * Every node below a root stands for one KV block (cache/kv.h): the
 * token ids (block_tokens, or fewer in a tail) it holds the keys and
 * values of, and the block
 * itself, on which the tree holds one reference.  The path from a root to
 * a node spells a prompt prefix; the block of the node at depth i holds
 * positions [i N, (i + 1) N) of any sequence that starts with that
 * prefix (K and V depend on the tokens before them and on the position,
 * both fixed by the path).  So a new request walks the tree along its
 * prompt, takes the blocks of the longest matching path (a reference
 * each: slm_kv_seq_share), and computes only the rest.  After a prefill,
 * the sequence's blocks are inserted; blocks the tree already holds for
 * the same tokens are kept as they are.  The last block of a prompt is
 * usually partly filled: it goes in as a tail node (a leaf holding fewer
 * than block_tokens tokens), so the same prompt again recomputes one
 * token, not up to a block.  A block in the tree is never written again:
 * the tree's reference makes it shared, and whoever appends to a shared
 * block copies it first (copy-on-write, cache/kv.h).
 *
 * Eviction: when the pool runs low, the scheduler asks for blocks back;
 * the tree drops least recently used leaves whose block nobody else
 * references (references == 1: only the tree's), parents after their
 * children, until enough blocks are free.  A block some sequence uses is
 * never evicted (its reference keeps it alive even if its node goes).
 *
 * Namespaces: with namespaces on, each namespace (a string from the
 * request, e.g. a tenant) has its own root, so requests of different
 * namespaces never share a block; "" (or NULL) is the shared namespace.
 * With namespaces off, every request uses the shared root.
 *
 * Threads: one thread at a time (the group's scheduler, which also owns
 * the pool), except slm_prefix_peek, which takes the tree's lock and may
 * run on any thread while the owner works (the owner's changes to the
 * tree take the same lock; they are short).
 */
#ifndef SLM_CACHE_PREFIX_H
#define SLM_CACHE_PREFIX_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/kv.h"
#include "common/err.h"

struct slm_prefix;

/* The counters.  Token counts are of the prompts looked up. */
struct slm_prefix_stats {
	uint64_t lookups;     /* slm_prefix_match calls */
	uint64_t hit_tokens;  /* prompt tokens found in the cache */
	uint64_t miss_tokens; /* prompt tokens not found */
	uint64_t inserts;     /* blocks added to the tree */
	uint64_t evictions;   /* blocks dropped from the tree under pressure */
	uint64_t flushes;     /* blocks dropped by slm_prefix_flush */
	uint32_t namespaces;  /* roots with at least one block */
	uint32_t blocks_total;
	uint32_t blocks_free;	/* in the pool's free list */
	uint32_t blocks_cached; /* indexed by the tree */
	uint32_t blocks_in_use; /* referenced by a sequence (cached or not) */
};

/*
 * A tree over pool (not owned; it must outlive the tree).  namespaces:
 * honour the namespace argument (else it is ignored).  Room for one node
 * per block of the pool is allocated now.  NULL when out of memory.
 */
struct slm_prefix *slm_prefix_create(struct slm_kv_pool *pool, bool namespaces);

/* Drop every node (and the tree's references) and free the tree. */
void slm_prefix_destroy(struct slm_prefix *t);

/*
 * The longest cached prefix of ids[0..n_ids) in namespace ns: returns its
 * length in tokens and writes the ids of the blocks holding it to
 * blocks[] (ceil(tokens / N) of them; room for max).  Marks the path as
 * used (LRU) and counts a lookup with its hit and miss tokens.  Takes no
 * reference: take them (slm_kv_seq_share) before anything else may
 * evict.
 */
uint32_t slm_prefix_match(struct slm_prefix *t, const char *ns,
			  const int32_t *ids, uint32_t n_ids, uint32_t *blocks,
			  uint32_t max);

/* Tokens of ids the tree holds, as slm_prefix_match would find, without
 * marking or counting anything (for dispatch; any thread). */
uint32_t slm_prefix_peek(struct slm_prefix *t, const char *ns,
			 const int32_t *ids, uint32_t n_ids);

/*
 * Index a sequence: ids[0..n_ids) are its first n_ids tokens and blocks[]
 * its block table (positions [0, n_ids) valid).  Its full blocks, and the
 * partly filled last one as a tail, are inserted where the tree lacks
 * them, with a reference each.  Returns the blocks added.
 */
uint32_t slm_prefix_insert(struct slm_prefix *t, const char *ns,
			   const int32_t *ids, uint32_t n_ids,
			   const uint32_t *blocks);

/*
 * Evict least recently used blocks that only the tree references until
 * the pool has want_free free blocks or nothing more can go.  Returns the
 * blocks freed.
 */
uint32_t slm_prefix_evict(struct slm_prefix *t, uint32_t want_free);

/* Drop every node; blocks that sequences use stay with them.  Returns
 * the nodes dropped. */
uint32_t slm_prefix_flush(struct slm_prefix *t);

/* The counters (the owner's thread: the block counts read the pool). */
void slm_prefix_stats_get(struct slm_prefix *t, struct slm_prefix_stats *out);

/* Check the tree's invariants (structure, references, hash index):
 * true when they hold.  For tests; O(nodes). */
bool slm_prefix_check(struct slm_prefix *t);

#endif
