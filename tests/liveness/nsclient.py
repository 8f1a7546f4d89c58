"""A raw MQTT client for the inside of a network namespace, driven by JSON lines on stdin.

What it does: `nsclient.py HOST PORT`; each stdin line is one command, answered by one JSON line
on stdout with "ok" and the monotonic time of the last byte it sent ("t_send"; CLOCK_MONOTONIC is
the same clock in every network namespace, so the test compares it with its own). Commands:
  {"op": "connect", "id": ..., "proto": 4|5, "keepalive": K, "will_topic": ..., "will_payload": ...,
   "props": [[id, value], ...], "rcvbuf": bytes}       CONNECT, wait for CONNACK (rc in answer)
  {"op": "subscribe", "topic": ..., "qos": 0}          SUBSCRIBE, wait for SUBACK
  {"op": "ping"}                                       PINGREQ, wait for PINGRESP
  {"op": "quit"}                                       exit without closing politely
What it deliberately does not: read in the background (after the link is cut nothing arrives
anyway), reconnect, or close the socket before it is killed.
Invariant: every wait is bounded (5 s).
mqtt-spec: both
"""

import json
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "broker"))
import mqtt_test as mt  # noqa: E402


class Conn:
    def __init__(self, host, port, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(5)
        self.s.connect((host, port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.t_send = None

    def send(self, data):
        self.t_send = time.monotonic()  # before: the broker may read it before sendall returns
        self.s.sendall(data)

    def packet(self, want_type):
        """Next packet of want_type (PUBLISH packets before it are skipped)."""
        deadline = time.monotonic() + 5
        while True:
            while len(self.buf) >= 2:
                n, mult, j = 0, 1, 1
                while j < len(self.buf):
                    n += (self.buf[j] & 0x7F) * mult
                    mult *= 128
                    j += 1
                    if not self.buf[j - 1] & 0x80:
                        break
                if j + n > len(self.buf):
                    break
                raw, self.buf = self.buf[:j + n], self.buf[j + n:]
                if raw[0] >> 4 == want_type:
                    return raw
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            d = self.s.recv(65536)
            if not d:
                raise EOFError("closed by broker")
            self.buf += d


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    c = None
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        ans = {"ok": True}
        try:
            if op == "connect":
                c = Conn(host, port, cmd.get("rcvbuf"))
                will = None
                if cmd.get("will_topic"):
                    will = {"topic": cmd["will_topic"], "payload": cmd.get("will_payload", ""),
                            "qos": cmd.get("will_qos", 0)}
                props = [tuple(x) for x in cmd.get("props", [])] or None
                c.send(mt.connect(cmd["id"], proto=cmd.get("proto", 4),
                                  keepalive=cmd.get("keepalive", 60), will=will,
                                  clean=cmd.get("clean", True), properties=props))
                raw = c.packet(mt.CONNACK)
                ans["rc"] = mt.parse(raw, cmd.get("proto", 4)).get("rc")
                ans["local"] = "%s:%d" % c.s.getsockname()
            elif op == "subscribe":
                c.send(mt.subscribe(1, [(cmd["topic"], cmd.get("qos", 0))], proto=cmd.get("proto", 4)))
                c.packet(mt.SUBACK)
            elif op == "ping":
                c.send(mt.pingreq())
                c.packet(mt.PINGRESP)
            elif op == "quit":
                os._exit(0)
            else:
                ans = {"ok": False, "error": "unknown op %r" % op}
            if c is not None:
                ans["t_send"] = c.t_send
        except Exception as e:  # noqa: BLE001 - reported to the test
            ans = {"ok": False, "error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(ans) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
