/* The image store in a scratch XDG_DATA_HOME: blobs checked on the way
 * in, images added, found (by name or digest prefix), replaced and
 * removed with their blobs, and a corrupt index refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "digest.h"
#include "log.h"
#include "store.h"

static char home[64];

/* Write data as a blob through a file, as an import does (its progress
 * counting every byte copied: none when the store has it); its digest out. */
static void put(struct store *s, const char *data, char digest[DIGEST_LEN + 1])
{
	struct progress bar;
	char path[128];
	bool had;
	FILE *f;

	assert_int_equal(digest_buf(data, strlen(data), digest), 0);
	had = store_blob_has(s, digest);
	snprintf(path, sizeof(path), "%s/src", home);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(data, f);
	fclose(f);
	f = fopen("/dev/null", "w");
	assert_non_null(f);
	progress_init(&bar, f);
	progress_begin(&bar, digest, "copying", NULL, strlen(data));
	assert_int_equal(store_blob_import(s, path, digest, strlen(data), &bar), 0);
	assert_int_equal(bar.done, had ? 0 : strlen(data));
	progress_end(&bar, NULL);
	fclose(f);
	assert_true(store_blob_has(s, digest));
}

/* A manifest for one config and one layer, stored; its digest out. */
static void image(struct store *s, const char *layer, char digest[DIGEST_LEN + 1],
		  char layer_digest[DIGEST_LEN + 1])
{
	char config[DIGEST_LEN + 1], m[1024];

	put(s, "{\"os\":\"linux\"}", config);
	put(s, layer, layer_digest);
	snprintf(m, sizeof(m), "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"c\",\"digest\":"
		 "\"%s\",\"size\":14},\"layers\":[{\"mediaType\":"
		 "\"application/vnd.oci.image.layer.v1.tar\",\"digest\":\"%s\",\"size\":%zu}]}",
		 config, layer_digest, strlen(layer));
	put(s, m, digest);
}

static int setup(void **state)
{
	char cmd[128];

	(void)state;
	strcpy(home, "/tmp/cove-test-store.XXXXXX");
	if (!mkdtemp(home))
		return -1;
	setenv("XDG_DATA_HOME", home, 1);
	snprintf(cmd, sizeof(cmd), "rm -rf %s/cove", home);
	return system(cmd);
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
	return system(cmd);
}

static void test_blob_checked(void **state)
{
	struct store s;
	char d[DIGEST_LEN + 1], other[DIGEST_LEN + 1], path[128], tmp[PATH_MAX], *buf;
	size_t len;
	FILE *f;
	int fd;

	(void)state;
	assert_int_equal(store_open(&s, STORE_EXCLUSIVE), 0);
	put(&s, "hello", d);
	assert_int_equal(store_blob_read(&s, d, 100, &buf, &len), 0);
	assert_int_equal(len, 5);
	assert_string_equal(buf, "hello");
	free(buf);
	assert_int_equal(store_blob_read(&s, d, 4, &buf, &len), -EFBIG);

	/* content that is not what its digest says is refused */
	assert_int_equal(digest_buf("other", 5, other), 0);
	snprintf(path, sizeof(path), "%s/src", home);
	f = fopen(path, "w");
	fputs("tampered", f);
	fclose(f);
	assert_int_equal(store_blob_import(&s, path, other, UINT64_MAX, NULL), -EINVAL);
	assert_non_null(strstr(cove_last_error(), "digest mismatch"));
	assert_false(store_blob_has(&s, other));
	/* right content, wrong size */
	f = fopen(path, "w");
	fputs("other", f);
	fclose(f);
	assert_int_equal(store_blob_import(&s, path, other, 6, NULL), -EINVAL);
	assert_false(store_blob_has(&s, other));

	/* a blob changed in the store is caught when read */
	fd = store_blob_tmp(&s, tmp, sizeof(tmp));
	assert_true(fd >= 0);
	close(fd);
	f = fopen(tmp, "w");
	fputs("HELLO", f);
	fclose(f);
	store_blob_path(&s, d, path, sizeof(path));
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(store_blob_read(&s, d, 100, &buf, &len), -EINVAL);
	store_close(&s);
}

static void test_images(void **state)
{
	struct store s;
	struct store_image *imgs, im;
	char m1[DIGEST_LEN + 1], m2[DIGEST_LEN + 1], l1[DIGEST_LEN + 1], l2[DIGEST_LEN + 1];
	char prefix[16];
	size_t n;

	(void)state;
	assert_int_equal(store_open(&s, STORE_EXCLUSIVE), 0);
	assert_int_equal(store_images(&s, &imgs, &n), 0);
	assert_int_equal(n, 0);
	free(imgs);

	image(&s, "layer one", m1, l1);
	image(&s, "layer two", m2, l2);
	assert_int_equal(store_image_add(&s, "docker.io/library/one:1", m1), 0);
	assert_int_equal(store_image_add(&s, "docker.io/library/two:1", m2), 0);
	assert_int_equal(store_image_add(&s, "docker.io/library/alias:1", m1), 0);
	assert_int_equal(store_images(&s, &imgs, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(imgs[0].name, "docker.io/library/alias:1");	/* sorted */
	assert_int_equal(imgs[0].size, 14 + strlen("layer one"));
	free(imgs);

	assert_int_equal(store_image_find(&s, "one:1", &im), 0);		/* short name */
	assert_string_equal(im.digest, m1);
	snprintf(prefix, sizeof(prefix), "%.12s", m2 + 7);
	assert_int_equal(store_image_find(&s, prefix, &im), 0);
	assert_string_equal(im.name, "docker.io/library/two:1");
	assert_int_equal(store_image_find(&s, m2, &im), 0);
	snprintf(prefix, sizeof(prefix), "%.12s", m1 + 7);
	assert_int_equal(store_image_find(&s, prefix, &im), -EINVAL);	/* two names */
	assert_int_equal(store_image_find(&s, "three", &im), -ENOENT);
	assert_int_equal(store_image_find(&s, "Bad Name", &im), -ENOENT);

	/* removing one name keeps the blobs another still uses */
	assert_int_equal(store_image_remove(&s, "docker.io/library/one:1"), 0);
	assert_true(store_blob_has(&s, l1));
	assert_int_equal(store_image_remove(&s, "docker.io/library/alias:1"), 0);
	assert_false(store_blob_has(&s, l1));
	assert_false(store_blob_has(&s, m1));
	assert_true(store_blob_has(&s, l2));
	assert_int_equal(store_image_remove(&s, "docker.io/library/alias:1"), -ENOENT);

	/* a name pointed elsewhere drops what only its old image used */
	image(&s, "layer three", m1, l1);
	assert_int_equal(store_image_add(&s, "docker.io/library/two:1", m1), 0);
	assert_false(store_blob_has(&s, l2));
	assert_true(store_blob_has(&s, l1));
	/* an image whose manifest is not in the store cannot be added */
	assert_int_equal(store_image_add(&s, "x:1", m2), -ENOENT);
	store_close(&s);
}

static void test_bad_index(void **state)
{
	struct store s;
	struct store_image *imgs;
	char path[128];
	size_t n;
	FILE *f;

	(void)state;
	assert_int_equal(store_open(&s, STORE_SHARED), 0);
	snprintf(path, sizeof(path), "%s/cove/images/images.json", home);
	f = fopen(path, "w");
	fputs("{\"images\":[{\"name\":\"x\"}]}", f);
	fclose(f);
	assert_int_equal(store_images(&s, &imgs, &n), -EINVAL);
	assert_non_null(strstr(cove_last_error(), "not a cove image index"));
	f = fopen(path, "w");
	fputs("{", f);
	fclose(f);
	assert_int_equal(store_images(&s, &imgs, &n), -EINVAL);
	store_close(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_blob_checked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_images, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_index, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
