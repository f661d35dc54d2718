#!/usr/bin/env python3
"""Network benchmark: iperf3 over a tap in a network namespace, host->guest
and guest->host, with cove-vmm and with QEMU's microvm machine
(virtio-net-device on the same tap: QEMU's own virtio-net, and vhost-net
when /dev/vhost-net can be had), alternating, same kernel and initrd, one
vCPU each. Run as root where /dev/kvm is.

One JSON record per VMM per run, then a summary with medians and ratios.
Figures (iperf3's own, on the receiving side, after a 1 s warm-up):
  host_to_guest_mbps  the host's iperf3 client sends, the guest receives
  guest_to_host_mbps  the guest sends (iperf3 -R), the host receives
  *_retransmits       TCP retransmissions the sender counted
  vmm_cpu_s           user + system CPU time of the monitor process for the
                      whole run (boot and both transfers), the guest's own
                      time on the vCPU thread included; vhost-net's kernel
                      worker is not a thread of QEMU's and is not counted
  peak_rss_kib        peak resident memory of the monitor process
Not a test: nothing here asserts a figure."""
import argparse, json, os, statistics, subprocess, sys, threading, time

NS = "cove-bench"
HOST_IP, GUEST_IP = "10.9.0.1", "10.9.0.2"
MAC = "02:00:00:00:09:02"


def sh(*cmd, check=True):
    return subprocess.run(cmd, check=check, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def netns_up():
    sh("ip", "netns", "del", NS, check=False)
    sh("ip", "netns", "add", NS)
    sh("ip", "-n", NS, "link", "set", "lo", "up")
    sh("ip", "-n", NS, "tuntap", "add", "dev", "tap0", "mode", "tap")
    sh("ip", "-n", NS, "addr", "add", HOST_IP + "/24", "dev", "tap0")
    sh("ip", "-n", NS, "link", "set", "tap0", "up")


class Console:
    """Collects a monitor's console (its stdout) and spots a line."""

    def __init__(self, pipe):
        self.buf = b""
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.t.start()

    def _read(self, pipe):
        while True:
            chunk = pipe.read1(65536)
            if not chunk:
                return
            with self.lock:
                self.buf += chunk

    def wait_for(self, marker, proc, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                if marker in self.buf:
                    return True
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        with self.lock:
            return marker in self.buf

    def tail(self, n=600):
        with self.lock:
            return self.buf[-n:].decode(errors="replace")


def iperf(seconds, reverse):
    """One iperf3 test against the guest's server; retried while the
    server is not listening yet. Returns (Mbit/s, retransmits) or raises."""
    cmd = ["ip", "netns", "exec", NS, "iperf3", "-c", GUEST_IP, "-t", str(seconds),
           "-O", "1", "-J", "--connect-timeout", "3000"]
    if reverse:
        cmd.append("-R")
    end = time.monotonic() + 60
    while True:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=seconds + 60)
        try:
            j = json.loads(p.stdout)
        except ValueError:
            j = {"error": (p.stdout + p.stderr).decode(errors="replace")[-300:]}
        if "error" not in j:
            rx = j["end"]["sum_received"]["bits_per_second"] / 1e6
            return round(rx, 1), j["end"]["sum_sent"].get("retransmits")
        if time.monotonic() > end:
            raise RuntimeError("iperf3: " + str(j["error"]))
        time.sleep(0.5)


def run(name, cmd, seconds, timeout):
    t0 = time.monotonic()
    p = subprocess.Popen(["ip", "netns", "exec", NS] + cmd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    con = Console(p.stdout)
    rec = {"vmm": name}
    try:
        if not con.wait_for(b"IPERF_READY", p, timeout):
            raise RuntimeError("the guest never got ready")
        rec["host_to_guest_mbps"], rec["host_to_guest_retransmits"] = iperf(seconds, False)
        rec["guest_to_host_mbps"], rec["guest_to_host_retransmits"] = iperf(seconds, True)
        if not con.wait_for(b"IPERF_DONE=0", p, 60):
            raise RuntimeError("the guest's iperf3 server did not finish")
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        rec["error"] = str(e)[-300:]
    # The guest powers off by itself; a monitor that hangs is killed.
    timer = threading.Timer(60, p.kill)
    timer.start()
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    con.t.join(5)
    rec.update({"status": os.waitstatus_to_exitcode(status),
                "wall_s": round(time.monotonic() - t0, 2),
                "vmm_cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
                "peak_rss_kib": ru.ru_maxrss})
    if "error" in rec or rec["status"] != 0:
        rec.setdefault("error", "exit status %d" % rec["status"])
        rec["stderr"] = p.stderr.read().decode(errors="replace").strip()[-300:]
        rec["console_tail"] = con.tail()
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10, help="each iperf3 test")
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--vmm", default="build/cove-vmm")
    ap.add_argument("--memory", default="256")
    ap.add_argument("--qemu", default="qemu-system-x86_64")
    ap.add_argument("--timeout", type=int, default=240, help="boot to ready, seconds")
    a = ap.parse_args()

    cmdline = "console=ttyS0 reboot=k panic=-1 quiet cove.script=/tests/net-bench.sh"
    cove = [os.path.abspath(a.vmm), "--kernel", a.kernel, "--initrd", a.initrd,
            "--memory", a.memory, "--cmdline", cmdline, "--net", "tap=tap0,mac=" + MAC]

    def qemu(vhost):
        return [a.qemu, "-M", "microvm,x-option-roms=off,rtc=off,isa-serial=on",
                "-accel", "kvm", "-cpu", "host", "-m", a.memory, "-smp", "1",
                "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
                "-no-reboot", "-kernel", a.kernel, "-initrd", a.initrd, "-append", cmdline,
                "-global", "virtio-mmio.force-legacy=false",
                "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=" + vhost,
                "-device", "virtio-net-device,netdev=n0,mac=" + MAC]

    vmms = [("cove-vmm", cove), ("qemu-microvm", qemu("off"))]
    if sh("modprobe", "vhost_net", check=False).returncode == 0 and \
            os.path.exists("/dev/vhost-net"):
        vmms.append(("qemu-microvm-vhost", qemu("on")))

    netns_up()
    results = {name: [] for name, _ in vmms}
    try:
        for i in range(a.runs):
            order = vmms[i % len(vmms):] + vmms[:i % len(vmms)]
            for name, cmd in order:
                rec = run(name, cmd, a.seconds, a.timeout)
                rec["run"] = i
                results[name].append(rec)
                print(json.dumps(rec), flush=True)
    finally:
        sh("ip", "netns", "del", NS, check=False)

    summary = {"runs": a.runs, "seconds": a.seconds, "kernel": os.path.basename(a.kernel),
               "memory_mib": a.memory}
    keys = ("host_to_guest_mbps", "guest_to_host_mbps", "vmm_cpu_s", "peak_rss_kib")
    for name, recs in results.items():
        ok = [r for r in recs if "error" not in r]
        s = {"ok_runs": len(ok)}
        for k in keys:
            vals = [r[k] for r in ok if r.get(k) is not None]
            if vals:
                s["median_" + k] = round(statistics.median(vals), 2)
        summary[name] = s
    c = summary["cove-vmm"]
    for name, _ in vmms[1:]:
        q = summary[name]
        for k in keys[:2]:
            m = "median_" + k
            if m in c and m in q and q[m]:
                summary["ratio_%s_vs_%s" % (k, name)] = round(c[m] / q[m], 3)
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
