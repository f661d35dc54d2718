#include "log.h"

#include <stdio.h>
#include <string.h>

static __thread char last_error[512];

int cove_fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return err;
}

const char *cove_last_error(void)
{
	return last_error;
}

void cove_clear_error(void)
{
	last_error[0] = '\0';
}

static void log_v(const char *src, const char *fmt, va_list ap)
{
	char line[1024];
	int n = snprintf(line, sizeof(line), "%s: ", src);

	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	/* One fputs per line so lines from different threads do not mix. */
	fprintf(stderr, "%s\n", line);
}

void log_msg(const char *src, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_v(src, fmt, ap);
	va_end(ap);
}

#define LOG_BURST 5

void log_ratelimited(unsigned *counter, const char *src, const char *fmt, ...)
{
	unsigned n = __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
	va_list ap;

	if (n > LOG_BURST)
		return;
	if (n == LOG_BURST) {
		log_msg(src, "further messages of this kind suppressed");
		return;
	}
	va_start(ap, fmt);
	log_v(src, fmt, ap);
	va_end(ap);
}
