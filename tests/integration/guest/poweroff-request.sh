# busybox poweroff without -f asks PID 1 (SIGUSR2), as a person types it.
poweroff
sleep 60
