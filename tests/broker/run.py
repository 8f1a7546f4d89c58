#!/usr/bin/python3
"""Parallel runner for the black-box broker tests.

What it does: discovers tests/broker/[0-9][0-9]_*.py, runs every `test_*(h)` function in its own
child process (own broker, own free port, own process group, hard timeout), prints one line per test
(PASS / FAIL / SKIP with reason) and a summary; exit status 1 if any test failed.
What it deliberately does not: no fixtures beyond the Harness object `h` (see mqtt_test.py).
Invariant: a hung test is killed (with its broker) at its timeout; the suite always terminates.

Usage: run.py [--broker vigil|mosquitto] [-k SUBSTR] [--test NN_file::test_x] [-j N] [-v] [--list]
              [--run-differs] [--all] [--json FILE]
--all runs every test on mosquitto too, ignoring @vigil_only / @mosquitto_differs (the differential
gate, tests/broker/compat.py, uses it); --json writes one record per test for machines.
"""

import argparse
import glob
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mqtt_test  # noqa: E402

DEFAULT_TIMEOUT = 10.0
MARKERS = ("vigil_only", "mosquitto_differs", "vigil_pending")
STATUSES = ("PASS", "FAIL", "SKIP", "XFAIL")


def load(path):
    name = "bt_" + os.path.basename(path)[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def discover(kfilter, exact=None):
    tests = []
    for path in sorted(glob.glob(os.path.join(HERE, "[0-9][0-9]_*.py"))):
        mod = load(path)
        for name, f in list(vars(mod).items()):
            if name.startswith("test_") and callable(f):
                full = "%s::%s" % (os.path.basename(path)[:-3], name)
                if kfilter and not any(k in full for k in kfilter):
                    continue
                if exact is not None and full not in exact:
                    continue
                tests.append((full, path, name, f))
    return tests


def run_one(path, name):
    """Child mode: run one test, print a RESULT line."""
    mod = load(path)
    f = getattr(mod, name)
    h = mqtt_test.Harness(name)
    status, detail = "PASS", ""
    try:
        f(h)
    except mqtt_test.Skip as e:
        status, detail = "SKIP", str(e)
    except mqtt_test.TestFailure as e:
        status, detail = "FAIL", str(e)
    except Exception:  # noqa: BLE001 - an error in a test is a failure
        status, detail = "FAIL", traceback.format_exc()
    try:
        h.cleanup()  # stops the brokers; a bad exit or a sanitizer report fails the test
    except Exception as e:  # noqa: BLE001
        detail = (detail + "\n(cleanup) " if status == "FAIL" else "") + str(e)
        status = "FAIL"
    if status == "FAIL":
        for b in h._brokers:
            detail += "\n--- %s log (%s), last lines:\n%s" % (b.name, b.log_path, b.log_tail(25))
    else:
        h.remove_dir()
    sys.stdout.flush()
    print("RESULT " + json.dumps({"status": status, "detail": detail}))
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", choices=["vigil", "mosquitto"],
                    default=os.environ.get("VIGIL_BROKER", "vigil"))
    ap.add_argument("-k", action="append", default=[], help="run tests whose name contains this")
    ap.add_argument("-j", type=int, default=max(4, 2 * (os.cpu_count() or 2)))
    ap.add_argument("-v", action="store_true", help="show details of skipped tests too")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--run-differs", action="store_true",
                    help="on mosquitto, run the mosquitto-differs tests too (they should FAIL)")
    ap.add_argument("--all", action="store_true",
                    help="ignore the markers: run vigil-only and mosquitto-differs tests on "
                         "mosquitto too (for the differential gate)")
    ap.add_argument("--test", action="append", default=None, metavar="NN_file::test_x",
                    help="run exactly this test (repeatable)")
    ap.add_argument("--json", metavar="FILE", default=os.environ.get("VIGIL_BT_JSON") or None,
                    help="write the results as JSON: [{test, status, secs, markers, detail}] "
                         "(default: $VIGIL_BT_JSON)")
    ap.add_argument("--one", nargs=2, metavar=("FILE", "TEST"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ["VIGIL_BROKER"] = args.broker
    if args.one:
        return run_one(*args.one)

    if args.broker == "vigil":
        b = mqtt_test.broker_bin()
        if not os.access(b, os.X_OK):
            print("vigil binary %s not found (build it with `make vigil` or set VIGIL_BIN)" % b)
            return 1

    tests = discover(args.k, set(args.test) if args.test is not None else None)
    if args.list:
        for full, _, _, f in tests:
            marks = [m for m in MARKERS if hasattr(f, m)]
            print(full, " ".join(marks))
        return 0

    results = []
    lock = threading.Lock()
    # Longest tests first, so that they overlap with the many short ones.
    queue = sorted(tests, key=lambda t: -getattr(t[3], "timeout", DEFAULT_TIMEOUT))
    start = time.monotonic()

    marks_of = {t[0]: [m for m in MARKERS if hasattr(t[3], m)] for t in tests}

    def report(full, status, secs, detail):
        with lock:
            results.append((full, status, detail, secs))
            line = "%-4s %s (%.1fs)" % (status, full, secs)
            if status in ("SKIP", "XFAIL"):
                line += " -- " + detail.splitlines()[0] if detail else ""
            print(line, flush=True)
            if status == "FAIL" or (args.v and detail and status != "SKIP"):
                print("     " + detail.replace("\n", "\n     "), flush=True)

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                full, path, name, f = queue.pop(0)
            if args.broker == "mosquitto" and not args.all:
                if hasattr(f, "vigil_only"):
                    report(full, "SKIP", 0, "vigil-only: " + f.vigil_only)
                    continue
                if hasattr(f, "mosquitto_differs") and not args.run_differs:
                    report(full, "SKIP", 0, "mosquitto-differs: " + f.mosquitto_differs)
                    continue
            limit = getattr(f, "timeout", DEFAULT_TIMEOUT)
            t0 = time.monotonic()
            proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--broker",
                                     args.broker, "--one", path, name],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                out, _ = proc.communicate(timeout=limit)
                timed_out = False
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, _ = proc.communicate()
                timed_out = True
            # Kill whatever the test left behind in its process group (brokers).
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            out = out.decode("utf-8", "replace")
            secs = time.monotonic() - t0
            res = None
            for line in out.splitlines():
                if line.startswith("RESULT "):
                    res = json.loads(line[7:])
            if timed_out:
                report(full, "FAIL", secs, "test exceeded its %.0f s limit\n%s" % (limit, out))
            elif res is None:
                report(full, "FAIL", secs, "test process died (rc=%s)\n%s" % (proc.returncode, out))
            else:
                extra = out[:out.rfind("RESULT ")].strip()
                detail = res["detail"] + (("\n" + extra) if extra and res["status"] == "FAIL"
                                          else "")
                status = res["status"]
                if args.broker == "vigil" and hasattr(f, "vigil_pending"):
                    if status == "FAIL":
                        status, detail = "XFAIL", "pending: %s\n%s" % (f.vigil_pending, detail)
                    elif status == "PASS":
                        status, detail = "FAIL", ("XPASS: passes now; remove @vigil_pending(%r)"
                                                  % f.vigil_pending)
                report(full, status, secs, detail)

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.j))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    if args.json:
        with open(args.json, "w") as jf:
            json.dump({"broker": args.broker, "all": args.all,
                       "results": [{"test": full, "status": status, "secs": round(secs, 2),
                                    "markers": marks_of.get(full, []), "detail": detail}
                                   for full, status, detail, secs in sorted(results)]},
                      jf, indent=1)
    n = {s: sum(1 for r in results if r[1] == s) for s in STATUSES}
    print("\n%d passed, %d failed, %d skipped%s in %.1f s (broker: %s)"
          % (n["PASS"], n["FAIL"], n["SKIP"],
             ", %d pending (XFAIL, another area's fix is due)" % n["XFAIL"] if n["XFAIL"] else "",
             time.monotonic() - start, args.broker))
    if n["FAIL"]:
        print("failed:")
        for full, status, _, _ in sorted(results):
            if status == "FAIL":
                print("  " + full)
    return 1 if n["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
