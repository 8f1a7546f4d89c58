"""memory_limit and the options that used to only warn: allow_duplicate_messages, log_facility,
websockets_log_level, websockets_headers_size; the $SYS heap figures.

memory_limit (mosquitto.conf(5)): observed on mosquitto 2.0.11, the PUBLISH whose message no longer
fits is refused: the publisher is disconnected without an acknowledgement (v5: DISCONNECT 0x80, or a
bare close; vigil sends 0x97 Quota exceeded, v5 MQTT-4.13.2-1 / MQTT-3.14.2-1), while clients keep
connecting, pinging and receiving what was stored, and nothing acknowledged is dropped (v5
MQTT-4.3.2-4, v311 MQTT-3.3.1-5/-6). The exact point of refusal differs (each broker counts its own
structures), so the tests bound it by the limit instead of naming a message.
mqtt-spec: both
"""
import base64
import os
import re
import signal
import socket
import subprocess
import time

import mqtt_test
from mqtt_test import (connect, connack, publish, puback, disconnect, pingreq, pingresp, subscribe,
                       suback, check, check_eq, fail, timeout, PUBLISH, PUBACK)

LIMIT = 300000


def _flood(h, c, proto, topic_fmt, size, retain, limit=LIMIT, max_n=200):
    """Publish QoS 1 messages of `size` bytes until the broker refuses one. Returns the number
    acknowledged. The refused PUBLISH gets no PUBACK: a DISCONNECT (vigil: exactly 0x97; mosquitto:
    0x80 or none) and then the close (v5 MQTT-4.13.2-1), or a bare close for v3.x."""
    for i in range(1, max_n + 1):
        mid = c.mid()
        topic = topic_fmt % i if "%d" in topic_fmt else topic_fmt
        c.send(publish(topic, b"%06d" % i + b"x" * (size - 6), qos=1, retain=retain, mid=mid,
                       proto=proto))
        try:
            got = c.recv_packet(3.0)
        except mqtt_test.Closed:
            check(proto != 5 or not h.vigil, "v5 publisher closed without DISCONNECT 0x97")
            return i - 1
        except socket.timeout:
            fail("message %d: no PUBACK and no close within 3 s" % i)
        if got == puback(mid, proto=proto) or (proto == 5 and got == puback(mid, 0x10, proto=5)):
            continue
        check(proto == 5, "v3 publisher: want PUBACK or close, got %s" % mqtt_test.describe(got))
        allowed = [disconnect(0x97, proto=5)] + ([] if h.vigil else [disconnect(0x80, proto=5)])
        check(got in allowed, "message %d: want PUBACK or DISCONNECT %s, got %s"
              % (i, "0x97" if h.vigil else "0x97/0x80", mqtt_test.describe(got, 5)))
        c.expect_closed()
        return i - 1
    fail("%d messages of %d bytes accepted under memory_limit %d" % (max_n, size, limit))


def _serving(h, b):
    """The broker keeps serving at its limit: v3.1.1 and v5 clients connect and ping."""
    for proto in (4, 5):
        c = h.connect(b, "late%d" % proto, proto=proto)
        c.send(pingreq())
        c.expect_packet(pingresp())
        c.disconnect()


def _retained_flood_case(h, proto):
    b = h.broker("memory_limit %d\n" % LIMIT)
    pub = h.connect(b, "flood", proto=proto)
    n = _flood(h, pub, proto, "mem/r/%d", 10000, retain=True)
    check(n >= 5, "only %d messages of 10 kB fit under %d bytes" % (n, LIMIT))
    check(n * 10000 <= LIMIT, "%d x 10 kB acknowledged: more than memory_limit %d" % (n, LIMIT))
    _serving(h, b)
    # Every acknowledged retained message is still there (v311 MQTT-3.3.1-5/-6).
    s = h.connect(b, "reader", proto=4)
    s.send(subscribe(1, [("mem/r/#", 1)]))
    s.expect_packet(suback(1, [1]))
    seen = set()
    for _ in range(n):
        p = s.expect_type(PUBLISH)
        check(p["retain"] and len(p["payload"]) == 10000, "bad retained copy %s" % p["topic"])
        seen.add(p["topic"])
        s.send(puback(p["mid"]))
    check_eq(seen, {"mem/r/%d" % i for i in range(1, n + 1)}, "retained topics kept")
    s.expect_no_packet(0.5)
    # Memory is freed when they are cleared; the broker takes big messages again.
    c = h.connect(b, "cleaner", proto=4)
    for i in range(1, n + 1):
        c.publish("mem/r/%d" % i, b"", qos=1, retain=True)
    c.publish("mem/after", b"y" * 10000, qos=1)


def test_retained_flood_v5_refused_with_0x97_MQTT_4_13_2_1(h):
    _retained_flood_case(h, 5)


def test_retained_flood_v311_closed_nothing_acked_dropped_MQTT_3_3_1_5(h):
    _retained_flood_case(h, 4)


@timeout(20)
def test_slow_qos1_subscriber_then_drained_v5_MQTT_4_3_2_4(h):
    # A subscriber that does not read holds QoS 1 messages (in flight and queued) until the
    # limit refuses the next PUBLISH; once it reads and acknowledges, memory is free again.
    b = h.broker("memory_limit %d\n" % LIMIT)
    s = h.connect(b, "slow", proto=5)
    s.subscribe([("mem/q", 1)])
    pub = h.connect(b, "fast", proto=5)
    n = _flood(h, pub, 5, "mem/q", 20000, retain=False)
    check(n * 20000 <= LIMIT, "%d x 20 kB acknowledged under memory_limit %d" % (n, LIMIT))
    _serving(h, b)
    got = []
    while True:
        try:
            raw = s.recv_packet(1.0)
        except socket.timeout:
            break
        p = mqtt_test.parse(raw, 5)
        check_eq(p["type"], PUBLISH, "packet to the subscriber")
        got.append(int(p["payload"][:6]))
        s.send(puback(p["mid"], proto=5))
    # Each acknowledged message once, in order (MQTT-4.3.2-4: the broker owns them); mosquitto
    # may also deliver the refused one (it routes before its PUBACK fails; QoS 1 allows it).
    extra = [] if h.vigil else [[*range(1, n + 2)]]
    check(got == list(range(1, n + 1)) or got in extra, "delivered %r, acknowledged 1..%d" % (got, n))
    again = h.connect(b, "fast", proto=5)
    again.publish("mem/q", b"z" * 20000, qos=1)
    s.expect_publish("mem/q", b"z" * 20000, qos=1)


def _reload_limit(b, old, new):
    with open(b.conf_path) as f:
        text = f.read()
    check("memory_limit %d\n" % old in text, "memory_limit %d not in the configuration" % old)
    with open(b.conf_path, "w") as f:
        f.write(text.replace("memory_limit %d\n" % old, "memory_limit %d\n" % new))
    b.proc.send_signal(signal.SIGHUP)
    time.sleep(1.0)


@timeout(20)
def test_memory_limit_reloaded_on_sighup(h):
    # memory_limit is reloaded on SIGHUP (mosquitto.conf(5)), in both directions.
    b = h.broker("memory_limit 100000\n")
    c = h.connect(b, "big", proto=4)
    c.send(publish("mem/big", b"a" * 200000, qos=1, retain=True, mid=1))
    c.expect_closed()  # 200 kB do not fit under 100 kB: no PUBACK
    _reload_limit(b, 100000, 0)
    h.connect(b, "big", proto=4).publish("mem/big", b"a" * 200000, qos=1, retain=True)
    _reload_limit(b, 0, 400000)
    c = h.connect(b, "big", proto=4)
    c.publish("mem/small", b"s" * 20000, qos=1)  # 200 + 20 kB fit
    c.send(publish("mem/big2", b"b" * 250000, qos=1, mid=9))
    c.expect_closed()  # 200 + 250 kB do not


def _heap(c, want):
    """The next $SYS/broker/heap/current value satisfying want(v) within 5 s (sys_interval 1)."""
    deadline = time.monotonic() + 5
    last = None
    while time.monotonic() < deadline:
        try:
            p = mqtt_test.parse(c.recv_packet(max(0.1, deadline - time.monotonic())))
        except socket.timeout:
            break
        if p["type"] == PUBLISH and p["topic"] == "$SYS/broker/heap/current":
            last = int(p["payload"])
            if want(last):
                return last
    fail("no $SYS/broker/heap/current value as wanted (last %r)" % last)


@timeout(25)
def test_sys_heap_current_and_maximum(h):
    # mosquitto built with memory tracking (Debian's) publishes both; vigil publishes its
    # memory_limit accounting under the same names.
    b = h.broker("sys_interval 1\n")
    mon = h.connect(b, "mon", proto=4)
    mon.subscribe([("$SYS/broker/heap/#", 0)])
    base = _heap(mon, lambda v: v >= 0)
    pub = h.connect(b, "pub", proto=4)
    pub.publish("mem/heap", b"h" * 200000, qos=1, retain=True)
    grown = _heap(mon, lambda v: v >= base + 200000)
    pub.publish("mem/heap", b"", qos=1, retain=True)
    _heap(mon, lambda v: v <= grown - 200000)
    mon.unsubscribe("$SYS/broker/heap/#")
    mon.subscribe([("$SYS/broker/heap/maximum", 0)])
    p = mon.expect_type(PUBLISH)
    check(int(p["payload"]) >= grown, "heap/maximum %s below the peak %d" % (p["payload"], grown))


# ---------------------------------------------------------------------------------------------
# allow_duplicate_messages (deprecated in 2.0, still honoured by mosquitto 2.0.11 for v3.x)


def _overlap_copies(h, conf):
    b = h.broker(conf)
    s = h.connect(b, "overlap", proto=4)
    s.subscribe([("dup/#", 1), ("dup/t", 0), ("+/t", 2)])
    p = h.connect(b, "dup-pub", proto=4)
    p.publish("dup/t", b"x", qos=2)
    qos = []
    while True:
        try:
            q = mqtt_test.parse(s.recv_packet(0.5))
        except socket.timeout:
            return sorted(qos)
        if q["type"] == mqtt_test.PUBREL:
            s.send(mqtt_test.pubcomp(q["mid"]))
            continue
        check_eq(q["type"], PUBLISH, "packet to the subscriber")
        qos.append(q["qos"])
        if q["qos"] == 1:
            s.send(puback(q["mid"]))
        elif q["qos"] == 2:
            s.send(mqtt_test.pubrec(q["mid"]))


def test_allow_duplicate_messages_true_copy_per_subscription_v311_MQTT_3_3_5_1(h):
    # v311 MQTT-3.3.5-1: the highest QoS must be respected; further copies, one per matching
    # subscription at its own QoS, are allowed, and that is what this option asks for.
    check_eq(_overlap_copies(h, "allow_duplicate_messages true\n"), [0, 1, 2], "QoS of the copies")


def test_allow_duplicate_messages_default_one_copy_v311_MQTT_3_3_5_1(h):
    for conf in ("", "allow_duplicate_messages false\n"):
        got = _overlap_copies(h, conf)
        check_eq(len(got), 1, "copies with %r" % conf)


# ---------------------------------------------------------------------------------------------
# WebSockets: websockets_headers_size, websockets_log_level


def _ws_handshake(port, cookie_len):
    """An HTTP upgrade with a Cookie header of about cookie_len bytes; the status line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=3)
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n"
           % (port, key))
    if cookie_len:
        req += "Cookie: c=" + "x" * cookie_len + "\r\n"
    s.sendall((req + "\r\n").encode())
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    return data


def _ws_broker(h, conf=""):
    port = mqtt_test.free_port()
    b = h.broker("listener %d 127.0.0.1\nprotocol websockets\n%s" % (port, conf))
    deadline = time.monotonic() + 3  # the harness waits for the first listener only
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return b, port
        except OSError:
            if time.monotonic() > deadline:
                fail("WebSockets listener %d not accepting" % port)
            time.sleep(0.05)


def _upgraded(resp):
    return resp.startswith(b"HTTP/1.1 101") and b"sec-websocket-protocol: mqtt" in resp.lower()


def test_websockets_headers_size_v5_MQTT_6_0_0_4(h):
    # libwebsockets' HTTP header buffer (info.max_http_header_data, as mosquitto sets it): an
    # upgrade whose headers do not fit is refused; 0 / unset keeps lws's own default (4096 in 4.1).
    _, small = _ws_broker(h, "websockets_headers_size 512\n")
    check(_upgraded(_ws_handshake(small, 300)), "300-byte cookie refused with a 512-byte buffer")
    check(not _upgraded(_ws_handshake(small, 600)), "600-byte cookie accepted with a 512-byte buffer")
    _, dflt = _ws_broker(h)
    check(_upgraded(_ws_handshake(dflt, 2000)), "2000-byte cookie refused with the default buffer")
    check(not _upgraded(_ws_handshake(dflt, 5000)), "5000-byte cookie accepted with the default buffer")
    _, big = _ws_broker(h, "websockets_headers_size 8192\n")
    check(_upgraded(_ws_handshake(big, 5000)), "5000-byte cookie refused with an 8192-byte buffer")


def test_websockets_log_level_lines_in_the_log(h):
    # The lws bitmask (4 = LLL_NOTICE) is passed to lws_set_log_level; its lines go to the log
    # as type websockets (the harness runs with -v). Unset: lws says nothing.
    b, _ = _ws_broker(h, "websockets_log_level 4\n")
    q, _ = _ws_broker(h)
    time.sleep(0.3)
    b.stop()
    q.stop()
    check(re.search(r"LWS: .*loglevel 4", b.log()), "no lws notice in the log:\n" + b.log_tail())
    check("LWS:" not in q.log(), "lws lines without websockets_log_level:\n" + q.log_tail())


# ---------------------------------------------------------------------------------------------
# log_facility: the syslog facility, seen on a private /dev/log (mount namespace)


def _syslog_broker(h, conf):
    """Start a broker whose /dev/log is a datagram socket of ours (unshare -m, tmpfs /dev).
    Returns (broker, socket)."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/unshare"):
        h.skip("needs root and unshare(1) for a private /dev/log")
    sock_path = os.path.join(h.dir, "devlog%d" % len(h._brokers))
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(sock_path)
    os.chmod(sock_path, 0o666)  # the broker drops to user mosquitto
    olddev = os.path.join(h.dir, "olddev")
    os.makedirs(olddev, exist_ok=True)
    wrapper = h.file("in-private-dev.sh",
                     "#!/bin/sh\nset -e\nmount --bind /dev %s\nmount -t tmpfs -o mode=755 tmpfs /dev\n"
                     "for f in null zero random urandom; do ln -s %s/$f /dev/$f; done\n"
                     "ln -s %s /dev/log\nexec \"$@\"\n" % (olddev, olddev, sock_path), mode=0o755)
    probe = subprocess.run(["/usr/bin/unshare", "-m", "--propagation", "private", wrapper, "/bin/true"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=5)
    if probe.returncode != 0:  # e.g. a container without CAP_SYS_ADMIN
        h.skip("cannot make a private /dev: %s" % probe.stdout.decode("utf-8", "replace").strip())
    real = mqtt_test.broker_bin()
    runner = h.file("run-broker-%d.sh" % len(h._brokers),
                    "#!/bin/sh\nexec /usr/bin/unshare -m --propagation private %s %s \"$@\"\n"
                    % (wrapper, real), mode=0o755)
    saved = mqtt_test.broker_bin
    mqtt_test.broker_bin = lambda: runner
    try:
        b = h.broker("log_dest syslog\n" + conf)
    finally:
        mqtt_test.broker_bin = saved
    return b, srv


def _facilities(h, b, srv):
    """Connect once (a log line), stop, and return the set of facilities seen in the datagrams."""
    h.connect(b, "syslogged").disconnect()
    time.sleep(0.2)
    b.stop()
    srv.settimeout(0.5)
    fac = set()
    while True:
        try:
            d = srv.recv(65536)
        except socket.timeout:
            break
        m = re.match(rb"<(\d+)>", d)
        check(m, "not a syslog datagram: %r" % d[:60])
        fac.add(int(m.group(1)) >> 3)
    srv.close()
    check(fac, "no syslog datagram received")
    return fac


@timeout(20)
def test_log_facility_local_n(h):
    # log_facility N selects localN (16 + N), as mosquitto; without it the facility is daemon (3).
    for conf, want in (("log_facility 5\n", 21), ("log_facility 0\n", 16), ("", 3)):
        b, srv = _syslog_broker(h, conf)
        check_eq(_facilities(h, b, srv), {want}, "facilities with %r" % conf)


def test_log_facility_out_of_range_refused(h):
    path = h.file("bad.conf", "listener %d 127.0.0.1\nlog_facility 8\n" % mqtt_test.free_port())
    try:
        r = subprocess.run([mqtt_test.broker_bin(), "-c", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=h.dir, timeout=5)
    except subprocess.TimeoutExpired:
        fail("broker still running with log_facility 8")
    check(r.returncode != 0, "log_facility 8 accepted:\n" + r.stdout.decode("utf-8", "replace"))
