/*
 * The back end of numa/arena.h for builds without jemalloc (`make asan`):
 * each object is a malloc block whose pages are touched and then moved to
 * the node with move_pages.  The sanitizer sees every object at its exact
 * size (overflows, use after free, leaks), and the pages are on the node.
 *
 * Not mbind: a policy on a few pages in the middle of the heap splits its
 * mapping, and with the sanitizer's quarantine cycling addresses the
 * process ran out of mappings (vm.max_map_count) within a million
 * allocations.  move_pages places pages without touching the mapping.
 * Pages shared with neighbouring blocks move too; that is harmless.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/mempolicy.h>

#include "numa/arena_int.h"

const char arena_backend_name[] = "malloc+move_pages";

struct plain_arena {
	uint64_t bind_failures; /* atomic */
};

int arena_backend_init(struct arena_node *an, struct slm_error *err)
{
	an->backend = calloc(1, sizeof(struct plain_arena));
	if (!an->backend)
		return slm_error_set(err, SLM_ENOMEM, "out of memory");
	return 0;
}

void arena_backend_fini(struct arena_node *an)
{
	free(an->backend);
	an->backend = NULL;
}

/*
 * Move the pages of [p, p + size) that are not on `node` there; 0 or an
 * errno value.  Asking first is cheap (a page-table walk); moving is not
 * (the kernel drains every CPU's page lists, tens of microseconds).
 */
static int move_to(void *p, size_t size, int node)
{
	enum { BATCH = 64 };
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t first = (uintptr_t)p & ~(page - 1);
	uintptr_t end = (uintptr_t)p + size;
	void *pages[BATCH];
	int nodes[BATCH], status[BATCH];
	for (uintptr_t a = first; a < end;) {
		unsigned long n = 0;
		for (; n < BATCH && a < end; n++, a += page)
			pages[n] = (void *)a;
		if (syscall(SYS_move_pages, 0, n, pages, NULL, status, 0) < 0)
			return errno;
		unsigned long k = 0;
		for (unsigned long i = 0; i < n; i++)
			if (status[i] != node) {
				pages[k] = pages[i];
				nodes[k++] = node;
			}
		if (k && syscall(SYS_move_pages, 0, k, pages, nodes, status,
				 MPOL_MF_MOVE) < 0)
			return errno;
	}
	return 0;
}

void *arena_backend_alloc(struct arena_node *an, size_t size)
{
	struct plain_arena *pa = an->backend;
	void *p = malloc(size);
	if (!p)
		return NULL;
	memset(p, 0, size); /* the pages must exist to be moved */
	if (move_to(p, size, an->os_index))
		__atomic_add_fetch(&pa->bind_failures, 1, __ATOMIC_RELAXED);
	return p;
}

void arena_backend_free(void *p)
{
	free(p);
}

uint64_t arena_backend_bind_failures(const struct arena_node *an)
{
	const struct plain_arena *pa = an->backend;
	return pa ? __atomic_load_n(&pa->bind_failures, __ATOMIC_RELAXED) : 0;
}
