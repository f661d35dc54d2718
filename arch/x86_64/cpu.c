/* vCPU setup before the first KVM_RUN: CPUID, MSRs, LAPIC local
 * interrupts, FPU, and for the boot vCPU the entry registers. Application
 * processors stay in their reset state: KVM's in-kernel LAPIC delivers
 * INIT and SIPI to them. */
#include "cpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "boot.h"
#include "cpuid.h"
#include "log.h"

#define X86_CR0_PE		(1ULL << 0)
#define X86_CR0_MP		(1ULL << 1)
#define X86_CR0_ET		(1ULL << 4)
#define X86_CR0_NE		(1ULL << 5)
#define X86_CR0_PG		(1ULL << 31)
#define X86_CR4_PAE		(1ULL << 5)
#define EFER_LME		(1ULL << 8)
#define EFER_LMA		(1ULL << 10)
#define RFLAGS_RESERVED		(1ULL << 1)

#define MSR_IA32_SYSENTER_CS	0x174
#define MSR_IA32_SYSENTER_ESP	0x175
#define MSR_IA32_SYSENTER_EIP	0x176
#define MSR_IA32_MISC_ENABLE	0x1a0
#define MSR_MTRR_DEF_TYPE	0x2ff
#define MSR_STAR		0xc0000081
#define MSR_LSTAR		0xc0000082
#define MSR_CSTAR		0xc0000083
#define MSR_SYSCALL_MASK	0xc0000084
#define MSR_KERNEL_GS_BASE	0xc0000102

#define MISC_ENABLE_FAST_STRING	(1ULL << 0)
#define MTRR_DEF_ENABLE_WB	0x806	/* MTRRs enabled, default write-back */

#define APIC_LVT0		0x350
#define APIC_LVT1		0x360
#define APIC_MODE_NMI		0x4
#define APIC_MODE_EXTINT	0x7

void cpu_segment(struct kvm_segment *s, uint64_t desc, uint16_t sel)
{
	uint32_t limit = (uint32_t)((desc & 0xffff) | ((desc >> 32) & 0xf0000));

	memset(s, 0, sizeof(*s));
	s->base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24);
	s->g = (desc >> 55) & 1;
	s->limit = s->g ? (limit << 12) | 0xfff : limit;
	s->selector = sel;
	s->type = (desc >> 40) & 0xf;
	s->s = (desc >> 44) & 1;
	s->dpl = (desc >> 45) & 3;
	s->present = (desc >> 47) & 1;
	s->avl = (desc >> 52) & 1;
	s->l = (desc >> 53) & 1;
	s->db = (desc >> 54) & 1;
	s->unusable = !s->present;
}

int cpu_boot_sregs(struct kvm_sregs *s, const struct arch_boot *boot)
{
	struct kvm_segment data;
	bool long_mode;

	if (boot->format == ARCH_KERNEL_BZIMAGE)
		long_mode = true;
	else if (boot->format == ARCH_KERNEL_PVH)
		long_mode = false;
	else
		return -EINVAL;

	if (long_mode)
		cpu_segment(&s->cs, boot_gdt_desc(BOOT_SEL_CODE64), BOOT_SEL_CODE64);
	else
		cpu_segment(&s->cs, boot_gdt_desc(BOOT_SEL_CODE32), BOOT_SEL_CODE32);
	cpu_segment(&data, boot_gdt_desc(BOOT_SEL_DATA), BOOT_SEL_DATA);
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	cpu_segment(&s->tr, boot_gdt_desc(BOOT_SEL_TSS), BOOT_SEL_TSS);

	s->gdt.base = BOOT_GDT;
	s->gdt.limit = BOOT_GDT_ENTRIES * 8 - 1;
	/* No IDT: an exception before the kernel sets one up is a triple
	 * fault (KVM_EXIT_SHUTDOWN), not a jump through garbage. */
	s->idt.base = 0;
	s->idt.limit = 0;

	if (long_mode) {
		s->cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
		s->cr3 = BOOT_PML4;
		s->cr4 = X86_CR4_PAE;
		s->efer = EFER_LME | EFER_LMA;
	} else {
		s->cr0 = X86_CR0_PE | X86_CR0_ET;
		s->cr3 = 0;
		s->cr4 = 0;
		s->efer = 0;
	}
	return 0;
}

void cpu_boot_regs(struct kvm_regs *r, const struct arch_boot *boot)
{
	memset(r, 0, sizeof(*r));
	r->rflags = RFLAGS_RESERVED;		/* IF clear */
	r->rip = boot->entry;
	r->rsp = r->rbp = BOOT_STACK_TOP;
	if (boot->format == ARCH_KERNEL_BZIMAGE)
		r->rsi = boot->boot_info;	/* struct boot_params */
	else
		r->rbx = boot->boot_info;	/* struct hvm_start_info */
}

static int set_msrs(int vcpu_fd, int index)
{
	static const struct kvm_msr_entry init[] = {
		{ .index = MSR_IA32_SYSENTER_CS },
		{ .index = MSR_IA32_SYSENTER_ESP },
		{ .index = MSR_IA32_SYSENTER_EIP },
		{ .index = MSR_STAR },
		{ .index = MSR_LSTAR },
		{ .index = MSR_CSTAR },
		{ .index = MSR_SYSCALL_MASK },
		{ .index = MSR_KERNEL_GS_BASE },
		{ .index = MSR_IA32_MISC_ENABLE, .data = MISC_ENABLE_FAST_STRING },
		{ .index = MSR_MTRR_DEF_TYPE, .data = MTRR_DEF_ENABLE_WB },
	};
	enum { N = sizeof(init) / sizeof(init[0]) };
	union {
		struct kvm_msrs m;
		uint8_t bytes[sizeof(struct kvm_msrs) + N * sizeof(struct kvm_msr_entry)];
	} u;
	int ret;

	memset(&u, 0, sizeof(u));
	u.m.nmsrs = N;
	memcpy(u.m.entries, init, sizeof(init));
	ret = ioctl(vcpu_fd, KVM_SET_MSRS, &u.m);
	if (ret < 0)
		return cove_fail(-errno, "vcpu%d: KVM_SET_MSRS: %s", index, strerror(errno));
	if (ret < N)
		return cove_fail(-EINVAL, "vcpu%d: KVM_SET_MSRS: KVM refused MSR %#x",
				 index, init[ret].index);
	return 0;
}

static void set_lvt_mode(struct kvm_lapic_state *l, int reg, uint32_t mode)
{
	uint32_t v;

	memcpy(&v, l->regs + reg, 4);
	v = (v & ~0x700u) | (mode << 8);
	memcpy(l->regs + reg, &v, 4);
}

static int set_lapic(int vcpu_fd, int index)
{
	struct kvm_lapic_state l;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return cove_fail(-errno, "vcpu%d: KVM_GET_LAPIC: %s", index, strerror(errno));
	set_lvt_mode(&l, APIC_LVT0, APIC_MODE_EXTINT);
	set_lvt_mode(&l, APIC_LVT1, APIC_MODE_NMI);
	if (ioctl(vcpu_fd, KVM_SET_LAPIC, &l) < 0)
		return cove_fail(-errno, "vcpu%d: KVM_SET_LAPIC: %s", index, strerror(errno));
	return 0;
}

static int set_fpu(int vcpu_fd, int index)
{
	struct kvm_fpu f;

	memset(&f, 0, sizeof(f));
	f.fcw = 0x37f;
	f.mxcsr = 0x1f80;
	if (ioctl(vcpu_fd, KVM_SET_FPU, &f) < 0)
		return cove_fail(-errno, "vcpu%d: KVM_SET_FPU: %s", index, strerror(errno));
	return 0;
}

static int set_boot_regs(int vcpu_fd, const struct arch_boot *boot)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return cove_fail(-errno, "vcpu0: KVM_GET_SREGS: %s", strerror(errno));
	if (cpu_boot_sregs(&s, boot) < 0)
		return cove_fail(-EINVAL, "vcpu0: unknown kernel format %d", (int)boot->format);
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return cove_fail(-errno, "vcpu0: KVM_SET_SREGS: %s", strerror(errno));
	cpu_boot_regs(&r, boot);
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0)
		return cove_fail(-errno, "vcpu0: KVM_SET_REGS: %s", strerror(errno));
	return 0;
}

int arch_vcpu_init(int kvm_fd, int vcpu_fd, int index, int ncpus, const struct arch_boot *boot)
{
	int err;

	if (ncpus < 1 || ncpus > LAYOUT_MAX_CPUS || index < 0 || index >= ncpus)
		return cove_fail(-EINVAL, "vcpu%d of %d: out of range", index, ncpus);
	if (index == 0 && !boot)
		return cove_fail(-EINVAL, "vcpu0: no boot state");
	err = cpuid_setup(kvm_fd, vcpu_fd, index, ncpus);
	if (!err)
		err = set_msrs(vcpu_fd, index);
	if (!err)
		err = set_lapic(vcpu_fd, index);
	if (!err)
		err = set_fpu(vcpu_fd, index);
	if (!err && index == 0)
		err = set_boot_regs(vcpu_fd, boot);
	return err;
}
