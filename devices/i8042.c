#include "i8042.h"

#include <string.h>

#include "log.h"
#include "vm.h"

#define I8042_DATA	0	/* port 0x60 */
#define I8042_CMD	4	/* port 0x64 */
#define CMD_RESET_CPU	0xfe

/* No keyboard behind it: status says "nothing to read, ready to write". */
static void i8042_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
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
