/* virtio-blk (virtio 1.2, 5.2) backed by a regular file or a block
 * device; all disk I/O goes through the VM's io_uring event loop. */
#ifndef COVE_VIRTIO_BLK_H
#define COVE_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

struct virtio_dev;
struct vm;

/* Feature bits */
#define VIRTIO_BLK_F_SEG_MAX		2
#define VIRTIO_BLK_F_RO			5
#define VIRTIO_BLK_F_BLK_SIZE		6
#define VIRTIO_BLK_F_FLUSH		9
#define VIRTIO_BLK_F_DISCARD		13
#define VIRTIO_BLK_F_WRITE_ZEROES	14

/* Request types and status values */
#define VIRTIO_BLK_T_IN			0
#define VIRTIO_BLK_T_OUT		1
#define VIRTIO_BLK_T_FLUSH		4
#define VIRTIO_BLK_T_GET_ID		8
#define VIRTIO_BLK_T_DISCARD		11
#define VIRTIO_BLK_T_WRITE_ZEROES	13
#define VIRTIO_BLK_S_OK			0
#define VIRTIO_BLK_S_IOERR		1
#define VIRTIO_BLK_S_UNSUPP		2
#define VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP 1
#define VIRTIO_BLK_ID_BYTES		20

/* What the device advertises */
#define VBLK_QUEUE_SIZE		256
#define VBLK_SEG_MAX		254	/* data buffers per request */
#define VBLK_MAX_DWZ_SEGS	16	/* ranges per discard / write-zeroes */
#define VBLK_MAX_DWZ_SECTORS	(1u << 22)	/* 2 GiB per range */

/* Config space offsets (little-endian) */
#define VBLK_CFG_CAPACITY		0	/* le64, 512-byte sectors */
#define VBLK_CFG_SEG_MAX		12	/* le32 */
#define VBLK_CFG_BLK_SIZE		20	/* le32 */
#define VBLK_CFG_MAX_DISCARD_SECTORS	36	/* le32 */
#define VBLK_CFG_MAX_DISCARD_SEG	40	/* le32 */
#define VBLK_CFG_DISCARD_ALIGNMENT	44	/* le32 */
#define VBLK_CFG_MAX_WZ_SECTORS		48	/* le32 */
#define VBLK_CFG_MAX_WZ_SEG		52	/* le32 */
#define VBLK_CFG_WZ_MAY_UNMAP		56	/* u8 */
#define VBLK_CONFIG_SIZE		60

/* Open the disk (O_RDWR, or O_RDONLY when readonly; O_CLOEXEC), size it
 * (regular file or block device; capacity = size / 512), and add the
 * device to vm with vm_adopt_virtio. 0 with *out (the VM owns it and frees
 * it at detach), or -errno with cove_fail's message: "disk PATH: No such
 * file or directory", "disk PATH: Permission denied (use ,ro for a
 * read-only disk)", "disk PATH: not a regular file or block device", or
 * vm_adopt_virtio's. Setup thread. */
int vblk_create(struct vm *vm, const char *path, bool readonly, struct virtio_dev **out);

/* vblk_create without the VM: opens and sizes the disk and returns the
 * device, not yet on a transport (virtio_mmio_create/attach puts it on
 * one; ops->destroy frees it). Same checks, returns and messages.
 * Setup thread. */
int vblk_open(const char *path, bool readonly, struct virtio_dev **out);

#endif
