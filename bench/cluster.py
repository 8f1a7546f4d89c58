#!/usr/bin/python3
"""bench/cluster.py - cross-node QoS 0 throughput and latency (issue 12, point 9).

Three set-ups on this machine, same client code, same messages (64 B payload, QoS 0):
  one node     publisher and subscriber on one vigil (no cluster options)
  two nodes    publisher on vigil a, subscriber on vigil b, one nats-server (JetStream) between
  NATS MQTT    publisher and subscriber on nats-server's own MQTT listener
Throughput: BENCH_N messages written as fast as the socket takes them, time until the subscriber
has them all (messages lost count as not received: the run reports how many arrived).
Latency: BENCH_LAT messages one at a time, each carrying its send time, p50 / p99 / max of
arrival - send. Clients are raw sockets in Python: the figures compare the set-ups with each
other on one host, not with other machines.
Env: BENCH_N (50000), BENCH_LAT (500), VIGIL (binary).
"""
import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))
import cluster_lib as cl  # noqa: E402
from cluster_lib import mt  # noqa: E402

N = int(os.environ.get("BENCH_N", "50000"))
LAT = int(os.environ.get("BENCH_LAT", "500"))
if os.environ.get("VIGIL"):
    os.environ["VIGIL_BIN"] = os.environ["VIGIL"]


def raw(port, cid, sub=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(mt.connect(cid, proto=4, keepalive=600))
    buf = b""
    while len(buf) < 4:
        buf += s.recv(4 - len(buf))
    if sub:
        s.sendall(mt.subscribe(1, [(sub, 0)]))
        buf = b""
        while len(buf) < 5:
            buf += s.recv(5 - len(buf))
    return s


def count_publishes(sock, want, deadline):
    """Read until want PUBLISH packets arrived or the deadline; returns (count, last arrival)."""
    buf = b""
    n = 0
    last = time.monotonic()
    sock.settimeout(0.2)
    while n < want and time.monotonic() < deadline:
        try:
            d = sock.recv(1 << 20)
        except socket.timeout:
            continue
        if not d:
            break
        buf += d
        i = 0
        while True:
            if len(buf) - i < 2:
                break
            rl, mult, j = 0, 1, i + 1
            while j < len(buf) and buf[j] & 0x80:
                rl += (buf[j] & 0x7F) * mult
                mult *= 128
                j += 1
            if j >= len(buf):
                break
            rl += buf[j] * mult
            end = j + 1 + rl
            if end > len(buf):
                break
            if buf[i] >> 4 == 3:
                n += 1
            i = end
        buf = buf[i:]
        last = time.monotonic()
    return n, last


def throughput(pub_port, sub_port, topic):
    sub = raw(sub_port, "bsub", topic)
    pub = raw(pub_port, "bpub")
    time.sleep(0.3)
    pkt = mt.publish(topic, b"x" * 64)
    t0 = time.monotonic()
    chunk = pkt * 1000
    for _ in range(N // 1000):
        pub.sendall(chunk)
    n, last = count_publishes(sub, N, t0 + 30)
    sub.close()
    pub.close()
    return n, n / (last - t0) if last > t0 else 0.0


def latency(pub_port, sub_port, topic):
    sub = raw(sub_port, "lsub", topic)
    pub = raw(pub_port, "lpub")
    time.sleep(0.3)
    sub.settimeout(2)
    lat = []
    for _ in range(LAT):
        t = time.monotonic()
        pub.sendall(mt.publish(topic, struct.pack("!d", t) + b"y" * 56))
        buf = b""
        while True:
            try:
                buf += sub.recv(4096)
            except socket.timeout:
                break
            if len(buf) >= 2 and len(buf) >= 2 + buf[1]:
                lat.append(time.monotonic() - t)
                break
    sub.close()
    pub.close()
    lat.sort()
    if not lat:
        return None
    return (lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, lat[-1] * 1e3, len(lat))


def main():
    h = cl.Cluster("bench-cluster")
    rows = []
    try:
        one = h.broker("", name="single")
        rows.append(("one node", throughput(one.port, one.port, "b/t"), latency(one.port, one.port, "b/l")))
        n = h.nats()
        a = h.node(n.url(), "a")
        b = h.node(n.url(), "b")
        h.wait_log(a, "node b (instance")
        rows.append(("two nodes (a -> b)", throughput(a.port, b.port, "b/t"), latency(a.port, b.port, "b/l")))
        mq = mt.free_port()
        conf = h.file("nats-mqtt.conf", 'server_name: nm\nlisten: "127.0.0.1:%d"\njetstream { store_dir: "%s" }\n'
                      'mqtt { listen: "127.0.0.1:%d" }\n' % (mt.free_port(), os.path.join(h.dir, "nm-js"), mq))
        import subprocess
        p = subprocess.Popen([cl.NATS, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", mq), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.05)
            rows.append(("NATS MQTT (one server)", throughput(mq, mq, "b/t"), latency(mq, mq, "b/l")))
        finally:
            p.terminate()
            p.wait()
    finally:
        h.cleanup()
        h.remove_dir()
    print("| set-up | QoS 0 msgs/s (received of %d) | latency p50 / p99 / max (ms) |" % N)
    print("|---|---|---|")
    for name, (got, rate), lat in rows:
        ls = "%.2f / %.2f / %.2f" % lat[:3] if lat else "-"
        print("| %s | %.0f (%d) | %s |" % (name, rate, got, ls))


if __name__ == "__main__":
    main()
