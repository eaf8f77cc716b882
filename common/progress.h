/*
 * progress.h: how a program shows the progress of a long action (loading
 * a model): a bar redrawn in place when stderr is a terminal, else a log
 * line every few seconds, so a journal or a CI log gets a handful of
 * lines rather than thousands of carriage returns.  For programs (mains)
 * only: it writes to stderr or the log.
 */
#ifndef SLM_COMMON_PROGRESS_H
#define SLM_COMMON_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct slm_progress {
	const char *what; /* "loading model.gguf" */
	bool tty;	  /* draw a bar (stderr is a terminal) */
	bool drawn;	  /* a bar is on the screen */
	uint64_t last_log_ns;
	uint64_t log_interval_ns;
};

/* Start; `what` must outlive the progress.  Decides bar or log lines. */
void slm_progress_init(struct slm_progress *p, const char *what);

/* Show `done` of `total` bytes at `rate` bytes per second. */
void slm_progress_update(struct slm_progress *p, uint64_t done, uint64_t total,
			 double rate);

/* Clear the bar (terminal) so the next output starts on a clean line. */
void slm_progress_end(struct slm_progress *p);

#endif
