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
	for (int i = 0; i < vm->ncpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	evloop_stop(vm->loop);
	if (write(vm->done_fd, &one, sizeof(one)) < 0)
		log_msg("vm", "done eventfd: %s", strerror(errno));
}

int vm_add_virtio(struct vm *vm, struct virtio_dev *dev)
{
	struct arch_mmio_dev *slot;
	int err;

	if (vm->nvdevs >= LAYOUT_VIRTIO_MAX)
		return cove_fail(-ENOSPC, "too many devices (at most %d)", LAYOUT_VIRTIO_MAX);
	slot = &vm->vdev_slots[vm->nvdevs];
	slot->base = LAYOUT_VIRTIO_BASE + vm->nvdevs * LAYOUT_VIRTIO_SIZE;
	slot->size = LAYOUT_VIRTIO_SIZE;
	slot->irq = LAYOUT_VIRTIO_IRQ_FIRST + vm->nvdevs;
	err = virtio_mmio_attach(vm, dev, slot);
	if (err < 0)
		return err;
	vm->vdevs[vm->nvdevs++] = dev;
	return 0;
}
