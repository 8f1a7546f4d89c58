#!/usr/bin/python3
"""bench/cluster_qos1.py - cross-node QoS 1 cost (issue 12 item 8): what the publisher's wait for
JetStream's confirmation costs.

Two vigil nodes and one nats-server (JetStream, replicas 1); publisher on a, QoS 1 subscriber on b
(it acknowledges each message). Latency: BENCH_LAT messages one at a time: PUBLISH -> PUBACK at the
publisher, and PUBLISH -> delivery at the subscriber (p50 / p99 ms). Throughput: BENCH_N messages with
at most BENCH_WINDOW unacknowledged at the publisher, time until all are acknowledged and delivered.
Run it once per binary (VIGIL=path) to compare; raw Python clients, figures for comparison on one
host only. Env: BENCH_N (5000), BENCH_LAT (300), BENCH_WINDOW (100), VIGIL.
"""
import os
import select
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "cluster"))
if os.environ.get("VIGIL"):
    os.environ["VIGIL_BIN"] = os.environ["VIGIL"]
import cluster_lib as cl  # noqa: E402
from cluster_lib import mt  # noqa: E402

N = int(os.environ.get("BENCH_N", "5000"))
LAT = int(os.environ.get("BENCH_LAT", "300"))
WINDOW = int(os.environ.get("BENCH_WINDOW", "100"))


def packets(c):
    """The packets c has now."""
    out = []
    while c.buf or select.select([c.sock], [], [], 0)[0]:
        out.append(mt.parse(c.recv("a packet")))
    return out


def pump(pub, sub, acked, got, wait):
    """Wait up to wait s for either client, then take what both have."""
    if not pub.buf and not sub.buf:
        select.select([pub.sock, sub.sock], [], [], wait)
    for p in packets(pub):
        if p["type"] == mt.PUBACK:
            acked[p["mid"]] = time.monotonic()
    for p in packets(sub):
        if p["type"] == mt.PUBLISH:
            got[int(p["payload"])] = time.monotonic()
            sub.send(mt.puback(p["mid"]))


def pct(v, q):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * q))] * 1e3


def main():
    h = cl.Cluster("bench-cluster-qos1")
    try:
        n = h.nats()
        a = h.node(n.url(), "a")
        b = h.node(n.url(), "b", "max_queued_messages 0\n")
        h.wait_log(a, "node b (instance")
        sub = h.connect(b, "sub")
        sub.subscribe([("q/#", 1)])
        time.sleep(0.3)
        pub = h.connect(a, "pub")
        ack_lat, del_lat = [], []
        for i in range(LAT):
            acked, got = {}, {}
            t = time.monotonic()
            pub.send(mt.publish("q/l", b"%d" % i, qos=1, mid=i % 65535 + 1))
            while (not acked or not got) and time.monotonic() - t < 5:
                pump(pub, sub, acked, got, 0.05)
            ack_lat += [x - t for x in acked.values()]
            del_lat += [x - t for x in got.values()]
        acked, got = {}, {}
        sent, t0 = 0, time.monotonic()
        while (len(acked) < N or len(got) < N) and time.monotonic() - t0 < 60:
            while sent < N and sent - len(acked) < WINDOW:
                pub.send(mt.publish("q/t", b"%d" % sent, qos=1, mid=sent % 65535 + 1))
                sent += 1
            pump(pub, sub, acked, got, 0.01)
        took = max(list(acked.values()) + list(got.values())) - t0
        print("| %s | %.0f msgs/s (%d acked, %d delivered of %d) | %.2f / %.2f | %.2f / %.2f |" % (
            os.path.basename(os.environ.get("VIGIL_BIN", "vigil")), N / took, len(acked), len(got), N,
            pct(ack_lat, 0.5), pct(ack_lat, 0.99), pct(del_lat, 0.5), pct(del_lat, 0.99)))
    finally:
        h.cleanup()
        h.remove_dir()


if __name__ == "__main__":
    print("| binary | QoS 1 throughput, window %d | PUBACK p50 / p99 (ms) | delivery p50 / p99 (ms) |" % WINDOW)
    print("|---|---|---|---|")
    main()
