#include "numa/alloc.h"

#include <errno.h>
#include <hwloc.h>
#include <inttypes.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

/* The topology is loaded once per process (a few ms) and kept. */
static hwloc_topology_t topology;
static int topology_rc;
static pthread_once_t topology_once = PTHREAD_ONCE_INIT;

static void topology_load(void)
{
	if (hwloc_topology_init(&topology) != 0) {
		topology_rc = SLM_ESYS;
		return;
	}
	if (hwloc_topology_load(topology) != 0) {
		hwloc_topology_destroy(topology);
		topology = NULL;
		topology_rc = SLM_ESYS;
	}
}

static hwloc_topology_t get_topology(void)
{
	pthread_once(&topology_once, topology_load);
	return topology_rc ? NULL : topology;
}

int slm_numa_node_count(void)
{
	hwloc_topology_t t = get_topology();
	if (!t)
		return 1;
	int n = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_NUMANODE);
	return n > 0 ? n : 1;
}

/* "0-1" style list of the nodes, for messages. */
static void node_list(hwloc_topology_t t, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	hwloc_obj_t n = NULL;
	while ((n = hwloc_get_next_obj_by_type(t, HWLOC_OBJ_NUMANODE, n)) &&
	       used < size)
		used += (size_t)snprintf(buf + used, size - used, "%s%u",
					 used ? ", " : "", n->os_index);
}

/* The node of the CPU this thread runs on, or -1. */
static int local_node(hwloc_topology_t t)
{
	int cpu = sched_getcpu();
	if (cpu < 0)
		return -1;
	hwloc_obj_t pu = hwloc_get_pu_obj_by_os_index(t, (unsigned)cpu);
	if (!pu || !pu->nodeset)
		return -1;
	int first = hwloc_bitmap_first(pu->nodeset);
	return first;
}

static uint64_t free_hugepages(int node)
{
	char path[128];
	if (node >= 0)
		snprintf(path, sizeof(path),
			 "/sys/devices/system/node/node%d/hugepages/"
			 "hugepages-2048kB/free_hugepages",
			 node);
	else
		snprintf(path, sizeof(path),
			 "/sys/kernel/mm/hugepages/hugepages-2048kB/"
			 "free_hugepages");
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	unsigned long long n = 0;
	if (fscanf(f, "%llu", &n) != 1)
		n = 0;
	fclose(f);
	return n;
}

static int bind_area(hwloc_topology_t t, void *p, size_t len, int node)
{
	hwloc_obj_t obj = hwloc_get_numanode_obj_by_os_index(t, (unsigned)node);
	if (!obj)
		return -ENODEV;
	if (hwloc_set_area_membind(t, p, len, obj->nodeset, HWLOC_MEMBIND_BIND,
				   HWLOC_MEMBIND_BYNODESET |
					   HWLOC_MEMBIND_STRICT) != 0)
		return -errno;
	return 0;
}

static size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) / a * a;
}

/* Reserved 2 MiB pages, bound and populated; false to fall back. */
static bool try_hugetlb(hwloc_topology_t t, size_t mapped, int node,
			bool populate, struct slm_numa_mem *out)
{
	if (free_hugepages(node) < mapped / SLM_NUMA_HUGE_PAGE)
		return false;
	void *p = mmap(NULL, mapped, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB,
		       -1, 0);
	if (p == MAP_FAILED)
		return false;
	/* The reservation is not per node: populate now, so a node short
	 * of pages fails here (an error) rather than with SIGBUS later. */
	if ((node >= 0 && (!t || bind_area(t, p, mapped, node) != 0)) ||
	    (populate && madvise(p, mapped, MADV_POPULATE_WRITE) != 0)) {
		munmap(p, mapped);
		return false;
	}
	out->ptr = p;
	out->node = node;
	out->page_size = SLM_NUMA_HUGE_PAGE;
	out->hugetlb = true;
	return true;
}

int slm_numa_alloc(size_t size, int node, unsigned flags,
		   struct slm_numa_mem *out, struct slm_error *err)
{
	memset(out, 0, sizeof(*out));
	if (size == 0 || size > SIZE_MAX / 2)
		return slm_error_set(err, SLM_EINVAL,
				     "numa: cannot allocate %zu bytes", size);
	hwloc_topology_t t = get_topology();
	const bool explicit_node = node >= 0;
	if (node >= 0) {
		if (!t)
			return slm_error_set(err, SLM_ESYS,
					     "numa: hwloc cannot read the "
					     "machine's topology");
		if (!hwloc_get_numanode_obj_by_os_index(t, (unsigned)node)) {
			char nodes[256];
			node_list(t, nodes, sizeof(nodes));
			return slm_error_set(
				err, SLM_EINVAL,
				"numa: node %d does not exist "
				"(this machine has node%s %s)",
				node, strchr(nodes, ',') ? "s" : "", nodes);
		}
	} else if (node == SLM_NUMA_LOCAL) {
		node = t ? local_node(t) : -1;
		if (node < 0)
			node = SLM_NUMA_ANY;
	} else if (node != SLM_NUMA_ANY) {
		return slm_error_set(err, SLM_EINVAL, "numa: bad node %d",
				     node);
	}
	size_t mapped = round_up(size, SLM_NUMA_HUGE_PAGE);
	out->size = size;
	out->mapped = mapped;
	if (!(flags & SLM_NUMA_NO_HUGE) &&
	    try_hugetlb(t, mapped, node >= 0 ? node : -1,
			!(flags & SLM_NUMA_NO_POPULATE), out))
		return 0;

	/* Ordinary pages: map 2 MiB more and trim, so the region starts on
	 * a 2 MiB boundary and THP can back it from the first byte. */
	size_t span = mapped + SLM_NUMA_HUGE_PAGE;
	uint8_t *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return slm_error_errno(err, SLM_ENOMEM, errno,
				       "numa: cannot map %zu bytes", mapped);
	uint8_t *p = (uint8_t *)round_up((uintptr_t)raw, SLM_NUMA_HUGE_PAGE);
	if (p > raw)
		munmap(raw, (size_t)(p - raw));
	size_t tail = (size_t)(raw + span - (p + mapped));
	if (tail)
		munmap(p + mapped, tail);
	out->ptr = p;
	out->page_size = (size_t)sysconf(_SC_PAGESIZE);
	out->node = -1;
	if (!(flags & (SLM_NUMA_NO_HUGE | SLM_NUMA_NO_THP)) &&
	    madvise(p, mapped, MADV_HUGEPAGE) == 0)
		out->thp = true;
	if (node >= 0) {
		int rc = bind_area(t, p, mapped, node);
		if (rc == 0) {
			out->node = node;
		} else if (explicit_node) {
			munmap(p, mapped);
			memset(out, 0, sizeof(*out));
			return slm_error_errno(err, SLM_ESYS, -rc,
					       "numa: cannot bind %zu bytes "
					       "to node %d",
					       mapped, node);
		}
	}
	return 0;
}

void slm_numa_free(struct slm_numa_mem *mem)
{
	if (mem->ptr)
		munmap(mem->ptr, mem->mapped);
	memset(mem, 0, sizeof(*mem));
}

int slm_numa_node_of(const void *addr)
{
	int node = -1;
	long rc = syscall(SYS_get_mempolicy, &node, NULL, 0UL, addr,
			  (unsigned long)(MPOL_F_NODE | MPOL_F_ADDR));
	if (rc != 0)
		return SLM_ESYS;
	return node;
}

uint64_t slm_numa_huge_bytes(const void *ptr, size_t len)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	if (!f)
		return 0;
	uintptr_t lo = (uintptr_t)ptr, hi = lo + len;
	bool inside = false;
	uint64_t total = 0;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		uintptr_t a, b;
		unsigned long long kb;
		if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &a, &b) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			inside = a < hi && b > lo;
			continue;
		}
		if (!inside)
			continue;
		if (sscanf(line, "AnonHugePages: %llu kB", &kb) == 1 ||
		    sscanf(line, "Private_Hugetlb: %llu kB", &kb) == 1 ||
		    sscanf(line, "Shared_Hugetlb: %llu kB", &kb) == 1)
			total += kb * 1024;
	}
	fclose(f);
	return total < len ? total : len;
}
