// SPDX-License-Identifier: MIT
/*
 * kvm-hold: keep one idle KVM VM (in-kernel irqchip, one vCPU that never
 * runs) open for the life of the nested-KVM L1, then sleep.
 *
 * Why: creating the first VM and destroying the last one flips static keys
 * in L1's kernel (preempt notifiers, which finish_task_switch tests, and
 * KVM's apic_sw_disabled), and each flip live-patches kernel text with
 * int3 and cross-CPU sync IPIs. Under QEMU's TCG that patching sometimes
 * never completes: both L1 CPUs end up looping through the int3 handler
 * ("soft lockup ... finish_task_switch", seen after 20-40 guest boots).
 * With this VM held, the counts never return to zero and the text is never
 * patched again while tests run.
 *
 * Started in the background by tests/nested/init; prints nothing unless
 * it fails.
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		perror("kvm-hold: /dev/kvm");
		return 1;
	}
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		perror("kvm-hold: KVM_CREATE_VM");
		return 1;
	}
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) {
		perror("kvm-hold: KVM_CREATE_IRQCHIP");
		return 1;
	}
	if (ioctl(vm, KVM_CREATE_VCPU, 0) < 0) {
		perror("kvm-hold: KVM_CREATE_VCPU");
		return 1;
	}
	for (;;)
		pause();
}
