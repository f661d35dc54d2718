/* The control API: the strict JSON reader on bad input, the request to
 * reply mapping against a fake VM, and the real socket on a real event
 * loop (no KVM). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "api.h"
#include "evloop.h"
#include "json.h"
#include "libcove.h"

/* ---- the JSON reader ---- */

static int parse_n(const char *s, size_t len, struct json_member *m, int max, const char **msg)
{
	struct json_error err = { 0 };
	int n = json_parse_object(s, len, m, max, &err);

	if (n < 0) {
		assert_int_equal(n, -EINVAL);
		assert_non_null(err.msg);
		assert_true(err.offset <= len);
	}
	if (msg)
		*msg = n < 0 ? err.msg : NULL;
	return n;
}

static int parse(const char *s, const char **msg)
{
	struct json_member m[16];

	return parse_n(s, strlen(s), m, 16, msg);
}

static void bad(const char *s, const char *want)
{
	const char *msg;

	if (parse(s, &msg) >= 0)
		fail_msg("accepted: %s", s);
	if (want && strcmp(msg, want))
		fail_msg("%s: got \"%s\", want \"%s\"", s, msg, want);
}

static void good(const char *s)
{
	const char *msg;

	if (parse(s, &msg) < 0)
		fail_msg("refused (%s): %s", msg, s);
}

static void test_json_members(void **state)
{
	static const char in[] = " {\"op\" : \"status\", \"id\":-12.5e+3,\"t\":true,\"f\":false,"
		"\"n\":null,\"a\":[1,{\"x\":[]}],\"o\":{\"k\":\"v\"}}\r\n";
	struct json_member m[8];
	int n;

	(void)state;
	n = parse_n(in, strlen(in), m, 8, NULL);
	assert_int_equal(n, 7);
	assert_string_equal(m[0].key, "op");
	assert_int_equal(m[0].type, JSON_STRING);
	assert_int_equal(m[0].value_len, 8);
	assert_memory_equal(m[0].value, "\"status\"", 8);
	assert_int_equal(m[1].type, JSON_NUMBER);
	assert_memory_equal(m[1].value, "-12.5e+3", m[1].value_len);
	assert_int_equal(m[2].type, JSON_TRUE);
	assert_int_equal(m[3].type, JSON_FALSE);
	assert_int_equal(m[4].type, JSON_NULL);
	assert_int_equal(m[5].type, JSON_ARRAY);
	assert_int_equal(m[5].value_len, strlen("[1,{\"x\":[]}]"));
	assert_int_equal(m[6].type, JSON_OBJECT);
	assert_memory_equal(m[6].value, "{\"k\":\"v\"}", m[6].value_len);
	assert_int_equal(parse("{}", NULL), 0);
	assert_int_equal(parse(" \t{ }\n", NULL), 0);
}

static void test_json_truncated(void **state)
{
	static const char in[] = "{\"op\":\"st\\u00e9\\ud83d\\ude00\",\"id\":[1,2.5e3,{\"a\":null}],"
		"\"b\":true,\"c\":-0.0}";
	struct json_member m[8];

	(void)state;
	assert_int_equal(parse_n(in, strlen(in), m, 8, NULL), 4);
	/* Every proper prefix is an error, and says so. */
	for (size_t len = 0; len < strlen(in); len++) {
		const char *msg;
		if (parse_n(in, len, m, 8, &msg) >= 0)
			fail_msg("prefix of %zu bytes accepted", len);
		assert_string_equal(msg, "unexpected end of input");
	}
}

static void test_json_nesting(void **state)
{
	size_t big = 200000;
	char *s = malloc(big + 16);
	char buf[256];
	int n;

	(void)state;
	/* The top-level object is depth 1: 31 more levels are fine. */
	n = snprintf(buf, sizeof(buf), "{\"a\":");
	for (int i = 0; i < JSON_MAX_DEPTH - 1; i++)
		n += sprintf(buf + n, "%s", i % 2 ? "[" : "{\"k\":");
	buf[n++] = '0';
	for (int i = JSON_MAX_DEPTH - 2; i >= 0; i--)
		buf[n++] = i % 2 ? ']' : '}';
	buf[n++] = '}';
	buf[n] = '\0';
	good(buf);

	n = snprintf(buf, sizeof(buf), "{\"a\":");
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		buf[n++] = '[';
	for (int i = 0; i < JSON_MAX_DEPTH; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	buf[n] = '\0';
	bad(buf, "nesting too deep");

	/* Far deeper than any stack would take by recursion. */
	assert_non_null(s);
	memcpy(s, "{\"a\":", 5);
	memset(s + 5, '[', big);
	assert_true(parse_n(s, big + 5, NULL, 0, NULL) < 0);
	memset(s + 5, '{', big);
	assert_true(parse_n(s, big + 5, NULL, 0, NULL) < 0);
	free(s);

	bad("{\"a\":[1,2}", "expected ',' or ']'");
	bad("{\"a\":{\"b\":1]}", "expected ',' or '}'");
	bad("{\"a\":{1:2}}", "expected a string key");
	bad("{\"a\":{\"b\" 2}}", "expected ':'");
	bad("{\"a\":[1,]}", "expected a value");
	bad("{\"a\":[,1]}", "expected a value");
	bad("{\"a\":{\"b\":1,}}", "expected a string key");
	bad("[]", "expected '{'");
	bad("\"op\"", "expected '{'");
	bad("", "unexpected end of input");
	good("{\"a\":[[],{},[{}],\"]\",\"}\"]}");
}

static void test_json_numbers(void **state)
{
	char big[2100];

	(void)state;
	good("{\"n\":0}");
	good("{\"n\":-0}");
	good("{\"n\":1e999999999}");
	good("{\"n\":-1.5E-400}");
	good("{\"n\":123456789012345678901234567890}");
	memset(big, '9', sizeof(big));
	memcpy(big, "{\"n\":1", 6);
	memcpy(big + sizeof(big) - 2, "}", 2);
	good(big);
	bad("{\"n\":01}", "expected ',' or '}'");
	bad("{\"n\":1.}", "invalid number");
	bad("{\"n\":.5}", "expected a value");
	bad("{\"n\":-}", "invalid number");
	bad("{\"n\":1e}", "invalid number");
	bad("{\"n\":1e+}", "invalid number");
	bad("{\"n\":+1}", "expected a value");
	bad("{\"n\":0x10}", "expected ',' or '}'");
	bad("{\"n\":NaN}", "expected a value");
	bad("{\"n\":Infinity}", "expected a value");
	bad("{\"n\":-Infinity}", "invalid number");
	bad("{\"n\":tru}", "invalid literal");
	bad("{\"n\":nul}", "invalid literal");
	bad("{\"n\":True}", "expected a value");
}

static void test_json_strings(void **state)
{
	char buf[64];
	int n;

	(void)state;
	bad("{\"s\":\"\\x\"}", "invalid escape in string");
	bad("{\"s\":\"\\u12\"}", "invalid \\u escape");
	bad("{\"s\":\"\\uZZZZ\"}", "invalid \\u escape");
	bad("{\"s\":\"\\ud800\"}", "unpaired surrogate in \\u escape");
	bad("{\"s\":\"\\udc00\"}", "unpaired surrogate in \\u escape");
	bad("{\"s\":\"\\ud800\\u0041\"}", "unpaired surrogate in \\u escape");
	bad("{\"s\":\"\\ud800\\n\"}", "unpaired surrogate in \\u escape");
	bad("{\"s\":\"a\tb\"}", "control character in string");
	bad("{\"s\":\"a\nb\"}", "control character in string");
	bad("{\"s\":\"\xc0\x80\"}", "invalid UTF-8 in string");		/* overlong */
	bad("{\"s\":\"\xed\xa0\x80\"}", "invalid UTF-8 in string");	/* surrogate */
	bad("{\"s\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8 in string");	/* > U+10FFFF */
	bad("{\"s\":\"\xe2\x82\"}", "invalid UTF-8 in string");		/* cut short */
	bad("{\"s\":\"\xff\"}", "invalid UTF-8 in string");
	bad("{\"s\":\"\x80\"}", "invalid UTF-8 in string");
	bad("{'s':1}", "expected a string key");
	good("{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\uFFFF\"}");
	good("{\"s\":\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80\"}");

	n = json_string_decode("\"a\\u00e9\\ud83d\\ude00\\n\"", 23, buf, sizeof(buf));
	assert_int_equal(n, 1 + 2 + 4 + 1);
	assert_memory_equal(buf, "a\xc3\xa9\xf0\x9f\x98\x80\n", 9);
	n = json_string_decode("\"a\\u0000b\"", 10, buf, sizeof(buf));
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "a\0b", 4);
	assert_int_equal(json_string_decode("\"abcdef\"", 8, buf, 6), -ENOSPC);
	assert_string_equal(buf, "abcde");
	assert_int_equal(json_string_decode("\"abcde\"", 7, buf, 6), 5);
	assert_int_equal(json_string_decode("\"abc", 4, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(json_string_decode("\"a\"b", 4, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(json_string_decode("", 0, buf, sizeof(buf)), -EINVAL);
}

static void test_json_keys(void **state)
{
	char key[JSON_KEY_MAX + 16];
	struct json_member m[4];
	const char *msg;

	(void)state;
	bad("{\"a\":1,\"a\":2}", "duplicate key");
	bad("{\"a\":1,\"\\u0061\":2}", "duplicate key");
	bad("{\"op\":\"stop\",\"op\":\"status\"}", "duplicate key");
	good("{\"a\":1,\"A\":2,\"a \":3}");
	good("{\"\":1}");
	/* The same key in different nested objects is fine. */
	good("{\"a\":{\"a\":1},\"b\":{\"a\":2,\"b\":3}}");
	/* 63 decoded bytes fit, 64 do not. */
	memset(key, 'k', sizeof(key));
	memcpy(key, "{\"", 2);
	memcpy(key + 2 + JSON_KEY_MAX - 1, "\":1}", 5);
	good(key);
	memcpy(key + 2 + JSON_KEY_MAX - 1, "k\":1}", 6);
	bad(key, "key too long");
	/* Too many members for the caller's array. */
	assert_int_equal(parse_n("{\"a\":1,\"b\":2,\"c\":3,\"d\":4}", 25, m, 4, NULL), 4);
	assert_true(parse_n("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5}", 31, m, 4, &msg) < 0);
	assert_string_equal(msg, "too many members");
	assert_int_equal(parse_n("{}", 2, NULL, 0, NULL), 0);
}

static void test_json_nul_and_trailing(void **state)
{
	struct json_member m[4];
	const char *msg;

	(void)state;
	assert_true(parse_n("{\"a\":\"x\0y\"}", 11, m, 4, &msg) < 0);
	assert_string_equal(msg, "control character in string");
	assert_true(parse_n("{\"a\":1}\0", 8, m, 4, &msg) < 0);
	assert_string_equal(msg, "trailing characters after the object");
	assert_true(parse_n("\0{\"a\":1}", 8, m, 4, &msg) < 0);
	assert_true(parse_n("{\"a\"\0:1}", 8, m, 4, &msg) < 0);
	assert_true(parse_n("{\"a\":1\0}", 8, m, 4, &msg) < 0);
	bad("{\"a\":1}x", "trailing characters after the object");
	bad("{\"a\":1}{}", "trailing characters after the object");
	bad("{\"a\":1},", "trailing characters after the object");
	bad("{\"a\":1} 2", "trailing characters after the object");
	bad("{\"a\":1 2}", "expected ',' or '}'");
	good("{\"a\":1}\r\n\t ");
}

static void test_json_long_lines(void **state)
{
	size_t len = 1 << 20;
	char *s = malloc(len + 32);
	struct json_member m[2];
	int n;

	(void)state;
	if (!s)
		abort();
	memcpy(s, "{\"s\":\"", 6);
	memset(s + 6, 'x', len);
	memcpy(s + 6 + len, "\"}", 3);
	n = parse_n(s, len + 8, m, 2, NULL);
	assert_int_equal(n, 1);
	assert_int_equal(m[0].value_len, len + 2);
	/* 100,000 members in a nested object: validated, skipped. */
	size_t o = 0;
	o += sprintf(s + o, "{\"o\":{");
	for (int i = 0; i < 100000 && o < len; i++)
		o += sprintf(s + o, "%s\"k%d\":%d", i ? "," : "", i, i);
	o += sprintf(s + o, "}}");
	assert_int_equal(parse_n(s, o, m, 2, NULL), 1);
	free(s);
}

static void test_json_quote(void **state)
{
	char buf[64];
	size_t n;

	(void)state;
	n = json_quote(buf, sizeof(buf), "a\"b\\c\n\x01\x7f\xc3\xa9", 10);
	assert_string_equal(buf, "\"a\\\"b\\\\c\\n\\u0001\\u007f\xc3\xa9\"");
	assert_int_equal(n, strlen(buf));
	n = json_quote(buf, sizeof(buf), "x\0y", 3);
	assert_string_equal(buf, "\"x\\u0000y\"");
	n = json_quote(buf, 4, "abcdef", 6);
	assert_int_equal(n, 8);
	assert_string_equal(buf, "\"ab");
	assert_int_equal(json_quote(NULL, 0, "ab", 2), 4);
}

/* ---- requests and replies against a fake VM ---- */

struct fake {
	struct evloop *loop;		/* stop ends it, when set */
	bool paused;
	int pending;			/* pause answers -EINPROGRESS this often */
	int pause_calls, resumes, stops;
	int pause_err, resume_err, metrics_err;
	uint64_t boot_timer_ns;
	bool no_balloon, no_acpi;
	uint64_t balloon_target;	/* last set, bytes */
	int balloon_sets;
	unsigned shutdown_ms;		/* last asked */
	int shutdowns;
};

static void f_status(void *arg, struct api_status *st)
{
	struct fake *f = arg;

	st->paused = f->paused;
	st->uptime_ns = 1500123456;
	st->cpus = 2;
	st->memory = 512ull << 20;
	st->boot_timer_ns = f->boot_timer_ns;
}

static int f_pause(void *arg)
{
	struct fake *f = arg;

	f->pause_calls++;
	if (f->pause_err)
		return f->pause_err;
	f->paused = true;
	if (f->pending > 0) {
		f->pending--;
		return -EINPROGRESS;
	}
	return 0;
}

static int f_resume(void *arg)
{
	struct fake *f = arg;

	f->resumes++;
	f->paused = false;
	return f->resume_err;
}

static void f_stop(void *arg)
{
	struct fake *f = arg;

	f->stops++;
	if (f->loop)
		evloop_stop(f->loop);
}

static int f_metrics(void *arg, char **json, size_t *len)
{
	struct fake *f = arg;

	if (f->metrics_err)
		return f->metrics_err;
	*json = strdup("{\"exit_reason\":\"running\",\"cpus\":2,\"exits\":{\"io\":3},\"devices\":{}}\n");
	*len = strlen(*json);
	return 0;
}

static int f_balloon(void *arg, uint64_t target)
{
	struct fake *f = arg;

	if (f->no_balloon)
		return -ENODEV;
	if (target > (512ull << 20))
		return -EINVAL;
	f->balloon_sets++;
	f->balloon_target = target;
	return 0;
}

static int f_balloon_stats(void *arg, struct cove_balloon_stats *st)
{
	struct fake *f = arg;

	if (f->no_balloon)
		return -ENODEV;
	*st = (struct cove_balloon_stats){
		.target = f->balloon_target,
		.actual = 4096,
		.inflated = 8192,
		.reported = 1ull << 40,
		.bad_input = 3,
		.stats_age_ns = 2500000,
		.swap_in = 0,
		.swap_out = COVE_BALLOON_UNKNOWN,
		.major_faults = 7,
		.minor_faults = 1000,
		.free_memory = 100ull << 20,
		.total_memory = 500ull << 20,
		.available_memory = COVE_BALLOON_UNKNOWN,
		.disk_caches = 12345,
	};
	return 0;
}

static int f_shutdown(void *arg, unsigned timeout_ms)
{
	struct fake *f = arg;

	if (f->no_acpi)
		return -ENOTSUP;
	f->shutdowns++;
	f->shutdown_ms = timeout_ms;
	return 0;
}

static const struct api_ops fake_ops = {
	.status = f_status,
	.pause = f_pause,
	.resume = f_resume,
	.stop = f_stop,
	.metrics = f_metrics,
	.balloon = f_balloon,
	.balloon_stats = f_balloon_stats,
	.shutdown = f_shutdown,
};

/* Every reply is one line holding one valid JSON object. */
static void check_reply(const char *r, int n)
{
	struct json_member m[16];

	assert_true(n > 1);
	assert_int_equal(strlen(r), (size_t)n);
	assert_int_equal(r[n - 1], '\n');
	assert_null(memchr(r, '\n', n - 1));
	if (parse_n(r, n - 1, m, 16, NULL) < 1)
		fail_msg("reply is not a JSON object: %s", r);
}

/* The reply to line, which must be exactly want (without the newline). */
static void expect(struct fake *f, const char *line, const char *want)
{
	char *r;
	int n = api_handle_request(&fake_ops, f, line, strlen(line), &r);

	if (n <= 0)
		fail_msg("%s: no reply (%d)", line, n);
	check_reply(r, n);
	if (strncmp(r, want, n - 1) || strlen(want) != (size_t)n - 1)
		fail_msg("%s:\n got  %s want %s", line, r, want);
	free(r);
}

/* The reply to line is an error whose message contains part. */
static void expect_error(struct fake *f, const char *line, size_t len, const char *part)
{
	char *r;
	int n = api_handle_request(&fake_ops, f, line, len, &r);

	if (n <= 0)
		fail_msg("%s: no reply (%d)", line, n);
	check_reply(r, n);
	if (strncmp(r, "{\"ok\":false,", 12) || !strstr(r, part))
		fail_msg("%s: got %s, want an error with \"%s\"", line, r, part);
	free(r);
}

static void test_request_ops(void **state)
{
	struct fake f = { 0 };
	char *r;

	(void)state;
	expect(&f, "{\"op\":\"status\"}", "{\"ok\":true,\"state\":\"running\",\"uptime_ms\":1500,"
	       "\"cpus\":2,\"memory_mib\":512,\"boot_timer_ms\":null}");
	f.boot_timer_ns = 12345678;
	expect(&f, "{\"op\":\"status\",\"id\":7}", "{\"ok\":true,\"id\":7,\"state\":\"running\","
	       "\"uptime_ms\":1500,\"cpus\":2,\"memory_mib\":512,\"boot_timer_ms\":12.346}");
	expect(&f, " { \"id\" : \"a\\\"b\" , \"op\" : \"pause\" } ", "{\"ok\":true,\"id\":\"a\\\"b\"}");
	assert_true(f.paused);
	expect(&f, "{\"op\":\"pause\"}", "{\"ok\":true}");	/* idempotent */
	expect(&f, "{\"op\":\"status\",\"id\":-1.5e3}", "{\"ok\":true,\"id\":-1.5e3,"
	       "\"state\":\"paused\",\"uptime_ms\":1500,\"cpus\":2,\"memory_mib\":512,"
	       "\"boot_timer_ms\":12.346}");
	expect(&f, "{\"op\":\"resume\",\"id\":1e999}", "{\"ok\":true,\"id\":1e999}");
	assert_false(f.paused);
	expect(&f, "{\"op\":\"metrics\",\"id\":2}", "{\"ok\":true,\"id\":2,\"metrics\":"
	       "{\"exit_reason\":\"running\",\"cpus\":2,\"exits\":{\"io\":3},\"devices\":{}}}");
	expect(&f, "{\"op\":\"stop\"}", "{\"ok\":true}");
	assert_int_equal(f.stops, 1);
	/* An escaped op name is the same op. */
	expect(&f, "{\"op\":\"st\\u0061tus\",\"id\":\"\\u00e9\"}", "{\"ok\":true,\"id\":\"\\u00e9\","
	       "\"state\":\"running\",\"uptime_ms\":1500,\"cpus\":2,\"memory_mib\":512,"
	       "\"boot_timer_ms\":12.346}");

	/* A pause under way: no reply until it completes. */
	f.pending = 2;
	assert_int_equal(api_handle_request(&fake_ops, &f, "{\"op\":\"pause\"}", 14, &r), -EINPROGRESS);
	assert_null(r);
	assert_int_equal(api_handle_request(&fake_ops, &f, "{\"op\":\"pause\"}", 14, &r), -EINPROGRESS);
	expect(&f, "{\"op\":\"pause\"}", "{\"ok\":true}");

	/* Blank lines get no reply. */
	assert_int_equal(api_handle_request(&fake_ops, &f, "", 0, &r), 0);
	assert_int_equal(api_handle_request(&fake_ops, &f, " \t\r", 3, &r), 0);
	assert_null(r);
}

static void test_request_errors(void **state)
{
	struct fake f = { 0 };
	char line[8192];

	(void)state;
	expect(&f, "{\"op\":\"reboot\"}", "{\"ok\":false,\"error\":\"unknown op \\\"reboot\\\" "
	       "(use status, pause, resume, stop, metrics, balloon, balloon_stats or shutdown)\"}");
	expect(&f, "{\"op\":\"status\",\"force\":true,\"id\":3}", "{\"ok\":false,\"id\":3,\"error\":"
	       "\"unknown member \\\"force\\\" (a request has \\\"op\\\" and optionally \\\"id\\\")\"}");
	expect(&f, "{}", "{\"ok\":false,\"error\":\"missing \\\"op\\\"\"}");
	expect(&f, "{\"id\":\"x\"}", "{\"ok\":false,\"id\":\"x\",\"error\":\"missing \\\"op\\\"\"}");
	expect(&f, "{\"op\":1}", "{\"ok\":false,\"error\":\"\\\"op\\\" must be a string\"}");
	expect(&f, "{\"op\":null}", "{\"ok\":false,\"error\":\"\\\"op\\\" must be a string\"}");
	expect(&f, "{\"op\":[\"status\"]}", "{\"ok\":false,\"error\":\"\\\"op\\\" must be a string\"}");
	expect(&f, "{\"op\":\"status\",\"id\":true}",
	       "{\"ok\":false,\"error\":\"id must be a number or a string\"}");
	expect(&f, "{\"op\":\"status\",\"id\":{}}",
	       "{\"ok\":false,\"error\":\"id must be a number or a string\"}");
	expect(&f, "status", "{\"ok\":false,\"error\":\"not a JSON request object: "
	       "expected '{' at byte 0\"}");
	expect(&f, "{\"op\":\"status\"", "{\"ok\":false,\"error\":\"not a JSON request object: "
	       "unexpected end of input at byte 14\"}");
	expect(&f, "{\"op\":\"status\"}}", "{\"ok\":false,\"error\":\"not a JSON request object: "
	       "trailing characters after the object at byte 15\"}");
	expect_error(&f, "{\"op\":\"status\",\"op\":\"stop\"}", 27, "duplicate key at byte 15");
	expect_error(&f, "{\"op\":\"st\0tus\"}", 15, "control character in string");
	expect_error(&f, "{\"op\":\"st\\u0000atus\"}", 21, "unknown op");
	expect_error(&f, "{\"op\":\"\\ud800\"}", 15, "unpaired surrogate");
	expect_error(&f, "{\"op\":\"\xff\"}", 10, "invalid UTF-8");
	expect_error(&f, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}",
		     54, "too many members");
	/* Names are echoed escaped; long ones are cut. */
	expect(&f, "{\"op\":\"a\\\"\\n\\u0001\"}", "{\"ok\":false,\"error\":\"unknown op "
	       "\\\"a\\\"\\n\\u0001\\\" (use status, pause, resume, stop, metrics, balloon, balloon_stats or shutdown)\"}");
	memset(line, 'x', sizeof(line));
	memcpy(line, "{\"op\":\"", 7);
	memcpy(line + 4000, "\"}", 3);
	expect(&f, line, "{\"ok\":false,\"error\":\"unknown op (use status, pause, resume, stop, metrics, balloon, balloon_stats or shutdown)\"}");
	memcpy(line, "{\"op\":\"status\",\"", 16);
	memcpy(line + 16 + 60, "\":1}", 5);
	expect_error(&f, line, strlen(line), "unknown member \\\"xxxxxxxx");
	/* Failures of the VM's side. */
	f.pause_err = -ESRCH;
	expect(&f, "{\"op\":\"pause\",\"id\":9}", "{\"ok\":false,\"id\":9,\"error\":\"pause: "
	       "the VM has ended\"}");
	f.resume_err = -ESRCH;
	expect(&f, "{\"op\":\"resume\"}", "{\"ok\":false,\"error\":\"resume: the VM has ended\"}");
	f.metrics_err = -ENOMEM;
	expect_error(&f, "{\"op\":\"metrics\"}", 16, "metrics: ");
	assert_int_equal(f.stops, 0);
}

static void test_request_balloon_shutdown(void **state)
{
	struct fake f = { 0 };

	(void)state;
	expect(&f, "{\"op\":\"balloon\",\"target_mib\":128,\"id\":1}", "{\"ok\":true,\"id\":1}");
	assert_int_equal(f.balloon_target, 128ull << 20);
	expect(&f, "{\"target_mib\":0,\"op\":\"balloon\"}", "{\"ok\":true}");
	assert_int_equal(f.balloon_target, 0);
	expect(&f, "{\"op\":\"balloon\",\"target_mib\":512}", "{\"ok\":true}");
	expect(&f, "{\"op\":\"balloon_stats\",\"id\":\"s\"}", "{\"ok\":true,\"id\":\"s\","
	       "\"target_bytes\":536870912,\"actual_bytes\":4096,\"inflated_bytes\":8192,"
	       "\"reported_bytes\":1099511627776,\"bad_input\":3,\"stats_age_ms\":2,\"guest\":"
	       "{\"swap_in_bytes\":0,\"swap_out_bytes\":null,\"major_faults\":7,"
	       "\"minor_faults\":1000,\"free_bytes\":104857600,\"total_bytes\":524288000,"
	       "\"available_bytes\":null,\"disk_caches_bytes\":12345}}");
	assert_int_equal(f.balloon_sets, 3);

	/* bad values, each refused before the VM is touched */
	static const char *const bad_targets[] = {
		"-1", "1.5", "1e3", "1E3", "-0", "\"128\"", "null", "true", "[128]", "{}",
		"18446744073709551616", "17592186044416",	/* 2^44 MiB: bytes overflow */
		"99999999999999999999999",
	};
	for (size_t i = 0; i < sizeof(bad_targets) / sizeof(bad_targets[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "{\"op\":\"balloon\",\"target_mib\":%s}", bad_targets[i]);
		expect(&f, line, "{\"ok\":false,\"error\":\"\\\"target_mib\\\" must be a whole "
		       "number of MiB\"}");
	}
	assert_int_equal(f.balloon_sets, 3);
	expect(&f, "{\"op\":\"balloon\"}", "{\"ok\":false,\"error\":\"missing \\\"target_mib\\\"\"}");
	expect(&f, "{\"op\":\"balloon\",\"target_mib\":513,\"id\":2}", "{\"ok\":false,\"id\":2,"
	       "\"error\":\"balloon: \\\"target_mib\\\" exceeds the guest's memory\"}");
	expect(&f, "{\"op\":\"balloon\",\"target_mib\":1,\"timeout_ms\":1}", "{\"ok\":false,"
	       "\"error\":\"unknown member \\\"timeout_ms\\\" (balloon takes \\\"target_mib\\\" "
	       "and optionally \\\"id\\\")\"}");
	expect(&f, "{\"op\":\"balloon_stats\",\"target_mib\":1}", "{\"ok\":false,"
	       "\"error\":\"unknown member \\\"target_mib\\\" (a request has \\\"op\\\" and "
	       "optionally \\\"id\\\")\"}");
	expect(&f, "{\"op\":\"status\",\"target_mib\":1}", "{\"ok\":false,"
	       "\"error\":\"unknown member \\\"target_mib\\\" (a request has \\\"op\\\" and "
	       "optionally \\\"id\\\")\"}");
	f.no_balloon = true;
	expect(&f, "{\"op\":\"balloon\",\"target_mib\":1}", "{\"ok\":false,\"error\":\"balloon: "
	       "no balloon device (start cove-vmm with --balloon)\"}");
	expect(&f, "{\"op\":\"balloon_stats\"}", "{\"ok\":false,\"error\":\"balloon_stats: "
	       "no balloon device (start cove-vmm with --balloon)\"}");

	/* shutdown: the default timeout, or the one given */
	expect(&f, "{\"op\":\"shutdown\"}", "{\"ok\":true}");
	assert_int_equal(f.shutdown_ms, API_SHUTDOWN_TIMEOUT_MS);
	expect(&f, "{\"op\":\"shutdown\",\"timeout_ms\":250,\"id\":5}", "{\"ok\":true,\"id\":5}");
	assert_int_equal(f.shutdown_ms, 250);
	expect(&f, "{\"op\":\"shutdown\",\"timeout_ms\":0}", "{\"ok\":true}");
	assert_int_equal(f.shutdown_ms, 0);
	expect(&f, "{\"op\":\"shutdown\",\"timeout_ms\":86400000}", "{\"ok\":true}");
	assert_int_equal(f.shutdowns, 4);
	static const char *const bad_timeouts[] = {
		"86400001", "-5", "0.5", "1e4", "\"100\"", "null", "4294967296",
	};
	for (size_t i = 0; i < sizeof(bad_timeouts) / sizeof(bad_timeouts[0]); i++) {
		char line[128];
		snprintf(line, sizeof(line), "{\"op\":\"shutdown\",\"timeout_ms\":%s}", bad_timeouts[i]);
		expect(&f, line, "{\"ok\":false,\"error\":\"\\\"timeout_ms\\\" must be a whole "
		       "number of milliseconds up to 86400000\"}");
	}
	expect(&f, "{\"op\":\"shutdown\",\"force\":true}", "{\"ok\":false,\"error\":\"unknown "
	       "member \\\"force\\\" (shutdown takes optionally \\\"timeout_ms\\\" and \\\"id\\\")\"}");
	assert_int_equal(f.shutdowns, 4);
	f.no_acpi = true;
	expect(&f, "{\"op\":\"shutdown\"}", "{\"ok\":false,\"error\":\"shutdown: no ACPI: "
	       "cannot ask the guest; use stop\"}");
	assert_int_equal(f.stops, 0);
}

/* ---- the socket, served on a real event loop ---- */

struct server {
	char dir[64], path[128];
	struct evloop *loop;
	struct api_server *api;
	struct fake f;
};

static void server_start(struct server *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->dir, "/tmp/cove-test-api.XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/api.sock", s->dir);
	assert_int_equal(evloop_create(&s->loop), 0);
	s->f.loop = s->loop;
	assert_int_equal(api_create(s->loop, s->path, &fake_ops, &s->f, &s->api), 0);
	assert_int_equal(evloop_start(s->loop, NULL, NULL), 0);
}

static void server_stop(struct server *s)
{
	evloop_join(s->loop);
	api_destroy(s->api);
	evloop_destroy(s->loop);
	assert_int_equal(access(s->path, F_OK), -1);	/* unlinked */
	rmdir(s->dir);
}

struct client {
	int fd;
	size_t len;
	char buf[16384];
};

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	strcpy(sa.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static void client_open(struct client *c, const char *path)
{
	c->fd = connect_to(path);
	c->len = 0;
}

static void client_send(struct client *c, const void *s, size_t len)
{
	ssize_t n;

	while ((n = send(c->fd, s, len, MSG_NOSIGNAL)) < 0 && errno == EINTR)
		;
	assert_int_equal(n, (ssize_t)len);
}

static void client_say(struct client *c, const char *s)
{
	client_send(c, s, strlen(s));
}

/* The next line (without its newline) in out, or false at EOF or after
 * the 5 s timeout. */
static bool client_line(struct client *c, char *out, size_t size)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = nl - c->buf;
			assert_true(n < size);
			memcpy(out, c->buf, n);
			out[n] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return true;
		}
		assert_true(c->len < sizeof(c->buf));
		ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		/* With SO_RCVTIMEO, io_uring's task-work notifications can
		 * surface as EINTR here; retry as any client does. */
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		c->len += r;
	}
}

static void client_expect(struct client *c, const char *want)
{
	char line[8192];

	if (!client_line(c, line, sizeof(line)))
		fail_msg("no reply, want %s", want);
	if (strcmp(line, want))
		fail_msg("got  %s\nwant %s", line, want);
}

static void client_expect_eof(struct client *c)
{
	char line[8192];

	if (client_line(c, line, sizeof(line)))
		fail_msg("got %s, want the connection closed", line);
	assert_int_equal(c->len, 0);
}

#define STATUS_RUNNING "{\"ok\":true,\"state\":\"running\",\"uptime_ms\":1500,\"cpus\":2," \
	"\"memory_mib\":512,\"boot_timer_ms\":null}"
#define STATUS_PAUSED "{\"ok\":true,\"state\":\"paused\",\"uptime_ms\":1500,\"cpus\":2," \
	"\"memory_mib\":512,\"boot_timer_ms\":null}"

static void test_socket_session(void **state)
{
	struct server s;
	struct client c;
	struct stat st;

	(void)state;
	server_start(&s);
	assert_int_equal(lstat(s.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	client_open(&c, s.path);
	client_say(&c, "{\"op\":\"status\"}\n");
	client_expect(&c, STATUS_RUNNING);
	/* Pipelined, replies in order; the pause takes a few rounds. */
	s.f.pending = 3;
	client_say(&c, "{\"op\":\"pause\",\"id\":1}\n{\"op\":\"status\"}\r\n\n"
		   "{\"op\":\"resume\",\"id\":\"two\"}\n{\"op\":\"nope\"}\nnot json\n"
		   "{\"op\":\"metrics\"}\n");
	client_expect(&c, "{\"ok\":true,\"id\":1}");
	client_expect(&c, STATUS_PAUSED);
	client_expect(&c, "{\"ok\":true,\"id\":\"two\"}");
	client_expect(&c, "{\"ok\":false,\"error\":\"unknown op \\\"nope\\\" (use status, pause, resume, stop, metrics, balloon, balloon_stats or shutdown)\"}");
	client_expect(&c, "{\"ok\":false,\"error\":\"not a JSON request object: expected '{' "
		      "at byte 0\"}");
	client_expect(&c, "{\"ok\":true,\"metrics\":{\"exit_reason\":\"running\",\"cpus\":2,"
		      "\"exits\":{\"io\":3},\"devices\":{}}}");
	assert_int_equal(s.f.pause_calls, 4);
	/* A request in pieces. */
	for (const char *p = "{\"op\":\"status\"}\n"; *p; p++) {
		client_send(&c, p, 1);
		if (*p == ':')
			usleep(2000);
	}
	client_expect(&c, STATUS_RUNNING);
	/* Stop replies, then the loop (the VM) ends. */
	client_say(&c, "{\"op\":\"stop\",\"id\":0}\n");
	client_expect(&c, "{\"ok\":true,\"id\":0}");
	assert_int_equal(s.f.stops, 1);
	server_stop(&s);
	client_expect_eof(&c);
	close(c.fd);
}

static void test_socket_eof_and_long_lines(void **state)
{
	char line[API_LINE_MAX + 2];
	struct server s;
	struct client c;

	(void)state;
	server_start(&s);
	/* A last request without a newline is served at EOF. */
	client_open(&c, s.path);
	client_say(&c, "{\"op\":\"status\"}");
	shutdown(c.fd, SHUT_WR);
	client_expect(&c, STATUS_RUNNING);
	client_expect_eof(&c);
	close(c.fd);

	/* Exactly API_LINE_MAX bytes before the newline: served. */
	client_open(&c, s.path);
	memset(line, ' ', sizeof(line));
	memcpy(line, "{\"op\":\"status\"}", 15);
	line[API_LINE_MAX] = '\n';
	client_send(&c, line, API_LINE_MAX + 1);
	client_expect(&c, STATUS_RUNNING);
	/* One more: an error, and the connection is closed. */
	line[API_LINE_MAX] = ' ';
	line[API_LINE_MAX + 1] = '\n';
	client_send(&c, line, API_LINE_MAX + 2);
	client_expect(&c, "{\"ok\":false,\"error\":\"request line too long (at most 4096 bytes); "
		      "closing the connection\"}");
	client_expect_eof(&c);
	close(c.fd);

	/* Endless bytes without a newline. */
	client_open(&c, s.path);
	memset(line, 'x', sizeof(line));
	for (int i = 0; i < 3; i++)
		if (send(c.fd, line, sizeof(line), MSG_NOSIGNAL) < 0)
			break;
	client_expect(&c, "{\"ok\":false,\"error\":\"request line too long (at most 4096 bytes); "
		      "closing the connection\"}");
	client_expect_eof(&c);
	close(c.fd);

	/* NUL bytes and garbage are errors, the connection goes on. */
	client_open(&c, s.path);
	client_send(&c, "{\"op\":\0}\n\xff\xfe\n{\"op\":\"status\"}\n", 29);
	client_expect(&c, "{\"ok\":false,\"error\":\"not a JSON request object: expected a value "
		      "at byte 6\"}");
	client_expect(&c, "{\"ok\":false,\"error\":\"not a JSON request object: expected '{' "
		      "at byte 0\"}");
	client_expect(&c, STATUS_RUNNING);
	close(c.fd);

	evloop_stop(s.loop);
	server_stop(&s);
}

static void test_socket_connection_limit(void **state)
{
	struct client c[API_MAX_CONNS + 1];
	struct server s;

	(void)state;
	server_start(&s);
	for (int i = 0; i < API_MAX_CONNS; i++) {
		client_open(&c[i], s.path);
		client_say(&c[i], "{\"op\":\"status\"}\n");
		client_expect(&c[i], STATUS_RUNNING);
	}
	client_open(&c[API_MAX_CONNS], s.path);
	client_expect(&c[API_MAX_CONNS], "{\"ok\":false,\"error\":\"too many connections "
		      "(at most 16)\"}");
	client_expect_eof(&c[API_MAX_CONNS]);
	close(c[API_MAX_CONNS].fd);
	/* A closed connection frees its place. */
	close(c[0].fd);
	for (int tries = 0;; tries++) {
		char line[256];
		client_open(&c[0], s.path);
		client_say(&c[0], "{\"op\":\"status\"}\n");
		assert_true(client_line(&c[0], line, sizeof(line)));
		if (!strcmp(line, STATUS_RUNNING))
			break;
		close(c[0].fd);
		assert_true(tries < 100);
		usleep(10000);
	}
	for (int i = 0; i < API_MAX_CONNS; i++)
		close(c[i].fd);
	evloop_stop(s.loop);
	server_stop(&s);
}

static void test_socket_client_not_reading(void **state)
{
	static const char req[] = "{\"op\":\"metrics\"}\n";
	struct server s;
	struct client hog, c;
	long sent = 0;

	(void)state;
	server_start(&s);
	/* The hog sends requests and never reads: its replies fill its
	 * receive buffer, then the server stops reading from it, then its
	 * send buffer fills. */
	client_open(&hog, s.path);
	fcntl(hog.fd, F_SETFL, O_NONBLOCK);
	for (int idle = 0; idle < 50 && sent < 100000000;) {
		ssize_t n = send(hog.fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
		if (n > 0) {
			sent += n;
			idle = 0;
		} else {
			assert_int_equal(errno, EAGAIN);
			idle++;
			usleep(1000);
		}
	}
	assert_true(sent < 100000000);
	/* Everyone else is still served at once. */
	client_open(&c, s.path);
	for (int i = 0; i < 100; i++) {
		client_say(&c, "{\"op\":\"status\"}\n");
		client_expect(&c, STATUS_RUNNING);
	}
	/* A pause in progress for a client that then goes away. */
	s.f.pending = 5;
	client_say(&c, "{\"op\":\"pause\"}\n");
	close(c.fd);
	close(hog.fd);
	usleep(20000);
	client_open(&c, s.path);
	client_say(&c, "{\"op\":\"status\"}\n");
	client_expect(&c, STATUS_PAUSED);
	close(c.fd);
	evloop_stop(s.loop);
	server_stop(&s);
}

static void test_socket_path(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct api_server *api2;
	struct evloop *loop2;
	struct server s;
	char want[256], longpath[200];
	int fd;

	(void)state;
	server_start(&s);
	assert_int_equal(evloop_create(&loop2), 0);
	/* A live socket is not taken over. */
	assert_int_equal(api_create(loop2, s.path, &fake_ops, &s.f, &api2), -EADDRINUSE);
	snprintf(want, sizeof(want), "api socket %s: Address already in use (is another "
		 "cove-vmm running?)", s.path);
	assert_string_equal(cove_last_error(), want);
	evloop_stop(s.loop);
	server_stop(&s);

	/* A stale one (its owner died without unlinking) is replaced. */
	assert_int_equal(mkdir(s.dir, 0700), 0);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(sa.sun_path, s.path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	assert_int_equal(access(s.path, F_OK), 0);
	assert_int_equal(api_create(loop2, s.path, &fake_ops, &s.f, &api2), 0);
	/* Not ours any more: destroy leaves it alone. */
	assert_int_equal(unlink(s.path), 0);
	fd = open(s.path, O_CREAT | O_WRONLY, 0600);
	close(fd);
	api_destroy(api2);
	assert_int_equal(access(s.path, F_OK), 0);

	/* Something else in the way. */
	assert_int_equal(api_create(loop2, s.path, &fake_ops, &s.f, &api2), -EEXIST);
	unlink(s.path);
	assert_int_equal(api_create(loop2, "", &fake_ops, &s.f, &api2), -EINVAL);
	memset(longpath, 'a', sizeof(longpath));
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(api_create(loop2, longpath, &fake_ops, &s.f, &api2), -ENAMETOOLONG);
	snprintf(longpath, sizeof(longpath), "%s/no/such/dir", s.dir);
	assert_int_equal(api_create(loop2, longpath, &fake_ops, &s.f, &api2), -ENOENT);
	evloop_destroy(loop2);
	rmdir(s.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json_members),
		cmocka_unit_test(test_json_truncated),
		cmocka_unit_test(test_json_nesting),
		cmocka_unit_test(test_json_numbers),
		cmocka_unit_test(test_json_strings),
		cmocka_unit_test(test_json_keys),
		cmocka_unit_test(test_json_nul_and_trailing),
		cmocka_unit_test(test_json_long_lines),
		cmocka_unit_test(test_json_quote),
		cmocka_unit_test(test_request_ops),
		cmocka_unit_test(test_request_errors),
		cmocka_unit_test(test_request_balloon_shutdown),
		cmocka_unit_test(test_socket_session),
		cmocka_unit_test(test_socket_eof_and_long_lines),
		cmocka_unit_test(test_socket_connection_limit),
		cmocka_unit_test(test_socket_client_not_reading),
		cmocka_unit_test(test_socket_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
