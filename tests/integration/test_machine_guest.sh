# Machines, the guest half: cove-init and cove-agent (guest/machine, in
# build/guest/machine-initrd.cpio) booting root disks unpacked from the
# machine test images (tests/machine/mkimages.sh: busybox init, Debian 12
# with systemd), driven from the host through agent_client
# (build/tools/agent-run) over cove-vmm's hybrid vsock socket.

MG_TOOL=$PWD/build/tools/agent-run
MG_COVE=$PWD/build/cove
MG_ID=0123456789abcdef0123456789abcdef
# The busybox image has "user" with uid 1000: the host user takes its place.
MG_USER=covetest
MG_UID=1000
MG_GID=1000

# mg_image NAME REF SIZE: $T/mg-NAME.img, a fresh root disk of SIZE from
# the image REF of COVE_MACHINE_IMAGES (unpacked once per run, then copied).
mg_image() {
	local base=$T/mg-base-${2%%:*}-$3.img
	if [ ! -e "$base" ]; then
		[ -d "${COVE_MACHINE_IMAGES:-}" ] || { fail "COVE_MACHINE_IMAGES is not a directory"; return 1; }
		XDG_DATA_HOME=$T/mg-xdg "$MG_COVE" image import -q "oci:$COVE_MACHINE_IMAGES/$2" \
			>/dev/null || { fail "cove image import $2 failed"; return 1; }
		XDG_DATA_HOME=$T/mg-xdg "$MG_COVE" image unpack -q "localhost/$2" "$base.tmp" \
			--size "$3" || { fail "cove image unpack $2 failed"; return 1; }
		mv "$base.tmp" "$base"
	fi
	cp --sparse=always "$base" "$T/mg-$1.img"
}

# mg_tree IMG OUT: every path in the filesystem of IMG, sorted, into OUT.
mg_tree() {
	rm -rf "$T/mg-dump"
	mkdir "$T/mg-dump"
	debugfs -R "rdump / $T/mg-dump" "$1" >/dev/null 2>&1
	(cd "$T/mg-dump" && find . -mindepth 1 | LC_ALL=C sort) >"$2"
	rm -rf "$T/mg-dump"
}

# mg_boot IMG [MEMORY_MIB [CMDLINE...]]: boot a machine in the background
# as cove does, with the host user $MG_USER; its agent socket in $MG_SOCK.
mg_boot() {
	local img=$1 mem=${2:-256}
	shift
	if [ $# -gt 0 ]; then shift; fi
	MG_DIR=${MG_DIR:-$(mktemp -d /tmp/cove-mg.XXXXXX)}
	MG_SOCK=$MG_DIR/v.sock
	vmm_bg --kernel "$K/bzImage" --initrd "$G/machine-initrd.cpio" \
		--cmdline "$BASE_CMDLINE cove.hostname=mg cove.user=$MG_USER cove.uid=$MG_UID cove.gid=$MG_GID cove.home=/home/$MG_USER cove.homemount=none cove.machineid=$MG_ID $*" \
		--memory "$mem" --disk "$img" --vsock "cid=3,uds=$MG_SOCK"
}

# (an EXIT trap under set -e: nothing in it may fail)
mg_cleanup() {
	vmm_kill || true
	if [ -n "${MG_DIR:-}" ]; then rm -rf "$MG_DIR" || true; fi
}

# mg_run ARGS...: agent-run exec on the machine; its status in $mrc.
mg_run() {
	mrc=0
	"$MG_TOOL" -T $((BOOT_TIMEOUT * 1000)) "$MG_SOCK" exec "$@" || mrc=$?
}

# mg_is WANT ARGS...: the command's stdout is WANT and it exits 0.
mg_is() {
	local want=$1 got
	shift
	got=$(mg_run "$@"; exit $mrc) || fail "'$*' exited $?: $got" || return 1
	[ "$got" = "$want" ] || fail "'$*' printed '$got', want '$want'"
}

# mg_status WANT ARGS...: the command exits WANT.
mg_status() {
	local want=$1
	shift
	mg_run "$@" >"$T/mg-out" 2>"$T/mg-err" </dev/null
	[ "$mrc" = "$want" ] || fail "'$*' exited $mrc, want $want: $(cat "$T/mg-out" "$T/mg-err")"
}

mg_poweroff() {
	"$MG_TOOL" "$MG_SOCK" poweroff || fail "agent poweroff failed"
	vmm_wait
	expect_rc 0
	stderr_has 'guest powered off'
}

# mg_wait_file FILE TEXT: until FILE has TEXT (at most BOOT_TIMEOUT s).
mg_wait_file() {
	local end=$((SECONDS + BOOT_TIMEOUT))
	until grep -q "$2" "$1" 2>/dev/null; do
		[ $SECONDS -lt $end ] || { fail "no '$2' in $1: $(tail -c 300 "$1")"; return 1; }
		sleep 0.2
	done
}

mg_info() { # KEY: a value of agent-run info
	"$MG_TOOL" "$MG_SOCK" info | sed -n "s/^$1=//p"
}

# A PTY session as a terminal user has it: agent-run under script(1) on a
# 33x101 terminal, ^C typed once the guest command is waiting.
mg_pty_session() {
	local job
	rm -f "$T/mg-pty-in"
	mkfifo "$T/mg-pty-in"
	script -qfec "stty rows 33 cols 101; $MG_TOOL $MG_SOCK exec -t -i -u $MG_USER -- sh -c 'tty; stty size; echo READY; sleep 200; echo NOT-REACHED'; echo RC=\$?; stty -a | grep -Eq \"(^| )icanon( |\$)\" && echo RESTORED" \
		/dev/null <"$T/mg-pty-in" >"$T/mg-pty-out" 2>&1 &
	job=$!
	exec 7>"$T/mg-pty-in"
	mg_wait_file "$T/mg-pty-out" READY || true
	printf '\003' >&7
	wait "$job" || true
	exec 7>&-
	local out
	out=$(tr -d '\r' <"$T/mg-pty-out")
	echo "$out" | grep -Eq '^/dev/pts/[0-9]+$' || fail "tty in the guest: $out" || return 1
	echo "$out" | grep -q '^33 101$' || fail "stty size in the guest: $out" || return 1
	echo "$out" | grep -q 'RC=130$' || fail "^C did not end the command with 130: $out" || return 1
	echo "$out" | grep -q NOT-REACHED && { fail "the command went on after ^C: $out"; return 1; }
	echo "$out" | grep -q '^RESTORED$' || fail "terminal not restored: $out"
}

test_machine_guest_busybox() {
	local sum got i extra jobs
	trap mg_cleanup EXIT
	mg_image bb busybox:latest 128M
	mg_tree "$T/mg-bb.img" "$T/mg-before"
	mg_boot "$T/mg-bb.img"

	# provisioning: the image's uid-1000 "user" became the host user
	mg_is "$MG_USER" -u "$MG_USER" -- id -un
	mg_is "$MG_UID" -u "$MG_USER" -- id -u
	mg_is "$MG_GID" -u "$MG_USER" -- id -g
	mg_is "/home/$MG_USER|$MG_USER|$MG_USER|/bin/sh|/home/$MG_USER" -u "$MG_USER" -- \
		sh -c 'echo "$HOME|$USER|$LOGNAME|$SHELL|$(pwd)"'
	mg_is 0 -- sh -c "cat /etc/passwd /etc/group /etc/shadow | grep -c '^user:' || true"
	mg_is "$MG_USER:x:$MG_UID:$MG_GID:user:/home/$MG_USER:/bin/sh" -- grep "^$MG_USER:" /etc/passwd
	mg_is "$MG_USER:x:$MG_GID:" -- grep "^$MG_USER:" /etc/group
	mg_is "$MG_USER:*:19000:0:99999:7:::" -- grep "^$MG_USER:" /etc/shadow
	mg_is "$MG_USER $MG_UID" -U "$MG_UID:$MG_GID" -- sh -c 'echo $USER $(id -u)'
	mg_is "0 /root" -U 0:0 -- sh -c 'echo $(id -u) $HOME'
	mg_is mg -- hostname
	mg_is "127.0.1.1	mg" -- grep mg /etc/hosts
	mg_is "$MG_ID" -- cat /etc/machine-id

	# argv exactly as given, env and cwd
	mg_is hi -- sh -c 'echo hi'
	mg_is 'a  b' -- printf %s 'a  b'
	mg_is '[][x y][*][$HOME]' -- printf '[%s]' '' 'x y' '*' '$HOME'
	mg_is 'bar baz@/tmp' -e 'FOO=bar baz' -w /tmp -- sh -c 'echo "$FOO@$(pwd)"'

	# exit codes and signals
	mg_status 42 -- sh -c 'exit 42'
	mg_status 143 -- sh -c 'kill -TERM $$'
	mg_status 127 -- /no/such/command
	grep -q 'No such file' "$T/mg-err" || fail "no message for a missing command: $(cat "$T/mg-err")"
	mg_status 126 -w /no/such/dir -- true

	# stdin: a few MiB intact, and EOF
	head -c 3M /dev/urandom >"$T/mg-blob"
	sum=$(sha256sum <"$T/mg-blob" | cut -d' ' -f1)
	got=$(mg_run -i -- sha256sum <"$T/mg-blob" | cut -d' ' -f1)
	[ "$got" = "$sum" ] || fail "3 MiB through stdin: sha256 $got, want $sum"
	mg_run -i -- cat <"$T/mg-blob" >"$T/mg-blob.out"
	cmp -s "$T/mg-blob" "$T/mg-blob.out" || fail "3 MiB through cat came back different"
	mg_is 0 -i -- sh -c 'wc -c | tr -d " "' </dev/null

	# many sessions at once
	jobs=
	for i in 1 2 3 4 5 6 7 8; do
		mg_run -- sh -c "sleep 1; echo s$i" >"$T/mg-c$i" &
		jobs="$jobs $!"
	done
	wait $jobs
	for i in 1 2 3 4 5 6 7 8; do
		[ "$(cat "$T/mg-c$i")" = "s$i" ] || fail "session $i printed '$(cat "$T/mg-c$i")'"
	done

	# a PTY, and ^C through it
	mg_pty_session

	# SIGINT to the host client goes to the guest command
	"$MG_TOOL" "$MG_SOCK" exec -- sh -c 'echo started; sleep 200; echo NOT-REACHED' >"$T/mg-int" &
	i=$!
	mg_wait_file "$T/mg-int" started
	kill -INT "$i"
	got=0
	wait "$i" || got=$?
	[ "$got" = 130 ] || fail "SIGINT forwarded: status $got, want 130 ($(cat "$T/mg-int"))"

	# a client that vanishes mid-stream: the agent lives on, the command is hung up
	"$MG_TOOL" "$MG_SOCK" exec -- sh -c 'echo started >&2; exec yes' >/dev/null 2>"$T/mg-yes" &
	i=$!
	mg_wait_file "$T/mg-yes" started
	kill -9 "$i"
	wait "$i" || true
	for _ in $(seq 100); do
		got=$(mg_run -- sh -c 'pidof yes || echo gone')
		[ "$got" = gone ] && break
		sleep 0.5
	done
	[ "$got" = gone ] || fail "yes still runs after its client died"

	# facts for ls/inspect
	[ "$(mg_info mem_total_kib)" -gt 100000 ] || fail "info: MemTotal $(mg_info mem_total_kib)"
	[ "$(mg_info disk_total_kib)" -gt 100000 ] || fail "info: disk $(mg_info disk_total_kib)"
	[ -z "$(mg_info ipv4)" ] || fail "info: an IPv4 without a network: $(mg_info ipv4)"

	mg_poweroff

	# nothing of cove's on the disk but what provisioning wrote
	mg_tree "$T/mg-bb.img" "$T/mg-after"
	extra=$(comm -13 "$T/mg-before" "$T/mg-after" | grep -vxE '\./etc/cove|\./etc/cove/provisioned|\./etc/hosts|\./etc/machine-id|\./home/covetest' || true)
	[ -z "$extra" ] || fail "new on the disk: $extra"
	[ -z "$(comm -23 "$T/mg-before" "$T/mg-after")" ] ||
		fail "gone from the disk: $(comm -23 "$T/mg-before" "$T/mg-after")"
	grep -qx './etc/cove/provisioned' "$T/mg-after" || fail "no provisioning marker"
}

test_machine_guest_grow_and_reboot() {
	local before after
	trap mg_cleanup EXIT
	mg_image grow busybox:latest 64M
	MG_USER=alice MG_UID=2001 MG_GID=2002
	mg_boot "$T/mg-grow.img"
	mg_is "alice 2001 2002" -u alice -- sh -c 'echo $(id -un) $(id -u) $(id -g)'
	before=$(mg_info disk_total_kib)
	mg_poweroff
	truncate -s 256M "$T/mg-grow.img"
	mg_boot "$T/mg-grow.img"
	after=$(mg_info disk_total_kib)
	[ "$after" -gt $((before + 150000)) ] || fail "root fs $before KiB, after growing the disk $after KiB"
	# provisioned once: one entry each
	mg_is 1 -- grep -c '^alice:' /etc/passwd
	mg_is 1 -- grep -c '^alice:' /etc/group
	mg_is "alice 2001 2002" -u alice -- sh -c 'echo $(id -un) $(id -u) $(id -g)'
	mg_poweroff
	echo "    root fs ${before} KiB -> ${after} KiB" >&2
}

test_machine_guest_create_user_script() {
	trap mg_cleanup EXIT
	mg_image cu busybox:latest 64M
	cat >"$T/mg-create-user.sh" <<'EOF'
#!/bin/sh
env | grep '^CONTAINER_' | sort >/etc/machine/seen
echo once >>/etc/machine/runs
echo "$CONTAINER_USER:x:$CONTAINER_UID:$CONTAINER_GID:by-script:$CONTAINER_HOME:$CONTAINER_SHELL" >>/etc/passwd
EOF
	debugfs -w -f - "$T/mg-cu.img" >/dev/null 2>&1 <<EOF
mkdir /etc/machine
write $T/mg-create-user.sh /etc/machine/create-user.sh
sif /etc/machine/create-user.sh mode 0100755
EOF
	mg_boot "$T/mg-cu.img"
	mg_run -- cat /etc/machine/seen >"$T/mg-seen"
	printf '%s\n' "CONTAINER_GID=$MG_GID" "CONTAINER_HOME=/home/$MG_USER" \
		"CONTAINER_MACHINE_ID=$MG_ID" "CONTAINER_SHELL=/bin/sh" "CONTAINER_UID=$MG_UID" \
		"CONTAINER_USER=$MG_USER" | diff - "$T/mg-seen" >&2 || fail "create-user.sh saw another environment"
	mg_is "$MG_USER:x:$MG_UID:$MG_GID:by-script:/home/$MG_USER:/bin/sh" -- grep "^$MG_USER:" /etc/passwd
	# the built-in step did not run: the image's own user is still there
	mg_is 1 -- grep -c '^user:' /etc/passwd
	mg_poweroff
	mg_boot "$T/mg-cu.img"
	mg_is once -- cat /etc/machine/runs
	mg_poweroff
}

test_machine_guest_no_init() {
	mg_image noinit busybox:latest 64M
	debugfs -w -R "rm /sbin/init" "$T/mg-noinit.img" >/dev/null 2>&1
	vmm --kernel "$K/bzImage" --initrd "$G/machine-initrd.cpio" \
		--cmdline "$BASE_CMDLINE cove.user=$MG_USER cove.uid=$MG_UID cove.gid=$MG_GID" \
		--disk "$T/mg-noinit.img"
	expect_rc 0
	console_has 'cove-init: error: the image has no /sbin/init'
	stderr_has 'guest powered off'
}

