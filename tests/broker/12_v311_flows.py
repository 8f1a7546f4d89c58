"""MQTT 3.1.1 flows not covered elsewhere: Packet Identifiers the Server picks while others are in
use, sessions keyed by ClientId and kept for the whole connection, a CONNECT no return code fits,
the forwarded PUBLISH byte-exact, deliveries completed after UNSUBSCRIBE, ordered topics by
default, packets split over or packed into TCP segments.
mqtt-spec: 3.1.1
"""
import struct
import time

from mqtt_test import (connect, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe,
                       suback, pingreq, pingresp, packet, mstr, u16, parse, check, check_eq,
                       sleep, fail, timeout, mosquitto_differs, PUBLISH)


def test_server_packet_ids_in_use_not_reused_v311_MQTT_2_3_1_4(h):
    # v311 MQTT-2.3.1-4 (MQTT-2.3.1-2 applied to the Server): each new QoS > 0 PUBLISH the Server
    # sends gets a Packet Identifier not currently in use: while a QoS 2 flow waits for PUBCOMP
    # (PUBREL sent) and a QoS 1 PUBLISH waits for PUBACK, 30 further QoS 1 messages (each
    # acknowledged on arrival) never take either id, nor 0.
    b = h.broker()
    s = h.connect(b, "pid-s")
    s.subscribe([("pid/#", 2)])
    p = h.connect(b, "pid-p")
    p.publish("pid/q2", "hold2", qos=2)
    x = s.expect_publish("pid/q2", "hold2", qos=2, ack=False)["mid"]
    s.send(pubrec(x))
    s.expect_packet(pubrel(x))
    p.publish("pid/q1", "hold1", qos=1)
    y = s.expect_publish("pid/q1", "hold1", qos=1, ack=False)["mid"]
    check(x != y and 0 not in (x, y), "ids %r %r" % (x, y))
    seen = []
    for i in range(30):
        p.publish("pid/n", str(i), qos=1)
        m = s.expect_publish("pid/n", str(i), qos=1)["mid"]
        seen.append(m)
    check(x not in seen and y not in seen and 0 not in seen,
          "ids in use (%d, %d) reused: %r" % (x, y, seen))
    s.send(pubcomp(x) + puback(y))
    s.expect_no_packet(0.2)


def _read_n(c, n, deadline):
    """Exactly n bytes from client c's socket (whatever the harness buffered first)."""
    while len(c.buf) < n:
        left = deadline - time.monotonic()
        check(left > 0, "%s: timed out (%d of %d bytes)" % (c.name, len(c.buf), n))
        c.sock.settimeout(left)
        chunk = c.sock.recv(1 << 20)
        check(chunk, "%s: connection closed" % c.name)
        c.buf += chunk
    out, c.buf = c.buf[:n], c.buf[n:]
    return out


@mosquitto_differs("mosquitto 2.0.11 wraps its Packet Identifiers without skipping the ones in "
                   "use: the ids of a pending QoS 2 and QoS 1 delivery are taken again")
@timeout(20)
def test_server_packet_ids_skip_in_use_on_wrap_v311_MQTT_2_3_1_4(h):
    # v311 MQTT-2.3.1-4: the Server's Packet Identifiers wrap around after 65535; when they do,
    # the two still in use (a QoS 2 flow waiting for PUBCOMP, a QoS 1 PUBLISH waiting for
    # PUBACK) are skipped: 65600 further QoS 1 deliveries (acknowledged in batches) never take
    # them, nor 0. Unlimited in-flight window and queue so that nothing is dropped.
    b = h.broker("max_inflight_messages 0\nmax_queued_messages 0\n")
    s = h.connect(b, "wr-s")
    s.subscribe([("w/h", 2), ("w/n", 1)])
    p = h.connect(b, "wr-p")
    p.publish("w/h", "hold2", qos=2)
    x = s.expect_publish("w/h", "hold2", qos=2, ack=False)["mid"]
    s.send(pubrec(x))
    s.expect_packet(pubrel(x))
    p.publish("w/h", "hold1", qos=1)
    y = s.expect_publish("w/h", "hold1", qos=1, ack=False)["mid"]
    check(x != y and 0 not in (x, y), "ids %r %r" % (x, y))
    head = b"\x32\x07\x00\x03w/n"
    total, chunk, seen = 65600, 4100, []
    deadline = time.monotonic() + 15
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        p.send(b"".join(head + struct.pack("!H", (sent + i) % 65535 + 1) for i in range(n)))
        acks = _read_n(p, 4 * n, deadline)
        check_eq(acks[:4], puback((sent % 65535) + 1), "first PUBACK of the batch")
        data = _read_n(s, 9 * n, deadline)
        mids = []
        for off in range(0, len(data), 9):
            if data[off:off + 7] != head:
                fail("unexpected packet at %d: %s" % (off, data[off:off + 16].hex()))
            mids.append(struct.unpack_from("!H", data, off + 7)[0])
        s.send(b"".join(puback(m) for m in mids))
        seen += mids
        sent += n
    bad = [m for m in seen if m in (0, x, y)]
    check(not bad, "ids in use (%d, %d) or 0 taken: %d times" % (x, y, len(bad)))
    check(len(set(seen)) == 65533, "distinct ids used: %d" % len(set(seen)))
    s.send(pubcomp(x) + puback(y))
    s.expect_no_packet(0.2)


def test_session_identified_by_client_id_v311_MQTT_3_1_3_2(h):
    # v311 MQTT-3.1.3-2: the Server identifies Session state by the ClientId: two CleanSession 0
    # clients keep their own subscriptions and queues; an unknown ClientId has no session.
    b = h.broker()
    a = h.connect(b, "sid-a", clean=False)
    a.subscribe([("sid/a", 1)])
    a.disconnect()
    bb = h.connect(b, "sid-b", clean=False)
    bb.subscribe([("sid/b", 1)])
    bb.disconnect()
    sleep(0.1)
    p = h.connect(b, "sidp")
    p.publish("sid/a", "for a", qos=1)
    p.publish("sid/b", "for b", qos=1)
    b2 = h.connect(b, "sid-b", clean=False, session_present=True)
    b2.expect_publish("sid/b", "for b", qos=1)
    b2.expect_no_packet(0.2)
    a2 = h.connect(b, "sid-a", clean=False, session_present=True)
    a2.expect_publish("sid/a", "for a", qos=1)
    a2.expect_no_packet(0.2)
    h.connect(b, "sid-c", clean=False, session_present=False)


def test_no_fitting_return_code_close_without_connack_v311_MQTT_3_2_2_6(h):
    # v311 MQTT-3.2.2-6: a CONNECT that no CONNACK return code describes (malformed: Will Flag
    # set but no Will Topic / Message; packet ending inside the variable header; Will Topic with
    # a wildcard) is answered by closing the connection without any CONNACK.
    b = h.broker()
    head = mstr("MQTT") + bytes([4])
    cases = {
        "will-missing": packet(0x10, head + bytes([0x06]) + u16(60) + mstr("wm")),
        "short-header": packet(0x10, head + bytes([0x02])),
        "will-wildcard": connect("ww", will={"topic": "w/#", "payload": b"x"}),
    }
    for name, data in cases.items():
        c = h.client(b, name=name)
        c.send(data)
        c.expect_closed()
    ok = h.client(b)
    ok.send(connect("still-fine"))
    ok.expect_packet(connack(0))


def test_forwarded_publish_topic_first_v311_MQTT_3_3_2_1(h):
    # v311 MQTT-3.3.2-1: a PUBLISH the Server sends starts its variable header with the Topic
    # Name as a UTF-8 string (multi-byte characters kept), then the Packet Identifier (QoS 1):
    # byte-exact but for the id the Server picks.
    b = h.broker()
    s = h.connect(b, "tf-s")
    s.subscribe([("tf/#", 1)])
    p = h.connect(b, "tf-p")
    topic = "tf/\u00e9t\u00e9/\u6f22\u5b57/\U0001f600"
    p.publish(topic, b"\x00\x01payload", qos=1)
    got = s.recv("PUBLISH")
    d = parse(got)
    check_eq(d["type"], PUBLISH, "packet type")
    check_eq(got, publish(topic, b"\x00\x01payload", qos=1, mid=d["mid"]), "PUBLISH bytes")
    check_eq(got[2:4], u16(len(topic.encode("utf-8"))), "topic length prefix")
    s.send(puback(d["mid"]))


def test_unsubscribe_completes_started_v311_MQTT_3_10_4_3(h):
    # v311 MQTT-3.10.4-3: deliveries started before the UNSUBSCRIBE are completed: the QoS 2 one
    # goes on (PUBREC -> PUBREL with the same id), the unacknowledged QoS 1 one is resent on
    # reconnect (DUP 1, same id); nothing new comes for the removed filters.
    b = h.broker()
    s = h.connect(b, "u3", clean=False)
    s.subscribe([("u3/q2", 2), ("u3/q1", 1)])
    p = h.connect(b, "u3p")
    p.publish("u3/q2", "two", qos=2)
    p.publish("u3/q1", "one", qos=1)
    d2 = s.expect_publish("u3/q2", "two", qos=2, ack=False)
    d1 = s.expect_publish("u3/q1", "one", qos=1, ack=False)
    s.unsubscribe(["u3/q2", "u3/q1"])
    s.send(pubrec(d2["mid"]))
    s.expect_packet(pubrel(d2["mid"]))
    s.send(pubcomp(d2["mid"]))
    p.publish("u3/q1", "new", qos=1)
    s.expect_no_packet(0.2)
    s.close()
    s2 = h.connect(b, "u3", clean=False, session_present=True)
    s2.expect_publish("u3/q1", "one", qos=1, dup=True, mid=d1["mid"])
    s2.expect_no_packet(0.2)


def test_session_kept_for_connection_v311_MQTT_4_1_0_1_MQTT_4_1_0_2(h):
    # v311 MQTT-4.1.0-2: with CleanSession 1 the Session lasts at least as long as the network
    # connection; v311 MQTT-4.1.0-1: its state is kept meanwhile: after idle periods the
    # subscription still delivers, a half-done inbound QoS 2 flow still suppresses the resend
    # and completes, and a half-done outbound QoS 2 flow completes with the same id.
    b = h.broker()
    s = h.connect(b, "k41-s", keepalive=10)
    s.subscribe([("k41/t", 2)])
    c = h.connect(b, "k41", keepalive=10)
    c.send(publish("k41/t", "once", qos=2, mid=8))
    c.expect_packet(pubrec(8))
    sleep(0.6)
    c.send(publish("k41/t", "once", qos=2, mid=8, dup=True))
    c.expect_packet(pubrec(8))
    c.send(pubrel(8))
    c.expect_packet(pubcomp(8))
    d = s.expect_publish("k41/t", "once", qos=2, ack=False)
    sleep(0.6)
    s.send(pubrec(d["mid"]))
    s.expect_packet(pubrel(d["mid"]))
    s.send(pubcomp(d["mid"]))
    c.publish("k41/t", "later", qos=1)
    s.expect_publish("k41/t", "later", qos=1)
    s.expect_no_packet(0.2)


def test_ordered_by_default_v311_MQTT_4_6_0_5_MQTT_4_6_0_6(h):
    # v311 MQTT-4.6.0-5: with the default configuration every topic is Ordered; v311
    # MQTT-4.6.0-6: one publisher's messages, interleaved over two topics at QoS 1 and 2 in one
    # segment, reach the subscriber in the order received for each topic and QoS; the Server
    # acknowledges them in order and sends its PUBRELs in the order of the PUBRECs it got.
    b = h.broker()
    s = h.connect(b, "ob-s")
    s.subscribe([("ob/#", 2)])
    c = h.connect(b, "ob-p")
    # 16 messages: below the Server's default in-flight window (20) towards the subscriber.
    plan = [("ob/%s" % "ab"[i % 2], 1 + (i // 2) % 2, i) for i in range(16)]
    c.send(b"".join(publish(t, str(i), qos=q, mid=i + 1) for t, q, i in plan))
    for t, q, i in plan:
        c.expect_packet((puback if q == 1 else pubrec)(i + 1))
    c.send(b"".join(pubrel(i + 1) for t, q, i in plan if q == 2))
    for t, q, i in plan:
        if q == 2:
            c.expect_packet(pubcomp(i + 1))
    got = []
    for _ in plan:
        d = s.expect_type(PUBLISH)
        got.append((d["topic"], d["qos"], int(d["payload"]), d["mid"]))
    for key in sorted({(t, q) for t, q, _ in plan}):
        want = [i for t, q, i in plan if (t, q) == key]
        have = [i for t, q, i, _ in got if (t, q) == key]
        check_eq(have, want, "order of %s QoS %d" % key)
    s.send(b"".join(puback(m) for t, q, i, m in got if q == 1))
    recs = [m for t, q, i, m in got if q == 2]
    s.send(b"".join(pubrec(m) for m in recs))
    for m in recs:
        s.await_packet(pubrel(m))
    s.send(b"".join(pubcomp(m) for m in recs))
    s.expect_no_packet(0.2)


def test_byte_stream_transport_v311_MQTT_7_1_1_1(h):
    # v311 MQTT-7.1.1-1: the Server runs over an ordered, lossless, two-way byte stream (TCP)
    # whose segments do not align with packets: CONNECT one byte per segment, then SUBSCRIBE +
    # PUBLISH + PINGREQ split at arbitrary points, all answered in order.
    b = h.broker()
    c = h.client(b)
    for byte in connect("bs"):
        c.send(bytes([byte]))
        sleep(0.002)
    c.expect_packet(connack(0))
    data = subscribe(1, [("bs/t", 1)]) + publish("bs/t", "y" * 300, qos=1, mid=2) + pingreq()
    for cut in (1, 2, 9, 50, 200):
        c.send(data[:cut])
        data = data[cut:]
        sleep(0.01)
    c.send(data)
    c.expect_packet(suback(1, [1]))
    pk = [c.recv("PUBACK / PUBLISH / PINGRESP") for _ in range(3)]
    check(puback(2) in pk and pingresp() in pk, "got %r" % [x.hex() for x in pk])
    check(pk.index(puback(2)) < pk.index(pingresp()), "PINGRESP before PUBACK")
    pub = parse([x for x in pk if parse(x)["type"] == PUBLISH][0])
    check_eq((pub["topic"], pub["payload"], pub["qos"]), ("bs/t", b"y" * 300, 1), "own message")
    c.send(puback(pub["mid"]))
    c.expect_no_packet(0.1)
