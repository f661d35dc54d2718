/* Image references, docker style: "debian:12" is docker.io/library/debian:12,
 * "HOST[:PORT]/REPO[:TAG][@sha256:…]". */
#ifndef COVE_OCI_REF_H
#define COVE_OCI_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "digest.h"

#define OCI_REF_MAX	512	/* a whole formatted reference, with its NUL */

struct oci_ref {
	char registry[256];	/* "docker.io", "127.0.0.1:5000", "[::1]:5000" */
	char repo[256];		/* "library/debian" */
	char tag[129];		/* "12"; "" when only a digest was given */
	char digest[DIGEST_LEN + 1];	/* "sha256:…" or "" */
};

/* Parse s into r: registry (the first component when it has a '.' or ':'
 * or is "localhost"; docker.io otherwise, with "library/" for one-word
 * names), lowercase repository path, tag (default "latest" when there is
 * no digest either), digest. 0, or -EINVAL with cove_fail's message saying
 * what is wrong. Pure; any thread. */
int oci_ref_parse(const char *s, struct oci_ref *r);

/* The canonical text of r ("docker.io/library/debian:12", with
 * "@sha256:…" when r has a digest) into buf. Returns the untruncated
 * length, like snprintf. Pure. */
int oci_ref_format(const struct oci_ref *r, char *buf, size_t size);

/* The registry host to talk to: docker.io's API lives at
 * registry-1.docker.io. Pure. */
const char *oci_ref_api_host(const struct oci_ref *r);

/* True when the registry is on loopback (localhost, 127.0.0.0/8, [::1]),
 * or listed in COVE_INSECURE_REGISTRIES (comma-separated HOST[:PORT]):
 * those may be spoken to over plain HTTP, others over HTTPS only. */
bool oci_ref_insecure(const struct oci_ref *r);

#endif
