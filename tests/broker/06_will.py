"""Will messages: on EOF, on RST, on protocol error, not after DISCONNECT, after v5 DISCONNECT 0x04,
will retain, will QoS, v5 will delay (incl. cancel on reconnect, bounded by session expiry), will
properties forwarded.
"""
import time

from mqtt_test import (connect, check, fail, PAYLOAD_FORMAT, MESSAGE_EXPIRY, CONTENT_TYPE,
                       RESPONSE_TOPIC, CORRELATION_DATA, USER_PROPERTY, WILL_DELAY, SESSION_EXPIRY,
                       timeout, sleep, mosquitto_differs)


def _will(topic="will/t", payload=b"gone", qos=0, retain=False, properties=None):
    return {"topic": topic, "payload": payload, "qos": qos, "retain": retain,
            "properties": properties}


def test_will_on_eof_v311_MQTT_3_1_2_8(h):
    # v311 MQTT-3.1.2-8: the Will is published when the connection closes without DISCONNECT;
    # v311 MQTT-3.1.2-12: a client without a Will publishes nothing.
    b = h.broker()
    s = h.connect(b, "ws")
    s.subscribe("will/#")
    nowill = h.connect(b, "nw")
    nowill.close()
    w = h.connect(b, "wc", will=_will())
    w.close()
    s.expect_publish("will/t", "gone")
    s.expect_no_packet(0.3)


def test_will_on_rst_v311_MQTT_3_1_2_8(h):
    # v311 MQTT-3.1.2-8: an abortive close (RST) also publishes the Will.
    b = h.broker()
    s = h.connect(b, "ws")
    s.subscribe("will/t")
    w = h.connect(b, "wr", will=_will(payload=b"reset"))
    w.reset()
    s.expect_publish("will/t", "reset")


def test_will_on_eof_v5_MQTT_3_1_2_8(h):
    # v5 MQTT-3.1.2-7 (Will stored with the session), v5 MQTT-3.1.2-8: close without DISCONNECT,
    # Will Delay 0 -> Will published at once.
    b = h.broker()
    s = h.connect(b, "ws5", proto=5)
    s.subscribe("will/t")
    w = h.connect(b, "wc5", proto=5, will=_will())
    w.close()
    s.expect_publish("will/t", "gone")


def test_will_on_protocol_error_v311(h):
    # v311 3.1.2.5: the Server closing the connection because of a protocol error publishes the
    # Will (here: a PUBLISH with QoS 3, v311 MQTT-3.3.1-4).
    b = h.broker()
    s = h.connect(b, "ws")
    s.subscribe("will/t")
    w = h.connect(b, "wp", will=_will(payload=b"proto"))
    w.send(bytes([0x36, 0x04, 0x00, 0x01, 0x61, 0x62]))
    w.expect_closed()
    s.expect_publish("will/t", "proto")


def test_no_will_after_disconnect_v311_MQTT_3_14_4_3(h):
    # v311 MQTT-3.14.4-3, v311 MQTT-3.1.2-10: DISCONNECT discards the Will.
    b = h.broker()
    s = h.connect(b, "ws")
    s.subscribe("will/t")
    w = h.connect(b, "wd", will=_will())
    w.disconnect()
    s.expect_no_packet(0.5)


def test_no_will_after_disconnect_v5_MQTT_3_14_4_3(h):
    # v5 MQTT-3.14.4-3, v5 MQTT-3.1.2-10: DISCONNECT with reason 0x00 discards the Will.
    b = h.broker()
    s = h.connect(b, "ws5", proto=5)
    s.subscribe("will/t")
    w = h.connect(b, "wd5", proto=5, will=_will())
    w.disconnect(rc=0)
    s.expect_no_packet(0.5)


def test_will_after_disconnect_0x04_v5_MQTT_3_1_2_8(h):
    # v5 MQTT-3.1.2-8 / 3.14.2.1: DISCONNECT 0x04 (Disconnect with Will Message) publishes it.
    b = h.broker()
    s = h.connect(b, "ws5", proto=5)
    s.subscribe("will/t")
    w = h.connect(b, "w04", proto=5, will=_will(payload=b"asked"))
    w.disconnect(rc=0x04)
    s.expect_publish("will/t", "asked")


def test_will_retain_v311_MQTT_3_1_2_17(h):
    # v311 MQTT-3.1.2-17: Will Retain 1 -> published as retained (a later subscriber gets it with
    # RETAIN 1); v311 MQTT-3.1.2-16: the live subscriber sees RETAIN 0 (v311 MQTT-3.3.1-9).
    b = h.broker()
    live = h.connect(b, "wl")
    live.subscribe("will/r")
    w = h.connect(b, "wrt", will=_will(topic="will/r", payload=b"kept", retain=True))
    w.close()
    live.expect_publish("will/r", "kept", retain=False)
    s = h.connect(b, "wlate")
    s.subscribe("will/r")
    s.expect_publish("will/r", "kept", retain=True)


def test_will_not_retained_v5_MQTT_3_1_2_14(h):
    # v5 MQTT-3.1.2-14: Will Retain 0 -> not stored as retained.
    b = h.broker()
    w = h.connect(b, "wnr", proto=5, will=_will(topic="will/nr", payload=b"x"))
    w.close()
    sleep(0.3)
    s = h.connect(b, "wlate", proto=5)
    s.subscribe("will/nr")
    s.expect_no_packet(0.3)


def test_will_qos_v311(h):
    # v311 3.1.2.6 + v311 MQTT-3.8.4-6: a QoS 1 Will reaches a QoS 2 subscriber at QoS 1 and a QoS 0
    # subscriber at QoS 0.
    b = h.broker()
    s2 = h.connect(b, "wq2")
    s2.subscribe([("will/q", 2)])
    s0 = h.connect(b, "wq0")
    s0.subscribe([("will/q", 0)])
    w = h.connect(b, "wq", will=_will(topic="will/q", qos=1))
    w.close()
    s2.expect_publish("will/q", "gone", qos=1)
    s0.expect_publish("will/q", "gone", qos=0)


def test_will_qos2_v5(h):
    # v5 MQTT-3.1.2-12: Will QoS 2 accepted and delivered at QoS 2.
    b = h.broker()
    s = h.connect(b, "wq5", proto=5)
    s.subscribe([("will/q", 2)])
    w = h.connect(b, "wq5c", proto=5, will=_will(topic="will/q", qos=2))
    w.reset()
    s.expect_publish("will/q", "gone", qos=2)


def test_will_properties_forwarded_v5_MQTT_3_1_3_10(h):
    # v5 MQTT-3.1.3-10: Will user properties keep their order; the other Will properties are
    # forwarded unchanged (MQTT-3.3.2-4, -15, -16, -20). Message Expiry is forwarded (reduced by
    # the time waited, here ~0 s).
    b = h.broker()
    s = h.connect(b, "wpf", proto=5)
    s.subscribe("will/p")
    props = [(PAYLOAD_FORMAT, 1), (CONTENT_TYPE, "text/plain"), (RESPONSE_TOPIC, "reply/here"),
             (CORRELATION_DATA, b"\x00\x01corr"), (USER_PROPERTY, ("b", "2")),
             (USER_PROPERTY, ("a", "1")), (USER_PROPERTY, ("b", "3"))]
    w = h.connect(b, "wpc", proto=5, will=_will(topic="will/p", payload=b"props",
                                                properties=props))
    w.close()
    s.expect_publish("will/p", "props", properties=props)


def test_will_message_expiry_forwarded_v5_MQTT_3_3_2_6(h):
    # v5 MQTT-3.3.2-6: a Will with Message Expiry 100 is forwarded with 100 (or 99 after a tick).
    b = h.broker()
    s = h.connect(b, "wme", proto=5)
    s.subscribe("will/e")
    w = h.connect(b, "wmec", proto=5, will=_will(topic="will/e", properties=[(MESSAGE_EXPIRY,
                                                                                100)]))
    w.close()
    d = s.expect_type(3)
    exp = dict(d["properties"]).get(MESSAGE_EXPIRY)
    check(exp in (99, 100), "message expiry %r" % exp)


@timeout(12)
def test_will_delay_v5_MQTT_3_1_2_8(h):
    # v5 MQTT-3.1.2-8: with Will Delay 2 s the Will is published after the delay, not before.
    b = h.broker()
    s = h.connect(b, "wds", proto=5)
    s.subscribe("will/d")
    w = h.connect(b, "wdc", proto=5, properties=[(SESSION_EXPIRY, 30)],
                  will=_will(topic="will/d", properties=[(WILL_DELAY, 2)]))
    t0 = time.monotonic()
    w.close()
    s.expect_no_packet(1.7)
    s.expect_publish("will/d", "gone", timeout=3.0)
    dt = time.monotonic() - t0
    check(dt >= 1.9, "will after %.2f s, before the 2 s delay" % dt)


@timeout(12)
def test_will_delay_cancelled_by_reconnect_v5_MQTT_3_1_3_9(h):
    # v5 MQTT-3.1.3-9: reconnecting before the Will Delay ends prevents the Will.
    b = h.broker()
    s = h.connect(b, "wcs", proto=5)
    s.subscribe("will/c")
    props = [(SESSION_EXPIRY, 30)]
    w = h.connect(b, "wcc", proto=5, clean=False, properties=props,
                  will=_will(topic="will/c", properties=[(WILL_DELAY, 2)]))
    w.close()
    sleep(0.5)
    w2 = h.connect(b, "wcc", proto=5, clean=False, properties=props, session_present=True)
    s.expect_no_packet(3.0)
    w2.disconnect()


@timeout(12)
def test_will_delay_bounded_by_session_expiry_v5_MQTT_3_1_2_8(h):
    # v5 MQTT-3.1.2-8: the Will is sent when the Will Delay ends OR the Session ends, whichever
    # first: Will Delay 30 s with Session Expiry 1 s -> Will at about 1 s.
    b = h.broker()
    s = h.connect(b, "wbs", proto=5)
    s.subscribe("will/b")
    w = h.connect(b, "wbc", proto=5, properties=[(SESSION_EXPIRY, 1)],
                  will=_will(topic="will/b", properties=[(WILL_DELAY, 30)]))
    t0 = time.monotonic()
    w.close()
    s.expect_publish("will/b", "gone", timeout=4.0)
    dt = time.monotonic() - t0
    check(dt >= 0.9, "will after %.2f s, before session expiry" % dt)


@mosquitto_differs("mosquitto 2.0.11 waits for the full Will Delay although the session "
                   "(Session Expiry 0) ended at the close")
def test_will_delay_zero_session_expiry_immediate_v5(h):
    # v5 MQTT-3.1.2-8: Will Delay 5 s but Session Expiry 0: the session ends at close, so the Will
    # is published at once.
    b = h.broker()
    s = h.connect(b, "wzs", proto=5)
    s.subscribe("will/z")
    w = h.connect(b, "wzc", proto=5, will=_will(topic="will/z", properties=[(WILL_DELAY, 5)]))
    w.close()
    s.expect_publish("will/z", "gone", timeout=2.0)


def test_will_topic_wildcard_rejected_v311(h):
    # v311 MQTT-3.1.4-1 / v311 MQTT-4.7.1-1: a Will Topic with a wildcard makes the CONNECT invalid:
    # the connection is closed (a refusing CONNACK may come first) and no will is ever sent.
    b = h.broker()
    s = h.connect(b, "wws")
    s.subscribe("#")
    c = h.client(b)
    c.send(connect("wwc", will=_will(topic="will/+")))
    try:
        got = c.recv_packet(2.0)
        if got[0] != 0x20 or got[3] == 0:
            fail("got %s" % got.hex())
    except Exception as e:  # noqa: BLE001
        if "got" in str(e):
            raise
    c.expect_closed()
    s.expect_no_packet(0.3)


def test_will_retain_v5_MQTT_3_1_2_15(h):
    # v5 MQTT-3.1.2-15: Will Retain 1 -> published as a retained message.
    b = h.broker()
    w = h.connect(b, "wr5", proto=5, will=_will(topic="will/r5", payload=b"kept5", retain=True))
    w.reset()
    sleep(0.3)
    s = h.connect(b, "wr5s", proto=5)
    s.subscribe("will/r5")
    s.expect_publish("will/r5", "kept5", retain=True)
