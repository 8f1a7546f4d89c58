#!/usr/bin/python3
"""Peers that vanish visibly (FIN, RST) and sockets that never become MQTT sessions.

- A client that closes (FIN) or resets (RST) its connection without DISCONNECT has its will
  published at once: within 50 ms at an observer (v311 MQTT-3.1.2-8, v5 MQTT-3.1.2-8).
- A socket that never sends CONNECT, stalls inside CONNECT, or inside a TLS handshake is closed
  connect_timeout seconds after it was accepted, never before (vigil option; MQTT 3.1.1 and 5.0
  section 3.1 say only "within a reasonable amount of time", SHOULD, no statement number).
Half-open peers (nothing arrives at all) are in test_halfopen.py.
mqtt-spec: both
"""
import os
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402
from live import check, connect, note, vigil_only, timeout  # noqa: E402
import mqtt_test as mt  # noqa: E402

WILL_BOUND = 0.050  # the issue: will published within 50 ms of a FIN or RST


def _vanish(t, how):
    b = t.broker()
    obs = live.observer(t, b, ["dp/will/#"])
    lines = []
    for proto in (4, 5):
        cid = "dp-%s-v%d" % (how, proto)
        c = t.connect(b.port, cid, proto=proto, keepalive=60,
                      will={"topic": "dp/will/" + cid, "payload": how})
        time.sleep(0.05)
        t0 = time.monotonic()
        if how == "FIN":
            c.close()
        else:
            c.reset()
        got = live.wait_publishes(obs, 1, 2.0)
        check(got, "%s: no will within 2 s of the %s" % (cid, how))
        p = got[0]
        check(p["topic"] == "dp/will/" + cid and p["payload"] == how.encode(),
              "%s: unexpected will %r" % (cid, p))
        dt = p["t"] - t0
        lines.append("v%d %.1f ms" % (proto, dt * 1000))
        check(dt <= WILL_BOUND, "%s: will arrived %.1f ms after the %s, bound %.0f ms"
              % (cid, dt * 1000, how, WILL_BOUND * 1000))
    extra = live.wait_publishes(obs, 1, 0.3)
    check(not extra, "a will arrived twice: %r" % extra)
    note(t, "will after %s: %s" % (how, ", ".join(lines)))


@timeout(15)
def test_will_on_fin_v311_MQTT_3_1_2_8_v5_MQTT_3_1_2_8(t):
    # v311 MQTT-3.1.2-8 / v5 MQTT-3.1.2-8: the connection closed without DISCONNECT (FIN): the
    # will is published, within 50 ms, exactly once.
    _vanish(t, "FIN")


@timeout(15)
def test_will_on_rst_v311_MQTT_3_1_2_8_v5_MQTT_3_1_2_8(t):
    # v311 MQTT-3.1.2-8 / v5 MQTT-3.1.2-8: the connection reset (SO_LINGER {1,0} then close, so
    # the broker reads ECONNRESET): the will is published, within 50 ms, exactly once.
    _vanish(t, "RST")


def _client_hello():
    """The first flight of a TLS client (a ClientHello record), made without a network."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = out.read()
    check(len(data) > 40 and data[0] == 0x16, "could not build a ClientHello")
    return data


def _make_cert(d):
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", crt,
                        "-days", "2", "-subj", "/CN=localhost"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(r.returncode == 0, "openssl req failed: %s" % r.stderr.decode(errors="replace"))
    os.chmod(key, 0o644)
    return key, crt


@vigil_only("connect_timeout is a vigil option")
@timeout(20)
def test_connect_timeout_plain_and_tls(t):
    # A socket must become an MQTT session within connect_timeout (2 s here): closed after it,
    # never before, whether it sent nothing, half a CONNECT, nothing on a TLS listener, or half a
    # ClientHello. A control socket that completes CONNECT at 1.5 s is not touched.
    # (MQTT 3.1.1 / 5.0 section 3.1: SHOULD close "within a reasonable amount of time"; no number.)
    # Upper bound: 0.5 s (the contract is "after connect_timeout"; this only checks "about").
    key, crt = _make_cert(t.dir)
    b = t.broker("connect_timeout 2\nlistener {port2} 127.0.0.1\ncertfile %s\nkeyfile %s\n"
                 % (crt, key))
    hello = _client_hello()
    cases = [("plain-nothing", b.port, b""),
             ("plain-half-connect", b.port, connect("dp-half", keepalive=60)[:9]),
             ("tls-nothing", b.port2, b""),
             ("tls-half-hello", b.port2, hello[:len(hello) // 2])]
    fleet = live.Fleet(b.port)
    t.defer(fleet.close)
    peers = []
    for name, port, first in cases:
        s = socket.socket()
        t_start = time.monotonic()
        s.connect(("127.0.0.1", port))
        if first:
            s.sendall(first)
        c = mt.Client.__new__(mt.Client)  # adopt a bare socket (no CONNECT of its own)
        c.sock, c.buf, c.pending, c.proto, c.name = s, b"", [], 4, name
        peers.append(fleet.adopt(c, None, t_start))
    ctl = t.client(b.port, name="control")
    t_ctl = time.monotonic()
    fleet.watch(t_ctl + 1.5)
    ctl.send(connect("dp-control", keepalive=60))
    ctl.expect_type(mt.CONNACK)
    fleet.watch(time.monotonic() + 2.0)
    problems, lines = [], []
    for p in peers:
        if p.t_close is None:
            problems.append("%s: still open %.1f s after connecting" % (p.cid, 3.5))
            continue
        d = p.t_close - p.t_last
        lines.append("%s %.3f s" % (p.cid, d))
        if d < 2.0 - live.EARLY_TOL:
            problems.append("%s: closed EARLY, %.3f s after connecting (connect_timeout 2)"
                            % (p.cid, d))
        elif d > 2.5:
            problems.append("%s: closed %.3f s after connecting (connect_timeout 2)" % (p.cid, d))
        elif p.buf and not p.cid.startswith("tls"):
            problems.append("%s: got bytes %s before the close" % (p.cid, mt.hexs(bytes(p.buf))))
    note(t, "closed after: " + ", ".join(lines))
    check(not problems, live.summarize(problems))
    check(ctl.is_open(0.05), "control client (CONNECT at 1.5 s) was closed")


if __name__ == "__main__":
    sys.exit(live.main(globals()))
