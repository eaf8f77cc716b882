/*
 * alloc.h: node-local memory for big regions (model weights, KV pools).
 *
 * slm_numa_alloc() maps anonymous memory and binds it to one NUMA node
 * (hwloc membind, strict), on reserved 2 MiB pages (MAP_HUGETLB) when the
 * node has enough of them free, else on ordinary pages advised for
 * transparent huge pages (MADV_HUGEPAGE), 2 MiB aligned.  It says what it
 * got: the node, the page size, whether huge pages were used.  Memory is
 * zero, read-write, and released with slm_numa_free.
 *
 * This module is the allocator only; the machine's topology and the
 * placement plan (which node serves what) are numa/topology and
 * numa/placement's business.
 */
#ifndef SLM_NUMA_ALLOC_H
#define SLM_NUMA_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* Node argument: the node of the CPU the calling thread runs on. */
#define SLM_NUMA_LOCAL (-1)
/* Node argument: no binding (the kernel's default policy: first touch). */
#define SLM_NUMA_ANY (-2)

/* Flags of slm_numa_alloc. */
enum {
	SLM_NUMA_NO_HUGE = 1u << 0, /* ordinary pages, no THP advice */
	SLM_NUMA_NO_THP = 1u << 1,  /* reserved huge pages if any, else
				       ordinary pages without THP advice */
	/* Reserved huge pages are not populated here: the caller populates
	 * them (MADV_POPULATE_WRITE) or touches them only through the
	 * kernel (O_DIRECT reads) first, where a node short of pages is an
	 * error (ENOMEM, EFAULT) instead of SIGBUS in user space. */
	SLM_NUMA_NO_POPULATE = 1u << 2,
};

#define SLM_NUMA_HUGE_PAGE (2u << 20)

/* A region, as allocated. */
struct slm_numa_mem {
	void *ptr;	  /* 2 MiB aligned; NULL when empty */
	size_t size;	  /* bytes asked for */
	size_t mapped;	  /* bytes mapped: size rounded up to 2 MiB */
	int node;	  /* node the pages are bound to; -1: not bound */
	size_t page_size; /* 2 MiB (hugetlb) or the base page size */
	bool hugetlb;	  /* reserved huge pages (resident already unless
			     SLM_NUMA_NO_POPULATE) */
	bool thp;	  /* MADV_HUGEPAGE given: huge pages where possible */
};

/*
 * Allocate size bytes on `node` (an OS node number, SLM_NUMA_LOCAL or
 * SLM_NUMA_ANY).  A node that does not exist, or a binding that fails
 * for an explicit node, is an error naming the nodes there are; for
 * SLM_NUMA_LOCAL a failed binding leaves the region unbound (out->node
 * is -1).  Reserved huge pages are touched (populated) here, so a node
 * short of them falls back to ordinary pages instead of failing later
 * (unless SLM_NUMA_NO_POPULATE: then the caller's first touches must go
 * through the kernel, see the flag).
 */
int slm_numa_alloc(size_t size, int node, unsigned flags,
		   struct slm_numa_mem *out,
		   struct slm_error *err) SLM_MUST_CHECK;

/* Unmap; the struct is zeroed.  An empty struct is fine. */
void slm_numa_free(struct slm_numa_mem *mem);

/* Number of NUMA nodes of this machine (1 on a machine without NUMA). */
int slm_numa_node_count(void);

/* The node holding the page at addr (faulting it in if needed), or a
 * negative SLM_E* code. */
int slm_numa_node_of(const void *addr);

/*
 * Bytes of [ptr, ptr + len) backed by huge pages now (THP or hugetlb),
 * from /proc/self/smaps; 0 on error.  For reports, not for decisions.
 */
uint64_t slm_numa_huge_bytes(const void *ptr, size_t len);

#endif
