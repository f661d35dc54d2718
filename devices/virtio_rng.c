#include "virtio_rng.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "log.h"
#include "virtio_dev.h"
#include "vm.h"

struct vrng {
	struct virtio_dev dev;		/* first */
	struct virtq_elem elem;
};

/* Fill up to `len` bytes of the writable buffers with random bytes.
 * Returns the bytes written (short only if getrandom fails). */
static uint32_t fill(struct vrng *r, const struct virtq_elem *e, uint32_t len)
{
	uint32_t done = 0;

	for (unsigned i = e->nread; i < (unsigned)e->nread + e->nwrite && done < len; i++) {
		size_t l = e->iov[i].iov_len;
		size_t off = 0;

		if (l > len - done)
			l = len - done;
		while (off < l) {
			/* The urandom pool: never blocks once the host booted. */
			ssize_t n = getrandom((uint8_t *)e->iov[i].iov_base + off, l - off,
					      GRND_NONBLOCK);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				log_ratelimited(&r->dev.log_budget, r->dev.name, "getrandom: %s",
						strerror(errno));
				return done + off;
			}
			off += n;
		}
		done += l;
	}
	return done;
}

/* Each chain gets at most VRNG_MAX_FILL bytes, and there are at most a
 * queue's worth of chains available: the work per kick is bounded. */
static void vrng_queue_notify(struct virtio_dev *d, uint32_t q)
{
	struct vrng *r = (struct vrng *)d;
	struct virtq *vq = &d->vqs[q];
	bool answered = false;

	for (unsigned n = 0; n < vq->size; n++) {
		int got = virtio_dev_pop(d, vq, &r->elem);
		uint32_t len = 0;

		if (got <= 0 && got != -E2BIG)
			break;
		if (got == -E2BIG || r->elem.nread) {
			/* A device-readable buffer has no meaning here. */
			__atomic_fetch_add(&d->stats.errors, 1, __ATOMIC_RELAXED);
			log_ratelimited(&d->log_budget, d->name, "request with %s",
					got == -E2BIG ? "too many buffers" : "a device-readable buffer");
		} else {
			len = fill(r, &r->elem, r->elem.write_len < VRNG_MAX_FILL ?
				   r->elem.write_len : VRNG_MAX_FILL);
		}
		virtq_push(vq, r->elem.head, len);
		__atomic_fetch_add(&d->stats.requests, 1, __ATOMIC_RELAXED);
		answered = true;
	}
	if (answered)
		virtio_dev_notify(d, vq);
}

static void vrng_destroy(struct virtio_dev *d)
{
	free(d);
}

static const struct virtio_dev_ops vrng_ops = {
	.kind = "rng",
	.device_id = 4,
	.num_queues = 1,
	.queue_max = VRNG_QUEUE_SIZE,
	.config_size = 0,
	.features = 0,
	/* No activate or reset: every request is answered at once. */
	.queue_notify = vrng_queue_notify,
	.destroy = vrng_destroy,
};

int vrng_open(struct virtio_dev **out)
{
	struct vrng *r = calloc(1, sizeof(*r));

	if (!r)
		return cove_fail(-ENOMEM, "rng: out of memory");
	r->dev.ops = &vrng_ops;
	r->dev.irqfd = -1;
	*out = &r->dev;
	return 0;
}

int vrng_create(struct vm *vm, struct virtio_dev **out)
{
	struct virtio_dev *d = NULL;
	int err = vrng_open(&d);

	if (err == 0)
		err = vm_adopt_virtio(vm, d);
	if (err == 0)
		*out = d;
	return err;
}
