#include "acpi_pm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"
#include "vm.h"

/* Sleep control register: SLP_TYPx in bits 2-4, SLP_EN bit 5. The DSDT's
 * \_S5 package says SLP_TYP 5 means soft-off. */
#define SLP_EN		0x20
#define SLP_TYP(v)	(((v) >> 2) & 7)
#define SLP_TYP_S5	5
#define PVPANIC_PANICKED 1

static void pm_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
}

static void sleep_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	uint8_t v = *(const uint8_t *)data;

	(void)len;
	if (off == 0 && (v & SLP_EN) &&
	    SLP_TYP(v) == SLP_TYP_S5)
		vm_request_exit(opaque, COVE_EXIT_POWEROFF, 0);
}

static void pvpanic_read(void *opaque, uint64_t off, void *data, uint32_t len)
{
	(void)opaque;
	(void)off;
	memset(data, 0, len);
	*(uint8_t *)data = PVPANIC_PANICKED;	/* the events we understand */
}

static void pvpanic_write(void *opaque, uint64_t off, const void *data, uint32_t len)
{
	(void)off;
	(void)len;
	if (*(const uint8_t *)data & PVPANIC_PANICKED)
		vm_request_exit(opaque, COVE_EXIT_PANIC, 0);
}

static const struct bus_ops sleep_ops = { .read = pm_read, .write = sleep_write };
static const struct bus_ops pvpanic_ops = { .read = pvpanic_read, .write = pvpanic_write };

int acpi_pm_create(struct vm *vm)
{
	int err = bus_register(&vm->pio, LAYOUT_ACPI_SLEEP_CTL, 2, &sleep_ops, vm);

	if (err == 0)
		err = bus_register(&vm->pio, LAYOUT_PVPANIC_PORT, 1, &pvpanic_ops, vm);
	if (err < 0)
		return cove_fail(err, "acpi: cannot register power-management ports");
	return 0;
}

int acpi_pm_power_button(struct vm *vm)
{
	struct kvm_irq_level irq = { .irq = LAYOUT_GED_IRQ, .level = 1 };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		return cove_fail(-errno, "KVM_IRQ_LINE %u: %s", irq.irq, strerror(errno));
	irq.level = 0;
	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0)
		return cove_fail(-errno, "KVM_IRQ_LINE %u: %s", irq.irq, strerror(errno));
	return 0;
}
