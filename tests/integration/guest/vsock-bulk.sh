# 100 MiB to the host sink on PATH_5100 through one vsock connection; the
# checksum of what was sent is compared with the host's.
t0=$(cut -d' ' -f1 /proc/uptime)
vsock-test send 2 5100 104857600
t1=$(cut -d' ' -f1 /proc/uptime)
echo "VSOCK_BULK_SECONDS=$(awk "BEGIN { print $t1 - $t0 }")"
