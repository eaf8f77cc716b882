#include "numa/arena_int.h"

#include <errno.h>
#include <linux/mempolicy.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numa/cpulist.h"

int arena_bind(void *addr, size_t len, int node, bool move)
{
	/* Node numbers go up to SLM_CPU_MAX like CPUs. */
	unsigned long mask[(SLM_CPU_MAX + 1) / (8 * sizeof(unsigned long))];
	if (node < 0 || node > SLM_CPU_MAX)
		return EINVAL;
	memset(mask, 0, sizeof(mask));
	mask[node / (8 * sizeof(unsigned long))] |=
		1ul << (node % (8 * sizeof(unsigned long)));
	/* The kernel reads maxnode - 1 bits. */
	unsigned long maxnode = 8 * sizeof(mask) + 1;
	unsigned flags = move ? MPOL_MF_MOVE : 0;
	if (syscall(SYS_mbind, addr, len, MPOL_PREFERRED, mask, maxnode, flags))
		return errno;
	return 0;
}

int slm_arenas_create(const struct slm_topo *topo, struct slm_arenas **out,
		      struct slm_error *err)
{
	const struct slm_topo_info *info = slm_topo_info(topo);
	*out = NULL;
	if (!info->this_system)
		return slm_error_set(err, SLM_ESTATE,
				     "node-bound arenas need this machine's "
				     "topology, not '%s'",
				     info->source);
	struct slm_arenas *a = calloc(1, sizeof(*a));
	if (!a)
		return slm_error_set(err, SLM_ENOMEM, "arenas: out of memory");
	a->nodes = calloc((size_t)info->n_nodes, sizeof(*a->nodes));
	if (!a->nodes) {
		free(a);
		return slm_error_set(err, SLM_ENOMEM, "arenas: out of memory");
	}
	for (int n = 0; n < info->n_nodes; n++) {
		struct arena_node *an = &a->nodes[n];
		an->os_index = info->nodes[n].os_index;
		int rc = arena_backend_init(an, err);
		if (rc) {
			slm_error_prefix(err,
					 "arena of node %d: ", an->os_index);
			slm_arenas_destroy(a);
			return rc;
		}
		a->n_nodes++;
	}
	*out = a;
	return 0;
}

void slm_arenas_destroy(struct slm_arenas *arenas)
{
	if (!arenas)
		return;
	for (int n = 0; n < arenas->n_nodes; n++)
		arena_backend_fini(&arenas->nodes[n]);
	free(arenas->nodes);
	free(arenas);
}

void *slm_arena_alloc(struct slm_arenas *arenas, int node, size_t size)
{
	for (int n = 0; n < arenas->n_nodes; n++)
		if (arenas->nodes[n].os_index == node)
			return arena_backend_alloc(&arenas->nodes[n],
						   size ? size : 1);
	return NULL;
}

void *slm_arena_calloc(struct slm_arenas *arenas, int node, size_t n,
		       size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = slm_arena_alloc(arenas, node, n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

void slm_arena_free(struct slm_arenas *arenas, void *p)
{
	(void)arenas;
	if (p)
		arena_backend_free(p);
}

uint64_t slm_arenas_bind_failures(const struct slm_arenas *arenas)
{
	uint64_t sum = 0;
	for (int n = 0; n < arenas->n_nodes; n++)
		sum += arena_backend_bind_failures(&arenas->nodes[n]);
	return sum;
}

const char *slm_arenas_backend(const struct slm_arenas *arenas)
{
	(void)arenas;
	return arena_backend_name;
}
