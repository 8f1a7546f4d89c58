#!/usr/bin/env python3
"""Make the real mosquitto 2.0.11 write a mosquitto.db with known contents.

What it does: starts /usr/sbin/mosquitto with `persistence true` in DIR, builds a fixed state over raw
sockets (retained messages with and without v5 properties, a v3.1.1 persistent session with QoS 0/1/2
subscriptions and messages queued while it is offline, a v5 session with Session Expiry and
subscription options / identifiers and a queued message, outbound QoS 1/2 messages in flight to
connected clients in three states, an inbound QoS 2 message whose PUBREL never comes), then stops
mosquitto with SIGTERM so it writes DIR/mosquitto.db, and checks that it did.
What it deliberately does not: parse the file (tests/unit/test_mosqdb.c does, and asserts every record
against the list below; keep both in step).
Invariant: every read has a timeout; mosquitto is always stopped; exit status 0 only if the file exists.

Usage: mosqdb_gen.py [--empty | --expiry] DIR
  --empty   no clients at all: mosquitto writes only its header
  --expiry  two offline v5 sessions subscribed to s/# (Session Expiry 2 s and 3600 s) with s/1
            (Message Expiry 2 s) and s/2 (none) queued, for tests of expiry across the downtime
"""

import os
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "broker"))
import mqtt_test as m  # noqa: E402  (packet builders only)

MOSQUITTO = "/usr/sbin/mosquitto"


class Conn:
    def __init__(self, port, proto):
        self.proto = proto
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv(self):
        def need(n):
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise RuntimeError("connection closed by mosquitto")
                self.buf += chunk
        need(2)
        n, mult, i = 0, 1, 1
        while True:
            need(i + 1)
            b = self.buf[i]
            n += (b & 0x7F) * mult
            mult *= 128
            i += 1
            if not b & 0x80:
                break
        need(i + n)
        pkt, self.buf = self.buf[:i + n], self.buf[i + n:]
        return pkt

    def expect_type(self, t):
        p = self.recv()
        if p[0] >> 4 != t:
            raise RuntimeError("expected packet type %d, got %s" % (t, p.hex()))
        return p

    def close(self):
        self.sock.close()


def connect(port, cid, proto=4, clean=True, username=None, properties=None):
    c = Conn(port, proto)
    c.send(m.connect(cid, proto=proto, clean=clean, username=username, properties=properties))
    p = c.expect_type(2)
    if p[3] != 0:
        raise RuntimeError("CONNACK refused: %s" % p.hex())
    return c


def pub(c, topic, payload, qos=0, retain=False, mid=1, properties=None):
    """A complete publish flow from the client side."""
    c.send(m.publish(topic, payload, qos=qos, retain=retain, mid=mid, proto=c.proto, properties=properties))
    if qos == 1:
        c.expect_type(4)
    elif qos == 2:
        c.expect_type(5)
        c.send(m.pubrel(mid, proto=c.proto))
        c.expect_type(7)


def sub(c, mid, topics, properties=None):
    c.send(m.subscribe(mid, topics, proto=c.proto, properties=properties))
    c.expect_type(9)


def sync(c):
    """PINGREQ round trip: everything sent before it has been handled."""
    c.send(m.pingreq())
    while True:
        p = c.recv()
        if p[0] == 0xD0:
            return
        c.pending = getattr(c, "pending", []) + [p]


def build(port, conns):
    """The state asserted by tests/unit/test_mosqdb.c (check_scenario)."""
    # Subscribers first: persistent sessions that go offline.
    s311 = connect(port, "sess311", proto=4, clean=False, username="bob")
    sub(s311, 1, [("q/0", 0), ("q/1", 1), ("q/2", 2), ("w/+/x", 1), ("i/#", 2)])
    s311.send(m.disconnect())
    s311.close()

    # mosquitto 2.0.11 saves only sessions whose CONNECT had Clean Start 0.
    s5 = connect(port, "sess5", proto=5, clean=False, properties=[(0x11, 3600)])
    sub(s5, 1, [("v5/a", m.subopts(2, nl=True, rap=True, rh=2))], properties=[(0x0B, 42)])
    sub(s5, 2, [("v5/b", m.subopts(1))], properties=[(0x0B, 7)])
    sub(s5, 3, [("$share/g/s/#", m.subopts(1))])  # not saved by mosquitto 2.0.11
    s5.send(m.disconnect(proto=5))
    s5.close()
    s5c = connect(port, "sess5c", proto=5, clean=True, properties=[(0x11, 3600)])
    sub(s5c, 1, [("v5/a", 1)])
    s5c.send(m.disconnect(proto=5))
    s5c.close()

    # Connected clients that never complete their flows (in flight at shutdown).
    inf = connect(port, "inflight311", proto=4, clean=False)
    sub(inf, 1, [("f/#", 2)])
    conns.append(inf)
    inq = connect(port, "inq2", proto=4, clean=False, username="carol")
    conns.append(inq)
    live5 = connect(port, "live5", proto=5, clean=False, properties=[(0x11, 120)])
    conns.append(live5)

    # Publishers.
    p311 = connect(port, "pub311", proto=4, clean=True, username="alice")
    conns.append(p311)
    pub(p311, "r/plain", b"hello", qos=0, retain=True)
    pub(p311, "r/qos1", b"one", qos=1, retain=True, mid=2)
    pub(p311, "r/bin", b"\x00\x01\xff", qos=2, retain=True, mid=3)
    pub(p311, "q/0", b"m0", qos=0)
    pub(p311, "q/1", b"m1", qos=1, mid=4)
    pub(p311, "q/2", b"m2", qos=2, mid=5)
    pub(p311, "w/y/x", b"mw", qos=2, mid=6)

    p5 = connect(port, "pub5", proto=5, clean=True)
    conns.append(p5)
    pub(p5, "r/v5props", b"props", qos=1, retain=True, mid=1,
        properties=[(0x01, 1), (0x02, 3600), (0x03, "text/plain"), (0x08, "resp/t"),
                    (0x09, b"\x01\x02"), (0x26, ("k", "v"))])
    pub(p5, "v5/a", b"to-sess5", qos=2, mid=2, properties=[(0x26, ("src", "p5"))])

    # Outbound in flight to inflight311: QoS 1 unacked, QoS 2 without PUBREC,
    # QoS 2 with PUBREC but no PUBCOMP.
    pub(p311, "f/1", b"f-qos1", qos=1, mid=7)
    pub(p311, "f/2", b"f-qos2", qos=2, mid=8)
    pub(p311, "f/3", b"f-pubrel", qos=2, mid=9)
    got = [inf.expect_type(3) for _ in range(3)]
    mid3 = int.from_bytes(got[2][2 + 2 + 3:2 + 2 + 3 + 2], "big")
    inf.send(m.pubrec(mid3))
    inf.expect_type(6)  # PUBREL, left unanswered

    # Inbound QoS 2 whose PUBREL never comes.
    inq.send(m.publish("i/q2", b"in-qos2", qos=2, mid=77))
    inq.expect_type(5)
    for c in conns:
        sync(c)


def build_expiry(port, conns):
    for cid, exp in (("short5", 2), ("long5", 3600)):
        c = connect(port, cid, proto=5, clean=False, properties=[(0x11, exp)])
        sub(c, 1, [("s/#", 1)])
        c.send(m.disconnect(proto=5))
        c.close()
    p = connect(port, "pubx", proto=5, clean=True)
    conns.append(p)
    pub(p, "s/1", b"expires", qos=1, mid=1, properties=[(0x02, 2)])
    pub(p, "s/2", b"stays", qos=1, mid=2)
    sync(p)


def main():
    opts = [a for a in sys.argv[1:] if a.startswith("--")]
    empty = "--empty" in opts
    d = os.path.abspath([a for a in sys.argv[1:] if not a.startswith("--")][0])
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o777)  # run as root, mosquitto drops to user mosquitto
    port = m.free_port()
    conf = os.path.join(d, "mosquitto.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\n"
                "persistence_location %s/\nautosave_interval 0\n" % (port, d))
    logf = open(os.path.join(d, "mosquitto.log"), "wb")
    proc = subprocess.Popen([MOSQUITTO, "-c", conf, "-v"], stdin=subprocess.DEVNULL, stdout=logf,
                            stderr=logf, cwd=d)
    conns = []
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("mosquitto did not start")
                time.sleep(0.02)
        if "--expiry" in opts:
            build_expiry(port, conns)
        elif not empty:
            build(port, conns)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for c in conns:
            c.close()
        logf.close()
    db = os.path.join(d, "mosquitto.db")
    if not os.path.exists(db):
        sys.stderr.write("mosquitto wrote no %s\n" % db)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
