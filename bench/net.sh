#!/usr/bin/env bash
# Network benchmark beside QEMU microvm (bench/net.py), where /dev/kvm is
# (directly, or inside the nested-KVM harness). The guest runs Debian's
# iperf3, copied into the bench initrd with the shared libraries it needs.
# BENCH_RUNS=N (default 3); extra args go to net.py (--seconds N).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
tests/deps.sh
out=build/guest
mkdir -p "$out"
kdir=$(guest/kernel/build.sh)
guest/init/build.sh "$out" >/dev/null
iperf=$(command -v iperf3)
files=(--file bench/net-guest.sh:/tests/net-bench.sh --file "$iperf:/usr/bin/iperf3")
# Each library at the path the loader looks for it, as a file (not a link).
for lib in $(ldd "$iperf" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'); do
	files+=(--file "$(realpath "$lib"):$lib")
done
COVE_TEST_INIT=$repo/$out/test-init guest/mkinitrd.sh "$out/net-bench.cpio" "${files[@]}" >/dev/null
tests/nested/run -- python3 bench/net.py --runs "${BENCH_RUNS:-3}" \
	--kernel "$kdir/bzImage" --initrd "$out/net-bench.cpio" "$@"
