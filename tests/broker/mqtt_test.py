"""Black-box MQTT broker test harness (stdlib only).

What it does: starts a broker (vigil or mosquitto, env VIGIL_BROKER) on a free loopback port with a
given mosquitto.conf text, captures its log, stops it and checks how it ended; encodes every MQTT
packet of v3.1 / v3.1.1 / v5 byte-exactly (own encoder, incl. v5 properties); a raw client that reads
whole packets with a timeout on every read and compares byte-exactly with a readable diff.
What it deliberately does not: no MQTT client logic beyond the tiny helpers (connect, subscribe,
publish flows); tests spell out the packets they expect.
Invariant: no read blocks longer than its timeout, every broker started is stopped by cleanup().

"""

import os
import random
import signal
import socket
import struct
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MOSQUITTO = "/usr/sbin/mosquitto"

# ---------------------------------------------------------------------------------------------
# Test markers and outcomes


class Skip(Exception):
    pass


class TestFailure(AssertionError):
    pass


def vigil_only(reason):
    """The test checks a vigil contract stricter than the spec (mosquitto is not expected to pass)."""
    def deco(f):
        f.vigil_only = reason
        return f
    return deco


def mosquitto_differs(reason):
    """The test follows the spec where mosquitto 2.0.11 does not: skipped on mosquitto."""
    def deco(f):
        f.mosquitto_differs = reason
        return f
    return deco


def vigil_pending(reason):
    """The test states behaviour that vigil does not have yet because another area's change is
    due (reason names it). On vigil run.py reports a failure as XFAIL (not a failure) and a pass as
    a failure ("XPASS: remove the marker"); on mosquitto the test runs as usual."""
    def deco(f):
        f.vigil_pending = reason
        return f
    return deco


def timeout(seconds):
    def deco(f):
        f.timeout = seconds
        return f
    return deco


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


# ---------------------------------------------------------------------------------------------
# Encoding

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = \
    8, 9, 10, 11, 12, 13, 14, 15
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
                7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK",
                12: "PINGREQ", 13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# v5 property identifiers
PAYLOAD_FORMAT = 0x01
MESSAGE_EXPIRY = 0x02
CONTENT_TYPE = 0x03
RESPONSE_TOPIC = 0x08
CORRELATION_DATA = 0x09
SUBSCRIPTION_ID = 0x0B
SESSION_EXPIRY = 0x11
ASSIGNED_CLIENT_ID = 0x12
SERVER_KEEP_ALIVE = 0x13
AUTH_METHOD = 0x15
AUTH_DATA = 0x16
REQUEST_PROBLEM_INFO = 0x17
WILL_DELAY = 0x18
REQUEST_RESPONSE_INFO = 0x19
RESPONSE_INFO = 0x1A
SERVER_REFERENCE = 0x1C
REASON_STRING = 0x1F
RECEIVE_MAXIMUM = 0x21
TOPIC_ALIAS_MAXIMUM = 0x22
TOPIC_ALIAS = 0x23
MAXIMUM_QOS = 0x24
RETAIN_AVAILABLE = 0x25
USER_PROPERTY = 0x26
MAXIMUM_PACKET_SIZE = 0x27
WILDCARD_SUB_AVAILABLE = 0x28
SUB_ID_AVAILABLE = 0x29
SHARED_SUB_AVAILABLE = 0x2A

PROP_TYPES = {
    0x01: "byte", 0x02: "u32", 0x03: "str", 0x08: "str", 0x09: "bin", 0x0B: "varint",
    0x11: "u32", 0x12: "str", 0x13: "u16", 0x15: "str", 0x16: "bin", 0x17: "byte", 0x18: "u32",
    0x19: "byte", 0x1A: "str", 0x1C: "str", 0x1F: "str", 0x21: "u16", 0x22: "u16", 0x23: "u16",
    0x24: "byte", 0x25: "byte", 0x26: "pair", 0x27: "u32", 0x28: "byte", 0x29: "byte", 0x2A: "byte",
}


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def u16(n):
    return struct.pack("!H", n)


def u32(n):
    return struct.pack("!I", n)


def mstr(s):
    """MQTT string/binary: 2-byte length + bytes. str is UTF-8 encoded, bytes taken as is."""
    if isinstance(s, str):
        s = s.encode("utf-8")
    return u16(len(s)) + s


def props(plist):
    """Encode a v5 property list [(id, value), ...] in the given order, with its length prefix.
    Values: int for byte/u16/u32/varint, str/bytes for strings and binary, (k, v) for user props.
    A value of type bytes for an int property is inserted raw (to build malformed properties)."""
    body = bytearray()
    for pid, val in plist or []:
        body += varint(pid)
        t = PROP_TYPES.get(pid, "raw")
        if isinstance(val, (bytes, bytearray)) and t in ("byte", "u16", "u32", "varint", "raw"):
            body += val
        elif t == "byte":
            body.append(val)
        elif t == "u16":
            body += u16(val)
        elif t == "u32":
            body += u32(val)
        elif t == "varint":
            body += varint(val)
        elif t in ("str", "bin"):
            body += mstr(val)
        elif t == "pair":
            body += mstr(val[0]) + mstr(val[1])
    return varint(len(body)) + bytes(body)


def packet(first_byte, body):
    return bytes([first_byte]) + varint(len(body)) + bytes(body)


def connect(client_id="", proto=4, clean=True, keepalive=60, will=None, username=None,
            password=None, properties=None, reserved=False, proto_name=None, flags=None):
    """CONNECT. proto 3 = v3.1 (MQIsdp), 4 = v3.1.1, 5 = v5.
    will = dict(topic=, payload=, qos=0, retain=False, properties=[...]).
    flags overrides the computed connect flags byte."""
    if proto_name is None:
        proto_name = "MQIsdp" if proto == 3 else "MQTT"
    f = 0
    if clean:
        f |= 0x02
    if will is not None:
        f |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if password is not None:
        f |= 0x40
    if username is not None:
        f |= 0x80
    if reserved:
        f |= 0x01
    if flags is not None:
        f = flags
    body = mstr(proto_name) + bytes([proto, f]) + u16(keepalive)
    if proto == 5:
        body += props(properties)
    body += mstr(client_id)
    if will is not None:
        if proto == 5:
            body += props(will.get("properties"))
        body += mstr(will["topic"]) + mstr(will.get("payload", b""))
    if username is not None:
        body += mstr(username)
    if password is not None:
        body += mstr(password)
    return packet(0x10, body)


def connack(rc=0, session_present=False, proto=4, properties=None):
    body = bytes([1 if session_present else 0, rc])
    if proto == 5:
        body += props(properties)
    return packet(0x20, body)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, mid=None, proto=4,
            properties=None):
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    fb = 0x30 | (qos << 1) | (0x01 if retain else 0) | (0x08 if dup else 0)
    body = mstr(topic)
    if qos > 0:
        body += u16(mid if mid is not None else 1)
    if proto == 5:
        body += props(properties)
    return packet(fb, body + payload)


def _ack(fb, mid, rc, proto, properties):
    body = u16(mid)
    if proto == 5 and (rc not in (None, 0) or properties):
        body += bytes([rc or 0])
        if properties:
            body += props(properties)
    return packet(fb, body)


def puback(mid, rc=None, proto=4, properties=None):
    return _ack(0x40, mid, rc, proto, properties)


def pubrec(mid, rc=None, proto=4, properties=None):
    return _ack(0x50, mid, rc, proto, properties)


def pubrel(mid, rc=None, proto=4, properties=None):
    return _ack(0x62, mid, rc, proto, properties)


def pubcomp(mid, rc=None, proto=4, properties=None):
    return _ack(0x70, mid, rc, proto, properties)


def subopts(qos=0, nl=False, rap=False, rh=0):
    return qos | (0x04 if nl else 0) | (0x08 if rap else 0) | (rh << 4)


def subscribe(mid, topics, proto=4, properties=None, first_byte=0x82):
    """topics: list of (filter, options byte) or a single filter string (QoS 0)."""
    if isinstance(topics, str):
        topics = [(topics, 0)]
    body = u16(mid)
    if proto == 5:
        body += props(properties)
    for t, o in topics:
        body += mstr(t) + bytes([o])
    return packet(first_byte, body)


def suback(mid, codes, proto=4, properties=None):
    body = u16(mid)
    if proto == 5:
        body += props(properties)
    return packet(0x90, body + bytes(codes))


def unsubscribe(mid, topics, proto=4, properties=None, first_byte=0xA2):
    if isinstance(topics, str):
        topics = [topics]
    body = u16(mid)
    if proto == 5:
        body += props(properties)
    for t in topics:
        body += mstr(t)
    return packet(first_byte, body)


def unsuback(mid, codes=None, proto=4, properties=None):
    body = u16(mid)
    if proto == 5:
        body += props(properties) + bytes(codes or [])
    return packet(0xB0, body)


def pingreq():
    return b"\xc0\x00"


def pingresp():
    return b"\xd0\x00"


def disconnect(rc=None, proto=4, properties=None):
    if proto != 5 or (rc in (None, 0) and not properties):
        return b"\xe0\x00"
    body = bytes([rc or 0])
    if properties:
        body += props(properties)
    return packet(0xE0, body)


def auth(rc=0, properties=None):
    body = bytes([rc])
    if properties:
        body += props(properties)
    return packet(0xF0, body)


# ---------------------------------------------------------------------------------------------
# Decoding (for diffs and for checking fields that are not deterministic)


class Reader:
    def __init__(self, data):
        self.d = bytes(data)
        self.i = 0

    def left(self):
        return len(self.d) - self.i

    def take(self, n):
        if self.i + n > len(self.d):
            raise ValueError("short packet")
        v = self.d[self.i:self.i + n]
        self.i += n
        return v

    def byte(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack("!H", self.take(2))[0]

    def u32(self):
        return struct.unpack("!I", self.take(4))[0]

    def varint(self):
        n, mult = 0, 1
        for _ in range(4):
            b = self.byte()
            n += (b & 0x7F) * mult
            if not b & 0x80:
                return n
            mult *= 128
        raise ValueError("bad varint")

    def bin(self):
        return self.take(self.u16())

    def str(self):
        return self.bin().decode("utf-8", "replace")

    def props(self):
        n = self.varint()
        end = self.i + n
        out = []
        while self.i < end:
            pid = self.varint()
            t = PROP_TYPES.get(pid)
            if t == "byte":
                v = self.byte()
            elif t == "u16":
                v = self.u16()
            elif t == "u32":
                v = self.u32()
            elif t == "varint":
                v = self.varint()
            elif t == "str":
                v = self.str()
            elif t == "bin":
                v = self.bin()
            elif t == "pair":
                v = (self.str(), self.str())
            else:
                raise ValueError("unknown property 0x%02x" % pid)
            out.append((pid, v))
        return out


def parse(data, proto=4):
    """Decode one whole packet into a dict (best effort; 'error' set if it does not decode)."""
    p = {"type": data[0] >> 4, "flags": data[0] & 0x0F}
    p["name"] = PACKET_NAMES.get(p["type"], "RESERVED")
    r = Reader(data[1:])
    try:
        rl = r.varint()
        p["remaining_length"] = rl
        t = p["type"]
        if t == CONNACK:
            p["session_present"] = r.byte() & 1
            p["rc"] = r.byte()
            if proto == 5 and r.left():
                p["properties"] = r.props()
        elif t == PUBLISH:
            p["qos"] = (p["flags"] >> 1) & 3
            p["retain"] = bool(p["flags"] & 1)
            p["dup"] = bool(p["flags"] & 8)
            p["topic"] = r.str()
            p["mid"] = r.u16() if p["qos"] else None
            p["properties"] = r.props() if proto == 5 else []
            p["payload"] = r.take(r.left())
        elif t in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
            p["mid"] = r.u16()
            if t in (SUBACK, UNSUBACK):
                if proto == 5:
                    p["properties"] = r.props()
                p["codes"] = list(r.take(r.left()))
            else:
                p["rc"] = r.byte() if r.left() else 0
                p["properties"] = r.props() if r.left() else []
        elif t in (DISCONNECT, AUTH):
            p["rc"] = r.byte() if r.left() else 0
            p["properties"] = r.props() if r.left() else []
        elif t == CONNECT:
            p["proto_name"] = r.str()
            p["proto"] = r.byte()
            p["connect_flags"] = r.byte()
            p["keepalive"] = r.u16()
    except Exception as e:  # noqa: BLE001 - best effort for diagnostics
        p["error"] = str(e)
    return p


def describe(data, proto=4):
    if data is None:
        return "<nothing>"
    p = parse(data, proto)
    fields = ", ".join("%s=%r" % (k, v) for k, v in p.items() if k not in ("type", "name"))
    return "%s(%s)" % (p["name"], fields)


def hexs(b):
    return " ".join("%02x" % x for x in b)


def norm_props(plist):
    """Properties in a canonical order: by id; user properties keep their relative order."""
    return sorted(plist or [], key=lambda kv: kv[0])


# ---------------------------------------------------------------------------------------------
# Broker process


def _listening_inode(port):
    want = "0100007F:%04X" % port
    try:
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[1] == want and cols[3] == "0A":
                    return cols[9]
    except OSError:
        pass
    return None


def _pid_has_socket(pid, inode):
    target = "socket:[%s]" % inode
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                    return True
            except OSError:
                pass
    except OSError:
        pass
    return False


def _ephemeral_range():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


_port_rng = random.SystemRandom()


def free_port():
    """A free loopback port outside the kernel's ephemeral range.

    A port the kernel hands out for bind(0) is an ephemeral port: after a broker is killed and
    restarted on it, an outbound connection of a parallel test may have been given that same port as
    its source port in the meantime, and the restart fails with EADDRINUSE (seen in CI:
    21_persist kill -9 restart). Ports below the ephemeral range are never used as source ports."""
    lo, _hi = _ephemeral_range()
    if lo > 12000:
        for _ in range(200):
            port = _port_rng.randrange(10000, lo)
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                s.close()
            return port
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def broker_kind():
    return os.environ.get("VIGIL_BROKER", "vigil")


def broker_bin():
    if broker_kind() == "mosquitto":
        return MOSQUITTO
    return os.environ.get("VIGIL_BIN", os.path.join(REPO, "vigil"))


class Broker:
    """One broker process. conf is appended after 'listener PORT 127.0.0.1' (and
    'allow_anonymous true' when anon). Use {port} or {dir} in conf for the port and temp dir."""

    def __init__(self, h, conf="", anon=True, name="broker"):
        self.h = h
        self.conf_extra = conf
        self.anon = anon
        self.name = name
        self.proc = None
        self.port = None
        self.stopped = False
        self.log_path = os.path.join(h.dir, name + ".log")
        self.conf_path = os.path.join(h.dir, name + ".conf")
        self.start()

    def start(self, port=None):
        """(Re)start; port=None picks a free one (retrying on collision)."""
        last = ""
        for _attempt in range(8):
            p = port or free_port()
            conf = "listener %d 127.0.0.1\n" % p
            if self.anon:
                conf += "allow_anonymous true\n"
            conf += self.conf_extra.replace("{port}", str(p)).replace("{dir}", self.h.dir)
            if not conf.endswith("\n"):
                conf += "\n"
            with open(self.conf_path, "w") as f:
                f.write(conf)
            logf = open(self.log_path, "ab")
            try:
                self.proc = subprocess.Popen([broker_bin(), "-c", self.conf_path, "-v"],
                                             stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                             cwd=self.h.dir)
            finally:
                logf.close()
            self.stopped = False
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                ino = _listening_inode(p)
                if ino and _pid_has_socket(self.proc.pid, ino):
                    self.port = p
                    return
                time.sleep(0.01)
            rc = self.proc.poll()
            if rc is None:
                self.proc.kill()
                self.proc.wait()
                fail("%s did not start listening on %d within 5 s; log:\n%s"
                     % (self.name, p, self.log_tail()))
            last = self.log_tail()
            if port is not None or "in use" not in last.lower():
                fail("%s exited at start (rc=%s); log:\n%s" % (self.name, rc, last))
        fail("could not find a free port; last log:\n%s" % last)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, check=True):
        """SIGTERM, wait for exit, and check how it ended."""
        if self.proc is None or self.stopped:
            return
        self.stopped = True
        problems = []
        rc = self.proc.poll()
        if rc is not None:
            problems.append("%s had exited before stop (rc=%s)" % (self.name, rc))
        else:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("%s did not exit within 5 s of SIGTERM" % self.name)
                rc = 0
        if rc is not None and rc < 0 and rc != -signal.SIGTERM:
            problems.append("%s died from signal %d" % (self.name, -rc))
        log = self.log()
        if os.environ.get("VIGIL_SAN") == "1":
            if rc != 0:
                problems.append("%s exit status %s under sanitizers" % (self.name, rc))
            for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
                if marker in log:
                    problems.append("%s: %r in its stderr" % (self.name, marker))
        if problems and check:
            fail("; ".join(problems) + "\nlog tail:\n" + self.log_tail())

    def restart(self):
        self.stop()
        self.start(port=self.port)


# ---------------------------------------------------------------------------------------------
# Raw client


class Closed(Exception):
    pass


NOSUB = "success-or-no-subscribers"


class Client:
    def __init__(self, h, port, proto=4, timeout=3.0, name="client"):
        self.h = h
        self.proto = proto
        self.timeout = timeout
        self.name = name
        self.next_mid = 1
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.pending = []  # whole packets received early (e.g. a PUBLISH before an awaited PUBREL)
        h._clients.append(self)

    def mid(self):
        m = self.next_mid
        self.next_mid = self.next_mid % 65535 + 1
        return m

    def send(self, data):
        self.sock.sendall(data)

    def send_quiet(self, data):
        """Send, ignoring errors from a peer that already closed."""
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                raise Closed("connection reset")
            if not chunk:
                raise Closed("EOF")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_packet(self, timeout=None):
        """One whole packet (fixed header + body). Raises socket.timeout or Closed."""
        if self.pending:
            return self.pending.pop(0)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        hdr = self._read_exact(1, deadline)
        lenbytes = b""
        n, mult = 0, 1
        for _ in range(4):
            b = self._read_exact(1, deadline)
            lenbytes += b
            n += (b[0] & 0x7F) * mult
            mult *= 128
            if not b[0] & 0x80:
                break
        else:
            fail("%s: broker sent a malformed remaining length %s" % (self.name, hexs(lenbytes)))
        return hdr + lenbytes + self._read_exact(n, deadline)

    def recv(self, what="a packet", timeout=None):
        try:
            return self.recv_packet(timeout)
        except socket.timeout:
            fail("%s: timed out waiting for %s" % (self.name, what))
        except Closed as e:
            fail("%s: connection closed (%s) while waiting for %s" % (self.name, e, what))

    def expect_packet(self, want, what=None, timeout=None):
        what = what or describe(want, self.proto)
        got = self.recv(what, timeout)
        if got != want:
            fail("%s: unexpected packet while waiting for %s\n  want: %s\n        %s\n"
                 "  got:  %s\n        %s"
                 % (self.name, what, hexs(want), describe(want, self.proto), hexs(got),
                    describe(got, self.proto)))
        return got

    def await_packet(self, want, timeout=None):
        """Like expect_packet, but PUBLISH packets arriving first are kept for later recv()."""
        stash = []
        while True:
            got = self.recv(describe(want, self.proto), timeout)
            if got == want:
                break
            if got[0] >> 4 != PUBLISH or len(stash) > 1000:
                self.pending = stash + self.pending
                fail("%s: unexpected packet while waiting for %s\n  want: %s\n  got:  %s (%s)"
                     % (self.name, describe(want, self.proto), hexs(want),
                        describe(got, self.proto), hexs(got)))
            stash.append(got)
        self.pending = stash + self.pending
        return got

    def expect_type(self, ptype, timeout=None):
        got = self.recv(PACKET_NAMES[ptype], timeout)
        p = parse(got, self.proto)
        if p["type"] != ptype:
            fail("%s: want %s, got %s" % (self.name, PACKET_NAMES[ptype],
                                           describe(got, self.proto)))
        return p

    def expect_closed(self, timeout=3.0, allow_disconnect=None):
        """The broker closes the connection (EOF or RST) within timeout, sending nothing before.
        allow_disconnect: a v5 reason code; a DISCONNECT with it may come first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.recv_packet(max(0.0, deadline - time.monotonic()))
            except Closed:
                return
            except socket.timeout:
                fail("%s: connection still open after %.1f s" % (self.name, timeout))
            if allow_disconnect is not None and got == disconnect(allow_disconnect, proto=5):
                allow_disconnect = None
                continue
            fail("%s: want close, got %s (%s)" % (self.name, describe(got, self.proto),
                                                 hexs(got)))

    def expect_optional_then_closed(self, allowed, timeout=3.0):
        """The broker closes the connection; before that it may send one of the packets in
        allowed (e.g. a refusing CONNACK), nothing else."""
        deadline = time.monotonic() + timeout
        try:
            got = self.recv_packet(timeout)
        except Closed:
            return None
        except socket.timeout:
            fail("%s: connection still open after %.1f s" % (self.name, timeout))
        if got not in allowed:
            fail("%s: want close (optionally after one of %s), got %s (%s)"
                 % (self.name, [hexs(a) for a in allowed], describe(got, self.proto), hexs(got)))
        self.expect_closed(max(0.5, deadline - time.monotonic()))
        return got

    def expect_disconnect_close(self, rc, timeout=3.0, strict=None, mosquitto="either"):
        """v5: DISCONNECT rc then close. The spec says SHOULD send it; vigil promises it (strict
        defaults to True on vigil); on other brokers a bare close is accepted, unless mosquitto
        says exactly what mosquitto sends: None (a bare close) or a reason code."""
        if self.h.mosquitto and mosquitto != "either":
            if mosquitto is not None:
                self.expect_packet(disconnect(mosquitto, proto=5), timeout=timeout)
            self.expect_closed(timeout)
            return
        if strict is None:
            strict = self.h.vigil
        if strict:
            self.expect_packet(disconnect(rc, proto=5), timeout=timeout)
            self.expect_closed(timeout)
        else:
            self.expect_closed(timeout, allow_disconnect=rc)

    def expect_no_packet(self, wait=0.3):
        try:
            got = self.recv_packet(wait)
        except socket.timeout:
            return
        except Closed as e:
            fail("%s: connection closed (%s), expected it to stay open" % (self.name, e))
        fail("%s: expected nothing, got %s" % (self.name, describe(got, self.proto)))

    def is_open(self, wait=0.2):
        try:
            got = self.recv_packet(wait)
        except socket.timeout:
            return True
        except Closed:
            return False
        self.pending.insert(0, got)
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def reset(self):
        """Abortive close: RST instead of FIN."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # ---- small protocol helpers (byte-exact where the result is deterministic)

    def subscribe(self, topics, codes=None, properties=None):
        """Subscribe and expect SUBACK. topics: str, or list of (filter, opts). codes default to
        the requested QoS of each filter."""
        if isinstance(topics, str):
            topics = [(topics, 0)]
        mid = self.mid()
        if codes is None:
            codes = [o & 3 for _, o in topics]
        self.send(subscribe(mid, topics, proto=self.proto, properties=properties))
        self.expect_packet(suback(mid, codes, proto=self.proto))

    def unsubscribe(self, topics, codes=None):
        if isinstance(topics, str):
            topics = [topics]
        mid = self.mid()
        self.send(unsubscribe(mid, topics, proto=self.proto))
        if codes is None:
            codes = [0] * len(topics)
        self.expect_packet(unsuback(mid, codes, proto=self.proto))

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, rc=None):
        """Publish and complete the QoS flow as sender. Returns the packet id used.
        rc: the PUBACK / PUBREC reason expected (None: success); NOSUB: success or 0x10 (No
        matching subscribers), for tests that are not about that code."""
        mid = self.mid() if qos else None
        self.send(publish(topic, payload, qos=qos, retain=retain, mid=mid, proto=self.proto,
                          properties=properties))
        if rc == NOSUB:
            ok = [f(mid, r, proto=self.proto) for f in (puback if qos == 1 else pubrec,)
                  for r in (None, 0x10)]
            got = self.recv("PUBACK/PUBREC") if qos else None
            if qos and got not in ok:
                fail("%s: want one of %s, got %s" % (self.name, [hexs(x) for x in ok],
                                                      describe(got, self.proto)))
            if qos == 2:
                self.send(pubrel(mid, proto=self.proto))
                self.expect_packet(pubcomp(mid, proto=self.proto))
            return mid
        if qos == 1:
            self.expect_packet(puback(mid, rc, proto=self.proto))
        elif qos == 2:
            self.expect_packet(pubrec(mid, rc, proto=self.proto))
            if rc is None or rc < 0x80:
                self.send(pubrel(mid, proto=self.proto))
                self.expect_packet(pubcomp(mid, proto=self.proto))
        return mid

    def expect_publish(self, topic, payload=b"", qos=0, retain=False, dup=False, properties=None,
                       mid=None, timeout=None, ack=True):
        """Receive one PUBLISH and compare every field (mid only if given; properties compared
        in canonical order, user properties in sent order). Completes the QoS flow when ack."""
        if isinstance(payload, str):
            payload = payload.encode("utf-8")
        got = self.recv("PUBLISH %s" % topic, timeout)
        p = parse(got, self.proto)
        want = {"type": PUBLISH, "topic": topic, "payload": bytes(payload), "qos": qos,
                "retain": retain, "dup": dup, "properties": norm_props(properties)}
        have = {"type": p["type"], "topic": p.get("topic"), "payload": p.get("payload"),
                "qos": p.get("qos"), "retain": p.get("retain"), "dup": p.get("dup"),
                "properties": norm_props(p.get("properties"))}
        if mid is not None:
            want["mid"], have["mid"] = mid, p.get("mid")
        if want != have or "error" in p:
            diff = ["    %s: want %r, got %r" % (k, want[k], have.get(k))
                    for k in want if want[k] != have.get(k)]
            fail("%s: unexpected PUBLISH\n%s\n  got: %s (%s)"
                 % (self.name, "\n".join(diff), describe(got, self.proto), hexs(got)))
        if ack and qos == 1:
            self.send(puback(p["mid"], proto=self.proto))
        elif ack and qos == 2:
            self.send(pubrec(p["mid"], proto=self.proto))
            self.await_packet(pubrel(p["mid"], proto=self.proto))
            self.send(pubcomp(p["mid"], proto=self.proto))
        return p

    def disconnect(self, rc=None, properties=None):
        self.send_quiet(disconnect(rc, proto=self.proto, properties=properties))
        self.close()


# ---------------------------------------------------------------------------------------------
# Per-test harness


class Harness:
    def __init__(self, test_name):
        self.name = test_name
        self.kind = broker_kind()
        self.vigil = self.kind == "vigil"
        self.mosquitto = self.kind == "mosquitto"
        self.dir = tempfile.mkdtemp(prefix="vigil-bt-")
        os.chmod(self.dir, 0o755)  # mosquitto run as root drops to user mosquitto
        self._brokers = []
        self._clients = []

    def broker(self, conf="", anon=True, name=None):
        b = Broker(self, conf, anon, name or "broker%d" % len(self._brokers))
        self._brokers.append(b)
        return b

    def client(self, broker, proto=4, timeout=3.0, name=None):
        port = broker.port if isinstance(broker, Broker) else broker
        return Client(self, port, proto, timeout, name or "client%d" % len(self._clients))

    def expect_refused(self, broker, client_id, rc, proto=4, **kw):
        """CONNECT (kw: username, password, ...) answered by exactly CONNACK rc, then a close."""
        c = self.client(broker, proto)
        c.send(connect(client_id, proto=proto, **kw))
        c.expect_packet(connack(rc, proto=proto))
        c.expect_closed()
        return c

    def connect(self, broker, client_id="", proto=4, clean=True, keepalive=60, will=None,
                username=None, password=None, properties=None, session_present=False,
                timeout=3.0, name=None):
        """Connect and expect a successful CONNACK (session_present checked; v5 CONNACK
        properties are returned but not compared)."""
        c = self.client(broker, proto, timeout, name or (client_id or "anon"))
        c.send(connect(client_id, proto=proto, clean=clean, keepalive=keepalive, will=will,
                       username=username, password=password, properties=properties))
        p = c.expect_type(CONNACK)
        if p.get("rc") != 0 or p.get("session_present") != int(session_present):
            fail("%s: CONNACK rc=%s session_present=%s, want rc=0 session_present=%d"
                 % (c.name, p.get("rc"), p.get("session_present"), int(session_present)))
        c.connack = p
        return c

    def file(self, name, text, mode=0o644):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def skip(self, reason):
        raise Skip(reason)

    def cleanup(self):
        """Close clients, stop brokers (raising a TestFailure if one ended badly)."""
        for c in self._clients:
            c.close()
        errors = []
        for b in self._brokers:
            try:
                b.stop()
            except TestFailure as e:
                errors.append(str(e))
        if errors:
            raise TestFailure("\n".join(errors))

    def remove_dir(self):
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


def sleep(s):
    time.sleep(s)
