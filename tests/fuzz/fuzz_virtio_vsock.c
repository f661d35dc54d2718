/* libFuzzer: virtio-vsock packets from the guest. The real event loop runs
 * on its own thread with the device listening in a temp dir, where a host
 * server listens on port 1000 (PATH_1000), so guest REQUESTs to it open
 * real connections whose data and credit the input then drives; other
 * ports are refused. The input is a list of tx packets (header fields
 * mostly sane, sometimes anything; chain split and length varied) mixed
 * with rx buffer posts and raw descriptors. After each input the device
 * is reset; nothing may crash, hang or leak, and every host connection
 * must be gone.
 *
 * Input: [0] flags, then records: [0] kind, [1] op, [2] ports, [3] flags,
 * [4..7] buf_alloc, [8..11] fwd_cnt, [12..13] len, [14] layout, [15] cid
 * mangling. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fake_mem.c"	/* test support, compiled in (fuzz builds do not link it) */
#include "guest_vq.c"
#include "evloop.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"
#include "virtio_vsock.h"

#define MEM_GPA		0x200000ull
#define MEM_SIZE	(2ull << 20)
#define QSIZE		64
#define REC		16
#define CID		3
#define HOST_PORT	1000

static struct fake_mem fm;
static struct evloop *loop;
static struct virtio_dev *dev;
static struct virtio_mmio *m;
static struct guest_vq g[3];
static int host_lfd = -1;
static uint8_t zero[70000];

static void noop(void *arg)
{
	(void)arg;
}

static void init(void)
{
	static char dir[] = "/tmp/cove-fuzz-vsock-XXXXXX";
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[64];

	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/v", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%d", path, HOST_PORT);
	host_lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (host_lfd < 0 || bind(host_lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(host_lfd, 512) < 0)
		abort();
	if (fake_mem_init(&fm, MEM_GPA, MEM_SIZE) < 0 || evloop_create(&loop) < 0 ||
	    vsock_open(loop, CID, path, 1000, &dev) < 0 ||
	    virtio_mmio_create(dev, "vsock0", &fm.gm, loop, &m) < 0)
		abort();
	if (evloop_start(loop, NULL, NULL) < 0)
		abort();
}

static void kick_on_loop(void *arg)
{
	uintptr_t q = (uintptr_t)arg;

	virtio_mmio_kick(m, q);
}

static void kick(uint32_t q)
{
	evloop_call(loop, kick_on_loop, (void *)(uintptr_t)q);
	evloop_call(loop, noop, NULL);
}

static uint32_t le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static uint64_t buf_alloc(uint32_t len)
{
	uint64_t a = fake_mem_alloc(&fm, len ? len : 1, 8);

	return a ? a : MEM_GPA;	/* out of room: reuse the start (overlaps are legal) */
}

/* Accepted host ends: read what comes, write a little back, sometimes close. */
static int host_fds[64];
static unsigned nhost;

static void host_side(uint8_t how)
{
	int fd;
	char buf[4096];

	while (nhost < 64 && (fd = accept4(host_lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0)
		host_fds[nhost++] = fd;
	for (unsigned i = 0; i < nhost; i++) {
		while (read(host_fds[i], buf, sizeof(buf)) > 0)
			;
		if (how & 1)
			(void)!send(host_fds[i], "host data", 9, MSG_NOSIGNAL | MSG_DONTWAIT);
		if ((how & 6) == 6 && i == how % (nhost ? nhost : 1)) {
			close(host_fds[i]);
			host_fds[i--] = host_fds[--nhost];
		}
	}
}

static void add_packet(const uint8_t *r)
{
	uint8_t hdr[VSOCK_HDR_BYTES];
	uint16_t op = r[1] & 0x80 ? r[1] : r[1] % 8;
	uint32_t sport = 2000 + (r[2] & 7), dport = r[2] & 0x80 ? HOST_PORT + 1 : HOST_PORT;
	uint64_t src = CID, dst = 2;
	uint16_t type = 1;
	uint32_t len = r[12] | r[13] << 8;
	uint32_t flags = r[3] & 3, bufa = le32(r + 4), fwd = le32(r + 8);
	uint8_t layout = r[14];
	struct gvq_buf rd[4];
	unsigned nrd = 0;

	if (r[15] & 1)
		src = r[15] & 2 ? 0xffffffffffffffffull : CID + 1;
	if (r[15] & 4)
		dst = r[15] >> 3;
	if (r[15] & 0x40)
		type = r[15] >> 7 ? 2 : 0;
	if (!(layout & 0x80))
		len &= 0x3fff;
	if (!(r[3] & 0x80))
		bufa = (bufa & 0x3ffff) + 1;
	memcpy(hdr, &src, 8);
	memcpy(hdr + 8, &dst, 8);
	memcpy(hdr + 16, &sport, 4);
	memcpy(hdr + 20, &dport, 4);
	memcpy(hdr + 24, &len, 4);
	memcpy(hdr + 28, &type, 2);
	memcpy(hdr + 30, &op, 2);
	memcpy(hdr + 32, &flags, 4);
	memcpy(hdr + 36, &bufa, 4);
	memcpy(hdr + 40, &fwd, 4);

	/* header whole, split, or short; then the data in 1-2 buffers, as
	 * long as len says or not */
	uint32_t hlen = layout & 0x40 ? (layout & 0x3f) % (VSOCK_HDR_BYTES + 1) : VSOCK_HDR_BYTES;
	uint32_t data = layout & 0x20 ? (len & 0x3fff) : len;
	if (layout & 0x10)
		data = data ? data - 1 : 0;
	if (layout & 0x08 && hlen > 8) {
		uint64_t a = buf_alloc(8), b = buf_alloc(hlen - 8);
		memcpy(fake_mem_ptr(&fm, a), hdr, 8);
		memcpy(fake_mem_ptr(&fm, b), hdr + 8, hlen - 8);
		rd[nrd++] = (struct gvq_buf){ a, 8 };
		rd[nrd++] = (struct gvq_buf){ b, hlen - 8 };
	} else {
		uint64_t a = buf_alloc(hlen);
		memcpy(fake_mem_ptr(&fm, a), hdr, hlen);
		rd[nrd++] = (struct gvq_buf){ a, hlen };
	}
	if (data > sizeof(zero))
		data = sizeof(zero);
	if (data) {
		uint64_t a = buf_alloc(data);
		if (a != MEM_GPA && fake_mem_ptr(&fm, a + data - 1))
			rd[nrd++] = (struct gvq_buf){ a, data };
	}
	gvq_add(&g[VSOCK_TX_Q], rd, nrd, NULL, 0);
}

static void add_rx(const uint8_t *r)
{
	struct gvq_buf b[2];
	uint32_t l1 = r[1] & 0x80 ? r[1] & 0x7f : VSOCK_HDR_BYTES;
	uint32_t l2 = (r[12] | r[13] << 8) & 0x1fff;
	unsigned n = 0;

	b[n++] = (struct gvq_buf){ buf_alloc(l1), l1 };
	if (l2)
		b[n++] = (struct gvq_buf){ buf_alloc(l2), l2 };
	if (r[2] & 1)
		gvq_add(&g[VSOCK_RX_Q], b, 1, b + 1, n - 1);	/* readable first: unusable */
	else
		gvq_add(&g[VSOCK_RX_Q], NULL, 0, b, n);
}

static void add_raw(const uint8_t *r)
{
	unsigned q = r[1] % 2 ? VSOCK_TX_Q : VSOCK_RX_Q;
	uint16_t i = r[2] % QSIZE;
	uint64_t addr = MEM_GPA + (le32(r + 4) % MEM_SIZE);
	uint32_t len = le32(r + 8) & (r[3] & 1 ? 0xffffffff : 0xffff);

	gvq_set_desc(&g[q], i, addr, len, r[14] & 7, r[15] % (QSIZE + 2));
	if (r[3] & 2)
		gvq_publish(&g[q], r[12] % (QSIZE + 1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned added[3] = { 0 };
	uint32_t id, len;

	if (!loop)
		init();
	if (size < 1)
		return 0;
	memset(fm.buf, 0, MEM_SIZE);
	fm.next = MEM_GPA;
	for (int q = 0; q < 3; q++)
		if (gvq_init(&g[q], &fm, QSIZE) < 0)
			abort();
	uint64_t want = (1ull << VIRTIO_F_VERSION_1) |
			(data[0] & 1 ? 1ull << VIRTIO_F_EVENT_IDX : 0) |
			(data[0] & 2 ? 1ull << VIRTIO_F_INDIRECT_DESC : 0);
	if (!(gvq_mmio_init(m, want, g, 3) & VIRTIO_STATUS_DRIVER_OK))
		abort();

	for (size_t i = 1; i + REC <= size; i += REC) {
		const uint8_t *r = data + i;
		switch (r[0] & 7) {
		case 0: case 1: case 2: case 3:
			if (added[VSOCK_TX_Q]++ < QSIZE)
				add_packet(r);
			break;
		case 4: case 5:
			if (added[VSOCK_RX_Q]++ < QSIZE)
				add_rx(r);
			break;
		case 6:
			add_raw(r);
			break;
		case 7:
			host_side(r[1]);
			break;
		}
		if (r[0] & 0x80) {
			kick(r[0] & 0x40 ? VSOCK_RX_Q : VSOCK_TX_Q);
			while (gvq_get_used(&g[VSOCK_TX_Q], &id, &len))
				;
		}
	}
	kick(VSOCK_TX_Q);
	kick(VSOCK_RX_Q);
	host_side(0);
	/* reset: every connection goes, the host ends see it */
	mmio_wr(m, VIRTIO_MMIO_STATUS, 0);
	if (mmio_rd(m, VIRTIO_MMIO_STATUS) != 0)
		abort();
	evloop_call(loop, noop, NULL);
	for (unsigned i = 0; i < nhost; i++)
		close(host_fds[i]);
	nhost = 0;
	return 0;
}
