/* cove-vmm: one microVM per process, a thin front end of libcove. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <termios.h>
#include <unistd.h>

#include "libcove.h"

#define DEFAULT_CMDLINE "console=ttyS0 reboot=k panic=-1"

static const char usage[] =
"Usage: cove-vmm --kernel PATH [options]\n"
"\n"
"Boot a Linux kernel in a KVM microVM. The process ends when the guest\n"
"powers off, reboots or panics (status 0, and a line saying which), or on\n"
"SIGINT/SIGTERM or the control API's stop (its shutdown asks the guest to\n"
"power off first); a monitor error exits with status 1.\n"
"\n"
"Options:\n"
"  --kernel PATH        bzImage, or uncompressed ELF vmlinux with a PVH entry note\n"
"  --initrd PATH        initial ramdisk\n"
"  --cmdline STRING     kernel command line (default: \"" DEFAULT_CMDLINE "\");\n"
"                       virtio_mmio.device= entries for the devices are appended\n"
"  --cpus N             virtual CPUs, 1-64 (default 1)\n"
"  --memory SIZE        guest memory: MiB as a bare number, or 512M, 2G (default 256)\n"
"  --disk PATH[,ro]     a virtio-blk disk backed by a file or block device;\n"
"                       repeat for more (up to 8); ,ro makes it read-only\n"
"  --net tap=IFNAME[,mac=MAC]\n"
"                       a virtio-net NIC on an existing tap interface (create it:\n"
"                       ip tuntap add dev IFNAME mode tap user $USER)\n"
"  --net user[,mac=MAC][,fwd=tcp:HOSTPORT:GUESTPORT]...\n"
"                       a virtio-net NIC on user-mode networking (no privileges):\n"
"                       DHCP gives 10.0.2.15, gateway 10.0.2.2 reaches the host's\n"
"                       loopback; fwd= forwards 127.0.0.1:HOSTPORT to the guest.\n"
"                       Repeat --net for more NICs (up to 4). Default MACs are\n"
"                       stable, derived from --name (or the tap name)\n"
"  --name NAME          the VM's name (default MAC addresses derive from it)\n"
"  --fs TAG=DIR[,ro][,cache=none|auto|always]\n"
"                       share host directory DIR with the guest over virtio-fs\n"
"                       (mount -t virtiofs TAG /mnt); repeat for more (up to 8);\n"
"                       ,ro refuses every change; cache: auto (default, 1 s),\n"
"                       none (host changes seen at once), always (long, writeback)\n"
"  --console MODE       stdio (default; Ctrl-A x quits), file:PATH, or none\n"
"  --no-acpi            no ACPI tables: the guest finds its CPUs in the MP table\n"
"                       and its devices on the command line (for kernels built\n"
"                       without ACPI; implied by acpi=off in --cmdline)\n"
"  --no-rng             no virtio-rng device (by default the guest gets one,\n"
"                       fed from the host's getrandom)\n"
"  --balloon            a virtio-balloon device: the control API's balloon op\n"
"                       sets its target; memory the guest frees goes back to\n"
"                       the host (free page reporting)\n"
"  --metrics FILE|-     write a JSON object of boot times, exit counts, peak RSS\n"
"                       and device counters at exit (- for stdout)\n"
"  --api SOCKET         serve the control API on a unix socket (mode 0600):\n"
"                       one JSON object per line, e.g. {\"op\":\"status\"}; ops\n"
"                       status, pause, resume, stop, metrics, balloon,\n"
"                       balloon_stats, shutdown (see README.md)\n"
"  --vsock cid=N,uds=PATH  a virtio-vsock device, guest CID N (3-4294967294);\n"
"                       guest connections to CID 2 port P go to the unix socket\n"
"                       PATH_P, host programs reach guest port P by connecting\n"
"                       to PATH and writing \"CONNECT P\\n\" (answer \"OK N\\n\")\n"
"  -h, --help           this text\n"
"  --version            print the version\n";

static struct termios saved_tty;
static bool tty_raw;

static void restore_tty(void)
{
	if (tty_raw) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tty);
		tty_raw = false;
	}
}

/* Even a crash must not leave the user's terminal raw. */
static void fatal_signal(int sig)
{
	if (tty_raw)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void make_tty_raw(void)
{
	static const int fatal[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGQUIT };
	struct termios raw;

	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		signal(fatal[i], fatal_signal);

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved_tty) < 0)
		return;
	raw = saved_tty;
	cfmakeraw(&raw);
	if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0) {
		tty_raw = true;
		atexit(restore_tty);
	}
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	restore_tty();
	fputs("cove-vmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static void parse_disk(struct cove_config *cfg, const char *arg)
{
	char *spec, *comma;

	if (cfg->ndisks == COVE_MAX_DISKS)
		die("--disk: at most %d disks", COVE_MAX_DISKS);
	spec = strdup(arg);
	if (!spec)
		die("out of memory");
	comma = strrchr(spec, ',');
	bool ro = false;
	if (comma) {
		if (strcmp(comma, ",ro") && strcmp(comma, ",rw"))
			die("--disk %s: unknown option '%s' (use PATH or PATH,ro)", arg, comma + 1);
		ro = !strcmp(comma, ",ro");
		*comma = '\0';
	}
	if (!*spec)
		die("--disk %s: no path", arg);
	cfg->disks[cfg->ndisks].path = spec;
	cfg->disks[cfg->ndisks].readonly = ro;
	cfg->ndisks++;
}

static void parse_net(struct cove_config *cfg, const char *arg)
{
	if (cfg->nnets == COVE_MAX_NETS)
		die("--net: at most %d network devices", COVE_MAX_NETS);
	if (cove_parse_net(arg, &cfg->nets[cfg->nnets]) < 0)
		die("--net %s: %s", arg, cove_last_error());
	cfg->nnets++;
}

static void parse_fs(struct cove_config *cfg, const char *arg)
{
	struct cove_share *sh;
	char *spec, *eq, *opt, *save = NULL;

	if (cfg->nshares == COVE_MAX_SHARES)
		die("--fs: at most %d shared directories", COVE_MAX_SHARES);
	spec = strdup(arg);
	if (!spec)
		die("out of memory");
	eq = strchr(spec, '=');
	if (!eq || eq == spec || !eq[1])
		die("--fs %s: use TAG=DIR[,ro][,cache=none|auto|always]", arg);
	*eq = '\0';
	sh = &cfg->shares[cfg->nshares];
	sh->tag = spec;
	sh->path = strtok_r(eq + 1, ",", &save);
	if (!sh->path)
		die("--fs %s: no directory", arg);
	while ((opt = strtok_r(NULL, ",", &save))) {
		if (!strcmp(opt, "ro"))
			sh->readonly = true;
		else if (!strcmp(opt, "rw"))
			sh->readonly = false;
		else if (!strcmp(opt, "cache=auto"))
			sh->cache = COVE_FS_CACHE_AUTO;
		else if (!strcmp(opt, "cache=none"))
			sh->cache = COVE_FS_CACHE_NONE;
		else if (!strcmp(opt, "cache=always"))
			sh->cache = COVE_FS_CACHE_ALWAYS;
		else
			die("--fs %s: unknown option '%s' (ro, cache=none|auto|always)", arg, opt);
	}
	if (strlen(sh->tag) > 36)
		die("--fs %s: the tag is longer than 36 bytes", arg);
	for (int i = 0; i < cfg->nshares; i++)
		if (!strcmp(cfg->shares[i].tag, sh->tag))
			die("--fs %s: tag '%s' used twice", arg, sh->tag);
	cfg->nshares++;
}

static void parse_console(struct cove_config *cfg, const char *arg)
{
	if (!strcmp(arg, "stdio"))
		cfg->console = COVE_CONSOLE_STDIO;
	else if (!strcmp(arg, "none"))
		cfg->console = COVE_CONSOLE_NONE;
	else if (!strncmp(arg, "file:", 5) && arg[5]) {
		cfg->console = COVE_CONSOLE_FILE;
		cfg->console_path = arg + 5;
	} else
		die("--console %s: use stdio, file:PATH or none", arg);
}

static void write_metrics(struct cove_vm *vm, const char *path)
{
	int fd = STDOUT_FILENO;

	if (strcmp(path, "-")) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "cove-vmm: metrics %s: %s\n", path, strerror(errno));
			return;
		}
	}
	if (cove_vm_write_metrics(vm, fd) < 0)
		fprintf(stderr, "cove-vmm: metrics %s: write failed\n", path);
	if (fd != STDOUT_FILENO)
		close(fd);
}

enum { OPT_KERNEL = 256, OPT_INITRD, OPT_CMDLINE, OPT_CPUS, OPT_MEMORY, OPT_DISK,
       OPT_CONSOLE, OPT_METRICS, OPT_NO_ACPI, OPT_VERSION, OPT_API, OPT_NET, OPT_NAME,
       OPT_VSOCK, OPT_NO_RNG, OPT_BALLOON, OPT_FS };

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "kernel", required_argument, NULL, OPT_KERNEL },
		{ "initrd", required_argument, NULL, OPT_INITRD },
		{ "cmdline", required_argument, NULL, OPT_CMDLINE },
		{ "cpus", required_argument, NULL, OPT_CPUS },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "disk", required_argument, NULL, OPT_DISK },
		{ "net", required_argument, NULL, OPT_NET },
		{ "name", required_argument, NULL, OPT_NAME },
		{ "fs", required_argument, NULL, OPT_FS },
		{ "console", required_argument, NULL, OPT_CONSOLE },
		{ "metrics", required_argument, NULL, OPT_METRICS },
		{ "no-acpi", no_argument, NULL, OPT_NO_ACPI },
		{ "no-rng", no_argument, NULL, OPT_NO_RNG },
		{ "balloon", no_argument, NULL, OPT_BALLOON },
		{ "api", required_argument, NULL, OPT_API },
		{ "vsock", required_argument, NULL, OPT_VSOCK },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ 0 },
	};
	struct cove_config cfg;
	struct cove_vm *vm;
	struct cove_exit ex;
	const char *metrics = NULL, *api = NULL;
	sigset_t sigs;
	long n;
	int c, sfd;

	cove_config_init(&cfg);
	cfg.cmdline = DEFAULT_CMDLINE;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case OPT_KERNEL:
			cfg.kernel = optarg;
			break;
		case OPT_INITRD:
			cfg.initrd = optarg;
			break;
		case OPT_CMDLINE:
			cfg.cmdline = optarg;
			break;
		case OPT_CPUS:
			if (parse_int(optarg, 1, 64, &n) < 0)
				die("--cpus %s: not a number from 1 to 64", optarg);
			cfg.cpus = n;
			break;
		case OPT_MEMORY: {
			int err = cove_parse_size(optarg, &cfg.memory);
			if (err == -ERANGE)
				die("--memory %s: too large", optarg);
			if (err < 0)
				die("--memory %s: not a size (MiB as a number, or with a suffix: 512M, 2G)", optarg);
			break;
		}
		case OPT_DISK:
			parse_disk(&cfg, optarg);
			break;
		case OPT_NET:
			parse_net(&cfg, optarg);
			break;
		case OPT_NAME:
			if (!*optarg)
				die("--name needs a value");
			cfg.name = optarg;
			break;
		case OPT_FS:
			parse_fs(&cfg, optarg);
			break;
		case OPT_CONSOLE:
			parse_console(&cfg, optarg);
			break;
		case OPT_METRICS:
			metrics = optarg;
			break;
		case OPT_NO_ACPI:
			cfg.no_acpi = true;
			break;
		case OPT_NO_RNG:
			cfg.no_rng = true;
			break;
		case OPT_BALLOON:
			cfg.balloon = true;
			break;
		case OPT_API:
			if (!*optarg)
				die("--api needs a socket path");
			api = optarg;
			break;
		case OPT_VSOCK:
			if (cfg.vsock.cid)
				die("--vsock: only one vsock device");
			if (cove_parse_vsock(optarg, &cfg.vsock) < 0)
				die("--vsock %s: %s", optarg, cove_last_error());
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		case OPT_VERSION:
			puts("cove-vmm " COVE_VERSION);
			return 0;
		case ':':
			die("%s needs a value (see --help)", argv[optind - 1]);
		default:
			die("unknown option '%s' (see --help)", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die("unexpected argument '%s' (see --help)", argv[optind]);
	if (!cfg.kernel)
		die("--kernel is required (see --help)");

	/* Signals arrive through a signalfd so that the stop is orderly; the
	 * vCPU and loop threads inherit the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);
	sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
	if (sfd < 0)
		die("signalfd: %s", strerror(errno));

	if (cove_vm_create(&cfg, &vm) < 0)
		die("%s", cove_last_error());
	if (api && cove_vm_serve_api(vm, api) < 0)
		die("%s", cove_last_error());
	if (cfg.console == COVE_CONSOLE_STDIO)
		make_tty_raw();
	if (cove_vm_start(vm) < 0)
		die("%s", cove_last_error());

	struct pollfd p[2] = {
		{ .fd = cove_vm_fd(vm), .events = POLLIN },
		{ .fd = sfd, .events = POLLIN },
	};
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (p[0].revents)
			break;
		if (p[1].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si))
				cove_vm_stop(vm);
		}
	}
	cove_vm_wait(vm, &ex);
	restore_tty();
	if (metrics)
		write_metrics(vm, metrics);
	cove_vm_destroy(vm);

	switch (ex.reason) {
	case COVE_EXIT_ERROR:
		fprintf(stderr, "cove-vmm: stopped by an error: %s\n", strerror(-ex.status));
		return 1;
	case COVE_EXIT_POWEROFF:
		fprintf(stderr, "cove-vmm: guest powered off\n");
		break;
	case COVE_EXIT_REBOOT:
		fprintf(stderr, "cove-vmm: guest rebooted\n");
		break;
	case COVE_EXIT_PANIC:
		fprintf(stderr, "cove-vmm: guest panicked\n");
		break;
	default:
		fprintf(stderr, "cove-vmm: stopped\n");
		break;
	}
	return 0;
}
