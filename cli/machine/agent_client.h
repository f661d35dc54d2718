/* The host's client of the exec agent in a machine: one request per
 * connection, through the machine's hybrid vsock unix socket (cove-vmm
 * --vsock uds=PATH). The agent is untrusted: every frame it sends is
 * checked by agent_proto before use. */
#ifndef COVE_AGENT_CLIENT_H
#define COVE_AGENT_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "agent_proto.h"

/* Connect to the agent through the machine's hybrid vsock socket (CONNECT
 * 1024), retrying until the agent answers a hello or timeout_ms passes.
 * Returns a connected fd or -errno (-ETIMEDOUT; -ENAMETOOLONG for a path
 * too long for a unix socket; -EPROTO when the other end does not speak
 * the protocol; -EPROTONOSUPPORT for an agent of another version).
 * Any thread. */
int agent_connect(const char *vsock_uds, int timeout_ms);

struct agent_exec {
	char *const *argv;	/* NULL: the user's login shell, as a login shell */
	char *const *env;	/* NULL-terminated K=V, applied over the user's login env */
	const char *cwd;	/* NULL: the user's home */
	const char *user;	/* user name in the guest, or NULL: uid/gid below */
	uint32_t uid, gid;
	bool tty;		/* a PTY in the guest; the host side raw-modes in_fd if it is a tty,
				   forwards SIGWINCH and restores the terminal on exit */
	bool stdin;		/* forward in_fd; else the guest command's stdin is /dev/null */
};

/* Run x in the guest; pump in_fd -> stdin, stdout -> out_fd, stderr ->
 * err_fd until it exits. With tty, TERM of this process goes along unless
 * x->env sets one, and the window size comes from in_fd (or out_fd) when
 * it is a terminal (else 24x80). SIGINT, SIGTERM, SIGHUP and SIGQUIT that
 * this process gets meanwhile go to the guest command (the third SIGINT
 * or SIGTERM gives up with -EINTR); SIGPIPE is held off. A message the
 * agent sends with a refusal goes to err_fd. Returns 0 with *status = exit
 * code (128+N when killed by signal N), or -errno (-EINVAL for a request
 * the protocol cannot carry, -E2BIG for one over AGENT_EXEC_MAX,
 * -ECONNRESET when the agent vanished, -EPROTO for a malformed frame, or
 * the agent's refusal). Closes fd. Main thread (it blocks signals). */
int agent_exec(int fd, const struct agent_exec *x, int in_fd, int out_fd, int err_fd,
	       int *status);

/* Ask the guest's own init to power off (systemd, openrc, busybox init).
 * Returns 0 once the agent accepted the request, or -errno. Closes fd.
 * Any thread. */
int agent_poweroff(int fd);

/* Facts the host shows in ls/inspect/stats: the guest's IPv4 of eth0 (or
 * ""), memory total/available (KiB), root filesystem size/used (KiB),
 * load. 0 or -errno. Closes fd. Any thread. */
int agent_info(int fd, struct agent_info *out);

#endif
