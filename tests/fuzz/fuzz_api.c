/* libFuzzer: the control API's request handler and the JSON reader under
 * it. The input is split at newlines into request lines, as the server
 * splits what a client sends, and each goes to api_handle_request with a
 * fake VM. Must never crash or hang; every reply must be one line holding
 * one valid JSON object; whatever the reader accepts must hold up (members
 * inside the input, strings decodable); json_quote must round-trip. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "json.h"
#include "libcove.h"

struct fake {
	bool paused;
	int pending;
	unsigned calls;
};

static void f_status(void *arg, struct api_status *st)
{
	struct fake *f = arg;

	st->paused = f->paused;
	st->uptime_ns = 123456789ull * f->calls;
	st->cpus = 1 + f->calls % 64;
	st->memory = (uint64_t)f->calls << 20;
	st->boot_timer_ns = f->calls % 2 ? 0 : 987654321ull * f->calls;
}

static int f_pause(void *arg)
{
	struct fake *f = arg;

	f->paused = true;
	if (f->pending > 0) {
		f->pending--;
		return -EINPROGRESS;
	}
	return f->calls % 7 == 3 ? -ESRCH : 0;
}

static int f_resume(void *arg)
{
	struct fake *f = arg;

	f->paused = false;
	return f->calls % 5 == 4 ? -ESRCH : 0;
}

static void f_stop(void *arg)
{
	(void)arg;
}

static int f_metrics(void *arg, char **json, size_t *len)
{
	struct fake *f = arg;

	if (f->calls % 11 == 10)
		return -ENOMEM;
	*json = strdup("{\"exit_reason\":\"running\",\"create_ms\":1.500,\"exits\":{\"io\":7},"
		       "\"devices\":{\"vblk0\":{\"requests\":3}}}\n");
	if (!*json)
		return -ENOMEM;
	*len = strlen(*json);
	return 0;
}

static int f_balloon(void *arg, uint64_t target)
{
	struct fake *f = arg;

	(void)target;
	return f->calls % 3 == 1 ? -ENODEV : f->calls % 3 == 2 ? -EINVAL : 0;
}

static int f_balloon_stats(void *arg, struct cove_balloon_stats *st)
{
	struct fake *f = arg;

	if (f->calls % 4 == 3)
		return -ENODEV;
	memset(st, f->calls % 2 ? 0xff : 0x12, sizeof(*st));	/* unknown or huge */
	return 0;
}

static int f_shutdown(void *arg, unsigned timeout_ms)
{
	struct fake *f = arg;

	(void)timeout_ms;
	return f->calls % 5 == 2 ? -ENOTSUP : 0;
}

static const struct api_ops ops = {
	.status = f_status,
	.pause = f_pause,
	.resume = f_resume,
	.stop = f_stop,
	.metrics = f_metrics,
	.balloon = f_balloon,
	.balloon_stats = f_balloon_stats,
	.shutdown = f_shutdown,
};

static void check_reply(const char *r, int n)
{
	struct json_member m[16];
	int members;

	if (n < 2 || r[n - 1] != '\n' || memchr(r, '\n', n - 1) || strlen(r) != (size_t)n)
		abort();
	members = json_parse_object(r, n - 1, m, 16, NULL);
	if (members < 1 || strcmp(m[0].key, "ok"))
		abort();
}

static void check_reader(const char *line, size_t len)
{
	struct json_member m[8];
	char buf[256];
	int n = json_parse_object(line, len, m, 8, NULL);

	for (int i = 0; i < n; i++) {
		if (m[i].value < line || m[i].value + m[i].value_len > line + len ||
		    !m[i].value_len || m[i].key_len >= JSON_KEY_MAX || m[i].key[m[i].key_len])
			abort();
		if (m[i].type == JSON_STRING) {
			int d = json_string_decode(m[i].value, m[i].value_len, buf, sizeof(buf));
			if (d == -EINVAL || (d >= 0 && (size_t)d > m[i].value_len))
				abort();
		}
	}
}

/* Plain ASCII survives json_quote and the reader unchanged. */
static void check_quote(const char *line, size_t len)
{
	char *q, *back;
	size_t qlen;

	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] >= 0x80)
			return;
	qlen = json_quote(NULL, 0, line, len);
	q = malloc(qlen + 1);
	back = malloc(len + 1);
	if (!q || !back)
		abort();
	if (json_quote(q, qlen + 1, line, len) != qlen || strlen(q) != qlen)
		abort();
	if (json_string_decode(q, qlen, back, len + 1) != (int)len || memcmp(back, line, len))
		abort();
	free(q);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct fake f = { 0 };

	while (p < end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char *reply;
		int n, tries = 0;

		f.calls++;
		f.pending = len % 3;
		check_reader(p, len);
		check_quote(p, len);
		while ((n = api_handle_request(&ops, &f, p, len, &reply)) == -EINPROGRESS)
			if (++tries > 3)
				abort();
		if (n < 0 && n != -ENOMEM)
			abort();
		if (n > 0) {
			check_reply(reply, n);
			free(reply);
		} else if (n == 0 && reply) {
			abort();
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	return 0;
}
