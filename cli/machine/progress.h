/* Progress of fetching and unpacking images, for the user: on a terminal
 * a bar per item redrawn in place; anywhere else only the plain lines cove
 * has always printed (logs and scripts grep them). */
#ifndef COVE_PROGRESS_H
#define COVE_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define PROGRESS_LABEL_MAX	19	/* "sha256:" and 12 hex digits, docker's short id */

/* One item at a time: begin, advance as bytes go by, end. */
struct progress {
	FILE *f;			/* NULL: silent */
	bool bars;			/* f is a terminal that takes escapes */
	bool active;			/* between begin and end */
	char label[PROGRESS_LABEL_MAX + 1];
	char verb[64];
	uint64_t total, done;		/* total 0: size unknown */
	struct timespec start, drawn;	/* CLOCK_MONOTONIC */
};

/* Report to f (NULL: nowhere). Bars when f is a terminal and TERM is set
 * and not "dumb". Main thread, as are the calls below. */
void progress_init(struct progress *p, FILE *f);

/* Start an item of total bytes (0: unknown), called label (cut to
 * PROGRESS_LABEL_MAX characters). On a terminal: the bar line
 * "LABEL: VERB [====>   ]  42% 1.2MB/2.9MB 3.1MB/s", drawn now and at most
 * ten times a second as it advances. Elsewhere: "LABEL: LINE" now when
 * line is not NULL, else nothing. p may be NULL. */
void progress_begin(struct progress *p, const char *label, const char *verb, const char *line,
		    uint64_t total);

/* bytes more of the item are done (past total is shown as 100%). */
void progress_advance(struct progress *p, uint64_t bytes);

/* End the item. On a terminal its line is redrawn a last time, as
 * "LABEL: TEXT" or (text NULL, e.g. after an error) as the bar stands,
 * and left on screen. Elsewhere: "LABEL: TEXT" when text is not NULL. */
void progress_end(struct progress *p, const char *text);

#endif
