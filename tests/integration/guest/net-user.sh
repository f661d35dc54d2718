# virtio-net on user-mode networking: DHCP, a TCP server on the host's
# loopback (reached as 10.0.2.2:15001, it replies hello-from-host), and a
# server on guest port 8080 that the host reaches through its forward.
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -f -t 10 -T 2 -s /tests/udhcpc.sh 2>/dev/null || echo DHCP=failed
echo "HOST_TCP=$(nc -w 30 10.0.2.2 15001)"
echo fwd-ok | timeout 90 nc -l -p 8080 &
# The host connects once we say we listen (0x1F90 = 8080, state 0A = LISTEN).
i=0
while [ $i -lt 100 ] && ! grep -q ':1F90 00000000:0000 0A' /proc/net/tcp; do
	sleep 0.1
	i=$((i + 1))
done
echo FWD=listening
wait $! && echo FWD=served
