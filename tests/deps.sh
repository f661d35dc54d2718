#!/usr/bin/env bash
# Install what building and testing cove needs, by Debian package name.
# Quiet and quick when everything is already there.
set -euo pipefail

pkgs=(
	gcc make pkg-config
	liburing-dev libcmocka-dev libslirp-dev
	clang llvm lld libclang-rt-14-dev	# libFuzzer, sanitizers
	busybox-static cpio e2fsprogs		# test guests
	qemu-system-x86 linux-image-amd64 kmod	# nested-KVM harness, bench peer
	linux-source-6.1 bc bison flex libelf-dev libssl-dev xz-utils	# guest kernel
	libcurl4-openssl-dev libarchive-dev libext2fs-dev libjansson-dev	# cove
	docker-registry skopeo curl openssl	# cove image tests
	debootstrap tar				# machine test images (tests/machine)
	python3 procps
	iputils-ping				# net tests
	nftables				# cove machine's bridge (NAT), its test
	iperf3					# net bench (host, and copied into its guest)
	acpica-tools				# iasl -d checks the DSDT (unit test)
)

missing=()
for p in "${pkgs[@]}"; do
	# dpkg-query prints "install ok installed" for an installed package
	if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
		missing+=("$p")
	fi
done
# The nested harness's preferred L1 kernel (tests/nested/run says why): best
# effort, as a point release may drop it; the harness then takes the newest.
l1k=linux-image-6.1.0-50-amd64
if [ "$(dpkg-query -W -f='${Status}' "$l1k" 2>/dev/null)" != "install ok installed" ] &&
	apt-cache show "$l1k" >/dev/null 2>&1; then
	missing+=("$l1k")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >&2
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
