#include "guest_vq.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "virtio_dev.h"
#include "virtio_mmio.h"

int gvq_init(struct guest_vq *g, struct fake_mem *fm, uint16_t size)
{
	memset(g, 0, sizeof(*g));
	g->fm = fm;
	g->size = size;
	g->desc_gpa = fake_mem_alloc(fm, VRING_DESC_BYTES(size), 16);
	g->avail_gpa = fake_mem_alloc(fm, VRING_AVAIL_BYTES(size), 2);
	g->used_gpa = fake_mem_alloc(fm, VRING_USED_BYTES(size), 4);
	if (!g->desc_gpa || !g->avail_gpa || !g->used_gpa)
		return -ENOMEM;
	g->desc = fake_mem_ptr(fm, g->desc_gpa);
	g->avail = fake_mem_ptr(fm, g->avail_gpa);
	g->used = fake_mem_ptr(fm, g->used_gpa);
	return 0;
}

void gvq_config(const struct guest_vq *g, struct virtq *vq)
{
	vq->size = g->size;
	vq->desc_gpa = g->desc_gpa;
	vq->avail_gpa = g->avail_gpa;
	vq->used_gpa = g->used_gpa;
	vq->ready = true;
}

void gvq_set_desc(struct guest_vq *g, uint16_t i, uint64_t addr, uint32_t len,
		  uint16_t flags, uint16_t next)
{
	g->desc[i] = (struct vring_desc){ addr, len, flags, next };
}

void gvq_publish(struct guest_vq *g, uint16_t head)
{
	g->avail->ring[g->avail_idx & (g->size - 1)] = head;
	g->avail_idx++;
	__atomic_store_n(&g->avail->idx, g->avail_idx, __ATOMIC_RELEASE);
}

static void fill_table(struct vring_desc *t, uint16_t first, uint16_t tsize,
		       const struct gvq_buf *rd, unsigned nrd,
		       const struct gvq_buf *wr, unsigned nwr)
{
	unsigned n = nrd + nwr;

	for (unsigned k = 0; k < n; k++) {
		uint16_t i = (first + k) & (tsize - 1);
		const struct gvq_buf *b = k < nrd ? &rd[k] : &wr[k - nrd];
		uint16_t flags = k < nrd ? 0 : VRING_DESC_F_WRITE;
		if (k + 1 < n)
			flags |= VRING_DESC_F_NEXT;
		t[i] = (struct vring_desc){ b->gpa, b->len, flags, (first + k + 1) & (tsize - 1) };
	}
}

uint16_t gvq_add(struct guest_vq *g, const struct gvq_buf *rd, unsigned nrd,
		 const struct gvq_buf *wr, unsigned nwr)
{
	uint16_t head = g->next_desc;

	fill_table(g->desc, head, g->size, rd, nrd, wr, nwr);
	g->next_desc = (head + nrd + nwr) & (g->size - 1);
	gvq_publish(g, head);
	return head;
}

uint16_t gvq_add_indirect(struct guest_vq *g, const struct gvq_buf *rd, unsigned nrd,
			  const struct gvq_buf *wr, unsigned nwr)
{
	unsigned n = nrd + nwr;
	uint16_t tsize = 1;
	uint64_t tgpa;
	uint16_t head = g->next_desc;

	while (tsize < n)
		tsize <<= 1;
	tgpa = fake_mem_alloc(g->fm, 16ull * n, 16);
	/* fill_table wraps at a power of two; n entries from 0 never wrap */
	fill_table(fake_mem_ptr(g->fm, tgpa), 0, tsize, rd, nrd, wr, nwr);
	gvq_set_desc(g, head, tgpa, 16 * n, VRING_DESC_F_INDIRECT, 0);
	g->next_desc = (head + 1) & (g->size - 1);
	gvq_publish(g, head);
	return head;
}

bool gvq_get_used(struct guest_vq *g, uint32_t *id, uint32_t *len)
{
	uint16_t idx = __atomic_load_n(&g->used->idx, __ATOMIC_ACQUIRE);
	const struct vring_used_elem *u;

	if (idx == g->last_used)
		return false;
	u = &g->used->ring[g->last_used & (g->size - 1)];
	*id = u->id;
	*len = u->len;
	g->last_used++;
	return true;
}

bool gvq_wait_used(struct guest_vq *g, uint32_t *id, uint32_t *len, int timeout_ms)
{
	struct timespec ts = { 0, 100 * 1000 };

	for (int i = 0; i < timeout_ms * 10; i++) {
		if (gvq_get_used(g, id, len))
			return true;
		nanosleep(&ts, NULL);
	}
	return gvq_get_used(g, id, len);
}

void gvq_set_used_event(struct guest_vq *g, uint16_t v)
{
	__atomic_store_n(&g->avail->ring[g->size], v, __ATOMIC_SEQ_CST);
}

uint16_t gvq_avail_event(const struct guest_vq *g)
{
	return __atomic_load_n((uint16_t *)&g->used->ring[g->size], __ATOMIC_SEQ_CST);
}

void gvq_set_avail_flags(struct guest_vq *g, uint16_t flags)
{
	__atomic_store_n(&g->avail->flags, flags, __ATOMIC_SEQ_CST);
}

uint32_t mmio_rd(struct virtio_mmio *m, uint64_t off)
{
	uint32_t v;

	virtio_mmio_read(m, off, &v, 4);
	return v;
}

void mmio_wr(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	virtio_mmio_write(m, off, &v, 4);
}

uint32_t gvq_mmio_init(struct virtio_mmio *m, uint64_t features, struct guest_vq *vqs, unsigned n)
{
	uint32_t s = VIRTIO_STATUS_ACKNOWLEDGE;

	mmio_wr(m, VIRTIO_MMIO_STATUS, 0);
	mmio_wr(m, VIRTIO_MMIO_STATUS, s);
	s |= VIRTIO_STATUS_DRIVER;
	mmio_wr(m, VIRTIO_MMIO_STATUS, s);
	mmio_wr(m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mmio_wr(m, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	mmio_wr(m, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mmio_wr(m, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
	s |= VIRTIO_STATUS_FEATURES_OK;
	mmio_wr(m, VIRTIO_MMIO_STATUS, s);
	if (!(mmio_rd(m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
		return mmio_rd(m, VIRTIO_MMIO_STATUS);
	for (unsigned q = 0; q < n; q++) {
		const struct guest_vq *g = &vqs[q];
		mmio_wr(m, VIRTIO_MMIO_QUEUE_SEL, q);
		mmio_wr(m, VIRTIO_MMIO_QUEUE_NUM, g->size);
		mmio_wr(m, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)g->desc_gpa);
		mmio_wr(m, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(g->desc_gpa >> 32));
		mmio_wr(m, VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)g->avail_gpa);
		mmio_wr(m, VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(g->avail_gpa >> 32));
		mmio_wr(m, VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)g->used_gpa);
		mmio_wr(m, VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(g->used_gpa >> 32));
		mmio_wr(m, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	s |= VIRTIO_STATUS_DRIVER_OK;
	mmio_wr(m, VIRTIO_MMIO_STATUS, s);
	return mmio_rd(m, VIRTIO_MMIO_STATUS);
}
