/* Fuzz the layer -> ext4 path: the input is a layer (tar, maybe
 * compressed), applied twice (so whiteouts and replacements meet what the
 * first pass made) to a fresh 8 MiB image in /dev/shm. Nothing in it may
 * crash the builder, make it write outside the image file, or corrupt
 * its bookkeeping badly enough for libext2fs to fail closing it. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "layer_ext4.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct layer_ext4 *b;
	char path[64];

	snprintf(path, sizeof(path), "/dev/shm/cove-fuzz-layer.%d", (int)getpid());
	unlink(path);
	if (layer_ext4_create(path, LAYER_EXT4_MIN_SIZE, &b))
		abort();
	if (layer_ext4_apply_mem(b, data, size) == 0 && layer_ext4_apply_mem(b, data, size) == 0) {
		if (layer_ext4_finish(b))
			abort();
		unlink(path);
		return 0;
	}
	layer_ext4_abort(b);
	return 0;
}
