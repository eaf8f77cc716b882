/*
 * The back end of numa/arena.h for builds without jemalloc (`make asan`):
 * each object is a page-aligned malloc block whose pages are bound to the
 * node with mbind, moving any that were touched before.  Placement is the
 * same as with jemalloc; memory use is page-granular and every allocation
 * costs a system call, which is fine for the sanitizer builds this is for.
 * The sanitizer still sees each object at its exact size.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "numa/arena_int.h"

const char arena_backend_name[] = "malloc+mbind";

int arena_backend_init(struct arena_node *an, struct slm_error *err)
{
	an->backend = NULL;
	return 0;
}

void arena_backend_fini(struct arena_node *an)
{
}

void *arena_backend_alloc(struct arena_node *an, size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p = NULL;
	if (posix_memalign(&p, page, size))
		return NULL;
	if (arena_bind(p, size, an->os_index, true)) {
		free(p);
		return NULL;
	}
	return p;
}

void arena_backend_free(void *p)
{
	free(p);
}
