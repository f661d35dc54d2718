#include "virtio_fs.h"

#include <assert.h>
#include <endian.h>
#include <linux/fuse.h>
#include <errno.h>
#include <liburing.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "evloop.h"
#include "inflight.h"
#include "iov.h"
#include "log.h"
#include "virtio_dev.h"
#include "vm.h"

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

struct vfs_req {
	struct inflight_link link;	/* first (virtio/inflight.h) */
	struct evloop_handler h;
	struct vfs *fs;
	uint16_t q;
	uint32_t done;			/* bytes transferred so far */
	struct iovec *cur;		/* what is left of io.iov */
	unsigned ncur;
	struct fuse_io io;
	struct virtq_elem elem;
};
static_assert(offsetof(struct vfs_req, link) == 0, "the inflight link comes first");


struct vfs {
	struct virtio_dev dev;		/* first */
	struct fuse_server *srv;
	uint8_t config[VFS_CONFIG_SIZE];
	struct inflight reqs;
	bool stalled;			/* stopped popping at the in-flight limit */
};

static struct vfs *to_fs(struct virtio_dev *d)
{
	return (struct vfs *)d;
}

static struct vfs_req *req_get(struct vfs *fs)
{
	struct vfs_req *r = inflight_get(&fs->reqs);

	if (!r)
		return NULL;
	r->fs = fs;
	r->done = 0;
	return r;
}

/* Give the chain back with len reply bytes; count it. */
static void req_answer(struct vfs_req *r, uint32_t len)
{
	struct virtio_dev *d = &r->fs->dev;
	struct fuse_out_header oh;

	virtq_push(&d->vqs[r->q], r->elem.head, len);
	__atomic_fetch_add(&d->stats.requests, 1, __ATOMIC_RELAXED);
	if (len >= sizeof(oh)) {
		iov_copy(r->elem.iov + r->elem.nread, r->elem.nwrite, 0, &oh, sizeof(oh), false);
		if (oh.error)
			__atomic_fetch_add(&d->stats.errors, 1, __ATOMIC_RELAXED);
	}
}

static void vfs_queue_notify(struct virtio_dev *d, uint32_t q);

static void submit_io(struct vfs_req *r);

static void io_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct vfs_req *r = container_of(h, struct vfs_req, h);
	struct vfs *fs = r->fs;
	struct fuse_io *io = &r->io;
	uint16_t q = r->q;

	(void)flags;
	if (r->link.orphan) {
		fuse_io_drop(fs->srv, io);
		inflight_del(&fs->reqs, r);
		inflight_put(&fs->reqs, r);
		return;
	}
	if (res == -EAGAIN || res == -EINTR) {
		submit_io(r);
		return;
	}
	if (res > 0 && io->op != FUSE_IO_FSYNC && r->done + res < io->len) {
		/* Short transfer: go on with the rest. The client takes a
		 * short READ reply for the end of the file, so a read stops
		 * only at a 0 (EOF). */
		r->done += res;
		iov_advance(&r->cur, &r->ncur, res);
		submit_io(r);
		return;
	}
	if (res >= 0)
		res += r->done;
	else
		log_ratelimited(&fs->dev.log_budget, fs->dev.name, "%s: %s",
				io->op == FUSE_IO_READ ? "read" : io->op == FUSE_IO_WRITE ?
				"write" : "fsync", strerror(-res));
	inflight_del(&fs->reqs, r);
	fs->reqs.nactive--;
	req_answer(r, fuse_io_done(fs->srv, io, res, r->elem.iov + r->elem.nread,
				   r->elem.nwrite));
	virtio_dev_notify(&fs->dev, &fs->dev.vqs[q]);
	inflight_put(&fs->reqs, r);
	if (fs->stalled) {
		fs->stalled = false;
		vfs_queue_notify(&fs->dev, q);
	}
}

static void submit_io(struct vfs_req *r)
{
	struct fuse_io *io = &r->io;
	struct io_uring_sqe *sqe = evloop_sqe(r->fs->dev.loop, &r->h);

	r->h.cb = io_done;
	switch (io->op) {
	case FUSE_IO_READ:
		io_uring_prep_readv(sqe, io->fd, r->cur, r->ncur, io->off + r->done);
		break;
	case FUSE_IO_WRITE:
		io_uring_prep_writev(sqe, io->fd, r->cur, r->ncur, io->off + r->done);
		break;
	case FUSE_IO_FSYNC:
		io_uring_prep_fsync(sqe, io->fd, io->datasync ? IORING_FSYNC_DATASYNC : 0);
		break;
	}
}

/* Handle one popped chain. False when the driver broke the protocol (the
 * device now needs a reset). */
static bool req_start(struct vfs *fs, struct vfs_req *r)
{
	struct virtq_elem *e = &r->elem;
	int res = fuse_handle(fs->srv, e->iov, e->nread, e->iov + e->nread, e->nwrite, &r->io);

	if (res == -EINPROGRESS) {
		r->cur = r->io.iov;
		r->ncur = r->io.niov;
		inflight_add(&fs->reqs, r);
		submit_io(r);
		return true;
	}
	if (res == -EPROTO) {
		virtio_dev_fail(&fs->dev, "queue %u: request of %u bytes with %u bytes for the reply",
				r->q, e->read_len, e->write_len);
		inflight_put(&fs->reqs, r);
		return false;
	}
	req_answer(r, res);
	inflight_put(&fs->reqs, r);
	return true;
}

static void vfs_queue_notify(struct virtio_dev *d, uint32_t q)
{
	struct vfs *fs = to_fs(d);
	struct virtq *vq = &d->vqs[q];
	bool answered = false;

	for (;;) {
		struct vfs_req *r;
		int got;

		/* A driver has at most a queue's worth of requests out. */
		if (fs->reqs.nactive >= vq->size) {
			fs->stalled = true;
			break;
		}
		r = req_get(fs);
		if (!r) {
			log_ratelimited(&d->log_budget, d->name, "out of memory for requests");
			break;
		}
		got = virtio_dev_pop(d, vq, &r->elem);
		if (got <= 0 && got != -E2BIG) {
			inflight_put(&fs->reqs, r);
			break;
		}
		r->q = q;
		if (got == -E2BIG) {
			virtio_dev_guest_error(d, "request with more than %d buffers",
					       VIRTQ_MAX_SEGS);
			req_answer(r, 0);
			inflight_put(&fs->reqs, r);
			answered = true;
			continue;
		}
		if (!req_start(fs, r))
			break;
		answered = true;
	}
	if (answered)
		virtio_dev_notify(d, vq);
}

/* ---- device ops ---- */

static void vfs_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, to_fs(d)->config + off, len);
}

static void vfs_reset(struct virtio_dev *d)
{
	struct vfs *fs = to_fs(d);

	/* In-flight I/O cannot be recalled: its completions find the
	 * requests orphaned and only release them. */
	inflight_orphan_all(&fs->reqs);
	fs->stalled = false;
	fuse_server_reset(fs->srv);
}

static void vfs_destroy(struct virtio_dev *d)
{
	struct vfs *fs = to_fs(d);

	inflight_free(&fs->reqs);
	fuse_server_destroy(fs->srv);
	free(fs);
}

static const struct virtio_dev_ops vfs_ops = {
	.kind = "fs",
	.device_id = VIRTIO_FS_DEVICE_ID,
	.num_queues = 1 + VFS_REQUEST_QUEUES,
	.queue_max = VFS_QUEUE_SIZE,
	.config_size = VFS_CONFIG_SIZE,
	.features = 0,
	.config_read = vfs_config_read,
	.queue_notify = vfs_queue_notify,
	.reset = vfs_reset,
	.destroy = vfs_destroy,
};

int vfs_open(const char *tag, const char *dir, bool readonly, enum fuse_cache cache,
	     struct virtio_dev **out)
{
	size_t taglen = strlen(tag);
	uint32_t nq = htole32(VFS_REQUEST_QUEUES);
	struct vfs *fs;
	int err;

	if (taglen == 0 || taglen > VFS_TAG_MAX)
		return cove_fail(-EINVAL, "share %s: tag must be 1 to %d bytes", tag, VFS_TAG_MAX);
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return cove_fail(-ENOMEM, "share %s: out of memory", tag);
	err = fuse_server_create(dir, readonly, cache, &fs->srv);
	if (err < 0) {
		free(fs);
		return cove_fail(err, "share %s: %s: %s", tag, dir, strerror(-err));
	}
	fs->dev.ops = &vfs_ops;
	fs->dev.irqfd = -1;
	inflight_init(&fs->reqs, &fs->dev, sizeof(struct vfs_req));
	memcpy(fs->config + VFS_CFG_TAG, tag, taglen);
	memcpy(fs->config + VFS_CFG_NUM_QUEUES, &nq, 4);
	*out = &fs->dev;
	return 0;
}

int vfs_create(struct vm *vm, const char *tag, const char *dir, bool readonly,
	       enum fuse_cache cache, struct virtio_dev **out)
{
	struct virtio_dev *d;
	int err = vfs_open(tag, dir, readonly, cache, &d);

	if (err == 0)
		err = vm_adopt_virtio(vm, d);
	if (err == 0)
		*out = d;
	return err;
}
