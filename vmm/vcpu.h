/* vCPU threads: each only runs KVM_RUN and dispatches trapped MMIO and
 * port I/O to the buses. */
#ifndef COVE_VCPU_H
#define COVE_VCPU_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct kvm_run;

#define VCPU_EXIT_REASONS 64	/* KVM_EXIT_* values we count individually */

struct vcpu {
	struct vm *vm;
	int index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool started;
	bool done;		/* the thread left its loop; under vm->pause_lock */
	uint64_t exits[VCPU_EXIT_REASONS];
};

/* Create vCPU `index` (KVM_CREATE_VCPU, map kvm_run) and set its initial
 * state (arch_vcpu_init). 0 or -errno with cove_fail's message. Setup thread. */
int vcpu_create(struct vm *vm, struct vcpu *v, int index);

/* Start the vCPU's thread. 0 or -errno. Setup thread. */
int vcpu_start(struct vcpu *v);

/* Make the vCPU leave KVM_RUN soon (it then sees the VM's exit reason or
 * pause). Any thread, holding vm->pause_lock (so that the thread is not
 * joined meanwhile). */
void vcpu_kick(struct vcpu *v);

/* Join the thread (if started), unmap and close. Setup thread. */
void vcpu_destroy(struct vcpu *v);

/* Install the no-op signal handler used by vcpu_kick. Once per process. */
int vcpu_init_signals(void);

/* Name of a KVM exit reason for the metrics. */
const char *vcpu_exit_name(unsigned reason);

#endif
