#!/usr/bin/env bash
# guest/tools/build.sh OUTDIR — compile each guest/tools/*.c into a static
# binary OUTDIR/NAME, for test guests (guest/mkrootfs.sh puts them in
# /usr/bin when COVE_GUEST_TOOLS=OUTDIR). CC overrides the compiler.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# != 1)); then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
cc=${CC:-gcc}
mkdir -p "$out"
for src in "$here"/*.c; do
	[[ -e $src ]] || continue
	name=$(basename "$src" .c)
	bin=$out/$name
	[[ $bin -nt $src ]] && continue
	"$cc" -std=gnu11 -static -O2 -Wall -Wextra -Werror \
		-Wformat=2 -Wmissing-prototypes -Wstrict-prototypes -Wshadow \
		-Wpointer-arith -Wvla -o "$bin.tmp" "$src"
	strip "$bin.tmp" 2>/dev/null || true
	mv -f "$bin.tmp" "$bin"
done
printf '%s\n' "$out"
