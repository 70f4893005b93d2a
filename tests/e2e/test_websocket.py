"""WebSocket handlers through a real Mongrel2 (docs/websockets.md), driven by a
small RFC 6455 client written here with the standard library only."""
import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import struct
import time

import pytest

from conftest import APPS, Server

APP = os.path.join(APPS, "websocket")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


class WSClosed(Exception):
    pass


class WS:
    """A WebSocket client: masks what it sends, checks what it receives."""

    def __init__(self, port, path, protocols=None, timeout=5):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16))
        head = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n")
        if protocols:
            head += b"Sec-WebSocket-Protocol: " + ", ".join(protocols).encode() + b"\r\n"
        self.sock.sendall(head + b"\r\n")
        raw = self._read_until(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        self.status_line = lines[0]
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        self.expected_accept = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()

    def _read_until(self, marker):
        while marker not in self.buf:
            self._fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _fill(self):
        b = self.sock.recv(65536)
        if not b:
            raise WSClosed("connection closed")
        self.buf += b

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload=b"", fin=True, rsv=0):
        if isinstance(payload, str):
            payload = payload.encode()
        first = (0x80 if fin else 0) | rsv | opcode
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", first, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + masked)

    def recv_frame(self):
        """(fin, opcode, payload, header_length)"""
        b0, b1 = self._read(2)
        assert not (b1 & 0x80), "server frames are never masked"
        n = b1 & 0x7F
        hlen = 2
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
            hlen = 4
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
            hlen = 10
        return bool(b0 & 0x80), b0 & 0x0F, self._read(n), hlen

    def recv(self):
        """The next data message as (kind, payload)."""
        fin, op, payload, _ = self.recv_frame()
        assert fin
        return {TEXT: "text", BINARY: "binary", CLOSE: "close", PING: "ping", PONG: "pong"}[op], payload

    def send_text(self, s):
        self.send_frame(TEXT, s)

    def recv_text(self):
        kind, payload = self.recv()
        assert kind == "text", (kind, payload)
        return payload.decode()

    def send_close(self, code=None, reason=b""):
        self.send_frame(CLOSE, b"" if code is None else struct.pack("!H", code) + reason)

    def expect_close(self):
        """Reads until the server's close frame: (code, reason); then the EOF."""
        while True:
            fin, op, payload, _ = self.recv_frame()
            if op == CLOSE:
                break
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        return code, payload[2:].decode()

    def expect_eof(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                self._fill()
        except WSClosed:
            return True
        return False

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(APP, tmp_path_factory.mktemp("ws"))
    yield s
    s.stop()


def closes(server):
    return json.loads(server.get("/closes").text)


def wait_for(fn, timeout=5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    return fn()


def test_handshake_answers_101_with_mongrel2s_accept_key(server):
    ws = WS(server.port, "/echo")
    assert ws.status == 101, ws.status_line
    assert ws.headers["sec-websocket-accept"] == ws.expected_accept
    assert ws.headers["upgrade"].lower() == "websocket"
    assert "upgrade" in ws.headers["connection"].lower()
    assert "sec-websocket-protocol" not in ws.headers
    ws.send_text("hi")
    assert ws.recv_text() == "hi"
    ws.close()


def test_a_plain_get_to_a_websocket_route_is_426(server):
    r = server.get("/echo")
    assert r.status == 426
    assert r.header("Upgrade") == "websocket"


def test_text_and_binary_echo(server):
    ws = WS(server.port, "/echo")
    ws.send_text("héllo wörld")
    assert ws.recv() == ("text", "héllo wörld".encode())
    blob = bytes(range(256)) * 3
    ws.send_frame(BINARY, blob)
    assert ws.recv() == ("binary", blob)
    ws.send_text("")
    assert ws.recv() == ("text", b"")
    ws.close()


def test_a_70000_byte_message_uses_the_64_bit_length(server):
    ws = WS(server.port, "/echo")
    big = os.urandom(70000)
    ws.send_frame(BINARY, big)
    fin, op, payload, hlen = ws.recv_frame()
    assert (fin, op, hlen) == (True, BINARY, 10)
    assert payload == big
    medium = "x" * 300
    ws.send_text(medium)
    fin, op, payload, hlen = ws.recv_frame()
    assert (op, hlen, payload) == (TEXT, 4, medium.encode())
    ws.close()


def test_fragmented_messages_arrive_whole_and_pings_in_between_are_answered(server):
    ws = WS(server.port, "/echo")
    ws.send_frame(TEXT, "frag1-", fin=False)
    ws.send_frame(PING, "mid")
    ws.send_frame(0x0, "frag2-", fin=False)
    ws.send_frame(0x0, "frag3", fin=True)
    assert ws.recv() == ("pong", b"mid")
    assert ws.recv() == ("text", b"frag1-frag2-frag3")
    ws.close()


def test_ping_gets_a_pong_with_the_same_payload(server):
    ws = WS(server.port, "/echo")
    ws.send_frame(PING, b"are you there")
    assert ws.recv() == ("pong", b"are you there")
    ws.send_frame(PING)
    assert ws.recv() == ("pong", b"")
    ws.close()


def test_close_handshake_echoes_code_and_reason_and_runs_on_close(server):
    before = closes(server)["count"]
    ws = WS(server.port, "/echo")
    ws.send_text("one")
    assert ws.recv_text() == "one"
    ws.send_close(1000, "bye".encode())
    assert ws.expect_close() == (1000, "bye")
    assert ws.expect_eof()
    got = wait_for(lambda: (lambda c: c if c["count"] > before else None)(closes(server)))
    assert got["last"] == {"code": 1000, "reason": "bye", "path": "/echo"}


def test_server_close_with_code_and_reason(server):
    ws = WS(server.port, "/proto")
    assert ws.recv_text() == "protocol nil"
    ws.send_text("close me")
    assert ws.expect_close() == (4000, "bye now")
    ws.send_close(4000)
    assert ws.expect_eof()
    got = wait_for(lambda: (lambda c: c if c["last"] and c["last"]["code"] == 4000 else None)(closes(server)))
    assert got["last"]["path"] == "/proto"


def test_a_failing_handler_closes_with_1011(server):
    ws = WS(server.port, "/proto")
    ws.recv_text()
    ws.send_text("bad close")
    assert ws.expect_close() == (1011, "internal error")
    ws.send_close(1011)
    assert ws.expect_eof()
    assert server.process.wait_line("in on_message", stream="err")


def test_invalid_utf8_text_closes_with_1007(server):
    ws = WS(server.port, "/echo")
    ws.send_frame(TEXT, b"ok \xff\xfe not utf-8")
    code, _ = ws.expect_close()
    assert code == 1007
    assert ws.expect_eof()


def test_a_client_that_vanishes_runs_on_close_with_1006(server):
    before = closes(server)["count"]
    ws = WS(server.port, "/echo")
    ws.send_text("x")
    assert ws.recv_text() == "x"
    ws.close()    # no close frame
    got = wait_for(lambda: (lambda c: c if c["count"] > before else None)(closes(server)))
    assert got["last"]["code"] == 1006
    assert wait_for(lambda: closes(server)["open"] == 0)


def test_subprotocol_chosen_by_the_class(server):
    ws = WS(server.port, "/proto", protocols=["chat.v1", "chat.v2"])
    assert ws.headers["sec-websocket-protocol"] == "chat.v2"
    assert ws.recv_text() == "protocol chat.v2"
    ws.close()
    ws = WS(server.port, "/proto", protocols=["other"])
    assert "sec-websocket-protocol" not in ws.headers
    assert ws.recv_text() == "protocol nil"
    ws.close()


def test_prepare_can_refuse_the_upgrade(server):
    ws = WS(server.port, "/private")
    assert ws.status == 403
    ws.close()
    ws = WS(server.port, "/private?token=ok")
    assert ws.status == 101
    assert ws.recv_text() == "welcome"
    ws.close()


def test_handlers_may_wait_and_messages_stay_in_order(server):
    ws = WS(server.port, "/sleepy")
    for i in range(5):
        ws.send_text(str(i))
    assert [ws.recv_text() for _ in range(5)] == ["slept %d" % i for i in range(5)]
    ws.close()


def test_a_channel_feeds_every_socket_of_a_room(server):
    socks = [WS(server.port, "/room") for _ in range(5)]
    for ws in socks:
        assert ws.recv_text() == "joined"
    socks[0].send_text("hello room")
    assert [ws.recv_text() for ws in socks] == ["hello room"] * 5
    r = server.post("/publish", body=b"from http")
    assert json.loads(r.text)["woken"] == 5
    assert [ws.recv_text() for ws in socks] == ["from http"] * 5
    for ws in socks:
        ws.close()


def test_a_burst_of_sends_is_paced_not_dropped(server):
    # 300 sends in one loop to one connection: far more than Mongrel2's queue of
    # 16 per connection, so the host must pace them (or the client is dropped).
    ws = WS(server.port, "/burst")
    ws.send_text("300")
    got = [ws.recv_text() for _ in range(301)]
    assert got == ["m%d" % i for i in range(1, 301)] + ["done"]
    ws.close()


def test_with_two_workers_one_connection_keeps_its_state_for_100_frames(tmp_path):
    server = Server(APP, tmp_path / "run", ["--workers", "2"])
    try:
        ws = WS(server.port, "/counter")
        owners = set()
        # Frames sent two at a time are two messages in a row, with the
        # credits notices of the owner's replies between them: the master's
        # reader hands every message of the connection to its owner, in order.
        for i in range(1, 101, 2):
            ws.send_text("f%d" % i)
            ws.send_text("f%d" % (i + 1))
            for k in (i, i + 1):
                n, echoed, pid = ws.recv_text().split()
                assert (int(n), echoed) == (k, "f%d" % k)
                owners.add(pid)
        assert len(owners) == 1      # one session: every frame reached its worker
        # The master's reader hands plain requests to the least busy worker:
        # the one that does not hold the session (its replies' credits
        # notices go to it too, and the session's to the owner).
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        pids = set()
        for _ in range(6):
            conn.request("GET", "/closes")
            pids.add(str(json.loads(conn.getresponse().read())["pid"]))
        conn.close()
        assert len(pids) == 1 and pids != owners
        ws.send_close(1000)
        assert ws.expect_close()[0] == 1000
        ws.close()
    finally:
        server.stop()


def test_a_stopping_host_closes_its_sockets_with_1001(tmp_path):
    server = Server(APP, tmp_path / "run")
    ws = WS(server.port, "/echo")
    ws.send_text("x")
    assert ws.recv_text() == "x"
    started = time.time()
    server.process.signal(signal.SIGTERM)
    assert ws.expect_close() == (1001, "server shutting down")
    ws.send_close(1001)
    assert ws.expect_eof()
    assert server.process.proc.wait(10) == 0
    assert time.time() - started < 5
