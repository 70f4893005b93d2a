"""Benchmark for lubeck.pg (not collected by pytest; run it by hand):
    LUBECK_BUILD=$PWD/build /usr/bin/python3 tests/e2e/bench_pg.py [SECONDS] [ROUNDS]
Starts its own PostgreSQL and redis-server (the e2e fixtures), one `lubeck
serve tests/e2e/apps/pg`, and runs wrk in alternating rounds on two handlers
that each read one item: by primary key through lubeck.pg, and by key through
lubeck.redis. Prints requests/s per round and the pg/redis ratio of the
medians (same run, same server)."""
import os
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conftest import APPS, Server  # noqa: E402
from test_pg import Postgres  # noqa: E402
from test_redis import Redis  # noqa: E402


def wrk(port, path, seconds, conns=32):
    out = subprocess.run(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "--latency",
                          "http://127.0.0.1:%d%s" % (port, path)],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return rps, errors.group(0) if errors else ""


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    pg = Postgres()
    tmp = tempfile.mkdtemp(prefix="lubeck-bench-")
    redis = Redis(tmp)
    server = None
    try:
        pg.sql("create table bench_items (id int primary key, title text not null); "
               "insert into bench_items select i, 'item ' || i from generate_series(1, 10000) i; "
               "alter table bench_items owner to app", db="app")
        redis.command("SET", "item:42", '{"id":42,"title":"item 42"}')
        os.environ["LUBECK_TEST_PG"] = pg.dsn
        os.environ["LUBECK_TEST_REDIS_PORT"] = str(redis.port)
        server = Server(os.path.join(APPS, "pg"), os.path.join(tmp, "run"))
        got = server.get("/item?id=42").body
        assert got == b'{"id":42,"title":"item 42"}' or got == b'{"title":"item 42","id":42}', got
        assert server.get("/redis-item?id=42").body == b'{"id":42,"title":"item 42"}'
        wrk(server.port, "/item?id=42", 1)
        wrk(server.port, "/redis-item?id=42", 1)
        results = {"pg": [], "redis": []}
        for i in range(rounds):
            for name, path in (("pg", "/item?id=42"), ("redis", "/redis-item?id=42")):
                rps, errors = wrk(server.port, path, seconds)
                results[name].append(rps)
                print("round %d %-5s %8.0f req/s %s" % (i + 1, name, rps, errors), flush=True)
        p, r = statistics.median(results["pg"]), statistics.median(results["redis"])
        print("median: pg %.0f req/s, redis %.0f req/s, pg/redis %.2f" % (p, r, p / r))
    finally:
        if server:
            server.stop()
        redis.stop()
        pg.stop()


if __name__ == "__main__":
    main()
