# Print MemAvailable twice a second until the host stops the VM (the
# balloon test inflates and deflates meanwhile).
i=0
while :; do
	echo "MEMAVAIL_KB=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo) $i"
	i=$((i + 1))
	sleep 0.5
done
