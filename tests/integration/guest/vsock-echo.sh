# vsock both ways: 50 concurrent echo connections to the host (its server
# listens on PATH_5000), a connect to a host port nobody listens on, then an
# echo server on guest port 6000 for 50 host connections.
vsock-test client 2 5000 50 65536 || exit 1
vsock-test connect 2 5999
vsock-test server 6000 50
