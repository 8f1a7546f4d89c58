"""Listeners and process behaviour: several listeners, bind address and socket_domain, Unix-domain
sockets, per_listener_settings, mount_point, max_connections, max_qos per listener, SIGHUP reload of
the password and ACL files, start-up errors, local-only mode (no configuration), -d with pid_file,
--help / --version.
Most of these are configuration behaviour (mosquitto.conf(5), mosquitto-compat.md) with no MQTT
statement; where one applies it is cited.
"""
import os
import re
import signal
import socket
import subprocess
import time

import mqtt_test
from mqtt_test import (connect, connack, publish, puback, pingreq, pingresp, check, check_eq,
                       fail, vigil_only, MAXIMUM_QOS)

# ---------------------------------------------------------------------------------------------
# Brokers with a whole configuration (the harness's Broker prepends one 127.0.0.1 listener)


def _hex_v4(addr):
    return "%08X" % int.from_bytes(socket.inet_aton(addr), "little")


def _hex_v6(addr):
    raw = socket.inet_pton(socket.AF_INET6, addr)
    return "".join("%08X" % int.from_bytes(raw[i:i + 4], "little") for i in range(0, 16, 4))


def _tcp_inodes(family, addr, port):
    """Inodes of listening sockets bound to addr:port (addr '0.0.0.0' / '::' for any)."""
    path, want = (("/proc/net/tcp", _hex_v4(addr)) if family == socket.AF_INET
                  else ("/proc/net/tcp6", _hex_v6(addr)))
    want = "%s:%04X" % (want, port)
    out = []
    try:
        with open(path) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[1] == want and cols[3] == "0A":
                    out.append(cols[9])
    except OSError:
        pass
    return out


def _listening_addrs(port):
    """Every local address with a listening TCP socket on port (IPv4 and IPv6, as text)."""
    out = []
    for path, fam in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            a, p = cols[1].split(":")
            if int(p, 16) != port or cols[3] != "0A":
                continue
            raw = bytes.fromhex(a)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            out.append(socket.inet_ntop(fam, raw))
    return out


def _unix_inode(path):
    try:
        with open("/proc/net/unix") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if len(cols) >= 8 and cols[7] == path:
                    return cols[6]
    except OSError:
        pass
    return None


def _owns(pid, inodes):
    return any(mqtt_test._pid_has_socket(pid, i) for i in inodes if i)


def _ready(pid, w):
    kind = w[0]
    if kind == "unix":
        return _owns(pid, [_unix_inode(w[1])])
    fam = socket.AF_INET if kind == "tcp" else socket.AF_INET6
    return _owns(pid, _tcp_inodes(fam, w[1], w[2]))


class ConfBroker(mqtt_test.Broker):
    """make(ports) -> (conf text or None, waits, extra argv). ports: name -> free port. waits:
    ("tcp", "127.0.0.1", port), ("tcp6", "::1", port), ("unix", path): started means our pid
    owns each of these listening sockets. conf None: no -c (e.g. `-p PORT`)."""

    def __init__(self, h, make, names=("a",), name=None):
        self.make = make
        self.names = names
        self.ports = {}
        super().__init__(h, "", anon=False, name=name or "broker%d" % len(h._brokers))
        h._brokers.append(self)

    def start(self, port=None):
        last = ""
        for _attempt in range(8):
            self.ports = {n: mqtt_test.free_port() for n in self.names}
            conf, waits, argv = self.make(self.ports)
            cmd = [mqtt_test.broker_bin()]
            if conf is not None:
                with open(self.conf_path, "w") as f:
                    f.write(conf)
                cmd += ["-c", self.conf_path]
            cmd += list(argv) + ["-v"]
            logf = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                             stderr=logf, cwd=self.h.dir)
            finally:
                logf.close()
            self.stopped = False
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and self.proc.poll() is None:
                if all(_ready(self.proc.pid, w) for w in waits):
                    self.port = self.ports[self.names[0]]
                    return
                time.sleep(0.01)
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait()
                fail("%s did not open %s within 5 s; log:\n%s" % (self.name, waits,
                                                                  self.log_tail()))
            last = self.log_tail()
            if "in use" not in last.lower():
                fail("%s exited at start (rc=%s); log:\n%s" % (self.name, rc, last))
        fail("could not find free ports; last log:\n%s" % last)


def _has_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def _reachable(host, port, timeout=1.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _client_on(h, sock, proto=4, name="client"):
    """A harness Client on an already connected socket (IPv6, Unix domain)."""
    c = mqtt_test.Client.__new__(mqtt_test.Client)
    c.h, c.proto, c.timeout, c.name, c.next_mid = h, proto, 3.0, name, 1
    c.sock, c.buf, c.pending = sock, b"", []
    sock.settimeout(3.0)
    h._clients.append(c)
    return c


def _connect_on(h, sock, client_id, proto=4, **kw):
    c = _client_on(h, sock, proto, client_id)
    c.send(connect(client_id, proto=proto, **kw))
    p = c.expect_type(mqtt_test.CONNACK)
    check_eq(p.get("rc"), 0, "%s: CONNACK reason" % client_id)
    c.connack = p
    return c


def _v6_client(h, port, client_id, proto=4):
    s = socket.create_connection(("::1", port), timeout=3)
    return _connect_on(h, s, client_id, proto)


def _passwd(h, name, users):
    path = os.path.join(h.dir, name)
    for i, (u, pw) in enumerate(users):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [path, u, pw],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=10)
    os.chmod(path, 0o644)
    return path


# ---------------------------------------------------------------------------------------------
# Several listeners, addresses, socket domains, Unix sockets


def test_two_listeners_both_serve(h):
    # Two listeners (different ports) in one configuration; a message crosses between them in
    # both directions.
    b = ConfBroker(h, lambda p: ("listener %(a)d 127.0.0.1\nlistener %(b)d 127.0.0.1\n"
                                 "allow_anonymous true\n" % p,
                                 [("tcp", "127.0.0.1", p["a"]), ("tcp", "127.0.0.1", p["b"])],
                                 []), names=("a", "b"))
    sa = h.connect(b.ports["a"], "sa")
    sa.subscribe("two/#")
    sb = h.connect(b.ports["b"], "sb", proto=5)
    sb.subscribe("two/#")
    h.connect(b.ports["a"], "pa").publish("two/1", "from-a", qos=1)
    h.connect(b.ports["b"], "pb", proto=5).publish("two/2", "from-b", qos=1)
    for s in (sa, sb):
        s.expect_publish("two/1", "from-a")
        s.expect_publish("two/2", "from-b")


def test_bind_interface(h):
    # bind_interface lo (SO_BINDTODEVICE): the listener serves loopback clients; a device that
    # does not exist stops start-up with an error (the user asked for that interface).
    b = ConfBroker(h, lambda p: ("listener %(a)d 127.0.0.1\nbind_interface lo\nallow_anonymous true\n" % p,
                                 [("tcp", "127.0.0.1", p["a"])], []), names=("a",))
    s = h.connect(b.ports["a"], "bi")
    s.subscribe("bi/#")
    h.connect(b.ports["a"], "bp").publish("bi/1", "x", qos=1)
    s.expect_publish("bi/1", "x")
    path = h.file("nodev.conf", "listener %d 127.0.0.1\nbind_interface vigil-nodev0\nallow_anonymous true\n"
                  % mqtt_test.free_port())
    rc, out, secs = _run([mqtt_test.broker_bin(), "-c", path], h.dir)
    check(rc != 0, "started with bind_interface on a device that does not exist")


def test_bind_address_v4_and_v6(h):
    # listener PORT 127.0.0.1 is not reachable on ::1; listener PORT ::1 not on 127.0.0.1.
    if not _has_ipv6():
        h.skip("no IPv6 on loopback")
    b = ConfBroker(h, lambda p: ("listener %(a)d 127.0.0.1\nlistener %(b)d ::1\n"
                                 "allow_anonymous true\n" % p,
                                 [("tcp", "127.0.0.1", p["a"]), ("tcp6", "::1", p["b"])], []),
                   names=("a", "b"))
    a, b6 = b.ports["a"], b.ports["b"]
    check(not _reachable("::1", a), "127.0.0.1 listener reachable on [::1]:%d" % a)
    check(not _reachable("127.0.0.1", b6), "::1 listener reachable on 127.0.0.1:%d" % b6)
    check_eq(sorted(_listening_addrs(a)), ["127.0.0.1"], "addresses listening on port a")
    check_eq(sorted(_listening_addrs(b6)), ["::1"], "addresses listening on port b")
    s = h.connect(a, "v4sub")
    s.subscribe("bind/#")
    c6 = _v6_client(h, b6, "v6pub", proto=5)
    c6.publish("bind/x", "over-v6", qos=1)
    s.expect_publish("bind/x", "over-v6")


def test_socket_domain(h):
    # socket_domain on listeners without an address (all addresses of the family; connections are
    # made to loopback only): ipv4 -> not reachable on ::1; ipv6 -> not reachable on 127.0.0.1;
    # neither -> both.
    if not _has_ipv6():
        h.skip("no IPv6 on loopback")
    b = ConfBroker(h, lambda p: ("listener %(a)d\nsocket_domain ipv4\n"
                                 "listener %(b)d\nsocket_domain ipv6\n"
                                 "listener %(c)d\nallow_anonymous true\n" % p,
                                 [("tcp", "0.0.0.0", p["a"]), ("tcp6", "::", p["b"]),
                                  ("tcp", "0.0.0.0", p["c"]), ("tcp6", "::", p["c"])], []),
                   names=("a", "b", "c"))
    a, b6, both = b.ports["a"], b.ports["b"], b.ports["c"]
    check(_reachable("127.0.0.1", a), "ipv4 listener not reachable on 127.0.0.1")
    check(not _reachable("::1", a), "socket_domain ipv4 listener reachable on ::1")
    check(_reachable("::1", b6), "ipv6 listener not reachable on ::1")
    check(not _reachable("127.0.0.1", b6), "socket_domain ipv6 listener reachable on 127.0.0.1")
    check(_reachable("127.0.0.1", both) and _reachable("::1", both),
          "listener without socket_domain not reachable on both 127.0.0.1 and ::1")
    h.connect(a, "d4")
    _v6_client(h, b6, "d6")


def test_unix_socket_listener(h):
    # `listener 0 PATH` (mosquitto.conf(5): port 0 and a path = Unix-domain socket): CONNECT /
    # CONNACK over AF_UNIX (v3.1.1 and v5), messages cross to and from a TCP listener.
    # mosquitto (started as root) binds the socket after dropping to user mosquitto: a directory
    # that user may write to.
    run = os.path.join(h.dir, "run")
    os.mkdir(run)
    os.chmod(run, 0o777)
    path = os.path.join(run, "mqtt.sock")
    b = ConfBroker(h, lambda p: ("listener %d 127.0.0.1\nlistener 0 %s\nallow_anonymous true\n"
                                 % (p["a"], path), [("tcp", "127.0.0.1", p["a"]), ("unix", path)],
                                 []))

    def unix_sock():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(3)
        s.connect(path)
        return s

    tcp = h.connect(b, "tcpsub")
    tcp.subscribe("ux/#")
    u4 = _connect_on(h, unix_sock(), "unix4")
    u4.subscribe("back/#")
    u4.publish("ux/1", "over-unix", qos=1)
    tcp.expect_publish("ux/1", "over-unix")
    u5 = _connect_on(h, unix_sock(), "unix5", proto=5)
    u5.publish("ux/2", "over-unix-v5", qos=1)
    tcp.expect_publish("ux/2", "over-unix-v5")
    h.connect(b, "tcppub").publish("back/1", "to-unix", qos=1)
    u4.expect_publish("back/1", "to-unix")


# ---------------------------------------------------------------------------------------------
# Per-listener settings


def test_per_listener_settings_anonymous(h):
    # per_listener_settings true: listener A allow_anonymous true; listener B password_file only.
    # Anonymous refused on B (v311 3.2.2.3: 0x05; v5 MQTT-3.1.4-2: 0x87), accepted on A; a user of
    # B's password file connects on B; A does not use B's password file.
    pw = _passwd(h, "passwd", [("alice", "apass")])
    b = ConfBroker(h, lambda p: ("per_listener_settings true\n"
                                 "listener %(a)d 127.0.0.1\nallow_anonymous true\n"
                                 "listener %(b)d 127.0.0.1\n" % p +
                                 "password_file %s\nallow_anonymous false\n" % pw,
                                 [("tcp", "127.0.0.1", p["a"]), ("tcp", "127.0.0.1", p["b"])],
                                 []), names=("a", "b"))
    a, bp = b.ports["a"], b.ports["b"]
    h.connect(a, "anonA")
    h.connect(a, "anonA5", proto=5)
    h.expect_refused(bp, "anonB", 5)
    h.expect_refused(bp, "anonB5", 0x87, proto=5)
    h.connect(bp, "aliceB", username="alice", password="apass")
    h.expect_refused(bp, "badB", 5, username="alice", password="nope")
    # On A (no password file, anonymous allowed) the same wrong password is no reason to refuse.
    h.connect(a, "badA", username="alice", password="nope")


def _mount_broker(h):
    return ConfBroker(h, lambda p: ("listener %(a)d 127.0.0.1\nlistener %(b)d 127.0.0.1\n"
                                    "mount_point m/\nallow_anonymous true\n" % p,
                                    [("tcp", "127.0.0.1", p["a"]), ("tcp", "127.0.0.1", p["b"])],
                                    []), names=("a", "b"))


def test_mount_point_inbound(h):
    # mount_point m/ on listener B: its clients' topics are prefixed inside the broker. A client
    # on B publishing "t" (v3.1.1 and v5) is seen on A (no mount point) as "m/t"; A's "x" (outside
    # the mount point) does not reach B's '#'.
    b = _mount_broker(h)
    a, bp = b.ports["a"], b.ports["b"]
    sa = h.connect(a, "sa")
    sa.subscribe("m/#")
    sb = h.connect(bp, "sb")
    sb.subscribe("#")
    h.connect(bp, "pb").publish("t", "from-b", qos=1)
    h.connect(bp, "pb5", proto=5).publish("u/v", "from-b5", qos=1)
    sa.expect_publish("m/t", "from-b")
    sa.expect_publish("m/u/v", "from-b5")
    h.connect(a, "pa").publish("x", "outside", qos=1)
    sa.expect_no_packet(0.2)
    # sb holds B's own two messages (their topics are checked by the outbound test); A's "x"
    # must not be among what it got.
    got = []
    deadline = time.monotonic() + 0.5
    while True:
        try:
            got.append(mqtt_test.parse(sb.recv_packet(max(0.0, deadline - time.monotonic()))))
        except socket.timeout:
            break
    check_eq(sorted(g.get("payload") for g in got), [b"from-b", b"from-b5"],
             "payloads received on B's '#'")


@mqtt_test.mosquitto_differs("mosquitto 2.0.11 does not strip the mount point from outgoing "
                             "PUBLISHes (eclipse-mosquitto/mosquitto#2244, fixed in 2.0.12; "
                             "1.6 stripped it)")
def test_mount_point_outbound_stripped(h):
    # Messages reach a client on the mount_point listener without the prefix: B's own "t" comes
    # back to B's '#' as "t"; A's "m/x" reaches B as "x" (v3.1.1 and v5); a retained "m/r" set
    # from A is delivered to a new subscriber on B as "r".
    b = _mount_broker(h)
    a, bp = b.ports["a"], b.ports["b"]
    sb = h.connect(bp, "sb")
    sb.subscribe("#")
    sb5 = h.connect(bp, "sb5", proto=5)
    sb5.subscribe("x")
    h.connect(bp, "pb").publish("t", "from-b", qos=1)
    sb.expect_publish("t", "from-b")
    pa = h.connect(a, "pa")
    pa.publish("x", "outside", qos=1)
    pa.publish("m/x", "inside", qos=1)
    sb.expect_publish("x", "inside")
    sb5.expect_publish("x", "inside")
    sb.expect_no_packet(0.3)
    sb5.expect_no_packet(0.1)
    pa.publish("m/r", "kept", qos=1, retain=True)
    sb.expect_publish("r", "kept")
    late = h.connect(bp, "late", proto=5)
    late.subscribe("r")
    late.expect_publish("r", "kept", retain=True)


def test_max_connections(h):
    # max_connections 2 on listener A: a third connection is closed without a successful CONNACK;
    # listener B is not limited; once one of the two leaves, a new client is accepted.
    b = ConfBroker(h, lambda p: ("listener %(a)d 127.0.0.1\nmax_connections 2\n"
                                 "listener %(b)d 127.0.0.1\nallow_anonymous true\n" % p,
                                 [("tcp", "127.0.0.1", p["a"]), ("tcp", "127.0.0.1", p["b"])],
                                 []), names=("a", "b"))
    a, bp = b.ports["a"], b.ports["b"]
    c1 = h.connect(a, "mc1")
    h.connect(a, "mc2")
    # Refused: the TCP connection is reset or closed (a refusing CONNACK 0x03 Server unavailable
    # before the close is accepted too).
    try:
        c3 = h.client(a, name="mc3")
    except ConnectionError:
        c3 = None
    if c3 is not None:
        c3.send_quiet(connect("mc3"))
        c3.expect_optional_then_closed([connack(3)])
    h.connect(bp, "other-listener")
    c1.disconnect()
    deadline = time.monotonic() + 3
    while True:
        got = None
        try:
            c = h.client(a, name="mc4")
            c.send_quiet(connect("mc4"))
            got = c.recv_packet(1.0)
        except (ConnectionError, mqtt_test.Closed, socket.timeout):
            pass
        if got == connack(0):
            break
        check(time.monotonic() < deadline, "no connection accepted 3 s after one of two left")
        time.sleep(0.1)


def test_max_qos_per_listener_v5_MQTT_3_2_2_9_MQTT_3_2_2_10(h):
    # max_qos 1 on listener A only. v5 MQTT-3.2.2-9: A's CONNACK carries Maximum QoS 1; B's
    # carries none (QoS 2 supported). v5 MQTT-3.2.2-10: a SUBSCRIBE asking QoS 2 on A is accepted,
    # granted 1. A v5 client publishing QoS 2 on A breaks MQTT-3.2.2-11; v5 3.3.1.2: the Server
    # sends DISCONNECT 0x9B (QoS not supported). On B QoS 2 works.
    b = ConfBroker(h, lambda p: ("listener %(a)d 127.0.0.1\nmax_qos 1\n"
                                 "listener %(b)d 127.0.0.1\nallow_anonymous true\n" % p,
                                 [("tcp", "127.0.0.1", p["a"]), ("tcp", "127.0.0.1", p["b"])],
                                 []), names=("a", "b"))
    a, bp = b.ports["a"], b.ports["b"]
    ca = h.connect(a, "qa", proto=5)
    check_eq(dict(ca.connack.get("properties", [])).get(MAXIMUM_QOS), 1,
             "Maximum QoS in CONNACK on the max_qos 1 listener")
    cb = h.connect(bp, "qb", proto=5)
    check_eq(dict(cb.connack.get("properties", [])).get(MAXIMUM_QOS), None,
             "Maximum QoS in CONNACK on the default listener")
    ca.subscribe([("q/#", 2)], codes=[1])
    cb.subscribe([("q/#", 2)])
    h.connect(bp, "qpub", proto=5).publish("q/2", "two", qos=2)
    cb.expect_publish("q/2", "two", qos=2)
    ca.expect_publish("q/2", "two", qos=1)
    ca.send(publish("q/x", "x", qos=2, mid=7, proto=5))
    ca.expect_disconnect_close(0x9B)
    cb.expect_no_packet(0.3)


# ---------------------------------------------------------------------------------------------
# SIGHUP reload


def test_sighup_password_file(h):
    # A user added to the password file (mosquitto_passwd -b) can connect after SIGHUP, without a
    # restart; the connections open before the reload stay open.
    pw = _passwd(h, "passwd", [("alice", "apass")])
    b = h.broker("password_file %s\n" % pw, anon=False)
    alice = h.connect(b, "alice", proto=5, username="alice", password="apass")
    c = h.client(b)
    c.send(connect("bob0", username="bob", password="bpass"))
    c.expect_packet(connack(5))
    subprocess.run(["mosquitto_passwd", "-b", pw, "bob", "bpass"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(pw, 0o644)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    n = 0
    while True:
        n += 1
        c = h.client(b, name="bob%d" % n)
        c.send(connect("bob%d" % n, username="bob", password="bpass"))
        got = c.recv("CONNACK")
        if got == connack(0):
            break
        check_eq(got, connack(5), "CONNACK for bob before the reload took effect")
        check(time.monotonic() < deadline, "bob still refused 3 s after SIGHUP")
        time.sleep(0.1)
    check(b.alive(), "broker died on SIGHUP")
    alice.send(pingreq())
    alice.expect_packet(pingresp())
    alice.publish("x/y", "still-here", qos=1, rc=0x10)


def test_sighup_acl_file(h):
    # The ACL file is re-read on SIGHUP: a connected client's next PUBLISH is judged by the new
    # rules (v5: PUBACK 0x87 Not authorized before, delivered after; and the reverse).
    acl = h.file("acl", "user alice\ntopic readwrite a/#\n\nuser watcher\ntopic read #\n")
    pw = _passwd(h, "passwd", [("alice", "apass"), ("watcher", "wpass")])
    b = h.broker("password_file %s\nacl_file %s\n" % (pw, acl), anon=False)
    w = h.connect(b, "watcher", username="watcher", password="wpass")
    w.subscribe("#")
    alice = h.connect(b, "alice", proto=5, username="alice", password="apass")
    alice.send(publish("b/0", "denied", qos=1, mid=1, proto=5))
    alice.expect_packet(puback(1, rc=0x87, proto=5))
    alice.publish("a/0", "allowed", qos=1)
    w.expect_publish("a/0", "allowed")
    h.file("acl", "user alice\ntopic readwrite b/#\n\nuser watcher\ntopic read #\n")
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    mid = 1
    while True:
        mid += 1
        alice.send(publish("b/%d" % mid, "try", qos=1, mid=mid, proto=5))
        got = alice.recv("PUBACK")
        if got == puback(mid, proto=5):
            break
        check_eq(got, puback(mid, rc=0x87, proto=5), "PUBACK before the reload took effect")
        check(time.monotonic() < deadline, "new ACL not applied 3 s after SIGHUP")
        time.sleep(0.1)
    w.expect_publish("b/%d" % mid, "try")
    alice.send(publish("a/1", "now-denied", qos=1, mid=100, proto=5))
    alice.expect_packet(puback(100, rc=0x87, proto=5))
    w.expect_no_packet(0.3)


# ---------------------------------------------------------------------------------------------
# Process: start-up errors, local-only mode, -d / pid_file, --help / --version


def _run(args, cwd, timeout=5):
    t0 = time.monotonic()
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, cwd=cwd, timeout=timeout)
    out = r.stdout.decode("utf-8", "replace")
    for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        check(marker not in out, "%r in the broker's output:\n%s" % (marker, out))
    return r.returncode, out, time.monotonic() - t0


def test_startup_errors_name_file_and_line(h):
    # An unknown option, and a bad value, stop the broker at start-up with a non-zero status,
    # quickly, naming FILE:LINE (mosquitto 2.0.11: "Error found at FILE:LINE."; vigil:
    # "FILE:LINE: ..." with the option on the same line, mosquitto-compat.md).
    port = mqtt_test.free_port()
    for name, line, kw in (("unknown.conf", "bogus_option 3", "bogus_option"),
                           ("badvalue.conf", "max_qos 7", "max_qos"),
                           ("badint.conf", "max_inflight_messages lots", "max_inflight_messages")):
        if h.mosquitto and kw == "max_inflight_messages":
            continue  # mosquitto reads atoi("lots") = 0 (no maximum) and starts
        path = h.file(name, "listener %d 127.0.0.1\nallow_anonymous true\n%s\n" % (port, line))
        try:
            rc, out, secs = _run([mqtt_test.broker_bin(), "-c", path], h.dir)
        except subprocess.TimeoutExpired:
            fail("%s: broker still running 5 s after a bad configuration" % name)
        check(rc != 0, "%s: exit status 0 for %r" % (name, line))
        check(secs < 3, "%s: took %.1f s to fail" % (name, secs))
        if h.vigil:
            check(re.search(r"^.*%s:3: .*%s" % (re.escape(path), kw), out, re.M),
                  "%s: no line '%s:3: ...%s...' in:\n%s" % (name, path, kw, out))
        else:
            check("%s:3" % path in out, "%s: no '%s:3' in:\n%s" % (name, path, out))


def test_no_config_local_only(h):
    # No configuration, -p PORT: listens on localhost only (127.0.0.1, and ::1 when available),
    # anonymous clients allowed, and says so in one line (mosquitto-compat.md, local-only mode).
    b = ConfBroker(h, lambda p: (None, [("tcp", "127.0.0.1", p["a"])], ["-p", str(p["a"])]))
    addrs = sorted(_listening_addrs(b.port))
    check(addrs and set(addrs) <= {"127.0.0.1", "::1"},
          "listening on %s, want loopback only" % addrs)
    h.connect(b, "local")
    lines = [ln for ln in b.log().splitlines() if "local only" in ln.lower()]
    check_eq(len(lines), 1, "log lines about local only mode %r" % lines)
    if h.vigil:
        check(str(b.port) in lines[0], "the local-only line does not name the port: %r"
              % lines[0])


def _proc_gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


class _Daemon:
    """Cleanup for a daemonized broker (not our child): SIGKILL by pid if still running."""

    def __init__(self, h, log_path):
        self.name, self.log_path, self.pid = "daemon", log_path, None
        h._brokers.append(self)

    def log_tail(self, n=40):
        try:
            with open(self.log_path) as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.pid and not _proc_gone(self.pid):
            os.kill(self.pid, signal.SIGKILL)


def test_daemon_and_pid_file(h):
    # -d: the foreground process exits 0 and the broker keeps serving; pid_file holds its pid and
    # is removed on SIGTERM.
    port = mqtt_test.free_port()
    # Started as root, both brokers drop to user mosquitto before they remove the pid file: its
    # directory must be writable by that user.
    run = os.path.join(h.dir, "run")
    os.mkdir(run)
    os.chmod(run, 0o777)
    pidf, logf = os.path.join(run, "broker.pid"), os.path.join(h.dir, "daemon.log")
    d = _Daemon(h, logf)
    conf = h.file("d.conf", "listener %d 127.0.0.1\nallow_anonymous true\npid_file %s\n"
                  "log_dest file %s\n" % (port, pidf, logf))
    open(logf, "w").close()
    os.chmod(logf, 0o666)
    rc, out, secs = _run([mqtt_test.broker_bin(), "-c", conf, "-d"], h.dir)
    check_eq(rc, 0, "exit status of the foreground process (output %r)" % out)
    deadline = time.monotonic() + 3
    text = ""
    while time.monotonic() < deadline:  # mosquitto creates the file, then writes the pid into it
        try:
            with open(pidf) as f:
                text = f.read()
        except FileNotFoundError:
            text = ""
        if text.endswith("\n"):
            break
        time.sleep(0.02)
    check(text.strip().isdigit(), "pid_file %s not written (%r)" % (pidf, text))
    d.pid = int(text.strip())
    while not _ready(d.pid, ("tcp", "127.0.0.1", port)):
        check(time.monotonic() < deadline and not _proc_gone(d.pid),
              "process %d from the pid file does not listen on %d" % (d.pid, port))
        time.sleep(0.02)
    s = h.connect(port, "dsub")
    s.subscribe("d/#")
    h.connect(port, "dpub").publish("d/1", "daemon", qos=1)
    s.expect_publish("d/1", "daemon")
    os.kill(d.pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while not _proc_gone(d.pid):
        check(time.monotonic() < deadline, "daemon still running 5 s after SIGTERM")
        time.sleep(0.02)
    check(not os.path.exists(pidf), "pid_file still there after SIGTERM")


@vigil_only("mosquitto 2.0.11 exits 3 after -h and does not know --version")
def test_help_and_version(h):
    rc, out, _ = _run([mqtt_test.broker_bin(), "--help"], h.dir)
    check_eq(rc, 0, "--help exit status")
    check("Usage:" in out and "-c" in out and "-p" in out and "-d" in out, "--help: %r" % out)
    rc2, out2, _ = _run([mqtt_test.broker_bin(), "-h"], h.dir)
    check_eq((rc2, out2), (0, out), "-h same as --help")
    rc, out, _ = _run([mqtt_test.broker_bin(), "--version"], h.dir)
    check_eq(rc, 0, "--version exit status")
    check(re.match(r"^vigil version \d+\.\d+\.\d+\n$", out), "--version output %r" % out)
    rc, out, _ = _run([mqtt_test.broker_bin(), "--no-such-flag"], h.dir)
    check(rc != 0, "an unknown command-line option exits 0")
