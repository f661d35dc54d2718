#!/usr/bin/env python3
"""cove machine figures, beside peers run in the same session:

  create_ms     `cove m create --no-boot` from a local OCI layout (import +
                ext4 root disk), the image not yet in the store; only with
                --create-only, which bench/machine.sh runs on the host
    peer        skopeo copy to a directory + tar -x of the layers + mke2fs -d:
                the usual way to the same disk without mounting (as root,
                for the image's device nodes)
  up_ms         `cove m start` -> the image's init says it is up (--up: a
                console line), or a --ready command through `cove m run`
                returns (systemd: is-system-running --wait)
    peer        with --up, QEMU microvm on the same kernel, initrd, command
                line and a copy of the disk (virtio-blk, virtio-net user,
                balloon), to the same console line
  cold_run_ms   stopped machine: `cove m run -- echo` -> first output
  run_true_ms   running machine: `cove m run -- true`, whole command
  idle_rss_kib  the monitor's resident memory after IDLE seconds idle;
    peer        the QEMU process's, same wait
  guest_used_kib  MemTotal - MemAvailable inside the idle machine

The boot figures run as an unprivileged user in group kvm (bench/machine.sh
arranges it in the nested harness). One JSON record per run, then medians. Not a test:
nothing here asserts a time."""
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, time


def sh(cmd, env=None, **kw):
    return subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw).stdout


def timed(cmd, env=None):
    t0 = time.monotonic()
    sh(cmd, env)
    return (time.monotonic() - t0) * 1000


def wait_file(path, pattern, t0, timeout=600, proc=None):
    rx = re.compile(pattern)
    while time.monotonic() - t0 < timeout:
        if proc and proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited {proc.returncode}")
        try:
            with open(path, errors="replace") as f:
                if rx.search(f.read()):
                    return (time.monotonic() - t0) * 1000
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{path}: no /{pattern}/ within {timeout}s")


def first_output_ms(cmd, env):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    first = p.stdout.read(1)
    ms = (time.monotonic() - t0) * 1000
    p.communicate()
    if p.returncode or not first:
        raise RuntimeError(f"{cmd}: exit {p.returncode}")
    return ms


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def peer_create(layout, tag, work, size):
    """skopeo -> dir, tar -x every layer (whiteouts not applied), mke2fs -d."""
    d, root, img = f"{work}/skopeo", f"{work}/root", f"{work}/peer.img"
    for p in (d, root):
        shutil.rmtree(p, ignore_errors=True)
    os.makedirs(root)
    if os.path.exists(img):
        os.unlink(img)
    t0 = time.monotonic()
    sh(["skopeo", "copy", "-q", f"oci:{layout}:{tag}", f"dir:{d}"])
    man = json.load(open(f"{d}/manifest.json"))
    for layer in man["layers"]:
        sh(["tar", "-xf", f"{d}/{layer['digest'].split(':')[1]}", "-C", root,
            "--no-same-owner", "--delay-directory-restore"])
    sh(["mke2fs", "-q", "-F", "-t", "ext4", "-d", root, img, size])
    return (time.monotonic() - t0) * 1000


def qemu_argv(vmm_argv, disk, console):
    """QEMU microvm with what cove-vmm was given (kernel, initrd, command
    line, memory, CPUs), its disk a copy, no vsock or shares."""
    a = dict(zip(vmm_argv[1::2], vmm_argv[2::2]))
    return ["qemu-system-x86_64", "-M", "microvm,x-option-roms=off,rtc=off,isa-serial=on",
            "-accel", "kvm", "-cpu", "host", "-m", a["--memory"], "-smp", a["--cpus"],
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", f"file:{console}", "-no-reboot",
            "-kernel", a["--kernel"], "-initrd", a["--initrd"], "-append", a["--cmdline"],
            "-drive", f"file={disk},format=raw,if=none,id=d0,cache=writeback,aio=io_uring",
            "-device", "virtio-blk-device,drive=d0",
            "-netdev", "user,id=n0", "-device", "virtio-net-device,netdev=n0",
            "-device", "virtio-balloon-device"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cove", required=True, help="cove, beside cove-vmm and guest/")
    ap.add_argument("--image", required=True, help="OCI layout DIR:TAG")
    ap.add_argument("--up", help="regex of the image init's 'up' line")
    ap.add_argument("--ready", help="command in the machine that returns once it is up")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--memory", default="512M")
    ap.add_argument("--disk-size", default="2G")
    ap.add_argument("--idle", type=int, default=20)
    ap.add_argument("--peer-timeout", type=int, default=300)
    ap.add_argument("--create-only", action="store_true",
                    help="only create_ms and its peer (needs no /dev/kvm; run as root)")
    a = ap.parse_args()
    if not a.create_only and not (a.up or a.ready):
        ap.error("--up or --ready is needed to time the boot")

    work = tempfile.mkdtemp(prefix="cove-bench-machine.")
    env = dict(os.environ, XDG_DATA_HOME=f"{work}/data", XDG_CONFIG_HOME=f"{work}/config",
               XDG_RUNTIME_DIR=f"{work}/run", HOME=f"{work}/home")
    for d in ("data", "config", "run", "home"):
        os.makedirs(f"{work}/{d}", mode=0o700)
    cove = [a.cove]
    layout, tag = a.image.rsplit(":", 1)
    recs = []
    try:
        for i in range(a.runs):
            r = {"run": i, "image": os.path.basename(layout)}
            create_ms = timed(cove + ["m", "create", "-q", "--no-boot", "-n", "b",
                                      "--memory", a.memory, "--disk-size", a.disk_size,
                                      "--home-mount", "none", f"oci:{a.image}"], env)
            mdir = f"{work}/data/cove/machines/b"
            if a.create_only:
                # as root: tar cannot make the image's device nodes otherwise
                r["create_ms"] = round(create_ms)
                r["peer_create_ms"] = round(peer_create(layout, tag, work, a.disk_size))
                sh(cove + ["m", "rm", "-f", "b"], env)
                sh(cove + ["image", "rm", f"localhost/{os.path.basename(layout)}:{tag}"], env)
                print(json.dumps(r), flush=True)
                recs.append(r)
                continue
            # a pristine copy for the QEMU peer, before the first boot changes it
            sh(["cp", "--sparse=always", f"{mdir}/root.img", f"{work}/qemu.img"])

            t0 = time.monotonic()
            sh(cove + ["m", "start", "b"], env)
            if a.up:
                r["up_ms"] = round(wait_file(f"{mdir}/console.log", a.up, t0))
            else:
                sh(cove + ["m", "run", "-n", "b", "--", "sh", "-c", a.ready], env)
                r["up_ms"] = round((time.monotonic() - t0) * 1000)
            sh(cove + ["m", "stop", "b"], env)
            r["cold_run_ms"] = round(first_output_ms(cove + ["m", "run", "-n", "b", "--",
                                                            "echo", "x"], env))
            runs = [timed(cove + ["m", "run", "-n", "b", "--", "true"], env) for _ in range(10)]
            r["run_true_ms"] = round(statistics.median(runs), 1)
            time.sleep(a.idle)
            pid = int(open(f"{work}/run/cove/b/vmm.pid").read())
            vmm_argv = open(f"/proc/{pid}/cmdline").read().split("\0")[:-1]
            r["idle_rss_kib"] = rss_kib(pid)
            mem = sh(cove + ["m", "run", "-n", "b", "--", "cat", "/proc/meminfo"], env)
            kv = {k: int(v) for k, v in re.findall(r"^(\w+):\s+(\d+)", mem, re.M)}
            r["guest_used_kib"] = kv["MemTotal"] - kv["MemAvailable"]
            sh(cove + ["m", "rm", "-f", "b"], env)
            sh(cove + ["image", "rm", f"localhost/{os.path.basename(layout)}:{tag}"], env)

            if a.up:
                console = f"{work}/qemu.console"
                if os.path.exists(console):
                    os.unlink(console)
                t0 = time.monotonic()
                q = subprocess.Popen(qemu_argv(vmm_argv, f"{work}/qemu.img", console),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
                try:
                    r["peer_up_ms"] = round(wait_file(console, a.up, t0, a.peer_timeout, q))
                    time.sleep(a.idle)
                    r["peer_idle_rss_kib"] = rss_kib(q.pid)
                except RuntimeError as e:
                    # the peer's failure is a finding, not the end of the run
                    tail = open(console, errors="replace").read()[-3000:] \
                        if os.path.exists(console) else ""
                    print(f"peer: {e}; console tail:\n{tail}", file=sys.stderr, flush=True)
                finally:
                    q.kill()
                    _, err = q.communicate()
                    if q.returncode not in (0, -9):
                        print(f"peer: qemu exited {q.returncode}: {err.decode()[-2000:]}",
                              file=sys.stderr, flush=True)
            print(json.dumps(r), flush=True)
            recs.append(r)
    finally:
        subprocess.run(cove + ["m", "rm", "-f", "b"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    keys = {k for r in recs for k in r} - {"run", "image"}
    summary = {k: statistics.median(r[k] for r in recs if k in r) for k in sorted(keys)}
    summary["image"] = recs[0]["image"]
    print(json.dumps({"summary": summary}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
