/* Images from local files, by skopeo's transport names: oci:DIR[:TAG]
 * (an OCI image layout), oci-archive:FILE[:TAG] (one as a tar),
 * docker-archive:FILE (docker save's format). */
#ifndef COVE_OCI_IMPORT_H
#define COVE_OCI_IMPORT_H

#include <stdio.h>

#include "digest.h"
#include "oci_ref.h"
#include "store.h"

/* Copy the image src names into s (held with STORE_EXCLUSIVE), checking
 * every blob's digest and size. Its manifest's digest into digest, and
 * into name the image's name: "localhost/BASENAME:TAG" (TAG "latest"
 * when none), or for a docker archive its first RepoTags entry. 0 or
 * -errno with cove_fail's message. */
int oci_import(struct store *s, const char *src, FILE *progress,
	       char digest[DIGEST_LEN + 1], char name[OCI_REF_MAX]);

#endif
