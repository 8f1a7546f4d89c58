#!/usr/bin/python3
"""MQTT over WebSockets against the real broker: Paho (transport="websockets"), a raw
WebSocket client, and MQTT.js in Debian's headless Chromium.

What it does: starts VIGIL_BIN (default <repo>/vigil) with `listener PORT 127.0.0.1` +
`protocol websockets` (and a wss listener with a generated certificate), then:
  - paho 1.6.1 MQTTv311 and MQTTv5 over ws: subscribe, publish QoS 0/1/2, a payload spanning
    many frames; over wss: the same round trip, and require_certificate refusing a client
    without a certificate;
  - a raw client: a CONNECT split over frames and CONNECT+PINGREQ packed in one frame work
    (v5 MQTT-6.0.0-2); a text frame closes the connection (v5/v311 MQTT-6.0.0-1); the
    subprotocol chosen is "mqtt" (v5 MQTT-6.0.0-4);
  - browser: tests/interop/ws_browser/index.html served by a local http.server loads MQTT.js's
    browser bundle in headless Chromium, connects to ws://127.0.0.1:PORT, subscribes,
    publishes, writes the result into the DOM and posts it back to the server, v3.1.1
    ("mqtt" subprotocol) and v5.
Skips the browser case with "SKIP: ..." when chromium or ws_browser/node_modules is missing
(run tests/interop/ws_browser/setup.sh). Exit status 1 if any case failed.
What it deliberately does not: packet-level checks of MQTT itself (tests/broker does those).
Invariant: every wait is bounded; every process started here is stopped by its own pid.
Usage: test_websockets.py [-k SUBSTR]
"""
import base64
import hashlib
import http.server
import os
import queue
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import paho.mqtt.client as mqtt

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VIGIL = os.environ.get("VIGIL_BIN", os.path.join(REPO, "vigil"))
BROWSER_DIR = os.path.join(HERE, "ws_browser")


class Skip(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Broker:
    """vigil with one ws listener (and optionally one wss listener)."""

    def __init__(self, tmp, tls=None):
        self.port = free_port()
        conf = ["listener %d 127.0.0.1" % self.port, "protocol websockets", "allow_anonymous true"]
        self.tls_port = None
        if tls:
            self.tls_port = free_port()
            conf += ["listener %d 127.0.0.1" % self.tls_port, "protocol websockets",
                     "certfile " + tls["cert"], "keyfile " + tls["key"]]
            if tls.get("require"):
                conf += ["cafile " + tls["ca"], "require_certificate true"]
        self.conf = os.path.join(tmp, "vigil-%d.conf" % self.port)
        with open(self.conf, "w") as f:
            f.write("\n".join(conf) + "\n")
        self.log = open(os.path.join(tmp, "vigil-%d.log" % self.port), "w+")
        self.p = subprocess.Popen([VIGIL, "-c", self.conf], stdout=self.log, stderr=subprocess.STDOUT)
        for port in filter(None, [self.port, self.tls_port]):
            deadline = time.time() + 5
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline or self.p.poll() is not None:
                        self.stop()
                        raise AssertionError("vigil did not start: " + self.output())
                    time.sleep(0.05)

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.log.close()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


# ---- paho over ws / wss ------------------------------------------------------------------

class Paho:
    def __init__(self, port, cid, proto, tls=None):
        self.msgs = queue.Queue()
        self.connacks = queue.Queue()
        kw = {"client_id": cid, "protocol": proto, "transport": "websockets"}
        self.c = mqtt.Client(**kw)
        if tls:
            self.c.tls_set(**tls)
            self.c.tls_insecure_set(True)  # self-signed, CN=localhost vs 127.0.0.1
        self.c.on_connect = lambda c, u, f, rc, *a: self.connacks.put(rc)
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.connect("127.0.0.1", port, keepalive=20)
        self.c.loop_start()
        rc = self.connacks.get(timeout=5)
        check(rc == 0, "CONNACK rc %r" % (rc,))

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def roundtrip(port, proto, tls=None, big=300000):
    sub = Paho(port, "ws-sub", proto, tls)
    pub = Paho(port, "ws-pub", proto, tls)
    try:
        r = sub.c.subscribe("ws/t/#", 2)
        check(r[0] == 0, "subscribe %r" % (r,))
        time.sleep(0.2)
        sent = []
        for q in (0, 1, 2):
            payload = ("q%d-" % q).encode() + bytes(range(256))
            pub.c.publish("ws/t/%d" % q, payload, qos=q).wait_for_publish()
            sent.append(("ws/t/%d" % q, payload))
        payload = bytes((i * 7) & 0xFF for i in range(big))  # spans many WS frames
        pub.c.publish("ws/t/big", payload, qos=1).wait_for_publish()
        sent.append(("ws/t/big", payload))
        got = {}
        for _ in sent:
            m = sub.msgs.get(timeout=10)
            got[m.topic] = m.payload
        for t, p in sent:
            check(got.get(t) == p, "payload mismatch on %s (%d vs %d bytes)" % (
                t, len(got.get(t) or b""), len(p)))
    finally:
        sub.stop()
        pub.stop()


def t_paho_v311(h):
    roundtrip(h.broker.port, mqtt.MQTTv311)


def t_paho_v5(h):
    roundtrip(h.broker.port, mqtt.MQTTv5)


def t_paho_wss(h):
    roundtrip(h.tls_broker.tls_port, mqtt.MQTTv311,
              tls={"ca_certs": h.certs["cert"], "cert_reqs": ssl.CERT_NONE}, big=100000)


def t_wss_require_certificate(h):
    port = h.req_broker.tls_port
    ok = Paho(port, "ws-cert", mqtt.MQTTv311,
              tls={"ca_certs": h.certs["cert"], "cert_reqs": ssl.CERT_NONE,
                   "certfile": h.certs["ccert"], "keyfile": h.certs["ckey"]})
    ok.stop()
    refused = False
    try:
        Paho(port, "ws-nocert", mqtt.MQTTv311,
             tls={"ca_certs": h.certs["cert"], "cert_reqs": ssl.CERT_NONE}).stop()
    except (ssl.SSLError, OSError, queue.Empty, AssertionError):
        refused = True
    check(refused, "a client without a certificate was accepted")
    # a certificate from another CA (self-signed server cert as client cert) is refused too
    refused = False
    try:
        Paho(port, "ws-badcert", mqtt.MQTTv311,
             tls={"ca_certs": h.certs["cert"], "cert_reqs": ssl.CERT_NONE,
                  "certfile": h.certs["cert"], "keyfile": h.certs["key"]}).stop()
    except (ssl.SSLError, OSError, queue.Empty, AssertionError):
        refused = True
    check(refused, "a client certificate from an unknown CA was accepted")


# ---- raw WebSocket client ------------------------------------------------------------------

class RawWS:
    def __init__(self, port, proto="mqtt"):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: %s\r\n\r\n" % (key, proto))
        self.s.sendall(req.encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(4096)
            check(d, "closed during the upgrade")
            self.buf += d
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        check(self.head.startswith("HTTP/1.1 101"), "no 101: " + self.head)
        acc = base64.b64encode(hashlib.sha1(
            (key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        check(("sec-websocket-accept: " + acc.lower()) in self.head.lower(), "bad accept")

    def send(self, payload, opcode=2, fin=True):
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack("!Q", n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.s.sendall(hdr + mask + body)

    def recv_frame(self, timeout=5):
        """(opcode, payload) or None at EOF."""
        self.s.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, h = self.buf[1] & 0x7F, 2
                if n == 126 and len(self.buf) >= 4:
                    n, h = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127 and len(self.buf) >= 10:
                    n, h = struct.unpack("!Q", self.buf[2:10])[0], 10
                if n < 126 or h > 2:
                    if len(self.buf) >= h + n:
                        op, p = self.buf[0] & 0x0F, self.buf[h:h + n]
                        self.buf = self.buf[h + n:]
                        return op, p
            d = self.s.recv(65536)
            if not d:
                return None
            self.buf += d

    def close(self):
        self.s.close()


CONNECT_V311 = bytes([0x10, 0x0E, 0x00, 0x04]) + b"MQTT" + bytes([0x04, 0x02, 0x00, 0x3C,
                                                                    0x00, 0x02]) + b"rw"


def t_raw_split_and_packed(h):
    # v5 MQTT-6.0.0-2 / v311 MQTT-6.0.0-2: frames are not packet boundaries
    w = RawWS(h.broker.port)
    check("sec-websocket-protocol: mqtt" in w.head.lower(), "subprotocol not mqtt")  # v311 MQTT-6.0.0-4 / v5 MQTT-6.0.0-4
    w.send(CONNECT_V311[:5])
    time.sleep(0.05)
    w.send(CONNECT_V311[5:11])
    w.send(CONNECT_V311[11:] + bytes([0xC0, 0x00]))  # end of CONNECT + a PINGREQ, one frame
    stream = b""
    while len(stream) < 6:
        f = w.recv_frame()
        check(f is not None, "closed; got %r" % stream)
        check(f[0] in (0, 2), "non-binary frame %r" % (f,))  # v311 MQTT-6.0.0-1 / v5 MQTT-6.0.0-1 (server side)
        stream += f[1]
    check(stream[:4] == bytes([0x20, 0x02, 0x00, 0x00]), "CONNACK %r" % stream[:4])
    check(stream[4:6] == bytes([0xD0, 0x00]), "PINGRESP %r" % stream[4:6])
    w.close()


def t_raw_text_frame_closes(h):
    # v5 MQTT-6.0.0-1 / v311 MQTT-6.0.0-1: a text frame closes the network connection
    w = RawWS(h.broker.port)
    w.send(CONNECT_V311, opcode=1)
    frames = []
    while True:
        f = w.recv_frame(timeout=8)
        if f is None:
            break
        frames.append(f)
        check(f[0] != 2, "got a binary frame (CONNACK?) after a text frame: %r" % (f,))
        if f[0] == 8:
            w.send(f[1][:2], opcode=8)  # answer the close
    check(any(op == 8 for op, _ in frames), "no close frame before EOF: %r" % frames)
    w.close()


def t_raw_mqttv31_subprotocol(h):
    w = RawWS(h.broker.port, proto="mqttv3.1")
    check("sec-websocket-protocol: mqttv3.1" in w.head.lower(), "mqttv3.1 not echoed")
    w.close()


# ---- browser ---------------------------------------------------------------------------------

def find_chromium():
    for name in ("chromium", "chromium-browser"):
        p = shutil.which(name)
        if p:
            return p
    return None


def t_browser_mqttjs_v311(h):
    browser_case(h, 4)


def t_browser_mqttjs_v5(h):
    browser_case(h, 5)


def browser_case(h, version):
    chromium = find_chromium()
    bundle = os.path.join(BROWSER_DIR, "node_modules", "mqtt", "dist", "mqtt.min.js")
    if not chromium:
        raise Skip("chromium not installed (run tests/interop/ws_browser/setup.sh)")
    if not os.path.exists(bundle):
        raise Skip("ws_browser/node_modules missing (run tests/interop/ws_browser/setup.sh)")
    results = queue.Queue()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=BROWSER_DIR, **kw)

        def translate_path(self, path):
            if path.split("?")[0] == "/mqtt.min.js":
                return bundle
            return super().translate_path(path)

        def do_POST(self):
            n = int(self.headers.get("Content-Length", "0"))
            results.put(self.rfile.read(n).decode("utf-8", "replace"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    profile = tempfile.mkdtemp(prefix="vigil-chromium-")
    payload = "hello from the browser %d" % os.getpid()
    url = "http://localhost:%d/index.html?port=%d&topic=browser/t&payload=%s&v=%d" % (
        srv.server_address[1], h.broker.port, payload.replace(" ", "%20"), version)
    # Not --dump-dom: it exits at the load event, before the page's MQTT exchange ends. The
    # page posts its result (also written into its DOM) back to this server; then we stop it.
    p = subprocess.Popen([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                          "--no-first-run", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync",
                          "--user-data-dir=" + profile, "--remote-debugging-port=0", url],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        try:
            res = results.get(timeout=40)
        except queue.Empty:
            raise AssertionError("no result from the browser page within 40 s")
        check(res == "OK browser/t " + payload, "browser reported: " + res)
    finally:
        try:
            os.killpg(p.pid, signal.SIGTERM)  # the group this test created for chromium
        except ProcessLookupError:
            pass
        try:
            p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate(timeout=10)
        srv.shutdown()
        srv.server_close()
        shutil.rmtree(profile, ignore_errors=True)


# ---- runner ------------------------------------------------------------------------------------

def make_certs(tmp):
    c = {k: os.path.join(tmp, k + ".pem") for k in ("cert", "key", "ccert", "ckey")}
    cmd = ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
           "-subj /CN=localhost -keyout {key} -out {cert} && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
           "-subj /CN=wsclient -keyout {ckey} -out {ccert}").format(**c)
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    c["ca"] = c["ccert"]  # the client certificate is self-signed: it is its own CA
    return c


class H:
    pass


TESTS = [t_paho_v311, t_paho_v5, t_paho_wss, t_wss_require_certificate, t_raw_split_and_packed,
         t_raw_text_frame_closes, t_raw_mqttv31_subprotocol, t_browser_mqttjs_v311, t_browser_mqttjs_v5]


def main():
    only = sys.argv[2] if len(sys.argv) > 2 and sys.argv[1] == "-k" else None
    if not os.access(VIGIL, os.X_OK):
        print("SKIP: %s not built" % VIGIL)
        print("0 passed, 0 failed, %d skipped" % len(TESTS))
        return 0
    tmp = tempfile.mkdtemp(prefix="vigil-ws-")
    h = H()
    h.certs = make_certs(tmp)
    h.broker = Broker(tmp)
    h.tls_broker = Broker(tmp, tls=h.certs)
    h.req_broker = Broker(tmp, tls=dict(h.certs, require=True))
    passed = failed = skipped = 0
    try:
        for t in TESTS:
            if only and only not in t.__name__:
                continue
            try:
                t(h)
                print("PASS websockets %s" % t.__name__)
                passed += 1
            except Skip as e:
                print("SKIP: websockets %s: %s" % (t.__name__, e))
                skipped += 1
            except Exception:
                print("FAIL websockets %s\n%s" % (t.__name__, traceback.format_exc()))
                failed += 1
    finally:
        for b in (h.broker, h.tls_broker, h.req_broker):
            b.stop()
            out = open(b.log.name, errors="replace").read()
            if "Sanitizer" in out or "runtime error:" in out or b.p.returncode not in (0, -signal.SIGTERM, None):
                print("FAIL websockets broker exit (rc %r) %s" % (b.p.returncode, b.conf))
                failed += 1
        if failed:
            for b in (h.broker, h.tls_broker, h.req_broker):
                print("---- vigil log %s\n%s" % (b.conf, open(b.log.name).read()[-3000:]))
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
