#!/usr/bin/python3
"""Liveness is observable: $SYS counters and the timeout log line.

`sys_interval 1`: every second the broker publishes, retained, $SYS/broker/clients/expired
(sessions expired; mosquitto's topic) and vigil's $SYS/broker/vigil/keepalive_timeouts,
wills_published, preconnect_timeouts and halfopen_closes. We cause a known number of each event
and read the counters. halfopen_closes needs a dead peer with unsent data (test_halfopen.py
checks it); here it must stay 0, since every peer below vanished visibly or merely fell silent
with nothing queued.
mqtt-spec: both
"""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402
from live import check, note, vigil_only, timeout  # noqa: E402
from mqtt_test import SESSION_EXPIRY  # noqa: E402

EXPIRED = "$SYS/broker/clients/expired"
V = "$SYS/broker/vigil/"
COUNTERS = [V + "keepalive_timeouts", V + "wills_published", V + "preconnect_timeouts",
            V + "halfopen_closes"]


@timeout(20)
def test_sys_clients_expired_v5_MQTT_4_1_0_2(t):
    # v5 MQTT-4.1.0-2: a session whose connection closed is discarded when its Session Expiry
    # Interval has passed; $SYS/broker/clients/expired counts them (2 sessions of 1 s expire).
    b = t.broker("sys_interval 1\n")
    before = live.read_sys(t, b, [EXPIRED], timeout=3.0)[EXPIRED]
    for i in range(2):
        c = t.connect(b.port, "ob-exp%d" % i, proto=5, clean=True,
                      properties=[(SESSION_EXPIRY, 1)])
        c.disconnect()
    keep = t.connect(b.port, "ob-keep", proto=5, properties=[(SESSION_EXPIRY, 600)])
    keep.disconnect()
    got = live.read_sys(t, b, [EXPIRED], timeout=5.0, want={EXPIRED: before + 2})
    time.sleep(1.2)  # one more period: it must not count the 600 s session
    got = live.read_sys(t, b, [EXPIRED], timeout=3.0)
    check(got[EXPIRED] == before + 2, "%s = %r, want %d" % (EXPIRED, got[EXPIRED], before + 2))


@vigil_only("vigil's own $SYS counters and log text")
@timeout(25)
def test_sys_vigil_counters_and_log_v311_MQTT_3_1_2_24(t):
    # One keepalive timeout (v311 MQTT-3.1.2-24) with a will, one will after a FIN (v311
    # MQTT-3.1.2-8), one socket that never sends CONNECT (connect_timeout 2): the counters read
    # keepalive_timeouts 1, wills_published 2, preconnect_timeouts 1, halfopen_closes 0; the log
    # says "Client ob-silent has exceeded timeout, disconnecting." followed by the measured
    # silence (a number of seconds between 1.5 and 1.5 + LATE).
    b = t.broker("sys_interval 1\nconnect_timeout 2\n")
    base = live.read_sys(t, b, COUNTERS, timeout=3.0)
    check(all(v == 0 for v in base.values()), "counters of a fresh broker: %r" % base)
    obs = live.observer(t, b, ["ob/#"])
    raw = socket.create_connection(("127.0.0.1", b.port))
    t.defer(raw.close)
    t.connect(b.port, "ob-silent", keepalive=1, will={"topic": "ob/silent", "payload": "ka"})
    fin = t.connect(b.port, "ob-fin", keepalive=60, will={"topic": "ob/fin", "payload": "fin"})
    fin.close()
    wills = live.wait_publishes(obs, 2, 4.0)
    check(sorted(p["topic"] for p in wills) == ["ob/fin", "ob/silent"], "wills: %r" % wills)
    want = {V + "keepalive_timeouts": 1, V + "wills_published": 2, V + "preconnect_timeouts": 1}
    live.read_sys(t, b, COUNTERS, timeout=5.0, want=want)
    time.sleep(1.2)  # nothing else may be counted in the next period
    got = live.read_sys(t, b, COUNTERS, timeout=3.0)
    want[V + "halfopen_closes"] = 0
    check(got == want, "counters %r, want %r" % (got, want))
    m = re.search(r"Client ob-silent has exceeded timeout, disconnecting\.(.*)", b.log())
    check(m, "no 'Client ob-silent has exceeded timeout, disconnecting.' in the log:\n"
          + b.log_tail())
    nums = [float(x) for x in re.findall(r"\d+\.\d+", m.group(1))]
    note(t, "log line tail: %r" % m.group(1).strip())
    check(any(1.5 <= x <= 1.5 + live.LATE + 0.01 for x in nums),
          "the log line does not give the measured silence (1.5 s .. 1.5 s + LATE): %r"
          % m.group(1))


if __name__ == "__main__":
    sys.exit(live.main(globals()))
