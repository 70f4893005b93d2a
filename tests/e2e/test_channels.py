"""lubeck.channel across workers and hosts (docs/channels.md) through a real
Mongrel2: two separate `lubeck run` hosts on one Mongrel2's specs, joined by
--redis to a redis-server the test starts on a loopback port, and apps/chat
with --workers 2. App: tests/e2e/apps/channels (every answer names its pid)."""
import http.client
import json
import os
import re
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APPS, LUBECK, ROOT, Mongrel2, Process, Server, free_port

REDIS_SERVER = "/usr/bin/redis-server"
APP = os.path.join(APPS, "channels")
CHAT = os.path.join(ROOT, "apps", "chat")

pytestmark = pytest.mark.skipif(not os.path.exists(REDIS_SERVER), reason="redis-server not installed")


class RedisServer:
    """A redis-server of the test's own on a fixed loopback port, so that it can
    be killed and started again where the hosts look for it."""

    def __init__(self, tmp):
        self.port = free_port()
        self.dir = str(tmp)
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--save", "", "--appendonly", "no", "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 10
        while not self.ping():
            if time.time() > deadline or self.proc.poll() is not None:
                raise AssertionError("redis-server did not start on %d" % self.port)
            time.sleep(0.05)

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        if self.proc:
            self.proc.wait()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.kill()


LINKED = "redis: channels reach other hosts through"


class Pool:
    """One Mongrel2 and separate `lubeck run` hosts on its specs (Mongrel2
    rotates requests over them), each started with its own extra arguments."""

    def __init__(self, tmp_path, app, hosts):
        self.m2 = Mongrel2(app, tmp_path / "m2", flow_control=False)
        self.hosts = []
        try:
            for args in hosts:
                self.hosts.append(Process([LUBECK, "run", app, "--send", self.m2.send_spec,
                                           "--recv", self.m2.recv_spec] + list(args)))
            for h in self.hosts:
                if any("--redis" == a for a in h.argv):
                    h.wait_line(LINKED, "err")
            assert self.m2.wait_ok()
        except BaseException:
            self.stop()
            raise

    @property
    def port(self):
        return self.m2.port

    def stop(self):
        for h in self.hosts:
            h.stop()
        self.m2.stop()


@pytest.fixture
def pool(tmp_path):
    started = []

    def start(app, *hosts):
        p = Pool(tmp_path / ("pool%d" % len(started)), app, hosts)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def get_json(port, path, timeout=20):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        return r.status, (json.loads(body) if body else None)
    finally:
        c.close()


def parked_per_process(port, want, timeout=15, asks=30):
    """Asks /waiters of every process until they hold `want` waiters between
    them; returns {pid: waiters}. Each round sends `asks` requests at once,
    each held 0.3 s in its handler: Mongrel2 deals them over its handlers and
    a host's reader over its workers, least busy first, so with more asks
    than waiters every worker gets one (a worker holding long polls is busier
    and would never get a request sent alone)."""
    seen = {}
    deadline = time.time() + timeout
    with ThreadPoolExecutor(asks) as ex:
        while time.time() < deadline:
            answers = [f.result() for f in [ex.submit(get_json, port, "/waiters?hold=0.3", 5)
                                            for _ in range(asks)]]
            seen = {}
            for status, r in answers:
                if status == 200:
                    seen[r["pid"]] = r["waiters"]
            if sum(seen.values()) == want and len(seen) >= 2:
                return seen
            time.sleep(0.02)
    raise AssertionError("waiters never reached %d: %r" % (want, seen))


def long_polls(port, n, wait):
    """Starts n long polls at once; returns (executor, futures of (status, body))."""
    ex = ThreadPoolExecutor(n)
    return ex, [ex.submit(get_json, port, "/poll?wait=%g" % wait, wait + 15) for _ in range(n)]


def results(ex, futures):
    got = [f.result(timeout=30) for f in futures]
    ex.shutdown()
    return got


def test_one_publish_wakes_20_long_polls_spread_over_two_hosts(redis_server, pool):
    """Host A has two workers (its bus process holds the Redis link), host B is
    a lone process (it holds the link itself)."""
    p = pool(APP, ["--workers", "2", "--redis", redis_server.url], ["--redis", redis_server.url])
    ex, polls = long_polls(p.port, 20, 20)
    parked = parked_per_process(p.port, 20)
    say_status, said = get_json(p.port, "/say?m=hello")
    assert say_status == 200
    got = results(ex, polls)
    assert [s for s, _ in got] == [200] * 20
    assert [b["value"] for _, b in got] == ["hello"] * 20, got
    woken = {}
    for _, b in got:
        woken[b["pid"]] = woken.get(b["pid"], 0) + 1
    assert woken == {pid: n for pid, n in parked.items() if n}
    assert p.hosts[1].proc.pid in woken and len(woken) >= 2   # polls waited on both hosts
    assert said["woken_here"] == woken.get(said["pid"], 0)


def collect(port, n, seconds=10):
    return get_json(port, "/collect?n=%d&wait=%g" % (n, seconds), seconds + 15)


def test_each_process_gets_each_publish_once_in_its_publishers_order(redis_server, pool):
    """Every publish reaches every process exactly once: the publisher's own
    waiters are woken locally and never again from Redis."""
    p = pool(APP, ["--workers", "2", "--redis", redis_server.url], ["--redis", redis_server.url])
    ex = ThreadPoolExecutor(12)
    collectors = [ex.submit(collect, p.port, 6) for _ in range(12)]
    parked_per_process(p.port, 12)
    # On one keep-alive connection, so the publishes come from several processes.
    # A waiter only gets what is published while it waits: the pause lets each
    # collector wait again (a matter of microseconds) before the next publish.
    c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    publishers = {}
    for i in range(6):
        c.request("GET", "/say?m=m%d" % i)
        publishers["m%d" % i] = json.loads(c.getresponse().read())["pid"]
        time.sleep(0.3)
    c.close()
    assert len(set(publishers.values())) >= 2
    got = [f.result(timeout=30) for f in collectors]
    ex.shutdown()
    for status, body in got:
        assert status == 200
        values = body["values"]
        assert sorted(values) == sorted(publishers), values      # each once, none twice
        for pid in set(publishers.values()):
            mine = [v for v in values if publishers[v] == pid]
            assert mine == sorted(mine), values                  # each publisher's order kept
    # and nothing else arrives later (no echo from Redis)
    assert not collect(p.port, 1, 0.5)[1]["values"]


def count_lines(process, needle):
    return sum(needle in line for line in process.err)


def test_redis_down_local_delivery_goes_on_and_the_count_is_logged_when_it_is_back(redis_server, pool):
    a_args, b_args = ["--redis", redis_server.url], ["--redis", redis_server.url]
    p = pool(APP, a_args, b_args)
    redis_server.kill()
    for h in p.hosts:
        h.wait_line("redis: lost 127.0.0.1:%d" % redis_server.port, "err")

    # Local delivery goes on: a publish wakes the polls of its own host only.
    ex, polls = long_polls(p.port, 20, 3)
    parked = parked_per_process(p.port, 20)
    status, said = get_json(p.port, "/say?m=local")
    assert status == 200 and said["woken_here"] == parked[said["pid"]]
    got = results(ex, polls)
    for status, b in got:
        assert status == 200
        if b["pid"] == said["pid"]:
            assert b["value"] == "local"
        else:
            assert b.get("value") is None and b["err"] == "timeout"
    published = {said["pid"]: 1}
    c = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    for i in range(5):
        c.request("GET", "/say?m=lost%d" % i)
        pid = json.loads(c.getresponse().read())["pid"]
        published[pid] = published.get(pid, 0) + 1
    c.close()
    time.sleep(1)   # several reconnect attempts fail meanwhile
    for h in p.hosts:
        assert count_lines(h, "redis:") == 2, h.err   # linked, lost: once, not once per retry

    redis_server.start()
    pids = {}
    for h in p.hosts:
        line = h.wait_line("redis: back on 127.0.0.1:%d" % redis_server.port, "err", timeout=10)
        n = int(re.search(r": (\d+) channel publish\(es\) made while it was away were not carried", line).group(1))
        pids[h.proc.pid] = n
    assert pids == {pid: published.get(pid, 0) for pid in pids}, (pids, published)

    # Across hosts again.
    ex, polls = long_polls(p.port, 20, 20)
    parked_per_process(p.port, 20)
    assert get_json(p.port, "/say?m=again")[0] == 200
    got = results(ex, polls)
    assert [b["value"] for _, b in got] == ["again"] * 20


def test_a_bad_redis_url_is_a_usage_error():
    r = subprocess.run([LUBECK, "run", APP, "--send", "tcp://127.0.0.1:1", "--recv", "tcp://127.0.0.1:2",
                        "--redis", "127.0.0.1:6379"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 2
    assert "bad --redis: 127.0.0.1:6379: a Redis url starts with redis://" in r.stderr


def test_the_apps_redis_option_is_checked_where_it_is_written(tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    (app / "app.lua").write_text('local lubeck = require "lubeck"\n'
                                 'local app = lubeck.app{ redis = "redis://127.0.0.1:port/0" }\n'
                                 'return app\n')
    r = subprocess.run([LUBECK, "check", str(app)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert "app.lua:2: lubeck.app{...}: option 'redis': redis://127.0.0.1:port/0: bad port" in r.stderr


def test_the_apps_redis_option_links_hosts_without_the_flag(redis_server, pool, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    src = open(os.path.join(APP, "app.lua")).read()
    (app / "app.lua").write_text(src.replace('lubeck.app{ name = "channels" }',
                                             'lubeck.app{ name = "channels", redis = "%s" }' % redis_server.url))
    p = pool(str(app), ["--redis", redis_server.url], [])
    p.hosts[1].wait_line(LINKED, "err")
    ex, polls = long_polls(p.port, 10, 20)
    parked_per_process(p.port, 10)
    assert get_json(p.port, "/say?m=hi")[0] == 200
    assert [b["value"] for _, b in results(ex, polls)] == ["hi"] * 10


# ---- apps/chat ---------------------------------------------------------------------

def chat_polls(port, since, n):
    ex = ThreadPoolExecutor(n)
    return ex, [ex.submit(get_json, port, "/poll?since=%d" % since, 40) for _ in range(n)]


def chat_say(port, text):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/say", body="name=ann&text=" + text,
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def chat_listening(port, processes, want, timeout=15):
    """Until the `processes` processes, asked /stats in batches of fresh
    connections at once (Mongrel2 rotates every message, notices included, so
    one connection may keep meeting the same process), say `want` polls wait
    between them."""
    deadline = time.time() + timeout
    seen = {}
    with ThreadPoolExecutor(8) as ex:
        while time.time() < deadline:
            for status, body in ex.map(lambda _: get_json(port, "/stats", 5), range(8)):
                assert status == 200
                seen[body["worker"]] = body["listening"]
            if len(seen) == processes and sum(seen.values()) == want:
                return
            time.sleep(0.05)
    raise AssertionError("never %d polls waiting: %r" % (want, seen))


def test_chat_with_two_workers_wakes_all_20_pollers_with_one_message(tmp_path):
    """Its history lives in lubeck.shared: whichever worker a poll waits in sees
    the message the other worker stored."""
    server = Server(CHAT, tmp_path / "run", ["--workers", "2"])
    try:
        since = json.loads(server.get("/stats").body)["last"]
        ex, polls = chat_polls(server.port, since, 20)
        chat_listening(server.port, 2, 20)
        status, said = chat_say(server.port, "hello+everyone")
        assert status == 201
        got = [f.result(timeout=30) for f in polls]
        ex.shutdown()
        assert [s for s, _ in got] == [200] * 20, got
        for _, body in got:
            assert [(m["id"], m["text"]) for m in body["messages"]] == [(said["id"], "hello everyone")]
            assert body["last"] == said["id"]
    finally:
        server.stop()


def test_chat_across_two_hosts_keeps_its_history_in_redis(redis_server, pool):
    p = pool(CHAT, ["--redis", redis_server.url], ["--workers", "2", "--redis", redis_server.url])
    since = get_json(p.port, "/stats")[1]["last"]
    ex, polls = chat_polls(p.port, since, 20)
    chat_listening(p.port, 3, 20)
    status, said = chat_say(p.port, "across+hosts")
    assert status == 201 and said["id"] == since + 1
    got = [f.result(timeout=30) for f in polls]
    ex.shutdown()
    assert [s for s, _ in got] == [200] * 20, got
    for _, body in got:
        assert [(m["id"], m["name"], m["text"]) for m in body["messages"]] == [(since + 1, "ann", "across hosts")]
    # a page that was away gets it from any process
    for _ in range(4):
        status, body = get_json(p.port, "/poll?since=%d" % since)
        assert status == 200 and [m["text"] for m in body["messages"]] == ["across hosts"]
