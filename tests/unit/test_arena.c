/*
 * Node-bound arenas on the real machine: the memory of each object is on
 * the node asked, as the kernel reports it (get_mempolicy with
 * MPOL_F_NODE|MPOL_F_ADDR for the page's node, MPOL_F_ADDR for the
 * policy of the mapping, move_pages with no target for the node of each
 * page), independently of the code under test.
 */
#include <errno.h>
#include <linux/mempolicy.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numa/arena.h"
#include "numa/topology.h"
#include "tests/unit/harness.h"

static struct slm_topo *topo;
static struct slm_arenas *arenas;
static size_t page;

static int setup(void)
{
	struct slm_error err = {0};
	page = (size_t)sysconf(_SC_PAGESIZE);
	if (slm_topo_open("", &topo, &err))
		return 1;
	if (slm_arenas_create(topo, &arenas, &err)) {
		printf("arenas: %s\n", err.msg);
		return 1;
	}
	return 0;
}

static int teardown(void)
{
	slm_arenas_destroy(arenas);
	slm_topo_close(topo);
	return 0;
}

/* The node holding the page at addr (faulting it in), or -1. */
static int page_node(void *addr)
{
	int node = -1;
	if (syscall(SYS_get_mempolicy, &node, NULL, 0, addr,
		    MPOL_F_NODE | MPOL_F_ADDR))
		return -1;
	return node;
}

/* The policy of the mapping at addr; *nodes gets its first mask word. */
static int page_policy(void *addr, unsigned long *nodes)
{
	int mode = -1;
	unsigned long mask[64] = {0};
	if (syscall(SYS_get_mempolicy, &mode, mask, 64 * 8 * sizeof(long) + 1,
		    addr, MPOL_F_ADDR))
		return -1;
	*nodes = mask[0];
	return mode;
}

/* The node of each page of [p, p + size) by move_pages, all == node? */
static bool pages_on(void *p, size_t size, int node)
{
	uintptr_t first = (uintptr_t)p & ~(uintptr_t)(page - 1);
	uintptr_t end = (uintptr_t)p + size;
	size_t n = (end - first + page - 1) / page;
	void **pages = calloc(n, sizeof(void *));
	int *status = calloc(n, sizeof(int));
	bool ok = pages && status;
	for (size_t i = 0; ok && i < n; i++)
		pages[i] = (void *)(first + i * page);
	if (ok && syscall(SYS_move_pages, 0, n, pages, NULL, status, 0))
		ok = false;
	for (size_t i = 0; ok && i < n; i++)
		if (status[i] != node) {
			printf("\n    page %zu of %zu: status %d, want node "
			       "%d\n",
			       i, n, status[i], node);
			ok = false;
		}
	free(pages);
	free(status);
	return ok;
}

static bool is_jemalloc(void)
{
	return !strcmp(slm_arenas_backend(arenas), "jemalloc");
}

/*
 * The jemalloc back end binds its mappings: the policy tells a bound page
 * from a first-touched one even on a one-node machine.  The plain back end
 * moves pages and leaves the policy alone.
 */
static void check_policy(void *p, int node)
{
	unsigned long mask = 0;
	int mode = page_policy(p, &mask);
	if (!is_jemalloc()) {
		CU_ASSERT_EQUAL(mode, MPOL_DEFAULT);
		return;
	}
	CU_ASSERT_EQUAL(mode, MPOL_PREFERRED);
	if (node < 64)
		CU_ASSERT_EQUAL(mask, 1ul << node);
}

/* Allocate, touch, and check an object on `node`. */
static void check_object(int node, size_t size)
{
	unsigned char *p = slm_arena_alloc(arenas, node, size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL((uintptr_t)p % 16, 0);
	memset(p, 0xa5, size);
	CU_ASSERT_EQUAL(page_node(p), node);
	CU_ASSERT_EQUAL(page_node(p + size - 1), node);
	check_policy(p, node);
	check_policy(p + size - 1, node);
	CU_ASSERT_TRUE(pages_on(p, size, node));
	slm_arena_free(arenas, p);
}

static void test_objects_on_node(void)
{
	static const size_t sizes[] = {1,     24,     200,     4096,
				       20000, 100000, 3u << 20};
	const struct slm_topo_info *info = slm_topo_info(topo);
	for (int n = 0; n < info->n_nodes; n++)
		for (size_t s = 0; s < SLM_ARRAY_LEN(sizes); s++)
			check_object(info->nodes[n].os_index, sizes[s]);
	CU_ASSERT_EQUAL(slm_arenas_bind_failures(arenas), 0);
}

/* The policy check can fail: ordinary heap memory has no policy. */
static void test_control(void)
{
	void *p = NULL;
	CU_ASSERT_EQUAL_FATAL(posix_memalign(&p, page, 4 * page), 0);
	memset(p, 1, 4 * page);
	unsigned long mask = 0;
	CU_ASSERT_EQUAL(page_policy(p, &mask), MPOL_DEFAULT);
	free(p);
}

struct handoff {
	void *objs[256];
	int node;
};

static void *free_all(void *arg)
{
	struct handoff *h = arg;
	for (int i = 0; i < 256; i++)
		slm_arena_free(arenas, h->objs[i]);
	return NULL;
}

/* Allocated by one thread, used and freed by another (the dataplane and
 * a worker); memory stays on the node through reuse. */
static void test_cross_thread(void)
{
	const struct slm_topo_info *info = slm_topo_info(topo);
	struct handoff h = {.node = info->nodes[info->n_nodes - 1].os_index};
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 256; i++) {
			size_t size = 16 + (size_t)((i * 37 + round) % 3000);
			h.objs[i] = slm_arena_calloc(arenas, h.node, 1, size);
			CU_ASSERT_PTR_NOT_NULL_FATAL(h.objs[i]);
			/* calloc'd, even when reused */
			CU_ASSERT_EQUAL(((unsigned char *)h.objs[i])[size - 1],
					0);
			memset(h.objs[i], round, size);
			if (i % 64 == 0) {
				CU_ASSERT_EQUAL(page_node(h.objs[i]), h.node);
				check_policy(h.objs[i], h.node);
			}
		}
		pthread_t t;
		CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, free_all, &h),
				      0);
		pthread_join(t, NULL);
	}
}

/*
 * Regression: extent hooks that mapped, merged and unmapped memory on
 * their own broke jemalloc once about 100 000 arena objects of 16 KiB had
 * come and gone: the next plain malloc of that size crashed.  Many rounds
 * of arena objects of each size class, then the heap, which must still
 * work, and arena memory that kept its contents and its node.
 */
static void test_mixed_with_heap(void)
{
	static const size_t sizes[] = {48, 1000, 16384, 40000, 1u << 20};
	enum { LIVE = 1000 };
	void **a = calloc(LIVE, sizeof(void *));
	void **h = calloc(LIVE, sizeof(void *));
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	int node = slm_topo_info(topo)->nodes[0].os_index;
	for (size_t s = 0; s < SLM_ARRAY_LEN(sizes); s++) {
		/* The hooks are jemalloc's; the plain back end (a memset
		 * and a system call per object) needs only a few rounds. */
		int rounds = sizes[s] >= (1u << 20) ? 2
			     : is_jemalloc()	    ? 120
						    : 4;
		int live = sizes[s] >= (1u << 20) ? 50 : LIVE;
		for (int r = 0; r < rounds; r++) {
			for (int i = 0; i < live; i++) {
				a[i] = slm_arena_alloc(arenas, node, sizes[s]);
				CU_ASSERT_PTR_NOT_NULL_FATAL(a[i]);
				memset(a[i], i, 32);
			}
			for (int i = 0; i < live; i++) {
				if (((unsigned char *)a[i])[31] !=
				    (unsigned char)i)
					CU_FAIL("arena object overwritten");
				slm_arena_free(arenas, a[i]);
			}
		}
		for (int r = 0; r < 2; r++) {
			for (int i = 0; i < live; i++) {
				h[i] = malloc(sizes[s]);
				CU_ASSERT_PTR_NOT_NULL_FATAL(h[i]);
				memset(h[i], i, 32);
			}
			for (int i = 0; i < live; i++)
				free(h[i]);
		}
		check_object(node, sizes[s]);
	}
	free(a);
	free(h);
	CU_ASSERT_EQUAL(slm_arenas_bind_failures(arenas), 0);
}

static void test_bad_input(void)
{
	CU_ASSERT_PTR_NULL(slm_arena_alloc(arenas, 4000, 64));
	CU_ASSERT_PTR_NULL(slm_arena_alloc(arenas, -1, 64));
	CU_ASSERT_PTR_NULL(slm_arena_calloc(arenas, 0, SIZE_MAX / 2, 4));
	slm_arena_free(arenas, NULL);
	void *p = slm_arena_alloc(arenas,
				  slm_topo_info(topo)->nodes[0].os_index, 0);
	CU_ASSERT_PTR_NOT_NULL(p);
	slm_arena_free(arenas, p);
	const char *backend = slm_arenas_backend(arenas);
	CU_ASSERT(!strcmp(backend, "jemalloc") ||
		  !strcmp(backend, "malloc+move_pages"));

	struct slm_topo *synth = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(
		slm_topo_open("synthetic:package:2 numa:1 core:2 pu:1", &synth,
			      &err),
		0);
	struct slm_arenas *a = (struct slm_arenas *)1;
	CU_ASSERT_EQUAL(slm_arenas_create(synth, &a, &err), SLM_ESTATE);
	CU_ASSERT_PTR_NULL(a);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "this machine"));
	slm_topo_close(synth);
}

/* Create and destroy again: arenas are released and reusable. */
static void test_lifecycle(void)
{
	for (int i = 0; i < 8; i++) {
		struct slm_arenas *a = NULL;
		struct slm_error err = {0};
		CU_ASSERT_EQUAL_FATAL(slm_arenas_create(topo, &a, &err), 0);
		int node = slm_topo_info(topo)->nodes[0].os_index;
		void *p = slm_arena_alloc(a, node, 1000);
		CU_ASSERT_PTR_NOT_NULL(p);
		slm_arena_free(a, p);
		slm_arenas_destroy(a);
	}
}

static void test_second_node(void)
{
	if (slm_topo_info(topo)->n_nodes < 2) {
		slm_test_skip("this machine has one NUMA node: placement on a "
			      "node other than the allocating thread's cannot "
			      "be observed here (the policy check above still "
			      "ran)");
		return;
	}
	/* Allocate on every node from a thread that runs on node 0's CPUs
	 * only: first touch would put it all on node 0. */
	const struct slm_topo_info *info = slm_topo_info(topo);
	cpu_set_t saved, here;
	CU_ASSERT_EQUAL_FATAL(sched_getaffinity(0, sizeof(saved), &saved), 0);
	CPU_ZERO(&here);
	for (int c = 0; c < info->nodes[0].n_cores; c++)
		CPU_SET(info->cores[info->nodes[0].cores[c]].id, &here);
	CU_ASSERT_EQUAL_FATAL(sched_setaffinity(0, sizeof(here), &here), 0);
	for (int n = 1; n < info->n_nodes; n++)
		if (info->nodes[n].mem_bytes)
			check_object(info->nodes[n].os_index, 64 * 1024);
	CU_ASSERT_EQUAL(sched_setaffinity(0, sizeof(saved), &saved), 0);
}

SLM_SUITE("arena", setup, teardown, {"objects_on_node", test_objects_on_node},
	  {"control", test_control}, {"cross_thread", test_cross_thread},
	  {"mixed_with_heap", test_mixed_with_heap},
	  {"bad_input", test_bad_input}, {"lifecycle", test_lifecycle},
	  {"second_node", test_second_node})
