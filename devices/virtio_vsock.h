/* virtio-vsock (virtio 1.2, 5.10), stream sockets, with Firecracker's
 * hybrid host side: the guest's connections to CID 2 port P go to the unix
 * socket PATH_P; host programs connect to the unix socket PATH and write
 * "CONNECT P\n" to reach guest port P (answered "OK HOSTPORT\n"). All host
 * socket I/O runs on the VM's event loop. */
#ifndef COVE_VIRTIO_VSOCK_H
#define COVE_VIRTIO_VSOCK_H

#include <stdint.h>

struct virtio_dev;
struct vm;
struct evloop;

/* Packet header (little-endian, 44 bytes) */
#define VSOCK_HDR_BYTES		44
#define VSOCK_HOST_CID		2

#define VIRTIO_VSOCK_TYPE_STREAM	1

#define VIRTIO_VSOCK_OP_REQUEST		1
#define VIRTIO_VSOCK_OP_RESPONSE	2
#define VIRTIO_VSOCK_OP_RST		3
#define VIRTIO_VSOCK_OP_SHUTDOWN	4
#define VIRTIO_VSOCK_OP_RW		5
#define VIRTIO_VSOCK_OP_CREDIT_UPDATE	6
#define VIRTIO_VSOCK_OP_CREDIT_REQUEST	7

#define VIRTIO_VSOCK_SHUTDOWN_RCV	1
#define VIRTIO_VSOCK_SHUTDOWN_SEND	2

/* Queues */
#define VSOCK_RX_Q		0
#define VSOCK_TX_Q		1
#define VSOCK_EVENT_Q		2
#define VSOCK_QUEUE_SIZE	256

/* What one connection may hold of the guest's data for a host socket that
 * is not writable (advertised to the guest as buf_alloc). */
#define VSOCK_BUF_ALLOC		(128u << 10)
#define VSOCK_MAX_CONNS		1024
/* A host client has this long to send its CONNECT line. */
#define VSOCK_CONNECT_TIMEOUT_MS 10000

/* Listen on the unix socket uds (a stale socket there is replaced, a live
 * one refused) and add a vsock device for guest CID cid (3 <= cid <
 * 0xffffffff) to vm with vm_adopt_virtio. 0 with *out (the VM owns it), or
 * -errno with cove_fail's message ("vsock socket PATH: …"). Setup thread. */
int vsock_create(struct vm *vm, uint32_t cid, const char *uds, struct virtio_dev **out);

/* vsock_create without the VM: listens and returns the device, not yet on
 * a transport; the listening socket is watched on loop. connect_timeout_ms
 * bounds the wait for a host client's CONNECT line. Same checks and
 * returns. Setup thread. */
int vsock_open(struct evloop *loop, uint32_t cid, const char *uds, int connect_timeout_ms,
	       struct virtio_dev **out);

#endif
