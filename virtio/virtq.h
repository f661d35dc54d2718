/* The device side of a split virtqueue (virtio 1.2, 2.7) with
 * VIRTIO_F_EVENT_IDX and VIRTIO_F_INDIRECT_DESC.
 *
 * The transport fills the configuration (size, ring addresses, ready) while
 * the driver sets the queue up; virtq_start validates it and from then on
 * only the event-loop thread touches the queue. Every chain is validated
 * whole before a device sees it; a driver that breaks the ring protocol
 * makes the queue "broken" until virtq_reset. */
#ifndef COVE_VIRTQ_H
#define COVE_VIRTQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

struct guest_mem;

/* Largest queue size the ring format allows. */
#define VIRTQ_SIZE_LIMIT	32768
/* Most buffers (descriptors) one chain may carry to a device; longer
 * chains are consumed and answered with -E2BIG by virtq_pop. */
#define VIRTQ_MAX_SEGS		256

/* One available chain, validated. iov[0, nread) are the device-readable
 * buffers in chain order, iov[nread, nread + nwrite) the device-writable
 * ones; all are host pointers into guest memory. */
struct virtq_elem {
	uint16_t head;			/* give it back with virtq_push */
	uint16_t nread, nwrite;
	uint32_t read_len, write_len;	/* byte totals */
	struct iovec iov[VIRTQ_MAX_SEGS];
};

/* The ring layout in guest memory (little-endian, virtio 1.2, 2.7). */
#define VRING_DESC_F_NEXT	1
#define VRING_DESC_F_WRITE	2
#define VRING_DESC_F_INDIRECT	4
#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY	1

struct vring_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vring_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];	/* [size], then used_event */
};

struct vring_used_elem {
	uint32_t id;
	uint32_t len;
};

struct vring_used {
	uint16_t flags;
	uint16_t idx;
	struct vring_used_elem ring[];	/* [size], then avail_event */
};

/* Bytes of each ring for a queue of `size` entries, event fields included. */
#define VRING_DESC_BYTES(size)	(16ull * (size))
#define VRING_AVAIL_BYTES(size)	(6ull + 2ull * (size))
#define VRING_USED_BYTES(size)	(6ull + 8ull * (size))

struct virtq {
	/* Configuration: written by the transport (under its lock) only while
	 * the device is not live. */
	uint16_t index;			/* queue number, for messages */
	uint16_t max_size;		/* QueueNumMax; 0: queue does not exist */
	uint32_t size;			/* QueueNum as written by the driver */
	bool ready;			/* QueueReady */
	uint64_t desc_gpa, avail_gpa, used_gpa;

	/* Run state: the loop thread's after virtq_start. */
	bool started;
	bool broken;			/* protocol error; cleared by virtq_reset */
	bool event_idx, indirect;	/* negotiated features */
	const struct guest_mem *mem;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail;		/* next avail ring slot to consume */
	uint16_t used_idx;		/* next used ring slot to fill (== used->idx) */
	uint16_t signalled_used;	/* used_idx at the last notify decision */
	bool signalled_valid;
	const char *err;		/* why the queue broke or failed to start */
};

/* Set up queue `index` with at most max_size entries (a power of two
 * <= VIRTQ_SIZE_LIMIT, or 0 for "no such queue"), unconfigured. Setup
 * thread. */
void virtq_init(struct virtq *vq, uint16_t index, uint16_t max_size);

/* Forget the configuration and run state (device reset); QueueNum returns
 * to max_size. Loop thread, or any thread while the queue is not started. */
void virtq_reset(struct virtq *vq);

/* Validate the configuration and attach the rings: size a power of two
 * between 1 and max_size, desc/avail/used rings (with their event fields)
 * each inside guest memory and aligned 16/2/4. Initialises the used ring
 * header and the device's indices. 0, or -EINVAL (bad size or alignment) or
 * -EFAULT (ring outside memory) with vq->err set. Loop thread. */
int virtq_start(struct virtq *vq, const struct guest_mem *mem, bool event_idx, bool indirect);

/* Take the next available chain and validate it whole: head and next
 * indices below the table size, at most the table size of descriptors,
 * INDIRECT only on a lone descriptor (not chained, not nested) with a
 * non-empty table whose length is a multiple of 16, each buffer inside
 * guest memory, readable before writable, total length within 32 bits; and
 * that avail->idx is at most the queue size ahead. With EVENT_IDX, when the
 * queue is empty it publishes avail_event and checks again, so the driver
 * kicks for the next buffer.
 * Returns 1 with *e filled, 0 when empty (or not started), -E2BIG when the
 * chain has more than VIRTQ_MAX_SEGS buffers (e->head is set and the chain
 * is consumed: push it back), or -EPROTO when the driver broke the protocol
 * (vq->err says how; the queue is broken until reset). Loop thread. */
int virtq_pop(struct virtq *vq, struct virtq_elem *e);

/* Give chain `head` back with `len` bytes written to its writable buffers,
 * and publish used->idx (release). Nothing happens on a broken or stopped
 * queue. Loop thread. */
void virtq_push(struct virtq *vq, uint16_t head, uint32_t len);

/* Give back n chains (heads[i] with lens[i] bytes written; n at most the
 * queue size) with a single used->idx update, so the driver sees all of
 * them used or none: virtio-net's mergeable receive buffers must be (virtio
 * 1.2, 5.1.6.4). Nothing happens on a broken or stopped queue. Loop thread. */
void virtq_push_n(struct virtq *vq, const uint16_t *heads, const uint32_t *lens, unsigned n);

/* After pushes: does the driver want an interrupt? Honours EVENT_IDX
 * (used_event) or else VRING_AVAIL_F_NO_INTERRUPT, after a full barrier.
 * False when nothing was pushed since the previous call. Loop thread. */
bool virtq_need_notify(struct virtq *vq);

#endif
