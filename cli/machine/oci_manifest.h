/* OCI image manifests and indexes (and Docker's v2 schema 2 equivalents):
 * parsed from untrusted bytes, validated whole. */
#ifndef COVE_OCI_MANIFEST_H
#define COVE_OCI_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "digest.h"

#define OCI_MANIFEST_MAX	(4u << 20)	/* bytes; registries cap at 4 MiB */
#define OCI_LAYERS_MAX		128

#define OCI_MT_INDEX		"application/vnd.oci.image.index.v1+json"
#define OCI_MT_MANIFEST		"application/vnd.oci.image.manifest.v1+json"
#define DOCKER_MT_LIST		"application/vnd.docker.distribution.manifest.list.v2+json"
#define DOCKER_MT_MANIFEST	"application/vnd.docker.distribution.manifest.v2+json"

struct oci_desc {
	char media_type[128];
	char digest[DIGEST_LEN + 1];
	uint64_t size;
};

struct oci_manifest {
	struct oci_desc config;
	struct oci_desc layers[OCI_LAYERS_MAX];
	unsigned n_layers;
};

enum oci_kind {
	OCI_KIND_MANIFEST,
	OCI_KIND_INDEX,
};

/* Whether buf[0..len) is an image manifest or an index (manifest list),
 * by its mediaType (or, without one, by which of "layers" and
 * "manifests" it has). OCI_KIND_*, or -EINVAL with cove_fail's message
 * for anything else. Pure; any thread. */
int oci_manifest_kind(const char *buf, size_t len);

/* Parse an image manifest: schemaVersion 2, a config descriptor and 1 to
 * OCI_LAYERS_MAX layers, each with a valid sha256 digest, a size, and a
 * tar layer media type (plain, gzip or zstd; OCI or Docker names).
 * 0, or -EINVAL with cove_fail's message. Pure; any thread. */
int oci_manifest_parse(const char *buf, size_t len, struct oci_manifest *m);

/* Pick the manifest for os/arch ("linux", "amd64") from an index or
 * manifest list; entries without a platform are skipped. 0 with *out,
 * -ENOENT (with a message listing what the index has) when nothing
 * matches, -EINVAL for a bad index. Pure; any thread. */
int oci_index_select(const char *buf, size_t len, const char *os, const char *arch,
		     struct oci_desc *out);

/* In an OCI layout's index.json, the manifest whose
 * org.opencontainers.image.ref.name annotation is tag, or with tag NULL
 * the only manifest. 0 with *out, -ENOENT, or -EINVAL. Pure. */
int oci_index_find_tag(const char *buf, size_t len, const char *tag, struct oci_desc *out);

#endif
