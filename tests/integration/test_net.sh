# virtio-net: a tap in a network namespace (ping both ways, NET_MIB MiB each
# way over TCP), user-mode networking (DHCP, the host's loopback, a port
# forward), and bad --net input.

NET_NS=cove-net-test
# MiB each way in the tap test (a multiple of 4; the guest gets it as
# cove.net_mib=). Its time follows the CPU the emulation gets: 64 MiB took
# 21 s alone here, and 100 MiB up to 969 s with other nested runs on the
# same two cores.
NET_MIB=${NET_MIB:-64}
NET_PIDS=()

# The EXIT trap runs under the suite's set -e: a peer that already exited
# or a namespace that is not there must not turn a pass into a silent fail.
net_cleanup() {
	local p
	for p in "${NET_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	ip netns del "$NET_NS" 2>/dev/null || true
}

# net_diag: on failure, what the VM said (on stdout, next to the result line).
net_diag() {
	echo "    rc=$rc stderr: $(tr '\n' ' ' <"$T/stderr")"
	echo "    console: $(tr '\r\n' '  ' <"$T/console" | tail -c 1500)"
	return 1
}

# wait_listen PORT: until something listens on TCP PORT (in NS when set).
wait_listen() {
	for _ in $(seq 600); do
		[ -n "$(${NS:+ip netns exec "$NS"} ss -Hltn "sport = :$1")" ] && return 0
		sleep 0.1
	done
	echo "    nothing listens on port $1: $(ss -ltn | tr '\n' ' ')"
	return 1
}

# peer MODE ADDR PORT ARG: tests/integration/net-peer.py in the background
# (inside the namespace when NS is set).
peer() {
	${NS:+ip netns exec "$NS"} python3 tests/integration/net-peer.py "$@" &
	NET_PIDS+=($!)
}

test_net_tap() {
	trap net_cleanup EXIT
	command -v ping >/dev/null || fail "no ping on the host (apt-get install iputils-ping)"
	ip netns del "$NET_NS" 2>/dev/null || true
	ip netns add "$NET_NS"
	ip -n "$NET_NS" link set lo up
	ip -n "$NET_NS" tuntap add dev tap0 mode tap
	ip -n "$NET_NS" addr add 10.9.0.1/24 dev tap0
	ip -n "$NET_NS" link set tap0 up
	head -c "${NET_MIB}M" /dev/urandom >"$T/down.bin"
	local want_down
	want_down=$(md5sum <"$T/down.bin" | cut -d' ' -f1)
	rm -f "$T/up.md5" "$T/hostping"
	NS=$NET_NS peer sink 10.9.0.1 5001 "$T/up.md5"
	NS=$NET_NS peer source 10.9.0.1 5002 "$T/down.bin"
	NS=$NET_NS wait_listen 5001
	NS=$NET_NS wait_listen 5002
	# Ping the guest until it answers (it waits for our echo request).
	(for _ in $(seq 240); do
		ip netns exec "$NET_NS" ping -c 1 -W 1 10.9.0.2 >/dev/null 2>&1 &&
			{ echo ok >"$T/hostping"; break; }
		sleep 0.5
	done) &
	NET_PIDS+=($!)

	# twice NET_MIB through nested virtualization in software emulation: slow
	rc=0
	timeout -k 5 $((BOOT_TIMEOUT * 4)) ip netns exec "$NET_NS" "$VMM" --kernel "$K/bzImage" \
		--initrd "$G/test.cpio" --memory 256 --name net-test \
		--cmdline "$BASE_CMDLINE cove.script=/tests/net-tap.sh cove.net_mib=$NET_MIB" \
		--net tap=tap0,mac=02:00:00:00:09:02 --metrics "$T/metrics.json" \
		>"$T/console" 2>"$T/stderr" </dev/null || rc=$?
	script_ok || net_diag
	[ "$(console_value MAC)" = 02:00:00:00:09:02 ] || fail "guest MAC $(console_value MAC)"
	[ "$(console_value GUEST_PING)" = ok ] || fail "guest could not ping the host"
	[ "$(console_value HOST_PING)" = seen ] || fail "no echo request from the host reached the guest"
	[ -f "$T/hostping" ] || fail "host could not ping the guest"
	local up
	up=$(cat "$T/up.md5" 2>/dev/null) || fail "host received nothing"
	[ "$up" = "$(console_value UP_MD5) $((NET_MIB << 20))" ] ||
		fail "guest->host data differs: host got '$up', guest sent $(console_value UP_MD5)"
	[ "$(console_value DOWN)" = "$want_down" ] ||
		fail "host->guest data differs: guest got $(console_value DOWN), host sent $want_down"
	grep -q '"vnet0":{[^}]*"rx_packets":[1-9]' "$T/metrics.json" ||
		fail "no rx counters in the metrics: $(cat "$T/metrics.json")"
}

test_net_user() {
	trap net_cleanup EXIT
	rm -f "$T/fwd.out"
	peer reply 127.0.0.1 15001 hello-from-host
	wait_listen 15001
	vmm_bg --kernel "$K/bzImage" --initrd "$G/test.cpio" --net user,fwd=tcp:15080:8080 \
		--cmdline "console=ttyS0 reboot=k panic=-1 cove.script=/tests/net-user.sh"
	# one connection, once the guest listens (see net-peer.py fetch)
	wait_console '^FWD=listening' || { vmm_kill; net_diag; }
	python3 tests/integration/net-peer.py fetch 127.0.0.1 15080 "$T/fwd.out" ||
		{ vmm_kill; net_diag; }
	vmm_wait
	script_ok || net_diag
	[ "$(console_value DHCP_IP)" = 10.0.2.15 ] || fail "DHCP gave '$(console_value DHCP_IP)'"
	[ "$(console_value HOST_TCP)" = hello-from-host ] ||
		fail "guest did not reach the host's loopback: '$(console_value HOST_TCP)'"
	console_has '^FWD=served'
	[ "$(cat "$T/fwd.out")" = fwd-ok ] ||
		fail "the forwarded port gave '$(cat "$T/fwd.out")', not fwd-ok"
}

test_net_two_nics_default_macs() {
	trap net_cleanup EXIT
	ip netns del "$NET_NS" 2>/dev/null || true
	ip netns add "$NET_NS"
	ip -n "$NET_NS" tuntap add dev tap1 mode tap
	rc=0
	timeout -k 5 "$BOOT_TIMEOUT" ip netns exec "$NET_NS" "$VMM" --kernel "$K/bzImage" \
		--initrd "$G/test.cpio" --cmdline "$BASE_CMDLINE cove.script=/tests/net-macs.sh" \
		--name vm-a --net tap=tap1 --net user >"$T/console" 2>"$T/stderr" </dev/null || rc=$?
	script_ok
	local a b
	a=$(console_value ETH0)
	b=$(console_value ETH1)
	case $a in 02:*) ;; *) fail "eth0 MAC '$a' is not locally administered";; esac
	[ -n "$b" ] && [ "$a" != "$b" ] || fail "MACs '$a' and '$b'"
	# the same name gives the same MACs
	timeout -k 5 "$BOOT_TIMEOUT" ip netns exec "$NET_NS" "$VMM" --kernel "$K/bzImage" \
		--initrd "$G/test.cpio" --cmdline "$BASE_CMDLINE cove.script=/tests/net-macs.sh" \
		--name vm-a --net tap=tap1 --net user >"$T/console" 2>"$T/stderr" </dev/null || rc=$?
	[ "$(console_value ETH0)" = "$a" ] && [ "$(console_value ETH1)" = "$b" ] ||
		fail "default MACs changed between boots"
}

# net_bad PATTERN ARGS...: test_badinput.sh's bad, saying more on failure.
net_bad() {
	bad "$@" || { echo "    for $*:"; net_diag; }
}

test_bad_net() {
	trap net_cleanup EXIT
	net_bad 'net tap=nosuch0: No such device \(create it: ip tuntap add dev nosuch0 mode tap\)$' \
		--kernel "$K/bzImage" --net tap=nosuch0
	net_bad "^cove-vmm: --net tap=tap0,mac=01:02:03:04:05:06: bad MAC '01:02:03:04:05:06'" \
		--kernel "$K/bzImage" --net tap=tap0,mac=01:02:03:04:05:06
	net_bad "bad MAC 'zz'" --kernel "$K/bzImage" --net user,mac=zz
	net_bad "bad forward 'tcp:80'" --kernel "$K/bzImage" --net user,fwd=tcp:80
	net_bad "bad forward 'udp:1:2'" --kernel "$K/bzImage" --net user,fwd=udp:1:2
	net_bad "unknown backend 'bridge'" --kernel "$K/bzImage" --net bridge
	net_bad 'not a tap interface' --kernel "$K/bzImage" --net tap=lo
	peer reply 127.0.0.1 15099 busy
	wait_listen 15099
	net_bad 'net user: fwd=tcp:15099:80: cannot listen on 127.0.0.1:15099' \
		--kernel "$K/bzImage" --net user,fwd=tcp:15099:80
}
