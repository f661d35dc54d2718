/* libcove: the public API, assembling a VM from its parts. */
#include "libcove.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "acpi_pm.h"
#include "api.h"
#include "boot_timer.h"
#include "cmdline.h"
#include "evloop.h"
#include "i8042.h"
#include "log.h"
#include "net_slirp.h"
#include "net_tap.h"
#include "serial_8250.h"
#include "vcpu.h"
#include "virtio_balloon.h"
#include "virtio_blk.h"
#include "virtio_dev.h"
#include "virtio_fs.h"
#include "virtio_mmio.h"
#include "virtio_net.h"
#include "virtio_vsock.h"
#include "virtio_rng.h"
#include "vm.h"

#define CMDLINE_MAX 4096
#define MIN_MEMORY (64ull << 20)

struct mapped_file {
	uint8_t *data;
	size_t len;
};

struct cove_vm {
	struct vm vm;
	struct vcpu vcpus[LAYOUT_MAX_CPUS];
	struct serial *serial;
	struct mapped_file kernel, initrd;
	int console_fd;			/* file console we opened, or -1 */
	bool started, joined;
	uint64_t started_ns;		/* monotonic, at cove_vm_start */
	struct api_server *api;		/* cove_vm_serve_api, or NULL */
	struct virtio_dev *balloon;	/* cove_config.balloon, or NULL */
	/* cove_vm_shutdown: the guest has ACPI (a power button); the
	 * deadline timer (watched by the loop) and the earliest deadline. */
	bool acpi;
	int shutdown_fd;
	struct evloop_watch shutdown_watch;
	pthread_mutex_t shutdown_lock;
	uint64_t shutdown_deadline_ns;	/* 0: none */
};

static uint64_t process_start_ns;

/* Boot times are measured from the process start; a constructor is the
 * earliest point we can see, after exec and dynamic linking. */
__attribute__((constructor)) static void record_process_start(void)
{
	process_start_ns = vm_now_ns();
}

void cove_config_init(struct cove_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->cpus = 1;
	cfg->memory = 256ull << 20;
	cfg->console = COVE_CONSOLE_STDIO;
}

const char *cove_exit_reason_name(enum cove_exit_reason r)
{
	switch (r) {
	case COVE_EXIT_NONE:
		return "running";
	case COVE_EXIT_POWEROFF:
		return "poweroff";
	case COVE_EXIT_REBOOT:
		return "reboot";
	case COVE_EXIT_PANIC:
		return "panic";
	case COVE_EXIT_STOPPED:
		return "stopped";
	case COVE_EXIT_ERROR:
		return "error";
	}
	return "unknown";
}

int cove_parse_vsock(const char *s, struct cove_vsock *out)
{
	struct cove_vsock v = { 0 };
	bool have_cid = false;
	const char *p = s;

	while (*p) {
		const char *end = strchrnul(p, ',');
		size_t len = end - p;

		if (len > 4 && !strncmp(p, "cid=", 4)) {
			char num[12];
			char *e;
			unsigned long long n;

			if (len - 4 >= sizeof(num) || p[4] < '0' || p[4] > '9')
				return cove_fail(-EINVAL, "cid must be a number from 3 to 4294967294");
			memcpy(num, p + 4, len - 4);
			num[len - 4] = '\0';
			errno = 0;
			n = strtoull(num, &e, 10);
			if (errno || *e || n < 3 || n >= 0xffffffffull)
				return cove_fail(-EINVAL, "cid must be a number from 3 to 4294967294");
			v.cid = n;
			have_cid = true;
		} else if (len >= 4 && !strncmp(p, "uds=", 4)) {
			if (len == 4)
				return cove_fail(-EINVAL, "uds needs a socket path");
			if (len - 4 > COVE_VSOCK_PATH_MAX)
				return cove_fail(-ENAMETOOLONG, "uds path too long (at most %d bytes, "
						 "so that PATH_PORT fits a unix socket address)",
						 COVE_VSOCK_PATH_MAX);
			memcpy(v.uds, p + 4, len - 4);
			v.uds[len - 4] = '\0';
		} else {
			return cove_fail(-EINVAL, "unknown option '%.*s' (use cid=N,uds=PATH)",
					 (int)len, p);
		}
		p = *end ? end + 1 : end;
	}
	if (!have_cid || !v.uds[0])
		return cove_fail(-EINVAL, "needs cid=N and uds=PATH");
	*out = v;
	return 0;
}

int cove_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		mult = 1ull << 20;	/* a bare number is MiB */
		break;
	case 'k': case 'K':
		mult = 1ull << 10;
		end++;
		break;
	case 'm': case 'M':
		mult = 1ull << 20;
		end++;
		break;
	case 'g': case 'G':
		mult = 1ull << 30;
		end++;
		break;
	case 't': case 'T':
		mult = 1ull << 40;
		end++;
		break;
	case 'b': case 'B':
		mult = 1;
		break;
	default:
		return -EINVAL;
	}
	if (mult > 1 && (!strcmp(end, "iB") || !strcmp(end, "ib")))
		end += 2;
	else if (!strcmp(end, "B") || !strcmp(end, "b"))
		end++;
	if (*end)
		return -EINVAL;
	if (v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	int n = -1;

	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &n) != 6 ||
	    n != 17 || s[n])
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[3 * i]) || !isxdigit((unsigned char)s[3 * i + 1]))
			return -EINVAL;
		mac[i] = v[i];
	}
	if (mac[0] & 1)			/* multicast */
		return -EINVAL;
	if (!(mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]))
		return -EINVAL;
	return 0;
}

static int parse_port(const char *s, const char *stop, uint16_t *out)
{
	unsigned v = 0;

	if (s == stop || stop - s > 5)
		return -EINVAL;
	for (const char *p = s; p < stop; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (*p - '0');
	}
	if (v < 1 || v > 65535)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "tcp:HOSTPORT:GUESTPORT" */
static int parse_fwd(const char *s, struct cove_net_fwd *f)
{
	const char *colon;

	if (strncmp(s, "tcp:", 4))
		return -EINVAL;
	s += 4;
	colon = strchr(s, ':');
	if (!colon || parse_port(s, colon, &f->host_port) < 0 ||
	    parse_port(colon + 1, colon + 1 + strlen(colon + 1), &f->guest_port) < 0)
		return -EINVAL;
	return 0;
}

int cove_parse_net(const char *spec, struct cove_net *out)
{
	char buf[256], *item, *rest = buf;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!spec || strlen(spec) >= sizeof(buf))
		return cove_fail(-EINVAL, "not a network spec (use tap=IFNAME or user)");
	strcpy(buf, spec);
	item = strsep(&rest, ",");
	if (!strncmp(item, "tap=", 4)) {
		out->backend = COVE_NET_TAP;
		if (!item[4] || strlen(item + 4) >= sizeof(out->ifname))
			return cove_fail(-EINVAL, "tap= needs an interface name of 1 to %zu bytes",
					 sizeof(out->ifname) - 1);
		strcpy(out->ifname, item + 4);
	} else if (!strcmp(item, "user")) {
		out->backend = COVE_NET_USER;
	} else {
		return cove_fail(-EINVAL, "unknown backend '%s' (use tap=IFNAME or user)", item);
	}
	while (!err && (item = strsep(&rest, ","))) {
		if (!strncmp(item, "mac=", 4)) {
			if (parse_mac(item + 4, out->mac) < 0)
				err = cove_fail(-EINVAL, "bad MAC '%s' (six hex bytes like 02:00:00:00:00:01, unicast, not all zero)",
						item + 4);
			out->has_mac = true;
		} else if (!strncmp(item, "fwd=", 4)) {
			if (out->backend != COVE_NET_USER)
				err = cove_fail(-EINVAL, "fwd= is only for the user backend");
			else if (out->nfwds == COVE_MAX_FWDS)
				err = cove_fail(-EINVAL, "at most %d forwards", COVE_MAX_FWDS);
			else if (parse_fwd(item + 4, &out->fwds[out->nfwds]) < 0)
				err = cove_fail(-EINVAL, "bad forward '%s' (use fwd=tcp:HOSTPORT:GUESTPORT, ports 1-65535)",
						item + 4);
			else
				out->nfwds++;
		} else {
			err = cove_fail(-EINVAL, "unknown option '%s' (use mac=MAC%s)", item,
					out->backend == COVE_NET_USER ? " or fwd=tcp:HOSTPORT:GUESTPORT" : "");
		}
	}
	return err;
}

static int map_file(const char *what, const char *path, struct mapped_file *f)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return cove_fail(-errno, "%s %s: %s", what, path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return cove_fail(-EINVAL, "%s %s: not a regular file", what, path);
	}
	if (st.st_size == 0) {
		close(fd);
		return cove_fail(-EINVAL, "%s %s: file is empty", what, path);
	}
	f->data = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (f->data == MAP_FAILED) {
		f->data = NULL;
		return cove_fail(-errno, "%s %s: mmap: %s", what, path, strerror(errno));
	}
	f->len = st.st_size;
	return 0;
}

static void unmap_file(struct mapped_file *f)
{
	if (f->data)
		munmap(f->data, f->len);
	f->data = NULL;
}

static int open_kvm(struct vm *vm)
{
	static const struct {
		int cap;
		const char *name;
	} caps[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
		{ KVM_CAP_IRQFD, "KVM_CAP_IRQFD" },
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
	};

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int err = errno;
		if (err == ENOENT)
			return cove_fail(-err, "/dev/kvm: %s (is the kvm module loaded? "
					 "modprobe kvm_intel or kvm_amd; in a VM, enable nested "
					 "virtualization)", strerror(err));
		if (err == EACCES || err == EPERM)
			return cove_fail(-err, "/dev/kvm: %s (are you in group kvm? "
					 "sudo usermod -aG kvm $USER, then log in again)", strerror(err));
		return cove_fail(-err, "/dev/kvm: %s", strerror(err));
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		return cove_fail(-EINVAL, "/dev/kvm: unsupported KVM API version");
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0)
			return cove_fail(-ENOTSUP, "/dev/kvm: the kernel lacks %s", caps[i].name);
	for (;;) {
		vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
		if (vm->vm_fd >= 0 || errno != EINTR)
			break;
	}
	if (vm->vm_fd < 0)
		return cove_fail(-errno, "KVM_CREATE_VM: %s", strerror(errno));
	return 0;
}

static int map_memory(struct vm *vm, uint64_t size)
{
	int err = gm_alloc(&vm->mem, size);

	if (err < 0)
		return cove_fail(err, "guest memory of %" PRIu64 " MiB: %s", size >> 20, strerror(-err));
	for (int i = 0; i < vm->mem.nregions; i++) {
		const struct gm_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region region = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uintptr_t)r->hva,
		};
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0)
			return cove_fail(-errno, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	}
	return 0;
}

static int check_config(const struct cove_config *cfg)
{
	if (!cfg->kernel)
		return cove_fail(-EINVAL, "no kernel given");
	if (cfg->cpus < 1 || cfg->cpus > LAYOUT_MAX_CPUS)
		return cove_fail(-EINVAL, "cpus must be between 1 and %d", LAYOUT_MAX_CPUS);
	if (cfg->memory < MIN_MEMORY)
		return cove_fail(-EINVAL, "memory must be at least %llu MiB", MIN_MEMORY >> 20);
	if (cfg->memory % 4096)
		return cove_fail(-EINVAL, "memory must be a multiple of 4 KiB");
	if (cfg->ndisks < 0 || cfg->ndisks > COVE_MAX_DISKS)
		return cove_fail(-EINVAL, "at most %d disks", COVE_MAX_DISKS);
	if (cfg->nnets < 0 || cfg->nnets > COVE_MAX_NETS)
		return cove_fail(-EINVAL, "at most %d network devices", COVE_MAX_NETS);
	if (cfg->nshares < 0 || cfg->nshares > COVE_MAX_SHARES)
		return cove_fail(-EINVAL, "at most %d shared directories", COVE_MAX_SHARES);
	for (int i = 0; i < cfg->nshares; i++) {
		if (!cfg->shares[i].tag || !cfg->shares[i].path)
			return cove_fail(-EINVAL, "share %d: no tag or directory", i);
		for (int j = 0; j < i; j++)
			if (!strcmp(cfg->shares[i].tag, cfg->shares[j].tag))
				return cove_fail(-EINVAL, "share %s: tag used twice", cfg->shares[i].tag);
	}
	if (cfg->console == COVE_CONSOLE_FILE && !cfg->console_path)
		return cove_fail(-EINVAL, "console file not given");
	if (cfg->vsock.cid && (cfg->vsock.cid < 3 || cfg->vsock.cid == 0xffffffffu ||
			       !cfg->vsock.uds[0] ||
			       strnlen(cfg->vsock.uds, sizeof(cfg->vsock.uds)) > COVE_VSOCK_PATH_MAX))
		return cove_fail(-EINVAL, "vsock: cid from 3 to 4294967294 and a socket path "
				 "of 1 to %d bytes needed", COVE_VSOCK_PATH_MAX);
	return 0;
}

static int setup_console(struct cove_vm *cv, const struct cove_config *cfg)
{
	int out_fd = -1, in_fd = -1;

	cv->console_fd = -1;
	switch (cfg->console) {
	case COVE_CONSOLE_STDIO:
		out_fd = STDOUT_FILENO;
		in_fd = STDIN_FILENO;
		break;
	case COVE_CONSOLE_FILE:
		cv->console_fd = open(cfg->console_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (cv->console_fd < 0)
			return cove_fail(-errno, "console %s: %s", cfg->console_path, strerror(errno));
		out_fd = cv->console_fd;
		break;
	case COVE_CONSOLE_NONE:
		break;
	}
	return serial_create(&cv->vm, out_fd, in_fd, &cv->serial);
}

static int load_guest(struct cove_vm *cv, const struct cove_config *cfg)
{
	struct vm *vm = &cv->vm;
	enum arch_kernel_format fmt;
	char cmdline[CMDLINE_MAX];
	int err;

	err = arch_kernel_probe(cv->kernel.data, cv->kernel.len, &fmt);
	if (err < 0)
		return err;
	/* Devices are described once: in the DSDT, or on the command line for
	 * kernels that do not read ACPI (twice, the second probe fails). */
	bool acpi = !cfg->no_acpi && !cmdline_has_word(cfg->cmdline, "acpi=off");
	cv->acpi = acpi;
	err = cmdline_build(cmdline, sizeof(cmdline), cfg->cmdline, vm->vdev_slots,
			    acpi ? 0 : vm->nvdevs);
	if (err < 0)
		return err;
	struct arch_load_args a = {
		.kernel = cv->kernel.data,
		.kernel_len = cv->kernel.len,
		.initrd = cv->initrd.data,
		.initrd_len = cv->initrd.len,
		.cmdline = cmdline,
		.ncpus = vm->ncpus,
		.devs = vm->vdev_slots,
		.ndevs = vm->nvdevs,
		.acpi = acpi,
	};
	return arch_load(&vm->mem, &a, &vm->boot);
}

/* NIC i: its backend, then the device. */
static int create_net(struct vm *vm, const struct cove_config *cfg, int i)
{
	const struct cove_net *n = &cfg->nets[i];
	struct net_backend *be;
	struct virtio_dev *d;
	uint8_t mac[6];
	int err;

	if (n->has_mac)
		memcpy(mac, n->mac, 6);
	else
		vnet_default_mac(cfg->name ? cfg->name :
				 n->backend == COVE_NET_TAP ? n->ifname : "user", i, mac);
	if (n->backend == COVE_NET_TAP)
		err = nettap_open(n->ifname, &be);
	else
		err = netslirp_open(n->fwds, n->nfwds, &be);
	if (err < 0)
		return err;
	return vnet_create(vm, be, mac, &d);
}

/* The guest did not power off in time after cove_vm_shutdown. Loop thread. */
static void shutdown_timer_fired(struct evloop_watch *w, uint32_t revents)
{
	struct cove_vm *cv = w->arg;
	uint64_t n;

	(void)revents;
	if (read(cv->shutdown_fd, &n, sizeof(n)) != sizeof(n))
		return;		/* re-armed meanwhile: not expired yet */
	log_msg("vm", "the guest did not power off in time: stopping it");
	vm_request_exit(&cv->vm, COVE_EXIT_STOPPED, 0);
}

static int shutdown_timer_create(struct cove_vm *cv)
{
	int err;

	cv->shutdown_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (cv->shutdown_fd < 0)
		return cove_fail(-errno, "timerfd_create: %s", strerror(errno));
	cv->shutdown_watch.fd = cv->shutdown_fd;
	cv->shutdown_watch.events = POLLIN;
	cv->shutdown_watch.cb = shutdown_timer_fired;
	cv->shutdown_watch.arg = cv;
	err = evloop_watch_start(cv->vm.loop, &cv->shutdown_watch);
	if (err < 0)
		return cove_fail(err, "shutdown timer: %s", strerror(-err));
	return 0;
}

int cove_vm_create(const struct cove_config *cfg, struct cove_vm **out)
{
	struct cove_vm *cv;
	struct vm *vm;
	int err;

	cove_clear_error();
	err = check_config(cfg);
	if (err < 0)
		return err;
	cv = calloc(1, sizeof(*cv));
	if (!cv)
		return cove_fail(-ENOMEM, "out of memory");
	err = vm_pause_init(&cv->vm);
	if (err < 0) {
		free(cv);
		return err;
	}
	vm = &cv->vm;
	vm->kvm_fd = vm->vm_fd = vm->done_fd = cv->console_fd = cv->shutdown_fd = -1;
	pthread_mutex_init(&cv->shutdown_lock, NULL);
	vm->start_ns = process_start_ns;
	vm->times.process_start_to_create = vm_now_ns() - process_start_ns;
	vm->ncpus = cfg->cpus;
	vm->vcpus = cv->vcpus;
	for (int i = 0; i < LAYOUT_MAX_CPUS; i++)
		cv->vcpus[i].fd = -1;

	/* Cheap checks of the user's files first, before any KVM work. */
	err = map_file("kernel", cfg->kernel, &cv->kernel);
	if (err < 0)
		goto fail;
	if (cfg->initrd) {
		err = map_file("initrd", cfg->initrd, &cv->initrd);
		if (err < 0)
			goto fail;
		if (cv->initrd.len >= cfg->memory) {
			err = cove_fail(-E2BIG, "initrd %s (%zu MiB) is larger than guest memory (%" PRIu64 " MiB)",
					cfg->initrd, cv->initrd.len >> 20, cfg->memory >> 20);
			goto fail;
		}
	}
	vm->done_fd = eventfd(0, EFD_CLOEXEC);
	if (vm->done_fd < 0) {
		err = cove_fail(-errno, "eventfd: %s", strerror(errno));
		goto fail;
	}
	err = vcpu_init_signals();
	if (err < 0)
		goto fail;
	err = open_kvm(vm);
	if (err < 0)
		goto fail;
	err = arch_vm_init(vm->kvm_fd, vm->vm_fd);
	if (err < 0)
		goto fail;
	err = map_memory(vm, cfg->memory);
	if (err < 0)
		goto fail;
	err = evloop_create(&vm->loop);
	if (err < 0)
		goto fail;

	err = setup_console(cv, cfg);
	if (err < 0)
		goto fail;
	err = i8042_create(vm);
	if (err < 0)
		goto fail;
	err = boot_timer_create(vm);
	if (err < 0)
		goto fail;
	err = acpi_pm_create(vm);
	if (err < 0)
		goto fail;
	for (int i = 0; i < cfg->ndisks; i++) {
		struct virtio_dev *d;
		err = vblk_create(vm, cfg->disks[i].path, cfg->disks[i].readonly, &d);
		if (err < 0)
			goto fail;
	}
	if (cfg->vsock.cid) {
		struct virtio_dev *d;
		err = vsock_create(vm, cfg->vsock.cid, cfg->vsock.uds, &d);
		if (err < 0)
			goto fail;
	}
	if (!cfg->no_rng) {
		struct virtio_dev *d;
		err = vrng_create(vm, &d);
		if (err < 0)
			goto fail;
	}
	if (cfg->balloon) {
		err = vballoon_create(vm, &cv->balloon);
		if (err < 0)
			goto fail;
	}
	for (int i = 0; i < cfg->nshares; i++) {
		static const enum fuse_cache cache[] = {
			[COVE_FS_CACHE_AUTO] = FUSE_CACHE_AUTO,
			[COVE_FS_CACHE_NONE] = FUSE_CACHE_NONE,
			[COVE_FS_CACHE_ALWAYS] = FUSE_CACHE_ALWAYS,
		};
		const struct cove_share *sh = &cfg->shares[i];
		struct virtio_dev *d;
		if ((unsigned)sh->cache > COVE_FS_CACHE_ALWAYS) {
			err = cove_fail(-EINVAL, "share %s: unknown cache mode", sh->tag);
			goto fail;
		}
		err = vfs_create(vm, sh->tag, sh->path, sh->readonly, cache[sh->cache], &d);
		if (err < 0)
			goto fail;
	}

	for (int i = 0; i < cfg->nnets; i++) {
		err = create_net(vm, cfg, i);
		if (err < 0)
			goto fail;
	}

	err = load_guest(cv, cfg);
	if (err < 0)
		goto fail;
	if (cv->acpi) {
		err = shutdown_timer_create(cv);
		if (err < 0)
			goto fail;
	}
	/* Loaded into guest memory: the file pages need not stay resident. */
	unmap_file(&cv->kernel);
	unmap_file(&cv->initrd);
	for (int i = 0; i < vm->ncpus; i++) {
		err = vcpu_create(vm, &cv->vcpus[i], i);
		if (err < 0)
			goto fail;
	}
	*out = cv;
	return 0;

fail:
	{
		/* Keep the first failure's message across the cleanup. */
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", cove_last_error());
		cove_vm_destroy(cv);
		return cove_fail(err, "%s", msg[0] ? msg : strerror(-err));
	}
}

int cove_vm_shutdown(struct cove_vm *cv, unsigned timeout_ms)
{
	uint64_t deadline = vm_now_ns() + (uint64_t)timeout_ms * 1000000;
	int err = 0;

	if (!cv->started)
		return cove_fail(-EINVAL, "VM not started");
	if (!cv->acpi)
		return cove_fail(-ENOTSUP, "no ACPI: cannot ask the guest; use stop");
	if (__atomic_load_n(&cv->vm.exit_reason, __ATOMIC_ACQUIRE))
		return cove_fail(-ESRCH, "the VM has ended");
	pthread_mutex_lock(&cv->shutdown_lock);
	if (!cv->shutdown_deadline_ns || deadline < cv->shutdown_deadline_ns) {
		struct itimerspec its = {
			.it_value = {
				.tv_sec = (time_t)(deadline / 1000000000),
				.tv_nsec = (long)(deadline % 1000000000),
			},
		};
		cv->shutdown_deadline_ns = deadline;
		/* 0 would disarm: a zero timeout expires at once anyway. */
		if (timerfd_settime(cv->shutdown_fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
			err = cove_fail(-errno, "timerfd_settime: %s", strerror(errno));
	}
	pthread_mutex_unlock(&cv->shutdown_lock);
	if (err == 0)
		err = acpi_pm_power_button(&cv->vm);
	return err;
}

static void loop_failed(void *arg, int err)
{
	vm_request_exit(arg, COVE_EXIT_ERROR, err);
}

int cove_vm_start(struct cove_vm *cv)
{
	struct vm *vm = &cv->vm;
	int err;

	if (cv->started)
		return cove_fail(-EALREADY, "VM already started");
	cv->started_ns = vm_now_ns();
	err = evloop_start(vm->loop, loop_failed, vm);
	if (err < 0)
		return err;
	cv->started = true;
	for (int i = 0; i < vm->ncpus; i++) {
		err = vcpu_start(&cv->vcpus[i]);
		if (err < 0) {
			vm_request_exit(vm, COVE_EXIT_ERROR, err);
			return err;
		}
	}
	return 0;
}

int cove_vm_fd(const struct cove_vm *cv)
{
	return cv->vm.done_fd;
}

static void join_all(struct cove_vm *cv)
{
	if (!cv->started || cv->joined)
		return;
	for (int i = 0; i < cv->vm.ncpus; i++)
		if (cv->vcpus[i].started) {
			pthread_join(cv->vcpus[i].thread, NULL);
			cv->vcpus[i].started = false;
		}
	evloop_join(cv->vm.loop);
	cv->joined = true;
}

int cove_vm_wait(struct cove_vm *cv, struct cove_exit *ex)
{
	struct pollfd p = { .fd = cv->vm.done_fd, .events = POLLIN };

	if (!cv->started)
		return cove_fail(-EINVAL, "VM not started");
	while (!__atomic_load_n(&cv->vm.exit_reason, __ATOMIC_ACQUIRE))
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return cove_fail(-errno, "poll: %s", strerror(errno));
	join_all(cv);
	if (ex) {
		ex->reason = cv->vm.exit_reason;
		ex->status = cv->vm.exit_status;
	}
	return 0;
}

void cove_vm_stop(struct cove_vm *cv)
{
	vm_request_exit(&cv->vm, COVE_EXIT_STOPPED, 0);
}

void cove_vm_times(const struct cove_vm *cv, struct cove_boot_times *t)
{
	*t = cv->vm.times;
}

static void json_time(FILE *f, const char *key, uint64_t ns)
{
	if (ns)
		fprintf(f, "\"%s\":%.3f,", key, ns / 1e6);
	else
		fprintf(f, "\"%s\":null,", key);
}

/* The metrics object and a newline, malloc'd in *out. While the VM runs
 * the counters are read as they are (vCPUs update theirs unlocked). */
static int metrics_json(struct cove_vm *cv, char **out, size_t *out_len)
{
	struct vm *vm = &cv->vm;
	struct rusage ru;
	uint64_t exits[VCPU_EXIT_REASONS] = { 0 };
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return -ENOMEM;
	getrusage(RUSAGE_SELF, &ru);
	fprintf(f, "{\"exit_reason\":\"%s\",", cove_exit_reason_name(vm->exit_reason));
	json_time(f, "create_ms", vm->times.process_start_to_create);
	json_time(f, "first_kvm_run_ms", vm->times.first_kvm_run);
	json_time(f, "boot_timer_ms", vm->times.boot_timer);
	json_time(f, "exit_ms", vm->times.exit);
	fprintf(f, "\"cpus\":%d,\"memory_mib\":%" PRIu64 ",\"peak_rss_kib\":%ld,\"exits\":{",
		vm->ncpus, vm->mem.total >> 20, ru.ru_maxrss);
	for (int i = 0; i < vm->ncpus; i++)
		for (int r = 0; r < VCPU_EXIT_REASONS; r++)
			exits[r] += cv->vcpus[i].exits[r];
	const char *sep = "";
	for (int r = 0; r < VCPU_EXIT_REASONS; r++) {
		if (!exits[r])
			continue;
		const char *name = vcpu_exit_name(r);
		if (name)
			fprintf(f, "%s\"%s\":%" PRIu64, sep, name, exits[r]);
		else
			fprintf(f, "%s\"exit_%d\":%" PRIu64, sep, r, exits[r]);
		sep = ",";
	}
	fprintf(f, "},\"unhandled_mmio\":%" PRIu64 ",\"unhandled_pio\":%" PRIu64 ",\"devices\":{",
		vm->mmio.unhandled, vm->pio.unhandled);
	for (int i = 0; i < vm->nvdevs; i++) {
		const struct virtio_dev *d = vm->vdevs[i];
		fprintf(f, "%s\"%s\":{\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
			",\"guest_errors\":%" PRIu64, i ? "," : "", d->name,
			d->stats.requests, d->stats.errors, d->stats.guest_errors);
		if (d->ops->metrics)
			d->ops->metrics(vm->vdevs[i], f);
		fputc('}', f);
	}
	fprintf(f, "}}\n");
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	*out = buf;
	*out_len = len;
	return 0;
}

int cove_vm_write_metrics(struct cove_vm *cv, int fd)
{
	char *buf;
	size_t len;
	int err = metrics_json(cv, &buf, &len);

	if (err < 0)
		return err;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		off += n;
	}
	free(buf);
	return err;
}

int cove_vm_pause(struct cove_vm *cv)
{
	int err;

	if (!cv->started)
		return cove_fail(-EINVAL, "VM not started");
	err = vm_pause(&cv->vm, true);
	if (err == -ESRCH)
		return cove_fail(err, "the VM has ended");
	if (err == -ECANCELED)
		return cove_fail(err, "resumed before every vCPU was parked");
	return err;
}

int cove_vm_resume(struct cove_vm *cv)
{
	if (!cv->started)
		return cove_fail(-EINVAL, "VM not started");
	if (vm_resume(&cv->vm) < 0)
		return cove_fail(-ESRCH, "the VM has ended");
	return 0;
}

int cove_vm_balloon_set(struct cove_vm *cv, uint64_t target_bytes)
{
	if (!cv->balloon)
		return cove_fail(-ENODEV, "no balloon device (enable it with --balloon)");
	if (target_bytes > cv->vm.mem.total)
		return cove_fail(-EINVAL, "balloon target of %" PRIu64 " MiB exceeds guest memory (%"
				 PRIu64 " MiB)", target_bytes >> 20, cv->vm.mem.total >> 20);
	vballoon_set_target(cv->balloon, (uint32_t)(target_bytes >> 12));
	return 0;
}

struct balloon_stats_call {
	struct virtio_dev *d;
	struct cove_balloon_stats *out;
};

static void balloon_stats_on_loop(void *arg)
{
	struct balloon_stats_call *c = arg;

	vballoon_stats(c->d, c->out);
}

int cove_vm_balloon_stats(struct cove_vm *cv, struct cove_balloon_stats *out)
{
	struct balloon_stats_call c = { cv->balloon, out };

	if (!cv->balloon)
		return cove_fail(-ENODEV, "no balloon device (enable it with --balloon)");
	return evloop_call(cv->vm.loop, balloon_stats_on_loop, &c);
}

/* The control API's view of the VM; on the event-loop thread. */
static void api_status(void *arg, struct api_status *st)
{
	struct cove_vm *cv = arg;

	st->paused = vm_paused(&cv->vm);
	st->uptime_ns = vm_now_ns() - cv->started_ns;
	st->cpus = cv->vm.ncpus;
	st->memory = cv->vm.mem.total;
	st->boot_timer_ns = __atomic_load_n(&cv->vm.times.boot_timer, __ATOMIC_RELAXED);
}

static int api_pause(void *arg)
{
	/* Never wait here: a vCPU may be waiting for this thread. */
	return vm_pause(&((struct cove_vm *)arg)->vm, false);
}

static int api_resume(void *arg)
{
	return vm_resume(&((struct cove_vm *)arg)->vm);
}

static void api_stop(void *arg)
{
	cove_vm_stop(arg);
}

static int api_balloon(void *arg, uint64_t target)
{
	return cove_vm_balloon_set(arg, target);
}

static int api_balloon_stats(void *arg, struct cove_balloon_stats *st)
{
	return cove_vm_balloon_stats(arg, st);	/* inline: we are on the loop */
}

static int api_shutdown(void *arg, unsigned timeout_ms)
{
	return cove_vm_shutdown(arg, timeout_ms);
}

static int api_metrics(void *arg, char **json, size_t *len)
{
	return metrics_json(arg, json, len);
}

static const struct api_ops vm_api_ops = {
	.status = api_status,
	.pause = api_pause,
	.resume = api_resume,
	.stop = api_stop,
	.metrics = api_metrics,
	.balloon = api_balloon,
	.balloon_stats = api_balloon_stats,
	.shutdown = api_shutdown,
};

int cove_vm_serve_api(struct cove_vm *cv, const char *path)
{
	if (cv->started)
		return cove_fail(-EALREADY, "api socket %s: the VM has already started", path);
	if (cv->api)
		return cove_fail(-EALREADY, "api socket %s: the VM already serves one", path);
	return api_create(cv->vm.loop, path, &vm_api_ops, cv, &cv->api);
}

void cove_vm_destroy(struct cove_vm *cv)
{
	struct vm *vm;

	if (!cv)
		return;
	vm = &cv->vm;
	if (cv->started && !cv->joined) {
		vm_request_exit(vm, COVE_EXIT_STOPPED, 0);
		join_all(cv);
	}
	for (int i = 0; i < LAYOUT_MAX_CPUS; i++)
		if (cv->vcpus[i].fd >= 0)
			vcpu_destroy(&cv->vcpus[i]);
	for (int i = 0; i < vm->nvdevs; i++)
		virtio_mmio_detach(vm, vm->vdevs[i]);
	api_destroy(cv->api);
	if (cv->shutdown_fd >= 0)
		close(cv->shutdown_fd);
	pthread_mutex_destroy(&cv->shutdown_lock);
	serial_destroy(cv->serial);
	evloop_destroy(vm->loop);
	gm_free(&vm->mem);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	if (vm->done_fd >= 0)
		close(vm->done_fd);
	if (cv->console_fd >= 0)
		close(cv->console_fd);
	unmap_file(&cv->kernel);
	unmap_file(&cv->initrd);
	vm_pause_fini(vm);
	free(cv);
}
