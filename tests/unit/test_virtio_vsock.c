/* virtio-vsock end to end without KVM: the real event loop on its own
 * thread, the MMIO transport and the guest-side virtqueue driver play the
 * guest; real unix sockets in a temp dir are the host side. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "bytes.h"
#include "evloop.h"
#include "fake_mem.h"
#include "guest_vq.h"
#include "log.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"
#include "virtio_vsock.h"

#define MEM_GPA		0x80000000ull
#define MEM_SIZE	(8ull << 20)
#define QSIZE		128
#define NRX		64
#define RX_DATA		4096
#define CID		42
#define GPORT		7777	/* the guest's port in guest-initiated tests */

struct pkt {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

struct fixture {
	struct fake_mem fm;
	struct evloop *loop;
	struct virtio_dev *d;
	struct virtio_mmio *m;
	struct guest_vq vq[3];
	char dir[32], path[64];
	uint64_t tx;			/* tx buffer */
	uint64_t rx_hdr[NRX], rx_data[NRX];
	int rx_of_head[QSIZE];		/* rx buffer index by descriptor head */
	uint8_t data[RX_DATA];		/* payload of the last rx packet */
	int listeners[4];
	int nlisteners;
};

static void put_pkt(uint8_t *p, const struct pkt *h)
{
	memcpy(p, &h->src_cid, 8);
	memcpy(p + 8, &h->dst_cid, 8);
	memcpy(p + 16, &h->src_port, 4);
	memcpy(p + 20, &h->dst_port, 4);
	memcpy(p + 24, &h->len, 4);
	memcpy(p + 28, &h->type, 2);
	memcpy(p + 30, &h->op, 2);
	memcpy(p + 32, &h->flags, 4);
	memcpy(p + 36, &h->buf_alloc, 4);
	memcpy(p + 40, &h->fwd_cnt, 4);
}

static void get_pkt(const uint8_t *p, struct pkt *h)
{
	h->src_cid = rd64(p);
	h->dst_cid = rd64(p + 8);
	h->src_port = rd32(p + 16);
	h->dst_port = rd32(p + 20);
	h->len = rd32(p + 24);
	h->type = rd16(p + 28);
	h->op = rd16(p + 30);
	h->flags = rd32(p + 32);
	h->buf_alloc = rd32(p + 36);
	h->fwd_cnt = rd32(p + 40);
}

static void post_rx(struct fixture *f, int i)
{
	struct gvq_buf wr[2] = { { f->rx_hdr[i], VSOCK_HDR_BYTES }, { f->rx_data[i], RX_DATA } };
	uint16_t head = gvq_add(&f->vq[VSOCK_RX_Q], NULL, 0, wr, 2);

	f->rx_of_head[head] = i;
}

static int setup_timeout(void **state, int connect_timeout_ms)
{
	struct fixture *f = calloc(1, sizeof(*f));
	uint32_t s;

	assert_non_null(f);
	assert_int_equal(fake_mem_init(&f->fm, MEM_GPA, MEM_SIZE), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/cove-vsock-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/v.sock", f->dir);
	assert_int_equal(evloop_create(&f->loop), 0);
	assert_int_equal(vsock_open(f->loop, CID, f->path, connect_timeout_ms, &f->d), 0);
	assert_int_equal(virtio_mmio_create(f->d, "vsock0", &f->fm.gm, f->loop, &f->m), 0);
	for (int q = 0; q < 3; q++)
		assert_int_equal(gvq_init(&f->vq[q], &f->fm, QSIZE), 0);
	f->tx = fake_mem_alloc(&f->fm, VSOCK_HDR_BYTES + (256 << 10), 4096);
	for (int i = 0; i < NRX; i++) {
		f->rx_hdr[i] = fake_mem_alloc(&f->fm, VSOCK_HDR_BYTES, 8);
		f->rx_data[i] = fake_mem_alloc(&f->fm, RX_DATA, 8);
	}
	assert_int_equal(evloop_start(f->loop, NULL, NULL), 0);
	s = gvq_mmio_init(f->m, 1ull << VIRTIO_F_VERSION_1, f->vq, 3);
	assert_true(s & VIRTIO_STATUS_DRIVER_OK);
	for (int i = 0; i < NRX; i++)
		post_rx(f, i);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_RX_Q);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_timeout(state, 10000);
}

static int setup_short_timeout(void **state)
{
	return setup_timeout(state, 200);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	evloop_join(f->loop);
	virtio_mmio_destroy(f->m);
	evloop_destroy(f->loop);
	for (int i = 0; i < f->nlisteners; i++)
		close(f->listeners[i]);
	/* the device unlinked its socket */
	assert_int_equal(access(f->path, F_OK), -1);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	fake_mem_free(&f->fm);
	free(f);
	return 0;
}

/* ---- guest side ---- */

static struct pkt mk(uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	return (struct pkt){
		.src_cid = CID, .dst_cid = 2, .src_port = src_port, .dst_port = dst_port,
		.type = VIRTIO_VSOCK_TYPE_STREAM, .op = op, .buf_alloc = 1 << 20,
	};
}

/* Send one packet (header + len data bytes, read_len bytes offered in the
 * chain) and wait for the device to take it. */
static void tx_raw(struct fixture *f, const struct pkt *h, const void *data, uint32_t len,
		   uint32_t read_len)
{
	uint8_t *p = fake_mem_ptr(&f->fm, f->tx);
	struct gvq_buf rd = { f->tx, read_len };
	uint32_t id, used;
	uint16_t head;

	put_pkt(p, h);
	if (len)
		memcpy(p + VSOCK_HDR_BYTES, data, len);
	head = gvq_add(&f->vq[VSOCK_TX_Q], &rd, 1, NULL, 0);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_TX_Q);
	assert_true(gvq_wait_used(&f->vq[VSOCK_TX_Q], &id, &used, 5000));
	assert_int_equal(id, head);
}

static void tx(struct fixture *f, struct pkt h, const void *data, uint32_t len)
{
	h.len = len;
	tx_raw(f, &h, data, len, VSOCK_HDR_BYTES + len);
}

/* The next packet to the guest (payload in f->data), its buffer posted
 * again; false when none came within timeout_ms. */
static bool rx_wait(struct fixture *f, struct pkt *h, int timeout_ms)
{
	uint32_t id, len;
	int i;

	if (!gvq_wait_used(&f->vq[VSOCK_RX_Q], &id, &len, timeout_ms))
		return false;
	i = f->rx_of_head[id];
	get_pkt(fake_mem_ptr(&f->fm, f->rx_hdr[i]), h);
	assert_true(h->len <= RX_DATA);
	assert_int_equal(len, VSOCK_HDR_BYTES + h->len);
	memcpy(f->data, fake_mem_ptr(&f->fm, f->rx_data[i]), h->len);
	assert_int_equal(h->src_cid, 2);
	assert_int_equal(h->dst_cid, CID);
	assert_int_equal(h->type, VIRTIO_VSOCK_TYPE_STREAM);
	assert_int_equal(h->buf_alloc, VSOCK_BUF_ALLOC);
	post_rx(f, i);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_RX_Q);
	return true;
}

static struct pkt rx(struct fixture *f)
{
	struct pkt h;

	assert_true(rx_wait(f, &h, 5000));
	return h;
}

static void expect_rx(struct fixture *f, uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	struct pkt h = rx(f);

	assert_int_equal(h.op, op);
	assert_int_equal(h.src_port, src_port);
	assert_int_equal(h.dst_port, dst_port);
}

/* ---- host side ---- */

static int host_listen(struct fixture *f, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", f->path, port);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 64), 0);
	f->listeners[f->nlisteners++] = fd;
	return fd;
}

static int host_connect(struct fixture *f)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static bool wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = ev };

	return poll(&p, 1, timeout_ms) == 1;
}

/* Read exactly len bytes (5 s at most). */
static void host_read(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;
		assert_true(wait_fd(fd, POLLIN, 5000));
		n = read(fd, (uint8_t *)buf + got, len - got);
		assert_true(n > 0);
		got += n;
	}
}

static void host_expect_eof(int fd)
{
	char c;

	assert_true(wait_fd(fd, POLLIN, 5000));
	assert_int_equal(read(fd, &c, 1), 0);
}

/* Closed by the device, maybe with our bytes unread (then a reset). */
static void host_expect_closed(int fd)
{
	char c;
	ssize_t n;

	assert_true(wait_fd(fd, POLLIN, 5000));
	n = read(fd, &c, 1);
	assert_true(n == 0 || (n < 0 && errno == ECONNRESET));
}

/* A guest-initiated connection to host port `port`, accepted. */
static int guest_open(struct fixture *f, int lfd, uint32_t port, uint32_t gport)
{
	int fd;

	tx(f, mk(VIRTIO_VSOCK_OP_REQUEST, gport, port), NULL, 0);
	expect_rx(f, VIRTIO_VSOCK_OP_RESPONSE, port, gport);
	fd = accept(lfd, NULL, NULL);
	assert_true(fd >= 0);
	return fd;
}

static uint64_t guest_errors(struct fixture *f)
{
	return __atomic_load_n(&f->d->stats.guest_errors, __ATOMIC_RELAXED);
}

/* ---- tests ---- */

static void test_config_cid(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_DEVICE_ID), 19);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_CONFIG), CID);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_CONFIG + 4), 0);
}

static void test_guest_connect_refused(void **state)
{
	struct fixture *f = *state;

	tx(f, mk(VIRTIO_VSOCK_OP_REQUEST, GPORT, 1234), NULL, 0);
	expect_rx(f, VIRTIO_VSOCK_OP_RST, 1234, GPORT);
	assert_int_equal(guest_errors(f), 0);
}

static void test_guest_connect_data_shutdown(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5000);
	int fd = guest_open(f, lfd, 5000, GPORT);
	char buf[16];
	struct pkt h;

	tx(f, mk(VIRTIO_VSOCK_OP_RW, GPORT, 5000), "hello", 5);
	host_read(fd, buf, 5);
	assert_memory_equal(buf, "hello", 5);

	assert_int_equal(write(fd, "world!", 6), 6);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.src_port, 5000);
	assert_int_equal(h.dst_port, GPORT);
	assert_int_equal(h.len, 6);
	assert_memory_equal(f->data, "world!", 6);

	/* half-close from the guest: the host sees EOF and can still answer */
	tx(f, (struct pkt){ .src_cid = CID, .dst_cid = 2, .src_port = GPORT, .dst_port = 5000,
			    .type = 1, .op = VIRTIO_VSOCK_OP_SHUTDOWN,
			    .flags = VIRTIO_VSOCK_SHUTDOWN_SEND, .buf_alloc = 1 << 20 }, NULL, 0);
	host_expect_eof(fd);
	assert_int_equal(write(fd, "late", 4), 4);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_memory_equal(f->data, "late", 4);

	/* the host closes: SHUTDOWN(SEND), then RST ends it */
	close(fd);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_SHUTDOWN);
	assert_int_equal(h.flags, VIRTIO_VSOCK_SHUTDOWN_SEND);
	expect_rx(f, VIRTIO_VSOCK_OP_RST, 5000, GPORT);

	/* gone: data for it gets a RST */
	tx(f, mk(VIRTIO_VSOCK_OP_RW, GPORT, 5000), "x", 1);
	expect_rx(f, VIRTIO_VSOCK_OP_RST, 5000, GPORT);
}

static void test_guest_close(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5001);
	int fd = guest_open(f, lfd, 5001, GPORT);
	struct pkt s = mk(VIRTIO_VSOCK_OP_SHUTDOWN, GPORT, 5001);

	s.flags = VIRTIO_VSOCK_SHUTDOWN_SEND | VIRTIO_VSOCK_SHUTDOWN_RCV;
	tx(f, mk(VIRTIO_VSOCK_OP_RW, GPORT, 5001), "bye", 3);
	tx(f, s, NULL, 0);
	expect_rx(f, VIRTIO_VSOCK_OP_RST, 5001, GPORT);
	char buf[3];
	host_read(fd, buf, 3);
	assert_memory_equal(buf, "bye", 3);
	host_expect_eof(fd);
	close(fd);
}

static void test_guest_rst(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5002);
	int fd = guest_open(f, lfd, 5002, GPORT);

	tx(f, mk(VIRTIO_VSOCK_OP_RST, GPORT, 5002), NULL, 0);
	host_expect_eof(fd);
	close(fd);
	/* an RST for nothing is not answered; the next RST is the sentinel's */
	tx(f, mk(VIRTIO_VSOCK_OP_RST, GPORT, 5002), NULL, 0);
	tx(f, mk(VIRTIO_VSOCK_OP_REQUEST, GPORT, 1), NULL, 0);
	expect_rx(f, VIRTIO_VSOCK_OP_RST, 1, GPORT);
}

static void test_many_connections(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5003);
	enum { N = 40 };
	int fds[N];
	char buf[8];

	for (int i = 0; i < N; i++)
		fds[i] = guest_open(f, lfd, 5003, 10000 + i);
	for (int i = N - 1; i >= 0; i--) {
		snprintf(buf, sizeof(buf), "c%05d", i);
		tx(f, mk(VIRTIO_VSOCK_OP_RW, 10000 + i, 5003), buf, 6);
	}
	for (int i = 0; i < N; i++) {
		char got[6], want[8];
		host_read(fds[i], got, 6);
		snprintf(want, sizeof(want), "c%05d", i);
		assert_memory_equal(got, want, 6);
		assert_int_equal(write(fds[i], want, 6), 6);
	}
	for (int i = 0; i < N; i++) {
		struct pkt h = rx(f);
		char want[8];
		assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
		assert_int_equal(h.len, 6);
		snprintf(want, sizeof(want), "c%05d", h.dst_port - 10000);
		assert_memory_equal(f->data, want, 6);
	}
	for (int i = 0; i < N; i++)
		close(fds[i]);
}

static void test_host_connect(void **state)
{
	struct fixture *f = *state;
	int fd = host_connect(f);
	char line[32], buf[16];
	struct pkt h;
	uint32_t hp;

	/* the line and the first data in one write */
	assert_int_equal(write(fd, "CONNECT 6000\nearly", 18), 18);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 6000);
	assert_true(h.src_port >= 1u << 30);
	hp = h.src_port;
	tx(f, mk(VIRTIO_VSOCK_OP_RESPONSE, 6000, hp), NULL, 0);
	int n = snprintf(line, sizeof(line), "OK %u\n", hp);
	host_read(fd, buf, n);
	assert_memory_equal(buf, line, n);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
	assert_int_equal(h.len, 5);
	assert_memory_equal(f->data, "early", 5);

	tx(f, mk(VIRTIO_VSOCK_OP_RW, 6000, hp), "pong", 4);
	host_read(fd, buf, 4);
	assert_memory_equal(buf, "pong", 4);

	/* a second client gets another host port */
	int fd2 = host_connect(f);
	assert_int_equal(write(fd2, "CONNECT 6000\n", 13), 13);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_not_equal(h.src_port, hp);
	close(fd2);

	/* the guest closes the first */
	struct pkt s = mk(VIRTIO_VSOCK_OP_SHUTDOWN, 6000, hp);
	s.flags = 3;
	tx(f, s, NULL, 0);
	expect_rx(f, VIRTIO_VSOCK_OP_RST, hp, 6000);
	host_expect_eof(fd);
	close(fd);
}

static void test_host_connect_refused(void **state)
{
	struct fixture *f = *state;
	int fd = host_connect(f);
	struct pkt h;

	assert_int_equal(write(fd, "CONNECT 6001\n", 13), 13);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	tx(f, mk(VIRTIO_VSOCK_OP_RST, 6001, h.src_port), NULL, 0);
	host_expect_eof(fd);
	close(fd);
}

static void test_bad_connect_lines(void **state)
{
	static const char *const lines[] = {
		"CONNECT abc\n", "CONNECT 4294967295\n", "CONNECT 99999999999\n",
		"CONNECT \n", "CONNECT -1\n", "connect 5\n", "CONNECT 5 \n",
		"CONNECT 12345678901234567890123456789012345\n", "\n",
		"CONNECT 5",		/* then EOF */
	};
	struct fixture *f = *state;
	struct pkt h;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int fd = host_connect(f);
		ssize_t n = write(fd, lines[i], strlen(lines[i]));
		assert_int_equal(n, (ssize_t)strlen(lines[i]));
		if (!strchr(lines[i], '\n'))
			shutdown(fd, SHUT_WR);
		host_expect_closed(fd);
		close(fd);
	}
	/* nothing reached the guest */
	assert_false(rx_wait(f, &h, 100));
}

static void test_connect_line_timeout(void **state)
{
	struct fixture *f = *state;
	int fd = host_connect(f);
	struct pkt h;

	assert_int_equal(write(fd, "CONN", 4), 4);
	host_expect_closed(fd);	/* 200 ms in this fixture */
	close(fd);
	/* the listener still works */
	fd = host_connect(f);
	assert_int_equal(write(fd, "CONNECT 7\n", 10), 10);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_REQUEST);
	assert_int_equal(h.dst_port, 7);
	close(fd);
}

static void test_credit_to_guest(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5004);
	struct pkt r = mk(VIRTIO_VSOCK_OP_REQUEST, GPORT, 5004);
	static char big[10000];
	uint32_t got = 0;
	struct pkt h;
	int fd;

	r.buf_alloc = 3000;
	tx(f, r, NULL, 0);
	expect_rx(f, VIRTIO_VSOCK_OP_RESPONSE, 5004, GPORT);
	fd = accept(lfd, NULL, NULL);
	memset(big, 'z', sizeof(big));
	assert_int_equal(write(fd, big, sizeof(big)), sizeof(big));
	while (got < 3000) {
		h = rx(f);
		assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
		got += h.len;
	}
	assert_int_equal(got, 3000);
	assert_false(rx_wait(f, &h, 200));	/* no credit left */
	/* the guest read 2000 of them */
	struct pkt cu = mk(VIRTIO_VSOCK_OP_CREDIT_UPDATE, GPORT, 5004);
	cu.buf_alloc = 3000;
	cu.fwd_cnt = 2000;
	tx(f, cu, NULL, 0);
	while (got < 5000) {
		h = rx(f);
		assert_int_equal(h.op, VIRTIO_VSOCK_OP_RW);
		got += h.len;
	}
	assert_int_equal(got, 5000);
	assert_false(rx_wait(f, &h, 200));
	/* a credit request is answered */
	cu.op = VIRTIO_VSOCK_OP_CREDIT_REQUEST;
	tx(f, cu, NULL, 0);
	h = rx(f);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(h.fwd_cnt, 0);
	close(fd);
}

/* The guest fills our buffer while the host does not read: the device
 * keeps what it advertised, no more, and gives credit back as the host
 * reads. */
static void test_credit_from_guest(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5005);
	int fd = guest_open(f, lfd, 5005, GPORT);
	static uint8_t chunk[32768], back[32768];
	uint32_t sent = 0, fwd = 0;
	int sz = 4096;
	struct pkt h;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	for (;;) {
		uint32_t credit;
		tx(f, mk(VIRTIO_VSOCK_OP_CREDIT_REQUEST, GPORT, 5005), NULL, 0);
		do
			h = rx(f);
		while (h.op != VIRTIO_VSOCK_OP_CREDIT_UPDATE);
		fwd = h.fwd_cnt;
		credit = VSOCK_BUF_ALLOC - (sent - fwd);
		if (!credit)
			break;
		uint32_t n = credit < sizeof(chunk) ? credit : sizeof(chunk);
		for (uint32_t i = 0; i < n; i++)
			chunk[i] = (uint8_t)((sent + i) * 7 + ((sent + i) >> 12));
		tx(f, mk(VIRTIO_VSOCK_OP_RW, GPORT, 5005), chunk, n);
		sent += n;
	}
	assert_true(sent >= VSOCK_BUF_ALLOC);
	/* the host reads it all, in order; credit comes back */
	for (uint32_t got = 0; got < sent;) {
		uint32_t n = sent - got < sizeof(back) ? sent - got : sizeof(back);
		host_read(fd, back, n);
		for (uint32_t i = 0; i < n; i++)
			assert_int_equal(back[i], (uint8_t)((got + i) * 7 + ((got + i) >> 12)));
		got += n;
	}
	do
		h = rx(f);
	while (h.fwd_cnt != sent);
	assert_int_equal(h.op, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	assert_int_equal(guest_errors(f), 0);
	close(fd);
}

static void test_credit_violation(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5006);
	int fd = guest_open(f, lfd, 5006, GPORT);
	static uint8_t chunk[32768];
	int sz = 4096;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	/* far more than was offered, without waiting for credit */
	for (uint32_t sent = 0; sent < 16 * VSOCK_BUF_ALLOC; sent += sizeof(chunk)) {
		tx(f, mk(VIRTIO_VSOCK_OP_RW, GPORT, 5006), chunk, sizeof(chunk));
		struct pkt h;
		if (rx_wait(f, &h, 0) && h.op == VIRTIO_VSOCK_OP_RST)
			break;
	}
	assert_true(guest_errors(f) >= 1);
	/* the host socket is closed after what was forwarded */
	for (;;) {
		char buf[4096];
		ssize_t n;
		assert_true(wait_fd(fd, POLLIN, 5000));
		n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
	}
	close(fd);
}

static void test_malformed_packets(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5007);
	int fd = guest_open(f, lfd, 5007, GPORT);
	struct pkt p;
	uint64_t before = guest_errors(f);

	/* header cut short */
	p = mk(VIRTIO_VSOCK_OP_REQUEST, GPORT, 1);
	tx_raw(f, &p, NULL, 0, VSOCK_HDR_BYTES - 1);
	/* len beyond the chain */
	p = mk(VIRTIO_VSOCK_OP_RW, GPORT, 5007);
	p.len = 100;
	tx_raw(f, &p, "abc", 3, VSOCK_HDR_BYTES + 3);
	p.len = 0xffffffff;
	tx_raw(f, &p, NULL, 0, VSOCK_HDR_BYTES);
	/* wrong cids */
	p = mk(VIRTIO_VSOCK_OP_RW, GPORT, 5007);
	p.src_cid = CID + 1;
	tx(f, p, "bad", 3);
	p.src_cid = (uint64_t)CID << 32 | CID;
	tx(f, p, "bad", 3);
	p = mk(VIRTIO_VSOCK_OP_RW, GPORT, 5007);
	p.dst_cid = 3;
	tx(f, p, "bad", 3);
	/* type, op */
	p = mk(VIRTIO_VSOCK_OP_RW, GPORT, 5007);
	p.type = 2;
	tx(f, p, "bad", 3);
	p = mk(0, GPORT, 5007);
	tx(f, p, NULL, 0);
	p = mk(99, GPORT, 5007);
	tx(f, p, NULL, 0);
	/* payload on a control packet */
	p = mk(VIRTIO_VSOCK_OP_CREDIT_UPDATE, GPORT, 5007);
	tx(f, p, "bad", 3);
	/* a chain with only a writable buffer */
	{
		struct gvq_buf wr = { f->tx, 64 };
		uint32_t id, len;
		gvq_add(&f->vq[VSOCK_TX_Q], NULL, 0, &wr, 1);
		mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_TX_Q);
		assert_true(gvq_wait_used(&f->vq[VSOCK_TX_Q], &id, &len, 5000));
	}
	assert_int_equal(guest_errors(f) - before, 11);

	/* the connection is untouched and no packet went to the guest */
	tx(f, mk(VIRTIO_VSOCK_OP_RW, GPORT, 5007), "good", 4);
	char buf[4];
	host_read(fd, buf, 4);
	assert_memory_equal(buf, "good", 4);
	tx(f, mk(VIRTIO_VSOCK_OP_REQUEST, GPORT, 2), NULL, 0);
	expect_rx(f, VIRTIO_VSOCK_OP_RST, 2, GPORT);
	close(fd);
}

static void test_reset_drops_connections(void **state)
{
	struct fixture *f = *state;
	int lfd = host_listen(f, 5008);
	int g = guest_open(f, lfd, 5008, GPORT);
	int h = host_connect(f);
	struct pkt p;

	assert_int_equal(write(h, "CONNECT 9\n", 10), 10);
	p = rx(f);
	assert_int_equal(p.op, VIRTIO_VSOCK_OP_REQUEST);
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_STATUS), 0);
	host_expect_eof(g);
	host_expect_eof(h);
	close(g);
	close(h);
	/* the driver comes back; the device works again */
	for (int q = 0; q < 3; q++)
		assert_int_equal(gvq_init(&f->vq[q], &f->fm, QSIZE), 0);
	assert_true(gvq_mmio_init(f->m, 1ull << VIRTIO_F_VERSION_1, f->vq, 3) &
		    VIRTIO_STATUS_DRIVER_OK);
	for (int i = 0; i < NRX; i++)
		post_rx(f, i);
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_RX_Q);
	g = guest_open(f, lfd, 5008, GPORT);
	close(g);
}

static void test_open_errors(void **state)
{
	struct virtio_dev *d;
	struct evloop *loop;
	char dir[32], path[64];
	int fd;

	(void)state;
	assert_int_equal(evloop_create(&loop), 0);
	snprintf(dir, sizeof(dir), "/tmp/cove-vsock-XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(vsock_open(loop, 2, "/tmp/x", 1000, &d), -EINVAL);
	assert_int_equal(vsock_open(loop, 0xffffffffu, "/tmp/x", 1000, &d), -EINVAL);
	/* a file in the way */
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(vsock_open(loop, 3, path, 1000, &d), -EEXIST);
	assert_non_null(strstr(cove_last_error(), "vsock socket"));
	unlink(path);
	/* a live socket is refused, a stale one replaced */
	snprintf(path, sizeof(path), "%s/live", dir);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int l = socket(AF_UNIX, SOCK_STREAM, 0);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
		assert_int_equal(listen(l, 1), 0);
		assert_int_equal(vsock_open(loop, 3, path, 1000, &d), -EADDRINUSE);
		close(l);	/* now stale */
	}
	assert_int_equal(vsock_open(loop, 3, path, 1000, &d), 0);
	d->ops->destroy(d);
	assert_int_equal(access(path, F_OK), -1);
	rmdir(dir);
	evloop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config_cid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_connect_data_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_close, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_rst, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_connections, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_connect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_connect_lines, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_line_timeout, setup_short_timeout,
						teardown),
		cmocka_unit_test_setup_teardown(test_credit_to_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_from_guest, setup, teardown),
		cmocka_unit_test_setup_teardown(test_credit_violation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed_packets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reset_drops_connections, setup, teardown),
		cmocka_unit_test(test_open_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
