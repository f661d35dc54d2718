# Print the MAC of each NIC.
echo "ETH0=$(cat /sys/class/net/eth0/address)"
echo "ETH1=$(cat /sys/class/net/eth1/address)"
