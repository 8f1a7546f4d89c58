#!/usr/bin/python3
"""MQTT 5 neighbours of keepalive: Server Keep Alive, DISCONNECT reasons, will delay; and wills on
takeover and in bursts.

Bounds: deadlines never early, at most LATE late (100 ms; 250 ms under sanitizers only).
mqtt-spec: both
"""
import os
import random
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402
from live import (check, connect, note, vigil_only, timeout, is_disconnect,  # noqa: E402
                  Closed)
import mqtt_test as mt  # noqa: E402
from mqtt_test import SERVER_KEEP_ALIVE, SESSION_EXPIRY, WILL_DELAY  # noqa: E402


def _ska(p):
    return dict(p.get("properties") or []).get(SERVER_KEEP_ALIVE)


@timeout(15)
def test_max_keepalive_in_connack_v5_MQTT_3_2_2_21_MQTT_3_2_2_22(t):
    # `max_keepalive CAP`: v5 clients asking more than CAP, or 0, get Server Keep Alive CAP in
    # CONNACK (v5 MQTT-3.2.2-21: the client must then use it); one asking less gets none (v5
    # MQTT-3.2.2-22: the server uses the client's value). A v3.1.1 client asking more than CAP is
    # accepted and keeps its value, as mosquitto 2.0.11 does (no normative statement: v3.1.1 has
    # no way to tell the client another value): with CAP 2 it is still connected 4 s later, silent.
    # (mosquitto accepts no CAP below 10, so there CAP is 10 and the 4 s wait is left out; checked
    # by hand: mosquitto 2.0.11 leaves a v3.1.1 client with keepalive 30 connected past 22 s.)
    cap = 2 if live.VIGIL else 10
    b = t.broker("max_keepalive %d\n" % cap)
    for k, want in ((5 * cap, cap), (0, cap), (cap - 1, None), (cap, None)):
        c = t.connect(b.port, "mk-v5-%d" % k, proto=5, keepalive=k)
        check(_ska(c.connack) == want, "v5 keepalive %d: Server Keep Alive %r in CONNACK, want %r "
              "(properties %r)" % (k, _ska(c.connack), want, c.connack.get("properties")))
        c.disconnect()
    c = t.connect(b.port, "mk-v311", proto=4, keepalive=5 * cap)
    if live.VIGIL:
        time.sleep(4.0)
        check(c.is_open(0.05), "v3.1.1 client with keepalive 10 > max_keepalive 2 was disconnected "
              "within 4 s (mosquitto 2.0.11 lets it keep 10)")


@vigil_only("precision: at most 100 ms after 1.5 x K")
@timeout(15)
def test_server_keep_alive_enforced_v5_MQTT_3_1_2_22_MQTT_3_2_2_21(t):
    # v5 MQTT-3.1.2-22 with the Server Keep Alive of CONNACK (v5 MQTT-3.2.2-21): with max_keepalive
    # 2, silent v5 clients that asked 10 or 0 get DISCONNECT 0x8D and the close 3 s after CONNECT;
    # one that asked 1 (below the cap) 1.5 s after.
    b = t.broker("max_keepalive 2\n")
    fleet = live.Fleet(b.port)
    t.defer(fleet.close)
    peers = []
    for asked, used in ((10, 2), (0, 2), (1, 1)):
        c = t.client(b.port, proto=5, name="ska-%d" % asked)
        t_last = time.monotonic()
        c.send(connect("ska-%d" % asked, proto=5, keepalive=asked))
        c.expect_type(mt.CONNACK)
        p = fleet.adopt(c, used, t_last)
        p.proto = 5
        peers.append(p)
    fleet.watch(time.monotonic() + 3.0 + live.LATE + 1.0)
    problems, summary = live.lateness_report(peers, lambda p: 1.5 * p.k)
    for p in peers:
        pk = p.packets()
        if not pk or not is_disconnect(pk[-1], 0x8D):
            problems.append("%s: no DISCONNECT 0x8D before the close (got %s)"
                            % (p.cid, mt.hexs(bytes(p.buf))))
    note(t, summary)
    check(not problems, live.summarize(problems))


@timeout(15)
def test_takeover_old_v5_connection_gets_0x8E_v5_MQTT_3_1_4_3(t):
    # v5 MQTT-3.1.4-3: a second CONNECT with the same Client Identifier closes the first
    # connection (MUST), after DISCONNECT 0x8E (Session taken over; "sends", as section 4.13
    # describes; vigil promises it, mosquitto 2.0.11 closes without it, so there a bare close is
    # accepted). Read promptly: vigil may close abortively right after writing it.
    b = t.broker()
    old = t.connect(b.port, "tk-v5", proto=5, keepalive=60, name="old")
    new = t.connect(b.port, "tk-v5", proto=5, keepalive=60, name="new")
    try:
        got = old.recv_packet(2.0)
    except Closed:
        got = None
    check(got is not None or not live.VIGIL, "old connection: closed without DISCONNECT 0x8E")
    if got is not None:
        check(is_disconnect(got, 0x8E), "old connection: want DISCONNECT 0x8E, got %s (%s)"
              % (mt.describe(got, 5), mt.hexs(got)))
        old.expect_closed(2.0)
    check(new.is_open(0.1), "the new connection was closed too")


def _v5_will_client(t, b, cid, delay, expiry, topic=None):
    return t.connect(b.port, cid, proto=5, keepalive=60, clean=True,
                     properties=[(SESSION_EXPIRY, expiry)],
                     will={"topic": topic or "wd/" + cid, "payload": cid,
                           "properties": [(WILL_DELAY, delay)]})


@vigil_only("precision of the will delay timer (same wheel as keepalive)")
@timeout(20)
def test_will_delay_deadline_order_v5_MQTT_3_1_2_8(t):
    # v5 MQTT-3.1.2-8 (will sent once the Will Delay Interval has passed): three clients with
    # session expiry 60 and will delays 3, 1, 2 s die (RST) at 0, 0.5 and 0.2 s: their wills
    # arrive in deadline order (1.5, 2.2, 3.0 s), each not before its death + delay and at most
    # LATE after.
    b = t.broker()
    obs = live.observer(t, b, ["wd/#"])
    plan = [("wd-a", 3, 0.0), ("wd-b", 1, 0.5), ("wd-c", 2, 0.2)]
    cs = {cid: _v5_will_client(t, b, cid, delay, 60) for cid, delay, _ in plan}
    died = {}
    t0 = time.monotonic()
    for cid, delay, at in sorted(plan, key=lambda x: x[2]):
        while time.monotonic() < t0 + at:
            time.sleep(0.002)
        died[cid] = time.monotonic()
        cs[cid].reset()
    got = live.wait_publishes(obs, 3, 3.0 + live.LATE + 1.5)
    order = [p["topic"] for p in got]
    check(order == ["wd/wd-b", "wd/wd-c", "wd/wd-a"], "wills in order %r, want wd-b, wd-c, wd-a"
          % order)
    delays = dict((cid, d) for cid, d, _ in plan)
    lines = []
    for p in got:
        cid = p["topic"][3:]
        d = p["t"] - died[cid]
        lines.append("%s %.3f s (delay %d)" % (cid, d, delays[cid]))
        check(d >= delays[cid] - live.EARLY_TOL, "%s: will %.3f s after death, before its delay "
              "%d s" % (cid, d, delays[cid]))
        check(d <= delays[cid] + live.LATE, "%s: will %.3f s after death, delay %d s (+%.0f ms > "
              "%.0f ms)" % (cid, d, delays[cid], (d - delays[cid]) * 1000, live.LATE * 1000))
    note(t, ", ".join(lines))
    check(not live.wait_publishes(obs, 1, 0.3), "a will arrived twice")


@timeout(15)
def test_reconnect_within_will_delay_cancels_will_v5_MQTT_3_1_3_9(t):
    # v5 MQTT-3.1.3-9: the client dies (RST) with will delay 1 s and session expiry 60, and
    # reconnects to its session (Clean Start 0) after 0.3 s: the will is never sent (we wait 2 s).
    b = t.broker()
    obs = live.observer(t, b, ["wd/#"])
    c = _v5_will_client(t, b, "wd-back", 1, 60)
    c.reset()
    time.sleep(0.3)
    c2 = t.connect(b.port, "wd-back", proto=5, keepalive=60, clean=False,
                   properties=[(SESSION_EXPIRY, 60)], session_present=True, name="again")
    got = live.wait_publishes(obs, 1, 2.0)
    check(not got, "the will was sent although the client came back within the delay: %r" % got)
    c2.disconnect()


@vigil_only("precision: the will goes out at session expiry, at most LATE after")
@timeout(15)
def test_will_never_outlives_session_v5_MQTT_3_1_2_8(t):
    # v5 MQTT-3.1.2-8: the will is published when the Will Delay Interval passes OR the session
    # ends, whichever is first: will delay 5 s but session expiry 1 s -> will 1 s after death.
    b = t.broker()
    obs = live.observer(t, b, ["wd/#"])
    c = _v5_will_client(t, b, "wd-short", 5, 1)
    t0 = time.monotonic()
    c.reset()
    got = live.wait_publishes(obs, 1, 3.0)
    check(got, "no will within 3 s (session expiry 1 s, will delay 5 s)")
    d = got[0]["t"] - t0
    note(t, "will %.3f s after death (session expiry 1 s, will delay 5 s)" % d)
    check(1.0 - live.EARLY_TOL <= d <= 1.0 + live.LATE, "will %.3f s after death, want session "
          "expiry 1.000 s (+ at most %.0f ms)" % (d, live.LATE * 1000))


@vigil_only("mosquitto 2.0.11 drops the old connection's will on takeover")
@timeout(15)
def test_takeover_v311_persistent_publishes_old_will_v311_MQTT_3_1_2_8(t):
    # v311 MQTT-3.1.2-8: the will is published when the network connection is closed without
    # DISCONNECT; a takeover (v311 MQTT-3.1.4-2) closes the old connection that way, so its will
    # goes out, also when the session (Clean Session 0) lives on. Exactly once.
    b = t.broker()
    obs = live.observer(t, b, ["tk/#"])
    t.connect(b.port, "tk-v311", proto=4, clean=False, keepalive=60,
              will={"topic": "tk/old", "payload": "old will"}, name="old")
    t.connect(b.port, "tk-v311", proto=4, clean=False, keepalive=60, session_present=True,
              name="new")
    got = live.wait_publishes(obs, 2, 1.0)
    check(len(got) == 1 and got[0]["payload"] == b"old will",
          "want the old connection's will once, got %r" % [(p["topic"], p["payload"]) for p in got])


@timeout(60)
def test_burst_of_wills_exactly_once_v311_MQTT_3_1_2_8_MQTT_3_1_2_10(t):
    # v311 MQTT-3.1.2-8 / MQTT-3.1.2-10: 1 000 clients with wills reset their connections at
    # once: exactly 1 000 wills arrive, each once (the will is deleted once published).
    n = live.scaled(1000)
    live.raise_fd_limit(n + 100)
    b = t.broker()
    obs = live.observer(t, b, ["burst/#"])
    specs = [(4, 60, "bw%d" % i, connect("bw%d" % i, keepalive=60,
                                         will={"topic": "burst/%d" % i, "payload": b"w"}))
             for i in range(n)]
    fleet = live.Fleet(b.port)
    t.defer(fleet.close)
    peers = fleet.connect_all(specs, keep_alive_every=0)
    linger = struct.pack("ii", 1, 0)
    t0 = time.monotonic()
    for p in peers:
        p.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        p.sock.close()
    got = live.wait_publishes(obs, n, 10.0)
    got += live.wait_publishes(obs, 1, 0.5)  # a duplicate would come right behind
    topics = [p["topic"] for p in got]
    seen, dups = set(), []
    for x in topics:
        if x in seen:
            dups.append(x)
        seen.add(x)
    note(t, "%d wills in %.2f s" % (len(got), (got[-1]["t"] - t0) if got else 0))
    missing = n - len(seen)
    check(not dups and missing == 0, "%d wills distinct of %d, %d missing, duplicates: %r"
          % (len(seen), n, missing, dups[:10]))


if __name__ == "__main__":
    random.seed()
    sys.exit(live.main(globals()))
