#!/usr/bin/python3
"""Publish → the last of N long polls, spread over two hosts joined by Redis.

Starts a redis-server on a free loopback port and two `lubeck run` hosts of
tests/e2e/apps/channels with --redis, plays Mongrel2 over ZeroMQ in front of
them (PUSH rotates the polls over both hosts), parks N `GET /poll` requests,
waits until the hosts hold N waiters between them, sends one `GET /say`, and
times the replies: the publisher's own waiters are woken in-process, the other
host's through Redis.

usage: tests/bench/channels_fanout.py [--build build] [--rounds 5] [--workers W] [N]
prints one line per round:
  waiters=N hosts=2 local=L remote=R publish_to_first_ms=A publish_to_last_local_ms=B
  publish_to_last_remote_ms=C publish_to_last_ms=D
and the median of publish_to_last_ms over the rounds.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from longpoll import free_ports, frame, reply_ids   # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
APP = os.path.join(ROOT, "tests", "e2e", "apps", "channels")


def start_redis(port, tmp):
    proc = subprocess.Popen(["redis-server", "--save", "", "--appendonly", "no", "--port", str(port),
                             "--bind", "127.0.0.1", "--dir", tmp],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("redis-server did not start")


class Front:
    """Plays Mongrel2: PUSH to the hosts, SUB for their replies."""

    def __init__(self):
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
        self.next_conn = 0
        self.stash = {}

    def conn(self):
        self.next_conn += 1
        return self.next_conn

    def receive(self, timeout_ms):
        if not self.sub.poll(timeout_ms):
            return False
        ids, data = reply_ids(self.sub.recv())
        for i in ids:
            self.stash.setdefault(i, []).append(data)
        return True

    def call(self, path, query="", timeout=5.0):
        c = self.conn()
        self.push.send(frame(c, "GET", path, query))
        deadline = time.time() + timeout
        while c not in self.stash:
            if not self.receive(max(1, int((deadline - time.time()) * 1000))):
                raise RuntimeError("no reply to %s" % path)
        return json.loads(b"".join(self.stash.pop(c)).split(b"\r\n\r\n", 1)[1])

    def close(self):
        self.push.close(0)
        self.sub.close(0)
        self.ctx.term()


def waiters_per_process(front, processes):
    """/waiters `processes` times in a row: PUSH gives each request to the next host."""
    seen = {}
    for _ in range(processes * 2):
        r = front.call("/waiters")
        seen[r["pid"]] = r["waiters"]
    return seen


def one_round(front, n, processes):
    conns = {}
    for _ in range(n):
        c = front.conn()
        conns[c] = None
        front.push.send(frame(c, "GET", "/poll", "wait=120"))
    deadline = time.time() + 60
    while True:
        seen = waiters_per_process(front, processes)
        if sum(seen.values()) == n and len(seen) == processes:
            break
        if time.time() > deadline:
            raise RuntimeError("only %r parked" % seen)
        time.sleep(0.1)
    say = front.conn()
    started = time.time()
    front.push.send(frame(say, "GET", "/say", "m=wake"))
    pending = set(conns)
    arrived = {}                # conn → (time, pid)
    publisher = None
    while pending or publisher is None:
        if not front.receive(30000):
            raise RuntimeError("%d polls never answered" % len(pending))
        now = time.time()
        for c in list(front.stash):
            body = b"".join(front.stash.pop(c)).split(b"\r\n\r\n", 1)[1]
            if c == say:
                publisher = json.loads(body)["pid"]
            elif c in pending:
                r = json.loads(body)
                if r.get("value") != "wake":
                    raise RuntimeError("poll %d answered %r" % (c, r))
                pending.discard(c)
                arrived[c] = (now, r["pid"])
    local = [t for t, pid in arrived.values() if pid == publisher]
    remote = [t for t, pid in arrived.values() if pid != publisher]
    ms = lambda t: (t - started) * 1000   # noqa: E731
    row = {
        "waiters": n, "local": len(local), "remote": len(remote),
        "publish_to_first_ms": ms(min(t for t, _ in arrived.values())),
        "publish_to_last_local_ms": ms(max(local)) if local else 0,
        "publish_to_last_remote_ms": ms(max(remote)) if remote else 0,
        "publish_to_last_ms": ms(max(t for t, _ in arrived.values())),
    }
    print("waiters=%(waiters)d hosts=2 local=%(local)d remote=%(remote)d "
          "publish_to_first_ms=%(publish_to_first_ms).1f publish_to_last_local_ms=%(publish_to_last_local_ms).1f "
          "publish_to_last_remote_ms=%(publish_to_last_remote_ms).1f publish_to_last_ms=%(publish_to_last_ms).1f"
          % row, flush=True)
    return row["publish_to_last_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=1, help="workers per host")
    ap.add_argument("n", nargs="?", type=int, default=1000)
    args = ap.parse_args()
    tmp = "/tmp/lubeck-fanout-%d" % os.getpid()
    os.makedirs(tmp, exist_ok=True)
    redis_port = free_ports(1)[0]
    redis = start_redis(redis_port, tmp)
    front = Front()
    hosts = []
    try:
        for _ in range(2):
            hosts.append(subprocess.Popen(
                [os.path.join(args.build, "lubeck"), "run", APP, "--send", front.send_spec,
                 "--recv", front.recv_spec, "--workers", str(args.workers),
                 "--redis", "redis://127.0.0.1:%d/0" % redis_port],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True))
        for _ in range(100):        # until both hosts' replies reach our SUB
            try:
                if len(waiters_per_process(front, 2 * args.workers)) == 2 * args.workers:
                    break
            except RuntimeError:
                pass
        time.sleep(0.5)
        lasts = [one_round(front, args.n, 2 * args.workers) for _ in range(args.rounds)]
        print("median publish_to_last_ms=%.1f over %d rounds" % (statistics.median(lasts), len(lasts)))
    finally:
        for h in hosts:
            h.send_signal(signal.SIGTERM)
        for h in hosts:
            try:
                h.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(h.pid, signal.SIGKILL)
                h.wait()
        front.close()
        redis.kill()
        redis.wait()


if __name__ == "__main__":
    main()
