"""Shared pieces of the interop scripts (test_clients.py, test_tls.py, test_paho.py).

What it does: the case runner (PASS/FAIL lines, broker log tails on failure, exit status), and
mosquitto_sub / mosquitto_pub wrappers with timeouts.
What it deliberately does not: start brokers (tests/broker/mqtt_test.py's Harness does).
Invariant: every client runs with a timeout; every broker a case started is stopped.
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
from mqtt_test import check  # noqa: E402


class Sub:
    """A mosquitto_sub in the background; the constructor returns once it holds its SUBACK."""

    def __init__(self, port, topic, version="mqttv311", qos=0, count=1, fmt="%t %p", wait=8, extra=()):
        args = ["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", version,
                "-t", topic, "-q", str(qos), "-C", str(count), "-W", str(wait), "-d", "-F", fmt] + list(extra)
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

    def output(self, timeout=10):
        """Message lines (debug lines removed), after mosquitto_sub exits (-C or -W)."""
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
    """Run mosquitto_pub; returns (exit status, output)."""
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version, "-t", topic,
            "-m", msg, "-q", str(qos)] + list(extra)
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    out = r.stdout.decode("utf-8", "replace")
    if expect_ok:
        check(r.returncode == 0, "mosquitto_pub -t %s (%s) failed (%d): %s"
              % (topic, " ".join(extra), r.returncode, out))
    return r.returncode, out


def run_cases(script, cases, cleanup=None):
    """Run the case_* functions of a script: `-k SUBSTR` filters; returns the exit status."""
    kfilter = sys.argv[sys.argv.index("-k") + 1] if "-k" in sys.argv else ""
    if mqtt_test.broker_kind() == "vigil" and not os.access(mqtt_test.broker_bin(), os.X_OK):
        print("FAIL vigil binary %s not found (set VIGIL_BIN or VIGIL_BROKER=mosquitto)"
              % mqtt_test.broker_bin())
        return 1
    failed = 0
    for name, f in cases:
        if kfilter not in name:
            continue
        h = mqtt_test.Harness(name)
        t0 = time.monotonic()
        try:
            try:
                f(h)
            finally:
                if cleanup:
                    cleanup(h)
                h.cleanup()
            print("PASS %s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
            h.remove_dir()
        except Exception as e:  # noqa: BLE001 - report and go on
            failed += 1
            detail = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
            print("FAIL %s (%.1fs)\n     %s" % (name, time.monotonic() - t0,
                                                detail.replace("\n", "\n     ")), flush=True)
            for b in h._brokers:
                print("     --- %s:\n     %s" % (b.log_path, b.log_tail(15).replace("\n", "\n     ")))
    print("\n%s: %d failed (broker: %s)" % (os.path.basename(script), failed, mqtt_test.broker_kind()))
    return 1 if failed else 0
