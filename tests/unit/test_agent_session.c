/* The guest agent's sessions on the host, without a VM: a connection is a
 * socketpair whose far end is served by the agent's own session code (in
 * a forked process, as the agent does per vsock connection), and the near
 * end is driven by agent_client. Commands run as the current user. */
#include <errno.h>
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_client.h"

/* The agent itself: its main is not ours. */
int cove_agent_main(void);
#define main cove_agent_main
#include "../../guest/machine/agent.c"
#undef main
#include "../../guest/machine/users.c"
#include "../../guest/machine/say.c"

static pid_t session_pid;

/* A connection to a fresh session, hello done. */
static int connect_session(void)
{
	struct agent_rbuf r = { 0 };
	struct agent_wbuf w = { 0 };
	struct agent_frame f;
	uint16_t min, max;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	session_pid = fork();
	assert_true(session_pid >= 0);
	if (session_pid == 0) {
		close(sv[0]);
		session(sv[1]);
	}
	close(sv[1]);
	assert_int_equal(agent_put_hello(&w, 1, 1), 0);
	assert_int_equal(agent_wbuf_flush(&w, sv[0]), 0);
	assert_int_equal(read_frame(sv[0], &r, &f, now_ms() + 10000), 0);
	assert_int_equal(agent_get_hello(&f, &min, &max), 0);
	assert_int_equal(min, 1);
	agent_rbuf_free(&r);
	agent_wbuf_free(&w);
	return sv[0];
}

/* The session process ends (within 10 s). */
static void session_ends(void)
{
	int st;

	for (int i = 0; i < 1000; i++) {
		if (waitpid(session_pid, &st, WNOHANG) == session_pid)
			return;
		usleep(10000);
	}
	kill(session_pid, SIGKILL);
	fail_msg("the session did not end");
}

static int memfd_with(const void *data, size_t len)
{
	int fd = memfd_create("t", 0);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

static char *slurp(int fd)
{
	static char buf[4096];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	assert_true(n >= 0);
	buf[n] = '\0';
	return buf;
}

/* Run x with in_data on stdin; stdout and stderr into *out and *err
 * (memfds). Returns the status. */
static int run(struct agent_exec *x, const char *in_data, int *out, int *err)
{
	int in = memfd_with(in_data, strlen(in_data)), status = -1;

	*out = memfd_with("", 0);
	*err = memfd_with("", 0);
	x->uid = getuid();
	x->gid = getgid();
	assert_int_equal(agent_exec(connect_session(), x, in, *out, *err, &status), 0);
	session_ends();
	close(in);
	return status;
}

static void test_exec_pipes(void **state)
{
	char *argv[] = { "sh", "-c", "echo \"$1|$FOO\"; echo err >&2; exit 3", "sh", "a  b", NULL };
	char *env[] = { "FOO=bar", NULL };
	struct agent_exec x = { .argv = argv, .env = env };
	int out, err;

	(void)state;
	assert_int_equal(run(&x, "", &out, &err), 3);
	assert_string_equal(slurp(out), "a  b|bar\n");
	assert_string_equal(slurp(err), "err\n");
	close(out);
	close(err);
}

static void test_stdin(void **state)
{
	char *wc[] = { "wc", "-c", NULL }, *cat[] = { "cat", NULL };
	struct agent_exec x = { .argv = wc, .stdin = true };
	size_t n = 3 << 20;
	uint8_t *blob = malloc(n), *back = malloc(n);
	int out, err, in, status;

	(void)state;
	/* an empty stdin: EOF at once */
	assert_int_equal(run(&x, "", &out, &err), 0);
	assert_int_equal(atoi(slurp(out)), 0);
	close(out);
	close(err);
	assert_int_equal(run(&x, "12345", &out, &err), 0);
	assert_int_equal(atoi(slurp(out)), 5);
	close(out);
	close(err);

	/* 3 MiB there and back */
	for (size_t i = 0; i < n; i++)
		blob[i] = (i * 2654435761u) >> 13;
	in = memfd_with(blob, n);
	out = memfd_with("", 0);
	x.argv = cat;
	x.uid = getuid();
	x.gid = getgid();
	assert_int_equal(agent_exec(connect_session(), &x, in, out, 2, &status), 0);
	session_ends();
	assert_int_equal(status, 0);
	assert_int_equal(pread(out, back, n, 0), (ssize_t)n);
	assert_memory_equal(blob, back, n);
	free(blob);
	free(back);
	close(in);
	close(out);
}

static void test_statuses(void **state)
{
	char *killed[] = { "sh", "-c", "kill -TERM $$", NULL };
	char *missing[] = { "/no/such/command", NULL }, *truth[] = { "true", NULL };
	struct agent_exec x = { .argv = killed };
	int out, err;

	(void)state;
	assert_int_equal(run(&x, "", &out, &err), 128 + SIGTERM);
	close(out);
	close(err);
	x.argv = missing;
	assert_int_equal(run(&x, "", &out, &err), 127);
	assert_non_null(strstr(slurp(err), "/no/such/command: No such file or directory"));
	close(out);
	close(err);
	x.argv = truth;
	x.cwd = "/no/such/dir";
	assert_int_equal(run(&x, "", &out, &err), 126);
	assert_non_null(strstr(slurp(err), "/no/such/dir"));
	close(out);
	close(err);
}

static void test_tty(void **state)
{
	char *argv[] = { "sh", "-c", "tty; stty size; echo $TERM", NULL };
	char *env[] = { "TERM=vt100", NULL };
	struct agent_exec x = { .argv = argv, .tty = true, .env = env };
	char *got;
	int out, err;

	(void)state;
	assert_int_equal(run(&x, "", &out, &err), 0);
	got = slurp(out);
	assert_true(!strncmp(got, "/dev/pts/", 9));
	assert_non_null(strstr(got, "\r\n24 80\r\nvt100\r\n"));
	close(out);
	close(err);
}

static void test_info(void **state)
{
	struct agent_info in;
	int fd;

	(void)state;
	fd = connect_session();
	assert_int_equal(agent_info(fd, &in), 0);
	session_ends();
	assert_true(in.mem_total_kib > 0);
	assert_true(in.mem_available_kib <= in.mem_total_kib);
	assert_true(in.disk_total_kib > 0);
}

/* Send raw frames on a fresh session. */
static int raw_exec(char **argv, uint32_t flags)
{
	struct agent_exec_msg m = { .flags = flags, .uid = getuid(), .gid = getgid(), .argv = argv };
	struct agent_wbuf w = { 0 };
	int fd = connect_session();

	assert_int_equal(agent_put_exec(&w, &m), 0);
	assert_int_equal(agent_wbuf_flush(&w, fd), 0);
	agent_wbuf_free(&w);
	return fd;
}

static void test_client_vanishes(void **state)
{
	char *argv[] = { "sleep", "100", NULL };
	int fd;

	(void)state;
	/* the command is hung up and the session ends */
	fd = raw_exec(argv, 0);
	usleep(100000);
	close(fd);
	session_ends();
}

static void test_bad_frames(void **state)
{
	char *argv[] = { "cat", NULL };
	struct agent_rbuf r = { 0 };
	struct agent_wbuf w = { 0 };
	struct agent_frame f;
	char msg[AGENT_ERROR_MAX];
	int fd, e;

	(void)state;
	/* a resize without a tty */
	fd = raw_exec(argv, AGENT_EXEC_STDIN);
	assert_int_equal(agent_put_resize(&w, 10, 10), 0);
	assert_int_equal(agent_wbuf_flush(&w, fd), 0);
	assert_int_equal(read_frame(fd, &r, &f, now_ms() + 10000), 0);
	assert_int_equal(f.type, AGENT_ERROR);
	assert_int_equal(agent_get_error(&f, &e, msg, sizeof(msg)), 0);
	assert_int_equal(e, EPROTO);
	session_ends();
	close(fd);
	agent_rbuf_free(&r);

	/* stdin data that was not announced */
	fd = raw_exec(argv, 0);
	assert_int_equal(agent_put_data(&w, AGENT_STDIN, "x", 1), 0);
	assert_int_equal(agent_wbuf_flush(&w, fd), 0);
	assert_int_equal(read_frame(fd, &r, &f, now_ms() + 10000), 0);
	assert_int_equal(f.type, AGENT_ERROR);
	session_ends();
	close(fd);
	agent_rbuf_free(&r);

	/* garbage instead of a request */
	fd = connect_session();
	assert_int_equal(write(fd, "GET / HTTP/1.0\r\n\r\n", 18), 18);
	assert_int_equal(read_frame(fd, &r, &f, now_ms() + 10000), 0);
	assert_int_equal(f.type, AGENT_ERROR);
	session_ends();
	close(fd);
	agent_rbuf_free(&r);
	agent_wbuf_free(&w);
}

static void test_user_unknown(void **state)
{
	char *argv[] = { "true", NULL };
	struct agent_exec x = { .argv = argv, .user = "no-such-user-here" };
	int err = memfd_with("", 0), status;

	(void)state;
	assert_int_equal(agent_exec(connect_session(), &x, -1, 1, err, &status), -ENOENT);
	session_ends();
	assert_non_null(strstr(slurp(err), "no-such-user-here"));
	close(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_pipes),
		cmocka_unit_test(test_stdin),
		cmocka_unit_test(test_statuses),
		cmocka_unit_test(test_tty),
		cmocka_unit_test(test_info),
		cmocka_unit_test(test_client_vanishes),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_user_unknown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
