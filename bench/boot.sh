#!/usr/bin/env bash
# Boot benchmark beside QEMU microvm, where /dev/kvm is (directly, or inside
# the nested-KVM harness). BENCH_RUNS=N (default 10); extra args go to boot.py.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
tests/deps.sh
out=build/guest
mkdir -p "$out"
kdir=$(guest/kernel/build.sh)
guest/init/build.sh "$out" >/dev/null
COVE_TEST_INIT=$repo/$out/test-init guest/mkinitrd.sh "$out/bench.cpio" \
	--file tests/integration/guest/hello.sh:/tests/hello.sh >/dev/null
for k in bzImage vmlinux; do
	echo "== $k" >&2
	tests/nested/run -- python3 bench/boot.py --runs "${BENCH_RUNS:-10}" \
		--kernel "$kdir/$k" --initrd "$out/bench.cpio" "$@"
done
