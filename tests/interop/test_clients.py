#!/usr/bin/python3
"""Interop with the mosquitto command-line clients (mosquitto_pub / mosquitto_sub 2.0.11).

What it does: runs the real clients against the broker chosen by VIGIL_BROKER (vigil | mosquitto,
default vigil; VIGIL_BIN for the binary) over loopback: v3.1 / v3.1.1 / v5 at QoS 0/1/2, retained
messages, wills (a mosquitto_sub killed with SIGKILL), user name / password from a mosquitto_passwd
file, v5 properties. Prints PASS / FAIL per case; exit status 1 if any failed.
What it deliberately does not: no packet-level assertions (tests/broker does those).
Invariant: every client runs with a timeout (-W / subprocess timeout); every broker is stopped.
Usage: test_clients.py [-k SUBSTR]
"""
import os
import subprocess
import sys
import time

from interop import Sub, pub, run_cases  # noqa: E402  (puts tests/broker on the path)
from mqtt_test import check, check_eq  # noqa: E402

VERSIONS = ("mqttv31", "mqttv311", "mqttv5")


def case_qos_matrix(h):
    b = h.broker()
    for v in VERSIONS:
        for q in range(3):
            t = "im/%s/%d" % (v, q)
            s = Sub(b.port, t, v, qos=q)
            pub(b.port, t, "hello-%s-%d" % (v, q), v, qos=q)
            check_eq(s.output(), ["%s hello-%s-%d" % (t, v, q)], "message via %s QoS %d" % (v, q))


def case_cross_version(h):
    b = h.broker()
    subs = [Sub(b.port, "ix/t", v, qos=2) for v in VERSIONS]
    pub(b.port, "ix/t", "across", "mqttv5", qos=2)
    for v, s in zip(VERSIONS, subs):
        check_eq(s.output(), ["ix/t across"], "received by %s" % v)


def case_retained(h):
    b = h.broker()
    for v in ("mqttv311", "mqttv5"):
        t = "ir/" + v
        pub(b.port, t, "kept", v, qos=1, extra=["-r"])
        s = Sub(b.port, t, v, fmt="%t %r %p")
        check_eq(s.output(), ["%s 1 kept" % t], "retained via %s" % v)
        pub(b.port, t, "", v, extra=["-r"])
        s = Sub(b.port, t, v, count=1, extra=["-W", "1"])
        check_eq(s.output(timeout=5), [], "cleared retained via %s" % v)


def case_will(h):
    b = h.broker()
    for v in ("mqttv311", "mqttv5"):
        watcher = Sub(b.port, "iw/" + v, "mqttv311", qos=1)
        victim = Sub(b.port, "iw/nothing", v, qos=0,
                     extra=["--will-topic", "iw/" + v, "--will-payload", "died-" + v,
                            "--will-qos", "1", "-i", "victim-" + v])
        victim.kill()
        check_eq(watcher.output(), ["iw/%s died-%s" % (v, v)], "will via %s" % v)


def case_will_retained(h):
    b = h.broker()
    victim = Sub(b.port, "iwr/nothing", "mqttv5",
                 extra=["--will-topic", "iwr/t", "--will-payload", "last", "--will-retain"])
    victim.kill()
    time.sleep(0.3)
    s = Sub(b.port, "iwr/t", "mqttv311", fmt="%t %r %p")
    check_eq(s.output(), ["iwr/t 1 last"], "retained will")


def case_no_will_on_clean_exit(h):
    b = h.broker()
    watcher = Sub(b.port, "inw/t", "mqttv311", extra=["-W", "2"])
    pub(b.port, "other", "x", "mqttv5", extra=["--will-topic", "inw/t", "--will-payload", "bad"])
    check_eq(watcher.output(), [], "no will after a clean disconnect")


def case_password(h):
    path = os.path.join(h.dir, "passwd")
    subprocess.run(["mosquitto_passwd", "-b", "-c", path, "user1", "s3cret"], check=True)
    os.chmod(path, 0o644)
    b = h.broker("password_file %s\n" % path, anon=False)
    for v in ("mqttv311", "mqttv5"):
        s = Sub(b.port, "ip/t", v, extra=["-u", "user1", "-P", "s3cret"])
        pub(b.port, "ip/t", "authed", v, extra=["-u", "user1", "-P", "s3cret"])
        check_eq(s.output(), ["ip/t authed"], "authenticated message via %s" % v)
        rc, _ = pub(b.port, "ip/t", "x", v, extra=["-u", "user1", "-P", "wrong"], expect_ok=False)
        check(rc != 0, "wrong password accepted via %s" % v)
        rc, _ = pub(b.port, "ip/t", "x", v, expect_ok=False)
        check(rc != 0, "anonymous accepted via %s" % v)


def case_v5_properties(h):
    b = h.broker()
    s = Sub(b.port, "iv/t", "mqttv5", fmt="%t %C|%R|%D|%F|%P|%p")
    pub(b.port, "iv/t", "props", "mqttv5", qos=1,
        extra=["-D", "publish", "content-type", "text/plain",
               "-D", "publish", "response-topic", "iv/reply",
               "-D", "publish", "correlation-data", "c0rr",
               "-D", "publish", "payload-format-indicator", "1",
               "-D", "publish", "user-property", "k1", "v1",
               "-D", "publish", "user-property", "k2", "v2"])
    check_eq(s.output(), ["iv/t text/plain|iv/reply|c0rr|1|k1:v1 k2:v2|props"],
             "v5 properties")


def case_v5_message_expiry(h):
    b = h.broker()
    s = Sub(b.port, "ie/t", "mqttv5", fmt="%t %E %p")
    pub(b.port, "ie/t", "exp", "mqttv5", extra=["-D", "publish", "message-expiry-interval", "50"])
    out = s.output()
    check(out in (["ie/t 50 exp"], ["ie/t 49 exp"]), "message expiry: %r" % out)


def case_many_messages(h):
    b = h.broker()
    s = Sub(b.port, "iq/t", "mqttv5", qos=1, count=200, fmt="%p")
    r = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(b.port), "-V", "mqttv5",
                        "-t", "iq/t", "-q", "1", "-l"],
                       input="".join("%d\n" % i for i in range(200)).encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    check(r.returncode == 0, "mosquitto_pub -l: %s" % r.stdout)
    check_eq(s.output(), [str(i) for i in range(200)], "200 QoS 1 messages in order")


CASES = [(n, f) for n, f in sorted(globals().items()) if n.startswith("case_")]


def main():
    return run_cases(__file__, CASES)


if __name__ == "__main__":
    sys.exit(main())
