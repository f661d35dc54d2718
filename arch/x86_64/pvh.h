/* ELF vmlinux loader with the Xen PVH entry (pvh.c). */
#ifndef COVE_X86_PVH_H
#define COVE_X86_PVH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch.h"
#include "boot.h"

struct guest_mem;

/* True if img starts with the ELF magic. Pure. */
bool pvh_match(const uint8_t *img, size_t len);

/* Check an ELF32/ELF64 x86 executable: header, program headers, PT_LOAD
 * segments (in the file, above 1 MiB, below 4 GiB, filesz <= memsz), and
 * the Xen note XEN_ELFNOTE_PHYS32_ENTRY (PT_NOTE, else SHT_NOTE) whose
 * entry lies in a segment. 0 with *entry set, or -ENOEXEC (no PVH note,
 * not x86) / -EINVAL (malformed) with cove_fail's message. Pure; the
 * input is untrusted. */
int pvh_check(const uint8_t *img, size_t len, uint32_t *entry);

/* Load the PT_LOAD segments at p_paddr (bss zeroed), the command line,
 * the initrd as module 0, and hvm_start_info at BOOT_START_INFO with the
 * memory map from map and rsdp; fill boot. 0 or -errno with cove_fail's
 * message. Setup thread. */
int pvh_load(const struct guest_mem *gm, const struct arch_load_args *a,
	     const struct boot_mem_map *map, uint64_t rsdp, struct arch_boot *boot);

#endif
