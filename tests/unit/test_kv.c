/*
 * test_kv.c: the KV block pool and block tables (cache/kv.h): geometry
 * and addressing, allocation until exhaustion, reserve is all or
 * nothing, truncate gives back exactly the blocks no longer needed, bad
 * parameters; reference counts, sharing and copy-on-write (a shared,
 * partly filled block is copied before a write, its valid slots intact,
 * the other sharer's data untouched); a Q8_0 cache through the forward
 * pass against an F32 cache, within a stated tolerance.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/kv.h"
#include "engine/engine.h"
#include "engine/quant.h"
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
	CU_ASSERT_EQUAL(slm_kv_type_parse("q4_0", &t), SLM_EINVAL);
	CU_ASSERT_STRING_EQUAL(slm_kv_type_name(SLM_KV_F16), "f16");
}

static void test_refcounts(void)
{
	struct slm_kv_pool *pool = make(3, SLM_KV_F16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	uint32_t b = slm_kv_block_alloc(pool);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, b), 1);
	slm_kv_block_get(pool, b);
	slm_kv_block_get(pool, b);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, b), 3);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 2);
	slm_kv_block_put(pool, b);
	slm_kv_block_put(pool, b);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 2); /* one reference left */
	slm_kv_block_put(pool, b);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, b), 0);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 3);
	slm_kv_pool_destroy(pool);
}

/* Write a recognisable value into every K and V element of slot s of
 * block b (value = tag + slot, as F16). */
static void fill_slot(struct slm_kv_pool *pool, uint32_t b, uint32_t s,
		      float tag)
{
	const uint32_t nb = pool->p.block_tokens, d = pool->p.head_dim;
	for (uint32_t l = 0; l < pool->p.n_layer; l++)
		for (uint32_t h = 0; h < pool->p.n_head_kv; h++) {
			uint16_t *k = slm_kv_k(pool, b, l, h);
			uint16_t *v = slm_kv_v(pool, b, l, h);
			for (uint32_t e = 0; e < d; e++) {
				k[(size_t)e * nb + s] =
					slm_f32_to_fp16(tag + (float)s);
				v[(size_t)s * d + e] =
					slm_f32_to_fp16(-tag - (float)s);
			}
		}
}

static bool slot_is(struct slm_kv_pool *pool, uint32_t b, uint32_t s, float tag)
{
	const uint32_t nb = pool->p.block_tokens, d = pool->p.head_dim;
	for (uint32_t l = 0; l < pool->p.n_layer; l++)
		for (uint32_t h = 0; h < pool->p.n_head_kv; h++) {
			const uint16_t *k = slm_kv_k(pool, b, l, h);
			const uint16_t *v = slm_kv_v(pool, b, l, h);
			for (uint32_t e = 0; e < d; e++)
				if (slm_fp16_to_f32(k[(size_t)e * nb + s]) !=
					    tag + (float)s ||
				    slm_fp16_to_f32(v[(size_t)s * d + e]) !=
					    -tag - (float)s)
					return false;
		}
	return true;
}

static void test_copy_on_write(void)
{
	struct slm_kv_pool *pool = make(6, SLM_KV_F16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	const uint32_t nb = pool->p.block_tokens;
	struct slm_kv_seq a, b;
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &a, 4 * nb), 0);
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &b, 4 * nb), 0);
	/* a: one full block and 5 slots of a second */
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &a, nb + 5), 0);
	for (uint32_t p = 0; p < nb + 5; p++)
		fill_slot(pool, a.blocks[p / nb], p % nb, 100.0f);
	a.n_pos = nb + 5;
	/* b shares both blocks (a fork) */
	CU_ASSERT_EQUAL(
		slm_kv_seq_share(pool, &b, a.blocks, a.n_blocks, a.n_pos), 0);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, a.blocks[0]), 2);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, a.blocks[1]), 2);
	CU_ASSERT_EQUAL(slm_kv_seq_share(pool, &b, a.blocks, 1, 1),
			SLM_EINVAL); /* not empty */
	/* b appends: its partly filled last block is copied first, the full
	 * one stays shared */
	CU_ASSERT_EQUAL(slm_kv_seq_reserve_need(pool, &b, nb + 6), 1);
	uint32_t free0 = slm_kv_pool_n_free(pool);
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &b, nb + 6), 0);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), free0 - 1);
	CU_ASSERT_EQUAL(b.blocks[0], a.blocks[0]);
	CU_ASSERT_NOT_EQUAL(b.blocks[1], a.blocks[1]);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, a.blocks[1]), 1);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, b.blocks[1]), 1);
	CU_ASSERT_EQUAL(pool->n_copies, 1);
	for (uint32_t s = 0; s < 5; s++)
		CU_ASSERT(slot_is(pool, b.blocks[1], s, 100.0f));
	fill_slot(pool, b.blocks[1], 5, 200.0f); /* b's write */
	b.n_pos = nb + 6;
	/* a's block is untouched: slot 5 still unwritten by b */
	CU_ASSERT(!slot_is(pool, a.blocks[1], 5, 200.0f));
	for (uint32_t s = 0; s < 5; s++)
		CU_ASSERT(slot_is(pool, a.blocks[1], s, 100.0f));
	/* a writing into its own block needs no copy */
	CU_ASSERT_EQUAL(slm_kv_seq_reserve_need(pool, &a, nb + 6), 0);
	/* a rewinds into the shared full block: writing there copies it */
	slm_kv_seq_truncate(pool, &a, nb - 1);
	CU_ASSERT_EQUAL(a.n_blocks, 1);
	CU_ASSERT_EQUAL(slm_kv_seq_reserve_need(pool, &a, nb), 1);
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &a, nb), 0);
	CU_ASSERT_NOT_EQUAL(a.blocks[0], b.blocks[0]);
	for (uint32_t s = 0; s < nb - 1; s++)
		CU_ASSERT(slot_is(pool, a.blocks[0], s, 100.0f));
	/* all or nothing when the pool cannot copy */
	struct slm_kv_seq c;
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &c, 4 * nb), 0);
	CU_ASSERT_EQUAL(slm_kv_seq_share(pool, &c, b.blocks, 2, nb + 3), 0);
	while (slm_kv_pool_n_free(pool))
		(void)slm_kv_block_alloc(pool); /* leaked on purpose: */
	CU_ASSERT_EQUAL(slm_kv_seq_reserve(pool, &c, nb + 4), SLM_EAGAIN);
	CU_ASSERT_EQUAL(c.blocks[1], b.blocks[1]);
	slm_kv_seq_free(pool, &a);
	slm_kv_seq_free(pool, &b);
	slm_kv_seq_free(pool, &c);
	slm_kv_pool_destroy(pool); /* the pool owns the blocks' memory */
}

/* Logits of n ids through a fresh sequence of e. */
static float *logits_of(struct slm_engine *e, const int32_t *ids, uint32_t n)
{
	uint32_t nv = slm_forward_n_vocab(e->fwd);
	float *out = malloc((size_t)n * nv * sizeof(float));
	struct slm_kv_seq seq;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(slm_engine_seq_init(e, &seq), 0);
	if (slm_engine_feed(e, &seq, ids, n, 8, true, out, &err)) {
		printf("\n    %s\n", err.msg);
		CU_FAIL("feed");
	}
	slm_kv_seq_free(e->kv, &seq);
	return out;
}

/*
 * KV quantization: the golden llama-s model (head_dim 32) with a Q8_0
 * cache against an F32 cache, over 100 positions fed in chunks of 8.
 * Tolerance: Q8_0 rounds each K and V element to 1/254 of its block's
 * largest magnitude.  Measured here: rms 0.109, max 0.54 on logits of rms
 * 9.9 (an F16 cache: rms 0.005, max 0.025).  Bounds: rms <= 0.25 (2.5 %
 * of the logits' rms), max <= 1.5, and the argmax may differ only where
 * the F32 top-1 margin is under 0.5.
 */
static void test_q8_0_vs_f32(void)
{
	const char *path = slm_test_generated("models/llama-s-F32.gguf");
	if (access(path, R_OK)) {
		slm_test_skip("%s is not generated", path);
		return;
	}
	struct slm_engine *e[2] = {NULL, NULL};
	const enum slm_kv_type types[2] = {SLM_KV_F32, SLM_KV_Q8_0};
	for (int i = 0; i < 2; i++) {
		struct slm_engine_params p = {.model_path = path,
					      .n_threads = 2,
					      .n_ctx = 128,
					      .n_seq = 1,
					      .max_batch = 8,
					      .kv_type = types[i],
					      .block_tokens = 16,
					      .spin_ns = 100000};
		slm_load_params_default(&p.load);
		p.load.method = SLM_LOAD_READ;
		struct slm_error err = {0};
		CU_ASSERT_EQUAL_FATAL(slm_engine_open(&p, &e[i], &err), 0);
	}
	/* a Q8_0 block is 34 bytes for 32 elements: 17/32 of F16 */
	CU_ASSERT_EQUAL(e[1]->kv->row_bytes, 34);
	CU_ASSERT_EQUAL(e[1]->kv->block_bytes * 64, e[0]->kv->block_bytes * 17);
	enum { N = 100 };
	int32_t ids[N];
	struct slm_test_rng rng = {11};
	for (int i = 0; i < N; i++)
		ids[i] = (int32_t)(slm_test_rand(&rng) % 1024);
	float *a = logits_of(e[0], ids, N), *b = logits_of(e[1], ids, N);
	const uint32_t nv = slm_forward_n_vocab(e[0]->fwd);
	double ss = 0, max = 0;
	int bad_flips = 0;
	for (int r = 0; r < N; r++) {
		const float *x = a + (size_t)r * nv, *y = b + (size_t)r * nv;
		uint32_t ax = 0, ay = 0;
		float top = -INFINITY, second = -INFINITY;
		for (uint32_t i = 0; i < nv; i++) {
			double dd = fabs((double)x[i] - (double)y[i]);
			ss += dd * dd;
			max = dd > max ? dd : max;
			ax = x[i] > x[ax] ? i : ax;
			ay = y[i] > y[ay] ? i : ay;
			if (x[i] > top)
				second = top, top = x[i];
			else if (x[i] > second)
				second = x[i];
		}
		bad_flips += ax != ay && top - second >= 0.5f;
	}
	double rms = sqrt(ss / ((double)N * nv));
	double sx = 0;
	for (size_t i = 0; i < (size_t)N * nv; i++)
		sx += (double)a[i] * a[i];
	printf("\n    q8_0 KV vs f32 KV: rms %.4f max %.4f (logits rms %.3f) ",
	       rms, max, sqrt(sx / ((double)N * nv)));
	CU_ASSERT(rms <= 0.25);
	CU_ASSERT(max <= 1.5);
	CU_ASSERT(rms > 0); /* the cache really was quantized */
	CU_ASSERT_EQUAL(bad_flips, 0);
	free(a);
	free(b);
	slm_engine_close(e[0]);
	slm_engine_close(e[1]);
}

SLM_SUITE("kv", NULL, NULL, {"geometry", test_geometry},
	  {"alloc and free", test_alloc_free}, {"block tables", test_tables},
	  {"bad parameters", test_bad_params}, {"refcounts", test_refcounts},
	  {"copy-on-write", test_copy_on_write},
	  {"q8_0 cache vs f32", test_q8_0_vs_f32})
