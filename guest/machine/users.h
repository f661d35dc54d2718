/* /etc/passwd and /etc/group, read without NSS (the guest binaries are
 * static): for the init shim's provisioning and the agent's user lookup. */
#ifndef COVE_GUEST_USERS_H
#define COVE_GUEST_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define USERS_NAME_MAX	64
#define USERS_PATH_MAX	512
#define USERS_GROUPS_MAX	64

struct users_pw {
	char name[USERS_NAME_MAX];
	uid_t uid;
	gid_t gid;
	char home[USERS_PATH_MAX];
	char shell[USERS_PATH_MAX];
};

/* Split line (modified in place) at ':' into at most max fields; returns
 * how many there were (more than max counts as max + 1). */
int users_split(char *line, char **fields, int max);

/* Parse a decimal id (no sign, no spaces, below 2^32 - 1). */
bool users_parse_id(const char *s, unsigned *out);

/* The passwd entry of name (name not NULL) or of uid (the first one) in
 * the file at path. 0, -ENOENT, or -errno. */
int users_find(const char *path, const char *name, uid_t uid, struct users_pw *out);

/* The groups of a user: gid first, then each group of the group file at
 * path that lists name as a member. Returns the count (>= 1). */
int users_groups(const char *path, const char *name, gid_t gid, gid_t *gids, int max);

#endif
