# Booting: both kernel formats, the boot timer, CPUs, memory, console.

test_boot_bzimage_boot_timer() {
	boot_script hello --metrics "$T/metrics.json"
	script_ok
	console_has '^hello from the guest: Linux'
	python3 - "$T/metrics.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
assert m["exit_reason"] == "poweroff", m
assert m["boot_timer_ms"] and m["boot_timer_ms"] > 0, m
assert m["first_kvm_run_ms"] and m["first_kvm_run_ms"] < m["boot_timer_ms"], m
assert m["peak_rss_kib"] > 0, m
print("    boot timer %.1f ms, first KVM_RUN %.1f ms" % (m["boot_timer_ms"], m["first_kvm_run_ms"]))
PY
}

test_boot_pvh_vmlinux() {
	vmm --kernel "$K/vmlinux" --initrd "$G/test.cpio" \
		--cmdline "$BASE_CMDLINE cove.script=/tests/hello.sh" --metrics "$T/metrics.json"
	script_ok
	console_has '^hello from the guest'
	grep -q '"boot_timer_ms":[0-9]' "$T/metrics.json" || fail "no boot timer: $(cat "$T/metrics.json")"
}

cpus_case() {
	boot_script nproc --cpus "$1"
	script_ok
	[ "$(console_value NPROC)" = "$1" ] || fail "guest nproc says $(console_value NPROC), want $1"
}
test_cpus_1() { cpus_case 1; }
test_cpus_2() { cpus_case 2; }
test_cpus_4() { cpus_case 4; }

test_cpus_2_pvh() {
	vmm --kernel "$K/vmlinux" --initrd "$G/test.cpio" --cpus 2 \
		--cmdline "$BASE_CMDLINE cove.script=/tests/nproc.sh"
	script_ok
	[ "$(console_value NPROC)" = 2 ] || fail "guest nproc says $(console_value NPROC), want 2"
}

test_memory_seen_by_guest() {
	boot_script meminfo --memory 512M
	script_ok
	local kb
	kb=$(console_value MEMTOTAL_KB)
	# MemTotal is RAM less what the kernel reserved for itself.
	[ -n "$kb" ] && [ "$kb" -gt $((440 * 1024)) ] && [ "$kb" -le $((512 * 1024)) ] ||
		fail "MemTotal ${kb:-?} kB for 512 MiB"
}

test_memory_above_4g_hole() {
	boot_script meminfo --memory 3500
	script_ok
	local kb
	kb=$(console_value MEMTOTAL_KB)
	[ -n "$kb" ] && [ "$kb" -gt $((3300 * 1024)) ] || fail "MemTotal ${kb:-?} kB for 3500 MiB"
}

test_console_input() {
	# Typed before the guest reads its console: kept until it listens.
	rc=0
	echo "typed at the console" | timeout -k 5 "$BOOT_TIMEOUT" "$VMM" --kernel "$K/bzImage" \
		--initrd "$G/test.cpio" --cmdline "$BASE_CMDLINE cove.script=/tests/input.sh" \
		>"$T/console" 2>"$T/stderr" || rc=$?
	script_ok
	console_has '^GOT:typed at the console'
}

test_console_file() {
	rm -f "$T/console.log"
	boot_script hello --console "file:$T/console.log"
	expect_rc 0
	grep -q '^hello from the guest' "$T/console.log" || fail "console file lacks output"
	[ ! -s "$T/console" ] || fail "stdout not empty with a file console"
}

# Kernels that do not read ACPI: CPUs from the MP table, devices from the
# command line. Without ACPI there is no power-off, so test-init resets.
noacpi_case() {
	truncate -s 64M "$T/noacpi.img"
	vmm --kernel "$K/bzImage" --initrd "$G/test.cpio" --cpus 2 --disk "$T/noacpi.img" \
		--cmdline "$BASE_CMDLINE cove.script=/tests/blk-io.sh $1" "${@:2}"
	expect_rc 0
	console_has '^COVE-TEST-EXIT=0'
	stderr_has 'guest rebooted'
	[ "$(console_value BLKIO)" = match ] || fail "block I/O through the command-line device failed"
}
test_no_acpi_flag() { noacpi_case "" --no-acpi; }
test_acpi_off_cmdline() { noacpi_case "acpi=off"; }

test_no_acpi_nproc() {
	vmm --kernel "$K/bzImage" --initrd "$G/test.cpio" --cpus 4 --no-acpi \
		--cmdline "$BASE_CMDLINE cove.script=/tests/nproc.sh"
	expect_rc 0
	[ "$(console_value NPROC)" = 4 ] || fail "guest nproc says $(console_value NPROC), want 4 (MP table)"
}
