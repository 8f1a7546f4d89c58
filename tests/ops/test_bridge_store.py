#!/usr/bin/python3
"""The bridge's local session in the persistence store (issue 8 point 2 "bridge queues"; issue 9
local_cleansession): with local_cleansession false (the default) the store holds the bridge's
local session from start-up, so what is queued for a remote that is down survives a restart
(tests/broker/23_bridge.py checks the messages); with local_cleansession true nothing of it is
written (mosquitto's clean_start_local), and a row left by an earlier run with false is removed.

vigil-only: it reads vigil's SQLite store (vigil.db) directly; mosquitto has no such file.
mqtt-spec: none (bridges are outside the MQTT specification)
"""
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check  # noqa: E402


def rows(d, cid):
    db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d, "vigil.db"), uri=True)
    try:
        return db.execute("SELECT count(*) FROM sessions WHERE id = ?", (cid,)).fetchone()[0]
    finally:
        db.close()


def run(d, clean):
    port, down = o.free_port(), o.free_port()  # nothing listens on `down`: the remote is away
    conf = ("listener %d 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location %s/\n"
            "connection edge\naddress 127.0.0.1:%d\nlocal_clientid edge-local\ntopic m/# out 1\n"
            "restart_timeout 30\n%s" % (port, d, down, "local_cleansession true\n" if clean else ""))
    p = o.Proc(o.VIGIL, d, conf, port)
    c = o.Client(port)
    check(c.connect("bs-pub") == 0, "publisher connects")
    c.close()
    p.stop()


def main():
    d = o.tmpdir("bridge-store")
    print("local_cleansession false: the local session is stored at start")
    run(d, False)
    check(rows(d, "edge-local") == 1, "one sessions row for edge-local (got %d)" % rows(d, "edge-local"))
    print("local_cleansession true, same store: the earlier row is removed, nothing written")
    run(d, True)
    check(rows(d, "edge-local") == 0, "no sessions row for edge-local (got %d)" % rows(d, "edge-local"))
    o.rm(d)
    o.finish("tests/ops/test_bridge_store.py")


if __name__ == "__main__":
    main()
