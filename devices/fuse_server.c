#include "fuse_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fuse.h>
#include <linux/openat2.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "iov.h"
#include "log.h"

#define PROTO_MINOR	31		/* what we speak: 7.31 */
#define MIN_MINOR	23		/* oldest client: full fuse_init_out */
#define XATTR_MAX	65536u		/* XATTR_SIZE_MAX */
#define READDIR_MAX	(128u << 10)
#define COPY_MAX	(16u << 20)	/* per COPY_FILE_RANGE: the loop stays responsive */
#define MAX_NODES	(1u << 20)
#define FD_RESERVE	256		/* fds left for the rest of the monitor */
#define HDR_IN		sizeof(struct fuse_in_header)
#define HDR_OUT		sizeof(struct fuse_out_header)
#define IN_MAX		(HDR_IN + sizeof(struct fuse_setxattr_in) + NAME_MAX + 1 + XATTR_MAX)
#define OUT_MAX		(HDR_OUT + READDIR_MAX)
#define LONG_TIMEOUT	86400

struct inode {
	int fd;				/* O_PATH | O_NOFOLLOW */
	mode_t type;			/* S_IFMT bits */
	dev_t dev;
	ino_t ino;
	uint64_t nlookup;
	uint64_t id;
	struct inode *hnext;		/* (dev, ino) hash chain */
};

struct file {
	int fd;
	uint32_t refs;			/* 1 while open, + 1 per I/O in flight */
	bool open;			/* not yet released */
	bool dir;
	bool writable;
	uint64_t id;
};

/* Slots addressed by 64-bit ids: index in the low half, the slot's reuse
 * generation in the high half, so a stale id never names a new object. */
struct table {
	void **items;
	uint32_t *gens;
	uint32_t cap, used;
	uint32_t *free;
	uint32_t nfree;
	uint32_t next;			/* first never-used index */
};

struct fuse_server {
	bool readonly;
	enum fuse_cache cache;
	bool initialized;
	bool writeback;
	uid_t uid;
	gid_t gid;
	mode_t umask;
	struct inode *root;
	struct table nodes, files;
	struct inode **hash;
	uint32_t nhash;
	uint64_t nfds, maxfds;
	unsigned log_budget;		/* for log_ratelimited */
	/* Arguments and replies are read and built in place as FUSE structs. */
	uint8_t in[IN_MAX] __attribute__((aligned(8)));
	uint8_t out[OUT_MAX] __attribute__((aligned(8)));
	uint8_t dents[READDIR_MAX] __attribute__((aligned(8)));
};

/* One request being handled. */
struct req {
	struct fuse_server *s;
	struct fuse_in_header h;
	const uint8_t *arg;		/* copied arguments (not WRITE data) */
	size_t arglen;
	const struct iovec *in, *out;
	unsigned nin, nout;
	size_t read_len, room;		/* room: reply payload bytes that fit */
	struct fuse_io *io;
	bool async;
	uint8_t *reply;			/* s->out + HDR_OUT */
};

/* ---- id tables ---- */

static int table_add(struct table *t, void *item, uint64_t *id)
{
	uint32_t i;

	if (t->nfree) {
		i = t->free[--t->nfree];
	} else {
		if (t->next == t->cap) {
			uint32_t cap = t->cap ? t->cap * 2 : 64;
			void **items = realloc(t->items, cap * sizeof(*items));
			if (!items)
				return -ENOMEM;
			t->items = items;
			uint32_t *gens = realloc(t->gens, cap * sizeof(*gens));
			if (!gens)
				return -ENOMEM;
			t->gens = gens;
			uint32_t *fr = realloc(t->free, cap * sizeof(*fr));
			if (!fr)
				return -ENOMEM;
			t->free = fr;
			memset(t->gens + t->cap, 0, (cap - t->cap) * sizeof(*gens));
			t->cap = cap;
		}
		i = t->next++;
	}
	t->items[i] = item;
	t->used++;
	*id = i | (uint64_t)t->gens[i] << 32;
	return 0;
}

static void *table_get(const struct table *t, uint64_t id)
{
	uint32_t i = (uint32_t)id;

	if (i >= t->next || t->gens[i] != id >> 32)
		return NULL;
	return t->items[i];
}

static void table_del(struct table *t, uint64_t id)
{
	uint32_t i = (uint32_t)id;

	t->items[i] = NULL;
	t->gens[i]++;
	t->free[t->nfree++] = i;
	t->used--;
}

static void table_free(struct table *t)
{
	free(t->items);
	free(t->gens);
	free(t->free);
	memset(t, 0, sizeof(*t));
}

/* ---- inodes ---- */

static uint32_t hash_of(const struct fuse_server *s, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xc2b2ae3d27d4eb4full;

	return (uint32_t)(h >> 32) & (s->nhash - 1);
}

static struct inode *hash_find(const struct fuse_server *s, dev_t dev, ino_t ino)
{
	for (struct inode *n = s->hash[hash_of(s, dev, ino)]; n; n = n->hnext)
		if (n->dev == dev && n->ino == ino)
			return n;
	return NULL;
}

static void hash_insert(struct fuse_server *s, struct inode *n)
{
	uint32_t b = hash_of(s, n->dev, n->ino);

	n->hnext = s->hash[b];
	s->hash[b] = n;
}

static void hash_remove(struct fuse_server *s, struct inode *n)
{
	struct inode **p = &s->hash[hash_of(s, n->dev, n->ino)];

	while (*p != n)
		p = &(*p)->hnext;
	*p = n->hnext;
}

static void hash_grow(struct fuse_server *s)
{
	uint32_t old = s->nhash;
	struct inode **oh = s->hash;
	struct inode **nh = calloc(old * 2, sizeof(*nh));

	if (!nh)
		return;		/* longer chains, still correct */
	s->hash = nh;
	s->nhash = old * 2;
	for (uint32_t b = 0; b < old; b++) {
		while (oh[b]) {
			struct inode *n = oh[b];
			oh[b] = n->hnext;
			hash_insert(s, n);
		}
	}
	free(oh);
}

static struct inode *node_get(struct fuse_server *s, uint64_t id)
{
	return table_get(&s->nodes, id);
}

static void node_free(struct fuse_server *s, struct inode *n)
{
	hash_remove(s, n);
	table_del(&s->nodes, n->id);
	close(n->fd);
	s->nfds--;
	free(n);
}

static void forget(struct fuse_server *s, uint64_t id, uint64_t nlookup)
{
	struct inode *n = node_get(s, id);

	if (!n || n == s->root)
		return;
	n->nlookup -= nlookup < n->nlookup ? nlookup : n->nlookup;
	if (!n->nlookup)
		node_free(s, n);
}

/* Take fd (an O_PATH fd of st's inode) as a lookup: the known inode gets
 * one more reference (and fd is closed), a new one an id. Consumes fd. */
static int node_take(struct fuse_server *s, int fd, const struct stat *st, struct inode **out)
{
	struct inode *n = hash_find(s, st->st_dev, st->st_ino);
	int err;

	if (n) {
		close(fd);
		n->nlookup++;
		*out = n;
		return 0;
	}
	if (s->nodes.used >= MAX_NODES) {
		err = -ENFILE;
		goto fail;
	}
	n = calloc(1, sizeof(*n));
	if (!n) {
		err = -ENOMEM;
		goto fail;
	}
	err = table_add(&s->nodes, n, &n->id);
	if (err < 0) {
		free(n);
		goto fail;
	}
	n->fd = fd;
	n->type = st->st_mode & S_IFMT;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	n->nlookup = 1;
	s->nfds++;
	hash_insert(s, n);
	if (s->nodes.used > s->nhash)
		hash_grow(s);
	*out = n;
	return 0;
fail:
	close(fd);
	return err;
}

/* Room for one more descriptor; when there is none the guest gets ENFILE,
 * and the user a (rate-limited) line saying which limit to raise. */
static bool fd_room(struct fuse_server *s)
{
	if (s->nfds < s->maxfds)
		return true;
	log_ratelimited(&s->log_budget, "virtio-fs",
			"%llu inodes and files held open, the most this process's descriptor "
			"limit allows: the guest gets ENFILE (raise the hard limit, ulimit -Hn)",
			(unsigned long long)s->nfds);
	return false;
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

static void proc_path(char *buf, size_t len, int fd)
{
	snprintf(buf, len, "/proc/self/fd/%d", fd);
}

/* Open one name below dirfd: never through a symlink, never above dirfd. */
static int open_beneath(int dirfd, const char *name, uint64_t flags, mode_t mode)
{
	struct open_how how = {
		.flags = flags | O_NOFOLLOW | O_CLOEXEC,
		.mode = (flags & O_CREAT) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	do
		fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return fd < 0 ? -errno : (int)fd;
}

static bool same_inode(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

/* fd (O_PATH, a directory) is at or below the root: walk up by "..". */
static int check_beneath_root(struct fuse_server *s, int fd)
{
	struct stat root, cur, up;
	int c = dup(fd), err = -EACCES;

	if (c < 0)
		return -errno;
	if ((err = stat_fd(s->root->fd, &root)) < 0 || (err = stat_fd(c, &cur)) < 0)
		goto out;
	err = -EACCES;
	for (int depth = 0; depth < 4096; depth++) {
		if (same_inode(&cur, &root)) {
			err = 0;
			break;
		}
		int p = openat(c, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (p < 0) {
			err = -errno;
			break;
		}
		close(c);
		c = p;
		if ((err = stat_fd(c, &up)) < 0)
			break;
		err = -EACCES;
		if (same_inode(&up, &cur))
			break;		/* reached "/" without passing the root */
		cur = up;
	}
out:
	close(c);
	return err;
}

/* ---- replies ---- */

static uint32_t timeout(const struct fuse_server *s)
{
	return s->cache == FUSE_CACHE_NONE ? 0 : s->cache == FUSE_CACHE_AUTO ? 1 : LONG_TIMEOUT;
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = st->st_size;
	a->blocks = st->st_blocks;
	a->atime = st->st_atim.tv_sec;
	a->mtime = st->st_mtim.tv_sec;
	a->ctime = st->st_ctim.tv_sec;
	a->atimensec = st->st_atim.tv_nsec;
	a->mtimensec = st->st_mtim.tv_nsec;
	a->ctimensec = st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->rdev = st->st_rdev;
	a->blksize = st->st_blksize;
}

static void fill_entry(const struct fuse_server *s, struct fuse_entry_out *e, const struct inode *n,
		       const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->nodeid = n->id;
	e->entry_valid = timeout(s);
	e->attr_valid = timeout(s);
	fill_attr(&e->attr, st);
}

static uint32_t put_header(const struct iovec *out, unsigned nout, uint64_t unique, int err,
			   uint32_t len)
{
	struct fuse_out_header oh = { .len = len, .error = err, .unique = unique };

	iov_copy(out, nout, 0, &oh, sizeof(oh), true);
	return len;
}

/* ---- names ---- */

/* The NUL-terminated name at r->arg + *pos: non-empty, at most NAME_MAX,
 * no '/'. Moves *pos past it. */
static int get_name(struct req *r, size_t *pos, const char **name)
{
	const char *p = (const char *)r->arg + *pos;
	size_t left = r->arglen - *pos, len;

	if (*pos > r->arglen)
		return -EINVAL;
	len = strnlen(p, left);
	if (len == left || len == 0)
		return -EINVAL;
	if (len > NAME_MAX)
		return -ENAMETOOLONG;
	if (memchr(p, '/', len))
		return -EINVAL;
	*pos += len + 1;
	*name = p;
	return 0;
}

static bool is_dot(const char *name)
{
	return !strcmp(name, ".") || !strcmp(name, "..");
}

/* A name that a new or removed entry may have: not "." or "..". */
static int get_entry_name(struct req *r, size_t *pos, const char **name)
{
	int err = get_name(r, pos, name);

	if (!err && is_dot(*name))
		return -EINVAL;
	return err;
}

/* ---- lookup ---- */

/* Look name up in directory dirfd (the inode dir, if it has one) and
 * answer an entry: the inode's lookup count grows by one. */
static int lookup_at(struct fuse_server *s, struct inode *dir, int dirfd, const char *name,
		     struct fuse_entry_out *e)
{
	struct inode *n;
	struct stat st;
	int fd, err;

	if (!fd_room(s))
		return -ENFILE;
	if (!strcmp(name, ".")) {
		fd = open_beneath(dirfd, ".", O_PATH, 0);
	} else if (!strcmp(name, "..")) {
		if (dir == s->root) {
			fd = open_beneath(dirfd, ".", O_PATH, 0);
		} else {
			fd = openat(dirfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				return -errno;
			err = check_beneath_root(s, fd);
			if (err < 0) {
				close(fd);
				return err;
			}
		}
	} else {
		fd = open_beneath(dirfd, name, O_PATH, 0);
	}
	if (fd < 0)
		return fd;
	err = stat_fd(fd, &st);
	if (err < 0) {
		close(fd);
		return err;
	}
	err = node_take(s, fd, &st, &n);
	if (err < 0)
		return err;
	fill_entry(s, e, n, &st);
	return 0;
}

static int reply_entry(struct req *r, struct inode *dir, const char *name)
{
	int err = lookup_at(r->s, dir, dir->fd, name, (struct fuse_entry_out *)r->reply);

	return err < 0 ? err : (int)sizeof(struct fuse_entry_out);
}

/* Give a new entry exactly `mode` (the process umask may have taken bits). */
static int fix_mode(struct fuse_server *s, int dirfd, const char *name, mode_t mode)
{
	char path[64];
	struct stat st;
	int fd, err;

	if (!(mode & s->umask))
		return 0;
	fd = open_beneath(dirfd, name, O_PATH, 0);
	if (fd < 0)
		return fd;
	err = stat_fd(fd, &st);
	if (!err && !S_ISLNK(st.st_mode)) {
		proc_path(path, sizeof(path), fd);
		if (chmod(path, mode) < 0)
			err = -errno;
	}
	close(fd);
	return err;
}

/* ---- files ---- */

static struct file *file_get(struct fuse_server *s, uint64_t fh, bool dir)
{
	struct file *f = table_get(&s->files, fh);

	return f && f->open && f->dir == dir ? f : NULL;
}

static int file_add(struct fuse_server *s, int fd, bool dir, bool writable, uint64_t *fh)
{
	struct file *f = calloc(1, sizeof(*f));
	int err;

	if (!f)
		return -ENOMEM;
	err = table_add(&s->files, f, &f->id);
	if (err < 0) {
		free(f);
		return err;
	}
	f->fd = fd;
	f->refs = 1;
	f->open = true;
	f->dir = dir;
	f->writable = writable;
	s->nfds++;
	*fh = f->id;
	return 0;
}

static void file_put(struct fuse_server *s, struct file *f)
{
	if (--f->refs)
		return;
	close(f->fd);
	s->nfds--;
	table_del(&s->files, f->id);
	free(f);
}

/* Host open flags for the guest's; -EROFS on a read-only share. */
static int host_flags(const struct fuse_server *s, uint32_t flags, bool *writable)
{
	int acc = flags & O_ACCMODE;
	int keep = flags & (O_APPEND | O_TRUNC | O_SYNC | O_DSYNC);

	if (acc != O_RDONLY && acc != O_WRONLY && acc != O_RDWR)
		return -EINVAL;
	if (s->readonly && (acc != O_RDONLY || (flags & O_TRUNC)))
		return -EROFS;
	if (s->writeback) {
		/* The guest's page cache reads around writes and appends itself. */
		if (acc == O_WRONLY)
			acc = O_RDWR;
		keep &= ~O_APPEND;
	}
	*writable = acc != O_RDONLY;
	return acc | keep | O_CLOEXEC;
}

static uint32_t open_flags_out(const struct fuse_server *s, bool dir)
{
	switch (s->cache) {
	case FUSE_CACHE_NONE:
		return dir ? 0 : FOPEN_DIRECT_IO;
	case FUSE_CACHE_ALWAYS:
		return dir ? FOPEN_CACHE_DIR | FOPEN_KEEP_CACHE : FOPEN_KEEP_CACHE;
	default:
		return 0;
	}
}

/* ---- operations ---- */

static int op_init(struct req *r)
{
	struct fuse_server *s = r->s;
	struct fuse_init_in in = { 0 };
	struct fuse_init_out *o = (struct fuse_init_out *)r->reply;
	uint32_t want;

	memcpy(&in, r->arg, r->arglen < sizeof(in) ? r->arglen : sizeof(in));
	memset(o, 0, sizeof(*o));
	o->major = FUSE_KERNEL_VERSION;
	o->minor = PROTO_MINOR;
	if (in.major > FUSE_KERNEL_VERSION)
		return sizeof(*o);	/* the client retries with our major */
	if (in.major < FUSE_KERNEL_VERSION || in.minor < MIN_MINOR)
		return -EPROTO;
	if (s->initialized)
		fuse_server_reset(s);
	want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS |
	       FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES;
	if (s->cache != FUSE_CACHE_NONE)
		want |= FUSE_CACHE_SYMLINKS;
	if (s->cache == FUSE_CACHE_AUTO)
		want |= FUSE_AUTO_INVAL_DATA;
	if (s->cache == FUSE_CACHE_ALWAYS && !s->readonly)
		want |= FUSE_WRITEBACK_CACHE;
	o->minor = in.minor < PROTO_MINOR ? in.minor : PROTO_MINOR;
	o->flags = in.flags & want;
	o->max_readahead = in.max_readahead;
	o->max_background = 64;
	o->congestion_threshold = 48;
	o->max_write = FUSE_MAX_WRITE;
	o->time_gran = 1;
	o->max_pages = FUSE_MAX_WRITE / 4096;
	s->writeback = o->flags & FUSE_WRITEBACK_CACHE;
	s->initialized = true;
	return sizeof(*o);
}

static int op_lookup(struct req *r, struct inode *n)
{
	size_t pos = 0;
	const char *name;
	int err = get_name(r, &pos, &name);

	return err < 0 ? err : reply_entry(r, n, name);
}

static int op_getattr(struct req *r, struct inode *n)
{
	struct fuse_attr_out *o = (struct fuse_attr_out *)r->reply;
	struct stat st;
	int err = stat_fd(n->fd, &st);

	if (err < 0)
		return err;
	memset(o, 0, sizeof(*o));
	o->attr_valid = timeout(r->s);
	fill_attr(&o->attr, &st);
	return sizeof(*o);
}

static int op_setattr(struct req *r, struct inode *n)
{
	struct fuse_server *s = r->s;
	const struct fuse_setattr_in *in = (const void *)r->arg;
	uint32_t v = in->valid;
	char path[64];
	int err;

	proc_path(path, sizeof(path), n->fd);
	if (((v & FATTR_UID) && in->uid != s->uid) || ((v & FATTR_GID) && in->gid != s->gid))
		return -EPERM;	/* files belong to the user running the monitor */
	if (v & FATTR_MODE) {
		if (n->type == S_IFLNK)
			return -EOPNOTSUPP;
		if (chmod(path, in->mode & 07777) < 0)
			return -errno;
	}
	if (v & (FATTR_UID | FATTR_GID)) {
		if (fchownat(n->fd, "", (v & FATTR_UID) ? in->uid : (uid_t)-1,
			     (v & FATTR_GID) ? in->gid : (gid_t)-1,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	if (v & FATTR_SIZE) {
		struct file *f = (v & FATTR_FH) ? file_get(s, in->fh, false) : NULL;

		if (in->size > INT64_MAX)
			return -EINVAL;
		if (n->type != S_IFREG)
			return n->type == S_IFDIR ? -EISDIR : -EINVAL;
		if (f && f->writable) {
			if (ftruncate(f->fd, in->size) < 0)
				return -errno;
		} else if (truncate(path, in->size) < 0) {
			return -errno;
		}
	}
	if (v & (FATTR_ATIME | FATTR_MTIME)) {
		struct timespec ts[2] = {
			{ .tv_sec = in->atime, .tv_nsec = in->atimensec },
			{ .tv_sec = in->mtime, .tv_nsec = in->mtimensec },
		};
		if (!(v & FATTR_ATIME))
			ts[0].tv_nsec = UTIME_OMIT;
		else if (v & FATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (in->atimensec >= 1000000000u)
			return -EINVAL;
		if (!(v & FATTR_MTIME))
			ts[1].tv_nsec = UTIME_OMIT;
		else if (v & FATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (in->mtimensec >= 1000000000u)
			return -EINVAL;
		if (utimensat(n->fd, "", ts, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	err = op_getattr(r, n);
	return err;
}

static int op_readlink(struct req *r, struct inode *n)
{
	size_t room = r->room < PATH_MAX ? r->room : PATH_MAX;
	ssize_t len;

	if (n->type != S_IFLNK)
		return -EINVAL;
	len = readlinkat(n->fd, "", (char *)r->reply, room);
	if (len < 0)
		return -errno;
	return len;
}

static int op_symlink(struct req *r, struct inode *n)
{
	size_t pos = 0, tlen;
	const char *name, *target;
	int err = get_entry_name(r, &pos, &name);

	if (err < 0)
		return err;
	target = (const char *)r->arg + pos;
	tlen = strnlen(target, r->arglen - pos);
	if (tlen == r->arglen - pos || tlen == 0)
		return -EINVAL;
	if (tlen >= PATH_MAX)
		return -ENAMETOOLONG;
	if (symlinkat(target, n->fd, name) < 0)
		return -errno;
	return reply_entry(r, n, name);
}

static int op_mknod(struct req *r, struct inode *n)
{
	const struct fuse_mknod_in *in = (const void *)r->arg;
	size_t pos = sizeof(*in);
	const char *name;
	mode_t type = in->mode & S_IFMT;
	int err = get_entry_name(r, &pos, &name);

	if (err < 0)
		return err;
	if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
		return -EPERM;	/* no device nodes on the host */
	if (mknodat(n->fd, name, type | (in->mode & 07777), 0) < 0)
		return -errno;
	err = fix_mode(r->s, n->fd, name, in->mode & 07777);
	return err < 0 ? err : reply_entry(r, n, name);
}

static int op_mkdir(struct req *r, struct inode *n)
{
	const struct fuse_mkdir_in *in = (const void *)r->arg;
	size_t pos = sizeof(*in);
	const char *name;
	int err = get_entry_name(r, &pos, &name);

	if (err < 0)
		return err;
	if (mkdirat(n->fd, name, in->mode & 07777) < 0)
		return -errno;
	err = fix_mode(r->s, n->fd, name, in->mode & 07777);
	return err < 0 ? err : reply_entry(r, n, name);
}

static int op_unlink(struct req *r, struct inode *n, int flags)
{
	size_t pos = 0;
	const char *name;
	int err = get_entry_name(r, &pos, &name);

	if (err < 0)
		return err;
	return unlinkat(n->fd, name, flags) < 0 ? -errno : 0;
}

static int do_rename(struct req *r, struct inode *n, uint64_t newdir, uint32_t flags, size_t pos)
{
	struct inode *nd = node_get(r->s, newdir);
	const char *oldname, *newname;
	int err;

	if (!nd)
		return -ESTALE;
	if ((err = get_entry_name(r, &pos, &oldname)) < 0 ||
	    (err = get_entry_name(r, &pos, &newname)) < 0)
		return err;
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) ||
	    flags == (RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL;
	return renameat2(n->fd, oldname, nd->fd, newname, flags) < 0 ? -errno : 0;
}

static int op_rename(struct req *r, struct inode *n)
{
	const struct fuse_rename_in *in = (const void *)r->arg;

	return do_rename(r, n, in->newdir, 0, sizeof(*in));
}

static int op_rename2(struct req *r, struct inode *n)
{
	const struct fuse_rename2_in *in = (const void *)r->arg;

	return do_rename(r, n, in->newdir, in->flags, sizeof(*in));
}

static int op_link(struct req *r, struct inode *n)
{
	const struct fuse_link_in *in = (const void *)r->arg;
	struct inode *old = node_get(r->s, in->oldnodeid);
	size_t pos = sizeof(*in);
	const char *name;
	char path[64];
	int err = get_entry_name(r, &pos, &name);

	if (err < 0)
		return err;
	if (!old)
		return -ESTALE;
	if (old->type == S_IFDIR)
		return -EPERM;
	proc_path(path, sizeof(path), old->fd);
	if (linkat(AT_FDCWD, path, n->fd, name, AT_SYMLINK_FOLLOW) < 0)
		return -errno;
	return reply_entry(r, n, name);
}

static int op_open(struct req *r, struct inode *n)
{
	struct fuse_server *s = r->s;
	const struct fuse_open_in *in = (const void *)r->arg;
	struct fuse_open_out *o = (struct fuse_open_out *)r->reply;
	char path[64];
	bool writable;
	int flags = host_flags(s, in->flags, &writable), fd, err;
	uint64_t fh;

	if (flags < 0)
		return flags;
	if (n->type != S_IFREG)
		return n->type == S_IFDIR ? -EISDIR : -EINVAL;
	if (!fd_room(s))
		return -ENFILE;
	proc_path(path, sizeof(path), n->fd);
	fd = open(path, flags);
	if (fd < 0)
		return -errno;
	err = file_add(s, fd, false, writable, &fh);
	if (err < 0) {
		close(fd);
		return err;
	}
	memset(o, 0, sizeof(*o));
	o->fh = fh;
	o->open_flags = open_flags_out(s, false);
	return sizeof(*o);
}

static int op_create(struct req *r, struct inode *n)
{
	struct fuse_server *s = r->s;
	const struct fuse_create_in *in = (const void *)r->arg;
	struct fuse_entry_out *e = (struct fuse_entry_out *)r->reply;
	struct fuse_open_out *o = (struct fuse_open_out *)(r->reply + sizeof(*e));
	size_t pos = sizeof(*in);
	const char *name;
	bool writable;
	int flags = host_flags(s, in->flags, &writable), fd, err;
	mode_t mode = in->mode & 07777;
	uint64_t fh;

	if (flags < 0)
		return flags;
	if ((err = get_entry_name(r, &pos, &name)) < 0)
		return err;
	if ((in->mode & S_IFMT) && (in->mode & S_IFMT) != S_IFREG)
		return -EINVAL;
	if (!fd_room(s))
		return -ENFILE;
	fd = open_beneath(n->fd, name, flags | O_CREAT | (in->flags & O_EXCL), mode);
	if (fd < 0)
		return fd;
	if ((mode & s->umask) && fchmod(fd, mode) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	err = lookup_at(s, n, n->fd, name, e);
	if (err < 0) {
		close(fd);
		return err;
	}
	err = file_add(s, fd, false, writable, &fh);
	if (err < 0) {
		close(fd);
		forget(s, e->nodeid, 1);
		return err;
	}
	memset(o, 0, sizeof(*o));
	o->fh = fh;
	o->open_flags = open_flags_out(s, false);
	return sizeof(*e) + sizeof(*o);
}

static bool off_ok(uint64_t off, uint64_t len)
{
	return off <= INT64_MAX && len <= INT64_MAX - off;
}

static int start_io(struct req *r, struct file *f, enum fuse_io_op op, uint64_t off, uint32_t len)
{
	struct fuse_io *io = r->io;

	io->op = op;
	io->fd = f->fd;
	io->datasync = false;
	io->off = off;
	io->len = len;
	io->niov = 0;
	io->unique = r->h.unique;
	io->fh = f->id;
	if (op == FUSE_IO_READ)
		io->niov = iov_slice(r->out, r->nout, HDR_OUT, len, io->iov);
	else if (op == FUSE_IO_WRITE)
		io->niov = iov_slice(r->in, r->nin, HDR_IN + sizeof(struct fuse_write_in), len,
				     io->iov);
	f->refs++;
	r->async = true;
	return 0;
}

static int op_read(struct req *r)
{
	const struct fuse_read_in *in = (const void *)r->arg;
	struct file *f = file_get(r->s, in->fh, false);
	uint32_t len = in->size;

	if (!f)
		return -EBADF;
	if (r->nout > FUSE_IO_MAX_IOV)
		return -EINVAL;
	if (len > r->room)
		len = r->room;
	if (len > FUSE_MAX_WRITE)
		len = FUSE_MAX_WRITE;
	if (!off_ok(in->offset, len))
		return -EINVAL;
	if (!len)
		return 0;
	return start_io(r, f, FUSE_IO_READ, in->offset, len);
}

static int op_write(struct req *r)
{
	const struct fuse_write_in *in = (const void *)r->arg;
	struct file *f = file_get(r->s, in->fh, false);

	if (!f)
		return -EBADF;
	if (!f->writable)
		return -EBADF;
	if (r->nin > FUSE_IO_MAX_IOV || in->size > FUSE_MAX_WRITE ||
	    r->read_len - HDR_IN - sizeof(*in) != in->size || !off_ok(in->offset, in->size))
		return -EINVAL;
	if (!in->size) {
		struct fuse_write_out *o = (struct fuse_write_out *)r->reply;
		memset(o, 0, sizeof(*o));
		return sizeof(*o);
	}
	return start_io(r, f, FUSE_IO_WRITE, in->offset, in->size);
}

static int op_statfs(struct req *r)
{
	struct fuse_statfs_out *o = (struct fuse_statfs_out *)r->reply;
	struct statfs st;

	if (fstatfs(r->s->root->fd, &st) < 0)
		return -errno;
	memset(o, 0, sizeof(*o));
	o->st.blocks = st.f_blocks;
	o->st.bfree = st.f_bfree;
	o->st.bavail = st.f_bavail;
	o->st.files = st.f_files;
	o->st.ffree = st.f_ffree;
	o->st.bsize = st.f_bsize;
	o->st.namelen = st.f_namelen;
	o->st.frsize = st.f_frsize;
	return sizeof(*o);
}

static int op_release(struct req *r, bool dir)
{
	const struct fuse_release_in *in = (const void *)r->arg;
	struct file *f = file_get(r->s, in->fh, dir);

	if (!f)
		return -EBADF;
	/* An I/O still in flight keeps the fd until it completes. */
	f->open = false;
	file_put(r->s, f);
	return 0;
}

static int op_fsync(struct req *r, bool dir)
{
	const struct fuse_fsync_in *in = (const void *)r->arg;
	struct file *f = file_get(r->s, in->fh, dir);

	if (!f)
		return -EBADF;
	start_io(r, f, FUSE_IO_FSYNC, 0, 0);
	r->io->datasync = in->fsync_flags & FUSE_FSYNC_FDATASYNC;
	return 0;
}

static int op_flush(struct req *r)
{
	const struct fuse_flush_in *in = (const void *)r->arg;

	return file_get(r->s, in->fh, false) ? 0 : -EBADF;
}

static bool user_xattr(const char *name)
{
	return !strncmp(name, "user.", 5);
}

/* An xattr name: NUL-terminated, 1..XATTR_NAME_MAX bytes. */
static int get_xattr_name(struct req *r, size_t *pos, const char **name)
{
	const char *p = (const char *)r->arg + *pos;
	size_t left = r->arglen - *pos, len = strnlen(p, left);

	if (len == left || len == 0)
		return -EINVAL;
	if (len > 255)
		return -ERANGE;
	*pos += len + 1;
	*name = p;
	return 0;
}

static int op_setxattr(struct req *r, struct inode *n)
{
	const struct fuse_setxattr_in *in = (const void *)r->arg;
	size_t pos = FUSE_COMPAT_SETXATTR_IN_SIZE;
	const char *name;
	char path[64];
	int err = get_xattr_name(r, &pos, &name);

	if (err < 0)
		return err;
	if (in->size > XATTR_MAX || in->size > r->arglen - pos)
		return -EINVAL;
	if (in->flags & ~(XATTR_CREATE | XATTR_REPLACE))
		return -EINVAL;
	if (!user_xattr(name) || n->type == S_IFLNK)
		return -EPERM;	/* no security.*, trusted.*, system.* on the host */
	proc_path(path, sizeof(path), n->fd);
	return setxattr(path, name, r->arg + pos, in->size, in->flags) < 0 ? -errno : 0;
}

static int op_getxattr(struct req *r, struct inode *n, bool list)
{
	const struct fuse_getxattr_in *in = (const void *)r->arg;
	size_t pos = sizeof(*in), size = in->size;
	const char *name = NULL;
	char path[64];
	ssize_t len;
	int err;

	if (!list && (err = get_xattr_name(r, &pos, &name)) < 0)
		return err;
	if (size > XATTR_MAX)
		size = XATTR_MAX;
	if (size > r->room)
		return -ERANGE;
	if (n->type == S_IFLNK) {
		len = list ? 0 : -ENODATA;
		if (len < 0)
			return len;
	} else {
		proc_path(path, sizeof(path), n->fd);
		if (list)
			len = listxattr(path, size ? (char *)r->reply : NULL, size);
		else
			len = getxattr(path, name, size ? r->reply : NULL, size);
		if (len < 0)
			return -errno;
	}
	if (!size) {
		struct fuse_getxattr_out *o = (struct fuse_getxattr_out *)r->reply;
		memset(o, 0, sizeof(*o));
		o->size = len;
		return sizeof(*o);
	}
	return len;
}

static int op_removexattr(struct req *r, struct inode *n)
{
	size_t pos = 0;
	const char *name;
	char path[64];
	int err = get_xattr_name(r, &pos, &name);

	if (err < 0)
		return err;
	if (!user_xattr(name) || n->type == S_IFLNK)
		return -EPERM;
	proc_path(path, sizeof(path), n->fd);
	return removexattr(path, name) < 0 ? -errno : 0;
}

static int op_opendir(struct req *r, struct inode *n)
{
	struct fuse_server *s = r->s;
	struct fuse_open_out *o = (struct fuse_open_out *)r->reply;
	uint64_t fh;
	int fd, err;

	if (n->type != S_IFDIR)
		return -ENOTDIR;
	if (!fd_room(s))
		return -ENFILE;
	fd = open_beneath(n->fd, ".", O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	err = file_add(s, fd, true, false, &fh);
	if (err < 0) {
		close(fd);
		return err;
	}
	memset(o, 0, sizeof(*o));
	o->fh = fh;
	o->open_flags = open_flags_out(s, true);
	return sizeof(*o);
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

static int op_readdir(struct req *r, bool plus)
{
	struct fuse_server *s = r->s;
	const struct fuse_read_in *in = (const void *)r->arg;
	struct file *f = file_get(s, in->fh, true);
	size_t size = in->size, len = 0;
	long got;

	if (!f)
		return -EBADF;
	if (in->offset > INT64_MAX)
		return -EINVAL;
	if (size > r->room)
		size = r->room;
	if (size > READDIR_MAX)
		size = READDIR_MAX;
	if (lseek(f->fd, in->offset, SEEK_SET) < 0)
		return -errno;
	got = syscall(SYS_getdents64, f->fd, s->dents, size);
	if (got < 0)
		return -errno;
	for (long p = 0; p < got;) {
		struct linux_dirent64 *d = (struct linux_dirent64 *)(s->dents + p);
		size_t namelen = strnlen(d->d_name, d->d_reclen - offsetof(struct linux_dirent64, d_name));
		size_t need = plus ? FUSE_DIRENTPLUS_SIZE(&(struct fuse_direntplus){
						.dirent.namelen = namelen })
				   : FUSE_DIRENT_SIZE(&(struct fuse_dirent){ .namelen = namelen });
		struct fuse_dirent *fd;

		p += d->d_reclen;
		if (len + need > size)
			break;
		memset(r->reply + len, 0, need);
		if (plus) {
			struct fuse_direntplus *dp = (struct fuse_direntplus *)(r->reply + len);
			/* "." and "..": no entry, the client takes no reference. */
			if (!is_dot(d->d_name) &&
			    lookup_at(s, NULL, f->fd, d->d_name, &dp->entry_out) < 0)
				continue;	/* gone meanwhile */
			fd = &dp->dirent;
		} else {
			fd = (struct fuse_dirent *)(r->reply + len);
		}
		fd->ino = d->d_ino;
		fd->off = d->d_off;
		fd->namelen = namelen;
		fd->type = d->d_type;
		memcpy(fd->name, d->d_name, namelen);
		len += need;
	}
	return len;
}

static int op_access(struct req *r, struct inode *n)
{
	const struct fuse_access_in *in = (const void *)r->arg;
	char path[64];

	if (in->mask & ~(uint32_t)(R_OK | W_OK | X_OK))
		return -EINVAL;
	if (r->s->readonly && (in->mask & W_OK))
		return -EROFS;
	if (n->type == S_IFLNK)
		return 0;
	proc_path(path, sizeof(path), n->fd);
	return faccessat(AT_FDCWD, path, in->mask, AT_EACCESS) < 0 ? -errno : 0;
}

static int op_fallocate(struct req *r)
{
	const struct fuse_fallocate_in *in = (const void *)r->arg;
	struct file *f = file_get(r->s, in->fh, false);
	uint32_t ok = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;

	if (!f || !f->writable)
		return -EBADF;
	if (in->mode & ~ok || !off_ok(in->offset, in->length) || !in->length)
		return -EINVAL;
	return fallocate(f->fd, in->mode, in->offset, in->length) < 0 ? -errno : 0;
}

static int op_lseek(struct req *r)
{
	const struct fuse_lseek_in *in = (const void *)r->arg;
	struct fuse_lseek_out *o = (struct fuse_lseek_out *)r->reply;
	struct file *f = file_get(r->s, in->fh, false);
	off_t res;

	if (!f)
		return -EBADF;
	if ((in->whence != SEEK_DATA && in->whence != SEEK_HOLE) || in->offset > INT64_MAX)
		return -EINVAL;
	res = lseek(f->fd, in->offset, in->whence);
	if (res < 0)
		return -errno;
	o->offset = res;
	return sizeof(*o);
}

static int op_copy_file_range(struct req *r)
{
	const struct fuse_copy_file_range_in *in = (const void *)r->arg;
	struct fuse_write_out *o = (struct fuse_write_out *)r->reply;
	struct file *fi = file_get(r->s, in->fh_in, false);
	struct file *fo = file_get(r->s, in->fh_out, false);
	loff_t oi = in->off_in, oo = in->off_out;
	size_t len = in->len < COPY_MAX ? in->len : COPY_MAX;
	ssize_t n;

	if (!fi || !fo || !fo->writable)
		return -EBADF;
	if (in->flags || !off_ok(in->off_in, len) || !off_ok(in->off_out, len))
		return -EINVAL;
	n = copy_file_range(fi->fd, &oi, fo->fd, &oo, len, 0);
	if (n < 0)
		return -errno;
	memset(o, 0, sizeof(*o));
	o->size = n;
	return sizeof(*o);
}

static void op_batch_forget(struct req *r)
{
	const struct fuse_batch_forget_in *in = (const void *)r->arg;
	const struct fuse_forget_one *one = (const void *)(r->arg + sizeof(*in));
	uint32_t max = (r->arglen - sizeof(*in)) / sizeof(*one);
	uint32_t count = in->count < max ? in->count : max;

	for (uint32_t i = 0; i < count; i++) {
		struct fuse_forget_one f;
		memcpy(&f, &one[i], sizeof(f));
		forget(r->s, f.nodeid, f.nlookup);
	}
}

/* What each operation needs: its fixed argument bytes, the reply bytes it
 * always needs room for, whether it changes the share, whether the header's
 * node id must name an inode. */
struct op_info {
	bool valid;
	uint16_t in_size;
	uint16_t reply_size;
	bool changes;
	bool node;
};

#define OP(op, in, out, ch, nd) [op] = { true, (in), (out), (ch), (nd) }
static const struct op_info ops[FUSE_COPY_FILE_RANGE + 1] = {
	OP(FUSE_LOOKUP, 0, sizeof(struct fuse_entry_out), false, true),
	OP(FUSE_FORGET, sizeof(struct fuse_forget_in), 0, false, false),
	OP(FUSE_GETATTR, sizeof(struct fuse_getattr_in), sizeof(struct fuse_attr_out), false, true),
	OP(FUSE_SETATTR, sizeof(struct fuse_setattr_in), sizeof(struct fuse_attr_out), true, true),
	OP(FUSE_READLINK, 0, 0, false, true),
	OP(FUSE_SYMLINK, 0, sizeof(struct fuse_entry_out), true, true),
	OP(FUSE_MKNOD, sizeof(struct fuse_mknod_in), sizeof(struct fuse_entry_out), true, true),
	OP(FUSE_MKDIR, sizeof(struct fuse_mkdir_in), sizeof(struct fuse_entry_out), true, true),
	OP(FUSE_UNLINK, 0, 0, true, true),
	OP(FUSE_RMDIR, 0, 0, true, true),
	OP(FUSE_RENAME, sizeof(struct fuse_rename_in), 0, true, true),
	OP(FUSE_LINK, sizeof(struct fuse_link_in), sizeof(struct fuse_entry_out), true, true),
	OP(FUSE_OPEN, sizeof(struct fuse_open_in), sizeof(struct fuse_open_out), false, true),
	OP(FUSE_READ, sizeof(struct fuse_read_in), 0, false, false),
	OP(FUSE_WRITE, sizeof(struct fuse_write_in), sizeof(struct fuse_write_out), true, false),
	OP(FUSE_STATFS, 0, sizeof(struct fuse_statfs_out), false, false),
	OP(FUSE_RELEASE, sizeof(struct fuse_release_in), 0, false, false),
	OP(FUSE_FSYNC, sizeof(struct fuse_fsync_in), 0, false, false),
	OP(FUSE_SETXATTR, FUSE_COMPAT_SETXATTR_IN_SIZE, 0, true, true),
	OP(FUSE_GETXATTR, sizeof(struct fuse_getxattr_in), sizeof(struct fuse_getxattr_out), false, true),
	OP(FUSE_LISTXATTR, sizeof(struct fuse_getxattr_in), sizeof(struct fuse_getxattr_out), false, true),
	OP(FUSE_REMOVEXATTR, 0, 0, true, true),
	OP(FUSE_FLUSH, sizeof(struct fuse_flush_in), 0, false, false),
	OP(FUSE_INIT, 16, sizeof(struct fuse_init_out), false, false),
	OP(FUSE_OPENDIR, sizeof(struct fuse_open_in), sizeof(struct fuse_open_out), false, true),
	OP(FUSE_READDIR, sizeof(struct fuse_read_in), 0, false, false),
	OP(FUSE_RELEASEDIR, sizeof(struct fuse_release_in), 0, false, false),
	OP(FUSE_FSYNCDIR, sizeof(struct fuse_fsync_in), 0, false, false),
	OP(FUSE_ACCESS, sizeof(struct fuse_access_in), 0, false, true),
	OP(FUSE_CREATE, sizeof(struct fuse_create_in),
	   sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out), true, true),
	OP(FUSE_DESTROY, 0, 0, false, false),
	OP(FUSE_BATCH_FORGET, sizeof(struct fuse_batch_forget_in), 0, false, false),
	OP(FUSE_FALLOCATE, sizeof(struct fuse_fallocate_in), 0, true, false),
	OP(FUSE_READDIRPLUS, sizeof(struct fuse_read_in), 0, false, false),
	OP(FUSE_RENAME2, sizeof(struct fuse_rename2_in), 0, true, true),
	OP(FUSE_LSEEK, sizeof(struct fuse_lseek_in), sizeof(struct fuse_lseek_out), false, false),
	OP(FUSE_COPY_FILE_RANGE, sizeof(struct fuse_copy_file_range_in),
	   sizeof(struct fuse_write_out), true, false),
};

static bool known(uint32_t op)
{
	return op < sizeof(ops) / sizeof(ops[0]) && ops[op].valid;
}

static int dispatch(struct req *r)
{
	struct fuse_server *s = r->s;
	uint32_t op = r->h.opcode;
	struct inode *n = NULL;

	if (!known(op))
		return -ENOSYS;
	if (op != FUSE_INIT && !s->initialized)
		return -EIO;
	if (r->arglen < ops[op].in_size)
		return -EINVAL;
	if (r->room < ops[op].reply_size)
		return -EINVAL;
	if (ops[op].changes && s->readonly)
		return -EROFS;
	if (ops[op].node && !(n = node_get(s, r->h.nodeid)))
		return -ESTALE;

	switch (op) {
	case FUSE_INIT: return op_init(r);
	case FUSE_LOOKUP: return op_lookup(r, n);
	case FUSE_GETATTR: return op_getattr(r, n);
	case FUSE_SETATTR: return op_setattr(r, n);
	case FUSE_READLINK: return op_readlink(r, n);
	case FUSE_SYMLINK: return op_symlink(r, n);
	case FUSE_MKNOD: return op_mknod(r, n);
	case FUSE_MKDIR: return op_mkdir(r, n);
	case FUSE_UNLINK: return op_unlink(r, n, 0);
	case FUSE_RMDIR: return op_unlink(r, n, AT_REMOVEDIR);
	case FUSE_RENAME: return op_rename(r, n);
	case FUSE_RENAME2: return op_rename2(r, n);
	case FUSE_LINK: return op_link(r, n);
	case FUSE_OPEN: return op_open(r, n);
	case FUSE_READ: return op_read(r);
	case FUSE_WRITE: return op_write(r);
	case FUSE_STATFS: return op_statfs(r);
	case FUSE_RELEASE: return op_release(r, false);
	case FUSE_RELEASEDIR: return op_release(r, true);
	case FUSE_FSYNC: return op_fsync(r, false);
	case FUSE_FSYNCDIR: return op_fsync(r, true);
	case FUSE_FLUSH: return op_flush(r);
	case FUSE_SETXATTR: return op_setxattr(r, n);
	case FUSE_GETXATTR: return op_getxattr(r, n, false);
	case FUSE_LISTXATTR: return op_getxattr(r, n, true);
	case FUSE_REMOVEXATTR: return op_removexattr(r, n);
	case FUSE_OPENDIR: return op_opendir(r, n);
	case FUSE_READDIR: return op_readdir(r, false);
	case FUSE_READDIRPLUS: return op_readdir(r, true);
	case FUSE_ACCESS: return op_access(r, n);
	case FUSE_CREATE: return op_create(r, n);
	case FUSE_FALLOCATE: return op_fallocate(r);
	case FUSE_LSEEK: return op_lseek(r);
	case FUSE_COPY_FILE_RANGE: return op_copy_file_range(r);
	case FUSE_DESTROY:
		fuse_server_reset(s);
		s->initialized = false;
		return 0;
	default:
		return -ENOSYS;
	}
}

int fuse_handle(struct fuse_server *s, const struct iovec *in, unsigned nin,
		const struct iovec *out, unsigned nout, struct fuse_io *io)
{
	struct req r = { .s = s, .in = in, .nin = nin, .out = out, .nout = nout, .io = io,
			 .reply = s->out + HDR_OUT };
	size_t write_len = 0, want;
	int res;

	for (unsigned i = 0; i < nin; i++)
		r.read_len += in[i].iov_len;
	for (unsigned i = 0; i < nout; i++)
		write_len += out[i].iov_len;
	if (r.read_len < HDR_IN)
		return -EPROTO;
	iov_copy(in, nin, 0, &r.h, HDR_IN, false);

	/* FORGET and BATCH_FORGET have no reply. */
	if (r.h.opcode == FUSE_FORGET || r.h.opcode == FUSE_BATCH_FORGET) {
		r.arglen = r.read_len - HDR_IN;
		if (r.h.len != r.read_len || r.arglen > IN_MAX - HDR_IN || !s->initialized ||
		    r.arglen < ops[r.h.opcode].in_size)
			return 0;
		iov_copy(in, nin, HDR_IN, s->in, r.arglen, false);
		r.arg = s->in;
		if (r.h.opcode == FUSE_FORGET)
			forget(s, r.h.nodeid, ((const struct fuse_forget_in *)r.arg)->nlookup);
		else
			op_batch_forget(&r);
		return 0;
	}
	if (write_len < HDR_OUT)
		return -EPROTO;
	r.room = write_len - HDR_OUT;
	if (r.room > OUT_MAX - HDR_OUT && r.h.opcode != FUSE_READ)
		r.room = OUT_MAX - HDR_OUT;

	if (r.h.len != r.read_len) {
		res = -EINVAL;
		goto reply;
	}
	want = r.read_len - HDR_IN;
	if (r.h.opcode == FUSE_WRITE && want > sizeof(struct fuse_write_in))
		want = sizeof(struct fuse_write_in);
	if (want > IN_MAX - HDR_IN) {
		res = -E2BIG;
		goto reply;
	}
	iov_copy(in, nin, HDR_IN, s->in, want, false);
	/* Names are parsed with str* functions: keep a NUL after the bytes. */
	s->in[want] = 0;
	r.arg = s->in;
	r.arglen = want;

	res = dispatch(&r);
	if (r.async)
		return -EINPROGRESS;
reply:
	if (res < 0)
		return put_header(out, nout, r.h.unique, res, HDR_OUT);
	iov_copy(out, nout, HDR_OUT, r.reply, res, true);
	return put_header(out, nout, r.h.unique, 0, HDR_OUT + res);
}

uint32_t fuse_io_done(struct fuse_server *s, struct fuse_io *io, int res,
		      const struct iovec *out, unsigned nout)
{
	uint32_t len = HDR_OUT;

	fuse_io_drop(s, io);
	if (res < 0)
		return put_header(out, nout, io->unique, res, HDR_OUT);
	if (io->op == FUSE_IO_READ) {
		len += res;
	} else if (io->op == FUSE_IO_WRITE) {
		struct fuse_write_out o = { .size = res };
		iov_copy(out, nout, HDR_OUT, &o, sizeof(o), true);
		len += sizeof(o);
	}
	return put_header(out, nout, io->unique, 0, len);
}

void fuse_io_drop(struct fuse_server *s, struct fuse_io *io)
{
	struct file *f = table_get(&s->files, io->fh);

	if (f)
		file_put(s, f);
}

void fuse_server_reset(struct fuse_server *s)
{
	for (uint32_t i = 0; i < s->nodes.next; i++) {
		struct inode *n = s->nodes.items[i];
		if (n && n != s->root)
			node_free(s, n);
	}
	for (uint32_t i = 0; i < s->files.next; i++) {
		struct file *f = s->files.items[i];
		/* Drop the open reference; one with I/O in flight lives on. */
		if (f && f->open) {
			f->open = false;
			file_put(s, f);
		}
	}
	s->initialized = false;
	s->writeback = false;
}

void fuse_server_stats(const struct fuse_server *s, struct fuse_server_stats *st)
{
	st->inodes = s->nodes.used;
	st->files = s->files.used;
}

int fuse_server_create(const char *dir, bool readonly, enum fuse_cache cache,
		       struct fuse_server **out)
{
	struct fuse_server *s = calloc(1, sizeof(*s));
	struct rlimit rl;
	struct stat st;
	int fd, err;

	if (!s)
		return -ENOMEM;
	s->readonly = readonly;
	s->cache = cache;
	s->uid = geteuid();
	s->gid = getegid();
	s->umask = umask(022);
	umask(s->umask);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		rl.rlim_cur = 1024;
	s->maxfds = rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 2;
	s->nhash = 256;
	s->hash = calloc(s->nhash, sizeof(*s->hash));
	if (!s->hash) {
		err = -ENOMEM;
		goto fail;
	}
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	err = stat_fd(fd, &st);
	if (err < 0) {
		close(fd);
		goto fail;
	}
	/* Index 0 stays unused; the root is index 1, generation 0: id 1. */
	uint64_t unused;
	err = table_add(&s->nodes, NULL, &unused);
	if (err == 0)
		err = table_add(&s->files, NULL, &unused);
	if (err == 0)
		err = node_take(s, fd, &st, &s->root);
	else
		close(fd);
	if (err < 0)
		goto fail;
	s->nodes.used--;	/* the placeholder */
	s->files.used--;
	*out = s;
	return 0;
fail:
	fuse_server_destroy(s);
	return err;
}

void fuse_server_destroy(struct fuse_server *s)
{
	if (!s)
		return;
	if (s->hash) {
		fuse_server_reset(s);
		/* Files with I/O the transport never finished. */
		for (uint32_t i = 0; i < s->files.next; i++) {
			struct file *f = s->files.items[i];
			if (f) {
				close(f->fd);
				free(f);
			}
		}
		if (s->root) {
			close(s->root->fd);
			free(s->root);
		}
	}
	table_free(&s->nodes);
	table_free(&s->files);
	free(s->hash);
	free(s);
}
