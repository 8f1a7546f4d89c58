"""Configuration files and SIGHUP: what a reload does to connected clients (mosquitto 2.0.11
disconnects clients whose credentials the new files no longer accept), options that SIGHUP
applies, a broken file on reload, include_dir, -p with a listener, allow_anonymous defaults and
local-only mode, and vigil's start-up refusals (bridge_require_ocsp, TLS options without TLS, duplicate
listeners) and warnings. Configuration behaviour (mosquitto.conf(5), mosquitto-compat.md): no
MQTT statement applies unless cited.
"""
import os
import re
import signal
import subprocess
import time

import mqtt_test
from mqtt_test import connect, connack, publish, puback, pingreq, pingresp, check, check_eq, \
    fail, vigil_only


def _passwd(h, users, name="passwd"):
    path = os.path.join(h.dir, name)
    for i, (u, pw) in enumerate(users):
        subprocess.run(["mosquitto_passwd", "-b"] + (["-c"] if i == 0 else []) + [path, u, pw],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=10)
    os.chmod(path, 0o644)
    return path


def _rewrite_conf(b, old, new):
    with open(b.conf_path) as f:
        text = f.read()
    check(old in text, "%r not in the configuration" % old)
    with open(b.conf_path, "w") as f:
        f.write(text.replace(old, new))


def _alive(c):
    """The connection still answers PINGREQ."""
    c.send_quiet(pingreq())
    try:
        return c.recv_packet(1.0) == pingresp()
    except (mqtt_test.Closed, OSError):
        return False


def _run(args, cwd, timeout=5):
    t0 = time.monotonic()
    r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, cwd=cwd, timeout=timeout)
    out = r.stdout.decode("utf-8", "replace")
    for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
        check(marker not in out, "%r in the broker's output:\n%s" % (marker, out))
    return r.returncode, out, time.monotonic() - t0


def _start_fails(h, name, text):
    """The broker refuses the configuration at start-up: non-zero exit within 3 s."""
    path = h.file(name, text)
    try:
        rc, out, secs = _run([mqtt_test.broker_bin(), "-c", path], h.dir)
    except subprocess.TimeoutExpired:
        fail("%s: broker still running 5 s after a configuration it should refuse" % name)
    check(rc != 0, "%s: exit status 0; output:\n%s" % (name, out))
    check(secs < 3, "%s: took %.1f s to fail" % (name, secs))
    return path, out


# ---------------------------------------------------------------------------------------------
# SIGHUP and connected clients


def test_sighup_revoked_credentials_disconnect(h):
    # mosquitto 2.0.11 (security_default.c, mosquitto_security_apply_default) re-checks connected
    # clients after a reload: a client whose user was removed from the password file, or whose
    # password changed, is disconnected; others stay. (mosquitto.conf(5) says connected clients
    # "will not be affected", but the broker does disconnect them; a drop-in keeps what the
    # binary does: revoking a user and sending SIGHUP is how operators cut a leaked credential.)
    pw = _passwd(h, [("alice", "apass"), ("bob", "bpass"), ("carol", "cpass")])
    b = h.broker("password_file %s\n" % pw, anon=False)
    alice = h.connect(b, "alice", username="alice", password="apass")
    bob = h.connect(b, "bob", username="bob", password="bpass")
    carol = h.connect(b, "carol", proto=5, username="carol", password="cpass")
    subprocess.run(["mosquitto_passwd", "-D", pw, "alice"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(["mosquitto_passwd", "-b", pw, "bob", "changed"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(pw, 0o644)
    b.proc.send_signal(signal.SIGHUP)
    alice.expect_closed(3.0)
    bob.expect_closed(3.0)
    check(_alive(carol), "carol (still valid) lost her connection on SIGHUP")


def test_sighup_allow_anonymous_false_disconnects_anonymous(h):
    # allow_anonymous true -> false in the configuration file, then SIGHUP: connected anonymous
    # clients are disconnected (mosquitto 2.0.11), new ones refused (v311 CONNACK 0x05); a
    # client with credentials stays.
    pw = _passwd(h, [("alice", "apass")])
    b = h.broker("password_file %s\n" % pw, anon=True)
    anon = h.connect(b, "anon")
    alice = h.connect(b, "alice", username="alice", password="apass")
    _rewrite_conf(b, "allow_anonymous true", "allow_anonymous false")
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while True:
        c = h.client(b)
        c.send(connect("anon2"))
        got = c.recv("CONNACK")
        if got == connack(5):
            break
        check_eq(got, connack(0), "CONNACK before the reload took effect")
        check(time.monotonic() < deadline, "anonymous still accepted 3 s after SIGHUP")
        time.sleep(0.1)
    anon.expect_closed(3.0)
    check(_alive(alice), "alice lost her connection on SIGHUP")


def test_sighup_acl_file_added(h):
    # acl_file is reloadable (mosquitto-compat.md): a configuration that gains an acl_file line
    # applies it on SIGHUP to connected clients' next PUBLISH (v5 PUBACK 0x87 Not authorized).
    acl = h.file("acl", "user alice\ntopic readwrite a/#\nuser watcher\ntopic read #\n")
    pw = _passwd(h, [("alice", "apass"), ("watcher", "wpass")])
    b = h.broker("password_file %s\n#ACL\n" % pw, anon=False)
    w = h.connect(b, "watcher", username="watcher", password="wpass")
    w.subscribe("#")
    alice = h.connect(b, "alice", proto=5, username="alice", password="apass")
    alice.publish("z/0", "open", qos=1)
    w.expect_publish("z/0", "open")
    _rewrite_conf(b, "#ACL\n", "acl_file %s\n" % acl)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    mid = 0
    while True:
        mid += 1
        alice.send(publish("z/%d" % mid, "try", qos=1, mid=mid, proto=5))
        got = alice.recv("PUBACK")
        if got == puback(mid, rc=0x87, proto=5):
            break
        check_eq(got, puback(mid, proto=5), "PUBACK before the reload took effect")
        w.expect_publish("z/%d" % mid, "try")
        check(time.monotonic() < deadline, "acl_file not applied 3 s after SIGHUP")
        time.sleep(0.1)
    alice.publish("a/1", "allowed", qos=1)
    w.expect_publish("a/1", "allowed")
    w.expect_no_packet(0.2)


def test_sighup_broken_config_keeps_running(h):
    # A configuration file that no longer parses: SIGHUP leaves the broker running with its
    # configuration; connected clients stay, new ones are served.
    b = h.broker("max_inflight_messages 20\n")
    c = h.connect(b, "before")
    _rewrite_conf(b, "max_inflight_messages 20\n", "max_inflight_messages 20\nnot_an_option 1\n")
    b.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    check(b.alive(), "broker exited on SIGHUP with a broken configuration file")
    check(_alive(c), "connection lost on SIGHUP with a broken configuration file")
    h.connect(b, "after")
    if h.vigil:
        check("not_an_option" in b.log(), "the reload error is not logged")
    # Restore it, so that the stop is not judged by the broken file.
    _rewrite_conf(b, "not_an_option 1\n", "")


@vigil_only("vigil's wording; mosquitto logs nothing about options it cannot change on reload")
def test_sighup_unreloadable_change_is_logged(h):
    # mosquitto-compat.md, SIGHUP: an option that needs a restart is reported in the log, not
    # ignored silently.
    b = h.broker("max_connections 100\n")
    c = h.connect(b, "c")
    _rewrite_conf(b, "max_connections 100\n", "max_connections 5\n")
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while "restart" not in b.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = [ln for ln in b.log().splitlines() if "max_connections" in ln and "restart" in ln]
    check(lines, "no log line about max_connections needing a restart:\n" + b.log_tail(10))
    check(_alive(c), "connection lost on SIGHUP")


# ---------------------------------------------------------------------------------------------
# Files, defaults and local-only mode


def test_include_dir(h):
    # include_dir DIR: the *.conf files in it are read (a listener there opens; other files are
    # not read).
    inc = os.path.join(h.dir, "conf.d")
    os.mkdir(inc)
    os.chmod(inc, 0o755)
    port = mqtt_test.free_port()
    with open(os.path.join(inc, "10-listener.conf"), "w") as f:
        f.write("listener %d 127.0.0.1\n" % port)
    with open(os.path.join(inc, "20-ignored.txt"), "w") as f:
        f.write("this is not an option\n")
    b = h.broker("include_dir %s\n" % inc)
    h.connect(b, "main")
    h.connect(port, "included")


def test_p_ignored_with_listener(h):
    # -p PORT with a configuration that has a listener: -p is ignored (mosquitto-compat.md,
    # local-only mode point 4, as mosquitto 2.0).
    port = mqtt_test.free_port()
    b = h.broker()
    b.stop()
    b.proc = subprocess.Popen([mqtt_test.broker_bin(), "-c", b.conf_path, "-p", str(port), "-v"],
                              stdin=subprocess.DEVNULL, stdout=open(b.log_path, "ab"),
                              stderr=subprocess.STDOUT, cwd=h.dir)
    b.stopped = False
    deadline = time.monotonic() + 5
    while True:
        try:
            c = h.connect(b.port, "c")
            break
        except (ConnectionError, mqtt_test.TestFailure):
            check(time.monotonic() < deadline and b.alive(), "broker did not restart")
            time.sleep(0.05)
    check(mqtt_test._listening_inode(port) is None, "-p %d opened a listener" % port)
    c.disconnect()


def test_allow_anonymous_default_false_with_listener(h):
    # allow_anonymous unset with a listener configured means false (mosquitto 2.0): anonymous
    # CONNECT -> v311 CONNACK 0x05, v5 0x87.
    b = h.broker("", anon=False)
    h.expect_refused(b, "anon", 5)
    h.expect_refused(b, "anon5", 0x87, proto=5)


def test_local_only_forces_anonymous(h):
    # A configuration without any listener runs in local-only mode, where anonymous clients are
    # allowed even if the file says allow_anonymous false (mosquitto 2.0; -p sets the port).
    conf = h.file("nolistener.conf", "allow_anonymous false\nmax_inflight_messages 10\n")
    port = mqtt_test.free_port()
    log = open(os.path.join(h.dir, "local.log"), "ab")
    proc = subprocess.Popen([mqtt_test.broker_bin(), "-c", conf, "-p", str(port)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=h.dir)
    log.close()
    try:
        deadline = time.monotonic() + 5
        while not (mqtt_test._listening_inode(port) and
                   mqtt_test._pid_has_socket(proc.pid, mqtt_test._listening_inode(port))):
            check(time.monotonic() < deadline and proc.poll() is None,
                  "local-only broker not listening on 127.0.0.1:%d" % port)
            time.sleep(0.02)
        h.connect(port, "anon")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------------------------------------
# vigil's start-up refusals and warnings (mosquitto-compat.md)


@vigil_only("mosquitto 2.0.11 accepts bridge_require_ocsp on a plain-TCP bridge and checks nothing")
def test_bridge_ocsp_without_ca_is_an_error(h):
    # bridge_require_ocsp works on TLS bridges (tests/ops/test_bridge_ocsp.py); on a bridge
    # without TLS there is nothing to check, so the line stops start-up instead of being ignored.
    port = mqtt_test.free_port()
    path, out = _start_fails(h, "bridge.conf", "listener %d 127.0.0.1\nallow_anonymous true\n"
                             "connection upstream\naddress 127.0.0.1:1\ntopic # both 0\n"
                             "bridge_require_ocsp true\n" % port)
    check(re.search(r"%s:3: bridge 'upstream': bridge_require_ocsp needs bridge_cafile" % re.escape(path), out),
          "no 'FILE:3: bridge ... bridge_require_ocsp needs bridge_cafile' message:\n" + out)


@vigil_only("mosquitto 2.0.11 silently listens in plain text when certfile/keyfile are missing")
def test_tls_option_without_tls_is_an_error(h):
    port = mqtt_test.free_port()
    path, out = _start_fails(h, "notls.conf", "listener %d 127.0.0.1\nallow_anonymous true\n"
                             "require_certificate true\n" % port)
    check(path in out and "require_certificate" in out,
          "the message names neither the file nor the option:\n" + out)


@vigil_only("mosquitto accepts the second line and then fails to bind")
def test_duplicate_listener_is_an_error(h):
    port = mqtt_test.free_port()
    path, out = _start_fails(h, "dup.conf", "listener %d 127.0.0.1\nallow_anonymous true\n"
                             "listener %d 127.0.0.1\n" % (port, port))
    check("%s:3:" % path in out, "the message does not name line 3:\n" + out)


@vigil_only("vigil's warning for options it parses but does not implement yet")
def test_unsupported_option_warns_with_line(h):
    # mosquitto-compat.md: an accepted but unsupported value logs "file:line: ..." (every
    # mosquitto option is implemented now except log_dest dlt, which needs libdlt).
    b = h.broker("\nlog_dest dlt\nlog_dest stderr\n")
    h.connect(b, "c")
    lines = [ln for ln in b.log().splitlines() if "dlt" in ln]
    check(any(re.search(r"%s:4: .*not supported" % re.escape(b.conf_path), ln) for ln in lines),
          "no 'FILE:4: ... not supported' warning: %r" % lines)


def _retain_source_case(h, extra):
    # alice may write r/alice/# (pattern), everyone may read r/#. alice leaves a retained
    # message; then her write permission is removed (SIGHUP) and a new subscriber arrives.
    acl = h.file("acl", "topic read r/#\npattern write r/%c/#\n")
    b = h.broker("acl_file %s\n%s" % (acl, extra))
    a = h.connect(b, "alice")
    a.publish("r/alice/x", "kept", qos=1, retain=True)
    w = h.connect(b, "witness")
    w.subscribe("r/#")
    w.expect_publish("r/alice/x", "kept", retain=True)
    with open(acl, "w") as f:
        f.write("topic read r/#\n")
    b.proc.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    return h.connect(b, "bob")


@vigil_only("mosquitto 2.0.11 hands the message out in this case although check_retain_source is on")
def test_check_retain_source_default_true(h):
    # check_retain_source (default true in mosquitto 2.0 and vigil): a retained message whose
    # publisher may no longer write the topic is not handed to new subscribers.
    bob = _retain_source_case(h, "")
    bob.subscribe("r/#")
    bob.expect_no_packet(0.5)


def test_check_retain_source_false(h):
    # check_retain_source false: the retained message is delivered whatever its source may do now.
    bob = _retain_source_case(h, "check_retain_source false\n")
    bob.subscribe("r/#")
    bob.expect_publish("r/alice/x", "kept", retain=True)


# ---------------------------------------------------------------------------------------------
# SIGUSR1 / SIGUSR2


def test_sigusr1_sigusr2_keep_serving(h):
    # mosquitto 2.0.11 (signals.c): SIGUSR1 saves the persistence file (nothing without
    # persistence), SIGUSR2 prints the subscription tree on stdout; neither ends the broker nor
    # touches a connection, a subscription or a retained message. (vigil: SIGUSR1 publishes $SYS,
    # SIGUSR2 prints the subscriptions; mosquitto-compat.md "Signals".)
    b = h.broker()
    sub = h.connect(b, "sig-sub", clean=False)
    sub.subscribe([("sig/#", 1)])
    pub = h.connect(b, "sig-pub")
    pub.publish("sig/r", "kept", retain=True)
    sub.expect_publish("sig/r", "kept")
    for sig in (signal.SIGUSR2, signal.SIGUSR1, signal.SIGUSR2, signal.SIGUSR1):
        b.proc.send_signal(sig)
        time.sleep(0.05)
    time.sleep(0.2)
    check(b.alive(), "the broker exited on SIGUSR1/SIGUSR2 (rc=%s)" % b.proc.poll())
    check(_alive(sub) and _alive(pub), "a connection was lost on SIGUSR1/SIGUSR2")
    pub.publish("sig/after", "x", qos=1)
    sub.expect_publish("sig/after", "x", qos=1)
    late = h.connect(b, "sig-late")
    late.subscribe([("sig/r", 0)])
    late.expect_publish("sig/r", "kept", retain=True)
