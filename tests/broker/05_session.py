"""Sessions: clean session / clean start, session present, offline queueing of QoS 1/2, v5 session
expiry (incl. changed at DISCONNECT), max_queued_messages.
"""
from mqtt_test import (connect, connack, disconnect, SESSION_EXPIRY, NOSUB, sleep, timeout)


def test_session_present_v311_MQTT_3_2_2_2(h):
    # v311 MQTT-3.2.2-3 (no stored session -> SP 0), v311 MQTT-3.2.2-2 (stored session -> SP 1),
    # v311 MQTT-3.1.2-4 (session kept after disconnect).
    b = h.broker()
    c = h.client(b)
    c.send(connect("sp", clean=False))
    c.expect_packet(connack(0, session_present=False))
    c.disconnect()
    c2 = h.client(b)
    c2.send(connect("sp", clean=False))
    c2.expect_packet(connack(0, session_present=True))


def test_clean_session_discards_v311_MQTT_3_1_2_6(h):
    # v311 MQTT-3.1.2-6: CleanSession 1 discards the previous session (subscriptions gone; a later
    # CleanSession 0 connect finds no session); v311 MQTT-3.1.4-3: this CleanSession handling is
    # done for every valid CONNECT.
    b = h.broker()
    c = h.connect(b, "cd", clean=False)
    c.subscribe([("cd/t", 1)])
    c.disconnect()
    c2 = h.connect(b, "cd", clean=True)
    p = h.connect(b, "cdp")
    p.publish("cd/t", "x", qos=1)
    c2.expect_no_packet(0.3)
    c2.disconnect()
    c3 = h.client(b)
    c3.send(connect("cd", clean=False))
    c3.expect_packet(connack(0, session_present=False))


def test_subscriptions_persist_v311_MQTT_3_1_2_4(h):
    # v311 MQTT-3.1.2-4: a resumed session keeps its subscriptions.
    b = h.broker()
    c = h.connect(b, "ps", clean=False)
    c.subscribe([("ps/t", 1)])
    c.disconnect()
    c2 = h.connect(b, "ps", clean=False, session_present=True)
    p = h.connect(b, "psp")
    p.publish("ps/t", "still", qos=1)
    c2.expect_publish("ps/t", "still", qos=1)


def test_offline_queue_v311_MQTT_3_1_2_5(h):
    # v311 MQTT-3.1.2-5: QoS 1 and 2 messages for a disconnected CleanSession 0 client are queued
    # and delivered, in order, on reconnect.
    b = h.broker()
    c = h.connect(b, "oq", clean=False)
    c.subscribe([("oq/t", 2)])
    c.disconnect()
    sleep(0.1)
    p = h.connect(b, "oqp")
    p.publish("oq/t", "a", qos=1)
    p.publish("oq/t", "b", qos=2)
    p.publish("oq/t", "c", qos=1)
    c2 = h.connect(b, "oq", clean=False, session_present=True)
    c2.expect_publish("oq/t", "a", qos=1)
    c2.expect_publish("oq/t", "b", qos=2)
    c2.expect_publish("oq/t", "c", qos=1)
    c2.expect_no_packet(0.3)


def test_offline_queue_v5_MQTT_3_1_2_23(h):
    # v5 MQTT-3.1.2-23 (session kept while expiry > 0), v5 MQTT-3.1.2-5 (resumed), v5 MQTT-3.2.2-3 (SP 1).
    b = h.broker()
    props = [(SESSION_EXPIRY, 60)]
    c = h.connect(b, "oq5", proto=5, clean=False, properties=props)
    c.subscribe([("oq/t", 1)])
    c.disconnect()
    sleep(0.1)
    p = h.connect(b, "oqp5", proto=5)
    p.publish("oq/t", "a", qos=1)
    p.publish("oq/t", "b", qos=1)
    c2 = h.connect(b, "oq5", proto=5, clean=False, properties=props, session_present=True)
    c2.expect_publish("oq/t", "a", qos=1)
    c2.expect_publish("oq/t", "b", qos=1)


def test_session_expiry_zero_v5_MQTT_3_1_2_23(h):
    # v5 3.1.2.11.2 / v5 MQTT-4.1.0-2: Session Expiry 0 (absent) -> the session ends with the
    # connection even with Clean Start 0.
    b = h.broker()
    c = h.connect(b, "se0", proto=5, clean=False)
    c.subscribe([("se0/t", 1)])
    c.disconnect()
    sleep(0.1)
    c2 = h.connect(b, "se0", proto=5, clean=False, session_present=False)
    p = h.connect(b, "se0p", proto=5)
    p.publish("se0/t", "x", qos=1, rc=NOSUB)
    c2.expect_no_packet(0.3)


def test_clean_start_discards_v5_MQTT_3_1_2_4(h):
    # v5 MQTT-3.1.2-4, v5 MQTT-3.2.2-2: Clean Start 1 discards the stored session, SP 0.
    b = h.broker()
    props = [(SESSION_EXPIRY, 60)]
    c = h.connect(b, "cs5", proto=5, clean=False, properties=props)
    c.subscribe([("cs5/t", 1)])
    c.disconnect()
    c2 = h.connect(b, "cs5", proto=5, clean=True, properties=props, session_present=False)
    p = h.connect(b, "cs5p", proto=5)
    p.publish("cs5/t", "x", qos=1, rc=NOSUB)
    c2.expect_no_packet(0.3)


@timeout(12)
def test_session_expires_v5_MQTT_4_1_0_2(h):
    # v5 MQTT-4.1.0-2: after the Session Expiry Interval the session is discarded.
    b = h.broker()
    props = [(SESSION_EXPIRY, 1)]
    c = h.connect(b, "sx", proto=5, clean=False, properties=props)
    c.subscribe([("sx/t", 1)])
    c.disconnect()
    sleep(0.3)
    c2 = h.connect(b, "sx", proto=5, clean=False, properties=props, session_present=True)
    c2.disconnect()
    sleep(2.6)
    h.connect(b, "sx", proto=5, clean=False, properties=props, session_present=False)


def test_session_expiry_zeroed_at_disconnect_v5(h):
    # v5 3.14.2.2.2: Session Expiry Interval in DISCONNECT replaces the CONNECT value: set to 0 the
    # session ends with the connection.
    b = h.broker()
    c = h.connect(b, "sd", proto=5, clean=False, properties=[(SESSION_EXPIRY, 60)])
    c.subscribe([("sd/t", 1)])
    c.disconnect(rc=0, properties=[(SESSION_EXPIRY, 0)])
    sleep(0.2)
    h.connect(b, "sd", proto=5, clean=False, properties=[(SESSION_EXPIRY, 60)],
              session_present=False)


def test_session_expiry_raised_at_disconnect_v5(h):
    # v5 3.14.2.2.2: a non-zero value in DISCONNECT extends a session that had a non-zero expiry.
    b = h.broker()
    c = h.connect(b, "sr", proto=5, clean=False, properties=[(SESSION_EXPIRY, 1)])
    c.disconnect(rc=0, properties=[(SESSION_EXPIRY, 60)])
    sleep(2.5)
    h.connect(b, "sr", proto=5, clean=False, properties=[(SESSION_EXPIRY, 60)],
              session_present=True)


test_session_expiry_raised_at_disconnect_v5.timeout = 12


def test_session_expiry_disconnect_protocol_error_v5(h):
    # v5 3.14.2.2.2: CONNECT expiry 0 and DISCONNECT with non-zero expiry is a Protocol Error:
    # the Server answers DISCONNECT 0x82 (MQTT-4.13.1-1) and closes; the session does not persist.
    b = h.broker()
    c = h.connect(b, "spe", proto=5, clean=False)
    c.send(disconnect(0, proto=5, properties=[(SESSION_EXPIRY, 60)]))
    c.expect_disconnect_close(0x82)
    sleep(0.1)
    h.connect(b, "spe", proto=5, clean=False, session_present=False)


def test_takeover_keeps_session_v311_MQTT_3_1_4_2(h):
    # v311 MQTT-3.1.4-2 with CleanSession 0: the new connection resumes the session (SP 1,
    # subscriptions kept).
    b = h.broker()
    a = h.connect(b, "tk", clean=False)
    a.subscribe([("tk/t", 1)])
    a2 = h.connect(b, "tk", clean=False, session_present=True)
    a.expect_closed()
    p = h.connect(b, "tkp")
    p.publish("tk/t", "moved", qos=1)
    a2.expect_publish("tk/t", "moved", qos=1)


def test_max_queued_messages(h):
    # max_queued_messages 2: while offline, messages beyond the limit are dropped (mosquitto drops
    # the newest); the first two are delivered.
    b = h.broker("max_queued_messages 2\n")
    c = h.connect(b, "mq", clean=False)
    c.subscribe([("mq/t", 1)])
    c.disconnect()
    sleep(0.1)
    p = h.connect(b, "mqp")
    for i in range(5):
        p.publish("mq/t", str(i), qos=1)
    c2 = h.connect(b, "mq", clean=False, session_present=True)
    c2.expect_publish("mq/t", "0", qos=1)
    c2.expect_publish("mq/t", "1", qos=1)
    c2.expect_no_packet(0.4)


def test_inflight_window_then_queue(h):
    # max_inflight_messages 2 (v311): only two unacknowledged QoS 1 PUBLISHes are in flight; the
    # rest follow as acknowledgements arrive, in order.
    b = h.broker("max_inflight_messages 2\n")
    s = h.connect(b, "iw")
    s.subscribe([("iw/t", 1)])
    p = h.connect(b, "iwp")
    for i in range(4):
        p.publish("iw/t", str(i), qos=1)
    d0 = s.expect_publish("iw/t", "0", qos=1, ack=False)
    d1 = s.expect_publish("iw/t", "1", qos=1, ack=False)
    s.expect_no_packet(0.3)
    s.send(bytes([0x40, 2]) + d0["mid"].to_bytes(2, "big"))
    s.expect_publish("iw/t", "2", qos=1)
    s.send(bytes([0x40, 2]) + d1["mid"].to_bytes(2, "big"))
    s.expect_publish("iw/t", "3", qos=1)
