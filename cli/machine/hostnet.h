/* The host files bridge networking reads or edits, as text: the routing
 * table (/proc/net/route), resolv.conf and cove's block in /etc/hosts.
 * Pure functions on a buffer (not NUL-terminated), so they are tested and
 * fuzzed without a host; bridge.c does the reading and writing. Any
 * thread. */
#ifndef COVE_HOSTNET_H
#define COVE_HOSTNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOSTNET_HOSTS_BEGIN	"# cove machines begin"
#define HOSTNET_HOSTS_END	"# cove machines end"

/* Whether a route in the text of /proc/net/route (a header line, then
 * "IFACE DEST GATEWAY FLAGS REFCNT USE METRIC MASK …" with DEST and MASK
 * the kernel's hex of the network-order words) reaches into net/prefix
 * (network order), default routes aside. Lines that do not parse are
 * skipped. */
bool hostnet_routed(const char *text, size_t len, uint32_t net, unsigned prefix);

/* The first "nameserver ADDR" of resolv.conf's text whose ADDR is IPv4
 * and neither loopback (127/8, a local resolver the guest cannot reach)
 * nor 0.0.0.0, into *addr (network order). 0, or -ENOENT when there is
 * none. */
int hostnet_dns(const char *text, size_t len, uint32_t *addr);

/* /etc/hosts's text with cove's block (a HOSTNET_HOSTS_BEGIN line, lines
 * "ADDR NAME", a HOSTNET_HOSTS_END line) changed: every line of the block
 * naming host or (when addr is given) for addr dropped, then "ADDR\tHOST"
 * added when addr is not NULL. A block left empty goes, a missing one is
 * added at the end; everything outside it is kept byte for byte. The new
 * text in *out (malloc'd, NUL-terminated), its length in *out_len. 0,
 * -EINVAL with cove_fail's message naming file when the block is broken
 * (a begin without its end or the reverse, two blocks, a NUL byte), or
 * -ENOMEM. */
int hostnet_hosts_edit(const char *text, size_t len, const char *file, const char *host,
		       const char *addr, char **out, size_t *out_len);

#endif
