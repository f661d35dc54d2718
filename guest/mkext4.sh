#!/usr/bin/env bash
# guest/mkext4.sh OUT.img SIZE_MB SRCDIR — make a sparse ext4 image of SIZE_MB
# MiB holding a copy of SRCDIR (mkfs.ext4 -d: no root, no mount). As root,
# file owners are copied from SRCDIR; as another user every file is stored
# as 0:0 (set with debugfs). Prints OUT.img last on stdout.
#
# For a root-on-virtio-blk guest: guest/mkrootfs.sh DIR, then this, then boot
# with root=/dev/vda rw (test-init runs as /sbin/init), or from an initramfs
# with cove.root=/dev/vda.
set -euo pipefail

die() { printf 'mkext4.sh: error: %s\n' "$*" >&2; exit 1; }
(($# == 3)) || { echo "usage: $0 OUT.img SIZE_MB SRCDIR" >&2; exit 2; }
out=$1 size=$2 src=$3
[[ $size =~ ^[1-9][0-9]*$ ]] || die "SIZE_MB must be a positive integer, not '$size'"
[[ -d $src ]] || die "$src is not a directory"
mkfs=$(PATH=$PATH:/sbin:/usr/sbin command -v mkfs.ext4) ||
	die "mkfs.ext4 missing (apt-get install e2fsprogs)"

tmpout=$(mktemp "$out.XXXXXX")
trap 'rm -f "$tmpout"' EXIT
truncate -s "${size}M" "$tmpout"
"$mkfs" -F -q -L cove -E root_owner=0:0 -d "$src" "$tmpout" "${size}M" >&2

# As non-root the files in SRCDIR are all the builder's: store them as 0:0.
if ((EUID != 0)); then
	debugfs=$(PATH=$PATH:/sbin:/usr/sbin command -v debugfs) || die "debugfs missing (e2fsprogs)"
	cmds=$(mktemp)
	trap 'rm -f "$tmpout" "$cmds"' EXIT
	(cd "$src" && find . -mindepth 1 -print0) | while IFS= read -r -d '' f; do
		f=${f#.}
		if [[ $f == *[\"$'\n']* ]]; then
			printf 'mkext4.sh: warning: owner of %q left as is\n' "$f" >&2
			continue
		fi
		printf 'sif "%s" uid 0\nsif "%s" gid 0\n' "$f" "$f"
	done >"$cmds"
	"$debugfs" -w -f "$cmds" "$tmpout" >/dev/null 2>"$cmds.err" || {
		cat "$cmds.err" >&2
		rm -f "$cmds.err"
		die "debugfs could not set owners"
	}
	rm -f "$cmds.err"
fi
mv -f "$tmpout" "$out"
trap - EXIT
chmod 0644 "$out"
printf '%s\n' "$out"
