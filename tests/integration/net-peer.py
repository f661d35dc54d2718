#!/usr/bin/env python3
"""Host side of the network tests; each mode serves one connection.

  net-peer.py sink ADDR PORT OUT      receive until EOF, write "MD5 BYTES" to OUT
  net-peer.py source ADDR PORT FILE   send FILE, then close
  net-peer.py reply ADDR PORT TEXT    send TEXT and a newline, then close
  net-peer.py fetch ADDR PORT OUT     connect (retrying up to 120 s) until a
                                      non-empty reply comes; write it to OUT
"""
import hashlib
import socket
import sys
import time


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
        end = time.time() + 120
        while time.time() < end:
            try:
                c = socket.create_connection((addr, int(port)), timeout=5)
                data = c.recv(4096)
                c.close()
                if data:
                    with open(arg, "wb") as f:
                        f.write(data)
                    return
            except OSError:
                pass
            time.sleep(0.5)
        sys.exit("fetch: no reply from %s:%s" % (addr, port))


main()
