"""SUBSCRIBE / UNSUBSCRIBE / routing: QoS downgrade, wildcards, $-topics, overlapping
subscriptions, subscribe replaces, SUBACK / UNSUBACK codes.
"""
from mqtt_test import (subscribe, suback, unsubscribe, unsuback, publish, check, check_eq, parse,
                       PUBLISH, SUBACK, sleep, mosquitto_differs)


def _qos_matrix(h, proto):
    b = h.broker()
    subs = []
    for q in range(3):
        s = h.connect(b, "s%d" % q, proto=proto)
        s.subscribe([("m/t", q)])
        subs.append(s)
    p = h.connect(b, "pub", proto=proto)
    for pq in range(3):
        p.publish("m/t", "pq%d" % pq, qos=pq)
        for sq, s in enumerate(subs):
            s.expect_publish("m/t", "pq%d" % pq, qos=min(pq, sq))
    for s in subs:
        s.expect_no_packet(0.1)


def test_qos_downgrade_v311_MQTT_3_8_4_6(h):
    # v311 MQTT-3.8.4-6: delivered QoS = min(published QoS, granted QoS); flows complete both ways
    # (v311 MQTT-3.3.4-1, v311 MQTT-4.3.2-1, v311 MQTT-4.3.3-1).
    _qos_matrix(h, 4)


def test_qos_downgrade_v5_MQTT_3_8_4_8(h):
    # v5 MQTT-3.8.4-8: delivered QoS = min(published QoS, granted QoS).
    _qos_matrix(h, 5)


def test_qos_downgrade_v31(h):
    # MQTT 3.1 clients get the same routing and QoS handling.
    _qos_matrix(h, 3)


def test_cross_version_delivery(h):
    # A v5 publisher's message reaches v3.1, v3.1.1 and v5 subscribers, each in its own encoding.
    b = h.broker()
    subs = [h.connect(b, "x%d" % v, proto=v) for v in (3, 4, 5)]
    for s in subs:
        s.subscribe([("x/y", 1)])
    p = h.connect(b, "px", proto=5)
    p.publish("x/y", "hello", qos=1)
    for s in subs:
        s.expect_publish("x/y", "hello", qos=1)


WILDCARD_TOPICS = ["a", "a/b", "a/b/c", "/a", "a/", "a//c", "b/b", "$x/b", "A/b"]
WILDCARD_TABLE = {
    "#": ["a", "a/b", "a/b/c", "/a", "a/", "a//c", "b/b", "A/b"],
    "a/#": ["a", "a/b", "a/b/c", "a/", "a//c"],
    "a/+": ["a/b", "a/"],
    "+/b": ["a/b", "b/b", "A/b"],
    "+/+": ["a/b", "/a", "a/", "b/b", "A/b"],
    "a/+/c": ["a/b/c", "a//c"],
    "+": ["a"],
    "/+": ["/a"],
    "+/#": ["a", "a/b", "a/b/c", "/a", "a/", "a//c", "b/b", "A/b"],
    "+/+/+": ["a/b/c", "a//c"],
    "$x/#": ["$x/b"],
    "$x/+": ["$x/b"],
    "a/b": ["a/b"],
    "a//c": ["a//c"],
}


def _wildcards(h, proto):
    b = h.broker()
    subs = {}
    for i, f in enumerate(WILDCARD_TABLE):
        s = h.connect(b, "w%d" % i, proto=proto)
        s.subscribe(f)
        subs[f] = s
    p = h.connect(b, "wp", proto=proto)
    for t in WILDCARD_TOPICS:
        p.publish(t, t)
    for f, s in subs.items():
        for t in WILDCARD_TABLE[f]:
            got = s.expect_publish(t, t)
            check(got["topic"] == t, "filter %r" % f)
    sleep(0.2)
    for f, s in subs.items():
        s.name = "subscriber of %r" % f
        s.expect_no_packet(0.02)


def test_wildcards_v311_MQTT_4_7_1_2_MQTT_4_7_1_3(h):
    # v311 MQTT-4.7.1-2 ('#' incl. parent level), MQTT-4.7.1-3 ('+' one whole level, may be
    # empty), v311 MQTT-4.7.2-1 ($-topics not matched by leading wildcards), v311 MQTT-4.7.3-4 (no
    # normalisation, case-sensitive), v311 MQTT-3.3.2-3 (topic name as published).
    _wildcards(h, 4)


def test_wildcards_v5_MQTT_4_7_1_1_v5_MQTT_4_7_1_2(h):
    # v5 MQTT-4.7.1-1, v5 MQTT-4.7.1-2, v5 MQTT-4.7.2-1, v5 MQTT-4.7.3-4.
    _wildcards(h, 5)


def test_dollar_topics_not_matched_v311_MQTT_4_7_2_1(h):
    # v311 MQTT-4.7.2-1: '#' and '+/...' filters never match topics starting with '$'.
    b = h.broker()
    s = h.connect(b, "ds")
    s.subscribe([("#", 0), ("+/status", 0), ("+/+", 0)])
    d = h.connect(b, "dd")
    d.subscribe("$app/status")
    p = h.connect(b, "dp")
    p.publish("$app/status", "x")
    d.expect_publish("$app/status", "x")
    s.expect_no_packet(0.3)


@mosquitto_differs("mosquitto 2.0.11 sends one copy at the QoS of one matching subscription "
                   "(here 1), not the highest granted QoS (2)")
def test_overlapping_subscriptions_v311_MQTT_3_3_5_1(h):
    # v311 MQTT-3.3.5-1: overlapping subscriptions: the message is delivered respecting the
    # highest granted QoS (extra copies allowed, one per extra matching subscription).
    b = h.broker()
    s = h.connect(b, "ov")
    s.subscribe([("o/#", 0), ("o/+", 2), ("o/t", 1)])
    p = h.connect(b, "op")
    p.publish("o/t", "m", qos=2)
    qoses = []
    for _ in range(3):
        try:
            pk = s.recv_packet(0.5)
        except Exception:  # noqa: BLE001 - timeout ends the collection
            break
        d = parse(pk)
        if d["type"] != PUBLISH:
            continue
        check_eq((d["topic"], d["payload"]), ("o/t", b"m"), "copy")
        qoses.append(d["qos"])
        if d["qos"] == 2:
            s.send(bytes([0x50, 2]) + d["mid"].to_bytes(2, "big"))
            s.recv("PUBREL")
            s.send(bytes([0x70, 2]) + d["mid"].to_bytes(2, "big"))
        elif d["qos"] == 1:
            s.send(bytes([0x40, 2]) + d["mid"].to_bytes(2, "big"))
    check(qoses and max(qoses) == 2, "copies had QoS %r, want one at QoS 2" % qoses)
    check(len(qoses) <= 3, "more copies than matching subscriptions: %r" % qoses)


def test_overlapping_subscriptions_v5_MQTT_3_3_4_2(h):
    # v5 MQTT-3.3.4-2: overlapping subscriptions: delivered respecting the highest QoS.
    b = h.broker()
    s = h.connect(b, "ov5", proto=5)
    s.subscribe([("o/#", 1), ("o/t", 0)])
    p = h.connect(b, "op5", proto=5)
    p.publish("o/t", "m", qos=1)
    qoses = []
    for _ in range(2):
        try:
            pk = s.recv_packet(0.5)
        except Exception:  # noqa: BLE001
            break
        d = parse(pk, 5)
        check_eq((d["type"], d["topic"], d["payload"]), (PUBLISH, "o/t", b"m"), "copy")
        qoses.append(d["qos"])
        if d["qos"]:
            s.send(bytes([0x40, 2]) + d["mid"].to_bytes(2, "big"))
    check(qoses and max(qoses) == 1, "copies had QoS %r, want one at QoS 1" % qoses)


def test_subscribe_replaces_v311_MQTT_3_8_4_3(h):
    # v311 MQTT-3.8.4-3: subscribing again to the same filter replaces the subscription (new QoS,
    # one copy only).
    b = h.broker()
    s = h.connect(b, "rs")
    s.subscribe([("r/t", 0)])
    s.subscribe([("r/t", 1)])
    p = h.connect(b, "rp")
    p.publish("r/t", "x", qos=1)
    s.expect_publish("r/t", "x", qos=1)
    s.expect_no_packet(0.3)


def test_subscribe_replaces_v5_MQTT_3_8_4_3(h):
    # v5 MQTT-3.8.4-3: same filter replaces (downgrade to QoS 0 takes effect, one copy).
    b = h.broker()
    s = h.connect(b, "rs5", proto=5)
    s.subscribe([("r/t", 2)])
    s.subscribe([("r/t", 0)])
    p = h.connect(b, "rp5", proto=5)
    p.publish("r/t", "x", qos=2)
    s.expect_publish("r/t", "x", qos=0)
    s.expect_no_packet(0.3)


def test_suback_multiple_codes_v311_MQTT_3_8_4_5_v311_MQTT_3_9_3_1(h):
    # v311 MQTT-3.8.4-4/-5, v311 MQTT-3.9.3-1: one SUBACK, codes in filter order; v311 MQTT-3.8.4-2
    # and v311 MQTT-2.3.1-7 same id; v311 MQTT-3.8.4-1 a SUBACK for each SUBSCRIBE.
    b = h.broker()
    c = h.connect(b, "sm")
    c.send(subscribe(0x1234, [("a", 2), ("b", 0), ("c/#", 1)]))
    c.expect_packet(suback(0x1234, [2, 0, 1]))


def test_suback_multiple_codes_v5_MQTT_3_9_3_1(h):
    # v5 MQTT-3.8.4-5/-6, v5 MQTT-3.9.3-1, v5 MQTT-3.9.3-2 (a defined reason code per filter), v5 MQTT-3.8.4-2, v5 MQTT-2.2.1-6, v5 MQTT-3.8.4-1;
    # v5 MQTT-2.2.2-1 (property length 0 present).
    b = h.broker()
    c = h.connect(b, "sm5", proto=5)
    c.send(subscribe(0xFFFF, [("a", 1), ("b", 2), ("c/#", 0)], proto=5))
    c.expect_packet(suback(0xFFFF, [1, 2, 0], proto=5))


def test_invalid_filter_v311_MQTT_4_7_1_2(h):
    # v311 MQTT-4.7.1-2: 'a/#/b' is not a valid filter: the Server refuses it, either with SUBACK
    # 0x80 for that filter (v311 MQTT-3.9.3-2) or by closing the connection; never grants it.
    b = h.broker()
    for i, bad in enumerate(["a/#/b", "a#", "a/b+", "+a/b"]):
        c = h.connect(b, "if%d" % i)
        c.send(subscribe(7, [(bad, 1)]))
        try:
            got = c.recv_packet(2.0)
        except Exception:  # noqa: BLE001 - closed: acceptable
            continue
        check_eq(got, suback(7, [0x80]), "SUBACK for invalid filter %r" % bad)


def test_invalid_filter_v5_MQTT_4_7_1_1(h):
    # v5 MQTT-4.7.1-1/-2: invalid filter: SUBACK 0x8F (Topic Filter invalid) or 0x80, or
    # DISCONNECT 0x8F/0x81/0x82 / close; never granted.
    b = h.broker()
    for i, bad in enumerate(["a/#/b", "a#", "a/b+"]):
        c = h.connect(b, "if5%d" % i, proto=5)
        c.send(subscribe(7, [(bad, 1)], proto=5))
        try:
            got = c.recv_packet(2.0)
        except Exception:  # noqa: BLE001
            continue
        d = parse(got, 5)
        if d["type"] == SUBACK:
            check(d["codes"] in ([0x8F], [0x80]), "SUBACK for %r: %r" % (bad, d))
        else:
            check(d["type"] == 14 and d["rc"] in (0x81, 0x82, 0x8F), "for %r: %r" % (bad, d))
            c.expect_closed()


def test_unsubscribe_v311_MQTT_3_10_4_2(h):
    # v311 MQTT-3.10.4-2, v311 MQTT-3.10.4-4: UNSUBACK with the same id; no more messages for
    # that filter.
    b = h.broker()
    s = h.connect(b, "us")
    s.subscribe([("u/t", 1)])
    p = h.connect(b, "up")
    p.publish("u/t", "1", qos=1)
    s.expect_publish("u/t", "1", qos=1)
    s.send(unsubscribe(0x0203, "u/t"))
    s.expect_packet(unsuback(0x0203))
    p.publish("u/t", "2", qos=1)
    s.expect_no_packet(0.3)


def test_unsubscribe_nonexistent_v311_MQTT_3_10_4_5(h):
    # v311 MQTT-3.10.4-5: UNSUBACK even when nothing was removed.
    b = h.broker()
    c = h.connect(b, "un")
    c.send(unsubscribe(9, "never/subscribed"))
    c.expect_packet(unsuback(9))


def test_unsubscribe_exact_match_v311_MQTT_3_10_4_1(h):
    # v311 MQTT-3.10.4-1: filters are compared character by character: unsubscribing 'e/b'
    # does not remove 'e/+'.
    b = h.broker()
    s = h.connect(b, "ue")
    s.subscribe("e/+")
    s.unsubscribe("e/b")
    p = h.connect(b, "uep")
    p.publish("e/b", "x")
    s.expect_publish("e/b", "x")


def test_unsubscribe_multi_v5_MQTT_3_11_3_1(h):
    # v5 MQTT-3.10.4-6, MQTT-3.11.3-1/-2: one UNSUBACK, a code per filter in order:
    # 0x00 removed, 0x11 no subscription existed.
    b = h.broker()
    c = h.connect(b, "um5", proto=5)
    c.subscribe([("k/1", 0), ("k/3", 0)])
    c.send(unsubscribe(5, ["k/1", "k/2", "k/3"], proto=5))
    c.expect_packet(unsuback(5, [0x00, 0x11, 0x00], proto=5))
    p = h.connect(b, "um5p", proto=5)
    p.publish("k/1", "x")
    p.publish("k/3", "x")
    c.expect_no_packet(0.3)


def test_unsubscribe_multi_v311_MQTT_3_10_4_6(h):
    # v311 MQTT-3.10.4-6: multi-filter UNSUBSCRIBE answered by one UNSUBACK.
    b = h.broker()
    c = h.connect(b, "um")
    c.subscribe([("k/1", 0), ("k/2", 0)])
    c.send(unsubscribe(6, ["k/1", "k/2"]))
    c.expect_packet(unsuback(6))
    p = h.connect(b, "ump")
    p.publish("k/1", "x")
    p.publish("k/2", "x")
    c.expect_no_packet(0.3)


def test_fanout_v311_MQTT_4_5_0_1(h):
    # v311 MQTT-4.5.0-1: the message goes to every matching subscriber's session.
    b = h.broker()
    subs = [h.connect(b, "f%d" % i) for i in range(10)]
    for s in subs:
        s.subscribe([("f/#", 1)])
    p = h.connect(b, "fp")
    p.publish("f/x", "fan", qos=1)
    for s in subs:
        s.expect_publish("f/x", "fan", qos=1)


def test_order_preserved_v311_MQTT_4_6_0_6(h):
    # v311 MQTT-4.6.0-6 / v5 MQTT-4.6.0-5: messages of one publisher on one topic at one QoS
    # are forwarded in the order received.
    b = h.broker()
    s = h.connect(b, "os")
    s.subscribe([("ord", 1)])
    p = h.connect(b, "op")
    for i in range(30):
        p.publish("ord", str(i), qos=1)
    for i in range(30):
        s.expect_publish("ord", str(i), qos=1)


def test_order_preserved_qos0_v5_MQTT_4_6_0_5(h):
    # v5 MQTT-4.6.0-5: QoS 0 sent back to back in one segment arrive in order.
    b = h.broker()
    s = h.connect(b, "os5", proto=5)
    s.subscribe("ord0")
    p = h.connect(b, "op5", proto=5)
    p.send(b"".join(publish("ord0", str(i), proto=5) for i in range(100)))
    for i in range(100):
        s.expect_publish("ord0", str(i))


def test_own_messages_delivered_v311(h):
    # v311 has no No Local: a client subscribed to its own topic receives its own publish.
    b = h.broker()
    c = h.connect(b, "self")
    c.subscribe("self/t")
    c.publish("self/t", "echo")
    c.expect_publish("self/t", "echo")


def test_large_payload(h):
    # v311 MQTT-4.7.3-3 region / remaining length encodings: a 300 kB payload (3-byte remaining
    # length) passes through unchanged.
    b = h.broker()
    s = h.connect(b, "ls")
    s.subscribe([("big", 1)])
    p = h.connect(b, "lp")
    payload = bytes(i % 251 for i in range(300000))
    p.publish("big", payload, qos=1)
    s.expect_publish("big", payload, qos=1)


def test_empty_payload_delivered(h):
    # A zero-length payload is a valid message.
    b = h.broker()
    s = h.connect(b, "es")
    s.subscribe("e")
    p = h.connect(b, "ep")
    p.publish("e", b"")
    s.expect_publish("e", b"")


def test_utf8_topic_passthrough_v311_MQTT_1_5_3_3(h):
    # v311 MQTT-1.5.3-3: a BOM (EF BB BF) in a topic is kept, not stripped; v311 MQTT-4.7.3-4 exact.
    b = h.broker()
    s = h.connect(b, "bs")
    s.subscribe("\ufeffbom/\u00e9")
    p = h.connect(b, "bp")
    p.publish("\ufeffbom/\u00e9", "x")
    p.publish("bom/\u00e9", "y")
    s.expect_publish("\ufeffbom/\u00e9", "x")
    s.expect_no_packet(0.3)


def test_utf8_bom_kept_v5_MQTT_1_5_4_3(h):
    # v5 MQTT-1.5.4-3: EF BB BF in a topic is U+FEFF and is kept (not stripped) when matching.
    b = h.broker()
    s = h.connect(b, "bs5", proto=5)
    s.subscribe("\ufeffb5")
    p = h.connect(b, "bp5", proto=5)
    p.publish("b5", "plain")
    p.publish("\ufeffb5", "bom")
    s.expect_publish("\ufeffb5", "bom")
    s.expect_no_packet(0.2)
