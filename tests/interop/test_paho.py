#!/usr/bin/python3
"""Interop with Eclipse Paho Python 1.6.1 (Debian python3-paho-mqtt; run with /usr/bin/python3).

What it does: MQTTv311 and MQTTv5 paho clients against the broker chosen by VIGIL_BROKER (vigil |
mosquitto, default vigil): connect, subscribe, publish QoS 0/1/2, retained, a Will on an abrupt
socket close, v5 properties round trip, v5 session resume. Prints PASS / FAIL per case; exit
status 1 if any failed.
What it deliberately does not: no packet-level assertions (tests/broker does those).
Invariant: every wait is bounded; clients and brokers are stopped at the end of each case.
Usage: test_paho.py [-k SUBSTR]
"""
import queue
import sys
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from interop import run_cases  # noqa: E402  (puts tests/broker on the path)
from mqtt_test import check, check_eq, fail  # noqa: E402

PROTOS = {"v311": mqtt.MQTTv311, "v5": mqtt.MQTTv5}


class PahoClient:
    def __init__(self, h, port, cid, proto, will=None, clean=True, props=None):
        self.proto = proto
        self.msgs = queue.Queue()
        self.events = queue.Queue()
        kw = {"client_id": cid, "protocol": proto}
        if proto != mqtt.MQTTv5:
            kw["clean_session"] = clean
        self.c = mqtt.Client(**kw)
        if will:
            self.c.will_set(**will)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = lambda c, u, mid, granted, *a: self.events.put(("suback", mid,
                                                                              granted))
        self.c.on_publish = lambda c, u, mid: self.events.put(("puback", mid))
        if proto == mqtt.MQTTv5:
            self.c.connect("127.0.0.1", port, keepalive=30, clean_start=clean, properties=props)
        else:
            self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        ev = self._event("connack")
        check(ev[1] == 0, "CONNACK rc %r" % (ev[1],))
        self.session_present = ev[2]
        h.__dict__.setdefault("_paho", []).append(self)

    def _on_connect(self, c, u, flags, rc, props=None):
        self.events.put(("connack", int(rc) if not hasattr(rc, "value") else rc.value,
                         flags.get("session present", 0)))

    def _event(self, kind, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                fail("paho: no %s within %.0f s" % (kind, timeout))
            if ev[0] == kind:
                return ev

    def subscribe(self, topic, qos=0):
        rc, mid = self.c.subscribe(topic, qos)
        check(rc == 0, "subscribe rc %d" % rc)
        ev = self._event("suback")
        granted = ev[2][0]
        granted = granted.value if hasattr(granted, "value") else granted
        check_eq(granted, qos, "granted QoS")

    def publish(self, topic, payload, qos=0, retain=False, props=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=props)
        check(info.rc == 0, "publish rc %d" % info.rc)
        info.wait_for_publish(timeout=5) if hasattr(info, "wait_for_publish") else None
        check(info.is_published(), "publish QoS %d not completed" % qos)

    def message(self, timeout=5.0):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            fail("paho: no message within %.0f s" % timeout)

    def no_message(self, wait=0.4):
        try:
            m = self.msgs.get(timeout=wait)
        except queue.Empty:
            return
        fail("paho: unexpected message on %s: %r" % (m.topic, m.payload))

    def stop(self, disconnect=True):
        if disconnect:
            self.c.disconnect()
        self.c.loop_stop()


def case_pubsub_qos(h):
    b = h.broker()
    for name, proto in PROTOS.items():
        sub = PahoClient(h, b.port, "sub-" + name, proto)
        sub.subscribe("pq/%s/#" % name, qos=2)
        pub = PahoClient(h, b.port, "pub-" + name, proto)
        for q in range(3):
            pub.publish("pq/%s/%d" % (name, q), "m%d" % q, qos=q)
            m = sub.message()
            check_eq((m.topic, m.payload, m.qos, m.retain),
                     ("pq/%s/%d" % (name, q), b"m%d" % q, q, False), "%s QoS %d" % (name, q))
        sub.stop()
        pub.stop()


def case_cross_protocol(h):
    b = h.broker()
    s5 = PahoClient(h, b.port, "x5", mqtt.MQTTv5)
    s5.subscribe("xp/t", 1)
    s3 = PahoClient(h, b.port, "x3", mqtt.MQTTv311)
    s3.subscribe("xp/t", 1)
    p = PahoClient(h, b.port, "xp", mqtt.MQTTv311)
    p.publish("xp/t", "both", qos=1)
    for s in (s5, s3):
        m = s.message()
        check_eq((m.topic, m.payload, m.qos), ("xp/t", b"both", 1), "cross-protocol")


def case_retained(h):
    b = h.broker()
    for name, proto in PROTOS.items():
        p = PahoClient(h, b.port, "rp-" + name, proto)
        p.publish("pr/" + name, "kept", qos=1, retain=True)
        s = PahoClient(h, b.port, "rs-" + name, proto)
        s.subscribe("pr/" + name, 1)
        m = s.message()
        check_eq((m.topic, m.payload, m.retain, m.qos), ("pr/" + name, b"kept", True, 1),
                 "retained via " + name)
        p.publish("pr/" + name, "", qos=1, retain=True)
        m = s.message()
        check_eq((m.payload, m.retain), (b"", False), "live clear via " + name)
        s2 = PahoClient(h, b.port, "rs2-" + name, proto)
        s2.subscribe("pr/" + name, 1)
        s2.no_message()


def case_will_abrupt_close(h):
    b = h.broker()
    for name, proto in PROTOS.items():
        w = PahoClient(h, b.port, "ww-" + name, proto)
        w.subscribe("pw/" + name, 1)
        v = PahoClient(h, b.port, "wv-" + name, proto,
                       will={"topic": "pw/" + name, "payload": "lost-" + name, "qos": 1})
        v.c.loop_stop()
        v.c.socket().close()  # no DISCONNECT: the broker sees EOF
        m = w.message()
        check_eq((m.topic, m.payload, m.qos), ("pw/" + name, b"lost-" + name.encode(), 1),
                 "will via " + name)


def case_no_will_on_disconnect(h):
    b = h.broker()
    w = PahoClient(h, b.port, "nw", mqtt.MQTTv5)
    w.subscribe("pnw/t", 0)
    v = PahoClient(h, b.port, "nv", mqtt.MQTTv5, will={"topic": "pnw/t", "payload": "no"})
    v.stop(disconnect=True)
    w.no_message(0.5)


def case_v5_properties(h):
    b = h.broker()
    s = PahoClient(h, b.port, "vs", mqtt.MQTTv5)
    s.subscribe("pv/t", 1)
    p = PahoClient(h, b.port, "vp", mqtt.MQTTv5)
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/octet-stream"
    props.ResponseTopic = "pv/reply"
    props.CorrelationData = b"\x00\xffid"
    props.MessageExpiryInterval = 60
    props.PayloadFormatIndicator = 0
    props.UserProperty = [("b", "2"), ("a", "1"), ("b", "3")]
    p.publish("pv/t", b"\x01\x02", qos=1, props=props)
    m = s.message()
    got = m.properties
    check_eq((m.topic, m.payload), ("pv/t", b"\x01\x02"), "message")
    check_eq(got.ContentType, "application/octet-stream", "content type")
    check_eq(got.ResponseTopic, "pv/reply", "response topic")
    check_eq(got.CorrelationData, b"\x00\xffid", "correlation data")
    check(got.MessageExpiryInterval in (59, 60), "expiry %r" % got.MessageExpiryInterval)
    check_eq(got.UserProperty, [("b", "2"), ("a", "1"), ("b", "3")], "user properties")


def case_v5_request_response(h):
    b = h.broker()
    server = PahoClient(h, b.port, "rr-server", mqtt.MQTTv5)
    server.subscribe("rr/req", 1)
    client = PahoClient(h, b.port, "rr-client", mqtt.MQTTv5)
    client.subscribe("rr/resp", 1)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "rr/resp"
    props.CorrelationData = b"42"
    client.publish("rr/req", "ping", qos=1, props=props)
    req = server.message()
    rp = Properties(PacketTypes.PUBLISH)
    rp.CorrelationData = req.properties.CorrelationData
    server.publish(req.properties.ResponseTopic, "pong", qos=1, props=rp)
    resp = client.message()
    check_eq((resp.payload, resp.properties.CorrelationData), (b"pong", b"42"), "response")


def case_v5_session_resume(h):
    b = h.broker()
    cp = Properties(PacketTypes.CONNECT)
    cp.SessionExpiryInterval = 60
    s = PahoClient(h, b.port, "sess5", mqtt.MQTTv5, clean=False, props=cp)
    s.subscribe("ps/t", 1)
    s.stop()
    p = PahoClient(h, b.port, "sessp", mqtt.MQTTv5)
    p.publish("ps/t", "queued", qos=1)
    s2 = PahoClient(h, b.port, "sess5", mqtt.MQTTv5, clean=False, props=cp)
    check(s2.session_present, "session present 0 on resume")
    m = s2.message()
    check_eq((m.topic, m.payload, m.qos), ("ps/t", b"queued", 1), "queued message")


def case_v311_persistent_session(h):
    b = h.broker()
    s = PahoClient(h, b.port, "sess3", mqtt.MQTTv311, clean=False)
    s.subscribe("p3/t", 2)
    s.stop()
    p = PahoClient(h, b.port, "sess3p", mqtt.MQTTv311)
    p.publish("p3/t", "queued2", qos=2)
    s2 = PahoClient(h, b.port, "sess3", mqtt.MQTTv311, clean=False)
    check(s2.session_present, "session present 0 on resume")
    m = s2.message()
    check_eq((m.topic, m.payload, m.qos), ("p3/t", b"queued2", 2), "queued message")


def case_many_qos1(h):
    b = h.broker()
    s = PahoClient(h, b.port, "mq-s", mqtt.MQTTv5)
    s.subscribe("mq/t", 1)
    p = PahoClient(h, b.port, "mq-p", mqtt.MQTTv5)
    infos = [p.c.publish("mq/t", str(i), qos=1) for i in range(300)]
    for i in infos:
        i.wait_for_publish(timeout=5)
    for i in range(300):
        check_eq(s.message().payload, str(i).encode(), "message %d in order" % i)


CASES = [(n, f) for n, f in sorted(globals().items()) if n.startswith("case_")]


def _stop_paho(h):
    for pc in getattr(h, "_paho", []):
        try:
            pc.c.loop_stop()
            pc.c.socket() and pc.c.socket().close()
        except Exception:  # noqa: BLE001 - best-effort cleanup
            pass


def main():
    return run_cases(__file__, CASES, cleanup=_stop_paho)


if __name__ == "__main__":
    sys.exit(main())
