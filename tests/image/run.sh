#!/usr/bin/env bash
# End-to-end tests of `cove image` against Debian's docker-registry on
# loopback: push with skopeo, pull, list, unpack to ext4 (checked with
# e2fsck and debugfs), and the refusals (registry down, unknown image,
# corrupt blob, malicious layers). Runs on the host, as any user; no KVM.
set -uo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
COVE=${COVE:-$repo/build/cove}
T=$(mktemp -d /tmp/cove-image.XXXXXX)
export XDG_DATA_HOME=$T/data HOME=$T/home
mkdir -p "$HOME"
reg_pid=

cleanup() {
	[ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "  $*" >&2
	return 1
}

# run_fail PATTERN CMD...: CMD exits 1 with one line on stderr matching PATTERN.
run_fail() {
	local pat=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc -eq 1 ] || fail "$* exited $rc, not 1: $(cat "$T/err")" || return 1
	[ "$(wc -l <"$T/err")" -eq 1 ] || fail "$*: not one error line: $(cat "$T/err")" || return 1
	grep -qE "$pat" "$T/err" || fail "$*: error \"$(cat "$T/err")\" lacks /$pat/" || return 1
}

# dbg IMAGE CMD: debugfs request output
dbg() {
	debugfs -R "$2" "$1" 2>/dev/null
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_registry() {
	port=$(free_port)
	cat >"$T/registry.yml" <<EOC
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $T/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOC
	docker-registry serve "$T/registry.yml" >"$T/registry.log" 2>&1 &
	reg_pid=$!
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && return 0
		sleep 0.1
	done
	echo "registry did not start: $(cat "$T/registry.log")" >&2
	return 1
}

echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$T/policy.json"
push() {	# push OCI_DIR:TAG REPO:TAG
	skopeo --policy "$T/policy.json" copy -q --dest-tls-verify=false "oci:$1" \
		"docker://127.0.0.1:$port/$2" >"$T/skopeo.log" 2>&1 ||
		fail "skopeo copy $1: $(cat "$T/skopeo.log")"
}

mkimage() {	# mkimage DIR TAG KIND [ARG]
	python3 tests/image/mkimage.py "$@" >/dev/null
}

test_help() {
	$COVE --help | grep -q "image  *Manage images" || fail "cove --help"
	$COVE image --help | grep -q "pull  *Download" || fail "cove image --help"
	for c in pull import ls rm unpack; do
		$COVE image $c --help | grep -q "^Usage: cove image $c" || fail "cove image $c --help"
	done
	run_fail 'unknown command "frob"' $COVE frob
	run_fail 'unknown command "image frob"' $COVE image frob
	run_fail 'pull needs exactly one image' $COVE image pull
	run_fail 'unknown or incomplete option --bogus' $COVE image ls --bogus
}

test_bad_reference() {
	run_fail 'invalid reference.*lowercase' $COVE image pull Debian:12
	run_fail 'invalid reference.*bad tag' $COVE image pull 'debian:bad tag!'
	run_fail 'invalid reference.*digest' $COVE image pull debian@sha256:1234
}

test_pull() {
	push "$T/img:1" test/busybox:1 || return 1
	$COVE image pull "127.0.0.1:$port/test/busybox:1" >"$T/out" 2>&1 || fail "pull: $(cat "$T/out")" || return 1
	grep -q "downloaded" "$T/out" || fail "pull printed no progress"
	$COVE image ls | grep -qE "^127.0.0.1:$port/test/busybox +1 " || fail "ls: $($COVE image ls)"
	$COVE image ls --format json | python3 -c '
import json, sys
imgs = json.load(sys.stdin)
assert any(i["repository"].endswith("/test/busybox") and i["tag"] == "1" and
	   i["digest"].startswith("sha256:") for i in imgs), imgs' || fail "ls --format json"
	[ "$($COVE image ls -q | wc -l)" -ge 1 ] || fail "ls -q"
	# again: nothing to fetch
	$COVE image pull "127.0.0.1:$port/test/busybox:1" >"$T/out" 2>&1 || fail "second pull"
	grep -q "already exists" "$T/out" || fail "second pull fetched again: $(cat "$T/out")"
	# by digest
	d=$($COVE image ls --format json | python3 -c '
import json, sys
print([i["digest"] for i in json.load(sys.stdin) if i["repository"].endswith("/test/busybox")][0])')
	$COVE image pull "127.0.0.1:$port/test/busybox@$d" -q >"$T/out" || fail "pull by digest"
	[ "$(cat "$T/out")" = "127.0.0.1:$port/test/busybox@$d" ] || fail "pull -q after the name printed $(cat "$T/out")"
	$COVE image ls | grep -qE "^127.0.0.1:$port/test/busybox +<none> +${d:7:12} " || fail "ls of a pull by digest: $($COVE image ls)"
}

test_unpack() {
	local img=$T/root.img
	$COVE image unpack "127.0.0.1:$port/test/busybox:1" "$img" --size 256M >/dev/null ||
		fail "unpack: $(cove_err)" || return 1
	[ "$(stat -c %s "$img")" -eq $((256 << 20)) ] || fail "size $(stat -c %s "$img")"
	[ "$(du -k "$img" | cut -f1)" -lt 32768 ] || fail "image is not sparse: $(du -h "$img")"
	e2fsck -fn "$img" >"$T/fsck" 2>&1 || fail "e2fsck: $(cat "$T/fsck")" || return 1
	dbg "$img" "stat /bin/busybox" | grep -q "Mode:  0755" || fail "busybox mode"
	dbg "$img" "stat /bin/busybox" | grep -q "Links: 2" || fail "busybox hardlink count"
	[ "$(dbg "$img" "stat /usr/bin/busybox-hard" | sed -n 's/^Inode: \([0-9]*\).*/\1/p')" = \
	  "$(dbg "$img" "stat /bin/busybox" | sed -n 's/^Inode: \([0-9]*\).*/\1/p')" ] || fail "hardlink inode"
	dbg "$img" "dump /bin/busybox $T/bb" && cmp -s "$T/bb" /bin/busybox || fail "busybox content"
	dbg "$img" "stat /bin/sh" | grep -q 'Fast link dest: "busybox"' || fail "symlink /bin/sh"
	dbg "$img" "stat /sbin/init" | grep -q 'Type: symlink' || fail "symlink /sbin/init"
	dbg "$img" "stat /dev/null" | grep -q "Type: character special" || fail "/dev/null type"
	dbg "$img" "stat /dev/null" | grep -q "Device major/minor number: 01:03" || fail "/dev/null numbers"
	dbg "$img" "stat /dev/sda" | grep -q "Type: block special" || fail "/dev/sda"
	dbg "$img" "stat /dev/initctl" | grep -q "Type: FIFO" || fail "fifo"
	dbg "$img" "stat /tmp" | grep -q "Mode:  01777" || fail "/tmp mode"
	dbg "$img" "stat /usr/bin/setuid" | grep -q "Mode:  04755" || fail "setuid mode"
	dbg "$img" "stat /home/user/file" | grep -qE "User: +1000 +Group: +1000" || fail "owner"
	dbg "$img" "stat /home/user/file" | grep -q "Mode:  0640" || fail "owner file mode"
	dbg "$img" "stat /bin/busybox" | grep -q "mtime: 0x6553f100" || fail "mtime"
	dbg "$img" "ea_get /etc/motd user.cove" | grep -q hello || fail "xattr"
	[ "$(dbg "$img" "cat /etc/motd")" = "welcome to cove" ] || fail "motd content"
	dbg "$img" "stat /etc/passwd" | grep -q "Links: 2" || fail "cross-layer hardlink"
	dbg "$img" "stat /abs/file" | grep -q "Type: regular" || fail "absolute path entry"
	# whiteouts
	dbg "$img" "stat /etc/removed.txt" | grep -q "Inode:" && fail "whiteout: etc/removed.txt still there"
	dbg "$img" "stat /gone" | grep -q "Inode:" && fail "whiteout: /gone still there"
	dbg "$img" "ls /opq" | grep -qE "(^| )(a|b)( |$)" && fail "opaque dir kept lower files"
	dbg "$img" "cat /opq/c" | grep -q c || fail "opaque dir lost its own file"
	# sparse file holes stay holes
	dbg "$img" "stat /big-sparse" | grep -q "Size: 1048580" || fail "sparse size"
	[ "$(dbg "$img" "stat /big-sparse" | sed -n 's/.*Blockcount: \([0-9]*\).*/\1/p')" -lt 100 ] ||
		fail "sparse file is not sparse"
	run_fail "exists" $COVE image unpack "127.0.0.1:$port/test/busybox:1" "$img" --size 256M
	run_fail "between 8M and 16T" $COVE image unpack "127.0.0.1:$port/test/busybox:1" "$T/small.img" --size 1M
	[ ! -e "$T/small.img" ] || fail "a failed unpack left its file"
	run_fail "bad size" $COVE image unpack "127.0.0.1:$port/test/busybox:1" "$T/x.img" --size 12Q
}

cove_err() {
	cat "$T/err" 2>/dev/null
}

test_import() {
	$COVE image import -q "oci:$T/img:1" >/dev/null || fail "import oci:" || return 1
	$COVE image ls | grep -qE "^localhost/img +1 " || fail "import oci: not listed"
	(cd "$T/img" && tar -cf "$T/img.tar" .) || return 1
	$COVE image import -q "oci-archive:$T/img.tar:1" arch/busybox:2 >/dev/null || fail "import oci-archive:"
	$COVE image ls | grep -qE "^docker.io/arch/busybox +2 " || fail "import oci-archive: not listed"
	run_fail 'no image tagged "nope"' $COVE image import "oci:$T/img:nope"
	run_fail 'unknown source' $COVE image import "tarball:$T/img.tar"
}

test_index() {
	local img=$T/multi.img
	mkimage "$T/multi" 1 multi || return 1
	skopeo --policy "$T/policy.json" copy -q --all --dest-tls-verify=false "oci:$T/multi:1" \
		"docker://127.0.0.1:$port/test/multi:1" >"$T/skopeo.log" 2>&1 ||
		fail "skopeo copy --all: $(cat "$T/skopeo.log")" || return 1
	curl -sf -H "Accept: application/vnd.oci.image.index.v1+json" \
		"http://127.0.0.1:$port/v2/test/multi/manifests/1" | grep -q '"manifests"' ||
		fail "the registry does not hold an index" || return 1
	$COVE image pull -q "127.0.0.1:$port/test/multi:1" >/dev/null || fail "pull of an index" || return 1
	$COVE image unpack -q "127.0.0.1:$port/test/multi:1" "$img" --size 16M || fail "unpack multi" || return 1
	[ "$(dbg "$img" "cat /arch")" = amd64 ] || fail "the index gave $(dbg "$img" "cat /arch"), not amd64"
	# the same from the layout
	$COVE image import -q "oci:$T/multi:1" local/multi:1 >/dev/null || fail "import of an index"
}

test_docker_archive() {
	skopeo --policy "$T/policy.json" copy -q "oci:$T/img:1" "docker-archive:$T/docker.tar:saved/busybox:7" \
		>"$T/skopeo.log" 2>&1 || fail "skopeo to docker-archive: $(cat "$T/skopeo.log")" || return 1
	$COVE image import -q "docker-archive:$T/docker.tar" >/dev/null || fail "import docker-archive:" || return 1
	$COVE image ls | grep -qE "^docker.io/saved/busybox +7 " || fail "docker-archive: not named by its tag"
	$COVE image unpack -q saved/busybox:7 "$T/docker.img" --size 64M || fail "unpack docker-archive image" || return 1
	e2fsck -fn "$T/docker.img" >/dev/null 2>&1 || fail "e2fsck docker-archive image"
	dbg "$T/docker.img" "stat /dev/null" | grep -q "Type: character special" || fail "docker-archive /dev/null"
}

test_token_auth() {
	local aport auth_pid r
	aport=$(free_port)
	python3 tests/image/authproxy.py "$aport" "$port" "$T/tokens.log" &
	auth_pid=$!
	for _ in $(seq 50); do
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$aport/v2/")" = 401 ] && break
		sleep 0.1
	done
	rm -rf "$XDG_DATA_HOME.auth"
	r=0
	XDG_DATA_HOME=$XDG_DATA_HOME.auth $COVE image pull -q "127.0.0.1:$aport/test/busybox:1" >"$T/out" 2>&1 || r=$?
	kill $auth_pid
	wait $auth_pid 2>/dev/null || true
	rm -rf "$XDG_DATA_HOME.auth"
	[ $r -eq 0 ] || fail "pull through a token-protected registry: $(cat "$T/out")" || return 1
	grep -q "scope=repository%3Atest%2Fbusybox%3Apull" "$T/tokens.log" ||
		fail "no token asked for the right scope: $(cat "$T/tokens.log")"
}

test_retag() {
	local first
	mkimage "$T/u1" 1 unique && push "$T/u1:1" test/retag:1 || return 1
	$COVE image pull -q "127.0.0.1:$port/test/retag:1" >/dev/null || fail "pull retag 1" || return 1
	first=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$T/u1/index.json")
	[ -e "$XDG_DATA_HOME/cove/images/blobs/sha256/$first" ] || fail "first manifest not stored" || return 1
	mkimage "$T/u2" 1 unique && push "$T/u2:1" test/retag:1 || return 1
	$COVE image pull -q "127.0.0.1:$port/test/retag:1" >/dev/null || fail "pull retag 2" || return 1
	[ ! -e "$XDG_DATA_HOME/cove/images/blobs/sha256/$first" ] || fail "the replaced image's blobs stayed"
	[ "$($COVE image ls | grep -c "test/retag ")" -eq 1 ] || fail "retag listed twice"
}

test_concurrent() {
	local x=$T/conc p1 p2 r1=0 r2=0
	XDG_DATA_HOME=$x $COVE image pull -q "127.0.0.1:$port/test/busybox:1" >/dev/null 2>"$T/c1" &
	p1=$!
	XDG_DATA_HOME=$x $COVE image pull -q "127.0.0.1:$port/test/multi:1" >/dev/null 2>"$T/c2" &
	p2=$!
	wait $p1 || r1=$?
	wait $p2 || r2=$?
	[ $r1 -eq 0 ] && [ $r2 -eq 0 ] || fail "parallel pulls: $(cat "$T/c1" "$T/c2")" || return 1
	[ "$(XDG_DATA_HOME=$x $COVE image ls -q | wc -l)" -eq 2 ] || fail "parallel pulls: $(XDG_DATA_HOME=$x $COVE image ls)"
	[ -z "$(ls "$x/cove/images/tmp")" ] || fail "parallel pulls left files in tmp/"
}

test_https() {
	local tport tls_pid r=0
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
		-addext "subjectAltName=IP:127.0.0.1" -keyout "$T/key.pem" -out "$T/cert.pem" \
		>/dev/null 2>&1 || fail "openssl req" || return 1
	tport=$(free_port)
	sed -e "s/127.0.0.1:$port/127.0.0.1:$tport/" "$T/registry.yml" >"$T/tls.yml"
	printf '  tls:\n    certificate: %s\n    key: %s\n' "$T/cert.pem" "$T/key.pem" >>"$T/tls.yml"
	docker-registry serve "$T/tls.yml" >"$T/tls.log" 2>&1 &
	tls_pid=$!
	for _ in $(seq 100); do
		curl -sf --cacert "$T/cert.pem" "https://127.0.0.1:$tport/v2/" >/dev/null && break
		sleep 0.1
	done
	rm -rf "$XDG_DATA_HOME.tls"
	XDG_DATA_HOME=$XDG_DATA_HOME.tls SSL_CERT_FILE=$T/cert.pem \
		$COVE image pull -q "127.0.0.1:$tport/test/busybox:1" >"$T/out" 2>&1 || r=$?
	[ $r -eq 0 ] || fail "pull over HTTPS: $(cat "$T/out")"
	# an untrusted certificate is an error, not a reason to fall back to HTTP
	XDG_DATA_HOME=$XDG_DATA_HOME.tls run_fail "registry 127.0.0.1:$tport: .*certificate" \
		$COVE image pull "127.0.0.1:$tport/test/multi:1" || r=1
	kill $tls_pid
	wait $tls_pid 2>/dev/null || true
	rm -rf "$XDG_DATA_HOME.tls"
	return $r
}

test_registry_down() {
	local p
	p=$(free_port)
	run_fail "^cove: cannot reach registry 127.0.0.1:$p: Connection refused$" \
		$COVE image pull "127.0.0.1:$p/test/busybox:1"
}

test_unknown_image() {
	run_fail "not found" $COVE image pull "127.0.0.1:$port/test/nope:1"
	run_fail "not found" $COVE image pull "127.0.0.1:$port/test/busybox:2"
	run_fail "no such image" $COVE image unpack nope:1 "$T/nope.img" --size 64M
	run_fail "no such image" $COVE image rm nope:1
}

test_corrupt_blob() {
	local d
	mkimage "$T/corrupt" 1 unique || return 1
	push "$T/corrupt:1" test/corrupt:1 || return 1
	d=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["layers"][0]["digest"][7:])' \
		"$T/corrupt/blobs/sha256/$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$T/corrupt/index.json")")
	f=$T/registry/docker/registry/v2/blobs/sha256/${d:0:2}/$d/data
	[ -f "$f" ] || fail "no blob $f in the registry" || return 1
	python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[len(b)//2]^=0xff; open(p,"wb").write(b)' "$f"
	run_fail "digest mismatch" $COVE image pull "127.0.0.1:$port/test/corrupt:1"
	$COVE image ls | grep -q corrupt && fail "a refused pull is listed"
	[ -z "$(ls "$XDG_DATA_HOME/cove/images/blobs/sha256" | grep "^$d")" ] || fail "the bad blob was stored"
	[ -z "$(ls "$XDG_DATA_HOME/cove/images/tmp")" ] || fail "leftovers in tmp/"
}

test_malicious_layers() {
	mkimage "$T/evil1" 1 evil-dotdot && push "$T/evil1:1" test/evil:dotdot || return 1
	mkimage "$T/evil2" 1 evil-symlink "$T/outside" && push "$T/evil2:1" test/evil:symlink || return 1
	mkimage "$T/evil3" 1 evil-symlink "../../../../../../$T/outside" && push "$T/evil3:1" test/evil:relsymlink || return 1
	mkdir -p "$T/outside"
	for tag in dotdot symlink relsymlink; do
		$COVE image pull -q "127.0.0.1:$port/test/evil:$tag" >/dev/null || fail "pull evil:$tag" || return 1
		run_fail "malicious layer" $COVE image unpack "127.0.0.1:$port/test/evil:$tag" "$T/evil.img" --size 64M
		[ ! -e "$T/evil.img" ] || fail "evil:$tag left an image"
	done
	[ -z "$(ls -A "$T/outside")" ] || fail "a layer wrote outside the image: $(ls -A "$T/outside")"
	[ ! -e "$T/escape" ] && [ ! -e escape ] || fail "../escape written"
}

test_rm() {
	local before after
	before=$(ls "$XDG_DATA_HOME/cove/images/blobs/sha256" | wc -l)
	$COVE image rm "127.0.0.1:$port/test/evil:dotdot" >/dev/null || fail "rm" || return 1
	$COVE image ls | grep -q "evil +dotdot" && fail "rm: still listed"
	after=$(ls "$XDG_DATA_HOME/cove/images/blobs/sha256" | wc -l)
	[ "$after" -lt "$before" ] || fail "rm freed no blobs ($before -> $after)"
	# shared blobs stay while another image uses them
	$COVE image rm localhost/img:1 >/dev/null || fail "rm localhost/img:1"
	$COVE image unpack "127.0.0.1:$port/test/busybox:1" "$T/again.img" --size 64M -q ||
		fail "unpack after removing an image that shared its blobs"
	# by digest prefix
	d=$($COVE image ls --format json | python3 -c '
import json, sys
print([i["digest"][7:19] for i in json.load(sys.stdin) if i["tag"] == "symlink"][0])')
	$COVE image rm "$d" >/dev/null || fail "rm by digest prefix"
	$COVE image ls | grep -q "evil +symlink " && fail "rm by digest: still listed"
	return 0
}

command -v docker-registry >/dev/null && command -v skopeo >/dev/null && command -v debugfs >/dev/null ||
	{ echo "image: docker-registry, skopeo, e2fsprogs needed (make deps)"; echo "0 passed, 1 failed"; exit 1; }
[ -x "$COVE" ] || { echo "image: build/cove missing (make)"; echo "0 passed, 1 failed"; exit 1; }
mkimage "$T/img" 1 busybox || { echo "0 passed, 1 failed"; exit 1; }
start_registry || { echo "0 passed, 1 failed"; exit 1; }

passed=0 failed=0 failures=()
for t in test_help test_bad_reference test_pull test_unpack test_import test_index \
	 test_docker_archive test_token_auth test_retag test_concurrent test_https test_registry_down test_unknown_image test_corrupt_blob test_malicious_layers test_rm; do
	[[ $t =~ ${TEST_FILTER:-.} ]] || continue
	start=$(date +%s.%N)
	( set -e; "$t" )
	r=$?
	if [ $r -eq 0 ]; then
		passed=$((passed + 1))
		printf 'ok   %-40s %6.1fs\n' "image_${t#test_}" "$(echo "$(date +%s.%N) - $start" | bc)"
	else
		failed=$((failed + 1))
		failures+=("${t#test_}")
		printf 'FAIL %-40s\n' "image_${t#test_}"
	fi
done
[ $failed -eq 0 ] || echo "failed: ${failures[*]}"
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
