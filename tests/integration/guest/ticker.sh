# Print a numbered tick ten times a second until the monitor is stopped
# from outside (the control API test pauses, resumes and stops the VM).
i=0
while :; do
	echo "TICK=$i"
	i=$((i + 1))
	sleep 0.1
done
