/*
 * The weight loader: every method gives exactly the file's bytes behind
 * every tensor view; the O_DIRECT fallbacks, short reads, EINTR/EAGAIN
 * and I/O errors (injected, and a file really truncated after open) are
 * handled and reported precisely.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "engine/model.h"
#include "engine/weights.h"
#include "tests/unit/harness.h"

static struct slm_model *open_model(const char *path)
{
	struct slm_model *m = NULL;
	struct slm_error err = {0};
	if (access(path, R_OK) != 0) {
		printf("\n    missing model %s\n", path);
		CU_FAIL("model file missing");
		return NULL;
	}
	int rc = slm_model_open(path, &m, &err);
	if (rc)
		printf("\n    %s\n", err.msg);
	CU_ASSERT_EQUAL(rc, 0);
	return m;
}

struct compare {
	const struct slm_model *m;
	int n_views, n_bad;
};

/* The view's bytes are the file's bytes of that tensor. */
static void compare_view(struct slm_tensor *v, void *arg)
{
	struct compare *c = arg;
	if (!slm_tensor_present(v))
		return;
	c->n_views++;
	const uint8_t *file = gguf_mapping(c->m->file) +
			      gguf_data_offset(c->m->file) + v->offset;
	if (!v->data || memcmp(v->data, file, v->bytes) != 0) {
		printf("\n    %s: bytes differ from the file\n", v->name);
		c->n_bad++;
	}
}

/* Load with p and check every view; returns the weights (caller frees)
 * or NULL on a load error (err filled). */
static struct slm_weights *load_and_compare(const struct slm_model *m,
					    const struct slm_load_params *p,
					    struct slm_error *err)
{
	struct slm_weights *w = NULL;
	int rc = slm_weights_load(m, p, &w, err);
	if (rc)
		return NULL;
	struct compare c = {.m = m};
	slm_tensors_for_each(&w->t, compare_view, &c);
	CU_ASSERT_EQUAL(c.n_bad, 0);
	CU_ASSERT(c.n_views > 0);
	CU_ASSERT_EQUAL(w->t.n_layer, m->hp.n_layer);
	/* The model's own table stays without data. */
	CU_ASSERT_PTR_NULL(m->tensors.token_embd.data);
	if (m->hp.tied_output)
		CU_ASSERT_PTR_EQUAL(w->t.output.data, w->t.token_embd.data);
	return w;
}

static const char *const golden[] = {
	"models/llama-s-F32.gguf",  "models/llama-s-Q4_K_M.gguf",
	"models/llama-s-Q2_K.gguf", "models/llama3-s-Q6_K.gguf",
	"models/qwen2-s-Q4_0.gguf", "models/qwen2-s-F16.gguf",
};

static void test_methods_identical(void)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(golden); i++) {
		struct slm_model *m = open_model(slm_test_generated(golden[i]));
		if (!m)
			continue;
		for (int method = 0; method <= SLM_LOAD_MMAP; method++) {
			struct slm_load_params p;
			slm_load_params_default(&p);
			p.method = (enum slm_load_method)method;
			struct slm_error err = {0};
			struct slm_weights *w = load_and_compare(m, &p, &err);
			CU_ASSERT_PTR_NOT_NULL(w);
			if (!w) {
				printf("\n    %s: %s\n", golden[i], err.msg);
				continue;
			}
			CU_ASSERT_EQUAL(w->method, method);
			CU_ASSERT_EQUAL(w->bytes,
					gguf_file_size(m->file) -
						gguf_data_offset(m->file));
			if (method == SLM_LOAD_MMAP) {
				CU_ASSERT_PTR_NULL(w->mem.ptr);
				CU_ASSERT_PTR_EQUAL(
					w->t.token_embd.data,
					gguf_mapping(m->file) +
						gguf_data_offset(m->file) +
						m->tensors.token_embd.offset);
			} else {
				CU_ASSERT_PTR_NOT_NULL(w->mem.ptr);
			}
			slm_weights_free(w);
		}
		slm_model_close(m);
	}
}

/* Queue depths, block sizes, buffered and direct: the same bytes. */
static void test_geometries(void)
{
	struct slm_model *m =
		open_model(slm_test_generated("models/llama-s-Q4_K_M.gguf"));
	if (!m)
		return;
	static const struct {
		uint32_t qd;
		uint64_t block;
		bool direct;
	} cases[] = {
		{1, 4096, true},       {2, 4096, false},     {3, 12288, true},
		{64, 65536, true},     {8, 1u << 20, false}, {4, 5000, true},
		{256, 8u << 20, true},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(cases); i++) {
		struct slm_load_params p;
		slm_load_params_default(&p);
		p.queue_depth = cases[i].qd;
		p.block_size = cases[i].block;
		p.direct = cases[i].direct;
		p.prefault = i % 2 == 0;
		struct slm_error err = {0};
		struct slm_weights *w = load_and_compare(m, &p, &err);
		CU_ASSERT_PTR_NOT_NULL(w);
		if (!w)
			printf("\n    case %zu: %s\n", i, err.msg);
		if (w) {
			CU_ASSERT_EQUAL(w->block_size % 4096, 0);
		}
		slm_weights_free(w);
	}
	slm_model_close(m);
}

static void count_progress(const struct slm_load_progress *p, void *arg)
{
	uint64_t *state = arg; /* [calls, last done, total, bad] */
	state[0]++;
	if (p->done < state[1] || p->done > p->total)
		state[3]++;
	state[1] = p->done;
	state[2] = p->total;
}

static void test_progress(void)
{
	struct slm_model *m =
		open_model(slm_test_generated("models/llama-s-F32.gguf"));
	if (!m)
		return;
	for (int method = 0; method <= SLM_LOAD_MMAP; method++) {
		uint64_t state[4] = {0};
		struct slm_load_params p;
		slm_load_params_default(&p);
		p.method = (enum slm_load_method)method;
		p.block_size = 65536;
		p.queue_depth = 2; /* at most 2 completions per report */
		p.progress = count_progress;
		p.progress_arg = state;
		p.progress_interval_ns = 1; /* every read */
		struct slm_error err = {0};
		struct slm_weights *w = load_and_compare(m, &p, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(w);
		CU_ASSERT(state[0] > 10);     /* called as reads complete */
		CU_ASSERT_EQUAL(state[3], 0); /* never backwards or past */
		CU_ASSERT_EQUAL(state[1], state[2]); /* ends at the total */
		/* uring reads from the aligned offset below the data. */
		CU_ASSERT(state[2] >= w->bytes && state[2] - w->bytes < 65536);
		slm_weights_free(w);
	}
	slm_model_close(m);
}

static struct slm_weights *load_faulty(const struct slm_model *m,
				       enum slm_load_method method,
				       const struct slm_load_faults *f,
				       struct slm_error *err)
{
	struct slm_load_params p;
	slm_load_params_default(&p);
	p.method = method;
	p.block_size = 65536;
	p.queue_depth = 8;
	p.faults = f;
	return load_and_compare(m, &p, err);
}

/* Short reads, EINTR and EAGAIN are retried until the bytes are in. */
static void test_retries(void)
{
	struct slm_model *m =
		open_model(slm_test_generated("models/llama-s-Q8_0.gguf"));
	if (!m)
		return;
	struct slm_load_faults f = {
		.eagain_every = 3, .eintr_every = 5, .short_every = 2};
	for (int method = 0; method <= SLM_LOAD_READ; method++) {
		struct slm_error err = {0};
		struct slm_weights *w =
			load_faulty(m, (enum slm_load_method)method, &f, &err);
		CU_ASSERT_PTR_NOT_NULL(w);
		if (!w)
			printf("\n    %s\n", err.msg);
		slm_weights_free(w);
	}
	slm_model_close(m);
}

/* O_DIRECT refused at open, or failing at the first read: buffered reads,
 * said so, same bytes. */
static void test_direct_fallback(void)
{
	struct slm_model *m =
		open_model(slm_test_generated("models/llama-s-Q4_0.gguf"));
	if (!m)
		return;
	struct slm_load_faults refuse = {.refuse_direct = true};
	struct slm_error err = {0};
	/* The fallback is logged as a warning: keep the test output clean
	 * (the warning text is w->fallback, checked below). */
	enum slm_log_level level = slm_log_get_level();
	slm_log_set_level(SLM_LOG_ERROR);
	struct slm_weights *w = load_faulty(m, SLM_LOAD_URING, &refuse, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT_FALSE(w->direct);
	CU_ASSERT_PTR_NOT_NULL(strstr(w->fallback, "refuses O_DIRECT"));
	slm_weights_free(w);

	struct slm_load_faults einval = {.direct_read_einval = true};
	w = load_faulty(m, SLM_LOAD_URING, &einval, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT_FALSE(w->direct);
	CU_ASSERT_PTR_NOT_NULL(strstr(w->fallback, "EINVAL"));
	slm_weights_free(w);

	/* No io_uring (disabled by sysctl or seccomp): pread, said so. */
	struct slm_load_faults no_uring = {.no_uring = true};
	w = load_faulty(m, SLM_LOAD_URING, &no_uring, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT_EQUAL(w->method, SLM_LOAD_READ);
	CU_ASSERT_PTR_NOT_NULL(
		strstr(w->fallback, "io_uring is not available"));
	slm_weights_free(w);

	/* Without faults, on this file system: direct, or a reason. */
	w = load_faulty(m, SLM_LOAD_URING, NULL, &err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT(w->direct || w->fallback[0]);
	if (w->direct) {
		CU_ASSERT(w->dio_align >= 512);
		CU_ASSERT_EQUAL(w->fallback[0], '\0');
	}
	slm_weights_free(w);
	slm_model_close(m);
	slm_log_set_level(level);
}

/* A copy of a golden model in dir; returns its path. */
static const char *copy_model(const char *name, const char *dir, const char *as)
{
	static char path[4096];
	size_t len;
	char *bytes = slm_test_read_file(slm_test_generated(name), &len);
	if (!bytes)
		return NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, as);
	FILE *f = fopen(path, "wb");
	bool ok = f && fwrite(bytes, 1, len, f) == len;
	if (f)
		ok &= fclose(f) == 0;
	free(bytes);
	return ok ? path : NULL;
}

/* A file on tmpfs: loads with every method.  (Kernels before 6.6 refuse
 * O_DIRECT on tmpfs, which exercises the fallback for real.) */
static void test_tmpfs(void)
{
	struct stat st;
	if (stat("/dev/shm", &st) != 0 || !S_ISDIR(st.st_mode) ||
	    access("/dev/shm", W_OK) != 0) {
		slm_test_skip("no writable /dev/shm");
		return;
	}
	char dir[] = "/dev/shm/slm-weights-XXXXXX";
	CU_ASSERT_PTR_NOT_NULL_FATAL(mkdtemp(dir));
	const char *path =
		copy_model("models/llama3-s-Q4_K_M.gguf", dir, "m.gguf");
	CU_ASSERT_PTR_NOT_NULL(path);
	struct slm_model *m = path ? open_model(path) : NULL;
	for (int method = 0; m && method <= SLM_LOAD_MMAP; method++) {
		struct slm_error err = {0};
		struct slm_weights *w = load_faulty(
			m, (enum slm_load_method)method, NULL, &err);
		CU_ASSERT_PTR_NOT_NULL(w);
		if (w && method == SLM_LOAD_URING)
			CU_ASSERT(w->direct || w->fallback[0]);
		slm_weights_free(w);
	}
	slm_model_close(m);
	if (path)
		unlink(path);
	rmdir(dir);
}

/* An I/O error names the file, the offset and the length of the read. */
static void test_read_error(void)
{
	struct slm_model *m =
		open_model(slm_test_generated("models/llama-s-Q6_K.gguf"));
	if (!m)
		return;
	uint64_t at = gguf_data_offset(m->file) + 300000;
	struct slm_load_faults eio = {.eio_at = at + 1};
	for (int method = 0; method <= SLM_LOAD_READ; method++) {
		struct slm_error err = {0};
		struct slm_weights *w = load_faulty(
			m, (enum slm_load_method)method, &eio, &err);
		CU_ASSERT_PTR_NULL(w);
		CU_ASSERT_EQUAL(err.code, SLM_EIO);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, m->path));
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "failed: Input/output "
						       "error"));
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "read of "));
		slm_weights_free(w);
	}
	/* The file seems to end early (as after a truncation between the
	 * size check and the reads). */
	struct slm_load_faults shrink = {.shrink_at = at + 1};
	for (int method = 0; method <= SLM_LOAD_MMAP; method++) {
		struct slm_error err = {0};
		struct slm_weights *w = load_faulty(
			m, (enum slm_load_method)method, &shrink, &err);
		CU_ASSERT_PTR_NULL(w);
		CU_ASSERT_EQUAL(err.code, SLM_EIO);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "shorter than when it "
						       "was opened") ||
				       strstr(err.msg, "truncated while "
						       "loading"));
		slm_weights_free(w);
	}
	slm_model_close(m);
}

/* A file really truncated after the model was opened. */
static void test_truncated_after_open(void)
{
	const char *path = copy_model("models/llama-s-Q5_1.gguf",
				      slm_test_tmpdir(), "trunc.gguf");
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	struct slm_model *m = open_model(path);
	if (!m)
		return;
	CU_ASSERT_EQUAL_FATAL(
		truncate(path, (off_t)(gguf_file_size(m->file) / 2)), 0);
	for (int method = 0; method <= SLM_LOAD_MMAP; method++) {
		struct slm_error err = {0};
		struct slm_weights *w = load_faulty(
			m, (enum slm_load_method)method, NULL, &err);
		CU_ASSERT_PTR_NULL(w);
		CU_ASSERT_EQUAL(err.code, SLM_EIO);
		const char *want = method == SLM_LOAD_MMAP
					   ? "shorter than when it was opened"
					   : "changed size since it was opened";
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, want));
		slm_weights_free(w);
	}
	slm_model_close(m);
}

/* A model opened from a buffer has only its mapping to offer. */
static void test_buffer_model(void)
{
	size_t len;
	char *bytes = slm_test_read_file(
		slm_test_generated("models/qwen2-s-Q4_K_M.gguf"), &len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(bytes);
	struct gguf_file *f = NULL;
	struct slm_model *m = NULL;
	struct slm_error err = {0};
	CU_ASSERT_EQUAL_FATAL(gguf_open_buffer(bytes, len, "buf", &f, &err), 0);
	CU_ASSERT_EQUAL_FATAL(slm_model_from_gguf(f, &m, &err), 0);
	struct slm_load_params p;
	slm_load_params_default(&p);
	p.method = SLM_LOAD_MMAP;
	struct slm_weights *w = load_and_compare(m, &p, &err);
	CU_ASSERT_PTR_NOT_NULL(w);
	slm_weights_free(w);
	p.method = SLM_LOAD_URING;
	CU_ASSERT_EQUAL(slm_weights_load(m, &p, &w, &err), SLM_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "opened from memory"));
	slm_model_close(m);
	free(bytes);
}

/* The raw reader reads what is there. */
static void test_read_raw(void)
{
	const char *path = slm_test_generated("models/llama-s-F32.gguf");
	uint64_t bytes, ns;
	struct slm_error err = {0};
	int rc = slm_weights_read_raw(path, 1000, 5000000, 4, 1u << 20, &bytes,
				      &ns, &err);
	if (rc == SLM_EUNSUPPORTED) {
		slm_test_skip("no O_DIRECT here: %s", err.msg);
		return;
	}
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	/* From 1000 rounded down to the alignment, to 5001000. */
	CU_ASSERT(bytes >= 5000000 && bytes <= 5000000 + 4096);
	CU_ASSERT(ns > 0);
	CU_ASSERT_EQUAL(
		slm_weights_read_raw(path, 0, 100, 0, 4096, &bytes, &ns, &err),
		SLM_EINVAL);
}

/* The three huge-page policies; the collapse runs after the load and
 * leaves the bytes as they were. */
static void test_thp_policies(void)
{
	if (access("/sys/kernel/mm/transparent_hugepage/enabled", R_OK) != 0) {
		slm_test_skip("this kernel has no transparent huge pages");
		return;
	}
	struct slm_model *m =
		open_model(slm_test_generated("models/qwen2-s-F16.gguf"));
	if (!m)
		return;
	for (int thp = 0; thp <= SLM_LOAD_THP_OFF; thp++) {
		struct slm_load_params p;
		slm_load_params_default(&p);
		p.thp = (enum slm_load_thp)thp;
		struct slm_error err = {0};
		struct slm_weights *w = load_and_compare(m, &p, &err);
		CU_ASSERT_PTR_NOT_NULL_FATAL(w);
		if (w->mem.hugetlb) {
			/* Reserved pages: no THP, nothing to collapse. */
			CU_ASSERT_EQUAL(slm_weights_wait_huge(w), 0);
		} else if (thp == SLM_LOAD_THP_COLLAPSE) {
			CU_ASSERT_TRUE(w->mem.thp);
			CU_ASSERT(slm_weights_wait_huge(w) > 0);
			CU_ASSERT_PTR_NULL(w->collapse);
			struct compare c = {.m = m};
			slm_tensors_for_each(&w->t, compare_view, &c);
			CU_ASSERT_EQUAL(c.n_bad, 0);
		} else {
			CU_ASSERT_EQUAL(w->mem.thp, thp == SLM_LOAD_THP_FAULT);
			CU_ASSERT_PTR_NULL(w->collapse);
		}
		slm_weights_free(w);
	}
	/* Freed while the collapse may still run: it is stopped first. */
	for (int i = 0; i < 5; i++) {
		struct slm_error err = {0};
		struct slm_weights *w = NULL;
		CU_ASSERT_EQUAL(slm_weights_load(m, NULL, &w, &err), 0);
		slm_weights_free(w);
	}
	slm_model_close(m);
}

static void test_config_params(void)
{
	struct slm_config *cfg = slm_config_create();
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	struct slm_load_params p;
	slm_load_params_from_config(&p, cfg);
	CU_ASSERT_EQUAL(p.method, SLM_LOAD_URING);
	CU_ASSERT_EQUAL(p.queue_depth, SLM_LOAD_DEFAULT_QUEUE_DEPTH);
	CU_ASSERT_EQUAL(p.block_size, SLM_LOAD_DEFAULT_BLOCK_SIZE);
	CU_ASSERT_TRUE(p.direct);
	CU_ASSERT_EQUAL(p.thp, SLM_LOAD_THP_COLLAPSE);
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_config_set(cfg, "model.load", "mmap", &err), 0);
	CU_ASSERT_EQUAL(
		slm_config_set(cfg, "model.load_queue_depth", "7", &err), 0);
	CU_ASSERT_EQUAL(
		slm_config_set(cfg, "model.load_block_size", "256K", &err), 0);
	CU_ASSERT_EQUAL(slm_config_set(cfg, "model.load_direct", "no", &err),
			0);
	CU_ASSERT_EQUAL(slm_config_set(cfg, "model.load_thp", "fault", &err),
			0);
	slm_load_params_from_config(&p, cfg);
	CU_ASSERT_EQUAL(p.method, SLM_LOAD_MMAP);
	CU_ASSERT_EQUAL(p.queue_depth, 7);
	CU_ASSERT_EQUAL(p.block_size, 256 * 1024);
	CU_ASSERT_FALSE(p.direct);
	CU_ASSERT_EQUAL(p.thp, SLM_LOAD_THP_FAULT);
	CU_ASSERT_EQUAL(slm_config_set(cfg, "model.load", "fast", &err),
			SLM_ECONFIG);
	slm_config_destroy(cfg);
}

SLM_SUITE("weights", NULL, NULL,
	  {"every method gives the file's bytes", test_methods_identical},
	  {"queue depths and block sizes", test_geometries},
	  {"progress", test_progress},
	  {"EINTR, EAGAIN, short reads", test_retries},
	  {"O_DIRECT fallback", test_direct_fallback}, {"tmpfs", test_tmpfs},
	  {"read errors", test_read_error},
	  {"file truncated after open", test_truncated_after_open},
	  {"model from a buffer", test_buffer_model},
	  {"raw O_DIRECT read", test_read_raw},
	  {"huge page policies", test_thp_policies},
	  {"config keys", test_config_params})
