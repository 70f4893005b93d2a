#!/usr/bin/python3
"""WebSocket throughput through a real Mongrel2 (report only, no pass/fail).

Starts `lubeck serve tests/e2e/apps/websocket` on a free port (or uses --port of
a running one) and measures, with a standard-library client:
  echo_1      messages per second echoed over one connection (one in flight)
  echo_100    messages per second echoed over 100 connections at once
              (one in flight on each)
  burst_2     frames per second the server sends when 2 connections each ask
              for a burst of --burst frames (/burst: one send per frame in a
              loop), both read as fast as the client can; burst_cut_off counts
              the connections that ended before their last frame (3 rounds)
  fanout_N    time from one publish (POST /publish) until all N sockets of
              the room (/room, each listening on one channel) have the message

With --mix S it runs the fault mix instead, for S seconds, optionally with a
busy loop on every core (--hog): 4 threads of plain GETs (each on a new
connection, each counted as answered or not), 2 threads asking for bursts of
100 frames, and one reader that takes 4 KiB frames slowly. It prints the
counts and how often Mongrel2's log says it dropped a client.

usage: tests/bench/ws_bench.py [--build build] [--seconds 5] [--burst 20000] [--fanout 1000] [--workers 1]
       tests/bench/ws_bench.py --mix 90 [--hog] [--build build] [--workers 1]
prints one line:
  echo_1_msgs_per_s=… echo_100_msgs_per_s=… burst_2_frames_per_s=… fanout_1000_first_ms=… fanout_1000_last_ms=…
"""
import argparse
import base64
import http.client
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame(payload, opcode=1):
    """A masked client frame (the mask is fixed: this measures the server)."""
    mask = b"\x01\x02\x03\x04"
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Conn:
    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                          b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key +
                          b"\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self._recv()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError("handshake failed: %r" % head[:80])

    def _recv(self):
        b = self.sock.recv(65536)
        if not b:
            raise RuntimeError("connection closed")
        return b

    def messages(self):
        """Whole frames in the buffer so far, as payloads."""
        out = []
        while len(self.buf) >= 2:
            n = self.buf[1] & 0x7F
            h = 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, h = struct.unpack("!H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, h = struct.unpack("!Q", self.buf[2:10])[0], 10
            if len(self.buf) < h + n:
                break
            out.append(self.buf[h:h + n])
            self.buf = self.buf[h + n:]
        return out

    def recv_message(self):
        while True:
            got = self.messages()
            if got:
                assert len(got) == 1
                return got[0]
            self.buf += self._recv()


def echo_one(port, seconds):
    c = Conn(port, "/echo")
    msg = frame(b"hello")
    n, end = 0, time.time() + seconds
    start = time.time()
    while time.time() < end:
        c.sock.sendall(msg)
        c.recv_message()
        n += 1
    c.sock.close()
    return n / (time.time() - start)


def echo_many(port, seconds, count):
    conns = [Conn(port, "/echo") for _ in range(count)]
    sel = selectors.DefaultSelector()
    msg = frame(b"hello")
    for c in conns:
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_READ, c)
        c.sock.sendall(msg)
    n, start = 0, time.time()
    end = start + seconds
    while time.time() < end:
        for key, _ in sel.select(timeout=1):
            c = key.data
            c.buf += c.sock.recv(65536)
            for _ in c.messages():
                n += 1
                c.sock.sendall(msg)
    elapsed = time.time() - start
    for c in conns:
        c.sock.close()
    return n / elapsed


def burst(port, frames, conns=2, rounds=3):
    """Median over rounds of frames received per second, all connections
    together, and how many connections were cut off before their last frame."""
    rates, dropped = [], 0
    for _ in range(rounds):
        cs = [Conn(port, "/burst") for _ in range(conns)]
        sel = selectors.DefaultSelector()
        start = time.time()
        for c in cs:
            c.sock.sendall(frame(str(frames).encode()))
            c.sock.setblocking(False)
            sel.register(c.sock, selectors.EVENT_READ, c)
        got, open_ = 0, conns
        deadline = start + 120
        while open_ and time.time() < deadline:
            for key, _ in sel.select(timeout=1):
                c = key.data
                data = c.sock.recv(262144)
                if not data:                      # cut off: Mongrel2 dropped it
                    dropped += 1
                    open_ -= 1
                    sel.unregister(c.sock)
                    continue
                c.buf += data
                for m in c.messages():
                    if m == b"done":
                        open_ -= 1
                        sel.unregister(c.sock)
                    else:
                        got += 1
        rates.append(got / (time.time() - start))
        for c in cs:
            c.sock.close()
    rates.sort()
    return rates[len(rates) // 2], dropped


def mix(port, seconds, run_dir):
    """The fault mix (see the top): counts, and Mongrel2's drops from its log."""
    end = time.time() + seconds
    counts = dict.fromkeys(("gets", "answered", "unanswered", "bursts", "bursts_cut",
                            "slow_frames", "slow_cut"), 0)
    lock = threading.Lock()

    def count(key, n=1):
        with lock:
            counts[key] += n

    def gets():
        while time.time() < end:
            count("gets")
            data = b""
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET /closes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    while not data.rstrip().endswith(b"}"):
                        b = s.recv(65536)
                        if not b:
                            break
                        data += b
            except OSError:
                pass
            ok = data.startswith(b"HTTP/1.1 200") and data.rstrip().endswith(b"}")
            count("answered" if ok else "unanswered")

    def take(c, delay=0.0):
        """Frames until "done ..."; None when the connection was cut off."""
        n = 0
        while True:
            if delay:
                time.sleep(delay)
            got = c.messages()
            for m in got:
                if m.startswith(b"done"):
                    return n
                n += 1
            if not got:
                try:
                    b = c.sock.recv(65536 if not delay else 4096)
                except OSError:
                    return None
                if not b:
                    return None
                c.buf += b

    def bursts():
        while time.time() < end:
            try:
                c = Conn(port, "/flood")
                c.sock.sendall(frame(b"100 100"))
                count("bursts" if take(c) == 100 else "bursts_cut")
                c.sock.close()
            except (OSError, RuntimeError):
                count("bursts_cut")

    def slow():
        while time.time() < end:
            try:
                c = Conn(port, "/flood")
                c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
                c.sock.sendall(frame(b"200 4096"))
                n = take(c, delay=0.002)
                if n == 200:
                    count("slow_frames", n)
                else:
                    count("slow_cut")
                c.sock.close()
            except (OSError, RuntimeError):
                count("slow_cut")

    threads = [threading.Thread(target=f) for f in [gets] * 4 + [bursts] * 2 + [slow]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = ""
    if run_dir and os.path.exists(os.path.join(run_dir, "logs", "error.log")):
        with open(os.path.join(run_dir, "logs", "error.log"), errors="replace") as f:
            log = f.read()
    counts["m2_dropped_clients"] = log.count("Error sending raw message")
    counts["m2_unmasked_ws"] = log.count("unmasked")
    return counts


def fanout(port, count, rounds=5):
    conns = [Conn(port, "/room") for _ in range(count)]
    for c in conns:
        assert c.recv_message() == b"joined"
        c.sock.setblocking(False)
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ, c)
    firsts, lasts = [], []
    http_conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for r in range(rounds):
        time.sleep(0.3)   # every listener waits on the channel again
        body = ("round %d" % r).encode()
        got = 0
        start = time.time()
        http_conn.request("POST", "/publish", body=body)
        http_conn.getresponse().read()
        first = None
        deadline = start + 30
        while got < count and time.time() < deadline:
            for key, _ in sel.select(timeout=1):
                c = key.data
                c.buf += c.sock.recv(65536)
                for m in c.messages():
                    if m == body:
                        got += 1
                        if first is None:
                            first = time.time() - start
        if got < count:
            raise RuntimeError("round %d: %d of %d sockets got the message" % (r, got, count))
        firsts.append(first * 1000)
        lasts.append((time.time() - start) * 1000)
    http_conn.close()
    for c in conns:
        c.sock.close()
    firsts.sort()
    lasts.sort()
    return firsts[len(firsts) // 2], lasts[len(lasts) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--port", type=int, help="a server already running the websocket test app")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--fanout", type=int, default=1000)
    ap.add_argument("--burst", type=int, default=20000)
    ap.add_argument("--mix", type=float, help="run the fault mix for this many seconds instead")
    ap.add_argument("--hog", action="store_true", help="with --mix: a busy loop on every core")
    ap.add_argument("--workers", default="1")
    args = ap.parse_args()
    proc = None
    run_dir = None
    port = args.port
    if not port:
        port = free_port()
        run_dir = tempfile.mkdtemp(prefix="ws_bench.")
        proc = subprocess.Popen([os.path.join(args.build, "lubeck"), "serve",
                                 os.path.join(ROOT, "tests", "e2e", "apps", "websocket"),
                                 "--port", str(port), "--run-dir", run_dir, "--workers", args.workers],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        while True:
            line = proc.stdout.readline().decode()
            if not line:
                raise RuntimeError("lubeck serve exited")
            if "serving" in line:
                break
        # keep reading the access log so the server never blocks on a full pipe
        threading.Thread(target=lambda: [None for _ in iter(proc.stdout.readline, b"")],
                         daemon=True).start()
    hogs = []
    try:
        if args.mix:
            if args.hog:
                hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                        for _ in range(os.cpu_count() or 2)]
            counts = mix(port, args.mix, run_dir)
            print("workers=%s mix_seconds=%g hog=%d " % (args.workers, args.mix, args.hog) +
                  " ".join("%s=%d" % kv for kv in counts.items()))
            return 0
        one = echo_one(port, args.seconds)
        many = echo_many(port, args.seconds, 100)
        frames, cut = burst(port, args.burst)
        first, last = fanout(port, args.fanout)
        print("workers=%s echo_1_msgs_per_s=%.0f echo_100_msgs_per_s=%.0f burst_2_frames_per_s=%.0f burst_cut_off=%d "
              "fanout_%d_first_ms=%.1f fanout_%d_last_ms=%.1f"
              % (args.workers, one, many, frames, cut, args.fanout, first, args.fanout, last))
    finally:
        for h in hogs:
            h.kill()
            h.wait()
        if proc:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)


if __name__ == "__main__":
    sys.exit(main())
