"""The master's reader with --workers 2, through a real Mongrel2: a dead or
stuck worker's clients are answered at once, a worker that stops loses
nothing, and every message of a connection reaches the worker that owns it,
in order (docs/scaling.md)."""
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import APPS, LUBECK, Mongrel2, Process, Server, free_port
from test_websocket import WS

APP = os.path.join(APPS, "dispatch")


class Load:
    """Clients that each send one request per connection, one after another,
    and record every request: when it started, when it ended, and its status
    (or the error the client saw). Bounded by a request count and a time."""

    def __init__(self, port, path, clients=12, timeout=8, max_requests=20000):
        self.port, self.path, self.timeout = port, path, timeout
        self.records = []
        self.lock = threading.Lock()
        self.stop_at = None
        self.max_requests = max_requests
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def _enter(self):
        """Runs first in each client's thread (test_pool's clients enter a namespace)."""

    def _run(self):
        self._enter()
        while self.stop_at is None or time.time() < self.stop_at:
            with self.lock:
                if len(self.records) >= self.max_requests:
                    return
            started = time.time()
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                conn.request("GET", self.path)
                res = conn.getresponse()
                res.read()
                status = res.status
                conn.close()
            except Exception as e:   # a hung or dropped request is what we count
                status = "%s: %s" % (type(e).__name__, e)
            with self.lock:
                self.records.append((started, time.time(), status))

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self, after):
        self.stop_at = time.time() + after
        for t in self.threads:
            t.join(after + self.timeout + 5)
        assert not any(t.is_alive() for t in self.threads), "a client is still waiting"
        return self.records


class Busy:
    """A busy loop on each core: the CPU contention a fault test must survive."""

    def __enter__(self):
        self.procs = [subprocess.Popen(["sh", "-c", "while :; do :; done"]) for _ in range(os.cpu_count() or 2)]
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def worker_pids(server, n=2):
    """The workers' pids, from their answers (ties go to each worker in turn)."""
    pids = set()
    deadline = time.time() + 10
    while len(pids) < n and time.time() < deadline:
        pids.add(int(server.get("/pid").text))
    assert len(pids) == n, pids
    return sorted(pids)


def contention(busy):
    return Busy() if busy else _Nothing()


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "cpu-contention"])
def test_a_killed_workers_clients_are_answered_502_within_2s(tmp_path, busy):
    server = Server(APP, tmp_path / "run", ["--workers", "2"])
    try:
        victim = worker_pids(server)[0]
        with contention(busy):
            load = Load(server.port, "/slow?s=0.3").start()
            time.sleep(1.5)
            killed_at = time.time()
            os.kill(victim, signal.SIGKILL)
            records = load.finish(after=2)
        statuses = [s for _, _, s in records]
        assert all(s in (200, 502) for s in statuses), [s for s in statuses if s not in (200, 502)]
        failed = [(started, ended) for started, ended, s in records if s == 502]
        assert failed, "the killed worker held no request?"
        # What the dead worker held is answered at once, not by Mongrel2's reaper.
        assert all(ended - killed_at < 2 for _, ended in failed), [e - killed_at for _, e in failed]
        assert statuses.count(200) > len(failed)
        server.process.wait_line("restarting it", stream="err")
        assert server.get("/pid").status == 200
    finally:
        server.stop()


@pytest.mark.parametrize("busy", [False, True], ids=["idle", "cpu-contention"])
def test_a_stopped_worker_killed_by_the_watchdog_has_its_clients_answered(tmp_path, busy):
    server = Server(APP, tmp_path / "run", ["--workers", "2", "--watchdog", "2"])
    try:
        victim = worker_pids(server)[0]
        with contention(busy):
            load = Load(server.port, "/slow?s=0.2").start()
            time.sleep(1)
            os.kill(victim, signal.SIGSTOP)
            server.process.wait_line("sent no heartbeat", stream="err", timeout=10)
            killed_at = time.time()
            records = load.finish(after=2)
        statuses = [s for _, _, s in records]
        assert all(s in (200, 502) for s in statuses), [s for s in statuses if s not in (200, 502)]
        failed = [ended for _, ended, s in records if s == 502]
        assert failed
        assert all(ended - killed_at < 2 for ended in failed), [e - killed_at for e in failed]
        # Meanwhile the other worker kept answering: the stuck one looked busy.
        assert statuses.count(200) > 20
    finally:
        server.stop()


def test_a_rolling_restart_under_load_loses_nothing(tmp_path):
    server = Server(APP, tmp_path / "run", ["--workers", "2", "--drain", "5"])
    try:
        first = worker_pids(server)
        load = Load(server.port, "/slow?s=0.05").start()
        for pid in first:
            time.sleep(1)
            os.kill(pid, signal.SIGTERM)
            deadline = time.time() + 10
            while time.time() < deadline:   # until its successor answers
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            time.sleep(0.5)
        records = load.finish(after=1)
        statuses = [s for _, _, s in records]
        assert len(statuses) > 100
        assert all(s == 200 for s in statuses), [s for s in statuses if s != 200][:10]
        assert set(worker_pids(server)).isdisjoint(first)
    finally:
        server.stop()


def test_websocket_frames_reach_their_worker_in_order(tmp_path):
    server = Server(APP, tmp_path / "run", ["--workers", "2"])
    try:
        socks = [WS(server.port, "/order") for _ in range(4)]
        for ws in socks:   # a burst: every frame in one write
            ws.sock.sendall(b"".join(ws_frame(str(i)) for i in range(1, 301)))
        for ws in socks:
            ws.send_text("end")
        answers = [ws.recv_text().split() for ws in socks]
        assert [(a[0], a[1]) for a in answers] == [("300", "0")] * 4
        assert len({a[2] for a in answers}) == 2   # the sessions are spread over both
        for ws in socks:
            ws.close()
    finally:
        server.stop()


def ws_frame(text):
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def test_a_closed_long_poll_is_learned_by_its_worker_within_100ms(tmp_path):
    server = Server(APP, tmp_path / "run", ["--workers", "2"])
    try:
        delays = []
        for i in range(6):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /park?t=p%d HTTP/1.1\r\nHost: localhost\r\n\r\n" % i)
            time.sleep(0.3)   # parked now
            closed_at = time.time()
            s.close()
            deadline = time.time() + 2
            at = None
            while at is None and time.time() < deadline:
                at = json.loads(server.get("/learned?t=p%d" % i).text).get("at")
                time.sleep(0.02)
            assert at is not None, "poll %d: its worker never learned of the close" % i
            delays.append(at - closed_at)
        # (Mongrel2's own notice of the close is part of this time.)
        assert all(d < 0.5 for d in delays), delays
        assert sorted(delays)[3] < 0.1, delays
    finally:
        server.stop()


def test_a_restarted_mongrel2_makes_the_workers_drop_what_they_held_from_it(tmp_path):
    # Mongrel2 numbers connections from the same counter after a restart: a
    # request held from its earlier life must never be answered into the new one.
    m2 = Mongrel2(APP, tmp_path / "m2")
    host = Process([LUBECK, "run", APP, "--send", m2.send_spec, "--recv", m2.recv_spec,
                    "--workers", "2"])
    try:
        assert m2.wait_ok("/pid")
        s = socket.create_connection(("127.0.0.1", m2.port), timeout=5)
        s.sendall(b"GET /park?t=old HTTP/1.1\r\nHost: localhost\r\n\r\n")
        time.sleep(0.3)
        m2.proc.kill()   # no disconnect notice from this one
        m2.proc.wait()
        s.close()
        m2.start()
        assert m2.wait_ok("/pid")
        host.wait_line("reconnected", stream="err", timeout=5)
        deadline, at = time.time() + 3, None
        while at is None and time.time() < deadline:
            at = json.loads(m2.get("/learned?t=old").text).get("at")
        assert at is not None, "the old life's parked request was never dropped"
    finally:
        host.stop()
        m2.stop()


@pytest.mark.parametrize("argv,says", [
    (["relay", "--send", "tcp://127.0.0.1:1"], "needs --send and --recv in pairs"),
    (["relay", "--send", "tcp://127.0.0.1:1", "--recv", "tcp://127.0.0.1:2"], "needs --listen"),
    (["relay", "--bogus", "1"], "unknown option --bogus"),
    (["run", APP, "--relay", "tcp://127.0.0.1:1", "--send", "tcp://127.0.0.1:2", "--recv", "tcp://127.0.0.1:3"],
     "--relay or --send/--recv, not both"),
    (["run", APP, "--relay", "http://x"], "bad --relay"),
    (["serve", APP, "--relay", "tcp://127.0.0.1:1"], "serve takes no --relay option"),
])
def test_relay_usage_errors_name_the_problem(argv, says):
    out = subprocess.run([LUBECK] + argv, capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    assert says in out.stderr


def test_a_relay_that_cannot_listen_says_so(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = s.getsockname()[1]
        out = subprocess.run([LUBECK, "relay", "--send", "tcp://127.0.0.1:1", "--recv", "tcp://127.0.0.1:2",
                              "--listen", "tcp://127.0.0.1:%d" % taken], capture_output=True, text=True,
                             timeout=10)
    assert out.returncode == 1
    assert "cannot listen on tcp://127.0.0.1:%d" % taken in out.stderr


def relay_known(relay, before):
    """The connections the relay knows, from the line `kill -USR1` prints."""
    relay.signal(signal.SIGUSR1)
    line = relay.wait_for(lambda out, err: next((l for l in err[before:] if "connection(s) known" in l), None),
                          what="the relay's report")
    return int(line.split(" message(s) in flight, ")[1].split()[0])


def test_the_relay_forgets_connections_its_host_closed(tmp_path):
    """Mongrel2 sends no disconnect notice for a connection the handler closed
    (a "Connection: close" request, a 404): the host's done report says it
    closed it, and the relay forgets it, instead of keeping an entry for every
    such connection for as long as it runs. Connections left open stay known
    (their credits must reach the host) until their clients close them."""
    m2 = Mongrel2(APP, tmp_path / "m2")
    listen = "tcp://127.0.0.1:%d" % free_port()
    relay = Process([LUBECK, "relay", "--send", m2.send_spec, "--recv", m2.recv_spec, "--listen", listen])
    host = Process([LUBECK, "run", APP, "--relay", listen])
    kept = []
    try:
        assert m2.wait_ok("/pid")
        answered = 0
        for i in range(200):
            c = http.client.HTTPConnection("127.0.0.1", m2.port, timeout=5)
            c.request("GET", "/pid" if i % 2 else "/missing", headers={"Connection": "close"})
            r = c.getresponse()
            r.read()
            assert r.status == (200 if i % 2 else 404)
            answered += 1
            c.close()
        assert answered == 200
        for _ in range(20):
            c = http.client.HTTPConnection("127.0.0.1", m2.port, timeout=5)
            c.request("GET", "/pid")
            r = c.getresponse()
            r.read()
            assert r.status == 200
            kept.append(c)
        counts = []
        deadline = time.time() + 5
        while time.time() < deadline and (not counts or counts[-1] != 20):
            counts.append(relay_known(relay, len(relay.err)))
            time.sleep(0.2)
        assert counts[-1] == 20, counts
        for c in kept:
            c.close()
        deadline = time.time() + 5
        while time.time() < deadline and counts[-1] != 0:   # now by their disconnect notices
            counts.append(relay_known(relay, len(relay.err)))
            time.sleep(0.2)
        assert counts[-1] == 0, counts
    finally:
        host.stop()
        relay.stop()
        m2.stop()


def test_what_a_stopping_worker_cannot_finish_in_its_drain_time_is_answered_503(tmp_path):
    server = Server(APP, tmp_path / "run", ["--workers", "2", "--drain", "1"])
    try:
        out = {}

        def hold():
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("GET", "/hold?s=8")
            res = conn.getresponse()
            out["status"], out["retry"], out["at"] = res.status, res.getheader("Retry-After"), time.time()
            res.read()

        t = threading.Thread(target=hold)
        t.start()
        deadline = time.time() + 5
        while not server.get("/holder").text and time.time() < deadline:
            time.sleep(0.05)
        holder = int(server.get("/holder").text)
        stopped_at = time.time()
        os.kill(holder, signal.SIGTERM)   # it leaves; its drain (1 s) ends before the request
        t.join(10)
        assert out["status"] == 503 and out["retry"] == "1"
        assert 0.8 < out["at"] - stopped_at < 3   # at the end of the drain, not at Mongrel2's reaper
    finally:
        server.stop()


def test_one_reader_serves_two_mongrel2_fronts(tmp_path):
    fronts = [Mongrel2(APP, tmp_path / ("m2-%d" % i)) for i in range(2)]
    argv = [LUBECK, "run", APP, "--workers", "2"]
    for m2 in fronts:
        argv += ["--send", m2.send_spec, "--recv", m2.recv_spec]
    host = Process(argv)
    try:
        for m2 in fronts:
            assert m2.wait_ok("/pid")
            assert len({m2.get("/pid").text for _ in range(6)}) == 2
            ws = WS(m2.port, "/order")
            ws.sock.sendall(b"".join(ws_frame(str(i)) for i in range(1, 201)))
            ws.send_text("end")
            assert ws.recv_text().split()[:2] == ["200", "0"]
            ws.close()
    finally:
        host.stop()
        for m2 in fronts:
            m2.stop()
