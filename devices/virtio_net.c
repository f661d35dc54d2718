#include "virtio_net.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iov.h"
#include "log.h"
#include "net_backend.h"
#include "virtio_dev.h"
#include "vm.h"

struct vnet_stats {
	uint64_t rx_packets, rx_bytes, rx_dropped;
	uint64_t tx_packets, tx_bytes, tx_dropped;
};

struct vnet {
	struct virtio_dev dev;		/* first */
	struct net_backend *be;
	uint8_t config[VNET_CONFIG_SIZE];
	bool be_started;		/* backend started on the loop */
	bool rx_waiting;		/* no receive buffers: backend rx off until a kick */

	/* Receive: the first chain of the next frame (held while no frame
	 * is there), and a frame read into `frame` that waits for more
	 * chains (mergeable buffers) or for a chain large enough. */
	bool rx_held;
	struct virtq_elem rx_first, rx_more;
	size_t frame_len, frame_off;	/* frame_len 0: no frame pending */
	unsigned nbufs;			/* chains the pending frame uses so far */
	uint16_t heads[VNET_QUEUE_SIZE];
	uint32_t lens[VNET_QUEUE_SIZE];
	uint8_t *frame;			/* VNET_MAX_FRAME bytes */

	struct virtq_elem tx;
	struct vnet_stats st;
};

static struct vnet *to_net(struct virtio_dev *d)
{
	return (struct vnet *)d;
}

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* ---- receive ---- */

static void rx_stall(struct vnet *v)
{
	v->rx_waiting = true;
	v->be->ops->rx_enable(v->be, false);
}

/* Make sure a first chain is held. False when the guest has none (rx
 * stalls) or broke the ring. */
static bool rx_hold_first(struct vnet *v)
{
	struct virtio_dev *d = &v->dev;

	while (!v->rx_held) {
		int got = virtio_dev_pop(d, &d->vqs[VNET_RXQ], &v->rx_first);

		if (got == -E2BIG) {
			virtio_dev_guest_error(d, "receive chain with more than %u buffers",
					       VIRTQ_MAX_SEGS);
			virtq_push(&d->vqs[VNET_RXQ], v->rx_first.head, 0);
			continue;
		}
		if (got == 0)
			rx_stall(v);
		if (got <= 0)
			return false;
		if (v->rx_first.write_len < VNET_HDR_LEN) {
			virtio_dev_guest_error(d, "receive buffer shorter than the header (%u)",
					       v->rx_first.write_len);
			virtq_push(&d->vqs[VNET_RXQ], v->rx_first.head, 0);
			continue;
		}
		v->rx_held = true;
	}
	return true;
}

static void set_num_buffers(struct virtq_elem *e, uint16_t n)
{
	uint16_t le = htole16(n);

	iov_copy(e->iov + e->nread, e->nwrite, VNET_HDR_NUM_BUFFERS, &le, sizeof(le), true);
}

/* A frame of len bytes (header included) is in the guest's buffers. */
static void rx_done(struct vnet *v, size_t len)
{
	count(&v->st.rx_packets, 1);
	count(&v->st.rx_bytes, len - VNET_HDR_LEN);
	count(&v->dev.stats.requests, 1);
}

/* Go on spreading the pending frame over the guest's chains. True when it
 * was delivered or dropped, false when it waits for more chains. */
static bool rx_deliver(struct vnet *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *vq = &d->vqs[VNET_RXQ];
	bool mrg = virtio_has_feature(d, VIRTIO_NET_F_MRG_RXBUF);

	if (v->nbufs == 0) {
		struct virtq_elem *e = &v->rx_first;

		if (!mrg && v->frame_len > e->write_len) {
			/* Not ours to fix: the driver's buffers are too small
			 * for what it negotiated. Keep the chain. */
			count(&v->st.rx_dropped, 1);
			v->frame_len = 0;
			return true;
		}
		v->frame_off = iov_copy(e->iov + e->nread, e->nwrite, 0, v->frame,
					v->frame_len, true);
		v->heads[0] = e->head;
		v->lens[0] = v->frame_off;
		v->nbufs = 1;
	}
	while (v->frame_off < v->frame_len) {
		struct virtq_elem *e = &v->rx_more;
		int got;

		if (v->nbufs == vq->size) {
			/* Cannot happen with a sane driver: a queue's worth
			 * of chains took less than a frame. */
			virtio_dev_guest_error(d, "receive chains too small for a frame of %zu bytes",
					       v->frame_len);
			break;
		}
		got = virtio_dev_pop(d, vq, e);
		if (got == 0) {
			rx_stall(v);
			return false;
		}
		if (got == -EPROTO)
			return false;
		if (got == -E2BIG) {
			virtio_dev_guest_error(d, "receive chain with more than %u buffers",
					       VIRTQ_MAX_SEGS);
			virtq_push(vq, e->head, 0);
			continue;
		}
		v->heads[v->nbufs] = e->head;
		v->lens[v->nbufs] = iov_copy(e->iov + e->nread, e->nwrite, 0,
					     v->frame + v->frame_off,
					     v->frame_len - v->frame_off, true);
		v->frame_off += v->lens[v->nbufs];
		v->nbufs++;
	}
	if (v->frame_off < v->frame_len) {
		count(&v->st.rx_dropped, 1);
		for (unsigned i = 0; i < v->nbufs; i++)
			v->lens[i] = 0;
	} else {
		set_num_buffers(&v->rx_first, v->nbufs);
		rx_done(v, v->frame_len);
	}
	/* All of a frame's chains at once: a driver that sees the first may
	 * look for the others right away (5.1.6.4). */
	virtq_push_n(vq, v->heads, v->lens, v->nbufs);
	v->rx_held = false;
	v->nbufs = 0;
	v->frame_len = 0;
	return true;
}

/* Move frames from the backend into the guest while both have some. */
static void rx_process(struct vnet *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *vq = &d->vqs[VNET_RXQ];

	if (v->rx_waiting)
		return;
	if (!d->active || !vq->started || vq->broken) {
		/* Nowhere to put frames: leave them in the backend until a
		 * kick or the next activation. */
		rx_stall(v);
		return;
	}
	for (;;) {
		struct virtq_elem *e = &v->rx_first;
		ssize_t n;

		if (v->frame_len) {
			if (!rx_deliver(v))
				break;
			continue;
		}
		if (!rx_hold_first(v))
			break;
		if (e->write_len >= VNET_MAX_FRAME) {
			/* Big buffers: straight into the guest's memory. */
			n = v->be->ops->recv(v->be, e->iov + e->nread, e->nwrite);
		} else {
			struct iovec iov = { .iov_base = v->frame, .iov_len = VNET_MAX_FRAME };
			n = v->be->ops->recv(v->be, &iov, 1);
		}
		if (n == -EAGAIN)
			break;
		if (n < 0) {
			count(&d->stats.errors, 1);
			log_ratelimited(&d->log_budget, d->name, "%s receive: %s",
					v->be->ops->kind, strerror(-n));
			break;
		}
		if (n < VNET_HDR_LEN) {
			count(&v->st.rx_dropped, 1);
			continue;
		}
		if (e->write_len >= VNET_MAX_FRAME) {
			set_num_buffers(e, 1);
			virtq_push(vq, e->head, n);
			v->rx_held = false;
			rx_done(v, n);
			continue;
		}
		v->frame_len = n;
		v->frame_off = 0;
		v->nbufs = 0;
	}
	virtio_dev_notify(d, vq);
}

static void vnet_rx_ready(void *arg)
{
	rx_process(arg);
}

/* ---- transmit ---- */

static void tx_process(struct vnet *v)
{
	struct virtio_dev *d = &v->dev;
	struct virtq *vq = &d->vqs[VNET_TXQ];
	struct virtq_elem *e = &v->tx;

	for (;;) {
		int got = virtio_dev_pop(d, vq, e);
		ssize_t n;

		if (got == 0 || got == -EPROTO)
			break;
		if (got == -E2BIG) {
			virtio_dev_guest_error(d, "transmit chain with more than %u buffers",
					       VIRTQ_MAX_SEGS);
			count(&v->st.tx_dropped, 1);
		} else if (e->read_len < VNET_HDR_LEN || e->read_len > VNET_MAX_FRAME) {
			virtio_dev_guest_error(d, "transmit frame too short or too long (%u)",
					       e->read_len);
			count(&v->st.tx_dropped, 1);
		} else {
			n = v->be->ops->send(v->be, e->iov, e->nread);
			if (n < 0) {
				count(&d->stats.errors, 1);
				count(&v->st.tx_dropped, 1);
				log_ratelimited(&d->log_budget, d->name, "%s send: %s",
						v->be->ops->kind, strerror(-n));
			} else {
				count(&v->st.tx_packets, 1);
				count(&v->st.tx_bytes, e->read_len - VNET_HDR_LEN);
				count(&d->stats.requests, 1);
			}
		}
		virtq_push(vq, e->head, 0);
	}
	virtio_dev_notify(d, vq);
}

/* ---- device ops ---- */

static void vnet_queue_notify(struct virtio_dev *d, uint32_t q)
{
	struct vnet *v = to_net(d);

	if (q == VNET_TXQ) {
		tx_process(v);
		return;
	}
	if (v->rx_waiting) {
		v->rx_waiting = false;
		v->be->ops->rx_enable(v->be, true);
	}
	rx_process(v);
}

static void vnet_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, to_net(d)->config + off, len);
}

static int vnet_activate(struct virtio_dev *d)
{
	struct vnet *v = to_net(d);
	int err;

	if (!v->be_started) {
		err = v->be->ops->start(v->be, d->loop);
		if (err < 0)
			return err;
		v->be_started = true;
	}
	err = v->be->ops->set_offload(v->be, d->driver_features);
	if (err < 0) {
		log_msg(d->name, "%s offloads: %s", v->be->ops->kind, strerror(-err));
		return err;
	}
	v->rx_waiting = false;
	v->be->ops->rx_enable(v->be, true);
	return 0;
}

static void vnet_reset(struct virtio_dev *d)
{
	struct vnet *v = to_net(d);

	/* Nothing is in flight outside this thread: forget the held chains
	 * and a pending frame; the backend keeps its frames until the next
	 * driver is ready. */
	v->rx_held = false;
	v->frame_len = 0;
	v->nbufs = 0;
	v->rx_waiting = false;
	if (v->be_started) {
		v->be->ops->rx_enable(v->be, false);
		v->be->ops->set_offload(v->be, 0);
	}
}

static void vnet_destroy(struct virtio_dev *d)
{
	struct vnet *v = to_net(d);

	v->be->ops->destroy(v->be);
	free(v->frame);
	free(v);
}

static void vnet_metrics(struct virtio_dev *d, FILE *f)
{
	const struct vnet *v = to_net(d);

	fprintf(f, ",\"rx_packets\":%" PRIu64 ",\"rx_bytes\":%" PRIu64 ",\"rx_dropped\":%" PRIu64
		",\"tx_packets\":%" PRIu64 ",\"tx_bytes\":%" PRIu64 ",\"tx_dropped\":%" PRIu64,
		v->st.rx_packets, v->st.rx_bytes, v->st.rx_dropped + v->be->drops,
		v->st.tx_packets, v->st.tx_bytes, v->st.tx_dropped);
}

#define VNET_BASE_FEATURES ((1ull << VIRTIO_NET_F_MAC) | (1ull << VIRTIO_NET_F_STATUS) | \
			    (1ull << VIRTIO_NET_F_MRG_RXBUF))
#define VNET_OFFLOAD_FEATURES ((1ull << VIRTIO_NET_F_CSUM) | (1ull << VIRTIO_NET_F_GUEST_CSUM) | \
	(1ull << VIRTIO_NET_F_GUEST_TSO4) | (1ull << VIRTIO_NET_F_GUEST_TSO6) | \
	(1ull << VIRTIO_NET_F_GUEST_ECN) | (1ull << VIRTIO_NET_F_HOST_TSO4) | \
	(1ull << VIRTIO_NET_F_HOST_TSO6) | (1ull << VIRTIO_NET_F_HOST_ECN))

static const struct virtio_dev_ops vnet_ops_plain = {
	.kind = "net",
	.device_id = 1,
	.num_queues = 2,
	.queue_max = VNET_QUEUE_SIZE,
	.config_size = VNET_CONFIG_SIZE,
	.features = VNET_BASE_FEATURES,
	.config_read = vnet_config_read,
	.activate = vnet_activate,
	.queue_notify = vnet_queue_notify,
	.reset = vnet_reset,
	.destroy = vnet_destroy,
	.metrics = vnet_metrics,
};

static const struct virtio_dev_ops vnet_ops_offload = {
	.kind = "net",
	.device_id = 1,
	.num_queues = 2,
	.queue_max = VNET_QUEUE_SIZE,
	.config_size = VNET_CONFIG_SIZE,
	.features = VNET_BASE_FEATURES | VNET_OFFLOAD_FEATURES,
	.config_read = vnet_config_read,
	.activate = vnet_activate,
	.queue_notify = vnet_queue_notify,
	.reset = vnet_reset,
	.destroy = vnet_destroy,
	.metrics = vnet_metrics,
};

int vnet_open(struct net_backend *be, const uint8_t mac[6], struct virtio_dev **out)
{
	struct vnet *v = calloc(1, sizeof(*v));
	uint16_t status = htole16(VIRTIO_NET_S_LINK_UP);

	if (v)
		v->frame = malloc(VNET_MAX_FRAME);
	if (!v || !v->frame) {
		free(v);
		be->ops->destroy(be);
		return cove_fail(-ENOMEM, "net: out of memory");
	}
	v->dev.ops = be->ops->offloads ? &vnet_ops_offload : &vnet_ops_plain;
	v->dev.irqfd = -1;
	v->be = be;
	be->rx_ready = vnet_rx_ready;
	be->rx_arg = v;
	memcpy(v->config + VNET_CFG_MAC, mac, 6);
	memcpy(v->config + VNET_CFG_STATUS, &status, 2);
	*out = &v->dev;
	return 0;
}

int vnet_create(struct vm *vm, struct net_backend *be, const uint8_t mac[6],
		struct virtio_dev **out)
{
	struct virtio_dev *d;
	int err = vnet_open(be, mac, &d);

	if (err < 0)
		return err;
	err = vm_adopt_virtio(vm, d);
	if (err == 0)
		*out = d;
	return err;
}

void vnet_default_mac(const char *seed, unsigned index, uint8_t mac[6])
{
	uint64_t h = 0xcbf29ce484222325ull;	/* FNV-1a */

	for (const char *p = seed; *p; p++)
		h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
	for (int i = 0; i < 4; i++)
		h = (h ^ ((index >> (8 * i)) & 0xff)) * 0x100000001b3ull;
	mac[0] = 0x02;		/* locally administered, unicast */
	for (int i = 1; i < 6; i++)
		mac[i] = h >> (8 * (i - 1));
}
