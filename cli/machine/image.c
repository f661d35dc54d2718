#include "image.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "human.h"
#include "layer_ext4.h"
#include "log.h"
#include "oci_import.h"
#include "oci_manifest.h"
#include "progress.h"
#include "registry.h"

bool image_is_local(const char *what)
{
	return !strncmp(what, "oci:", 4) || !strncmp(what, "oci-archive:", 12) ||
	       !strncmp(what, "docker-archive:", 15);
}

int image_fetch(struct store *s, const char *what, const char *as, FILE *progress,
		char name[OCI_REF_MAX], char digest[DIGEST_LEN + 1])
{
	struct oci_ref ref;
	int err;

	if (image_is_local(what)) {
		err = oci_import(s, what, progress, digest, name);
		if (!err && as) {
			err = oci_ref_parse(as, &ref);
			if (!err)
				oci_ref_format(&ref, name, OCI_REF_MAX);
		}
	} else {
		err = oci_ref_parse(what, &ref);
		if (!err) {
			oci_ref_format(&ref, name, OCI_REF_MAX);
			if (progress) {
				fprintf(progress, "Pulling %s\n", name);
				fflush(progress);
			}
			err = registry_pull(s, &ref, progress, digest);
		}
	}
	return err ?: store_image_add(s, name, digest);
}

int image_unpack(struct store *s, const char *what, const char *out, uint64_t size,
		 FILE *progress, struct store_image *im)
{
	struct oci_manifest *m = malloc(sizeof(*m));
	struct layer_ext4 *b = NULL;
	struct store_image found;
	struct progress bar;
	char path[PATH_MAX], hs[32], verb[64], line[96];
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
	progress_init(&bar, progress);
	for (unsigned i = 0; !err && i < m->n_layers; i++) {
		snprintf(verb, sizeof(verb), "unpacking (layer %u of %u)", i + 1, m->n_layers);
		snprintf(line, sizeof(line), "unpacking (layer %u of %u, %s)", i + 1, m->n_layers,
			 human_size(m->layers[i].size, hs, sizeof(hs)));
		progress_begin(&bar, m->layers[i].digest, verb, line, m->layers[i].size);
		store_blob_path(s, m->layers[i].digest, path, sizeof(path));
		err = layer_ext4_apply_file(b, path, &bar);
		progress_end(&bar, NULL);
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
