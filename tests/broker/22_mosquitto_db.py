"""Switching from mosquitto: a mosquitto.db written by the real mosquitto 2.0.11 is imported at
start-up (retained messages, sessions, subscriptions, queued and in-flight messages) and left
untouched.

Each test has mosquitto 2.0.11 build the state of tests/unit/mosqdb_gen.py and write its
mosquitto.db (SIGTERM), then starts the broker under test on that persistence_location. Run with
--broker mosquitto, the same tests check that mosquitto restores its own file the same way: the
expectations are mosquitto's behaviour after a restart, not vigil's invention.
mqtt-spec: v311 MQTT-3.1.2-4, v311 MQTT-4.4.0-1, v5 MQTT-3.1.2-23
"""
import hashlib
import os
import subprocess
import sys

from mqtt_test import (MOSQUITTO, NOSUB, REPO, CONTENT_TYPE, CORRELATION_DATA, MESSAGE_EXPIRY,
                       PAYLOAD_FORMAT, RESPONSE_TOPIC, SESSION_EXPIRY, SUBSCRIPTION_ID, USER_PROPERTY,
                       broker_bin, check, check_eq, fail, free_port, mosquitto_differs, parse, puback,
                       pubcomp, pubrec, pubrel, publish, sleep, timeout, vigil_only)

GEN = os.path.join(REPO, "tests", "unit", "mosqdb_gen.py")


def mosquitto_db(h, *opts):
    """A fresh mosquitto.db written by mosquitto 2.0.11; returns its directory."""
    if not os.access(MOSQUITTO, os.X_OK):
        h.skip("needs %s to write mosquitto.db" % MOSQUITTO)
    d = os.path.join(h.dir, "mq")
    r = subprocess.run([sys.executable, GEN] + list(opts) + [d], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        fail("mosqdb_gen.py failed:\n%s" % r.stdout.decode("utf-8", "replace"))
    return d


def persist_conf(d):
    return "persistence true\npersistence_location %s/\n" % d


def file_state(path):
    st = os.stat(path)
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest(), st.st_size, st.st_mtime_ns


def recv_publishes(c, n):
    """n PUBLISH packets, each acknowledged; {topic: parsed packet}."""
    got = {}
    for _ in range(n):
        raw = c.recv("PUBLISH")
        p = parse(raw, c.proto)
        check_eq(p["name"], "PUBLISH", "packet type")
        got[p["topic"]] = p
        if p["qos"] == 1:
            c.send(puback(p["mid"], proto=c.proto))
        elif p["qos"] == 2:
            c.send(pubrec(p["mid"], proto=c.proto))
            c.await_packet(pubrel(p["mid"], proto=c.proto))
            c.send(pubcomp(p["mid"], proto=c.proto))
    return got


@timeout(30)
def test_import_retained_v311_MQTT_3_3_1_6(h):
    # v311 MQTT-3.3.1-6: a new subscription gets the retained messages mosquitto had stored, at the
    # QoS they were published with (capped by the subscription), RETAIN 1.
    b = h.broker(persist_conf(mosquitto_db(h)))
    c = h.connect(b, "rsub")
    c.subscribe([("r/#", 2)])
    got = recv_publishes(c, 4)
    want = {"r/plain": (b"hello", 0), "r/qos1": (b"one", 1), "r/bin": (b"\x00\x01\xff", 2),
            "r/v5props": (b"props", 1)}
    check_eq(sorted(got), sorted(want), "retained topics")
    for t, (payload, qos) in want.items():
        check_eq((got[t]["payload"], got[t]["qos"], got[t]["retain"]), (payload, qos, True), t)
    c.expect_no_packet(0.3)


@timeout(30)
def test_import_retained_properties_v5_MQTT_3_3_2_6(h):
    # v5 MQTT-3.3.2-6: the retained message keeps its properties and its Message Expiry Interval
    # keeps counting (3600 s when mosquitto stored it, a few seconds ago).
    b = h.broker(persist_conf(mosquitto_db(h)))
    c = h.connect(b, "rsub5", proto=5)
    c.subscribe([("r/v5props", 1)])
    p = recv_publishes(c, 1)["r/v5props"]
    props = dict((k, v) for k, v in p["properties"] if k != USER_PROPERTY)
    exp = props.pop(MESSAGE_EXPIRY, None)
    check(exp is not None and 3570 <= exp <= 3600, "Message Expiry %r, want 3570..3600" % exp)
    check_eq(props, {PAYLOAD_FORMAT: 1, CONTENT_TYPE: "text/plain", RESPONSE_TOPIC: "resp/t",
                     CORRELATION_DATA: b"\x01\x02"}, "properties")
    check_eq([v for k, v in p["properties"] if k == USER_PROPERTY], [("k", "v")], "user properties")
    check_eq((p["payload"], p["retain"]), (b"props", True), "payload, retain")


@timeout(30)
def test_import_v311_session_queue_and_qos2_in_MQTT_3_1_2_4(h):
    # v311 MQTT-3.1.2-4: the persistent session resumes (Session Present 1, MQTT-3.2.2-2) with the
    # QoS 1/2 messages queued while it was offline, in order, and its subscriptions.
    # v311 MQTT-4.3.3-2: the inbound QoS 2 message whose PUBREL had not arrived is neither lost
    # nor delivered twice: the re-sent PUBLISH gets PUBREC, PUBREL gets PUBCOMP, and the
    # subscriber gets it exactly once.
    b = h.broker(persist_conf(mosquitto_db(h)))
    q = h.connect(b, "inq2", clean=False, username="carol", session_present=True)
    q.send(publish("i/q2", b"in-qos2", qos=2, mid=77, dup=True))
    q.expect_packet(pubrec(77))
    q.send(pubrel(77))
    q.expect_packet(pubcomp(77))
    c = h.connect(b, "sess311", clean=False, username="bob", session_present=True)
    c.expect_publish("q/1", "m1", qos=1)
    c.expect_publish("q/2", "m2", qos=2)
    c.expect_publish("w/y/x", "mw", qos=1)
    c.expect_publish("i/q2", "in-qos2", qos=2)
    c.expect_no_packet(0.5)
    p = h.connect(b, "pub")
    p.publish("q/0", "live", qos=0)
    c.expect_publish("q/0", "live", qos=0)
    p.publish("w/z/x", "wild", qos=2)
    c.expect_publish("w/z/x", "wild", qos=1)


@timeout(30)
def test_import_inflight_resent_v311_MQTT_4_4_0_1(h):
    # v311 MQTT-4.4.0-1: on reconnect the unacknowledged PUBLISHes are re-sent with their original
    # packet identifiers and DUP 1, and the PUBREL of the QoS 2 message whose PUBREC had come.
    b = h.broker(persist_conf(mosquitto_db(h)))
    c = h.connect(b, "inflight311", clean=False, session_present=True)
    c.expect_packet(publish("f/1", b"f-qos1", qos=1, mid=1, dup=True))
    c.expect_packet(publish("f/2", b"f-qos2", qos=2, mid=2, dup=True))
    c.expect_packet(pubrel(3))
    c.send(puback(1))
    c.send(pubrec(2))
    c.expect_packet(pubrel(2))
    c.send(pubcomp(2))
    c.send(pubcomp(3))
    c.expect_no_packet(0.5)


@timeout(30)
def test_import_v5_session_options_MQTT_3_1_2_23(h):
    # v5 MQTT-3.1.2-23: the session with Session Expiry 3600 resumes with its queued QoS 2 message
    # (Subscription Identifier 42, v5 MQTT-3.3.4-3, and the publisher's user property) and its
    # subscription options: No Local (v5 MQTT-3.8.3-3), Retain As Published (v5 MQTT-3.3.1-13).
    b = h.broker(persist_conf(mosquitto_db(h)))
    c = h.connect(b, "sess5", proto=5, clean=False, properties=[(SESSION_EXPIRY, 3600)],
                  session_present=True)
    c.expect_publish("v5/a", "to-sess5", qos=2,
                     properties=[(SUBSCRIPTION_ID, 42), (USER_PROPERTY, ("src", "p5"))])
    c.expect_no_packet(0.3)
    p = h.connect(b, "pub5b", proto=5)
    p.publish("v5/a", "rap", qos=1, retain=True)
    c.expect_publish("v5/a", "rap", qos=1, retain=True, properties=[(SUBSCRIPTION_ID, 42)])
    p.publish("v5/b", "b", qos=1)
    c.expect_publish("v5/b", "b", qos=1, properties=[(SUBSCRIPTION_ID, 7)])
    c.publish("v5/a", "mine", qos=1, rc=NOSUB)
    c.expect_no_packet(0.3)


@mosquitto_differs("2.0.11 resumes a restored session whose Session Expiry ran out while it was down")
@timeout(30)
def test_import_expiry_across_downtime_v5_MQTT_3_3_2_5(h):
    # Time spent between mosquitto's shutdown and the start counts: the session with Session Expiry
    # 2 s has ended (v5 MQTT-3.1.2-23: kept only for the interval; CONNACK Session Present 0), the
    # one with 3600 s resumes, and its queued message whose Message Expiry (2 s) passed is not
    # delivered (v5 MQTT-3.3.2-5) while the other one is.
    d = mosquitto_db(h, "--expiry")
    sleep(3.2)
    b = h.broker(persist_conf(d))
    c = h.connect(b, "long5", proto=5, clean=False, properties=[(SESSION_EXPIRY, 3600)],
                  session_present=True)
    c.expect_publish("s/2", "stays", qos=1)
    c.expect_no_packet(0.3)
    h.connect(b, "short5", proto=5, clean=False, properties=[(SESSION_EXPIRY, 60)], session_present=False)


@timeout(30)
def test_import_named_by_persistence_file_v311_MQTT_3_1_2_4(h):
    # `persistence_file mosquitto.db` (the name mosquitto's own configuration may carry): the file is
    # imported the same way (v311 MQTT-3.1.2-4: the session resumes with its queue).
    d = mosquitto_db(h)
    b = h.broker(persist_conf(d) + "persistence_file mosquitto.db\n")
    c = h.connect(b, "sess311", clean=False, username="bob", session_present=True)
    c.expect_publish("q/1", "m1", qos=1)


@vigil_only("vigil never writes mosquitto.db; mosquitto rewrites it on shutdown")
@timeout(30)
def test_import_leaves_mosquitto_db_untouched(h):
    # The import happens once, while vigil has no store of its own; mosquitto.db is never written,
    # so the user can switch back.
    d = mosquitto_db(h)
    db = os.path.join(d, "mosquitto.db")
    before = file_state(db)
    b = h.broker(persist_conf(d))
    c = h.connect(b, "clear")  # CONNACK: start-up (and the import) is over
    check("Imported mosquitto persistence file %s" % db in b.log(), "no import line in the log:\n"
          + b.log_tail())
    c.publish("r/plain", b"", qos=1, retain=True)  # cleared in vigil's store
    c.disconnect()
    b.stop()
    check_eq(file_state(db), before, "mosquitto.db (sha256, size, mtime)")
    check(os.path.exists(os.path.join(d, "vigil.db")), "vigil.db not created beside mosquitto.db")
    b.start(port=b.port)
    check_eq(b.log().count("Imported mosquitto persistence file"), 1, "imports over two starts")
    c = h.connect(b, "rsub")
    c.subscribe([("r/#", 2)])
    check_eq(sorted(recv_publishes(c, 3)), ["r/bin", "r/qos1", "r/v5props"], "retained after restart")
    c.expect_no_packet(0.3)
    b.stop()
    check_eq(file_state(db), before, "mosquitto.db after the second run")


@vigil_only("vigil's error text for a damaged mosquitto.db")
@timeout(30)
def test_import_truncated_mosquitto_db_refused(h):
    # A truncated mosquitto.db stops start-up with a message naming the file and the offset; the
    # file is kept as it was, and the next start refuses again (no silent empty start).
    d = mosquitto_db(h)
    db = os.path.join(d, "mosquitto.db")
    with open(db, "r+b") as f:
        f.truncate(os.path.getsize(db) - 5)
    before = file_state(db)
    conf = h.file("v.conf", "listener %d 127.0.0.1\nallow_anonymous true\n" % free_port() + persist_conf(d))
    for attempt in range(2):
        r = subprocess.run([broker_bin(), "-c", conf], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10, cwd=h.dir)
        out = r.stdout.decode("utf-8", "replace")
        check(r.returncode != 0, "start %d with a truncated mosquitto.db succeeded:\n%s" % (attempt, out))
        check(db in out and "offset" in out, "start %d: message names no file/offset:\n%s" % (attempt, out))
        check_eq(file_state(db), before, "mosquitto.db after start %d" % attempt)
        if os.environ.get("VIGIL_SAN") == "1":
            for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
                check(marker not in out, "start %d: %r in the output:\n%s" % (attempt, marker, out))
