/* x86_64 vCPU state without KVM: GDT-derived segments, the boot entry
 * registers for both formats, and the CPUID rewrite. */
#include <errno.h>
#include <linux/kvm.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "arch.h"
#include "boot.h"
#include "cpu.h"
#include "cpuid.h"

static void test_segments(void **state)
{
	struct kvm_segment s;

	(void)state;
	cpu_segment(&s, boot_gdt_desc(BOOT_SEL_CODE64), BOOT_SEL_CODE64);
	assert_int_equal(s.selector, 0x10);
	assert_int_equal(s.base, 0);
	assert_int_equal(s.limit, 0xffffffff);
	assert_int_equal(s.type, 11);
	assert_int_equal(s.present, 1);
	assert_int_equal(s.s, 1);
	assert_int_equal(s.l, 1);
	assert_int_equal(s.db, 0);
	assert_int_equal(s.g, 1);
	assert_int_equal(s.dpl, 0);
	assert_int_equal(s.unusable, 0);

	cpu_segment(&s, boot_gdt_desc(BOOT_SEL_CODE32), BOOT_SEL_CODE32);
	assert_int_equal(s.selector, 0x08);
	assert_int_equal(s.limit, 0xffffffff);
	assert_int_equal(s.type, 11);
	assert_int_equal(s.l, 0);
	assert_int_equal(s.db, 1);

	cpu_segment(&s, boot_gdt_desc(BOOT_SEL_DATA), BOOT_SEL_DATA);
	assert_int_equal(s.selector, 0x18);
	assert_int_equal(s.limit, 0xffffffff);
	assert_int_equal(s.type, 3);
	assert_int_equal(s.s, 1);
	assert_int_equal(s.db, 1);

	cpu_segment(&s, boot_gdt_desc(BOOT_SEL_TSS), BOOT_SEL_TSS);
	assert_int_equal(s.type, 11);		/* busy TSS */
	assert_int_equal(s.s, 0);
	assert_int_equal(s.present, 1);
	assert_int_equal(s.limit, 0x67);
	assert_int_equal(s.g, 0);

	assert_int_equal(boot_gdt_desc(0), 0);
	assert_int_equal(boot_gdt_desc(3), 0);
	assert_int_equal(boot_gdt_desc(0x100), 0);
	cpu_segment(&s, 0, 0);
	assert_int_equal(s.unusable, 1);
}

static void test_boot_bzimage(void **state)
{
	struct arch_boot b = { ARCH_KERNEL_BZIMAGE, 0x100200, BOOT_ZERO_PAGE, 0 };
	struct kvm_sregs s;
	struct kvm_regs r;

	(void)state;
	memset(&s, 0x5a, sizeof(s));
	assert_int_equal(cpu_boot_sregs(&s, &b), 0);
	assert_int_equal(s.cr0 & 0x80000001, 0x80000001);	/* PE, PG */
	assert_int_equal(s.cr0 & 0x30, 0x30);			/* ET, NE */
	assert_int_equal(s.cr4, 0x20);				/* PAE */
	assert_int_equal(s.efer, 0x500);			/* LME, LMA */
	assert_int_equal(s.cr3, BOOT_PML4);
	assert_int_equal(s.cs.selector, 0x10);
	assert_int_equal(s.cs.l, 1);
	assert_int_equal(s.ds.selector, 0x18);
	assert_int_equal(s.ss.selector, 0x18);
	assert_int_equal(s.es.selector, 0x18);
	assert_int_equal(s.tr.type, 11);
	assert_int_equal(s.gdt.base, BOOT_GDT);
	assert_int_equal(s.gdt.limit, BOOT_GDT_ENTRIES * 8 - 1);

	memset(&r, 0x5a, sizeof(r));
	cpu_boot_regs(&r, &b);
	assert_int_equal(r.rip, 0x100200);
	assert_int_equal(r.rsi, BOOT_ZERO_PAGE);
	assert_int_equal(r.rflags, 2);				/* IF clear */
	assert_int_equal(r.rbx, 0);
	assert_int_equal(r.rsp, BOOT_STACK_TOP);
}

static void test_boot_pvh(void **state)
{
	struct arch_boot b = { ARCH_KERNEL_PVH, 0x1000010, BOOT_START_INFO, 0 };
	struct kvm_sregs s;
	struct kvm_regs r;

	(void)state;
	memset(&s, 0x5a, sizeof(s));
	assert_int_equal(cpu_boot_sregs(&s, &b), 0);
	assert_int_equal(s.cr0 & 1, 1);
	assert_int_equal(s.cr0 & 0x80000000, 0);		/* paging off */
	assert_int_equal(s.cr4, 0);
	assert_int_equal(s.efer, 0);
	assert_int_equal(s.cs.selector, 0x08);
	assert_int_equal(s.cs.db, 1);
	assert_int_equal(s.cs.l, 0);
	assert_int_equal(s.cs.base, 0);
	assert_int_equal(s.cs.limit, 0xffffffff);
	assert_int_equal(s.ds.selector, 0x18);
	assert_int_equal(s.ss.db, 1);

	cpu_boot_regs(&r, &b);
	assert_int_equal(r.rip, 0x1000010);
	assert_int_equal(r.rbx, BOOT_START_INFO);
	assert_int_equal(r.rsi, 0);
	assert_int_equal(r.rflags, 2);

	b.format = 0;
	assert_int_equal(cpu_boot_sregs(&s, &b), -EINVAL);
}

/* A KVM_GET_SUPPORTED_CPUID-like list of an Intel host. */
static struct kvm_cpuid2 *host_cpuid(uint32_t extra, uint32_t max_basic)
{
	static const struct kvm_cpuid_entry2 e[] = {
		{ .function = 0, .eax = 0x16, .ebx = 0x756e6547 },
		{ .function = 1, .eax = 0x906ea, .ebx = 0x12345601, .ecx = 0x80000000 | 0x1, .edx = 0 },
		{ .function = 4, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		  .eax = 0x1c004121 | (0x3f << 26) },			/* L1d */
		{ .function = 4, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0x1c004122 },
		{ .function = 4, .index = 2, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0x1c004143 },
		{ .function = 4, .index = 3, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		  .eax = 0x1c03c163 },					/* L3, 16 threads */
		{ .function = 4, .index = 4, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = 0 },
		{ .function = 0xb, .index = 0, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		  .eax = 1, .ebx = 2, .ecx = 0x100, .edx = 7 },
		{ .function = 0xb, .index = 1, .flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
		  .eax = 4, .ebx = 16, .ecx = 0x201, .edx = 7 },
		{ .function = 0x40000000, .eax = 0x40000001, .ebx = 0x4b4d564b },
		{ .function = 0x40000001, .eax = 0x1234567 },
		{ .function = 0x80000000, .eax = 0x80000008 },
		{ .function = 0x80000001, .ecx = 0x121, .edx = 0x2c100800 },
		{ .function = 0x80000008, .eax = 0x3027, .ecx = 0x0000f00f },
	};
	uint32_t n = sizeof(e) / sizeof(e[0]);
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + (n + extra) * sizeof(e[0]));

	assert_non_null(c);
	memcpy(c->entries, e, sizeof(e));
	c->entries[0].eax = max_basic;
	c->nent = n;
	return c;
}

static struct kvm_cpuid_entry2 *leaf(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	struct kvm_cpuid_entry2 *found = NULL;

	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx) {
			assert_null(found);		/* no duplicates */
			found = &c->entries[i];
		}
	return found;
}

static void test_cpuid(void **state)
{
	struct cpuid_params p = { .index = 3, .ncpus = 6, .tsc_khz = 2500000, .tsc_deadline = true };
	struct kvm_cpuid2 *c = host_cpuid(32, 0x16);
	struct kvm_cpuid_entry2 *e;
	uint32_t nent;

	(void)state;
	assert_int_equal(cpuid_fixup(c, c->nent + 32, &p), 0);

	e = leaf(c, 1, 0);
	assert_int_equal(e->ebx >> 24, 3);			/* APIC id */
	assert_int_equal((e->ebx >> 16) & 0xff, 6);		/* logical count */
	assert_int_equal((e->ebx >> 8) & 0xff, 8);		/* CLFLUSH 64 bytes */
	assert_int_equal(e->ebx & 0xff, 1);			/* brand index kept */
	assert_true(e->ecx & (1u << 31));			/* hypervisor */
	assert_true(e->ecx & (1u << 24));			/* TSC deadline */
	assert_true(e->ecx & 1);				/* SSE3 kept */
	assert_true(e->edx & (1u << 28));			/* HTT */

	static const uint32_t cache_low[] = { 0x0121, 0x0122, 0x0143, 0x0163 };
	for (uint32_t i = 0; i < 4; i++) {
		e = leaf(c, 4, i);
		assert_int_equal(e->eax >> 26, 5);		/* cores - 1 */
		assert_int_equal((e->eax >> 14) & 0xfff, i == 3 ? 5 : 0);	/* L3 shared */
		assert_int_equal(e->eax & 0x3fff, cache_low[i]);	/* type, level kept */
	}
	assert_int_equal(leaf(c, 4, 4)->eax, 0);

	e = leaf(c, 0xb, 0);
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ebx, 1);
	assert_int_equal(e->ecx, 0x100);
	assert_int_equal(e->edx, 3);
	e = leaf(c, 0xb, 1);
	assert_int_equal(e->eax, 3);				/* 6 cores: 3 bits */
	assert_int_equal(e->ebx, 6);
	assert_int_equal(e->ecx, 0x201);
	assert_int_equal(e->edx, 3);
	e = leaf(c, 0xb, 2);
	assert_int_equal(e->eax, 0);
	assert_int_equal(e->ebx, 0);
	assert_int_equal(e->ecx, 2);
	assert_int_equal(e->edx, 3);
	assert_true(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
	assert_null(leaf(c, 0x1f, 0));				/* max basic 0x16 */

	e = leaf(c, 0x15, 0);
	assert_non_null(e);
	assert_int_equal((uint64_t)e->ecx * e->ebx / e->eax, 2500000000ULL);
	e = leaf(c, 0x16, 0);
	assert_int_equal(e->eax, 2500);

	e = leaf(c, 0x40000000, 0);
	assert_int_equal(e->eax, 0x40000010);
	assert_memory_equal(&e->ebx, "KVMK", 4);
	assert_memory_equal(&e->ecx, "VMKV", 4);
	assert_memory_equal(&e->edx, "M\0\0\0", 4);
	assert_int_equal(leaf(c, 0x40000001, 0)->eax, 0x1234567);	/* as KVM reports */
	e = leaf(c, 0x40000010, 0);
	assert_int_equal(e->eax, 2500000);
	assert_int_equal(e->ebx, 1000000);

	assert_int_equal(leaf(c, 0x80000001, 0)->edx, 0x2c100800);
	assert_int_equal(leaf(c, 0x80000008, 0)->ecx, 0x3005);	/* 6 cores, 3 id bits */

	/* Idempotent: a second pass adds nothing. */
	nent = c->nent;
	assert_int_equal(cpuid_fixup(c, c->nent + 32, &p), 0);
	assert_int_equal(c->nent, nent);
	free(c);
}

static void test_cpuid_single_no_tsc(void **state)
{
	struct cpuid_params p = { .index = 0, .ncpus = 1 };
	struct kvm_cpuid2 *c = host_cpuid(32, 0xd);
	struct kvm_cpuid_entry2 *e;

	(void)state;
	assert_int_equal(cpuid_fixup(c, c->nent + 32, &p), 0);
	e = leaf(c, 1, 0);
	assert_int_equal(e->ebx >> 24, 0);
	assert_false(e->ecx & (1u << 24));
	assert_false(e->edx & (1u << 28));
	assert_null(leaf(c, 0x15, 0));
	assert_null(leaf(c, 0x16, 0));
	assert_int_equal(leaf(c, 0xb, 1)->eax, 0);
	assert_int_equal(leaf(c, 0xb, 1)->ebx, 1);
	assert_int_equal(leaf(c, 0x40000010, 0)->eax, 0);
	free(c);

	/* No room for the added leaves. */
	c = host_cpuid(0, 0x16);
	p.tsc_khz = 1000000;
	assert_int_equal(cpuid_fixup(c, c->nent, &p), -E2BIG);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_segments),
		cmocka_unit_test(test_boot_bzimage),
		cmocka_unit_test(test_boot_pvh),
		cmocka_unit_test(test_cpuid),
		cmocka_unit_test(test_cpuid_single_no_tsc),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
