# Guest side of bench/fs.py: mount the file system under test on /mnt and
# run fsbench there. The kernel command line says which and how much:
# fsbench_fs=virtiofs (tag "share") or fsbench_fs=blk (ext4 on /dev/vda),
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
*) mount -t virtiofs share /mnt ;;
esac
fsbench /mnt $(arg fsbench_args | tr , ' ')
umount /mnt
