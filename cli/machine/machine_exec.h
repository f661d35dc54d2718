/* Running things in a machine through its agent: what `cove machine run`
 * and `cove machine cp` need around agent_client (the working directory
 * a host directory maps to, -u and -e parsing, tar streams both ways).
 * Main thread. */
#ifndef COVE_MACHINE_EXEC_H
#define COVE_MACHINE_EXEC_H

#include <stddef.h>

#include "agent_client.h"
#include "machine.h"

#define MACHINE_AGENT_TIMEOUT_MS	(300 * 1000)	/* a machine booting under emulation */

/* The guest directory where the host directory cwd (absolute, without
 * symlinks, as getcwd gives it) is seen in m: under the shared home
 * (real_home is home without symlinks) the same path from home, under a
 * --mount's host directory its guest path (the deepest wins); NULL when
 * neither (the command then starts in the user's home) or when it does
 * not fit in out. Pure. */
const char *machine_exec_cwd(const struct machine *m, const char *home, const char *real_home,
			     const char *cwd, char *out, size_t size);

/* -u USER|UID[:GID] into x: a name (letters, digits, "._-", not starting
 * with "-", at most AGENT_USER_MAX - 1), or numeric ids (GID defaults to
 * UID). 0 or -EINVAL with cove_fail's message. x->user points into spec. */
int machine_exec_user(const char *spec, struct agent_exec *x);

/* A growing NULL-terminated K=V list for agent_exec's env. */
struct machine_env {
	char **v;
	size_t n, cap;
};

/* Add "K=V", or "K" alone for the host's value of K (nothing when the
 * host has none). K must be a name ([A-Za-z_][A-Za-z0-9_]*). 0 or -EINVAL /
 * -ENOMEM with cove_fail's message naming what. */
int machine_env_add(struct machine_env *e, const char *kv, const char *what);
/* Each line of the file as by machine_env_add; blank lines and lines
 * starting with "#" are skipped. Errors name FILE:LINE. */
int machine_env_file(struct machine_env *e, const char *path);
void machine_env_free(struct machine_env *e);

/* Connect to m's agent, waiting up to timeout_ms while it boots. The fd,
 * or -errno with cove_fail's message. */
int machine_exec_connect(const struct machine *m, int timeout_ms);

/* Copy the host file or directory src into m at dst (a guest path; a
 * relative one is from home): into dst when it is a directory there,
 * else as dst. Runs tar in the guest as root; owners are kept as numbers.
 * 0 or -errno with cove_fail's message. */
int machine_exec_copy_in(const struct machine *m, const char *home, const char *src,
			 const char *dst);

/* Copy src of m (a guest path; relative: from home) to the host path dst:
 * into dst when it is a directory, else as dst. The guest's tar stream is
 * untrusted: only entries under src's name are taken, none may leave dst
 * (no "..", no absolute paths, nothing through a symlink), and owners are
 * not restored. 0 or -errno with cove_fail's message. */
int machine_exec_copy_out(const struct machine *m, const char *home, const char *src,
			  const char *dst);

/* Extract the tar stream on fd into dir (becoming the working directory:
 * for a child process), taking only the entries named base or under it
 * (after leading "./"), refusing any that would leave dir ("..", absolute
 * paths, a path through a symlink, a hard link to outside base), skipping
 * devices and fifos, restoring neither owners nor special bits. The
 * stream is read to its end. 0 or -errno with cove_fail's message. */
int machine_exec_untar(int fd, const char *dir, const char *base);

#endif
