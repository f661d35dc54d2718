/* Image references: docker's shorthand, registries, tags, digests, and
 * the inputs that must be refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"
#include "oci_ref.h"

#define D64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void check(const char *in, const char *registry, const char *repo, const char *tag,
		  const char *digest, const char *canon)
{
	struct oci_ref r;
	char buf[OCI_REF_MAX];

	assert_int_equal(oci_ref_parse(in, &r), 0);
	assert_string_equal(r.registry, registry);
	assert_string_equal(r.repo, repo);
	assert_string_equal(r.tag, tag);
	assert_string_equal(r.digest, digest);
	assert_int_equal(oci_ref_format(&r, buf, sizeof(buf)), (int)strlen(canon));
	assert_string_equal(buf, canon);
}

static void test_ref_forms(void **state)
{
	(void)state;
	check("debian:12", "docker.io", "library/debian", "12", "", "docker.io/library/debian:12");
	check("debian", "docker.io", "library/debian", "latest", "", "docker.io/library/debian:latest");
	check("debian:12.5", "docker.io", "library/debian", "12.5", "",
	      "docker.io/library/debian:12.5");
	check("user/app:v1", "docker.io", "user/app", "v1", "", "docker.io/user/app:v1");
	check("docker.io/library/busybox:1.36", "docker.io", "library/busybox", "1.36", "",
	      "docker.io/library/busybox:1.36");
	check("index.docker.io/foo/bar", "docker.io", "foo/bar", "latest", "",
	      "docker.io/foo/bar:latest");
	check("127.0.0.1:5000/test/busybox:1", "127.0.0.1:5000", "test/busybox", "1", "",
	      "127.0.0.1:5000/test/busybox:1");
	check("localhost/img", "localhost", "img", "latest", "", "localhost/img:latest");
	check("localhost:5000/a/b/c:x_y-z", "localhost:5000", "a/b/c", "x_y-z", "",
	      "localhost:5000/a/b/c:x_y-z");
	check("ghcr.io/org/my-app__x.y:TAG", "ghcr.io", "org/my-app__x.y", "TAG", "",
	      "ghcr.io/org/my-app__x.y:TAG");
	check("[::1]:5000/t/b:2", "[::1]:5000", "t/b", "2", "", "[::1]:5000/t/b:2");
	check("debian@sha256:" D64, "docker.io", "library/debian", "", "sha256:" D64,
	      "docker.io/library/debian@sha256:" D64);
	check("r.example:443/x:1@sha256:" D64, "r.example:443", "x", "1", "sha256:" D64,
	      "r.example:443/x:1@sha256:" D64);
	/* a first component without '.' or ':' is a path, not a registry */
	check("myhost/x", "docker.io", "myhost/x", "latest", "", "docker.io/myhost/x:latest");
}

static void refused(const char *in, const char *msg)
{
	struct oci_ref r;

	assert_int_equal(oci_ref_parse(in, &r), -EINVAL);
	if (!strstr(cove_last_error(), msg))
		fail_msg("%s: \"%s\" lacks \"%s\"", in, cove_last_error(), msg);
}

static void test_ref_bad(void **state)
{
	char longname[600];

	(void)state;
	refused("", "empty");
	refused("Debian:12", "lowercase");
	refused("debian:", "bad tag");
	refused("debian:a b", "bad tag");
	refused("debian:-x", "bad tag");
	refused("debian:" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "bad tag");
	refused("debian@sha256:1234", "digest");
	refused("debian@sha256:" D64 "0", "digest");
	refused("debian@md5:" D64, "digest");
	refused("debian@sha256:" "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		"digest");
	refused("a//b", "repository");
	refused("/a", "repository");
	refused("a/", "repository");
	refused("a/../b", "repository");
	refused("a..b", "repository");
	refused("-a", "repository");
	refused("a-", "repository");
	refused("a___b", "repository");
	refused("host:99999999/x", "registry");
	refused("host:/x", "registry");
	refused("-bad.host/x", "registry");
	refused("bad_host.io/x", "registry");
	refused("[::1/x", "registry");
	refused("x\n:1", "repository");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	refused(longname, "too long");
	longname[300] = '\0';
	refused(longname, "too long");
}

static void insecure(const char *in, bool expect)
{
	struct oci_ref r;

	assert_int_equal(oci_ref_parse(in, &r), 0);
	if (oci_ref_insecure(&r) != expect)
		fail_msg("%s: insecure should be %d", in, expect);
}

static void test_ref_insecure(void **state)
{
	(void)state;
	unsetenv("COVE_INSECURE_REGISTRIES");
	insecure("127.0.0.1:5000/a", true);
	insecure("127.1.2.3/a", true);
	insecure("localhost/a", true);
	insecure("localhost:5000/a", true);
	insecure("[::1]:5000/a", true);
	insecure("127.evil.com/a", false);
	insecure("localhost.evil.com/a", false);
	insecure("debian", false);
	insecure("10.0.0.1:5000/a", false);
	setenv("COVE_INSECURE_REGISTRIES", "10.0.0.1:5000,reg.lan", 1);
	insecure("10.0.0.1:5000/a", true);
	insecure("10.0.0.1:5001/a", false);
	insecure("reg.lan/a", true);
	insecure("reg.lan:80/a", true);
	insecure("reg.la/a", false);
	unsetenv("COVE_INSECURE_REGISTRIES");
}

static void test_ref_api_host(void **state)
{
	struct oci_ref r;

	(void)state;
	assert_int_equal(oci_ref_parse("debian", &r), 0);
	assert_string_equal(oci_ref_api_host(&r), "registry-1.docker.io");
	assert_int_equal(oci_ref_parse("ghcr.io/a/b", &r), 0);
	assert_string_equal(oci_ref_api_host(&r), "ghcr.io");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ref_forms),
		cmocka_unit_test(test_ref_bad),
		cmocka_unit_test(test_ref_insecure),
		cmocka_unit_test(test_ref_api_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
