#include "oci_import.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>

#include "human.h"
#include "log.h"
#include "oci_manifest.h"
#include "progress.h"

#define ARCHIVE_FILES_MAX	4096

/* An OCI layout: its index.json, and the directory of its sha256 blobs. */
struct layout {
	char blobdir[PATH_MAX - 128];
	char *index;
	size_t index_len;
};

static void blob_file(const struct layout *l, const char *digest, char *buf, size_t size)
{
	snprintf(buf, size, "%s/%s", l->blobdir, digest + 7);
}

static int import_blob(struct store *s, const struct layout *l, const struct oci_desc *d,
		       FILE *progress)
{
	char path[PATH_MAX], hs[32], done[48];
	struct progress bar;
	int err;

	blob_file(l, d->digest, path, sizeof(path));
	progress_init(&bar, progress);
	progress_begin(&bar, d->digest, "copying", NULL, d->size);
	err = store_blob_import(s, path, d->digest, d->size, &bar);
	snprintf(done, sizeof(done), "copied %s", human_size(d->size, hs, sizeof(hs)));
	progress_end(&bar, err ? NULL : done);
	return err;
}

static int import_layout(struct store *s, const struct layout *l, const char *tag,
			 FILE *progress, char digest[DIGEST_LEN + 1])
{
	struct oci_manifest *m = NULL;
	struct oci_desc d;
	char path[PATH_MAX];
	size_t len;
	char *buf;
	int kind, err;

	err = oci_index_find_tag(l->index, l->index_len, tag, &d);
	if (err)
		return err;
	blob_file(l, d.digest, path, sizeof(path));
	err = store_read_verified(path, d.digest, OCI_MANIFEST_MAX, &buf, &len);
	if (err)
		return err;
	kind = oci_manifest_kind(buf, len);
	if (kind == OCI_KIND_INDEX) {
		err = oci_index_select(buf, len, "linux", "amd64", &d);
		free(buf);
		if (err)
			return err;
		blob_file(l, d.digest, path, sizeof(path));
		err = store_read_verified(path, d.digest, OCI_MANIFEST_MAX, &buf, &len);
		if (err)
			return err;
		kind = oci_manifest_kind(buf, len);
	}
	if (kind != OCI_KIND_MANIFEST) {
		err = kind < 0 ? kind : cove_fail(-EINVAL, "%s: an index inside an index", path);
		goto out;
	}
	m = malloc(sizeof(*m));
	err = m ? oci_manifest_parse(buf, len, m) : cove_fail(-ENOMEM, "out of memory");
	if (!err)
		err = import_blob(s, l, &m->config, NULL);
	for (unsigned i = 0; m && !err && i < m->n_layers; i++)
		err = import_blob(s, l, &m->layers[i], progress);
	if (!err)
		err = store_blob_import(s, path, d.digest, len, NULL);
	if (!err)
		strcpy(digest, d.digest);
out:
	free(m);
	free(buf);
	return err;
}

/* Read a whole small file into memory. */
static int slurp(const char *path, size_t max, char **buf, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *b;
	size_t n;

	if (!f)
		return cove_fail(-errno, "%s: %s", path, strerror(errno));
	b = malloc(max + 1);
	n = b ? fread(b, 1, max + 1, f) : 0;
	fclose(f);
	if (!b)
		return cove_fail(-ENOMEM, "out of memory");
	if (n > max) {
		free(b);
		return cove_fail(-EFBIG, "%s: larger than %zu bytes", path, max);
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}

/* A member of an archive spooled to a temporary file. */
struct spooled {
	char *name;
	char digest[DIGEST_LEN + 1];
	uint64_t size;
};

struct spool {
	char dir[PATH_MAX - 128];
	struct spooled *v;
	size_t n;
	char *json;		/* index.json or manifest.json, in memory */
	size_t json_len;
};

static void spool_free(struct spool *sp)
{
	char path[PATH_MAX];

	for (size_t i = 0; i < sp->n; i++) {
		snprintf(path, sizeof(path), "%s/%s", sp->dir, sp->v[i].digest + 7);
		unlink(path);
		free(sp->v[i].name);
	}
	free(sp->v);
	free(sp->json);
	if (sp->dir[0])
		rmdir(sp->dir);
}

/* The archive's regular files into sp->dir, each named by its digest,
 * except json_name, which is kept in memory. */
static int spool_archive(struct store *s, const char *file, const char *json_name,
			 struct spool *sp)
{
	struct archive *a = archive_read_new();
	struct archive_entry *e;
	int r, err = 0;

	snprintf(sp->dir, sizeof(sp->dir), "%s/tmp/import.XXXXXX", s->root);
	if (!a || !mkdtemp(sp->dir)) {
		sp->dir[0] = '\0';
		archive_read_free(a);
		return cove_fail(-errno ?: -ENOMEM, "spooling %s: %s", file, strerror(errno ?: ENOMEM));
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_tar(a);
	if (archive_read_open_filename(a, file, 1 << 16) != ARCHIVE_OK) {
		err = cove_fail(-EINVAL, "%s: %s", file, archive_error_string(a));
		goto out;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK || r == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);
		char tmp[PATH_MAX], path[PATH_MAX];
		struct digest_ctx dc;
		const void *buf;
		size_t len;
		la_int64_t off;
		struct spooled *v;
		int fd;

		if (archive_entry_filetype(e) != AE_IFREG || !name)
			continue;
		while (name[0] == '.' && name[1] == '/')
			name += 2;
		if (!strcmp(name, json_name)) {
			if (archive_entry_size(e) > OCI_MANIFEST_MAX || sp->json) {
				err = cove_fail(-EINVAL, "%s: bad %s", file, json_name);
				break;
			}
			sp->json_len = archive_entry_size(e);
			sp->json = malloc(sp->json_len + 1);
			if (!sp->json || archive_read_data(a, sp->json, sp->json_len) !=
					 (la_ssize_t)sp->json_len) {
				err = cove_fail(-EINVAL, "%s: cannot read %s", file, json_name);
				break;
			}
			sp->json[sp->json_len] = '\0';
			continue;
		}
		if (sp->n == ARCHIVE_FILES_MAX) {
			err = cove_fail(-E2BIG, "%s: more than %d files", file, ARCHIVE_FILES_MAX);
			break;
		}
		v = realloc(sp->v, (sp->n + 1) * sizeof(*v));
		if (!v) {
			err = cove_fail(-ENOMEM, "out of memory");
			break;
		}
		sp->v = v;
		v = &sp->v[sp->n];
		memset(v, 0, sizeof(*v));
		snprintf(tmp, sizeof(tmp), "%s/spool.XXXXXX", sp->dir);
		fd = mkostemp(tmp, O_CLOEXEC);
		if (fd < 0 || digest_init(&dc)) {
			err = cove_fail(-EIO, "%s: cannot spool", tmp);
			if (fd >= 0)
				close(fd);
			break;
		}
		while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK) {
			if (pwrite(fd, buf, len, off) != (ssize_t)len) {
				r = ARCHIVE_FATAL;
				break;
			}
			digest_update(&dc, buf, len);
			v->size += len;
		}
		digest_final(&dc, v->digest);
		close(fd);
		snprintf(path, sizeof(path), "%s/%s", sp->dir, v->digest + 7);
		if (r != ARCHIVE_EOF || rename(tmp, path) < 0) {
			unlink(tmp);
			err = cove_fail(-EIO, "%s: reading %s failed", file, name);
			break;
		}
		v->name = strdup(name);
		sp->n++;
		if (!v->name) {
			err = cove_fail(-ENOMEM, "out of memory");
			break;
		}
	}
	if (!err && r != ARCHIVE_EOF)
		err = cove_fail(-EINVAL, "%s: %s", file, archive_error_string(a));
	if (!err && !sp->json)
		err = cove_fail(-EINVAL, "%s: no %s in the archive", file, json_name);
out:
	archive_read_free(a);
	return err;
}

static const struct spooled *spooled_find(const struct spool *sp, const char *name)
{
	for (size_t i = 0; i < sp->n; i++)
		if (!strcmp(sp->v[i].name, name))
			return &sp->v[i];
	return NULL;
}

/* docker save: manifest.json names the config and the (tar) layers; cove
 * writes the image manifest for them. */
static int import_docker(struct store *s, struct spool *sp, const char *file, FILE *progress,
			 char digest[DIGEST_LEN + 1], char name[OCI_REF_MAX])
{
	json_t *j = json_loadb(sp->json, sp->json_len, 0, NULL), *img, *layers, *l, *out_layers;
	json_t *m = NULL;
	const struct spooled *f;
	struct layout lay = { 0 };
	struct oci_desc d;
	const char *tag;
	char *text = NULL;
	size_t i;
	int err = -EINVAL;

	snprintf(lay.blobdir, sizeof(lay.blobdir), "%s", sp->dir);
	img = json_array_get(j, 0);
	if (!json_is_array(j) || json_array_size(j) != 1 || !json_is_object(img)) {
		cove_fail(-EINVAL, "%s: manifest.json must describe one image", file);
		goto out;
	}
	f = spooled_find(sp, json_string_value(json_object_get(img, "Config")) ?: "");
	layers = json_object_get(img, "Layers");
	if (!f || !json_is_array(layers) || json_array_size(layers) == 0 ||
	    json_array_size(layers) > OCI_LAYERS_MAX) {
		cove_fail(-EINVAL, "%s: manifest.json lacks its config or layers", file);
		goto out;
	}
	out_layers = json_array();
	m = json_pack("{s:i,s:s,s:{s:s,s:I,s:s},s:o}", "schemaVersion", 2,
		      "mediaType", DOCKER_MT_MANIFEST, "config",
		      "mediaType", "application/vnd.docker.container.image.v1+json",
		      "size", (json_int_t)f->size, "digest", f->digest, "layers", out_layers);
	if (!m) {
		cove_fail(-ENOMEM, "out of memory");
		goto out;
	}
	strcpy(d.digest, f->digest);
	d.size = f->size;
	err = import_blob(s, &lay, &d, NULL);
	json_array_foreach(layers, i, l) {
		if (err)
			break;
		f = spooled_find(sp, json_string_value(l) ?: "");
		if (!f) {
			err = cove_fail(-EINVAL, "%s: layer %s is missing", file,
					json_string_value(l) ?: "?");
			break;
		}
		json_array_append_new(out_layers, json_pack("{s:s,s:I,s:s}",
			"mediaType", "application/vnd.docker.image.rootfs.diff.tar",
			"size", (json_int_t)f->size, "digest", f->digest));
		strcpy(d.digest, f->digest);
		d.size = f->size;
		err = import_blob(s, &lay, &d, progress);
	}
	if (err)
		goto out;
	text = json_dumps(m, JSON_COMPACT);
	err = text ? digest_buf(text, strlen(text), digest) : cove_fail(-ENOMEM, "out of memory");
	if (!err && !store_blob_has(s, digest)) {
		char tmp[PATH_MAX];
		int fd = store_blob_tmp(s, tmp, sizeof(tmp));

		if (fd < 0) {
			err = fd;
			goto out;
		}
		if (write(fd, text, strlen(text)) != (ssize_t)strlen(text) || fsync(fd) < 0)
			err = cove_fail(-EIO, "%s: write failed", tmp);
		close(fd);
		err = err ?: store_blob_commit(s, tmp, digest);
		if (err)
			unlink(tmp);
	}
	tag = json_string_value(json_array_get(json_object_get(img, "RepoTags"), 0));
	if (!err && tag) {
		struct oci_ref ref;

		if (oci_ref_parse(tag, &ref) == 0)
			oci_ref_format(&ref, name, OCI_REF_MAX);
		cove_clear_error();
	}
out:
	free(text);
	json_decref(m);
	json_decref(j);
	return err;
}

int oci_import(struct store *s, const char *src, FILE *progress,
	       char digest[DIGEST_LEN + 1], char name[OCI_REF_MAX])
{
	char path[PATH_MAX], *colon, *tag = NULL, base[256];
	struct layout lay = { 0 };
	struct spool sp = { 0 };
	enum { OCI_DIR, OCI_ARCHIVE, DOCKER_ARCHIVE } kind;
	const char *rest;
	int err;

	if (!strncmp(src, "oci:", 4)) {
		kind = OCI_DIR;
		rest = src + 4;
	} else if (!strncmp(src, "oci-archive:", 12)) {
		kind = OCI_ARCHIVE;
		rest = src + 12;
	} else if (!strncmp(src, "docker-archive:", 15)) {
		kind = DOCKER_ARCHIVE;
		rest = src + 15;
	} else {
		return cove_fail(-EINVAL, "unknown source \"%s\": use oci:DIR[:TAG], "
				 "oci-archive:FILE[:TAG] or docker-archive:FILE", src);
	}
	if (!rest[0] || strlen(rest) >= sizeof(path))
		return cove_fail(-EINVAL, "%s: no path", src);
	strcpy(path, rest);
	colon = strrchr(path, ':');
	if (kind != DOCKER_ARCHIVE && colon && !strchr(colon, '/')) {
		*colon = '\0';
		tag = colon + 1;
	}
	snprintf(base, sizeof(base), "%s", basename(path));
	for (char *p = base; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			*p = *p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : '-';
	if ((colon = strrchr(base, '.')) && (!strcmp(colon, ".tar") || !strcmp(colon, ".oci")))
		*colon = '\0';
	snprintf(name, OCI_REF_MAX, "localhost/%s:%s", base[0] ? base : "image", tag ?: "latest");

	switch (kind) {
	case OCI_DIR:
		snprintf(lay.blobdir, sizeof(lay.blobdir), "%s/blobs/sha256", path);
		{
			char index[PATH_MAX];

			snprintf(index, sizeof(index), "%s/index.json", path);
			err = slurp(index, OCI_MANIFEST_MAX, &lay.index, &lay.index_len);
		}
		if (!err)
			err = import_layout(s, &lay, tag, progress, digest);
		free(lay.index);
		break;
	case OCI_ARCHIVE:
		err = spool_archive(s, path, "index.json", &sp);
		if (!err) {
			snprintf(lay.blobdir, sizeof(lay.blobdir), "%s", sp.dir);
			lay.index = sp.json;
			lay.index_len = sp.json_len;
			err = import_layout(s, &lay, tag, progress, digest);
		}
		spool_free(&sp);
		break;
	default:
		err = spool_archive(s, path, "manifest.json", &sp);
		if (!err)
			err = import_docker(s, &sp, path, progress, digest, name);
		spool_free(&sp);
		break;
	}
	return err;
}
