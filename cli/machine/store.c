#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "fsutil.h"
#include "log.h"
#include "oci_manifest.h"
#include "progress.h"

#define INDEX_FILE	"images.json"

int store_open(struct store *s, enum store_lock lock)
{
	const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
	char path[PATH_MAX];
	int n, err;

	s->lock_fd = -1;
	if (xdg && xdg[0] == '/')
		n = snprintf(s->root, sizeof(s->root), "%s/cove/images", xdg);
	else if (home && home[0] == '/')
		n = snprintf(s->root, sizeof(s->root), "%s/.local/share/cove/images", home);
	else
		return cove_fail(-EINVAL, "neither XDG_DATA_HOME nor HOME is set");
	if (n >= (int)sizeof(s->root))
		return cove_fail(-ENAMETOOLONG, "the store path is too long");
	snprintf(path, sizeof(path), "%s/blobs/sha256", s->root);
	err = fsutil_mkdirs(path, 0700);
	if (!err) {
		snprintf(path, sizeof(path), "%s/tmp", s->root);
		err = fsutil_mkdirs(path, 0700);
	}
	if (err)
		return cove_fail(err, "%s: %s", path, strerror(-err));
	if (lock == STORE_NOLOCK)
		return 0;
	snprintf(path, sizeof(path), "%s/lock", s->root);
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	if (flock(s->lock_fd, lock == STORE_EXCLUSIVE ? LOCK_EX : LOCK_SH) < 0) {
		err = cove_fail(-errno, "%s: %s", path, strerror(errno));
		store_close(s);
		return err;
	}
	return 0;
}

void store_close(struct store *s)
{
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
}

void store_blob_path(const struct store *s, const char *digest, char *buf, size_t size)
{
	snprintf(buf, size, "%s/blobs/sha256/%s", s->root, digest + 7);
}

bool store_blob_has(const struct store *s, const char *digest)
{
	char path[PATH_MAX];

	store_blob_path(s, digest, path, sizeof(path));
	return access(path, F_OK) == 0;
}

int store_blob_tmp(const struct store *s, char *tmp, size_t size)
{
	int fd;

	snprintf(tmp, size, "%s/tmp/blob.XXXXXX", s->root);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return cove_fail(-errno, "%s: %s", tmp, strerror(errno));
	return fd;
}

int store_blob_commit(const struct store *s, const char *tmp, const char *digest)
{
	char path[PATH_MAX];

	store_blob_path(s, digest, path, sizeof(path));
	if (chmod(tmp, 0444) < 0 || rename(tmp, path) < 0) {
		int err = cove_fail(-errno, "%s: %s", path, strerror(errno));

		unlink(tmp);
		return err;
	}
	return 0;
}

int store_blob_import(const struct store *s, const char *path, const char *digest,
		      uint64_t size, struct progress *bar)
{
	char tmp[PATH_MAX], got[DIGEST_LEN + 1], buf[1 << 16];
	struct digest_ctx c;
	uint64_t total = 0;
	ssize_t n;
	int in, out, err;

	if (store_blob_has(s, digest))
		return 0;
	in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	out = store_blob_tmp(s, tmp, sizeof(tmp));
	if (out < 0) {
		close(in);
		return out;
	}
	err = digest_init(&c);
	if (err)
		goto out;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		digest_update(&c, buf, n);
		total += n;
		if (write(out, buf, n) != n) {
			err = cove_fail(-errno ?: -EIO, "%s: %s", tmp, strerror(errno ?: EIO));
			digest_abort(&c);
			goto out;
		}
		progress_advance(bar, n);
	}
	if (n < 0) {
		err = cove_fail(-errno, "%s: %s", path, strerror(errno));
		digest_abort(&c);
		goto out;
	}
	digest_final(&c, got);
	if (strcmp(got, digest) || (size != UINT64_MAX && total != size))
		err = cove_fail(-EINVAL, "%s: digest mismatch: expected %s, got %s", path, digest,
				got);
out:
	close(in);
	if (!err && fsync(out) < 0)
		err = cove_fail(-errno, "%s: %s", tmp, strerror(errno));
	close(out);
	if (err) {
		unlink(tmp);
		return err;
	}
	return store_blob_commit(s, tmp, digest);
}

int store_read_verified(const char *path, const char *digest, size_t max, char **buf,
			size_t *len)
{
	char got[DIGEST_LEN + 1];
	struct stat st;
	char *b;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size > max) {
		close(fd);
		return cove_fail(-EFBIG, "%s: larger than %zu bytes", path, max);
	}
	b = malloc(st.st_size + 1);
	if (!b) {
		close(fd);
		return cove_fail(-ENOMEM, "out of memory");
	}
	if (read(fd, b, st.st_size) != st.st_size)
		err = cove_fail(-EIO, "%s: short read", path);
	close(fd);
	if (!err)
		err = digest_buf(b, st.st_size, got);
	if (!err && strcmp(got, digest))
		err = cove_fail(-EINVAL, "%s: digest mismatch: expected %s, got %s", path, digest,
				got);
	if (err) {
		free(b);
		return err;
	}
	b[st.st_size] = '\0';
	*buf = b;
	*len = st.st_size;
	return 0;
}

int store_blob_read(const struct store *s, const char *digest, size_t max, char **buf,
		    size_t *len)
{
	char path[PATH_MAX];

	store_blob_path(s, digest, path, sizeof(path));
	return store_read_verified(path, digest, max, buf, len);
}

static int cmp_image(const void *a, const void *b)
{
	return strcmp(((const struct store_image *)a)->name, ((const struct store_image *)b)->name);
}

static bool copy_str(json_t *o, const char *key, char *out, size_t size)
{
	const char *v = json_string_value(json_object_get(o, key));

	if (!v || strlen(v) >= size)
		return false;
	strcpy(out, v);
	return true;
}

int store_images(const struct store *s, struct store_image **imgs, size_t *n)
{
	char path[PATH_MAX];
	json_error_t je;
	json_t *j, *list, *e;
	size_t i;

	*imgs = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "%s/" INDEX_FILE, s->root);
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	j = json_load_file(path, 0, &je);
	if (!j)
		return cove_fail(-EINVAL, "%s: %s", path, je.text);
	list = json_object_get(j, "images");
	if (!json_is_array(list))
		goto bad;
	*imgs = calloc(json_array_size(list) + 1, sizeof(**imgs));
	if (!*imgs) {
		json_decref(j);
		return cove_fail(-ENOMEM, "out of memory");
	}
	json_array_foreach(list, i, e) {
		struct store_image *im = &(*imgs)[i];

		if (!copy_str(e, "name", im->name, sizeof(im->name)) ||
		    !copy_str(e, "digest", im->digest, sizeof(im->digest)) ||
		    !copy_str(e, "config", im->config, sizeof(im->config)) ||
		    !digest_valid(im->digest) || !digest_valid(im->config) ||
		    !json_is_integer(json_object_get(e, "size")) ||
		    !json_is_integer(json_object_get(e, "created")))
			goto bad;
		im->size = json_integer_value(json_object_get(e, "size"));
		im->created = json_integer_value(json_object_get(e, "created"));
	}
	*n = i;
	json_decref(j);
	qsort(*imgs, *n, sizeof(**imgs), cmp_image);
	return 0;
bad:
	json_decref(j);
	free(*imgs);
	*imgs = NULL;
	return cove_fail(-EINVAL, "%s: not a cove image index", path);
}

static void fsync_dir(const char *root, const char *sub)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s%s", root, sub);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
}

/* Replace images.json with imgs[0..n): tmp file, fsync, rename; the blobs
 * it names are made durable first, the rename after. */
static int write_index(const struct store *s, const struct store_image *imgs, size_t n)
{
	char path[PATH_MAX], tmp[PATH_MAX];
	json_t *list = json_array(), *j = json_pack("{s:o}", "images", list);
	int fd, err = 0;

	if (!j)
		return cove_fail(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:I,s:I}",
			"name", imgs[i].name, "digest", imgs[i].digest, "config", imgs[i].config,
			"size", (json_int_t)imgs[i].size, "created", (json_int_t)imgs[i].created));
	snprintf(path, sizeof(path), "%s/" INDEX_FILE, s->root);
	snprintf(tmp, sizeof(tmp), "%s/tmp/" INDEX_FILE ".XXXXXX", s->root);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		json_decref(j);
		return cove_fail(-errno, "%s: %s", tmp, strerror(errno));
	}
	if (json_dumpfd(j, fd, JSON_INDENT(1)) < 0 || write(fd, "\n", 1) != 1 || fsync(fd) < 0)
		err = cove_fail(-EIO, "%s: write failed", tmp);
	close(fd);
	json_decref(j);
	fsync_dir(s->root, "/blobs/sha256");
	if (!err && (chmod(tmp, 0600) < 0 || rename(tmp, path) < 0))
		err = cove_fail(-errno, "%s: %s", path, strerror(errno));
	if (err)
		unlink(tmp);
	else
		fsync_dir(s->root, "");
	return err;
}

static int collect_garbage(const struct store *s, const struct store_image *imgs, size_t n);

int store_image_add(struct store *s, const char *name, const char *manifest_digest)
{
	struct store_image *imgs, *im = NULL, *grown;
	bool replaced = false;
	struct oci_manifest *m;
	size_t n, len;
	char *buf;
	int err;

	m = malloc(sizeof(*m));
	if (!m)
		return cove_fail(-ENOMEM, "out of memory");
	err = store_blob_read(s, manifest_digest, OCI_MANIFEST_MAX, &buf, &len);
	if (!err) {
		err = oci_manifest_parse(buf, len, m);
		free(buf);
	}
	if (!err)
		err = store_images(s, &imgs, &n);
	if (err) {
		free(m);
		return err;
	}
	for (size_t i = 0; i < n; i++)
		if (!strcmp(imgs[i].name, name))
			im = &imgs[i];
	if (im) {
		replaced = strcmp(im->digest, manifest_digest) != 0;
	} else {
		grown = realloc(imgs, (n + 1) * sizeof(*imgs));
		if (!grown) {
			free(imgs);
			free(m);
			return cove_fail(-ENOMEM, "out of memory");
		}
		imgs = grown;
		im = &imgs[n++];
	}
	memset(im, 0, sizeof(*im));
	snprintf(im->name, sizeof(im->name), "%s", name);
	strcpy(im->digest, manifest_digest);
	strcpy(im->config, m->config.digest);
	im->size = m->config.size;
	for (unsigned i = 0; i < m->n_layers; i++)
		im->size += m->layers[i].size;
	im->created = time(NULL);
	free(m);
	err = write_index(s, imgs, n);
	if (!err && replaced)
		err = collect_garbage(s, imgs, n);	/* the name's old blobs */
	free(imgs);
	return err;
}

int store_image_find(const struct store *s, const char *what, struct store_image *out)
{
	struct store_image *imgs;
	struct oci_ref ref;
	char name[OCI_REF_MAX] = "";
	size_t n, hits = 0, plen = strlen(what);
	bool hex = plen >= 4 && plen <= 64 && strspn(what, "0123456789abcdef") == plen;
	int err;

	if (!strncmp(what, "sha256:", 7) && digest_valid(what)) {
		what += 7;
		plen = 64;
		hex = true;
	}
	err = store_images(s, &imgs, &n);
	if (err)
		return err;
	if (oci_ref_parse(what, &ref) == 0)
		oci_ref_format(&ref, name, sizeof(name));
	cove_clear_error();
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(imgs[i].name, name) || !strcmp(imgs[i].name, what)) {
			*out = imgs[i];
			free(imgs);
			return 0;
		}
	}
	for (size_t i = 0; hex && i < n; i++) {
		if (!strncmp(imgs[i].digest + 7, what, plen)) {
			*out = imgs[i];
			hits++;
		}
	}
	free(imgs);
	if (hits > 1)
		return cove_fail(-EINVAL, "%s: more than one image has this digest prefix", what);
	if (hits == 0)
		return cove_fail(-ENOENT, "no such image: %s", what);
	return 0;
}

/* Add the blobs of image im to the referenced set (a JSON object). */
static int mark(const struct store *s, const struct store_image *im, json_t *keep)
{
	struct oci_manifest *m = malloc(sizeof(*m));
	size_t len;
	char *buf;
	int err;

	if (!m)
		return cove_fail(-ENOMEM, "out of memory");
	json_object_set_new(keep, im->digest, json_true());
	err = store_blob_read(s, im->digest, OCI_MANIFEST_MAX, &buf, &len);
	if (!err) {
		err = oci_manifest_parse(buf, len, m);
		free(buf);
	}
	if (!err) {
		json_object_set_new(keep, m->config.digest, json_true());
		for (unsigned i = 0; i < m->n_layers; i++)
			json_object_set_new(keep, m->layers[i].digest, json_true());
	}
	free(m);
	return err;
}

/* Remove the blobs no image needs, and leftovers in tmp/. */
static int collect_garbage(const struct store *s, const struct store_image *imgs, size_t n)
{
	json_t *keep = json_object();
	char path[PATH_MAX], digest[8 + sizeof(((struct dirent *)0)->d_name)];
	struct dirent *d;
	DIR *dir;
	int err = 0;

	if (!keep)
		return cove_fail(-ENOMEM, "out of memory");
	for (size_t i = 0; !err && i < n; i++)
		err = mark(s, &imgs[i], keep);
	if (err) {
		json_decref(keep);
		return err;
	}
	snprintf(path, sizeof(path), "%s/blobs/sha256", s->root);
	dir = opendir(path);
	while (dir && (d = readdir(dir))) {
		snprintf(digest, sizeof(digest), "sha256:%s", d->d_name);
		if (d->d_name[0] != '.' && !json_object_get(keep, digest))
			unlinkat(dirfd(dir), d->d_name, 0);
	}
	if (dir)
		closedir(dir);
	snprintf(path, sizeof(path), "%s/tmp", s->root);
	dir = opendir(path);
	while (dir && (d = readdir(dir)))
		if (d->d_name[0] != '.')
			unlinkat(dirfd(dir), d->d_name, 0);
	if (dir)
		closedir(dir);
	json_decref(keep);
	return 0;
}

int store_image_remove(struct store *s, const char *name)
{
	struct store_image *imgs;
	size_t n, j = 0;
	int err = store_images(s, &imgs, &n);

	if (err)
		return err;
	for (size_t i = 0; i < n; i++)
		if (strcmp(imgs[i].name, name))
			imgs[j++] = imgs[i];
	if (j == n) {
		free(imgs);
		return cove_fail(-ENOENT, "no such image: %s", name);
	}
	err = write_index(s, imgs, j);
	if (!err)
		err = collect_garbage(s, imgs, j);
	free(imgs);
	return err;
}
