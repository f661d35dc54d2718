#!/usr/bin/env bash
# guest/mkrootfs.sh OUTDIR — lay out a busybox root tree for cove test guests:
#
#   bin/busybox + a symlink per applet (at busybox's own paths: bin, sbin,
#   usr/bin, usr/sbin), test-init as /init and /sbin/init, the directories
#   proc sys dev tmp mnt newroot etc root run var, and a minimal etc/
#   (passwd, group, hostname).
#
# The tree serves both an initramfs (guest/mkinitrd.sh) and an ext4 root
# (guest/mkext4.sh). OUTDIR must not exist or be empty. busybox comes from
# Debian's busybox-static, installed if missing. COVE_TEST_INIT=PATH uses an
# already built test-init instead of compiling one; COVE_GUEST_TOOLS=DIR
# (absolute) adds the executables in DIR to usr/bin. Prints OUTDIR last on
# stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { printf 'mkrootfs.sh: error: %s\n' "$*" >&2; exit 1; }

(($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
if [[ -e $out ]] && [[ -n $(ls -A "$out") ]]; then
	die "$out exists and is not empty"
fi

busybox=/bin/busybox
st=$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null || true)
if [[ $st != "install ok installed" ]]; then
	printf 'mkrootfs.sh: installing busybox-static\n' >&2
	sudo=()
	((EUID == 0)) || sudo=(sudo)
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q busybox-static >&2
fi
[[ -x $busybox ]] || die "$busybox missing"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [[ -n ${COVE_TEST_INIT:-} ]]; then
	[[ -x $COVE_TEST_INIT ]] || die "COVE_TEST_INIT=$COVE_TEST_INIT is not executable"
	init=$(realpath "$COVE_TEST_INIT")
else
	init=$("$here/init/build.sh" "$tmp" | tail -n1)
fi

mkdir -p "$out"
cd "$out"
mkdir -p bin sbin usr/bin usr/sbin proc sys dev tmp mnt newroot etc root run var/tmp
chmod 1777 tmp var/tmp
chmod 0700 root

cp "$busybox" bin/busybox
chmod 0755 bin/busybox
# One symlink per applet, relative, at the path busybox gives for it.
while IFS= read -r applet; do
	[[ -n $applet && $applet != bin/busybox ]] || continue
	dir=${applet%/*}
	[[ $dir == "$applet" ]] && dir=.
	case $dir in
	.) rel=bin/busybox ;;
	bin) rel=busybox ;;
	sbin) rel=../bin/busybox ;;
	usr/bin | usr/sbin) rel=../../bin/busybox ;;
	*) die "unexpected applet path $applet" ;;
	esac
	mkdir -p "$dir"
	ln -sfn "$rel" "$applet"
done < <("$busybox" --list-full)
rm -f linuxrc

# sbin/init is a busybox applet symlink by now: replace it, not its target.
rm -f sbin/init
cp "$init" sbin/init
chmod 0755 sbin/init
ln -sfn sbin/init init

# Static test tools (guest/tools/build.sh) in /usr/bin, over any applet.
if [[ -n ${COVE_GUEST_TOOLS:-} ]]; then
	for t in "$COVE_GUEST_TOOLS"/*; do
		[[ -f $t && -x $t ]] || continue
		rm -f "usr/bin/${t##*/}"
		cp "$t" "usr/bin/${t##*/}"
		chmod 0755 "usr/bin/${t##*/}"
	done
fi

printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
printf 'root:x:0:\n' >etc/group
printf 'cove\n' >etc/hostname
cd - >/dev/null
printf '%s\n' "$out"
