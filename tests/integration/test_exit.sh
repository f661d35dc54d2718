# How the VM ends: poweroff, reboot, panic — each ends the monitor cleanly.

test_exit_poweroff() {
	boot_script poweroff
	expect_rc 0
	stderr_has 'guest powered off'
}

test_exit_reboot() {
	boot_script reboot
	expect_rc 0
	stderr_has 'guest rebooted'
}

test_exit_panic() {
	boot_script panic
	expect_rc 0
	stderr_has 'guest panicked'
}

test_exit_sigterm() {
	rc=0
	"$VMM" --kernel "$K/bzImage" --initrd "$G/test.cpio" --cmdline "$BASE_CMDLINE" \
		>"$T/console" 2>"$T/stderr" </dev/null &
	local pid=$!
	sleep 3
	kill -TERM $pid
	wait $pid || rc=$?
	expect_rc 0
	stderr_has 'stopped'
}

test_exit_poweroff_request() {
	boot_script poweroff-request
	expect_rc 0
	stderr_has 'guest powered off'
}
