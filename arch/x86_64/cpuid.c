/* Guest CPUID. The goal is a guest that never calibrates a timer: it
 * finds kvmclock and the TSC-deadline LAPIC timer, and the TSC and LAPIC
 * frequencies in CPUID. */
#include "cpuid.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "log.h"

#define CPUID_EXTRA		32	/* entries cpuid_fixup may add */
#define CPUID_MAX_ENTRIES	4096

#define LEAF1_ECX_TSC_DEADLINE	(1u << 24)
#define LEAF1_ECX_HYPERVISOR	(1u << 31)
#define LEAF1_EDX_HTT		(1u << 28)
#define TOPO_SMT		1
#define TOPO_CORE		2
#define KVM_LEAF_BASE		0x40000000
#define KVM_LEAF_TIMING		0x40000010
#define LAPIC_BUS_KHZ		1000000	/* KVM's APIC timer ticks at 1 GHz */

static struct kvm_cpuid_entry2 *find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		if (e->function == fn &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == idx))
			return e;
	}
	return NULL;
}

/* The entry for (fn, idx), added zeroed if missing; NULL when full. */
static struct kvm_cpuid_entry2 *get(struct kvm_cpuid2 *c, uint32_t cap, uint32_t fn,
				    uint32_t idx, bool indexed)
{
	struct kvm_cpuid_entry2 *e = find(c, fn, idx);

	if (e)
		return e;
	if (c->nent >= cap)
		return NULL;
	e = &c->entries[c->nent++];
	memset(e, 0, sizeof(*e));
	e->function = fn;
	e->index = idx;
	e->flags = indexed ? KVM_CPUID_FLAG_SIGNIFCANT_INDEX : 0;
	return e;
}

static void remove_leaf(struct kvm_cpuid2 *c, uint32_t fn)
{
	uint32_t j = 0;

	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function != fn)
			c->entries[j++] = c->entries[i];
	c->nent = j;
}

/* Bits of x2APIC id needed for n cores. */
static uint32_t id_bits(int n)
{
	uint32_t b = 0;

	while ((1 << b) < n)
		b++;
	return b;
}

/* x2APIC topology (leaf 0xB, and 0x1F where it exists): SMT level of one
 * thread, core level of ncpus cores, then the invalid level. */
static int topology(struct kvm_cpuid2 *c, uint32_t cap, uint32_t fn, const struct cpuid_params *p)
{
	remove_leaf(c, fn);
	for (uint32_t sub = 0; sub < 3; sub++) {
		struct kvm_cpuid_entry2 *e = get(c, cap, fn, sub, true);

		if (!e)
			return -E2BIG;
		e->edx = (uint32_t)p->index;
		e->ecx = sub;
		if (sub == 0) {
			e->eax = 0;
			e->ebx = 1;
			e->ecx |= TOPO_SMT << 8;
		} else if (sub == 1) {
			e->eax = id_bits(p->ncpus);
			e->ebx = (uint32_t)p->ncpus;
			e->ecx |= TOPO_CORE << 8;
		}
	}
	return 0;
}

int cpuid_fixup(struct kvm_cpuid2 *c, uint32_t cap, const struct cpuid_params *p)
{
	struct kvm_cpuid_entry2 *e;
	uint32_t max_basic = 0, max_ext = 0;
	uint32_t n = p->ncpus < 1 ? 1 : (uint32_t)p->ncpus;

	if ((e = find(c, 0, 0)))
		max_basic = e->eax;
	if ((e = find(c, 0x80000000, 0)))
		max_ext = e->eax;

	if ((e = find(c, 1, 0))) {
		e->ebx = ((uint32_t)p->index << 24) | ((n > 255 ? 255 : n) << 16) |
			 (8 << 8) /* CLFLUSH: 64 bytes */ | (e->ebx & 0xff);
		e->ecx |= LEAF1_ECX_HYPERVISOR;
		if (p->tsc_deadline)
			e->ecx |= LEAF1_ECX_TSC_DEADLINE;
		if (n > 1)
			e->edx |= LEAF1_EDX_HTT;
		else
			e->edx &= ~LEAF1_EDX_HTT;
	}

	/* Deterministic cache parameters: cores per package, and threads
	 * sharing each cache (one per core; the last level is shared). */
	for (uint32_t i = 0; i < c->nent; i++) {
		e = &c->entries[i];
		if (e->function != 4 || (e->eax & 0x1f) == 0)
			continue;
		e->eax &= ~((0x3fu << 26) | (0xfffu << 14));
		e->eax |= ((n > 64 ? 63 : n - 1) << 26);
		if (((e->eax >> 5) & 7) >= 3)
			e->eax |= (n - 1) << 14;
	}

	if (max_basic >= 0xb && topology(c, cap, 0xb, p) < 0)
		return -E2BIG;
	if (max_basic >= 0x1f && topology(c, cap, 0x1f, p) < 0)
		return -E2BIG;

	if (p->tsc_khz) {
		/* TSC = crystal * EBX / EAX; the crystal is the 1 GHz LAPIC clock. */
		if (max_basic >= 0x15) {
			if (!(e = get(c, cap, 0x15, 0, false)))
				return -E2BIG;
			e->eax = 1000000;
			e->ebx = p->tsc_khz;
			e->ecx = 1000000000;
			e->edx = 0;
		}
		if (max_basic >= 0x16) {
			if (!(e = get(c, cap, 0x16, 0, false)))
				return -E2BIG;
			e->eax = p->tsc_khz / 1000;	/* base MHz */
			e->ebx = p->tsc_khz / 1000;	/* max MHz */
			e->ecx = LAPIC_BUS_KHZ / 1000;	/* bus MHz */
			e->edx = 0;
		}
	}

	/* KVM signature with the timing leaf as the highest. */
	if (!(e = get(c, cap, KVM_LEAF_BASE, 0, false)))
		return -E2BIG;
	e->eax = KVM_LEAF_TIMING;
	memcpy(&e->ebx, "KVMK", 4);
	memcpy(&e->ecx, "VMKV", 4);
	memcpy(&e->edx, "M\0\0\0", 4);
	if (!(e = get(c, cap, KVM_LEAF_TIMING, 0, false)))
		return -E2BIG;
	e->eax = p->tsc_khz;
	e->ebx = LAPIC_BUS_KHZ;
	e->ecx = e->edx = 0;

	/* AMD: cores per package and the extended APIC id. */
	if (max_ext >= 0x80000008 && (e = find(c, 0x80000008, 0))) {
		e->ecx &= ~0xf0ffu;
		e->ecx |= (id_bits((int)n) << 12) | (n - 1);
	}
	if (max_ext >= 0x8000001e && (e = find(c, 0x8000001e, 0))) {
		e->eax = (uint32_t)p->index;
		e->ebx = (uint32_t)p->index & 0xff;	/* core id; one thread per core */
		e->ecx = 0;				/* node 0, one node */
	}
	return 0;
}

static struct kvm_cpuid2 *alloc_cpuid(uint32_t n)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (n + CPUID_EXTRA) * sizeof(c->entries[0]));

	if (c)
		c->nent = n;
	return c;
}

int cpuid_setup(int kvm_fd, int vcpu_fd, int index, int ncpus)
{
	struct cpuid_params p = { .index = index, .ncpus = ncpus };
	struct kvm_cpuid2 *c = NULL;
	uint32_t n = 128;
	int ret, err;

	for (;;) {
		c = alloc_cpuid(n);
		if (!c)
			return cove_fail(-ENOMEM, "vcpu%d: out of memory for CPUID", index);
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			break;
		err = -errno;
		free(c);
		if (err != -E2BIG || n >= CPUID_MAX_ENTRIES)
			return cove_fail(err, "KVM_GET_SUPPORTED_CPUID: %s", strerror(-err));
		n *= 2;
	}

	ret = ioctl(vcpu_fd, KVM_GET_TSC_KHZ, 0);
	p.tsc_khz = ret > 0 ? (uint32_t)ret : 0;
	p.tsc_deadline = ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0;

	err = cpuid_fixup(c, c->nent + CPUID_EXTRA, &p);
	if (err) {
		free(c);
		return cove_fail(err, "vcpu%d: too many CPUID entries", index);
	}
	if (ioctl(vcpu_fd, KVM_SET_CPUID2, c) < 0) {
		err = -errno;
		free(c);
		return cove_fail(err, "vcpu%d: KVM_SET_CPUID2: %s", index, strerror(-err));
	}
	free(c);
	return 0;
}
