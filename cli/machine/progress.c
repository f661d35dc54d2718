#include "progress.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "human.h"

#define LINE_MAX_COLS	400	/* wider terminals get a line this wide */
#define BAR_MIN		10	/* narrower than this: no bar, just the figures */
#define REDRAW_SECS	0.1	/* at most ten redraws a second */
#define RATE_MIN_SECS	0.05

static double since(const struct timespec *t, const struct timespec *now)
{
	return (now->tv_sec - t->tv_sec) + (now->tv_nsec - t->tv_nsec) / 1e9;
}

/* Columns to draw in: one less than the terminal's, so the cursor never
 * wraps to a new line and '\r' always returns to the start of ours. */
static size_t columns(FILE *f)
{
	struct winsize ws;
	size_t cols = 80;

	if (ioctl(fileno(f), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		cols = ws.ws_col;
	return (cols < LINE_MAX_COLS ? cols : LINE_MAX_COLS) - 1;
}

/* Redraw the item's line in place: "LABEL: TEXT", or "LABEL: VERB", a bar
 * filling the width left, and the figures. */
static void draw(struct progress *p, const char *text, bool last)
{
	char line[LINE_MAX_COLS + 1], figs[96], done[32], total[32], rate[32];
	size_t cols = columns(p->f), len, figs_len = 0;
	struct timespec now;
	double secs;

	clock_gettime(CLOCK_MONOTONIC, &now);
	p->drawn = now;
	secs = since(&p->start, &now);
	len = snprintf(line, sizeof(line), "%s: %s", p->label, text ?: p->verb);
	if (!text) {
		double frac = p->total ? (p->done >= p->total ? 1 : (double)p->done / p->total) : 0;

		/* the rate once there is time enough for it to mean something */
		rate[0] = '\0';
		if (secs >= RATE_MIN_SECS) {
			double r = p->done / secs;

			human_size(r < 1e18 ? r : 1e18, rate, sizeof(rate) - 2);
			strcat(rate, "/s");
		}
		/* fixed widths, so that the bar does not jump as figures change */
		human_size(p->done, done, sizeof(done));
		if (p->total)
			figs_len = snprintf(figs, sizeof(figs), " %3u%% %6s/%-6s %8s",
					    (unsigned)(frac * 100), done,
					    human_size(p->total, total, sizeof(total)), rate);
		else
			figs_len = snprintf(figs, sizeof(figs), " %6s %8s", done, rate);
		figs_len = figs_len < sizeof(figs) ? figs_len : sizeof(figs) - 1;
		/* " [" bar "]" in what the text and figures leave */
		if (p->total && len + 3 + BAR_MIN + figs_len <= cols) {
			size_t width = cols - len - 3 - figs_len, fill = frac * width;

			line[len++] = ' ';
			line[len++] = '[';
			memset(line + len, '=', fill);
			memset(line + len + fill, ' ', width - fill);
			if (fill < width && fill > 0)
				line[len + fill - 1] = '>';
			len += width;
			line[len++] = ']';
		}
		if (len < sizeof(line) - 1) {
			size_t k = figs_len < sizeof(line) - 1 - len ? figs_len : sizeof(line) - 1 - len;

			memcpy(line + len, figs, k);
			len += k;
		}
	}
	if (len > cols)
		len = cols;
	while (len && line[len - 1] == ' ')	/* the room kept for a rate not shown */
		len--;
	line[len] = '\0';
	/* one write per redraw: "\r", the line, erase what an older, longer one left */
	fprintf(p->f, "\r%s\033[K%s", line, last ? "\n" : "");
	fflush(p->f);
}

void progress_init(struct progress *p, FILE *f)
{
	const char *term = getenv("TERM");

	memset(p, 0, sizeof(*p));
	p->f = f;
	p->bars = f && isatty(fileno(f)) && term && term[0] && strcmp(term, "dumb");
}

void progress_begin(struct progress *p, const char *label, const char *verb, const char *line,
		    uint64_t total)
{
	if (!p || !p->f)
		return;
	snprintf(p->label, sizeof(p->label), "%s", label);
	snprintf(p->verb, sizeof(p->verb), "%s", verb);
	p->total = total;
	p->done = 0;
	p->active = true;
	clock_gettime(CLOCK_MONOTONIC, &p->start);
	if (p->bars) {
		draw(p, NULL, false);
	} else if (line) {
		fprintf(p->f, "%s: %s\n", p->label, line);
		fflush(p->f);
	}
}

void progress_advance(struct progress *p, uint64_t bytes)
{
	struct timespec now;

	if (!p || !p->active)
		return;
	p->done = bytes > UINT64_MAX - p->done ? UINT64_MAX : p->done + bytes;
	if (!p->bars)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (since(&p->drawn, &now) >= REDRAW_SECS)
		draw(p, NULL, false);
}

void progress_end(struct progress *p, const char *text)
{
	if (!p || !p->active)
		return;
	p->active = false;
	if (p->bars) {
		draw(p, text, true);
	} else if (text) {
		fprintf(p->f, "%s: %s\n", p->label, text);
		fflush(p->f);
	}
}
