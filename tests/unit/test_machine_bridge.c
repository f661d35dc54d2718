/* Bridge networking's pure parts: tap names, picking an address, which
 * network a machine gets, and the host files: /proc/net/route,
 * resolv.conf, cove's block in /etc/hosts (bad blocks refused). Nothing
 * here touches the host's network. (Handing out addresses in a store of
 * machines is tested in test_machine_state.) */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "bridge.h"
#include "hostnet.h"
#include "log.h"

static void test_tap_name(void **state)
{
	char a[IFNAMSIZ], b[IFNAMSIZ], name[MACHINE_NAME_MAX + 1];

	(void)state;
	bridge_tap_name("busybox", a);
	assert_string_equal(a, "cv-busybox");
	bridge_tap_name("abcdefghijkl", a);	/* 12: still whole */
	assert_string_equal(a, "cv-abcdefghijkl");
	bridge_tap_name("abcdefghijklm", a);
	assert_int_equal(strlen(a), IFNAMSIZ - 1);
	assert_memory_equal(a, "cv-abcdef-", 10);
	bridge_tap_name("abcdefghijkln", b);	/* same start, another name: another tap */
	assert_int_equal(strlen(b), IFNAMSIZ - 1);
	assert_string_not_equal(a, b);
	bridge_tap_name("abcdefghijklm", b);	/* stable */
	assert_string_equal(a, b);
	memset(name, 'z', MACHINE_NAME_MAX);
	name[MACHINE_NAME_MAX] = '\0';
	bridge_tap_name(name, a);
	assert_int_equal(strlen(a), IFNAMSIZ - 1);
	for (const char *p = a + 10; *p; p++)
		assert_non_null(strchr("0123456789abcdef", *p));
}

static void test_pick_host(void **state)
{
	bool used[256] = { false };

	(void)state;
	assert_int_equal(bridge_pick_host(used), 2);
	used[2] = used[3] = used[5] = true;
	assert_int_equal(bridge_pick_host(used), 4);
	for (int i = 0; i < 256; i++)
		used[i] = true;
	used[0] = used[1] = used[255] = false;	/* network, gateway, broadcast: never */
	assert_int_equal(bridge_pick_host(used), 0);
	used[254] = false;
	assert_int_equal(bridge_pick_host(used), 254);
}

/* CAP_NET_ADMIN out of this process's effective set. */
static bool drop_net_admin(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d))
		return false;
	d[CAP_TO_INDEX(CAP_NET_ADMIN)].effective &= ~CAP_TO_MASK(CAP_NET_ADMIN);
	return !syscall(SYS_capset, &h, d);
}

static void test_choose(void **state)
{
	bool bridge = true;
	int status;
	pid_t pid;

	(void)state;
	assert_int_equal(bridge_choose(CONFIG_NET_USER, "--network", &bridge), 0);
	assert_false(bridge);
	assert_int_equal(bridge_choose(CONFIG_NET_AUTO, "--network", &bridge), 0);
	assert_int_equal(bridge, bridge_allowed());
	if (bridge_allowed()) {
		assert_int_equal(bridge_choose(CONFIG_NET_BRIDGE, "--network", &bridge), 0);
		assert_true(bridge);
	}
	/* without the privilege (dropped in a child when we have it): auto is
	 * user, bridge is refused with what to do (the child checks without
	 * cmocka, whose failures would go on in the child) */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		_exit(!drop_net_admin() || bridge_allowed() ? 2 :
		      bridge_choose(CONFIG_NET_AUTO, "--network", &bridge) || bridge ? 3 :
		      bridge_choose(CONFIG_NET_BRIDGE, "--network", &bridge) != -EPERM ? 4 :
		      strcmp(cove_last_error(), "--network bridge: needs root (or CAP_NET_ADMIN) "
			     "to set up the bridge cove0; without, use user or auto (user-mode "
			     "networking)") ? 5 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

/* A /proc/net/route line as the kernel prints it: the network-order words
 * in hex as this host's integers. */
static void route(char *buf, size_t size, const char *iface, const char *dest, const char *mask)
{
	size_t n = strlen(buf);

	snprintf(buf + n, size - n, "%s\t%08X\t00000000\t0001\t0\t0\t0\t%08X\t0\t0\t0\n", iface,
		 ip(dest), ip(mask));
}

static bool routed(const char *text, const char *net)
{
	return hostnet_routed(text, strlen(text), ip(net), 24);
}

static void test_routes(void **state)
{
	char t[2048] = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\t"
		       "Window\tIRTT\n";

	(void)state;
	route(t, sizeof(t), "eth0", "0.0.0.0", "0.0.0.0");	/* the default route: no */
	route(t, sizeof(t), "eth0", "10.0.2.0", "255.255.255.0");
	route(t, sizeof(t), "docker0", "192.168.64.0", "255.255.255.0");
	route(t, sizeof(t), "wg0", "192.168.96.0", "255.255.240.0");	/* a /20 */
	route(t, sizeof(t), "tun0", "192.168.70.5", "255.255.255.255");	/* one host */
	assert_true(routed(t, "192.168.64.0"));
	assert_false(routed(t, "192.168.65.0"));
	assert_true(routed(t, "192.168.96.0"));
	assert_true(routed(t, "192.168.111.0"));
	assert_false(routed(t, "192.168.112.0"));
	assert_true(routed(t, "192.168.70.0"));
	assert_false(routed(t, "172.16.0.0"));
	/* a route wider than the /24 covers it too */
	route(t, sizeof(t), "big", "172.16.0.0", "255.240.0.0");
	assert_true(routed(t, "172.17.3.0"));
	/* garbage is skipped, not misread */
	assert_false(routed("", "192.168.65.0"));
	assert_false(routed("eth0\tC0A841\t0\t0\t0\t0\t0\tFFFFFF\n", "192.168.65.0"));
	assert_false(routed("eth0\tZZA8C0\t0\t0\t0\t0\t0\t00FFFFFF\n", "192.168.65.0"));
	assert_false(routed("eth0 0041A8C0\n", "192.168.65.0"));
	assert_false(hostnet_routed(t, 0, ip("192.168.64.0"), 24));	/* length, not NUL */
}

static int dns(const char *text, char out[16])
{
	uint32_t a;
	int err = hostnet_dns(text, strlen(text), &a);

	if (!err)
		inet_ntop(AF_INET, &a, out, 16);
	return err;
}

static void test_resolv(void **state)
{
	char a[16];

	(void)state;
	assert_int_equal(dns("nameserver 1.1.1.1\nnameserver 8.8.8.8\n", a), 0);
	assert_string_equal(a, "1.1.1.1");
	/* the local stub (systemd-resolved, dnsmasq) and IPv6 are passed over */
	assert_int_equal(dns("# generated\n; too\nsearch lan\nnameserver 127.0.0.53\n"
			     "nameserver ::1\nnameserver fe80::1%eth0\n\tnameserver   192.168.1.1  "
			     "# the router\noptions edns0\n", a), 0);
	assert_string_equal(a, "192.168.1.1");
	assert_int_equal(dns("nameserver 9.9.9.9", a), 0);	/* no final newline */
	assert_string_equal(a, "9.9.9.9");
	assert_int_equal(dns("nameserver 10.0.0.1\r\n", a), 0);
	assert_string_equal(a, "10.0.0.1");
	assert_int_equal(dns("", a), -ENOENT);
	assert_int_equal(dns("nameserver 127.0.0.1\nnameserver 0.0.0.0\n", a), -ENOENT);
	assert_int_equal(dns("nameserver\nnameserver 1.2.3\nnameservers 1.2.3.4\n"
			     "# nameserver 1.2.3.4\nnameserver 1.2.3.4.5\nnameserver 01.2.3.4x\n",
			     a), -ENOENT);
}

/* hosts_edit on text; the result, or NULL when refused. */
static char *edit(const char *text, const char *host, const char *addr)
{
	char *out;
	size_t len;

	if (hostnet_hosts_edit(text, strlen(text), "/etc/hosts", host, addr, &out, &len))
		return NULL;
	assert_int_equal(strlen(out), len);
	return out;
}

static void expect(char *got, const char *want)
{
	assert_non_null(got);
	assert_string_equal(got, want);
	free(got);
}

#define BEGIN	HOSTNET_HOSTS_BEGIN "\n"
#define END	HOSTNET_HOSTS_END "\n"

static void test_hosts(void **state)
{
#define base	"127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n"
	char *t;

	(void)state;
	/* added at the end, the rest kept byte for byte */
	expect(edit(base, "a.machine", "192.168.64.2"),
	       "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n" BEGIN
	       "192.168.64.2\ta.machine\n" END);
	expect(edit("", "a.machine", "192.168.64.2"), BEGIN "192.168.64.2\ta.machine\n" END);
	expect(edit("127.0.0.1 localhost", "a.machine", "192.168.64.2"),
	       "127.0.0.1 localhost\n" BEGIN "192.168.64.2\ta.machine\n" END);
	/* nothing to remove: unchanged */
	expect(edit(base, "a.machine", NULL), base);
	expect(edit("127.0.0.1 localhost", "a.machine", NULL), "127.0.0.1 localhost");

	/* a second machine, then the first again with a new address */
	t = edit(base, "a.machine", "192.168.64.2");
	assert_non_null(t);
	expect(edit(t, "b.machine", "192.168.64.3"),
	       "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n" BEGIN
	       "192.168.64.2\ta.machine\n192.168.64.3\tb.machine\n" END);
	free(t);
	t = edit(base, "a.machine", "192.168.64.2");
	expect(edit(t, "a.machine", "192.168.64.9"),
	       "127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n" BEGIN
	       "192.168.64.9\ta.machine\n" END);
	free(t);

	/* a block in the middle; what follows it stays; a stale line for the
	 * same address goes; comments and foreign lines in it stay */
	expect(edit("1.2.3.4 x\n" BEGIN "192.168.64.2 old.machine\n# note\n"
		    "192.168.64.4 c.machine c\n" END "5.6.7.8 y\n", "c.machine", "192.168.64.2"),
	       "1.2.3.4 x\n" BEGIN "# note\n192.168.64.2\tc.machine\n" END "5.6.7.8 y\n");
	/* removing the last entry removes the block */
	expect(edit("1.2.3.4 x\n" BEGIN "192.168.64.2\ta.machine\n" END "5.6.7.8 y\n",
		    "a.machine", NULL), "1.2.3.4 x\n5.6.7.8 y\n");
	expect(edit("1.2.3.4 x\n" BEGIN "192.168.64.2\ta.machine\n" HOSTNET_HOSTS_END,
		    "a.machine", NULL), "1.2.3.4 x\n");
	/* a name only matches whole, and not in a comment */
	expect(edit(BEGIN "192.168.64.2\tab.machine # a.machine\n" END, "a.machine", NULL),
	       BEGIN "192.168.64.2\tab.machine # a.machine\n" END);
	/* markers with CRLF or trailing blanks are still the markers */
	expect(edit(HOSTNET_HOSTS_BEGIN " \r\n192.168.64.2 a.machine\r\n" HOSTNET_HOSTS_END "\t\r\n",
		    "a.machine", NULL), "");

	/* broken blocks are refused, not repaired */
	assert_null(edit(base BEGIN "192.168.64.2 a.machine\n", "a.machine", NULL));
	assert_string_equal(cove_last_error(), "/etc/hosts: cove's block is broken (\""
			    HOSTNET_HOSTS_BEGIN "\" without its end): fix or remove its lines by "
			    "hand");
	assert_null(edit(base END, "a.machine", "192.168.64.2"));
	assert_non_null(strstr(cove_last_error(), "without its begin"));
	assert_null(edit(END BEGIN, "a.machine", "192.168.64.2"));
	assert_null(edit(BEGIN END BEGIN END, "a.machine", "192.168.64.2"));
	assert_non_null(strstr(cove_last_error(), "a second"));
	assert_null(edit(BEGIN BEGIN END, "a.machine", "192.168.64.2"));
	assert_null(edit(BEGIN END END, "a.machine", "192.168.64.2"));
	assert_null(hostnet_hosts_edit("a\0b", 3, "/etc/hosts", "a.machine", NULL, &t,
				       &(size_t){ 0 }) ? NULL : "");
	assert_non_null(strstr(cove_last_error(), "a NUL byte"));
	/* a marker is a whole line: "# cove machines beginning" is not one */
	expect(edit("# cove machines beginning\n", "a.machine", NULL), "# cove machines beginning\n");
#undef base
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tap_name),
		cmocka_unit_test(test_pick_host),
		cmocka_unit_test(test_choose),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_resolv),
		cmocka_unit_test(test_hosts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
