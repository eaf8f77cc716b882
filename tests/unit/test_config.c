#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"
#include "tests/unit/harness.h"

static struct slm_config *cfg;

static int setup(void)
{
	return 0;
}

static struct slm_config *fresh(void)
{
	slm_config_destroy(cfg);
	cfg = slm_config_create();
	CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
	return cfg;
}

static int teardown(void)
{
	slm_config_destroy(cfg);
	cfg = NULL;
	return 0;
}

static void test_defaults(void)
{
	fresh();
	CU_ASSERT_EQUAL(slm_cfg_enum(cfg, SLM_CFG_LOG_LEVEL), 2);
	CU_ASSERT_STRING_EQUAL(slm_cfg_enum_name(cfg, SLM_CFG_LOG_LEVEL),
			       "info");
	CU_ASSERT_STRING_EQUAL(slm_cfg_str(cfg, SLM_CFG_MODEL_PATH), "");
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_ENGINE_THREADS), 0);
	CU_ASSERT_STRING_EQUAL(slm_config_origin(cfg, SLM_CFG_ENGINE_THREADS),
			       "default");
	/* Every default in the table parses under its own rules. */
	for (int id = 0; id < SLM_CFG__COUNT; id++) {
		const struct slm_cfg_key *k = slm_config_key(id);
		char name[128];
		snprintf(name, sizeof(name), "%s.%s", k->section, k->name);
		struct slm_error err = {0};
		CU_ASSERT_EQUAL(slm_config_set(cfg, name, k->def, &err), 0);
		CU_ASSERT_EQUAL(slm_config_find(name), id);
		CU_ASSERT_PTR_NOT_NULL(k->help);
		CU_ASSERT(strlen(k->help) > 10);
	}
}

static void test_good_file(void)
{
	fresh();
	struct slm_error err = {0};
	/* Debian's inih strips inline comments after ';'. */
	const char *text = "; a comment\n"
			   "[log]\n"
			   "level = debug\n"
			   "\n"
			   "[engine]\n"
			   "threads = 4   ; inline comment\n";
	CU_ASSERT_EQUAL(slm_config_load_string(cfg, text, "t.conf", &err), 0);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_ENGINE_THREADS), 4);
	CU_ASSERT_EQUAL(slm_cfg_enum(cfg, SLM_CFG_LOG_LEVEL), 3);
	CU_ASSERT_STRING_EQUAL(slm_config_origin(cfg, SLM_CFG_ENGINE_THREADS),
			       "t.conf:6");
	fresh();
	slm_error_clear(&err);
	text = "[log]\nlevel = debug\n[engine]\nthreads = 4\nsimd=avx2\n"
	       "[model]\npath = /srv/models/a model.gguf\n";
	CU_ASSERT_EQUAL(slm_config_load_string(cfg, text, "t.conf", &err), 0);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_ENGINE_THREADS), 4);
	CU_ASSERT_STRING_EQUAL(slm_cfg_enum_name(cfg, SLM_CFG_ENGINE_SIMD),
			       "avx2");
	CU_ASSERT_STRING_EQUAL(slm_cfg_str(cfg, SLM_CFG_MODEL_PATH),
			       "/srv/models/a model.gguf");
	CU_ASSERT_STRING_EQUAL(slm_config_origin(cfg, SLM_CFG_ENGINE_THREADS),
			       "t.conf:4");
	CU_ASSERT_STRING_EQUAL(slm_config_origin(cfg, SLM_CFG_MODEL_PATH),
			       "t.conf:7");
}

/* Load `text`; expect failure with every fragment in the message. */
static void expect_bad(const char *text, const char *frag1, const char *frag2)
{
	fresh();
	struct slm_error err = {0};
	int rc = slm_config_load_string(cfg, text, "bad.conf", &err);
	CU_ASSERT_EQUAL(rc, SLM_ECONFIG);
	CU_ASSERT_EQUAL(err.code, SLM_ECONFIG);
	if (!strstr(err.msg, frag1) || (frag2 && !strstr(err.msg, frag2)))
		fprintf(stderr, "\n    message was: %s\n", err.msg);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, frag1));
	if (frag2)
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, frag2));
}

static void test_bad_lines(void)
{
	expect_bad("[engine]\nthread = 4\n", "bad.conf:2:",
		   "unknown key 'engine.thread' (keys of [engine]: threads");
	expect_bad("[nosuch]\nx = 1\n",
		   "bad.conf:2:", "unknown section [nosuch]");
	expect_bad("threads = 4\n", "bad.conf:1:", "outside of a [section]");
	expect_bad("[engine]\nthreads = four\n", "bad.conf:2:",
		   "key 'engine.threads': bad value 'four' (allowed: an "
		   "integer from 0 to 1024)");
	expect_bad("[engine]\n\nthreads = 5000\n",
		   "bad.conf:3:", "out of bounds");
	expect_bad("[engine]\nthreads = 4x\n", "bad.conf:2:", "bad value");
	expect_bad("[engine]\nthreads =\n", "bad.conf:2:", "bad value ''");
	expect_bad("[engine]\nsimd = sse9\n",
		   "bad.conf:2:", "one of auto|scalar|avx2|avx512");
	expect_bad("[log]\nlevel = info\n[engine\n",
		   "bad.conf:3:", "syntax error");
	expect_bad("[log]\nthis line has no equals sign\n",
		   "bad.conf:2:", "syntax error");
	/* The first bad line is reported, not a later one. */
	expect_bad("[engine]\nthreads = -1\nsimd = bad\n",
		   "bad.conf:2:", "threads");
	/* A bad line leaves the earlier value unchanged. */
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_ENGINE_THREADS), 0);
}

static void test_missing_file(void)
{
	fresh();
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_config_load_file(cfg, "/nonexistent/x.conf", &err),
			SLM_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "/nonexistent/x.conf"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "No such file"));
}

static void test_overrides(void)
{
	fresh();
	struct slm_error err = {0};
	char path[4096];
	snprintf(path, sizeof(path), "%s/o.conf", slm_test_tmpdir());
	FILE *f = fopen(path, "w");
	fputs("[engine]\nthreads = 3\nsimd = avx2\n", f);
	fclose(f);

	struct slm_config_args args = {.file = path};
	/* --set comes after the file whatever the order on the line. */
	CU_ASSERT_EQUAL(
		slm_config_args_add_set(&args, "engine.threads=7", &err), 0);
	CU_ASSERT_EQUAL(slm_config_apply_args(cfg, &args, &err), 0);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_ENGINE_THREADS), 7);
	CU_ASSERT_STRING_EQUAL(slm_config_origin(cfg, SLM_CFG_ENGINE_THREADS),
			       "--set");
	CU_ASSERT_STRING_EQUAL(slm_cfg_enum_name(cfg, SLM_CFG_ENGINE_SIMD),
			       "avx2");

	static const struct {
		const char *arg, *frag;
	} bad[] = {
		{"engine.threads", "not section.key=value"},
		{"engine.nope=1", "unknown key 'engine.nope'"},
		{"nope.x=1", "no section [nope]"},
		{"threads=1", "must be written section.key"},
		{"engine.threads=-3", "out of bounds"},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(bad); i++) {
		slm_error_clear(&err);
		CU_ASSERT_EQUAL(slm_config_set_arg(cfg, bad[i].arg, &err),
				SLM_ECONFIG);
		CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, bad[i].frag));
	}
	struct slm_config_args many = {0};
	int rc = 0;
	for (int i = 0; i <= SLM_CONFIG_MAX_SETS && rc == 0; i++)
		rc = slm_config_args_add_set(&many, "log.level=info", &err);
	CU_ASSERT_EQUAL(rc, SLM_ECONFIG);
}

static void test_runtime_only(void)
{
	fresh();
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_config_set_runtime(cfg, "log.level", "warn", &err),
			0);
	CU_ASSERT_EQUAL(slm_cfg_enum(cfg, SLM_CFG_LOG_LEVEL), 1);
	CU_ASSERT_EQUAL(slm_config_set_runtime(cfg, "model.path", "x", &err),
			SLM_ESTATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "cannot change while running"));
	/* Strings replaced repeatedly stay valid for a reader. */
	const char *before = slm_cfg_str(cfg, SLM_CFG_MODEL_PATH);
	CU_ASSERT_EQUAL(slm_config_set(cfg, "model.path", "a", &err), 0);
	CU_ASSERT_EQUAL(slm_config_set(cfg, "model.path", "b", &err), 0);
	CU_ASSERT_STRING_EQUAL(before, "");
}

static void test_runtime_many(void)
{
	fresh();
	struct slm_error err = {0};
	const char *keys[] = {"numa.affinity_threshold",
			      "numa.affinity_min_prefix"};
	const char *good[] = {"100", "7"};
	CU_ASSERT_EQUAL(slm_config_set_runtime_many(cfg, 2, keys, good,
						    "slmctl (uid 0)", &err),
			0);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_NUMA_AFFINITY_THRESHOLD), 100);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_NUMA_AFFINITY_MIN_PREFIX), 7);
	CU_ASSERT_STRING_EQUAL(
		slm_config_origin(cfg, SLM_CFG_NUMA_AFFINITY_MIN_PREFIX),
		"slmctl (uid 0)");

	/* One bad value: nothing changes, the error names the key. */
	const char *bad[] = {"200", "lots"};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(
		slm_config_set_runtime_many(cfg, 2, keys, bad, NULL, &err),
		SLM_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "numa.affinity_min_prefix"));
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_NUMA_AFFINITY_THRESHOLD), 100);

	/* One key that needs a restart: nothing changes. */
	const char *mixed_keys[] = {"log.level", "engine.threads"};
	const char *mixed[] = {"debug", "4"};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_config_set_runtime_many(cfg, 2, mixed_keys, mixed,
						    NULL, &err),
			SLM_ESTATE);
	CU_ASSERT_STRING_EQUAL(slm_cfg_enum_name(cfg, SLM_CFG_LOG_LEVEL),
			       "info");

	/* The same key twice, an unknown key. */
	const char *twice[] = {"log.level", "log.level"};
	const char *two[] = {"warn", "error"};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(
		slm_config_set_runtime_many(cfg, 2, twice, two, NULL, &err),
		SLM_EINVAL);
	const char *unknown[] = {"log.colour"};
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(
		slm_config_set_runtime_many(cfg, 1, unknown, two, NULL, &err),
		SLM_ECONFIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(err.msg, "unknown key"));

	/* Checking without storing. */
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(
		slm_config_check("numa.affinity_threshold", "12", true, &err),
		0);
	CU_ASSERT_EQUAL(
		slm_config_check("numa.affinity_threshold", "-1", true, &err),
		SLM_ECONFIG);
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_config_check("model.path", "/x", true, &err),
			SLM_ESTATE);
	slm_error_clear(&err);
	CU_ASSERT_EQUAL(slm_config_check("model.path", "/x", false, &err), 0);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_NUMA_AFFINITY_THRESHOLD), 100);
	CU_ASSERT_STRING_EQUAL(slm_cfg_str(cfg, SLM_CFG_MODEL_PATH), "");
}

/*
 * A writer sets two related runtime keys to the same value, again and
 * again; readers that bracket their reads with read_begin/retry must
 * never see the two differ (half a change), and a reader of a string
 * replaced meanwhile must never read freed memory (ASan).
 */
struct race {
	struct slm_config *cfg;
	int stop;
	long torn, reads;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	const char *keys[] = {"numa.affinity_threshold",
			      "numa.affinity_min_prefix"};
	for (int i = 1; i <= 4000; i++) {
		char v[16];
		snprintf(v, sizeof(v), "%d", i % 1000);
		const char *vals[] = {v, v};
		struct slm_error err = {0};
		if (slm_config_set_runtime_many(r->cfg, 2, keys, vals, NULL,
						&err))
			break;
		/* A string key replaced while readers hold the old one. */
		if (slm_config_set(r->cfg, "model.path", i % 2 ? "a.gguf" : "",
				   &err))
			break;
	}
	__atomic_store_n(&r->stop, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *race_reader(void *arg)
{
	struct race *r = arg;
	long torn = 0, reads = 0;
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		int64_t a, b;
		unsigned seq;
		do {
			seq = slm_config_read_begin(r->cfg);
			a = slm_cfg_int(r->cfg,
					SLM_CFG_NUMA_AFFINITY_THRESHOLD);
			b = slm_cfg_int(r->cfg,
					SLM_CFG_NUMA_AFFINITY_MIN_PREFIX);
		} while (slm_config_read_retry(r->cfg, seq));
		torn += a != b;
		const char *path = slm_cfg_str(r->cfg, SLM_CFG_MODEL_PATH);
		reads += (long)strlen(path) >= 0;
		(void)slm_config_origin(r->cfg, SLM_CFG_MODEL_PATH);
	}
	__atomic_add_fetch(&r->torn, torn, __ATOMIC_RELAXED);
	__atomic_add_fetch(&r->reads, reads, __ATOMIC_RELAXED);
	return NULL;
}

static void test_runtime_race(void)
{
	fresh();
	struct slm_error err = {0};
	const char *keys[] = {"numa.affinity_threshold",
			      "numa.affinity_min_prefix"};
	const char *zero[] = {"0", "0"};
	CU_ASSERT_EQUAL_FATAL(
		slm_config_set_runtime_many(cfg, 2, keys, zero, NULL, &err), 0);
	struct race r = {.cfg = cfg};
	pthread_t w, rd[2];
	pthread_create(&rd[0], NULL, race_reader, &r);
	pthread_create(&rd[1], NULL, race_reader, &r);
	pthread_create(&w, NULL, race_writer, &r);
	pthread_join(w, NULL);
	pthread_join(rd[0], NULL);
	pthread_join(rd[1], NULL);
	CU_ASSERT_EQUAL(r.torn, 0);
	CU_ASSERT(r.reads > 0);
	CU_ASSERT_EQUAL(slm_cfg_int(cfg, SLM_CFG_NUMA_AFFINITY_THRESHOLD),
			4000 % 1000);
}

static void test_dump_round_trip(void)
{
	fresh();
	struct slm_error err = {0};
	CU_ASSERT_EQUAL(slm_config_set(cfg, "engine.threads", "12", &err), 0);
	CU_ASSERT_EQUAL(slm_config_set(cfg, "log.level", "trace", &err), 0);
	CU_ASSERT_EQUAL(slm_config_set(cfg, "model.path", "m.gguf", &err), 0);
	char *text = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&text, &len);
	CU_ASSERT_EQUAL(slm_config_dump(cfg, mem), 0);
	fclose(mem);

	struct slm_config *copy = slm_config_create();
	CU_ASSERT_EQUAL(slm_config_load_string(copy, text, "dump", &err), 0);
	if (err.code)
		fprintf(stderr, "\n    %s\n", err.msg);
	for (int id = 0; id < SLM_CFG__COUNT; id++) {
		char a[1024], b[1024];
		slm_config_format(cfg, id, a, sizeof(a));
		slm_config_format(copy, id, b, sizeof(b));
		CU_ASSERT_STRING_EQUAL(a, b);
	}
	slm_config_destroy(copy);
	free(text);
}

static void test_sizes(void)
{
	static const struct {
		const char *text;
		uint64_t bytes;
		int rc;
	} cases[] = {
		{"0", 0, 0},
		{"4096", 4096, 0},
		{"64K", 65536, 0},
		{"64KiB", 65536, 0},
		{"2M", 2u << 20, 0},
		{"512MB", 512u << 20, 0},
		{"3G", 3ull << 30, 0},
		{"1T", 1ull << 40, 0},
		{"7 MiB", 7u << 20, 0},
		{"", 0, SLM_EINVAL},
		{"-1", 0, SLM_EINVAL},
		{"12Q", 0, SLM_EINVAL},
		{"99999999999999999999", 0, SLM_EOVERFLOW},
		{"20000000000T", 0, SLM_EOVERFLOW},
	};
	for (size_t i = 0; i < SLM_ARRAY_LEN(cases); i++) {
		uint64_t v = 0;
		CU_ASSERT_EQUAL(slm_parse_size(cases[i].text, &v), cases[i].rc);
		if (cases[i].rc == 0)
			CU_ASSERT_EQUAL(v, cases[i].bytes);
	}
}

SLM_SUITE("config", setup, teardown, {"defaults", test_defaults},
	  {"good file", test_good_file}, {"bad lines", test_bad_lines},
	  {"missing file", test_missing_file}, {"overrides", test_overrides},
	  {"runtime only", test_runtime_only},
	  {"runtime change of several keys", test_runtime_many},
	  {"runtime change races readers", test_runtime_race},
	  {"dump round trip", test_dump_round_trip}, {"sizes", test_sizes})
