/* A machine's root disk: the sparse ext4 file image_unpack made. */
#ifndef COVE_DISK_H
#define COVE_DISK_H

#include <stdint.h>

/* Whether the ext4 image at path has an executable /sbin/init, following
 * symlinks inside the image (/sbin -> usr/sbin, init -> ../lib/systemd/
 * systemd, busybox's applet links). Opens it read-only, without mounting.
 * 0 when it has; -ENOENT with cove_fail's message saying the image has no
 * /sbin/init; other -errno when the image cannot be read. */
int disk_check_init(const char *path, const char *image);

/* Grow the disk file to size bytes (sparse: no blocks are written); the
 * filesystem is grown by the guest at its next boot. -EINVAL with
 * cove_fail's message when size is below the current size. */
int disk_grow(const char *path, uint64_t size);

#endif
