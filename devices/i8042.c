#include "i8042.h"

#include <string.h>

#include "log.h"
#include "vm.h"

#define I8042_DATA	0	/* port 0x60 */
#define I8042_CMD	4	/* port 0x64 */
#define CMD_RESET_CPU	0xfe
#define STATUS_OBF	0x01	/* output buffer full: data to read */

/* Only the reset line is here. The status register always says "data to
 * read, ready to write" and the data register gives 0xff: a guest that
 * probes (one without ACPI tables) finds its buffer never drains and
 * gives up at once ("No controller found"), where an empty buffer would
 * have it wait out a 0.5 s timeout for each reply; reboot=k, which waits
 * only for "ready to write", resets at once. */
static void i8042_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque;
	memset(data, 0, len);
	*(uint8_t *)data = off == I8042_CMD ? STATUS_OBF : 0xff;
}

static void i8042_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	(void)len;
	if (off == I8042_CMD && *(const uint8_t *)data == CMD_RESET_CPU)
		vm_request_exit(opaque, COVE_EXIT_REBOOT, 0);
}

static const struct bus_ops i8042_ops = {
	.read = i8042_read,
	.write = i8042_write,
};

int i8042_create(struct vm *vm)
{
	int err = bus_register(&vm->pio, LAYOUT_I8042_PORT, 5, &i8042_ops, vm);

	if (err < 0)
		return cove_fail(err, "i8042: cannot register ports");
	return 0;
}
