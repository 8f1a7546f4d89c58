#!/usr/bin/python3
"""bench/http_scrape.py — how long a scrape of the HTTP API takes with many connected clients, and
how long it holds the broker's loop.

Starts vigil with an MQTT listener and a `protocol http_api` listener, connects BENCH_HTTP_CONNS
(10 000) idle MQTT clients with build/bench/loadgen (keepalive 60), then, for each of /metrics,
/api/v1/clients (the whole list, streamed) and /api/v1/clients?limit=500, times BENCH_HTTP_ROUNDS
(20) scrapes end to end (request to last byte, on one keep-alive-less connection each). Meanwhile a
probe MQTT client sends PINGREQ back to back and records each round trip: the largest RTT during
the scrapes minus the largest without them bounds the loop stall a scrape causes.

  bench/http_scrape.py            (needs ./vigil and build/bench/loadgen: `make vigil build/bench/loadgen`)
Env: BENCH_HTTP_CONNS, BENCH_HTTP_ROUNDS, VIGIL, LOADGEN.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "broker"))
import mqtt_test as mt  # noqa: E402

VIGIL = os.environ.get("VIGIL", os.path.join(ROOT, "vigil"))
LOADGEN = os.environ.get("LOADGEN", os.path.join(ROOT, "build", "bench", "loadgen"))
CONNS = int(os.environ.get("BENCH_HTTP_CONNS", "10000"))
ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "20"))


def http_get(port, path):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
    n = 0
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        n += len(d)
    s.close()
    return time.perf_counter() - t0, n


class Probe(threading.Thread):
    """PINGREQ/PINGRESP back to back; rtts[] with the phase label current at each."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.s.sendall(mt.connect("probe", keepalive=60))
        self.s.recv(4)
        self.phase, self.rtts, self.stop = "idle", [], False

    def run(self):
        while not self.stop:
            t0 = time.perf_counter()
            self.s.sendall(b"\xc0\x00")
            got = b""
            while len(got) < 2:
                got += self.s.recv(2 - len(got))
            self.rtts.append((self.phase, time.perf_counter() - t0))
            time.sleep(0.0005)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))]


def main():
    d = tempfile.mkdtemp(prefix="vigil-bench-http-")
    mp, hp = mt.free_port(), mt.free_port()
    conf = os.path.join(d, "v.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\nmax_queued_messages 10\n"
                "listener %d 127.0.0.1\nprotocol http_api\n" % (mp, hp))
    log = open(os.path.join(d, "vigil.log"), "wb")
    v = subprocess.Popen([VIGIL, "-c", conf], stdout=log, stderr=log)
    lg = None
    try:
        time.sleep(0.3)
        lg = subprocess.Popen([LOADGEN, "-p", str(mp), "-s", "idle", "-n", str(CONNS), "-k", "60",
                               "-d", "600", "-r", "5000", "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            _, body = None, None
            try:
                s = socket.create_connection(("127.0.0.1", hp))
                s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                body = b""
                while True:
                    x = s.recv(65536)
                    if not x:
                        break
                    body += x
                s.close()
            except OSError:
                pass
            if body and b'"clients_connected": %d' % CONNS in body:
                break
            time.sleep(0.5)
        else:
            print("only part of %d clients connected; health: %r" % (CONNS, body[-200:] if body else None))
            return 1
        probe = Probe(mp)
        probe.start()
        time.sleep(2.0)  # baseline
        results = []
        for path in ("/metrics", "/api/v1/clients", "/api/v1/clients?limit=500"):
            probe.phase = path
            ts, size = [], 0
            for _ in range(ROUNDS):
                t, size = http_get(hp, path)
                ts.append(t)
            results.append((path, size, ts))
            probe.phase = "idle"
            time.sleep(0.5)
        probe.stop = True
        probe.join(2)
        idle = [r for p, r in probe.rtts if p == "idle"]
        print("vigil HTTP API scrape, %d connected MQTT clients, %d rounds each (2-core host, loadgen on the "
              "same host)\n" % (CONNS, ROUNDS))
        print("| request | body bytes | p50 ms | max ms | probe PINGREQ RTT during: n, p50 / p99 / max ms |")
        print("|---|---|---|---|---|")
        for path, size, ts in results:
            rt = [r for p, r in probe.rtts if p == path]
            print("| GET %s | %d | %.1f | %.1f | %d, %.2f / %.2f / %.2f |"
                  % (path, size, pct(ts, 50) * 1e3, max(ts) * 1e3, len(rt), pct(rt, 50) * 1e3, pct(rt, 99) * 1e3,
                     max(rt) * 1e3))
        print("| (no scrape) | | | | %d, %.2f / %.2f / %.2f |"
              % (len(idle), pct(idle, 50) * 1e3, pct(idle, 99) * 1e3, max(idle) * 1e3))
        return 0
    finally:
        if lg:
            lg.terminate()
            lg.wait()
        v.terminate()
        v.wait()
        log.close()


if __name__ == "__main__":
    sys.exit(main())
