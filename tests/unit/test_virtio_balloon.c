/* virtio-balloon without KVM: the real event loop on its own thread, the
 * MMIO transport driven from the test thread, the guest-side queue driver,
 * and fake guest memory whose pages the device drops (they read as zero). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "evloop.h"
#include "fake_mem.h"
#include "guest_vq.h"
#include "libcove.h"
#include "virtio_balloon.h"
#include "virtio_dev.h"
#include "virtio_mmio.h"

#define MEM_GPA		0x80000000ull
#define MEM_SIZE	(4ull << 20)
#define QSIZE		16
#define PG		4096u

enum { Q_INFLATE, Q_DEFLATE, Q_STATS, Q_REPORTING };

struct fixture {
	struct fake_mem fm;
	struct evloop *loop;
	struct virtio_dev *d;
	struct virtio_mmio *m;
	struct guest_vq g[VBALLOON_NUM_QUEUES];
	unsigned nq;
	uint64_t buf;		/* pfn arrays, stats */
	uint64_t pages;		/* 64 pages the tests give back */
};

#define ALL_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_BALLOON_F_STATS_VQ) | \
		      (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | (1ull << VIRTIO_BALLOON_F_REPORTING))

static int setup_features(void **state, uint64_t features, unsigned nq)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(fake_mem_init(&f->fm, MEM_GPA, MEM_SIZE), 0);
	f->buf = fake_mem_alloc(&f->fm, 16 * PG, PG);
	f->pages = fake_mem_alloc(&f->fm, 64 * PG, 2 << 20);
	assert_int_equal(evloop_create(&f->loop), 0);
	assert_int_equal(vballoon_open(&f->d), 0);
	assert_int_equal(virtio_mmio_create(f->d, "vballoon0", &f->fm.gm, f->loop, &f->m), 0);
	for (unsigned i = 0; i < nq; i++)
		assert_int_equal(gvq_init(&f->g[i], &f->fm, QSIZE), 0);
	f->nq = nq;
	assert_int_equal(evloop_start(f->loop, NULL, NULL), 0);
	assert_true(gvq_mmio_init(f->m, features, f->g, nq) & VIRTIO_STATUS_DRIVER_OK);
	for (unsigned i = 0; i < 64; i++)
		memset(fake_mem_ptr(&f->fm, f->pages + i * PG), 0xa0 + (i & 15), PG);
	*state = f;
	return 0;
}

static int setup(void **state)
{
	return setup_features(state, ALL_FEATURES, 4);
}

/* Without the stats queue, reporting is queue 2 (Linux numbers the queues
 * it uses consecutively). */
static int setup_no_stats(void **state)
{
	return setup_features(state, ALL_FEATURES & ~(1ull << VIRTIO_BALLOON_F_STATS_VQ), 3);
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

static void kick(struct fixture *f, unsigned q)
{
	mmio_wr(f->m, VIRTIO_MMIO_QUEUE_NOTIFY, q);
}

static uint32_t kick_wait(struct fixture *f, unsigned q, uint16_t head)
{
	uint32_t id, len;

	kick(f, q);
	assert_true(gvq_wait_used(&f->g[q], &id, &len, 5000));
	assert_int_equal(id, head);
	return len;
}

struct stats_call {
	struct virtio_dev *d;
	struct cove_balloon_stats st;
};

static void stats_fn(void *arg)
{
	struct stats_call *c = arg;

	vballoon_stats(c->d, &c->st);
}

static struct cove_balloon_stats stats(struct fixture *f)
{
	struct stats_call c = { .d = f->d };

	assert_int_equal(evloop_call(f->loop, stats_fn, &c), 0);
	return c.st;
}

/* The page i of the test pages still holds its pattern / reads as zero. */
static bool page_is(struct fixture *f, unsigned i, uint8_t v)
{
	const uint8_t *p = fake_mem_ptr(&f->fm, f->pages + i * PG);

	for (unsigned k = 0; k < PG; k++)
		if (p[k] != v)
			return false;
	return true;
}

static bool page_intact(struct fixture *f, unsigned i)
{
	return page_is(f, i, 0xa0 + (i & 15));
}

static uint32_t pfn_of(struct fixture *f, unsigned i)
{
	return (uint32_t)((f->pages + i * PG) >> 12);
}

static void test_config(void **state)
{
	struct fixture *f = *state;
	uint32_t v = 0, actual = 1234;
	struct cove_balloon_stats st;

	assert_int_equal(mmio_rd(f->m, VIRTIO_MMIO_DEVICE_ID), 5);
	mmio_wr(f->m, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	v = mmio_rd(f->m, VIRTIO_MMIO_DEVICE_FEATURES);
	assert_int_equal(v & 0x3f, (1u << VIRTIO_BALLOON_F_STATS_VQ) |
			 (1u << VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | (1u << VIRTIO_BALLOON_F_REPORTING));

	vballoon_set_target(f->d, 300);
	assert_true(mmio_rd(f->m, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_ISR_CONFIG);
	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + VBALLOON_CFG_NUM_PAGES, &v, 4);
	assert_int_equal(v, 300);
	virtio_mmio_write(f->m, VIRTIO_MMIO_CONFIG + VBALLOON_CFG_ACTUAL, &actual, 4);
	virtio_mmio_read(f->m, VIRTIO_MMIO_CONFIG + VBALLOON_CFG_ACTUAL, &v, 4);
	assert_int_equal(v, 1234);
	st = stats(f);
	assert_int_equal(st.target, 300ull * PG);
	assert_int_equal(st.actual, 1234ull * PG);
	assert_int_equal(st.bad_input, 0);
	/* the driver may not write num_pages, nor half of actual */
	virtio_mmio_write(f->m, VIRTIO_MMIO_CONFIG + VBALLOON_CFG_NUM_PAGES, &actual, 4);
	virtio_mmio_write(f->m, VIRTIO_MMIO_CONFIG + VBALLOON_CFG_ACTUAL, &actual, 2);
	st = stats(f);
	assert_int_equal(st.target, 300ull * PG);
	assert_int_equal(st.actual, 1234ull * PG);
	assert_int_equal(st.bad_input, 2);
}

static void test_inflate(void **state)
{
	struct fixture *f = *state;
	uint32_t *pfns = fake_mem_ptr(&f->fm, f->buf);
	struct gvq_buf rd = { f->buf, 0 };
	struct cove_balloon_stats st;
	unsigned n = 0;
	uint16_t head;

	/* pages 0-3 (a run), 10, 7 (out of order), then bad ones */
	for (unsigned i = 0; i < 4; i++)
		pfns[n++] = pfn_of(f, i);
	pfns[n++] = pfn_of(f, 10);
	pfns[n++] = pfn_of(f, 7);
	pfns[n++] = 0xffffffff;				/* far beyond RAM */
	pfns[n++] = (uint32_t)((MEM_GPA + MEM_SIZE) >> 12);	/* just past the end */
	pfns[n++] = (uint32_t)(MEM_GPA >> 12) - 1;	/* just before */
	rd.len = n * 4;
	head = gvq_add(&f->g[Q_INFLATE], &rd, 1, NULL, 0);
	assert_int_equal(kick_wait(f, Q_INFLATE, head), 0);
	for (unsigned i = 0; i < 12; i++) {
		bool gone = i < 4 || i == 10 || i == 7;
		if (gone ? !page_is(f, i, 0) : !page_intact(f, i))
			fail_msg("page %u %s", i, gone ? "not dropped" : "dropped");
	}
	st = stats(f);
	assert_int_equal(st.inflated, 6ull * PG);
	assert_int_equal(st.bad_input, 3);
	assert_false(mmio_rd(f->m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);

	/* a ragged buffer: the whole pfns in it count, the rest is refused */
	pfns[0] = pfn_of(f, 20);
	rd.len = 6;
	head = gvq_add(&f->g[Q_INFLATE], &rd, 1, NULL, 0);
	kick_wait(f, Q_INFLATE, head);
	assert_true(page_is(f, 20, 0));
	assert_true(page_intact(f, 21));
	st = stats(f);
	assert_int_equal(st.bad_input, 5);	/* the chain and its segment */
	assert_int_equal(st.inflated, 7ull * PG);
}

static void test_deflate(void **state)
{
	struct fixture *f = *state;
	uint32_t *pfns = fake_mem_ptr(&f->fm, f->buf);
	struct gvq_buf rd = { f->buf, 8 };
	uint16_t head;

	pfns[0] = pfn_of(f, 0);
	pfns[1] = 0xffffffff;
	head = gvq_add(&f->g[Q_DEFLATE], &rd, 1, NULL, 0);
	assert_int_equal(kick_wait(f, Q_DEFLATE, head), 0);
	assert_true(page_intact(f, 0));		/* deflating touches nothing */
	rd.len = 3;
	head = gvq_add(&f->g[Q_DEFLATE], &rd, 1, NULL, 0);
	kick_wait(f, Q_DEFLATE, head);
	assert_int_equal(stats(f).bad_input, 1);
}

static void put_stat(uint8_t *p, uint16_t tag, uint64_t val)
{
	memcpy(p, &tag, 2);
	memcpy(p + 2, &val, 8);
}

static void test_stats(void **state)
{
	struct fixture *f = *state;
	uint8_t *p = fake_mem_ptr(&f->fm, f->buf);
	struct gvq_buf rd[2] = { { f->buf, 25 }, { f->buf + 25, 25 } };	/* an entry straddles */
	struct cove_balloon_stats st;
	uint32_t id, len;
	uint16_t head;

	st = stats(f);
	assert_int_equal(st.stats_age_ns, 0);
	assert_true(st.free_memory == COVE_BALLOON_UNKNOWN);
	put_stat(p, VIRTIO_BALLOON_S_MEMFREE, 100 << 20);
	put_stat(p + 10, VIRTIO_BALLOON_S_MEMTOT, 200 << 20);
	put_stat(p + 20, 42, 7);			/* unknown tag: skipped */
	put_stat(p + 30, VIRTIO_BALLOON_S_MINFLT, 1234);
	put_stat(p + 40, VIRTIO_BALLOON_S_AVAIL, 150 << 20);
	head = gvq_add(&f->g[Q_STATS], rd, 2, NULL, 0);
	kick(f, Q_STATS);
	/* the device keeps the buffer */
	usleep(50000);
	assert_false(gvq_get_used(&f->g[Q_STATS], &id, &len));
	st = stats(f);
	assert_true(st.stats_age_ns > 0);
	assert_int_equal(st.free_memory, 100 << 20);
	assert_int_equal(st.total_memory, 200 << 20);
	assert_int_equal(st.available_memory, 150 << 20);
	assert_int_equal(st.minor_faults, 1234);
	assert_true(st.swap_in == COVE_BALLOON_UNKNOWN);
	assert_int_equal(st.bad_input, 0);
	/* asking gave the buffer back */
	assert_true(gvq_wait_used(&f->g[Q_STATS], &id, &len, 5000));
	assert_int_equal(id, head);
	/* the guest answers with fresh numbers */
	put_stat(p, VIRTIO_BALLOON_S_MEMFREE, 50 << 20);
	rd[0].len = 10;
	gvq_add(&f->g[Q_STATS], rd, 1, NULL, 0);
	kick(f, Q_STATS);
	for (int i = 0; i < 500 && stats(f).free_memory != 50 << 20; i++)
		usleep(10000);
	st = stats(f);
	assert_int_equal(st.free_memory, 50 << 20);
	assert_int_equal(st.total_memory, 200 << 20);	/* kept from before */
	/* a ragged stats buffer is counted */
	while (gvq_get_used(&f->g[Q_STATS], &id, &len))
		;
	rd[0].len = 15;
	gvq_add(&f->g[Q_STATS], rd, 1, NULL, 0);
	kick(f, Q_STATS);
	for (int i = 0; i < 500 && stats(f).bad_input == 0; i++)
		usleep(10000);
	assert_int_equal(stats(f).bad_input, 1);
}

static void report_case(struct fixture *f, unsigned q)
{
	struct gvq_buf wr[3] = {
		{ f->pages, 4 * PG },			/* pages 0-3 */
		{ f->pages + 8 * PG + 100, 2 * PG },	/* only page 9 is whole */
		{ f->pages + 20 * PG, 100 },		/* no whole page */
	};
	struct cove_balloon_stats st;
	uint16_t head = gvq_add(&f->g[q], NULL, 0, wr, 3);

	assert_int_equal(kick_wait(f, q, head), 0);
	for (unsigned i = 0; i < 4; i++)
		assert_true(page_is(f, i, 0));
	assert_true(page_intact(f, 4));
	assert_true(page_intact(f, 8));
	assert_true(page_is(f, 9, 0));
	assert_true(page_intact(f, 10));
	assert_true(page_intact(f, 20));
	st = stats(f);
	assert_int_equal(st.reported, 5ull * PG);
	assert_int_equal(st.bad_input, 1);
}

static void test_reporting(void **state)
{
	report_case(*state, Q_REPORTING);
}

static void test_reporting_no_stats(void **state)
{
	report_case(*state, 2);
}

static void test_bad_ring(void **state)
{
	struct fixture *f = *state;
	struct gvq_buf rd = { MEM_GPA + MEM_SIZE - 8, 64 };	/* crosses the end of RAM */

	/* whole-chain validation refuses it: the device needs a reset, the
	 * monitor goes on */
	gvq_add(&f->g[Q_INFLATE], &rd, 1, NULL, 0);
	kick(f, Q_INFLATE);
	for (int i = 0; i < 500 && !(mmio_rd(f->m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET); i++)
		usleep(10000);
	assert_true(mmio_rd(f->m, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET);
	/* a reset forgets `actual` */
	mmio_wr(f->m, VIRTIO_MMIO_STATUS, 0);
	assert_int_equal(stats(f).actual, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_inflate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deflate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reporting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reporting_no_stats, setup_no_stats, teardown),
		cmocka_unit_test_setup_teardown(test_bad_ring, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
