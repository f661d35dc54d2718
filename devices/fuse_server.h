/* A FUSE file server (protocol 7.31, as Linux 6.1 speaks it) on a host
 * directory, independent of any transport: requests and replies are byte
 * buffers (iovecs). virtio-fs carries them; tests and fuzzers call it
 * directly.
 *
 * Confinement: every inode is an O_PATH fd, names are single components
 * resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS) relative to their parent, symlinks are never
 * followed on the host, and ".." at the share root is the root. Files are
 * created with the process's credentials; a chown to another id is EPERM.
 * A read-only share answers every change with EROFS.
 *
 * Reads, writes and fsyncs are handed back to the caller as a struct
 * fuse_io to perform (io_uring on the event loop); everything else is
 * answered at once with synchronous syscalls. One thread at a time. */
#ifndef COVE_FUSE_SERVER_H
#define COVE_FUSE_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct fuse_server;

enum fuse_cache {
	FUSE_CACHE_AUTO,	/* default: 1 s timeouts, page cache kept while unchanged */
	FUSE_CACHE_NONE,	/* 0 timeouts, direct I/O: every access asks the host */
	FUSE_CACHE_ALWAYS,	/* long timeouts, cached data kept, writeback cache */
};

/* Largest reply payload of READ and request payload of WRITE. */
#define FUSE_MAX_WRITE		(512u << 10)
/* Most buffers a READ or WRITE's data may be split into. */
#define FUSE_IO_MAX_IOV		256

enum fuse_io_op {
	FUSE_IO_READ,		/* preadv(fd, iov, off) into the reply's data */
	FUSE_IO_WRITE,		/* pwritev(fd, iov, off) from the request's data */
	FUSE_IO_FSYNC,		/* fsync(fd) (fdatasync when datasync) */
};

/* An operation fuse_handle leaves to its caller. iov points into the
 * request's buffers. Hand the result to fuse_io_done (or fuse_io_drop)
 * exactly once. */
struct fuse_io {
	enum fuse_io_op op;
	int fd;
	bool datasync;
	uint64_t off;
	uint32_t len;		/* bytes in iov */
	unsigned niov;
	struct iovec iov[FUSE_IO_MAX_IOV];
	/* internal */
	uint64_t unique;
	uint64_t fh;
};

/* Serve directory dir (opened O_PATH | O_DIRECTORY; symlinks in dir's own
 * path are the user's choice and followed). Raises RLIMIT_NOFILE's soft
 * limit to the hard one (inodes are held as fds). 0 with *out, -ENOMEM,
 * or -errno from opening dir (no message: the caller words it). Setup
 * thread. */
int fuse_server_create(const char *dir, bool readonly, enum fuse_cache cache,
		       struct fuse_server **out);

/* Close every fd and free the server. NULL is fine. */
void fuse_server_destroy(struct fuse_server *s);

/* Forget the session (inodes but the root, open files) as after DESTROY;
 * files with an I/O in flight close when it is done. For a device reset.
 * The server's thread. */
void fuse_server_reset(struct fuse_server *s);

/* Handle one request: in[0, nin) holds it (fuse_in_header, arguments, WRITE
 * data), out[0, nout) receives the reply. Validates everything: lengths,
 * names (NUL-terminated, no '/', at most NAME_MAX), node ids and file
 * handles, offsets and sizes. Returns the reply's length (0 for FORGET and
 * BATCH_FORGET, which have none); an error is a reply with
 * fuse_out_header.error set. -EINPROGRESS: *io was filled, perform it and
 * call fuse_io_done. -EPROTO: the buffers cannot carry a request or its
 * reply (shorter than the headers): nothing written, the transport's
 * business. The server's thread. */
int fuse_handle(struct fuse_server *s, const struct iovec *in, unsigned nin,
		const struct iovec *out, unsigned nout, struct fuse_io *io);

/* io finished with res (bytes transferred, 0, or -errno); writes the reply
 * into out (the request's reply buffers) and returns its length. The
 * server's thread. */
uint32_t fuse_io_done(struct fuse_server *s, struct fuse_io *io, int res,
		      const struct iovec *out, unsigned nout);

/* io will not be answered (the transport was reset): release what it
 * holds. The server's thread. */
void fuse_io_drop(struct fuse_server *s, struct fuse_io *io);

struct fuse_server_stats {
	uint64_t inodes;	/* node ids held */
	uint64_t files;		/* open file and directory handles */
};

/* Counts, for tests and metrics. The server's thread. */
void fuse_server_stats(const struct fuse_server *s, struct fuse_server_stats *st);

#endif
