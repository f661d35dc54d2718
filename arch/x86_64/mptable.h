/* Intel MultiProcessor Specification 1.4 tables (mptable.c). */
#ifndef COVE_X86_MPTABLE_H
#define COVE_X86_MPTABLE_H

#include <stdint.h>

#include "arch.h"

struct guest_mem;

/* Write the MP floating pointer at BOOT_EBDA and the configuration table
 * at BOOT_MPTABLE: one processor per vCPU (APIC id = index, BSP 0), an
 * ISA bus, the IOAPIC (id ncpus), ISA IRQs 0-15 (IRQ0 on pin 2) and each
 * device's IRQ edge/active-high, LINT0 ExtINT, LINT1 NMI. ncpus and devs
 * must have been validated (1..LAYOUT_MAX_CPUS, irq < 24). 0 or -errno
 * with cove_fail's message. Setup thread. */
int mptable_write(const struct guest_mem *gm, int ncpus,
		  const struct arch_mmio_dev *devs, int ndevs);

#endif
