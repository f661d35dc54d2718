awk '/^MemTotal:/ { print "MEMTOTAL_KB=" $2 }' /proc/meminfo
