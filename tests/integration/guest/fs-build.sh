# virtio-fs: a real build and a git repository on the share. The test
# initrd is busybox only, so the toolchain is the host's own /usr, served
# read-only over a second share (tag "usr"); sources, objects, temporaries
# and the repository live on the share under test (tag "share").
set -e
mkdir -p /r/usr /r/mnt /r/dev /r/proc
for d in bin sbin lib lib64; do ln -s usr/$d /r/$d; done
mount -t virtiofs usr /r/usr
mount -t virtiofs share /r/mnt
mount -t devtmpfs dev /r/dev
mount -t proc proc /r/proc
mkdir -p /r/mnt/proj /r/mnt/tmp
cat > /r/mnt/proj/util.h <<'E'
unsigned long sum_to(unsigned long n);
E
cat > /r/mnt/proj/util.c <<'E'
#include "util.h"
unsigned long sum_to(unsigned long n)
{
	unsigned long s = 0;
	for (unsigned long i = 1; i <= n; i++)
		s += i;
	return s;
}
E
cat > /r/mnt/proj/main.c <<'E'
#include <stdio.h>
#include "util.h"
int main(void)
{
	printf("sum=%lu\n", sum_to(100));
	return 0;
}
E
printf 'CC = gcc\nhello: main.o util.o\n\t$(CC) -o $@ $^\n%%.o: %%.c\n\t$(CC) -O2 -MMD -c -o $@ $<\n-include *.d\n' \
	> /r/mnt/proj/Makefile
# in_root CMD...: run CMD in the chroot with a clean environment.
in_root() {
	chroot /r /usr/bin/env -i PATH=/usr/bin HOME=/mnt TMPDIR=/mnt/tmp LC_ALL=C "$@"
}
echo step=make
in_root make -C /mnt/proj
echo "BUILD=$(in_root /mnt/proj/hello | cut -d= -f2)"
echo step=rebuild
sleep 1
touch /r/mnt/proj/util.h
in_root make -C /mnt/proj > /r/mnt/proj/rebuild.log
grep -q 'util.c' /r/mnt/proj/rebuild.log
grep -q 'main.c' /r/mnt/proj/rebuild.log
in_root make -q -C /mnt/proj hello
echo step=git
git="in_root git -C /mnt/repo -c user.name=cove -c user.email=cove@localhost"
in_root git init -q /mnt/repo
cp /r/mnt/proj/*.c /r/mnt/proj/*.h /r/mnt/proj/Makefile /r/mnt/repo/
$git add -A
$git commit -qm first
echo '/* second */' >> /r/mnt/repo/main.c
$git mv util.h sum.h
$git commit -qam second
$git gc -q
$git fsck --no-progress
[ -z "$($git status --porcelain)" ]
echo "COMMITS=$($git rev-list --count HEAD)"
umount /r/proc /r/dev /r/mnt /r/usr
echo FSBUILD=done
