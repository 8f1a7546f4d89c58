"""Thousands of raw MQTT clients driven from one process, and how late their closes came.

What it does: connects clients in batches (checking each CONNACK), keeps short keepalives alive
during a long connect phase, sends each one's last packet at a chosen moment, then watches every
socket with one epoll and records per client the monotonic time of its last send and of the close
the broker inflicts (EOF or RST) and every byte received before it; lateness_report compares
these with the due time using live.LATE / live.EARLY_TOL.
What it deliberately does not: parse more than whole packets (tests decide what they mean), or
retry anything.
Invariant: no call blocks beyond its stated limit; sockets are closed by Fleet.close (t.defer it).
mqtt-spec: both
"""
import gc
import random
import select
import socket
import time

import mqtt_test as mt
from mqtt_test import fail, parse, pingreq, CONNACK


class Peer:
    """One raw connection of a Fleet: its socket, what it received, its last send and its end."""
    __slots__ = ("i", "sock", "proto", "k", "cid", "buf", "t_last", "t_connack", "t_close",
                 "how", "connack", "info")

    def __init__(self, i, sock, proto, k, cid):
        self.i, self.sock, self.proto, self.k, self.cid = i, sock, proto, k, cid
        self.buf = bytearray()
        self.t_last = self.t_connack = self.t_close = None
        self.how = None       # "EOF" or "RST" once closed
        self.connack = None
        self.info = None

    def packets(self):
        """The packets received so far (whole ones), parsed, in order."""
        out, i, d = [], 0, bytes(self.buf)
        while i < len(d):
            n, mult, j = 0, 1, i + 1
            while j < len(d):
                n += (d[j] & 0x7F) * mult
                mult *= 128
                j += 1
                if not d[j - 1] & 0x80:
                    break
            if j + n > len(d):
                break
            out.append(d[i:j + n])
            i = j + n
        return out


class Fleet:
    """Thousands of raw clients on one port, connected in batches, driven from one epoll."""

    def __init__(self, port, host="127.0.0.1"):
        self.port, self.host = port, host
        self.peers = []
        self.ep = select.epoll()
        self.by_fd = {}
        self.close_on_eof = False  # True: close our end on EOF, like a real client
        self.hung = set()          # peer indexes that never close their end

    def connect_all(self, specs, batch=250, limit=60.0, keep_alive_every=0.4, bufsize=None):
        """specs: list of (proto, keepalive, client_id, connect_packet). Connects all, checks
        CONNACK rc 0, and meanwhile pings the ones already up every keep_alive_every s so that
        short keepalives do not expire during a long connect phase. Returns the peers."""
        deadline = time.monotonic() + limit
        last_ping = time.monotonic()
        for start in range(0, len(specs), batch):
            chunk = []
            for j, (proto, k, cid, pkt) in enumerate(specs[start:start + batch]):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                if bufsize:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
                s.settimeout(max(0.5, deadline - time.monotonic()))
                try:
                    s.connect((self.host, self.port))
                except OSError as e:
                    s.close()
                    fail("connect #%d failed: %s" % (start + j, e))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                p = Peer(start + j, s, proto, k, cid)
                p.t_last = time.monotonic()
                s.sendall(pkt)
                chunk.append(p)
            for p in chunk:
                raw = self._read_packet(p, deadline)
                pp = parse(raw, p.proto)
                if pp["type"] != CONNACK or pp.get("rc") != 0:
                    fail("client %s: want CONNACK rc 0, got %s" % (p.cid, mt.describe(raw, p.proto)))
                p.connack = pp
                p.t_connack = time.monotonic()
                self.peers.append(p)
            now = time.monotonic()
            if keep_alive_every and now - last_ping >= keep_alive_every:
                self.ping(self.peers)
                last_ping = now
            if now > deadline:
                fail("connect phase took over %.0f s (%d of %d up)" % (limit, len(self.peers),
                                                                     len(specs)))
        for p in self.peers:
            p.sock.setblocking(False)
            self.by_fd[p.sock.fileno()] = p
            self.ep.register(p.sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        return self.peers

    def adopt(self, c, k=None, t_last=None):
        """Watch a mqtt_test.Client too (its unread bytes are kept). Returns its Peer."""
        p = Peer(len(self.peers), c.sock, c.proto, k, c.name)
        p.buf += c.buf + b"".join(c.pending)
        c.buf, c.pending = b"", []
        p.t_last = t_last
        c.sock.setblocking(False)
        self.peers.append(p)
        self.by_fd[c.sock.fileno()] = p
        self.ep.register(c.sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        return p

    def _read_packet(self, p, deadline):
        while True:
            pk = p.packets()
            if pk:
                raw = pk[0]
                del p.buf[:len(raw)]
                return raw
            p.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                d = p.sock.recv(65536)
            except socket.timeout:
                fail("client %s: no CONNACK" % p.cid)
            except ConnectionResetError:
                fail("client %s: reset before CONNACK" % p.cid)
            if not d:
                fail("client %s: closed before CONNACK" % p.cid)
            p.buf += d

    def ping(self, peers):
        for p in peers:
            if p.t_close is None:
                self.send(p, pingreq())

    def send(self, p, data):
        """Send on a (possibly non-blocking) socket; records t_last just before the send."""
        p.t_last = time.monotonic()
        try:
            p.sock.sendall(data)
        except BlockingIOError:
            fail("client %s: send would block" % p.cid)
        except OSError:
            pass  # closed already: the watcher will see it

    def _drain(self, p, now):
        while True:
            try:
                d = p.sock.recv(65536)
            except BlockingIOError:
                return
            except ConnectionResetError:
                self._closed(p, now, "RST")
                return
            except OSError as e:
                self._closed(p, now, "ERR %s" % e)
                return
            if not d:
                self._closed(p, now, "EOF")
                return
            p.buf += d

    def _closed(self, p, now, how):
        p.t_close, p.how = now, how
        try:
            self.ep.unregister(p.sock.fileno())
        except (OSError, ValueError):
            pass
        if self.close_on_eof and p.i not in self.hung:
            p.sock.close()  # as a real client does on EOF: our FIN ends the broker's linger

    def watch(self, until, stop_when_all_closed=True, tick=None):
        """Drain every socket until monotonic time `until` (or all closed); records t_close and
        how. tick(now) is called about every 10 ms if given. GC is off meanwhile so the
        measurement is not skewed by our own pauses."""
        gc.disable()
        try:
            while True:
                now = time.monotonic()
                if now >= until:
                    return
                if stop_when_all_closed and all(p.t_close is not None for p in self.peers):
                    return
                wait = min(until - now, 0.01 if tick else 0.05)
                events = self.ep.poll(wait)
                now = time.monotonic()
                for fd, _ev in events:
                    p = self.by_fd.get(fd)
                    if p is not None and p.t_close is None:
                        self._drain(p, now)
                if tick:
                    tick(now)
        finally:
            gc.enable()

    def open_peers(self):
        return [p for p in self.peers if p.t_close is None]

    def close(self):
        for p in self.peers:
            try:
                p.sock.close()
            except OSError:
                pass
        self.ep.close()


def spread_pings(fleet, peers, window):
    """Send one PINGREQ per peer, spread evenly over `window` seconds in a random order: each
    peer's t_last is then its last complete packet. Returns when all are sent."""
    order = list(peers)
    random.shuffle(order)
    t0 = time.monotonic()
    n = len(order)
    for idx, p in enumerate(order):
        at = t0 + window * idx / max(1, n)
        while True:
            now = time.monotonic()
            if now >= at:
                break
            time.sleep(min(0.002, at - now))
        fleet.send(p, pingreq())


def lateness_report(peers, expect):
    """Check each peer closed in [t_last + expect(p) - EARLY_TOL, t_last + expect(p) + LATE].
    Returns (problems, summary)."""
    import live  # the bounds live there (imported here: live imports this module)
    problems, lates = [], []
    for p in peers:
        if p.t_close is None:
            problems.append("%s (K=%s) never closed" % (p.cid, p.k))
            continue
        due = expect(p)
        d = p.t_close - p.t_last
        lates.append(d - due)
        if d < due - live.EARLY_TOL:
            problems.append("%s (K=%s) closed EARLY: %.3f s after its last packet, due %.3f"
                            % (p.cid, p.k, d, due))
        elif d > due + live.LATE:
            problems.append("%s (K=%s) closed LATE: %.3f s after its last packet, due %.3f "
                            "(+%.0f ms > %.0f ms)" % (p.cid, p.k, d, due, (d - due) * 1000,
                                                      live.LATE * 1000))
    lates.sort()
    if lates:
        summary = "lateness over %d closes: min %+.1f ms, median %+.1f ms, p99 %+.1f ms, max " \
                  "%+.1f ms" % (len(lates), lates[0] * 1000, lates[len(lates) // 2] * 1000,
                                lates[min(len(lates) - 1, int(len(lates) * 0.99))] * 1000,
                                lates[-1] * 1000)
    else:
        summary = "no closes"
    return problems, summary


def is_disconnect(raw, rc):
    """A v5 DISCONNECT with reason code rc (properties, e.g. a reason string, allowed)."""
    if not raw or raw[0] != 0xE0:
        return False
    p = parse(raw, 5)
    return "error" not in p and p.get("rc") == rc


def summarize(problems, limit=8):
    more = "" if len(problems) <= limit else "\n  ... and %d more" % (len(problems) - limit)
    return "\n  ".join(problems[:limit]) + more
