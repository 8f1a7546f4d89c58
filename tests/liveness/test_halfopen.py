#!/usr/bin/python3
"""Half-open peers: the client's host vanishes and nothing arrives any more (no FIN, no RST).

Each test makes its own network namespace joined by a veth pair (10.x /30, unique names), runs
the broker in the root namespace with a second listener on the veth address, connects a client
from inside the namespace (nsclient.py under `ip netns exec`), then cuts the link (the namespace
side of the veth goes down) or drops everything with a firewall inside the namespace. An observer
on loopback waits for the dead client's will. Needs root and ip netns: otherwise each test prints
"SKIP: needs root / ip netns" (exit 0). Namespaces and veths are removed even on failure.

Contracts: v311 MQTT-3.1.2-24 / v5 MQTT-3.1.2-22 (closed 1.5 x K after the last packet, at most
100 ms late, 250 ms under sanitizers), v311/v5 MQTT-3.1.2-8 (will published on the network
failure); vigil's own: a backlog of unsent data does not delay detection, the socket is closed
abortively (nothing left in FIN-WAIT / ESTABLISHED), `tcp_user_timeout MS` bounds writes to a
vanished peer, `tcp_keepalive IDLE INTERVAL COUNT` finds dead peers of keepalive-0 clients.
mqtt-spec: both
"""
import os
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402
from live import check, publish, pingreq, note, vigil_only, timeout  # noqa: E402
import mqtt_test as mt  # noqa: E402

LINGERING = ("ESTAB", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSING", "LAST-ACK", "CLOSE-WAIT", "SYN-RECV")


def _setup(t, listener_opts="", global_opts=""):
    ns = live.NetNS.create(t)
    b = t.broker("%slistener {port2} %s\n%s" % (global_opts, ns.host_ip, listener_opts))
    obs = live.observer(t, b, ["ho/will/#"])
    cl = live.NsClient(t, ns, ns.host_ip, b.port2)
    return ns, b, obs, cl


def _connect(cl, cid, k, topic=None):
    ans = cl.cmd(op="connect", id=cid, proto=4, keepalive=k, will_topic="ho/will/" + cid,
                 will_payload="dead")
    check(ans.get("rc") == 0, "CONNACK rc %r" % ans.get("rc"))
    if topic:
        ans = cl.cmd(op="subscribe", topic=topic, qos=0)
    return ans["t_send"]


def _will_in_window(t, obs, cid, t_ref, due, late, what):
    """The will of cid arrives in [t_ref + due, t_ref + due + late]; returns its arrival time."""
    got = live.wait_publishes(obs, 1, due + late + 2.0, topics=["ho/will/" + cid])
    check(got, "%s: no will within %.1f s of its last packet (%s)" % (cid, due + late + 2.0, what))
    d = got[0]["t"] - t_ref
    note(t, "%s: will %.3f s after the last packet (due %.3f, %+.0f ms)"
         % (what, d, due, (d - due) * 1000))
    check(d >= due - live.EARLY_TOL, "%s: will EARLY, %.3f s after the last packet, due %.3f"
          % (what, d, due))
    check(d <= due + late, "%s: will LATE, %.3f s after the last packet, due %.3f (+%.0f ms > "
          "%.0f ms)" % (what, d, due, (d - due) * 1000, late * 1000))
    return got[0]["t"]


def _no_lingering_socket(ns, what):
    """After a moment, no root-namespace socket to the dead peer in a live state."""
    time.sleep(0.2)
    left = [s for s in live.tcp_states_to(ns.ns_ip) if s in LINGERING]
    check(not left, "%s: sockets to the dead peer %s still in %s (vigil should close abortively "
          "with SO_LINGER 0)" % (what, ns.ns_ip, left))


@vigil_only("precision: at most 100 ms after 1.5 x K")
@timeout(20)
def test_link_down_v311_MQTT_3_1_2_24_MQTT_3_1_2_8(t):
    # v311 MQTT-3.1.2-24 + MQTT-3.1.2-8: K=1, the link goes down right after CONNECT: the will
    # reaches the observer 1.5 s after the CONNECT, at most LATE after that.
    ns, b, obs, cl = _setup(t)
    t_last = _connect(cl, "ho-link", 1)
    ns.cut_link()
    _will_in_window(t, obs, "ho-link", t_last, 1.5, live.LATE, "link down")
    _no_lingering_socket(ns, "link down")


@vigil_only("precision: at most 100 ms after 1.5 x K")
@timeout(20)
def test_firewall_drop_v311_MQTT_3_1_2_24_MQTT_3_1_2_8(t):
    # v311 MQTT-3.1.2-24 + MQTT-3.1.2-8: K=2, a firewall inside the namespace drops everything
    # in and out after the last PINGREQ: the will comes 3 s after that PINGREQ, at most LATE later.
    ns, b, obs, cl = _setup(t)
    _connect(cl, "ho-fw", 2)
    time.sleep(0.5)
    t_last = cl.cmd(op="ping")["t_send"]
    ns.firewall_drop()
    _will_in_window(t, obs, "ho-fw", t_last, 3.0, live.LATE, "firewall DROP")
    _no_lingering_socket(ns, "firewall DROP")


def _flood_until_will(t, b, obs, ns, cid, limit, probe=None):
    """Publish 1 KB QoS 0 messages to ho/busy at ~1 MB/s (the dead client's topic) until the will
    of cid arrives or limit s pass. A loopback prober (if given) does a PINGREQ round trip every
    100 ms. Returns (will arrival time or None, first publish time, max RTT, max Send-Q seen)."""
    pub = t.connect(b.port, "ho-flooder", keepalive=60, name="flooder")
    payload = b"z" * 1000
    msg = publish("ho/busy", payload)
    t_first = time.monotonic()
    pub.send(msg)
    next_pub, next_probe, next_ss = t_first + 0.001, t_first + 0.05, t_first + 0.2
    ping_sent, max_rtt, max_sendq, rtts = None, 0.0, 0, 0
    will_t = None
    deadline = t_first + limit
    while time.monotonic() < deadline:
        socks = [obs.sock] + ([probe.sock] if probe else [])
        r, _, _ = select.select(socks, [], [], 0.001)
        now = time.monotonic()
        if obs.sock in r:
            for p in live.poll_publishes(obs, topics=["ho/will/" + cid]):
                will_t = p["t"]
        if probe and probe.sock in r:
            raw = probe.recv_packet(1.0)
            check(raw == mt.pingresp(), "prober got %s" % mt.hexs(raw))
            max_rtt = max(max_rtt, now - ping_sent)
            rtts += 1
            ping_sent = None
        if will_t is not None:
            break
        if now >= next_pub:
            pub.send(msg)
            next_pub += 0.001
        if probe and ping_sent is None and now >= next_probe:
            ping_sent = time.monotonic()
            probe.send(pingreq())
            next_probe = ping_sent + 0.1
        if now >= next_ss:
            out = live.run_cmd(["ss", "-tanH", "dst", ns.ns_ip], check_rc=False)
            for line in out.splitlines():
                cols = line.split()
                if len(cols) >= 3 and cols[2].isdigit():
                    max_sendq = max(max_sendq, int(cols[2]))
            next_ss = now + 0.2
    if probe:
        check(rtts >= 3, "prober got only %d PINGRESPs during the flood" % rtts)
    return will_t, t_first, max_rtt, max_sendq



@vigil_only("precision with a backlog; abortive close; $SYS/broker/vigil/halfopen_closes")
@timeout(30)
def test_link_down_with_backlog_v311_MQTT_3_1_2_24(t):
    # v311 MQTT-3.1.2-24: K=2, the dead client is subscribed to ho/busy, which a publisher floods
    # at QoS 0 while its link is down, so the broker holds unsent data for it. Detection is not
    # delayed (will 3 s after SUBSCRIBE, at most LATE later), another client's PINGREQ round
    # trip stays under LATE meanwhile, the socket does not linger in the kernel (abortive close),
    # and $SYS/broker/vigil/halfopen_closes counts it.
    ns, b, obs, cl = _setup(t, global_opts="sys_interval 1\n")
    probe = t.connect(b.port, "ho-probe", keepalive=60, name="probe")
    t_last = _connect(cl, "ho-busy", 2, topic="ho/busy")
    check("ESTAB" in live.tcp_states_to(ns.ns_ip), "no ESTAB socket to %s before the cut: the "
          "lingering check below would prove nothing" % ns.ns_ip)
    ns.cut_link()
    will_t, _t0, max_rtt, max_sendq = _flood_until_will(t, b, obs, ns, "ho-busy", 3.0 + 3.0, probe)
    check(will_t is not None, "no will within 6 s of the last packet despite K=2")
    d = will_t - t_last
    note(t, "will %.3f s after SUBSCRIBE (due 3.000); max PINGREQ RTT %.1f ms; max Send-Q %d"
         % (d, max_rtt * 1000, max_sendq))
    check(max_sendq > 0, "no unsent data seen in the kernel's Send-Q: the backlog did not build")
    check(d >= 3.0 - live.EARLY_TOL, "will EARLY: %.3f s after the last packet" % d)
    check(d <= 3.0 + live.LATE, "will LATE: %.3f s after the last packet (+%.0f ms > %.0f ms)"
          % (d, (d - 3.0) * 1000, live.LATE * 1000))
    check(max_rtt <= live.LATE, "PINGREQ round trip of another client took %.0f ms during the "
          "flood (bound %.0f ms)" % (max_rtt * 1000, live.LATE * 1000))
    _no_lingering_socket(ns, "backlog")
    live.read_sys(t, b, ["$SYS/broker/vigil/halfopen_closes"], timeout=3.0,
                  want={"$SYS/broker/vigil/halfopen_closes": 1})


@vigil_only("tcp_user_timeout is a vigil listener option")
@timeout(30)
def test_tcp_user_timeout_bounds_backlog_to_dead_peer(t):
    # vigil `tcp_user_timeout 2000`: a keepalive-0 client (no MQTT deadline at all) whose link is
    # down while the broker has data for it is closed about 2 s after the first unacknowledged
    # write (not before; at most 1 s after, for the kernel's retransmission timer), and its will
    # goes out (v311 MQTT-3.1.2-8).
    ns, b, obs, cl = _setup(t, listener_opts="tcp_user_timeout 2000\n")
    _connect(cl, "ho-uto", 0, topic="ho/busy")
    ns.cut_link()
    will_t, t_first, _rtt, max_sendq = _flood_until_will(t, b, obs, ns, "ho-uto", 2.0 + 3.0)
    check(will_t is not None, "no will within 5 s of the first unacknowledged write "
          "(tcp_user_timeout 2000)")
    d = will_t - t_first
    note(t, "closed %.3f s after the flood began (tcp_user_timeout 2.000 s); max Send-Q %d"
         % (d, max_sendq))
    check(d >= 2.0 - live.EARLY_TOL, "closed %.3f s after the first write, before 2 s" % d)
    check(d <= 3.0, "closed %.3f s after the first write (tcp_user_timeout 2000)" % d)
    _no_lingering_socket(ns, "tcp_user_timeout")


@vigil_only("tcp_keepalive is a vigil listener option")
@timeout(30)
def test_tcp_keepalive_finds_dead_keepalive0_client(t):
    # vigil `tcp_keepalive 1 1 2`: a keepalive-0 client whose link is down is found by the
    # kernel's probes: closed IDLE + INTERVAL x COUNT = 3 s after its last packet (not before;
    # at most 0.5 s later), its will published (v311 MQTT-3.1.2-8), counted as a half-open close.
    ns, b, obs, cl = _setup(t, listener_opts="tcp_keepalive 1 1 2\n", global_opts="sys_interval 1\n")
    t_last = _connect(cl, "ho-tka", 0)
    ns.cut_link()
    _will_in_window(t, obs, "ho-tka", t_last, 3.0, 0.5, "tcp_keepalive 1 1 2")
    _no_lingering_socket(ns, "tcp_keepalive")
    live.read_sys(t, b, ["$SYS/broker/vigil/halfopen_closes"], timeout=3.0,
                  want={"$SYS/broker/vigil/halfopen_closes": 1})


if __name__ == "__main__":
    sys.exit(live.main(globals()))
