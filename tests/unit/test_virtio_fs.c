/* virtio-fs end to end without KVM: a temp directory as the share, the
 * real io_uring event loop on its own thread, the MMIO transport driven
 * from the test thread and the guest-side virtqueue driver playing the
 * Linux virtio-fs driver (FUSE requests on the hiprio and request queues). */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
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

#include "evloop.h"
#include "fake_mem.h"
#include "guest_vq.h"
#include "virtio_dev.h"
#include "virtio_fs.h"
#include "virtio_mmio.h"

#define MEM_GPA		0x80000000ull
#define MEM_SIZE	(8ull << 20)
#define QSIZE		64
#define HQ		0	/* hiprio */
#define RQ		1	/* requests */

struct fixture {
	char dir[64];
	struct fake_mem fm;
	struct evloop *loop;
	struct virtio_dev *d;
	struct virtio_mmio *m;
	struct guest_vq g[2];
	uint64_t req, reply, data;	/* guest buffers */
	uint64_t unique;
};

static void *gp(struct fixture *f, uint64_t gpa)
{
	return fake_mem_ptr(&f->fm, gpa);
}

static uint64_t offered(struct virtio_mmio *m)
{
	mmio_wr(m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = mmio_rd(m, VIRTIO_MMIO_DEVICE_FEATURES);
	mmio_wr(m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return lo | (uint64_t)mmio_rd(m, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static void bring_up(struct fixture *f)
{
	uint32_t s;

	assert_int_equal(gvq_init(&f->g[0], &f->fm, QSIZE), 0);
	assert_int_equal(gvq_init(&f->g[1], &f->fm, QSIZE), 0);
	s = gvq_mmio_init(f->m, offered(f->m), f->g, 2);
	assert_true(s & VIRTIO_STATUS_DRIVER_OK);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char cmd[128];

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cove-vfs-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(cmd, sizeof(cmd), "echo hello > %s/hello", f->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(fake_mem_init(&f->fm, MEM_GPA, MEM_SIZE), 0);
	f->req = fake_mem_alloc(&f->fm, 8192, 4096);
	f->reply = fake_mem_alloc(&f->fm, 8192, 4096);
	f->data = fake_mem_alloc(&f->fm, 1 << 20, 4096);
	assert_int_equal(evloop_create(&f->loop), 0);
	assert_int_equal(vfs_open("share0", f->dir, false, FUSE_CACHE_AUTO, &f->d), 0);
	assert_int_equal(virtio_mmio_create(f->d, "vfs0", &f->fm.gm, f->loop, &f->m), 0);
	assert_int_equal(evloop_start(f->loop, NULL, NULL), 0);
	bring_up(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	evloop_join(f->loop);
	virtio_mmio_destroy(f->m);
	evloop_destroy(f->loop);
	fake_mem_free(&f->fm);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Lay a request out at f->req: header, then arg (alen bytes). */
static uint32_t put_req(struct fixture *f, uint32_t op, uint64_t node, const void *arg,
			uint32_t alen)
{
	struct fuse_in_header *h = gp(f, f->req);

	memset(h, 0, sizeof(*h));
	h->len = sizeof(*h) + alen;
	h->opcode = op;
	h->unique = ++f->unique;
	h->nodeid = node;
	if (alen)
		memcpy((uint8_t *)(h + 1), arg, alen);
	memset(gp(f, f->reply), 0xee, 8192);
	return h->len;
}

static void kick_wait(struct fixture *f, int q, uint16_t head, uint32_t *used)
{
	uint32_t id, len;

	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, q);
	assert_true(gvq_wait_used(&f->g[q], &id, &len, 5000));
	assert_int_equal(id, head);
	*used = len;
}

/* One request with its reply buffer; returns the reply's error. */
static int req(struct fixture *f, uint32_t op, uint64_t node, const void *arg, uint32_t alen,
	       uint32_t reply_len)
{
	struct gvq_buf rd = { f->req, put_req(f, op, node, arg, alen) };
	struct gvq_buf wr = { f->reply, reply_len };
	struct fuse_out_header *oh = gp(f, f->reply);
	uint32_t used;

	kick_wait(f, RQ, gvq_add(&f->g[RQ], &rd, 1, &wr, 1), &used);
	assert_int_equal(used, oh->len);
	assert_int_equal(oh->unique, f->unique);
	return oh->error;
}

static void *reply(struct fixture *f)
{
	return (uint8_t *)gp(f, f->reply) + sizeof(struct fuse_out_header);
}

static void init(struct fixture *f)
{
	struct fuse_init_in in = { .major = 7, .minor = 37, .flags = 0xffffffffu };

	assert_int_equal(req(f, FUSE_INIT, 0, &in, sizeof(in), 4096), 0);
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	char tag[VFS_TAG_MAX + 1] = { 0 };
	uint32_t nq = 0;

	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_DEVICE_ID), VIRTIO_FS_DEVICE_ID);
	for (int i = 0; i < VFS_TAG_MAX; i += 4)
		virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + VFS_CFG_TAG + i, tag + i, 4);
	assert_string_equal(tag, "share0");
	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + VFS_CFG_NUM_QUEUES, &nq, 4);
	assert_int_equal(nq, VFS_REQUEST_QUEUES);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_SEL, 2);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
}

static void test_session(void **state)
{
	struct fixture *f = *state;
	struct fuse_create_in ci = { .flags = O_RDWR, .mode = S_IFREG | 0644 };
	uint8_t arg[64];
	uint32_t used;

	init(f);
	/* CREATE "f" */
	memcpy(arg, &ci, sizeof(ci));
	memcpy(arg + sizeof(ci), "f", 2);
	assert_int_equal(req(f, FUSE_CREATE, 1, arg, sizeof(ci) + 2, 4096), 0);
	uint64_t node = ((struct fuse_entry_out *)reply(f))->nodeid;
	uint64_t fh = ((struct fuse_open_out *)((uint8_t *)reply(f) +
						sizeof(struct fuse_entry_out)))->fh;

	/* WRITE 300 KiB from 3 guest buffers, through io_uring. */
	uint32_t size = 300 << 10;
	uint8_t *data = gp(f, f->data);
	for (uint32_t i = 0; i < size; i++)
		data[i] = (uint8_t)(i * 13 + 5);
	struct fuse_write_in wi = { .fh = fh, .offset = 4096, .size = size };
	uint32_t hl = put_req(f, FUSE_WRITE, node, &wi, sizeof(wi));
	((struct fuse_in_header *)gp(f, f->req))->len = hl + size;
	struct gvq_buf rd[4] = { { f->req, hl }, { f->data, 1000 }, { f->data + 1000, 100000 },
				 { f->data + 101000, size - 101000 } };
	struct gvq_buf wr = { f->reply, 4096 };
	kick_wait(f, RQ, gvq_add(&f->g[RQ], rd, 4, &wr, 1), &used);
	assert_int_equal(used, 16 + sizeof(struct fuse_write_out));
	assert_int_equal(((struct fuse_out_header *)gp(f, f->reply))->error, 0);
	assert_int_equal(((struct fuse_write_out *)reply(f))->size, size);

	/* READ it back into split reply buffers (the header in the first). */
	uint64_t back = f->data + (512 << 10);
	memset(gp(f, back), 0, size);
	struct fuse_read_in ri = { .fh = fh, .offset = 4096, .size = size };
	struct gvq_buf rr = { f->req, put_req(f, FUSE_READ, node, &ri, sizeof(ri)) };
	struct gvq_buf rw[2] = { { f->reply, 16 }, { back, size } };
	kick_wait(f, RQ, gvq_add_indirect(&f->g[RQ], &rr, 1, rw, 2), &used);
	assert_int_equal(used, 16 + size);
	assert_memory_equal(gp(f, back), data, size);

	/* The host file has it. */
	char path[96];
	struct stat st;
	snprintf(path, sizeof(path), "%s/f", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 4096 + size);

	struct fuse_fsync_in fi = { .fh = fh };
	assert_int_equal(req(f, FUSE_FSYNC, node, &fi, sizeof(fi), 64), 0);
	struct fuse_release_in rl = { .fh = fh };
	assert_int_equal(req(f, FUSE_RELEASE, node, &rl, sizeof(rl), 64), 0);

	/* FORGET on the hiprio queue: no reply buffer, no reply. */
	struct fuse_forget_in fo = { .nlookup = 1 };
	struct gvq_buf hr = { f->req, put_req(f, FUSE_FORGET, node, &fo, sizeof(fo)) };
	kick_wait(f, HQ, gvq_add(&f->g[HQ], &hr, 1, NULL, 0), &used);
	assert_int_equal(used, 0);
	struct fuse_getattr_in ga = { 0 };
	assert_int_equal(req(f, FUSE_GETATTR, node, &ga, sizeof(ga), 4096), -ESTALE);
	assert_int_equal(req(f, 4242, 1, NULL, 0, 4096), -ENOSYS);
	assert_int_equal(f->d->stats.errors, 2);
	assert_false(mmio_rd(f->m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void wait_needs_reset(struct fixture *f)
{
	for (int i = 0; i < 5000 && !(mmio_rd(f->m, VIRTIO_MMIO_STATUS) &
				      VIRTIO_STATUS_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(mmio_rd(f->m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_short_header_needs_reset(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd = { f->req, 20 }, wr = { f->reply, 64 };

	init(f);
	put_req(f, FUSE_GETATTR, 1, NULL, 0);
	gvq_add(&f->g[RQ], &rd, 1, &wr, 1);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, RQ);
	wait_needs_reset(f);
	assert_int_equal(f->d->stats.guest_errors, 1);

	/* After a reset the device serves a new session. */
	bring_up(f);
	init(f);
	struct fuse_getattr_in ga = { 0 };
	assert_int_equal(req(f, FUSE_GETATTR, 1, &ga, sizeof(ga), 4096), 0);
}

static void test_no_reply_room_needs_reset(void **state)
{
	struct fixture *f = *state;
	struct fuse_getattr_in ga = { 0 };

	init(f);
	struct gvq_buf rd = { f->req, put_req(f, FUSE_GETATTR, 1, &ga, sizeof(ga)) };
	gvq_add(&f->g[HQ], &rd, 1, NULL, 0);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, HQ);
	wait_needs_reset(f);
}

static void test_reset_with_io_in_flight(void **state)
{
	struct fixture *f = *state;
	struct fuse_open_in oi = { .flags = O_RDONLY };
	uint8_t arg[16];

	init(f);
	memcpy(arg, "hello", 6);
	assert_int_equal(req(f, FUSE_LOOKUP, 1, arg, 6, 4096), 0);
	uint64_t node = ((struct fuse_entry_out *)reply(f))->nodeid;
	assert_int_equal(req(f, FUSE_OPEN, node, &oi, sizeof(oi), 4096), 0);
	uint64_t fh = ((struct fuse_open_out *)reply(f))->fh;
	/* Many reads at once, then a reset before they are all answered. */
	for (int i = 0; i < 32; i++) {
		struct fuse_read_in ri = { .fh = fh, .size = 4096 };
		struct gvq_buf rd = { f->req + 128 * i, 0 }, wr = { f->data + 8192 * i, 8192 };
		struct fuse_in_header h = { .len = sizeof(h) + sizeof(ri), .opcode = FUSE_READ,
					    .unique = 1000 + i, .nodeid = node };
		memcpy(gp(f, rd.gpa), &h, sizeof(h));
		memcpy((uint8_t *)gp(f, rd.gpa) + sizeof(h), &ri, sizeof(ri));
		rd.len = h.len;
		gvq_add(&f->g[RQ], &rd, 1, &wr, 1);
	}
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, RQ);
	bring_up(f);	/* resets first */
	assert_int_equal(f->d->inflight, 0);
	init(f);
	assert_int_equal(req(f, FUSE_LOOKUP, 1, arg, 6, 4096), 0);
}

/* Reads the way Linux's virtio-fs issues them under readahead: many at
 * once, each with the header in its own buffer and the data in 4 KiB
 * pages through an indirect table. Every chain comes back once, with a
 * used length equal to the header's and the file's bytes in its pages. */
static void test_many_reads_in_flight(void **state)
{
	struct fixture *f = *state;
	enum { NREQ = 16, PAGES = 32, CHUNK = PAGES * 4096 };
	struct fuse_open_in oi = { .flags = O_RDONLY };
	char path[96];
	uint8_t arg[16];
	bool seen[QSIZE] = { false };
	uint16_t heads[NREQ];
	uint64_t hdr = fake_mem_alloc(&f->fm, 64 * NREQ, 64);
	uint64_t pages = fake_mem_alloc(&f->fm, (uint64_t)CHUNK * NREQ, 4096);
	uint8_t *want = malloc((size_t)CHUNK * NREQ);
	FILE *fp;

	assert_non_null(want);
	for (size_t i = 0; i < (size_t)CHUNK * NREQ; i++)
		want[i] = (uint8_t)(i * 2654435761u >> 13);
	snprintf(path, sizeof(path), "%s/big", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(want, 1, (size_t)CHUNK * NREQ, fp), (size_t)CHUNK * NREQ);
	fclose(fp);

	init(f);
	memcpy(arg, "big", 4);
	assert_int_equal(req(f, FUSE_LOOKUP, 1, arg, 4, 4096), 0);
	uint64_t node = ((struct fuse_entry_out *)reply(f))->nodeid;
	assert_int_equal(req(f, FUSE_OPEN, node, &oi, sizeof(oi), 4096), 0);
	uint64_t fh = ((struct fuse_open_out *)reply(f))->fh;

	memset(gp(f, pages), 0xee, (size_t)CHUNK * NREQ);
	for (int i = 0; i < NREQ; i++) {
		/* Published out of file order. */
		int slot = (i * 7) % NREQ;
		struct fuse_read_in ri = { .fh = fh, .offset = (uint64_t)slot * CHUNK,
					   .size = CHUNK };
		struct fuse_in_header h = { .len = sizeof(h) + sizeof(ri), .opcode = FUSE_READ,
					    .unique = 5000 + slot, .nodeid = node };
		struct gvq_buf rd = { f->req + 128 * i, h.len }, wr[1 + PAGES];

		memcpy(gp(f, rd.gpa), &h, sizeof(h));
		memcpy((uint8_t *)gp(f, rd.gpa) + sizeof(h), &ri, sizeof(ri));
		wr[0] = (struct gvq_buf){ hdr + 64 * slot, sizeof(struct fuse_out_header) };
		for (int p = 0; p < PAGES; p++)
			wr[1 + p] = (struct gvq_buf){ pages + (uint64_t)slot * CHUNK + 4096 * p, 4096 };
		heads[slot] = gvq_add_indirect(&f->g[RQ], &rd, 1, wr, 1 + PAGES);
	}
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, RQ);
	for (int n = 0; n < NREQ; n++) {
		uint32_t id, len;
		int slot = -1;

		assert_true(gvq_wait_used(&f->g[RQ], &id, &len, 5000));
		assert_true(id < QSIZE);
		assert_false(seen[id]);
		seen[id] = true;
		for (int s = 0; s < NREQ; s++)
			if (heads[s] == id)
				slot = s;
		assert_true(slot >= 0);
		struct fuse_out_header *oh = gp(f, hdr + 64 * slot);
		assert_int_equal(oh->unique, 5000 + slot);
		assert_int_equal(oh->error, 0);
		assert_int_equal(oh->len, len);
		assert_int_equal(len, sizeof(*oh) + CHUNK);
		assert_memory_equal(gp(f, pages + (uint64_t)slot * CHUNK), want + (size_t)slot * CHUNK,
				    CHUNK);
	}
	free(want);
}

/* Like a driver under load: the queue is kept full of reads, a new one put
 * in each slot as soon as its answer arrives, and the device kicked only
 * when avail_event asks for it (EVENT_IDX). The device stops popping at a
 * queue's worth in flight and must go on by itself as answers leave: every
 * request is answered once, with the right bytes, and none is left behind. */
static void test_queue_kept_full(void **state)
{
	struct fixture *f = *state;
	enum { TOTAL = 8 * QSIZE, BLK = 4096, NBLK = 16 };
	struct fuse_open_in oi = { .flags = O_RDONLY };
	uint64_t tables = fake_mem_alloc(&f->fm, 64 * QSIZE, 64);
	uint64_t hdrs = fake_mem_alloc(&f->fm, 64 * QSIZE, 64);
	uint64_t pages = fake_mem_alloc(&f->fm, (uint64_t)BLK * QSIZE, 4096);
	int slot_req[QSIZE];
	uint8_t want[BLK * NBLK], arg[16];
	int next = 0, done = 0;
	char path[96];
	FILE *fp;

	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = (uint8_t)(i * 2654435761u >> 11);
	snprintf(path, sizeof(path), "%s/blocks", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(want, 1, sizeof(want), fp), sizeof(want));
	fclose(fp);
	init(f);
	memcpy(arg, "blocks", 7);
	assert_int_equal(req(f, FUSE_LOOKUP, 1, arg, 7, 4096), 0);
	uint64_t node = ((struct fuse_entry_out *)reply(f))->nodeid;
	assert_int_equal(req(f, FUSE_OPEN, node, &oi, sizeof(oi), 4096), 0);
	uint64_t fh = ((struct fuse_open_out *)reply(f))->fh;

	/* Put request `next` in descriptor h (an indirect table of three:
	 * the request, the reply header, one page) and publish it. */
#define SUBMIT(h) do {								\
		struct fuse_read_in ri = { .fh = fh, .size = BLK,		\
					   .offset = (uint64_t)(next % NBLK) * BLK }; \
		struct fuse_in_header ih = { .len = sizeof(ih) + sizeof(ri),	\
					     .opcode = FUSE_READ,		\
					     .unique = 10000 + next, .nodeid = node }; \
		struct vring_desc *t = gp(f, tables + 64 * (h));		\
		uint64_t rq = f->req + 128 * (h);				\
		memcpy(gp(f, rq), &ih, sizeof(ih));				\
		memcpy((uint8_t *)gp(f, rq) + sizeof(ih), &ri, sizeof(ri));	\
		t[0] = (struct vring_desc){ rq, ih.len, VRING_DESC_F_NEXT, 1 };	\
		t[1] = (struct vring_desc){ hdrs + 64 * (h), sizeof(struct fuse_out_header), \
					    VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2 }; \
		t[2] = (struct vring_desc){ pages + (uint64_t)BLK * (h), BLK,	\
					    VRING_DESC_F_WRITE, 0 };		\
		gvq_set_desc(&f->g[RQ], (h), tables + 64 * (h), 48, VRING_DESC_F_INDIRECT, 0); \
		slot_req[h] = next++;						\
		gvq_publish(&f->g[RQ], (h));					\
	} while (0)

	for (int h = 0; h < QSIZE; h++)
		SUBMIT(h);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, RQ);
	while (done < TOTAL) {
		uint32_t id, len;

		assert_true(gvq_wait_used(&f->g[RQ], &id, &len, 5000));
		assert_true(id < QSIZE);
		assert_true(slot_req[id] >= 0);
		struct fuse_out_header *oh = gp(f, hdrs + 64 * id);
		assert_int_equal(oh->error, 0);
		assert_int_equal(oh->unique, 10000 + slot_req[id]);
		assert_int_equal(len, sizeof(*oh) + BLK);
		assert_memory_equal(gp(f, pages + (uint64_t)BLK * id),
				    want + (size_t)(slot_req[id] % NBLK) * BLK, BLK);
		slot_req[id] = -1;
		done++;
		if (next < TOTAL) {
			uint16_t old = f->g[RQ].avail_idx, now, ev;
			SUBMIT(id);
			now = f->g[RQ].avail_idx;
			/* Kick only if the device asked (virtio 1.2, 2.7.10). */
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			ev = gvq_avail_event(&f->g[RQ]);
			if ((uint16_t)(now - ev - 1) < (uint16_t)(now - old))
				mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, RQ);
		}
	}
#undef SUBMIT
	uint32_t id, len;
	assert_false(gvq_wait_used(&f->g[RQ], &id, &len, 100));
	assert_int_equal(f->d->inflight, 0);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_config),
		T(test_session),
		T(test_short_header_needs_reset),
		T(test_no_reply_room_needs_reset),
		T(test_reset_with_io_in_flight),
		T(test_many_reads_in_flight),
		T(test_queue_kept_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
