"""apps/embed (docs/embedding.md): a C program that runs lubeck on its own libev loop,
beside a timer of its own, and registers C functions its handlers call. The test
plays Mongrel2 over ZeroMQ (PUSH on the send spec, SUB on the recv spec) and runs
the program under valgrind: replies carry the C function's value and the
program's tick count, and stopping it while requests still wait (a sleep, a
channel, a socket, a thread join) must leave no watcher on the loop (ev_run
returns by itself), no definite leak and no invalid access."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import zmq

from conftest import BUILD, ROOT, Process, free_port

EMBED = os.path.join(BUILD, "lubeck-embed")
APP = os.path.join(ROOT, "apps", "embed")
SENDER = b"e0e0e0e0-embd-4bbb-8ccc-000000000001"
REPLY = re.compile(rb"\A([A-Za-z0-9-]+) (\d+):([0-9 ]*), (.*)\Z", re.S)
VALGRIND = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite", "--error-exitcode=99", "--num-callers=30"]


def request_frame(conn_id, path, method="GET"):
    headers = json.dumps({
        "PATH": path, "host": "embed.test", "x-forwarded-for": "127.0.0.1", "METHOD": method,
        "VERSION": "HTTP/1.1", "URI": path, "PATTERN": "/", "URL_SCHEME": "http",
        "REMOTE_ADDR": "127.0.0.1"}).encode()
    return b"%s %d %s %d:%s,0:," % (SENDER, conn_id, path.encode(), len(headers), headers)


def parse_http(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    return status, headers, body


class Mongrel2Stub:
    """Binds the two sockets a Mongrel2 Handler binds and starts argv with
    --send/--recv pointing at them."""

    def __init__(self, argv, start_timeout=60):
        self.ctx = zmq.Context()
        self.push = self.ctx.socket(zmq.PUSH)
        self.sub = self.ctx.socket(zmq.SUB)
        for s in (self.push, self.sub):
            s.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.send_spec = "tcp://127.0.0.1:%d" % free_port()
        self.recv_spec = "tcp://127.0.0.1:%d" % free_port()
        self.push.bind(self.send_spec)
        self.sub.bind(self.recv_spec)
        self.replies = {}            # conn id → [bodies]
        self.process = Process(argv + ["--send", self.send_spec, "--recv", self.recv_spec])
        self.next_conn = 1
        try:
            self._warm_up(start_timeout)
        except BaseException:
            # A fixture that fails never reaches its teardown: nothing may outlive it.
            os.killpg(self.process.proc.pid, signal.SIGKILL)
            self.process.proc.wait()
            self._close_sockets()
            raise

    def _warm_up(self, timeout):
        """A reply sent before the host's PUB joined our SUB is lost: knock until
        one comes back. Under load (valgrind on a busy machine) the program may
        take most of the allowance to connect at all."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.process.proc.poll() is None, "\n".join(self.process.err)
            conn = self.send("/", timeout=0.25)   # then look at the process again
            if conn is not None and self._read(0.25) and self.replies.get(conn):
                return
        raise AssertionError("never answered within %ss:\n%s" % (timeout, "\n".join(self.process.err)))

    def send(self, path, timeout=20):
        """Sends a request once the program is connected (within timeout
        seconds); its conn id, or None when it never connected."""
        if not self.push.poll(int(timeout * 1000), zmq.POLLOUT):
            return None
        conn = self.next_conn
        self.next_conn += 1
        self.push.send(request_frame(conn, path), zmq.NOBLOCK)
        return conn

    def _read(self, timeout):
        if not self.sub.poll(int(timeout * 1000)):
            return False
        m = REPLY.match(self.sub.recv())
        assert m, "reply frame does not follow docs/protocol.md, Reply frames"
        assert m.group(1) == SENDER
        for conn in m.group(3).split():
            self.replies.setdefault(int(conn), []).append(m.group(4))
        return True

    def get(self, path, timeout=20):
        conn = self.send(path, timeout)
        assert conn is not None, "never connected:\n" + "\n".join(self.process.err)
        deadline = time.time() + timeout
        while not any(self.replies.get(conn, [])):
            left = deadline - time.time()
            assert left > 0, "no reply to %s:\n%s" % (path, "\n".join(self.process.err))
            self._read(min(left, 0.2))
        return parse_http(next(b for b in self.replies[conn] if b))

    def close(self):
        self.process.stop(timeout=60)
        self._close_sockets()

    def _close_sockets(self):
        self.push.close()
        self.sub.close()
        self.ctx.term()


def needs_valgrind():
    if not shutil.which("valgrind"):
        pytest.skip("valgrind is not installed")


@pytest.fixture
def embed_under_valgrind():
    needs_valgrind()
    assert os.access(EMBED, os.X_OK), "build lubeck-embed first"
    stub = Mongrel2Stub(VALGRIND + [EMBED, APP, "--tick", "0.02", "--drain", "0.5"])
    yield stub
    stub.close()


def test_handler_sees_the_c_function_and_the_programs_timer(embed_under_valgrind):
    m2 = embed_under_valgrind
    status, headers, body = m2.get("/")
    assert status == 200 and headers["content-type"] == "application/json"
    first = json.loads(body)
    assert first["greeting"] == "hello, embed, from C"
    time.sleep(0.5)                      # the program's timer keeps ticking beside lubeck
    second = json.loads(m2.get("/")[2])
    assert second["ticks"] > first["ticks"] > 0


def test_free_with_waiting_requests_leaves_nothing_behind(embed_under_valgrind):
    m2 = embed_under_valgrind
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        for path in ("/wait/sleep", "/wait/channel", "/wait/thread",
                     "/wait/socket/%d" % listener.getsockname()[1]):
            m2.send(path)
        m2.get("/")   # requests run in order: the four above are waiting by now
        listener.settimeout(20)
        peer, _ = listener.accept()      # the socket handler did connect
        time.sleep(0.2)
        started = time.time()
        m2.process.signal(15)
        # The program never calls ev_break: it returns from ev_run only when
        # lubeck_free left no watcher started (the sleeping request's timer, the
        # socket's io, the thread join's timer would keep it running for an hour).
        try:
            code = m2.process.proc.wait(timeout=60)
        except Exception:
            raise AssertionError("still running a minute after SIGTERM: lubeck_free left a "
                                 "watcher on the loop\n" + "\n".join(m2.process.err))
        err = "\n".join(m2.process.err)
        peer.close()
    finally:
        listener.close()
    # The channel wait was woken by lubeck_stop (nil, "closing") and answered;
    # the sleep, the socket and the thread join were still waiting.
    assert "3 request(s) abandoned" in err, err
    assert code == 0, err                # 99: valgrind found an error or a definite leak
    assert "ERROR SUMMARY: 0 errors" in err, err
    assert "Invalid read" not in err and "Invalid write" not in err, err
    assert time.time() - started < 30
    while m2._read(0.5):                     # what went out before the program ended
        pass
    first = m2.next_conn - 5                 # /wait/sleep, channel, thread, socket
    abandoned = [first, first + 2, first + 3]
    assert all(m2.replies.get(c) is None for c in abandoned), m2.replies
    channel = parse_http(next(b for b in m2.replies[first + 1] if b))
    assert channel[0] == 200 and channel[2] == b"no message", channel


def test_usage_and_start_errors():
    assert os.access(EMBED, os.X_OK), "build lubeck-embed first"
    p = Process([EMBED, APP])
    assert p.proc.wait(10) == 2
    p.wait_line("--send", stream="err")
    bad = os.path.join(ROOT, "apps", "no-such-app")
    p = Process([EMBED, bad, "--send", "tcp://127.0.0.1:1", "--recv", "tcp://127.0.0.1:2"])
    assert p.proc.wait(10) == 1
    p.wait_line("embed:", stream="err")


RELOAD_THEN_FREE = """
local c = require("lubeck.test").client(%r)
c:start("GET", "/wait/sleep")
c:start("GET", "/wait/thread")
c:run(0.05)
assert(c:reload())                      -- those two stay on the old generation
c:start("GET", "/wait/channel")
c:run(0.05)
assert(c:inflight() == 3)
c:close()                               -- lubeck_free
io.write("closed")
"""


def test_free_releases_requests_of_a_retired_generation(tmp_path):
    """lubeck_free with requests waiting in the generation a reload retired and in the
    current one (through lubeck.test's in-process host, under valgrind)."""
    needs_valgrind()
    env = dict(os.environ,
               LUA_PATH="%s/lua/?.lua;%s/lua/?/init.lua;;" % (ROOT, ROOT),
               LUA_CPATH="%s/lua/?.so;;" % BUILD)
    script = tmp_path / "reload_then_free.lua"
    script.write_text(RELOAD_THEN_FREE % APP)
    p = subprocess.run(VALGRIND + ["luajit", str(script)], env=env, timeout=120,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    err = p.stderr.decode()
    assert p.stdout == b"closed", err
    assert p.returncode == 0, err          # 99: valgrind found an error or a definite leak
    assert "ERROR SUMMARY: 0 errors" in err, err
