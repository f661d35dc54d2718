#include "virtio_balloon.h"

#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "libcove.h"
#include "log.h"
#include "virtio_dev.h"
#include "vm.h"

#define PAGE_BYTES	(1ull << VBALLOON_PAGE_SHIFT)

/* What each queue index is for: inflate and deflate are 0 and 1; the
 * others follow in order, present only when negotiated (Linux numbers
 * the queues it uses consecutively). */
enum vballoon_role {
	ROLE_NONE,
	ROLE_INFLATE,
	ROLE_DEFLATE,
	ROLE_STATS,
	ROLE_REPORTING,
};

struct vballoon {
	struct virtio_dev dev;		/* first */
	enum vballoon_role role[VBALLOON_NUM_QUEUES];

	uint32_t num_pages;		/* target; atomic (any thread) */
	uint32_t actual;		/* written by the guest; atomic */

	/* Stats: the guest's buffer, held until stats are asked for. */
	bool stats_held;
	uint16_t stats_head;
	int stats_q;
	uint64_t stats[VIRTIO_BALLOON_S_NR];
	uint64_t stats_ns;		/* when they came; 0: never */

	uint64_t inflated, reported;	/* bytes; loop thread */
	uint64_t bad_input;		/* atomic: config writes count too */
	struct virtq_elem elem;
};

static struct vballoon *to_balloon(struct virtio_dev *d)
{
	return (struct vballoon *)d;
}

/* The guest sent something invalid: count it, log (rate limited), go on. */
#define bad(b, ...)								\
	do {									\
		__atomic_fetch_add(&(b)->bad_input, 1, __ATOMIC_RELAXED);	\
		virtio_dev_guest_error(&(b)->dev, __VA_ARGS__);			\
	} while (0)

/* ---- inflate / deflate ---- */

/* Drop the host pages of a run of guest pages, [gpa, gpa + len). */
static void discard_run(struct vballoon *b, uint64_t gpa, uint64_t len)
{
	int err;

	if (!len)
		return;
	err = gm_discard(b->dev.mem, gpa, len);
	if (err < 0)
		log_ratelimited(&b->dev.log_budget, b->dev.name, "madvise at %#llx: %s",
				(unsigned long long)gpa, strerror(-err));
	else
		b->inflated += len;
}

/* An inflate buffer: le32 pfns of 4 KiB pages. Each is checked to be guest
 * RAM; runs of consecutive pages in one region go to madvise together. */
static void inflate(struct vballoon *b, const struct virtq_elem *e)
{
	uint64_t run_gpa = 0, run_len = 0;
	uint8_t *run_end = NULL;

	if (e->read_len % 4)
		bad(b, "inflate buffer of %u bytes (not a whole number of pfns)", e->read_len);
	for (unsigned i = 0; i < e->nread; i++) {
		const uint8_t *p = e->iov[i].iov_base;
		size_t n = e->iov[i].iov_len;

		/* pfns split across buffers are refused with the remainder */
		if (n % 4)
			bad(b, "inflate buffer segment of %zu bytes", n);
		for (size_t off = 0; off + 4 <= n; off += 4) {
			uint32_t pfn;
			uint64_t gpa;
			uint8_t *hva;

			memcpy(&pfn, p + off, 4);
			gpa = (uint64_t)le32toh(pfn) << VBALLOON_PAGE_SHIFT;
			hva = gm_ptr(b->dev.mem, gpa, PAGE_BYTES);
			if (!hva) {
				bad(b, "inflate: pfn %#x is not guest RAM", le32toh(pfn));
				continue;
			}
			if (run_len && gpa == run_gpa + run_len && hva == run_end) {
				run_len += PAGE_BYTES;
			} else {
				discard_run(b, run_gpa, run_len);
				run_gpa = gpa;
				run_len = PAGE_BYTES;
			}
			run_end = hva + PAGE_BYTES;
		}
	}
	discard_run(b, run_gpa, run_len);
}

/* ---- free page reporting ---- */

/* Each buffer of the chain is a free range of guest RAM (virtq_pop
 * checked it lies in guest memory); the whole host pages in it go. */
static void report(struct vballoon *b, const struct virtq_elem *e)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);

	for (unsigned i = 0; i < (unsigned)e->nread + e->nwrite; i++) {
		uintptr_t start = (uintptr_t)e->iov[i].iov_base;
		uintptr_t end = start + e->iov[i].iov_len;

		start = (start + page - 1) & ~(page - 1);
		end &= ~(page - 1);
		if (end <= start) {
			bad(b, "reported range of %zu bytes holds no whole page",
			    e->iov[i].iov_len);
			continue;
		}
		if (madvise((void *)start, end - start, MADV_DONTNEED) < 0)
			log_ratelimited(&b->dev.log_budget, b->dev.name, "madvise: %s", strerror(errno));
		else
			b->reported += end - start;
	}
}

/* ---- statistics ---- */

static void stats_read(struct vballoon *b, const struct virtq_elem *e)
{
	uint8_t ent[VBALLOON_STAT_BYTES];
	size_t have = 0;

	if (e->read_len % VBALLOON_STAT_BYTES)
		bad(b, "stats buffer of %u bytes (not whole entries)", e->read_len);
	/* Entries may straddle buffers: gather them byte-wise. */
	for (unsigned i = 0; i < e->nread; i++) {
		const uint8_t *p = e->iov[i].iov_base;

		for (size_t off = 0; off < e->iov[i].iov_len; off++) {
			uint16_t tag;
			uint64_t val;

			ent[have++] = p[off];
			if (have < sizeof(ent))
				continue;
			have = 0;
			memcpy(&tag, ent, 2);
			memcpy(&val, ent + 2, 8);
			tag = le16toh(tag);
			if (tag >= VIRTIO_BALLOON_S_NR)
				continue;	/* a newer guest's statistic */
			b->stats[tag] = le64toh(val);
		}
	}
	b->stats_ns = vm_now_ns();
}

static void stats_release(struct vballoon *b)
{
	struct virtio_dev *d = &b->dev;

	if (!b->stats_held)
		return;
	b->stats_held = false;
	virtq_push(&d->vqs[b->stats_q], b->stats_head, 0);
	virtio_dev_notify(d, &d->vqs[b->stats_q]);
}

/* ---- queues ---- */

static void vballoon_queue_notify(struct virtio_dev *d, uint32_t q)
{
	struct vballoon *b = to_balloon(d);
	struct virtq *vq = &d->vqs[q];
	enum vballoon_role role = q < VBALLOON_NUM_QUEUES ? b->role[q] : ROLE_NONE;
	bool answered = false;

	if (role == ROLE_NONE)
		return;
	/* A queue's worth of chains at most per kick: the Linux driver has
	 * one outstanding on each queue and waits for it. */
	for (unsigned n = 0; n < vq->size; n++) {
		int got = virtio_dev_pop(d, vq, &b->elem);

		if (got <= 0 && got != -E2BIG)
			break;
		__atomic_fetch_add(&d->stats.requests, 1, __ATOMIC_RELAXED);
		if (got == -E2BIG) {
			bad(b, "chain of more than %d buffers", VIRTQ_MAX_SEGS);
		} else if (role == ROLE_STATS) {
			/* Keep the newest buffer; an older one goes back. */
			stats_release(b);
			stats_read(b, &b->elem);
			b->stats_held = true;
			b->stats_head = b->elem.head;
			b->stats_q = q;
			continue;
		} else if (role == ROLE_INFLATE) {
			inflate(b, &b->elem);
		} else if (role == ROLE_REPORTING) {
			report(b, &b->elem);
		} else if (b->elem.read_len % 4) {
			/* deflate: the pages are the guest's again, nothing to do */
			bad(b, "deflate buffer of %u bytes (not a whole number of pfns)",
			    b->elem.read_len);
		}
		virtq_push(vq, b->elem.head, 0);
		answered = true;
	}
	if (answered)
		virtio_dev_notify(d, vq);
}

static int vballoon_activate(struct virtio_dev *d)
{
	struct vballoon *b = to_balloon(d);
	unsigned q = 0;

	memset(b->role, 0, sizeof(b->role));
	b->role[q++] = ROLE_INFLATE;
	b->role[q++] = ROLE_DEFLATE;
	if (virtio_has_feature(d, VIRTIO_BALLOON_F_STATS_VQ))
		b->role[q++] = ROLE_STATS;
	if (virtio_has_feature(d, VIRTIO_BALLOON_F_REPORTING))
		b->role[q++] = ROLE_REPORTING;
	return 0;
}

static void vballoon_reset(struct virtio_dev *d)
{
	struct vballoon *b = to_balloon(d);

	/* The rings are gone: the held stats buffer is forgotten, not pushed. */
	b->stats_held = false;
	memset(b->role, 0, sizeof(b->role));
	/* A reset driver holds no pages in the balloon. */
	__atomic_store_n(&b->actual, 0, __ATOMIC_RELAXED);
}

static void vballoon_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	struct vballoon *b = to_balloon(d);
	uint8_t cfg[VBALLOON_CONFIG_SIZE] = { 0 };
	uint32_t v;

	v = htole32(__atomic_load_n(&b->num_pages, __ATOMIC_RELAXED));
	memcpy(cfg + VBALLOON_CFG_NUM_PAGES, &v, 4);
	v = htole32(__atomic_load_n(&b->actual, __ATOMIC_RELAXED));
	memcpy(cfg + VBALLOON_CFG_ACTUAL, &v, 4);
	memcpy(data, cfg + off, len);
}

static void vballoon_config_write(struct virtio_dev *d, uint32_t off, const void *data,
				  uint32_t len)
{
	struct vballoon *b = to_balloon(d);
	uint8_t cfg[4];
	uint32_t v;

	/* Only `actual` is the driver's to write, and only whole. */
	if (off != VBALLOON_CFG_ACTUAL || len != 4) {
		bad(b, "config write of %u bytes at offset %u", len, off);
		return;
	}
	memcpy(cfg, data, 4);
	memcpy(&v, cfg, 4);
	__atomic_store_n(&b->actual, le32toh(v), __ATOMIC_RELAXED);
}

static void vballoon_destroy(struct virtio_dev *d)
{
	free(d);
}

static const struct virtio_dev_ops vballoon_ops = {
	.kind = "balloon",
	.device_id = 5,
	.num_queues = VBALLOON_NUM_QUEUES,
	.queue_max = VBALLOON_QUEUE_SIZE,
	.config_size = VBALLOON_CONFIG_SIZE,
	.features = (1ull << VIRTIO_BALLOON_F_STATS_VQ) | (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) |
		    (1ull << VIRTIO_BALLOON_F_REPORTING),
	.config_read = vballoon_config_read,
	.config_write = vballoon_config_write,
	.activate = vballoon_activate,
	.queue_notify = vballoon_queue_notify,
	.reset = vballoon_reset,
	.destroy = vballoon_destroy,
};

void vballoon_set_target(struct virtio_dev *d, uint32_t pages)
{
	__atomic_store_n(&to_balloon(d)->num_pages, pages, __ATOMIC_RELAXED);
	virtio_dev_config_changed(d);
}

void vballoon_stats(struct virtio_dev *d, struct cove_balloon_stats *out)
{
	struct vballoon *b = to_balloon(d);
	const uint64_t *s = b->stats;

	*out = (struct cove_balloon_stats){
		.target = (uint64_t)__atomic_load_n(&b->num_pages, __ATOMIC_RELAXED) << VBALLOON_PAGE_SHIFT,
		.actual = (uint64_t)__atomic_load_n(&b->actual, __ATOMIC_RELAXED) << VBALLOON_PAGE_SHIFT,
		.inflated = b->inflated,
		.reported = b->reported,
		.bad_input = __atomic_load_n(&b->bad_input, __ATOMIC_RELAXED),
		.stats_age_ns = b->stats_ns ? vm_now_ns() - b->stats_ns : 0,
		.swap_in = s[VIRTIO_BALLOON_S_SWAP_IN],
		.swap_out = s[VIRTIO_BALLOON_S_SWAP_OUT],
		.major_faults = s[VIRTIO_BALLOON_S_MAJFLT],
		.minor_faults = s[VIRTIO_BALLOON_S_MINFLT],
		.free_memory = s[VIRTIO_BALLOON_S_MEMFREE],
		.total_memory = s[VIRTIO_BALLOON_S_MEMTOT],
		.available_memory = s[VIRTIO_BALLOON_S_AVAIL],
		.disk_caches = s[VIRTIO_BALLOON_S_CACHES],
	};
	/* The guest answers a returned buffer with fresh statistics. */
	stats_release(b);
}

int vballoon_open(struct virtio_dev **out)
{
	struct vballoon *b = calloc(1, sizeof(*b));

	if (!b)
		return cove_fail(-ENOMEM, "balloon: out of memory");
	b->dev.ops = &vballoon_ops;
	b->dev.irqfd = -1;
	for (int i = 0; i < VIRTIO_BALLOON_S_NR; i++)
		b->stats[i] = COVE_BALLOON_UNKNOWN;
	*out = &b->dev;
	return 0;
}

int vballoon_create(struct vm *vm, struct virtio_dev **out)
{
	struct virtio_dev *d = NULL;
	int err = vballoon_open(&d);

	if (err == 0)
		err = vm_adopt_virtio(vm, d);
	if (err == 0)
		*out = d;
	return err;
}
