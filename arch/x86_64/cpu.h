/* vCPU setup: the boot vCPU's entry state, MSRs, LAPIC, FPU (cpu.c). */
#ifndef COVE_X86_CPU_H
#define COVE_X86_CPU_H

#include "arch.h"

struct kvm_regs;
struct kvm_sregs;
struct kvm_segment;

/* Segment register contents matching GDT descriptor `desc` loaded with
 * selector sel (unusable when not present). Pure. */
void cpu_segment(struct kvm_segment *s, uint64_t desc, uint16_t sel);

/* Entry state from boot into the KVM_GET_SREGS result s: for a bzImage
 * 64-bit long mode with the identity map at BOOT_PML4, for PVH 32-bit
 * protected mode without paging; the GDT at BOOT_GDT either way. 0, or
 * -EINVAL for an unknown format. Pure. */
int cpu_boot_sregs(struct kvm_sregs *s, const struct arch_boot *boot);

/* General registers at entry: RIP, RSI (zero page) or RBX (start info),
 * a stack, interrupts off. Pure. */
void cpu_boot_regs(struct kvm_regs *r, const struct arch_boot *boot);

#endif
