#include "virtq.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "guest_mem.h"

/* The driver writes the rings concurrently: every field is read once into
 * a local (atomic loads for the indices, a copy plus a compiler barrier
 * for descriptors) and only the local copy is checked and used. */

static inline uint16_t ld16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static inline uint16_t ld16_acquire(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static inline void st16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static inline void st16_release(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELEASE);
}

/* used_event lives after the avail ring, avail_event after the used ring. */
static inline uint16_t *used_event(const struct virtq *vq)
{
	return &vq->avail->ring[vq->size];
}

static inline uint16_t *avail_event(const struct virtq *vq)
{
	return (uint16_t *)&vq->used->ring[vq->size];
}

/* virtio 1.2, 2.7.10: should the other side be told about new_idx, given
 * it asked at event_idx and we last told it at old? */
static inline bool need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old)
{
	return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old);
}

void virtq_init(struct virtq *vq, uint16_t index, uint16_t max_size)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = index;
	vq->max_size = max_size;
	vq->size = max_size;
}

void virtq_reset(struct virtq *vq)
{
	virtq_init(vq, vq->index, vq->max_size);
}

static int start_fail(struct virtq *vq, int err, const char *why)
{
	vq->err = why;
	vq->started = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	return err;
}

int virtq_start(struct virtq *vq, const struct guest_mem *mem, bool event_idx, bool indirect)
{
	uint32_t n = vq->size;

	vq->started = false;
	vq->broken = false;
	vq->err = NULL;
	if (vq->max_size == 0)
		return start_fail(vq, -EINVAL, "queue does not exist");
	if (n == 0 || n > vq->max_size || (n & (n - 1)))
		return start_fail(vq, -EINVAL, "queue size is not a power of two up to the maximum");
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3))
		return start_fail(vq, -EINVAL, "misaligned ring address");
	vq->desc = gm_ptr(mem, vq->desc_gpa, VRING_DESC_BYTES(n));
	vq->avail = gm_ptr(mem, vq->avail_gpa, VRING_AVAIL_BYTES(n));
	vq->used = gm_ptr(mem, vq->used_gpa, VRING_USED_BYTES(n));
	if (!vq->desc || !vq->avail || !vq->used)
		return start_fail(vq, -EFAULT, "ring outside guest memory");

	vq->mem = mem;
	vq->event_idx = event_idx;
	vq->indirect = indirect;
	vq->last_avail = 0;
	vq->used_idx = 0;
	vq->signalled_used = 0;
	vq->signalled_valid = false;
	st16(&vq->used->flags, 0);
	st16(avail_event(vq), 0);
	st16_release(&vq->used->idx, 0);
	vq->started = true;
	return 0;
}

static int broken(struct virtq *vq, const char *why)
{
	vq->broken = true;
	vq->err = why;
	return -EPROTO;
}

static void read_desc(const uint8_t *src, struct vring_desc *d)
{
	memcpy(d, src, sizeof(*d));
	/* The copy is what we check and use: never re-read guest memory. */
	__asm__ __volatile__("" ::: "memory");
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

/* Walk the chain starting at head; see virtq_pop. */
static int walk_chain(struct virtq *vq, uint16_t head, struct virtq_elem *e)
{
	const uint8_t *table = (const uint8_t *)vq->desc;	/* may be unaligned */
	uint32_t table_size = vq->size;
	uint32_t budget = vq->size;	/* descriptors we may still visit */
	uint32_t idx = head;
	uint64_t total = 0;
	unsigned nseg = 0;
	bool in_indirect = false;
	bool first = true;

	e->head = head;
	e->nread = e->nwrite = 0;
	e->read_len = e->write_len = 0;
	if (head >= vq->size)
		return broken(vq, "head index out of range");

	for (;;) {
		struct vring_desc d;
		void *p;

		if (budget == 0)
			return broken(vq, "descriptor chain loops or is too long");
		budget--;
		read_desc(table + (size_t)idx * sizeof(d), &d);

		if (d.flags & VRING_DESC_F_INDIRECT) {
			if (!vq->indirect)
				return broken(vq, "indirect descriptor without VIRTIO_F_INDIRECT_DESC");
			if (in_indirect)
				return broken(vq, "nested indirect descriptor");
			if (!first || (d.flags & VRING_DESC_F_NEXT))
				return broken(vq, "indirect descriptor in a chain");
			if (d.len == 0 || d.len % sizeof(struct vring_desc))
				return broken(vq, "bad indirect table length");
			table = gm_ptr(vq->mem, d.addr, d.len);
			if (!table)
				return broken(vq, "indirect table outside guest memory");
			table_size = d.len / sizeof(struct vring_desc);
			budget = table_size;
			in_indirect = true;
			idx = 0;
			first = true;
			continue;
		}
		first = false;

		p = gm_ptr(vq->mem, d.addr, d.len);
		if (!p)
			return broken(vq, "buffer outside guest memory");
		total += d.len;
		if (total > UINT32_MAX)
			return broken(vq, "chain length overflows 32 bits");
		if (d.flags & VRING_DESC_F_WRITE) {
			e->write_len += d.len;
		} else {
			if (e->nwrite)
				return broken(vq, "readable descriptor after a writable one");
			e->read_len += d.len;
		}
		if (d.len) {
			if (nseg == VIRTQ_MAX_SEGS)
				return -E2BIG;
			e->iov[nseg].iov_base = p;
			e->iov[nseg].iov_len = d.len;
			nseg++;
			if (d.flags & VRING_DESC_F_WRITE)
				e->nwrite++;
			else
				e->nread++;
		}

		if (!(d.flags & VRING_DESC_F_NEXT))
			return 1;
		idx = d.next;
		if (idx >= table_size)
			return broken(vq, "next index out of range");
	}
}

int virtq_pop(struct virtq *vq, struct virtq_elem *e)
{
	uint16_t avail_idx, head;

	if (vq->broken)
		return -EPROTO;
	if (!vq->started)
		return 0;

	avail_idx = ld16_acquire(&vq->avail->idx);
	if (avail_idx == vq->last_avail) {
		if (!vq->event_idx)
			return 0;
		/* Ask for a kick at the next buffer, then look again: the
		 * driver may have added one before it saw avail_event. */
		st16(avail_event(vq), vq->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = ld16_acquire(&vq->avail->idx);
		if (avail_idx == vq->last_avail)
			return 0;
	}
	if ((uint16_t)(avail_idx - vq->last_avail) > vq->size)
		return broken(vq, "avail index ran more than the queue size ahead");

	head = ld16(&vq->avail->ring[vq->last_avail & (vq->size - 1)]);
	vq->last_avail++;
	return walk_chain(vq, head, e);
}

void virtq_push_n(struct virtq *vq, const uint16_t *heads, const uint32_t *lens, unsigned n)
{
	if (!vq->started || vq->broken)
		return;
	for (unsigned i = 0; i < n; i++) {
		struct vring_used_elem *u =
			&vq->used->ring[(uint16_t)(vq->used_idx + i) & (vq->size - 1)];

		__atomic_store_n(&u->id, htole32(heads[i]), __ATOMIC_RELAXED);
		__atomic_store_n(&u->len, htole32(lens[i]), __ATOMIC_RELAXED);
	}
	vq->used_idx += n;
	/* The elements are visible before the one index that publishes them. */
	st16_release(&vq->used->idx, vq->used_idx);
}

void virtq_push(struct virtq *vq, uint16_t head, uint32_t len)
{
	virtq_push_n(vq, &head, &len, 1);
}

bool virtq_need_notify(struct virtq *vq)
{
	uint16_t old = vq->signalled_used;
	bool valid = vq->signalled_valid;

	if (!vq->started || vq->broken)
		return false;
	/* Our used->idx store must be visible before we read the driver's
	 * used_event / flags, or we can miss its request. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	vq->signalled_used = vq->used_idx;
	vq->signalled_valid = true;
	if (valid && old == vq->used_idx)
		return false;
	if (vq->event_idx)
		return !valid || need_event(ld16(used_event(vq)), vq->used_idx, old);
	return !(ld16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
}
