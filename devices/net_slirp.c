#include "net_slirp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <slirp/libslirp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "iov.h"
#include "libcove.h"
#include "log.h"
#include "net_backend.h"
#include "virtio_net.h"

#define NETSLIRP_QUEUE	256		/* guest-bound frames waiting */
#define NETSLIRP_SLOT	2048		/* header + frame; slirp's MTU is 1500 */
#define NETSLIRP_ROUNDS	8		/* poll rounds per wakeup */
#define NETSLIRP_EVENTS	64

struct netslirp_fd {
	int fd;
	int events;			/* SLIRP_POLL_* wanted */
	int revents;			/* SLIRP_POLL_* seen */
};

struct netslirp_timer {
	SlirpTimerId id;
	void *cb_opaque;
	int64_t expire_ms;		/* -1: not armed */
	bool used;
};

struct netslirp {
	struct net_backend be;		/* first */
	Slirp *slirp;
	struct evloop *loop;
	int epfd, tfd;
	struct evloop_watch ep_w, t_w;
	/* the fds of the last slirp_pollfds_fill, and those in epfd */
	struct netslirp_fd *fds, *reg;
	int nfds, nreg, cap;
	uint32_t timeout_ms;		/* from the last fill */
	struct netslirp_timer timers[SLIRP_TIMER_NUM];
	/* guest-bound frames, each with a zero virtio-net header */
	uint8_t *q;			/* NETSLIRP_QUEUE slots */
	uint16_t qlen[NETSLIRP_QUEUE];
	unsigned qhead, qcount;
	bool rx_on;
	uint8_t *txbuf;			/* VNET_MAX_FRAME */
	unsigned log_budget;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

/* ---- slirp callbacks ---- */

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct netslirp *s = opaque;
	unsigned slot;

	if (len + VNET_HDR_LEN > NETSLIRP_SLOT || s->qcount == NETSLIRP_QUEUE) {
		__atomic_fetch_add(&s->be.drops, 1, __ATOMIC_RELAXED);
		return len;
	}
	slot = (s->qhead + s->qcount) % NETSLIRP_QUEUE;
	memset(s->q + slot * NETSLIRP_SLOT, 0, VNET_HDR_LEN);
	memcpy(s->q + slot * NETSLIRP_SLOT + VNET_HDR_LEN, buf, len);
	s->qlen[slot] = len + VNET_HDR_LEN;
	s->qcount++;
	if (s->rx_on)
		s->be.rx_ready(s->be.rx_arg);
	return len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct netslirp *s = opaque;

	log_ratelimited(&s->log_budget, "slirp", "guest error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	(void)opaque;
	return now_ns();
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
	struct netslirp *s = opaque;

	for (int i = 0; i < SLIRP_TIMER_NUM; i++) {
		struct netslirp_timer *t = &s->timers[i];
		if (!t->used) {
			*t = (struct netslirp_timer){ .id = id, .cb_opaque = cb_opaque,
						      .expire_ms = -1, .used = true };
			return t;
		}
	}
	return NULL;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct netslirp_timer *t = timer;

	(void)opaque;
	if (t)
		t->used = false;
}

static void arm_timerfd(struct netslirp *s, int64_t ms);

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct netslirp_timer *t = timer;

	if (!t)
		return;
	t->expire_ms = expire_ms;
	arm_timerfd(opaque, expire_ms - now_ns() / 1000000);
}

static void cb_poll_fd(int fd, void *opaque)
{
	(void)fd;
	(void)opaque;
}

/* Slirp has work outside a poll (queued output): poll again soon. */
static void cb_notify(void *opaque)
{
	arm_timerfd(opaque, 0);
}

static const SlirpCb netslirp_cbs = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_poll_fd,
	.unregister_poll_fd = cb_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

/* ---- polling slirp's sockets through an epoll set ---- */

static uint32_t to_epoll(int ev)
{
	return (ev & SLIRP_POLL_IN ? EPOLLIN : 0) | (ev & SLIRP_POLL_OUT ? EPOLLOUT : 0) |
	       (ev & SLIRP_POLL_PRI ? EPOLLPRI : 0);
}

static int from_epoll(uint32_t ev)
{
	return (ev & EPOLLIN ? SLIRP_POLL_IN : 0) | (ev & EPOLLOUT ? SLIRP_POLL_OUT : 0) |
	       (ev & EPOLLPRI ? SLIRP_POLL_PRI : 0) | (ev & EPOLLERR ? SLIRP_POLL_ERR : 0) |
	       (ev & EPOLLHUP ? SLIRP_POLL_HUP : 0);
}

static int cb_add_poll(int fd, int events, void *opaque)
{
	struct netslirp *s = opaque;

	for (int i = 0; i < s->nfds; i++)
		if (s->fds[i].fd == fd) {
			s->fds[i].events |= events;
			return i;
		}
	if (s->nfds == s->cap) {
		int cap = s->cap ? 2 * s->cap : 32;
		struct netslirp_fd *f = realloc(s->fds, cap * sizeof(*f));
		struct netslirp_fd *r = f ? realloc(s->reg, cap * sizeof(*r)) : NULL;

		if (f)
			s->fds = f;
		if (!r) {
			log_ratelimited(&s->log_budget, "slirp", "out of memory for sockets");
			return -1;
		}
		s->reg = r;
		s->cap = cap;
	}
	s->fds[s->nfds] = (struct netslirp_fd){ .fd = fd, .events = events };
	return s->nfds++;
}

static int cb_get_revents(int idx, void *opaque)
{
	struct netslirp *s = opaque;

	return idx >= 0 && idx < s->nfds ? s->fds[idx].revents : 0;
}

static void ep_set(struct netslirp *s, int fd, int events, bool known)
{
	struct epoll_event ev = { .events = to_epoll(events), .data.fd = fd };

	/* fds slirp closed left the set by themselves: MOD and ADD each
	 * fall back on the other. */
	if (epoll_ctl(s->epfd, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0)
		return;
	if (epoll_ctl(s->epfd, known ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) < 0)
		log_ratelimited(&s->log_budget, "slirp", "epoll fd %d: %s", fd, strerror(errno));
}

/* Ask slirp which fds it wants polled, and make the epoll set match. */
static void refill(struct netslirp *s)
{
	s->nfds = 0;
	s->timeout_ms = UINT32_MAX;
	slirp_pollfds_fill(s->slirp, &s->timeout_ms, cb_add_poll, s);
	for (int i = 0; i < s->nfds; i++) {
		int j;
		for (j = 0; j < s->nreg && s->reg[j].fd != s->fds[i].fd; j++)
			;
		if (j == s->nreg)
			ep_set(s, s->fds[i].fd, s->fds[i].events, false);
		else if (s->reg[j].events != s->fds[i].events)
			ep_set(s, s->fds[i].fd, s->fds[i].events, true);
	}
	for (int j = 0; j < s->nreg; j++) {
		int i;
		for (i = 0; i < s->nfds && s->fds[i].fd != s->reg[j].fd; i++)
			;
		if (i == s->nfds)
			epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->reg[j].fd, NULL);
	}
	if (s->nfds)
		memcpy(s->reg, s->fds, s->nfds * sizeof(*s->reg));
	s->nreg = s->nfds;
}

static void arm_timerfd(struct netslirp *s, int64_t ms)
{
	struct itimerspec its = { 0 };
	struct itimerspec cur;

	if (ms < 0)
		ms = 0;
	/* Keep an earlier expiry that is already set. */
	if (timerfd_gettime(s->tfd, &cur) == 0 &&
	    (cur.it_value.tv_sec || cur.it_value.tv_nsec) &&
	    cur.it_value.tv_sec * 1000ll + cur.it_value.tv_nsec / 1000000 <= ms)
		return;
	its.it_value.tv_sec = ms / 1000;
	its.it_value.tv_nsec = (ms % 1000) * 1000000 + 1000;	/* never 0: that disarms */
	timerfd_settime(s->tfd, 0, &its, NULL);
}

/* Slirp's next deadline: its own TCP timers (timeout_ms) or a timer. */
static void arm_next(struct netslirp *s)
{
	int64_t ms = s->timeout_ms, now = now_ns() / 1000000;

	for (int i = 0; i < SLIRP_TIMER_NUM; i++)
		if (s->timers[i].used && s->timers[i].expire_ms >= 0 &&
		    s->timers[i].expire_ms - now < ms)
			ms = s->timers[i].expire_ms - now;
	arm_timerfd(s, ms);
}

/* Let slirp handle what its sockets have, until they are quiet. */
static void run(struct netslirp *s)
{
	struct epoll_event evs[NETSLIRP_EVENTS];

	for (int round = 0; round < NETSLIRP_ROUNDS; round++) {
		int n = epoll_wait(s->epfd, evs, NETSLIRP_EVENTS, 0);

		if (n < 0)
			n = 0;
		for (int i = 0; i < s->nfds; i++)
			s->fds[i].revents = 0;
		for (int k = 0; k < n; k++)
			for (int i = 0; i < s->nfds; i++)
				if (s->fds[i].fd == evs[k].data.fd)
					s->fds[i].revents |= from_epoll(evs[k].events);
		slirp_pollfds_poll(s->slirp, 0, cb_get_revents, s);
		refill(s);
		if (n == 0)
			break;
	}
	arm_next(s);
}

static void ep_ready(struct evloop_watch *w, uint32_t revents)
{
	(void)revents;
	run(w->arg);
}

static void timer_ready(struct evloop_watch *w, uint32_t revents)
{
	struct netslirp *s = w->arg;
	uint64_t expirations;
	int64_t now = now_ns() / 1000000;

	(void)revents;
	if (read(s->tfd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
		log_ratelimited(&s->log_budget, "slirp", "timerfd: %s", strerror(errno));
	for (int i = 0; i < SLIRP_TIMER_NUM; i++) {
		struct netslirp_timer *t = &s->timers[i];
		if (t->used && t->expire_ms >= 0 && t->expire_ms <= now) {
			t->expire_ms = -1;
			slirp_handle_timer(s->slirp, t->id, t->cb_opaque);
		}
	}
	run(s);
}

/* ---- backend ops ---- */

static struct netslirp *to_slirp(struct net_backend *be)
{
	return (struct netslirp *)be;
}

static int ns_start(struct net_backend *be, struct evloop *loop)
{
	struct netslirp *s = to_slirp(be);
	int err;

	s->loop = loop;
	s->ep_w.fd = s->epfd;
	s->ep_w.events = POLLIN;
	s->ep_w.cb = ep_ready;
	s->ep_w.arg = s;
	s->t_w.fd = s->tfd;
	s->t_w.events = POLLIN;
	s->t_w.cb = timer_ready;
	s->t_w.arg = s;
	err = evloop_watch_start(loop, &s->ep_w);
	if (err < 0)
		return err;
	err = evloop_watch_start(loop, &s->t_w);
	if (err < 0)
		return err;
	refill(s);
	arm_next(s);
	return 0;
}

static void ns_rx_enable(struct net_backend *be, bool on)
{
	to_slirp(be)->rx_on = on;
}

static ssize_t ns_recv(struct net_backend *be, const struct iovec *iov, int n)
{
	struct netslirp *s = to_slirp(be);
	size_t len;

	if (!s->qcount)
		return -EAGAIN;
	len = iov_copy(iov, n, 0, s->q + s->qhead * NETSLIRP_SLOT, s->qlen[s->qhead], true);
	s->qhead = (s->qhead + 1) % NETSLIRP_QUEUE;
	s->qcount--;
	return len;
}

static ssize_t ns_send(struct net_backend *be, const struct iovec *iov, int n)
{
	struct netslirp *s = to_slirp(be);
	size_t len = iov_copy(iov, n, VNET_HDR_LEN, s->txbuf, VNET_MAX_FRAME, false);

	slirp_input(s->slirp, s->txbuf, len);
	/* The frame may have opened sockets (an outbound connection). */
	refill(s);
	arm_next(s);
	return len + VNET_HDR_LEN;
}

static int ns_set_offload(struct net_backend *be, uint64_t features)
{
	(void)be;
	(void)features;
	return 0;
}

static void ns_destroy(struct net_backend *be)
{
	struct netslirp *s = to_slirp(be);

	if (s->slirp)
		slirp_cleanup(s->slirp);
	if (s->epfd >= 0)
		close(s->epfd);
	if (s->tfd >= 0)
		close(s->tfd);
	free(s->fds);
	free(s->reg);
	free(s->q);
	free(s->txbuf);
	free(s);
}

static const struct net_backend_ops netslirp_ops = {
	.kind = "user",
	.offloads = false,
	.start = ns_start,
	.rx_enable = ns_rx_enable,
	.recv = ns_recv,
	.send = ns_send,
	.set_offload = ns_set_offload,
	.destroy = ns_destroy,
};

int netslirp_open(const struct cove_net_fwd *fwds, int nfwds, struct net_backend **out)
{
	struct netslirp *s = calloc(1, sizeof(*s));
	struct in_addr loopback = { .s_addr = htonl(INADDR_LOOPBACK) };
	SlirpConfig cfg = {
		.version = 4,
		.in_enabled = true,
		.vhostname = "cove",
		.if_mtu = 1500,
		.if_mru = 1500,
	};
	int err;

	if (!s)
		return cove_fail(-ENOMEM, "net user: out of memory");
	s->be.ops = &netslirp_ops;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (s->epfd < 0 || s->tfd < 0) {
		err = cove_fail(-errno, "net user: %s", strerror(errno));
		goto fail;
	}
	s->q = malloc(NETSLIRP_QUEUE * NETSLIRP_SLOT);
	s->txbuf = malloc(VNET_MAX_FRAME);
	if (!s->q || !s->txbuf) {
		err = cove_fail(-ENOMEM, "net user: out of memory");
		goto fail;
	}
	inet_pton(AF_INET, "10.0.2.0", &cfg.vnetwork);
	inet_pton(AF_INET, "255.255.255.0", &cfg.vnetmask);
	inet_pton(AF_INET, "10.0.2.2", &cfg.vhost);
	inet_pton(AF_INET, "10.0.2.15", &cfg.vdhcp_start);
	inet_pton(AF_INET, "10.0.2.3", &cfg.vnameserver);
	s->slirp = slirp_new(&cfg, &netslirp_cbs, s);
	if (!s->slirp) {
		err = cove_fail(-ENOMEM, "net user: slirp_new failed");
		goto fail;
	}
	for (int i = 0; i < nfwds; i++) {
		if (slirp_add_hostfwd(s->slirp, 0, loopback, fwds[i].host_port,
				      cfg.vdhcp_start, fwds[i].guest_port) < 0) {
			err = cove_fail(-EADDRINUSE, "net user: fwd=tcp:%u:%u: cannot listen on 127.0.0.1:%u (Address already in use?)",
					fwds[i].host_port, fwds[i].guest_port, fwds[i].host_port);
			goto fail;
		}
	}
	*out = &s->be;
	return 0;

fail:
	ns_destroy(&s->be);
	return err;
}
