/* Byte access to scatter-gather lists (a chain's buffers in guest memory). */
#ifndef COVE_IOV_H
#define COVE_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* Copy between buf and the iovec bytes from offset skip on; to_iov picks
 * the direction. Returns the bytes copied (less when the iovec ends).
 * Pure; any thread. */
size_t iov_copy(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len,
		bool to_iov);

/* dst = the bytes [skip, skip + len) of src (dst has room for n entries);
 * returns the entry count. Pure; any thread. */
unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
		   struct iovec *dst);

/* Drop the first bytes of *iov (*n entries), moving *iov and *n on.
 * Pure; any thread. */
void iov_advance(struct iovec **iov, unsigned *n, size_t bytes);

#endif
