"""Authentication (password_file made by mosquitto_passwd) and authorisation (acl_file incl.
patterns %c and %u): CONNACK refusals, denied publish dropped (v5 PUBACK 0x87), subscriptions
granted and filtered at delivery (as mosquitto), '#' receives only readable topics.
"""
import os
import subprocess

from mqtt_test import (connect, connack, publish, puback, subscribe, suback, check, Closed,
                       NOSUB)

ACL = """\
user alice
topic readwrite alice/#
topic read public/#
topic write inbox/#
pattern readwrite clients/%c/#
pattern read users/%u/#

user bob
topic readwrite #
"""


def _auth_broker(h, acl=True, extra="", hashes=("sha512-pbkdf2", "sha512")):
    path = os.path.join(h.dir, "passwd")
    users = [("alice", "apass"), ("bob", "bpass"), ("carol", "cpass")]
    for i, (u, pw) in enumerate(users):
        alg = hashes[i % len(hashes)]
        args = ["mosquitto_passwd", "-H", alg, "-b"] + (["-c"] if i == 0 else []) + [path, u, pw]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(path, 0o644)
    conf = "password_file %s\n" % path
    if acl:
        conf += "acl_file %s\n" % h.file("acl", ACL)
    return h.broker(conf + extra, anon=False)


def test_password_ok_v311_MQTT_3_1_4_4(h):
    # v311 MQTT-3.1.4-4: valid credentials (PBKDF2-SHA512 and SHA512 hashes from mosquitto_passwd)
    # -> CONNACK 0.
    b = _auth_broker(h)
    for u, pw in (("alice", "apass"), ("bob", "bpass")):
        c = h.client(b)
        c.send(connect("c-" + u, username=u, password=pw))
        c.expect_packet(connack(0))


def test_password_ok_v5_MQTT_3_1_4_5(h):
    # v5 MQTT-3.1.4-5.
    b = _auth_broker(h)
    h.connect(b, "c5", proto=5, username="carol", password="cpass")


def test_wrong_password_v311_0x05(h):
    # v311 3.2.2.3: bad user name or password -> CONNACK 0x05 (Not authorized, as mosquitto)
    # then close (v311 MQTT-3.2.2-4: session present 0 with a non-zero code; v311 MQTT-3.2.2-5:
    # close after it).
    b = _auth_broker(h)
    c = h.client(b)
    c.send(connect("wp", username="alice", password="wrong"))
    c.expect_packet(connack(5))
    c.expect_closed()


def test_wrong_password_v5_0x87(h):
    # v5 MQTT-3.1.4-2, MQTT-3.2.2-7: a wrong password -> CONNACK 0x87 (Not authorized, as
    # mosquitto 2.0.11: 20 03 00 87 00), then close (v5 MQTT-3.2.2-7: session present 0).
    b = _auth_broker(h)
    h.expect_refused(b, "wp5", 0x87, proto=5, username="alice", password="wrong")


def test_unknown_user_v5_0x87(h):
    # v5 MQTT-3.1.4-2: a user not in the password file -> CONNACK 0x87, close.
    b = _auth_broker(h)
    h.expect_refused(b, "uu5", 0x87, proto=5, username="mallory", password="apass")


def test_missing_password_v5_0x87(h):
    # v5 MQTT-3.1.4-2: a known user without a password (or with a zero-length one, which
    # mosquitto reads as none) -> CONNACK 0x87, close.
    b = _auth_broker(h)
    h.expect_refused(b, "mp5", 0x87, proto=5, username="alice")
    h.expect_refused(b, "ep5", 0x87, proto=5, username="alice", password="")


def test_anonymous_refused_v311_0x05(h):
    # v311 3.2.2.3: allow_anonymous false, no user name -> CONNACK 0x05, close.
    b = _auth_broker(h)
    c = h.client(b)
    c.send(connect("anon"))
    c.expect_packet(connack(5))
    c.expect_closed()


def test_anonymous_refused_v5_0x87(h):
    # v5 MQTT-3.1.4-2: allow_anonymous false, no user name -> CONNACK 0x87 (Not authorized).
    b = _auth_broker(h)
    c = h.client(b, proto=5)
    c.send(connect("anon5", proto=5))
    c.expect_packet(connack(0x87, proto=5))
    c.expect_closed()


def test_refused_connect_processes_nothing_v5_MQTT_3_1_4_6(h):
    # v5 MQTT-3.1.4-6: after refusing a CONNECT the Server processes nothing more from the client.
    b = _auth_broker(h)
    bob = h.connect(b, "bob", username="bob", password="bpass")
    bob.subscribe("#")
    c = h.client(b, proto=5)
    c.send(connect("x5", proto=5, username="alice", password="bad") +
           publish("alice/x", "sneak", proto=5))
    c.expect_packet(connack(0x87, proto=5))
    c.expect_closed()
    bob.expect_no_packet(0.3)


def test_acl_denied_publish_v311_MQTT_3_3_5_2(h):
    # v311 MQTT-3.3.5-2: an unauthorised PUBLISH is acknowledged normally (or the connection
    # closed), and is not delivered.
    b = _auth_broker(h)
    bob = h.connect(b, "bob", username="bob", password="bpass")
    bob.subscribe("#")
    a = h.connect(b, "alice", username="alice", password="apass")
    a.send(publish("secret/x", "no", qos=1, mid=3))
    try:
        got = a.recv_packet(2.0)
        check(got == puback(3), "got %s" % got.hex())
    except Closed:
        pass
    a.send_quiet(publish("alice/ok", "yes"))
    bob.expect_publish("alice/ok", "yes") if a.is_open(0.1) else None
    bob.expect_no_packet(0.3)


def test_acl_denied_publish_v5_0x87(h):
    # v5 3.4.2.1: unauthorised QoS 1 PUBLISH -> PUBACK 0x87 (Not authorized), dropped.
    b = _auth_broker(h)
    bob = h.connect(b, "bob", username="bob", password="bpass")
    bob.subscribe("#")
    a = h.connect(b, "alice", proto=5, username="alice", password="apass")
    a.send(publish("secret/x", "no", qos=1, mid=4, proto=5))
    a.expect_packet(puback(4, rc=0x87, proto=5))
    a.publish("alice/ok", "yes", qos=1)
    bob.expect_publish("alice/ok", "yes")
    bob.expect_no_packet(0.3)


def _acl_subscribe_granted(h, proto):
    b = _auth_broker(h)
    bob = h.connect(b, "bob", proto=proto, username="bob", password="bpass")
    bob.publish("secret/r", "kept", qos=1, retain=True, rc=NOSUB)
    bob.publish("public/r", "pr", qos=1, retain=True, rc=NOSUB)
    a = h.connect(b, "alice", proto=proto, username="alice", password="apass")
    a.send(subscribe(2, [("secret/#", 1), ("public/#", 1)], proto=proto))
    a.expect_packet(suback(2, [1, 1], proto=proto))
    # Only the readable retained message comes on subscribe ...
    a.expect_publish("public/r", "pr", qos=1, retain=True)
    a.expect_no_packet(0.3)
    # ... and only readable topics at delivery.
    bob.publish("secret/x", "no", qos=1, rc=NOSUB)
    bob.publish("public/y", "yes", qos=1, rc=NOSUB)
    a.expect_publish("public/y", "yes", qos=1)
    a.expect_no_packet(0.3)


def test_acl_subscribe_granted_v311_MQTT_3_8_4_4(h):
    # compat: as mosquitto 2.0.11's acl_file, a subscription the ACL would never let through is
    # granted (v311 MQTT-3.8.4-4: one return code per filter, here the granted QoS) and each
    # message is checked for read access when delivered, retained ones on subscribe too.
    _acl_subscribe_granted(h, 4)


def test_acl_subscribe_granted_v5_MQTT_3_8_4_6(h):
    # compat: as mosquitto 2.0.11, SUBACK grants (not 0x87); delivery is filtered per topic.
    _acl_subscribe_granted(h, 5)


def test_acl_hash_receives_only_readable(h):
    # ACL read check per message: a '#' subscription gets only the topics the user may read
    # (readwrite and read; not write-only, not unlisted).
    b = _auth_broker(h)
    a = h.connect(b, "alice", username="alice", password="apass")
    a.subscribe("#")
    bob = h.connect(b, "bob", username="bob", password="bpass")
    for t in ("secret/1", "alice/2", "inbox/3", "public/4", "users/bob/5"):
        bob.publish(t, t)
    a.expect_publish("alice/2", "alice/2")
    a.expect_publish("public/4", "public/4")
    a.expect_no_packet(0.3)


def test_acl_write_only(h):
    # 'topic write inbox/#': alice may publish there (bob receives it).
    b = _auth_broker(h)
    bob = h.connect(b, "bob", username="bob", password="bpass")
    bob.subscribe("inbox/#")
    a = h.connect(b, "alice", username="alice", password="apass")
    a.publish("inbox/x", "in")
    bob.expect_publish("inbox/x", "in")


def test_acl_pattern_client_id(h):
    # 'pattern readwrite clients/%c/#': %c is the client id (aliceC1) -> allowed there only.
    b = _auth_broker(h)
    bob = h.connect(b, "bob", username="bob", password="bpass")
    bob.subscribe("clients/#")
    a = h.connect(b, "aliceC1", username="alice", password="apass")
    a.publish("clients/aliceC1/x", "mine")
    a.publish("clients/other/x", "theirs")
    bob.expect_publish("clients/aliceC1/x", "mine")
    bob.expect_no_packet(0.3)


def test_acl_pattern_username(h):
    # 'pattern read users/%u/#': %u is the user name -> alice reads users/alice/..., not others'.
    b = _auth_broker(h)
    a = h.connect(b, "whatever", username="alice", password="apass")
    a.subscribe("users/#")
    bob = h.connect(b, "bob", username="bob", password="bpass")
    bob.publish("users/alice/x", "for alice")
    bob.publish("users/bob/x", "for bob")
    a.expect_publish("users/alice/x", "for alice")
    a.expect_no_packet(0.3)


def test_acl_user_without_rules(h):
    # carol is in the password file but has no ACL lines: she can connect but neither publish
    # to others nor receive anything.
    b = _auth_broker(h)
    bob = h.connect(b, "bob", username="bob", password="bpass")
    bob.subscribe("#")
    c = h.connect(b, "carol", username="carol", password="cpass")
    c.subscribe("#")
    c.publish("any/topic", "x")
    bob.publish("any/other", "y")
    bob.expect_publish("any/other", "y")
    bob.expect_no_packet(0.3)
    c.expect_no_packet(0.2)


def test_password_file_without_acl_allows_all(h):
    # password_file without acl_file: authenticated users may publish and subscribe anywhere.
    b = _auth_broker(h, acl=False)
    a = h.connect(b, "alice", username="alice", password="apass")
    a.subscribe("secret/#")
    bob = h.connect(b, "bob", username="bob", password="bpass")
    bob.publish("secret/x", "x")
    a.expect_publish("secret/x", "x")
