// SPDX-License-Identifier: MIT
/*
 * cove-agent: the exec agent of a cove machine. Started by cove-init before
 * the image's init takes over; listens on vsock port AGENT_PORT and serves
 * one request per connection (cli/machine/agent_proto.h), each in its own
 * process:
 *
 *   EXEC      runs a command as a user of the image (its passwd entry, its
 *             groups, a login environment plus the request's), with a PTY
 *             (new session, controlling terminal, window size; ^C reaches
 *             the foreground process group through the line discipline) or
 *             with pipes; forwards stdin, stdout, stderr, resizes and
 *             signals; answers with the exit status. A client that goes
 *             away hangs the command up (SIGHUP to its process group).
 *   POWEROFF  asks the running init to power off: systemd (SIGRTMIN+4),
 *             busybox init (SIGUSR2), openrc-init (openrc-shutdown -p now),
 *             others (/sbin/poweroff).
 *   GET_INFO  eth0's IPv4, MemTotal/MemAvailable, root filesystem size and
 *             use, load averages.
 *
 * The host is not trusted: its frames go through agent_proto's checks, a
 * connection that stays silent is dropped, and nothing it sends can make
 * the agent itself exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/vm_sockets.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "agent_proto.h"
#include "say.h"
#include "users.h"

#define HELLO_TIMEOUT_MS	30000	/* from accept to the request */
#define SEND_TIMEOUT_MS		60000	/* a client that reads nothing for this long is gone */
#define OUT_HIGH		(4 * AGENT_DATA_MAX)	/* unsent bytes before outputs wait */
#define IN_QUEUE_MAX		(4 * AGENT_DATA_MAX)	/* stdin bytes held for the command */
#define ENV_MAX			(AGENT_ENVC_MAX + 8)
#define INIT_READY_MS		180000	/* a systemd booting under emulation */
#define ROOT_PATH	"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define USER_PATH	"/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"

extern char **environ;

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send all of w (the socket is non-blocking), waiting at most
 * SEND_TIMEOUT_MS without progress. 0 or -errno. */
static int send_all(int fd, struct agent_wbuf *w)
{
	while (agent_wbuf_pending(w)) {
		struct pollfd p = { .fd = fd, .events = POLLOUT };
		size_t before = agent_wbuf_pending(w);
		int err = agent_wbuf_flush(w, fd), n;

		if (err)
			return err;
		if (agent_wbuf_pending(w) < before || !agent_wbuf_pending(w))
			continue;
		n = poll(&p, 1, SEND_TIMEOUT_MS);
		if (n == 0)
			return -ETIMEDOUT;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* Tell the client why not, and end the connection. */
static void __attribute__((noreturn)) refuse(int fd, struct agent_wbuf *w, int err,
					     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void __attribute__((noreturn)) refuse(int fd, struct agent_wbuf *w, int err,
					     const char *fmt, ...)
{
	char msg[AGENT_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!agent_put_error(w, err, msg))
		send_all(fd, w);
	_exit(1);
}

/* The next frame, waiting until deadline. 0, or -errno (-ECONNRESET at the
 * end of the stream). */
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
		if (n == -EAGAIN) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			int64_t left = deadline - now_ms();

			if (left <= 0 || poll(&p, 1, left) == 0)
				return -ETIMEDOUT;
			continue;
		}
		if (n < 0)
			return n;
	}
}

/* ---- info ---- */

static uint64_t meminfo(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static void serve_info(int fd, struct agent_wbuf *w)
{
	struct agent_info in = { 0 };
	struct ifreq ifr = { .ifr_name = "eth0" };
	struct statvfs vfs;
	char buf[4096];
	int s;
	FILE *f;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0 && ioctl(s, SIOCGIFADDR, &ifr) == 0) {
		struct sockaddr_in sin;

		memcpy(&sin, &ifr.ifr_addr, sizeof(sin));
		inet_ntop(AF_INET, &sin.sin_addr, in.ipv4, sizeof(in.ipv4));
	}
	if (s >= 0)
		close(s);
	f = fopen("/proc/meminfo", "re");
	if (f) {
		size_t n = fread(buf, 1, sizeof(buf) - 1, f);

		buf[n] = '\0';
		fclose(f);
		in.mem_total_kib = meminfo(buf, "MemTotal:");
		in.mem_available_kib = meminfo(buf, "MemAvailable:");
		if (in.mem_available_kib > in.mem_total_kib)
			in.mem_available_kib = in.mem_total_kib;
	}
	if (statvfs("/", &vfs) == 0) {
		in.disk_total_kib = (uint64_t)vfs.f_blocks * vfs.f_frsize / 1024;
		in.disk_used_kib = (uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize / 1024;
	}
	f = fopen("/proc/loadavg", "re");
	if (f) {
		if (fscanf(f, "%lf %lf %lf", &in.load[0], &in.load[1], &in.load[2]) != 3)
			in.load[0] = in.load[1] = in.load[2] = 0;
		fclose(f);
	}
	if (agent_put_info(w, &in))
		refuse(fd, w, EIO, "cannot encode the machine's facts");
	send_all(fd, w);
}

/* ---- poweroff ---- */

/* Start argv detached (it may outlive this process). 0 once it runs. */
static int spawn(char *const argv[])
{
	int p[2], err = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		err = -errno;
	} else if (pid == 0) {
		char *const env[] = { "PATH=" ROOT_PATH, NULL };

		close(p[0]);
		setsid();
		environ = (char **)env;
		execvp(argv[0], argv);
		err = errno;
		if (write(p[1], &err, sizeof(err)) < 0) {
			/* the parent sees the pipe close */
		}
		_exit(127);
	} else {
		close(p[1]);
		p[1] = -1;
		if (read(p[0], &err, sizeof(err)) == sizeof(err))
			err = -err;
		else
			err = 0;
	}
	close(p[0]);
	if (p[1] >= 0)
		close(p[1]);
	return err;
}

/* The running init's executable into exe; its file name returned. */
static const char *init_exe(char exe[PATH_MAX])
{
	ssize_t n = readlink("/proc/1/exe", exe, PATH_MAX - 1);

	exe[n > 0 ? n : 0] = '\0';
	return strrchr(exe, '/') ? strrchr(exe, '/') + 1 : exe;
}

static void serve_poweroff(int fd, struct agent_wbuf *w)
{
	char exe[PATH_MAX];
	const char *base = init_exe(exe);
	int err;

	if (strstr(base, "systemd")) {
		err = kill(1, SIGRTMIN + 4) ? -errno : 0;
	} else if (!strcmp(base, "busybox")) {
		err = kill(1, SIGUSR2) ? -errno : 0;
	} else if (!strcmp(base, "openrc-init")) {
		char *const argv[] = { "openrc-shutdown", "-p", "now", NULL };

		err = spawn(argv);
	} else {
		char *const argv[] = { access("/sbin/poweroff", X_OK) ? "poweroff" : "/sbin/poweroff",
				       NULL };

		err = spawn(argv);
	}
	if (err)
		refuse(fd, w, -err, "power off (init %s): %s", exe[0] ? exe : "unknown",
		       strerror(-err));
	if (!agent_put_empty(w, AGENT_OK))
		send_all(fd, w);
}

/* ---- exec ---- */

struct user {
	struct users_pw pw;
	bool known;			/* in /etc/passwd */
	gid_t groups[USERS_GROUPS_MAX];
	int ngroups;
};

static int find_user(const struct agent_exec_msg *m, struct user *u)
{
	int err = users_find("/etc/passwd", m->user, m->uid, &u->pw);

	if (err && m->user)
		return err;
	u->known = !err;
	if (!u->known) {
		u->pw = (struct users_pw){ .uid = m->uid, .gid = m->gid, .home = "/",
					   .shell = "/bin/sh" };
	} else if (!m->user) {
		u->pw.gid = m->gid;	/* uid:gid as asked */
	}
	if (!u->pw.home[0])
		strcpy(u->pw.home, "/");
	if (!u->pw.shell[0] || access(u->pw.shell, X_OK))
		strcpy(u->pw.shell, "/bin/sh");
	u->ngroups = u->known ? users_groups("/etc/group", u->pw.name, u->pw.gid, u->groups,
					     USERS_GROUPS_MAX)
			      : 1;
	u->groups[0] = u->pw.gid;
	return 0;
}

/* Set K=V (kv) in env[0..*n), replacing an entry with the same key. */
static void env_set(char **env, int *n, char *kv)
{
	size_t klen = strcspn(kv, "=");

	for (int i = 0; i < *n; i++)
		if (!strncmp(env[i], kv, klen + 1)) {
			env[i] = kv;
			return;
		}
	if (*n < ENV_MAX - 1)
		env[(*n)++] = kv;
}

/* The login environment of u, then the request's; in the child. */
static char **make_env(const struct agent_exec_msg *m, const struct user *u)
{
	static char *env[ENV_MAX];
	static char home[USERS_PATH_MAX + 8], shell[USERS_PATH_MAX + 8];
	static char user[USERS_NAME_MAX + 8], logname[USERS_NAME_MAX + 8];
	int n = 0;

	snprintf(home, sizeof(home), "HOME=%s", u->pw.home);
	snprintf(shell, sizeof(shell), "SHELL=%s", u->pw.shell);
	env_set(env, &n, home);
	env_set(env, &n, shell);
	if (u->known) {
		snprintf(user, sizeof(user), "USER=%s", u->pw.name);
		snprintf(logname, sizeof(logname), "LOGNAME=%s", u->pw.name);
		env_set(env, &n, user);
		env_set(env, &n, logname);
	}
	env_set(env, &n, u->pw.uid ? "PATH=" USER_PATH : "PATH=" ROOT_PATH);
	if (m->flags & AGENT_EXEC_TTY)
		env_set(env, &n, "TERM=xterm");
	for (int i = 0; m->env[i]; i++)
		env_set(env, &n, m->env[i]);
	env[n] = NULL;
	return env;
}

static void __attribute__((noreturn)) child_fail(const char *what, int err, int code)
{
	dprintf(STDERR_FILENO, "cove-agent: %s: %s\n", what, strerror(err));
	_exit(code);
}

/* In the child: become the command. stdio are set up. */
static void __attribute__((noreturn)) become(const struct agent_exec_msg *m, const struct user *u)
{
	char login[USERS_PATH_MAX + 1];
	char *shell_argv[] = { login, NULL };
	char *const *argv = m->argv;
	const char *file;

	/* (an agent that is not root can only run commands as itself) */
	if (geteuid() == 0 || u->pw.uid != geteuid() || u->pw.gid != getegid()) {
		if (setgroups(u->ngroups, u->groups) < 0)
			child_fail("setgroups", errno, 126);
		if (setgid(u->pw.gid) < 0)
			child_fail("setgid", errno, 126);
		if (setuid(u->pw.uid) < 0)
			child_fail("setuid", errno, 126);
	}
	if (m->cwd) {
		if (chdir(m->cwd) < 0)
			child_fail(m->cwd, errno, 126);
	} else if (chdir(u->pw.home) < 0 && chdir("/") < 0) {
		child_fail("chdir /", errno, 126);
	}
	environ = make_env(m, u);
	if (argv) {
		file = argv[0];
	} else {
		/* a login shell: argv[0] is "-" and its name */
		const char *base = strrchr(u->pw.shell, '/');

		snprintf(login, sizeof(login), "-%s", base ? base + 1 : u->pw.shell);
		file = u->pw.shell;
		argv = shell_argv;
	}
	execvp(file, argv);
	child_fail(file, errno, errno == ENOENT ? 127 : 126);
}

static void child_signals(void)
{
	sigset_t none;

	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

struct session {
	int sock;
	const struct agent_exec_msg *m;
	bool tty;
	pid_t pid;
	int pidfd;
	int master;			/* tty */
	int in_fd;			/* to the command's stdin, or -1 */
	int out_fd[2];			/* stdout, stderr (tty: master, -1) */
	bool exited;
	int status;
	bool in_eof;			/* the client sent EOF on stdin */
	uint8_t *in_q;			/* stdin bytes not yet taken */
	size_t in_len;
	struct agent_wbuf w;
	struct agent_rbuf r;
};

static int pidfd_open_(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

/* Start the command: fork with a PTY or pipes. */
static int start(struct session *s, const struct user *u)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 }, slave = -1, e;
	char pts[64];

	if (s->tty) {
		struct winsize ws = { .ws_row = s->m->rows, .ws_col = s->m->cols };

		s->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (s->master < 0 || grantpt(s->master) || unlockpt(s->master) ||
		    ptsname_r(s->master, pts, sizeof(pts)) ||
		    ioctl(s->master, TIOCSWINSZ, &ws) < 0)
			return -errno;
		slave = open(pts, O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (slave < 0)
			return -errno;
	} else if ((s->m->flags & AGENT_EXEC_STDIN ? pipe2(in, O_CLOEXEC) : 0) < 0 ||
		   pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0) {
		return -errno;
	}
	s->pid = fork();
	if (s->pid < 0)
		return -errno;
	if (s->pid == 0) {
		child_signals();
		setsid();
		if (s->tty) {
			if (ioctl(slave, TIOCSCTTY, 0) < 0)
				child_fail("controlling terminal", errno, 126);
			dup2(slave, 0);
			dup2(slave, 1);
			dup2(slave, 2);
		} else {
			int null = in[0] < 0 ? open("/dev/null", O_RDONLY) : in[0];

			dup2(null, 0);
			dup2(out[1], 1);
			dup2(err[1], 2);
		}
		close_range(3, ~0u, 0);
		become(s->m, u);
	}
	if (s->tty) {
		close(slave);
		s->out_fd[0] = s->master;
		s->out_fd[1] = -1;
		s->in_fd = s->m->flags & AGENT_EXEC_STDIN ? s->master : -1;
	} else {
		if (in[0] >= 0)
			close(in[0]);
		close(out[1]);
		close(err[1]);
		s->in_fd = in[1];
		s->out_fd[0] = out[0];
		s->out_fd[1] = err[0];
	}
	for (int i = 0; i < 2; i++)
		if (s->out_fd[i] >= 0)
			fcntl(s->out_fd[i], F_SETFL, O_NONBLOCK);
	if (s->in_fd >= 0 && !s->tty)
		fcntl(s->in_fd, F_SETFL, O_NONBLOCK);
	s->pidfd = pidfd_open_(s->pid);
	e = s->pidfd < 0 ? -errno : 0;
	return e;
}

/* The command's process group for a signal: the terminal's foreground
 * group with a PTY, else the command's own. */
static void deliver(struct session *s, int sig)
{
	pid_t pg = s->tty ? tcgetpgrp(s->master) : -1;

	if (s->exited)
		return;
	if (pg <= 0)
		pg = s->pid;
	if (kill(-pg, sig) < 0)
		kill(s->pid, sig);
}

static void stdin_close(struct session *s)
{
	if (s->in_fd < 0)
		return;
	if (s->tty) {
		/* the end of input at a terminal is its EOF character */
		struct termios t;
		char eof = 4;

		if (!tcgetattr(s->master, &t) && t.c_cc[VEOF])
			eof = t.c_cc[VEOF];
		if (write(s->master, &eof, 1) < 0) {
			/* hung up already */
		}
	} else {
		close(s->in_fd);
	}
	s->in_fd = -1;
}

static void stdin_write(struct session *s)
{
	ssize_t n;

	if (s->in_fd < 0) {
		s->in_len = 0;
		return;
	}
	n = write(s->in_fd, s->in_q, s->in_len);
	if (n < 0) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		/* the command closed its stdin: drop what it did not take */
		s->in_len = 0;
		if (!s->tty) {
			close(s->in_fd);
			s->in_fd = -1;
		}
		return;
	}
	memmove(s->in_q, s->in_q + n, s->in_len - n);
	s->in_len -= n;
	if (!s->in_len && s->in_eof)
		stdin_close(s);
}

/* Frames from the client. 0, or -errno to end the session. */
static int client_frames(struct session *s)
{
	struct agent_frame f;
	enum agent_stream st;
	uint16_t rows, cols;
	uint32_t sig;
	int got = 0;

	while (s->in_len + AGENT_DATA_MAX <= IN_QUEUE_MAX && (got = agent_rbuf_next(&s->r, &f)) == 1) {
		switch (f.type) {
		case AGENT_STDIN:
			if (!(s->m->flags & AGENT_EXEC_STDIN) || s->in_eof)
				return -EPROTO;
			memcpy(s->in_q + s->in_len, f.payload, f.len);
			s->in_len += f.len;
			break;
		case AGENT_EOF:
			if (agent_get_eof(&f, &st) || st != AGENT_STREAM_STDIN || s->in_eof)
				return -EPROTO;
			s->in_eof = true;
			if (!s->in_len)
				stdin_close(s);
			break;
		case AGENT_RESIZE: {
			struct winsize ws;

			if (agent_get_resize(&f, &rows, &cols) || !s->tty)
				return -EPROTO;
			ws = (struct winsize){ .ws_row = rows, .ws_col = cols };
			ioctl(s->master, TIOCSWINSZ, &ws);
			break;
		}
		case AGENT_SIGNAL:
			if (agent_get_signal(&f, &sig))
				return -EPROTO;
			deliver(s, sig);
			break;
		default:
			return -EPROTO;
		}
	}
	return got < 0 ? got : 0;
}

/* Output stream i ended: EOF to the client. The PTY master stays open
 * (it is also the command's stdin) until the session ends. */
static void output_done(struct session *s, int i)
{
	if (!s->tty)
		close(s->out_fd[i]);
	s->out_fd[i] = -1;
	agent_put_eof(&s->w, i ? AGENT_STREAM_STDERR : AGENT_STREAM_STDOUT);
}

/* Read what output stream i has into a frame. */
static void output(struct session *s, int i)
{
	uint8_t buf[AGENT_DATA_MAX];
	ssize_t n = read(s->out_fd[i], buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && !agent_put_data(&s->w, i ? AGENT_STDERR : AGENT_STDOUT, buf, n))
		return;
	/* 0, or EIO from a PTY whose other side is closed */
	output_done(s, i);
}

static void reap(struct session *s)
{
	int st;

	if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
		s->exited = true;
		s->status = st;
	}
}

/* After the command exited: take what its outputs still hold. Output a
 * grandchild keeps writing to the same pipe or terminal is not waited for. */
static int drain(struct session *s)
{
	for (int i = 0; i < 2; i++) {
		while (s->out_fd[i] >= 0) {
			struct pollfd p = { .fd = s->out_fd[i], .events = POLLIN };
			int err;

			/* poll makes a PTY's pending input readable first */
			if (poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) {
				output_done(s, i);
				break;
			}
			output(s, i);
			if (agent_wbuf_pending(&s->w) >= OUT_HIGH && (err = send_all(s->sock, &s->w)))
				return err;
		}
	}
	return 0;
}

/* The client is gone: hang the command up and wait for it. */
static void __attribute__((noreturn)) abandon(struct session *s)
{
	if (!s->exited) {
		deliver(s, SIGHUP);
		if (s->tty)
			close(s->master);
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	_exit(0);
}

static void pump(struct session *s)
{
	int err;

	for (;;) {
		struct pollfd p[5];
		int n = 0, isock, iin = -1, iout[2] = { -1, -1 }, ipid = -1;

		if (s->exited)
			break;
		/* frames already received (with the request, or held back
		 * while stdin was full) before waiting for more */
		err = client_frames(s);
		if (err) {
			if (!agent_put_error(&s->w, -err, "bad frame from the host"))
				send_all(s->sock, &s->w);
			abandon(s);
		}
		isock = n;
		p[n++] = (struct pollfd){ .fd = s->sock,
					  .events = (s->in_len + AGENT_DATA_MAX <= IN_QUEUE_MAX
						     ? POLLIN : 0) |
						    (agent_wbuf_pending(&s->w) ? POLLOUT : 0) };
		if (s->in_len && s->in_fd >= 0) {
			iin = n;
			p[n++] = (struct pollfd){ .fd = s->in_fd, .events = POLLOUT };
		}
		for (int i = 0; i < 2; i++)
			if (s->out_fd[i] >= 0 && agent_wbuf_pending(&s->w) < OUT_HIGH) {
				iout[i] = n;
				p[n++] = (struct pollfd){ .fd = s->out_fd[i], .events = POLLIN };
			}
		if (s->pidfd >= 0) {
			ipid = n;
			p[n++] = (struct pollfd){ .fd = s->pidfd, .events = POLLIN };
		}
		if (poll(p, n, s->pidfd >= 0 ? -1 : 100) < 0) {
			if (errno == EINTR)
				continue;
			abandon(s);
		}
		if (p[isock].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t got = agent_rbuf_fill(&s->r, s->sock);

			if (got == 0 || (got < 0 && got != -EAGAIN))
				abandon(s);
		}
		if (iin >= 0 && p[iin].revents)
			stdin_write(s);
		for (int i = 0; i < 2; i++)
			if (iout[i] >= 0 && p[iout[i]].revents)
				output(s, i);
		if (ipid < 0 || p[ipid].revents)
			reap(s);
		if (agent_wbuf_pending(&s->w)) {
			err = agent_wbuf_flush(&s->w, s->sock);
			if (err)
				abandon(s);
		}
	}
	if (drain(s))
		_exit(0);
	if (WIFSIGNALED(s->status))
		err = agent_put_exit(&s->w, 0, WTERMSIG(s->status));
	else
		err = agent_put_exit(&s->w, WEXITSTATUS(s->status), 0);
	if (!err)
		send_all(s->sock, &s->w);
	_exit(0);
}

/* The agent starts before the image's init; a command run right after
 * boot must still find what that init provides. For systemd: its private
 * socket (root's systemctl) and, when D-Bus is installed, the system bus
 * (everyone else's systemctl, sudo's session). Bounded: a broken boot
 * still gets its commands. */
static void wait_init_ready(void)
{
	static const char *const buses[] = { "/usr/bin/dbus-daemon", "/usr/bin/dbus-broker",
					      "/bin/dbus-daemon" };
	struct timespec ts = { 0, 50 * 1000 * 1000 };
	int64_t deadline = now_ms() + INIT_READY_MS;
	bool dbus = false;
	char exe[PATH_MAX];

	/* the shim (an unlinked /init) is about to exec the image's init */
	while (strstr(init_exe(exe), "(deleted)") && now_ms() < deadline)
		nanosleep(&ts, NULL);
	if (!strstr(init_exe(exe), "systemd"))
		return;
	for (size_t i = 0; i < sizeof(buses) / sizeof(buses[0]); i++)
		dbus = dbus || access(buses[i], X_OK) == 0;
	while ((access("/run/systemd/private", F_OK) ||
		(dbus && access("/run/dbus/system_bus_socket", F_OK))) && now_ms() < deadline)
		nanosleep(&ts, NULL);
}

static void serve_exec(int fd, struct agent_wbuf *w, struct agent_rbuf *r,
		       const struct agent_exec_msg *m)
{
	static uint8_t in_q[IN_QUEUE_MAX];
	struct session s = {
		.sock = fd, .m = m, .tty = m->flags & AGENT_EXEC_TTY,
		.master = -1, .in_fd = -1, .out_fd = { -1, -1 }, .pidfd = -1,
		.in_q = in_q, .w = *w, .r = *r,
	};
	struct user u;
	int err;

	wait_init_ready();
	err = find_user(m, &u);
	if (err)
		refuse(fd, w, -err, "user %s: %s", m->user,
		       err == -ENOENT ? "no such user in /etc/passwd" : strerror(-err));
	err = start(&s, &u);
	if (err)
		refuse(fd, w, -err, "start the command: %s", strerror(-err));
	pump(&s);
}

/* ---- connections ---- */

static void __attribute__((noreturn)) session(int fd)
{
	int64_t deadline = now_ms() + HELLO_TIMEOUT_MS;
	struct agent_rbuf r = { .exec_max = AGENT_EXEC_MAX };
	struct agent_wbuf w = { 0 };
	struct agent_exec_msg *m;
	struct agent_frame f;
	uint16_t min, max;
	int v, err;

	signal(SIGCHLD, SIG_DFL);
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		_exit(1);
	err = read_frame(fd, &r, &f, deadline);
	if (err)
		_exit(1);
	if (agent_get_hello(&f, &min, &max))
		refuse(fd, &w, EPROTO, "expected a hello");
	v = agent_version_pick(min, max);
	if (v < 0)
		refuse(fd, &w, EPROTONOSUPPORT, "the agent speaks version %d, not %u..%u",
		       AGENT_VERSION, min, max);
	if (agent_put_hello(&w, v, v) || send_all(fd, &w))
		_exit(1);
	err = read_frame(fd, &r, &f, deadline);
	if (err == -EPROTO)
		refuse(fd, &w, EPROTO, "malformed request");
	if (err)
		_exit(1);
	switch (f.type) {
	case AGENT_EXEC:
		err = agent_get_exec(&f, &m);
		if (err)
			refuse(fd, &w, -err, "malformed exec request");
		serve_exec(fd, &w, &r, m);
		break;
	case AGENT_POWEROFF:
		serve_poweroff(fd, &w);
		break;
	case AGENT_GET_INFO:
		serve_info(fd, &w);
		break;
	default:
		refuse(fd, &w, EPROTO, "unexpected request type %u", f.type);
	}
	_exit(0);
}

static int listen_vsock(void)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
				  .svm_port = AGENT_PORT };
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	/* the vsock transport may still be probing */
	for (int tries = 0;; tries++) {
		int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

		if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
		    listen(fd, 64) == 0)
			return fd;
		if (tries == 300) {
			say("cove-agent: vsock port %u: %s", AGENT_PORT, strerror(errno));
			return -1;
		}
		if (fd >= 0)
			close(fd);
		nanosleep(&ts, NULL);
	}
}

int main(void)
{
	struct sigaction reap = { .sa_handler = SIG_IGN, .sa_flags = SA_NOCLDWAIT };
	int l;

	prctl(PR_SET_NAME, "cove-agent");
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	/* sessions are reaped by the kernel */
	sigemptyset(&reap.sa_mask);
	sigaction(SIGCHLD, &reap, NULL);
	l = listen_vsock();
	if (l < 0)
		return 1;
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (c < 0) {
			if (errno != EINTR && errno != ECONNABORTED)
				nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
			continue;
		}
		pid = fork();
		if (pid == 0) {
			close(l);
			session(c);
		}
		if (pid < 0)
			say("cove-agent: fork: %s", strerror(errno));
		close(c);
	}
}
