#!/usr/bin/env python3
"""Boot benchmark: the same kernel and initrd booted N times with cove-vmm
and with QEMU's microvm machine, alternating, on the same /dev/kvm.

One JSON record per run, then a summary with medians and ratios. Figures:
  to_init_ms   process start -> the guest's first script line on the console
  boot_timer_ms  cove only: process start -> guest wrote the boot timer
  wall_ms      process start -> process exit (the guest powered off)
  peak_rss_kib peak resident memory of the monitor process
Not a test: nothing here asserts a time."""
import argparse, json, os, statistics, subprocess, sys, tempfile, threading, time

MARKER = b"hello from the guest"


def run(cmd, metrics=None, timeout=120):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    # A run that hangs is killed and recorded, not waited for.
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    to_init = None
    tail = b""
    buf = b""
    while True:
        chunk = p.stdout.read1(65536) if hasattr(p.stdout, "read1") else p.stdout.read(1)
        if not chunk:
            break
        buf += chunk
        tail = (tail + chunk)[-2000:]
        if to_init is None and MARKER in buf:
            to_init = (time.monotonic() - t0) * 1000
        buf = buf[-256:]
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    wall = (time.monotonic() - t0) * 1000
    err = p.stderr.read().decode(errors="replace")
    rec = {"wall_ms": round(wall, 2), "to_init_ms": to_init and round(to_init, 2),
           "peak_rss_kib": ru.ru_maxrss, "status": os.waitstatus_to_exitcode(status)}
    if metrics:
        try:
            m = json.load(open(metrics))
            rec["boot_timer_ms"] = m.get("boot_timer_ms")
            rec["first_kvm_run_ms"] = m.get("first_kvm_run_ms")
        except (OSError, ValueError):
            pass
    if rec["status"] != 0 or to_init is None:
        rec["error"] = err.strip()[-300:]
        rec["console_tail"] = tail.decode(errors="replace")[-600:]
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--vmm", default="build/cove-vmm")
    ap.add_argument("--memory", default="256")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    a = ap.parse_args()

    cmdline = "console=ttyS0 reboot=k panic=-1 quiet cove.script=/tests/hello.sh"
    tmp = tempfile.mkdtemp()
    metrics = os.path.join(tmp, "m.json")
    cove = [a.vmm, "--kernel", a.kernel, "--initrd", a.initrd, "--memory", a.memory,
            "--cmdline", cmdline, "--metrics", metrics]
    qemu = [a.qemu, "-M", "microvm,x-option-roms=off,rtc=off,isa-serial=on",
            "-accel", "kvm", "-cpu", "host", "-m", a.memory, "-smp", "1",
            "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
            "-no-reboot", "-kernel", a.kernel, "-initrd", a.initrd, "-append", cmdline]

    results = {"cove-vmm": [], "qemu-microvm": []}
    for i in range(a.runs):
        order = [("cove-vmm", cove), ("qemu-microvm", qemu)]
        if i % 2:
            order.reverse()
        for name, cmd in order:
            if os.path.exists(metrics):
                os.unlink(metrics)
            rec = run(cmd, metrics if name == "cove-vmm" else None)
            rec.update({"vmm": name, "run": i})
            results[name].append(rec)
            print(json.dumps(rec), flush=True)

    summary = {"runs": a.runs, "kernel": os.path.basename(a.kernel), "memory_mib": a.memory}
    for name, recs in results.items():
        ok = [r for r in recs if "error" not in r]
        s = {"ok_runs": len(ok)}
        for k in ("to_init_ms", "wall_ms", "peak_rss_kib", "boot_timer_ms"):
            vals = [r[k] for r in ok if r.get(k) is not None]
            if vals:
                s["median_" + k] = round(statistics.median(vals), 2)
        summary[name] = s
    c, q = summary["cove-vmm"], summary["qemu-microvm"]
    for k in ("median_to_init_ms", "median_wall_ms", "median_peak_rss_kib"):
        if k in c and k in q and q[k]:
            summary["ratio_" + k[len("median_"):]] = round(c[k] / q[k], 3)
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
