/* Progress reports: onto a pipe only the plain lines; onto a pty a bar
 * line redrawn in place ('\r', ESC[K) that ends as a normal line and never
 * outgrows the terminal, with or without a known size, and past it. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "progress.h"

#define DIGEST	"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define LABEL	"sha256:0123456789ab"

/* A terminal of cols columns: its slave side as a FILE, its master fd. */
struct term {
	FILE *f;
	int master;
	char out[8192];		/* what it got, with ESC[K taken out */
	size_t len;
	unsigned erases;	/* ESC[K taken out */
};

static void term_open(struct term *t, unsigned short cols)
{
	struct winsize ws = { .ws_row = 24, .ws_col = cols };
	int slave;

	memset(t, 0, sizeof(*t));
	assert_int_equal(openpty(&t->master, &slave, NULL, NULL, &ws), 0);
	t->f = fdopen(slave, "w");
	assert_non_null(t->f);
}

/* Close the slave side and read everything the terminal got; each ESC[K
 * (erase to the end of the line) is counted and taken out. */
static const char *term_close(struct term *t)
{
	struct pollfd pfd = { .fd = t->master, .events = POLLIN };
	ssize_t n;

	fclose(t->f);
	while (t->len < sizeof(t->out) - 1 && poll(&pfd, 1, 1000) == 1) {
		n = read(t->master, t->out + t->len, sizeof(t->out) - 1 - t->len);
		if (n <= 0)
			break;		/* EIO once the slave is gone and all is read */
		t->len += n;
	}
	t->out[t->len] = '\0';
	close(t->master);
	for (char *e; (e = strstr(t->out, "\033[K")); t->erases++) {
		memmove(e, e + 3, t->out + t->len + 1 - (e + 3));
		t->len -= 3;
	}
	return t->out;
}

/* Every redraw (between '\r's) of out fits in cols - 1 columns. */
static void assert_fits(const char *out, size_t cols)
{
	for (const char *s = out; (s = strchr(s, '\r')); ) {
		const char *end = strpbrk(++s, "\r\n");
		size_t len = end ? (size_t)(end - s) : strlen(s);

		assert_true(len <= cols - 1);
	}
}

/* The last redraw in out: from its '\r' (the pty ends the line "\r\n"). */
static const char *last_redraw(const char *out)
{
	const char *last = strrchr(out, '\r');

	while (last && last > out && !strcmp(last, "\r\n"))
		last = memrchr(out, '\r', last - out);
	assert_non_null(last);
	return last;
}

/* The bar of the last redraw in out: what is between its '[' and ']'. */
static void last_bar(const char *out, char *bar, size_t size)
{
	const char *open = strchr(last_redraw(out), '['), *close;

	assert_non_null(open);
	close = strchr(open, ']');
	assert_non_null(close);
	assert_true((size_t)(close - open) < size);
	memcpy(bar, open + 1, close - open - 1);
	bar[close - open - 1] = '\0';
}

static int setup(void **state)
{
	(void)state;
	return setenv("TERM", "xterm", 1);
}

static void test_pipe_plain_lines(void **state)
{
	struct progress p;
	char out[512];
	int fds[2];
	ssize_t n;
	FILE *f;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	f = fdopen(fds[1], "w");
	progress_init(&p, f);
	assert_false(p.bars);
	/* a download: its line at the end */
	progress_begin(&p, DIGEST, "downloading", NULL, 1000);
	progress_advance(&p, 400);
	progress_advance(&p, 600);
	progress_end(&p, "downloaded 1kB");
	/* an unpack: its line at the start */
	progress_begin(&p, DIGEST, "unpacking (layer 1 of 1)", "unpacking (layer 1 of 1, 1kB)", 1000);
	progress_advance(&p, 1000);
	progress_end(&p, NULL);
	/* an error before anything was said */
	progress_begin(&p, DIGEST, "downloading", NULL, 1000);
	progress_end(&p, NULL);
	fclose(f);
	n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, LABEL ": downloaded 1kB\n"
			    LABEL ": unpacking (layer 1 of 1, 1kB)\n");
}

/* One download of total bytes on a pty of cols columns, advanced by a then
 * b, ended with text end; what the terminal got. */
static const char *one_item(struct term *t, unsigned short cols, uint64_t total, uint64_t a,
			    uint64_t b, const char *end)
{
	struct progress p;

	term_open(t, cols);
	progress_init(&p, t->f);
	assert_true(p.bars);
	progress_begin(&p, DIGEST, "downloading", "not on a terminal", total);
	progress_advance(&p, a);
	progress_advance(&p, b);
	progress_end(&p, end);
	return term_close(t);
}

static void test_pty_bar(void **state)
{
	struct term t;
	const char *out = one_item(&t, 100, 1000, 400, 20, NULL);
	char bar[128];

	(void)state;
	assert_non_null(strchr(out, '\r'));
	assert_true(t.erases >= 2);
	assert_non_null(strstr(out, LABEL ": downloading ["));
	assert_null(strstr(out, "sha256:0123456789abc"));	/* label cut to 19 */
	assert_null(strstr(out, "not on a terminal"));
	assert_non_null(strstr(out, "   0%     0B/1kB"));
	assert_non_null(strstr(out, " 42%   420B/1kB"));
	assert_int_equal(out[t.len - 1], '\n');
	assert_fits(out, 100);
	last_bar(out, bar, sizeof(bar));
	assert_true(strlen(bar) >= 10);
	assert_non_null(strchr(bar, '>'));
	assert_non_null(strchr(bar, ' '));
}

static void test_pty_final_text(void **state)
{
	struct term t;

	(void)state;
	assert_string_equal(last_redraw(one_item(&t, 80, 1000, 1000, 0, "downloaded 1kB")),
			    "\r" LABEL ": downloaded 1kB\r\n");
}

/* Size unknown: the bytes and no percentage, no bar. */
static void test_pty_unknown_size(void **state)
{
	struct term t;
	const char *out = one_item(&t, 80, 0, 12345, 0, NULL);

	(void)state;
	assert_non_null(strstr(out, LABEL ": downloading 12.3kB"));
	assert_null(strchr(out, '%'));
	assert_null(strchr(out, '['));
	assert_int_equal(out[t.len - 1], '\n');
}

/* Past the total (to the edge of uint64_t): 100%, a full bar, no wider. */
static void test_pty_past_total(void **state)
{
	struct term t;
	const char *out = one_item(&t, 90, 100, 1000, UINT64_MAX, NULL);
	char bar[128];

	(void)state;
	assert_non_null(strstr(out, "100%"));
	assert_fits(out, 90);
	last_bar(out, bar, sizeof(bar));
	assert_int_equal(strspn(bar, "="), strlen(bar));
}

/* A terminal too narrow for a bar: the line is cut, never wrapped. */
static void test_pty_narrow(void **state)
{
	struct term t;
	const char *out = one_item(&t, 20, 1000, 500, 0, NULL);

	(void)state;
	assert_non_null(strstr(out, "\r" LABEL "\r"));
	assert_fits(out, 20);
}

/* Many small advances at once: redrawn at most ten times a second. */
static void test_pty_throttled(void **state)
{
	struct term t;
	struct progress p;
	const char *out;
	unsigned redraws = 0;

	(void)state;
	term_open(&t, 80);
	progress_init(&p, t.f);
	progress_begin(&p, DIGEST, "downloading", NULL, 10000);
	for (int i = 0; i < 10000; i++)
		progress_advance(&p, 1);
	progress_end(&p, NULL);
	out = term_close(&t);
	for (const char *s = out; (s = strchr(s, '\r')); s++)
		redraws += s[1] != '\n';
	assert_true(redraws >= 2 && redraws < 10);
	assert_non_null(strstr(out, "100%   10kB/10kB"));
}

/* TERM=dumb, or no TERM: plain lines even on a terminal. */
static void test_pty_dumb(void **state)
{
	struct term t;
	struct progress p;

	(void)state;
	setenv("TERM", "dumb", 1);
	term_open(&t, 80);
	progress_init(&p, t.f);
	assert_false(p.bars);
	progress_begin(&p, DIGEST, "downloading", NULL, 10);
	progress_advance(&p, 10);
	progress_end(&p, "downloaded 10B");
	assert_string_equal(term_close(&t), LABEL ": downloaded 10B\r\n");
	unsetenv("TERM");
	term_open(&t, 80);
	progress_init(&p, t.f);
	assert_false(p.bars);
	term_close(&t);
	setenv("TERM", "xterm", 1);
}

/* Nowhere to report (-q), or no progress at all: nothing happens. */
static void test_silent(void **state)
{
	struct progress p;

	(void)state;
	progress_init(&p, NULL);
	assert_false(p.bars);
	progress_begin(&p, DIGEST, "downloading", "line", 10);
	progress_advance(&p, 10);
	progress_end(&p, "done");
	progress_begin(NULL, DIGEST, "downloading", "line", 10);
	progress_advance(NULL, 10);
	progress_end(NULL, "done");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pipe_plain_lines),
		cmocka_unit_test(test_pty_bar),
		cmocka_unit_test(test_pty_final_text),
		cmocka_unit_test(test_pty_unknown_size),
		cmocka_unit_test(test_pty_past_total),
		cmocka_unit_test(test_pty_narrow),
		cmocka_unit_test(test_pty_throttled),
		cmocka_unit_test(test_pty_dumb),
		cmocka_unit_test(test_silent),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
