/* Fuzz the OCI manifest, index and reference parsers: the input is what a
 * registry or an image layout hands us. Nothing in it may crash them,
 * leak, or make them read outside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oci_manifest.h"
#include "oci_ref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct oci_manifest *m = malloc(sizeof(*m));
	struct oci_desc d;
	struct oci_ref r;
	char *str;

	if (!m)
		return 0;
	oci_manifest_kind(buf, size);
	if (oci_manifest_parse(buf, size, m) == 0 && (m->n_layers == 0 || m->n_layers > OCI_LAYERS_MAX))
		abort();
	free(m);
	oci_index_select(buf, size, "linux", "amd64", &d);
	oci_index_find_tag(buf, size, NULL, &d);
	oci_index_find_tag(buf, size, "latest", &d);

	str = malloc(size + 1);
	if (!str)
		return 0;
	memcpy(str, data, size);
	str[size] = '\0';
	if (oci_ref_parse(str, &r) == 0) {
		char out[OCI_REF_MAX];
		struct oci_ref again;

		/* the canonical form parses back to the same reference */
		oci_ref_format(&r, out, sizeof(out));
		if (oci_ref_parse(out, &again) || strcmp(again.registry, r.registry) ||
		    strcmp(again.repo, r.repo) || strcmp(again.tag, r.tag) ||
		    strcmp(again.digest, r.digest))
			abort();
		oci_ref_insecure(&r);
	}
	free(str);
	return 0;
}
