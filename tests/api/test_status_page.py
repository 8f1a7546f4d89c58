#!/usr/bin/python3
"""The status page (GET /) in Debian's headless Chromium.

The page is loaded twice with --dump-dom and a virtual time budget (its own script polls the JSON
API and counts down between polls; nothing is held open, so the dump is the page as a user sees it):
- first, with two connected clients (keepalive 60 s and 4 s, the second with a will): both are in
  the clients table, each with a countdown (data-ms) consistent with 1.5 x its keepalive minus the
  time since its CONNECT;
- then, after the 4 s client has been silent for more than 6 s (v311 MQTT-3.1.2-24: closed after
  1.5 x keepalive): it is gone from the table, its keepalive timeout and its will are listed under
  the recent events, and the 60 s client's countdown has gone down by about the time that passed.
Finally a screenshot (--screenshot) is written to $API_SCREENSHOT (default build/status-page.png;
README's tests/api/status-page.png is one of these).
Skips (loudly) when chromium is not installed.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apitest as at  # noqa: E402
from apitest import check, mt  # noqa: E402

SILENT_K = 4  # keepalive of the client that falls silent: its deadline (6 s) leaves room for one page load
TOP = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def chromium():
    for n in ("chromium", "chromium-browser"):
        p = shutil.which(n)
        if p:
            return p
    return None


def browse(h, url, *args, budget=2500):
    profile = tempfile.mkdtemp(prefix="vigil-chromium-", dir=h.dir)
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--hide-scrollbars", "--user-data-dir=" + profile, "--virtual-time-budget=%d" % budget] + list(args) + [url]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the group this test created for chromium
        p.communicate()
        raise AssertionError("chromium did not finish within 60 s")
    return out.decode("utf-8", "replace")


def table(dom):
    """{client_id: countdown ms} from the clients table."""
    body = re.search(r'<tbody id="clients">(.*?)</tbody>', dom, re.S)
    check(body, "no clients table in the DOM")
    rows = {}
    for m in re.finditer(r'<tr data-client="([^"]*)">(.*?)</tr>', body.group(1), re.S):
        left = re.search(r'class="left"(?: data-ms="(\d+)")?>([^<]*)<', m.group(2))
        rows[m.group(1)] = (int(left.group(1)) if left and left.group(1) else None, left.group(2) if left else None)
    return rows


def events(dom):
    ul = re.search(r'<ul id="events">(.*?)</ul>', dom, re.S)
    check(ul, "no events list in the DOM")
    return [(m.group(1), m.group(2), re.sub("<[^>]+>", "", m.group(3)))
            for m in re.finditer(r'<li class="ev ([a-z_]+)" data-client="([^"]*)">(.*?)</li>', ul.group(1), re.S)]


def t_status_page_live(h):
    if not chromium():
        raise mt.Skip("chromium not installed (scripts/deps.sh --test installs it)")
    b, hp = at.broker(h)
    url = "http://127.0.0.1:%d/" % hp
    t_conn = time.monotonic()
    h.connect(b.port, "dev-steady", keepalive=60)
    h.connect(b.port, "dev-silent", keepalive=SILENT_K, will=dict(topic="status/dev-silent", payload=b"gone"))
    dom1 = browse(h, url, "--dump-dom")
    t1 = time.monotonic()
    rows1 = table(dom1)
    check(set(rows1) == {"dev-steady", "dev-silent"}, "clients shown: %r" % sorted(rows1))
    steady1, txt = rows1["dev-steady"]
    check(steady1 is not None and txt.endswith(" s"), "no countdown for dev-steady: %r" % (rows1,))
    # 1.5 x 60 s minus the time since CONNECT (the page's virtual clock may run ahead by its budget)
    check(90000 - (t1 - t_conn) * 1000 - 3500 <= steady1 <= 90000, "dev-steady countdown %d" % steady1)
    check(time.monotonic() < t_conn + SILENT_K * 1.5, "the first page load took longer than dev-silent's "
          "deadline (%.1f s): the machine is too slow for this check" % (SILENT_K * 1.5))
    check(rows1["dev-silent"][0] is not None and rows1["dev-silent"][0] <= SILENT_K * 1500, "dev-silent countdown %r"
          % (rows1["dev-silent"],))
    check("timeout" not in "".join(e[0] for e in events(dom1)), "a timeout before any happened")
    # dev-silent never sends a packet: closed at 1.5 x SILENT_K s after its CONNECT
    time.sleep(max(0.0, t_conn + SILENT_K * 1.5 + 0.6 - time.monotonic()))
    dom2 = browse(h, url, "--dump-dom")
    t2 = time.monotonic()
    rows2 = table(dom2)
    check(set(rows2) == {"dev-steady"}, "after the timeout the table shows %r" % sorted(rows2))
    ev = events(dom2)
    kinds = [(k, c) for k, c, _ in ev]
    check(("keepalive_timeout", "dev-silent") in kinds and ("will", "dev-silent") in kinds,
          "events shown: %r" % ev)
    check(any("silent" in text and ("keepalive %d s" % SILENT_K) in text for k, _, text in ev if k == "keepalive_timeout"),
          "timeout text %r" % ev)
    steady2 = rows2["dev-steady"][0]
    moved = steady1 - steady2
    check(0.5 * (t2 - t1) * 1000 - 3000 <= moved <= (t2 - t1) * 1000 + 3000,
          "dev-steady countdown moved %d ms in %.1f s" % (moved, t2 - t1))
    # a fuller picture for the screenshot
    for cid, ka in (("sensor-kitchen", 30), ("sensor-garage", 10), ("gateway-01", 120), ("meter-7", 0)):
        h.connect(b.port, cid, keepalive=ka, proto=5 if ka == 120 else 4)
    shot = os.environ.get("API_SCREENSHOT", os.path.join(TOP, "build", "status-page.png"))
    os.makedirs(os.path.dirname(shot), exist_ok=True)
    browse(h, url, "--screenshot=" + shot, "--window-size=900,760")
    check(os.path.getsize(shot) > 5000, "screenshot %s is empty" % shot)
    print("  table %s -> %s; countdown %d -> %d ms; events %r; screenshot %s"
          % (sorted(rows1), sorted(rows2), steady1, steady2, kinds, shot))


if __name__ == "__main__":
    sys.exit(at.run(globals(), "tests/api/test_status_page.py"))
