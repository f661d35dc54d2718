# udhcpc's event script: configure what the DHCP server gave.
case "$1" in
deconfig)
	ip addr flush dev "$interface"
	ip link set "$interface" up
	;;
bound|renew)
	ip addr add "$ip/$mask" dev "$interface"
	[ -n "$router" ] && ip route add default via "${router%% *}" dev "$interface"
	echo "DHCP_IP=$ip"
	echo "DHCP_ROUTER=$router"
	echo "DHCP_DNS=$dns"
	;;
esac
exit 0
