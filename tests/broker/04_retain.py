"""Retained messages: set, replace, clear, RETAIN flag at subscribe time vs live, QoS of retained
messages, retain_available false.
"""
from mqtt_test import (connect, connack, publish, disconnect, check_eq, RETAIN_AVAILABLE,
                       TOPIC_ALIAS_MAXIMUM, RECEIVE_MAXIMUM, sleep)


def test_retained_set_v311_MQTT_3_3_1_5_v311_MQTT_3_3_1_8(h):
    # v311 MQTT-3.3.1-5 (stored), v311 MQTT-3.3.1-6 (sent to new subscription), v311 MQTT-3.3.1-8 (RETAIN 1).
    b = h.broker()
    p = h.connect(b, "rp")
    p.publish("ret/a", "hello", qos=1, retain=True)
    s = h.connect(b, "rs")
    s.subscribe([("ret/a", 1)])
    s.expect_publish("ret/a", "hello", qos=1, retain=True)


def test_retained_live_flag_cleared_v311_MQTT_3_3_1_9(h):
    # v311 MQTT-3.3.1-9: to existing subscriptions the message goes with RETAIN 0.
    b = h.broker()
    s = h.connect(b, "rs")
    s.subscribe("ret/live")
    p = h.connect(b, "rp")
    p.publish("ret/live", "x", retain=True)
    s.expect_publish("ret/live", "x", retain=False)


def test_retained_live_flag_cleared_v5_MQTT_3_3_1_12(h):
    # v5 MQTT-3.3.1-12: Retain As Published 0 -> forwarded with RETAIN 0.
    b = h.broker()
    s = h.connect(b, "rs5", proto=5)
    s.subscribe("ret/live")
    p = h.connect(b, "rp5", proto=5)
    p.publish("ret/live", "x", retain=True)
    s.expect_publish("ret/live", "x", retain=False)


def test_retained_replace_v311_MQTT_3_3_1_7(h):
    # v311 MQTT-3.3.1-7 / v5 MQTT-3.3.1-5: a new retained message replaces the old one (a QoS 0
    # retained discards the previous).
    b = h.broker()
    p = h.connect(b, "rp")
    p.publish("ret/r", "one", qos=1, retain=True)
    p.publish("ret/r", "two", qos=0, retain=True)
    s = h.connect(b, "rs")
    s.subscribe([("ret/r", 1)])
    s.expect_publish("ret/r", "two", qos=0, retain=True)
    s.expect_no_packet(0.3)


def test_retained_clear_v311_MQTT_3_3_1_10_v311_MQTT_3_3_1_11(h):
    # v311 MQTT-3.3.1-10: empty retained payload is forwarded (live) and clears; v311 MQTT-3.3.1-11:
    # it is not stored.
    b = h.broker()
    live = h.connect(b, "rl")
    live.subscribe("ret/c")
    p = h.connect(b, "rp")
    p.publish("ret/c", "x", retain=True)
    live.expect_publish("ret/c", "x")
    p.publish("ret/c", b"", retain=True)
    live.expect_publish("ret/c", b"")
    s = h.connect(b, "rs")
    s.subscribe("ret/c")
    s.expect_no_packet(0.4)


def test_retained_clear_v5_MQTT_3_3_1_6_v5_MQTT_3_3_1_7(h):
    # v5 MQTT-3.3.1-6, v5 MQTT-3.3.1-7.
    b = h.broker()
    p = h.connect(b, "rp5", proto=5)
    p.publish("ret/c", "x", retain=True)
    p.publish("ret/c", b"", retain=True)
    s = h.connect(b, "rs5", proto=5)
    s.subscribe("ret/c")
    s.expect_no_packet(0.4)


def test_non_retained_leaves_retained_v311_MQTT_3_3_1_12(h):
    # v311 MQTT-3.3.1-12 / v5 MQTT-3.3.1-8: RETAIN 0 publish does not touch the retained message.
    b = h.broker()
    p = h.connect(b, "rp")
    p.publish("ret/n", "kept", retain=True)
    p.publish("ret/n", "transient")
    p.publish("ret/n", b"")
    s = h.connect(b, "rs")
    s.subscribe("ret/n")
    s.expect_publish("ret/n", "kept", retain=True)


def test_retained_qos_downgrade_v311_MQTT_3_8_4_6(h):
    # v311 MQTT-3.3.1-5 (QoS stored) and v311 MQTT-3.8.4-6: retained QoS 2 message to a QoS 1
    # subscriber arrives at QoS 1, to a QoS 2 subscriber at QoS 2.
    b = h.broker()
    p = h.connect(b, "rp")
    p.publish("ret/q", "q2", qos=2, retain=True)
    s1 = h.connect(b, "r1")
    s1.subscribe([("ret/q", 1)])
    s1.expect_publish("ret/q", "q2", qos=1, retain=True)
    s2 = h.connect(b, "r2")
    s2.subscribe([("ret/q", 2)])
    s2.expect_publish("ret/q", "q2", qos=2, retain=True)


def test_retained_wildcard_many(h):
    # v311 MQTT-3.3.1-6: a wildcard subscription gets the retained message of each matching topic.
    b = h.broker()
    p = h.connect(b, "rp")
    topics = ["w/%d" % i for i in range(5)]
    for t in topics:
        p.publish(t, t, retain=True)
    p.publish("other", "o", retain=True)
    s = h.connect(b, "rs")
    s.subscribe("w/+")
    got = set()
    for _ in topics:
        d = s.recv("retained PUBLISH")
        got.add(d)
    check_eq(got, {publish(t, t, retain=True) for t in topics}, "retained set")
    s.expect_no_packet(0.3)


def test_retained_outlives_session_v311_MQTT_3_1_2_7(h):
    # v311 MQTT-3.1.2-7: retained messages are not session state; they survive the publisher's
    # clean session ending.
    b = h.broker()
    p = h.connect(b, "rp", clean=True)
    p.publish("ret/s", "stays", retain=True)
    p.disconnect()
    sleep(0.1)
    s = h.connect(b, "rs")
    s.subscribe("ret/s")
    s.expect_publish("ret/s", "stays", retain=True)


def test_resubscribe_resends_retained_v311_MQTT_3_8_4_3(h):
    # v311 MQTT-3.8.4-3 / v5 MQTT-3.8.4-4: re-subscribing resends the retained messages.
    b = h.broker()
    p = h.connect(b, "rp")
    p.publish("ret/re", "r", retain=True)
    s = h.connect(b, "rs")
    s.subscribe("ret/re")
    s.expect_publish("ret/re", "r", retain=True)
    s.subscribe("ret/re")
    s.expect_publish("ret/re", "r", retain=True)


def test_retained_dollar_not_on_hash_v311_MQTT_4_7_2_1(h):
    # v311 MQTT-4.7.2-1: a retained $-topic message is not sent to a '#' subscription.
    b = h.broker()
    p = h.connect(b, "rp")
    p.publish("$app/r", "d", retain=True)
    p.publish("app/r", "a", retain=True)
    s = h.connect(b, "rs")
    s.subscribe("#")
    s.expect_publish("app/r", "a", retain=True)
    s.expect_no_packet(0.3)


def test_retain_unavailable_connack_v5(h):
    # v5 3.2.2.3.5: retain_available false -> CONNACK carries Retain Available 0 (mosquitto's order).
    b = h.broker("retain_available false\n")
    c = h.client(b, proto=5)
    c.send(connect("ru", proto=5))
    c.expect_packet(connack(0, proto=5, properties=[(TOPIC_ALIAS_MAXIMUM, 10),
                                                    (RETAIN_AVAILABLE, 0),
                                                    (RECEIVE_MAXIMUM, 20)]))


def test_retain_unavailable_publish_v5_0x9A(h):
    # v5 3.3.1.3 / MQTT-3.2.2-14: a retained PUBLISH when retain is unavailable is a Protocol
    # Error: DISCONNECT 0x9A (Retain not supported), close; not delivered.
    b = h.broker("retain_available false\n")
    s = h.connect(b, "rus", proto=5)
    s.subscribe("ru/t")
    c = h.connect(b, "ru", proto=5)
    c.send(publish("ru/t", "x", retain=True, proto=5))
    c.expect_packet(disconnect(0x9A, proto=5))
    c.expect_closed()
    s.expect_no_packet(0.3)


def test_retain_unavailable_will_retain_v5_MQTT_3_2_2_13(h):
    # v5 MQTT-3.2.2-13: Will Retain 1 without retain support -> CONNACK 0x9A and close.
    b = h.broker("retain_available false\n")
    c = h.client(b, proto=5)
    c.send(connect("wr", proto=5, will={"topic": "w", "payload": b"x", "retain": True}))
    c.expect_packet(connack(0x9A, proto=5))
    c.expect_closed()
