/* The split virtqueue against a guest-side driver in fake memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "fake_mem.h"
#include "guest_vq.h"
#include "virtq.h"

#define MEM_GPA		0x100000ull
#define MEM_SIZE	(1ull << 20)
#define QSIZE		8

struct fixture {
	struct fake_mem fm;
	struct guest_vq g;
	struct virtq vq;
	struct virtq_elem e;
	uint64_t buf;		/* 64 KiB of buffers */
};

static int setup_q(void **state, uint16_t size, bool event_idx, bool indirect)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(fake_mem_init(&f->fm, MEM_GPA, MEM_SIZE), 0);
	assert_int_equal(gvq_init(&f->g, &f->fm, size), 0);
	f->buf = fake_mem_alloc(&f->fm, 65536, 4096);
	assert_true(f->buf != 0);
	virtq_init(&f->vq, 0, 256);
	gvq_config(&f->g, &f->vq);
	assert_int_equal(virtq_start(&f->vq, &f->fm.gm, event_idx, indirect), 0);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_q(state, QSIZE, false, true);
}

static int setup_event_idx(void **state)
{
	return setup_q(state, QSIZE, true, true);
}

static int setup_no_indirect(void **state)
{
	return setup_q(state, QSIZE, false, false);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	fake_mem_free(&f->fm);
	free(f);
	return 0;
}

static uint8_t *host(struct fixture *f, uint64_t gpa)
{
	return fake_mem_ptr(&f->fm, gpa);
}

static void expect_broken(struct fixture *f)
{
	assert_int_equal(virtq_pop(&f->vq, &f->e), -EPROTO);
	assert_true(f->vq.broken);
	assert_non_null(f->vq.err);
	/* stays broken */
	assert_int_equal(virtq_pop(&f->vq, &f->e), -EPROTO);
}

static void test_empty(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
}

static void test_good_chain(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd[2] = { { f->buf, 16 }, { f->buf + 100, 512 } };
	struct gvq_buf wr[1] = { { f->buf + 1000, 1 } };
	uint16_t head = gvq_add(&f->g, rd, 2, wr, 1);
	uint32_t id, len;

	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, head);
	assert_int_equal(f->e.nread, 2);
	assert_int_equal(f->e.nwrite, 1);
	assert_int_equal(f->e.read_len, 528);
	assert_int_equal(f->e.write_len, 1);
	assert_ptr_equal(f->e.iov[0].iov_base, host(f, f->buf));
	assert_int_equal(f->e.iov[0].iov_len, 16);
	assert_ptr_equal(f->e.iov[1].iov_base, host(f, f->buf + 100));
	assert_ptr_equal(f->e.iov[2].iov_base, host(f, f->buf + 1000));
	assert_int_equal(f->e.iov[2].iov_len, 1);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);

	assert_false(gvq_get_used(&f->g, &id, &len));
	virtq_push(&f->vq, head, 1);
	assert_true(gvq_get_used(&f->g, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 1);
}

static void test_zero_length_skipped(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd[2] = { { f->buf, 0 }, { f->buf, 8 } };

	gvq_add(&f->g, rd, 2, NULL, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.nread, 1);
	assert_int_equal(f->e.read_len, 8);
}

static void test_loop(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, f->buf, 8, VRING_DESC_F_NEXT, 1);
	gvq_set_desc(&f->g, 1, f->buf, 8, VRING_DESC_F_NEXT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
	/* a reset and a new start clear it */
	virtq_reset(&f->vq);
	assert_false(f->vq.broken);
}

static void test_self_loop(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 3, f->buf, 8, VRING_DESC_F_NEXT, 3);
	gvq_publish(&f->g, 3);
	expect_broken(f);
}

static void test_longest_chain_ok(void **state)
{
	struct fixture *f = *state;

	/* all QSIZE descriptors in one chain is legal */
	for (int i = 0; i < QSIZE; i++)
		gvq_set_desc(&f->g, i, f->buf + i * 8, 8,
			     i + 1 < QSIZE ? VRING_DESC_F_NEXT : 0, i + 1);
	gvq_publish(&f->g, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.nread, QSIZE);
}

static void test_head_out_of_range(void **state)
{
	struct fixture *f = *state;

	gvq_publish(&f->g, QSIZE);
	expect_broken(f);
}

static void test_next_out_of_range(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, f->buf, 8, VRING_DESC_F_NEXT, QSIZE);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_buffer_outside(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, MEM_GPA + MEM_SIZE, 1, 0, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_buffer_crosses_end(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, MEM_GPA + MEM_SIZE - 8, 9, 0, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_buffer_overflows(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, UINT64_MAX - 3, 100, 0, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_buffer_below(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, MEM_GPA - 4, 8, 0, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_write_before_read(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, f->buf, 8, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 1);
	gvq_set_desc(&f->g, 1, f->buf, 8, 0, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_total_overflow(void **state)
{
	struct fixture *f = *state;
	/* A big region that is never touched: the queue only maps it. */
	uint64_t big = 3ull << 30, gpa = 1ull << 40;
	void *p = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	assert_true(p != MAP_FAILED);
	assert_int_equal(gm_add_region(&f->fm.gm, gpa, big, p), 0);
	gvq_set_desc(&f->g, 0, gpa, 0x60000000, VRING_DESC_F_NEXT, 1);
	gvq_set_desc(&f->g, 1, gpa, 0x60000000, VRING_DESC_F_NEXT, 2);
	gvq_set_desc(&f->g, 2, gpa, 0x60000000, 0, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
	munmap(p, big);
}

static void test_avail_jump(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, f->buf, 8, 0, 0);
	for (int i = 0; i < QSIZE; i++)
		f->g.avail->ring[i] = 0;
	/* exactly a full queue ahead is fine */
	__atomic_store_n(&f->g.avail->idx, QSIZE, __ATOMIC_RELEASE);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	/* now 8 ahead of 1: still fine; 10 ahead is not */
	__atomic_store_n(&f->g.avail->idx, 1 + QSIZE + 1, __ATOMIC_RELEASE);
	expect_broken(f);
}

static void test_avail_backwards(void **state)
{
	struct fixture *f = *state;

	/* idx going "backwards" is a jump of almost 65536 */
	__atomic_store_n(&f->g.avail->idx, 0xffff, __ATOMIC_RELEASE);
	expect_broken(f);
}

static void test_wrap(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd = { f->buf, 4 };
	struct gvq_buf wr = { f->buf + 8, 4 };
	uint32_t id, len;

	/* Well past 65536 so avail and used indices wrap. */
	for (unsigned i = 0; i < 70000; i++) {
		uint16_t head = gvq_add(&f->g, &rd, 1, &wr, 1);
		assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
		assert_int_equal(f->e.head, head);
		virtq_push(&f->vq, head, i);
		assert_true(gvq_get_used(&f->g, &id, &len));
		assert_int_equal(id, head);
		assert_int_equal(len, i);
	}
	assert_int_equal(f->g.avail_idx, (uint16_t)70000);
	assert_int_equal(f->vq.last_avail, (uint16_t)70000);
	assert_int_equal(f->g.used->idx, (uint16_t)70000);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
}

static void test_batch(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd = { f->buf, 4 };
	uint16_t heads[QSIZE];

	for (int i = 0; i < QSIZE; i++)
		heads[i] = gvq_add(&f->g, &rd, 1, NULL, 0);
	for (int i = 0; i < QSIZE; i++) {
		assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
		assert_int_equal(f->e.head, heads[i]);
	}
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
}

static void start_expect(struct fixture *f, int err)
{
	assert_int_equal(virtq_start(&f->vq, &f->fm.gm, false, false), err);
	if (err) {
		assert_false(f->vq.started);
		assert_non_null(f->vq.err);
		assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
	}
	gvq_config(&f->g, &f->vq);
}

static void test_start_checks(void **state)
{
	struct fixture *f = *state;

	f->vq.desc_gpa = MEM_GPA + MEM_SIZE;
	start_expect(f, -EFAULT);
	f->vq.avail_gpa = MEM_GPA + MEM_SIZE - 2;	/* ring runs past the end */
	start_expect(f, -EFAULT);
	f->vq.used_gpa = 0;
	start_expect(f, -EFAULT);
	f->vq.desc_gpa += 8;
	start_expect(f, -EINVAL);
	f->vq.avail_gpa += 1;
	start_expect(f, -EINVAL);
	f->vq.used_gpa += 2;
	start_expect(f, -EINVAL);
	f->vq.size = 0;
	start_expect(f, -EINVAL);
	f->vq.size = 6;
	start_expect(f, -EINVAL);
	f->vq.size = 512;	/* above max 256 */
	start_expect(f, -EINVAL);
	f->vq.used_gpa = UINT64_MAX - 3;
	start_expect(f, -EFAULT);
	start_expect(f, 0);
}

static void test_start_no_queue(void **state)
{
	struct fixture *f = *state;

	virtq_init(&f->vq, 1, 0);
	gvq_config(&f->g, &f->vq);
	assert_int_equal(virtq_start(&f->vq, &f->fm.gm, false, false), -EINVAL);
}

static void test_indirect_good(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd[2] = { { f->buf, 16 }, { f->buf + 512, 512 } };
	struct gvq_buf wr[2] = { { f->buf + 1024, 512 }, { f->buf + 2048, 1 } };
	uint16_t head = gvq_add_indirect(&f->g, rd, 2, wr, 2);

	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.head, head);
	assert_int_equal(f->e.nread, 2);
	assert_int_equal(f->e.nwrite, 2);
	assert_int_equal(f->e.read_len, 528);
	assert_int_equal(f->e.write_len, 513);
	assert_ptr_equal(f->e.iov[3].iov_base, host(f, f->buf + 2048));
}

static void test_indirect_not_negotiated(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd = { f->buf, 16 };

	gvq_add_indirect(&f->g, &rd, 1, NULL, 0);
	expect_broken(f);
}

static uint64_t indirect_table(struct fixture *f, unsigned n)
{
	return fake_mem_alloc(&f->fm, 16ull * n, 16);
}

static void set_idesc(struct fixture *f, uint64_t t, unsigned i, uint64_t addr, uint32_t len,
		      uint16_t flags, uint16_t next)
{
	struct vring_desc *d = fake_mem_ptr(&f->fm, t);

	d[i] = (struct vring_desc){ addr, len, flags, next };
}

static void test_indirect_with_next(void **state)
{
	struct fixture *f = *state;
	uint64_t t = indirect_table(f, 1);

	set_idesc(f, t, 0, f->buf, 8, 0, 0);
	gvq_set_desc(&f->g, 0, t, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	gvq_set_desc(&f->g, 1, f->buf, 8, 0, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_after_direct(void **state)
{
	struct fixture *f = *state;
	uint64_t t = indirect_table(f, 1);

	set_idesc(f, t, 0, f->buf, 8, 0, 0);
	gvq_set_desc(&f->g, 0, f->buf, 8, VRING_DESC_F_NEXT, 1);
	gvq_set_desc(&f->g, 1, t, 16, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_nested(void **state)
{
	struct fixture *f = *state;
	uint64_t t1 = indirect_table(f, 1), t2 = indirect_table(f, 1);

	set_idesc(f, t2, 0, f->buf, 8, 0, 0);
	set_idesc(f, t1, 0, t2, 16, VRING_DESC_F_INDIRECT, 0);
	gvq_set_desc(&f->g, 0, t1, 16, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_bad_len(void **state)
{
	struct fixture *f = *state;
	uint64_t t = indirect_table(f, 2);

	set_idesc(f, t, 0, f->buf, 8, 0, 0);
	gvq_set_desc(&f->g, 0, t, 24, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_zero_len(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, f->buf, 0, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_outside(void **state)
{
	struct fixture *f = *state;

	gvq_set_desc(&f->g, 0, MEM_GPA + MEM_SIZE - 16, 32, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_loop(void **state)
{
	struct fixture *f = *state;
	uint64_t t = indirect_table(f, 2);

	set_idesc(f, t, 0, f->buf, 8, VRING_DESC_F_NEXT, 1);
	set_idesc(f, t, 1, f->buf, 8, VRING_DESC_F_NEXT, 0);
	gvq_set_desc(&f->g, 0, t, 32, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_next_out_of_range(void **state)
{
	struct fixture *f = *state;
	uint64_t t = indirect_table(f, 2);

	set_idesc(f, t, 0, f->buf, 8, VRING_DESC_F_NEXT, 2);
	gvq_set_desc(&f->g, 0, t, 32, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_buffer_outside(void **state)
{
	struct fixture *f = *state;
	uint64_t t = indirect_table(f, 1);

	set_idesc(f, t, 0, 0x1000, 8, 0, 0);
	gvq_set_desc(&f->g, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	expect_broken(f);
}

static void test_indirect_unaligned_table(void **state)
{
	struct fixture *f = *state;
	uint64_t t = indirect_table(f, 3) + 4;
	struct vring_desc d = { f->buf, 8, 0, 0 };

	/* the spec does not require alignment: must work (and not trip UBSan) */
	memcpy(fake_mem_ptr(&f->fm, t), &d, sizeof(d));
	gvq_set_desc(&f->g, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.read_len, 8);
}

static void test_too_many_segments(void **state)
{
	struct fixture *f = *state;
	unsigned n = VIRTQ_MAX_SEGS + 1;
	uint64_t t = indirect_table(f, n);
	struct gvq_buf rd = { f->buf, 4 };
	uint32_t id, len;

	for (unsigned i = 0; i < n; i++)
		set_idesc(f, t, i, f->buf + i, 1, i + 1 < n ? VRING_DESC_F_NEXT : 0, i + 1);
	gvq_set_desc(&f->g, 5, t, 16 * n, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 5);
	assert_int_equal(virtq_pop(&f->vq, &f->e), -E2BIG);
	assert_int_equal(f->e.head, 5);
	assert_false(f->vq.broken);
	virtq_push(&f->vq, 5, 0);
	assert_true(gvq_get_used(&f->g, &id, &len));
	assert_int_equal(id, 5);
	/* the queue goes on */
	f->g.next_desc = 0;
	gvq_add(&f->g, &rd, 1, NULL, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);

	/* exactly the maximum is fine */
	n = VIRTQ_MAX_SEGS;
	t = indirect_table(f, n);
	for (unsigned i = 0; i < n; i++)
		set_idesc(f, t, i, f->buf + i, 1, i + 1 < n ? VRING_DESC_F_NEXT : 0, i + 1);
	gvq_set_desc(&f->g, 6, t, 16 * n, VRING_DESC_F_INDIRECT, 0);
	gvq_publish(&f->g, 6);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(f->e.nread, VIRTQ_MAX_SEGS);
}

static void push_one(struct fixture *f)
{
	struct gvq_buf wr = { f->buf, 4 };
	uint16_t head = gvq_add(&f->g, NULL, 0, &wr, 1);
	uint32_t id, len;

	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	virtq_push(&f->vq, head, 4);
	assert_true(gvq_get_used(&f->g, &id, &len));
}

static void test_notify_plain(void **state)
{
	struct fixture *f = *state;

	push_one(f);
	assert_true(virtq_need_notify(&f->vq));
	/* nothing new */
	assert_false(virtq_need_notify(&f->vq));
	gvq_set_avail_flags(&f->g, VRING_AVAIL_F_NO_INTERRUPT);
	push_one(f);
	assert_false(virtq_need_notify(&f->vq));
	gvq_set_avail_flags(&f->g, 0);
	push_one(f);
	assert_true(virtq_need_notify(&f->vq));
}

static void test_notify_event_idx(void **state)
{
	struct fixture *f = *state;

	/* first decision always notifies */
	gvq_set_used_event(&f->g, 0);
	push_one(f);			/* used_idx 1 */
	assert_true(virtq_need_notify(&f->vq));

	/* driver wants an interrupt only once used passes entry 2 */
	gvq_set_used_event(&f->g, 2);
	push_one(f);			/* used_idx 2: event 2 not yet passed */
	assert_false(virtq_need_notify(&f->vq));
	push_one(f);			/* used_idx 3: crossed 2 */
	assert_true(virtq_need_notify(&f->vq));

	/* batch of two crossing the event at once */
	gvq_set_used_event(&f->g, 3);
	push_one(f);
	push_one(f);			/* used_idx 5: old 3, event 3 */
	assert_true(virtq_need_notify(&f->vq));

	/* event behind: driver is not interested */
	gvq_set_used_event(&f->g, 1);
	push_one(f);
	assert_false(virtq_need_notify(&f->vq));

	/* NO_INTERRUPT is ignored with EVENT_IDX */
	gvq_set_avail_flags(&f->g, VRING_AVAIL_F_NO_INTERRUPT);
	gvq_set_used_event(&f->g, 6);
	push_one(f);			/* used_idx 7: crossed 6 */
	assert_true(virtq_need_notify(&f->vq));
}

static void test_notify_event_idx_wrap(void **state)
{
	struct fixture *f = *state;

	for (unsigned i = 0; i < 65540; i++) {
		gvq_set_used_event(&f->g, (uint16_t)i);
		push_one(f);
		assert_true(virtq_need_notify(&f->vq));
	}
}

static void test_avail_event_published(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd = { f->buf, 4 };

	gvq_add(&f->g, &rd, 1, NULL, 0);
	gvq_add(&f->g, &rd, 1, NULL, 0);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
	/* drained: kick me when entry 2 arrives */
	assert_int_equal(gvq_avail_event(&f->g), 2);
}

/* Several chains given back together appear with one used->idx step, in
 * order, also across the end of the ring. */
static void test_push_n(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf wr = { f->buf, 64 };
	uint16_t heads[5];
	uint32_t lens[5], id, len;

	for (unsigned round = 0; round < 7; round++) {
		uint16_t before = f->g.used->idx;

		for (unsigned i = 0; i < 5; i++) {
			heads[i] = gvq_add(&f->g, NULL, 0, &wr, 1);
			assert_int_equal(virtq_pop(&f->vq, &f->e), 1);
			lens[i] = round * 10 + i;
		}
		virtq_push_n(&f->vq, heads, lens, 0);
		assert_int_equal(f->g.used->idx, before);
		virtq_push_n(&f->vq, heads, lens, 5);
		assert_int_equal(f->g.used->idx, (uint16_t)(before + 5));
		for (unsigned i = 0; i < 5; i++) {
			assert_true(gvq_get_used(&f->g, &id, &len));
			assert_int_equal(id, heads[i]);
			assert_int_equal(len, round * 10 + i);
		}
		assert_false(gvq_get_used(&f->g, &id, &len));
	}
	virtq_reset(&f->vq);
	virtq_push_n(&f->vq, heads, lens, 5);
	assert_int_equal(f->g.used->idx, 35);
}

static void test_push_after_reset_ignored(void **state)
{
	struct fixture *f = *state;

	virtq_reset(&f->vq);
	virtq_push(&f->vq, 0, 1);
	assert_int_equal(f->g.used->idx, 0);
	assert_false(virtq_need_notify(&f->vq));
	assert_int_equal(virtq_pop(&f->vq, &f->e), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TE(fn) cmocka_unit_test_setup_teardown(fn, setup_event_idx, teardown)
#define TN(fn) cmocka_unit_test_setup_teardown(fn, setup_no_indirect, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_empty),
		T(test_good_chain),
		T(test_zero_length_skipped),
		T(test_loop),
		T(test_self_loop),
		T(test_longest_chain_ok),
		T(test_head_out_of_range),
		T(test_next_out_of_range),
		T(test_buffer_outside),
		T(test_buffer_crosses_end),
		T(test_buffer_overflows),
		T(test_buffer_below),
		T(test_write_before_read),
		T(test_total_overflow),
		T(test_avail_jump),
		T(test_avail_backwards),
		T(test_wrap),
		TE(test_wrap),
		T(test_batch),
		T(test_start_checks),
		T(test_start_no_queue),
		T(test_indirect_good),
		TN(test_indirect_not_negotiated),
		T(test_indirect_with_next),
		T(test_indirect_after_direct),
		T(test_indirect_nested),
		T(test_indirect_bad_len),
		T(test_indirect_zero_len),
		T(test_indirect_outside),
		T(test_indirect_loop),
		T(test_indirect_next_out_of_range),
		T(test_indirect_buffer_outside),
		T(test_indirect_unaligned_table),
		T(test_too_many_segments),
		T(test_notify_plain),
		TE(test_notify_event_idx),
		TE(test_notify_event_idx_wrap),
		TE(test_avail_event_published),
		T(test_push_n),
		T(test_push_after_reset_ignored),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
