#include "users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int users_split(char *line, char **fields, int max)
{
	int n = 0;

	for (char *p = line;; p++) {
		if (n == max)
			return max + 1;
		fields[n++] = p;
		p = strchr(p, ':');
		if (!p)
			return n;
		*p = '\0';
	}
}

bool users_parse_id(const char *s, unsigned *out)
{
	unsigned long long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		v = v * 10 + (*s - '0');
		if (v >= 0xffffffffull)
			return false;
	}
	*out = v;
	return true;
}

static void copy(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src);
}

int users_find(const char *path, const char *name, uid_t uid, struct users_pw *out)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, *fld[8];
	size_t cap = 0;
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		unsigned u, g;

		line[strcspn(line, "\n")] = '\0';
		if (users_split(line, fld, 7) != 7 || !users_parse_id(fld[2], &u) ||
		    !users_parse_id(fld[3], &g))
			continue;
		if (name ? strcmp(fld[0], name) != 0 : u != uid)
			continue;
		copy(out->name, sizeof(out->name), fld[0]);
		out->uid = u;
		out->gid = g;
		copy(out->home, sizeof(out->home), fld[5]);
		copy(out->shell, sizeof(out->shell), fld[6]);
		err = 0;
		break;
	}
	free(line);
	fclose(f);
	return err;
}

int users_groups(const char *path, const char *name, gid_t gid, gid_t *gids, int max)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, *fld[5];
	size_t cap = 0;
	int n = 1;

	gids[0] = gid;
	if (!f)
		return n;
	while (n < max && getline(&line, &cap, f) > 0) {
		unsigned g;

		line[strcspn(line, "\n")] = '\0';
		if (users_split(line, fld, 4) != 4 || !users_parse_id(fld[2], &g) || g == gid)
			continue;
		for (char *save = NULL, *m = strtok_r(fld[3], ",", &save); m;
		     m = strtok_r(NULL, ",", &save)) {
			if (!strcmp(m, name)) {
				gids[n++] = g;
				break;
			}
		}
	}
	free(line);
	fclose(f);
	return n;
}
