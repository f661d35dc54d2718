// SPDX-License-Identifier: MIT
/*
 * kvm-smoke: the smallest real KVM guest.  Opens /dev/kvm, creates a VM and
 * one vCPU, and runs 16 bytes of real-mode code that writes "5\n" to port
 * 0xe9 and halts.  Checks every exit on the way: two KVM_EXIT_IO (out, port
 * 0xe9, 1 byte, '5' then '\n') and then KVM_EXIT_HLT.
 *
 * Prints one line "kvm-smoke: ok ..." and exits 0, or says what went wrong
 * and exits 1.  Used by tests/nested/selftest inside the nested-KVM L1.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GUEST_ADDR 0x1000
#define PORT 0xe9

/* 16 bytes of 16-bit real-mode code, loaded at 0x1000, entered with ax=2, bx=3. */
static const uint8_t code[16] = {
	0xba, 0xe9, 0x00, /* mov  dx, 0xe9 */
	0x01, 0xd8,       /* add  ax, bx       ; ax = 5 */
	0x04, '0',        /* add  al, '0'      ; al = '5' */
	0xee,             /* out  dx, al */
	0xb0, '\n',       /* mov  al, '\n' */
	0xee,             /* out  dx, al */
	0xf4,             /* hlt */
	0x90, 0x90, 0x90, 0x90, /* nop padding, never reached */
};

static void fail(const char *what)
{
	fprintf(stderr, "kvm-smoke: FAIL: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fail_msg(const char *msg)
{
	fprintf(stderr, "kvm-smoke: FAIL: %s\n", msg);
	exit(1);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
	struct kvm_userspace_memory_region region;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_run *run;
	char out[8];
	size_t nout = 0;
	int kvm, vm, vcpu, api, mmap_size, exits;
	uint8_t *mem;
	double t0 = now();

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		fail("open /dev/kvm");
	api = ioctl(kvm, KVM_GET_API_VERSION, 0);
	if (api != KVM_API_VERSION) {
		fprintf(stderr, "kvm-smoke: FAIL: KVM_GET_API_VERSION %d, want %d\n",
			api, KVM_API_VERSION);
		return 1;
	}
	if (ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0)
		fail_msg("KVM_CAP_USER_MEMORY missing");

	vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		fail("KVM_CREATE_VM");

	mem = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		fail("mmap guest memory");
	memcpy(mem, code, sizeof(code));
	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = GUEST_ADDR;
	region.memory_size = 0x1000;
	region.userspace_addr = (uintptr_t)mem;
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		fail("KVM_SET_USER_MEMORY_REGION");

	vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		fail("KVM_CREATE_VCPU");
	mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (mmap_size < (int)sizeof(*run))
		fail("KVM_GET_VCPU_MMAP_SIZE");
	run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vcpu, 0);
	if (run == MAP_FAILED)
		fail("mmap kvm_run");

	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		fail("KVM_GET_SREGS");
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		fail("KVM_SET_SREGS");
	memset(&regs, 0, sizeof(regs));
	regs.rip = GUEST_ADDR;
	regs.rax = 2;
	regs.rbx = 3;
	regs.rflags = 0x2;
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		fail("KVM_SET_REGS");

	for (exits = 0; exits < 16; exits++) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0)
			fail("KVM_RUN");
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.direction != KVM_EXIT_IO_OUT ||
			    run->io.port != PORT || run->io.size != 1 ||
			    run->io.count != 1) {
				fprintf(stderr,
					"kvm-smoke: FAIL: unexpected io exit: dir %u port 0x%x size %u count %u\n",
					run->io.direction, run->io.port,
					run->io.size, run->io.count);
				return 1;
			}
			if (nout >= sizeof(out))
				fail_msg("too many out exits");
			out[nout++] = *((char *)run + run->io.data_offset);
			break;
		case KVM_EXIT_HLT:
			if (nout != 2 || out[0] != '5' || out[1] != '\n') {
				fprintf(stderr,
					"kvm-smoke: FAIL: halted after %zu bytes, want \"5\\n\"\n",
					nout);
				return 1;
			}
			if (ioctl(vcpu, KVM_GET_REGS, &regs) < 0)
				fail("KVM_GET_REGS");
			if (regs.rip != GUEST_ADDR + 12) {
				fprintf(stderr,
					"kvm-smoke: FAIL: halted at rip 0x%llx, want 0x%x\n",
					(unsigned long long)regs.rip,
					GUEST_ADDR + 12);
				return 1;
			}
			printf("kvm-smoke: ok: guest wrote \"5\\n\" to port 0x%x and halted at 0x%llx (%d exits, %.1f ms)\n",
			       PORT, (unsigned long long)regs.rip, exits + 1,
			       (now() - t0) * 1e3);
			return 0;
		case KVM_EXIT_FAIL_ENTRY:
			fprintf(stderr,
				"kvm-smoke: FAIL: KVM_EXIT_FAIL_ENTRY, reason 0x%llx\n",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			return 1;
		case KVM_EXIT_INTERNAL_ERROR:
			fprintf(stderr,
				"kvm-smoke: FAIL: KVM_EXIT_INTERNAL_ERROR, suberror %u\n",
				run->internal.suberror);
			return 1;
		default:
			fprintf(stderr, "kvm-smoke: FAIL: unexpected exit reason %u\n",
				run->exit_reason);
			return 1;
		}
	}
	fail_msg("no hlt after 16 exits");
	return 1;
}
