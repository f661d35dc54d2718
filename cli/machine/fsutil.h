/* Small file-system helpers shared by the store and the machines. */
#ifndef COVE_FSUTIL_H
#define COVE_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p path, each new directory with mode. 0 or -errno (no message).
 * path is modified while it runs and restored. */
int fsutil_mkdirs(char *path, mode_t mode);

/* Replace path with len bytes of data, atomically and durably: a
 * temporary file beside it, written and fsync'd, renamed over path with
 * the directory fsync'd, so a reader (or a crash) sees the old file or the
 * new one whole. 0 or -errno with cove_fail's message. */
int fsutil_write_atomic(const char *path, const void *data, size_t len, mode_t mode);

/* Read the regular file path to its end (so /proc files work too), at
 * most max bytes, into a malloc'd NUL-terminated *buf. 0, -ENOENT (no message), or -errno / -EFBIG with
 * cove_fail's message. */
int fsutil_read(const char *path, size_t max, char **buf, size_t *len);

/* rm -rf path, not following symlinks; a missing path is fine. 0 or
 * -errno with cove_fail's message. */
int fsutil_rmtree(const char *path);

#endif
