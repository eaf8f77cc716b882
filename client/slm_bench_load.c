/*
 * slm bench-load: how fast a model's weights get from disk into usable
 * memory, beside the physical limit: the same bytes read raw with
 * O_DIRECT at the same queue depth and block size into a small ring of
 * buffers (no allocation, no page faults, nothing kept).
 *
 * `--cold` drops the page cache before every load and every raw read
 * (posix_fadvise DONTNEED on the file, then /proc/sys/vm/drop_caches = 1;
 * root only), so the numbers are the disk's and not the cache's.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "common/clock.h"
#include "common/progress.h"
#include "engine/model.h"
#include "engine/weights.h"

static const char *const prog = "slm bench-load";

#define MAX_RUNS 100

struct run {
	double open_s;	   /* header parsed, model described */
	double load_s;	   /* every weight byte resident */
	double raw_s;	   /* the raw O_DIRECT read; < 0 when unavailable */
	double collapse_s; /* background move onto huge pages, after */
	double alloc_s;	   /* part of load_s: allocating the region */
	uint64_t bytes;	   /* weight bytes loaded */
	uint64_t raw_bytes;
};

static void progress_cb(const struct slm_load_progress *p, void *arg)
{
	slm_progress_update(arg, p->done, p->total, p->rate);
}

/* Drop the file's pages and the page cache; an error message or NULL. */
static const char *drop_caches(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		close(fd);
	}
	sync();
	int dc = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (dc < 0 || write(dc, "1\n", 2) != 2) {
		snprintf(buf, size, "cannot write /proc/sys/vm/drop_caches: %s",
			 strerror(errno));
		if (dc >= 0)
			close(dc);
		return buf;
	}
	close(dc);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	if (n <= 0)
		return NAN;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: slm bench-load -m FILE [--mode uring|read|mmap] "
		"[--cold] [-r N]\n"
		"                      [--qd N] [--block SIZE] [--node N] "
		"[--no-huge] [--json]\n"
		"  -m FILE        the GGUF model\n"
		"  --mode M       load method (default: config model.load)\n"
		"  --cold         drop the page cache before each read "
		"(root)\n"
		"  -r N           repetitions (default 1); medians reported\n"
		"  --qd N         reads in flight (model.load_queue_depth)\n"
		"  --block SIZE   bytes per read (model.load_block_size)\n"
		"  --node N       NUMA node of the memory (default: local)\n"
		"  --no-huge      ordinary pages (model.load_thp = off)\n"
		"  --buffered     no O_DIRECT for the load (model.load_direct "
		"= false)\n"
		"  --no-prefault  no helper thread faulting memory in ahead\n"
		"  --json         one JSON object\n");
}

static const char *need_arg(int argc, char **argv, int *i)
{
	if (*i + 1 >= argc)
		slm_cli_die(prog, "%s needs a value", argv[*i]);
	return argv[++*i];
}

static long parse_long(const char *opt, const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		slm_cli_die(prog, "%s: '%s' is not a number in %ld..%ld", opt,
			    s, lo, hi);
	return v;
}

static int cmd_bench_load(int argc, char **argv)
{
	struct slm_config_args args = {0};
	const char *path = NULL, *mode = NULL;
	bool cold = false, json = false, no_huge = false, buffered = false;
	bool no_prefault = false;
	long reps = 1, qd = 0, node = SLM_NUMA_LOCAL;
	uint64_t block = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
			path = need_arg(argc, argv, &i);
		} else if (!strcmp(a, "--mode")) {
			mode = need_arg(argc, argv, &i);
		} else if (!strcmp(a, "--cold")) {
			cold = true;
		} else if (!strcmp(a, "-r") || !strcmp(a, "--repeat")) {
			reps = parse_long(a, need_arg(argc, argv, &i), 1,
					  MAX_RUNS);
		} else if (!strcmp(a, "--qd")) {
			qd = parse_long(a, need_arg(argc, argv, &i), 1, 4096);
		} else if (!strcmp(a, "--block")) {
			const char *v = need_arg(argc, argv, &i);
			if (slm_parse_size(v, &block) || block < 4096 ||
			    block > (1u << 30))
				slm_cli_die(prog,
					    "--block: '%s' is not a size in "
					    "4K..1G",
					    v);
		} else if (!strcmp(a, "--node")) {
			node = parse_long(a, need_arg(argc, argv, &i), 0, 4095);
		} else if (!strcmp(a, "--no-huge")) {
			no_huge = true;
		} else if (!strcmp(a, "--buffered")) {
			buffered = true;
		} else if (!strcmp(a, "--no-prefault")) {
			no_prefault = true;
		} else if (!strcmp(a, "--json")) {
			json = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else {
			slm_cli_die(prog, "unknown option '%s' (see --help)",
				    a);
		}
	}
	if (!path)
		slm_cli_die(prog, "no model given (-m FILE)");
	static char mode_set[64]; /* args keeps the pointer */
	if (mode) {
		snprintf(mode_set, sizeof(mode_set), "model.load=%s", mode);
		struct slm_error err = {0};
		if (slm_config_args_add_set(&args, mode_set, &err))
			slm_cli_die(prog, "%s", err.msg);
	}
	if (cold && geteuid() != 0)
		slm_cli_die(prog, "--cold needs root: it writes "
				  "/proc/sys/vm/drop_caches");
	struct slm_config *cfg = slm_cli_load_config(prog, &args);
	struct slm_load_params p;
	slm_load_params_from_config(&p, cfg);
	slm_config_destroy(cfg);
	if (qd)
		p.queue_depth = (uint32_t)qd;
	if (block)
		p.block_size = block;
	if (buffered)
		p.direct = false;
	p.node = (int)node;
	if (no_huge)
		p.thp = SLM_LOAD_THP_OFF;
	if (no_prefault)
		p.prefault = false;

	struct slm_progress bar;
	slm_progress_init(&bar, "loading");
	p.progress = progress_cb;
	p.progress_arg = &bar;

	struct run runs[MAX_RUNS];
	struct slm_weights info = {0}; /* what the last load used */
	uint64_t huge = 0, data_offset = 0, file_size = 0;
	uint32_t n_tensors = 0;
	char raw_why[SLM_ERROR_MSG_MAX] = "";
	char buf[256];
	for (int r = 0; r < reps; r++) {
		struct run *run = &runs[r];
		memset(run, 0, sizeof(*run));
		/* Alternate which read goes first, so neither always meets
		 * a disk the other has just warmed (or a host cache).  The
		 * first run loads first: the raw read needs the data
		 * section's offset. */
		for (int step = 0; step < 2; step++) {
			bool do_raw = (step == 0) == (r % 2 == 1);
			const char *why;
			if (cold && (why = drop_caches(path, buf, sizeof(buf))))
				slm_cli_die(prog, "%s", why);
			struct slm_error err = {0};
			if (do_raw) {
				uint64_t ns;
				run->raw_s = -1;
				if (slm_weights_read_raw(
					    path, data_offset,
					    file_size - data_offset,
					    p.queue_depth, p.block_size,
					    &run->raw_bytes, &ns, &err) == 0)
					run->raw_s = (double)ns / 1e9;
				else
					snprintf(raw_why, sizeof(raw_why), "%s",
						 err.msg);
				continue;
			}
			uint64_t t0 = slm_now_ns();
			struct slm_model *m;
			if (slm_model_open(path, &m, &err)) {
				slm_progress_end(&bar);
				fprintf(stderr, "%s: %s\n", prog, err.msg);
				return 1;
			}
			uint64_t t1 = slm_now_ns();
			struct slm_weights *w;
			if (slm_weights_load(m, &p, &w, &err)) {
				slm_progress_end(&bar);
				fprintf(stderr, "%s: %s\n", prog, err.msg);
				slm_model_close(m);
				return 1;
			}
			uint64_t t2 = slm_now_ns();
			slm_progress_end(&bar);
			run->open_s = (double)(t1 - t0) / 1e9;
			run->load_s = (double)(t2 - t1) / 1e9;
			run->bytes = w->bytes;
			run->alloc_s = (double)w->alloc_ns / 1e9;
			data_offset = gguf_data_offset(m->file);
			file_size = gguf_file_size(m->file);
			n_tensors = (uint32_t)gguf_n_tensors(m->file);
			/* The collapse onto huge pages runs after the load
			 * returned (the weights are usable meanwhile): time
			 * it, and count the huge pages it gave. */
			run->collapse_s =
				(double)slm_weights_wait_huge(w) / 1e9;
			huge = w->mem.ptr ? slm_numa_huge_bytes(w->mem.ptr,
								w->mem.mapped)
					  : 0;
			info = *w;
			info.t.layers = NULL;
			memset(&info.mem, 0, sizeof(info.mem));
			info.mem.node = w->mem.node;
			info.mem.hugetlb = w->mem.hugetlb;
			info.mem.thp = w->mem.thp;
			info.mem.page_size = w->mem.page_size;
			slm_weights_free(w);
			slm_model_close(m);
		}
	}

	double load_s[MAX_RUNS], load_gbs[MAX_RUNS], raw_gbs[MAX_RUNS],
		ratio[MAX_RUNS], total_s[MAX_RUNS];
	int n_raw = 0;
	for (int r = 0; r < reps; r++) {
		load_s[r] = runs[r].load_s;
		total_s[r] = runs[r].open_s + runs[r].load_s;
		load_gbs[r] = (double)runs[r].bytes / runs[r].load_s / 1e9;
		if (runs[r].raw_s > 0) {
			raw_gbs[n_raw] =
				(double)runs[r].raw_bytes / runs[r].raw_s / 1e9;
			ratio[n_raw] = load_gbs[r] / raw_gbs[n_raw];
			n_raw++;
		}
	}
	double med_load = median(load_s, reps);
	double med_total = median(total_s, reps);
	double med_gbs = median(load_gbs, reps);
	double med_raw = median(raw_gbs, n_raw);
	double med_ratio = median(ratio, n_raw);
	double collapse[MAX_RUNS];
	for (int r = 0; r < reps; r++)
		collapse[r] = runs[r].collapse_s;
	double med_collapse = median(collapse, reps);

	const char *method = slm_load_method_name(info.method);
	if (json) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "file", path);
		cJSON_AddNumberToObject(o, "file_bytes", (double)file_size);
		cJSON_AddNumberToObject(o, "data_bytes", (double)runs[0].bytes);
		cJSON_AddNumberToObject(o, "n_tensors", n_tensors);
		cJSON_AddStringToObject(o, "mode", method);
		cJSON_AddBoolToObject(o, "direct", info.direct);
		cJSON_AddNumberToObject(o, "queue_depth", info.queue_depth);
		cJSON_AddNumberToObject(o, "block_size",
					(double)info.block_size);
		cJSON_AddNumberToObject(o, "node", info.mem.node);
		cJSON_AddBoolToObject(o, "hugetlb", info.mem.hugetlb);
		cJSON_AddBoolToObject(o, "thp_advised", info.mem.thp);
		cJSON_AddNumberToObject(o, "huge_bytes", (double)huge);
		cJSON_AddStringToObject(o, "thp", slm_load_thp_name(p.thp));
		cJSON_AddNumberToObject(o, "collapse_s",
					runs[reps - 1].collapse_s);
		cJSON_AddBoolToObject(o, "cold", cold);
		cJSON_AddStringToObject(o, "fallback", info.fallback);
		cJSON *a = cJSON_AddArrayToObject(o, "runs");
		for (int r = 0; r < reps; r++) {
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "open_s", runs[r].open_s);
			cJSON_AddNumberToObject(e, "load_s", runs[r].load_s);
			cJSON_AddNumberToObject(e, "alloc_s", runs[r].alloc_s);
			cJSON_AddNumberToObject(e, "load_gbs",
						(double)runs[r].bytes /
							runs[r].load_s / 1e9);
			if (runs[r].raw_s > 0) {
				cJSON_AddNumberToObject(e, "raw_s",
							runs[r].raw_s);
				cJSON_AddNumberToObject(
					e, "raw_gbs",
					(double)runs[r].raw_bytes /
						runs[r].raw_s / 1e9);
			}
			cJSON_AddItemToArray(a, e);
		}
		cJSON_AddNumberToObject(o, "load_s", med_load);
		cJSON_AddNumberToObject(o, "total_s", med_total);
		cJSON_AddNumberToObject(o, "load_gbs", med_gbs);
		if (n_raw) {
			cJSON_AddNumberToObject(o, "raw_gbs", med_raw);
			cJSON_AddNumberToObject(o, "ratio", med_ratio);
		} else {
			cJSON_AddNullToObject(o, "raw_gbs");
			cJSON_AddNullToObject(o, "ratio");
			cJSON_AddStringToObject(o, "raw_error", raw_why);
		}
		char *text = cJSON_Print(o);
		printf("%s\n", text);
		free(text);
		cJSON_Delete(o);
		return 0;
	}

	printf("model    %s: %.1f MB, %u tensors, %.1f MB of tensor data\n",
	       path, (double)file_size / 1e6, n_tensors,
	       (double)runs[0].bytes / 1e6);
	printf("method   %s", method);
	if (info.method == SLM_LOAD_URING)
		printf(", %s, queue depth %u, block %llu KiB",
		       info.direct ? "O_DIRECT" : "buffered", info.queue_depth,
		       (unsigned long long)info.block_size / 1024);
	else if (info.method == SLM_LOAD_READ)
		printf(", buffered pread, block %llu KiB",
		       (unsigned long long)info.block_size / 1024);
	printf("\n");
	if (info.fallback[0])
		printf("fallback %s\n", info.fallback);
	bool collapsed = info.method != SLM_LOAD_MMAP &&
			 p.thp == SLM_LOAD_THP_COLLAPSE && !info.mem.hugetlb;
	if (info.method == SLM_LOAD_MMAP)
		printf("memory   the page cache (file mapping)\n");
	else
		printf("memory   %s, %s (model.load_thp = %s), %.1f MB on "
		       "huge pages%s\n",
		       info.mem.node >= 0 ? "bound to a node" : "not bound",
		       info.mem.hugetlb ? "reserved 2 MiB pages"
		       : info.mem.thp	? "THP advised"
					: "ordinary pages",
		       slm_load_thp_name(p.thp), (double)huge / 1e6,
		       collapsed ? " after the collapse" : "");
	if (collapsed)
		printf("collapse %.3f s after the load (median; the "
		       "weights are usable meanwhile)\n",
		       med_collapse);
	if (info.mem.node >= 0)
		printf("node     %d\n", info.mem.node);
	printf("cache    %s\n", cold ? "dropped before each read (--cold)"
				     : "as found (warm runs; --cold to drop)");
	printf("\n%-4s %8s %8s %8s %9s %8s %9s %7s\n", "run", "open_s",
	       "load_s", "alloc_s", "load_GB/s", "raw_s", "raw_GB/s", "ratio");
	for (int r = 0; r < reps; r++) {
		const struct run *x = &runs[r];
		double gbs = (double)x->bytes / x->load_s / 1e9;
		printf("%-4d %8.3f %8.3f %8.3f %9.2f", r + 1, x->open_s,
		       x->load_s, x->alloc_s, gbs);
		if (x->raw_s > 0) {
			double rg = (double)x->raw_bytes / x->raw_s / 1e9;
			printf(" %8.3f %9.2f %6.1f%%\n", x->raw_s, rg,
			       100 * gbs / rg);
		} else {
			printf(" %8s %9s %7s\n", "-", "-", "-");
		}
	}
	printf("\nload     %.3f s (open %.3f s + weights %.3f s), %.2f GB/s "
	       "(median of %ld)\n",
	       med_total, med_total - med_load, med_load, med_gbs, reps);
	if (n_raw)
		printf("raw      %.2f GB/s O_DIRECT at the same queue depth "
		       "and block\nratio    %.1f %% of the raw O_DIRECT rate\n",
		       med_raw, 100 * med_ratio);
	else
		printf("raw      unavailable: %s\n", raw_why);
	return 0;
}

SLM_COMMAND("bench-load", cmd_bench_load,
	    "time loading a model's weights against the raw disk rate")
