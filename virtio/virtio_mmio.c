#include "virtio_mmio.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "arch.h"
#include "bus.h"
#include "evloop.h"
#include "log.h"
#include "virtio_dev.h"
#include "vm.h"

/* Status bits the driver may set. */
#define DRIVER_STATUS_BITS (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | \
			    VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK | \
			    VIRTIO_STATUS_FAILED)

/* How long a reset waits for the device's in-flight host I/O. */
#define RESET_DRAIN_NS	(5ull * 1000 * 1000 * 1000)

struct virtio_mmio_kick {
	struct evloop_watch w;
	struct virtio_mmio *m;
	uint32_t q;
	int fd;
	bool routed;		/* KVM ioeventfd assigned */
};

struct virtio_mmio {
	struct virtio_dev *dev;
	struct evloop *loop;
	pthread_mutex_t lock;	/* everything below, and the queue config */

	uint32_t dev_feat_sel, drv_feat_sel, queue_sel, shm_sel;
	uint64_t driver_features;	/* as written, until FEATURES_OK */
	bool features_bad;		/* bits written in a word we never offer */

	struct virtio_mmio_kick kicks[VIRTIO_MAX_QUEUES];
	unsigned nqueues;

	/* set by attach */
	struct vm *vm;
	struct arch_mmio_dev slot;
	bool irq_routed;
	unsigned log_budget;
};

static void guest_error(struct virtio_mmio *m, const char *what, uint64_t off, uint64_t val)
{
	__atomic_fetch_add(&m->dev->stats.guest_errors, 1, __ATOMIC_RELAXED);
	log_ratelimited(&m->log_budget, m->dev->name, "%s (offset 0x%03llx, value 0x%llx)",
			what, (unsigned long long)off, (unsigned long long)val);
}

static uint32_t load_status(const struct virtio_dev *d)
{
	return __atomic_load_n(&d->status, __ATOMIC_ACQUIRE);
}

static void on_loop(struct virtio_mmio *m, void (*fn)(void *), void *arg)
{
	if (m->loop)
		evloop_call(m->loop, fn, arg);
	else
		fn(arg);
}

/* ---- data-plane transitions, on the loop thread ---- */

static void activate_on_loop(void *arg)
{
	struct virtio_mmio *m = arg;
	struct virtio_dev *d = m->dev;
	bool event_idx = virtio_has_feature(d, VIRTIO_F_EVENT_IDX);
	bool indirect = virtio_has_feature(d, VIRTIO_F_INDIRECT_DESC);
	int r;

	for (unsigned q = 0; q < m->nqueues; q++) {
		struct virtq *vq = &d->vqs[q];
		if (!vq->ready)
			continue;
		if (virtq_start(vq, d->mem, event_idx, indirect) < 0) {
			virtio_dev_fail(d, "queue %u: %s", q, vq->err);
			return;
		}
	}
	r = d->ops->activate ? d->ops->activate(d) : 0;
	if (r < 0) {
		virtio_dev_fail(d, "activation failed: %s", strerror(-r));
		return;
	}
	d->active = true;
	/* Buffers made available before DRIVER_OK had their kick ignored. */
	for (unsigned q = 0; q < m->nqueues; q++)
		virtio_mmio_kick(m, q);
}

struct reset_call {
	struct virtio_mmio *m;
	bool on_loop;		/* ran on the loop thread (not inline) */
};

static void reset_on_loop(void *arg)
{
	struct reset_call *c = arg;
	struct virtio_mmio *m = c->m;
	struct virtio_dev *d = m->dev;

	c->on_loop = m->loop && evloop_on_loop(m->loop);
	if (d->ops->reset)
		d->ops->reset(d);
	d->active = false;
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		virtq_reset(&d->vqs[q]);
	d->driver_features = 0;
	__atomic_store_n(&d->isr, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&d->status, 0, __ATOMIC_SEQ_CST);
}

/* Under m->lock, on a vCPU thread. */
static void do_reset(struct virtio_mmio *m)
{
	struct virtio_dev *d = m->dev;
	struct reset_call c = { .m = m };
	struct timespec ts = { 0, 100 * 1000 };
	uint64_t waited = 0;

	on_loop(m, reset_on_loop, &c);
	/* Orphaned host I/O may still write into guest memory the driver is
	 * about to reuse: wait for it (like a drain) before the reset is
	 * visible as complete. Only a running loop completes it; a stopped
	 * one (the VM is ending) never will. */
	while (c.on_loop && __atomic_load_n(&d->inflight, __ATOMIC_ACQUIRE) &&
	       waited < RESET_DRAIN_NS) {
		nanosleep(&ts, NULL);
		waited += ts.tv_nsec;
	}
	if (c.on_loop && __atomic_load_n(&d->inflight, __ATOMIC_ACQUIRE))
		log_ratelimited(&m->log_budget, d->name,
				"reset: %u host operations still in flight",
				__atomic_load_n(&d->inflight, __ATOMIC_RELAXED));
	m->dev_feat_sel = m->drv_feat_sel = m->queue_sel = m->shm_sel = 0;
	m->driver_features = 0;
	m->features_bad = false;
}

void virtio_mmio_kick(struct virtio_mmio *m, uint32_t q)
{
	struct virtio_dev *d = m->dev;

	if (q >= m->nqueues || !d->active || !d->vqs[q].started)
		return;
	if (load_status(d) & VIRTIO_STATUS_NEEDS_RESET)
		return;
	if (d->ops->queue_notify)
		d->ops->queue_notify(d, q);
}

static void kick_cb(struct evloop_watch *w, uint32_t revents)
{
	struct virtio_mmio_kick *k = w->arg;
	uint64_t v;

	(void)revents;
	if (read(k->fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_ratelimited(&k->m->log_budget, k->m->dev->name, "kick eventfd: %s",
				strerror(errno));
	virtio_mmio_kick(k->m, k->q);
}

/* ---- registers, on vCPU threads under m->lock ---- */

static bool features_acceptable(const struct virtio_mmio *m)
{
	const struct virtio_dev *d = m->dev;

	return !m->features_bad && !(m->driver_features & ~d->device_features) &&
	       (m->driver_features & (1ull << VIRTIO_F_VERSION_1));
}

static void write_status(struct virtio_mmio *m, uint32_t val)
{
	struct virtio_dev *d = m->dev;
	uint32_t old, cur, want, added;

	if (val == 0) {
		do_reset(m);
		return;
	}
	old = load_status(d);
	cur = old & DRIVER_STATUS_BITS;
	want = val & DRIVER_STATUS_BITS;
	if (cur & ~want) {
		guest_error(m, "status write clears bits without a reset", VIRTIO_MMIO_STATUS, val);
		return;
	}
	added = want & ~cur;
	if (((added & VIRTIO_STATUS_DRIVER) && !(want & VIRTIO_STATUS_ACKNOWLEDGE)) ||
	    ((added & VIRTIO_STATUS_FEATURES_OK) && !(want & VIRTIO_STATUS_DRIVER)) ||
	    ((added & VIRTIO_STATUS_DRIVER_OK) && !(want & VIRTIO_STATUS_FEATURES_OK))) {
		guest_error(m, "status bits set out of order", VIRTIO_MMIO_STATUS, val);
		return;
	}
	if (added & VIRTIO_STATUS_FEATURES_OK) {
		if (features_acceptable(m)) {
			d->driver_features = m->driver_features;
		} else {
			/* 3.1.1: the driver reads FEATURES_OK back and gives up. */
			want &= ~(VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
			added &= ~(VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
		}
	}
	/* Keep the device's own bits (NEEDS_RESET, set by the loop) intact. */
	do {
		old = load_status(d);
	} while (!__atomic_compare_exchange_n(&d->status, &old,
					      want | (old & ~DRIVER_STATUS_BITS), false,
					      __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
	if ((added & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_NEEDS_RESET))
		on_loop(m, activate_on_loop, m);
}

static uint32_t read_reg(struct virtio_mmio *m, uint64_t off)
{
	struct virtio_dev *d = m->dev;
	struct virtq *vq = m->queue_sel < m->nqueues ? &d->vqs[m->queue_sel] : NULL;

	switch (off) {
	case VIRTIO_MMIO_MAGIC_VALUE:
		return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return d->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		if (m->dev_feat_sel > 1)
			return 0;
		return (uint32_t)(d->device_features >> (32 * m->dev_feat_sel));
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		return vq ? vq->max_size : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		return vq ? vq->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return __atomic_load_n(&d->isr, __ATOMIC_SEQ_CST);
	case VIRTIO_MMIO_STATUS:
		return load_status(d);
	case VIRTIO_MMIO_SHM_LEN_LOW:
	case VIRTIO_MMIO_SHM_LEN_HIGH:
		return 0xffffffff;	/* no shared memory regions */
	case VIRTIO_MMIO_SHM_BASE_LOW:
	case VIRTIO_MMIO_SHM_BASE_HIGH:
		return 0;
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return __atomic_load_n(&d->config_generation, __ATOMIC_SEQ_CST);
	default:
		return 0;
	}
}

static void set_half(uint64_t *p, bool high, uint32_t val)
{
	if (high)
		*p = (*p & 0xffffffffull) | ((uint64_t)val << 32);
	else
		*p = (*p & ~0xffffffffull) | val;
}

static void write_queue_reg(struct virtio_mmio *m, uint64_t off, uint32_t val)
{
	struct virtio_dev *d = m->dev;
	struct virtq *vq;

	if (load_status(d) & VIRTIO_STATUS_DRIVER_OK) {
		guest_error(m, "queue register written after DRIVER_OK", off, val);
		return;
	}
	if (m->queue_sel >= m->nqueues) {
		guest_error(m, "queue register written for a queue that does not exist",
			    off, m->queue_sel);
		return;
	}
	vq = &d->vqs[m->queue_sel];
	switch (off) {
	case VIRTIO_MMIO_QUEUE_NUM:
		vq->size = val;		/* checked at DRIVER_OK */
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		vq->ready = val & 1;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		set_half(&vq->desc_gpa, off == VIRTIO_MMIO_QUEUE_DESC_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
		set_half(&vq->avail_gpa, off == VIRTIO_MMIO_QUEUE_DRIVER_HIGH, val);
		break;
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		set_half(&vq->used_gpa, off == VIRTIO_MMIO_QUEUE_DEVICE_HIGH, val);
		break;
	}
}

static void notify(struct virtio_mmio *m, uint32_t q)
{
	uint64_t one = 1;

	if (q >= m->nqueues) {
		guest_error(m, "notify for a queue that does not exist", VIRTIO_MMIO_QUEUE_NOTIFY, q);
		return;
	}
	if (!m->loop) {
		virtio_mmio_kick(m, q);
		return;
	}
	if (write(m->kicks[q].fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_ratelimited(&m->log_budget, m->dev->name, "kick eventfd: %s", strerror(errno));
}

static void write_reg(struct virtio_mmio *m, uint64_t off, uint32_t val)
{
	struct virtio_dev *d = m->dev;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		m->dev_feat_sel = val;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		if (load_status(d) & VIRTIO_STATUS_FEATURES_OK) {
			guest_error(m, "features written after FEATURES_OK", off, val);
			break;
		}
		if (m->drv_feat_sel <= 1)
			set_half(&m->driver_features, m->drv_feat_sel == 1, val);
		else if (val)
			m->features_bad = true;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		m->drv_feat_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		m->queue_sel = val;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
	case VIRTIO_MMIO_QUEUE_READY:
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
	case VIRTIO_MMIO_QUEUE_DRIVER_LOW:
	case VIRTIO_MMIO_QUEUE_DRIVER_HIGH:
	case VIRTIO_MMIO_QUEUE_DEVICE_LOW:
	case VIRTIO_MMIO_QUEUE_DEVICE_HIGH:
		write_queue_reg(m, off, val);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		notify(m, val);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		__atomic_fetch_and(&d->isr, ~val, __ATOMIC_SEQ_CST);
		break;
	case VIRTIO_MMIO_STATUS:
		write_status(m, val);
		break;
	case VIRTIO_MMIO_SHM_SEL:
		m->shm_sel = val;
		break;
	default:
		guest_error(m, "write to a read-only or unknown register", off, val);
		break;
	}
}

static bool config_range(const struct virtio_mmio *m, uint64_t off, uint32_t len, uint32_t *coff)
{
	uint64_t c = off - VIRTIO_MMIO_CONFIG;

	if (len != 1 && len != 2 && len != 4 && len != 8)
		return false;
	if (c > m->dev->ops->config_size || len > m->dev->ops->config_size - c)
		return false;
	*coff = (uint32_t)c;
	return true;
}

void virtio_mmio_read(struct virtio_mmio *m, uint64_t off, void *data, uint32_t len)
{
	uint32_t coff, v;

	memset(data, 0, len);
	pthread_mutex_lock(&m->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		if (config_range(m, off, len, &coff) && m->dev->ops->config_read)
			m->dev->ops->config_read(m->dev, coff, data, len);
	} else if (len == 4 && !(off & 3)) {
		v = read_reg(m, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&m->lock);
}

void virtio_mmio_write(struct virtio_mmio *m, uint64_t off, const void *data, uint32_t len)
{
	uint32_t coff, v;

	pthread_mutex_lock(&m->lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		if (config_range(m, off, len, &coff) && m->dev->ops->config_write)
			m->dev->ops->config_write(m->dev, coff, data, len);
	} else if (len == 4 && !(off & 3)) {
		memcpy(&v, data, 4);
		write_reg(m, off, v);
	} else {
		guest_error(m, "register write that is not 32-bit and aligned", off, len);
	}
	pthread_mutex_unlock(&m->lock);
}

static void bus_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	virtio_mmio_read(opaque, off, data, len);
}

static void bus_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	virtio_mmio_write(opaque, off, data, len);
}

static const struct bus_ops virtio_mmio_bus_ops = {
	.read = bus_read,
	.write = bus_write,
};

/* ---- life cycle ---- */

/* Close the fds and free m; the device stays. */
static void free_transport(struct virtio_mmio *m)
{
	for (unsigned q = 0; q < m->nqueues; q++)
		if (m->kicks[q].fd >= 0)
			close(m->kicks[q].fd);
	if (m->dev->irqfd >= 0)
		close(m->dev->irqfd);
	m->dev->irqfd = -1;
	m->dev->transport = NULL;
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* The transport without watches; nothing refers to it yet. */
static int transport_new(struct virtio_dev *dev, const char *name, const struct guest_mem *mem,
			 struct evloop *loop, struct virtio_mmio **out)
{
	const struct virtio_dev_ops *ops = dev->ops;
	struct virtio_mmio *m;
	int err;

	if (!ops || ops->num_queues > VIRTIO_MAX_QUEUES || ops->queue_max == 0 ||
	    ops->queue_max > VIRTQ_SIZE_LIMIT || (ops->queue_max & (ops->queue_max - 1)))
		return cove_fail(-EINVAL, "%s: bad virtio device description", name);
	m = calloc(1, sizeof(*m));
	if (!m)
		return cove_fail(-ENOMEM, "%s: out of memory", name);
	virtio_dev_init(dev, ops, name, mem, loop);
	m->dev = dev;
	m->loop = loop;
	m->nqueues = ops->num_queues;
	pthread_mutex_init(&m->lock, NULL);
	for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++)
		m->kicks[q].fd = -1;

	for (unsigned q = 0; q < m->nqueues; q++) {
		struct virtio_mmio_kick *k = &m->kicks[q];
		k->m = m;
		k->q = q;
		k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (k->fd < 0) {
			err = -errno;
			goto fail;
		}
	}
	dev->irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dev->irqfd < 0) {
		err = -errno;
		goto fail;
	}
	dev->transport = m;
	*out = m;
	return 0;

fail:
	free_transport(m);
	return cove_fail(err, "%s: eventfd: %s", name, strerror(-err));
}

/* The last step of create/attach. On failure m must stay allocated: the
 * ring still holds the armed polls that point into it (their cancellation
 * completes only when the loop runs), so the caller leaks it. */
static int start_watches(struct virtio_mmio *m)
{
	int err;

	if (!m->loop)
		return 0;
	for (unsigned q = 0; q < m->nqueues; q++) {
		struct virtio_mmio_kick *k = &m->kicks[q];
		k->w.fd = k->fd;
		k->w.events = POLLIN;
		k->w.cb = kick_cb;
		k->w.arg = k;
		err = evloop_watch_start(m->loop, &k->w);
		if (err < 0) {
			for (unsigned i = 0; i < q; i++)
				evloop_watch_stop(&m->kicks[i].w);
			m->dev->transport = NULL;
			return cove_fail(err, "%s: watching the queue kicks: %s", m->dev->name,
					 strerror(-err));
		}
	}
	return 0;
}

int virtio_mmio_create(struct virtio_dev *dev, const char *name, const struct guest_mem *mem,
		       struct evloop *loop, struct virtio_mmio **out)
{
	struct virtio_mmio *m;
	int err = transport_new(dev, name, mem, loop, &m);

	if (err < 0)
		return err;
	err = start_watches(m);
	if (err < 0)
		return err;	/* m is leaked on purpose, see start_watches */
	*out = m;
	return 0;
}

void virtio_mmio_destroy(struct virtio_mmio *m)
{
	struct virtio_dev *d;

	if (!m)
		return;
	d = m->dev;
	free_transport(m);
	if (d->ops->destroy)
		d->ops->destroy(d);
}

static void unroute(struct vm *vm, struct virtio_mmio *m)
{
	uint64_t notify_addr = m->slot.base + VIRTIO_MMIO_QUEUE_NOTIFY;

	for (unsigned q = 0; q < m->nqueues; q++) {
		struct virtio_mmio_kick *k = &m->kicks[q];
		if (k->routed)
			vm_ioeventfd(vm, notify_addr, 4, false, q, k->fd, false);
		k->routed = false;
	}
	if (m->irq_routed)
		vm_irqfd(vm, m->slot.irq, m->dev->irqfd, false);
	m->irq_routed = false;
}

int virtio_mmio_attach(struct vm *vm, struct virtio_dev *dev, const struct arch_mmio_dev *slot)
{
	uint64_t notify_addr = slot->base + VIRTIO_MMIO_QUEUE_NOTIFY;
	struct virtio_mmio *m;
	char name[16];
	int index = 0, err;

	if (!dev->ops)
		return cove_fail(-EINVAL, "virtio device without ops");
	for (int i = 0; i < vm->nvdevs; i++)
		if (vm->vdevs[i] && vm->vdevs[i] != dev &&
		    !strcmp(vm->vdevs[i]->ops->kind, dev->ops->kind))
			index++;
	snprintf(name, sizeof(name), "v%s%d", dev->ops->kind, index);
	if (slot->size < VIRTIO_MMIO_CONFIG + (uint64_t)dev->ops->config_size)
		return cove_fail(-EINVAL, "%s: MMIO slot too small", name);

	err = transport_new(dev, name, &vm->mem, vm->loop, &m);
	if (err < 0)
		return err;
	m->vm = vm;
	m->slot = *slot;
	for (unsigned q = 0; q < m->nqueues; q++) {
		err = vm_ioeventfd(vm, notify_addr, 4, false, q, m->kicks[q].fd, true);
		if (err < 0)
			goto fail;
		m->kicks[q].routed = true;
	}
	err = vm_irqfd(vm, slot->irq, dev->irqfd, true);
	if (err < 0)
		goto fail;
	m->irq_routed = true;
	err = bus_register(&vm->mmio, slot->base, slot->size, &virtio_mmio_bus_ops, m);
	if (err < 0) {
		cove_fail(err, "%s: MMIO range 0x%llx: %s", name,
			  (unsigned long long)slot->base, strerror(-err));
		goto fail;
	}
	/* Last, and m leaks if it fails: the bus cannot unregister, and the
	 * ring may hold polls that point into m. The VM never runs then. */
	return start_watches(m);

fail:
	{
		/* unroute's own failures must not hide the first message */
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", cove_last_error());
		unroute(vm, m);
		free_transport(m);
		return cove_fail(err, "%s", msg);
	}
}

void virtio_mmio_detach(struct vm *vm, struct virtio_dev *dev)
{
	struct virtio_mmio *m;

	if (!dev)
		return;
	m = dev->transport;
	if (m) {
		char msg[256];
		snprintf(msg, sizeof(msg), "%s", cove_last_error());
		unroute(vm, m);
		cove_fail(0, "%s", msg);
		virtio_mmio_destroy(m);
	} else if (dev->ops && dev->ops->destroy) {
		dev->ops->destroy(dev);
	}
}
