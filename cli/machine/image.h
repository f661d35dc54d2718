/* Images as the machine manager uses them: the root disk built from an
 * image in the store. */
#ifndef COVE_IMAGE_H
#define COVE_IMAGE_H

#include <stdint.h>
#include <stdio.h>

#include "store.h"

/* Build the ext4 root disk out (a new sparse file of size bytes) from the
 * image that what names in s (open with at least STORE_SHARED): its
 * layers in order, through layer_ext4. One line per layer to progress
 * (NULL: quiet); the image's store entry into *im when im is not NULL.
 * 0, or -errno with cove_fail's message and out removed. Main thread. */
int image_unpack(struct store *s, const char *what, const char *out, uint64_t size,
		 FILE *progress, struct store_image *im);

#endif
