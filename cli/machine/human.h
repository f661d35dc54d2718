/* Sizes and times for people: 1.2MB, 512kB (SI units), "2 hours ago", like
 * docker. */
#ifndef COVE_HUMAN_H
#define COVE_HUMAN_H

#include <stddef.h>
#include <stdint.h>

/* bytes as "812B", "5.37kB", "1.2MB", "3.1GB" into buf; returns buf. Pure. */
const char *human_size(uint64_t bytes, char *buf, size_t size);

/* How long ago unix time t was: "Less than a second ago", "5 minutes
 * ago", "1 day ago", into buf; returns buf. */
const char *human_ago(int64_t t, char *buf, size_t size);

#endif
