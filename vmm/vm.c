#include "vm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"
#include "log.h"
#include "vcpu.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"

uint64_t vm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

int vm_ioeventfd(struct vm *vm, uint64_t addr, uint32_t len, bool pio,
		 uint64_t datamatch, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
		.datamatch = datamatch,
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};

	if (pio)
		io.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (!assign)
		io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
		return cove_fail(-errno, "KVM_IOEVENTFD at 0x%llx: %s",
				 (unsigned long long)addr, strerror(errno));
	return 0;
}

int vm_irqfd(struct vm *vm, uint32_t gsi, int fd, bool assign)
{
	struct kvm_irqfd irq = {
		.fd = fd,
		.gsi = gsi,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (ioctl(vm->vm_fd, KVM_IRQFD, &irq) < 0)
		return cove_fail(-errno, "KVM_IRQFD for IRQ %u: %s", gsi, strerror(errno));
	return 0;
}

void vm_request_exit(struct vm *vm, enum cove_exit_reason reason, int status)
{
	int none = COVE_EXIT_NONE;
	uint64_t one = 1;

	if (!__atomic_compare_exchange_n(&vm->exit_reason, &none, (int)reason, false,
					 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return;
	vm->exit_status = status;
	vm->times.exit = vm_now_ns() - vm->start_ns;
	/* Running vCPUs are kicked; parked ones and waiting pausers woken. */
	pthread_mutex_lock(&vm->pause_lock);
	for (int i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	evloop_stop(vm->loop);
	if (write(vm->done_fd, &one, sizeof(one)) < 0)
		log_msg("vm", "done eventfd: %s", strerror(errno));
}

int vm_pause_init(struct vm *vm)
{
	pthread_condattr_t attr;
	int err;

	err = pthread_mutex_init(&vm->pause_lock, NULL);
	if (err)
		return cove_fail(-err, "pthread_mutex_init: %s", strerror(err));
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	err = pthread_cond_init(&vm->pause_cond, &attr);
	pthread_condattr_destroy(&attr);
	if (err) {
		pthread_mutex_destroy(&vm->pause_lock);
		return cove_fail(-err, "pthread_cond_init: %s", strerror(err));
	}
	return 0;
}

void vm_pause_fini(struct vm *vm)
{
	pthread_cond_destroy(&vm->pause_cond);
	pthread_mutex_destroy(&vm->pause_lock);
}

static bool vm_ending(struct vm *vm)
{
	return __atomic_load_n(&vm->exit_reason, __ATOMIC_ACQUIRE) != COVE_EXIT_NONE;
}

#define PAUSE_REKICK_NS 10000000	/* a kick can be missed while a vCPU starts */

int vm_pause(struct vm *vm, bool wait)
{
	int err = 0;

	pthread_mutex_lock(&vm->pause_lock);
	/* The store, then the kicks: a vCPU that cleared immediate_exit
	 * after our kick set it sees `paused` (see vcpu_thread). */
	__atomic_store_n(&vm->paused, true, __ATOMIC_SEQ_CST);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	while (vm->parked < vm->ncpus) {
		struct timespec ts;

		if (vm_ending(vm)) {
			err = -ESRCH;
			break;
		}
		if (!__atomic_load_n(&vm->paused, __ATOMIC_RELAXED)) {
			err = -ECANCELED;
			break;
		}
		for (int i = 0; i < vm->ncpus; i++)
			vcpu_kick(&vm->vcpus[i]);
		if (!wait) {
			err = -EINPROGRESS;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += PAUSE_REKICK_NS;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &ts);
	}
	if (!err && vm_ending(vm))
		err = -ESRCH;
	pthread_mutex_unlock(&vm->pause_lock);
	return err;
}

int vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	__atomic_store_n(&vm->paused, false, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	return vm_ending(vm) ? -ESRCH : 0;
}

bool vm_paused(struct vm *vm)
{
	return __atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE);
}

void vm_park(struct vm *vm)
{
	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (__atomic_load_n(&vm->paused, __ATOMIC_RELAXED) && !vm_ending(vm))
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_mutex_unlock(&vm->pause_lock);
}

int vm_adopt_virtio(struct vm *vm, struct virtio_dev *dev)
{
	struct arch_mmio_dev *slot;
	int err;

	if (vm->nvdevs >= LAYOUT_VIRTIO_MAX) {
		err = cove_fail(-ENOSPC, "too many devices (at most %d)", LAYOUT_VIRTIO_MAX);
		goto fail;
	}
	slot = &vm->vdev_slots[vm->nvdevs];
	slot->base = LAYOUT_VIRTIO_BASE + vm->nvdevs * LAYOUT_VIRTIO_SIZE;
	slot->size = LAYOUT_VIRTIO_SIZE;
	slot->irq = LAYOUT_VIRTIO_IRQ_FIRST + vm->nvdevs;
	err = virtio_mmio_attach(vm, dev, slot);
	if (err < 0)
		goto fail;
	vm->vdevs[vm->nvdevs++] = dev;
	return 0;

fail:
	dev->ops->destroy(dev);
	return err;
}
