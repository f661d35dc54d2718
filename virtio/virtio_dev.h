/* The transport-independent part of a virtio device: feature negotiation,
 * status, queues, interrupts, counters. A device embeds struct virtio_dev
 * as its first member and supplies a const virtio_dev_ops table. */
#ifndef COVE_VIRTIO_DEV_H
#define COVE_VIRTIO_DEV_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "virtq.h"

#define VIRTIO_MAX_QUEUES 8

/* Device status bits (virtio 1.2, 2.1) */
#define VIRTIO_STATUS_ACKNOWLEDGE	1
#define VIRTIO_STATUS_DRIVER		2
#define VIRTIO_STATUS_DRIVER_OK		4
#define VIRTIO_STATUS_FEATURES_OK	8
#define VIRTIO_STATUS_NEEDS_RESET	64
#define VIRTIO_STATUS_FAILED		128

/* Feature bits every device offers or handles in the core */
#define VIRTIO_F_INDIRECT_DESC	28
#define VIRTIO_F_EVENT_IDX	29
#define VIRTIO_F_VERSION_1	32

/* Interrupt status bits */
#define VIRTIO_ISR_QUEUE	1
#define VIRTIO_ISR_CONFIG	2

struct guest_mem;
struct evloop;
struct virtio_dev;

struct virtio_dev_ops {
	const char *kind;		/* "blk": the transport names it "v" + kind + index, "vblk0" */
	uint32_t device_id;		/* virtio device ID (2 = block) */
	uint32_t num_queues;
	uint16_t queue_max;		/* largest queue size offered */
	uint32_t config_size;		/* bytes of device config space */
	/* Device-specific feature bits offered (the core adds VERSION_1,
	 * EVENT_IDX and INDIRECT_DESC). */
	uint64_t features;
	/* Config space access; off+len <= config_size is checked by the core.
	 * vCPU thread, under the device's transport lock. */
	void (*config_read)(struct virtio_dev *d, uint32_t off, void *data, uint32_t len);
	void (*config_write)(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len);
	/* Driver set DRIVER_OK; the queues that are ready have been validated
	 * (virtq_start). Loop thread. Returning < 0 marks the device NEEDS_RESET. */
	int (*activate)(struct virtio_dev *d);
	/* The driver kicked queue q. Loop thread. */
	void (*queue_notify)(struct virtio_dev *d, uint32_t q);
	/* Back to the initial state: forget queues, drop in-flight work
	 * (completions that arrive later must not touch guest memory). Loop thread. */
	void (*reset)(struct virtio_dev *d);
	/* Free the device; the loop has stopped. */
	void (*destroy)(struct virtio_dev *d);
	/* Optional: device-specific counters for the metrics, written as
	 * JSON members each preceded by a comma. Any thread (counters are
	 * read as they are). */
	void (*metrics)(struct virtio_dev *d, FILE *f);
};

struct virtio_dev_stats {
	uint64_t requests;	/* requests completed */
	uint64_t errors;	/* requests answered with an error status */
	uint64_t guest_errors;	/* protocol violations by the driver */
};

struct virtio_dev {
	const struct virtio_dev_ops *ops;
	char name[16];			/* "vblk0" for logs and metrics */
	const struct guest_mem *mem;
	struct evloop *loop;

	uint64_t device_features;	/* ops->features | core bits */
	uint64_t driver_features;	/* accepted at FEATURES_OK */
	uint32_t status;
	uint32_t config_generation;
	uint32_t isr;			/* VIRTIO_ISR_*; atomic */
	int irqfd;			/* eventfd the transport routes to the IRQ */
	bool active;			/* DRIVER_OK seen and activate succeeded */

	struct virtq vqs[VIRTIO_MAX_QUEUES];
	struct virtio_dev_stats stats;
	unsigned log_budget;		/* for log_ratelimited */

	/* Host operations (disk I/O…) started and not yet completed, also
	 * those a reset orphaned; the device keeps it (atomic). A reset waits
	 * for it to reach 0 so no late I/O lands in reclaimed guest memory. */
	uint32_t inflight;
	void *transport;		/* the transport's state, for detach */
};

/* Fill the common part; the transport calls this. ops->features gets the
 * core feature bits added; queues get ops->queue_max entries at most.
 * Setup thread. */
void virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops,
		     const char *name, const struct guest_mem *mem, struct evloop *loop);

/* True when the driver accepted feature bit `bit`. */
static inline bool virtio_has_feature(const struct virtio_dev *d, unsigned bit)
{
	return (d->driver_features >> bit) & 1;
}

/* Publish used buffers of vq to the driver: raises the interrupt when the
 * driver wants one (EVENT_IDX or NO_INTERRUPT respected). Loop thread. */
void virtio_dev_notify(struct virtio_dev *d, struct virtq *vq);

/* The config space changed: bump the generation, raise a config interrupt.
 * Any thread. */
void virtio_dev_config_changed(struct virtio_dev *d);

/* virtq_pop on d's queue vq; when the driver broke the ring protocol it
 * also calls virtio_dev_fail with the reason. Returns what virtq_pop does.
 * Loop thread. */
int virtio_dev_pop(struct virtio_dev *d, struct virtq *vq, struct virtq_elem *e);

/* The driver sent something invalid that the device drops and goes on:
 * count it in guest_errors and log it (rate limited). Loop thread. */
void virtio_dev_guest_error(struct virtio_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The driver broke the protocol: count it, log (rate limited), set
 * NEEDS_RESET and raise a config interrupt; the device stops processing
 * until reset. Loop thread. */
void virtio_dev_fail(struct virtio_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
