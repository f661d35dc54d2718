/* Fuzz the parsers of the host's files that bridge networking reads:
 * /proc/net/route, resolv.conf, and /etc/hosts with cove's block in it,
 * edited both ways. Nothing may crash them or make them read outside the
 * input; an edit that succeeds leaves a file whose block edits again, with
 * the machine's line in it when one was added, and removing twice is
 * removing once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostnet.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char host[] = "m.machine", addr[] = "192.168.64.2";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size ? size : 1), *added, *gone, *again;
	size_t added_len, gone_len, again_len;
	uint32_t a;

	if (!copy)
		return 0;
	/* an exact-size copy, so reading past the end is caught */
	memcpy(copy, data, size);
	hostnet_routed(copy, size, 0x0040a8c0, 24);
	if (hostnet_dns(copy, size, &a) == 0 && (a == 0 || (a & 0xff) == 127))
		abort();	/* an unreachable server handed out (s_addr: first octet low) */
	if (hostnet_hosts_edit(copy, size, "hosts", host, addr, &added, &added_len) == 0) {
		if (!strstr(added, "192.168.64.2\tm.machine\n" HOSTNET_HOSTS_END "\n"))
			abort();
		if (hostnet_hosts_edit(added, added_len, "hosts", host, NULL, &gone, &gone_len))
			abort();
		if (hostnet_hosts_edit(gone, gone_len, "hosts", host, NULL, &again, &again_len) ||
		    again_len != gone_len || memcmp(gone, again, gone_len))
			abort();
		free(again);
		free(gone);
		free(added);
	}
	free(copy);
	return 0;
}
