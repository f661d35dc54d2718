/* Hardware-reduced ACPI power management: the FADT's sleep control and
 * status registers (S5 = power off), and the pvpanic port. */
#ifndef COVE_ACPI_PM_H
#define COVE_ACPI_PM_H

struct vm;

/* Register the sleep registers and the pvpanic port. 0 or -errno.
 * Setup thread. */
int acpi_pm_create(struct vm *vm);

#endif
