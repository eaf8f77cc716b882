/*
 * The jemalloc back end of numa/arena.h: an arena per node whose extent
 * hooks map anonymous memory and bind it to the node.
 *
 * The hooks run inside jemalloc, possibly with its locks held: they make
 * system calls only and never allocate.  The policy set by mbind belongs
 * to the mapping, so pages purged with MADV_DONTNEED or MADV_FREE and
 * touched again come back on the same node.
 */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "numa/arena_int.h"

const char arena_backend_name[] = "jemalloc";

struct je_arena {
	extent_hooks_t hooks; /* first: jemalloc hands us this pointer */
	int node;
	unsigned index; /* jemalloc's arena index */
};

/* size bytes at new_addr exactly, or anywhere aligned to `alignment`. */
static void *map_aligned(void *new_addr, size_t size, size_t alignment)
{
	const int prot = PROT_READ | PROT_WRITE;
	const int flags = MAP_PRIVATE | MAP_ANONYMOUS;
	if (new_addr) {
		void *p = mmap(new_addr, size, prot,
			       flags | MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED)
			return NULL;
		if (p != new_addr) { /* kernels before 4.17 ignore the flag */
			munmap(p, size);
			return NULL;
		}
		return p;
	}
	if (size + alignment < size)
		return NULL;
	void *p = mmap(NULL, size + alignment, prot, flags, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	uintptr_t start = (uintptr_t)p;
	uintptr_t aligned =
		(start + alignment - 1) & ~(uintptr_t)(alignment - 1);
	if (aligned > start)
		munmap(p, aligned - start);
	uintptr_t end = aligned + size, map_end = start + size + alignment;
	if (map_end > end)
		munmap((void *)end, map_end - end);
	return (void *)aligned;
}

static void *hook_alloc(extent_hooks_t *hooks, void *new_addr, size_t size,
			size_t alignment, bool *zero, bool *commit,
			unsigned arena_ind)
{
	struct je_arena *ja = (struct je_arena *)hooks;
	long page = sysconf(_SC_PAGESIZE);
	if (alignment < (size_t)page)
		alignment = (size_t)page;
	void *p = map_aligned(new_addr, size, alignment);
	if (!p)
		return NULL;
	if (arena_bind(p, size, ja->node, false)) {
		munmap(p, size);
		return NULL;
	}
	*zero = true;
	*commit = true;
	return p;
}

static bool hook_dalloc(extent_hooks_t *hooks, void *addr, size_t size,
			bool committed, unsigned arena_ind)
{
	return munmap(addr, size) != 0;
}

static void hook_destroy(extent_hooks_t *hooks, void *addr, size_t size,
			 bool committed, unsigned arena_ind)
{
	munmap(addr, size);
}

/* Memory is always committed (Linux overcommits): commit succeeds,
 * decommit opts out. */
static bool hook_commit(extent_hooks_t *hooks, void *addr, size_t size,
			size_t offset, size_t length, unsigned arena_ind)
{
	return false;
}

static bool hook_decommit(extent_hooks_t *hooks, void *addr, size_t size,
			  size_t offset, size_t length, unsigned arena_ind)
{
	return true;
}

static bool hook_purge_lazy(extent_hooks_t *hooks, void *addr, size_t size,
			    size_t offset, size_t length, unsigned arena_ind)
{
	return madvise((char *)addr + offset, length, MADV_FREE) != 0;
}

static bool hook_purge_forced(extent_hooks_t *hooks, void *addr, size_t size,
			      size_t offset, size_t length, unsigned arena_ind)
{
	return madvise((char *)addr + offset, length, MADV_DONTNEED) != 0;
}

/* Anonymous mappings split and merge freely on Linux. */
static bool hook_split(extent_hooks_t *hooks, void *addr, size_t size,
		       size_t size_a, size_t size_b, bool committed,
		       unsigned arena_ind)
{
	return false;
}

static bool hook_merge(extent_hooks_t *hooks, void *addr_a, size_t size_a,
		       void *addr_b, size_t size_b, bool committed,
		       unsigned arena_ind)
{
	return false;
}

int arena_backend_init(struct arena_node *an, struct slm_error *err)
{
	struct je_arena *ja = calloc(1, sizeof(*ja));
	if (!ja)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
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
	size_t len = sizeof(ja->index);
	int e = mallctl("arenas.create", &ja->index, &len, &hooks,
			sizeof(hooks));
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
	/* The arena's memory goes back through hook_destroy and dalloc;
	 * after this jemalloc holds no pointer to the hooks. */
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
