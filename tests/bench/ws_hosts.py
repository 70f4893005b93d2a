#!/usr/bin/env python3
"""WebSocket frames per second across hosts, with every frame's order checked
(docs/scaling.md). One Mongrel2 runs tests/e2e/apps/websocket; rows, taken in
turn each round: one host connected directly, one host behind `lubeck relay`,
two hosts behind the relay. CONNS clients each keep WINDOW numbered messages in
flight on /counter, which answers "N DATA PID": N is the connection's own
count (per-connection state, so a frame handled by another process shows as a
wrong N), DATA the message it answers. Per row: frames echoed per second, how
many arrived out of order or wrong, the CPU per echoed frame of the hosts and
of the relay, how many were never answered (each sent
message is known; the clients wait GRACE s for the last ones), and how many
processes answered.
Usage: /usr/bin/python3 tests/bench/ws_hosts.py [BUILD] [SECONDS] [ROUNDS]"""
import os
import selectors
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
SECONDS = float(sys.argv[2]) if len(sys.argv) > 2 else 5
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 3
CONNS, WINDOW, GRACE = 40, 4, 3.0
os.environ["LUBECK_BUILD"] = BUILD
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
sys.path.insert(0, os.path.join(ROOT, "tests", "bench"))
from conftest import LUBECK, Mongrel2  # noqa: E402
from hosts import Hosts, interleaved  # noqa: E402
from ws_bench import Conn, frame  # noqa: E402

APP = os.path.join(ROOT, "tests", "e2e", "apps", "websocket")


class Client:
    """One connection: the messages it sent and the next answer it expects."""

    def __init__(self, port):
        self.conn = Conn(port, "/counter")
        self.sent = 0          # messages sent, numbered 1..sent
        self.answered = 0      # answers taken, in order
        self.wrong = 0         # answers out of order or counted by another process
        self.pids = set()

    def send_one(self):
        self.sent += 1
        self.conn.sock.sendall(frame(b"%d" % self.sent))

    def take(self, payload):
        n, data, pid = payload.split(b" ")
        self.answered += 1
        if int(n) != self.answered or int(data) != self.answered:
            self.wrong += 1
        self.pids.add(pid)


def drive(port):
    """Runs the clients for SECONDS, then lets the last answers arrive."""
    clients = [Client(port) for _ in range(CONNS)]
    sel = selectors.DefaultSelector()
    for c in clients:
        c.conn.sock.setblocking(False)
        sel.register(c.conn.sock, selectors.EVENT_READ, c)
        for _ in range(WINDOW):
            c.send_one()
    start = time.time()
    sending_until, end = start + SECONDS, start + SECONDS + GRACE
    answered_in_time = 0
    while time.time() < end:
        if time.time() >= sending_until and all(c.answered == c.sent for c in clients):
            break
        for key, _ in sel.select(timeout=0.2):
            c = key.data
            try:
                got = c.conn.sock.recv(65536)
            except BlockingIOError:
                continue
            if not got:
                sel.unregister(c.conn.sock)
                continue
            c.conn.buf += got
            for payload in c.conn.messages():
                c.take(payload)
                if time.time() < sending_until:
                    answered_in_time += 1
                    c.send_one()
    for c in clients:
        c.conn.sock.close()
    return {"fps": answered_in_time / SECONDS,
            "wrong": sum(c.wrong for c in clients),
            "lost": sum(c.sent - c.answered for c in clients),
            "sent": sum(c.sent for c in clients),
            "pids": len(set().union(*(c.pids for c in clients)))}


def measure(m2, hosts, relay):
    with Hosts(LUBECK, APP, m2, hosts, "tcp" if relay else None) as row:
        assert m2.wait_ok("/closes", 20)
        time.sleep(1.5)   # every host joined
        host_before, relay_before = row.cpu()
        got = drive(m2.port)
        host_after, relay_after = row.cpu()
    frames = got["fps"] * SECONDS or 1
    got["host_us"] = (host_after - host_before) / frames * 1e6
    got["relay_us"] = (relay_after - relay_before) / frames * 1e6
    return got


def main():
    run = tempfile.mkdtemp(prefix="lubeck-ws-hosts.")
    m2 = Mongrel2(APP, run)
    rows = [("direct", 1, False), ("relay", 1, True), ("relay", 2, True)]
    try:
        results = interleaved(rows, ROUNDS, lambda row: measure(m2, row[1], row[2]))
    finally:
        m2.stop()
    print("WebSocket echo on /counter: %d connections x %d in flight, %g s, %d rounds"
          % (CONNS, WINDOW, SECONDS, ROUNDS))
    print("%-7s %5s %10s %12s %12s %12s %8s %8s %6s" % (
        "path", "hosts", "frames/s", "vs direct", "host us/fr", "relay us/fr", "wrong", "lost", "pids"))
    for row in rows:
        got, direct = results[row], results[("direct", 1, False)]
        print("%-7s %5d %10.0f %12.3f %12.1f %12.1f %8d %8d %6d" % (
            row[0], row[1], statistics.median(g["fps"] for g in got),
            statistics.median(g["fps"] / d["fps"] for g, d in zip(got, direct)),
            statistics.median(g["host_us"] for g in got), statistics.median(g["relay_us"] for g in got),
            sum(g["wrong"] for g in got), sum(g["lost"] for g in got), max(g["pids"] for g in got)))


if __name__ == "__main__":
    main()
