# Guest side of bench/fs.py: mount the file system under test on /mnt and
# run fsbench there. The kernel command line says which and how much:
# fsbench_fs=virtiofs or 9p (tag "share"), or blk (ext4 on /dev/vda),
# fsbench_args=FILES,SIZE_MIB,RAND_OPS.
set -e
cmdline=" $(cat /proc/cmdline) "
arg() {
	local v=${cmdline##* $1=}
	[ "$v" != "$cmdline" ] && echo "${v%% *}"
}
mkdir -p /mnt
case $(arg fsbench_fs) in
blk) mount -t ext4 /dev/vda /mnt ;;
9p) mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose share /mnt ;;
*) mount -t virtiofs share /mnt ;;
esac
fsbench /mnt $(arg fsbench_args | tr , ' ')
umount /mnt
