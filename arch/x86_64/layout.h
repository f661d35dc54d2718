/* x86_64 guest physical layout and interrupt numbers, shared with common
 * code through arch.h. */
#ifndef COVE_X86_LAYOUT_H
#define COVE_X86_LAYOUT_H

#define ARCH_NAME "x86_64"

/* RAM is [0, min(size, MEM32_END)) then [HIGH_MEM_START, ...) for the rest:
 * the gap holds the MMIO devices, the IOAPIC and the LAPIC. */
#define LAYOUT_MEM32_END	0xc0000000ULL
#define LAYOUT_HIGH_MEM_START	0x100000000ULL

/* virtio-mmio slots: one 4 KiB page each, IRQs from VIRTIO_IRQ_FIRST up. */
#define LAYOUT_VIRTIO_BASE	0xd0000000ULL
#define LAYOUT_VIRTIO_SIZE	0x1000ULL
#define LAYOUT_VIRTIO_MAX	16
#define LAYOUT_VIRTIO_IRQ_FIRST	5

/* The ACPI Generic Event Device's interrupt (power button), above the
 * virtio slots' IRQs. */
#define LAYOUT_GED_IRQ		23

/* Boot timer: the guest writes BOOT_TIMER_MAGIC to the first byte. */
#define LAYOUT_BOOT_TIMER	0xd1000000ULL
#define LAYOUT_BOOT_TIMER_SIZE	0x1000ULL

#define LAYOUT_IOAPIC		0xfec00000ULL
#define LAYOUT_LAPIC		0xfee00000ULL

/* Port I/O */
#define LAYOUT_COM1_PORT	0x3f8
#define LAYOUT_COM1_IRQ		4
#define LAYOUT_I8042_PORT	0x60	/* data 0x60, command/status 0x64 */
/* Hardware-reduced ACPI sleep control/status registers (FADT) */
#define LAYOUT_ACPI_SLEEP_CTL	0x3c0
#define LAYOUT_ACPI_SLEEP_STS	0x3c1
/* pvpanic (ACPI QEMU0001): the guest writes 1 when it panics */
#define LAYOUT_PVPANIC_PORT	0x505

#define LAYOUT_MAX_CPUS		64

#endif
