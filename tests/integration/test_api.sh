# The control API (--api): a running guest is queried, paused, resumed and
# stopped over the socket.

test_api_control() {
	local dir sock pid
	# Not in $T: that may be on 9p (the nested harness), which has no
	# sockets; and a socket path must fit in 107 bytes.
	dir=$(mktemp -d /tmp/cove-api.XXXXXX)
	sock=$dir/api.sock
	rm -f "$T/metrics.json"
	# A stale socket, left by a monitor that died, is replaced.
	python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$sock"
	rc=0
	timeout -k 5 "$BOOT_TIMEOUT" "$VMM" --kernel "$K/bzImage" --initrd "$G/test.cpio" --cpus 2 \
		--cmdline "$BASE_CMDLINE cove.script=/tests/ticker.sh" --api "$sock" \
		--metrics "$T/metrics.json" >"$T/console" 2>"$T/stderr" </dev/null &
	pid=$!
	if ! python3 - "$sock" "$T/console" "$VMM" "$K/bzImage" "$G/test.cpio" "$BOOT_TIMEOUT" <<'PY'; then
import json, os, re, socket, stat, subprocess, sys, time

sock, console, vmm, kernel, initrd, boot_timeout = sys.argv[1:7]

def wait_for(what, pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return
        time.sleep(0.05)
    sys.exit("timed out waiting for " + what)

class Client:
    def __init__(self):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(60)
        self.s.connect(sock)
        self.f = self.s.makefile("rwb")

    def raw(self, line):
        self.f.write(line + b"\n")
        self.f.flush()
        reply = self.f.readline()
        if not reply.endswith(b"\n"):
            sys.exit("no reply to %r" % line)
        return json.loads(reply)

    def call(self, op, **kw):
        return self.raw(json.dumps(dict(op=op, **kw)).encode())

def ticks():
    with open(console, "rb") as f:
        t = re.findall(rb"^TICK=(\d+)", f.read(), re.M)
    return int(t[-1]) if t else -1

def check(cond, what):
    if not cond:
        sys.exit(what)

def can_connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock)
        return True
    except OSError:
        return False
    finally:
        s.close()

# The stale socket refuses; the monitor's accepts once the VM is created.
wait_for("the monitor to listen on " + sock, can_connect, 120)
check(stat.S_IMODE(os.lstat(sock).st_mode) == 0o600, "socket mode %o" % os.lstat(sock).st_mode)
c = Client()
st = c.call("status", id=1)
check(st["ok"] and st["id"] == 1 and st["state"] == "running" and st["cpus"] == 2
      and st["memory_mib"] == 256, "status: %s" % st)
wait_for("the guest to tick", lambda: ticks() >= 3, int(boot_timeout))
st = c.call("status")
check(st["boot_timer_ms"] and st["boot_timer_ms"] > 0 and st["uptime_ms"] > 0, "status: %s" % st)

r = c.call("pause", id="p")
check(r == {"ok": True, "id": "p"}, "pause: %s" % r)
check(c.call("status")["state"] == "paused", "not paused")
check(c.call("pause") == {"ok": True}, "second pause")
time.sleep(0.5)
t0 = ticks()
time.sleep(2)
t1 = ticks()
check(t0 == t1, "the guest ran while paused: TICK %d -> %d" % (t0, t1))

check(c.call("resume") == {"ok": True}, "resume")
wait_for("ticks after resume", lambda: ticks() > t1, 60)
check(c.call("status")["state"] == "running", "not running after resume")
print("    paused at TICK=%d for 2.5 s, ticking again after resume" % t1)
for i in range(20):
    check(c.call("pause", id=i) == {"ok": True, "id": i}, "pause %d" % i)
    check(c.call("resume", id=i) == {"ok": True, "id": i}, "resume %d" % i)
t2 = ticks()
wait_for("ticks after 20 pauses", lambda: ticks() > t2, 60)

m = c.call("metrics")
check(m["ok"] and m["metrics"]["exit_reason"] == "running" and m["metrics"]["cpus"] == 2
      and m["metrics"]["exits"].get("io", 0) > 0, "metrics: %s" % m)
r = c.call("reboot")
check(not r["ok"] and "unknown op" in r["error"], "unknown op: %s" % r)
r = c.raw(b"not json")
check(not r["ok"], "not json: %s" % r)
r = c.raw(b'{"op":"status","op":"stop"}')
check(not r["ok"] and "duplicate key" in r["error"], "duplicate: %s" % r)

# A second monitor on the same socket is refused; the first goes on.
p = subprocess.run([vmm, "--kernel", kernel, "--initrd", initrd, "--console", "none",
                    "--api", sock], capture_output=True, text=True, timeout=120)
check(p.returncode == 1 and "Address already in use (is another cove-vmm running?)" in p.stderr,
      "second monitor: status %d, %s" % (p.returncode, p.stderr))
c2 = Client()
check(c2.call("status")["state"] == "running", "first monitor after the second")

# Stop while paused ends the VM.
check(c.call("pause") == {"ok": True}, "pause before stop")
r = c.call("stop", id=42)
check(r == {"ok": True, "id": 42}, "stop: %s" % r)
check(c.f.readline() == b"", "the connection stays open after stop")
PY
		kill "$pid" 2>/dev/null
		wait "$pid"
		rm -rf "$dir"
		fail "api session failed; stderr: $(cat "$T/stderr"); console tail: $(tail -3 "$T/console" | tr '\r' ' ')"
		return 1
	fi
	wait "$pid" || rc=$?
	[ ! -e "$sock" ] || { rm -rf "$dir"; fail "$sock is left behind"; }
	rm -rf "$dir"
	expect_rc 0
	stderr_has '^cove-vmm: stopped$'
	grep -q '"exit_reason":"stopped"' "$T/metrics.json" || fail "metrics: $(cat "$T/metrics.json")"
}
