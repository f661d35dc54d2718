/* The agent client against a fake machine: a forked process that plays
 * cove-vmm's hybrid vsock socket and the agent behind it, well or badly. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_client.h"

enum fake {
	FAKE_EXEC,		/* echo stdin, argv on stdout, exit 7 */
	FAKE_REFUSE_FIRST,	/* first connection closed before OK (no agent yet) */
	FAKE_SIGNAL,		/* SIGINT this test, exit as the SIGNAL frame says */
	FAKE_BAD_FRAME,		/* an empty STDOUT frame */
	FAKE_ERROR,		/* ERROR ENOENT with a message */
	FAKE_VANISH,		/* close after the EXEC */
	FAKE_INFO,
	FAKE_POWEROFF,
	FAKE_NOT_COVE,		/* something else answers the CONNECT */
	FAKE_VERSION,		/* a hello of version 2 */
};

static char sock_path[108];
static pid_t fake_pid;

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "fake: %s:%d: %s\n", __FILE__, __LINE__, #c); _exit(1); } } while (0)

static void send_w(int fd, struct agent_wbuf *w)
{
	CHECK(agent_wbuf_flush(w, fd) == 0 && !agent_wbuf_pending(w));
}

static int next_frame(int fd, struct agent_rbuf *r, struct agent_frame *f)
{
	for (;;) {
		int got = agent_rbuf_next(r, f);

		if (got)
			return got;
		if (agent_rbuf_fill(r, fd) <= 0)
			return 0;
	}
}

/* Read "CONNECT 1024\n" and say OK; then the hello. */
static void handshake(int c, enum fake how, struct agent_rbuf *r)
{
	struct agent_wbuf w = { 0 };
	struct agent_frame f;
	char line[14] = { 0 };
	uint16_t min, max;

	CHECK(read(c, line, 13) == 13 && !strcmp(line, "CONNECT 1024\n"));
	if (how == FAKE_NOT_COVE) {
		CHECK(write(c, "HTTP/1.0 400\n", 13) == 13);
		return;
	}
	CHECK(write(c, "OK 1073741824\n", 14) == 14);
	CHECK(next_frame(c, r, &f) == 1 && agent_get_hello(&f, &min, &max) == 0);
	CHECK(min == 1 && max == 1);
	CHECK(agent_put_hello(&w, how == FAKE_VERSION ? 2 : 1, how == FAKE_VERSION ? 2 : 1) == 0);
	send_w(c, &w);
	agent_wbuf_free(&w);
}

static void serve_exec(int c, enum fake how, struct agent_rbuf *r)
{
	struct agent_wbuf w = { 0 };
	struct agent_exec_msg *m;
	struct agent_frame f;
	enum agent_stream s;
	uint32_t sig;

	CHECK(next_frame(c, r, &f) == 1 && agent_get_exec(&f, &m) == 0);
	switch (how) {
	case FAKE_VANISH:
		return;
	case FAKE_ERROR:
		CHECK(agent_put_error(&w, ENOENT, "user nobody2: no such user") == 0);
		send_w(c, &w);
		return;
	case FAKE_BAD_FRAME: {
		static const uint8_t bad[8] = { 0, 0, 0, 0, AGENT_STDOUT, 0, 0, 0 };

		CHECK(write(c, bad, sizeof(bad)) == sizeof(bad));
		sleep(1);
		return;
	}
	case FAKE_SIGNAL:
		kill(getppid(), SIGINT);
		CHECK(next_frame(c, r, &f) == 1 && agent_get_signal(&f, &sig) == 0);
		CHECK(agent_put_exit(&w, 0, sig) == 0);
		send_w(c, &w);
		return;
	default:
		break;
	}
	CHECK(m->argv && !strcmp(m->argv[1], "a  b") && !m->argv[2]);
	CHECK(!strcmp(m->user, "alice") && !strcmp(m->cwd, "/w"));
	CHECK(m->flags == (AGENT_EXEC_TTY | AGENT_EXEC_STDIN) && m->rows && m->cols);
	CHECK(!strcmp(m->env[0], "A=1") && !strcmp(m->env[1], "TERM=dumb-test") && !m->env[2]);
	CHECK(agent_put_data(&w, AGENT_STDOUT, m->argv[1], 4) == 0);
	send_w(c, &w);
	/* echo stdin until its EOF */
	for (;;) {
		CHECK(next_frame(c, r, &f) == 1);
		if (f.type == AGENT_EOF) {
			CHECK(agent_get_eof(&f, &s) == 0 && s == AGENT_STREAM_STDIN);
			break;
		}
		CHECK(f.type == AGENT_STDIN);
		CHECK(agent_put_data(&w, AGENT_STDOUT, f.payload, f.len) == 0);
		send_w(c, &w);
	}
	CHECK(agent_put_data(&w, AGENT_STDERR, "err", 3) == 0);
	CHECK(agent_put_eof(&w, AGENT_STREAM_STDOUT) == 0);
	CHECK(agent_put_exit(&w, 7, 0) == 0);
	send_w(c, &w);
	agent_wbuf_free(&w);
	free(m);
}

static void serve(int c, enum fake how)
{
	struct agent_rbuf r = { .exec_max = AGENT_EXEC_MAX };
	struct agent_wbuf w = { 0 };
	struct agent_frame f;
	struct agent_info in = { .ipv4 = "10.0.2.15", .mem_total_kib = 1000,
				 .mem_available_kib = 600, .disk_total_kib = 5000,
				 .disk_used_kib = 100, .load = { 0.25, 0, 1 } };

	handshake(c, how, &r);
	if (how == FAKE_NOT_COVE || how == FAKE_VERSION)
		return;
	if (how == FAKE_INFO || how == FAKE_POWEROFF) {
		CHECK(next_frame(c, &r, &f) == 1);
		CHECK(f.type == (how == FAKE_INFO ? AGENT_GET_INFO : AGENT_POWEROFF));
		CHECK((how == FAKE_INFO ? agent_put_info(&w, &in) : agent_put_empty(&w, AGENT_OK)) == 0);
		send_w(c, &w);
		return;
	}
	serve_exec(c, how, &r);
}

static void fake_start(enum fake how)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int l = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(l >= 0);
	strcpy(sa.sun_path, sock_path);
	unlink(sock_path);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(l, 8), 0);
	fake_pid = fork();
	assert_true(fake_pid >= 0);
	if (fake_pid == 0) {
		int c = accept(l, NULL, NULL);
		char line[13];

		CHECK(c >= 0);
		if (how == FAKE_REFUSE_FIRST) {
			/* what cove-vmm does when the guest answers RST */
			CHECK(read(c, line, 13) == 13);
			close(c);
			c = accept(l, NULL, NULL);
			CHECK(c >= 0);
			how = FAKE_EXEC;
		}
		serve(c, how);
		_exit(0);
	}
	close(l);
}

static void fake_done(void)
{
	int st;

	assert_int_equal(waitpid(fake_pid, &st, 0), fake_pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static int memfd_with(const char *s)
{
	int fd = memfd_create("t", 0);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static void slurp(int fd, char *buf, size_t size)
{
	ssize_t n = pread(fd, buf, size - 1, 0);

	assert_true(n >= 0);
	buf[n] = '\0';
}

static void run_exec(enum fake how)
{
	char *argv[] = { "printf", "a  b", NULL }, *env[] = { "A=1", NULL };
	struct agent_exec x = { .argv = argv, .env = env, .user = "alice", .cwd = "/w",
				.tty = true, .stdin = true };
	int in = memfd_with("hello through stdin\n"), out = memfd_with(""), err = memfd_with("");
	char buf[256];
	int fd, status = -1;

	setenv("TERM", "dumb-test", 1);
	fake_start(how);
	fd = agent_connect(sock_path, 5000);
	assert_true(fd >= 0);
	assert_int_equal(agent_exec(fd, &x, in, out, err, &status), 0);
	assert_int_equal(status, 7);
	slurp(out, buf, sizeof(buf));
	assert_string_equal(buf, "a  bhello through stdin\n");
	slurp(err, buf, sizeof(buf));
	assert_string_equal(buf, "err");
	fake_done();
	close(in);
	close(out);
	close(err);
}

static void test_exec(void **state)
{
	(void)state;
	run_exec(FAKE_EXEC);
}

static void test_retry_until_agent(void **state)
{
	(void)state;
	run_exec(FAKE_REFUSE_FIRST);
}

static void test_signal_forwarded(void **state)
{
	char *argv[] = { "sleep", "100", NULL };
	struct agent_exec x = { .argv = argv };
	sigset_t mask;
	int fd, status = -1;

	(void)state;
	fake_start(FAKE_SIGNAL);
	fd = agent_connect(sock_path, 5000);
	assert_true(fd >= 0);
	assert_int_equal(agent_exec(fd, &x, -1, 1, 2, &status), 0);
	assert_int_equal(status, 128 + SIGINT);
	/* the mask is as it was */
	sigprocmask(SIG_SETMASK, NULL, &mask);
	assert_false(sigismember(&mask, SIGINT));
	fake_done();
}

static int exec_against(enum fake how, int err_fd)
{
	char *argv[] = { "true", NULL };
	struct agent_exec x = { .argv = argv };
	int fd, status = -1, rc;

	fake_start(how);
	fd = agent_connect(sock_path, 5000);
	assert_true(fd >= 0);
	rc = agent_exec(fd, &x, -1, 1, err_fd, &status);
	fake_done();
	return rc;
}

static void test_bad_agents(void **state)
{
	int err = memfd_with("");
	char buf[256];

	(void)state;
	assert_int_equal(exec_against(FAKE_BAD_FRAME, 2), -EPROTO);
	assert_int_equal(exec_against(FAKE_VANISH, 2), -ECONNRESET);
	assert_int_equal(exec_against(FAKE_ERROR, err), -ENOENT);
	slurp(err, buf, sizeof(buf));
	assert_string_equal(buf, "cove: guest agent: user nobody2: no such user\n");
	close(err);

	fake_start(FAKE_NOT_COVE);
	assert_int_equal(agent_connect(sock_path, 5000), -EPROTO);
	fake_done();
	fake_start(FAKE_VERSION);
	assert_int_equal(agent_connect(sock_path, 5000), -EPROTONOSUPPORT);
	fake_done();
}

static void test_info_poweroff(void **state)
{
	struct agent_info in;
	int fd;

	(void)state;
	fake_start(FAKE_INFO);
	fd = agent_connect(sock_path, 5000);
	assert_true(fd >= 0);
	assert_int_equal(agent_info(fd, &in), 0);
	assert_string_equal(in.ipv4, "10.0.2.15");
	assert_int_equal(in.mem_total_kib, 1000);
	assert_int_equal(in.mem_available_kib, 600);
	assert_int_equal(in.disk_total_kib, 5000);
	assert_int_equal(in.disk_used_kib, 100);
	assert_true(in.load[0] == 0.25 && in.load[2] == 1);
	fake_done();

	fake_start(FAKE_POWEROFF);
	fd = agent_connect(sock_path, 5000);
	assert_true(fd >= 0);
	assert_int_equal(agent_poweroff(fd), 0);
	fake_done();
}

static void test_connect_errors(void **state)
{
	char longpath[200];

	(void)state;
	unlink(sock_path);
	assert_int_equal(agent_connect(sock_path, 200), -ETIMEDOUT);
	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(agent_connect(longpath, 200), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_retry_until_agent),
		cmocka_unit_test(test_signal_forwarded),
		cmocka_unit_test(test_bad_agents),
		cmocka_unit_test(test_info_poweroff),
		cmocka_unit_test(test_connect_errors),
	};
	char dir[] = "/tmp/cove-agent-test.XXXXXX";
	int rc;

	if (!mkdtemp(dir))
		return 1;
	snprintf(sock_path, sizeof(sock_path), "%s/v.sock", dir);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(sock_path);
	rmdir(dir);
	return rc;
}
