/* Intel MultiProcessor Specification 1.4: the floating pointer structure
 * in the EBDA and a configuration table for kernels that boot without
 * ACPI. */
#include "mptable.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "boot.h"
#include "guest_mem.h"
#include "log.h"

#define MP_SPEC_REV		4		/* 1.4 */
#define LAPIC_VERSION		0x14
#define IOAPIC_VERSION		0x11
#define IOAPIC_PINS		24
#define CPU_SIGNATURE		0x600		/* family 6 */
#define CPU_FEATURES		0x201		/* FPU, APIC */

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_INT, MP_NMI, MP_SMI, MP_EXTINT };

#define CPU_ENABLED		(1 << 0)
#define CPU_BSP			(1 << 1)
#define IOAPIC_ENABLED		(1 << 0)
/* IO/local interrupt flags: polarity bits 1:0, trigger bits 3:2 */
#define IRQ_CONFORMING		0x0
#define IRQ_EDGE_HIGH		0x5
#define ISA_BUS_ID		0

struct mpf_intel {
	char signature[4];		/* "_MP_" */
	uint32_t physptr;
	uint8_t length;			/* in 16-byte units */
	uint8_t specification;
	uint8_t checksum;
	uint8_t feature1;		/* 0: a configuration table is present */
	uint8_t feature2;
	uint8_t feature3, feature4, feature5;
} __attribute__((packed));

struct mpc_table {
	char signature[4];		/* "PCMP" */
	uint16_t length;
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char productid[12];
	uint32_t oemptr;
	uint16_t oemsize;
	uint16_t oemcount;		/* entries */
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t cpuflag;
	uint32_t cpufeature;		/* CPU signature */
	uint32_t featureflag;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type;
	uint8_t busid;
	char bustype[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type;
	uint8_t apicid;
	uint8_t apicver;
	uint8_t flags;
	uint32_t apicaddr;
} __attribute__((packed));

/* IO interrupt (MP_INTSRC) and local interrupt (MP_LINTSRC) entries. */
struct mpc_intsrc {
	uint8_t type;
	uint8_t irqtype;
	uint16_t irqflag;
	uint8_t srcbus;
	uint8_t srcbusirq;
	uint8_t dstapic;
	uint8_t dstirq;
} __attribute__((packed));

static_assert(sizeof(struct mpf_intel) == 16, "mpf_intel");
static_assert(sizeof(struct mpc_table) == 44, "mpc_table");
static_assert(sizeof(struct mpc_cpu) == 20, "mpc_cpu");
static_assert(sizeof(struct mpc_bus) == 8, "mpc_bus");
static_assert(sizeof(struct mpc_ioapic) == 8, "mpc_ioapic");
static_assert(sizeof(struct mpc_intsrc) == 8, "mpc_intsrc");

#define MPC_MAX (sizeof(struct mpc_table) + LAYOUT_MAX_CPUS * sizeof(struct mpc_cpu) + \
		 sizeof(struct mpc_bus) + sizeof(struct mpc_ioapic) + \
		 (IOAPIC_PINS + 2) * sizeof(struct mpc_intsrc))
static_assert(BOOT_MPTABLE + MPC_MAX <= BOOT_MPTABLE_END, "MP table room");

static uint8_t checksum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t sum = 0;

	while (n--)
		sum += *b++;
	return (uint8_t)-sum;
}

struct mpc_buf {
	uint8_t b[MPC_MAX];
	size_t len;
	uint16_t count;
};

static void add(struct mpc_buf *m, const void *entry, size_t n)
{
	memcpy(m->b + m->len, entry, n);
	m->len += n;
	m->count++;
}

static void add_intsrc(struct mpc_buf *m, uint8_t type, uint8_t irqtype, uint16_t flags,
		       uint8_t srcirq, uint8_t dstapic, uint8_t dstirq)
{
	struct mpc_intsrc e = { type, irqtype, flags, ISA_BUS_ID, srcirq, dstapic, dstirq };

	add(m, &e, sizeof(e));
}

int mptable_write(const struct guest_mem *gm, int ncpus,
		  const struct arch_mmio_dev *devs, int ndevs)
{
	struct mpc_buf m;
	struct mpc_table h = { 0 };
	struct mpf_intel mpf = { 0 };
	bool edge[IOAPIC_PINS] = { false };
	uint8_t ioapic_id = (uint8_t)ncpus;

	if (ncpus < 1 || ncpus > LAYOUT_MAX_CPUS)
		return cove_fail(-EINVAL, "mptable: %d vCPUs", ncpus);
	for (int i = 0; i < ndevs; i++) {
		if (devs[i].irq >= IOAPIC_PINS)
			return cove_fail(-EINVAL, "mptable: IRQ %u beyond the IOAPIC", devs[i].irq);
		edge[devs[i].irq] = true;
	}

	memset(&m, 0, sizeof(m));
	m.len = sizeof(h);
	for (int i = 0; i < ncpus; i++) {
		struct mpc_cpu c = {
			.type = MP_PROCESSOR,
			.apicid = (uint8_t)i,
			.apicver = LAPIC_VERSION,
			.cpuflag = CPU_ENABLED | (i == 0 ? CPU_BSP : 0),
			.cpufeature = CPU_SIGNATURE,
			.featureflag = CPU_FEATURES,
		};
		add(&m, &c, sizeof(c));
	}
	add(&m, &(struct mpc_bus){ MP_BUS, ISA_BUS_ID, "ISA   " }, sizeof(struct mpc_bus));
	add(&m, &(struct mpc_ioapic){ MP_IOAPIC, ioapic_id, IOAPIC_VERSION, IOAPIC_ENABLED,
				      (uint32_t)LAYOUT_IOAPIC }, sizeof(struct mpc_ioapic));
	/* ISA IRQs identity-mapped, except the timer, which a PC wires to
	 * pin 2 (arch_vm_init routes GSI 0 there); device IRQs edge-triggered,
	 * active high. */
	for (int irq = 0; irq < IOAPIC_PINS; irq++) {
		if (irq == 2 || (irq >= 16 && !edge[irq]))
			continue;
		add_intsrc(&m, MP_INTSRC, MP_INT, edge[irq] ? IRQ_EDGE_HIGH : IRQ_CONFORMING,
			   (uint8_t)irq, ioapic_id, irq == 0 ? 2 : (uint8_t)irq);
	}
	add_intsrc(&m, MP_LINTSRC, MP_EXTINT, IRQ_CONFORMING, 0, 0xff, 0);
	add_intsrc(&m, MP_LINTSRC, MP_NMI, IRQ_CONFORMING, 0, 0xff, 1);

	memcpy(h.signature, "PCMP", 4);
	h.length = (uint16_t)m.len;
	h.spec = MP_SPEC_REV;
	memcpy(h.oem, "COVE    ", 8);
	memcpy(h.productid, "MICROVM     ", 12);
	h.oemcount = m.count;
	h.lapic = (uint32_t)LAYOUT_LAPIC;
	memcpy(m.b, &h, sizeof(h));
	m.b[offsetof(struct mpc_table, checksum)] = checksum(m.b, m.len);

	memcpy(mpf.signature, "_MP_", 4);
	mpf.physptr = (uint32_t)BOOT_MPTABLE;
	mpf.length = 1;
	mpf.specification = MP_SPEC_REV;
	mpf.checksum = checksum(&mpf, sizeof(mpf));

	if (gm_write(gm, BOOT_MPTABLE, m.b, m.len) < 0 || gm_write(gm, BOOT_EBDA, &mpf, sizeof(mpf)) < 0)
		return cove_fail(-EINVAL, "mptable: no guest memory below 1 MiB");
	return 0;
}
