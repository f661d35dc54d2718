/* Address-space dispatch for trapped MMIO and port I/O. Devices register at
 * setup, before any vCPU runs; lookups are then lock-free. Handlers run on
 * vCPU threads and lock their own state. */
#ifndef COVE_BUS_H
#define COVE_BUS_H

#include <stdbool.h>
#include <stdint.h>

#define BUS_MAX_DEVS 64

struct bus_ops {
	/* off is relative to the device base; len is 1, 2, 4 or 8. */
	void (*read)(void *opaque, uint64_t off, void *data, uint32_t len);
	void (*write)(void *opaque, uint64_t off, const void *data, uint32_t len);
};

struct bus_dev {
	uint64_t base, len;
	const struct bus_ops *ops;
	void *opaque;
};

struct bus {
	struct bus_dev devs[BUS_MAX_DEVS];
	int ndevs;
	uint64_t unhandled;	/* accesses nobody claimed */
};

/* Register [base, base+len). -EEXIST on overlap, -ENOSPC when full,
 * -EINVAL for len 0 or overflow. Setup thread only. */
int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque);

/* Dispatch an access. Reads nobody claims return all ones; writes are
 * dropped. Returns false when unclaimed. Any vCPU thread. */
bool bus_access(struct bus *bus, uint64_t addr, void *data, uint32_t len, bool is_write);

#endif
