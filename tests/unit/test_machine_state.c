/* Machine state on disk: names, machine.json, the listing and its
 * cleanup of leftovers, the default machine, the lock, the running check,
 * the kernel command line, bridge addresses handed out and freed, and the
 * output formats. No KVM: a stand-in
 * process plays the monitor. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "bridge.h"
#include "fsutil.h"
#include "log.h"
#include "machine.h"
#include "machine_vmm.h"
#include "render.h"

static char tmp[] = "/tmp/cove-test-machine.XXXXXX";

static int setup(void **state)
{
	char path[PATH_MAX];

	(void)state;
	if (!mkdtemp(tmp))
		return -1;
	snprintf(path, sizeof(path), "%s/data", tmp);
	setenv("XDG_DATA_HOME", path, 1);
	snprintf(path, sizeof(path), "%s/run", tmp);
	setenv("XDG_RUNTIME_DIR", path, 1);
	snprintf(path, sizeof(path), "%s/home", tmp);
	setenv("HOME", path, 1);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return fsutil_rmtree(tmp);
}

static void test_names(void **state)
{
	char out[MACHINE_NAME_MAX + 1], long_name[200];

	(void)state;
	assert_int_equal(machine_name_check("debian-12"), 0);
	assert_int_equal(machine_name_check("a"), 0);
	assert_int_equal(machine_name_check("0abc"), 0);
	assert_int_equal(machine_name_check(""), -EINVAL);
	assert_int_equal(machine_name_check("-a"), -EINVAL);
	assert_int_equal(machine_name_check("a-"), -EINVAL);
	assert_int_equal(machine_name_check("Debian"), -EINVAL);
	assert_string_equal(cove_last_error(), "invalid machine name \"Debian\": use lowercase "
			    "letters, digits and \"-\" (a DNS label)");
	assert_int_equal(machine_name_check("a.b"), -EINVAL);
	assert_int_equal(machine_name_check("a_b"), -EINVAL);
	assert_int_equal(machine_name_check("../x"), -EINVAL);
	memset(long_name, 'a', 64);
	long_name[64] = '\0';
	assert_int_equal(machine_name_check(long_name), -EINVAL);
	long_name[63] = '\0';
	assert_int_equal(machine_name_check(long_name), 0);

	machine_name_from_image("debian:12.5", out);
	assert_string_equal(out, "debian-12-5");
	machine_name_from_image("docker.io/library/debian:12.5", out);
	assert_string_equal(out, "debian-12-5");
	machine_name_from_image("docker.io/library/debian:latest", out);
	assert_string_equal(out, "debian");
	machine_name_from_image("localhost:5000/test/Busy_Box:1.36", out);
	assert_string_equal(out, "busy-box-1-36");
	machine_name_from_image("x.io/app@sha256:0123", out);
	assert_string_equal(out, "app");
	machine_name_from_image("r/_x_:__", out);
	assert_string_equal(out, "x");
	machine_name_from_image("r/___", out);
	assert_string_equal(out, "machine");
	memset(long_name, 0, sizeof(long_name));
	strcpy(long_name, "r/");
	memset(long_name + 2, 'b', 57);
	strcat(long_name, "-cdef:1");
	machine_name_from_image(long_name, out);
	assert_int_equal(machine_name_check(out), 0);
	assert_true(strlen(out) <= MACHINE_NAME_MAX - 4);
	assert_true(out[strlen(out) - 1] != '-');
}

static void make_machine(struct machine *m, const char *name)
{
	memset(m, 0, sizeof(*m));
	assert_int_equal(machine_init(m, name), 0);
	snprintf(m->image, sizeof(m->image), "docker.io/library/debian:12");
	snprintf(m->image_digest, sizeof(m->image_digest), "sha256:%064d", 7);
	m->created = 1700000000;
	m->cpus = 3;
	m->memory = 1536ull << 20;
	m->disk_size = 10ull << 30;
	m->home = CONFIG_HOME_RO;
	strcpy(m->machine_id, "0123456789abcdef0123456789abcdef");
	assert_int_equal(machine_prepare_dir(m), 0);
	assert_int_equal(machine_save(m), 0);
}

static void test_json_roundtrip(void **state)
{
	struct machine *m = calloc(1, sizeof(*m)), *l = calloc(1, sizeof(*l));
	char path[PATH_MAX];
	int fd;

	(void)state;
	make_machine(m, "round");
	m->n_mounts = 2;
	strcpy(m->mounts[0].host, "/srv/data");
	strcpy(m->mounts[0].guest, "/data");
	m->mounts[0].ro = true;
	strcpy(m->mounts[1].host, "/tmp/x \"quoted\"");
	strcpy(m->mounts[1].guest, "/x");
	m->n_ports = 1;
	m->ports[0].host = 8080;
	m->ports[0].guest = 80;
	strcpy(m->kernel, "/k/bzImage");
	m->network = CONFIG_NET_BRIDGE;
	m->bridge_host = 7;
	assert_int_equal(machine_save(m), 0);
	assert_int_equal(machine_load("round", l), 0);
	assert_string_equal(l->image, m->image);
	assert_string_equal(l->image_digest, m->image_digest);
	assert_int_equal(l->created, m->created);
	assert_int_equal(l->cpus, 3);
	assert_int_equal(l->memory, 1536ull << 20);
	assert_int_equal(l->disk_size, 10ull << 30);
	assert_int_equal(l->home, CONFIG_HOME_RO);
	assert_int_equal(l->network, CONFIG_NET_BRIDGE);
	assert_int_equal(l->bridge_host, 7);
	assert_string_equal(l->kernel, "/k/bzImage");
	assert_string_equal(l->machine_id, m->machine_id);
	assert_int_equal(l->n_mounts, 2);
	assert_string_equal(l->mounts[1].host, "/tmp/x \"quoted\"");
	assert_true(l->mounts[0].ro);
	assert_false(l->mounts[1].ro);
	assert_int_equal(l->n_ports, 1);
	assert_int_equal(l->ports[0].host, 8080);
	assert_string_equal(l->dir, m->dir);
	assert_string_equal(l->run, m->run);

	/* one written before network and bridgeHost existed: auto, no address */
	machine_path(m, "machine.json", path, sizeof(path));
	fd = open(path, O_WRONLY | O_TRUNC);
	dprintf(fd, "{\"version\":1,\"name\":\"round\",\"image\":\"i\",\"imageDigest\":\"d\","
		"\"created\":\"2024-01-01T00:00:00Z\",\"cpus\":1,\"memoryMiB\":256,"
		"\"diskSizeMiB\":64,\"homeMount\":\"rw\",\"kernel\":\"\",\"machineId\":\"%s\","
		"\"mounts\":[],\"ports\":[]}", m->machine_id);
	close(fd);
	assert_int_equal(machine_load("round", l), 0);
	assert_int_equal(l->network, CONFIG_NET_AUTO);
	assert_int_equal(l->bridge_host, 0);

	/* a machine.json that is not what cove writes is refused, not guessed at */
	m->bridge_host = 255;
	assert_int_equal(machine_save(m), 0);
	assert_int_equal(machine_load("round", l), -EINVAL);
	assert_non_null(strstr(cove_last_error(), "bad bridgeHost"));
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(write(fd, "{\"version\":1}", 13) == 13);
	close(fd);
	assert_int_equal(machine_load("round", l), -EINVAL);
	assert_non_null(strstr(cove_last_error(), "machine.json"));
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(write(fd, "{nope", 5) == 5);
	close(fd);
	assert_int_equal(machine_load("round", l), -EINVAL);

	assert_int_equal(machine_load("nothere", l), -ENOENT);
	assert_string_equal(cove_last_error(), "no such machine: nothere (see 'cove machine ls')");
	assert_int_equal(machine_load("../etc", l), -ENOENT);
	assert_int_equal(machine_remove(m), 0);
	free(m);
	free(l);
}

static void test_list_default_remove(void **state)
{
	struct machine *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	char (*names)[MACHINE_NAME_MAX + 1];
	char def[MACHINE_NAME_MAX + 1], path[PATH_MAX * 2];
	struct stat st;
	size_t n;

	(void)state;
	make_machine(b, "beta");
	make_machine(a, "alpha");
	/* leftovers of a killed create and of a killed delete */
	snprintf(path, sizeof(path), "%s/../half", a->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/../.deleting-gone-1/sub", a->dir);
	assert_int_equal(fsutil_mkdirs(path, 0700), 0);
	assert_int_equal(machine_list(&names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "alpha");
	assert_string_equal(names[1], "beta");
	free(names);
	snprintf(path, sizeof(path), "%s/../half", a->dir);
	assert_int_equal(stat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/../.deleting-gone-1", a->dir);
	assert_int_equal(stat(path, &st), -1);

	assert_int_equal(machine_default_get(def), 0);
	assert_string_equal(def, "");
	assert_int_equal(machine_resolve(NULL, a), -ENOENT);
	assert_int_equal(machine_default_claim("beta"), 0);
	assert_int_equal(machine_default_claim("alpha"), 0);	/* there is one already */
	assert_int_equal(machine_default_get(def), 0);
	assert_string_equal(def, "beta");
	assert_int_equal(machine_resolve(NULL, a), 0);
	assert_string_equal(a->name, "beta");
	assert_int_equal(machine_default_set("alpha"), 0);
	assert_int_equal(machine_resolve(NULL, a), 0);
	assert_string_equal(a->name, "alpha");

	/* removing the default leaves none */
	assert_int_equal(machine_remove(a), 0);
	assert_int_equal(stat(a->dir, &st), -1);
	assert_int_equal(stat(a->run, &st), -1);
	assert_int_equal(machine_default_get(def), 0);
	assert_string_equal(def, "");
	assert_int_equal(machine_list(&names, &n), 0);
	assert_int_equal(n, 1);
	free(names);
	assert_int_equal(machine_prepare_dir(b), -EEXIST);
	assert_int_equal(machine_remove(b), 0);
	free(a);
	free(b);
}

static void test_lock(void **state)
{
	struct machine *m = calloc(1, sizeof(*m));
	int a, b;

	(void)state;
	assert_int_equal(machine_init(m, "locked"), 0);
	a = machine_lock(m, false);
	assert_true(a >= 0);
	assert_int_equal(machine_lock(m, false), -EBUSY);
	assert_string_equal(cove_last_error(), "machine locked is busy (another cove command is "
			    "working on it)");
	machine_unlock(a);
	b = machine_lock(m, false);
	assert_true(b >= 0);
	machine_unlock(b);
	fsutil_rmtree(m->run);
	free(m);
}

/* A process that looks like cove-vmm serving api (argv[0] named so). */
static pid_t fake_vmm(const char *api, int *hold)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[0], 0);
		close(p[1]);
		execl("/bin/sh", "/opt/cove/cove-vmm", "-c", "read x", "--api", api, (char *)NULL);
		_exit(127);
	}
	close(p[0]);
	*hold = p[1];
	/* until it has exec'd: then its command line is the one we gave */
	for (int i = 0; i < 500; i++) {
		char path[64], *buf;
		size_t len;
		bool ready;

		snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
		if (fsutil_read(path, 65536, &buf, &len) == 0) {
			ready = !strcmp(buf, "/opt/cove/cove-vmm");
			free(buf);
			if (ready)
				break;
		}
		usleep(10000);
	}
	return pid;
}

static void test_vmm_pid(void **state)
{
	struct machine *m = calloc(1, sizeof(*m));
	char path[PATH_MAX], api[PATH_MAX], pidtext[32];
	struct stat st;
	pid_t pid;
	int hold;

	(void)state;
	make_machine(m, "pids");
	assert_true(machine_lock(m, false) >= 0);	/* makes the runtime directory */
	machine_run_path(m, "vmm.pid", path, sizeof(path));
	machine_run_path(m, "api.sock", api, sizeof(api));
	assert_int_equal(machine_vmm_pid(m, true), 0);

	/* a pid that is alive but not a monitor (ours) */
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)getpid());
	assert_int_equal(fsutil_write_atomic(path, pidtext, strlen(pidtext), 0600), 0);
	assert_int_equal(fsutil_write_atomic(api, "", 0, 0600), 0);
	assert_int_equal(machine_vmm_pid(m, false), 0);
	assert_int_equal(stat(path, &st), 0);		/* not cleaned without clean */
	assert_int_equal(machine_vmm_pid(m, true), 0);
	assert_int_equal(stat(path, &st), -1);		/* stale files removed */
	assert_int_equal(stat(api, &st), -1);

	/* a cove-vmm for another machine's socket is not ours */
	pid = fake_vmm("/elsewhere/api.sock", &hold);
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)pid);
	assert_int_equal(fsutil_write_atomic(path, pidtext, strlen(pidtext), 0600), 0);
	assert_int_equal(machine_vmm_pid(m, false), 0);
	close(hold);
	waitpid(pid, NULL, 0);

	/* ours: running, until it dies */
	pid = fake_vmm(api, &hold);
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)pid);
	assert_int_equal(fsutil_write_atomic(path, pidtext, strlen(pidtext), 0600), 0);
	assert_int_equal(machine_vmm_pid(m, true), pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(hold);
	assert_int_equal(machine_vmm_pid(m, true), 0);
	assert_int_equal(stat(path, &st), -1);

	/* garbage in vmm.pid */
	assert_int_equal(fsutil_write_atomic(path, "12ab\n", 5, 0600), 0);
	assert_int_equal(machine_vmm_pid(m, true), 0);
	assert_int_equal(machine_remove(m), 0);
	free(m);
}

static void test_cmdline(void **state)
{
	struct machine *m = calloc(1, sizeof(*m));
	struct machine_net net = { .addr = "192.168.64.9", .gw = "192.168.64.1", .dns = "9.9.9.9" };
	char buf[MACHINE_CMDLINE_MAX];

	(void)state;
	assert_int_equal(machine_init(m, "cmd"), 0);
	m->home = CONFIG_HOME_NONE;
	strcpy(m->machine_id, "0123456789abcdef0123456789abcdef");
	m->n_mounts = 1;
	strcpy(m->mounts[0].guest, "/my data/x,y");
	m->mounts[0].ro = true;
	setenv("HOME", "/home/a b", 1);
	assert_int_equal(machine_vmm_cmdline(m, &net, buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "console=ttyS0 reboot=k panic=-1 quiet cove.hostname=cmd "));
	assert_non_null(strstr(buf, " cove.home=/home/a%20b "));
	assert_non_null(strstr(buf, " cove.homemount=none "));
	assert_non_null(strstr(buf, " cove.mount=m0:/my%20data/x,y:ro "));
	assert_non_null(strstr(buf, " cove.net=192.168.64.9/24,192.168.64.1,9.9.9.9 "));
	assert_non_null(strstr(buf, " cove.machineid=0123456789abcdef0123456789abcdef"));
	assert_non_null(strstr(buf, " cove.uid="));

	/* too long for the kernel: refused, not cut */
	m->n_mounts = 2;
	memset(m->mounts[1].guest, '%', 800);
	m->mounts[1].guest[0] = '/';
	assert_int_equal(machine_vmm_cmdline(m, &net, buf, sizeof(buf)), -E2BIG);
	setenv("HOME", tmp, 1);
	free(m);
}

/* The lowest free address among the store's machines, saved; one freed
 * by a removal is handed out again. */
static void test_bridge_claim(void **state)
{
	struct machine *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b)),
		       *c = calloc(1, sizeof(*c)), *l = calloc(1, sizeof(*l));
	char path[PATH_MAX], addr[16];

	(void)state;
	make_machine(a, "a");
	make_machine(b, "b");
	assert_int_equal(bridge_claim(a), 0);
	assert_int_equal(a->bridge_host, 2);
	assert_int_equal(bridge_claim(b), 0);
	assert_int_equal(b->bridge_host, 3);
	assert_int_equal(machine_load("b", l), 0);
	assert_int_equal(l->bridge_host, 3);
	/* kept: a second claim changes nothing */
	assert_int_equal(bridge_claim(a), 0);
	assert_int_equal(a->bridge_host, 2);

	/* no /24 chosen yet: no address to show */
	assert_int_equal(bridge_address(b, addr), -ENOENT);
	assert_int_equal(machine_store_path(".bridge", path, sizeof(path)), 0);
	assert_int_equal(fsutil_write_atomic(path, "192.168.70.0/24\n", 16, 0600), 0);
	assert_int_equal(bridge_address(b, addr), 0);
	assert_string_equal(addr, "192.168.70.3");
	assert_int_equal(bridge_address(c, addr), -ENOENT);	/* none of its own */
	assert_int_equal(fsutil_write_atomic(path, "192.168.70.1/24\n", 16, 0600), 0);
	assert_int_equal(bridge_address(b, addr), -ENOENT);	/* not a /24's start */

	assert_int_equal(machine_remove(a), 0);
	make_machine(c, "c");
	assert_int_equal(bridge_claim(c), 0);
	assert_int_equal(c->bridge_host, 2);
	assert_int_equal(machine_remove(b), 0);
	assert_int_equal(machine_remove(c), 0);
	free(a);
	free(b);
	free(c);
	free(l);
}

static char *render(json_t *v, enum render_format fmt)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	render_print(f, v, fmt);
	fclose(f);
	return buf;
}

static void test_render(void **state)
{
	json_t *v = json_pack("{s:s,s:i,s:b,s:n,s:[{s:s,s:b}],s:{s:s},s:[i,i],s:[]}",
			      "name", "a \"b\"\n", "cpus", 2, "default", 1, "ip",
			      "mounts", "host", "/x", "readOnly", 0,
			      "paths", "dir", "/d", "list", 1, 2, "ports");
	enum render_format fmt;
	char *out;

	(void)state;
	out = render(v, RENDER_YAML);
	assert_string_equal(out, "name: \"a \\\"b\\\"\\n\"\ncpus: 2\ndefault: true\nip: null\n"
			    "mounts:\n  - host: \"/x\"\n    readOnly: false\npaths:\n  dir: \"/d\"\n"
			    "list:\n  - 1\n  - 2\nports: []\n");
	free(out);
	out = render(v, RENDER_TOML);
	assert_string_equal(out, "name = \"a \\\"b\\\"\\n\"\ncpus = 2\ndefault = true\n"
			    "list = [1, 2]\nports = []\n\n[[mounts]]\nhost = \"/x\"\n"
			    "readOnly = false\n\n[paths]\ndir = \"/d\"\n");
	free(out);
	json_decref(v);
	v = json_pack("[{s:i}]", "a", 1);
	out = render(v, RENDER_JSON);
	assert_string_equal(out, "[\n  {\n    \"a\": 1\n  }\n]\n");
	free(out);
	json_decref(v);

	assert_int_equal(render_parse("yaml", 1 << RENDER_JSON | 1 << RENDER_YAML, &fmt), 0);
	assert_int_equal(fmt, RENDER_YAML);
	assert_int_equal(render_parse("table", 1 << RENDER_JSON | 1 << RENDER_YAML, &fmt), -EINVAL);
	assert_string_equal(cove_last_error(), "unknown format \"table\": use json or yaml");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_list_default_remove),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_vmm_pid),
		cmocka_unit_test(test_cmdline),
		cmocka_unit_test(test_bridge_claim),
		cmocka_unit_test(test_render),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
