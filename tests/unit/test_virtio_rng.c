/* virtio-rng without KVM: the real event loop on its own thread, the
 * MMIO transport driven from the test thread, the guest-side queue driver. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "evloop.h"
#include "fake_mem.h"
#include "guest_vq.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"
#include "virtio_rng.h"

#define MEM_GPA		0x80000000ull
#define MEM_SIZE	(1ull << 20)

struct fixture {
	struct fake_mem fm;
	struct evloop *loop;
	struct virtio_dev *d;
	struct virtio_mmio *m;
	struct guest_vq g;
	uint64_t buf;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(fake_mem_init(&f->fm, MEM_GPA, MEM_SIZE), 0);
	f->buf = fake_mem_alloc(&f->fm, 64 << 10, 4096);
	assert_int_equal(evloop_create(&f->loop), 0);
	assert_int_equal(vrng_open(&f->d), 0);
	assert_int_equal(virtio_mmio_create(f->d, "vrng0", &f->fm.gm, f->loop, &f->m), 0);
	assert_int_equal(gvq_init(&f->g, &f->fm, VRNG_QUEUE_SIZE), 0);
	assert_int_equal(evloop_start(f->loop, NULL, NULL), 0);
	assert_true(gvq_mmio_init(f->m, 1ull << VIRTIO_F_VERSION_1, &f->g, 1) &
		    VIRTIO_STATUS_DRIVER_OK);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	evloop_join(f->loop);
	virtio_mmio_destroy(f->m);
	evloop_destroy(f->loop);
	fake_mem_free(&f->fm);
	free(f);
	return 0;
}

static uint32_t kick_wait(struct fixture *f, uint16_t head)
{
	uint32_t id, len;

	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	assert_true(gvq_wait_used(&f->g, &id, &len, 5000));
	assert_int_equal(id, head);
	return len;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_ids(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_DEVICE_ID), 4);
	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_QUEUE_NUM_MAX), VRNG_QUEUE_SIZE);
}

static void test_fill(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = fake_mem_ptr(&f->fm, f->buf);
	struct gvq_buf wr[2] = { { f->buf, 64 }, { f->buf + 1024, 100 } };
	uint16_t head = gvq_add(&f->g, NULL, 0, wr, 2);

	assert_int_equal(kick_wait(f, head), 164);
	/* 64 random bytes all zero: 2^-512 */
	assert_false(all_zero(p, 64));
	assert_false(all_zero(p + 1024, 100));
	assert_true(all_zero(p + 64, 1024 - 64));
	assert_true(all_zero(p + 1124, 1024));
	assert_int_equal(f->d->stats.requests, 1);
	assert_int_equal(f->d->stats.errors, 0);
}

static void test_fill_bounded(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = fake_mem_ptr(&f->fm, f->buf);
	struct gvq_buf wr = { f->buf, 32 << 10 };
	uint16_t head = gvq_add(&f->g, NULL, 0, &wr, 1);

	assert_int_equal(kick_wait(f, head), VRNG_MAX_FILL);
	assert_false(all_zero(p + VRNG_MAX_FILL - 64, 64));
	assert_true(all_zero(p + VRNG_MAX_FILL, (32 << 10) - VRNG_MAX_FILL));
}

static void test_bad_requests(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = fake_mem_ptr(&f->fm, f->buf);
	struct gvq_buf rd = { f->buf, 16 }, wr = { f->buf + 4096, 16 };
	uint16_t head = gvq_add(&f->g, &rd, 1, &wr, 1);

	/* a device-readable buffer: answered with nothing written */
	assert_int_equal(kick_wait(f, head), 0);
	assert_true(all_zero(p, 8192));
	assert_int_equal(f->d->stats.errors, 1);
	/* an empty chain of writable length 0 is fine */
	wr.len = 0;
	head = gvq_add(&f->g, NULL, 0, &wr, 1);
	assert_int_equal(kick_wait(f, head), 0);
	/* and the device still works */
	wr.len = 16;
	head = gvq_add(&f->g, NULL, 0, &wr, 1);
	assert_int_equal(kick_wait(f, head), 16);
	assert_false(mmio_rd(f->m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
}

static void test_many(void **state)
{
	struct fixture *f = *state;
	uint16_t heads[VRNG_QUEUE_SIZE];
	uint32_t id, len;

	/* a full queue in one kick */
	for (int i = 0; i < VRNG_QUEUE_SIZE; i++) {
		struct gvq_buf wr = { f->buf + i * 64, 64 };
		heads[i] = gvq_add(&f->g, NULL, 0, &wr, 1);
	}
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	for (int i = 0; i < VRNG_QUEUE_SIZE; i++) {
		assert_true(gvq_wait_used(&f->g, &id, &len, 5000));
		assert_int_equal(id, heads[i]);
		assert_int_equal(len, 64);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fill, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fill_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
