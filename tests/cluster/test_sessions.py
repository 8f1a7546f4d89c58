#!/usr/bin/python3
"""Persistent sessions across vigil cluster nodes (issue 12 points 3 and 6).

A client that disconnects from node a and reconnects to node b with Clean Start 0 / Clean
Session 0 finds its session there (session present 1: v311 MQTT-3.1.2-4 / v311 MQTT-3.2.2-2,
v5 MQTT-3.1.2-5 / v5 MQTT-3.2.2-2) with every message published meanwhile on any node, in order
(v5 MQTT-4.6.0-6), QoS 2 exactly once (v5 section 4.3.3), unacknowledged ones resent with DUP
(v5 MQTT-4.4.0-1); a node killed -9 leaves its sessions to the survivors. Real nats-server,
2-3 vigil nodes on loopback (cluster_lib.py), raw MQTT clients (tests/broker/mqtt_test.py).
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cluster_lib as cl  # noqa: E402
from cluster_lib import mt  # noqa: E402

FAST = "cluster_node_timeout 2\n"
V5_KEEP = [(mt.SESSION_EXPIRY, 300)]



def ack_publish(c, p):
    """Acknowledge a received PUBLISH p as a subscriber does: PUBACK, or PUBREC/PUBREL/PUBCOMP."""
    if p["qos"] == 1:
        c.send(mt.puback(p["mid"], proto=c.proto))
    elif p["qos"] == 2:
        c.send(mt.pubrec(p["mid"], proto=c.proto))
        c.await_packet(mt.pubrel(p["mid"], proto=c.proto))
        c.send(mt.pubcomp(p["mid"], proto=c.proto))

def nodes(h, n=2, extra=FAST):
    nats = h.nats()
    names = "abc"[:n]
    ns = [h.node(nats.url(), x, extra) for x in names]
    for x in ns:
        for y in names:
            if y != x.name:
                h.wait_log(x, "node %s (instance" % y)
    return nats, ns


def settle():
    time.sleep(0.3)  # a SUBACK on one node; its NATS subscription reaches the server just after


def persistent(h, node, cid, proto, present, **kw):
    if proto == 5:
        return h.connect(node, cid, proto=5, clean=False, properties=V5_KEEP, session_present=present, **kw)
    return h.connect(node, cid, proto=proto, clean=False, session_present=present, **kw)


def collect(c, n, timeout=8.0):
    """n PUBLISH packets (parsed), acknowledged (QoS 1 PUBACK; QoS 2 PUBREC/PUBREL/PUBCOMP)."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            mt.fail("%s: %d of %d messages within %.0f s: %r" % (c.name, len(got), n, timeout,
                                                                  [p["payload"] for p in got]))
        p = mt.parse(c.recv("PUBLISH %d" % len(got), timeout=left), c.proto)
        if p["type"] != mt.PUBLISH:
            mt.fail("%s: want PUBLISH, got %s" % (c.name, p))
        ack_publish(c, p)
        got.append(p)
    return got


def test_move_v311_v5_and_back(h):
    """v3.1.1 and v5 session a -> b -> a with QoS 1/2 published meanwhile on both nodes (v311 MQTT-3.1.2-4, v5 MQTT-3.1.2-5, v5 section 4.3.3)"""
    nats, (a, b) = nodes(h)
    pa = h.connect(a, "pub-a", proto=5)
    pb = h.connect(b, "pub-b", proto=4)
    for proto in (4, 5):
        cid = "mover%d" % proto
        t = "mv%d" % proto
        c = persistent(h, a, cid, proto, False)
        c.subscribe([(t + "/one", 1), (t + "/two", 2)])
        c.disconnect()
        settle()
        # Published meanwhile: QoS 1 on a's node, QoS 2 on b's node (reaching a's queue through NATS).
        for i in range(5):
            pa.publish(t + "/one", b"a%d" % i, qos=1)
        time.sleep(0.2)
        for i in range(5):
            pb.publish(t + "/two", b"b%d" % i, qos=2)
        time.sleep(0.3)
        t0 = time.monotonic()
        c = persistent(h, b, cid, proto, True)  # session present 1 on the other node
        took = time.monotonic() - t0
        got = collect(c, 10)
        mt.check_eq([(p["topic"], p["payload"], p["qos"]) for p in got],
                    [(t + "/one", b"a%d" % i, 1) for i in range(5)] + [(t + "/two", b"b%d" % i, 2) for i in range(5)],
                    "proto %d: the 10 messages queued on a, in order, at their QoS" % proto)
        c.expect_no_packet(0.4)  # QoS 2 exactly once, QoS 1 not again
        # The session now lives on b: back to a, with new messages from both nodes.
        c.disconnect()
        settle()
        pb.publish(t + "/one", b"back-b", qos=1)
        pa.publish(t + "/two", b"back-a", qos=2)
        time.sleep(0.3)
        c = persistent(h, a, cid, proto, True)
        got = collect(c, 2)
        mt.check_eq([(p["topic"], p["payload"]) for p in got], [(t + "/one", b"back-b"), (t + "/two", b"back-a")],
                    "proto %d: b -> a" % proto)
        c.expect_no_packet(0.4)
        c.disconnect()
        print("  checked: proto %d a -> b (CONNACK after %.0f ms) -> a, 12 messages once each, in order"
              % (proto, took * 1000))
    mt.check(a.log().count("moved to node b") == 2 and b.log().count("moved to node a") == 2, "moves logged")


def test_inflight_resent_with_dup(h):
    """unacknowledged QoS 1 PUBLISH and a pending PUBREL at a are resent at b (v5 MQTT-4.4.0-1), same packet ids"""
    nats, (a, b) = nodes(h)
    c = h.connect(a, "dupper", proto=5, clean=False, properties=V5_KEEP)
    c.subscribe([("d/1", 1), ("d/2", 2)])
    settle()
    pub = h.connect(b, "p", proto=5)
    pub.publish("d/1", b"unacked", qos=1)
    p1 = c.expect_publish("d/1", b"unacked", qos=1, ack=False)
    pub.publish("d/2", b"half", qos=2)
    p2 = c.expect_publish("d/2", b"half", qos=2, ack=False)
    c.send(mt.pubrec(p2["mid"], proto=5))
    c.expect_packet(mt.pubrel(p2["mid"], proto=5))  # ... and no PUBCOMP: PUBREL pending
    pub.publish("d/1", b"queued", qos=1)
    c.expect_publish("d/1", b"queued", qos=1, ack=False)
    c.close()  # the network fails: nothing acknowledged
    time.sleep(0.2)
    c2 = h.connect(b, "dupper", proto=5, clean=False, properties=V5_KEEP, session_present=True)
    c2.expect_publish("d/1", b"unacked", qos=1, dup=True, mid=p1["mid"], ack=False)
    c2.expect_packet(mt.pubrel(p2["mid"], proto=5))
    c2.expect_publish("d/1", b"queued", qos=1, dup=True, ack=False)
    c2.send(mt.pubcomp(p2["mid"], proto=5))
    c2.expect_no_packet(0.4)
    print("  checked: PUBLISH resent with DUP and its packet id, PUBREL resent, order kept")


def test_inbound_qos2_awaiting_pubrel(h):
    """an inbound QoS 2 flow begun at a (PUBREC sent) is completed at b: routed once on PUBREL (v5 MQTT-4.3.3-10)"""
    nats, (a, b) = nodes(h)
    w = h.connect(b, "w", proto=5)
    w.subscribe([("in/#", 2)])
    settle()
    c = h.connect(a, "pubber", proto=5, clean=False, properties=V5_KEEP)
    c.send(mt.publish("in/q2", b"once", qos=2, mid=77, proto=5))
    c.expect_packet(mt.pubrec(77, proto=5))
    c.close()
    time.sleep(0.2)
    c2 = h.connect(b, "pubber", proto=5, clean=False, properties=V5_KEEP, session_present=True)
    c2.send(mt.publish("in/q2", b"once", qos=2, mid=77, dup=True, proto=5))  # a resend: not routed again
    c2.expect_packet(mt.pubrec(77, proto=5))
    c2.send(mt.pubrel(77, proto=5))
    c2.expect_packet(mt.pubcomp(77, proto=5))
    w.expect_publish("in/q2", b"once", qos=2)
    w.expect_no_packet(0.5)
    print("  checked: the QoS 2 message published at a reached its subscriber exactly once")


def test_subscription_options_kept(h):
    """after the move the subscription keeps its identifier and no-local (v5 MQTT-3.3.4-3, v5 MQTT-3.8.3-3)"""
    nats, (a, b) = nodes(h)
    c = h.connect(a, "opts", proto=5, clean=False, properties=V5_KEEP)
    c.subscribe([("o/#", mt.subopts(1, nl=True))], codes=[1], properties=[(mt.SUBSCRIPTION_ID, 42)])
    c.disconnect()
    c = h.connect(b, "opts", proto=5, clean=False, properties=V5_KEEP, session_present=True)
    settle()
    c.publish("o/self", b"mine", qos=1)  # no-local: not back to its own session
    h.connect(a, "other", proto=5).publish("o/x", b"theirs", qos=1)
    c.expect_publish("o/x", b"theirs", qos=1, properties=[(mt.SUBSCRIPTION_ID, 42)])
    c.expect_no_packet(0.4)
    print("  checked: subscription id 42 and no-local on b")


def test_clean_start_discards_everywhere(h):
    """Clean Start 1 on b discards the session kept on a (v5 MQTT-3.1.2-4, v311 MQTT-3.1.2-6)"""
    nats, (a, b) = nodes(h)
    pub = h.connect(a, "p", proto=5)
    for proto in (4, 5):
        cid = "cleaner%d" % proto
        c = persistent(h, a, cid, proto, False)
        c.subscribe([("cs%d/#" % proto, 1)])
        c.disconnect()
        settle()
        pub.publish("cs%d/x" % proto, b"old", qos=1)
        time.sleep(0.2)
        c = h.connect(b, cid, proto=proto, clean=True)  # session present 0
        c.expect_no_packet(0.3)
        c.disconnect()
        time.sleep(0.3)
        c = persistent(h, a, cid, proto, False)  # gone on a too
        c.expect_no_packet(0.3)
        c.disconnect()
    print("  checked: v3.1.1 and v5 sessions discarded on both nodes")


def test_owner_killed(h):
    """owner killed -9: the client reconnecting to another node gets its subscriptions back (issue 12 point 6)"""
    nats, (a, b, c) = nodes(h, 3)
    for cid, proto in (("dev4", 4), ("dev5", 5)):
        d = persistent(h, a, cid, proto, False)
        d.subscribe([("k/%s/#" % cid, 1)])
        if cid == "dev4":
            d.disconnect()  # one offline, one still connected when a dies
    time.sleep(0.3)
    t0 = time.monotonic()
    h.kill9(a)
    # Both reconnect at once: their CONNECTs wait until a is declared dead (timeout 2 s) and its
    # sessions are adopted (by b or c, whichever wins the claim).
    c4 = persistent(h, c, "dev4", 4, True, timeout=8)
    took4 = time.monotonic() - t0
    c5 = persistent(h, b, "dev5", 5, True, timeout=8)
    took = time.monotonic() - t0
    mt.check(took <= 2 + 3.0, "sessions back after %.2f s (timeout 2 s + 3 s)" % took)
    settle()
    pub = h.connect(b, "p", proto=4)
    pub.publish("k/dev4/x", b"new4", qos=1)
    pub.publish("k/dev5/x", b"new5", qos=1)
    c4.expect_publish("k/dev4/x", b"new4", qos=1)
    c5.expect_publish("k/dev5/x", b"new5", qos=1)
    adopted = sum(x.log().count("resumed the session of client") for x in (b, c))
    mt.check_eq(adopted, 2, "sessions adopted by the survivors together")
    print("  checked: both sessions back after %.2f / %.2f s (present 1), new messages delivered" % (took4, took))


def test_dead_owner_session_expires(h):
    """a session whose node died still expires on the node that adopted it (v5 MQTT-3.1.2-23)"""
    nats, (a, b) = nodes(h)
    d = h.connect(a, "exp", proto=5, clean=False, properties=[(mt.SESSION_EXPIRY, 3)])
    d.subscribe([("e/#", 1)])
    d.disconnect()
    keep = h.connect(a, "keep", proto=5, clean=False, properties=V5_KEEP)
    keep.subscribe([("e/#", 1)])
    keep.disconnect()
    time.sleep(0.3)
    h.kill9(a)
    h.wait_log(b, "resumed the session of client exp", timeout=2 + 3)
    h.wait_log(b, "Expiring client exp", timeout=3)
    c = h.connect(b, "exp", proto=5, clean=False, properties=V5_KEEP)  # present 0: expired
    c.disconnect()
    c = h.connect(b, "keep", proto=5, clean=False, properties=V5_KEEP, session_present=True)
    print("  checked: adopted session expired after its interval; the other one kept")
    # And across live nodes: expired on a node, not found on the other.
    a2 = h.node(nats.url(), "a2", FAST)
    h.wait_log(b, "node a2 (instance")
    d = h.connect(a2, "exp2", proto=5, clean=False, properties=[(mt.SESSION_EXPIRY, 1)])
    d.disconnect()
    time.sleep(1.6)
    h.connect(b, "exp2", proto=5, clean=False, properties=V5_KEEP)  # session present 0
    print("  checked: a session expired on a2 is not resumed on b")


def test_race_publishing_during_move(h):
    """messages published continuously on both nodes while the session moves a -> b -> a: none lost, none twice (QoS 1, v5 MQTT-4.6.0-6)"""
    nats, (a, b) = nodes(h)
    c = h.connect(a, "racer", proto=5, clean=False, properties=V5_KEEP)
    c.subscribe([("r/#", 1)])
    settle()
    N = 400
    errors = []

    def publisher(node, name):
        try:
            p = h.connect(node, name, proto=5)
            for i in range(N):
                p.publish("r/" + name, b"%d" % i, qos=1, rc=mt.NOSUB)
                if i % 4 == 0:
                    time.sleep(0.002)
            p.disconnect()
        except Exception as e:  # noqa: BLE001 - reported by the main thread
            errors.append("%s: %s" % (name, e))

    got = {"pa": [], "pb": []}

    def note(p):
        got[p["topic"][2:]].append(int(p["payload"]))

    def receive_for(c, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if c.is_open(0.01) and (c.buf or c.pending):
                note(collect(c, 1)[0])

    threads = [threading.Thread(target=publisher, args=(node, name)) for node, name in ((a, "pa"), (b, "pb"))]
    for t in threads:
        t.start()
    # Receive for a while, leave (DISCONNECT, after the PUBACKs), come back on the other node
    # mid-stream; twice.
    for node in (b, a):
        receive_for(c, 0.25)
        c.disconnect()
        time.sleep(0.03)
        c = h.connect(node, "racer", proto=5, clean=False, properties=V5_KEEP, session_present=True, timeout=6)
    for t in threads:
        t.join(30)
    mt.check(not errors, "publishers: %s" % errors)
    want = 2 * N - len(got["pa"]) - len(got["pb"])
    for p in collect(c, want, timeout=15):
        note(p)
    c.expect_no_packet(0.5)
    for name in ("pa", "pb"):
        mt.check_eq(got[name], list(range(N)), "messages of %s: each once, in order" % name)
    moves = [x.split("\n")[0] for n in (a, b) for x in n.log().split("Cluster: session of client racer: ")[1:]]
    print("  checked: 2 x %d QoS 1 messages each once and in order across 2 moves (%s)" % (N, "; ".join(moves)))


def take(c, n, timeout=8.0):
    """n packets, PUBLISH (parsed, acknowledged: QoS 1 PUBACK, QoS 2 PUBREC/PUBREL/PUBCOMP) or
    PUBREL (answered with PUBCOMP): [(type, topic, payload, qos, dup, mid)]."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            mt.fail("%s: %d of %d packets within %.0f s: %r" % (c.name, len(got), n, timeout, got))
        p = mt.parse(c.recv("packet %d" % len(got), timeout=left), c.proto)
        if p["type"] == mt.PUBREL:
            c.send(mt.pubcomp(p["mid"], proto=c.proto))
            got.append(("PUBREL", None, None, None, None, p["mid"]))
            continue
        if p["type"] != mt.PUBLISH:
            mt.fail("%s: want PUBLISH or PUBREL, got %s" % (c.name, p))
        ack_publish(c, p)
        got.append(("PUBLISH", p["topic"], p["payload"], p["qos"], p["dup"], p["mid"]))
    return got


def test_dead_owner_queued_messages_replayed(h):
    """owner killed -9: an offline v3.1.1 and v5 session resume on another node with every QoS 1/2 message queued there, from the stream: once, in order, the unacked PUBLISH resent with DUP and its id, the pending PUBREL continued, the PUBREC'd message never again (v5 MQTT-4.4.0-1, v311 MQTT-4.4.0-1, v5 MQTT-4.3.3-6, v311 MQTT-4.3.3-1, v5 MQTT-4.6.0-6, v311 MQTT-4.6.0-6, v5 MQTT-3.3.1-1)"""
    nats, (a, b, c) = nodes(h, 3)
    pa = h.connect(a, "pub-a", proto=5)
    pb = h.connect(b, "pub-b", proto=4)
    state = {}
    for proto in (4, 5):
        cid, t = "q%d" % proto, "rp%d" % proto
        d = persistent(h, a, cid, proto, False)
        d.subscribe([(t + "/one", 1), (t + "/two", 2)])
        settle()
        # Before it leaves: a QoS 2 message PUBREC'd (PUBREL pending), a QoS 1 one unacked,
        # one acknowledged after it.
        pb.publish(t + "/two", b"rec-done", qos=2)
        p2 = d.expect_publish(t + "/two", b"rec-done", qos=2, ack=False)
        d.send(mt.pubrec(p2["mid"], proto=proto))
        d.expect_packet(mt.pubrel(p2["mid"], proto=proto))
        pb.publish(t + "/one", b"unacked", qos=1)
        p1 = d.expect_publish(t + "/one", b"unacked", qos=1, ack=False)
        pa.publish(t + "/one", b"acked", qos=1)
        d.expect_publish(t + "/one", b"acked", qos=1)
        d.close()  # the network fails
        state[proto] = (p1["mid"], p2["mid"])
    time.sleep(0.3)
    # Queued meanwhile on a only: from a's own publisher and through NATS from b's.
    for proto in (4, 5):
        t = "rp%d" % proto
        for i in range(4):
            pa.publish(t + "/one", b"a%d" % i, qos=1)
            pb.publish(t + "/two", b"b%d" % i, qos=2)
    time.sleep(0.3)
    t0 = time.monotonic()
    h.kill9(a)
    for proto, node in ((4, c), (5, b)):
        cid, t = "q%d" % proto, "rp%d" % proto
        d = persistent(h, node, cid, proto, True, timeout=10)
        mid1, mid2 = state[proto]
        # First what was in flight, in send order: the PUBREL, then the PUBLISH with DUP.
        d.expect_packet(mt.pubrel(mid2, proto=proto))
        d.send(mt.pubcomp(mid2, proto=proto))
        d.expect_publish(t + "/one", b"unacked", qos=1, dup=True, mid=mid1)
        got = take(d, 8)
        d.expect_no_packet(0.5)
        for x in got:
            mt.check(x[0] == "PUBLISH" and not x[4], "%s: a queued message, no DUP: %r" % (cid, x))
        mt.check_eq([x[2] for x in got if x[1] == t + "/one"], [b"a%d" % i for i in range(4)],
                    "%s: a's QoS 1 messages once, in order" % cid)
        mt.check_eq([x[2] for x in got if x[1] == t + "/two"], [b"b%d" % i for i in range(4)],
                    "%s: b's QoS 2 messages once, in order" % cid)
        mt.check(all(x[3] == (1 if x[1].endswith("one") else 2) for x in got), "%s: QoS as granted" % cid)
        d.disconnect()
    took = time.monotonic() - t0
    print("  checked: v3.1.1 and v5 sessions back %.2f s after the kill with 1 PUBREL, 1 DUP resend and 8 "
          "queued messages each, none twice" % took)


def test_dead_owner_connected_inflight(h):
    """owner killed -9 while the v5 client is connected with QoS 1 and QoS 2 messages in flight: on another node the PUBLISH is resent with DUP and its id, the PUBREL continued (v5 MQTT-4.4.0-1, v5 MQTT-4.3.3-6); published after the death: delivered"""
    nats, (a, b) = nodes(h)
    d = h.connect(a, "live", proto=5, clean=False, properties=V5_KEEP)
    d.subscribe([("lv/1", 1), ("lv/2", 2)])
    settle()
    pb = h.connect(b, "pub", proto=5)
    for i in range(3):
        pb.publish("lv/1", b"done%d" % i, qos=1)
        d.expect_publish("lv/1", b"done%d" % i, qos=1)
    pb.publish("lv/2", b"half", qos=2)
    p2 = d.expect_publish("lv/2", b"half", qos=2, ack=False)
    d.send(mt.pubrec(p2["mid"], proto=5))
    d.expect_packet(mt.pubrel(p2["mid"], proto=5))
    pb.publish("lv/1", b"unacked", qos=1)
    p1 = d.expect_publish("lv/1", b"unacked", qos=1, ack=False)
    time.sleep(1.5)  # its record is checkpointed (at most every second while its state changes)
    h.kill9(a)
    d.close()
    d = h.connect(b, "live", proto=5, clean=False, properties=V5_KEEP, session_present=True, timeout=10)
    d.expect_packet(mt.pubrel(p2["mid"], proto=5))
    d.send(mt.pubcomp(p2["mid"], proto=5))
    d.expect_publish("lv/1", b"unacked", qos=1, dup=True, mid=p1["mid"])
    d.expect_no_packet(0.4)  # the acknowledged ones are not sent again
    pb.publish("lv/1", b"after", qos=1)
    d.expect_publish("lv/1", b"after", qos=1)
    print("  checked: in-flight state of a connected session resumed on b from its checkpoint")


def test_single_node_unchanged(h):
    """a node without cluster options resumes sessions as before (no hold, no cluster code)"""
    b = h.broker("", name="solo")
    c = h.connect(b, "solo", proto=4, clean=False)
    c.subscribe([("s/#", 1)])
    c.disconnect()
    h.connect(b, "p").publish("s/1", b"x", qos=1)
    c = h.connect(b, "solo", proto=4, clean=False, session_present=True)
    c.expect_publish("s/1", b"x", qos=1)
    mt.check("Cluster" not in b.log(), "no cluster code ran")
    print("  checked: single node resume")


if __name__ == "__main__":
    cl.need_nats()
    sys.exit(cl.run(sys.argv[1:], [test_move_v311_v5_and_back, test_inflight_resent_with_dup,
                                    test_inbound_qos2_awaiting_pubrel, test_subscription_options_kept,
                                    test_clean_start_discards_everywhere, test_owner_killed,
                                    test_dead_owner_session_expires, test_dead_owner_queued_messages_replayed,
                                    test_dead_owner_connected_inflight, test_race_publishing_during_move,
                                    test_single_node_unchanged]))
