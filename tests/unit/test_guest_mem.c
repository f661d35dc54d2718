/* Guest memory bounds checks: every guest address goes through gm_ptr. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "arch.h"
#include "guest_mem.h"

static uint8_t lo[4096], hi[8192];

static void setup_two(struct guest_mem *gm)
{
	*gm = (struct guest_mem){ 0 };
	assert_int_equal(gm_add_region(gm, 0x1000, sizeof(lo), lo), 0);
	assert_int_equal(gm_add_region(gm, 0x10000, sizeof(hi), hi), 0);
}

static void test_ptr_bounds(void **state)
{
	struct guest_mem gm;

	(void)state;
	setup_two(&gm);
	assert_ptr_equal(gm_ptr(&gm, 0x1000, 4096), lo);
	assert_ptr_equal(gm_ptr(&gm, 0x1fff, 1), lo + 4095);
	assert_ptr_equal(gm_ptr(&gm, 0x2000, 0), NULL);		/* just past the end */
	assert_ptr_equal(gm_ptr(&gm, 0x1fff, 2), NULL);		/* straddles the end */
	assert_ptr_equal(gm_ptr(&gm, 0xfff, 1), NULL);		/* just before */
	assert_ptr_equal(gm_ptr(&gm, 0x1000, 0), lo);
	assert_ptr_equal(gm_ptr(&gm, 0x11000, 4096), hi + 4096);
	assert_ptr_equal(gm_ptr(&gm, 0x1800, UINT64_MAX), NULL);	/* length overflow */
	assert_ptr_equal(gm_ptr(&gm, UINT64_MAX, 2), NULL);		/* address overflow */
	/* Two regions that touch nothing in between are never joined. */
	assert_ptr_equal(gm_ptr(&gm, 0x1000, 0x10000), NULL);
}

static void test_add_region_rejects(void **state)
{
	struct guest_mem gm;

	(void)state;
	setup_two(&gm);
	assert_int_equal(gm_add_region(&gm, 0x1800, 0x1000, lo), -EINVAL);	/* overlap */
	assert_int_equal(gm_add_region(&gm, 0x0, 0x1001, lo), -EINVAL);	/* overlap at start */
	assert_int_equal(gm_add_region(&gm, UINT64_MAX - 10, 100, lo), -EINVAL); /* wraps */
	assert_int_equal(gm_add_region(&gm, 0x100000, 0, lo), -EINVAL);
	assert_int_equal(gm.total, sizeof(lo) + sizeof(hi));
}

static void test_read_write(void **state)
{
	struct guest_mem gm;
	uint32_t v = 0xdeadbeef, r = 0;

	(void)state;
	setup_two(&gm);
	assert_int_equal(gm_write(&gm, 0x1ffc, &v, 4), 0);
	assert_int_equal(gm_read(&gm, 0x1ffc, &r, 4), 0);
	assert_int_equal(r, v);
	assert_int_equal(gm_write(&gm, 0x1ffd, &v, 4), -EFAULT);
	assert_int_equal(gm_read(&gm, 0x5000, &r, 4), -EFAULT);
}

static void test_layout(void **state)
{
	struct arch_mem_range r[GM_MAX_REGIONS];
	struct guest_mem gm;

	(void)state;
	/* Below the 32-bit hole: one range. */
	assert_int_equal(arch_mem_layout(256ull << 20, r, GM_MAX_REGIONS), 1);
	assert_int_equal(r[0].gpa, 0);
	assert_int_equal(r[0].size, 256ull << 20);
	/* Above it: the rest starts at 4 GiB. */
	assert_int_equal(arch_mem_layout(4ull << 30, r, GM_MAX_REGIONS), 2);
	assert_int_equal(r[0].size, LAYOUT_MEM32_END);
	assert_int_equal(r[1].gpa, LAYOUT_HIGH_MEM_START);
	assert_int_equal(r[0].size + r[1].size, 4ull << 30);
	/* gm_alloc maps what the layout says, lazily. */
	assert_int_equal(gm_alloc(&gm, 4ull << 30), 0);
	assert_int_equal(gm.total, 4ull << 30);
	assert_non_null(gm_ptr(&gm, LAYOUT_HIGH_MEM_START, 4096));
	assert_null(gm_ptr(&gm, LAYOUT_MEM32_END, 1));
	gm_free(&gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ptr_bounds),
		cmocka_unit_test(test_add_region_rejects),
		cmocka_unit_test(test_read_write),
		cmocka_unit_test(test_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
