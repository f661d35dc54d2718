/* libcove: a KVM microVM in your process.
 *
 *	struct cove_config cfg;
 *	cove_config_init(&cfg);
 *	cfg.kernel = "bzImage"; cfg.cmdline = "console=ttyS0";
 *	struct cove_vm *vm;
 *	if (cove_vm_create(&cfg, &vm) < 0) puts(cove_last_error());
 *	cove_vm_start(vm);                  // returns at once
 *	poll on cove_vm_fd(vm), or cove_vm_wait(vm, &exit);
 *	cove_vm_destroy(vm);
 *
 * Functions return 0 or a negative errno; on failure cove_last_error()
 * says why in one line for a person. */
#ifndef LIBCOVE_H
#define LIBCOVE_H

#include <stdbool.h>
#include <stdint.h>

#define COVE_MAX_DISKS 8
#define COVE_MAX_NETS 4
#define COVE_MAX_FWDS 8
#define COVE_MAX_SHARES 8

enum cove_console {
	COVE_CONSOLE_STDIO,	/* output to stdout, input from stdin */
	COVE_CONSOLE_FILE,	/* output appended to console_path, no input */
	COVE_CONSOLE_NONE,
};

struct cove_disk {
	const char *path;
	bool readonly;
};

enum cove_net_backend {
	COVE_NET_TAP,		/* an existing tap interface */
	COVE_NET_USER,		/* user-mode networking (libslirp), no privileges */
};

/* A TCP port forward of the user backend: 127.0.0.1:host_port on the
 * host reaches guest_port in the guest. */
struct cove_net_fwd {
	uint16_t host_port, guest_port;
};

struct cove_net {
	enum cove_net_backend backend;
	char ifname[16];		/* COVE_NET_TAP */
	bool has_mac;			/* else a stable default from the VM's name */
	uint8_t mac[6];
	struct cove_net_fwd fwds[COVE_MAX_FWDS];	/* COVE_NET_USER */
	int nfwds;
};

/* Longest --vsock uds path: PATH_PORT (up to 11 more bytes) must fit a
 * unix socket address. */
#define COVE_VSOCK_PATH_MAX 96

/* A virtio-vsock device with Firecracker's hybrid host side (see
 * README.md, "vsock"). cid 0: none. */
struct cove_vsock {
	uint32_t cid;			/* the guest's CID, 3..0xfffffffe */
	char uds[COVE_VSOCK_PATH_MAX + 1];	/* host unix socket path */
};

/* How much the guest caches of a shared directory (virtio-fs). */
enum cove_fs_cache {
	COVE_FS_CACHE_AUTO,	/* 1 s attribute/entry timeouts (default) */
	COVE_FS_CACHE_NONE,	/* no timeouts, direct I/O: host changes seen at once */
	COVE_FS_CACHE_ALWAYS,	/* long timeouts, page cache kept, writeback cache */
};

/* A host directory the guest mounts with `mount -t virtiofs TAG DIR`. */
struct cove_share {
	const char *tag;		/* 1..36 bytes, unique */
	const char *path;		/* host directory */
	bool readonly;
	enum cove_fs_cache cache;
};

struct cove_config {
	const char *kernel;		/* bzImage or ELF vmlinux with PVH note */
	const char *initrd;		/* optional */
	const char *cmdline;		/* kernel command line; devices are appended */
	int cpus;			/* 1..LAYOUT_MAX_CPUS */
	uint64_t memory;		/* bytes */
	struct cove_disk disks[COVE_MAX_DISKS];
	int ndisks;
	struct cove_share shares[COVE_MAX_SHARES];
	int nshares;
	enum cove_console console;
	const char *console_path;	/* COVE_CONSOLE_FILE */
	/* Describe the platform with ACPI (default). Without it, or when the
	 * command line says acpi=off, the guest gets the MP table and
	 * virtio_mmio.device= entries on its command line instead. */
	bool no_acpi;
	/* The VM's identity: default MACs derive from it (when NULL, from
	 * the tap name or the backend). */
	const char *name;
	struct cove_net nets[COVE_MAX_NETS];	/* virtio-net devices */
	int nnets;
	struct cove_vsock vsock;	/* .cid 0: no vsock device */
	/* No virtio-rng device (by default the guest gets one, fed from
	 * getrandom(2)). */
	bool no_rng;
	/* A virtio-balloon device (cove_vm_balloon_set, _stats): inflation,
	 * memory statistics, deflate on OOM, free page reporting. */
	bool balloon;
};

enum cove_exit_reason {
	COVE_EXIT_NONE = 0,		/* still running */
	COVE_EXIT_POWEROFF,		/* guest powered off (ACPI S5) */
	COVE_EXIT_REBOOT,		/* guest rebooted (i8042 reset, triple fault) */
	COVE_EXIT_PANIC,		/* guest reported a panic (pvpanic) */
	COVE_EXIT_STOPPED,		/* cove_vm_stop() */
	COVE_EXIT_ERROR,		/* the monitor failed; see status */
};

/* Times in ns since the monitor process started (0 = not reached). */
struct cove_boot_times {
	uint64_t process_start_to_create;
	uint64_t first_kvm_run;		/* first KVM_RUN of vCPU 0 */
	uint64_t boot_timer;		/* guest wrote the boot-timer magic */
	uint64_t exit;			/* VM ended */
};

struct cove_exit {
	enum cove_exit_reason reason;
	int status;			/* -errno for COVE_EXIT_ERROR */
};

/* The balloon (cove_vm_balloon_stats). Sizes in bytes; a guest statistic
 * the guest has not reported is COVE_BALLOON_UNKNOWN. */
#define COVE_BALLOON_UNKNOWN UINT64_MAX
struct cove_balloon_stats {
	uint64_t target;		/* what the host asked the balloon to hold */
	uint64_t actual;		/* what the guest says the balloon holds */
	uint64_t inflated;		/* dropped on inflate, in total */
	uint64_t reported;		/* given back by free page reporting, in total */
	uint64_t bad_input;		/* pfns, ranges and buffers refused */
	uint64_t stats_age_ns;		/* since the guest's last statistics; 0: none yet */
	/* The guest's statistics (virtio 1.2, 5.5.6.3) */
	uint64_t swap_in, swap_out;	/* bytes */
	uint64_t major_faults, minor_faults;
	uint64_t free_memory, total_memory, available_memory, disk_caches;	/* bytes */
};

struct cove_vm;

/* Defaults: 1 CPU, 256 MiB, console on stdio, no disks. */
void cove_config_init(struct cove_config *cfg);

/* Open /dev/kvm, check the config, allocate memory, load the kernel and
 * create the devices. Nothing runs yet. 0 or -errno (cove_last_error()). */
int cove_vm_create(const struct cove_config *cfg, struct cove_vm **out);

/* Start the vCPU and event-loop threads; returns at once. */
int cove_vm_start(struct cove_vm *vm);

/* An fd that becomes readable when the VM has ended. */
int cove_vm_fd(const struct cove_vm *vm);

/* Block until the VM ends, then join its threads. 0 or -errno. */
int cove_vm_wait(struct cove_vm *vm, struct cove_exit *ex);

/* Force the VM to end now (COVE_EXIT_STOPPED). Any thread. */
void cove_vm_stop(struct cove_vm *vm);

/* Pause the guest: returns when every vCPU is out of KVM_RUN and parked
 * (devices keep running; a stop still ends the VM at once). Idempotent.
 * 0; -EINVAL before cove_vm_start; -ESRCH once the VM is ending;
 * -ECANCELED if a cove_vm_resume came before all vCPUs parked. Any
 * thread but the VM's own. */
int cove_vm_pause(struct cove_vm *vm);

/* Let a paused guest run again. Idempotent. 0, -EINVAL before
 * cove_vm_start, -ESRCH once the VM is ending. Any thread. */
int cove_vm_resume(struct cove_vm *vm);

/* Ask the guest to power off (ACPI power button) and, if it has not ended
 * timeout_ms later, end it as cove_vm_stop does (COVE_EXIT_STOPPED; a
 * guest that powers off in time ends with COVE_EXIT_POWEROFF). Returns at
 * once. Asking again keeps the earliest deadline. 0; -EINVAL before
 * cove_vm_start; -ENOTSUP without ACPI (no_acpi or acpi=off: the guest
 * cannot be asked; use cove_vm_stop); -ESRCH once the VM is ending. Any
 * thread. */
int cove_vm_shutdown(struct cove_vm *vm, unsigned timeout_ms);

/* Ask the guest to give target_bytes of its memory to the balloon
 * (rounded down to 4 KiB pages; 0 deflates it all); the guest gets there
 * at its pace (cove_vm_balloon_stats says how far). 0; -ENODEV without a
 * balloon (cove_config.balloon); -EINVAL when target_bytes exceeds the
 * guest's memory. Any thread. */
int cove_vm_balloon_set(struct cove_vm *vm, uint64_t target_bytes);

/* The balloon's state and the guest's last memory statistics, in *out;
 * asks the guest for fresh statistics, which a later call sees. 0 or
 * -ENODEV without a balloon. Any thread (runs on the event loop). */
int cove_vm_balloon_stats(struct cove_vm *vm, struct cove_balloon_stats *out);

/* Serve the control API (JSON lines: status, pause, resume, stop,
 * metrics; see README.md, "Control API") on a unix socket created at path,
 * mode 0600, on the VM's event loop. A stale socket there is replaced; a
 * live one is -EADDRINUSE. cove_vm_destroy closes it and unlinks it. After
 * cove_vm_create, before cove_vm_start, at most once. 0 or -errno
 * (cove_last_error()). Setup thread. */
int cove_vm_serve_api(struct cove_vm *vm, const char *path);

/* Times so far. Any thread. */
void cove_vm_times(const struct cove_vm *vm, struct cove_boot_times *t);

/* Write the metrics JSON object (boot times, exits by reason, peak RSS,
 * per-device counters) to fd. After cove_vm_wait. */
int cove_vm_write_metrics(struct cove_vm *vm, int fd);

/* Stop (if needed), join, and free everything. NULL is fine. */
void cove_vm_destroy(struct cove_vm *vm);

/* Parse a memory size: a bare number is MiB ("256"), or a number with a
 * suffix K, M, G, T (optionally followed by "iB" or "B"), or "B" for bytes.
 * 0, -EINVAL for anything else, -ERANGE on overflow. Pure. */
int cove_parse_size(const char *s, uint64_t *out);

/* Parse a --net spec into *out: "tap=IFNAME[,mac=MAC]" or
 * "user[,mac=MAC][,fwd=tcp:HOSTPORT:GUESTPORT]..." (MAC as six hex bytes
 * with colons, unicast and not all zero; ports 1-65535). 0, or -EINVAL
 * with a one-line reason in cove_last_error(). Pure but for that message;
 * any thread. */
int cove_parse_net(const char *spec, struct cove_net *out);

/* Parse a --vsock value "cid=N,uds=PATH" (keys in any order, both
 * needed; PATH without commas): N from 3 to 4294967294, PATH non-empty and
 * at most COVE_VSOCK_PATH_MAX bytes. 0, or -EINVAL / -ENAMETOOLONG with
 * cove_last_error() saying what is wrong. Any thread. */
int cove_parse_vsock(const char *s, struct cove_vsock *out);

/* Why the last call on this thread failed, for a person. */
const char *cove_last_error(void);

/* "poweroff", "reboot", … */
const char *cove_exit_reason_name(enum cove_exit_reason r);

#endif
