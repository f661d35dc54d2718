/* Image manifests and indexes from untrusted bytes: the good forms, the
 * platform choice, and bad input of every kind. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "digest.h"
#include "log.h"
#include "oci_manifest.h"

#define D1 "sha256:1111111111111111111111111111111111111111111111111111111111111111"
#define D2 "sha256:2222222222222222222222222222222222222222222222222222222222222222"
#define D3 "sha256:3333333333333333333333333333333333333333333333333333333333333333"

#define CONFIG "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\"," \
	       "\"digest\":\"" D1 "\",\"size\":7}"
#define LAYER(d, mt, n) "{\"mediaType\":\"" mt "\",\"digest\":\"" d "\",\"size\":" #n "}"
#define GZ "application/vnd.oci.image.layer.v1.tar+gzip"

static const char good[] =
	"{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_MANIFEST "\"," CONFIG ",\"layers\":["
	LAYER(D2, GZ, 100) "," LAYER(D3, "application/vnd.docker.image.rootfs.diff.tar.gzip", 5)
	"]}";

static int parse(const char *s)
{
	struct oci_manifest m;

	return oci_manifest_parse(s, strlen(s), &m);
}

static void test_manifest_good(void **state)
{
	struct oci_manifest m;

	(void)state;
	assert_int_equal(oci_manifest_kind(good, strlen(good)), OCI_KIND_MANIFEST);
	assert_int_equal(oci_manifest_parse(good, strlen(good), &m), 0);
	assert_string_equal(m.config.digest, D1);
	assert_int_equal(m.config.size, 7);
	assert_int_equal(m.n_layers, 2);
	assert_string_equal(m.layers[0].digest, D2);
	assert_int_equal(m.layers[0].size, 100);
	assert_string_equal(m.layers[1].media_type,
			    "application/vnd.docker.image.rootfs.diff.tar.gzip");
	/* no mediaType: told apart by its fields */
	assert_int_equal(parse("{\"schemaVersion\":2," CONFIG ",\"layers\":["
			       LAYER(D2, "application/vnd.oci.image.layer.v1.tar+zstd", 1) "]}"), 0);
	assert_int_equal(oci_manifest_kind("{\"layers\":[]}", 13), OCI_KIND_MANIFEST);
	assert_int_equal(oci_manifest_kind("{\"manifests\":[]}", 16), OCI_KIND_INDEX);
}

static void bad(const char *s, const char *msg)
{
	assert_int_equal(parse(s), -EINVAL);
	if (!strstr(cove_last_error(), msg))
		fail_msg("%s: \"%s\" lacks \"%s\"", s, cove_last_error(), msg);
}

static void test_manifest_bad(void **state)
{
	char *big;

	(void)state;
	bad("", "bad JSON");
	bad("{", "bad JSON");
	bad("[]", "not a JSON object");
	bad("{\"schemaVersion\":2,\"schemaVersion\":2}", "bad JSON");	/* duplicate key */
	bad("{\"schemaVersion\":1}", "schemaVersion");
	bad("{\"schemaVersion\":\"2\"}", "schemaVersion");
	bad("{\"schemaVersion\":2,\"layers\":[]}", "config");
	bad("{\"schemaVersion\":2," CONFIG "}", "layers");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":[]}", "layers");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":{}}", "layers");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":[1]}", "not an object");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":[" LAYER("sha256:12", GZ, 1) "]}", "digest");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":[" LAYER(D2, GZ, -1) "]}", "size");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":[" LAYER(D2, GZ, 1.5) "]}", "size");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":[{\"digest\":\"" D2 "\",\"size\":1}]}",
	    "mediaType");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":[" LAYER(D2, "text/html", 1) "]}",
	    "unsupported layer type");
	bad("{\"schemaVersion\":2," CONFIG ",\"layers\":[" LAYER(D2,
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", 1) "]}",
	    "unsupported layer type");
	assert_int_equal(oci_manifest_kind("{\"mediaType\":\"text/plain\"}", 26), -EINVAL);
	assert_int_equal(oci_manifest_kind("{\"mediaType\":3}", 15), -EINVAL);
	assert_int_equal(oci_manifest_kind("{}", 2), -EINVAL);
	assert_int_equal(oci_manifest_kind("{\"a\":\"\\ud800\"}", 13), -EINVAL);

	/* too many layers */
	big = malloc(OCI_MANIFEST_MAX + 2);
	assert_non_null(big);
	strcpy(big, "{\"schemaVersion\":2," CONFIG ",\"layers\":[");
	for (int i = 0; i <= OCI_LAYERS_MAX; i++)
		strcat(big, LAYER(D2, GZ, 1) ",");
	strcpy(big + strlen(big) - 1, "]}");
	bad(big, "layers");
	/* over the size cap */
	memset(big, ' ', OCI_MANIFEST_MAX + 1);
	big[0] = '{';
	big[OCI_MANIFEST_MAX] = '}';
	big[OCI_MANIFEST_MAX + 1] = '\0';
	bad(big, "larger than");
	free(big);
}

#define ENTRY(d, os, arch) "{\"mediaType\":\"" OCI_MT_MANIFEST "\",\"digest\":\"" d \
	"\",\"size\":10,\"platform\":{\"os\":\"" os "\",\"architecture\":\"" arch "\"}}"

static void test_index_select(void **state)
{
	static const char idx[] = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MT_INDEX "\","
		"\"manifests\":[" ENTRY(D1, "linux", "arm64") "," ENTRY(D2, "linux", "amd64") ","
		ENTRY(D3, "windows", "amd64") "]}";
	static const char noplat[] = "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\""
		OCI_MT_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1}]}";
	static const char baddesc[] = "{\"schemaVersion\":2,\"manifests\":[" ENTRY(D2, "linux",
		"amd64") ",{\"digest\":\"x\"}]}";
	struct oci_desc d;

	(void)state;
	assert_int_equal(oci_manifest_kind(idx, strlen(idx)), OCI_KIND_INDEX);
	assert_int_equal(oci_index_select(idx, strlen(idx), "linux", "amd64", &d), 0);
	assert_string_equal(d.digest, D2);
	assert_int_equal(oci_index_select(idx, strlen(idx), "linux", "arm64", &d), 0);
	assert_string_equal(d.digest, D1);
	assert_int_equal(oci_index_select(idx, strlen(idx), "linux", "s390x", &d), -ENOENT);
	assert_non_null(strstr(cove_last_error(), "linux/s390x"));
	assert_int_equal(oci_index_select(noplat, strlen(noplat), "linux", "amd64", &d), -ENOENT);
	assert_int_equal(oci_index_select(baddesc, strlen(baddesc), "linux", "amd64", &d), -EINVAL);
	assert_int_equal(oci_index_select("{\"schemaVersion\":2}", 19, "linux", "amd64", &d),
			 -EINVAL);
	assert_int_equal(oci_index_select("{\"schemaVersion\":3,\"manifests\":[]}", 34, "linux",
					  "amd64", &d), -EINVAL);
}

static void test_index_tag(void **state)
{
	static const char idx[] = "{\"schemaVersion\":2,\"manifests\":["
		"{\"mediaType\":\"" OCI_MT_MANIFEST "\",\"digest\":\"" D1 "\",\"size\":1,"
		"\"annotations\":{\"org.opencontainers.image.ref.name\":\"1\"}},"
		"{\"mediaType\":\"" OCI_MT_MANIFEST "\",\"digest\":\"" D2 "\",\"size\":1,"
		"\"annotations\":{\"org.opencontainers.image.ref.name\":\"2\"}}]}";
	static const char one[] = "{\"schemaVersion\":2,\"manifests\":["
		"{\"mediaType\":\"" OCI_MT_MANIFEST "\",\"digest\":\"" D3 "\",\"size\":1}]}";
	struct oci_desc d;

	(void)state;
	assert_int_equal(oci_index_find_tag(idx, strlen(idx), "2", &d), 0);
	assert_string_equal(d.digest, D2);
	assert_int_equal(oci_index_find_tag(idx, strlen(idx), "3", &d), -ENOENT);
	assert_int_equal(oci_index_find_tag(idx, strlen(idx), NULL, &d), -ENOENT);
	assert_non_null(strstr(cove_last_error(), "holds 2 images"));
	assert_int_equal(oci_index_find_tag(one, strlen(one), NULL, &d), 0);
	assert_string_equal(d.digest, D3);
	assert_int_equal(oci_index_find_tag("nope", 4, NULL, &d), -EINVAL);
}

static void test_digest(void **state)
{
	char out[DIGEST_LEN + 1];

	(void)state;
	assert_true(digest_valid(D1));
	assert_false(digest_valid("sha256:"));
	assert_false(digest_valid(D1 "1"));
	assert_false(digest_valid("sha512:1111111111111111111111111111111111111111111111111111111111111111"));
	assert_int_equal(digest_buf("", 0, out), 0);
	assert_string_equal(out, "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_equal(digest_buf("abc", 3, out), 0);
	assert_string_equal(out, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_good),
		cmocka_unit_test(test_manifest_bad),
		cmocka_unit_test(test_index_select),
		cmocka_unit_test(test_index_tag),
		cmocka_unit_test(test_digest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
