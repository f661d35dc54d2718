/* Scatter-gather helpers over struct iovec arrays (guest buffers as the
 * virtqueue hands them out). Pure functions; any thread. */
#ifndef COVE_IOV_H
#define COVE_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* Copy between buf and the iovec bytes from offset skip on; to_iov picks
 * the direction. Returns the bytes copied (less when the iovec ends). */
size_t iov_copy(const struct iovec *iov, unsigned n, size_t skip, void *buf, size_t len,
		bool to_iov);

/* dst = the bytes [skip, skip + len) of src (dst has room for n entries);
 * returns the entry count, fewer bytes when src ends first. */
unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip, size_t len,
		   struct iovec *dst);

/* Drop the first `bytes` bytes of *iov (n entries): moves *iov and *n on
 * and trims the first remaining entry. */
void iov_advance(struct iovec **iov, unsigned *n, size_t bytes);

#endif
