/*
 * test_kv.c: the KV block pool and block tables (cache/kv.h): geometry
 * and addressing, allocation until exhaustion, reserve is all or
 * nothing, truncate gives back exactly the blocks no longer needed, bad
 * parameters.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/kv.h"
#include "tests/unit/harness.h"

static struct slm_kv_pool *make(uint32_t n_blocks, enum slm_kv_type t)
{
	struct slm_kv_params p = {.n_layer = 3,
				  .n_head_kv = 2,
				  .head_dim = 24,
				  .block_tokens = 32,
				  .n_blocks = n_blocks,
				  .type = t,
				  .node = SLM_NUMA_ANY};
	struct slm_kv_pool *pool = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_kv_pool_create(&p, &pool, &err), 0);
	return pool;
}

static void test_geometry(void)
{
	for (int t = 0; t < 2; t++) {
		struct slm_kv_pool *pool = make(5, (enum slm_kv_type)t);
		CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
		size_t elt = t == SLM_KV_F16 ? 2 : 4;
		CU_ASSERT_EQUAL(pool->elt, elt);
		CU_ASSERT_EQUAL(pool->head_bytes, 32 * 24 * elt);
		CU_ASSERT_EQUAL(pool->layer_bytes, 2 * 2 * 32 * 24 * elt);
		CU_ASSERT_EQUAL(pool->block_bytes % 64, 0);
		CU_ASSERT(pool->block_bytes >= 3 * pool->layer_bytes);
		CU_ASSERT_EQUAL((uintptr_t)pool->data % 64, 0);
		/* every (block, layer, K/V, head) slice is distinct, inside
		 * the pool, in its block */
		uint8_t *seen = calloc(pool->block_bytes * 5, 1);
		for (uint32_t b = 0; b < 5; b++)
			for (uint32_t l = 0; l < 3; l++)
				for (uint32_t h = 0; h < 2; h++) {
					uint8_t *k = slm_kv_k(pool, b, l, h);
					uint8_t *v = slm_kv_v(pool, b, l, h);
					uint8_t *s[2] = {k, v};
					for (int i = 0; i < 2; i++) {
						size_t off =
							(size_t)(s[i] -
								 pool->data);
						CU_ASSERT_EQUAL(
							off / pool->block_bytes,
							b);
						CU_ASSERT(
							off + pool->head_bytes <=
							pool->block_bytes * 5);
						for (size_t j = 0;
						     j < pool->head_bytes; j++)
							seen[off + j]++;
					}
				}
		size_t twice = 0, once = 0;
		for (size_t i = 0; i < pool->block_bytes * 5; i++) {
			twice += seen[i] > 1;
			once += seen[i] == 1;
		}
		CU_ASSERT_EQUAL(twice, 0);
		CU_ASSERT_EQUAL(once, 5 * 3 * 2 * 2 * pool->head_bytes);
		free(seen);
		CU_ASSERT_EQUAL(slm_kv_pool_bytes(&pool->p),
				pool->block_bytes * 5);
		slm_kv_pool_destroy(pool);
	}
}

static void test_alloc_free(void)
{
	struct slm_kv_pool *pool = make(4, SLM_KV_F16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	uint32_t got[4];
	for (int i = 0; i < 4; i++) {
		got[i] = slm_kv_block_alloc(pool);
		CU_ASSERT(got[i] < 4);
		for (int j = 0; j < i; j++)
			CU_ASSERT_NOT_EQUAL(got[i], got[j]);
	}
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 0);
	CU_ASSERT_EQUAL(slm_kv_block_alloc(pool), SLM_KV_BLOCK_NONE);
	slm_kv_block_free(pool, got[2]);
	CU_ASSERT_EQUAL(slm_kv_block_alloc(pool), got[2]);
	for (int i = 0; i < 4; i++)
		slm_kv_block_free(pool, got[i]);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 4);
	slm_kv_pool_destroy(pool);
}

static void test_tables(void)
{
	struct slm_kv_pool *pool = make(5, SLM_KV_F32);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	struct slm_kv_seq a, b;
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &a, 100), 0);
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &b, 64), 0);
	CU_ASSERT_EQUAL(a.cap, 4); /* ceil(100 / 32) */
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &a, 33), 0);
	CU_ASSERT_EQUAL(a.n_blocks, 2);
	CU_ASSERT_EQUAL(slm_kv_seq_capacity(pool, &a), 64);
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &a, 10), 0); /* no-op */
	CU_ASSERT_EQUAL(a.n_blocks, 2);
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &b, 64), 0);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 1);
	/* all or nothing */
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &a, 100), SLM_EAGAIN);
	CU_ASSERT_EQUAL(a.n_blocks, 2);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 1);
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &a, 101), SLM_ERANGE);
	/* truncate keeps the blocks holding [0, n) */
	a.n_pos = 60;
	slm_kv_seq_truncate(pool, &a, 33);
	CU_ASSERT_EQUAL(a.n_blocks, 2);
	CU_ASSERT_EQUAL(a.n_pos, 33);
	slm_kv_seq_truncate(pool, &a, 32);
	CU_ASSERT_EQUAL(a.n_blocks, 1);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 2);
	slm_kv_seq_truncate(pool, &a, 0);
	CU_ASSERT_EQUAL(a.n_blocks, 0);
	slm_kv_seq_free(pool, &a);
	slm_kv_seq_free(pool, &b);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 5);
	CU_ASSERT_PTR_NULL(b.blocks);
	slm_kv_pool_destroy(pool);
}

static void test_bad_params(void)
{
	struct slm_kv_params p = {.n_layer = 2,
				  .n_head_kv = 1,
				  .head_dim = 64,
				  .block_tokens = 24,
				  .n_blocks = 4,
				  .type = SLM_KV_F16,
				  .node = SLM_NUMA_ANY};
	struct slm_kv_pool *pool = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_kv_pool_create(&p, &pool, &err), SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "multiple of 16"));
	p.block_tokens = 16;
	p.n_blocks = 0;
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_kv_pool_create(&p, &pool, &err), SLM_EINVAL);
	p.n_blocks = UINT32_MAX - 1;
	p.head_dim = UINT32_MAX;
	p.n_layer = UINT32_MAX;
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_kv_pool_create(&p, &pool, &err), SLM_EOVERFLOW);
	CU_ASSERT_PTR_NULL(pool);
	enum slm_kv_type t;
	CU_ASSERT_EQUAL(slm_kv_type_parse("f32", &t), 0);
	CU_ASSERT_EQUAL(t, SLM_KV_F32);
	CU_ASSERT_EQUAL(slm_kv_type_parse("q8_0", &t), SLM_EINVAL);
	CU_ASSERT_STRING_EQUAL(slm_kv_type_name(SLM_KV_F16), "f16");
}

SLM_SUITE("kv", NULL, NULL, {"geometry", test_geometry},
	  {"alloc and free", test_alloc_free}, {"block tables", test_tables},
	  {"bad parameters", test_bad_params})
