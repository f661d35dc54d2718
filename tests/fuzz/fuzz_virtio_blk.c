/* libFuzzer: virtio-blk requests. A 256 KiB memfd is the disk, the real
 * event loop runs on its own thread (io_uring), and the input describes
 * request chains that a guest driver lays out in fake memory: well-formed
 * headers of every type with random sectors, lengths and segment layouts,
 * discard/write-zeroes ranges, and raw descriptors that break the ring
 * protocol. After each input the device is reset; nothing may crash,
 * hang, leak or write outside the disk and the guest's buffers.
 *
 * Input: [0] feature mask (which offered features the driver takes), then
 * records: [0] kind, [1] type, [2..9] sector, [10] layout, [11..12] len,
 * [13..28] payload (discard/write-zeroes range or data). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fake_mem.c"	/* test support, compiled in (fuzz builds do not link it) */
#include "guest_vq.c"
#include "evloop.h"
#include "virtio_blk.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"

#define MEM_GPA		0x200000ull
#define MEM_SIZE	(1ull << 20)
#define DISK_SIZE	(256ull << 10)
#define QSIZE		64
#define REC		29

static struct fake_mem fm;
static struct evloop *loop;
static struct virtio_dev *dev;
static struct virtio_mmio *m;
static struct guest_vq g;
static uint64_t features;

static void noop(void *arg)
{
	(void)arg;
}

static void init(void)
{
	char path[64];
	int fd = memfd_create("fuzz-disk", MFD_CLOEXEC);

	if (fd < 0 || ftruncate(fd, DISK_SIZE) < 0)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (fake_mem_init(&fm, MEM_GPA, MEM_SIZE) < 0 || evloop_create(&loop) < 0 ||
	    vblk_open(path, false, &dev) < 0 ||
	    virtio_mmio_create(dev, "vblk0", &fm.gm, loop, &m) < 0)
		abort();
	if (evloop_start(loop, NULL, NULL) < 0)
		abort();
	mmio_wr(m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	features = mmio_rd(m, VIRTIO_MMIO_DEVICE_FEATURES);
	mmio_wr(m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	features |= (uint64_t)mmio_rd(m, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static void kick_on_loop(void *arg)
{
	virtio_mmio_kick(arg, 0);
}

static void drain(void)
{
	for (int i = 0; i < 100000; i++) {
		evloop_call(loop, noop, NULL);
		if (!__atomic_load_n(&dev->inflight, __ATOMIC_ACQUIRE))
			return;
		usleep(10);
	}
	abort();	/* I/O that never completes */
}

static uint64_t le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static uint64_t buf_alloc(uint32_t len)
{
	uint64_t a = fake_mem_alloc(&fm, len ? len : 1, 8);

	return a ? a : MEM_GPA;	/* out of room: reuse the start (overlaps are legal) */
}

static void add_request(const uint8_t *r)
{
	static const uint32_t types[] = {
		VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID,
		VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, 10, 0xffffffff,
	};
	struct gvq_buf rd[8], wr[8];
	unsigned nrd = 0, nwr = 0;
	uint32_t type = types[r[1] & 7];
	uint64_t sector = le64(r + 2);
	uint8_t layout = r[10];
	uint32_t len = (r[11] | r[12] << 8) & 0x3fff;
	uint8_t hdr[16] = { 0 };
	uint64_t h;

	/* mostly sane sectors, sometimes anything */
	if (!(layout & 0x80))
		sector %= (DISK_SIZE / 512) + 8;
	if (layout & 0x40)
		len &= ~511u;
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
	h = buf_alloc(16);
	memcpy(fake_mem_ptr(&fm, h), hdr, 16);
	rd[nrd++] = (struct gvq_buf){ h, (layout & 0x20) ? (uint32_t)(layout & 15) : 16 };

	bool dev_writes = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID;
	if (r[0] & 0x10)
		dev_writes = !dev_writes;
	unsigned nseg = 1 + (layout & 3);
	for (unsigned s = 0; s < nseg && len; s++) {
		uint32_t l = s + 1 == nseg ? len : len / nseg;
		uint64_t b = buf_alloc(l);
		uint8_t *p = fake_mem_ptr(&fm, b);
		/* payload: ranges for discard / write zeroes, else a pattern */
		for (uint32_t k = 0; k < l && p; k++)
			p[k] = r[13 + k % 16];
		if (dev_writes)
			wr[nwr++] = (struct gvq_buf){ b, l };
		else
			rd[nrd++] = (struct gvq_buf){ b, l };
		len -= l;
	}
	if (!(r[0] & 0x20))
		wr[nwr++] = (struct gvq_buf){ buf_alloc(1), 1 };
	if (r[0] & 0x40)
		gvq_add_indirect(&g, rd, nrd, wr, nwr);
	else
		gvq_add(&g, rd, nrd, wr, nwr);
}

static void add_raw(const uint8_t *r)
{
	/* a descriptor as the driver wrote it, anything goes */
	uint16_t i = r[1] % QSIZE;
	uint64_t addr = r[0] & 0x10 ? le64(r + 2) : MEM_GPA + (le64(r + 2) % MEM_SIZE);
	uint32_t len = r[11] | r[12] << 8 | (r[0] & 0x20 ? (uint32_t)r[13] << 24 : 0);

	gvq_set_desc(&g, i, addr, len, r[10] & 7, r[14] % (QSIZE + 2));
	if (r[0] & 0x40)
		gvq_publish(&g, r[15] % (QSIZE + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t id, len;
	unsigned added = 0, used = 0;


	if (!loop)
		init();
	if (size < 1)
		return 0;
	memset(fm.buf, 0, MEM_SIZE);
	fm.next = MEM_GPA;
	if (gvq_init(&g, &fm, QSIZE) < 0)
		abort();
	/* the driver takes a subset of what is offered; VERSION_1 always */
	uint64_t want = features & (((uint64_t)data[0] << 9) | (1ull << VIRTIO_F_VERSION_1) |
				    (data[0] & 1 ? 1ull << VIRTIO_F_EVENT_IDX : 0) |
				    (data[0] & 2 ? 1ull << VIRTIO_F_INDIRECT_DESC : 0) | 0x7f);
	if (!(gvq_mmio_init(m, want, &g, 1) & VIRTIO_STATUS_DRIVER_OK))
		abort();

	for (size_t i = 1; i + REC <= size; i += REC) {
		const uint8_t *r = data + i;
		if ((r[0] & 0x0f) == 0x0f)
			add_raw(r);
		else if (added < QSIZE) {
			add_request(r);
			added++;
		}
		if (r[0] & 0x80) {
			evloop_call(loop, kick_on_loop, m);
			drain();
		}
	}
	evloop_call(loop, kick_on_loop, m);
	drain();
	while (used++ < 65536 && gvq_get_used(&g, &id, &len))
		;
	/* status back to 0; the reset waits for any host I/O */
	mmio_wr(m, VIRTIO_MMIO_STATUS, 0);
	if (mmio_rd(m, VIRTIO_MMIO_STATUS) != 0 || dev->inflight)
		abort();
	return 0;
}
