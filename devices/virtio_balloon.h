/* virtio-balloon (virtio 1.2, 5.5): the host sets a target (num_pages),
 * the guest inflates (gives pages back: the host drops them with
 * MADV_DONTNEED) or deflates toward it and writes `actual`; memory
 * statistics on the stats queue; and free page reporting, which hands
 * ranges the guest freed back to the host. */
#ifndef COVE_VIRTIO_BALLOON_H
#define COVE_VIRTIO_BALLOON_H

#include <stdint.h>

struct cove_balloon_stats;
struct virtio_dev;
struct vm;

/* Feature bits */
#define VIRTIO_BALLOON_F_MUST_TELL_HOST		0
#define VIRTIO_BALLOON_F_STATS_VQ		1
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM		2
#define VIRTIO_BALLOON_F_FREE_PAGE_HINT		3
#define VIRTIO_BALLOON_F_PAGE_POISON		4
#define VIRTIO_BALLOON_F_REPORTING		5

/* Statistics tags (le16 tag, le64 value, packed: 10 bytes each) */
#define VIRTIO_BALLOON_S_SWAP_IN	0
#define VIRTIO_BALLOON_S_SWAP_OUT	1
#define VIRTIO_BALLOON_S_MAJFLT		2
#define VIRTIO_BALLOON_S_MINFLT		3
#define VIRTIO_BALLOON_S_MEMFREE	4
#define VIRTIO_BALLOON_S_MEMTOT		5
#define VIRTIO_BALLOON_S_AVAIL		6
#define VIRTIO_BALLOON_S_CACHES		7
#define VIRTIO_BALLOON_S_HTLB_PGALLOC	8
#define VIRTIO_BALLOON_S_HTLB_PGFAIL	9
#define VIRTIO_BALLOON_S_NR		10
#define VBALLOON_STAT_BYTES		10

/* Config space (little-endian) */
#define VBALLOON_CFG_NUM_PAGES		0	/* le32, host: pages wanted in the balloon */
#define VBALLOON_CFG_ACTUAL		4	/* le32, guest: pages in the balloon */
#define VBALLOON_CFG_FREE_PAGE_CMD	8	/* le32, unused (no FREE_PAGE_HINT) */
#define VBALLOON_CFG_POISON		12	/* le32, unused (no PAGE_POISON) */
#define VBALLOON_CONFIG_SIZE		16

#define VBALLOON_PAGE_SHIFT	12	/* pfns are of 4 KiB pages, whatever the host's */
#define VBALLOON_QUEUE_SIZE	128
#define VBALLOON_NUM_QUEUES	4	/* inflate, deflate, stats, reporting */

/* The device alone, not yet on a transport (virtio_mmio_create puts it on
 * one; ops->destroy frees it). 0 with *out, or -ENOMEM with cove_fail's
 * message. Setup thread. */
int vballoon_open(struct virtio_dev **out);

/* vballoon_open and vm_adopt_virtio. 0 with *out (the VM owns it), or
 * -errno with cove_fail's message. Setup thread. */
int vballoon_create(struct vm *vm, struct virtio_dev **out);

/* Ask the guest to hold `pages` 4 KiB pages in the balloon: sets num_pages
 * and raises a config interrupt. No check against guest memory here (the
 * caller does it). Any thread. */
void vballoon_set_target(struct virtio_dev *d, uint32_t pages);

/* Fill *out: target, actual, bytes given back by reporting and inflation,
 * counters, and the guest's last statistics (UINT64_MAX for those never
 * reported; stats_age_ns 0 when none came yet). Then hands the stats
 * buffer back to the guest so that it sends fresh ones (a later call sees
 * them). Loop thread. */
void vballoon_stats(struct virtio_dev *d, struct cove_balloon_stats *out);

#endif
