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
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "broker"))
import mqtt_test  # noqa: E402
from mqtt_test import check, check_eq  # noqa: E402

VERSIONS = ("mqttv31", "mqttv311", "mqttv5")


class Sub:
    """A mosquitto_sub running in the background; started() returns once it holds its SUBACK."""

    def __init__(self, port, topic, version="mqttv311", qos=0, count=1, fmt="%t %p", extra=()):
        args = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-t", topic,
                "-q", str(qos), "-C", str(count), "-W", "8", "-d", "-F", fmt] + list(extra)
        # Unbuffered: communicate() with a timeout reads the raw pipe, so no read-ahead may hide
        # lines in a buffer.
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True, bufsize=0)
        self.lines = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode("utf-8", "replace")
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            if "received SUBACK" in line:
                return
        self.kill()
        mqtt_test.fail("mosquitto_sub did not get its SUBACK:\n" + "\n".join(self.lines))

    def output(self, timeout=8):
        """Message lines printed by mosquitto_sub (debug lines removed), after it exits."""
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, _ = self.proc.communicate()
        lines = self.lines + out.decode("utf-8", "replace").splitlines()
        return [ln for ln in lines if not ln.startswith("Client ") and not ln.startswith(" ")
                and "received SUBACK" not in ln and not ln.startswith("Subscribed (")
                and ln != "Timed out"]

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass


def pub(port, topic, msg, version="mqttv311", qos=0, extra=(), expect_ok=True):
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-t", topic,
            "-m", msg, "-q", str(qos)] + list(extra)
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    if expect_ok:
        check(r.returncode == 0, "mosquitto_pub %r failed (%d): %s"
              % (args[5:], r.returncode, r.stdout.decode()))
    return r


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
        r = pub(b.port, "ip/t", "x", v, extra=["-u", "user1", "-P", "wrong"], expect_ok=False)
        check(r.returncode != 0, "wrong password accepted via %s" % v)
        r = pub(b.port, "ip/t", "x", v, expect_ok=False)
        check(r.returncode != 0, "anonymous accepted via %s" % v)


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
    kfilter = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else ""
    if mqtt_test.broker_kind() == "vigil" and not os.access(mqtt_test.broker_bin(), os.X_OK):
        print("FAIL vigil binary %s not found (set VIGIL_BIN or VIGIL_BROKER=mosquitto)"
              % mqtt_test.broker_bin())
        return 1
    failed = 0
    for name, f in CASES:
        if kfilter not in name:
            continue
        h = mqtt_test.Harness(name)
        t0 = time.monotonic()
        try:
            try:
                f(h)
            finally:
                h.cleanup()
            print("PASS %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
            h.remove_dir()
        except Exception as e:  # noqa: BLE001 - report and go on
            failed += 1
            detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            print("FAIL %s (%.1fs)\n     %s" % (name, time.monotonic() - t0,
                                                detail.replace("\n", "\n     ")), flush=True)
            for b in h._brokers:
                print("     --- %s:\n     %s" % (b.log_path, b.log_tail(15).replace("\n",
                                                                               "\n     ")))
    print("\n%s: %d failed (broker: %s)" % (os.path.basename(__file__), failed,
                                            mqtt_test.broker_kind()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
