/* The virtio-mmio transport (virtio 1.2, 4.2; modern, version 2): one
 * register page per device. Register accesses come from vCPU threads and
 * are serialised by a per-device lock; everything that changes the data
 * plane (DRIVER_OK, reset) is handed to the event loop with evloop_call.
 * Queue kicks arrive on one eventfd per queue (a KVM ioeventfd on
 * QueueNotify, datamatch = queue index) watched by the loop; interrupts
 * leave through an eventfd routed to the slot's IRQ (KVM irqfd). */
#ifndef COVE_VIRTIO_MMIO_H
#define COVE_VIRTIO_MMIO_H

#include <stdint.h>

struct arch_mmio_dev;
struct evloop;
struct guest_mem;
struct virtio_dev;
struct virtio_mmio;
struct vm;

/* Register offsets */
#define VIRTIO_MMIO_MAGIC_VALUE		0x000
#define VIRTIO_MMIO_VERSION		0x004
#define VIRTIO_MMIO_DEVICE_ID		0x008
#define VIRTIO_MMIO_VENDOR_ID		0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES	0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL	0x014
#define VIRTIO_MMIO_DRIVER_FEATURES	0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL	0x024
#define VIRTIO_MMIO_QUEUE_SEL		0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX	0x034
#define VIRTIO_MMIO_QUEUE_NUM		0x038
#define VIRTIO_MMIO_QUEUE_READY		0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY	0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS	0x060
#define VIRTIO_MMIO_INTERRUPT_ACK	0x064
#define VIRTIO_MMIO_STATUS		0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW	0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH	0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LOW	0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HIGH	0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LOW	0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HIGH	0x0a4
#define VIRTIO_MMIO_SHM_SEL		0x0ac
#define VIRTIO_MMIO_SHM_LEN_LOW		0x0b0
#define VIRTIO_MMIO_SHM_LEN_HIGH	0x0b4
#define VIRTIO_MMIO_SHM_BASE_LOW	0x0b8
#define VIRTIO_MMIO_SHM_BASE_HIGH	0x0bc
#define VIRTIO_MMIO_CONFIG_GENERATION	0x0fc
#define VIRTIO_MMIO_CONFIG		0x100

#define VIRTIO_MMIO_MAGIC		0x74726976	/* "virt" */
#define VIRTIO_MMIO_VENDOR		0x45564f43	/* "COVE" */

/* Put dev on the VM: name it ("v" + kind + index among devices of its
 * kind, e.g. "vblk0"), create the transport (virtio_mmio_create), route
 * the kick eventfds with vm_ioeventfd (4-byte writes of the queue index to
 * slot->base + QueueNotify), the interrupt eventfd with vm_irqfd(slot->irq),
 * and register the register page on vm->mmio. dev->ops must be set.
 * 0 or -errno with cove_fail's message; on failure everything is undone
 * and dev still belongs to the caller. Setup thread, before vCPUs run. */
int virtio_mmio_attach(struct vm *vm, struct virtio_dev *dev, const struct arch_mmio_dev *slot);

/* Undo attach (ioeventfds, irqfd, fds) and free the device
 * (ops->destroy). The vCPUs and the loop have stopped; call before the
 * VM fd and the event loop are closed. NULL dev is fine. Setup thread. */
void virtio_mmio_detach(struct vm *vm, struct virtio_dev *dev);

/* The transport without KVM (attach uses it; so do tests and fuzzers):
 * virtio_dev_init(dev, dev->ops, name, mem, loop), one non-blocking kick
 * eventfd per queue watched on loop (when loop is not NULL), and the
 * interrupt eventfd in dev->irqfd. Checks the ops (num_queues at most
 * VIRTIO_MAX_QUEUES, queue_max a power of two up to 32768). 0, -EINVAL or
 * -errno. Setup thread (the loop not running yet). */
int virtio_mmio_create(struct virtio_dev *dev, const char *name, const struct guest_mem *mem,
		       struct evloop *loop, struct virtio_mmio **out);

/* Free what create made, then the device (ops->destroy). The loop has
 * stopped or never ran. NULL is fine. Setup thread. */
void virtio_mmio_destroy(struct virtio_mmio *m);

/* A register access at offset off of the page (the bus handlers). len 4
 * for registers below 0x100 (other widths read 0 and are ignored), 1, 2,
 * 4 or 8 for the config space. Unknown registers read 0. vCPU threads,
 * any number at once. */
void virtio_mmio_read(struct virtio_mmio *m, uint64_t off, void *data, uint32_t len);
void virtio_mmio_write(struct virtio_mmio *m, uint64_t off, const void *data, uint32_t len);

/* The driver kicked queue q: run ops->queue_notify if the device is live,
 * not NEEDS_RESET and q is started. What the kick eventfd watch runs; a
 * QueueNotify write that reaches virtio_mmio_write signals the eventfd (or,
 * without a loop, calls this inline). Loop thread. */
void virtio_mmio_kick(struct virtio_mmio *m, uint32_t q);

#endif
