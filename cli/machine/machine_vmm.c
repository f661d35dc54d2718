#include "machine_vmm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_client.h"
#include "bridge.h"
#include "disk.h"
#include "fsutil.h"
#include "log.h"

#define VSOCK_CID	3
#define START_TIMEOUT_S	60	/* until the monitor's API answers */
#define API_TIMEOUT_S	30
#define API_REPLY_MAX	65536
#define KILL_WAIT_S	30	/* a monitor giving back GiBs under emulation is slow */
#define AGENT_STOP_CONNECT_MS	2000	/* a running machine's agent answers at once */

/* The directory the running cove binary is in. */
static int self_dir(char *buf, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", buf, size - 1);
	char *slash;

	if (n < 0 || (size_t)n >= size - 1)
		return cove_fail(-ENOENT, "cannot find the cove binary (/proc/self/exe)");
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	return 0;
}

/* A file beside cove (dir/rel) into buf. */
static int beside_cove(const char *rel, char *buf, size_t size)
{
	char dir[PATH_MAX];
	int err = self_dir(dir, sizeof(dir));

	if (err)
		return err;
	if ((size_t)snprintf(buf, size, "%s/%s", dir, rel) >= size)
		return cove_fail(-ENAMETOOLONG, "%s/%s: path too long", dir, rel);
	return 0;
}

static int readable_file(const char *path, const char *what, const char *hint)
{
	struct stat st;

	if (stat(path, &st) < 0 || access(path, R_OK) < 0)
		return cove_fail(-errno, "%s %s: %s%s", what, path, strerror(errno), hint);
	if (!S_ISREG(st.st_mode))
		return cove_fail(-EINVAL, "%s %s: not a regular file", what, path);
	return 0;
}

int machine_vmm_kernel(const struct machine *m, const struct config *cfg, char *buf,
		       size_t size)
{
	const char *env = getenv("COVE_KERNEL"), *from;
	int err;

	if (m->kernel[0]) {
		snprintf(buf, size, "%s", m->kernel);
		from = " (the machine's kernel: change it with 'cove machine set kernel=PATH')";
	} else if (cfg->kernel[0]) {
		snprintf(buf, size, "%s", cfg->kernel);
		from = " (kernel in config.toml)";
	} else if (env && env[0]) {
		snprintf(buf, size, "%s", env);
		from = " ($COVE_KERNEL)";
	} else {
		err = beside_cove("guest/bzImage", buf, size);
		if (err)
			return err;
		from = " (the default kernel: 'make' links it, or give --kernel, kernel in "
		       "config.toml or $COVE_KERNEL)";
	}
	return readable_file(buf, "kernel", from);
}

/* Append " key=VALUE" with VALUE percent-encoded: every byte outside
 * A-Za-z0-9._/:,- as %XX. */
static int put_param(char *buf, size_t size, size_t *len, const char *key, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = *len;
	int w = snprintf(buf + n, size - n, " %s=", key);

	if (w < 0 || (size_t)w >= size - n)
		return -E2BIG;
	n += w;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			     (*p >= '0' && *p <= '9') || strchr("._/:,-", *p);

		if (n + (plain ? 1 : 3) >= size)
			return -E2BIG;
		if (plain) {
			buf[n++] = *p;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[*p >> 4];
			buf[n++] = hex[*p & 15];
		}
	}
	buf[n] = '\0';
	*len = n;
	return 0;
}

int machine_vmm_cmdline(const struct machine *m, const struct machine_net *net, char *buf,
			size_t size)
{
	struct machine_user u;
	char num[32], mount[MACHINE_GUEST_PATH_MAX + 32], addr[64];
	size_t len;
	int err = machine_user(&u);

	if (err)
		return err;
	if (size > MACHINE_CMDLINE_MAX)
		size = MACHINE_CMDLINE_MAX;
	len = snprintf(buf, size, "console=ttyS0 reboot=k panic=-1 quiet");
	err = put_param(buf, size, &len, "cove.hostname", m->name);
	err = err ?: put_param(buf, size, &len, "cove.user", u.name);
	snprintf(num, sizeof(num), "%u", (unsigned)u.uid);
	err = err ?: put_param(buf, size, &len, "cove.uid", num);
	snprintf(num, sizeof(num), "%u", (unsigned)u.gid);
	err = err ?: put_param(buf, size, &len, "cove.gid", num);
	err = err ?: put_param(buf, size, &len, "cove.home", u.home);
	err = err ?: put_param(buf, size, &len, "cove.homemount", config_home_name(m->home));
	for (unsigned i = 0; !err && i < m->n_mounts; i++) {
		snprintf(mount, sizeof(mount), "m%u:%s%s", i, m->mounts[i].guest,
			 m->mounts[i].ro ? ":ro" : "");
		err = put_param(buf, size, &len, "cove.mount", mount);
	}
	snprintf(addr, sizeof(addr), "%s/24,%s,%s", net->addr, net->gw, net->dns);
	err = err ?: put_param(buf, size, &len, "cove.net", addr);
	err = err ?: put_param(buf, size, &len, "cove.machineid", m->machine_id);
	if (err)
		return cove_fail(-E2BIG, "machine %s: the kernel command line would be longer than "
				 "%d bytes (fewer or shorter --mount paths)", m->name,
				 MACHINE_CMDLINE_MAX - 1);
	return 0;
}

/* The argument vector: a NULL-terminated array of malloc'd strings. */
struct argv {
	char *v[64];
	int n;
};

static int __attribute__((format(printf, 2, 3))) arg(struct argv *a, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (a->n + 1 >= (int)(sizeof(a->v) / sizeof(a->v[0])))
		return cove_fail(-E2BIG, "too many cove-vmm arguments");
	va_start(ap, fmt);
	r = vasprintf(&a->v[a->n], fmt, ap);
	va_end(ap);
	if (r < 0)
		return cove_fail(-ENOMEM, "out of memory");
	a->v[++a->n] = NULL;
	return 0;
}

static void argv_free(struct argv *a)
{
	for (int i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

/* A directory shared with the machine: it must be there, and its path
 * must fit --fs TAG=DIR[,ro] (no comma). */
static int share_check(const struct machine *m, const char *dir, const char *what)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return cove_fail(-errno, "machine %s: %s %s: %s", m->name, what, dir,
				 strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cove_fail(-ENOTDIR, "machine %s: %s %s: not a directory", m->name, what, dir);
	if (strchr(dir, ','))
		return cove_fail(-EINVAL, "machine %s: %s %s: a path with \",\" cannot be shared",
				 m->name, what, dir);
	return 0;
}

static int build_argv(const struct machine *m, const struct config *cfg,
		      const struct machine_net *net, struct argv *a)
{
	char vmm[PATH_MAX], kernel[PATH_MAX], initrd[PATH_MAX], cmdline[MACHINE_CMDLINE_MAX];
	struct machine_user u;
	int err;

	err = machine_user(&u);
	err = err ?: beside_cove("cove-vmm", vmm, sizeof(vmm));
	if (!err && access(vmm, X_OK) < 0)
		err = cove_fail(-errno, "monitor %s: %s (cove-vmm is installed beside cove)", vmm,
				strerror(errno));
	err = err ?: machine_vmm_kernel(m, cfg, kernel, sizeof(kernel));
	err = err ?: beside_cove("guest/machine-initrd.cpio", initrd, sizeof(initrd));
	err = err ?: readable_file(initrd, "machine initrd", " (make builds it)");
	err = err ?: machine_vmm_cmdline(m, net, cmdline, sizeof(cmdline));
	if (err)
		return err;
	a->n = 0;
	err = arg(a, "%s", vmm);
	err = err ?: arg(a, "--kernel");
	err = err ?: arg(a, "%s", kernel);
	err = err ?: arg(a, "--initrd");
	err = err ?: arg(a, "%s", initrd);
	err = err ?: arg(a, "--cmdline");
	err = err ?: arg(a, "%s", cmdline);
	err = err ?: arg(a, "--cpus");
	err = err ?: arg(a, "%u", m->cpus);
	err = err ?: arg(a, "--memory");
	err = err ?: arg(a, "%" PRIu64 "M", m->memory >> 20);
	err = err ?: arg(a, "--disk");
	err = err ?: arg(a, "%s/root.img", m->dir);
	err = err ?: arg(a, "--balloon");
	err = err ?: arg(a, "--vsock");
	err = err ?: arg(a, "cid=%d,uds=%s/vsock.sock", VSOCK_CID, m->run);
	err = err ?: arg(a, "--api");
	err = err ?: arg(a, "%s/api.sock", m->run);
	err = err ?: arg(a, "--console");
	err = err ?: arg(a, "file:%s/console.log", m->dir);
	err = err ?: arg(a, "--name");
	err = err ?: arg(a, "%s", m->name);
	if (!err && net->bridge) {
		err = arg(a, "--net");
		err = err ?: arg(a, "tap=%s,mac=%s", net->tap, net->mac);
	} else if (!err) {
		/* user-mode networking, each -p a forward from the host's loopback */
		char user[32 + MACHINE_PORTS_MAX * 24] = "user";

		for (unsigned i = 0; i < m->n_ports; i++)
			snprintf(user + strlen(user), sizeof(user) - strlen(user), ",fwd=tcp:%u:%u",
				 m->ports[i].host, m->ports[i].guest);
		err = arg(a, "--net");
		err = err ?: arg(a, "%s", user);
	}
	/* the shares: the home (tag "home") and the --mounts (tags mN) */
	if (!err && m->home != CONFIG_HOME_NONE) {
		err = share_check(m, u.home, "the home directory");
		err = err ?: arg(a, "--fs");
		err = err ?: arg(a, "home=%s%s", u.home, m->home == CONFIG_HOME_RO ? ",ro" : "");
	}
	for (unsigned i = 0; !err && i < m->n_mounts; i++) {
		err = share_check(m, m->mounts[i].host, "--mount");
		err = err ?: arg(a, "--fs");
		err = err ?: arg(a, "m%u=%s%s", i, m->mounts[i].host, m->mounts[i].ro ? ",ro" : "");
	}
	if (err)
		argv_free(a);
	return err;
}

/* The last non-empty line of vmm.log, for an error message. */
static void vmm_log_tail(const struct machine *m, char *buf, size_t size)
{
	char path[PATH_MAX], *text, *end, *line;
	size_t len;

	snprintf(buf, size, "(no message: see 'cove machine logs --boot %s')", m->name);
	machine_path(m, "vmm.log", path, sizeof(path));
	if (fsutil_read(path, 1 << 20, &text, &len)) {
		cove_clear_error();
		return;
	}
	end = text + len;
	while (end > text && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	*end = '\0';
	line = strrchr(text, '\n');
	line = line ? line + 1 : text;
	if (*line)
		snprintf(buf, size, "%s", line);
	free(text);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000ll + ts.tv_nsec / 1000000;
}

/* In the grandchild: become the monitor. Only async-signal-safe calls
 * plus what a fresh single-threaded child may do. */
static void __attribute__((noreturn)) exec_vmm(const struct machine *m, char *const *argv,
					       int log_fd, int err_fd)
{
	char path[PATH_MAX], pid[32];
	sigset_t all;
	int e, null = open("/dev/null", O_RDWR);

	/* vmm.pid names this process before it runs anything */
	machine_run_path(m, "vmm.pid", path, sizeof(path));
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (null < 0 || fsutil_write_atomic(path, pid, strlen(pid), 0600) < 0 ||
	    dup2(null, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0)
		goto fail;
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* nothing of ours leaks into the monitor but err_fd, closed by exec */
	close_range(3, ~0u, CLOSE_RANGE_CLOEXEC);
	execv(argv[0], argv);
fail:
	e = errno;
	if (write(err_fd, &e, sizeof(e)) < 0)
		_exit(127);
	_exit(127);
}

/* fork, setsid, fork: the monitor is nobody's child here and has no
 * terminal, so the CLI may end (or be killed) without touching it. */
static int spawn(const struct machine *m, char *const *argv)
{
	char path[PATH_MAX];
	int pipefd[2], log_fd, status, e = 0;
	pid_t child;
	ssize_t n;

	machine_path(m, "console.log", path, sizeof(path));
	log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd >= 0)
		close(log_fd);
	machine_path(m, "vmm.log", path, sizeof(path));
	log_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (log_fd < 0)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		close(log_fd);
		return cove_fail(-errno, "pipe: %s", strerror(errno));
	}
	fflush(NULL);
	child = fork();
	if (child == 0) {
		close(pipefd[0]);
		if (setsid() < 0 || fork() != 0)
			_exit(0);	/* the grandchild (or nothing) goes on */
		exec_vmm(m, argv, log_fd, pipefd[1]);
	}
	e = child < 0 ? errno : 0;
	close(log_fd);
	close(pipefd[1]);
	if (child > 0)
		waitpid(child, &status, 0);
	/* EOF: exec happened; an errno: it did not */
	if (child > 0) {
		n = read(pipefd[0], &e, sizeof(e));
		if (n != sizeof(e))
			e = 0;
		else if (!e)
			e = EIO;
	}
	close(pipefd[0]);
	if (e)
		return cove_fail(-e, "cannot start %s: %s", argv[0], strerror(e));
	return 0;
}

/* The network m boots with now: the bridge (set up here) or user-mode
 * networking, as its setting and the privilege say. */
static int choose_net(struct machine *m, struct machine_net *net)
{
	char what[MACHINE_NAME_MAX + 32];
	bool bridge;
	int err;

	snprintf(what, sizeof(what), "machine %s: network", m->name);
	err = bridge_choose(m->network, what, &bridge);
	if (err || bridge)
		return err ?: bridge_up(m, net);
	memset(net, 0, sizeof(*net));
	snprintf(net->addr, sizeof(net->addr), "%s", MACHINE_NET_ADDR);
	snprintf(net->gw, sizeof(net->gw), "%s", MACHINE_NET_GATEWAY);
	snprintf(net->dns, sizeof(net->dns), "%s", MACHINE_NET_DNS);
	return 0;
}

int machine_vmm_start(struct machine *m, const struct config *cfg, pid_t *pid)
{
	char root[PATH_MAX], msg[512], path[PATH_MAX], text[64];
	struct machine_net net;
	struct argv a = { .n = 0 };
	struct stat st;
	int64_t deadline;
	int err;

	err = choose_net(m, &net);
	if (err)
		return err;
	err = build_argv(m, cfg, &net, &a);
	machine_path(m, "root.img", root, sizeof(root));
	if (!err && stat(root, &st) < 0)
		err = cove_fail(-errno, "machine %s: its disk %s: %s", m->name, root,
				strerror(errno));
	else if (!err && (uint64_t)st.st_size < m->disk_size)
		err = disk_grow(root, m->disk_size);
	/* what ls and inspect show while it runs */
	machine_run_path(m, "net", path, sizeof(path));
	snprintf(text, sizeof(text), "%s %s\n", net.bridge ? "bridge" : "user", net.addr);
	err = err ?: fsutil_write_atomic(path, text, strlen(text), 0600);
	err = err ?: spawn(m, a.v);
	argv_free(&a);
	if (err) {
		bridge_down(m);
		return err;
	}
	deadline = now_ms() + START_TIMEOUT_S * 1000;
	for (;;) {
		*pid = machine_vmm_pid(m, false);
		if (!*pid) {
			vmm_log_tail(m, msg, sizeof(msg));
			machine_vmm_pid(m, true);
			cove_fail(-EIO, "machine %s did not start: %s", m->name, msg);
			bridge_down(m);
			return -EIO;
		}
		if (!machine_vmm_api(m, "{\"op\":\"status\"}", NULL)) {
			if (net.bridge && m->n_ports)
				fprintf(stderr, "cove: machine %s is on the bridge: the host reaches "
					"its ports at %s (%s.machine); its -p forwards are not used\n",
					m->name, net.addr, m->name);
			return 0;
		}
		if (now_ms() > deadline)
			return cove_fail(-ETIMEDOUT, "machine %s: its monitor (pid %d) did not answer "
					 "within %d s", m->name, (int)*pid, START_TIMEOUT_S);
		sleep_ms(50);
	}
}

int machine_vmm_net(const struct machine *m, char addr[16], bool *bridge)
{
	char path[PATH_MAX], *text, kind[8];
	size_t len;
	int ok;

	machine_run_path(m, "net", path, sizeof(path));
	if (fsutil_read(path, 64, &text, &len)) {
		cove_clear_error();
		return -ENOENT;
	}
	ok = sscanf(text, "%7s %15s", kind, addr) == 2;
	free(text);
	if (!ok)
		return -ENOENT;
	*bridge = !strcmp(kind, "bridge");
	return 0;
}

int machine_vmm_api(const struct machine *m, const char *request, json_t **reply)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { API_TIMEOUT_S, 0 };
	char *buf = NULL;
	size_t len = 0, cap = 0;
	json_error_t je;
	json_t *j;
	int fd, err = 0;

	if (reply)
		*reply = NULL;
	machine_run_path(m, "api.sock", sa.sun_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cove_fail(-errno, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = cove_fail(-errno, "machine %s: control socket %s: %s", m->name, sa.sun_path,
				strerror(errno));
		goto out;
	}
	if (send(fd, request, strlen(request), MSG_NOSIGNAL) < 0 ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		err = cove_fail(-errno, "machine %s: control API: %s", m->name, strerror(errno));
		goto out;
	}
	for (;;) {
		ssize_t n;

		if (len == cap) {
			char *grown = cap >= API_REPLY_MAX ? NULL : realloc(buf, cap = cap ? 2 * cap : 1024);

			if (!grown) {
				err = cove_fail(-EIO, "machine %s: control API reply too long", m->name);
				goto out;
			}
			buf = grown;
		}
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = cove_fail(n < 0 ? -errno : -EPIPE, "machine %s: control API: %s",
					m->name, n < 0 ? strerror(errno) : "no reply");
			goto out;
		}
		len += n;
		if (memchr(buf + len - n, '\n', n))
			break;
	}
	j = json_loadb(buf, strcspn(buf, "\n") < len ? strcspn(buf, "\n") : len, 0, &je);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		err = cove_fail(-EIO, "machine %s: control API: bad reply", m->name);
		goto out;
	}
	if (!json_is_true(json_object_get(j, "ok"))) {
		const char *e = json_string_value(json_object_get(j, "error"));

		err = cove_fail(-EIO, "machine %s: %s", m->name, e ? e : "control API error");
		json_decref(j);
		goto out;
	}
	if (reply)
		*reply = j;
	else
		json_decref(j);
out:
	free(buf);
	close(fd);
	return err;
}

/* Wait up to ms for the monitor to be gone. */
static bool wait_gone(const struct machine *m, int64_t ms)
{
	int64_t deadline = now_ms() + ms;

	while (machine_vmm_pid(m, false)) {
		if (now_ms() > deadline)
			return false;
		sleep_ms(50);
	}
	return true;
}

int machine_vmm_stop(const struct machine *m, pid_t pid, int timeout_s, bool force,
		     bool *forced)
{
	char req[64], last[512];
	bool gone = false, killed = false;

	if (!force) {
		char vsock[PATH_MAX];
		int fd;

		/* the guest's own init powers off, asked by the agent; or, when
		 * no agent answers, by the power button, and then the monitor
		 * itself stops the VM at the deadline */
		machine_run_path(m, "vsock.sock", vsock, sizeof(vsock));
		fd = agent_connect(vsock, AGENT_STOP_CONNECT_MS);
		if (fd >= 0 && !agent_poweroff(fd)) {
			gone = wait_gone(m, (int64_t)timeout_s * 1000);
		} else {
			snprintf(req, sizeof(req), "{\"op\":\"shutdown\",\"timeout_ms\":%lld}",
				 (long long)timeout_s * 1000);
			if (!machine_vmm_api(m, req, NULL))
				gone = wait_gone(m, (int64_t)timeout_s * 1000 + KILL_WAIT_S * 1000);
		}
	}
	if (!gone && !machine_vmm_api(m, "{\"op\":\"stop\"}", NULL))
		gone = wait_gone(m, KILL_WAIT_S * 1000);
	if (!gone && machine_vmm_pid(m, false) == pid) {
		kill(pid, SIGKILL);
		killed = true;
		gone = wait_gone(m, KILL_WAIT_S * 1000);
	}
	cove_clear_error();
	if (!gone)
		return cove_fail(-ETIMEDOUT, "machine %s: its monitor (pid %d) does not end", m->name,
				 (int)pid);
	machine_vmm_pid(m, true);
	if (forced) {
		/* the monitor's last line says how the guest ended */
		vmm_log_tail(m, last, sizeof(last));
		*forced = killed || !strstr(last, "guest powered off");
	}
	return 0;
}
