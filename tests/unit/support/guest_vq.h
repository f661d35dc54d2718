/* The guest side of a split virtqueue, for unit tests and fuzzers: lays
 * the rings out in fake guest memory, adds chains (direct or through an
 * indirect table), publishes them and reads used entries back; plus a
 * minimal driver for the virtio-mmio register protocol. */
#ifndef COVE_TEST_GUEST_VQ_H
#define COVE_TEST_GUEST_VQ_H

#include <stdbool.h>
#include <stdint.h>

#include "fake_mem.h"
#include "virtq.h"

struct virtio_mmio;

struct gvq_buf {
	uint64_t gpa;
	uint32_t len;
};

struct guest_vq {
	struct fake_mem *fm;
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t avail_idx;	/* driver's copy of avail->idx */
	uint16_t last_used;	/* next used entry to read */
	uint16_t next_desc;	/* descriptors are handed out round-robin */
};

/* Lay out rings for a queue of size entries (a power of two). 0 or -ENOMEM. */
int gvq_init(struct guest_vq *g, struct fake_mem *fm, uint16_t size);

/* Copy size, ring addresses and ready=1 into a device-side virtq. */
void gvq_config(const struct guest_vq *g, struct virtq *vq);

/* Raw access for malformed chains. */
void gvq_set_desc(struct guest_vq *g, uint16_t i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next);
/* Put head in the next avail slot and bump avail->idx (release). */
void gvq_publish(struct guest_vq *g, uint16_t head);

/* A chain of nrd device-readable then nwr device-writable buffers in fresh
 * descriptors, published. Returns the head. */
uint16_t gvq_add(struct guest_vq *g, const struct gvq_buf *rd, unsigned nrd,
		 const struct gvq_buf *wr, unsigned nwr);
/* The same through an indirect table allocated in fake memory. */
uint16_t gvq_add_indirect(struct guest_vq *g, const struct gvq_buf *rd, unsigned nrd,
			  const struct gvq_buf *wr, unsigned nwr);

/* The next used entry, if the device published one. */
bool gvq_get_used(struct guest_vq *g, uint32_t *id, uint32_t *len);
/* Wait up to timeout_ms for a used entry (the device runs elsewhere). */
bool gvq_wait_used(struct guest_vq *g, uint32_t *id, uint32_t *len, int timeout_ms);

void gvq_set_used_event(struct guest_vq *g, uint16_t v);
uint16_t gvq_avail_event(const struct guest_vq *g);
void gvq_set_avail_flags(struct guest_vq *g, uint16_t flags);

/* 32-bit register access through the transport's handlers. */
uint32_t mmio_rd(struct virtio_mmio *m, uint64_t off);
void mmio_wr(struct virtio_mmio *m, uint64_t off, uint32_t v);

/* The driver's initialisation (virtio 1.2, 3.1.1): reset, ACKNOWLEDGE,
 * DRIVER, write features, FEATURES_OK (stops if refused), program and
 * enable the n queues, DRIVER_OK. Returns the status read at the end. */
uint32_t gvq_mmio_init(struct virtio_mmio *m, uint64_t features, struct guest_vq *vqs, unsigned n);

#endif
