# virtio-fs with cove-vmm running as uid 1000: guest root creates files
# the host sees owned by 1000, and cannot chown them to anyone else.
mkdir -p /mnt
mount -t virtiofs share /mnt || exit 1
echo x > /mnt/byroot || exit 1
mkdir /mnt/dirbyroot || exit 1
echo "GUESTUID=$(stat -c %u /mnt/byroot)"
if chown 0:0 /mnt/byroot 2>/dev/null; then echo "CHOWN0=accepted"; else echo "CHOWN0=refused"; fi
if chown 1000:1000 /mnt/byroot 2>/dev/null; then echo "CHOWNSELF=ok"; else echo "CHOWNSELF=refused"; fi
umount /mnt
