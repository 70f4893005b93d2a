"""The complete cosocket (lubeck.tcp) through a real Mongrel2, against an echo
server the test runs on loopback (TCP and a unix socket). App:
tests/e2e/apps/cosocket."""
import json
import os
import socket
import struct
import threading
import time

import pytest

from conftest import APPS, Server


class Echo:
    """Echoes what it reads. "QUIT-AFTER-ECHO" closes after echoing;
    "DELAY-ECHO x" echoes x 100 ms later; "RESET" resets the connection."""

    def __init__(self, family=socket.AF_INET, path=None):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if path:
            self.sock.bind(path)
        else:
            self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.address = path or self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if data.startswith(b"RESET"):            # an abortive close: RST
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                if data.startswith(b"DELAY-ECHO "):
                    time.sleep(0.1)
                    data = data[len(b"DELAY-ECHO "):]
                conn.sendall(data)
                if b"QUIT-AFTER-ECHO" in data:
                    return

    def close(self):
        self.sock.close()


@pytest.fixture(scope="module")
def echo():
    server = Echo()
    yield server
    server.close()


@pytest.fixture(scope="module")
def unix_echo(tmp_path_factory):
    server = Echo(socket.AF_UNIX, str(tmp_path_factory.mktemp("unix") / "echo.sock"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = Server(os.path.join(APPS, "cosocket"), tmp_path_factory.mktemp("cosocket-run"))
    yield server
    server.stop()


def jget(server, path, status=200):
    r = server.get(path)
    assert r.status == status, (r.status, r.text, "\n".join(server.stderr[-12:]))
    return json.loads(r.body)


def test_send_takes_nested_tables(srv, echo):
    r = jget(srv, "/send_table?port=%d" % echo.address)
    assert r["sent"] == 8 and r["back"] == "ab1c2.5d"
    assert "bad argument #1 to 'send'" in r["bad"] and "boolean" in r["bad"]


def test_receiveuntil(srv, echo):
    r = jget(srv, "/until?port=%d" % echo.address)
    assert r == {"a": "first", "b": "second", "c": "tail", "rest": ""}


def test_receiveuntil_in_sized_chunks(srv, echo):
    r = jget(srv, "/until_sized?port=%d" % echo.address)
    assert r == {"chunks": ["0123", "4567", "89", "END"], "after": "after"}


def test_receiveuntil_finds_a_pattern_split_across_reads(srv, echo):
    r = jget(srv, "/until_split?port=%d" % echo.address)
    # "xxABABABAB!": the first match starts at offset 2
    assert r == {"got": ["xx"], "tail": "AB"}


def test_receiveuntil_at_the_end_of_the_stream(srv, echo):
    r = jget(srv, "/until_closed?port=%d" % echo.address)
    assert r == [None, "closed", "no pattern hereQUIT-AFTER-ECHO"]


def test_receiveany(srv, echo):
    r = jget(srv, "/receiveany?port=%d" % echo.address)
    assert r["a"] == "hello" and r["b"] == " world"
    assert "bad argument #1 to 'receiveany'" in r["bad"]


def test_unix_sockets_connect_and_pool(srv, unix_echo):
    r = jget(srv, "/unix?path=%s" % unix_echo.address)
    assert r == {"line": "over unix", "kept": 1, "reused": 1}
    r = jget(srv, "/missing_unix?path=%s.nope" % unix_echo.address)
    assert r == [None, "no such file or directory"]


def test_settimeouts_sets_each_one(srv, echo):
    r = jget(srv, "/timeouts?port=%d" % echo.address)
    assert r["data"] is None and r["err"] == "timeout"
    assert 0.08 <= r["waited"] < 1.0
    assert r["still"] == 6 and r["line"] == "alive"
    assert "bad argument #1 to 'settimeout'" in r["bad"]


def test_settimeout_zero_means_the_default(srv, echo):
    assert jget(srv, "/timeout_zero?port=%d" % echo.address) == {"line": "late"}


def test_one_reader_and_one_writer_at_once(srv, echo):
    r = jget(srv, "/duplex?port=%d" % echo.address)
    assert r["lines"] == ["line 1", "line 2", "line 3"]
    assert r["busy"] == [None, "socket busy reading"]
    assert r["ok"] is True and r["last"] is None and r["err"] == "closed"


def test_setoption(srv, echo):
    r = jget(srv, "/options?port=%d" % echo.address)
    assert r["before"] == [None, "closed"]
    assert r["after"] is True and r["nodelay"] is True
    assert "bad argument #1 to 'setoption'" in r["unknown"]


def test_misuse_names_the_method(srv):
    r = jget(srv, "/arg_errors")
    assert "to 'connect'" in r["connect"] and "number expected" in r["connect"]
    assert "to 'connect'" in r["port"] and "bad port" in r["port"]
    assert "to 'connect'" in r["pool"] and "pool" in r["pool"]
    assert "to 'receive'" in r["receive"] and "bad pattern" in r["receive"]
    assert "to 'send'" in r["send"]
    assert "to 'receiveuntil'" in r["until_empty"] and "empty" in r["until_empty"]
    assert "lubeck.Socket expected" in r["self"]


def test_pool_size_caps_the_pool(srv, echo):
    r = jget(srv, "/pool_size?port=%d" % echo.address)
    assert r["reused"] == [1, 1, 0]


def test_socket_calls_inside_the_handlers_own_coroutines(srv, echo):
    r = jget(srv, "/coroutines?port=%d" % echo.address)
    assert r["got"] == ["one", "two", "three"]
    assert r["r1"] == [True, "in:deep"]
    assert r["r2"] == [True, 42, "dead"]
    assert r["slept"] is True and r["status"] == "dead"
    assert r["failed"] is False and r["err"] == "boom"


def test_a_reset_while_reading_wakes_the_reader_and_the_writer_goes_on_safely(srv, echo):
    r = jget(srv, "/reset?port=%d" % echo.address)
    assert r["read"] == [None, "connection reset by peer", ""]
    assert r["after"] == [None, "closed"]


def test_backlog_queues_connects_past_pool_size(srv, echo):
    r = jget(srv, "/backlog?port=%d&round=1" % echo.address)
    assert r == ["a:connected/0", "c:too many waiting connect operations", "a:done",
                 "b:connected/1", "b:done"]


def test_a_queued_connect_times_out(srv, echo):
    r = jget(srv, "/backlog?port=%d&round=2&timeout=50" % echo.address)
    assert r == ["a:connected/0", "c:too many waiting connect operations", "b:timeout", "a:done"]
