#!/usr/bin/python3
"""Bridges are observable (issue 9 item 5): $SYS/broker/vigil/bridge/NAME/... and the log.

`sys_interval 1`: every second the bridging broker publishes, retained, for its bridge "up":
state (connected / connecting / down / stopped), address, connects, disconnects,
remote_timeouts, messages/sent, messages/received, messages/queued. We cause known events (2
messages out, 1 in, a remote frozen with SIGSTOP, its return) and read them; the log must name
the connect and the disconnect with its reason ("remote ... silent for 1.5.. s (keepalive 1 s)").
A vigil extension (mosquitto has only $SYS/broker/connection/ID/state), so not in tests/broker.
mqtt-spec: none (bridges are outside the MQTT specification)
"""
import os
import re
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "liveness"))
import live  # noqa: E402
from live import check, timeout  # noqa: E402
from mqtt_test import fail, parse, PUBLISH  # noqa: E402

B = "$SYS/broker/vigil/bridge/up/"
COUNTERS = [B + x for x in ("connects", "disconnects", "remote_timeouts", "messages/sent",
                            "messages/received", "messages/queued")]


def wait_value(t, b, topic, value, limit):
    """Subscribe to one $SYS topic and wait until its payload is value (bytes)."""
    c = t.connect(b.port, "sysw-%s" % topic.rsplit("/", 1)[-1], keepalive=60, name="sysw")
    c.subscribe([(topic, 0)])
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        try:
            p = parse(c.recv_packet(max(0.01, deadline - time.monotonic())))
        except socket.timeout:
            continue
        if p["type"] == PUBLISH and p["topic"] == topic:
            last = p["payload"]
            if last == value:
                c.close()
                return
    fail("%s stayed %r, want %r" % (topic, last, value))


@timeout(30)
def test_bridge_state_counters_and_log(t):
    r = t.broker("", name="remote")
    rs = t.connect(r.port, "rs")
    rs.subscribe([("m/#", 1)])
    lb = t.broker("sys_interval 1\nconnection up\naddress 127.0.0.1:%d\nremote_clientid up1\n"
                  "restart_timeout 1\nkeepalive_interval 1\ntopic m/# out 1\ntopic n/# in 1\n" % r.port,
                  name="local")
    wait_value(t, lb, B + "state", b"connected", 5)
    wait_value(t, lb, B + "address", b"127.0.0.1:%d" % r.port, 3)
    ls = t.connect(lb.port, "ls")
    ls.subscribe([("n/#", 1)])
    p = t.connect(lb.port, "p")
    p.publish("m/1", b"a", qos=1, rc="success-or-no-subscribers")
    p.publish("m/2", b"b", qos=1, rc="success-or-no-subscribers")
    rs.expect_publish("m/1", b"a", qos=1)
    rs.expect_publish("m/2", b"b", qos=1)
    t.connect(r.port, "rp").publish("n/1", b"c", qos=1, rc="success-or-no-subscribers")
    ls.expect_publish("n/1", b"c", qos=1)
    want = {B + "connects": 1, B + "messages/sent": 2, B + "messages/received": 1}
    got = live.read_sys(t, lb, COUNTERS, timeout=4.0, want=want)
    check(got[B + "disconnects"] == 0 and got[B + "remote_timeouts"] == 0 and got[B + "messages/queued"] == 0,
          "before the freeze: %r" % got)
    os.kill(r.proc.pid, signal.SIGSTOP)
    t.defer(lambda: os.kill(r.proc.pid, signal.SIGCONT))
    wait_value(t, lb, B + "state", b"down", 5)  # or connecting: both are "not connected"
    p.publish("m/3", b"waits", qos=1, rc="success-or-no-subscribers")
    got = live.read_sys(t, lb, COUNTERS, timeout=4.0,
                        want={B + "disconnects": 1, B + "remote_timeouts": 1, B + "messages/queued": 1})
    os.kill(r.proc.pid, signal.SIGCONT)
    wait_value(t, lb, B + "state", b"connected", 10)
    rs.expect_publish("m/3", b"waits", qos=1, timeout=5)
    got = live.read_sys(t, lb, COUNTERS, timeout=4.0, want={B + "connects": 2})
    log = lb.log()
    check(re.search(r"Bridge up connected to 127\.0\.0\.1:%d \(MQTT 3\.1\.1" % r.port, log),
          "no connect line in the log:\n" + lb.log_tail())
    m = re.search(r"Bridge up: remote 127\.0\.0\.1:%d silent for (\d+\.\d+) s \(keepalive 1 s\), "
                  r"disconnecting\." % r.port, log)
    check(m, "no 'remote ... silent for N s (keepalive 1 s)' line in the log:\n" + lb.log_tail())
    check(1.5 <= float(m.group(1)) <= 1.5 + live.LATE + 0.01, "silent for %s s" % m.group(1))


if __name__ == "__main__":
    sys.exit(live.main(globals()))
