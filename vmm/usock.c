#include "usock.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/* Something is at path and bind said EADDRINUSE: remove it if it is a
 * socket that nobody accepts on. 0 (try again) or -errno. */
static int remove_stale(const char *what, const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, err;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : cove_fail(-errno, "%s %s: %s", what, path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return cove_fail(-EEXIST, "%s %s: a file that is not a socket is in the way",
				 what, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cove_fail(-errno, "%s %s: socket: %s", what, path, strerror(errno));
	err = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? errno : 0;
	close(fd);
	if (err == ECONNREFUSED) {
		if (unlink(path) < 0 && errno != ENOENT)
			return cove_fail(-errno, "%s %s: removing the stale socket: %s",
					 what, path, strerror(errno));
		return 0;
	}
	if (err == 0 || err == EAGAIN || err == EINPROGRESS)
		return cove_fail(-EADDRINUSE, "%s %s: %s (is another cove-vmm running?)",
				 what, path, strerror(EADDRINUSE));
	return cove_fail(-err, "%s %s: %s", what, path, strerror(err));
}

int usock_listen(const char *what, const char *path, int backlog, struct usock_id *id)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, err;

	if (!*path)
		return cove_fail(-EINVAL, "%s: empty path", what);
	if (strlen(path) >= sizeof(sa.sun_path))
		return cove_fail(-ENAMETOOLONG, "%s %s: path too long (at most %zu bytes)",
				 what, path, sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return cove_fail(-errno, "%s %s: socket: %s", what, path, strerror(errno));
	for (int tries = 0;; tries++) {
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		if (errno != EADDRINUSE) {
			err = cove_fail(-errno, "%s %s: %s", what, path, strerror(errno));
			goto fail;
		}
		if (tries == 2) {
			err = cove_fail(-EADDRINUSE, "%s %s: %s (is another cove-vmm running?)",
					what, path, strerror(EADDRINUSE));
			goto fail;
		}
		err = remove_stale(what, path, &sa);
		if (err < 0)
			goto fail;
	}
	/* Nobody can connect before listen(): tighten the mode first. */
	if (chmod(path, 0600) < 0 || lstat(path, &st) < 0) {
		err = errno;
		unlink(path);
		err = cove_fail(-err, "%s %s: %s", what, path, strerror(err));
		goto fail;
	}
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	if (listen(fd, backlog) < 0) {
		err = errno;
		unlink(path);
		err = cove_fail(-err, "%s %s: listen: %s", what, path, strerror(err));
		goto fail;
	}
	return fd;

fail:
	close(fd);
	return err;
}

void usock_unlink(const char *path, const struct usock_id *id)
{
	struct stat st;

	if (lstat(path, &st) == 0 && st.st_dev == id->dev && st.st_ino == id->ino)
		unlink(path);
}
