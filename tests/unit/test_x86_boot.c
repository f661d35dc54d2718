/* x86_64 kernel loading: arch_mem_layout, bzImage and PVH probe/load
 * against synthetic images in a fake guest memory. */
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arch.h"
#include "boot.h"
#include "bytes.h"
#include "fake_mem.h"
#include "guest_mem.h"
#include "log.h"

#define MiB		(1ULL << 20)
#define MEM_SIZE	(64 * MiB)

static void wr16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void wr32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void wr64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static bool has(const char *msg, const char *sub)
{
	if (!strstr(msg, sub)) {
		print_error("message \"%s\" lacks \"%s\"\n", msg, sub);
		return false;
	}
	return true;
}

/* ---- arch_mem_layout ---- */

static void test_layout(void **state)
{
	struct arch_mem_range r[4];

	(void)state;
	assert_int_equal(arch_mem_layout(64 * MiB, r, 4), 1);
	assert_int_equal(r[0].gpa, 0);
	assert_int_equal(r[0].size, 64 * MiB);
	assert_int_equal(arch_mem_layout(LAYOUT_MEM32_END, r, 4), 1);
	assert_int_equal(r[0].size, LAYOUT_MEM32_END);
	assert_int_equal(arch_mem_layout(4096 * MiB, r, 4), 2);
	assert_int_equal(r[0].gpa, 0);
	assert_int_equal(r[0].size, LAYOUT_MEM32_END);
	assert_int_equal(r[1].gpa, LAYOUT_HIGH_MEM_START);
	assert_int_equal(r[1].size, 4096 * MiB - LAYOUT_MEM32_END);
	assert_int_equal(arch_mem_layout(64 * MiB - 4096, r, 4), -EINVAL);
	assert_int_equal(arch_mem_layout(0, r, 4), -EINVAL);
	assert_int_equal(arch_mem_layout(64 * MiB + 1, r, 4), -EINVAL);
	assert_int_equal(arch_mem_layout(64 * MiB + 4096, r, 4), 1);
	assert_int_equal(arch_mem_layout(4096 * MiB, r, 1), -EINVAL);
	assert_int_equal(arch_mem_layout(64 * MiB, r, 0), -EINVAL);
	assert_int_equal(arch_mem_layout(UINT64_MAX & ~4095ULL, r, 4), -EINVAL);
}

/* ---- bzImage ---- */

struct bz_opts {
	uint8_t setup_sects;
	uint16_t version;
	uint16_t xloadflags;
	uint32_t cmdline_size;
	uint32_t init_size;
	uint32_t initrd_addr_max;
	uint64_t pref_address;
	size_t pm_len;
};

static const struct bz_opts bz_default = {
	.setup_sects = 4,
	.version = 0x020f,
	.xloadflags = 0x3,		/* KERNEL_64, CAN_BE_LOADED_ABOVE_4G */
	.cmdline_size = 2047,
	.init_size = 4 * MiB,
	.initrd_addr_max = 0x7fffffff,
	.pref_address = 16 * MiB,
	.pm_len = 64 * 1024,
};

/* A bzImage: boot sector and setup header, then protected-mode code
 * filled with a pattern. *len is set; free() the result. */
static uint8_t *make_bzimage(const struct bz_opts *o, size_t *len)
{
	size_t setup = ((size_t)(o->setup_sects ? o->setup_sects : 4) + 1) * 512;
	uint8_t *img = calloc(1, setup + o->pm_len);

	assert_non_null(img);
	img[0x1f1] = o->setup_sects;
	wr16(img + 0x1fe, 0xaa55);
	img[0x200] = 0xeb;			/* jmp */
	img[0x201] = 0x6a;			/* header ends at 0x26c */
	memcpy(img + 0x202, "HdrS", 4);
	wr16(img + 0x206, o->version);
	img[0x211] = 0x01;			/* LOADED_HIGH */
	wr32(img + 0x22c, o->initrd_addr_max);
	wr32(img + 0x230, 0x200000);		/* kernel_alignment */
	img[0x234] = 1;				/* relocatable */
	wr16(img + 0x236, o->xloadflags);
	wr32(img + 0x238, o->cmdline_size);
	wr64(img + 0x250, 0xdeadbeef);		/* setup_data: must not leak */
	wr64(img + 0x258, o->pref_address);
	wr32(img + 0x260, o->init_size);
	for (size_t i = 0; i < o->pm_len; i++)
		img[setup + i] = (uint8_t)(i * 7 + 1);
	*len = setup + o->pm_len;
	return img;
}

struct env {
	struct fake_mem fm;
	struct arch_load_args a;
	struct arch_boot boot;
	uint8_t *img;
	uint8_t *initrd;
};

static struct arch_mmio_dev test_devs[2] = {
	{ LAYOUT_VIRTIO_BASE, 0x1000, 5 },
	{ LAYOUT_VIRTIO_BASE + 0x1000, 0x1000, 6 },
};

/* len is read after img was built (argument order is unspecified). */
static void env_init(struct env *e, uint8_t *img, const size_t *len)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(fake_mem_init(&e->fm, 0, MEM_SIZE), 0);
	e->img = img;
	e->a.kernel = img;
	e->a.kernel_len = *len;
	e->a.cmdline = "console=ttyS0 reboot=k";
	e->a.ncpus = 2;
	e->a.devs = test_devs;
	e->a.ndevs = 2;
	e->a.acpi = true;
	cove_clear_error();
}

static void env_free(struct env *e)
{
	fake_mem_free(&e->fm);
	free(e->img);
	free(e->initrd);
}

static void env_initrd(struct env *e, size_t len)
{
	e->initrd = malloc(len);
	assert_non_null(e->initrd);
	for (size_t i = 0; i < len; i++)
		e->initrd[i] = (uint8_t)(i ^ 0x5a);
	e->a.initrd = e->initrd;
	e->a.initrd_len = len;
}

static uint8_t *gp(struct env *e, uint64_t gpa)
{
	return fake_mem_ptr(&e->fm, gpa);
}

static void test_bz_good(void **state)
{
	enum arch_kernel_format fmt = 0;
	struct env e;
	size_t len;
	uint8_t *img = make_bzimage(&bz_default, &len);
	uint8_t *zp;
	uint32_t rd_addr, rd_size;

	(void)state;
	env_init(&e, img, &len);
	env_initrd(&e, 3 * MiB + 123);
	assert_int_equal(arch_kernel_probe(img, len, &fmt), 0);
	assert_int_equal(fmt, ARCH_KERNEL_BZIMAGE);
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	assert_int_equal(e.boot.format, ARCH_KERNEL_BZIMAGE);
	assert_int_equal(e.boot.entry, 0x100000 + 0x200);
	assert_int_equal(e.boot.boot_info, BOOT_ZERO_PAGE);
	assert_int_equal(e.boot.kernel_end, 16 * MiB + 4 * MiB);

	/* Protected-mode code at 1 MiB. */
	assert_memory_equal(gp(&e, 0x100000), img + 5 * 512, bz_default.pm_len);

	zp = gp(&e, BOOT_ZERO_PAGE);
	assert_int_equal(rd16(zp + 0x1fe), 0xaa55);
	assert_memory_equal(zp + 0x202, "HdrS", 4);
	assert_int_equal(rd16(zp + 0x206), 0x020f);
	assert_int_equal(zp[0x1f1], 4);
	assert_int_equal(zp[0x210], 0xff);			/* type_of_loader */
	assert_true(zp[0x211] & 0x80);				/* CAN_USE_HEAP */
	assert_true(zp[0x211] & 0x01);				/* LOADED_HIGH */
	assert_int_equal(rd16(zp + 0x224), 0xfe00);		/* heap_end_ptr */
	assert_int_equal(rd32(zp + 0x228), BOOT_CMDLINE);	/* cmd_line_ptr */
	assert_int_equal(rd64(zp + 0x250), 0);			/* setup_data cleared */
	assert_int_equal(rd64(zp + 0x070), BOOT_ACPI);		/* acpi_rsdp_addr */
	assert_string_equal((char *)gp(&e, BOOT_CMDLINE), "console=ttyS0 reboot=k");

	/* initrd: page-aligned, as high as possible in low RAM. */
	rd_addr = rd32(zp + 0x218);
	rd_size = rd32(zp + 0x21c);
	assert_int_equal(rd_size, 3 * MiB + 123);
	assert_int_equal(rd_addr % 4096, 0);
	assert_int_equal(rd_addr, (MEM_SIZE - rd_size) & ~4095ULL);
	assert_true(rd_addr >= e.boot.kernel_end);
	assert_memory_equal(gp(&e, rd_addr), e.initrd, rd_size);
	assert_int_equal(rd32(zp + 0x0c0), 0);			/* ext_ramdisk_image */

	/* e820 */
	assert_int_equal(zp[0x1e8], 3);
	assert_int_equal(rd64(zp + 0x2d0), 0);
	assert_int_equal(rd64(zp + 0x2d0 + 8), 0x9fc00);
	assert_int_equal(rd32(zp + 0x2d0 + 16), 1);
	assert_int_equal(rd64(zp + 0x2e4), 0x9fc00);
	assert_int_equal(rd64(zp + 0x2e4 + 8), 0x100000 - 0x9fc00);
	assert_int_equal(rd32(zp + 0x2e4 + 16), 2);
	assert_int_equal(rd64(zp + 0x2f8), 0x100000);
	assert_int_equal(rd64(zp + 0x2f8 + 8), MEM_SIZE - 0x100000);
	assert_int_equal(rd32(zp + 0x2f8 + 16), 1);

	/* BDA, GDT and identity page tables */
	assert_int_equal(rd16(gp(&e, 0x40e)), 0x9fc0);
	assert_int_equal(rd16(gp(&e, 0x413)), 639);
	assert_int_equal(rd64(gp(&e, BOOT_GDT + BOOT_SEL_CODE64)), 0x00af9b000000ffffULL);
	assert_int_equal(rd64(gp(&e, BOOT_GDT + BOOT_SEL_DATA)), 0x00cf93000000ffffULL);
	assert_int_equal(rd64(gp(&e, BOOT_PML4)), BOOT_PDPT | 3);
	for (int i = 0; i < 4; i++)
		assert_int_equal(rd64(gp(&e, BOOT_PDPT + 8 * i)), (BOOT_PD + 4096 * i) | 3);
	assert_int_equal(rd64(gp(&e, BOOT_PD)), 0x83);
	assert_int_equal(rd64(gp(&e, BOOT_PD + 8)), (2 * MiB) | 0x83);
	assert_int_equal(rd64(gp(&e, BOOT_PD + 8 * 2047)), (2047ULL * 2 * MiB) | 0x83);
	env_free(&e);
}

static void test_bz_no_initrd_high_mem(void **state)
{
	static uint8_t high[2 * MiB];
	struct env e;
	size_t len;
	uint8_t *zp;

	(void)state;
	env_init(&e, make_bzimage(&bz_default, &len), &len);
	assert_int_equal(gm_add_region(&e.fm.gm, LAYOUT_HIGH_MEM_START, sizeof(high), high), 0);
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	zp = gp(&e, BOOT_ZERO_PAGE);
	assert_int_equal(rd32(zp + 0x218), 0);
	assert_int_equal(rd32(zp + 0x21c), 0);
	assert_int_equal(zp[0x1e8], 4);
	assert_int_equal(rd64(zp + 0x2d0 + 3 * 20), LAYOUT_HIGH_MEM_START);
	assert_int_equal(rd64(zp + 0x2d0 + 3 * 20 + 8), sizeof(high));
	assert_int_equal(rd32(zp + 0x2d0 + 3 * 20 + 16), 1);
	env_free(&e);
}

static void test_bz_initrd_addr_max(void **state)
{
	struct bz_opts o = bz_default;
	struct env e;
	size_t len;
	uint32_t addr;

	(void)state;
	o.initrd_addr_max = 48 * MiB - 1;
	env_init(&e, make_bzimage(&o, &len), &len);
	env_initrd(&e, MiB);
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	addr = rd32(gp(&e, BOOT_ZERO_PAGE) + 0x218);
	assert_int_equal(addr, 47 * MiB);
	env_free(&e);
}

static void expect_probe_fail(const uint8_t *img, size_t len, const char *msg)
{
	enum arch_kernel_format fmt = 0;

	cove_clear_error();
	assert_int_equal(arch_kernel_probe(img, len, &fmt), -ENOEXEC);
	assert_true(has(cove_last_error(), msg));
}

static void expect_load_fail(struct env *e, int err, const char *msg)
{
	cove_clear_error();
	assert_int_equal(arch_load(&e->fm.gm, &e->a, &e->boot), err);
	assert_true(has(cove_last_error(), msg));
}

static void test_bz_bad_magic(void **state)
{
	struct env e;
	size_t len;
	uint8_t *img = make_bzimage(&bz_default, &len);

	(void)state;
	env_init(&e, img, &len);
	img[0x1fe] = 0;
	expect_probe_fail(img, len, "not a bzImage or an ELF vmlinux with a PVH note");
	expect_load_fail(&e, -ENOEXEC, "not a bzImage");
	img[0x1fe] = 0x55;
	memcpy(img + 0x202, "HdrX", 4);
	expect_probe_fail(img, len, "not a bzImage");
	expect_probe_fail(img, 0, "not a bzImage");
	expect_probe_fail(NULL, 0, "not a bzImage");
	env_free(&e);
}

static void test_bz_old_protocol(void **state)
{
	struct bz_opts o = bz_default;
	struct env e;
	size_t len;

	(void)state;
	o.version = 0x0204;
	env_init(&e, make_bzimage(&o, &len), &len);
	expect_probe_fail(e.img, len, "2.04 is too old");
	expect_load_fail(&e, -ENOEXEC, "too old");
	env_free(&e);
}

static void test_bz_no_64bit(void **state)
{
	struct bz_opts o = bz_default;
	struct env e;
	size_t len;

	(void)state;
	o.xloadflags = 0x2;
	env_init(&e, make_bzimage(&o, &len), &len);
	expect_probe_fail(e.img, len, "64-bit");
	expect_load_fail(&e, -ENOEXEC, "XLF_KERNEL_64");
	env_free(&e);
	/* 2.10 has no xloadflags: no 64-bit entry either. */
	o = bz_default;
	o.version = 0x020a;
	env_init(&e, make_bzimage(&o, &len), &len);
	expect_load_fail(&e, -ENOEXEC, "64-bit");
	env_free(&e);
}

static void test_bz_setup_sects_zero(void **state)
{
	struct bz_opts o = bz_default;
	struct env e;
	size_t len;

	(void)state;
	o.setup_sects = 0;
	env_init(&e, make_bzimage(&o, &len), &len);
	assert_int_equal(len, 5 * 512 + o.pm_len);
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	assert_memory_equal(gp(&e, 0x100000), e.img + 5 * 512, o.pm_len);
	env_free(&e);

	o.setup_sects = 1;
	env_init(&e, make_bzimage(&o, &len), &len);
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	assert_memory_equal(gp(&e, 0x100000), e.img + 2 * 512, o.pm_len);
	env_free(&e);
}

static void test_bz_cmdline(void **state)
{
	struct bz_opts o = bz_default;
	char line[64];
	struct env e;
	size_t len;

	(void)state;
	o.cmdline_size = 16;
	env_init(&e, make_bzimage(&o, &len), &len);
	memset(line, 'x', 16);
	line[16] = '\0';
	e.a.cmdline = line;
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	assert_string_equal((char *)gp(&e, BOOT_CMDLINE), line);
	line[16] = 'y';
	line[17] = '\0';
	expect_load_fail(&e, -EINVAL, "command line is 17 bytes, the kernel accepts at most 16");
	e.a.cmdline = NULL;
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	assert_string_equal((char *)gp(&e, BOOT_CMDLINE), "");
	env_free(&e);
}

static void test_bz_initrd_too_big(void **state)
{
	struct env e;
	size_t len;

	(void)state;
	env_init(&e, make_bzimage(&bz_default, &len), &len);
	/* 64 MiB RAM, kernel to 20 MiB: 44 MiB fit, 45 do not. */
	env_initrd(&e, 45 * MiB);
	expect_load_fail(&e, -E2BIG, "initrd (45 MiB) does not fit in guest memory");
	e.a.initrd_len = 44 * MiB;
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	assert_int_equal(rd32(gp(&e, BOOT_ZERO_PAGE) + 0x218), 20 * MiB);
	e.a.initrd_len = 200 * MiB;
	e.a.initrd = calloc(1, 200 * MiB);	/* never read */
	expect_load_fail(&e, -E2BIG, "initrd (200 MiB)");
	free((void *)e.a.initrd);
	env_free(&e);
}

static void test_bz_kernel_too_big(void **state)
{
	struct bz_opts o = bz_default;
	struct env e;
	size_t len;

	(void)state;
	o.init_size = 60 * MiB;
	env_init(&e, make_bzimage(&o, &len), &len);
	expect_load_fail(&e, -E2BIG, "init_size");
	env_free(&e);
	o = bz_default;
	o.pref_address = UINT64_MAX - 10;
	env_init(&e, make_bzimage(&o, &len), &len);
	expect_load_fail(&e, -E2BIG, "init_size");
	env_free(&e);
}

static void test_bz_truncated(void **state)
{
	struct env e;
	size_t len;
	uint8_t *img = make_bzimage(&bz_default, &len);

	(void)state;
	env_init(&e, img, &len);
	/* Setup present, no protected-mode code. */
	e.a.kernel_len = 5 * 512;
	expect_probe_fail(img, e.a.kernel_len, "truncated");
	expect_load_fail(&e, -EINVAL, "truncated");
	e.a.kernel_len = 5 * 512 + 0x100;	/* the 64-bit entry is not in it */
	expect_load_fail(&e, -EINVAL, "truncated");
	/* Header cut short. */
	e.a.kernel_len = 0x240;
	expect_load_fail(&e, -EINVAL, "truncated");
	e.a.kernel_len = 0x205;
	expect_load_fail(&e, -ENOEXEC, "not a bzImage");
	env_free(&e);
}

static void test_load_args(void **state)
{
	struct arch_mmio_dev bad = { LAYOUT_VIRTIO_BASE, 0x1000, 24 };
	struct env e;
	size_t len;

	(void)state;
	env_init(&e, make_bzimage(&bz_default, &len), &len);
	e.a.ncpus = 0;
	expect_load_fail(&e, -EINVAL, "vCPUs");
	e.a.ncpus = LAYOUT_MAX_CPUS + 1;
	expect_load_fail(&e, -EINVAL, "vCPUs");
	e.a.ncpus = LAYOUT_MAX_CPUS;
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	e.a.devs = &bad;
	e.a.ndevs = 1;
	expect_load_fail(&e, -EINVAL, "IRQ 24");
	bad.irq = 2;
	expect_load_fail(&e, -EINVAL, "IRQ 2");
	bad.irq = 7;
	bad.base = 0xfffff000;
	bad.size = 0x2000;
	expect_load_fail(&e, -EINVAL, "4 GiB");
	e.a.ndevs = LAYOUT_VIRTIO_MAX + 1;
	expect_load_fail(&e, -EINVAL, "virtio devices");
	env_free(&e);
}

static void test_small_memory(void **state)
{
	static uint8_t small[MiB];
	struct guest_mem gm = { 0 };
	struct arch_load_args a = { 0 };
	struct arch_boot boot;
	size_t len;
	uint8_t *img = make_bzimage(&bz_default, &len);

	(void)state;
	assert_int_equal(gm_add_region(&gm, 0, sizeof(small), small), 0);
	a.kernel = img;
	a.kernel_len = len;
	a.ncpus = 1;
	cove_clear_error();
	assert_int_equal(arch_load(&gm, &a, &boot), -EINVAL);
	assert_true(has(cove_last_error(), "2 MiB"));
	free(img);
}

static void test_mem_map_order(void **state)
{
	static uint8_t high[MiB];
	struct boot_mem_map map;
	struct guest_mem gm = { 0 };
	uint8_t *low = calloc(1, 4 * MiB);

	(void)state;
	assert_int_equal(gm_add_region(&gm, LAYOUT_HIGH_MEM_START, sizeof(high), high), 0);
	assert_int_equal(gm_add_region(&gm, 0, 4 * MiB, low), 0);
	assert_int_equal(boot_mem_map(&gm, &map), 0);
	assert_int_equal(map.low_end, 4 * MiB);
	assert_int_equal(map.n, 4);
	assert_int_equal(map.e[0].addr, 0);
	assert_int_equal(map.e[0].size, 0x9fc00);
	assert_int_equal(map.e[0].type, BOOT_MEM_RAM);
	assert_int_equal(map.e[1].type, BOOT_MEM_RESERVED);
	assert_int_equal(map.e[2].addr, MiB);
	assert_int_equal(map.e[2].size, 3 * MiB);
	assert_int_equal(map.e[3].addr, LAYOUT_HIGH_MEM_START);
	assert_int_equal(map.e[3].size, MiB);

	/* RAM that does not start at 0 */
	gm = (struct guest_mem){ 0 };
	assert_int_equal(gm_add_region(&gm, 0x1000, 4 * MiB - 0x1000, low), 0);
	assert_int_equal(boot_mem_map(&gm, &map), -EINVAL);
	gm = (struct guest_mem){ 0 };
	assert_int_equal(boot_mem_map(&gm, &map), -EINVAL);
	free(low);
}

/* ---- PVH ---- */

struct pvh_opts {
	bool elf32;
	bool no_pt_note;	/* the note only in a SHT_NOTE section */
	bool no_note;
	uint32_t note_type;
	uint32_t entry;
	uint64_t paddr, filesz, memsz, offset;
	uint64_t phoff;
	uint32_t namesz;
	uint16_t phnum;
};

static const struct pvh_opts pvh_default = {
	.note_type = 18,
	.entry = 0x1000010,
	.paddr = 0x1000000,
	.filesz = 0x2000,
	.memsz = 0x5000,
	.offset = 0x1000,
	.namesz = 4,
};

#define PVH_IMG_LEN	0x4000
#define NOTE_OFF	0x800

/* An ELF vmlinux: ehdr, phdrs (PT_LOAD, PT_NOTE) at 0x40, notes at 0x800
 * (another vendor's note, then Xen's), one section header (SHT_NOTE) at
 * 0x900, code at 0x1000. */
static uint8_t *make_pvh(const struct pvh_opts *o, size_t *len)
{
	uint8_t *img = calloc(1, PVH_IMG_LEN);
	uint8_t *n = img + NOTE_OFF;
	size_t notes_len;

	assert_non_null(img);
	/* notes: "GNU" type 3 (5 bytes of desc), then "Xen" PHYS32_ENTRY */
	wr32(n, 4);
	wr32(n + 4, 5);
	wr32(n + 8, 3);
	memcpy(n + 12, "GNU", 4);
	memcpy(n + 16, "abcde", 5);
	n += 24;
	wr32(n, o->namesz);
	wr32(n + 4, 4);
	wr32(n + 8, o->no_note ? 17 : o->note_type);
	memcpy(n + 12, "Xen", 4);
	wr32(n + 16, o->entry);
	notes_len = 24 + 20;

	for (size_t i = 0; i < o->filesz && o->offset + i < PVH_IMG_LEN; i++)
		img[o->offset + i] = (uint8_t)(i * 13 + 3);

	memcpy(img, ELFMAG, SELFMAG);
	img[EI_DATA] = ELFDATA2LSB;
	img[EI_VERSION] = EV_CURRENT;
	if (!o->elf32) {
		Elf64_Ehdr h = { 0 };
		Elf64_Phdr ph[2] = { 0 };
		Elf64_Shdr sh = { 0 };

		memcpy(h.e_ident, img, EI_NIDENT);
		h.e_ident[EI_CLASS] = ELFCLASS64;
		h.e_type = ET_EXEC;
		h.e_machine = EM_X86_64;
		h.e_version = EV_CURRENT;
		h.e_entry = 0xffffffff81000000ULL;
		h.e_phoff = o->phoff ? o->phoff : 0x40;
		h.e_phentsize = sizeof(Elf64_Phdr);
		h.e_phnum = o->phnum ? o->phnum : (o->no_pt_note ? 1 : 2);
		h.e_shoff = 0x900;
		h.e_shentsize = sizeof(Elf64_Shdr);
		h.e_shnum = 1;
		h.e_ehsize = sizeof(h);
		memcpy(img, &h, sizeof(h));
		ph[0] = (Elf64_Phdr){ .p_type = PT_LOAD, .p_offset = o->offset, .p_vaddr = 0xffffffff81000000ULL,
				      .p_paddr = o->paddr, .p_filesz = o->filesz, .p_memsz = o->memsz,
				      .p_align = 0x200000 };
		ph[1] = (Elf64_Phdr){ .p_type = PT_NOTE, .p_offset = NOTE_OFF, .p_filesz = notes_len,
				      .p_memsz = notes_len, .p_align = 4 };
		memcpy(img + 0x40, ph, sizeof(ph));
		sh = (Elf64_Shdr){ .sh_type = SHT_NOTE, .sh_offset = NOTE_OFF, .sh_size = notes_len,
				   .sh_addralign = 4 };
		memcpy(img + 0x900, &sh, sizeof(sh));
	} else {
		Elf32_Ehdr h = { 0 };
		Elf32_Phdr ph[2] = { 0 };
		Elf32_Shdr sh = { 0 };

		memcpy(h.e_ident, img, EI_NIDENT);
		h.e_ident[EI_CLASS] = ELFCLASS32;
		h.e_type = ET_EXEC;
		h.e_machine = EM_386;
		h.e_version = EV_CURRENT;
		h.e_entry = 0xc1000000;
		h.e_phoff = (Elf32_Off)(o->phoff ? o->phoff : 0x40);
		h.e_phentsize = sizeof(Elf32_Phdr);
		h.e_phnum = o->phnum ? o->phnum : (o->no_pt_note ? 1 : 2);
		h.e_shoff = 0x900;
		h.e_shentsize = sizeof(Elf32_Shdr);
		h.e_shnum = 1;
		h.e_ehsize = sizeof(h);
		memcpy(img, &h, sizeof(h));
		ph[0] = (Elf32_Phdr){ .p_type = PT_LOAD, .p_offset = (Elf32_Off)o->offset, .p_vaddr = 0xc1000000,
				      .p_paddr = (Elf32_Addr)o->paddr, .p_filesz = (Elf32_Word)o->filesz,
				      .p_memsz = (Elf32_Word)o->memsz, .p_align = 0x1000 };
		ph[1] = (Elf32_Phdr){ .p_type = PT_NOTE, .p_offset = NOTE_OFF, .p_filesz = (Elf32_Word)notes_len,
				      .p_memsz = (Elf32_Word)notes_len, .p_align = 4 };
		memcpy(img + 0x40, ph, sizeof(ph));
		sh = (Elf32_Shdr){ .sh_type = SHT_NOTE, .sh_offset = NOTE_OFF, .sh_size = (Elf32_Word)notes_len,
				   .sh_addralign = 4 };
		memcpy(img + 0x900, &sh, sizeof(sh));
	}
	*len = PVH_IMG_LEN;
	return img;
}

static void check_pvh_loaded(struct env *e, const struct pvh_opts *o)
{
	uint8_t *si = gp(e, BOOT_START_INFO);
	uint8_t *mm;

	assert_int_equal(e->boot.format, ARCH_KERNEL_PVH);
	assert_int_equal(e->boot.entry, o->entry);
	assert_int_equal(e->boot.boot_info, BOOT_START_INFO);
	assert_int_equal(e->boot.kernel_end, o->paddr + o->memsz);
	assert_memory_equal(gp(e, o->paddr), e->img + o->offset, o->filesz);
	for (uint64_t i = o->filesz; i < o->memsz; i++)
		assert_int_equal(*gp(e, o->paddr + i), 0);	/* bss zeroed */

	assert_int_equal(rd32(si), 0x336ec578);
	assert_int_equal(rd32(si + 4), 1);
	assert_int_equal(rd64(si + 24), BOOT_CMDLINE);
	assert_string_equal((char *)gp(e, BOOT_CMDLINE), e->a.cmdline);
	assert_int_equal(rd64(si + 32), BOOT_ACPI);		/* rsdp_paddr */
	assert_int_equal(rd32(si + 48), 3);			/* memmap_entries */
	mm = gp(e, rd64(si + 40));
	assert_int_equal(rd64(mm), 0);
	assert_int_equal(rd64(mm + 8), 0x9fc00);
	assert_int_equal(rd32(mm + 16), 1);
	assert_int_equal(rd64(mm + 24), 0x9fc00);
	assert_int_equal(rd32(mm + 24 + 16), 2);
	assert_int_equal(rd64(mm + 48), 0x100000);
	assert_int_equal(rd64(mm + 48 + 8), MEM_SIZE - 0x100000);
	assert_int_equal(rd32(mm + 48 + 16), 1);
}

static void test_pvh_good(void **state)
{
	enum arch_kernel_format fmt = 0;
	struct env e;
	size_t len;
	uint8_t *si, *mod;

	(void)state;
	env_init(&e, make_pvh(&pvh_default, &len), &len);
	memset(gp(&e, pvh_default.paddr), 0xaa, pvh_default.memsz);
	env_initrd(&e, 2 * MiB + 5);
	assert_int_equal(arch_kernel_probe(e.img, len, &fmt), 0);
	assert_int_equal(fmt, ARCH_KERNEL_PVH);
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	check_pvh_loaded(&e, &pvh_default);
	si = gp(&e, BOOT_START_INFO);
	assert_int_equal(rd32(si + 12), 1);			/* nr_modules */
	mod = gp(&e, rd64(si + 16));
	assert_int_equal(rd64(mod + 8), 2 * MiB + 5);
	assert_int_equal(rd64(mod), (MEM_SIZE - (2 * MiB + 5)) & ~4095ULL);
	assert_memory_equal(gp(&e, rd64(mod)), e.initrd, 2 * MiB + 5);
	env_free(&e);
}

static void test_pvh_elf32_and_section_note(void **state)
{
	struct pvh_opts o = pvh_default;
	struct env e;
	size_t len;

	(void)state;
	o.elf32 = true;
	env_init(&e, make_pvh(&o, &len), &len);
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	check_pvh_loaded(&e, &o);
	assert_int_equal(rd32(gp(&e, BOOT_START_INFO) + 12), 0);	/* no initrd */
	env_free(&e);

	o = pvh_default;
	o.no_pt_note = true;
	env_init(&e, make_pvh(&o, &len), &len);
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	check_pvh_loaded(&e, &o);
	env_free(&e);
}

static void pvh_expect(const struct pvh_opts *o, int probe_err, int load_err, const char *msg)
{
	enum arch_kernel_format fmt;
	struct env e;
	size_t len;

	env_init(&e, make_pvh(o, &len), &len);
	cove_clear_error();
	assert_int_equal(arch_kernel_probe(e.img, len, &fmt), probe_err);
	expect_load_fail(&e, load_err, msg);
	env_free(&e);
}

static void test_pvh_missing_note(void **state)
{
	struct pvh_opts o = pvh_default;

	(void)state;
	o.no_note = true;
	pvh_expect(&o, -ENOEXEC, -ENOEXEC, "no PVH entry note");
	o = pvh_default;
	o.namesz = 3;				/* "Xe" is not "Xen" */
	pvh_expect(&o, -ENOEXEC, -ENOEXEC, "no PVH entry note");
}

static void test_pvh_note_bounds(void **state)
{
	struct pvh_opts o = pvh_default;

	(void)state;
	o.namesz = 0xfffffff0;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "ELF note");
	o.namesz = 0xffffffff;			/* wraps when aligned in 32 bits */
	pvh_expect(&o, -ENOEXEC, -EINVAL, "ELF note");
	o.namesz = 40;				/* name runs past the segment */
	pvh_expect(&o, -ENOEXEC, -EINVAL, "ELF note");
}

static void test_pvh_note_segment_outside(void **state)
{
	struct env e;
	size_t len;
	uint8_t *img = make_pvh(&pvh_default, &len);
	Elf64_Phdr ph;

	(void)state;
	memcpy(&ph, img + 0x40 + sizeof(ph), sizeof(ph));
	ph.p_offset = PVH_IMG_LEN - 8;
	memcpy(img + 0x40 + sizeof(ph), &ph, sizeof(ph));
	env_init(&e, img, &len);
	expect_load_fail(&e, -EINVAL, "outside the file");
	ph.p_offset = UINT64_MAX - 4;
	memcpy(img + 0x40 + sizeof(ph), &ph, sizeof(ph));
	expect_load_fail(&e, -EINVAL, "outside the file");
	env_free(&e);
}

static void test_pvh_phdr_bounds(void **state)
{
	struct pvh_opts o = pvh_default;

	(void)state;
	o.phoff = PVH_IMG_LEN - 0x40;		/* two phdrs need 0x70 */
	pvh_expect(&o, -ENOEXEC, -EINVAL, "program headers lie outside the file");
	o.phoff = UINT64_MAX - 0x10;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "program headers lie outside the file");
	o = pvh_default;
	o.phnum = 0xffff;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "program headers");
}

static void test_pvh_segment_outside_ram(void **state)
{
	struct pvh_opts o = pvh_default;

	(void)state;
	o.paddr = 256 * MiB;
	o.entry = 256 * MiB;
	pvh_expect(&o, 0, -E2BIG, "outside guest RAM");
	o.paddr = MEM_SIZE - 0x1000;		/* memsz runs past the end */
	o.entry = (uint32_t)o.paddr;
	pvh_expect(&o, 0, -E2BIG, "outside guest RAM");
	o.paddr = 0x80000;			/* the boot area */
	o.entry = 0x80000;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "between 1 MiB and 4 GiB");
	o.paddr = 0xfffff000;			/* crosses 4 GiB */
	o.entry = 0xfffff000;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "between 1 MiB and 4 GiB");
}

static void test_pvh_overflow(void **state)
{
	struct pvh_opts o = pvh_default;

	(void)state;
	o.offset = UINT64_MAX - 0x10;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "outside the file");
	o = pvh_default;
	o.paddr = UINT64_MAX - 0x1000;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "between 1 MiB and 4 GiB");
	o = pvh_default;
	o.memsz = UINT64_MAX;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "between 1 MiB and 4 GiB");
	o = pvh_default;
	o.filesz = o.memsz + 1;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "filesz");
	o = pvh_default;
	o.entry = 0x2000000;
	pvh_expect(&o, -ENOEXEC, -EINVAL, "outside the loaded segments");
}

static void test_pvh_bad_header(void **state)
{
	struct env e;
	size_t len;
	uint8_t *img = make_pvh(&pvh_default, &len);

	(void)state;
	env_init(&e, img, &len);
	img[EI_DATA] = ELFDATA2MSB;
	expect_load_fail(&e, -ENOEXEC, "little-endian");
	img[EI_DATA] = ELFDATA2LSB;
	img[EI_CLASS] = 7;
	expect_load_fail(&e, -ENOEXEC, "class");
	img[EI_CLASS] = ELFCLASS64;
	wr16(img + 18, EM_AARCH64);
	expect_load_fail(&e, -ENOEXEC, "not x86");
	wr16(img + 18, EM_X86_64);
	wr16(img + 16, ET_DYN);
	expect_load_fail(&e, -ENOEXEC, "not an executable");
	wr16(img + 16, ET_EXEC);
	e.a.kernel_len = 40;
	expect_load_fail(&e, -EINVAL, "truncated");
	e.a.kernel_len = len;
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	env_free(&e);
}

static void test_pvh_cmdline_limit(void **state)
{
	struct env e;
	size_t len;
	char *line = malloc(4000);

	(void)state;
	memset(line, 'a', 3999);
	line[3999] = '\0';
	env_init(&e, make_pvh(&pvh_default, &len), &len);
	e.a.cmdline = line;
	expect_load_fail(&e, -EINVAL, "at most 2047");
	line[2047] = '\0';
	assert_int_equal(arch_load(&e.fm.gm, &e.a, &e.boot), 0);
	env_free(&e);
	free(line);
}

static void test_not_a_kernel(void **state)
{
	static const uint8_t junk[4096] = { 'M', 'Z' };

	(void)state;
	expect_probe_fail(junk, sizeof(junk), "not a bzImage or an ELF vmlinux with a PVH note");
	expect_probe_fail((const uint8_t *)"\177EL", 3, "not a bzImage");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_bz_good),
		cmocka_unit_test(test_bz_no_initrd_high_mem),
		cmocka_unit_test(test_bz_initrd_addr_max),
		cmocka_unit_test(test_bz_bad_magic),
		cmocka_unit_test(test_bz_old_protocol),
		cmocka_unit_test(test_bz_no_64bit),
		cmocka_unit_test(test_bz_setup_sects_zero),
		cmocka_unit_test(test_bz_cmdline),
		cmocka_unit_test(test_bz_initrd_too_big),
		cmocka_unit_test(test_bz_kernel_too_big),
		cmocka_unit_test(test_bz_truncated),
		cmocka_unit_test(test_load_args),
		cmocka_unit_test(test_small_memory),
		cmocka_unit_test(test_mem_map_order),
		cmocka_unit_test(test_pvh_good),
		cmocka_unit_test(test_pvh_elf32_and_section_note),
		cmocka_unit_test(test_pvh_missing_note),
		cmocka_unit_test(test_pvh_note_bounds),
		cmocka_unit_test(test_pvh_note_segment_outside),
		cmocka_unit_test(test_pvh_phdr_bounds),
		cmocka_unit_test(test_pvh_segment_outside_ram),
		cmocka_unit_test(test_pvh_overflow),
		cmocka_unit_test(test_pvh_bad_header),
		cmocka_unit_test(test_pvh_cmdline_limit),
		cmocka_unit_test(test_not_a_kernel),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
