/* The image store: content-addressed blobs under
 * $XDG_DATA_HOME/cove/images (default ~/.local/share/cove/images),
 * blobs/sha256/<hex>, and images.json mapping names to manifest digests,
 * replaced atomically. One lock file serialises writers. Main thread
 * (one struct store per thread if ever more). */
#ifndef COVE_STORE_H
#define COVE_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "digest.h"
#include "oci_ref.h"
#include "progress.h"

struct store {
	char root[PATH_MAX - 256];
	int lock_fd;
};

struct store_image {
	char name[OCI_REF_MAX];		/* "docker.io/library/debian:12" */
	char digest[DIGEST_LEN + 1];	/* of the image manifest */
	char config[DIGEST_LEN + 1];	/* of its config blob */
	uint64_t size;			/* config + layers, as stored */
	int64_t created;		/* when it entered the store (unix time) */
};

enum store_lock {
	STORE_NOLOCK,		/* reading images.json only: it is replaced atomically */
	STORE_SHARED,		/* reading blobs: no image may be removed meanwhile */
	STORE_EXCLUSIVE,	/* adding or removing */
};

/* Open (creating) the store and take its lock. Blocks while another cove
 * holds a conflicting lock. 0 or -errno with cove_fail's message. */
int store_open(struct store *s, enum store_lock lock);
/* Release the lock (the store's files stay). */
void store_close(struct store *s);

/* The path of a blob (whether or not it exists) into buf. Pure. */
void store_blob_path(const struct store *s, const char *digest, char *buf, size_t size);
/* Whether the store has the blob (checked when it came in). */
bool store_blob_has(const struct store *s, const char *digest);

/* A new temporary file in the store, for a blob being fetched: fd with
 * its path in tmp. -errno with cove_fail's message. */
int store_blob_tmp(const struct store *s, char *tmp, size_t size);

/* Move tmp into place as the blob digest, after the caller checked that
 * its content has that digest. 0 or -errno with cove_fail's message. */
int store_blob_commit(const struct store *s, const char *tmp, const char *digest);

/* Copy a whole file into the store as blob digest, checking digest and
 * size on the way (size UINT64_MAX: any); bar (may be NULL) advances by
 * the bytes copied. -EINVAL "digest mismatch". */
int store_blob_import(const struct store *s, const char *path, const char *digest,
		      uint64_t size, struct progress *bar);

/* Read a blob of at most max bytes, checking its digest. *buf is
 * malloc'd and NUL-terminated. 0 or -errno with cove_fail's message. */
int store_blob_read(const struct store *s, const char *digest, size_t max, char **buf,
		    size_t *len);

/* Read the file path, at most max bytes, and check that its content has
 * the given digest. *buf is malloc'd and NUL-terminated. 0 or -errno
 * with cove_fail's message (-EINVAL "digest mismatch"). */
int store_read_verified(const char *path, const char *digest, size_t max, char **buf,
			size_t *len);

/* The images, malloc'd in *imgs (sorted by name). 0 or -errno. */
int store_images(const struct store *s, struct store_image **imgs, size_t *n);

/* Record name -> manifest (whose blobs must all be in the store),
 * replacing an older entry of that name and removing the blobs only that
 * entry used. Needs the exclusive lock. 0 or -errno with cove_fail's
 * message. */
int store_image_add(struct store *s, const char *name, const char *manifest_digest);

/* Find an image by name ("busybox:1" is normalised like a reference)
 * or by a prefix of at least 4 hex digits of its manifest digest.
 * 0 with *out, -ENOENT "no such image", -EINVAL if ambiguous. */
int store_image_find(const struct store *s, const char *what, struct store_image *out);

/* Drop the named image and every blob no other image needs. Needs the
 * exclusive lock. 0 or -errno with cove_fail's message. */
int store_image_remove(struct store *s, const char *name);

#endif
