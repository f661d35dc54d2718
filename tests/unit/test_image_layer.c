/* The layer -> ext4 builder: tar layers made here with libarchive, applied
 * to a fresh image, then checked with e2fsck -fn and read back with
 * libext2fs. Path normalisation, whiteouts, opaque directories, links,
 * replacement, and every refusal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <ext2fs/ext2fs.h>

#include "layer_ext4.h"
#include "log.h"
#include "progress.h"

#define MTIME	1700000000

/* A tar being built in memory. */
struct tar {
	struct archive *a;
	char *buf;
	size_t size, used;
};

enum filter {
	PLAIN,
	GZIP,
	ZSTD,
};

static void tar_begin(struct tar *t, enum filter filter)
{
	t->size = 64 << 20;
	t->buf = malloc(t->size);
	assert_non_null(t->buf);
	t->a = archive_write_new();
	archive_write_set_format_pax_restricted(t->a);
	if (filter == GZIP)
		assert_int_equal(archive_write_add_filter_gzip(t->a), ARCHIVE_OK);
	else if (filter == ZSTD)
		assert_int_equal(archive_write_add_filter_zstd(t->a), ARCHIVE_OK);
	else
		archive_write_add_filter_none(t->a);
	assert_int_equal(archive_write_open_memory(t->a, t->buf, t->size, &t->used), ARCHIVE_OK);
}

static void tar_add(struct tar *t, const char *name, unsigned type, unsigned perm,
		    const void *data, size_t len, const char *link)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_mtime(e, MTIME, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	if (type == AE_IFLNK)
		archive_entry_set_symlink(e, link);
	else if (link)
		archive_entry_set_hardlink(e, link);
	archive_entry_set_size(e, type == AE_IFREG && !link ? len : 0);
	assert_int_equal(archive_write_header(t->a, e), ARCHIVE_OK);
	if (type == AE_IFREG && !link && len)
		assert_int_equal(archive_write_data(t->a, data, len), (la_ssize_t)len);
	archive_entry_free(e);
}

static void file(struct tar *t, const char *name, const char *text)
{
	tar_add(t, name, AE_IFREG, 0644, text, strlen(text), NULL);
}

static void dir(struct tar *t, const char *name)
{
	tar_add(t, name, AE_IFDIR, 0755, NULL, 0, NULL);
}

static void symlink_(struct tar *t, const char *name, const char *target)
{
	tar_add(t, name, AE_IFLNK, 0777, NULL, 0, target);
}

static void hardlink(struct tar *t, const char *name, const char *target)
{
	tar_add(t, name, AE_IFREG, 0644, NULL, 0, target);
}

static void tar_end(struct tar *t)
{
	assert_int_equal(archive_write_close(t->a), ARCHIVE_OK);
	archive_write_free(t->a);
}

struct fixture {
	char path[64];
	struct layer_ext4 *b;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	int fd;

	strcpy(f->path, "/tmp/cove-test-layer.XXXXXX");
	fd = mkstemp(f->path);
	close(fd);
	unlink(f->path);
	if (layer_ext4_create(f->path, 64 << 20, &f->b))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->b)
		layer_ext4_abort(f->b);
	unlink(f->path);
	free(f);
	return 0;
}

static int apply(struct fixture *f, struct tar *t)
{
	int err = layer_ext4_apply_mem(f->b, t->buf, t->used);

	free(t->buf);
	return err;
}

/* Finish the image and check it with e2fsck; then open it to read. */
static ext2_filsys finish(struct fixture *f)
{
	char cmd[256];
	ext2_filsys fs;

	assert_int_equal(layer_ext4_finish(f->b), 0);
	f->b = NULL;
	snprintf(cmd, sizeof(cmd), "PATH=$PATH:/sbin:/usr/sbin e2fsck -fn %s >/dev/null 2>&1",
		 f->path);
	if (system(cmd) != 0) {
		snprintf(cmd, sizeof(cmd), "PATH=$PATH:/sbin:/usr/sbin e2fsck -fn %s", f->path);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(ext2fs_open(f->path, 0, 0, 0, unix_io_manager, &fs), 0);
	return fs;
}

static int find(ext2_filsys fs, const char *path, struct ext2_inode *in, ext2_ino_t *out)
{
	ext2_ino_t ino;

	if (ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino))
		return -ENOENT;
	if (in)
		assert_int_equal(ext2fs_read_inode(fs, ino, in), 0);
	if (out)
		*out = ino;
	return 0;
}

static void assert_content(ext2_filsys fs, const char *path, const char *text)
{
	char buf[256] = "";
	ext2_file_t file_;
	ext2_ino_t ino = 0;
	unsigned got;

	assert_int_equal(find(fs, path, NULL, &ino), 0);
	assert_int_equal(ext2fs_file_open(fs, ino, 0, &file_), 0);
	assert_int_equal(ext2fs_file_read(file_, buf, sizeof(buf) - 1, &got), 0);
	ext2fs_file_close(file_);
	buf[got] = '\0';
	assert_string_equal(buf, text);
}

static void assert_refused(int err, const char *msg)
{
	assert_int_equal(err, -EINVAL);
	if (!strstr(cove_last_error(), msg))
		fail_msg("\"%s\" lacks \"%s\"", cove_last_error(), msg);
}

static void norm(const char *in, const char *out)
{
	char buf[64];

	assert_int_equal(layer_ext4_norm_path(in, buf, sizeof(buf)), 0);
	assert_string_equal(buf, out);
}

static void test_norm_path(void **state)
{
	char buf[300], name[300];

	(void)state;
	norm("a/b", "a/b");
	norm("./a/b/", "a/b");
	norm("/a//b/./c", "a/b/c");
	norm("///", "");
	norm(".", "");
	norm("./", "");
	norm("", "");
	norm("a/.../b", "a/.../b");
	norm("..a/b..", "..a/b..");
	norm(".wh..wh..opq", ".wh..wh..opq");
	assert_int_equal(layer_ext4_norm_path("..", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(layer_ext4_norm_path("../x", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(layer_ext4_norm_path("a/../../x", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(layer_ext4_norm_path("a/..", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(layer_ext4_norm_path("/../etc", buf, sizeof(buf)), -EINVAL);
	memset(name, 'n', 256);
	name[256] = '\0';
	assert_int_equal(layer_ext4_norm_path(name, buf, sizeof(buf)), -ENAMETOOLONG);
	name[255] = '\0';
	assert_int_equal(layer_ext4_norm_path(name, buf, sizeof(buf)), 0);
	assert_int_equal(layer_ext4_norm_path(name, buf, 255), -ENAMETOOLONG);
	assert_int_equal(layer_ext4_norm_path("a", buf, 0), -ENAMETOOLONG);
}

/* gzip, then zstd */
static void test_layers_and_whiteouts(void **state)
{
	struct fixture *f = *state;
	struct ext2_inode in;
	struct tar t;
	ext2_filsys fs;
	ext2_ino_t a, b;

	tar_begin(&t, GZIP);
	dir(&t, "etc");
	file(&t, "etc/keep", "keep\n");
	file(&t, "etc/drop", "drop\n");
	dir(&t, "var/lib/deep");		/* parents made implicitly */
	file(&t, "var/lib/deep/x", "x\n");
	dir(&t, "opq");
	file(&t, "opq/old", "old\n");
	dir(&t, "opq/sub");
	file(&t, "opq/sub/f", "f\n");
	file(&t, "shared", "shared\n");
	tar_add(&t, "dev/null", AE_IFCHR, 0666, NULL, 0, NULL);
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);

	tar_begin(&t, ZSTD);
	file(&t, "opq/new", "new\n");		/* before the marker: must survive */
	file(&t, "opq/.wh..wh..opq", "");
	file(&t, "etc/.wh.drop", "");
	file(&t, ".wh.var", "");
	file(&t, "etc/.wh.absent", "");		/* whiteout of nothing: fine */
	file(&t, "nodir/.wh.x", "");		/* in a missing directory: fine */
	hardlink(&t, "etc/shared-link", "shared");
	hardlink(&t, "etc/shared-link2", "./shared");
	file(&t, "/abs", "abs\n");
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);

	fs = finish(f);
	assert_content(fs, "etc/keep", "keep\n");
	assert_int_equal(find(fs, "etc/drop", NULL, NULL), -ENOENT);
	assert_int_equal(find(fs, "var", NULL, NULL), -ENOENT);
	assert_int_equal(find(fs, "opq/old", NULL, NULL), -ENOENT);
	assert_int_equal(find(fs, "opq/sub", NULL, NULL), -ENOENT);
	assert_content(fs, "opq/new", "new\n");
	assert_int_equal(find(fs, "opq/.wh..wh..opq", NULL, NULL), -ENOENT);
	assert_int_equal(find(fs, "etc/.wh.absent", NULL, NULL), -ENOENT);
	assert_content(fs, "abs", "abs\n");
	assert_int_equal(find(fs, "shared", &in, &a), 0);
	assert_int_equal(in.i_links_count, 3);
	assert_int_equal(find(fs, "etc/shared-link2", NULL, &b), 0);
	assert_int_equal(a, b);
	assert_int_equal(find(fs, "dev/null", &in, NULL), 0);
	assert_true(LINUX_S_ISCHR(in.i_mode));
	assert_int_equal(in.i_mtime, MTIME);
	ext2fs_close_free(&fs);
}

static void test_replace(void **state)
{
	struct fixture *f = *state;
	struct ext2_inode in;
	struct tar t;
	ext2_filsys fs;

	tar_begin(&t, PLAIN);
	file(&t, "f2d", "file\n");
	dir(&t, "d2f");
	dir(&t, "d2f/sub");
	file(&t, "d2f/sub/x", "x\n");
	symlink_(&t, "l2f", "/nowhere");
	file(&t, "hl", "hl\n");
	hardlink(&t, "hl2", "hl");
	dir(&t, "same");
	file(&t, "same/kept", "kept\n");
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);

	tar_begin(&t, PLAIN);
	dir(&t, "f2d");
	file(&t, "f2d/inner", "inner\n");
	file(&t, "d2f", "now a file\n");
	file(&t, "l2f", "now a file\n");
	file(&t, "hl", "replaced\n");		/* hl2 keeps the old content */
	tar_add(&t, "same", AE_IFDIR, 0700, NULL, 0, NULL);	/* metadata only */
	file(&t, "file-twice", "one\n");
	file(&t, "file-twice", "two\n");
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);

	fs = finish(f);
	assert_content(fs, "f2d/inner", "inner\n");
	assert_content(fs, "d2f", "now a file\n");
	assert_content(fs, "l2f", "now a file\n");
	assert_content(fs, "hl", "replaced\n");
	assert_content(fs, "hl2", "hl\n");
	assert_int_equal(find(fs, "hl2", &in, NULL), 0);
	assert_int_equal(in.i_links_count, 1);
	assert_content(fs, "same/kept", "kept\n");
	assert_int_equal(find(fs, "same", &in, NULL), 0);
	assert_int_equal(in.i_mode & 07777, 0700);
	assert_content(fs, "file-twice", "two\n");
	ext2fs_close_free(&fs);
}

static void test_big_directories(void **state)
{
	struct fixture *f = *state;
	struct tar t;
	ext2_filsys fs;
	char name[64];

	tar_begin(&t, GZIP);
	dir(&t, "many");
	for (int i = 0; i < 600; i++) {
		snprintf(name, sizeof(name), "many/file-with-a-longish-name-%04d", i);
		file(&t, name, "x");
		snprintf(name, sizeof(name), "many/dir-with-a-longish-name-%04d", i);
		dir(&t, name);
		snprintf(name, sizeof(name), "many/link-with-a-longish-name-%04d", i);
		symlink_(&t, name, "target");
	}
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);
	tar_begin(&t, PLAIN);
	file(&t, "many/.wh..wh..opq", "");
	file(&t, "many/last", "last\n");
	file(&t, ".wh..wh..opq", "");		/* the root: all but lost+found */
	file(&t, ".wh.lost+found", "");
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);
	fs = finish(f);
	assert_content(fs, "many/last", "last\n");
	assert_int_equal(find(fs, "lost+found", NULL, NULL), 0);
	assert_int_equal(find(fs, "many/file-with-a-longish-name-0599", NULL, NULL), -ENOENT);
	ext2fs_close_free(&fs);
}

static void test_traversal_refused(void **state)
{
	struct fixture *f = *state;
	struct tar t;

	tar_begin(&t, PLAIN);
	file(&t, "ok", "ok\n");
	file(&t, "../escape", "pwned\n");
	tar_end(&t);
	assert_refused(apply(f, &t), "malicious layer: \"../escape\" leaves the image");

	tar_begin(&t, PLAIN);
	file(&t, "a/b/../../../escape", "pwned\n");
	tar_end(&t);
	assert_refused(apply(f, &t), "path traversal");
}

static void test_symlink_write_through_refused(void **state)
{
	struct fixture *f = *state;
	struct tar t;

	tar_begin(&t, PLAIN);
	symlink_(&t, "etc", "/etc");
	file(&t, "etc/passwd", "pwned\n");
	tar_end(&t);
	assert_refused(apply(f, &t), "etc is a symlink");
}

static void test_symlink_lower_layer_refused(void **state)
{
	struct fixture *f = *state;
	struct tar t;

	tar_begin(&t, PLAIN);
	symlink_(&t, "up", "../../../..");
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);
	tar_begin(&t, PLAIN);
	file(&t, "up/tmp/pwned", "pwned\n");
	tar_end(&t);
	assert_refused(apply(f, &t), "malicious layer: up is a symlink");
}

static void test_whiteout_through_symlink_refused(void **state)
{
	struct fixture *f = *state;
	struct tar t;

	tar_begin(&t, PLAIN);
	symlink_(&t, "l", "/");
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);
	tar_begin(&t, PLAIN);
	file(&t, "l/.wh.etc", "");
	tar_end(&t);
	assert_refused(apply(f, &t), "l is a symlink");
}

static void test_bad_links_refused(void **state)
{
	struct fixture *f = *state;
	struct tar t;

	tar_begin(&t, PLAIN);
	hardlink(&t, "h", "../../etc/shadow");
	tar_end(&t);
	assert_refused(apply(f, &t), "malicious layer: hardlink h");

	tar_begin(&t, PLAIN);
	hardlink(&t, "h", "missing");
	tar_end(&t);
	assert_refused(apply(f, &t), "hardlink h to missing");

	tar_begin(&t, PLAIN);
	dir(&t, "d");
	hardlink(&t, "h", "d");
	tar_end(&t);
	assert_refused(apply(f, &t), "to directory");

	tar_begin(&t, PLAIN);
	file(&t, ".wh..", "");
	tar_end(&t);
	assert_refused(apply(f, &t), "whiteout");

	tar_begin(&t, PLAIN);
	file(&t, "plain", "p");
	file(&t, "plain/.wh.x", "");		/* a whiteout under a file: nothing to do */
	file(&t, "plain/under", "u");
	tar_end(&t);
	assert_int_equal(apply(f, &t), -ENOTDIR);
	assert_non_null(strstr(cove_last_error(), "plain is not a directory"));
}

static void test_not_a_tar(void **state)
{
	struct fixture *f = *state;
	static const char junk[] = "this is not a tar archive, not at all; just some words.";
	char zeros[1024] = { 0 };

	assert_int_equal(layer_ext4_apply_mem(f->b, junk, sizeof(junk)), -EINVAL);
	/* an empty tar (two zero blocks) is a valid empty layer */
	assert_int_equal(layer_ext4_apply_mem(f->b, zeros, sizeof(zeros)), 0);
}

/* Write t to a file beside the image; its path into path. */
static void tar_to_file(struct fixture *f, struct tar *t, char *path, size_t size)
{
	FILE *out;

	snprintf(path, size, "%s.layer", f->path);
	out = fopen(path, "w");
	assert_non_null(out);
	assert_int_equal(fwrite(t->buf, 1, t->used, out), t->used);
	assert_int_equal(fclose(out), 0);
	free(t->buf);
}

/* A layer read from a file, in both passes (its whiteout, then its
 * files), its bar advanced by exactly the file's size. */
static void test_from_file(void **state)
{
	struct fixture *f = *state;
	size_t big_len = 300 << 10;
	char *big = malloc(big_len), path[128];
	struct progress bar;
	struct ext2_inode in;
	ext2_filsys fs;
	struct stat st;
	struct tar t;
	FILE *null;
	uint32_t x = 2463534242u;

	assert_non_null(big);
	for (size_t i = 0; i < big_len; i++) {	/* xorshift: gzip cannot squeeze it */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		big[i] = (char)x;
	}
	tar_begin(&t, PLAIN);
	file(&t, "gone", "lower");
	tar_end(&t);
	assert_int_equal(apply(f, &t), 0);
	tar_begin(&t, GZIP);
	file(&t, ".wh.gone", "");
	tar_add(&t, "big", AE_IFREG, 0644, big, big_len, NULL);
	file(&t, "small", "from a file");
	tar_end(&t);
	free(big);
	tar_to_file(f, &t, path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > (off_t)big_len);
	null = fopen("/dev/null", "w");
	assert_non_null(null);
	progress_init(&bar, null);
	progress_begin(&bar, "layer", "unpacking", NULL, st.st_size);
	assert_int_equal(layer_ext4_apply_file(f->b, path, &bar), 0);
	assert_int_equal(bar.done, st.st_size);
	progress_end(&bar, NULL);
	/* again, without a bar */
	assert_int_equal(layer_ext4_apply_file(f->b, path, NULL), 0);
	/* a plain tar padded far past its end, which libarchive leaves unread:
	 * the bar still ends at the file's size */
	tar_begin(&t, PLAIN);
	file(&t, "padded", "p");
	tar_end(&t);
	tar_to_file(f, &t, path, sizeof(path));
	assert_int_equal(truncate(path, 1 << 20), 0);
	progress_init(&bar, null);
	progress_begin(&bar, "layer", "unpacking", NULL, 1 << 20);
	assert_int_equal(layer_ext4_apply_file(f->b, path, &bar), 0);
	assert_int_equal(bar.done, 1 << 20);
	progress_end(&bar, NULL);
	fclose(null);
	unlink(path);
	fs = finish(f);
	assert_int_equal(find(fs, "gone", NULL, NULL), -ENOENT);
	assert_int_equal(find(fs, "big", &in, NULL), 0);
	assert_int_equal(EXT2_I_SIZE(&in), big_len);
	assert_content(fs, "small", "from a file");
	assert_content(fs, "padded", "p");
	ext2fs_close_free(&fs);
}

static void test_from_file_refused(void **state)
{
	struct fixture *f = *state;
	char path[128];
	FILE *out;

	snprintf(path, sizeof(path), "%s.missing", f->path);
	assert_int_equal(layer_ext4_apply_file(f->b, path, NULL), -ENOENT);
	assert_non_null(strstr(cove_last_error(), "No such file"));
	snprintf(path, sizeof(path), "%s.junk", f->path);
	out = fopen(path, "w");
	assert_non_null(out);
	fputs("this is not a tar archive, not at all; just some words.", out);
	fclose(out);
	assert_int_equal(layer_ext4_apply_file(f->b, path, NULL), -EINVAL);
	unlink(path);
}

static void test_disk_full(void **state)
{
	struct fixture *f = *state;
	struct layer_ext4 *small;
	size_t len = 16 << 20;
	char *big = malloc(len);
	struct tar t;

	assert_non_null(big);
	for (size_t i = 0; i < len; i++)
		big[i] = (char)(i * 7 + 1);
	layer_ext4_abort(f->b);
	f->b = NULL;
	assert_int_equal(layer_ext4_create(f->path, LAYER_EXT4_MIN_SIZE, &small), 0);
	tar_begin(&t, PLAIN);
	tar_add(&t, "big", AE_IFREG, 0644, big, len, NULL);
	tar_end(&t);
	free(big);
	assert_int_equal(layer_ext4_apply_mem(small, t.buf, t.used), -ENOSPC);
	assert_non_null(strstr(cove_last_error(), "too small"));
	free(t.buf);
	layer_ext4_abort(small);
	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(layer_ext4_create(f->path, LAYER_EXT4_MIN_SIZE - 1, &small), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_norm_path),
		cmocka_unit_test_setup_teardown(test_layers_and_whiteouts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_directories, setup, teardown),
		cmocka_unit_test_setup_teardown(test_traversal_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_write_through_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_symlink_lower_layer_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_whiteout_through_symlink_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_links_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_a_tar, setup, teardown),
		cmocka_unit_test_setup_teardown(test_from_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_from_file_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
