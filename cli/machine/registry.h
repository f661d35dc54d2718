/* The OCI distribution API client (libcurl): manifests and blobs from a
 * registry into the store. HTTPS (CA bundle from SSL_CERT_FILE when set),
 * or for the registries oci_ref_insecure names, plain HTTP when they do
 * not answer TLS; anonymous bearer tokens per the registry's
 * WWW-Authenticate challenge. */
#ifndef COVE_REGISTRY_H
#define COVE_REGISTRY_H

#include <stdio.h>

#include "oci_ref.h"
#include "store.h"

/* Pull ref into s (held with STORE_EXCLUSIVE): the manifest (through an
 * index or manifest list, the linux/amd64 entry), its config and layers,
 * each checked against its digest and size while it streams; blobs the
 * store has are not fetched again. One line per blob to progress (NULL:
 * quiet). The image manifest's digest into digest. 0 or -errno with
 * cove_fail's message ("cannot reach registry …", "… not found", "digest
 * mismatch …"). Main thread (libcurl global init on first use). */
int registry_pull(struct store *s, const struct oci_ref *ref, FILE *progress,
		  char digest[DIGEST_LEN + 1]);

#endif
