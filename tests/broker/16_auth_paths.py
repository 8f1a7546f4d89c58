"""Every path that decides whether a client is admitted, tried from outside: each test makes
CONNECTs that must be refused (byte-exact CONNACK, then a close) and a positive control that
must get in, so a broker that refuses everything fails too. Outcomes are those of mosquitto
2.0.11 on the same bytes (v3.1 and v3.1.1 CONNACK 0x05 Not authorized, v5 0x87; a listener that
takes the user name from TLS and finds no identity: 0x04 / v5 0x86).

Paths: allow_anonymous false without a password_file (a user name proves nothing); password
files (wrong, unknown, missing, empty password; zero-length user name = anonymous; empty
file); a password without a user name (v311 MQTT-3.1.2-22; allowed in v5, then anonymous);
use_username_as_clientid without a user name; per_listener_settings on and off; SIGHUP that
removes the password file (from the configuration or from disk), empties it, removes a user or
flips allow_anonymous; TLS listeners without require_certificate; use_identity_as_username /
use_subject_as_username with and without require_certificate, a certificate without a CN, both
options at once; TLS-PSK listeners (psk_file, identity as user name, identity revoked by
SIGHUP, file deleted); Unix-socket listeners; a v5 Authentication Method (0x8C); WebSockets
listeners (plain and over TLS; vigil only: Debian's mosquitto 2.0.11 cannot open a websockets
listener). Authentication is not specified by MQTT beyond
"the Server MAY check" (v311 3.1.4, v5 MQTT-3.1.4-2): each test cites the statement about the
refusal it checks.
"""
import base64
import os
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time

import mqtt_test
from mqtt_test import CONNACK, connack, connect, check, publish, puback, vigil_only

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "interop"))

PROTOS = (3, 4, 5)  # v3.1 (MQIsdp), v3.1.1, v5
NOT_AUTHORIZED = {3: connack(5), 4: connack(5), 5: connack(0x87, proto=5)}
BAD_USER_OR_PASSWORD = {3: connack(4), 4: connack(4), 5: connack(0x86, proto=5)}
NO_WS = "Debian's mosquitto 2.0.11 cannot open a websockets listener (vigil only)"

_ids = [0]


def _cid(tag):
    _ids[0] += 1
    return "%s-%d" % (tag, _ids[0])


def _passwd(h, users, name="passwd"):
    """A password file written by mosquitto_passwd (users: [(name, password)]; [] = empty)."""
    path = os.path.join(h.dir, name)
    if os.path.exists(path):
        os.unlink(path)
    with open(path, "w"):
        pass
    for u, pw in users:
        subprocess.run(["mosquitto_passwd", "-b", path, u, pw], check=True, timeout=10,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(path, 0o644)
    return path


def _client_on(h, sock, proto, name):
    """A harness Client over an already connected socket-like object (TLS, PSK, WebSocket)."""
    c = mqtt_test.Client.__new__(mqtt_test.Client)
    c.h, c.proto, c.timeout, c.name, c.next_mid = h, proto, 3.0, name, 1
    c.sock, c.buf, c.pending = sock, b"", []
    h._clients.append(c)
    return c


def refused(c, want, cid="r", **kw):
    """CONNECT on c is answered by exactly want[proto], then the connection closes
    (v311 MQTT-3.2.2-4/-5, v5 MQTT-3.2.2-6/-7)."""
    c.send(connect(_cid(cid), proto=c.proto, **kw))
    c.expect_packet(want[c.proto], "refusal of v%d CONNECT %r" % (c.proto, kw))
    c.expect_closed()


def admitted(c, cid="ok", **kw):
    """CONNECT on c is accepted (v311 MQTT-3.1.4-4, v5 MQTT-3.1.4-5); the connection works."""
    c.send(connect(_cid(cid), proto=c.proto, **kw))
    p = c.expect_type(CONNACK)
    check(p.get("rc") == 0, "%s: v%d CONNECT %r refused with rc 0x%02x" % (c.name, c.proto, kw, p.get("rc", -1)))
    c.send(mqtt_test.pingreq())
    c.expect_packet(mqtt_test.pingresp())
    return c


def _listening(h, *ports):
    """Wait until the last broker started owns a listening socket on each extra port (the
    harness waits for the first listener only)."""
    b = h._brokers[-1]
    deadline = time.monotonic() + 5
    for port in ports:
        while True:
            ino = mqtt_test._listening_inode(port)
            if ino and mqtt_test._pid_has_socket(b.proc.pid, ino):
                break
            check(time.monotonic() < deadline, "port %d not listening; log:\n%s" % (port, b.log_tail()))
            time.sleep(0.01)


def _tcp(h, port, proto):
    return h.client(port, proto)


def _rewrite_conf(b, old, new):
    with open(b.conf_path) as f:
        text = f.read()
    check(old in text, "%r not in the configuration" % old)
    with open(b.conf_path, "w") as f:
        f.write(text.replace(old, new))


def _until_refused(h, make, want, **kw):
    """After a SIGHUP: new CONNECTs (made by make(proto)) are refused with want within 3 s."""
    for proto in PROTOS:
        deadline = time.monotonic() + 3
        while True:
            c = make(proto)
            c.send(connect(_cid("hup"), proto=proto, **kw))
            got = c.recv("CONNACK")
            if got == want[proto]:
                c.expect_closed()
                break
            p = mqtt_test.parse(got, proto)
            check(p.get("type") == CONNACK and p.get("rc") == 0,
                  "v%d: want %s or a success before the reload, got %s"
                  % (proto, mqtt_test.hexs(want[proto]), mqtt_test.describe(got, proto)))
            c.close()
            check(time.monotonic() < deadline, "v%d %r still admitted 3 s after SIGHUP" % (proto, kw))
            time.sleep(0.1)


def _dropped(c):
    """A connected client is disconnected by the reload (v5: vigil sends DISCONNECT 0x87 first,
    mosquitto closes silently: mosquitto-compat.md 'SIGHUP and connected clients')."""
    c.expect_closed(3.0, allow_disconnect=0x87 if c.proto == 5 else None)


# ---------------------------------------------------------------------------------------------
# Plain TCP: allow_anonymous and password_file


def test_no_password_file_user_name_refused_v5_MQTT_3_1_4_2(h):
    # The hole of issue 7: allow_anonymous false and no password_file. A user name (with any
    # password, none, an empty one) is no credential: v3.1 / v3.1.1 CONNACK 0x05, v5 0x87
    # (v5 MQTT-3.1.4-2: authentication failed -> CONNACK, close; v311 MQTT-3.2.2-5).
    b = h.broker("allow_anonymous false\n", anon=False)
    for proto in PROTOS:
        for kw in ({"username": "alice", "password": "apass"}, {"username": "alice"},
                   {"username": "alice", "password": ""}, {"username": "", "password": "apass"},
                   {}):
            refused(_tcp(h, b, proto), NOT_AUTHORIZED, **kw)
        if proto == 5:  # v5 allows a password without a user name (3.1.2.9): anonymous
            refused(_tcp(h, b, proto), NOT_AUTHORIZED, password="apass")
    # Control: the same CONNECT gets in where the password file knows alice.
    b2 = h.broker("allow_anonymous false\npassword_file %s\n" % _passwd(h, [("alice", "apass")]),
                  anon=False)
    for proto in PROTOS:
        admitted(_tcp(h, b2, proto), username="alice", password="apass")


def test_password_file_refusals_v311_MQTT_3_2_2_5(h):
    # allow_anonymous false + password_file: only alice with her password gets in. Wrong
    # password, unknown user, no password, a zero-length password (mosquitto reads it as none),
    # a zero-length user name (anonymous), no user name: 0x05 (v3.1, v3.1.1) / 0x87 (v5), then
    # close (v311 MQTT-3.2.2-4/-5, v5 MQTT-3.1.4-2, MQTT-3.2.2-7).
    b = h.broker("allow_anonymous false\npassword_file %s\n"
                 % _passwd(h, [("alice", "apass"), ("bob", "bpass")]), anon=False)
    for proto in PROTOS:
        admitted(_tcp(h, b, proto), username="alice", password="apass")
        for kw in ({"username": "alice", "password": "bpass"},
                   {"username": "alice", "password": "apass "},
                   {"username": "Alice", "password": "apass"},
                   {"username": "mallory", "password": "apass"},
                   {"username": "alice"}, {"username": "alice", "password": ""},
                   {"username": "", "password": "apass"}, {}):
            refused(_tcp(h, b, proto), NOT_AUTHORIZED, **kw)


def test_password_file_with_anonymous_v5_MQTT_3_1_4_2(h):
    # allow_anonymous true + password_file: anonymous clients get in, and so does a zero-length
    # user name (mosquitto: no user name), and a v5 password without a user name; but a user name
    # still needs its password: wrong, unknown, missing -> 0x05 / 0x87 (v5 MQTT-3.1.4-2).
    b = h.broker("allow_anonymous true\npassword_file %s\n" % _passwd(h, [("alice", "apass")]),
                 anon=False)
    for proto in PROTOS:
        admitted(_tcp(h, b, proto))
        admitted(_tcp(h, b, proto), username="", password="whatever")
        admitted(_tcp(h, b, proto), username="alice", password="apass")
        for kw in ({"username": "alice", "password": "x"}, {"username": "bob", "password": "apass"},
                   {"username": "alice"}):
            refused(_tcp(h, b, proto), NOT_AUTHORIZED, **kw)
    admitted(_tcp(h, b, 5), password="whatever")


def test_empty_password_file_v5_MQTT_3_1_4_2(h):
    # A password file without entries admits no user name at all (also with allow_anonymous
    # true); anonymous clients follow allow_anonymous (v5 MQTT-3.1.4-2). Control: after alice is
    # added and SIGHUP, she gets in.
    pw = _passwd(h, [])
    b = h.broker("allow_anonymous false\npassword_file %s\n" % pw, anon=False)
    b2 = h.broker("allow_anonymous true\npassword_file %s\n" % pw, anon=False)
    for proto in PROTOS:
        for kw in ({"username": "alice", "password": "apass"}, {"username": "alice"}, {}):
            refused(_tcp(h, b, proto), NOT_AUTHORIZED, **kw)
        refused(_tcp(h, b2, proto), NOT_AUTHORIZED, username="alice", password="apass")
        admitted(_tcp(h, b2, proto))
    subprocess.run(["mosquitto_passwd", "-b", pw, "alice", "apass"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(pw, 0o644)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while True:
        c = _tcp(h, b, 4)
        c.send(connect(_cid("added"), username="alice", password="apass"))
        if c.recv("CONNACK") == connack(0):
            break
        check(time.monotonic() < deadline, "alice still refused 3 s after SIGHUP")
        time.sleep(0.1)


def test_password_without_user_name_v311_MQTT_3_1_2_22(h):
    # v311 MQTT-3.1.2-22: Password Flag 1 needs User Name Flag 1; such a CONNECT is invalid
    # (v311 MQTT-3.1.4-1: close without CONNACK), also on a broker that admits anonymous clients
    # and for v3.1. v5 allows it (3.1.2.9): the client is anonymous, refused (0x87) when
    # allow_anonymous is false even though the password is alice's (v5 MQTT-3.1.4-2).
    pw = _passwd(h, [("alice", "apass")])
    open_b = h.broker("allow_anonymous true\n", anon=False)
    closed_b = h.broker("allow_anonymous false\npassword_file %s\n" % pw, anon=False)
    for b in (open_b, closed_b):
        for proto in (3, 4):
            c = _tcp(h, b, proto)
            c.send(connect(_cid("pwonly"), proto=proto, password="apass"))
            c.expect_closed()
    refused(_tcp(h, closed_b, 5), NOT_AUTHORIZED, password="apass")
    admitted(_tcp(h, open_b, 5), password="apass")
    admitted(_tcp(h, closed_b, 5), username="alice", password="apass")


def test_use_username_as_clientid_needs_user_name_v5_MQTT_3_1_4_2(h):
    # use_username_as_clientid: a client without a user name (none, or zero-length) is refused
    # even with allow_anonymous true (mosquitto 2.0.11: 0x05 / v5 0x87), as its client id would
    # be undefined (v5 MQTT-3.1.4-2). With a user name it gets in.
    b = h.broker("allow_anonymous true\nuse_username_as_clientid true\n", anon=False)
    for proto in PROTOS:
        refused(_tcp(h, b, proto), NOT_AUTHORIZED)
        refused(_tcp(h, b, proto), NOT_AUTHORIZED, username="")
        admitted(_tcp(h, b, proto), username="u%d" % proto)


def test_refused_user_processes_nothing_v311_MQTT_3_1_4_5(h):
    # v311 MQTT-3.1.4-5 / v5 MQTT-3.1.4-6: after refusing a CONNECT (here: a user name on a
    # broker without password_file and allow_anonymous false) nothing the client sent after it
    # is processed: its PUBLISH reaches no subscriber.
    pw = _passwd(h, [("watcher", "wpass")])
    wport = mqtt_test.free_port()
    b = h.broker("per_listener_settings true\nallow_anonymous false\n"
                 "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n" % (wport, pw),
                 anon=False)
    _listening(h, wport)
    w = admitted(_tcp(h, wport, 4), username="watcher", password="wpass")
    w.subscribe("#")
    for proto in PROTOS:
        c = _tcp(h, b, proto)
        c.send(connect(_cid("sneak"), proto=proto, username="watcher", password="wpass") +
               publish("sneak/%d" % proto, "x", proto=proto))
        c.expect_packet(NOT_AUTHORIZED[proto])
        c.expect_closed()
    w.expect_no_packet(0.3)


def test_unix_socket_listener_v5_MQTT_3_1_4_2(h):
    # A Unix-socket listener (`listener 0 PATH`) decides like TCP: allow_anonymous false and no
    # password file refuse a user name; with a password file alice gets in (v5 MQTT-3.1.4-2).
    # (mosquitto binds after dropping to user mosquitto: a directory it may write to.)
    run = os.path.join(h.dir, "run")
    os.mkdir(run)
    os.chmod(run, 0o777)
    pw = _passwd(h, [("alice", "apass")])
    socks = []
    for i, extra in enumerate(("", "password_file %s\n" % pw)):
        path = os.path.join(run, "s%d.sock" % i)
        h.broker("listener 0 %s\nallow_anonymous false\n%s" % (path, extra), anon=False)
        deadline = time.monotonic() + 5
        while not os.path.exists(path):
            check(time.monotonic() < deadline, "no unix socket %s" % path)
            time.sleep(0.01)
        socks.append(path)

    def unix(path, proto):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        deadline = time.monotonic() + 3
        while True:
            try:
                s.connect(path)
                break
            except OSError:
                check(time.monotonic() < deadline, "cannot connect to %s" % path)
                time.sleep(0.02)
        return _client_on(h, s, proto, "unix")
    for proto in PROTOS:
        refused(unix(socks[0], proto), NOT_AUTHORIZED, username="alice", password="apass")
        refused(unix(socks[0], proto), NOT_AUTHORIZED)
        admitted(unix(socks[1], proto), username="alice", password="apass")
        refused(unix(socks[1], proto), NOT_AUTHORIZED, username="alice", password="x")


def test_enhanced_authentication_refused_v5_MQTT_3_1_4_2(h):
    # v5 4.12: an Authentication Method the server does not support -> CONNACK 0x8C (Bad
    # authentication method), close; valid user name and password do not change that, nor does
    # allow_anonymous true (mosquitto 2.0.11 without plugins). Control: the same credentials
    # without the property get in.
    pw = _passwd(h, [("alice", "apass")])
    for conf in ("allow_anonymous false\npassword_file %s\n" % pw, "allow_anonymous true\n"):
        b = h.broker(conf, anon=False)
        for props in ([(mqtt_test.AUTH_METHOD, "SCRAM-SHA-1")],
                      [(mqtt_test.AUTH_METHOD, "SCRAM-SHA-1"), (mqtt_test.AUTH_DATA, b"client-first")]):
            c = _tcp(h, b, 5)
            c.send(connect(_cid("enh"), proto=5, username="alice", password="apass", properties=props))
            c.expect_packet(connack(0x8C, proto=5))
            c.expect_closed()
        admitted(_tcp(h, b, 5), username="alice", password="apass")


# ---------------------------------------------------------------------------------------------
# per_listener_settings


def test_per_listener_settings_true_v5_MQTT_3_1_4_2(h):
    # per_listener_settings true: each listener judges with its own security block.
    # A: allow_anonymous false, no password file -> alice refused (the hole, per listener);
    # B: allow_anonymous false, password file -> alice in, wrong password and anonymous out;
    # C: allow_anonymous true, no password file -> everyone in. B's file does not leak to A.
    pw = _passwd(h, [("alice", "apass")])
    pb, pc = mqtt_test.free_port(), mqtt_test.free_port()
    b = h.broker("per_listener_settings true\nallow_anonymous false\n"
                 "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n"
                 "listener %d 127.0.0.1\nallow_anonymous true\n" % (pb, pw, pc), anon=False)
    _listening(h, pb, pc)
    for proto in PROTOS:
        refused(_tcp(h, b, proto), NOT_AUTHORIZED, username="alice", password="apass")
        refused(_tcp(h, b, proto), NOT_AUTHORIZED)
        admitted(_tcp(h, pb, proto), username="alice", password="apass")
        refused(_tcp(h, pb, proto), NOT_AUTHORIZED, username="alice", password="nope")
        refused(_tcp(h, pb, proto), NOT_AUTHORIZED)
        admitted(_tcp(h, pc, proto), username="alice", password="nope")
        admitted(_tcp(h, pc, proto))


def test_per_listener_settings_false_is_global_v5_MQTT_3_1_4_2(h):
    # per_listener_settings false (default): the security options are global, wherever they
    # stand in the file; the password file and allow_anonymous false apply to every listener
    # (v5 MQTT-3.1.4-2).
    pw = _passwd(h, [("alice", "apass")])
    p2 = mqtt_test.free_port()
    b = h.broker("listener %d 127.0.0.1\npassword_file %s\nallow_anonymous false\n" % (p2, pw),
                 anon=False)
    _listening(h, p2)
    for port in (b.port, p2):
        for proto in PROTOS:
            admitted(_tcp(h, port, proto), username="alice", password="apass")
            refused(_tcp(h, port, proto), NOT_AUTHORIZED, username="alice", password="x")
            refused(_tcp(h, port, proto), NOT_AUTHORIZED)
    # Global allow_anonymous false without a password file: a user name gets in nowhere.
    p3 = mqtt_test.free_port()
    b2 = h.broker("listener %d 127.0.0.1\nallow_anonymous false\n" % p3, anon=False)
    _listening(h, p3)
    for port in (b2.port, p3):
        for proto in PROTOS:
            refused(_tcp(h, port, proto), NOT_AUTHORIZED, username="alice", password="apass")
    admitted(_tcp(h, b.port, 4), username="alice", password="apass")


# ---------------------------------------------------------------------------------------------
# SIGHUP


def _alice_broker(h, extra=""):
    pw = _passwd(h, [("alice", "apass"), ("bob", "bpass")])
    b = h.broker("allow_anonymous false\npassword_file %s\n%s" % (pw, extra), anon=False)
    conns = [admitted(_tcp(h, b, proto), username="alice", password="apass") for proto in PROTOS]
    return b, pw, conns


def test_sighup_password_file_removed_from_config_v5_MQTT_3_1_4_2(h):
    # The password_file line is removed and SIGHUP: with allow_anonymous false nobody with a user
    # name may stay or come (mosquitto 2.0.11 disconnects them: security_apply).
    b, _pw, conns = _alice_broker(h)
    _rewrite_conf(b, "password_file", "#password_file")
    b.proc.send_signal(signal.SIGHUP)
    for c in conns:
        _dropped(c)
    _until_refused(h, lambda p: _tcp(h, b, p), NOT_AUTHORIZED, username="alice", password="apass")
    check(b.alive(), "broker died on SIGHUP")


def test_sighup_password_file_deleted_fails_closed_v5_MQTT_3_1_4_2(h):
    # The password file is deleted and SIGHUP: it no longer loads, and no user name is accepted
    # (fail closed, as mosquitto 2.0.11); connected users are disconnected. Restoring the file and
    # SIGHUP again lets alice back in (control).
    b, pw, conns = _alice_broker(h)
    saved = open(pw).read()
    os.unlink(pw)
    b.proc.send_signal(signal.SIGHUP)
    for c in conns:
        _dropped(c)
    _until_refused(h, lambda p: _tcp(h, b, p), NOT_AUTHORIZED, username="alice", password="apass")
    check(b.alive(), "broker died on SIGHUP")
    with open(pw, "w") as f:
        f.write(saved)
    os.chmod(pw, 0o644)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while True:
        c = _tcp(h, b, 5)
        c.send(connect(_cid("back"), proto=5, username="alice", password="apass"))
        if mqtt_test.parse(c.recv("CONNACK"), 5).get("rc") == 0:
            break
        check(time.monotonic() < deadline, "alice still refused 3 s after the file came back")
        time.sleep(0.1)


def test_sighup_password_file_emptied_v5_MQTT_3_1_4_2(h):
    # The password file is truncated to nothing and SIGHUP: every user is out.
    b, pw, conns = _alice_broker(h)
    with open(pw, "w"):
        pass
    b.proc.send_signal(signal.SIGHUP)
    for c in conns:
        _dropped(c)
    _until_refused(h, lambda p: _tcp(h, b, p), NOT_AUTHORIZED, username="bob", password="bpass")


def test_sighup_user_removed_v5_MQTT_3_1_4_2(h):
    # mosquitto_passwd -D alice and SIGHUP: alice is disconnected and refused (v3.1, v3.1.1,
    # v5); bob, still in the file, stays connected and can still connect.
    b, pw, conns = _alice_broker(h)
    bob = admitted(_tcp(h, b, 5), username="bob", password="bpass")
    subprocess.run(["mosquitto_passwd", "-D", pw, "alice"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(pw, 0o644)
    b.proc.send_signal(signal.SIGHUP)
    for c in conns:
        _dropped(c)
    _until_refused(h, lambda p: _tcp(h, b, p), NOT_AUTHORIZED, username="alice", password="apass")
    bob.send(mqtt_test.pingreq())
    bob.expect_packet(mqtt_test.pingresp())
    admitted(_tcp(h, b, 4), username="bob", password="bpass")


def test_sighup_allow_anonymous_false_without_password_file_v5_MQTT_3_1_4_2(h):
    # allow_anonymous true -> false with no password file, then SIGHUP: anonymous clients and
    # clients that only sent a user name are disconnected and refused from then on.
    b = h.broker("allow_anonymous true\n", anon=False)
    conns = [admitted(_tcp(h, b, proto), username="alice", password="x") for proto in PROTOS]
    conns += [admitted(_tcp(h, b, proto)) for proto in PROTOS]
    _rewrite_conf(b, "allow_anonymous true", "allow_anonymous false")
    b.proc.send_signal(signal.SIGHUP)
    for c in conns:
        _dropped(c)
    _until_refused(h, lambda p: _tcp(h, b, p), NOT_AUTHORIZED, username="alice", password="x")
    _until_refused(h, lambda p: _tcp(h, b, p), NOT_AUTHORIZED)
    # and back: allow_anonymous true admits them again (control)
    _rewrite_conf(b, "allow_anonymous false", "allow_anonymous true")
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while True:
        c = _tcp(h, b, 4)
        c.send(connect(_cid("again"), username="alice"))
        if c.recv("CONNACK") == connack(0):
            break
        check(time.monotonic() < deadline, "still refused 3 s after allow_anonymous true")
        time.sleep(0.1)


@vigil_only("mosquitto 2.0.11 drops every ACL rule when the acl_file no longer loads on SIGHUP "
            "(everything is then allowed); vigil keeps the previous rules")
def test_sighup_acl_file_unreadable_keeps_rules_v5(h):
    # Not admission, but the same reload: an acl_file deleted before SIGHUP keeps its previous
    # rules (logged as an error), so a topic it denied stays denied (v5 PUBACK 0x87), an allowed
    # one stays allowed (PUBACK 0x10: no subscribers). mosquitto-compat.md.
    acl = h.file("acl", "topic readwrite ok/#\n")
    b = h.broker("allow_anonymous true\nacl_file %s\n" % acl, anon=False)
    c = admitted(_tcp(h, b, 5))
    c.send(publish("no/1", "x", qos=1, mid=1, proto=5))
    c.expect_packet(puback(1, 0x87, proto=5))
    os.unlink(acl)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while "keeping the previous ACL rules" not in b.log():
        check(time.monotonic() < deadline, "no reload error logged:\n" + b.log_tail())
        time.sleep(0.05)
    c.send(publish("no/2", "x", qos=1, mid=2, proto=5))
    c.expect_packet(puback(2, 0x87, proto=5))
    c.send(publish("ok/3", "x", qos=1, mid=3, proto=5))
    c.expect_packet(puback(3, 0x10, proto=5))


# ---------------------------------------------------------------------------------------------
# TLS: certificates


def with_certs(f):
    """Run f(h, certs) with a throwaway CA (tests/interop/test_tls.py's Certs) plus a client
    certificate without a CN."""
    def run(h):
        from test_tls import Certs
        certs = Certs()
        try:
            certs.nocn = certs._leaf("nocn", "/O=VigilTest/OU=nocn", certs.ca,
                                     "extendedKeyUsage=clientAuth\n")
            f(h, certs)
        finally:
            certs.remove()
    run.__name__ = f.__name__
    run.__doc__ = f.__doc__
    run.timeout = 30
    return run


def _tls_conf(certs, extra=""):
    return "cafile %s\ncertfile %s\nkeyfile %s\n%s" % (certs.ca[0], certs.server[0], certs.server[1],
                                                       extra)


def _tls(h, port, proto, certs, cert=None):
    ctx = ssl.create_default_context(cafile=certs.ca[0])
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    return _client_on(h, ctx.wrap_socket(s, server_hostname="127.0.0.1"), proto, "tls")


@with_certs
def test_tls_without_require_certificate_v5_MQTT_3_1_4_2(h, certs):
    # A TLS listener without require_certificate authenticates like plain TCP: with
    # allow_anonymous false and no password file a user name is refused, with or without a
    # client certificate (0x05 / 0x87); where a password file knows alice she gets in (control).
    b = h.broker(_tls_conf(certs, "allow_anonymous false\n"), anon=False)
    b2 = h.broker(_tls_conf(certs, "allow_anonymous false\npassword_file %s\n"
                            % _passwd(h, [("alice", "apass")])), anon=False)
    for proto in PROTOS:
        for cert in (None, certs.alice):
            refused(_tls(h, b.port, proto, certs, cert), NOT_AUTHORIZED, username="alice", password="apass")
            refused(_tls(h, b.port, proto, certs, cert), NOT_AUTHORIZED)
            admitted(_tls(h, b2.port, proto, certs, cert), username="alice", password="apass")
            refused(_tls(h, b2.port, proto, certs, cert), NOT_AUTHORIZED, username="alice", password="x")


@with_certs
def test_identity_without_require_certificate_refuses_all_v5_MQTT_3_1_4_2(h, certs):
    # use_identity_as_username / use_subject_as_username without require_certificate: mosquitto
    # 2.0.11 starts (vigil too, with a warning), asks no client certificate, and so refuses every
    # client as one without an identity: CONNACK 0x04 (v3.1, v3.1.1) / 0x86 Bad User Name or
    # Password (v5), whatever user name and password it sends (v5 MQTT-3.1.4-2). Control: with
    # require_certificate the same client certificate gets in.
    for opt in ("use_identity_as_username", "use_subject_as_username"):
        b = h.broker(_tls_conf(certs, "allow_anonymous true\n%s true\n" % opt), anon=False)
        for proto in PROTOS:
            for cert in (None, certs.alice):
                refused(_tls(h, b.port, proto, certs, cert), BAD_USER_OR_PASSWORD)
                refused(_tls(h, b.port, proto, certs, cert), BAD_USER_OR_PASSWORD,
                        username="alice", password="apass")
        if h.vigil:
            check("%s without require_certificate" % opt in b.log(), "no start-up warning:\n" + b.log_tail())
        ok = h.broker(_tls_conf(certs, "require_certificate true\n%s true\n" % opt), anon=False)
        admitted(_tls(h, ok.port, 5, certs, certs.alice))


@with_certs
def test_identity_needs_a_common_name_v5_MQTT_3_1_4_2(h, certs):
    # use_identity_as_username + require_certificate: the certificate CN is the user name; the
    # CONNECT's user name and password are ignored, and so are allow_anonymous false and the
    # password file (alice is not in it). A certificate without a CN: 0x04 / v5 0x86.
    pw = _passwd(h, [("bob", "bpass")])
    b = h.broker(_tls_conf(certs, "require_certificate true\nuse_identity_as_username true\n"
                           "allow_anonymous false\npassword_file %s\n" % pw), anon=False)
    for proto in PROTOS:
        refused(_tls(h, b.port, proto, certs, certs.nocn), BAD_USER_OR_PASSWORD)
        refused(_tls(h, b.port, proto, certs, certs.nocn), BAD_USER_OR_PASSWORD, username="bob",
                password="bpass")
        admitted(_tls(h, b.port, proto, certs, certs.alice))
        admitted(_tls(h, b.port, proto, certs, certs.alice), username="bob", password="wrong")
    # use_subject_as_username: every verified certificate has a subject, the CN-less one too.
    b2 = h.broker(_tls_conf(certs, "require_certificate true\nuse_subject_as_username true\n"
                            "allow_anonymous false\n"), anon=False)
    for proto in PROTOS:
        admitted(_tls(h, b2.port, proto, certs, certs.nocn))


@with_certs
def test_identity_and_subject_together_identity_wins_v5_MQTT_3_1_4_2(h, certs):
    # Both options on one listener: mosquitto takes the CN. The ACL grants t/# to "alice" only
    # (not to "CN=alice,O=VigilTest"): alice's QoS 1 PUBLISH is allowed (v5 PUBACK 0x10, no
    # subscribers), a certificate whose CN has no rules is refused (PUBACK 0x87).
    acl = h.file("acl", "user alice\ntopic readwrite t/#\nuser CN=bob,O=VigilTest\ntopic readwrite t/#\n")
    b = h.broker(_tls_conf(certs, "require_certificate true\nuse_identity_as_username true\n"
                           "use_subject_as_username true\nacl_file %s\n" % acl), anon=False)
    a = admitted(_tls(h, b.port, 5, certs, certs.alice))
    a.send(publish("t/1", "x", qos=1, mid=1, proto=5))
    a.expect_packet(puback(1, 0x10, proto=5))
    bob = admitted(_tls(h, b.port, 5, certs, certs.bob))
    bob.send(publish("t/2", "x", qos=1, mid=2, proto=5))
    bob.expect_packet(puback(2, 0x87, proto=5))


# ---------------------------------------------------------------------------------------------
# TLS-PSK (openssl s_client carries the MQTT bytes: Python's ssl has no PSK before 3.13)


class _PSK:
    """Start `openssl s_client -psk` on one end of a socketpair; the test talks MQTT on the
    other end. kill() stops every s_client started (by pid)."""

    def __init__(self, h):
        self.h = h
        self.procs = []

    def client(self, port, proto, identity, key):
        a, b = socket.socketpair()
        p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-psk", key,
                              "-psk_identity", identity, "-quiet", "-nocommands"],
                             stdin=b, stdout=b, stderr=subprocess.DEVNULL, start_new_session=True)
        b.close()
        self.procs.append(p)
        a.settimeout(3)
        return _client_on(self.h, a, proto, "psk-" + identity)

    def kill(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


def with_psk(f):
    def run(h):
        psk = _PSK(h)
        try:
            f(h, psk)
        finally:
            psk.kill()
    run.__name__ = f.__name__
    run.__doc__ = f.__doc__
    run.timeout = 30
    return run


def _handshake_refused(c):
    """The TLS-PSK handshake fails: s_client exits, no CONNACK arrives."""
    c.send_quiet(connect(_cid("psk")))
    c.expect_closed(5.0)


@with_psk
def test_psk_without_identity_as_username_v5_MQTT_3_1_4_2(h, psk):
    # A psk_hint listener without use_identity_as_username: the PSK admits the TLS connection,
    # but the MQTT user is whatever CONNECT says, judged as on TCP. allow_anonymous false and no
    # password file: a user name (even the PSK identity) is refused, 0x05 / 0x87. Control: with
    # allow_anonymous true the same client gets in. A wrong key or an unknown identity fails the
    # handshake.
    pskf = h.file("psk", "ident1:deadbeef\n")
    b = h.broker("psk_hint hint\npsk_file %s\nallow_anonymous false\n" % pskf, anon=False)
    ok = h.broker("psk_hint hint\npsk_file %s\nallow_anonymous true\n" % pskf, anon=False)
    for proto in PROTOS:
        refused(psk.client(b.port, proto, "ident1", "deadbeef"), NOT_AUTHORIZED, username="alice",
                password="apass")
        refused(psk.client(b.port, proto, "ident1", "deadbeef"), NOT_AUTHORIZED, username="ident1")
        refused(psk.client(b.port, proto, "ident1", "deadbeef"), NOT_AUTHORIZED)
        admitted(psk.client(ok.port, proto, "ident1", "deadbeef"), username="alice", password="x")
    _handshake_refused(psk.client(ok.port, 4, "ident1", "beef"))
    _handshake_refused(psk.client(ok.port, 4, "nobody", "deadbeef"))


@with_psk
def test_psk_identity_as_username_and_sighup_v5_MQTT_3_1_4_2(h, psk):
    # psk_hint + use_identity_as_username: the PSK identity is the user name (allow_anonymous
    # false, no password file, CONNECT user ignored: admitted). SIGHUP after ident1 left the
    # file: ident1's handshake fails, ident2 still works; after the whole file is deleted and
    # SIGHUP, no identity works any more (fail closed, as mosquitto 2.0.11).
    pskf = h.file("psk", "ident1:deadbeef\nident2:beefbeef\n")
    b = h.broker("psk_hint hint\npsk_file %s\nallow_anonymous false\nuse_identity_as_username true\n"
                 % pskf, anon=False)
    for proto in PROTOS:
        admitted(psk.client(b.port, proto, "ident1", "deadbeef"))
        admitted(psk.client(b.port, proto, "ident2", "beefbeef"), username="mallory", password="x")
    h.file("psk", "ident2:beefbeef\n")
    b.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    _handshake_refused(psk.client(b.port, 4, "ident1", "deadbeef"))
    admitted(psk.client(b.port, 5, "ident2", "beefbeef"))
    os.unlink(pskf)
    b.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    _handshake_refused(psk.client(b.port, 4, "ident2", "beefbeef"))
    check(b.alive(), "broker died on SIGHUP")


@with_certs
def test_psk_listener_certificate_has_no_identity_v5_MQTT_3_1_4_2(h, certs):
    # A listener with both certfile and psk_hint and use_identity_as_username: only a PSK
    # identity is a user name there (mosquitto 2.0.11), so a client with a valid certificate is
    # refused, 0x04 / v5 0x86. Control: without psk_hint the same certificate gets in.
    pskf = h.file("psk", "ident1:deadbeef\n")
    b = h.broker(_tls_conf(certs, "psk_hint hint\npsk_file %s\nuse_identity_as_username true\n"
                           "require_certificate true\nallow_anonymous false\n" % pskf), anon=False)
    ok = h.broker(_tls_conf(certs, "use_identity_as_username true\nrequire_certificate true\n"
                            "allow_anonymous false\n"), anon=False)
    for proto in PROTOS:
        refused(_tls(h, b.port, proto, certs, certs.alice), BAD_USER_OR_PASSWORD)
        admitted(_tls(h, ok.port, proto, certs, certs.alice))


# ---------------------------------------------------------------------------------------------
# WebSockets (vigil only: Debian's mosquitto 2.0.11 fails to open websockets listeners)


class _WS:
    """MQTT over a WebSocket (RFC 6455, subprotocol "mqtt") behind a socket-like interface for
    mqtt_test.Client: sendall sends one masked binary frame, recv returns binary frame payloads,
    EOF on a close frame."""

    def __init__(self, port, ctx=None):
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        if ctx:
            s = ctx.wrap_socket(s, server_hostname="127.0.0.1")
        self.s = s
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Protocol: mqtt\r\n\r\n" % key).encode())
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 8192:
            d = s.recv(4096)
            check(d, "closed during the WebSocket upgrade")
            buf += d
        head, self.raw = buf.split(b"\r\n\r\n", 1)
        check(head.startswith(b"HTTP/1.1 101"), "no 101 Switching Protocols: %r" % head[:80])
        self.data = b""
        self.eof = False

    def settimeout(self, t):
        self.s.settimeout(t)

    def setsockopt(self, *args):
        pass

    def sendall(self, payload):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x82]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _frame(self):
        while True:
            if len(self.raw) >= 2:
                n, hl = self.raw[1] & 0x7F, 2
                if n == 126:
                    n, hl = (struct.unpack("!H", self.raw[2:4])[0], 4) if len(self.raw) >= 4 else (None, 4)
                elif n == 127:
                    n, hl = (struct.unpack("!Q", self.raw[2:10])[0], 10) if len(self.raw) >= 10 else (None, 10)
                if n is not None and len(self.raw) >= hl + n:
                    op, p = self.raw[0] & 0x0F, self.raw[hl:hl + n]
                    self.raw = self.raw[hl + n:]
                    return op, p
            d = self.s.recv(65536)
            if not d:
                return None, b""
            self.raw += d

    def recv(self, n):
        while not self.data and not self.eof:
            op, p = self._frame()
            if op is None or op == 8:
                self.eof = True
            elif op in (0, 2):
                self.data += p
        out, self.data = self.data[:n], self.data[n:]
        return out

    def close(self):
        self.s.close()


def _ws(h, port, proto, ctx=None):
    return _client_on(h, _WS(port, ctx), proto, "ws")


def test_websockets_no_password_file_v5_MQTT_3_1_4_2(h):
    # A websockets listener decides like TCP: allow_anonymous false without a password file
    # refuses a user name (0x05 / 0x87); with a password file alice gets in, a wrong password
    # and anonymous do not (v5 MQTT-3.1.4-2).
    if h.mosquitto:
        h.skip(NO_WS)
    p1, p2 = mqtt_test.free_port(), mqtt_test.free_port()
    h.broker("per_listener_settings true\nallow_anonymous false\n"
             "listener %d 127.0.0.1\nprotocol websockets\nallow_anonymous false\n"
             "listener %d 127.0.0.1\nprotocol websockets\nallow_anonymous false\npassword_file %s\n"
             % (p1, p2, _passwd(h, [("alice", "apass")])), anon=False)
    _listening(h, p1, p2)
    for proto in PROTOS:
        refused(_ws(h, p1, proto), NOT_AUTHORIZED, username="alice", password="apass")
        refused(_ws(h, p1, proto), NOT_AUTHORIZED)
        admitted(_ws(h, p2, proto), username="alice", password="apass")
        refused(_ws(h, p2, proto), NOT_AUTHORIZED, username="alice", password="x")
        refused(_ws(h, p2, proto), NOT_AUTHORIZED)


@with_certs
def test_websockets_tls_identity_v5_MQTT_3_1_4_2(h, certs):
    # WebSockets over TLS with use_identity_as_username: without require_certificate no
    # identity, so 0x04 / v5 0x86 for everyone (as on a TLS listener); with it the CN is the user
    # name (allow_anonymous false, no password file: alice's certificate gets in, the CN-less one
    # does not).
    if h.mosquitto:
        h.skip(NO_WS)
    # (one WSS listener per broker: two in one process leak lws/OpenSSL state at exit under
    # ASan, a net/ws.c matter outside this test)
    p1, p2 = mqtt_test.free_port(), mqtt_test.free_port()
    for port, extra in ((p1, ""), (p2, "require_certificate true\n")):
        h.broker("allow_anonymous false\nlistener %d 127.0.0.1\nprotocol websockets\n%s%s"
                 "use_identity_as_username true\n" % (port, _tls_conf(certs), extra), anon=False)
        _listening(h, port)

    def ctx(cert=None):
        c = ssl.create_default_context(cafile=certs.ca[0])
        if cert:
            c.load_cert_chain(cert[0], cert[1])
        return c
    for proto in PROTOS:
        refused(_ws(h, p1, proto, ctx(certs.alice)), BAD_USER_OR_PASSWORD, username="alice", password="x")
        refused(_ws(h, p1, proto, ctx()), BAD_USER_OR_PASSWORD)
        admitted(_ws(h, p2, proto, ctx(certs.alice)))
        refused(_ws(h, p2, proto, ctx(certs.nocn)), BAD_USER_OR_PASSWORD)
