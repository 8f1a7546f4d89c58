"""The $SYS tree: the topics mosquitto 2.0.11 publishes, with the same names, and values that move
as traffic happens.

No MQTT normative statement applies to the counters: $SYS is a broker convention (mosquitto(8),
"Broker Status"), not part of the specification (the keepalive close that the last test counts is
v311 MQTT-3.1.2-24). The reference list below is what Debian's mosquitto 2.0.11
publishes with `sys_interval 1` (observed with mosquitto_sub -t '$SYS/#'; its sys_tree.c). The test
runs on both brokers: on mosquitto it checks the list itself, on vigil that vigil publishes the same
set plus only its own additions (listed in mosquitto-compat.md, "$SYS topics").

The traffic is chosen so that both brokers count it: QoS 0 and 1, not retained (mosquitto 2.0.11
counts $SYS/broker/publish/messages/received only for PUBLISH packets without RETAIN and below QoS 2,
mosquitto issue #2448).
"""
import socket
import time

import mqtt_test
from mqtt_test import PUBLISH, check, fail, timeout

LOADS = ["$SYS/broker/load/%s/%s" % (what, span)
         for what in ("messages/received", "messages/sent", "publish/dropped", "publish/received",
                      "publish/sent", "bytes/received", "bytes/sent", "sockets", "connections")
         for span in ("1min", "5min", "15min")]

MOSQUITTO_2_0_11 = set(LOADS) | {"$SYS/broker/" + t for t in (
    "bytes/received", "bytes/sent",
    "clients/active", "clients/connected", "clients/disconnected", "clients/expired",
    "clients/inactive", "clients/maximum", "clients/total",
    "heap/current", "heap/maximum",
    "messages/received", "messages/sent", "messages/stored",
    "publish/bytes/received", "publish/bytes/sent",
    "publish/messages/dropped", "publish/messages/received", "publish/messages/sent",
    "retained messages/count", "shared_subscriptions/count",
    "store/messages/bytes", "store/messages/count",
    "subscriptions/count", "uptime", "version")}

# vigil's additions: the two liveness topics named in issue 11, and its own subtree.
VIGIL_NAMED = {"$SYS/broker/clients/keepalive_timeouts", "$SYS/broker/wills/published"}
VIGIL_OWN = "$SYS/broker/vigil/"


class Sys:
    """A $SYS/# subscriber that keeps the latest value of every topic."""

    def __init__(self, h, b, filt="$SYS/#"):
        self.c = h.connect(b, "sysmon", proto=4)
        self.c.subscribe([(filt, 0)])
        self.v = {}

    def pump(self, secs):
        deadline = time.monotonic() + secs
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                p = mqtt_test.parse(self.c.recv_packet(left))
            except socket.timeout:
                return
            if p["type"] == PUBLISH:
                self.v[p["topic"]] = p["payload"].decode()

    def settle(self, ticks=1):
        """Pump through `ticks` updates (uptime changes), then the rest of the last one: every
        value is then the broker's current one, not one retained before we connected."""
        up = "$SYS/broker/uptime"
        self.pump(0.2)  # the retained values first
        deadline = time.monotonic() + ticks + 3
        seen = self.v.get(up)
        while ticks and time.monotonic() < deadline:
            self.pump(0.05)
            if self.v.get(up) != seen:
                seen = self.v.get(up)
                ticks -= 1
        check(not ticks, "$SYS/broker/uptime not updated every second")
        self.pump(0.3)

    def num(self, topic):
        check(topic in self.v, "%s never published (have %d topics)" % (topic, len(self.v)))
        return float(self.v[topic])

    def wait(self, topic, pred, what, secs=4.0):
        """Pump until pred(value of topic) holds; fail naming what after secs."""
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            if topic in self.v and pred(float(self.v[topic])):
                return float(self.v[topic])
            self.pump(min(0.2, max(0.01, deadline - time.monotonic())))
        fail("%s: %s is %r, want %s" % (topic, what, self.v.get(topic), what))


@timeout(25)
def test_sys_topics_are_mosquitto_2_0_11s(h):
    b = h.broker("sys_interval 1\n")
    s = Sys(h, b)
    s.pump(2.5)  # the retained tree at once, then two updates
    got = set(s.v)
    missing = sorted(MOSQUITTO_2_0_11 - got)
    check(not missing, "mosquitto 2.0.11's $SYS topics not published: %s" % missing)
    extra = sorted(t for t in got - MOSQUITTO_2_0_11
                   if not (h.vigil and (t in VIGIL_NAMED or t.startswith(VIGIL_OWN))))
    check(not extra, "$SYS topics beyond mosquitto 2.0.11's (and vigil's listed additions): %s" % extra)
    if h.vigil:
        check(VIGIL_NAMED <= got, "vigil's liveness topics missing: %s" % sorted(VIGIL_NAMED - got))
    check(all(s.v[t] == "0.00" or float(s.v[t]) >= 0 for t in LOADS), "load values: %r"
          % {t: s.v[t] for t in LOADS})
    check(s.v["$SYS/broker/uptime"].endswith(" seconds"), "uptime %r" % s.v["$SYS/broker/uptime"])
    check(s.v["$SYS/broker/version"].split(" version ")[0] in ("mosquitto", "vigil"),
          "version %r" % s.v["$SYS/broker/version"])
    # aliases carry the same value
    for a, b_ in (("clients/active", "clients/connected"), ("clients/inactive", "clients/disconnected"),
                  ("messages/stored", "store/messages/count")):
        check(s.v["$SYS/broker/" + a] == s.v["$SYS/broker/" + b_], "%s %r != %s %r"
              % (a, s.v["$SYS/broker/" + a], b_, s.v["$SYS/broker/" + b_]))


@timeout(25)
def test_sys_counters_move_with_traffic(h):
    b = h.broker("sys_interval 1\n")
    s = Sys(h, b)
    s.settle(1)
    base = {t: s.num("$SYS/broker/" + t) for t in (
        "messages/received", "messages/sent", "bytes/received", "bytes/sent",
        "publish/messages/received", "publish/messages/sent", "publish/bytes/received",
        "publish/bytes/sent", "clients/connected", "clients/total", "subscriptions/count")}
    n, size = 10, 100
    sub = h.connect(b, "sys-sub", proto=4)
    sub.subscribe([("sys/t", 1)])
    pub = h.connect(b, "sys-pub", proto=4)
    for i in range(n):
        pub.publish("sys/t", b"%03d" % i + b"x" * (size - 3), qos=i % 2)
        sub.expect_publish("sys/t", b"%03d" % i + b"x" * (size - 3), qos=i % 2)
    # Both connected: connected +2, total +2, maximum at least that, one more subscription.
    S = "$SYS/broker/"
    s.wait(S + "clients/connected", lambda v: v == base["clients/connected"] + 2, "2 more")
    s.wait(S + "clients/total", lambda v: v >= base["clients/total"] + 2, "2 more")
    s.wait(S + "clients/maximum", lambda v: v >= base["clients/total"] + 2, "at least total")
    s.wait(S + "subscriptions/count", lambda v: v == base["subscriptions/count"] + 1, "1 more")
    # n PUBLISH in, n out to sys-sub (plus the $SYS ones to us), payload bytes both ways.
    s.wait(S + "publish/messages/received", lambda v: v >= base["publish/messages/received"] + n,
           "%d more" % n)
    s.wait(S + "publish/bytes/received", lambda v: v >= base["publish/bytes/received"] + n * size,
           "%d more bytes" % (n * size))
    s.wait(S + "publish/messages/sent", lambda v: v >= base["publish/messages/sent"] + n // 2,
           "%d more" % (n // 2))
    s.wait(S + "publish/bytes/sent", lambda v: v >= base["publish/bytes/sent"] + n * size,
           "%d more bytes" % (n * size))
    # Packets of every type: 2 CONNECT, SUBSCRIBE, n PUBLISH, n/2 PUBACK from sys-sub.
    s.wait(S + "messages/received", lambda v: v >= base["messages/received"] + 3 + n + n // 2,
           "packets of every type counted")
    s.wait(S + "messages/sent", lambda v: v >= base["messages/sent"] + 3 + n + n // 2,
           "packets of every type counted")
    s.wait(S + "bytes/received", lambda v: v >= base["bytes/received"] + n * size, "more")
    s.wait(S + "bytes/sent", lambda v: v >= base["bytes/sent"] + n * size, "more")
    # The 1-minute loads rise above 0 (sockets, CONNECTs, packets, PUBLISH, bytes).
    for t in ("sockets", "connections", "messages/received", "publish/received", "bytes/received"):
        s.wait(S + "load/%s/1min" % t, lambda v: v > 0, "above 0")
    u0 = int(s.v[S + "uptime"].split()[0])
    deadline = time.monotonic() + 3
    while int(s.v[S + "uptime"].split()[0]) <= u0 and time.monotonic() < deadline:
        s.pump(0.2)
    check(int(s.v[S + "uptime"].split()[0]) > u0, "uptime did not advance from %d" % u0)
    # Disconnect both: connected back to the base, maximum stays.
    pub.disconnect()
    sub.disconnect()
    s.wait(S + "clients/connected", lambda v: v == base["clients/connected"], "back to base")
    check(s.num(S + "clients/maximum") >= base["clients/total"] + 2, "maximum fell")


@timeout(25)
def test_sys_store_retained_shared_offline_dropped(h):
    b = h.broker("sys_interval 1\nmax_queued_messages 2\n")
    s = Sys(h, b)
    s.settle(1)
    S = "$SYS/broker/"
    base = {t: s.num(S + t) for t in ("retained messages/count", "store/messages/count",
                                      "store/messages/bytes", "clients/disconnected",
                                      "publish/messages/dropped", "shared_subscriptions/count",
                                      "subscriptions/count")}
    # A retained message: retained count +1, the store holds it (count and payload bytes).
    pub = h.connect(b, "sys-pub2", proto=4)
    pub.publish("sys/keep", b"k" * 500, qos=1, retain=True)
    s.wait(S + "retained messages/count", lambda v: v == base["retained messages/count"] + 1, "1 more")
    s.wait(S + "store/messages/count", lambda v: v >= base["store/messages/count"] + 1, "1 more")
    s.wait(S + "store/messages/bytes", lambda v: v >= base["store/messages/bytes"] + 500, "500 more")
    # A v5 shared subscription counts under shared_subscriptions, not subscriptions.
    sh = h.connect(b, "sys-shared", proto=5)
    sh.subscribe([("$share/g/sys/sh", 0)])
    s.wait(S + "shared_subscriptions/count", lambda v: v == base["shared_subscriptions/count"] + 1,
           "1 more")
    check(s.num(S + "subscriptions/count") == base["subscriptions/count"],
          "a shared subscription counted as a plain one")
    # A persistent v3.1.1 session goes offline: disconnected +1; QoS 1 messages beyond
    # max_queued_messages (2) for it are dropped and counted.
    off = h.connect(b, "sys-offline", proto=4, clean=False)
    off.subscribe([("sys/q", 1)])
    off.disconnect()
    s.wait(S + "clients/disconnected", lambda v: v == base["clients/disconnected"] + 1, "1 more")
    for i in range(5):
        pub.publish("sys/q", b"q%d" % i, qos=1)
    s.wait(S + "publish/messages/dropped", lambda v: v >= base["publish/messages/dropped"] + 3,
           "3 more (5 queued, 2 kept)")


@timeout(25)
def test_sys_clients_expired(h):
    # A v5 session with a 1 s Session Expiry Interval ends: clients/expired +1, total back.
    b = h.broker("sys_interval 1\n")
    s = Sys(h, b)
    s.settle(1)
    S = "$SYS/broker/"
    base = {t: s.num(S + t) for t in ("clients/expired", "clients/total")}
    ex = h.connect(b, "sys-expiring", proto=5, properties=[(0x11, 1)])
    ex.disconnect()
    t0 = time.monotonic()
    s.wait(S + "clients/expired", lambda v: v == base["clients/expired"] + 1, "1 more", secs=8.0)
    s.wait(S + "clients/total", lambda v: v == base["clients/total"], "back to base")
    print("clients/expired moved %.1f s after the disconnect" % (time.monotonic() - t0))


@timeout(20)
def test_sys_keepalive_timeout_and_will_counters(h):
    # A client with a will and keepalive 1 goes silent: both brokers close it and publish the
    # will (v311 MQTT-3.1.2-24: after 1.5 x keepalive); vigil also counts both in
    # $SYS/broker/clients/keepalive_timeouts and $SYS/broker/wills/published (and under
    # $SYS/broker/vigil/), which mosquitto does not publish.
    b = h.broker("sys_interval 1\n")
    s = Sys(h, b)
    s.settle(1)
    S = "$SYS/broker/"
    named = ("clients/keepalive_timeouts", "wills/published")
    own = ("vigil/keepalive_timeouts", "vigil/wills_published")
    if h.vigil:
        base = {t: s.num(S + t) for t in named + own}
    else:
        check(not any(S + t in s.v for t in named), "mosquitto publishes vigil's counters?")
    obs = h.connect(b, "sys-will-obs", proto=4)
    obs.subscribe([("sys/will", 0)])
    h.connect(b, "sys-silent", proto=4, keepalive=1, will=dict(topic="sys/will", payload=b"gone"))
    obs.expect_publish("sys/will", b"gone", timeout=4.0)
    if h.vigil:
        for t in named + own:
            s.wait(S + t, lambda v, t=t: v == base[t] + 1, "1 more")
