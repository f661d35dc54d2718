#!/usr/bin/env bash
# guest/qemu-run.sh KERNEL INITRD [options] — boot a cove test guest under
# QEMU's microvm machine (TCG unless /dev/kvm is usable), as a reference to
# check guest artifacts without cove-vmm. The console goes to stderr and to
# LOG (--log); the exit status is the guest's COVE-TEST-EXIT=<n>, or 124 if
# it did not finish within --timeout, or 125 if it ended without the line.
#
#   --disk IMG        attach IMG as a virtio-blk disk (/dev/vda)
#   --append ARGS     extra kernel command-line words
#   --acpi on|off     microvm ACPI (default on: virtio-mmio devices come from
#                     the DSDT; off: QEMU adds virtio_mmio.device= words to
#                     the command line itself)
#   --smp N, --mem MB (defaults 2, 256)
#   --timeout S       default 120
#   --log FILE        keep the console log there (default: a temp file)
#
# KERNEL may be a bzImage or the PVH vmlinux. INITRD "-" boots without one
# (e.g. --disk root.img --append "root=/dev/vda rw").
set -euo pipefail

die() { printf 'qemu-run.sh: error: %s\n' "$*" >&2; exit 2; }
(($# >= 2)) || die "usage: $0 KERNEL INITRD [--disk IMG] [--append ARGS] [--acpi on|off] [--smp N] [--mem MB] [--timeout S] [--log FILE]"
kernel=$1 initrd=$2
shift 2
disk='' append='' acpi=on smp=2 mem=256 timeout=120 log=''
while (($#)); do
	(($# >= 2)) || die "$1 needs a value"
	case $1 in
	--disk) disk=$2 ;;
	--append) append=$2 ;;
	--acpi) acpi=$2 ;;
	--smp) smp=$2 ;;
	--mem) mem=$2 ;;
	--timeout) timeout=$2 ;;
	--log) log=$2 ;;
	*) die "unknown option $1" ;;
	esac
	shift 2
done
qemu=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
[[ -r $kernel ]] || die "cannot read $kernel"
[[ $initrd == - || -r $initrd ]] || die "cannot read $initrd"
[[ $acpi == on || $acpi == off ]] || die "--acpi on|off"

accel=(-accel tcg)
cpu=max
# Under TCG on a busy host the kernel often fails to calibrate the TSC
# against the PIT and then, with microvm's ACPI tables, waits forever for
# timer ticks. TCG's TSC runs at the host's rate: tell the guest that rate.
mhz=$(awk -F: '/^cpu MHz/ { printf "%d", $2; exit }' /proc/cpuinfo 2>/dev/null || true)
tcg_args=" tsc_early_khz=$((${mhz:-2000} * 1000))"
if [[ -w /dev/kvm ]]; then
	accel=(-accel kvm)
	cpu=host
	tcg_args=
fi

cleanup_log=
if [[ -z $log ]]; then
	log=$(mktemp)
	cleanup_log=$log
fi
trap '[[ -z $cleanup_log ]] || rm -f "$cleanup_log"' EXIT

cmdline="console=ttyS0 panic=-1$tcg_args"
# Without ACPI, microvm offers neither power-off nor a reset port: test-init
# resets (cove.exit=auto), and only a triple fault reaches -no-reboot.
[[ $acpi == on ]] || cmdline+=" reboot=t"
cmdline+=" $append"
args=(-M "microvm,acpi=$acpi" "${accel[@]}" -cpu "$cpu" -smp "$smp" -m "$mem"
	-nographic -nodefaults -serial stdio -no-reboot
	-kernel "$kernel")
[[ $initrd == - ]] || args+=(-initrd "$initrd")
if [[ -n $disk ]]; then
	drive="id=d0,file=$disk,format=raw,if=none"
	args+=(-drive "$drive" -device "virtio-blk-device,drive=d0")
fi
args+=(-append "$cmdline")

rc=0
timeout --foreground "$timeout" "$qemu" "${args[@]}" </dev/null 2>&1 | tee "$log" >&2 || rc=$?
if ((rc == 124)); then
	echo "qemu-run.sh: guest did not finish within $timeout s" >&2
	exit 124
fi
line=$(tr -d '\r' <"$log" | grep -aE '^COVE-TEST-EXIT=[0-9]+$' | tail -n1 || true)
if [[ -z $line ]]; then
	echo "qemu-run.sh: no COVE-TEST-EXIT line (qemu status $rc)" >&2
	exit 125
fi
exit "${line#COVE-TEST-EXIT=}"
