/* Images as the machine manager uses them: the root disk built from an
 * image in the store. */
#ifndef COVE_IMAGE_H
#define COVE_IMAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "digest.h"
#include "oci_ref.h"
#include "store.h"

/* Whether what is a local source for oci_import (oci:, oci-archive:,
 * docker-archive:) rather than a reference. Pure. */
bool image_is_local(const char *what);

/* Bring the image what names into s (held with STORE_EXCLUSIVE): a local
 * source is imported (named as, when not NULL), a reference pulled from
 * its registry ("Pulling NAME" and a line per blob to progress; NULL:
 * quiet). Its name and manifest digest into name and digest. 0 or -errno
 * with cove_fail's message. Main thread. */
int image_fetch(struct store *s, const char *what, const char *as, FILE *progress,
		char name[OCI_REF_MAX], char digest[DIGEST_LEN + 1]);

/* Build the ext4 root disk out (a new sparse file of size bytes) from the
 * image that what names in s (open with at least STORE_SHARED): its
 * layers in order, through layer_ext4. One line per layer to progress
 * (NULL: quiet); the image's store entry into *im when im is not NULL.
 * 0, or -errno with cove_fail's message and out removed. Main thread. */
int image_unpack(struct store *s, const char *what, const char *out, uint64_t size,
		 FILE *progress, struct store_image *im);

#endif
