"""PUBLISH flows: QoS 1 and 2 acknowledgements byte-exact, QoS 2 duplicate suppression, packet id
reuse, DUP flag rules, redelivery on reconnect only.
"""
from mqtt_test import (publish, puback, pubrec, pubrel, pubcomp, check, check_eq, parse, PUBLISH,
                       connect, connack)


def test_puback_v311_MQTT_3_3_4_1(h):
    # v311 MQTT-3.3.4-1, v311 MQTT-4.3.2-2, v311 MQTT-2.3.1-6: QoS 1 -> PUBACK with the same
    # Packet Identifier.
    b = h.broker()
    c = h.connect(b, "pa")
    c.send(publish("t", "x", qos=1, mid=0x0A0B))
    c.expect_packet(puback(0x0A0B))


def test_puback_v5_MQTT_4_3_2_4(h):
    # v5 MQTT-4.3.2-4, MQTT-2.2.1-5: PUBACK, success with a subscriber (short form 40 02).
    b = h.broker()
    s = h.connect(b, "pa5s", proto=5)
    s.subscribe("t")
    c = h.connect(b, "pa5", proto=5)
    c.send(publish("t", "x", qos=1, mid=77, proto=5))
    c.expect_packet(puback(77, proto=5))


def test_puback_v5_no_subscribers_MQTT_3_4_2_1(h):
    # v5 MQTT-3.4.2-1: PUBACK reason 0x10 (No matching subscribers), as mosquitto 2.0 sends it
    # (byte-exact compatibility; the spec also allows 0x00).
    b = h.broker()
    c = h.connect(b, "pa5", proto=5)
    c.send(publish("nobody/listens", "x", qos=1, mid=78, proto=5))
    c.expect_packet(puback(78, rc=0x10, proto=5))


def test_qos2_flow_v311_MQTT_4_3_3_2(h):
    # v311 MQTT-4.3.3-2: PUBREC with the id; PUBREL -> PUBCOMP with the id.
    b = h.broker()
    c = h.connect(b, "q2")
    c.send(publish("t", "x", qos=2, mid=300))
    c.expect_packet(pubrec(300))
    c.send(pubrel(300))
    c.expect_packet(pubcomp(300))


def test_qos2_flow_v5_MQTT_4_3_3_8_MQTT_4_3_3_11(h):
    # v5 MQTT-4.3.3-8 (PUBREC with id), MQTT-4.3.3-11 (PUBCOMP with id).
    b = h.broker()
    s = h.connect(b, "q25s", proto=5)
    s.subscribe("t")
    c = h.connect(b, "q25", proto=5)
    c.send(publish("t", "x", qos=2, mid=1, proto=5))
    c.expect_packet(pubrec(1, proto=5))
    c.send(pubrel(1, proto=5))
    c.expect_packet(pubcomp(1, proto=5))


def _qos2_duplicate(h, proto):
    b = h.broker()
    s = h.connect(b, "dups", proto=proto)
    s.subscribe([("d/t", 2)])
    c = h.connect(b, "dupp", proto=proto)
    c.send(publish("d/t", "once", qos=2, mid=42, proto=proto))
    c.expect_packet(pubrec(42, proto=proto))
    c.send(publish("d/t", "once", qos=2, mid=42, dup=True, proto=proto))
    c.expect_packet(pubrec(42, proto=proto))
    c.send(pubrel(42, proto=proto))
    c.expect_packet(pubcomp(42, proto=proto))
    s.expect_publish("d/t", "once", qos=2)
    s.expect_no_packet(0.4)


def test_qos2_duplicate_not_delivered_twice_v311_MQTT_4_3_3_2(h):
    # v311 MQTT-4.3.3-2: until PUBREL, a resent PUBLISH gets PUBREC again and is not delivered
    # onward a second time.
    _qos2_duplicate(h, 4)


def test_qos2_duplicate_not_delivered_twice_v5_MQTT_4_3_3_10(h):
    # v5 MQTT-4.3.3-10.
    _qos2_duplicate(h, 5)


def test_qos1_id_reuse_is_new_message_v5_MQTT_4_3_2_5(h):
    # v5 MQTT-4.3.2-5 / v311 MQTT-4.3.2-2: after PUBACK, the same id (even with DUP 1) is a new
    # message and is delivered again.
    b = h.broker()
    s = h.connect(b, "r1s", proto=5)
    s.subscribe([("r/1", 1)])
    c = h.connect(b, "r1p", proto=5)
    c.send(publish("r/1", "a", qos=1, mid=5, proto=5))
    c.expect_packet(puback(5, proto=5))
    c.send(publish("r/1", "b", qos=1, mid=5, dup=True, proto=5))
    c.expect_packet(puback(5, proto=5))
    s.expect_publish("r/1", "a", qos=1)
    s.expect_publish("r/1", "b", qos=1)


def test_qos2_id_reuse_after_pubcomp_v5_MQTT_4_3_3_12(h):
    # v5 MQTT-4.3.3-12: after PUBCOMP, a PUBLISH reusing the id is a new message.
    b = h.broker()
    s = h.connect(b, "r2s", proto=5)
    s.subscribe([("r/2", 2)])
    c = h.connect(b, "r2p", proto=5)
    for payload in ("a", "b"):
        c.send(publish("r/2", payload, qos=2, mid=9, proto=5))
        c.expect_packet(pubrec(9, proto=5))
        c.send(pubrel(9, proto=5))
        c.expect_packet(pubcomp(9, proto=5))
        s.expect_publish("r/2", payload, qos=2)


def test_pubrel_unknown_id_v311(h):
    # v311 MQTT-4.3.3-2: PUBREL is answered with PUBCOMP with the same id even if unknown.
    b = h.broker()
    c = h.connect(b, "pu")
    c.send(pubrel(1234))
    c.expect_packet(pubcomp(1234))


def test_pubrel_unknown_id_v5(h):
    # v5 MQTT-4.3.3-11, MQTT-3.7.2-1: PUBCOMP with the same id for an unknown PUBREL; success,
    # byte-exact as mosquitto 2.0.11 (the spec would also allow 0x92).
    b = h.broker()
    c = h.connect(b, "pu5", proto=5)
    c.send(pubrel(1234, proto=5))
    c.expect_packet(pubcomp(1234, proto=5))


def test_incoming_dup_not_propagated_v311_MQTT_3_3_1_3(h):
    # v311 MQTT-3.3.1-3: the outgoing DUP flag is set independently of the incoming one.
    b = h.broker()
    s = h.connect(b, "dps")
    s.subscribe([("dp", 1)])
    c = h.connect(b, "dpp")
    c.send(publish("dp", "x", qos=1, mid=3, dup=True))
    c.expect_packet(puback(3))
    s.expect_publish("dp", "x", qos=1, dup=False)


def test_server_packet_ids_unique_v5_MQTT_2_2_1_4(h):
    # v5 MQTT-2.2.1-4, v311 MQTT-2.3.1-2: in-flight QoS 1 PUBLISHes to one client carry distinct
    # non-zero Packet Identifiers.
    b = h.broker()
    s = h.connect(b, "ids", proto=5)
    s.subscribe([("id/t", 1)])
    p = h.connect(b, "idp", proto=5)
    for i in range(8):
        p.publish("id/t", str(i), qos=1)
    mids = [s.expect_publish("id/t", str(i), qos=1, ack=False)["mid"] for i in range(8)]
    check(0 not in mids and len(set(mids)) == 8, "packet ids %r" % mids)


def test_no_retransmit_while_connected_v5_MQTT_4_4_0_1(h):
    # v5 MQTT-4.4.0-1: unacknowledged PUBLISHes are resent only on reconnect, never on the live
    # connection.
    b = h.broker()
    s = h.connect(b, "nr", proto=5)
    s.subscribe([("nr", 1)])
    p = h.connect(b, "nrp", proto=5)
    p.publish("nr", "x", qos=1)
    s.expect_publish("nr", "x", qos=1, ack=False)
    s.expect_no_packet(1.2)


def _redeliver(h, proto):
    b = h.broker()
    props = [(0x11, 60)] if proto == 5 else None
    s = h.connect(b, "rd", proto=proto, clean=False, properties=props)
    s.subscribe([("rd/t", 1)])
    p = h.connect(b, "rdp", proto=proto)
    p.publish("rd/t", "again", qos=1)
    first = s.expect_publish("rd/t", "again", qos=1, dup=False, ack=False)
    s.close()
    s2 = h.connect(b, "rd", proto=proto, clean=False, properties=props, session_present=True)
    s2.expect_publish("rd/t", "again", qos=1, dup=True, mid=first["mid"])


def test_redelivery_dup_on_reconnect_v311_MQTT_4_4_0_1(h):
    # v311 MQTT-4.4.0-1 (resend with original id on reconnect), v311 MQTT-3.3.1-1 (DUP 1 on resend).
    _redeliver(h, 4)


def test_redelivery_dup_on_reconnect_v5_MQTT_3_3_1_1(h):
    # v5 MQTT-4.4.0-1, v5 MQTT-3.3.1-1.
    _redeliver(h, 5)


def test_qos2_pubrel_resent_not_publish_v311_MQTT_4_4_0_1(h):
    # v311 MQTT-4.4.0-1 / v5 MQTT-4.3.3-6: after PUBREC was acknowledged with PUBREL, a
    # reconnect resends the PUBREL with the original id, never the PUBLISH.
    b = h.broker()
    s = h.connect(b, "pr", clean=False)
    s.subscribe([("pr/t", 2)])
    p = h.connect(b, "prp")
    p.publish("pr/t", "x", qos=2)
    d = s.expect_publish("pr/t", "x", qos=2, ack=False)
    s.send(pubrec(d["mid"]))
    s.expect_packet(pubrel(d["mid"]))
    s.close()
    s2 = h.client(b)
    s2.send(connect("pr", clean=False))
    s2.expect_packet(connack(0, session_present=True))
    s2.expect_packet(pubrel(d["mid"]))
    s2.send(pubcomp(d["mid"]))
    s2.expect_no_packet(0.3)


def test_qos2_inflight_publish_resent_v5(h):
    # v5 MQTT-4.4.0-1: a QoS 2 PUBLISH without PUBREC is resent (DUP 1, same id) on reconnect.
    b = h.broker()
    props = [(0x11, 60)]
    s = h.connect(b, "q2r", proto=5, clean=False, properties=props)
    s.subscribe([("q2r/t", 2)])
    p = h.connect(b, "q2rp", proto=5)
    p.publish("q2r/t", "x", qos=2)
    d = s.expect_publish("q2r/t", "x", qos=2, ack=False)
    s.close()
    s2 = h.connect(b, "q2r", proto=5, clean=False, properties=props, session_present=True)
    d2 = s2.expect_publish("q2r/t", "x", qos=2, dup=True, mid=d["mid"])
    check_eq(d2["mid"], d["mid"], "packet id")


def test_pubrec_error_is_final_v5_MQTT_4_4_0_2(h):
    # v5 MQTT-4.4.0-2: a PUBREC with reason >= 0x80 acknowledges the PUBLISH: no PUBREL follows
    # and nothing is resent on reconnect.
    b = h.broker()
    props = [(0x11, 60)]
    s = h.connect(b, "pe", proto=5, clean=False, properties=props)
    s.subscribe([("pe/t", 2)])
    p = h.connect(b, "pep", proto=5)
    p.publish("pe/t", "x", qos=2)
    d = s.expect_publish("pe/t", "x", qos=2, ack=False)
    s.send(pubrec(d["mid"], rc=0x80, proto=5))
    s.expect_no_packet(0.3)
    s.close()
    s2 = h.connect(b, "pe", proto=5, clean=False, properties=props, session_present=True)
    s2.expect_no_packet(0.4)


def test_publish_to_subscriber_not_acking_others_flow_v5_MQTT_3_3_4_10(h):
    # v5 MQTT-3.3.4-10 / MQTT-4.9.0-3: with the send quota used up, PINGREQ is still answered.
    b = h.broker()
    s = h.connect(b, "qa", proto=5, properties=[(0x21, 1)])
    s.subscribe([("qa/t", 1)])
    p = h.connect(b, "qap", proto=5)
    p.publish("qa/t", "1", qos=1)
    p.publish("qa/t", "2", qos=1)
    s.expect_publish("qa/t", "1", qos=1, ack=False)
    s.send(b"\xc0\x00")
    got = s.recv("PINGRESP")
    check_eq(got, b"\xd0\x00", "PINGRESP while quota exhausted")


def test_qos1_publish_acked_in_order(h):
    # v311 MQTT-4.6.0-2 family (server side): PUBACKs come back in the order of the PUBLISHes.
    b = h.broker()
    c = h.connect(b, "ao")
    c.send(b"".join(publish("ao", "x", qos=1, mid=m) for m in range(1, 21)))
    for m in range(1, 21):
        c.expect_packet(puback(m))


def test_qos_publish_parse_only(h):
    # v311 MQTT-4.3.1-1, v311 MQTT-3.3.1-2, v311 MQTT-2.3.1-5: forwarded QoS 0 PUBLISH has DUP 0
    # and no packet id.
    b = h.broker()
    s = h.connect(b, "q0s")
    s.subscribe([("q0", 2)])
    p = h.connect(b, "q0p")
    p.publish("q0", "z", qos=0)
    got = s.recv("PUBLISH")
    d = parse(got)
    check_eq((d["type"], d["qos"], d["dup"], d["mid"]), (PUBLISH, 0, False, None), "QoS 0 PUBLISH")
    check_eq(got, publish("q0", "z"), "bytes")


def test_incoming_dup_not_propagated_v5_MQTT_3_3_1_3(h):
    # v5 MQTT-3.3.1-3: the outgoing DUP is set independently of the incoming one; v5 MQTT-3.3.1-2
    # and v5 MQTT-2.2.1-2: a QoS 0 copy has DUP 0 and no packet id.
    b = h.broker()
    s1 = h.connect(b, "d5s1", proto=5)
    s1.subscribe([("dp5", 1)])
    s0 = h.connect(b, "d5s0", proto=5)
    s0.subscribe([("dp5", 0)])
    c = h.connect(b, "d5p", proto=5)
    c.send(publish("dp5", "x", qos=1, mid=3, dup=True, proto=5))
    c.expect_packet(puback(3, proto=5))
    s1.expect_publish("dp5", "x", qos=1, dup=False)
    s0.expect_packet(publish("dp5", "x", proto=5))


def test_pubrec_v5_no_subscribers_MQTT_3_5_2_1(h):
    # v5 MQTT-3.5.2-1: mosquitto 2.0.11 answers a QoS 2 PUBLISH nobody subscribed to with a plain
    # success PUBREC (50 02), unlike its PUBACK (0x10); byte-exact compatibility.
    b = h.broker()
    c = h.connect(b, "q25n", proto=5)
    c.send(publish("nobody/here", "x", qos=2, mid=5, proto=5))
    c.expect_packet(pubrec(5, proto=5))
    c.send(pubrel(5, proto=5))
    c.expect_packet(pubcomp(5, proto=5))
