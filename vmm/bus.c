#include "bus.h"

#include <errno.h>
#include <string.h>

int bus_register(struct bus *bus, uint64_t base, uint64_t len,
		 const struct bus_ops *ops, void *opaque)
{
	if (len == 0 || base + len < base)
		return -EINVAL;
	if (bus->ndevs >= BUS_MAX_DEVS)
		return -ENOSPC;
	for (int i = 0; i < bus->ndevs; i++) {
		const struct bus_dev *d = &bus->devs[i];
		if (base < d->base + d->len && d->base < base + len)
			return -EEXIST;
	}
	bus->devs[bus->ndevs++] = (struct bus_dev){ base, len, ops, opaque };
	return 0;
}

bool bus_access(struct bus *bus, uint64_t addr, void *data, uint32_t len, bool is_write)
{
	for (int i = 0; i < bus->ndevs; i++) {
		const struct bus_dev *d = &bus->devs[i];
		if (addr < d->base || addr - d->base >= d->len)
			continue;
		if (is_write) {
			if (d->ops->write)
				d->ops->write(d->opaque, addr - d->base, data, len);
		} else {
			memset(data, 0xff, len);
			if (d->ops->read)
				d->ops->read(d->opaque, addr - d->base, data, len);
		}
		return true;
	}
	if (!is_write)
		memset(data, 0xff, len);
	__atomic_fetch_add(&bus->unhandled, 1, __ATOMIC_RELAXED);
	return false;
}
