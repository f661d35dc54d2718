#!/usr/bin/env bash
# tests/shell.sh — boot a cove guest to a shell prompt on this terminal
# (`make shell`, after tests/deps.sh and `make`).
#
# Builds what the guest needs: the kernel (guest/kernel/build.sh, cached
# under ~/.cache/cove/kernel/; about 7 minutes the first time), test-init,
# and build/guest/shell.cpio (test-init with no script: it runs an
# interactive /bin/sh on the console and powers off when that shell exits).
# Then runs build/cove-vmm with --console stdio: directly where /dev/kvm
# exists, else inside the nested-KVM harness (tests/nested/run --interactive),
# which connects this terminal to the monitor in its L1 VM.
#
# Leave with `poweroff` (or `exit`) in the guest, or Ctrl-A x (stops the
# monitor); Ctrl-C goes to the guest. Exits with cove-vmm's status (or the harness's, see
# tests/nested/README.md).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
say() { printf 'shell: %s\n' "$*" >&2; }

[[ -x build/cove-vmm ]] || { say "build/cove-vmm is missing: run make (or make shell)"; exit 1; }

# Each prints its result's path as its last stdout line; progress is on stderr.
K=$(guest/kernel/build.sh | tail -n 1)
[[ -s $K/bzImage ]] || { say "guest/kernel/build.sh gave no bzImage (in '$K')"; exit 1; }
# cove machine's default kernel: guest/bzImage beside build/cove.
mkdir -p build/guest
ln -sfn "$K/bzImage" build/guest/bzImage
guest/init/build.sh build/guest >/dev/null
COVE_TEST_INIT=$PWD/build/guest/test-init guest/mkinitrd.sh build/guest/shell.cpio >/dev/null

vmm=(build/cove-vmm --kernel "$K/bzImage" --initrd build/guest/shell.cpio
	--cpus 2 --memory 512 --cmdline "console=ttyS0 reboot=k panic=-1 quiet")

leave="cove shell: type poweroff (or exit) to leave the guest, Ctrl-A x to stop the monitor"
# a hardware-assisted /dev/kvm (see tests/nested/run), else the L1
if [[ -c /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo; then
	echo "$leave"
	exec "${vmm[@]}"
fi
echo "$leave (nested KVM)"
exec tests/nested/run --interactive -- "$(printf '%q ' "${vmm[@]}")"
