#!/usr/bin/env python3
"""Write a small OCI image layout for the cove image tests.

mkimage.py DIR TAG KIND
  busybox        three layers (gzip, gzip, plain tar) from /bin/busybox:
                 owners, modes, a device node, a fifo, symlinks, hardlinks,
                 an xattr, whiteouts and an opaque directory
  evil-dotdot    one layer whose member is ../escape
  evil-symlink   one layer that plants a symlink to a host path and then
                 writes a file through it
  unique         one small layer whose content is random (a fresh blob)
  multi          an image index with linux/arm64 and linux/amd64 images whose
                 /arch says which
  tar FILE       one gzip layer: the uncompressed tar FILE as it is
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

MTIME = 1700000000


def entry(name, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, **kw):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.uid, ti.gid = uid, gid
    ti.mtime = MTIME
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


def layer(members):
    """members: (TarInfo, bytes or None). Returns the tar bytes (PAX)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in members:
            if data is not None:
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            else:
                t.addfile(ti)
    return buf.getvalue()


def d(name, mode=0o755, **kw):
    return (entry(name, tarfile.DIRTYPE, mode, **kw), None)


def f(name, data, mode=0o644, **kw):
    return (entry(name, tarfile.REGTYPE, mode, **kw), data)


def sym(name, target):
    return (entry(name, tarfile.SYMTYPE, 0o777, linkname=target), None)


def hard(name, target):
    return (entry(name, tarfile.LNKTYPE, 0o644, linkname=target), None)


def busybox_layers():
    bb = open("/bin/busybox", "rb").read()
    xattr = entry("etc/motd", tarfile.REGTYPE, 0o644)
    xattr.pax_headers = {"SCHILY.xattr.user.cove": "hello"}
    l1 = layer([
        d("./"), d("bin"), d("sbin"), d("etc"), d("usr"), d("usr/bin"),
        d("tmp", 0o1777), d("dev"), d("home"), d("home/user", 0o750, uid=1000, gid=1000),
        f("bin/busybox", bb, 0o755),
        sym("bin/sh", "busybox"), sym("sbin/init", "../bin/busybox"),
        hard("usr/bin/busybox-hard", "bin/busybox"),
        f("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"),
        f("etc/group", b"root:x:0:\nuser:x:1000:\n"),
        f("etc/removed.txt", b"whited out in layer 2\n"),
        f("home/user/file", b"secret\n", 0o640, uid=1000, gid=1000),
        (entry("dev/null", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=3), None),
        (entry("dev/sda", tarfile.BLKTYPE, 0o660, gid=6, devmajor=8, devminor=0), None),
        (entry("dev/initctl", tarfile.FIFOTYPE, 0o600), None),
        d("opq"), f("opq/a", b"a\n"), f("opq/b", b"b\n"),
        d("gone"), f("gone/x", b"x\n"),
        f("usr/bin/setuid", b"#!/bin/sh\n", 0o4755),
    ])
    l2 = layer([
        f("etc/.wh.removed.txt", b""),
        f(".wh.gone", b""),
        f("opq/.wh..wh..opq", b""),
        f("opq/c", b"c\n"),
        (xattr, b"welcome to cove\n"),
        hard("etc/passwd-link", "etc/passwd"),
        f("bin/ls-replaced", b"not a link\n", 0o755),
    ])
    sparse = b"\0" * (1 << 20) + b"end\n"
    l3 = layer([f("/abs/file", b"absolute paths land inside\n"), f("big-sparse", sparse)])
    return [(l1, "gzip"), (l2, "gzip"), (l3, "tar")]


def main():
    out, tag, kind = sys.argv[1:4]
    if kind == "busybox":
        layers = busybox_layers()
    elif kind == "evil-dotdot":
        layers = [(layer([d("etc"), f("../escape", b"pwned\n")]), "gzip")]
    elif kind == "evil-symlink":
        target = sys.argv[4]
        layers = [(layer([d("etc"), sym("etc/link", target), f("etc/link/pwned", b"pwned\n")]),
                   "gzip")]
    elif kind == "tar":
        with open(sys.argv[4], "rb") as fp:
            layers = [(fp.read(), "gzip")]
    elif kind == "unique":
        layers = [(layer([f("random", os.urandom(4096))]), "gzip")]
    elif kind != "multi":
        sys.exit("unknown kind " + kind)

    blobs = os.path.join(out, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(data):
        h = hashlib.sha256(data).hexdigest()
        with open(os.path.join(blobs, h), "wb") as fp:
            fp.write(data)
        return "sha256:" + h, len(data)

    if kind == "multi":
        entries = []
        for arch in ("arm64", "amd64"):
            mdg, msize = image(put, [(layer([f("arch", arch.encode() + b"\n")]), "gzip")], arch)
            entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                            "digest": mdg, "size": msize,
                            "platform": {"architecture": arch, "os": "linux"}})
        idx = json.dumps({"schemaVersion": 2,
                          "mediaType": "application/vnd.oci.image.index.v1+json",
                          "manifests": entries}).encode()
        mdg, msize = put(idx)
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": mdg,
               "size": msize}
    else:
        mdg, msize = image(put, layers, "amd64")
        top = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdg,
               "size": msize, "platform": {"architecture": "amd64", "os": "linux"}}
    index_path = os.path.join(out, "index.json")
    index = {"schemaVersion": 2, "manifests": []}
    if os.path.exists(index_path):
        index = json.load(open(index_path))
    top["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index["manifests"].append(top)
    with open(index_path, "w") as fp:
        json.dump(index, fp)
    with open(os.path.join(out, "oci-layout"), "w") as fp:
        json.dump({"imageLayoutVersion": "1.0.0"}, fp)
    print(mdg)


def image(put, layers, arch):
    """Store layers, config and manifest; returns the manifest's digest and size."""
    descs, diff_ids = [], []
    for raw, comp in layers:
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        data = gzip.compress(raw, mtime=0) if comp == "gzip" else raw
        dg, size = put(data)
        mt = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if comp == "gzip" else "")
        descs.append({"mediaType": mt, "digest": dg, "size": size})
    config = json.dumps({
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    cdg, csize = put(config)
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": cdg, "size": csize},
        "layers": descs,
    }).encode()
    return put(manifest)


main()
