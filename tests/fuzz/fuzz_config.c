/* Fuzz the config.toml parser: the file is the user's, but nothing in it
 * may crash the parser, make it read outside the input, or leave the
 * config with values the checks refuse. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config c;
	char *copy = malloc(size ? size : 1);

	if (!copy)
		return 0;
	/* an exact-size copy, so reading past the end is caught */
	memcpy(copy, data, size);
	config_defaults(&c);
	if (config_parse(copy, size, "fuzz.toml", &c) == 0) {
		if (c.cpus < 1 || c.cpus > CONFIG_CPUS_MAX || c.memory < CONFIG_MEMORY_MIN ||
		    c.memory % (1 << 20) || c.disk_size < CONFIG_DISK_MIN ||
		    c.disk_size % (1 << 20) || c.home > CONFIG_HOME_NONE ||
		    (c.kernel[0] && c.kernel[0] != '/') || strnlen(c.kernel, sizeof(c.kernel)) ==
		    sizeof(c.kernel))
			abort();
	}
	free(copy);
	return 0;
}
