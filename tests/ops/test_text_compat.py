#!/usr/bin/python3
"""The text log format keeps mosquitto 2.0.11's lines that operators grep for.

The same client sequence runs against vigil and the real mosquitto 2.0.11 (default log_type, text
format): a v3.1.1 connect + DISCONNECT, a connect with a user name then a plain close, a refused
password, an unsupported protocol level, a v5 connect + DISCONNECT, a session takeover, and a client
that falls silent past 1.5 x its keepalive of 1 s. Timestamps, ports and the broker's name are
normalised; then every mosquitto line of the kinds below must appear in vigil's log, byte for byte,
in the same order. The one documented exception (mosquitto-compat.md, "Log line for a timeout"):
vigil appends "(silent for S s, keepalive K s)" to the timeout line, so that line is compared up to
mosquitto's final period.
"""
import os
import re
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check, m  # noqa: E402

KINDS = [
    r"^New connection from 127\.0\.0\.1:PORT on port PORT\.$",
    r"^New client connected from 127\.0\.0\.1:PORT as \S+ \(p\d, c\d, k\d+(, u'[^']*')?\)\.$",
    r"^Client \S+ disconnected\.$",
    r"^Client \S+ closed its connection\.$",
    r"^Client \S+ already connected, closing old connection\.$",
    r"^Client <unknown> disconnected, not authorised\.$",
    r"^Client <unknown> disconnected due to protocol error\.$",
    r"^Client \S+ has exceeded timeout, disconnecting\.",
    r"^Config loaded from \S+\.$",
]
TIMEOUT_LINE = re.compile(r"^(Client \S+ has exceeded timeout, disconnecting\.)")


def norm(text):
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\d+: ", "", line)
        line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", line)
        line = re.sub(r"on port \d+", "on port PORT", line)
        line = re.sub(r"/\S*/vigil-ops-text-[mv]-[^/\s]+", "DIR", line)
        out.append(line)
    return out


def sequence(port, logpath):
    def c(pkt):
        cl = o.Client(port)
        cl.send(pkt)
        cl.recv_packet(timeout=2)
        return cl
    a = c(m.connect("ops-a"))
    a.send(m.disconnect())
    time.sleep(0.2)
    a.close()
    x = c(m.connect("ops-c", username="alice", password="secret", keepalive=30))
    time.sleep(0.1)
    x.close()
    time.sleep(0.2)
    x = c(m.connect("ops-d", username="alice", password="wrong"))
    time.sleep(0.2)
    x.close()
    x = c(m.connect("ops-e", proto=7))
    time.sleep(0.2)
    x.close()
    x = c(m.connect("ops-f", proto=5))
    x.send(m.disconnect(proto=5))
    time.sleep(0.2)
    x.close()
    g1 = c(m.connect("ops-g"))
    time.sleep(0.1)
    g2 = c(m.connect("ops-g"))
    time.sleep(0.2)
    g1.close()
    g2.send(m.disconnect())
    time.sleep(0.2)
    g2.close()
    b = c(m.connect("ops-b", keepalive=1))
    # mosquitto checks keepalives in a coarse sweep: wait up to 8 s for its line
    o.wait_for(lambda: "has exceeded timeout" in o._read(logpath), 8, step=0.1)
    b.close()
    time.sleep(0.2)


def run(binary, d, results, key):
    port = o.free_port()
    pw = os.path.join(d, "passwd")
    open(pw, "w").close()
    subprocess.run(["mosquitto_passwd", "-b", pw, "alice", "secret"], check=True)
    os.chmod(d, 0o755)  # both brokers read it after dropping to their default user
    os.chmod(pw, 0o644)
    conf = "listener %d 127.0.0.1\nallow_anonymous true\npassword_file %s\n" % (port, pw)
    p = o.Proc(binary, d, conf, port, args=[])
    try:
        sequence(port, p.err_path)
    finally:
        results[key] = (p.stop() if key == "vigil" else _stop_quiet(p), p.stderr())


def _stop_quiet(p):
    p.proc.terminate()
    p.proc.wait(timeout=5)
    return True


def main():
    if not os.path.exists(o.MOSQUITTO):
        print("SKIP: %s is not installed (scripts/deps.sh --test installs it)" % o.MOSQUITTO)
        return
    dv, dm = o.tmpdir("text-v"), o.tmpdir("text-m")
    results = {}
    threads = [threading.Thread(target=run, args=(o.VIGIL, dv, results, "vigil")),
               threading.Thread(target=run, args=(o.MOSQUITTO, dm, results, "mosquitto"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if "vigil" not in results or "mosquitto" not in results:
        check(False, "both brokers ran the sequence")
        return
    vlog, mlog = norm(results["vigil"][1]), norm(results["mosquitto"][1])
    kinds = [re.compile(k) for k in KINDS]
    want = [line for line in mlog if any(k.search(line) for k in kinds)]
    check(len(want) >= 15, "mosquitto printed %d lines of the grepped kinds" % len(want))
    check(any("has exceeded timeout" in line for line in want), "mosquitto timed ops-b out")
    i = 0
    missing = []
    for line in want:
        t = TIMEOUT_LINE.match(line)
        j = i
        while j < len(vlog):
            if (t and vlog[j].startswith(t.group(1))) or vlog[j] == line:
                break
            j += 1
        if j == len(vlog):
            missing.append(line)
        else:
            i = j + 1
    for line in want:
        if line not in missing:
            print("       same: %s" % line)
    check(not missing, "every mosquitto line above appears in vigil's log, in order%s"
          % ("" if not missing else "; missing: %r\nvigil log:\n%s" % (missing, "\n".join(vlog))))
    check(results["vigil"][0], "vigil exited cleanly")
    o.rm(dv)
    o.rm(dm)


if __name__ == "__main__":
    main()
    o.finish("tests/ops/test_text_compat.py")
