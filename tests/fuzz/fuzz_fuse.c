/* libFuzzer: FUSE requests to the server on a temp directory. Each input
 * is a session: INIT, then records that become requests with a valid
 * header (or a deliberately wrong length), an opcode from the protocol or
 * any value, node ids and file handles taken from earlier replies, and
 * arguments from the input. Reads and writes are performed at once. After
 * each input the session is reset; nothing may crash, leak, hang or touch
 * the canary beside the share.
 *
 * Record: [0] opcode pick, [1] node pick, [2] fh pick, [3] flags (bit 0:
 * wrong header length, bit 1: split the request into two buffers, bits
 * 2-3: reply room), [4..5] argument length, then the argument bytes; the
 * first 8 argument bytes that hold a file handle get the picked one. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuse_server.h"

#define MAX_IDS		64
#define REQ_MAX		(80u << 10)

static struct fuse_server *srv;
static char base[64], share[96], canary[96];
static struct stat canary_st;
static uint8_t req[REQ_MAX + 64];
static uint8_t out[(600u << 10)];
static uint64_t nodes[MAX_IDS], fhs[MAX_IDS];
static unsigned nnodes, nfhs;
static uint64_t unique;

static const uint32_t opcodes[] = {
	FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_SETATTR, FUSE_READLINK, FUSE_SYMLINK,
	FUSE_MKNOD, FUSE_MKDIR, FUSE_UNLINK, FUSE_RMDIR, FUSE_RENAME, FUSE_LINK, FUSE_OPEN,
	FUSE_READ, FUSE_WRITE, FUSE_STATFS, FUSE_RELEASE, FUSE_FSYNC, FUSE_SETXATTR,
	FUSE_GETXATTR, FUSE_LISTXATTR, FUSE_REMOVEXATTR, FUSE_FLUSH, FUSE_INIT, FUSE_OPENDIR,
	FUSE_READDIR, FUSE_RELEASEDIR, FUSE_FSYNCDIR, FUSE_ACCESS, FUSE_CREATE, FUSE_DESTROY,
	FUSE_BATCH_FORGET, FUSE_FALLOCATE, FUSE_READDIRPLUS, FUSE_RENAME2, FUSE_LSEEK,
	FUSE_COPY_FILE_RANGE, FUSE_GETLK, FUSE_IOCTL, FUSE_INTERRUPT,
};

static void cleanup(void)
{
	char cmd[128];

	fuse_server_destroy(srv);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_fuse: could not remove %s\n", base);
}

static void init(void)
{
	char cmd[256];
	int fd;

	snprintf(base, sizeof(base), "/tmp/cove-fuzz-fuse-XXXXXX");
	if (!mkdtemp(base))
		abort();
	snprintf(share, sizeof(share), "%s/share", base);
	snprintf(canary, sizeof(canary), "%s/canary", base);
	snprintf(cmd, sizeof(cmd), "mkdir -p %s/d/e && echo hi > %s/f && ln -s ../canary %s/l",
		 share, share, share);
	if (system(cmd) != 0)
		abort();
	fd = open(canary, O_CREAT | O_WRONLY, 0600);
	if (fd < 0 || write(fd, "canary", 6) != 6)
		abort();
	close(fd);
	if (stat(canary, &canary_st) < 0 || fuse_server_create(share, false, FUSE_CACHE_AUTO, &srv) < 0)
		abort();
	atexit(cleanup);
}

static void remember(uint64_t *ids, unsigned *n, uint64_t id)
{
	ids[*n % MAX_IDS] = id;
	(*n)++;
}

static uint64_t pick(const uint64_t *ids, unsigned n, uint8_t sel)
{
	if (sel >= 0xf0 || !n)
		return sel == 0xff ? UINT64_MAX : sel;	/* raw small values */
	return ids[sel % (n < MAX_IDS ? n : MAX_IDS)];
}

static void send(uint32_t op, uint64_t node, const uint8_t *arg, size_t alen, uint8_t flags)
{
	static const size_t rooms[] = { sizeof(out), 16, 100, 4096 };
	struct fuse_in_header *h = (struct fuse_in_header *)req;
	struct iovec in[2], o[2];
	struct fuse_io io;
	unsigned nin = 1;
	size_t len = sizeof(*h) + alen;
	size_t room = rooms[(flags >> 2) & 3];
	int res;

	memset(h, 0, sizeof(*h));
	h->len = (flags & 1) ? len + 1 : len;
	h->opcode = op;
	h->unique = ++unique;
	h->nodeid = node;
	memcpy(req + sizeof(*h), arg, alen);
	in[0] = (struct iovec){ req, len };
	if ((flags & 2) && len > 1) {
		in[0].iov_len = len / 2;
		in[1] = (struct iovec){ req + len / 2, len - len / 2 };
		nin = 2;
	}
	o[0] = (struct iovec){ out, room < 24 ? room : 24 };
	o[1] = (struct iovec){ out + o[0].iov_len, room - o[0].iov_len };
	res = fuse_handle(srv, in, nin, o, 2, &io);
	if (res == -EINPROGRESS) {
		ssize_t n;
		if (io.op == FUSE_IO_READ)
			n = preadv(io.fd, io.iov, io.niov, io.off);
		else if (io.op == FUSE_IO_WRITE)
			n = pwritev(io.fd, io.iov, io.niov, io.off);
		else
			n = fsync(io.fd);
		res = fuse_io_done(srv, &io, n < 0 ? -errno : (int)n, o, 2);
	}
	if (res < 0 && res != -EPROTO)
		abort();
	if (res < (int)sizeof(struct fuse_out_header) || ((struct fuse_out_header *)out)->error)
		return;
	const uint8_t *p = out + sizeof(struct fuse_out_header);
	if (op == FUSE_LOOKUP || op == FUSE_MKDIR || op == FUSE_MKNOD || op == FUSE_SYMLINK ||
	    op == FUSE_LINK || op == FUSE_CREATE)
		remember(nodes, &nnodes, ((const struct fuse_entry_out *)p)->nodeid);
	if (op == FUSE_OPEN || op == FUSE_OPENDIR)
		remember(fhs, &nfhs, ((const struct fuse_open_out *)p)->fh);
	if (op == FUSE_CREATE)
		remember(fhs, &nfhs, ((const struct fuse_open_out *)(p + sizeof(struct fuse_entry_out)))->fh);
}

/* Arguments whose first field is a file handle. */
static bool fh_first(uint32_t op)
{
	return op == FUSE_READ || op == FUSE_WRITE || op == FUSE_RELEASE || op == FUSE_FSYNC ||
	       op == FUSE_FLUSH || op == FUSE_READDIR || op == FUSE_READDIRPLUS ||
	       op == FUSE_RELEASEDIR || op == FUSE_FSYNCDIR || op == FUSE_FALLOCATE ||
	       op == FUSE_LSEEK || op == FUSE_COPY_FILE_RANGE;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t arg[REQ_MAX];
	struct fuse_init_in ini = { .major = 7, .minor = 37, .flags = 0xffffffffu };
	struct fuse_server_stats st;
	struct stat cs;

	if (!srv)
		init();
	nnodes = nfhs = 0;
	remember(nodes, &nnodes, FUSE_ROOT_ID);
	send(FUSE_INIT, 0, (const uint8_t *)&ini, sizeof(ini), 0);
	while (size >= 6) {
		uint8_t sel = data[0];
		uint32_t op = sel < 2 * (sizeof(opcodes) / sizeof(opcodes[0]))
				      ? opcodes[sel % (sizeof(opcodes) / sizeof(opcodes[0]))]
				      : (uint32_t)sel * 0x01010101u;
		uint64_t node = pick(nodes, nnodes, data[1]);
		uint64_t fh = pick(fhs, nfhs, data[2]);
		uint8_t flags = data[3];
		size_t alen = data[4] | (size_t)data[5] << 8;

		data += 6;
		size -= 6;
		if (alen > size)
			alen = size;
		memcpy(arg, data, alen);
		if (fh_first(op) && alen >= 8)
			memcpy(arg, &fh, 8);
		if (op == FUSE_LINK && alen >= 8)
			memcpy(arg, &nodes[data[2] % (nnodes < MAX_IDS ? nnodes : MAX_IDS)], 8);
		send(op, node, arg, alen, flags);
		data += alen;
		size -= alen;
	}
	fuse_server_reset(srv);
	fuse_server_stats(srv, &st);
	if (st.inodes != 1 || st.files != 0)
		abort();	/* a leak across sessions */
	if (stat(canary, &cs) < 0 || cs.st_size != canary_st.st_size ||
	    cs.st_mtim.tv_nsec != canary_st.st_mtim.tv_nsec || cs.st_mode != canary_st.st_mode)
		abort();	/* something reached outside the share */
	return 0;
}
