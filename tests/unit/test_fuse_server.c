/* The FUSE server on byte buffers: a temp directory as the share (and a
 * sibling "outside" it that must stay unreachable), requests built here,
 * asynchronous reads and writes performed synchronously by the test. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>

#include "fuse_server.h"

#define OUT_SIZE	(256u << 10)

struct fx {
	char base[64], root[96], outside[96];
	struct fuse_server *s;
	uint8_t in[OUT_SIZE];
	uint8_t out[OUT_SIZE];
	struct fuse_out_header oh;
	uint8_t *reply;		/* out + header */
	uint64_t unique;
};

static void sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_int_equal(system(cmd), 0);
}

/* Raw: the request bytes as given, reply room outsz; the handler's return. */
static int raw(struct fx *f, const void *req, size_t len, size_t outsz)
{
	struct iovec in = { (void *)req, len }, out = { f->out, outsz };
	struct fuse_io io;
	int res;

	memset(f->out, 0xa5, sizeof(f->out));
	res = fuse_handle(f->s, &in, 1, &out, 1, &io);
	if (res == -EINPROGRESS) {
		ssize_t n;
		if (io.op == FUSE_IO_READ)
			n = preadv(io.fd, io.iov, io.niov, io.off);
		else if (io.op == FUSE_IO_WRITE)
			n = pwritev(io.fd, io.iov, io.niov, io.off);
		else
			n = fsync(io.fd);
		res = fuse_io_done(f->s, &io, n < 0 ? -errno : (int)n, &out, 1);
	}
	if (res >= (int)sizeof(f->oh))
		memcpy(&f->oh, f->out, sizeof(f->oh));
	return res;
}

/* A request: opcode, node, then args (fixed struct a, then strings b and c
 * each with their NUL, then d raw). Returns fuse_out_header.error. */
static int call4(struct fx *f, uint32_t op, uint64_t node, const void *a, size_t alen,
		 const char *b, const char *c, const void *d, size_t dlen, size_t outsz)
{
	struct fuse_in_header *h = (struct fuse_in_header *)f->in;
	size_t len = sizeof(*h);
	int res;

	if (alen)
		memcpy(f->in + len, a, alen);
	len += alen;
	if (b) {
		memcpy(f->in + len, b, strlen(b) + 1);
		len += strlen(b) + 1;
	}
	if (c) {
		memcpy(f->in + len, c, strlen(c) + 1);
		len += strlen(c) + 1;
	}
	if (d) {
		memcpy(f->in + len, d, dlen);
		len += dlen;
	}
	memset(h, 0, sizeof(*h));
	h->len = len;
	h->opcode = op;
	h->unique = ++f->unique;
	h->nodeid = node;
	h->uid = 12345;		/* ignored: the server acts as its own user */
	h->gid = 12345;
	res = raw(f, f->in, len, outsz);
	assert_true(res >= (int)sizeof(f->oh));
	assert_int_equal(f->oh.unique, f->unique);
	assert_int_equal(f->oh.len, res);
	return f->oh.error;
}

static int call(struct fx *f, uint32_t op, uint64_t node, const void *a, size_t alen,
		const char *name)
{
	return call4(f, op, node, a, alen, name, NULL, NULL, 0, OUT_SIZE);
}

static void do_init(struct fx *f)
{
	struct fuse_init_in in = { .major = 7, .minor = 37, .max_readahead = 65536,
				   .flags = 0xffffffffu };

	assert_int_equal(call(f, FUSE_INIT, 0, &in, sizeof(in), NULL), 0);
}

static int make(struct fx *f, bool readonly, enum fuse_cache cache)
{
	snprintf(f->base, sizeof(f->base), "/tmp/cove-fuse-XXXXXX");
	assert_non_null(mkdtemp(f->base));
	snprintf(f->root, sizeof(f->root), "%s/share", f->base);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->base);
	sh("mkdir -p %s/sub/deep %s && echo secret > %s/secret && echo hello > %s/hello",
	   f->root, f->outside, f->outside, f->root);
	assert_int_equal(fuse_server_create(f->root, readonly, cache, &f->s), 0);
	f->reply = f->out + sizeof(struct fuse_out_header);
	do_init(f);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	make(f, false, FUSE_CACHE_AUTO);
	*state = f;
	return 0;
}

static int setup_ro(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	make(f, true, FUSE_CACHE_NONE);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fuse_server_destroy(f->s);
	sh("rm -rf %s", f->base);
	free(f);
	return 0;
}

/* LOOKUP name in node: the entry, or 0 with *err. */
static uint64_t lookup(struct fx *f, uint64_t node, const char *name, int *err)
{
	int e = call(f, FUSE_LOOKUP, node, NULL, 0, name);

	if (err)
		*err = e;
	return e ? 0 : ((struct fuse_entry_out *)f->reply)->nodeid;
}

static struct fuse_attr *entry_attr(struct fx *f)
{
	return &((struct fuse_entry_out *)f->reply)->attr;
}

static uint64_t create(struct fx *f, uint64_t dir, const char *name, uint32_t flags,
		       uint64_t *node)
{
	struct fuse_create_in in = { .flags = flags, .mode = S_IFREG | 0644 };

	assert_int_equal(call(f, FUSE_CREATE, dir, &in, sizeof(in), name), 0);
	*node = ((struct fuse_entry_out *)f->reply)->nodeid;
	return ((struct fuse_open_out *)(f->reply + sizeof(struct fuse_entry_out)))->fh;
}

static int fwrite_at(struct fx *f, uint64_t node, uint64_t fh, uint64_t off, const void *data,
		     uint32_t len)
{
	struct fuse_write_in in = { .fh = fh, .offset = off, .size = len };

	return call4(f, FUSE_WRITE, node, &in, sizeof(in), NULL, NULL, data, len, OUT_SIZE);
}

static int fread_at(struct fx *f, uint64_t node, uint64_t fh, uint64_t off, uint32_t len)
{
	struct fuse_read_in in = { .fh = fh, .offset = off, .size = len };

	return call(f, FUSE_READ, node, &in, sizeof(in), NULL);
}

static void release(struct fx *f, uint64_t node, uint64_t fh, bool dir)
{
	struct fuse_release_in in = { .fh = fh };

	assert_int_equal(call(f, dir ? FUSE_RELEASEDIR : FUSE_RELEASE, node, &in, sizeof(in),
			      NULL), 0);
}

static void host_path(struct fx *f, char *buf, size_t len, const char *rel)
{
	snprintf(buf, len, "%s/%s", f->root, rel);
}

static void test_init_and_before_init(void **state)
{
	struct fx *f = *state;
	struct fuse_init_in in = { .major = 7, .minor = 37, .flags = 0xffffffffu };
	struct fuse_init_out *o = (struct fuse_init_out *)f->reply;
	struct fuse_getattr_in ga = { 0 };

	assert_int_equal(call(f, FUSE_INIT, 0, &in, sizeof(in), NULL), 0);
	assert_int_equal(o->major, 7);
	assert_int_equal(o->minor, 31);
	assert_int_equal(o->max_write, FUSE_MAX_WRITE);
	assert_true(o->flags & FUSE_DO_READDIRPLUS);
	assert_false(o->flags & FUSE_WRITEBACK_CACHE);	/* cache=auto */
	/* An old minor and a newer major. */
	in.minor = 5;
	assert_int_equal(call(f, FUSE_INIT, 0, &in, sizeof(in), NULL), -EPROTO);
	in.major = 8;
	assert_int_equal(call(f, FUSE_INIT, 0, &in, sizeof(in), NULL), 0);
	assert_int_equal(o->major, 7);
	/* DESTROY ends the session: nothing works until the next INIT. */
	assert_int_equal(call(f, FUSE_DESTROY, 0, NULL, 0, NULL), 0);
	assert_int_equal(call(f, FUSE_GETATTR, FUSE_ROOT_ID, &ga, sizeof(ga), NULL), -EIO);
	do_init(f);
	assert_int_equal(call(f, FUSE_GETATTR, FUSE_ROOT_ID, &ga, sizeof(ga), NULL), 0);
	/* A short INIT. */
	assert_int_equal(call(f, FUSE_INIT, 0, &in, 8, NULL), -EINVAL);
}

static void test_bad_requests(void **state)
{
	struct fx *f = *state;
	struct fuse_in_header h = { .len = sizeof(h), .opcode = FUSE_GETATTR, .unique = 9,
				    .nodeid = 1 };
	struct fuse_getattr_in ga = { 0 };
	uint8_t buf[300];

	/* Shorter than a header, or no room for a reply header: not FUSE. */
	assert_int_equal(raw(f, &h, sizeof(h) - 1, OUT_SIZE), -EPROTO);
	assert_int_equal(raw(f, &h, 0, OUT_SIZE), -EPROTO);
	assert_int_equal(raw(f, &h, sizeof(h), 15), -EPROTO);
	/* Header length that is not the request's. */
	memcpy(buf, &h, sizeof(h));
	((struct fuse_in_header *)buf)->len = 200;
	assert_int_equal(raw(f, buf, sizeof(h) + 16, OUT_SIZE), 16);
	assert_int_equal(f->oh.error, -EINVAL);
	assert_int_equal(f->oh.unique, 9);
	/* Arguments shorter than the operation's struct. */
	assert_int_equal(call(f, FUSE_GETATTR, 1, &ga, 8, NULL), -EINVAL);
	/* Reply room shorter than the reply. */
	assert_int_equal(call4(f, FUSE_GETATTR, 1, &ga, sizeof(ga), NULL, NULL, NULL, 0, 40),
			 -EINVAL);
	/* Unknown and unsupported opcodes. */
	assert_int_equal(call(f, 0, 1, NULL, 0, NULL), -ENOSYS);
	assert_int_equal(call(f, FUSE_GETLK, 1, buf, 64, NULL), -ENOSYS);
	assert_int_equal(call(f, FUSE_IOCTL, 1, buf, 64, NULL), -ENOSYS);
	assert_int_equal(call(f, FUSE_SETUPMAPPING, 1, buf, 64, NULL), -ENOSYS);
	assert_int_equal(call(f, 0xffffffffu, 1, NULL, 0, NULL), -ENOSYS);
	assert_int_equal(call(f, CUSE_INIT, 1, NULL, 0, NULL), -ENOSYS);
	/* Node ids and file handles that name nothing. */
	assert_int_equal(call(f, FUSE_GETATTR, 0, &ga, sizeof(ga), NULL), -ESTALE);
	assert_int_equal(call(f, FUSE_GETATTR, 2, &ga, sizeof(ga), NULL), -ESTALE);
	assert_int_equal(call(f, FUSE_GETATTR, 1ull << 40 | 1, &ga, sizeof(ga), NULL), -ESTALE);
	assert_int_equal(fread_at(f, 1, 7, 0, 10), -EBADF);
	assert_int_equal(fwrite_at(f, 1, 0, 0, "x", 1), -EBADF);
	/* Names: unterminated, empty, with '/', too long. */
	assert_int_equal(call4(f, FUSE_LOOKUP, 1, "hello", 5, NULL, NULL, NULL, 0, OUT_SIZE),
			 -EINVAL);
	assert_int_equal(call(f, FUSE_LOOKUP, 1, NULL, 0, ""), -EINVAL);
	assert_int_equal(call(f, FUSE_LOOKUP, 1, NULL, 0, "sub/deep"), -EINVAL);
	assert_int_equal(call(f, FUSE_LOOKUP, 1, NULL, 0, "../outside"), -EINVAL);
	assert_int_equal(call(f, FUSE_LOOKUP, 1, NULL, 0, "/etc"), -EINVAL);
	memset(buf, 'a', 256);
	buf[256] = 0;
	assert_int_equal(call(f, FUSE_LOOKUP, 1, NULL, 0, (char *)buf), -ENAMETOOLONG);
	/* Creating "." or "..". */
	struct fuse_mkdir_in mk = { .mode = 0755 };
	assert_int_equal(call(f, FUSE_MKDIR, 1, &mk, sizeof(mk), ".."), -EINVAL);
	assert_int_equal(call(f, FUSE_MKDIR, 1, &mk, sizeof(mk), "."), -EINVAL);
	assert_int_equal(call(f, FUSE_UNLINK, 1, NULL, 0, ".."), -EINVAL);
	/* No reply for FORGET, whatever it says. */
	h.opcode = FUSE_FORGET;
	h.len = sizeof(h) + 3;
	memcpy(buf, &h, sizeof(h));
	assert_int_equal(raw(f, buf, sizeof(h) + 3, OUT_SIZE), 0);
	h.opcode = FUSE_BATCH_FORGET;
	struct fuse_batch_forget_in bf = { .count = 1000000 };
	h.len = sizeof(h) + sizeof(bf);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &bf, sizeof(bf));
	assert_int_equal(raw(f, buf, h.len, OUT_SIZE), 0);
	/* Bad values. */
	uint64_t node, fh = create(f, 1, "f", O_RDWR, &node);
	assert_int_equal(fread_at(f, node, fh, 1ull << 63, 10), -EINVAL);
	assert_int_equal(fwrite_at(f, node, fh, (1ull << 63) - 1, "ab", 2), -EINVAL);
	struct fuse_write_in wi = { .fh = fh, .size = 100 };
	assert_int_equal(call4(f, FUSE_WRITE, node, &wi, sizeof(wi), NULL, NULL, "abc", 3,
			       OUT_SIZE), -EINVAL);
	struct fuse_lseek_in ls = { .fh = fh, .whence = 77 };
	assert_int_equal(call(f, FUSE_LSEEK, node, &ls, sizeof(ls), NULL), -EINVAL);
	struct fuse_fallocate_in fa = { .fh = fh, .length = 10, .mode = 0x80 };
	assert_int_equal(call(f, FUSE_FALLOCATE, node, &fa, sizeof(fa), NULL), -EINVAL);
	struct fuse_rename2_in rn = { .newdir = 1, .flags = 0xff };
	assert_int_equal(call4(f, FUSE_RENAME2, 1, &rn, sizeof(rn), "f", "g", NULL, 0, OUT_SIZE),
			 -EINVAL);
	struct fuse_open_in oi = { .flags = O_ACCMODE };
	assert_int_equal(call(f, FUSE_OPEN, node, &oi, sizeof(oi), NULL), -EINVAL);
	/* Device nodes are never made on the host. */
	struct fuse_mknod_in mn = { .mode = S_IFCHR | 0600, .rdev = 0x0103 };
	assert_int_equal(call(f, FUSE_MKNOD, 1, &mn, sizeof(mn), "null"), -EPERM);
	release(f, node, fh, false);
	assert_int_equal(call(f, FUSE_RELEASE, node, &(struct fuse_release_in){ .fh = fh },
			      sizeof(struct fuse_release_in), NULL), -EBADF);
}

static void test_create_write_read(void **state)
{
	struct fx *f = *state;
	struct fuse_attr_out *ao = (struct fuse_attr_out *)f->reply;
	struct fuse_getattr_in ga = { 0 };
	char path[160], data[5000];
	uint64_t node, fh;
	struct stat st;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (char)(i * 7);
	fh = create(f, 1, "new", O_WRONLY, &node);
	assert_int_equal(entry_attr(f)->uid, geteuid());
	assert_int_equal(fwrite_at(f, node, fh, 0, data, sizeof(data)), 0);
	assert_int_equal(((struct fuse_write_out *)f->reply)->size, sizeof(data));
	assert_int_equal(fread_at(f, node, fh, 0, 10), -EBADF);	/* write-only */
	release(f, node, fh, false);

	host_path(f, path, sizeof(path), "new");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, sizeof(data));
	assert_int_equal(st.st_uid, geteuid());
	assert_int_equal(st.st_mode & 07777, 0644);

	struct fuse_open_in oi = { .flags = O_RDONLY };
	assert_int_equal(call(f, FUSE_OPEN, node, &oi, sizeof(oi), NULL), 0);
	fh = ((struct fuse_open_out *)f->reply)->fh;
	assert_int_equal(fread_at(f, node, fh, 100, 1000), 0);
	assert_int_equal(f->oh.len, 16 + 1000);
	assert_memory_equal(f->reply, data + 100, 1000);
	/* Past the end: short, then empty. */
	assert_int_equal(fread_at(f, node, fh, 4990, 100), 0);
	assert_int_equal(f->oh.len, 16 + 10);
	assert_int_equal(fread_at(f, node, fh, 6000, 100), 0);
	assert_int_equal(f->oh.len, 16);
	/* The reply room bounds a read. */
	struct fuse_read_in ri = { .fh = fh, .size = 4096 };
	assert_int_equal(call4(f, FUSE_READ, node, &ri, sizeof(ri), NULL, NULL, NULL, 0, 16 + 64),
			 0);
	assert_int_equal(f->oh.len, 16 + 64);
	struct fuse_fsync_in fs = { .fh = fh };
	assert_int_equal(call(f, FUSE_FSYNC, node, &fs, sizeof(fs), NULL), 0);
	struct fuse_flush_in fl = { .fh = fh };
	assert_int_equal(call(f, FUSE_FLUSH, node, &fl, sizeof(fl), NULL), 0);
	release(f, node, fh, false);

	assert_int_equal(call(f, FUSE_GETATTR, node, &ga, sizeof(ga), NULL), 0);
	assert_int_equal(ao->attr.size, sizeof(data));
	assert_int_equal(ao->attr_valid, 1);	/* cache=auto */

	/* Truncate, chmod and times through SETATTR. */
	struct fuse_setattr_in sa = { .valid = FATTR_SIZE | FATTR_MODE | FATTR_MTIME,
				      .size = 10, .mode = 0600, .mtime = 1000000000 };
	assert_int_equal(call(f, FUSE_SETATTR, node, &sa, sizeof(sa), NULL), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 10);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_mtime, 1000000000);
	assert_int_equal(ao->attr.size, 10);
}

static void test_ownership(void **state)
{
	struct fx *f = *state;
	struct fuse_setattr_in sa = { .valid = FATTR_UID | FATTR_GID, .uid = geteuid(),
				      .gid = getegid() };
	uint64_t node = lookup(f, 1, "hello", NULL);

	assert_int_equal(call(f, FUSE_SETATTR, node, &sa, sizeof(sa), NULL), 0);
	sa.uid = geteuid() + 1;
	assert_int_equal(call(f, FUSE_SETATTR, node, &sa, sizeof(sa), NULL), -EPERM);
	sa.valid = FATTR_GID;
	sa.gid = getegid() + 1;
	assert_int_equal(call(f, FUSE_SETATTR, node, &sa, sizeof(sa), NULL), -EPERM);
	/* The request header's uid does not matter: files are the process's. */
	struct fuse_mkdir_in mk = { .mode = 0777 };
	assert_int_equal(call(f, FUSE_MKDIR, 1, &mk, sizeof(mk), "d"), 0);
	assert_int_equal(entry_attr(f)->uid, geteuid());
	assert_int_equal(entry_attr(f)->mode & 07777, 0777);	/* not the host umask's */
}

static void test_confinement(void **state)
{
	struct fx *f = *state;
	char path[160], target[200];
	int err;

	/* ".." at the root is the root; from sub it is the root. */
	assert_int_equal(lookup(f, 1, "..", NULL), FUSE_ROOT_ID);
	uint64_t sub = lookup(f, 1, "sub", NULL);
	assert_true(sub > 1);
	assert_int_equal(lookup(f, sub, "..", NULL), FUSE_ROOT_ID);
	assert_int_equal(lookup(f, sub, ".", NULL), sub);

	/* Symlinks out, absolute and relative: looked up as symlinks, never
	 * followed, not openable, not a directory to look into. */
	snprintf(target, sizeof(target), "%s/secret", f->outside);
	host_path(f, path, sizeof(path), "abs");
	assert_int_equal(symlink(target, path), 0);
	host_path(f, path, sizeof(path), "rel");
	assert_int_equal(symlink("../outside/secret", path), 0);
	host_path(f, path, sizeof(path), "reldir");
	assert_int_equal(symlink("../outside", path), 0);
	uint64_t abs = lookup(f, 1, "abs", NULL);
	assert_int_equal(entry_attr(f)->mode & S_IFMT, S_IFLNK);
	uint64_t rel = lookup(f, 1, "rel", NULL);
	uint64_t reldir = lookup(f, 1, "reldir", NULL);
	struct fuse_open_in oi = { .flags = O_RDONLY };
	assert_int_equal(call(f, FUSE_OPEN, abs, &oi, sizeof(oi), NULL), -EINVAL);
	assert_int_equal(call(f, FUSE_OPEN, rel, &oi, sizeof(oi), NULL), -EINVAL);
	lookup(f, reldir, "secret", &err);
	assert_int_equal(err, -ENOTDIR);
	assert_int_equal(call(f, FUSE_OPENDIR, reldir, &oi, sizeof(oi), NULL), -ENOTDIR);
	assert_int_equal(call(f, FUSE_READLINK, rel, NULL, 0, NULL), 0);
	assert_int_equal(f->oh.len, 16 + strlen("../outside/secret"));
	/* Hard link of a symlink links the symlink. */
	struct fuse_link_in li = { .oldnodeid = abs };
	assert_int_equal(call(f, FUSE_LINK, 1, &li, sizeof(li), "abs2"), 0);
	assert_int_equal(entry_attr(f)->mode & S_IFMT, S_IFLNK);
	/* chmod / xattrs / truncate through a symlink node do not follow it. */
	struct fuse_setattr_in sa = { .valid = FATTR_MODE, .mode = 0777 };
	assert_int_equal(call(f, FUSE_SETATTR, abs, &sa, sizeof(sa), NULL), -EOPNOTSUPP);
	sa.valid = FATTR_SIZE;
	assert_int_equal(call(f, FUSE_SETATTR, abs, &sa, sizeof(sa), NULL), -EINVAL);
	struct fuse_getxattr_in gx = { .size = 100 };
	assert_int_equal(call(f, FUSE_GETXATTR, abs, &gx, sizeof(gx), "user.x"), -ENODATA);

	/* A directory swapped for a symlink on the host while the guest
	 * holds it: the held node stays the (moved) directory, the new name
	 * is a symlink the server does not look through. */
	uint64_t deep = lookup(f, sub, "deep", NULL);
	char a[160], b[160];
	host_path(f, a, sizeof(a), "sub");
	host_path(f, b, sizeof(b), "sub.old");
	assert_int_equal(rename(a, b), 0);
	assert_int_equal(symlink(f->outside, a), 0);
	lookup(f, sub, "secret", &err);
	assert_int_equal(err, -ENOENT);
	assert_int_equal(lookup(f, sub, "deep", NULL), deep);
	uint64_t swapped = lookup(f, 1, "sub", NULL);
	assert_int_not_equal(swapped, sub);
	lookup(f, swapped, "secret", &err);
	assert_int_equal(err, -ENOTDIR);

	/* A directory moved out of the share on the host: ".." from it
	 * would leave the share. */
	char out[160];
	snprintf(out, sizeof(out), "%s/deep", f->outside);
	host_path(f, a, sizeof(a), "sub.old/deep");
	assert_int_equal(rename(a, out), 0);
	lookup(f, deep, "..", &err);
	assert_int_equal(err, -EACCES);

	/* Renames and links name single components only. */
	struct fuse_rename_in rn = { .newdir = 1 };
	assert_int_equal(call4(f, FUSE_RENAME, 1, &rn, sizeof(rn), "hello", "../x", NULL, 0,
			       OUT_SIZE), -EINVAL);
	assert_int_equal(call(f, FUSE_LINK, 1, &li, sizeof(li), "../x"), -EINVAL);
	struct fuse_mkdir_in mk = { .mode = 0755 };
	assert_int_equal(call(f, FUSE_MKDIR, 1, &mk, sizeof(mk), "a/b"), -EINVAL);
	/* Creating through a symlink name is refused (O_NOFOLLOW). */
	struct fuse_create_in ci = { .flags = O_WRONLY, .mode = S_IFREG | 0644 };
	assert_int_equal(call(f, FUSE_CREATE, 1, &ci, sizeof(ci), "abs"), -ELOOP);
	/* Outside is untouched. */
	struct stat st;
	snprintf(out, sizeof(out), "%s/secret", f->outside);
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_size, 7);
}

static void test_namespace_ops(void **state)
{
	struct fx *f = *state;
	struct fuse_mkdir_in mk = { .mode = 0755 };
	char path[160];
	struct stat st;

	assert_int_equal(call(f, FUSE_MKDIR, 1, &mk, sizeof(mk), "dir"), 0);
	uint64_t dir = ((struct fuse_entry_out *)f->reply)->nodeid;
	assert_int_equal(call4(f, FUSE_SYMLINK, dir, NULL, 0, "ln", "/etc/passwd", NULL, 0,
			       OUT_SIZE), 0);
	host_path(f, path, sizeof(path), "dir/ln");
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	struct fuse_mknod_in mn = { .mode = S_IFIFO | 0600 };
	assert_int_equal(call(f, FUSE_MKNOD, dir, &mn, sizeof(mn), "fifo"), 0);
	host_path(f, path, sizeof(path), "dir/fifo");
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISFIFO(st.st_mode));
	uint64_t hello = lookup(f, 1, "hello", NULL);
	struct fuse_link_in li = { .oldnodeid = hello };
	assert_int_equal(call(f, FUSE_LINK, dir, &li, sizeof(li), "hl"), 0);
	assert_int_equal(((struct fuse_entry_out *)f->reply)->nodeid, hello);
	assert_int_equal(entry_attr(f)->nlink, 2);
	struct fuse_rename_in rn = { .newdir = 1 };
	assert_int_equal(call4(f, FUSE_RENAME, dir, &rn, sizeof(rn), "hl", "hl2", NULL, 0,
			       OUT_SIZE), 0);
	struct fuse_rename2_in rn2 = { .newdir = 1, .flags = RENAME_NOREPLACE };
	assert_int_equal(call4(f, FUSE_RENAME2, 1, &rn2, sizeof(rn2), "hl2", "hello", NULL, 0,
			       OUT_SIZE), -EEXIST);
	rn2.flags = RENAME_EXCHANGE;
	assert_int_equal(call4(f, FUSE_RENAME2, 1, &rn2, sizeof(rn2), "hl2", "hello", NULL, 0,
			       OUT_SIZE), 0);
	assert_int_equal(call(f, FUSE_UNLINK, 1, NULL, 0, "hl2"), 0);
	assert_int_equal(call(f, FUSE_RMDIR, 1, NULL, 0, "dir"), -ENOTEMPTY);
	assert_int_equal(call(f, FUSE_UNLINK, dir, NULL, 0, "ln"), 0);
	assert_int_equal(call(f, FUSE_UNLINK, dir, NULL, 0, "fifo"), 0);
	assert_int_equal(call(f, FUSE_RMDIR, 1, NULL, 0, "dir"), 0);
	assert_int_equal(call(f, FUSE_STATFS, 1, NULL, 0, NULL), 0);
	assert_true(((struct fuse_statfs_out *)f->reply)->st.bsize > 0);
	struct fuse_access_in ac = { .mask = R_OK | W_OK };
	assert_int_equal(call(f, FUSE_ACCESS, hello, &ac, sizeof(ac), NULL), 0);
}

static void test_xattrs(void **state)
{
	struct fx *f = *state;
	uint64_t node = lookup(f, 1, "hello", NULL);
	struct fuse_setxattr_in sx = { .size = 5 };
	struct fuse_getxattr_in gx = { .size = 0 };
	char path[160], v[16];
	int err;

	host_path(f, path, sizeof(path), "hello");
	err = call4(f, FUSE_SETXATTR, node, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE, "user.cove", NULL,
		    "value", 5, OUT_SIZE);
	if (err == -EOPNOTSUPP)
		skip();		/* the temp file system has no user xattrs */
	assert_int_equal(err, 0);
	assert_int_equal(getxattr(path, "user.cove", v, sizeof(v)), 5);
	assert_int_equal(call(f, FUSE_GETXATTR, node, &gx, sizeof(gx), "user.cove"), 0);
	assert_int_equal(((struct fuse_getxattr_out *)f->reply)->size, 5);
	gx.size = 3;
	assert_int_equal(call(f, FUSE_GETXATTR, node, &gx, sizeof(gx), "user.cove"), -ERANGE);
	gx.size = 64;
	assert_int_equal(call(f, FUSE_GETXATTR, node, &gx, sizeof(gx), "user.cove"), 0);
	assert_int_equal(f->oh.len, 16 + 5);
	assert_memory_equal(f->reply, "value", 5);
	assert_int_equal(call(f, FUSE_LISTXATTR, node, &gx, sizeof(gx), NULL), 0);
	assert_non_null(memmem(f->reply, f->oh.len - 16, "user.cove", 10));
	/* The value longer than the request. */
	sx.size = 50;
	assert_int_equal(call4(f, FUSE_SETXATTR, node, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE,
			       "user.cove", NULL, "value", 5, OUT_SIZE), -EINVAL);
	/* Only user.* may be set. */
	sx.size = 1;
	assert_int_equal(call4(f, FUSE_SETXATTR, node, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE,
			       "security.capability", NULL, "x", 1, OUT_SIZE), -EPERM);
	assert_int_equal(call4(f, FUSE_SETXATTR, node, &sx, FUSE_COMPAT_SETXATTR_IN_SIZE,
			       "trusted.x", NULL, "x", 1, OUT_SIZE), -EPERM);
	assert_int_equal(call(f, FUSE_REMOVEXATTR, node, NULL, 0, "user.cove"), 0);
	assert_int_equal(getxattr(path, "user.cove", v, sizeof(v)), -1);
}

/* Walk a READDIR(PLUS) reply; returns the entries seen, *last_off the
 * offset to go on from. */
static int walk_dir(struct fx *f, bool plus, uint64_t *last_off, bool *saw_hello)
{
	size_t len = f->oh.len - 16, p = 0;
	int n = 0;

	while (p < len) {
		struct fuse_dirent *d;
		size_t sz;
		if (plus) {
			struct fuse_direntplus *dp = (struct fuse_direntplus *)(f->reply + p);
			d = &dp->dirent;
			sz = FUSE_DIRENTPLUS_SIZE(dp);
			bool dot = d->namelen <= 2 && !memcmp(d->name, "..", d->namelen);
			if (dot)
				assert_int_equal(dp->entry_out.nodeid, 0);
			else
				assert_true(dp->entry_out.nodeid > 0);
		} else {
			d = (struct fuse_dirent *)(f->reply + p);
			sz = FUSE_DIRENT_SIZE(d);
		}
		if (d->namelen == 5 && !memcmp(d->name, "hello", 5))
			*saw_hello = true;
		*last_off = d->off;
		p += sz;
		n++;
	}
	assert_int_equal(p, len);
	return n;
}

static void test_readdir(void **state)
{
	struct fx *f = *state;
	struct fuse_open_in oi = { 0 };
	struct fuse_server_stats st;

	sh("cd %s && for i in $(seq 1 300); do touch file-with-a-long-name-$i; done", f->root);
	for (int plus = 0; plus < 2; plus++) {
		assert_int_equal(call(f, FUSE_OPENDIR, 1, &oi, sizeof(oi), NULL), 0);
		uint64_t fh = ((struct fuse_open_out *)f->reply)->fh;
		uint64_t off = 0;
		bool hello = false;
		int total = 0, n;
		do {
			struct fuse_read_in ri = { .fh = fh, .offset = off, .size = 4096 };
			assert_int_equal(call(f, plus ? FUSE_READDIRPLUS : FUSE_READDIR, 1, &ri,
					      sizeof(ri), NULL), 0);
			n = walk_dir(f, plus, &off, &hello);
			total += n;
		} while (n);
		assert_int_equal(total, 300 + 4);	/* . .. hello sub */
		assert_true(hello);
		release(f, 1, fh, true);
		assert_int_equal(call(f, FUSE_RELEASEDIR, 1,
				      &(struct fuse_release_in){ .fh = fh },
				      sizeof(struct fuse_release_in), NULL), -EBADF);
	}
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.inodes, 1 + 302);	/* root + everything READDIRPLUS named */
	assert_int_equal(st.files, 0);
	/* A file handle is not a directory handle. */
	uint64_t node, fh = create(f, 1, "plain", O_RDWR, &node);
	struct fuse_read_in ri = { .fh = fh, .size = 4096 };
	assert_int_equal(call(f, FUSE_READDIR, 1, &ri, sizeof(ri), NULL), -EBADF);
	assert_int_equal(call(f, FUSE_OPENDIR, node, &oi, sizeof(oi), NULL), -ENOTDIR);
	release(f, node, fh, false);
}

static void test_forget(void **state)
{
	struct fx *f = *state;
	struct fuse_server_stats st;
	uint8_t buf[128];
	struct fuse_in_header h = { .opcode = FUSE_FORGET };
	struct fuse_forget_in fi = { .nlookup = 1 };

	uint64_t a = lookup(f, 1, "hello", NULL);
	assert_int_equal(lookup(f, 1, "hello", NULL), a);
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.inodes, 2);
	h.nodeid = a;
	h.len = sizeof(h) + sizeof(fi);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &fi, sizeof(fi));
	assert_int_equal(raw(f, buf, h.len, 0), 0);
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.inodes, 2);
	assert_int_equal(raw(f, buf, h.len, 0), 0);
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.inodes, 1);
	/* The stale id names nothing, and the root cannot be forgotten. */
	struct fuse_getattr_in ga = { 0 };
	assert_int_equal(call(f, FUSE_GETATTR, a, &ga, sizeof(ga), NULL), -ESTALE);
	uint64_t b = lookup(f, 1, "hello", NULL);
	assert_int_not_equal(a, b);
	struct { struct fuse_batch_forget_in in; struct fuse_forget_one one[2]; } bf = {
		{ .count = 2 }, { { .nodeid = b, .nlookup = 5 }, { .nodeid = 1, .nlookup = 9 } } };
	h.opcode = FUSE_BATCH_FORGET;
	h.len = sizeof(h) + sizeof(bf);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &bf, sizeof(bf));
	assert_int_equal(raw(f, buf, h.len, 0), 0);
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.inodes, 1);
	assert_int_equal(call(f, FUSE_GETATTR, 1, &ga, sizeof(ga), NULL), 0);
}

static void test_release_with_io_in_flight(void **state)
{
	struct fx *f = *state;
	struct fuse_server_stats st;
	struct fuse_in_header *h = (struct fuse_in_header *)f->in;
	struct fuse_read_in ri;
	uint8_t out[4096];
	struct iovec in, ov = { out, sizeof(out) };
	struct fuse_io io;
	uint64_t node, fh = create(f, 1, "io", O_RDWR, &node);

	assert_int_equal(fwrite_at(f, node, fh, 0, "abcdef", 6), 0);
	ri = (struct fuse_read_in){ .fh = fh, .size = 100 };
	*h = (struct fuse_in_header){ .len = sizeof(*h) + sizeof(ri), .opcode = FUSE_READ,
				      .unique = 77, .nodeid = node };
	memcpy(f->in + sizeof(*h), &ri, sizeof(ri));
	in = (struct iovec){ f->in, h->len };
	assert_int_equal(fuse_handle(f->s, &in, 1, &ov, 1, &io), -EINPROGRESS);
	release(f, node, fh, false);
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.files, 1);			/* kept for the read */
	assert_int_equal(fread_at(f, node, fh, 0, 10), -EBADF);	/* but released */
	ssize_t n = preadv(io.fd, io.iov, io.niov, io.off);
	assert_int_equal(n, 6);
	assert_int_equal(fuse_io_done(f->s, &io, n, &ov, 1), 16 + 6);
	assert_memory_equal(out + 16, "abcdef", 6);
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.files, 0);

	/* A session reset with a read in flight: dropped, not answered. */
	fh = create(f, 1, "io2", O_RDWR, &node);
	ri.fh = fh;
	*h = (struct fuse_in_header){ .len = sizeof(*h) + sizeof(ri), .opcode = FUSE_READ,
				      .unique = 78, .nodeid = node };
	memcpy(f->in + sizeof(*h), &ri, sizeof(ri));
	assert_int_equal(fuse_handle(f->s, &in, 1, &ov, 1, &io), -EINPROGRESS);
	fuse_server_reset(f->s);
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.files, 1);
	assert_int_equal(st.inodes, 1);
	fuse_io_drop(f->s, &io);
	fuse_server_stats(f->s, &st);
	assert_int_equal(st.files, 0);
}

static void test_readonly(void **state)
{
	struct fx *f = *state;
	struct fuse_mkdir_in mk = { .mode = 0755 };
	struct fuse_open_in oi = { .flags = O_RDWR };
	struct fuse_create_in ci = { .flags = O_WRONLY, .mode = S_IFREG | 0644 };
	struct fuse_setattr_in sa = { .valid = FATTR_MTIME };
	struct fuse_access_in ac = { .mask = W_OK };
	struct fuse_init_out *io = (struct fuse_init_out *)f->reply;
	uint64_t node = lookup(f, 1, "hello", NULL);

	assert_int_equal(call(f, FUSE_MKDIR, 1, &mk, sizeof(mk), "d"), -EROFS);
	assert_int_equal(call(f, FUSE_CREATE, 1, &ci, sizeof(ci), "c"), -EROFS);
	assert_int_equal(call(f, FUSE_OPEN, node, &oi, sizeof(oi), NULL), -EROFS);
	oi.flags = O_RDONLY | O_TRUNC;
	assert_int_equal(call(f, FUSE_OPEN, node, &oi, sizeof(oi), NULL), -EROFS);
	assert_int_equal(call(f, FUSE_SETATTR, node, &sa, sizeof(sa), NULL), -EROFS);
	assert_int_equal(call(f, FUSE_UNLINK, 1, NULL, 0, "hello"), -EROFS);
	assert_int_equal(call(f, FUSE_ACCESS, node, &ac, sizeof(ac), NULL), -EROFS);
	assert_int_equal(call4(f, FUSE_SYMLINK, 1, NULL, 0, "l", "x", NULL, 0, OUT_SIZE), -EROFS);
	oi.flags = O_RDONLY;
	assert_int_equal(call(f, FUSE_OPEN, node, &oi, sizeof(oi), NULL), 0);
	uint64_t fh = ((struct fuse_open_out *)f->reply)->fh;
	assert_int_equal(((struct fuse_open_out *)f->reply)->open_flags & FOPEN_DIRECT_IO,
			 FOPEN_DIRECT_IO);	/* cache=none */
	assert_int_equal(fwrite_at(f, node, fh, 0, "x", 1), -EROFS);
	assert_int_equal(fread_at(f, node, fh, 0, 100), 0);
	assert_memory_equal(f->reply, "hello\n", 6);
	release(f, node, fh, false);
	struct fuse_init_in in = { .major = 7, .minor = 37, .flags = 0xffffffffu };
	assert_int_equal(call(f, FUSE_INIT, 0, &in, sizeof(in), NULL), 0);
	assert_false(io->flags & FUSE_WRITEBACK_CACHE);
}

static void test_cache_always(void **state)
{
	struct fx *f = *state;
	struct fuse_init_in in = { .major = 7, .minor = 37, .flags = 0xffffffffu };
	struct fuse_init_out *o = (struct fuse_init_out *)f->reply;
	uint64_t node;

	fuse_server_destroy(f->s);
	assert_int_equal(fuse_server_create(f->root, false, FUSE_CACHE_ALWAYS, &f->s), 0);
	assert_int_equal(call(f, FUSE_INIT, 0, &in, sizeof(in), NULL), 0);
	assert_true(o->flags & FUSE_WRITEBACK_CACHE);
	/* Write-only opens become read-write: the page cache reads around writes. */
	uint64_t fh = create(f, 1, "wb", O_WRONLY | O_APPEND, &node);
	assert_int_equal(((struct fuse_entry_out *)f->reply)->entry_valid, 86400);
	assert_int_equal(fwrite_at(f, node, fh, 0, "abc", 3), 0);
	assert_int_equal(fread_at(f, node, fh, 0, 3), 0);
	assert_memory_equal(f->reply, "abc", 3);
	release(f, node, fh, false);
}

static void test_create_errors(void **state)
{
	(void)state;
	struct fuse_server *s;

	assert_int_equal(fuse_server_create("/nonexistent/dir", false, FUSE_CACHE_AUTO, &s),
			 -ENOENT);
	assert_int_equal(fuse_server_create("/etc/hostname", false, FUSE_CACHE_AUTO, &s),
			 -ENOTDIR);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_init_and_before_init),
		T(test_bad_requests),
		T(test_create_write_read),
		T(test_ownership),
		T(test_confinement),
		T(test_namespace_ops),
		T(test_xattrs),
		T(test_readdir),
		T(test_forget),
		T(test_release_with_io_in_flight),
		cmocka_unit_test_setup_teardown(test_readonly, setup_ro, teardown),
		T(test_cache_always),
		cmocka_unit_test(test_create_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
