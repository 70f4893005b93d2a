"""lubeck.pg through a real Mongrel2 against a real PostgreSQL: the module's
fixture runs initdb into a temp folder and pg_ctl start on a free loopback port
(as `nobody` when the suite runs as root: postgres refuses root), and stops
it at the end. App: tests/e2e/apps/pg."""
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import APPS, ROOT, Server, free_port

PG_BIN = "/usr/lib/postgresql/15/bin"
SUPERPASS = "super-secret"

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(PG_BIN, "initdb")),
                                reason="PostgreSQL 15 server not installed")


class Postgres:
    """A PostgreSQL cluster of the test's own, with psql to look inside."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="lubeck-pg-")
        self.data = os.path.join(self.dir, "data")
        self.port = free_port()
        self.as_user = {}
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            os.chown(self.dir, nobody.pw_uid, nobody.pw_gid)
            self.as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid}
        os.chmod(self.dir, 0o700)
        pwfile = os.path.join(self.dir, "pw")
        with open(pwfile, "w") as f:
            f.write(SUPERPASS + "\n")
        if self.as_user:
            os.chown(pwfile, self.as_user["user"], self.as_user["group"])
        self._run([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "postgres",
                   "--auth=scram-sha-256", "--pwfile", pwfile, "--no-sync", "-E", "UTF8",
                   "--locale=C"])
        opts = ("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s "
                "-c max_connections=160 -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c shared_buffers=16MB" % (self.port, self.dir))
        self._run([os.path.join(PG_BIN, "pg_ctl"), "start", "-w", "-t", "30", "-D", self.data,
                   "-l", os.path.join(self.dir, "log"), "-o", opts])
        self.sql("create role app login password 'app-pw'")
        self.sql("create role alice login password 'alice-pw'")
        self.sql("create role bob login password 'bob-pw'")
        self.sql("create database app owner app")
        self.dsn = "postgres://app:app-pw@127.0.0.1:%d/app" % self.port

    def _run(self, argv):
        r = subprocess.run(argv, capture_output=True, text=True, cwd=self.dir, **self.as_user)
        if r.returncode != 0:
            raise AssertionError("%s failed:\n%s\n%s" % (argv[0], r.stdout, r.stderr))

    def sql(self, query, db="postgres"):
        """Runs query as the superuser; returns the rows as lists of strings."""
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", db, "-AtX", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", query],
                           capture_output=True, text=True, timeout=20,
                           env=dict(os.environ, PGPASSWORD=SUPERPASS))
        if r.returncode != 0:
            raise AssertionError("psql: %s" % r.stderr)
        return [line.split("\t") for line in r.stdout.splitlines()]

    def active(self, tag):
        """Backends running a query that contains tag (other than this one)."""
        return self.sql("select pid from pg_stat_activity where state = 'active' and "
                        "query like '%%%s%%' and pid <> pg_backend_pid()" % tag)

    def stop(self):
        subprocess.run([os.path.join(PG_BIN, "pg_ctl"), "stop", "-m", "immediate", "-D", self.data],
                       capture_output=True, cwd=self.dir, **self.as_user)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres():
    server = Postgres()
    yield server
    server.stop()


def start_app(postgres, run_dir, args=(), request_timeout=None):
    os.environ["LUBECK_TEST_PG"] = postgres.dsn
    if request_timeout:
        os.environ["LUBECK_TEST_PG_REQUEST_TIMEOUT"] = str(request_timeout)
    try:
        return Server(os.path.join(APPS, "pg"), run_dir, list(args))
    finally:
        del os.environ["LUBECK_TEST_PG"]
        os.environ.pop("LUBECK_TEST_PG_REQUEST_TIMEOUT", None)


@pytest.fixture(scope="module")
def srv(postgres, tmp_path_factory):
    server = start_app(postgres, tmp_path_factory.mktemp("pg-run"))
    yield server
    server.stop()


def jget(server, path, status=200, **kw):
    r = server.get(path, **kw)
    assert r.status == status, (r.status, r.text)
    return json.loads(r.body)


def wait_until(predicate, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_every_type_is_converted(srv):
    r = jget(srv, "/types")
    v = r["values"]
    assert v["i2"] == ["number", "1"] and v["i4"] == ["number", "2147483647"]
    assert v["i8"] == ["number", "-42"]
    assert v["i8_max"] == ["number", "9007199254740992"]            # 2^53 still exact
    assert v["i8_big"] == ["string", "9007199254740993"]            # past it: the digits
    assert v["i8_min"] == ["string", "-9223372036854775808"]
    assert v["f4"] == ["number", "1.5"] and v["f8"] == ["number", "0.10000000000000001"]
    assert v["fnan"] == ["number", "nan"] or v["fnan"] == ["number", "-nan"]
    assert v["fninf"] == ["number", "-inf"]
    assert v["num"] == ["string", "12345678901234567890.123456789"]
    assert v["t"] == ["boolean", "true"] and v["f"] == ["boolean", "false"]
    assert v["txt"] == ["string", "héllo 'q' \"d\""]
    assert v["bpc"] == ["string", "ab "]
    assert v["bin"] == ["string", "00ff410a"]
    assert v["js"] == ["table", {"a": ["table", [["number", "1"], ["number", "2"], ["null"]]],
                                  "b": ["string", "c"]}]
    assert v["jsb"] == ["table", {"k": ["boolean", "true"], "n": ["null"]}]
    assert v["jsnull"] == ["null"]                                   # JSON null is pg.null, not nil
    assert v["ts"] == ["string", "2024-02-29T13:14:15.5"]
    assert v["tstz"] == ["string", "2024-02-29T11:14:15Z"]
    assert v["tsinf"] == ["string", "infinity"]
    assert v["d"] == ["string", "2024-02-29"] and v["tm"] == ["string", "13:14:15"]
    assert v["iv"] == ["string", "1 day 02:00:00"]
    assert v["id"] == ["string", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]
    assert v["ai"] == ["table", [["number", "1"], ["number", "2"], ["null"]]]
    assert v["at"] == ["table", [["string", "a b"], ["string", 'c"d'], ["null"], ["string", ""],
                                 ["string", "NULL"], ["string", "x\\y"]]]
    assert v["a2"] == ["table", [["table", [["number", "1"], ["number", "2"]]],
                                 ["table", [["number", "3"], ["number", "4"]]]]]
    assert v["ab"] == ["table", [["boolean", "true"], ["boolean", "false"]]]
    assert v["abin"] == ["table", [["string", "01ff"]]]
    assert v["ats"] == ["table", [["string", "2024-01-01T00:00:00Z"]]]
    assert v["ajs"] == ["table", [["table", {"a": ["number", "1"]}]]]
    assert v["af"] == ["table", [["number", "1.25"], ["number", "2"]]]
    assert v["an"] == ["table", [["string", "1.10"]]]
    assert v["aempty"] == ["table", {}]
    assert v["abounds"] == ["table", [["number", "7"], ["number", "8"]]]
    # SQL NULL: the key is absent, like a column the query never selected;
    # rows.columns tells them apart.
    assert "n" not in v and r["n_is_nil"] and r["n_is_a_column"] and r["missing_is_nil"]
    assert r["columns"][0] == "i2" and len(r["columns"]) == 38
    assert r["count"] == 1 and r["command"] == "SELECT" and r["tag"] == "SELECT 1" and r["affected"] == 1


def test_parameters_are_sent_apart_from_the_sql(srv):
    r = jget(srv, "/params")
    assert r["a"] is True                       # quotes, backslashes and "; DROP" arrive as data
    assert r["b"] == 42
    assert r["c"] is True and r["clen"] == 255  # bytes 1..255 through a bytea parameter
    assert r["d"] == {"a": [1, 2], "s": "x'y"}  # a table to jsonb goes as JSON
    assert r["e"] == ["table", [["string", "x"], ["string", 'y "z"'], ["string", "back\\slash"],
                                ["null"]]]
    assert r["f"] is True and r["g"] is True and r["h"] == "9007199254740993" and r["i"] is True
    assert r["j"] is True                        # NUL bytes too, for bytea
    assert r["l"] == [[1, 2], [3, 4]] and r["m"] is True
    assert "nul_rows" not in r and "$1 holds a NUL byte" in r["nul_err"]


def test_sql_errors_are_nil_err_with_sqlstate_detail_and_position(srv):
    r = jget(srv, "/errors")
    m = r["missing"]
    assert m["rows"] is False
    assert m["err"] == 'ERROR 42P01: relation "no_such_table" does not exist (position 15)'
    assert m["fields"]["sqlstate"] == "42P01" and m["fields"]["position"] == 15
    assert m["fields"]["message"] == 'relation "no_such_table" does not exist'
    assert r["syntax"]["fields"]["sqlstate"] == "42601" and r["syntax"]["fields"]["position"] == 1
    u = r["unique"]
    assert u["fields"]["sqlstate"] == "23505"
    assert u["fields"]["detail"] == "Key (id)=(1) already exists."
    assert u["err"].endswith("(detail: Key (id)=(1) already exists.)")
    assert r["bad_param"]["err"].startswith("ERROR 22P02: invalid input syntax for type integer")
    assert r["arity"]["err"] == "pg: the statement takes 2 parameters, 1 given"
    assert r["after"] == 1 and r["state"] == "idle"   # the connection goes on after each


def test_command_tags_and_affected_rows(srv):
    r = jget(srv, "/commands")
    assert r["insert"] == ["INSERT", 3, "INSERT 0 3"]
    assert r["update"] == ["UPDATE", 2]
    assert r["multi"] == ["SELECT", 4]          # several statements: the last one's result
    assert r["returning"] == {"id": 5, "v": "e"}


def test_a_statement_is_prepared_once_per_connection(srv):
    r = jget(srv, "/prepared")
    assert r["got"] == [2, 4, 6] and r["prepared"] == 1
    assert r["lost"] is False and r["lost_err"].startswith("ERROR 26000") and r["again"] == 12


def test_transactions_commit_on_return_and_roll_back_on_error(srv):
    r = jget(srv, "/tx")
    assert r["raised_ok"] is False and r["raised"] == {"code": "boom"}   # re-raised as is
    assert r["after_error"] == 0
    assert r["committed"] == "done"
    assert r["failed"] is True and "rolled back" in r["ferr"]
    assert r["values"] == ["kept", "kept too"]
    assert r.get("kept") is None and r["why"] == "in a transaction"


def test_keepalive_reuses_one_connection_and_users_never_share_one(srv, postgres):
    first = jget(srv, "/pid")
    again = [jget(srv, "/pid") for _ in range(5)]
    assert all(a["pid"] == first["pid"] for a in again), again
    assert again[-1]["reused"] >= 5 and first["user"] == "app"
    alice = jget(srv, "/pid?user=alice&password=alice-pw")
    bob = jget(srv, "/pid?user=bob&password=bob-pw")
    assert (alice["user"], bob["user"]) == ("alice", "bob")
    assert len({first["pid"], alice["pid"], bob["pid"]}) == 3
    for _ in range(3):   # each DSN gets its own pooled connection back
        assert jget(srv, "/pid?user=alice&password=alice-pw")["pid"] == alice["pid"]
        assert jget(srv, "/pid?user=bob&password=bob-pw")["pid"] == bob["pid"]
        assert jget(srv, "/pid")["pid"] == first["pid"]
    # Same user, wrong password: a different DSN, so no pooled connection is handed over.
    wrong = jget(srv, "/pid?user=alice&password=nope", status=502)
    assert "password authentication failed" in wrong["err"]


def test_a_killed_backend_gives_nil_err_and_a_fresh_connection_next(srv, postgres):
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(jget, srv, "/sleep?s=5&tag=kill-me")
        assert wait_until(lambda: postgres.active("kill-me"), 5)
        [[pid]] = postgres.active("kill-me")
        postgres.sql("select pg_terminate_backend(%s)" % pid)
        r = fut.result(timeout=5)
    assert r["ok"] is False and r["sqlstate"] == "57P01", r
    assert "terminating connection" in r["err"] and r["waited"] < 3
    assert r.get("kept") is None and r["why"] == "connection broken"
    nxt = jget(srv, "/pid")
    assert nxt["pid"] != int(pid) and nxt["user"] == "app"


def test_a_pooled_connection_whose_backend_dies_is_dropped(srv, postgres):
    before = jget(srv, "/pid?user=alice&password=alice-pw")
    assert before["kept"] == 1
    postgres.sql("select pg_terminate_backend(%d)" % before["pid"])
    assert wait_until(lambda: not postgres.sql("select 1 from pg_stat_activity where pid = %d" % before["pid"]), 2)
    after = jget(srv, "/pid?user=alice&password=alice-pw")      # no error: a fresh connection
    assert after["pid"] != before["pid"] and after["reused"] == 0 and after["user"] == "alice"


def test_a_client_that_disconnects_cancels_its_query(srv, postgres):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    try:
        s.sendall(b"GET /sleep?s=5&tag=gone-client HTTP/1.1\r\nHost: x\r\n\r\n")
        assert wait_until(lambda: postgres.active("gone-client"), 5)
    finally:
        s.close()
    closed = time.time()
    assert wait_until(lambda: not postgres.active("gone-client"), 1.0)
    assert time.time() - closed < 1.0
    assert jget(srv, "/pid")["user"] == "app"     # the host goes on


def test_a_request_answered_504_cancels_its_query(postgres, tmp_path):
    server = start_app(postgres, tmp_path / "run", request_timeout=2)
    try:
        started = time.time()
        r = server.get("/sleep?s=5&tag=deadline")
        answered = time.time()
        assert r.status == 504 and answered - started < 3.5
        assert wait_until(lambda: not postgres.active("deadline"), 1.0)
    finally:
        server.stop()


def test_a_query_timeout_cancels_it_on_the_server(srv, postgres):
    r = jget(srv, "/sleep?s=3&timeout=200&tag=timed-out")
    assert r["ok"] is False and r["err"] == "timeout" and r["waited"] < 1
    assert r["state"] == "closed" and r.get("kept") is None
    assert wait_until(lambda: not postgres.active("timed-out"), 1.0)


def test_concurrent_slow_queries_overlap(srv):
    """100 requests, each one pg_sleep(0.2), all at once: a first round opens
    the connections (SCRAM and a backend fork each), the second reuses them
    from the pool. Each request is counted."""
    n = 100

    def round_trip():
        started = time.time()
        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(lambda i: srv.get("/sleep?s=0.2&tag=c%d" % i, timeout=30), range(n)))
        wall = time.time() - started
        answers = [json.loads(r.body) for r in results if r.status == 200]
        assert len(answers) == n, [r.status for r in results if r.status != 200]
        assert all(a["ok"] for a in answers), [a for a in answers if not a["ok"]][:3]
        return wall

    cold = round_trip()
    warm = round_trip()
    print("\n%d x pg_sleep(0.2), serial %.1fs: new connections %.2fs (x%.1f), pooled %.2fs (x%.1f)"
          % (n, n * 0.2, cold, n * 0.2 / cold, warm, n * 0.2 / warm))
    assert warm < n * 0.2 / 4 and cold < n * 0.2 / 2


def test_listen_notify_across_two_workers(postgres, tmp_path):
    server = start_app(postgres, tmp_path / "run", ["--workers", "2"])
    try:
        # the listeners connect from each worker's loop once it runs
        deadline = time.time() + 10
        while len(postgres.sql("select pid from pg_stat_activity where query like 'LISTEN%'")) < 2:
            assert time.time() < deadline, "two LISTEN connections"
            time.sleep(0.1)
        with ThreadPoolExecutor(8) as pool:
            waits = [pool.submit(server.get, "/listen?timeout=8") for _ in range(8)]
            time.sleep(1)
            postgres.sql("select pg_notify('lubeck_events', 'from psql \"quoted\"')", db="app")
            answers = [json.loads(w.result(timeout=10).body) for w in waits]
        assert all(a["payload"] == 'from psql "quoted"' for a in answers), answers
        assert len({a["worker"] for a in answers}) == 2, answers   # both workers woke
        # a NOTIFY from a handler reaches the others too
        with ThreadPoolExecutor(4) as pool:
            waits = [pool.submit(server.get, "/listen?timeout=8") for _ in range(4)]
            time.sleep(1)
            assert jget(server, "/notify?payload=hi")["ok"] is True
            answers = [json.loads(w.result(timeout=10).body) for w in waits]
        assert [a["payload"] for a in answers] == ["hi"] * 4
    finally:
        server.stop()


def test_the_listener_reconnects_after_its_backend_is_killed(srv, postgres):
    assert wait_until(lambda: postgres.sql("select pid from pg_stat_activity where query like 'LISTEN%'"), 10)
    postgres.sql("select pg_terminate_backend(pid) from pg_stat_activity where query like 'LISTEN%'")
    assert wait_until(lambda: postgres.sql("select pid from pg_stat_activity where query like 'LISTEN%'"), 5)
    with ThreadPoolExecutor(1) as pool:
        w = pool.submit(srv.get, "/listen?timeout=5")
        time.sleep(0.5)
        postgres.sql("select pg_notify('lubeck_events', 'back')", db="app")
        assert json.loads(w.result(timeout=10).body)["payload"] == "back"


def test_apps_todo_runs_on_postgresql(postgres, tmp_path):
    os.environ["TODO_PG"] = postgres.dsn
    try:
        server = Server(os.path.join(ROOT, "apps", "todo"), tmp_path / "todo-run")
    finally:
        del os.environ["TODO_PG"]
    try:
        def send(method, path, body=None):
            r = server.request(method, path, body=json.dumps(body) if body is not None else None,
                               headers={"Content-Type": "application/json"})
            return r.status, (json.loads(r.body) if r.body else None)

        status, item = send("POST", "/todos", {"title": "It's \"quoted\"", "tags": ["a", "b c"],
                                               "due": "2030-01-02T03:04:05+02:00", "order": 2,
                                               "owner": "me@example.com"})
        assert status == 201, item
        assert item["title"] == "It's \"quoted\"" and "owner" not in item   # private: stored, not sent
        row = postgres.sql("select title, tags::text, due, \"order\", owner, done from todos where id = %s"
                           % item["id"], db="app")
        assert row == [["It's \"quoted\"", '{a,"b c"}', "2030-01-02 01:04:05+00", "2", "me@example.com", "f"]]
        status, got = send("GET", "/todos/%s" % item["id"])
        assert status == 200 and got["tags"] == ["a", "b c"] and got["due"] == "2030-01-02T01:04:05Z"
        assert got["done"] is False and got["order"] == 2 and got["id"] == item["id"]
        status, patched = send("PATCH", "/todos/%s" % item["id"], {"done": True})
        assert status == 200 and patched["done"] is True and patched["title"] == item["title"]
        status, _ = send("POST", "/todos", {"title": "second"})
        status, listed = send("GET", "/todos")
        assert [t["title"] for t in listed] == [item["title"], "second"]
        assert send("GET", "/todos/999999")[0] == 404
        assert send("GET", "/todos/not-a-number")[0] == 404
        assert send("DELETE", "/todos/%s" % item["id"])[0] == 204
        assert send("DELETE", "/todos/%s" % item["id"])[0] == 404
        assert postgres.sql("select title from todos", db="app") == [["second"]]
    finally:
        server.stop()
        postgres.sql("drop table if exists todos", db="app")
