/* fstool: what busybox lacks for the virtio-fs tests.
 *   fstool setxattr PATH NAME VALUE    set (prints nothing; exit 1 on error)
 *   fstool getxattr PATH NAME          print the value
 *   fstool listxattr PATH              print the names, one a line
 *   fstool rmxattr PATH NAME           remove
 *   fstool mmapcat PATH                write the file to stdout through a
 *                                      shared read-only mapping */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

static int fail(const char *what, const char *path)
{
	fprintf(stderr, "fstool: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

static int mmapcat(const char *path)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	const char *p;
	size_t off = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		return fail("open", path);
	if (st.st_size == 0)
		return 0;
	p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return fail("mmap", path);
	while (off < (size_t)st.st_size) {
		ssize_t n = write(STDOUT_FILENO, p + off, st.st_size - off);
		if (n <= 0)
			return fail("write", "stdout");
		off += n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static char buf[65536];
	ssize_t n;

	if (argc == 5 && !strcmp(argv[1], "setxattr"))
		return setxattr(argv[2], argv[3], argv[4], strlen(argv[4]), 0) ? fail("setxattr", argv[2]) : 0;
	if (argc == 4 && !strcmp(argv[1], "getxattr")) {
		n = getxattr(argv[2], argv[3], buf, sizeof(buf) - 1);
		if (n < 0)
			return fail("getxattr", argv[2]);
		printf("%.*s\n", (int)n, buf);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "listxattr")) {
		n = listxattr(argv[2], buf, sizeof(buf));
		if (n < 0)
			return fail("listxattr", argv[2]);
		for (ssize_t i = 0; i < n; i += strlen(buf + i) + 1)
			puts(buf + i);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "rmxattr"))
		return removexattr(argv[2], argv[3]) ? fail("removexattr", argv[2]) : 0;
	if (argc == 3 && !strcmp(argv[1], "mmapcat"))
		return mmapcat(argv[2]);
	fprintf(stderr, "usage: fstool setxattr|getxattr|listxattr|rmxattr|mmapcat ...\n");
	return 2;
}
