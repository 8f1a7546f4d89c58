"""MQTT 5 properties and features: message expiry, forwarded properties, subscription identifiers,
no local, retain as published, retain handling, topic aliases, receive maximum (both ways),
maximum packet size (both ways), request problem information, shared subscriptions.
mqtt-spec: 5.0
"""
import time

from mqtt_test import (connect, connack, publish, puback, pubrec, subscribe, subopts,
                       disconnect, check, check_eq, parse, fail, PUBLISH, SUBACK, DISCONNECT,
                       PAYLOAD_FORMAT, MESSAGE_EXPIRY, CONTENT_TYPE, RESPONSE_TOPIC,
                       CORRELATION_DATA, SUBSCRIPTION_ID, SESSION_EXPIRY, RECEIVE_MAXIMUM,
                       TOPIC_ALIAS_MAXIMUM, TOPIC_ALIAS, USER_PROPERTY, MAXIMUM_PACKET_SIZE,
                       REQUEST_PROBLEM_INFO, timeout, sleep, Closed,
                       mosquitto_differs)


def test_properties_forwarded_unchanged_v5_MQTT_3_3_2_17_MQTT_3_3_2_18(h):
    # v5 MQTT-3.3.2-4 (payload format), MQTT-3.3.2-15 (response topic), MQTT-3.3.2-16
    # (correlation data), MQTT-3.3.2-17 / MQTT-3.3.2-18 (user properties unchanged, order kept,
    # duplicates kept), MQTT-3.3.2-20 (content type).
    b = h.broker()
    s = h.connect(b, "pfs", proto=5)
    s.subscribe([("pf/t", 1)])
    p = h.connect(b, "pfp", proto=5)
    props = [(PAYLOAD_FORMAT, 1), (CONTENT_TYPE, "application/json; charset=utf-8"),
             (RESPONSE_TOPIC, "reply/\u00e9"), (CORRELATION_DATA, bytes(range(256))[:40]),
             (USER_PROPERTY, ("z", "last")), (USER_PROPERTY, ("a", "first")),
             (USER_PROPERTY, ("z", "again")), (USER_PROPERTY, ("", ""))]
    p.publish("pf/t", '{"k":1}', qos=1, properties=props)
    s.expect_publish("pf/t", '{"k":1}', qos=1, properties=props)


def test_properties_not_leaked_to_v311(h):
    # A v5 publisher's properties never appear to a v3.1.1 subscriber (its PUBLISH has none).
    b = h.broker()
    s = h.connect(b, "pl", proto=4)
    s.subscribe("pl/t")
    p = h.connect(b, "plp", proto=5)
    p.publish("pl/t", "x", properties=[(USER_PROPERTY, ("k", "v")), (CONTENT_TYPE, "c")])
    s.expect_packet(publish("pl/t", "x"))


def test_message_expiry_forwarded_v5_MQTT_3_3_2_6(h):
    # v5 MQTT-3.3.2-6: live delivery carries the Message Expiry Interval (minus time waited: ~0).
    b = h.broker()
    s = h.connect(b, "mes", proto=5)
    s.subscribe("me/t")
    p = h.connect(b, "mep", proto=5)
    p.publish("me/t", "x", properties=[(MESSAGE_EXPIRY, 30)])
    d = s.expect_type(PUBLISH)
    check(dict(d["properties"]).get(MESSAGE_EXPIRY) in (29, 30), "props %r" % d["properties"])


@timeout(12)
def test_message_expiry_offline_v5_MQTT_3_3_2_5_MQTT_3_3_2_6(h):
    # v5 MQTT-3.3.2-5: a queued message whose expiry passed is not delivered; MQTT-3.3.2-6: the
    # surviving one carries the interval reduced by the time it waited (~2 s).
    b = h.broker()
    props = [(SESSION_EXPIRY, 60)]
    s = h.connect(b, "meo", proto=5, clean=False, properties=props)
    s.subscribe([("meo/t", 1)])
    s.disconnect()
    sleep(0.1)
    p = h.connect(b, "meop", proto=5)
    p.publish("meo/t", "short", qos=1, properties=[(MESSAGE_EXPIRY, 1)])
    p.publish("meo/t", "long", qos=1, properties=[(MESSAGE_EXPIRY, 60)])
    sleep(2.2)
    s2 = h.connect(b, "meo", proto=5, clean=False, properties=props, session_present=True)
    d = s2.expect_type(PUBLISH)
    check_eq(d["payload"], b"long", "first delivered payload (the expired one must be dropped)")
    exp = dict(d["properties"]).get(MESSAGE_EXPIRY)
    check(exp is not None and 55 <= exp <= 58, "remaining expiry %r, want 60 - ~2" % exp)
    s2.send(puback(d["mid"], proto=5))
    s2.expect_no_packet(0.3)


@timeout(12)
def test_retained_message_expiry_v5_MQTT_3_3_2_5(h):
    # v5 3.3.2.3.3: a retained message whose expiry passed is no longer sent to new subscribers.
    b = h.broker()
    p = h.connect(b, "rme", proto=5)
    p.publish("rme/t", "x", retain=True, properties=[(MESSAGE_EXPIRY, 1)])
    sleep(2.2)
    s = h.connect(b, "rmes", proto=5)
    s.subscribe("rme/t")
    s.expect_no_packet(0.4)


def test_subscription_identifier_v5_MQTT_3_3_4_3(h):
    # v5 MQTT-3.3.4-3, MQTT-3.3.4-4, MQTT-3.3.4-5: overlapping subscriptions: one copy with both
    # identifiers, or one copy per subscription with its own identifier.
    b = h.broker()
    s = h.connect(b, "sid", proto=5)
    s.subscribe([("si/#", 0)], properties=[(SUBSCRIPTION_ID, 5)])
    s.subscribe([("si/+", 0)], properties=[(SUBSCRIPTION_ID, 300)])
    p = h.connect(b, "sidp", proto=5)
    p.publish("si/a", "x")
    ids = []
    d = s.expect_type(PUBLISH)
    got = sorted(v for k, v in d["properties"] if k == SUBSCRIPTION_ID)
    if len(got) == 1:
        d2 = s.expect_type(PUBLISH)
        got += [v for k, v in d2["properties"] if k == SUBSCRIPTION_ID]
    ids = sorted(got)
    check_eq(ids, [5, 300], "subscription identifiers")
    s.expect_no_packet(0.2)


def test_subscription_identifier_single_v5(h):
    # v5 MQTT-3.3.4-3: a subscription made with identifier 0x1FFFFF (max varint 3 bytes) gets it
    # back; a subscription without one gets no Subscription Identifier property.
    b = h.broker()
    s = h.connect(b, "sid1", proto=5)
    s.subscribe([("sx/a", 0)], properties=[(SUBSCRIPTION_ID, 0x1FFFFF)])
    s.subscribe([("sx/b", 0)])
    p = h.connect(b, "sid1p", proto=5)
    p.publish("sx/a", "a")
    p.publish("sx/b", "b")
    s.expect_publish("sx/a", "a", properties=[(SUBSCRIPTION_ID, 0x1FFFFF)])
    s.expect_publish("sx/b", "b")


def test_subscription_identifier_retained_v5(h):
    # v5 3.3.4: retained messages sent at subscribe time carry the subscription's identifier.
    b = h.broker()
    p = h.connect(b, "sirp", proto=5)
    p.publish("sir/t", "r", retain=True)
    s = h.connect(b, "sir", proto=5)
    s.subscribe([("sir/t", 0)], properties=[(SUBSCRIPTION_ID, 9)])
    s.expect_publish("sir/t", "r", retain=True, properties=[(SUBSCRIPTION_ID, 9)])


def test_subscription_identifier_zero_protocol_error_v5(h):
    # v5 3.8.2.1.2: Subscription Identifier 0 is a Protocol Error -> (DISCONNECT 0x82 / 0x81) close.
    b = h.broker()
    c = h.connect(b, "si0", proto=5)
    c.send(subscribe(1, [("a", 0)], proto=5, properties=[(SUBSCRIPTION_ID, 0)]))
    got = c.expect_optional_then_closed([disconnect(0x82, proto=5), disconnect(0x81, proto=5)])
    if h.vigil:
        check(got is not None, "vigil must send DISCONNECT before closing")


def test_no_local_v5_MQTT_3_8_3_3(h):
    # v5 MQTT-3.8.3-3: No Local 1: the publisher's own message is not sent back to it.
    b = h.broker()
    c = h.connect(b, "nl", proto=5)
    c.subscribe([("nl/t", subopts(qos=1, nl=True))], codes=[1])
    o = h.connect(b, "nlo", proto=5)
    o.subscribe("nl/t")
    c.publish("nl/t", "mine", qos=1)
    o.expect_publish("nl/t", "mine")
    c.expect_no_packet(0.3)


def test_retain_as_published_v5_MQTT_3_3_1_13(h):
    # v5 MQTT-3.3.1-13: Retain As Published 1: live delivery keeps RETAIN 1; MQTT-3.3.1-12 for 0.
    b = h.broker()
    r = h.connect(b, "rap", proto=5)
    r.subscribe([("rap/t", subopts(rap=True))], codes=[0])
    n = h.connect(b, "rapn", proto=5)
    n.subscribe([("rap/t", subopts(rap=False))], codes=[0])
    p = h.connect(b, "rapp", proto=5)
    p.publish("rap/t", "r", retain=True)
    p.publish("rap/t", "n", retain=False)
    r.expect_publish("rap/t", "r", retain=True)
    r.expect_publish("rap/t", "n", retain=False)
    n.expect_publish("rap/t", "r", retain=False)
    n.expect_publish("rap/t", "n", retain=False)


def test_retain_handling_v5_MQTT_3_3_1_9_MQTT_3_3_1_10_MQTT_3_3_1_11(h):
    # v5 MQTT-3.3.1-9 (RH 0: always), -10 (RH 1: only for a new subscription), -11 (RH 2: never).
    b = h.broker()
    p = h.connect(b, "rhp", proto=5)
    p.publish("rh/t", "kept", retain=True)
    c = h.connect(b, "rh", proto=5)
    c.subscribe([("rh/t", subopts(rh=1))], codes=[0])
    c.expect_publish("rh/t", "kept", retain=True)
    c.subscribe([("rh/t", subopts(rh=1))], codes=[0])
    c.expect_no_packet(0.3)
    c.subscribe([("rh/t", subopts(rh=0))], codes=[0])
    c.expect_publish("rh/t", "kept", retain=True)
    c2 = h.connect(b, "rh2", proto=5)
    c2.subscribe([("rh/t", subopts(rh=2))], codes=[0])
    c2.expect_no_packet(0.3)


def test_retain_handling_3_malformed_v5_MQTT_3_8_3_5(h):
    # v5 MQTT-3.8.3-5 / 3.8.3.1: Retain Handling 3 is a Protocol Error -> (DISCONNECT) close.
    b = h.broker()
    c = h.connect(b, "rh3", proto=5)
    c.send(subscribe(1, [("a", 0x30)], proto=5))
    c.expect_optional_then_closed([disconnect(0x81, proto=5), disconnect(0x82, proto=5)])


def test_topic_alias_from_client_v5_MQTT_3_3_2_12(h):
    # v5 MQTT-3.3.2-12: the Server accepts aliases 1..Topic Alias Maximum (10): set with a topic,
    # then used with an empty topic; subscribers get the full topic and no alias (their Topic
    # Alias Maximum is 0, MQTT-3.1.2-27). MQTT-3.3.2-7: aliases do not survive the connection.
    b = h.broker()
    s = h.connect(b, "tas", proto=5)
    s.subscribe("ta/#")
    c = h.connect(b, "tac", proto=5)
    c.send(publish("ta/one", "1", proto=5, properties=[(TOPIC_ALIAS, 1)]))
    c.send(publish("ta/ten", "10", proto=5, properties=[(TOPIC_ALIAS, 10)]))
    c.send(publish("", "2", proto=5, properties=[(TOPIC_ALIAS, 1)]))
    c.send(publish("", "11", proto=5, properties=[(TOPIC_ALIAS, 10)]))
    c.send(publish("ta/two", "3", proto=5, properties=[(TOPIC_ALIAS, 1)]))  # remap
    c.send(publish("", "4", proto=5, properties=[(TOPIC_ALIAS, 1)]))
    for t, m in (("ta/one", "1"), ("ta/ten", "10"), ("ta/one", "2"), ("ta/ten", "11"),
                 ("ta/two", "3"), ("ta/two", "4")):
        s.expect_publish(t, m)
    c.disconnect()
    c2 = h.connect(b, "tac", proto=5)
    c2.send(publish("", "5", proto=5, properties=[(TOPIC_ALIAS, 1)]))
    c2.expect_disconnect_close(0x82)
    s.expect_no_packet(0.2)


def test_topic_alias_above_max_v5_0x94(h):
    # v5 3.3.2.3.4 / MQTT-3.3.2-12: alias > Topic Alias Maximum -> DISCONNECT 0x94, close.
    b = h.broker()
    c = h.connect(b, "tam", proto=5)
    c.send(publish("ta/x", "x", proto=5, properties=[(TOPIC_ALIAS, 11)]))
    c.expect_packet(disconnect(0x94, proto=5))
    c.expect_closed()


def test_topic_alias_zero_v5_MQTT_3_3_2_8(h):
    # v5 MQTT-3.3.2-8: Topic Alias 0 is not allowed -> DISCONNECT 0x81, close (byte-exact as
    # mosquitto 2.0.11; the spec names no code); not delivered.
    b = h.broker()
    s = h.connect(b, "ta0s", proto=5)
    s.subscribe("ta/x")
    c = h.connect(b, "ta0", proto=5)
    c.send(publish("ta/x", "x", proto=5, properties=[(TOPIC_ALIAS, 0)]))
    c.expect_disconnect_close(0x81, strict=True)
    s.expect_no_packet(0.2)


def test_topic_alias_disabled_v5(h):
    # v5 3.3.2.3.4: with max_topic_alias 0 the CONNACK has no Topic Alias Maximum and any alias
    # is invalid -> DISCONNECT 0x94.
    b = h.broker("max_topic_alias 0\n")
    c = h.connect(b, "tad", proto=5)
    check(TOPIC_ALIAS_MAXIMUM not in dict(c.connack["properties"]), "CONNACK %r" % c.connack)
    c.send(publish("ta/x", "x", proto=5, properties=[(TOPIC_ALIAS, 1)]))
    c.expect_packet(disconnect(0x94, proto=5))
    c.expect_closed()


@mosquitto_differs("mosquitto 2.0.11 answers the PUBLISH over Receive Maximum with PUBREC 0x97 "
                   "(Quota exceeded) instead of DISCONNECT 0x93")
def test_receive_maximum_exceeded_v5_0x93(h):
    # v5 3.3.4: more unacknowledged QoS 2 PUBLISHes than the Server's Receive Maximum (here 2)
    # -> DISCONNECT 0x93 (Receive Maximum exceeded).
    b = h.broker("max_inflight_messages 2\n")
    s = h.connect(b, "rmxs", proto=5)
    s.subscribe("rm/t")
    c = h.connect(b, "rmx", proto=5)
    check_eq(dict(c.connack["properties"]).get(RECEIVE_MAXIMUM), 2, "Receive Maximum")
    for mid in (1, 2):
        c.send(publish("rm/t", "x", qos=2, mid=mid, proto=5))
        c.expect_packet(pubrec(mid, proto=5))
    c.send(publish("rm/t", "x", qos=2, mid=3, proto=5))
    c.expect_packet(disconnect(0x93, proto=5))
    c.expect_closed()


@mosquitto_differs("mosquitto 2.0.11 sends two PUBLISHes after one PUBACK, 3 in flight with "
                   "client Receive Maximum 2")
def test_client_receive_maximum_v5_MQTT_3_3_4_9(h):
    # v5 MQTT-3.3.4-9, MQTT-4.9.0-2: the Server keeps at most the client's Receive Maximum (2)
    # unacknowledged QoS 1 PUBLISHes in flight; an acknowledgement releases the next one.
    b = h.broker()
    s = h.connect(b, "crm", proto=5, properties=[(RECEIVE_MAXIMUM, 2)])
    s.subscribe([("crm/t", 1)])
    p = h.connect(b, "crmp", proto=5)
    for i in range(5):
        p.publish("crm/t", str(i), qos=1)
    d0 = s.expect_publish("crm/t", "0", qos=1, ack=False)
    s.expect_publish("crm/t", "1", qos=1, ack=False)
    s.expect_no_packet(0.4)
    s.send(puback(d0["mid"], proto=5))
    s.expect_publish("crm/t", "2", qos=1, ack=False)
    s.expect_no_packet(0.3)


def test_client_maximum_packet_size_v5_MQTT_3_1_2_24_MQTT_3_1_2_25(h):
    # v5 MQTT-3.1.2-24: the Server never sends a packet above the client's Maximum Packet Size;
    # MQTT-3.1.2-25: it drops it as if delivered and goes on with the next messages.
    b = h.broker()
    s = h.connect(b, "mps", proto=5, properties=[(MAXIMUM_PACKET_SIZE, 64)])
    s.subscribe([("mp/t", 1)])
    p = h.connect(b, "mpp", proto=5)
    p.publish("mp/t", "small1", qos=1)
    p.publish("mp/t", "B" * 100, qos=1)
    p.publish("mp/t", "small2", qos=1)
    s.expect_publish("mp/t", "small1", qos=1)
    s.expect_publish("mp/t", "small2", qos=1)
    s.expect_no_packet(0.3)


@mosquitto_differs("mosquitto 2.0.11 sends a 41-byte PUBLISH to a client whose Maximum Packet "
                   "Size is 40 (off by one)")
def test_client_maximum_packet_size_exact_boundary_v5(h):
    # v5 MQTT-3.1.2-24: a PUBLISH of exactly the Maximum Packet Size is sent; one byte more is not.
    b = h.broker()
    s = h.connect(b, "mpb", proto=5, properties=[(MAXIMUM_PACKET_SIZE, 40)])
    s.subscribe("mb/t")
    p = h.connect(b, "mpbp", proto=5)
    # QoS 0 PUBLISH: 1 + 1 (remaining length) + 2 + 4 (topic) + 1 (properties) + payload.
    fits = "x" * (40 - 9)
    p.publish("mb/t", fits + "y")
    p.publish("mb/t", fits)
    got = s.recv("PUBLISH of 40 bytes")
    check_eq(len(got), 40, "size of the delivered packet")
    check_eq(got, publish("mb/t", fits, proto=5), "delivered packet")
    s.expect_no_packet(0.2)


def test_server_maximum_packet_size_connack_v5(h):
    # v5 3.2.2.3.6: max_packet_size -> CONNACK Maximum Packet Size (mosquitto's property order).
    b = h.broker("max_packet_size 200\n")
    c = h.client(b, proto=5)
    c.send(connect("mpc", proto=5))
    c.expect_packet(connack(0, proto=5, properties=[(TOPIC_ALIAS_MAXIMUM, 10),
                                                     (MAXIMUM_PACKET_SIZE, 200),
                                                     (RECEIVE_MAXIMUM, 20)]))


def test_server_maximum_packet_size_exceeded_v5_0x95(h):
    # v5 3.2.2.3.6 / MQTT-3.2.2-15: a packet above the Server's Maximum Packet Size -> DISCONNECT
    # 0x95 (Packet too large), close; the message is not delivered.
    b = h.broker("max_packet_size 200\n")
    s = h.connect(b, "mpxs", proto=5)
    s.subscribe("mpx/t")
    c = h.connect(b, "mpx", proto=5)
    c.send_quiet(publish("mpx/t", "x" * 300, proto=5))
    c.expect_disconnect_close(0x95)
    s.expect_no_packet(0.3)


def test_server_maximum_packet_size_v311_closes(h):
    # max_packet_size applies to v3.1.1 clients too (mosquitto.conf(5)): the connection is closed.
    b = h.broker("max_packet_size 200\n")
    c = h.connect(b, "mp3")
    c.send_quiet(publish("mpx/t", "x" * 300))
    c.expect_closed()


def test_request_problem_information_zero_v5_MQTT_3_1_2_29(h):
    # v5 MQTT-3.1.2-29: Request Problem Information 0 -> no Reason String / User Property on
    # packets other than PUBLISH, CONNACK, DISCONNECT (here: PUBACK 0x10, SUBACK, UNSUBACK 0x11).
    b = h.broker()
    c = h.connect(b, "rpi", proto=5, properties=[(REQUEST_PROBLEM_INFO, 0)])
    c.send(publish("rpi/none", "x", qos=1, mid=1, proto=5))
    d = c.expect_type(4)
    check(not d["properties"], "PUBACK carries properties %r" % d["properties"])
    c.send(subscribe(2, [("a/#/b", 0)], proto=5))
    try:
        got = c.recv_packet(1.0)
        d = parse(got, 5)
        if d["type"] in (SUBACK,):
            check(not d.get("properties"), "SUBACK carries properties %r" % d.get("properties"))
    except Closed:
        pass


def test_shared_subscription_v5_4_8_2(h):
    # v5 4.8.2: each message on a $share/g/t subscription goes to exactly one member of the group;
    # a non-shared subscriber gets all; a second group gets its own copy.
    b = h.broker()
    members = [h.connect(b, "sh%d" % i, proto=5) for i in range(2)]
    for m in members:
        m.subscribe([("$share/g/sh/t", 1)])
    other = h.connect(b, "shg2", proto=5)
    other.subscribe([("$share/g2/sh/t", 1)])
    plain = h.connect(b, "shp", proto=5)
    plain.subscribe([("sh/t", 1)])
    p = h.connect(b, "shpub", proto=5)
    n = 20
    for i in range(n):
        p.publish("sh/t", str(i), qos=1)
    for i in range(n):
        plain.expect_publish("sh/t", str(i), qos=1)
        other.expect_publish("sh/t", str(i), qos=1)
    got = []
    for m in members:
        while True:
            try:
                pk = m.recv_packet(0.4)
            except Exception:  # noqa: BLE001 - timeout ends this member
                break
            d = parse(pk, 5)
            check_eq((d["type"], d["topic"]), (PUBLISH, "sh/t"), "shared delivery")
            m.send(puback(d["mid"], proto=5))
            got.append(int(d["payload"]))
    check_eq(sorted(got), list(range(n)), "messages over the group (each exactly once)")


@mosquitto_differs("mosquitto 2.0.11 sends retained messages on a new shared subscription")
def test_shared_subscription_no_retained_v5_4_8_2(h):
    # v5 3.3.1.3 (retained messages go to a new Non-shared Subscription) / 4.8.2: none are sent
    # when a shared subscription is made.
    b = h.broker()
    p = h.connect(b, "shrp", proto=5)
    p.publish("shr/t", "ret", retain=True)
    m = h.connect(b, "shr", proto=5)
    m.subscribe([("$share/g/shr/t", 0)])
    m.expect_no_packet(0.4)


@mosquitto_differs("mosquitto 2.0.11 grants No Local on a shared subscription")
def test_shared_subscription_no_local_protocol_error_v5_MQTT_3_8_3_4(h):
    # v5 MQTT-3.8.3-4: No Local on a shared subscription is a Protocol Error -> (DISCONNECT 0x82)
    # close.
    b = h.broker()
    c = h.connect(b, "shnl", proto=5)
    c.send(subscribe(1, [("$share/g/t", subopts(nl=True))], proto=5))
    c.expect_disconnect_close(0x82)


def test_shared_subscription_unsubscribe_v5(h):
    # v5 4.8.2 / MQTT-3.10.4-1: a member that unsubscribes from $share/g/t gets nothing more.
    b = h.broker()
    m1 = h.connect(b, "shu1", proto=5)
    m1.subscribe([("$share/g/shu/t", 0)])
    m2 = h.connect(b, "shu2", proto=5)
    m2.subscribe([("$share/g/shu/t", 0)])
    m1.unsubscribe("$share/g/shu/t")
    p = h.connect(b, "shup", proto=5)
    for i in range(5):
        p.publish("shu/t", str(i))
    for i in range(5):
        m2.expect_publish("shu/t", str(i))
    m1.expect_no_packet(0.2)


def _invalid_shared(h, filters):
    b = h.broker()
    for i, bad in enumerate(filters):
        c = h.connect(b, "shi%d" % i, proto=5)
        c.send(subscribe(3, [(bad, 0)], proto=5))
        try:
            got = c.recv_packet(1.5)
        except Closed:
            continue
        except Exception:  # noqa: BLE001
            fail("no answer to SUBSCRIBE %r" % bad)
        d = parse(got, 5)
        if d["type"] == SUBACK:
            check(d["codes"][0] >= 0x80, "filter %r granted: %r" % (bad, d))
        else:
            check(d["type"] == DISCONNECT and d["rc"] >= 0x80, "filter %r: %r" % (bad, d))
            c.expect_closed()


def test_invalid_shared_filter_v5_MQTT_4_8_2_2(h):
    # v5 MQTT-4.8.2-2: a ShareName with '+' or a '#' in the middle of the filter: refused (SUBACK
    # >= 0x80) or (DISCONNECT) close.
    _invalid_shared(h, ["$share/g+/t", "$share/g/#/x"])


@mosquitto_differs("mosquitto 2.0.11 grants '$share/g' and '$share//t' (as plain filters)")
def test_invalid_shared_filter_empty_parts_v5_MQTT_4_8_2_1(h):
    # v5 MQTT-4.8.2-1 (ShareName of at least one character), MQTT-4.8.2-2 ('/' and a Topic Filter
    # follow the ShareName): '$share//t' and '$share/g' are refused.
    _invalid_shared(h, ["$share/g", "$share//t"])


def test_server_topic_alias_within_client_max_MQTT_3_1_2_26_MQTT_3_3_2_11(h):
    # MQTT-3.1.2-26, MQTT-3.3.2-11: a client announcing Topic Alias Maximum 2 never receives an
    # alias above 2 (nor 0, MQTT-3.3.2-8); each message resolves to its real topic.
    b = h.broker()
    s = h.connect(b, "sta", proto=5, properties=[(TOPIC_ALIAS_MAXIMUM, 2)])
    s.subscribe("sta/#")
    p = h.connect(b, "stap", proto=5)
    topics = ["sta/%d" % (i % 4) for i in range(12)]
    for t in topics:
        p.publish(t, t)
    aliases = {}
    for t in topics:
        d = s.expect_type(PUBLISH)
        props_ = dict(d["properties"])
        alias = props_.get(TOPIC_ALIAS)
        topic = d["topic"]
        if alias is not None:
            check(1 <= alias <= 2, "alias %r outside 1..2" % alias)
            if topic:
                aliases[alias] = topic
            else:
                check(alias in aliases, "alias %r used before being set" % alias)
                topic = aliases[alias]
        check_eq((topic, d["payload"]), (t, t.encode()), "message")


def test_maximum_qos_MQTT_3_2_2_9_MQTT_3_2_2_10(h):
    # MQTT-3.2.2-9: max_qos 1 -> CONNACK Maximum QoS 1; MQTT-3.2.2-10: a SUBSCRIBE asking QoS 2
    # is still accepted (granted 1).
    b = h.broker("max_qos 1\n")
    c = h.connect(b, "mq", proto=5)
    check_eq(dict(c.connack["properties"]).get(0x24), 1, "Maximum QoS in CONNACK")
    c.subscribe([("mq/t", 2)], codes=[1])


def test_maximum_qos_will_refused_MQTT_3_2_2_12(h):
    # MQTT-3.2.2-12: a Will QoS above the Server's maximum -> CONNACK 0x9B (QoS not supported)
    # and close.
    b = h.broker("max_qos 1\n")
    c = h.client(b, proto=5)
    c.send(connect("mqw", proto=5, will={"topic": "w", "payload": b"x", "qos": 2}))
    # mosquitto 2.0.11 sends 20 05 00 9b 02 24 01 (with Maximum QoS 1).
    got = c.expect_optional_then_closed([connack(0x9B, proto=5, properties=[(0x24, 1)]),
                                         connack(0x9B, proto=5)])
    check(got is not None, "no CONNACK before close")


def test_maximum_qos_publish_above_v5(h):
    # v5 3.2.2.3.4: a PUBLISH above Maximum QoS is a Protocol Error -> DISCONNECT 0x9B, close.
    b = h.broker("max_qos 1\n")
    c = h.connect(b, "mqp", proto=5)
    c.send(publish("mq/t", "x", qos=2, mid=1, proto=5))
    c.expect_disconnect_close(0x9B)
