#!/usr/bin/python3
"""TLS listeners with real clients (mosquitto_pub / mosquitto_sub 2.0.11, Python ssl, openssl).

What it does: makes a throwaway CA, server certificates (subjectAltName 127.0.0.1 / localhost),
client certificates (CN=alice, bob, watcher, O=VigilTest) and an untrusted CA with its own client
certificate, all with the `openssl` command line in a temp dir; then runs the broker chosen by
VIGIL_BROKER (vigil | mosquitto, default vigil; VIGIL_BIN for the binary) with TLS listeners and
checks: --cafile round trips (v3.1.1 and v5, QoS 1); require_certificate (valid certificate
accepted, none or an untrusted one refused); use_identity_as_username and use_subject_as_username
feeding the ACL; a plain MQTT CONNECT on the TLS port (no CONNACK, closed); tls_version tlsv1.3
refusing a TLS 1.2 client; bulk (a 3 MB payload, 500 QoS 1 messages); SIGHUP with a replaced server certificate (existing connection kept,
new connections see the new certificate); use_identity_as_username without require_certificate
refusing even a client with a valid certificate ("bad user name or password", as mosquitto); TLS-PSK
with mosquitto_pub/sub --psk (identity as user name feeding the ACL, wrong key refused, a user name
without a password file refused). Prints PASS / FAIL per case; exit status 1 if any failed.
What it deliberately does not: no CRL, no WebSockets over TLS (test_websockets.py), no
packet-level checks beyond the few raw cases (tests/broker does those).
Invariant: every client runs with a timeout (-W / subprocess timeout / socket timeout); every
broker is stopped; the temp dirs are removed when the case passes.
Usage: test_tls.py [-k SUBSTR]
"""
import hashlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

from interop import Sub, pub, run_cases  # noqa: E402  (puts tests/broker on the path)
import mqtt_test  # noqa: E402
from mqtt_test import check, check_eq  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Certificates


def _openssl(*args):
    r = subprocess.run(["openssl"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=30)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stdout.decode()))


class Certs:
    """A CA with server and client certificates, and an untrusted CA with one client certificate.
    EC P-256 keys (fast to make). Every file is world-readable: mosquitto started as root reads
    them after dropping to user mosquitto."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="vigil-tls-")
        os.chmod(self.dir, 0o755)
        self.ca = self._ca("ca", "/O=VigilTest/CN=vigil-test-ca")
        self.server = self._leaf("server", "/O=VigilTest/CN=localhost", self.ca,
                                 "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                 "extendedKeyUsage=serverAuth\n")
        self.server2 = self._leaf("server2", "/O=VigilTest/CN=localhost", self.ca,
                                  "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                  "extendedKeyUsage=serverAuth\n")
        for who in ("alice", "bob", "watcher"):
            setattr(self, who, self._leaf(who, "/O=VigilTest/CN=" + who, self.ca,
                                          "extendedKeyUsage=clientAuth\n"))
        self.evil_ca = self._ca("evilca", "/O=VigilTest/CN=untrusted-ca")
        # Same subject as alice's, from a CA the broker does not trust.
        self.mallory = self._leaf("mallory", "/O=VigilTest/CN=alice", self.evil_ca,
                                  "extendedKeyUsage=clientAuth\n")

    def _p(self, name):
        return os.path.join(self.dir, name)

    def _ca(self, name, subj):
        crt, key = self._p(name + ".crt"), self._p(name + ".key")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", crt, "-subj", subj, "-days", "2")
        os.chmod(key, 0o644)
        return (crt, key)

    def _leaf(self, name, subj, ca, ext):
        crt, key, csr, extf = (self._p(name + s) for s in (".crt", ".key", ".csr", ".ext"))
        with open(extf, "w") as f:
            f.write(ext)
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-keyout", key, "-out", csr, "-subj", subj)
        _openssl("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
                 "-out", crt, "-days", "2", "-extfile", extf)
        os.chmod(key, 0o644)
        return (crt, key)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


CERTS = None


def tls_conf(extra="", server=None):
    """Listener TLS options for the harness's first listener (listener PORT 127.0.0.1)."""
    crt, key = server or CERTS.server
    return "cafile %s\ncertfile %s\nkeyfile %s\n%s" % (CERTS.ca[0], crt, key, extra)


def client_tls(cert=None, cafile=None):
    args = ["--cafile", cafile or CERTS.ca[0]]
    if cert:
        args += ["--cert", cert[0], "--key", cert[1]]
    return args


# ---------------------------------------------------------------------------------------------
# mosquitto_sub / mosquitto_pub


# ---------------------------------------------------------------------------------------------
# Python ssl clients


def ssl_ctx(cert=None, max_version=None):
    ctx = ssl.create_default_context(cafile=CERTS.ca[0])
    if cert:
        ctx.load_cert_chain(cert[0], cert[1])
    if max_version:
        ctx.maximum_version = max_version
    return ctx


def tls_client(h, port, proto=4, cert=None, name="tls"):
    """A harness Client whose socket is wrapped in TLS (verified against our CA)."""
    c = h.client(port, proto=proto, name=name)
    c.sock.settimeout(3)
    c.sock = ssl_ctx(cert).wrap_socket(c.sock, server_hostname="127.0.0.1")
    return c


def fingerprint(port):
    """SHA-256 of the DER certificate the broker presents to a new TLS connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
        with ssl_ctx().wrap_socket(s, server_hostname="127.0.0.1") as t:
            return hashlib.sha256(t.getpeercert(True)).hexdigest()


def cert_fingerprint(crt):
    with open(crt) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


# ---------------------------------------------------------------------------------------------
# Cases


def case_cafile_roundtrip(h):
    # TLS listener with cafile/certfile/keyfile: mosquitto_sub and mosquitto_pub with --cafile,
    # v3.1.1 and v5, QoS 1, in both directions of version.
    b = h.broker(tls_conf())
    for sv, pv in (("mqttv311", "mqttv311"), ("mqttv5", "mqttv5"), ("mqttv311", "mqttv5")):
        t = "tls/%s/%s" % (sv, pv)
        s = Sub(b.port, t, sv, qos=1, extra=client_tls())
        pub(b.port, t, "secret-" + pv, pv, qos=1, extra=client_tls())
        check_eq(s.output(), ["%s secret-%s" % (t, pv)], "TLS message %s -> %s" % (pv, sv))


def case_large_and_many_messages(h):
    # Bulk over TLS (many TLS records per message, short writes): a 3 MB payload (v5 and
    # v3.1.1) arrives whole; 500 QoS 1 messages from one mosquitto_pub -l arrive in order.
    b = h.broker(tls_conf())
    big = os.path.join(h.dir, "big.bin")
    data = os.urandom(3 * 1024 * 1024)
    with open(big, "wb") as f:
        f.write(data)
    for v in ("mqttv5", "mqttv311"):
        s = Sub(b.port, "big/" + v, v, qos=1, extra=client_tls() + ["-F", "%t %x"])
        r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", v,
                            "-t", "big/" + v, "-q", "1", "-f", big] + client_tls(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        check(r.returncode == 0, "mosquitto_pub -f (%s): %s" % (v, r.stdout.decode()))
        out = s.output(timeout=15)
        check(len(out) == 1 and out[0].startswith("big/%s " % v),
              "3 MB message via %s: %r" % (v, [ln[:60] for ln in out]))
        got = bytes.fromhex(out[0].split(" ", 1)[1])
        check(got == data, "3 MB message via %s: %d bytes received, %s"
              % (v, len(got), "content differs" if len(got) == len(data) else "length differs"))
    s = Sub(b.port, "many/t", "mqttv5", qos=1, count=500, wait=15,
            extra=client_tls() + ["-F", "%p"])
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", "mqttv5",
                        "-t", "many/t", "-q", "1", "-l"] + client_tls(),
                       input="".join("%d\n" % i for i in range(500)).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    check(r.returncode == 0, "mosquitto_pub -l: %s" % r.stdout.decode())
    check_eq(s.output(timeout=20), [str(i) for i in range(500)], "500 QoS 1 messages in order")


def case_wrong_cafile_refused(h):
    # The client verifies the server: with the untrusted CA as --cafile the handshake fails.
    b = h.broker(tls_conf())
    rc, out = pub(b.port, "tls/x", "x", extra=client_tls(cafile=CERTS.evil_ca[0]),
                  expect_ok=False)
    check(rc != 0, "mosquitto_pub trusted a server certificate from another CA: %s" % out)


def case_require_certificate(h):
    # require_certificate true: a client with a certificate from our CA works; one without a
    # certificate, and one with a certificate (same subject) from an untrusted CA, are refused
    # and nothing they publish is delivered.
    b = h.broker(tls_conf("require_certificate true\n"))
    for v in ("mqttv311", "mqttv5"):
        s = Sub(b.port, "rc/#", v, qos=1, count=3, wait=3, extra=client_tls(CERTS.bob))
        pub(b.port, "rc/ok", "with-cert", v, qos=1, extra=client_tls(CERTS.alice))
        rc, out = pub(b.port, "rc/nocert", "x", v, qos=1, extra=client_tls(), expect_ok=False)
        check(rc != 0, "%s: client without a certificate accepted: %s" % (v, out))
        rc, out = pub(b.port, "rc/untrusted", "x", v, qos=1, extra=client_tls(CERTS.mallory),
                      expect_ok=False)
        check(rc != 0, "%s: certificate from an untrusted CA accepted: %s" % (v, out))
        check_eq(s.output(), ["rc/ok with-cert"], "%s: delivered messages" % v)


ACL_CN = """\
user alice
topic readwrite alice/#
topic read shared/#

user bob
topic readwrite bob/#
topic readwrite shared/#

user watcher
topic read #
"""


def _identity_acl_checks(b, user_extra=()):
    """alice publishes on her topics only; she reads shared/# and her own, not bob's."""
    watcher = Sub(b.port, "#", "mqttv311", qos=1, count=10, wait=4,
                  extra=client_tls(CERTS.watcher))
    alice = Sub(b.port, "#", "mqttv5", qos=1, count=10, wait=4,
                extra=client_tls(CERTS.alice) + list(user_extra))
    a = client_tls(CERTS.alice) + list(user_extra)
    bo = client_tls(CERTS.bob)
    pub(b.port, "alice/1", "a1", "mqttv311", qos=1, extra=a)
    pub(b.port, "bob/2", "a-on-bob", "mqttv311", qos=1, extra=a)   # denied: not delivered
    pub(b.port, "shared/3", "a-on-shared", "mqttv5", qos=1, extra=a)  # alice may only read
    pub(b.port, "bob/4", "b4", "mqttv5", qos=1, extra=bo)
    pub(b.port, "shared/5", "b5", "mqttv311", qos=1, extra=bo)
    pub(b.port, "alice/6", "b-on-alice", "mqttv311", qos=1, extra=bo)  # denied
    check_eq(watcher.output(), ["alice/1 a1", "bob/4 b4", "shared/5 b5"], "watcher (read #)")
    check_eq(alice.output(), ["alice/1 a1", "shared/5 b5"], "alice's '#' subscription")


def case_use_identity_as_username(h):
    # use_identity_as_username: the certificate's CN is the user name the ACL sees; a user name
    # sent in CONNECT (-u bob) does not change it.
    acl = h.file("acl", ACL_CN)
    b = h.broker(tls_conf("require_certificate true\nuse_identity_as_username true\n"
                          "acl_file %s\n" % acl))
    _identity_acl_checks(b)
    _identity_acl_checks(b, user_extra=["-u", "bob"])


def case_use_subject_as_username(h):
    # use_subject_as_username: the user name is the certificate subject in RFC 2253 form
    # ("CN=alice,O=VigilTest": last RDN first, as OpenSSL's XN_FLAG_RFC2253 and mosquitto print).
    acl = h.file("acl", ACL_CN.replace("user alice", "user CN=alice,O=VigilTest")
                 .replace("user bob", "user CN=bob,O=VigilTest")
                 .replace("user watcher", "user CN=watcher,O=VigilTest"))
    b = h.broker(tls_conf("require_certificate true\nuse_subject_as_username true\n"
                          "acl_file %s\n" % acl))
    _identity_acl_checks(b)
    # The bare CN is not the user name under this option: an ACL naming only "alice" gives her
    # nothing.
    acl2 = h.file("acl2", "user alice\ntopic readwrite #\nuser CN=watcher,O=VigilTest\n"
                  "topic read #\n")
    b2 = h.broker(tls_conf("require_certificate true\nuse_subject_as_username true\n"
                           "acl_file %s\n" % acl2))
    w = Sub(b2.port, "#", "mqttv311", count=1, wait=2, extra=client_tls(CERTS.watcher))
    pub(b2.port, "any/x", "x", extra=client_tls(CERTS.alice))
    check_eq(w.output(), [], "a CN-only ACL entry must not match the subject user name")


def case_plain_connect_on_tls_port(h):
    # A plain MQTT CONNECT sent to a TLS port: no CONNACK, the connection is closed.
    b = h.broker(tls_conf())
    for proto in (4, 5):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=3)
        s.sendall(mqtt_test.connect("plain", proto=proto))
        data, closed = b"", False
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            data += chunk
        s.close()
        check(not data.startswith(b"\x20"), "v%d: got a CONNACK-like reply %s"
              % (proto, mqtt_test.hexs(data[:16])))
        check(closed, "v%d: connection still open after 3 s (received %s)"
              % (proto, mqtt_test.hexs(data[:16])))


def case_tls13_only(h):
    # tls_version tlsv1.3: a TLS 1.2-only client is refused (Python ssl, openssl s_client
    # -tls1_2); TLS 1.3 works (s_client -tls1_3, mosquitto_pub/sub).
    b = h.broker(tls_conf("tls_version tlsv1.3\n"))
    with socket.create_connection(("127.0.0.1", b.port), timeout=3) as s:
        try:
            t = ssl_ctx(max_version=ssl.TLSVersion.TLSv1_2).wrap_socket(
                s, server_hostname="127.0.0.1")
            v = t.version()
            t.close()
            mqtt_test.fail("TLS 1.2 handshake accepted by a tlsv1.3 listener (%s)" % v)
        except (ssl.SSLError, ConnectionResetError, OSError):
            pass
    # (mosquitto_pub --tls-version tlsv1.2 cannot serve here: libmosquitto takes it as a
    # minimum and negotiates TLS 1.3.) openssl s_client -tls1_2 must fail its handshake.
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port, "-tls1_2",
                        "-CAfile", CERTS.ca[0], "-verify_return_error", "-brief"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    out = r.stdout.decode("utf-8", "replace")
    check(r.returncode != 0 and "CONNECTION ESTABLISHED" not in out,
          "openssl s_client -tls1_2 connected to a tlsv1.3 listener: %s" % out)
    r = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % b.port, "-tls1_3",
                        "-CAfile", CERTS.ca[0], "-verify_return_error", "-brief"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=10)
    out = r.stdout.decode("utf-8", "replace")
    check("CONNECTION ESTABLISHED" in out and "TLSv1.3" in out,
          "openssl s_client -tls1_3 failed: %s" % out)
    s = Sub(b.port, "v/#", "mqttv5", extra=client_tls())
    pub(b.port, "v/13", "ok", "mqttv5", extra=client_tls() + ["--tls-version", "tlsv1.3"])
    check_eq(s.output(), ["v/13 ok"], "TLS 1.3 message")


def case_default_tls_version_accepts_tls12(h):
    # Without tls_version both brokers accept TLS 1.2 and TLS 1.3 clients.
    b = h.broker(tls_conf())
    for mv, want in ((ssl.TLSVersion.TLSv1_2, "TLSv1.2"), (None, "TLSv1.3")):
        c = tls_client(h, b.port, name="tls-" + want)
        if mv is not None:
            c.sock.close()
            c.sock = ssl_ctx(max_version=mv).wrap_socket(
                socket.create_connection(("127.0.0.1", b.port), timeout=3),
                server_hostname="127.0.0.1")
        check_eq(c.sock.version(), want, "negotiated version")
        c.send(mqtt_test.connect("v-" + want))
        c.expect_packet(mqtt_test.connack(0))
        c.disconnect()


def case_sighup_reloads_certificate(h):
    # SIGHUP after the server certificate and key files were replaced: an existing connection
    # stays up and keeps working; a new connection is served the new certificate.
    crt, key = os.path.join(h.dir, "srv.crt"), os.path.join(h.dir, "srv.key")
    shutil.copy(CERTS.server[0], crt)
    shutil.copy(CERTS.server[1], key)
    os.chmod(key, 0o644)
    b = h.broker(tls_conf(server=(crt, key)))
    old_fp, new_fp = cert_fingerprint(CERTS.server[0]), cert_fingerprint(CERTS.server2[0])
    check_eq(fingerprint(b.port), old_fp, "certificate before the reload")
    old = tls_client(h, b.port, proto=5, name="old")
    old.send(mqtt_test.connect("old", proto=5))
    old.expect_type(mqtt_test.CONNACK)
    old.subscribe([("r/#", 1)])
    # Replace the contents in place (same paths), then SIGHUP.
    for src, dst in ((CERTS.server2[0], crt + ".new"), (CERTS.server2[1], key + ".new")):
        shutil.copy(src, dst)
        os.chmod(dst, 0o644)
    os.replace(key + ".new", key)
    os.replace(crt + ".new", crt)
    b.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    fp = None
    while time.monotonic() < deadline:
        fp = fingerprint(b.port)
        if fp == new_fp:
            break
        time.sleep(0.1)
    check_eq(fp, new_fp, "certificate served to a new connection after SIGHUP")
    check(b.alive(), "broker died on SIGHUP")
    new = tls_client(h, b.port, proto=5, name="new")
    new.send(mqtt_test.connect("new", proto=5))
    new.expect_type(mqtt_test.CONNACK)
    new.publish("r/1", "after-reload", qos=1)
    old.expect_publish("r/1", "after-reload", qos=1)
    old.send(mqtt_test.pingreq())
    old.expect_packet(mqtt_test.pingresp())


def case_identity_without_require_certificate(h):
    # use_identity_as_username without require_certificate: no client certificate is requested,
    # so no client has an identity and every one is refused with "bad user name or password"
    # (CONNACK 0x04 / v5 0x86), even with a valid certificate and allow_anonymous true; nothing
    # it publishes is delivered. (mosquitto 2.0.11; vigil warns at start-up.)
    b = h.broker(tls_conf("use_identity_as_username true\nallow_anonymous true\n"), anon=False)
    for v in ("mqttv311", "mqttv5"):
        rc, out = pub(b.port, "id/x", "x", v, qos=1, extra=client_tls(CERTS.alice) + ["-u", "alice"],
                      expect_ok=False)
        check(rc != 0 and "bad user name or password" in out.lower(),
              "%s: want a refusal 'bad user name or password', got rc %d: %s" % (v, rc, out))
    ok = h.broker(tls_conf("require_certificate true\nuse_identity_as_username true\n"), anon=False)
    pub(ok.port, "id/x", "x", "mqttv5", qos=1, extra=client_tls(CERTS.alice))


def _psk(identity, key):
    return ["--psk", key, "--psk-identity", identity]


def case_psk_clients(h):
    # TLS-PSK with mosquitto_sub / mosquitto_pub --psk: with use_identity_as_username the PSK
    # identity is the user name the ACL sees (ident1 may use psk/ident1/#, ident2 only reads);
    # allow_anonymous false and no password file do not matter. A wrong key fails the handshake.
    # Without use_identity_as_username a user name proves nothing: -u/-P refused (not authorised).
    psk = h.file("psk", "ident1:deadbeef\nident2:0123456789abcdef\n")
    acl = h.file("acl", "user ident1\ntopic readwrite psk/ident1/#\nuser ident2\ntopic read psk/#\n")
    b = h.broker("psk_hint hint\npsk_file %s\nacl_file %s\nuse_identity_as_username true\n"
                 "allow_anonymous false\n" % (psk, acl), anon=False)
    s = Sub(b.port, "psk/#", "mqttv5", qos=1, count=2, wait=4, extra=_psk("ident2", "0123456789abcdef"))
    pub(b.port, "psk/ident1/a", "one", "mqttv311", qos=1, extra=_psk("ident1", "deadbeef"))
    pub(b.port, "psk/other", "denied", "mqttv5", qos=1, extra=_psk("ident1", "deadbeef"))
    pub(b.port, "psk/ident1/b", "two", "mqttv5", qos=1, extra=_psk("ident1", "deadbeef") + ["-u", "ident2"])
    check_eq(s.output(), ["psk/ident1/a one", "psk/ident1/b two"], "messages under the PSK identities")
    rc, out = pub(b.port, "psk/ident1/c", "x", extra=_psk("ident1", "beef"), expect_ok=False)
    check(rc != 0, "a wrong PSK was accepted: %s" % out)
    b2 = h.broker("psk_hint hint\npsk_file %s\nallow_anonymous false\n" % psk, anon=False)
    for v in ("mqttv311", "mqttv5"):
        rc, out = pub(b2.port, "psk/x", "x", v, extra=_psk("ident1", "deadbeef") + ["-u", "ident1", "-P", "x"],
                      expect_ok=False)
        check(rc != 0 and "not authori" in out.lower(),
              "%s: want 'not authorised' for a user name without a password file, got rc %d: %s" % (v, rc, out))


CASES = [(n, f) for n, f in sorted(globals().items()) if n.startswith("case_")]


def main():
    global CERTS
    try:
        CERTS = Certs()
    except Exception as e:  # noqa: BLE001
        print("FAIL making certificates: %s" % e)
        return 1
    try:
        return run_cases(__file__, CASES)
    finally:
        CERTS.remove()


if __name__ == "__main__":
    sys.exit(main())
