"""MQTT 5 flows not covered elsewhere: session identity and Clean Start, the acknowledgement duties
of the Server as receiver and as sender of QoS 0/1/2 messages, UNSUBSCRIBE / UNSUBACK, PINGREQ,
the Server's own DISCONNECT (only after a successful CONNACK, no Session Expiry Interval, nothing
after it, then close), a tiny client Maximum Packet Size (acknowledgements still arrive, small and
without Reason String / User Property), Receive Maximum as the initial send quota, shared
subscription delivery rules, ordering, enhanced authentication refused.
mqtt-spec: 5.0
"""
import threading

from mqtt_test import (connect, connack, publish, puback, pubrec, pubrel, pubcomp, subscribe,
                       suback, unsubscribe, unsuback, pingreq, pingresp, disconnect, auth, packet,
                       mstr, u16, props, parse, check, check_eq, fail, sleep, Closed,
                       CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK,
                       DISCONNECT, AUTH, SESSION_EXPIRY, MESSAGE_EXPIRY, PAYLOAD_FORMAT,
                       RESPONSE_TOPIC, CONTENT_TYPE, RECEIVE_MAXIMUM, MAXIMUM_PACKET_SIZE,
                       REASON_STRING, USER_PROPERTY, AUTH_METHOD, AUTH_DATA, TOPIC_ALIAS,
                       NOSUB, vigil_only, mosquitto_differs)

SE60 = [(SESSION_EXPIRY, 60)]


def _expect_nothing_then_closed(c, timeout=3.0):
    """The connection closes; no MQTT packet at all comes first (not even a DISCONNECT)."""
    c.expect_closed(timeout)


def _short(g):
    d = parse(g, 5)
    return "%s %s" % (d["name"], d.get("payload", d.get("rc", "")))


def _type_name(ptype):
    return parse(bytes([ptype << 4, 0]))["name"]


# ---------------------------------------------------------------------------------------------
# CONNECT: session identity, Clean Start, validation


def test_clean_start0_creates_session_v5_MQTT_3_1_2_6(h):
    # v5 MQTT-3.1.2-6: Clean Start 0 and no Session for the ClientID: the Server creates a new
    # Session (CONNACK session present 0); it is a real session: a QoS 1 message published while
    # the client is away is kept and delivered when it resumes (session present 1).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("cs0new", proto=5, clean=False, properties=SE60))
    check_eq(parse(c.recv("CONNACK"), 5)["session_present"], 0, "session present, first CONNECT")
    c.subscribe([("cs0/t", 1)])
    c.disconnect()
    sleep(0.1)
    p = h.connect(b, "cs0p", proto=5)
    p.publish("cs0/t", "kept", qos=1)
    c2 = h.connect(b, "cs0new", proto=5, clean=False, properties=SE60, session_present=True)
    c2.expect_publish("cs0/t", "kept", qos=1)
    c2.expect_no_packet(0.2)


def test_session_identified_by_client_id_v5_MQTT_3_1_3_2(h):
    # v5 MQTT-3.1.3-2: the Server identifies the Session state by the ClientID: two persistent
    # sessions keep their own subscriptions and queues; an unknown ClientID finds no session.
    b = h.broker()
    a = h.connect(b, "sid-a", proto=5, clean=False, properties=SE60)
    a.subscribe([("sid/a", 1)])
    a.disconnect()
    bb = h.connect(b, "sid-b", proto=5, clean=False, properties=SE60)
    bb.subscribe([("sid/b", 1)])
    bb.disconnect()
    sleep(0.1)
    p = h.connect(b, "sidp", proto=5)
    p.publish("sid/a", "for a", qos=1)
    p.publish("sid/b", "for b", qos=1)
    b2 = h.connect(b, "sid-b", proto=5, clean=False, properties=SE60, session_present=True)
    b2.expect_publish("sid/b", "for b", qos=1)
    b2.expect_no_packet(0.2)
    a2 = h.connect(b, "sid-a", proto=5, clean=False, properties=SE60, session_present=True)
    a2.expect_publish("sid/a", "for a", qos=1)
    a2.expect_no_packet(0.2)
    h.connect(b, "sid-c", proto=5, clean=False, properties=SE60, session_present=False)


def test_clean_start_handling_v5_MQTT_3_1_4_4(h):
    # v5 MQTT-3.1.4-4: for an accepted CONNECT the Server performs Clean Start processing:
    # Clean Start 0 resumes the Session (session present 1, subscription kept), Clean Start 1
    # discards it (session present 0, the subscription is gone).
    b = h.broker()
    c = h.connect(b, "csh", proto=5, clean=False, properties=SE60)
    c.subscribe([("csh/t", 1)])
    c.disconnect()
    c2 = h.connect(b, "csh", proto=5, clean=False, properties=SE60, session_present=True)
    p = h.connect(b, "cshp", proto=5)
    p.publish("csh/t", "1", qos=1)
    c2.expect_publish("csh/t", "1", qos=1)
    c2.disconnect()
    c3 = h.connect(b, "csh", proto=5, clean=True, properties=SE60, session_present=False)
    p.publish("csh/t", "2", qos=1, rc=NOSUB)
    c3.expect_no_packet(0.3)


def test_invalid_connect_closed_v5_MQTT_3_1_4_1(h):
    # v5 MQTT-3.1.4-1: a CONNECT that does not follow section 3.1 closes the connection (a
    # refusing CONNACK 0x81 / 0x82 may come first, never CONNACK 0x00); v5 MQTT-3.14.0-1: no
    # DISCONNECT is sent as no successful CONNACK was. v5 MQTT-4.13.2-1: closed after the CONNACK.
    b = h.broker()
    base = mstr("MQTT") + bytes([5, 0x02]) + u16(60)
    cases = {
        # property length beyond the end of the packet
        "props-overrun": packet(0x10, base + b"\x20" + b"\x11\x00"),
        # Session Expiry Interval twice (Protocol Error)
        "dup-prop": packet(0x10, base + props([(SESSION_EXPIRY, 5), (SESSION_EXPIRY, 6)])
                           + mstr("dp")),
        # Will QoS 3
        "will-qos3": connect("wq3", proto=5, will={"topic": "w", "payload": b"x", "qos": 3}),
        # Will QoS 1 without the Will Flag
        "will-qos-noflag": connect("wqn", proto=5, flags=0x02 | 0x08),
        # client identifier length beyond the packet
        "id-overrun": packet(0x10, base + b"\x00" + u16(30) + b"short"),
        # property not allowed in CONNECT (Topic Alias)
        "wrong-prop": packet(0x10, base + props([(TOPIC_ALIAS, 1)]) + mstr("wp")),
    }
    refusals = [connack(rc, proto=5) for rc in (0x81, 0x82)]
    for name, data in cases.items():
        c = h.client(b, proto=5, name=name)
        c.send(data)
        c.expect_optional_then_closed(refusals)


def test_no_disconnect_before_successful_connack_v5_MQTT_3_14_0_1(h):
    # v5 MQTT-3.14.0-1: the Server sends DISCONNECT only after a CONNACK below 0x80.
    # (1) a PUBLISH before any CONNECT: closed without any packet;
    # (2) an unsupported Authentication Method, then a malformed packet in the same segment:
    #     CONNACK 0x8C (or 0x87) and close, no DISCONNECT (v5 MQTT-4.13.2-1: closed after a
    #     CONNACK >= 0x80).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(publish("pre/connect", "x", proto=5))
    _expect_nothing_then_closed(c)
    c2 = h.client(b, proto=5)
    c2.send(connect("nd", proto=5, properties=[(AUTH_METHOD, "X-UNKNOWN")]) + b"\x36\x00")
    got = c2.expect_optional_then_closed([connack(0x8C, proto=5), connack(0x87, proto=5)])
    if h.vigil:
        check_eq(got, connack(0x8C, proto=5), "vigil refusal")


def test_unsupported_auth_method_v5_MQTT_4_12_0_1(h):
    # v5 MQTT-4.12.0-1: an Authentication Method the Server does not support: CONNACK 0x8C or
    # 0x87 may be sent, the connection MUST close; a PUBLISH sent right behind the CONNECT is not
    # processed (v5 MQTT-3.1.4-1 region: nothing after a refused CONNECT).
    b = h.broker()
    w = h.connect(b, "am-w", proto=5)
    w.subscribe("am/#")
    c = h.client(b, proto=5)
    c.send(connect("am", proto=5, properties=[(AUTH_METHOD, "GS2-KRB5"), (AUTH_DATA, b"\x01")])
           + publish("am/leak", "x", proto=5))
    c.expect_optional_then_closed([connack(0x8C, proto=5), connack(0x87, proto=5)])
    w.expect_no_packet(0.3)


def test_no_auth_without_method_v5_MQTT_4_12_0_6(h):
    # v5 MQTT-4.12.0-6: no Authentication Method in CONNECT: the CONNACK carries neither
    # Authentication Method nor Data, and the Server never sends AUTH; an AUTH from the client
    # is a Protocol Error (DISCONNECT 0x82, or a bare close on other brokers; never AUTH).
    # v5 MQTT-4.12.1-2: that AUTH asks for re-authentication (0x19), which fails here: the
    # Server sends DISCONNECT (SHOULD) and MUST close the connection.
    b = h.broker()
    c = h.connect(b, "noauth", proto=5)
    keys = [k for k, _ in c.connack.get("properties", [])]
    check(AUTH_METHOD not in keys and AUTH_DATA not in keys, "CONNACK %r" % c.connack)
    c.send(auth(0x19, properties=[(AUTH_METHOD, "X")]))
    try:
        got = c.recv_packet(2.0)
    except Closed:
        return
    d = parse(got, 5)
    check(d["type"] != AUTH, "the Server sent AUTH: %r" % d)
    check_eq((d["type"], d["rc"] >= 0x80), (DISCONNECT, True), "answer to AUTH")
    if h.vigil:
        check_eq(got, disconnect(0x82, proto=5), "vigil's answer to AUTH")
    c.expect_closed()


# ---------------------------------------------------------------------------------------------
# PUBLISH as receiver


def test_publish_receiver_answers_per_qos_v5_MQTT_3_3_4_1(h):
    # v5 MQTT-3.3.4-1: QoS 0 -> no answer, QoS 1 -> PUBACK, QoS 2 -> PUBREC (all in one segment,
    # a PINGREQ at the end shows that nothing was sent for the QoS 0 one).
    b = h.broker()
    s = h.connect(b, "rq-s", proto=5)
    s.subscribe([("rq/t", 2)])
    c = h.connect(b, "rq", proto=5)
    c.send(publish("rq/t", "0", proto=5) + publish("rq/t", "1", qos=1, mid=11, proto=5)
           + publish("rq/t", "2", qos=2, mid=12, proto=5) + pingreq())
    c.expect_packet(puback(11, proto=5))
    c.expect_packet(pubrec(12, proto=5))
    c.expect_packet(pingresp())
    c.send(pubrel(12, proto=5))
    c.expect_packet(pubcomp(12, proto=5))
    got = {}
    for _ in range(3):  # order across QoS levels is not prescribed
        d = s.expect_type(PUBLISH)
        got[d["payload"]] = d["qos"]
        if d["qos"] == 1:
            s.send(puback(d["mid"], proto=5))
    check_eq(got, {b"0": 0, b"1": 1, b"2": 2}, "delivered messages and their QoS")


def test_topic_name_matches_filter_v5_MQTT_3_3_2_3_MQTT_3_3_2_1(h):
    # v5 MQTT-3.3.2-3: the Topic Name sent to a subscriber is the published one (matching its
    # filter, not the filter itself); v5 MQTT-3.3.2-1: the PUBLISH starts with it as a UTF-8
    # string (byte-exact, multi-byte characters included). Non-matching topics are not sent.
    b = h.broker()
    s = h.connect(b, "tn-s", proto=5)
    s.subscribe("tn/+/c/#")
    p = h.connect(b, "tn-p", proto=5)
    for t in ("tn/b/c", "tn/x/y", "tn/\u00e9\u6f22/c/d/e", "tn/b/cc", "tn/b/c/"):
        p.publish(t, t)
    s.expect_packet(publish("tn/b/c", "tn/b/c", proto=5))
    s.expect_packet(publish("tn/\u00e9\u6f22/c/d/e", "tn/\u00e9\u6f22/c/d/e", proto=5))
    s.expect_packet(publish("tn/b/c/", "tn/b/c/", proto=5))
    s.expect_no_packet(0.2)


def _bad_string_property(h, pid):
    b = h.broker()
    w = h.connect(b, "bsp-w", proto=5)
    w.subscribe("bsp/#")
    c = h.connect(b, "bsp", proto=5)
    bad = bytes([pid]) + mstr(b"ok\xc3\x28")  # ill-formed UTF-8
    c.send_quiet(packet(0x30, mstr("bsp/t") + bytes([len(bad)]) + bad + b"payload"))
    c.expect_disconnect_close(0x81)
    w.expect_no_packet(0.3)


def test_response_topic_utf8_v5_MQTT_3_3_2_13(h):
    # v5 MQTT-3.3.2-13: the Response Topic is a UTF-8 Encoded String: an ill-formed one makes the
    # PUBLISH malformed (DISCONNECT 0x81, close) and it is not forwarded.
    _bad_string_property(h, RESPONSE_TOPIC)


def test_content_type_utf8_v5_MQTT_3_3_2_19(h):
    # v5 MQTT-3.3.2-19: the Content Type is a UTF-8 Encoded String: ill-formed -> malformed.
    _bad_string_property(h, CONTENT_TYPE)


def _pubrec_error_then_new(h, b, bad, rc):
    s = h.connect(b, "pe9-s", proto=5)
    s.subscribe([("pe9/#", 2)])
    c = h.connect(b, "pe9", proto=5)
    c.send(bad)
    c.expect_packet(pubrec(7, rc=rc, proto=5))
    s.expect_no_packet(0.2)
    c.send(publish("pe9/ok", "fine", qos=2, mid=7, proto=5))
    c.expect_packet(pubrec(7, proto=5))
    c.send(pubrel(7, proto=5))
    c.expect_packet(pubcomp(7, proto=5))
    s.expect_publish("pe9/ok", "fine", qos=2)
    s.expect_no_packet(0.1)


def test_pubrec_error_then_same_id_is_new_v5_MQTT_4_3_3_9(h):
    # v5 MQTT-4.3.3-9: after the Server sent a PUBREC >= 0x80 (here 0x87, Not authorized: the
    # ACL lets anonymous clients write pe9/ok only), a PUBLISH with the same Packet Identifier
    # is a new message: accepted (PUBREC 0x00) and delivered, not taken as a resend.
    acl = h.file("acl", "topic write pe9/ok\ntopic read pe9/#\n")
    b = h.broker("acl_file %s\n" % acl)
    _pubrec_error_then_new(h, b, publish("pe9/denied", "no", qos=2, mid=7, proto=5), 0x87)


@vigil_only("vigil validates the payload of a PUBLISH with Payload Format Indicator 1 (the spec "
            "says MAY); mosquitto 2.0.11 does not")
def test_pubrec_0x99_then_same_id_is_new_v5_MQTT_4_3_3_9(h):
    # v5 MQTT-4.3.3-9 with PUBREC 0x99 (Payload format invalid: indicator 1, payload not UTF-8).
    b = h.broker()
    _pubrec_error_then_new(h, b, publish("pe9/t", b"\xff\xfe", qos=2, mid=7, proto=5,
                                         properties=[(PAYLOAD_FORMAT, 1)]), 0x99)


def test_qos2_receiver_completes_after_expiry_v5_MQTT_4_3_3_13(h):
    # v5 MQTT-4.3.3-13: the Server completes the QoS 2 exchange even when the message expired in
    # between: PUBREL 1.3 s after a PUBLISH with Message Expiry 1 -> PUBCOMP with the same id.
    b = h.broker()
    c = h.connect(b, "x13", proto=5)
    c.send(publish("x13/t", "x", qos=2, mid=21, proto=5, properties=[(MESSAGE_EXPIRY, 1)]))
    c.expect_packet(pubrec(21, proto=5))
    sleep(1.3)
    c.send(pubrel(21, proto=5))
    c.expect_packet(pubcomp(21, proto=5))


def test_session_state_kept_while_connected_v5_MQTT_4_1_0_1(h):
    # v5 MQTT-4.1.0-1: with Session Expiry 0 the Session lasts as long as the connection and its
    # state is kept meanwhile: a half-done inbound QoS 2 exchange (PUBREC sent) still suppresses
    # a resend and is completed 0.6 s later; a half-done outbound one (PUBLISH sent) is completed
    # 0.6 s later with the same id; the message is delivered once.
    b = h.broker()
    s = h.connect(b, "k41-s", proto=5)
    s.subscribe([("k41/t", 2)])
    c = h.connect(b, "k41", proto=5)
    c.send(publish("k41/t", "once", qos=2, mid=5, proto=5))
    c.expect_packet(pubrec(5, proto=5))
    sleep(0.6)
    c.send(publish("k41/t", "once", qos=2, mid=5, dup=True, proto=5))
    c.expect_packet(pubrec(5, proto=5))
    c.send(pubrel(5, proto=5))
    c.expect_packet(pubcomp(5, proto=5))
    d = s.expect_publish("k41/t", "once", qos=2, ack=False)
    sleep(0.6)
    s.send(pubrec(d["mid"], proto=5))
    s.expect_packet(pubrel(d["mid"], proto=5))
    s.send(pubcomp(d["mid"], proto=5))
    s.expect_no_packet(0.2)


# ---------------------------------------------------------------------------------------------
# PUBLISH as sender


def test_qos0_sender_v5_MQTT_4_3_1_1(h):
    # v5 MQTT-4.3.1-1: a message delivered at QoS 0 is a PUBLISH with QoS 0, DUP 0 and no
    # Packet Identifier (byte-exact), whatever the publisher's QoS and DUP.
    b = h.broker()
    s = h.connect(b, "q0-s", proto=5)
    s.subscribe([("q0/t", 0)])
    c = h.connect(b, "q0", proto=5)
    c.send(publish("q0/t", "a", qos=1, mid=3, dup=True, proto=5))
    c.expect_packet(puback(3, proto=5))
    c.send(publish("q0/t", "b", qos=2, mid=4, dup=True, proto=5))
    c.expect_packet(pubrec(4, proto=5))
    c.send(pubrel(4, proto=5))
    c.expect_packet(pubcomp(4, proto=5))
    s.expect_packet(publish("q0/t", "a", proto=5))
    s.expect_packet(publish("q0/t", "b", proto=5))


def test_qos1_sender_v5_MQTT_4_3_2_1_MQTT_4_3_2_2_MQTT_4_3_2_3(h):
    # v5 MQTT-4.3.2-1: each new QoS 1 message gets an unused Packet Identifier; MQTT-4.3.2-2:
    # sent with QoS 1 and DUP 0; MQTT-4.3.2-3: unacknowledged until its PUBACK: after a
    # reconnect only the two not acknowledged are resent (same ids, DUP 1, in order).
    b = h.broker()
    s = h.connect(b, "q1s", proto=5, clean=False, properties=SE60)
    s.subscribe([("q1s/t", 1)])
    p = h.connect(b, "q1s-p", proto=5)
    for i in range(3):
        p.publish("q1s/t", str(i), qos=1)
    ds = [s.expect_publish("q1s/t", str(i), qos=1, dup=False, ack=False) for i in range(3)]
    mids = [d["mid"] for d in ds]
    check(0 not in mids and len(set(mids)) == 3, "packet ids %r" % mids)
    s.send(puback(mids[1], proto=5))
    sleep(0.1)
    s.close()
    s2 = h.connect(b, "q1s", proto=5, clean=False, properties=SE60, session_present=True)
    s2.expect_publish("q1s/t", "0", qos=1, dup=True, mid=mids[0])
    s2.expect_publish("q1s/t", "2", qos=1, dup=True, mid=mids[2])
    s2.expect_no_packet(0.3)


def test_qos2_sender_v5_MQTT_4_3_3_1_MQTT_4_3_3_2_MQTT_4_3_3_4_MQTT_4_3_3_5(h):
    # v5 MQTT-4.3.3-1 / -2: new QoS 2 messages get unused Packet Identifiers and go out with QoS 2
    # and DUP 0; MQTT-4.3.3-4: each PUBREC is answered by a PUBREL with the same id; MQTT-4.3.3-5:
    # a PUBREL stays unacknowledged until PUBCOMP: after a reconnect only the PUBREL without
    # PUBCOMP is resent (no PUBLISH).
    b = h.broker()
    s = h.connect(b, "q2s", proto=5, clean=False, properties=SE60)
    s.subscribe([("q2s/t", 2)])
    p = h.connect(b, "q2s-p", proto=5)
    p.publish("q2s/t", "a", qos=2)
    p.publish("q2s/t", "b", qos=2)
    da = s.expect_publish("q2s/t", "a", qos=2, dup=False, ack=False)
    db = s.expect_publish("q2s/t", "b", qos=2, dup=False, ack=False)
    check(da["mid"] != db["mid"] and 0 not in (da["mid"], db["mid"]),
          "packet ids %r %r" % (da["mid"], db["mid"]))
    s.send(pubrec(db["mid"], proto=5) + pubrec(da["mid"], proto=5))
    s.expect_packet(pubrel(db["mid"], proto=5))
    s.expect_packet(pubrel(da["mid"], proto=5))
    s.send(pubcomp(db["mid"], proto=5))
    sleep(0.1)
    s.close()
    s2 = h.connect(b, "q2s", proto=5, clean=False, properties=SE60, session_present=True)
    s2.expect_packet(pubrel(da["mid"], proto=5))
    s2.send(pubcomp(da["mid"], proto=5))
    s2.expect_no_packet(0.3)


@mosquitto_differs("mosquitto 2.0.11 drops an in-flight QoS 2 PUBLISH whose Message Expiry "
                   "passed while the subscriber was away (not resent on reconnect; the "
                   "2.2 s wait always spans two ticks of its 1 s clock)")
def test_qos2_sent_publish_not_expired_v5_MQTT_4_3_3_7(h):
    # v5 MQTT-4.3.3-7: once the QoS 2 PUBLISH was sent, the Server must not apply message expiry
    # to it: after the 1 s Message Expiry passed while the subscriber was away, the PUBLISH is
    # resent on reconnect (same id, DUP 1). (vigil's clock is in ms: 2.2 s is past the expiry.)
    b = h.broker()
    s = h.connect(b, "x7", proto=5, clean=False, properties=SE60)
    s.subscribe([("x7/t", 2)])
    p = h.connect(b, "x7p", proto=5)
    p.publish("x7/t", "x", qos=2, properties=[(MESSAGE_EXPIRY, 1)])
    d = s.recv("PUBLISH")
    d = parse(d, 5)
    check_eq((d["type"], d["qos"], d["dup"]), (PUBLISH, 2, False), "first delivery")
    s.close()
    sleep(2.2)  # > 2 ticks of mosquitto's 1 s clock, so that its expiry always shows (make compat)
    s2 = h.connect(b, "x7", proto=5, clean=False, properties=SE60, session_present=True)
    d2 = parse(s2.recv("the resent PUBLISH"), 5)
    check_eq((d2["type"], d2["topic"], d2["payload"], d2["qos"], d2["dup"], d2["mid"]),
             (PUBLISH, "x7/t", b"x", 2, True, d["mid"]), "resent PUBLISH")


def test_fanout_to_every_session_v5_MQTT_4_5_0_1(h):
    # v5 MQTT-4.5.0-1: a message the Server took ownership of is added to the Session of every
    # matching subscriber: two online ones (at their granted QoS 1 and 0) and an offline
    # persistent one (QoS 2, delivered on reconnect).
    b = h.broker()
    off = h.connect(b, "fo-off", proto=5, clean=False, properties=SE60)
    off.subscribe([("fo/#", 2)])
    off.disconnect()
    s1 = h.connect(b, "fo-1", proto=5)
    s1.subscribe([("fo/+", 1)])
    s0 = h.connect(b, "fo-0", proto=5)
    s0.subscribe([("fo/x", 0)])
    sleep(0.1)
    p = h.connect(b, "fo-p", proto=5)
    p.publish("fo/x", "all", qos=2)
    s1.expect_publish("fo/x", "all", qos=1)
    s0.expect_publish("fo/x", "all", qos=0)
    o2 = h.connect(b, "fo-off", proto=5, clean=False, properties=SE60, session_present=True)
    o2.expect_publish("fo/x", "all", qos=2)


def test_ordered_topics_v5_MQTT_4_6_0_6(h):
    # v5 MQTT-4.6.0-6: every topic is an Ordered Topic on non-shared subscriptions: messages of
    # one publisher, interleaved over two topics and QoS 1 / 2, reach the subscriber in the order
    # received for each topic and QoS; the Server acknowledges the publisher's PUBLISHes in order
    # (PUBACK / PUBREC: the Ordered Topic rules of 4.6) and sends PUBRELs in the order of the
    # PUBRECs it got.
    b = h.broker()
    s = h.connect(b, "ot-s", proto=5)
    s.subscribe([("ot/#", 2)])
    c = h.connect(b, "ot-p", proto=5)
    # 16 messages: below the Server's default in-flight window (20) towards the subscriber.
    plan = [("ot/%s" % "ab"[i % 2], 1 + (i // 2) % 2, i) for i in range(16)]
    c.send(b"".join(publish(t, str(i), qos=q, mid=i + 1, proto=5) for t, q, i in plan))
    for t, q, i in plan:
        c.expect_packet((puback if q == 1 else pubrec)(i + 1, proto=5))
    c.send(b"".join(pubrel(i + 1, proto=5) for t, q, i in plan if q == 2))
    for t, q, i in plan:
        if q == 2:
            c.expect_packet(pubcomp(i + 1, proto=5))
    got = []
    for _ in plan:
        d = s.expect_type(PUBLISH)
        got.append((d["topic"], d["qos"], int(d["payload"]), d["mid"]))
    for key in {(t, q) for t, q, _ in plan}:
        want = [i for t, q, i in plan if (t, q) == key]
        have = [i for t, q, i, _ in got if (t, q) == key]
        check_eq(have, want, "order of %s QoS %d" % key)
    s.send(b"".join(puback(m, proto=5) for t, q, i, m in got if q == 1))
    recs = [m for t, q, i, m in got if q == 2]
    s.send(b"".join(pubrec(m, proto=5) for m in recs))
    for m in recs:
        s.await_packet(pubrel(m, proto=5))
    s.send(b"".join(pubcomp(m, proto=5) for m in recs))
    s.expect_no_packet(0.2)


def test_initial_send_quota_v5_MQTT_4_9_0_1(h):
    # v5 MQTT-4.9.0-1: the initial send quota is non-zero and not above the client's Receive
    # Maximum (1): one QoS 2 PUBLISH goes out; the next (QoS 1) only after PUBCOMP (a PUBREC
    # does not replenish the quota, MQTT-4.9.0-2), the third only after that one's PUBACK.
    b = h.broker()
    s = h.connect(b, "sq", proto=5, properties=[(RECEIVE_MAXIMUM, 1)])
    s.subscribe([("sq/t", 2)])
    p = h.connect(b, "sq-p", proto=5)
    p.publish("sq/t", "0", qos=2)
    p.publish("sq/t", "1", qos=1)
    p.publish("sq/t", "2", qos=1)
    d0 = s.expect_publish("sq/t", "0", qos=2, ack=False)
    s.expect_no_packet(0.3)
    s.send(pubrec(d0["mid"], proto=5))
    s.expect_packet(pubrel(d0["mid"], proto=5))
    s.expect_no_packet(0.3)
    s.send(pubcomp(d0["mid"], proto=5))
    d1 = s.expect_publish("sq/t", "1", qos=1, ack=False)
    s.expect_no_packet(0.3)
    s.send(puback(d1["mid"], proto=5))
    s.expect_publish("sq/t", "2", qos=1)


# ---------------------------------------------------------------------------------------------
# SUBSCRIBE / UNSUBSCRIBE / PINGREQ


def test_suback_code_per_filter_v5_MQTT_3_8_4_6_MQTT_3_8_4_7(h):
    # v5 MQTT-3.8.4-6: one Reason Code per Topic Filter / Subscription Options pair (the same
    # filter twice in one SUBSCRIBE gets two codes); MQTT-3.8.4-7: each code is the granted QoS,
    # here capped by max_qos 1, or a failure (>= 0x80).
    b = h.broker("max_qos 1\n")
    c = h.connect(b, "sc", proto=5)
    c.send(subscribe(0x4242, [("sc/a", 0), ("sc/b", 1), ("sc/c", 2), ("sc/#", 2), ("sc/a", 1)],
                     proto=5))
    c.expect_packet(suback(0x4242, [0, 1, 1, 1, 1], proto=5))


def test_unsubscribe_stops_new_messages_v5_MQTT_3_10_4_2(h):
    # v5 MQTT-3.10.4-2: after UNSUBSCRIBE the Server adds no new message for that filter: live
    # (the other filter still delivers) and while the persistent session is offline.
    b = h.broker()
    c = h.connect(b, "un2", proto=5, clean=False, properties=SE60)
    c.subscribe([("un2/a", 1), ("un2/b", 1)])
    c.unsubscribe("un2/a")
    p = h.connect(b, "un2p", proto=5)
    p.publish("un2/a", "gone", qos=1, rc=NOSUB)
    p.publish("un2/b", "live", qos=1)
    c.expect_publish("un2/b", "live", qos=1)
    c.expect_no_packet(0.2)
    c.unsubscribe("un2/b")
    c.disconnect()
    sleep(0.1)
    p.publish("un2/b", "offline", qos=1, rc=NOSUB)
    c2 = h.connect(b, "un2", proto=5, clean=False, properties=SE60, session_present=True)
    c2.expect_no_packet(0.3)


def test_unsubscribe_completes_started_qos2_v5_MQTT_3_10_4_3(h):
    # v5 MQTT-3.10.4-3: a QoS 2 delivery started before the UNSUBSCRIBE is completed: PUBREC ->
    # PUBREL with the same id -> PUBCOMP; and the in-flight QoS 1 is still resent on reconnect.
    b = h.broker()
    s = h.connect(b, "un3", proto=5, clean=False, properties=SE60)
    s.subscribe([("un3/q2", 2), ("un3/q1", 1)])
    p = h.connect(b, "un3p", proto=5)
    p.publish("un3/q2", "two", qos=2)
    p.publish("un3/q1", "one", qos=1)
    d2 = s.expect_publish("un3/q2", "two", qos=2, ack=False)
    d1 = s.expect_publish("un3/q1", "one", qos=1, ack=False)
    s.unsubscribe(["un3/q2", "un3/q1"])
    s.send(pubrec(d2["mid"], proto=5))
    s.expect_packet(pubrel(d2["mid"], proto=5))
    s.send(pubcomp(d2["mid"], proto=5))
    s.expect_no_packet(0.2)
    s.close()
    s2 = h.connect(b, "un3", proto=5, clean=False, properties=SE60, session_present=True)
    s2.expect_publish("un3/q1", "one", qos=1, dup=True, mid=d1["mid"])
    s2.expect_no_packet(0.2)


def test_unsuback_always_v5_MQTT_3_10_4_4_MQTT_3_10_4_5_MQTT_3_11_3_2(h):
    # v5 MQTT-3.10.4-4: every UNSUBSCRIBE is answered by an UNSUBACK; MQTT-3.10.4-5: with its
    # Packet Identifier, also when nothing was removed; MQTT-3.11.3-2: one defined code per
    # filter (0x00 Success, 0x11 No subscription existed). Three pipelined in one segment.
    b = h.broker()
    c = h.connect(b, "ua", proto=5)
    c.subscribe([("ua/x", 0)])
    c.send(unsubscribe(0xFFFF, ["ua/none"], proto=5) + unsubscribe(1, ["ua/x", "ua/x"], proto=5)
           + unsubscribe(0x0100, ["ua/+", "ua/x", "#"], proto=5))
    c.expect_packet(unsuback(0xFFFF, [0x11], proto=5))
    c.expect_packet(unsuback(1, [0x00, 0x11], proto=5))
    c.expect_packet(unsuback(0x0100, [0x11, 0x11, 0x11], proto=5))


def test_pingreq_always_answered_v5_MQTT_3_12_4_1(h):
    # v5 MQTT-3.12.4-1: every PINGREQ gets a PINGRESP: five in one segment, and one between
    # other packets (answered in order).
    b = h.broker()
    c = h.connect(b, "pg", proto=5)
    c.send(pingreq() * 5)
    for _ in range(5):
        c.expect_packet(pingresp())
    c.send(subscribe(2, [("pg/t", 1)], proto=5) + pingreq()
           + publish("pg/t", "x", qos=1, mid=3, proto=5) + pingreq())
    c.expect_packet(suback(2, [1], proto=5))
    c.expect_packet(pingresp())
    got = [c.recv("PUBACK / PUBLISH / PINGRESP") for _ in range(3)]
    check(puback(3, proto=5) in got and pingresp() in got, "got %r" % [g.hex() for g in got])
    check(got.index(puback(3, proto=5)) < got.index(pingresp()), "PUBACK after PINGRESP")


# ---------------------------------------------------------------------------------------------
# The Server's DISCONNECT


def _server_disconnect_no_expiry(h, c, rc):
    try:
        got = c.recv_packet(3.0)
    except Closed:
        check(not h.vigil, "vigil closed without DISCONNECT 0x%02x" % rc)
        return
    d = parse(got, 5)
    check_eq(d["type"], DISCONNECT, "packet type")
    check(SESSION_EXPIRY not in [k for k, _ in d["properties"]], "DISCONNECT %r" % d)
    if h.vigil:
        check_eq(got, disconnect(rc, proto=5), "DISCONNECT")
    c.expect_closed()
    c.close()  # our end too: vigil's shutdown waits (<= 1.5 s) for peers that keep theirs open


def test_server_disconnect_no_session_expiry_v5_MQTT_3_14_2_2(h):
    # v5 MQTT-3.14.2-2: a DISCONNECT sent by the Server never carries Session Expiry Interval,
    # whatever the client asked in CONNECT: protocol error (second CONNECT, 0x82), Topic Alias
    # above the maximum (0x94), takeover (0x8E) and shutdown on SIGTERM (0x8B). Other brokers
    # may close without DISCONNECT (SHOULD); vigil sends each of them.
    b = h.broker()
    for name, bad, rc in (("se-a", connect("se-a", proto=5, properties=SE60), 0x82),
                          ("se-b", publish("se/t", "x", proto=5,
                                           properties=[(TOPIC_ALIAS, 999)]), 0x94)):
        c = h.connect(b, name, proto=5, clean=False, properties=SE60)
        c.send(bad)
        _server_disconnect_no_expiry(h, c, rc)
    old = h.connect(b, "se-c", proto=5, clean=False, properties=SE60)
    new = h.connect(b, "se-c", proto=5, clean=False, properties=SE60, session_present=True)
    _server_disconnect_no_expiry(h, old, 0x8E)
    new.disconnect()
    last = h.connect(b, "se-d", proto=5, clean=False, properties=SE60)
    # Stop the broker in a thread: it waits for this client to close its end (vigil: <= 1.5 s).
    errors = []
    t = threading.Thread(target=_run_catching, args=(b.stop, errors))
    t.start()
    try:
        _server_disconnect_no_expiry(h, last, 0x8B)
    finally:
        last.close()
        t.join(10)
    check(not errors, "broker stop: %s" % errors)


def _run_catching(f, errors):
    try:
        f()
    except Exception as e:  # noqa: BLE001 - reported by the test thread
        errors.append(str(e))


def test_nothing_after_server_disconnect_v5_MQTT_3_14_4_1_MQTT_3_14_4_2(h):
    # v5 MQTT-3.14.4-1: after its DISCONNECT the Server sends nothing more on the connection;
    # MQTT-3.14.4-2: it closes it (MQTT-4.13.2-1: reason >= 0x80). One segment: a PUBLISH to
    # the client's own subscription, a Topic Alias above the maximum (DISCONNECT 0x94), then a
    # PINGREQ and another PUBLISH that must get no answer and not be processed. Another
    # publisher publishes to the subscribed topic meanwhile: none of that may follow the
    # DISCONNECT either. A witness gets everything but the late message.
    b = h.broker()
    w = h.connect(b, "na-w", proto=5)
    w.subscribe("na/t")
    c = h.connect(b, "na", proto=5)
    c.subscribe("na/t")
    p = h.connect(b, "na-p", proto=5)
    c.send_quiet(publish("na/t", "first", proto=5)
                 + publish("na/x", "bad", proto=5, properties=[(TOPIC_ALIAS, 500)])
                 + pingreq() + publish("na/t", "late", proto=5))
    for i in range(20):
        p.send(publish("na/t", "other%d" % i, proto=5))
    got = []
    while True:
        try:
            pk = c.recv_packet(3.0)
        except Closed:
            break
        except Exception:  # noqa: BLE001 - timeout
            fail("connection still open; got %r" % [_short(g) for g in got])
        got.append(pk)
    kinds = [parse(g, 5)["type"] for g in got]
    if DISCONNECT in kinds or h.vigil:
        check(DISCONNECT in kinds, "no DISCONNECT: %r" % [_short(g) for g in got])
        check_eq(kinds.index(DISCONNECT), len(kinds) - 1, "position of DISCONNECT (%r)"
                 % [_short(g) for g in got])
        check_eq(got[-1], disconnect(0x94, proto=5), "DISCONNECT")
    check(pingresp() not in got, "PINGREQ after the bad packet answered")
    payloads = [parse(g, 5)["payload"] for g in got if parse(g, 5)["type"] == PUBLISH]
    check(b"late" not in payloads, "PUBLISH after the bad packet processed")
    seen = [w.expect_type(PUBLISH)["payload"] for _ in range(21)]
    check_eq(sorted(seen), sorted([b"first"] + [b"other%d" % i for i in range(20)]),
             "witness's messages")
    check_eq([x for x in seen if x != b"first"], [b"other%d" % i for i in range(20)],
             "order of the other publisher's messages")
    w.expect_no_packet(0.2)


# ---------------------------------------------------------------------------------------------
# A tiny client Maximum Packet Size: acknowledgements still arrive, small and bare


MPS = 16


def _small_bare(c, ptype, mps=MPS):
    """One packet of type ptype, at most mps bytes, well-formed, no Reason String or User
    Property."""
    got = c.recv(_type_name(ptype))
    d = parse(got, 5)
    check_eq(d["type"], ptype, "packet type (%s)" % got.hex())
    check("error" not in d, "malformed %s: %s" % (d["name"], got.hex()))
    check(len(got) <= mps, "%s of %d bytes > Maximum Packet Size %d" % (d["name"], len(got), mps))
    keys = [k for k, _ in d.get("properties", [])]
    check(REASON_STRING not in keys and USER_PROPERTY not in keys, "%s carries %r"
          % (d["name"], d.get("properties")))
    return got, d


def test_tiny_maximum_packet_size_acks_v5_MQTT_3_4_2_2_MQTT_3_9_2_1_MQTT_3_11_2_1(h):
    # A client Maximum Packet Size of 16: no Reason String / User Property can be added to what
    # the Server sends, which must still arrive complete and well-formed:
    # CONNACK (v5 MQTT-3.2.2-19, MQTT-3.2.2-20), PUBACK (MQTT-3.4.2-2, MQTT-3.4.2-3),
    # PUBREC (MQTT-3.5.2-2, MQTT-3.5.2-3), PUBREL (MQTT-3.6.2-2, MQTT-3.6.2-3),
    # PUBCOMP (MQTT-3.7.2-2, MQTT-3.7.2-3), SUBACK (MQTT-3.9.2-1, MQTT-3.9.2-2),
    # UNSUBACK (MQTT-3.11.2-1, MQTT-3.11.2-2), DISCONNECT (MQTT-3.14.2-3, MQTT-3.14.2-4).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("tiny", proto=5, properties=[(MAXIMUM_PACKET_SIZE, MPS)]))
    _, d = _small_bare(c, CONNACK)
    check_eq(d["rc"], 0, "CONNACK reason")
    c.send(subscribe(1, [("ty/q2", 2), ("ty/+", 2), ("ty/#", 1)], proto=5))
    got, _ = _small_bare(c, SUBACK)
    check_eq(got, suback(1, [2, 2, 1], proto=5), "SUBACK")
    c.send(unsubscribe(2, ["ty/+", "ty/#", "ty/none"], proto=5))
    got, _ = _small_bare(c, UNSUBACK)
    check_eq(got, unsuback(2, [0, 0, 0x11], proto=5), "UNSUBACK")
    c.send(publish("nobody/ty", "x", qos=1, mid=3, proto=5))
    got, d = _small_bare(c, PUBACK)
    check(d["mid"] == 3 and d["rc"] in (0, 0x10), "PUBACK %s" % got.hex())
    c.send(publish("ty/q2", "x", qos=2, mid=4, proto=5))
    # The Server may forward the message to this same client before or after its PUBREC.
    first = c.recv("PUBREC or PUBLISH")
    if parse(first, 5)["type"] == PUBLISH:
        own = first
    else:
        c.pending.insert(0, first)
        own = None
    got, d = _small_bare(c, PUBREC)
    check_eq((d["mid"], d["rc"]), (4, 0), "PUBREC")
    c.send(pubrel(4, proto=5))
    if own is None:
        pk = [c.recv("PUBCOMP and PUBLISH"), c.recv("PUBCOMP and PUBLISH")]
        check(pubcomp(4, proto=5) in pk, "no PUBCOMP 4: %r" % [x.hex() for x in pk])
        own = [x for x in pk if x != pubcomp(4, proto=5)][0]
    else:
        got, d = _small_bare(c, PUBCOMP)
        check_eq(got, pubcomp(4, proto=5), "PUBCOMP")
    pub = parse(own, 5)
    check_eq((pub["type"], pub["topic"], pub["qos"]), (PUBLISH, "ty/q2", 2), "own message")
    c.send(pubrec(pub["mid"], proto=5))
    got, d = _small_bare(c, PUBREL)
    check_eq(d["mid"], pub["mid"], "PUBREL id")
    c.send(pubcomp(pub["mid"], proto=5))
    c.send(pubrel(999, proto=5))
    got, d = _small_bare(c, PUBCOMP)
    check(d["mid"] == 999 and d["rc"] in (0, 0x92), "PUBCOMP %s" % got.hex())
    c.send_quiet(publish("ty/x", "x", proto=5, properties=[(TOPIC_ALIAS, 0)]))
    try:
        got, d = _small_bare(c, DISCONNECT)
    except Exception:  # noqa: BLE001 - a bare close is allowed on other brokers
        if h.vigil:
            raise
        return
    check(d["rc"] >= 0x80, "DISCONNECT reason %r" % d)
    c.expect_closed()


def test_tiny_maximum_packet_size_refusals_v5_MQTT_3_2_2_19_MQTT_3_15_2_2(h):
    # Maximum Packet Size 16 and packets the Server refuses: the refusing CONNACK 0x8C (v5
    # MQTT-3.2.2-19, MQTT-3.2.2-20) and the answer to an unexpected AUTH are small and carry no
    # Reason String / User Property; the Server sends no AUTH at all (v5 MQTT-3.15.2-2,
    # MQTT-3.15.2-3: an AUTH from vigil could only be too large).
    b = h.broker()
    c = h.client(b, proto=5)
    c.send(connect("tinyr", proto=5, properties=[(MAXIMUM_PACKET_SIZE, MPS),
                                                  (AUTH_METHOD, "SCRAM-SHA-256")]))
    got, d = _small_bare(c, CONNACK)
    check(d["rc"] in (0x8C, 0x87), "CONNACK %s" % got.hex())
    c.expect_closed()
    c2 = h.client(b, proto=5)
    c2.send(connect("tinya", proto=5, properties=[(MAXIMUM_PACKET_SIZE, MPS)]))
    _small_bare(c2, CONNACK)
    c2.send_quiet(auth(0x19, properties=[(AUTH_METHOD, "SCRAM-SHA-256")]))
    try:
        got, d = _small_bare(c2, DISCONNECT)
    except Exception:  # noqa: BLE001 - a bare close is allowed on other brokers
        if h.vigil:
            raise
        return
    check(d["rc"] >= 0x80, "DISCONNECT reason %r" % d)
    c2.expect_closed()


# ---------------------------------------------------------------------------------------------
# Shared subscriptions


def _shared_setup(h, name, qos, member_props=None):
    """Member m1 alone in group g gets one message (not acknowledged); then m2 joins. Returns
    (broker, m1, m2, delivered packet)."""
    b = h.broker()
    m1 = h.connect(b, name + "-1", proto=5, clean=False, properties=member_props)
    m1.subscribe([("$share/g/%s/t" % name, qos)])
    p = h.connect(b, name + "-p", proto=5)
    p.publish("%s/t" % name, "only", qos=qos)
    d = m1.expect_publish("%s/t" % name, "only", qos=qos, ack=False)
    m2 = h.connect(b, name + "-2", proto=5)
    m2.subscribe([("$share/g/%s/t" % name, qos)])
    return b, m1, m2, d


def test_shared_qos2_completed_on_reconnect_v5_MQTT_4_8_2_4(h):
    # v5 MQTT-4.8.2-4: a QoS 2 shared delivery cut by the member's disconnect is completed when
    # that member reconnects (same id, DUP 1); the other member of the group does not get it.
    b, m1, m2, d = _shared_setup(h, "s24", 2, SE60)
    m1.close()
    m2.expect_no_packet(0.4)
    r = h.connect(b, "s24-1", proto=5, clean=False, properties=SE60, session_present=True)
    r.expect_publish("s24/t", "only", qos=2, dup=True, mid=d["mid"])
    m2.expect_no_packet(0.2)


def test_shared_session_ended_not_redelivered_v5_MQTT_4_8_2_5(h):
    # v5 MQTT-4.8.2-5: if the member's Session ends (Session Expiry 0, connection closed) before
    # the QoS 1 delivery completed, the message is not sent to another member.
    b, m1, m2, d = _shared_setup(h, "s25", 1)
    m1.close()
    m2.expect_no_packet(0.5)


def test_shared_rejected_not_redelivered_v5_MQTT_4_8_2_6(h):
    # v5 MQTT-4.8.2-6: a member answering PUBACK 0x80 (or PUBREC >= 0x80) rejects the message:
    # the Server discards it and does not try another member.
    b, m1, m2, d = _shared_setup(h, "s26", 1)
    m1.send(puback(d["mid"], rc=0x80, proto=5))
    m2.expect_no_packet(0.4)
    m1.expect_no_packet(0.1)
    b2, n1, n2, e = _shared_setup(h, "s26b", 2)
    n1.send(pubrec(e["mid"], rc=0x83, proto=5))
    n2.expect_no_packet(0.4)
    n1.expect_no_packet(0.1)


# ---------------------------------------------------------------------------------------------
# Transport


def test_byte_stream_transport_v5_MQTT_4_2_0_1(h):
    # v5 MQTT-4.2.0-1: MQTT runs over an ordered, lossless byte stream; packets are not aligned
    # with segments: CONNECT sent one byte per segment, then SUBSCRIBE + PUBLISH + PINGREQ split
    # at arbitrary points, are all answered in order.
    b = h.broker()
    c = h.client(b, proto=5)
    for byte in connect("bs", proto=5):
        c.send(bytes([byte]))
        sleep(0.002)
    check_eq(parse(c.recv("CONNACK"), 5)["rc"], 0, "CONNACK")
    data = (subscribe(1, [("bs/t", 1)], proto=5) + publish("bs/t", "x" * 200, qos=1, mid=2,
                                                             proto=5) + pingreq())
    for cut in (1, 3, 7, 40, 120):
        c.send(data[:cut])
        data = data[cut:]
        sleep(0.01)
    c.send(data)
    c.expect_packet(suback(1, [1], proto=5))
    pk = [c.recv("PUBACK / PUBLISH / PINGRESP") for _ in range(3)]
    check(puback(2, proto=5) in pk and pingresp() in pk, "got %r" % [x.hex() for x in pk])
    pub = parse([x for x in pk if parse(x, 5)["type"] == PUBLISH][0], 5)
    check_eq((pub["topic"], pub["payload"]), ("bs/t", b"x" * 200), "own message")

