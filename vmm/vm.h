/* One VM: the KVM handles, guest memory, buses, event loop and vCPUs.
 * Internal to the monitor; programs embed it through libcove.h. */
#ifndef COVE_VM_H
#define COVE_VM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "arch.h"
#include "bus.h"
#include "guest_mem.h"
#include "libcove.h"

struct evloop;
struct virtio_dev;
struct vcpu;

struct vm {
	int kvm_fd, vm_fd;
	struct guest_mem mem;
	struct bus mmio, pio;
	struct evloop *loop;

	int ncpus;
	struct vcpu *vcpus;
	struct arch_boot boot;

	/* virtio-mmio slots in use, in slot order */
	struct virtio_dev *vdevs[LAYOUT_VIRTIO_MAX];
	struct arch_mmio_dev vdev_slots[LAYOUT_VIRTIO_MAX];
	int nvdevs;

	/* Set once by the first vm_request_exit(); vCPUs and loop then stop. */
	int exit_reason;		/* enum cove_exit_reason */
	int exit_status;		/* for COVE_EXIT_ERROR: -errno */
	int done_fd;			/* eventfd: readable once the VM ended */

	struct cove_boot_times times;
	uint64_t start_ns;		/* monotonic ns at process start: times count from it */

	/* Pause: while `paused`, vCPUs park between KVM_RUNs (vm_park). */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;	/* broadcast: parked, resumed, ended */
	bool paused;			/* written under pause_lock, read atomically */
	int parked;			/* vCPUs parked; under pause_lock */
};

/* Monotonic clock in ns. */
uint64_t vm_now_ns(void);

/* Register an ioeventfd: writes of `len` bytes at `addr` (MMIO, or port I/O
 * when pio) that equal `datamatch` signal fd instead of exiting to
 * userspace. assign=false removes it. 0 or -errno. Any thread. */
int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, bool pio,
		 uint64_t datamatch, int fd, bool assign);

/* Route eventfd fd to interrupt line gsi (edge). 0 or -errno. Any thread. */
int vm_irqfd(struct vm *vm, uint32_t gsi, int fd, bool assign);

/* End the VM: the first caller's reason wins; vCPUs leave KVM_RUN and the
 * loop stops. status is -errno for COVE_EXIT_ERROR. Any thread. */
void vm_request_exit(struct vm *vm, enum cove_exit_reason reason, int status);

/* Set up the pause lock and condition. 0 or -errno. Setup thread, before
 * any vCPU or vm_request_exit. */
int vm_pause_init(struct vm *vm);
void vm_pause_fini(struct vm *vm);

/* Ask every vCPU to leave KVM_RUN and park (idempotent). With wait, block
 * until all vm->ncpus are parked; without, only check. 0 when all are
 * parked, -EINPROGRESS (not wait) while some still run, -ECANCELED if a
 * vm_resume came first, -ESRCH once the VM is ending. Any thread but a
 * vCPU's; with wait, not the event loop's either (a vCPU may be waiting on
 * it in evloop_call). */
int vm_pause(struct vm *vm, bool wait);

/* Let parked vCPUs run again (idempotent). 0, or -ESRCH once the VM is
 * ending. Any thread. */
int vm_resume(struct vm *vm);

/* Whether a pause is in force (requested and not resumed). Any thread. */
bool vm_paused(struct vm *vm);

/* Park the calling vCPU while the VM is paused and not ending. vCPU
 * threads, between KVM_RUNs. */
void vm_park(struct vm *vm);

/* Claim the next virtio-mmio slot for dev (base, size, irq chosen by the
 * layout); the transport registers itself on the MMIO bus. The VM owns dev
 * from this call on: on failure dev is destroyed. 0, -ENOSPC or -errno.
 * Setup thread. */
int vm_adopt_virtio(struct vm *vm, struct virtio_dev *dev);

#endif
