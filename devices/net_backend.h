/* What virtio-net drives: a source and sink of Ethernet frames, each with
 * the 12-byte virtio_net_hdr (virtio 1.2, 5.1.6) in front. The tap backend
 * (net_tap.c) and the user-mode backend (net_slirp.c) implement it; the
 * device does not know which one it has. All calls on the loop thread,
 * except create and destroy. */
#ifndef COVE_NET_BACKEND_H
#define COVE_NET_BACKEND_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct evloop;
struct net_backend;

struct net_backend_ops {
	const char *kind;		/* "tap", "user": for messages */
	/* Frames may carry GSO and partial checksums both ways (the device
	 * then offers the offload features). */
	bool offloads;
	/* Begin work on the loop (watch fds, timers); once, at the first
	 * activation. 0 or -errno. */
	int (*start)(struct net_backend *be, struct evloop *loop);
	/* Whether be->rx_ready may be called: the device turns it off while
	 * the guest has no receive buffers and on when it adds some. */
	void (*rx_enable)(struct net_backend *be, bool on);
	/* Read one frame into iov (truncated if it is longer). Its length,
	 * -EAGAIN when there is none, or -errno. */
	ssize_t (*recv)(struct net_backend *be, const struct iovec *iov, int n);
	/* Send one frame gathered from iov. Its length or -errno. */
	ssize_t (*send)(struct net_backend *be, const struct iovec *iov, int n);
	/* The driver accepted these virtio-net feature bits: what the
	 * backend may now hand over (GUEST_CSUM, GUEST_TSO4/6, GUEST_ECN). */
	int (*set_offload)(struct net_backend *be, uint64_t features);
	/* Free it; the loop has stopped. */
	void (*destroy)(struct net_backend *be);
};

struct net_backend {
	const struct net_backend_ops *ops;
	/* Set by the device: frames may be waiting, call recv. */
	void (*rx_ready)(void *arg);
	void *rx_arg;
	/* Frames the backend itself had to drop (queue full). */
	uint64_t drops;
};

#endif
