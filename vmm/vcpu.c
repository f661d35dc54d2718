#include "vcpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "vm.h"

/* Signal that interrupts KVM_RUN; its handler does nothing. */
#define VCPU_KICK_SIGNAL (SIGRTMIN + 1)

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_init_signals(void)
{
	struct sigaction sa = { .sa_handler = kick_handler };

	sigemptyset(&sa.sa_mask);
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return cove_fail(-errno, "sigaction: %s", strerror(errno));
	return 0;
}

int vcpu_create(struct vm *vm, struct vcpu *v, int index)
{
	int size, err;

	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->index = index;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0)
		return cove_fail(-errno, "KVM_CREATE_VCPU %d: %s", index, strerror(errno));
	size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (size < (int)sizeof(struct kvm_run)) {
		err = cove_fail(-EINVAL, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto err_close;
	}
	v->run_size = size;
	v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		err = cove_fail(-errno, "mmap kvm_run: %s", strerror(errno));
		goto err_close;
	}
	err = arch_vcpu_init(vm->kvm_fd, v->fd, index, vm->ncpus, &vm->boot);
	if (err < 0)
		goto err_unmap;
	return 0;

err_unmap:
	munmap(v->run, v->run_size);
	v->run = NULL;
err_close:
	close(v->fd);
	v->fd = -1;
	return err;
}

static void handle_io(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool out = run->io.direction == KVM_EXIT_IO_OUT;

	if (run->io.data_offset + (uint64_t)run->io.size * run->io.count > v->run_size)
		return;
	for (uint32_t i = 0; i < run->io.count; i++)
		bus_access(&v->vm->pio, run->io.port, data + i * run->io.size, run->io.size, out);
}

static void handle_system_event(struct vcpu *v)
{
	switch (v->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm_request_exit(v->vm, COVE_EXIT_POWEROFF, 0);
		break;
	case KVM_SYSTEM_EVENT_RESET:
		vm_request_exit(v->vm, COVE_EXIT_REBOOT, 0);
		break;
	case KVM_SYSTEM_EVENT_CRASH:
		vm_request_exit(v->vm, COVE_EXIT_PANIC, 0);
		break;
	default:
		log_msg("vcpu", "unknown system event %u", v->run->system_event.type);
		vm_request_exit(v->vm, COVE_EXIT_ERROR, -EINVAL);
	}
}

/* Where the guest was when it stopped in a way it should not have: enough
 * to find the instruction with the guest kernel's System.map. */
static void log_where(struct vcpu *v, const char *name, const char *what)
{
#ifdef __x86_64__
	struct kvm_regs r;
	struct kvm_sregs s;

	if (ioctl(v->fd, KVM_GET_REGS, &r) == 0 && ioctl(v->fd, KVM_GET_SREGS, &s) == 0) {
		log_msg(name, "%s at rip 0x%llx (rsp 0x%llx cr0 0x%llx cr2 0x%llx cr3 0x%llx cr4 0x%llx)",
			what, (unsigned long long)r.rip, (unsigned long long)r.rsp,
			(unsigned long long)s.cr0, (unsigned long long)s.cr2,
			(unsigned long long)s.cr3, (unsigned long long)s.cr4);
		return;
	}
#endif
	log_msg(name, "%s", what);
}

/* What KVM could not do, with its data words (an emulation failure carries
 * the instruction's bytes). */
static void log_internal_error(struct vcpu *v, const char *name)
{
	const struct kvm_run *run = v->run;
	char what[64 + 16 * 19] = "";
	unsigned n = run->internal.ndata;
	size_t len;

	if (n > sizeof(run->internal.data) / sizeof(run->internal.data[0]))
		n = sizeof(run->internal.data) / sizeof(run->internal.data[0]);
	len = snprintf(what, sizeof(what), "KVM_EXIT_INTERNAL_ERROR: suberror %u, data:",
		       run->internal.suberror);
	for (unsigned i = 0; i < n; i++)
		len += snprintf(what + len, sizeof(what) - len, " %llx",
				(unsigned long long)run->internal.data[i]);
	log_where(v, name, what);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	struct kvm_run *run = v->run;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%d", v->index);
	pthread_setname_np(pthread_self(), name);

	while (!__atomic_load_n(&vm->exit_reason, __ATOMIC_ACQUIRE)) {
		/* Between KVM_RUNs: a pending MMIO/PIO read result stays in
		 * kvm_run and completes when we enter again after a resume. */
		if (__atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE)) {
			vm_park(vm);
			continue;
		}
		if (v->index == 0 && !vm->times.first_kvm_run)
			vm->times.first_kvm_run = vm_now_ns() - vm->start_ns;
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				/* Clear the kick, then (fenced) look at the flags:
				 * a kick whose immediate_exit we overwrote had set
				 * its flag (paused, exit_reason) before, so we see
				 * it; a later kick leaves immediate_exit set. */
				__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_RELAXED);
				__atomic_thread_fence(__ATOMIC_SEQ_CST);
				continue;
			}
			log_msg(name, "KVM_RUN: %s", strerror(errno));
			vm_request_exit(vm, COVE_EXIT_ERROR, -errno);
			break;
		}
		if (run->exit_reason < VCPU_EXIT_REASONS)
			v->exits[run->exit_reason]++;
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(v);
			break;
		case KVM_EXIT_MMIO:
			bus_access(&vm->mmio, run->mmio.phys_addr, run->mmio.data,
				   run->mmio.len > 8 ? 8 : run->mmio.len, run->mmio.is_write);
			break;
		case KVM_EXIT_SHUTDOWN:
			/* Triple fault: what a PC does next is reset. A guest
			 * that means to reboot asks the keyboard controller or
			 * ACPI, so say where this one was. */
			log_where(v, name, "triple fault (the guest resets)");
			vm_request_exit(vm, COVE_EXIT_REBOOT, 0);
			break;
		case KVM_EXIT_SYSTEM_EVENT:
			handle_system_event(v);
			break;
		case KVM_EXIT_HLT:
			/* Only without an in-kernel LAPIC; treat as power off. */
			vm_request_exit(vm, COVE_EXIT_POWEROFF, 0);
			break;
		case KVM_EXIT_FAIL_ENTRY:
			log_msg(name, "KVM_EXIT_FAIL_ENTRY: reason 0x%llx",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			vm_request_exit(vm, COVE_EXIT_ERROR, -EIO);
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			log_internal_error(v, name);
			vm_request_exit(vm, COVE_EXIT_ERROR, -EIO);
			break;
		default:
			log_msg(name, "unexpected KVM exit %u", run->exit_reason);
			vm_request_exit(vm, COVE_EXIT_ERROR, -EIO);
		}
	}
	/* Kicks come under pause_lock: none reaches a thread being joined. */
	pthread_mutex_lock(&vm->pause_lock);
	v->done = true;
	pthread_mutex_unlock(&vm->pause_lock);
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	int err = pthread_create(&v->thread, NULL, vcpu_thread, v);

	if (err)
		return cove_fail(-err, "vcpu%d: pthread_create: %s", v->index, strerror(err));
	__atomic_store_n(&v->started, true, __ATOMIC_RELEASE);
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!__atomic_load_n(&v->started, __ATOMIC_ACQUIRE) || v->done)
		return;
	/* immediate_exit covers the window before the thread enters KVM_RUN;
	 * the signal covers a thread already inside it. */
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->started) {
		pthread_join(v->thread, NULL);
		v->started = false;
	}
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

const char *vcpu_exit_name(unsigned reason)
{
	static const char *const names[] = {
		[KVM_EXIT_UNKNOWN] = "unknown",
		[KVM_EXIT_EXCEPTION] = "exception",
		[KVM_EXIT_IO] = "io",
		[KVM_EXIT_HYPERCALL] = "hypercall",
		[KVM_EXIT_DEBUG] = "debug",
		[KVM_EXIT_HLT] = "hlt",
		[KVM_EXIT_MMIO] = "mmio",
		[KVM_EXIT_IRQ_WINDOW_OPEN] = "irq_window_open",
		[KVM_EXIT_SHUTDOWN] = "shutdown",
		[KVM_EXIT_FAIL_ENTRY] = "fail_entry",
		[KVM_EXIT_INTR] = "intr",
		[KVM_EXIT_SET_TPR] = "set_tpr",
		[KVM_EXIT_TPR_ACCESS] = "tpr_access",
		[KVM_EXIT_INTERNAL_ERROR] = "internal_error",
		[KVM_EXIT_SYSTEM_EVENT] = "system_event",
	};

	if (reason < sizeof(names) / sizeof(names[0]) && names[reason])
		return names[reason];
	return NULL;
}
