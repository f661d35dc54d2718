# Graceful stop: the control API's shutdown presses the ACPI power button;
# test-init powers off. A guest that ignores it is stopped after the timeout.

shutdown_case() {
	local dir sock r
	dir=$(mktemp -d /tmp/cove-shut.XXXXXX)	# sockets cannot live on 9p
	sock=$dir/api.sock
	vmm_bg --kernel "$K/bzImage" --initrd "$G/test.cpio" --api "$sock" "$@"
	wait_console '^SLEEPING' || { vmm_kill; return 1; }
	r=$(api_call "$sock" "{\"op\":\"shutdown\",\"timeout_ms\":$shutdown_ms,\"id\":1}") || true
	[ "$r" = '{"ok":true,"id":1}' ] || { vmm_kill; fail "shutdown: $r"; return 1; }
	vmm_wait
	rm -rf "$dir"
}

test_shutdown_power_button() {
	shutdown_ms=120000	# only a broken power button waits this long
	shutdown_case --cmdline "$BASE_CMDLINE cove.script=/tests/sleep-long.sh" || return 1
	expect_rc 0 || return 1
	stderr_has 'guest powered off' || return 1
	console_has 'test-init: power button pressed' || return 1
	console_has '^COVE-TEST-EXIT=0'
}

test_shutdown_forced_after_timeout() {
	shutdown_ms=3000
	shutdown_case --cmdline "$BASE_CMDLINE cove.script=/tests/sleep-long.sh cove.nobutton=1" || return 1
	expect_rc 0 || return 1
	stderr_has 'did not power off in time' || return 1
	stderr_has '^cove-vmm: stopped' || return 1
	! grep -q 'guest powered off' "$T/stderr" || fail "powered off, but the button was ignored"
}

test_shutdown_without_acpi() {
	local dir sock r
	dir=$(mktemp -d /tmp/cove-shut.XXXXXX)
	sock=$dir/api.sock
	vmm_bg --kernel "$K/bzImage" --initrd "$G/test.cpio" --api "$sock" --no-acpi \
		--cmdline "$BASE_CMDLINE cove.script=/tests/sleep-long.sh"
	wait_console '^SLEEPING' || { vmm_kill; return 1; }
	r=$(api_call "$sock" '{"op":"shutdown"}') || true
	api_call "$sock" '{"op":"stop"}' >/dev/null || true
	vmm_wait
	rm -rf "$dir"
	[ "$r" = '{"ok":false,"error":"shutdown: no ACPI: cannot ask the guest; use stop"}' ] ||
		fail "shutdown without ACPI: $r"
	stderr_has '^cove-vmm: stopped'
}
