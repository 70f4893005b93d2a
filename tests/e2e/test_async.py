"""docs/reference.md, Waiting without blocking, through a real Mongrel2: sleeps and
long polls that park many requests at once, cancellation when the client goes
away or request_timeout passes, streaming, cosockets against a TCP server the
test runs, app:deliver, and the chat app end to end. Apps: tests/e2e/apps/async/
and apps/chat."""
import hashlib
import http.client
import json
import os
import socket
import socketserver
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APPS, ROOT, Server, free_port

ASYNC = os.path.join(APPS, "async")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(ASYNC, tmp_path_factory.mktemp("async-run"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def slow_srv(tmp_path_factory):
    server = Server(os.path.join(ASYNC, "timeout"), tmp_path_factory.mktemp("async-timeout-run"))
    yield server
    server.stop()


# ---- helpers ------------------------------------------------------------------

def jget(server, path, status=200, **kw):
    r = server.get(path, **kw)
    assert r.status == status, (r.status, r.text)
    return json.loads(r.body)


def jpost(server, path, value, **kw):
    r = server.post(path, body=json.dumps(value), headers={"Content-Type": "application/json"}, **kw)
    assert r.status == 200, (r.status, r.text)
    return json.loads(r.body)


def eventually(fn, timeout=5, every=0.05):
    """Calls fn until it returns something true; returns that, or fails with the last value."""
    deadline = time.time() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError("never happened; last: %r" % (value,))
        time.sleep(every)


def wait_stats(server, **want):
    """Waits until /stats has the wanted values; returns it."""
    def check():
        stats = jget(server, "/stats")
        return stats if all(stats[k] == v for k, v in want.items()) else None
    return eventually(check)


def open_request(server, path, timeout=10):
    """A raw connection with one GET sent on it, left open."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.sendall(("GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n" % path).encode())
    return s


def read_response_head(s):
    """Reads up to the end of a response head; returns (head, what came after)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("closed before a head: %r" % data)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest


def read_exactly(s, rest, n):
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError("closed early: %r" % rest)
        rest += chunk
    return rest[:n], rest[n:]


# ---- the TCP server the cosocket routes talk to --------------------------------

PATTERN_UP = b"0123456789abcdef"
PATTERN_DOWN = b"fedcba9876543210"


class LineProtocol(socketserver.StreamRequestHandler):
    """One command a line: ECHO text | BYE text (send it, close) | SILENT (never
    answer, until the client closes) | SINK n + n bytes (read slowly, answer "GOT n md5") | SEND n (write
    n bytes slowly)."""

    def handle(self):
        self.server.accepted += 1
        self.server.open.add(self.connection)
        try:
            self.serve_lines()
        finally:
            self.server.open.discard(self.connection)

    def serve_lines(self):
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd, _, arg = line.rstrip(b"\r\n").partition(b" ")
            if cmd == b"ECHO":
                self.wfile.write(arg + b"\n")
            elif cmd == b"BYE":
                self.wfile.write(arg + b"\n" + self.rfile.read1(1024))
                return
            elif cmd == b"SILENT":                  # until the client hangs up (at most 3 s)
                self.connection.settimeout(3)
                try:
                    while self.rfile.read1(1024):
                        pass
                except OSError:
                    pass
                return
            elif cmd == b"SINK":
                left, digest = int(arg), hashlib.md5()
                while left > 0:
                    data = self.rfile.read(min(left, 256 * 1024))
                    if not data:
                        return
                    digest.update(data)
                    left -= len(data)
                    time.sleep(0.01)
                self.wfile.write(b"GOT %d %s\n" % (int(arg), digest.hexdigest().encode()))
            elif cmd == b"SEND":
                block = PATTERN_DOWN * (64 * 1024)            # 1 MiB
                left = int(arg)
                while left > 0:
                    piece = block[:left]
                    self.wfile.write(piece)
                    left -= len(piece)
                    time.sleep(0.03)
            self.wfile.flush()


class TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def close_all(self):
        """Closes every connection from the server's side (as an idle timeout would)."""
        for conn in list(self.open):
            conn.shutdown(socket.SHUT_RDWR)

    def __init__(self):
        super().__init__(("127.0.0.1", 0), LineProtocol)
        self.accepted = 0
        self.open = set()                           # connections being served
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def tcp():
    server = TCPServer()
    yield server
    server.shutdown()
    server.server_close()


# ---- sleep and long polls --------------------------------------------------------

def test_50_concurrent_sleeps_of_1s_take_about_1s(srv):
    started = time.time()
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda _: jget(srv, "/sleep?s=1"), range(50)))
    took = time.time() - started
    assert results == [{"ok": True}] * 50
    assert 0.9 < took < 3, took


def test_one_publish_wakes_20_long_poll_waiters(srv):
    with ThreadPoolExecutor(20) as pool:
        futures = [pool.submit(jget, srv, "/wait?name=lp&timeout=10") for _ in range(20)]
        wait_stats(srv, channel_waiters=20)
        started = time.time()
        assert jpost(srv, "/publish?name=lp", {"value": {"msg": "hello"}}) == {"woken": 20}
        results = [f.result(timeout=5) for f in futures]
        took = time.time() - started
    assert results == [{"value": {"msg": "hello"}}] * 20
    assert took < 2, took
    wait_stats(srv, channel_waiters=0)


def test_a_long_poll_times_out_with_nil_timeout(srv):
    started = time.time()
    assert jget(srv, "/wait?name=quiet&timeout=0.5") == {"err": "timeout"}
    assert 0.45 < time.time() - started < 3


# ---- cancellation ------------------------------------------------------------------

@pytest.mark.parametrize("on", ["sleep", "channel", "tcp"])
def test_a_client_that_goes_away_cancels_its_request(srv, tcp, on):
    baseline = wait_stats(srv, requests=1, coroutines=1, sockets=0, channel_waiters=0)
    before = jget(srv, "/counters")["closed"]
    s = open_request(srv, "/hang?on=%s&port=%d" % (on, tcp.port))
    want = {"sleep": {}, "channel": {"channel_waiters": 1}, "tcp": {"sockets": 1}}[on]
    wait_stats(srv, requests=2, **want)             # parked in the handler
    s.close()                                       # Mongrel2 sends a disconnect notice
    eventually(lambda: jget(srv, "/counters")["closed"] == before + 1)
    assert jget(srv, "/counters")["woken"][-1] == ["nil", "closed"]
    # No coroutine, timer, socket or subscription outlives its request.
    assert wait_stats(srv, **baseline) == baseline


# ---- request_timeout -------------------------------------------------------------

def test_request_timeout_answers_504_wakes_the_handler_and_runs_on_finish(slow_srv):
    conn = http.client.HTTPConnection("127.0.0.1", slow_srv.port, timeout=10)
    try:
        started = time.time()
        conn.request("GET", "/slow")
        r = conn.getresponse()
        body = r.read()
        took = time.time() - started
        assert r.status == 504
        assert b"504 Gateway Timeout" in body
        assert 0.9 < took < 3, took
        conn.request("GET", "/log")                 # the connection is still good
        assert conn.getresponse().status == 200
    finally:
        conn.close()
    eventually(lambda: len(jget(slow_srv, "/log")) >= 2)
    assert jget(slow_srv, "/log")[:2] == [["woken", "nil", "timeout"], ["on_finish"]]
    wait_stats(slow_srv, requests=1, coroutines=1)


def test_a_stream_that_outlives_request_timeout_is_closed(slow_srv):
    with socket.create_connection(("127.0.0.1", slow_srv.port), timeout=3) as s:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data, closed, deadline = b"", False, time.time() + 3
        while time.time() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                closed = True
                break
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert closed, "connection still open 3 s after a 1 s request_timeout: %r" % data


# ---- streaming ---------------------------------------------------------------------

def test_a_streamed_response_arrives_chunk_by_chunk(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        started = time.time()
        s.sendall(b"GET /stream?n=4&gap=0.4 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        arrivals, data = [], b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            assert chunk, "closed early: %r" % data
            data += chunk
            arrivals.append((time.time() - started, chunk))
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"".join(b"8\r\nchunk %d\n\r\n" % i for i in range(1, 5)) + b"0\r\n\r\n"
    first = next(t for t, c in arrivals if b"chunk 1" in c)
    last = next(t for t, c in arrivals if b"chunk 4" in c)
    assert first < 0.5, arrivals
    assert last - first > 0.8, arrivals


def test_a_stream_of_50_flushes_in_a_row_arrives_whole(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=3) as s:
        s.sendall(b"GET /stream?n=50&gap=0 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        while not data.endswith(b"0\r\n\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"chunk ") == 50, data[:300]


# ---- cosockets ------------------------------------------------------------------------

def test_cosocket_line_bytes_and_all_patterns(srv, tcp):
    r = jget(srv, "/tcp/patterns?port=%d" % tcp.port)
    assert r == {
        "sent": 18, "first5": "hello", "space": " ", "line": "world", "line2": "line two",
        "all": "last words\nand more", "after_err": "closed",
    }


def test_cosocket_receive_times_out(srv, tcp):
    started = time.time()
    r = jget(srv, "/tcp/silent?port=%d&wait_ms=200" % tcp.port)
    assert r["err"] == "timeout"
    assert 0.15 < r["waited"] < 1.5
    assert time.time() - started < 2


def test_cosocket_connection_refused(srv):
    port = free_port()                              # nobody listens there
    assert jget(srv, "/tcp/connect?port=%d" % port) == {"ok": False, "err": "connection refused"}


def test_cosocket_resolves_a_name(srv, tcp):
    r = jget(srv, "/tcp/connect?host=localhost&port=%d" % tcp.port)
    assert r == {"ok": True, "line": "via localhost"}
    r = jget(srv, "/tcp/connect?host=no-such-host.invalid&port=%d" % tcp.port)
    assert r["ok"] is False and "could not be resolved" in r["err"]


def test_cosocket_moves_10_mib_each_way_without_blocking_others(srv, tcp):
    size = 10 * 1024 * 1024
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(jget, srv, "/tcp/big?port=%d&bytes=%d" % (tcp.port, size), timeout=30)
        time.sleep(0.2)                             # the transfer is under way
        for _ in range(3):
            started = time.time()
            assert srv.get("/").body == b"fast"
            assert time.time() - started < 0.5
            assert not big.done(), "the transfer ended before the fast requests: nothing was shown"
        r = big.result(timeout=30)
    up_md5 = hashlib.md5(PATTERN_UP * (size // 16)).hexdigest()
    assert r["ack"] == "GOT %d %s" % (size, up_md5)
    assert r["sent"] == size + len("SINK %d\n" % size)
    assert r["received"] == size and r["intact"] is True


def test_setkeepalive_reuses_pooled_connections(srv, tcp):
    before = tcp.accepted
    results = [jget(srv, "/tcp/pooled?port=%d" % tcp.port) for _ in range(10)]
    assert all(r["line"] == "pooled" and r["kept"] == 1 for r in results)
    assert tcp.accepted - before == 1, "one connection, reused: %d accepted" % (tcp.accepted - before)
    assert [r["reused"] for r in results] == list(range(10))
    wait_stats(srv, sockets=0)                      # a pooled connection is not a request's socket


def test_setkeepalive_pool_drops_connections_the_server_closed(srv, tcp):
    jget(srv, "/tcp/pooled?port=%d" % tcp.port)     # one connection waits in the pool
    eventually(lambda: len(tcp.open) == 1)
    before = tcp.accepted
    tcp.close_all()
    time.sleep(0.1)
    r = jget(srv, "/tcp/pooled?port=%d" % tcp.port)
    assert r["line"] == "pooled" and r["reused"] == 0
    assert tcp.accepted == before + 1


def test_a_socket_the_handler_left_open_closes_when_its_request_ends(srv, tcp):
    tcp.close_all()                                 # nothing waits in the pool
    eventually(lambda: not tcp.open)
    accepted = tcp.accepted
    assert jget(srv, "/tcp/forgotten?port=%d" % tcp.port) == {"line": "left open"}
    assert tcp.accepted == accepted + 1
    wait_stats(srv, sockets=0)
    eventually(lambda: not tcp.open)                # the server saw it close


# ---- app:deliver ------------------------------------------------------------------------

@pytest.mark.parametrize("dead", [0, 128])
def test_deliver_broadcasts_raw_data_to_connections(srv, dead):
    members = []
    try:
        for _ in range(2):
            s = open_request(srv, "/deliver/join", timeout=5)
            head, rest = read_response_head(s)
            assert head.startswith("HTTP/1.1 200")
            body, rest = read_exactly(s, rest, len(b"joined\n"))
            assert body == b"joined\n"
            members.append((s, rest))
        r = srv.post("/deliver/send?dead=%d" % dead, body=b"broadcast!\n")
        # at most 128 ids a frame: 2 + 128 ids take two
        assert json.loads(r.body) == {"frames": 1 if dead == 0 else 2, "targets": 2 + dead}
        for s, rest in members:
            got, _ = read_exactly(s, rest, len(b"broadcast!\n"))
            assert got == b"broadcast!\n"
    finally:
        for s, _ in members:
            s.close()


# ---- the chat app --------------------------------------------------------------------

@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    server = Server(os.path.join(ROOT, "apps", "chat"), tmp_path_factory.mktemp("chat-run"))
    yield server
    server.stop()


def test_chat_page(chat):
    r = chat.get("/")
    assert r.status == 200
    assert r.header("Content-Type") == "text/html; charset=utf-8"
    assert b'<script src="/static/chat.js">' in r.body
    js = chat.get("/static/chat.js")                # served by Mongrel2 itself
    assert js.status == 200
    assert b"/poll?since=" in js.body and b'"/say"' in js.body
    room = chat.get("/static/room.js")             # what both chat pages draw messages with
    assert b'<script src="/static/room.js">' in r.body
    assert room.status == 200 and b"textContent" in room.body


def say(chat, body, content_type="application/x-www-form-urlencoded"):
    return chat.post("/say", body=body, headers={"Content-Type": content_type})


def test_chat_post_wakes_every_poll_and_nothing_is_lost_between_polls(chat):
    since = jget(chat, "/stats")["last"]
    with ThreadPoolExecutor(3) as pool:
        polls = [pool.submit(jget, chat, "/poll?since=%d" % since) for _ in range(3)]
        eventually(lambda: jget(chat, "/stats")["listening"] == 3)
        assert not any(p.done() for p in polls)
        r = say(chat, b"name=ann&text=hi+there")
        assert r.status == 201, r.text
        assert json.loads(r.body) == {"id": since + 1}
        got = [p.result(timeout=5) for p in polls]
    for g in got:
        assert [(m["name"], m["text"], m["id"]) for m in g["messages"]] == [("ann", "hi there", since + 1)]
        assert g["last"] == since + 1
    # Said while nobody was polling: the next poll gets it at once.
    assert say(chat, json.dumps({"name": "bob", "text": "json too"}), "application/json").status == 201
    assert say(chat, b"text=anonymous+words").status == 201
    late = jget(chat, "/poll?since=%d" % (since + 1))
    assert [(m["name"], m["text"]) for m in late["messages"]] == [
        ("bob", "json too"), ("anonymous", "anonymous words")]
    assert late["last"] == since + 3


def test_chat_poll_without_news_answers_204_after_its_wait(chat):
    last = jget(chat, "/stats")["last"]
    started = time.time()
    r = chat.get("/poll?since=%d&wait=0.3" % last)
    assert r.status == 204
    assert 0.25 < time.time() - started < 2
    assert jget(chat, "/stats")["listening"] == 0


def test_chat_refuses_an_empty_message(chat):
    assert say(chat, b"name=x&text=+++").status == 400
    assert say(chat, json.dumps({"text": None}), "application/json").status == 400
