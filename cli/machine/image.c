#include "image.h"

#include <errno.h>
#include <stdlib.h>

#include "human.h"
#include "layer_ext4.h"
#include "log.h"
#include "oci_manifest.h"

int image_unpack(struct store *s, const char *what, const char *out, uint64_t size,
		 FILE *progress, struct store_image *im)
{
	struct oci_manifest *m = malloc(sizeof(*m));
	struct layer_ext4 *b = NULL;
	struct store_image found;
	char path[PATH_MAX], hs[32];
	char *buf = NULL;
	size_t len;
	int err;

	err = m ? store_image_find(s, what, &found) : cove_fail(-ENOMEM, "out of memory");
	if (!err)
		err = store_blob_read(s, found.digest, OCI_MANIFEST_MAX, &buf, &len);
	if (!err)
		err = oci_manifest_parse(buf, len, m);
	if (!err)
		err = layer_ext4_create(out, size, &b);
	for (unsigned i = 0; !err && i < m->n_layers; i++) {
		if (progress) {
			fprintf(progress, "%.19s: unpacking (layer %u of %u, %s)\n",
				m->layers[i].digest, i + 1, m->n_layers,
				human_size(m->layers[i].size, hs, sizeof(hs)));
			fflush(progress);
		}
		store_blob_path(s, m->layers[i].digest, path, sizeof(path));
		err = layer_ext4_apply_file(b, path);
	}
	if (err)
		layer_ext4_abort(b);
	else
		err = layer_ext4_finish(b);
	if (!err && im)
		*im = found;
	free(buf);
	free(m);
	return err;
}
