# virtio-balloon: free page reporting gives memory the guest freed back to
# the host; inflating through the control API takes memory from the guest.

# balloon_case SCRIPT_NAME PYTHON: boot a 512 MiB guest with a balloon and
# the API, run the python check (argv: socket, console, monitor pid), stop.
balloon_case() {
	local script=$1 py=$2 dir r
	dir=$(mktemp -d /tmp/cove-balloon.XXXXXX)	# sockets cannot live on 9p
	vmm_bg --kernel "$K/bzImage" --initrd "$G/test.cpio" --memory 512 --balloon \
		--api "$dir/api.sock" --cmdline "$BASE_CMDLINE cove.script=/tests/$script.sh"
	r=0
	python3 - "$dir/api.sock" "$T/console" "$vmm_pid" "$BOOT_TIMEOUT" <<<"$BALLOON_PY_LIB$py" || r=$?
	api_call "$dir/api.sock" '{"op":"stop"}' >/dev/null 2>&1 || true	# ended already?
	vmm_wait
	rm -rf "$dir"
	[ $r -eq 0 ] || fail "stderr: $(cat "$T/stderr"); console tail: $(tail -8 "$T/console" | tr '\r\n' '  ')"
}

BALLOON_PY_LIB='
import json, re, socket, sys, time
sock, console, pid, boot_timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
MiB = 1 << 20

def call(req):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(60)
    s.connect(sock)
    s.sendall(json.dumps(req).encode() + b"\n")
    r = json.loads(s.makefile("rb").readline())
    s.close()
    return r

def wait_for(what, pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.25)
    sys.exit("timed out (%d s) waiting for %s" % (timeout, what))

def console_values(key):
    with open(console, "rb") as f:
        return re.findall(rb"^" + key.encode() + rb"=(\d+)", f.read(), re.M)

def rss():
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024

def stats():
    r = call({"op": "balloon_stats"})
    if not r["ok"]:
        sys.exit("balloon_stats: %s" % r)
    return r
'

test_balloon_free_page_reporting() {
	# Touching 320 MiB page by page is slow under nested TCG: a longer deadline.
	local BOOT_TIMEOUT=600
	balloon_case balloon-free '
wait_for("the guest to touch 320 MiB", lambda: b"MEMTOUCH=touched" in open(console, "rb").read(),
         boot_timeout)
high = rss()
rep0 = stats()["reported_bytes"]
wait_for("the guest to free it", lambda: b"MEMTOUCH=freed" in open(console, "rb").read(), 120)
t0 = time.time()
# Most of the 320 MiB comes back: free page reporting, then MADV_DONTNEED.
wait_for("RSS to fall by 200 MiB from %d MiB (now %d MiB)" % (high // MiB, rss() // MiB),
         lambda: rss() <= high - 200 * MiB, 60)
low = rss()
rep = stats()["reported_bytes"] - rep0
print("    RSS %d MiB with 320 MiB touched, %d MiB %.1f s after the guest freed it; "
      "%d MiB reported" % (high // MiB, low // MiB, time.time() - t0, rep // MiB))
if rep < 200 * MiB:
    sys.exit("only %d MiB reported" % (rep // MiB))
'
}

test_balloon_inflate_deflate() {
	balloon_case balloon-meminfo '
def avail():
    v = console_values("MEMAVAIL_KB")
    return int(v[-1]) * 1024 if v else None

def avail_after(n):
    # a MemAvailable line printed after the n-th one
    return wait_for("a new MemAvailable line", lambda: len(console_values("MEMAVAIL_KB")) > n + 1
                    and avail(), 120)

wait_for("the guest to print MemAvailable", lambda: len(console_values("MEMAVAIL_KB")) >= 3, boot_timeout)
base = avail()
st = stats()
assert st["target_bytes"] == 0 and st["actual_bytes"] == 0, st
# The guest answers a stats request with fresh statistics.
wait_for("guest statistics", lambda: stats()["guest"]["total_bytes"], 60)
g = stats()["guest"]
if not (256 * MiB < g["total_bytes"] <= 512 * MiB and g["free_bytes"] and g["available_bytes"]):
    sys.exit("guest statistics: %s" % g)

r = call({"op": "balloon", "target_mib": 100000})
if r["ok"] or "exceeds" not in r["error"]:
    sys.exit("a target beyond guest memory: %s" % r)
r = call({"op": "balloon", "target_mib": 200, "id": 1})
if r != {"ok": True, "id": 1}:
    sys.exit("balloon: %s" % r)
t0 = time.time()
wait_for("the balloon to reach 200 MiB (%s)" % stats(), lambda: stats()["actual_bytes"] == 200 * MiB, 120)
t1 = time.time()
st = stats()
if st["inflated_bytes"] < 200 * MiB or st["bad_input"]:
    sys.exit("after inflating: %s" % st)
n = len(console_values("MEMAVAIL_KB"))
small = avail_after(n)
print("    MemAvailable %d MiB, %d MiB with 200 MiB in the balloon (inflated in %.1f s)"
      % (base // MiB, small // MiB, t1 - t0))
if small > base - 150 * MiB:
    sys.exit("MemAvailable only fell from %d to %d MiB" % (base // MiB, small // MiB))

r = call({"op": "balloon", "target_mib": 0})
if not r["ok"]:
    sys.exit("balloon 0: %s" % r)
wait_for("the balloon to empty", lambda: stats()["actual_bytes"] == 0, 120)
# The guest gets its memory back over a few of its prints, not at once.
wait_for("MemAvailable near %d MiB again" % (base // MiB),
         lambda: avail() >= base - 50 * MiB, 120)
'
}

test_balloon_absent() {
	local dir r
	dir=$(mktemp -d /tmp/cove-balloon.XXXXXX)
	vmm_bg --kernel "$K/bzImage" --initrd "$G/test.cpio" --api "$dir/api.sock" \
		--cmdline "$BASE_CMDLINE cove.script=/tests/sleep-long.sh"
	wait_console '^SLEEPING' || { vmm_kill; return 1; }
	r=$(api_call "$dir/api.sock" '{"op":"balloon","target_mib":10}') || true
	api_call "$dir/api.sock" '{"op":"stop"}' >/dev/null || true
	vmm_wait
	rm -rf "$dir"
	[ "$r" = '{"ok":false,"error":"balloon: no balloon device (start cove-vmm with --balloon)"}' ] ||
		fail "balloon without --balloon: $r"
}
