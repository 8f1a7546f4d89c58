#!/usr/bin/python3
"""`vigil --check` and `protocol http_api` listeners.

Before, --check sent an MQTT CONNECT to an http_api listener as if it were MQTT (labelled "(mqtt)")
and never judged it. Now http_api listeners are tried after every MQTT listener, with
GET /api/v1/health: 200 healthy, 401 (Basic auth) serving, 5xx failing, a frozen broker failing
within --timeout. Checked with a real broker: an MQTT listener is still preferred; a check
configuration whose MQTT listener refuses falls through to the HTTP one; an HTTP-only check
configuration; Basic auth required (401 counts as serving); HTTPS verified with the listener's
cafile; SIGSTOPped broker -> exit 1 within the timeout.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check  # noqa: E402


def vcheck(conf_path, timeout_ms=2000):
    t0 = time.monotonic()
    r = subprocess.run([o.VIGIL, "--check", "-c", conf_path, "--timeout", str(timeout_ms)], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout_ms / 1000 + 10)
    out = r.stdout.decode("utf-8", "replace").strip()
    check(not any(s in out for s in o.SAN_MARKERS), "no sanitizer report from vigil --check")
    return r.returncode, out, time.monotonic() - t0


def expect(conf_path, rc, words, what, timeout_ms=2000):
    got, out, secs = vcheck(conf_path, timeout_ms)
    check(got == rc and all(w in out for w in words), "%s: exit %d, want %d, with %r: %s (%.2f s)"
          % (what, got, rc, words, out, secs))
    return secs


def write(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=30)


def certs(d):
    ca, cak, crt, key, csr, ext = (os.path.join(d, n) for n in ("ca.crt", "ca.key", "s.crt", "s.key", "s.csr", "s.ext"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", cak, "-out", ca, "-subj", "/CN=vigil-check-ca", "-days", "2")
    openssl("req", "-new", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    write(d, "s.ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cak, "-CAcreateserial", "-out", crt, "-days", "2",
            "-extfile", ext)
    return ca, crt, key


def main():
    d = o.tmpdir("check-http")
    mqtt, http, https, dead = (o.free_port() for _ in range(4))
    ca, crt, key = certs(d)
    pw = os.path.join(d, "passwd")
    subprocess.run(["mosquitto_passwd", "-b", "-c", pw, "u", "p"], check=True, timeout=10,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # the broker: an http_api listener first in the file, then MQTT, then HTTPS
    conf = ("listener %d 127.0.0.1\nprotocol http_api\n"
            "listener %d 127.0.0.1\n"
            "listener %d 127.0.0.1\nprotocol http_api\ncertfile %s\nkeyfile %s\ncafile %s\n"
            "allow_anonymous true\n") % (http, mqtt, https, crt, key, ca)
    b = o.Proc(o.VIGIL, d, conf, mqtt)
    check(o.wait_for(lambda: o.listening(http) and o.listening(https), 5), "broker listens on HTTP and HTTPS")
    expect(b.conf, 0, ["OK", "127.0.0.1:%d (mqtt)" % mqtt, "CONNACK 0"],
           "the broker's own configuration: the MQTT listener is preferred to the http_api one before it")
    c1 = write(d, "c1.conf", "listener %d 127.0.0.1\nlistener %d 127.0.0.1\nprotocol http_api\n" % (dead, http))
    expect(c1, 0, ["OK", "127.0.0.1:%d (http)" % http, "GET /api/v1/health: HTTP 200"],
           "MQTT listener refused: the http_api listener answers GET /api/v1/health")
    c2 = write(d, "c2.conf", "listener %d 127.0.0.1\nprotocol http_api\ncertfile %s\nkeyfile %s\ncafile %s\n"
               % (https, crt, key, ca))
    expect(c2, 0, ["OK", "127.0.0.1:%d (https)" % https, "HTTP 200"], "HTTPS http_api listener, verified with its cafile")
    c3 = write(d, "c3.conf", "listener %d 127.0.0.1\nprotocol http_api\n" % dead)
    expect(c3, 1, ["FAIL", "(http)", "refused"], "nothing on the http_api port")
    b.stop()

    # Basic auth required: 401 proves the broker serves (the check sends no credentials).
    os.remove(b.conf)
    conf = ("password_file %s\nallow_anonymous false\nlistener %d 127.0.0.1\nlistener %d 127.0.0.1\nprotocol http_api\n"
            % (pw, mqtt, http))
    b = o.Proc(o.VIGIL, d, conf, mqtt)
    check(o.wait_for(lambda: o.listening(http), 5), "broker with Basic auth listens on HTTP")
    expect(c1, 0, ["OK", "(http)", "HTTP 401", "serving"], "Basic auth required: 401 counts as serving")
    b.signal(signal.SIGSTOP)
    secs = expect(c1, 1, ["FAIL", "(http)", "no HTTP answer within the timeout"], "SIGSTOPped broker", timeout_ms=1000)
    check(secs < 2.5, "frozen broker reported within the 1 s timeout (took %.2f s)" % secs)
    b.signal(signal.SIGCONT)
    b.stop()
    o.finish("test_check_http")


if __name__ == "__main__":
    main()
