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
