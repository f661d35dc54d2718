// SPDX-License-Identifier: MIT
/*
 * uring-smoke: checks that io_uring works where it runs (the event loop of
 * cove-vmm needs it).  Raw syscalls, no liburing: sets up a ring, submits one
 * IORING_OP_NOP and one IORING_OP_READ of an eventfd that was written to, and
 * waits for both completions.  Prints "uring-smoke: ok ..." and exits 0, or
 * says what failed and exits 1.  Used by tests/nested/selftest.
 */
#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

static void fail(const char *what)
{
	fprintf(stderr, "uring-smoke: FAIL: %s: %s\n", what, strerror(errno));
	exit(1);
}

int main(void)
{
	struct io_uring_params p;
	struct io_uring_sqe *sqes, *sqe;
	struct io_uring_cqe *cqes;
	struct utsname u;
	uint64_t val = 7, got = 0;
	unsigned int *sq_tail, *sq_mask, *sq_array, *cq_head, *cq_tail, *cq_mask;
	unsigned int tail, head, seen = 0;
	uint8_t *sq, *cq;
	size_t sq_len, cq_len;
	int fd, efd, i, ret;

	memset(&p, 0, sizeof(p));
	fd = (int)syscall(__NR_io_uring_setup, 4, &p);
	if (fd < 0)
		fail("io_uring_setup");
	sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned int);
	cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
	sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		  fd, IORING_OFF_SQ_RING);
	cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		  fd, IORING_OFF_CQ_RING);
	sqes = mmap(NULL, p.sq_entries * sizeof(*sqes), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED)
		fail("mmap ring");
	sq_tail = (unsigned int *)(sq + p.sq_off.tail);
	sq_mask = (unsigned int *)(sq + p.sq_off.ring_mask);
	sq_array = (unsigned int *)(sq + p.sq_off.array);
	cq_head = (unsigned int *)(cq + p.cq_off.head);
	cq_tail = (unsigned int *)(cq + p.cq_off.tail);
	cq_mask = (unsigned int *)(cq + p.cq_off.ring_mask);
	cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);

	efd = eventfd(0, EFD_CLOEXEC);
	if (efd < 0 || write(efd, &val, sizeof(val)) != sizeof(val))
		fail("eventfd");

	tail = *sq_tail;
	for (i = 0; i < 2; i++) {
		sqe = &sqes[(tail + i) & *sq_mask];
		memset(sqe, 0, sizeof(*sqe));
		sqe->user_data = 100 + i;
		if (i == 0) {
			sqe->opcode = IORING_OP_NOP;
		} else {
			sqe->opcode = IORING_OP_READ;
			sqe->fd = efd;
			sqe->addr = (uintptr_t)&got;
			sqe->len = sizeof(got);
		}
		sq_array[(tail + i) & *sq_mask] = (tail + i) & *sq_mask;
	}
	__atomic_store_n(sq_tail, tail + 2, __ATOMIC_RELEASE);

	ret = (int)syscall(__NR_io_uring_enter, fd, 2, 2, IORING_ENTER_GETEVENTS,
			   NULL, 0);
	if (ret != 2) {
		if (ret >= 0)
			errno = EIO;
		fail("io_uring_enter");
	}
	head = *cq_head;
	while (head != __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE)) {
		struct io_uring_cqe *c = &cqes[head & *cq_mask];

		if (c->user_data == 100 && c->res == 0)
			seen |= 1;
		else if (c->user_data == 101 && c->res == sizeof(got) && got == val)
			seen |= 2;
		else
			fprintf(stderr, "uring-smoke: cqe user_data %llu res %d\n",
				(unsigned long long)c->user_data, c->res);
		head++;
	}
	__atomic_store_n(cq_head, head, __ATOMIC_RELEASE);
	if (seen != 3) {
		fprintf(stderr, "uring-smoke: FAIL: completions seen 0x%x, want 0x3\n", seen);
		return 1;
	}
	uname(&u);
	printf("uring-smoke: ok: NOP and eventfd READ completed (kernel %s)\n", u.release);
	return 0;
}
