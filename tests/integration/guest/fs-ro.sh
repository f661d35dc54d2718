# virtio-fs: two shares, "ro" read-only and "rw"; every change to ro must
# be refused (the guest mounts it read-write: the server refuses).
mkdir -p /ro /rw
mount -t virtiofs ro /ro || exit 1
mount -t virtiofs rw /rw || exit 1
[ "$(cat /ro/file)" = original ] || exit 1
accepted=0
attempt() {
	if "$@" 2>/dev/null; then
		echo "accepted: $*"
		accepted=$((accepted + 1))
	fi
}
attempt sh -c 'echo x > /ro/new'
attempt sh -c 'echo x >> /ro/file'
attempt sh -c 'echo x > /ro/file'
attempt rm /ro/file
attempt rm -rf /ro/dir
attempt mkdir /ro/d
attempt chmod 777 /ro/file
attempt touch /ro/file
attempt touch -d "2001-01-01" /ro/dir
attempt mv /ro/file /ro/f2
attempt ln /ro/file /ro/l
attempt ln -s x /ro/s
attempt mkfifo /ro/p
attempt truncate -s 0 /ro/file
attempt fstool setxattr /ro/file user.a b
attempt dd if=/dev/zero of=/ro/dir/f bs=1 count=1 conv=notrunc
echo "ROWRITES=$accepted"
echo written > /rw/out && echo "RW=$(cat /rw/out)"
umount /ro
umount /rw
