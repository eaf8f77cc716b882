/*
 * log.h: the project's log.  Events go here; statistics go to counters.
 *
 * A line carries a timestamp, a level and a component tag:
 *   2026-11-24T13:07:01.123Z info  gguf: loaded 291 tensors
 * Lines go to stderr, or to the systemd journal (with PRIORITY= and
 * SLM_COMPONENT=) when the process runs under systemd.  The level can be
 * changed at any time from any thread.  Only programs configure the log;
 * libraries call slm_log and nothing else.
 */
#ifndef SLM_COMMON_LOG_H
#define SLM_COMMON_LOG_H

#include <stdbool.h>

#include "common/compiler.h"

enum slm_log_level {
	SLM_LOG_ERROR = 0,
	SLM_LOG_WARN = 1,
	SLM_LOG_INFO = 2,
	SLM_LOG_DEBUG = 3,
	SLM_LOG_TRACE = 4,
};

enum slm_log_target {
	SLM_LOG_TARGET_AUTO = 0, /* journal under systemd, else stderr */
	SLM_LOG_TARGET_STDERR = 1,
	SLM_LOG_TARGET_JOURNAL = 2,
};

/* Choose where lines go; safe to call again (e.g. after a config reload). */
void slm_log_set_target(enum slm_log_target target);
void slm_log_set_level(enum slm_log_level level);
enum slm_log_level slm_log_get_level(void);

/* Parse "error|warn|info|debug|trace"; returns -1 for anything else. */
int slm_log_level_parse(const char *name);
const char *slm_log_level_name(enum slm_log_level level);

static inline bool slm_log_enabled(enum slm_log_level level)
{
	extern int slm_log_current_level;
	return (int)level <=
	       __atomic_load_n(&slm_log_current_level, __ATOMIC_RELAXED);
}

void slm_log_write(enum slm_log_level level, const char *component,
		   const char *fmt, ...) SLM_PRINTF(3, 4);

#define slm_log(level, component, ...)                                \
	do {                                                          \
		if (slm_log_enabled(level))                           \
			slm_log_write(level, component, __VA_ARGS__); \
	} while (0)

#define SLM_ERROR(component, ...) slm_log(SLM_LOG_ERROR, component, __VA_ARGS__)
#define SLM_WARN(component, ...) slm_log(SLM_LOG_WARN, component, __VA_ARGS__)
#define SLM_INFO(component, ...) slm_log(SLM_LOG_INFO, component, __VA_ARGS__)
#define SLM_DEBUG(component, ...) slm_log(SLM_LOG_DEBUG, component, __VA_ARGS__)
#define SLM_TRACE(component, ...) slm_log(SLM_LOG_TRACE, component, __VA_ARGS__)

#endif
