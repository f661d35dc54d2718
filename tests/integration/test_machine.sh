# cove machine, end to end, as an unprivileged user in group kvm: create
# from the test images (tests/machine/mkimages.sh, $COVE_MACHINE_IMAGES),
# boot, ls/inspect/stats/logs, stop (graceful for systemd, forced after
# the timeout otherwise), set + restart, kill -9 of the monitor and of the
# CLI at any moment, rm, and bad input (one line, exit 1, nothing changed);
# and as root, in network namespaces of its own, the bridge.
#
# The user: in the nested harness's L1 (a throwaway overlay) the host's
# uid 1000 is renamed covetest (or made), put in group kvm, and /dev/kvm
# opened to the group; run directly, the suite must run as such a user.
#
# cove runs from a copy in $MT/bin, with the kernel and the machine
# initrd (cove-init, cove-agent) beside it as an installation has them.

MT=$T/machine
MIMG=${COVE_MACHINE_IMAGES:-}

# mc ARGS...: cove as the test user, 10 minutes at most; or, while MCR_NS
# names a network namespace, as root in it with a store of root's own
# under $MT/root (the bridge tests). The helpers below follow it.
mc() {
	if [ -n "${MCR_NS:-}" ]; then
		mc_as "ip netns exec $MCR_NS" "$MT/root" root "$@"
	else
		mc_as "setpriv --reuid=$MUID --regid=$MGID --init-groups" "$MT" covetest "$@"
	fi
}

# mc_as PREFIX DIR USER ARGS...: cove run through the command PREFIX (split
# on blanks), its home, store and runtime files under DIR.
mc_as() {
	local pre=$1 dir=$2 user=$3
	shift 3
	timeout -k 5 600 $pre env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$dir/home" \
		USER="$user" XDG_DATA_HOME="$dir/data" XDG_CONFIG_HOME="$dir/config" \
		XDG_RUNTIME_DIR="$dir/run" "$MT/bin/cove" "$@"
}

# The directory mc keeps its store in.
mc_dir() {
	echo "$MT${MCR_NS:+/root}"
}

# mc_fail PATTERN ARGS...: cove exits 1 with one stderr line matching PATTERN.
mc_fail() {
	local pat=$1 rc=0
	shift
	mc "$@" >"$MT/out" 2>"$MT/err" || rc=$?
	[ $rc -eq 1 ] || fail "cove $* exited $rc, not 1: $(cat "$MT/err")" || return 1
	[ "$(wc -l <"$MT/err")" -eq 1 ] || fail "cove $*: not one error line: $(cat "$MT/err")" ||
		return 1
	grep -qE -- "$pat" "$MT/err" || fail "cove $*: \"$(cat "$MT/err")\" lacks /$pat/"
}

# As the test user: mu COMMAND...
mu() {
	setpriv --reuid="$MUID" --regid="$MGID" --init-groups "$@"
}

machine_user() {
	local old
	if [ "${COVE_NESTED:-0}" = 1 ]; then
		if ! id covetest >/dev/null 2>&1; then
			old=$(getent passwd 1000 | cut -d: -f1)
			if [ -n "$old" ]; then
				usermod -l covetest -d "$MT/home" "$old"
			else
				useradd -u 1000 -d "$MT/home" -M -s /bin/sh covetest
			fi
			usermod -aG kvm covetest
		fi
		chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
		# the cached kernel and test images live under root's home
		chmod 0711 /root
		[ -n "$MIMG" ] && chmod 0711 "$MIMG"
		MUID=$(id -u covetest)
		MGID=$(id -g covetest)
	elif [ "$(id -u)" != 0 ]; then
		MUID=$(id -u)
		MGID=$(id -g)
	else
		fail "the machine tests run as an unprivileged user: run them through tests/integration/run.sh (nested), or as a user in group kvm"
		return 1
	fi
	MHOME=$MT/home
}

# Debian's docker-registry on loopback, started once per suite run (it
# outlives the test that starts it; L1 ends with the suite), with the test
# images pushed into it by skopeo: $REG/busybox:latest and $REG/debian:12.
machine_registry() {
	local port i
	if [ -s "$MT/reg/port" ]; then
		REG=127.0.0.1:$(cat "$MT/reg/port")
		curl -sf "http://$REG/v2/" >/dev/null && return 0
	fi
	rm -rf "$MT/reg"
	mkdir -p "$MT/reg"
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cat >"$MT/reg/config.yml" <<EOC
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $MT/reg/data
http:
  addr: 127.0.0.1:$port
EOC
	setsid docker-registry serve "$MT/reg/config.yml" >"$MT/reg/log" 2>&1 </dev/null &
	REG=127.0.0.1:$port
	for i in $(seq 100); do
		curl -sf "http://$REG/v2/" >/dev/null && break
		sleep 0.2
	done
	curl -sf "http://$REG/v2/" >/dev/null || { fail "registry did not start: $(cat "$MT/reg/log")"; return 1; }
	echo '{"default":[{"type":"insecureAcceptAnything"}]}' >"$MT/reg/policy.json"
	for i in busybox:latest:busybox:latest debian12:12:debian:12; do
		set -- ${i//:/ }
		skopeo --policy "$MT/reg/policy.json" copy -q --dest-tls-verify=false \
			"oci:$MIMG/$1:$2" "docker://$REG/$3:$4" >"$MT/reg/skopeo.log" 2>&1 ||
			{ fail "skopeo copy $1: $(cat "$MT/reg/skopeo.log")"; return 1; }
	done
	echo "$port" >"$MT/reg/port"
}

# Once per suite run: the user, their directories, a cove with the
# machine initrd and the kernel beside it, the registry.
machine_setup() {
	machine_user || return 1
	if [ -e "$MT/ready" ]; then
		machine_registry || return 1
		machine_cleanup	# what a failed test left
		return 0
	fi
	[ -n "$MIMG" ] && [ -d "$MIMG/busybox" ] ||
		{ fail "COVE_MACHINE_IMAGES is not set (tests/integration/run.sh sets it)"; return 1; }
	rm -rf "$MT"
	mkdir -p "$MT/bin" "$MT/home" "$MT/data" "$MT/config" "$MT/run"
	cp "$PWD/build/cove" "$MT/bin/cove"
	ln -s "$PWD/build/cove-vmm" "$MT/bin/cove-vmm"
	mkdir -p "$MT/bin/guest"
	cp "$G/machine-initrd.cpio" "$K/bzImage" "$MT/bin/guest/"
	chown -R "$MUID:$MGID" "$MT"
	chmod 0700 "$MT/run"
	# the images, into the user's store once
	mc image import -q "oci:$MIMG/busybox:latest" localhost/busybox:latest >/dev/null ||
		{ fail "import of the busybox image"; return 1; }
	machine_registry || return 1
	touch "$MT/ready"
}

# machine_console NAME PATTERN [SECONDS]: until NAME's console has a line
# matching PATTERN.
machine_console() {
	local f end=$((SECONDS + ${3:-$BOOT_TIMEOUT}))
	f=$(mc_dir)/data/cove/machines/$1/console.log
	while [ $SECONDS -lt $end ]; do
		grep -Eq -- "$2" "$f" 2>/dev/null && return 0
		sleep 0.5
	done
	fail "machine $1: console never showed /$2/; tail: $(tail -5 "$f" 2>/dev/null | tr '\r' ' '); vmm.log: $(cat "${f%/*}/vmm.log" 2>/dev/null)"
}

# mr_is WANT NAME CMD...: cove m run -n NAME -- CMD prints WANT and exits 0.
mr_is() {
	local want=$1 name=$2 got
	shift 2
	got=$(mc m run -n "$name" -- "$@" </dev/null 2>"$MT/run-err") ||
		{ fail "run $*: exit $?: $got $(cat "$MT/run-err")"; return 1; }
	[ "$got" = "$want" ] || fail "run $*: printed \"$got\", want \"$want\""
}

# machine_state NAME: its STATE column in ls.
machine_state() {
	mc m ls | awk -v n="$1" '$1 == n { print $(NF - ($NF == "*" ? 1 : 0)) }'
}

# Leave no monitor running: remove every machine of the test user.
machine_cleanup() {
	local n
	for n in $(mc m ls -q 2>/dev/null); do
		mc m rm -f "$n" >/dev/null 2>&1 || true
	done
	return 0
}

test_machine_bad_input() {
	machine_setup || return 1
	local r
	mc --help | grep -q "machine  *Manage machines" || fail "cove --help lacks machine"
	mc m --help | grep -q "^  create  *Create a machine" || fail "cove m --help"
	for c in create start stop restart run cp ls inspect set set-default logs stats rm; do
		mc m $c --help | grep -q "^Usage: cove machine $c" || fail "cove m $c --help"
	done
	mc_fail 'unknown command "machine bogus"' m bogus
	for c in start stop restart inspect logs stats "rm" set-default; do
		mc_fail '^cove: no such machine: nope \(see .cove machine ls.\)$' m $c nope
	done
	mc_fail 'no default machine' m start
	mc_fail '^cove: no such machine: nope' m run -n nope -- true
	mc_fail '^cove: no such machine: nope' m cp nope:/etc/hostname "$MT/x"
	mc_fail 'one of SRC and DST must be NAME:PATH' m cp "$MT/a" "$MT/b"
	mc_fail '\-\-root and \-\-user exclude each other' m run --root -u alice -- true
	mc_fail '^cove: --env "1A=2": use NAME=VALUE' m run -e 1A=2 -- true
	mc_fail '^cove: --user "a b": not a user name' m run -u 'a b' -- true
	mc_fail '\-\-detach needs a COMMAND' m run -d
	mc_fail '^cove: --memory "12X": not a size' m create --memory 12X localhost/busybox
	mc_fail '^cove: --disk-size "4M": at least 8M' m create --disk-size 4M localhost/busybox
	mc_fail '^cove: --cpus "65": not a number of CPUs from 1 to 64' m create --cpus 65 localhost/busybox
	mc_fail '^cove: --home-mount "yes": use rw, ro or none' m create --home-mount yes localhost/busybox
	mc_fail 'invalid machine name "Bad_Name"' m create -n Bad_Name localhost/busybox
	mc_fail '^cove: --mount /nonexistent:/x: /nonexistent: No such file' m create --mount /nonexistent:/x localhost/busybox
	mc_fail 'the guest directory must be absolute' m create --mount /tmp:x localhost/busybox
	mc_fail '^cove: --publish 80: use HOSTPORT:GUESTPORT' m create -p 80 localhost/busybox
	mc_fail 'host port 8080 is forwarded twice' m create -p 8080:80 -p 8080:81 localhost/busybox
	# a registry that is down
	mc_fail '^cove: cannot reach registry 127.0.0.1:1: Connection refused' m create -q 127.0.0.1:1/none:1
	mc_fail 'invalid reference' m create -q 'Nope:1'
	# an image without /sbin/init: refused, and neither a machine nor the image is kept
	python3 tests/image/mkimage.py "$MT/noinit" 1 unique >/dev/null
	chown -R "$MUID:$MGID" "$MT/noinit"
	mc_fail '^cove: image localhost/noinit:1 has no /sbin/init' m create -q "oci:$MT/noinit:1"
	mc image ls | grep -q noinit && fail "the image of a refused create stayed in the store"
	# a malicious layer and a corrupt one: refused, nothing kept
	python3 tests/image/mkimage.py "$MT/evil" 1 evil-dotdot >/dev/null
	python3 tests/image/mkimage.py "$MT/corrupt" 1 unique >/dev/null
	r=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["layers"][0]["digest"][7:])' \
		"$MT/corrupt/blobs/sha256/$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["manifests"][0]["digest"][7:])' "$MT/corrupt/index.json")")
	printf 'X' | dd of="$MT/corrupt/blobs/sha256/$r" bs=1 seek=40 conv=notrunc 2>/dev/null
	chown -R "$MUID:$MGID" "$MT/evil" "$MT/corrupt"
	mc_fail 'malicious layer' m create -q "oci:$MT/evil:1"
	mc_fail 'digest' m create -q "oci:$MT/corrupt:1"
	mc image ls | grep -Eq 'evil|corrupt' && fail "the image of a refused create stayed in the store"
	# bad config.toml: file and line
	mkdir -p "$MT/config/cove"
	printf '[machine]\ncpus = 2\nmemroy = "1G"\n' >"$MT/config/cove/config.toml"
	chown -R "$MUID:$MGID" "$MT/config"
	mc_fail "config.toml:3: unknown key \"memroy\" in \\[machine\\]" m create localhost/busybox
	rm -f "$MT/config/cove/config.toml"
	# nothing was made by any of it
	r=$(mc m ls -q)
	[ -z "$r" ] || fail "machines after bad input: $r"
	[ -z "$(ls "$MT/data/cove/machines" 2>/dev/null)" ] ||
		fail "leftovers: $(ls -a "$MT/data/cove/machines")"
	mc m ls --format json | python3 -c 'import json,sys; assert json.load(sys.stdin) == []' ||
		fail "ls --format json of no machines"
}

test_machine_busybox_lifecycle() {
	machine_setup || return 1
	local name pid img sz
	name=$(mc m create --cpus 1 --memory 256M --disk-size 256M --home-mount none -p 18080:80 \
		localhost/busybox 2>"$MT/err") || { fail "create: $(cat "$MT/err")"; return 1; }
	[ "$name" = busybox ] || fail "create printed \"$name\", not busybox"
	grep -q 'unpacking (layer 1 of 1' "$MT/err" || fail "create showed no progress: $(cat "$MT/err")"
	machine_console busybox 'busybox init: system up' || { machine_cleanup; return 1; }
	mr_is 1 busybox nproc
	mc m ls | grep -Eq '^busybox +.* 10\.0\.2\.15 +1 +256M +256M +running +\*$' || fail "ls: $(mc m ls)"
	mc m ls --format json | python3 -c '
import json, sys
m, = json.load(sys.stdin)
assert m["name"] == "busybox" and m["state"] == "running" and m["default"] is True, m
assert m["cpus"] == 1 and m["memoryMiB"] == 256 and m["diskSizeMiB"] == 256, m' ||
		fail "ls --format json"
	mc m ls --format yaml | grep -q '^  state: "running"$' || fail "ls --format yaml: $(mc m ls --format yaml)"
	mc m ls --format toml | grep -q '^\[\[machines\]\]$' || fail "ls --format toml"
	mc m inspect | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert m["state"] == "running" and m["pid"] > 0 and m["uptimeMs"] >= 0, m
assert m["homeMount"] == "none" and m["home"] is None and len(m["machineId"]) == 32, m' ||
		fail "inspect: $(mc m inspect)"
	pid=$(cat "$MT/run/cove/busybox/vmm.pid")
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--disk $MT/data/cove/machines/busybox/root.img --balloon" ||
		fail "monitor command line: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--name busybox --net user,fwd=tcp:18080:80" ||
		fail "monitor command line: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	python3 -c 'import socket; socket.create_connection(("127.0.0.1", 18080), 10).close()' ||
		fail "nothing listens on the forwarded port 18080"
	[ "$(stat -c %u "/proc/$pid")" = "$MUID" ] || fail "the monitor does not run as the user"
	mc m stats --format json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert s["hostRssBytes"] > 0 and s["memoryBytes"] == 256 << 20 and s["diskSizeBytes"] == 256 << 20, s' ||
		fail "stats: $(mc m stats --format json)"
	mc m stats | grep -q '^busybox ' || fail "stats table"
	mc m logs -n 1 | grep -q . || fail "logs -n 1"
	mc m logs --boot >/dev/null || fail "logs --boot"
	mc_fail 'machine busybox is running: stop it first, or use rm -f' m rm busybox

	# graceful: the agent asks busybox init, which runs its shutdown actions
	mc m stop busybox >/dev/null 2>"$MT/err" || fail "stop: $(cat "$MT/err")"
	grep -q 'by force' "$MT/err" && fail "busybox init did not power off: $(cat "$MT/err")"
	machine_console busybox 'The system is going down NOW' 1
	[ "$(machine_state busybox)" = stopped ] || fail "state after stop: $(mc m ls)"
	[ ! -e "$MT/run/cove/busybox/vmm.pid" ] || fail "vmm.pid left after stop"
	kill -0 "$pid" 2>/dev/null && fail "monitor $pid still alive after stop"
	mc m stop busybox 2>&1 >/dev/null | grep -q 'is not running' || fail "stop of a stopped machine"

	# settings: stored now, in effect at the next start
	mc m start >/dev/null || fail "start"
	machine_console busybox 'busybox init: system up' || { machine_cleanup; return 1; }
	mc m set cpus=2 memory=512M disk-size=512M >/dev/null 2>"$MT/err" || fail "set: $(cat "$MT/err")"
	grep -q 'is running: the new settings take effect at its next start' "$MT/err" ||
		fail "set on a running machine said: $(cat "$MT/err")"
	img=$MT/data/cove/machines/busybox/root.img
	sz=$(stat -c %s "$img")
	[ "$sz" = $((512 << 20)) ] || fail "disk file is $sz bytes after set disk-size=512M"
	mc_fail 'disk-size "128M": the disk can only grow \(it is 512M\)' m set disk-size=128M
	mc_fail 'unknown setting "colour"' m set colour=blue
	mc_fail '^cove: cpus "0"' m set cpus=0
	mc m restart >/dev/null 2>&1 || fail "restart"
	mr_is 2 busybox nproc
	mr_is 1 busybox sh -c 'awk "/^MemTotal/ { print (\$2 > 400000 && \$2 <= 524288) }" /proc/meminfo'
	mc m ls | grep -Eq '^busybox +.* 2 +512M +512M +running' || fail "ls after set: $(mc m ls)"

	# kill -9 of the monitor: ls is truthful, the machine starts again
	pid=$(cat "$MT/run/cove/busybox/vmm.pid")
	kill -9 "$pid"
	sleep 0.5
	[ "$(machine_state busybox)" = stopped ] || fail "state after kill -9 of the monitor: $(mc m ls)"
	[ ! -e "$MT/run/cove/busybox/vmm.pid" ] || fail "stale vmm.pid not cleaned"
	mc m start busybox >/dev/null || fail "start after kill -9"
	[ "$(machine_state busybox)" = running ] || fail "state after start: $(mc m ls)"

	mc m rm -f busybox >/dev/null || fail "rm -f"
	[ ! -e "$MT/data/cove/machines/busybox" ] || fail "rm left $(ls "$MT/data/cove/machines/busybox")"
	[ ! -e "$MT/run/cove/busybox" ] || fail "rm left the runtime directory"
	kill -0 "$pid" 2>/dev/null && fail "monitor survived rm -f"
	[ -z "$(mc m ls -q)" ] || fail "ls after rm: $(mc m ls)"
	machine_cleanup
}

test_machine_names_default() {
	machine_setup || return 1
	local a b c
	a=$(mc m create -q --no-boot --disk-size 64M localhost/busybox) || fail "create 1"
	b=$(mc m create -q --no-boot --disk-size 64M localhost/busybox) || fail "create 2"
	[ "$a $b" = "busybox busybox-2" ] || fail "names: $a $b"
	mc m ls | grep -Eq '^busybox +.*stopped +\*$' || fail "the first machine is not the default: $(mc m ls)"
	mc m set-default busybox-2 >/dev/null || fail "set-default"
	mc m ls | grep -Eq '^busybox-2 +.*stopped +\*$' || fail "set-default did not take: $(mc m ls)"
	mc_fail 'machine busybox already exists' m create -q -n busybox --no-boot localhost/busybox
	mc m rm busybox-2 >/dev/null || fail "rm busybox-2"
	mc_fail 'no default machine' m inspect
	c=$(mc m create -q --no-boot --disk-size 64M -n third localhost/busybox) || fail "create 3"
	mc m inspect | grep -q '"name": "third"' || fail "a create with no default machine left did not become it"
	machine_cleanup
}

# The pids of the processes under pid (children first).
descendants() {
	local c
	for c in $(pgrep -P "$1"); do
		echo "$c"
		descendants "$c"
	done
}

# kill_cove_under PID: SIGKILL the cove CLI among PID's descendants.
kill_cove_under() {
	local c
	for c in $(descendants "$1"); do
		[ "$(cat "/proc/$c/comm" 2>/dev/null)" = cove ] && kill -9 "$c" 2>/dev/null
	done
	return 0
}

# kill -9 of the CLI at any moment of create and start: ls stays truthful
# and the machine can still be started or removed.
test_machine_kill_cli() {
	machine_setup || return 1
	local d p n st
	for d in 0.1 0.3 0.6 1 2; do
		mc m create -q --disk-size 64M -n k localhost/busybox >/dev/null 2>&1 &
		p=$!
		sleep "$d"
		kill_cove_under "$p"
		wait "$p" 2>/dev/null || true
		n=$(mc m ls -q)
		if [ "$n" = k ]; then
			st=$(machine_state k)
			case $st in running | stopped) ;; *) fail "after kill at ${d}s: state \"$st\"" ;; esac
			mc m start k >/dev/null 2>&1 || fail "start after kill at ${d}s: $(mc m start k 2>&1)"
			[ "$(machine_state k)" = running ] || fail "not running after start ($d s)"
			mc m rm -f k >/dev/null || fail "rm after kill at ${d}s"
		else
			[ -z "$n" ] || fail "after kill at ${d}s: ls says \"$n\""
		fi
		[ -z "$(ls "$MT/data/cove/machines")" ] || fail "after kill at ${d}s: left $(ls -a "$MT/data/cove/machines")"
	done
	mc m create -q --no-boot --disk-size 64M -n k localhost/busybox >/dev/null || fail "create k"
	for d in 0.05 0.2 0.5 1; do
		mc m start k >/dev/null 2>&1 &
		p=$!
		sleep "$d"
		kill_cove_under "$p"
		wait "$p" 2>/dev/null || true
		st=$(machine_state k)
		case $st in running | stopped) ;; *) fail "start killed at ${d}s: state \"$st\"" ;; esac
		if [ "$st" = running ]; then
			mc m stop -t 1 k >/dev/null 2>&1 || fail "stop after a killed start ($d s)"
		fi
		[ "$(machine_state k)" = stopped ] || fail "not stopped ($d s): $(mc m ls)"
	done
	mc m start k >/dev/null || fail "start after the killed starts"
	mc m rm -f k >/dev/null || fail "rm k"
	machine_cleanup
}

# mr_in DIR ARGS...: cove m ARGS from the host directory DIR.
mr_in() {
	local d=$1
	shift
	(cd "$d" && mc m "$@" </dev/null)
}

# The issue's acceptance on the busybox image, pulled from the registry:
# the host user inside, cwd mirroring, argv, the shared home (rw, ro,
# none), --mount, cp, /usr/local surviving stop, a run that boots a
# stopped machine, rm.
test_machine_busybox_acceptance() {
	machine_setup || return 1
	local name got
	mkdir -p "$MHOME/proj/sub" "$MT/shared/deep"
	echo from-host >"$MHOME/h.txt"
	chown -R "$MUID:$MGID" "$MHOME" "$MT/shared"
	name=$(mc m create -q --memory 256M --disk-size 256M --mount "$MT/shared:/srv/shared" \
		"$REG/busybox") || { fail "create from the registry: $name"; return 1; }
	[ "$name" = busybox ] || fail "create printed \"$name\""
	mr_is covetest busybox whoami
	mr_is "$MUID" busybox id -u
	mr_is "$MGID" busybox id -g
	mr_is hi busybox sh -c 'echo hi'
	mr_is 'a  b' busybox printf %s 'a  b'
	got=$(mc m run --root -- id -un </dev/null) && [ "$got" = root ] || fail "run --root: $got"
	# cwd: mirrored under the home and under a --mount, else the home
	got=$(mr_in "$MHOME/proj/sub" run -- pwd) && [ "$got" = "$MHOME/proj/sub" ] ||
		fail "pwd from the home's proj/sub: \"$got\""
	got=$(mr_in "$MT/shared/deep" run -- pwd) && [ "$got" = /srv/shared/deep ] ||
		fail "pwd from the --mount: \"$got\""
	got=$(mr_in / run -- pwd) && [ "$got" = "$MHOME" ] || fail "pwd from /: \"$got\""
	# the shared home: same files both ways, the user's own on the host
	mr_is from-host busybox cat "$MHOME/h.txt"
	mc m run -- sh -c 'echo from-guest >~/g.txt && echo m >/srv/shared/deep/m.txt' </dev/null ||
		fail "write to the home and the mount"
	[ "$(cat "$MHOME/g.txt" 2>/dev/null)" = from-guest ] || fail "g.txt on the host"
	[ "$(stat -c %u:%g "$MHOME/g.txt" "$MT/shared/deep/m.txt" | sort -u)" = "$MUID:$MGID" ] ||
		fail "owners on the host: $(stat -c '%n %u:%g' "$MHOME/g.txt" "$MT/shared/deep/m.txt")"
	# cp both ways (relative guest paths are from the home)
	echo cp-in >"$MT/cp-in"
	chown "$MUID:$MGID" "$MT/cp-in"
	mc m cp "$MT/cp-in" busybox:/tmp/cp-in >/dev/null || fail "cp in"
	mr_is cp-in busybox cat /tmp/cp-in
	mc m cp busybox:/etc/hostname "$MT/cp-out" >/dev/null || fail "cp out"
	[ "$(cat "$MT/cp-out" 2>/dev/null)" = busybox ] || fail "cp out: $(cat "$MT/cp-out")"
	# /usr/local survives a stop; run on a stopped machine boots it
	mc m run --root -- sh -c 'mkdir -p /usr/local/lib && echo kept >/usr/local/lib/f' </dev/null ||
		fail "write /usr/local"
	mc m stop >/dev/null 2>&1 || fail "stop"
	[ "$(machine_state busybox)" = stopped ] || fail "not stopped: $(mc m ls)"
	mr_is kept busybox cat /usr/local/lib/f
	[ "$(machine_state busybox)" = running ] || fail "run did not start it: $(mc m ls)"
	# home-mount ro: readable, writes refused
	mc m set home-mount=ro >/dev/null 2>&1 || fail "set home-mount=ro"
	mc m restart >/dev/null 2>&1 || fail "restart"
	mr_is from-guest busybox cat "$MHOME/g.txt"
	mc m run -- sh -c 'echo x >~/ro.txt' </dev/null >/dev/null 2>&1 && fail "a write to a ro home worked"
	[ ! -e "$MHOME/ro.txt" ] || fail "ro.txt appeared on the host"
	# none: the host home is not there; the user has a home of the machine's
	mc m set home-mount=none >/dev/null 2>&1 || fail "set home-mount=none"
	mc m restart >/dev/null 2>&1 || fail "restart"
	mr_is no busybox sh -c '[ -e ~/h.txt ] && echo yes || echo no'
	mr_is "$MHOME" busybox sh -c 'echo x >~/local.txt && cd && pwd'
	[ ! -e "$MHOME/local.txt" ] || fail "local.txt appeared on the host"
	# rm: all storage gone
	mc m rm -f busybox >/dev/null || fail "rm -f"
	[ ! -e "$MT/data/cove/machines/busybox" ] && [ ! -e "$MT/run/cove/busybox" ] ||
		fail "rm left storage"
	machine_cleanup
}

# The same on Debian 12 with systemd as init, from the registry: systemd
# boots to running, passwordless sudo, a service on a port reached from the
# host, a graceful stop through poweroff.target, set + restart.
test_machine_debian() {
	machine_setup || return 1
	local name got i
	mkdir -p "$MHOME/proj"
	chown "$MUID:$MGID" "$MHOME" "$MHOME/proj"
	name=$(mc m create -q --cpus 2 --memory 768M --disk-size 2G --home-mount ro -p 18081:8081 \
		"$REG/debian:12") || { fail "create from the registry: $name"; return 1; }
	[ "$name" = debian-12 ] || fail "create printed \"$name\""
	got=$(mc m run -- systemctl is-system-running --wait </dev/null 2>&1) || true
	case $got in
	running) ;;
	degraded) echo "    degraded: $(mc m run -- systemctl --failed --no-legend </dev/null)" >&2 ;;
	*) fail "is-system-running: $got; failed: $(mc m run -- systemctl --failed --no-legend </dev/null 2>&1)" ;;
	esac
	mr_is covetest debian-12 whoami
	mr_is "$MUID" debian-12 id -u
	mr_is root debian-12 sudo -n whoami
	mr_is 'a  b' debian-12 printf %s 'a  b'
	got=$(mr_in "$MHOME/proj" run -- pwd 2>&1) && [ "$got" = "$MHOME/proj" ] || fail "pwd: $got"
	# a service, started with sudo systemctl, reached through -p
	mc m run -- sudo -n sh -c '
		mkdir -p /srv/www && echo hello-from-debian >/srv/www/index.html &&
		printf "[Service]\nExecStart=/bin/busybox httpd -f -p 8081 -h /srv/www\n" \
			>/etc/systemd/system/web.service && systemctl daemon-reload &&
		systemctl start web && systemctl is-active web' </dev/null >"$MT/out" 2>&1 ||
		fail "start the service: $(cat "$MT/out")"
	for i in $(seq 50); do
		got=$(curl -sf --max-time 5 http://127.0.0.1:18081/ 2>/dev/null) && break
		sleep 0.2
	done
	[ "$got" = hello-from-debian ] || fail "the service from the host: \"$got\""
	mc m run -- sudo -n sh -c 'echo kept >/usr/local/kept' </dev/null || fail "write /usr/local"
	# graceful: systemd reaches poweroff.target
	mc m stop >/dev/null 2>"$MT/err" || fail "stop: $(cat "$MT/err")"
	grep -q 'by force' "$MT/err" && fail "systemd did not power off: $(cat "$MT/err")"
	mc m set cpus=1 memory=1G >/dev/null 2>&1 || fail "set"
	mr_is kept debian-12 cat /usr/local/kept
	mr_is 1 debian-12 nproc
	mr_is 1 debian-12 sh -c 'awk "/^MemTotal/ { print (\$2 > 900000 && \$2 <= 1048576) }" /proc/meminfo'
	mc m rm -f debian-12 >/dev/null || fail "rm -f"
	[ ! -e "$MT/data/cove/machines/debian-12" ] || fail "rm left storage"
	machine_cleanup
}

# The bridge, as root (where cove makes it: network auto), in a network
# namespace of its own so nothing of it reaches the L1's network; beyond a
# veth, a second namespace plays the outside world, with no route back to
# the machines' /24, so only NAT gets its answers home.
BR_NS=cove-bridge
BR_OUT=cove-bridge-out

bridge_cleanup() {
	MCR_NS=$BR_NS machine_cleanup
	ip netns del "$BR_NS" 2>/dev/null || true
	ip netns del "$BR_OUT" 2>/dev/null || true
}

# bridge_dns GATEWAY: the DNS server a machine on the bridge gets: the first
# nameserver of the host's resolv.conf it can reach, else the gateway.
bridge_dns() {
	awk -v gw="$1" '$1 == "nameserver" && $2 ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/ &&
		$2 !~ /^(127\.|0\.0\.0\.0$)/ { print $2; found = 1; exit }
		END { if (!found) print gw }' /etc/resolv.conf
}

test_machine_bridge() {
	machine_setup || return 1
	trap bridge_cleanup EXIT
	local MCR_NS=$BR_NS name pid got i dns
	bridge_cleanup
	ip netns add "$BR_NS"
	ip netns add "$BR_OUT"
	ip -n "$BR_NS" link set lo up
	ip -n "$BR_NS" link add vo0 type veth peer name vo1 netns "$BR_OUT"
	ip -n "$BR_NS" addr add 10.77.0.1/24 dev vo0
	ip -n "$BR_NS" link set vo0 up
	ip -n "$BR_NS" route add default via 10.77.0.2
	ip -n "$BR_OUT" addr add 10.77.0.2/24 dev vo1
	ip -n "$BR_OUT" link set vo1 up
	# 192.168.64.0/24 is in use on this host: the bridge takes the next /24
	ip -n "$BR_NS" link add d0 type dummy
	ip -n "$BR_NS" addr add 192.168.64.9/24 dev d0
	ip -n "$BR_NS" link set d0 up
	rm -rf "$MT/root"
	mkdir -p "$MT/root/home" "$MT/root/run"
	chmod 0700 "$MT/root/run"
	mc image import -q "oci:$MIMG/busybox:latest" localhost/busybox:latest >/dev/null ||
		{ fail "import of the busybox image as root"; return 1; }

	name=$(mc m create -q --cpus 1 --memory 256M --disk-size 256M --home-mount none -p 18090:80 \
		localhost/busybox 2>"$MT/err") || { fail "create: $(cat "$MT/err")"; return 1; }
	[ "$name" = busybox ] || fail "create printed \"$name\""
	grep -q 'busybox is on the bridge: the host reaches its ports at 192.168.65.2 (busybox.machine); its -p forwards are not used' \
		"$MT/err" || fail "create said: $(cat "$MT/err")"
	machine_console busybox 'busybox init: system up' || return 1
	mr_is ok busybox sh -c 'ip addr show eth0 | grep -q "inet 192.168.65.2/24" && echo ok'
	dns=$(bridge_dns 192.168.65.1)
	mr_is "nameserver $dns" busybox cat /etc/resolv.conf
	mc m ls | grep -Eq '^busybox +.* 192\.168\.65\.2 +1 +256M +256M +running' || fail "ls: $(mc m ls)"
	mc m inspect | python3 -c '
import json, sys
m = json.load(sys.stdin)
assert m["ip"] == "192.168.65.2" and m["network"] == "auto", m
assert m["bridgeAddress"] == "192.168.65.2" and m["dnsName"] == "busybox.machine", m' ||
		fail "inspect: $(mc m inspect)"
	pid=$(cat "$MT/root/run/cove/busybox/vmm.pid")
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--name busybox --net tap=cv-busybox,mac=02:" ||
		fail "monitor command line: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	ip -n "$BR_NS" -br addr show cove0 | grep -q ' 192\.168\.65\.1/24' ||
		fail "cove0: $(ip -n "$BR_NS" -br addr)"
	ip -n "$BR_NS" link show cv-busybox | grep -q 'master cove0' ||
		fail "the tap is not in the bridge: $(ip -n "$BR_NS" link)"
	ip netns exec "$BR_NS" nft list table ip cove |
		grep -q 'ip saddr 192.168.65.0/24 ip daddr != 192.168.65.0/24 masquerade' ||
		fail "NAT: $(ip netns exec "$BR_NS" nft list ruleset)"
	grep -q "^192\.168\.65\.2	busybox\.machine$" /etc/hosts || fail "/etc/hosts: $(cat /etc/hosts)"

	# the host reaches the machine by name: ping, and a TCP service on any port
	ip netns exec "$BR_NS" ping -c 1 -W 10 busybox.machine >/dev/null ||
		fail "the host cannot ping busybox.machine"
	mc m run --root -- sh -c 'mkdir -p /www && echo hello-bridge >/www/index.html' </dev/null ||
		fail "make the web root"
	mc m run -d --root -- httpd -f -p 80 -h /www </dev/null >/dev/null || fail "start httpd"
	for i in $(seq 50); do
		got=$(ip netns exec "$BR_NS" curl -sf --noproxy '*' --max-time 5 http://busybox.machine/) && break
		sleep 0.2
	done
	[ "$got" = hello-bridge ] || fail "http://busybox.machine/ from the host: \"$got\""
	# the machine reaches the host at .1, and the outside through NAT
	mr_is ok busybox sh -c 'ping -c 1 -W 10 192.168.65.1 >/dev/null && echo ok'
	mr_is ok busybox sh -c 'ping -c 1 -W 10 10.77.0.2 >/dev/null && echo ok'

	# stop takes the tap and the name away
	mc m stop >/dev/null 2>"$MT/err" || fail "stop: $(cat "$MT/err")"
	ip -n "$BR_NS" link show cv-busybox >/dev/null 2>&1 && fail "the tap is left after stop"
	grep -q 'busybox\.machine' /etc/hosts && fail "/etc/hosts keeps busybox.machine after stop"
	# a stale tap (a monitor that ended on its own) is replaced; the address stays
	ip -n "$BR_NS" tuntap add dev cv-busybox mode tap
	mc m start >/dev/null 2>"$MT/err" || fail "start over a stale tap: $(cat "$MT/err")"
	mr_is ok busybox sh -c 'ip addr show eth0 | grep -q "inet 192.168.65.2/24" && echo ok'
	ip netns exec "$BR_NS" ping -c 1 -W 10 busybox.machine >/dev/null ||
		fail "the host cannot ping busybox.machine after a restart"

	# addresses: the lowest free, kept while stopped, freed by rm
	mc m create -q --no-boot --disk-size 64M -n b2 localhost/busybox >/dev/null || fail "create b2"
	mc m inspect b2 | grep -q '"bridgeAddress": "192.168.65.3"' || fail "b2: $(mc m inspect b2)"
	mc m rm -f busybox >/dev/null || fail "rm -f"
	ip -n "$BR_NS" link show cv-busybox >/dev/null 2>&1 && fail "the tap is left after rm"
	grep -q 'busybox\.machine' /etc/hosts && fail "/etc/hosts keeps busybox.machine after rm"
	mc m create -q --no-boot --disk-size 64M -n b3 localhost/busybox >/dev/null || fail "create b3"
	mc m inspect b3 | grep -q '"bridgeAddress": "192.168.65.2"' || fail "b3: $(mc m inspect b3)"

	# without the privilege: auto is user-mode networking, bridge is refused
	MCR_NS= mc_fail '^cove: --network bridge: needs root \(or CAP_NET_ADMIN\) to set up the bridge cove0; without, use user or auto' \
		m create --network bridge localhost/busybox
	MCR_NS= mc m create -q --no-boot --disk-size 64M -n u localhost/busybox >/dev/null ||
		fail "create as the user"
	MCR_NS= mc m inspect u | grep -q '"bridgeAddress": null' || fail "u: $(MCR_NS= mc m inspect u)"
	MCR_NS= mc_fail '^cove: network bridge: needs root' m set -n u network=bridge
	MCR_NS= mc m rm u >/dev/null || fail "rm u"
}
