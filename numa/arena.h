/*
 * arena.h: small objects on a chosen NUMA node (request objects, their
 * token buffers), from one jemalloc arena per node.
 *
 * The dataplane allocates a request object for the group that will run it;
 * when that group is on node 1 and the dataplane thread on node 0, the
 * object must still land on node 1, where the group's threads read it.
 * First-touch placement cannot do that (the dataplane writes the object
 * first), so each node gets its own jemalloc arena (arenas.create) whose
 * extent hooks bind the memory jemalloc maps for it to the node (mbind,
 * preferred policy: the node's memory while it has any, another node's
 * rather than the OOM killer).  Objects are allocated with MALLOCX_ARENA
 * and no thread cache (a thread cache would hand out objects of other
 * arenas).
 *
 * Builds without jemalloc (`make asan`, SLM_NO_JEMALLOC) use a plain
 * path instead: malloc blocks whose pages are moved to the node with
 * move_pages (a system call per object, but the same placement, and every
 * object is still seen by AddressSanitizer).  slm_arenas_backend() says
 * which.  A placement the kernel refuses does not fail the allocation; it
 * is counted (slm_arenas_bind_failures).
 *
 * Node-bound memory needs the topology of this machine: a synthetic or
 * XML topology is refused with SLM_ESTATE.
 *
 * Threads: alloc and free may be called from any thread at once, and an
 * object may be freed by a thread other than the one that allocated it.
 * create and destroy are not concurrent with anything else.
 */
#ifndef SLM_NUMA_ARENA_H
#define SLM_NUMA_ARENA_H

#include <stddef.h>

#include "common/err.h"
#include "numa/topology.h"

struct slm_arenas;

/* One arena per NUMA node of the topology.  Free with slm_arenas_destroy. */
int slm_arenas_create(const struct slm_topo *topo, struct slm_arenas **out,
		      struct slm_error *err) SLM_MUST_CHECK;

/* Release the arenas.  Every object must have been freed before. */
void slm_arenas_destroy(struct slm_arenas *arenas);

/*
 * size bytes (0 counts as 1) on node `node` (a Linux node number),
 * aligned for any type.  NULL when out of memory or when the node is not
 * in the topology.  Free with slm_arena_free.
 */
void *slm_arena_alloc(struct slm_arenas *arenas, int node, size_t size);

/* n * size zeroed bytes on `node`; NULL also when n * size overflows. */
void *slm_arena_calloc(struct slm_arenas *arenas, int node, size_t n,
		       size_t size);

/* Free an object of slm_arena_alloc/calloc (NULL is ignored). */
void slm_arena_free(struct slm_arenas *arenas, void *p);

/* "jemalloc" or "malloc+move_pages" (builds without jemalloc). */
const char *slm_arenas_backend(const struct slm_arenas *arenas);

/* How many times the kernel refused to place arena memory on its node,
 * over all nodes (0 when all is where it should be). */
uint64_t slm_arenas_bind_failures(const struct slm_arenas *arenas);

#endif
