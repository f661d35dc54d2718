# Helpers for the integration suite (sourced by suite.sh).
# Each test is a function test_NAME; it fails by calling fail.

VMM=${VMM:-$PWD/build/cove-vmm}
K=${COVE_KERNEL_DIR:?}
G=${COVE_GUEST_DIR:?}
# Scratch files on a local filesystem: the shared build/ may be 9p, which
# has no hole punching and its own caching.
T=${COVE_ITEST_DIR:-/tmp/cove-itest}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-240}
# COVE_GUEST_QUIET= (empty) keeps the guest kernel's full log, oopses included.
BASE_CMDLINE="console=ttyS0 reboot=k panic=-1 ${COVE_GUEST_QUIET-quiet}"

fail() {
	echo "    $*" >&2
	return 1
}

# vmm ARGS...: run cove-vmm, console to $T/console, stderr to $T/stderr,
# exit status in $rc.
vmm() {
	rc=0
	timeout -k 5 "$BOOT_TIMEOUT" "$VMM" "$@" >"$T/console" 2>"$T/stderr" </dev/null || rc=$?
	return 0
}

# boot_script NAME [cove-vmm args...]: boot the test initrd running
# /tests/NAME.sh, console captured.
boot_script() {
	local name=$1
	shift
	vmm --kernel "$K/bzImage" --initrd "$G/test.cpio" \
		--cmdline "$BASE_CMDLINE cove.script=/tests/$name.sh" "$@"
}

# console_has PATTERN: the console shows a line matching the regex.
console_has() {
	grep -Eq -- "$1" "$T/console" || fail "console lacks /$1/; console tail: $(tail -5 "$T/console" | tr '\r' ' '); stderr: $(cat "$T/stderr")"
}

stderr_has() {
	grep -Eq -- "$1" "$T/stderr" || fail "stderr lacks /$1/: $(cat "$T/stderr")"
}

expect_rc() {
	[ "$rc" = "$1" ] || fail "cove-vmm exited $rc, expected $1; stderr: $(cat "$T/stderr")"
}

# script_ok: the guest's script exited 0 and the VM powered off cleanly.
script_ok() {
	expect_rc 0 && console_has '^COVE-TEST-EXIT=0' && stderr_has 'guest powered off'
}

# console_value KEY: the value of the first KEY=... line on the console.
console_value() {
	grep -Eo -- "^$1=[^[:space:]]*" "$T/console" | head -1 | cut -d= -f2
}

# vmm_bg ARGS...: start cove-vmm in the background like vmm; $vmm_pid is
# the monitor's own pid (for /proc), $vmm_job the job to vmm_wait for.
vmm_bg() {
	rc=0
	timeout -k 5 "$BOOT_TIMEOUT" "$VMM" "$@" >"$T/console" 2>"$T/stderr" </dev/null &
	vmm_job=$!
	vmm_pid=
	for _ in $(seq 100); do
		vmm_pid=$(pgrep -P "$vmm_job" -x cove-vmm) && break
		sleep 0.1
	done
	[ -n "$vmm_pid" ] || fail "cove-vmm did not start: $(cat "$T/stderr")"
}

# vmm_wait: wait for the background monitor to end; its status in $rc.
vmm_wait() {
	rc=0
	wait "$vmm_job" || rc=$?
}

# vmm_kill: end a background monitor that a failed test leaves running.
vmm_kill() {
	kill "$vmm_job" 2>/dev/null
	wait "$vmm_job" 2>/dev/null
	return 0
}

# wait_console PATTERN [SECONDS]: wait until the console has a line
# matching the regex (default: BOOT_TIMEOUT); fails if the VM ends first.
wait_console() {
	local end=$((SECONDS + ${2:-$BOOT_TIMEOUT}))
	while [ $SECONDS -lt $end ]; do
		grep -Eq -- "$1" "$T/console" && return 0
		kill -0 "$vmm_job" 2>/dev/null || break
		sleep 0.2
	done
	grep -Eq -- "$1" "$T/console" || fail "console never showed /$1/; tail: $(tail -5 "$T/console" | tr '\r' ' '); stderr: $(cat "$T/stderr")"
}

# api_call SOCKET JSON: send one request line, print the reply line.
api_call() {
	python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(60)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
f = s.makefile("rb")
sys.stdout.write(f.readline().decode())
PY
}
