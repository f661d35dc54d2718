#include "oci_manifest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "log.h"

static const char *const layer_types[] = {
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.oci.image.layer.v1.tar+zstd",
	"application/vnd.docker.image.rootfs.diff.tar.gzip",
	"application/vnd.docker.image.rootfs.diff.tar",
};

static json_t *load(const char *buf, size_t len, const char *what)
{
	json_error_t e;
	json_t *j;

	if (len > OCI_MANIFEST_MAX) {
		cove_fail(-EINVAL, "%s: larger than %u bytes", what, OCI_MANIFEST_MAX);
		return NULL;
	}
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
	if (!j) {
		cove_fail(-EINVAL, "%s: bad JSON at byte %d: %s", what, e.position, e.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		cove_fail(-EINVAL, "%s: not a JSON object", what);
		return NULL;
	}
	return j;
}

static int desc_parse(json_t *o, struct oci_desc *d, const char *what)
{
	json_t *mt = json_object_get(o, "mediaType");
	json_t *dg = json_object_get(o, "digest");
	json_t *sz = json_object_get(o, "size");

	if (!json_is_object(o))
		return cove_fail(-EINVAL, "%s: descriptor is not an object", what);
	if (!json_is_string(mt) || json_string_length(mt) >= sizeof(d->media_type))
		return cove_fail(-EINVAL, "%s: descriptor without a mediaType", what);
	if (!json_is_string(dg) || !digest_valid(json_string_value(dg)))
		return cove_fail(-EINVAL, "%s: descriptor without a sha256 digest", what);
	if (!json_is_integer(sz) || json_integer_value(sz) < 0)
		return cove_fail(-EINVAL, "%s: descriptor without a size", what);
	strcpy(d->media_type, json_string_value(mt));
	strcpy(d->digest, json_string_value(dg));
	d->size = json_integer_value(sz);
	return 0;
}

static bool version_ok(json_t *j)
{
	json_t *v = json_object_get(j, "schemaVersion");

	return json_is_integer(v) && json_integer_value(v) == 2;
}

int oci_manifest_kind(const char *buf, size_t len)
{
	json_t *j = load(buf, len, "manifest");
	json_t *mt;
	int kind = -EINVAL;

	if (!j)
		return -EINVAL;
	mt = json_object_get(j, "mediaType");
	if (json_is_string(mt)) {
		const char *s = json_string_value(mt);

		if (!strcmp(s, OCI_MT_INDEX) || !strcmp(s, DOCKER_MT_LIST))
			kind = OCI_KIND_INDEX;
		else if (!strcmp(s, OCI_MT_MANIFEST) || !strcmp(s, DOCKER_MT_MANIFEST))
			kind = OCI_KIND_MANIFEST;
		else
			cove_fail(-EINVAL, "manifest: unsupported mediaType \"%s\"", s);
	} else if (mt) {
		cove_fail(-EINVAL, "manifest: mediaType is not a string");
	} else if (json_is_array(json_object_get(j, "manifests"))) {
		kind = OCI_KIND_INDEX;
	} else if (json_is_array(json_object_get(j, "layers"))) {
		kind = OCI_KIND_MANIFEST;
	} else {
		cove_fail(-EINVAL, "manifest: neither an image manifest nor an index");
	}
	json_decref(j);
	return kind;
}

int oci_manifest_parse(const char *buf, size_t len, struct oci_manifest *m)
{
	json_t *j = load(buf, len, "manifest"), *layers, *l;
	size_t i;
	int err;

	memset(m, 0, sizeof(*m));
	if (!j)
		return -EINVAL;
	if (!version_ok(j)) {
		err = cove_fail(-EINVAL, "manifest: schemaVersion is not 2");
		goto out;
	}
	err = desc_parse(json_object_get(j, "config"), &m->config, "manifest config");
	if (err)
		goto out;
	layers = json_object_get(j, "layers");
	if (!json_is_array(layers) || json_array_size(layers) == 0 ||
	    json_array_size(layers) > OCI_LAYERS_MAX) {
		err = cove_fail(-EINVAL, "manifest: needs 1 to %d layers", OCI_LAYERS_MAX);
		goto out;
	}
	json_array_foreach(layers, i, l) {
		struct oci_desc *d = &m->layers[i];
		bool known = false;

		err = desc_parse(l, d, "manifest layer");
		if (err)
			goto out;
		for (size_t t = 0; t < sizeof(layer_types) / sizeof(layer_types[0]); t++)
			known |= !strcmp(d->media_type, layer_types[t]);
		if (!known) {
			err = cove_fail(-EINVAL, "manifest: unsupported layer type \"%s\"",
					d->media_type);
			goto out;
		}
	}
	m->n_layers = i;
out:
	json_decref(j);
	return err;
}

/* Walk an index's "manifests", calling match on each valid entry until it
 * returns true. 0 with *out, -ENOENT, -EINVAL. */
static int index_walk(const char *buf, size_t len, bool (*match)(json_t *e, const void *arg),
		      const void *arg, struct oci_desc *out)
{
	json_t *j = load(buf, len, "index"), *list, *e;
	size_t i;
	int err = -EINVAL;

	if (!j)
		return -EINVAL;
	list = json_object_get(j, "manifests");
	if (!version_ok(j)) {
		cove_fail(-EINVAL, "index: schemaVersion is not 2");
		goto out;
	}
	if (!json_is_array(list)) {
		cove_fail(-EINVAL, "index: no \"manifests\" array");
		goto out;
	}
	json_array_foreach(list, i, e) {
		err = desc_parse(e, out, "index entry");
		if (err)
			goto out;
	}
	err = -ENOENT;
	json_array_foreach(list, i, e) {
		if (match(e, arg)) {
			desc_parse(e, out, "index entry");
			err = 0;
			break;
		}
	}
out:
	json_decref(j);
	return err;
}

static const char *platform_field(json_t *e, const char *key)
{
	return json_string_value(json_object_get(json_object_get(e, "platform"), key));
}

struct platform {
	const char *os, *arch;
};

static bool platform_match(json_t *e, const void *arg)
{
	const struct platform *p = arg;
	const char *os = platform_field(e, "os"), *arch = platform_field(e, "architecture");

	return os && arch && !strcmp(os, p->os) && !strcmp(arch, p->arch);
}

int oci_index_select(const char *buf, size_t len, const char *os, const char *arch,
		     struct oci_desc *out)
{
	struct platform p = { os, arch };
	int err = index_walk(buf, len, platform_match, &p, out);

	if (err == -ENOENT)
		return cove_fail(-ENOENT, "the image has no %s/%s variant", os, arch);
	return err;
}

static bool tag_match(json_t *e, const void *arg)
{
	const char *name = json_string_value(json_object_get(json_object_get(e, "annotations"),
							      "org.opencontainers.image.ref.name"));

	return name && !strcmp(name, arg);
}

static bool any_match(json_t *e, const void *arg)
{
	(void)e;
	(void)arg;
	return true;
}

int oci_index_find_tag(const char *buf, size_t len, const char *tag, struct oci_desc *out)
{
	json_t *j;
	int err;

	if (!tag) {
		j = load(buf, len, "index");
		if (!j)
			return -EINVAL;
		err = json_array_size(json_object_get(j, "manifests"));
		json_decref(j);
		if (err != 1)
			return cove_fail(-ENOENT, "the layout holds %d images: name one with :TAG",
					 err);
		return index_walk(buf, len, any_match, NULL, out);
	}
	err = index_walk(buf, len, tag_match, tag, out);
	if (err == -ENOENT)
		return cove_fail(-ENOENT, "no image tagged \"%s\" in the layout", tag);
	return err;
}
