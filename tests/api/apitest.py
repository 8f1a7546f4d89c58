"""Shared helpers for the HTTP API tests (tests/api/): a broker with a `protocol http_api` listener,
a small HTTP client over raw sockets (so that malformed requests can be sent too), a strict parser
of the Prometheus text format, and a runner that runs every t_* function of a module.

Deliberately not here: MQTT encoding (tests/broker/mqtt_test.py, imported) or any HTTP library that
would normalise what the broker sends.
"""
import base64
import json
import os
import re
import socket
import ssl
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "broker"))
import mqtt_test as mt  # noqa: E402
from mqtt_test import check, fail  # noqa: E402,F401


class Resp:
    def __init__(self, status, reason, headers, body):
        self.status, self.reason, self.headers, self.body = status, reason, headers, body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def text(self):
        return self.body.decode("utf-8")


def _read_chunked(data):
    out = b""
    while True:
        i = data.index(b"\r\n")
        n = int(data[:i].split(b";")[0], 16)
        data = data[i + 2:]
        if n == 0:
            return out
        out += data[:n]
        data = data[n + 2:]


def parse_response(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)$", lines[0])
    if not m:
        fail("not an HTTP status line: %r" % lines[0])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = _read_chunked(body)
    elif "content-length" in headers:
        n = int(headers["content-length"])
        check(len(body) >= n, "body shorter than Content-Length (%d < %d)" % (len(body), n))
        body = body[:n]
    return Resp(int(m.group(1)), m.group(2), headers, body)


def connect_http(port, tls=None, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        s = tls.wrap_socket(s, server_hostname="localhost")
    return s


def raw_request(port, data, tls=None, timeout=5.0):
    """Send data, read until the server closes or a complete response arrived."""
    s = connect_http(port, tls, timeout)
    try:
        s.sendall(data)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                d = s.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                break
            except socket.timeout:
                break
            if not d:
                break
            buf += d
            if _complete(buf):
                break
        return buf
    finally:
        s.close()


def _complete(buf):
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    h = head.lower()
    m = re.search(rb"\r\ncontent-length: *(\d+)", h)
    if m:
        return len(body) >= int(m.group(1))
    if b"transfer-encoding: chunked" in h:
        return body.endswith(b"0\r\n\r\n")
    return False  # ends with the close


def get(port, path, auth=None, tls=None, method="GET", extra=b""):
    req = "%s %s HTTP/1.1\r\nHost: localhost\r\n" % (method, path)
    if auth:
        req += "Authorization: Basic %s\r\n" % base64.b64encode(("%s:%s" % auth).encode()).decode()
    data = req.encode() + extra + b"\r\n"
    raw = raw_request(port, data, tls)
    if not raw:
        fail("%s %s: connection closed without an answer" % (method, path))
    return parse_response(raw)


def wait_http(port, timeout=5.0, tls=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connect_http(port, tls, 1.0).close()
            return
        except OSError:
            time.sleep(0.02)
    fail("HTTP listener on %d did not open" % port)


def broker(h, extra="", anon=True, http_extra="", name=None):
    """A broker with its MQTT listener and one http_api listener; returns (broker, http_port)."""
    hp = mt.free_port()
    conf = extra + "listener %d 127.0.0.1\nprotocol http_api\n%s" % (hp, http_extra)
    b = h.broker(conf, anon=anon, name=name)
    wait_http(hp, tls=None if "certfile" not in http_extra else _insecure())
    return b, hp


def _insecure():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


# ---- Prometheus text format 0.0.4, parsed strictly -------------------------------------------

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABELS = r'\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*"(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\["\\n])*")*)?\}'
SAMPLE = re.compile(r"^(%s)(%s)? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)$" % (NAME, LABELS))


def parse_metrics(text):
    """{family: {"type":..., "help":..., "samples": {labels_str: value}}}; fails on any line that
    is not a HELP, TYPE or sample line, a sample before its family's HELP and TYPE, a duplicate
    family or sample, a counter not ending in _total."""
    fams = {}
    check(text.endswith("\n"), "metrics body must end with a newline")
    for i, ln in enumerate(text.split("\n")[:-1], 1):
        if ln.startswith("# HELP "):
            m = re.match(r"^# HELP (%s) (.+)$" % NAME, ln)
            check(m, "line %d: bad HELP: %r" % (i, ln))
            check(m.group(1) not in fams, "line %d: family %s twice" % (i, m.group(1)))
            fams[m.group(1)] = {"help": m.group(2), "type": None, "samples": {}}
        elif ln.startswith("# TYPE "):
            m = re.match(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME, ln)
            check(m, "line %d: bad TYPE: %r" % (i, ln))
            f = fams.get(m.group(1))
            check(f is not None and f["type"] is None and not f["samples"],
                  "line %d: TYPE %s not right after its HELP" % (i, m.group(1)))
            f["type"] = m.group(2)
            if f["type"] == "counter":
                check(m.group(1).endswith("_total"), "counter %s must end in _total" % m.group(1))
        else:
            m = SAMPLE.match(ln)
            check(m, "line %d: not a sample line: %r" % (i, ln))
            f = fams.get(m.group(1))
            check(f is not None and f["type"], "line %d: sample %s before its HELP/TYPE" % (i, m.group(1)))
            key = m.group(2) or ""
            check(key not in f["samples"], "line %d: duplicate sample %r" % (i, ln))
            f["samples"][key] = float(m.group(3))
    return fams


REQUIRED = {
    "vigil_clients_connected": "gauge", "vigil_sessions": "gauge", "vigil_subscriptions": "gauge",
    "vigil_retained_messages": "gauge", "vigil_uptime_seconds": "gauge",
    "vigil_messages_received_total": "counter", "vigil_messages_sent_total": "counter",
    "vigil_bytes_received_total": "counter", "vigil_bytes_sent_total": "counter",
    "vigil_keepalive_timeouts_total": "counter", "vigil_wills_published_total": "counter",
    "vigil_connect_timeouts_total": "counter",
}


def metrics(port, auth=None, tls=None):
    r = get(port, "/metrics", auth=auth, tls=tls)
    check(r.status == 200, "/metrics: %d" % r.status)
    check(r.header("content-type", ).startswith("text/plain; version=0.0.4"),
          "/metrics Content-Type %r" % r.header("content-type"))
    fams = parse_metrics(r.text())
    for name, typ in REQUIRED.items():
        check(name in fams, "metric family %s missing" % name)
        check(fams[name]["type"] == typ, "%s has TYPE %s, want %s" % (name, fams[name]["type"], typ))
    return {k: v["samples"].get("") for k, v in fams.items()}, fams


# ---- runner ----------------------------------------------------------------------------------

def run(module_globals, title):
    tests = [(k, v) for k, v in sorted(module_globals.items()) if k.startswith("t_") and callable(v)]
    only = os.environ.get("API_TEST")
    failed = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        h = mt.Harness(name)
        t0 = time.monotonic()
        try:
            fn(h)
            h.cleanup()
            print("PASS %s (%.1f s)" % (name, time.monotonic() - t0))
        except mt.Skip as e:
            h.cleanup()
            print("SKIP %s: %s" % (name, e))
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (name, traceback.format_exc()))
            try:
                h.cleanup()
            except Exception as e2:  # noqa: BLE001
                print("  cleanup: %s" % e2)
            for b in h._brokers:
                print("  --- %s log tail ---\n%s" % (b.name, b.log_tail(20)))
        finally:
            h.remove_dir()
    print("%s: %s" % (title, "FAILED" if failed else "all passed"))
    return 1 if failed else 0
