/* Machines on disk: one directory per machine under
 * $XDG_DATA_HOME/cove/machines/NAME (machine.json, root.img, console.log,
 * vmm.log) and one under $XDG_RUNTIME_DIR/cove/NAME (lock, vmm.pid,
 * api.sock, vsock.sock, net; /tmp/cove-UID without XDG_RUNTIME_DIR). A
 * machine exists once its machine.json does (written last at create,
 * removed first at delete, always replaced atomically); commands on one
 * machine are serialised by flock on its lock file; whether it runs is
 * read from the processes (vmm.pid names a live cove-vmm serving this
 * machine's api.sock), never from a stored state. Main thread. */
#ifndef COVE_MACHINE_H
#define COVE_MACHINE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "digest.h"
#include "libcove.h"
#include "oci_ref.h"

#define MACHINE_NAME_MAX	63	/* a DNS label */
#define MACHINE_MOUNTS_MAX	8
#define MACHINE_PORTS_MAX	COVE_MAX_FWDS
#define MACHINE_GUEST_PATH_MAX	1024

struct machine_mount {
	char host[PATH_MAX];			/* absolute, resolved at create */
	char guest[MACHINE_GUEST_PATH_MAX];	/* absolute */
	bool ro;
};

struct machine_port {
	uint16_t host, guest;			/* tcp */
};

struct machine {
	char name[MACHINE_NAME_MAX + 1];
	char image[OCI_REF_MAX];		/* the image's name in the store */
	char image_digest[DIGEST_LEN + 1];	/* its manifest */
	int64_t created;			/* unix time */
	unsigned cpus;
	uint64_t memory;			/* bytes, whole MiB */
	uint64_t disk_size;			/* bytes, whole MiB */
	enum config_home home;
	enum config_network network;
	unsigned bridge_host;			/* its address on the bridge: .2-.254; 0 = none yet */
	char kernel[PATH_MAX];			/* "" = the default kernel */
	char machine_id[33];			/* 32 hex digits */
	unsigned n_mounts, n_ports;
	struct machine_mount mounts[MACHINE_MOUNTS_MAX];
	struct machine_port ports[MACHINE_PORTS_MAX];

	/* where it lives (set by machine_init / machine_load) */
	char dir[PATH_MAX - 64];		/* .../cove/machines/NAME */
	char run[COVE_VSOCK_PATH_MAX + 1];	/* .../cove/NAME; vsock.sock in it fits */
};

/* The network a machine boots with: the guest's address, gateway and DNS
 * (dotted quads), and on the bridge its tap and MAC address. */
struct machine_net {
	bool bridge;
	char addr[16], gw[16], dns[16];
	char tap[16];				/* IFNAMSIZ */
	char mac[18];
};

/* The host user a machine provisions and shares the home of. */
struct machine_user {
	char name[256];
	uid_t uid;
	gid_t gid;
	char home[PATH_MAX];	/* $HOME when absolute, else the passwd entry's */
};

/* The calling user: name from the passwd entry (else $USER), uid, gid,
 * home. 0 or -errno with cove_fail's message. */
int machine_user(struct machine_user *u);

/* Whether name is a DNS label cove takes: 1 to 63 of a-z, 0-9 and "-",
 * not starting or ending with "-". 0, or -EINVAL with cove_fail's message.
 * Pure. */
int machine_name_check(const char *name);

/* A machine name made from an image reference: the repository's last
 * component and the tag ("latest" dropped), lowercased, with every run of
 * other characters as one "-", cut to leave room for a "-N" suffix:
 * "debian:12.5" -> "debian-12-5". Always a valid name ("machine" when
 * nothing is left). Pure. */
void machine_name_from_image(const char *image, char out[MACHINE_NAME_MAX + 1]);

/* Set m->name, m->dir and m->run for name (not checked here; the other
 * fields are left alone), creating nothing. 0 or -errno with cove_fail's message (no HOME, paths too
 * long: the runtime path must leave the vsock socket under 96 bytes). */
int machine_init(struct machine *m, const char *name);

/* Take the machine's lock (creating its runtime directory), blocking
 * while another cove command holds it (after saying so on stderr when
 * wait is true; with wait false, -EBUSY at once). The lock is the flock
 * of an fd kept open; a lock file removed by a delete meanwhile is taken
 * afresh. Returns the fd, or -errno with cove_fail's message. */
int machine_lock(const struct machine *m, bool wait);
void machine_unlock(int fd);

/* Read NAME's machine.json into m (machine_init'ed for name). 0, -ENOENT
 * with "no such machine" (also for a bad name), or -EINVAL with what is
 * wrong in the file. */
int machine_load(const char *name, struct machine *m);

/* Write m's machine.json atomically (its directory must exist). 0 or
 * -errno with cove_fail's message. */
int machine_save(const struct machine *m);

/* The names of all machines (those with a machine.json), sorted, in a
 * malloc'd array of MACHINE_NAME_MAX + 1 strings. Leftovers of a create
 * or delete that was killed (a directory without machine.json whose lock
 * is free) are removed on the way. 0 or -errno with cove_fail's message. */
int machine_list(char (**names)[MACHINE_NAME_MAX + 1], size_t *n);

/* The default machine's name into name ("" when there is none or it no
 * longer exists). 0 or -errno with cove_fail's message. */
int machine_default_get(char name[MACHINE_NAME_MAX + 1]);
/* Make name the default ("" clears it). Atomic. 0 or -errno. */
int machine_default_set(const char *name);
/* Make name the default when there is no default machine yet. 0 or -errno. */
int machine_default_claim(const char *name);

/* Take the lock of the whole store (the machines' directory's .lock),
 * which serialises choosing the default and handing out bridge
 * addresses. The fd to machine_unlock, or -errno with cove_fail's
 * message. */
int machine_store_lock(void);

/* A file of the whole store (in the machines' directory, created when
 * missing) into buf: machine_store_path(".bridge", …). 0 or -errno with
 * cove_fail's message. */
int machine_store_path(const char *file, char *buf, size_t size);

/* Which machine a command means: the one named (checked, must exist), or
 * the default without a name. Loads it into m. 0, or -errno with
 * cove_fail's message ("no such machine", "no default machine: …"). */
int machine_resolve(const char *name, struct machine *m);

/* The pid of m's running cove-vmm, or 0 when it is not running: vmm.pid
 * must name a live process whose command line is cove-vmm serving m's
 * api.sock. When it does not and clean is true (hold the machine's lock),
 * the stale vmm.pid and sockets are removed. */
pid_t machine_vmm_pid(const struct machine *m, bool clean);

/* Paths inside m's directories into buf: machine_path(m, "root.img", …)
 * in the data directory, machine_run_path(m, "api.sock", …) in the
 * runtime one. Pure. */
void machine_path(const struct machine *m, const char *file, char *buf, size_t size);
void machine_run_path(const struct machine *m, const char *file, char *buf, size_t size);

/* Remove the machine (stopped; hold its lock): machine.json first, so it
 * is gone at once even if the rest is interrupted, then its directories
 * and the default if it was that. 0 or -errno with cove_fail's message. */
int machine_remove(const struct machine *m);

/* Start a new machine's data directory for m (machine_init'ed, lock held):
 * removes a leftover directory of that name without machine.json, then
 * creates it. -EEXIST with "machine NAME already exists" when it has a
 * machine.json. 0 or -errno with cove_fail's message. */
int machine_prepare_dir(const struct machine *m);

#endif
