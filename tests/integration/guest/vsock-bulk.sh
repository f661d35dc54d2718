# 100 MiB to the host sink on PATH_5100 through one vsock connection; the
# checksum of what was sent is compared with the host's.
vsock-test send 2 5100 104857600
