#!/usr/bin/python3
"""Wall-clock changes never disconnect anyone; keepalive and will-delay timing stay exact.

design.md "Time and timers": timeouts run on CLOCK_MONOTONIC; wall-clock time only for persisted
deadlines, converted to monotonic ones when armed. We run vigil under a far-away TZ, under
libfaketime starting in 2030, and under libfaketime whose offset we change while clients are
connected (+2 h, then -3 h). FAKETIME_DONT_FAKE_MONOTONIC=1 keeps CLOCK_MONOTONIC real, as on a
real machine whose clock is stepped (libfaketime would otherwise move it too). The broker's log
timestamps (wall clock) prove the fake clock took effect.
Contracts: v311 MQTT-3.1.2-24 / v5 MQTT-3.1.2-22 (1.5 x K exactly, at most 100 ms late; 250 ms
under sanitizers only), v5 MQTT-3.1.2-8 (will after its delay).
mqtt-spec: both
"""
import glob
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402
from live import check, connect, pingreq, note, vigil_only, timeout  # noqa: E402
import mqtt_test as mt  # noqa: E402
from mqtt_test import SESSION_EXPIRY, WILL_DELAY  # noqa: E402


def _libfaketime():
    for pat in ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                "/usr/local/lib/faketime/libfaketime.so.1"):
        hits = glob.glob(pat)
        if hits:
            return hits[0]
    raise mt.Skip("libfaketime not installed (Debian package faketime)")


def _san_env(env):
    """ASan refuses to run with another LD_PRELOAD library first unless told."""
    if live.SAN:
        env["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"
    return env


def _log_times(b):
    """Wall-clock stamps (epoch seconds) at the start of the broker's log lines."""
    return [int(m.group(1)) for m in re.finditer(r"^(\d{9,11}):", b.log(), re.M)]


def _precise_pair(t, b, label):
    """A silent v3.1.1 client (K=1) and a silent v5 client (K=2): each closed 1.5 x K after
    CONNECT (v5 after DISCONNECT 0x8D), at most LATE late."""
    fleet = live.Fleet(b.port)
    t.defer(fleet.close)
    peers = []
    for proto, k in ((4, 1), (5, 2)):
        c = t.client(b.port, proto=proto, name="%s-v%d" % (label, proto))
        t_last = time.monotonic()
        c.send(connect("%s-v%d" % (label, proto), proto=proto, keepalive=k))
        c.expect_type(mt.CONNACK)
        p = fleet.adopt(c, k, t_last)
        p.proto = proto
    peers = fleet.peers
    fleet.watch(time.monotonic() + 3.0 + live.LATE + 1.0)
    problems, summary = live.lateness_report(peers, lambda p: 1.5 * p.k)
    note(t, "%s: %s" % (label, summary))
    check(not problems, live.summarize(problems))


@vigil_only("precision: at most 100 ms after 1.5 x K")
@timeout(20)
def test_far_timezone_v311_MQTT_3_1_2_24_v5_MQTT_3_1_2_22(t):
    # TZ=UTC+14 (POSIX form, no tzdata needed): keepalive timing unchanged.
    b = t.broker(env={"TZ": "<+14>-14"})
    _precise_pair(t, b, "tz")


@vigil_only("precision: at most 100 ms after 1.5 x K")
@timeout(20)
def test_faketime_2030_v311_MQTT_3_1_2_24_v5_MQTT_3_1_2_22(t):
    # The wall clock starts at 2030-01-01, as under `faketime -f '@2030-01-01 00:00:00'` (we set
    # the same LD_PRELOAD / FAKETIME variables ourselves: the faketime wrapper forks, which would
    # hide the broker's pid from us): timing unchanged.
    lib = _libfaketime()
    b = t.broker(env=_san_env({"LD_PRELOAD": lib, "FAKETIME": "@2030-01-01 00:00:00",
                               "FAKETIME_DONT_FAKE_MONOTONIC": "1"}))
    _precise_pair(t, b, "ft2030")
    stamps = _log_times(b)
    check(stamps and min(stamps) >= 1893456000, "the broker's log is not stamped 2030 (faketime "
          "did not take effect, lib %s): %r" % (lib, stamps[:3]))


@vigil_only("precision: at most 100 ms after 1.5 x K; will delay exact")
@timeout(30)
def test_wall_clock_steps_disconnect_nobody_v311_MQTT_3_1_2_24_v5_MQTT_3_1_2_8(t):
    # While clients are connected the wall clock jumps +2 h (at 0.5 s) and then -3 h (at 1.2 s):
    # - a v3.1.1 client (K=2) that pings every second stays connected (v311 MQTT-3.1.2-24 only
    #   allows closing after 1.5 x K of silence) and so does a keepalive-0 client;
    # - a silent v3.1.1 client (K=2) is closed 3 s after its CONNECT, at most LATE late;
    # - a v5 client with will delay 2 s (session expiry 60) dying at 0.2 s has its will
    #   published 2 s after death, at most LATE late (v5 MQTT-3.1.2-8), not at a jump.
    lib = _libfaketime()
    spec = os.path.join(t.dir, "faketime.rc")
    with open(spec, "w") as f:
        f.write("+0\n")
    b = t.broker(env=_san_env({"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": spec,
                               "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}))
    obs = live.observer(t, b, ["tj/#"])
    pinger = t.connect(b.port, "tj-pinger", keepalive=2, name="pinger")
    idle = t.connect(b.port, "tj-idle", keepalive=0, name="idle")
    silent = t.client(b.port, name="silent")
    t_silent = time.monotonic()
    silent.send(connect("tj-silent", keepalive=2))
    silent.expect_type(mt.CONNACK)
    dying = t.connect(b.port, "tj-dying", proto=5, keepalive=60,
                      properties=[(SESSION_EXPIRY, 60)],
                      will={"topic": "tj/will", "payload": "late",
                            "properties": [(WILL_DELAY, 2)]}, name="dying")
    fleet = live.Fleet(b.port)
    t.defer(fleet.close)
    ps = fleet.adopt(silent, 2, t_silent)
    t0 = time.monotonic()
    steps = [(0.5, "+2h", 7200), (1.2, "-3h", -3600)]
    stamps_after = {}
    state = {"died": None, "next_ping": t0 + 1.0, "will": None}

    def tick(now):
        if state["died"] is None and now >= t0 + 0.2:
            state["died"] = time.monotonic()
            dying.reset()
        if steps and now >= t0 + steps[0][0]:
            at, text, _off = steps.pop(0)
            with open(spec, "w") as f:
                f.write(text + "\n")
            # a connection makes the broker log a line: its stamp shows the fake clock
            probe = t.connect(b.port, "tj-probe%s" % text[1:], keepalive=60, name="probe")
            probe.disconnect()
            stamps_after[text] = time.time()
        if now >= state["next_ping"]:
            pinger.send(pingreq())
            state["next_ping"] = now + 1.0
        for p in live.poll_publishes(obs, topics=["tj/will"]):
            state["will"] = p["t"]
    fleet.watch(t0 + 4.0, stop_when_all_closed=False, tick=tick)
    problems, summary = live.lateness_report([ps], lambda p: 3.0)
    note(t, "silent K=2: " + summary)
    check(not problems, live.summarize(problems))
    check(state["will"] is not None, "no will within 3.8 s of death (will delay 2 s)")
    d = state["will"] - state["died"]
    note(t, "will %.3f s after death (delay 2 s)" % d)
    check(2.0 - live.EARLY_TOL <= d <= 2.0 + live.LATE, "will %.3f s after death, want 2.000 s "
          "(+ at most %.0f ms) whatever the wall clock did" % (d, live.LATE * 1000))
    pinger.send(pingreq())
    check(pinger.recv("PINGRESP", timeout=1.0) == mt.pingresp(), "pinger: no PINGRESP")
    check(idle.is_open(0.05), "the keepalive-0 client was disconnected")
    # the fake clock did jump inside the broker
    stamps = _log_times(b)
    real = int(time.time())
    check(any(s >= real + 7000 for s in stamps), "no broker log line stamped +2 h: libfaketime did "
          "not change the broker's wall clock, the test proves nothing (%r)" % stamps[-5:])
    check(any(s <= real - 3000 for s in stamps), "no broker log line stamped -1 h (after the -3 h "
          "step): %r" % stamps[-5:])


if __name__ == "__main__":
    sys.exit(live.main(globals()))
