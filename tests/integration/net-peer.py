#!/usr/bin/env python3
"""Host side of the network tests; each mode serves one connection.

  net-peer.py sink ADDR PORT OUT      receive until EOF, write "MD5 BYTES" to OUT
  net-peer.py source ADDR PORT FILE   send FILE, then close
  net-peer.py reply ADDR PORT TEXT    send TEXT and a newline, then close
  net-peer.py fetch ADDR PORT OUT     connect once, read until EOF (60 s at
                                      most), write what came to OUT
"""
import hashlib
import socket
import sys


def listen(addr, port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, int(port)))
    s.listen(1)
    c, _ = s.accept()
    s.close()
    return c


def main():
    mode, addr, port, arg = sys.argv[1:5]
    if mode == "sink":
        c = listen(addr, port)
        h, n = hashlib.md5(), 0
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            h.update(b)
            n += len(b)
        with open(arg, "w") as f:
            f.write("%s %d\n" % (h.hexdigest(), n))
    elif mode == "source":
        c = listen(addr, port)
        with open(arg, "rb") as f:
            c.sendfile(f)
        c.close()
    elif mode == "reply":
        c = listen(addr, port)
        c.sendall(arg.encode() + b"\n")
        c.close()
    elif mode == "fetch":
        # Once: a user-mode forward accepts at once and keeps trying to
        # reach the guest for 75 s even after we give up (libslirp does
        # not poll the host side until the guest answers), so an attempt
        # abandoned early could be the one the guest's server serves.
        c = socket.create_connection((addr, int(port)), timeout=60)
        data = b""
        while True:
            b = c.recv(4096)
            if not b:
                break
            data += b
        with open(arg, "wb") as f:
            f.write(data)


main()
