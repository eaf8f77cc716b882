#include <stdbool.h>
/*
 * Node-local allocation on the real machine: the memory is where the
 * allocator says (get_mempolicy on the touched pages), 2 MiB aligned,
 * zeroed; bad nodes are refused with the nodes there are; reserved huge
 * pages are used when there are some.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "numa/alloc.h"
#include "tests/unit/harness.h"

static void touch(struct slm_numa_mem *m)
{
	memset(m->ptr, 0x5a, m->size);
}

static void test_local(void)
{
	struct slm_numa_mem m;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(
		slm_numa_alloc(10u << 20, SLM_NUMA_LOCAL, 0, &m, &err), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(m.ptr);
	CU_ASSERT_EQUAL((uintptr_t)m.ptr % SLM_NUMA_HUGE_PAGE, 0);
	CU_ASSERT_EQUAL(m.size, 10u << 20);
	CU_ASSERT(m.mapped >= m.size && m.mapped % SLM_NUMA_HUGE_PAGE == 0);
	const uint8_t *p = m.ptr;
	CU_ASSERT_EQUAL(p[0] | p[m.size / 2] | p[m.size - 1], 0);
	touch(&m);
	/* Bound to the node of this CPU: every page is there. */
	CU_ASSERT(m.node >= 0);
	for (size_t off = 0; off < m.size; off += 1u << 20)
		CU_ASSERT_EQUAL(slm_numa_node_of(p + off), m.node);
	CU_ASSERT(m.hugetlb || m.thp);
	CU_ASSERT(slm_numa_huge_bytes(m.ptr, m.mapped) <= m.mapped);
	slm_numa_free(&m);
	CU_ASSERT_PTR_NULL(m.ptr);
	slm_numa_free(&m); /* an empty struct is fine */
}

static void test_every_node(void)
{
	int n = slm_numa_node_count();
	CU_ASSERT(n >= 1);
	int found = 0;
	for (int node = 0; node < 4096 && found < n; node++) {
		struct slm_numa_mem m;
		struct slm_error err = {0};
		if (slm_numa_alloc(4u << 20, node, SLM_NUMA_NO_HUGE, &m,
				   &err) != 0) {
			CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "does not "
							       "exist"));
			continue;
		}
		found++;
		CU_ASSERT_EQUAL(m.node, node);
		CU_ASSERT_FALSE(m.thp);
		CU_ASSERT_FALSE(m.hugetlb);
		touch(&m);
		CU_ASSERT_EQUAL(slm_numa_node_of(m.ptr), node);
		CU_ASSERT_EQUAL(slm_numa_node_of((uint8_t *)m.ptr + m.size - 1),
				node);
		slm_numa_free(&m);
	}
	CU_ASSERT_EQUAL(found, n);
}

static void test_refusals(void)
{
	struct slm_numa_mem m;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_numa_alloc(1u << 20, 4095, 0, &m, &err),
			SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "node 4095 does not exist"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "this machine has node"));
	CU_ASSERT_PTR_NULL(m.ptr);
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_numa_alloc(0, SLM_NUMA_ANY, 0, &m, &err),
			SLM_EINVAL);
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_numa_alloc(1u << 20, -7, 0, &m, &err), SLM_EINVAL);
}

static void test_unbound(void)
{
	struct slm_numa_mem m;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(
		slm_numa_alloc(3u << 20, SLM_NUMA_ANY, 0, &m, &err), 0);
	CU_ASSERT_EQUAL(m.node, -1);
	touch(&m);
	CU_ASSERT(slm_numa_node_of(m.ptr) >= 0);
	slm_numa_free(&m);
}

static unsigned long free_huge(void)
{
	FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/"
			"free_hugepages",
			"r");
	unsigned long n = 0;
	if (f) {
		if (fscanf(f, "%lu", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n;
}

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

static long read_nr_hugepages(void)
{
	FILE *f = fopen(NR_HUGEPAGES, "r");
	long n = -1;
	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = -1;
		fclose(f);
	}
	return n;
}

static int write_nr_hugepages(long n)
{
	FILE *f = fopen(NR_HUGEPAGES, "w");
	if (!f)
		return -1;
	int rc = fprintf(f, "%ld\n", n) < 0;
	rc |= fclose(f) != 0;
	return rc ? -1 : 0;
}

static void test_hugetlb(void)
{
	/* As root (CI), reserve the pages the test needs and give them back
	 * afterwards; elsewhere the test can only run where pages exist. */
	long before = read_nr_hugepages();
	bool reserved = false;
	if (free_huge() < 2 && before >= 0 && geteuid() == 0)
		reserved = write_nr_hugepages(before + 4) == 0;
	if (free_huge() < 2) {
		if (reserved)
			write_nr_hugepages(before);
		slm_test_skip("no free reserved 2 MiB pages and cannot reserve "
			      "them (not root: echo 4 > " NR_HUGEPAGES ")");
		return;
	}
	struct slm_numa_mem m;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(
		slm_numa_alloc(3u << 20, SLM_NUMA_LOCAL, 0, &m, &err), 0);
	CU_ASSERT_TRUE(m.hugetlb);
	CU_ASSERT_EQUAL(m.page_size, SLM_NUMA_HUGE_PAGE);
	CU_ASSERT_EQUAL(m.mapped, 4u << 20);
	touch(&m);
	CU_ASSERT_EQUAL(slm_numa_huge_bytes(m.ptr, m.mapped), m.mapped);
	if (m.node >= 0)
		CU_ASSERT_EQUAL(slm_numa_node_of(m.ptr), m.node);
	slm_numa_free(&m);
	/* Asked for ordinary pages, it gets them. */
	CU_ASSERT_EQUAL_FATAL(slm_numa_alloc(3u << 20, SLM_NUMA_LOCAL,
					     SLM_NUMA_NO_HUGE, &m, &err),
			      0);
	CU_ASSERT_FALSE(m.hugetlb);
	slm_numa_free(&m);
	if (reserved)
		CU_ASSERT_EQUAL(write_nr_hugepages(before), 0);
}

SLM_SUITE("numa_alloc", NULL, NULL, {"local node", test_local},
	  {"every node", test_every_node}, {"refusals", test_refusals},
	  {"unbound", test_unbound}, {"reserved huge pages", test_hugetlb})
