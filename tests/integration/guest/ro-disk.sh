# /dev/vdb is read-only: raw writes must fail, and the kernel must know.
echo "RO=$(cat /sys/block/vdb/ro)"
if dd if=/dev/zero of=/dev/vdb bs=4096 count=1 oflag=direct 2>/dev/null; then
	echo "WRITE=accepted"
else
	echo "WRITE=refused"
fi
head -c 16 /dev/vdb | od -An -c | head -1
