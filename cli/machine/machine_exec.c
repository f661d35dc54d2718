#include "machine_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "fsutil.h"
#include "log.h"

#define ENV_FILE_MAX	(1 << 20)

/* Whether path is dir or under it; *rest is what follows dir ("" or "/…"). */
static bool under(const char *dir, const char *path, const char **rest)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	if (n == 1 && dir[0] == '/') {
		*rest = path[1] ? path : "";
		return true;
	}
	if (strncmp(path, dir, n) || (path[n] && path[n] != '/'))
		return false;
	*rest = path + n;
	return true;
}

const char *machine_exec_cwd(const struct machine *m, const char *home, const char *real_home,
			     const char *cwd, char *out, size_t size)
{
	const char *rest, *best = NULL;
	size_t best_len = 0;

	for (unsigned i = 0; i < m->n_mounts; i++) {
		size_t len = strlen(m->mounts[i].host);

		if (under(m->mounts[i].host, cwd, &rest) && (!best || len > best_len)) {
			best_len = len;
			if ((size_t)snprintf(out, size, "%s%s", m->mounts[i].guest, rest) < size)
				best = out;
		}
	}
	if (best)
		return best;
	if (m->home != CONFIG_HOME_NONE &&
	    (under(real_home, cwd, &rest) || under(home, cwd, &rest)) &&
	    (size_t)snprintf(out, size, "%s%s", home, rest) < size)
		return out;
	return NULL;
}

int machine_exec_user(const char *spec, struct agent_exec *x)
{
	unsigned long uid, gid;
	char *end;
	size_t n = strlen(spec);

	if (spec[0] >= '0' && spec[0] <= '9') {
		errno = 0;
		uid = strtoul(spec, &end, 10);
		gid = uid;
		if (!errno && *end == ':' && end[1] >= '0' && end[1] <= '9')
			gid = strtoul(end + 1, &end, 10);
		if (errno || *end || uid > 0xfffffffeul || gid > 0xfffffffeul)
			return cove_fail(-EINVAL, "--user \"%s\": use a name, UID or UID:GID", spec);
		x->user = NULL;
		x->uid = uid;
		x->gid = gid;
		return 0;
	}
	if (n == 0 || n >= AGENT_USER_MAX || spec[0] == '-')
		return cove_fail(-EINVAL, "--user \"%s\": not a user name", spec);
	for (size_t i = 0; i < n; i++) {
		char c = spec[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return cove_fail(-EINVAL, "--user \"%s\": not a user name", spec);
	}
	x->user = spec;
	return 0;
}

static bool env_name(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

int machine_env_add(struct machine_env *e, const char *kv, const char *what)
{
	const char *eq = strchr(kv, '=');
	size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
	char *item;

	if (!env_name(kv, n))
		return cove_fail(-EINVAL, "%s \"%s\": use NAME=VALUE or NAME (a name of letters, "
				 "digits and _)", what, kv);
	if (eq) {
		item = strdup(kv);
	} else {
		const char *v = getenv(kv);

		if (!v)
			return 0;
		if (asprintf(&item, "%s=%s", kv, v) < 0)
			item = NULL;
	}
	if (!item)
		return cove_fail(-ENOMEM, "out of memory");
	if (e->n + 2 > e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 16;
		char **v = realloc(e->v, cap * sizeof(*v));

		if (!v) {
			free(item);
			return cove_fail(-ENOMEM, "out of memory");
		}
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = item;
	e->v[e->n] = NULL;
	return 0;
}

int machine_env_file(struct machine_env *e, const char *path)
{
	char *buf, *line, *next, what[PATH_MAX + 32];
	unsigned lineno = 0;
	size_t len;
	int err = fsutil_read(path, ENV_FILE_MAX, &buf, &len);

	if (err == -ENOENT)
		return cove_fail(-ENOENT, "--env-file %s: No such file or directory", path);
	if (err)
		return err;
	if (memchr(buf, '\0', len)) {
		free(buf);
		return cove_fail(-EINVAL, "--env-file %s: not a text file", path);
	}
	for (line = buf; !err && line < buf + len; line = next) {
		char *end = strchr(line, '\n');

		lineno++;
		next = end ? end + 1 : buf + len;
		if (!end)
			end = buf + len;
		*end = '\0';
		if (end > line && end[-1] == '\r')
			end[-1] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		snprintf(what, sizeof(what), "%s:%u:", path, lineno);
		err = machine_env_add(e, line, what);
	}
	free(buf);
	return err;
}

void machine_env_free(struct machine_env *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->v[i]);
	free(e->v);
	e->v = NULL;
	e->n = e->cap = 0;
}

int machine_exec_connect(const struct machine *m, int timeout_ms)
{
	char path[PATH_MAX];
	int fd;

	machine_run_path(m, "vsock.sock", path, sizeof(path));
	fd = agent_connect(path, timeout_ms);
	if (fd >= 0)
		return fd;
	if (fd == -ETIMEDOUT)
		return cove_fail(fd, "machine %s: its agent did not answer within %d s (see 'cove "
				 "machine logs %s')", m->name, timeout_ms / 1000, m->name);
	if (fd == -EPROTONOSUPPORT)
		return cove_fail(fd, "machine %s: its agent speaks another protocol version (is "
				 "its initrd from another cove?)", m->name);
	return cove_fail(fd, "machine %s: agent: %s", m->name, strerror(-fd));
}

/* A guest path made absolute (relative ones are from home) into out. */
static int guest_abs(const char *home, const char *path, char *out, size_t size)
{
	int n = path[0] == '/' ? snprintf(out, size, "%s", path) :
		snprintf(out, size, "%s/%s", home, path);

	if (n < 0 || (size_t)n >= size)
		return cove_fail(-ENAMETOOLONG, "%s: path too long", path);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	if (!strcmp(out, "/"))
		return cove_fail(-EINVAL, "cannot copy / itself: name what is in it");
	return 0;
}

/* dirname and basename of an absolute path without trailing "/". */
static void split_path(const char *path, char *dir, size_t dsize, const char **base)
{
	const char *slash = strrchr(path, '/');

	*base = slash + 1;
	snprintf(dir, dsize, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

/* Run argv in m as root from home, with in_fd as stdin (when stdin) and
 * out_fd as stdout. The command's exit status into *status. */
static int exec_root(const struct machine *m, const char *home, char *const *argv, bool stdin,
		     int in_fd, int out_fd, int *status)
{
	struct agent_exec x = {
		.argv = argv, .cwd = home, .user = "root", .uid = 0, .gid = 0, .stdin = stdin,
	};
	int fd = machine_exec_connect(m, MACHINE_AGENT_TIMEOUT_MS), err;

	if (fd < 0)
		return fd;
	err = agent_exec(fd, &x, in_fd, out_fd, STDERR_FILENO, status);
	if (err)
		return cove_fail(err, "machine %s: %s: %s", m->name, argv[0], strerror(-err));
	return 0;
}

/* In a child: src (a host path, no trailing "/") as a tar stream on fd,
 * its entries named base/…, owners as numbers only. Exit status. */
static int tar_out(const char *src, const char *base, int fd)
{
	struct archive *disk = archive_read_disk_new(), *out = archive_write_new();
	size_t skip = strlen(src);
	char buf[65536];
	int rc = 0;

	archive_read_disk_set_symlink_physical(disk);
	archive_write_set_format_pax_restricted(out);
	if (archive_write_open_fd(out, fd) != ARCHIVE_OK || archive_read_disk_open(disk, src) !=
	    ARCHIVE_OK) {
		fprintf(stderr, "cove: cp: %s: %s\n", src, archive_error_string(disk) ?:
			archive_error_string(out));
		return 1;
	}
	for (;;) {
		struct archive_entry *e = archive_entry_new();
		char name[PATH_MAX * 2];
		int r = archive_read_next_header2(disk, e);

		if (r == ARCHIVE_EOF) {
			archive_entry_free(e);
			break;
		}
		if (r < ARCHIVE_WARN) {
			fprintf(stderr, "cove: cp: %s\n", archive_error_string(disk));
			archive_entry_free(e);
			rc = 1;
			break;
		}
		archive_read_disk_descend(disk);
		snprintf(name, sizeof(name), "%s%s", base, archive_entry_pathname(e) + skip);
		archive_entry_set_pathname(e, name);
		archive_entry_set_uname(e, NULL);
		archive_entry_set_gname(e, NULL);
		if (archive_write_header(out, e) < ARCHIVE_WARN) {
			fprintf(stderr, "cove: cp: %s: %s\n", name, archive_error_string(out));
			archive_entry_free(e);
			rc = 1;
			break;
		}
		if (archive_entry_filetype(e) == AE_IFREG && archive_entry_size(e) > 0) {
			int in = open(archive_entry_sourcepath(e), O_RDONLY | O_CLOEXEC);
			ssize_t n = 0;

			while (in >= 0 && (n = read(in, buf, sizeof(buf))) > 0)
				if (archive_write_data(out, buf, n) < 0)
					break;
			if (in < 0 || n != 0) {
				fprintf(stderr, "cove: cp: %s: %s\n", archive_entry_sourcepath(e),
					in < 0 ? strerror(errno) : "read failed");
				rc = 1;
			}
			if (in >= 0)
				close(in);
		}
		archive_entry_free(e);
		if (rc)
			break;
	}
	if (archive_write_close(out) != ARCHIVE_OK)
		rc = 1;
	archive_write_free(out);
	archive_read_free(disk);
	return rc;
}

/* The guest side of copy_in: $1 is the destination, $2 the name the
 * stream's entries start with. */
static const char copy_in_script[] =
	"dst=$1 base=$2\n"
	"if [ -d \"$dst\" ]; then cd \"$dst\" && exec tar -xf -; fi\n"
	"parent=${dst%/*}; parent=${parent:-/}\n"
	"[ -d \"$parent\" ] || { echo \"cove: cp: $parent: no such directory in the machine\" >&2; "
	"exit 1; }\n"
	"tmp=$(mktemp -d \"$parent/.cove-cp.XXXXXX\") || exit 1\n"
	"cd \"$tmp\" && tar -xf - && mv \"$tmp/$base\" \"$dst\"\n"
	"rc=$?\n"
	"cd / && rm -rf \"$tmp\"\n"
	"exit $rc\n";

int machine_exec_copy_in(const struct machine *m, const char *home, const char *src,
			 const char *dst)
{
	char host[PATH_MAX], guest[PATH_MAX];
	const char *base;
	struct stat st;
	int p[2], status = 0, wstatus, err;
	pid_t child;

	if ((size_t)snprintf(host, sizeof(host), "%s", src) >= sizeof(host))
		return cove_fail(-ENAMETOOLONG, "%s: path too long", src);
	for (size_t n = strlen(host); n > 1 && host[n - 1] == '/'; n--)
		host[n - 1] = '\0';
	if (lstat(host, &st) < 0)
		return cove_fail(-errno, "%s: %s", src, strerror(errno));
	base = strrchr(host, '/') ? strrchr(host, '/') + 1 : host;
	if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, ".."))
		return cove_fail(-EINVAL, "%s: name the files to copy, not the directory itself",
				 src);
	err = guest_abs(home, dst, guest, sizeof(guest));
	if (err)
		return err;
	if (pipe2(p, O_CLOEXEC) < 0)
		return cove_fail(-errno, "pipe: %s", strerror(errno));
	fflush(NULL);
	child = fork();
	if (child == 0) {
		close(p[0]);
		_exit(tar_out(host, base, p[1]));
	}
	close(p[1]);
	if (child < 0) {
		close(p[0]);
		return cove_fail(-errno, "fork: %s", strerror(errno));
	}
	{
		char *argv[] = { "sh", "-c", (char *)copy_in_script, "cove-cp", guest, (char *)base,
				 NULL };

		err = exec_root(m, home, argv, true, p[0], STDOUT_FILENO, &status);
	}
	close(p[0]);
	waitpid(child, &wstatus, 0);
	if (err)
		return err;
	if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus))
		return cove_fail(-EIO, "cp: reading %s failed", src);
	if (status)
		return cove_fail(-EIO, "cp: writing %s in machine %s failed (tar exited %d)", dst,
				 m->name, status);
	return 0;
}

/* Whether an entry name from the guest is base or under it (after any
 * leading "./"); *name then points at it. */
static bool entry_ok(const char *raw, const char *base, const char **name)
{
	size_t n = strlen(base);

	while (raw[0] == '.' && raw[1] == '/')
		raw += 2;
	*name = raw;
	return !strncmp(raw, base, n) && (raw[n] == '\0' || raw[n] == '/');
}

int machine_exec_untar(int fd, const char *dir, const char *base)
{
	char path[PATH_MAX * 2];
	struct archive *in, *disk;
	struct archive_entry *e;
	int err = 0, r;

	if (chdir(dir) < 0)
		return cove_fail(-errno, "%s: %s", dir, strerror(errno));
	in = archive_read_new();
	disk = archive_write_disk_new();
	archive_read_support_format_tar(in);
	archive_read_support_format_empty(in);	/* nothing sent: nothing made */
	archive_write_disk_set_options(disk, ARCHIVE_EXTRACT_TIME |
				       ARCHIVE_EXTRACT_SECURE_SYMLINKS |
				       ARCHIVE_EXTRACT_SECURE_NODOTDOT |
				       ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS);
	if (archive_read_open_fd(in, fd, 65536) != ARCHIVE_OK)
		err = cove_fail(-EIO, "%s", archive_error_string(in));
	while (!err && (r = archive_read_next_header(in, &e)) != ARCHIVE_EOF) {
		const char *name;
		unsigned type;

		if (r != ARCHIVE_OK) {
			err = cove_fail(-EINVAL, "%s", archive_error_string(in));
			break;
		}
		type = archive_entry_filetype(e);
		if (!entry_ok(archive_entry_pathname(e), base, &name)) {
			err = cove_fail(-EINVAL, "the machine sent \"%s\", which is not under %s: "
					"refused", archive_entry_pathname(e), base);
			break;
		}
		/* devices and fifos are not made here (a hard link has no type) */
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK &&
		    !archive_entry_hardlink(e))
			continue;
		/* name points into the entry: copy it before the entry changes */
		snprintf(path, sizeof(path), "%s", name);
		archive_entry_set_pathname(e, path);
		name = archive_entry_pathname(e);
		if (archive_entry_hardlink(e)) {
			const char *target;

			if (!entry_ok(archive_entry_hardlink(e), base, &target)) {
				err = cove_fail(-EINVAL, "the machine sent a link to \"%s\", which is "
						"not under %s: refused", archive_entry_hardlink(e), base);
				break;
			}
			snprintf(path, sizeof(path), "%s", target);
			archive_entry_set_hardlink(e, path);
		}
		if (archive_read_extract2(in, e, disk) != ARCHIVE_OK)
			err = cove_fail(-EINVAL, "%s: %s", name, archive_error_string(in));
	}
	if (archive_write_close(disk) != ARCHIVE_OK && !err)
		err = cove_fail(-EIO, "%s", archive_error_string(disk));
	/* the rest of the stream, so that the guest's tar is not cut off */
	while (read(fd, (char[4096]){ 0 }, 4096) > 0)
		;
	archive_write_free(disk);
	archive_read_free(in);
	return err;
}

/* The guest side of copy_out: $1 the directory, $2 "./NAME" in it; a
 * missing one exits COPY_OUT_MISSING without a word (the host says it). */
#define COPY_OUT_MISSING	44
#define STR(x)			#x
#define XSTR(x)			STR(x)
static const char copy_out_script[] =
	"cd \"$1\" 2>/dev/null && { [ -e \"$2\" ] || [ -L \"$2\" ]; } || exit "
	XSTR(COPY_OUT_MISSING) "\n"
	"exec tar -cf - \"$2\"\n";

int machine_exec_copy_out(const struct machine *m, const char *home, const char *src,
			  const char *dst)
{
	char guest[PATH_MAX], gdir[PATH_MAX], into[PATH_MAX], target[PATH_MAX], rel[PATH_MAX + 2];
	const char *base;
	bool is_dir;
	struct stat st;
	int p[2], status = 0, wstatus, err;
	pid_t child;

	err = guest_abs(home, src, guest, sizeof(guest));
	if (err)
		return err;
	split_path(guest, gdir, sizeof(gdir), &base);
	if ((size_t)snprintf(target, sizeof(target), "%s", dst) >= sizeof(target))
		return cove_fail(-ENAMETOOLONG, "%s: path too long", dst);
	for (size_t n = strlen(target); n > 1 && target[n - 1] == '/'; n--)
		target[n - 1] = '\0';
	is_dir = stat(target, &st) == 0 && S_ISDIR(st.st_mode);
	if (is_dir) {
		snprintf(into, sizeof(into), "%s", target);
	} else {
		char parent[PATH_MAX], *slash;

		snprintf(parent, sizeof(parent), "%s", target);
		slash = strrchr(parent, '/');
		if (slash)
			*(slash == parent ? slash + 1 : slash) = '\0';
		else
			strcpy(parent, ".");
		if ((size_t)snprintf(into, sizeof(into), "%s/.cove-cp.XXXXXX", parent) >=
		    sizeof(into))
			return cove_fail(-ENAMETOOLONG, "%s: path too long", dst);
		if (!mkdtemp(into))
			return cove_fail(-errno, "%s: %s", parent, strerror(errno));
	}
	snprintf(rel, sizeof(rel), "./%s", base);
	if (pipe2(p, O_CLOEXEC) < 0) {
		err = cove_fail(-errno, "pipe: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	child = fork();
	if (child == 0) {
		close(p[1]);
		if (machine_exec_untar(p[0], into, base)) {
			fprintf(stderr, "cove: cp: %s\n", cove_last_error());
			_exit(1);
		}
		_exit(0);
	}
	close(p[0]);
	if (child < 0) {
		close(p[1]);
		err = cove_fail(-errno, "fork: %s", strerror(errno));
		goto out;
	}
	{
		char *argv[] = { "sh", "-c", (char *)copy_out_script, "cove-cp", gdir, rel, NULL };

		err = exec_root(m, home, argv, false, STDIN_FILENO, p[1], &status);
	}
	close(p[1]);
	waitpid(child, &wstatus, 0);
	if (!err && status == COPY_OUT_MISSING)
		err = cove_fail(-ENOENT, "cp: %s:%s: No such file or directory", m->name, guest);
	else if (!err && status)
		err = cove_fail(-EIO, "cp: reading %s in machine %s failed (tar exited %d)", src,
				m->name, status);
	if (!err && (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus)))
		err = cove_fail(-EIO, "cp: writing %s failed", dst);
	if (!err && !is_dir) {
		char from[PATH_MAX * 2];

		snprintf(from, sizeof(from), "%s/%s", into, base);
		if (rename(from, target) < 0)
			err = cove_fail(-errno, "%s: %s", dst, strerror(errno));
	}
out:
	if (!is_dir) {
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s", cove_last_error());
		fsutil_rmtree(into);
		if (err)
			cove_fail(err, "%s", msg);
	}
	return err;
}
