"""The PUBLISH / acknowledgement path rules of issue 7, runnable on vigil and on mosquitto 2.0.11:
acknowledgements of the wrong kind close the connection; DUP on QoS 0; UTF-8 before wildcards in
topics; properties not allowed in a packet are malformed; QoS 2 messages are held until PUBREL (so
PUBREC leaves first, as mosquitto); No Local and PUBACK 0x10; the '$' topic rules; Payload Format
Indicator values; PUBREL / PUBREC for unknown ids; Topic Alias and Message Expiry edge cases; read
access re-checked when stored messages are sent after a SIGHUP.

Where the spec leaves room the expected bytes are mosquitto 2.0.11's (checked against it). Where
vigil only adds information (a DISCONNECT before a close where mosquitto closes silently, a more
specific reason code) the test is strict on vigil and accepts mosquitto's bare close: see the rows
"Publish path" in mosquitto-compat.md. Tests marked @mosquitto_differs follow the spec where
mosquitto 2.0.11 does not.
"""
import signal

from mqtt_test import (connect, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe,
                       unsubscribe, disconnect, pingreq, pingresp, packet, mstr, u16, subopts,
                       check, sleep,
                       PAYLOAD_FORMAT, MESSAGE_EXPIRY, SESSION_EXPIRY, RECEIVE_MAXIMUM,
                       REASON_STRING, WILL_DELAY, MAXIMUM_QOS, TOPIC_ALIAS, SUBSCRIPTION_ID,
                       RESPONSE_TOPIC, USER_PROPERTY, mosquitto_differs)

SE60 = [(SESSION_EXPIRY, 60)]


def _closed(h, c, proto, rc, both=False):
    """The broker closes c. v5: vigil sends DISCONNECT rc first; mosquitto may close silently
    unless both (then the DISCONNECT is required from both brokers)."""
    if proto == 5:
        c.expect_disconnect_close(rc, strict=True if both else None)
    else:
        c.expect_closed()


def _alive(c):
    """The connection still works: PINGREQ is answered with PINGRESP."""
    c.send(pingreq())
    c.expect_packet(pingresp())


def _inflight(h, proto, qos, will=None):
    """A subscriber holding one unacknowledged QoS 1/2 PUBLISH from the broker: (broker, sub, id)."""
    b = h.broker()
    s = h.connect(b, "wk-sub", proto=proto, will=will)
    s.subscribe([("wk/t", qos)])
    p = h.connect(b, "wk-pub", proto=proto)
    p.publish("wk/t", "x", qos=qos)
    d = s.expect_publish("wk/t", "x", qos=qos, ack=False)
    return b, s, d["mid"]


# ---------------------------------------------------------------------------------------------
# Acknowledgements of the wrong kind (v311 4.8 / MQTT-4.8.0-1, v5 4.13 / MQTT-4.13.1-1): the ack
# does not fit the message in flight with that Packet Identifier -> protocol violation, close.
# mosquitto 2.0.11 closes silently; vigil sends v5 DISCONNECT 0x82 first.

def _wrong_ack(name, proto, qos, acks, comment):
    def t(h):
        b, s, mid = _inflight(h, proto, qos)
        for i, make in enumerate(acks):
            pkt = make(mid, proto)
            if i < len(acks) - 1:
                s.send(pkt)
                s.expect_packet(pubrel(mid, proto=proto))  # the valid first step
            else:
                s.send_quiet(pkt)
        _closed(h, s, proto, 0x82)
    t.__name__ = name
    t.__doc__ = comment
    globals()[name] = t


def _pa(m, p):
    return puback(m, proto=p)


def _prec(m, p):
    return pubrec(m, proto=p)


def _prec80(m, p):
    return pubrec(m, rc=0x80, proto=p)


def _pcomp(m, p):
    return pubcomp(m, proto=p)


for _p, _v in ((4, "v311_MQTT_4_8_0_1"), (5, "v5_MQTT_4_13_1_1")):
    _wrong_ack("test_pubcomp_for_qos1_closes_" + _v, _p, 1, [_pcomp],
               "PUBCOMP for a QoS 1 message in flight")
    _wrong_ack("test_pubrec_for_qos1_closes_" + _v, _p, 1, [_prec],
               "PUBREC for a QoS 1 message (vigil used to answer it with PUBREL)")
    _wrong_ack("test_puback_for_qos2_closes_" + _v, _p, 2, [_pa],
               "PUBACK for a QoS 2 message waiting for PUBREC")
    _wrong_ack("test_pubcomp_before_pubrec_closes_" + _v, _p, 2, [_pcomp],
               "PUBCOMP for a QoS 2 message before its PUBREC")
    _wrong_ack("test_puback_after_pubrec_closes_" + _v, _p, 2, [_prec, _pa],
               "PUBACK for a QoS 2 message waiting for PUBCOMP")
_wrong_ack("test_error_pubrec_after_pubrel_closes_v5_MQTT_4_13_1_1", 5, 2, [_prec, _prec80],
           "v5: PUBREC 0x80 for a message already released with PUBREL")


def test_wrong_ack_close_publishes_will_v311_MQTT_3_1_2_8(h):
    # v311 MQTT-3.1.2-8 / MQTT-4.8.0-1: the close for a PUBREC of a QoS 1 message is not a
    # DISCONNECT from the client, so its Will is published.
    b, s, mid = _inflight(h, 4, 1, will={"topic": "wk/will", "payload": "gone"})
    w = h.connect(b, "wk-witness")
    w.subscribe("wk/will")
    s.send_quiet(pubrec(mid))
    s.expect_closed()
    w.expect_publish("wk/will", "gone")


def test_unknown_ids_in_acks_v5_MQTT_4_3_3_4(h):
    # v5 MQTT-4.3.2 / 4.3.3: acks for an id nothing is in flight with are no protocol violation:
    # PUBACK and PUBCOMP are ignored, PUBREC is answered with PUBREL (v5 MQTT-4.3.3-4; reason
    # 0x00 as mosquitto, not 0x92), an error PUBREC with nothing; the connection stays open.
    b = h.broker()
    c = h.connect(b, "unk", proto=5)
    c.send(puback(11, proto=5))
    c.send(pubcomp(12, proto=5))
    c.send(pubrec(13, rc=0x80, proto=5))
    c.send(pubrec(14, proto=5))
    c.expect_packet(pubrel(14, proto=5))
    _alive(c)


def test_unknown_ids_in_acks_v311_MQTT_4_3_3_2(h):
    # v311 4.3.2 / v311 MQTT-4.3.3-2: PUBACK / PUBCOMP for unknown ids ignored, PUBREC answered.
    b = h.broker()
    c = h.connect(b, "unk3")
    c.send(puback(11) + pubcomp(12) + pubrec(14))
    c.expect_packet(pubrel(14))
    _alive(c)


def test_repeated_pubrec_gets_pubrel_again_v5_MQTT_4_3_3_4(h):
    # v5 MQTT-4.3.3-4/-5: a PUBREC repeated while the PUBREL is unacknowledged is answered with
    # the PUBREL again (not a wrong ack); PUBCOMP then ends the flow.
    b, s, mid = _inflight(h, 5, 2)
    s.send(pubrec(mid, proto=5))
    s.expect_packet(pubrel(mid, proto=5))
    s.send(pubrec(mid, proto=5))
    s.expect_packet(pubrel(mid, proto=5))
    s.send(pubcomp(mid, proto=5))
    _alive(s)


# ---------------------------------------------------------------------------------------------
# DUP on QoS 0 (v311 MQTT-3.3.1-2)

def _qos0_dup(h, proto):
    b = h.broker()
    w = h.connect(b, "dup-w")
    w.subscribe([("dup/#", 1)])
    c = h.connect(b, "dup-c", proto=proto)
    c.send_quiet(publish("dup/t", "x", dup=True, proto=proto))
    _closed(h, c, proto, 0x81)
    w.expect_no_packet(0.3)


@mosquitto_differs("mosquitto 2.0.11 accepts and delivers a QoS 0 PUBLISH with DUP 1")
def test_qos0_dup_closes_v311_MQTT_3_3_1_2(h):
    # v311 MQTT-3.3.1-2: the DUP flag MUST be 0 for QoS 0: close, deliver nothing.
    _qos0_dup(h, 4)


@mosquitto_differs("mosquitto 2.0.11 accepts and delivers a QoS 0 PUBLISH with DUP 1")
def test_qos0_dup_closes_v5_MQTT_3_3_1_2(h):
    # v5 MQTT-3.3.1-2, v5 2.1.3 (invalid flags: Malformed Packet): DISCONNECT 0x81, nothing
    # delivered.
    _qos0_dup(h, 5)


def test_qos0_dup_accepted_v31(h):
    # MQTT 3.1 has no DUP rule for QoS 0 (v311 MQTT-3.3.1-2 is 3.1.1's): delivered, DUP cleared
    # (v311 MQTT-3.3.1-3 applied to the outgoing copy).
    b = h.broker()
    w = h.connect(b, "dup31-w")
    w.subscribe("dup/#")
    c = h.connect(b, "dup31", proto=3)
    c.send(publish("dup/t", "x", dup=True, proto=3))
    w.expect_packet(publish("dup/t", "x"))


# ---------------------------------------------------------------------------------------------
# Topic names: UTF-8 first (Malformed Packet), then wildcards

def test_topic_nul_malformed_v5_MQTT_1_5_4_2(h):
    # v5 MQTT-1.5.4-2: U+0000 in the Topic Name is a Malformed Packet: DISCONNECT 0x81 (not 0x90),
    # byte-exact as mosquitto.
    b = h.broker()
    c = h.connect(b, "nul", proto=5)
    c.send_quiet(publish("a\x00b", "x", qos=1, mid=1, proto=5))
    _closed(h, c, 5, 0x81, both=True)


def test_topic_bad_utf8_and_wildcard_malformed_v5_MQTT_1_5_4_1(h):
    # v5 MQTT-1.5.4-1: ill-formed UTF-8 is checked before the wildcard rule: 0x81 even when the
    # topic also holds a '+'.
    b = h.broker()
    c = h.connect(b, "bad8", proto=5)
    c.send_quiet(packet(0x30, mstr(b"a\xff/+") + b"\x00x"))
    _closed(h, c, 5, 0x81, both=True)


def test_topic_wildcard_v5_MQTT_3_3_2_2(h):
    # v5 MQTT-3.3.2-2: a wildcard in a Topic Name: vigil DISCONNECT 0x90 (Topic Name invalid);
    # mosquitto 2.0.11 sends 0x82 (compat row: the more specific code).
    b = h.broker()
    c = h.connect(b, "wild", proto=5)
    c.send_quiet(publish("a/+/b", "x", proto=5))
    if h.vigil:
        _closed(h, c, 5, 0x90, both=True)
    else:
        c.expect_optional_then_closed([disconnect(0x82, proto=5), disconnect(0x90, proto=5)])


def test_topic_nul_closes_v311_MQTT_1_5_3_2(h):
    # v311 MQTT-1.5.3-2: U+0000 in a topic -> close; nothing delivered.
    b = h.broker()
    w = h.connect(b, "nul3-w")
    w.subscribe("#")
    c = h.connect(b, "nul3")
    c.send_quiet(publish("a\x00b", "x"))
    c.expect_closed()
    w.expect_no_packet(0.3)


# ---------------------------------------------------------------------------------------------
# v5 properties: one not allowed in the packet type is a Malformed Packet (v5 2.2.2.2, as
# mosquitto 2.0.11), in every packet a client sends.

def _prop_case(name, make, rc=0x81, both=True, comment=""):
    def t(h):
        b = h.broker()
        w = h.connect(b, "pw")
        w.subscribe("#")
        c = h.connect(b, "pc", proto=5)
        c.send_quiet(make())
        _closed(h, c, 5, rc, both=both)
        w.expect_no_packet(0.3)
    t.__name__ = name
    t.__doc__ = comment
    globals()[name] = t


_prop_case("test_publish_session_expiry_malformed_v5_2_2_2_2",
           lambda: publish("p/t", "x", qos=1, mid=1, proto=5, properties=[(SESSION_EXPIRY, 5)]),
           comment="Session Expiry Interval is not a PUBLISH property")
_prop_case("test_publish_receive_maximum_malformed_v5_2_2_2_2",
           lambda: publish("p/t", "x", qos=1, mid=1, proto=5, properties=[(RECEIVE_MAXIMUM, 5)]))
_prop_case("test_publish_reason_string_malformed_v5_2_2_2_2",
           lambda: publish("p/t", "x", qos=1, mid=1, proto=5, properties=[(REASON_STRING, "r")]))
_prop_case("test_publish_will_delay_malformed_v5_2_2_2_2",
           lambda: publish("p/t", "x", proto=5, properties=[(WILL_DELAY, 1)]))
_prop_case("test_publish_maximum_qos_malformed_v5_2_2_2_2",
           lambda: publish("p/t", "x", proto=5, properties=[(MAXIMUM_QOS, 1)]))
_prop_case("test_subscribe_payload_format_malformed_v5_2_2_2_2",
           lambda: subscribe(1, [("p/t", 0)], proto=5, properties=[(PAYLOAD_FORMAT, 1)]))
_prop_case("test_unsubscribe_payload_format_malformed_v5_2_2_2_2",
           lambda: unsubscribe(1, ["p/t"], proto=5, properties=[(PAYLOAD_FORMAT, 1)]))
_prop_case("test_unsubscribe_subscription_id_malformed_v5_2_2_2_2",
           lambda: unsubscribe(1, ["p/t"], proto=5, properties=[(SUBSCRIPTION_ID, 1)]))
# mosquitto closes these without DISCONNECT; vigil sends 0x81 first.
_prop_case("test_disconnect_payload_format_malformed_v5_2_2_2_2",
           lambda: disconnect(0, proto=5, properties=[(PAYLOAD_FORMAT, 1)]), both=False)
_prop_case("test_pubrel_payload_format_malformed_v5_2_2_2_2",
           lambda: pubrel(3, 0, proto=5, properties=[(PAYLOAD_FORMAT, 1)]), both=False)
_prop_case("test_topic_alias_0_malformed_v5_MQTT_3_3_2_8",
           lambda: publish("p/t", "x", qos=1, mid=1, proto=5, properties=[(TOPIC_ALIAS, 0)]),
           comment="v5 MQTT-3.3.2-8: Topic Alias 0; DISCONNECT 0x81 as mosquitto")
# A single-valued property twice: Protocol Error (v5 2.2.2.2); mosquitto closes silently.
_prop_case("test_publish_property_twice_protocol_error_v5_2_2_2_2",
           lambda: publish("p/t", "x", qos=1, mid=1, proto=5,
                           properties=[(MESSAGE_EXPIRY, 1), (MESSAGE_EXPIRY, 1)]),
           rc=0x82, both=False)


def test_connect_property_not_allowed_malformed_v5_2_2_2_2(h):
    # v5 2.2.2.2: a Topic Alias in CONNECT is malformed: vigil CONNACK 0x81 then close
    # (mosquitto 2.0.11 closes without CONNACK).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("pcc", proto=5, properties=[(TOPIC_ALIAS, 1)]))
    got = c.expect_optional_then_closed([connack(0x81, proto=5)])
    check(got is not None or not h.vigil, "vigil must send CONNACK 0x81 before closing")


def test_will_payload_format_2_accepted_v5_3_1_3_2(h):
    # v5 3.1.3.2.3: the spec names no error for a Payload Format Indicator other than 0/1: a
    # Will with 2 is accepted (CONNACK 0, as mosquitto).
    b = h.broker()
    h.connect(b, "wpf", proto=5, will={"topic": "w/pf", "payload": "x",
                                       "properties": [(PAYLOAD_FORMAT, 2)]})


def test_payload_format_other_values_forwarded_v5_MQTT_3_3_2_4(h):
    # v5 MQTT-3.3.2-4: the Payload Format Indicator is passed on unchanged; values other than
    # 0/1 (no error named in 3.3.2.3.2) are accepted and forwarded as mosquitto does, and only 1
    # asks for UTF-8.
    b = h.broker()
    s = h.connect(b, "pfs", proto=5)
    s.subscribe([("pf/t", 1)])
    c = h.connect(b, "pfc", proto=5)
    c.send(publish("pf/t", "x", qos=1, mid=1, proto=5, properties=[(PAYLOAD_FORMAT, 2)]))
    c.expect_packet(puback(1, proto=5))
    c.send(publish("pf/t", b"\xff", qos=1, mid=2, proto=5, properties=[(PAYLOAD_FORMAT, 0xFF)]))
    c.expect_packet(puback(2, proto=5))
    s.expect_publish("pf/t", "x", qos=1, properties=[(PAYLOAD_FORMAT, 2)])
    s.expect_publish("pf/t", b"\xff", qos=1, properties=[(PAYLOAD_FORMAT, 0xFF)])


# ---------------------------------------------------------------------------------------------
# No Local and "No matching subscribers"

def test_no_local_only_match_puback_0x00_v5_MQTT_3_8_3_3(h):
    # v5 MQTT-3.8.3-3 / 3.4.2.1: the publisher's own No Local subscription is still a matching
    # subscription: PUBACK 0x00 (as mosquitto), not 0x10; nothing is sent back to it.
    b = h.broker()
    c = h.connect(b, "nl", proto=5)
    c.subscribe([("nl/t", subopts(qos=1, nl=True))], codes=[1])
    c.send(publish("nl/t", "x", qos=1, mid=1, proto=5))
    c.expect_packet(puback(1, proto=5))
    c.send(publish("nl/other", "x", qos=1, mid=2, proto=5))
    c.expect_packet(puback(2, rc=0x10, proto=5))
    c.expect_no_packet(0.3)


# ---------------------------------------------------------------------------------------------
# QoS 2 inbound: PUBREC first, the message is routed on PUBREL (as mosquitto 2.0.11)

def _qos2_order(h, proto, same):
    b = h.broker()
    p = h.connect(b, "q2o-p", proto=proto)
    if same:
        p.subscribe([("q2o/t", 2)])
        s = p
    else:
        s = h.connect(b, "q2o-s", proto=proto)
        s.subscribe([("q2o/t", 2)])
    p.send(publish("q2o/t", "x", qos=2, mid=7, proto=proto))
    p.expect_packet(pubrec(7, proto=proto))
    s.expect_no_packet(0.3)
    p.send(pubrel(7, proto=proto))
    if same:
        # The forwarded PUBLISH (the broker's id 1) comes before the PUBCOMP.
        p.expect_packet(publish("q2o/t", "x", qos=2, mid=1, proto=proto))
        p.expect_packet(pubcomp(7, proto=proto))
    else:
        p.expect_packet(pubcomp(7, proto=proto))
        s.expect_packet(publish("q2o/t", "x", qos=2, mid=1, proto=proto))


def test_qos2_pubrec_before_delivery_same_connection_v311_MQTT_4_3_3_2(h):
    # v311 MQTT-4.3.3-2 (method B of Figure 4.3): PUBREC, then on PUBREL the PUBLISH to the
    # publisher's own subscription, then PUBCOMP — mosquitto's order, byte-exact.
    _qos2_order(h, 4, True)


def test_qos2_pubrec_before_delivery_other_connection_v311_MQTT_4_3_3_2(h):
    # v311 MQTT-4.3.3-2: another subscriber gets the message only after the PUBREL.
    _qos2_order(h, 4, False)


def test_qos2_pubrec_before_delivery_same_connection_v5_MQTT_4_3_3_8(h):
    # v5 MQTT-4.3.3-8/-11, as mosquitto.
    _qos2_order(h, 5, True)


def test_qos2_pubrec_before_delivery_other_connection_v5_MQTT_4_3_3_8(h):
    _qos2_order(h, 5, False)


def test_qos2_routed_at_pubrel_reaches_later_subscriber_v5_MQTT_4_3_3_8(h):
    # v5 MQTT-4.3.3-8: the receiver owns the message from PUBREC; it is routed at PUBREL, so a
    # subscription made in between receives it and the retained copy is set then (as mosquitto).
    b = h.broker()
    p = h.connect(b, "q2l-p", proto=5)
    p.send(publish("q2l/t", "x", qos=2, mid=1, retain=True, proto=5))
    p.expect_packet(pubrec(1, proto=5))
    s = h.connect(b, "q2l-s", proto=5)
    s.subscribe([("q2l/t", 2)])
    s.expect_no_packet(0.3)
    p.send(pubrel(1, proto=5))
    p.expect_packet(pubcomp(1, proto=5))
    s.expect_publish("q2l/t", "x", qos=2)
    s2 = h.connect(b, "q2l-s2", proto=5)
    s2.subscribe([("q2l/t", 0)])
    s2.expect_publish("q2l/t", "x", retain=True)


def test_qos2_resent_identical_once_v5_MQTT_4_3_3_10(h):
    # v5 MQTT-4.3.3-10: until PUBREL, the same PUBLISH again gets PUBREC again and is delivered
    # once (retain and properties of the copy are not compared, as mosquitto).
    b = h.broker()
    s = h.connect(b, "q2d-s", proto=5)
    s.subscribe([("q2d/#", 2)])
    p = h.connect(b, "q2d-p", proto=5)
    p.send(publish("q2d/t", "x", qos=2, mid=1, proto=5))
    p.send(publish("q2d/t", "x", qos=2, mid=1, dup=True, retain=True, proto=5,
                   properties=[(USER_PROPERTY, ("k", "v"))]))
    p.expect_packet(pubrec(1, proto=5))
    p.expect_packet(pubrec(1, proto=5))
    p.send(pubrel(1, proto=5))
    p.expect_packet(pubcomp(1, proto=5))
    s.expect_publish("q2d/t", "x", qos=2)
    s.expect_no_packet(0.3)


def test_qos2_reused_id_other_message_replaces_v311_MQTT_4_3_3_2(h):
    # v311 MQTT-4.3.3-2 leaves room for a PUBLISH on an id still in use with another topic or
    # payload: mosquitto takes it as a reused id and the new message replaces the held one; one
    # copy is delivered, never two.
    b = h.broker()
    s = h.connect(b, "q2r-s")
    s.subscribe([("q2r/#", 2)])
    p = h.connect(b, "q2r-p")
    p.send(publish("q2r/a", "x", qos=2, mid=1))
    p.send(publish("q2r/b", "y", qos=2, mid=1, dup=True))
    p.expect_packet(pubrec(1))
    p.expect_packet(pubrec(1))
    p.send(pubrel(1))
    p.expect_packet(pubcomp(1))
    s.expect_publish("q2r/b", "y", qos=2)
    s.expect_no_packet(0.3)


def test_qos1_on_held_qos2_id_drops_held_v5_MQTT_2_2_1_3(h):
    # v5 MQTT-2.2.1-3 forbids reusing an id in use; mosquitto then takes the QoS 1 message and
    # drops the held QoS 2 one: the PUBREL finds nothing (PUBCOMP 0x00), one message delivered.
    b = h.broker()
    s = h.connect(b, "q12-s", proto=5)
    s.subscribe([("q12/#", 2)])
    p = h.connect(b, "q12-p", proto=5)
    p.send(publish("q12/a", "x", qos=2, mid=1, proto=5))
    p.expect_packet(pubrec(1, proto=5))
    p.send(publish("q12/b", "y", qos=1, mid=1, proto=5))
    p.expect_packet(puback(1, proto=5))
    p.send(pubrel(1, proto=5))
    p.expect_packet(pubcomp(1, proto=5))
    s.expect_publish("q12/b", "y", qos=1)
    s.expect_no_packet(0.3)


def test_qos2_held_across_reconnect_v5_MQTT_4_4_0_1(h):
    # v5 MQTT-4.4.0-1 / 4.3.3: the held message belongs to the session; after a reconnect with
    # the session present the PUBREL releases it.
    b = h.broker()
    s = h.connect(b, "q2c-s", proto=5)
    s.subscribe([("q2c/t", 2)])
    p = h.connect(b, "q2c-p", proto=5, clean=False, properties=SE60)
    p.send(publish("q2c/t", "x", qos=2, mid=1, proto=5))
    p.expect_packet(pubrec(1, proto=5))
    p.close()
    sleep(0.2)
    p2 = h.connect(b, "q2c-p", proto=5, clean=False, properties=SE60, session_present=True)
    s.expect_no_packet(0.2)
    p2.send(pubrel(1, proto=5))
    p2.expect_packet(pubcomp(1, proto=5))
    s.expect_publish("q2c/t", "x", qos=2)


def test_qos2_held_dropped_with_clean_start_v5_MQTT_3_1_2_4(h):
    # v5 MQTT-3.1.2-4: Clean Start discards the session and with it the held message; the PUBREL
    # is answered PUBCOMP 0x00 (as mosquitto) and nothing is delivered.
    b = h.broker()
    s = h.connect(b, "q2x-s", proto=5)
    s.subscribe([("q2x/t", 2)])
    p = h.connect(b, "q2x-p", proto=5, clean=False, properties=SE60)
    p.send(publish("q2x/t", "x", qos=2, mid=1, proto=5))
    p.expect_packet(pubrec(1, proto=5))
    p.close()
    sleep(0.2)
    p2 = h.connect(b, "q2x-p", proto=5, clean=True)
    p2.send(pubrel(1, proto=5))
    p2.expect_packet(pubcomp(1, proto=5))
    s.expect_no_packet(0.4)


def test_qos2_held_message_expires_v5_MQTT_3_3_2_5(h):
    # v5 MQTT-3.3.2-5 / MQTT-4.3.3-13: a message whose Message Expiry Interval passes before its
    # PUBREL is not delivered; the flow still completes.
    b = h.broker()
    s = h.connect(b, "q2e-s", proto=5)
    s.subscribe([("q2e/t", 2)])
    p = h.connect(b, "q2e-p", proto=5)
    p.send(publish("q2e/t", "x", qos=2, mid=1, proto=5, properties=[(MESSAGE_EXPIRY, 1)]))
    p.expect_packet(pubrec(1, proto=5))
    sleep(2.1)
    p.send(pubrel(1, proto=5))
    p.expect_packet(pubcomp(1, proto=5))
    s.expect_no_packet(0.3)


# ---------------------------------------------------------------------------------------------
# PUBREL for unknown or finished flows, PUBCOMP reason

def test_pubrel_finished_flow_pubcomp_0x00_v5_MQTT_4_3_3_11(h):
    # v5 MQTT-4.3.3-11: a re-sent PUBREL for a finished flow, or one for an id never seen, is
    # answered with PUBCOMP; reason 0x00 as mosquitto (the spec allows 0x92); nothing delivered
    # twice.
    b = h.broker()
    s = h.connect(b, "prf-s", proto=5)
    s.subscribe([("prf/t", 0)])
    p = h.connect(b, "prf-p", proto=5)
    p.send(publish("prf/t", "x", qos=2, mid=7, proto=5))
    p.expect_packet(pubrec(7, proto=5))
    p.send(pubrel(7, proto=5))
    p.expect_packet(pubcomp(7, proto=5))
    p.send(pubrel(7, proto=5))
    p.expect_packet(pubcomp(7, proto=5))
    p.send(pubrel(999, proto=5))
    p.expect_packet(pubcomp(999, proto=5))
    s.expect_publish("prf/t", "x")
    s.expect_no_packet(0.3)


def test_message_size_limit_qos2_v5_MQTT_4_3_3_11(h):
    # message_size_limit: a QoS 2 PUBLISH too large gets PUBREC 0x95; a PUBREL the client sends
    # anyway gets PUBCOMP 0x00 (as mosquitto); nothing delivered.
    b = h.broker(conf="message_size_limit 10\n")
    s = h.connect(b, "msl-s", proto=5)
    s.subscribe([("msl/t", 2)])
    p = h.connect(b, "msl-p", proto=5)
    p.send(publish("msl/t", "x" * 11, qos=2, mid=1, proto=5))
    p.expect_packet(pubrec(1, rc=0x95, proto=5))
    p.send(pubrel(1, proto=5))
    p.expect_packet(pubcomp(1, proto=5))
    s.expect_no_packet(0.3)


def test_message_size_limit_v311_acked_not_delivered(h):
    # message_size_limit with v3.1.1: QoS 1 PUBACK, QoS 2 PUBREC / PUBCOMP, QoS 0 nothing —
    # and no delivery (mosquitto's behaviour; 3.1.1 has no error acknowledgement).
    b = h.broker(conf="message_size_limit 10\n")
    s = h.connect(b, "msl3-s")
    s.subscribe([("msl/t", 2)])
    p = h.connect(b, "msl3-p")
    p.send(publish("msl/t", "x" * 11))
    p.send(publish("msl/t", "x" * 11, qos=1, mid=1))
    p.expect_packet(puback(1))
    p.send(publish("msl/t", "x" * 11, qos=2, mid=2))
    p.expect_packet(pubrec(2))
    p.send(pubrel(2))
    p.expect_packet(pubcomp(2))
    s.expect_no_packet(0.3)
    p.send(publish("msl/t", "x" * 10, qos=1, mid=3))
    p.expect_packet(puback(3))
    s.expect_publish("msl/t", "x" * 10, qos=1)


# ---------------------------------------------------------------------------------------------
# '$' topics (mosquitto's rule, with or without an ACL file)

def test_sys_connection_state_writable_v311(h):
    # v311 4.7.2: '$SYS' is the broker's; as mosquitto, a client (a bridge) may publish to
    # $SYS/broker/connection/<name>/state, retained too; other $SYS topics are dropped.
    b = h.broker()
    s = h.connect(b, "sys-s")
    s.subscribe("$SYS/broker/connection/#")
    p = h.connect(b, "sys-p")
    p.send(publish("$SYS/broker/connection/br1/other", "0", qos=1, mid=1))
    p.expect_packet(puback(1))
    p.send(publish("$SYS/broker/connection/br1/state", "1", qos=1, mid=2, retain=True))
    p.expect_packet(puback(2))
    s.expect_publish("$SYS/broker/connection/br1/state", "1")
    s2 = h.connect(b, "sys-s2")
    s2.subscribe("$SYS/broker/connection/+/state")
    s2.expect_publish("$SYS/broker/connection/br1/state", "1", retain=True)


def test_sys_topics_not_writable_v5(h):
    # v5 4.7.2 / 3.4.2.1: PUBACK 0x87 for $SYS topics other than the bridge state (also
    # "$SYSx", a prefix match as mosquitto); other '$' topics are ordinary.
    b = h.broker()
    p = h.connect(b, "sys5", proto=5)
    p.send(publish("$SYS/broker/connection/br1/state", "1", qos=1, mid=1, proto=5))
    p.expect_packet(puback(1, rc=0x10, proto=5))
    for mid, t in ((2, "$SYS/broker/x"), (3, "$SYS"), (4, "$SYSx/y"),
                   (5, "$SYS/broker/connection/a/b/state")):
        p.send(publish(t, "1", qos=1, mid=mid, proto=5))
        p.expect_packet(puback(mid, rc=0x87, proto=5))
    p.send(publish("$foo/bar", "1", qos=1, mid=6, proto=5))
    p.expect_packet(puback(6, rc=0x10, proto=5))


def test_publish_to_share_refused_v5_4_8_2(h):
    # v5 4.8.2: "$share/..." names a shared subscription, not a topic: a PUBLISH to it is refused
    # as mosquitto refuses it: PUBACK / PUBREC 0x87 (any "$share" prefix), never delivered.
    b = h.broker()
    s = h.connect(b, "shs", proto=5)
    s.subscribe("#")
    p = h.connect(b, "shp", proto=5)
    p.send(publish("$share/g/t", "x", qos=1, mid=1, proto=5))
    p.expect_packet(puback(1, rc=0x87, proto=5))
    p.send(publish("$share/g/t", "x", qos=2, mid=2, proto=5))
    p.expect_packet(pubrec(2, rc=0x87, proto=5))
    p.send(publish("$sharex", "x", qos=1, mid=3, proto=5))
    p.expect_packet(puback(3, rc=0x87, proto=5))
    p.send(publish("$share/g/t", "x", proto=5))
    s.expect_no_packet(0.3)
    _alive(p)


def test_publish_to_share_dropped_v311(h):
    # v311: no error acknowledgement: PUBACK 0, the message is dropped (as mosquitto).
    b = h.broker()
    s = h.connect(b, "shs3")
    s.subscribe("#")
    p = h.connect(b, "shp3")
    p.send(publish("$share/g/t", "x", qos=1, mid=1))
    p.expect_packet(puback(1))
    s.expect_no_packet(0.3)


# ---------------------------------------------------------------------------------------------
# Topic Alias edge cases (v5 3.3.2.3.4), byte-exact as mosquitto

def _alias(h, conf, plist, topic, rc):
    b = h.broker(conf=conf)
    c = h.connect(b, "ta", proto=5)
    c.send_quiet(publish(topic, "x", qos=1, mid=1, proto=5, properties=plist))
    _closed(h, c, 5, rc, both=True)


def test_topic_alias_above_maximum_v5_MQTT_3_3_2_12(h):
    # v5 MQTT-3.3.2-12 / 3.3.2.3.4: above our Topic Alias Maximum (10): DISCONNECT 0x94.
    _alias(h, "", [(TOPIC_ALIAS, 11)], "ta/t", 0x94)


def test_topic_alias_with_maximum_0_v5_MQTT_3_2_2_18(h):
    # v5 MQTT-3.2.2-18: with max_topic_alias 0 no alias is allowed: DISCONNECT 0x94.
    _alias(h, "max_topic_alias 0\n", [(TOPIC_ALIAS, 1)], "ta/t", 0x94)


def test_topic_alias_unset_without_topic_v5_3_3_2_3_4(h):
    # v5 3.3.2.3.4: an empty Topic Name with an alias never set: DISCONNECT 0x82.
    _alias(h, "", [(TOPIC_ALIAS, 3)], "", 0x82)


def test_topic_alias_roundtrip_v5_MQTT_3_3_2_12(h):
    # v5 MQTT-3.3.2-12: an alias set with a topic is used by a later PUBLISH with an empty topic.
    b = h.broker()
    s = h.connect(b, "tar-s", proto=5)
    s.subscribe("tar/t")
    c = h.connect(b, "tar", proto=5)
    c.send(publish("tar/t", "1", qos=1, mid=1, proto=5, properties=[(TOPIC_ALIAS, 10)]))
    c.send(publish("", "2", qos=1, mid=2, proto=5, properties=[(TOPIC_ALIAS, 10)]))
    c.expect_packet(puback(1, proto=5))
    c.expect_packet(puback(2, proto=5))
    s.expect_packet(publish("tar/t", "1", proto=5))
    s.expect_packet(publish("tar/t", "2", proto=5))


# ---------------------------------------------------------------------------------------------
# Message Expiry Interval edge cases

def test_message_expiry_0_reaches_connected_subscriber_v5_MQTT_3_3_2_6(h):
    # v5 3.3.2.3.3: an interval of 0 still reaches the subscribers connected when it arrives (as
    # mosquitto). vigil forwards the remaining interval, 0 (v5 MQTT-3.3.2-6); mosquitto 2.0.11
    # takes 0 as "no expiry" and leaves the property out (compat row).
    b = h.broker()
    s = h.connect(b, "me0-s", proto=5)
    s.subscribe([("me0/t", 1)])
    p = h.connect(b, "me0-p", proto=5)
    p.send(publish("me0/t", "x", qos=1, mid=1, proto=5, properties=[(MESSAGE_EXPIRY, 0)]))
    p.expect_packet(puback(1, proto=5))
    want = [(MESSAGE_EXPIRY, 0)] if h.vigil else None
    s.expect_publish("me0/t", "x", qos=1, properties=want)


@mosquitto_differs("mosquitto 2.0.11 takes Message Expiry Interval 0 as 'never expires': the "
                   "retained message and the queued copy are handed out later")
def test_message_expiry_0_not_kept_v5_MQTT_3_3_2_5(h):
    # v5 MQTT-3.3.2-5: once the interval (0) has passed, a copy not yet on its way is deleted:
    # no retained copy for a later subscriber, nothing queued for an offline session.
    b = h.broker()
    s = h.connect(b, "me0q", proto=5, clean=False, properties=SE60)
    s.subscribe([("me0/t", 1)])
    s.close()
    sleep(0.2)
    p = h.connect(b, "me0p", proto=5)
    p.send(publish("me0/t", "x", qos=1, mid=1, retain=True, proto=5,
                   properties=[(MESSAGE_EXPIRY, 0)]))
    p.expect_packet(puback(1, proto=5))
    sleep(0.1)
    s2 = h.connect(b, "me0q", proto=5, clean=False, properties=SE60, session_present=True)
    s2.expect_no_packet(0.3)
    s3 = h.connect(b, "me0r", proto=5)
    s3.subscribe("me0/t")
    s3.expect_no_packet(0.3)


def test_message_expiry_max_forwarded_v5_MQTT_3_3_2_6(h):
    # v5 MQTT-3.3.2-6: the largest interval is forwarded unchanged (0xFFFFFFFF, as mosquitto).
    b = h.broker()
    s = h.connect(b, "mex-s", proto=5)
    s.subscribe("mex/t")
    p = h.connect(b, "mex-p", proto=5)
    p.send(publish("mex/t", "x", qos=1, mid=1, proto=5, properties=[(MESSAGE_EXPIRY, 0xFFFFFFFF)]))
    p.expect_packet(puback(1, proto=5))
    s.expect_packet(publish("mex/t", "x", proto=5, properties=[(MESSAGE_EXPIRY, 0xFFFFFFFF)]))


# ---------------------------------------------------------------------------------------------
# Read access re-checked when stored messages are sent (SIGHUP changed the ACL file)

ACL_RW = "user u\ntopic read acl/#\ntopic write acl/#\n"
ACL_W = "user u\ntopic write acl/#\n"


def _acl_broker(h, extra=""):
    path = h.file("acl", ACL_RW)
    return h.broker(conf="acl_file %s\n%s" % (path, extra))


def _revoke(h, b):
    h.file("acl", ACL_W)
    b.proc.send_signal(signal.SIGHUP)
    sleep(0.5)


def test_sighup_revoked_read_queued_not_delivered_v311(h):
    # Read access is checked again when a queued message is sent: after SIGHUP removed it, the
    # messages queued for the offline session are not delivered on reconnect (as mosquitto).
    b = _acl_broker(h)
    s = h.connect(b, "aq-s", clean=False, username="u")
    s.subscribe([("acl/#", 1)])
    s.close()
    sleep(0.2)
    p = h.connect(b, "aq-p", username="u")
    p.publish("acl/t", "a", qos=1)
    p.publish("acl/t", "b", qos=1)
    _revoke(h, b)
    s2 = h.connect(b, "aq-s", clean=False, username="u", session_present=True)
    s2.expect_no_packet(0.5)


def test_sighup_revoked_read_inflight_not_resent_v311_MQTT_4_4_0_1(h):
    # A QoS 1 PUBLISH in flight whose topic the client may no longer read is not resent on
    # reconnect (as mosquitto: the ACL wins over the v311 MQTT-4.4.0-1 redelivery).
    b = _acl_broker(h)
    s = h.connect(b, "ai-s", clean=False, username="u")
    s.subscribe([("acl/#", 1)])
    p = h.connect(b, "ai-p", username="u")
    p.publish("acl/t", "a", qos=1)
    s.expect_publish("acl/t", "a", qos=1, ack=False)
    s.close()
    _revoke(h, b)
    s2 = h.connect(b, "ai-s", clean=False, username="u", session_present=True)
    s2.expect_no_packet(0.5)


@mosquitto_differs("mosquitto 2.0.11 re-checks read access only on reconnect: a message queued "
                   "behind a full in-flight window is still sent on the live connection")
def test_sighup_revoked_read_live_queue_not_sent_v311(h):
    # Read access is checked when a queued message leaves the queue, also on a live connection.
    b = _acl_broker(h, "max_inflight_messages 1\n")
    s = h.connect(b, "al-s", clean=False, username="u")
    s.subscribe([("acl/#", 1)])
    p = h.connect(b, "al-p", username="u")
    p.publish("acl/t", "a", qos=1)
    p.publish("acl/t", "b", qos=1)
    d = s.expect_publish("acl/t", "a", qos=1, ack=False)
    _revoke(h, b)
    s.send(puback(d["mid"]))
    s.expect_no_packet(0.5)


@mosquitto_differs("mosquitto 2.0.11 also drops an in-flight PUBREL after read access was "
                   "revoked, so the client's QoS 2 flow never ends")
def test_sighup_revoked_read_pubrel_still_resent_v311_MQTT_4_4_0_1(h):
    # v311 MQTT-4.4.0-1: unacknowledged PUBREL packets are resent on reconnect; a PUBREL carries
    # no application data, so a revoked read access does not stop it.
    b = _acl_broker(h)
    s = h.connect(b, "ar-s", clean=False, username="u")
    s.subscribe([("acl/#", 2)])
    p = h.connect(b, "ar-p", username="u")
    p.publish("acl/t", "a", qos=2)
    d = s.expect_publish("acl/t", "a", qos=2, ack=False)
    s.send(pubrec(d["mid"]))
    s.expect_packet(pubrel(d["mid"]))
    s.close()
    _revoke(h, b)
    s2 = h.connect(b, "ar-s", clean=False, username="u", session_present=True)
    s2.expect_packet(pubrel(d["mid"]))


# ---------------------------------------------------------------------------------------------
# Client packets that break a MUST which mosquitto 2.0.11 lets pass

@mosquitto_differs("mosquitto 2.0.11 ignores a reason code PUBACK may not carry")
def test_puback_invalid_reason_code_v5_MQTT_3_4_2_1(h):
    # v5 MQTT-3.4.2-1: the sender of PUBACK MUST use one of the PUBACK reason codes; 0x05 is a
    # Protocol Error: DISCONNECT 0x82.
    b, s, mid = _inflight(h, 5, 1)
    s.send_quiet(puback(mid, rc=0x05, proto=5))
    s.expect_disconnect_close(0x82)


@mosquitto_differs("mosquitto 2.0.11 accepts a Subscription Identifier in a client's PUBLISH")
def test_publish_with_subscription_id_v5_MQTT_3_3_4_6(h):
    # v5 MQTT-3.3.4-6: a PUBLISH from a Client MUST NOT contain a Subscription Identifier:
    # Protocol Error, nothing delivered.
    _publish_refused(h, [(SUBSCRIPTION_ID, 1)])


@mosquitto_differs("mosquitto 2.0.11 forwards a Response Topic holding a wildcard")
def test_publish_response_topic_wildcard_v5_MQTT_3_3_2_14(h):
    # v5 MQTT-3.3.2-14: the Response Topic MUST NOT contain wildcards: Protocol Error.
    _publish_refused(h, [(RESPONSE_TOPIC, "reply/+")])


def _publish_refused(h, plist):
    b = h.broker()
    w = h.connect(b, "pr-w", proto=5)
    w.subscribe("pr/#")
    c = h.connect(b, "pr-c", proto=5)
    c.send_quiet(publish("pr/t", "x", qos=1, mid=1, proto=5, properties=plist))
    c.expect_disconnect_close(0x82)
    w.expect_no_packet(0.3)


@mosquitto_differs("mosquitto 2.0.11 ignores bytes after the Packet Identifier of a v3.1.1 "
                   "PUBACK / PUBREL")
def test_ack_longer_than_2_bytes_closes_v311_MQTT_4_8_0_1(h):
    # v311 3.4.1 / 3.6.1: the Remaining Length of PUBACK and PUBREL is 2; a longer one is a
    # malformed packet (MQTT-4.8.0-1: close). Both kinds, on two connections.
    b, s, mid = _inflight(h, 4, 1)
    s.send_quiet(packet(0x40, u16(mid) + b"\x00"))
    s.expect_closed()
    c = h.connect(b, "long-rel")
    c.send(publish("wk/t", "x", qos=2, mid=5))
    c.expect_packet(pubrec(5))
    c.send_quiet(packet(0x62, u16(5) + b"\x00"))
    c.expect_closed()


@mosquitto_differs("mosquitto 2.0.11 accepts PUBREC / PUBCOMP with reserved flag bits set")
def test_pubrec_pubcomp_reserved_flags_close_MQTT_2_2_2_2(h):
    # v311 MQTT-2.2.2-2 / v5 MQTT-2.1.3-1: PUBREC and PUBCOMP flags must be 0000; otherwise the
    # packet is malformed (v5: DISCONNECT 0x81).
    b, s, mid = _inflight(h, 4, 2)
    s.send_quiet(packet(0x52, u16(mid)))
    s.expect_closed()
    c = h.connect(b, "flag5", proto=5)
    c.send_quiet(packet(0x71, u16(9)))
    c.expect_disconnect_close(0x81)
