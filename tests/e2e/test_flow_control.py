"""Back-pressure through a real Mongrel2 run with download.flow_control=1
(docs/flow-control.md): bursts never make Mongrel2 drop a client that reads,
also when a busy loop holds both cores; a slow reader slows only its own
connection; a client that reads nothing is closed by lubeck after the send
timeout; streamed and large responses go out whole, also behind a relay
(whose credits notices may wait a millisecond). Every plain GET sent
alongside is counted: each one must be answered."""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import APPS, LUBECK, Mongrel2, Process, Server, free_port
from test_websocket import WS, WSClosed

APP = os.path.join(APPS, "websocket")
SEND_TIMEOUT = 2


@pytest.fixture
def server(tmp_path):
    old = os.environ.get("LUBECK_SEND_TIMEOUT")
    os.environ["LUBECK_SEND_TIMEOUT"] = str(SEND_TIMEOUT)
    try:
        s = Server(APP, tmp_path / "run")
    finally:
        if old is None:
            del os.environ["LUBECK_SEND_TIMEOUT"]
        else:
            os.environ["LUBECK_SEND_TIMEOUT"] = old
    yield s
    s.stop()


@pytest.fixture
def cpu_hog():
    """A busy loop on each core for as long as the test runs."""
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    yield
    for p in hogs:
        p.kill()
        p.wait()


class GetCounter:
    """Plain GETs, each on a new connection, one after another until stopped:
    knows every request it sent and whether it was answered (within 10 s)."""

    def __init__(self, port):
        self.port = port
        self.sent = self.answered = 0
        self.failures = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set() and self.sent < 5000:
            self.sent += 1
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                    s.sendall(b"GET /closes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                    data = b""
                    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                        b = s.recv(65536)
                        if not b:
                            break
                        data += b
                if data.startswith(b"HTTP/1.1 200"):
                    self.answered += 1
                else:
                    self.failures.append(data[:60])
            except OSError as e:
                self.failures.append(repr(e))

    def stop(self):
        self._stop.set()
        self._thread.join(30)
        return self.sent, self.answered, self.failures


def flood(ws, count, size):
    """Asks for count frames of size bytes; returns how many whole ones came
    before "done" (raises WSClosed when the connection was dropped)."""
    ws.send_text("%d %d" % (count, size))
    got = 0
    while True:
        text = ws.recv_text()
        if text.startswith("done"):
            return got
        assert len(text) == size
        got += 1


def error_log(server):
    path = os.path.join(server.run_dir, "logs", "error.log")
    if not os.path.exists(path):
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def test_bursts_under_a_cpu_hog_drop_no_client_and_every_get_is_answered(server, cpu_hog):
    gets = GetCounter(server.port)
    rounds, dropped, complete = 30, 0, 0
    try:
        for _ in range(rounds):
            a, b = WS(server.port, "/flood", timeout=20), WS(server.port, "/flood", timeout=20)
            results = {}

            def run(name, ws):
                try:
                    results[name] = flood(ws, 500, 100)
                except (WSClosed, OSError) as e:
                    results[name] = e

            threads = [threading.Thread(target=run, args=(n, w)) for n, w in (("a", a), ("b", b))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            for r in results.values():
                if r == 500:
                    complete += 1
                else:
                    dropped += 1
            a.close()
            b.close()
    finally:
        sent, answered, failures = gets.stop()
    print("bursts: %d of %d connections complete, %d dropped; GETs: %d sent, %d answered"
          % (complete, 2 * rounds, dropped, sent, answered))
    assert (complete, dropped) == (2 * rounds, 0)
    assert sent > 0 and answered == sent, failures[:5]
    assert "Error sending raw message" not in error_log(server)


def test_a_slow_reader_slows_only_its_own_connection(server):
    gets = GetCounter(server.port)
    slow, fast = WS(server.port, "/flood", timeout=20), WS(server.port, "/flood", timeout=20)
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    done = {}

    def read_slowly():
        slow.send_text("%d %d" % (64, 32768))
        n = 0
        while True:
            time.sleep(0.03)          # about 1 MB/s
            text = slow.recv_text()
            if text.startswith("done"):
                break
            n += 1
        done["slow"] = (n, time.time())

    t = threading.Thread(target=read_slowly)
    t.start()
    time.sleep(0.2)
    assert flood(fast, 64, 32768) == 64
    done["fast"] = time.time()
    t.join(60)
    sent, answered, failures = gets.stop()
    assert done["slow"][0] == 64                       # all of it, not dropped
    assert done["fast"] < done["slow"][1]              # the fast one did not wait for it
    assert answered == sent, failures[:5]
    assert "Error sending raw message" not in error_log(server)


def test_a_client_that_reads_nothing_is_closed_after_the_send_timeout(server):
    stuck = WS(server.port, "/flood", timeout=30)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    stuck.send_text("%d %d" % (400, 65536))          # 25 MB: more than the socket buffers hold
    started = time.time()
    deadline = started + 30
    results = []
    while time.time() < deadline:
        results = json.loads(server.get("/flood-results").text)["results"]
        if results:
            break
        time.sleep(0.2)
    assert results and results[-1].startswith("stopped at ") and results[-1].endswith(": closed"), results
    closes = json.loads(server.get("/closes").text)
    assert closes["last"]["code"] == 1006 and closes["last"]["path"] == "/flood"
    assert closes["open"] == 0
    # The client finds the end of the stream after what was already buffered.
    stuck.sock.settimeout(10)
    with pytest.raises(WSClosed):
        while True:
            stuck._fill()
            stuck.buf = b""
    assert "Error sending raw message" not in error_log(server)


def test_streams_and_large_responses_arrive_whole(server):
    r = server.get("/big?bytes=1000000")
    assert r.status == 200 and r.body == b"b" * 1000000
    r = server.get("/stream?chunks=300&size=5000")
    assert r.status == 200 and r.body == b"s" * 1500000
    assert "Error sending raw message" not in error_log(server)


def test_a_stream_to_a_client_that_reads_nothing_ends_with_closed(server):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    s.sendall(b"GET /stream?chunks=400&size=65536 HTTP/1.1\r\nHost: localhost\r\n\r\n")
    deadline = time.time() + 30
    results = []
    while time.time() < deadline and "stream: closed" not in results:
        results = json.loads(server.get("/flood-results").text)["results"]
        time.sleep(0.2)
    assert "stream: closed" in results
    s.close()


def test_two_hosts_on_one_front_keep_a_keep_alive_connection_going_past_the_window(tmp_path):
    """Two `lubeck run` hosts straight on one Mongrel2 with flow control: the
    credits notice after each reply goes to whichever host is next, so a host
    hardly ever hears about its own replies. 2,000 requests of about 1 KiB
    each on one keep-alive connection (20 windows' worth) are all answered."""
    m2 = Mongrel2(APP, tmp_path / "m2")
    hosts = []
    try:
        hosts = [Process([LUBECK, "run", APP, "--send", m2.send_spec, "--recv", m2.recv_spec])
                 for _ in range(2)]
        assert m2.wait_ok("/big?bytes=1")
        c = http.client.HTTPConnection("127.0.0.1", m2.port, timeout=5)
        answered = 0
        deadline = time.time() + 60
        for i in range(2000):
            if time.time() > deadline:
                break
            c.request("GET", "/big?bytes=1000")
            r = c.getresponse()
            body = r.read()
            assert r.status == 200 and len(body) == 1000, (i, r.status, len(body))
            answered += 1
        c.close()
        assert answered == 2000
    finally:
        for h in hosts:
            h.stop()
        m2.stop()


def test_behind_a_relay_every_credits_notice_reaches_the_host_that_wrote(tmp_path):
    """Behind `lubeck relay` a credits notice may wait at the relay up to 1 ms
    for the next message to its host (docs/scaling.md), and still arrives: a
    1 MB response (ten windows) and a 1.5 MB stream, where nothing else goes
    to the host while it waits, come whole instead of being cut off by the
    2 s send timeout; 500 replies of 1 KiB on one keep-alive connection (five
    windows' worth) are all answered."""
    m2 = Mongrel2(APP, tmp_path / "m2")
    listen = "tcp://127.0.0.1:%d" % free_port()
    procs = []
    try:
        procs.append(Process([LUBECK, "relay", "--send", m2.send_spec, "--recv", m2.recv_spec,
                              "--listen", listen]))
        procs.append(Process([LUBECK, "run", APP, "--relay", listen],
                             env=dict(os.environ, LUBECK_SEND_TIMEOUT=str(SEND_TIMEOUT))))
        assert m2.wait_ok("/big?bytes=1")
        r = m2.get("/big?bytes=1000000", timeout=10)
        assert r.status == 200 and r.body == b"b" * 1000000
        r = m2.get("/stream?chunks=300&size=5000", timeout=10)
        assert r.status == 200 and r.body == b"s" * 1500000
        c = http.client.HTTPConnection("127.0.0.1", m2.port, timeout=5)
        answered = 0
        for i in range(500):
            c.request("GET", "/big?bytes=1000")
            r = c.getresponse()
            body = r.read()
            assert r.status == 200 and len(body) == 1000, (i, r.status, len(body))
            answered += 1
        c.close()
        assert answered == 500
    finally:
        for p in reversed(procs):   # the host leaves while its relay is there
            p.stop()
        m2.stop()
