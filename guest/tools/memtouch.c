// SPDX-License-Identifier: MIT
/*
 * memtouch MIB [HOLD_SECONDS]: map MIB MiB of anonymous memory (populated
 * at once), write every page (saying "MEMTOUCH_MIB=N" every 64 MiB), print
 * "MEMTOUCH=touched", keep it HOLD_SECONDS (default 0), then unmap it and
 * print "MEMTOUCH=freed". The balloon tests use it to make the guest use
 * memory and give it back.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static long number(const char *s, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max) {
		fprintf(stderr, "memtouch: '%s': not a number from 0 to %ld\n", s, max);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	size_t len, page = (size_t)sysconf(_SC_PAGESIZE);
	long hold = 0;
	unsigned char *p;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: memtouch MIB [HOLD_SECONDS]\n");
		return 2;
	}
	len = (size_t)number(argv[1], 1 << 20) << 20;
	if (argc == 3)
		hold = number(argv[2], 86400);
	/* MAP_POPULATE: the kernel allocates the pages in one go; a page
	 * fault per page is far slower under emulation (nested TCG). */
	p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "memtouch: mmap %zu bytes: %s\n", len, strerror(errno));
		return 1;
	}
	for (size_t off = 0; off < len; off += page) {
		p[off] = (unsigned char)(off / page) | 1;	/* not zero: no shared zero page */
		if ((off + page) % (64 << 20) == 0) {
			printf("MEMTOUCH_MIB=%zu\n", (off + page) >> 20);
			fflush(stdout);
		}
	}
	printf("MEMTOUCH=touched\n");
	fflush(stdout);
	sleep((unsigned)hold);
	munmap(p, len);
	printf("MEMTOUCH=freed\n");
	fflush(stdout);
	return 0;
}
