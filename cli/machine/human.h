/* Sizes for people: 1.2MB, 512kB, like docker (SI units). */
#ifndef COVE_HUMAN_H
#define COVE_HUMAN_H

#include <stddef.h>
#include <stdint.h>

/* bytes as "812B", "5.37kB", "1.2MB", "3.1GB" into buf; returns buf. Pure. */
const char *human_size(uint64_t bytes, char *buf, size_t size);

#endif
