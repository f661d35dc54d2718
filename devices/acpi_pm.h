/* Hardware-reduced ACPI power management: the FADT's sleep control and
 * status registers (S5 = power off), the pvpanic port, and the power
 * button (the DSDT's Generic Event Device interrupt). */
#ifndef COVE_ACPI_PM_H
#define COVE_ACPI_PM_H

struct vm;

/* Register the sleep registers and the pvpanic port. 0 or -errno.
 * Setup thread. */
int acpi_pm_create(struct vm *vm);

/* Press the power button: pulse the GED's interrupt (LAYOUT_GED_IRQ, edge)
 * with KVM_IRQ_LINE; the DSDT's _EVT notifies \_SB.PWRB. 0 or -errno with
 * cove_fail's message. Any thread. */
int acpi_pm_power_button(struct vm *vm);

#endif
