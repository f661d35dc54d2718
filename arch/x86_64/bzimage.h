/* Linux/x86 boot protocol (bzImage) loader, 64-bit entry (bzimage.c). */
#ifndef COVE_X86_BZIMAGE_H
#define COVE_X86_BZIMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "boot.h"

struct guest_mem;

/* True if img carries the bzImage magic (boot_flag 0xAA55 and "HdrS").
 * Pure. */
bool bzimage_match(const uint8_t *img, size_t len);

/* Check a bzImage's setup header: protocol 2.06+ with a 64-bit entry
 * (XLF_KERNEL_64), sane setup_sects, protected-mode code present. 0, or
 * -ENOEXEC (unsupported kernel) / -EINVAL (malformed) with cove_fail's
 * message. Pure; the input is untrusted. */
int bzimage_check(const uint8_t *img, size_t len);

/* Load the protected-mode kernel at BOOT_KERNEL, the command line, the
 * initrd, and the zero page at BOOT_ZERO_PAGE (setup header, e820 from
 * map, rsdp as acpi_rsdp_addr); fill boot. 0 or -errno with cove_fail's
 * message (-EINVAL bad header or command line, -E2BIG does not fit).
 * Setup thread. */
int bzimage_load(const struct guest_mem *gm, const struct arch_load_args *a,
		 const struct boot_mem_map *map, uint64_t rsdp, struct arch_boot *boot);

#endif
