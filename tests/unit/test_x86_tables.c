/* x86_64 platform tables: MP table, ACPI RSDP/XSDT/FADT/MADT/DSDT, and
 * the AML emitter, checked byte by byte in a fake guest memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "acpi.h"
#include "aml.h"
#include "arch.h"
#include "boot.h"
#include "bytes.h"
#include "fake_mem.h"
#include "guest_mem.h"
#include "mptable.h"

#define MiB (1ULL << 20)

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s += *p++;
	return s;
}

static struct fake_mem fm;

static int setup(void **state)
{
	(void)state;
	return fake_mem_init(&fm, 0, 4 * MiB);
}

static int teardown(void **state)
{
	(void)state;
	fake_mem_free(&fm);
	return 0;
}

static uint8_t *gp(uint64_t gpa)
{
	return fake_mem_ptr(&fm, gpa);
}

static void make_devs(struct arch_mmio_dev *d, int n)
{
	for (int i = 0; i < n; i++)
		d[i] = (struct arch_mmio_dev){ LAYOUT_VIRTIO_BASE + i * LAYOUT_VIRTIO_SIZE,
					       LAYOUT_VIRTIO_SIZE, LAYOUT_VIRTIO_IRQ_FIRST + i };
}

/* ---- MP table ---- */

static void check_mptable(int ncpus, const struct arch_mmio_dev *devs, int ndevs)
{
	uint8_t *mpf = gp(BOOT_EBDA), *t, *e, *end;
	int cpus = 0, buses = 0, ioapics = 0, lint = 0, entries = 0;
	int pin_of[24];

	memset(pin_of, -1, sizeof(pin_of));
	assert_memory_equal(mpf, "_MP_", 4);
	assert_int_equal(mpf[8], 1);			/* 16 bytes */
	assert_int_equal(mpf[9], 4);			/* spec 1.4 */
	assert_int_equal(sum(mpf, 16), 0);
	assert_int_equal(mpf[11], 0);			/* config table present */
	assert_int_equal(rd32(mpf + 4), BOOT_MPTABLE);

	t = gp(rd32(mpf + 4));
	assert_memory_equal(t, "PCMP", 4);
	assert_int_equal(t[6], 4);
	assert_int_equal(sum(t, rd16(t + 4)), 0);
	assert_int_equal(rd32(t + 36), LAYOUT_LAPIC);
	assert_memory_equal(t + 8, "COVE    ", 8);
	end = t + rd16(t + 4);
	for (e = t + 44; e < end; entries++) {
		switch (e[0]) {
		case 0:		/* processor */
			assert_int_equal(e[1], cpus);
			assert_int_equal(e[3] & 1, 1);
			assert_int_equal(!!(e[3] & 2), cpus == 0);
			cpus++;
			e += 20;
			break;
		case 1:		/* bus */
			assert_memory_equal(e + 2, "ISA   ", 6);
			buses++;
			e += 8;
			break;
		case 2:		/* IOAPIC */
			assert_int_equal(e[1], ncpus);
			assert_int_equal(e[3] & 1, 1);
			assert_int_equal(rd32(e + 4), LAYOUT_IOAPIC);
			ioapics++;
			e += 8;
			break;
		case 3:		/* IO interrupt */
			assert_int_equal(e[1], 0);	/* INT */
			assert_int_equal(e[4], 0);	/* ISA bus */
			assert_int_equal(e[6], ncpus);	/* IOAPIC id */
			assert_true(e[5] < 24);
			assert_int_equal(pin_of[e[5]], -1);	/* once per IRQ */
			pin_of[e[5]] = e[7];
			if (e[5] >= 16)
				assert_int_equal(rd16(e + 2), 0x5);
			e += 8;
			break;
		case 4:		/* local interrupt */
			assert_int_equal(e[6], 0xff);
			if (e[7] == 0)
				assert_int_equal(e[1], 3);	/* ExtINT */
			else
				assert_int_equal(e[1], 1);	/* NMI on LINT1 */
			lint++;
			e += 8;
			break;
		default:
			fail_msg("MP entry type %u", e[0]);
		}
	}
	assert_ptr_equal(e, end);
	assert_int_equal(entries, rd16(t + 34));
	assert_int_equal(cpus, ncpus);
	assert_int_equal(buses, 1);
	assert_int_equal(ioapics, 1);
	assert_int_equal(lint, 2);
	assert_int_equal(pin_of[0], 2);
	assert_int_equal(pin_of[2], -1);
	for (int irq = 1; irq < 16; irq++)
		if (irq != 2)
			assert_int_equal(pin_of[irq], irq);
	for (int i = 0; i < ndevs; i++)
		assert_int_equal(pin_of[devs[i].irq], devs[i].irq);
}

static void test_mptable(void **state)
{
	struct arch_mmio_dev devs[LAYOUT_VIRTIO_MAX];
	int cpus[] = { 1, 2, 7, LAYOUT_MAX_CPUS };

	(void)state;
	make_devs(devs, LAYOUT_VIRTIO_MAX);
	for (size_t i = 0; i < sizeof(cpus) / sizeof(cpus[0]); i++) {
		memset(fm.buf, 0, MiB);
		assert_int_equal(mptable_write(&fm.gm, cpus[i], devs, LAYOUT_VIRTIO_MAX), 0);
		check_mptable(cpus[i], devs, LAYOUT_VIRTIO_MAX);
		memset(fm.buf, 0, MiB);
		assert_int_equal(mptable_write(&fm.gm, cpus[i], devs, 0), 0);
		check_mptable(cpus[i], devs, 0);
	}
	assert_int_equal(mptable_write(&fm.gm, 0, devs, 0), -EINVAL);
}

/* ---- ACPI ---- */

static uint8_t *table(uint64_t gpa, const char *sig)
{
	uint8_t *t = gp(gpa);

	assert_non_null(t);
	assert_memory_equal(t, sig, 4);
	assert_int_equal(sum(t, rd32(t + 4)), 0);
	assert_memory_equal(t + 10, "COVE  ", 6);
	return t;
}

static int count(const uint8_t *p, size_t n, const void *needle, size_t m)
{
	int c = 0;

	for (size_t i = 0; i + m <= n; i++)
		c += memcmp(p + i, needle, m) == 0;
	return c;
}

/* PkgLength at p: the length, and *hdr its own size. */
static size_t pkglen(const uint8_t *p, size_t *hdr)
{
	int k = p[0] >> 6;
	size_t v;

	if (k == 0) {
		*hdr = 1;
		return p[0] & 0x3f;
	}
	v = p[0] & 0x0f;
	for (int i = 1; i <= k; i++)
		v |= (size_t)p[i] << (4 + 8 * (i - 1));
	*hdr = (size_t)k + 1;
	return v;
}

/* Walk the DSDT: Scope(\_SB) holding Devices, then Name(\_S5, Package).
 * Returns the number of devices; checks every PkgLength lands exactly. */
static int walk_dsdt(const uint8_t *t, size_t len)
{
	const uint8_t *p = t + 36, *end = t + len, *sb_end;
	size_t h, l;
	int ndev = 0;

	assert_int_equal(p[0], 0x10);			/* ScopeOp */
	l = pkglen(p + 1, &h);
	sb_end = p + 1 + l;
	assert_true(sb_end <= end);
	assert_memory_equal(p + 1 + h, "\\_SB_", 5);
	p += 1 + h + 5;
	while (p < sb_end) {
		const uint8_t *dev_end;

		assert_int_equal(p[0], 0x5b);		/* DeviceOp */
		assert_int_equal(p[1], 0x82);
		l = pkglen(p + 2, &h);
		dev_end = p + 2 + l;
		assert_true(dev_end <= sb_end);
		if (!memcmp(p + 2 + h, "PWRB", 4)) {
			/* Device(PWRB) { Name(_HID, EisaId("PNP0C0C")) Name(_UID, 0) } */
			static const uint8_t pwrb[] = { 0x5b, 0x82, 0x15, 'P', 'W', 'R', 'B',
				0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0c, 0x0c,
				0x08, '_', 'U', 'I', 'D', 0x00 };
			assert_int_equal(dev_end - p, sizeof(pwrb));
			assert_memory_equal(p, pwrb, sizeof(pwrb));
			p = dev_end;
			ndev++;
			continue;
		}
		if (!memcmp(p + 2 + h, "GED0", 4)) {
			/* Name(_CRS, ResourceTemplate() { Interrupt(…) { GED_IRQ } })
			 * then Method(_EVT, 1) { Notify(\_SB.PWRB, 0x80) } */
			static const uint8_t evt[] = { 0x14, 0x13, '_', 'E', 'V', 'T', 0x01,
				0x86, '\\', 0x2e, '_', 'S', 'B', '_', 'P', 'W', 'R', 'B',
				0x0a, 0x80 };
			uint8_t irq[9] = { 0x89, 6, 0, 0x03, 1, LAYOUT_GED_IRQ, 0, 0, 0 };
			assert_true(dev_end - p > (long)(sizeof(evt) + sizeof(irq) + 2));
			assert_memory_equal(dev_end - sizeof(evt), evt, sizeof(evt));
			assert_memory_equal(dev_end - sizeof(evt) - 2, "\x79\x00", 2);
			assert_memory_equal(dev_end - sizeof(evt) - 2 - sizeof(irq), irq, sizeof(irq));
			assert_memory_equal(p + 2 + h + 4, "\x08_HID\x0d" "ACPI0013", 14);
			p = dev_end;
			ndev++;
			continue;
		}
		p += 2 + h + 4;				/* name */
		assert_int_equal(p[0], 0x08);		/* Name(_HID */
		assert_memory_equal(p + 1, "_HID", 4);
		/* the last Name is _CRS with a buffer ending in an End Tag */
		assert_int_equal(dev_end[-2], 0x79);
		assert_int_equal(dev_end[-1], 0x00);
		p = dev_end;
		ndev++;
	}
	assert_ptr_equal(p, sb_end);
	/* Name(\_S5_, Package(2) { 5, 0 }) */
	static const uint8_t s5[] = { 0x08, '\\', '_', 'S', '5', '_', 0x12, 0x05, 0x02, 0x0a, 0x05, 0x00 };
	assert_int_equal(end - p, sizeof(s5));
	assert_memory_equal(p, s5, sizeof(s5));
	return ndev;
}

static void check_acpi(int ncpus, const struct arch_mmio_dev *devs, int ndevs)
{
	uint8_t *rsdp = gp(BOOT_ACPI), *xsdt, *fadt = NULL, *madt = NULL, *dsdt, *e, *end;
	int lapics = 0, ioapics = 0, isos = 0, nmis = 0;
	static const uint8_t pnp0501[] = { 0x0c, 0x41, 0xd0, 0x05, 0x01 };

	assert_memory_equal(rsdp, "RSD PTR ", 8);
	assert_int_equal(sum(rsdp, 20), 0);
	assert_int_equal(sum(rsdp, 36), 0);
	assert_int_equal(rsdp[15], 2);
	assert_int_equal(rd32(rsdp + 20), 36);
	assert_int_equal(BOOT_ACPI % 16, 0);
	xsdt = table(rd64(rsdp + 24), "XSDT");
	assert_int_equal(rd32(xsdt + 4), 36 + 16);
	for (int i = 0; i < 2; i++) {
		uint8_t *t = gp(rd64(xsdt + 36 + 8 * i));

		if (!memcmp(t, "FACP", 4))
			fadt = table(rd64(xsdt + 36 + 8 * i), "FACP");
		else
			madt = table(rd64(xsdt + 36 + 8 * i), "APIC");
	}
	assert_non_null(fadt);
	assert_non_null(madt);

	/* FADT */
	assert_int_equal(rd32(fadt + 4), 276);
	assert_int_equal(fadt[8], 6);
	assert_true(rd32(fadt + 112) & (1u << 20));		/* HW_REDUCED_ACPI */
	/* no 8042 (so Linux does not probe one), no VGA, no CMOS RTC */
	assert_int_equal(rd16(fadt + 109), (1 << 2) | (1 << 5));
	assert_int_equal(rd64(fadt + 140), rd32(fadt + 40));	/* X_DSDT = DSDT */
	assert_int_equal(fadt[244], 1);				/* System I/O */
	assert_int_equal(fadt[245], 8);
	assert_int_equal(rd64(fadt + 248), LAYOUT_ACPI_SLEEP_CTL);
	assert_int_equal(fadt[256], 1);
	assert_int_equal(fadt[257], 8);
	assert_int_equal(rd64(fadt + 260), LAYOUT_ACPI_SLEEP_STS);

	/* MADT */
	assert_int_equal(rd32(madt + 36), LAYOUT_LAPIC);
	assert_int_equal(rd32(madt + 40) & 1, 0);		/* no PCAT_COMPAT */
	end = madt + rd32(madt + 4);
	for (e = madt + 44; e < end; e += e[1]) {
		assert_true(e[1] >= 2);
		switch (e[0]) {
		case 0:
			assert_int_equal(e[1], 8);
			assert_int_equal(e[3], lapics);
			assert_int_equal(rd32(e + 4) & 1, 1);
			lapics++;
			break;
		case 1:
			assert_int_equal(e[1], 12);
			assert_int_equal(e[2], ncpus);
			assert_int_equal(rd32(e + 4), LAYOUT_IOAPIC);
			assert_int_equal(rd32(e + 8), 0);
			ioapics++;
			break;
		case 2:
			assert_int_equal(e[1], 10);
			assert_int_equal(e[3], 0);
			assert_int_equal(rd32(e + 4), 2);
			isos++;
			break;
		case 4:
			assert_int_equal(e[1], 6);
			assert_int_equal(e[5], 1);
			nmis++;
			break;
		default:
			fail_msg("MADT entry type %u", e[0]);
		}
	}
	assert_ptr_equal(e, end);
	assert_int_equal(lapics, ncpus);
	assert_int_equal(ioapics, 1);
	assert_int_equal(isos, 1);
	assert_int_equal(nmis, 1);

	/* DSDT */
	dsdt = table(rd32(fadt + 40), "DSDT");
	assert_int_equal(dsdt[8], 2);
	assert_int_equal(count(dsdt, rd32(dsdt + 4), "LNRO0005", 8), ndevs);
	assert_int_equal(count(dsdt, rd32(dsdt + 4), "QEMU0001", 8), 1);
	assert_int_equal(count(dsdt, rd32(dsdt + 4), pnp0501, sizeof(pnp0501)), 1);
	assert_int_equal(walk_dsdt(dsdt, rd32(dsdt + 4)), ndevs + 4);
	for (int i = 0; i < ndevs; i++) {
		/* Memory32Fixed(ReadWrite, base, size) and Interrupt(){irq} */
		uint8_t mem[12] = { 0x86, 9, 0, 1 }, irq[9] = { 0x89, 6, 0, 0x03, 1 };

		memcpy(mem + 4, &(uint32_t){ (uint32_t)devs[i].base }, 4);
		memcpy(mem + 8, &devs[i].size, 4);
		memcpy(irq + 5, &devs[i].irq, 4);
		assert_int_equal(count(dsdt, rd32(dsdt + 4), mem, sizeof(mem)), 1);
		assert_int_equal(count(dsdt, rd32(dsdt + 4), irq, sizeof(irq)), 1);
	}
	/* COM1: IO(Decode16, 0x3f8, 0x3f8, 1, 8) and IRQ 4 */
	static const uint8_t com1[] = { 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
					0x89, 0x06, 0x00, 0x03, 0x01, 0x04, 0, 0, 0 };
	assert_int_equal(count(dsdt, rd32(dsdt + 4), com1, sizeof(com1)), 1);
	static const uint8_t pvpanic[] = { 0x47, 0x01, 0x05, 0x05, 0x05, 0x05, 0x01, 0x01 };
	assert_int_equal(count(dsdt, rd32(dsdt + 4), pvpanic, sizeof(pvpanic)), 1);

	/* Everything inside the ACPI area. */
	assert_true(rd32(fadt + 40) + rd32(dsdt + 4) <= BOOT_ACPI_END);
}

static void test_acpi(void **state)
{
	struct arch_mmio_dev devs[LAYOUT_VIRTIO_MAX];
	int cpus[] = { 1, 3, LAYOUT_MAX_CPUS };
	int ndevs[] = { 0, 1, 5, LAYOUT_VIRTIO_MAX };
	uint64_t rsdp = 0;

	(void)state;
	make_devs(devs, LAYOUT_VIRTIO_MAX);
	for (size_t i = 0; i < sizeof(cpus) / sizeof(cpus[0]); i++)
		for (size_t j = 0; j < sizeof(ndevs) / sizeof(ndevs[0]); j++) {
			memset(fm.buf, 0xee, MiB);
			assert_int_equal(acpi_write(&fm.gm, cpus[i], devs, ndevs[j], &rsdp), 0);
			assert_int_equal(rsdp, BOOT_ACPI);
			check_acpi(cpus[i], devs, ndevs[j]);
		}
}

/* Through arch_load with a minimal bzImage: the tables are written too. */
static void test_tables_via_load(void **state)
{
	struct arch_mmio_dev devs[3];
	struct arch_load_args a = { 0 };
	struct arch_boot boot;
	struct fake_mem big;
	uint8_t *img = calloc(1, 5 * 512 + 4096);

	(void)state;
	img[0x1f1] = 4;
	memcpy(img + 0x1fe, "\x55\xaa", 2);
	memcpy(img + 0x202, "HdrS", 4);
	memcpy(img + 0x206, "\x0f\x02", 2);
	img[0x236] = 1;
	memcpy(img + 0x238, "\xff\x07\0\0", 4);
	make_devs(devs, 3);
	a.kernel = img;
	a.kernel_len = 5 * 512 + 4096;
	a.ncpus = 4;
	a.devs = devs;
	a.ndevs = 3;
	a.acpi = true;
	assert_int_equal(fake_mem_init(&big, 0, 64 * MiB), 0);
	assert_int_equal(arch_load(&big.gm, &a, &boot), 0);
	/* Reuse the checks on the big memory's low 4 MiB. */
	memcpy(fm.buf, big.buf, MiB);
	check_mptable(4, devs, 3);
	check_acpi(4, devs, 3);
	fake_mem_free(&big);
	free(img);
}

/* ACPICA's disassembler reads the DSDT without a complaint, and finds
 * the power button and the GED in it. */
static void test_dsdt_iasl(void **state)
{
	struct arch_mmio_dev devs[3];
	char dir[] = "/tmp/cove-dsdt-XXXXXX", path[64], cmd[256], *dsl;
	uint64_t rsdp;
	const uint8_t *fadt, *dsdt;
	FILE *f;
	long n;

	(void)state;
	if (access("/usr/bin/iasl", X_OK) != 0)
		fail_msg("/usr/bin/iasl missing: install acpica-tools (tests/deps.sh)");
	make_devs(devs, 3);
	assert_int_equal(acpi_write(&fm.gm, 2, devs, 3, &rsdp), 0);
	fadt = gp(rd64(gp(rd64(gp(rsdp) + 24)) + 36));
	assert_memory_equal(fadt, "FACP", 4);
	dsdt = gp(rd32(fadt + 40));
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(dsdt, 1, rd32(dsdt + 4), f), rd32(dsdt + 4));
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && /usr/bin/iasl -d dsdt.dat >iasl.log 2>&1", dir);
	if (system(cmd) != 0) {
		snprintf(cmd, sizeof(cmd), "cat %s/iasl.log >&2", dir);
		assert_int_equal(system(cmd), 0);
		fail_msg("iasl -d failed");
	}
	snprintf(path, sizeof(path), "%s/dsdt.dsl", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	dsl = calloc(1, 65536);
	n = (long)fread(dsl, 1, 65535, f);
	fclose(f);
	assert_true(n > 0);
	assert_non_null(strstr(dsl, "Device (PWRB)"));
	assert_non_null(strstr(dsl, "EisaId (\"PNP0C0C\")"));
	assert_non_null(strstr(dsl, "\"ACPI0013\""));
	assert_non_null(strstr(dsl, "Method (_EVT, 1, NotSerialized)"));
	assert_non_null(strstr(dsl, "Notify (\\_SB.PWRB, 0x80)"));
	assert_null(strstr(dsl, "Error"));
	free(dsl);
	if (getenv("COVE_KEEP_DSDT")) {
		fprintf(stderr, "kept %s\n", dir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- AML ---- */

static void test_aml_pkglen(void **state)
{
	uint8_t buf[0x20000];
	struct aml a;
	size_t h;
	static const struct { size_t body; int size; } cases[] = {
		{ 0, 1 }, { 62, 1 }, { 63, 2 }, { 0xffd, 2 }, { 0xffe, 3 },
		{ 0xffffc, 3 }, { 0xffffd, 4 }, { 0xffffffb, 4 }, { 0xffffffc, 0 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(aml_pkglen_size(cases[i].body), cases[i].size);

	/* A package with n filler bytes: PkgLength = 1 (count) + n + its size. */
	for (size_t n = 55; n < 0x10010; n += (n < 70 || (n > 4080 && n < 4100)) ? 1 : 997) {
		uint8_t *fill = calloc(1, n);

		assert_non_null(fill);
		aml_init(&a, buf, sizeof(buf));
		aml_package(&a, 0);
		aml_bytes(&a, fill, n);
		aml_close(&a);
		assert_int_equal(aml_finish(&a), (int)a.len);
		assert_int_equal(buf[0], 0x12);
		size_t l = pkglen(buf + 1, &h);

		assert_int_equal(l, h + 1 + n);
		assert_int_equal(a.len, 1 + h + 1 + n);
		assert_int_equal(buf[1 + h], 0);	/* element count */
		free(fill);
	}
}

static void test_aml_encodings(void **state)
{
	uint8_t buf[256];
	struct aml a;

	(void)state;
	aml_init(&a, buf, sizeof(buf));
	aml_integer(&a, 0);
	aml_integer(&a, 1);
	aml_integer(&a, 5);
	aml_integer(&a, 0x1234);
	aml_integer(&a, 0x12345678);
	aml_integer(&a, 0x123456789aULL);
	static const uint8_t ints[] = { 0x00, 0x01, 0x0a, 0x05, 0x0b, 0x34, 0x12,
					0x0c, 0x78, 0x56, 0x34, 0x12,
					0x0e, 0x9a, 0x78, 0x56, 0x34, 0x12, 0, 0, 0 };
	assert_int_equal(aml_finish(&a), sizeof(ints));
	assert_memory_equal(buf, ints, sizeof(ints));

	aml_init(&a, buf, sizeof(buf));
	aml_namestring(&a, "\\_SB_");
	aml_namestring(&a, "_SB.COM1");
	aml_namestring(&a, "\\A.B.C");
	aml_namestring(&a, "FOO");
	static const uint8_t names[] = { '\\', '_', 'S', 'B', '_',
					 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1',
					 '\\', 0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_',
					 'F', 'O', 'O', '_' };
	assert_int_equal(aml_finish(&a), sizeof(names));
	assert_memory_equal(buf, names, sizeof(names));

	aml_init(&a, buf, sizeof(buf));
	aml_eisaid(&a, "PNP0501");
	aml_string(&a, "LNRO0005");
	static const uint8_t ids[] = { 0x0c, 0x41, 0xd0, 0x05, 0x01,
				       0x0d, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0 };
	assert_int_equal(aml_finish(&a), sizeof(ids));
	assert_memory_equal(buf, ids, sizeof(ids));

	/* Buffer: size integer inside the PkgLength. */
	aml_init(&a, buf, sizeof(buf));
	aml_buffer(&a);
	aml_res_io(&a, 0x3f8, 0x3f8, 1, 8);
	aml_res_end(&a);
	aml_close(&a);
	static const uint8_t rt[] = { 0x11, 0x0d, 0x0a, 0x0a, 0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,
				      0x79, 0x00 };
	assert_int_equal(aml_finish(&a), sizeof(rt));
	assert_memory_equal(buf, rt, sizeof(rt));

	/* Method(_EVT, 1) { Notify(\_SB.PWRB, 0x80) } */
	aml_init(&a, buf, sizeof(buf));
	aml_method(&a, "_EVT", 1);
	aml_notify(&a, "\\_SB_.PWRB", 0x80);
	aml_close(&a);
	static const uint8_t evt[] = { 0x14, 0x13, '_', 'E', 'V', 'T', 0x01, 0x86, '\\', 0x2e,
				       '_', 'S', 'B', '_', 'P', 'W', 'R', 'B', 0x0a, 0x80 };
	assert_int_equal(aml_finish(&a), sizeof(evt));
	assert_memory_equal(buf, evt, sizeof(evt));
	aml_init(&a, buf, sizeof(buf));
	aml_method(&a, "_EVT", 8);
	assert_int_equal(aml_finish(&a), -EINVAL);

	/* Errors are sticky. */
	aml_init(&a, buf, sizeof(buf));
	aml_namestring(&a, "lower");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, buf, sizeof(buf));
	aml_namestring(&a, "TOOLONG");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, buf, sizeof(buf));
	aml_eisaid(&a, "pnp0501");
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, buf, sizeof(buf));
	aml_close(&a);
	assert_int_equal(aml_finish(&a), -EINVAL);
	aml_init(&a, buf, sizeof(buf));
	aml_scope(&a, "\\_SB_");
	assert_int_equal(aml_finish(&a), -EINVAL);		/* unclosed */
	aml_init(&a, buf, 3);
	aml_string(&a, "LNRO0005");
	assert_int_equal(aml_finish(&a), -ENOSPC);
	aml_init(&a, buf, 5);
	aml_package(&a, 1);
	aml_integer(&a, 0x1234);
	aml_close(&a);					/* no room for the PkgLength */
	assert_int_equal(aml_finish(&a), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mptable),
		cmocka_unit_test(test_acpi),
		cmocka_unit_test(test_tables_via_load),
		cmocka_unit_test(test_dsdt_iasl),
		cmocka_unit_test(test_aml_pkglen),
		cmocka_unit_test(test_aml_encodings),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
