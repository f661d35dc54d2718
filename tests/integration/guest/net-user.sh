# virtio-net on user-mode networking: DHCP, a TCP server on the host's
# loopback (reached as 10.0.2.2:15001, it replies hello-from-host), and a
# server on guest port 8080 that the host reaches through its forward.
ip link set lo up
ip link set eth0 up
udhcpc -i eth0 -n -q -f -t 10 -T 2 -s /tests/udhcpc.sh 2>/dev/null || echo DHCP=failed
echo "HOST_TCP=$(nc -w 30 10.0.2.2 15001)"
echo fwd-ok | timeout 60 nc -l -p 8080 && echo FWD=served
