/*
 * slm bench-kernels: speed of the matrix kernels per weight type and ISA
 * tier, beside the memory read bandwidth measured by the same run.
 *
 *   GEMV  one token through a weight matrix of about --gemv-mb MiB (decode
 *         reads every weight once per token: GB/s of weights read, and the
 *         share of the measured bandwidth);
 *   GEMM  --gemm-tokens tokens through a --gemm-in x --gemm-out matrix
 *         (prefill: GFLOP/s, 2 flops per multiply-add).
 *
 * Weight bytes are real quantized data (random Gaussian rows quantized
 * with the reference quantizer, repeated to fill the matrix), so scales
 * and values are as in a model file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/slm_cmd.h"
#include "common/cli.h"
#include "common/clock.h"
#include "engine/cpu.h"
#include "engine/matmul.h"
#include "engine/membw.h"
#include "engine/quant.h"
#include "engine/threadpool.h"

#define PROG "slm bench-kernels"

static const enum slm_dtype default_types[] = {
	SLM_DTYPE_Q4_0, SLM_DTYPE_Q8_0, SLM_DTYPE_Q4_K, SLM_DTYPE_Q6_K,
	SLM_DTYPE_Q5_K, SLM_DTYPE_Q3_K, SLM_DTYPE_Q2_K, SLM_DTYPE_Q4_1,
	SLM_DTYPE_Q5_0, SLM_DTYPE_Q5_1, SLM_DTYPE_F16,	SLM_DTYPE_BF16,
	SLM_DTYPE_F32,
};

struct opts {
	int threads;
	size_t gemv_bytes;
	int64_t gemm_in, gemm_out, gemm_tokens;
	int reps;
	double min_secs;
	enum slm_dtype types[SLM_DTYPE__COUNT];
	int n_types;
	bool tiers[SLM_SIMD__COUNT];
	bool no_gemm, no_gemv, one_thread;
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double rnd_normal(void)
{
	double u[2];
	for (int i = 0; i < 2; i++) {
		rng_state ^= rng_state >> 12;
		rng_state ^= rng_state << 25;
		rng_state ^= rng_state >> 27;
		u[i] = ((double)((rng_state * 2685821657736338717ull) >> 11) +
			0.5) /
		       9007199254740992.0;
	}
	return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

/* n_out rows of n_in: 64 distinct quantized rows, repeated. */
static void *make_weights(enum slm_dtype t, int64_t n_in, int64_t n_out,
			  size_t *row_bytes)
{
	uint64_t rb;
	if (!slm_dtype_row_bytes(t, (uint64_t)n_in, &rb))
		return NULL;
	uint8_t *w =
		aligned_alloc(64, ((size_t)rb * (size_t)n_out + 63) / 64 * 64);
	if (!w)
		return NULL;
	float *x = malloc((size_t)n_in * sizeof(float));
	int64_t distinct = n_out < 64 ? n_out : 64;
	for (int64_t r = 0; r < distinct; r++) {
		for (int64_t i = 0; i < n_in; i++)
			x[i] = (float)(rnd_normal() * 0.02);
		slm_quantize_ref(t, x, w + (size_t)r * rb, n_in);
	}
	for (int64_t r = distinct; r < n_out; r++)
		memcpy(w + (size_t)r * rb, w + (size_t)(r % distinct) * rb, rb);
	free(x);
	*row_bytes = (size_t)rb;
	return w;
}

struct result {
	double secs; /* best time of one product */
};

/* Best time of `reps` products (at least min_secs of work in all). */
static double time_matmul(struct slm_threadpool *pool,
			  const struct slm_matrix *m, const float *x,
			  int64_t n_tokens, float *y, void *act, void *work,
			  int reps, double min_secs)
{
	double best = 1e30, total = 0;
	slm_matmul(pool, m, x, n_tokens, y, act, work); /* warm */
	for (int r = 0; r < reps || total < min_secs; r++) {
		uint64_t t0 = slm_now_ns();
		slm_matmul(pool, m, x, n_tokens, y, act, work);
		double s = (double)(slm_now_ns() - t0) * 1e-9;
		best = s < best ? s : best;
		total += s;
		if (r > 1000)
			break;
	}
	return best;
}

static void run_type(struct slm_threadpool **pools, int n_pools,
		     const double *bw, const struct opts *o, enum slm_dtype t,
		     enum slm_simd simd)
{
	const struct slm_quant_traits *tr = slm_quant_traits_at(t, simd);
	if (!tr || !tr->vec_dot)
		return;
	slm_quant_set_simd(simd);
	uint64_t rb1;
	if (!slm_dtype_row_bytes(t, 4096, &rb1))
		return;
	/* GEMV: n_in 4096, rows to fill gemv_bytes */
	double gemv_gbs[2] = {0, 0}, gemv_gflops[2] = {0, 0};
	if (!o->no_gemv) {
		int64_t n_in = 4096;
		int64_t n_out = (int64_t)(o->gemv_bytes / rb1);
		size_t rb;
		void *w = make_weights(t, n_in, n_out, &rb);
		if (!w) {
			fprintf(stderr, PROG ": no memory for %s\n",
				slm_dtype_name(t));
			return;
		}
		struct slm_matrix m = {t, n_in, n_out, w, rb};
		float *x = malloc((size_t)n_in * sizeof(float));
		for (int64_t i = 0; i < n_in; i++)
			x[i] = (float)rnd_normal();
		float *y = malloc((size_t)n_out * sizeof(float));
		void *act = aligned_alloc(
			64, (slm_matmul_act_bytes(t, n_in, 1) + 63) / 64 * 64);
		for (int p = 0; p < n_pools; p++) {
			int nth = slm_threadpool_n_threads(pools[p]);
			size_t wb = slm_matmul_work_bytes(&m, nth);
			void *work = wb ? aligned_alloc(64, (wb + 63) / 64 * 64)
					: NULL;
			double s = time_matmul(pools[p], &m, x, 1, y, act, work,
					       o->reps, 0.2);
			gemv_gbs[p] = (double)rb * (double)n_out / s * 1e-9;
			gemv_gflops[p] =
				2.0 * (double)n_in * (double)n_out / s * 1e-9;
			free(work);
		}
		free(w);
		free(x);
		free(y);
		free(act);
	}
	double gemm_gflops[2] = {0, 0};
	if (!o->no_gemm) {
		size_t rb;
		void *w = make_weights(t, o->gemm_in, o->gemm_out, &rb);
		struct slm_matrix m = {t, o->gemm_in, o->gemm_out, w, rb};
		size_t nx = (size_t)(o->gemm_in * o->gemm_tokens);
		float *x = malloc(nx * sizeof(float));
		for (size_t i = 0; i < nx; i++)
			x[i] = (float)rnd_normal();
		float *y = malloc((size_t)(o->gemm_out * o->gemm_tokens) *
				  sizeof(float));
		void *act = aligned_alloc(
			64,
			(slm_matmul_act_bytes(t, o->gemm_in, o->gemm_tokens) +
			 63) / 64 *
				64);
		for (int p = 0; p < n_pools; p++) {
			int nth = slm_threadpool_n_threads(pools[p]);
			size_t wb = slm_matmul_work_bytes(&m, nth);
			void *work = wb ? aligned_alloc(64, (wb + 63) / 64 * 64)
					: NULL;
			double s = time_matmul(pools[p], &m, x, o->gemm_tokens,
					       y, act, work, o->reps, 0.2);
			gemm_gflops[p] = 2.0 * (double)o->gemm_in *
					 (double)o->gemm_out *
					 (double)o->gemm_tokens / s * 1e-9;
			free(work);
		}
		free(w);
		free(x);
		free(y);
		free(act);
	}
	printf("| %-5s | %-6s |", slm_dtype_name(t), slm_simd_name(simd));
	for (int p = 0; p < n_pools; p++)
		if (o->no_gemv)
			printf("     - |    - |     - |");
		else
			printf(" %5.1f | %3.0f%% | %5.1f |", gemv_gbs[p],
			       100.0 * gemv_gbs[p] / bw[p], gemv_gflops[p]);
	for (int p = 0; p < n_pools; p++)
		if (o->no_gemm)
			printf("     - |");
		else
			printf(" %5.1f |", gemm_gflops[p]);
	printf("\n");
	fflush(stdout);
}

static void usage(void)
{
	printf("usage: " PROG " [-t THREADS] [--simd LIST] [--types LIST]\n"
	       "       [--gemv-mb MB] [--gemm-tokens N] [--gemm-in N] "
	       "[--gemm-out N]\n"
	       "       [-r REPS] [--no-gemv] [--no-gemm] [-c FILE] "
	       "[--set K=V]\n"
	       "  -t THREADS      threads of the second column set (default: "
	       "all CPUs);\n"
	       "                  the first is always 1 thread\n"
	       "  --simd LIST     tiers, e.g. avx512,avx2 (default: every "
	       "tier this CPU has,\n"
	       "                  up to engine.simd)\n"
	       "  --types LIST    weight types, e.g. Q4_0,Q8_0,Q4_K\n"
	       "  --gemv-mb MB    GEMV weight matrix size (default 1024)\n"
	       "  --gemm-tokens N tokens of the GEMM (default 128)\n"
	       "  --gemm-in N, --gemm-out N   GEMM matrix shape "
	       "(default 4096 x 4096)\n");
}

static int parse_list_simd(const char *s, struct opts *o)
{
	memset(o->tiers, 0, sizeof(o->tiers));
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		enum slm_simd t;
		if (slm_simd_parse(tok, &t) || t == SLM_SIMD__COUNT)
			return -1;
		o->tiers[t] = true;
	}
	return 0;
}

static int parse_list_types(const char *s, struct opts *o)
{
	o->n_types = 0;
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
		int t = slm_dtype_from_name(tok);
		if (t < 0 ||
		    !slm_quant_traits_at((enum slm_dtype)t, SLM_SIMD_SCALAR) ||
		    !slm_quant_traits_at((enum slm_dtype)t, SLM_SIMD_SCALAR)
			     ->vec_dot)
			return -1;
		if (o->n_types < SLM_DTYPE__COUNT)
			o->types[o->n_types++] = (enum slm_dtype)t;
	}
	return 0;
}

static int cmd_bench_kernels(int argc, char **argv)
{
	struct slm_config_args args = {0};
	struct opts o = {.threads = (int)sysconf(_SC_NPROCESSORS_ONLN),
			 .gemv_bytes = 1024ull << 20,
			 .gemm_in = 4096,
			 .gemm_out = 4096,
			 .gemm_tokens = 128,
			 .reps = 5};
	for (int s = 0; s < SLM_SIMD__COUNT; s++)
		o.tiers[s] = true;
	o.n_types = (int)SLM_ARRAY_LEN(default_types);
	memcpy(o.types, default_types, sizeof(default_types));
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (slm_cli_config_option(&args, argc, argv, &i))
			continue;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage();
			return 0;
		}
		if (!strcmp(a, "--no-gemm")) {
			o.no_gemm = true;
			continue;
		}
		if (!strcmp(a, "--no-gemv")) {
			o.no_gemv = true;
			continue;
		}
		if (!v)
			slm_cli_die(PROG, "option '%s' needs a value", a);
		i++;
		if (!strcmp(a, "-t"))
			o.threads = atoi(v);
		else if (!strcmp(a, "-r"))
			o.reps = atoi(v);
		else if (!strcmp(a, "--gemv-mb"))
			o.gemv_bytes = (size_t)atol(v) << 20;
		else if (!strcmp(a, "--gemm-tokens"))
			o.gemm_tokens = atol(v);
		else if (!strcmp(a, "--gemm-in"))
			o.gemm_in = atol(v);
		else if (!strcmp(a, "--gemm-out"))
			o.gemm_out = atol(v);
		else if (!strcmp(a, "--simd")) {
			if (parse_list_simd(v, &o))
				slm_cli_die(PROG, "bad --simd list '%s'", v);
		} else if (!strcmp(a, "--types")) {
			if (parse_list_types(v, &o))
				slm_cli_die(PROG, "bad --types list '%s'", v);
		} else
			slm_cli_die(PROG, "unknown option '%s'", a);
	}
	if (o.threads < 1 || o.reps < 1 || o.gemm_tokens < 1 ||
	    o.gemm_in < 256 || o.gemm_in % 256 || o.gemm_out < 1 ||
	    o.gemv_bytes < (1u << 20))
		slm_cli_die(PROG, "bad sizes (gemm-in must be a multiple of "
				  "256, gemv-mb >= 1)");
	struct slm_config *cfg = slm_cli_load_config(PROG, &args);
	const char *simd_key = slm_cfg_enum_name(cfg, SLM_CFG_ENGINE_SIMD);
	struct slm_error err = {0};
	if (slm_quant_configure(simd_key, &err))
		slm_cli_die(PROG, "%s", err.msg);
	enum slm_simd cap = slm_quant_simd();
	uint64_t spin_ns =
		(uint64_t)slm_cfg_int(cfg, SLM_CFG_ENGINE_SPIN_US) * 1000;
	slm_config_destroy(cfg);

	int cpus[256];
	int n_pools = o.threads > 1 ? 2 : 1;
	struct slm_threadpool *pools[2] = {NULL, NULL};
	for (int p = 0; p < n_pools; p++) {
		int nth = p == 0 ? 1 : o.threads;
		for (int c = 0; c < nth && c < 256; c++)
			cpus[c] = c % (int)sysconf(_SC_NPROCESSORS_ONLN);
		struct slm_threadpool_params pp = {.n_threads = nth,
						   .cpus = cpus,
						   .pin_caller = true,
						   .spin_ns = spin_ns};
		pools[p] = slm_threadpool_create(&pp, &err);
		if (!pools[p])
			slm_cli_die(PROG, "%s", err.msg);
	}
	printf("%s\n", slm_cpu_feature_string());
	double bw[2] = {0, 0};
	for (int p = 0; p < n_pools; p++)
		bw[p] = slm_membw_read(pools[p], 1024ull << 20, 5);
	printf("memory read bandwidth: %.1f GB/s (1 thread)", bw[0]);
	if (n_pools > 1)
		printf(", %.1f GB/s (%d threads)", bw[1], o.threads);
	printf("\nGEMV: 1 token, %zu MiB of weights, n_in 4096; GEMM: %lld "
	       "tokens, %lld x %lld\n\n",
	       o.gemv_bytes >> 20, (long long)o.gemm_tokens,
	       (long long)o.gemm_in, (long long)o.gemm_out);
	printf("| type  | simd   | GEMV GB/s 1t | %%bw | GFLOP/s |");
	if (n_pools > 1)
		printf(" GEMV GB/s %dt | %%bw | GFLOP/s |", o.threads);
	printf(" GEMM GFLOP/s 1t |");
	if (n_pools > 1)
		printf(" GEMM GFLOP/s %dt |", o.threads);
	printf("\n|---|---|---|---|---|");
	if (n_pools > 1)
		printf("---|---|---|");
	printf("---|%s\n", n_pools > 1 ? "---|" : "");
	enum slm_simd saved = slm_quant_simd();
	for (int ti = 0; ti < o.n_types; ti++)
		for (int s = SLM_SIMD__COUNT - 1; s >= 0; s--)
			if (s <= (int)cap && o.tiers[s] &&
			    slm_cpu_has_simd((enum slm_simd)s))
				run_type(pools, n_pools, bw, &o, o.types[ti],
					 (enum slm_simd)s);
	slm_quant_set_simd(saved);
	for (int p = 0; p < n_pools; p++)
		slm_threadpool_destroy(pools[p]);
	return 0;
}

SLM_COMMAND("bench-kernels", cmd_bench_kernels,
	    "benchmark the matrix kernels (GEMV, GEMM) beside memory "
	    "bandwidth")
