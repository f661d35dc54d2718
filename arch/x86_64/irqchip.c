/* Per-VM x86 setup: the TSS and EPT identity-map pages KVM needs in the
 * 32-bit gap, the in-kernel PIC/IOAPIC/LAPIC with ISA IRQ 0 routed to
 * IOAPIC pin 2 (as the MP table and the MADT say), and the PIT. */
#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch.h"
#include "log.h"

#define TSS_ADDR		0xfffbd000UL	/* 3 pages */
#define IDENTITY_MAP_ADDR	0xfffbc000ULL	/* 1 page, just below */
#define IOAPIC_PINS		24
#define PIC_PINS		16

static void route(struct kvm_irq_routing *r, uint32_t gsi, uint32_t chip, uint32_t pin)
{
	struct kvm_irq_routing_entry *e = &r->entries[r->nr++];

	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_IRQCHIP;
	e->u.irqchip.irqchip = chip;
	e->u.irqchip.pin = pin;
}

/* KVM's default routing sends GSI n to IOAPIC pin n. Like a PC, send the
 * PIT's GSI 0 to pin 2 instead; GSI 2 (the cascade) goes nowhere. Device
 * GSIs stay identity-mapped, so irqfds on GSI n still reach pin n. */
static int set_gsi_routing(int vm_fd)
{
	struct kvm_irq_routing *r;
	int err = 0;

	r = calloc(1, sizeof(*r) + (PIC_PINS + IOAPIC_PINS) * sizeof(r->entries[0]));
	if (!r)
		return cove_fail(-ENOMEM, "KVM_SET_GSI_ROUTING: out of memory");
	for (uint32_t gsi = 0; gsi < IOAPIC_PINS; gsi++) {
		if (gsi == 2)
			continue;
		if (gsi < PIC_PINS)
			route(r, gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8);
		route(r, gsi, KVM_IRQCHIP_IOAPIC, gsi == 0 ? 2 : gsi);
	}
	if (ioctl(vm_fd, KVM_SET_GSI_ROUTING, r) < 0)
		err = cove_fail(-errno, "KVM_SET_GSI_ROUTING: %s", strerror(errno));
	free(r);
	return err;
}

int arch_vm_init(int kvm_fd, int vm_fd)
{
	uint64_t identity = IDENTITY_MAP_ADDR;
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	int err;

	(void)kvm_fd;
	if (ioctl(vm_fd, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
		return cove_fail(-errno, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	if (ioctl(vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0)
		return cove_fail(-errno, "KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
	if (ioctl(vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return cove_fail(-errno, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	err = set_gsi_routing(vm_fd);
	if (err)
		return err;
	if (ioctl(vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return cove_fail(-errno, "KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}
