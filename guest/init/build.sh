#!/usr/bin/env bash
# guest/init/build.sh OUTDIR — compile test-init.c into OUTDIR/test-init, a
# static binary to run as PID 1 in cove test guests. Prints the binary's path
# as the last line on stdout. CC overrides the compiler (default gcc).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# != 1)); then
	echo "usage: $0 OUTDIR" >&2
	exit 2
fi
out=$1
cc=${CC:-gcc}
mkdir -p "$out"

"$cc" -std=gnu11 -static -Os -Wall -Wextra -Werror \
	-Wformat=2 -Wmissing-prototypes -Wstrict-prototypes -Wshadow \
	-Wpointer-arith -Wvla \
	-o "$out/test-init.tmp" "$here/test-init.c"
strip "$out/test-init.tmp" 2>/dev/null || true
mv -f "$out/test-init.tmp" "$out/test-init"
printf '%s\n' "$out/test-init"
