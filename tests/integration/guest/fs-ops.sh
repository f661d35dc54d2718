# virtio-fs: everyday operations on the share tagged "share"; the host
# checks what they left behind. Any failing step ends the script (set -e).
set -e
mkdir -p /mnt
mount -t virtiofs share /mnt
cd /mnt
echo step=create
echo hello > a.txt
echo world >> a.txt
[ "$(cat a.txt)" = "$(printf 'hello\nworld')" ]
echo step=truncate
printf 0123456789 > t.txt
truncate -s 4 t.txt
[ "$(cat t.txt)" = 0123 ]
echo step=rename
mv a.txt b.txt
[ ! -e a.txt ]
echo step=hardlink
ln b.txt hard.txt
[ "$(stat -c %h b.txt)" = 2 ]
echo step=symlink
ln -s b.txt sym.txt
[ "$(readlink sym.txt)" = b.txt ]
[ "$(cat sym.txt)" = "$(cat b.txt)" ]
echo step=chmod
chmod 640 b.txt
[ "$(stat -c %a b.txt)" = 640 ]
echo step=utimes
touch -d "2001-02-03 04:05:06" b.txt
[ "$(stat -c %Y b.txt)" = 981173106 ]
echo step=xattr
fstool setxattr b.txt user.color blue
[ "$(fstool getxattr b.txt user.color)" = blue ]
fstool listxattr b.txt | grep -qx user.color
fstool rmxattr b.txt user.color
! fstool getxattr b.txt user.color 2>/dev/null
fstool setxattr b.txt user.keep yes
echo step=deep-tree
d=deep
i=0
while [ $i -lt 40 ]; do
	d=$d/level$i
	i=$((i + 1))
done
mkdir -p $d
d=deep
i=0
while [ $i -lt 40 ]; do
	d=$d/level$i
	echo $i > $d/file
	i=$((i + 1))
done
[ "$(cat $d/file)" = 39 ]
[ "$(find deep -type f | wc -l)" = 40 ]
rm -rf deep
[ ! -e deep ]
mkdir -p tree/x/y/z
echo keep > tree/x/y/z/f
echo step=many
mkdir many
i=0
while [ $i -lt 500 ]; do
	: > many/file-$i
	i=$((i + 1))
done
[ "$(ls many | wc -l)" = 500 ]
ls -l many > /dev/null
rm -r many
echo step=fifo
mkfifo p
[ -p p ]
rm p
echo step=mmap
dd if=/dev/urandom of=m.bin bs=4096 count=64 2>/dev/null
a=$(fstool mmapcat m.bin | md5sum)
b=$(md5sum < m.bin)
[ "$a" = "$b" ]
echo "MMAP=${b%% *}"
echo step=statfs
df /mnt > /dev/null
cd /
sync
umount /mnt
echo FSOPS=done
