/* Guest CPUID: what KVM supports, with the topology, hypervisor and
 * timer-frequency leaves the guest needs (cpuid.c). */
#ifndef COVE_X86_CPUID_H
#define COVE_X86_CPUID_H

#include <stdbool.h>
#include <stdint.h>

struct kvm_cpuid2;

struct cpuid_params {
	int index, ncpus;	/* this vCPU (= APIC id) of ncpus */
	uint32_t tsc_khz;	/* 0 if unknown */
	bool tsc_deadline;	/* KVM_CAP_TSC_DEADLINE_TIMER */
};

/* Rewrite the KVM_GET_SUPPORTED_CPUID list c (room for `cap` entries) for
 * one vCPU: leaf 1 APIC id/count/hypervisor/TSC-deadline bits, leaf 4
 * core counts, leaves 0xB/0x1F x2APIC topology (one thread per core),
 * 0x15/0x16 TSC frequency, the KVM leaves 0x40000000/0x40000010, and the
 * AMD core counts in 0x80000008/0x8000001E. 0 or -E2BIG when cap is too
 * small. Pure. */
int cpuid_fixup(struct kvm_cpuid2 *c, uint32_t cap, const struct cpuid_params *p);

/* KVM_GET_SUPPORTED_CPUID (buffer grown on E2BIG), cpuid_fixup with the
 * TSC frequency and TSC-deadline capability from KVM, KVM_SET_CPUID2.
 * 0 or -errno with cove_fail's message. The vCPU's thread. */
int cpuid_setup(int kvm_fd, int vcpu_fd, int index, int ncpus);

#endif
