#!/usr/bin/python3
"""bridge_require_ocsp true (mosquitto's option): the bridge's TLS handshake succeeds only when the
remote staples an OCSP response that says "good" for its certificate, signed by a responder the
bridge's CA trusts, and current.

The remote is `openssl s_server` with `-status_file` (a DER OCSP response made here with `openssl
ocsp` from a tiny CA database), so the stapled answer is under the test's control; a successful
handshake shows as the bridge's MQTT CONNECT arriving at s_server (which prints what it reads).
Cases: good -> connects; revoked, nothing stapled, a good answer for another certificate, an
answer signed by a key the CA does not vouch for -> the handshake fails and vigil logs it; the
same remote without the option -> connects (so the CA and the name are right); the option without
bridge_cafile -> start-up error with file and line.

vigil-only: mosquitto 2.0.11 accepts the option too, but the setup (s_server, no CONNACK) is
not an MQTT exchange the differential suite can compare.
mqtt-spec: none (bridges and TLS are outside the MQTT specification)
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check  # noqa: E402


def sh(d, *argv):
    r = subprocess.run(list(argv), cwd=d, stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    if r.returncode:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.decode(errors="replace")))


def make_pki(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "rogue"):
        sh(d, "openssl", "req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".crt", "-subj",
           "/CN=vigil-test-" + ca, "-days", "2", "-addext", "basicConstraints=critical,CA:TRUE",
           "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, serial in (("srv", "1001"), ("other", "2002")):
        sh(d, "openssl", "req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=localhost")
        sh(d, "openssl", "x509", "-req", "-in", name + ".csr", "-CA", "ca.crt", "-CAkey", "ca.key",
           "-set_serial", "0x" + serial, "-out", name + ".crt", "-days", "1", "-extfile", "ext")
    exp = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() + 86400))
    now = time.strftime("%y%m%d%H%M%SZ", time.gmtime(time.time() - 60))

    def respond(out, cert, line, signer="ca"):
        with open(os.path.join(d, "index.txt"), "w") as f:
            f.write(line)
        sh(d, "openssl", "ocsp", "-issuer", "ca.crt", "-cert", cert, "-no_nonce", "-reqout", "req.der")
        sh(d, "openssl", "ocsp", "-index", "index.txt", "-rsigner", signer + ".crt", "-rkey", signer + ".key",
           "-CA", "ca.crt", "-reqin", "req.der", "-respout", out, "-ndays", "1")
    respond("good.der", "srv.crt", "V\t%s\t\t1001\tunknown\t/CN=localhost\n" % exp)
    respond("revoked.der", "srv.crt", "R\t%s\t%s\t1001\tunknown\t/CN=localhost\n" % (exp, now))
    respond("other.der", "other.crt", "V\t%s\t\t2002\tunknown\t/CN=localhost\n" % exp)
    respond("rogue.der", "srv.crt", "V\t%s\t\t1001\tunknown\t/CN=localhost\n" % exp, signer="rogue")


def attempt(d, staple, require, tag):
    """(s_server saw the MQTT CONNECT, vigil's log) for one bridge connection attempt."""
    rport, port = o.free_port(), o.free_port()
    out_path = os.path.join(d, "s_server-%s.out" % tag)
    argv = ["openssl", "s_server", "-accept", "127.0.0.1:%d" % rport, "-cert", "srv.crt", "-key", "srv.key"]
    if staple:
        argv += ["-status_file", staple]
    out = open(out_path, "wb")
    # stdin stays open: s_server stops at EOF on its stdin
    srv = subprocess.Popen(argv, cwd=d, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    try:
        o.wait_for(lambda: o.listening(rport), 5)
        conf = ("listener %d 127.0.0.1\nallow_anonymous true\nuser root\nconnection b\naddress 127.0.0.1:%d\n"
                "bridge_cafile %s/ca.crt\n%stopic x out 0\nrestart_timeout 30\n"
                % (port, rport, d, "bridge_require_ocsp true\n" if require else ""))
        bd = os.path.join(d, "vigil-" + tag)
        os.makedirs(bd)
        p = o.Proc(o.VIGIL, bd, conf, port, args=["-v"])
        seen = o.wait_for(lambda: b"MQTT" in open(out_path, "rb").read() or "cannot connect" in p.stderr()
                          + p.stdout(), 5)
        time.sleep(0.2)
        p.stop()
        log = p.stderr() + p.stdout()
        return bool(seen) and b"MQTT" in open(out_path, "rb").read(), log
    finally:
        srv.kill()
        srv.wait()


def main():
    d = o.tmpdir("ocsp")
    make_pki(d)
    cases = [
        ("good", "good.der", True, True),
        ("revoked", "revoked.der", True, False),
        ("nothing stapled", None, True, False),
        ("good answer for another certificate", "other.der", True, False),
        ("answer signed by an untrusted responder", "rogue.der", True, False),
        ("nothing stapled, option off", None, False, True),
    ]
    for i, (what, staple, require, want) in enumerate(cases):
        print(what)
        got, log = attempt(d, staple, require, str(i))
        check(got == want, "%s: the bridge %s" % (what, "connects" if want else "is refused"))
        if not want:
            check("no good OCSP response stapled: bridge_require_ocsp" in log, "%s: vigil logs the failed handshake" % what)
    print("bridge_require_ocsp without bridge_cafile: start-up error")
    bad = os.path.join(d, "bad.conf")
    with open(bad, "w") as f:
        f.write("listener %d 127.0.0.1\nconnection b\naddress 127.0.0.1:1\ntopic x out 0\n"
                "bridge_require_ocsp true\n" % o.free_port())
    r = subprocess.run([o.VIGIL, "-c", bad], stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    err = r.stderr.decode(errors="replace")
    check(r.returncode != 0 and "bad.conf:2: bridge 'b': bridge_require_ocsp needs bridge_cafile" in err,
          "rc %d: %s" % (r.returncode, err.strip()[-200:]))
    o.rm(d)
    o.finish("tests/ops/test_bridge_ocsp.py")


if __name__ == "__main__":
    main()
