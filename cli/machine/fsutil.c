#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

int fsutil_mkdirs(char *path, mode_t mode)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, mode) < 0 && errno != EEXIST) {
			int err = -errno;

			*p = '/';
			return err;
		}
		*p = '/';
	}
	return mkdir(path, mode) < 0 && errno != EEXIST ? -errno : 0;
}

int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *p = data;
	char *slash;
	int fd, dfd, err = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= sizeof(tmp))
		return cove_fail(-ENAMETOOLONG, "%s: path too long", path);
	fd = mkstemp(tmp);
	if (fd < 0)
		return cove_fail(-errno, "%s: %s", tmp, strerror(errno));
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			break;
		}
		p += n;
		len -= n;
	}
	if (!err && (fchmod(fd, mode) < 0 || fsync(fd) < 0))
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		unlink(tmp);
		return cove_fail(err, "writing %s: %s", path, strerror(-err));
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	dfd = open(slash && dir[0] ? dir : slash ? "/" : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	return 0;
}

int fsutil_read(const char *path, size_t max, char **buf, size_t *len)
{
	size_t n = 0, cap = 4096;
	struct stat st;
	char *b;
	int err, fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? -ENOENT : cove_fail(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return cove_fail(-EINVAL, "%s: not a regular file", path);
	}
	/* read to the end: files in /proc say they are empty */
	b = malloc(cap);
	for (;;) {
		ssize_t r;

		if (!b) {
			close(fd);
			return cove_fail(-ENOMEM, "out of memory");
		}
		if (n + 1 == cap) {
			char *grown = cap > max ? NULL : realloc(b, cap * 2);

			if (!grown) {
				err = cap > max ? cove_fail(-EFBIG, "%s: larger than %zu bytes", path, max) :
				      cove_fail(-ENOMEM, "out of memory");
				free(b);
				close(fd);
				return err;
			}
			b = grown;
			cap *= 2;
		}
		r = read(fd, b + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = cove_fail(-errno, "%s: %s", path, strerror(errno));
			free(b);
			close(fd);
			return err;
		}
		if (r == 0)
			break;
		n += r;
	}
	close(fd);
	if (n > max) {
		free(b);
		return cove_fail(-EFBIG, "%s: larger than %zu bytes", path, max);
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

static int rm_err;	/* why rm_one stopped the walk */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT) {
		rm_err = cove_fail(-errno, "removing %s: %s", path, strerror(errno));
		return 1;
	}
	return 0;
}

int fsutil_rmtree(const char *path)
{
	struct stat st;
	int r;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : cove_fail(-errno, "%s: %s", path, strerror(errno));
	rm_err = 0;
	if (!S_ISDIR(st.st_mode))
		return rm_one(path, &st, FTW_F, NULL) ? rm_err : 0;
	r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (r == 1)
		return rm_err;
	return r < 0 ? cove_fail(-errno, "removing %s: %s", path, strerror(errno)) : 0;
}
