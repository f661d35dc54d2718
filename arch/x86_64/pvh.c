/* Xen PVH boot ABI for an uncompressed ELF vmlinux: load the PT_LOAD
 * segments, find XEN_ELFNOTE_PHYS32_ENTRY, and enter in 32-bit protected
 * mode with %ebx pointing at struct hvm_start_info. */
#include "pvh.h"

#include <assert.h>
#include <elf.h>
#include <errno.h>
#include <string.h>

#include "guest_mem.h"
#include "log.h"

#define XEN_ELFNOTE_PHYS32_ENTRY	18
#define HVM_START_MAGIC			0x336ec578
#define PHDR_MAX			256
#define SHDR_MAX			4096
#define FOUR_GiB			0x100000000ULL
#define LINUX_CMDLINE_MAX		2047	/* x86 COMMAND_LINE_SIZE - 1 */

struct hvm_start_info {
	uint32_t magic;
	uint32_t version;
	uint32_t flags;
	uint32_t nr_modules;
	uint64_t modlist_paddr;
	uint64_t cmdline_paddr;
	uint64_t rsdp_paddr;
	uint64_t memmap_paddr;		/* version 1 */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_modlist_entry {
	uint64_t paddr;
	uint64_t size;
	uint64_t cmdline_paddr;
	uint64_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
	uint32_t reserved;
};

static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info");
static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 32, "rsdp_paddr");
static_assert(offsetof(struct hvm_start_info, memmap_entries) == 48, "memmap_entries");
static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry");
static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry");
static_assert(BOOT_START_INFO + sizeof(struct hvm_start_info) <= BOOT_MODLIST, "start info room");
static_assert(BOOT_MODLIST + sizeof(struct hvm_modlist_entry) <= BOOT_MEMMAP, "modlist room");
static_assert(BOOT_MEMMAP + BOOT_MEM_MAP_MAX * sizeof(struct hvm_memmap_table_entry) <= BOOT_ZERO_PAGE,
	      "memmap room");

/* ELF32 and ELF64 headers reduced to what the loader uses. */
struct elf {
	const uint8_t *img;
	size_t len;
	bool is64;
	uint64_t phoff, shoff;
	uint32_t phentsize, phnum, shentsize, shnum;
};

struct seg {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz, align;
};

/* [off, off+n) lies inside the file (overflow-safe). */
static bool in_file(const struct elf *e, uint64_t off, uint64_t n)
{
	return off <= e->len && n <= e->len - off;
}

bool pvh_match(const uint8_t *img, size_t len)
{
	return img && len >= SELFMAG && memcmp(img, ELFMAG, SELFMAG) == 0;
}

static int parse_ehdr(const uint8_t *img, size_t len, struct elf *e)
{
	uint16_t type, machine;

	memset(e, 0, sizeof(*e));
	e->img = img;
	e->len = len;
	if (!pvh_match(img, len) || len < EI_NIDENT)
		return cove_fail(-ENOEXEC, "kernel: not an ELF file");
	if (img[EI_CLASS] != ELFCLASS32 && img[EI_CLASS] != ELFCLASS64)
		return cove_fail(-ENOEXEC, "kernel: ELF class %u is not supported", img[EI_CLASS]);
	e->is64 = img[EI_CLASS] == ELFCLASS64;
	if (img[EI_DATA] != ELFDATA2LSB)
		return cove_fail(-ENOEXEC, "kernel: ELF file is not little-endian");
	if (img[EI_VERSION] != EV_CURRENT)
		return cove_fail(-EINVAL, "kernel: ELF version %u is not supported", img[EI_VERSION]);

	/* ELF32 and ELF64 headers differ only in field widths. */
#define READ_EHDR(Ehdr, Phdr, Shdr)							\
	do {										\
		Ehdr h;									\
		if (len < sizeof(h))							\
			return cove_fail(-EINVAL, "kernel: ELF header is truncated");	\
		memcpy(&h, img, sizeof(h));						\
		type = h.e_type;							\
		machine = h.e_machine;							\
		e->phoff = h.e_phoff;							\
		e->phentsize = h.e_phentsize;						\
		e->phnum = h.e_phnum;							\
		e->shoff = h.e_shoff;							\
		e->shentsize = h.e_shentsize;						\
		e->shnum = h.e_shnum;							\
		if (e->phnum && e->phentsize < sizeof(Phdr))				\
			return cove_fail(-EINVAL, "kernel: ELF program header size %u is too small", \
					 e->phentsize);					\
		if (e->shnum && e->shentsize < sizeof(Shdr))				\
			e->shnum = 0;	/* sections are only a fallback */		\
	} while (0)
	if (e->is64)
		READ_EHDR(Elf64_Ehdr, Elf64_Phdr, Elf64_Shdr);
	else
		READ_EHDR(Elf32_Ehdr, Elf32_Phdr, Elf32_Shdr);
#undef READ_EHDR
	if (machine != EM_X86_64 && machine != EM_386)
		return cove_fail(-ENOEXEC, "kernel: ELF machine %u is not x86", machine);
	if (type != ET_EXEC)
		return cove_fail(-ENOEXEC, "kernel: ELF file is not an executable (e_type %u)", type);
	if (e->phnum == 0 || e->phnum > PHDR_MAX)
		return cove_fail(-EINVAL, "kernel: ELF file has %u program headers (1..%d expected)",
				 e->phnum, PHDR_MAX);
	if (!in_file(e, e->phoff, (uint64_t)e->phnum * e->phentsize))
		return cove_fail(-EINVAL, "kernel: ELF program headers lie outside the file");
	if (e->shnum > SHDR_MAX || !in_file(e, e->shoff, (uint64_t)e->shnum * e->shentsize))
		e->shnum = 0;
	return 0;
}

static void read_phdr(const struct elf *e, uint32_t i, struct seg *s)
{
	const uint8_t *p = e->img + e->phoff + (uint64_t)i * e->phentsize;

	if (e->is64) {
		Elf64_Phdr ph;

		memcpy(&ph, p, sizeof(ph));
		*s = (struct seg){ ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_align };
	} else {
		Elf32_Phdr ph;

		memcpy(&ph, p, sizeof(ph));
		*s = (struct seg){ ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_align };
	}
}

/* Section i as a note segment (type PT_NOTE when it is SHT_NOTE). */
static void read_shdr(const struct elf *e, uint32_t i, struct seg *s)
{
	const uint8_t *p = e->img + e->shoff + (uint64_t)i * e->shentsize;

	if (e->is64) {
		Elf64_Shdr sh;

		memcpy(&sh, p, sizeof(sh));
		*s = (struct seg){ sh.sh_type == SHT_NOTE ? PT_NOTE : PT_NULL, sh.sh_offset, 0,
				   sh.sh_size, sh.sh_size, sh.sh_addralign };
	} else {
		Elf32_Shdr sh;

		memcpy(&sh, p, sizeof(sh));
		*s = (struct seg){ sh.sh_type == SHT_NOTE ? PT_NOTE : PT_NULL, sh.sh_offset, 0,
				   sh.sh_size, sh.sh_size, sh.sh_addralign };
	}
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Walk the notes of one PT_NOTE/SHT_NOTE: 1 with *entry set when the
 * PHYS32_ENTRY note is there, 0 when not, -EINVAL when malformed. */
static int find_entry_note(const struct elf *e, const struct seg *s, uint32_t *entry)
{
	uint64_t align = s->align == 8 ? 8 : 4, off = 0, size = s->filesz;
	const uint8_t *p;

	if (!in_file(e, s->offset, s->filesz))
		return cove_fail(-EINVAL, "kernel: ELF note segment lies outside the file");
	p = e->img + s->offset;
	while (size - off >= 12) {
		uint32_t w[3];
		uint64_t name, desc, namesz, descsz;

		memcpy(w, p + off, sizeof(w));
		namesz = align_up(w[0], align);
		descsz = align_up(w[1], align);
		name = off + 12;
		if (namesz > size - name)
			return cove_fail(-EINVAL, "kernel: ELF note name runs past its segment");
		desc = name + namesz;
		if (descsz > size - desc)
			return cove_fail(-EINVAL, "kernel: ELF note descriptor runs past its segment");
		if (w[0] == 4 && memcmp(p + name, "Xen", 4) == 0 &&
		    w[2] == XEN_ELFNOTE_PHYS32_ENTRY) {
			if (w[1] < 4)
				return cove_fail(-EINVAL, "kernel: PVH entry note is %u bytes, 4 expected", w[1]);
			memcpy(entry, p + desc, 4);
			return 1;
		}
		off = desc + descsz;
	}
	return 0;
}

/* Check segment i; a PT_LOAD must be in the file and in [1 MiB, 4 GiB). */
static int check_load(const struct elf *e, const struct seg *s)
{
	if (s->filesz > s->memsz)
		return cove_fail(-EINVAL, "kernel: ELF segment has filesz %#llx > memsz %#llx",
				 (unsigned long long)s->filesz, (unsigned long long)s->memsz);
	if (!in_file(e, s->offset, s->filesz))
		return cove_fail(-EINVAL, "kernel: ELF segment at file offset %#llx+%#llx lies outside the file",
				 (unsigned long long)s->offset, (unsigned long long)s->filesz);
	if (s->paddr < BOOT_KERNEL || s->paddr >= FOUR_GiB || s->memsz > FOUR_GiB - s->paddr)
		return cove_fail(-EINVAL, "kernel: ELF segment [%#llx, +%#llx) is not between 1 MiB and 4 GiB",
				 (unsigned long long)s->paddr, (unsigned long long)s->memsz);
	return 0;
}

int pvh_check(const uint8_t *img, size_t len, uint32_t *entry)
{
	struct elf e;
	struct seg s;
	bool found = false, in_seg = false;
	int nload = 0, err;

	err = parse_ehdr(img, len, &e);
	if (err)
		return err;
	for (uint32_t i = 0; i < e.phnum; i++) {
		read_phdr(&e, i, &s);
		if (s.type == PT_LOAD) {
			err = check_load(&e, &s);
			if (err)
				return err;
			nload++;
		} else if (s.type == PT_NOTE && !found) {
			err = find_entry_note(&e, &s, entry);
			if (err < 0)
				return err;
			found = err;
		}
	}
	if (nload == 0)
		return cove_fail(-EINVAL, "kernel: ELF file has no loadable segment");
	for (uint32_t i = 0; i < e.shnum && !found; i++) {
		read_shdr(&e, i, &s);
		if (s.type != PT_NOTE)
			continue;
		err = find_entry_note(&e, &s, entry);
		if (err < 0)
			return err;
		found = err;
	}
	if (!found)
		return cove_fail(-ENOEXEC, "kernel: ELF vmlinux has no PVH entry note "
				 "(XEN_ELFNOTE_PHYS32_ENTRY); build it with CONFIG_PVH=y or use the bzImage");
	for (uint32_t i = 0; i < e.phnum && !in_seg; i++) {
		read_phdr(&e, i, &s);
		in_seg = s.type == PT_LOAD && *entry >= s.paddr && *entry - s.paddr < s.filesz;
	}
	if (!in_seg)
		return cove_fail(-EINVAL, "kernel: PVH entry %#x is outside the loaded segments", *entry);
	return 0;
}

int pvh_load(const struct guest_mem *gm, const struct arch_load_args *a,
	     const struct boot_mem_map *map, uint64_t rsdp, struct arch_boot *boot)
{
	struct hvm_start_info si = { 0 };
	struct hvm_modlist_entry mod = { 0 };
	struct hvm_memmap_table_entry mm[BOOT_MEM_MAP_MAX];
	struct elf e;
	struct seg s;
	uint64_t kernel_end = 0, initrd = 0;
	uint32_t entry = 0;
	int err;

	err = pvh_check(a->kernel, a->kernel_len, &entry);
	if (err)
		return err;
	parse_ehdr(a->kernel, a->kernel_len, &e);
	for (uint32_t i = 0; i < e.phnum; i++) {
		uint8_t *dst;

		read_phdr(&e, i, &s);
		if (s.type != PT_LOAD || s.memsz == 0)
			continue;
		dst = gm_ptr(gm, s.paddr, s.memsz);
		if (!dst || s.paddr + s.memsz > map->low_end)
			return cove_fail(-E2BIG, "kernel: ELF segment [%#llx, %#llx) is outside guest RAM "
					 "(%llu MiB low memory)", (unsigned long long)s.paddr,
					 (unsigned long long)(s.paddr + s.memsz),
					 (unsigned long long)(map->low_end >> 20));
		memcpy(dst, a->kernel + s.offset, s.filesz);
		memset(dst + s.filesz, 0, s.memsz - s.filesz);
		if (s.paddr + s.memsz > kernel_end)
			kernel_end = s.paddr + s.memsz;
	}

	err = boot_write_cmdline(gm, a->cmdline, LINUX_CMDLINE_MAX);
	if (err)
		return err;
	err = boot_load_initrd(gm, a, map, kernel_end, UINT64_MAX, &initrd);
	if (err)
		return err;

	si.magic = HVM_START_MAGIC;
	si.version = 1;
	si.cmdline_paddr = BOOT_CMDLINE;
	si.rsdp_paddr = rsdp;
	if (initrd) {
		mod.paddr = initrd;
		mod.size = a->initrd_len;
		si.nr_modules = 1;
		si.modlist_paddr = BOOT_MODLIST;
	}
	memset(mm, 0, sizeof(mm));
	for (int i = 0; i < map->n && i < BOOT_MEM_MAP_MAX; i++) {
		mm[i].addr = map->e[i].addr;
		mm[i].size = map->e[i].size;
		mm[i].type = map->e[i].type;
		si.memmap_entries = i + 1;
	}
	si.memmap_paddr = BOOT_MEMMAP;
	if (gm_write(gm, BOOT_START_INFO, &si, sizeof(si)) < 0 ||
	    gm_write(gm, BOOT_MODLIST, &mod, sizeof(mod)) < 0 ||
	    gm_write(gm, BOOT_MEMMAP, mm, sizeof(mm)) < 0)
		return cove_fail(-EINVAL, "kernel: no guest memory for the PVH start info");

	boot->format = ARCH_KERNEL_PVH;
	boot->entry = entry;
	boot->boot_info = BOOT_START_INFO;
	boot->kernel_end = kernel_end;
	return 0;
}
