/* The agent wire protocol: every frame encoded and decoded back, frames
 * cut anywhere by the stream, and the inputs a hostile peer could send. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_proto.h"

/* A frame decoded straight from the first frame in w. */
static struct agent_frame first_frame(const struct agent_wbuf *w)
{
	const uint8_t *p = w->data + w->off;
	struct agent_frame f = {
		.len = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24,
		.type = p[4] | p[5] << 8,
		.payload = p + AGENT_HDR_SIZE,
	};

	assert_true(agent_wbuf_pending(w) >= AGENT_HDR_SIZE + f.len);
	return f;
}

/* Raw payload builder for the decoder tests. */
struct raw {
	uint8_t b[512];
	size_t n;
};

static void raw32(struct raw *r, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		r->b[r->n++] = v >> (8 * i);
}

static void raw16(struct raw *r, uint16_t v)
{
	r->b[r->n++] = v;
	r->b[r->n++] = v >> 8;
}

static void rawstr(struct raw *r, const char *s, size_t len)
{
	raw32(r, len);
	memcpy(r->b + r->n, s, len);
	r->n += len;
}

static int decode_exec(const struct raw *r, struct agent_exec_msg **m)
{
	struct agent_frame f = { .type = AGENT_EXEC, .len = r->n, .payload = r->b };

	return agent_get_exec(&f, m);
}

/* An EXEC payload: flags, uid 5, gid 6, size, user, cwd, argv, env. */
static void raw_exec(struct raw *r, uint32_t flags, uint16_t rows, uint16_t cols,
		     const char *user, const char *cwd, int argc, const char **argv, int envc,
		     const char **env)
{
	r->n = 0;
	raw32(r, flags);
	raw32(r, 5);
	raw32(r, 6);
	raw16(r, rows);
	raw16(r, cols);
	rawstr(r, user, strlen(user));
	rawstr(r, cwd, strlen(cwd));
	raw32(r, argc);
	for (int i = 0; i < argc; i++)
		rawstr(r, argv[i], strlen(argv[i]));
	raw32(r, envc);
	for (int i = 0; i < envc; i++)
		rawstr(r, env[i], strlen(env[i]));
}

static void test_exec_round_trip(void **state)
{
	char *argv[] = { "printf", "%s", "a  b", "", "\xff\n\t", NULL };
	char *env[] = { "A=1", "EMPTY=", "X==y", NULL };
	struct agent_exec_msg in = {
		.flags = AGENT_EXEC_TTY | AGENT_EXEC_STDIN,
		.uid = 1000, .gid = 100, .rows = 33, .cols = 101,
		.user = "alice", .cwd = "/home/alice/src dir",
		.argv = argv, .env = env,
	}, *out;
	struct agent_wbuf w = { 0 };
	struct agent_frame f;

	(void)state;
	assert_int_equal(agent_put_exec(&w, &in), 0);
	f = first_frame(&w);
	assert_int_equal(f.type, AGENT_EXEC);
	assert_int_equal(agent_get_exec(&f, &out), 0);
	assert_int_equal(out->flags, in.flags);
	assert_int_equal(out->uid, 1000);
	assert_int_equal(out->gid, 100);
	assert_int_equal(out->rows, 33);
	assert_int_equal(out->cols, 101);
	assert_string_equal(out->user, "alice");
	assert_string_equal(out->cwd, "/home/alice/src dir");
	for (int i = 0; argv[i]; i++)
		assert_string_equal(out->argv[i], argv[i]);
	assert_null(out->argv[5]);
	for (int i = 0; env[i]; i++)
		assert_string_equal(out->env[i], env[i]);
	assert_null(out->env[3]);
	free(out);
	agent_wbuf_free(&w);
}

static void test_exec_login_shell(void **state)
{
	struct agent_exec_msg in = { .uid = 0, .gid = 0 }, *out;
	struct agent_wbuf w = { 0 };
	struct agent_frame f;

	(void)state;
	assert_int_equal(agent_put_exec(&w, &in), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_exec(&f, &out), 0);
	assert_null(out->user);
	assert_null(out->cwd);
	assert_null(out->argv);
	assert_non_null(out->env);
	assert_null(out->env[0]);
	free(out);
	agent_wbuf_free(&w);
}

static void test_exec_encode_refused(void **state)
{
	char *ok[] = { "true", NULL }, *empty0[] = { "", NULL }, *none[] = { NULL };
	char *badenv[] = { "NOEQUALS", NULL }, *noname[] = { "=v", NULL };
	struct agent_wbuf w = { 0 };
	struct agent_exec_msg m;

	(void)state;
#define REFUSED(err, ...) do { \
		m = (struct agent_exec_msg){ __VA_ARGS__ }; \
		if (!m.argv) \
			m.argv = ok; \
		assert_int_equal(agent_put_exec(&w, &m), err); \
	} while (0)
	REFUSED(-EINVAL, .flags = 4);
	REFUSED(-EINVAL, .flags = AGENT_EXEC_TTY);		/* no size */
	REFUSED(-EINVAL, .flags = AGENT_EXEC_TTY, .rows = 10);
	REFUSED(-EINVAL, .rows = 10, .cols = 10);		/* size without tty */
	REFUSED(-EINVAL, .user = "");
	REFUSED(-EINVAL, .user = "a:b");
	REFUSED(-EINVAL, .user = "-root");
	REFUSED(-EINVAL, .user = "a/b");
	REFUSED(-EINVAL, .user = "abcdefghijklmnopqrstuvwxyz0123456");	/* 33 */
	REFUSED(-EINVAL, .cwd = "relative");
	REFUSED(-EINVAL, .cwd = "");
	REFUSED(-EINVAL, .argv = empty0);
	REFUSED(-EINVAL, .argv = none);
	REFUSED(-EINVAL, .env = badenv);
	REFUSED(-EINVAL, .env = noname);
#undef REFUSED
	assert_int_equal(agent_wbuf_pending(&w), 0);

	/* a machine account name and the largest name are fine */
	m = (struct agent_exec_msg){ .argv = ok, .user = "host$" };
	assert_int_equal(agent_put_exec(&w, &m), 0);
	m.user = "abcdefghijklmnopqrstuvwxyz012345";
	assert_int_equal(agent_put_exec(&w, &m), 0);
	agent_wbuf_free(&w);
}

static void test_exec_too_big(void **state)
{
	size_t n = AGENT_ARG_MAX - 1;
	char *big = malloc(n + 1), *argv[10];
	struct agent_exec_msg m = { .argv = argv }, *out;
	struct agent_wbuf w = { 0 };
	struct agent_frame f;

	(void)state;
	assert_non_null(big);
	memset(big, 'x', n);
	big[n] = '\0';
	argv[0] = "echo";
	for (int i = 1; i < 8; i++)
		argv[i] = big;
	argv[8] = NULL;
	/* 7 strings of 128 KiB - 1 fit in 1 MiB */
	assert_int_equal(agent_put_exec(&w, &m), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_exec(&f, &out), 0);
	assert_int_equal(strlen(out->argv[7]), n);
	free(out);
	agent_wbuf_free(&w);
	argv[8] = big;
	argv[9] = NULL;
	assert_int_equal(agent_put_exec(&w, &m), -E2BIG);
	/* one string at the limit */
	big[n] = 'x';
	big = realloc(big, n + 2);
	big[n + 1] = '\0';
	argv[1] = big;
	argv[2] = NULL;
	assert_int_equal(agent_put_exec(&w, &m), -EINVAL);
	free(big);
	agent_wbuf_free(&w);
}

static void test_exec_decode_refused(void **state)
{
	const char *argv[] = { "sh", "-c", "echo hi" }, *env[] = { "A=b" };
	const char *bad_env[] = { "novalue" }, *empty[] = { "" };
	struct agent_exec_msg *m = NULL;
	struct raw r;

	(void)state;
	raw_exec(&r, 0, 0, 0, "", "", 3, argv, 1, env);
	assert_int_equal(decode_exec(&r, &m), 0);
	assert_string_equal(m->argv[2], "echo hi");
	assert_int_equal(m->uid, 5);
	assert_int_equal(m->gid, 6);
	free(m);

	/* every truncation and one trailing byte */
	for (size_t n = 0; n < r.n; n++) {
		struct agent_frame f = { .type = AGENT_EXEC, .len = n, .payload = r.b };

		assert_int_equal(agent_get_exec(&f, &m), -EPROTO);
	}
	r.n++;
	assert_int_equal(decode_exec(&r, &m), -EPROTO);

	raw_exec(&r, 8, 0, 0, "", "", 3, argv, 1, env);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);		/* unknown flag */
	raw_exec(&r, AGENT_EXEC_TTY, 0, 80, "", "", 3, argv, 1, env);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);		/* no rows */
	raw_exec(&r, 0, 24, 80, "", "", 3, argv, 1, env);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);		/* size without tty */
	raw_exec(&r, 0, 0, 0, "ro:ot", "", 3, argv, 1, env);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);
	raw_exec(&r, 0, 0, 0, "", "tmp", 3, argv, 1, env);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);
	raw_exec(&r, 0, 0, 0, "", "", 3, argv, 1, bad_env);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);
	raw_exec(&r, 0, 0, 0, "", "", 1, empty, 0, env);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);		/* argv[0] "" */

	/* a NUL inside a string */
	raw_exec(&r, 0, 0, 0, "", "", 3, argv, 1, env);
	((uint8_t *)memmem(r.b, r.n, "echo hi", 7))[4] = '\0';
	assert_int_equal(decode_exec(&r, &m), -EPROTO);

	/* a string length past the end, and one that wraps */
	raw_exec(&r, 0, 0, 0, "", "", 1, argv, 0, env);
	r.b[28] = 200;		/* argv[0]'s length */
	assert_int_equal(decode_exec(&r, &m), -EPROTO);
	r.b[28] = 0xff, r.b[29] = 0xff, r.b[30] = 0xff, r.b[31] = 0xff;
	assert_int_equal(decode_exec(&r, &m), -EPROTO);

	/* counts beyond the limits or the payload */
	r.n = 0;
	raw32(&r, 0), raw32(&r, 0), raw32(&r, 0), raw16(&r, 0), raw16(&r, 0);
	rawstr(&r, "", 0), rawstr(&r, "", 0);
	raw32(&r, AGENT_ARGC_MAX + 1);
	raw32(&r, 0);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);
	r.n -= 8;
	raw32(&r, 0xffffffff);
	raw32(&r, 0);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);
	r.n -= 8;
	raw32(&r, 0);
	raw32(&r, AGENT_ENVC_MAX + 1);
	assert_int_equal(decode_exec(&r, &m), -EPROTO);
	r.n -= 4;
	raw32(&r, 0);
	assert_int_equal(decode_exec(&r, &m), 0);
	assert_null(m->argv);
	free(m);
}

static void test_small_frames(void **state)
{
	struct agent_wbuf w = { 0 };
	struct agent_frame f;
	enum agent_stream s;
	uint16_t a, b;
	uint32_t x, y;
	char msg[AGENT_ERROR_MAX];
	int err;

	(void)state;
	assert_int_equal(agent_put_hello(&w, 1, 3), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_hello(&f, &a, &b), 0);
	assert_int_equal(a, 1);
	assert_int_equal(b, 3);
	agent_wbuf_free(&w);
	assert_int_equal(agent_put_hello(&w, 2, 1), -EINVAL);
	assert_int_equal(agent_put_hello(&w, 0, 1), -EINVAL);

	assert_int_equal(agent_put_eof(&w, AGENT_STREAM_STDERR), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_eof(&f, &s), 0);
	assert_int_equal(s, AGENT_STREAM_STDERR);
	agent_wbuf_free(&w);
	assert_int_equal(agent_put_eof(&w, 3), -EINVAL);

	assert_int_equal(agent_put_resize(&w, 50, 132), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_resize(&f, &a, &b), 0);
	assert_int_equal(a, 50);
	assert_int_equal(b, 132);
	agent_wbuf_free(&w);
	assert_int_equal(agent_put_resize(&w, 0, 132), -EINVAL);

	assert_int_equal(agent_put_signal(&w, 2), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_signal(&f, &x), 0);
	assert_int_equal(x, 2);
	agent_wbuf_free(&w);
	assert_int_equal(agent_put_signal(&w, 0), -EINVAL);
	assert_int_equal(agent_put_signal(&w, AGENT_SIG_MAX + 1), -EINVAL);

	assert_int_equal(agent_put_exit(&w, 0, 9), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_exit(&f, &x, &y), 0);
	assert_int_equal(x, 0);
	assert_int_equal(y, 9);
	agent_wbuf_free(&w);
	assert_int_equal(agent_put_exit(&w, 255, 0), 0);
	agent_wbuf_free(&w);
	assert_int_equal(agent_put_exit(&w, 256, 0), -EINVAL);
	assert_int_equal(agent_put_exit(&w, 1, 9), -EINVAL);
	assert_int_equal(agent_put_exit(&w, 0, 65), -EINVAL);

	/* control bytes never reach the other side's terminal */
	assert_int_equal(agent_put_error(&w, ENOENT, "no \x1b[31mway\n"), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_error(&f, &err, msg, sizeof(msg)), 0);
	assert_int_equal(err, ENOENT);
	assert_string_equal(msg, "no ?[31mway?");
	assert_int_equal(agent_get_error(&f, &err, msg, 4), 0);
	assert_string_equal(msg, "no ");
	agent_wbuf_free(&w);
	assert_int_equal(agent_put_error(&w, 0, "x"), -EINVAL);
	assert_int_equal(agent_put_error(&w, 5000, "x"), -EINVAL);

	assert_int_equal(agent_put_empty(&w, AGENT_OK), 0);
	f = first_frame(&w);
	assert_int_equal(f.type, AGENT_OK);
	assert_int_equal(f.len, 0);
	agent_wbuf_free(&w);
	assert_int_equal(agent_put_empty(&w, AGENT_EXIT), -EINVAL);

	assert_int_equal(agent_put_data(&w, AGENT_STDOUT, "x", 0), -EINVAL);
	assert_int_equal(agent_put_data(&w, AGENT_EOF, "x", 1), -EINVAL);
	assert_int_equal(agent_version_pick(1, 1), AGENT_VERSION);
	assert_int_equal(agent_version_pick(2, 5), -EPROTONOSUPPORT);
}

static void test_small_frames_refused(void **state)
{
	uint8_t p[16] = { 0 };
	struct agent_frame f = { .payload = p };
	enum agent_stream s;
	uint16_t a, b;
	uint32_t x, y;
	char msg[16];
	int err;

	(void)state;
	/* a frame of another type or length is never decoded */
	f.type = AGENT_RESIZE, f.len = 4;
	assert_int_equal(agent_get_eof(&f, &s), -EPROTO);
	f.type = AGENT_EOF, f.len = 2;
	assert_int_equal(agent_get_eof(&f, &s), -EPROTO);
	f.len = 1, p[0] = 3;
	assert_int_equal(agent_get_eof(&f, &s), -EPROTO);

	f.type = AGENT_HELLO, f.len = 8;
	memcpy(p, "XOVE", 4), p[4] = 1, p[6] = 1;
	assert_int_equal(agent_get_hello(&f, &a, &b), -EPROTO);	/* magic */
	memcpy(p, "COVE", 4), p[4] = 2;
	assert_int_equal(agent_get_hello(&f, &a, &b), -EPROTO);	/* min > max */
	p[4] = 1;
	assert_int_equal(agent_get_hello(&f, &a, &b), 0);

	memset(p, 0, sizeof(p));
	f.type = AGENT_RESIZE, f.len = 4, p[0] = 5;
	assert_int_equal(agent_get_resize(&f, &a, &b), -EPROTO);
	f.type = AGENT_SIGNAL, p[0] = 65;
	assert_int_equal(agent_get_signal(&f, &x), -EPROTO);
	p[0] = 0;
	assert_int_equal(agent_get_signal(&f, &x), -EPROTO);

	f.type = AGENT_EXIT, f.len = 8, p[0] = 0, p[1] = 1;	/* code 256 */
	assert_int_equal(agent_get_exit(&f, &x, &y), -EPROTO);
	p[1] = 0, p[0] = 1, p[4] = 9;				/* code and signal */
	assert_int_equal(agent_get_exit(&f, &x, &y), -EPROTO);

	memset(p, 0, sizeof(p));
	f.type = AGENT_ERROR, f.len = 6, p[0] = 2, p[4] = 'a', p[5] = 0x1b;
	assert_int_equal(agent_get_error(&f, &err, msg, sizeof(msg)), -EPROTO);
	p[5] = 'b', p[0] = 0;
	assert_int_equal(agent_get_error(&f, &err, msg, sizeof(msg)), -EPROTO);
	p[0] = 2;
	assert_int_equal(agent_get_error(&f, &err, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "ab");
}

static void test_info(void **state)
{
	struct agent_info in = {
		.ipv4 = "192.168.64.7",
		.mem_total_kib = 4 << 20, .mem_available_kib = 3 << 20,
		.disk_total_kib = 64ull << 20, .disk_used_kib = 1 << 20,
		.load = { 0.5, 1.25, 10.0 },
	}, out;
	struct agent_wbuf w = { 0 };
	struct agent_frame f;
	uint8_t raw[52];

	(void)state;
	assert_int_equal(agent_put_info(&w, &in), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_info(&f, &out), 0);
	assert_string_equal(out.ipv4, "192.168.64.7");
	assert_int_equal(out.mem_total_kib, in.mem_total_kib);
	assert_int_equal(out.mem_available_kib, in.mem_available_kib);
	assert_int_equal(out.disk_total_kib, in.disk_total_kib);
	assert_int_equal(out.disk_used_kib, in.disk_used_kib);
	assert_true(out.load[0] == 0.5 && out.load[1] == 1.25 && out.load[2] == 10.0);
	memcpy(raw, f.payload, sizeof(raw));
	agent_wbuf_free(&w);

	in.ipv4[0] = '\0';
	assert_int_equal(agent_put_info(&w, &in), 0);
	f = first_frame(&w);
	assert_int_equal(agent_get_info(&f, &out), 0);
	assert_string_equal(out.ipv4, "");
	agent_wbuf_free(&w);

	strcpy(in.ipv4, "1.2.3.256");
	assert_int_equal(agent_put_info(&w, &in), -EINVAL);
	strcpy(in.ipv4, "1.2.3.4x");
	assert_int_equal(agent_put_info(&w, &in), -EINVAL);
	in.ipv4[0] = '\0';
	in.mem_available_kib = in.mem_total_kib + 1;
	assert_int_equal(agent_put_info(&w, &in), -EINVAL);

	f = (struct agent_frame){ .type = AGENT_INFO, .len = sizeof(raw), .payload = raw };
	raw[4] = 1;				/* reserved */
	assert_int_equal(agent_get_info(&f, &out), -EPROTO);
	raw[4] = 0;
	raw[39] = 0xff;				/* disk used > size */
	assert_int_equal(agent_get_info(&f, &out), -EPROTO);
}

/* Bytes through a socketpair into an rbuf, at most chunk bytes a write;
 * the frames got (payloads copied) into frames[*got]. Returns what the
 * last agent_rbuf_next did: 0, or -EPROTO. */
static int feed(struct agent_rbuf *r, const uint8_t *p, size_t n, size_t chunk,
		struct agent_frame *frames, int max, int *got)
{
	int sv[2], rc = 0;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	*got = 0;
	for (size_t off = 0; off < n && rc >= 0;) {
		size_t k = n - off < chunk ? n - off : chunk;
		ssize_t wrote = write(sv[0], p + off, k);

		assert_true(wrote > 0);
		off += wrote;
		for (;;) {
			ssize_t in = agent_rbuf_fill(r, sv[1]);

			if (in == -EAGAIN)
				break;
			assert_true(in > 0);
			while ((rc = agent_rbuf_next(r, &frames[*got])) == 1) {
				/* keep a copy: the payload moves on the next fill */
				uint8_t *copy = malloc(frames[*got].len + 1);

				memcpy(copy, frames[*got].payload, frames[*got].len);
				frames[*got].payload = copy;
				assert_true(++*got <= max);
			}
			if (rc < 0)
				break;
		}
	}
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static void free_frames(struct agent_frame *f, int n)
{
	for (int i = 0; i < n; i++)
		free((void *)f[i].payload);
}

static void test_stream_cutting(void **state)
{
	char *argv[] = { "cat", NULL };
	struct agent_exec_msg ex = { .argv = argv, .flags = AGENT_EXEC_STDIN }, *m;
	static uint8_t data[AGENT_DATA_MAX];
	static const size_t chunks[] = { 1, 3, 7, 4096, 1 << 20 };
	struct agent_wbuf w = { 0 };
	struct agent_frame fr[8];
	uint32_t code, sig;
	int got;

	(void)state;
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = i * 7;
	assert_int_equal(agent_put_hello(&w, 1, 1), 0);
	assert_int_equal(agent_put_exec(&w, &ex), 0);
	assert_int_equal(agent_put_data(&w, AGENT_STDIN, data, sizeof(data)), 0);
	assert_int_equal(agent_put_eof(&w, AGENT_STREAM_STDIN), 0);
	assert_int_equal(agent_put_exit(&w, 3, 0), 0);

	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		struct agent_rbuf r = { .exec_max = AGENT_EXEC_MAX };

		assert_int_equal(feed(&r, w.data, w.len, chunks[c], fr, 8, &got), 0);
		assert_int_equal(got, 5);
		assert_int_equal(fr[0].type, AGENT_HELLO);
		assert_int_equal(agent_get_exec(&fr[1], &m), 0);
		assert_string_equal(m->argv[0], "cat");
		free(m);
		assert_int_equal(fr[2].type, AGENT_STDIN);
		assert_int_equal(fr[2].len, sizeof(data));
		assert_memory_equal(fr[2].payload, data, sizeof(data));
		assert_int_equal(fr[3].type, AGENT_EOF);
		assert_int_equal(agent_get_exit(&fr[4], &code, &sig), 0);
		assert_int_equal(code, 3);
		free_frames(fr, got);
		agent_rbuf_free(&r);
	}
	agent_wbuf_free(&w);
}

static void test_big_exec_through_stream(void **state)
{
	size_t n = AGENT_ARG_MAX - 1;
	char *big = malloc(n + 1), *argv[9];
	struct agent_exec_msg ex = { .argv = argv }, *m;
	struct agent_wbuf w = { 0 };
	struct agent_frame fr[2];
	int got;

	(void)state;
	memset(big, 'y', n);
	big[n] = '\0';
	argv[0] = "echo";
	for (int i = 1; i < 8; i++)
		argv[i] = big;
	argv[8] = NULL;
	assert_int_equal(agent_put_exec(&w, &ex), 0);
	assert_true(w.len > 7 * (AGENT_ARG_MAX - 1));

	struct agent_rbuf r = { .exec_max = AGENT_EXEC_MAX };
	assert_int_equal(feed(&r, w.data, w.len, 65536, fr, 2, &got), 0);
	assert_int_equal(got, 1);
	assert_int_equal(agent_get_exec(&fr[0], &m), 0);
	assert_string_equal(m->argv[7], big);
	free(m);
	free_frames(fr, got);
	agent_rbuf_free(&r);

	/* the host side takes no EXEC at all */
	struct agent_rbuf host = { 0 };
	assert_int_equal(feed(&host, w.data, 64, 64, fr, 2, &got), -EPROTO);
	agent_rbuf_free(&host);
	free(big);
	agent_wbuf_free(&w);
}

static void test_bad_headers(void **state)
{
	static const struct {
		uint32_t len;
		uint16_t type, zero;
	} bad[] = {
		{ 0, 0, 0 },				/* type 0 */
		{ 0, AGENT_ERROR + 1, 0 },		/* unknown type */
		{ 0, AGENT_OK, 1 },			/* reserved bits */
		{ 0, AGENT_STDIN, 0 },			/* empty data */
		{ AGENT_DATA_MAX + 1, AGENT_STDOUT, 0 },
		{ 1, AGENT_OK, 0 },
		{ 7, AGENT_HELLO, 0 },
		{ 0xffffffff, AGENT_EXEC, 0 },
		{ AGENT_EXEC_MAX + 1, AGENT_EXEC, 0 },
		{ 3, AGENT_ERROR, 0 },
		{ 4 + AGENT_ERROR_MAX, AGENT_ERROR, 0 },
		{ 51, AGENT_INFO, 0 },
	};
	struct agent_frame fr[1];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct agent_rbuf r = { .exec_max = AGENT_EXEC_MAX };
		uint8_t h[AGENT_HDR_SIZE];
		int got;

		for (int k = 0; k < 4; k++)
			h[k] = bad[i].len >> (8 * k);
		h[4] = bad[i].type, h[5] = bad[i].type >> 8;
		h[6] = bad[i].zero, h[7] = 0;
		assert_int_equal(feed(&r, h, sizeof(h), sizeof(h), fr, 1, &got), -EPROTO);
		assert_int_equal(got, 0);
		/* the buffer did not grow for a length it refused */
		assert_true(r.cap < 2 * (AGENT_HDR_SIZE + AGENT_DATA_MAX));
		agent_rbuf_free(&r);
	}
}

static void test_flush(void **state)
{
	static uint8_t data[AGENT_DATA_MAX];
	struct agent_wbuf w = { 0 };
	uint8_t sink[4 * AGENT_DATA_MAX];
	int sv[2];
	ssize_t n;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(agent_put_data(&w, AGENT_STDOUT, data, sizeof(data)), 0);
	/* 2 MiB cannot go into the socket at once: a partial write */
	assert_int_equal(agent_wbuf_flush(&w, sv[0]), 0);
	assert_true(agent_wbuf_pending(&w) > 0);
	while (agent_wbuf_pending(&w)) {
		n = read(sv[1], sink, sizeof(sink));
		assert_true(n > 0);
		assert_int_equal(agent_wbuf_flush(&w, sv[0]), 0);
	}
	/* a vanished peer */
	close(sv[1]);
	assert_int_equal(agent_put_empty(&w, AGENT_OK), 0);
	assert_int_equal(agent_wbuf_flush(&w, sv[0]), -EPIPE);
	close(sv[0]);
	agent_wbuf_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_round_trip),
		cmocka_unit_test(test_exec_login_shell),
		cmocka_unit_test(test_exec_encode_refused),
		cmocka_unit_test(test_exec_too_big),
		cmocka_unit_test(test_exec_decode_refused),
		cmocka_unit_test(test_small_frames),
		cmocka_unit_test(test_small_frames_refused),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_stream_cutting),
		cmocka_unit_test(test_big_exec_through_stream),
		cmocka_unit_test(test_bad_headers),
		cmocka_unit_test(test_flush),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
