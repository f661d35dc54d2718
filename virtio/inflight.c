#include "inflight.h"

#include <stdlib.h>
#include <string.h>

void inflight_init(struct inflight *f, struct virtio_dev *dev, size_t req_size)
{
	memset(f, 0, sizeof(*f));
	f->head.next = f->head.prev = &f->head;
	f->size = req_size;
	f->dev = dev;
}

void *inflight_get(struct inflight *f)
{
	struct inflight_link *l = f->free;

	if (l)
		f->free = l->next;
	else
		l = malloc(f->size);
	if (l)
		*l = (struct inflight_link){ 0 };
	return l;
}

void inflight_put(struct inflight *f, void *req)
{
	struct inflight_link *l = req;

	l->next = f->free;
	f->free = l;
}

void inflight_add(struct inflight *f, void *req)
{
	struct inflight_link *l = req;

	f->nactive++;
	l->next = f->head.next;
	l->prev = &f->head;
	f->head.next->prev = l;
	f->head.next = l;
	__atomic_fetch_add(&f->dev->inflight, 1, __ATOMIC_RELEASE);
}

void inflight_del(struct inflight *f, void *req)
{
	struct inflight_link *l = req;

	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = NULL;
	__atomic_fetch_sub(&f->dev->inflight, 1, __ATOMIC_RELEASE);
}

void inflight_orphan_all(struct inflight *f)
{
	for (struct inflight_link *l = f->head.next; l != &f->head; l = l->next)
		l->orphan = true;
	f->nactive = 0;
}

void inflight_free(struct inflight *f)
{
	while (f->head.next != &f->head) {
		struct inflight_link *l = f->head.next;

		inflight_del(f, l);
		free(l);
	}
	while (f->free) {
		struct inflight_link *l = f->free;

		f->free = l->next;
		free(l);
	}
}
