#!/usr/bin/env python3
"""bench/recovery.py - start-up time of a broker with a saved state (driven by bench/run.sh).

    recovery.py PORT TIMEOUT_S BROKER_BINARY ARGS...

Starts the broker, then tries a TCP connect every 2 ms; once the listener is open it sends a
v3.1.1 CONNECT (clean session) and waits for CONNACK. Prints the seconds from exec to the
listener accepting (listen_s) and to the first CONNACK (connack_s), then stops the broker with
SIGTERM (SIGKILL after 10 s). Bounded by TIMEOUT_S. Measures nothing else.
"""
import socket
import subprocess
import sys
import time


def connack(port, deadline):
    s = socket.create_connection(("127.0.0.1", port), timeout=max(0.1, deadline - time.monotonic()))
    try:
        cid = b"recovery-probe"
        body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
        s.sendall(bytes([0x10, len(body)]) + body)
        got = b""
        while len(got) < 4:
            chunk = s.recv(4 - len(got))
            if not chunk:
                return False
            got += chunk
        return got[0] == 0x20 and got[3] == 0
    finally:
        s.close()


def main():
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    port, timeout = int(sys.argv[1]), float(sys.argv[2])
    t0 = time.monotonic()
    p = subprocess.Popen(sys.argv[3:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + timeout
    listen_s = connack_s = None
    try:
        while time.monotonic() < deadline and p.poll() is None:
            try:
                probe = socket.create_connection(("127.0.0.1", port), timeout=1)
                probe.close()
            except OSError:
                time.sleep(0.002)
                continue
            if listen_s is None:
                listen_s = time.monotonic() - t0
            try:
                if connack(port, deadline):
                    connack_s = time.monotonic() - t0
                    break
            except OSError:
                time.sleep(0.002)
    finally:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    print("listen_s=%s" % ("%.3f" % listen_s if listen_s is not None else "-"))
    print("connack_s=%s" % ("%.3f" % connack_s if connack_s is not None else "-"))
    return 0 if connack_s is not None else 1


if __name__ == "__main__":
    sys.exit(main())
