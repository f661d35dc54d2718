/* A sparse ext4 image built from OCI layers (tar, plain or compressed),
 * without root and without mounting: libarchive reads, libext2fs writes. */
#ifndef COVE_LAYER_EXT4_H
#define COVE_LAYER_EXT4_H

#include <stddef.h>
#include <stdint.h>

#include "progress.h"

#define LAYER_EXT4_MIN_SIZE	(8ull << 20)

struct layer_ext4;

/* Create path (which must not exist) as a sparse file of size bytes
 * (at least LAYER_EXT4_MIN_SIZE, a multiple of 4 KiB is used) holding an
 * empty ext4 filesystem: 4 KiB blocks, extents, a journal, lost+found.
 * 0 with *out, or -errno with cove_fail's message (and no file left). */
int layer_ext4_create(const char *path, uint64_t size, struct layer_ext4 **out);

/* Apply one layer, from a file (bar, when not NULL, advancing to the
 * file's size as it is read) or from memory: first its whiteouts
 * (".wh.NAME" removes NAME, ".wh..wh..opq" empties the directory) against
 * the layers below, then its entries (files, directories, symlinks,
 * hardlinks, devices, fifos; owner, mode, mtime, xattrs kept). Missing
 * parent directories are made. A path with "..", or one that goes through
 * a symlink, or a hardlink to a missing file or a directory, is refused
 * with -EINVAL (-ENOTDIR for a path under a file); absolute paths are
 * taken relative to the image root.
 * 0 or -errno with cove_fail's message; after an error the image is only
 * fit for layer_ext4_abort. */
int layer_ext4_apply_file(struct layer_ext4 *b, const char *layer_path, struct progress *bar);
int layer_ext4_apply_mem(struct layer_ext4 *b, const void *buf, size_t len);

/* Write everything out and free b. 0 or -errno with cove_fail's message. */
int layer_ext4_finish(struct layer_ext4 *b);

/* Free b without finishing, and remove the image file. */
void layer_ext4_abort(struct layer_ext4 *b);

/* Normalise a tar member name: leading "/" and "./", repeated and trailing
 * "/", and "." components dropped; "" is the root. -EINVAL for a ".."
 * component, -ENAMETOOLONG for a component over 255 bytes or a result
 * that does not fit in size. Pure. */
int layer_ext4_norm_path(const char *in, char *out, size_t size);

#endif
