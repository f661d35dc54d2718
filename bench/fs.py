#!/usr/bin/env python3
"""File system benchmark: the same kernel, initrd and workload (guest tool
fsbench: create/stat/unlink of many files, sequential and random reads and
writes of one file) on

  cove-virtiofs        cove-vmm --fs (cache=auto, the default)
  cove-virtiofs-always cove-vmm --fs ...,cache=always (writeback cache)
  qemu-9p              QEMU -M microvm, -fsdev local + virtio-9p-device
                       (QEMU's -virtfs), mounted 9p2000.L, msize 512 KiB,
                       cache=loose (page cache on, like cove's auto)
  qemu-blk-ext4        QEMU -M microvm, ext4 on virtio-blk-device
  cove-blk-ext4        cove-vmm, ext4 on its virtio-blk

in rounds, peers alternating, on the same /dev/kvm. The shared-directory
peers serve an empty host directory; the block peers get an ext4 image
made anew (mkfs.ext4, no lazy init) per run: a local file system in the
guest, a reference for what a share costs, and cove's virtio-blk beside
QEMU's separates the monitor from the protocol.

One JSON record per run: per phase ms, and ops_per_s (create, stat,
unlink, rand_*) or mib_per_s (seq_*); then a summary with medians and the
ratio of each peer's median time to cove-virtiofs's. Not a test: nothing
here asserts a time."""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, threading

PHASES = ("create", "stat", "unlink", "seq_write", "seq_read", "rand_read", "rand_write")
LINE = re.compile(rb"^FSBENCH phase=(\w+) ms=([0-9.]+) ops=(\d+) bytes=(\d+)", re.M)


def run(cmd, timeout):
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    # A run that hangs is killed and recorded, not waited for.
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    out, err = p.communicate()
    timer.cancel()
    rec = {"status": p.returncode}
    for name, ms, ops, nbytes in LINE.findall(out):
        name, ms, ops, nbytes = name.decode(), float(ms), int(ops), int(nbytes)
        rec[name + "_ms"] = ms
        if name.startswith("seq_"):
            rec[name + "_mib_per_s"] = round(nbytes / 1048576 / (ms / 1000), 2) if ms else None
        else:
            rec[name + "_ops_per_s"] = round(ops / (ms / 1000), 1) if ms else None
    if p.returncode != 0 or b"FSBENCH done" not in out:
        rec["error"] = err.decode(errors="replace").strip()[-300:]
        rec["console_tail"] = out.decode(errors="replace")[-600:]
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--vmm", default="build/cove-vmm")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--memory", default="512")
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--size-mib", type=int, default=64)
    ap.add_argument("--rand-ops", type=int, default=2000)
    ap.add_argument("--disk-mib", type=int, default=1024)
    ap.add_argument("--timeout", type=int, default=900, help="seconds per run")
    ap.add_argument("--workdir", default=None, help="where shares and images go")
    a = ap.parse_args()

    work = tempfile.mkdtemp(prefix="cove-fsbench-", dir=a.workdir)
    share, img = os.path.join(work, "share"), os.path.join(work, "disk.img")
    args = "fsbench_args=%d,%d,%d" % (a.files, a.size_mib, a.rand_ops)
    base = "console=ttyS0 reboot=k panic=-1 quiet cove.script=/tests/fs-bench.sh " + args

    def cove(extra, fs):
        return [a.vmm, "--kernel", a.kernel, "--initrd", a.initrd, "--memory", a.memory,
                "--cmdline", base + " fsbench_fs=" + fs] + extra

    def qemu(extra, fs):
        return [a.qemu, "-M", "microvm,x-option-roms=off,rtc=off,isa-serial=on",
                "-accel", "kvm", "-cpu", "host", "-m", a.memory, "-smp", "1",
                "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                "-no-reboot", "-kernel", a.kernel, "-initrd", a.initrd,
                "-append", base + " fsbench_fs=" + fs] + extra

    peers = [
        ("cove-virtiofs", "share", cove(["--fs", "share=" + share], "virtiofs")),
        ("cove-virtiofs-always", "share",
         cove(["--fs", "share=%s,cache=always" % share], "virtiofs")),
        ("qemu-9p", "share",
         qemu(["-fsdev", "local,id=fs0,path=%s,security_model=none" % share,
               "-device", "virtio-9p-device,fsdev=fs0,mount_tag=share"], "9p")),
        ("qemu-blk-ext4", "disk",
         qemu(["-drive", "id=d0,file=%s,format=raw,if=none" % img,
               "-device", "virtio-blk-device,drive=d0"], "blk")),
        ("cove-blk-ext4", "disk", cove(["--disk", img], "blk")),
    ]

    results = {name: [] for name, _, _ in peers}
    for i in range(a.runs):
        order = peers[i % len(peers):] + peers[:i % len(peers)]
        for name, kind, cmd in order:
            shutil.rmtree(share, ignore_errors=True)
            if os.path.exists(img):
                os.unlink(img)
            if kind == "share":
                os.mkdir(share)
            else:
                subprocess.run(["truncate", "-s", "%dM" % a.disk_mib, img], check=True)
                subprocess.run(["mkfs.ext4", "-q", "-F", "-E",
                                "lazy_itable_init=0,lazy_journal_init=0", img], check=True)
            rec = run(cmd, a.timeout)
            rec.update({"vmm": name, "run": i})
            results[name].append(rec)
            print(json.dumps(rec), flush=True)
    shutil.rmtree(work, ignore_errors=True)

    summary = {"runs": a.runs, "kernel": os.path.basename(a.kernel), "memory_mib": a.memory,
               "files": a.files, "size_mib": a.size_mib, "rand_ops": a.rand_ops}
    for name, recs in results.items():
        ok = [r for r in recs if "error" not in r]
        s = {"ok_runs": len(ok)}
        for k in sorted({k for r in ok for k in r if k.endswith(("_ms", "_per_s"))}):
            vals = [r[k] for r in ok if r.get(k) is not None]
            if vals:
                s["median_" + k] = round(statistics.median(vals), 2)
        summary[name] = s
    ref = summary["cove-virtiofs"]
    for name in results:
        if name == "cove-virtiofs":
            continue
        s = summary[name]
        s["time_vs_cove_virtiofs"] = {
            p: round(s["median_%s_ms" % p] / ref["median_%s_ms" % p], 3)
            for p in PHASES
            if s.get("median_%s_ms" % p) and ref.get("median_%s_ms" % p)}
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
