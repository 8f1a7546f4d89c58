"""Bridge liveness: how long a bridge waits on a silent remote before closing (bench/RESULTS.md).

Usage: /usr/bin/python3 bench/bridge_liveness.py vigil|mosquitto KEEPALIVE RUNS
The remote is tests/broker/23_bridge.py's FakeRemote: it answers CONNACK and PINGRESP, then stops
answering at a varying phase of the ping cycle; the figure is the time from its last packet to the
bridge's close (RST/FIN). vigil's promise: 1.5 x keepalive_interval, at most +100 ms.
"""
import os
import sys
import time
import importlib.util

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "broker"))
import mqtt_test
spec = importlib.util.spec_from_file_location("b23", os.path.join(HERE, "..", "tests", "broker", "23_bridge.py"))
b23 = importlib.util.module_from_spec(spec); spec.loader.exec_module(b23)
kind, ka, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = []
for i in range(n):
    h = mqtt_test.Harness("m")
    f = b23.FakeRemote()
    try:
        lb = b23.KindBroker(h, b23.bridge_conf(f.port, ["x out 0"], "m%d" % i, ka=ka), kind, "local")
        h._brokers.append(lb)
        f.first(1)
        time.sleep(ka + 0.3 + (i * 0.37) % ka)  # freeze at a varying phase of the ping cycle
        f.answer = False
        time.sleep(0.01)
        last = f.last_tx
        c = f.wait_closed(6 * ka)
        res.append(c - last if c else None)
    finally:
        f.close(); h.cleanup(); h.remove_dir()
ok = [r for r in res if r is not None]
print(kind, "keepalive", ka, "silence before close (s):", ["%.3f" % r for r in ok],
      "min %.3f max %.3f ratio_max %.2f" % (min(ok), max(ok), max(ok) / ka) if ok else "", "undetected", res.count(None))
