#include "virtio_dev.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

void virtio_dev_init(struct virtio_dev *d, const struct virtio_dev_ops *ops,
		     const char *name, const struct guest_mem *mem, struct evloop *loop)
{
	d->ops = ops;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->mem = mem;
	d->loop = loop;
	d->device_features = ops->features | (1ull << VIRTIO_F_VERSION_1) |
			     (1ull << VIRTIO_F_EVENT_IDX) | (1ull << VIRTIO_F_INDIRECT_DESC);
	d->driver_features = 0;
	d->status = 0;
	d->config_generation = 0;
	d->isr = 0;
	d->irqfd = -1;
	d->active = false;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		virtq_init(&d->vqs[q], q, q < ops->num_queues ? ops->queue_max : 0);
	memset(&d->stats, 0, sizeof(d->stats));
	d->log_budget = 0;
	d->inflight = 0;
}

static void raise_irq(struct virtio_dev *d, uint32_t why)
{
	uint64_t one = 1;

	__atomic_fetch_or(&d->isr, why, __ATOMIC_SEQ_CST);
	if (d->irqfd < 0)
		return;
	/* An eventfd write only fails when the counter would overflow, and
	 * then an interrupt is pending anyway. */
	if (write(d->irqfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_ratelimited(&d->log_budget, d->name, "irqfd: %s", strerror(errno));
}

void virtio_dev_notify(struct virtio_dev *d, struct virtq *vq)
{
	if (virtq_need_notify(vq))
		raise_irq(d, VIRTIO_ISR_QUEUE);
}

void virtio_dev_config_changed(struct virtio_dev *d)
{
	__atomic_fetch_add(&d->config_generation, 1, __ATOMIC_SEQ_CST);
	raise_irq(d, VIRTIO_ISR_CONFIG);
}

int virtio_dev_pop(struct virtio_dev *d, struct virtq *vq, struct virtq_elem *e)
{
	int r = virtq_pop(vq, e);

	if (r == -EPROTO && !(__atomic_load_n(&d->status, __ATOMIC_ACQUIRE) &
			      VIRTIO_STATUS_NEEDS_RESET))
		virtio_dev_fail(d, "queue %u: %s", vq->index, vq->err ? vq->err : "broken");
	return r;
}

void virtio_dev_guest_error(struct virtio_dev *d, const char *fmt, ...)
{
	char msg[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	__atomic_fetch_add(&d->stats.guest_errors, 1, __ATOMIC_RELAXED);
	log_ratelimited(&d->log_budget, d->name, "%s", msg);
}

void virtio_dev_fail(struct virtio_dev *d, const char *fmt, ...)
{
	char msg[200];
	va_list ap;
	uint32_t old;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	virtio_dev_guest_error(d, "driver error: %s; device needs reset", msg);
	old = __atomic_fetch_or(&d->status, VIRTIO_STATUS_NEEDS_RESET, __ATOMIC_SEQ_CST);
	/* 2.1.2: a live device tells the driver with a config interrupt. */
	if ((old & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_NEEDS_RESET))
		raise_irq(d, VIRTIO_ISR_CONFIG);
}
