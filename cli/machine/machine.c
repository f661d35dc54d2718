#include "machine.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fsutil.h"
#include "log.h"

#define MACHINE_JSON		"machine.json"
#define MACHINE_JSON_MAX	(1 << 20)
#define MACHINE_VERSION		1
#define DEFAULT_FILE		".default"
#define STORE_LOCK		".lock"
#define DELETING_PREFIX		".deleting-"
#define CMDLINE_MAX		(64 << 10)

int machine_user(struct machine_user *u)
{
	struct passwd *pw = getpwuid(getuid());
	const char *name = pw ? pw->pw_name : getenv("USER"), *home = getenv("HOME");

	u->uid = getuid();
	u->gid = getgid();
	if (!name || !name[0] || strlen(name) >= sizeof(u->name))
		return cove_fail(-ENOENT, "who is uid %u? (no passwd entry and no $USER)",
				 (unsigned)u->uid);
	strcpy(u->name, name);
	if (!home || home[0] != '/')
		home = pw ? pw->pw_dir : NULL;
	if (!home || home[0] != '/' || strlen(home) >= sizeof(u->home))
		return cove_fail(-ENOENT, "no home directory for %s (set $HOME)", u->name);
	strcpy(u->home, home);
	/* "/home/me/" and "/home/me" are the same home */
	for (size_t n = strlen(u->home); n > 1 && u->home[n - 1] == '/'; n--)
		u->home[n - 1] = '\0';
	return 0;
}

int machine_name_check(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > MACHINE_NAME_MAX)
		return cove_fail(-EINVAL, "invalid machine name \"%s\": 1 to %d characters",
				 name, MACHINE_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return cove_fail(-EINVAL, "invalid machine name \"%s\": use lowercase letters, "
					 "digits and \"-\" (a DNS label)", name);
	}
	if (name[0] == '-' || name[n - 1] == '-')
		return cove_fail(-EINVAL, "invalid machine name \"%s\": it may not start or end "
				 "with \"-\"", name);
	return 0;
}

void machine_name_from_image(const char *image, char out[MACHINE_NAME_MAX + 1])
{
	const char *slash = strrchr(image, '/'), *base = slash ? slash + 1 : image;
	size_t len = strcspn(base, "@"), n = 0;
	const char *colon = memchr(base, ':', len);
	char tmp[2 * MACHINE_NAME_MAX];
	bool dash = false;

	/* "repo:tag" -> "repo-tag", without a ":latest" */
	if (colon && (size_t)(base + len - colon) == 7 && !strncmp(colon, ":latest", 7))
		len = colon - base;
	for (size_t i = 0; i < len && n < MACHINE_NAME_MAX - 4; i++) {
		char c = base[i];

		if (c >= 'A' && c <= 'Z')
			c += 'a' - 'A';
		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
			if (dash && n > 0)
				tmp[n++] = '-';
			dash = false;
			tmp[n++] = c;
		} else {
			dash = true;
		}
	}
	while (n > 0 && tmp[n - 1] == '-')
		n--;
	if (n == 0) {
		strcpy(out, "machine");
		return;
	}
	memcpy(out, tmp, n);
	out[n] = '\0';
}

/* $XDG_DATA_HOME/cove/machines */
static int data_root(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, size, "%s/cove/machines", xdg);
	else if (home && home[0] == '/')
		n = snprintf(buf, size, "%s/.local/share/cove/machines", home);
	else
		return cove_fail(-EINVAL, "neither XDG_DATA_HOME nor HOME is set");
	if (n >= (int)size)
		return cove_fail(-ENAMETOOLONG, "the machines' path is too long");
	return 0;
}

/* $XDG_RUNTIME_DIR/cove, or /tmp/cove-UID */
static int run_root(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (xdg && xdg[0] == '/')
		n = snprintf(buf, size, "%s/cove", xdg);
	else
		n = snprintf(buf, size, "/tmp/cove-%u", (unsigned)getuid());
	if (n >= (int)size)
		return cove_fail(-ENAMETOOLONG, "%s/cove: the runtime directory's path is too long "
				 "for sockets (set XDG_RUNTIME_DIR to a shorter path)", xdg);
	return 0;
}

int machine_init(struct machine *m, const char *name)
{
	char root[PATH_MAX];
	int err;

	snprintf(m->name, sizeof(m->name), "%s", name);
	err = data_root(root, sizeof(root));
	if (err)
		return err;
	if ((size_t)snprintf(m->dir, sizeof(m->dir), "%s/%s", root, m->name) >= sizeof(m->dir))
		return cove_fail(-ENAMETOOLONG, "%s: path too long", root);
	err = run_root(root, sizeof(root));
	if (err)
		return err;
	/* vsock.sock must fit cove-vmm's limit */
	if (strlen(root) + 1 + strlen(m->name) + strlen("/vsock.sock") > COVE_VSOCK_PATH_MAX)
		return cove_fail(-ENAMETOOLONG, "%s/%s/vsock.sock is longer than %d bytes (set "
				 "XDG_RUNTIME_DIR to a shorter path)", root, m->name,
				 COVE_VSOCK_PATH_MAX);
	return snprintf(m->run, sizeof(m->run), "%s/%s", root, m->name) < (int)sizeof(m->run) ?
	       0 : -ENAMETOOLONG;
}

void machine_path(const struct machine *m, const char *file, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", m->dir, file);
}

void machine_run_path(const struct machine *m, const char *file, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", m->run, file);
}

/* The runtime root must be ours alone: in /tmp anyone could have made it. */
static int make_run_dir(const struct machine *m)
{
	char path[sizeof(m->run)], *slash;
	struct stat st;
	int err;

	snprintf(path, sizeof(path), "%s", m->run);
	slash = strrchr(path, '/');
	*slash = '\0';
	err = fsutil_mkdirs(path, 0700);
	if (err)
		return cove_fail(err, "%s: %s", path, strerror(-err));
	if (lstat(path, &st) < 0)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077))
		return cove_fail(-EPERM, "%s: not a directory of ours with mode 0700: refusing "
				 "to keep sockets there", path);
	if (mkdir(m->run, 0700) < 0 && errno != EEXIST)
		return cove_fail(-errno, "%s: %s", m->run, strerror(errno));
	return 0;
}

int machine_lock(const struct machine *m, bool wait)
{
	char path[PATH_MAX];
	bool said = false;

	machine_run_path(m, "lock", path, sizeof(path));
	for (;;) {
		struct stat a, b;
		int fd, err = make_run_dir(m);

		if (err)
			return err;
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == ENOENT)
			continue;	/* a delete removed the directory meanwhile */
		if (fd < 0)
			return cove_fail(-errno, "%s: %s", path, strerror(errno));
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			err = -errno;
			if (err != -EWOULDBLOCK || !wait) {
				close(fd);
				return err == -EWOULDBLOCK ?
					cove_fail(-EBUSY, "machine %s is busy (another cove command "
						  "is working on it)", m->name) :
					cove_fail(err, "%s: %s", path, strerror(-err));
			}
			if (!said)
				fprintf(stderr, "cove: waiting for another cove command on machine "
					"%s\n", m->name);
			said = true;
			if (flock(fd, LOCK_EX) < 0) {
				err = cove_fail(-errno, "%s: %s", path, strerror(errno));
				close(fd);
				return err;
			}
		}
		/* the file we locked must still be the lock file */
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino)
			return fd;
		close(fd);
	}
}

void machine_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

static bool is_hex32(const char *s)
{
	if (strlen(s) != 32)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

static int bad_json(const struct machine *m, const char *what)
{
	return cove_fail(-EINVAL, "%s/%s: %s", m->dir, MACHINE_JSON, what);
}

/* Fill m from machine.json's object, checking every value. */
static int from_json(struct machine *m, json_t *j)
{
	const char *name, *image, *digest, *created, *home, *kernel, *id, *network = "auto";
	json_int_t cpus, mem, disk, version, bridge_host = 0;
	json_t *mounts, *ports, *v;
	json_error_t e;
	struct tm tm;
	size_t i;
	char *end;

	/* network and bridgeHost came later: a machine made before has neither */
	if (json_unpack_ex(j, &e, JSON_STRICT, "{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s?s,s?I,"
			   "s:s,s:s,s:o,s:o}", "version", &version, "name", &name, "image", &image,
			   "imageDigest", &digest, "created", &created, "cpus", &cpus,
			   "memoryMiB", &mem, "diskSizeMiB", &disk, "homeMount", &home,
			   "network", &network, "bridgeHost", &bridge_host,
			   "kernel", &kernel, "machineId", &id, "mounts", &mounts,
			   "ports", &ports))
		return bad_json(m, e.text);
	if (version != MACHINE_VERSION)
		return bad_json(m, "unknown version (made by a newer cove?)");
	if (strcmp(name, m->name))
		return bad_json(m, "the name does not match the directory");
	if (strlen(image) >= sizeof(m->image) || strlen(digest) >= sizeof(m->image_digest))
		return bad_json(m, "image too long");
	strcpy(m->image, image);
	strcpy(m->image_digest, digest);
	memset(&tm, 0, sizeof(tm));
	end = strptime(created, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!end || *end)
		return bad_json(m, "bad created time");
	m->created = timegm(&tm);
	if (cpus < 1 || cpus > CONFIG_CPUS_MAX)
		return bad_json(m, "bad cpus");
	m->cpus = cpus;
	if (mem < (json_int_t)(CONFIG_MEMORY_MIN >> 20) || mem > (1ll << 30))
		return bad_json(m, "bad memoryMiB");
	m->memory = (uint64_t)mem << 20;
	if (disk < (json_int_t)(CONFIG_DISK_MIN >> 20) || disk > (1ll << 30))
		return bad_json(m, "bad diskSizeMiB");
	m->disk_size = (uint64_t)disk << 20;
	if (config_parse_home("homeMount", home, &m->home))
		return bad_json(m, "bad homeMount");
	if (config_parse_network("network", network, &m->network))
		return bad_json(m, "bad network");
	if (bridge_host != 0 && (bridge_host < 2 || bridge_host > 254))
		return bad_json(m, "bad bridgeHost");
	m->bridge_host = bridge_host;
	if ((kernel[0] && kernel[0] != '/') || strlen(kernel) >= sizeof(m->kernel))
		return bad_json(m, "bad kernel");
	strcpy(m->kernel, kernel);
	if (!is_hex32(id))
		return bad_json(m, "bad machineId");
	strcpy(m->machine_id, id);
	if (!json_is_array(mounts) || json_array_size(mounts) > MACHINE_MOUNTS_MAX)
		return bad_json(m, "bad mounts");
	json_array_foreach(mounts, i, v) {
		const char *host, *guest;
		int ro;

		if (json_unpack_ex(v, &e, JSON_STRICT, "{s:s,s:s,s:b}", "host", &host, "guest",
				   &guest, "readOnly", &ro) || host[0] != '/' || guest[0] != '/' ||
		    strlen(host) >= sizeof(m->mounts[i].host) ||
		    strlen(guest) >= sizeof(m->mounts[i].guest))
			return bad_json(m, "bad mounts");
		strcpy(m->mounts[i].host, host);
		strcpy(m->mounts[i].guest, guest);
		m->mounts[i].ro = ro;
	}
	m->n_mounts = json_array_size(mounts);
	if (!json_is_array(ports) || json_array_size(ports) > MACHINE_PORTS_MAX)
		return bad_json(m, "bad ports");
	json_array_foreach(ports, i, v) {
		json_int_t h, g;

		if (json_unpack_ex(v, &e, JSON_STRICT, "{s:I,s:I}", "host", &h, "guest", &g) ||
		    h < 1 || h > 65535 || g < 1 || g > 65535)
			return bad_json(m, "bad ports");
		m->ports[i].host = h;
		m->ports[i].guest = g;
	}
	m->n_ports = json_array_size(ports);
	return 0;
}

int machine_load(const char *name, struct machine *m)
{
	char path[PATH_MAX], *buf;
	json_error_t e;
	json_t *j;
	size_t len;
	int err;

	if (machine_name_check(name))
		return cove_fail(-ENOENT, "no such machine: \"%s\"", name);
	memset(m, 0, sizeof(*m));
	err = machine_init(m, name);
	if (err)
		return err;
	machine_path(m, MACHINE_JSON, path, sizeof(path));
	err = fsutil_read(path, MACHINE_JSON_MAX, &buf, &len);
	if (err == -ENOENT)
		return cove_fail(-ENOENT, "no such machine: %s (see 'cove machine ls')", name);
	if (err)
		return err;
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
	free(buf);
	if (!j)
		return cove_fail(-EINVAL, "%s: line %d: %s", path, e.line, e.text);
	err = from_json(m, j);
	json_decref(j);
	return err;
}

int machine_save(const struct machine *m)
{
	char path[PATH_MAX], created[32];
	time_t t = m->created;
	json_t *j, *mounts = json_array(), *ports = json_array();
	char *text;
	int err;

	strftime(created, sizeof(created), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	for (unsigned i = 0; i < m->n_mounts; i++)
		json_array_append_new(mounts, json_pack("{s:s,s:s,s:b}", "host", m->mounts[i].host,
							"guest", m->mounts[i].guest,
							"readOnly", m->mounts[i].ro));
	for (unsigned i = 0; i < m->n_ports; i++)
		json_array_append_new(ports, json_pack("{s:i,s:i}", "host", m->ports[i].host,
						       "guest", m->ports[i].guest));
	j = json_pack("{s:i,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:s,s:s,s:i,s:s,s:s,s:o,s:o}",
		      "version", MACHINE_VERSION, "name", m->name, "image", m->image,
		      "imageDigest", m->image_digest, "created", created, "cpus", (int)m->cpus,
		      "memoryMiB", (json_int_t)(m->memory >> 20),
		      "diskSizeMiB", (json_int_t)(m->disk_size >> 20),
		      "homeMount", config_home_name(m->home),
		      "network", config_network_name(m->network), "bridgeHost", (int)m->bridge_host,
		      "kernel", m->kernel,
		      "machineId", m->machine_id, "mounts", mounts, "ports", ports);
	text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(j);
	if (!text)
		return cove_fail(-ENOMEM, "machine %s: cannot encode machine.json", m->name);
	machine_path(m, MACHINE_JSON, path, sizeof(path));
	/* one line more, for people who cat it */
	text = realloc(text, strlen(text) + 2);
	if (!text)
		return cove_fail(-ENOMEM, "out of memory");
	strcat(text, "\n");
	err = fsutil_write_atomic(path, text, strlen(text), 0600);
	free(text);
	return err;
}

static bool has_json(const struct machine *m)
{
	char path[PATH_MAX];

	machine_path(m, MACHINE_JSON, path, sizeof(path));
	return access(path, F_OK) == 0;
}

/* A directory left by a create that was killed: remove it if no command
 * holds the machine's lock. */
static void clean_leftover(const char *name)
{
	struct machine *m = malloc(sizeof(*m));
	int fd;

	if (!m)
		return;
	if (!machine_init(m, name)) {
		fd = machine_lock(m, false);
		if (fd >= 0) {
			if (!has_json(m))
				fsutil_rmtree(m->dir);
			machine_unlock(fd);
		}
	}
	free(m);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

int machine_list(char (**names)[MACHINE_NAME_MAX + 1], size_t *n)
{
	char root[PATH_MAX], path[PATH_MAX * 2];
	char (*list)[MACHINE_NAME_MAX + 1] = NULL;
	size_t count = 0, cap = 0;
	struct dirent *d;
	DIR *dir;
	int err = data_root(root, sizeof(root));

	*names = NULL;
	*n = 0;
	if (err)
		return err;
	dir = opendir(root);
	if (!dir)
		return errno == ENOENT ? 0 : cove_fail(-errno, "%s: %s", root, strerror(errno));
	while ((d = readdir(dir))) {
		if (!strncmp(d->d_name, DELETING_PREFIX, strlen(DELETING_PREFIX))) {
			/* a delete that was killed half-way */
			snprintf(path, sizeof(path), "%s/%s", root, d->d_name);
			fsutil_rmtree(path);
			continue;
		}
		if (d->d_name[0] == '.' || strlen(d->d_name) > MACHINE_NAME_MAX ||
		    machine_name_check(d->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s/%s", root, d->d_name, MACHINE_JSON);
		if (access(path, F_OK) < 0) {
			clean_leftover(d->d_name);
			continue;
		}
		if (count == cap) {
			void *grown = realloc(list, (cap = cap ? 2 * cap : 16) * sizeof(*list));

			if (!grown) {
				free(list);
				closedir(dir);
				return cove_fail(-ENOMEM, "out of memory");
			}
			list = grown;
		}
		strcpy(list[count++], d->d_name);
	}
	closedir(dir);
	cove_clear_error();
	if (count)
		qsort(list, count, sizeof(*list), cmp_names);
	*names = list;
	*n = count;
	return 0;
}

int machine_store_path(const char *file, char *buf, size_t size)
{
	char root[PATH_MAX];
	int err = data_root(root, sizeof(root));

	if (err)
		return err;
	err = fsutil_mkdirs(root, 0700);
	if (err)
		return cove_fail(err, "%s: %s", root, strerror(-err));
	return (size_t)snprintf(buf, size, "%s/%s", root, file) < size ? 0 :
	       cove_fail(-ENAMETOOLONG, "%s: path too long", root);
}

int machine_default_get(char name[MACHINE_NAME_MAX + 1])
{
	char path[PATH_MAX], *buf;
	struct machine *m;
	size_t len;
	int err = machine_store_path(DEFAULT_FILE, path, sizeof(path));

	name[0] = '\0';
	if (err)
		return err;
	err = fsutil_read(path, 256, &buf, &len);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	len = strcspn(buf, "\n");
	buf[len] = '\0';
	m = malloc(sizeof(*m));
	if (m && len <= MACHINE_NAME_MAX && !machine_name_check(buf) && !machine_init(m, buf) &&
	    has_json(m))
		strcpy(name, buf);
	cove_clear_error();
	free(m);
	free(buf);
	return 0;
}

int machine_default_set(const char *name)
{
	char path[PATH_MAX], text[MACHINE_NAME_MAX + 2];
	int err = machine_store_path(DEFAULT_FILE, path, sizeof(path));

	if (err)
		return err;
	if (!name[0])
		return unlink(path) < 0 && errno != ENOENT ?
			cove_fail(-errno, "%s: %s", path, strerror(errno)) : 0;
	snprintf(text, sizeof(text), "%s\n", name);
	return fsutil_write_atomic(path, text, strlen(text), 0600);
}

int machine_store_lock(void)
{
	char path[PATH_MAX];
	int fd, err = machine_store_path(STORE_LOCK, path, sizeof(path));

	if (err)
		return err;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		err = cove_fail(-errno, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return err;
	}
	return fd;
}

int machine_default_claim(const char *name)
{
	char cur[MACHINE_NAME_MAX + 1];
	int fd = machine_store_lock(), err;

	if (fd < 0)
		return fd;
	err = machine_default_get(cur);
	if (!err && !cur[0])
		err = machine_default_set(name);
	machine_unlock(fd);
	return err;
}

int machine_resolve(const char *name, struct machine *m)
{
	char def[MACHINE_NAME_MAX + 1];
	int err;

	if (name)
		return machine_load(name, m);
	err = machine_default_get(def);
	if (err)
		return err;
	if (!def[0])
		return cove_fail(-ENOENT, "no default machine: name one, or choose one with 'cove "
				 "machine set-default NAME'");
	return machine_load(def, m);
}

/* Whether pid's command line is cove-vmm with --api api. */
static bool is_our_vmm(pid_t pid, const char *api)
{
	char path[64], *buf, *p, *end;
	const char *argv0;
	size_t len;
	bool ok = false;
	int err;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	err = fsutil_read(path, CMDLINE_MAX, &buf, &len);
	cove_clear_error();
	if (err)
		return false;
	/* /proc files have no size: fsutil_read got what read returned */
	end = buf + len;
	argv0 = strrchr(buf, '/') ? strrchr(buf, '/') + 1 : buf;
	if (len && !strcmp(argv0, "cove-vmm")) {
		for (p = buf; p < end; p += strlen(p) + 1) {
			if (!strcmp(p, "--api") && p + strlen(p) + 1 < end &&
			    !strcmp(p + strlen(p) + 1, api)) {
				ok = true;
				break;
			}
		}
	}
	free(buf);
	return ok;
}

pid_t machine_vmm_pid(const struct machine *m, bool clean)
{
	static const char *const stale[] = { "vmm.pid", "api.sock", "vsock.sock", "net" };
	char path[PATH_MAX], api[PATH_MAX], *buf, *end;
	size_t len;
	long pid = 0;

	machine_run_path(m, "vmm.pid", path, sizeof(path));
	machine_run_path(m, "api.sock", api, sizeof(api));
	if (!fsutil_read(path, 64, &buf, &len)) {
		pid = strtol(buf, &end, 10);
		if (end == buf || (*end && *end != '\n') || pid < 1 || pid > INT32_MAX)
			pid = 0;
		free(buf);
	}
	cove_clear_error();
	if (pid && is_our_vmm(pid, api))
		return pid;
	for (size_t i = 0; clean && i < sizeof(stale) / sizeof(stale[0]); i++) {
		machine_run_path(m, stale[i], path, sizeof(path));
		unlink(path);
	}
	return 0;
}

int machine_remove(const struct machine *m)
{
	char root[PATH_MAX], gone[PATH_MAX + 64], def[MACHINE_NAME_MAX + 1];
	int err = data_root(root, sizeof(root));

	if (err)
		return err;
	if ((size_t)snprintf(gone, sizeof(gone), "%s/%s%s-%d", root, DELETING_PREFIX, m->name,
			     (int)getpid()) >= sizeof(gone))
		return cove_fail(-ENAMETOOLONG, "%s: path too long", root);
	if (rename(m->dir, gone) < 0)
		return cove_fail(-errno, "removing %s: %s", m->dir, strerror(errno));
	err = fsutil_rmtree(gone);
	if (!err)
		err = fsutil_rmtree(m->run);
	if (!err && !machine_default_get(def) && !def[0])
		err = machine_default_set("");
	return err;
}

int machine_prepare_dir(const struct machine *m)
{
	char path[PATH_MAX];
	int err;

	if (has_json(m))
		return cove_fail(-EEXIST, "machine %s already exists", m->name);
	err = fsutil_rmtree(m->dir);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s", m->dir);
	err = fsutil_mkdirs(path, 0700);
	return err ? cove_fail(err, "%s: %s", m->dir, strerror(-err)) : 0;
}
