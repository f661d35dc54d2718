#!/usr/bin/env bash
# File system benchmark (bench/fs.py): cove's virtio-fs beside QEMU microvm's
# virtio-9p (-virtfs), with ext4 on QEMU's and cove's virtio-blk for
# reference, where /dev/kvm is (directly, or inside the nested-KVM harness).
# BENCH_RUNS=N rounds (default 3); extra args go to fs.py (--files,
# --size-mib, --rand-ops, ...).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
tests/deps.sh
out=build/guest
mkdir -p "$out"
kdir=$(guest/kernel/build.sh)
guest/init/build.sh "$out" >/dev/null
guest/tools/build.sh "$out/tools" >/dev/null
COVE_TEST_INIT=$repo/$out/test-init COVE_GUEST_TOOLS=$repo/$out/tools \
	guest/mkinitrd.sh "$out/fsbench.cpio" --file bench/fs-guest.sh:/tests/fs-bench.sh >/dev/null
# Shares and images go to L1's /tmp (tmpfs), as in the integration tests:
# the build/ share reaches L1 over 9p, which would be what is measured.
tests/nested/run --timeout "${BENCH_TIMEOUT:-5400}" -- python3 bench/fs.py \
	--runs "${BENCH_RUNS:-3}" --kernel "$kdir/bzImage" --initrd "$out/fsbench.cpio" "$@"
