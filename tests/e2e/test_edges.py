"""A host at its edges, through a real Mongrel2 and hosts connected straight to
it (`lubeck run`): a Mongrel2 that restarts while requests and WebSocket
sessions are in flight, a stop under load, Ctrl-C of `lubeck serve` with a
parked long poll, a host that goes silent (heartbeats), and JSON bodies that
are not UTF-8. Every client here counts each request it sent and whether it
was answered."""
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import APPS, LUBECK, ROOT, Mongrel2, Process, Server, http_request

APP = os.path.join(APPS, "edges")


def run_host(m2, *args):
    """`lubeck run` connected straight to m2; returns once it answers."""
    return Process([LUBECK, "run", APP, "--send", m2.send_spec, "--recv", m2.recv_spec] +
                   list(args))


def stop_all(*procs):
    for p in procs:
        if p.proc.poll() is None:
            os.killpg(p.proc.pid, signal.SIGCONT)
        p.stop()


def wait_listening(port, timeout=20):
    """Waits until Mongrel2 accepts on port, without sending a request."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("mongrel2 never listened on %d" % port)


def read_some(sock, wait):
    """Whatever arrives on sock within wait seconds (b"" when nothing)."""
    sock.settimeout(wait)
    try:
        return sock.recv(65536)
    except socket.timeout:
        return b""
    except OSError:
        return b""


def read_response(sock, what, timeout=5):
    """One HTTP response from sock: (status, body, bytes that came after it)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before an answer to %s" % what
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                  if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the body of %s" % what
        body += chunk
    return int(head.split()[1]), body[:length], body[length:]


def http_on(sock, path, timeout=5):
    """One GET on an open keep-alive connection: (status, body); a second
    answer that came with the first fails."""
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: edges\r\n\r\n")
    status, body, extra = read_response(sock, path, timeout)
    assert not extra, "more than one answer to %s: %r" % (path, body + extra)
    return status, body


@pytest.fixture
def mongrel2(tmp_path):
    started = []

    def start():
        m2 = Mongrel2(APP, tmp_path / ("m2-%d" % len(started)))
        started.append(m2)
        return m2

    yield start
    for m2 in started:
        m2.stop()


# ---- 1. a Mongrel2 restart: nothing received before it is answered after it ----

SLOW = 4      # seconds the old requests sleep: Mongrel2 restarts meanwhile


def test_restart_of_mongrel2_ends_what_it_had_sent(mongrel2):
    from test_websocket import WS
    m2 = mongrel2()
    host = run_host(m2)
    try:
        assert m2.wait_ok("/who"), "\n".join(host.err)
        ws = WS(m2.port, "/ws")
        assert ws.status == 101
        ws.send_text("hi")
        assert ws.recv_text() == "echo hi"
        old = []
        for i in range(10):
            s = socket.create_connection(("127.0.0.1", m2.port), timeout=5)
            s.sendall(b"GET /slow?wait=%d HTTP/1.1\r\nHost: edges\r\n\r\n" % SLOW)
            old.append(s)
        time.sleep(0.5)                  # all ten are sleeping in the host by now
        m2.proc.kill()                   # kill -9: no notice of any kind
        m2.proc.wait()
        slow_end = time.time() + SLOW - 0.5   # when the old replies would go out
        for s in old:
            s.close()
        m2.start()
        wait_listening(m2.port)
        # New clients, numbered from the same counter by the restarted Mongrel2,
        # each waiting for its own answer when the old replies go out.
        new = [socket.create_connection(("127.0.0.1", m2.port), timeout=10) for _ in range(20)]
        assert time.time() < slow_end - 1, "the restart took too long for this test to show anything"
        for i, s in enumerate(new):
            s.sendall(b"GET /slow?wait=%g&n=%d HTTP/1.1\r\nHost: edges\r\n\r\n" %
                      (slow_end - time.time() + 1, i))
        crossed = []
        for i, s in enumerate(new):
            status, body, extra = read_response(s, "/slow", timeout=10)
            if json.loads(body).get("n") != str(i) or extra:
                crossed.append(body + extra)
        assert not crossed, "%d of %d new clients got a reply meant for an old one: %r" % (
            len(crossed), len(new), crossed[:2])
        # The old WebSocket session ended; a broadcast reaches no new client.
        deadline = time.time() + 10
        while True:
            status, body = http_on(new[0], "/sessions")
            sessions = json.loads(body)
            if sessions["open"] == 0 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert sessions["open"] == 0 and sessions["ended"] == 1, sessions
        status, body = http_on(new[1], "/broadcast")
        assert json.loads(body)["sent"] == 0
        assert not [s for s in new[2:] if read_some(s, 0.05)], "a broadcast reached a new client"
        # Every new client is in step: its own answer to its own request.
        for i, s in enumerate(new[2:]):
            status, body = http_on(s, "/who?n=%d" % i)
            assert status == 200 and json.loads(body)["n"] == str(i), (i, body)
        for s in new:
            s.close()
        host.wait_line("dropped", stream="err", timeout=5)
        ws.sock.close()
    finally:
        stop_all(host)


# ---- 8. JSON bodies are UTF-8 (RFC 8259) ----------------------------------------

BAD_UTF8 = [b'"\xff\xfe"', b'{"a": "\xc0\xaf"}', b'["\xed\xa0\x80"]', b'"\x80"', b'"\xf4\x90\x80\x80"']
NOT_JSON = [b"nan", b"[Infinity]", b"0x10", b"01", b'"\\ud800"', b"{}x", b"{bad"]


def test_json_that_is_not_utf8_is_400_everywhere(serve):
    s = serve(APP)
    json_type = {"Content-Type": "application/json"}
    for path in ("/json", "/api", "/validate"):
        for body in BAD_UTF8 + NOT_JSON:
            r = s.post(path, body=body, headers=json_type)
            assert r.status == 400, (path, body, r.status, r.body)
            r.body.decode("utf-8")       # the answer itself is UTF-8
            if path != "/validate":
                assert "invalid JSON" in json.loads(r.body)["error"], (path, body, r.body)
    ok = s.post("/json", body='{"a": "\u2713"}'.encode(), headers=json_type)
    assert ok.status == 200 and json.loads(ok.body) == {"value": {"a": "\u2713"}}
    note = s.post("/validate", body=b'{"text": "caf\xc3\xa9"}', headers=json_type)
    assert note.status == 200 and json.loads(note.body)["text"] == "caf\u00e9"
