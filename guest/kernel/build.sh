#!/usr/bin/env bash
# guest/kernel/build.sh [ARCH] — build the cove guest kernel and print its directory.
#
#   K=$(guest/kernel/build.sh)        # x86_64 is the default ARCH
#   ls "$K"                           # bzImage  vmlinux  .config
#
# The kernel is Debian's linux-source-6.1 package with our fixes in
# guest/kernel/patches/*.patch, configured as `make tinyconfig` plus the
# fragment guest/kernel/config-$ARCH. The result is
# cached outside the tree in
#   ${COVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cove}/kernel/<hash>/
# where <hash> is the sha256 over the fragment, the patches, this script (less
# its comment lines), ARCH and the linux-source package version. A cache hit returns at once. Only the last
# line on stdout is the directory; all progress goes to stderr.
#
# The directory holds:
#   bzImage  compressed (LZ4) boot-protocol image
#   vmlinux  uncompressed ELF with the Xen PVH entry note (for PVH boot)
#   .config  the full resolved configuration
#
# After olddefconfig every option the fragment sets (=y or =value) is checked
# in the resolved .config, and every "is not set" is checked not to be =y:
# Kconfig silently drops options whose dependencies are missing.
#
# Environment:
#   COVE_CACHE              cache root (see above)
#   COVE_KERNEL_JOBS        make -j (default: nproc)
#   COVE_KERNEL_CONFIG_ONLY=1  stop after configuring and checking; print the
#                           path of the resolved .config (for editing the
#                           fragment; nothing is cached)
#
# Measured on the dev machine (Debian 12, 2 vCPUs, gcc 12.2; other people's
# compiles running alongside, load 3-5):
#   source extraction + patches (once per version and patch set)  ~35 s
#   COVE_KERNEL_CONFIG_ONLY=1 (tinyconfig, olddefconfig, check)    ~20 s
#   cold build, -j2: 914 s, 952 s, and 1379 s while a second kernel
#   build shared the two cores; expect 15-25 minutes
#   cache hit                                                      ~0.2 s
# Results: bzImage ~5.0 MiB (LZ4), vmlinux ~21 MiB (ELF with symbols).
set -euo pipefail
# The whole script is one { } block, read by bash before it runs, so that
# editing this file while a build runs cannot derail that build.
{

log() { printf 'kernel/build.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
arch=${1:-x86_64}
case $arch in
x86_64) image_path=arch/x86/boot/bzImage; image_name=bzImage ;;
*) die "unsupported ARCH '$arch' (supported: x86_64)" ;;
esac
fragment=$here/config-$arch
[[ -r $fragment ]] || die "no config fragment $fragment"

src_pkg=linux-source-6.1
src_tar=/usr/src/linux-source-6.1.tar.xz

# ---- packages -------------------------------------------------------------
need_pkgs=("$src_pkg" bc bison flex libelf-dev libssl-dev cpio xz-utils make gcc lz4 patch)
# One dpkg-query for all (one per package costs ~0.6 s on a cache hit).
pkg_state() {
	dpkg-query -W -f='${Package} ${Status}\n' "${need_pkgs[@]}" 2>/dev/null || true
}
state=$(pkg_state)
missing=()
for p in "${need_pkgs[@]}"; do
	grep -qxF "$p install ok installed" <<<"$state" || missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing missing packages: ${missing[*]}"
	sudo=()
	if ((EUID != 0)); then
		command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
		"${sudo[@]}" apt-get update -q >&2
		"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	fi
fi
[[ -r $src_tar ]] || die "$src_tar missing (package $src_pkg)"
src_ver=$(dpkg-query -W -f='${Version}' "$src_pkg")

# Our own fixes to the source, applied in name order with patch -p1.
patches=()
for p in "$here"/patches/*.patch; do
	[[ -e $p ]] && patches+=("$p")
done

# ---- cache key ------------------------------------------------------------
cache=${COVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cove}/kernel
mkdir -p "$cache"
hash=$({
	printf 'arch=%s\nsrc=%s %s\n' "$arch" "$src_pkg" "$src_ver"
	printf -- '--- fragment\n'
	cat "$fragment"
	for p in "${patches[@]}"; do
		printf -- '--- %s\n' "$(basename "$p")"
		cat "$p"
	done
	printf -- '--- build.sh\n'
	# Comment lines of this script do not change the kernel: leave them out
	# so that editing the notes above keeps the cache.
	grep -v '^[[:space:]]*#' "${BASH_SOURCE[0]}"
} | sha256sum | cut -c1-64)
final=$cache/$hash
config_only=${COVE_KERNEL_CONFIG_ONLY:-0}

have_result() {
	[[ -s $final/$image_name && -s $final/vmlinux && -s $final/.config ]]
}
if [[ $config_only != 1 ]] && have_result; then
	printf '%s\n' "$final"
	exit 0
fi

# One builder per key at a time; a second caller waits, then finds the result.
exec 9>"$cache/.lock-$hash"
flock 9
if [[ $config_only != 1 ]] && have_result; then
	printf '%s\n' "$final"
	exit 0
fi

# ---- source (extracted and patched once per version and patch set) -------
if ((${#patches[@]})); then
	src_key=$src_ver-$(cat "${patches[@]}" | sha256sum | cut -c1-12)
else
	src_key=$src_ver
fi
src=$cache/src-$src_key
if [[ ! -f $src/.cove-extracted ]]; then
	exec 8>"$cache/.lock-src-$src_key"
	flock 8
	if [[ ! -f $src/.cove-extracted ]]; then
		log "extracting $src_tar ($src_ver)"
		t0=$SECONDS
		stmp=$(mktemp -d "$cache/tmp.src.XXXXXX")
		tar -C "$stmp" -xf "$src_tar"
		top=$(find "$stmp" -mindepth 1 -maxdepth 1 -type d | head -n1)
		[[ -f $top/Makefile ]] || die "unexpected layout in $src_tar"
		for p in "${patches[@]}"; do
			log "applying $(basename "$p")"
			patch -d "$top" -p1 --batch --forward --quiet <"$p" >&2 ||
				die "patch $(basename "$p") does not apply to $src_pkg $src_ver"
		done
		touch "$top/.cove-extracted"
		rm -rf "$src"
		mv -T "$top" "$src"
		rm -rf "$stmp"
		log "source ready in $((SECONDS - t0)) s"
	fi
	exec 8>&-
fi

# ---- configure --------------------------------------------------------------
work=$(mktemp -d "$cache/tmp.$hash.XXXXXX")
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
obj=$work/build
mkdir -p "$obj"
jobs=${COVE_KERNEL_JOBS:-$(nproc)}
kmake=(make -C "$src" O="$obj" ARCH="$arch" -s)

t0=$SECONDS
log "configuring in $obj (tinyconfig + $(basename "$fragment"))"
"${kmake[@]}" tinyconfig >"$work/tinyconfig.log" 2>&1 ||
	{ cat "$work/tinyconfig.log" >&2; die "make tinyconfig failed"; }
# Append the fragment; later assignments win in Kconfig's .config reader.
cat "$fragment" >>"$obj/.config"
# Kconfig warns about every reassignment; those are the point, so hide them.
"${kmake[@]}" olddefconfig 2>&1 | { grep -v 'warning: override: ' || true; } >&2

# ---- verify that every option in the fragment survived --------------------
bad=()
while IFS= read -r line; do
	if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
		want="${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
		grep -qxF -- "$want" "$obj/.config" ||
			bad+=("$want (got: $(grep -E "^(# )?${BASH_REMATCH[1]}[= ]" "$obj/.config" || echo absent))")
	elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set ]]; then
		sym=${BASH_REMATCH[1]}
		if grep -qE "^${sym}=[ym]$" "$obj/.config"; then
			bad+=("# $sym is not set (got: $(grep -E "^${sym}=" "$obj/.config"))")
		fi
	fi
done <"$fragment"
if ((${#bad[@]})); then
	log "the resolved .config does not honour $(basename "$fragment"):"
	printf '  %s\n' "${bad[@]}" >&2
	die "${#bad[@]} option(s) dropped or changed by Kconfig (missing dependencies?)"
fi
log "all options of $(basename "$fragment") present in .config"

if [[ $config_only == 1 ]]; then
	keep=$cache/config-only-$arch.config
	cp "$obj/.config" "$keep"
	printf '%s\n' "$keep"
	exit 0
fi

# ---- build ------------------------------------------------------------------
log "building with -j$jobs (a cold build takes several minutes)"
"${kmake[@]}" -j"$jobs" "$image_name" vmlinux >&2
log "built in $((SECONDS - t0)) s"

out=$work/out
mkdir -p "$out"
cp "$obj/$image_path" "$out/$image_name"
cp "$obj/vmlinux" "$out/vmlinux"
cp "$obj/.config" "$out/.config"
printf 'arch=%s\nsource=%s %s\nbuild_seconds=%d\n' \
	"$arch" "$src_pkg" "$src_ver" "$((SECONDS - t0))" >"$out/build-info"
rm -rf "$final"
mv -T "$out" "$final"
log "kernel in $final"
printf '%s\n' "$final"
exit 0
}
