/* What run and cp need around the agent: the guest working directory for
 * a host one, -u and -e parsing, and the extraction of a tar stream from
 * an untrusted machine. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>

#include "fsutil.h"
#include "log.h"
#include "machine_exec.h"

static char tmp[] = "/tmp/cove-test-exec.XXXXXX";

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return fsutil_rmtree(tmp);
}

static void test_cwd(void **state)
{
	struct machine *m = calloc(1, sizeof(*m));
	char out[PATH_MAX];
	const char *r;

	(void)state;
	m->home = CONFIG_HOME_RW;
	m->n_mounts = 2;
	strcpy(m->mounts[0].host, "/srv/data");
	strcpy(m->mounts[0].guest, "/data");
	strcpy(m->mounts[1].host, "/home/me/big");
	strcpy(m->mounts[1].guest, "/big");
	r = machine_exec_cwd(m, "/home/me", "/home/me", "/home/me/src/x", out, sizeof(out));
	assert_string_equal(r, "/home/me/src/x");
	r = machine_exec_cwd(m, "/home/me", "/home/me", "/home/me", out, sizeof(out));
	assert_string_equal(r, "/home/me");
	assert_null(machine_exec_cwd(m, "/home/me", "/home/me", "/home/meat", out, sizeof(out)));
	assert_null(machine_exec_cwd(m, "/home/me", "/home/me", "/tmp", out, sizeof(out)));
	r = machine_exec_cwd(m, "/home/me", "/home/me", "/srv/data/a/b", out, sizeof(out));
	assert_string_equal(r, "/data/a/b");
	r = machine_exec_cwd(m, "/home/me", "/home/me", "/srv/data", out, sizeof(out));
	assert_string_equal(r, "/data");
	/* a mount inside the home wins over the home */
	r = machine_exec_cwd(m, "/home/me", "/home/me", "/home/me/big/x", out, sizeof(out));
	assert_string_equal(r, "/big/x");
	/* $HOME through a symlink: the host's real path maps to $HOME's */
	r = machine_exec_cwd(m, "/home/me", "/data/users/me", "/data/users/me/p", out, sizeof(out));
	assert_string_equal(r, "/home/me/p");
	/* no shared home: only the mounts */
	m->home = CONFIG_HOME_NONE;
	assert_null(machine_exec_cwd(m, "/home/me", "/home/me", "/home/me/src", out, sizeof(out)));
	r = machine_exec_cwd(m, "/home/me", "/home/me", "/srv/data", out, sizeof(out));
	assert_string_equal(r, "/data");
	/* too long for out: no guess */
	assert_null(machine_exec_cwd(m, "/home/me", "/home/me", "/srv/data/abcdef", out, 8));
	free(m);
}

static void test_user(void **state)
{
	struct agent_exec x = { 0 };

	(void)state;
	assert_int_equal(machine_exec_user("alice", &x), 0);
	assert_string_equal(x.user, "alice");
	assert_int_equal(machine_exec_user("1001", &x), 0);
	assert_null(x.user);
	assert_int_equal(x.uid, 1001);
	assert_int_equal(x.gid, 1001);
	assert_int_equal(machine_exec_user("1001:50", &x), 0);
	assert_int_equal(x.uid, 1001);
	assert_int_equal(x.gid, 50);
	assert_int_equal(machine_exec_user("0", &x), 0);
	assert_int_equal(x.uid, 0);
	assert_int_equal(machine_exec_user("1001:", &x), -EINVAL);
	assert_int_equal(machine_exec_user("1001:x", &x), -EINVAL);
	assert_int_equal(machine_exec_user("4294967295", &x), -EINVAL);
	assert_int_equal(machine_exec_user("-root", &x), -EINVAL);
	assert_int_equal(machine_exec_user("a b", &x), -EINVAL);
	assert_int_equal(machine_exec_user("", &x), -EINVAL);
	assert_int_equal(machine_exec_user("abcdefghijklmnopqrstuvwxyz0123456", &x), -EINVAL);
	assert_string_equal(cove_last_error(), "--user \"abcdefghijklmnopqrstuvwxyz0123456\": "
			    "not a user name");
}

static void test_env(void **state)
{
	struct machine_env e = { 0 };
	char path[PATH_MAX];
	FILE *f;

	(void)state;
	setenv("COVE_T_HOSTVAR", "from host", 1);
	unsetenv("COVE_T_UNSET");
	assert_int_equal(machine_env_add(&e, "A=1", "--env"), 0);
	assert_int_equal(machine_env_add(&e, "B=", "--env"), 0);
	assert_int_equal(machine_env_add(&e, "C=x=y z", "--env"), 0);
	assert_int_equal(machine_env_add(&e, "COVE_T_HOSTVAR", "--env"), 0);
	assert_int_equal(machine_env_add(&e, "COVE_T_UNSET", "--env"), 0);
	assert_int_equal(e.n, 4);
	assert_string_equal(e.v[0], "A=1");
	assert_string_equal(e.v[1], "B=");
	assert_string_equal(e.v[2], "C=x=y z");
	assert_string_equal(e.v[3], "COVE_T_HOSTVAR=from host");
	assert_null(e.v[4]);
	assert_int_equal(machine_env_add(&e, "=1", "--env"), -EINVAL);
	assert_int_equal(machine_env_add(&e, "1A=1", "--env"), -EINVAL);
	assert_int_equal(machine_env_add(&e, "A-B=1", "--env"), -EINVAL);
	assert_string_equal(cove_last_error(), "--env \"A-B=1\": use NAME=VALUE or NAME (a name of "
			    "letters, digits and _)");

	snprintf(path, sizeof(path), "%s/env", tmp);
	f = fopen(path, "w");
	fputs("# comment\n\nD=4\r\nCOVE_T_HOSTVAR\nE=five six\n", f);
	fclose(f);
	assert_int_equal(machine_env_file(&e, path), 0);
	assert_int_equal(e.n, 7);
	assert_string_equal(e.v[4], "D=4");
	assert_string_equal(e.v[5], "COVE_T_HOSTVAR=from host");
	assert_string_equal(e.v[6], "E=five six");
	f = fopen(path, "w");
	fputs("OK=1\nnot valid\n", f);
	fclose(f);
	assert_int_equal(machine_env_file(&e, path), -EINVAL);
	assert_non_null(strstr(cove_last_error(), "/env:2: \"not valid\""));
	snprintf(path, sizeof(path), "%s/nothere", tmp);
	assert_int_equal(machine_env_file(&e, path), -ENOENT);
	machine_env_free(&e);
	assert_int_equal(e.n, 0);
}

/* A tar file at path with the given entries: name, type, and a link
 * target (symlink or hardlink, by type) or content. */
struct ent {
	const char *name;
	unsigned type;		/* AE_IF*, or 0 for a hard link */
	const char *arg;
};

static void write_tar(const char *path, const struct ent *ents, size_t n)
{
	struct archive *a = archive_write_new();

	archive_write_set_format_pax_restricted(a);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();

		archive_entry_set_pathname(e, ents[i].name);
		archive_entry_set_mtime(e, 1700000000, 0);
		if (ents[i].type == 0) {
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, ents[i].arg);
		} else {
			archive_entry_set_filetype(e, ents[i].type);
		}
		archive_entry_set_perm(e, ents[i].type == AE_IFDIR ? 0755 : 04755);
		if (ents[i].type == AE_IFLNK)
			archive_entry_set_symlink(e, ents[i].arg);
		if (ents[i].type == AE_IFREG && ents[i].arg)
			archive_entry_set_size(e, strlen(ents[i].arg));
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (ents[i].type == AE_IFREG && ents[i].arg)
			archive_write_data(a, ents[i].arg, strlen(ents[i].arg));
		archive_entry_free(e);
	}
	archive_write_close(a);
	archive_write_free(a);
}

/* Extract path's tar into a fresh dir/ under tmp in a child (untar
 * changes directory); 0 when it succeeded. */
static int untar(const char *path, const char *base, char *dir, size_t size)
{
	int status, fd;
	pid_t pid;

	snprintf(dir, size, "%s/x", tmp);
	fsutil_rmtree(dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	pid = fork();
	if (pid == 0)
		_exit(machine_exec_untar(fd, dir, base) ? 1 : 0);
	close(fd);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_untar(void **state)
{
	char tarpath[PATH_MAX], dir[PATH_MAX], path[PATH_MAX * 2], outside[PATH_MAX];
	struct stat st;

	(void)state;
	snprintf(tarpath, sizeof(tarpath), "%s/t.tar", tmp);
	snprintf(outside, sizeof(outside), "%s/outside", tmp);
	mkdir(outside, 0700);

	/* a good stream: dirs, files, "./" prefixes, symlinks, hard links */
	write_tar(tarpath, (struct ent[]){
		{ "./d", AE_IFDIR, NULL }, { "./d/a", AE_IFREG, "hello" },
		{ "d/sub", AE_IFDIR, NULL }, { "d/sub/b", AE_IFREG, "b" },
		{ "d/l", AE_IFLNK, "/etc/passwd" }, { "d/h", 0, "d/a" },
		{ "d/dev", AE_IFCHR, NULL } }, 7);
	assert_int_equal(untar(tarpath, "d", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/d/a", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 5);
	assert_int_equal(st.st_nlink, 2);
	assert_int_equal(st.st_mode & 07000, 0);	/* no setuid from the guest */
	snprintf(path, sizeof(path), "%s/d/sub/b", dir);
	assert_int_equal(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/d/l", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	snprintf(path, sizeof(path), "%s/d/dev", dir);
	assert_int_equal(lstat(path, &st), -1);		/* devices are not made */

	/* a single file, as tar -C DIR -cf - ./NAME sends it */
	write_tar(tarpath, (struct ent[]){ { "./hostname", AE_IFREG, "busybox" } }, 1);
	assert_int_equal(untar(tarpath, "hostname", dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/hostname", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 7);

	/* entries outside the name asked for */
	write_tar(tarpath, (struct ent[]){ { "d", AE_IFDIR, NULL }, { "other", AE_IFREG, "x" } }, 2);
	assert_int_equal(untar(tarpath, "d", dir, sizeof(dir)), 1);
	snprintf(path, sizeof(path), "%s/other", dir);
	assert_int_equal(stat(path, &st), -1);
	write_tar(tarpath, (struct ent[]){ { "dd/x", AE_IFREG, "x" } }, 1);
	assert_int_equal(untar(tarpath, "d", dir, sizeof(dir)), 1);

	/* path traversal */
	write_tar(tarpath, (struct ent[]){ { "d/../../outside/p1", AE_IFREG, "x" } }, 1);
	assert_int_equal(untar(tarpath, "d", dir, sizeof(dir)), 1);
	snprintf(path, sizeof(path), "%s/p1", outside);
	assert_int_equal(stat(path, &st), -1);

	/* a symlink planted, then written through */
	write_tar(tarpath, (struct ent[]){ { "d", AE_IFDIR, NULL },
		{ "d/l", AE_IFLNK, outside }, { "d/l/p2", AE_IFREG, "x" } }, 3);
	assert_int_equal(untar(tarpath, "d", dir, sizeof(dir)), 1);
	snprintf(path, sizeof(path), "%s/p2", outside);
	assert_int_equal(stat(path, &st), -1);

	/* a hard link to something outside the name */
	write_tar(tarpath, (struct ent[]){ { "d", AE_IFDIR, NULL }, { "d/h", 0, "../t.tar" } }, 2);
	assert_int_equal(untar(tarpath, "d", dir, sizeof(dir)), 1);

	/* nothing at all (the guest's tar did not run): nothing made */
	fsutil_write_atomic(tarpath, "", 0, 0600);
	assert_int_equal(untar(tarpath, "d", dir, sizeof(dir)), 0);

	/* not a tar at all */
	fsutil_write_atomic(tarpath, "garbage garbage", 15, 0600);
	assert_int_equal(untar(tarpath, "d", dir, sizeof(dir)), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cwd),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_untar),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
