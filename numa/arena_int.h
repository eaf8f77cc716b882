/*
 * arena_int.h: what the arena front (arena.c) and its two back ends share:
 * arena_jemalloc.c (the default build) and arena_nojemalloc.c (builds
 * with NO_JEMALLOC=1).  The Makefile compiles exactly one back end.
 */
#ifndef SLM_NUMA_ARENA_INT_H
#define SLM_NUMA_ARENA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "numa/arena.h"

struct arena_node {
	int os_index;  /* Linux node number */
	void *backend; /* the back end's state for this node */
};

struct slm_arenas {
	int n_nodes;
	struct arena_node *nodes;
};

/*
 * Bind [addr, addr + len) to `node` with the preferred policy (addr page
 * aligned; len is rounded up to pages).  move: migrate pages already
 * there.  A raw system call: safe inside jemalloc's extent hooks, which
 * must not allocate.  Returns 0 or the errno value.  (For whole mappings:
 * a policy on part of one splits it.)
 */
int arena_bind(void *addr, size_t len, int node, bool move);

/* The back end: set up node n's arena (0 or an error), tear it down,
 * allocate on it, free from any node. */
int arena_backend_init(struct arena_node *an, struct slm_error *err);
void arena_backend_fini(struct arena_node *an);
void *arena_backend_alloc(struct arena_node *an, size_t size);
void arena_backend_free(void *p);
/* Extents or objects whose placement the kernel refused, so far. */
uint64_t arena_backend_bind_failures(const struct arena_node *an);
extern const char arena_backend_name[];

#endif
