#include "virtio_vsock.h"

#include <endian.h>
#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "evloop.h"
#include "iov.h"
#include "log.h"
#include "usock.h"
#include "virtio_dev.h"
#include "vm.h"

#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - offsetof(type, member)))

#define VSOCK_CONFIG_SIZE	8	/* le64 guest_cid */
#define VSOCK_HASH_SIZE		256
#define VSOCK_MAX_PKT		(64u << 10)	/* data bytes per packet to the guest */
#define VSOCK_RST_MAX		(VSOCK_MAX_CONNS + 64)
#define VSOCK_LINE_MAX		32	/* "CONNECT 4294967294\n" is 19 */
#define VSOCK_BACKLOG		128
#define VSOCK_PORT_FIRST	(1u << 30)	/* host ports we assign to host clients */
#define VSOCK_PORT_LAST		0xfffffffeu
#define VSOCK_MAX_OP		VIRTIO_VSOCK_OP_CREDIT_REQUEST

/* Control packets a connection owes the guest */
#define OWE_REQUEST	1u
#define OWE_RESPONSE	2u
#define OWE_CREDIT	4u

enum conn_state {
	CONN_LINE,		/* host client: waiting for its CONNECT line */
	CONN_REQUESTING,	/* host client: REQUEST sent, waiting for the guest */
	CONN_OPEN,		/* established */
};

struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

struct vsock_conn {
	struct vsock *vs;
	struct vsock_conn *hnext;		/* hash chain */
	struct vsock_conn *prev, *next;		/* every connection, dead ones too */
	struct vsock_conn *qprev, *qnext;	/* owes the guest packets */
	bool queued, hashed, dead;
	enum conn_state state;
	int fd;
	uint32_t local_port, peer_port;		/* host side, guest side */
	unsigned owe;				/* OWE_* */

	struct evloop_handler poll_h, timer_h;
	struct __kernel_timespec ts;
	int inflight;				/* poll and timer submissions */
	bool poll_armed, poll_removing, timer_armed;
	uint32_t poll_events;

	bool readable;		/* the host socket may have data (or EOF) */
	bool hup;		/* POLLHUP seen: no more polls */
	bool host_eof;		/* host sent everything: SHUTDOWN(SEND) given */
	bool guest_no_send, guest_no_rcv;	/* the guest's SHUTDOWN flags */
	bool host_wr_shut;	/* shutdown(SHUT_WR) on the host socket */

	/* host -> guest: the guest's receive credit */
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	/* guest -> host */
	uint32_t fwd_cnt, fwd_cnt_told;
	uint8_t *ring;		/* VSOCK_BUF_ALLOC bytes, allocated when first needed */
	uint32_t ring_head, ring_tail;	/* free-running; data in [tail, head) */
	char ok[24];		/* "OK PORT\n" for a host client, before any data */
	uint8_t ok_len, ok_off;

	uint8_t line_len;
	char line[VSOCK_LINE_MAX];
};

struct vsock_rst {
	uint32_t local, peer;
};

struct vsock {
	struct virtio_dev dev;		/* first */
	uint32_t cid;
	char *uds;
	int listen_fd;
	struct usock_id id;
	struct evloop_watch listen;
	int connect_timeout_ms;
	uint8_t config[VSOCK_CONFIG_SIZE];

	struct vsock_conn *hash[VSOCK_HASH_SIZE];
	struct vsock_conn all;		/* list head */
	struct vsock_conn *qhead, *qtail;	/* connections owing packets */
	unsigned nconns;		/* live ones */
	uint32_t next_port;

	struct vsock_rst rsts[VSOCK_RST_MAX];	/* RSTs owed for no connection */
	unsigned rst_first, rst_n;

	bool rx_held;			/* rx_elem popped, not yet used */
	struct virtq_elem rx_elem, tx_elem;
	struct iovec scratch[VIRTQ_MAX_SEGS];
};

static struct vsock *to_vs(struct virtio_dev *d)
{
	return (struct vsock *)d;
}

/* A malformed guest packet: dropped, counted, logged (rate limited). */
#define bad_packet(vs, fmt, ...) \
	virtio_dev_guest_error(&(vs)->dev, "dropped a packet: " fmt, ##__VA_ARGS__)

static bool vs_live(struct vsock *vs)
{
	struct virtio_dev *d = &vs->dev;

	return d->active && d->vqs[VSOCK_RX_Q].started &&
	       !(__atomic_load_n(&d->status, __ATOMIC_ACQUIRE) & VIRTIO_STATUS_NEEDS_RESET);
}

/* ---- header ---- */

static void hdr_get(const uint8_t *p, struct vsock_hdr *h)
{
	memcpy(&h->src_cid, p, 8);
	memcpy(&h->dst_cid, p + 8, 8);
	memcpy(&h->src_port, p + 16, 4);
	memcpy(&h->dst_port, p + 20, 4);
	memcpy(&h->len, p + 24, 4);
	memcpy(&h->type, p + 28, 2);
	memcpy(&h->op, p + 30, 2);
	memcpy(&h->flags, p + 32, 4);
	memcpy(&h->buf_alloc, p + 36, 4);
	memcpy(&h->fwd_cnt, p + 40, 4);
	h->src_cid = le64toh(h->src_cid);
	h->dst_cid = le64toh(h->dst_cid);
	h->src_port = le32toh(h->src_port);
	h->dst_port = le32toh(h->dst_port);
	h->len = le32toh(h->len);
	h->type = le16toh(h->type);
	h->op = le16toh(h->op);
	h->flags = le32toh(h->flags);
	h->buf_alloc = le32toh(h->buf_alloc);
	h->fwd_cnt = le32toh(h->fwd_cnt);
}

static void hdr_put(uint8_t *p, const struct vsock_hdr *h)
{
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;

	v64 = htole64(h->src_cid);
	memcpy(p, &v64, 8);
	v64 = htole64(h->dst_cid);
	memcpy(p + 8, &v64, 8);
	v32 = htole32(h->src_port);
	memcpy(p + 16, &v32, 4);
	v32 = htole32(h->dst_port);
	memcpy(p + 20, &v32, 4);
	v32 = htole32(h->len);
	memcpy(p + 24, &v32, 4);
	v16 = htole16(h->type);
	memcpy(p + 28, &v16, 2);
	v16 = htole16(h->op);
	memcpy(p + 30, &v16, 2);
	v32 = htole32(h->flags);
	memcpy(p + 32, &v32, 4);
	v32 = htole32(h->buf_alloc);
	memcpy(p + 36, &v32, 4);
	v32 = htole32(h->fwd_cnt);
	memcpy(p + 40, &v32, 4);
}

/* ---- connection table ---- */

static unsigned hash_of(uint32_t local, uint32_t peer)
{
	uint32_t h = local * 0x9e3779b1u ^ peer * 0x85ebca6bu;

	return (h ^ h >> 16) % VSOCK_HASH_SIZE;
}

static struct vsock_conn *conn_find(struct vsock *vs, uint32_t local, uint32_t peer)
{
	for (struct vsock_conn *c = vs->hash[hash_of(local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

static void conn_hash_add(struct vsock_conn *c)
{
	struct vsock_conn **b = &c->vs->hash[hash_of(c->local_port, c->peer_port)];

	c->hnext = *b;
	*b = c;
	c->hashed = true;
}

static void conn_hash_del(struct vsock_conn *c)
{
	struct vsock_conn **pp = &c->vs->hash[hash_of(c->local_port, c->peer_port)];

	for (; *pp; pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	c->hashed = false;
}

/* Put c at the tail of the connections that owe the guest packets. */
static void conn_queue(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;

	if (c->queued)
		return;
	c->queued = true;
	c->qnext = NULL;
	c->qprev = vs->qtail;
	if (vs->qtail)
		vs->qtail->qnext = c;
	else
		vs->qhead = c;
	vs->qtail = c;
}

static void conn_unqueue(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;

	if (!c->queued)
		return;
	if (c->qprev)
		c->qprev->qnext = c->qnext;
	else
		vs->qhead = c->qnext;
	if (c->qnext)
		c->qnext->qprev = c->qprev;
	else
		vs->qtail = c->qprev;
	c->queued = false;
	c->qprev = c->qnext = NULL;
}

static void conn_poll_done(struct evloop_handler *h, int res, uint32_t flags);
static void conn_timer_done(struct evloop_handler *h, int res, uint32_t flags);

static struct vsock_conn *conn_new(struct vsock *vs, int fd, enum conn_state state)
{
	struct vsock_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->vs = vs;
	c->fd = fd;
	c->state = state;
	c->poll_h.cb = conn_poll_done;
	c->timer_h.cb = conn_timer_done;
	c->next = vs->all.next;
	c->prev = &vs->all;
	vs->all.next->prev = c;
	vs->all.next = c;
	vs->nconns++;
	return c;
}

static void conn_free(struct vsock_conn *c)
{
	c->prev->next = c->next;
	c->next->prev = c->prev;
	if (c->fd >= 0)
		close(c->fd);
	free(c->ring);
	free(c);
}

static void rst_push(struct vsock *vs, uint32_t local, uint32_t peer)
{
	if (vs->rst_n == VSOCK_RST_MAX) {
		log_ratelimited(&vs->dev.log_budget, vs->dev.name, "too many resets queued; one dropped");
		return;
	}
	vs->rsts[(vs->rst_first + vs->rst_n++) % VSOCK_RST_MAX] = (struct vsock_rst){ local, peer };
}

/* Forget c: out of the table and queue, host socket closed; with rst the
 * guest gets a RST for it. c is freed once its submissions complete: the
 * caller must not touch it afterwards. Loop thread. */
static void conn_kill(struct vsock_conn *c, bool rst)
{
	struct vsock *vs = c->vs;

	if (c->dead)
		return;
	c->dead = true;
	vs->nconns--;
	if (c->hashed) {
		if (rst)
			rst_push(vs, c->local_port, c->peer_port);
		conn_hash_del(c);
	}
	conn_unqueue(c);
	close(c->fd);
	c->fd = -1;
	if (c->poll_armed && !c->poll_removing)
		io_uring_prep_poll_remove(evloop_sqe(vs->dev.loop, NULL),
					  (__u64)(uintptr_t)&c->poll_h);
	if (c->timer_armed)
		io_uring_prep_timeout_remove(evloop_sqe(vs->dev.loop, NULL),
					     (__u64)(uintptr_t)&c->timer_h, 0);
	if (!c->inflight)
		conn_free(c);
}

/* ---- credit ---- */

/* Bytes the guest can still take on c. */
static uint32_t peer_free(const struct vsock_conn *c)
{
	uint32_t used = c->tx_cnt - c->peer_fwd_cnt;

	return used >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - used;
}

static bool can_read(const struct vsock_conn *c)
{
	return c->state == CONN_OPEN && !c->host_eof && !c->guest_no_rcv && peer_free(c) > 0;
}

static uint32_t ring_used(const struct vsock_conn *c)
{
	return c->ring_head - c->ring_tail;
}

/* Forwarded enough since the guest last heard: tell it (a quarter of the
 * buffer keeps a sender that waits for credit moving). */
static void credit_check(struct vsock_conn *c)
{
	if (c->fwd_cnt - c->fwd_cnt_told >= VSOCK_BUF_ALLOC / 4) {
		c->owe |= OWE_CREDIT;
		conn_queue(c);
	}
}

/* ---- host socket ---- */

static void conn_update_poll(struct vsock_conn *c)
{
	uint32_t want = 0;

	if (c->dead || c->hup)
		return;
	if (c->state == CONN_LINE) {
		want = POLLIN;
	} else if (c->state == CONN_OPEN) {
		if (!c->readable && can_read(c))
			want |= POLLIN;
		if (c->ok_off < c->ok_len || ring_used(c))
			want |= POLLOUT;
	}
	if (c->poll_armed) {
		/* Ask for what the armed poll lacks by cancelling it: its
		 * completion re-arms with the new mask. */
		if ((want & ~c->poll_events) && !c->poll_removing) {
			io_uring_prep_poll_remove(evloop_sqe(c->vs->dev.loop, NULL),
						  (__u64)(uintptr_t)&c->poll_h);
			c->poll_removing = true;
		}
		return;
	}
	if (!want)
		return;
	io_uring_prep_poll_add(evloop_sqe(c->vs->dev.loop, &c->poll_h), c->fd, want);
	c->poll_events = want;
	c->poll_armed = true;
	c->inflight++;
}

/* Both directions done and nothing left for the host: RST ends it (the
 * guest waits for one after its own SHUTDOWN). True when c was killed. */
static bool conn_check_done(struct vsock_conn *c)
{
	if (c->state != CONN_OPEN || ring_used(c) || c->ok_off < c->ok_len)
		return false;
	if (c->guest_no_send && !c->host_wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->host_wr_shut = true;
	}
	if (c->guest_no_send && (c->guest_no_rcv || c->host_eof)) {
		conn_kill(c, true);
		return true;
	}
	return false;
}

/* Write the OK line and then buffered guest data to the host socket.
 * 0 when all is written or it would block; -errno when the socket failed. */
static int conn_flush(struct vsock_conn *c)
{
	while (c->ok_off < c->ok_len) {
		ssize_t n = send(c->fd, c->ok + c->ok_off, c->ok_len - c->ok_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		c->ok_off += n;
	}
	while (ring_used(c)) {
		uint32_t off = c->ring_tail % VSOCK_BUF_ALLOC;
		uint32_t len = ring_used(c);
		struct iovec iov[2] = { { c->ring + off, len } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 1 };
		ssize_t n;

		if (off + len > VSOCK_BUF_ALLOC) {
			iov[0].iov_len = VSOCK_BUF_ALLOC - off;
			iov[1] = (struct iovec){ c->ring, len - iov[0].iov_len };
			mh.msg_iovlen = 2;
		}
		n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		c->ring_tail += n;
		c->fwd_cnt += n;
	}
	return 0;
}

/* Flush c and carry on from there (credit, half-close, teardown). True
 * when c was killed. */
static bool conn_flush_and_check(struct vsock_conn *c)
{
	if (conn_flush(c) < 0) {
		conn_kill(c, true);
		return true;
	}
	credit_check(c);
	return conn_check_done(c);
}

/* "CONNECT P" with 0 <= P < 0xffffffff, decimal, no sign or spaces. */
static bool parse_connect(const char *line, size_t len, uint32_t *port)
{
	static const char verb[] = "CONNECT ";
	uint64_t v = 0;
	size_t i = sizeof(verb) - 1;

	if (len <= i || len > i + 10 || memcmp(line, verb, i))
		return false;
	for (; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return false;
		v = v * 10 + (line[i] - '0');
	}
	if (v >= 0xffffffffu)
		return false;
	*port = v;
	return true;
}

static uint32_t alloc_port(struct vsock *vs, uint32_t peer)
{
	for (;;) {
		uint32_t p = vs->next_port;

		vs->next_port = p == VSOCK_PORT_LAST ? VSOCK_PORT_FIRST : p + 1;
		if (!conn_find(vs, p, peer))
			return p;
	}
}

/* Read the host client's CONNECT line a byte at a time (what follows it is
 * data for the guest and stays in the socket). True when c was killed. */
static bool conn_read_line(struct vsock_conn *c)
{
	struct vsock *vs = c->vs;
	uint32_t port;

	for (;;) {
		ssize_t n = recv(c->fd, c->line + c->line_len, 1, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return false;
		if (n <= 0)
			break;
		if (c->line[c->line_len] == '\n')
			goto got_line;
		if (++c->line_len == sizeof(c->line))
			break;		/* too long */
	}
	conn_kill(c, false);
	return true;

got_line:
	if (!parse_connect(c->line, c->line_len, &port) || !vs_live(vs)) {
		conn_kill(c, false);
		return true;
	}
	if (c->timer_armed)
		io_uring_prep_timeout_remove(evloop_sqe(vs->dev.loop, NULL),
					     (__u64)(uintptr_t)&c->timer_h, 0);
	c->peer_port = port;
	c->local_port = alloc_port(vs, port);
	c->state = CONN_REQUESTING;
	conn_hash_add(c);
	c->owe |= OWE_REQUEST;
	conn_queue(c);
	return false;
}

static void rx_pump(struct vsock *vs);

static void conn_poll_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct vsock_conn *c = container_of(h, struct vsock_conn, poll_h);
	struct vsock *vs = c->vs;

	(void)flags;
	c->inflight--;
	c->poll_armed = false;
	c->poll_removing = false;
	if (c->dead) {
		if (!c->inflight)
			conn_free(c);
		return;
	}
	if (res < 0 && res != -ECANCELED) {
		conn_kill(c, c->state != CONN_LINE);
		goto out;
	}
	if (res > 0) {
		if (c->state == CONN_LINE) {
			if (conn_read_line(c))
				goto out;
		} else if (c->state == CONN_OPEN) {
			if (res & (POLLHUP | POLLERR))
				c->hup = true;
			if (res & (POLLIN | POLLHUP | POLLERR)) {
				c->readable = true;
				if (can_read(c))
					conn_queue(c);
			}
			if (res & (POLLOUT | POLLHUP | POLLERR)) {
				if (conn_flush_and_check(c))
					goto out;
			}
		}
	}
	conn_update_poll(c);
out:
	rx_pump(vs);
}

static void conn_timer_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct vsock_conn *c = container_of(h, struct vsock_conn, timer_h);

	(void)flags;
	c->inflight--;
	c->timer_armed = false;
	if (c->dead) {
		if (!c->inflight)
			conn_free(c);
		return;
	}
	if (res == -ETIME && c->state == CONN_LINE)
		conn_kill(c, false);
}

static void listen_cb(struct evloop_watch *w, uint32_t revents)
{
	struct vsock *vs = w->arg;

	(void)revents;
	for (;;) {
		struct vsock_conn *c;
		int fd = accept4(vs->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				log_ratelimited(&vs->dev.log_budget, vs->dev.name, "accept: %s",
						strerror(errno));
			return;
		}
		if (vs->nconns >= VSOCK_MAX_CONNS || !(c = conn_new(vs, fd, CONN_LINE))) {
			close(fd);
			continue;
		}
		c->ts.tv_sec = vs->connect_timeout_ms / 1000;
		c->ts.tv_nsec = (long long)(vs->connect_timeout_ms % 1000) * 1000000;
		io_uring_prep_timeout(evloop_sqe(vs->dev.loop, &c->timer_h), &c->ts, 0, 0);
		c->timer_armed = true;
		c->inflight++;
		conn_update_poll(c);
	}
}

/* ---- to the guest (rx queue) ---- */

static void hdr_for(const struct vsock *vs, struct vsock_hdr *h, uint32_t local, uint32_t peer,
		    uint16_t op)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = vs->cid,
		.src_port = local,
		.dst_port = peer,
		.type = VIRTIO_VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = VSOCK_BUF_ALLOC,
	};
}

enum emit {
	EMIT_NONE,		/* nothing to send */
	EMIT_PACKET,		/* h is filled */
	EMIT_LAST,		/* h is filled, and the connection is gone */
};

/* Read host data into the rx buffer e after the header and fill h: RW, or
 * SHUTDOWN(SEND) at the end of the stream, or RST when the socket failed
 * (the connection is then gone). */
static enum emit conn_read_data(struct vsock_conn *c, const struct virtq_elem *e,
				struct vsock_hdr *h)
{
	struct vsock *vs = c->vs;
	uint32_t room = e->write_len - VSOCK_HDR_BYTES;
	uint32_t want = peer_free(c);
	struct msghdr mh = { .msg_iov = vs->scratch };
	ssize_t n;

	if (want > room)
		want = room;
	if (want > VSOCK_MAX_PKT)
		want = VSOCK_MAX_PKT;
	mh.msg_iovlen = iov_slice(e->iov + e->nread, e->nwrite, VSOCK_HDR_BYTES, want, vs->scratch);
	do
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n > 0) {
		h->op = VIRTIO_VSOCK_OP_RW;
		h->len = n;
		c->tx_cnt += n;
		return EMIT_PACKET;
	}
	c->readable = false;
	if (n < 0 && errno == EAGAIN)
		return EMIT_NONE;
	if (n == 0) {
		c->host_eof = true;
		h->op = VIRTIO_VSOCK_OP_SHUTDOWN;
		h->flags = VIRTIO_VSOCK_SHUTDOWN_SEND;
		return conn_check_done(c) ? EMIT_LAST : EMIT_PACKET;
	}
	h->op = VIRTIO_VSOCK_OP_RST;
	conn_kill(c, false);
	return EMIT_LAST;
}

/* The next packet c owes the guest, into rx buffer e (header in h). When
 * c owes nothing (any more) it leaves the queue. */
static enum emit conn_emit(struct vsock_conn *c, const struct virtq_elem *e, struct vsock_hdr *h)
{
	enum emit r = EMIT_NONE;

	hdr_for(c->vs, h, c->local_port, c->peer_port, 0);
	h->fwd_cnt = c->fwd_cnt;
	if (c->owe & OWE_REQUEST) {
		c->owe &= ~OWE_REQUEST;
		h->op = VIRTIO_VSOCK_OP_REQUEST;
	} else if (c->owe & OWE_RESPONSE) {
		c->owe &= ~OWE_RESPONSE;
		h->op = VIRTIO_VSOCK_OP_RESPONSE;
	} else {
		if (c->readable && can_read(c))
			r = conn_read_data(c, e, h);
		if (r == EMIT_LAST)
			return r;
		if (r == EMIT_PACKET) {
			/* round robin between connections with data */
			conn_unqueue(c);
			conn_queue(c);
		} else if (c->owe & OWE_CREDIT) {
			h->op = VIRTIO_VSOCK_OP_CREDIT_UPDATE;
		} else {
			conn_unqueue(c);
			conn_update_poll(c);
			return EMIT_NONE;
		}
	}
	c->owe &= ~OWE_CREDIT;		/* every header carries the credit */
	c->fwd_cnt_told = c->fwd_cnt;
	return EMIT_PACKET;
}

/* Send what is owed to the guest while it has rx buffers. Loop thread. */
static void rx_pump(struct vsock *vs)
{
	struct virtio_dev *d = &vs->dev;
	struct virtq *vq = &d->vqs[VSOCK_RX_Q];
	struct virtq_elem *e = &vs->rx_elem;
	bool pushed = false;

	if (!vs_live(vs))
		return;
	while (vs->rst_n || vs->qhead) {
		uint8_t raw[VSOCK_HDR_BYTES];
		struct vsock_hdr h;

		if (!vs->rx_held) {
			int got = virtio_dev_pop(d, vq, e);
			if (got == 0 || got == -EPROTO)
				break;
			if (got == -E2BIG || e->nread || e->write_len < VSOCK_HDR_BYTES) {
				bad_packet(vs, "rx buffer unusable (%u readable, %u writable bytes)",
					   e->read_len, e->write_len);
				virtq_push(vq, e->head, 0);
				pushed = true;
				continue;
			}
			vs->rx_held = true;
		}
		if (vs->rst_n) {
			struct vsock_rst r = vs->rsts[vs->rst_first];
			vs->rst_first = (vs->rst_first + 1) % VSOCK_RST_MAX;
			vs->rst_n--;
			hdr_for(vs, &h, r.local, r.peer, VIRTIO_VSOCK_OP_RST);
		} else if (conn_emit(vs->qhead, e, &h) == EMIT_NONE) {
			continue;
		}
		hdr_put(raw, &h);
		iov_copy(e->iov, e->nwrite, 0, raw, sizeof(raw), true);
		virtq_push(vq, e->head, VSOCK_HDR_BYTES + h.len);
		vs->rx_held = false;
		pushed = true;
	}
	if (pushed)
		virtio_dev_notify(d, vq);
}

/* ---- from the guest (tx queue) ---- */

/* Guest data for the host socket: straight through while it takes it, the
 * rest into the connection's buffer (which the guest's credit bounds).
 * True when c was killed. */
static bool conn_write(struct vsock_conn *c, const struct virtq_elem *e, uint32_t len)
{
	struct vsock *vs = c->vs;
	uint32_t done = 0;

	if (ring_used(c) + len > VSOCK_BUF_ALLOC) {
		bad_packet(vs, "port %u: %u bytes beyond the credit given", c->local_port,
			   ring_used(c) + len - VSOCK_BUF_ALLOC);
		conn_kill(c, true);
		return true;
	}
	if (!ring_used(c) && c->ok_off == c->ok_len) {
		struct msghdr mh = { .msg_iov = vs->scratch };
		ssize_t n;

		mh.msg_iovlen = iov_slice(e->iov, e->nread, VSOCK_HDR_BYTES, len, vs->scratch);
		do
			n = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno != EAGAIN) {
			conn_kill(c, true);
			return true;
		}
		if (n > 0) {
			done = n;
			c->fwd_cnt += n;
		}
	}
	if (done < len) {
		uint32_t left = len - done;
		uint32_t off = c->ring_head % VSOCK_BUF_ALLOC;
		uint32_t first = left < VSOCK_BUF_ALLOC - off ? left : VSOCK_BUF_ALLOC - off;

		if (!c->ring && !(c->ring = malloc(VSOCK_BUF_ALLOC))) {
			log_ratelimited(&vs->dev.log_budget, vs->dev.name, "out of memory for a buffer");
			conn_kill(c, true);
			return true;
		}
		iov_copy(e->iov, e->nread, VSOCK_HDR_BYTES + done, c->ring + off, first, false);
		iov_copy(e->iov, e->nread, VSOCK_HDR_BYTES + done + first, c->ring, left - first,
			 false);
		c->ring_head += left;
	}
	credit_check(c);
	return false;
}

/* The guest connects to host port h->dst_port: PATH_PORT. */
static void guest_connect(struct vsock *vs, const struct vsock_hdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct vsock_conn *c;
	int fd, n;

	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", vs->uds, h->dst_port);
	if (vs->nconns >= VSOCK_MAX_CONNS || n < 0 || (size_t)n >= sizeof(sa.sun_path))
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto refuse;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || !(c = conn_new(vs, fd, CONN_OPEN))) {
		close(fd);
		goto refuse;
	}
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	conn_hash_add(c);
	c->owe |= OWE_RESPONSE;
	conn_queue(c);
	conn_update_poll(c);
	return;

refuse:
	rst_push(vs, h->dst_port, h->src_port);
}

static void handle_packet(struct vsock *vs, const struct virtq_elem *e)
{
	uint8_t raw[VSOCK_HDR_BYTES];
	struct vsock_conn *c;
	struct vsock_hdr h;

	if (e->read_len < VSOCK_HDR_BYTES) {
		bad_packet(vs, "%u bytes, shorter than a header", e->read_len);
		return;
	}
	iov_copy(e->iov, e->nread, 0, raw, sizeof(raw), false);
	hdr_get(raw, &h);
	if (h.len > e->read_len - VSOCK_HDR_BYTES) {
		bad_packet(vs, "len %u beyond the %u bytes given", h.len,
			   e->read_len - VSOCK_HDR_BYTES);
		return;
	}
	if (h.src_cid != vs->cid || h.dst_cid != VSOCK_HOST_CID) {
		bad_packet(vs, "from cid %llu to cid %llu", (unsigned long long)h.src_cid,
			   (unsigned long long)h.dst_cid);
		return;
	}
	if (h.type != VIRTIO_VSOCK_TYPE_STREAM) {
		bad_packet(vs, "type %u", h.type);
		return;
	}
	if (h.op == 0 || h.op > VSOCK_MAX_OP) {
		bad_packet(vs, "op %u", h.op);
		return;
	}
	if (h.len && h.op != VIRTIO_VSOCK_OP_RW) {
		bad_packet(vs, "op %u with %u data bytes", h.op, h.len);
		return;
	}
	__atomic_fetch_add(&vs->dev.stats.requests, 1, __ATOMIC_RELAXED);
	c = conn_find(vs, h.dst_port, h.src_port);
	if (h.op == VIRTIO_VSOCK_OP_REQUEST) {
		if (c)
			bad_packet(vs, "REQUEST for port %u from %u: connected already",
				   h.dst_port, h.src_port);
		else
			guest_connect(vs, &h);
		return;
	}
	if (!c) {
		if (h.op != VIRTIO_VSOCK_OP_RST)
			rst_push(vs, h.dst_port, h.src_port);
		return;
	}
	c->peer_buf_alloc = h.buf_alloc;
	c->peer_fwd_cnt = h.fwd_cnt;
	switch (h.op) {
	case VIRTIO_VSOCK_OP_RESPONSE:
		if (c->state != CONN_REQUESTING) {
			conn_kill(c, true);
			return;
		}
		c->state = CONN_OPEN;
		c->ok_len = snprintf(c->ok, sizeof(c->ok), "OK %u\n", c->local_port);
		if (conn_flush_and_check(c))
			return;
		break;
	case VIRTIO_VSOCK_OP_RST:
		conn_kill(c, false);
		return;
	case VIRTIO_VSOCK_OP_SHUTDOWN:
		if (h.flags & VIRTIO_VSOCK_SHUTDOWN_RCV)
			c->guest_no_rcv = true;
		if (h.flags & VIRTIO_VSOCK_SHUTDOWN_SEND)
			c->guest_no_send = true;
		if (conn_check_done(c))
			return;
		break;
	case VIRTIO_VSOCK_OP_RW:
		if (c->state != CONN_OPEN) {
			conn_kill(c, true);
			return;
		}
		if (c->guest_no_send) {
			bad_packet(vs, "port %u: data after SHUTDOWN", c->local_port);
			return;
		}
		if (h.len && conn_write(c, e, h.len))
			return;
		break;
	case VIRTIO_VSOCK_OP_CREDIT_REQUEST:
		c->owe |= OWE_CREDIT;
		conn_queue(c);
		break;
	default:	/* CREDIT_UPDATE: the credit is in every header */
		break;
	}
	if (c->readable && can_read(c))
		conn_queue(c);
	conn_update_poll(c);
}

static void tx_pump(struct vsock *vs)
{
	struct virtio_dev *d = &vs->dev;
	struct virtq *vq = &d->vqs[VSOCK_TX_Q];
	struct virtq_elem *e = &vs->tx_elem;
	bool pushed = false;

	for (;;) {
		int got = virtio_dev_pop(d, vq, e);

		if (got == 0 || got == -EPROTO)
			break;
		if (got == -E2BIG)
			bad_packet(vs, "more than %d buffers", VIRTQ_MAX_SEGS);
		else
			handle_packet(vs, e);
		virtq_push(vq, e->head, 0);
		pushed = true;
	}
	if (pushed)
		virtio_dev_notify(d, vq);
}

/* ---- device ops ---- */

static void vsock_queue_notify(struct virtio_dev *d, uint32_t q)
{
	struct vsock *vs = to_vs(d);

	if (q == VSOCK_TX_Q)
		tx_pump(vs);
	/* rx: new buffers; tx: replies may be owed. The event queue only
	 * holds buffers for events we do not send. */
	if (q != VSOCK_EVENT_Q)
		rx_pump(vs);
}

static void vsock_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, to_vs(d)->config + off, len);
}

static void vsock_reset(struct virtio_dev *d)
{
	struct vsock *vs = to_vs(d);
	struct vsock_conn *c = vs->all.next;

	/* Every connection goes; the guest forgets its sockets too. */
	while (c != &vs->all) {
		struct vsock_conn *next = c->next;
		conn_kill(c, false);
		c = next;
	}
	vs->rst_n = 0;
	vs->rx_held = false;
}

static void vsock_destroy(struct virtio_dev *d)
{
	struct vsock *vs = to_vs(d);

	/* The loop has stopped: no completion comes any more. */
	while (vs->all.next != &vs->all)
		conn_free(vs->all.next);
	if (vs->listen_fd >= 0)
		close(vs->listen_fd);
	if (vs->uds) {
		usock_unlink(vs->uds, &vs->id);
		free(vs->uds);
	}
	free(vs);
}

static const struct virtio_dev_ops vsock_ops = {
	.kind = "sock",
	.device_id = 19,
	.num_queues = 3,
	.queue_max = VSOCK_QUEUE_SIZE,
	.config_size = VSOCK_CONFIG_SIZE,
	.features = 0,
	.config_read = vsock_config_read,
	.queue_notify = vsock_queue_notify,
	.reset = vsock_reset,
	.destroy = vsock_destroy,
};

int vsock_open(struct evloop *loop, uint32_t cid, const char *uds, int connect_timeout_ms,
	       struct virtio_dev **out)
{
	struct vsock *vs;
	uint64_t cid_le = htole64(cid);
	int err;

	if (cid < 3 || cid == 0xffffffffu)
		return cove_fail(-EINVAL, "vsock cid %u: use 3 to 4294967294", cid);
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return cove_fail(-ENOMEM, "out of memory");
	vs->dev.ops = &vsock_ops;
	vs->dev.irqfd = -1;
	vs->cid = cid;
	vs->connect_timeout_ms = connect_timeout_ms;
	vs->next_port = VSOCK_PORT_FIRST;
	vs->all.next = vs->all.prev = &vs->all;
	memcpy(vs->config, &cid_le, 8);
	vs->listen_fd = usock_listen("vsock socket", uds, VSOCK_BACKLOG, &vs->id);
	if (vs->listen_fd < 0) {
		err = vs->listen_fd;
		free(vs);
		return err;
	}
	vs->uds = strdup(uds);
	if (!vs->uds) {
		err = cove_fail(-ENOMEM, "out of memory");
		goto fail;
	}
	vs->listen.fd = vs->listen_fd;
	vs->listen.events = POLLIN;
	vs->listen.cb = listen_cb;
	vs->listen.arg = vs;
	err = evloop_watch_start(loop, &vs->listen);
	if (err < 0) {
		cove_fail(err, "vsock socket %s: %s", uds, strerror(-err));
		goto fail;
	}
	*out = &vs->dev;
	return 0;

fail:
	usock_unlink(uds, &vs->id);
	close(vs->listen_fd);
	free(vs->uds);
	free(vs);
	return err;
}

int vsock_create(struct vm *vm, uint32_t cid, const char *uds, struct virtio_dev **out)
{
	struct virtio_dev *d;
	int err = vsock_open(vm->loop, cid, uds, VSOCK_CONNECT_TIMEOUT_MS, &d);

	if (err == 0)
		err = vm_adopt_virtio(vm, d);
	if (err == 0)
		*out = d;
	return err;
}
