/* Hardware-reduced ACPI tables: RSDP, XSDT, FADT, MADT, DSDT (acpi.c). */
#ifndef COVE_X86_ACPI_H
#define COVE_X86_ACPI_H

#include <stdint.h>

#include "arch.h"

struct guest_mem;

/* Write the ACPI tables in [BOOT_ACPI, BOOT_ACPI_END), the RSDP first:
 * MADT with ncpus local APICs and the IOAPIC, FADT (HW_REDUCED_ACPI,
 * sleep registers), DSDT with one LNRO0005 device per devs entry, COM1,
 * pvpanic and \_S5. ncpus and devs must have been validated. 0 with
 * *rsdp set, or -errno with cove_fail's message. Setup thread. */
int acpi_write(const struct guest_mem *gm, int ncpus,
	       const struct arch_mmio_dev *devs, int ndevs, uint64_t *rsdp);

#endif
