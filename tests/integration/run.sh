#!/usr/bin/env bash
# Integration tests: build the guest artifacts on the host, then run the
# whole suite in one go where /dev/kvm is (directly, or in one L1 boot of
# the nested-KVM harness).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
out=build/guest
mkdir -p "$out"

kdir=$(guest/kernel/build.sh)
# cove machine's default kernel: guest/bzImage beside build/cove.
ln -sfn "$kdir/bzImage" "$out/bzImage"
guest/init/build.sh "$out" >/dev/null
export COVE_TEST_INIT=$repo/$out/test-init
guest/tools/build.sh "$out/tools" >/dev/null
export COVE_GUEST_TOOLS=$repo/$out/tools

files=()
for s in tests/integration/guest/*.sh; do
	files+=(--file "$s:/tests/$(basename "$s")")
done
guest/mkinitrd.sh "$out/test.cpio" "${files[@]}" >/dev/null

# A root filesystem tree with the same scripts, for root-on-virtio-blk tests.
rm -rf "$out/rootfs"
guest/mkrootfs.sh "$out/rootfs" >/dev/null
mkdir -p "$out/rootfs/tests"
cp tests/integration/guest/*.sh "$out/rootfs/tests/"
guest/mkext4.sh "$out/rootfs.img" 64 "$out/rootfs" >/dev/null

# OCI layouts of the machine test images (busybox init, Debian 12 systemd).
COVE_MACHINE_IMAGES=$(tests/machine/mkimages.sh)

export COVE_KERNEL_DIR=$kdir COVE_GUEST_DIR=$repo/$out COVE_MACHINE_IMAGES
export COVE_NESTED_ENV="COVE_KERNEL_DIR COVE_GUEST_DIR COVE_MACHINE_IMAGES TEST_FILTER BOOT_TIMEOUT FS_BIG_MIB FS_BIG_TIMEOUT COVE_GUEST_QUIET ${COVE_NESTED_ENV:-}"
exec tests/nested/run --timeout "${COVE_TEST_TIMEOUT:-3000}" -- tests/integration/suite.sh
