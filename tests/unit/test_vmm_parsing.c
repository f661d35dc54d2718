/* Command-line building and size parsing: user input the monitor turns
 * into guest state. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "arch.h"
#include "cmdline.h"
#include "libcove.h"
#include "virtio_net.h"

static void test_cmdline_devices(void **state)
{
	struct arch_mmio_dev devs[2] = {
		{ .base = 0xd0000000, .size = 0x1000, .irq = 5 },
		{ .base = 0xd0001000, .size = 0x1000, .irq = 6 },
	};
	char buf[256];
	int n;

	(void)state;
	n = cmdline_build(buf, sizeof(buf), "console=ttyS0", devs, 2);
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf, "console=ttyS0 virtio_mmio.device=4K@0xd0000000:5 "
			    "virtio_mmio.device=4K@0xd0001000:6");
	assert_true(cmdline_build(buf, sizeof(buf), "", devs, 1) > 0);
	assert_string_equal(buf, "virtio_mmio.device=4K@0xd0000000:5");
	assert_int_equal(cmdline_build(buf, sizeof(buf), NULL, NULL, 0), 0);
	assert_string_equal(buf, "");
}

static void test_cmdline_too_long(void **state)
{
	struct arch_mmio_dev dev = { .base = 0xd0000000, .size = 0x1000, .irq = 5 };
	char buf[40];

	(void)state;
	assert_int_equal(cmdline_build(buf, sizeof(buf), "console=ttyS0 panic=-1", &dev, 1), -E2BIG);
	assert_string_equal(buf, "");
	assert_int_equal(cmdline_build(buf, 5, "12345", NULL, 0), -E2BIG);
	assert_int_equal(cmdline_build(buf, 6, "12345", NULL, 0), 5);
}

static void test_cmdline_has_word(void **state)
{
	(void)state;
	assert_true(cmdline_has_word("console=ttyS0 acpi=off quiet", "acpi=off"));
	assert_true(cmdline_has_word("acpi=off", "acpi=off"));
	assert_true(cmdline_has_word("  acpi=off\t", "acpi=off"));
	assert_false(cmdline_has_word("xacpi=off", "acpi=off"));
	assert_false(cmdline_has_word("acpi=offx", "acpi=off"));
	assert_false(cmdline_has_word("acpi=of", "acpi=off"));
	assert_false(cmdline_has_word("", "acpi=off"));
	assert_false(cmdline_has_word(NULL, "acpi=off"));
}

static void test_parse_size(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(cove_parse_size("256", &v), 0);
	assert_int_equal(v, 256ull << 20);
	assert_int_equal(cove_parse_size("512M", &v), 0);
	assert_int_equal(v, 512ull << 20);
	assert_int_equal(cove_parse_size("2G", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(cove_parse_size("2GiB", &v), 0);
	assert_int_equal(v, 2ull << 30);
	assert_int_equal(cove_parse_size("1t", &v), 0);
	assert_int_equal(v, 1ull << 40);
	assert_int_equal(cove_parse_size("64k", &v), 0);
	assert_int_equal(v, 64ull << 10);
	assert_int_equal(cove_parse_size("4096B", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(cove_parse_size("1MB", &v), 0);
	assert_int_equal(v, 1ull << 20);
	assert_int_equal(cove_parse_size("", &v), -EINVAL);
	assert_int_equal(cove_parse_size("M", &v), -EINVAL);
	assert_int_equal(cove_parse_size("-1", &v), -EINVAL);
	assert_int_equal(cove_parse_size(" 1", &v), -EINVAL);
	assert_int_equal(cove_parse_size("1.5G", &v), -EINVAL);
	assert_int_equal(cove_parse_size("12Q", &v), -EINVAL);
	assert_int_equal(cove_parse_size("1GG", &v), -EINVAL);
	assert_int_equal(cove_parse_size("lots", &v), -EINVAL);
	assert_int_equal(cove_parse_size("99999999999999999999", &v), -EINVAL);
	assert_int_equal(cove_parse_size("20000000T", &v), -ERANGE);
	assert_int_equal(cove_parse_size(NULL, &v), -EINVAL);
}

static void test_parse_net(void **state)
{
	struct cove_net n;

	(void)state;
	assert_int_equal(cove_parse_net("tap=tap0", &n), 0);
	assert_int_equal(n.backend, COVE_NET_TAP);
	assert_string_equal(n.ifname, "tap0");
	assert_false(n.has_mac);
	assert_int_equal(cove_parse_net("tap=vm-tap.1,mac=02:aB:cd:00:00:ff", &n), 0);
	assert_string_equal(n.ifname, "vm-tap.1");
	assert_true(n.has_mac);
	assert_memory_equal(n.mac, ((uint8_t[]){ 0x02, 0xab, 0xcd, 0, 0, 0xff }), 6);
	assert_int_equal(cove_parse_net("user", &n), 0);
	assert_int_equal(n.backend, COVE_NET_USER);
	assert_int_equal(n.nfwds, 0);
	assert_int_equal(cove_parse_net("user,fwd=tcp:2222:22,mac=52:54:00:12:34:56,fwd=tcp:8080:80", &n), 0);
	assert_int_equal(n.nfwds, 2);
	assert_int_equal(n.fwds[0].host_port, 2222);
	assert_int_equal(n.fwds[0].guest_port, 22);
	assert_int_equal(n.fwds[1].host_port, 8080);
	assert_int_equal(n.fwds[1].guest_port, 80);
	assert_int_equal(cove_parse_net("user,fwd=tcp:65535:1", &n), 0);
}

static void test_parse_net_bad(void **state)
{
	static const char *const bad[] = {
		"", "tap", "tap=", "tap=0123456789abcdef", "tapx=a", "usr", "user=x", "user,",
		"tap=t,mac=", "tap=t,mac=02:00:00:00:00", "tap=t,mac=02:00:00:00:00:01:02",
		"tap=t,mac=01:00:00:00:00:01", "tap=t,mac=00:00:00:00:00:00",
		"tap=t,mac=02:00:00:00:00:0g", "tap=t,mac=2:00:00:00:00:01",
		"tap=t,mac=02-00-00-00-00-01", "tap=t,mac=02:00:00:00:00:01x",
		"tap=t,fwd=tcp:1:2", "user,fwd=", "user,fwd=udp:1:2", "user,fwd=tcp:1",
		"user,fwd=tcp:0:22", "user,fwd=tcp:22:0", "user,fwd=tcp:65536:22",
		"user,fwd=tcp:22:65536", "user,fwd=tcp::22", "user,fwd=tcp:22:", "user,fwd=tcp:-1:22",
		"user,fwd=tcp:22:22:22", "user,fwd=tcp: 22:22", "user,speed=10", "tap=t,x",
		"user,fwd=tcp:1:1,fwd=tcp:2:2,fwd=tcp:3:3,fwd=tcp:4:4,fwd=tcp:5:5,"
		"fwd=tcp:6:6,fwd=tcp:7:7,fwd=tcp:8:8,fwd=tcp:9:9",
	};
	struct cove_net n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (cove_parse_net(bad[i], &n) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		assert_true(cove_last_error()[0]);
	}
	assert_int_equal(cove_parse_net(NULL, &n), -EINVAL);
}

static void test_default_mac(void **state)
{
	uint8_t a[6], b[6], c[6];

	(void)state;
	vnet_default_mac("vm1", 0, a);
	vnet_default_mac("vm1", 0, b);
	assert_memory_equal(a, b, 6);
	assert_int_equal(a[0], 0x02);		/* locally administered unicast */
	vnet_default_mac("vm1", 1, c);
	assert_memory_not_equal(a, c, 6);
	vnet_default_mac("vm2", 0, c);
	assert_memory_not_equal(a, c, 6);
}

static void test_parse_vsock(void **state)
{
	struct cove_vsock v;
	char longp[COVE_VSOCK_PATH_MAX + 2 + 4];

	(void)state;
	assert_int_equal(cove_parse_vsock("cid=3,uds=/tmp/v.sock", &v), 0);
	assert_int_equal(v.cid, 3);
	assert_string_equal(v.uds, "/tmp/v.sock");
	assert_int_equal(cove_parse_vsock("uds=rel,cid=4294967294", &v), 0);
	assert_int_equal(v.cid, 4294967294u);
	assert_string_equal(v.uds, "rel");

	static const char *const bad[] = {
		"", "cid=3", "uds=/x", "cid=2,uds=/x", "cid=0,uds=/x", "cid=4294967295,uds=/x",
		"cid=4294967296,uds=/x", "cid=-3,uds=/x", "cid=+3,uds=/x", "cid= 3,uds=/x",
		"cid=3x,uds=/x", "cid=,uds=/x", "cid=3,uds=", "cid=3,uds=/x,ro", "cid=3,,uds=/x",
		"cid=99999999999999999999999,uds=/x", "cid=3,path=/x", "cid=3;uds=/x",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v.cid = 77;
		assert_int_equal(cove_parse_vsock(bad[i], &v), -EINVAL);
		assert_int_equal(v.cid, 77);	/* untouched */
		assert_true(strlen(cove_last_error()) > 0);
	}
	/* the path must leave room for _PORT in a unix socket address */
	memcpy(longp, "uds=", 4);
	memset(longp + 4, 'a', COVE_VSOCK_PATH_MAX);
	longp[4 + COVE_VSOCK_PATH_MAX] = '\0';
	char spec[sizeof(longp) + 8];
	snprintf(spec, sizeof(spec), "cid=3,%s", longp);
	assert_int_equal(cove_parse_vsock(spec, &v), 0);
	assert_int_equal(strlen(v.uds), COVE_VSOCK_PATH_MAX);
	assert_true(strlen(v.uds) + sizeof("_4294967295") <= 108);
	longp[4 + COVE_VSOCK_PATH_MAX] = 'a';
	longp[5 + COVE_VSOCK_PATH_MAX] = '\0';
	snprintf(spec, sizeof(spec), "cid=3,%s", longp);
	assert_int_equal(cove_parse_vsock(spec, &v), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmdline_devices),
		cmocka_unit_test(test_cmdline_too_long),
		cmocka_unit_test(test_cmdline_has_word),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_net),
		cmocka_unit_test(test_parse_net_bad),
		cmocka_unit_test(test_default_mac),
		cmocka_unit_test(test_parse_vsock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
