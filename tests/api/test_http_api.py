#!/usr/bin/python3
"""The HTTP API (issue 10) over real sockets: `listener N` + `protocol http_api`.

Checked: every endpoint (/, /api/v1/health, /metrics, /api/v1/clients, /api/v1/systree,
/api/v1/events), 404 and 405; the metrics body parsed strictly (every line) and its counters moving
with traffic, a keepalive timeout (v311 MQTT-3.1.2-24: closed after 1.5 x keepalive), a will
(v311 MQTT-3.1.2-8) and a socket that never sends CONNECT; the clients' countdowns against their
known keepalives; pagination; Basic auth on (401 + WWW-Authenticate: Basic) and off; malformed and
oversized requests, with MQTT service unaffected; HTTPS.
"""
import os
import signal
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
from apitest import check, mt  # noqa: E402


def t_endpoints_and_status_codes(h):
    b, hp = at.broker(h, "sys_interval 1\n")
    r = at.get(hp, "/api/v1/health")
    check(r.status == 200 and r.header("content-type").startswith("application/json"), "health: %d" % r.status)
    check(r.json()["status"] == "ok", "health body %r" % r.body)
    r = at.get(hp, "/")
    check(r.status == 200 and r.header("content-type").startswith("text/html"), "/: %d" % r.status)
    check(b"/api/v1/clients" in r.body and b"<script>" in r.body, "status page does not poll the API")
    time.sleep(1.2)  # one $SYS period
    r = at.get(hp, "/api/v1/systree")
    tree = r.json()
    check(r.status == 200 and isinstance(tree, dict), "systree: %d" % r.status)
    check(tree.get("$SYS/broker/version", "").startswith("vigil"), "systree lacks $SYS/broker/version: %r"
          % list(tree)[:5])
    check(all(k.startswith("$SYS/") for k in tree), "systree holds a non-$SYS topic")
    # the retained $SYS values are those an MQTT subscriber gets
    c = h.connect(b.port, "sys-reader")
    c.subscribe("$SYS/broker/version")
    p = c.expect_publish("$SYS/broker/version", tree["$SYS/broker/version"], retain=True)
    check(p, "no $SYS publish")
    check(at.get(hp, "/api/v1/events").json() == [], "events of a fresh broker")
    for path in ("/nope", "/api/v1", "/api/v1/clients/x", "/metrics/", "/../etc/passwd"):
        r = at.get(hp, path)
        check(r.status == 404, "%s: %d, want 404" % (path, r.status))
    for m in ("POST", "PUT", "DELETE"):
        r = at.get(hp, "/metrics", method=m, extra=b"Content-Length: 3\r\n" if m != "DELETE" else b"")
        check(r.status == 405 and r.header("allow") == "GET, HEAD", "%s /metrics: %d allow=%r"
              % (m, r.status, r.header("allow")))
    _head_is_the_get_head(hp)
    print("  endpoints, 404 x5, 405 x3, HEAD = GET's head, systree = $SYS retained values")


def _head_is_the_get_head(hp):
    """RFC 9110 9.3.2: HEAD gets the status and headers GET would get, and no content; a HEAD with
    a Content-Length keeps the HTTP/1.1 connection for the next request."""
    def read_until(s, done):
        buf, deadline = b"", time.monotonic() + 5
        while not done(buf) and time.monotonic() < deadline:
            d = s.recv(65536)
            if not d:
                break
            buf += d
        return buf

    g = at.get(hp, "/api/v1/health")
    s = at.connect_http(hp)
    try:
        s.sendall(b"HEAD /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        head, _, rest = read_until(s, lambda b: b"\r\n\r\n" in b).partition(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200"), "HEAD /api/v1/health: %r" % head[:40])
        hl = head.lower()
        check(b"content-type: application/json" in hl, "HEAD: content-type missing: %r" % head)
        check(("content-length: %d" % len(g.body)).encode() in hl,
              "HEAD: Content-Length is not GET's (%d): %r" % (len(g.body), head))
        s.settimeout(0.3)
        try:
            extra = s.recv(65536)
        except socket.timeout:
            extra = b""
        check(rest + extra == b"", "HEAD answered with content: %r" % (rest + extra)[:60])
        s.settimeout(5)
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        buf = read_until(s, at._complete)
        r = at.parse_response(buf)
        check(r.status == 200 and r.json()["status"] == "ok", "GET after HEAD on one connection: %r" % buf[:60])
    finally:
        s.close()


def t_metrics_move_with_traffic_timeouts_and_wills(h):
    b, hp = at.broker(h, "connect_timeout 1\n")
    m0, fams = at.metrics(hp)
    for k in at.REQUIRED:
        check(m0[k] is not None, "%s has no unlabelled sample" % k)
    check(m0["vigil_clients_connected"] == 0 and m0["vigil_keepalive_timeouts_total"] == 0, "fresh: %r" % m0)
    http_series = [v for k, v in fams["vigil_listener_connections"]["samples"].items() if 'protocol="http_api"' in k]
    # the scrape itself (and perhaps the start-up probe, until its EOF is seen)
    check(len(http_series) == 1 and 1 <= http_series[0] <= 2,
          "the http_api listener's connections while scraping: %r" % http_series)
    sub = h.connect(b.port, "m-sub")
    sub.subscribe("m/#")
    pub = h.connect(b.port, "m-pub")
    for i in range(3):
        pub.publish("m/t", b"x" * 10)
        sub.expect_publish("m/t", b"x" * 10)
    m1, _ = at.metrics(hp)
    check(m1["vigil_clients_connected"] == 2, "connected %r, want 2" % m1["vigil_clients_connected"])
    check(m1["vigil_sessions"] == 2 and m1["vigil_subscriptions"] == 1, "sessions/subs %r" % m1)
    check(m1["vigil_messages_received_total"] == m0["vigil_messages_received_total"] + 3, "received %r" % m1)
    check(m1["vigil_messages_sent_total"] == m0["vigil_messages_sent_total"] + 3, "sent %r" % m1)
    check(m1["vigil_bytes_received_total"] > m0["vigil_bytes_received_total"] + 3 * 15, "bytes in")
    check(m1["vigil_bytes_sent_total"] > m0["vigil_bytes_sent_total"] + 3 * 15, "bytes out")
    check(m1["vigil_uptime_seconds"] >= m0["vigil_uptime_seconds"], "uptime went back")
    # a retained message
    pub.publish("m/r", b"kept", retain=True)
    sub.expect_publish("m/r", b"kept")
    # one keepalive timeout with a will (keepalive 1 s: closed after 1.5 s of silence),
    # one socket that never sends CONNECT (connect_timeout 1)
    h.connect(b.port, "m-silent", keepalive=1, will=dict(topic="m/will", payload=b"gone"))
    raw = socket.create_connection(("127.0.0.1", b.port))
    sub.expect_publish("m/will", b"gone", timeout=4.0)
    raw.settimeout(3.0)
    try:
        check(raw.recv(1) == b"", "the socket without CONNECT was not closed")
    except ConnectionResetError:
        pass  # closed abortively: also a close
    raw.close()
    m2, fams2 = at.metrics(hp)
    check(m2["vigil_keepalive_timeouts_total"] == 1, "keepalive timeouts %r" % m2["vigil_keepalive_timeouts_total"])
    check(m2["vigil_wills_published_total"] == 1, "wills %r" % m2["vigil_wills_published_total"])
    check(m2["vigil_connect_timeouts_total"] == 1, "connect timeouts %r" % m2["vigil_connect_timeouts_total"])
    check(m2["vigil_clients_connected"] == 2, "connected after the timeout %r" % m2["vigil_clients_connected"])
    check(m2["vigil_retained_messages"] == m1["vigil_retained_messages"] + 1, "retained %r" % m2)
    ev = at.get(hp, "/api/v1/events").json()
    check([e["type"] for e in ev] == ["will", "keepalive_timeout"], "events %r" % ev)
    check(ev[1]["client_id"] == "m-silent" and ev[1]["keepalive"] == 1 and 1500 <= ev[1]["silent_ms"] < 2500,
          "timeout event %r" % ev[1])
    check(ev[0]["client_id"] == "m-silent" and ev[0]["topic"] == "m/will", "will event %r" % ev[0])
    print("  %d families parsed strictly; counters moved: +3 msgs, 1 keepalive timeout, 1 will, "
          "1 CONNECT timeout" % len(fams2))


def t_bridge_metrics_per_bridge(h):
    """Each bridge's state and counters in /metrics, labelled bridge="NAME" (the figures of
    $SYS/broker/vigil/bridge/NAME/): up 1 with the remote there, messages sent count, up 0 and a
    disconnect when the remote goes away, messages queued meanwhile."""
    remote = h.broker("", name="remote")
    b, hp = at.broker(h, "connection edge\naddress 127.0.0.1:%d\ntopic br/# out 1\n"
                         "cleansession false\nrestart_timeout 30\nkeepalive_interval 5\n" % remote.port)

    def fam(name):
        _, fams = at.metrics(hp)
        check(name in fams, "family %s missing" % name)
        return fams[name]["samples"]

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and fam("vigil_bridge_up").get(
            '{bridge="edge",state="connected",address="127.0.0.1:%d"}' % remote.port) != 1:
        time.sleep(0.05)
    up = fam("vigil_bridge_up")
    check(up == {'{bridge="edge",state="connected",address="127.0.0.1:%d"}' % remote.port: 1.0},
          "vigil_bridge_up once connected: %r" % up)
    check(fam("vigil_bridge_connects_total") == {'{bridge="edge"}': 1.0}, "one connect")
    rsub = h.connect(remote.port, "r-sub")
    rsub.subscribe([("br/#", 1)])
    pub = h.connect(b.port, "br-pub")
    for i in range(3):
        pub.publish("br/t", b"m%d" % i, qos=1)
        rsub.expect_publish("br/t", b"m%d" % i, qos=1)
    check(fam("vigil_bridge_messages_sent_total") == {'{bridge="edge"}': 3.0},
          "sent: %r" % fam("vigil_bridge_messages_sent_total"))
    remote.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and fam("vigil_bridge_disconnects_total") != {'{bridge="edge"}': 1.0}:
        time.sleep(0.05)
    check(fam("vigil_bridge_disconnects_total") == {'{bridge="edge"}': 1.0}, "one disconnect")
    up = fam("vigil_bridge_up")
    check(len(up) == 1 and list(up.values()) == [0.0] and 'bridge="edge"' in list(up)[0]
          and 'state="connected"' not in list(up)[0], "vigil_bridge_up after the remote left: %r" % up)
    for i in range(2):
        pub.publish("br/t", b"q%d" % i, qos=1)
    check(fam("vigil_bridge_messages_queued") == {'{bridge="edge"}': 2.0},
          "queued while down: %r" % fam("vigil_bridge_messages_queued"))


def t_clients_countdowns_and_pagination(h):
    b, hp = at.broker(h)
    # known keepalives and protocol versions; one with a will, one with a user name, one clean=False
    spec = [("c-k10", 4, 10, True, None, True), ("c-k20", 5, 20, False, "alice", True),
            ("c-k0", 3, 0, False, None, True), ("c-k7", 4, 7, False, None, False)]
    for cid, proto, ka, will, user, clean in spec:
        h.connect(b.port, cid, proto=proto, keepalive=ka, clean=clean, username=user,
                  will=dict(topic="w/" + cid, payload=b"x") if will else None)
    time.sleep(0.3)
    r = at.get(hp, "/api/v1/clients")
    check(r.status == 200 and r.header("x-total-count") == "4", "clients: %d total=%r"
          % (r.status, r.header("x-total-count")))
    rows = {c["client_id"]: c for c in r.json()}
    check(sorted(rows) == sorted(s[0] for s in spec), "client ids %r" % sorted(rows))
    for cid, proto, ka, will, user, clean in spec:
        c = rows[cid]
        for f in ("client_id", "address", "protocol_version", "keepalive", "last_packet_ms_ago",
                  "expires_in_ms", "will", "username", "clean"):
            check(f in c, "%s lacks %s" % (cid, f))
        host, _, port = c["address"].rpartition(":")
        check(host == "127.0.0.1" and port.isdigit(), "address %r" % c["address"])
        check(c["protocol_version"] == proto and c["keepalive"] == ka, "%s: %r" % (cid, c))
        check(c["will"] is will and c["username"] == user and c["clean"] is clean, "%s: %r" % (cid, c))
        check(250 <= c["last_packet_ms_ago"] < 2000, "%s last_packet_ms_ago %r" % (cid, c["last_packet_ms_ago"]))
        if ka == 0:
            check(c["expires_in_ms"] is None, "keepalive 0 must have expires_in_ms null: %r" % c)
        else:
            # deadline = last packet + 1.5 x keepalive
            want = ka * 1500 - c["last_packet_ms_ago"]
            check(abs(c["expires_in_ms"] - want) <= 2, "%s expires_in_ms %r, want ~%r" % (cid, c["expires_in_ms"], want))
    # the countdown runs: later it is smaller by the time that passed
    e1 = rows["c-k20"]["expires_in_ms"]
    time.sleep(0.5)
    e2 = {c["client_id"]: c for c in at.get(hp, "/api/v1/clients").json()}["c-k20"]["expires_in_ms"]
    check(300 <= e1 - e2 <= 1500, "countdown moved by %d ms in 0.5 s" % (e1 - e2))
    # pagination: pages of 3 cover 10 clients exactly once
    for i in range(6):
        h.connect(b.port, "p-%d" % i)
    seen = []
    for off in range(0, 12, 3):
        page = at.get(hp, "/api/v1/clients?limit=3&offset=%d" % off).json()
        check(len(page) == (3 if off < 9 else 1), "page at %d has %d rows" % (off, len(page)))
        seen += [c["client_id"] for c in page]
    check(len(seen) == 10 and len(set(seen)) == 10, "pages cover %r" % seen)
    check(at.get(hp, "/api/v1/clients?offset=10").json() == [], "past the end")
    check(len(at.get(hp, "/api/v1/clients?limit=0").json()) == 0, "limit=0")
    for bad in ("limit=-1", "limit=abc", "offset=1x", "limit="):
        r = at.get(hp, "/api/v1/clients?" + bad)
        check(r.status == 400, "%s: %d, want 400" % (bad, r.status))
    print("  4 clients' fields and countdowns (+-2 ms of 1.5 x keepalive - silence); 4 pages; 400 x4")


def t_clients_stream_survives_clients_leaving(h):
    # A listing streamed to a slow reader while clients leave: valid JSON, no client twice, and
    # every client connected for the whole answer in it exactly once (the cursor moves past the
    # clients that leave; under the sanitizer build this is also a use-after-free check).
    b, hp = at.broker(h)
    # ~840 KB of JSON: more than net/http.c's 256 KiB send buffer + lws's slice, so the cursor is
    # inside the band of clients that leave (the oldest 700; the listing is newest first) and is
    # moved on repeatedly
    n, gone = 1000, 700
    pad = "z" * 600
    cs = [h.connect(b.port, "s-%04d-%s" % (i, pad)) for i in range(n)]
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", hp))
    s.settimeout(5)
    s.sendall(b"GET /api/v1/clients HTTP/1.1\r\nHost: x\r\n\r\n")
    got = s.recv(8192)
    time.sleep(0.1)
    for c in cs[:gone]:  # the oldest: listed last (newest connection first)
        c.close()
    time.sleep(0.3)
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    r = at.parse_response(got)
    ids = [c["client_id"] for c in r.json()]
    check(len(ids) == len(set(ids)), "a client listed twice")
    stayed = {"s-%04d-%s" % (i, pad) for i in range(gone, n)}
    check(stayed <= set(ids), "%d clients connected throughout are missing" % len(stayed - set(ids)))
    check(len(ids) < n, "none of the %d clients that left was skipped (%d listed)" % (gone, len(ids)))
    check(at.get(hp, "/api/v1/clients").header("x-total-count") == str(n - gone), "total after")
    print("  %d-client listing to a slow reader while %d left: %d listed, no duplicate, all %d stayers"
          % (n, gone, len(ids), len(stayed)))


def t_basic_auth(h):
    pw = os.path.join(h.dir, "passwd")
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "ops", "s3cret"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b, hp = at.broker(h, "password_file %s\nallow_anonymous false\n" % pw, anon=False)
    for path in ("/metrics", "/api/v1/clients", "/", "/nope"):
        r = at.get(hp, path)
        check(r.status == 401 and r.header("www-authenticate", ).startswith("Basic"),
              "%s without credentials: %d %r" % (path, r.status, r.header("www-authenticate")))
    for cred in (("ops", "wrong"), ("nobody", "s3cret"), ("ops", ""), ("", "s3cret")):
        r = at.get(hp, "/metrics", auth=cred)
        check(r.status == 401, "credentials %r: %d" % (cred, r.status))
    r = at.get(hp, "/metrics", method="GET", extra=b"Authorization: Bearer abc\r\n")
    check(r.status == 401, "Bearer: %d" % r.status)
    m, _ = at.metrics(hp, auth=("ops", "s3cret"))
    check(at.get(hp, "/api/v1/health", auth=("ops", "s3cret")).status == 200, "health with credentials")
    check(at.get(hp, "/nope", auth=("ops", "s3cret")).status == 404, "404 with credentials")
    # the same credentials over MQTT
    h.connect(b.port, "auth-ok", username="ops", password="s3cret")
    # SIGHUP reloads the password file for HTTP as for MQTT
    os.unlink(pw)
    subprocess.run(["mosquitto_passwd", "-c", "-b", pw, "ops2", "n3w"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while at.get(hp, "/metrics", auth=("ops2", "n3w")).status != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    check(at.get(hp, "/metrics", auth=("ops2", "n3w")).status == 200, "new user after SIGHUP")
    check(at.get(hp, "/metrics", auth=("ops", "s3cret")).status == 401, "removed user after SIGHUP")
    b2, hp2 = at.broker(h, "password_file %s\nallow_anonymous true\n" % pw, name="open")
    check(at.get(hp2, "/metrics").status == 200, "password_file with allow_anonymous true must stay open")
    print("  401 + WWW-Authenticate: Basic for 4 paths, 4 wrong credentials, Bearer; 200 with the "
          "mosquitto_passwd user; open when anonymous is allowed")


def t_malformed_and_oversized_requests_leave_mqtt_alone(h):
    b, hp = at.broker(h)
    sub = h.connect(b.port, "mal-sub")
    sub.subscribe("mal/#")
    pub = h.connect(b.port, "mal-pub")
    bad = [b"\x00\x01\x02\x03garbage\r\n\r\n",
           b"GET\r\n\r\n",
           b"GET /metrics HTTP/9.9\r\n\r\n",
           b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n",
           b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
           b"GET /metrics HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(2000)) + b"\r\n",
           b"GET /metrics HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
           b"\r\n" * 5000,
           b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
           b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
           b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]
    for i, data in enumerate(bad):
        try:
            raw = at.raw_request(hp, data, timeout=3.0)
        except (ConnectionResetError, BrokenPipeError):
            raw = b""
        if raw:
            r = at.parse_response(raw)
            check(400 <= r.status < 500 or (i == 2 and r.status in (200, 505)),
                  "malformed request %d answered %d" % (i, r.status))
        pub.publish("mal/t", b"%d" % i)
        sub.expect_publish("mal/t", b"%d" % i)
    # a head that never ends is dropped by lws's timeout; meanwhile others are served
    slow = socket.create_connection(("127.0.0.1", hp))
    slow.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
    check(at.get(hp, "/api/v1/health").status == 200, "health while a head is pending")
    # many connections at once
    socks = [socket.create_connection(("127.0.0.1", hp)) for _ in range(50)]
    for s in socks:
        s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    for s in socks:
        s.settimeout(5)
        check(s.recv(12).startswith(b"HTTP/1.1 200"), "parallel health")
        s.close()
    slow.close()
    # a client that reads nothing of a large answer does not hold the loop
    for i in range(300):
        h.connect(b.port, "fill-%03d-%s" % (i, "x" * 200))
    hog = socket.create_connection(("127.0.0.1", hp))
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hog.sendall(b"GET /api/v1/clients HTTP/1.1\r\nHost: x\r\n\r\n")
    t0 = time.monotonic()
    pub.publish("mal/after", b"ok")
    sub.expect_publish("mal/after", b"ok")
    check(time.monotonic() - t0 < 1.0, "MQTT slowed by a stalled HTTP reader")
    hog.close()
    check(mt.Broker.alive(b), "broker died")
    m, _ = at.metrics(hp)
    check(m["vigil_clients_connected"] == 302, "connected %r" % m["vigil_clients_connected"])
    print("  %d malformed/oversized requests -> 4xx or close; MQTT round trip after each; slow head, "
          "50 parallel, stalled reader" % len(bad))


def t_http_max_connections(h):
    # max_connections on an http_api listener bounds its open connections (more are closed at
    # accept), so HTTP cannot take the fds MQTT needs; MQTT is not affected.
    b, hp = at.broker(h, http_extra="max_connections 3\n")
    time.sleep(0.3)  # the start-up probe's connection must be gone: it counts until its EOF is seen
    idle = [socket.create_connection(("127.0.0.1", hp)) for _ in range(3)]
    time.sleep(0.2)
    extra = socket.create_connection(("127.0.0.1", hp))
    extra.settimeout(3)
    try:
        extra.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        got = extra.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        got = b""
    check(got == b"", "a 4th connection was served: %r" % got[:40])
    h.connect(b.port, "mc-mqtt")
    idle[0].close()
    time.sleep(0.2)
    check(at.get(hp, "/api/v1/health").status == 200, "served again once one closed")
    for s in idle[1:]:
        s.close()
    print("  max_connections 3: 4th closed unanswered; served again after one closed")


def _certs(h):
    key, cert = os.path.join(h.dir, "key.pem"), os.path.join(h.dir, "cert.pem")
    subprocess.run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
                   "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout %s -out %s" % (key, cert),
                   shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return key, cert


def t_https(h):
    key, cert = _certs(h)
    b, hp = at.broker(h, http_extra="certfile %s\nkeyfile %s\n" % (cert, key))
    ctx = ssl.create_default_context(cafile=cert)
    h.connect(b.port, "tls-seen", keepalive=30)
    r = at.get(hp, "/api/v1/clients", tls=ctx)
    check(r.status == 200 and [c["client_id"] for c in r.json()] == ["tls-seen"], "https clients %r" % r.body)
    m, _ = at.metrics(hp, tls=ctx)
    check(m["vigil_clients_connected"] == 1, "https metrics")
    # plain HTTP on the HTTPS port is not answered as HTTP
    raw = at.raw_request(hp, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", timeout=3.0)
    check(not raw.startswith(b"HTTP/1.1 200"), "plain HTTP answered on the HTTPS listener")
    print("  HTTPS with the listener's certfile/keyfile: clients, metrics; plain HTTP refused")


if __name__ == "__main__":
    sys.exit(at.run(globals(), "tests/api/test_http_api.py"))
