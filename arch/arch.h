/* The only interface common code has to the architecture. Everything
 * arch-specific lives behind it in arch/<arch>/; layout.h comes from the
 * include path of the arch being built. */
#ifndef COVE_ARCH_H
#define COVE_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "layout.h"

struct guest_mem;

#define BOOT_TIMER_MAGIC 123

struct arch_mem_range {
	uint64_t gpa, size;
};

/* Split `size` bytes of guest RAM into ranges around the arch's holes.
 * Returns the number of ranges (<= max) or -EINVAL for a size the arch
 * cannot lay out. Pure; any thread. */
int arch_mem_layout(uint64_t size, struct arch_mem_range *out, int max);

/* A virtio-mmio device as the platform describes it to the guest. */
struct arch_mmio_dev {
	uint64_t base;
	uint32_t size;
	uint32_t irq;
};

enum arch_kernel_format {
	ARCH_KERNEL_BZIMAGE = 1,	/* Linux/x86 boot protocol, 64-bit entry */
	ARCH_KERNEL_PVH,		/* ELF vmlinux with a PVH entry note */
};

/* Where and how the boot vCPU starts. */
struct arch_boot {
	enum arch_kernel_format format;
	uint64_t entry;		/* guest physical entry point */
	uint64_t boot_info;	/* zero page (bzImage) or hvm_start_info (PVH) */
	uint64_t kernel_end;	/* first byte above the loaded kernel */
};

/* Everything arch_load needs; all buffers are the caller's. */
struct arch_load_args {
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initrd;	/* may be NULL */
	size_t initrd_len;
	const char *cmdline;	/* final command line */
	int ncpus;
	const struct arch_mmio_dev *devs;
	int ndevs;
	bool acpi;		/* write ACPI tables (the MP table is always there) */
};

/* Recognise the kernel image format without loading it: 0 with *fmt set,
 * or -ENOEXEC (with cove_fail's message) for anything else. Pure; the input
 * is untrusted. */
int arch_kernel_probe(const uint8_t *img, size_t len, enum arch_kernel_format *fmt);

/* Load kernel and initrd into guest memory, write the boot parameters
 * (zero page with e820 and command line, or PVH start info), and the
 * platform tables (MP table, ACPI RSDP/XSDT/MADT/FADT/DSDT with the
 * virtio-mmio devices). 0 or -errno with cove_fail's message set
 * (-ENOEXEC not a kernel, -E2BIG initrd or kernel does not fit, -EINVAL
 * bad header fields). Setup thread. */
int arch_load(struct guest_mem *gm, const struct arch_load_args *a, struct arch_boot *boot);

/* Per-VM KVM setup before memory and vCPUs: TSS and identity map
 * addresses, in-kernel irqchip, PIT. 0 or -errno. Setup thread. */
int arch_vm_init(int kvm_fd, int vm_fd);

/* Per-vCPU setup: CPUID (supported + KVM leaves + TSC/LAPIC frequency),
 * MSRs, LAPIC LINT0/LINT1, FPU, and for vCPU 0 the entry registers from
 * boot. 0 or -errno. Called on the vCPU's own thread before KVM_RUN. */
int arch_vcpu_init(int kvm_fd, int vcpu_fd, int index, int ncpus, const struct arch_boot *boot);

#endif
