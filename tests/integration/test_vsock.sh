# virtio-vsock with the hybrid unix-socket host side (--vsock): echo both
# ways over 50 concurrent connections, refused connects in both directions,
# and 100 MiB through one connection. The host side is the same static
# vsock-test tool the guest runs (its u* modes speak the unix sockets).

VSOCK_TOOL=$G/tools/vsock-test

# vsock_boot SCRIPT SOCK [LIMIT]: boot the test initrd running SCRIPT with a
# vsock device (cid 3) on SOCK, in the background, killed after LIMIT
# seconds (default $BOOT_TIMEOUT; only against hangs); its pid in $vpid.
vsock_boot() {
	timeout -k 5 "${3:-$BOOT_TIMEOUT}" "$VMM" --kernel "$K/bzImage" --initrd "$G/test.cpio" \
		--cmdline "$BASE_CMDLINE cove.script=/tests/$1.sh" --vsock "cid=3,uds=$2" \
		--metrics "$T/metrics.json" >"$T/console" 2>"$T/stderr" </dev/null &
	vpid=$!
}

# wait_line FILE REGEX PID: until FILE has a line matching REGEX; fails if
# PID ends first.
wait_line() {
	until grep -Eq -- "$2" "$1" 2>/dev/null; do
		kill -0 "$3" 2>/dev/null || { grep -Eq -- "$2" "$1" 2>/dev/null && return 0; \
			fail "no /$2/ in $1 before pid $3 ended: $(tail -5 "$1" 2>/dev/null | tr '\r' ' ')"; return 1; }
		sleep 0.2
	done
}

test_vsock_echo_both_ways() {
	local dir sock srv
	# Sockets need a local filesystem and a short path, not $T.
	dir=$(mktemp -d /tmp/cove-vsock.XXXXXX)
	sock=$dir/v.sock
	"$VSOCK_TOOL" userver "${sock}_5000" >"$T/host-server" 2>&1 &
	srv=$!
	wait_line "$T/host-server" '^VSOCK-READY' "$srv"
	vsock_boot vsock-echo "$sock"
	wait_line "$T/console" '^VSOCK-READY' "$vpid" || { kill "$srv"; return 1; }
	# a guest port nobody listens on: the host client is closed
	"$VSOCK_TOOL" urefused "$sock" 6001 >"$T/host-refused" 2>&1 || true
	"$VSOCK_TOOL" uclient "$sock" 6000 50 65536 >"$T/host-client" 2>&1 || true
	rc=0
	wait "$vpid" || rc=$?
	kill "$srv" 2>/dev/null || true
	wait "$srv" 2>/dev/null || true
	rm -rf "$dir"
	script_ok
	console_has '^ECHOED=50'
	# Linux reports the device's RST to a connect as ECONNRESET (its
	# "connection refused" for vsock; virtio_transport_recv_connecting).
	console_has '^CONNECT=ECONNRESET'
	console_has '^SERVED=50'
	grep -q '^CONNECT_CLOSED=ok' "$T/host-refused" ||
		fail "host CONNECT to a closed guest port: $(cat "$T/host-refused")"
	grep -q '^ECHOED=50' "$T/host-client" ||
		fail "host clients: $(cat "$T/host-client")"
	[ ! -e "$sock" ] || fail "cove-vmm left its socket $sock behind"
}

test_vsock_100mib_one_connection() {
	local dir sock sink sent got
	dir=$(mktemp -d /tmp/cove-vsock.XXXXXX)
	sock=$dir/v.sock
	"$VSOCK_TOOL" usink "${sock}_5100" >"$T/host-sink" 2>&1 &
	sink=$!
	wait_line "$T/host-sink" '^VSOCK-READY' "$sink"
	# 100 MiB under nested emulation can take minutes: a generous limit
	vsock_boot vsock-bulk "$sock" $((BOOT_TIMEOUT * 4))
	rc=0
	wait "$vpid" || rc=$?
	wait "$sink" || fail "host sink failed: $(cat "$T/host-sink")"
	rm -rf "$dir"
	script_ok
	[ "$(console_value SENT_BYTES)" = 104857600 ] || fail "guest sent $(console_value SENT_BYTES)"
	got=$(grep -Eo '^RECV_BYTES=[0-9]+' "$T/host-sink" | cut -d= -f2)
	[ "$got" = 104857600 ] || fail "host received ${got:-nothing} bytes"
	sent=$(console_value SENT_SUM)
	got=$(grep -Eo '^RECV_SUM=[0-9a-f]+' "$T/host-sink" | cut -d= -f2)
	[ -n "$sent" ] && [ "$sent" = "$got" ] || fail "checksums differ: guest $sent, host $got"
	echo "    100 MiB guest to host in $(console_value VSOCK_BULK_SECONDS) s (guest clock)" >&2
}
