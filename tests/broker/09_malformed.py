"""Malformed packets and protocol errors after a successful CONNECT: the connection is closed
(v5: DISCONNECT 0x81 Malformed Packet / 0x82 Protocol Error / a more specific code first, which
vigil always sends and the spec says SHOULD), and nothing in or after the bad packet is processed.
Byte-exact on both brokers: where mosquitto closes without the DISCONNECT, mosq=None says so.
(19_malformed_matrix.py covers every packet type with every malformation.)
"""
from mqtt_test import (connect, publish, subscribe, unsubscribe, mstr, u16, packet, props,
                       disconnect, pingreq, PAYLOAD_FORMAT, TOPIC_ALIAS, mosquitto_differs,
                       vigil_pending)


SAME = "same"


def _bad(h, proto, data, rc=None, mosq=SAME):
    """Connect, subscribe a witness to '#', send data + a valid PUBLISH: the connection must close
    (v5: after exactly DISCONNECT rc on vigil), and the witness must receive nothing. On mosquitto
    the answer is its own, byte-exact: mosq SAME (vigil's), None (a bare close: mosquitto only
    leaves out the reason, issue 7 keeps vigil's) or another reason code (then the test is
    @mosquitto_differs and checks vigil's answer everywhere)."""
    b = h.broker()
    w = h.connect(b, "witness", proto=4)
    w.subscribe("#")
    c = h.connect(b, "bad", proto=proto)
    c.send_quiet(data + publish("after/bad", "x", proto=proto))
    if h.mosquitto and mosq is not SAME and not isinstance(mosq, int):
        rc = None
    if proto == 5 and rc is not None:
        c.expect_packet(disconnect(rc, proto=5))
    c.expect_closed()
    w.expect_no_packet(0.3)


def _case(name, proto, data, rc=None, mosq=SAME, comment="", differs=None, pending=None):
    """pending: the answer the issue wants from vigil is rc, due from another area."""
    def t(h):
        _bad(h, proto, data, rc, mosq)
    t.__name__ = name
    t.__doc__ = comment
    if isinstance(mosq, int) and not differs:
        differs = "mosquitto 2.0.11 sends DISCONNECT 0x%02x" % mosq
    if differs:
        t = mosquitto_differs(differs)(t)
    if pending:
        t = vigil_pending(pending)(t)
    globals()[name] = t


# Reserved fixed-header flags.
_case("test_subscribe_flags_v311_MQTT_3_8_1_1", 4, subscribe(1, "a", first_byte=0x80),
      comment="v311 MQTT-3.8.1-1: SUBSCRIBE flags must be 0010")
_case("test_subscribe_flags_v5_MQTT_3_8_1_1", 5, subscribe(1, "a", proto=5, first_byte=0x83),
      0x81, comment="v5 MQTT-3.8.1-1")
_case("test_unsubscribe_flags_v311_MQTT_3_10_1_1", 4, unsubscribe(1, "a", first_byte=0xA0),
      comment="v311 MQTT-3.10.1-1")
_case("test_unsubscribe_flags_v5_MQTT_3_10_1_1", 5, unsubscribe(1, "a", proto=5,
                                                                first_byte=0xA3), 0x81,
      comment="v5 MQTT-3.10.1-1")
_case("test_pubrel_flags_v311_MQTT_3_6_1_1", 4, packet(0x60, u16(1)),
      comment="v311 MQTT-3.6.1-1: PUBREL flags must be 0010")
_case("test_pubrel_flags_v5_MQTT_3_6_1_1", 5, packet(0x60, u16(1)), 0x81, mosq=None,
      comment="v5 MQTT-3.6.1-1")
_case("test_pingreq_flags_v311_MQTT_2_2_2_2", 4, b"\xc1\x00",
      comment="v311 MQTT-2.2.2-1/-2: reserved flags must be 0 -> close",
      differs="mosquitto 2.0.11 answers a PINGREQ with flags 0001 instead of closing")
_case("test_pingreq_flags_v5_MQTT_2_1_3_1", 5, b"\xc8\x00", 0x81, comment="v5 MQTT-2.1.3-1",
      differs="mosquitto 2.0.11 answers a PINGREQ with flags 1000 instead of closing")
_case("test_puback_flags_v311_MQTT_2_2_2_2", 4, packet(0x41, u16(1)),
      comment="v311 MQTT-2.2.2-2",
      differs="mosquitto 2.0.11 accepts a PUBACK with flags 0001")
_case("test_subscribe_flags_0_v311_MQTT_3_8_1_1", 4, subscribe(1, "a", first_byte=0x8A),
      comment="v311 MQTT-3.8.1-1: SUBSCRIBE flags 1010")
_case("test_disconnect_flags_v311_MQTT_3_14_1_1", 4, b"\xe1\x00",
      comment="v311 MQTT-3.14.1-1: DISCONNECT reserved bits must be 0")
_case("test_disconnect_flags_v5_MQTT_3_14_1_1", 5, b"\xe2\x00", 0x81, mosq=None,
      comment="v5 MQTT-3.14.1-1: DISCONNECT reserved bits -> DISCONNECT 0x81")
_case("test_reserved_packet_type_0_v311", 4, b"\x00\x00",
      comment="v311 2.2.1: packet type 0 is reserved -> MQTT-4.8.0-1 close")
_case("test_auth_packet_in_v311", 4, b"\xf0\x00",
      comment="v311 2.2.1: packet type 15 is reserved in 3.1.1 -> close")
_case("test_client_sends_connack_v5", 5, b"\x20\x03\x00\x00\x00", 0x82,
      mosq=None, comment="v5 MQTT-4.13.1-1: a CONNACK from a client is a Protocol Error")

# PUBLISH.
_case("test_publish_qos3_v311_MQTT_3_3_1_4", 4, bytes([0x36, 0x06]) + mstr("a/b") + b"\x00",
      comment="v311 MQTT-3.3.1-4: QoS bits 11 -> close")
_case("test_publish_qos3_v5_MQTT_3_3_1_4", 5, bytes([0x36, 0x06]) + mstr("a") + u16(1) + b"\x00",
      0x81, comment="v5 MQTT-3.3.1-4")
_case("test_publish_wildcard_plus_v311_MQTT_3_3_2_2", 4, publish("a/+", "x"),
      comment="v311 MQTT-3.3.2-2: no wildcards in a Topic Name")
_case("test_publish_wildcard_hash_v311_MQTT_4_7_1_1", 4, publish("a/#", "x"),
      comment="v311 MQTT-4.7.1-1")
_case("test_publish_wildcard_v5_MQTT_3_3_2_2", 5, publish("a/#", "x", proto=5), 0x90,
      mosq=0x82, comment="v5 MQTT-3.3.2-2: DISCONNECT 0x90 Topic Name invalid")
_case("test_publish_empty_topic_v311_MQTT_4_7_3_1", 4, publish("", "x"),
      comment="v311 MQTT-4.7.3-1: Topic Names are at least one character long")
_case("test_publish_empty_topic_no_alias_v5_MQTT_4_7_3_1", 5, publish("", "x", proto=5), 0x82,
      comment="v5 MQTT-4.7.3-1 / 3.3.2.1: empty topic without alias")
_case("test_publish_qos1_mid0_v311_MQTT_2_3_1_1", 4, publish("a", "x", qos=1, mid=0),
      comment="v311 MQTT-2.3.1-1: QoS>0 PUBLISH needs a non-zero Packet Identifier")
_case("test_publish_qos1_mid0_v5", 5, publish("a", "x", qos=1, mid=0, proto=5), 0x82,
      comment="v5 2.2.1: Packet Identifier 0 -> protocol error")
_case("test_publish_topic_longer_than_packet_v311", 4, bytes([0x30, 0x04, 0x00, 0x0A]) + b"ab",
      comment="v311 MQTT-4.8.0-1: topic length beyond the packet -> malformed, close")
_case("test_publish_topic_longer_than_packet_v5", 5, bytes([0x30, 0x04, 0x00, 0x0A]) + b"ab",
      0x81, comment="v5 MQTT-4.13.1-1: malformed")

# UTF-8.
_case("test_topic_bad_utf8_v311_MQTT_1_5_3_1", 4, packet(0x30, mstr(b"a/\xc3\x28") + b"x"),
      comment="v311 MQTT-1.5.3-1: ill-formed UTF-8 -> close")
_case("test_topic_bad_utf8_v5_MQTT_1_5_4_1", 5, packet(0x30, mstr(b"a/\xc3\x28") + b"\x00x"),
      0x81, comment="v5 MQTT-1.5.4-1")
_case("test_topic_surrogate_v311_MQTT_1_5_3_1", 4, packet(0x30, mstr(b"a/\xed\xa0\x80") + b"x"),
      comment="v311 MQTT-1.5.3-1: UTF-8 encoded surrogate U+D800 -> close")
_case("test_topic_overlong_utf8_v5_MQTT_1_5_4_1", 5, packet(0x30, mstr(b"a/\xc0\xaf") + b"\x00"),
      0x81, comment="v5 MQTT-1.5.4-1: overlong encoding is ill-formed")
_case("test_topic_nul_v311_MQTT_1_5_3_2", 4, packet(0x30, mstr(b"a\x00b") + b"x"),
      comment="v311 MQTT-1.5.3-2, v311 MQTT-4.7.3-2: U+0000 -> close")
_case("test_topic_nul_v5_MQTT_1_5_4_2", 5, packet(0x30, mstr(b"a\x00b") + b"\x00x"), 0x81,
      comment="v5 MQTT-1.5.4-2, v5 MQTT-4.7.3-2")
_case("test_subscribe_filter_bad_utf8_v311_MQTT_1_5_3_1", 4,
      packet(0x82, u16(1) + mstr(b"a/\xff") + b"\x00"), comment="v311 MQTT-1.5.3-1")
_case("test_user_property_bad_utf8_v5_MQTT_1_5_7_1", 5,
      packet(0x30, mstr("a") + props([(0x26, (b"k\xff", "v"))]) + b"x"), 0x81, mosq=None,
      comment="v5 MQTT-1.5.7-1: user property name must be well-formed UTF-8")

# SUBSCRIBE / UNSUBSCRIBE payloads.
_case("test_subscribe_empty_v311_MQTT_3_8_3_3", 4, packet(0x82, u16(1)),
      comment="v311 MQTT-3.8.3-3: SUBSCRIBE without any filter -> close")
_case("test_subscribe_empty_v5_MQTT_3_8_3_2", 5, packet(0x82, u16(1) + b"\x00"), 0x82,
      mosq=0x81, comment="v5 MQTT-3.8.3-2: 'a SUBSCRIBE packet with no Payload is a Protocol Error'")
_case("test_unsubscribe_empty_v311_MQTT_3_10_3_2", 4, packet(0xA2, u16(1)),
      comment="v311 MQTT-3.10.3-2: UNSUBSCRIBE without any filter -> close")
_case("test_unsubscribe_empty_v5_MQTT_3_10_3_2", 5, packet(0xA2, u16(1) + b"\x00"), 0x82,
      mosq=0x81, comment="v5 MQTT-3.10.3-2: no Payload is a Protocol Error (3.10.3)")
_case("test_subscribe_qos3_v311_MQTT_3_8_3_4", 4, subscribe(1, [("a", 3)]),
      comment="v311 MQTT-3.8.3-4: requested QoS 3 -> malformed, close")
_case("test_subscribe_reserved_bits_v311_MQTT_3_8_3_4", 4, subscribe(1, [("a", 0x04)]),
      comment="v311 MQTT-3.8.3-4: reserved bits in the QoS byte -> close")
_case("test_subscribe_reserved_bits_v5_MQTT_3_8_3_5", 5, subscribe(1, [("a", 0xC0)], proto=5),
      0x81, comment="v5 MQTT-3.8.3-5: reserved Subscription Options bits -> malformed")
_case("test_subscribe_qos3_v5_MQTT_3_8_3_5", 5, subscribe(1, [("a", 0x03)], proto=5), 0x81,
      comment="v5 3.8.3.1: QoS 3 -> malformed")
_case("test_subscribe_mid0_v311_MQTT_2_3_1_1", 4, subscribe(0, "a"),
      comment="v311 MQTT-2.3.1-1: SUBSCRIBE needs a non-zero Packet Identifier")
_case("test_subscribe_truncated_filter_v311", 4, packet(0x82, u16(1) + u16(5) + b"ab"),
      comment="v311 MQTT-4.8.0-1: filter length beyond the packet -> close")

# v5 properties.
_case("test_property_unknown_id_v5", 5, packet(0x30, mstr("a") + b"\x02\x7f\x00" + b"x"), 0x81,
      comment="v5 2.2.2.2: an unknown property identifier -> Malformed Packet")
_case("test_property_duplicate_v5", 5,
      packet(0x30, mstr("a") + props([(PAYLOAD_FORMAT, 0), (PAYLOAD_FORMAT, 0)]) + b"x"), 0x82,
      mosq=None, comment="v5 3.3.2.3.2: Payload Format Indicator twice -> Protocol Error")
_case("test_property_length_beyond_packet_v5", 5, packet(0x30, mstr("a") + b"\x10\x01"), 0x81,
      comment="v5 2.2.2.1: property length beyond the packet -> Malformed Packet")
_case("test_property_wrong_for_packet_v5", 5,
      packet(0x30, mstr("a") + props([(0x11, 5)]) + b"x"), 0x81,
      comment="v5 2.2.2.2: Session Expiry Interval is not a PUBLISH property -> malformed")
_case("test_topic_alias_truncated_v5", 5, packet(0x30, mstr("a") + b"\x02" + bytes([TOPIC_ALIAS])
                                                 + b"\x00"), 0x81,
      comment="v5 2.2.2.2: two-byte property with one byte -> malformed")

# Remaining length.
_case("test_remaining_length_5_bytes_v311", 4, b"\x30\xff\xff\xff\xff\x7f",
      comment="v311 2.2.3: remaining length of more than 4 bytes -> malformed, close")
_case("test_remaining_length_5_bytes_v5", 5, b"\x30\xff\xff\xff\xff\x7f", 0x81, mosq=None,
      comment="v5 MQTT-1.5.5-1 / 2.1.4: more than 4 length bytes -> malformed")
_case("test_pingreq_with_body_v311", 4, b"\xc0\x01\x00",
      comment="v311 3.12: PINGREQ has no payload; a remaining length of 1 is malformed",
      differs="mosquitto 2.0.11 answers a PINGREQ with remaining length 1")
_case("test_puback_short_v311", 4, b"\x40\x01\x00",
      comment="v311 3.4: PUBACK needs a 2-byte Packet Identifier")


@mosquitto_differs("mosquitto 2.0.11 takes DISCONNECT with undefined reason 0x03 as a normal "
                   "disconnect and drops the Will")
def test_disconnect_bad_reason_code_v5_MQTT_3_14_2_1(h):
    # v5 MQTT-3.14.2-1: DISCONNECT with an undefined reason code (0x03) is malformed: the broker
    # closes (and, as it is an abnormal end, publishes the Will).
    b = h.broker()
    s = h.connect(b, "drs", proto=5)
    s.subscribe("will/drc")
    c = h.connect(b, "drc", proto=5, will={"topic": "will/drc", "payload": b"w"})
    c.send_quiet(packet(0xE0, b"\x03"))
    c.expect_packet(disconnect(0x82, proto=5))
    c.expect_closed()
    s.expect_publish("will/drc", "w")


def test_nothing_processed_after_malformed_v311_MQTT_4_8_0_1(h):
    # v311 MQTT-4.8.0-1: after a protocol violation the connection is closed: a PINGREQ in the
    # same segment is not answered.
    b = h.broker()
    c = h.connect(b, "npm")
    c.send(publish("a/+", "x") + pingreq())
    c.expect_closed()


def test_bad_utf8_client_id_v311_MQTT_1_5_3_1(h):
    # v311 MQTT-1.5.3-1 in CONNECT: ill-formed client identifier -> close without CONNACK (both
    # brokers).
    b = h.broker()
    c = h.client(b)
    data = bytearray(connect("ab\xe9", proto=4))
    data = bytes(data).replace(b"ab\xc3\xa9", b"ab\xc3\x28")
    c.send(data)
    c.expect_closed()


def test_nul_client_id_v5_MQTT_1_5_4_2(h):
    # v5 MQTT-1.5.4-2 in CONNECT: U+0000 in the client identifier -> malformed: vigil CONNACK
    # 0x81 then close; mosquitto 2.0.11 closes without CONNACK (vigil only adds the reason).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("a\x00b", proto=5))
    if h.vigil:
        c.expect_packet(packet(0x20, b"\x00\x81\x00"))
    c.expect_closed()


def test_connect_truncated_v311_MQTT_3_1_4_1(h):
    # v311 MQTT-3.1.4-1: a CONNECT whose declared client id runs past the packet -> close.
    b = h.broker()
    c = h.client(b)
    body = mstr("MQTT") + bytes([4, 2]) + u16(60) + u16(20) + b"short"
    c.send(packet(0x10, body))
    c.expect_closed()
