"""Helpers for tests/ops: start a broker binary with a configuration file, talk raw MQTT to it,
stop it and check how it ended (sanitizer reports included). Imported by the test_*.py files here;
the packet builders come from tests/broker/mqtt_test.py."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "broker"))
import mqtt_test as m  # noqa: E402

VIGIL = os.environ.get("VIGIL_BIN", os.path.join(REPO, "vigil"))
MOSQUITTO = "/usr/sbin/mosquitto"
SAN = os.environ.get("VIGIL_SAN") == "1"
SAN_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")

failures = []


def check(cond, what):
    """Record one check; print it."""
    print("  %s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)
    return cond


def finish(name):
    if failures:
        print("%s: %d check(s) failed" % (name, len(failures)))
        sys.exit(1)
    print("%s: all checks passed" % name)
    sys.exit(0)


def tmpdir(prefix):
    d = tempfile.mkdtemp(prefix="vigil-ops-%s-" % prefix)
    return d


def free_port():
    return m.free_port()


def listening(port):
    return m._listening_inode(port) is not None


def wait_for(pred, timeout, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Proc:
    """A broker process: conf text written to dir/broker.conf; stdout and stderr to files."""

    def __init__(self, binary, d, conf, port, args=(), env=None, wait=True):
        self.d = d
        self.port = port
        self.conf = os.path.join(d, "broker.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.out_path = os.path.join(d, "stdout.log")
        self.err_path = os.path.join(d, "stderr.log")
        e = dict(os.environ)
        e.update(env or {})
        with open(self.out_path, "ab") as out, open(self.err_path, "ab") as err:
            self.proc = subprocess.Popen([binary, "-c", self.conf] + list(args), stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=err, cwd=d, env=e)
        if wait and not wait_for(lambda: listening(port) or self.proc.poll() is not None, 10):
            pass
        if wait and not listening(port):
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("broker did not listen on %d; stderr:\n%s" % (port, self.stderr()))

    def stdout(self):
        return _read(self.out_path)

    def stderr(self):
        return _read(self.err_path)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        """SIGTERM; True when it exited 0 within 5 s without a sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return check(False, "broker exits within 5 s of SIGTERM")
        text = self.stderr() + self.stdout()
        clean = rc == 0 and not any(s in text for s in SAN_MARKERS)
        return check(clean, "broker exits cleanly on SIGTERM (rc=%s%s)"
                     % (rc, ", sanitizer report" if any(s in text for s in SAN_MARKERS) else ""))


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


class Client:
    """A raw MQTT client over TCP."""

    def __init__(self, port, timeout=3.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv_packet(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        break
                else:
                    i = None
                if i is not None and len(self.buf) >= i + n:
                    p, self.buf = self.buf[:i + n], self.buf[i + n:]
                    return p
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                return None
            if not d:
                return None
            self.buf += d

    def connect(self, client_id, **kw):
        """CONNECT; returns the CONNACK return code (None: no CONNACK)."""
        proto = kw.get("proto", 4)
        self.send(m.connect(client_id, **kw))
        p = self.recv_packet()
        if not p or p[0] != 0x20:
            return None
        return p[3] if proto != 5 else p[3]

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def json_lines(text, what):
    """Every non-empty line parsed as one JSON object; records a check per failure."""
    objs = []
    bad = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            o = json.loads(line)
            if not isinstance(o, dict):
                raise ValueError("not an object")
            objs.append(o)
        except ValueError:
            bad.append(line)
    check(not bad and objs, "%s: %d lines, every line one JSON object%s"
          % (what, len(objs), "" if not bad else " (bad: %r)" % bad[:3]))
    return objs


TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
LEVELS = {"debug", "info", "notice", "warning", "error"}


def rm(d):
    shutil.rmtree(d, ignore_errors=True)
