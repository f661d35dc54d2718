# The guest side of bench/net.py: eth0 is 10.9.0.2 (the host 10.9.0.1 on a
# tap), then iperf3 serves the host's two tests, one each (host->guest,
# then guest->host with -R), and the guest powers off.
ip link set lo up
ip link set eth0 up
ip addr add 10.9.0.2/24 dev eth0
echo "IPERF_VERSION=$(iperf3 --version 2>&1 | head -1 | tr ' ' _)"
echo IPERF_READY
iperf3 -s -1 >/dev/null && iperf3 -s -1 >/dev/null
echo "IPERF_DONE=$?"
