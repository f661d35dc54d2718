/* libFuzzer: virtio-balloon. The real event loop runs on its own thread;
 * the input describes chains a guest driver puts on the inflate, deflate,
 * stats and reporting queues (pfn arrays, statistics, free ranges; mostly
 * in guest RAM, sometimes anything), config writes, stats requests, and
 * raw descriptors that break the ring protocol. Pages the device drops
 * read as zero afterwards; nothing may crash, hang, leak or touch memory
 * outside the fake guest RAM. After each input the device is reset.
 *
 * Input: [0] feature mask (bit 0 stats, bit 1 reporting, bit 2 deflate on
 * OOM), then records: [0] action and queue, [1] layout, [2..3] length,
 * [4..19] payload. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fake_mem.c"	/* test support, compiled in (fuzz builds do not link it) */
#include "guest_vq.c"
#include "evloop.h"
#include "libcove.h"
#include "virtio_balloon.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"

#define MEM_GPA		0x200000ull
#define MEM_SIZE	(1ull << 20)
#define QSIZE		16
#define REC		20

static struct fake_mem fm;
static struct evloop *loop;
static struct virtio_dev *dev;
static struct virtio_mmio *m;
static struct guest_vq g[VBALLOON_NUM_QUEUES];

static void init(void)
{
	if (fake_mem_init(&fm, MEM_GPA, MEM_SIZE) < 0 || evloop_create(&loop) < 0 ||
	    vballoon_open(&dev) < 0 || virtio_mmio_create(dev, "vballoon0", &fm.gm, loop, &m) < 0)
		abort();
	if (evloop_start(loop, NULL, NULL) < 0)
		abort();
}

struct kick {
	unsigned q;
};

static void kick_on_loop(void *arg)
{
	virtio_mmio_kick(m, ((struct kick *)arg)->q);
}

static void stats_on_loop(void *arg)
{
	struct cove_balloon_stats st;

	(void)arg;
	vballoon_stats(dev, &st);
}

static uint64_t buf_alloc(uint32_t len)
{
	uint64_t a = fake_mem_alloc(&fm, len ? len : 1, 4);

	return a ? a : MEM_GPA;	/* out of room: reuse the start (overlaps are legal) */
}

static void add_chain(unsigned q, const uint8_t *r)
{
	struct gvq_buf b[4];
	uint8_t layout = r[1];
	uint32_t len = (r[2] | r[3] << 8) & 0x1fff;
	unsigned nseg = 1 + (layout & 3);

	for (unsigned s = 0; s < nseg; s++) {
		uint32_t l = s + 1 == nseg ? len : len / nseg;
		uint64_t a = buf_alloc(l);
		uint8_t *p = fake_mem_ptr(&fm, a);

		for (uint32_t k = 0; k + 4 <= l && p; k += 4) {
			uint32_t v;
			memcpy(&v, r + 4 + k % 16, 4);
			/* mostly pfns of guest RAM, stats tags below 16 */
			if (!(layout & 0x80))
				v = (uint32_t)(MEM_GPA >> 12) + v % (uint32_t)((MEM_SIZE >> 12) + 2);
			memcpy(p + k, &v, 4);
		}
		b[s] = (struct gvq_buf){ a, l };
		if (layout & 0x40) {
			/* a free range: page-aligned in RAM */
			b[s].gpa = MEM_GPA + ((uint64_t)r[4 + s] << 12) % MEM_SIZE;
			b[s].len = (uint32_t)(r[8 + s] & 15) << 12;
			if (b[s].gpa + b[s].len > MEM_GPA + MEM_SIZE)
				b[s].len = (uint32_t)(MEM_GPA + MEM_SIZE - b[s].gpa);
		}
	}
	if (layout & 0x20)
		gvq_add_indirect(&g[q], layout & 0x10 ? NULL : b, layout & 0x10 ? 0 : nseg,
				 layout & 0x10 ? b : NULL, layout & 0x10 ? nseg : 0);
	else
		gvq_add(&g[q], layout & 0x10 ? NULL : b, layout & 0x10 ? 0 : nseg,
			layout & 0x10 ? b : NULL, layout & 0x10 ? nseg : 0);
}

static void add_raw(unsigned q, const uint8_t *r)
{
	uint64_t addr;
	uint32_t len;

	memcpy(&addr, r + 4, 8);
	memcpy(&len, r + 12, 4);
	if (!(r[1] & 0x80))
		addr = MEM_GPA + addr % MEM_SIZE;
	gvq_set_desc(&g[q], r[2] % QSIZE, addr, len, r[1] & 7, r[3] % (QSIZE + 2));
	if (r[1] & 0x40)
		gvq_publish(&g[q], r[16] % (QSIZE + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned nq = 2, added[VBALLOON_NUM_QUEUES] = { 0 };
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_INDIRECT_DESC);
	uint32_t id, len;

	if (!loop)
		init();
	if (size < 1)
		return 0;
	memset(fm.buf, 0, MEM_SIZE);
	fm.next = MEM_GPA;
	if (data[0] & 1) {
		want |= 1ull << VIRTIO_BALLOON_F_STATS_VQ;
		nq++;
	}
	if (data[0] & 2) {
		want |= 1ull << VIRTIO_BALLOON_F_REPORTING;
		nq++;
	}
	if (data[0] & 4)
		want |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (data[0] & 8)
		want |= 1ull << VIRTIO_F_EVENT_IDX;
	for (unsigned q = 0; q < nq; q++)
		if (gvq_init(&g[q], &fm, QSIZE) < 0)
			abort();
	if (!(gvq_mmio_init(m, want, g, nq) & VIRTIO_STATUS_DRIVER_OK))
		abort();

	for (size_t i = 1; i + REC <= size; i += REC) {
		const uint8_t *r = data + i;
		struct kick k = { (r[0] >> 4) % nq };

		switch (r[0] & 7) {
		case 0:
		case 1:
		case 2:
			if (added[k.q]++ < QSIZE)
				add_chain(k.q, r);
			break;
		case 3:
			add_raw(k.q, r);
			break;
		case 4:
			evloop_call(loop, stats_on_loop, NULL);
			break;
		case 5:
			virtio_mmio_write(m, VIRTIO_MMIO_CONFIG + (r[1] & 15), r + 4, 1u << (r[2] & 2));
			break;
		default:
			vballoon_set_target(dev, r[4] | r[5] << 8);
			break;
		}
		if (r[0] & 8)
			evloop_call(loop, kick_on_loop, &k);
	}
	for (unsigned q = 0; q < nq; q++) {
		struct kick k = { q };
		evloop_call(loop, kick_on_loop, &k);
		for (unsigned n = 0; n < 65536 && gvq_get_used(&g[q], &id, &len); n++)
			;
	}
	mmio_wr(m, VIRTIO_MMIO_STATUS, 0);
	if (mmio_rd(m, VIRTIO_MMIO_STATUS) != 0)
		abort();
	return 0;
}
