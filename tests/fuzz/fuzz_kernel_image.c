/* Fuzz the kernel image parsers: the input is a kernel file, probed and
 * loaded with an initrd into 64 MiB of fake guest memory with the
 * platform tables. Nothing in it may crash the loader or make it touch
 * memory outside the guest's. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arch.h"
#include "guest_mem.h"
#include "log.h"

#define MEM_SIZE	(64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t *mem;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t initrd[8192] = { 1, 2, 3 };
	static const struct arch_mmio_dev devs[2] = {
		{ LAYOUT_VIRTIO_BASE, LAYOUT_VIRTIO_SIZE, LAYOUT_VIRTIO_IRQ_FIRST },
		{ LAYOUT_VIRTIO_BASE + LAYOUT_VIRTIO_SIZE, LAYOUT_VIRTIO_SIZE, LAYOUT_VIRTIO_IRQ_FIRST + 1 },
	};
	struct guest_mem gm = { 0 };
	struct arch_load_args a = {
		.kernel = data,
		.kernel_len = size,
		.initrd = initrd,
		.initrd_len = sizeof(initrd),
		.cmdline = "console=ttyS0 reboot=k panic=-1",
		.ncpus = 2,
		.devs = devs,
		.ndevs = 2,
		.acpi = true,
	};
	enum arch_kernel_format fmt;
	struct arch_boot boot;
	int probe, load;

	if (!mem) {
		/* Untouched pages cost nothing; the loader writes what it uses. */
		mem = calloc(1, MEM_SIZE);
		if (!mem)
			abort();
	}
	if (gm_add_region(&gm, 0, MEM_SIZE, mem) < 0)
		abort();
	/* The input buffer is exactly `size` bytes: ASan catches any read
	 * past it. Loading must agree with probing. */
	probe = arch_kernel_probe(size ? data : NULL, size, &fmt);
	load = arch_load(&gm, &a, &boot);
	if (probe == 0 && load == -ENOEXEC)
		abort();
	if (probe < 0 && load == 0)
		abort();
	if (load == 0) {
		if (boot.format != fmt || boot.kernel_end > MEM_SIZE || boot.entry >= MEM_SIZE)
			abort();
		if (!gm_ptr(&gm, boot.boot_info, 1))
			abort();
	}
	cove_clear_error();
	return 0;
}
