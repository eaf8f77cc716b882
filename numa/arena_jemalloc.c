/*
 * The jemalloc back end of numa/arena.h: an arena per node whose extent
 * hooks wrap jemalloc's default hooks (read from arena 0) and bind every
 * extent the default alloc hook maps to the node.
 *
 * Everything but alloc goes to the default hooks unchanged: they carry
 * jemalloc's own rules for splitting, merging and returning mappings
 * (jemalloc's test suite chains hooks the same way).  Hooks that did their
 * own mmap/munmap, merged freely and unmapped on dalloc corrupted the
 * default arena's heap here under a mixed load: do not go back to that.
 *
 * The hooks run inside jemalloc, possibly with its locks held: the alloc
 * hook makes one system call beyond the default and never allocates.  The
 * policy set by mbind belongs to the mapping, so purged pages come back
 * on the same node when touched again.
 */
#include <jemalloc/jemalloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "numa/arena_int.h"

const char arena_backend_name[] = "jemalloc";

struct je_arena {
	extent_hooks_t hooks; /* first: jemalloc hands us this pointer */
	extent_hooks_t *def;  /* jemalloc's default hooks */
	int node;
	unsigned index;		/* jemalloc's arena index */
	uint64_t bind_failures; /* atomic */
};

static struct je_arena *of(extent_hooks_t *hooks)
{
	return (struct je_arena *)hooks;
}

static void *hook_alloc(extent_hooks_t *hooks, void *new_addr, size_t size,
			size_t alignment, bool *zero, bool *commit,
			unsigned arena_ind)
{
	struct je_arena *ja = of(hooks);
	void *p = ja->def->alloc(ja->def, new_addr, size, alignment, zero,
				 commit, arena_ind);
	/* Fresh mappings, normally; MOVE covers pages jemalloc reused. */
	if (p && arena_bind(p, size, ja->node, true))
		__atomic_add_fetch(&ja->bind_failures, 1, __ATOMIC_RELAXED);
	return p;
}

static bool hook_dalloc(extent_hooks_t *hooks, void *addr, size_t size,
			bool committed, unsigned arena_ind)
{
	extent_hooks_t *def = of(hooks)->def;
	return def->dalloc(def, addr, size, committed, arena_ind);
}

static void hook_destroy(extent_hooks_t *hooks, void *addr, size_t size,
			 bool committed, unsigned arena_ind)
{
	extent_hooks_t *def = of(hooks)->def;
	def->destroy(def, addr, size, committed, arena_ind);
}

static bool hook_commit(extent_hooks_t *hooks, void *addr, size_t size,
			size_t offset, size_t length, unsigned arena_ind)
{
	extent_hooks_t *def = of(hooks)->def;
	return def->commit(def, addr, size, offset, length, arena_ind);
}

static bool hook_decommit(extent_hooks_t *hooks, void *addr, size_t size,
			  size_t offset, size_t length, unsigned arena_ind)
{
	extent_hooks_t *def = of(hooks)->def;
	return def->decommit(def, addr, size, offset, length, arena_ind);
}

static bool hook_purge_lazy(extent_hooks_t *hooks, void *addr, size_t size,
			    size_t offset, size_t length, unsigned arena_ind)
{
	extent_hooks_t *def = of(hooks)->def;
	return !def->purge_lazy ||
	       def->purge_lazy(def, addr, size, offset, length, arena_ind);
}

static bool hook_purge_forced(extent_hooks_t *hooks, void *addr, size_t size,
			      size_t offset, size_t length, unsigned arena_ind)
{
	extent_hooks_t *def = of(hooks)->def;
	return !def->purge_forced ||
	       def->purge_forced(def, addr, size, offset, length, arena_ind);
}

static bool hook_split(extent_hooks_t *hooks, void *addr, size_t size,
		       size_t size_a, size_t size_b, bool committed,
		       unsigned arena_ind)
{
	extent_hooks_t *def = of(hooks)->def;
	return def->split(def, addr, size, size_a, size_b, committed,
			  arena_ind);
}

static bool hook_merge(extent_hooks_t *hooks, void *addr_a, size_t size_a,
		       void *addr_b, size_t size_b, bool committed,
		       unsigned arena_ind)
{
	extent_hooks_t *def = of(hooks)->def;
	return def->merge(def, addr_a, size_a, addr_b, size_b, committed,
			  arena_ind);
}

int arena_backend_init(struct arena_node *an, struct slm_error *err)
{
	struct je_arena *ja = calloc(1, sizeof(*ja));
	if (!ja)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	size_t len = sizeof(ja->def);
	int e = mallctl("arena.0.extent_hooks", &ja->def, &len, NULL, 0);
	if (e || !ja->def || !ja->def->alloc) {
		free(ja);
		return slm_error_errno(err, SLM_ESYS, e,
				       "jemalloc arena.0.extent_hooks");
	}
	ja->hooks = (extent_hooks_t){
		.alloc = hook_alloc,
		.dalloc = hook_dalloc,
		.destroy = hook_destroy,
		.commit = hook_commit,
		.decommit = hook_decommit,
		.purge_lazy = hook_purge_lazy,
		.purge_forced = hook_purge_forced,
		.split = hook_split,
		.merge = hook_merge,
	};
	ja->node = an->os_index;
	extent_hooks_t *hooks = &ja->hooks;
	len = sizeof(ja->index);
	e = mallctl("arenas.create", &ja->index, &len, &hooks, sizeof(hooks));
	if (e) {
		free(ja);
		return slm_error_errno(err, SLM_ESYS, e,
				       "jemalloc arenas.create");
	}
	an->backend = ja;
	return 0;
}

void arena_backend_fini(struct arena_node *an)
{
	struct je_arena *ja = an->backend;
	if (!ja)
		return;
	char name[64];
	snprintf(name, sizeof(name), "arena.%u.destroy", ja->index);
	/* The arena's memory goes back through the hooks; after this
	 * jemalloc holds no pointer to them. */
	mallctl(name, NULL, NULL, NULL, 0);
	free(ja);
	an->backend = NULL;
}

void *arena_backend_alloc(struct arena_node *an, size_t size)
{
	struct je_arena *ja = an->backend;
	return mallocx(size, MALLOCX_ARENA(ja->index) | MALLOCX_TCACHE_NONE);
}

void arena_backend_free(void *p)
{
	dallocx(p, MALLOCX_TCACHE_NONE);
}

uint64_t arena_backend_bind_failures(const struct arena_node *an)
{
	const struct je_arena *ja = an->backend;
	return ja ? __atomic_load_n(&ja->bind_failures, __ATOMIC_RELAXED) : 0;
}
