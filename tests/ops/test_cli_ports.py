#!/usr/bin/python3
"""Command-line ports: `vigil -p A -p B` without a configuration file (mosquitto's local only mode)
listens on every port given, on 127.0.0.1 and ::1, as mosquitto's man page describes ("may be
specified multiple times"); at most 10, as mosquitto. A file with listeners ignores -p, as
mosquitto 2.0.11 does.

vigil-only: mosquitto 2.0.11 crashes (SIGSEGV) when -p is given twice, so this cannot run in the
differential suite (mosquitto-compat.md, "Command line"). One -p is covered on both brokers there.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check  # noqa: E402


def start(args, cwd):
    err = open(os.path.join(cwd, "stderr.log"), "wb")
    return subprocess.Popen([o.VIGIL] + args, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=cwd)


def stop(p, what):
    p.terminate()
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    check(rc == 0, "%s: exits 0 on SIGTERM (rc=%s)" % (what, rc))


def roundtrip(port):
    c = o.Client(port)
    ok = c.connect("cli-ports-%d" % port) == 0
    c.close()
    return ok


def main():
    d = o.tmpdir("ports")
    a, b, c = o.free_port(), o.free_port(), o.free_port()
    while len({a, b, c}) < 3:
        b, c = o.free_port(), o.free_port()

    print("two -p ports without a file: both listen")
    p = start(["-p", str(a), "-p", str(b)], d)
    up = o.wait_for(lambda: o.listening(a) and o.listening(b) or p.poll() is not None, 10)
    check(up and p.poll() is None, "listening on both %d and %d" % (a, b))
    check(roundtrip(a) and roundtrip(b), "an MQTT client connects on each port")
    check(not o.listening(c), "nothing on a third port")
    stop(p, "two ports")
    log = open(os.path.join(d, "stderr.log"), "rb").read().decode("utf-8", "replace")
    check("localhost ports %d, %d only" % (a, b) in log, "the local only line names both ports")

    print("eleven -p: refused before anything listens")
    args = []
    for k in range(11):
        args += ["-p", str(20000 + k)]
    r = subprocess.run([o.VIGIL] + args, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    check(r.returncode != 0 and b"Only 10 ports can be specified on the command line." in r.stderr,
          "rc %d, %r" % (r.returncode, r.stderr[-120:]))

    print("a file with a listener: -p ignored (mosquitto 2.0.11 too)")
    conf = os.path.join(d, "l.conf")
    with open(conf, "w") as f:
        f.write("listener %d 127.0.0.1\nallow_anonymous true\n" % c)
    p = start(["-c", conf, "-p", str(a)], d)
    up = o.wait_for(lambda: o.listening(c) or p.poll() is not None, 10)
    time.sleep(0.2)
    check(up and p.poll() is None and not o.listening(a), "listens on the file's %d, not on -p %d" % (c, a))
    stop(p, "file listener")
    o.rm(d)
    o.finish("tests/ops/test_cli_ports.py")


if __name__ == "__main__":
    main()
