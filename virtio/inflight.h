/* The requests a device has in flight: answered out of order as their I/O
 * completes, recalled by nothing (a reset only orphans them), and recycled
 * through a free list. A request struct has a struct inflight_link as its
 * first member. Event-loop thread only, but for the device's atomic
 * in-flight count, which other threads read. */
#ifndef COVE_INFLIGHT_H
#define COVE_INFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

#include "virtio_dev.h"

struct inflight_link {
	struct inflight_link *prev, *next;	/* in flight (or the free list) */
	bool orphan;				/* the device was reset meanwhile */
};

struct inflight {
	struct inflight_link head;	/* of the circular list in flight */
	struct inflight_link *free;
	unsigned nactive;		/* in flight and not orphaned */
	size_t size;			/* of a request */
	struct virtio_dev *dev;
};

void inflight_init(struct inflight *f, struct virtio_dev *dev, size_t req_size);
/* A request with a clean link (the rest as it was left); NULL without memory. */
void *inflight_get(struct inflight *f);
void inflight_put(struct inflight *f, void *req);
/* Into the list, counted active and in the device's count. */
void inflight_add(struct inflight *f, void *req);
/* Out of the list and the device's count (nactive is the caller's). */
void inflight_del(struct inflight *f, void *req);
/* At a reset: every request in flight orphaned, none active. */
void inflight_orphan_all(struct inflight *f);
/* The loop has stopped: no completion will come; free everything. */
void inflight_free(struct inflight *f);

#endif
