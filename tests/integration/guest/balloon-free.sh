# Use 320 MiB, hold it a few seconds (the host measures), free it, then
# idle until the host stops the VM: free page reporting gives it back.
memtouch 320 5 || exit 1
i=0
while :; do
	echo "IDLE=$i"
	i=$((i + 1))
	sleep 1
done
