"""CONNECT, session and SUBSCRIBE rules, byte-exact on vigil and mosquitto 2.0.11: the order in which
CONNECT faults are answered, MQTT 3.1 leniencies, will size and will delay on reconnect, packets
larger than the client's Maximum Packet Size, ACL and SUBSCRIBE, invalid SUBSCRIBE / UNSUBSCRIBE,
mosquitto bridge protocol levels (0x83 / 0x84 / 0x85).

Where vigil deliberately answers differently (a more precise reason code, a CONNACK before a close
where mosquitto closes silently, the spec where mosquitto breaks it) the test is marked
@mosquitto_differs and mosquitto-compat.md has the row.
"""
import os
import time

from mqtt_test import (connect, connack, publish, subscribe, suback, unsubscribe, unsuback,
                       disconnect, pingreq, packet, mstr, u16, props, check, check_eq, parse,
                       ASSIGNED_CLIENT_ID, SESSION_EXPIRY, WILL_DELAY, MAXIMUM_PACKET_SIZE,
                       SUBSCRIPTION_ID, RECEIVE_MAXIMUM, AUTH_DATA, mosquitto_differs, sleep, timeout)

V5_CONNACK_DEFAULT = bytes.fromhex("200900000622000a210014")


def _watch(h, b, topic="w/#"):
    w = h.connect(b, "watch")
    w.subscribe([(topic, 0)])
    return w


# ---- MQTT 3.1 -----------------------------------------------------------------------------------


def test_v31_connack_without_session_present(h):
    # MQTT 3.1 3.2: the first CONNACK byte is reserved (no Session Present flag); a resumed 3.1
    # session gets 20 02 00 00 (v311 MQTT-3.2.2-2 gives the flag only from level 4 on).
    b = h.broker()
    c = h.client(b, proto=3)
    c.send(connect("c31", proto=3, clean=False))
    c.expect_packet(connack(0))
    c.close()
    sleep(0.2)
    c = h.client(b, proto=3)
    c.send(connect("c31", proto=3, clean=False))
    c.expect_packet(connack(0))
    c4 = h.client(b)
    c4.send(connect("c311", clean=False))
    c4.expect_packet(connack(0))
    c4.close()
    sleep(0.2)
    c4 = h.client(b)
    c4.send(connect("c311", clean=False))
    c4.expect_packet(connack(0, session_present=True))  # v311 MQTT-3.2.2-2


def test_v31_connect_flags_leniency(h):
    # MQTT 3.1 has no rule for the reserved flag bit or for will QoS / retain without the will
    # flag (v311 MQTT-3.1.2-3 / -13 / -15 are 3.1.1 rules): accepted, as mosquitto; will QoS 3 is
    # still refused (closed).
    b = h.broker()
    for i, flags in enumerate((0x03, 0x0A, 0x22)):
        c = h.client(b, proto=3)
        c.send(connect("l%d" % i, proto=3, flags=flags))
        c.expect_packet(connack(0))
    c = h.client(b, proto=3)
    c.send(connect("l3", proto=3, flags=0x1A))
    c.expect_closed()
    for flags in (0x03, 0x0A, 0x22):  # v311 MQTT-3.1.2-3, v311 MQTT-3.1.2-13, v311 MQTT-3.1.2-15
        c = h.client(b)
        c.send(connect("l4", flags=flags))
        c.expect_closed()


def test_v31_empty_subscribe_and_unsubscribe(h):
    # MQTT 3.1 does not require a topic in SUBSCRIBE / UNSUBSCRIBE: an empty one is answered with
    # an empty SUBACK / UNSUBACK, as mosquitto; 3.1.1 closes (v311 MQTT-3.8.3-3, v311 MQTT-3.10.3-2).
    b = h.broker()
    c = h.connect(b, "e31", proto=3)
    c.send(subscribe(3, []))
    c.expect_packet(suback(3, []))
    c.send(unsubscribe(4, []))
    c.expect_packet(unsuback(4))
    c.send(pingreq())
    c.expect_packet(b"\xd0\x00")
    for pkt in (subscribe(3, []), unsubscribe(4, [])):
        c = h.connect(b, "e311")
        c.send(pkt)
        c.expect_closed()


# ---- the order of CONNECT checks (as mosquitto) ------------------------------------------------


def test_connect_check_order_v311(h):
    # v311 MQTT-3.1.3-8 (empty id needs CleanSession 1) is decided before the password
    # (v311 MQTT-3.1.4-2 order as mosquitto: 0x02, not 0x05); will QoS above max_qos closes before the
    # client id rules (v311 MQTT-3.2.2-? has no code for it: close, as mosquitto).
    b = h.broker("allow_anonymous false\nmax_qos 1\nmessage_size_limit 10\n"
                 "allow_zero_length_clientid false\n", anon=False)
    h.expect_refused(b, "", 2, clean=False, username="u", password="p")
    c = h.client(b)
    c.send(connect("", clean=False, will=dict(topic="w", payload=b"x", qos=2)))
    c.expect_closed()
    h.expect_refused(b, "", 2, will=dict(topic="w", payload=b"x" * 20))


def test_connect_check_order_v5(h):
    # v5 MQTT-3.2.2-12 (will QoS above Maximum QoS: CONNACK 0x9B) comes before authentication and
    # the client id rules, as mosquitto; its refusing CONNACK carries Maximum QoS, as mosquitto's.
    b = h.broker("allow_anonymous false\nmax_qos 1\n", anon=False)
    c = h.client(b, proto=5)
    c.send(connect("", proto=5, clean=False, will=dict(topic="w", payload=b"x", qos=2)))
    c.expect_packet(bytes.fromhex("2005009b022401"))
    c.expect_closed()


def test_refusing_connack_carries_maximum_qos_v5(h):
    # v5 MQTT-3.2.2-9 family: with max_qos 1 mosquitto puts Maximum QoS 1 into a refusing CONNACK
    # too (Retain not supported 0x9A here, v5 MQTT-3.2.2-13; not authorized 0x87).
    b = h.broker("max_qos 1\nretain_available false\n")
    c = h.client(b, proto=5)
    c.send(connect("r", proto=5, will=dict(topic="w", payload=b"x", retain=True)))
    c.expect_packet(bytes.fromhex("2005009a022401"))
    c.expect_closed()
    b2 = h.broker("max_qos 0\nallow_anonymous false\n", anon=False)
    c = h.client(b2, proto=5)
    c.send(connect("r", proto=5))
    c.expect_packet(bytes.fromhex("20050087022400"))
    c.expect_closed()


def test_will_retain_not_supported_v311_closes(h):
    # v311: no return code for an unsupported will retain; closed without CONNACK, as mosquitto
    # (v5 gets 0x9A, MQTT-3.2.2-13).
    b = h.broker("retain_available false\n")
    c = h.client(b)
    c.send(connect("r", will=dict(topic="w", payload=b"x", retain=True)))
    c.expect_closed()


# ---- client identifier -------------------------------------------------------------------------


def test_use_username_as_clientid_empty_id_assigned_v5_MQTT_3_2_2_16(h):
    # v5 MQTT-3.2.2-16: a zero-length id gets an Assigned Client Identifier; with
    # use_username_as_clientid it is the user name (as mosquitto).
    b = h.broker("use_username_as_clientid true\n")
    c = h.client(b, proto=5)
    c.send(connect("", proto=5, username="alice"))
    c.expect_packet(connack(0, proto=5, properties=[(0x22, 10), (ASSIGNED_CLIENT_ID, "alice"),
                                                    (RECEIVE_MAXIMUM, 20)]))
    c4 = h.client(b)
    c4.send(connect("", clean=False, username="bob"))  # v311 MQTT-3.1.3-8 first, as mosquitto
    c4.expect_packet(connack(2))
    c4.expect_closed()


def test_long_client_id_v31_accepted(h):
    # MQTT 3.1 limits client ids to 23 characters, but mosquitto (and vigil) accept longer ones;
    # an empty one is refused with 0x02 (MQTT 3.1 3.1).
    b = h.broker()
    c = h.client(b, proto=3)
    c.send(connect("x" * 200, proto=3))
    c.expect_packet(connack(0))
    h.expect_refused(b, "", 2, proto=3)


@mosquitto_differs("mosquitto 2.0.11 refuses an empty client id (allow_zero_length_clientid "
                   "false) with v5 0x80; vigil sends the more precise 0x85")
def test_empty_id_not_allowed_v5_0x85(h):
    # v5 MQTT-3.1.3-8: CONNACK 0x85 Client Identifier not valid, then close.
    b = h.broker("allow_zero_length_clientid false\n")
    h.expect_refused(b, "", 0x85, proto=5)


# ---- will ---------------------------------------------------------------------------------------


def test_will_payload_above_message_size_limit(h):
    # message_size_limit applies to the will payload as to PUBLISH: v5 CONNACK 0x95 Packet too
    # large (v5 MQTT-3.2.2-? / 3.2.2.2), 3.1.1 and 3.1 CONNACK 0x05 (as mosquitto); the will is
    # never published. A will of exactly the limit is accepted and published.
    b = h.broker("message_size_limit 10\n")
    w = _watch(h, b)
    big = dict(topic="w/big", payload=b"x" * 11)
    h.expect_refused(b, "b5", 0x95, proto=5, will=big)
    h.expect_refused(b, "b4", 5, will=big)
    h.expect_refused(b, "b3", 5, proto=3, will=big)
    c = h.connect(b, "ok", will=dict(topic="w/ok", payload=b"y" * 10))
    c.reset()
    w.expect_publish("w/ok", b"y" * 10)
    w.expect_no_packet(0.3)


def test_will_connect_above_max_packet_size(h):
    # max_packet_size bounds the whole CONNECT, will included: a CONNECT above it is closed without
    # CONNACK (v5 MQTT-3.1.2-? the server's Maximum Packet Size is not yet announced) and its will
    # never goes out.
    b = h.broker("max_packet_size 100\n")
    w = _watch(h, b)
    for proto in (4, 5):
        c = h.client(b, proto=proto)
        c.send_quiet(connect("big%d" % proto, proto=proto, will=dict(topic="w/t", payload=b"x" * 120)))
        c.expect_closed()
    w.expect_no_packet(0.5)


@timeout(12)
def test_will_discarded_reconnect_clean_start_during_delay_v5_MQTT_3_1_2_8(h):
    # v5 MQTT-3.1.2-8 ("unless ... a new Network Connection for the ClientID is opened before the
    # Will Delay Interval has elapsed", v5 MQTT-3.1.3-9: the pending will is discarded whether the
    # new connection uses Clean Start 1 or 0, as mosquitto.
    b = h.broker()
    w = _watch(h, b)
    for clean in (True, False):
        cid = "wd%d" % clean
        c = h.connect(b, cid, proto=5, clean=False, properties=[(SESSION_EXPIRY, 30)],
                      will=dict(topic="w/" + cid, payload=b"bye", properties=[(WILL_DELAY, 2)]))
        c.reset()
        sleep(0.3)
        n = h.connect(b, cid, proto=5, clean=clean, session_present=not clean,
                      properties=[(SESSION_EXPIRY, 30)])
        del n
    w.expect_no_packet(2.8)


@timeout(12)
def test_will_discarded_takeover_during_delay_v5_MQTT_3_1_3_9(h):
    # v5 MQTT-3.1.3-9: a takeover (old connection still open) with Clean Start 1 does not publish
    # a will that has a delay; with delay 0 the old connection's will goes out at once (
    # v5 MQTT-3.1.2-8, the network connection closed without DISCONNECT), on both brokers.
    b = h.broker()
    w = _watch(h, b)
    h.connect(b, "td", proto=5, clean=False, properties=[(SESSION_EXPIRY, 30)],
              will=dict(topic="w/td", payload=b"bye", properties=[(WILL_DELAY, 2)]))
    h.connect(b, "td", proto=5, properties=[(SESSION_EXPIRY, 30)])
    w.expect_no_packet(2.6)
    h.connect(b, "t0", proto=5, clean=False, properties=[(SESSION_EXPIRY, 30)],
              will=dict(topic="w/t0", payload=b"now"))
    h.connect(b, "t0", proto=5, properties=[(SESSION_EXPIRY, 30)])
    w.expect_publish("w/t0", "now")


# ---- packets larger than the client's Maximum Packet Size (v5 MQTT-3.1.2-24) ------------------


def test_connack_above_client_maximum_packet_size_v5_MQTT_3_1_2_24(h):
    # v5 MQTT-3.1.2-24: the 11-byte CONNACK is not sent to a client allowing 8 bytes: the connection
    # is closed. As mosquitto, the CONNECT was accepted: the will is published and the session is
    # kept (Session Present on the next connection).
    b = h.broker()
    w = _watch(h, b)
    c = h.client(b, proto=5)
    c.send(connect("mp", proto=5, clean=False, will=dict(topic="w/mp", payload=b"bye"),
                   properties=[(SESSION_EXPIRY, 60), (MAXIMUM_PACKET_SIZE, 8)]))
    c.expect_closed()
    w.expect_publish("w/mp", "bye")
    h.connect(b, "mp", proto=5, clean=False, session_present=True, properties=[(SESSION_EXPIRY, 60)])
    # An Assigned Client Identifier makes the CONNACK 55 bytes: above 40.
    c = h.client(b, proto=5)
    c.send(connect("", proto=5, properties=[(MAXIMUM_PACKET_SIZE, 40)]))
    c.expect_closed()


def test_connack_above_client_maximum_packet_size_takeover(h):
    # v5 MQTT-3.1.2-24 with a takeover: as mosquitto, the old connection is closed too (the new
    # CONNECT was accepted before its CONNACK turned out too big).
    b = h.broker()
    old = h.connect(b, "tk", proto=5)
    c = h.client(b, proto=5)
    c.send(connect("tk", proto=5, properties=[(MAXIMUM_PACKET_SIZE, 8)]))
    c.expect_closed()
    old.expect_closed(allow_disconnect=0x8E)


@mosquitto_differs("mosquitto 2.0.11 checks the client's Maximum Packet Size one byte short: it "
                   "sends an 11-byte CONNACK to a client allowing 10")
def test_connack_one_byte_above_client_maximum_v5_MQTT_3_1_2_24(h):
    # v5 MQTT-3.1.2-24: the limit counts the whole packet (fixed header included).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("ob", proto=5, properties=[(MAXIMUM_PACKET_SIZE, 10)]))
    c.expect_closed()
    c = h.client(b, proto=5)
    c.send(connect("ob", proto=5, properties=[(MAXIMUM_PACKET_SIZE, 11)]))
    c.expect_packet(V5_CONNACK_DEFAULT)


@mosquitto_differs("mosquitto 2.0.11 sends a SUBACK / UNSUBACK larger than the client's Maximum "
                   "Packet Size")
def test_suback_above_client_maximum_packet_size_v5_MQTT_3_1_2_24(h):
    # v5 MQTT-3.1.2-24: a SUBACK for 10 filters (15 bytes) to a client allowing 12 is not sent:
    # DISCONNECT 0x95 Packet too large, close, nothing subscribed. 7 filters (12 bytes) fit.
    b = h.broker()
    c = h.connect(b, "sb", proto=5, clean=False,
                  properties=[(SESSION_EXPIRY, 60), (MAXIMUM_PACKET_SIZE, 12)])
    c.send(subscribe(1, [("a%d" % i, 0) for i in range(7)], proto=5))
    c.expect_packet(suback(1, [0] * 7, proto=5))
    c.send(subscribe(2, [("b%d" % i, 0) for i in range(10)], proto=5))
    c.expect_packet(disconnect(0x95, proto=5))
    c.expect_closed()
    c = h.connect(b, "ub", proto=5, properties=[(MAXIMUM_PACKET_SIZE, 12)])
    c.send(unsubscribe(3, ["b%d" % i for i in range(10)], proto=5))
    c.expect_packet(disconnect(0x95, proto=5))
    c.expect_closed()
    p = h.connect(b, "pub", proto=5)
    p.publish("b1", "x", qos=1, rc=0x10)  # the kept session "sb" has no subscription to b1
    p.publish("a1", "x", qos=1)


# ---- ACL and SUBSCRIBE (as mosquitto: granted, filtered at delivery) ----------------------------

ACL = """\
topic read anon/#
user alice
topic readwrite alice/#
topic read public/#
topic deny public/secret/#

user dave
topic deny #
"""


def test_acl_subscribe_always_granted_v311_v5_MQTT_3_8_4_4(h):
    # v311 MQTT-3.8.4-4 / v5 MQTT-3.8.4-6: one code per filter; as mosquitto's acl_file, every
    # subscription is granted at the requested QoS (deny rules, no readable rule, '#', '$SYS/#',
    # a user whose only rule is 'deny #'), for 3.1, 3.1.1 and 5.
    b = h.broker("acl_file %s\n" % h.file("acl", ACL))
    for proto in (3, 4, 5):
        a = h.connect(b, "alice%d" % proto, proto=proto, username="alice")
        a.send(subscribe(1, [("secret/#", 1), ("public/secret/x", 2), ("#", 1), ("$SYS/#", 0)],
                         proto=proto))
        a.expect_packet(suback(1, [1, 2, 1, 0], proto=proto))
        d = h.connect(b, "dave%d" % proto, proto=proto, username="dave")
        d.send(subscribe(2, [("#", 2), ("a", 0)], proto=proto))
        d.expect_packet(suback(2, [2, 0], proto=proto))
        n = h.connect(b, "anon%d" % proto, proto=proto)
        n.send(subscribe(3, [("x/#", 1)], proto=proto))
        n.expect_packet(suback(3, [1], proto=proto))


def test_acl_hash_subscription_filtered_at_delivery(h):
    # '#' under a restricted ACL is granted and receives only readable topics; the deny rule for
    # public/secret/# wins over 'read public/#'.
    b = h.broker("acl_file %s\n" % h.file("acl", ACL + "\nuser bob\ntopic readwrite #\n"))
    a = h.connect(b, "alice", username="alice")
    a.subscribe([("#", 0)])
    bob = h.connect(b, "bob", username="bob")
    for t in ("secret/1", "public/secret/2", "alice/3", "public/4"):
        bob.publish(t, t)
    a.expect_publish("alice/3", "alice/3")
    a.expect_publish("public/4", "public/4")
    a.expect_no_packet(0.3)


# ---- invalid SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------


def test_invalid_filters_close_v311_MQTT_4_7_1_2(h):
    # v311 MQTT-4.7.1-2 / v311 MQTT-4.7.3-1 and MQTT-4.8.0-1: a filter with a misplaced wildcard or an
    # empty one (in SUBSCRIBE or UNSUBSCRIBE) is a protocol violation: the connection is closed
    # without SUBACK, as mosquitto; also for MQTT 3.1.
    b = h.broker()
    for proto in (3, 4):
        for i, pkt in enumerate([subscribe(1, [("a/#/b", 0)]), subscribe(1, [("ok", 0), ("a+", 1)]),
                                 subscribe(1, [("", 0)]), unsubscribe(1, ["a/#/b"]),
                                 unsubscribe(1, [""]), unsubscribe(1, ["ok", "#a"])]):
            c = h.connect(b, "if%d%d" % (proto, i), proto=proto)
            c.send(pkt)
            c.expect_closed()


def test_invalid_filters_disconnect_0x81_v5_MQTT_4_7_1_1(h):
    # v5 MQTT-4.7.1-1/-2, v5 MQTT-4.7.3-1: DISCONNECT 0x81 (Malformed Packet) then close, as mosquitto,
    # for SUBSCRIBE and UNSUBSCRIBE; a '$share' name with '+' too (v5 MQTT-4.8.2-2).
    b = h.broker()
    for i, pkt in enumerate([subscribe(1, [("a/#/b", 0)], proto=5), subscribe(1, [("", 0)], proto=5),
                             subscribe(1, [("$share/g+/t", 0)], proto=5),
                             unsubscribe(1, ["a/#/b"], proto=5), unsubscribe(1, [""], proto=5),
                             subscribe(1, [("a", 0x40)], proto=5), subscribe(1, [("a", 3)], proto=5),
                             subscribe(1, [(b"a\xff", 0)], proto=5)]):
        c = h.connect(b, "i5%d" % i, proto=5)
        c.send(pkt)
        c.expect_packet(disconnect(0x81, proto=5))
        c.expect_closed()


def test_subscribe_protocol_errors_close_v311_MQTT_2_3_1_1(h):
    # v311 MQTT-2.3.1-1 (packet id 0), v311 MQTT-3.8.3-3 / v311 MQTT-3.10.3-2 (no topics), v311 MQTT-3.8.3-4
    # (reserved option bits), v311 MQTT-3.8.1-1 (fixed-header flags): closed, as mosquitto.
    b = h.broker()
    for i, pkt in enumerate([subscribe(0, [("a", 0)]), unsubscribe(0, ["a"]), subscribe(1, []),
                             unsubscribe(1, []), subscribe(1, [("a", 4)]),
                             subscribe(1, [("a", 0)], first_byte=0x80)]):
        c = h.connect(b, "pe%d" % i)
        c.send(pkt)
        c.expect_closed()


@mosquitto_differs("mosquitto 2.0.11 answers these protocol errors with DISCONNECT 0x81 "
                   "(Malformed Packet); vigil sends 0x82 (Protocol Error), the spec's class")
def test_subscribe_protocol_errors_v5_0x82(h):
    # v5 MQTT-2.2.1-3 (packet id 0), v5 MQTT-3.8.3-2 ("A SUBSCRIBE packet with no Payload is a
    # Protocol Error"), v5 MQTT-3.10.3-2, 3.8.3.1 (Retain Handling 3 is a Protocol Error),
    # 3.8.2.1.2 (Subscription Identifier 0 is a Protocol Error): DISCONNECT 0x82 then close.
    b = h.broker()
    for i, pkt in enumerate([subscribe(0, [("a", 0)], proto=5), unsubscribe(0, ["a"], proto=5),
                             subscribe(1, [], proto=5), unsubscribe(1, [], proto=5),
                             subscribe(1, [("a", 0x30)], proto=5),
                             subscribe(1, [("a", 0)], proto=5, properties=[(SUBSCRIPTION_ID, 0)])]):
        c = h.connect(b, "p5%d" % i, proto=5)
        c.send(pkt)
        c.expect_packet(disconnect(0x82, proto=5))
        c.expect_closed()


# ---- other CONNECT rules -------------------------------------------------------------------------


def test_second_connect_and_packets_before_connect_v311_MQTT_3_1_0_1_v311_MQTT_3_1_0_2(h):
    # v311 MQTT-3.1.0-1: the first packet must be CONNECT; v311 MQTT-3.1.0-2: a second CONNECT is a
    # protocol violation: closed, nothing sent (both brokers, 3.1 and 3.1.1).
    b = h.broker()
    for proto in (3, 4):
        c = h.connect(b, "sc%d" % proto, proto=proto)
        c.send(connect("sc%d" % proto, proto=proto))
        c.expect_closed()
    for pkt in (publish("a", b"x"), pingreq(), subscribe(1, "a"), disconnect(),
                bytes.fromhex("20020000")):
        c = h.client(b)
        c.send(pkt)
        c.expect_closed()


@mosquitto_differs("mosquitto 2.0.11 closes without a word; vigil sends DISCONNECT 0x82 / "
                   "CONNACK with the reason first (MQTT-4.13: SHOULD)")
def test_connect_errors_v5_answered_with_reason(h):
    # v5 MQTT-3.1.0-2 (second CONNECT: DISCONNECT 0x82); v5 CONNECT with a property error
    # (duplicate Session Expiry, Receive Maximum 0, Maximum Packet Size 0, Request Problem
    # Information 2, Authentication Data without Authentication Method 3.1.2.11.10): CONNACK 0x82;
    # malformed (reserved flag v5 MQTT-3.1.2-3, will QoS 3): CONNACK 0x81 (v5 MQTT-3.1.4-1).
    b = h.broker()
    c = h.connect(b, "sc5", proto=5)
    c.send(connect("sc5", proto=5))
    c.expect_packet(disconnect(0x82, proto=5))
    c.expect_closed()
    for pl in ([(SESSION_EXPIRY, 1), (SESSION_EXPIRY, 2)], [(RECEIVE_MAXIMUM, 0)],
               [(MAXIMUM_PACKET_SIZE, 0)], [(0x17, 2)], [(AUTH_DATA, b"x")]):
        h.expect_refused(b, "pe", 0x82, proto=5, properties=pl)
    h.expect_refused(b, "pe", 0x81, proto=5, reserved=True)
    h.expect_refused(b, "pe", 0x81, proto=5, flags=0x1A)


def test_authentication_method_v5_0x8C(h):
    # v5 4.12, MQTT-3.1.2-? : an Authentication Method the server does not support: CONNACK 0x8C
    # Bad authentication method, then close (as mosquitto).
    b = h.broker()
    h.expect_refused(b, "am", 0x8C, proto=5, properties=[(0x15, "SCRAM-SHA-1")])


# ---- mosquitto bridges (protocol level | 0x80) ----------------------------------------------------


def _bridge_connect(cid, level, name="MQTT"):
    body = mstr(name) + bytes([level, 0x02]) + u16(60) + mstr(cid)
    return packet(0x10, body)


def test_bridge_level_no_echo_retain_as_published(h):
    # mosquitto's bridge protocol levels 0x84 (3.1.1) and 0x83 (3.1), try_private: accepted; the
    # bridge's subscriptions get no echo of its own messages (v5 MQTT-3.8.3-3 No Local) and keep
    # the RETAIN flag of forwarded messages (v5 MQTT-3.3.1-12 Retain As Published), as
    # mosquitto's is_bridge. Plain level 4 clients get their echo with RETAIN 0 (v311 MQTT-3.3.1-9).
    b = h.broker()
    for level, name in ((0x84, "MQTT"), (0x83, "MQIsdp"), (0x04, "MQTT")):
        br = h.client(b, name="bridge%x" % level)
        br.send(_bridge_connect("br%x" % level, level, name))
        br.expect_packet(connack(0))
        br.subscribe([("b%x/#" % level, 1)])
        br.send(publish("b%x/own" % level, b"own"))
        if not level & 0x80:
            br.expect_publish("b%x/own" % level, "own")
        o = h.connect(b, "o%x" % level)
        o.publish("b%x/r" % level, "kept", retain=True)
        br.expect_publish("b%x/r" % level, "kept", retain=bool(level & 0x80))
        br.expect_no_packet(0.2)
    log = b.log()
    check("New bridge connected from" in log and " as br84 (p2, c1, k60)." in log,
          "no 'New bridge connected' line for br84:\n" + b.log_tail())
    check(" as br83 (p1, c1, k60)." in log, "no connect line for br83:\n" + b.log_tail())


@mosquitto_differs("mosquitto 2.0.11 reads a 0x85 CONNECT without its property block and closes "
                   "it as a protocol error")
def test_bridge_level_v5_0x85_accepted(h):
    # A v5 mosquitto bridge with try_private sends level 0x85 with the v5 properties: accepted as
    # MQTT 5 (v5 MQTT-3.1.2-2 names only the level; bit 7 is mosquitto's bridge mark).
    b = h.broker()
    body = mstr("MQTT") + bytes([0x85, 0x02]) + u16(60) + props([(SESSION_EXPIRY, 0)]) + mstr("b5")
    c = h.client(b, proto=5)
    c.send(packet(0x10, body))
    c.expect_packet(V5_CONNACK_DEFAULT)
    c.subscribe([("x", 0)])
    check("as b5 (p5, c1, k60)." in b.log(), "no connect line:\n" + b.log_tail())


@timeout(15)
def test_real_mosquitto_bridge_try_private(h):
    # A real mosquitto 2.0.11 bridge (try_private true, MQTT 3.1.1, 'topic b/# both 1') connects
    # with level 0x84; messages cross in both directions exactly once (no echo back over the
    # bridge: the bridge's subscription has no-local, v5 MQTT-3.8.3-3 semantics).
    b = h.broker()
    old = os.environ.get("VIGIL_BROKER")
    os.environ["VIGIL_BROKER"] = "mosquitto"
    try:
        m = h.broker("connection vb\naddress 127.0.0.1:%d\ntopic b/# both 1\ntry_private true\n"
                     "cleansession true\nrestart_timeout 1\n" % b.port, name="bridging")
    finally:
        if old is None:
            del os.environ["VIGIL_BROKER"]
        else:
            os.environ["VIGIL_BROKER"] = old
    deadline = time.monotonic() + 8
    while "vm.vb 1 b/#" not in b.log() and time.monotonic() < deadline:
        sleep(0.05)
    check("New bridge connected from" in b.log() and "vm.vb 1 b/#" in b.log(),
          "the mosquitto bridge did not connect and subscribe:\n" + b.log_tail())
    mside = h.connect(m, "ms")
    mside.subscribe([("b/#", 1)])
    deadline = time.monotonic() + 8  # the bridge subscribes to vigil's side too ('both')
    while "vm.vb" not in m.log() or "b/#" not in m.log():
        check(time.monotonic() < deadline, "bridging broker log:\n" + m.log_tail())
        sleep(0.05)
    vside = h.connect(b, "vs")
    vside.subscribe([("b/#", 1)])
    sleep(0.3)
    vside.publish("b/fromv", "1")
    mside.publish("b/fromm", "2")
    for c in (vside, mside):
        got = sorted((p["topic"], p["payload"]) for p in (parse(c.recv("PUBLISH")) for _ in range(2)))
        check_eq(got, [("b/fromm", b"2"), ("b/fromv", b"1")], "%s received" % c.name)
        c.expect_no_packet(0.5)
