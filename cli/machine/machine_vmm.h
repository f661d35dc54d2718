/* A machine's monitor: building the cove-vmm command line from the
 * machine (MACHINE.md's boot contract), starting it detached so that it
 * outlives the CLI, talking to its control API, and stopping it. Main
 * thread; the caller holds the machine's lock for start and stop. */
#ifndef COVE_MACHINE_VMM_H
#define COVE_MACHINE_VMM_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

#include "config.h"
#include "machine.h"

#define MACHINE_CMDLINE_MAX	2048	/* x86 Linux's COMMAND_LINE_SIZE, NUL included */

/* The user-mode network (cove-vmm --net user): the guest's address,
 * gateway (also the host's loopback) and DNS, fixed by libslirp's setup in
 * cove-vmm. */
#define MACHINE_NET_ADDR	"10.0.2.15"
#define MACHINE_NET_GATEWAY	"10.0.2.2"
#define MACHINE_NET_DNS		"10.0.2.3"

/* The kernel a machine boots: its own (--kernel, `set kernel=`), else the
 * config file's, else $COVE_KERNEL, else guest/bzImage beside the cove
 * binary. Checked to be a readable file. 0 or -errno with cove_fail's
 * message saying where the kernel was looked for. */
int machine_vmm_kernel(const struct machine *m, const struct config *cfg, char *buf,
		       size_t size);

/* The kernel command line for m booting on net into buf (at most
 * MACHINE_CMDLINE_MAX bytes with its NUL): console, cove.hostname/user/
 * uid/gid/home/homemount/mount/net/machineid, values percent-encoded. 0,
 * or -E2BIG with cove_fail's message (too many or too long mount paths). */
int machine_vmm_cmdline(const struct machine *m, const struct machine_net *net, char *buf,
			size_t size);

/* Start m's cove-vmm detached (own session, stdio to vmm.log, vmm.pid
 * written before it runs), with console.log emptied, the disk file grown
 * to m->disk_size if it is smaller, on the bridge (bridge_up; m may get
 * its address there) or user-mode networking as m's network setting and
 * the privilege say, and wait until its control API answers. Its pid into
 * *pid. 0, or -errno with cove_fail's message (missing kernel/initrd/
 * cove-vmm, bridge without the privilege, or the monitor's own last words
 * from vmm.log when it ended at once). */
int machine_vmm_start(struct machine *m, const struct config *cfg, pid_t *pid);

/* The guest's address of m's current (or last) start into addr, and
 * whether it is on the bridge. 0, or -ENOENT when m was not started
 * since its runtime files were cleaned. */
int machine_vmm_net(const struct machine *m, char addr[16], bool *bridge);

/* Stop m's monitor pid: gracefully unless force (the guest's own init
 * shuts down and powers off, asked by the agent, or by the power button
 * when no agent answers), then, after timeout_s seconds, by the API's
 * stop, then SIGKILL. Waits until it is gone and removes its
 * runtime files. *forced (may be NULL) says whether the graceful way did
 * not do. 0 or -errno with cove_fail's message. */
int machine_vmm_stop(const struct machine *m, pid_t pid, int timeout_s, bool force,
		     bool *forced);

/* One control API request (a JSON object text, one line) to m's monitor;
 * the reply object into *reply (caller json_decref's) when reply is not
 * NULL. 0, -ECONNREFUSED/-ENOENT when the monitor is not there, -EIO
 * with the monitor's error text when it said {"ok":false}, or -errno. */
int machine_vmm_api(const struct machine *m, const char *request, json_t **reply);

#endif
