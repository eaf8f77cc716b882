#include "common/progress.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/log.h"

#define BAR_WIDTH 30

void slm_progress_init(struct slm_progress *p, const char *what)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->tty = isatty(STDERR_FILENO) == 1;
	p->log_interval_ns = 2000000000ull;
	p->last_log_ns = slm_now_ns();
}

void slm_progress_update(struct slm_progress *p, uint64_t done, uint64_t total,
			 double rate)
{
	double frac = total ? (double)done / (double)total : 1.0;
	if (frac > 1)
		frac = 1;
	if (p->tty) {
		char bar[BAR_WIDTH + 1];
		int fill = (int)(frac * BAR_WIDTH + 0.5);
		for (int i = 0; i < BAR_WIDTH; i++)
			bar[i] = i < fill ? '#' : '.';
		bar[BAR_WIDTH] = '\0';
		fprintf(stderr, "\r%s [%s] %3.0f%%  %.1f / %.1f MB  %.2f GB/s ",
			p->what, bar, frac * 100, (double)done / 1e6,
			(double)total / 1e6, rate / 1e9);
		fflush(stderr);
		p->drawn = true;
		return;
	}
	uint64_t now = slm_now_ns();
	if (now - p->last_log_ns < p->log_interval_ns && done < total)
		return;
	p->last_log_ns = now;
	SLM_INFO("load", "%s: %.0f%%, %.1f of %.1f MB, %.2f GB/s", p->what,
		 frac * 100, (double)done / 1e6, (double)total / 1e6,
		 rate / 1e9);
}

void slm_progress_end(struct slm_progress *p)
{
	if (p->tty && p->drawn) {
		fprintf(stderr, "\r%*s\r", BAR_WIDTH + 80, "");
		fflush(stderr);
	}
	p->drawn = false;
}
