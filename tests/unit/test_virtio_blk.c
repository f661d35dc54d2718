/* virtio-blk end to end without KVM: a temp file as the disk, the real
 * io_uring event loop on its own thread, the MMIO transport driven from
 * the test thread (the "vCPU"), and the guest-side virtqueue driver. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "evloop.h"
#include "fake_mem.h"
#include "guest_vq.h"
#include "log.h"
#include "virtio_blk.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"

#define MEM_GPA		0x80000000ull
#define MEM_SIZE	(8ull << 20)
#define DISK_SIZE	(4ull << 20)
#define SECTORS		(DISK_SIZE / 512)
#define QSIZE		256

struct disk {
	char path[64];
	struct virtio_dev *d;
	struct virtio_mmio *m;
	struct guest_vq g;
};

struct fixture {
	struct fake_mem fm;
	struct evloop *loop;
	struct disk disk[2];
	uint64_t hdr, status, data;	/* guest addresses of scratch buffers */
};

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 7 + (off >> 9) * 13 + 1);
}

static void make_disk(struct disk *k)
{
	static uint8_t buf[65536];
	int fd;

	snprintf(k->path, sizeof(k->path), "/tmp/cove-vblk-XXXXXX");
	fd = mkstemp(k->path);
	assert_true(fd >= 0);
	for (uint64_t off = 0; off < DISK_SIZE; off += sizeof(buf)) {
		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = pattern(off + i);
		assert_int_equal(pwrite(fd, buf, sizeof(buf), off), sizeof(buf));
	}
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

static uint64_t offered(struct virtio_mmio *m)
{
	mmio_wr(m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	uint64_t lo = mmio_rd(m, VIRTIO_MMIO_DEVICE_FEATURES);
	mmio_wr(m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return lo | (uint64_t)mmio_rd(m, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

/* Open disk i on the transport (not yet driven). */
static void open_disk(struct fixture *f, int i, bool readonly)
{
	struct disk *k = &f->disk[i];
	char name[16];

	snprintf(name, sizeof(name), "vblk%d", i);
	assert_int_equal(vblk_open(k->path, readonly, &k->d), 0);
	assert_int_equal(virtio_mmio_create(k->d, name, &f->fm.gm, f->loop, &k->m), 0);
	assert_int_equal(gvq_init(&k->g, &f->fm, QSIZE), 0);
}

/* Bring the driver up with every offered feature but `drop`. */
static void bring_up(struct fixture *f, int i, uint64_t drop)
{
	struct disk *k = &f->disk[i];
	uint32_t s = gvq_mmio_init(k->m, offered(k->m) & ~drop, &k->g, 1);

	assert_true(s & VIRTIO_STATUS_DRIVER_OK);
	assert_false(s & VIRTIO_STATUS_NEEDS_RESET);
}

static int setup_common(void **state, bool readonly)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(fake_mem_init(&f->fm, MEM_GPA, MEM_SIZE), 0);
	f->hdr = fake_mem_alloc(&f->fm, 4096, 4096);
	f->status = fake_mem_alloc(&f->fm, 4096, 4096);
	f->data = fake_mem_alloc(&f->fm, 2 << 20, 4096);
	make_disk(&f->disk[0]);
	assert_int_equal(evloop_create(&f->loop), 0);
	open_disk(f, 0, readonly);
	assert_int_equal(evloop_start(f->loop, NULL, NULL), 0);
	bring_up(f, 0, 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_common(state, false);
}

static int setup_ro(void **state)
{
	return setup_common(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	evloop_join(f->loop);
	for (int i = 0; i < 2; i++) {
		if (!f->disk[i].path[0])
			continue;
		virtio_mmio_destroy(f->disk[i].m);
		unlink(f->disk[i].path);
	}
	evloop_destroy(f->loop);
	fake_mem_free(&f->fm);
	free(f);
	return 0;
}

static void *gp(struct fixture *f, uint64_t gpa)
{
	return fake_mem_ptr(&f->fm, gpa);
}

static void put_hdr(struct fixture *f, uint32_t type, uint64_t sector)
{
	uint8_t *h = gp(f, f->hdr);

	memset(h, 0, 16);
	memcpy(h, &type, 4);
	memcpy(h + 8, &sector, 8);
	*(uint8_t *)gp(f, f->status) = 0xee;
}

static void kick_wait(struct fixture *f, int i, uint16_t head, uint32_t *used_len)
{
	struct disk *k = &f->disk[i];
	uint32_t id, len;

	mmio_wr(k->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(gvq_wait_used(&k->g, &id, &len, 5000));
	assert_int_equal(id, head);
	if (used_len)
		*used_len = len;
}

/* One request: header, data (device-writable when dev_writes), status. */
static uint8_t req_on(struct fixture *f, int i, uint32_t type, uint64_t sector,
		      uint64_t data, uint32_t len, bool dev_writes, uint32_t *used_len)
{
	struct gvq_buf rd[2] = { { f->hdr, 16 }, { data, len } };
	struct gvq_buf wr[2] = { { data, len }, { f->status, 1 } };
	unsigned nrd = 1, nwr = 1;
	uint16_t head;

	put_hdr(f, type, sector);
	if (len && dev_writes) {
		nwr = 2;
	} else if (len) {
		nrd = 2;
	}
	head = gvq_add(&f->disk[i].g, rd, nrd, dev_writes && len ? wr : wr + 1, nwr);
	kick_wait(f, i, head, used_len);
	return *(uint8_t *)gp(f, f->status);
}

static uint8_t req(struct fixture *f, uint32_t type, uint64_t sector, uint64_t data,
		   uint32_t len, bool dev_writes, uint32_t *used_len)
{
	return req_on(f, 0, type, sector, data, len, dev_writes, used_len);
}

static void check_pattern(const uint8_t *p, uint64_t off, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != pattern(off + i))
			fail_msg("byte %zu at disk offset %llu: 0x%02x, want 0x%02x", i,
				 (unsigned long long)(off + i), p[i], pattern(off + i));
}

static void file_read(struct fixture *f, int i, uint64_t off, void *buf, size_t len)
{
	int fd = open(f->disk[i].path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static blkcnt_t file_blocks(struct fixture *f)
{
	struct stat st;

	assert_int_equal(stat(f->disk[0].path, &st), 0);
	return st.st_blocks;
}

static uint32_t cfg32(struct fixture *f, uint32_t off)
{
	uint32_t v = 0;

	virtio_mmio_read(f->disk[0].m, VIRTIO_MMIO_CONFIG + off, &v, 4);
	return v;
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	uint64_t cap = 0, feat = offered(f->disk[0].m);

	virtio_mmio_read(f->disk[0].m, VIRTIO_MMIO_CONFIG + VBLK_CFG_CAPACITY, &cap, 8);
	assert_int_equal(cap, SECTORS);
	assert_int_equal(mmio_rd(f->disk[0].m, VIRTIO_MMIO_DEVICE_ID), 2);
	assert_int_equal(cfg32(f, VBLK_CFG_SEG_MAX), VBLK_SEG_MAX);
	assert_int_equal(cfg32(f, VBLK_CFG_BLK_SIZE), 512);
	assert_int_equal(cfg32(f, VBLK_CFG_MAX_DISCARD_SEG), VBLK_MAX_DWZ_SEGS);
	assert_int_equal(cfg32(f, VBLK_CFG_MAX_WZ_SECTORS), VBLK_MAX_DWZ_SECTORS);
	assert_true(feat & (1ull << VIRTIO_BLK_F_FLUSH));
	assert_true(feat & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_true(feat & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	assert_true(feat & (1ull << VIRTIO_BLK_F_SEG_MAX));
	assert_true(feat & (1ull << VIRTIO_BLK_F_BLK_SIZE));
	assert_false(feat & (1ull << VIRTIO_BLK_F_RO));
	assert_true(feat & (1ull << VIRTIO_F_EVENT_IDX));
	assert_int_equal(mmio_rd(f->disk[0].m, VIRTIO_MMIO_QUEUE_NUM_MAX), QSIZE);
}

static void test_read(void **state)
{
	struct fixture *f = *state;
	uint32_t used;

	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 3, f->data, 4096, true, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 4097);
	check_pattern(gp(f, f->data), 3 * 512, 4096);
	/* the last sector */
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, SECTORS - 1, f->data, 512, true, NULL),
			 VIRTIO_BLK_S_OK);
	check_pattern(gp(f, f->data), DISK_SIZE - 512, 512);
	assert_int_equal(f->disk[0].d->stats.requests, 2);
	assert_int_equal(f->disk[0].d->stats.errors, 0);
}

static void test_read_segments(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd[2] = { { f->hdr, 10 }, { f->hdr + 10, 6 } };	/* split header */
	struct gvq_buf wr[3] = { { f->data, 512 }, { f->data + 8192, 1024 },
				 { f->data + 4096, 513 } };	/* status shares the last */
	uint8_t *d = gp(f, f->data);
	uint32_t used;
	uint16_t head;

	put_hdr(f, VIRTIO_BLK_T_IN, 10);
	head = gvq_add(&f->disk[0].g, rd, 2, wr, 3);
	kick_wait(f, 0, head, &used);
	assert_int_equal(used, 2049);
	assert_int_equal(d[4096 + 512], VIRTIO_BLK_S_OK);
	check_pattern(d, 10 * 512, 512);
	check_pattern(d + 8192, 11 * 512, 1024);
	check_pattern(d + 4096, 13 * 512, 512);
}

static void test_write(void **state)
{
	struct fixture *f = *state;
	uint8_t *d = gp(f, f->data);
	uint8_t back[2048];

	for (int i = 0; i < 2048; i++)
		d[i] = (uint8_t)(i ^ 0x5a);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 100, f->data, 2048, false, NULL),
			 VIRTIO_BLK_S_OK);
	file_read(f, 0, 100 * 512, back, sizeof(back));
	assert_memory_equal(back, d, 2048);
	/* neighbours untouched */
	file_read(f, 0, 99 * 512, back, 512);
	check_pattern(back, 99 * 512, 512);
	file_read(f, 0, 104 * 512, back, 512);
	check_pattern(back, 104 * 512, 512);
	/* and back through the device */
	memset(d + 8192, 0, 2048);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 100, f->data + 8192, 2048, true, NULL),
			 VIRTIO_BLK_S_OK);
	assert_memory_equal(d + 8192, d, 2048);
}

static void test_write_indirect(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd[3] = { { f->hdr, 16 }, { f->data, 512 }, { f->data + 512, 512 } };
	struct gvq_buf wr[1] = { { f->status, 1 } };
	uint8_t *d = gp(f, f->data);
	uint8_t back[1024];
	uint16_t head;

	memset(d, 0x77, 1024);
	put_hdr(f, VIRTIO_BLK_T_OUT, 7);
	head = gvq_add_indirect(&f->disk[0].g, rd, 3, wr, 1);
	kick_wait(f, 0, head, NULL);
	assert_int_equal(*(uint8_t *)gp(f, f->status), VIRTIO_BLK_S_OK);
	file_read(f, 0, 7 * 512, back, sizeof(back));
	assert_memory_equal(back, d, 1024);
}

static void test_big_request(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd[1] = { { f->hdr, 16 } };
	struct gvq_buf wr[VBLK_SEG_MAX + 1];
	uint16_t head;

	for (int i = 0; i < VBLK_SEG_MAX; i++)
		wr[i] = (struct gvq_buf){ f->data + i * 4096ull, 4096 };
	wr[VBLK_SEG_MAX] = (struct gvq_buf){ f->status, 1 };
	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	head = gvq_add_indirect(&f->disk[0].g, rd, 1, wr, VBLK_SEG_MAX + 1);
	kick_wait(f, 0, head, NULL);
	assert_int_equal(*(uint8_t *)gp(f, f->status), VIRTIO_BLK_S_OK);
	check_pattern(gp(f, f->data), 0, VBLK_SEG_MAX * 4096);
}

static void test_many_in_flight(void **state)
{
	struct fixture *f = *state;
	struct guest_vq *g = &f->disk[0].g;
	const int n = 64;
	uint32_t id, len;
	int seen = 0;

	/* one header and status per request */
	for (int i = 0; i < n; i++) {
		uint64_t h = f->hdr + 32 * i;
		uint32_t type = VIRTIO_BLK_T_IN;
		uint64_t sector = i * 16;
		struct gvq_buf rd = { h, 16 };
		struct gvq_buf wr[2] = { { f->data + i * 8192ull, 8192 }, { f->status + i, 1 } };
		memcpy(gp(f, h), &type, 4);
		memset((uint8_t *)gp(f, h) + 4, 0, 4);
		memcpy((uint8_t *)gp(f, h) + 8, &sector, 8);
		gvq_add(g, &rd, 1, wr, 2);
	}
	mmio_wr(f->disk[0].m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	while (seen < n && gvq_wait_used(g, &id, &len, 5000))
		seen++;
	assert_int_equal(seen, n);
	for (int i = 0; i < n; i++) {
		assert_int_equal(((uint8_t *)gp(f, f->status))[i], VIRTIO_BLK_S_OK);
		check_pattern((uint8_t *)gp(f, f->data) + i * 8192, i * 8192ull, 8192);
	}
}

/* A driver that publishes the same head again and again, far more often
 * than the queue has entries: the device caps what it has in flight and
 * catches up as requests complete. */
static void test_republished_head(void **state)
{
	struct fixture *f = *state;
	struct guest_vq *g = &f->disk[0].g;
	struct gvq_buf rd = { f->hdr, 16 };
	struct gvq_buf wr[2] = { { f->data, 65536 }, { f->status, 1 } };
	uint32_t id, len;
	uint16_t head;
	int seen = 0;

	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	head = gvq_add(g, &rd, 1, wr, 2);
	for (int round = 0; round < 4; round++) {
		struct virtq *vq = &f->disk[0].d->vqs[0];
		/* publish the next batch once the device took the last one,
		 * while much of it is still in flight */
		for (int i = 0; i < 5000 && __atomic_load_n(&vq->last_avail, __ATOMIC_ACQUIRE) !=
						  g->avail_idx; i++)
			usleep(100);
		for (int i = round ? 0 : 1; i < QSIZE; i++)
			gvq_publish(g, head);
		mmio_wr(f->disk[0].m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
		assert_true(__atomic_load_n(&f->disk[0].d->inflight, __ATOMIC_RELAXED) <= QSIZE);
	}
	while (seen < 4 * QSIZE && gvq_wait_used(g, &id, &len, 5000)) {
		assert_int_equal(id, head);
		seen++;
	}
	assert_int_equal(seen, 4 * QSIZE);
	assert_false(mmio_rd(f->disk[0].m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_flush(void **state)
{
	struct fixture *f = *state;
	uint32_t used;

	assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, &used), VIRTIO_BLK_S_OK);
	assert_int_equal(used, 1);
}

static void test_get_id(void **state)
{
	struct fixture *f = *state;
	char want[VIRTIO_BLK_ID_BYTES] = "cove-vblk0";
	uint32_t used;

	memset(gp(f, f->data), 0xff, 64);
	assert_int_equal(req(f, VIRTIO_BLK_T_GET_ID, 0, f->data, 20, true, &used),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(used, 21);
	assert_memory_equal(gp(f, f->data), want, 20);
	/* a short buffer gets what fits */
	memset(gp(f, f->data), 0xff, 64);
	assert_int_equal(req(f, VIRTIO_BLK_T_GET_ID, 0, f->data, 8, true, &used),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(used, 9);
	assert_memory_equal(gp(f, f->data), "cove-vbl", 8);
	assert_int_equal(((uint8_t *)gp(f, f->data))[8], 0xff);
}

static void put_dwz(struct fixture *f, int i, uint64_t sector, uint32_t num, uint32_t flags)
{
	uint8_t *p = (uint8_t *)gp(f, f->data) + 16 * i;

	memcpy(p, &sector, 8);
	memcpy(p + 8, &num, 4);
	memcpy(p + 12, &flags, 4);
}

static bool all_zero(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

static void test_discard(void **state)
{
	struct fixture *f = *state;
	blkcnt_t before = file_blocks(f), after;
	uint8_t *d = gp(f, f->data);

	put_dwz(f, 0, 2048, 2048, 0);		/* 1 MiB at 1 MiB */
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_OK);
	after = file_blocks(f);
	assert_true(after <= before - 2048 * 3 / 4);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 2048, f->data + 65536, 65536, true, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(all_zero(d + 65536, 65536));
	/* the sectors around are intact */
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 2047, f->data + 65536, 512, true, NULL),
			 VIRTIO_BLK_S_OK);
	check_pattern(d + 65536, 2047 * 512, 512);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 4096, f->data + 65536, 512, true, NULL),
			 VIRTIO_BLK_S_OK);
	check_pattern(d + 65536, 4096 * 512, 512);
}

static void test_discard_segments(void **state)
{
	struct fixture *f = *state;
	blkcnt_t before = file_blocks(f);

	put_dwz(f, 0, 0, 256, 0);
	put_dwz(f, 1, 1024, 0, 0);		/* empty range: fine */
	put_dwz(f, 2, 4096, 512, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 48, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(file_blocks(f) <= before - 768 * 3 / 4);
}

static void test_write_zeroes(void **state)
{
	struct fixture *f = *state;
	uint8_t *d = gp(f, f->data);
	blkcnt_t before = file_blocks(f);

	/* without UNMAP: zeroes, space stays allocated */
	put_dwz(f, 0, 100, 20, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 99, f->data + 65536, 22 * 512, true, NULL),
			 VIRTIO_BLK_S_OK);
	check_pattern(d + 65536, 99 * 512, 512);
	assert_true(all_zero(d + 65536 + 512, 20 * 512));
	check_pattern(d + 65536 + 21 * 512, 120 * 512, 512);
	assert_true(file_blocks(f) >= before);

	/* with UNMAP: zeroes, space may go */
	put_dwz(f, 0, 4096, 2048, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_OK);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 4096, f->data + 65536, 65536, true, NULL),
			 VIRTIO_BLK_S_OK);
	assert_true(all_zero(d + 65536, 65536));
	assert_true(file_blocks(f) <= before - 2048 * 3 / 4);	/* extent blocks may come and go */
}

static void test_dwz_bad(void **state)
{
	struct fixture *f = *state;

	put_dwz(f, 0, 0, 8, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	put_dwz(f, 0, 0, 8, 2);
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
	put_dwz(f, 0, SECTORS - 4, 8, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	put_dwz(f, 0, UINT64_MAX - 2, 8, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	put_dwz(f, 0, 0, 8, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 12, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 0, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	for (int i = 0; i < VBLK_MAX_DWZ_SEGS + 1; i++)
		put_dwz(f, i, i * 8, 8, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16 * (VBLK_MAX_DWZ_SEGS + 1),
			     false, NULL), VIRTIO_BLK_S_IOERR);
	/* nothing was touched */
	uint8_t back[4096];
	file_read(f, 0, 0, back, sizeof(back));
	check_pattern(back, 0, sizeof(back));
	file_read(f, 0, DISK_SIZE - 4096, back, sizeof(back));
	check_pattern(back, DISK_SIZE - 4096, sizeof(back));
	assert_int_equal(f->disk[0].d->stats.errors, 7);
}

static void test_dwz_not_negotiated(void **state)
{
	struct fixture *f = *state;

	bring_up(f, 0, (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	f->disk[0].g.avail_idx = f->disk[0].g.last_used = f->disk[0].g.next_desc = 0;
	f->disk[0].g.avail->idx = 0;
	put_dwz(f, 0, 0, 8, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_UNSUPP);
}

static void test_out_of_range(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(req(f, VIRTIO_BLK_T_IN, SECTORS, f->data, 512, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, SECTORS - 1, f->data, 1024, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, UINT64_MAX, f->data, 512, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, UINT64_MAX >> 9, f->data, 512, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, SECTORS, f->data, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 1ull << 55, f->data, 512, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* not a whole number of sectors */
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 0, f->data, 100, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 0, f->data, 513, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(f->disk[0].d->stats.errors, 8);
	assert_int_equal(f->disk[0].d->stats.requests, 8);
	/* the file is unchanged at both ends */
	uint8_t back[512];
	file_read(f, 0, 0, back, 512);
	check_pattern(back, 0, 512);
	file_read(f, 0, DISK_SIZE - 512, back, 512);
	check_pattern(back, DISK_SIZE - 512, 512);
	struct stat st;
	assert_int_equal(stat(f->disk[0].path, &st), 0);
	assert_int_equal(st.st_size, DISK_SIZE);
}

static void test_short_header(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd = { f->hdr, 8 };
	struct gvq_buf wr = { f->status, 1 };
	uint32_t used;
	uint16_t head;

	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	head = gvq_add(&f->disk[0].g, &rd, 1, &wr, 1);
	kick_wait(f, 0, head, &used);
	assert_int_equal(*(uint8_t *)gp(f, f->status), VIRTIO_BLK_S_IOERR);
	assert_int_equal(used, 1);
	assert_int_equal(f->disk[0].d->stats.errors, 1);
	/* no status byte at all: the chain comes back empty */
	rd.len = 16;
	head = gvq_add(&f->disk[0].g, &rd, 1, NULL, 0);
	kick_wait(f, 0, head, &used);
	assert_int_equal(used, 0);
	assert_int_equal(f->disk[0].d->stats.errors, 2);
	/* the device goes on */
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 0, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
	assert_false(mmio_rd(f->disk[0].m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_unknown_type(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(req(f, 99, 0, f->data, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(req(f, 10, 0, f->data, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(req(f, 0x80000001, 0, 0, 0, false, NULL), VIRTIO_BLK_S_UNSUPP);
	assert_int_equal(f->disk[0].d->stats.errors, 3);
}

static void test_too_many_segments(void **state)
{
	struct fixture *f = *state;
	static struct gvq_buf wr[VIRTQ_MAX_SEGS + 1];
	struct gvq_buf rd = { f->hdr, 16 };
	uint32_t used;
	uint16_t head;

	for (int i = 0; i < VIRTQ_MAX_SEGS + 1; i++)
		wr[i] = (struct gvq_buf){ f->data + 512ull * i, 512 };
	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	head = gvq_add_indirect(&f->disk[0].g, &rd, 1, wr, VIRTQ_MAX_SEGS);
	kick_wait(f, 0, head, &used);
	assert_int_equal(used, 0);
	assert_int_equal(f->disk[0].d->stats.errors, 1);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 0, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
}

static void test_protocol_violation(void **state)
{
	struct fixture *f = *state;
	struct disk *k = &f->disk[0];
	uint32_t id, len;

	gvq_set_desc(&k->g, 0, f->hdr, 16, VRING_DESC_F_NEXT, 1);
	gvq_set_desc(&k->g, 1, f->status, 1, VRING_DESC_F_NEXT, 0);	/* a loop */
	gvq_publish(&k->g, 0);
	mmio_wr(k->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; i < 5000 && !(mmio_rd(k->m, VIRTIO_MMIO_STATUS) &
				      VIRTIO_STATUS_NEEDS_RESET); i++)
		usleep(1000);
	assert_true(mmio_rd(k->m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	assert_int_equal(k->d->stats.guest_errors, 1);
	assert_false(gvq_get_used(&k->g, &id, &len));
	/* a good request is not served until reset */
	k->g.next_desc = 2;
	put_hdr(f, VIRTIO_BLK_T_IN, 0);
	struct gvq_buf rd = { f->hdr, 16 }, wr = { f->status, 1 };
	gvq_add(&k->g, &rd, 1, &wr, 1);
	mmio_wr(k->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	usleep(20000);
	assert_false(gvq_get_used(&k->g, &id, &len));
	/* after a reset the device works again */
	memset(k->g.desc, 0, 16 * QSIZE);
	k->g.avail_idx = k->g.last_used = k->g.next_desc = 0;
	k->g.avail->idx = 0;
	bring_up(f, 0, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
}

static void test_reset_in_flight(void **state)
{
	struct fixture *f = *state;
	struct disk *k = &f->disk[0];
	uint8_t *d = gp(f, f->data);
	const int n = 32;
	uint16_t used_idx;

	memset(d, 0xcc, 2 << 20);
	for (int i = 0; i < n; i++) {
		uint64_t h = f->hdr + 32 * i;
		uint32_t type = VIRTIO_BLK_T_IN;
		uint64_t sector = i * 128;
		struct gvq_buf rd = { h, 16 };
		struct gvq_buf wr[2] = { { f->data + i * 65536ull, 65536 }, { f->status + i, 1 } };
		memcpy(gp(f, h), &type, 4);
		memcpy((uint8_t *)gp(f, h) + 8, &sector, 8);
		gvq_add(&k->g, &rd, 1, wr, 2);
	}
	mmio_wr(k->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	mmio_wr(k->m, VIRTIO_MMIO_STATUS, 0);
	/* the reset waited for the host I/O */
	assert_int_equal(mmio_rd(k->m, VIRTIO_MMIO_STATUS), 0);
	assert_int_equal(__atomic_load_n(&k->d->inflight, __ATOMIC_ACQUIRE), 0);
	/* nothing reaches the rings any more */
	used_idx = __atomic_load_n(&k->g.used->idx, __ATOMIC_ACQUIRE);
	memset(d, 0xcc, 2 << 20);
	usleep(50000);
	assert_int_equal(__atomic_load_n(&k->g.used->idx, __ATOMIC_ACQUIRE), used_idx);
	for (size_t i = 0; i < (2u << 20); i++)
		if (d[i] != 0xcc)
			fail_msg("byte %zu written after reset", i);
	/* and the device comes back */
	memset(k->g.desc, 0, 16 * QSIZE);
	memset(k->g.used, 0, VRING_USED_BYTES(QSIZE));
	k->g.avail_idx = k->g.last_used = k->g.next_desc = 0;
	k->g.avail->idx = 0;
	bring_up(f, 0, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 1, f->data, 512, true, NULL), VIRTIO_BLK_S_OK);
	check_pattern(d, 512, 512);
}

static void test_truncated_file(void **state)
{
	struct fixture *f = *state;

	/* Someone shrinks the file under us: reads past the new end fail
	 * (after a short read for the part that is still there). */
	assert_int_equal(truncate(f->disk[0].path, DISK_SIZE / 2), 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, SECTORS / 2 - 4, f->data, 4096, true, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, SECTORS / 2 - 4, f->data, 2048, true, NULL),
			 VIRTIO_BLK_S_OK);
	check_pattern(gp(f, f->data), DISK_SIZE / 2 - 2048, 2048);
}

static void file_copy(const char *path, uint8_t *buf)
{
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, DISK_SIZE, 0), (ssize_t)DISK_SIZE);
	close(fd);
}

static void test_readonly(void **state)
{
	struct fixture *f = *state;
	uint8_t *before = malloc(DISK_SIZE), *after = malloc(DISK_SIZE);
	uint64_t feat = offered(f->disk[0].m);
	struct stat st0, st1;

	assert_true(feat & (1ull << VIRTIO_BLK_F_RO));
	assert_false(feat & (1ull << VIRTIO_BLK_F_DISCARD));
	assert_false(feat & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	file_copy(f->disk[0].path, before);
	assert_int_equal(stat(f->disk[0].path, &st0), 0);

	memset(gp(f, f->data), 0, 4096);
	assert_int_equal(req(f, VIRTIO_BLK_T_OUT, 0, f->data, 4096, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	put_dwz(f, 0, 0, 64, 0);
	assert_int_equal(req(f, VIRTIO_BLK_T_DISCARD, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	put_dwz(f, 0, 0, 64, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
	assert_int_equal(req(f, VIRTIO_BLK_T_WRITE_ZEROES, 0, f->data, 16, false, NULL),
			 VIRTIO_BLK_S_IOERR);
	/* reads and flushes work */
	assert_int_equal(req(f, VIRTIO_BLK_T_IN, 0, f->data, 4096, true, NULL), VIRTIO_BLK_S_OK);
	check_pattern(gp(f, f->data), 0, 4096);
	assert_int_equal(req(f, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);

	file_copy(f->disk[0].path, after);
	assert_true(memcmp(before, after, DISK_SIZE) == 0);
	assert_int_equal(stat(f->disk[0].path, &st1), 0);
	assert_int_equal(st0.st_blocks, st1.st_blocks);
	assert_true(st0.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
		    st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec);
	assert_int_equal(f->disk[0].d->stats.errors, 4);
	free(before);
	free(after);
}

static void test_two_disks(void **state)
{
	struct fixture *f = *state;
	uint8_t *d = gp(f, f->data);
	uint8_t back[512];

	/* A second device beside the first, both on one loop. */
	make_disk(&f->disk[1]);
	/* start over with both devices on one fresh loop */
	evloop_join(f->loop);
	virtio_mmio_destroy(f->disk[0].m);
	evloop_destroy(f->loop);
	assert_int_equal(evloop_create(&f->loop), 0);
	open_disk(f, 0, false);
	open_disk(f, 1, false);
	assert_int_equal(evloop_start(f->loop, NULL, NULL), 0);
	bring_up(f, 0, 0);
	bring_up(f, 1, 0);

	memset(d, 0x11, 512);
	assert_int_equal(req_on(f, 0, VIRTIO_BLK_T_OUT, 5, f->data, 512, false, NULL),
			 VIRTIO_BLK_S_OK);
	memset(d, 0x22, 512);
	assert_int_equal(req_on(f, 1, VIRTIO_BLK_T_OUT, 5, f->data, 512, false, NULL),
			 VIRTIO_BLK_S_OK);
	file_read(f, 0, 5 * 512, back, 512);
	assert_int_equal(back[0], 0x11);
	file_read(f, 1, 5 * 512, back, 512);
	assert_int_equal(back[0], 0x22);
	assert_int_equal(req_on(f, 1, VIRTIO_BLK_T_GET_ID, 0, f->data, 20, true, NULL),
			 VIRTIO_BLK_S_OK);
	assert_string_equal((char *)d, "cove-vblk1");
	assert_int_equal(f->disk[0].d->stats.requests, 1);
	assert_int_equal(f->disk[1].d->stats.requests, 2);
}

/* vblk_open's messages (no loop needed). */
static void test_open_errors(void **state)
{
	struct virtio_dev *d;
	char path[64];
	int fd;

	(void)state;
	assert_int_equal(vblk_open("/nonexistent/disk.img", false, &d), -ENOENT);
	assert_string_equal(cove_last_error(),
			    "disk /nonexistent/disk.img: No such file or directory");
	assert_int_equal(vblk_open("/tmp", true, &d), -EINVAL);
	assert_string_equal(cove_last_error(), "disk /tmp: not a regular file or block device");
	assert_int_equal(vblk_open("/dev/null", false, &d), -EINVAL);

	snprintf(path, sizeof(path), "/tmp/cove-vblk-ro-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4096), 0);
	close(fd);
	assert_int_equal(chmod(path, 0444), 0);
	/* root ignores file modes: try it as nobody in a child */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char want[128];
		if (geteuid() == 0 && (setgid(65534) < 0 || setuid(65534) < 0))
			_exit(2);
		snprintf(want, sizeof(want),
			 "disk %s: Permission denied (use ,ro for a read-only disk)", path);
		if (vblk_open(path, false, &d) != -EACCES)
			_exit(3);
		if (strcmp(cove_last_error(), want))
			_exit(4);
		if (vblk_open(path, true, &d) != 0)
			_exit(5);
		d->ops->destroy(d);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	unlink(path);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TR(fn) cmocka_unit_test_setup_teardown(fn, setup_ro, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_config),
		T(test_read),
		T(test_read_segments),
		T(test_write),
		T(test_write_indirect),
		T(test_big_request),
		T(test_many_in_flight),
		T(test_republished_head),
		T(test_flush),
		T(test_get_id),
		T(test_discard),
		T(test_discard_segments),
		T(test_write_zeroes),
		T(test_dwz_bad),
		T(test_dwz_not_negotiated),
		T(test_out_of_range),
		T(test_short_header),
		T(test_unknown_type),
		T(test_too_many_segments),
		T(test_protocol_violation),
		T(test_reset_in_flight),
		T(test_truncated_file),
		TR(test_readonly),
		T(test_two_disks),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
