/* vsock-test: the guest side of the vsock integration tests (busybox has
 * no vsock).
 *
 *   vsock-test server PORT [COUNT]   echo server on vsock PORT, many
 *                                    connections at once (poll); prints
 *                                    VSOCK-READY once listening, and exits
 *                                    after COUNT connections ended
 *   vsock-test client CID PORT N BYTES
 *                                    N connections at once, each sends BYTES
 *                                    of a pattern and checks the echo
 *   vsock-test send CID PORT BYTES   send BYTES of a pattern, print its
 *                                    checksum (SENT_SUM=…)
 *   vsock-test connect CID PORT      connect and report CONNECT=ok or
 *                                    CONNECT=<errno name>
 *
 * The host side of the same tests, over cove-vmm's hybrid unix sockets
 * (the binary is static, so the test runs it on the host too):
 *   vsock-test userver PATH [COUNT]  echo server on the unix socket PATH
 *                                    (PATH_PORT for the guest's port PORT)
 *   vsock-test usink PATH            accept one connection, read it to the
 *                                    end, print RECV_BYTES= and RECV_SUM=
 *   vsock-test uclient PATH PORT N BYTES
 *                                    N connections through "CONNECT PORT",
 *                                    each checks "OK HOSTPORT" and the echo
 *   vsock-test urefused PATH PORT    "CONNECT PORT" must be closed without
 *                                    an OK: prints CONNECT_CLOSED=ok
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#define MAXC	256
#define BUF	65536

static void die(const char *what)
{
	printf("VSOCK-ERROR=%s:%s\n", what, strerror(errno));
	fflush(stdout);
	exit(1);
}

static unsigned long num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end) {
		fprintf(stderr, "vsock-test: %s: not a number\n", s);
		exit(2);
	}
	return v;
}

/* The pattern: 8-byte words, word i of connection k a hash of (i, k). */
static uint64_t pat_word(unsigned k, uint64_t i)
{
	uint64_t x = i * 0x9e3779b97f4a7c15ull + k * 0xbf58476d1ce4e5b9ull;

	return x ^ x >> 29;
}

/* buf = the pattern bytes [off, off + len) of connection k. */
static void fill(unsigned k, uint64_t off, uint8_t *buf, size_t len)
{
	size_t i = 0;

	while (i < len && (off + i) & 7) {
		buf[i] = (uint8_t)(pat_word(k, (off + i) >> 3) >> (((off + i) & 7) * 8));
		i++;
	}
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pat_word(k, (off + i) >> 3);
		memcpy(buf + i, &w, 8);		/* little-endian: byte j is bits 8j.. */
	}
	for (; i < len; i++)
		buf[i] = (uint8_t)(pat_word(k, (off + i) >> 3) >> (((off + i) & 7) * 8));
}

/* A checksum of a byte stream that does not depend on how the stream was
 * cut into reads: FNV-1a over 8-byte words, the last partial word padded. */
struct sum {
	uint64_t h, part;
	unsigned n;		/* bytes in part */
};

#define SUM_INIT { 0xcbf29ce484222325ull, 0, 0 }

static void sum_word(struct sum *s, uint64_t w)
{
	s->h = (s->h ^ w) * 0x100000001b3ull;
}

static void sum_update(struct sum *s, const uint8_t *p, size_t len)
{
	size_t i = 0;

	while (i < len && s->n) {
		s->part |= (uint64_t)p[i++] << (8 * s->n);
		if (++s->n == 8) {
			sum_word(s, s->part);
			s->part = 0;
			s->n = 0;
		}
	}
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		sum_word(s, w);
	}
	for (; i < len; i++)
		s->part |= (uint64_t)p[i] << (8 * s->n++);
}

static uint64_t sum_final(struct sum *s)
{
	if (s->n)
		sum_word(s, s->part ^ (uint64_t)s->n << 56);
	return s->h;
}

static int vsock_connect(unsigned cid, unsigned port)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static struct sockaddr_un unix_addr(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "vsock-test: %s: path too long\n", path);
		exit(2);
	}
	strcpy(sa.sun_path, path);
	return sa;
}

/* A listening socket: vsock port `port`, or the unix socket path. */
static int listen_on(unsigned port, const char *path)
{
	struct sockaddr_vm sv = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
				  .svm_port = port };
	struct sockaddr_un su;
	int fd = socket(path ? AF_UNIX : AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	if (path) {
		su = unix_addr(path);
		unlink(path);
		if (bind(fd, (struct sockaddr *)&su, sizeof(su)) < 0)
			die("bind");
	} else if (bind(fd, (struct sockaddr *)&sv, sizeof(sv)) < 0) {
		die("bind");
	}
	if (listen(fd, 128) < 0)
		die("listen");
	return fd;
}

static int server(int lfd, unsigned long count)
{
	struct pollfd p[MAXC + 1];
	static uint8_t buf[BUF];
	unsigned long ended = 0;
	int n = 1;

	printf("VSOCK-READY\n");
	fflush(stdout);
	p[0] = (struct pollfd){ .fd = lfd, .events = POLLIN };
	while (!count || ended < count) {
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if ((p[0].revents & POLLIN) && n <= MAXC) {
			int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				p[n++] = (struct pollfd){ .fd = fd, .events = POLLIN };
		}
		for (int i = 1; i < n; i++) {
			ssize_t r;

			if (!p[i].revents)
				continue;
			r = read(p[i].fd, buf, sizeof(buf));
			if (r > 0) {
				/* blocking write: the echo goes back whole */
				for (ssize_t off = 0; off < r;) {
					ssize_t w = write(p[i].fd, buf + off, r - off);
					if (w <= 0)
						die("write");
					off += w;
				}
				continue;
			}
			if (r < 0 && errno == EINTR)
				continue;
			close(p[i].fd);
			p[i--] = p[--n];
			ended++;
		}
	}
	printf("SERVED=%lu\n", ended);
	return 0;
}

struct conn {
	int fd;
	uint64_t sent, got;
};

/* Connect through cove-vmm's unix socket at path to guest port `port`:
 * "CONNECT PORT\n", answered "OK HOSTPORT\n" (read a byte at a time, so
 * nothing after it is taken). The fd, or -1 when the connection was
 * closed instead (errno ECONNRESET). */
static int unix_connect(const char *path, unsigned port)
{
	struct sockaddr_un sa = unix_addr(path);
	char line[32];
	size_t len = 0;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("connect");
	len = snprintf(line, sizeof(line), "CONNECT %u\n", port);
	if (write(fd, line, len) != (ssize_t)len)
		die("write");
	for (len = 0; len < sizeof(line) - 1; len++) {
		ssize_t r = read(fd, line + len, 1);
		if (r <= 0) {
			close(fd);
			errno = ECONNRESET;
			return -1;
		}
		if (line[len] == '\n')
			break;
	}
	line[len] = '\0';
	if (strncmp(line, "OK ", 3) || !line[3] || strspn(line + 3, "0123456789") != len - 3) {
		printf("VSOCK-BAD-ANSWER=%s\n", line);
		exit(1);
	}
	return fd;
}

static int client(unsigned cid, const char *path, unsigned port, unsigned nconn, uint64_t bytes)
{
	static struct conn c[MAXC];
	static uint8_t buf[BUF], want[BUF];
	struct pollfd p[MAXC];
	unsigned done = 0;

	if (nconn < 1 || nconn > MAXC) {
		fprintf(stderr, "vsock-test: 1 to %d connections\n", MAXC);
		return 2;
	}
	for (unsigned k = 0; k < nconn; k++) {
		c[k].fd = path ? unix_connect(path, port) : vsock_connect(cid, port);
		if (c[k].fd < 0)
			die("connect");
		fcntl(c[k].fd, F_SETFL, O_NONBLOCK);
	}
	while (done < nconn) {
		for (unsigned k = 0; k < nconn; k++) {
			p[k] = (struct pollfd){ .fd = c[k].fd };
			if (c[k].got < bytes)
				p[k].events = POLLIN | (c[k].sent < bytes ? POLLOUT : 0);
			else
				p[k].fd = -1;
		}
		if (poll(p, nconn, 60000) <= 0)
			die("poll (stalled)");
		for (unsigned k = 0; k < nconn; k++) {
			if (p[k].revents & POLLOUT) {
				size_t len = bytes - c[k].sent < BUF ? bytes - c[k].sent : BUF;
				ssize_t w;
				fill(k, c[k].sent, buf, len);
				w = write(c[k].fd, buf, len);
				if (w < 0 && errno != EAGAIN)
					die("write");
				if (w > 0)
					c[k].sent += w;
			}
			if (p[k].revents & (POLLIN | POLLHUP | POLLERR)) {
				ssize_t r = read(c[k].fd, buf, sizeof(buf));
				if (r == 0) {
					errno = EPIPE;
					die("echo ended early");
				}
				if (r < 0 && errno != EAGAIN)
					die("read");
				if (r > 0) {
					fill(k, c[k].got, want, r);
					if (memcmp(buf, want, r)) {
						printf("VSOCK-MISMATCH conn %u near byte %" PRIu64 "\n",
						       k, c[k].got);
						return 1;
					}
					c[k].got += r;
					if (c[k].got == bytes) {
						close(c[k].fd);
						done++;
					}
				}
			}
		}
	}
	printf("ECHOED=%u\n", nconn);
	return 0;
}

/* Accept one connection and read it to the end. */
static int sink(const char *path)
{
	static uint8_t buf[BUF];
	struct sum sum = SUM_INIT;
	uint64_t got = 0;
	int lfd = listen_on(0, path);
	int fd;
	ssize_t r;

	printf("VSOCK-READY\n");
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		die("accept");
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		sum_update(&sum, buf, r);
		got += r;
	}
	if (r < 0)
		die("read");
	close(fd);
	printf("RECV_BYTES=%" PRIu64 "\nRECV_SUM=%016" PRIx64 "\n", got, sum_final(&sum));
	return 0;
}

static int send_bytes(unsigned cid, unsigned port, uint64_t bytes)
{
	static uint8_t buf[BUF];
	struct sum sum = SUM_INIT;
	uint64_t off = 0;
	int fd = vsock_connect(cid, port);

	if (fd < 0)
		die("connect");
	while (off < bytes) {
		size_t len = bytes - off < BUF ? bytes - off : BUF;
		fill(0, off, buf, len);
		sum_update(&sum, buf, len);
		for (size_t o = 0; o < len;) {
			ssize_t w = write(fd, buf + o, len - o);
			if (w <= 0)
				die("write");
			o += w;
		}
		off += len;
	}
	/* wait for the far end to close: everything has arrived */
	shutdown(fd, SHUT_WR);
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
	printf("SENT_BYTES=%" PRIu64 "\nSENT_SUM=%016" PRIx64 "\n", bytes, sum_final(&sum));
	return 0;
}

static int try_connect(unsigned cid, unsigned port)
{
	int fd = vsock_connect(cid, port);

	if (fd >= 0) {
		printf("CONNECT=ok\n");
		close(fd);
	} else {
		printf("CONNECT=%s\n", errno == ECONNREFUSED ? "ECONNREFUSED" :
		       errno == ECONNRESET ? "ECONNRESET" : errno == ETIMEDOUT ? "ETIMEDOUT" :
		       strerror(errno));
	}
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && argc <= 4 && !strcmp(argv[1], "server"))
		return server(listen_on(num(argv[2]), NULL), argc == 4 ? num(argv[3]) : 0);
	if (argc >= 3 && argc <= 4 && !strcmp(argv[1], "userver"))
		return server(listen_on(0, argv[2]), argc == 4 ? num(argv[3]) : 0);
	if (argc == 6 && !strcmp(argv[1], "client"))
		return client(num(argv[2]), NULL, num(argv[3]), num(argv[4]), num(argv[5]));
	if (argc == 6 && !strcmp(argv[1], "uclient"))
		return client(0, argv[2], num(argv[3]), num(argv[4]), num(argv[5]));
	if (argc == 3 && !strcmp(argv[1], "usink"))
		return sink(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "urefused")) {
		int fd = unix_connect(argv[2], num(argv[3]));
		printf("CONNECT_CLOSED=%s\n", fd < 0 ? "ok" : "no");
		return fd < 0 ? 0 : 1;
	}
	if (argc == 5 && !strcmp(argv[1], "send"))
		return send_bytes(num(argv[2]), num(argv[3]), num(argv[4]));
	if (argc == 4 && !strcmp(argv[1], "connect"))
		return try_connect(num(argv[2]), num(argv[3]));
	fprintf(stderr, "usage: vsock-test server PORT [COUNT] | client CID PORT N BYTES |\n"
		"       send CID PORT BYTES | connect CID PORT | userver PATH [COUNT] |\n"
		"       usink PATH | uclient PATH PORT N BYTES | urefused PATH PORT\n");
	return 2;
}
