#include "disk.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2_err.h>
#include <ext2fs/ext2fs.h>

#include "human.h"
#include "log.h"

int disk_check_init(const char *path, const char *image)
{
	struct ext2_inode in;
	ext2_filsys fs;
	ext2_ino_t ino;
	errcode_t e;
	int err = 0;

	e = ext2fs_open(path, 0, 0, 0, unix_io_manager, &fs);
	if (e)
		return cove_fail(-EIO, "%s: %s", path, error_message(e));
	e = ext2fs_namei_follow(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, "/sbin/init", &ino);
	if (!e)
		e = ext2fs_read_inode(fs, ino, &in);
	if (e == EXT2_ET_FILE_NOT_FOUND || e == EXT2_ET_NO_DIRECTORY ||
	    e == EXT2_ET_SYMLINK_LOOP || (!e && (!LINUX_S_ISREG(in.i_mode) ||
						 !(in.i_mode & 0111))))
		err = cove_fail(-ENOENT, "image %s has no /sbin/init: a machine boots its image's "
				"own init (systemd, openrc, busybox init); use an image that has "
				"one", image);
	else if (e)
		err = cove_fail(-EIO, "%s: /sbin/init: %s", path, error_message(e));
	ext2fs_close_free(&fs);
	return err;
}

int disk_grow(const char *path, uint64_t size)
{
	struct stat st;
	char now[32], want[32];

	if (stat(path, &st) < 0)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	if (size < (uint64_t)st.st_size)
		return cove_fail(-EINVAL, "the disk can only grow: it has %s, %s is smaller",
				 human_size(st.st_size, now, sizeof(now)),
				 human_size(size, want, sizeof(want)));
	if (truncate(path, size) < 0)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	return 0;
}
