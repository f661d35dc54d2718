/* libFuzzer: virtio-net transmit chains (and receive buffers). The device
 * runs on the real event loop over an in-memory backend; the input
 * describes chains a guest driver lays out in fake memory: transmit
 * frames with random lengths and segment layouts (short headers, empty
 * and oversized ones, indirect tables), receive buffers of random sizes,
 * frames from the host side, and raw descriptors that break the ring
 * protocol. After each input the device is reset; nothing may crash,
 * hang, leak or touch memory outside the guest's buffers.
 *
 * Input: [0] feature mask, then records: [0] kind and flags, [1] queue
 * slot, [2..9] address bits, [10] layout, [11..12] length, [13..15] raw. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_mem.c"	/* test support, compiled in (fuzz builds do not link it) */
#include "guest_vq.c"
#include "evloop.h"
#include "iov.h"
#include "net_backend.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"
#include "virtio_net.h"

#define MEM_GPA		0x200000ull
#define MEM_SIZE	(1ull << 20)
#define QSIZE		64
#define REC		16
#define FRAMES		8

static struct fake_mem fm;
static struct evloop *loop;
static struct virtio_dev *dev;
static struct virtio_mmio *m;
static struct guest_vq g[2];
static uint64_t features;

/* ---- a backend in memory: frames to the guest come from the input,
 * frames from the guest are checked and forgotten ---- */

static struct net_backend be;
static uint32_t frame_len[FRAMES];
static unsigned nframes;
static uint8_t frame_buf[VNET_MAX_FRAME];
static bool rx_on;

static int fb_start(struct net_backend *b, struct evloop *l)
{
	(void)b;
	(void)l;
	return 0;
}

static void fb_rx_enable(struct net_backend *b, bool on)
{
	(void)b;
	rx_on = on;
}

static ssize_t fb_recv(struct net_backend *b, const struct iovec *iov, int n)
{
	(void)b;
	if (!nframes)
		return -EAGAIN;
	nframes--;
	return iov_copy(iov, n, 0, frame_buf, frame_len[nframes], true);
}

static ssize_t fb_send(struct net_backend *b, const struct iovec *iov, int n)
{
	static uint8_t sink[VNET_MAX_FRAME];
	size_t len = 0;

	(void)b;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	if (len < VNET_HDR_LEN || len > VNET_MAX_FRAME)
		abort();	/* the device must have refused it */
	/* read every byte, as a tap would */
	return iov_copy(iov, n, 0, sink, sizeof(sink), false);
}

static int fb_set_offload(struct net_backend *b, uint64_t f)
{
	(void)b;
	(void)f;
	return 0;
}

static void fb_destroy(struct net_backend *b)
{
	(void)b;
}

static const struct net_backend_ops fb_ops = {
	.kind = "fuzz", .offloads = true, .start = fb_start, .rx_enable = fb_rx_enable,
	.recv = fb_recv, .send = fb_send, .set_offload = fb_set_offload, .destroy = fb_destroy,
};

static void init(void)
{
	static const uint8_t mac[6] = { 2, 0, 0, 0, 0, 1 };

	be.ops = &fb_ops;
	for (size_t i = 0; i < sizeof(frame_buf); i++)
		frame_buf[i] = i * 7;
	if (fake_mem_init(&fm, MEM_GPA, MEM_SIZE) < 0 || evloop_create(&loop) < 0 ||
	    vnet_open(&be, mac, &dev) < 0 ||
	    virtio_mmio_create(dev, "vnet0", &fm.gm, loop, &m) < 0)
		abort();
	if (evloop_start(loop, NULL, NULL) < 0)
		abort();
	mmio_wr(m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	features = mmio_rd(m, VIRTIO_MMIO_DEVICE_FEATURES);
	mmio_wr(m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	features |= (uint64_t)mmio_rd(m, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static void kick_rx(void *arg)
{
	virtio_mmio_kick(arg, VNET_RXQ);
}

static void kick_tx(void *arg)
{
	virtio_mmio_kick(arg, VNET_TXQ);
}

static void host_ready(void *arg)
{
	(void)arg;
	if (rx_on)
		be.rx_ready(be.rx_arg);
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

/* A chain: for tx device-readable, for rx device-writable. */
static void add_chain(struct guest_vq *q, const uint8_t *r, bool tx)
{
	struct gvq_buf b[8];
	uint8_t layout = r[10];
	uint32_t len = r[11] | r[12] << 8;
	unsigned nseg = 1 + (layout & 7);

	if (layout & 0x40)
		len |= 0x10000;		/* past the largest frame */
	for (unsigned s = 0; s < nseg; s++) {
		uint32_t l = s + 1 == nseg ? len : len / nseg;
		uint64_t a = buf_alloc(l);
		uint8_t *p = fake_mem_ptr(&fm, a);
		for (uint32_t k = 0; k < l && p && k < 64; k++)
			p[k] = r[2 + k % 8];
		b[s] = (struct gvq_buf){ a, l };
		len -= l;
	}
	/* (the empty side gets a valid pointer too) */
	if ((layout & 0x80) && fm.gpa + fm.size - fm.next >= 16 * 8 + 16)	/* room for the table */
		gvq_add_indirect(q, b, tx ? nseg : 0, b, tx ? 0 : nseg);
	else
		gvq_add(q, b, tx ? nseg : 0, b, tx ? 0 : nseg);
}

static void add_raw(struct guest_vq *q, const uint8_t *r)
{
	uint16_t i = r[1] % QSIZE;
	uint64_t addr = r[0] & 0x10 ? le64(r + 2) : MEM_GPA + (le64(r + 2) % MEM_SIZE);
	uint32_t len = r[11] | r[12] << 8 | (r[0] & 0x20 ? (uint32_t)r[13] << 24 : 0);

	gvq_set_desc(q, i, addr, len, r[10] & 7, r[14] % (QSIZE + 2));
	if (r[0] & 0x40)
		gvq_publish(q, r[15] % (QSIZE + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint32_t id, len;
	unsigned added[2] = { 0, 0 };

	if (!loop)
		init();
	if (size < 1)
		return 0;
	memset(fm.buf, 0, MEM_SIZE);
	fm.next = MEM_GPA;
	nframes = 0;
	if (gvq_init(&g[0], &fm, QSIZE) < 0 || gvq_init(&g[1], &fm, QSIZE) < 0)
		abort();
	uint64_t want = features & (((uint64_t)data[0] << 9 | data[0]) | (1ull << VIRTIO_F_VERSION_1) |
				    (data[0] & 1 ? 1ull << VIRTIO_F_EVENT_IDX : 0) |
				    (data[0] & 2 ? 1ull << VIRTIO_F_INDIRECT_DESC : 0) |
				    (1ull << VIRTIO_NET_F_MAC));
	if (!(gvq_mmio_init(m, want, g, 2) & VIRTIO_STATUS_DRIVER_OK))
		abort();

	for (size_t i = 1; i + REC <= size; i += REC) {
		const uint8_t *r = data + i;
		int q = r[0] & 1 ? VNET_RXQ : VNET_TXQ;

		switch ((r[0] >> 1) & 3) {
		case 0:
		case 1:
			if (added[q] < QSIZE) {
				add_chain(&g[q], r, q == VNET_TXQ);
				added[q]++;
			}
			break;
		case 2:
			if (nframes < FRAMES)
				frame_len[nframes++] = (r[11] | r[12] << 8 | (r[10] & 1) << 16) %
						       (VNET_MAX_FRAME + 1);
			evloop_call(loop, host_ready, NULL);
			break;
		case 3:
			add_raw(&g[q], r);
			break;
		}
		if (r[0] & 0x80)
			evloop_call(loop, q == VNET_RXQ ? kick_rx : kick_tx, m);
	}
	evloop_call(loop, kick_tx, m);
	evloop_call(loop, kick_rx, m);
	for (int q = 0; q < 2; q++)
		for (unsigned n = 0; n < 65536 && gvq_get_used(&g[q], &id, &len); n++)
			;
	mmio_wr(m, VIRTIO_MMIO_STATUS, 0);
	if (mmio_rd(m, VIRTIO_MMIO_STATUS) != 0)
		abort();
	return 0;
}
