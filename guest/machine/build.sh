#!/usr/bin/env bash
# guest/machine/build.sh OUTDIR — build what cove boots its machines with:
#
#   OUTDIR/cove-init            the init shim (static), /init of the initrd
#   OUTDIR/cove-agent           the exec agent (static), /cove-agent
#   OUTDIR/machine-initrd.cpio  uncompressed newc initrd of the two, with
#                               the directories the shim mounts on
#
# Needs no root: every entry is stored as 0:0 with a fixed mtime, so equal
# sources give an equal archive. CC overrides the compiler (default gcc).
# Prints the initrd's path last on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
die() { printf 'machine/build.sh: error: %s\n' "$*" >&2; exit 1; }
(($# == 1)) || { echo "usage: $0 OUTDIR" >&2; exit 2; }
out=$1
cc=${CC:-gcc}
command -v cpio >/dev/null || die "cpio missing (apt-get install cpio)"
mkdir -p "$out"

flags=(-std=gnu11 -D_GNU_SOURCE -static -O2 -Wall -Wextra -Werror -Wformat=2 -Wmissing-prototypes
	-Wstrict-prototypes -Wshadow -Wpointer-arith -Wvla -I"$repo/cli/machine")
"$cc" "${flags[@]}" -o "$out/cove-init.tmp" "$here/init.c" "$here/users.c" "$here/say.c"
"$cc" "${flags[@]}" -o "$out/cove-agent.tmp" "$here/agent.c" "$here/users.c" "$here/say.c" \
	"$repo/cli/machine/agent_proto.c"
for b in cove-init cove-agent; do
	strip "$out/$b.tmp" 2>/dev/null || true
	mv -f "$out/$b.tmp" "$out/$b"
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root"/{dev,proc,sys,newroot}
install -m 0755 "$out/cove-init" "$root/init"
install -m 0755 "$out/cove-agent" "$root/cove-agent"
find "$root" -exec touch -h -d @0 {} +
tmpout=$(mktemp "$out/machine-initrd.cpio.XXXXXX")
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --reproducible --quiet) >"$tmpout"
mv -f "$tmpout" "$out/machine-initrd.cpio"
chmod 0644 "$out/machine-initrd.cpio"
printf '%s\n' "$out/machine-initrd.cpio"
