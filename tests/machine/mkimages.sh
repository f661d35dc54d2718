#!/usr/bin/env bash
# tests/machine/mkimages.sh — build the machine test images once and cache
# them as OCI layouts (skopeo's `oci:DIR:TAG`), then print the cache dir:
#
#   busybox/   tag latest   busybox init (/sbin/init), a uid-1000 user
#              named "user" (the host user must take its place), tar, sh
#   debian12/  tag 12       Debian 12 (debootstrap minbase) with
#              systemd as /sbin/init, dbus, sudo, iproute2, procps, busybox
#              (httpd for the service test) and netcat-openbsd
#
# Cached under ${COVE_CACHE:-~/.cache/cove}/images/<hash of this script and
# mkimage.py>/; a second run prints the same dir at once. debootstrap needs
# root and Debian's mirror (the one apt uses, or COVE_DEBIAN_MIRROR).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkimage=$here/../image/mkimage.py
die() { printf 'mkimages.sh: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'mkimages.sh: %s\n' "$*" >&2; }

key=$(cat "${BASH_SOURCE[0]}" "$mkimage" | sha256sum | cut -c1-16)
cache=${COVE_CACHE:-$HOME/.cache/cove}/images/$key
if [[ -e $cache/done ]]; then
	printf '%s\n' "$cache"
	exit 0
fi
((EUID == 0)) || die "debootstrap needs root (run as root, or let make test do it)"
for tool in debootstrap tar python3; do
	command -v "$tool" >/dev/null || die "$tool missing (tests/deps.sh installs it)"
done
[[ -x /bin/busybox ]] || die "/bin/busybox missing (apt-get install busybox-static)"

mkdir -p "$(dirname "$cache")"
work=$(mktemp -d "$(dirname "$cache")/tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT

# One gzip layer from a root tree, numeric owners, xattrs kept.
pack() { # ROOT OUTDIR TAG
	tar --numeric-owner --xattrs --xattrs-include='*' --sort=name \
		--mtime=@1700000000 -C "$1" -cf "$work/layer.tar" .
	python3 "$mkimage" "$2" "$3" tar "$work/layer.tar" >/dev/null
	rm -f "$work/layer.tar"
}

busybox_tree() { # ROOT
	local root=$1 applet
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/init.d,proc,sys,dev,run,tmp,root,home/user,var/log}
	chmod 1777 "$root/tmp"
	cp /bin/busybox "$root/bin/busybox"
	for applet in $(/bin/busybox --list-full); do
		[[ -e $root/$applet ]] || ln -s /bin/busybox "$root/$applet"
	done
	cat >"$root/etc/inittab" <<'INITTAB'
::sysinit:/etc/init.d/rcS
ttyS0::respawn:/sbin/getty -L 115200 ttyS0 vt100
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
::shutdown:/bin/umount -a -r
INITTAB
	cat >"$root/etc/init.d/rcS" <<'RCS'
#!/bin/sh
# Mount what busybox init does not, unless the boot already did.
m() { mountpoint -q "$3" || { mkdir -p "$3"; mount -t "$1" "$2" "$3"; }; }
m proc proc /proc
m sysfs sysfs /sys
m devtmpfs devtmpfs /dev
m devpts devpts /dev/pts
m tmpfs tmpfs /dev/shm
m tmpfs tmpfs /run
mount -o remount,rw / 2>/dev/null
[ -s /etc/hostname ] && hostname -F /etc/hostname
echo "busybox init: system up"
RCS
	chmod 0755 "$root/etc/init.d/rcS"
	printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'user:x:1000:1000:user:/home/user:/bin/sh' \
		'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"$root/etc/passwd"
	printf '%s\n' 'root:x:0:' 'user:x:1000:' 'nogroup:x:65534:' >"$root/etc/group"
	printf '%s\n' 'root:*:19000:0:99999:7:::' 'user:*:19000:0:99999:7:::' \
		'nobody:*:19000:0:99999:7:::' >"$root/etc/shadow"
	chmod 0640 "$root/etc/shadow"
	chown 1000:1000 "$root/home/user"
	echo busybox >"$root/etc/hostname"
}

debian_tree() { # ROOT
	local root=$1 mirror=${COVE_DEBIAN_MIRROR:-}
	if [[ -z $mirror ]]; then
		mirror=$(awk '/^(URIs:|deb) +https?:\/\/[^ ]+\/debian\/?( |$)/ { print $2; exit }' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
		mirror=${mirror:-http://deb.debian.org/debian}
	fi
	log "debootstrap bookworm from $mirror (a few minutes, once)"
	debootstrap --variant=minbase \
		--include=systemd,systemd-sysv,dbus,sudo,iproute2,procps,busybox,netcat-openbsd \
		bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
	# What a container image ships: no machine identity, no package lists.
	: >"$root/etc/machine-id"
	rm -f "$root/var/lib/dbus/machine-id"
	echo debian >"$root/etc/hostname"
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
		"$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
}

log "busybox image"
busybox_tree "$work/busybox-root"
pack "$work/busybox-root" "$work/busybox" latest
log "Debian 12 image"
debian_tree "$work/debian-root"
pack "$work/debian-root" "$work/debian12" 12
rm -rf "$work/busybox-root" "$work/debian-root" "$work/debootstrap.log"
touch "$work/done"
rm -rf "$cache"
mv "$work" "$cache"
trap - EXIT
printf '%s\n' "$cache"
