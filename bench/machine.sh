#!/usr/bin/env bash
# cove machine figures beside peers (bench/machine.py), for the busybox and
# the Debian 12 systemd test images: create on the host, the rest where
# /dev/kvm is: inside the nested harness, as an unprivileged user in group
# kvm as cove runs for people.
# BENCH_RUNS=N (default 3), BENCH_IMAGES (default "busybox debian"); extra
# args go to machine.py.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
if [ "${1:-}" != --in-l1 ]; then
	tests/deps.sh
	make -s all
	kdir=$(guest/kernel/build.sh)
	ln -sfn "$kdir/bzImage" build/guest/bzImage
	images=$(tests/machine/mkimages.sh)
	export COVE_MACHINE_IMAGES=$images BENCH_RUNS=${BENCH_RUNS:-3}
	export BENCH_IMAGES=${BENCH_IMAGES:-busybox debian}
	# create needs no /dev/kvm: measured here, on the host's own CPU
	echo "== create on the host: busybox, Debian 12" >&2
	for img in busybox:latest:1G debian12:12:2G; do
		case " $BENCH_IMAGES " in *" ${img%%[0-9:]*} "*) ;; *) continue ;; esac
		python3 bench/machine.py --create-only --cove build/cove --runs "$BENCH_RUNS" \
			--image "$images/${img%:*}" --disk-size "${img##*:}" "$@"
	done
	export COVE_NESTED_ENV="COVE_MACHINE_IMAGES BENCH_RUNS BENCH_IMAGES"
	exec tests/nested/run -- bench/machine.sh --in-l1 "$@"
fi
shift
# In L1 (a throwaway overlay): uid 1000 as "bench" in group kvm, and an
# installation of cove it can read.
id bench >/dev/null 2>&1 || {
	old=$(getent passwd 1000 | cut -d: -f1 || true)
	if [ -n "$old" ]; then usermod -l bench "$old"; else useradd -u 1000 -M bench; fi
	usermod -aG kvm bench
}
chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
chmod 0711 /root
chmod -R a+rX "$COVE_MACHINE_IMAGES"
inst=$(mktemp -d /tmp/cove-inst.XXXXXX)
mkdir -p "$inst/guest"
cp build/cove build/cove-vmm "$inst/"
cp -L build/guest/bzImage build/guest/machine-initrd.cpio "$inst/guest/"
chmod -R a+rX "$inst"
cd /tmp
as_bench() { setpriv --reuid=bench --regid="$(id -g bench)" --init-groups "$@"; }
case " $BENCH_IMAGES " in *" busybox "*)
	echo "== busybox (busybox init)" >&2
	as_bench python3 "$repo/bench/machine.py" --cove "$inst/cove" --runs "$BENCH_RUNS" \
		--image "$COVE_MACHINE_IMAGES/busybox:latest" --up 'busybox init: system up' \
		--memory 256M --disk-size 1G "$@" ;;
esac
# Up for systemd is what it says of itself; its console shows no line to
# wait for under quiet, so no QEMU peer for this one.
case " $BENCH_IMAGES " in *" debian "*)
	echo "== Debian 12 (systemd)" >&2
	as_bench python3 "$repo/bench/machine.py" --cove "$inst/cove" --runs "$BENCH_RUNS" \
		--image "$COVE_MACHINE_IMAGES/debian12:12" \
		--ready 'systemctl is-system-running --wait >/dev/null || true' \
		--memory 512M --disk-size 2G "$@" ;;
esac
