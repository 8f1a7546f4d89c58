"""CONNECT / CONNACK: versions, byte-exact CONNACKs (as mosquitto 2.0 sends them), refusals,
client identifiers, takeover, user name / password flags.
"""
from mqtt_test import (connect, connack, publish, pingreq, subscribe, disconnect, check, fail,
                       check_eq, parse, CONNACK, TOPIC_ALIAS_MAXIMUM, RECEIVE_MAXIMUM,
                       ASSIGNED_CLIENT_ID, AUTH_METHOD, vigil_only, mosquitto_differs, sleep)

# The CONNACK mosquitto 2.0 sends to a v5 client with the default configuration:
# Topic Alias Maximum 10, Receive Maximum 20 (max_inflight_messages), in this order.
V5_CONNACK_DEFAULT = bytes.fromhex("200900000622000a210014")


def test_connack_v311_MQTT_3_1_4_4(h):
    # v311 MQTT-3.1.4-4: accepted CONNECT -> CONNACK return code 0; v311 MQTT-3.2.2-1 session
    # present 0 with CleanSession 1; v311 MQTT-3.2.0-1: CONNACK is the first packet sent.
    b = h.broker()
    c = h.client(b)
    c.send(connect("c1", proto=4))
    c.expect_packet(connack(0))
    c.send(pingreq())
    c.expect_packet(b"\xd0\x00")


def test_connack_v31(h):
    # MQTT 3.1 (protocol name MQIsdp, level 3): same 4-byte CONNACK.
    b = h.broker()
    c = h.client(b, proto=3)
    c.send(connect("c31", proto=3))
    c.expect_packet(connack(0))


def test_connack_v5_bytes_v5_MQTT_3_1_4_5(h):
    # v5 MQTT-3.1.4-5, v5 MQTT-3.2.2-2: CONNACK 0x00, session present 0, byte-exact as mosquitto 2.0;
    # v5 MQTT-3.2.2-1 (reserved acknowledge flags 0), v5 MQTT-3.1.2-28 (no Response Information
    # unless requested).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("c5", proto=5))
    c.expect_packet(V5_CONNACK_DEFAULT)


def test_connack_v5_properties_follow_config(h):
    # v5 MQTT-3.2.2-9 family: CONNACK reflects max_inflight_messages (Receive Maximum) and
    # max_topic_alias (Topic Alias Maximum); with max_topic_alias 0 the property is omitted.
    b = h.broker("max_inflight_messages 7\nmax_topic_alias 0\n")
    c = h.client(b, proto=5)
    c.send(connect("c5", proto=5))
    c.expect_packet(connack(0, proto=5, properties=[(RECEIVE_MAXIMUM, 7)]))


def test_assigned_client_id_v5_MQTT_3_1_3_7_MQTT_3_2_2_16(h):
    # v5 MQTT-3.1.3-6/-7, MQTT-3.2.2-16: zero-length ClientID gets a unique Assigned Client
    # Identifier, between Topic Alias Maximum and Receive Maximum as mosquitto orders them.
    b = h.broker()
    ids = []
    for i in range(2):
        c = h.client(b, proto=5)
        c.send(connect("", proto=5))
        p = parse(c.recv("CONNACK"), 5)
        check_eq((p["type"], p["rc"], p["session_present"]), (CONNACK, 0, 0), "CONNACK")
        pl = p["properties"]
        check_eq([k for k, _ in pl], [TOPIC_ALIAS_MAXIMUM, ASSIGNED_CLIENT_ID, RECEIVE_MAXIMUM],
                 "CONNACK property order")
        cid = pl[1][1]
        check(cid.startswith("auto-") and len(cid) > 5, "assigned id %r lacks prefix auto-" % cid)
        ids.append(cid)
    check(ids[0] != ids[1], "assigned ids not unique: %r" % ids)


def test_assigned_client_id_prefix_config(h):
    # auto_id_prefix changes the prefix of assigned identifiers (v5 MQTT-3.1.3-7).
    b = h.broker("auto_id_prefix vg-\n")
    c = h.client(b, proto=5)
    c.send(connect("", proto=5))
    p = parse(c.recv("CONNACK"), 5)
    d = dict(p["properties"])
    check(d.get(ASSIGNED_CLIENT_ID, "").startswith("vg-"), "assigned id %r" % d)


def test_empty_client_id_clean_v311_MQTT_3_1_3_6(h):
    # v311 MQTT-3.1.3-6: zero-length ClientId with CleanSession 1 is accepted.
    b = h.broker()
    c = h.client(b)
    c.send(connect("", proto=4, clean=True))
    c.expect_packet(connack(0))
    c.send(pingreq())
    c.expect_packet(b"\xd0\x00")


def test_empty_client_id_persistent_v311_MQTT_3_1_3_8(h):
    # v311 MQTT-3.1.3-8: zero-length ClientId with CleanSession 0 -> CONNACK 0x02, then close.
    b = h.broker()
    c = h.client(b)
    c.send(connect("", proto=4, clean=False))
    c.expect_packet(connack(2))
    c.expect_closed()


def test_zero_length_id_disallowed_v311_MQTT_3_1_3_9(h):
    # v311 MQTT-3.1.3-9: allow_zero_length_clientid false -> identifier rejected (0x02), close.
    b = h.broker("allow_zero_length_clientid false\n")
    c = h.client(b)
    c.send(connect("", proto=4, clean=True))
    c.expect_packet(connack(2))
    c.expect_closed()


def test_zero_length_id_disallowed_v5_MQTT_3_1_3_8(h):
    # v5 MQTT-3.1.3-8: ClientID refused -> MAY send CONNACK 0x85, then MUST close; v5 MQTT-3.2.2-6
    # (session present 0 with a non-zero code), v5 MQTT-3.2.2-8 (a defined reason code).
    # compat: mosquitto 2.0 answers 0x80 (Unspecified error), which the MAY also allows.
    b = h.broker("allow_zero_length_clientid false\n")
    c = h.client(b, proto=5)
    c.send(connect("", proto=5))
    c.expect_optional_then_closed([connack(0x85, proto=5), connack(0x80, proto=5)])


def test_long_client_id_accepted_v311_MQTT_3_1_3_5(h):
    # v311 MQTT-3.1.3-5: 1..23 bytes of [0-9a-zA-Z] must be accepted (longer ones may be).
    b = h.broker()
    c = h.client(b)
    c.send(connect("abcdefghijklmnopqrstuvw", proto=4))
    c.expect_packet(connack(0))
    c2 = h.client(b)
    c2.send(connect("0123456789ABCDEFGHIJKLM", proto=4))
    c2.expect_packet(connack(0))


def test_unsupported_protocol_level_v311_MQTT_3_1_2_2(h):
    # v311 MQTT-3.1.2-2: unsupported protocol level -> CONNACK 0x01, then close; v311 MQTT-3.2.2-4
    # (session present 0 with a non-zero code), v311 MQTT-3.2.2-5 (close after it).
    b = h.broker()
    c = h.client(b)
    c.send(connect("bad", proto=6, proto_name="MQTT"))
    c.expect_packet(connack(1))
    c.expect_closed()


def test_unsupported_level_rejected_connect_processes_nothing_v311_MQTT_3_1_4_5(h):
    # v311 MQTT-3.1.4-5: after rejecting CONNECT, the Server processes nothing else the client
    # sent (a PUBLISH in the same segment must not reach a subscriber).
    b = h.broker()
    s = h.connect(b, "sub")
    s.subscribe("t/leak")
    c = h.client(b)
    c.send(connect("bad", proto=7, proto_name="MQTT") + publish("t/leak", b"x"))
    c.expect_packet(connack(1))
    c.expect_closed()
    s.expect_no_packet(0.3)


def test_wrong_protocol_name_v311_MQTT_3_1_2_1(h):
    # v311 MQTT-3.1.2-1: wrong protocol name -> must not be processed as MQTT 3.1.1: the
    # connection is closed (a refusing CONNACK may precede the close).
    b = h.broker()
    c = h.client(b)
    c.send(connect("bad", proto=4, proto_name="MQTX"))
    c.expect_optional_then_closed([connack(1), connack(2), connack(5)])


def test_wrong_protocol_name_v5_MQTT_3_1_2_1(h):
    # v5 MQTT-3.1.2-1: name other than 'MQTT' -> optional CONNACK 0x84, then close.
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("bad", proto=5, proto_name="MQTS"))
    c.expect_optional_then_closed([connack(0x84, proto=5), connack(1)])


def test_reserved_flag_v311_MQTT_3_1_2_3(h):
    # v311 MQTT-3.1.2-3 / v311 MQTT-3.1.4-1: reserved connect flag set -> close without CONNACK.
    b = h.broker()
    c = h.client(b)
    c.send(connect("r", proto=4, reserved=True))
    c.expect_closed()


def test_reserved_flag_v5_MQTT_3_1_2_3(h):
    # v5 MQTT-3.1.2-3 / MQTT-4.13.1-1: malformed CONNECT -> close (CONNACK 0x81 allowed first).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("r", proto=5, reserved=True))
    c.expect_optional_then_closed([connack(0x81, proto=5)])


def test_first_packet_must_be_connect_v311_MQTT_3_1_0_1(h):
    # v311 MQTT-3.1.0-1 (and v311 MQTT-3.1.4-1): a PINGREQ before CONNECT closes the connection, unanswered.
    b = h.broker()
    c = h.client(b)
    c.send(pingreq())
    c.expect_closed()


def test_first_packet_must_be_connect_publish_v5_MQTT_3_1_0_1(h):
    # v5 MQTT-3.1.0-1: a PUBLISH before CONNECT closes the connection and is not delivered.
    b = h.broker()
    s = h.connect(b, "sub", proto=5)
    s.subscribe("t/pre")
    c = h.client(b, proto=5)
    c.send(publish("t/pre", b"x", proto=5))
    c.expect_closed()
    s.expect_no_packet(0.3)


def test_first_packet_subscribe_closes(h):
    # v311 MQTT-3.1.0-1: a SUBSCRIBE before CONNECT closes the connection without SUBACK.
    b = h.broker()
    c = h.client(b)
    c.send(subscribe(1, "a"))
    c.expect_closed()


def test_second_connect_v311_MQTT_3_1_0_2(h):
    # v311 MQTT-3.1.0-2: a second CONNECT is a protocol violation: the Server disconnects.
    b = h.broker()
    c = h.connect(b, "twice")
    c.send(connect("twice"))
    c.expect_closed()


def test_second_connect_v5_MQTT_3_1_0_2(h):
    # v5 MQTT-3.1.0-2: second CONNECT is a Protocol Error -> (DISCONNECT 0x82) close; v5
    # MQTT-3.2.0-2: never a second CONNACK.
    b = h.broker()
    c = h.connect(b, "twice5", proto=5)
    c.send(connect("twice5", proto=5))
    c.expect_disconnect_close(0x82)


def test_takeover_v311_MQTT_3_1_4_2(h):
    # v311 MQTT-3.1.4-2: CONNECT with a connected ClientId disconnects the existing client.
    b = h.broker()
    old = h.connect(b, "dup")
    new = h.connect(b, "dup")
    old.expect_closed()
    new.send(pingreq())
    new.expect_packet(b"\xd0\x00")


def test_takeover_v5_closes_old(h):
    # v5 MQTT-3.1.4-3 (the MUST part): the old connection is closed; DISCONNECT 0x8E may precede.
    b = h.broker()
    old = h.connect(b, "dup5", proto=5)
    new = h.connect(b, "dup5", proto=5)
    old.expect_closed(allow_disconnect=0x8E)
    new.send(pingreq())
    new.expect_packet(b"\xd0\x00")


@mosquitto_differs("mosquitto 2.0.11 closes the old v5 connection without DISCONNECT 0x8E")
def test_takeover_v5_MQTT_3_1_4_3(h):
    # v5 MQTT-3.1.4-3: the old connection gets DISCONNECT 0x8E (Session taken over), then close.
    b = h.broker()
    old = h.connect(b, "dup5", proto=5)
    new = h.connect(b, "dup5", proto=5)
    old.expect_packet(disconnect(0x8E, proto=5))
    old.expect_closed()
    new.send(pingreq())
    new.expect_packet(b"\xd0\x00")


def test_takeover_across_versions(h):
    # v5 MQTT-3.1.4-3: a v3.1.1 connection taken over by a v5 client with the same id is closed
    # (no DISCONNECT exists in 3.1.1); the v5 session works.
    b = h.broker()
    old = h.connect(b, "mixed", proto=4)
    new = h.connect(b, "mixed", proto=5)
    old.expect_closed()
    new.send(pingreq())
    new.expect_packet(b"\xd0\x00")


def test_username_password_accepted_v311(h):
    # v311 MQTT-3.1.2-19/-21 (client-side flags): user name and password with anonymous allowed.
    b = h.broker()
    c = h.client(b)
    c.send(connect("up", username="user", password=b"secret"))
    c.expect_packet(connack(0))


def test_username_only_accepted_v5(h):
    # v5 MQTT-3.1.2-17: User Name Flag 1 with a user name, no password.
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("u5", proto=5, username="user"))
    c.expect_packet(V5_CONNACK_DEFAULT)


def test_password_without_username_v311_MQTT_3_1_2_22(h):
    # v311 MQTT-3.1.2-22 (client rule), enforced through v311 MQTT-3.1.4-1: password flag without the
    # user name flag is invalid: the connection is closed (no successful CONNACK).
    b = h.broker()
    c = h.client(b)
    c.send(connect("pw", password=b"secret"))
    c.expect_optional_then_closed([connack(1), connack(2), connack(4), connack(5)])


def test_username_flag_without_field_malformed_v311_MQTT_3_1_4_1(h):
    # v311 MQTT-3.1.4-1: user name flag set but no user name in the payload -> close, no CONNACK 0.
    b = h.broker()
    c = h.client(b)
    pkt = connect("nf", proto=4, flags=0x82)  # user name flag, but the payload ends after the id
    c.send(pkt)
    c.expect_closed()


def test_will_qos3_v311_MQTT_3_1_2_14(h):
    # v311 MQTT-3.1.2-14: Will QoS 3 is invalid -> the Server closes the connection.
    b = h.broker()
    c = h.client(b)
    c.send(connect("wq", will={"topic": "w", "payload": b"x", "qos": 3}))
    c.expect_closed()


def test_will_qos_without_will_flag_v311_MQTT_3_1_2_13(h):
    # v311 MQTT-3.1.2-13: Will Flag 0 requires Will QoS 0; violating CONNECT -> close.
    b = h.broker()
    c = h.client(b)
    c.send(connect("wq0", flags=0x02 | 0x08))
    c.expect_closed()


def test_will_retain_without_will_flag_v311_MQTT_3_1_2_15(h):
    # v311 MQTT-3.1.2-15: Will Flag 0 requires Will Retain 0; violating CONNECT -> close.
    b = h.broker()
    c = h.client(b)
    c.send(connect("wr0", flags=0x02 | 0x20))
    c.expect_closed()


def test_auth_method_unsupported_v5_MQTT_3_1_4_2(h):
    # v5 MQTT-3.1.4-2: enhanced authentication method not supported -> CONNACK 0x8C, close
    # (v5 MQTT-4.12.0-4: a Server refusing the authentication sends a CONNACK 0x80+ and closes).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("am", proto=5, properties=[(AUTH_METHOD, "SCRAM-SHA-1")]))
    c.expect_packet(connack(0x8C, proto=5))
    c.expect_closed()


def test_keepalive_zero_accepted(h):
    # v311 MQTT-3.1.2-24 (keepalive 0 turns the mechanism off): connection stays up.
    b = h.broker()
    c = h.connect(b, "k0", keepalive=0)
    check(c.is_open(0.3), "closed")


def test_connack_before_other_packets_v5_MQTT_3_2_0_1(h):
    # v5 MQTT-3.2.0-1: CONNECT and SUBSCRIBE in one segment: CONNACK comes first, then SUBACK.
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("pipe", proto=5) + subscribe(1, [("a/b", 1)], proto=5))
    c.expect_packet(V5_CONNACK_DEFAULT)
    c.expect_packet(bytes.fromhex("9004000100" "01"))


def test_disconnect_then_nothing_processed_v311_MQTT_3_14_4_3(h):
    # v311 MQTT-3.14.4-3 family: after DISCONNECT the server closes; a PUBLISH following the
    # DISCONNECT in the same segment is not delivered.
    b = h.broker()
    s = h.connect(b, "sub")
    s.subscribe("t/after")
    c = h.connect(b, "pub")
    c.send(disconnect() + publish("t/after", b"late"))
    c.expect_closed()
    s.expect_no_packet(0.3)


@vigil_only("vigil closes a connection that sends no CONNECT after a short timeout")
def test_no_connect_timeout(h):
    # design: a socket that never sends CONNECT is closed after a short configurable timeout.
    b = h.broker()
    c = h.client(b)
    c.expect_closed(timeout=12.0)


test_no_connect_timeout.timeout = 15


def test_many_connections(h):
    # v311 MQTT-3.1.4-4: 50 concurrent connections all get CONNACK 0.
    b = h.broker()
    cs = []
    for i in range(50):
        c = h.client(b)
        c.send(connect("m%d" % i))
        cs.append(c)
    for c in cs:
        c.expect_packet(connack(0))
    if not all(c.is_open(0.01) for c in cs):
        fail("a connection closed")
    sleep(0)


def test_unsupported_protocol_level_v5_MQTT_3_1_2_2(h):
    # v5 MQTT-3.1.2-2: a version other than 5 (here 6) -> optional CONNACK 0x84 (or a v3-style
    # 0x01), then close.
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("lv6", proto=5).replace(b"MQTT\x05", b"MQTT\x06"))
    c.expect_optional_then_closed([connack(0x84, proto=5), connack(1)])


def test_long_client_id_accepted_v5_MQTT_3_1_3_5(h):
    # v5 MQTT-3.1.3-5: 1..23 bytes of [0-9a-zA-Z] must be accepted; longer ones are too (as
    # mosquitto).
    b = h.broker()
    for cid in ("Z", "abcdefghijklmnopqrstuvw", "x" * 200):
        c = h.client(b, proto=5)
        c.send(connect(cid, proto=5))
        c.expect_packet(V5_CONNACK_DEFAULT)


def test_request_response_information_zero_v5_MQTT_3_1_2_28(h):
    # v5 MQTT-3.1.2-28: Request Response Information 0 -> no Response Information in CONNACK.
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("rri", proto=5, properties=[(0x19, 0)]))
    c.expect_packet(V5_CONNACK_DEFAULT)
