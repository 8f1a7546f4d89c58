"""Network namespaces with a veth pair, and a client running inside one (half-open tests).

What it does: NetNS.create(t) makes a namespace joined to the root one by a veth pair with a /30
in 10.x (names and subnet unique per run), registered for removal at the test's end; cut_link
and firewall_drop make the namespace side vanish without a FIN or RST; NsClient runs nsclient.py
inside it; tcp_states_to reads `ss` for sockets left towards the dead peer.
What it deliberately does not: touch any address outside the namespaces it made itself.
Invariant: a namespace and its veth are deleted whatever the test did (t.defer before creation).
mqtt-spec: both
"""
import json
import os
import random
import select
import shutil
import subprocess
import time

from mqtt_test import Skip, fail


def run_cmd(argv, check_rc=True, timeout=10):
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise OSError("%s: rc %d: %s" % (" ".join(argv), r.returncode,
                                         r.stderr.decode(errors="replace").strip()))
    return r.stdout.decode(errors="replace")


class NetNS:
    """A network namespace joined to the root one by a veth pair with a /30 in 10.x:
    host side HOST_IP (root namespace), namespace side NS_IP. Names are unique per run.
    Usage: ns = NetNS.create(t)  (skips the test without root / ip netns; cleaned at test end)."""

    def __init__(self):
        tag = "%04x%02x" % (os.getpid() & 0xFFFF, random.randrange(256))
        self.ns = "lv" + tag
        self.host_if = "lv%sh" % tag   # <= 15 characters
        self.ns_if = "lv%sn" % tag
        used = run_cmd(["ip", "-4", "-o", "addr"], check_rc=False)
        for _ in range(50):
            a, b2, c = random.randrange(64, 250), random.randrange(256), random.randrange(64) * 4
            prefix = "10.%d.%d." % (a, b2)
            if prefix + str(c + 1) not in used and prefix + str(c + 2) not in used:
                break
        self.host_ip = prefix + str(c + 1)
        self.ns_ip = prefix + str(c + 2)
        self.made = False

    @classmethod
    def create(cls, t):
        if os.geteuid() != 0 or not shutil.which("ip"):
            raise Skip("needs root / ip netns")
        ns = cls()
        t.defer(ns.destroy)
        try:
            ns._up()
        except (OSError, subprocess.SubprocessError) as e:
            ns.destroy()
            raise Skip("needs root / ip netns (%s)" % e)
        return ns

    def _up(self):
        run_cmd(["ip", "netns", "add", self.ns])
        self.made = True
        run_cmd(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
        run_cmd(["ip", "link", "set", self.ns_if, "netns", self.ns])
        run_cmd(["ip", "addr", "add", self.host_ip + "/30", "dev", self.host_if])
        run_cmd(["ip", "link", "set", self.host_if, "up"])
        self.ip(["addr", "add", self.ns_ip + "/30", "dev", self.ns_if])
        self.ip(["link", "set", self.ns_if, "up"])
        self.ip(["link", "set", "lo", "up"])
        # the veth pair needs a moment to come up (carrier; DAD is not used for IPv4)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = run_cmd(["ip", "-o", "link", "show", self.host_if], check_rc=False)
            if "LOWER_UP" in out and ",UP" in out or "state UP" in out:
                return
            time.sleep(0.02)
        raise OSError("veth %s did not come up" % self.host_if)

    def ip(self, args):
        return run_cmd(["ip", "netns", "exec", self.ns, "ip"] + args)

    def exec_argv(self, argv):
        return ["ip", "netns", "exec", self.ns] + argv

    def cut_link(self):
        """The namespace side goes down: from now on nothing arrives either way."""
        self.ip(["link", "set", self.ns_if, "down"])

    def firewall_drop(self):
        """Drop every packet in and out inside the namespace (iptables, else nft)."""
        if shutil.which("iptables"):
            for chain in ("INPUT", "OUTPUT"):
                try:
                    run_cmd(self.exec_argv(["iptables", "-I", chain, "-j", "DROP"]))
                except OSError as e:
                    raise Skip("iptables unusable in a network namespace here: %s" % e)
        elif shutil.which("nft"):
            rules = ("add table inet lvdrop\n"
                     "add chain inet lvdrop in { type filter hook input priority -300; policy drop; }\n"
                     "add chain inet lvdrop out { type filter hook output priority -300; policy drop; }\n")
            r = subprocess.run(self.exec_argv(["nft", "-f", "-"]), input=rules.encode(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
            if r.returncode:
                raise OSError("nft: %s" % r.stderr.decode(errors="replace"))
        else:
            raise Skip("needs iptables or nft (scripts/deps.sh --test installs iptables)")

    def destroy(self):
        if not self.made:
            return
        self.made = False
        run_cmd(["ip", "link", "del", self.host_if], check_rc=False)
        run_cmd(["ip", "netns", "del", self.ns], check_rc=False)


def tcp_states_to(addr):
    """States of root-namespace TCP sockets whose peer is addr (from `ss -tan`)."""
    out = run_cmd(["ss", "-tanH"], check_rc=False)
    states = []
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 5 and cols[4].rsplit(":", 1)[0] == addr:
            states.append(cols[0])
    return states


class NsClient:
    """nsclient.py running inside a namespace: a raw MQTT client driven by JSON commands on
    stdin, answering with one JSON line per command (with monotonic send times; CLOCK_MONOTONIC
    is shared by all network namespaces)."""

    def __init__(self, t, ns, host, port):
        import live  # (imported here: live imports this module)
        argv = ns.exec_argv([live.PY, os.path.join(live.HERE, "nsclient.py"), host, str(port)])
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        t.defer(self.kill)

    def cmd(self, timeout=5.0, **kw):
        self.proc.stdin.write((json.dumps(kw) + "\n").encode())
        self.proc.stdin.flush()
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            fail("nsclient: no answer to %r within %.1f s" % (kw, timeout))
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.poll() is not None \
                else ""
            fail("nsclient exited on %r: %s" % (kw, err[-2000:]))
        ans = json.loads(line)
        if not ans.get("ok"):
            fail("nsclient: %r -> %r" % (kw, ans))
        return ans

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            try:
                f.close()
            except OSError:
                pass
