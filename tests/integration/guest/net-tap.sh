# virtio-net on a tap: the host is 10.9.0.1, we are 10.9.0.2. Ping both
# ways, then cove.net_mib MiB up and down over TCP (the host's net-peer.py
# sink on 5001 and source on 5002); the host compares the checksums.
ip link set lo up
ip link set eth0 up
ip addr add 10.9.0.2/24 dev eth0
cat /sys/class/net/eth0/address | sed 's/^/MAC=/'
t() { echo "at $(cut -d' ' -f1 /proc/uptime)s: $*"; }
ping -c 3 -W 5 10.9.0.1 >/dev/null && echo GUEST_PING=ok
t pinged

# cove.net_mib=N MiB (default 100): a 4 MiB random block N/4 times,
# streamed (not kept in memory)
mib=$(sed -n 's/.*cove\.net_mib=\([0-9]*\).*/\1/p' /proc/cmdline)
dd if=/dev/urandom of=/tmp/blk bs=1M count=4 2>/dev/null
send() { i=0; while [ $i -lt $((${mib:-100} / 4)) ]; do cat /tmp/blk; i=$((i + 1)); done; }
mkfifo /tmp/sum
md5sum </tmp/sum >/tmp/up.md5 &
send | tee /tmp/sum | nc -w 30 10.9.0.1 5001 && echo UP=sent
wait
echo "UP_MD5=$(cut -d' ' -f1 /tmp/up.md5)"
t sent
echo "DOWN=$(nc -w 30 10.9.0.1 5002 | md5sum | cut -d' ' -f1)"
t received

# The host pings us: wait until an echo request arrived.
i=0
while [ $i -lt 120 ]; do
	n=$(awk '/^Icmp:/ { if (!h) { for (k = 1; k <= NF; k++) if ($k == "InEchos") c = k; h = 1 } else print $c }' /proc/net/snmp)
	[ "${n:-0}" -gt 0 ] && { echo HOST_PING=seen; break; }
	sleep 0.5
	i=$((i + 1))
done
