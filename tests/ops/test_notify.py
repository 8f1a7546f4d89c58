#!/usr/bin/python3
"""systemd notifications (Type=notify): the test binds the NOTIFY_SOCKET datagram socket itself,
as systemd does, and starts vigil with NOTIFY_SOCKET (and WATCHDOG_USEC) in its environment.

- READY=1 arrives once, and only when the listener accepts connections; with STATUS=.
- STATUS= follows the number of connected clients (0, then 1 while a client is connected).
- WATCHDOG_USEC=400000: WATCHDOG=1 about every 200 ms (half of it), from the broker's loop.
- SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 again.
- SIGTERM: STOPPING=1, then the process exits 0.
- Without WATCHDOG_USEC, or with a WATCHDOG_PID that is not vigil's, no WATCHDOG=1 is sent.
"""
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check  # noqa: E402


class NotifySocket:
    def __init__(self, d):
        self.path = os.path.join(d, "notify.sock")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        # vigil drops to its `user` (default mosquitto) when started as root, as systemd's own
        # /run/systemd/notify is writable by every user
        os.chmod(d, 0o755)
        os.chmod(self.path, 0o777)
        self.msgs = []  # (monotonic time, {key: value})

    def pump(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.s.settimeout(left)
            try:
                data = self.s.recv(4096)
            except socket.timeout:
                return
            kv = {}
            for line in data.decode().split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    kv[k] = v
            self.msgs.append((time.monotonic(), kv))

    def wait(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, kv in self.msgs:
                if pred(kv):
                    return kv
            self.pump(min(0.05, max(0.001, deadline - time.monotonic())))
        for t, kv in self.msgs:
            if pred(kv):
                return kv
        return None

    def close(self):
        self.s.close()


def test_lifecycle():
    print("READY, STATUS, WATCHDOG, RELOADING, STOPPING:")
    d = o.tmpdir("notify")
    ns = NotifySocket(d)
    port = o.free_port()
    conf = "listener %d 127.0.0.1\nallow_anonymous true\n" % port
    p = o.Proc(o.VIGIL, d, conf, port, env={"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"}, wait=False)
    ready = ns.wait(lambda kv: kv.get("READY") == "1", 10)
    listening_at_ready = o.listening(port)
    check(ready is not None, "READY=1 received")
    check(listening_at_ready, "the listener was open when READY=1 arrived")
    check(ready is not None and ready.get("STATUS") == "0 clients connected",
          "READY=1 carries STATUS=0 clients connected (%r)" % (ready or {}).get("STATUS"))
    c = o.Client(port)
    check(c.connect("notify-1") == 0, "a client connects")
    st = ns.wait(lambda kv: kv.get("STATUS") == "1 client connected", 2)
    check(st is not None, "STATUS=1 client connected follows within 2 s")
    c.close()
    st = ns.wait(lambda kv: kv.get("STATUS") == "0 clients connected" and "READY" not in kv, 2)
    check(st is not None, "STATUS=0 clients connected after it left")
    n0 = len(ns.msgs)
    t0 = time.monotonic()
    ns.pump(1.0)
    pings = [t for t, kv in ns.msgs[n0:] if kv.get("WATCHDOG") == "1"]
    check(3 <= len(pings) <= 7, "WATCHDOG=1 about every 200 ms with WATCHDOG_USEC=400000: %d in 1 s" % len(pings))
    gaps = [b - a for a, b in zip([t0] + pings, pings)]
    check(gaps and max(gaps) < 0.4, "no gap between pings reaches WATCHDOG_USEC (max %.3f s)"
          % (max(gaps) if gaps else -1))
    n1 = len(ns.msgs)
    p.signal(signal.SIGHUP)
    rel = ns.wait(lambda kv: kv.get("RELOADING") == "1", 3)
    check(rel is not None and rel.get("MONOTONIC_USEC", "").isdigit(), "SIGHUP: RELOADING=1 with MONOTONIC_USEC")
    after = [kv for t, kv in ns.msgs[n1:]]
    idx = next((i for i, kv in enumerate(after) if kv.get("RELOADING") == "1"), None)
    again = None
    if idx is not None:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and again is None:
            after = [kv for t, kv in ns.msgs[n1:]]
            again = next((kv for kv in after[idx + 1:] if kv.get("READY") == "1"), None)
            if again is None:
                ns.pump(0.05)
    check(again is not None, "then READY=1 again after the reload")
    n2 = len(ns.msgs)
    p.signal(signal.SIGTERM)
    stop = ns.wait(lambda kv: kv.get("STOPPING") == "1", 3)
    check(stop is not None, "SIGTERM: STOPPING=1")
    ok = p.stop()
    ns.pump(0.1)
    late = [kv for t, kv in ns.msgs[n2:]]
    si = next((i for i, kv in enumerate(late) if kv.get("STOPPING") == "1"), len(late))
    check(not any(kv.get("WATCHDOG") == "1" or kv.get("READY") == "1" for kv in late[si + 1:]),
          "nothing but STOPPING=1 after the stop began")
    readies = [kv for t, kv in ns.msgs if kv.get("READY") == "1"]
    check(len(readies) == 2, "READY=1 twice in all: start and after the reload (%d)" % len(readies))
    ns.close()
    if ok:
        o.rm(d)


def test_no_watchdog(env, what):
    print("no WATCHDOG=1 %s:" % what)
    d = o.tmpdir("notify-nowd")
    ns = NotifySocket(d)
    port = o.free_port()
    conf = "listener %d 127.0.0.1\nallow_anonymous true\n" % port
    e = {"NOTIFY_SOCKET": ns.path}
    e.update(env)
    p = o.Proc(o.VIGIL, d, conf, port, env=e, wait=False)
    check(ns.wait(lambda kv: kv.get("READY") == "1", 10) is not None, "READY=1 received")
    ns.pump(0.7)
    check(not any(kv.get("WATCHDOG") for t, kv in ns.msgs), "no WATCHDOG=1 in 0.7 s")
    ok = p.stop()
    ns.close()
    if ok:
        o.rm(d)


if __name__ == "__main__":
    test_lifecycle()
    test_no_watchdog({}, "without WATCHDOG_USEC")
    test_no_watchdog({"WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}, "when WATCHDOG_PID is another process")
    o.finish("tests/ops/test_notify.py")
