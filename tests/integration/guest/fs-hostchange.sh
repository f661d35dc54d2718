# virtio-fs, cache=none: a change the host makes while the guest uses the
# share is seen at once.
mkdir -p /mnt
mount -t virtiofs share /mnt || exit 1
echo "BEFORE=$(cat /mnt/file)"
[ -e /mnt/newfile ] && echo "NEWFILE=early"
touch /mnt/ready
i=0
while [ ! -e /mnt/go ] && [ $i -lt 1200 ]; do
	sleep 0.1
	i=$((i + 1))
done
echo "AFTER=$(cat /mnt/file)"
[ -e /mnt/newfile ] && echo "NEWFILE=$(cat /mnt/newfile)"
echo "SIZE=$(stat -c %s /mnt/file)"
umount /mnt
