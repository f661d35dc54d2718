#include "machine_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "bridge.h"
#include "cli.h"
#include "config.h"
#include "disk.h"
#include "fsutil.h"
#include "human.h"
#include "image.h"
#include "log.h"
#include "machine.h"
#include "machine_exec.h"
#include "machine_vmm.h"
#include "render.h"
#include "store.h"

#define STOP_TIMEOUT_S	30

static const char usage_machine[] =
"Usage: cove machine COMMAND\n"
"\n"
"Manage machines: persistent Linux environments made from OCI images, each\n"
"in its own microVM, running the image's own init\n"
"\n"
"Aliases:\n"
"  cove machine, cove m\n"
"\n"
"Commands:\n"
"  create        Create a machine from an image, and boot it\n"
"  start         Start a stopped machine\n"
"  stop          Stop a machine (its own init shuts it down)\n"
"  restart       Stop and start a machine\n"
"  run           Run a command (or a login shell) in a machine\n"
"  cp            Copy files between the host and a machine\n"
"  ls            List machines\n"
"  inspect       Show a machine's settings and state\n"
"  set           Change a machine's settings\n"
"  set-default   Choose the machine commands use when none is named\n"
"  logs          Show a machine's console (or its monitor's log)\n"
"  stats         Show a running machine's CPU, memory and disk use\n"
"  rm            Remove machines and all their storage\n"
"\n"
"Machines live in $XDG_DATA_HOME/cove/machines (default\n"
"~/.local/share/cove/machines). Defaults for new machines come from\n"
"$XDG_CONFIG_HOME/cove/config.toml, section [machine]: cpus, memory,\n"
"homeMount, diskSize, network, kernel.\n"
"\n"
"Run 'cove machine COMMAND --help' for more information on a command.\n";

static const char usage_create[] =
"Usage: cove machine create [OPTIONS] IMAGE\n"
"\n"
"Create a machine from an image, and boot it\n"
"\n"
"  IMAGE is an image in the store, a reference to pull (debian:12,\n"
"  HOST:PORT/REPO:TAG, @sha256:DIGEST), or a local source to import\n"
"  (oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE). Its\n"
"  layers become the machine's root disk, a sparse ext4 file; the image\n"
"  must have an /sbin/init. Prints the machine's name. The first machine\n"
"  becomes the default.\n"
"\n"
"Options:\n"
"  -n, --name NAME             Machine name, a DNS label (default: from the\n"
"                              image, \"debian:12.5\" -> debian-12-5)\n"
"      --cpus N                Virtual CPUs (default: half the host's, at\n"
"                              least 4 where the host has them)\n"
"      --memory SIZE           Memory: MiB as a number, or 512M, 4G (default:\n"
"                              half the host's RAM, at least 1G)\n"
"      --disk-size SIZE        Root disk size, sparse (default 64G)\n"
"      --home-mount MODE       Share the host home at the same path: rw\n"
"                              (default), ro, or none (a home of its own)\n"
"      --mount HOSTDIR:GUESTDIR[:ro]\n"
"                              Share a host directory (repeatable, up to 8)\n"
"      --network MODE          auto (default): the bridge cove0 when cove may\n"
"                              make it (root, CAP_NET_ADMIN), else user;\n"
"                              bridge: an address of its own on cove0 that the\n"
"                              host reaches, named NAME.machine; user:\n"
"                              user-mode networking, no privileges\n"
"  -p, --publish HOSTPORT:GUESTPORT\n"
"                              Forward the host's 127.0.0.1:HOSTPORT to the\n"
"                              machine's TCP GUESTPORT (repeatable, up to 8;\n"
"                              user-mode networking only: on the bridge the\n"
"                              host reaches every port at the address)\n"
"      --kernel PATH           Boot this kernel (default: config.toml's,\n"
"                              $COVE_KERNEL, or the one beside cove)\n"
"      --set-default           Make it the default machine\n"
"      --no-boot               Create it stopped\n"
"  -q, --quiet                 Print only the name\n"
"  -h, --help                  Show this help\n";

static const char usage_start[] =
"Usage: cove machine start [NAME]\n"
"\n"
"Start a stopped machine (the default one without NAME). Its monitor runs\n"
"in the background, outliving this command.\n"
"\n"
"Options:\n"
"  -h, --help    Show this help\n";

static const char usage_stop[] =
"Usage: cove machine stop [OPTIONS] [NAME]\n"
"\n"
"Stop a machine (the default one without NAME): its own init shuts it down\n"
"and powers off; after the timeout it is stopped by force.\n"
"\n"
"Options:\n"
"  -t, --time SECONDS   Seconds to wait for the shutdown (default 30)\n"
"  -h, --help           Show this help\n";

static const char usage_restart[] =
"Usage: cove machine restart [OPTIONS] [NAME]\n"
"\n"
"Stop a machine (if it runs) and start it again; settings changed with\n"
"'cove machine set' take effect.\n"
"\n"
"Options:\n"
"  -t, --time SECONDS   Seconds to wait for the shutdown (default 30)\n"
"  -h, --help           Show this help\n";

static const char usage_run[] =
"Usage: cove machine run [OPTIONS] [--] [COMMAND [ARG...]]\n"
"\n"
"Run a command in a machine, or a login shell without one. A stopped\n"
"machine is started first. The arguments arrive exactly as given; stdout,\n"
"stderr and the exit status pass through.\n"
"\n"
"  The command starts in the host's current directory when that is under\n"
"  the shared home or a --mount, else in the user's home. It runs as the\n"
"  host user (the same name, uid and gid in the machine).\n"
"\n"
"Options:\n"
"  -n, --name NAME              The machine (default: the default machine)\n"
"  -d, --detach                 Start the command in the background in the\n"
"                               machine, print its pid, and return\n"
"      --root                   Run as root\n"
"  -u, --user USER|UID[:GID]    Run as this user of the machine\n"
"  -e, --env NAME=VALUE|NAME    Set a variable (NAME alone: the host's value)\n"
"      --env-file FILE          Set the NAME=VALUE lines of FILE\n"
"  -w, --workdir DIR            Start in DIR\n"
"  -t, --tty                    Give the command a terminal (the default for a\n"
"                               login shell when stdin and stdout are terminals)\n"
"  -i, --interactive            Pass stdin to the command (the default for a\n"
"                               login shell, or when stdin is not a terminal)\n"
"  -h, --help                   Show this help\n";

static const char usage_cp[] =
"Usage: cove machine cp [OPTIONS] SRC DST\n"
"\n"
"Copy a file or directory between the host and a machine: one of SRC and\n"
"DST is NAME:PATH (a path in machine NAME; relative paths are from the\n"
"home directory), the other a host path (write ./a:b for a host path with\n"
"a colon). Into DST when it is a directory, else as DST. A stopped machine\n"
"is started first.\n"
"\n"
"Options:\n"
"  -h, --help    Show this help\n";

static const char usage_ls[] =
"Usage: cove machine ls [OPTIONS]\n"
"\n"
"List machines\n"
"\n"
"Aliases:\n"
"  cove machine ls, cove machine list\n"
"\n"
"Options:\n"
"      --format FORMAT   table (default), json, yaml or toml\n"
"  -q, --quiet           Print only machine names\n"
"  -h, --help            Show this help\n";

static const char usage_inspect[] =
"Usage: cove machine inspect [OPTIONS] [NAME]\n"
"\n"
"Show a machine's settings and state (the default machine without NAME)\n"
"\n"
"Options:\n"
"      --format FORMAT   json (default), yaml or toml\n"
"  -h, --help            Show this help\n";

static const char usage_set[] =
"Usage: cove machine set [OPTIONS] KEY=VALUE...\n"
"\n"
"Change a machine's settings. They are checked and stored now, and take\n"
"effect at the machine's next start.\n"
"\n"
"Keys:\n"
"  cpus=N               Virtual CPUs, 1 to 64\n"
"  memory=SIZE          Memory: MiB as a number, or 512M, 4G\n"
"  disk-size=SIZE       Root disk size; it can only grow (the machine grows\n"
"                       its filesystem when it boots)\n"
"  home-mount=MODE      rw, ro or none\n"
"  network=MODE         auto, user or bridge (see 'cove machine create --help')\n"
"  kernel=PATH          Boot this kernel; empty: the default one\n"
"\n"
"Options:\n"
"  -n, --name NAME   The machine (default: the default machine)\n"
"  -h, --help        Show this help\n";

static const char usage_set_default[] =
"Usage: cove machine set-default NAME\n"
"\n"
"Make NAME the machine that commands use when none is named\n"
"\n"
"Options:\n"
"  -h, --help    Show this help\n";

static const char usage_logs[] =
"Usage: cove machine logs [OPTIONS] [NAME]\n"
"\n"
"Show a machine's console output since its last start (the default machine\n"
"without NAME)\n"
"\n"
"Options:\n"
"      --boot          Show the monitor's log instead (cove-vmm's messages)\n"
"  -f, --follow        Keep printing what comes, until the machine stops\n"
"  -n, --tail LINES    Only the last LINES lines\n"
"  -h, --help          Show this help\n";

static const char usage_stats[] =
"Usage: cove machine stats [OPTIONS] [NAME]\n"
"\n"
"Show a running machine's CPU use, memory (on the host, in the guest, and\n"
"what the balloon gave back) and disk use\n"
"\n"
"Options:\n"
"      --format FORMAT   table (default), json, yaml or toml\n"
"  -h, --help            Show this help\n";

static const char usage_rm[] =
"Usage: cove machine rm [OPTIONS] NAME...\n"
"\n"
"Remove machines and all their storage (root disk, logs, sockets)\n"
"\n"
"Aliases:\n"
"  cove machine rm, cove machine delete, cove machine remove\n"
"\n"
"Options:\n"
"  -f, --force   Stop a running machine first (at once, without shutdown)\n"
"  -h, --help    Show this help\n";

enum {
	OPT_CPUS = 256,
	OPT_MEMORY,
	OPT_DISK,
	OPT_HOME,
	OPT_NETWORK,
	OPT_MOUNT,
	OPT_KERNEL,
	OPT_SET_DEFAULT,
	OPT_NO_BOOT,
	OPT_FORMAT,
	OPT_BOOT,
	OPT_ROOT,
	OPT_ENV_FILE,
};

struct opts {
	const char *cmd;
	const char *name, *format, *cpus, *memory, *disk, *home, *network, *kernel;
	const char *mounts[MACHINE_MOUNTS_MAX + 1];
	const char *ports[MACHINE_PORTS_MAX + 1];
	unsigned n_mounts, n_ports;
	bool quiet, force, boot, follow, set_default, no_boot;
	long time, lines;
	/* run */
	const char *user, *workdir;
	bool detach, root, tty, interactive;
	struct machine_env env;
	int env_err;
};

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return cli_usage_error("machine", cmd, "%s", msg);
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (s[0] < '0' || s[0] > '9' || *end || errno || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static int on_opt(int c, void *arg)
{
	struct opts *o = arg;

	switch (c) {
	case 'n':
		if (!strcmp(o->cmd, "logs")) {
			if (!parse_long(optarg, 0, 1L << 30, &o->lines))
				return usage_error(o->cmd, "--tail \"%s\": not a number of lines",
						   optarg);
		} else {
			o->name = optarg;
		}
		break;
	case 't':
		if (!strcmp(o->cmd, "run")) {
			o->tty = true;
			break;
		}
		if (!parse_long(optarg, 0, 86400, &o->time))
			return usage_error(o->cmd, "--time \"%s\": not a number of seconds from 0 "
					   "to 86400", optarg);
		break;
	case 'q': o->quiet = true; break;
	case 'f':
		if (!strcmp(o->cmd, "logs"))
			o->follow = true;
		else
			o->force = true;
		break;
	case OPT_FORMAT: o->format = optarg; break;
	case OPT_CPUS: o->cpus = optarg; break;
	case OPT_MEMORY: o->memory = optarg; break;
	case OPT_DISK: o->disk = optarg; break;
	case OPT_HOME: o->home = optarg; break;
	case OPT_NETWORK: o->network = optarg; break;
	case OPT_KERNEL: o->kernel = optarg; break;
	case OPT_SET_DEFAULT: o->set_default = true; break;
	case OPT_NO_BOOT: o->no_boot = true; break;
	case OPT_BOOT: o->boot = true; break;
	case 'd': o->detach = true; break;
	case 'i': o->interactive = true; break;
	case 'u': o->user = optarg; break;
	case 'w': o->workdir = optarg; break;
	case OPT_ROOT: o->root = true; break;
	case 'e':
		if (machine_env_add(&o->env, optarg, "--env"))
			return cli_fail();
		break;
	case OPT_ENV_FILE:
		if (machine_env_file(&o->env, optarg))
			return cli_fail();
		break;
	case 'p':
		if (o->n_ports == MACHINE_PORTS_MAX)
			return usage_error(o->cmd, "at most %d --publish", MACHINE_PORTS_MAX);
		o->ports[o->n_ports++] = optarg;
		break;
	case OPT_MOUNT:
		if (o->n_mounts == MACHINE_MOUNTS_MAX)
			return usage_error(o->cmd, "at most %d --mount", MACHINE_MOUNTS_MAX);
		o->mounts[o->n_mounts++] = optarg;
		break;
	}
	return 0;
}

/* Parse argv for cmd; the first operand's index, or -1 (exit 0) / -2
 * (exit 1) as cli_parse_opts. */
static int parse(struct opts *o, const char *cmd, int argc, char **argv, const char *usage,
		 const struct option *table, const char *shortopts)
{
	memset(o, 0, sizeof(*o));
	o->cmd = cmd;
	o->time = STOP_TIMEOUT_S;
	o->lines = -1;
	return cli_parse_opts("machine", argc, argv, usage, table, shortopts, on_opt, o);
}

static int done(int i)
{
	return i == -1 ? 0 : 1;
}

/* "4G" when whole GiB, else "1536M". */
static const char *size_mib(uint64_t bytes, char *buf, size_t size)
{
	if (bytes % (1ull << 30) == 0)
		snprintf(buf, size, "%" PRIu64 "G", bytes >> 30);
	else
		snprintf(buf, size, "%" PRIu64 "M", bytes >> 20);
	return buf;
}

static void iso_time(int64_t t, char *buf, size_t size)
{
	time_t tt = t;

	strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", gmtime(&tt));
}

static struct machine *new_machine(void)
{
	struct machine *m = calloc(1, sizeof(*m));

	if (!m)
		cove_fail(-ENOMEM, "out of memory");
	return m;
}

/* A kernel path given by the user: resolved, a readable regular file. */
static int check_kernel(const char *what, const char *path, char *out, size_t size)
{
	char real[PATH_MAX];
	struct stat st;

	if (!realpath(path, real) || stat(real, &st) < 0 || access(real, R_OK) < 0)
		return cove_fail(-ENOENT, "%s \"%s\": %s", what, path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return cove_fail(-EINVAL, "%s \"%s\": not a regular file", what, path);
	if (strlen(real) >= size)
		return cove_fail(-ENAMETOOLONG, "%s \"%s\": path too long", what, path);
	strcpy(out, real);
	return 0;
}

/* Normalise an absolute guest path in place: no "//", "/./", trailing "/";
 * "..", a relative path and "/" itself are refused. */
static int guest_path(const char *spec, char *p)
{
	char out[MACHINE_GUEST_PATH_MAX];
	size_t n = 0;

	if (p[0] != '/')
		return cove_fail(-EINVAL, "--mount %s: the guest directory must be absolute", spec);
	for (char *s = p; *s;) {
		size_t len;

		while (*s == '/')
			s++;
		len = strcspn(s, "/");
		if (!len)
			break;
		if (len == 2 && !strncmp(s, "..", 2))
			return cove_fail(-EINVAL, "--mount %s: \"..\" in the guest directory", spec);
		if (!(len == 1 && s[0] == '.')) {
			out[n++] = '/';
			memcpy(out + n, s, len);
			n += len;
		}
		s += len;
	}
	if (!n)
		return cove_fail(-EINVAL, "--mount %s: the guest directory cannot be /", spec);
	out[n] = '\0';
	strcpy(p, out);
	return 0;
}

/* HOSTDIR:GUESTDIR[:ro|:rw] */
static int parse_mount(const char *spec, struct machine_mount *mm)
{
	char buf[PATH_MAX + MACHINE_GUEST_PATH_MAX], *host, *guest, *mode;
	struct stat st;

	if (strlen(spec) >= sizeof(buf))
		return cove_fail(-ENAMETOOLONG, "--mount %s: too long", spec);
	strcpy(buf, spec);
	host = buf;
	guest = strchr(host, ':');
	if (!guest || guest == host)
		return cove_fail(-EINVAL, "--mount %s: use HOSTDIR:GUESTDIR[:ro]", spec);
	*guest++ = '\0';
	mode = strchr(guest, ':');
	if (mode) {
		*mode++ = '\0';
		if (strcmp(mode, "ro") && strcmp(mode, "rw"))
			return cove_fail(-EINVAL, "--mount %s: \"%s\": use ro or rw after the guest "
					 "directory", spec, mode);
	}
	mm->ro = mode && !strcmp(mode, "ro");
	if (!realpath(host, mm->host))
		return cove_fail(-errno, "--mount %s: %s: %s", spec, host, strerror(errno));
	if (stat(mm->host, &st) < 0 || !S_ISDIR(st.st_mode))
		return cove_fail(-ENOTDIR, "--mount %s: %s is not a directory", spec, host);
	if (strchr(mm->host, ','))
		return cove_fail(-EINVAL, "--mount %s: a host path with \",\" cannot be shared", spec);
	if (strlen(guest) >= sizeof(mm->guest))
		return cove_fail(-ENAMETOOLONG, "--mount %s: guest directory too long", spec);
	strcpy(mm->guest, guest);
	return guest_path(spec, mm->guest);
}

/* HOSTPORT:GUESTPORT, each 1 to 65535 */
static int parse_port(const char *spec, struct machine_port *p)
{
	long h, g;
	const char *colon = strchr(spec, ':');
	char host[8];

	if (!colon || colon - spec >= (long)sizeof(host))
		goto bad;
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	if (!parse_long(host, 1, 65535, &h) || !parse_long(colon + 1, 1, 65535, &g))
		goto bad;
	p->host = h;
	p->guest = g;
	return 0;
bad:
	return cove_fail(-EINVAL, "--publish %s: use HOSTPORT:GUESTPORT (TCP ports, 1 to 65535)",
			 spec);
}

static int random_id(char out[33])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		return cove_fail(-errno, "getrandom: %s", strerror(errno));
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	return 0;
}

/* The image what names, in the store held shared on return: found there,
 * else fetched (pulled or imported) first; *added says whether this made
 * a new entry in the store (for drop_image when the create fails). */
static int find_image(struct store *s, const char *what, bool quiet, struct store_image *im,
		      bool *added)
{
	char name[OCI_REF_MAX], digest[DIGEST_LEN + 1];
	struct store_image *before = NULL;
	struct oci_ref ref;
	size_t n = 0;
	int err;

	*added = false;
	if (!image_is_local(what)) {
		err = store_open(s, STORE_SHARED);
		if (err)
			return err;
		err = store_image_find(s, what, im);
		if (err != -ENOENT)
			return err;
		store_close(s);
		/* not in the store: it must be a reference to pull */
		err = oci_ref_parse(what, &ref);
		if (err)
			return err;
	}
	err = store_open(s, STORE_EXCLUSIVE);
	if (!err)
		err = store_images(s, &before, &n);
	if (!err)
		err = image_fetch(s, what, NULL, quiet ? NULL : stderr, name, digest);
	if (!err) {
		*added = true;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(before[i].name, name))
				*added = false;
	}
	free(before);
	store_close(s);
	if (err)
		return err;
	err = store_open(s, STORE_SHARED);
	return err ?: store_image_find(s, name, im);
}

/* Take back an image that a failed create put in the store. */
static void drop_image(const char *name)
{
	struct store s;

	if (!store_open(&s, STORE_EXCLUSIVE)) {
		store_image_remove(&s, name);
		store_close(&s);
	}
}

/* Take a name for a new machine and its lock, and make its directory: the
 * one given, or the image's name made unique ("debian-12", "debian-12-2"). */
static int claim_name(struct machine *m, const char *given, const char *image, int *lock)
{
	char base[MACHINE_NAME_MAX + 1], cand[MACHINE_NAME_MAX + 16];
	int err;

	if (given) {
		err = machine_init(m, given);
		if (err)
			return err;
		*lock = machine_lock(m, true);
		if (*lock < 0)
			return *lock;
		err = machine_prepare_dir(m);
		if (err)
			machine_unlock(*lock);
		return err;
	}
	machine_name_from_image(image, base);
	for (int i = 1; i < 1000; i++) {
		if (i == 1)
			snprintf(cand, sizeof(cand), "%s", base);
		else
			snprintf(cand, sizeof(cand), "%s-%d", base, i);
		err = machine_init(m, cand);
		if (err)
			return err;
		*lock = machine_lock(m, false);
		if (*lock == -EBUSY)
			continue;	/* being created right now */
		if (*lock < 0)
			return *lock;
		err = machine_prepare_dir(m);
		if (!err)
			return 0;
		machine_unlock(*lock);
		if (err != -EEXIST)
			return err;
	}
	return cove_fail(-EEXIST, "no free machine name from \"%s\": give one with --name", base);
}

static const struct option opts_create[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "cpus", required_argument, NULL, OPT_CPUS },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "disk-size", required_argument, NULL, OPT_DISK },
	{ "home-mount", required_argument, NULL, OPT_HOME },
	{ "network", required_argument, NULL, OPT_NETWORK },
	{ "mount", required_argument, NULL, OPT_MOUNT },
	{ "publish", required_argument, NULL, 'p' },
	{ "kernel", required_argument, NULL, OPT_KERNEL },
	{ "set-default", no_argument, NULL, OPT_SET_DEFAULT },
	{ "no-boot", no_argument, NULL, OPT_NO_BOOT },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int cmd_create(int argc, char **argv)
{
	char root[PATH_MAX], msg[1024];
	struct store_image im;
	struct config cfg;
	struct machine *m;
	struct opts o;
	struct store s = { .lock_fd = -1 };
	bool added = false, claimed = false, bridge = false;
	int lock = -1, err, i = parse(&o, "create", argc, argv, usage_create, opts_create, "n:p:qh");
	pid_t pid;

	if (i < 0)
		return done(i);
	if (argc - i != 1)
		return usage_error("create", "create needs exactly one IMAGE");
	m = new_machine();
	if (!m)
		return cli_fail();
	/* every input is checked before anything is fetched or written */
	err = config_load(&cfg);
	if (!err) {
		m->cpus = cfg.cpus;
		m->memory = cfg.memory;
		m->disk_size = cfg.disk_size;
		m->home = cfg.home;
		m->network = cfg.network;
	}
	if (!err && o.name)
		err = machine_name_check(o.name);
	if (!err && o.cpus)
		err = config_parse_cpus("--cpus", o.cpus, &m->cpus);
	if (!err && o.memory)
		err = config_parse_memory("--memory", o.memory, &m->memory);
	if (!err && o.disk)
		err = config_parse_disk("--disk-size", o.disk, &m->disk_size);
	if (!err && o.home)
		err = config_parse_home("--home-mount", o.home, &m->home);
	if (!err && o.network)
		err = config_parse_network("--network", o.network, &m->network);
	if (!err)
		err = bridge_choose(m->network, o.network ? "--network" : "config.toml's network",
				    &bridge);
	if (!err && o.kernel)
		err = check_kernel("--kernel", o.kernel, m->kernel, sizeof(m->kernel));
	for (unsigned k = 0; !err && k < o.n_mounts; k++) {
		err = parse_mount(o.mounts[k], &m->mounts[k]);
		for (unsigned j = 0; !err && j < k; j++)
			if (!strcmp(m->mounts[j].guest, m->mounts[k].guest))
				err = cove_fail(-EINVAL, "--mount %s: %s is mounted twice", o.mounts[k],
						m->mounts[k].guest);
		m->n_mounts = k + 1;
	}
	for (unsigned k = 0; !err && k < o.n_ports; k++) {
		err = parse_port(o.ports[k], &m->ports[k]);
		for (unsigned j = 0; !err && j < k; j++)
			if (m->ports[j].host == m->ports[k].host)
				err = cove_fail(-EINVAL, "--publish %s: host port %u is forwarded twice",
						o.ports[k], m->ports[k].host);
		m->n_ports = k + 1;
	}
	if (err)
		goto fail;

	err = find_image(&s, argv[i], o.quiet, &im, &added);
	if (err)
		goto fail;
	err = claim_name(m, o.name, im.name, &lock);
	if (err)
		goto fail;
	claimed = true;
	machine_path(m, "root.img", root, sizeof(root));
	err = image_unpack(&s, im.name, root, m->disk_size, o.quiet ? NULL : stderr, NULL);
	store_close(&s);
	if (!err)
		err = disk_check_init(root, im.name);
	snprintf(m->image, sizeof(m->image), "%s", im.name);
	snprintf(m->image_digest, sizeof(m->image_digest), "%s", im.digest);
	m->created = time(NULL);
	if (!err)
		err = random_id(m->machine_id);
	/* on the bridge, its address is handed out as machine.json is written */
	if (!err)
		err = bridge ? bridge_claim(m) : machine_save(m);
	if (err) {
		fsutil_rmtree(m->dir);
		goto fail;
	}
	/* the machine exists from here on */
	added = claimed = false;
	err = o.set_default ? machine_default_set(m->name) : machine_default_claim(m->name);
	if (!err && !o.no_boot) {
		if (!o.quiet)
			fprintf(stderr, "Starting %s\n", m->name);
		err = machine_vmm_start(m, &cfg, &pid);
		if (err)
			cove_fail(err, "machine %s was created, but it did not start: %s", m->name,
				  cove_last_error());
	}
	machine_unlock(lock);
	if (!err)
		printf("%s\n", m->name);
	free(m);
	return err ? cli_fail() : 0;
fail:
	store_close(&s);
	/* undo what this create made; the error to show is the first one */
	snprintf(msg, sizeof(msg), "%s", cove_last_error());
	if (added)
		drop_image(im.name);
	if (claimed)
		fsutil_rmtree(m->run);
	machine_unlock(lock);
	free(m);
	cove_fail(-EINVAL, "%s", msg);
	return cli_fail();
}

static const struct option opts_help[] = {
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static const struct option opts_time[] = {
	{ "time", required_argument, NULL, 't' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* Resolve the optional NAME operand (argv[i]) and take its lock. 0, or
 * 1 after an error line. */
static int open_locked(const char *cmd, int argc, char **argv, int i, struct machine *m, int *lock)
{
	if (argc - i > 1)
		return usage_error(cmd, "%s takes at most one NAME", cmd);
	if (machine_resolve(argc - i == 1 ? argv[i] : NULL, m))
		return cli_fail();
	*lock = machine_lock(m, true);
	return *lock < 0 ? cli_fail() : 0;
}

static int start(struct machine *m)
{
	struct config cfg;
	pid_t pid;

	if (config_load(&cfg) || machine_vmm_start(m, &cfg, &pid))
		return cli_fail();
	printf("%s\n", m->name);
	return 0;
}

static int cmd_start(int argc, char **argv)
{
	struct machine *m = new_machine();
	struct opts o;
	int rc, lock = -1, i = parse(&o, "start", argc, argv, usage_start, opts_help, "h");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (open_locked("start", argc, argv, i, m, &lock)) {
		free(m);
		return 1;
	}
	if (machine_vmm_pid(m, true)) {
		fprintf(stderr, "cove: machine %s is already running\n", m->name);
		printf("%s\n", m->name);
		rc = 0;
	} else {
		rc = start(m);
	}
	machine_unlock(lock);
	free(m);
	return rc;
}

/* Stop m if it runs (lock held), and take its tap and name off the
 * bridge (also those left by a monitor that ended on its own). 0 or 1
 * after an error line. */
static int stop(struct machine *m, long timeout_s, bool quiet_if_stopped)
{
	pid_t pid = machine_vmm_pid(m, true);
	bool forced;

	if (!pid) {
		bridge_down(m);
		if (!quiet_if_stopped)
			fprintf(stderr, "cove: machine %s is not running\n", m->name);
		return 0;
	}
	if (machine_vmm_stop(m, pid, timeout_s, false, &forced))
		return cli_fail();
	bridge_down(m);
	if (forced)
		fprintf(stderr, "cove: machine %s did not power off within %lds: stopped by force\n",
			m->name, timeout_s);
	return 0;
}

static int cmd_stop(int argc, char **argv)
{
	struct machine *m = new_machine();
	struct opts o;
	int rc, lock = -1, i = parse(&o, "stop", argc, argv, usage_stop, opts_time, "t:h");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (open_locked("stop", argc, argv, i, m, &lock)) {
		free(m);
		return 1;
	}
	rc = stop(m, o.time, false);
	if (!rc)
		printf("%s\n", m->name);
	machine_unlock(lock);
	free(m);
	return rc;
}

static int cmd_restart(int argc, char **argv)
{
	struct machine *m = new_machine();
	struct opts o;
	int rc, lock = -1, i = parse(&o, "restart", argc, argv, usage_restart, opts_time, "t:h");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (open_locked("restart", argc, argv, i, m, &lock)) {
		free(m);
		return 1;
	}
	rc = stop(m, o.time, true);
	if (!rc)
		rc = start(m);
	machine_unlock(lock);
	free(m);
	return rc;
}

/* m, running: started first when it is not. 0 or 1 after an error line. */
static int ensure_running(struct machine *m)
{
	struct config cfg;
	pid_t pid;
	int lock = machine_lock(m, true), err;

	if (lock < 0)
		return cli_fail();
	err = machine_vmm_pid(m, true) ? 0 : config_load(&cfg) ?: machine_vmm_start(m, &cfg, &pid);
	machine_unlock(lock);
	return err ? cli_fail() : 0;
}

static const struct option opts_run[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "detach", no_argument, NULL, 'd' },
	{ "root", no_argument, NULL, OPT_ROOT },
	{ "user", required_argument, NULL, 'u' },
	{ "env", required_argument, NULL, 'e' },
	{ "env-file", required_argument, NULL, OPT_ENV_FILE },
	{ "workdir", required_argument, NULL, 'w' },
	{ "tty", no_argument, NULL, 't' },
	{ "interactive", no_argument, NULL, 'i' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* The guest side of run -d: the command in a session of its own, its pid
 * printed. */
static const char detach_script[] =
	"setsid \"$@\" </dev/null >/dev/null 2>&1 & echo $!";

static int cmd_run(int argc, char **argv)
{
	struct machine *m = new_machine();
	char cwd[PATH_MAX], real_home[PATH_MAX], guest_cwd[PATH_MAX];
	struct agent_exec x = { 0 };
	struct machine_user u;
	char **cmd = NULL;
	struct opts o;
	int fd, err, status = 1, i = parse(&o, "run", argc, argv, usage_run, opts_run,
					   "+n:du:e:w:tih");

	if (i < 0 || !m) {
		machine_env_free(&o.env);
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (o.root && o.user) {
		err = usage_error("run", "--root and --user exclude each other");
		goto out;
	}
	if (o.detach && (i == argc || o.tty || o.interactive)) {
		err = usage_error("run", "--detach needs a COMMAND, and no --tty or --interactive");
		goto out;
	}
	err = 1;
	if (machine_user(&u) || (o.user && machine_exec_user(o.user, &x)) ||
	    machine_resolve(o.name, m)) {
		cli_fail();
		goto out;
	}
	if (o.root) {
		x.user = "root";
	} else if (!o.user) {
		x.user = u.name;
		x.uid = u.uid;
		x.gid = u.gid;
	}
	if (o.workdir)
		x.cwd = o.workdir;
	else if (getcwd(cwd, sizeof(cwd)))
		x.cwd = machine_exec_cwd(m, u.home, realpath(u.home, real_home) ? real_home : u.home,
					 cwd, guest_cwd, sizeof(guest_cwd));
	x.env = o.env.v;
	if (i < argc) {
		if (o.detach) {
			cmd = calloc(argc - i + 4, sizeof(*cmd));
			if (!cmd) {
				cove_fail(-ENOMEM, "out of memory");
				cli_fail();
				goto out;
			}
			cmd[0] = "/bin/sh";
			cmd[1] = "-c";
			cmd[2] = (char *)detach_script;
			cmd[3] = "cove-run";
			memcpy(cmd + 4, argv + i, (argc - i) * sizeof(*cmd));
			x.argv = cmd;
		} else {
			x.argv = argv + i;
		}
	}
	x.tty = o.tty || (i == argc && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO));
	x.stdin = !o.detach && (o.interactive || i == argc || !isatty(STDIN_FILENO));
	if (ensure_running(m))
		goto out;
	fd = machine_exec_connect(m, MACHINE_AGENT_TIMEOUT_MS);
	if (fd < 0) {
		cli_fail();
		goto out;
	}
	err = agent_exec(fd, &x, STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO, &status);
	if (!err) {
		err = status;
	} else if (err == -ENOENT || err == -EACCES || err == -ENOEXEC) {
		/* the agent said why on stderr; the shell's numbers */
		err = err == -ENOENT ? 127 : 126;
	} else if (err == -ECONNRESET || err == -EPROTO || err == -EINTR || err == -E2BIG ||
		   err == -EINVAL) {
		cove_fail(err, "machine %s: %s", m->name,
			  err == -ECONNRESET ? "the agent went away (did the machine stop?)" :
			  err == -EPROTO ? "the agent sent something malformed" :
			  err == -EINTR ? "interrupted" : "the command is too large to send");
		err = cli_fail();
	} else {
		err = 1;	/* a refusal: the agent's message is on stderr */
	}
out:
	free(cmd);
	machine_env_free(&o.env);
	free(m);
	return err;
}

/* "NAME:PATH" into the machine's name and the path; false for a host path
 * (no ":", or a "/" before it). */
static bool machine_path_arg(const char *arg, char name[MACHINE_NAME_MAX + 1], const char **path)
{
	const char *colon = strchr(arg, ':');

	if (!colon || memchr(arg, '/', colon - arg) || colon == arg ||
	    (size_t)(colon - arg) > MACHINE_NAME_MAX)
		return false;
	snprintf(name, MACHINE_NAME_MAX + 1, "%.*s", (int)(colon - arg), arg);
	*path = colon + 1;
	return true;
}

static int cmd_cp(int argc, char **argv)
{
	struct machine *m = new_machine();
	char src_name[MACHINE_NAME_MAX + 1], dst_name[MACHINE_NAME_MAX + 1];
	const char *src_path, *dst_path;
	struct machine_user u;
	bool from, to;
	struct opts o;
	int err, i = parse(&o, "cp", argc, argv, usage_cp, opts_help, "h");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (argc - i != 2) {
		free(m);
		return usage_error("cp", "cp needs a SRC and a DST");
	}
	from = machine_path_arg(argv[i], src_name, &src_path);
	to = machine_path_arg(argv[i + 1], dst_name, &dst_path);
	if (from == to) {
		free(m);
		return usage_error("cp", "one of SRC and DST must be NAME:PATH, the other a host "
				   "path");
	}
	if (machine_user(&u) || machine_load(from ? src_name : dst_name, m) || ensure_running(m)) {
		free(m);
		return cli_fail();
	}
	err = from ? machine_exec_copy_out(m, u.home, src_path, argv[i + 1]) :
		     machine_exec_copy_in(m, u.home, argv[i], dst_path);
	free(m);
	return err ? cli_fail() : 0;
}

/* State without the lock (for ls and inspect): stale files are cleaned
 * only when no other command holds the machine. */
static pid_t peek_pid(const struct machine *m)
{
	int lock = machine_lock(m, false);
	pid_t pid = machine_vmm_pid(m, lock >= 0);

	machine_unlock(lock);
	cove_clear_error();
	return pid;
}

/* The settings every listing shows, as JSON: ip is the guest's address
 * while it runs. */
static json_t *summary(const struct machine *m, pid_t pid, bool is_default)
{
	char created[32], mem[32], disk[32], ip[16];
	bool bridge;

	iso_time(m->created, created, sizeof(created));
	if (!pid || machine_vmm_net(m, ip, &bridge))
		ip[0] = '\0';
	return json_pack("{s:s,s:s,s:s,s:s?,s:i,s:s,s:I,s:s,s:I,s:s,s:b}",
			 "name", m->name, "image", m->image, "created", created,
			 "ip", ip[0] ? ip : NULL, "cpus", (int)m->cpus,
			 "memory", size_mib(m->memory, mem, sizeof(mem)),
			 "memoryMiB", (json_int_t)(m->memory >> 20),
			 "diskSize", size_mib(m->disk_size, disk, sizeof(disk)),
			 "diskSizeMiB", (json_int_t)(m->disk_size >> 20),
			 "state", pid ? "running" : "stopped", "default", is_default);
}

static const struct option opts_ls[] = {
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int cmd_ls(int argc, char **argv)
{
	char (*names)[MACHINE_NAME_MAX + 1], def[MACHINE_NAME_MAX + 1];
	enum render_format fmt = RENDER_TABLE;
	struct machine *m = new_machine();
	json_t *list;
	struct opts o;
	size_t n;
	int rc = 0, i = parse(&o, "ls", argc, argv, usage_ls, opts_ls, "qh");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (i != argc) {
		free(m);
		return usage_error("ls", "ls takes no arguments, got \"%s\"", argv[i]);
	}
	if (o.format && render_parse(o.format, 1 << RENDER_TABLE | 1 << RENDER_JSON |
				     1 << RENDER_YAML | 1 << RENDER_TOML, &fmt)) {
		free(m);
		return usage_error("ls", "%s", cove_last_error());
	}
	if (machine_list(&names, &n) || machine_default_get(def)) {
		free(m);
		return cli_fail();
	}
	list = json_array();
	if (fmt == RENDER_TABLE && !o.quiet)
		printf("%-24s %-22s %-15s %-4s %-6s %-6s %-8s %s\n", "NAME", "CREATED", "IP", "CPUS",
		       "MEMORY", "DISK", "STATE", "DEFAULT");
	for (size_t k = 0; k < n; k++) {
		char when[48];
		json_t *row;
		pid_t pid;

		if (machine_load(names[k], m)) {
			/* a machine.json that cannot be read: say so, list the rest */
			rc = cli_fail();
			continue;
		}
		pid = peek_pid(m);
		row = summary(m, pid, !strcmp(def, m->name));
		if (o.quiet) {
			printf("%s\n", m->name);
		} else if (fmt == RENDER_TABLE) {
			const char *ip = json_string_value(json_object_get(row, "ip"));

			printf("%-24s %-22s %-15s %-4u %-6s %-6s %-8s %s\n", m->name,
			       human_ago(m->created, when, sizeof(when)), ip ? ip : "-", m->cpus,
			       json_string_value(json_object_get(row, "memory")),
			       json_string_value(json_object_get(row, "diskSize")),
			       pid ? "running" : "stopped", strcmp(def, m->name) ? "" : "*");
		}
		json_array_append_new(list, row);
	}
	if (!o.quiet && fmt != RENDER_TABLE) {
		if (fmt == RENDER_TOML) {
			json_t *top = json_pack("{s:O}", "machines", list);

			render_print(stdout, top, fmt);
			json_decref(top);
		} else {
			render_print(stdout, list, fmt);
		}
	}
	json_decref(list);
	free(names);
	free(m);
	return rc;
}

static const struct option opts_format[] = {
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int cmd_inspect(int argc, char **argv)
{
	char def[MACHINE_NAME_MAX + 1], path[PATH_MAX], kernel[PATH_MAX], addr[16];
	enum render_format fmt = RENDER_JSON;
	struct machine *m = new_machine();
	struct machine_user u;
	json_t *j, *mounts, *ports, *paths, *status = NULL;
	struct config cfg;
	struct stat st;
	struct opts o;
	bool bridge;
	pid_t pid;
	int i = parse(&o, "inspect", argc, argv, usage_inspect, opts_format, "h");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (o.format && render_parse(o.format, 1 << RENDER_JSON | 1 << RENDER_YAML |
				     1 << RENDER_TOML, &fmt)) {
		free(m);
		return usage_error("inspect", "%s", cove_last_error());
	}
	if (argc - i > 1) {
		free(m);
		return usage_error("inspect", "inspect takes at most one NAME");
	}
	if (machine_resolve(argc - i == 1 ? argv[i] : NULL, m) || machine_default_get(def) ||
	    machine_user(&u) || config_load(&cfg)) {
		free(m);
		return cli_fail();
	}
	pid = peek_pid(m);
	if (pid && machine_vmm_api(m, "{\"op\":\"status\"}", &status))
		cove_clear_error();
	j = summary(m, pid, !strcmp(def, m->name));
	json_object_set_new(j, "imageDigest", json_string(m->image_digest));
	json_object_set_new(j, "pid", pid ? json_integer(pid) : json_null());
	json_object_set_new(j, "uptimeMs", json_incref(json_object_get(status, "uptime_ms")) ?:
			    json_null());
	machine_path(m, "root.img", path, sizeof(path));
	if (!stat(path, &st))
		json_object_set_new(j, "diskUsedBytes", json_integer((json_int_t)st.st_blocks * 512));
	json_object_set_new(j, "homeMount", json_string(config_home_name(m->home)));
	json_object_set_new(j, "home", m->home == CONFIG_HOME_NONE ? json_null() :
			    json_string(u.home));
	mounts = json_array();
	for (unsigned k = 0; k < m->n_mounts; k++)
		json_array_append_new(mounts, json_pack("{s:s,s:s,s:b}", "host", m->mounts[k].host,
							"guest", m->mounts[k].guest, "readOnly",
							m->mounts[k].ro));
	json_object_set_new(j, "mounts", mounts);
	ports = json_array();
	for (unsigned k = 0; k < m->n_ports; k++)
		json_array_append_new(ports, json_pack("{s:i,s:i}", "host", m->ports[k].host,
						       "guest", m->ports[k].guest));
	json_object_set_new(j, "network", json_string(config_network_name(m->network)));
	json_object_set_new(j, "bridgeAddress", bridge_address(m, addr) ? json_null() :
			    json_string(addr));
	json_object_set_new(j, "dnsName", pid && !machine_vmm_net(m, addr, &bridge) && bridge ?
			    json_pack("s+", m->name, ".machine") : json_null());
	json_object_set_new(j, "ports", ports);
	json_object_set_new(j, "kernel", m->kernel[0] ? json_string(m->kernel) : json_null());
	if (!machine_vmm_kernel(m, &cfg, kernel, sizeof(kernel)))
		json_object_set_new(j, "kernelPath", json_string(kernel));
	cove_clear_error();
	json_object_set_new(j, "machineId", json_string(m->machine_id));
	paths = json_object();
	json_object_set_new(paths, "dir", json_string(m->dir));
	json_object_set_new(paths, "disk", json_string(path));
	machine_path(m, "console.log", path, sizeof(path));
	json_object_set_new(paths, "console", json_string(path));
	machine_path(m, "vmm.log", path, sizeof(path));
	json_object_set_new(paths, "vmmLog", json_string(path));
	machine_run_path(m, "api.sock", path, sizeof(path));
	json_object_set_new(paths, "apiSocket", json_string(path));
	machine_run_path(m, "vsock.sock", path, sizeof(path));
	json_object_set_new(paths, "vsockSocket", json_string(path));
	json_object_set_new(j, "paths", paths);
	render_print(stdout, j, fmt);
	json_decref(j);
	json_decref(status);
	free(m);
	return 0;
}

static const struct option opts_name[] = {
	{ "name", required_argument, NULL, 'n' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

/* Apply one KEY=VALUE to m; the disk may only grow. */
static int set_one(struct machine *m, const char *kv)
{
	const char *eq = strchr(kv, '='), *v = eq ? eq + 1 : NULL;
	char key[32];
	uint64_t size;
	int err;

	if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof(key))
		return cove_fail(-EINVAL, "\"%s\": use KEY=VALUE (cpus, memory, disk-size, "
				 "home-mount, network, kernel)", kv);
	snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
	if (!strcmp(key, "cpus"))
		return config_parse_cpus("cpus", v, &m->cpus);
	if (!strcmp(key, "memory"))
		return config_parse_memory("memory", v, &m->memory);
	if (!strcmp(key, "home-mount"))
		return config_parse_home("home-mount", v, &m->home);
	if (!strcmp(key, "network")) {
		bool bridge;

		return config_parse_network("network", v, &m->network) ?:
		       bridge_choose(m->network, "network", &bridge);
	}
	if (!strcmp(key, "kernel")) {
		if (!v[0]) {
			m->kernel[0] = '\0';
			return 0;
		}
		return check_kernel("kernel", v, m->kernel, sizeof(m->kernel));
	}
	if (!strcmp(key, "disk-size")) {
		char now[32];

		err = config_parse_disk("disk-size", v, &size);
		if (err)
			return err;
		if (size < m->disk_size)
			return cove_fail(-EINVAL, "disk-size \"%s\": the disk can only grow (it is %s)",
					 v, size_mib(m->disk_size, now, sizeof(now)));
		m->disk_size = size;
		return 0;
	}
	return cove_fail(-EINVAL, "unknown setting \"%s\": use cpus, memory, disk-size, "
			 "home-mount, network or kernel", key);
}

static int cmd_set(int argc, char **argv)
{
	struct machine *m = new_machine(), *check = new_machine();
	char root[PATH_MAX];
	struct opts o;
	int lock = -1, err, i = parse(&o, "set", argc, argv, usage_set, opts_name, "+n:h");

	if (i < 0 || !m || !check) {
		free(m);
		free(check);
		return i < 0 ? done(i) : cli_fail();
	}
	if (i == argc) {
		free(m);
		free(check);
		return usage_error("set", "set needs at least one KEY=VALUE");
	}
	/* check every setting before taking the lock: nothing changes on a bad one */
	err = machine_resolve(o.name, check);
	for (int k = i; !err && k < argc; k++)
		err = set_one(check, argv[k]);
	if (!err) {
		lock = machine_lock(check, true);
		err = lock < 0 ? lock : 0;
	}
	/* under the lock, from the file as it is now */
	if (!err)
		err = machine_load(check->name, m);
	for (int k = i; !err && k < argc; k++)
		err = set_one(m, argv[k]);
	if (!err)
		err = machine_save(m);
	machine_path(m, "root.img", root, sizeof(root));
	if (!err)
		err = disk_grow(root, m->disk_size);
	if (!err && machine_vmm_pid(m, true))
		fprintf(stderr, "cove: machine %s is running: the new settings take effect at its "
			"next start (cove machine restart %s)\n", m->name, m->name);
	machine_unlock(lock);
	if (!err)
		printf("%s\n", m->name);
	free(m);
	free(check);
	return err ? cli_fail() : 0;
}

static int cmd_set_default(int argc, char **argv)
{
	struct machine *m = new_machine();
	struct opts o;
	int err, i = parse(&o, "set-default", argc, argv, usage_set_default, opts_help, "h");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (argc - i != 1) {
		free(m);
		return usage_error("set-default", "set-default needs exactly one NAME");
	}
	err = machine_load(argv[i], m) ?: machine_default_set(m->name);
	if (!err)
		printf("%s\n", m->name);
	free(m);
	return err ? cli_fail() : 0;
}

/* Copy fd's bytes from off to its end to stdout; the new offset. */
static off_t copy_out(int fd, off_t off)
{
	char buf[65536];
	ssize_t n;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		if (fwrite(buf, 1, n, stdout) != (size_t)n)
			break;
		off += n;
	}
	fflush(stdout);
	return off;
}

/* Where the last lines of fd begin. */
static off_t tail_start(int fd, long lines)
{
	char buf[65536];
	off_t end = lseek(fd, 0, SEEK_END), pos = end;
	long seen = 0;
	bool first = true;

	while (pos > 0) {
		off_t len = pos > (off_t)sizeof(buf) ? (off_t)sizeof(buf) : pos;
		ssize_t n = pread(fd, buf, len, pos - len);

		if (n <= 0)
			break;
		for (ssize_t k = n - 1; k >= 0; k--) {
			/* a final newline ends the last line; it does not start one */
			if (buf[k] == '\n' && !(first && pos - len + k == end - 1) && ++seen > lines)
				return pos - len + k + 1;
			first = false;
		}
		pos -= len;
	}
	return 0;
}

static const struct option opts_logs[] = {
	{ "boot", no_argument, NULL, OPT_BOOT },
	{ "follow", no_argument, NULL, 'f' },
	{ "tail", required_argument, NULL, 'n' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int cmd_logs(int argc, char **argv)
{
	struct machine *m = new_machine();
	char path[PATH_MAX];
	struct opts o;
	off_t off = 0;
	int fd, i = parse(&o, "logs", argc, argv, usage_logs, opts_logs, "fn:h");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (argc - i > 1) {
		free(m);
		return usage_error("logs", "logs takes at most one NAME");
	}
	if (machine_resolve(argc - i == 1 ? argv[i] : NULL, m)) {
		free(m);
		return cli_fail();
	}
	machine_path(m, o.boot ? "vmm.log" : "console.log", path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT) {
		cove_fail(-errno, "%s: %s", path, strerror(errno));
		free(m);
		return cli_fail();
	}
	if (fd >= 0 && o.lines >= 0)
		off = tail_start(fd, o.lines);
	if (fd >= 0)
		off = copy_out(fd, off);
	while (o.follow) {
		struct timespec ts = { 0, 200 * 1000000 };
		bool running = machine_vmm_pid(m, false);

		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			struct stat st;

			/* a new start empties the log: follow it from its start */
			if (!fstat(fd, &st) && st.st_size < off)
				off = 0;
			off = copy_out(fd, off);
		}
		if (!running)
			break;
		nanosleep(&ts, NULL);
	}
	if (fd >= 0)
		close(fd);
	free(m);
	return 0;
}

/* utime + stime of pid in clock ticks, and its RSS in bytes. */
static int proc_usage(pid_t pid, uint64_t *ticks, uint64_t *rss)
{
	char path[64], *buf, *p;
	unsigned long long ut, st;
	size_t len;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (fsutil_read(path, 4096, &buf, &len))
		return -ENOENT;
	/* after "pid (comm) ": state is field 3, utime 14, stime 15 */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2) {
		free(buf);
		return -EINVAL;
	}
	free(buf);
	*ticks = ut + st;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (fsutil_read(path, 65536, &buf, &len))
		return -ENOENT;
	p = strstr(buf, "\nVmRSS:");
	*rss = p ? strtoull(p + 7, NULL, 10) * 1024 : 0;
	free(buf);
	return 0;
}

static uint64_t json_u64(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

static int cmd_stats(int argc, char **argv)
{
	struct machine *m = new_machine();
	enum render_format fmt = RENDER_TABLE;
	uint64_t t0, t1, rss, g_total, g_avail, balloon, reported;
	struct timespec a, b;
	char path[PATH_MAX];
	json_t *bs = NULL, *guest, *j;
	struct stat st;
	struct opts o;
	double cpu;
	pid_t pid;
	int i = parse(&o, "stats", argc, argv, usage_stats, opts_format, "h");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (o.format && render_parse(o.format, 1 << RENDER_TABLE | 1 << RENDER_JSON |
				     1 << RENDER_YAML | 1 << RENDER_TOML, &fmt)) {
		free(m);
		return usage_error("stats", "%s", cove_last_error());
	}
	if (argc - i > 1) {
		free(m);
		return usage_error("stats", "stats takes at most one NAME");
	}
	if (machine_resolve(argc - i == 1 ? argv[i] : NULL, m)) {
		free(m);
		return cli_fail();
	}
	pid = peek_pid(m);
	if (!pid) {
		cove_fail(-ESRCH, "machine %s is not running", m->name);
		free(m);
		return cli_fail();
	}
	/* CPU over half a second, as top would */
	clock_gettime(CLOCK_MONOTONIC, &a);
	if (proc_usage(pid, &t0, &rss) || machine_vmm_api(m, "{\"op\":\"balloon_stats\"}", &bs)) {
		cove_fail(-ESRCH, "machine %s: cannot read its monitor's usage (did it just stop?)",
			  m->name);
		free(m);
		return cli_fail();
	}
	nanosleep(&(struct timespec){ 0, 500 * 1000000 }, NULL);
	clock_gettime(CLOCK_MONOTONIC, &b);
	if (proc_usage(pid, &t1, &rss))
		t1 = t0;
	cpu = 100.0 * (t1 - t0) / sysconf(_SC_CLK_TCK) /
	      ((b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
	guest = json_object_get(bs, "guest");
	g_total = json_u64(guest, "total_bytes");
	g_avail = json_u64(guest, "available_bytes");
	balloon = json_u64(bs, "actual_bytes");
	reported = json_u64(bs, "reported_bytes");
	machine_path(m, "root.img", path, sizeof(path));
	if (stat(path, &st))
		memset(&st, 0, sizeof(st));
	j = json_pack("{s:s,s:f,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "name", m->name,
		      "cpuPercent", cpu, "cpus", (json_int_t)m->cpus,
		      "hostRssBytes", (json_int_t)rss, "memoryBytes", (json_int_t)m->memory,
		      "guestTotalBytes", (json_int_t)g_total,
		      "guestAvailableBytes", (json_int_t)g_avail,
		      "balloonBytes", (json_int_t)balloon,
		      "diskUsedBytes", (json_int_t)st.st_blocks * 512,
		      "diskSizeBytes", (json_int_t)m->disk_size);
	json_object_set_new(j, "freePageReportedBytes", json_integer(reported));
	if (fmt == RENDER_TABLE) {
		char h1[32], h2[32], h3[32], h4[32], h5[32], h6[32];

		printf("%-24s %-7s %-19s %-19s %-9s %s\n", "NAME", "CPU %", "HOST MEM / LIMIT",
		       "GUEST USED / TOTAL", "BALLOON", "DISK USED / SIZE");
		snprintf(path, sizeof(path), "%s / %s", human_size(rss, h1, sizeof(h1)),
			 human_size(m->memory, h2, sizeof(h2)));
		printf("%-24s %-7.1f %-19s ", m->name, cpu, path);
		if (g_total)
			snprintf(path, sizeof(path), "%s / %s",
				 human_size(g_total - (g_avail < g_total ? g_avail : g_total), h3,
					    sizeof(h3)), human_size(g_total, h4, sizeof(h4)));
		else
			snprintf(path, sizeof(path), "-");
		printf("%-19s %-9s %s / %s\n", path, human_size(balloon, h5, sizeof(h5)),
		       human_size((uint64_t)st.st_blocks * 512, h6, sizeof(h6)),
		       human_size(m->disk_size, h1, sizeof(h1)));
	} else {
		render_print(stdout, j, fmt);
	}
	json_decref(j);
	json_decref(bs);
	free(m);
	return 0;
}

static const struct option opts_rm[] = {
	{ "force", no_argument, NULL, 'f' },
	{ "help", no_argument, NULL, 'h' },
	{ 0 },
};

static int cmd_rm(int argc, char **argv)
{
	struct machine *m = new_machine();
	struct opts o;
	int rc = 0, i = parse(&o, "rm", argc, argv, usage_rm, opts_rm, "fh");

	if (i < 0 || !m) {
		free(m);
		return i < 0 ? done(i) : cli_fail();
	}
	if (i == argc) {
		free(m);
		return usage_error("rm", "rm needs at least one NAME");
	}
	for (; i < argc; i++) {
		int lock, err;
		pid_t pid;

		if (machine_load(argv[i], m)) {
			rc = cli_fail();
			continue;
		}
		lock = machine_lock(m, true);
		if (lock < 0) {
			rc = cli_fail();
			continue;
		}
		pid = machine_vmm_pid(m, true);
		if (pid && !o.force)
			err = cove_fail(-EBUSY, "machine %s is running: stop it first, or use rm -f",
					m->name);
		else
			err = pid ? machine_vmm_stop(m, pid, 0, true, NULL) : 0;
		if (!err) {
			bridge_down(m);
			err = machine_remove(m);
		}
		machine_unlock(lock);
		if (err)
			rc = cli_fail();
		else
			printf("%s\n", m->name);
	}
	free(m);
	return rc;
}

int machine_cmd_main(int argc, char **argv)
{
	static const struct {
		const char *name, *alias, *alias2;
		int (*fn)(int argc, char **argv);
	} cmds[] = {
		{ "create", NULL, NULL, cmd_create },
		{ "start", NULL, NULL, cmd_start },
		{ "stop", NULL, NULL, cmd_stop },
		{ "restart", NULL, NULL, cmd_restart },
		{ "run", NULL, NULL, cmd_run },
		{ "cp", NULL, NULL, cmd_cp },
		{ "ls", "list", NULL, cmd_ls },
		{ "inspect", NULL, NULL, cmd_inspect },
		{ "set", NULL, NULL, cmd_set },
		{ "set-default", NULL, NULL, cmd_set_default },
		{ "logs", NULL, NULL, cmd_logs },
		{ "stats", NULL, NULL, cmd_stats },
		{ "rm", "delete", "remove", cmd_rm },
	};

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		fputs(usage_machine, argc < 2 ? stderr : stdout);
		return argc < 2;
	}
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name) ||
		    (cmds[i].alias && !strcmp(argv[1], cmds[i].alias)) ||
		    (cmds[i].alias2 && !strcmp(argv[1], cmds[i].alias2)))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "cove: unknown command \"machine %s\" (see 'cove machine --help')\n",
		argv[1]);
	return 1;
}
