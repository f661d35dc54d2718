/* virtio-fs (virtio 1.2, 5.11): a host directory shared with the guest
 * under a tag (`mount -t virtiofs TAG /mnt`), served in process by the
 * FUSE server in fuse_server.c. Reads, writes and fsyncs go through the
 * VM's io_uring event loop; other operations are synchronous syscalls on
 * the loop thread. */
#ifndef COVE_VIRTIO_FS_H
#define COVE_VIRTIO_FS_H

#include <stdbool.h>

#include "fuse_server.h"

struct virtio_dev;
struct vm;

#define VIRTIO_FS_DEVICE_ID	26
#define VFS_TAG_MAX		36	/* bytes, not NUL-terminated when full */
#define VFS_QUEUE_SIZE		256
#define VFS_REQUEST_QUEUES	1
/* Config space: tag[36], le32 num_request_queues. */
#define VFS_CFG_TAG		0
#define VFS_CFG_NUM_QUEUES	36
#define VFS_CONFIG_SIZE		40

/* Queues: 0 is hiprio (FORGET), 1.. carry requests. */
#define VFS_HIPRIO_QUEUE	0

/* Check the tag (1..36 bytes) and open dir as a share (see
 * fuse_server_create). 0 with *out (not yet on a transport; ops->destroy
 * frees it), or -errno with cove_fail's message: "share TAG: tag must be 1
 * to 36 bytes", "share TAG: DIR: No such file or directory", "share TAG:
 * DIR: Not a directory". Setup thread. */
int vfs_open(const char *tag, const char *dir, bool readonly, enum fuse_cache cache,
	     struct virtio_dev **out);

/* vfs_open, then vm_adopt_virtio. 0 with *out (the VM owns it and frees
 * it), or -errno: vfs_open's, or vm_adopt_virtio's (which has freed the
 * device). Setup thread. */
int vfs_create(struct vm *vm, const char *tag, const char *dir, bool readonly,
	       enum fuse_cache cache, struct virtio_dev **out);

#endif
