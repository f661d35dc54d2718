#!/usr/bin/env bash
# guest/mkinitrd.sh OUT.cpio [--script FILE] [--file SRC:DST]...
#
# Make an uncompressed newc cpio initrd for cove test guests: the busybox
# tree of guest/mkrootfs.sh with test-init as /init, FILE as
# /etc/cove-test.sh (run by test-init, which then prints COVE-TEST-EXIT=<n>
# and powers off; without a script the guest gets an interactive shell), and
# each SRC copied to DST (an absolute path in the guest; mode is kept, parent
# directories are made). Needs no root: every file is stored as 0:0 and with
# a fixed mtime, so equal inputs give an equal archive.
#
# COVE_TEST_INIT=PATH uses an already built test-init (see mkrootfs.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { printf 'mkinitrd.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { echo "usage: $0 OUT.cpio [--script FILE] [--file SRC:DST]..." >&2; exit 2; }

(($# >= 1)) || usage
out=$1
shift
script=
files=()
while (($#)); do
	case $1 in
	--script) (($# >= 2)) || usage; script=$2; shift 2 ;;
	--script=*) script=${1#--script=}; shift ;;
	--file) (($# >= 2)) || usage; files+=("$2"); shift 2 ;;
	--file=*) files+=("${1#--file=}"); shift ;;
	*) usage ;;
	esac
done
command -v cpio >/dev/null || die "cpio missing (apt-get install cpio)"
[[ -z $script || -r $script ]] || die "--script $script: not readable"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
"$here/mkrootfs.sh" "$root" >/dev/null

if [[ -n $script ]]; then
	install -m 0755 "$script" "$root/etc/cove-test.sh"
fi
for spec in "${files[@]}"; do
	src=${spec%%:*}
	dst=${spec#*:}
	[[ $spec == *:* && -n $src && $dst == /* ]] ||
		die "--file $spec: want SRC:/ABSOLUTE/DST"
	[[ -e $src ]] || die "--file $spec: $src does not exist"
	mkdir -p "$root$(dirname "$dst")"
	cp -a --no-preserve=ownership "$src" "$root$dst"
done

# Fixed timestamps and ownership: the archive depends only on its inputs.
find "$root" -exec touch -h -d @0 {} +
tmpout=$(mktemp "$out.XXXXXX")
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc -R 0:0 --reproducible --quiet) >"$tmpout"
mv -f "$tmpout" "$out"
chmod 0644 "$out"
printf '%s\n' "$out"
