/* Error messages for the front ends, and log lines that name their source. */
#ifndef COVE_LOG_H
#define COVE_LOG_H

#include <stdarg.h>

/* Record why a setup step failed, for the front end to print; returns err
 * (a negative errno) so callers can `return cove_fail(-EINVAL, "…")`.
 * The message is per thread; the last one wins. */
int cove_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The message cove_fail last recorded on this thread, or "" if none. */
const char *cove_last_error(void);
void cove_clear_error(void);

/* One line to the monitor's log (stderr unless redirected), prefixed by
 * the source: log_msg("vblk0", "…"). Any thread. */
void log_msg(const char *src, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like log_msg, but at most a few times per counter: for guest-caused
 * conditions, so a misbehaving guest cannot flood the log. */
void log_ratelimited(unsigned *counter, const char *src, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
