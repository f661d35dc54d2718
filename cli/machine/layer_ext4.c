#include "layer_ext4.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <et/com_err.h>
#include <ext2fs/ext2_err.h>
#include <ext2fs/ext2fs.h>

#include "log.h"
#include "progress.h"

#define BLOCK_SIZE	4096
#define INODE_RATIO	16384		/* bytes of disk per inode */
#define JOURNAL_MIN_FS	16384		/* blocks (64 MiB): smaller images get no journal */
#define JOURNAL_MAX	16384		/* blocks (64 MiB) */
#define LINKS_MAX	65000		/* ext4 with dir_nlink */
#define WH_PREFIX	".wh."
#define WH_OPAQUE	".wh..wh..opq"
#define READ_CHUNK	(1 << 16)	/* a layer file is read this much at a time */

struct layer_ext4 {
	ext2_filsys fs;
	char *path;
};

/* Where the layer's bytes come from, read once per pass: memory, or a
 * file read through our own callback so that the bytes read can move a
 * progress bar. */
struct layer_src {
	const char *file;
	const void *buf;
	size_t len;
	int fd;				/* of file */
	char *chunk;			/* READ_CHUNK bytes read from it */
	struct progress *bar;
	uint64_t read;			/* bytes read from fd, both passes */
};

static int ext_fail(errcode_t e, const char *what, const char *path)
{
	return cove_fail(e == EXT2_ET_BLOCK_ALLOC_FAIL || e == EXT2_ET_INODE_ALLOC_FAIL ||
			 e == EXT2_ET_DIR_NO_SPACE_FOR_CSUM ? -ENOSPC : -EIO,
			 "layer: %s %s: %s%s", what, path, error_message(e),
			 e == EXT2_ET_BLOCK_ALLOC_FAIL || e == EXT2_ET_INODE_ALLOC_FAIL ?
			 " (the disk is too small for the image: give a larger size)" : "");
}

int layer_ext4_norm_path(const char *in, char *out, size_t size)
{
	size_t n = 0;

	while (*in) {
		size_t len;

		while (*in == '/')
			in++;
		len = strcspn(in, "/");
		if (len == 0)
			break;
		if (len == 2 && in[0] == '.' && in[1] == '.')
			return -EINVAL;
		if (len > EXT2_NAME_LEN)
			return -ENAMETOOLONG;
		if (!(len == 1 && in[0] == '.')) {
			if (n + (n > 0) + len >= size)
				return -ENAMETOOLONG;
			if (n > 0)
				out[n++] = '/';
			memcpy(out + n, in, len);
			n += len;
		}
		in += len;
	}
	if (size == 0)
		return -ENAMETOOLONG;
	out[n] = '\0';
	return 0;
}

static int read_inode(struct layer_ext4 *b, ext2_ino_t ino, struct ext2_inode *in)
{
	errcode_t e = ext2fs_read_inode(b->fs, ino, in);

	return e ? ext_fail(e, "reading inode of", "entry") : 0;
}

static int write_inode(struct layer_ext4 *b, ext2_ino_t ino, struct ext2_inode *in)
{
	errcode_t e = ext2fs_write_inode(b->fs, ino, in);

	return e ? ext_fail(e, "writing inode of", "entry") : 0;
}

static int lookup(struct layer_ext4 *b, ext2_ino_t dir, const char *name, ext2_ino_t *ino)
{
	errcode_t e = ext2fs_lookup(b->fs, dir, name, strlen(name), NULL, ino);

	if (e == EXT2_ET_FILE_NOT_FOUND)
		return -ENOENT;
	return e ? ext_fail(e, "looking up", name) : 0;
}

static int dirent_type(unsigned mode)
{
	switch (mode & LINUX_S_IFMT) {
	case LINUX_S_IFREG: return EXT2_FT_REG_FILE;
	case LINUX_S_IFDIR: return EXT2_FT_DIR;
	case LINUX_S_IFLNK: return EXT2_FT_SYMLINK;
	case LINUX_S_IFCHR: return EXT2_FT_CHRDEV;
	case LINUX_S_IFBLK: return EXT2_FT_BLKDEV;
	case LINUX_S_IFIFO: return EXT2_FT_FIFO;
	case LINUX_S_IFSOCK: return EXT2_FT_SOCK;
	}
	return EXT2_FT_UNKNOWN;
}

/* ext2fs_link, growing the directory when it is full. */
static int link_entry(struct layer_ext4 *b, ext2_ino_t dir, const char *name, ext2_ino_t ino,
		      unsigned mode)
{
	errcode_t e = ext2fs_link(b->fs, dir, name, ino, dirent_type(mode));

	if (e == EXT2_ET_DIR_NO_SPACE) {
		e = ext2fs_expand_dir(b->fs, dir);
		if (!e)
			e = ext2fs_link(b->fs, dir, name, ino, dirent_type(mode));
	}
	return e ? ext_fail(e, "linking", name) : 0;
}

static int make_dir(struct layer_ext4 *b, ext2_ino_t dir, const char *name, ext2_ino_t *ino)
{
	errcode_t e = ext2fs_mkdir(b->fs, dir, 0, name);

	if (e == EXT2_ET_DIR_NO_SPACE) {
		e = ext2fs_expand_dir(b->fs, dir);
		if (!e)
			e = ext2fs_mkdir(b->fs, dir, 0, name);
	}
	if (e)
		return ext_fail(e, "making directory", name);
	return lookup(b, dir, name, ino);
}

/* Walk the directories of path (all but its last component) from the
 * root, never following a symlink (-EINVAL). With create, missing
 * directories are made (0755 root:root); without, a missing one is
 * -ENOENT, quietly. A component that is not a directory is -ENOTDIR.
 * path is modified in place and restored. */
static int walk(struct layer_ext4 *b, char *path, bool create, ext2_ino_t *dir,
		const char **base)
{
	ext2_ino_t cur = EXT2_ROOT_INO;
	char *p = path, *slash;
	int err = 0;

	while ((slash = strchr(p, '/'))) {
		struct ext2_inode in;
		ext2_ino_t next;

		*slash = '\0';
		err = lookup(b, cur, p, &next);
		if (err == -ENOENT && create)
			err = make_dir(b, cur, p, &next);
		if (!err)
			err = read_inode(b, next, &in);
		if (!err && LINUX_S_ISLNK(in.i_mode))
			err = cove_fail(-EINVAL, "malicious layer: %s is a symlink, and the layer "
					"writes through it: refused", path);
		else if (!err && !LINUX_S_ISDIR(in.i_mode))
			err = cove_fail(-ENOTDIR, "layer: %s is not a directory", path);
		*slash = '/';
		if (err)
			return err;
		cur = next;
		p = slash + 1;
	}
	*dir = cur;
	*base = p;
	return 0;
}

struct names {
	char **v;
	size_t n, cap;
	int err;
};

static int collect_name(struct ext2_dir_entry *d, int offset, int blocksize, char *buf,
			void *priv)
{
	struct names *ns = priv;
	int len = ext2fs_dirent_name_len(d);

	(void)offset;
	(void)blocksize;
	(void)buf;
	if ((len == 1 && d->name[0] == '.') || (len == 2 && !memcmp(d->name, "..", 2)))
		return 0;
	if (ns->n == ns->cap) {
		size_t cap = ns->cap ? 2 * ns->cap : 16;
		char **v = realloc(ns->v, cap * sizeof(*v));

		if (!v)
			goto nomem;
		ns->v = v;
		ns->cap = cap;
	}
	ns->v[ns->n] = strndup(d->name, len);
	if (!ns->v[ns->n])
		goto nomem;
	ns->n++;
	return 0;
nomem:
	ns->err = -ENOMEM;
	return DIRENT_ABORT;
}

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
}

/* Free an inode whose last link is gone: its blocks, its xattr block. */
static int free_inode(struct layer_ext4 *b, ext2_ino_t ino, struct ext2_inode *in)
{
	blk64_t ea = ext2fs_file_acl_block(b->fs, in);
	errcode_t e = 0;

	if (ext2fs_inode_has_valid_blocks2(b->fs, in))
		e = ext2fs_punch(b->fs, ino, in, NULL, 0, ~0ULL);
	if (!e && ea) {
		__u32 count = 0;

		e = ext2fs_adjust_ea_refcount3(b->fs, ea, NULL, -1, &count, ino);
		if (!e && count == 0)
			ext2fs_block_alloc_stats2(b->fs, ea, -1);
		ext2fs_file_acl_block_set(b->fs, in, 0);
	}
	if (e)
		return ext_fail(e, "freeing", "inode");
	in->i_links_count = 0;
	in->i_dtime = time(NULL);
	ext2fs_inode_alloc_stats2(b->fs, ino, -1, LINUX_S_ISDIR(in->i_mode));
	return write_inode(b, ino, in);
}

/* Remove dir/name and, for a directory, everything under it. */
static int remove_entry(struct layer_ext4 *b, ext2_ino_t dir, const char *name)
{
	struct ext2_inode in;
	ext2_ino_t ino;
	errcode_t e;
	int err = lookup(b, dir, name, &ino);

	if (err)
		return err == -ENOENT ? 0 : err;
	err = read_inode(b, ino, &in);
	if (err)
		return err;
	if (LINUX_S_ISDIR(in.i_mode)) {
		struct names ns = { 0 };

		e = ext2fs_dir_iterate(b->fs, ino, 0, NULL, collect_name, &ns);
		err = e ? ext_fail(e, "reading directory", name) : ns.err;
		for (size_t i = 0; !err && i < ns.n; i++)
			err = remove_entry(b, ino, ns.v[i]);
		names_free(&ns);
		if (err)
			return err;
		err = read_inode(b, ino, &in);
		if (err)
			return err;
	}
	e = ext2fs_unlink(b->fs, dir, name, ino, 0);
	if (e)
		return ext_fail(e, "removing", name);
	if (LINUX_S_ISDIR(in.i_mode)) {
		struct ext2_inode parent;

		err = read_inode(b, dir, &parent);
		if (err)
			return err;
		if (parent.i_links_count > 2)
			parent.i_links_count--;
		err = write_inode(b, dir, &parent);
		if (err)
			return err;
		return free_inode(b, ino, &in);
	}
	if (in.i_links_count > 1) {
		in.i_links_count--;
		return write_inode(b, ino, &in);
	}
	return free_inode(b, ino, &in);
}

/* Owner, permission bits and times of entry e onto inode in. */
static void entry_meta(struct ext2_inode *in, struct archive_entry *e)
{
	uint32_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
	uint32_t t = archive_entry_mtime(e);

	in->i_mode = (in->i_mode & LINUX_S_IFMT) | (archive_entry_perm(e) & 07777);
	in->i_uid = uid & 0xffff;
	ext2fs_set_i_uid_high(*in, uid >> 16);
	in->i_gid = gid & 0xffff;
	ext2fs_set_i_gid_high(*in, gid >> 16);
	in->i_atime = in->i_mtime = in->i_ctime = t;
}

static int set_meta(struct layer_ext4 *b, ext2_ino_t ino, struct archive_entry *e)
{
	struct ext2_inode in;
	int err = read_inode(b, ino, &in);

	if (err)
		return err;
	entry_meta(&in, e);
	return write_inode(b, ino, &in);
}

static int set_xattrs(struct layer_ext4 *b, ext2_ino_t ino, struct archive_entry *e,
		      const char *path)
{
	struct ext2_xattr_handle *h;
	const char *name;
	const void *val;
	size_t size;
	errcode_t x;

	if (archive_entry_xattr_reset(e) == 0)
		return 0;
	x = ext2fs_xattrs_open(b->fs, ino, &h);
	if (x)
		return ext_fail(x, "xattrs of", path);
	x = ext2fs_xattrs_read(h);
	while (!x && archive_entry_xattr_next(e, &name, &val, &size) == ARCHIVE_OK)
		x = ext2fs_xattr_set(h, name, val, size);
	ext2fs_xattrs_close(&h);
	return x ? ext_fail(x, "setting xattrs of", path) : 0;
}

/* A new inode of the given mode linked at dir/name, with e's metadata;
 * regular files get an empty extent tree, devices their numbers. */
static int new_inode(struct layer_ext4 *b, ext2_ino_t dir, const char *name, unsigned mode,
		     struct archive_entry *e, ext2_ino_t *out)
{
	struct ext2_inode in = { 0 };
	ext2_ino_t ino;
	errcode_t x = ext2fs_new_inode(b->fs, dir, mode, NULL, &ino);
	int err;

	if (x)
		return ext_fail(x, "allocating an inode for", name);
	err = link_entry(b, dir, name, ino, mode);
	if (err)
		return err;
	ext2fs_inode_alloc_stats2(b->fs, ino, +1, 0);
	in.i_mode = mode;
	entry_meta(&in, e);
	in.i_links_count = 1;
	if (LINUX_S_ISCHR(mode) || LINUX_S_ISBLK(mode)) {
		unsigned major = archive_entry_rdevmajor(e), minor = archive_entry_rdevminor(e);

		if (major < 256 && minor < 256)
			in.i_block[0] = major << 8 | minor;
		else
			in.i_block[1] = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
	} else if (LINUX_S_ISREG(mode) && ext2fs_has_feature_extents(b->fs->super)) {
		ext2_extent_handle_t h;

		x = ext2fs_extent_open2(b->fs, ino, &in, &h);
		if (x)
			return ext_fail(x, "making extents for", name);
		ext2fs_extent_free(h);
	}
	x = ext2fs_write_new_inode(b->fs, ino, &in);
	if (x)
		return ext_fail(x, "writing", name);
	*out = ino;
	return 0;
}

static bool all_zero(const void *buf, size_t len)
{
	const unsigned char *p = buf;

	return len == 0 || (p[0] == 0 && !memcmp(p, p + 1, len - 1));
}

/* The entry's data into the regular file ino; zero blocks become holes. */
static int write_data(struct layer_ext4 *b, ext2_ino_t ino, struct archive *a,
		      struct archive_entry *e, const char *path)
{
	ext2_file_t f;
	errcode_t x = ext2fs_file_open(b->fs, ino, EXT2_FILE_WRITE, &f);
	const void *buf;
	size_t len;
	la_int64_t off;
	int r;

	if (x)
		return ext_fail(x, "opening", path);
	while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
		unsigned got;

		if (all_zero(buf, len))
			continue;
		x = ext2fs_file_llseek(f, off, EXT2_SEEK_SET, NULL);
		if (!x)
			x = ext2fs_file_write(f, buf, len, &got);
		if (x)
			break;
	}
	if (!x && r != ARCHIVE_EOF) {
		ext2fs_file_close(f);
		return cove_fail(-EINVAL, "layer: reading %s: %s", path, archive_error_string(a));
	}
	if (!x)
		x = ext2fs_file_set_size2(f, archive_entry_size(e));
	if (!x)
		x = ext2fs_file_close(f);
	else
		ext2fs_file_close(f);
	return x ? ext_fail(x, "writing", path) : 0;
}

static int add_hardlink(struct layer_ext4 *b, ext2_ino_t dir, const char *base,
			const char *path, const char *target)
{
	char norm[PATH_MAX];
	struct ext2_inode in;
	ext2_ino_t tdir, ino, old;
	const char *tbase;
	int err = layer_ext4_norm_path(target, norm, sizeof(norm));

	if (err == -EINVAL)
		return cove_fail(-EINVAL, "malicious layer: hardlink %s to \"%s\" leaves the "
				 "image: refused", path, target);
	if (err || !norm[0])
		return cove_fail(-EINVAL, "layer: bad hardlink target \"%s\"", target);
	err = walk(b, norm, false, &tdir, &tbase);
	if (!err)
		err = lookup(b, tdir, tbase, &ino);
	if (err == -ENOENT)
		return cove_fail(-EINVAL, "layer: hardlink %s to missing %s", path, norm);
	if (!err)
		err = read_inode(b, ino, &in);
	if (err)
		return err;
	if (LINUX_S_ISDIR(in.i_mode))
		return cove_fail(-EINVAL, "layer: hardlink %s to directory %s", path, norm);
	if (lookup(b, dir, base, &old) == 0) {
		if (old == ino)
			return 0;
		err = remove_entry(b, dir, base);
		if (err)
			return err;
		err = read_inode(b, ino, &in);
		if (err)
			return err;
	}
	if (in.i_links_count >= LINKS_MAX)
		return cove_fail(-EMLINK, "layer: too many links to %s", norm);
	err = link_entry(b, dir, base, ino, in.i_mode);
	if (err)
		return err;
	in.i_links_count++;
	return write_inode(b, ino, &in);
}

static int add_entry(struct layer_ext4 *b, struct archive *a, struct archive_entry *e,
		     char *path)
{
	unsigned type = archive_entry_filetype(e);
	const char *hard = archive_entry_hardlink(e), *base, *target;
	struct ext2_inode in;
	ext2_ino_t dir, ino;
	errcode_t x;
	int err;

	if (!path[0])
		return type == AE_IFDIR ? set_meta(b, EXT2_ROOT_INO, e) : 0;
	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (!strncmp(base, WH_PREFIX, strlen(WH_PREFIX)))
		return 0;	/* applied in the first pass */
	err = walk(b, path, true, &dir, &base);
	if (err)
		return err;
	if (hard)
		return add_hardlink(b, dir, base, path, hard);
	if (lookup(b, dir, base, &ino) == 0) {
		err = read_inode(b, ino, &in);
		if (err)
			return err;
		if (type == AE_IFDIR && LINUX_S_ISDIR(in.i_mode))
			return set_meta(b, ino, e) ?: set_xattrs(b, ino, e, path);
		err = remove_entry(b, dir, base);
		if (err)
			return err;
	}
	switch (type) {
	case AE_IFDIR:
		err = make_dir(b, dir, base, &ino) ?: set_meta(b, ino, e);
		break;
	case AE_IFLNK:
		target = archive_entry_symlink(e);
		if (!target || !target[0] || strlen(target) >= BLOCK_SIZE)
			return cove_fail(-EINVAL, "layer: symlink %s has a bad target", path);
		x = ext2fs_symlink(b->fs, dir, 0, base, target);
		if (x == EXT2_ET_DIR_NO_SPACE) {
			x = ext2fs_expand_dir(b->fs, dir);
			if (!x)
				x = ext2fs_symlink(b->fs, dir, 0, base, target);
		}
		if (x)
			return ext_fail(x, "making symlink", path);
		err = lookup(b, dir, base, &ino) ?: set_meta(b, ino, e);
		break;
	case AE_IFREG:
		err = new_inode(b, dir, base, LINUX_S_IFREG, e, &ino) ?:
		      write_data(b, ino, a, e, path);
		break;
	case AE_IFCHR:
	case AE_IFBLK:
	case AE_IFIFO:
	case AE_IFSOCK:
		err = new_inode(b, dir, base, type, e, &ino);
		break;
	default:
		return cove_fail(-EINVAL, "layer: %s has an unsupported type (0%o)", path, type);
	}
	return err ?: set_xattrs(b, ino, e, path);
}

/* The root's lost+found belongs to the filesystem, not to the layers. */
static bool is_lost_found(ext2_ino_t dir, const char *name)
{
	return dir == EXT2_ROOT_INO && !strcmp(name, "lost+found");
}

/* First pass: whiteouts against the layers below. */
static int apply_whiteout(struct layer_ext4 *b, char *path)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	ext2_ino_t dir;
	int err;

	if (strncmp(base, WH_PREFIX, strlen(WH_PREFIX)))
		return 0;
	err = walk(b, path, false, &dir, &base);
	if (err)
		return err == -ENOENT || err == -ENOTDIR ? 0 : err;	/* nothing below */
	if (!strcmp(base, WH_OPAQUE)) {
		struct names ns = { 0 };
		errcode_t x = ext2fs_dir_iterate(b->fs, dir, 0, NULL, collect_name, &ns);

		err = x ? ext_fail(x, "reading directory of", path) : ns.err;
		for (size_t i = 0; !err && i < ns.n; i++)
			if (!is_lost_found(dir, ns.v[i]))
				err = remove_entry(b, dir, ns.v[i]);
		names_free(&ns);
		return err;
	}
	base += strlen(WH_PREFIX);
	if (!base[0] || !strcmp(base, ".") || !strcmp(base, ".."))
		return cove_fail(-EINVAL, "malicious layer: whiteout %s: refused", path);
	return is_lost_found(dir, base) ? 0 : remove_entry(b, dir, base);
}

/* libarchive's read callback for a layer file. The file is read twice
 * (whiteouts, then entries), so each pass moves the bar by half of what it
 * reads: the two add up to the file's size. */
static la_ssize_t read_file(struct archive *a, void *priv, const void **buf)
{
	struct layer_src *src = priv;
	uint64_t before = src->read;
	ssize_t n;

	do
		n = read(src->fd, src->chunk, READ_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		archive_set_error(a, errno, "%s: %s", src->file, strerror(errno));
		return -1;
	}
	src->read += n;
	progress_advance(src->bar, src->read / 2 - before / 2);
	*buf = src->chunk;
	return n;
}

static int open_src(struct layer_src *src, struct archive **out)
{
	struct archive *a = archive_read_new();
	int r;

	if (!a)
		return cove_fail(-ENOMEM, "layer: out of memory");
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (src->file && lseek(src->fd, 0, SEEK_SET) < 0) {
		archive_read_free(a);
		return cove_fail(-errno, "layer: %s: %s", src->file, strerror(errno));
	}
	if (src->file)
		r = archive_read_open(a, src, NULL, read_file, NULL);
	else
		r = archive_read_open_memory(a, src->buf, src->len);
	if (r != ARCHIVE_OK) {
		cove_fail(-EINVAL, "layer: %s", archive_error_string(a));
		archive_read_free(a);
		return -EINVAL;
	}
	*out = a;
	return 0;
}

static int apply_pass(struct layer_ext4 *b, struct layer_src *src, bool whiteouts)
{
	struct archive_entry *e;
	struct archive *a = NULL;
	char path[PATH_MAX];
	int r, err = open_src(src, &a);

	if (err)
		return err;
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);

		if (!name) {
			err = cove_fail(-EINVAL, "layer: an entry without a name");
			break;
		}
		err = layer_ext4_norm_path(name, path, sizeof(path));
		if (err == -EINVAL) {
			err = cove_fail(-EINVAL, "malicious layer: \"%s\" leaves the image "
					"(path traversal): refused", name);
			break;
		}
		if (err) {
			err = cove_fail(err, "layer: name too long: \"%.64s…\"", name);
			break;
		}
		err = whiteouts ? apply_whiteout(b, path) : add_entry(b, a, e, path);
		if (err)
			break;
	}
	if (!err && r != ARCHIVE_EOF)
		err = cove_fail(-EINVAL, "layer: %s", archive_error_string(a) ?: "bad tar");
	archive_read_free(a);
	return err;
}

static int apply(struct layer_ext4 *b, struct layer_src *src)
{
	return apply_pass(b, src, true) ?: apply_pass(b, src, false);
}

int layer_ext4_apply_file(struct layer_ext4 *b, const char *layer_path, struct progress *bar)
{
	struct layer_src src = { .file = layer_path, .bar = bar };
	struct stat st;
	int err;

	src.fd = open(layer_path, O_RDONLY | O_CLOEXEC);
	if (src.fd < 0)
		return cove_fail(-errno, "layer: %s: %s", layer_path, strerror(errno));
	src.chunk = malloc(READ_CHUNK);
	err = src.chunk ? apply(b, &src) : cove_fail(-ENOMEM, "layer: out of memory");
	/* libarchive may stop short of the end (padding, a compressed
	 * stream's trailer): the bar ends full all the same */
	if (!err && fstat(src.fd, &st) == 0 && (uint64_t)st.st_size > src.read / 2)
		progress_advance(bar, st.st_size - src.read / 2);
	free(src.chunk);
	close(src.fd);
	return err;
}

int layer_ext4_apply_mem(struct layer_ext4 *b, const void *buf, size_t len)
{
	struct layer_src src = { .buf = buf, .len = len };

	return apply(b, &src);
}

/* What mke2fs does after laying out the groups: the reserved inodes,
 * the root directory, lost+found, the journal. */
static errcode_t populate_empty(ext2_filsys fs)
{
	ext2_ino_t lpf;
	errcode_t e;
	int journal;

	e = ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, 0);
	if (e)
		return e;
	e = ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found");
	if (!e)
		e = ext2fs_lookup(fs, EXT2_ROOT_INO, "lost+found", 10, NULL, &lpf);
	for (int i = 1; !e && i < 4; i++)	/* room for e2fsck to reconnect files */
		e = ext2fs_expand_dir(fs, lpf);
	if (e)
		return e;
	for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(fs->super); i++)
		ext2fs_inode_alloc_stats2(fs, i, +1, 0);
	ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
	e = ext2fs_update_bb_inode(fs, NULL);
	if (e)
		return e;
	if (ext2fs_blocks_count(fs->super) < JOURNAL_MIN_FS)
		return 0;
	journal = ext2fs_default_journal_size(ext2fs_blocks_count(fs->super));
	if (journal > JOURNAL_MAX)
		journal = JOURNAL_MAX;
	return ext2fs_add_journal_inode(fs, journal, EXT2_MKJOURNAL_LAZYINIT);
}

int layer_ext4_create(const char *path, uint64_t size, struct layer_ext4 **out)
{
	static bool et_ready;
	struct ext2_super_block param = { 0 };
	struct layer_ext4 *b;
	errcode_t e;
	int fd;

	if (!et_ready) {
		initialize_ext2_error_table();
		et_ready = true;
	}
	if (size < LAYER_EXT4_MIN_SIZE || size > (16ull << 40))
		return cove_fail(-EINVAL, "disk size must be between 8M and 16T");
	size &= ~(uint64_t)(BLOCK_SIZE - 1);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	if (ftruncate(fd, size) < 0) {
		int err = cove_fail(-errno, "%s: %s", path, strerror(errno));

		close(fd);
		unlink(path);
		return err;
	}
	close(fd);

	b = calloc(1, sizeof(*b));
	if (!b || !(b->path = strdup(path))) {
		free(b);
		unlink(path);
		return cove_fail(-ENOMEM, "out of memory");
	}
	ext2fs_blocks_count_set(&param, size / BLOCK_SIZE);
	param.s_log_block_size = 2;	/* 1024 << 2 */
	param.s_rev_level = EXT2_DYNAMIC_REV;
	param.s_inode_size = 256;
	param.s_inodes_count = size / INODE_RATIO;
	param.s_min_extra_isize = param.s_want_extra_isize = 32;
	param.s_log_groups_per_flex = 4;
	ext2fs_set_feature_xattr(&param);
	ext2fs_set_feature_dir_index(&param);
	ext2fs_set_feature_filetype(&param);
	ext2fs_set_feature_extents(&param);
	ext2fs_set_feature_flex_bg(&param);
	ext2fs_set_feature_sparse_super(&param);
	ext2fs_set_feature_large_file(&param);
	ext2fs_set_feature_huge_file(&param);
	ext2fs_set_feature_dir_nlink(&param);
	ext2fs_set_feature_extra_isize(&param);
	ext2fs_set_feature_64bit(&param);

	e = ext2fs_initialize(path, EXT2_FLAG_RW | EXT2_FLAG_64BITS, &param, unix_io_manager,
			      &b->fs);
	if (e)
		goto fail;
	if (getrandom(b->fs->super->s_uuid, sizeof(b->fs->super->s_uuid), 0) < 0 ||
	    getrandom(b->fs->super->s_hash_seed, sizeof(b->fs->super->s_hash_seed), 0) < 0) {
		e = errno;
		goto fail;
	}
	b->fs->super->s_def_hash_version = EXT2_HASH_HALF_MD4;
	b->fs->super->s_flags |= EXT2_FLAGS_SIGNED_HASH;
	b->fs->super->s_max_mnt_count = -1;
	b->fs->super->s_mkfs_time = b->fs->super->s_wtime = time(NULL);
	b->fs->umask = 022;
	e = ext2fs_allocate_tables(b->fs);
	if (!e)
		e = populate_empty(b->fs);
	if (e)
		goto fail;
	*out = b;
	return 0;
fail:
	cove_fail(-EIO, "%s: making the filesystem: %s", path, error_message(e));
	layer_ext4_abort(b);
	return -EIO;
}

int layer_ext4_finish(struct layer_ext4 *b)
{
	errcode_t e = ext2fs_close_free(&b->fs);
	int err = 0;

	if (e) {
		err = cove_fail(-EIO, "%s: writing the filesystem: %s", b->path, error_message(e));
		unlink(b->path);
	}
	free(b->path);
	free(b);
	return err;
}

void layer_ext4_abort(struct layer_ext4 *b)
{
	if (!b)
		return;
	if (b->fs)
		ext2fs_free(b->fs);
	unlink(b->path);
	free(b->path);
	free(b);
}
