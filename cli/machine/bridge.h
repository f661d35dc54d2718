/* Bridge networking for machines, when cove may make it (CAP_NET_ADMIN;
 * root has it): the bridge cove0 with the host at .1 of a private /24
 * (chosen at first use among 192.168.64.0/24 … 192.168.127.0/24, one the
 * host does not route yet, and kept in the store's .bridge file), IPv4
 * forwarding, NAT of the /24 by nftables (table "ip cove", nothing else
 * touched); per machine an address on it (.2-.254, kept in machine.json),
 * a tap cove-vmm opens by name, and "ADDR NAME.machine" in cove's block of
 * /etc/hosts. Main thread; the caller holds the machine's lock. */
#ifndef COVE_BRIDGE_H
#define COVE_BRIDGE_H

#include <net/if.h>
#include <stdbool.h>

#include "config.h"
#include "machine.h"

#define BRIDGE_NAME		"cove0"
#define BRIDGE_HOSTS_FILE	"/etc/hosts"

/* Whether this process may set up the bridge: CAP_NET_ADMIN is in its
 * effective set. */
bool bridge_allowed(void);

/* Which network a machine with setting want gets now: *bridge true for
 * the bridge, false for user-mode networking. auto takes the bridge when
 * bridge_allowed(). 0, or -EPERM with cove_fail's message ("WHAT bridge:
 * needs root …", what naming the flag or setting) for bridge without the
 * privilege. */
int bridge_choose(enum config_network want, const char *what, bool *bridge);

/* The tap of machine name: "cv-NAME", or for a name longer than 12,
 * "cv-" + its first 6 characters + "-" + 5 hex digits of a hash of the
 * whole name (15 characters, what IFNAMSIZ holds). Pure. */
void bridge_tap_name(const char *name, char out[IFNAMSIZ]);

/* The lowest host number from 2 to 254 that used[] does not mark, or 0
 * when all are taken. Pure. */
unsigned bridge_pick_host(const bool used[256]);

/* m's address on the bridge into out (kept while it is stopped), from its
 * host number and the store's /24. 0, or -ENOENT when it has none yet. */
int bridge_address(const struct machine *m, char out[16]);

/* Give m a host number on the bridge when it has none (the lowest that no
 * other machine of the store has) and save its machine.json, under the
 * store's lock, so two machines never get the same. 0 or -errno with
 * cove_fail's message. */
int bridge_claim(struct machine *m);

/* Set up m's network on the bridge: the bridge (address, forwarding, NAT)
 * when it is not there, m's host number when it has none (the lowest free
 * among the store's machines, saved to machine.json), its tap (a stale one
 * replaced) in the bridge, and NAME.machine in /etc/hosts (a failure there
 * is a warning on stderr: the machine runs, its name does not resolve).
 * Fills net. 0 or -errno with cove_fail's message. */
int bridge_up(struct machine *m, struct machine_net *net);

/* Undo bridge_up for m: its tap deleted, its line in /etc/hosts removed.
 * Nothing when m never had a bridge address or the privilege is missing;
 * failures are ignored (the next start cleans up). */
void bridge_down(const struct machine *m);

#endif
