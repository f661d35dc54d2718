#include "virtio_blk.h"

#include <assert.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evloop.h"
#include "inflight.h"
#include "iov.h"
#include "log.h"
#include "virtio_dev.h"
#include "vm.h"

#define SECTOR_SHIFT	9
#define SECTOR_SIZE	(1u << SECTOR_SHIFT)
#define REQ_HDR_BYTES	16	/* le32 type, le32 reserved, le64 sector */
#define DWZ_SEG_BYTES	16	/* le64 sector, le32 num_sectors, le32 flags */

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

/* Steps of one discard / write-zeroes range. */
enum dwz_step {
	DWZ_PUNCH,		/* PUNCH_HOLE | KEEP_SIZE */
	DWZ_ZERO,		/* ZERO_RANGE | KEEP_SIZE */
	DWZ_ALLOC,		/* KEEP_SIZE: re-allocate after a punch */
};

struct dwz_range {
	uint64_t off, len;	/* bytes */
	bool unmap;
};

struct vblk_req {
	struct inflight_link link;	/* first (virtio/inflight.h) */
	struct evloop_handler h;
	struct vblk *blk;
	uint16_t q;
	uint32_t type;
	uint8_t *status;		/* host pointer to the status byte */
	uint32_t used_len;		/* bytes written for the driver on success */

	/* read / write: what is left */
	uint64_t off;
	uint64_t left;
	struct iovec *cur;
	unsigned ncur;

	/* discard / write zeroes */
	struct dwz_range ranges[VBLK_MAX_DWZ_SEGS];
	unsigned nranges, range;
	enum dwz_step step;

	struct iovec data[VIRTQ_MAX_SEGS];
	struct virtq_elem elem;
};
static_assert(offsetof(struct vblk_req, link) == 0, "the inflight link comes first");


struct vblk {
	struct virtio_dev dev;		/* first */
	int fd;
	bool readonly;
	uint64_t capacity;		/* sectors */
	uint8_t config[VBLK_CONFIG_SIZE];
	struct inflight reqs;
	bool stalled;			/* stopped popping at the in-flight limit */
	unsigned log_budget;
};

static struct vblk *to_blk(struct virtio_dev *d)
{
	return (struct vblk *)d;
}

/* ---- requests ---- */

static struct vblk_req *req_get(struct vblk *b)
{
	struct vblk_req *r = inflight_get(&b->reqs);

	if (!r)
		return NULL;
	r->blk = b;
	r->status = NULL;
	r->used_len = 0;
	return r;
}

/* Answer the request: status byte, used ring, counters. */
static void req_finish(struct vblk_req *r, uint8_t status)
{
	struct vblk *b = r->blk;
	struct virtio_dev *d = &b->dev;
	uint32_t len = status == VIRTIO_BLK_S_OK ? r->used_len : 1;

	if (r->status)
		*r->status = status;
	else
		len = 0;
	virtq_push(&d->vqs[r->q], r->elem.head, len);
	__atomic_fetch_add(&d->stats.requests, 1, __ATOMIC_RELAXED);
	if (status != VIRTIO_BLK_S_OK)
		__atomic_fetch_add(&d->stats.errors, 1, __ATOMIC_RELAXED);
}

static void vblk_queue_notify(struct virtio_dev *d, uint32_t q);

/* An asynchronous request finished (or failed): answer, notify, recycle. */
static void req_complete(struct vblk_req *r, uint8_t status)
{
	struct vblk *b = r->blk;
	uint16_t q = r->q;

	inflight_del(&b->reqs, r);
	b->reqs.nactive--;
	req_finish(r, status);
	virtio_dev_notify(&b->dev, &b->dev.vqs[q]);
	inflight_put(&b->reqs, r);
	if (b->stalled) {
		b->stalled = false;
		vblk_queue_notify(&b->dev, q);
	}
}

/* Completion of a request the reset orphaned: it must not touch guest
 * memory or the rings any more. True when r was orphaned (and is gone). */
static bool req_orphaned(struct vblk_req *r)
{
	if (!r->link.orphan)
		return false;
	inflight_del(&r->blk->reqs, r);
	inflight_put(&r->blk->reqs, r);
	return true;
}

static void submit_rw(struct vblk_req *r);
static void submit_dwz(struct vblk_req *r);

static void rw_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct vblk_req *r = container_of(h, struct vblk_req, h);

	(void)flags;
	if (req_orphaned(r))
		return;
	if (res == -EAGAIN || res == -EINTR) {
		submit_rw(r);
		return;
	}
	if (res <= 0) {
		/* 0: end of file under a disk that shrank, or no progress */
		log_ratelimited(&r->blk->log_budget, r->blk->dev.name, "%s at byte %llu: %s",
				r->type == VIRTIO_BLK_T_IN ? "read" : "write",
				(unsigned long long)r->off,
				res ? strerror(-res) : "unexpected end of file");
		req_complete(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	if ((uint64_t)res >= r->left) {
		req_complete(r, VIRTIO_BLK_S_OK);
		return;
	}
	/* Short transfer: go on with the rest. */
	r->left -= res;
	r->off += res;
	iov_advance(&r->cur, &r->ncur, res);
	submit_rw(r);
}

static void submit_rw(struct vblk_req *r)
{
	struct vblk *b = r->blk;
	struct io_uring_sqe *sqe = evloop_sqe(b->dev.loop, &r->h);

	r->h.cb = rw_done;
	if (r->type == VIRTIO_BLK_T_IN)
		io_uring_prep_readv(sqe, b->fd, r->cur, r->ncur, r->off);
	else
		io_uring_prep_writev(sqe, b->fd, r->cur, r->ncur, r->off);
}

static void flush_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct vblk_req *r = container_of(h, struct vblk_req, h);

	(void)flags;
	if (req_orphaned(r))
		return;
	if (res < 0)
		log_ratelimited(&r->blk->log_budget, r->blk->dev.name, "flush: %s",
				strerror(-res));
	req_complete(r, res < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
}

static void dwz_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct vblk_req *r = container_of(h, struct vblk_req, h);
	const struct dwz_range *rg = &r->ranges[r->range];
	bool discard = r->type == VIRTIO_BLK_T_DISCARD;

	(void)flags;
	if (req_orphaned(r))
		return;
	if (res == -EAGAIN || res == -EINTR) {
		submit_dwz(r);
		return;
	}
	if (res == -EOPNOTSUPP || res == -EINVAL) {
		/* The file system cannot do this mode: try another way. */
		if (discard) {
			res = 0;	/* a discard is only a hint */
		} else if (r->step == DWZ_ZERO && !rg->unmap) {
			r->step = DWZ_PUNCH;
			submit_dwz(r);
			return;
		} else if (r->step == DWZ_PUNCH && rg->unmap) {
			r->step = DWZ_ZERO;
			submit_dwz(r);
			return;
		} else if (r->step == DWZ_ALLOC) {
			res = 0;	/* the range reads as zeroes already */
		}
	}
	if (res < 0) {
		log_ratelimited(&r->blk->log_budget, r->blk->dev.name, "%s at byte %llu: %s",
				discard ? "discard" : "write zeroes",
				(unsigned long long)rg->off, strerror(-res));
		req_complete(r, VIRTIO_BLK_S_IOERR);
		return;
	}
	if (!discard && !rg->unmap && r->step == DWZ_PUNCH) {
		/* Zeroed by punching: keep the range allocated. */
		r->step = DWZ_ALLOC;
		submit_dwz(r);
		return;
	}
	r->range++;
	if (r->range == r->nranges) {
		req_complete(r, VIRTIO_BLK_S_OK);
		return;
	}
	r->step = discard || r->ranges[r->range].unmap ? DWZ_PUNCH : DWZ_ZERO;
	submit_dwz(r);
}

static void submit_dwz(struct vblk_req *r)
{
	static const int modes[] = {
		[DWZ_PUNCH] = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		[DWZ_ZERO] = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
		[DWZ_ALLOC] = FALLOC_FL_KEEP_SIZE,
	};
	struct vblk *b = r->blk;
	const struct dwz_range *rg = &r->ranges[r->range];
	struct io_uring_sqe *sqe = evloop_sqe(b->dev.loop, &r->h);

	r->h.cb = dwz_done;
	io_uring_prep_fallocate(sqe, b->fd, modes[r->step], rg->off, rg->len);
}

static bool range_ok(const struct vblk *b, uint64_t sector, uint64_t nsectors)
{
	return sector <= b->capacity && nsectors <= b->capacity - sector;
}

/* Parse the discard / write-zeroes ranges; a status, or OK to go on. */
static uint8_t parse_dwz(struct vblk *b, struct vblk_req *r, size_t bytes)
{
	struct virtq_elem *e = &r->elem;
	bool discard = r->type == VIRTIO_BLK_T_DISCARD;
	unsigned n = bytes / DWZ_SEG_BYTES;

	if (!virtio_has_feature(&b->dev, discard ? VIRTIO_BLK_F_DISCARD : VIRTIO_BLK_F_WRITE_ZEROES))
		return VIRTIO_BLK_S_UNSUPP;
	if (bytes == 0 || bytes % DWZ_SEG_BYTES || n > VBLK_MAX_DWZ_SEGS)
		return VIRTIO_BLK_S_IOERR;
	r->nranges = 0;
	for (unsigned i = 0; i < n; i++) {
		uint8_t raw[DWZ_SEG_BYTES];
		uint64_t sector;
		uint32_t num, fl;

		iov_copy(e->iov, e->nread, REQ_HDR_BYTES + i * DWZ_SEG_BYTES, raw, sizeof(raw), false);
		memcpy(&sector, raw, 8);
		memcpy(&num, raw + 8, 4);
		memcpy(&fl, raw + 12, 4);
		sector = le64toh(sector);
		num = le32toh(num);
		fl = le32toh(fl);
		if (fl & ~VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP)
			return VIRTIO_BLK_S_UNSUPP;
		if (discard && fl)
			return VIRTIO_BLK_S_UNSUPP;
		if (num > VBLK_MAX_DWZ_SECTORS || !range_ok(b, sector, num))
			return VIRTIO_BLK_S_IOERR;
		if (num == 0)
			continue;
		r->ranges[r->nranges++] = (struct dwz_range){
			.off = sector << SECTOR_SHIFT,
			.len = (uint64_t)num << SECTOR_SHIFT,
			.unmap = fl & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
		};
	}
	return VIRTIO_BLK_S_OK;
}

/* Start r. Returns true when it was answered at once (pushed, and the
 * request recycled), false when it went to io_uring. */
static bool req_start(struct vblk *b, struct vblk_req *r)
{
	struct virtq_elem *e = &r->elem;
	uint8_t hdr[REQ_HDR_BYTES];
	uint64_t sector, data;
	uint32_t type;
	uint8_t st;

	if (e->write_len == 0) {
		/* Nowhere to put a status: give the chain back empty. */
		log_ratelimited(&b->log_budget, b->dev.name, "request without a status byte");
		goto done_err;
	}
	{
		const struct iovec *last = &e->iov[e->nread + e->nwrite - 1];
		r->status = (uint8_t *)last->iov_base + last->iov_len - 1;
	}
	if (e->read_len < REQ_HDR_BYTES) {
		log_ratelimited(&b->log_budget, b->dev.name, "request header too short (%u bytes)",
				e->read_len);
		goto done_err;
	}
	iov_copy(e->iov, e->nread, 0, hdr, sizeof(hdr), false);
	memcpy(&type, hdr, 4);
	memcpy(&sector, hdr + 8, 8);
	type = le32toh(type);
	sector = le64toh(sector);
	r->type = type;

	switch (type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		if (type == VIRTIO_BLK_T_OUT && b->readonly) {
			st = VIRTIO_BLK_S_IOERR;
			goto done;
		}
		if (type == VIRTIO_BLK_T_IN) {
			data = e->write_len - 1;
			r->ncur = iov_slice(e->iov + e->nread, e->nwrite, 0, data, r->data);
			r->used_len = data + 1;
		} else {
			data = e->read_len - REQ_HDR_BYTES;
			r->ncur = iov_slice(e->iov, e->nread, REQ_HDR_BYTES, data, r->data);
			r->used_len = 1;
		}
		if (data % SECTOR_SIZE || !range_ok(b, sector, data >> SECTOR_SHIFT)) {
			st = VIRTIO_BLK_S_IOERR;
			goto done;
		}
		if (data == 0) {
			st = VIRTIO_BLK_S_OK;
			goto done;
		}
		r->cur = r->data;
		r->off = sector << SECTOR_SHIFT;
		r->left = data;
		inflight_add(&b->reqs, r);
		submit_rw(r);
		return false;

	case VIRTIO_BLK_T_FLUSH: {
		struct io_uring_sqe *sqe;
		r->used_len = 1;
		inflight_add(&b->reqs, r);
		sqe = evloop_sqe(b->dev.loop, &r->h);
		r->h.cb = flush_done;
		io_uring_prep_fsync(sqe, b->fd, IORING_FSYNC_DATASYNC);
		return false;
	}

	case VIRTIO_BLK_T_GET_ID: {
		char id[VIRTIO_BLK_ID_BYTES] = { 0 };
		size_t room = e->write_len - 1;
		size_t n = room < sizeof(id) ? room : sizeof(id);
		/* 20 bytes, NUL-padded, not necessarily NUL-terminated */
		char full[sizeof(id) + 1];
		snprintf(full, sizeof(full), "cove-%s", b->dev.name);
		memcpy(id, full, strnlen(full, sizeof(id)));
		iov_copy(e->iov + e->nread, e->nwrite, 0, id, n, true);
		r->used_len = n + 1;
		st = VIRTIO_BLK_S_OK;
		goto done;
	}

	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		r->used_len = 1;
		if (b->readonly) {
			st = VIRTIO_BLK_S_IOERR;
			goto done;
		}
		st = parse_dwz(b, r, e->read_len - REQ_HDR_BYTES);
		if (st != VIRTIO_BLK_S_OK || r->nranges == 0)
			goto done;
		r->range = 0;
		r->step = type == VIRTIO_BLK_T_DISCARD || r->ranges[0].unmap ? DWZ_PUNCH : DWZ_ZERO;
		inflight_add(&b->reqs, r);
		submit_dwz(r);
		return false;

	default:
		r->used_len = 1;
		st = VIRTIO_BLK_S_UNSUPP;
		goto done;
	}

done_err:
	st = VIRTIO_BLK_S_IOERR;
done:
	req_finish(r, st);
	inflight_put(&b->reqs, r);
	return true;
}

static void vblk_queue_notify(struct virtio_dev *d, uint32_t q)
{
	struct vblk *b = to_blk(d);
	struct virtq *vq = &d->vqs[q];
	bool answered = false;

	for (;;) {
		struct vblk_req *r;
		int got;

		/* A driver has at most a queue's worth of requests out; one
		 * that republishes heads early must not make us allocate
		 * without bound. Go on when one completes. */
		if (b->reqs.nactive >= vq->size) {
			b->stalled = true;
			break;
		}
		r = req_get(b);
		if (!r) {
			/* Out of memory: the rest waits for the next kick or completion. */
			log_ratelimited(&b->log_budget, d->name, "out of memory for requests");
			break;
		}
		got = virtio_dev_pop(d, vq, &r->elem);
		if (got <= 0 && got != -E2BIG) {
			inflight_put(&b->reqs, r);
			break;
		}
		r->q = q;
		if (got == -E2BIG) {
			log_ratelimited(&b->log_budget, d->name,
					"request with more than %d buffers", VIRTQ_MAX_SEGS);
			req_finish(r, VIRTIO_BLK_S_IOERR);	/* no status pointer: len 0 */
			inflight_put(&b->reqs, r);
			answered = true;
			continue;
		}
		if (req_start(b, r))
			answered = true;
	}
	if (answered)
		virtio_dev_notify(d, vq);
}

/* ---- device ops ---- */

static void vblk_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, to_blk(d)->config + off, len);
}

static void vblk_reset(struct virtio_dev *d)
{
	struct vblk *b = to_blk(d);

	/* In-flight I/O cannot be recalled: its completions find the
	 * requests orphaned and only recycle them. */
	inflight_orphan_all(&b->reqs);
	b->stalled = false;
}

static void vblk_destroy(struct virtio_dev *d)
{
	struct vblk *b = to_blk(d);

	inflight_free(&b->reqs);
	if (b->fd >= 0)
		close(b->fd);
	free(b);
}

#define VBLK_COMMON_FEATURES ((1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) | \
			      (1ull << VIRTIO_BLK_F_FLUSH))

static const struct virtio_dev_ops vblk_ops_rw = {
	.kind = "blk",
	.device_id = 2,
	.num_queues = 1,
	.queue_max = VBLK_QUEUE_SIZE,
	.config_size = VBLK_CONFIG_SIZE,
	.features = VBLK_COMMON_FEATURES | (1ull << VIRTIO_BLK_F_DISCARD) |
		    (1ull << VIRTIO_BLK_F_WRITE_ZEROES),
	.config_read = vblk_config_read,
	.queue_notify = vblk_queue_notify,
	.reset = vblk_reset,
	.destroy = vblk_destroy,
};

static const struct virtio_dev_ops vblk_ops_ro = {
	.kind = "blk",
	.device_id = 2,
	.num_queues = 1,
	.queue_max = VBLK_QUEUE_SIZE,
	.config_size = VBLK_CONFIG_SIZE,
	.features = VBLK_COMMON_FEATURES | (1ull << VIRTIO_BLK_F_RO),
	.config_read = vblk_config_read,
	.queue_notify = vblk_queue_notify,
	.reset = vblk_reset,
	.destroy = vblk_destroy,
};

static void put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void fill_config(struct vblk *b)
{
	uint64_t cap = htole64(b->capacity);

	memset(b->config, 0, sizeof(b->config));
	memcpy(b->config + VBLK_CFG_CAPACITY, &cap, 8);
	put32(b->config + VBLK_CFG_SEG_MAX, VBLK_SEG_MAX);
	put32(b->config + VBLK_CFG_BLK_SIZE, SECTOR_SIZE);
	put32(b->config + VBLK_CFG_MAX_DISCARD_SECTORS, VBLK_MAX_DWZ_SECTORS);
	put32(b->config + VBLK_CFG_MAX_DISCARD_SEG, VBLK_MAX_DWZ_SEGS);
	put32(b->config + VBLK_CFG_DISCARD_ALIGNMENT, 1);
	put32(b->config + VBLK_CFG_MAX_WZ_SECTORS, VBLK_MAX_DWZ_SECTORS);
	put32(b->config + VBLK_CFG_MAX_WZ_SEG, VBLK_MAX_DWZ_SEGS);
	b->config[VBLK_CFG_WZ_MAY_UNMAP] = 1;
}

int vblk_open(const char *path, bool readonly, struct virtio_dev **out)
{
	struct vblk *b;
	struct stat st;
	uint64_t size;
	int fd, err;

	fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (!readonly && (err == -EACCES || err == -EPERM || err == -EROFS))
			return cove_fail(err, "disk %s: %s (use ,ro for a read-only disk)",
					 path, strerror(-err));
		return cove_fail(err, "disk %s: %s", path, strerror(-err));
	}
	if (fstat(fd, &st) < 0) {
		err = cove_fail(-errno, "disk %s: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISREG(st.st_mode)) {
		size = st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
			err = cove_fail(-errno, "disk %s: %s", path, strerror(errno));
			goto fail;
		}
	} else {
		err = cove_fail(-EINVAL, "disk %s: not a regular file or block device", path);
		goto fail;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		err = cove_fail(-ENOMEM, "disk %s: out of memory", path);
		goto fail;
	}
	b->dev.ops = readonly ? &vblk_ops_ro : &vblk_ops_rw;
	b->dev.irqfd = -1;
	b->fd = fd;
	b->readonly = readonly;
	b->capacity = size >> SECTOR_SHIFT;
	inflight_init(&b->reqs, &b->dev, sizeof(struct vblk_req));
	fill_config(b);
	*out = &b->dev;
	return 0;

fail:
	close(fd);
	return err;
}

int vblk_create(struct vm *vm, const char *path, bool readonly, struct virtio_dev **out)
{
	struct virtio_dev *d;
	int err = vblk_open(path, readonly, &d);

	if (err == 0)
		err = vm_adopt_virtio(vm, d);
	if (err == 0)
		*out = d;
	return err;
}
