/* virtio-net (virtio 1.2, 5.1): one receive and one transmit queue over a
 * net_backend (tap or user-mode). The data plane runs on the event loop. */
#ifndef COVE_VIRTIO_NET_H
#define COVE_VIRTIO_NET_H

#include <stdint.h>

struct net_backend;
struct virtio_dev;
struct vm;

/* Feature bits */
#define VIRTIO_NET_F_CSUM		0
#define VIRTIO_NET_F_GUEST_CSUM		1
#define VIRTIO_NET_F_MAC		5
#define VIRTIO_NET_F_GUEST_TSO4		7
#define VIRTIO_NET_F_GUEST_TSO6		8
#define VIRTIO_NET_F_GUEST_ECN		9
#define VIRTIO_NET_F_HOST_TSO4		11
#define VIRTIO_NET_F_HOST_TSO6		12
#define VIRTIO_NET_F_HOST_ECN		13
#define VIRTIO_NET_F_MRG_RXBUF		15
#define VIRTIO_NET_F_STATUS		16

#define VIRTIO_NET_S_LINK_UP		1

/* The header in front of every frame (VERSION_1: with num_buffers) */
#define VNET_HDR_LEN		12
#define VNET_HDR_NUM_BUFFERS	10	/* le16 */
/* Longest frame with its header: a 64 KiB GSO packet, Ethernet and VLAN
 * headers. Longer transmit chains are dropped. */
#define VNET_MAX_FRAME		(VNET_HDR_LEN + 65535 + 14 + 4)
#define VNET_QUEUE_SIZE		256
#define VNET_RXQ		0
#define VNET_TXQ		1

/* Config space: mac[6], le16 status */
#define VNET_CFG_MAC		0
#define VNET_CFG_STATUS		6
#define VNET_CONFIG_SIZE	8

/* The device on backend be (it takes be over, and destroys it also when
 * this fails) with MAC address mac, not yet on a transport (ops->destroy
 * frees both). The offload features are offered when the backend has
 * them. 0 or -ENOMEM. Setup thread. */
int vnet_open(struct net_backend *be, const uint8_t mac[6], struct virtio_dev **out);

/* vnet_open, then vm_adopt_virtio. 0 with *out (the VM owns it), or -errno
 * with cove_fail's message. Setup thread. */
int vnet_create(struct vm *vm, struct net_backend *be, const uint8_t mac[6],
		struct virtio_dev **out);

/* A stable, locally administered unicast MAC for NIC `index` of the VM
 * identified by seed (02:xx:xx:xx:xx:xx from a hash of both). Pure. */
void vnet_default_mac(const char *seed, unsigned index, uint8_t mac[6]);

#endif
