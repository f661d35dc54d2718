#include "agent_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#define CONNECT_LINE_MAX	32
#define REPLY_TIMEOUT_MS	30000	/* POWEROFF and GET_INFO answers */
#define STDIN_HIGH		(4 * AGENT_DATA_MAX)	/* unsent bytes before in_fd waits */
#define GIVE_UP_SIGNALS		3

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for events on fd until deadline (ms, CLOCK_MONOTONIC; -1: none).
 * 0, -ETIMEDOUT or -errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int64_t left = deadline < 0 ? -1 : deadline - now_ms();
		int n;

		if (deadline >= 0 && left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Send all of w on a blocking fd. */
static int send_all(struct agent_wbuf *w, int fd, int64_t deadline)
{
	while (agent_wbuf_pending(w)) {
		int err = agent_wbuf_flush(w, fd);

		if (!err && agent_wbuf_pending(w))
			err = wait_fd(fd, POLLOUT, deadline);
		if (err)
			return err;
	}
	return 0;
}

/* The next frame from fd, waiting until deadline. 0, -ECONNRESET at the
 * end of the stream, -EPROTO or -errno. */
static int read_frame(int fd, struct agent_rbuf *r, struct agent_frame *f, int64_t deadline)
{
	for (;;) {
		int got = agent_rbuf_next(r, f);
		ssize_t n;

		if (got)
			return got < 0 ? got : 0;
		n = agent_rbuf_fill(r, fd);
		if (n == 0)
			return -ECONNRESET;
		if (n == -EAGAIN)
			n = wait_fd(fd, POLLIN, deadline);
		if (n < 0)
			return n;
	}
}

/* A refusal from the agent: -its errno, or -EPROTO when f is none. */
static int refusal(const struct agent_frame *f, int err_fd)
{
	char msg[AGENT_ERROR_MAX], line[AGENT_ERROR_MAX + 32];
	int err, n;

	if (f->type != AGENT_ERROR || agent_get_error(f, &err, msg, sizeof(msg)))
		return -EPROTO;
	if (err_fd >= 0) {
		n = snprintf(line, sizeof(line), "cove: guest agent: %s\n", msg);
		if (write(err_fd, line, n) < 0) {
			/* the caller hears of the refusal anyway */
		}
	}
	return -err;
}

/* Read "OK PORT\n" a byte at a time (nothing after it is ours to take).
 * 0, -ECONNRESET when cove-vmm closed the connection (the guest refused
 * or did not answer), -EPROTO for another line. */
static int read_ok_line(int fd, int64_t deadline)
{
	char line[CONNECT_LINE_MAX];
	size_t len = 0;

	while (len < sizeof(line)) {
		ssize_t n = read(fd, line + len, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			int err = wait_fd(fd, POLLIN, deadline);

			if (err)
				return err;
			continue;
		}
		if (n < 0)
			return errno == ECONNRESET || errno == EPIPE ? -ECONNRESET : -errno;
		if (n == 0)
			return -ECONNRESET;
		if (line[len] == '\n')
			return len > 3 && !memcmp(line, "OK ", 3) ? 0 : -EPROTO;
		len++;
	}
	return -EPROTO;
}

/* One attempt: connect, CONNECT, hello. A connected fd or -errno. */
static int connect_once(const struct sockaddr_un *sa, int64_t deadline)
{
	static const char connect_line[] = "CONNECT 1024\n";
	struct agent_wbuf w = { 0 };
	struct agent_rbuf r = { 0 };
	struct agent_frame f;
	uint16_t min, max;
	int fd, err;

	_Static_assert(AGENT_PORT == 1024, "connect_line names the port");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		err = -errno;
		if (err == -EAGAIN)	/* a full backlog: try again */
			err = -ECONNREFUSED;
		goto out;
	}
	err = agent_put_hello(&w, AGENT_VERSION, AGENT_VERSION);
	if (err)
		goto out;
	if (send(fd, connect_line, sizeof(connect_line) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(connect_line) - 1) {
		err = -ECONNRESET;
		goto out;
	}
	err = read_ok_line(fd, deadline);
	if (!err)
		err = send_all(&w, fd, deadline);
	if (!err)
		err = read_frame(fd, &r, &f, deadline);
	if (err == -EPIPE)
		err = -ECONNRESET;
	if (err)
		goto out;
	if (f.type != AGENT_HELLO) {
		err = refusal(&f, -1);
		goto out;
	}
	if (agent_get_hello(&f, &min, &max) || min != max) {
		err = -EPROTO;
		goto out;
	}
	if (min != AGENT_VERSION) {
		err = -EPROTONOSUPPORT;
		goto out;
	}
	/* blocking from here on, as the callers expect */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)
		err = -errno;
out:
	agent_wbuf_free(&w);
	agent_rbuf_free(&r);
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

int agent_connect(const char *vsock_uds, int timeout_ms)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int delay = 20;

	if (strlen(vsock_uds) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, vsock_uds);
	for (;;) {
		int fd = connect_once(&sa, deadline);
		int64_t left;

		/* Not there yet: no socket (cove-vmm starting), nobody
		 * listening, or the guest has no agent listening yet. */
		if (fd >= 0 || (fd != -ENOENT && fd != -ECONNREFUSED && fd != -ECONNRESET))
			return fd;
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct timespec ts = { 0, (long)(delay < left ? delay : left) * 1000000 };
		nanosleep(&ts, NULL);
		if (delay < 200)
			delay *= 2;
	}
}

/* Write all of buf to a caller's fd (blocking or not). 0 or -errno. */
static int write_out(int fd, const uint8_t *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				int err = wait_fd(fd, POLLOUT, -1);

				if (err)
					return err;
				continue;
			}
			return -errno;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

static void window_size(int in_fd, int out_fd, uint16_t *rows, uint16_t *cols)
{
	struct winsize ws = { 0 };

	if ((ioctl(in_fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col) &&
	    (ioctl(out_fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col))
		ws = (struct winsize){ .ws_row = 24, .ws_col = 80 };
	*rows = ws.ws_row;
	*cols = ws.ws_col;
}

/* x->env, plus TERM of this process for a tty when x->env has none: the
 * list in *env; *own is NULL or the list to free (its last entry too). */
static int exec_env(const struct agent_exec *x, char *const **env, char ***own)
{
	const char *term = getenv("TERM");
	size_t n = 0;
	char **list;

	*own = NULL;
	*env = x->env;
	for (; x->env && x->env[n]; n++)
		if (!strncmp(x->env[n], "TERM=", 5))
			term = NULL;
	if (!x->tty || !term || !*term)
		return 0;
	list = calloc(n + 2, sizeof(*list));
	if (!list)
		return -ENOMEM;
	if (n)
		memcpy(list, x->env, n * sizeof(*list));
	if (asprintf(&list[n], "TERM=%s", term) < 0) {
		free(list);
		return -ENOMEM;
	}
	*env = *own = list;
	return 0;
}

static void free_env(char **own)
{
	size_t n = 0;

	if (!own)
		return;
	while (own[n + 1])
		n++;
	free(own[n]);
	free(own);
}

struct session {
	int fd, in_fd, out_fd, err_fd, sig_fd;
	bool in_open;			/* in_fd still forwarded */
	bool raw;
	struct termios saved;
	sigset_t old_mask;
	int give_up;			/* SIGINT and SIGTERM forwarded */
	struct agent_wbuf w;
	struct agent_rbuf r;
};

/* The frames that came: output to the caller's fds; 1 with *status at
 * EXIT, 0 for more, -errno. */
static int session_frames(struct session *s, int *status)
{
	struct agent_frame f;
	enum agent_stream stream;
	uint32_t code, sig;
	int got, err;

	while ((got = agent_rbuf_next(&s->r, &f)) == 1) {
		switch (f.type) {
		case AGENT_STDOUT:
		case AGENT_STDERR:
			err = write_out(f.type == AGENT_STDOUT ? s->out_fd : s->err_fd, f.payload,
					f.len);
			if (err)
				return err;
			break;
		case AGENT_EOF:
			if (agent_get_eof(&f, &stream) || stream == AGENT_STREAM_STDIN)
				return -EPROTO;
			break;
		case AGENT_EXIT:
			if (agent_get_exit(&f, &code, &sig))
				return -EPROTO;
			*status = sig ? 128 + (int)sig : (int)code;
			return 1;
		default:
			return refusal(&f, s->err_fd);
		}
	}
	return got;
}

static int session_signal(struct session *s)
{
	struct signalfd_siginfo si;
	uint16_t rows, cols;
	ssize_t n;

	n = read(s->sig_fd, &si, sizeof(si));
	if (n != sizeof(si))
		return 0;
	switch (si.ssi_signo) {
	case SIGWINCH:
		window_size(s->in_fd, s->out_fd, &rows, &cols);
		return agent_put_resize(&s->w, rows, cols);
	case SIGINT:
	case SIGTERM:
		if (++s->give_up >= GIVE_UP_SIGNALS)
			return -EINTR;
		/* fall through */
	case SIGHUP:
	case SIGQUIT:
		return agent_put_signal(&s->w, si.ssi_signo);
	default:		/* SIGPIPE: write_out reports EPIPE */
		return 0;
	}
}

static int session_stdin(struct session *s)
{
	uint8_t buf[AGENT_DATA_MAX];
	ssize_t n = read(s->in_fd, buf, sizeof(buf));

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n > 0)
		return agent_put_data(&s->w, AGENT_STDIN, buf, n);
	/* end of input (EIO: a terminal hung up) */
	s->in_open = false;
	return agent_put_eof(&s->w, AGENT_STREAM_STDIN);
}

static int session_pump(struct session *s, int *status)
{
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = s->fd, .events = POLLIN },
			{ .fd = s->sig_fd, .events = POLLIN },
			{ .fd = -1, .events = POLLIN },
		};
		int err;

		if (agent_wbuf_pending(&s->w))
			p[0].events |= POLLOUT;
		if (s->in_open && agent_wbuf_pending(&s->w) < STDIN_HIGH)
			p[2].fd = s->in_fd;
		if (poll(p, 3, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = agent_rbuf_fill(&s->r, s->fd);

			if (n == 0 || n == -ECONNRESET)
				return -ECONNRESET;
			if (n < 0 && n != -EAGAIN)
				return n;
			err = session_frames(s, status);
			if (err)
				return err < 0 ? err : 0;
		}
		if (p[1].revents & POLLIN) {
			err = session_signal(s);
			if (err)
				return err;
		}
		if (p[2].revents) {
			err = session_stdin(s);
			if (err)
				return err;
		}
		if (agent_wbuf_pending(&s->w)) {
			err = agent_wbuf_flush(&s->w, s->fd);
			/* the agent may have answered and gone: read on */
			if (err && err != -EPIPE && err != -ECONNRESET)
				return err;
			if (err)
				s->w.off = s->w.len = 0;
		}
	}
}

int agent_exec(int fd, const struct agent_exec *x, int in_fd, int out_fd, int err_fd,
	       int *status)
{
	struct session s = { .fd = fd, .in_fd = in_fd, .out_fd = out_fd, .err_fd = err_fd,
			     .sig_fd = -1, .in_open = x->stdin, .r = { .exec_max = 0 } };
	struct agent_exec_msg m = {
		.flags = (x->tty ? AGENT_EXEC_TTY : 0) | (x->stdin ? AGENT_EXEC_STDIN : 0),
		.uid = x->uid, .gid = x->gid,
		.user = x->user, .cwd = x->cwd, .argv = x->argv,
	};
	sigset_t mask;
	char **own;
	int err;

	if (x->tty)
		window_size(in_fd, out_fd, &m.rows, &m.cols);
	err = exec_env(x, &m.env, &own);
	if (!err)
		err = agent_put_exec(&s.w, &m);
	free_env(own);
	if (err)
		goto out;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigaddset(&mask, SIGPIPE);
	if (x->tty)
		sigaddset(&mask, SIGWINCH);
	s.sig_fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s.sig_fd < 0) {
		err = -errno;
		goto out;
	}
	sigprocmask(SIG_BLOCK, &mask, &s.old_mask);

	if (x->tty && x->stdin && isatty(in_fd) && !tcgetattr(in_fd, &s.saved)) {
		struct termios raw = s.saved;

		cfmakeraw(&raw);
		if (!tcsetattr(in_fd, TCSADRAIN, &raw))
			s.raw = true;
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		err = -errno;
		goto restore;
	}
	err = session_pump(&s, status);
restore:
	if (s.raw)
		tcsetattr(in_fd, TCSADRAIN, &s.saved);
	/* Take what was caught meanwhile (a SIGPIPE from a write above),
	 * so that unblocking delivers none of it. */
	for (struct signalfd_siginfo si; read(s.sig_fd, &si, sizeof(si)) == sizeof(si);)
		;
	sigprocmask(SIG_SETMASK, &s.old_mask, NULL);
out:
	if (s.sig_fd >= 0)
		close(s.sig_fd);
	agent_wbuf_free(&s.w);
	agent_rbuf_free(&s.r);
	close(fd);
	return err;
}

/* Send an empty request, read the one reply frame into r/f. */
static int request(int fd, uint16_t type, struct agent_rbuf *r, struct agent_frame *f)
{
	int64_t deadline = now_ms() + REPLY_TIMEOUT_MS;
	struct agent_wbuf w = { 0 };
	int err = agent_put_empty(&w, type);

	if (!err)
		err = send_all(&w, fd, deadline);
	agent_wbuf_free(&w);
	if (!err)
		err = read_frame(fd, r, f, deadline);
	return err;
}

int agent_poweroff(int fd)
{
	struct agent_rbuf r = { 0 };
	struct agent_frame f;
	int err = request(fd, AGENT_POWEROFF, &r, &f);

	if (!err && f.type != AGENT_OK)
		err = refusal(&f, -1);
	agent_rbuf_free(&r);
	close(fd);
	return err;
}

int agent_info(int fd, struct agent_info *out)
{
	struct agent_rbuf r = { 0 };
	struct agent_frame f;
	int err = request(fd, AGENT_GET_INFO, &r, &f);

	if (!err)
		err = f.type == AGENT_INFO ? agent_get_info(&f, out) : refusal(&f, -1);
	agent_rbuf_free(&r);
	close(fd);
	return err;
}
