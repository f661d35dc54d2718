/* x86_64 boot: the low-memory map the loader owns, and the helpers the
 * bzImage and PVH loaders share (boot.c). Private to arch/x86_64. */
#ifndef COVE_X86_BOOT_H
#define COVE_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "arch.h"

struct guest_mem;

/* Guest physical addresses of everything the loader writes below 1 MiB.
 * The first page keeps the real-mode IVT and BIOS data area (BDA). */
#define BOOT_BDA_EBDA_SEG	0x40eULL	/* BDA word: EBDA segment */
#define BOOT_BDA_BASE_KB	0x413ULL	/* BDA word: base memory in KiB */
#define BOOT_GDT		0x500ULL	/* GDT, BOOT_GDT_ENTRIES entries */
#define BOOT_START_INFO		0x6000ULL	/* PVH hvm_start_info */
#define BOOT_MODLIST		0x6040ULL	/* PVH module list (the initrd) */
#define BOOT_MEMMAP		0x6080ULL	/* PVH memory map */
#define BOOT_ZERO_PAGE		0x7000ULL	/* bzImage struct boot_params */
#define BOOT_STACK_TOP		0x8ff0ULL	/* initial RSP of the boot vCPU */
#define BOOT_PML4		0x9000ULL	/* identity map of the first 4 GiB: */
#define BOOT_PDPT		0xa000ULL	/*   PML4, PDPT, */
#define BOOT_PD			0xb000ULL	/*   4 PDs of 2 MiB pages (to 0xeffff) */
#define BOOT_CMDLINE		0x20000ULL	/* kernel command line, NUL-terminated */
#define BOOT_CMDLINE_MAX	0x10000ULL	/*   room for it, NUL included */
#define BOOT_EBDA		0x9fc00ULL	/* EBDA: MP floating pointer */
#define BOOT_ACPI		0xe0000ULL	/* RSDP, then XSDT, FADT, MADT, DSDT */
#define BOOT_ACPI_END		0xf0000ULL
#define BOOT_MPTABLE		0xf0000ULL	/* MP configuration table */
#define BOOT_MPTABLE_END	0x100000ULL
#define BOOT_KERNEL		0x100000ULL	/* bzImage protected-mode code */

/* [BOOT_EBDA, BOOT_KERNEL) is reserved in the e820 map; below is RAM. */
#define BOOT_LOW_RAM_END	BOOT_EBDA

/* GDT selectors: 32-bit code (PVH entry), 64-bit code (bzImage entry,
 * __BOOT_CS), flat data (__BOOT_DS), and a TSS for TR. */
#define BOOT_SEL_CODE32		0x08
#define BOOT_SEL_CODE64		0x10
#define BOOT_SEL_DATA		0x18
#define BOOT_SEL_TSS		0x20
#define BOOT_GDT_ENTRIES	6	/* the 64-bit TSS descriptor takes two */

/* e820 / hvm_memmap_table_entry types */
#define BOOT_MEM_RAM		1
#define BOOT_MEM_RESERVED	2

#define BOOT_MEM_MAP_MAX	8

struct boot_mem_entry {
	uint64_t addr, size;
	uint32_t type;
};

/* The guest's physical memory map as the firmware tables give it. */
struct boot_mem_map {
	int n;
	struct boot_mem_entry e[BOOT_MEM_MAP_MAX];
	uint64_t low_end;	/* end of the RAM region that starts at 0 */
};

/* The GDT descriptor arch_load writes for selector sel (one of
 * BOOT_SEL_*), or 0 for an unknown selector. Pure. */
uint64_t boot_gdt_desc(unsigned sel);

/* Build the memory map from gm's regions: RAM below the EBDA, the BIOS
 * area reserved, then the rest of low RAM and any high RAM. 0, or -EINVAL
 * with cove_fail's message when RAM does not start at 0 with at least
 * 2 MiB. Setup thread. */
int boot_mem_map(const struct guest_mem *gm, struct boot_mem_map *map);

/* Place the initrd page-aligned as high as possible with its last byte at
 * or below `max_addr`, within low RAM and above `kernel_end`, and copy it
 * in. *addr is 0 when there is no initrd. 0 or -E2BIG with cove_fail's
 * message. Setup thread. */
int boot_load_initrd(const struct guest_mem *gm, const struct arch_load_args *a,
		     const struct boot_mem_map *map, uint64_t kernel_end,
		     uint64_t max_addr, uint64_t *addr);

/* Copy the command line to BOOT_CMDLINE if it is shorter than `max`
 * bytes (NUL excluded). 0 or -EINVAL with cove_fail's message. */
int boot_write_cmdline(const struct guest_mem *gm, const char *cmdline, size_t max);

#endif
