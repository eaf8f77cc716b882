/*
 * prefix.c: the radix tree of cached prompt prefixes.
 *
 * Nodes live in one array of n_blocks entries (a node holds a distinct
 * block, so there are never more), with a free list; each node's
 * block_tokens ids live in a parallel array.  A tail node (fewer than
 * block_tokens ids: the end of a prompt) is always a leaf; a lookup tries
 * the full child first, then tails from the longest down.  Children are found through
 * one hash index keyed by (parent, the block's ids), chained, so a root
 * with thousands of children costs no more than a node with one.  The
 * LRU order is a use tick stamped on every node of a matched or inserted
 * path; eviction takes the evictable leaves (no children, block
 * referenced only by the tree) in tick order from a min-heap, pushing a
 * parent once its last child goes.
 */
#include "cache/prefix.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "common/compiler.h"

#define NO_NODE UINT32_MAX

struct pnode {
	uint32_t parent;    /* node index, or the root's (ns_root) marker */
	uint32_t hnext;	    /* hash chain */
	uint32_t n_child;   /* children */
	uint32_t block;	    /* the KV block */
	uint32_t n_tok;	    /* tokens it holds: N, or fewer for a tail */
	uint64_t hash;	    /* of (parent key, ids) */
	uint64_t tick;	    /* last use */
	struct pns *ns;	    /* its namespace */
	uint32_t next_free; /* free list link while free */
	bool used;
};

/* A namespace: a root.  Roots are not nodes; their children have
 * parent = NO_NODE and ns = the namespace. */
struct pns {
	struct pns *next;
	uint64_t key;	  /* hashed into its children's keys */
	uint32_t n_child; /* nodes directly under the root */
	char name[];
};

struct slm_prefix {
	struct slm_kv_pool *pool;
	bool namespaces;
	uint32_t N;	  /* block_tokens */
	uint32_t n_nodes; /* capacity: the pool's blocks */
	struct pnode *nodes;
	int32_t *ids; /* [n_nodes][N] */
	uint32_t free_head, n_used;
	uint32_t *buckets; /* [n_buckets] chain heads */
	uint32_t n_buckets;
	uint32_t *heap; /* eviction scratch [n_nodes] */
	struct pns *ns_list;
	struct pns *shared; /* "" */
	uint64_t tick;
	pthread_mutex_t lock; /* guards the structure against peek */
	struct slm_prefix_stats st;
};

static uint64_t key_of(uint64_t parent_key, const int32_t *ids, uint32_t n)
{
	return XXH3_64bits_withSeed(ids, (size_t)n * sizeof(int32_t),
				    parent_key);
}

static struct pns *ns_new(const char *name)
{
	size_t len = strlen(name);
	struct pns *n = calloc(1, sizeof(*n) + len + 1);
	if (!n)
		return NULL;
	memcpy(n->name, name, len);
	n->key = XXH3_64bits_withSeed(name, len, 0x9e3779b97f4a7c15ull);
	return n;
}

struct slm_prefix *slm_prefix_create(struct slm_kv_pool *pool, bool namespaces)
{
	struct slm_prefix *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->pool = pool;
	t->namespaces = namespaces;
	t->N = pool->p.block_tokens;
	t->n_nodes = pool->p.n_blocks;
	t->n_buckets = 16;
	while (t->n_buckets < 2 * t->n_nodes && t->n_buckets < (1u << 30))
		t->n_buckets <<= 1;
	t->nodes = calloc(t->n_nodes, sizeof(*t->nodes));
	t->ids = malloc((size_t)t->n_nodes * t->N * sizeof(int32_t));
	t->buckets = malloc((size_t)t->n_buckets * sizeof(uint32_t));
	t->heap = malloc((size_t)t->n_nodes * sizeof(uint32_t));
	t->shared = ns_new("");
	if (!t->nodes || !t->ids || !t->buckets || !t->heap || !t->shared) {
		free(t->shared);
		t->shared = NULL;
		slm_prefix_destroy(t);
		return NULL;
	}
	t->ns_list = t->shared;
	for (uint32_t i = 0; i < t->n_buckets; i++)
		t->buckets[i] = NO_NODE;
	for (uint32_t i = 0; i < t->n_nodes; i++)
		t->nodes[i].next_free = i + 1 < t->n_nodes ? i + 1 : NO_NODE;
	t->free_head = 0;
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void slm_prefix_destroy(struct slm_prefix *t)
{
	if (!t)
		return;
	if (t->nodes && t->shared) {
		slm_prefix_flush(t);
		pthread_mutex_destroy(&t->lock);
	}
	while (t->ns_list) {
		struct pns *n = t->ns_list;
		t->ns_list = n->next;
		free(n);
	}
	free(t->nodes);
	free(t->ids);
	free(t->buckets);
	free(t->heap);
	free(t);
}

static struct pns *ns_find(struct slm_prefix *t, const char *name)
{
	if (!t->namespaces || !name || !*name)
		return t->shared;
	for (struct pns *n = t->ns_list; n; n = n->next)
		if (!strcmp(n->name, name))
			return n;
	return NULL;
}

static uint64_t parent_key(const struct slm_prefix *t, const struct pns *ns,
			   uint32_t parent)
{
	return parent == NO_NODE ? ns->key : t->nodes[parent].hash;
}

/* The child of (ns, parent) holding exactly ids[0..len), or NO_NODE. */
static uint32_t child_find(const struct slm_prefix *t, const struct pns *ns,
			   uint32_t parent, const int32_t *ids, uint32_t len,
			   uint64_t *hash)
{
	uint64_t h = key_of(parent_key(t, ns, parent), ids, len);
	*hash = h;
	for (uint32_t i = t->buckets[h & (t->n_buckets - 1)]; i != NO_NODE;
	     i = t->nodes[i].hnext) {
		const struct pnode *n = &t->nodes[i];
		if (n->hash == h && n->n_tok == len && n->parent == parent &&
		    n->ns == ns &&
		    !memcmp(t->ids + (size_t)i * t->N, ids,
			    (size_t)len * sizeof(int32_t)))
			return i;
	}
	return NO_NODE;
}

/*
 * Walk: the nodes of the longest cached prefix into path[] (room max):
 * full blocks, then possibly one tail block holding the next 1..N-1
 * tokens.  Returns the tokens matched; *n_path the nodes.
 */
static uint32_t walk(const struct slm_prefix *t, const struct pns *ns,
		     const int32_t *ids, uint32_t n_ids, uint32_t *path,
		     uint32_t max, uint32_t *n_path)
{
	uint32_t depth = 0, parent = NO_NODE;
	uint64_t h;
	*n_path = 0;
	if (!ns)
		return 0;
	while ((depth + 1) * (uint64_t)t->N <= n_ids) {
		if (path && depth >= max)
			break;
		uint32_t c = child_find(t, ns, parent,
					ids + (size_t)depth * t->N, t->N, &h);
		if (c == NO_NODE)
			break;
		if (path)
			path[depth] = c;
		depth++;
		parent = c;
	}
	uint32_t tokens = depth * t->N;
	*n_path = depth;
	if (path && depth >= max)
		return tokens;
	/* a tail: the longest cached one that the prompt continues */
	uint32_t rest = SLM_MIN(n_ids - tokens, t->N - 1);
	for (uint32_t len = rest; len >= 1; len--) {
		uint32_t c = child_find(t, ns, parent, ids + tokens, len, &h);
		if (c == NO_NODE)
			continue;
		if (path)
			path[depth] = c;
		*n_path = depth + 1;
		return tokens + len;
	}
	return tokens;
}

uint32_t slm_prefix_match(struct slm_prefix *t, const char *ns_name,
			  const int32_t *ids, uint32_t n_ids, uint32_t *blocks,
			  uint32_t max)
{
	struct pns *ns = ns_find(t, ns_name);
	uint32_t n_path;
	uint32_t hit = walk(t, ns, ids, n_ids, blocks, max, &n_path);
	uint64_t tick = ++t->tick;
	/* blocks[] holds node indexes: turn them into block ids */
	for (uint32_t i = 0; i < n_path; i++) {
		struct pnode *n = &t->nodes[blocks[i]];
		n->tick = tick;
		blocks[i] = n->block;
	}
	t->st.lookups++;
	t->st.hit_tokens += hit;
	t->st.miss_tokens += n_ids - hit;
	return hit;
}

uint32_t slm_prefix_peek(struct slm_prefix *t, const char *ns_name,
			 const int32_t *ids, uint32_t n_ids)
{
	uint32_t n_path;
	pthread_mutex_lock(&t->lock);
	uint32_t hit =
		walk(t, ns_find(t, ns_name), ids, n_ids, NULL, 0, &n_path);
	pthread_mutex_unlock(&t->lock);
	return hit;
}

static void hash_add(struct slm_prefix *t, uint32_t i)
{
	uint32_t *head = &t->buckets[t->nodes[i].hash & (t->n_buckets - 1)];
	t->nodes[i].hnext = *head;
	*head = i;
}

static void hash_del(struct slm_prefix *t, uint32_t i)
{
	uint32_t *p = &t->buckets[t->nodes[i].hash & (t->n_buckets - 1)];
	while (*p != i) {
		SLM_ASSERT(*p != NO_NODE);
		p = &t->nodes[*p].hnext;
	}
	*p = t->nodes[i].hnext;
}

uint32_t slm_prefix_insert(struct slm_prefix *t, const char *ns_name,
			   const int32_t *ids, uint32_t n_ids,
			   const uint32_t *blocks)
{
	uint32_t added = 0, parent = NO_NODE;
	uint64_t tick = ++t->tick, h;
	pthread_mutex_lock(&t->lock);
	struct pns *ns = ns_find(t, ns_name);
	if (!ns) {
		ns = ns_new(ns_name);
		if (!ns)
			goto out;
		ns->next = t->ns_list;
		t->ns_list = ns;
	}
	const uint32_t full = n_ids / t->N, tail = n_ids % t->N;
	for (uint32_t d = 0; d < full + (tail > 0); d++) {
		const int32_t *bid = ids + (size_t)d * t->N;
		const uint32_t len = d < full ? t->N : tail;
		uint32_t c = child_find(t, ns, parent, bid, len, &h);
		if (c == NO_NODE) {
			if (t->free_head == NO_NODE)
				break; /* cannot happen: a node per block */
			c = t->free_head;
			struct pnode *n = &t->nodes[c];
			t->free_head = n->next_free;
			memset(n, 0, sizeof(*n));
			n->used = true;
			n->parent = parent;
			n->block = blocks[d];
			n->n_tok = len;
			n->hash = h;
			n->ns = ns;
			memcpy(t->ids + (size_t)c * t->N, bid,
			       (size_t)len * sizeof(int32_t));
			hash_add(t, c);
			if (parent == NO_NODE)
				ns->n_child++;
			else
				t->nodes[parent].n_child++;
			slm_kv_block_get(t->pool, n->block);
			t->n_used++;
			added++;
		}
		t->nodes[c].tick = tick;
		parent = c;
	}
out:
	pthread_mutex_unlock(&t->lock);
	t->st.inserts += added;
	return added;
}

/* Unlink node i (a leaf) and drop the tree's reference on its block;
 * forget its namespace when that is left empty.  Lock held. */
static void node_drop(struct slm_prefix *t, uint32_t i)
{
	struct pnode *n = &t->nodes[i];
	SLM_ASSERT(n->used && n->n_child == 0);
	hash_del(t, i);
	struct pns *ns = n->ns;
	if (n->parent == NO_NODE)
		ns->n_child--;
	else
		t->nodes[n->parent].n_child--;
	slm_kv_block_put(t->pool, n->block);
	n->used = false;
	n->next_free = t->free_head;
	t->free_head = i;
	t->n_used--;
	if (ns != t->shared && !ns->n_child) {
		struct pns **p = &t->ns_list;
		while (*p != ns)
			p = &(*p)->next;
		*p = ns->next;
		free(ns);
	}
}

static bool evictable(const struct slm_prefix *t, uint32_t i)
{
	const struct pnode *n = &t->nodes[i];
	return n->used && !n->n_child &&
	       slm_kv_block_refs(t->pool, n->block) == 1;
}

/* A min-heap of node indexes by tick. */
static void heap_push(struct slm_prefix *t, uint32_t *len, uint32_t i)
{
	uint32_t k = (*len)++;
	while (k) {
		uint32_t p = (k - 1) / 2;
		if (t->nodes[t->heap[p]].tick <= t->nodes[i].tick)
			break;
		t->heap[k] = t->heap[p];
		k = p;
	}
	t->heap[k] = i;
}

static uint32_t heap_pop(struct slm_prefix *t, uint32_t *len)
{
	uint32_t top = t->heap[0], last = t->heap[--(*len)], k = 0;
	for (;;) {
		uint32_t c = 2 * k + 1;
		if (c >= *len)
			break;
		if (c + 1 < *len &&
		    t->nodes[t->heap[c + 1]].tick < t->nodes[t->heap[c]].tick)
			c++;
		if (t->nodes[last].tick <= t->nodes[t->heap[c]].tick)
			break;
		t->heap[k] = t->heap[c];
		k = c;
	}
	if (*len)
		t->heap[k] = last;
	return top;
}

uint32_t slm_prefix_evict(struct slm_prefix *t, uint32_t want_free)
{
	uint32_t freed = 0, len = 0;
	if (slm_kv_pool_n_free(t->pool) >= want_free)
		return 0;
	pthread_mutex_lock(&t->lock);
	for (uint32_t i = 0; i < t->n_nodes; i++)
		if (evictable(t, i))
			heap_push(t, &len, i);
	while (len && slm_kv_pool_n_free(t->pool) < want_free) {
		uint32_t i = heap_pop(t, &len);
		uint32_t parent = t->nodes[i].parent;
		node_drop(t, i);
		freed++;
		if (parent != NO_NODE && evictable(t, parent))
			heap_push(t, &len, parent);
	}
	pthread_mutex_unlock(&t->lock);
	t->st.evictions += freed;
	return freed;
}

uint32_t slm_prefix_flush(struct slm_prefix *t)
{
	uint32_t dropped = 0;
	pthread_mutex_lock(&t->lock);
	/* leaves first, repeatedly: a parent becomes a leaf after its
	 * children go */
	while (t->n_used) {
		for (uint32_t i = 0; i < t->n_nodes; i++)
			if (t->nodes[i].used && !t->nodes[i].n_child) {
				node_drop(t, i);
				dropped++;
			}
	}
	pthread_mutex_unlock(&t->lock);
	t->st.flushes += dropped;
	return dropped;
}

void slm_prefix_stats_get(struct slm_prefix *t, struct slm_prefix_stats *out)
{
	*out = t->st;
	uint32_t only_tree = 0, n_ns = 0;
	for (uint32_t i = 0; i < t->n_nodes; i++)
		if (t->nodes[i].used &&
		    slm_kv_block_refs(t->pool, t->nodes[i].block) == 1)
			only_tree++;
	for (struct pns *n = t->ns_list; n; n = n->next)
		n_ns += n->n_child > 0;
	out->namespaces = n_ns;
	out->blocks_total = t->pool->p.n_blocks;
	out->blocks_free = slm_kv_pool_n_free(t->pool);
	out->blocks_cached = t->n_used;
	out->blocks_in_use = out->blocks_total - out->blocks_free - only_tree;
}

bool slm_prefix_check(struct slm_prefix *t)
{
	uint32_t used = 0;
	uint32_t *children = calloc(t->n_nodes, sizeof(uint32_t));
	if (!children)
		return false;
	bool ok = true;
	for (uint32_t i = 0; i < t->n_nodes && ok; i++) {
		const struct pnode *n = &t->nodes[i];
		if (!n->used)
			continue;
		used++;
		uint64_t h;
		ok = slm_kv_block_refs(t->pool, n->block) >= 1 &&
		     n->n_tok >= 1 && n->n_tok <= t->N &&
		     (n->n_tok == t->N || n->n_child == 0) &&
		     child_find(t, n->ns, n->parent, t->ids + (size_t)i * t->N,
				n->n_tok, &h) == i &&
		     h == n->hash;
		if (n->parent != NO_NODE) {
			ok = ok && t->nodes[n->parent].used &&
			     t->nodes[n->parent].n_tok == t->N &&
			     t->nodes[n->parent].ns == n->ns;
			children[n->parent]++;
		}
		for (uint32_t j = 0; ok && j < t->n_nodes; j++)
			ok = j == i || !t->nodes[j].used ||
			     t->nodes[j].block != n->block;
	}
	for (uint32_t i = 0; i < t->n_nodes && ok; i++)
		ok = !t->nodes[i].used || children[i] == t->nodes[i].n_child;
	free(children);
	return ok && used == t->n_used;
}
