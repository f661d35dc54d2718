/* The guest kernel command line: the user's, plus what the monitor adds. */
#ifndef COVE_CMDLINE_H
#define COVE_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

struct arch_mmio_dev;

/* Write `user` followed by one virtio_mmio.device=SIZE@BASE:IRQ entry per
 * device (for kernels that find devices on the command line) into out.
 * Returns the length, or -E2BIG (with cove_fail's message) if it does not
 * fit in `size` bytes including the NUL. Pure; any thread. */
int cmdline_build(char *out, size_t size, const char *user,
		  const struct arch_mmio_dev *devs, int ndevs);

/* True when the whitespace-separated command line contains `word` as a
 * whole word (NULL cmdline: false). Pure. */
bool cmdline_has_word(const char *cmdline, const char *word);

#endif
