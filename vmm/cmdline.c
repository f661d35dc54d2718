#include "cmdline.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "arch.h"
#include "log.h"

int cmdline_build(char *out, size_t size, const char *user,
		  const struct arch_mmio_dev *devs, int ndevs)
{
	size_t len = 0;
	int n;

	if (size == 0)
		return cove_fail(-E2BIG, "kernel command line: no room");
	out[0] = '\0';
	n = snprintf(out, size, "%s", user ? user : "");
	if (n < 0 || (size_t)n >= size)
		goto too_long;
	len = n;
	for (int i = 0; i < ndevs; i++) {
		n = snprintf(out + len, size - len, "%svirtio_mmio.device=%" PRIu32 "K@0x%" PRIx64 ":%" PRIu32,
			     len ? " " : "", devs[i].size / 1024, devs[i].base, devs[i].irq);
		if (n < 0 || (size_t)n >= size - len)
			goto too_long;
		len += n;
	}
	return (int)len;

too_long:
	out[0] = '\0';
	return cove_fail(-E2BIG, "kernel command line is longer than %zu bytes", size - 1);
}

bool cmdline_has_word(const char *cmdline, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = cmdline; p && *p;) {
		p += strspn(p, " \t");
		size_t len = strcspn(p, " \t");
		if (len == n && !strncmp(p, word, n))
			return true;
		p += len;
	}
	return false;
}
