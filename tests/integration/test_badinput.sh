# Bad input: one clear line on stderr, a non-zero exit, never a crash or hang.

bad() {
	local want=$1
	shift
	vmm "$@"
	[ "$rc" = 1 ] || fail "exit $rc (want 1) for: $*; stderr: $(cat "$T/stderr")"
	[ "$(wc -l <"$T/stderr")" = 1 ] || fail "want one line on stderr, got: $(cat "$T/stderr")"
	stderr_has "$want"
}

test_bad_no_kvm() {
	# Hide /dev/kvm in a private mount namespace.
	rc=0
	unshare -m sh -c "mount -t tmpfs none /dev && exec '$VMM' --kernel '$K/bzImage'" \
		>"$T/console" 2>"$T/stderr" </dev/null || rc=$?
	[ "$rc" = 1 ] || fail "exit $rc"
	stderr_has '^cove-vmm: /dev/kvm: No such file or directory \(is the kvm module loaded'
}

test_bad_not_a_kernel() {
	head -c 100000 /dev/urandom >"$T/junk"
	bad 'kernel' --kernel "$T/junk"
	: >"$T/empty"
	bad 'empty' --kernel "$T/empty"
	bad 'No such file' --kernel "$T/missing"
}

test_bad_initrd_too_large() {
	truncate -s 300M "$T/big.cpio"
	bad 'initrd .* larger than guest memory' --kernel "$K/bzImage" --initrd "$T/big.cpio" --memory 256
}

test_bad_memory() {
	bad 'not a size' --kernel "$K/bzImage" --memory lots
	bad 'not a size' --kernel "$K/bzImage" --memory 12Q
	bad 'at least' --kernel "$K/bzImage" --memory 1M
	bad 'needs a value' --kernel "$K/bzImage" --memory
}

test_bad_disk() {
	bad 'disk .*No such file' --kernel "$K/bzImage" --disk "$T/nope.img"
	mkdir -p "$T/romnt"
	mount -t tmpfs -o size=8M none "$T/romnt"
	truncate -s 1M "$T/romnt/x.img"
	mount -o remount,ro "$T/romnt"
	bad 'Read-only file system' --kernel "$K/bzImage" --disk "$T/romnt/x.img"
	# ,ro works on the same file
	vmm --kernel "$K/bzImage" --initrd "$G/test.cpio" --disk "$T/romnt/x.img,ro" \
		--cmdline "$BASE_CMDLINE cove.script=/tests/hello.sh"
	umount "$T/romnt"
	script_ok
	bad "unknown option 'rx'" --kernel "$K/bzImage" --disk "$T/x.img,rx"
}

test_bad_flags() {
	bad "unknown option '--frobnicate'" --kernel "$K/bzImage" --frobnicate
	bad 'kernel is required' --cpus 2
	bad 'cpus 0' --kernel "$K/bzImage" --cpus 0
	bad 'console' --kernel "$K/bzImage" --console tcp:1
}
