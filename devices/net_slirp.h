/* The user-mode backend of virtio-net: libslirp in process, driven from
 * the event loop. No privileges needed: the guest gets 10.0.2.15 by DHCP
 * (gateway 10.0.2.2, which also reaches the host's loopback; DNS at
 * 10.0.2.3), outbound TCP/UDP through the host's sockets, and TCP ports
 * forwarded from the host's 127.0.0.1. IPv4 only. */
#ifndef COVE_NET_SLIRP_H
#define COVE_NET_SLIRP_H

struct cove_net_fwd;
struct net_backend;

/* Create the user-mode network with nfwds TCP forwards (listening on
 * 127.0.0.1:host_port now). 0 with *out, or -errno with cove_fail's
 * message: "net user: fwd=tcp:H:G: cannot listen on 127.0.0.1:H
 * (Address already in use?)". Setup thread. */
int netslirp_open(const struct cove_net_fwd *fwds, int nfwds, struct net_backend **out);

#endif
