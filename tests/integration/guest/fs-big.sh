# virtio-fs: a large file read and copied through the share; the host
# compares checksums.
set -e
mkdir -p /mnt
mount -t virtiofs share /mnt
echo "T0=$(date +%s)"
echo "BIG=$(sha256sum < /mnt/big | cut -d' ' -f1)"
echo "T1=$(date +%s)"
cp /mnt/big /mnt/big2
sync
echo "T2=$(date +%s)"
echo 3 > /proc/sys/vm/drop_caches
echo "BIG2=$(sha256sum < /mnt/big2 | cut -d' ' -f1)"
echo "T3=$(date +%s)"
umount /mnt
