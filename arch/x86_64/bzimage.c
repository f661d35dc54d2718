/* Linux/x86 boot protocol (Documentation/x86/boot.rst): load a bzImage's
 * protected-mode kernel at 1 MiB and enter it at its 64-bit entry point
 * (load address + 0x200) with a zero page describing the machine. */
#include "bzimage.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "guest_mem.h"
#include "log.h"

#define BOOT_FLAG		0xaa55
#define HDRS_MAGIC		0x53726448	/* "HdrS" */
#define PROTO_MIN		0x0206		/* cmdline_size */
#define PROTO_XLOADFLAGS	0x020c		/* xloadflags, 64-bit entry */
#define XLF_KERNEL_64		(1 << 0)
#define LOADED_HIGH		(1 << 0)
#define CAN_USE_HEAP		(1 << 7)
#define LOADER_UNDEFINED	0xff
#define ENTRY_64_OFFSET		0x200
#define DEFAULT_INITRD_MAX	0x37ffffff
#define SECTOR			512

/* struct setup_header, at offset 0x1f1 of the image and the zero page. */
struct setup_header {
	uint8_t setup_sects;
	uint16_t root_flags;
	uint32_t syssize;
	uint16_t ram_size;
	uint16_t vid_mode;
	uint16_t root_dev;
	uint16_t boot_flag;
	uint16_t jump;
	uint32_t header;
	uint16_t version;
	uint32_t realmode_swtch;
	uint16_t start_sys_seg;
	uint16_t kernel_version;
	uint8_t type_of_loader;
	uint8_t loadflags;
	uint16_t setup_move_size;
	uint32_t code32_start;
	uint32_t ramdisk_image;
	uint32_t ramdisk_size;
	uint32_t bootsect_kludge;
	uint16_t heap_end_ptr;
	uint8_t ext_loader_ver;
	uint8_t ext_loader_type;
	uint32_t cmd_line_ptr;
	uint32_t initrd_addr_max;
	uint32_t kernel_alignment;
	uint8_t relocatable_kernel;
	uint8_t min_alignment;
	uint16_t xloadflags;
	uint32_t cmdline_size;
	uint32_t hardware_subarch;
	uint64_t hardware_subarch_data;
	uint32_t payload_offset;
	uint32_t payload_length;
	uint64_t setup_data;
	uint64_t pref_address;
	uint32_t init_size;
	uint32_t handover_offset;
	uint32_t kernel_info_offset;
} __attribute__((packed));

struct boot_e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

#define E820_MAX_ZEROPAGE	128

/* struct boot_params, the "zero page". */
struct boot_params {
	uint8_t screen_info[0x40];		/* 0x000 */
	uint8_t apm_bios_info[0x14];		/* 0x040 */
	uint8_t _pad2[4];			/* 0x054 */
	uint64_t tboot_addr;			/* 0x058 */
	uint8_t ist_info[0x10];			/* 0x060 */
	uint64_t acpi_rsdp_addr;		/* 0x070 */
	uint8_t _pad3[8];			/* 0x078 */
	uint8_t hd0_info[16];			/* 0x080 */
	uint8_t hd1_info[16];			/* 0x090 */
	uint8_t sys_desc_table[0x10];		/* 0x0a0 */
	uint8_t olpc_ofw_header[0x10];		/* 0x0b0 */
	uint32_t ext_ramdisk_image;		/* 0x0c0 */
	uint32_t ext_ramdisk_size;		/* 0x0c4 */
	uint32_t ext_cmd_line_ptr;		/* 0x0c8 */
	uint8_t _pad4[112];			/* 0x0cc */
	uint32_t cc_blob_address;		/* 0x13c */
	uint8_t edid_info[0x80];		/* 0x140 */
	uint8_t efi_info[0x20];			/* 0x1c0 */
	uint32_t alt_mem_k;			/* 0x1e0 */
	uint32_t scratch;			/* 0x1e4 */
	uint8_t e820_entries;			/* 0x1e8 */
	uint8_t eddbuf_entries;			/* 0x1e9 */
	uint8_t edd_mbr_sig_buf_entries;	/* 0x1ea */
	uint8_t kbd_status;			/* 0x1eb */
	uint8_t secure_boot;			/* 0x1ec */
	uint8_t _pad5[2];			/* 0x1ed */
	uint8_t sentinel;			/* 0x1ef */
	uint8_t _pad6[1];			/* 0x1f0 */
	struct setup_header hdr;		/* 0x1f1 */
	uint8_t _pad7[0x290 - 0x1f1 - sizeof(struct setup_header)];
	uint32_t edd_mbr_sig_buffer[16];	/* 0x290 */
	struct boot_e820_entry e820_table[E820_MAX_ZEROPAGE];	/* 0x2d0 */
	uint8_t _pad8[48];			/* 0xcd0 */
	uint8_t eddbuf[6 * 82];			/* 0xd00 */
	uint8_t _pad9[276];			/* 0xeec */
} __attribute__((packed));

static_assert(sizeof(struct boot_params) == 4096, "zero page is one page");
static_assert(offsetof(struct boot_params, acpi_rsdp_addr) == 0x070, "acpi_rsdp_addr");
static_assert(offsetof(struct boot_params, ext_ramdisk_image) == 0x0c0, "ext_ramdisk_image");
static_assert(offsetof(struct boot_params, e820_entries) == 0x1e8, "e820_entries");
static_assert(offsetof(struct boot_params, hdr) == 0x1f1, "hdr");
static_assert(offsetof(struct boot_params, e820_table) == 0x2d0, "e820_table");
static_assert(offsetof(struct boot_params, eddbuf) == 0xd00, "eddbuf");
static_assert(offsetof(struct boot_params, hdr.boot_flag) == 0x1fe, "boot_flag");
static_assert(offsetof(struct boot_params, hdr.header) == 0x202, "header");
static_assert(offsetof(struct boot_params, hdr.type_of_loader) == 0x210, "type_of_loader");
static_assert(offsetof(struct boot_params, hdr.cmd_line_ptr) == 0x228, "cmd_line_ptr");
static_assert(offsetof(struct boot_params, hdr.xloadflags) == 0x236, "xloadflags");
static_assert(offsetof(struct boot_params, hdr.cmdline_size) == 0x238, "cmdline_size");
static_assert(offsetof(struct boot_params, hdr.pref_address) == 0x258, "pref_address");
static_assert(offsetof(struct boot_params, hdr.init_size) == 0x260, "init_size");

#define HDR_OFFSET	0x1f1
#define HDR_END_MAX	0x290		/* the zero page's room for the header */
#define HDR_LEN_MIN	(offsetof(struct boot_params, hdr.kernel_info_offset) + 4)

bool bzimage_match(const uint8_t *img, size_t len)
{
	uint16_t flag;
	uint32_t magic;

	if (!img || len < 0x206)
		return false;
	memcpy(&flag, img + 0x1fe, sizeof(flag));
	memcpy(&magic, img + 0x202, sizeof(magic));
	return flag == BOOT_FLAG && magic == HDRS_MAGIC;
}

static void read_header(const uint8_t *img, struct setup_header *h)
{
	memcpy(h, img + HDR_OFFSET, sizeof(*h));
}

static uint64_t setup_size(const struct setup_header *h)
{
	return ((uint64_t)(h->setup_sects ? h->setup_sects : 4) + 1) * SECTOR;
}

int bzimage_check(const uint8_t *img, size_t len)
{
	struct setup_header h;

	if (!bzimage_match(img, len))
		return cove_fail(-ENOEXEC, "kernel: not a bzImage");
	if (len < HDR_LEN_MIN)
		return cove_fail(-EINVAL, "kernel: bzImage is truncated (%zu bytes)", len);
	read_header(img, &h);
	if (h.version < PROTO_MIN)
		return cove_fail(-ENOEXEC, "kernel: bzImage boot protocol %u.%02u is too old (2.06 or later needed)",
				 h.version >> 8, h.version & 0xff);
	if (h.version < PROTO_XLOADFLAGS || !(h.xloadflags & XLF_KERNEL_64))
		return cove_fail(-ENOEXEC, "kernel: bzImage has no 64-bit entry point (XLF_KERNEL_64); "
				 "use an x86_64 kernel");
	if (setup_size(&h) >= len || len - setup_size(&h) <= ENTRY_64_OFFSET)
		return cove_fail(-EINVAL, "kernel: bzImage is truncated: %zu bytes, of which setup takes %llu",
				 len, (unsigned long long)setup_size(&h));
	return 0;
}

/* The zero page: the image's setup header plus what the loader fills in. */
static void fill_zero_page(struct boot_params *bp, const uint8_t *img, const struct boot_mem_map *map,
			   uint64_t initrd, uint64_t initrd_len, uint64_t rsdp)
{
	/* The header runs to 0x202 + the byte at 0x201 (the jump's offset). */
	size_t end = 0x202 + img[0x201];

	memset(bp, 0, sizeof(*bp));
	if (end > HDR_END_MAX)
		end = HDR_END_MAX;
	memcpy((uint8_t *)bp + HDR_OFFSET, img + HDR_OFFSET, end - HDR_OFFSET);

	/* Nothing from the file is a pointer the kernel should follow. */
	bp->hdr.setup_data = 0;
	bp->hdr.hardware_subarch = 0;		/* a PC */
	bp->hdr.hardware_subarch_data = 0;
	bp->hdr.type_of_loader = LOADER_UNDEFINED;
	bp->hdr.loadflags |= CAN_USE_HEAP | LOADED_HIGH;
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.cmd_line_ptr = BOOT_CMDLINE;
	bp->ext_cmd_line_ptr = 0;
	bp->hdr.ramdisk_image = (uint32_t)initrd;
	bp->hdr.ramdisk_size = (uint32_t)initrd_len;
	bp->ext_ramdisk_image = (uint32_t)(initrd >> 32);
	bp->ext_ramdisk_size = (uint32_t)(initrd_len >> 32);
	bp->acpi_rsdp_addr = rsdp;
	for (int i = 0; i < map->n && i < E820_MAX_ZEROPAGE; i++) {
		bp->e820_table[i].addr = map->e[i].addr;
		bp->e820_table[i].size = map->e[i].size;
		bp->e820_table[i].type = map->e[i].type;
		bp->e820_entries = (uint8_t)(i + 1);
	}
}

int bzimage_load(const struct guest_mem *gm, const struct arch_load_args *a,
		 const struct boot_mem_map *map, uint64_t rsdp, struct arch_boot *boot)
{
	struct boot_params bp;
	struct setup_header h;
	uint64_t pm_off, pm_len, load_end, buf, kernel_end, initrd = 0;
	int err;

	err = bzimage_check(a->kernel, a->kernel_len);
	if (err)
		return err;
	read_header(a->kernel, &h);
	pm_off = setup_size(&h);
	pm_len = a->kernel_len - pm_off;

	/* The kernel decompresses into init_size bytes at its preferred
	 * address or above the load address, whichever is higher. */
	load_end = BOOT_KERNEL + pm_len;
	buf = h.pref_address > BOOT_KERNEL ? h.pref_address : BOOT_KERNEL;
	if (load_end < BOOT_KERNEL || buf > UINT64_MAX - h.init_size)
		kernel_end = UINT64_MAX;
	else
		kernel_end = buf + h.init_size;
	if (kernel_end < load_end)
		kernel_end = load_end;
	if (kernel_end > map->low_end)
		return cove_fail(-E2BIG, "kernel: bzImage needs memory up to %llu MiB (init_size), "
				 "the guest has %llu MiB of low memory",
				 (unsigned long long)((kernel_end >> 20) + 1),
				 (unsigned long long)(map->low_end >> 20));
	if (gm_write(gm, BOOT_KERNEL, a->kernel + pm_off, pm_len) < 0)
		return cove_fail(-E2BIG, "kernel: bzImage does not fit in guest memory");

	err = boot_write_cmdline(gm, a->cmdline, h.cmdline_size);
	if (err)
		return err;
	err = boot_load_initrd(gm, a, map, kernel_end,
			       h.initrd_addr_max ? h.initrd_addr_max : DEFAULT_INITRD_MAX, &initrd);
	if (err)
		return err;

	fill_zero_page(&bp, a->kernel, map, initrd, initrd ? a->initrd_len : 0, rsdp);
	if (gm_write(gm, BOOT_ZERO_PAGE, &bp, sizeof(bp)) < 0)
		return cove_fail(-EINVAL, "kernel: no guest memory for the zero page");

	boot->format = ARCH_KERNEL_BZIMAGE;
	boot->entry = BOOT_KERNEL + ENTRY_64_OFFSET;
	boot->boot_info = BOOT_ZERO_PAGE;
	boot->kernel_end = kernel_end;
	return 0;
}
