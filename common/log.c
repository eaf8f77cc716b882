#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-journal.h>

int slm_log_current_level = SLM_LOG_INFO;
static int log_use_journal;

static const char *const level_names[] = {"error", "warn", "info", "debug",
					  "trace"};
static const int level_priority[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG,
				     LOG_DEBUG};

/*
 * systemd sets JOURNAL_STREAM to "dev:inode" of the stream it connected to
 * stderr; if stderr is still that stream, the journal is where lines belong.
 */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	if (!js)
		return false;
	unsigned long long dev, ino;
	if (sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return st.st_dev == dev && st.st_ino == ino;
}

void slm_log_set_target(enum slm_log_target target)
{
	int journal = target == SLM_LOG_TARGET_JOURNAL ||
		      (target == SLM_LOG_TARGET_AUTO && stderr_is_journal());
	__atomic_store_n(&log_use_journal, journal, __ATOMIC_RELAXED);
}

void slm_log_set_level(enum slm_log_level level)
{
	__atomic_store_n(&slm_log_current_level, (int)level, __ATOMIC_RELAXED);
}

enum slm_log_level slm_log_get_level(void)
{
	return (enum slm_log_level)__atomic_load_n(&slm_log_current_level,
						   __ATOMIC_RELAXED);
}

int slm_log_level_parse(const char *name)
{
	for (size_t i = 0; i < SLM_ARRAY_LEN(level_names); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

const char *slm_log_level_name(enum slm_log_level level)
{
	if ((unsigned)level >= SLM_ARRAY_LEN(level_names))
		return "?";
	return level_names[level];
}

void slm_log_write(enum slm_log_level level, const char *component,
		   const char *fmt, ...)
{
	char text[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if ((unsigned)level >= SLM_ARRAY_LEN(level_names))
		level = SLM_LOG_ERROR;

	if (__atomic_load_n(&log_use_journal, __ATOMIC_RELAXED)) {
		sd_journal_send("MESSAGE=%s: %s", component, text,
				"PRIORITY=%d", level_priority[level],
				"SLM_COMPONENT=%s", component, NULL);
		return;
	}

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	/* One fprintf per line: stdio locks the stream, lines never mix. */
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s: %s\n",
		tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level],
		component, text);
}
