"""Helpers for the cluster tests: real nats-server processes and vigil nodes on loopback.

What it does: starts nats-server (JetStream on, store in the test's temp dir, monitoring port
for /connz) on free ports, starts vigil nodes joined to it through tests/broker/mqtt_test.py's
Broker (so the sanitizer checks at stop apply), waits for log lines with a deadline.
What it deliberately does not: no MQTT logic of its own (mqtt_test's raw client is used).
Invariant: every process started here is stopped by Cluster.cleanup(), also on failure.
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "broker"))
import mqtt_test as mt  # noqa: E402

NATS = shutil.which("nats-server") or "/usr/bin/nats-server"
SAN = os.environ.get("VIGIL_SAN") == "1"


class Nats:
    """One nats-server with JetStream. routes: other servers' cluster ports (3-server cluster)."""

    def __init__(self, h, name="nats", port=None, cluster_port=None, routes=None):
        self.h = h
        self.name = name
        self.port = port or mt.free_port()
        self.mport = mt.free_port()
        self.cluster_port = cluster_port
        self.routes = routes
        self.sd = os.path.join(h.dir, name + "-js")
        self.log_path = os.path.join(h.dir, name + ".log")
        self.proc = None
        self.start()

    def start(self):
        args = [NATS, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.mport),
                "-sd", self.sd, "-n", self.name]
        if self.cluster_port:
            args += ["--cluster_name", "vt", "--cluster", "nats://127.0.0.1:%d" % self.cluster_port]
            if self.routes:
                args += ["--routes", ",".join("nats://127.0.0.1:%d" % p for p in self.routes)]
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
        finally:
            logf.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        mt.fail("nats-server %s did not start; log:\n%s" % (self.name, self.log()))

    def url(self):
        return "nats://127.0.0.1:%d" % self.port

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-3000:]
        except OSError:
            return ""

    def connz(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/connz?subs=1" % self.mport, timeout=2) as r:
            return json.loads(r.read())

    def js_ready(self, gone=()):
        """True when /healthz says this server's JetStream is current and /jsz names a metadata
        leader and a leader for every stream, none of them a server named in gone (killed: an
        election must follow)."""
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/healthz" % self.mport, timeout=1) as r:
                if json.loads(r.read()).get("status") != "ok":
                    return False
            if not self.cluster_port:
                return True
            with urllib.request.urlopen("http://127.0.0.1:%d/jsz?streams=true" % self.mport, timeout=1) as r:
                jsz = json.loads(r.read())
            leaders = [(jsz.get("meta_cluster") or {}).get("leader")]
            for acc in jsz.get("account_details") or []:
                leaders += [(st.get("cluster") or {}).get("leader") for st in acc.get("stream_detail") or []]
            return all(leaders) and not any(x in gone for x in leaders)
        except (OSError, ValueError):
            return False

    def wait_js(self, timeout, gone=()):
        """Wait (bounded) until js_ready(gone); return the seconds it took, fail with the
        server's log tail if it never is."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.js_ready(gone):
                return time.monotonic() - t0
            time.sleep(0.1)
        mt.fail("nats-server %s: JetStream not ready within %.1f s; log:\n%s" % (self.name, timeout, self.log()))

    def stream(self, name):
        """The /jsz detail (config, state) of JetStream stream name, or None."""
        with urllib.request.urlopen("http://127.0.0.1:%d/jsz?streams=true&config=true" % self.mport, timeout=2) as r:
            jsz = json.loads(r.read())
        for acc in jsz.get("account_details") or []:
            for st in acc.get("stream_detail") or []:
                if st.get("name") == name:
                    return st
        return None

    def out_msgs(self, conn_name):
        """Messages the server has sent to the client connection named conn_name."""
        for c in self.connz().get("connections", []):
            if c.get("name") == conn_name:
                return c.get("out_msgs", 0)
        mt.fail("no NATS connection named %s" % conn_name)

    def stop(self, kill=False):
        if self.proc and self.proc.poll() is None:
            if kill:
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Cluster(mt.Harness):
    def __init__(self, name):
        super().__init__(name)
        self._nats = []

    def nats(self, **kw):
        n = Nats(self, name="nats%d" % len(self._nats), **kw)
        self._nats.append(n)
        return n

    def node(self, nats_url, node_id, extra="", wait_join=True, name=None):
        conf = "cluster_nats_url %s\ncluster_node_id %s\n%s" % (nats_url, node_id, extra)
        b = self.broker(conf, name=name or node_id)
        if wait_join:
            self.wait_log(b, "joined cluster")
        return b

    def wait_log(self, b, text, timeout=8.0, count=1):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b.log().count(text) >= count:
                return
            time.sleep(0.02)
        mt.fail("%s: no %r in its log within %.1f s; log tail:\n%s" % (b.name, text, timeout, b.log_tail()))

    def kill9(self, b):
        b.proc.kill()
        b.proc.wait()
        b.stopped = True

    def cleanup(self):
        try:
            super().cleanup()
        finally:
            for n in self._nats:
                n.stop()


def run(patterns, tests):
    """Run each test function (those whose name contains one of patterns, if any) with a fresh
    Cluster; print PASS/FAIL lines; return the exit status."""
    failed = 0
    for t in tests:
        if patterns and not any(p in t.__name__ for p in patterns):
            continue
        h = Cluster(t.__name__)
        t0 = time.monotonic()
        try:
            t(h)
            h.cleanup()
            print("PASS %s (%.1f s)%s" % (t.__name__, time.monotonic() - t0,
                                          (" - " + t.__doc__.strip().splitlines()[0]) if t.__doc__ else ""))
            if not os.environ.get("CLUSTER_KEEP"):
                h.remove_dir()
            else:
                print("  kept " + h.dir)
        except mt.Skip as e:
            print("SKIP %s: %s" % (t.__name__, e))
            try:
                h.cleanup()
            except Exception:  # noqa: BLE001
                pass
        except Exception as e:  # noqa: BLE001 - report every failure the same way
            failed += 1
            print("FAIL %s (%.1f s): %s" % (t.__name__, time.monotonic() - t0, e))
            try:
                h.cleanup()
            except Exception as e2:  # noqa: BLE001
                print("  cleanup: %s" % e2)
            print("  logs kept in %s" % h.dir)
        sys.stdout.flush()
    return 1 if failed else 0


def need_nats():
    if not os.path.exists(NATS):
        print("FAIL tests/cluster: nats-server is not installed (scripts/deps.sh --test installs it)")
        sys.exit(1)
