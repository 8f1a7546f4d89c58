#!/usr/bin/python3
"""SIGUSR2 and SIGUSR1 on vigil (what tests/broker/15_config.py cannot check on both brokers).

mosquitto 2.0.11 prints its subscription tree on stdout on SIGUSR2; vigil prints one line per
subscription, "client_id filter qos", on stdout and logs the totals; SIGUSR1 publishes $SYS at
once (mosquitto: saves its persistence file). Neither ends the broker (SIGUSR2's default action
would). Checked: the stdout lines for plain, shared and offline (persistent) subscriptions, the
log line's counts (sys_interval 0: no $SYS retained messages), and a clean SIGTERM exit afterwards (sanitizer reports included).
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check, m  # noqa: E402


def subscribe(c, topics):
    c.send(m.subscribe(1, topics))
    p = c.recv_packet()
    return p is not None and p[0] == 0x90


def main():
    d = o.tmpdir("signals")
    port = o.free_port()
    b = o.Proc(o.VIGIL, d, "listener %d 127.0.0.1\nallow_anonymous true\nsys_interval 0\nlog_dest stderr\n" % port,
               port)
    a = o.Client(port)
    check(a.connect("sig-a") == 0, "client sig-a connected")
    check(subscribe(a, [("sig/#", 1), ("x/+/y", 0), ("$share/g/work/#", 2)]), "sig-a subscribed to 3 filters")
    off = o.Client(port)
    check(off.connect("sig-off", clean=False) == 0, "client sig-off connected (persistent session)")
    check(subscribe(off, [("kept/#", 2)]), "sig-off subscribed")
    off.send(m.disconnect())
    off.close()
    r = o.Client(port)
    check(r.connect("sig-r") == 0, "client sig-r connected")
    r.send(m.publish("ret/1", b"v", retain=True))
    r.send(m.publish("ret/2", b"v", retain=True))
    check(o.wait_for(lambda: r.send(m.pingreq()) or r.recv_packet() == m.pingresp(), 2), "retained messages sent")

    b.signal(signal.SIGUSR2)
    want = {"sig-a sig/# 1", "sig-a x/+/y 0", "sig-a $share/g/work/# 2", "sig-off kept/# 2"}
    lines = o.wait_for(lambda: want <= set(b.stdout().splitlines()) and b.stdout().splitlines(), 3)
    check(bool(lines) and set(lines) == want,
          "SIGUSR2: one stdout line per subscription, offline session included (got %r)" % b.stdout())
    logged = o.wait_for(lambda: "SIGUSR2: 4 subscriptions (1 shared), 3 sessions, 2 retained messages." in b.stderr(), 3)
    check(logged, "SIGUSR2: totals logged (log: %r)" % b.stderr()[-400:])

    b.signal(signal.SIGUSR1)
    b.signal(signal.SIGUSR2)
    time.sleep(0.2)
    check(b.proc.poll() is None, "still running after SIGUSR1 and a second SIGUSR2")
    check(subscribe(a, [("more/#", 0)]) and a.send(m.pingreq()) is None and a.recv_packet() == m.pingresp(),
          "sig-a's connection still works")
    a.close()
    r.close()
    b.stop()
    o.finish("test_signals")


if __name__ == "__main__":
    main()
