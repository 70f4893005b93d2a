#!/usr/bin/python3
"""Parks N long polls in one lubeck host, then publishes once.

Plays Mongrel2 over ZeroMQ (binds PUSH on the send spec and SUB on the recv
spec, as lubeck-bench does), runs `lubeck run apps/chat` against it, sends N
`GET /poll` requests on N connection ids, waits until the app reports N
listeners, publishes one message with `POST /say`, and times the replies.
lubeck-bench cannot do this: it keeps re-sending and counts a request without
a reply within 5 s as an error, and it has no way to send the publish.

usage: tests/bench/longpoll.py [--build build] [--app apps/chat] [--max-inflight M] N [N ...]
prints one line per N:
  parked=N rss_before_kib=A rss_parked_kib=B per_request_bytes=C
  publish_to_first_ms=D publish_to_last_ms=E rss_after_kib=F
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SENDER = "b0ba5eed-0000-4000-8000-00000000bead"


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def frame(conn, method, path, query="", body=b"", ctype=None):
    headers = {"PATH": path, "METHOD": method, "VERSION": "HTTP/1.1",
               "URI": path + ("?" + query if query else ""), "PATTERN": "/",
               "URL_SCHEME": "http", "REMOTE_ADDR": "127.0.0.1", "host": "localhost",
               "x-forwarded-for": "127.0.0.1"}
    if query:
        headers["QUERY"] = query
    if ctype:
        headers["content-type"] = ctype
        headers["content-length"] = str(len(body))
    h = json.dumps(headers).encode()
    return b"%s %d %s %d:%s,%d:%s," % (SENDER.encode(), conn, path.encode(), len(h), h, len(body), body)


def reply_ids(msg):
    """conn ids and body of a reply frame."""
    _, rest = msg.split(b" ", 1)
    n, rest = rest.split(b":", 1)
    n = int(n)
    return [int(i) for i in rest[:n].split()], rest[n + 2:]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Driver:
    def __init__(self, build, app, host_args=()):
        send_port, recv_port = free_ports(2)
        self.send_spec = "tcp://127.0.0.1:%d" % send_port
        self.recv_spec = "tcp://127.0.0.1:%d" % recv_port
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 0)
        self.push.bind(self.send_spec)
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.sub.bind(self.recv_spec)
        self.host = subprocess.Popen(
            [os.path.join(build, "lubeck"), "run", app, "--send", self.send_spec,
             "--recv", self.recv_spec] + list(host_args),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.next_conn = 1
        self.stash = {}            # replies that arrived while waiting for another

    def conn(self):
        self.next_conn += 1
        return self.next_conn

    def call(self, method, path, query="", body=b"", ctype=None, timeout=30):
        """One request; returns its reply body (stashing others that arrive meanwhile)."""
        c = self.conn()
        self.push.send(frame(c, method, path, query, body, ctype))
        deadline = time.time() + timeout
        while c not in self.stash:
            if not self.sub.poll(max(1, int((deadline - time.time()) * 1000))):
                raise RuntimeError("no reply to %s %s" % (method, path))
            ids, data = reply_ids(self.sub.recv())
            for i in ids:
                self.stash.setdefault(i, []).append(data)
        return b"".join(self.stash.pop(c))

    def stats(self, timeout=30):
        body = self.call("GET", "/stats", timeout=timeout)
        return json.loads(body.split(b"\r\n\r\n", 1)[1])

    def wait_ready(self):
        """Until the host's PUB has joined our SUB, replies are dropped: ask again."""
        for _ in range(100):
            try:
                return self.stats(timeout=0.2)
            except RuntimeError:
                pass
        raise RuntimeError("the host never answered")

    def stop(self):
        self.host.send_signal(signal.SIGTERM)
        try:
            self.host.wait(20)
        except subprocess.TimeoutExpired:
            self.host.kill()
        self.push.close(0)
        self.sub.close(0)
        self.ctx.term()


def run(driver, n):
    driver.wait_ready()
    base_listening = driver.stats()["listening"]
    last = driver.stats()["last"]
    time.sleep(0.2)
    before = rss_kib(driver.host.pid)
    conns = []
    for _ in range(n):
        c = driver.conn()
        conns.append(c)
        driver.push.send(frame(c, "GET", "/poll", "since=%d" % last))
    deadline = time.time() + 60
    while driver.stats()["listening"] < base_listening + n:
        if time.time() > deadline:
            raise RuntimeError("only %d parked" % driver.stats()["listening"])
        time.sleep(0.1)
    time.sleep(0.2)
    parked = rss_kib(driver.host.pid)
    pending = set(conns)
    say = driver.conn()
    started = time.time()
    driver.push.send(frame(say, "POST", "/say", body=b"name=bench&text=wake+up",
                           ctype="application/x-www-form-urlencoded"))
    first = None
    while pending:
        if not driver.sub.poll(30000):
            raise RuntimeError("%d polls never answered" % len(pending))
        ids, data = reply_ids(driver.sub.recv())
        for i in ids:
            if i in pending and data.startswith(b"HTTP/1.1 200"):
                pending.discard(i)
                if first is None:
                    first = time.time()
    done = time.time()
    time.sleep(0.2)
    after = rss_kib(driver.host.pid)
    print("parked=%d rss_before_kib=%d rss_parked_kib=%d per_request_bytes=%d "
          "publish_to_first_ms=%.1f publish_to_last_ms=%.1f rss_after_kib=%d" % (
              n, before, parked, (parked - before) * 1024 // n,
              (first - started) * 1000, (done - started) * 1000, after), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--app", default=os.path.join(ROOT, "apps", "chat"))
    ap.add_argument("--max-inflight", type=int,
                    help="passed to lubeck run (default: room for the largest N and then some)")
    ap.add_argument("counts", nargs="+", type=int)
    args = ap.parse_args()
    max_inflight = args.max_inflight or max(args.counts) + 100
    driver = Driver(args.build, args.app, ["--max-inflight", str(max_inflight)])
    try:
        for n in args.counts:
            run(driver, n)
    finally:
        driver.stop()
        err = driver.host.stderr.read().decode(errors="replace").strip()
        if err:
            print("host stderr (last lines):\n" + "\n".join(err.splitlines()[-5:]), file=sys.stderr)


if __name__ == "__main__":
    main()
