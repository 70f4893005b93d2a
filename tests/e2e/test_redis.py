"""lubeck.redis through a real Mongrel2 against a real redis-server, started per
module on a free loopback port (no persistence) and stopped at teardown.
App: tests/e2e/apps/redis."""
import json
import os
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APPS, Server, free_port

REDIS_SERVER = "/usr/bin/redis-server"

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed")


class Redis:
    """A redis-server of the test's own, with a tiny RESP client to look inside."""

    def __init__(self, tmp, *args, password=None):
        self.port = free_port()
        self.password = password
        if password:
            args += ("--requirepass", password)
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--save", "", "--appendonly", "no", "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", str(tmp)] + list(args),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 10
        while True:
            try:
                if self.command("PING") == "PONG":
                    break
            except OSError:
                pass
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("redis-server did not start on %d" % self.port)
            time.sleep(0.05)

    def command(self, *args):
        commands = [("AUTH", self.password), args] if self.password else [args]
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
            out = b""
            for command in commands:
                out += b"*%d\r\n" % len(command)
                for a in command:
                    a = a.encode() if isinstance(a, str) else a
                    out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            if self.password:
                f.readline()                              # AUTH's +OK
            line = f.readline().rstrip(b"\r\n")
            if line[:1] == b"+":
                return line[1:].decode()
            if line[:1] == b"$":
                n = int(line[1:])
                return None if n < 0 else f.read(n + 2)[:-2].decode()
            if line[:1] == b":":
                return int(line[1:])
            raise AssertionError("unexpected reply %r" % line)

    def clients(self):
        """Connections other than the one asking."""
        return len(self.command("CLIENT", "LIST").strip().splitlines()) - 1

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("redis")
    server = Redis(tmp, "--unixsocket", str(tmp / "redis.sock"))
    server.unix = str(tmp / "redis.sock")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def srv(redis_server, tmp_path_factory):
    os.environ["LUBECK_TEST_REDIS_PORT"] = str(redis_server.port)
    try:
        server = Server(os.path.join(APPS, "redis"), tmp_path_factory.mktemp("redis-run"))
    finally:
        del os.environ["LUBECK_TEST_REDIS_PORT"]
    yield server
    server.stop()


def jget(server, path, status=200, **kw):
    r = server.get(path, **kw)
    assert r.status == status, (r.status, r.text)
    return json.loads(r.body)


def test_commands_and_their_replies(srv, redis_server):
    r = jget(srv, "/commands?key=t1")
    assert r == {
        "set": "OK", "get": "hello", "missing": None,
        "incr": [1, 2, 42], "hset": 2, "hgetall": ["a", "1", "b", "2"],
        "rpush": 3, "lrange": ["x", "y", "z"], "empty": {}, "binary": True,
    }
    assert redis_server.command("GET", "t1:n") == "42"


def test_error_replies_are_nil_err_and_the_connection_goes_on(srv):
    r = jget(srv, "/errors")
    assert r["v1"] is None and r["e1"] == "ERR value is not an integer or out of range"
    assert r["v2"] is None and r["e2"].startswith("ERR unknown command")
    assert r["v3"] is None and r["e3"].startswith("WRONGTYPE")
    assert r["after"] == "PONG"


def test_pipeline_returns_every_reply_in_order(srv):
    r = jget(srv, "/pipeline")
    assert r["n"] == 7
    replies = r["replies"]
    assert replies[:3] == [1, 2, "2"]
    assert replies[3]["err"].startswith("ERR unknown command")
    assert replies[4:6] == [2, ["a", "b"]]
    assert replies[6] is None                         # a nil bulk inside the list


def test_numbers_are_sent_exactly(srv, redis_server):
    r = jget(srv, "/numbers")
    assert r == {"big": "123456789012345", "float": "0.1", "incr": "9007199254740991"}
    assert redis_server.command("GET", "num:big") == "123456789012345"


def test_keepalive_pools_one_connection_for_many_requests(srv, redis_server):
    jget(srv, "/pooled")                              # opens the pooled connection
    before = redis_server.clients()
    results = [jget(srv, "/pooled") for _ in range(20)]
    assert all(r["pong"] == "PONG" and r["kept"] == 1 for r in results)
    assert [r["reused"] for r in results] == sorted(r["reused"] for r in results)
    assert results[-1]["reused"] >= 20
    assert redis_server.clients() == before == 1
    assert jget(srv, "/stats")["sockets"] == 0


def test_a_server_killed_mid_request_gives_nil_err(srv, tmp_path):
    doomed = Redis(tmp_path)
    try:
        with ThreadPoolExecutor(1) as pool:
            fut = pool.submit(jget, srv, "/blpop?port=%d" % doomed.port)
            deadline = time.time() + 5
            while doomed.clients() < 1 and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(0.1)                               # BLPOP is waiting now
            os.kill(doomed.proc.pid, signal.SIGKILL)
            started = time.time()
            r = fut.result(timeout=5)
        assert time.time() - started < 2
        assert r["value"] is None
        assert r["err"] in ("closed", "connection reset by peer"), r
        assert r["waited"] < 3
    finally:
        doomed.stop()
    r = jget(srv, "/pooled?port=%d" % doomed.port, status=502)
    assert r == {"where": "connect", "err": "connection refused"}


# ---- the keep-alive pool never crosses sessions and never hands out dirty sockets

def test_a_pooled_connection_never_reaches_another_password(srv, tmp_path):
    locked = Redis(tmp_path, password="right horse")
    try:
        q = "/session?port=%d&key=secret" % locked.port
        ok = jget(srv, q + "&password=right%20horse&set=s3cret")
        assert ok["value"] == "s3cret" and ok["kept"] == 1
        again = jget(srv, q + "&password=right%20horse")
        assert again["reused"] >= 1 and again["value"] == "s3cret"   # same session: pooled
        # The pool holds an authenticated connection; a wrong password must not get it.
        r = jget(srv, q + "&password=wrong", status=502)
        assert r["where"] == "connect" and r["err"].startswith("WRONGPASS"), r
        r = jget(srv, q, status=200)
        assert r["reused"] == 0 and r["value"] is None, r            # no password: no session
    finally:
        locked.stop()


def test_a_pooled_connection_keeps_its_db(srv):
    q = "/session?key=dbkey"
    assert jget(srv, q + "&db=1&set=in-db-1")["value"] == "in-db-1"
    assert jget(srv, q + "&db=1")["reused"] >= 1
    r = jget(srv, q + "&db=0")
    assert r["value"] is None, r           # db 0 never got db 1's connection
    r = jget(srv, q)
    assert r["value"] is None, r


def test_the_pool_option_names_the_pool(srv):
    assert jget(srv, "/raw_pool?pool=pa")["kept"] == 1
    assert jget(srv, "/raw_pool?pool=pa")["reused"] == 1
    assert jget(srv, "/raw_pool?pool=pb")["reused"] == 0
    assert jget(srv, "/raw_pool?pool=pa")["reused"] == 2


@pytest.mark.parametrize("where", ["buffer", "kernel"])
def test_a_connection_with_unread_bytes_is_not_pooled(srv, where):
    r = jget(srv, "/dirty?where=" + where)
    assert r.get("kept") is None and r["err"] == "connection in dubious state", r
    r = jget(srv, "/dirty?where=" + where)
    assert r["reused"] == 0, r            # nothing went into the pool


def test_a_pooled_connection_the_server_closed_is_not_handed_out(srv):
    r = jget(srv, "/killed_in_pool")
    assert r == {"killed": ":1", "reused": 0, "pong": "+PONG"}


# ---- lubeck.redis called the way resty.redis code calls it

@pytest.mark.parametrize("over", ["tcp", "unix"])
def test_called_the_resty_way(srv, redis_server, over):
    q = "/resty_way" + ("?unix=" + redis_server.unix if over == "unix" else "")
    r = jget(srv, q)
    assert r["connected"] == 1
    assert r["set"] == "OK" and r["get"] == "an animal" and r["missing_is_null"] is True
    assert r["hmset"] == "OK" and r["hget"] == "meow"
    assert r["queued"] == "OK"
    assert r["pipeline"][:3] == ["OK", "Marry", False]
    assert r["pipeline"][3].startswith("ERR value is not an integer")
    assert r["after_cancel"] == "Marry"
    assert r["incr"][0] is False and r["incr"][1].startswith("ERR value is not an integer")
    assert r["typo"][0] is False and "no such command or method 'sett'" in r["typo"][1]
    assert r["kept"] == 1
    assert jget(srv, q)["reused"] >= 1


def test_subscribe_and_read_reply(srv):
    r = jget(srv, "/pubsub")
    assert r["subscribed"] == ["subscribe", "news", 1]
    assert r["published"] == 1
    assert r["message"] == ["message", "news", "hello"]
    assert r["timeout"] == [None, "timeout"]
    assert r["kept"] == [None, "subscribed state"]
