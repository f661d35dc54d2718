/* fsbench: file system figures for bench/fs.py, measured in a guest.
 *   fsbench DIR FILES SIZE_MIB RAND_OPS
 * Runs these phases on DIR and prints one line per phase,
 *   FSBENCH phase=NAME ms=MILLISECONDS ops=N bytes=B
 *   create      FILES empty files made (open O_CREAT|O_EXCL, close) in DIR/many
 *   stat        each of them stat'ed
 *   unlink      each of them removed
 *   seq_write   DIR/big written with SIZE_MIB 1 MiB writes, then fsync
 *   seq_read    DIR/big read back in 1 MiB reads
 *   rand_read   RAND_OPS 4 KiB preads at random 4 KiB-aligned offsets
 *   rand_write  RAND_OPS 4 KiB pwrites at random offsets, then fsync
 * Before stat and each read phase the guest's caches are written back and
 * dropped (sync, /proc/sys/vm/drop_caches), so those phases reach the
 * device. The offsets come from a fixed-seed generator: every run and
 * every file system sees the same sequence. Exit 1 with a message when a
 * step fails. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK	(1u << 20)
#define BLOCK	4096u

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void die(const char *what, const char *path)
{
	fprintf(stderr, "fsbench: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void report(const char *phase, double t0, unsigned long ops, unsigned long long bytes)
{
	printf("FSBENCH phase=%s ms=%.2f ops=%lu bytes=%llu\n", phase, now_ms() - t0, ops, bytes);
	fflush(stdout);
}

static void drop_caches(void)
{
	int fd;

	sync();
	fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
	if (fd < 0 || write(fd, "3\n", 2) != 2)
		die("drop caches", "/proc/sys/vm/drop_caches");
	close(fd);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void small_files(const char *dir, unsigned long n)
{
	char path[4096];
	struct stat st;
	double t0;

	snprintf(path, sizeof(path), "%s/many", dir);
	if (mkdir(path, 0755) < 0)
		die("mkdir", path);
	t0 = now_ms();
	for (unsigned long i = 0; i < n; i++) {
		int fd;
		snprintf(path, sizeof(path), "%s/many/f%lu", dir, i);
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
		if (fd < 0)
			die("create", path);
		close(fd);
	}
	report("create", t0, n, 0);
	drop_caches();
	t0 = now_ms();
	for (unsigned long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/many/f%lu", dir, i);
		if (stat(path, &st) < 0)
			die("stat", path);
	}
	report("stat", t0, n, 0);
	t0 = now_ms();
	for (unsigned long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/many/f%lu", dir, i);
		if (unlink(path) < 0)
			die("unlink", path);
	}
	report("unlink", t0, n, 0);
	snprintf(path, sizeof(path), "%s/many", dir);
	if (rmdir(path) < 0)
		die("rmdir", path);
}

static void big_file(const char *dir, unsigned long mib, unsigned long rand_ops)
{
	char path[4096];
	uint64_t size = (uint64_t)mib * CHUNK;
	char *buf = malloc(CHUNK);
	double t0;
	int fd;

	if (!buf)
		die("malloc", "");
	for (unsigned i = 0; i < CHUNK; i++)
		buf[i] = (char)rng();
	snprintf(path, sizeof(path), "%s/big", dir);

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("create", path);
	t0 = now_ms();
	for (unsigned long i = 0; i < mib; i++)
		if (write(fd, buf, CHUNK) != CHUNK)
			die("write", path);
	if (fsync(fd) < 0)
		die("fsync", path);
	report("seq_write", t0, mib, size);
	close(fd);

	drop_caches();
	fd = open(path, O_RDWR);
	if (fd < 0)
		die("open", path);
	t0 = now_ms();
	for (unsigned long i = 0; i < mib; i++)
		if (read(fd, buf, CHUNK) != CHUNK)
			die("read", path);
	report("seq_read", t0, mib, size);

	close(fd);
	drop_caches();
	fd = open(path, O_RDWR);
	if (fd < 0)
		die("open", path);
	t0 = now_ms();
	for (unsigned long i = 0; i < rand_ops; i++) {
		off_t off = (off_t)(rng() % (size / BLOCK)) * BLOCK;
		if (pread(fd, buf, BLOCK, off) != BLOCK)
			die("pread", path);
	}
	report("rand_read", t0, rand_ops, (unsigned long long)rand_ops * BLOCK);

	t0 = now_ms();
	for (unsigned long i = 0; i < rand_ops; i++) {
		off_t off = (off_t)(rng() % (size / BLOCK)) * BLOCK;
		if (pwrite(fd, buf, BLOCK, off) != BLOCK)
			die("pwrite", path);
	}
	if (fsync(fd) < 0)
		die("fsync", path);
	report("rand_write", t0, rand_ops, (unsigned long long)rand_ops * BLOCK);
	close(fd);
	if (unlink(path) < 0)
		die("unlink", path);
	free(buf);
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: fsbench DIR FILES SIZE_MIB RAND_OPS\n");
		return 2;
	}
	small_files(argv[1], strtoul(argv[2], NULL, 0));
	big_file(argv[1], strtoul(argv[3], NULL, 0), strtoul(argv[4], NULL, 0));
	printf("FSBENCH done\n");
	return 0;
}
