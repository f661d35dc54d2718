/* virtio-rng (virtio 1.2, 5.4): one queue of device-writable buffers the
 * device fills with bytes from getrandom(2). */
#ifndef COVE_VIRTIO_RNG_H
#define COVE_VIRTIO_RNG_H

struct virtio_dev;
struct vm;

#define VRNG_QUEUE_SIZE		64
#define VRNG_MAX_FILL		4096	/* bytes given per buffer (chain) at most */

/* The device alone, not yet on a transport (virtio_mmio_create puts it on
 * one; ops->destroy frees it). 0 with *out, or -ENOMEM with cove_fail's
 * message. Setup thread. */
int vrng_open(struct virtio_dev **out);

/* vrng_open and vm_adopt_virtio. 0 with *out (the VM owns it), or -errno
 * with cove_fail's message. Setup thread. */
int vrng_create(struct vm *vm, struct virtio_dev **out);

#endif
