/* The tap backend of virtio-net: an existing tap interface, opened by
 * name through /dev/net/tun with virtio-net headers and offloads. */
#ifndef COVE_NET_TAP_H
#define COVE_NET_TAP_H

struct net_backend;

/* Attach to tap interface ifname (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR,
 * 12-byte headers, non-blocking). The interface must exist: this never
 * creates one. 0 with *out, or -errno with cove_fail's message, e.g.
 * "net tap=NAME: No such device (create it: ip tuntap add dev NAME mode
 * tap)". Setup thread. */
int nettap_open(const char *ifname, struct net_backend **out);

#endif
