/* libFuzzer: the virtio-mmio register file. The input is a sequence of
 * register reads and writes (as vCPUs would issue them), kicks, and pokes
 * into guest memory, against a fake two-queue device that echoes every
 * chain. No event loop: data-plane transitions run inline.
 *
 * Each 8-byte record: [0] op, [1..2] le16 offset, [3] width, [4..7] le32 value. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fake_mem.c"	/* test support, compiled in (fuzz builds do not link it) */
#include "guest_vq.c"
#include "virtio_dev.h"
#include "virtio_mmio.h"

#define MEM_GPA		0x100000ull
#define MEM_SIZE	0x10000ull

struct fdev {
	struct virtio_dev dev;
	uint8_t config[24];
};

static void f_config_read(struct virtio_dev *d, uint32_t off, void *data, uint32_t len)
{
	if (off + len > sizeof(((struct fdev *)d)->config))
		abort();
	memcpy(data, ((struct fdev *)d)->config + off, len);
}

static void f_config_write(struct virtio_dev *d, uint32_t off, const void *data, uint32_t len)
{
	if (off + len > sizeof(((struct fdev *)d)->config))
		abort();
	memcpy(((struct fdev *)d)->config + off, data, len);
}

static int f_activate(struct virtio_dev *d)
{
	if (!(d->status & VIRTIO_STATUS_FEATURES_OK) || !virtio_has_feature(d, VIRTIO_F_VERSION_1))
		abort();
	return d->driver_features & 1 ? -EIO : 0;	/* bit 0 offered: makes activate fail */
}

static void f_notify(struct virtio_dev *d, uint32_t q)
{
	static struct virtq_elem e;
	int n = 0;

	if (!d->active || q >= 2)
		abort();
	while (n++ < 1000 && virtio_dev_pop(d, &d->vqs[q], &e) > 0)
		virtq_push(&d->vqs[q], e.head, e.write_len);
	virtio_dev_notify(d, &d->vqs[q]);
}

static void f_destroy(struct virtio_dev *d)
{
	free(d);
}

static const struct virtio_dev_ops f_ops = {
	.kind = "fuzz",
	.device_id = 77,
	.num_queues = 2,
	.queue_max = 64,
	.config_size = 24,
	.features = 1 | (1ull << 5) | (1ull << 40),
	.config_read = f_config_read,
	.config_write = f_config_write,
	.activate = f_activate,
	.queue_notify = f_notify,
	.destroy = f_destroy,
};

static struct fake_mem fm;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fdev *f;
	struct virtio_mmio *m;

	if (!fm.buf && fake_mem_init(&fm, MEM_GPA, MEM_SIZE) < 0)
		abort();
	memset(fm.buf, 0, MEM_SIZE);
	f = calloc(1, sizeof(*f));
	f->dev.ops = &f_ops;
	if (virtio_mmio_create(&f->dev, "vfuzz0", &fm.gm, NULL, &m) < 0)
		abort();

	for (size_t i = 0; i + 8 <= size; i += 8) {
		const uint8_t *r = data + i;
		uint32_t off = (r[1] | r[2] << 8) & 0x1ff;
		uint32_t widths[4] = { 1, 2, 4, 8 };
		uint32_t len = widths[r[3] & 3];
		uint64_t val = 0;

		memcpy(&val, r + 4, 4);
		if (r[3] & 4)			/* registers want aligned 32-bit */
			len = 4, off &= ~3u;
		switch (r[0] % 5) {
		case 0: {
			uint8_t buf[8];
			virtio_mmio_read(m, off, buf, len);
			break;
		}
		case 1:
		case 2:
			virtio_mmio_write(m, off, &val, len);
			break;
		case 3:
			virtio_mmio_kick(m, r[1] & 3);
			break;
		case 4:
			/* the driver writes its memory: rings, buffers */
			memcpy(fm.buf + ((off * 64 + r[3] * 4) % (MEM_SIZE - 4)), r + 4, 4);
			break;
		}
		/* what must always hold */
		uint32_t st = f->dev.status;
		if ((st & VIRTIO_STATUS_FEATURES_OK) &&
		    ((f->dev.driver_features & ~f->dev.device_features) ||
		     !(f->dev.driver_features & (1ull << VIRTIO_F_VERSION_1))))
			abort();
		if (f->dev.active && !(st & VIRTIO_STATUS_DRIVER_OK))
			abort();
	}
	virtio_mmio_destroy(m);
	return 0;
}
