# cove machine, end to end, as an unprivileged user in group kvm: create
# from the test images (tests/machine/mkimages.sh, $COVE_MACHINE_IMAGES),
# boot, ls/inspect/stats/logs, stop (graceful for systemd, forced after
# the timeout otherwise), set + restart, kill -9 of the monitor and of the
# CLI at any moment, rm, and bad input (one line, exit 1, nothing changed).
#
# The user: in the nested harness's L1 (a throwaway overlay) the host's
# uid 1000 is renamed covetest (or made), put in group kvm, and /dev/kvm
# opened to the group; run directly, the suite must run as such a user.
#
# Until the machine initrd (the init shim) is on main, machines boot a
# stand-in initrd that mounts /dev/vda and switch_roots into the image's
# /sbin/init, printing the CPUs and memory it sees first; it runs from a
# copy of cove in $MT/bin, beside which cove finds it.

MT=$T/machine
MIMG=${COVE_MACHINE_IMAGES:-}

# mc ARGS...: cove as the test user, 10 minutes at most.
mc() {
	timeout -k 5 600 setpriv --reuid="$MUID" --regid="$MGID" --init-groups \
		env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$MHOME" USER=covetest \
		XDG_DATA_HOME="$MT/data" XDG_CONFIG_HOME="$MT/config" XDG_RUNTIME_DIR="$MT/run" \
		"$MT/bin/cove" "$@"
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

# The stand-in for the machine initrd (see the top of this file).
machine_standin_initrd() {
	local d=$MT/standin
	rm -rf "$d"
	mkdir -p "$d/bin" "$d/proc" "$d/dev" "$d/newroot"
	cp /bin/busybox "$d/bin/busybox"
	cat >"$d/init" <<'EOF'
#!/bin/busybox sh
b=/bin/busybox
$b mount -t proc proc /proc
$b mount -t devtmpfs dev /dev
echo "STANDIN cpus=$($b nproc) memtotal_kb=$($b awk '/^MemTotal/ { print $2 }' /proc/meminfo)"
$b mount -t ext4 /dev/vda /newroot || { echo "STANDIN: cannot mount /dev/vda"; $b poweroff -f; }
$b umount /proc
$b mount --move /dev /newroot/dev
exec $b switch_root /newroot /sbin/init
EOF
	chmod 0755 "$d/init"
	mkdir -p "$MT/bin/guest"
	(cd "$d" && find . | cpio -o -H newc --quiet) >"$MT/bin/guest/machine-initrd.cpio"
}

# Once per suite run: the user, their directories, a cove with the
# stand-in initrd and the kernel beside it.
machine_setup() {
	machine_user || return 1
	if [ -e "$MT/ready" ]; then
		machine_cleanup	# what a failed test left
		return 0
	fi
	[ -n "$MIMG" ] && [ -d "$MIMG/busybox" ] ||
		{ fail "COVE_MACHINE_IMAGES is not set (tests/integration/run.sh sets it)"; return 1; }
	rm -rf "$MT"
	mkdir -p "$MT/bin" "$MT/home" "$MT/data" "$MT/config" "$MT/run"
	cp "$PWD/build/cove" "$MT/bin/cove"
	ln -s "$PWD/build/cove-vmm" "$MT/bin/cove-vmm"
	machine_standin_initrd
	cp "$K/bzImage" "$MT/bin/guest/bzImage"
	chown -R "$MUID:$MGID" "$MT"
	chmod 0700 "$MT/run"
	# the images, into the user's store once
	mc image import -q "oci:$MIMG/busybox:latest" localhost/busybox:latest >/dev/null ||
		{ fail "import of the busybox image"; return 1; }
	touch "$MT/ready"
}

# machine_console NAME PATTERN [SECONDS]: until NAME's console has a line
# matching PATTERN.
machine_console() {
	local f=$MT/data/cove/machines/$1/console.log end=$((SECONDS + ${3:-$BOOT_TIMEOUT}))
	while [ $SECONDS -lt $end ]; do
		grep -Eq -- "$2" "$f" 2>/dev/null && return 0
		sleep 0.5
	done
	fail "machine $1: console never showed /$2/; tail: $(tail -5 "$f" 2>/dev/null | tr '\r' ' '); vmm.log: $(cat "$MT/data/cove/machines/$1/vmm.log" 2>/dev/null)"
}

# machine_state NAME: its STATE column in ls.
machine_state() {
	mc m ls | awk -v n="$1" '$1 == n { print $(NF - ($NF == "*" ? 1 : 0)) }'
}

# Leave no monitor running: remove every machine of the test user.
machine_cleanup() {
	local n
	for n in $(mc ls -q 2>/dev/null); do
		mc rm -f "$n" >/dev/null 2>&1
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
	machine_console busybox '^STANDIN cpus=1 memtotal_kb=' 1
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

	# busybox init ignores the power button: stopped by force after -t
	mc m stop -t 2 busybox >/dev/null 2>"$MT/err" || fail "stop: $(cat "$MT/err")"
	grep -q 'did not power off within 2s: stopped by force' "$MT/err" || fail "stop said: $(cat "$MT/err")"
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
	mc m restart -t 1 >/dev/null 2>&1 || fail "restart"
	machine_console busybox '^STANDIN cpus=2 memtotal_kb=(4|5)[0-9]{5}\b' || { machine_cleanup; return 1; }
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
