/* Copies between flat buffers and scatter lists of guest buffers. */
#ifndef COVE_IOV_H
#define COVE_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

/* Copy between buf and the iovec bytes from offset skip on; to_iov picks
 * the direction. Returns the bytes copied (less when the iovec ends).
 * Pure; any thread. */
size_t iov_copy(const struct iovec *iov, unsigned n, size_t skip, void *buf,
		size_t len, bool to_iov);

#endif
