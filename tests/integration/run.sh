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

# One L1 for the whole suite. When the L1 itself dies (exit 123: its kernel
# panicked or it froze; seen here once in ~60 tests, a "corrupted stack end"
# panic of the emulated machine's kernel in a vCPU thread), the tests that
# had not reported run again in a fresh L1, once; results already reported
# stand, failures included.
out=$(mktemp)
trap 'rm -f "$out"' EXIT
all=$(grep -ho '^test_[a-z0-9_]*()' tests/integration/test_*.sh | tr -d '()' |
	grep -E "${TEST_FILTER:-.}" | sort)
rc=0
tests/nested/run --timeout "${COVE_TEST_TIMEOUT:-3000}" -- tests/integration/suite.sh |
	tee "$out" || rc=${PIPESTATUS[0]}
[ "$rc" = 123 ] || exit "$rc"
done_=$(awk '/^(ok|FAIL) / { print "test_" $2 }' "$out" | sort)
left=$(comm -23 <(echo "$all") <(echo "$done_"))
[ -n "$left" ] || exit 1
echo "run.sh: the L1 died; again in a fresh L1: $(echo $left | sed 's/test_//g')" >&2
rc=0
TEST_FILTER="^($(echo $left | tr ' ' '|'))\$" tests/nested/run \
	--timeout "${COVE_TEST_TIMEOUT:-3000}" -- tests/integration/suite.sh |
	tee -a "$out" || rc=${PIPESTATUS[0]}
echo "in all, both L1s: $(grep -c '^ok ' "$out") passed, $(grep -c '^FAIL ' "$out") failed"
if [ "$rc" != 0 ] || grep -q '^FAIL ' "$out"; then
	exit 1
fi
