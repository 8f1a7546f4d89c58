#!/usr/bin/python3
"""`vigil --check` outside Docker (the image's HEALTHCHECK): real brokers, real sockets.

What it checks: a healthy broker -> exit 0 with "OK ... CONNACK 0"; no broker -> exit 1 at once
("Connection refused"); a SIGSTOPped broker (the kernel still accepts, no CONNACK) -> exit 1 within
its --timeout; a listener requiring a password -> exit 0, the refusal counted as "serving"; a Unix
socket listener; a WebSockets-only configuration (and a frozen one); WebSockets over TLS; a TLS listener verified with the configured
cafile; a TLS listener whose cafile does not verify the server -> exit 1 naming TLS; the next
listener tried when the first refuses; a bad configuration file -> exit 1 naming it.
What it deliberately does not: Docker itself (test_docker.sh), MQTT 5, credentials (the check
sends none: any CONNACK but 3 "server unavailable" proves the broker serves).
Invariant: every check runs with a subprocess timeout; every broker is stopped (SIGCONT first).
Usage: test_check.py [-k SUBSTR]   (VIGIL_BIN for the binary; runs under VIGIL_SAN=1 too)
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
from interop import run_cases  # noqa: E402  (puts tests/broker on the path)
import mqtt_test  # noqa: E402
from mqtt_test import check, free_port  # noqa: E402
import test_tls  # noqa: E402  (its Certs: a throwaway CA and server certificate)


def vcheck(conf_path, timeout_ms=2000):
    """Run vigil --check; returns (exit status, output, seconds)."""
    t0 = time.monotonic()
    r = subprocess.run([mqtt_test.broker_bin(), "--check", "-c", conf_path, "--timeout", str(timeout_ms)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout_ms / 1000 + 10)
    out = r.stdout.decode("utf-8", "replace").strip()
    if os.environ.get("VIGIL_SAN") == "1":
        for marker in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
            check(marker not in out, "sanitizer report from vigil --check:\n" + out)
    return r.returncode, out, time.monotonic() - t0


def expect(h, conf_path, rc, *words, timeout_ms=2000):
    got, out, secs = vcheck(conf_path, timeout_ms)
    check(got == rc, "vigil --check exit %d, want %d: %s" % (got, rc, out))
    for w in words:
        check(w in out, "vigil --check output lacks %r: %s" % (w, out))
    print("     %s (%.2f s)" % (out, secs))
    return secs


def case_healthy_tcp(h):
    b = h.broker()
    expect(h, b.conf_path, 0, "OK", "127.0.0.1:%d (mqtt)" % b.port, 'CONNACK 0 "Connection Accepted"')


def case_no_broker(h):
    conf = h.file("none.conf", "listener %d 127.0.0.1\nallow_anonymous true\n" % free_port())
    secs = expect(h, conf, 1, "FAIL", "Connection refused")
    check(secs < 1.5, "a refused connection took %.2f s to report" % secs)


def case_frozen_broker_fails_within_timeout(h):
    b = h.broker()
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        secs = expect(h, b.conf_path, 1, "FAIL", "no CONNACK", timeout_ms=1000)
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    check(0.9 <= secs < 3.0, "frozen broker: the check took %.2f s, want its 1 s timeout" % secs)
    expect(h, b.conf_path, 0, "OK")  # and it recovers once the broker runs again


def case_auth_required_counts_as_serving(h):
    pw = h.file("pw", "")
    subprocess.run(["mosquitto_passwd", "-b", pw, "alice", "secret"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.chmod(pw, 0o644)
    b = h.broker("allow_anonymous false\npassword_file %s\n" % pw, anon=False)
    expect(h, b.conf_path, 0, "OK", "not authorized", "sends no credentials")


def case_unix_socket(h):
    sock = os.path.join(h.dir, "vigil.sock")
    h.broker("listener 0 %s\n" % sock)
    conf = h.file("unix.conf", "listener 0 %s\nallow_anonymous true\n" % sock)
    expect(h, conf, 0, "OK", "unix:%s (mqtt)" % sock)


def case_websockets_only(h):
    ws = free_port()
    b = h.broker("listener %d 127.0.0.1\nprotocol websockets\n" % ws)
    conf = h.file("ws.conf", "listener %d 127.0.0.1\nprotocol websockets\nallow_anonymous true\n" % ws)
    expect(h, conf, 0, "OK", "127.0.0.1:%d (ws)" % ws, "CONNACK 0")
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        expect(h, conf, 1, "FAIL", timeout_ms=800)
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)


def case_tls_with_configured_ca(h):
    b = h.broker(test_tls.tls_conf())
    expect(h, b.conf_path, 0, "OK", "127.0.0.1:%d (mqtts)" % b.port, "CONNACK 0")


def case_websockets_over_tls(h):
    ws = free_port()
    tls = test_tls.tls_conf()
    h.broker("listener %d 127.0.0.1\nprotocol websockets\n%s" % (ws, tls))
    conf = h.file("wss.conf", "listener %d 127.0.0.1\nprotocol websockets\n%sallow_anonymous true\n" % (ws, tls))
    expect(h, conf, 0, "OK", "127.0.0.1:%d (wss)" % ws, "CONNACK 0")


def case_tls_unverified_server_fails(h):
    b = h.broker(test_tls.tls_conf())
    crt, key = test_tls.CERTS.server
    conf = h.file("evil.conf", "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
                  "allow_anonymous true\n" % (b.port, test_tls.CERTS.evil_ca[0], crt, key))
    expect(h, conf, 1, "FAIL", "TLS handshake failed")


def case_next_listener_when_first_refuses(h):
    b = h.broker()
    conf = h.file("two.conf", "listener %d 127.0.0.1\nlistener %d 127.0.0.1\nallow_anonymous true\n"
                  % (free_port(), b.port))
    expect(h, conf, 0, "OK", "127.0.0.1:%d" % b.port)


def case_bad_config(h):
    conf = h.file("bad.conf", "listener 1883\nno_such_option 1\n")
    expect(h, conf, 1, "FAIL", "configuration", "bad.conf")


CASES = [(n, f) for n, f in sorted(globals().items()) if n.startswith("case_")]


def main():
    test_tls.CERTS = test_tls.Certs()
    try:
        return run_cases(__file__, CASES)
    finally:
        test_tls.CERTS.remove()


if __name__ == "__main__":
    sys.exit(main())
