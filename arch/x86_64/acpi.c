/* Hardware-reduced ACPI (ACPI 6.x): RSDP in the BIOS scan area, XSDT,
 * FADT, MADT and a DSDT in AML that describes the virtio-mmio devices,
 * the COM1 UART, pvpanic, the power button behind a Generic Event Device
 * and the S5 sleep state. */
#include "acpi.h"

#include <errno.h>
#include <string.h>

#include "aml.h"
#include "boot.h"
#include "guest_mem.h"
#include "log.h"

#define OEM_ID		"COVE  "
#define OEM_TABLE_ID	"COVEMVM "
#define CREATOR_ID	"COVE"
#define IOAPIC_PINS	24

/* Table sizes and field offsets (ACPI 6.x, chapter 5) */
#define SDT_HDR_LEN	36
#define RSDP_LEN	36
#define FADT_LEN	276
#define FADT_REVISION	6

#define FADT_DSDT		40
#define FADT_IAPC_BOOT_ARCH	109
#define FADT_FLAGS		112
#define FADT_MINOR_VERSION	131
#define FADT_X_DSDT		140
#define FADT_SLEEP_CONTROL	244
#define FADT_SLEEP_STATUS	256
#define FADT_HYPERVISOR_ID	268

#define FADT_HW_REDUCED_ACPI	(1u << 20)
#define BOOT_ARCH_NO_VGA	(1u << 2)
#define BOOT_ARCH_NO_CMOS_RTC	(1u << 5)

#define GAS_SYSTEM_IO		1
#define GAS_ACCESS_BYTE		1

#define MADT_REVISION		5
#define MADT_LAPIC		0
#define MADT_IOAPIC		1
#define MADT_ISO		2
#define MADT_LAPIC_NMI		4
#define MADT_ENABLED		1

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint8_t checksum(const uint8_t *p, size_t n)
{
	uint8_t sum = 0;

	while (n--)
		sum += *p++;
	return (uint8_t)-sum;
}

/* Fill the common header of a table of `len` bytes and checksum it. */
static void sdt_finish(uint8_t *t, const char *sig, uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	t[9] = 0;
	memcpy(t + 10, OEM_ID, 6);
	memcpy(t + 16, OEM_TABLE_ID, 8);
	put32(t + 24, 1);			/* OEM revision */
	memcpy(t + 28, CREATOR_ID, 4);
	put32(t + 32, 1);			/* creator revision */
	t[9] = checksum(t, len);
}

/* Generic Address Structure: an 8-bit System I/O register. */
static void gas_io8(uint8_t *p, uint16_t port)
{
	p[0] = GAS_SYSTEM_IO;
	p[1] = 8;				/* bit width */
	p[2] = 0;				/* bit offset */
	p[3] = GAS_ACCESS_BYTE;
	put64(p + 4, port);
}

static size_t fadt(uint8_t *t, uint64_t dsdt)
{
	memset(t, 0, FADT_LEN);
	put32(t + FADT_DSDT, (uint32_t)dsdt);
	/* No "8042" flag: Linux then skips probing the keyboard controller,
	 * whose timeout (10000 polls of 50 us) would cost every boot 0.5 s.
	 * reboot=k still resets through port 0x64 (devices/i8042.c). */
	put16(t + FADT_IAPC_BOOT_ARCH, BOOT_ARCH_NO_VGA | BOOT_ARCH_NO_CMOS_RTC);
	put32(t + FADT_FLAGS, FADT_HW_REDUCED_ACPI);
	t[FADT_MINOR_VERSION] = 0;
	put64(t + FADT_X_DSDT, dsdt);
	gas_io8(t + FADT_SLEEP_CONTROL, LAYOUT_ACPI_SLEEP_CTL);
	gas_io8(t + FADT_SLEEP_STATUS, LAYOUT_ACPI_SLEEP_STS);
	memcpy(t + FADT_HYPERVISOR_ID, CREATOR_ID, 4);
	sdt_finish(t, "FACP", FADT_LEN, FADT_REVISION);
	return FADT_LEN;
}

static size_t madt(uint8_t *t, int ncpus)
{
	size_t n = SDT_HDR_LEN;

	memset(t, 0, SDT_HDR_LEN + 8);
	put32(t + n, (uint32_t)LAYOUT_LAPIC);
	put32(t + n + 4, 0);			/* no PCAT_COMPAT: no 8259s to mask */
	n += 8;
	for (int i = 0; i < ncpus; i++) {
		uint8_t *e = t + n;

		e[0] = MADT_LAPIC;
		e[1] = 8;
		e[2] = (uint8_t)i;		/* ACPI processor UID */
		e[3] = (uint8_t)i;		/* APIC id */
		put32(e + 4, MADT_ENABLED);
		n += 8;
	}
	t[n] = MADT_IOAPIC;
	t[n + 1] = 12;
	t[n + 2] = (uint8_t)ncpus;		/* IOAPIC id */
	t[n + 3] = 0;
	put32(t + n + 4, (uint32_t)LAYOUT_IOAPIC);
	put32(t + n + 8, 0);			/* GSI base */
	n += 12;
	t[n] = MADT_ISO;			/* ISA IRQ 0 -> GSI 2 */
	t[n + 1] = 10;
	t[n + 2] = 0;				/* bus: ISA */
	t[n + 3] = 0;				/* source IRQ */
	put32(t + n + 4, 2);
	put16(t + n + 8, 0);			/* conforms to the bus: edge, high */
	n += 10;
	t[n] = MADT_LAPIC_NMI;			/* NMI on LINT1 of every CPU */
	t[n + 1] = 6;
	t[n + 2] = 0xff;			/* all processors */
	put16(t + n + 3, 0);
	t[n + 5] = 1;				/* LINT1 */
	n += 6;
	sdt_finish(t, "APIC", (uint32_t)n, MADT_REVISION);
	return n;
}

/* DSDT definition block: \_SB with the devices, and \_S5. */
static int dsdt(uint8_t *t, size_t cap, const struct arch_mmio_dev *devs, int ndevs)
{
	struct aml a;
	char name[5];
	int len;

	if (cap < SDT_HDR_LEN)
		return -ENOSPC;
	memset(t, 0, SDT_HDR_LEN);
	aml_init(&a, t + SDT_HDR_LEN, cap - SDT_HDR_LEN);
	aml_scope(&a, "\\_SB_");
	for (int i = 0; i < ndevs; i++) {
		static const char hex[] = "0123456789ABCDEF";

		name[0] = 'V';
		name[1] = 'R';
		name[2] = hex[(i >> 4) & 0xf];
		name[3] = hex[i & 0xf];
		name[4] = '\0';
		aml_device(&a, name);
		aml_name(&a, "_HID");
		aml_string(&a, "LNRO0005");
		aml_name(&a, "_UID");
		aml_integer(&a, (uint64_t)i);
		aml_name(&a, "_CRS");
		aml_buffer(&a);
		aml_res_memory32_fixed(&a, 1, (uint32_t)devs[i].base, devs[i].size);
		aml_res_irq_edge_high(&a, devs[i].irq);
		aml_res_end(&a);
		aml_close(&a);
		aml_close(&a);
	}

	aml_device(&a, "COM1");
	aml_name(&a, "_HID");
	aml_eisaid(&a, "PNP0501");
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	aml_name(&a, "_CRS");
	aml_buffer(&a);
	aml_res_io(&a, LAYOUT_COM1_PORT, LAYOUT_COM1_PORT, 1, 8);
	aml_res_irq_edge_high(&a, LAYOUT_COM1_IRQ);
	aml_res_end(&a);
	aml_close(&a);
	aml_close(&a);

	aml_device(&a, "PEVT");
	aml_name(&a, "_HID");
	aml_string(&a, "QEMU0001");
	aml_name(&a, "_CRS");
	aml_buffer(&a);
	aml_res_io(&a, LAYOUT_PVPANIC_PORT, LAYOUT_PVPANIC_PORT, 1, 1);
	aml_res_end(&a);
	aml_close(&a);
	aml_close(&a);

	/* The power button; the monitor presses it through the GED: its
	 * interrupt runs _EVT, which notifies the button (0x80: pressed). */
	aml_device(&a, "PWRB");
	aml_name(&a, "_HID");
	aml_eisaid(&a, "PNP0C0C");
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	aml_close(&a);

	aml_device(&a, "GED0");
	aml_name(&a, "_HID");
	aml_string(&a, "ACPI0013");
	aml_name(&a, "_UID");
	aml_integer(&a, 0);
	aml_name(&a, "_CRS");
	aml_buffer(&a);
	aml_res_irq_edge_high(&a, LAYOUT_GED_IRQ);
	aml_res_end(&a);
	aml_close(&a);
	aml_method(&a, "_EVT", 1);
	aml_notify(&a, "\\_SB_.PWRB", 0x80);
	aml_close(&a);
	aml_close(&a);
	aml_close(&a);				/* \_SB */

	/* S5: the guest writes SLP_TYP 5 with SLP_EN to the sleep control
	 * register to power off. */
	aml_name(&a, "\\_S5_");
	aml_package(&a, 2);
	aml_integer(&a, 5);
	aml_integer(&a, 0);
	aml_close(&a);

	len = aml_finish(&a);
	if (len < 0)
		return len;
	sdt_finish(t, "DSDT", (uint32_t)(SDT_HDR_LEN + len), 2);	/* rev 2: 64-bit integers */
	return SDT_HDR_LEN + len;
}

static size_t align16(size_t n)
{
	return (n + 15) & ~(size_t)15;
}

int acpi_write(const struct guest_mem *gm, int ncpus,
	       const struct arch_mmio_dev *devs, int ndevs, uint64_t *rsdp)
{
	const size_t cap = BOOT_ACPI_END - BOOT_ACPI;
	const size_t xsdt_off = 0x40, fadt_off = 0x80;
	size_t madt_off, dsdt_off, n;
	uint8_t *p = gm_ptr(gm, BOOT_ACPI, cap);
	int len;

	if (!p)
		return cove_fail(-EINVAL, "acpi: no guest memory at %#llx", BOOT_ACPI);
	if (ncpus < 1 || ncpus > LAYOUT_MAX_CPUS || ndevs < 0 || ndevs > 256)
		return cove_fail(-EINVAL, "acpi: %d vCPUs, %d devices", ncpus, ndevs);
	memset(p, 0, cap);

	madt_off = align16(fadt_off + FADT_LEN);
	n = madt(p + madt_off, ncpus);
	dsdt_off = align16(madt_off + n);
	len = dsdt(p + dsdt_off, cap - dsdt_off, devs, ndevs);
	if (len < 0)
		return cove_fail(len, "acpi: the DSDT does not fit in %zu bytes", cap - dsdt_off);
	fadt(p + fadt_off, BOOT_ACPI + dsdt_off);

	/* XSDT: the FADT and the MADT. */
	put64(p + xsdt_off + SDT_HDR_LEN, BOOT_ACPI + fadt_off);
	put64(p + xsdt_off + SDT_HDR_LEN + 8, BOOT_ACPI + madt_off);
	sdt_finish(p + xsdt_off, "XSDT", SDT_HDR_LEN + 16, 1);

	/* RSDP, ACPI 2.0+: no RSDT, the XSDT only. */
	memcpy(p, "RSD PTR ", 8);
	memcpy(p + 9, OEM_ID, 6);
	p[15] = 2;				/* revision */
	put32(p + 16, 0);			/* RsdtAddress */
	put32(p + 20, RSDP_LEN);
	put64(p + 24, BOOT_ACPI + xsdt_off);
	p[8] = checksum(p, 20);
	p[32] = checksum(p, RSDP_LEN);

	*rsdp = BOOT_ACPI;
	return 0;
}
