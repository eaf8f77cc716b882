/*
 * test_prefix.c: the prompt-prefix cache (cache/prefix.h) over the KV
 * pool: longest-prefix matching at block granularity, inserting keeps
 * what the tree holds, namespaces never share, LRU eviction order,
 * parents after children, flush, counters; and a randomized stress test
 * with many sequences on a tiny pool, checked after every step against a
 * reference model of the reference counts (every block's count is the
 * number of tables holding it plus one if the tree indexes it) and
 * against the contents each live sequence wrote (eviction never frees or
 * reuses a block in use; copy-on-write keeps sharers apart).
 */
#include <stdlib.h>
#include <string.h>

#include "cache/prefix.h"
#include "tests/unit/harness.h"

enum { NB = 16 }; /* block_tokens */

static struct slm_kv_pool *make_pool(uint32_t n_blocks)
{
	struct slm_kv_params p = {.n_layer = 1,
				  .n_head_kv = 1,
				  .head_dim = 4,
				  .block_tokens = NB,
				  .n_blocks = n_blocks,
				  .type = SLM_KV_F32,
				  .node = SLM_NUMA_ANY};
	struct slm_kv_pool *pool = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_kv_pool_create(&p, &pool, &err), 0);
	return pool;
}

/* A sequence of ids holding `n` tokens, its table reserved and n_pos
 * set (contents are not looked at here). */
static void seq_fill(struct slm_kv_pool *pool, struct slm_kv_seq *s, uint32_t n)
{
	CU_ASSERT_EQUAL_FATAL(slm_kv_seq_reserve(pool, s, n), 0);
	s->n_pos = n;
}

static void test_match_insert(void)
{
	struct slm_kv_pool *pool = make_pool(16);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	struct slm_prefix *t = slm_prefix_create(pool, false);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	int32_t a[5 * NB], b[5 * NB];
	for (int i = 0; i < 5 * NB; i++)
		a[i] = b[i] = i;
	b[2 * NB + 3] = 999; /* b shares a's first two blocks */
	struct slm_kv_seq sa, sb;
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &sa, 8 * NB), 0);
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &sb, 8 * NB), 0);
	uint32_t got[8];
	CU_ASSERT_EQUAL(slm_prefix_match(t, NULL, a, 5 * NB, got, 8), 0);
	seq_fill(pool, &sa, 3 * NB + 7);
	/* the 3 full blocks and a tail of 7 go in */
	CU_ASSERT_EQUAL(slm_prefix_insert(t, NULL, a, 3 * NB + 7, sa.blocks),
			4);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, sa.blocks[0]), 2);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, sa.blocks[3]), 2);
	/* again: nothing new */
	CU_ASSERT_EQUAL(slm_prefix_insert(t, NULL, a, 3 * NB + 7, sa.blocks),
			0);
	/* the longest prefix, tail included, and not beyond max */
	CU_ASSERT_EQUAL(slm_prefix_match(t, NULL, a, 5 * NB, got, 8),
			3 * NB + 7);
	CU_ASSERT_EQUAL(got[2], sa.blocks[2]);
	CU_ASSERT_EQUAL(got[3], sa.blocks[3]);
	/* a prompt that ends inside the tail: not a match of the tail */
	CU_ASSERT_EQUAL(slm_prefix_match(t, NULL, a, 3 * NB + 5, got, 8),
			3 * NB);
	CU_ASSERT_EQUAL(slm_prefix_match(t, NULL, a, 3 * NB - 1, got, 8),
			2 * NB);
	CU_ASSERT_EQUAL(slm_prefix_match(t, NULL, a, 5 * NB, got, 1), NB);
	CU_ASSERT_EQUAL(slm_prefix_match(t, NULL, b, 5 * NB, got, 8), 2 * NB);
	CU_ASSERT_EQUAL(slm_prefix_peek(t, NULL, b, 5 * NB), 2 * NB);
	/* b: its own third block beside a's */
	CU_ASSERT_EQUAL(slm_kv_seq_share(pool, &sb, got, 2, 2 * NB), 0);
	seq_fill(pool, &sb, 4 * NB);
	CU_ASSERT_EQUAL(slm_prefix_insert(t, NULL, b, 4 * NB, sb.blocks), 2);
	CU_ASSERT(slm_prefix_check(t));
	struct slm_prefix_stats st;
	slm_prefix_stats_get(t, &st);
	CU_ASSERT_EQUAL(st.blocks_cached, 6);
	CU_ASSERT_EQUAL(st.inserts, 6);
	CU_ASSERT_EQUAL(st.lookups, 6);
	CU_ASSERT_EQUAL(st.hit_tokens, (3 + 3 + 2 + 1 + 2) * NB + 7);
	CU_ASSERT_EQUAL(st.blocks_in_use, 4 + 2); /* sa 4, sb 2 of its own */
	CU_ASSERT_EQUAL(st.blocks_free, 16 - 4 - 2);
	/* namespaces off: a name changes nothing */
	CU_ASSERT_EQUAL(slm_prefix_peek(t, "tenant", a, 5 * NB), 3 * NB + 7);
	slm_kv_seq_free(pool, &sa);
	slm_kv_seq_free(pool, &sb);
	slm_prefix_stats_get(t, &st);
	CU_ASSERT_EQUAL(st.blocks_in_use, 0);
	CU_ASSERT_EQUAL(st.blocks_free, 16 - 6);
	CU_ASSERT_EQUAL(slm_prefix_flush(t), 6);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 16);
	slm_prefix_destroy(t);
	slm_kv_pool_destroy(pool);
}

static void test_namespaces(void)
{
	struct slm_kv_pool *pool = make_pool(8);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	struct slm_prefix *t = slm_prefix_create(pool, true);
	int32_t a[2 * NB];
	for (int i = 0; i < 2 * NB; i++)
		a[i] = 7 * i;
	struct slm_kv_seq s;
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &s, 4 * NB), 0);
	seq_fill(pool, &s, 2 * NB);
	CU_ASSERT_EQUAL(slm_prefix_insert(t, "alice", a, 2 * NB, s.blocks), 2);
	CU_ASSERT_EQUAL(slm_prefix_peek(t, "alice", a, 2 * NB), 2 * NB);
	CU_ASSERT_EQUAL(slm_prefix_peek(t, "bob", a, 2 * NB), 0);
	CU_ASSERT_EQUAL(slm_prefix_peek(t, NULL, a, 2 * NB), 0);
	CU_ASSERT_EQUAL(slm_prefix_peek(t, "", a, 2 * NB), 0);
	struct slm_prefix_stats st;
	slm_prefix_stats_get(t, &st);
	CU_ASSERT_EQUAL(st.namespaces, 1);
	slm_kv_seq_free(pool, &s);
	/* evicting a namespace's last block forgets the namespace */
	CU_ASSERT_EQUAL(slm_prefix_evict(t, 8), 2);
	slm_prefix_stats_get(t, &st);
	CU_ASSERT_EQUAL(st.namespaces, 0);
	CU_ASSERT_EQUAL(st.evictions, 2);
	CU_ASSERT(slm_prefix_check(t));
	slm_prefix_destroy(t);
	slm_kv_pool_destroy(pool);
}

static void test_lru(void)
{
	struct slm_kv_pool *pool = make_pool(8);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	struct slm_prefix *t = slm_prefix_create(pool, false);
	/* three prompts of 2 blocks with a common first block */
	int32_t p[3][2 * NB];
	for (int k = 0; k < 3; k++)
		for (int i = 0; i < 2 * NB; i++)
			p[k][i] = i < NB ? i : 100 * (k + 1) + i;
	uint32_t second[3];
	for (int k = 0; k < 3; k++) {
		struct slm_kv_seq s;
		uint32_t got[2];
		CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &s, 2 * NB), 0);
		uint32_t m = slm_prefix_match(t, NULL, p[k], 2 * NB, got, 2);
		CU_ASSERT_EQUAL(slm_kv_seq_share(pool, &s, got, m / NB, m), 0);
		seq_fill(pool, &s, 2 * NB);
		slm_prefix_insert(t, NULL, p[k], 2 * NB, s.blocks);
		second[k] = s.blocks[1];
		slm_kv_seq_free(pool, &s);
	}
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 8 - 4);
	/* use prompt 0 again: prompt 1's leaf is now the oldest */
	uint32_t got[2];
	CU_ASSERT_EQUAL(slm_prefix_match(t, NULL, p[0], 2 * NB, got, 2),
			2 * NB);
	CU_ASSERT_EQUAL(slm_prefix_evict(t, 5), 1);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, second[1]), 0);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, second[2]), 1);
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, second[0]), 1);
	/* a block a sequence holds is never evicted, nor its parent */
	struct slm_kv_seq s;
	CU_ASSERT_EQUAL(slm_kv_seq_init(pool, &s, 2 * NB), 0);
	CU_ASSERT_EQUAL(slm_prefix_match(t, NULL, p[2], 2 * NB, got, 2),
			2 * NB);
	CU_ASSERT_EQUAL(slm_kv_seq_share(pool, &s, got, 2, 2 * NB), 0);
	CU_ASSERT_EQUAL(slm_prefix_evict(t, 8), 1); /* prompt 0's leaf */
	CU_ASSERT_EQUAL(slm_kv_block_refs(pool, second[2]), 2);
	CU_ASSERT(slm_prefix_check(t));
	slm_kv_seq_free(pool, &s);
	/* now everything goes, children before the shared parent */
	CU_ASSERT_EQUAL(slm_prefix_evict(t, 8), 2);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), 8);
	slm_prefix_destroy(t);
	slm_kv_pool_destroy(pool);
}

/* ---- randomized stress ------------------------------------------------ */

enum { POOL = 16, MAX_SEQ = 6, MAX_LEN = 6 * NB, STEPS = 20000 };

struct live {
	bool on;
	struct slm_kv_seq seq;
	int32_t ids[MAX_LEN];
	uint32_t n_ids; /* tokens decided (>= seq.n_pos) */
	int ns;
};

/* What position p of a sequence whose first p + 1 tokens are ids holds:
 * a hash of them (K and V both). */
static float content(const int32_t *ids, uint32_t p)
{
	uint64_t h = 1469598103934665603ull;
	for (uint32_t i = 0; i <= p; i++)
		h = (h ^ (uint64_t)(uint32_t)ids[i]) * 1099511628211ull;
	return (float)(h & 0xffffff);
}

static float *slot_k(struct slm_kv_pool *pool, const struct slm_kv_seq *s,
		     uint32_t p)
{
	float *k = slm_kv_k(pool, s->blocks[p / NB], 0, 0);
	return k + p % NB; /* element 0 of position p (transposed K) */
}

static float *slot_v(struct slm_kv_pool *pool, const struct slm_kv_seq *s,
		     uint32_t p)
{
	float *v = slm_kv_v(pool, s->blocks[p / NB], 0, 0);
	return v + (size_t)(p % NB) * 4;
}

static const char *const ns_names[3] = {NULL, "a", "b"};

/* Reserve with the serving core's policy: evict the cache first; false
 * when even that leaves too few blocks. */
static bool reserve(struct slm_prefix *t, struct slm_kv_pool *pool,
		    struct slm_kv_seq *s, uint32_t n)
{
	uint32_t need = slm_kv_seq_reserve_need(pool, s, n);
	if (need > slm_kv_pool_n_free(pool))
		slm_prefix_evict(t, need);
	return slm_kv_seq_reserve(pool, s, n) == 0;
}

/* Compute positions [n_pos, n) of l: write their contents. */
static bool compute(struct slm_prefix *t, struct slm_kv_pool *pool,
		    struct live *l, uint32_t n)
{
	if (!reserve(t, pool, &l->seq, n))
		return false;
	for (uint32_t p = l->seq.n_pos; p < n; p++) {
		*slot_k(pool, &l->seq, p) = content(l->ids, p);
		*slot_v(pool, &l->seq, p) = -content(l->ids, p);
	}
	l->seq.n_pos = n;
	return true;
}

/* The reference model: references of every block from the tables of the
 * live sequences and the tree; contents of every valid position. */
static bool check_all(struct slm_prefix *t, struct slm_kv_pool *pool,
		      struct live *ls)
{
	uint32_t refs[POOL] = {0};
	struct slm_prefix_stats st;
	slm_prefix_stats_get(t, &st);
	for (int k = 0; k < MAX_SEQ; k++) {
		if (!ls[k].on)
			continue;
		for (uint32_t i = 0; i < ls[k].seq.n_blocks; i++)
			refs[ls[k].seq.blocks[i]]++;
		for (uint32_t p = 0; p < ls[k].seq.n_pos; p++)
			if (*slot_k(pool, &ls[k].seq, p) !=
				    content(ls[k].ids, p) ||
			    *slot_v(pool, &ls[k].seq, p) !=
				    -content(ls[k].ids, p))
				return false;
	}
	/* the tree's share: total - what the tables explain, each 0 or 1,
	 * and exactly blocks_cached of them */
	uint32_t tree = 0, free_n = 0;
	for (uint32_t b = 0; b < POOL; b++) {
		uint32_t r = slm_kv_block_refs(pool, b);
		if (r < refs[b] || r > refs[b] + 1)
			return false;
		tree += r - refs[b];
		free_n += r == 0;
	}
	return tree == st.blocks_cached && free_n == slm_kv_pool_n_free(pool) &&
	       slm_prefix_check(t);
}

static void test_stress(void)
{
	struct slm_kv_pool *pool = make_pool(POOL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
	struct slm_prefix *t = slm_prefix_create(pool, true);
	struct live ls[MAX_SEQ];
	memset(ls, 0, sizeof(ls));
	struct slm_test_rng rng = {2024};
	/* prompts share stems: 4 stems of 3 blocks, small alphabet after */
	int32_t stems[4][3 * NB];
	for (int s = 0; s < 4; s++)
		for (int i = 0; i < 3 * NB; i++)
			stems[s][i] = (int32_t)(slm_test_rand(&rng) % 50);
	uint64_t n_start = 0, n_preempt = 0, n_cow0 = pool->n_copies;
	int bad_step = -1;
	for (int step = 0; step < STEPS && bad_step < 0; step++) {
		int k = (int)(slm_test_rand(&rng) % MAX_SEQ);
		struct live *l = &ls[k];
		uint32_t op = (uint32_t)(slm_test_rand(&rng) % 10);
		if (!l->on) {
			/* start: a stem, part of it, then random tokens */
			l->ns = (int)(slm_test_rand(&rng) % 3);
			int s = (int)(slm_test_rand(&rng) % 4);
			uint32_t keep =
				(uint32_t)(slm_test_rand(&rng) % (3 * NB + 1));
			l->n_ids = 1 + keep +
				   (uint32_t)(slm_test_rand(&rng) % (2 * NB));
			for (uint32_t i = 0; i < l->n_ids; i++)
				l->ids[i] = i < keep ? stems[s][i]
						     : (int32_t)(slm_test_rand(
									 &rng) %
								 3);
			CU_ASSERT_EQUAL_FATAL(
				slm_kv_seq_init(pool, &l->seq, MAX_LEN), 0);
			uint32_t got[MAX_LEN / NB];
			uint32_t m =
				slm_prefix_match(t, ns_names[l->ns], l->ids,
						 l->n_ids, got, MAX_LEN / NB);
			/* recompute at least the last token: step back into
			 * a shared block (copy-on-write) */
			uint32_t pos = SLM_MIN(m, l->n_ids - 1);
			CU_ASSERT_EQUAL_FATAL(
				slm_kv_seq_share(pool, &l->seq, got,
						 slm_kv_blocks_for(pool, pos),
						 pos),
				0);
			l->on = true;
			n_start++;
			if (!compute(t, pool, l, l->n_ids)) {
				slm_kv_seq_free(pool, &l->seq);
				l->on = false;
				n_preempt++;
			} else {
				slm_prefix_insert(t, ns_names[l->ns], l->ids,
						  l->n_ids, l->seq.blocks);
			}
		} else if (op < 6 && l->n_ids < MAX_LEN) {
			/* decode one token */
			l->ids[l->n_ids++] = (int32_t)(slm_test_rand(&rng) % 3);
			if (!compute(t, pool, l, l->n_ids)) {
				/* preempt the sequence (recompute later) */
				slm_kv_seq_free(pool, &l->seq);
				l->on = false;
				n_preempt++;
			}
		} else if (op < 7) {
			/* fork: start another slot from this one */
			for (int j = 0; j < MAX_SEQ; j++) {
				if (ls[j].on)
					continue;
				struct live *f = &ls[j];
				*f = *l;
				CU_ASSERT_EQUAL_FATAL(
					slm_kv_seq_init(pool, &f->seq, MAX_LEN),
					0);
				CU_ASSERT_EQUAL_FATAL(
					slm_kv_seq_share(
						pool, &f->seq, l->seq.blocks,
						l->seq.n_blocks, l->seq.n_pos),
					0);
				if (f->n_ids < MAX_LEN)
					f->ids[f->n_ids++] = 77;
				if (!compute(t, pool, f, f->n_ids)) {
					slm_kv_seq_free(pool, &f->seq);
					f->on = false;
				}
				break;
			}
		} else if (op < 9) {
			/* finish: insert its full blocks, free it */
			slm_prefix_insert(t, ns_names[l->ns], l->ids,
					  l->seq.n_pos, l->seq.blocks);
			slm_kv_seq_free(pool, &l->seq);
			l->on = false;
		} else if (slm_test_rand(&rng) % 50 == 0) {
			slm_prefix_flush(t);
		} else {
			slm_prefix_evict(
				t, (uint32_t)(slm_test_rand(&rng) % POOL));
		}
		if (!check_all(t, pool, ls))
			bad_step = step;
	}
	if (bad_step >= 0)
		printf("\n    the reference model disagrees at step %d\n",
		       bad_step);
	CU_ASSERT_EQUAL(bad_step, -1);
	struct slm_prefix_stats st;
	slm_prefix_stats_get(t, &st);
	printf("\n    %llu starts, %llu preempted, %llu evicted, %llu "
	       "copies, %llu hit tokens ",
	       (unsigned long long)n_start, (unsigned long long)n_preempt,
	       (unsigned long long)st.evictions,
	       (unsigned long long)(pool->n_copies - n_cow0),
	       (unsigned long long)st.hit_tokens);
	/* the test exercised what it is about */
	CU_ASSERT(st.evictions > 100);
	CU_ASSERT(pool->n_copies - n_cow0 > 100);
	CU_ASSERT(n_preempt > 10);
	CU_ASSERT(st.hit_tokens > 1000);
	for (int k = 0; k < MAX_SEQ; k++)
		if (ls[k].on)
			slm_kv_seq_free(pool, &ls[k].seq);
	slm_prefix_destroy(t);
	CU_ASSERT_EQUAL(slm_kv_pool_n_free(pool), POOL);
	slm_kv_pool_destroy(pool);
}

SLM_SUITE("prefix", NULL, NULL, {"match and insert", test_match_insert},
	  {"namespaces", test_namespaces}, {"LRU eviction", test_lru},
	  {"randomized stress vs a reference model", test_stress})
