// SPDX-License-Identifier: MIT
/*
 * test-init: PID 1 of cove's test guests.
 *
 * Runs from an initramfs (as /init) or from a real root (as /sbin/init):
 *
 *   1. mounts devtmpfs on /dev, then writes the boot-timer magic through
 *      /dev/mem (the monitor times "kernel entry to userspace" with it),
 *      then mounts /proc, /sys and a tmpfs on /tmp (each only if not
 *      already a mount point);
 *   2. reads the kernel command line (/proc/cmdline):
 *        cove.script=PATH     test script to run (default /etc/cove-test.sh)
 *        cove.root=DEV        from an initramfs only: mount DEV on /newroot
 *                             and switch into it before running the script
 *        cove.rootfstype=FS   filesystem of cove.root (default ext4)
 *        cove.nobutton=1      ignore the power button (see below)
 *        cove.exit=auto|poweroff|reboot  how to leave at the end:
 *                             auto (default) powers off when ACPI offers S5
 *                             and resets otherwise (the kernel would turn a
 *                             power-off into a silent halt); poweroff and
 *                             reboot force one way
 *   3. if the script exists, runs `/bin/sh SCRIPT` in a new session on the
 *      console and waits for it; otherwise runs an interactive /bin/sh with
 *      the console as its controlling terminal (so ^C works);
 *   4. prints one line "COVE-TEST-EXIT=<status>" on /dev/console, where
 *      status is the shell's exit code, 128+N if it died of signal N, or
 *      255 if test-init itself failed (a line "test-init: <step>: <error>"
 *      comes first); then kills what is left, syncs, and powers off (or
 *      resets, see cove.exit).
 *
 * All the while it reaps every orphan that is re-parented to it, and, as
 * systemd-logind would, a child watches /dev/input/event* for KEY_POWER
 * (the monitor's ACPI power button): a press ends the script and powers
 * off as in step 4 (status 0). busybox's poweroff, reboot and halt do the
 * same through signals to PID 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <dirent.h>
#include <poll.h>
#include <linux/input.h>

/*
 * The boot-timer device of the cove monitor: one page of MMIO at this guest
 * physical address. Writing COVE_BOOT_TIMER_MAGIC to offset 0 tells the
 * monitor that userspace has started. Keep in step with devices/boot_timer.c.
 */
#define COVE_BOOT_TIMER_ADDR 0xd1000000UL
#define COVE_BOOT_TIMER_MAGIC 123

#define DEFAULT_SCRIPT "/etc/cove-test.sh"
#define SHELL "/bin/sh"
#define NEWROOT "/newroot"
#define EXIT_INIT_FAILED 255
#define ROOT_WAIT_MS 10000

#define RAMFS_MAGIC_ 0x858458f6
#define TMPFS_MAGIC_ 0x01021994

enum exit_way {
	EXIT_AUTO,	/* power off if the kernel can, else reset */
	EXIT_POWEROFF,
	EXIT_REBOOT,
};

struct params {
	char script[256];
	char root[256];
	char rootfstype[32];
	enum exit_way exit;
	bool nobutton;
};

static struct params params = {
	.script = DEFAULT_SCRIPT,
	.rootfstype = "ext4",
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (write(STDERR_FILENO, buf, n) < 0) {
		/* nowhere left to report to */
	}
}

/* Write the result line to /dev/console and wait until it left the UART. */
static void report_exit(int status)
{
	char line[64];
	int fd, n;

	n = snprintf(line, sizeof(line), "\nCOVE-TEST-EXIT=%d\n", status);
	fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		fd = dup(STDOUT_FILENO);
	if (fd < 0)
		return;
	if (write(fd, line, n) < 0)
		say("test-init: write /dev/console: %s\n", strerror(errno));
	tcdrain(fd);
	close(fd);
}

static bool on_rootfs(void)
{
	struct statfs sfs;

	if (statfs("/", &sfs) < 0)
		return false;
	return sfs.f_type == RAMFS_MAGIC_ || sfs.f_type == TMPFS_MAGIC_;
}

/*
 * Reap until no process is left, for at most ms milliseconds. Every process
 * left is a descendant of PID 1 (orphans are re-parented here), so ECHILD
 * means none is. Returns whether none is.
 */
static bool reap_all(int ms)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	for (int waited = 0;; waited += 5) {
		pid_t pid;

		while ((pid = waitpid(-1, NULL, WNOHANG)) > 0)
			;
		if (pid < 0 && errno == ECHILD)
			return true;
		if (waited >= ms)
			return false;
		nanosleep(&ts, NULL);
	}
}

/* Read up to size bytes of a file; returns the count or -1. */
static ssize_t read_file(const char *path, void *buf, size_t size)
{
	size_t got = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (got < size) {
		ssize_t n = read(fd, (char *)buf + got, size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	return got;
}

/*
 * Whether reboot(RB_POWER_OFF) can switch the machine off. Without a way
 * (on x86, ACPI S5) the kernel turns power-off into a halt, and a halted
 * guest looks alive to the monitor. S5 needs the \_S5 object in the DSDT
 * and, on hardware-reduced ACPI, the FADT sleep control/status registers.
 */
static bool can_power_off(void)
{
	static unsigned char aml[256 * 1024];
	unsigned char fadt[276];
	ssize_t n;

	n = read_file("/sys/firmware/acpi/tables/DSDT", aml, sizeof(aml));
	if (n <= 0 || !memmem(aml, n, "_S5_", 4))
		return false;
	n = read_file("/sys/firmware/acpi/tables/FACP", fadt, sizeof(fadt));
	if (n >= 116) {
		uint32_t flags;

		memcpy(&flags, fadt + 112, 4);
		if (flags & (1u << 20)) {	/* HW_REDUCED_ACPI */
			uint64_t ctl = 0, sts = 0;

			if (n < 268)
				return false;
			memcpy(&ctl, fadt + 244 + 4, 8);	/* SLEEP_CONTROL_REG */
			memcpy(&sts, fadt + 256 + 4, 8);	/* SLEEP_STATUS_REG */
			return ctl && sts;
		}
	}
	return true;
}

/* Stop every other process, flush, and leave the VM. Never returns. */
static void __attribute__((noreturn)) finish(int status)
{
	report_exit(status);

	kill(-1, SIGTERM);
	if (!reap_all(500)) {
		kill(-1, SIGKILL);
		reap_all(500);
	}

	sync();
	if (!on_rootfs())
		mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL);

	if (params.exit == EXIT_POWEROFF ||
	    (params.exit == EXIT_AUTO && can_power_off())) {
		reboot(RB_POWER_OFF);
		say("test-init: reboot(RB_POWER_OFF): %s; resetting instead\n",
		    strerror(errno));
	}
	reboot(RB_AUTOBOOT);
	say("test-init: reboot(RB_AUTOBOOT): %s\n", strerror(errno));
	for (;;)
		pause();
}

static void __attribute__((noreturn)) fail(const char *step, int err)
{
	say("test-init: %s: %s (errno %d)\n", step, strerror(err), err);
	finish(EXIT_INIT_FAILED);
}

static bool is_mountpoint(const char *path)
{
	char parent[256];
	struct stat st, pst;

	if (snprintf(parent, sizeof(parent), "%s/..", path) >= (int)sizeof(parent))
		return false;
	if (stat(path, &st) < 0 || stat(parent, &pst) < 0)
		return false;
	return st.st_dev != pst.st_dev || st.st_ino == pst.st_ino;
}

static void mount_once(const char *src, const char *dir, const char *type,
		       unsigned long flags, const char *data)
{
	char step[128];

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		snprintf(step, sizeof(step), "mkdir %s", dir);
		fail(step, errno);
	}
	if (is_mountpoint(dir))
		return;
	if (mount(src, dir, type, flags, data) < 0) {
		snprintf(step, sizeof(step), "mount %s on %s", type, dir);
		fail(step, errno);
	}
}

/* Make sure fds 0, 1 and 2 exist: the kernel may have found no console. */
static void open_console_fds(void)
{
	int fd;

	if (fcntl(STDIN_FILENO, F_GETFD) >= 0 && fcntl(STDOUT_FILENO, F_GETFD) >= 0 &&
	    fcntl(STDERR_FILENO, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	for (int i = 0; i <= 2; i++)
		if (fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

/* Tell the monitor that userspace runs. Not fatal: a test still counts. */
static void write_boot_timer(void)
{
	volatile uint8_t *page;
	int fd;

	fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0) {
		say("test-init: boot-timer: open /dev/mem: %s (errno %d), continuing\n",
		    strerror(errno), errno);
		return;
	}
	page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    (off_t)COVE_BOOT_TIMER_ADDR);
	if (page == MAP_FAILED) {
		say("test-init: boot-timer: mmap /dev/mem at %#lx: %s (errno %d), continuing\n",
		    COVE_BOOT_TIMER_ADDR, strerror(errno), errno);
		close(fd);
		return;
	}
	page[0] = COVE_BOOT_TIMER_MAGIC;
	munmap((void *)page, 4096);
	close(fd);
}

static void copy_param(char *dst, size_t size, const char *val, const char *name)
{
	size_t n = strlen(val);

	if (n == 0 || n >= size) {
		say("test-init: %s: value empty or longer than %zu bytes, ignored\n",
		    name, size - 1);
		return;
	}
	memcpy(dst, val, n + 1);
}

static void parse_cmdline(void)
{
	char buf[4096];
	ssize_t n;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open /proc/cmdline", errno);
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0)
		fail("read /proc/cmdline", errno);
	close(fd);
	buf[n] = '\0';

	/* Words are separated by blanks; quoting is not supported here. */
	for (char *save = NULL, *w = strtok_r(buf, " \t\n", &save); w;
	     w = strtok_r(NULL, " \t\n", &save)) {
		if (!strncmp(w, "cove.script=", 12))
			copy_param(params.script, sizeof(params.script), w + 12, "cove.script");
		else if (!strncmp(w, "cove.root=", 10))
			copy_param(params.root, sizeof(params.root), w + 10, "cove.root");
		else if (!strncmp(w, "cove.rootfstype=", 16))
			copy_param(params.rootfstype, sizeof(params.rootfstype), w + 16,
				   "cove.rootfstype");
		else if (!strcmp(w, "cove.exit=reboot"))
			params.exit = EXIT_REBOOT;
		else if (!strcmp(w, "cove.exit=poweroff"))
			params.exit = EXIT_POWEROFF;
		else if (!strcmp(w, "cove.exit=auto"))
			params.exit = EXIT_AUTO;
		else if (!strcmp(w, "cove.nobutton=1"))
			params.nobutton = true;
		else if (!strncmp(w, "cove.", 5))
			say("test-init: unknown parameter '%s' ignored\n", w);
	}
}

static void move_to_newroot(const char *dir)
{
	char target[300], step[320];

	if (!is_mountpoint(dir))
		return;
	snprintf(target, sizeof(target), NEWROOT "%s", dir);
	if (mkdir(target, 0755) < 0 && errno != EEXIST) {
		snprintf(step, sizeof(step), "mkdir %s", target);
		fail(step, errno);
	}
	if (mount(dir, target, NULL, MS_MOVE, NULL) < 0) {
		snprintf(step, sizeof(step), "move %s to %s", dir, target);
		fail(step, errno);
	}
}

/*
 * Mount params.root on /newroot and make it "/". The initramfs stays in
 * memory underneath (it is small); the running test-init keeps going.
 */
static void switch_to_root(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	struct stat st;
	int waited = 0;

	/* virtio-blk probes during boot, but give a slow device a moment. */
	while (stat(params.root, &st) < 0) {
		if (errno != ENOENT || waited >= ROOT_WAIT_MS)
			fail("cove.root: wait for device", errno);
		nanosleep(&ts, NULL);
		waited += 10;
	}
	if (mkdir(NEWROOT, 0755) < 0 && errno != EEXIST)
		fail("mkdir " NEWROOT, errno);
	if (mount(params.root, NEWROOT, params.rootfstype, 0, NULL) < 0)
		fail("cove.root: mount", errno);

	move_to_newroot("/dev");
	move_to_newroot("/proc");
	move_to_newroot("/sys");
	move_to_newroot("/tmp");

	if (chdir(NEWROOT) < 0)
		fail("chdir " NEWROOT, errno);
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		fail("switch_root: move " NEWROOT " to /", errno);
	if (chroot(".") < 0)
		fail("switch_root: chroot", errno);
	if (chdir("/") < 0)
		fail("switch_root: chdir /", errno);
}

/* The device behind /dev/console, which can be a controlling terminal. */
static void console_tty(char *path, size_t size)
{
	char buf[256], *last = NULL;
	ssize_t n;
	int fd;

	snprintf(path, size, "/dev/console");
	fd = open("/sys/class/tty/console/active", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* The last name listed is the one /dev/console refers to. */
	for (char *save = NULL, *w = strtok_r(buf, " \n", &save); w;
	     w = strtok_r(NULL, " \n", &save))
		last = w;
	if (last)
		snprintf(path, size, "/dev/%s", last);
}

/* In the child: new session, console as controlling tty and stdio, exec. */
static void __attribute__((noreturn)) exec_shell(char *const argv[])
{
	char tty[64];
	sigset_t none;
	int fd;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (setsid() < 0)
		say("test-init: setsid: %s\n", strerror(errno));

	console_tty(tty, sizeof(tty));
	fd = open(tty, O_RDWR);
	if (fd < 0 && strcmp(tty, "/dev/console") != 0)
		fd = open("/dev/console", O_RDWR);
	if (fd >= 0) {
		if (ioctl(fd, TIOCSCTTY, 0) < 0)
			say("test-init: TIOCSCTTY %s: %s (no job control)\n", tty,
			    strerror(errno));
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	} else {
		say("test-init: open console %s: %s\n", tty, strerror(errno));
	}

	if (chdir("/") < 0) {
		/* keep whatever cwd we have */
	}
	/* When a session leader exits, Linux hangs up its terminal and drops
	 * the output not yet sent (a serial line is slow). So this process
	 * stays the leader, waits for the shell and lets the output drain. */
	pid_t pid = fork();
	if (pid == 0) {
		execv(argv[0], argv);
		say("test-init: exec %s: %s (errno %d)\n", argv[0], strerror(errno), errno);
		_exit(127);
	}
	if (pid < 0) {
		say("test-init: fork: %s\n", strerror(errno));
		_exit(127);
	}
	signal(SIGINT, SIG_IGN);
	signal(SIGQUIT, SIG_IGN);
	signal(SIGTSTP, SIG_IGN);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	tcdrain(STDOUT_FILENO);
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
}

/* Run argv in a child; reap every process until that child is gone. */
/* busybox's halt, poweroff and reboot (without -f) signal PID 1:
 * SIGUSR1, SIGUSR2 and SIGTERM. */
static volatile sig_atomic_t shutdown_signal;

static void on_shutdown_signal(int sig)
{
	shutdown_signal = sig;
}

static void catch_shutdown_signals(void)
{
	struct sigaction sa = { .sa_handler = on_shutdown_signal };	/* no SA_RESTART */

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

#define MAX_INPUTS 16

/* Open the /dev/input/event* not open yet (fds[0..*n) hold those that
 * are, names[] their numbers). */
static void open_inputs(struct pollfd *fds, int *names, int *n)
{
	DIR *d = opendir("/dev/input");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) && *n < MAX_INPUTS) {
		char path[300];
		bool have = false;
		int num, fd;

		if (sscanf(e->d_name, "event%d", &num) != 1)
			continue;
		for (int i = 0; i < *n; i++)
			have |= names[i] == num;
		if (have)
			continue;
		snprintf(path, sizeof(path), "/dev/input/%s", e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		fds[*n] = (struct pollfd){ .fd = fd, .events = POLLIN };
		names[(*n)++] = num;
	}
	closedir(d);
}

/* The power button watcher (a child of PID 1): wait for a KEY_POWER press
 * on any input device (new devices are looked for every second), then
 * ask PID 1 to power off as busybox's poweroff does. Never returns. */
static void __attribute__((noreturn)) watch_power_button(void)
{
	struct pollfd fds[MAX_INPUTS];
	int names[MAX_INPUTS], n = 0;

	signal(SIGUSR1, SIG_DFL);
	signal(SIGUSR2, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	for (;;) {
		open_inputs(fds, names, &n);
		if (poll(fds, n, 1000) <= 0)
			continue;
		for (int i = 0; i < n; i++) {
			struct input_event ev[16];
			ssize_t got;

			if (fds[i].revents & (POLLERR | POLLHUP | POLLNVAL)) {
				/* gone: forget it (a new one is found by name) */
				close(fds[i].fd);
				fds[i] = fds[--n];
				names[i] = names[n];
				i--;
				continue;
			}
			if (!(fds[i].revents & POLLIN))
				continue;
			got = read(fds[i].fd, ev, sizeof(ev));
			for (ssize_t k = 0; k < got / (ssize_t)sizeof(ev[0]); k++)
				if (ev[k].type == EV_KEY && ev[k].code == KEY_POWER && ev[k].value == 1) {
					say("test-init: power button pressed: powering off\n");
					kill(1, SIGUSR2);
					_exit(0);
				}
		}
	}
}

static int run_and_reap(char *const argv[])
{
	pid_t child, pid;
	int st;

	catch_shutdown_signals();
	if (!params.nobutton) {
		pid = fork();
		if (pid == 0)
			watch_power_button();
		if (pid < 0)
			say("test-init: fork (power button watcher): %s\n", strerror(errno));
	}
	child = fork();
	if (child < 0)
		fail("fork", errno);
	if (child == 0)
		exec_shell(argv);

	for (;;) {
		if (shutdown_signal) {
			/* Asked to shut down: the script's status is moot. A
			 * power-off request still resets where power-off cannot
			 * work (EXIT_AUTO decides). */
			if (shutdown_signal == SIGTERM)
				params.exit = EXIT_REBOOT;
			return 0;
		}
		pid = waitpid(-1, &st, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			fail("waitpid", errno);
		}
		if (pid != child)
			continue;	/* an orphan: reaped, nothing more */
		if (WIFEXITED(st))
			return WEXITSTATUS(st);
		if (WIFSIGNALED(st))
			return 128 + WTERMSIG(st);
	}
}

int main(void)
{
	struct stat st;

	if (getpid() != 1) {
		fprintf(stderr, "test-init: must run as PID 1 (the guest's init)\n");
		return 2;
	}
	umask(022);
	setenv("PATH", "/usr/sbin:/usr/bin:/sbin:/bin", 0);
	setenv("HOME", "/", 0);
	setenv("TERM", "linux", 0);

	/* /dev first: the boot timer goes through /dev/mem, as early as can be. */
	mount_once("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	open_console_fds();
	write_boot_timer();
	mount_once("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_once("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_once("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");

	parse_cmdline();

	if (params.root[0]) {
		if (on_rootfs())
			switch_to_root();
		else
			say("test-init: cove.root=%s: already on a real root, not switching\n",
			    params.root);
	}

	if (stat(params.script, &st) == 0) {
		char *argv[] = { SHELL, params.script, NULL };

		finish(run_and_reap(argv));
	} else if (errno != ENOENT) {
		fail("stat cove.script", errno);
	} else {
		char *argv[] = { SHELL, NULL };

		if (strcmp(params.script, DEFAULT_SCRIPT) != 0)
			fail("cove.script", ENOENT);
		finish(run_and_reap(argv));
	}
}
