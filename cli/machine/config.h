/* Machine defaults: $XDG_CONFIG_HOME/cove/config.toml (default
 * ~/.config/cove/config.toml), section [machine] with cpus, memory,
 * homeMount, diskSize, network and kernel, over defaults taken from the host. The
 * file is read by a strict parser for the TOML subset those keys need
 * (comments, [section] headers, key = "string" | 'string' | integer);
 * anything else is refused with FILE:LINE. The value checks are shared
 * with the command-line flags. */
#ifndef COVE_CONFIG_H
#define COVE_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_CPUS_MAX		64		/* what cove-vmm takes */
#define CONFIG_MEMORY_MIN	(64ull << 20)	/* likewise */
#define CONFIG_DISK_MIN		(8ull << 20)	/* the smallest root disk image_unpack makes */

enum config_home {
	CONFIG_HOME_RW,		/* the host home shared read-write (the default) */
	CONFIG_HOME_RO,		/* shared read-only */
	CONFIG_HOME_NONE,	/* not shared: a home local to the machine */
};

enum config_network {
	CONFIG_NET_AUTO,	/* the bridge when cove may make it, else user (the default) */
	CONFIG_NET_USER,	/* user-mode networking (libslirp in the monitor) */
	CONFIG_NET_BRIDGE,	/* an address on the bridge cove0; needs CAP_NET_ADMIN */
};

struct config {
	unsigned cpus;
	uint64_t memory;	/* bytes, whole MiB */
	uint64_t disk_size;	/* bytes, whole MiB */
	enum config_home home;
	enum config_network network;
	char kernel[PATH_MAX];	/* "" when not set */
};

/* The defaults from the host: memory half its RAM but at least 1 GiB,
 * CPUs half its cores but at least min(4, cores), disk 64 GiB, home rw,
 * network auto, no kernel. Any thread. */
void config_defaults(struct config *c);

/* Parse a config file's text (len bytes; need not be NUL-terminated),
 * setting in c the keys it gives. file names it in messages. 0, or
 * -EINVAL with cove_fail's message "FILE:LINE: …" (c partly updated).
 * Pure; any thread. */
int config_parse(const char *buf, size_t len, const char *file, struct config *c);

/* config_defaults, then $XDG_CONFIG_HOME/cove/config.toml when it
 * exists. 0 or -errno with cove_fail's message. Main thread. */
int config_load(struct config *c);

/* The value checks, for the file and the flags alike. Each returns 0 with
 * the value in *out, or -EINVAL with cove_fail's message naming what (the
 * key or flag) and the value. CPUs: 1 to CONFIG_CPUS_MAX; memory: a size
 * (cove_parse_size: MiB bare, or 512M, 2G), whole MiB, at least
 * CONFIG_MEMORY_MIN; disk: likewise, at least CONFIG_DISK_MIN; home:
 * rw, ro or none; network: auto, user or bridge. Pure. */
int config_parse_cpus(const char *what, const char *s, unsigned *out);
int config_parse_memory(const char *what, const char *s, uint64_t *out);
int config_parse_disk(const char *what, const char *s, uint64_t *out);
int config_parse_home(const char *what, const char *s, enum config_home *out);
int config_parse_network(const char *what, const char *s, enum config_network *out);

/* "rw", "ro", "none". Pure. */
const char *config_home_name(enum config_home h);
/* "auto", "user", "bridge". Pure. */
const char *config_network_name(enum config_network n);

#endif
