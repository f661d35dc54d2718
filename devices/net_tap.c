#include "net_tap.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"
#include "net_backend.h"
#include "virtio_net.h"

struct nettap {
	struct net_backend be;		/* first */
	int fd;
	char ifname[IFNAMSIZ];
	struct evloop *loop;
	struct evloop_handler poll_h;	/* one-shot POLLIN on fd */
	bool enabled, armed;
	unsigned log_budget;
};

static struct nettap *to_tap(struct net_backend *be)
{
	return (struct nettap *)be;
}

static void arm(struct nettap *t)
{
	struct io_uring_sqe *sqe = evloop_sqe(t->loop, &t->poll_h);

	io_uring_prep_poll_add(sqe, t->fd, POLLIN);
	t->armed = true;
}

static void poll_done(struct evloop_handler *h, int res, uint32_t flags)
{
	struct nettap *t = (struct nettap *)((char *)h - offsetof(struct nettap, poll_h));

	(void)flags;
	t->armed = false;
	if (res < 0) {
		log_ratelimited(&t->log_budget, t->ifname, "poll: %s", strerror(-res));
		return;
	}
	if (t->enabled)
		t->be.rx_ready(t->be.rx_arg);
	/* The device read until the tap was empty, or turned rx off. */
	if (t->enabled && !t->armed)
		arm(t);
}

static int tap_start(struct net_backend *be, struct evloop *loop)
{
	to_tap(be)->loop = loop;
	return 0;
}

static void tap_rx_enable(struct net_backend *be, bool on)
{
	struct nettap *t = to_tap(be);

	t->enabled = on;
	if (on && !t->armed && t->loop)
		arm(t);
}

static ssize_t tap_recv(struct net_backend *be, const struct iovec *iov, int n)
{
	ssize_t r = readv(to_tap(be)->fd, iov, n);

	return r < 0 ? -errno : r;
}

static ssize_t tap_send(struct net_backend *be, const struct iovec *iov, int n)
{
	ssize_t r = writev(to_tap(be)->fd, iov, n);

	return r < 0 ? -errno : r;
}

static int tap_set_offload(struct net_backend *be, uint64_t features)
{
	unsigned off = 0;

	if (features & (1ull << VIRTIO_NET_F_GUEST_CSUM)) {
		off |= TUN_F_CSUM;
		if (features & (1ull << VIRTIO_NET_F_GUEST_TSO4))
			off |= TUN_F_TSO4;
		if (features & (1ull << VIRTIO_NET_F_GUEST_TSO6))
			off |= TUN_F_TSO6;
		if ((off & (TUN_F_TSO4 | TUN_F_TSO6)) &&
		    (features & (1ull << VIRTIO_NET_F_GUEST_ECN)))
			off |= TUN_F_TSO_ECN;
	}
	if (ioctl(to_tap(be)->fd, TUNSETOFFLOAD, off) < 0)
		return -errno;
	return 0;
}

static void tap_destroy(struct net_backend *be)
{
	struct nettap *t = to_tap(be);

	close(t->fd);
	free(t);
}

static const struct net_backend_ops nettap_ops = {
	.kind = "tap",
	.offloads = true,
	.start = tap_start,
	.rx_enable = tap_rx_enable,
	.recv = tap_recv,
	.send = tap_send,
	.set_offload = tap_set_offload,
	.destroy = tap_destroy,
};

/* What to do about a failed attach, for the message. */
static const char *attach_hint(int err)
{
	switch (err) {
	case -EPERM:
	case -EACCES:
		return " (the tap must belong to you: ip tuntap add dev NAME mode tap user $USER; or run as root)";
	case -EBUSY:
		return " (is another VM using it?)";
	case -EINVAL:
		return " (not a tap interface?)";
	default:
		return "";
	}
}

int nettap_open(const char *ifname, struct net_backend **out)
{
	struct ifreq ifr;
	struct nettap *t;
	int fd, err, hdr = VNET_HDR_LEN;

	if (!*ifname || strlen(ifname) >= IFNAMSIZ)
		return cove_fail(-EINVAL, "net tap=%s: not an interface name (1 to %d bytes)",
				 ifname, IFNAMSIZ - 1);
	/* TUNSETIFF would create a missing interface (given the privilege):
	 * we only attach to one the user made. */
	if (!if_nametoindex(ifname))
		return cove_fail(-ENODEV, "net tap=%s: No such device (create it: ip tuntap add dev %s mode tap)",
				 ifname, ifname);
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		return cove_fail(err, "net tap=%s: /dev/net/tun: %s%s", ifname, strerror(-err),
				 err == -ENOENT ? " (is the tun module loaded? modprobe tun)" : "");
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
	memcpy(ifr.ifr_name, ifname, strlen(ifname));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		err = -errno;
		cove_fail(err, "net tap=%s: %s%s", ifname, strerror(-err), attach_hint(err));
		goto fail;
	}
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0 || ioctl(fd, TUNSETOFFLOAD, 0) < 0) {
		err = -errno;
		cove_fail(err, "net tap=%s: virtio-net headers: %s", ifname, strerror(-err));
		goto fail;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		err = cove_fail(-ENOMEM, "net tap=%s: out of memory", ifname);
		goto fail;
	}
	t->be.ops = &nettap_ops;
	t->fd = fd;
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);
	t->poll_h.cb = poll_done;
	*out = &t->be;
	return 0;

fail:
	close(fd);
	return err;
}
