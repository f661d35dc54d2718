#include "boot_timer.h"

#include <string.h>

#include "log.h"
#include "vm.h"

static void bt_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
}

static void bt_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	struct vm *vm = opaque;
	uint64_t t;

	(void)len;
	if (off != 0 || *(const uint8_t *)data != BOOT_TIMER_MAGIC)
		return;
	t = vm_now_ns() - vm->start_ns;
	/* The first write counts; later ones (a second init) do not. */
	uint64_t zero = 0;
	__atomic_compare_exchange_n(&vm->times.boot_timer, &zero, t, false,
				    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

static const struct bus_ops bt_ops = {
	.read = bt_read,
	.write = bt_write,
};

int boot_timer_create(struct vm *vm)
{
	int err = bus_register(&vm->mmio, LAYOUT_BOOT_TIMER, LAYOUT_BOOT_TIMER_SIZE, &bt_ops, vm);

	if (err < 0)
		return cove_fail(err, "boot timer: cannot register MMIO page");
	return 0;
}
