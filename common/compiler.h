/*
 * compiler.h: the few compiler attributes and always-on checks every module
 * uses.  Nothing here allocates or prints except SLM_ASSERT, which reports
 * a broken invariant (never bad input: that gets an error code) and aborts.
 */
#ifndef SLM_COMMON_COMPILER_H
#define SLM_COMMON_COMPILER_H

#include <stddef.h>

#define SLM_MUST_CHECK __attribute__((warn_unused_result))
#define SLM_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define SLM_NORETURN __attribute__((noreturn))
#define SLM_LIKELY(x) __builtin_expect(!!(x), 1)
#define SLM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SLM_CACHELINE 64
#define SLM_ALIGNED_CACHE __attribute__((aligned(SLM_CACHELINE)))
#define SLM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SLM_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SLM_MAX(a, b) ((a) > (b) ? (a) : (b))
#define SLM_EXPORT __attribute__((visibility("default")))

/* Report a failed invariant with expression, file and line, then abort. */
SLM_NORETURN void slm_assert_fail(const char *expr, const char *file, int line);

#define SLM_ASSERT(expr)                                            \
	do {                                                        \
		if (SLM_UNLIKELY(!(expr)))                          \
			slm_assert_fail(#expr, __FILE__, __LINE__); \
	} while (0)

#endif
