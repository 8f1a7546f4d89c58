#!/usr/bin/python3
"""A bridge whose remote is a host name never pauses the broker while the name is looked up.

The bridging vigil runs inside a network namespace made by the test (`ip netns exec` also mounts
/etc/netns/NS/resolv.conf and hosts over /etc, so the test chooses the resolver). Its resolver is
a UDP socket the test holds open on the root side of the veth and never answers: a lookup of a
name that is not in the namespace's hosts file hangs for the resolver's timeout (3 s here). One
bridge points at such a name (and retries every second); a second bridge points at a name the
hosts file maps to a remote vigil in the root namespace. Meanwhile a client of the bridging vigil
pings every 50 ms: with the lookup on the loop (vigil before net/resolve.c) a ping waits ~3 s;
now every ping is answered promptly, a keepalive deadline falls due on time during the stall, the
named bridge carries messages, and the stalled one logs the resolver's error.

Contracts: v311 MQTT-3.1.2-24 (the keepalive deadline of a silent client holds while a lookup
hangs); bridges are outside the MQTT specification. vigil-only in spirit, but mosquitto would
stall the same way (it resolves on its loop), so it runs only on vigil.
mqtt-spec: 3.1.1
"""
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402
from live import check, note, timeout, vigil_only  # noqa: E402
import mqtt_test as mt  # noqa: E402

STALL_S = 3


def _etc(t, ns, host_ip):
    d = "/etc/netns/" + ns.ns
    os.makedirs(d)
    t.defer(lambda: shutil.rmtree(d, ignore_errors=True))
    with open(d + "/resolv.conf", "w") as f:
        f.write("nameserver %s\noptions timeout:%d attempts:1\n" % (host_ip, STALL_S))
    with open(d + "/hosts", "w") as f:
        f.write("127.0.0.1 localhost\n%s remote.vigil-dns.test\n" % host_ip)


def _start_in_ns(t, ns, conf_text, port):
    conf = os.path.join(t.dir, "bridging.conf")
    log = os.path.join(t.dir, "bridging.log")
    with open(conf, "w") as f:
        f.write(conf_text)
    logf = open(log, "ab")
    try:
        p = subprocess.Popen(ns.exec_argv([mt.broker_bin(), "-c", conf, "-v"]), stdin=subprocess.DEVNULL,
                             stdout=logf, stderr=logf, cwd=t.dir)
    finally:
        logf.close()

    def stop():
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        text = open(log, "rb").read().decode("utf-8", "replace")
        for m in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            check(m not in text, "bridging vigil: %r in its log" % m)
    t.defer(stop)
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        try:
            socket.create_connection((ns.ns_ip, port), timeout=0.5).close()
            return log
        except OSError:
            time.sleep(0.05)
    mt.fail("the bridging vigil did not listen on %s:%d; log:\n%s"
            % (ns.ns_ip, port, open(log, "rb").read().decode("utf-8", "replace")[-2000:]))


def _client(t, host, port, name):
    """A mqtt_test.Client on host:port (its constructor knows only 127.0.0.1)."""
    c = mt.Client.__new__(mt.Client)
    c.h, c.proto, c.timeout, c.name, c.next_mid = t, 4, 5.0, name, 1
    c.sock = socket.create_connection((host, port), timeout=5)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.buf, c.pending = b"", []
    t._clients.append(c)
    return c


@vigil_only("mosquitto resolves bridge addresses on its loop")
@timeout(40)
def test_lookup_stall_does_not_pause_the_loop(t):
    ns = live.NetNS.create(t)
    _etc(t, ns, ns.host_ip)
    dns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the resolver that never answers
    try:
        dns.bind((ns.host_ip, 53))
    except OSError as e:
        raise mt.Skip("cannot bind %s:53 for the silent resolver: %s" % (ns.host_ip, e))
    t.defer(dns.close)
    remote = t.broker("listener {port2} %s\n" % ns.host_ip, name="remote")
    rsub = t.connect(remote.port, "rsub")
    rsub.subscribe("dns/#")
    port = live.free_port()
    log = _start_in_ns(t, ns, (
        "listener %d %s\nallow_anonymous true\n"
        "connection stalled\naddress stall.vigil-dns.test:%d\ntopic nothing/# out 0\n"
        "restart_timeout 1\n"
        "connection named\naddress remote.vigil-dns.test:%d\ntopic dns/# out 0\n"
        % (port, ns.ns_ip, remote.port2, remote.port2)), port)
    t0 = time.monotonic()
    c = _client(t, ns.ns_ip, port, "pinger")
    c.send(mt.connect("pinger", keepalive=60))
    c.expect_type(mt.CONNACK)
    silent = socket.create_connection((ns.ns_ip, port), timeout=5)
    silent.sendall(mt.connect("silent", keepalive=1))
    silent_sent = time.monotonic()
    worst = 0.0
    n = 0
    while time.monotonic() - t0 < STALL_S + 2.5:
        s = time.monotonic()
        c.send(mt.pingreq())
        c.expect_type(mt.PINGRESP)
        worst = max(worst, time.monotonic() - s)
        n += 1
        time.sleep(0.05)
    note(t, "%d pings over %.1f s while the lookup hung: slowest %.1f ms" % (n, STALL_S + 2.5, worst * 1000))
    check(worst < 0.5, "a PINGREQ waited %.0f ms for its PINGRESP (the lookup stalls for %d s)"
          % (worst * 1000, STALL_S))
    # the silent client (keepalive 1) was closed 1.5 s after its CONNECT, in the middle of the stall
    silent.settimeout(0.1)
    closed_at = None
    buf = b""
    while closed_at is None and time.monotonic() - silent_sent < 10:
        try:
            d = silent.recv(100)
        except socket.timeout:
            continue
        except OSError:
            d = b""
        if not d:
            closed_at = time.monotonic()
        buf += d
    silent.close()
    check(closed_at is not None, "the silent client was not closed")
    # the read loop above started after the pings: only the lower bound and the close are
    # meaningful here; precision is tests/liveness/test_keepalive.py's
    check(closed_at - silent_sent >= 1.5 - live.EARLY_TOL, "silent client closed early")
    # the named bridge works through the asynchronous lookup
    c.send(mt.publish("dns/x", b"via-name"))
    rsub.expect_publish("dns/x", b"via-name", timeout=5)
    text = open(log, "rb").read().decode("utf-8", "replace")
    check("Bridge named connected to remote.vigil-dns.test:%d" % remote.port2 in text,
          "named bridge connected line missing; log:\n%s" % text[-1500:])
    check("Bridge stalled: cannot connect to stall.vigil-dns.test:%d:" % remote.port2 in text,
          "stalled bridge: no resolver error logged; log:\n%s" % text[-1500:])


if __name__ == "__main__":
    sys.exit(live.main(globals()))
