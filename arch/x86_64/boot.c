/* x86_64 kernel loading: format probe, the low-memory boot area (BIOS data
 * area, GDT, identity page tables), the memory map, command line and
 * initrd placement shared by the bzImage and PVH loaders. */
#include "boot.h"

#include <errno.h>
#include <string.h>

#include "acpi.h"
#include "bzimage.h"
#include "guest_mem.h"
#include "log.h"
#include "mptable.h"
#include "pvh.h"

#define MiB		(1ULL << 20)
#define PAGE_SIZE	4096ULL
#define IOAPIC_PINS	24

/* Page table entry bits */
#define PTE_P		(1ULL << 0)
#define PTE_RW		(1ULL << 1)
#define PTE_PS		(1ULL << 7)

/* Flat 4 GiB segments: G=1, limit 0xfffff; access byte P, DPL 0, S. */
static const uint64_t gdt[BOOT_GDT_ENTRIES] = {
	[BOOT_SEL_CODE32 / 8] = 0x00cf9b000000ffffULL,	/* D=1, exec/read, accessed */
	[BOOT_SEL_CODE64 / 8] = 0x00af9b000000ffffULL,	/* L=1, exec/read, accessed */
	[BOOT_SEL_DATA / 8]   = 0x00cf93000000ffffULL,	/* B=1, read/write, accessed */
	[BOOT_SEL_TSS / 8]    = 0x00008b0000000067ULL,	/* busy TSS at 0, 104 bytes */
	/* [BOOT_SEL_TSS / 8 + 1]: upper half of the TSS descriptor, base 0 */
};

uint64_t boot_gdt_desc(unsigned sel)
{
	if (sel % 8 || sel / 8 >= BOOT_GDT_ENTRIES)
		return 0;
	return gdt[sel / 8];
}

int boot_mem_map(const struct guest_mem *gm, struct boot_mem_map *map)
{
	const struct gm_region *r[GM_MAX_REGIONS];
	int n = 0;

	memset(map, 0, sizeof(*map));
	for (int i = 0; i < gm->nregions && i < GM_MAX_REGIONS; i++)
		r[n++] = &gm->regions[i];
	/* Regions in address order (there are at most a handful). */
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && r[j - 1]->gpa > r[j]->gpa; j--) {
			const struct gm_region *t = r[j];
			r[j] = r[j - 1];
			r[j - 1] = t;
		}
	if (n == 0 || r[0]->gpa != 0 || r[0]->size < 2 * MiB)
		return cove_fail(-EINVAL, "kernel: guest RAM must start at address 0 with at least 2 MiB");

	map->low_end = r[0]->size;
	map->e[map->n++] = (struct boot_mem_entry){ 0, BOOT_LOW_RAM_END, BOOT_MEM_RAM };
	map->e[map->n++] = (struct boot_mem_entry){ BOOT_LOW_RAM_END, BOOT_KERNEL - BOOT_LOW_RAM_END,
						    BOOT_MEM_RESERVED };
	map->e[map->n++] = (struct boot_mem_entry){ BOOT_KERNEL, r[0]->size - BOOT_KERNEL, BOOT_MEM_RAM };
	for (int i = 1; i < n && map->n < BOOT_MEM_MAP_MAX; i++)
		map->e[map->n++] = (struct boot_mem_entry){ r[i]->gpa, r[i]->size, BOOT_MEM_RAM };
	return 0;
}

static uint64_t mib_up(uint64_t bytes)
{
	return bytes / MiB + (bytes % MiB != 0);
}

int boot_load_initrd(const struct guest_mem *gm, const struct arch_load_args *a,
		     const struct boot_mem_map *map, uint64_t kernel_end,
		     uint64_t max_addr, uint64_t *addr)
{
	uint64_t top = map->low_end, start, floor;

	*addr = 0;
	if (!a->initrd || a->initrd_len == 0)
		return 0;
	if (max_addr < top - 1)
		top = max_addr + 1;
	/* Page-align the floor; kernel_end <= low_end keeps this from overflowing. */
	floor = kernel_end > UINT64_MAX - PAGE_SIZE ? UINT64_MAX : (kernel_end + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	if (a->initrd_len > top || ((top - a->initrd_len) & ~(PAGE_SIZE - 1)) < floor)
		return cove_fail(-E2BIG, "initrd (%llu MiB) does not fit in guest memory "
				 "(%llu MiB free between the kernel and %#llx); give the guest more memory",
				 (unsigned long long)mib_up(a->initrd_len),
				 (unsigned long long)(top > floor ? (top - floor) / MiB : 0),
				 (unsigned long long)top);
	start = (top - a->initrd_len) & ~(PAGE_SIZE - 1);
	if (gm_write(gm, start, a->initrd, a->initrd_len) < 0)
		return cove_fail(-E2BIG, "initrd (%llu MiB) does not fit in guest memory",
				 (unsigned long long)mib_up(a->initrd_len));
	*addr = start;
	return 0;
}

int boot_write_cmdline(const struct guest_mem *gm, const char *cmdline, size_t max)
{
	size_t len;

	if (!cmdline)
		cmdline = "";
	if (max > BOOT_CMDLINE_MAX - 1)
		max = BOOT_CMDLINE_MAX - 1;
	len = strnlen(cmdline, max + 1);
	if (len > max)
		return cove_fail(-EINVAL, "kernel: command line is %zu bytes, the kernel accepts at most %zu",
				 strlen(cmdline), max);
	if (gm_write(gm, BOOT_CMDLINE, cmdline, len + 1) < 0)
		return cove_fail(-EINVAL, "kernel: no guest memory for the command line");
	return 0;
}

/* The real-mode IVT/BDA page, the GDT and the identity map of the first
 * 4 GiB with 2 MiB pages: PML4[0] -> PDPT[0..3] -> 4 PDs. */
static int write_boot_area(const struct guest_mem *gm)
{
	uint8_t *low = gm_ptr(gm, 0, BOOT_CMDLINE + BOOT_CMDLINE_MAX);
	uint8_t *bios = gm_ptr(gm, BOOT_EBDA, BOOT_KERNEL - BOOT_EBDA);
	uint16_t w;
	uint64_t e;

	if (!low || !bios)
		return cove_fail(-EINVAL, "kernel: guest RAM does not cover the first 1 MiB");
	memset(low, 0, BOOT_CMDLINE + BOOT_CMDLINE_MAX);
	memset(bios, 0, BOOT_KERNEL - BOOT_EBDA);

	w = BOOT_EBDA >> 4;
	memcpy(low + BOOT_BDA_EBDA_SEG, &w, sizeof(w));
	w = BOOT_EBDA >> 10;
	memcpy(low + BOOT_BDA_BASE_KB, &w, sizeof(w));

	memcpy(low + BOOT_GDT, gdt, sizeof(gdt));

	e = BOOT_PDPT | PTE_P | PTE_RW;
	memcpy(low + BOOT_PML4, &e, sizeof(e));
	for (uint64_t i = 0; i < 4; i++) {
		e = (BOOT_PD + i * PAGE_SIZE) | PTE_P | PTE_RW;
		memcpy(low + BOOT_PDPT + i * 8, &e, sizeof(e));
	}
	for (uint64_t i = 0; i < 4 * 512; i++) {
		e = (i << 21) | PTE_P | PTE_RW | PTE_PS;
		memcpy(low + BOOT_PD + i * 8, &e, sizeof(e));
	}
	return 0;
}

static int check_args(const struct arch_load_args *a)
{
	if (a->ncpus < 1 || a->ncpus > LAYOUT_MAX_CPUS)
		return cove_fail(-EINVAL, "%d vCPUs: between 1 and %d are supported",
				 a->ncpus, LAYOUT_MAX_CPUS);
	if (a->ndevs < 0 || a->ndevs > LAYOUT_VIRTIO_MAX || (a->ndevs && !a->devs))
		return cove_fail(-EINVAL, "%d virtio devices: at most %d are supported",
				 a->ndevs, LAYOUT_VIRTIO_MAX);
	for (int i = 0; i < a->ndevs; i++) {
		const struct arch_mmio_dev *d = &a->devs[i];

		if (d->size == 0 || d->base > 0xffffffffULL || d->size > 0x100000000ULL - d->base)
			return cove_fail(-EINVAL, "virtio device %d: MMIO window %#llx+%#x is not below 4 GiB",
					 i, (unsigned long long)d->base, d->size);
		/* IRQ 0 is the timer, 2 is where IRQ 0 lands on the IOAPIC. */
		if (d->irq == 0 || d->irq == 2 || d->irq >= IOAPIC_PINS)
			return cove_fail(-EINVAL, "virtio device %d: IRQ %u is not usable (1, 3..%d)",
					 i, d->irq, IOAPIC_PINS - 1);
	}
	if (!a->kernel)
		return cove_fail(-ENOEXEC, "kernel: no kernel image");
	return 0;
}

int arch_kernel_probe(const uint8_t *img, size_t len, enum arch_kernel_format *fmt)
{
	if (!img)
		len = 0;
	if (bzimage_match(img, len)) {
		if (bzimage_check(img, len) < 0)
			return -ENOEXEC;
		*fmt = ARCH_KERNEL_BZIMAGE;
		return 0;
	}
	if (pvh_match(img, len)) {
		uint32_t entry;

		if (pvh_check(img, len, &entry) < 0)
			return -ENOEXEC;
		*fmt = ARCH_KERNEL_PVH;
		return 0;
	}
	return cove_fail(-ENOEXEC, "kernel: not a bzImage or an ELF vmlinux with a PVH note");
}

int arch_load(struct guest_mem *gm, const struct arch_load_args *a, struct arch_boot *boot)
{
	struct boot_mem_map map;
	uint64_t rsdp = 0;
	bool bz;
	int err;

	memset(boot, 0, sizeof(*boot));
	err = check_args(a);
	if (err)
		return err;
	bz = bzimage_match(a->kernel, a->kernel_len);
	if (!bz && !pvh_match(a->kernel, a->kernel_len))
		return cove_fail(-ENOEXEC, "kernel: not a bzImage or an ELF vmlinux with a PVH note");
	err = bz ? bzimage_check(a->kernel, a->kernel_len) : pvh_check(a->kernel, a->kernel_len, &(uint32_t){ 0 });
	if (err)
		return err;
	err = boot_mem_map(gm, &map);
	if (err)
		return err;
	err = write_boot_area(gm);
	if (err)
		return err;
	if (a->acpi) {
		err = acpi_write(gm, a->ncpus, a->devs, a->ndevs, &rsdp);
		if (err)
			return err;
	}
	err = mptable_write(gm, a->ncpus, a->devs, a->ndevs);
	if (err)
		return err;
	if (bz)
		return bzimage_load(gm, a, &map, rsdp, boot);
	return pvh_load(gm, a, &map, rsdp, boot);
}
