#!/usr/bin/python3
"""log_format json on every log_dest, and the log file reopened on SIGHUP (logrotate).

1. JSON: one broker with log_format json and log_dest stdout, stderr, file and topic; a known
   sequence of client events (connect + DISCONNECT, a refused CONNECT (bad password), a keepalive
   timeout whose will is published, a client that just closes). Every line of every destination
   must be one JSON object with ts (RFC 3339 UTC, milliseconds), level, msg, and the client events
   carry event and client_id (address, username, reason where known).
2. syslog: the same format through syslog(3), received on a /dev/log datagram socket the test binds
   inside a private mount namespace (skipped, loudly, when no namespace can be made).
3. Reopen: log_dest file; the file is renamed, SIGHUP, and the next lines go to a new file of the
   same name (text format; and once more with JSON and no configuration change).
"""
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check, m  # noqa: E402

EVENTS = ("connect", "disconnect", "keepalive_timeout", "will_published", "connect_refused")


def publish_payloads(c, want, timeout):
    """PUBLISH packets received on c until `want` (a predicate over [(topic, payload)]) holds."""
    got = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want(got):
        p = c.recv_packet(timeout=max(0.01, deadline - time.monotonic()))
        if p is None:
            break
        if p[0] >> 4 != 3:
            continue
        r = m.Reader(p[1:])
        r.varint()
        topic = r.str()
        if (p[0] >> 1) & 3:
            r.u16()
        got.append((topic, r.take(r.left())))
    return got


def make_passwd(d):
    path = os.path.join(d, "passwd")
    open(path, "w").close()
    subprocess.run(["mosquitto_passwd", "-b", path, "alice", "secret"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def check_objects(objs, where, need_events=True):
    good = all(isinstance(x.get("ts"), str) and o.TS_RE.match(x["ts"]) for x in objs)
    check(good, "%s: every ts is RFC 3339 UTC with milliseconds (e.g. %s)"
          % (where, objs[0].get("ts") if objs else None))
    check(all(x.get("level") in o.LEVELS for x in objs),
          "%s: every level in %s" % (where, sorted(o.LEVELS)))
    check(all(isinstance(x.get("msg"), str) and x["msg"] for x in objs), "%s: every line has msg" % where)
    if not need_events:
        return
    ev = {}
    for x in objs:
        if "event" in x:
            ev.setdefault(x["event"], []).append(x)
    for e in EVENTS:
        check(e in ev, "%s: event %s present" % (where, e))
    c = [x for x in ev.get("connect", []) if x.get("client_id") == "ops-a"]
    check(c and c[0].get("address", "").startswith("127.0.0.1:") and c[0].get("keepalive") == 60
          and c[0]["msg"].startswith("New client connected from 127.0.0.1:"),
          "%s: connect of ops-a with address, keepalive and mosquitto's msg" % where)
    c = [x for x in ev.get("connect", []) if x.get("client_id") == "ops-c"]
    check(c and c[0].get("username") == "alice", "%s: connect of ops-c with username alice" % where)
    d = [x for x in ev.get("disconnect", []) if x.get("client_id") == "ops-a"]
    check(d and d[0].get("reason") and d[0]["msg"] == "Client ops-a disconnected.",
          "%s: disconnect of ops-a with a reason, msg 'Client ops-a disconnected.'" % where)
    d = [x for x in ev.get("disconnect", []) if x.get("client_id") == "ops-c"]
    check(d and d[0].get("reason") == "connection closed", "%s: ops-c's close has reason 'connection closed'"
          % where)
    r = [x for x in ev.get("connect_refused", []) if x.get("client_id") == "ops-d"]
    check(r and r[0].get("username") == "alice" and "password" in r[0].get("reason", "")
          and r[0].get("address", "").startswith("127.0.0.1:"),
          "%s: connect_refused of ops-d with username, address and reason" % where)
    k = [x for x in ev.get("keepalive_timeout", []) if x.get("client_id") == "ops-b"]
    check(k and k[0].get("keepalive") == 1 and 1500 <= k[0].get("silent_ms", 0) < 1700
          and k[0]["msg"].startswith("Client ops-b has exceeded timeout, disconnecting."),
          "%s: keepalive_timeout of ops-b, keepalive 1, silent_ms in [1500, 1700): %s"
          % (where, k[0].get("silent_ms") if k else None))
    w = [x for x in ev.get("will_published", []) if x.get("client_id") == "ops-b"]
    check(w and w[0].get("topic") == "w/ops-b", "%s: will_published of ops-b on w/ops-b" % where)


def client_sequence(port):
    """The events every JSON destination must show (ops-a, ops-c, ops-d, ops-b)."""
    a = o.Client(port)
    check(a.connect("ops-a") == 0, "ops-a connects")
    a.send(m.disconnect())
    a.close()
    c = o.Client(port)
    check(c.connect("ops-c", username="alice", password="secret", keepalive=30) == 0,
          "ops-c connects as alice")
    c.close()
    d = o.Client(port)
    check(d.connect("ops-d", username="alice", password="wrong") == 5, "ops-d refused: CONNACK 0x05")
    d.close()
    b = o.Client(port)
    check(b.connect("ops-b", keepalive=1, will=dict(topic="w/ops-b", payload=b"gone")) == 0,
          "ops-b connects with keepalive 1 and a will")
    return b


def test_json_every_dest():
    print("JSON on stdout, stderr, file and topic:")
    d = o.tmpdir("json")
    port = o.free_port()
    pw = make_passwd(d)
    logfile = os.path.join(d, "vigil.log")
    conf = ("listener %d 127.0.0.1\nallow_anonymous true\npassword_file %s\nlog_format json\n"
            "log_dest stdout\nlog_dest stderr\nlog_dest file %s\nlog_dest topic\n" % (port, pw, logfile))
    p = o.Proc(o.VIGIL, d, conf, port)
    sub = o.Client(port)
    check(sub.connect("ops-sub") == 0, "subscriber connects")
    sub.send(m.subscribe(1, [("$SYS/broker/log/#", 0), ("w/#", 0)]))
    ack = sub.recv_packet()
    check(ack is not None and ack[0] == 0x90, "SUBACK for $SYS/broker/log/# and w/#")
    b = client_sequence(port)
    got = publish_payloads(sub, lambda g: any(t == "w/ops-b" for t, _ in g), 5.0)
    check(any(t == "w/ops-b" and pl == b"gone" for t, pl in got), "the will of ops-b arrives")
    b.close()
    sub.close()
    ok = p.stop()
    for name, text in (("stdout", p.stdout()), ("stderr", p.stderr()), ("file", o._read(logfile))):
        check_objects(o.json_lines(text, name), name)
    topic_objs = []
    bad = 0
    for t, pl in got:
        if t.startswith("$SYS/broker/log/"):
            try:
                topic_objs.append(json.loads(pl.decode()))
            except ValueError:
                bad += 1
    check(topic_objs and not bad, "topic: %d log messages, each payload one JSON object" % len(topic_objs))
    if topic_objs:
        check_objects(topic_objs, "topic", need_events=False)
        evs = {x.get("event") for x in topic_objs}
        check({"connect", "disconnect", "connect_refused", "keepalive_timeout", "will_published"} <= evs,
              "topic: the client events after the subscription arrived: %s" % sorted(e for e in evs if e))
    if ok:
        o.rm(d)


def test_json_escaping():
    # A client id with a quote, a backslash and a TAB, escaped and decoded back intact; a v5
    # CONNECT whose client id is invalid UTF-8 is refused (0x81) and its connect_refused line
    # carries the id with U+FFFD, still valid JSON (tests/unit/test_log.c: the encoder in detail).
    print("JSON escaping of client-supplied strings:")
    d = o.tmpdir("esc")
    port = o.free_port()
    conf = "listener %d 127.0.0.1\nallow_anonymous true\nlog_format json\n" % port
    p = o.Proc(o.VIGIL, d, conf, port)
    c = o.Client(port)
    check(c.connect('q"uo\\te\ttab') == 0, "client with \" \\ and TAB in its id connects")
    c.close()
    c = o.Client(port)
    c.send(m.packet(0x10, m.mstr("MQTT") + bytes([5, 2]) + m.u16(60) + b"\x00" + b"\x00\x02\xc3\x28"))
    ack = c.recv_packet(timeout=2)
    check(ack is not None and ack[:4] == b"\x20\x03\x00\x81", "v5 CONNECT with an invalid UTF-8 id: CONNACK 0x81")
    c.close()
    time.sleep(0.1)
    p.stop()
    objs = o.json_lines(p.stderr(), "stderr")
    ids = [x.get("client_id") for x in objs if x.get("event") == "connect"]
    check(ids == ['q"uo\\te\ttab'], "client_id survives JSON escaping: %r" % ids)
    bad = [x.get("client_id") for x in objs if x.get("event") == "connect_refused"]
    check(bad == ["\ufffd("], "invalid UTF-8 id logged as U+FFFD: %r" % bad)
    o.rm(d)


SYSLOG_NS = r"""
set -e
mount --make-rprivate /
dev=$1; shift
for n in null zero urandom random; do touch "$dev/$n"; mount --bind "/dev/$n" "$dev/$n"; done
mount --bind "$dev" /dev
exec "$@"
"""


def test_json_syslog():
    print("JSON through syslog:")
    d = o.tmpdir("syslog")
    dev = os.path.join(d, "dev")
    os.mkdir(dev)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(os.path.join(dev, "log"))
    os.chmod(os.path.join(dev, "log"), 0o666)
    port = o.free_port()
    conf = "listener %d 127.0.0.1\nallow_anonymous true\nlog_format json\nlog_dest syslog\n" % port
    probe = subprocess.run(["unshare", "--mount", "true"], stderr=subprocess.DEVNULL)
    if probe.returncode != 0:
        print("SKIP syslog: cannot create a mount namespace here (unshare --mount failed; needs root)")
        s.close()
        o.rm(d)
        return
    with open(os.path.join(d, "broker.conf"), "w") as f:
        f.write(conf)
    err = open(os.path.join(d, "stderr.log"), "wb")
    proc = subprocess.Popen(["unshare", "--mount", "sh", "-c", SYSLOG_NS, "sh", dev, o.VIGIL, "-c",
                             os.path.join(d, "broker.conf")], stdout=err, stderr=err,
                            stdin=subprocess.DEVNULL)
    err.close()
    if not o.wait_for(lambda: o.listening(port) or proc.poll() is not None, 10) or not o.listening(port):
        check(False, "broker in a mount namespace listens (stderr: %s)" % o._read(os.path.join(d, "stderr.log")))
        proc.kill()
        return
    c = o.Client(port)
    check(c.connect("ops-syslog") == 0, "client connects")
    c.send(m.disconnect())
    c.close()
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=5)
    check(rc == 0, "broker exits 0 (rc=%s)" % rc)
    s.setblocking(False)
    msgs = []
    while True:
        try:
            msgs.append(s.recv(65536).decode("utf-8", "replace"))
        except BlockingIOError:
            break
    s.close()
    # "<29>Dec  2 15:00:00 vigil[123]: {...}": the priority, then the object after "]: "
    objs = []
    bad = []
    for x in msgs:
        body = x.split("]: ", 1)[-1]
        try:
            objs.append(json.loads(body))
        except ValueError:
            bad.append(x)
    check(objs and not bad, "syslog: %d messages, each a JSON object after the syslog header%s"
          % (len(objs), "" if not bad else " bad: %r" % bad[:2]))
    check(any(x.get("event") == "connect" and x.get("client_id") == "ops-syslog" for x in objs)
          and any(x.get("event") == "disconnect" and x.get("client_id") == "ops-syslog" for x in objs),
          "syslog: connect and disconnect events of ops-syslog")
    check(all(x.startswith("<29>") or x.startswith("<30>") or x.startswith("<27>") or x.startswith("<28>")
              for x in msgs), "syslog: daemon facility (priority 27..30)")
    o.rm(d)


def test_reopen(json_format):
    what = "JSON" if json_format else "text"
    print("log file reopened on SIGHUP (%s):" % what)
    d = o.tmpdir("reopen")
    port = o.free_port()
    logfile = os.path.join(d, "vigil.log")
    conf = "listener %d 127.0.0.1\nallow_anonymous true\nlog_dest file %s\n%s" % (
        port, logfile, "log_format json\n" if json_format else "")
    if os.geteuid() == 0:
        # As in production: vigil drops to `user` after opening the log, so the directory must be
        # writable by that user for the new file (systemd's LogsDirectory=, logrotate's create).
        nobody = pwd.getpwnam("nobody")
        os.chown(d, nobody.pw_uid, nobody.pw_gid)
        conf += "user nobody\n"
    p = o.Proc(o.VIGIL, d, conf, port)
    c = o.Client(port)
    check(c.connect("before-rotate") == 0, "client before-rotate connects")
    c.close()
    o.wait_for(lambda: "before-rotate" in o._read(logfile), 2)
    os.rename(logfile, logfile + ".1")
    p.signal(signal.SIGHUP)
    check(o.wait_for(lambda: os.path.exists(logfile), 3), "a new %s exists after SIGHUP" % os.path.basename(logfile))
    c = o.Client(port)
    check(c.connect("after-rotate") == 0, "client after-rotate connects")
    c.close()
    o.wait_for(lambda: "after-rotate" in o._read(logfile), 2)
    new, old = o._read(logfile), o._read(logfile + ".1")
    check("after-rotate" in new and "before-rotate" not in new, "the new file has the lines after the HUP only")
    check("before-rotate" in old and "after-rotate" not in old, "the renamed file kept the lines before it")
    if json_format:
        o.json_lines(new, "new file")
        o.json_lines(old, "renamed file")
    else:
        check(any(l.endswith(": New client connected from 127.0.0.1:%s as after-rotate (p2, c1, k60)."
                             % l.split(":")[-1].split(" ")[0]) for l in new.splitlines()),
              "the new file's connect line is mosquitto's text line")
    ok = p.stop()
    if ok:
        o.rm(d)


def test_log_format_errors():
    print("log_format errors name file and line:")
    d = o.tmpdir("fmt")
    conf = os.path.join(d, "bad.conf")
    with open(conf, "w") as f:
        f.write("# comment\nlog_format yaml\n")
    r = subprocess.run([o.VIGIL, "-c", conf], capture_output=True, text=True, timeout=10)
    check(r.returncode != 0 and "%s:2: log_format: invalid value 'yaml'" % conf in r.stderr,
          "log_format yaml refused with file:line (%r)" % r.stderr.strip()[:160])
    o.rm(d)


if __name__ == "__main__":
    test_json_every_dest()
    test_json_escaping()
    test_json_syslog()
    test_reopen(False)
    test_reopen(True)
    test_log_format_errors()
    o.finish("tests/ops/test_logs.py")
