#include "bridge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if_arp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fsutil.h"
#include "hostnet.h"
#include "log.h"

#define SUBNET_FIRST	64	/* 192.168.64.0/24 … */
#define SUBNET_LAST	127	/* … 192.168.127.0/24 */
#define SUBNET_FILE	".bridge"
#define TAP_FLAGS	(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)	/* as cove-vmm opens it */

bool bridge_allowed(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return d[CAP_TO_INDEX(CAP_NET_ADMIN)].effective & CAP_TO_MASK(CAP_NET_ADMIN);
}

int bridge_choose(enum config_network want, const char *what, bool *bridge)
{
	bool allowed = want != CONFIG_NET_USER && bridge_allowed();

	if (want == CONFIG_NET_BRIDGE && !allowed)
		return cove_fail(-EPERM, "%s bridge: needs root (or CAP_NET_ADMIN) to set up the "
				 "bridge " BRIDGE_NAME "; without, use user or auto (user-mode "
				 "networking)", what);
	*bridge = allowed;
	return 0;
}

void bridge_tap_name(const char *name, char out[IFNAMSIZ])
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	if (strlen(name) <= IFNAMSIZ - 1 - 3) {
		snprintf(out, IFNAMSIZ, "cv-%s", name);
		return;
	}
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 16777619u;
	snprintf(out, IFNAMSIZ, "cv-%.6s-%05x", name, (unsigned)(h & 0xfffff));
}

unsigned bridge_pick_host(const bool used[256])
{
	for (unsigned h = 2; h <= 254; h++)
		if (!used[h])
			return h;
	return 0;
}

static int ifr_ioctl(int s, unsigned long req, const char *name, struct ifreq *ifr)
{
	snprintf(ifr->ifr_name, IFNAMSIZ, "%s", name);
	return ioctl(s, req, ifr) < 0 ? -errno : 0;
}

static void ntoa(uint32_t a, char out[16])
{
	inet_ntop(AF_INET, &a, out, 16);
}

/* The /24 in the store's .bridge (network order), 0 when there is none. */
static uint32_t stored_subnet(const char *path)
{
	struct in_addr in;
	uint32_t net = 0;
	char *text;
	size_t len;

	if (!fsutil_read(path, 64, &text, &len)) {
		text[strcspn(text, "\n")] = '\0';
		len = strlen(text);
		if (len > 3 && !strcmp(text + len - 3, "/24")) {
			text[len - 3] = '\0';
			if (inet_pton(AF_INET, text, &in) == 1 && !(ntohl(in.s_addr) & 0xff))
				net = in.s_addr;
		}
		free(text);
	}
	cove_clear_error();
	return net;
}

/* The bridge's /24 (network order): cove0's own while it has an address;
 * else the store's .bridge unless the host routes it elsewhere now; else
 * the first /24 from 192.168.64.0 the host does not route. Kept in
 * .bridge, so it stays the same across reboots. */
static int choose_subnet(int s, uint32_t *net, bool *addressed)
{
	char path[PATH_MAX], *routes = NULL, a[16], line[32];
	struct ifreq ifr;
	uint32_t stored;
	size_t rlen = 0;
	int err = machine_store_path(SUBNET_FILE, path, sizeof(path));

	if (err)
		return err;
	memset(&ifr, 0, sizeof(ifr));
	*addressed = !ifr_ioctl(s, SIOCGIFADDR, BRIDGE_NAME, &ifr);
	stored = stored_subnet(path);
	if (*addressed) {
		*net = ((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr.s_addr & htonl(0xffffff00);
	} else {
		err = fsutil_read("/proc/net/route", 1 << 20, &routes, &rlen);
		if (err)
			return err == -ENOENT ? cove_fail(err, "/proc/net/route: %s", strerror(-err)) :
			       err;
		*net = 0;
		if (stored && !hostnet_routed(routes, rlen, stored, 24))
			*net = stored;
		for (unsigned c = SUBNET_FIRST; !*net && c <= SUBNET_LAST; c++) {
			uint32_t cand = htonl(0xc0a80000u | c << 8);	/* 192.168.c.0 */

			if (!hostnet_routed(routes, rlen, cand, 24))
				*net = cand;
		}
		free(routes);
		if (!*net)
			return cove_fail(-EADDRINUSE, "bridge " BRIDGE_NAME ": every /24 from "
					 "192.168.%d.0 to 192.168.%d.0 is routed on this host already",
					 SUBNET_FIRST, SUBNET_LAST);
	}
	if (*net == stored)
		return 0;
	ntoa(*net, a);
	snprintf(line, sizeof(line), "%s/24\n", a);
	return fsutil_write_atomic(path, line, strlen(line), 0600);
}

/* cove0, up, with the host at .1 of net: made when missing. */
static int make_bridge(int s, uint32_t net, bool addressed)
{
	/* a MAC of its own: a bridge takes its lowest port's otherwise, and
	 * would change it (and the guests' ARP caches) as taps come and go */
	static const unsigned char mac[6] = { 0x02, 'c', 'o', 'v', 'e', '0' };
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct ifreq ifr;
	int err = 0;

	memset(&ifr, 0, sizeof(ifr));
	if (!if_nametoindex(BRIDGE_NAME)) {
		char name[IFNAMSIZ] = BRIDGE_NAME;

		if (ioctl(s, SIOCBRADDBR, name) < 0 && errno != EEXIST)
			return cove_fail(-errno, "making the bridge " BRIDGE_NAME ": %s",
					 strerror(errno));
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		memcpy(ifr.ifr_hwaddr.sa_data, mac, sizeof(mac));
		err = ifr_ioctl(s, SIOCSIFHWADDR, BRIDGE_NAME, &ifr);
	}
	if (!err && !addressed) {
		sin.sin_addr.s_addr = net | htonl(1);
		memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
		err = ifr_ioctl(s, SIOCSIFADDR, BRIDGE_NAME, &ifr);
		sin.sin_addr.s_addr = htonl(0xffffff00);
		memcpy(&ifr.ifr_netmask, &sin, sizeof(sin));
		err = err ?: ifr_ioctl(s, SIOCSIFNETMASK, BRIDGE_NAME, &ifr);
	}
	err = err ?: ifr_ioctl(s, SIOCGIFFLAGS, BRIDGE_NAME, &ifr);
	ifr.ifr_flags |= IFF_UP;
	err = err ?: ifr_ioctl(s, SIOCSIFFLAGS, BRIDGE_NAME, &ifr);
	return err ? cove_fail(err, "setting up the bridge " BRIDGE_NAME ": %s", strerror(-err)) : 0;
}

static int ip_forward(void)
{
	static const char path[] = "/proc/sys/net/ipv4/ip_forward";
	char *text;
	size_t len;
	int fd, err = fsutil_read(path, 64, &text, &len);

	if (!err) {
		bool on = text[0] == '1';

		free(text);
		if (on)
			return 0;
	}
	cove_clear_error();
	fd = open(path, O_WRONLY | O_CLOEXEC);
	err = fd < 0 || write(fd, "1\n", 2) != 2 ? -errno : 0;
	if (fd >= 0)
		close(fd);
	return err ? cove_fail(err, "%s: %s (the bridge needs IPv4 forwarding)", path,
			       strerror(-err)) : 0;
}

/* nft -f - with script on its stdin; its first line of output as the
 * error when it fails. */
static int run_nft(const char *script)
{
	static const char *const paths[] = { "nft", "/usr/sbin/nft", "/sbin/nft" };
	char *const argv[] = { "nft", "-f", "-", NULL };
	int in = memfd_create("cove-nft", MFD_CLOEXEC), out = memfd_create("cove-nft", MFD_CLOEXEC);
	char msg[256] = "";
	int status = 0, err = 0;
	pid_t pid = -1;
	ssize_t n;

	if (in < 0 || out < 0 || write(in, script, strlen(script)) != (ssize_t)strlen(script) ||
	    lseek(in, 0, SEEK_SET) < 0) {
		err = cove_fail(-errno, "nft: %s", strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(126);
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
			execvp(paths[i], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		err = cove_fail(-errno, "nft: %s", strerror(errno));
		goto out;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		goto out;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127) {
		err = cove_fail(-ENOENT, "bridge " BRIDGE_NAME ": no nft to set up NAT (install "
				"nftables)");
		goto out;
	}
	n = pread(out, msg, sizeof(msg) - 1, 0);
	msg[n > 0 ? n : 0] = '\0';
	msg[strcspn(msg, "\n")] = '\0';
	err = cove_fail(-EIO, "bridge " BRIDGE_NAME ": nft failed: %s", msg[0] ? msg :
			"(no message)");
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return err;
}

/* NAT for the bridge's /24 going anywhere else, in a table of cove's own,
 * replaced whole in one transaction (so a changed /24 leaves no rule). */
static int nat(uint32_t net)
{
	char script[512], a[16];

	ntoa(net, a);
	snprintf(script, sizeof(script),
		 "table ip cove\n"
		 "delete table ip cove\n"
		 "table ip cove {\n"
		 "	chain postrouting {\n"
		 "		type nat hook postrouting priority srcnat; policy accept;\n"
		 "		ip saddr %s/24 ip daddr != %s/24 masquerade\n"
		 "	}\n"
		 "}\n", a, a);
	return run_nft(script);
}

static int tap_open(const char *name)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC), err;

	if (fd < 0)
		return cove_fail(-errno, "/dev/net/tun: %s", strerror(errno));
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = TAP_FLAGS;
	err = ifr_ioctl(fd, TUNSETIFF, name, &ifr);
	if (err) {
		close(fd);
		return cove_fail(err, "tap %s: %s%s", name, strerror(-err),
				 err == -EBUSY ? " (in use: by a monitor of another machine "
				 "of that name?)" : err == -EINVAL ? " (a device of that name that is "
				 "not a tap?)" : "");
	}
	return fd;
}

/* Remove the tap name when it is there. */
static int tap_delete(const char *name)
{
	int fd;

	if (!if_nametoindex(name))
		return 0;
	fd = tap_open(name);
	if (fd < 0)
		return fd;
	if (ioctl(fd, TUNSETPERSIST, 0) < 0) {
		int err = cove_fail(-errno, "tap %s: %s", name, strerror(errno));

		close(fd);
		return err;
	}
	close(fd);
	return 0;
}

/* A persistent tap name that this user's cove-vmm may open, in the
 * bridge and up. */
static int tap_create(int s, const char *name)
{
	struct ifreq ifr;
	int fd = tap_open(name), err = 0;

	if (fd < 0)
		return fd;
	if (ioctl(fd, TUNSETOWNER, (unsigned long)getuid()) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0)
		err = -errno;
	close(fd);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_ifindex = if_nametoindex(name);
	err = err ?: ifr_ioctl(s, SIOCBRADDIF, BRIDGE_NAME, &ifr);
	err = err ?: ifr_ioctl(s, SIOCGIFFLAGS, name, &ifr);
	ifr.ifr_flags |= IFF_UP;
	err = err ?: ifr_ioctl(s, SIOCSIFFLAGS, name, &ifr);
	if (err) {
		cove_fail(err, "tap %s: %s", name, strerror(-err));
		tap_delete(name);
	}
	return err;
}

/* Give m the lowest host number no other machine of the store has, and
 * save it (store lock held). */
static int claim_host(struct machine *m)
{
	char (*names)[MACHINE_NAME_MAX + 1];
	bool used[256] = { false };
	struct machine *other;
	size_t n;
	int err;

	if (m->bridge_host)
		return 0;
	err = machine_list(&names, &n);
	if (err)
		return err;
	other = malloc(sizeof(*other));
	for (size_t i = 0; other && i < n; i++)
		if (strcmp(names[i], m->name) && !machine_load(names[i], other))
			used[other->bridge_host] = true;
	cove_clear_error();
	free(other);
	free(names);
	m->bridge_host = bridge_pick_host(used);
	if (!m->bridge_host)
		return cove_fail(-EADDRINUSE, "machine %s: no address left on the bridge " BRIDGE_NAME
				 " (253 machines have one; remove some)", m->name);
	return machine_save(m);
}

int bridge_address(const struct machine *m, char out[16])
{
	char path[PATH_MAX];
	uint32_t net;

	if (!m->bridge_host || machine_store_path(SUBNET_FILE, path, sizeof(path))) {
		cove_clear_error();
		return -ENOENT;
	}
	net = stored_subnet(path);
	if (!net)
		return -ENOENT;
	ntoa(net | htonl(m->bridge_host), out);
	return 0;
}

int bridge_claim(struct machine *m)
{
	int lock = machine_store_lock(), err;

	if (lock < 0)
		return lock;
	err = claim_host(m);
	machine_unlock(lock);
	return err;
}

/* m's name on the host: NAME.machine. */
static void host_name(const struct machine *m, char out[MACHINE_NAME_MAX + 16])
{
	snprintf(out, MACHINE_NAME_MAX + 16, "%s.machine", m->name);
}

/* Set (addr) or drop (NULL) host's line in /etc/hosts (store lock held). */
static int hosts_set(const char *host, const char *addr)
{
	char *text = NULL, *out;
	size_t len = 0, out_len;
	struct stat st;
	mode_t mode = 0644;
	int err;

	if (!stat(BRIDGE_HOSTS_FILE, &st))
		mode = st.st_mode & 07777;
	err = fsutil_read(BRIDGE_HOSTS_FILE, 1 << 20, &text, &len);
	if (err == -ENOENT && addr)
		err = 0;
	if (err)
		return err == -ENOENT ? 0 : err;
	err = hostnet_hosts_edit(text ? text : "", len, BRIDGE_HOSTS_FILE, host, addr, &out,
				 &out_len);
	if (err) {
		free(text);
		return err;
	}
	if (out_len != len || memcmp(out, text, len))
		err = fsutil_write_atomic(BRIDGE_HOSTS_FILE, out, out_len, mode);
	free(out);
	free(text);
	return err;
}

/* The guest's DNS server: the host's first one it can reach (resolv.conf,
 * then systemd-resolved's upstream list when resolv.conf names only the
 * local stub), else the host itself at the gateway. */
static void pick_dns(struct machine_net *net)
{
	static const char *const files[] = { "/etc/resolv.conf",
					     "/run/systemd/resolve/resolv.conf" };
	uint32_t a;

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char *text;
		size_t len;
		int err = fsutil_read(files[i], 1 << 16, &text, &len);

		if (err)
			continue;
		err = hostnet_dns(text, len, &a);
		free(text);
		if (!err) {
			ntoa(a, net->dns);
			return;
		}
	}
	cove_clear_error();
	snprintf(net->dns, sizeof(net->dns), "%s", net->gw);
}

int bridge_up(struct machine *m, struct machine_net *net)
{
	char host[MACHINE_NAME_MAX + 16];
	int lock, s, err;
	uint32_t subnet;
	bool addressed;

	memset(net, 0, sizeof(*net));
	lock = machine_store_lock();
	if (lock < 0)
		return lock;
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	err = s < 0 ? cove_fail(-errno, "socket: %s", strerror(errno)) : 0;
	err = err ?: choose_subnet(s, &subnet, &addressed);
	err = err ?: make_bridge(s, subnet, addressed);
	err = err ?: ip_forward();
	err = err ?: nat(subnet);
	err = err ?: claim_host(m);
	bridge_tap_name(m->name, net->tap);
	/* a tap left by a monitor that ended on its own is replaced */
	err = err ?: tap_delete(net->tap);
	err = err ?: tap_create(s, net->tap);
	if (!err) {
		net->bridge = true;
		ntoa(subnet | htonl(m->bridge_host), net->addr);
		ntoa(subnet | htonl(1), net->gw);
		pick_dns(net);
		snprintf(net->mac, sizeof(net->mac), "02:%.2s:%.2s:%.2s:%.2s:%.2s", m->machine_id,
			 m->machine_id + 2, m->machine_id + 4, m->machine_id + 6, m->machine_id + 8);
		host_name(m, host);
		if (hosts_set(host, net->addr)) {
			fprintf(stderr, "cove: %s; %s does not resolve on this host\n",
				cove_last_error(), host);
			cove_clear_error();
		}
	}
	if (s >= 0)
		close(s);
	machine_unlock(lock);
	return err;
}

void bridge_down(const struct machine *m)
{
	char tap[IFNAMSIZ], host[MACHINE_NAME_MAX + 16], keep[1024];
	int lock;

	if (!m->bridge_host || !bridge_allowed())
		return;
	/* the caller's error message, if any, is the one to show */
	snprintf(keep, sizeof(keep), "%s", cove_last_error());
	bridge_tap_name(m->name, tap);
	tap_delete(tap);
	lock = machine_store_lock();
	if (lock >= 0) {
		host_name(m, host);
		hosts_set(host, NULL);
		machine_unlock(lock);
	}
	cove_clear_error();
	if (keep[0])
		cove_fail(-EIO, "%s", keep);
}
