/* config.toml: the TOML subset, the [machine] keys, the value checks, and
 * every kind of bad input refused with FILE:LINE. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"

static int parse(const char *text, struct config *c)
{
	config_defaults(c);
	return config_parse(text, strlen(text), "cfg.toml", c);
}

static void test_config_defaults(void **state)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	struct config c;

	(void)state;
	config_defaults(&c);
	assert_true(c.cpus >= 1 && c.cpus <= CONFIG_CPUS_MAX);
	assert_true(c.cpus >= (unsigned)(cores < 4 ? cores : 4));
	assert_true(c.cpus >= (unsigned)cores / 2 || c.cpus == CONFIG_CPUS_MAX);
	assert_true(c.memory >= (1ull << 30));
	assert_int_equal(c.memory % (1 << 20), 0);
	assert_int_equal(c.disk_size, 64ull << 30);
	assert_int_equal(c.home, CONFIG_HOME_RW);
	assert_int_equal(c.network, CONFIG_NET_AUTO);
	assert_string_equal(c.kernel, "");
}

static void test_config_empty(void **state)
{
	struct config c, d;

	(void)state;
	config_defaults(&d);
	assert_int_equal(parse("", &c), 0);
	assert_memory_equal(&c, &d, sizeof(c));
	assert_int_equal(parse("# only a comment\n\n   \t\n[machine]\n", &c), 0);
	assert_memory_equal(&c, &d, sizeof(c));
}

static void test_config_full(void **state)
{
	struct config c;

	(void)state;
	assert_int_equal(parse("\xef\xbb\xbf# cove defaults\r\n"
			       "[ machine ]  # the only section\r\n"
			       "cpus = 3\r\n"
			       "memory=\"2G\"\n"
			       "diskSize = 10_240 # MiB\n"
			       "homeMount = 'ro'\n"
			       "network = \"user\"\n"
			       "kernel = \"/opt/k\\u00e9rnel/bz\\tImage\"\n", &c), 0);
	assert_int_equal(c.network, CONFIG_NET_USER);
	assert_int_equal(c.cpus, 3);
	assert_int_equal(c.memory, 2ull << 30);
	assert_int_equal(c.disk_size, 10ull << 30);
	assert_int_equal(c.home, CONFIG_HOME_RO);
	assert_string_equal(c.kernel, "/opt/k\xc3\xa9rnel/bz\tImage");

	assert_int_equal(parse("[machine]\nmemory = 4096\nhomeMount = \"none\"\n"
			       "kernel = '/a\\b'\ndiskSize = \"1T\"", &c), 0);
	assert_int_equal(c.memory, 4096ull << 20);
	assert_int_equal(c.home, CONFIG_HOME_NONE);
	assert_string_equal(c.kernel, "/a\\b");	/* literal strings have no escapes */
	assert_int_equal(c.disk_size, 1ull << 40);
	assert_int_equal(parse("[machine]\nkernel = \"\\U0001F600\"", &c), -EINVAL);
	assert_int_equal(parse("[machine]\nkernel = \"/\\U0001F600\"", &c), 0);
	assert_string_equal(c.kernel, "/\xf0\x9f\x98\x80");
}

static void test_config_home_kernel(void **state)
{
	struct config c;

	(void)state;
	setenv("HOME", "/home/someone", 1);
	assert_int_equal(parse("[machine]\nkernel = \"~/k/bzImage\"\n", &c), 0);
	assert_string_equal(c.kernel, "/home/someone/k/bzImage");
}

/* text is refused with a message that starts "cfg.toml:LINE: " and
 * contains what. */
static void refused(const char *text, unsigned line, const char *what)
{
	char prefix[32];
	struct config c;

	assert_int_equal(parse(text, &c), -EINVAL);
	snprintf(prefix, sizeof(prefix), "cfg.toml:%u: ", line);
	if (strncmp(cove_last_error(), prefix, strlen(prefix)) || !strstr(cove_last_error(), what))
		fail_msg("\"%s\": got \"%s\", wanted \"%s…%s…\"", text, cove_last_error(), prefix,
			 what);
}

static void test_config_bad_structure(void **state)
{
	(void)state;
	refused("[machine]\ncpus = 2\nfoo = 1\n", 3, "unknown key \"foo\" in [machine]");
	refused("cpus = 2\n", 1, "unknown key \"cpus\" outside [machine]");
	refused("# x\n[network]\n", 2, "unknown section [network]");
	refused("[machine]\n[machine]\n", 2, "given twice");
	refused("[machine]\ncpus = 1\ncpus = 2\n", 3, "key \"cpus\" given twice");
	refused("[[machine]]\n", 1, "arrays of tables");
	refused("[machine\n", 1, "expected \"]\"");
	refused("[]\n", 1, "expected a section name");
	refused("[machine] x\n", 1, "unexpected \"x\"");
	refused("[machine.sub]\n", 1, "dotted section names");
	refused("[\"machine\"]\n", 1, "quoted section names");
	refused("[machine]\nmachine.cpus = 1\n", 2, "dotted keys");
	refused("[machine]\n\"cpus\" = 1\n", 2, "quoted keys");
	refused("[machine]\ncpus 1\n", 2, "expected \"=\"");
	refused("[machine]\ncpus =\n", 2, "expected a value");
	refused("[machine]\ncpus = # none\n", 2, "expected a value");
	refused("[machine]\n= 1\n", 2, "expected a key");
	refused("[machine]\ncpus = 2 3\n", 2, "unexpected \"3\"");
	refused("[machine]\ncpus = 2\x01\n", 2, "control character");
	refused("[machine]\n# \x80 bad utf-8\n", 2, "invalid UTF-8");
	refused("[machine]\r\ncpus = 2\r\r\n", 2, "control character");
}

static void test_config_bad_values(void **state)
{
	(void)state;
	refused("[machine]\ncpus = 0\n", 2, "cpus \"0\": not a number of CPUs from 1 to 64");
	refused("[machine]\ncpus = 65\n", 2, "from 1 to 64");
	refused("[machine]\ncpus = -1\n", 2, "cpus \"-1\"");
	refused("[machine]\ncpus = \"2\"\n", 2, "cpus must be an integer");
	refused("[machine]\ncpus = 2.5\n", 2, "floats and dates");
	refused("[machine]\ncpus = 1e3\n", 2, "floats and dates");
	refused("[machine]\ncpus = 0x10\n", 2, "only decimal");
	refused("[machine]\ncpus = 02\n", 2, "leading zeros");
	refused("[machine]\ncpus = 1__0\n", 2, "between digits");
	refused("[machine]\ncpus = 10_\n", 2, "between digits");
	refused("[machine]\ncpus = 1234567890123456789\n", 2, "integer too large");
	refused("[machine]\ncpus = true\n", 2, "booleans");
	refused("[machine]\ncpus = [1]\n", 2, "arrays and inline tables");
	refused("[machine]\ncpus = {a=1}\n", 2, "arrays and inline tables");
	refused("[machine]\ncpus = two\n", 2, "expected a value: a \"string\" or an integer");
	refused("[machine]\nmemory = \"lots\"\n", 2, "memory \"lots\": not a size");
	refused("[machine]\nmemory = 32\n", 2, "memory \"32\": at least 64M");
	refused("[machine]\nmemory = \"1000K\"\n", 2, "not a whole number of MiB");
	refused("[machine]\nmemory = \"99999999999T\"\n", 2, "too large");
	refused("[machine]\ndiskSize = 4\n", 2, "diskSize \"4\": at least 8M");
	refused("[machine]\nhomeMount = \"yes\"\n", 2, "homeMount \"yes\": use rw, ro or none");
	refused("[machine]\nhomeMount = 1\n", 2, "homeMount must be a string");
	refused("[machine]\nnetwork = \"nat\"\n", 2, "network \"nat\": use auto, user or bridge");
	refused("[machine]\nnetwork = 1\n", 2, "network must be a string");
	refused("[machine]\nkernel = 1\n", 2, "kernel must be a string");
	refused("[machine]\nkernel = \"bzImage\"\n", 2, "an absolute path");
	refused("[machine]\nkernel = \"\"\n", 2, "an absolute path");
}

static void test_config_bad_strings(void **state)
{
	char *big;

	(void)state;
	refused("[machine]\nkernel = \"/a\n", 2, "unterminated string");
	refused("[machine]\nkernel = '/a\n", 2, "unterminated string");
	refused("[machine]\nkernel = \"\"\"/a\"\"\"\n", 2, "multi-line strings");
	refused("[machine]\nkernel = \"/a\\q\"\n", 2, "unknown escape");
	refused("[machine]\nkernel = \"/a\\", 2, "unknown escape");
	refused("[machine]\nkernel = \"/a\\u12\"\n", 2, "4 hex digits");
	refused("[machine]\nkernel = \"/a\\U0011FFFF\"\n", 2, "not a Unicode scalar value");
	refused("[machine]\nkernel = \"/a\\uD800\"\n", 2, "not a Unicode scalar value");
	refused("[machine]\nkernel = \"/a\\u0000\"\n", 2, "NUL");
	refused("[machine]\nkernel = \"/a\x1b\"\n", 2, "control character");
	refused("[machine]\nkernel = \"/a\xc3\x28\"\n", 2, "invalid UTF-8");
	refused("[machine]\nkernel = \"/a\xed\xa0\x80\"\n", 2, "invalid UTF-8");

	big = malloc(PATH_MAX + 64);
	assert_non_null(big);
	strcpy(big, "[machine]\nkernel = \"/");
	memset(big + strlen(big), 'a', PATH_MAX);
	strcpy(big + strlen("[machine]\nkernel = \"/") + PATH_MAX, "\"\n");
	refused(big, 2, "string too long");
	free(big);
}

static void test_config_flags(void **state)
{
	enum config_network net;
	enum config_home h;
	uint64_t v;
	unsigned n;

	(void)state;
	assert_int_equal(config_parse_cpus("--cpus", "4", &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(config_parse_cpus("--cpus", "", &n), -EINVAL);
	assert_int_equal(config_parse_cpus("--cpus", " 4", &n), -EINVAL);
	assert_int_equal(config_parse_cpus("--cpus", "+4", &n), -EINVAL);
	assert_int_equal(config_parse_cpus("--cpus", "4x", &n), -EINVAL);
	assert_string_equal(cove_last_error(), "--cpus \"4x\": not a number of CPUs from 1 to 64");
	assert_int_equal(config_parse_memory("--memory", "1G", &v), 0);
	assert_int_equal(v, 1ull << 30);
	assert_int_equal(config_parse_memory("--memory", "63", &v), -EINVAL);
	assert_int_equal(config_parse_disk("--disk-size", "8", &v), 0);
	assert_int_equal(config_parse_disk("--disk-size", "-8", &v), -EINVAL);
	assert_int_equal(config_parse_home("--home-mount", "ro", &h), 0);
	assert_int_equal(h, CONFIG_HOME_RO);
	assert_string_equal(config_home_name(h), "ro");
	assert_int_equal(config_parse_home("--home-mount", "RW", &h), -EINVAL);
	assert_int_equal(config_parse_network("--network", "bridge", &net), 0);
	assert_int_equal(net, CONFIG_NET_BRIDGE);
	assert_string_equal(config_network_name(net), "bridge");
	assert_int_equal(config_parse_network("--network", "tap", &net), -EINVAL);
	assert_string_equal(cove_last_error(), "--network \"tap\": use auto, user or bridge");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults),
		cmocka_unit_test(test_config_empty),
		cmocka_unit_test(test_config_full),
		cmocka_unit_test(test_config_home_kernel),
		cmocka_unit_test(test_config_bad_structure),
		cmocka_unit_test(test_config_bad_values),
		cmocka_unit_test(test_config_bad_strings),
		cmocka_unit_test(test_config_flags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
