// SPDX-License-Identifier: MIT
/*
 * cove-init: the init shim of a cove machine, /init of machine-initrd.cpio.
 *
 * It runs as PID 1 from the initramfs and, in order:
 *   1. mounts devtmpfs, proc and sysfs, makes the console fds 0-2;
 *   2. reads its parameters from the kernel command line (values
 *      percent-encoded: bytes outside A-Za-z0-9._/:,- as %XX):
 *        cove.hostname=NAME            hostname
 *        cove.user=NAME cove.uid=N cove.gid=N   the host user to provision
 *        cove.home=PATH                its home (default /home/NAME)
 *        cove.homemount=rw|ro|none     virtio-fs tag "home" at cove.home, or
 *                                      a home local to the disk (default)
 *        cove.mount=TAG:PATH[:ro]      more virtio-fs shares (repeatable)
 *        cove.net=ADDR/PREFIX,GW,DNS   static IPv4 on eth0 (GW, DNS optional)
 *        cove.machineid=32HEX          /etc/machine-id on first boot
 *   3. mounts the root disk /dev/vda (ext4) and switches into it, keeping
 *      /dev, /proc and /sys; refuses (on the console, then powers off) when
 *      the image has no /sbin/init;
 *   4. grows the filesystem to the disk (EXT4_IOC_RESIZE_FS), every boot;
 *   5. mounts devpts and /dev/shm, sets the hostname (/etc/hostname, and
 *      127.0.1.1 in /etc/hosts when the name is missing there), configures
 *      lo and eth0 from cove.net, writes /etc/resolv.conf for its DNS;
 *   6. mounts the virtio-fs shares: tag "home" at cove.home (cove.homemount
 *      rw or ro) and each cove.mount=TAG:PATH[:ro];
 *   7. once (marker /etc/cove/provisioned): /etc/machine-id, and the host's
 *      user: /etc/machine/create-user.sh of the image when it has one, run
 *      by the image's /bin/sh with CONTAINER_* set, else the built-in step
 *      (passwd, group, shadow, gshadow; an entry with the host uid under
 *      another name is renamed; sudoers.d when sudo is installed; a local
 *      home from /etc/skel with cove.homemount=none);
 *   8. starts the exec agent (/cove-agent of the initramfs, kept in a memfd
 *      and run from it, so nothing of cove's lands on the disk);
 *   9. executes the image's /sbin/init as PID 1.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/fs.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>

#include "say.h"
#include "users.h"

#define EXT4_IOC_RESIZE_FS_	_IOW('f', 16, uint64_t)
#define ROOT_DEV		"/dev/vda"
#define NEWROOT			"/newroot"
#define AGENT_PATH		"/cove-agent"
#define MARKER_DIR		"/etc/cove"
#define MARKER			MARKER_DIR "/provisioned"
#define CREATE_USER		"/etc/machine/create-user.sh"
#define DEVICE_WAIT_MS		10000
#define MOUNTS_MAX		32
#define SAFE_PATH		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

enum homemount { HOME_NONE, HOME_RW, HOME_RO };

struct share {
	char tag[64];
	char path[USERS_PATH_MAX];
	bool ro;
};

static struct params {
	char hostname[65];
	char user[USERS_NAME_MAX];
	unsigned uid, gid;
	bool have_uid, have_gid;
	char home[USERS_PATH_MAX];
	enum homemount homemount;
	struct share mounts[MOUNTS_MAX];
	int nmounts;
	bool net;
	struct in_addr addr, gw, dns;
	unsigned prefix;
	bool have_gw, have_dns;
	char machineid[33];
} P;

/* Nothing sensible is left to do: say why on the console and power off
 * (the machine's log keeps the line). */
static void __attribute__((noreturn)) fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void __attribute__((noreturn)) fatal(const char *fmt, ...)
{
	char buf[640];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	say("cove-init: error: %s", buf);
	say("cove-init: powering off");
	sync();
	reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

static bool is_mountpoint(const char *path)
{
	char parent[USERS_PATH_MAX + 4];
	struct stat st, pst;

	snprintf(parent, sizeof(parent), "%s/..", path);
	if (stat(path, &st) < 0 || stat(parent, &pst) < 0)
		return false;
	return st.st_dev != pst.st_dev || st.st_ino == pst.st_ino;
}

/* mkdir -p with mode 0755 for what it creates (owned by root). */
static int mkdirs(const char *path)
{
	char buf[USERS_PATH_MAX];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p)
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = c;
		if (!c)
			return 0;
	}
}

static void mount_api(const char *src, const char *dir, const char *type, unsigned long flags,
		      const char *data)
{
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		fatal("mkdir %s: %s", dir, strerror(errno));
	if (is_mountpoint(dir))
		return;
	if (mount(src, dir, type, flags, data) < 0)
		fatal("mount %s on %s: %s", type, dir, strerror(errno));
}

static void console_fds(void)
{
	int fd;

	if (fcntl(0, F_GETFD) >= 0 && fcntl(1, F_GETFD) >= 0 && fcntl(2, F_GETFD) >= 0)
		return;
	fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		fd = open("/dev/null", O_RDWR);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

/* ---- the command line ---- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode src[0..len) into dst (NUL-terminated). False for a bad
 * escape, a NUL, or no room. */
static bool pct_decode(const char *src, size_t len, char *dst, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)src[i];

		if (c == '%') {
			int hi = i + 2 < len ? hexval(src[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(src[i + 2]) : -1;

			if (lo < 0)
				return false;
			c = hi << 4 | lo;
			i += 2;
		}
		if (!c || o + 1 >= size)
			return false;
		dst[o++] = c;
	}
	dst[o] = '\0';
	return true;
}

static bool param(const char *word, const char *key, const char **val)
{
	size_t n = strlen(key);

	if (strncmp(word, key, n) || word[n] != '=')
		return false;
	*val = word + n + 1;
	return true;
}

/* An absolute path without ".." components. */
static bool valid_path(const char *p)
{
	if (p[0] != '/')
		return false;
	for (; *p; p++)
		if (p[0] == '/' && p[1] == '.' && p[2] == '.' && (p[3] == '/' || !p[3]))
			return false;
	return true;
}

static void parse_mount(const char *v)
{
	const char *colon = strchr(v, ':');
	size_t len = strlen(v);
	struct share *s = &P.mounts[P.nmounts];

	if (P.nmounts == MOUNTS_MAX) {
		say("cove-init: more than %d cove.mount, %s ignored", MOUNTS_MAX, v);
		return;
	}
	*s = (struct share){ 0 };
	if (len > 3 && !strcmp(v + len - 3, ":ro")) {
		s->ro = true;
		len -= 3;
	}
	if (!colon || colon >= v + len || !pct_decode(v, colon - v, s->tag, sizeof(s->tag)) ||
	    !s->tag[0] ||
	    !pct_decode(colon + 1, v + len - colon - 1, s->path, sizeof(s->path)) ||
	    !valid_path(s->path)) {
		say("cove-init: cove.mount=%s: want TAG:/PATH[:ro]; ignored", v);
		return;
	}
	P.nmounts++;
}

static bool parse_ip(const char *s, size_t len, struct in_addr *a)
{
	char buf[16];

	return pct_decode(s, len, buf, sizeof(buf)) && inet_pton(AF_INET, buf, a) == 1;
}

/* ADDR/PREFIX,GATEWAY,DNS (the last two may be empty or absent) */
static void parse_net(const char *v)
{
	const char *slash = strchr(v, '/'), *c1, *c2;
	char pfx[4];
	unsigned prefix;

	c1 = strchr(v, ',');
	c2 = c1 ? strchr(c1 + 1, ',') : NULL;
	if (!c1)
		c1 = v + strlen(v);
	if (!c2)
		c2 = c1 + strlen(c1);
	if (!slash || slash > c1 || !parse_ip(v, slash - v, &P.addr) || c1 - slash - 1 < 1 ||
	    c1 - slash - 1 > 2 || !pct_decode(slash + 1, c1 - slash - 1, pfx, sizeof(pfx)) ||
	    !users_parse_id(pfx, &prefix) || prefix > 32)
		goto bad;
	P.prefix = prefix;
	if (*c1 && c2 > c1 + 1) {
		if (!parse_ip(c1 + 1, c2 - c1 - 1, &P.gw))
			goto bad;
		P.have_gw = true;
	}
	if (*c2 && c2[1]) {
		if (!parse_ip(c2 + 1, strlen(c2 + 1), &P.dns))
			goto bad;
		P.have_dns = true;
	}
	P.net = true;
	return;
bad:
	P.have_gw = P.have_dns = false;
	say("cove-init: cove.net=%s: want ADDR/PREFIX,GATEWAY,DNS; no network set up", v);
}

static bool valid_name(const char *s)
{
	if (!*s || *s == '-')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-", *s) && !(*s == '$' && !s[1]))
			return false;
	return true;
}

static bool valid_hostname(const char *s)
{
	if (!*s || *s == '-' || *s == '.')
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '.')
			return false;
	return true;
}

static void parse_value(const char *key, const char *v, char *dst, size_t size)
{
	if (!pct_decode(v, strlen(v), dst, size)) {
		say("cove-init: %s=%s: bad value, ignored", key, v);
		dst[0] = '\0';
	}
}

static void parse_cmdline(void)
{
	char buf[4096], tmp[64];
	const char *v;
	ssize_t n;
	int fd;

	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fatal("open /proc/cmdline: %s", strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		fatal("read /proc/cmdline: %s", strerror(errno));
	buf[n] = '\0';

	for (char *save = NULL, *w = strtok_r(buf, " \t\n", &save); w;
	     w = strtok_r(NULL, " \t\n", &save)) {
		if (strncmp(w, "cove.", 5))
			continue;
		if (param(w, "cove.hostname", &v)) {
			parse_value("cove.hostname", v, P.hostname, sizeof(P.hostname));
			if (P.hostname[0] && !valid_hostname(P.hostname)) {
				say("cove-init: cove.hostname=%s: not a host name, ignored", v);
				P.hostname[0] = '\0';
			}
		} else if (param(w, "cove.user", &v)) {
			parse_value("cove.user", v, P.user, sizeof(P.user));
			if (P.user[0] && !valid_name(P.user)) {
				say("cove-init: cove.user=%s: not a user name, ignored", v);
				P.user[0] = '\0';
			}
		} else if (param(w, "cove.uid", &v)) {
			parse_value("cove.uid", v, tmp, sizeof(tmp));
			P.have_uid = users_parse_id(tmp, &P.uid);
		} else if (param(w, "cove.gid", &v)) {
			parse_value("cove.gid", v, tmp, sizeof(tmp));
			P.have_gid = users_parse_id(tmp, &P.gid);
		} else if (param(w, "cove.home", &v)) {
			parse_value("cove.home", v, P.home, sizeof(P.home));
			if (P.home[0] && !valid_path(P.home)) {
				say("cove-init: cove.home=%s: not an absolute path, ignored", v);
				P.home[0] = '\0';
			}
		} else if (param(w, "cove.homemount", &v)) {
			if (!strcmp(v, "rw"))
				P.homemount = HOME_RW;
			else if (!strcmp(v, "ro"))
				P.homemount = HOME_RO;
			else if (!strcmp(v, "none"))
				P.homemount = HOME_NONE;
			else
				say("cove-init: cove.homemount=%s: want rw, ro or none; none", v);
		} else if (param(w, "cove.mount", &v)) {
			parse_mount(v);
		} else if (param(w, "cove.net", &v)) {
			parse_net(v);
		} else if (param(w, "cove.machineid", &v)) {
			parse_value("cove.machineid", v, P.machineid, sizeof(P.machineid));
			if (strlen(P.machineid) != 32 ||
			    strspn(P.machineid, "0123456789abcdef") != 32) {
				if (*v)
					say("cove-init: cove.machineid=%s: want 32 lowercase hex digits, ignored", v);
				P.machineid[0] = '\0';
			}
		} else {
			say("cove-init: unknown parameter %s ignored", w);
		}
	}
	if (P.user[0] && (!P.have_uid || !P.have_gid)) {
		say("cove-init: cove.user without cove.uid and cove.gid: no user provisioned");
		P.user[0] = '\0';
	}
	if (P.user[0] && !P.home[0])
		snprintf(P.home, sizeof(P.home), P.uid ? "/home/%s" : "/root", P.user);
	if (P.homemount != HOME_NONE && !P.home[0]) {
		say("cove-init: cove.homemount without cove.home: home not mounted");
		P.homemount = HOME_NONE;
	}
}

/* ---- the root ---- */

static void move_api_mount(const char *dir)
{
	char target[64];

	snprintf(target, sizeof(target), NEWROOT "%s", dir);
	if (mkdir(target, 0755) < 0 && errno != EEXIST)
		fatal("mkdir %s on the root disk: %s", dir, strerror(errno));
	if (mount(dir, target, NULL, MS_MOVE, NULL) < 0)
		fatal("move %s to the root disk: %s", dir, strerror(errno));
}

static void switch_root(void)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };
	struct stat st;

	for (int waited = 0; stat(ROOT_DEV, &st) < 0; waited += 10) {
		if (errno != ENOENT || waited >= DEVICE_WAIT_MS)
			fatal("no root disk %s: %s", ROOT_DEV, strerror(errno));
		nanosleep(&ts, NULL);
	}
	if (mkdir(NEWROOT, 0755) < 0 && errno != EEXIST)
		fatal("mkdir " NEWROOT ": %s", strerror(errno));
	if (mount(ROOT_DEV, NEWROOT, "ext4", MS_NOATIME, NULL) < 0)
		fatal("mount the root disk %s (ext4): %s", ROOT_DEV, strerror(errno));
	/* Free the initramfs (the running shim stays until its exec; the
	 * agent lives in its memfd). */
	unlink(AGENT_PATH);
	unlink("/init");
	move_api_mount("/dev");
	move_api_mount("/proc");
	move_api_mount("/sys");
	if (chdir(NEWROOT) < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 ||
	    chdir("/") < 0)
		fatal("switch to the root disk: %s", strerror(errno));
}

static void grow_root(void)
{
	uint64_t bytes, blocks;
	struct statfs sf;
	int dev, root;

	dev = open(ROOT_DEV, O_RDONLY | O_CLOEXEC);
	if (dev < 0 || ioctl(dev, BLKGETSIZE64, &bytes) < 0 || statfs("/", &sf) < 0 || !sf.f_bsize) {
		say("cove-init: size of %s: %s; filesystem not grown", ROOT_DEV, strerror(errno));
		if (dev >= 0)
			close(dev);
		return;
	}
	close(dev);
	blocks = bytes / sf.f_bsize;
	root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (root < 0 || ioctl(root, EXT4_IOC_RESIZE_FS_, &blocks) < 0)
		say("cove-init: grow the root filesystem to %llu blocks: %s",
		    (unsigned long long)blocks, strerror(errno));
	if (root >= 0)
		close(root);
}

/* ---- files ---- */

static ssize_t read_all(const char *path, char *buf, size_t size)
{
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (got + 1 < size) {
		ssize_t n = read(fd, buf + got, size - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	buf[got] = '\0';
	return got;
}

/* Replace path with data atomically (a temporary file renamed over it).
 * An existing file's mode and owner are kept; a new one gets mode. */
static int write_file(const char *path, const char *data, size_t len, mode_t mode)
{
	char tmp[USERS_PATH_MAX + 16];
	uid_t uid = 0;
	gid_t gid = 0;
	struct stat st;
	int fd, err = 0;

	if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
		mode = st.st_mode & 07777;
		uid = st.st_uid;
		gid = st.st_gid;
	}
	snprintf(tmp, sizeof(tmp), "%s.cove-new", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	while (len && !err) {
		ssize_t n = write(fd, data, len);

		if (n < 0 && errno != EINTR)
			err = -errno;
		if (n > 0) {
			data += n;
			len -= n;
		}
	}
	if (!err && (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0 || fsync(fd) < 0))
		err = -errno;
	close(fd);
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

static int write_str(const char *path, const char *s, mode_t mode)
{
	return write_file(path, s, strlen(s), mode);
}

/* A text file as lines (without their newlines). */
struct text {
	char **v;
	size_t n, cap;
	bool exists;
};

static int text_add(struct text *t, char *line)
{
	if (!line)
		return -ENOMEM;
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 32;
		char **v = realloc(t->v, cap * sizeof(*v));

		if (!v) {
			free(line);
			return -ENOMEM;
		}
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = line;
	return 0;
}

static int text_read(const char *path, struct text *t)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int err = 0;

	*t = (struct text){ 0 };
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	t->exists = true;
	while (!err && (n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		err = text_add(t, strdup(line));
	}
	free(line);
	fclose(f);
	return err;
}

static int text_write(const char *path, const struct text *t, mode_t mode)
{
	size_t len = 0;
	char *buf, *p;
	int err;

	for (size_t i = 0; i < t->n; i++)
		len += strlen(t->v[i]) + 1;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	p = buf;
	for (size_t i = 0; i < t->n; i++)
		p += sprintf(p, "%s\n", t->v[i]);
	err = write_file(path, buf, len, mode);
	free(buf);
	return err;
}

static void text_free(struct text *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i]);
	free(t->v);
	*t = (struct text){ 0 };
}

/* fields[0..n) joined by ':' (a new string). */
static char *join(char **fields, int n)
{
	size_t len = 0;
	char *s, *p;

	for (int i = 0; i < n; i++)
		len += strlen(fields[i]) + 1;
	s = malloc(len);
	if (!s)
		return NULL;
	p = s;
	for (int i = 0; i < n; i++)
		p += sprintf(p, i ? ":%s" : "%s", fields[i]);
	return s;
}

/* ---- hostname and network ---- */

static bool has_word(const char *line, const char *word)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", line);
	buf[strcspn(buf, "#")] = '\0';
	for (char *save = NULL, *w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save))
		if (!strcmp(w, word))
			return true;
	return false;
}

static void set_hostname(void)
{
	char line[128], old[128];
	struct text hosts;
	bool found = false;
	int err;

	if (!P.hostname[0])
		return;
	if (sethostname(P.hostname, strlen(P.hostname)) < 0)
		say("cove-init: sethostname: %s", strerror(errno));
	snprintf(line, sizeof(line), "%s\n", P.hostname);
	if (read_all("/etc/hostname", old, sizeof(old)) < 0 || strcmp(old, line)) {
		err = write_str("/etc/hostname", line, 0644);
		if (err)
			say("cove-init: /etc/hostname: %s", strerror(-err));
	}
	err = text_read("/etc/hosts", &hosts);
	for (size_t i = 0; !err && i < hosts.n && !found; i++)
		found = has_word(hosts.v[i], P.hostname);
	if (!err && !found) {
		if (!hosts.exists) {
			text_add(&hosts, strdup("127.0.0.1\tlocalhost"));
			text_add(&hosts, strdup("::1\tlocalhost ip6-localhost ip6-loopback"));
		}
		snprintf(line, sizeof(line), "127.0.1.1\t%s", P.hostname);
		err = text_add(&hosts, strdup(line));
		if (!err)
			err = text_write("/etc/hosts", &hosts, 0644);
	}
	if (err)
		say("cove-init: /etc/hosts: %s", strerror(-err));
	text_free(&hosts);
}

static int if_up(int s, const char *name)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -errno;
	ifr.ifr_flags |= IFF_UP;
	return ioctl(s, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

static int if_addr(int s, const char *name, unsigned long req, struct in_addr a)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr = a };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
	return ioctl(s, req, &ifr) < 0 ? -errno : 0;
}

static void set_network(void)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	struct in_addr mask = { htonl(P.prefix ? ~0u << (32 - P.prefix) : 0) };
	int s, err;

	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		say("cove-init: network: socket: %s", strerror(errno));
		return;
	}
	err = if_up(s, "lo");
	if (err)
		say("cove-init: network: lo up: %s", strerror(-err));
	if (!P.net)
		goto out;
	for (int waited = 0; !if_nametoindex("eth0") && waited < DEVICE_WAIT_MS; waited += 20)
		nanosleep(&ts, NULL);
	err = if_addr(s, "eth0", SIOCSIFADDR, P.addr);
	if (!err)
		err = if_addr(s, "eth0", SIOCSIFNETMASK, mask);
	if (!err)
		err = if_up(s, "eth0");
	if (err) {
		say("cove-init: network: eth0: %s", strerror(-err));
		goto out;
	}
	if (P.have_gw) {
		struct rtentry rt = { .rt_flags = RTF_UP | RTF_GATEWAY, .rt_dev = "eth0" };
		struct sockaddr_in any = { .sin_family = AF_INET };
		struct sockaddr_in gw = { .sin_family = AF_INET, .sin_addr = P.gw };

		memcpy(&rt.rt_dst, &any, sizeof(any));
		memcpy(&rt.rt_genmask, &any, sizeof(any));
		memcpy(&rt.rt_gateway, &gw, sizeof(gw));
		if (ioctl(s, SIOCADDRT, &rt) < 0 && errno != EEXIST)
			say("cove-init: network: default route: %s", strerror(errno));
	}
	if (P.have_dns) {
		char conf[64], old[256], ip[16];

		inet_ntop(AF_INET, &P.dns, ip, sizeof(ip));
		snprintf(conf, sizeof(conf), "nameserver %s\n", ip);
		struct stat st;
		/* a symlink (to a resolver's file under /run) is replaced */
		if (lstat("/etc/resolv.conf", &st) < 0 || !S_ISREG(st.st_mode) ||
		    read_all("/etc/resolv.conf", old, sizeof(old)) < 0 || strcmp(old, conf)) {
			err = write_str("/etc/resolv.conf", conf, 0644);
			if (err)
				say("cove-init: /etc/resolv.conf: %s", strerror(-err));
		}
	}
out:
	close(s);
}

/* ---- shares ---- */

static void mount_share(const char *tag, const char *path, bool ro)
{
	int err = mkdirs(path);

	if (!err && mount(tag, path, "virtiofs", MS_NODEV | (ro ? MS_RDONLY : 0), NULL) < 0)
		err = -errno;
	if (err)
		say("cove-init: mount virtio-fs %s on %s: %s", tag, path, strerror(-err));
}

static void mount_shares(void)
{
	if (P.homemount != HOME_NONE)
		mount_share("home", P.home, P.homemount == HOME_RO);
	for (int i = 0; i < P.nmounts; i++)
		mount_share(P.mounts[i].tag, P.mounts[i].path, P.mounts[i].ro);
}

/* ---- provisioning ---- */

static bool executable(const char *path)
{
	return access(path, X_OK) == 0;
}

static const char *login_shell(void)
{
	return executable("/bin/bash") ? "/bin/bash" : "/bin/sh";
}

/* A ','-separated member list with old replaced by new (a new string). */
static char *rename_member(const char *list, const char *old, const char *new)
{
	size_t len = strlen(list) + 1, nold = strlen(old), nnew = strlen(new);
	char *out, *o;

	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");

		if (n == nold && !memcmp(p, old, n))
			len += nnew;
		p += n + (p[n] == ',');
	}
	out = malloc(len);
	if (!out)
		return NULL;
	o = out;
	for (const char *p = list; *p;) {
		size_t n = strcspn(p, ",");

		if (o != out)
			*o++ = ',';
		if (n == nold && !memcmp(p, old, n)) {
			memcpy(o, new, nnew);
			o += nnew;
		} else {
			memcpy(o, p, n);
			o += n;
		}
		p += n + (p[n] == ',');
	}
	*o = '\0';
	return out;
}

/* In a group file (group: name:pw:gid:members, gshadow:
 * name:pw:admins:members): the group named old becomes new unless new is
 * taken, and old becomes new in the member lists. */
static int rename_in_groups(const char *path, const char *old, const char *new, bool gshadow)
{
	struct text t;
	bool taken = false;
	int err = text_read(path, &t);

	if (err || !t.exists)
		goto out;
	for (size_t i = 0; i < t.n; i++) {
		size_t n = strlen(new);

		taken |= !strncmp(t.v[i], new, n) && t.v[i][n] == ':';
	}
	for (size_t i = 0; i < t.n && !err; i++) {
		char *line = strdup(t.v[i]), *f[5], *m1 = NULL, *m2 = NULL, *s;

		if (!line) {
			err = -ENOMEM;
			break;
		}
		if (users_split(line, f, 4) == 4) {
			if (!taken && !strcmp(f[0], old))
				f[0] = (char *)new;
			m2 = rename_member(f[3], old, new);
			if (gshadow)
				m1 = rename_member(f[2], old, new);
			if (m2 && (!gshadow || m1)) {
				f[3] = m2;
				if (gshadow)
					f[2] = m1;
				s = join(f, 4);
				if (s) {
					free(t.v[i]);
					t.v[i] = s;
				} else {
					err = -ENOMEM;
				}
			} else {
				err = -ENOMEM;
			}
		}
		free(m1);
		free(m2);
		free(line);
	}
	if (!err)
		err = text_write(path, &t, 0644);
out:
	text_free(&t);
	return err;
}

/* Set the passwd entry (index i, or a new one) to the host user. */
static int provision_passwd(struct text *pw, ssize_t i, const char *shell)
{
	char *line, *f[8], uid[16], gid[16];
	int err;

	snprintf(uid, sizeof(uid), "%u", P.uid);
	snprintf(gid, sizeof(gid), "%u", P.gid);
	if (i < 0) {
		if (asprintf(&line, "%s:x:%s:%s:%s:%s:%s", P.user, uid, gid, P.user, P.home, shell) < 0)
			return -ENOMEM;
		return text_add(pw, line);
	}
	line = strdup(pw->v[i]);
	if (!line)
		return -ENOMEM;
	users_split(line, f, 7);
	f[0] = P.user;
	f[2] = uid;
	f[3] = gid;
	f[5] = P.home;
	f[6] = (char *)shell;
	err = -ENOMEM;
	char *s = join(f, 7);
	if (s) {
		free(pw->v[i]);
		pw->v[i] = s;
		err = 0;
	}
	free(line);
	return err;
}

/* Index of the entry named name, or with id id in field idf (name NULL). */
static ssize_t text_find(const struct text *t, const char *name, int idf, unsigned id)
{
	for (size_t i = 0; i < t->n; i++) {
		char *line = strdup(t->v[i]), *f[8];
		unsigned v;
		bool hit = false;

		if (!line)
			return -1;
		if (users_split(line, f, 7) > idf)
			hit = name ? !strcmp(f[0], name) : users_parse_id(f[idf], &v) && v == id;
		free(line);
		if (hit)
			return i;
	}
	return -1;
}

static int add_line(const char *path, const char *line, mode_t mode)
{
	struct text t;
	int err = text_read(path, &t);

	if (!err)
		err = text_add(&t, strdup(line));
	if (!err)
		err = text_write(path, &t, mode);
	text_free(&t);
	return err;
}

/* Copy the tree src into dst (dst exists), owned by the user. */
static bool empty_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	bool empty = true;

	if (!d)
		return false;
	while (empty && (e = readdir(d)))
		empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
	closedir(d);
	return empty;
}

static void copy_tree(const char *src, const char *dst)
{
	DIR *d = opendir(src);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char from[USERS_PATH_MAX], to[USERS_PATH_MAX], link[USERS_PATH_MAX];
		struct stat st;
		ssize_t n;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (snprintf(from, sizeof(from), "%s/%s", src, e->d_name) >= (int)sizeof(from) ||
		    snprintf(to, sizeof(to), "%s/%s", dst, e->d_name) >= (int)sizeof(to) ||
		    lstat(from, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (mkdir(to, st.st_mode & 07777) == 0 || errno == EEXIST)
				copy_tree(from, to);
		} else if (S_ISLNK(st.st_mode)) {
			n = readlink(from, link, sizeof(link) - 1);
			if (n < 0)
				continue;
			link[n] = '\0';
			if (symlink(link, to) < 0)
				continue;
		} else if (S_ISREG(st.st_mode)) {
			int in = open(from, O_RDONLY | O_CLOEXEC);
			int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
				       st.st_mode & 07777);

			if (in >= 0 && out >= 0)
				while (sendfile(out, in, NULL, 1 << 20) > 0)
					;
			if (in >= 0)
				close(in);
			if (out < 0)
				continue;
			close(out);
		} else {
			continue;
		}
		if (lchown(to, P.uid, P.gid) < 0)
			say("cove-init: chown %s: %s", to, strerror(errno));
	}
	closedir(d);
}

/* With cove.homemount=none, a home of the machine's own: made from
 * /etc/skel when missing, or when it is the empty root-owned mountpoint a
 * boot with a shared home left (the setting changed since). Every boot. */
static void local_home(void)
{
	char parent[USERS_PATH_MAX];
	struct stat st;
	int err = 0;

	if (P.homemount != HOME_NONE || !P.home[0] || !P.user[0])
		return;
	if (lstat(P.home, &st) == 0) {
		if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || P.uid == 0 || !empty_dir(P.home))
			return;
	} else {
		snprintf(parent, sizeof(parent), "%s", P.home);
		*strrchr(parent, '/') = '\0';
		err = parent[0] ? mkdirs(parent) : 0;
		if (!err && mkdir(P.home, 0700) < 0)
			err = -errno;
	}
	if (!err && (chown(P.home, P.uid, P.gid) < 0 || chmod(P.home, 0700) < 0))
		err = -errno;
	if (err) {
		say("cove-init: home %s: %s", P.home, strerror(-err));
		return;
	}
	copy_tree("/etc/skel", P.home);
}

static void provision_sudo(void)
{
	static const char *const sudos[] = { "/usr/bin/sudo", "/bin/sudo", "/usr/sbin/sudo" };
	char rule[160];
	bool have = false;
	int err;

	for (size_t i = 0; i < sizeof(sudos) / sizeof(sudos[0]); i++)
		have |= executable(sudos[i]);
	if (!have)
		return;
	snprintf(rule, sizeof(rule), "%s ALL=(ALL:ALL) NOPASSWD: ALL\n", P.user);
	if (mkdir("/etc/sudoers.d", 0750) < 0 && errno != EEXIST)
		err = -errno;
	else
		err = write_str("/etc/sudoers.d/cove-user", rule, 0440);
	if (err)
		say("cove-init: /etc/sudoers.d/cove-user: %s", strerror(-err));
}

/* The built-in user step. */
static int provision_user(void)
{
	const char *shell = login_shell();
	struct text pw;
	ssize_t by_name, by_uid;
	char line[256], old[USERS_NAME_MAX] = "";
	int err;

	err = text_read("/etc/passwd", &pw);
	if (err)
		goto out;
	by_name = text_find(&pw, P.user, 0, 0);
	by_uid = text_find(&pw, NULL, 2, P.uid);
	if (by_name < 0 && by_uid >= 0) {
		/* the image uses the host uid under another name: rename it */
		snprintf(old, sizeof(old), "%.*s", (int)strcspn(pw.v[by_uid], ":"), pw.v[by_uid]);
		by_name = by_uid;
	}
	err = provision_passwd(&pw, by_name, shell);
	if (!err)
		err = text_write("/etc/passwd", &pw, 0644);
	if (err)
		goto out;

	if (old[0]) {
		struct text sh;

		err = text_read("/etc/shadow", &sh);
		ssize_t i = err ? -1 : text_find(&sh, old, 0, 0);
		if (i >= 0) {
			char *rest = strchr(sh.v[i], ':'), *s;

			if (asprintf(&s, "%s%s", P.user, rest) < 0) {
				err = -ENOMEM;
			} else {
				free(sh.v[i]);
				sh.v[i] = s;
				err = text_write("/etc/shadow", &sh, 0640);
			}
		}
		text_free(&sh);
		if (!err)
			err = rename_in_groups("/etc/group", old, P.user, false);
		if (!err)
			err = rename_in_groups("/etc/gshadow", old, P.user, true);
		if (err)
			goto out;
		say("cove-init: user %s (uid %u) renamed to %s", old, P.uid, P.user);
	} else if (access("/etc/shadow", F_OK) == 0) {
		struct text sh;

		err = text_read("/etc/shadow", &sh);
		if (!err && text_find(&sh, P.user, 0, 0) < 0) {
			snprintf(line, sizeof(line), "%s:*:::::::", P.user);
			err = add_line("/etc/shadow", line, 0640);
		}
		text_free(&sh);
		if (err)
			goto out;
	}

	/* the primary group, unless the image has that gid */
	struct text gr;
	err = text_read("/etc/group", &gr);
	if (!err && text_find(&gr, NULL, 2, P.gid) < 0 && text_find(&gr, P.user, 0, 0) < 0) {
		snprintf(line, sizeof(line), "%s:x:%u:", P.user, P.gid);
		err = add_line("/etc/group", line, 0644);
		if (!err && access("/etc/gshadow", F_OK) == 0) {
			snprintf(line, sizeof(line), "%s:!::", P.user);
			err = add_line("/etc/gshadow", line, 0640);
		}
	}
	text_free(&gr);
	if (err)
		goto out;
	provision_sudo();
out:
	text_free(&pw);
	return err;
}

/* The image's own step: /bin/sh CREATE_USER with CONTAINER_* set. */
static int run_create_user(void)
{
	char user[96], uid[32], gid[32], home[USERS_PATH_MAX + 16], id[64], shell[64];
	char *const argv[] = { "/bin/sh", CREATE_USER, NULL };
	char *const env[] = { user, uid, gid, home, id, shell, SAFE_PATH, "HOME=/root", NULL };
	int st;
	pid_t pid;

	snprintf(user, sizeof(user), "CONTAINER_USER=%s", P.user);
	snprintf(uid, sizeof(uid), "CONTAINER_UID=%u", P.uid);
	snprintf(gid, sizeof(gid), "CONTAINER_GID=%u", P.gid);
	snprintf(home, sizeof(home), "CONTAINER_HOME=%s", P.home);
	snprintf(id, sizeof(id), "CONTAINER_MACHINE_ID=%s", P.machineid);
	snprintf(shell, sizeof(shell), "CONTAINER_SHELL=%s", login_shell());
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execve(argv[0], argv, env);
		say("cove-init: %s: exec /bin/sh: %s", CREATE_USER, strerror(errno));
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		say("cove-init: %s failed (status %d)", CREATE_USER,
		    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	return 0;
}

static void provision(void)
{
	char marker[128];
	int err = 0;

	if (access(MARKER, F_OK) == 0)
		return;
	if (P.machineid[0]) {
		char id[34];

		snprintf(id, sizeof(id), "%s\n", P.machineid);
		err = write_str("/etc/machine-id", id, 0444);
		if (err)
			say("cove-init: /etc/machine-id: %s", strerror(-err));
	}
	if (P.user[0]) {
		if (access(CREATE_USER, F_OK) == 0)
			err = run_create_user();
		else if (P.uid == 0)
			err = 0;	/* root is there */
		else
			err = provision_user();
		if (err) {
			say("cove-init: provisioning user %s: %s; trying again next boot", P.user,
			    strerror(-err));
			return;
		}
	}
	snprintf(marker, sizeof(marker), "user=%s uid=%u gid=%u\n", P.user, P.uid, P.gid);
	err = mkdirs(MARKER_DIR);
	if (!err)
		err = write_str(MARKER, marker, 0644);
	if (err)
		say("cove-init: %s: %s", MARKER, strerror(-err));
	sync();
}

/* ---- the agent and the hand-over ---- */

/* The agent binary from the initramfs in a memfd: it stays runnable after
 * the switch, and nothing of it is written to the disk. */
static int load_agent(void)
{
	struct stat st;
	int in, fd;

	in = open(AGENT_PATH, O_RDONLY | O_CLOEXEC);
	if (in < 0 || fstat(in, &st) < 0) {
		say("cove-init: %s: %s; no agent", AGENT_PATH, strerror(errno));
		return -1;
	}
	fd = memfd_create("cove-agent", MFD_CLOEXEC);
	if (fd < 0) {
		say("cove-init: memfd: %s; no agent", strerror(errno));
		close(in);
		return -1;
	}
	for (off_t off = 0; off < st.st_size;) {
		ssize_t n = sendfile(fd, in, &off, st.st_size - off);

		if (n <= 0) {
			say("cove-init: copy %s: %s; no agent", AGENT_PATH, strerror(errno));
			close(in);
			close(fd);
			return -1;
		}
	}
	close(in);
	return fd;
}

static void start_agent(int fd)
{
	char *const argv[] = { "cove-agent", NULL };
	char *const env[] = { SAFE_PATH, NULL };
	pid_t pid;

	if (fd < 0)
		return;
	pid = fork();
	if (pid < 0) {
		say("cove-init: fork the agent: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		setsid();
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			if (null > 2)
				close(null);
		}
		fexecve(fd, argv, env);
		say("cove-init: start the agent: %s", strerror(errno));
		_exit(127);
	}
	close(fd);
}

int main(int argc, char **argv)
{
	int agent;

	(void)argc;
	if (getpid() != 1) {
		fprintf(stderr, "cove-init: must run as PID 1, from the machine's initrd\n");
		return 2;
	}
	umask(022);
	mount_api("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
	console_fds();
	mount_api("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	mount_api("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
	parse_cmdline();
	agent = load_agent();

	switch_root();
	if (!executable("/sbin/init"))
		fatal("the image has no /sbin/init (%s): a machine needs an init system "
		      "(systemd, openrc or busybox init)", strerror(errno));
	grow_root();
	mount_api("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "gid=5,mode=0620,ptmxmode=0666");
	mount_api("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
	set_hostname();
	set_network();
	mount_shares();
	provision();
	local_home();
	start_agent(agent);

	argv[0] = "/sbin/init";
	execv("/sbin/init", argv);
	fatal("exec /sbin/init: %s", strerror(errno));
}
