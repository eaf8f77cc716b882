#include "engine/cpu.h"

#include <cpuid.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/compiler.h"
#include "engine/cpu_int.h"

#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

static struct slm_cpu_features features;
static pthread_once_t features_once = PTHREAD_ONCE_INIT;

static uint64_t read_xcr0(void)
{
	uint32_t lo, hi;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return ((uint64_t)hi << 32) | lo;
}

static void detect(void)
{
	struct slm_cpu_features *f = &features;
	unsigned a, b, c, d;
	if (!__get_cpuid(0, &a, &b, &c, &d))
		return;
	unsigned max_leaf = a;
	memcpy(f->vendor, &b, 4);
	memcpy(f->vendor + 4, &d, 4);
	memcpy(f->vendor + 8, &c, 4);
	f->vendor[12] = '\0';

	__cpuid(1, a, b, c, d);
	unsigned fam = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
	if (fam == 0xf)
		fam += (a >> 20) & 0xff;
	if (fam >= 6)
		model |= ((a >> 16) & 0xf) << 4;
	f->family = fam;
	f->model = model;
	f->sse42 = c & (1u << 20);
	f->popcnt = c & (1u << 23);
	f->fma = c & (1u << 12);
	f->f16c = c & (1u << 29);
	f->avx = c & (1u << 28);
	bool osxsave = c & (1u << 27);
	uint64_t xcr0 = osxsave ? read_xcr0() : 0;
	f->os_avx = (xcr0 & 0x6) == 0x6;
	f->os_avx512 = f->os_avx && (xcr0 & 0xe0) == 0xe0;
	f->os_amx = (xcr0 & (3u << 17)) == (3u << 17);

	if (max_leaf >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		f->bmi1 = b & (1u << 3);
		f->avx2 = b & (1u << 5);
		f->bmi2 = b & (1u << 8);
		f->avx512f = b & (1u << 16);
		f->avx512dq = b & (1u << 17);
		f->avx512cd = b & (1u << 28);
		f->avx512bw = b & (1u << 30);
		f->avx512vl = b & (1u << 31);
		f->avx512vbmi = c & (1u << 1);
		f->avx512vnni = c & (1u << 11);
		f->amx_bf16 = d & (1u << 22);
		f->amx_tile = d & (1u << 24);
		f->amx_int8 = d & (1u << 25);
		unsigned max_sub = a;
		if (max_sub >= 1) {
			__cpuid_count(7, 1, a, b, c, d);
			f->avx512bf16 = a & (1u << 5);
		}
	}
	__cpuid(0x80000000, a, b, c, d);
	if (a >= 0x80000001) {
		__cpuid(0x80000001, a, b, c, d);
		f->lzcnt = c & (1u << 5);
	}
}

const struct slm_cpu_features *slm_cpu_features(void)
{
	pthread_once(&features_once, detect);
	return &features;
}

bool slm_cpu_has_simd(enum slm_simd simd)
{
	const struct slm_cpu_features *f = slm_cpu_features();
	bool avx2 = f->os_avx && f->avx && f->avx2 && f->fma && f->f16c &&
		    f->bmi1 && f->bmi2 && f->lzcnt && f->popcnt && f->sse42;
	switch (simd) {
	case SLM_SIMD_SCALAR:
		return true;
	case SLM_SIMD_AVX2:
		return avx2;
	case SLM_SIMD_AVX512:
		return avx2 && f->os_avx512 && f->avx512f && f->avx512bw &&
		       f->avx512vl && f->avx512dq && f->avx512cd &&
		       f->avx512vnni;
	default:
		return false;
	}
}

enum slm_simd slm_cpu_best_simd(void)
{
	if (slm_cpu_has_simd(SLM_SIMD_AVX512))
		return SLM_SIMD_AVX512;
	if (slm_cpu_has_simd(SLM_SIMD_AVX2))
		return SLM_SIMD_AVX2;
	return SLM_SIMD_SCALAR;
}

const char *slm_simd_name(enum slm_simd simd)
{
	switch (simd) {
	case SLM_SIMD_SCALAR:
		return "scalar";
	case SLM_SIMD_AVX2:
		return "avx2";
	case SLM_SIMD_AVX512:
		return "avx512";
	default:
		return "auto";
	}
}

int slm_simd_parse(const char *name, enum slm_simd *out)
{
	if (!strcmp(name, "auto")) {
		*out = SLM_SIMD__COUNT;
		return 0;
	}
	for (int s = 0; s < SLM_SIMD__COUNT; s++) {
		if (!strcmp(name, slm_simd_name((enum slm_simd)s))) {
			*out = (enum slm_simd)s;
			return 0;
		}
	}
	return -1;
}

enum slm_simd slm_simd_choose(enum slm_simd cap)
{
	enum slm_simd best = slm_cpu_best_simd();
	return cap < best ? cap : best;
}

static char feature_buf[320];
static pthread_once_t feature_once = PTHREAD_ONCE_INIT;

static void build_feature_string(void)
{
	const struct slm_cpu_features *f = slm_cpu_features();
	const struct {
		bool on;
		const char *name;
	} list[] = {
		{f->sse42, "sse4.2"},
		{f->popcnt, "popcnt"},
		{f->avx, "avx"},
		{f->avx2, "avx2"},
		{f->fma, "fma"},
		{f->f16c, "f16c"},
		{f->bmi2, "bmi2"},
		{f->avx512f, "avx512f"},
		{f->avx512bw, "avx512bw"},
		{f->avx512vl, "avx512vl"},
		{f->avx512dq, "avx512dq"},
		{f->avx512cd, "avx512cd"},
		{f->avx512vnni, "avx512vnni"},
		{f->avx512bf16, "avx512bf16"},
		{f->avx512vbmi, "avx512vbmi"},
		{f->amx_tile, "amx-tile"},
		{f->amx_int8, "amx-int8"},
		{f->amx_bf16, "amx-bf16"},
	};
	size_t len = (size_t)snprintf(feature_buf, sizeof(feature_buf),
				      "%s family %u model %u:", f->vendor,
				      f->family, f->model);
	for (size_t i = 0; i < SLM_ARRAY_LEN(list); i++)
		if (list[i].on && len < sizeof(feature_buf))
			len += (size_t)snprintf(feature_buf + len,
						sizeof(feature_buf) - len,
						" %s", list[i].name);
}

const char *slm_cpu_feature_string(void)
{
	pthread_once(&feature_once, build_feature_string);
	return feature_buf;
}

/* ---- AMX ------------------------------------------------------------- */

static bool amx_ok;
static const char *amx_why;
static pthread_once_t amx_once = PTHREAD_ONCE_INIT;

static int request_tile_permission(void)
{
	return (int)syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM,
			    XFEATURE_XTILEDATA);
}

static void amx_decide(void)
{
	const struct slm_cpu_features *f = slm_cpu_features();
	if (!f->amx_tile || !f->amx_int8) {
		amx_why = "CPUID does not advertise AMX-TILE and AMX-INT8";
		return;
	}
	if (!f->os_amx) {
		amx_why = "the OS does not enable tile state in XCR0";
		return;
	}
	/*
	 * The trial runs in a child: a fault there (a hypervisor that traps
	 * tile instructions, a kernel that refuses the state) ends the child,
	 * not us.  The child asks for the permission itself, so a refusal is
	 * also seen there first.
	 */
	pid_t pid = fork();
	if (pid < 0) {
		amx_why = "fork for the AMX trial failed";
		return;
	}
	if (pid == 0) {
		if (request_tile_permission() != 0)
			_exit(2);
		_exit(slm_cpu_amx_trial() == 0 ? 0 : 3);
	}
	int status = 0;
	pid_t got;
	do
		got = waitpid(pid, &status, 0);
	while (got < 0 && errno == EINTR);
	if (got != pid) {
		amx_why = "waiting for the AMX trial failed";
		return;
	}
	if (WIFSIGNALED(status)) {
		amx_why = "the AMX trial was killed by a signal (tiles fault "
			  "here)";
		return;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		amx_why = WEXITSTATUS(status) == 2
				  ? "the kernel refused XTILEDATA permission"
				  : "the AMX trial computed a wrong product";
		return;
	}
	if (request_tile_permission() != 0) {
		amx_why = "the kernel refused XTILEDATA permission";
		return;
	}
	amx_ok = true;
	amx_why = "AMX trial tile product correct";
}

bool slm_cpu_amx_probe(const char **why)
{
	pthread_once(&amx_once, amx_decide);
	if (why)
		*why = amx_why;
	return amx_ok;
}
