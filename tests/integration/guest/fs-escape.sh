# virtio-fs: ways out of the share. Symlinks are resolved by the guest in
# its own namespace; a directory the host swaps for a symlink mid-use
# leads nowhere outside. Nothing here may print the host's secret.
mkdir -p /mnt
mount -t virtiofs share /mnt || exit 1
try() {
	echo "try: $*"
	"$@" 2>&1 | head -5
}
try cat /mnt/abs
try cat /mnt/rel
try cat /mnt/reldir/secret
try ls /mnt/reldir/
try cat /mnt/../outside/secret
try sh -c 'echo pwned > /mnt/rel'
try sh -c 'echo pwned > /mnt/abs'
try sh -c 'echo pwned > /mnt/reldir/new'
try ls -la /mnt/..
cd /mnt/dir || exit 1
[ "$(cat inner)" = inner ] || exit 1
touch /mnt/ready
i=0
while [ ! -e /mnt/go ] && [ $i -lt 1200 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -e /mnt/go ] || { echo "host never swapped"; exit 1; }
try ls -la /mnt/dir
try cat /mnt/dir/secret
try cat ./secret
try cat ../dir/secret
try ls -la . ..
try cat ../../outside/secret
try sh -c 'echo pwned > /mnt/dir/new'
try sh -c 'cd /mnt/dir.old && cat inner'
cd /
echo ESCAPE=done
