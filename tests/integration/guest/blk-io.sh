# Write a pattern through the block device, read it back after dropping caches.
dd if=/dev/urandom of=/tmp/pat bs=1M count=8 2>/dev/null
dd if=/tmp/pat of=/dev/vda bs=1M oflag=direct 2>/dev/null
sync
echo 3 > /proc/sys/vm/drop_caches
dd if=/dev/vda of=/tmp/back bs=1M count=8 iflag=direct 2>/dev/null
a=$(md5sum < /tmp/pat); b=$(md5sum < /tmp/back)
[ "$a" = "$b" ] && echo "BLKIO=match ${a%% *}" || echo "BLKIO=mismatch"
