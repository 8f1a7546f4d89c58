#!/usr/bin/python3
"""The differential gate (`make compat`): the whole black-box suite against vigil and against
mosquitto 2.0.11, and every test whose outcome differs must be listed in mosquitto-compat.md.

What it does: runs tests/broker/run.py on vigil and, at the same time, on mosquitto with --all
(the @vigil_only / @mosquitto_differs markers are ignored there, so every deliberate difference
shows as a test that passes on one broker and not on the other). A test differs when it PASSes on
one broker and FAILs or SKIPs on the other (SKIP on both, e.g. no IPv6, is no difference). Every
test that differs and is not listed, and every listed test that does not differ, is run once more
on both brokers before the gate says so (a listed test that differs is what the list says):
  - differs in both runs               -> an UNLISTED difference: the gate fails;
  - differs in one run only            -> FLAKY: printed loudly with both runs, not failed and not
                                          counted as agreeing (mosquitto's keepalive sweep is
                                          coarse, and the machine may be loaded);
  - listed, agrees in both runs        -> a STALE row: the gate fails (see the Makefile comment);
  - XFAIL on vigil (@vigil_pending)    -> PENDING: another area's fix is due; printed, not failed.
The allowed list is every `NN_file::test_name` token in mosquitto-compat.md (the Test column of
the "Behaviour differences" table); a token that names no test fails the gate too.
What it deliberately does not: judge vigil's own failures (the normal test run does); compare
details of failures (the tests themselves are byte-exact on each broker).
Invariant: exit status 0 only if every difference is listed and every listed test differs.

Usage: compat.py [-j N] [-k SUBSTR] [--json-dir DIR]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
COMPAT_MD = os.path.join(REPO, "mosquitto-compat.md")
RUN = os.path.join(HERE, "run.py")
MOSQUITTO = "/usr/sbin/mosquitto"
TOKEN = re.compile(r"\b(\d\d_[A-Za-z0-9_]+::test_[A-Za-z0-9_]+)")


def listed_tests(path=COMPAT_MD):
    with open(path) as f:
        return set(TOKEN.findall(f.read()))


def load(jpath):
    with open(jpath) as f:
        return {r["test"]: r for r in json.load(f)["results"]}


def run_both(jobs, outdir, tag, extra, vigil_json=None):
    """Run the suite (or the tests in extra) on both brokers concurrently; return two dicts
    test -> record. vigil_json: results of a whole-suite vigil run to use instead of a new one."""
    procs = []
    sides = (("vigil", []), ("mosquitto", ["--all"]))
    if vigil_json:
        sides = sides[1:]
    for broker, flags in sides:
        jpath = os.path.join(outdir, "%s-%s.json" % (tag, broker))
        log = open(os.path.join(outdir, "%s-%s.log" % (tag, broker)), "w")
        cmd = [sys.executable, RUN, "--broker", broker, "-j", str(jobs), "--json", jpath] + \
            flags + extra
        procs.append((broker, jpath, log, subprocess.Popen(cmd, stdout=log,
                                                           stderr=subprocess.STDOUT)))
    out = {}
    if vigil_json:
        out["vigil"] = load(vigil_json)
    for broker, jpath, log, p in procs:
        p.wait()
        log.close()
        try:
            out[broker] = load(jpath)
        except (OSError, ValueError) as e:
            print("compat: the %s run produced no results (%s); see %s"
                  % (broker, e, log.name))
            sys.exit(2)
    return out["vigil"], out["mosquitto"]


def differs(v, m):
    """PASS on one broker, FAIL/SKIP on the other. None: pending (XFAIL on vigil)."""
    if v == "XFAIL":
        return None
    return (v == "PASS") != (m == "PASS")


def first_line(rec):
    d = (rec or {}).get("detail") or ""
    return d.strip().splitlines()[0][:160] if d.strip() else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", type=int, default=4, help="parallel tests per broker (default 4)")
    ap.add_argument("-k", action="append", default=[], help="only tests whose name has this")
    ap.add_argument("--json-dir", help="keep the runs' JSON and logs here")
    ap.add_argument("--vigil-json", metavar="FILE",
                    help="the first vigil run: results of `run.py --json FILE` over the whole "
                         "suite with this build (make check reuses make test's run)")
    args = ap.parse_args()
    if not os.access(MOSQUITTO, os.X_OK):
        print("compat: %s not found: the gate needs mosquitto 2.0.11 (make deps-test)"
              % MOSQUITTO)
        return 2
    if args.vigil_json and args.k:
        ap.error("--vigil-json is for the whole suite; leave out -k")
    outdir = args.json_dir or tempfile.mkdtemp(prefix="vigil-compat-")
    os.makedirs(outdir, exist_ok=True)
    kargs = sum((["-k", k] for k in args.k), [])

    listed = listed_tests()
    v1, m1 = run_both(args.j, outdir, "run1", kargs, args.vigil_json)
    missing = sorted(set(m1) - set(v1))
    if missing:
        print("compat: the vigil results lack %d tests (e.g. %s): a stale --vigil-json?"
              % (len(missing), missing[0]))
        return 2
    names = sorted(set(v1) | set(m1))
    problems = []

    unknown = sorted(t for t in listed if t not in v1 and not args.k)
    for t in unknown:
        problems.append("mosquitto-compat.md names %s, which is no test" % t)

    pending = [t for t in names if v1.get(t, {}).get("status") == "XFAIL"]
    d1 = {t for t in names
          if differs(v1.get(t, {}).get("status"), m1.get(t, {}).get("status"))}
    # A second run only where the first would fail the gate: an unlisted difference, or a
    # listed test that agreed. A listed test that differed is what the list says: no rerun.
    recheck = sorted({t for t in d1 if t not in listed} |
                     {t for t in listed if t in v1 and t not in d1 and t not in pending})
    v2, m2 = run_both(args.j, outdir, "run2", sum((["--test", t] for t in recheck), [])) \
        if recheck else ({}, {})

    stable = sorted(t for t in d1 if t in listed)
    flaky, stale = [], []
    for t in recheck:
        a = t in d1
        b = bool(differs(v2.get(t, {}).get("status"), m2.get(t, {}).get("status")))
        if a and b:
            stable.append(t)
        elif a or b:
            flaky.append(t)
        else:
            stale.append(t)
    stable.sort()

    def outcome(t, v, m):
        return "vigil %-5s mosquitto %-5s" % (v.get(t, {}).get("status", "-"),
                                             m.get(t, {}).get("status", "-"))

    print("\n==== make compat: %d tests on vigil and mosquitto 2.0.11 (--all); %d listed in "
          "mosquitto-compat.md" % (len(names), len(listed)))
    print("\nDifferences (%d; an unlisted one is confirmed by a second run):" % len(stable))
    for t in stable:
        tag = "listed  " if t in listed else "UNLISTED"
        print("  %s %s  %s" % (tag, outcome(t, v1, m1), t))
        if t not in listed:
            side = m1 if m1.get(t, {}).get("status") != "PASS" else v1
            if first_line(side.get(t)):
                print("           %s" % first_line(side.get(t)))
            problems.append("%s differs (%s) and is not listed in mosquitto-compat.md"
                            % (t, outcome(t, v1, m1).strip()))
    if flaky:
        print("\nFLAKY (%d: differed in one of two runs; not called a difference, not hidden):"
              % len(flaky))
        for t in flaky:
            print("  %s  run 1: %s  run 2: %s%s" % (t, outcome(t, v1, m1), outcome(t, v2, m2),
                                                   "  (listed)" if t in listed else ""))
    if stale:
        print("\nSTALE rows (%d: listed, but the outcome agrees in both runs):" % len(stale))
        for t in stale:
            print("  %s  %s" % (outcome(t, v1, m1), t))
            problems.append("%s is listed in mosquitto-compat.md but no longer differs "
                            "(%s): remove it from the row" % (t, outcome(t, v1, m1).strip()))
    if pending:
        print("\nPENDING (%d: @vigil_pending, XFAIL on vigil; another area's fix is due):"
              % len(pending))
        for t in pending:
            print("  mosquitto %-5s %s" % (m1.get(t, {}).get("status", "-"), t))
    print("\n(runs kept in %s)" % outdir)
    if problems:
        print("\n==== make compat FAILED:")
        for p in problems:
            print("  - " + p)
        return 1
    print("\n==== make compat: every difference is listed, every listed test differs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
